// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Copyright (c) 2026 The lanyard authors */
/*
 * Credentials from an identity provider, end to end: lanyardd against the strict test
 * provider (tests/servers/idp.py) over verified TLS, with private_key_jwt, a client
 * secret, and token exchange; refresh, single flight under load, every way the provider
 * can misbehave, and recovery.  The upstream must receive the provider's tokens, never
 * lanyard's own, and no token appears in any output.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include "lib/idp.h"
#include "lib/lanyard.h"

TestSuite(oauth2, H_FIXTURES, .timeout = 120);

struct world {
	struct ly_app app;	/* ly-upstream, cgroup "app", lanyardd */
	struct ly_idp idp;
};

/*
 * The provider (clients "app" with private_key_jwt only, "legacy" with a secret file),
 * ly-upstream, and lanyardd with one route whose credential is @cred (format: %1$s the
 * token URL, %2$s the provider's CA file).
 */
static void world_start(struct world *w, const char *cred_fmt, int expires_in)
{
	char *secret = h_path("legacy.secret");
	const char *clients[] = { "app", NULL, NULL };

	memset(w, 0, sizeof(*w));
	h_require_root_bpf();
	cr_assert_eq(h_write_file(secret, "s3cr3t-legacy-client-pass", 0600), 0);
	clients[1] = h_strf("legacy:%s", secret);
	/* the provider verifies lanyard's assertions against the JWKS of this daemon */
	ly_init(&w->app.d, "lanyardd");
	ly_idp_start(&w->idp, w->app.d.jwks_url, clients, "https://sts.test", expires_in);
	ly_app_start_cred(&w->app, h_strf(cred_fmt, w->idp.token_url, w->idp.ca_cert), NULL);
}

#define get(w, path) ly_get_status((w)->app.cg, url((w), (path)))
#define get_until(w, path, want, ms) ly_get_until((w)->app.cg, url((w), (path)), (want), (ms))
#define status_of(out) ly_status_tail(out)

static char *url(const struct world *w, const char *path)
{
	return h_strf("http://127.0.0.1:%d%s", w->app.up_port, path);
}

/* The bearer token the upstream got for @target, checked to be the provider's; asserts. */
static const char *provider_token(struct world *w, const char *target)
{
	json_t *r = h_jsonl_wait(w->app.up_log, "target", target, 5000);
	const char *tok;

	cr_assert(r, "the upstream never received %s", target);
	tok = ly_req_token(r, "Authorization", "Bearer ");
	json_decref(r);
	cr_assert(tok, "no single Authorization: Bearer at the upstream for %s", target);
	cr_assert(!strncmp(tok, "idp.", 4), "%s: the upstream got a token not from the provider",
		  target);
	cr_assert(ly_idp_issued(&w->idp, tok), "%s: a token the provider never issued", target);
	return tok;
}

static void expect_never_shown(const struct world *w, const char *tok, const char *extra)
{
	cr_expect_eq(h_grep_tree_for(tok, h_out_path(w->app.d.name), h_err_path(w->app.d.name),
				     w->app.d.audit, h_out_path(w->idp.name), h_err_path(w->idp.name),
				     NULL), 0, "a token is in a log");
	cr_expect(!extra || !strstr(extra, tok), "a token is in the CLI's output");
}

/* The last log line of the provider, for what lanyard sent. */
static json_t *last_request(struct world *w)
{
	json_t *log = ly_idp_log(&w->idp), *last;

	cr_assert(log && json_array_size(log) > 0, "the provider saw no token request");
	last = json_array_get(log, json_array_size(log) - 1);
	json_incref(last);
	json_decref(log);
	return last;
}

static const char *jstr(const json_t *o, const char *k)
{
	const char *v = json_string_value(json_object_get(o, k));

	return v ? v : "";
}

/* --- the grants ------------------------------------------------------------------------- */

Test(oauth2, client_credentials_with_private_key_jwt)
{
	const char *tok;
	struct world w;
	char *out, *cli;
	json_t *req;

	world_start(&w, "{ type: oauth2, token_url: \"%s\", client_id: app, scope: \"read write\", "
			"resource: \"https://api.test/\", ca_file: %s }", 60);
	out = get_until(&w, "/cc", 200, 5000);
	cr_assert_eq(status_of(out), 200, "%s", out);
	tok = provider_token(&w, "/cc");
	req = last_request(&w);
	cr_expect_str_eq(jstr(req, "grant"), "client_credentials");
	cr_expect_str_eq(jstr(req, "auth"), "private_key_jwt");
	cr_expect_str_eq(jstr(req, "client_id"), "app");
	cr_expect_str_eq(jstr(req, "scope"), "read write");
	json_decref(req);
	cr_assert_eq(ly_cli(&w.app.d, &cli, "tokens", NULL), 0);
	cr_expect(strstr(cli, "oauth2"), "%s", cli);
	expect_never_shown(&w, tok, cli);
	free(cli);
	free(out);
}

Test(oauth2, client_credentials_with_a_client_secret)
{
	const char *tok;
	struct world w;
	json_t *req;
	char *out;

	world_start(&w, h_strf("{ type: oauth2, token_url: \"%%s\", client_id: legacy, "
			       "auth: client_secret_basic, client_secret_file: %s, ca_file: %%s }",
			       h_path("legacy.secret")), 60);
	out = get_until(&w, "/basic", 200, 5000);
	cr_assert_eq(status_of(out), 200, "%s", out);
	tok = provider_token(&w, "/basic");
	req = last_request(&w);
	cr_expect_str_eq(jstr(req, "auth"), "client_secret_basic");
	json_decref(req);
	expect_never_shown(&w, tok, NULL);
	cr_expect_eq(h_grep_tree_for("s3cr3t-legacy-client-pass", h_out_path(w.app.d.name),
				     h_err_path(w.app.d.name), w.app.d.audit, NULL), 0);
	free(out);
}

Test(oauth2, token_exchange_presents_the_workload_jwt)
{
	const char *tok;
	struct world w;
	json_t *req;
	char *out;

	world_start(&w, "{ type: token_exchange, token_url: \"%s\", subject_audience: "
			"\"https://sts.test\", audience: api.test, ca_file: %s }", 60);
	out = get_until(&w, "/tx", 200, 5000);
	cr_assert_eq(status_of(out), 200, "%s", out);
	tok = provider_token(&w, "/tx");
	req = last_request(&w);
	cr_expect_str_eq(jstr(req, "grant"), LY_IDP_GRANT_EXCHANGE);
	/* the provider verified lanyard's JWT for this workload against lanyard's JWKS */
	cr_expect_str_eq(jstr(req, "sub"), LY_SUB("app"));
	cr_expect_str_eq(json_string_value(json_array_get(json_object_get(req, "audience"), 0)),
			 "api.test");
	json_decref(req);
	expect_never_shown(&w, tok, NULL);
	free(out);
}

Test(oauth2, the_provider_must_prove_its_name)
{
	struct world w;
	char *out;

	/* no ca_file: the system roots do not know the test CA, TLS fails, nothing is sent */
	world_start(&w, "{ type: oauth2, token_url: \"%s\", client_id: app }", 60);
	cr_expect_eq(h_wait_file_contains(w.app.d.audit, "credential.error", 5000), 0);
	out = get(&w, "/untrusted");
	cr_expect_eq(status_of(out), 503, "%s", out);
	cr_expect(strstr(out, "certificate") || strstr(out, "SSL"), "%s", out);
	cr_expect_eq(ly_idp_stat(&w.idp, "issued"), 0, "a token was issued to an unverified peer");
	free(out);
}

/* --- refresh ------------------------------------------------------------------------------ */

/*
 * 50 apps at once, tokens of 3 s, for 9 s: every request is served, and the provider sees
 * one fetch per refresh (every 80% of a lifetime), not one per request or per client.
 */
Test(oauth2, single_flight_under_fifty_clients_across_three_lifetimes)
{
	pid_t pids[50];
	struct world w;
	long long fetched;
	json_t *ups;
	size_t i, served = 0, other = 0;
	json_t *r;
	char *out;

	world_start(&w, "{ type: oauth2, token_url: \"%s\", client_id: app, ca_file: %s }", 3);
	out = get_until(&w, "/warm", 200, 5000);
	cr_assert_eq(status_of(out), 200, "%s", out);
	free(out);
	cr_assert_eq(ly_idp_reset(&w.idp), 0);
	for (i = 0; i < 50; i++) {
		char *argv[] = { "curl", "-sS", "--noproxy", "*", "--max-time", "30", "-o",
				 "/dev/null", "-w", "%{http_code}\\n", "--rate", "4/s",
				 url(&w, h_strf("/load-%zu-[1-36]", i)), NULL };

		pids[i] = h_spawn(h_strf("load-%zu", i), argv, w.app.cg);
		cr_assert_gt(pids[i], 0);
	}
	for (i = 0; i < 50; i++)
		cr_expect_eq(h_wait_exit(pids[i], 40000), 0, "client %zu failed", i);
	for (i = 0; i < 50; i++) {
		char *codes = h_read_file(h_out_path(h_strf("load-%zu", i)), NULL);

		for (char *p = codes; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : "")
			(!strncmp(p, "200", 3) ? served++ : other++);
		free(codes);
	}
	cr_expect_eq(other, 0, "%zu of %zu requests were not served", other, served + other);
	cr_expect_eq(served, 50 * 36);
	fetched = ly_idp_stat(&w.idp, "token_requests");
	/* 9 s of 3 s tokens refreshed at 2.4 s: about 4 fetches; one per request would be 1800 */
	cr_expect(fetched >= 3 && fetched <= 6, "%lld fetches for 9 s of 3 s tokens", fetched);
	printf("single flight: %zu requests from 50 clients, %lld token requests\n", served,
	       fetched);
	/* and every upstream request carried a token the provider issued */
	ups = ly_jsonl_all(w.app.up_log, NULL, NULL);
	json_array_foreach(ups, i, r) {
		const char *tok = ly_req_token(r, "Authorization", "Bearer ");

		if (!tok || !ly_idp_issued(&w.idp, tok)) {
			cr_expect_fail("upstream request %zu without a provider token", i);
			break;
		}
	}
	json_decref(ups);
}

/* A refresh that fails leaves the valid token in use until it expires, then 503. */
Test(oauth2, a_valid_token_outlives_a_failing_refresh)
{
	const char *tok, *again;
	struct world w;
	char *out;

	world_start(&w, "{ type: oauth2, token_url: \"%s\", client_id: app, ca_file: %s }", 6);
	out = get_until(&w, "/v1", 200, 5000);
	free(out);
	tok = provider_token(&w, "/v1");
	cr_assert_eq(ly_idp_mode(&w.idp, "set=fail&status=500"), 0);
	/* the refresh at 4.8 s fails; at 5.3 s the first token still goes out */
	cr_assert_eq(h_wait_file_contains(w.app.d.audit, "credential.error", 8000), 0);
	out = get(&w, "/v2");
	cr_expect_eq(status_of(out), 200, "%s", out);
	free(out);
	again = provider_token(&w, "/v2");
	cr_expect_str_eq(again, tok);
	/* past its expiry: a clear 503 with the reason, nothing forwarded */
	free(get_until(&w, "/v3", 503, 4000));
	out = get(&w, "/v3b");
	cr_expect_eq(status_of(out), 503, "%s", out);
	cr_expect(strstr(out, "token endpoint answered 500"), "%s", out);
	cr_expect_eq(h_jsonl_count(w.app.up_log, "target", "/v3b"), 0, "forwarded without a token");
	free(out);
	/* the provider comes back: so do the requests, without a reload */
	cr_assert_eq(ly_idp_mode(&w.idp, "set=ok"), 0);
	out = get_until(&w, "/v4", 200, 15000);
	cr_expect_eq(status_of(out), 200, "%s", out);
	free(out);
	cr_expect(h_alive(w.app.d.pid));
}

/* --- a misbehaving provider ------------------------------------------------------------ */

struct bad_mode {
	const char *query;
	const char *reason;	/* in the audit's credential.error and the 503 */
};

static struct bad_mode bad_modes[] = {
	{ "set=fail&status=500", "token endpoint answered 500" },
	{ "set=fail&status=400", "token endpoint answered 400" },
	{ "set=garbage", "not a JSON object" },
	{ "set=nojson_token", "no \"access_token\" string" },
	{ "set=crlf", "control or non-ASCII" },
	{ "set=huge", "larger than 64 KiB" },
	{ "set=stall", "imed out" },		/* curl: "Operation timed out ..." */
	{ "set=slow&delay=5", "imed out" },
};

/* the test runs in another process: its parameters live in Criterion's shared memory */
ParameterizedTestParameters(oauth2, a_misbehaving_provider_is_a_clear_503_then_recovers)
{
	size_t n = sizeof(bad_modes) / sizeof(bad_modes[0]);
	struct bad_mode *p = cr_malloc(n * sizeof(*p));

	cr_assert(p);
	for (size_t i = 0; i < n; i++) {
		p[i].query = h_cr_strdup(bad_modes[i].query);
		p[i].reason = h_cr_strdup(bad_modes[i].reason);
	}
	return cr_make_param_array(struct bad_mode, p, n);
}

ParameterizedTest(struct bad_mode *m, oauth2, a_misbehaving_provider_is_a_clear_503_then_recovers)
{
	struct world w;
	json_t *err;
	char *out;

	world_start(&w, "{ type: oauth2, token_url: \"%s\", client_id: app, timeout: 2s, "
			"ca_file: %s }", 2);
	out = get_until(&w, "/first", 200, 5000);
	cr_assert_eq(status_of(out), 200, "%s", out);
	free(out);
	cr_assert_eq(ly_idp_mode(&w.idp, m->query), 0);
	/* a stalled fetch fails at its 2 s timeout: until then the 503 says it is running */
	cr_expect_eq(h_wait_file_contains(w.app.d.audit, "credential.error", 10000), 0);
	free(get_until(&w, "/bad", 503, 10000));
	out = get(&w, "/bad2");
	cr_expect_eq(status_of(out), 503, "%s", out);
	cr_expect(strstr(out, m->reason), "503 without \"%s\": %s", m->reason, out);
	cr_expect_eq(h_jsonl_count(w.app.up_log, "target", "/bad2"), 0, "forwarded without a token");
	free(out);
	err = h_jsonl_wait(w.app.d.audit, "event", "credential.error", 1000);
	cr_expect(err && strstr(json_string_value(json_object_get(err, "reason")), m->reason),
		  "audit: %s", err ? json_string_value(json_object_get(err, "reason")) : "none");
	json_decref(err);
	cr_assert_eq(ly_idp_mode(&w.idp, "set=ok"), 0);
	out = get_until(&w, "/again", 200, 20000);
	cr_expect_eq(status_of(out), 200, "no recovery: %s", out);
	free(out);
	cr_expect(h_alive(w.app.d.pid));
	/* the CRLF token never reached an upstream as a header of its own */
	cr_expect_eq(h_file_contains(h_path("up.raw"), "X-Evil"), false);
}
