// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Copyright (c) 2026 The lanyard authors */
/*
 * Unit tests for userspace/discover.c: request lines, credential kinds, JWT claims,
 * truncated heads, the inventory (counters, bound, since), recommendations, the
 * unobservable list, and that no value ever reaches the JSON or the audit log.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "audit.h"
#include "control.h"
#include "daemon.h"
#include "discover.h"
#include "secret.h"
#include "lib/guard.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* JWTs (signatures are not verified: an inventory) */
#define JWT_FULL	"eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJodHRwczovL2lzc3Vlci50ZXN0" \
			"Iiwic3ViIjoic3ZjIiwiaWF0IjoxNzAwMDAwMDAwLCJleHAiOjE3MDAwMDM2MDB9.c2lnbmF0dXJl"
			/* iss https://issuer.test, iat 1700000000, exp +3600 */
#define JWT_NBF		"eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJhY21lIiwibmJmIjoxNzAwMDAwMDAwLCJleHAiOjE3MDAw" \
			"ODY0MDB9.c2ln"	/* iss acme, nbf, exp +86400 */
#define JWT_BARE	"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"	/* no iss, no exp */
#define JWT_EXPONLY	"eyJhbGciOiJub25lIn0.eyJpc3MiOiJpIiwiZXhwIjoxODAwMDAwMDAwfQ."
#define JWT_NOALG	"eyJ0eXAiOiJKV1QifQ.eyJpc3MiOiJ4IiwiZXhwIjoxfQ.c2ln"
#define JWT_HDRJUNK	"bm90IGpzb24.eyJpc3MiOiJ4In0.c2ln"
#define JWT_PAYJUNK	"eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.WzEsMg.c2ln"
#define JWT_PAYARRAY	"eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.WzEsMl0.c2ln"

#define REQ	"GET /v1/items HTTP/1.1\r\nHost: api.test\r\n"
#define END	"\r\n"

static const unsigned char test_key[DISCOVER_KEY_LEN] = "unit-test-discover-key-012345678";

static struct discover *disc_new(void)
{
	return discover_new(test_key, sizeof(test_key));
}

static char *cr_strdup(const char *s)
{
	size_t n;
	char *d;

	if (!s)
		return NULL;
	n = strlen(s) + 1;
	d = cr_malloc(n);
	cr_assert_not_null(d);
	memcpy(d, s, n);
	return d;
}

static struct discover_obs obs_of(const char *head, size_t len)
{
	return (struct discover_obs){
		.workload = "billing", .cgroup_id = 4242, .pid = 100, .exe = "/usr/bin/curl",
		.dst = "api.test:443", .sni = "api.test", .lib = "openssl", .head = head,
		.len = len,
	};
}

/* Observe head from a copy that ends at a guard page (an over-read faults). */
static int observe_at(struct discover *ds, struct discover_obs o, int64_t now)
{
	char *buf = guard_copy(o.head, o.len);
	int n;

	cr_assert_not_null(buf);
	o.head = buf;
	n = discover_observe(ds, &o, now);
	guard_free(buf, o.len);
	return n;
}

static int observe(struct discover *ds, const char *head, int64_t now)
{
	return observe_at(ds, obs_of(head, strlen(head)), now);
}

static json_t *secrets_of(struct discover *ds, int64_t since, json_t **all)
{
	*all = discover_json(ds, since);
	cr_assert_not_null(*all);
	return json_object_get(*all, "secrets");
}

static const char *jstr(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static long long jint(json_t *o, const char *k)
{
	return (long long)json_integer_value(json_object_get(o, k));
}

/* "hmac:" + 16 hex of HMAC-SHA256(key, value), computed apart from discover.c */
static void hmac_fp(const unsigned char *key, const char *value, char fp[SECRET_FP_LEN])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	cr_assert_not_null(HMAC(EVP_sha256(), key, DISCOVER_KEY_LEN, (const unsigned char *)value,
				strlen(value), md, &mdlen));
	snprintf(fp, SECRET_FP_LEN, "hmac:%02x%02x%02x%02x%02x%02x%02x%02x", md[0], md[1], md[2],
		 md[3], md[4], md[5], md[6], md[7]);
}

static void expect_fp(json_t *row, const char *value)
{
	char fp[SECRET_FP_LEN];

	hmac_fp(test_key, value, fp);
	cr_expect_str_eq(jstr(row, "fingerprint"), fp, "fingerprint of \"%s\"", value);
}

/* The whole inventory, dumped, must not hold the value (nor, for a long one, its half). */
static void expect_not_in_json(json_t *all, const char *value)
{
	char *dump = json_dumps(all, JSON_COMPACT);
	size_t n = strlen(value);

	cr_assert_not_null(dump);
	cr_expect_null(strstr(dump, value), "value \"%s\" in %s", value, dump);
	if (n >= 16) {
		char half[1024];

		snprintf(half, sizeof(half), "%.*s", (int)(n / 2), value + n / 4);
		cr_expect_null(strstr(dump, half), "part of \"%s\" in %s", value, dump);
	}
	free(dump);
}

/* --- request lines ------------------------------------------------------------------ */

struct reqline_case {
	const char *head;
	int rc;
	const char *method, *target, *host;	/* host NULL: none */
};

ParameterizedTestParameters(discover, parses_request_lines)
{
	static struct reqline_case cases[] = {
		/* VALID */
		{ "GET /a?b=c HTTP/1.1\r\nHost: api.test:8443\r\n\r\n", 0, "GET", "/a?b=c",
		  "api.test:8443" },
		{ "POST /x HTTP/1.0\r\n\r\n", 0, "POST", "/x", NULL },
		{ "GET / HTTP/1.1\nhost:  h.test  \n\n", 0, "GET", "/", "h.test" },
		{ "PUT /up HTTP/1.1\r\nX-A: 1\r\nHOST: up.test\r\n", 0, "PUT", "/up", "up.test" },
		{ "CONNECT api.test:443 HTTP/1.1\r\n\r\n", 0, "CONNECT", "api.test:443", NULL },
		/* TRUNCATED: a cut request line keeps what it has; a cut Host line is not used */
		{ "GET /very/long/pa", 0, "GET", "/very/long/pa", NULL },
		{ "GET /p HTTP/1.", 0, "GET", "/p", NULL },
		{ "GET /p HTTP/1.1\r\nHost: api.te", 0, "GET", "/p", NULL },
		/* MALFORMED */
		{ "", -EINVAL, NULL, NULL, NULL },
		{ "GET", -EINVAL, NULL, NULL, NULL },
		{ "GET ", -EINVAL, NULL, NULL, NULL },
		{ " GET / HTTP/1.1\r\n", -EINVAL, NULL, NULL, NULL },
		{ "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", -EINVAL, NULL, NULL, NULL },
		{ "GET / HTTP/1.1 x\r\n", -EINVAL, NULL, NULL, NULL },
		{ "GET /\r\n", -EINVAL, NULL, NULL, NULL },
		{ "\x16\x03\x01\x02\x00\x01", -EINVAL, NULL, NULL, NULL },
		{ "G(T / HTTP/1.1\r\n", -EINVAL, NULL, NULL, NULL },
	};
	struct reqline_case *p = cr_malloc(sizeof(cases));

	cr_assert_not_null(p);
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		p[i] = cases[i];
		p[i].head = cr_strdup(cases[i].head);
		p[i].method = cr_strdup(cases[i].method);
		p[i].target = cr_strdup(cases[i].target);
		p[i].host = cr_strdup(cases[i].host);
	}
	return cr_make_param_array(struct reqline_case, p, ARRAY_SIZE(cases));
}

ParameterizedTest(struct reqline_case *c, discover, parses_request_lines)
{
	size_t len = strlen(c->head);
	char *buf = guard_copy(c->head, len);
	struct discover_reqline rl;
	int rc;

	cr_assert_not_null(buf);
	rc = discover_parse_reqline(buf, len, &rl);
	cr_expect_eq(rc, c->rc, "rc %d for %s", rc, c->head);
	if (!rc && !c->rc) {
		cr_expect_eq(rl.method_len, strlen(c->method));
		cr_expect(!strncmp(rl.method, c->method, rl.method_len));
		cr_expect_eq(rl.target_len, strlen(c->target), "target %.*s",
			     (int)rl.target_len, rl.target);
		cr_expect(!strncmp(rl.target, c->target, rl.target_len));
		cr_expect_eq(rl.host_len, c->host ? strlen(c->host) : 0, "host %.*s",
			     (int)rl.host_len, rl.host ? rl.host : "");
		if (c->host)
			cr_expect(!strncmp(rl.host, c->host, rl.host_len));
	}
	guard_free(buf, len);
}

/* --- credential kinds --------------------------------------------------------------- */

struct cred_case {
	const char *head;
	int n;			/* what discover_observe returns */
	const char *kind, *header;	/* of the first row; NULL when n == 0 */
	const char *value;	/* what its fingerprint must be the SHA-256 of */
	const char *iss;	/* bearer_jwt: NULL = "iss" null */
	long long lifetime;	/* bearer_jwt: -1 = "lifetime_s" null */
	const char *rec;
	const char *secret;	/* must never show (the whole credential as sent) */
};

#define NONE(head)	{ head, 0, NULL, NULL, NULL, NULL, -1, NULL, NULL }

ParameterizedTestParameters(discover, classifies_credentials)
{
	static struct cred_case cases[] = {
		/* VALID: JWTs */
		{ REQ "Authorization: Bearer " JWT_FULL "\r\n" END, 1, "bearer_jwt", "authorization",
		  JWT_FULL, "https://issuer.test", 3600, "secretless", JWT_FULL },
		{ REQ "authorization: bearer   " JWT_NBF "  \r\n" END, 1, "bearer_jwt",
		  "authorization", JWT_NBF, "acme", 86400, "secretless", JWT_NBF },
		{ REQ "Authorization: Bearer " JWT_BARE "\r\n" END, 1, "bearer_jwt", "authorization",
		  JWT_BARE, NULL, -1, "secretless", JWT_BARE },
		{ REQ "Authorization: Bearer " JWT_EXPONLY "\r\n" END, 1, "bearer_jwt",
		  "authorization", JWT_EXPONLY, "i", -1, "secretless", JWT_EXPONLY },
		/* MALFORMED JWTs: opaque bearer tokens */
		{ REQ "Authorization: Bearer " JWT_NOALG "\r\n" END, 1, "bearer", "authorization",
		  JWT_NOALG, NULL, -1, "secrets_management", JWT_NOALG },
		{ REQ "Authorization: Bearer " JWT_HDRJUNK "\r\n" END, 1, "bearer", "authorization",
		  JWT_HDRJUNK, NULL, -1, "secrets_management", JWT_HDRJUNK },
		{ REQ "Authorization: Bearer " JWT_PAYJUNK "\r\n" END, 1, "bearer", "authorization",
		  JWT_PAYJUNK, NULL, -1, "secrets_management", JWT_PAYJUNK },
		{ REQ "Authorization: Bearer " JWT_PAYARRAY "\r\n" END, 1, "bearer", "authorization",
		  JWT_PAYARRAY, NULL, -1, "secrets_management", JWT_PAYARRAY },
		{ REQ "Authorization: Bearer " JWT_FULL ".x.y\r\n" END, 1, "bearer", "authorization",
		  JWT_FULL ".x.y", NULL, -1, "secrets_management", JWT_FULL },
		{ REQ "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0\r\n" END, 1,
		  "bearer", "authorization", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0", NULL, -1,
		  "secrets_management", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0" },
		{ REQ "Authorization: Bearer e$J.e$J.sig\r\n" END, 1, "bearer", "authorization",
		  "e$J.e$J.sig", NULL, -1, "secrets_management", "e$J.e$J.sig" },
		/* VALID: opaque bearer, Basic, other schemes */
		{ REQ "Authorization: Bearer sk-live-0123456789abcdef\r\n" END, 1, "bearer",
		  "authorization", "sk-live-0123456789abcdef", NULL, -1, "secrets_management",
		  "sk-live-0123456789abcdef" },
		{ REQ "Authorization: Basic dXNlcjpodW50ZXIy\r\n" END, 1, "basic", "authorization",
		  "dXNlcjpodW50ZXIy", NULL, -1, "secrets_management", "dXNlcjpodW50ZXIy" },
		{ REQ "Proxy-Authorization: BASIC cHJveHk6c2VjcmV0cHc=\r\n" END, 1, "basic",
		  "proxy-authorization", "cHJveHk6c2VjcmV0cHc=", NULL, -1, "secrets_management",
		  "cHJveHk6c2VjcmV0cHc=" },
		{ REQ "Authorization: token ghp_abcdefghij0123456789\r\n" END, 1, "api_key",
		  "authorization", "ghp_abcdefghij0123456789", NULL, -1, "secrets_management",
		  "ghp_abcdefghij0123456789" },
		{ REQ "Authorization: raw-static-key-0123456789\r\n" END, 1, "api_key",
		  "authorization", "raw-static-key-0123456789", NULL, -1, "secrets_management",
		  "raw-static-key-0123456789" },
		/* VALID: API-key headers */
		{ REQ "X-API-Key: k3y-0123456789-abcdef\r\n" END, 1, "api_key", "x-api-key",
		  "k3y-0123456789-abcdef", NULL, -1, "secrets_management", "k3y-0123456789-abcdef" },
		{ REQ "x-goog-api-key:AIzaSyA-0123456789abcdefg\r\n" END, 1, "api_key",
		  "x-goog-api-key", "AIzaSyA-0123456789abcdefg", NULL, -1, "secrets_management",
		  "AIzaSyA-0123456789abcdefg" },
		{ REQ "Private-Token: glpat-0123456789abcdefghij\r\n" END, 1, "api_key",
		  "private-token", "glpat-0123456789abcdefghij", NULL, -1, "secrets_management",
		  "glpat-0123456789abcdefghij" },
		{ REQ "Ocp-Apim-Subscription-Key: 0123456789abcdef0123456789abcdef\r\n" END, 1,
		  "api_key", "ocp-apim-subscription-key", "0123456789abcdef0123456789abcdef", NULL,
		  -1, "secrets_management", "0123456789abcdef0123456789abcdef" },
		/* an API key in a value with inner spaces: the whole value, OWS trimmed */
		{ REQ "Api-Key: \t two words-0123456789 \t\r\n" END, 1, "api_key", "api-key",
		  "two words-0123456789", NULL, -1, "secrets_management", "two words-0123456789" },
		/* VALID: AWS SigV4 (the access key id is fingerprinted) */
		{ REQ "Authorization: AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20260101/"
		  "us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-date, Signature=fe5f80f77d5fa"
		  "3beca038a248ff027d0445342fe2855ddc963176630326f1024\r\n" END, 1, "aws_sigv4",
		  "authorization", "AKIAIOSFODNN7EXAMPLE", NULL, -1, "secretless",
		  "AKIAIOSFODNN7EXAMPLE" },
		{ REQ "Authorization: AWS4-HMAC-SHA256 SignedHeaders=host,credential=ASIAEXAMPLEKEY0"
		  "0001/20260101/eu-west-1/sts/aws4_request,Signature=00\r\n" END, 1, "aws_sigv4",
		  "authorization", "ASIAEXAMPLEKEY00001", NULL, -1, "secretless",
		  "ASIAEXAMPLEKEY00001" },
		/* VALID: query parameters */
		{ "GET /maps?q=x&api_key=qk-0123456789abcdef&z=1 HTTP/1.1\r\nHost: a\r\n\r\n", 1,
		  "api_key", "?api_key", "qk-0123456789abcdef", NULL, -1, "secrets_management",
		  "qk-0123456789abcdef" },
		{ "GET /me?access_token=" JWT_FULL " HTTP/1.1\r\n\r\n", 1, "bearer_jwt",
		  "?access_token", JWT_FULL, "https://issuer.test", 3600, "secretless", JWT_FULL },
		{ "GET /o?X-Amz-Credential=AKIAPRESIGNED0000001%2F20260101%2Fus-east-1%2Fs3%2Faws4"
		  "_request&X-Amz-Signature=abcd HTTP/1.1\r\n\r\n", 1, "aws_sigv4",
		  "?x-amz-credential", "AKIAPRESIGNED0000001", NULL, -1, "secretless",
		  "AKIAPRESIGNED0000001" },
		/* NONE: no credential, or not one lanyard reports */
		NONE(REQ END),
		NONE(REQ "Accept: */*\r\nCookie: session=abc\r\nX-Api-Version: 2\r\n" END),
		NONE(REQ "Authorization: Digest username=\"u\", response=\"6629fae49393a05397450978"
		     "507c4ef1\", nonce=\"n\"\r\n" END),
		NONE(REQ "Authorization: Negotiate YIIGhgYGKwYBBQUCoIIGejCCBnagMDAuBgkqhkiC9xIB\r\n"
		     END),
		NONE(REQ "Authorization: OAuth oauth_consumer_key=\"k\", oauth_signature=\"s\"\r\n"
		     END),
		NONE(REQ "Authorization: Bearer\r\n" END),
		NONE(REQ "Authorization: Bearer    \r\n" END),
		NONE(REQ "X-Api-Key:\r\n" END),
		NONE(REQ "Authorization: AWS4-HMAC-SHA256 SignedHeaders=host, Signature=00\r\n" END),
		NONE("GET /?apikey= HTTP/1.1\r\n\r\n"),
		/* TRUNCATED: the cut last line is ignored, complete ones before it are not */
		NONE(REQ "X-Api-Key: cut-0123456789-abc"),
		NONE(REQ "X-Api-Key: cut-0123456789-abc\r"),
		NONE(REQ "Authorization: Bearer " JWT_FULL),
		NONE("GET /a?api_key=cut-in-the-request-line"),
		{ REQ "X-Api-Key: whole-0123456789\r\nAuthorization: Bearer cut-token-0123", 1,
		  "api_key", "x-api-key", "whole-0123456789", NULL, -1, "secrets_management",
		  "whole-0123456789" },
		/* AMBIGUOUS: header-like text where no header is (body, folded line, no head) */
		NONE(REQ END "X-Api-Key: body-0123456789\r\nAuthorization: Basic Ym9keTpib2R5\r\n"),
		NONE(REQ "X-Note: a\r\n X-Api-Key: folded-0123456789\r\n" END),
		NONE(REQ "X Api Key: spaced-0123456789\r\n" END),
		NONE("HTTP/1.1 200 OK\r\nX-Api-Key: response-0123456789\r\n\r\n"),
		NONE("{\"headers\": \"\r\nX-Api-Key: json-0123456789\r\n\"}"),
	};
	struct cred_case *p = cr_malloc(sizeof(cases));

	cr_assert_not_null(p);
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		p[i] = cases[i];
		p[i].head = cr_strdup(cases[i].head);
		p[i].kind = cr_strdup(cases[i].kind);
		p[i].header = cr_strdup(cases[i].header);
		p[i].value = cr_strdup(cases[i].value);
		p[i].iss = cr_strdup(cases[i].iss);
		p[i].rec = cr_strdup(cases[i].rec);
		p[i].secret = cr_strdup(cases[i].secret);
	}
	return cr_make_param_array(struct cred_case, p, ARRAY_SIZE(cases));
}

static void expect_jwt(json_t *row, const struct cred_case *c)
{
	json_t *jwt = json_object_get(row, "jwt");

	if (strcmp(c->kind, "bearer_jwt")) {
		cr_expect(json_is_null(jwt), "jwt must be null for %s", c->kind);
		return;
	}
	cr_assert(json_is_object(jwt));
	if (c->iss)
		cr_expect_str_eq(jstr(jwt, "iss"), c->iss);
	else
		cr_expect(json_is_null(json_object_get(jwt, "iss")));
	if (c->lifetime >= 0)
		cr_expect_eq(jint(jwt, "lifetime_s"), c->lifetime);
	else
		cr_expect(json_is_null(json_object_get(jwt, "lifetime_s")));
}

ParameterizedTest(struct cred_case *c, discover, classifies_credentials)
{
	struct discover *ds = disc_new();
	json_t *all, *secrets, *row;
	int n;

	cr_assert_not_null(ds);
	n = observe(ds, c->head, 1000);
	cr_expect_eq(n, c->n ? c->n : (n < 0 ? n : 0), "discover_observe %d for: %s", n, c->head);
	secrets = secrets_of(ds, 0, &all);
	cr_expect_eq(json_array_size(secrets), (size_t)c->n, "rows for: %s", c->head);
	if (c->n && json_array_size(secrets)) {
		row = json_array_get(secrets, 0);
		cr_expect_str_eq(jstr(row, "kind"), c->kind, "kind for: %s", c->head);
		cr_expect_str_eq(jstr(row, "header"), c->header);
		expect_fp(row, c->value);
		expect_jwt(row, c);
		cr_expect_str_eq(jstr(row, "recommendation"), c->rec);
		cr_expect_gt(strlen(jstr(row, "reason")), 20);
		cr_expect_str_eq(jstr(row, "workload"), "billing");
		cr_expect_str_eq(jstr(row, "exe"), "/usr/bin/curl");
		cr_expect_str_eq(jstr(row, "destination"), "api.test:443");
		cr_expect_str_eq(jstr(row, "sni"), "api.test");
		cr_expect_str_eq(jstr(row, "lib"), "openssl");
		cr_expect_eq(jint(row, "pid"), 100);
		cr_expect_eq(jint(row, "requests"), 1);
		cr_expect_eq(jint(row, "first_seen"), 1000);
		cr_expect_eq(jint(row, "last_seen"), 1000);
		expect_not_in_json(all, c->secret);
	}
	json_decref(all);
	discover_free(ds);
}

Test(discover, api_key_headers_match_in_any_case)
{
	static const char *const names[] = {
		"X-API-KEY", "x-api-key", "Api-Key", "X-Api-Token", "X-AUTH-TOKEN",
		"private-token", "X-Goog-Api-Key", "OCP-APIM-SUBSCRIPTION-KEY", "x-ApiKey",
		"X-Vault-Token", "DD-API-KEY",
	};
	struct discover *ds = disc_new();
	json_t *all, *secrets;
	char head[256], want[64];

	cr_assert_not_null(ds);
	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		snprintf(head, sizeof(head), REQ "%s: value-%zu-0123456789\r\n" END, names[i], i);
		cr_expect_eq(observe(ds, head, 10), 1, "%s", names[i]);
	}
	secrets = secrets_of(ds, 0, &all);
	cr_assert_eq(json_array_size(secrets), ARRAY_SIZE(names));
	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		json_t *row = json_array_get(secrets, i);
		size_t k;

		for (k = 0; names[i][k]; k++)
			want[k] = (char)(names[i][k] >= 'A' && names[i][k] <= 'Z' ? names[i][k] + 32
										  : names[i][k]);
		want[k] = '\0';
		cr_expect_str_eq(jstr(row, "header"), want);
		cr_expect_str_eq(jstr(row, "kind"), "api_key");
		snprintf(head, sizeof(head), "value-%zu-0123456789", i);
		expect_fp(row, head);
		expect_not_in_json(all, head);
	}
	json_decref(all);
	discover_free(ds);
}

Test(discover, every_credential_of_a_head_counts_once)
{
	struct discover *ds = disc_new();
	json_t *all, *secrets;

	cr_assert_not_null(ds);
	cr_expect_eq(observe(ds, REQ "X-Api-Key: k-0123456789\r\nAuthorization: Basic "
				 "dXNlcjpwdw==\r\nX-Api-Key: k-0123456789\r\n" END, 5), 2);
	secrets = secrets_of(ds, 0, &all);
	cr_assert_eq(json_array_size(secrets), 2);
	cr_expect_str_eq(jstr(json_array_get(secrets, 0), "kind"), "api_key");
	cr_expect_eq(jint(json_array_get(secrets, 0), "requests"), 1, "a repeated line is one use");
	cr_expect_str_eq(jstr(json_array_get(secrets, 1), "kind"), "basic");
	json_decref(all);
	discover_free(ds);
}

/* --- AWS ---------------------------------------------------------------------------- */

Test(discover, sigv4_tells_long_term_keys_from_sts_credentials)
{
	struct discover *ds = disc_new();
	json_t *all, *secrets;
	const char *r0, *r1;

	cr_assert_not_null(ds);
	observe(ds, REQ "Authorization: AWS4-HMAC-SHA256 Credential=AKIALONGTERM00000001/2026"
		"0101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=aa\r\n" END, 1);
	/* an AKIA-looking id with a session token is still temporary */
	observe(ds, REQ "X-Amz-Security-Token: FwoGZXIvYXdzEXAMPLESESSIONTOKEN0123456789\r\n"
		"Authorization: AWS4-HMAC-SHA256 Credential=AKIATEMPORARY0000002/20260101/us-east-1"
		"/s3/aws4_request, SignedHeaders=host, Signature=bb\r\n" END, 2);
	secrets = secrets_of(ds, 0, &all);
	cr_assert_eq(json_array_size(secrets), 2, "the session token is not a row of its own");
	r0 = jstr(json_array_get(secrets, 0), "reason");
	r1 = jstr(json_array_get(secrets, 1), "reason");
	cr_expect(strstr(r0, "long-term access key"), "%s", r0);
	cr_expect(strstr(r1, "temporary STS credentials"), "%s", r1);
	expect_fp(json_array_get(secrets, 1), "AKIATEMPORARY0000002");
	expect_not_in_json(all, "FwoGZXIvYXdzEXAMPLESESSIONTOKEN0123456789");
	expect_not_in_json(all, "AKIALONGTERM00000001");
	json_decref(all);

	/* the signature changes with every request: still one row per key */
	observe(ds, REQ "Authorization: AWS4-HMAC-SHA256 Credential=AKIALONGTERM00000001/2026"
		"0101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=cc\r\n" END, 3);
	secrets = secrets_of(ds, 0, &all);
	cr_expect_eq(json_array_size(secrets), 2);
	cr_expect_eq(jint(json_array_get(secrets, 0), "requests"), 2);
	json_decref(all);
	discover_free(ds);
}

/* --- the inventory ------------------------------------------------------------------ */

Test(discover, repeated_sightings_update_one_row)
{
	struct discover *ds = disc_new();
	struct discover_obs o;
	const char *head = REQ "X-Api-Key: same-0123456789\r\n" END;
	json_t *all, *secrets, *row;

	cr_assert_not_null(ds);
	cr_expect_eq(observe(ds, head, 100), 1);
	o = obs_of(head, strlen(head));
	o.pid = 222;
	o.sni = "api2.test";
	o.lib = "gnutls";
	cr_expect_eq(observe_at(ds, o, 200), 1);
	cr_expect_eq(observe(ds, head, 150), 1, "an older timestamp does not move last back");
	secrets = secrets_of(ds, 0, &all);
	cr_assert_eq(json_array_size(secrets), 1);
	row = json_array_get(secrets, 0);
	cr_expect_eq(jint(row, "requests"), 3);
	cr_expect_eq(jint(row, "first_seen"), 100);
	cr_expect_eq(jint(row, "last_seen"), 200);
	cr_expect_eq(jint(row, "pid"), 100, "pid of the last sighting");
	cr_expect_str_eq(jstr(row, "lib"), "openssl");
	cr_expect_str_eq(jstr(row, "sni"), "api.test");
	json_decref(all);

	/* another process, destination or workload is another row */
	o = obs_of(head, strlen(head));
	o.exe = "/usr/bin/python3";
	observe_at(ds, o, 300);
	o = obs_of(head, strlen(head));
	o.dst = "other.test:443";
	observe_at(ds, o, 300);
	o = obs_of(head, strlen(head));
	o.workload = "reports";
	observe_at(ds, o, 300);
	secrets = secrets_of(ds, 0, &all);
	cr_expect_eq(json_array_size(secrets), 4);
	json_decref(all);
	discover_free(ds);
}

Test(discover, only_the_injected_header_is_skipped)
{
	const char *head = REQ "Authorization: Bearer " JWT_FULL "\r\n"
			   "X-Api-Key: own-static-key-0123456789\r\n" END;
	struct discover *ds = disc_new();
	struct discover_obs o = obs_of(head, strlen(head));
	json_t *all, *secrets;

	cr_assert_not_null(ds);
	o.flow = 7;
	/* lanyardd overwrites Authorization (the policy's spelling, any case) */
	o.injected_header = "AUTHORIZATION";
	cr_expect_eq(observe_at(ds, o, 1), 1);
	secrets = secrets_of(ds, 0, &all);
	cr_assert_eq(json_array_size(secrets), 1);
	cr_expect_str_eq(jstr(json_array_get(secrets, 0), "header"), "x-api-key");
	expect_fp(json_array_get(secrets, 0), "own-static-key-0123456789");
	json_decref(all);

	/* a route that overwrites X-Api-Key: the app's bearer is its own */
	o.injected_header = "X-Api-Key";
	cr_expect_eq(observe_at(ds, o, 2), 1);
	secrets = secrets_of(ds, 0, &all);
	cr_assert_eq(json_array_size(secrets), 2);
	cr_expect_str_eq(jstr(json_array_get(secrets, 1), "kind"), "bearer_jwt");
	json_decref(all);

	/* an x509 route injects no header: everything the app sends is reported */
	o.injected_header = NULL;
	o.dst = "other.test:443";
	cr_expect_eq(observe_at(ds, o, 3), 2);
	secrets = secrets_of(ds, 3, &all);
	cr_expect_eq(json_array_size(secrets), 2);
	json_decref(all);
	discover_free(ds);
}

/* --- Authorization schemes ---------------------------------------------------------- */

Test(discover, unknown_schemes_are_never_shown)
{
	static const char *const heads[] = {
		REQ "Authorization: token ghp_abcdefghij0123456789\r\n" END,
		REQ "Authorization: AKIDsecretkeyid0123 c2VjcmV0LXBhcnQtMDEyMzQ1\r\n" END,
		REQ "Authorization: Weird-Scheme-Too-Long c2VjcmV0LXBhcnQtMDEyMzQ2\r\n" END,
		REQ "Authorization: SSWS 00abcdefghij0123456789\r\n" END,
	};
	static const char *const want[] = {
		"(scheme token)", "(scheme (unknown scheme))", "(scheme (unknown scheme))",
		"(scheme ssws)",
	};
	struct discover *ds = disc_new();
	json_t *all, *secrets;

	cr_assert_not_null(ds);
	for (size_t i = 0; i < ARRAY_SIZE(heads); i++)
		cr_expect_eq(observe(ds, heads[i], 1), 1, "%s", heads[i]);
	secrets = secrets_of(ds, 0, &all);
	cr_assert_eq(json_array_size(secrets), ARRAY_SIZE(heads));
	for (size_t i = 0; i < ARRAY_SIZE(heads); i++) {
		const char *reason = jstr(json_array_get(secrets, i), "reason");

		cr_expect_str_eq(jstr(json_array_get(secrets, i), "kind"), "api_key");
		cr_expect(reason && strstr(reason, want[i]), "%s: reason %s", want[i], reason);
	}
	expect_not_in_json(all, "AKIDsecretkeyid0123");
	expect_not_in_json(all, "Weird-Scheme");
	json_decref(all);
	discover_free(ds);
}

/* --- request targets ----------------------------------------------------------------- */

struct redact_case {
	const char *in, *out;
};

ParameterizedTestParameters(discover, redacts_request_targets)
{
	static struct redact_case cases[] = {
		{ "/v1/items", "/v1/items" },
		{ "/v1/items?api_key=abc#frag", "/v1/items" },
		{ "/v1/items#x", "/v1/items" },
		{ "/", "/" },
		{ "*", "*" },
		{ "", "" },
		/* Telegram: "bot<id>:<token>" */
		{ "/bot123456:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/sendMessage", "/*/sendMessage" },
		/* Slack webhook: ids mix letters and digits, the token is long */
		{ "/services/T0001ABCD/B0002EFGH/XXXXXXXXXXXXXXXXXXXXXXXX", "/services/*/*/*" },
		/* Discord webhook: a numeric id (kept: no letter) and a long token */
		{ "/api/webhooks/1234567890123456/abcDEF-token-value",
		  "/api/webhooks/1234567890123456/*" },
		{ "/api/webhooks/12345678901234567/tok", "/api/webhooks/*/tok" },
		/* absolute form: scheme, userinfo and host dropped */
		{ "http://user:pass@api.test:8080/v1/x?q=1", "/v1/x" },
		{ "https://api.test", "/" },
		{ "http://u:p@h?x=1", "/" },
		/* ':' or '@' anywhere in a segment, also percent-encoded */
		{ "/a:b/c@d/e%3Af/g%40h/ok", "/*/*/*/*/ok" },
		/* short mixed segments stay, mixed from 8 bytes go; 16 bytes stay, 17 go */
		{ "/v2/abc1234/abcd1234/abcdefghijklmnop/abcdefghijklmnopq",
		  "/v2/abc1234/*/abcdefghijklmnop/*" },
		{ "//x//", "//x//" },
		/* authority form (CONNECT) */
		{ "api.test:443", "*" },
	};
	struct redact_case *p = cr_malloc(sizeof(cases));

	cr_assert_not_null(p);
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		p[i].in = cr_strdup(cases[i].in);
		p[i].out = cr_strdup(cases[i].out);
	}
	return cr_make_param_array(struct redact_case, p, ARRAY_SIZE(cases));
}

ParameterizedTest(struct redact_case *c, discover, redacts_request_targets)
{
	char out[256];
	size_t n = strlen(c->in);
	char *buf = guard_copy(c->in, n);

	cr_assert(buf || !n);
	cr_expect_eq(discover_redact_target(n ? buf : "", n, out, sizeof(out)), strlen(c->out));
	cr_expect_str_eq(out, c->out, "redact(%s)", c->in);
	if (buf)
		guard_free(buf, n);
}

Test(discover, redaction_keeps_whole_segments_only)
{
	char out[12];

	/* "/aaaa/bbbb/cccc": 15 bytes; room for 11 + NUL keeps "/aaaa/bbbb/" */
	cr_expect_eq(discover_redact_target("/aaaa/bbbb/cccc", 15, out, sizeof(out)), 11);
	cr_expect_str_eq(out, "/aaaa/bbbb/");
	cr_expect_eq(discover_redact_target("/abc", 4, out, 1), 0);
	cr_expect_str_eq(out, "");
	cr_expect_eq(discover_redact_target(NULL, 4, out, sizeof(out)), 0);
	cr_expect_str_eq(out, "");
}

/* --- the fingerprint key ------------------------------------------------------------- */

Test(discover, fingerprints_are_keyed_per_install)
{
	static const unsigned char other[DISCOVER_KEY_LEN] = "another-install-key-0123456789ab";
	const char *head = REQ "Authorization: Basic dXNlcjpodW50ZXIy\r\n" END;
	struct discover *a = disc_new(), *b = discover_new(other, sizeof(other));
	char sha[SECRET_FP_LEN];
	json_t *ja, *jb;
	const char *fa, *fb;

	cr_assert(a && b);
	cr_expect_null(discover_new(other, 16), "a short key is refused");
	cr_expect_null(discover_new(NULL, DISCOVER_KEY_LEN));
	observe(a, head, 1);
	observe(b, head, 1);
	fa = jstr(json_array_get(secrets_of(a, 0, &ja), 0), "fingerprint");
	fb = jstr(json_array_get(secrets_of(b, 0, &jb), 0), "fingerprint");
	cr_assert(fa && fb);
	cr_expect_eq(strlen(fa), 21);
	cr_expect_eq(strncmp(fa, "hmac:", 5), 0);
	cr_expect_str_neq(fa, fb, "another key gives another fingerprint");
	secret_fingerprint("dXNlcjpodW50ZXIy", 16, sha);
	cr_expect_str_neq(fa + 5, sha + 7, "not the unkeyed SHA-256 prefix");
	json_decref(ja);
	json_decref(jb);
	discover_free(a);
	discover_free(b);
}

static void key_dir(char *dir, size_t len, char *path, size_t plen)
{
	snprintf(dir, len, "/tmp/ly-disckey-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, plen, "%s/%s", dir, DISCOVER_KEY_FILE);
}

Test(discover, the_key_file_is_created_once_and_refused_when_exposed)
{
	char dir[64], path[128], err[512];
	struct secret *k1, *k2;
	struct stat st;

	key_dir(dir, sizeof(dir), path, sizeof(path));
	k1 = discover_key_load_or_create(dir, err, sizeof(err));
	cr_assert_not_null(k1, "%s", err);
	cr_expect_eq(k1->len, DISCOVER_KEY_LEN);
	cr_assert_eq(stat(path, &st), 0);
	cr_expect_eq(st.st_mode & 07777, 0600);
	cr_expect_eq(st.st_size, DISCOVER_KEY_LEN);
	k2 = discover_key_load_or_create(dir, err, sizeof(err));
	cr_assert_not_null(k2, "%s", err);
	cr_expect_eq(memcmp(k1->buf, k2->buf, DISCOVER_KEY_LEN), 0, "the same key on restart");
	secret_free(k2);

	cr_assert_eq(chmod(path, 0640), 0);
	k2 = discover_key_load_or_create(dir, err, sizeof(err));
	cr_expect_null(k2);
	cr_expect(strstr(err, "group or other"), "%s", err);
	secret_free(k2);

	/* a FIFO or a symlink in its place is refused, without hanging */
	cr_assert_eq(unlink(path), 0);
	cr_assert_eq(mkfifo(path, 0600), 0);
	k2 = discover_key_load_or_create(dir, err, sizeof(err));
	cr_expect_null(k2);
	cr_expect(strstr(err, "not a regular file"), "%s", err);
	cr_assert_eq(unlink(path), 0);
	cr_assert_eq(symlink("/etc/hostname", path), 0);
	k2 = discover_key_load_or_create(dir, err, sizeof(err));
	cr_expect_null(k2);
	cr_expect(strstr(err, "symlink"), "%s", err);
	cr_assert_eq(unlink(path), 0);

	/* a key of the wrong size is refused rather than used */
	{
		int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);

		cr_assert_geq(fd, 0);
		cr_assert_eq(write(fd, "short", 5), 5);
		close(fd);
	}
	k2 = discover_key_load_or_create(dir, err, sizeof(err));
	cr_expect_null(k2);
	cr_expect(strstr(err, "expected size"), "%s", err);
	for (size_t i = 0; i < sizeof(err) && err[i]; i++)
		cr_expect(err[i] != 's' || strncmp(err + i, "short", 5), "key bytes in the error");
	cr_assert_eq(unlink(path), 0);
	cr_assert_eq(rmdir(dir), 0);
	secret_free(k1);
}

Test(discover, since_keeps_rows_last_seen_at_or_after_it)
{
	struct discover *ds = disc_new();
	json_t *all, *secrets;

	cr_assert_not_null(ds);
	observe(ds, REQ "X-Api-Key: old-0123456789\r\n" END, 100);
	observe(ds, REQ "X-Api-Key: new-0123456789\r\n" END, 200);
	observe(ds, REQ "X-Api-Key: both-0123456789\r\n" END, 100);
	observe(ds, REQ "X-Api-Key: both-0123456789\r\n" END, 300);
	discover_note_unobservable(ds, "billing", 9, "/usr/bin/go-app", "go crypto/tls",
				   "Go binary", 100);
	secrets = secrets_of(ds, 0, &all);
	cr_expect_eq(json_array_size(secrets), 3);
	cr_expect_eq(json_array_size(json_object_get(all, "unobservable")), 1);
	json_decref(all);
	secrets = secrets_of(ds, 200, &all);
	cr_assert_eq(json_array_size(secrets), 2);
	expect_fp(json_array_get(secrets, 0), "new-0123456789");
	expect_fp(json_array_get(secrets, 1), "both-0123456789");
	cr_expect_eq(jint(json_array_get(secrets, 1), "first_seen"), 100);
	cr_expect_eq(json_array_size(json_object_get(all, "unobservable")), 0);
	json_decref(all);
	secrets = secrets_of(ds, 301, &all);
	cr_expect_eq(json_array_size(secrets), 0);
	json_decref(all);
	discover_free(ds);
}

Test(discover, the_inventory_is_bounded_and_counts_what_it_drops)
{
	struct discover *ds = disc_new();
	json_t *all, *secrets;
	char head[128];
	int n = 0;

	cr_assert_not_null(ds);
	for (int i = 0; i < 4096 + 10; i++) {
		snprintf(head, sizeof(head), REQ "X-Api-Key: key-%06d\r\n" END, i);
		n += observe(ds, head, i) == 1;
	}
	cr_expect_eq(n, 4096 + 10, "every head is still parsed");
	secrets = secrets_of(ds, 0, &all);
	cr_expect_eq(json_array_size(secrets), 4096);
	cr_expect_eq(jint(all, "dropped"), 10);
	json_decref(all);
	/* rows already kept are still counted */
	observe(ds, REQ "X-Api-Key: key-000000\r\n" END, 99999);
	secrets = secrets_of(ds, 99999, &all);
	cr_assert_eq(json_array_size(secrets), 1);
	cr_expect_eq(jint(json_array_get(secrets, 0), "requests"), 2);
	cr_expect_eq(jint(all, "dropped"), 10);
	json_decref(all);
	discover_free(ds);
}

Test(discover, an_opaque_bearer_that_rotates_is_secretless)
{
	struct discover *ds = disc_new();
	json_t *all, *secrets;

	cr_assert_not_null(ds);
	observe(ds, REQ "Authorization: Bearer opaque-first-0123456789\r\n" END, 1);
	secrets = secrets_of(ds, 0, &all);
	cr_expect_str_eq(jstr(json_array_get(secrets, 0), "recommendation"), "secrets_management");
	json_decref(all);
	observe(ds, REQ "Authorization: Bearer opaque-second-0123456789\r\n" END, 2);
	/* a different destination does not count for this one */
	observe_at(ds, (struct discover_obs){ .workload = "billing", .exe = "/usr/bin/curl",
					     .dst = "elsewhere:443", .lib = "plain",
					     .head = REQ "Authorization: Bearer x-0123456789\r\n" END,
					     .len = strlen(REQ "Authorization: Bearer x-0123456789\r\n"
							   END) }, 3);
	secrets = secrets_of(ds, 0, &all);
	cr_assert_eq(json_array_size(secrets), 3);
	for (size_t i = 0; i < 2; i++) {
		json_t *row = json_array_get(secrets, i);

		cr_expect_str_eq(jstr(row, "recommendation"), "secretless");
		cr_expect(strstr(jstr(row, "reason"), "rotates (2 values seen)"), "%s",
			  jstr(row, "reason"));
	}
	cr_expect_str_eq(jstr(json_array_get(secrets, 2), "recommendation"), "secrets_management");
	cr_expect(json_is_null(json_object_get(json_array_get(secrets, 2), "sni")));
	cr_expect_str_eq(jstr(json_array_get(secrets, 2), "lib"), "plain");
	json_decref(all);
	discover_free(ds);
}

Test(discover, strings_from_the_app_are_cleaned_into_valid_json)
{
	/* a JWT whose iss is "\u00e9\t\"x" (valid UTF-8, but not printable ASCII) */
	static const char jwt[] = "eyJhbGciOiJIUzI1NiJ9.eyJpc3MiOiLDqVx0XCJ4In0.c2ln";
	char head[512];
	struct discover *ds = disc_new();
	struct discover_obs o;
	json_t *all, *secrets, *row;
	char *dump;

	cr_assert_not_null(ds);
	snprintf(head, sizeof(head), REQ "Authorization: Bearer %s\r\n" END, jwt);
	o = obs_of(head, strlen(head));
	o.exe = "/opt/\xff\xfe/app";
	o.dst = "h\x01st:1";
	o.sni = NULL;
	cr_expect_eq(observe_at(ds, o, 1), 1);
	secrets = secrets_of(ds, 0, &all);
	cr_assert_eq(json_array_size(secrets), 1);
	row = json_array_get(secrets, 0);
	cr_expect_str_eq(jstr(row, "exe"), "/opt/\\xff\\xfe/app");
	cr_expect_str_eq(jstr(row, "destination"), "h\\x01st:1");
	cr_expect_str_eq(jstr(json_object_get(row, "jwt"), "iss"), "\\xc3\\xa9\\x09\"x");
	dump = json_dumps(all, JSON_COMPACT);
	cr_assert_not_null(dump);
	json_decref(all);
	all = json_loads(dump, 0, NULL);
	cr_expect_not_null(all, "the dump parses again");
	free(dump);
	json_decref(all);
	discover_free(ds);
}

/* --- unobservable stacks ------------------------------------------------------------ */

Test(discover, unobservable_stacks_are_listed_once_per_workload_and_exe)
{
	struct discover *ds = disc_new();
	json_t *all, *u, *e;

	cr_assert_not_null(ds);
	discover_note_unobservable(ds, "billing", 10, "/srv/app", "go crypto/tls",
				   "Go binary (.go.buildinfo) without libssl", 100);
	discover_note_unobservable(ds, "billing", 11, "/srv/app", "go crypto/tls",
				   "Go binary (.go.buildinfo) without libssl", 150);
	discover_note_unobservable(ds, "reports", 12, "/srv/app", "go crypto/tls", "Go", 160);
	discover_note_unobservable(ds, "billing", 13, "/usr/bin/java", "java jsse", "JVM", 170);
	all = discover_json(ds, 0);
	u = json_object_get(all, "unobservable");
	cr_assert_eq(json_array_size(u), 3);
	e = json_array_get(u, 0);
	cr_expect_str_eq(jstr(e, "workload"), "billing");
	cr_expect_str_eq(jstr(e, "exe"), "/srv/app");
	cr_expect_str_eq(jstr(e, "stack"), "go crypto/tls");
	cr_expect_str_eq(jstr(e, "reason"), "Go binary (.go.buildinfo) without libssl");
	cr_expect_eq(jint(e, "pid"), 11);
	cr_expect_eq(jint(e, "first_seen"), 100);
	cr_expect_eq(jint(e, "last_seen"), 150);
	cr_expect_str_eq(jstr(json_array_get(u, 2), "stack"), "java jsse");
	json_decref(all);
	discover_free(ds);
}

static char *read_all(const char *path);
static size_t count(const char *hay, const char *needle);

Test(discover, a_non_ascii_exe_is_listed_and_audited_once)
{
	const char *exe = "/srv/caf\xc3\xa9/app\\x";
	char path[] = "/tmp/ly-disc-unobs.XXXXXX";
	struct discover *ds = disc_new();
	int fd = mkstemp(path);
	json_t *all, *u;
	char *log;

	cr_assert_not_null(ds);
	cr_assert_geq(fd, 0);
	close(fd);
	cr_assert_eq(audit_open(path), 0);
	for (int i = 0; i < 5; i++)
		discover_note_unobservable(ds, "billing", 10 + (uint32_t)i, exe, "rustls", "r",
					   100 + i);
	audit_flush();
	all = discover_json(ds, 0);
	u = json_object_get(all, "unobservable");
	cr_assert_eq(json_array_size(u), 1);
	cr_expect_str_eq(jstr(json_array_get(u, 0), "exe"), "/srv/caf\\xc3\\xa9/app\\x5cx");
	cr_expect_eq(jint(json_array_get(u, 0), "pid"), 14);
	cr_expect_eq(jint(json_array_get(u, 0), "last_seen"), 104);
	log = read_all(path);
	cr_expect_eq(count(log, "tls.unobservable"), 1, "audited once: %s", log);
	free(log);
	audit_close();
	unlink(path);
	json_decref(all);
	discover_free(ds);
}

/* --- the audit log ------------------------------------------------------------------ */

static char *read_all(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = calloc(1, 1 << 16);

	cr_assert_not_null(f);
	cr_assert_not_null(buf);
	cr_assert(fread(buf, 1, (1 << 16) - 1, f) > 0 || feof(f));
	fclose(f);
	return buf;
}

static size_t count(const char *hay, const char *needle)
{
	size_t n = 0;

	for (const char *p = hay; (p = strstr(p, needle)); p++)
		n++;
	return n;
}

Test(discover, audits_first_sight_only_and_never_a_value)
{
	static const char *const values[] = {
		JWT_FULL, "dXNlcjpodW50ZXIy", "k3y-0123456789-abcdef", "AKIAIOSFODNN7EXAMPLE",
		"opaque-0123456789abcdef",
	};
	char path[] = "/tmp/ly-discover-audit.XXXXXX";
	struct discover *ds = disc_new();
	int fd = mkstemp(path);
	char head[1024], *log;

	cr_assert_geq(fd, 0);
	close(fd);
	cr_assert_eq(audit_open(path), 0);
	cr_assert_not_null(ds);
	snprintf(head, sizeof(head), REQ "Authorization: Bearer %s\r\nX-Api-Key: %s\r\n"
		 "Proxy-Authorization: Basic %s\r\n" END, values[0], values[2], values[1]);
	for (int i = 0; i < 3; i++)
		cr_expect_eq(observe(ds, head, 10 + i), 3);
	snprintf(head, sizeof(head), REQ "Authorization: AWS4-HMAC-SHA256 Credential=%s/2026/"
		 "r/s/aws4_request, Signature=1\r\n" END, values[3]);
	observe(ds, head, 20);
	snprintf(head, sizeof(head), REQ "Authorization: Bearer %s\r\n" END, values[4]);
	observe(ds, head, 21);
	discover_note_unobservable(ds, "billing", 5, "/srv/go", "go crypto/tls", "Go", 22);
	discover_note_unobservable(ds, "billing", 6, "/srv/go", "go crypto/tls", "Go", 23);
	audit_close();
	log = read_all(path);
	unlink(path);
	cr_expect_eq(count(log, "\"event\":\"secret.discovered\""), 5, "%s", log);
	cr_expect_eq(count(log, "\"event\":\"tls.unobservable\""), 1, "%s", log);
	cr_expect(strstr(log, "\"jwt_iss\":\"https://issuer.test\""), "%s", log);
	cr_expect(strstr(log, "\"jwt_lifetime_s\":3600"), "%s", log);
	cr_expect(strstr(log, "\"kind\":\"basic\",\"header\":\"proxy-authorization\""), "%s",
		  log);
	cr_expect(strstr(log, "\"recommendation\":\"secretless\""));
	cr_expect(strstr(log, "\"cgroup\":4242"));
	for (size_t i = 0; i < ARRAY_SIZE(values); i++)
		cr_expect_null(strstr(log, values[i]), "value %s in the audit log", values[i]);
	free(log);
	discover_free(ds);
}

Test(discover, bad_arguments_are_refused)
{
	struct discover *ds = disc_new();
	struct discover_obs o = obs_of(NULL, 0);
	json_t *all;

	cr_assert_not_null(ds);
	cr_expect_eq(discover_observe(ds, &o, 1), -EINVAL);
	cr_expect_eq(discover_observe(ds, NULL, 1), -EINVAL);
	cr_expect_eq(discover_observe(NULL, &o, 1), -EINVAL);
	o = obs_of("GET / HTTP/1.1\r\n\r\n", 0);
	cr_expect_eq(discover_observe(ds, &o, 1), -EINVAL, "an empty head");
	discover_note_unobservable(NULL, "w", 1, "e", "s", "r", 1);
	all = discover_json(NULL, 0);
	cr_expect_eq(json_array_size(json_object_get(all, "secrets")), 0);
	json_decref(all);
	discover_free(NULL);
	discover_free(ds);
}

/* --- the control socket's "discover" command ------------------------------------------ */

/* control.o calls into main.c (the daemon's entry, not in the library): not used here */
int daemon_reload(struct daemon *d, char *err, size_t errlen)
{
	(void)d;
	snprintf(err, errlen, "not in this test");
	return -ENOSYS;
}

int daemon_revoke(struct daemon *d, const char *workload, const char *route, const char *jti)
{
	(void)d;
	(void)workload;
	(void)route;
	(void)jti;
	return -ENOSYS;
}

int daemon_workload_index(const struct daemon *d, uint32_t id)
{
	(void)d;
	(void)id;
	return -1;
}

const struct policy_route *daemon_route_for(const struct daemon *d, int wi, int family,
					    const uint8_t *addr, uint16_t port)
{
	(void)d;
	(void)wi;
	(void)family;
	(void)addr;
	(void)port;
	return NULL;
}

static json_t *control_req(struct daemon *d, const char *line)
{
	char *out = control_handle(d, line, strlen(line));
	json_t *r;

	cr_assert_not_null(out);
	cr_expect_eq(out[strlen(out) - 1], '\n', "one line");
	cr_expect_null(strstr(out, "live-key-0123456789"), "value in the answer: %s", out);
	r = json_loads(out, 0, NULL);
	cr_assert_not_null(r, "not JSON: %s", out);
	free(out);
	return r;
}

Test(discover, control_command_answers_the_inventory_since_a_time)
{
	struct daemon d = { 0 };
	json_t *r;

	d.disc = disc_new();
	cr_assert_not_null(d.disc);
	observe(d.disc, REQ "X-Api-Key: live-key-0123456789\r\n" END, 100);
	observe(d.disc, REQ "Authorization: Basic bGl2ZS1rZXktMDEyMzQ1Njc4OQ==\r\n" END, 200);

	r = control_req(&d, "{\"cmd\":\"discover\"}");
	cr_expect(json_is_true(json_object_get(r, "ok")));
	cr_expect_eq(jint(r, "since"), 0);
	cr_expect_eq(json_array_size(json_object_get(r, "secrets")), 2);
	cr_expect(json_is_array(json_object_get(r, "unobservable")));
	cr_expect_eq(jint(r, "dropped"), 0);
	json_decref(r);

	r = control_req(&d, "{\"cmd\":\"discover\",\"since\":150}");
	cr_expect_eq(jint(r, "since"), 150);
	cr_assert_eq(json_array_size(json_object_get(r, "secrets")), 1);
	cr_expect_str_eq(jstr(json_array_get(json_object_get(r, "secrets"), 0), "kind"), "basic");
	json_decref(r);

	/* refused: a bad since; counted as control errors */
	r = control_req(&d, "{\"cmd\":\"discover\",\"since\":-1}");
	cr_expect(json_is_false(json_object_get(r, "ok")));
	cr_expect(strstr(jstr(r, "error"), "since"));
	json_decref(r);
	r = control_req(&d, "{\"cmd\":\"discover\",\"since\":\"1h\"}");
	cr_expect(json_is_false(json_object_get(r, "ok")));
	json_decref(r);
	cr_expect_eq(d.m.control_errors, 2);

	discover_free(d.disc);
	d.disc = NULL;
	r = control_req(&d, "{\"cmd\":\"discover\"}");
	cr_expect(json_is_false(json_object_get(r, "ok")));
	cr_expect_str_eq(jstr(r, "error"), "discovery is not running");
	json_decref(r);
}
