// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Copyright (c) 2026 The lanyard authors */
/*
 * lanyardd end to end, the request path: an unmodified client in an enrolled cgroup, the
 * real kernel redirecting it, and what the upstream received (credential, framing, bodies).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include "lib/lanyard.h"

TestSuite(proxy, H_FIXTURES, .timeout = 60);

/* --- helpers ------------------------------------------------------------------------------ */

static char *url(const struct ly_app *a, const char *path)
{
	return h_strf("http://127.0.0.1:%d%s", a->up_port, path);
}

/* The upstream's record of the request for @target (waits up to 5 s); asserts. */
static json_t *upstream_req(const char *log, const char *target)
{
	json_t *r = h_jsonl_wait(log, "target", target, 5000);

	cr_assert(r, "the upstream never received %s", target);
	return r;
}

/* Claims of the Authorization: Bearer credential of @req, verified; asserts. */
static json_t *bearer_claims(const struct ly_app *a, const json_t *req, const char *aud)
{
	const char *tok = ly_req_token(req, "Authorization", "Bearer ");
	json_t *claims;

	cr_assert(tok, "no single \"Authorization: Bearer\" header upstream (%d Authorization)",
		  h_json_header_count(req, "Authorization"));
	claims = ly_verify(&a->d, tok, aud);
	cr_assert(claims, "the credential did not verify against %s", a->d.jwks_url);
	return claims;
}

static const char *claim_str(const json_t *claims, const char *name)
{
	return json_string_value(json_object_get(claims, name));
}

static long long claim_int(const json_t *claims, const char *name)
{
	return (long long)json_integer_value(json_object_get(claims, name));
}

/* A file of @size bytes of a repeating pattern with no NUL; returns its path. */
static char *pattern_file(const char *name, size_t size)
{
	char *path = h_path("%s", name), *data = malloc(size + 1);
	size_t i;

	cr_assert(data);
	for (i = 0; i < size; i++)
		data[i] = (char)('A' + (i * 7919 + i / 4096) % 26);
	data[size] = '\0';
	cr_assert_eq(h_write_file(path, data, 0600), 0);
	free(data);
	return path;
}

/* --- the credential ----------------------------------------------------------------------- */

Test(proxy, injects_a_jwt_that_verifies_against_the_jwks)
{
	json_t *req, *claims, *use;
	struct ly_app a;
	char *out;

	ly_app_start(&a, "5m", NULL);
	cr_assert_eq(ly_curl(a.cg, &out, url(&a, "/hello"), NULL), 0, "curl: %s", out);
	cr_expect_str_eq(out, "ok\n");
	free(out);

	req = upstream_req(a.up_log, "/hello");
	/* the app's own fields pass through untouched */
	cr_expect(h_json_header(req, "user-agent") &&
		  !strncmp(h_json_header(req, "user-agent"), "curl/", 5));
	cr_expect_str_eq(h_json_header(req, "host"), h_strf("127.0.0.1:%d", a.up_port));
	claims = bearer_claims(&a, req, LY_AUD);
	cr_expect_str_eq(claim_str(claims, "sub"), LY_SUB("app"));
	cr_expect_str_eq(claim_str(claims, "aud"), LY_AUD);
	cr_expect_str_eq(claim_str(claims, "iss"), a.d.issuer);
	cr_expect_eq(claim_int(claims, "exp") - claim_int(claims, "iat"), 300, "exp - iat != TTL");
	cr_expect_leq(claim_int(claims, "nbf"), claim_int(claims, "iat"));
	cr_expect(claim_str(claims, "jti") && *claim_str(claims, "jti"));

	/* the audit links this request to that credential */
	use = h_jsonl_wait(a.d.audit, "event", "credential.use", 3000);
	cr_assert(use, "no credential.use audit record");
	cr_expect_str_eq(json_string_value(json_object_get(use, "jti")), claim_str(claims, "jti"));
	cr_expect_str_eq(json_string_value(json_object_get(use, "workload")), "app");
	json_decref(use);
	json_decref(claims);
	json_decref(req);
}

/* --- route forms -------------------------------------------------------------------------- */

struct route_form {
	const char *to;	 /* format with the upstream port */
	const char *url; /* format with the upstream port, path /form */
	int v6;
};

static struct route_form route_forms[] = {
	{ "127.0.0.1:%d", "http://127.0.0.1:%d/form", 0 },
	{ "\"[::1]:%d\"", "http://[::1]:%d/form", 1 },
	{ "127.0.0.0/8:%d", "http://127.0.0.1:%d/form", 0 },
	{ "localhost:%d", "http://127.0.0.1:%d/form", 0 },
};

static char *cr_strdup(const char *s)
{
	char *d = cr_malloc(strlen(s) + 1);

	cr_assert(d);
	return strcpy(d, s);
}

ParameterizedTestParameters(proxy, injects_for_every_route_form)
{
	size_t i, n = sizeof(route_forms) / sizeof(route_forms[0]);
	struct route_form *p = cr_malloc(n * sizeof(*p));

	cr_assert(p);
	for (i = 0; i < n; i++) {
		p[i].to = cr_strdup(route_forms[i].to);
		p[i].url = cr_strdup(route_forms[i].url);
		p[i].v6 = route_forms[i].v6;
	}
	return cr_make_param_array(struct route_form, p, n);
}

ParameterizedTest(struct route_form *f, proxy, injects_for_every_route_form)
{
	struct ly_daemon d = { 0 };
	json_t *req, *claims;
	int port, rc;
	char *cg, *out;

	h_require_root_bpf();
	if (f->v6 && !h_have_ipv6())
		cr_skip_test("no IPv6 loopback");
	port = h_free_port();
	cr_assert_gt(h_upstream("up", port, NULL), 0);
	cg = h_cgroup_create("app");
	ly_start(&d, ly_yaml_workload("app", cg, ly_yaml_route(h_strf(f->to, port), LY_AUD, "5m",
							       NULL)));
	/* -g: curl must not glob the brackets of [::1] */
	rc = ly_curl(cg, &out, "-g", h_strf(f->url, port), NULL);
	cr_assert_eq(rc, 0, "route %s: curl: %s", f->to, out);
	cr_expect_str_eq(out, "ok\n");
	free(out);
	req = h_jsonl_wait(h_path("up.jsonl"), "target", "/form", 5000);
	cr_assert(req);
	if (f->v6)
		cr_expect_str_eq(json_string_value(json_object_get(req, "local")),
				 h_strf("[::1]:%d", port), "lanyardd did not dial the v6 address");
	claims = ly_verify(&d, ly_req_token(req, "Authorization", "Bearer "), LY_AUD);
	cr_assert(claims, "route %s: no verified credential upstream", f->to);
	cr_expect_str_eq(claim_str(claims, "sub"), LY_SUB("app"));
	json_decref(claims);
	json_decref(req);
}

/* --- HTTP/1.1 on the way through ---------------------------------------------------------- */

Test(proxy, gives_each_pipelined_request_its_own_credential_header)
{
	json_t *r[3], *claims;
	const char *host;
	struct ly_app a;
	char *req, *resp, *p;
	int i, n = 0;

	ly_app_start(&a, "5m", NULL);
	host = h_strf("Host: 127.0.0.1:%d\r\n", a.up_port);
	/* one write: lanyardd sees three heads in one read */
	req = h_strf("GET /p1 HTTP/1.1\r\n%s\r\n"
		     "GET /p2 HTTP/1.1\r\n%s\r\n"
		     "GET /p3 HTTP/1.1\r\n%sConnection: close\r\n\r\n",
		     host, host, host);
	cr_assert_eq(ly_raw(a.cg, "127.0.0.1", a.up_port, req, strlen(req), 5, &resp, NULL), 0);
	for (p = resp; (p = strstr(p, "HTTP/1.1 200 OK\r\n")); p++)
		n++;
	cr_expect_eq(n, 3, "three answers in order, got: %s", resp);
	free(resp);

	for (i = 0; i < 3; i++) {
		r[i] = upstream_req(a.up_log, h_strf("/p%d", i + 1));
		cr_expect_eq(h_json_header_count(r[i], "Authorization"), 1, "/p%d", i + 1);
		cr_expect_eq(json_integer_value(json_object_get(r[i], "conn")),
			     json_integer_value(json_object_get(r[0], "conn")),
			     "pipelined requests went out on one upstream connection");
		cr_expect_eq(json_integer_value(json_object_get(r[i], "req")), i + 1);
	}
	claims = bearer_claims(&a, r[2], LY_AUD);
	cr_expect_str_eq(claim_str(claims, "sub"), LY_SUB("app"));
	cr_expect_eq(ly_jsonl_wait_count(a.d.audit, "event", "credential.use", 3, 3000), 3);
	json_decref(claims);
	for (i = 0; i < 3; i++)
		json_decref(r[i]);
}

Test(proxy, replaces_the_apps_own_authorization)
{
	json_t *req, *claims;
	struct ly_app a;
	char *out;

	ly_app_start(&a, "5m", NULL);
	cr_assert_eq(ly_curl(a.cg, &out, "-H", "Authorization: Bearer app-own-credential",
			     "-H", "authorization: Basic YXBwOnNlY3JldA==", url(&a, "/own"), NULL),
		     0, "curl: %s", out);
	free(out);
	req = upstream_req(a.up_log, "/own");
	cr_expect_eq(h_json_header_count(req, "Authorization"), 1,
		     "the upstream must see exactly one Authorization");
	claims = bearer_claims(&a, req, LY_AUD);
	cr_expect_str_eq(claim_str(claims, "sub"), LY_SUB("app"));
	cr_expect_not(h_file_contains(a.up_raw, "app-own-credential"),
		      "the app's own credential reached the upstream");
	cr_expect_not(h_file_contains(a.up_raw, "YXBwOnNlY3JldA=="));
	json_decref(claims);
	json_decref(req);
}

Test(proxy, uses_a_custom_header_template)
{
	json_t *req, *claims;
	const char *tok;
	struct ly_app a;
	char *out;

	ly_app_start(&a, "5m", "X-Api-Key: {token}");
	cr_assert_eq(ly_curl(a.cg, &out, "-H", "X-API-Key: app-own-key", url(&a, "/key"), NULL),
		     0, "curl: %s", out);
	free(out);
	req = upstream_req(a.up_log, "/key");
	cr_expect_eq(h_json_header_count(req, "Authorization"), 0);
	cr_expect_eq(h_json_header_count(req, "X-Api-Key"), 1);
	tok = ly_req_token(req, "X-Api-Key", "");
	cr_assert(tok, "no X-Api-Key upstream");
	claims = ly_verify(&a.d, tok, LY_AUD);
	cr_assert(claims, "X-Api-Key does not hold a verifiable JWT");
	cr_expect_str_eq(claim_str(claims, "sub"), LY_SUB("app"));
	cr_expect_not(h_file_contains(a.up_raw, "app-own-key"));
	json_decref(claims);
	json_decref(req);
}

Test(proxy, relays_content_length_bodies_intact)
{
	char *file = pattern_file("body.bin", 300000), *out, *body, *raw;
	size_t rawlen;
	json_t *r1, *r2;
	struct ly_app a;
	const char *hit;

	ly_app_start(&a, "5m", NULL);
	/* two POSTs on one connection: the second head must follow the first body exactly */
	cr_assert_eq(ly_curl(a.cg, &out, "--data-binary", h_strf("@%s", file), url(&a, "/cl1"),
			     url(&a, "/cl2"), NULL),
		     0, "curl: %s", out);
	cr_expect_str_eq(out, "ok\nok\n");
	free(out);
	r1 = upstream_req(a.up_log, "/cl1");
	r2 = upstream_req(a.up_log, "/cl2");
	cr_expect_eq(json_integer_value(json_object_get(r1, "body_len")), 300000);
	cr_expect_eq(json_integer_value(json_object_get(r2, "body_len")), 300000);
	cr_expect_str_eq(h_json_header(r1, "Content-Length"), "300000");
	cr_expect_eq(h_json_header_count(r2, "Authorization"), 1);
	cr_expect_eq(json_integer_value(json_object_get(r1, "conn")),
		     json_integer_value(json_object_get(r2, "conn")));
	/* byte for byte: the body is in the raw stream, whole */
	body = h_read_file(file, NULL);
	raw = h_read_file(a.up_raw, &rawlen);
	cr_assert(body && raw);
	hit = memmem(raw, rawlen, body, 300000);
	cr_expect(hit, "the first body did not arrive byte for byte");
	cr_expect(hit && memmem(hit + 300000, rawlen - (size_t)(hit + 300000 - raw), body, 300000),
		  "the second body did not arrive byte for byte");
	free(body);
	free(raw);
	json_decref(r1);
	json_decref(r2);
}

/*
 * The end of a body arriving in one burst larger than lanyardd's upstream high-water mark
 * (64 KiB): once lanyardd has relayed what fits, no read event will come for the rest --
 * the client has sent everything.  (This hung every time before process_input() went
 * round again after draining.)
 */
Test(proxy, relays_the_last_burst_of_a_body)
{
	static const size_t lasts[] = { 66000, 67000 };
	size_t blen = 200000, len, i;
	char *req, *resp;
	struct ly_app a;
	json_t *r;

	ly_app_start(&a, "5m", NULL);
	for (i = 0; i < 2; i++) {
		req = h_strf("POST /burst%zu HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
			     "Content-Length: %zu\r\nConnection: close\r\n\r\n%0*d",
			     i, a.up_port, blen, (int)blen, 0);
		len = strlen(req);
		cr_assert_eq(ly_raw_split(a.cg, "127.0.0.1", a.up_port, req, len, lasts[i], 5,
					  &resp, NULL),
			     0);
		cr_expect_eq(ly_status_of(resp), 200, "last %zu bytes in one write: answer %.200s",
			     lasts[i], resp);
		free(resp);
		r = upstream_req(a.up_log, h_strf("/burst%zu", i));
		cr_expect_eq(json_integer_value(json_object_get(r, "body_len")), (json_int_t)blen);
		json_decref(r);
	}
}

Test(proxy, relays_chunked_bodies_intact)
{
	char *file = pattern_file("body.bin", 300000), *out;
	struct ly_app a;
	json_t *r;

	ly_app_start(&a, "5m", NULL);
	cr_assert_eq(ly_curl(a.cg, &out, "-H", "Transfer-Encoding: chunked", "--data-binary",
			     h_strf("@%s", file), url(&a, "/chunked"), url(&a, "/after"), NULL),
		     0, "curl: %s", out);
	cr_expect_str_eq(out, "ok\nok\n");
	free(out);
	r = upstream_req(a.up_log, "/chunked");
	cr_expect_str_eq(h_json_header(r, "Transfer-Encoding"), "chunked");
	cr_expect_eq(h_json_header_count(r, "Content-Length"), 0);
	cr_expect_eq(json_integer_value(json_object_get(r, "body_len")), 300000);
	cr_expect_eq(h_json_header_count(r, "Authorization"), 1);
	json_decref(r);
	r = upstream_req(a.up_log, "/after");
	cr_expect_eq(json_integer_value(json_object_get(r, "body_len")), 300000);
	cr_expect_eq(h_json_header_count(r, "Authorization"), 1);
	json_decref(r);
}

Test(proxy, passes_expect_100_continue_through)
{
	char *file = pattern_file("big.bin", 4 << 20), *out;
	json_t *r, *claims;
	struct ly_app a;
	int rc;

	ly_app_start(&a, "5m", NULL);
	rc = ly_curl(a.cg, &out, "-v", "-H", "Expect: 100-continue", "--expect100-timeout", "5",
		     "--data-binary", h_strf("@%s", file), url(&a, "/expect"), NULL);
	cr_assert_eq(rc, 0, "curl: %s", out);
	cr_expect(strstr(out, "< HTTP/1.1 100 Continue"), "no 100 Continue came back: %s", out);
	cr_expect(strstr(out, "< HTTP/1.1 200 OK"));
	free(out);
	r = upstream_req(a.up_log, "/expect");
	cr_expect_str_eq(h_json_header(r, "Expect"), "100-continue");
	cr_expect_eq(json_integer_value(json_object_get(r, "body_len")), 4 << 20);
	claims = bearer_claims(&a, r, LY_AUD);
	json_decref(claims);
	json_decref(r);
}
