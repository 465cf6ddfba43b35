// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Copyright (c) 2026 The lanyard authors */
/*
 * The local CA: its key and certificate files (created once, or imported),
 * minting of interception leaves (cached per host, LRU) and of workload client
 * certificates, and the host-name rules that keep a hostile SNI out of both.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "ca.h"
#include "jwt.h"
#include "log.h"
#include "secret.h"

#define CA_ROOT_DAYS	3650			/* the local root: 10 years */
#define CA_BACKDATE_S	60			/* notBefore = now - 60 s: clock skew */
#define CA_KEY_MAX	(64 * 1024)		/* a PEM RSA-8192 key is ~6.5 KiB */
#define CA_CERT_MAX	(1024 * 1024)		/* a certificate file with its chain */
#define CA_SERIAL_LEN	16			/* 128-bit serials (RFC 5280 4.1.2.2: <= 20) */
#define CA_CN_MAX	64			/* ub-common-name, RFC 5280 A.1 */
#define CA_SPIFFE_MAX	2048			/* SPIFFE-ID 2.3 */
#define CA_TD_MAX	255			/* SPIFFE-ID 2.1 */

/* read_file() flags */
#define RF_SECRET	0x1	/* a private key: ours, regular, mode & 077 == 0, secure heap */
#define RF_NOFOLLOW	0x2	/* refuse a symlink (files in our own state_dir) */

struct leaf_slot {
	char host[CA_HOST_MAX + 1];
	struct ca_cert *c;	/* NULL: slot free */
	uint32_t hash;
	int32_t next;		/* bucket chain */
	int32_t lru_prev, lru_next;
};

struct ca {
	X509 *cert;		/* the signing CA */
	EVP_PKEY *key;
	const EVP_MD *md;	/* NULL for EdDSA-style keys is refused at open */
	STACK_OF(X509) *chain;	/* sent after every leaf: empty for the local root */
	X509 *anchor;		/* the self-signed root a host trusts, or NULL */
	int64_t not_after;	/* of the CA: no leaf outlives it */
	int imported;

	/* leaf cache: chained hash over slots[], LRU list through the slots */
	struct leaf_slot *slots;
	int32_t *buckets;
	size_t cache_max, nbuckets, nslots, ncached;
	int32_t lru_head, lru_tail, free_head;
	uint64_t seed;		/* keyed hash: a workload cannot pick colliding names */
};

/* --- errors and small helpers ------------------------------------------------------- */

/* Append OpenSSL's first queued reason, and clear the queue. */
static void ssl_err(char *err, size_t errlen, const char *what)
{
	unsigned long e = ERR_get_error();
	char buf[160];

	if (e)
		ERR_error_string_n(e, buf, sizeof(buf));
	snprintf(err, errlen, "%s%s%s", what, e ? ": " : "", e ? buf : "");
	ERR_clear_error();
}

/* never prompt on a terminal for an encrypted key: refuse it */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

static int64_t asn1_time_unix(const ASN1_TIME *t)
{
	struct tm tm;

	if (!t || !ASN1_TIME_to_tm(t, &tm))
		return 0;
	return (int64_t)timegm(&tm);
}

static void hex(const unsigned char *in, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * len] = '\0';
}

/* --- files ------------------------------------------------------------------------ */

/*
 * Read a whole file (at most max - 1 bytes) into a NUL-terminated buffer:
 * OPENSSL_secure_malloc'd with RF_SECRET (free with OPENSSL_secure_clear_free
 * (buf, max)), malloc'd otherwise.  0, -ENOENT (message set too) or -errno.
 */
static int read_file(const char *path, int flags, size_t max, char **out, size_t *outlen,
		     char *err, size_t errlen)
{
	const char *what = flags & RF_SECRET ? "CA key" : "CA certificate";
	int oflags = O_RDONLY | O_NONBLOCK | O_CLOEXEC;	/* a FIFO won't hang us */
	char *buf = NULL;
	struct stat st;
	ssize_t n = 0;
	int fd, rc;

	*out = NULL;
	if (flags & (RF_SECRET | RF_NOFOLLOW))
		oflags |= O_NOFOLLOW;
	fd = open(path, oflags);
	if (fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "%s %s: %s", what, path,
			 rc == -ELOOP ? "not a regular file (symlink)" : strerror(-rc));
		return rc;
	}
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		snprintf(err, errlen, "%s %s: %s", what, path, strerror(-rc));
		goto cleanup;
	}
	rc = flags & RF_SECRET ? secret_file_check(path, "CA key", &st, err, errlen) : 0;
	if (!rc && !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s %s: not a regular file", what, path);
		rc = -EPERM;
	}
	if (rc)
		goto cleanup;
	buf = flags & RF_SECRET ? OPENSSL_secure_malloc(max) : malloc(max);
	if (!buf) {
		rc = -ENOMEM;
		snprintf(err, errlen, "%s %s: out of memory", what, path);
		goto cleanup;
	}
	do
		n = read(fd, buf, max);
	while (n < 0 && errno == EINTR);
	if (n <= 0 || (size_t)n >= max) {
		rc = -EINVAL;
		snprintf(err, errlen, "%s %s: %s", what, path,
			 n < 0 ? strerror(errno) : n ? "too large" : "empty");
		goto cleanup;
	}
	buf[n] = '\0';
	*out = buf;
	*outlen = (size_t)n;
	buf = NULL;
cleanup:
	if (flags & RF_SECRET)
		OPENSSL_secure_clear_free(buf, max);
	else
		free(buf);
	close(fd);
	return rc;
}

/* Load a private key file (see RF_SECRET).  NULL with *rc = -errno and err on failure. */
static EVP_PKEY *key_load(const char *path, int *rc, char *err, size_t errlen)
{
	EVP_PKEY *pkey = NULL;
	char *pem = NULL;
	size_t len = 0;
	BIO *bio;

	*rc = read_file(path, RF_SECRET, CA_KEY_MAX, &pem, &len, err, errlen);
	if (*rc)
		return NULL;
	bio = BIO_new_mem_buf(pem, (int)len);
	if (bio)
		pkey = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
	BIO_free(bio);
	OPENSSL_secure_clear_free(pem, CA_KEY_MAX);
	if (!pkey) {
		*rc = -EINVAL;
		ERR_clear_error();
		snprintf(err, errlen, "CA key %s: not an unencrypted PEM private key", path);
	}
	return pkey;
}

/*
 * Every PEM certificate in a file, in file order (the CA first, then its
 * chain).  NULL with *rc = -errno and err on failure.  Caller frees with
 * sk_X509_pop_free(.., X509_free).
 */
static STACK_OF(X509) *certs_load(const char *path, int flags, int *rc, char *err,
				  size_t errlen)
{
	STACK_OF(X509) *sk = NULL;
	char *pem = NULL;
	size_t len = 0;
	BIO *bio = NULL;
	X509 *x;

	*rc = read_file(path, flags, CA_CERT_MAX, &pem, &len, err, errlen);
	if (*rc)
		return NULL;
	*rc = -ENOMEM;
	bio = BIO_new_mem_buf(pem, (int)len);
	sk = sk_X509_new_null();
	if (!bio || !sk) {
		snprintf(err, errlen, "CA certificate %s: out of memory", path);
		goto cleanup;
	}
	while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)))
		if (!sk_X509_push(sk, x)) {
			X509_free(x);
			goto cleanup;
		}
	ERR_clear_error();	/* the read that ended the loop queued "no start line" */
	*rc = sk_X509_num(sk) ? 0 : -EINVAL;
	if (*rc)
		snprintf(err, errlen, "CA certificate %s: no PEM certificate in it", path);
cleanup:
	BIO_free(bio);
	free(pem);
	if (*rc) {
		sk_X509_pop_free(sk, X509_free);
		sk = NULL;
	}
	return sk;
}

/*
 * Write a private key (mode 0600) or a certificate (0644) as PEM to a new
 * file: O_EXCL, the mode forced whatever the umask, fsync'd.  0 or -errno;
 * the file is removed on failure.
 */
static int file_write_new(const char *path, EVP_PKEY *key, X509 *cert)
{
	mode_t mode = key ? 0600 : 0644;
	BIO *bio = NULL;
	int fd, err = 0;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0)
		return -errno;
	if (fchmod(fd, mode) < 0) {
		err = -errno;
		goto cleanup;
	}
	/* straight to the fd: no copy of the key's PEM in a memory BIO */
	bio = BIO_new_fd(fd, BIO_NOCLOSE);
	if (!bio || !(key ? PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL)
			  : PEM_write_bio_X509(bio, cert)) ||
	    BIO_flush(bio) != 1) {
		err = -EIO;
		goto cleanup;
	}
	if (fsync(fd) < 0)
		err = -errno;
cleanup:
	BIO_free(bio);
	if (close(fd) < 0 && !err)
		err = -errno;
	if (err)
		unlink(path);
	return err;
}

/*
 * Publish a key or a certificate at path atomically: written under a private
 * temporary name, then link()ed, which fails with EEXIST rather than replace
 * what another lanyardd published meanwhile.  A crash leaves a stray
 * temporary file, never a half-written one.  0, -EEXIST or -errno.
 */
static int file_publish(const char *dir, const char *path, EVP_PKEY *key, X509 *cert)
{
	char tmp[PATH_MAX];
	int rc, dfd;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	unlink(tmp);	/* a leftover of a crashed lanyardd that had our pid */
	rc = file_write_new(tmp, key, cert);
	if (rc == 0 && link(tmp, path) < 0)
		rc = -errno;
	unlink(tmp);
	if (rc == 0) {
		dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd >= 0) {
			fsync(dfd);	/* the new name survives a power cut */
			close(dfd);
		}
	}
	return rc;
}

/* --- certificate building ---------------------------------------------------------- */

/* The digest to sign with for this CA key; NULL when the key type is refused. */
static const EVP_MD *md_for_key(EVP_PKEY *key)
{
	if (EVP_PKEY_is_a(key, "RSA"))
		return EVP_PKEY_get_bits(key) >= 2048 ? EVP_sha256() : NULL;
	if (!EVP_PKEY_is_a(key, "EC"))
		return NULL;	/* EdDSA / DSA leaves: not accepted by TLS clients at large */
	/* RFC 5480 4: the hash sized to the curve */
	switch (EVP_PKEY_get_bits(key)) {
	case 256: return EVP_sha256();
	case 384: return EVP_sha384();
	case 521: return EVP_sha512();
	default: return NULL;
	}
}

/* A fresh positive 128-bit serial (hex into out[2 * CA_SERIAL_LEN + 1]). 0 or -EIO. */
static int serial_set(X509 *x, char *out)
{
	unsigned char raw[CA_SERIAL_LEN];
	ASN1_INTEGER *sn = NULL;
	BIGNUM *bn = NULL;
	int rc = -EIO;

	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return -EIO;
	/* positive and always 16 octets long: top bit clear, next bit set */
	raw[0] = (unsigned char)((raw[0] & 0x7f) | 0x40);
	bn = BN_bin2bn(raw, sizeof(raw), NULL);
	sn = bn ? BN_to_ASN1_INTEGER(bn, NULL) : NULL;
	if (sn && X509_set_serialNumber(x, sn) == 1)
		rc = 0;
	hex(raw, sizeof(raw), out);
	ASN1_INTEGER_free(sn);
	BN_free(bn);
	return rc;
}

/* One extension from its openssl.cnf form (constant values only). 0 or -EINVAL. */
static int ext_add(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
	ext = X509V3_EXT_nconf_nid(NULL, &ctx, nid, value);
	ok = ext && X509_add_ext(x, ext, -1) == 1;
	X509_EXTENSION_free(ext);
	return ok ? 0 : -EINVAL;
}

/*
 * subjectAltName with one name, built as a structure rather than parsed
 * from "DNS:..." text so that no byte of a name is ever read as syntax.
 * Critical when the subject is empty (RFC 5280 4.2.1.6).  0 or -EINVAL.
 */
static int san_add(X509 *x, int type, const void *val, size_t len, int critical)
{
	GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
	GENERAL_NAME *gn = GENERAL_NAME_new();
	ASN1_STRING *s = type == GEN_IPADD ? ASN1_OCTET_STRING_new() : ASN1_IA5STRING_new();
	int rc = -EINVAL;

	if (!gens || !gn || !s || len > INT_MAX || !ASN1_STRING_set(s, val, (int)len))
		goto cleanup;
	GENERAL_NAME_set0_value(gn, type, s);
	s = NULL;
	if (!sk_GENERAL_NAME_push(gens, gn))
		goto cleanup;
	gn = NULL;
	if (X509_add1_ext_i2d(x, NID_subject_alt_name, gens, critical, X509V3_ADD_DEFAULT) == 1)
		rc = 0;
cleanup:
	ASN1_STRING_free(s);
	GENERAL_NAME_free(gn);
	GENERAL_NAMES_free(gens);
	return rc;
}

/*
 * The common fields: v3, a random serial, [nb, na], subject CN (none when
 * cn is NULL), issuer, public key.  0 or -errno.
 */
static int cert_base(X509 *x, X509 *issuer, EVP_PKEY *pub, const char *cn, int64_t nb,
		     int64_t na, char *serial)
{
	X509_NAME *name = X509_get_subject_name(x);

	if (X509_set_version(x, X509_VERSION_3) != 1 || serial_set(x, serial) ||
	    !ASN1_TIME_set(X509_getm_notBefore(x), (time_t)nb) ||
	    !ASN1_TIME_set(X509_getm_notAfter(x), (time_t)na) ||
	    X509_set_pubkey(x, pub) != 1)
		return -EIO;
	if (cn && !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
					      (const unsigned char *)cn, -1, -1, 0))
		return -EINVAL;
	if (X509_set_issuer_name(x, X509_get_subject_name(issuer ? issuer : x)) != 1)
		return -EIO;
	return 0;
}

/*
 * "lanyard local CA <hostname> <8 hex of the key id>": the host says whose
 * CA it is in a trust-store listing, the key id tells a regenerated CA from
 * the one it replaced.
 */
static void root_cn(EVP_PKEY *key, char *cn, size_t len)
{
	unsigned char md[EVP_MAX_MD_SIZE], *der = NULL;
	unsigned int mdlen = 0;
	char host[HOST_NAME_MAX + 1] = "", clean[33], id[9] = "00000000";
	size_t j = 0;
	int n;

	gethostname(host, sizeof(host) - 1);
	for (size_t i = 0; host[i] && j < sizeof(clean) - 1; i++)
		if ((host[i] >= 'a' && host[i] <= 'z') || (host[i] >= 'A' && host[i] <= 'Z') ||
		    (host[i] >= '0' && host[i] <= '9') || host[i] == '-' || host[i] == '.')
			clean[j++] = host[i];
	clean[j] = '\0';
	n = i2d_PUBKEY(key, &der);
	if (n > 0 && EVP_Digest(der, (size_t)n, md, &mdlen, EVP_sha256(), NULL))
		hex(md, 4, id);
	OPENSSL_free(der);
	snprintf(cn, len, "lanyard local CA %s %s", j ? clean : "host", id);
}

/* A self-signed root for key (RFC 5280 4.2.1.9, 4.2.1.3).  NULL + err. */
static X509 *root_make(EVP_PKEY *key, char *err, size_t errlen)
{
	int64_t now = (int64_t)time(NULL);
	char cn[CA_CN_MAX + 1], serial[2 * CA_SERIAL_LEN + 1];
	X509 *x = X509_new();

	root_cn(key, cn, sizeof(cn));
	if (!x || cert_base(x, NULL, key, cn, now - CA_BACKDATE_S,
			    now + (int64_t)CA_ROOT_DAYS * 86400, serial) ||
	    ext_add(x, x, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") ||
	    ext_add(x, x, NID_key_usage, "critical,keyCertSign,cRLSign") ||
	    ext_add(x, x, NID_subject_key_identifier, "hash") ||
	    !X509_sign(x, key, EVP_sha256())) {
		ssl_err(err, errlen, "cannot build the local CA certificate");
		X509_free(x);
		return NULL;
	}
	return x;
}

/* --- opening the CA ---------------------------------------------------------------- */

/*
 * A certificate fit to sign leaves: basicConstraints CA:TRUE (RFC 5280
 * 4.2.1.9), keyCertSign if keyUsage is present (4.2.1.3), within its
 * validity, and matching the key.  0 or -EINVAL with err.
 */
static int ca_cert_check(X509 *x, EVP_PKEY *key, const char *path, char *err, size_t errlen)
{
	int64_t now = (int64_t)time(NULL);
	uint32_t flags = X509_get_extension_flags(x);

	if (!(flags & EXFLAG_CA) || !(flags & EXFLAG_BCONS)) {
		snprintf(err, errlen, "CA certificate %s: not a CA (basicConstraints CA:TRUE "
			 "missing)", path);
		return -EINVAL;
	}
	if ((flags & EXFLAG_KUSAGE) && !(X509_get_key_usage(x) & KU_KEY_CERT_SIGN)) {
		snprintf(err, errlen, "CA certificate %s: keyUsage lacks keyCertSign", path);
		return -EINVAL;
	}
	if (now < asn1_time_unix(X509_get0_notBefore(x)) ||
	    now >= asn1_time_unix(X509_get0_notAfter(x))) {
		snprintf(err, errlen, "CA certificate %s: expired or not yet valid", path);
		return -EINVAL;
	}
	if (X509_check_private_key(x, key) != 1) {
		ERR_clear_error();
		snprintf(err, errlen, "CA certificate %s: does not match its key", path);
		return -EINVAL;
	}
	if (!md_for_key(key)) {
		snprintf(err, errlen, "CA key for %s: only EC P-256/384/521 or RSA >= 2048 "
			 "can sign TLS leaves", path);
		return -EINVAL;
	}
	return 0;
}

static int is_self_signed(X509 *x)
{
	return (X509_get_extension_flags(x) & EXFLAG_SS) != 0;
}

/*
 * The imported chain, when it ends in a root, must lead from the CA to it:
 * otherwise every leaf would fail on clients and we would only learn it there.
 */
static int chain_verify(X509 *cert, STACK_OF(X509) *chain, X509 *anchor, const char *path,
			char *err, size_t errlen)
{
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	int rc = -EINVAL;

	if (!store || !ctx || X509_STORE_add_cert(store, anchor) != 1 ||
	    X509_STORE_CTX_init(ctx, store, cert, chain) != 1) {
		snprintf(err, errlen, "CA certificate %s: out of memory", path);
		goto cleanup;
	}
	if (X509_verify_cert(ctx) == 1)
		rc = 0;
	else
		snprintf(err, errlen, "CA certificate %s: does not chain to the root in the "
			 "file: %s", path,
			 X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
cleanup:
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	return rc;
}

/*
 * Take ownership of cert, key and certs (the rest of the certificate file),
 * check them and set the chain to send and the trust anchor.  0 or -errno.
 */
static int ca_setup(struct ca *ca, X509 *cert, EVP_PKEY *key, STACK_OF(X509) *certs,
		    const char *path, char *err, size_t errlen)
{
	int rc;

	ca->cert = cert;
	ca->key = key;
	ca->chain = sk_X509_new_null();
	if (!ca->chain) {
		sk_X509_pop_free(certs, X509_free);
		return -ENOMEM;
	}
	rc = ca_cert_check(cert, key, path, err, errlen);
	if (!rc && is_self_signed(cert))
		ca->anchor = X509_dup(cert);
	else if (!rc && X509_add_cert(ca->chain, cert, X509_ADD_FLAG_UP_REF) != 1)
		rc = -ENOMEM;
	/* the rest of the file, after the CA: intermediates to send, and maybe the root */
	while (certs && sk_X509_num(certs)) {
		X509 *x = sk_X509_shift(certs);

		if (!rc && is_self_signed(x) && !ca->anchor)
			ca->anchor = X509_dup(x);
		else if (!rc && !is_self_signed(x) &&
			 X509_add_cert(ca->chain, x, X509_ADD_FLAG_UP_REF) != 1)
			rc = -ENOMEM;
		X509_free(x);
	}
	sk_X509_free(certs);
	if (!rc && ca->imported && ca->anchor && !is_self_signed(cert))
		rc = chain_verify(cert, ca->chain, ca->anchor, path, err, errlen);
	if (rc)
		return rc;
	ca->md = md_for_key(key);
	ca->not_after = asn1_time_unix(X509_get0_notAfter(cert));
	if (ca->not_after - (int64_t)time(NULL) < 30 * 86400)
		log_warnx("the CA certificate %s expires in less than 30 days", path);
	return 0;
}

/* Create ca.key + ca.crt (key published first: a crash leaves a key, never a lone cert). */
static int local_create(const char *dir, const char *kpath, const char *cpath, EVP_PKEY *key,
			char *err, size_t errlen)
{
	EVP_PKEY *fresh = NULL;
	X509 *x = NULL;
	int rc;

	if (!key) {
		key = fresh = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
		if (!fresh) {
			ssl_err(err, errlen, "CA key: P-256 key generation failed");
			return -EIO;
		}
		rc = file_publish(dir, kpath, fresh, NULL);
		if (rc) {
			EVP_PKEY_free(fresh);
			if (rc != -EEXIST)
				snprintf(err, errlen, "CA key %s: cannot create: %s", kpath,
					 strerror(-rc));
			return rc;	/* -EEXIST: another lanyardd won; read its key */
		}
		log_info("created the local CA key %s", kpath);
	}
	x = root_make(key, err, errlen);
	rc = x ? file_publish(dir, cpath, NULL, x) : -EIO;
	if (rc && rc != -EEXIST && x)
		snprintf(err, errlen, "CA certificate %s: cannot create: %s", cpath, strerror(-rc));
	else if (!rc)
		log_info("created the local CA certificate %s: install it with `lanyard trust "
			 "install`", cpath);
	X509_free(x);
	EVP_PKEY_free(fresh);
	return rc == -EEXIST ? 0 : rc;
}

/* Load or create state_dir/ca.{key,crt}.  0 or -errno with err. */
static int local_open(struct ca *ca, const char *dir, char *err, size_t errlen)
{
	char kpath[PATH_MAX], cpath[PATH_MAX];
	STACK_OF(X509) *certs = NULL;
	EVP_PKEY *key = NULL;
	int rc = -ENOENT;

	if (snprintf(kpath, sizeof(kpath), "%s/%s", dir, CA_KEY_FILE) >= (int)sizeof(kpath) ||
	    snprintf(cpath, sizeof(cpath), "%s/%s", dir, CA_CERT_FILE) >= (int)sizeof(cpath)) {
		snprintf(err, errlen, "state_dir %s: path too long", dir);
		return -ENAMETOOLONG;
	}
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		rc = -errno;
		snprintf(err, errlen, "state_dir %s: %s", dir, strerror(errno));
		return rc;
	}
	/* three rounds: create the key, create the cert, then read both back */
	for (int round = 0; round < 3 && rc == -ENOENT; round++) {
		EVP_PKEY_free(key);
		key = key_load(kpath, &rc, err, errlen);
		if (rc == -ENOENT && access(cpath, F_OK) == 0) {
			snprintf(err, errlen, "%s exists without %s: restore the key, or remove "
				 "the certificate to create a new CA", cpath, kpath);
			return -EINVAL;
		}
		if (rc == -ENOENT) {
			rc = local_create(dir, kpath, cpath, NULL, err, errlen);
			rc = rc == 0 || rc == -EEXIST ? -ENOENT : rc;
			continue;
		}
		if (rc)
			break;
		certs = certs_load(cpath, RF_NOFOLLOW, &rc, err, errlen);
		if (rc == -ENOENT) {	/* a crash between the two files: same key, new cert */
			rc = local_create(dir, kpath, cpath, key, err, errlen);
			rc = rc ? rc : -ENOENT;
		}
	}
	if (rc) {
		if (rc == -ENOENT)
			snprintf(err, errlen, "CA %s: vanished while being created", kpath);
		EVP_PKEY_free(key);
		sk_X509_pop_free(certs, X509_free);
		return rc;
	}
	return ca_setup(ca, sk_X509_shift(certs), key, certs, cpath, err, errlen);
}

/* Load an imported CA: cert_path (the CA, then its chain) and key_path.  0 or -errno. */
static int imported_open(struct ca *ca, const char *cert_path, const char *key_path,
			 char *err, size_t errlen)
{
	STACK_OF(X509) *certs;
	EVP_PKEY *key;
	int rc;

	key = key_load(key_path, &rc, err, errlen);
	if (!key)
		return rc;
	certs = certs_load(cert_path, 0, &rc, err, errlen);
	if (!certs) {
		EVP_PKEY_free(key);
		return rc;
	}
	ca->imported = 1;
	return ca_setup(ca, sk_X509_shift(certs), key, certs, cert_path, err, errlen);
}

struct ca *ca_open(const char *state_dir, const char *cert_path, const char *key_path,
		   char *err, size_t errlen)
{
	struct ca *ca;
	int rc;

	if (!cert_path != !key_path) {
		snprintf(err, errlen, "an imported CA needs both cert and key");
		return NULL;
	}
	if (!cert_path && !state_dir) {
		snprintf(err, errlen, "no state_dir for the local CA");
		return NULL;
	}
	ca = calloc(1, sizeof(*ca));
	if (!ca) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	ca->cache_max = CA_LEAF_CACHE_MAX;
	ca->lru_head = ca->lru_tail = ca->free_head = -1;
	if (RAND_bytes((unsigned char *)&ca->seed, sizeof(ca->seed)) != 1) {
		snprintf(err, errlen, "no randomness");
		rc = -EIO;
	} else if (cert_path) {
		rc = imported_open(ca, cert_path, key_path, err, errlen);
	} else {
		rc = local_open(ca, state_dir, err, errlen);
	}
	if (rc) {
		if (rc == -ENOMEM)
			snprintf(err, errlen, "out of memory");
		ca_free(ca);
		return NULL;
	}
	return ca;
}

static void cache_clear(struct ca *ca);

void ca_free(struct ca *ca)
{
	if (!ca)
		return;
	cache_clear(ca);
	free(ca->slots);
	free(ca->buckets);
	sk_X509_pop_free(ca->chain, X509_free);
	X509_free(ca->anchor);
	X509_free(ca->cert);
	EVP_PKEY_free(ca->key);
	free(ca);
}

static char *x509_pem(X509 *x)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *data = NULL, *out = NULL;
	long n;

	if (bio && x && PEM_write_bio_X509(bio, x) == 1) {
		n = BIO_get_mem_data(bio, &data);
		if (n > 0)
			out = strndup(data, (size_t)n);
	}
	BIO_free(bio);
	return out;
}

char *ca_cert_pem(const struct ca *ca)
{
	return x509_pem(ca->cert);
}

char *ca_anchor_pem(const struct ca *ca)
{
	return x509_pem(ca->anchor);
}

X509 *ca_cert(const struct ca *ca)
{
	return ca->cert;
}

int ca_is_imported(const struct ca *ca)
{
	return ca->imported;
}

/* --- names ------------------------------------------------------------------------ */

/* One RFC 1123 2.1 label: [a-z0-9-]{1,63}, no hyphen at either end. */
static int label_ok(const char *s, size_t len)
{
	if (len == 0 || len > 63 || s[0] == '-' || s[len - 1] == '-')
		return 0;
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
			return 0;
	return 1;
}

static int dns_name_ok(const char *s, size_t len)
{
	size_t start = 0, last = 0;

	if (len == 0 || len > CA_HOST_MAX)
		return 0;
	for (size_t i = 0; i <= len; i++) {
		if (i < len && s[i] != '.')
			continue;
		if (!label_ok(s + start, i - start))
			return 0;
		last = start;
		start = i + 1;
	}
	/*
	 * RFC 3696 2: a top-level label is never all-numeric; refusing it keeps
	 * "127.1" or "10.0.0.1.5" from being certified as a DNS name.
	 */
	for (size_t i = last; i < len; i++)
		if (s[i] < '0' || s[i] > '9')
			return 1;
	return 0;
}

int ca_host_normalize(const char *host, char *out, size_t outlen, int *family)
{
	unsigned char ip[16];
	size_t len;

	if (!host || outlen < CA_HOST_MAX + 1)
		return -EINVAL;
	len = strnlen(host, CA_HOST_MAX + 2);
	/* inet_pton: dotted quad only (no "0x7f.1"), IPv6 without brackets or zone */
	*family = inet_pton(AF_INET, host, ip) == 1 ? AF_INET :
		  inet_pton(AF_INET6, host, ip) == 1 ? AF_INET6 : 0;
	if (*family)
		return inet_ntop(*family, ip, out, (socklen_t)outlen) ? 0 : -EINVAL;
	/* RFC 6066 3: SNI has no trailing dot; a client that sent one means the same name */
	if (len > 1 && host[len - 1] == '.')
		len--;
	if (len == 0 || len > CA_HOST_MAX)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		char ch = host[i];

		out[i] = ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
	}
	out[len] = '\0';
	return dns_name_ok(out, len) ? 0 : -EINVAL;
}

/*
 * SPIFFE-ID 2: spiffe://<trust domain>/<path>, trust domain [a-z0-9.-_]
 * (<= 255), path segments [A-Za-z0-9.-_] with no empty, "." or ".." segment,
 * no trailing slash, no query or fragment; an X509-SVID names a workload, so
 * the path is not empty (X509-SVID 2).
 */
static int spiffe_char(char ch, int upper_ok)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '.' || ch == '-' ||
	       ch == '_' || (upper_ok && ch >= 'A' && ch <= 'Z');
}

static int spiffe_ok(const char *uri)
{
	static const char pfx[] = "spiffe://";
	size_t len = strnlen(uri, CA_SPIFFE_MAX + 1), i = sizeof(pfx) - 1, seg;

	if (len > CA_SPIFFE_MAX || strncmp(uri, pfx, sizeof(pfx) - 1))
		return 0;
	for (; i < len && uri[i] != '/'; i++)
		if (!spiffe_char(uri[i], 0))
			return 0;
	if (i == sizeof(pfx) - 1 || i - (sizeof(pfx) - 1) > CA_TD_MAX || i == len)
		return 0;
	while (i < len) {	/* at a '/' */
		seg = ++i;
		for (; i < len && uri[i] != '/'; i++)
			if (!spiffe_char(uri[i], 1))
				return 0;
		if (i == seg || (i - seg == 1 && uri[seg] == '.') ||
		    (i - seg == 2 && uri[seg] == '.' && uri[seg + 1] == '.'))
			return 0;
	}
	return 1;
}

/* --- minting ---------------------------------------------------------------------- */

void ca_cert_put(struct ca_cert *c)
{
	if (!c || --c->refs)
		return;
	X509_free(c->cert);
	EVP_PKEY_free(c->key);	/* OpenSSL clears the private scalar on free */
	sk_X509_pop_free(c->chain, X509_free);
	free(c);
}

struct mint_req {
	const char *cn;		/* subject CN, NULL: empty subject, critical SAN */
	int san_type;		/* GEN_DNS, GEN_IPADD, GEN_URI */
	const void *san;
	size_t san_len;
	const char *eku;	/* "serverAuth" or "clientAuth" */
	uint32_t ttl_s;
	int64_t now;
};

/* Build and sign the end-entity certificate for a fresh key. */
static int mint_x509(struct ca *ca, struct ca_cert *c, const struct mint_req *r)
{
	int64_t na = r->now + (int64_t)r->ttl_s;

	/* a leaf never outlives its CA (clients would reject the chain anyway) */
	c->not_before = r->now - CA_BACKDATE_S;
	c->not_after = na < ca->not_after ? na : ca->not_after;
	c->cert = X509_new();
	if (!c->cert ||
	    cert_base(c->cert, ca->cert, c->key, r->cn, c->not_before, c->not_after, c->serial) ||
	    ext_add(c->cert, ca->cert, NID_basic_constraints, "critical,CA:FALSE") ||
	    ext_add(c->cert, ca->cert, NID_key_usage, "critical,digitalSignature") ||
	    ext_add(c->cert, ca->cert, NID_ext_key_usage, r->eku) ||
	    ext_add(c->cert, ca->cert, NID_subject_key_identifier, "hash") ||
	    ext_add(c->cert, ca->cert, NID_authority_key_identifier, "keyid") ||
	    san_add(c->cert, r->san_type, r->san, r->san_len, !r->cn) ||
	    !X509_sign(c->cert, ca->key, ca->md))
		return -EIO;
	return 0;
}

/* A new certificate with its own P-256 key and one reference.  NULL + err. */
static struct ca_cert *mint(struct ca *ca, const struct mint_req *r, char *err, size_t errlen)
{
	struct ca_cert *c = calloc(1, sizeof(*c));

	if (!c) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c->refs = 1;
	c->key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	c->chain = X509_chain_up_ref(ca->chain);
	if (!c->key || !c->chain || mint_x509(ca, c, r)) {
		ssl_err(err, errlen, "cannot mint a certificate");
		ca_cert_put(c);
		return NULL;
	}
	return c;
}

/* --- the leaf cache --------------------------------------------------------------- */

/* FNV-1a from a random seed: cheap, and not predictable by a workload. */
static uint32_t host_hash(const struct ca *ca, const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL ^ ca->seed;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
	return (uint32_t)(h ^ h >> 32);
}

static int cache_alloc(struct ca *ca)
{
	size_t nb = 16;

	while (nb < 2 * ca->cache_max)
		nb <<= 1;
	ca->slots = calloc(ca->cache_max, sizeof(*ca->slots));
	ca->buckets = malloc(nb * sizeof(*ca->buckets));
	if (!ca->slots || !ca->buckets) {
		free(ca->slots);
		free(ca->buckets);
		ca->slots = NULL;
		ca->buckets = NULL;
		return -ENOMEM;
	}
	for (size_t i = 0; i < nb; i++)
		ca->buckets[i] = -1;
	ca->nbuckets = nb;
	return 0;
}

static void lru_unlink(struct ca *ca, int32_t i)
{
	struct leaf_slot *s = &ca->slots[i];

	if (s->lru_prev >= 0)
		ca->slots[s->lru_prev].lru_next = s->lru_next;
	else
		ca->lru_head = s->lru_next;
	if (s->lru_next >= 0)
		ca->slots[s->lru_next].lru_prev = s->lru_prev;
	else
		ca->lru_tail = s->lru_prev;
}

static void lru_push_front(struct ca *ca, int32_t i)
{
	struct leaf_slot *s = &ca->slots[i];

	s->lru_prev = -1;
	s->lru_next = ca->lru_head;
	if (ca->lru_head >= 0)
		ca->slots[ca->lru_head].lru_prev = i;
	ca->lru_head = i;
	if (ca->lru_tail < 0)
		ca->lru_tail = i;
}

static int32_t cache_find(const struct ca *ca, const char *host, uint32_t hash)
{
	int32_t i;

	if (!ca->buckets)
		return -1;
	for (i = ca->buckets[hash & (ca->nbuckets - 1)]; i >= 0; i = ca->slots[i].next)
		if (ca->slots[i].hash == hash && !strcmp(ca->slots[i].host, host))
			return i;
	return -1;
}

/* Drop slot i from its bucket and the LRU list, release its cert, free the slot. */
static void cache_remove(struct ca *ca, int32_t i)
{
	struct leaf_slot *s = &ca->slots[i];
	int32_t *pp = &ca->buckets[s->hash & (ca->nbuckets - 1)];

	while (*pp != i)
		pp = &ca->slots[*pp].next;
	*pp = s->next;
	lru_unlink(ca, i);
	ca_cert_put(s->c);	/* a TLS session still holding it keeps it alive */
	s->c = NULL;
	s->next = ca->free_head;
	ca->free_head = i;
	ca->ncached--;
}

/* Store c (takes a reference) for host, evicting the least recently used. */
static int cache_insert(struct ca *ca, const char *host, uint32_t hash, struct ca_cert *c)
{
	struct leaf_slot *s;
	int32_t i;

	if (!ca->slots && cache_alloc(ca))
		return -ENOMEM;
	if (ca->ncached == ca->cache_max)
		cache_remove(ca, ca->lru_tail);
	if (ca->free_head >= 0) {
		i = ca->free_head;
		ca->free_head = ca->slots[i].next;
	} else {
		i = (int32_t)ca->nslots++;
	}
	s = &ca->slots[i];
	strcpy(s->host, host);	/* normalised: <= CA_HOST_MAX */
	s->hash = hash;
	s->c = c;
	c->refs++;
	s->next = ca->buckets[hash & (ca->nbuckets - 1)];
	ca->buckets[hash & (ca->nbuckets - 1)] = i;
	lru_push_front(ca, i);
	ca->ncached++;
	return 0;
}

static void cache_clear(struct ca *ca)
{
	while (ca->lru_head >= 0)
		cache_remove(ca, ca->lru_head);
}

int ca_set_leaf_cache_max(struct ca *ca, size_t max)
{
	if (ca->slots || max == 0 || max > INT32_MAX / 4)
		return -EBUSY;
	ca->cache_max = max;
	return 0;
}

size_t ca_leaf_cached(const struct ca *ca)
{
	return ca->ncached;
}

/* Less than a third of its life left, or minted "in the future" (clock stepped back). */
static int leaf_stale(const struct ca_cert *c, int64_t now)
{
	return now < c->not_before || (c->not_after - now) * 3 < c->not_after - c->not_before;
}

struct ca_cert *ca_leaf(struct ca *ca, const char *host, uint32_t ttl_s, int64_t now,
			char *err, size_t errlen)
{
	unsigned char ip[16];
	char name[CA_HOST_MAX + 1];
	struct mint_req r = { .eku = "serverAuth", .now = now };
	struct ca_cert *c;
	uint32_t hash;
	int32_t i;
	int family;

	if (ca_host_normalize(host, name, sizeof(name), &family)) {
		snprintf(err, errlen, "not a host name or IP address");	/* never echo it */
		return NULL;
	}
	hash = host_hash(ca, name);
	i = cache_find(ca, name, hash);
	if (i >= 0 && !leaf_stale(ca->slots[i].c, now)) {
		lru_unlink(ca, i);
		lru_push_front(ca, i);
		ca->slots[i].c->refs++;
		return ca->slots[i].c;
	}
	r.ttl_s = ttl_s ? ttl_s : CA_LEAF_TTL_S;
	r.cn = strlen(name) <= CA_CN_MAX ? name : NULL;
	r.san_type = family ? GEN_IPADD : GEN_DNS;
	r.san = family ? (const void *)ip : name;
	r.san_len = family == AF_INET ? 4 : family == AF_INET6 ? 16 : strlen(name);
	if (family)
		inet_pton(family, name, ip);
	c = mint(ca, &r, err, errlen);
	if (!c && i >= 0 && now >= ca->slots[i].c->not_before &&
	    now < ca->slots[i].c->not_after) {
		/* renewal failed (secure heap full?): the old leaf is still valid */
		ca->slots[i].c->refs++;
		return ca->slots[i].c;
	}
	if (!c)
		return NULL;
	if (i >= 0)
		cache_remove(ca, i);
	if (cache_insert(ca, name, hash, c))
		log_warnx("%s: leaf cache: out of memory, leaf not cached", __func__);
	return c;
}

struct ca_cert *ca_client_cert(struct ca *ca, const char *spiffe_uri, uint32_t ttl_s,
			       int64_t now, char *err, size_t errlen)
{
	struct mint_req r = { .eku = "clientAuth", .san_type = GEN_URI, .now = now };
	const char *path;

	if (!spiffe_uri || !spiffe_ok(spiffe_uri)) {
		snprintf(err, errlen, "not a SPIFFE ID of a workload (spiffe://<domain>/<path>)");
		return NULL;
	}
	/* CN = the workload part of the ID, for servers that log the subject */
	path = strchr(spiffe_uri + strlen("spiffe://"), '/') + 1;
	r.cn = strlen(path) <= CA_CN_MAX ? path : NULL;
	r.san = spiffe_uri;
	r.san_len = strlen(spiffe_uri);
	r.ttl_s = ttl_s ? ttl_s : CA_CLIENT_TTL_S;
	return mint(ca, &r, err, errlen);
}

int ca_cert_thumbprint(const struct ca_cert *c, char *out, size_t outlen)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	if (outlen < CA_THUMBPRINT_LEN)
		return -ENOSPC;
	/* X509_digest hashes the DER encoding of the whole certificate (RFC 8705 3.1) */
	if (X509_digest(c->cert, EVP_sha256(), md, &n) != 1)
		return -EIO;
	return jwt_b64url(md, n, out, outlen) == CA_THUMBPRINT_LEN - 1 ? 0 : -EIO;
}
