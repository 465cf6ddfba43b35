// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Copyright (c) 2026 The lanyard authors */
/*
 * Unit tests for jwt.c (key file, ES256 signature, claims, JWKS) and
 * secret.c (secure heap, fingerprints).  Signatures are verified here with
 * OpenSSL against the key rebuilt from the JWKS, as an upstream would.
 */
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>

#include "jwt.h"
#include "secret.h"

static char tmpdir[64];
static char state[128];
static char keypath[192];

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void setup(void)
{
	strcpy(tmpdir, "/tmp/ly-test-jwt-XXXXXX");
	cr_assert_not_null(mkdtemp(tmpdir));
	snprintf(state, sizeof(state), "%s/state", tmpdir);
	snprintf(keypath, sizeof(keypath), "%s/%s", state, JWT_KEY_FILE);
}

static void teardown(void)
{
	nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(jwt, .init = setup, .fini = teardown, .timeout = 5);
TestSuite(secret, .timeout = 5);

static struct jwt_key *load_ok(void)
{
	char err[512] = "";
	struct jwt_key *k = jwt_key_load_or_create(state, err, sizeof(err));

	cr_assert_not_null(k, "jwt_key_load_or_create: %s", err);
	return k;
}

/* --- base64url helpers for the checks ------------------------------------------ */

/* decode base64url (no padding) into a malloc'd buffer; NULL if invalid */
static unsigned char *b64url_decode(const char *in, size_t inlen, size_t *outlen)
{
	size_t padded = (inlen + 3) / 4 * 4;
	char *tmp = calloc(1, padded + 1);
	unsigned char *out = calloc(1, padded / 4 * 3 + 1);
	int n;

	cr_assert(tmp && out);
	for (size_t i = 0; i < inlen; i++) {
		char ch = in[i];

		cr_assert(ch != '+' && ch != '/' && ch != '=', "not base64url: '%c'", ch);
		tmp[i] = ch == '-' ? '+' : ch == '_' ? '/' : ch;
	}
	for (size_t i = inlen; i < padded; i++)
		tmp[i] = '=';
	n = EVP_DecodeBlock(out, (unsigned char *)tmp, (int)padded);
	free(tmp);
	if (n < 0) {
		free(out);
		return NULL;
	}
	*outlen = (size_t)n - (padded - inlen);	/* DecodeBlock counts the pad bytes */
	return out;
}

static json_t *b64url_json(const char *in, size_t len)
{
	size_t n = 0;
	unsigned char *raw = b64url_decode(in, len, &n);
	json_error_t jerr;
	json_t *j;

	cr_assert_not_null(raw);
	j = json_loadb((const char *)raw, n, JSON_REJECT_DUPLICATES, &jerr);
	cr_assert_not_null(j, "not JSON: %s", jerr.text);
	free(raw);
	return j;
}

/* The public key of the first JWKS entry, as an upstream rebuilds it. */
static EVP_PKEY *jwks_pubkey(const char *jwks)
{
	json_t *j = json_loads(jwks, 0, NULL), *key;
	unsigned char pt[65] = { 0x04 };	/* SEC1 uncompressed point */
	unsigned char *x, *y;
	size_t xl = 0, yl = 0;
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	OSSL_PARAM *params;
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	EVP_PKEY *pkey = NULL;

	cr_assert_not_null(j);
	key = json_array_get(json_object_get(j, "keys"), 0);
	x = b64url_decode(json_string_value(json_object_get(key, "x")),
			  json_string_length(json_object_get(key, "x")), &xl);
	y = b64url_decode(json_string_value(json_object_get(key, "y")),
			  json_string_length(json_object_get(key, "y")), &yl);
	cr_assert(x && y && xl == 32 && yl == 32, "x/y must be 32 bytes (RFC 7518 6.2.1.2)");
	memcpy(pt + 1, x, 32);
	memcpy(pt + 33, y, 32);
	OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0);
	OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof(pt));
	params = OSSL_PARAM_BLD_to_param(bld);
	cr_assert(EVP_PKEY_fromdata_init(ctx) == 1 &&
		  EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) == 1);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	EVP_PKEY_CTX_free(ctx);
	free(x);
	free(y);
	json_decref(j);
	return pkey;
}

/* ES256 check of a compact JWS: raw r||s converted back to DER for OpenSSL. */
static int verify_es256(EVP_PKEY *pub, const char *tok, size_t len)
{
	const char *dot2 = memrchr(tok, '.', len);
	unsigned char *raw, *der = NULL;
	size_t rawlen = 0;
	ECDSA_SIG *sig = ECDSA_SIG_new();
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int derlen, ok;

	cr_assert_not_null(dot2);
	raw = b64url_decode(dot2 + 1, len - (size_t)(dot2 + 1 - tok), &rawlen);
	cr_assert(raw && rawlen == 64, "ES256 signature must be 64 bytes (RFC 7518 3.4)");
	ECDSA_SIG_set0(sig, BN_bin2bn(raw, 32, NULL), BN_bin2bn(raw + 32, 32, NULL));
	derlen = i2d_ECDSA_SIG(sig, &der);
	ok = EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pub) == 1 &&
	     EVP_DigestVerify(md, der, (size_t)derlen, (const unsigned char *)tok,
			      (size_t)(dot2 - tok)) == 1;
	OPENSSL_free(der);
	EVP_MD_CTX_free(md);
	ECDSA_SIG_free(sig);
	free(raw);
	return ok;
}

static struct secret *mint(struct jwt_key *k, struct jwt_claims *c, const char *pre,
			   const char *suf)
{
	struct secret *s = NULL;

	cr_assert_eq(jwt_mint(k, c, pre, suf, &s), 0);
	cr_assert_not_null(s);
	return s;
}

/* --- key file ------------------------------------------------------------------- */

Test(jwt, creates_private_key_file_and_folder)
{
	mode_t old = umask(0);	/* the modes must not depend on the umask */
	struct jwt_key *k = load_ok();
	struct stat st;

	umask(old);
	cr_assert_eq(stat(state, &st), 0);
	cr_expect_eq(st.st_mode & 07777, 0700, "state_dir mode %o", st.st_mode & 07777);
	cr_assert_eq(lstat(keypath, &st), 0);
	cr_expect(S_ISREG(st.st_mode));
	cr_expect_eq(st.st_mode & 07777, 0600, "key mode %o", st.st_mode & 07777);
	cr_expect_eq(st.st_uid, geteuid());
	cr_expect_eq(strlen(jwt_key_kid(k)), JWT_KID_LEN - 1);
	jwt_key_free(k);
}

Test(jwt, key_file_is_a_p256_pem_private_key)
{
	struct jwt_key *k = load_ok();
	FILE *f = fopen(keypath, "r");
	EVP_PKEY *pkey;
	char group[32] = "";
	char *jwks;

	cr_assert_not_null(f);
	pkey = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	cr_assert_not_null(pkey);
	cr_expect(EVP_PKEY_get_group_name(pkey, group, sizeof(group), NULL));
	cr_expect_str_eq(group, "prime256v1");
	/* the JWKS publishes this very key */
	jwks = jwt_jwks_json(k);
	EVP_PKEY *pub = jwks_pubkey(jwks);
	cr_expect_eq(EVP_PKEY_eq(pub, pkey), 1, "JWKS x/y do not match the key file");
	EVP_PKEY_free(pub);
	EVP_PKEY_free(pkey);
	free(jwks);
	jwt_key_free(k);
}

Test(jwt, reload_gives_the_same_kid)
{
	struct jwt_key *a = load_ok(), *b = load_ok();

	cr_expect_str_eq(jwt_key_kid(a), jwt_key_kid(b));
	jwt_key_free(a);
	jwt_key_free(b);
}

Test(jwt, refuses_group_or_other_readable_key)
{
	static const mode_t modes[] = { 0644, 0640, 0604, 0660, 0601 };
	char err[512];

	jwt_key_free(load_ok());
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		err[0] = '\0';
		cr_assert_eq(chmod(keypath, modes[i]), 0);
		cr_expect_null(jwt_key_load_or_create(state, err, sizeof(err)), "mode %o",
			       modes[i]);
		cr_expect(strstr(err, "readable by group or other"), "mode %o: %s", modes[i], err);
	}
	/* 0400 is as private as 0600 */
	cr_assert_eq(chmod(keypath, 0400), 0);
	jwt_key_free(load_ok());
}

Test(jwt, refuses_key_that_is_not_a_regular_file)
{
	char err[512] = "", target[256];

	cr_assert_eq(mkdir(state, 0700), 0);
	cr_assert_eq(mkdir(keypath, 0700), 0);
	cr_expect_null(jwt_key_load_or_create(state, err, sizeof(err)));
	cr_expect(strstr(err, "not a regular file"), "%s", err);
	cr_assert_eq(rmdir(keypath), 0);

	/* a symlink to a private key is refused too: it could be swapped */
	snprintf(target, sizeof(target), "%s/real.pem", tmpdir);
	cr_assert_eq(symlink(target, keypath), 0);
	err[0] = '\0';
	cr_expect_null(jwt_key_load_or_create(state, err, sizeof(err)));
	cr_expect(strstr(err, "not a regular file"), "%s", err);
	cr_expect_neq(access(target, F_OK), 0, "must not create a key through the symlink");
}

Test(jwt, refuses_key_owned_by_another_user)
{
	char err[512] = "";

	if (geteuid() != 0)
		cr_skip_test("needs root to chown");
	jwt_key_free(load_ok());
	cr_assert_eq(chown(keypath, 65534, 65534), 0);
	cr_expect_null(jwt_key_load_or_create(state, err, sizeof(err)));
	cr_expect(strstr(err, "owned by uid 65534"), "%s", err);
}

Test(jwt, refuses_garbage_and_non_p256_keys)
{
	char err[512] = "";
	EVP_PKEY *p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
	FILE *f;

	cr_assert_eq(mkdir(state, 0700), 0);
	f = fopen(keypath, "w");
	cr_assert_not_null(f);
	fputs("-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n", f);
	fclose(f);
	cr_assert_eq(chmod(keypath, 0600), 0);
	cr_expect_null(jwt_key_load_or_create(state, err, sizeof(err)));
	cr_expect(strstr(err, "not an unencrypted PEM private key"), "%s", err);

	f = fopen(keypath, "w");
	cr_assert(f && p384);
	PEM_write_PrivateKey(f, p384, NULL, NULL, 0, NULL, NULL);
	fclose(f);
	err[0] = '\0';
	cr_expect_null(jwt_key_load_or_create(state, err, sizeof(err)));
	cr_expect(strstr(err, "not an EC P-256 key"), "%s", err);
	EVP_PKEY_free(p384);
}

/* --- kid and JWKS ----------------------------------------------------------------- */

Test(jwt, jwks_lists_the_key_with_its_thumbprint_as_kid)
{
	struct jwt_key *k = load_ok();
	char *s = jwt_jwks_json(k), buf[256], kid[JWT_KID_LEN];
	unsigned char md[32];
	json_t *j, *key;

	cr_assert_not_null(s);
	j = json_loads(s, JSON_REJECT_DUPLICATES, NULL);
	cr_assert_not_null(j, "JWKS is not JSON");
	cr_assert_eq(json_array_size(json_object_get(j, "keys")), 1);
	key = json_array_get(json_object_get(j, "keys"), 0);
	cr_expect_str_eq(json_string_value(json_object_get(key, "kty")), "EC");
	cr_expect_str_eq(json_string_value(json_object_get(key, "crv")), "P-256");
	cr_expect_str_eq(json_string_value(json_object_get(key, "use")), "sig");
	cr_expect_str_eq(json_string_value(json_object_get(key, "alg")), "ES256");
	cr_expect_str_eq(json_string_value(json_object_get(key, "kid")), jwt_key_kid(k));
	cr_expect_null(json_object_get(key, "d"), "the private part must not be published");

	/* RFC 7638 3.2: required members, lexicographic order, no whitespace */
	snprintf(buf, sizeof(buf), "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}",
		 json_string_value(json_object_get(key, "x")),
		 json_string_value(json_object_get(key, "y")));
	cr_assert(EVP_Digest(buf, strlen(buf), md, NULL, EVP_sha256(), NULL));
	jwt_b64url(md, sizeof(md), kid, sizeof(kid));
	cr_expect_str_eq(jwt_key_kid(k), kid);
	json_decref(j);
	free(s);
	jwt_key_free(k);
}

/* --- minting ------------------------------------------------------------------- */

Test(jwt, minted_token_verifies_with_the_jwks_key)
{
	struct jwt_key *k = load_ok();
	struct jwt_claims c = { .iss = "http://127.0.0.1:15002", .sub = "spiffe://ex.org/billing",
				.aud = "https://api.example.org", .iat = 1700000000,
				.nbf = 1700000000, .exp = 1700000300 };
	struct secret *s = mint(k, &c, NULL, NULL);
	char *jwks = jwt_jwks_json(k);
	EVP_PKEY *pub = jwks_pubkey(jwks);

	cr_expect_eq(strlen(s->buf), s->len);
	cr_expect(verify_es256(pub, s->buf, s->len), "signature does not verify");
	/* one flipped bit in the claims must break it */
	s->buf[s->len / 2] ^= 1;
	cr_expect_not(verify_es256(pub, s->buf, s->len), "tampered token verifies");
	EVP_PKEY_free(pub);
	free(jwks);
	secret_free(s);
	jwt_key_free(k);
}

Test(jwt, minted_token_carries_header_and_claims)
{
	struct jwt_key *k = load_ok();
	struct jwt_claims c = { .iss = "http://127.0.0.1:15002", .sub = "spiffe://ex.org/billing",
				.aud = "https://api.example.org", .iat = 1700000000,
				.nbf = 1700000000, .exp = 1700000120 };
	struct secret *s = mint(k, &c, NULL, NULL);
	const char *d1 = strchr(s->buf, '.'), *d2 = strrchr(s->buf, '.');
	json_t *h, *p;

	cr_assert(d1 && d2 && d1 != d2, "not three parts");
	h = b64url_json(s->buf, (size_t)(d1 - s->buf));
	p = b64url_json(d1 + 1, (size_t)(d2 - d1 - 1));
	cr_expect_eq(json_object_size(h), 3);
	cr_expect_str_eq(json_string_value(json_object_get(h, "alg")), "ES256");
	cr_expect_str_eq(json_string_value(json_object_get(h, "typ")), "JWT");
	cr_expect_str_eq(json_string_value(json_object_get(h, "kid")), jwt_key_kid(k));

	cr_expect_eq(json_object_size(p), 7);
	cr_expect_str_eq(json_string_value(json_object_get(p, "iss")), c.iss);
	cr_expect_str_eq(json_string_value(json_object_get(p, "sub")), c.sub);
	cr_expect_str_eq(json_string_value(json_object_get(p, "aud")), c.aud);
	cr_expect_eq(json_integer_value(json_object_get(p, "iat")), 1700000000);
	cr_expect_eq(json_integer_value(json_object_get(p, "nbf")), 1700000000);
	cr_expect_eq(json_integer_value(json_object_get(p, "exp")), 1700000120);
	cr_expect_eq(json_integer_value(json_object_get(p, "exp")) -
		     json_integer_value(json_object_get(p, "iat")), 120);
	cr_expect_str_eq(json_string_value(json_object_get(p, "jti")), c.jti);
	cr_expect_eq(strlen(c.jti), JWT_JTI_LEN - 1);
	json_decref(h);
	json_decref(p);
	secret_free(s);
	jwt_key_free(k);
}

Test(jwt, claims_from_the_policy_are_json_escaped)
{
	static const char aud[] = "a\"b\\c\n\x01 ü {\"x\":1}";
	struct jwt_key *k = load_ok();
	struct jwt_claims c = { .iss = "i\"ss", .sub = "spiffe://ex.org/we\"ird", .aud = aud,
				.iat = 1, .nbf = 1, .exp = 2 };
	struct secret *s = mint(k, &c, NULL, NULL);
	const char *d1 = strchr(s->buf, '.'), *d2 = strrchr(s->buf, '.');
	json_t *p = b64url_json(d1 + 1, (size_t)(d2 - d1 - 1));

	cr_expect_str_eq(json_string_value(json_object_get(p, "aud")), aud);
	cr_expect_str_eq(json_string_value(json_object_get(p, "iss")), c.iss);
	cr_expect_str_eq(json_string_value(json_object_get(p, "sub")), c.sub);
	cr_expect_null(json_object_get(p, "x"), "a quote in aud injected a claim");
	json_decref(p);
	secret_free(s);
	jwt_key_free(k);
}

Test(jwt, renders_prefix_token_suffix)
{
	struct jwt_key *k = load_ok();
	struct jwt_claims c = { .sub = "s", .aud = "a", .iat = 1, .nbf = 1, .exp = 9 };
	struct secret *s = mint(k, &c, "Authorization: Bearer ", "\r\n");
	const char *tok = s->buf + strlen("Authorization: Bearer ");

	cr_expect_eq(strncmp(s->buf, "Authorization: Bearer ey", 24), 0);
	cr_expect_eq(memcmp(s->buf + s->len - 2, "\r\n", 2), 0);
	cr_expect_eq(strcspn(tok, " \r\n"), s->len - 2 - strlen("Authorization: Bearer "));
	cr_expect_eq(s->buf[s->len], '\0');
	secret_free(s);
	jwt_key_free(k);
}

Test(jwt, jti_is_unique_across_1000_mints)
{
	enum { N = 1000 };
	struct jwt_key *k = load_ok();
	struct jwt_claims c = { .sub = "s", .aud = "a", .iat = 1, .nbf = 1, .exp = 9 };
	static char jtis[N][JWT_JTI_LEN];

	for (int i = 0; i < N; i++) {
		secret_free(mint(k, &c, NULL, NULL));
		cr_assert_eq(strlen(c.jti), JWT_JTI_LEN - 1);
		cr_assert_eq(strspn(c.jti, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
				    "0123456789-_"), JWT_JTI_LEN - 1, "jti is not base64url");
		memcpy(jtis[i], c.jti, JWT_JTI_LEN);
	}
	qsort(jtis, N, JWT_JTI_LEN, (int (*)(const void *, const void *))strcmp);
	for (int i = 1; i < N; i++)
		cr_expect_str_neq(jtis[i - 1], jtis[i], "jti repeated");
	jwt_key_free(k);
}

/* --- base64url (RFC 4648 10 vectors, in the url alphabet) ------------------------------ */

/* inline arrays, not pointers: Criterion runs each case in a re-executed process */
struct b64_case {
	char in[8];
	size_t len;
	char out[12];
};

ParameterizedTestParameters(jwt, b64url_encodes_rfc4648_vectors)
{
	static struct b64_case cases[] = {
		/* VALID */
		{ "", 0, "" },
		{ "f", 1, "Zg" },
		{ "fo", 2, "Zm8" },
		{ "foo", 3, "Zm9v" },
		{ "foob", 4, "Zm9vYg" },
		{ "fooba", 5, "Zm9vYmE" },
		{ "foobar", 6, "Zm9vYmFy" },
		/* URL ALPHABET: '-' and '_' instead of '+' and '/', no '=' */
		{ "\xfb\xff", 2, "-_8" },
		{ "\xff\xff\xfe", 3, "___-" },
	};

	return cr_make_param_array(struct b64_case, cases, sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct b64_case *t, jwt, b64url_encodes_rfc4648_vectors)
{
	char out[16];

	cr_expect_eq(jwt_b64url(t->in, t->len, out, sizeof(out)), strlen(t->out));
	cr_expect_str_eq(out, t->out);
}

Test(jwt, b64url_refuses_a_short_buffer)
{
	char out[4] = "xyz";

	/* "Zm9v" needs 5 bytes with its NUL */
	cr_expect_eq(jwt_b64url("foo", 3, out, sizeof(out)), 0);
	cr_expect_str_eq(out, "");
}

/* --- secret.c ----------------------------------------------------------------------- */

Test(secret, fingerprint_is_sha256_prefix_in_lowercase_hex)
{
	char fp[SECRET_FP_LEN];

	/* SHA-256("abc") = ba7816bf8f01cfea414140de5dae2223... (FIPS 180-2 B.1) */
	secret_fingerprint("abc", 3, fp);
	cr_expect_str_eq(fp, "sha256:ba7816bf8f01cfea");
	cr_expect_eq(strlen(fp), SECRET_FP_LEN - 1);
}

Test(secret, lives_in_the_secure_heap_once_initialised)
{
	struct secret *s;

	cr_assert_eq(secret_heap_init(100000), 0);	/* rounded up to a power of two */
	cr_expect_eq(secret_heap_init(65536), 0, "a second init is a no-op");
	s = secret_dup("token", 5);
	cr_assert_not_null(s);
	cr_expect(CRYPTO_secure_allocated(s->buf));
	cr_expect_str_eq(s->buf, "token");
	cr_expect_eq(s->len, 5);
	secret_free(s);
	secret_free(NULL);
}

Test(secret, works_without_a_secure_heap)
{
	struct secret *s = secret_new(8);

	cr_assert_not_null(s);
	cr_expect_eq(s->len, 8);
	for (size_t i = 0; i <= 8; i++)
		cr_expect_eq(s->buf[i], 0, "not zeroed at %zu", i);
	secret_free(s);
	cr_expect_eq(secret_heap_init(0), -EINVAL);
}

Test(secret, falls_back_to_the_normal_heap_when_the_secure_heap_is_full)
{
	struct secret *a, *b;

	cr_assert_eq(secret_heap_init(4096), 0);
	a = secret_new(3000);
	b = secret_new(3000);	/* does not fit any more */
	cr_assert(a && b);
	cr_expect(CRYPTO_secure_allocated(a->buf));
	cr_expect_not(CRYPTO_secure_allocated(b->buf));
	secret_free(a);
	secret_free(b);
}
