// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Copyright (c) 2026 The lanyard authors */
/*
 * lanyardd end to end over time: credentials refreshed under a long-running app, subtree
 * and late enrolment, reload with live connections, revocation, and a bad policy at start.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "lib/lanyard.h"

TestSuite(lifecycle, H_FIXTURES, .timeout = 60);

static const char *jstr(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static long long jint(const json_t *o, const char *k)
{
	return (long long)json_integer_value(json_object_get(o, k));
}

/* curl from @cg to 127.0.0.1:@port@path: the upstream's record of it (asserts both). */
static json_t *curl_through(const char *cg, int port, const char *log, const char *path)
{
	json_t *r;
	char *out;
	int rc;

	rc = ly_curl(cg, &out, h_strf("http://127.0.0.1:%d%s", port, path), NULL);
	cr_assert_eq(rc, 0, "curl %s: exit %d: %s", path, rc, out);
	free(out);
	r = h_jsonl_wait(log, "target", path, 5000);
	cr_assert(r, "the upstream never received %s", path);
	return r;
}

/* The verified claims of @req's bearer credential for @aud; asserts. */
static json_t *claims_of(const struct ly_daemon *d, const json_t *req, const char *aud)
{
	const char *tok = ly_req_token(req, "Authorization", "Bearer ");
	json_t *c;

	cr_assert(tok, "%s carried no credential", jstr(req, "target"));
	c = ly_verify(d, tok, aud);
	cr_assert(c, "the credential of %s did not verify", jstr(req, "target"));
	return c;
}

/* --- refresh ------------------------------------------------------------------------------ */

#define MAX_TOKENS 64

struct seen {
	const char *tok[MAX_TOKENS];
	json_t *claims[MAX_TOKENS];
	int n;
};

/*
 * Verify every credential in the upstream log not verified yet.  A 2 s credential must be
 * verified while it is still valid, so this runs while the app is running, as soon as the
 * credential shows up upstream.
 */
static void verify_new(const struct ly_app *a, struct seen *s)
{
	json_t *all = ly_jsonl_all(a->up_log, NULL, NULL), *req;
	const char *tok;
	size_t k;
	int i;

	json_array_foreach(all, k, req)
	{
		tok = ly_req_token(req, "Authorization", "Bearer ");
		cr_assert(tok, "request %zu reached the upstream without a credential", k);
		for (i = 0; i < s->n && strcmp(s->tok[i], tok); i++)
			;
		if (i < s->n)
			continue;
		cr_assert_lt(s->n, MAX_TOKENS);
		s->tok[s->n] = tok;
		s->claims[s->n] = ly_verify(&a->d, tok, LY_AUD);
		cr_assert(s->claims[s->n], "credential #%d did not verify", s->n);
		s->n++;
	}
	json_decref(all);
}

Test(lifecycle, refreshes_credentials_under_a_long_running_app, .timeout = 90)
{
	struct seen s = { .n = 0 };
	long long conn = -1, exp;
	json_t *all, *req;
	struct ly_app a;
	int rc, i, nreq;
	size_t k;
	pid_t pid;

	ly_app_start(&a, "2s", NULL);
	/* one keep-alive connection, a request every 300 ms for 7.5 s: >= 3 token lifetimes */
	pid = ly_client_spawn("app", a.cg, "keepalive.py", "--host", "127.0.0.1", "--port",
			      h_strf("%d", a.up_port), "--interval", "0.3", "--duration", "7.5",
			      NULL);
	cr_assert_gt(pid, 0);
	while (h_alive(pid)) {
		verify_new(&a, &s);
		usleep(50 * 1000);
	}
	rc = h_wait_exit(pid, 1000);
	cr_assert_eq(rc, 0, "the app saw a failure (exit %d)", rc);
	cr_expect(h_file_contains(h_out_path("app"), "\"failed\":0"));
	verify_new(&a, &s);

	all = ly_jsonl_all(a.up_log, NULL, NULL);
	nreq = (int)json_array_size(all);
	json_array_foreach(all, k, req)
	{
		const char *tok = ly_req_token(req, "Authorization", "Bearer ");

		if (conn < 0)
			conn = jint(req, "conn");
		cr_expect_eq(jint(req, "conn"), conn, "the app's connection was not kept");
		for (i = 0; i < s.n && strcmp(s.tok[i], tok); i++)
			;
		cr_assert_lt(i, s.n);
		/* never an expired credential: exp is exclusive (RFC 7519 4.1.4) */
		exp = jint(s.claims[i], "exp");
		cr_expect_lt(jint(req, "ts_ms"), exp * 1000,
			     "request %zu arrived %lld ms after its credential expired", k,
			     jint(req, "ts_ms") - exp * 1000);
	}
	cr_expect_geq(nreq, 20, "only %d requests in 7.5 s", nreq);
	cr_expect_geq(s.n, 3, "only %d distinct credentials over 7.5 s with a 2 s TTL", s.n);
	for (i = 0; i < s.n; i++) {
		cr_expect_eq(jint(s.claims[i], "exp") - jint(s.claims[i], "iat"), 2);
		if (i)
			cr_expect_str_neq(jstr(s.claims[i], "jti"), jstr(s.claims[i - 1], "jti"));
	}
	cr_expect_geq(h_jsonl_count(a.d.audit, "event", "credential.issue"), s.n);
	for (i = 0; i < s.n; i++)
		json_decref(s.claims[i]);
	json_decref(all);
}

/* --- enrolment ---------------------------------------------------------------------------- */

Test(lifecycle, enrols_the_subtree_and_a_cgroup_created_later)
{
	struct ly_daemon d = { 0 };
	char *app, *child, *late;
	json_t *req, *claims;
	int port;

	h_require_root_bpf();
	port = h_free_port();
	cr_assert_gt(h_upstream("up", port, NULL), 0);
	app = h_cgroup_create("app");
	child = h_cgroup_create("app/worker/inner");
	late = h_strf("%s/late", h_cgroup_root()); /* does not exist yet */
	ly_start(&d, h_strf("%s%s",
			    ly_yaml_workload("app", app,
					     ly_yaml_route(h_strf("127.0.0.1:%d", port), LY_AUD,
							   "5m", NULL)),
			    ly_yaml_workload("late", late,
					     ly_yaml_route(h_strf("127.0.0.1:%d", port),
							   "https://late.test", "5m", NULL))));

	/* a grandchild of the enrolled cgroup is the workload too */
	req = curl_through(child, port, h_path("up.jsonl"), "/child");
	claims = claims_of(&d, req, LY_AUD);
	cr_expect_str_eq(jstr(claims, "sub"), LY_SUB("app"));
	json_decref(claims);
	json_decref(req);

	/* before it exists, "late" is known but not enrolled */
	cr_expect_not(ly_wait_enrolled(&d, "late", 0));
	cr_assert(h_cgroup_create("late"));
	cr_assert(ly_wait_enrolled(&d, "late", 5000), "the new cgroup was not enrolled");
	req = curl_through(late, port, h_path("up.jsonl"), "/late");
	claims = claims_of(&d, req, "https://late.test");
	cr_expect_str_eq(jstr(claims, "sub"), LY_SUB("late"));
	json_decref(claims);
	json_decref(req);
}

/* --- reload ------------------------------------------------------------------------------- */

static char *route_to(int port, const char *aud)
{
	return ly_yaml_route(h_strf("127.0.0.1:%d", port), aud, "5m", NULL);
}

static void reload_ok(const struct ly_daemon *d)
{
	char *out;

	cr_assert_eq(ly_cli(d, &out, "reload", NULL), 0, "lanyard reload: %s", out);
	free(out);
}

Test(lifecycle, reload_changes_routes_without_dropping_connections)
{
	json_t *r, *c, *flows;
	struct ly_driver dr;
	struct ly_app a;
	int port_b, n;
	long long conn;

	ly_app_start(&a, "5m", NULL);
	port_b = h_free_port();
	cr_assert_gt(h_upstream("upb", port_b, NULL), 0);
	ly_driver_start(&dr, "drv", a.cg, "127.0.0.1", a.up_port);
	r = ly_driver_get(&dr, "/a1", 5000);
	cr_assert_eq(jint(r, "status"), 200);
	json_decref(r);
	r = h_jsonl_wait(a.up_log, "target", "/a1", 3000);
	cr_assert(r);
	conn = jint(r, "conn");
	json_decref(r);

	/* add route B */
	ly_write_policy(&a.d, ly_yaml_workload("app", a.cg,
					       h_strf("%s%s", route_to(a.up_port, LY_AUD),
						      route_to(port_b, "https://b.test"))));
	reload_ok(&a.d);
	r = h_jsonl_wait(a.d.audit, "result", "ok", 3000);
	cr_expect(r && !strcmp(jstr(r, "event"), "policy.reload"), "no policy.reload ok record");
	json_decref(r);
	r = ly_driver_get(&dr, "/a2", 5000);
	cr_expect_eq(jint(r, "status"), 200, "the established connection broke on reload");
	json_decref(r);
	r = h_jsonl_wait(a.up_log, "target", "/a2", 3000);
	cr_assert(r);
	cr_expect_eq(jint(r, "conn"), conn, "not the same upstream connection");
	c = claims_of(&a.d, r, LY_AUD);
	json_decref(c);
	json_decref(r);
	r = curl_through(a.cg, port_b, h_path("upb.jsonl"), "/b1");
	c = claims_of(&a.d, r, "https://b.test");
	json_decref(c);
	json_decref(r);

	/* remove route A: the reload itself leaves the connection alone... */
	ly_write_policy(&a.d, ly_yaml_workload("app", a.cg, route_to(port_b, "https://b.test")));
	reload_ok(&a.d);
	flows = ly_cli_json(&a.d, "flows");
	n = (int)json_array_size(json_object_get(flows, "flows"));
	json_decref(flows);
	cr_expect_eq(n, 1, "the reload dropped the established connection");
	/* ...and its next request is answered by lanyardd: no route, nothing forwarded */
	r = ly_driver_get(&dr, "/a3", 5000);
	cr_assert(r);
	cr_expect_eq(jint(r, "status"), 503, "a request on a removed route: %s",
		     json_dumps(r, 0));
	cr_expect(jstr(r, "body") && strstr(jstr(r, "body"), "no route"));
	json_decref(r);
	cr_expect_eq(h_jsonl_count(a.up_log, "target", "/a3"), 0);
	/* a new connection to A is not redirected any more: it goes direct, without credential */
	r = curl_through(a.cg, a.up_port, a.up_log, "/a4");
	cr_expect_eq(h_json_header_count(r, "Authorization"), 0);
	json_decref(r);
	r = curl_through(a.cg, port_b, h_path("upb.jsonl"), "/b2");
	c = claims_of(&a.d, r, "https://b.test");
	json_decref(c);
	json_decref(r);
}

Test(lifecycle, reload_refuses_a_bad_policy_and_keeps_serving)
{
	const char *bad_routes = "      - to: 127.0.0.1:1\n"
				 "        credential: { type: jwt, audience: x, ttl: 5m }\n"
				 "        colour: blue\n";
	long long gen;
	json_t *r, *c, *st;
	struct ly_app a;
	char *out;
	int rc;

	ly_app_start(&a, "5m", NULL);
	st = ly_cli_json(&a.d, "status");
	gen = jint(st, "generation");
	json_decref(st);
	ly_write_policy(&a.d, ly_yaml_workload("app", a.cg, bad_routes));
	rc = ly_cli(&a.d, &out, "reload", NULL);
	cr_expect_eq(rc, 1, "lanyard reload of a bad policy: exit %d: %s", rc, out);
	/* the error names the place: file:line:column (line 13 is "colour") */
	cr_expect(strstr(out, h_strf("%s:13:", a.d.policy)), "no file:line:col in: %s", out);
	free(out);
	r = h_jsonl_wait(a.d.audit, "result", "refused", 3000);
	cr_assert(r, "no policy.reload refused record");
	cr_expect_str_eq(jstr(r, "event"), "policy.reload");
	cr_expect(jstr(r, "error") && strstr(jstr(r, "error"), "colour"));
	json_decref(r);
	st = ly_cli_json(&a.d, "status");
	cr_expect_eq(jint(st, "generation"), gen, "a refused reload changed the generation");
	json_decref(st);
	/* the old policy keeps serving */
	r = curl_through(a.cg, a.up_port, a.up_log, "/still");
	c = claims_of(&a.d, r, LY_AUD);
	json_decref(c);
	json_decref(r);
}

/* --- revoke ------------------------------------------------------------------------------- */

Test(lifecycle, revoke_refuses_connections_and_requests_until_reload)
{
	json_t *r, *c, *tokens, *t, *deny;
	const char *jti1;
	struct ly_driver dr;
	struct ly_app a;
	char *out;
	int rc;

	ly_app_start(&a, "5m", NULL);
	ly_driver_start(&dr, "drv", a.cg, "127.0.0.1", a.up_port);
	r = ly_driver_get(&dr, "/r1", 5000);
	cr_assert_eq(jint(r, "status"), 200);
	json_decref(r);
	r = h_jsonl_wait(a.up_log, "target", "/r1", 3000);
	c = claims_of(&a.d, r, LY_AUD);
	jti1 = h_strf("%s", jstr(c, "jti"));
	json_decref(c);
	json_decref(r);

	rc = ly_cli(&a.d, &out, "revoke", "--workload", "app", NULL);
	cr_assert_eq(rc, 0, "lanyard revoke: %s", out);
	free(out);
	/* a request on the open connection: 503 from lanyardd, nothing forwarded */
	r = ly_driver_get(&dr, "/r2", 5000);
	cr_assert(r);
	cr_expect_eq(jint(r, "status"), 403, "after revoke: %s", json_dumps(r, 0));
	cr_expect(jstr(r, "body") && strstr(jstr(r, "body"), "revoked"));
	json_decref(r);
	/* a new connect(): refused by the kernel (curl exit 7) */
	rc = ly_curl(a.cg, &out, h_strf("http://127.0.0.1:%d/r3", a.up_port), NULL);
	cr_expect_eq(rc, 7, "curl after revoke: exit %d: %s", rc, out);
	free(out);
	cr_expect_eq(h_jsonl_count(a.up_log, "target", "/r2"), 0);
	cr_expect_eq(h_jsonl_count(a.up_log, "target", "/r3"), 0);

	tokens = ly_cli_json(&a.d, "tokens");
	t = json_array_get(json_object_get(tokens, "tokens"), 0);
	cr_expect(json_is_true(json_object_get(t, "revoked")), "lanyard tokens: not revoked");
	json_decref(tokens);
	cr_expect_eq(ly_cli(&a.d, &out, "tokens", NULL), 0);
	cr_expect(strstr(out, "revoked"), "lanyard tokens does not say revoked: %s", out);
	free(out);
	r = h_jsonl_wait(a.d.audit, "event", "credential.revoke", 3000);
	cr_assert(r, "no credential.revoke audit record");
	cr_expect_str_eq(jstr(r, "workload"), "app");
	cr_expect_geq(jint(r, "credentials"), 1);
	json_decref(r);
	deny = h_jsonl_wait(a.d.audit, "event", "flow.deny", 3000);
	cr_expect(deny, "the refused connect() was not audited");
	json_decref(deny);

	/* reload lifts the revocation with a new credential */
	reload_ok(&a.d);
	r = curl_through(a.cg, a.up_port, a.up_log, "/r4");
	c = claims_of(&a.d, r, LY_AUD);
	cr_expect_str_neq(jstr(c, "jti"), jti1, "the revoked credential came back");
	json_decref(c);
	json_decref(r);
}

/* --- start-up ----------------------------------------------------------------------------- */

Test(lifecycle, refuses_to_start_with_a_bad_policy)
{
	struct ly_daemon d = { 0 };
	char *err;
	pid_t pid;
	int rc;

	h_require_root_bpf();
	ly_init(&d, "lanyardd");
	/* line 9: "matches" where "match" belongs */
	ly_write_policy(&d, "  - name: app\n"
			    "    matches: { cgroup: /nowhere }\n"
			    "    routes: []\n");
	pid = ly_spawn(&d);
	cr_assert_gt(pid, 0);
	rc = h_wait_exit(pid, 10000);
	cr_expect_eq(rc, 2, "lanyardd on a bad policy: exit %d", rc);
	err = h_read_file(h_err_path(d.name), NULL);
	cr_assert(err);
	cr_expect(strstr(err, h_strf("%s:9:", d.policy)), "no file:line:col: %s", err);
	cr_expect(strstr(err, "matches"), "the message does not name the key: %s", err);
	free(err);
	cr_expect_eq(h_file_size(d.audit), 0, "a refused start wrote an audit log");
}
