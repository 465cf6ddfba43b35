// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Copyright (c) 2026 The lanyard authors */
/*
 * The JWT issuer: the ES256 signing key file (created once, refused when not
 * private), JWS compact serialisation (RFC 7515) of JWT claims (RFC 7519),
 * and the JWKS (RFC 7517) with an RFC 7638 thumbprint as kid.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include "jwt.h"
#include "log.h"
#include "secret.h"

#define JWT_COORD_LEN	32			/* P-256 field element, bytes */
#define JWT_COORD_B64	44			/* base64url of 32 bytes (43) + NUL */
#define JWT_SIG_LEN	(2 * JWT_COORD_LEN)	/* r || s, RFC 7518 3.4 */
#define JWT_SIG_B64	87			/* base64url of 64 bytes (86) + NUL */
#define JWT_HDR_B64	128			/* base64url of the fixed JWS header */
#define JWT_KEY_MAX	16384			/* a PEM P-256 key is ~240 bytes */

struct jwt_key {
	EVP_PKEY *pkey;
	char x[JWT_COORD_B64];
	char y[JWT_COORD_B64];
	char kid[JWT_KID_LEN];
	char hdr[JWT_HDR_B64];	/* base64url({"alg":"ES256","typ":"JWT","kid":...}) */
	size_t hdrlen;
};

/* --- base64url (RFC 4648 5, no padding: RFC 7515 2) ------------------------ */

static size_t b64url_len(size_t len)
{
	return len / 3 * 4 + (len % 3 ? len % 3 + 1 : 0);
}

/*
 * base64url of in into out (NUL-terminated).  Returns the length written, or
 * 0 (out = "" when outlen > 0) when outlen cannot hold the result and a NUL.
 */
size_t jwt_b64url(const void *in, size_t len, char *out, size_t outlen)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	const unsigned char *p = in;
	size_t need = b64url_len(len), o = 0, i;

	if (len > (SIZE_MAX - 4) / 4 * 3 || outlen <= need) {
		if (outlen)
			out[0] = '\0';
		return 0;
	}
	for (i = 0; i + 3 <= len; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];

		out[o++] = tab[v >> 18 & 63];
		out[o++] = tab[v >> 12 & 63];
		out[o++] = tab[v >> 6 & 63];
		out[o++] = tab[v & 63];
	}
	if (len - i == 1) {
		out[o++] = tab[p[i] >> 2];
		out[o++] = tab[(p[i] & 3) << 4];
	} else if (len - i == 2) {
		out[o++] = tab[p[i] >> 2];
		out[o++] = tab[(p[i] & 3) << 4 | p[i + 1] >> 4];
		out[o++] = tab[(p[i + 1] & 15) << 2];
	}
	out[o] = '\0';
	return o;
}

/* --- the key file ------------------------------------------------------------ */

/* never prompt on a terminal for an encrypted key: refuse it */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

static int key_is_p256(EVP_PKEY *pkey)
{
	char name[64];
	size_t n = 0;

	if (!EVP_PKEY_is_a(pkey, "EC"))
		return 0;
	if (!EVP_PKEY_get_group_name(pkey, name, sizeof(name), &n))
		return 0;
	return !strcmp(name, "prime256v1") || !strcmp(name, "P-256");
}

/* Parse a PEM private key held in a secure-heap buffer. */
static EVP_PKEY *key_parse(const char *path, const char *pem, size_t len, char *err,
			   size_t errlen)
{
	BIO *bio = BIO_new_mem_buf(pem, (int)len);
	EVP_PKEY *pkey = NULL;

	if (bio)
		pkey = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
	BIO_free(bio);
	if (!pkey) {
		snprintf(err, errlen, "signing key %s: not an unencrypted PEM private key", path);
		return NULL;
	}
	if (!key_is_p256(pkey)) {
		snprintf(err, errlen, "signing key %s: not an EC P-256 key (ES256 needs one)",
			 path);
		EVP_PKEY_free(pkey);
		return NULL;
	}
	return pkey;
}

/*
 * Read and check the key file.  NULL with *rc = -ENOENT when it does not
 * exist (the caller creates it), other -errno with a message in err.
 */
static EVP_PKEY *key_read(const char *path, int *rc, char *err, size_t errlen)
{
	EVP_PKEY *pkey = NULL;
	char *pem = NULL;
	struct stat st;
	ssize_t n = 0;
	int fd;

	/* O_NOFOLLOW: a symlink is "not a regular file"; O_NONBLOCK: a FIFO won't hang us */
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		*rc = -errno;
		if (*rc == -ELOOP)
			snprintf(err, errlen, "signing key %s: not a regular file (symlink)", path);
		else
			snprintf(err, errlen, "signing key %s: %s", path, strerror(-*rc));
		return NULL;
	}
	if (fstat(fd, &st) < 0) {
		*rc = -errno;
		snprintf(err, errlen, "signing key %s: %s", path, strerror(-*rc));
		goto cleanup;
	}
	*rc = secret_file_check(path, "signing key", &st, err, errlen);
	if (*rc)
		goto cleanup;
	*rc = -EINVAL;
	pem = OPENSSL_secure_malloc(JWT_KEY_MAX);
	if (!pem) {
		*rc = -ENOMEM;
		snprintf(err, errlen, "signing key %s: out of memory", path);
		goto cleanup;
	}
	do
		n = read(fd, pem, JWT_KEY_MAX);
	while (n < 0 && errno == EINTR);
	if (n <= 0 || n >= JWT_KEY_MAX) {
		snprintf(err, errlen, "signing key %s: %s", path,
			 n < 0 ? strerror(errno) : n ? "too large" : "empty");
		goto cleanup;
	}
	pkey = key_parse(path, pem, (size_t)n, err, errlen);
	if (pkey)
		*rc = 0;
cleanup:
	OPENSSL_secure_clear_free(pem, JWT_KEY_MAX);
	close(fd);
	return pkey;
}

/* Write pkey as PEM to a new file (O_EXCL, 0600 whatever the umask) and fsync it. */
static int key_write_new(const char *path, EVP_PKEY *pkey)
{
	BIO *bio = NULL;
	int fd, err = 0;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (fchmod(fd, 0600) < 0) {
		err = -errno;
		goto cleanup;
	}
	/* straight to the fd: no copy of the PEM in a memory BIO */
	bio = BIO_new_fd(fd, BIO_NOCLOSE);
	if (!bio || !PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL) ||
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
 * Generate a P-256 key and publish it at path atomically: written to a
 * private temporary name, then link()ed, which fails with EEXIST rather than
 * replacing a key that another lanyardd created meanwhile.  A crash leaves
 * a stray temporary file, never a half-written key.
 */
static int key_create(const char *dir, const char *path, char *err, size_t errlen)
{
	char tmp[PATH_MAX];
	EVP_PKEY *pkey;
	int rc, dfd;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof(tmp)) {
		snprintf(err, errlen, "signing key %s: path too long", path);
		return -ENAMETOOLONG;
	}
	pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	if (!pkey) {
		snprintf(err, errlen, "signing key %s: P-256 key generation failed", path);
		return -EIO;
	}
	unlink(tmp);	/* a leftover of a crashed lanyardd that had our pid */
	rc = key_write_new(tmp, pkey);
	EVP_PKEY_free(pkey);
	if (rc == 0 && link(tmp, path) < 0)
		rc = -errno;
	unlink(tmp);
	if (rc == 0) {
		dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd >= 0) {
			fsync(dfd);	/* the new name survives a power cut */
			close(dfd);
		}
		log_info("created the JWT signing key %s", path);
	} else if (rc != -EEXIST) {
		snprintf(err, errlen, "signing key %s: cannot create: %s", path, strerror(-rc));
	}
	return rc;
}

/* --- public key, thumbprint, header ----------------------------------------- */

static int coord_b64(EVP_PKEY *pkey, const char *param, char out[JWT_COORD_B64])
{
	unsigned char raw[JWT_COORD_LEN];
	BIGNUM *bn = NULL;
	int ok;

	ok = EVP_PKEY_get_bn_param(pkey, param, &bn) &&
	     BN_bn2binpad(bn, raw, sizeof(raw)) == (int)sizeof(raw) &&
	     jwt_b64url(raw, sizeof(raw), out, JWT_COORD_B64) == JWT_COORD_B64 - 1;
	BN_free(bn);
	return ok ? 0 : -EINVAL;
}

/*
 * RFC 7638 3: SHA-256 over the required members in lexicographic order, no
 * whitespace; for EC that is crv, kty, x, y.
 */
static int key_describe(struct jwt_key *k)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char buf[256];
	int n;

	if (coord_b64(k->pkey, OSSL_PKEY_PARAM_EC_PUB_X, k->x) ||
	    coord_b64(k->pkey, OSSL_PKEY_PARAM_EC_PUB_Y, k->y))
		return -EINVAL;
	n = snprintf(buf, sizeof(buf),
		     "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}", k->x, k->y);
	if (n < 0 || n >= (int)sizeof(buf))
		return -EINVAL;
	if (!EVP_Digest(buf, (size_t)n, md, &mdlen, EVP_sha256(), NULL))
		return -EINVAL;
	if (jwt_b64url(md, mdlen, k->kid, sizeof(k->kid)) != JWT_KID_LEN - 1)
		return -EINVAL;
	/* the JWS protected header is the same for every token: encode it once */
	n = snprintf(buf, sizeof(buf), "{\"alg\":\"ES256\",\"typ\":\"JWT\",\"kid\":\"%s\"}",
		     k->kid);
	if (n < 0 || n >= (int)sizeof(buf))
		return -EINVAL;
	k->hdrlen = jwt_b64url(buf, (size_t)n, k->hdr, sizeof(k->hdr));
	return k->hdrlen ? 0 : -EINVAL;
}

/* --- load or create ------------------------------------------------------------ */

struct jwt_key *jwt_key_load_or_create(const char *state_dir, char *err, size_t errlen)
{
	struct jwt_key *k = NULL;
	EVP_PKEY *pkey = NULL;
	char path[PATH_MAX];
	int rc = -ENOENT;

	if (snprintf(path, sizeof(path), "%s/%s", state_dir, JWT_KEY_FILE) >= (int)sizeof(path)) {
		snprintf(err, errlen, "state_dir %s: path too long", state_dir);
		return NULL;
	}
	if (mkdir(state_dir, 0700) < 0 && errno != EEXIST) {
		snprintf(err, errlen, "state_dir %s: %s", state_dir, strerror(errno));
		return NULL;
	}
	/* two rounds: another lanyardd may create the key between our read and create */
	for (int round = 0; round < 2 && !pkey && rc == -ENOENT; round++) {
		pkey = key_read(path, &rc, err, errlen);
		if (rc == -ENOENT) {
			rc = key_create(state_dir, path, err, errlen);
			rc = rc == 0 || rc == -EEXIST ? -ENOENT : rc;
		}
	}
	if (!pkey) {
		if (rc == -ENOENT)
			snprintf(err, errlen, "signing key %s: vanished while being created", path);
		return NULL;
	}
	k = calloc(1, sizeof(*k));
	if (!k) {
		snprintf(err, errlen, "out of memory");
		EVP_PKEY_free(pkey);
		return NULL;
	}
	k->pkey = pkey;
	if (key_describe(k) < 0) {
		snprintf(err, errlen, "signing key %s: cannot export its public key", path);
		jwt_key_free(k);
		return NULL;
	}
	return k;
}

void jwt_key_free(struct jwt_key *k)
{
	if (!k)
		return;
	EVP_PKEY_free(k->pkey);
	free(k);
}

const char *jwt_key_kid(const struct jwt_key *k)
{
	return k->kid;
}

char *jwt_jwks_json(const struct jwt_key *k)
{
	json_t *j;
	char *s;

	j = json_pack("{s:[{s:s, s:s, s:s, s:s, s:s, s:s, s:s}]}", "keys",
		      "kty", "EC", "crv", "P-256", "x", k->x, "y", k->y, "kid", k->kid,
		      "use", "sig", "alg", "ES256");
	if (!j)
		return NULL;
	s = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	return s;
}

/* --- minting ------------------------------------------------------------------ */

/*
 * JSON string body escaping (RFC 8259 7): the claims come from the policy
 * file and may hold quotes or backslashes.  With out == NULL only counts.
 */
static size_t json_esc(char *out, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	char tmp[6];
	size_t n = 0, k;

	for (; *s; s++, n += k) {
		unsigned char ch = (unsigned char)*s;
		char e = ch == '"' ? '"' : ch == '\\' ? '\\' : ch == '\n' ? 'n' :
			 ch == '\r' ? 'r' : ch == '\t' ? 't' : 0;

		k = 1;
		tmp[0] = (char)ch;
		if (e) {
			k = 2;
			tmp[0] = '\\';
			tmp[1] = e;
		} else if (ch < 0x20) {
			k = 6;
			memcpy(tmp, "\\u00", 4);
			tmp[4] = hex[ch >> 4];
			tmp[5] = hex[ch & 15];
		}
		if (out)
			memcpy(out + n, tmp, k);
	}
	return n;
}

static char *put_str(char *p, const char *key, const char *val)
{
	if (!val)
		return p;
	p += sprintf(p, "\"%s\":\"", key);
	p += json_esc(p, val);
	*p++ = '"';
	*p++ = ',';
	return p;
}

/* The claims as compact JSON (malloc'd, *len set); NULL on ENOMEM. */
static char *claims_json(const struct jwt_claims *c, size_t *len)
{
	size_t cap = 160 + JWT_JTI_LEN;	/* keys, quotes, 3 x int64, jti */
	char *buf, *p;

	cap += c->iss ? json_esc(NULL, c->iss) : 0;
	cap += c->sub ? json_esc(NULL, c->sub) : 0;
	cap += c->aud ? json_esc(NULL, c->aud) : 0;
	cap += c->cnf_x5t ? 24 + json_esc(NULL, c->cnf_x5t) : 0;
	buf = malloc(cap);
	if (!buf)
		return NULL;
	p = buf;
	*p++ = '{';
	p = put_str(p, "iss", c->iss);
	p = put_str(p, "sub", c->sub);
	p = put_str(p, "aud", c->aud);
	p += sprintf(p, "\"iat\":%" PRId64 ",\"nbf\":%" PRId64 ",\"exp\":%" PRId64 ",",
		     c->iat, c->nbf, c->exp);
	p = put_str(p, "jti", c->jti);
	/* RFC 8705 3.1: the token is bound to the client certificate with this thumbprint */
	if (c->cnf_x5t) {
		p += sprintf(p, "\"cnf\":{");
		p = put_str(p, "x5t#S256", c->cnf_x5t);
		p[-1] = '}';
		*p++ = ',';
	}
	p[-1] = '}';	/* replaces the last ',' */
	*p = '\0';
	*len = (size_t)(p - buf);
	return buf;
}

/* ES256 over tbs into raw r || s (RFC 7518 3.4), from the DER that OpenSSL gives. */
static int sign_es256(EVP_PKEY *pkey, const char *tbs, size_t tbslen,
		      unsigned char raw[JWT_SIG_LEN])
{
	unsigned char der[80];	/* DER ECDSA-Sig-Value for P-256 is at most 72 bytes */
	size_t derlen = sizeof(der);
	const unsigned char *p = der;
	const BIGNUM *r, *s;
	ECDSA_SIG *sig = NULL;
	EVP_MD_CTX *ctx;
	int err = -EIO;

	ctx = EVP_MD_CTX_new();
	if (!ctx)
		return -ENOMEM;
	if (EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, pkey) != 1 ||
	    EVP_DigestSign(ctx, der, &derlen, (const unsigned char *)tbs, tbslen) != 1)
		goto cleanup;
	sig = d2i_ECDSA_SIG(NULL, &p, (long)derlen);
	if (!sig)
		goto cleanup;
	ECDSA_SIG_get0(sig, &r, &s);
	if (BN_bn2binpad(r, raw, JWT_COORD_LEN) != JWT_COORD_LEN ||
	    BN_bn2binpad(s, raw + JWT_COORD_LEN, JWT_COORD_LEN) != JWT_COORD_LEN)
		goto cleanup;
	err = 0;
cleanup:
	ECDSA_SIG_free(sig);
	EVP_MD_CTX_free(ctx);
	OPENSSL_cleanse(der, sizeof(der));
	return err;
}

/*
 * "<header>.<claims>" (RFC 7515 7.1: the JWS signing input), malloc'd.  Not
 * a secret by itself: without the signature it authorises nothing.
 */
static char *signing_input(const struct jwt_key *k, const struct jwt_claims *c, size_t *len)
{
	size_t jlen = 0, blen;
	char *json, *tbs;

	json = claims_json(c, &jlen);
	if (!json)
		return NULL;
	blen = b64url_len(jlen);
	tbs = malloc(k->hdrlen + 1 + blen + 1);
	if (tbs) {
		memcpy(tbs, k->hdr, k->hdrlen);
		tbs[k->hdrlen] = '.';
		jwt_b64url(json, jlen, tbs + k->hdrlen + 1, blen + 1);
		*len = k->hdrlen + 1 + blen;
	}
	free(json);
	return tbs;
}

int jwt_mint(const struct jwt_key *k, struct jwt_claims *c, const char *prefix,
	     const char *suffix, struct secret **out)
{
	unsigned char jti[16], raw[JWT_SIG_LEN];
	size_t plen = prefix ? strlen(prefix) : 0, slen = suffix ? strlen(suffix) : 0;
	size_t tbslen = 0, sigoff;
	struct secret *sec = NULL;
	char *tbs = NULL;
	int err = -EIO;

	*out = NULL;
	if (RAND_bytes(jti, sizeof(jti)) != 1)
		return -EIO;
	jwt_b64url(jti, sizeof(jti), c->jti, sizeof(c->jti));
	tbs = signing_input(k, c, &tbslen);
	if (!tbs)
		return -ENOMEM;
	err = sign_es256(k->pkey, tbs, tbslen, raw);
	if (err)
		goto cleanup;
	/* the token exists only here, assembled in place in the secret */
	sec = secret_new(plen + tbslen + 1 + (JWT_SIG_B64 - 1) + slen);
	if (!sec) {
		err = -ENOMEM;
		goto cleanup;
	}
	if (plen)
		memcpy(sec->buf, prefix, plen);
	memcpy(sec->buf + plen, tbs, tbslen);
	sigoff = plen + tbslen;
	sec->buf[sigoff++] = '.';
	jwt_b64url(raw, sizeof(raw), sec->buf + sigoff, JWT_SIG_B64);
	if (slen)
		memcpy(sec->buf + sigoff + JWT_SIG_B64 - 1, suffix, slen);
	sec->buf[sec->len] = '\0';
	*out = sec;
cleanup:
	OPENSSL_cleanse(raw, sizeof(raw));
	free(tbs);
	return err;
}
