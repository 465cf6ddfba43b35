// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Copyright (c) 2026 The lanyard authors */
/*
 * Certificate fixtures of the TLS tests (see tlsfix.h): keys, X.509 v3 certificates and
 * their PEM files, made with the OpenSSL 3 C API.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "lib/harness.h"
#include "lib/tlsfix.h"

#define DAY (24L * 3600)
#define SAN_MAX 4096

struct tlsfix_ca {
	X509 *cert;
	EVP_PKEY *key;
	STACK_OF(X509) *chain; /* intermediates from this CA up to, not including, the root */
	char *cert_path, *key_path;
};

static unsigned int file_seq;

static int ssl_fail(const char *what)
{
	fprintf(stderr, "tlsfix: %s failed:\n", what);
	ERR_print_errors_fp(stderr);
	return -EIO;
}

/* <tmpdir>/tls-NN-<cn with [^A-Za-z0-9.] as '-'>.<ext>; the same NN for a cert and its key. */
static char *fix_path(unsigned int seq, const char *cn, const char *ext)
{
	char slug[48];
	size_t i;

	for (i = 0; cn[i] && i < sizeof(slug) - 1; i++)
		slug[i] = isalnum((unsigned char)cn[i]) || cn[i] == '.' ? cn[i] : '-';
	slug[i] = '\0';
	return h_path("tls-%02u-%s.%s", seq, slug, ext);
}

static EVP_PKEY *key_new(bool rsa)
{
	EVP_PKEY *k = rsa ? EVP_RSA_gen(2048) : EVP_EC_gen("P-256");

	if (!k)
		ssl_fail("key generation");
	return k;
}

/* One v3 extension in openssl.cnf syntax ("critical,CA:TRUE"); @ctx names issuer/subject. */
static int add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
	int ok = ext && X509_add_ext(x, ext, -1);

	X509_EXTENSION_free(ext);
	return ok ? 0 : ssl_fail(value);
}

/* Random positive serial of at most 127 bits (RFC 5280 4.1.2.2: at most 20 octets). */
static int set_serial(X509 *x)
{
	BIGNUM *bn = BN_new();
	int ok = bn && BN_rand(bn, 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) &&
		 BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));

	BN_free(bn);
	return ok ? 0 : ssl_fail("serial");
}

/*
 * The fields every certificate shares: version 3, serial, validity (seconds from now),
 * subject "CN=@cn,O=lanyard tests", issuer (@issuer, or the subject: self-signed), key.
 */
static X509 *cert_base(const char *cn, long nb, long na, X509 *issuer, EVP_PKEY *pub)
{
	X509 *x = X509_new();
	X509_NAME *name = x ? X509_get_subject_name(x) : NULL;

	if (!x || !X509_set_version(x, X509_VERSION_3) || set_serial(x) ||
	    !X509_gmtime_adj(X509_getm_notBefore(x), nb) ||
	    !X509_gmtime_adj(X509_getm_notAfter(x), na) ||
	    !X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
					(const unsigned char *)"lanyard tests", -1, -1, 0) ||
	    !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn,
					-1, -1, 0) ||
	    !X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name) ||
	    !X509_set_pubkey(x, pub)) {
		ssl_fail("certificate fields");
		X509_free(x);
		return NULL;
	}
	return x;
}

/* Key identifiers (RFC 5280 4.2.1.1, 4.2.1.2): strict verifiers want them for chain building. */
static int add_key_ids(X509 *x, X509 *issuer)
{
	X509V3_CTX ctx;

	X509V3_set_ctx(&ctx, issuer ?: x, x, NULL, NULL, 0);
	return add_ext(x, &ctx, NID_subject_key_identifier, "hash") ?:
	       add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always");
}

static int sign(X509 *x, EVP_PKEY *key)
{
	return X509_sign(x, key, EVP_sha256()) > 0 ? 0 : ssl_fail("X509_sign");
}

/* PEM of @x then @chain (may be NULL) into @path, mode 0644. */
static int write_certs(const char *path, X509 *x, STACK_OF(X509) *chain)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *data = NULL;
	int i, err = -EIO;
	long n;

	if (!bio || !PEM_write_bio_X509(bio, x))
		goto cleanup;
	for (i = 0; i < sk_X509_num(chain); i++)
		if (!PEM_write_bio_X509(bio, sk_X509_value(chain, i)))
			goto cleanup;
	n = BIO_get_mem_data(bio, &data);
	err = h_write_filef(path, 0644, "%.*s", (int)n, data);
cleanup:
	BIO_free(bio);
	return err == -EIO ? ssl_fail(path) : err;
}

/* Unencrypted PKCS#8 PEM into @path, mode 0600 (lanyardd refuses readable key files). */
static int write_key(const char *path, EVP_PKEY *key)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *data = NULL;
	int err = -EIO;
	long n;

	if (bio && PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL)) {
		n = BIO_get_mem_data(bio, &data);
		err = h_write_filef(path, 0600, "%.*s", (int)n, data);
	}
	BIO_free(bio);
	return err == -EIO ? ssl_fail(path) : err;
}

/* A CA signed by @parent, or a root when @parent is NULL. */
static struct tlsfix_ca *ca_make(struct tlsfix_ca *parent, const char *cn)
{
	struct tlsfix_ca *ca = calloc(1, sizeof(*ca));
	unsigned int seq = ++file_seq;
	X509V3_CTX ctx;

	if (!ca || !cn || !(ca->key = key_new(false)))
		goto fail;
	ca->cert = cert_base(cn, -30 * DAY, 365 * DAY, parent ? parent->cert : NULL, ca->key);
	ca->chain = parent && parent->chain ? X509_chain_up_ref(parent->chain) : sk_X509_new_null();
	if (!ca->cert || !ca->chain)
		goto fail;
	X509V3_set_ctx(&ctx, parent ? parent->cert : ca->cert, ca->cert, NULL, NULL, 0);
	if (add_ext(ca->cert, &ctx, NID_basic_constraints, "critical,CA:TRUE") ||
	    add_ext(ca->cert, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign") ||
	    add_key_ids(ca->cert, parent ? parent->cert : NULL) ||
	    sign(ca->cert, parent ? parent->key : ca->key))
		goto fail;
	/* leaves carry the intermediates nearest first (RFC 8446 4.4.2) */
	if (parent && (!X509_up_ref(ca->cert) || !sk_X509_unshift(ca->chain, ca->cert)))
		goto fail;
	ca->cert_path = fix_path(seq, cn, "crt");
	ca->key_path = fix_path(seq, cn, "key");
	if (write_certs(ca->cert_path, ca->cert, NULL) || write_key(ca->key_path, ca->key))
		goto fail;
	return ca;
fail:
	tlsfix_ca_free(ca);
	return NULL;
}

struct tlsfix_ca *tlsfix_ca_new(const char *cn)
{
	return ca_make(NULL, cn);
}

struct tlsfix_ca *tlsfix_ca_intermediate(struct tlsfix_ca *parent, const char *cn)
{
	return parent ? ca_make(parent, cn) : NULL;
}

void tlsfix_ca_free(struct tlsfix_ca *ca)
{
	if (!ca)
		return;
	X509_free(ca->cert);
	EVP_PKEY_free(ca->key);
	sk_X509_pop_free(ca->chain, X509_free);
	free(ca);
}

const char *tlsfix_ca_cert_path(const struct tlsfix_ca *ca)
{
	return ca ? ca->cert_path : NULL;
}

const char *tlsfix_ca_key_path(const struct tlsfix_ca *ca)
{
	return ca ? ca->key_path : NULL;
}

/* Append "<kind>:<value>" to a subjectAltName spec; the spec is comma-separated. */
static int san_add(char *san, const char *kind, const char *value)
{
	size_t len = strlen(san);
	int n;

	if (strchr(value, ',') || !*value)
		return -EINVAL;
	n = snprintf(san + len, SAN_MAX - len, "%s%s:%s", len ? "," : "", kind, value);
	return n < 0 || (size_t)n >= SAN_MAX - len ? -E2BIG : 0;
}

/* "DNS:a,IP:127.0.0.1,URI:spiffe://..." for @o; IP literals become iPAddress names. */
static int san_spec(const struct tlsfix_leaf *o, char *san)
{
	unsigned char ip[16];
	int i, err = 0;

	san[0] = '\0';
	for (i = 0; o->names && o->names[i] && !err; i++) {
		bool is_ip = inet_pton(AF_INET, o->names[i], ip) == 1 ||
			     inet_pton(AF_INET6, o->names[i], ip) == 1;

		err = san_add(san, is_ip ? "IP" : "DNS", o->names[i]);
	}
	for (i = 0; o->uris && o->uris[i] && !err; i++)
		err = san_add(san, "URI", o->uris[i]);
	return err;
}

/* The leaf's extensions; @issuer is NULL for a self-signed leaf. */
static int leaf_exts(X509 *x, X509 *issuer, const struct tlsfix_leaf *o, const char *san)
{
	X509V3_CTX ctx;

	X509V3_set_ctx(&ctx, issuer ?: x, x, NULL, NULL, 0);
	return add_ext(x, &ctx, NID_basic_constraints, "critical,CA:FALSE") ?:
	       add_ext(x, &ctx, NID_key_usage,
		       o->rsa ? "critical,digitalSignature,keyEncipherment" :
				"critical,digitalSignature") ?:
	       add_ext(x, &ctx, NID_ext_key_usage, o->client ? "clientAuth" : "serverAuth") ?:
	       (*san ? add_ext(x, &ctx, NID_subject_alt_name, san) : 0) ?:
	       add_key_ids(x, issuer);
}

int tlsfix_issue(struct tlsfix_ca *ca, const struct tlsfix_leaf *o, char **cert_path,
		 char **key_path)
{
	long nb = o->not_before, na = o->not_after;
	const char *cn = o->cn;
	EVP_PKEY *key = NULL;
	unsigned int seq;
	char *cp, *kp;
	X509 *x = NULL;
	char *san;
	int err;

	if (!cn)
		cn = o->names && o->names[0] ? o->names[0] : o->uris ? o->uris[0] : NULL;
	san = calloc(1, SAN_MAX);
	if (!san || !cn)
		err = san ? -EINVAL : -ENOMEM;
	else
		err = san_spec(o, san);
	if (err)
		goto cleanup;
	if (!nb && !na)
		nb = -3600, na = DAY;
	err = -EIO;
	key = key_new(o->rsa);
	x = key ? cert_base(cn, nb, na, ca ? ca->cert : NULL, key) : NULL;
	if (!x || leaf_exts(x, ca ? ca->cert : NULL, o, san) || sign(x, ca ? ca->key : key))
		goto cleanup;
	seq = ++file_seq;
	cp = fix_path(seq, cn, "crt");
	kp = fix_path(seq, cn, "key");
	err = write_certs(cp, x, ca ? ca->chain : NULL) ?: write_key(kp, key);
	if (!err && cert_path)
		*cert_path = cp;
	if (!err && key_path)
		*key_path = kp;
cleanup:
	X509_free(x);
	EVP_PKEY_free(key);
	free(san);
	return err;
}

int tlsfix_server_cert(struct tlsfix_ca *ca, const char *const names[], char **cert_path,
		       char **key_path)
{
	struct tlsfix_leaf o = { .names = names };

	return ca ? tlsfix_issue(ca, &o, cert_path, key_path) : -EINVAL;
}

int tlsfix_expired_cert(struct tlsfix_ca *ca, const char *const names[], char **cert_path,
			char **key_path)
{
	struct tlsfix_leaf o = { .names = names, .not_before = -2 * DAY, .not_after = -DAY };

	return ca ? tlsfix_issue(ca, &o, cert_path, key_path) : -EINVAL;
}

int tlsfix_self_signed(const char *const names[], char **cert_path, char **key_path)
{
	struct tlsfix_leaf o = { .names = names };

	return tlsfix_issue(NULL, &o, cert_path, key_path);
}

int tlsfix_wrong_name_cert(struct tlsfix_ca *ca, char **cert_path, char **key_path)
{
	static const char *const names[] = { TLSFIX_WRONG_NAME, NULL };

	return tlsfix_server_cert(ca, names, cert_path, key_path);
}

int tlsfix_client_cert(struct tlsfix_ca *ca, const char *cn, const char *uri, char **cert_path,
		       char **key_path)
{
	const char *const uris[] = { uri, NULL };
	struct tlsfix_leaf o = { .cn = cn, .uris = uris, .client = true };

	return ca && cn ? tlsfix_issue(ca, &o, cert_path, key_path) : -EINVAL;
}

static long long asn1_unix(const ASN1_TIME *t)
{
	struct tm tm;

	return ASN1_TIME_to_tm(t, &tm) ? (long long)timegm(&tm) : 0;
}

int tlsfix_cert_info(const char *cert_path, struct tlsfix_info *info)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0, i;
	BIGNUM *bn = NULL;
	char *serial = NULL;
	BIO *bio = BIO_new_file(cert_path, "r");
	X509 *x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
	int err = -EIO;

	memset(info, 0, sizeof(*info));
	if (!x || !X509_digest(x, EVP_sha256(), md, &mdlen))
		goto cleanup;
	for (i = 0; i < mdlen && 2 * i + 2 < sizeof(info->sha256); i++) {
		info->sha256[2 * i] = hex[md[i] >> 4];
		info->sha256[2 * i + 1] = hex[md[i] & 15];
	}
	bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
	serial = bn ? BN_bn2hex(bn) : NULL;
	if (!serial)
		goto cleanup;
	for (i = 0; serial[i] && i < sizeof(info->serial) - 1; i++)
		info->serial[i] = (char)tolower((unsigned char)serial[i]);
	info->not_before = asn1_unix(X509_get0_notBefore(x));
	info->not_after = asn1_unix(X509_get0_notAfter(x));
	err = 0;
cleanup:
	OPENSSL_free(serial);
	BN_free(bn);
	X509_free(x);
	BIO_free(bio);
	return err ? ssl_fail(cert_path) : 0;
}
