// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Copyright (c) 2026 The lanyard authors */
/*
 * Self-test of the test identity provider (tests/servers/idp.py, tests/lib/idp.h): it issues
 * tokens only to requests that RFC 6749, 7523 and 8693 allow, refuses everything else with
 * the right error, and its control port breaks it in the ways the credential tests need.
 */
#include <errno.h>
#include <stdio.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <openssl/evp.h>

#include "lib/harness.h"
#include "lib/idp.h"
#include "lib/lanyard.h"

TestSuite(idp, H_FIXTURES, .timeout = 60);

#define CLIENT "billing"      /* private_key_jwt only */
#define CLIENT_BASIC "legacy" /* has a secret file */
#define CLIENT_ODD "odd"      /* a secret that needs form-encoding in Basic */
#define SECRET "s3cret-Basic.value-4217"
#define SECRET_ODD "p:ss+w rd"
#define SUBJECT_AUD "https://sts.test"
#define SPIFFE_ID LY_SUB("app")
#define EXPIRES_IN 30

/*
 * Keys and JWS for the tests, with PyJWT and cryptography.  Never prints a key or a token.
 *   keygen DIR: P-256 keys k1, k2 and Ed25519 key ed1 (DIR/<kid>.pem, 0600; DIR/<kid>.jwk);
 *               DIR/jwks.json holds k1 and ed1 -- k2 is a key the provider does not know
 *   jwks OUT JWK...: a JWKS file of these public keys
 *   sign KEY KID ALG CLAIMS OUT: a JWS; in CLAIMS, exp/iat/nbf are seconds from now and
 *               jti "auto" is a fresh UUID; ALG none signs nothing, HS256 keys an HMAC
 *               with the bytes of the file KEY (a public JWK: the alg confusion attack)
 */
static const char TOOL[] =
	"import json, os, sys, time, uuid\n"
	"import jwt\n"
	"from cryptography.hazmat.primitives import serialization as s\n"
	"from cryptography.hazmat.primitives.asymmetric import ec, ed25519\n"
	"from jwt.utils import base64url_encode as b64\n"
	"def write(path, data):\n"
	"    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)\n"
	"    os.write(fd, data)\n"
	"    os.close(fd)\n"
	"def keygen(d):\n"
	"    keys = {'k1': ec.generate_private_key(ec.SECP256R1()),\n"
	"            'k2': ec.generate_private_key(ec.SECP256R1()),\n"
	"            'ed1': ed25519.Ed25519PrivateKey.generate()}\n"
	"    pub = []\n"
	"    for kid, k in keys.items():\n"
	"        write(f'{d}/{kid}.pem', k.private_bytes(s.Encoding.PEM, s.PrivateFormat.PKCS8,\n"
	"                                                s.NoEncryption()))\n"
	"        if kid.startswith('ed'):\n"
	"            x = k.public_key().public_bytes(s.Encoding.Raw, s.PublicFormat.Raw)\n"
	"            j = {'kty': 'OKP', 'crv': 'Ed25519', 'x': b64(x).decode()}\n"
	"        else:\n"
	"            # RFC 7518 6.2.1.2: coordinates at the full length of the curve, 32 bytes\n"
	"            n = k.public_key().public_numbers()\n"
	"            x, y = (b64(v.to_bytes(32, 'big')).decode() for v in (n.x, n.y))\n"
	"            j = {'kty': 'EC', 'crv': 'P-256', 'x': x, 'y': y}\n"
	"        j.update(kid=kid, use='sig')\n"
	"        write(f'{d}/{kid}.jwk', json.dumps(j).encode())\n"
	"        if kid != 'k2':\n"
	"            pub.append(j)\n"
	"    write(f'{d}/jwks.json', json.dumps({'keys': pub}).encode())\n"
	"def jwks(out, files):\n"
	"    keys = [json.load(open(f)) for f in files]\n"
	"    write(out + '.tmp', json.dumps({'keys': keys}).encode())\n"
	"    os.rename(out + '.tmp', out)\n"
	"def sign(keyfile, kid, alg, claims, out):\n"
	"    raw = open(keyfile, 'rb').read()\n"
	"    key = None if alg == 'none' else raw if alg == 'HS256' else \\\n"
	"        s.load_pem_private_key(raw, None)\n"
	"    c = json.loads(claims)\n"
	"    for k in ('exp', 'iat', 'nbf'):\n"
	"        if isinstance(c.get(k), int):\n"
	"            c[k] += int(time.time())\n"
	"    if c.get('jti') == 'auto':\n"
	"        c['jti'] = str(uuid.uuid4())\n"
	"    write(out, jwt.encode(c, key, algorithm=alg, headers={'kid': kid}).encode())\n"
	"cmd = sys.argv[1]\n"
	"if cmd == 'keygen':\n"
	"    keygen(sys.argv[2])\n"
	"elif cmd == 'jwks':\n"
	"    jwks(sys.argv[2], sys.argv[3:])\n"
	"else:\n"
	"    sign(*sys.argv[2:7])\n";

struct world {
	struct ly_idp p;
	char *keys; /* the folder of keygen */
};

struct resp {
	int status;   /* HTTP status, 0 when none */
	int curl_rc;  /* curl's exit code (28: --max-time reached) */
	double secs;  /* curl's time_total */
	char *body;   /* malloc'd */
	size_t len;
	char *headers; /* malloc'd */
	json_t *json; /* the body parsed, or NULL */
};

/* --- helpers ------------------------------------------------------------------------------ */

static void tool(const char *arg0, ...) __attribute__((sentinel));
static void tool(const char *arg0, ...)
{
	char *args[16] = { LY_PYTHON, "-c", h_strf("%s", TOOL) };
	char *out = NULL;
	va_list ap;
	int n = 3, rc;

	va_start(ap, arg0);
	for (const char *a = arg0; a; a = va_arg(ap, const char *)) {
		cr_assert_lt(n, 15);
		args[n++] = h_strf("%s", a);
	}
	va_end(ap);
	args[n] = NULL;
	rc = h_run(args, NULL, 20000, &out);
	cr_assert_eq(rc, 0, "python tool %s: exit %d: %s", arg0, rc, out ? out : "");
	free(out);
}

static void world_start_jwks(struct world *w, const char *jwks)
{
	const char *secret = h_path("legacy.secret"), *odd = h_path("odd.secret");
	const char *clients[] = { CLIENT, h_strf(CLIENT_BASIC ":%s", secret),
				  h_strf(CLIENT_ODD ":%s", odd), NULL };

	cr_assert_eq(h_write_file(secret, SECRET "\n", 0600), 0);
	cr_assert_eq(h_write_file(odd, SECRET_ODD, 0600), 0);
	ly_idp_start(&w->p, jwks ? jwks : h_strf("%s/jwks.json", w->keys), clients, SUBJECT_AUD,
		     EXPIRES_IN);
}

/* Keys, then the provider on the JWKS file (clients billing, legacy, odd). */
static void world_start(struct world *w)
{
	memset(w, 0, sizeof(*w));
	w->keys = h_path("keys");
	cr_assert_eq(mkdir(w->keys, 0700), 0);
	tool("keygen", w->keys, NULL);
	world_start_jwks(w, NULL);
}

/*
 * A JWS signed with key @key_kid (a keygen kid, or a file name in the keys folder such as
 * "k1.jwk"), header kid @kid, @alg.  Claims: @base (a
 * JSON object text) with @over's members set on top (a null member removes the claim).
 */
static char *sign(struct world *w, const char *key_kid, const char *kid, const char *alg,
		  const char *base, const char *over)
{
	static int seq;
	json_t *c = json_loads(base, 0, NULL), *o = json_loads(over ? over : "{}", 0, NULL), *v;
	const char *k, *out = h_path("jws-%d", ++seq);
	char *text, *jws, *copy;

	cr_assert(json_is_object(c) && json_is_object(o), "bad claims JSON");
	json_object_foreach(o, k, v)
	{
		if (json_is_null(v))
			json_object_del(c, k);
		else
			json_object_set(c, k, v);
	}
	text = json_dumps(c, JSON_COMPACT);
	cr_assert(text);
	tool("sign", h_strf("%s/%s%s", w->keys, key_kid, strchr(key_kid, '.') ? "" : ".pem"),
	     kid, alg, text, out, NULL);
	jws = h_read_file(out, NULL);
	cr_assert(jws);
	unlink(out);
	copy = h_strf("%s", jws);
	free(jws);
	free(text);
	json_decref(c);
	json_decref(o);
	return copy;
}

/* The claims of a good client assertion of @client for this provider. */
static char *assertion_claims(struct world *w, const char *client)
{
	return h_strf("{\"iss\": \"%s\", \"sub\": \"%s\", \"aud\": \"%s\", \"exp\": 60, "
		      "\"iat\": 0, \"jti\": \"auto\"}",
		      client, client, w->p.token_url);
}

static char *good_assertion(struct world *w)
{
	return sign(w, "k1", "k1", "ES256", assertion_claims(w, CLIENT), NULL);
}

/* A lanyard-like JWT of the workload, for token exchange. */
static char *subject_token(struct world *w, const char *over)
{
	return sign(w, "k1", "k1", "ES256",
		    "{\"iss\": \"http://lanyard.test\", \"sub\": \"" SPIFFE_ID "\", \"aud\": \""
		    SUBJECT_AUD "\", \"exp\": 300, \"iat\": 0, \"nbf\": 0, \"jti\": \"auto\"}",
		    over);
}

static char *cc_form(const char *assertion, const char *extra)
{
	return h_strf("grant_type=client_credentials&client_assertion_type="
		      LY_IDP_ASSERTION_TYPE "&client_assertion=%s%s",
		      assertion, extra ? extra : "");
}

static char *tx_form(const char *subject, const char *extra)
{
	return h_strf("grant_type=" LY_IDP_GRANT_EXCHANGE "&subject_token=%s"
		      "&subject_token_type=" LY_IDP_TYPE_JWT "%s",
		      subject, extra ? extra : "");
}

/* "Authorization: Basic ..." of @user and @pass, both already form-encoded. */
static char *basic(const char *user, const char *pass)
{
	char *plain = h_strf("%s:%s", user, pass), out[512];
	int n = EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)plain,
				(int)strlen(plain));

	cr_assert_gt(n, 0);
	return h_strf("Authorization: Basic %s", out);
}

/*
 * curl POST @form to the token endpoint with the header line @header (NULL: none) and
 * Content-Type @ctype (NULL: the form type), --max-time @max_time; both go through 0600
 * files, so that no credential shows on a command line.
 */
static void post(struct world *w, const char *form, const char *header, const char *ctype,
		 int max_time, struct resp *r)
{
	static int seq;
	char *form_f = h_path("form-%d", ++seq), *body_f = h_path("resp-%d.body", seq);
	char *head_f = h_path("resp-%d.head", seq), *hdr_f = h_path("hdr-%d", seq), *out = NULL;
	char *ct = h_strf("Content-Type: %s", ctype ? ctype : "application/x-www-form-urlencoded");
	char *args[] = { "curl", "-sS", "--noproxy", "*", "--max-time", h_strf("%d", max_time),
			 "--cacert", w->p.ca_cert, "--resolve",
			 h_strf("localhost:%d:127.0.0.1", w->p.port), "-o", body_f, "-D", head_f,
			 "-w", "%{http_code} %{time_total}", "-H", ct,
			 "--data-binary", h_strf("@%s", form_f), "-H", h_strf("@%s", hdr_f),
			 w->p.token_url, NULL };

	memset(r, 0, sizeof(*r));
	cr_assert_eq(h_write_file(form_f, form, 0600), 0);
	/* an empty header file adds no header */
	cr_assert_eq(h_write_file(hdr_f, header ? header : "", 0600), 0);
	r->curl_rc = h_run(args, NULL, (max_time + 5) * 1000, &out);
	if (out && sscanf(out, "%d %lf", &r->status, &r->secs) != 2)
		r->status = 0;
	free(out);
	r->body = h_read_file(body_f, &r->len);
	r->headers = h_read_file(head_f, NULL);
	if (r->body)
		r->json = json_loadb(r->body, r->len, 0, NULL);
	unlink(form_f);
	unlink(hdr_f);
}

static void resp_free(struct resp *r)
{
	free(r->body);
	free(r->headers);
	json_decref(r->json);
	memset(r, 0, sizeof(*r));
}

static const char *jstr(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* An RFC 6749 5.2 error: @status, @error, and a description containing @why (or NULL). */
static void expect_error(const struct resp *r, int status, const char *error, const char *why,
			 const char *what)
{
	const char *desc = jstr(r->json, "error_description");

	cr_expect_eq(r->status, status, "%s: status %d, want %d (%s)", what, r->status, status,
		     desc ? desc : "-");
	cr_expect_str_eq(jstr(r->json, "error") ? jstr(r->json, "error") : "-", error,
			 "%s: error %s", what, jstr(r->json, "error"));
	if (why)
		cr_expect(desc && strstr(desc, why), "%s: error_description \"%s\" lacks \"%s\"",
			  what, desc ? desc : "", why);
}

/* A successful token response; the token (harness-owned) or NULL. */
static const char *expect_token(struct world *w, const struct resp *r, const char *what)
{
	const char *tok = jstr(r->json, "access_token");

	cr_expect_eq(r->status, 200, "%s: status %d (%s)", what, r->status,
		     jstr(r->json, "error_description") ? jstr(r->json, "error_description") : "-");
	cr_expect(tok && !strncmp(tok, "idp.", 4) && strlen(tok) > 30, "%s: no access_token",
		  what);
	cr_expect_str_eq(jstr(r->json, "token_type") ? jstr(r->json, "token_type") : "-",
			 "Bearer");
	cr_expect_eq(json_integer_value(json_object_get(r->json, "expires_in")), EXPIRES_IN);
	cr_expect(r->headers && strcasestr(r->headers, "\r\nCache-Control: no-store\r\n"),
		  "%s: no Cache-Control: no-store", what);
	if (tok)
		cr_expect(ly_idp_issued(&w->p, tok), "%s: the log lacks the token's sha256", what);
	return tok ? h_strf("%s", tok) : NULL;
}

/* POST form (no extra header, form-encoded, 10 s): a token is issued. */
static void expect_issued(struct world *w, const char *form, const char *what)
{
	struct resp r;

	post(w, form, NULL, NULL, 10, &r);
	expect_token(w, &r, what);
	resp_free(&r);
}

/* @value (a token, an assertion, a secret) appears nowhere in the provider's files. */
static void expect_not_leaked(struct world *w, const char *value, const char *what)
{
	cr_expect_eq(h_grep_tree_for(value, w->p.log, h_out_path(w->p.name),
				     h_err_path(w->p.name), NULL),
		     0, "%s leaked into the provider's log or output", what);
}

static json_t *last_log(struct world *w)
{
	json_t *all = ly_idp_log(&w->p), *last;

	last = json_incref(json_array_get(all, json_array_size(all) - 1));
	json_decref(all);
	cr_assert(last, "the provider logged nothing");
	return last;
}

static long long stat_of(json_t *st, const char *a, const char *b)
{
	json_t *v = json_object_get(b ? json_object_get(st, a) : st, b ? b : a);

	return json_is_integer(v) ? (long long)json_integer_value(v) : -1;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* --- client credentials, private_key_jwt -------------------------------------------------- */

Test(idp, private_key_jwt_issues_a_token)
{
	struct world w;
	struct resp r, r2;
	const char *a, *tok, *tok2;
	json_t *line;

	world_start(&w);
	a = good_assertion(&w);
	post(&w, cc_form(a, "&scope=invoices.read&resource=https%3A%2F%2Fapi.test%2F"), NULL, NULL,
	     10, &r);
	tok = expect_token(&w, &r, "private_key_jwt");
	cr_expect_str_eq(jstr(r.json, "scope") ? jstr(r.json, "scope") : "-", "invoices.read");
	cr_expect_null(json_object_get(r.json, "issued_token_type"));

	line = last_log(&w);
	cr_expect_str_eq(jstr(line, "grant"), "client_credentials");
	cr_expect_str_eq(jstr(line, "auth"), "private_key_jwt");
	cr_expect_str_eq(jstr(line, "client_id"), CLIENT);
	cr_expect_str_eq(jstr(line, "scope"), "invoices.read");
	cr_expect_str_eq(json_string_value(json_array_get(json_object_get(line, "resource"), 0)),
			 "https://api.test/");
	cr_expect(jstr(line, "jti") && strlen(jstr(line, "jti")) == 36, "no jti logged");
	cr_expect_eq(json_integer_value(json_object_get(line, "status")), 200);
	cr_expect(json_is_null(json_object_get(line, "error")));
	json_decref(line);

	/* a second assertion: another token, unique per issuance */
	post(&w, cc_form(good_assertion(&w), NULL), NULL, NULL, 10, &r2);
	tok2 = expect_token(&w, &r2, "second assertion");
	cr_expect(tok && tok2 && strcmp(tok, tok2), "the same token issued twice");
	cr_expect_eq(ly_idp_stat(&w.p, "issued"), 2);

	cr_assert(tok && tok2);
	expect_not_leaked(&w, tok, "an issued token");
	expect_not_leaked(&w, tok2, "an issued token");
	expect_not_leaked(&w, a, "a client assertion");
	resp_free(&r);
	resp_free(&r2);
}

Test(idp, eddsa_and_an_aud_list_are_accepted)
{
	struct world w;
	struct resp r;

	world_start(&w);
	post(&w,
	     cc_form(sign(&w, "ed1", "ed1", "EdDSA", assertion_claims(&w, CLIENT),
			  h_strf("{\"aud\": [\"https://elsewhere.test\", \"%s\"]}", w.p.token_url)),
		     h_strf("&client_id=%s", CLIENT)),
	     NULL, NULL, 10, &r);
	expect_token(&w, &r, "EdDSA, aud list, client_id");
	resp_free(&r);
}

Test(idp, a_replayed_assertion_is_refused)
{
	struct world w;
	struct resp r1, r2;
	char *form;

	world_start(&w);
	form = cc_form(good_assertion(&w), NULL);
	post(&w, form, NULL, NULL, 10, &r1);
	expect_token(&w, &r1, "first use");
	post(&w, form, NULL, NULL, 10, &r2);
	expect_error(&r2, 401, "invalid_client", "jti replayed", "second use");
	cr_expect_eq(ly_idp_stat(&w.p, "issued"), 1);
	cr_expect_eq(ly_idp_stat(&w.p, "rejected"), 1);
	resp_free(&r1);
	resp_free(&r2);
}

/* One claim of a good assertion changed (@over), and the part of the error that says why. */
struct bad_claim {
	const char *what, *over, *why;
};

Test(idp, assertion_claims_are_checked)
{
	const struct bad_claim cases[] = {
		{ "wrong aud", "{\"aud\": \"https://localhost/other\"}", "InvalidAudienceError" },
		{ "aud missing", "{\"aud\": null}", "aud" },
		{ "exp 330 s away", "{\"exp\": 330}", "more than 300" },
		{ "exp an hour away", "{\"exp\": 3600}", "more than 300" },
		{ "expired", "{\"exp\": -10}", "expired" },
		{ "exp missing", "{\"exp\": null}", "exp missing" },
		{ "exp a string", "{\"exp\": \"soon\"}", "exp missing" },
		{ "iat in the future", "{\"iat\": 600}", "iat" },
		{ "nbf in the future", "{\"nbf\": 600}", "nbf" },
		{ "jti missing", "{\"jti\": null}", "jti missing" },
		{ "iss is not sub", "{\"iss\": \"" CLIENT_BASIC "\"}", "iss and sub" },
		{ "unregistered client", "{\"iss\": \"mallory\", \"sub\": \"mallory\"}",
		  "unknown client" },
	};
	struct world w;
	struct resp r;
	size_t i;

	world_start(&w);
	/* the base claims are good: each refusal below comes from its one change */
	expect_issued(&w, cc_form(good_assertion(&w), NULL), "the base claims");
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		post(&w,
		     cc_form(sign(&w, "k1", "k1", "ES256", assertion_claims(&w, CLIENT),
				  cases[i].over),
			     NULL),
		     NULL, NULL, 10, &r);
		expect_error(&r, 401, "invalid_client", cases[i].why, cases[i].what);
		resp_free(&r);
	}
	/* a client_id parameter that names another client than the assertion */
	post(&w, cc_form(good_assertion(&w), "&client_id=" CLIENT_BASIC), NULL, NULL, 10, &r);
	expect_error(&r, 401, "invalid_client", "client_id does not match", "client_id mismatch");
	resp_free(&r);
	post(&w, h_strf("grant_type=client_credentials&client_assertion_type=urn:x&"
			"client_assertion=%s", good_assertion(&w)),
	     NULL, NULL, 10, &r);
	expect_error(&r, 401, "invalid_client", "client_assertion_type", "wrong assertion type");
	resp_free(&r);
	cr_expect_eq(ly_idp_stat(&w.p, "issued"), 1);
}

Test(idp, keys_and_algs_are_checked)
{
	struct world w;
	struct resp r;
	char *claims;

	world_start(&w);
	claims = assertion_claims(&w, CLIENT);
	/* k2 is not in the JWKS */
	post(&w, cc_form(sign(&w, "k2", "k2", "ES256", claims, NULL), NULL), NULL, NULL, 10, &r);
	expect_error(&r, 401, "invalid_client", "unknown kid", "unknown kid");
	resp_free(&r);
	/* signed by k2, claiming to be k1 */
	post(&w, cc_form(sign(&w, "k2", "k1", "ES256", claims, NULL), NULL), NULL, NULL, 10, &r);
	expect_error(&r, 401, "invalid_client", "InvalidSignatureError", "wrong key");
	resp_free(&r);
	/* unsigned, and HMAC keyed with the public JWK (the classic alg confusion) */
	post(&w, cc_form(sign(&w, "k1", "k1", "none", claims, NULL), NULL), NULL, NULL, 10, &r);
	expect_error(&r, 401, "invalid_client", "not accepted", "alg none");
	resp_free(&r);
	post(&w, cc_form(sign(&w, "k1.jwk", "k1", "HS256", claims, NULL), NULL), NULL, NULL, 10,
	     &r);
	expect_error(&r, 401, "invalid_client", "not accepted", "alg HS256");
	resp_free(&r);
	/* an Ed25519 key cannot be used as ES256 and the reverse: the key fixes the alg */
	post(&w, cc_form(sign(&w, "k1", "ed1", "ES256", claims, NULL), NULL), NULL, NULL, 10, &r);
	expect_error(&r, 401, "invalid_client", "does not match the key", "ES256 with ed1");
	resp_free(&r);
	post(&w, cc_form("not.a.jws", NULL), NULL, NULL, 10, &r);
	expect_error(&r, 401, "invalid_client", NULL, "not a JWS");
	resp_free(&r);
	cr_expect_eq(ly_idp_stat(&w.p, "issued"), 0);
}

Test(idp, the_jwks_url_is_refetched_on_an_unknown_kid)
{
	char *dir = h_path("www"), *jwks;
	int port = h_free_port();
	struct world w;
	struct resp r;
	pid_t srv;

	memset(&w, 0, sizeof(w));
	w.keys = h_path("keys");
	cr_assert_eq(mkdir(w.keys, 0700), 0);
	cr_assert_eq(mkdir(dir, 0755), 0);
	tool("keygen", w.keys, NULL);
	jwks = h_strf("%s/jwks.json", dir);
	/* a key PyJWT cannot use (short coordinates) must not make the others unusable */
	cr_assert_eq(h_write_file(h_path("bad.jwk"), "{\"kty\": \"EC\", \"crv\": \"P-256\", "
				  "\"x\": \"AQ\", \"y\": \"AQ\", \"kid\": \"bad\"}", 0644), 0);
	tool("jwks", jwks, h_path("bad.jwk"), h_strf("%s/k1.jwk", w.keys), NULL);
	srv = h_spawnl("jwks-http", NULL, LY_PYTHON, "-m", "http.server", "--bind", "127.0.0.1",
		       "--directory", dir, h_strf("%d", port), NULL);
	cr_assert_gt(srv, 0);
	cr_assert_eq(h_wait_port("127.0.0.1", port, 10000), 0);
	world_start_jwks(&w, h_strf("http://127.0.0.1:%d/jwks.json", port));

	expect_issued(&w, cc_form(good_assertion(&w), NULL), "k1 from the JWKS URL");
	post(&w, cc_form(sign(&w, "k2", "k2", "ES256", assertion_claims(&w, CLIENT), NULL), NULL),
	     NULL, NULL, 10, &r);
	expect_error(&r, 401, "invalid_client", "unknown kid", "k2 before rotation");
	resp_free(&r);
	/* the issuer publishes k2: the next unknown kid makes the provider fetch again */
	tool("jwks", jwks, h_path("bad.jwk"), h_strf("%s/k1.jwk", w.keys),
	     h_strf("%s/k2.jwk", w.keys), NULL);
	expect_issued(&w, cc_form(sign(&w, "k2", "k2", "ES256", assertion_claims(&w, CLIENT), NULL),
				  NULL),
		      "k2 after rotation");
}

/* --- client_secret_basic and authentication methods --------------------------------------- */

Test(idp, client_secret_basic_is_checked)
{
	struct world w;
	struct resp r;
	const char *tok;
	json_t *line;

	world_start(&w);
	post(&w, "grant_type=client_credentials", basic(CLIENT_BASIC, SECRET), NULL, 10, &r);
	tok = expect_token(&w, &r, "right secret");
	line = last_log(&w);
	cr_expect_str_eq(jstr(line, "auth"), "client_secret_basic");
	cr_expect_str_eq(jstr(line, "client_id"), CLIENT_BASIC);
	json_decref(line);
	cr_assert(tok);
	expect_not_leaked(&w, tok, "an issued token");
	resp_free(&r);

	post(&w, "grant_type=client_credentials", basic(CLIENT_BASIC, SECRET "x"), NULL, 10, &r);
	expect_error(&r, 401, "invalid_client", "wrong client secret", "wrong secret");
	cr_expect(r.headers && strcasestr(r.headers, "\r\nWWW-Authenticate: Basic "),
		  "no WWW-Authenticate: Basic challenge");
	resp_free(&r);
	/* billing has no secret: private_key_jwt only */
	post(&w, "grant_type=client_credentials", basic(CLIENT, SECRET), NULL, 10, &r);
	expect_error(&r, 401, "invalid_client", "no secret registered", "client without secret");
	resp_free(&r);
	/* RFC 6749 2.3.1: id and secret are form-encoded before base64 */
	post(&w, "grant_type=client_credentials", basic(CLIENT_ODD, "p%3Ass%2Bw+rd"), NULL, 10, &r);
	expect_token(&w, &r, "form-encoded secret");
	resp_free(&r);
	post(&w, "grant_type=client_credentials", basic(CLIENT_ODD, SECRET_ODD), NULL, 10, &r);
	expect_error(&r, 401, "invalid_client", "wrong client secret", "secret not form-encoded");
	resp_free(&r);
	post(&w, "grant_type=client_credentials", "Authorization: Basic !!notbase64", NULL, 10, &r);
	expect_error(&r, 401, "invalid_client", "malformed", "bad base64");
	resp_free(&r);
	expect_not_leaked(&w, SECRET, "the client secret");
	cr_expect_eq(ly_idp_stat(&w.p, "issued"), 2);
}

Test(idp, exactly_one_authentication_method)
{
	struct world w;
	struct resp r;

	world_start(&w);
	post(&w, cc_form(good_assertion(&w), NULL), basic(CLIENT_BASIC, SECRET), NULL, 10, &r);
	expect_error(&r, 400, "invalid_request", "more than one", "assertion and Basic");
	resp_free(&r);
	post(&w, "grant_type=client_credentials", NULL, NULL, 10, &r);
	expect_error(&r, 401, "invalid_client", "required", "no authentication");
	resp_free(&r);
	post(&w, "grant_type=client_credentials&client_id=" CLIENT, NULL, NULL, 10, &r);
	expect_error(&r, 401, "invalid_client", "required", "client_id alone");
	resp_free(&r);
	post(&w, "grant_type=client_credentials&client_id=" CLIENT_BASIC "&client_secret=" SECRET,
	     NULL, NULL, 10, &r);
	expect_error(&r, 401, "invalid_client", "client_secret_post", "client_secret_post");
	resp_free(&r);
	cr_expect_eq(ly_idp_stat(&w.p, "issued"), 0);
}

/* --- token exchange ----------------------------------------------------------------------- */

Test(idp, token_exchange_issues_a_token)
{
	struct world w;
	struct resp r;
	const char *subject, *tok;
	json_t *line;

	world_start(&w);
	subject = subject_token(&w, NULL);
	post(&w,
	     tx_form(subject, "&audience=https%3A%2F%2Fapi.test&requested_token_type="
			      LY_IDP_TYPE_ACCESS),
	     NULL, NULL, 10, &r);
	tok = expect_token(&w, &r, "token exchange");
	cr_expect_str_eq(jstr(r.json, "issued_token_type") ? jstr(r.json, "issued_token_type")
							   : "-",
			 LY_IDP_TYPE_ACCESS);
	line = last_log(&w);
	cr_expect_str_eq(jstr(line, "grant"), LY_IDP_GRANT_EXCHANGE);
	cr_expect_str_eq(jstr(line, "sub"), SPIFFE_ID);
	cr_expect_str_eq(jstr(line, "auth"), "none");
	cr_expect_str_eq(json_string_value(json_array_get(json_object_get(line, "audience"), 0)),
			 "https://api.test");
	json_decref(line);
	cr_assert(tok);
	expect_not_leaked(&w, tok, "an issued token");
	expect_not_leaked(&w, subject, "a subject token");
	resp_free(&r);

	/* client authentication is optional, but checked when present */
	post(&w, tx_form(subject_token(&w, NULL), h_strf("&client_assertion_type="
		LY_IDP_ASSERTION_TYPE "&client_assertion=%s", good_assertion(&w))),
	     NULL, NULL, 10, &r);
	expect_token(&w, &r, "token exchange with private_key_jwt");
	line = last_log(&w);
	cr_expect_str_eq(jstr(line, "auth"), "private_key_jwt");
	json_decref(line);
	resp_free(&r);
	post(&w, tx_form(subject_token(&w, NULL), NULL), basic(CLIENT_BASIC, "wrong"), NULL, 10,
	     &r);
	expect_error(&r, 401, "invalid_client", "wrong client secret", "exchange, bad secret");
	resp_free(&r);
}

Test(idp, token_exchange_checks_the_subject_token)
{
	const struct bad_claim cases[] = {
		{ "wrong aud", "{\"aud\": \"https://other.test\"}", "InvalidAudienceError" },
		{ "expired", "{\"exp\": -5}", "expired" },
		{ "exp missing", "{\"exp\": null}", "exp missing" },
		{ "sub not SPIFFE", "{\"sub\": \"app\"}", "SPIFFE" },
		{ "sub missing", "{\"sub\": null}", "SPIFFE" },
	};
	struct world w;
	struct resp r;
	size_t i;

	world_start(&w);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		post(&w, tx_form(subject_token(&w, cases[i].over), NULL), NULL, NULL, 10, &r);
		expect_error(&r, 400, "invalid_request", cases[i].why, cases[i].what);
		resp_free(&r);
	}
	post(&w,
	     tx_form(sign(&w, "k2", "k2", "ES256", "{\"sub\": \"" SPIFFE_ID "\", \"aud\": \""
			  SUBJECT_AUD "\", \"exp\": 60}", NULL), NULL),
	     NULL, NULL, 10, &r);
	expect_error(&r, 400, "invalid_request", "unknown kid", "subject signed by k2");
	resp_free(&r);
	post(&w,
	     h_strf("grant_type=" LY_IDP_GRANT_EXCHANGE "&subject_token=%s&subject_token_type="
		    LY_IDP_TYPE_ACCESS, subject_token(&w, NULL)),
	     NULL, NULL, 10, &r);
	expect_error(&r, 400, "invalid_request", "subject_token_type", "access_token type");
	resp_free(&r);
	post(&w, "grant_type=" LY_IDP_GRANT_EXCHANGE "&subject_token_type=" LY_IDP_TYPE_JWT, NULL,
	     NULL, 10, &r);
	expect_error(&r, 400, "invalid_request", "subject_token missing", "no subject_token");
	resp_free(&r);
	post(&w,
	     tx_form(subject_token(&w, NULL),
		     "&requested_token_type=urn:ietf:params:oauth:token-type:id_token"),
	     NULL, NULL, 10, &r);
	expect_error(&r, 400, "invalid_request", "requested_token_type", "id_token requested");
	resp_free(&r);
	/* the same token is fine: each refusal came from its one change */
	expect_issued(&w, tx_form(subject_token(&w, NULL), NULL), "the base subject token");
	cr_expect_eq(ly_idp_stat(&w.p, "issued"), 1);
}

/* --- malformed requests ------------------------------------------------------------------- */

Test(idp, malformed_requests_are_refused_and_survived)
{
	struct world w;
	struct resp r;
	char *out = NULL;
	int rc;

	world_start(&w);
	post(&w, "grant_type=password&username=a&password=b", NULL, NULL, 10, &r);
	expect_error(&r, 400, "unsupported_grant_type", NULL, "password grant");
	resp_free(&r);
	post(&w, "scope=x", NULL, NULL, 10, &r);
	expect_error(&r, 400, "invalid_request", "grant_type missing", "no grant_type");
	resp_free(&r);
	post(&w, "{\"grant_type\": \"client_credentials\"}", NULL, "application/json", 10, &r);
	expect_error(&r, 400, "invalid_request", "Content-Type", "JSON body");
	resp_free(&r);
	post(&w, cc_form(good_assertion(&w), "&grant_type=client_credentials"), NULL, NULL, 10, &r);
	expect_error(&r, 400, "invalid_request", "repeated", "grant_type twice");
	resp_free(&r);
	post(&w, "grant_type=client_credentials&scope=%FF%FE", NULL, NULL, 10, &r);
	expect_error(&r, 400, "invalid_request", "malformed", "not UTF-8");
	resp_free(&r);
	post(&w, "grant_type", NULL, NULL, 10, &r);
	expect_error(&r, 400, "invalid_request", "malformed", "no '='");
	resp_free(&r);
	post(&w, cc_form(good_assertion(&w), "&scope=a%22b"), NULL, NULL, 10, &r);
	expect_error(&r, 400, "invalid_scope", NULL, "scope with a quote");
	resp_free(&r);
	post(&w, cc_form(good_assertion(&w), "&resource=relative%2Fpath"), NULL, NULL, 10, &r);
	expect_error(&r, 400, "invalid_target", NULL, "relative resource");
	resp_free(&r);

	/* GET on the endpoint, plain HTTP into the TLS port, an unknown path */
	rc = h_runl(NULL, 15000, &out, LY_CURL, "--cacert", w.p.ca_cert, "-o", "/dev/null", "-w",
		    "%{http_code}", "--resolve", h_strf("localhost:%d:127.0.0.1", w.p.port),
		    w.p.token_url, NULL);
	cr_expect(rc == 0 && out && !strcmp(out, "405"), "GET /token: %d %s", rc, out);
	free(out);
	rc = h_runl(NULL, 15000, NULL, LY_CURL, "-d", "grant_type=x",
		    h_strf("http://127.0.0.1:%d/token", w.p.port), NULL);
	cr_expect_neq(rc, 0, "plain HTTP was answered on the TLS port");

	cr_expect(h_alive(w.p.pid), "the provider died");
	expect_issued(&w, cc_form(good_assertion(&w), NULL), "after the bad requests");
	cr_expect_eq(h_file_size(h_err_path(w.p.name)), 0, "the provider wrote to stderr");
}

/* --- the control port --------------------------------------------------------------------- */

Test(idp, mode_fail_answers_the_status)
{
	struct world w;
	struct resp r;

	world_start(&w);
	cr_assert_eq(ly_idp_mode(&w.p, "set=fail&status=503"), 0);
	post(&w, cc_form(good_assertion(&w), NULL), NULL, NULL, 10, &r);
	expect_error(&r, 503, "server_error", NULL, "fail 503");
	resp_free(&r);
	cr_assert_eq(ly_idp_mode(&w.p, "set=fail"), 0);
	post(&w, cc_form(good_assertion(&w), NULL), NULL, NULL, 10, &r);
	expect_error(&r, 500, "server_error", NULL, "fail, default status");
	resp_free(&r);
	cr_assert_eq(ly_idp_mode(&w.p, "set=ok"), 0);
	expect_issued(&w, cc_form(good_assertion(&w), NULL), "back to ok");
}

Test(idp, mode_garbage_is_not_json)
{
	struct world w;
	struct resp r;

	world_start(&w);
	cr_assert_eq(ly_idp_mode(&w.p, "set=garbage"), 0);
	post(&w, cc_form(good_assertion(&w), NULL), NULL, NULL, 10, &r);
	cr_expect_eq(r.status, 200);
	cr_expect(r.body && r.len > 0, "empty body");
	cr_expect_null(r.json, "garbage parsed as JSON");
	cr_expect(r.headers && strcasestr(r.headers, "\r\nContent-Type: text/html"),
		  "not text/html");
	resp_free(&r);
}

Test(idp, mode_stall_times_out_the_client)
{
	struct world w;
	struct resp r;
	double t0;
	json_t *st;

	world_start(&w);
	cr_assert_eq(ly_idp_mode(&w.p, "set=stall"), 0);
	t0 = now_s();
	post(&w, cc_form(good_assertion(&w), NULL), NULL, NULL, 2, &r);
	cr_expect_eq(r.curl_rc, 28, "curl exit %d, want 28 (timeout)", r.curl_rc);
	cr_expect_eq(r.status, 0);
	cr_expect(now_s() - t0 >= 1.9, "answered after %.2f s", now_s() - t0);
	resp_free(&r);
	st = ly_idp_stats(&w.p);
	cr_expect_str_eq(jstr(st, "mode") ? jstr(st, "mode") : "-", "stall");
	json_decref(st);
	cr_assert_eq(ly_idp_mode(&w.p, "set=ok"), 0);
	expect_issued(&w, cc_form(good_assertion(&w), NULL), "after the stall");
}

Test(idp, modes_nojson_token_crlf_and_huge)
{
	struct world w;
	struct resp r;
	const char *tok;

	world_start(&w);
	cr_assert_eq(ly_idp_mode(&w.p, "set=nojson_token"), 0);
	post(&w, cc_form(good_assertion(&w), NULL), NULL, NULL, 10, &r);
	cr_expect_eq(r.status, 200);
	cr_expect(json_is_object(r.json), "nojson_token: not a JSON object");
	cr_expect_null(json_object_get(r.json, "access_token"));
	cr_expect_str_eq(jstr(r.json, "token_type") ? jstr(r.json, "token_type") : "-", "Bearer");
	resp_free(&r);

	cr_assert_eq(ly_idp_mode(&w.p, "set=crlf"), 0);
	post(&w, cc_form(good_assertion(&w), NULL), NULL, NULL, 10, &r);
	cr_expect_eq(r.status, 200);
	tok = jstr(r.json, "access_token");
	cr_expect(tok && strstr(tok, "\r\nX-Evil: 1"), "crlf: no CR LF in the token");
	cr_expect(!tok || !ly_idp_issued(&w.p, tok), "a crlf token counts as issued");
	resp_free(&r);

	cr_assert_eq(ly_idp_mode(&w.p, "set=huge"), 0);
	post(&w, cc_form(good_assertion(&w), NULL), NULL, NULL, 10, &r);
	cr_expect_eq(r.status, 200);
	cr_expect_eq(r.len, 2u << 20, "huge: %zu bytes", r.len);
	tok = jstr(r.json, "access_token");
	cr_expect(tok && !strncmp(tok, "idp.", 4), "huge: not JSON with a token");
	cr_expect(!tok || !ly_idp_issued(&w.p, tok), "a huge token counts as issued");
	resp_free(&r);
	cr_expect_eq(ly_idp_stat(&w.p, "issued"), 0);
}

Test(idp, mode_slow_answers_after_the_delay)
{
	struct world w;
	struct resp r;

	world_start(&w);
	cr_assert_eq(ly_idp_mode(&w.p, "set=slow&delay=1.5"), 0);
	post(&w, cc_form(good_assertion(&w), NULL), NULL, NULL, 10, &r);
	expect_token(&w, &r, "slow");
	cr_expect(r.secs >= 1.5, "answered after %.2f s", r.secs);
	resp_free(&r);
	cr_expect_eq(ly_idp_mode(&w.p, "set=bogus"), -1);
	cr_expect_eq(ly_idp_mode(&w.p, "set=fail&status=99"), -1);
	cr_expect_eq(ly_idp_mode(&w.p, "set=slow&delay=-1"), -1);
	cr_expect_eq(ly_idp_expires_in(&w.p, -1), -1);
}

Test(idp, stats_count_and_expires_in_changes)
{
	struct world w;
	struct resp r;
	json_t *st;

	world_start(&w);
	post(&w, cc_form(good_assertion(&w), NULL), NULL, NULL, 10, &r);
	resp_free(&r);
	post(&w, "grant_type=client_credentials", basic(CLIENT_BASIC, SECRET), NULL, 10, &r);
	resp_free(&r);
	post(&w, "grant_type=client_credentials", basic(CLIENT_BASIC, "nope"), NULL, 10, &r);
	resp_free(&r);
	post(&w, tx_form(subject_token(&w, NULL), NULL), NULL, NULL, 10, &r);
	resp_free(&r);

	st = ly_idp_stats(&w.p);
	cr_assert(st);
	cr_expect_eq(stat_of(st, "token_requests", NULL), 4);
	cr_expect_eq(stat_of(st, "issued", NULL), 3);
	cr_expect_eq(stat_of(st, "rejected", NULL), 1);
	cr_expect_eq(stat_of(st, "by_grant", "client_credentials"), 3);
	cr_expect_eq(stat_of(st, "by_grant", LY_IDP_GRANT_EXCHANGE), 1);
	cr_expect_eq(stat_of(st, "by_client", CLIENT), 1);
	cr_expect_eq(stat_of(st, "by_client", CLIENT_BASIC), 2);
	cr_expect_str_eq(jstr(st, "mode") ? jstr(st, "mode") : "-", "ok");
	json_decref(st);
	cr_expect_eq(json_array_size(ly_idp_log(&w.p)), 4);

	cr_assert_eq(ly_idp_reset(&w.p), 0);
	cr_expect_eq(ly_idp_stat(&w.p, "token_requests"), 0);
	cr_expect_eq(ly_idp_stat(&w.p, "issued"), 0);

	cr_assert_eq(ly_idp_expires_in(&w.p, 5), 0);
	post(&w, cc_form(good_assertion(&w), NULL), NULL, NULL, 10, &r);
	cr_expect_eq(r.status, 200);
	cr_expect_eq(json_integer_value(json_object_get(r.json, "expires_in")), 5);
	resp_free(&r);
	cr_expect_eq(ly_idp_stat(&w.p, "issued"), 1);
}
