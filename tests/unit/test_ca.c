// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Copyright (c) 2026 The lanyard authors */
/*
 * Unit tests for userspace/ca.c: the CA files, imported intermediates, leaf
 * and client-certificate minting, the leaf cache, host-name rules and the
 * RFC 8705 thumbprint.  Chains are checked with X509_verify_cert and with
 * the openssl(1) command, as a TLS client would.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "ca.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static char tmpdir[64];
static char state[128];
static char keypath[192];
static char certpath[192];
static char err[512];

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void setup(void)
{
	strcpy(tmpdir, "/tmp/ly-test-ca-XXXXXX");
	cr_assert_not_null(mkdtemp(tmpdir));
	snprintf(state, sizeof(state), "%s/state", tmpdir);
	snprintf(keypath, sizeof(keypath), "%s/%s", state, CA_KEY_FILE);
	snprintf(certpath, sizeof(certpath), "%s/%s", state, CA_CERT_FILE);
	err[0] = '\0';
}

static void teardown(void)
{
	nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(ca, .init = setup, .fini = teardown, .timeout = 5);

static struct ca *open_local(void)
{
	struct ca *ca = ca_open(state, NULL, NULL, err, sizeof(err));

	cr_assert_not_null(ca, "ca_open: %s", err);
	return ca;
}

static int64_t now_s(void)
{
	return (int64_t)time(NULL);
}

/* --- an organisation PKI made here, for the imported-intermediate cases -------------- */

static EVP_PKEY *p256(void)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");

	cr_assert_not_null(k);
	return k;
}

static void ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *e;

	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
	e = X509V3_EXT_nconf_nid(NULL, &ctx, nid, value);
	cr_assert_not_null(e, "extension %d=%s", nid, value);
	cr_assert_eq(X509_add_ext(x, e, -1), 1);
	X509_EXTENSION_free(e);
}

/* A certificate for key, signed by ikey (self-signed when issuer is NULL). */
static X509 *make_cert(EVP_PKEY *key, X509 *issuer, EVP_PKEY *ikey, const char *cn, int is_ca,
		       int64_t lifetime_s)
{
	X509 *x = X509_new();
	static long serial = 1000;

	cr_assert_not_null(x);
	X509_set_version(x, X509_VERSION_3);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
	X509_gmtime_adj(X509_getm_notBefore(x), -60);
	X509_gmtime_adj(X509_getm_notAfter(x), (long)lifetime_s);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_UTF8,
				   (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(issuer ? issuer : x));
	X509_set_pubkey(x, key);
	ext(x, issuer ? issuer : x, NID_subject_key_identifier, "hash");
	if (is_ca) {
		ext(x, issuer ? issuer : x, NID_basic_constraints, "critical,CA:TRUE");
		ext(x, issuer ? issuer : x, NID_key_usage, "critical,keyCertSign,cRLSign");
	} else {
		ext(x, issuer ? issuer : x, NID_basic_constraints, "critical,CA:FALSE");
	}
	if (issuer)
		ext(x, issuer, NID_authority_key_identifier, "keyid:always");
	cr_assert(X509_sign(x, issuer ? ikey : key, EVP_sha256()) > 0);
	return x;
}

static void write_pem_certs(const char *path, X509 *a, X509 *b)
{
	FILE *f = fopen(path, "w");

	cr_assert_not_null(f);
	cr_assert(PEM_write_X509(f, a));
	if (b)
		cr_assert(PEM_write_X509(f, b));
	fclose(f);
}

static void write_pem_key(const char *path, EVP_PKEY *k, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	FILE *f;

	cr_assert_geq(fd, 0);
	cr_assert_eq(fchmod(fd, mode), 0);
	f = fdopen(fd, "w");
	cr_assert_not_null(f);
	cr_assert(PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL));
	fclose(f);
}

struct org {
	EVP_PKEY *root_key, *int_key;
	X509 *root, *inter;
	char cert[192], key[192];
};

/* root -> intermediate; the intermediate (and, with_root, the root) in org->cert */
static void org_make(struct org *o, int with_root, int64_t int_life)
{
	o->root_key = p256();
	o->int_key = p256();
	o->root = make_cert(o->root_key, NULL, NULL, "Example Org Root", 1, 86400 * 365);
	o->inter = make_cert(o->int_key, o->root, o->root_key, "Example Org lanyard", 1,
			     int_life);
	snprintf(o->cert, sizeof(o->cert), "%s/org.crt", tmpdir);
	snprintf(o->key, sizeof(o->key), "%s/org.key", tmpdir);
	write_pem_certs(o->cert, o->inter, with_root ? o->root : NULL);
	write_pem_key(o->key, o->int_key, 0600);
}

static void org_free(struct org *o)
{
	X509_free(o->root);
	X509_free(o->inter);
	EVP_PKEY_free(o->root_key);
	EVP_PKEY_free(o->int_key);
}

/* X509_verify_cert of c against anchor, with c->chain as untrusted; the error or 0 */
static int verify(const struct ca_cert *c, X509 *anchor, int purpose)
{
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	int rc;

	cr_assert(store && ctx);
	cr_assert_eq(X509_STORE_add_cert(store, anchor), 1);
	cr_assert_eq(X509_STORE_CTX_init(ctx, store, c->cert, c->chain), 1);
	X509_STORE_CTX_set_purpose(ctx, purpose);
	rc = X509_verify_cert(ctx) == 1 ? 0 : X509_STORE_CTX_get_error(ctx);
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	return rc;
}

static int has_eku(X509 *x, uint32_t xku)
{
	return (X509_get_extension_flags(x) & EXFLAG_XKUSAGE) && (X509_get_extended_key_usage(x) &
								 xku);
}

/* the only SAN entry of x, checked to be of type */
static GENERAL_NAME *only_san(X509 *x, int type, int *critical)
{
	static GENERAL_NAMES *gens;

	GENERAL_NAMES_free(gens);
	gens = X509_get_ext_d2i(x, NID_subject_alt_name, critical, NULL);
	cr_assert_not_null(gens);
	cr_assert_eq(sk_GENERAL_NAME_num(gens), 1);
	cr_assert_eq(sk_GENERAL_NAME_value(gens, 0)->type, type);
	return sk_GENERAL_NAME_value(gens, 0);
}

/* --- the local CA files -------------------------------------------------------------- */

Test(ca, creates_root_then_reloads_the_same_one)
{
	struct ca *a = open_local(), *b;
	X509 *x = ca_cert(a);
	BASIC_CONSTRAINTS *bc;
	char cn[128] = "";
	struct stat st;
	int crit = -1;

	cr_expect_eq(stat(keypath, &st), 0);
	cr_expect_eq(st.st_mode & 07777, 0600);
	cr_expect_eq(stat(certpath, &st), 0);
	cr_expect_eq(st.st_mode & 07777, 0644);
	cr_expect_eq(ca_is_imported(a), 0);
	/* RFC 5280 4.2.1.9: critical CA:TRUE, pathlen 0 (it signs leaves only) */
	bc = X509_get_ext_d2i(x, NID_basic_constraints, &crit, NULL);
	cr_assert_not_null(bc);
	cr_expect(bc->ca && crit == 1);
	cr_expect_eq(ASN1_INTEGER_get(bc->pathlen), 0);
	BASIC_CONSTRAINTS_free(bc);
	cr_expect_eq(X509_get_key_usage(x), KU_KEY_CERT_SIGN | KU_CRL_SIGN);
	cr_expect_geq(X509_get_ext_by_critical(x, 1, -1), 0);
	cr_expect_not_null(X509_get0_subject_key_id(x));
	cr_expect(X509_get_extension_flags(x) & EXFLAG_SS);
	X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof(cn));
	cr_expect_eq(strncmp(cn, "lanyard local CA ", 17), 0, "CN %s", cn);
	/* ten years */
	cr_expect_gt(ASN1_TIME_cmp_time_t(X509_get0_notAfter(x), time(NULL) + 3649L * 86400), 0);
	b = open_local();
	cr_expect_eq(X509_cmp(ca_cert(a), ca_cert(b)), 0, "reload made another CA");
	ca_free(a);
	ca_free(b);
}

Test(ca, refuses_group_readable_key)
{
	ca_free(open_local());
	cr_assert_eq(chmod(keypath, 0644), 0);
	cr_expect_null(ca_open(state, NULL, NULL, err, sizeof(err)));
	cr_expect_not_null(strstr(err, "mode 0644"), "%s", err);
}

Test(ca, refuses_key_owned_by_another_user)
{
	if (geteuid() != 0)
		cr_skip_test("needs root to chown");
	ca_free(open_local());
	cr_assert_eq(chown(keypath, 65534, 65534), 0);
	cr_expect_null(ca_open(state, NULL, NULL, err, sizeof(err)));
	cr_expect_not_null(strstr(err, "owned by uid 65534"), "%s", err);
}

Test(ca, refuses_key_symlink)
{
	char real[256];

	ca_free(open_local());
	snprintf(real, sizeof(real), "%s/real.key", tmpdir);
	cr_assert_eq(rename(keypath, real), 0);
	cr_assert_eq(symlink(real, keypath), 0);
	cr_expect_null(ca_open(state, NULL, NULL, err, sizeof(err)));
	cr_expect_not_null(strstr(err, "symlink"), "%s", err);
}

Test(ca, refuses_certificate_without_its_key)
{
	ca_free(open_local());
	cr_assert_eq(unlink(keypath), 0);
	cr_expect_null(ca_open(state, NULL, NULL, err, sizeof(err)));
	cr_expect_not_null(strstr(err, "exists without"), "%s", err);
	cr_expect_neq(access(keypath, F_OK), 0, "must not create a key for a foreign cert");
}

Test(ca, recreates_lost_certificate_for_the_same_key)
{
	struct ca *a = open_local(), *b;
	EVP_PKEY *pub;

	cr_assert_eq(unlink(certpath), 0);
	b = open_local();
	pub = X509_get0_pubkey(ca_cert(a));
	cr_expect_eq(EVP_PKEY_eq(pub, X509_get0_pubkey(ca_cert(b))), 1);
	ca_free(a);
	ca_free(b);
}

Test(ca, refuses_half_an_imported_pair)
{
	cr_expect_null(ca_open(state, "/nonexistent.crt", NULL, err, sizeof(err)));
	cr_expect_null(ca_open(state, NULL, "/nonexistent.key", err, sizeof(err)));
	cr_expect_null(ca_open(NULL, NULL, NULL, err, sizeof(err)));
}

/* --- imported intermediates ---------------------------------------------------------- */

Test(ca, imported_intermediate_chains_to_the_org_root)
{
	struct org o;
	struct ca *ca;
	struct ca_cert *leaf;
	char *anchor;
	BIO *bio;
	X509 *x;

	org_make(&o, 1, 86400 * 90);
	ca = ca_open(NULL, o.cert, o.key, err, sizeof(err));
	cr_assert_not_null(ca, "%s", err);
	cr_expect_eq(ca_is_imported(ca), 1);
	cr_expect_eq(X509_cmp(ca_cert(ca), o.inter), 0);
	leaf = ca_leaf(ca, "api.example.org", 0, now_s(), err, sizeof(err));
	cr_assert_not_null(leaf, "%s", err);
	/* the intermediate is sent after the leaf; the root (in the file) is not */
	cr_expect_eq(sk_X509_num(leaf->chain), 1);
	cr_expect_eq(X509_cmp(sk_X509_value(leaf->chain, 0), o.inter), 0);
	cr_expect_eq(verify(leaf, o.root, X509_PURPOSE_SSL_SERVER), 0);
	/* the host trusts the org root: that is the anchor */
	anchor = ca_anchor_pem(ca);
	cr_assert_not_null(anchor);
	bio = BIO_new_mem_buf(anchor, -1);
	x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	cr_expect_eq(X509_cmp(x, o.root), 0);
	X509_free(x);
	BIO_free(bio);
	free(anchor);
	ca_cert_put(leaf);
	ca_free(ca);
	org_free(&o);
}

Test(ca, imported_intermediate_without_root_has_no_anchor)
{
	struct org o;
	struct ca *ca;

	org_make(&o, 0, 86400 * 90);
	ca = ca_open(NULL, o.cert, o.key, err, sizeof(err));
	cr_assert_not_null(ca, "%s", err);
	cr_expect_null(ca_anchor_pem(ca));
	ca_free(ca);
	org_free(&o);
}

Test(ca, imported_non_ca_certificate_refused)
{
	struct org o;
	X509 *ee;

	org_make(&o, 0, 86400);
	ee = make_cert(o.int_key, o.root, o.root_key, "not a CA", 0, 86400);
	write_pem_certs(o.cert, ee, NULL);
	cr_expect_null(ca_open(NULL, o.cert, o.key, err, sizeof(err)));
	cr_expect_not_null(strstr(err, "not a CA"), "%s", err);
	X509_free(ee);
	org_free(&o);
}

Test(ca, imported_key_mismatch_refused)
{
	struct org o;

	org_make(&o, 1, 86400);
	write_pem_key(o.key, o.root_key, 0600);
	cr_expect_null(ca_open(NULL, o.cert, o.key, err, sizeof(err)));
	cr_expect_not_null(strstr(err, "does not match"), "%s", err);
	org_free(&o);
}

Test(ca, imported_key_readable_by_others_refused)
{
	struct org o;

	org_make(&o, 1, 86400);
	cr_assert_eq(chmod(o.key, 0640), 0);
	cr_expect_null(ca_open(NULL, o.cert, o.key, err, sizeof(err)));
	cr_expect_not_null(strstr(err, "mode 0640"), "%s", err);
	org_free(&o);
}

Test(ca, imported_chain_to_a_foreign_root_refused)
{
	struct org o;
	EVP_PKEY *k = p256();
	X509 *other = make_cert(k, NULL, NULL, "Someone Else Root", 1, 86400);

	org_make(&o, 0, 86400);
	write_pem_certs(o.cert, o.inter, other);
	cr_expect_null(ca_open(NULL, o.cert, o.key, err, sizeof(err)));
	cr_expect_not_null(strstr(err, "does not chain"), "%s", err);
	X509_free(other);
	EVP_PKEY_free(k);
	org_free(&o);
}

Test(ca, imported_rsa_intermediate_signs_leaves)
{
	EVP_PKEY *rk = EVP_RSA_gen(2048), *ik = EVP_RSA_gen(2048);
	X509 *root, *inter;
	struct ca_cert *leaf;
	char cert[192], key[192];
	struct ca *ca;

	cr_assert(rk && ik);
	root = make_cert(rk, NULL, NULL, "RSA Root", 1, 86400 * 365);
	inter = make_cert(ik, root, rk, "RSA lanyard", 1, 86400 * 90);
	snprintf(cert, sizeof(cert), "%s/rsa.crt", tmpdir);
	snprintf(key, sizeof(key), "%s/rsa.key", tmpdir);
	write_pem_certs(cert, inter, root);
	write_pem_key(key, ik, 0600);
	ca = ca_open(NULL, cert, key, err, sizeof(err));
	cr_assert_not_null(ca, "%s", err);
	leaf = ca_leaf(ca, "rsa.example.org", 0, now_s(), err, sizeof(err));
	cr_assert_not_null(leaf, "%s", err);
	cr_expect_eq(X509_get_signature_nid(leaf->cert), NID_sha256WithRSAEncryption);
	cr_expect_eq(verify(leaf, root, X509_PURPOSE_SSL_SERVER), 0);
	ca_cert_put(leaf);
	ca_free(ca);
	X509_free(root);
	X509_free(inter);
	EVP_PKEY_free(rk);
	EVP_PKEY_free(ik);
}

Test(ca, leaf_never_outlives_its_ca)
{
	struct org o;
	struct ca *ca;
	struct ca_cert *leaf;

	org_make(&o, 1, 3600);	/* the intermediate has an hour left */
	ca = ca_open(NULL, o.cert, o.key, err, sizeof(err));
	cr_assert_not_null(ca, "%s", err);
	leaf = ca_leaf(ca, "short.example.org", 86400, now_s(), err, sizeof(err));
	cr_assert_not_null(leaf, "%s", err);
	cr_expect_eq(ASN1_TIME_compare(X509_get0_notAfter(leaf->cert),
				       X509_get0_notAfter(o.inter)), 0);
	ca_cert_put(leaf);
	ca_free(ca);
	org_free(&o);
}

/* --- interception leaves ------------------------------------------------------------- */

Test(ca, leaf_verifies_for_its_host_only)
{
	struct ca *ca = open_local();
	int64_t now = now_s();
	struct ca_cert *leaf = ca_leaf(ca, "API.Example.org", 600, now, err, sizeof(err));
	const ASN1_OCTET_STRING *aki;
	GENERAL_NAME *gn;
	int crit = -1;

	cr_assert_not_null(leaf, "%s", err);
	cr_expect_eq(verify(leaf, ca_cert(ca), X509_PURPOSE_SSL_SERVER), 0);
	cr_expect_eq(X509_check_host(leaf->cert, "api.example.org", 0, 0, NULL), 1);
	cr_expect_neq(X509_check_host(leaf->cert, "other.example.org", 0, 0, NULL), 1);
	cr_expect_neq(X509_check_host(leaf->cert, "example.org", 0, 0, NULL), 1);
	gn = only_san(leaf->cert, GEN_DNS, &crit);
	cr_expect_str_eq((const char *)ASN1_STRING_get0_data(gn->d.dNSName), "api.example.org");
	cr_expect_eq(crit, 0, "SAN is not critical while the subject has a CN");
	cr_expect(has_eku(leaf->cert, XKU_SSL_SERVER));
	cr_expect_not(has_eku(leaf->cert, XKU_SSL_CLIENT));
	cr_expect_eq(X509_get_key_usage(leaf->cert), KU_DIGITAL_SIGNATURE);
	cr_expect_eq(X509_check_ca(leaf->cert), 0);
	aki = X509_get0_authority_key_id(leaf->cert);
	cr_assert_not_null(aki);
	cr_expect_eq(ASN1_OCTET_STRING_cmp(aki, X509_get0_subject_key_id(ca_cert(ca))), 0);
	cr_expect_eq(X509_check_private_key(leaf->cert, leaf->key), 1);
	cr_expect(EVP_PKEY_is_a(leaf->key, "EC"));
	cr_expect_eq(leaf->not_before, now - 60);
	cr_expect_eq(leaf->not_after, now + 600);
	cr_expect_eq(strlen(leaf->serial), 32);
	cr_expect_eq(sk_X509_num(leaf->chain), 0, "the local root is not sent");
	ca_cert_put(leaf);
	ca_free(ca);
}

Test(ca, leaf_for_ip_literal_has_ip_san)
{
	static const char *const ips[] = { "10.1.2.3", "2001:DB8::1" };
	struct ca *ca = open_local();

	for (size_t i = 0; i < ARRAY_SIZE(ips); i++) {
		struct ca_cert *leaf = ca_leaf(ca, ips[i], 0, now_s(), err, sizeof(err));
		GENERAL_NAME *gn;

		cr_assert_not_null(leaf, "%s: %s", ips[i], err);
		gn = only_san(leaf->cert, GEN_IPADD, NULL);
		cr_expect_eq(ASN1_STRING_length(gn->d.iPAddress), strchr(ips[i], ':') ? 16 : 4);
		cr_expect_eq(X509_check_ip_asc(leaf->cert, ips[i], 0), 1, "%s", ips[i]);
		cr_expect_eq(verify(leaf, ca_cert(ca), X509_PURPOSE_SSL_SERVER), 0);
		cr_expect_eq(leaf->not_after - leaf->not_before, CA_LEAF_TTL_S + 60);
		ca_cert_put(leaf);
	}
	ca_free(ca);
}

Test(ca, leaf_for_long_name_has_empty_subject_and_critical_san)
{
	char host[CA_HOST_MAX + 1];
	struct ca *ca = open_local();
	struct ca_cert *leaf;
	int crit = -1;

	/* 4 labels of 62 + 3 dots = 251 bytes: too long for a CN (64) */
	memset(host, 'a', sizeof(host));
	host[62] = host[125] = host[188] = '.';
	host[251] = '\0';
	leaf = ca_leaf(ca, host, 0, now_s(), err, sizeof(err));
	cr_assert_not_null(leaf, "%s", err);
	cr_expect_eq(X509_NAME_entry_count(X509_get_subject_name(leaf->cert)), 0);
	only_san(leaf->cert, GEN_DNS, &crit);
	cr_expect_eq(crit, 1);
	cr_expect_eq(X509_check_host(leaf->cert, host, 0, 0, NULL), 1);
	cr_expect_eq(verify(leaf, ca_cert(ca), X509_PURPOSE_SSL_SERVER), 0);
	ca_cert_put(leaf);
	ca_free(ca);
}

Test(ca, leaf_cache_hit_returns_the_same_certificate)
{
	struct ca *ca = open_local();
	int64_t now = now_s();
	struct ca_cert *a = ca_leaf(ca, "api.example.org", 3000, now, err, sizeof(err));
	struct ca_cert *b = ca_leaf(ca, "API.EXAMPLE.ORG.", 3000, now + 1000, err, sizeof(err));

	cr_assert(a && b, "%s", err);
	cr_expect_eq(a, b);
	cr_expect_str_eq(a->serial, b->serial);
	cr_expect_eq(a->refs, 3, "cache + two users");
	cr_expect_eq(ca_leaf_cached(ca), 1);
	ca_cert_put(a);
	ca_cert_put(b);
	ca_free(ca);
}

Test(ca, leaf_reminted_when_a_third_of_its_life_is_left)
{
	struct ca *ca = open_local();
	int64_t now = now_s();
	struct ca_cert *a, *b, *c;
	char serial[41];

	/* life = 3000 + 60: stale once fewer than 1020 s are left */
	a = ca_leaf(ca, "api.example.org", 3000, now, err, sizeof(err));
	cr_assert_not_null(a, "%s", err);
	strcpy(serial, a->serial);
	b = ca_leaf(ca, "api.example.org", 3000, now + 1900, err, sizeof(err));
	cr_expect_eq(a, b);
	ca_cert_put(b);
	c = ca_leaf(ca, "api.example.org", 3000, now + 2000, err, sizeof(err));
	cr_assert_not_null(c, "%s", err);
	cr_expect_neq(a, c);
	cr_expect_str_neq(c->serial, serial);
	cr_expect_eq(c->not_after, now + 5000);
	/* the old leaf, still held by a "session", stays usable after eviction */
	cr_expect_eq(a->refs, 1);
	cr_expect_str_eq(a->serial, serial);
	cr_expect_eq(X509_check_host(a->cert, "api.example.org", 0, 0, NULL), 1);
	cr_expect_eq(ca_leaf_cached(ca), 1);
	ca_cert_put(a);
	ca_cert_put(c);
	ca_free(ca);
}

Test(ca, leaf_reminted_when_the_clock_went_back)
{
	struct ca *ca = open_local();
	int64_t now = now_s();
	struct ca_cert *a = ca_leaf(ca, "api.example.org", 3000, now, err, sizeof(err));
	struct ca_cert *b = ca_leaf(ca, "api.example.org", 3000, now - 600, err, sizeof(err));

	cr_assert(a && b, "%s", err);
	cr_expect_neq(a, b);
	ca_cert_put(a);
	ca_cert_put(b);
	ca_free(ca);
}

Test(ca, leaf_cache_evicts_least_recently_used)
{
	struct ca *ca = open_local();
	int64_t now = now_s();
	struct ca_cert *a, *b, *c, *d, *x;

	cr_assert_eq(ca_set_leaf_cache_max(ca, 3), 0);
	a = ca_leaf(ca, "a.example", 0, now, err, sizeof(err));
	b = ca_leaf(ca, "b.example", 0, now, err, sizeof(err));
	c = ca_leaf(ca, "c.example", 0, now, err, sizeof(err));
	cr_assert(a && b && c);
	cr_expect_eq(ca_set_leaf_cache_max(ca, 10), -EBUSY);
	x = ca_leaf(ca, "a.example", 0, now, err, sizeof(err));	/* a is now the newest */
	cr_expect_eq(x, a);
	ca_cert_put(x);
	d = ca_leaf(ca, "d.example", 0, now, err, sizeof(err));	/* evicts b */
	cr_assert_not_null(d);
	cr_expect_eq(ca_leaf_cached(ca), 3);
	x = ca_leaf(ca, "a.example", 0, now, err, sizeof(err));
	cr_expect_eq(x, a, "a was used recently: kept");
	ca_cert_put(x);
	x = ca_leaf(ca, "b.example", 0, now, err, sizeof(err));
	cr_expect_neq(x, b, "b was the least recently used: evicted");
	cr_expect_eq(b->refs, 1, "only our reference is left");
	ca_cert_put(x);
	ca_cert_put(a);
	ca_cert_put(b);
	ca_cert_put(c);
	ca_cert_put(d);
	ca_free(ca);
}

Test(ca, certificate_outlives_ca_free_while_referenced)
{
	struct ca *ca = open_local();
	struct ca_cert *leaf = ca_leaf(ca, "api.example.org", 0, now_s(), err, sizeof(err));
	struct ca_cert *cli = ca_client_cert(ca, "spiffe://example.org/billing", 0, now_s(), err,
					     sizeof(err));

	cr_assert(leaf && cli, "%s", err);
	ca_free(ca);
	cr_expect_eq(leaf->refs, 1);
	cr_expect_eq(X509_check_private_key(leaf->cert, leaf->key), 1);
	ca_cert_put(leaf);
	ca_cert_put(cli);
}

/* --- host names ---------------------------------------------------------------------- */

struct host_case {
	const char *in;
	const char *want;	/* normalised form; NULL = refused */
	int family;
};

static void *cr_strdup(const char *s)
{
	char *d;

	if (!s)
		return NULL;
	d = cr_malloc(strlen(s) + 1);
	cr_assert_not_null(d);
	strcpy(d, s);
	return d;
}

static struct criterion_test_params host_params(const struct host_case *src, size_t n)
{
	struct host_case *p = cr_malloc(n * sizeof(*p));

	cr_assert_not_null(p);
	for (size_t i = 0; i < n; i++) {
		p[i] = src[i];
		p[i].in = cr_strdup(src[i].in);
		p[i].want = cr_strdup(src[i].want);
	}
	return cr_make_param_array(struct host_case, p, n);
}

#define OK(in, want, fam)	{ in, want, fam }
#define BAD(in)			{ in, NULL, 0 }

ParameterizedTestParameters(ca, normalises_host_names)
{
	static const struct host_case cases[] = {
		/* VALID */
		OK("api.example.org", "api.example.org", 0),
		OK("API.Example.ORG", "api.example.org", 0),
		OK("api.example.org.", "api.example.org", 0),
		OK("localhost", "localhost", 0),
		OK("xn--bcher-kva.example", "xn--bcher-kva.example", 0),
		OK("3com.example", "3com.example", 0),
		OK("a-b.c-d", "a-b.c-d", 0),
		OK("10.0.0.1", "10.0.0.1", AF_INET),
		OK("::1", "::1", AF_INET6),
		OK("2001:DB8:0:0::1", "2001:db8::1", AF_INET6),
		OK("::FFFF:1.2.3.4", "::ffff:1.2.3.4", AF_INET6),
		/* MALFORMED */
		BAD(""),
		BAD("."),
		BAD(".."),
		BAD("a/../b"),
		BAD("../etc/passwd"),
		BAD("x\n"),
		BAD("x\r\nX-Injected: 1"),
		BAD("exa mple.com"),
		BAD("a..b"),
		BAD(".a.b"),
		BAD("a.b.."),
		BAD("-a.example"),
		BAD("a-.example"),
		BAD("a_b.example"),
		BAD("caf\xc3\xa9.example"),
		BAD("a,DNS:evil.example"),
		BAD("a.example:443"),
		/* AMBIGUOUS: a wildcard is never a concrete SNI; numeric TLDs look like IPs */
		BAD("*.example.com"),
		BAD("*"),
		BAD("127.1"),
		BAD("0x7f.0.0.1"),
		BAD("1.2.3.4.5"),
		BAD("256.1.1.1"),
		BAD("[::1]"),
		BAD("fe80::1%eth0"),
		/* TOO LONG: a 64-byte label */
		BAD("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.example"),
	};

	return host_params(cases, ARRAY_SIZE(cases));
}

ParameterizedTest(const struct host_case *c, ca, normalises_host_names)
{
	char out[CA_HOST_MAX + 1];
	int family = -1, rc;

	rc = ca_host_normalize(c->in, out, sizeof(out), &family);
	if (!c->want) {
		cr_expect_eq(rc, -EINVAL, "\"%s\" accepted as \"%s\"", c->in, out);
		return;
	}
	cr_expect_eq(rc, 0, "\"%s\" refused", c->in);
	cr_expect_str_eq(out, c->want);
	cr_expect_eq(family, c->family);
}

Test(ca, host_name_length_limits)
{
	char host[400], out[CA_HOST_MAX + 1];
	int family;

	/* 253 bytes: labels of 63 */
	memset(host, 'a', sizeof(host));
	host[63] = host[127] = host[191] = '.';
	host[253] = '\0';
	cr_expect_eq(ca_host_normalize(host, out, sizeof(out), &family), 0);
	host[253] = '.';	/* 253 + the root dot: still the same name */
	host[254] = '\0';
	cr_expect_eq(ca_host_normalize(host, out, sizeof(out), &family), 0);
	cr_expect_eq(strlen(out), 253);
	host[253] = 'a';	/* 254 */
	cr_expect_eq(ca_host_normalize(host, out, sizeof(out), &family), -EINVAL);
	memset(host, 'a', sizeof(host));	/* 300 in labels of 50 */
	for (int i = 50; i < 300; i += 51)
		host[i] = '.';
	host[300] = '\0';
	cr_expect_eq(ca_host_normalize(host, out, sizeof(out), &family), -EINVAL);
	cr_expect_eq(ca_host_normalize("a.example", out, 16, &family), -EINVAL, "outlen");
}

Test(ca, leaf_refuses_hostile_names_without_echoing_them)
{
	static const char *const bad[] = { "a/../b", "", "x\n", "*.example.com", "evil\x1b[2J" };
	struct ca *ca = open_local();

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		err[0] = '\0';
		cr_expect_null(ca_leaf(ca, bad[i], 0, now_s(), err, sizeof(err)));
		cr_expect_neq(err[0], '\0');
		cr_expect_null(strstr(err, bad[i][0] ? bad[i] : "\x01"), "echoed: %s", err);
	}
	cr_expect_eq(ca_leaf_cached(ca), 0);
	ca_free(ca);
}

/* --- client certificates ------------------------------------------------------------- */

Test(ca, client_cert_carries_the_spiffe_id)
{
	static const char id[] = "spiffe://example.org/billing";
	struct ca *ca = open_local();
	int64_t now = now_s();
	struct ca_cert *c = ca_client_cert(ca, id, 0, now, err, sizeof(err));
	GENERAL_NAME *gn;
	char cn[64] = "";

	cr_assert_not_null(c, "%s", err);
	gn = only_san(c->cert, GEN_URI, NULL);
	cr_expect_str_eq((const char *)ASN1_STRING_get0_data(gn->d.uniformResourceIdentifier),
			 id);
	cr_expect(has_eku(c->cert, XKU_SSL_CLIENT));
	cr_expect_not(has_eku(c->cert, XKU_SSL_SERVER));
	cr_expect_eq(X509_get_key_usage(c->cert), KU_DIGITAL_SIGNATURE);
	X509_NAME_get_text_by_NID(X509_get_subject_name(c->cert), NID_commonName, cn, sizeof(cn));
	cr_expect_str_eq(cn, "billing");
	cr_expect_eq(c->not_after, now + CA_CLIENT_TTL_S);
	cr_expect_eq(c->not_before, now - 60);
	cr_expect_eq(verify(c, ca_cert(ca), X509_PURPOSE_SSL_CLIENT), 0);
	cr_expect_neq(verify(c, ca_cert(ca), X509_PURPOSE_SSL_SERVER), 0);
	cr_expect_eq(ca_leaf_cached(ca), 0, "client certs are not cached here");
	ca_cert_put(c);
	ca_free(ca);
}

Test(ca, client_cert_refuses_bad_spiffe_ids)
{
	static const char *const bad[] = {
		"", "billing", "spiffe://", "spiffe://example.org", "spiffe://example.org/",
		"spiffe://Example.org/x", "https://example.org/x", "SPIFFE://example.org/x",
		"spiffe://example.org/a/../b", "spiffe://example.org/a/./b",
		"spiffe://example.org//a", "spiffe://example.org/a?b", "spiffe://example.org/a#b",
		"spiffe://user@example.org/a", "spiffe://example.org:8443/a",
		"spiffe://example.org/a%2fb", "spiffe://example.org/a\n",
	};
	struct ca *ca = open_local();

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		cr_expect_null(ca_client_cert(ca, bad[i], 0, now_s(), err, sizeof(err)), "%s",
			       bad[i]);
	cr_expect_null(ca_client_cert(ca, NULL, 0, now_s(), err, sizeof(err)));
	ca_free(ca);
}

/* --- RFC 8705 thumbprint ------------------------------------------------------------- */

Test(ca, thumbprint_is_base64url_sha256_of_der)
{
	struct ca *ca = open_local();
	struct ca_cert *c = ca_client_cert(ca, "spiffe://example.org/ns/prod/billing", 0,
					   now_s(), err, sizeof(err));
	unsigned char *der = NULL, md[32];
	char tp[CA_THUMBPRINT_LEN], want[64];
	int n;

	cr_assert_not_null(c, "%s", err);
	cr_assert_eq(ca_cert_thumbprint(c, tp, sizeof(tp)), 0);
	/* independently: DER, SHA-256, base64 -> base64url without padding */
	n = i2d_X509(c->cert, &der);
	cr_assert_gt(n, 0);
	cr_assert_eq(EVP_Digest(der, (size_t)n, md, NULL, EVP_sha256(), NULL), 1);
	EVP_EncodeBlock((unsigned char *)want, md, sizeof(md));
	for (char *p = want; *p; p++)
		*p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
	*strchr(want, '=') = '\0';
	cr_expect_str_eq(tp, want);
	cr_expect_eq(strlen(tp), 43);
	cr_expect_eq(ca_cert_thumbprint(c, tp, 43), -ENOSPC);
	OPENSSL_free(der);
	ca_cert_put(c);
	ca_free(ca);
}

/* --- what openssl(1) says -------------------------------------------------------------- */

static void write_file(const char *path, const char *s)
{
	FILE *f = fopen(path, "w");

	cr_assert_not_null(f);
	cr_assert_eq(fputs(s, f), strlen(s) ? 1 : 0);
	fclose(f);
}

/* Run /usr/bin/openssl with argv (fork/exec, no shell); its exit status. */
static int run_openssl(char *const argv[])
{
	pid_t pid = fork();
	int st = 0, fd;

	cr_assert_geq(pid, 0);
	if (pid == 0) {
		fd = open("/dev/null", O_WRONLY);
		dup2(fd, 1);
		dup2(fd, 2);
		execv("/usr/bin/openssl", argv);
		_exit(127);
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st));
	return WEXITSTATUS(st);
}

static void write_leaf(const char *path, const struct ca_cert *c)
{
	FILE *f = fopen(path, "w");

	cr_assert_not_null(f);
	cr_assert(PEM_write_X509(f, c->cert));
	for (int i = 0; i < sk_X509_num(c->chain); i++)
		cr_assert(PEM_write_X509(f, sk_X509_value(c->chain, i)));
	fclose(f);
}

Test(ca, openssl_verify_accepts_a_minted_leaf)
{
	struct ca *ca = open_local(), *other;
	struct ca_cert *leaf = ca_leaf(ca, "api.example.org", 0, now_s(), err, sizeof(err));
	char cafile[256], leafpem[256], otherdir[256], *pem = ca_cert_pem(ca);
	char *ok[] = { "openssl", "verify", "-purpose", "sslserver", "-verify_hostname",
		       "api.example.org", "-CAfile", cafile, leafpem, NULL };
	char *wrong_host[] = { "openssl", "verify", "-verify_hostname", "evil.example.org",
			       "-CAfile", cafile, leafpem, NULL };

	cr_assert(leaf && pem, "%s", err);
	snprintf(cafile, sizeof(cafile), "%s/ca.pem", tmpdir);
	snprintf(leafpem, sizeof(leafpem), "%s/leaf.pem", tmpdir);
	write_file(cafile, pem);
	write_leaf(leafpem, leaf);
	cr_expect_eq(run_openssl(ok), 0, "openssl verify refused the leaf");
	cr_expect_neq(run_openssl(wrong_host), 0);
	/* another CA's root does not vouch for it */
	snprintf(otherdir, sizeof(otherdir), "%s/other", tmpdir);
	other = ca_open(otherdir, NULL, NULL, err, sizeof(err));
	cr_assert_not_null(other, "%s", err);
	free(pem);
	pem = ca_cert_pem(other);
	write_file(cafile, pem);
	cr_expect_neq(run_openssl(ok), 0, "a foreign CA verified our leaf");
	free(pem);
	ca_free(other);
	ca_cert_put(leaf);
	ca_free(ca);
}

Test(ca, openssl_verify_accepts_leaf_of_imported_intermediate)
{
	struct org o;
	struct ca *ca;
	struct ca_cert *leaf;
	char rootpem[256], leafpem[256], chainpem[256];
	char *argv[] = { "openssl", "verify", "-purpose", "sslserver", "-CAfile", rootpem,
			 "-untrusted", chainpem, leafpem, NULL };

	org_make(&o, 1, 86400);
	ca = ca_open(NULL, o.cert, o.key, err, sizeof(err));
	cr_assert_not_null(ca, "%s", err);
	leaf = ca_leaf(ca, "10.9.8.7", 0, now_s(), err, sizeof(err));
	cr_assert_not_null(leaf, "%s", err);
	snprintf(rootpem, sizeof(rootpem), "%s/root.pem", tmpdir);
	snprintf(chainpem, sizeof(chainpem), "%s/chain.pem", tmpdir);
	snprintf(leafpem, sizeof(leafpem), "%s/leaf.pem", tmpdir);
	write_pem_certs(rootpem, o.root, NULL);
	write_pem_certs(chainpem, sk_X509_value(leaf->chain, 0), NULL);
	write_pem_certs(leafpem, leaf->cert, NULL);
	cr_expect_eq(run_openssl(argv), 0);
	ca_cert_put(leaf);
	ca_free(ca);
	org_free(&o);
}
