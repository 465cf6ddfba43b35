// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Copyright (c) 2026 The lanyard authors */
/*
 * Credential sources beyond lanyard's own JWT, end to end: static files and exec
 * helpers, their failures (a clear 503, then recovery), and revocation on open
 * connections.  What the upstream received is the proof; every output of the daemon
 * and the CLI is searched for the values it must never show.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "lib/lanyard.h"

TestSuite(sources, H_FIXTURES, .timeout = 90);

/* ly-upstream, cgroup "app", lanyardd with one route to the upstream carrying @cred. */
static void world_start(struct ly_app *w, const char *cred, const char *route_extra)
{
	memset(w, 0, sizeof(*w));
	ly_app_start_cred(w, cred, route_extra);
}

#define get(w, path) ly_get_status((w)->cg, url((w), (path)))
#define get_until(w, path, want, ms) ly_get_until((w)->cg, url((w), (path)), (want), (ms))
#define status_of(out) ly_status_tail(out)

static char *url(const struct ly_app *w, const char *path)
{
	return h_strf("http://127.0.0.1:%d%s", w->up_port, path);
}

/* The credential the upstream got for @target, after @prefix in @header; asserts. */
static const char *upstream_token(const struct ly_app *w, const char *target, const char *header,
				  const char *prefix)
{
	json_t *r = h_jsonl_wait(w->up_log, "target", target, 5000);
	const char *tok;

	cr_assert(r, "the upstream never received %s", target);
	tok = ly_req_token(r, header, prefix);
	cr_assert(tok, "no single %s header with %s at the upstream for %s", header, prefix,
		  target);
	json_decref(r);
	return tok;
}

/* No value in @vals appears in the daemon's outputs, the audit log or @extra. */
static void expect_never_shown(const struct ly_app *w, const char *const vals[], size_t n,
			       const char *extra)
{
	for (size_t i = 0; i < n; i++) {
		cr_expect_eq(h_grep_tree_for(vals[i], h_out_path(w->d.name), h_err_path(w->d.name),
					     w->d.audit, NULL), 0,
			     "a credential value is in the daemon's output or audit");
		cr_expect(!extra || !strstr(extra, vals[i]), "a credential value in: %s", extra);
	}
}

static json_t *token_entry(const struct ly_app *w)
{
	json_t *t = ly_cli_json(&w->d, "tokens"), *e;

	cr_assert(t);
	e = json_array_get(json_object_get(t, "tokens"), 0);
	cr_assert(e);
	json_incref(e);
	json_decref(t);
	return e;
}

/* --- static ---------------------------------------------------------------------------- */

/* Rotation as operators do it: a new file renamed over the old one. */
static void rotate(const char *path, const char *value)
{
	char *tmp = h_strf("%s.new", path);

	cr_assert_eq(h_write_file(tmp, value, 0600), 0);
	cr_assert_eq(rename(tmp, path), 0);
}

Test(sources, static_file_is_injected_and_reread_when_it_changes)
{
	static const char *vals[] = { "sk_live_first_4f1c9a0b", "sk_live_second_77d2e1f0" };
	char *file = h_path("api.key"), *out, *cli;
	struct ly_app w;
	json_t *e;

	cr_assert_eq(h_write_filef(file, 0600, "%s\n", vals[0]), 0);
	world_start(&w, h_strf("{ type: static, file: %s, max_age: 30d }", file),
		    "        header: \"X-API-Key: {token}\"\n");
	out = get_until(&w, "/s1", 200, 5000);
	cr_assert_eq(status_of(out), 200, "%s", out);
	cr_expect_str_eq(upstream_token(&w, "/s1", "X-API-Key", ""), vals[0]);
	/* the app's own Authorization is not what carries it; nothing else was added */
	e = token_entry(&w);
	cr_expect_str_eq(json_string_value(json_object_get(e, "type")), "static");
	cr_expect(json_integer_value(json_object_get(e, "age_s")) >= 0);
	cr_expect(json_is_false(json_object_get(e, "too_old")));
	json_decref(e);

	rotate(file, vals[1]);
	free(out);
	out = NULL;
	for (int i = 0; i < 50; i++) {
		char *path = h_strf("/s2-%d", i);

		free(out);
		out = get(&w, path);
		if (status_of(out) == 200 && !strcmp(upstream_token(&w, path, "X-API-Key", ""),
						     vals[1]))
			break;
		usleep(100 * 1000);
	}
	cr_expect_eq(status_of(out), 200, "%s", out);
	/* revoking it by fingerprint reads the file again (the same value: it did not change) */
	e = token_entry(&w);
	cr_assert_eq(ly_cli(&w.d, &cli, "revoke", "--jti",
			    json_string_value(json_object_get(e, "fingerprint")), NULL), 0, "%s", cli);
	json_decref(e);
	free(cli);
	free(out);
	out = get_until(&w, "/s3", 200, 5000);
	cr_expect_eq(status_of(out), 200, "not re-read after a revoke: %s", out);
	/* made readable by others: it may have been copied, and is not used any more */
	cr_assert_eq(chmod(file, 0644), 0);
	free(out);
	out = get_until(&w, "/s4", 503, 5000);
	cr_expect_eq(status_of(out), 503, "a group-readable key is still injected: %s", out);
	cr_assert_eq(ly_cli(&w.d, &cli, "tokens", NULL), 0);
	expect_never_shown(&w, vals, 2, cli);
	free(cli);
	free(out);
}

Test(sources, static_refuses_a_file_others_can_read_then_recovers)
{
	static const char *vals[] = { "static-secret-93ac1e" };
	char *file = h_path("open.key"), *out;
	struct ly_app w;
	json_t *err;

	cr_assert_eq(h_write_file(file, vals[0], 0644), 0);
	world_start(&w, h_strf("{ type: static, file: %s }", file), NULL);
	err = h_jsonl_wait(w.d.audit, "event", "credential.error", 5000);
	cr_assert(err, "no credential.error audited");
	cr_expect(strstr(json_string_value(json_object_get(err, "reason")), "readable by group"),
		  "reason: %s", json_string_value(json_object_get(err, "reason")));
	json_decref(err);
	out = get(&w, "/open");
	cr_expect_eq(status_of(out), 503, "%s", out);
	cr_expect(strstr(out, "readable by group or other"), "503 without the reason: %s", out);
	cr_expect_eq(h_jsonl_count(w.up_log, "target", "/open"), 0, "forwarded without it");
	free(out);

	/* fixed by the operator: picked up without a reload (backoff is at most a minute,
	 * but the first retries come within seconds) */
	cr_assert_eq(chmod(file, 0600), 0);
	out = get_until(&w, "/fixed", 200, 10000);
	cr_expect_eq(status_of(out), 200, "%s", out);
	cr_expect(h_alive(w.d.pid));
	expect_never_shown(&w, vals, 1, out);
	free(out);
}

Test(sources, static_warns_past_max_age)
{
	char *file = h_path("old.key"), *cli;
	struct timeval tv[2];
	struct ly_app w;

	cr_assert_eq(h_write_file(file, "old-static-key-5511", 0600), 0);
	gettimeofday(&tv[0], NULL);
	tv[0].tv_sec -= 10 * 86400;
	tv[1] = tv[0];
	cr_assert_eq(utimes(file, tv), 0);
	world_start(&w, h_strf("{ type: static, file: %s, max_age: 7d }", file), NULL);
	free(get_until(&w, "/old", 200, 5000));
	cr_assert_eq(ly_cli(&w.d, &cli, "tokens", NULL), 0);
	cr_expect(strstr(cli, "age 10d") && strstr(cli, "older than max_age"), "%s", cli);
	cr_expect(!strstr(cli, "old-static-key-5511"));
	free(cli);
}

/* --- exec ------------------------------------------------------------------------------- */

/*
 * A helper script: counts its runs in <tmp>/<name>.runs, records its environment and
 * capabilities and its open-file limit, prints a fresh token valid for @life seconds.  @mode: "ok", "fail"
 * (exit 3 with a message on stderr), "junk" (not JSON), "hang" (sleeps in a child), "gate"
 * (the token once <tmp>/<name>.gate exists).
 */
static char *helper(const char *name, const char *mode, int life)
{
	char *path = h_path("%s.sh", name);

	cr_assert_eq(h_write_filef(path, 0700,
		"#!/bin/sh\n"
		"echo run >> %s.runs\n"
		"env > %s.env\n"
		"grep CapEff /proc/self/status > %s.caps\n"
		"ulimit -n > %s.nofile\n"
		"case %s in gate) while [ ! -e %s.gate ]; do sleep 0.05; done ;; esac\n"
		"case %s in\n"
		"fail) echo 'vault: permission denied for role app' >&2; exit 3 ;;\n"
		"junk) echo 'this is not json' ;;\n"
		"hang) sleep 60 & echo $! > %s.sleeper; wait ;;\n"
		"*) n=$(wc -l < %s.runs); now=$(date +%%s)\n"
		"   printf '{\"token\": \"exec-tok-%%s-%%s\", \"expires_at\": %%s}\\n' "
		"\"$n\" \"$now\" $((now + %d)) ;;\n"
		"esac\n",
		h_path("%s", name), h_path("%s", name), h_path("%s", name), h_path("%s", name),
		mode, h_path("%s", name), mode, h_path("%s", name), h_path("%s", name), life), 0);
	return path;
}

/* The soft and hard "Max open files" of @pid. */
static void nofile_of(pid_t pid, unsigned long long *soft, unsigned long long *hard)
{
	char *limits = h_read_file(h_strf("/proc/%d/limits", (int)pid), NULL);
	const char *l = limits ? strstr(limits, "Max open files") : NULL;

	cr_assert(l, "no open-file limit for %d", (int)pid);
	cr_assert_eq(sscanf(l, "Max open files %llu %llu", soft, hard), 2, "%s", l);
	free(limits);
}

Test(sources, exec_helper_tokens_refresh_across_three_lifetimes)
{
	char *cmd = helper("h", "ok", 3), *out = NULL, *env, *caps, *cli, *nofile;
	struct rlimit low;
	unsigned long long soft, hard;
	const char *seen[64];
	size_t nseen = 0;
	struct ly_app w;

	/* lanyardd starts with the usual soft limit, below the hard one */
	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &low), 0);
	cr_assert_gt(low.rlim_max, 1024, "hard open-file limit %llu", (unsigned long long)low.rlim_max);
	low.rlim_cur = 1024;
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
	world_start(&w, h_strf("{ type: exec, command: [%s, --role, app], timeout: 5s }", cmd),
		    NULL);
	out = get_until(&w, "/e0", 200, 5000);
	cr_assert_eq(status_of(out), 200, "%s", out);
	/* 10 s of requests: three lifetimes and more, never a 503, every token fresh */
	for (int i = 0; i < 50; i++) {
		char *path = h_strf("/e-%d", i);
		const char *tok;
		size_t k;

		free(out);
		out = get(&w, path);
		cr_assert_eq(status_of(out), 200, "request %d: %s", i, out);
		tok = upstream_token(&w, path, "Authorization", "Bearer ");
		cr_expect(!strncmp(tok, "exec-tok-", 9), "not the helper's token");
		for (k = 0; k < nseen && strcmp(seen[k], tok); k++)
			;
		if (k == nseen && nseen < 64)
			seen[nseen++] = tok;
		usleep(200 * 1000);
	}
	cr_expect_geq(nseen, 3, "only %zu tokens over 10 s of 3 s tokens", nseen);
	/* the helper ran with nothing: no capabilities, only PATH and who it works for */
	caps = h_read_file(h_path("h.caps"), NULL);
	cr_expect(caps && strstr(caps, "0000000000000000"), "helper capabilities: %s", caps);
	env = h_read_file(h_path("h.env"), NULL);
	cr_assert(env);
	cr_expect(strstr(env, "LANYARD_WORKLOAD=app\n"), "%s", env);
	cr_expect(!strstr(env, "HOME=") && !strstr(env, "LANYARD_REQUIRE_BPF"), "%s", env);
	/* lanyardd raised its soft limit to the hard one; the helper got 1024 back */
	nofile_of(w.d.pid, &soft, &hard);
	cr_expect_eq(hard, low.rlim_max);
	cr_expect_eq(soft, hard, "lanyardd's open-file limit: %llu of %llu", soft, hard);
	nofile = h_read_file(h_path("h.nofile"), NULL);
	cr_expect(nofile && !strcmp(nofile, "1024\n"), "the helper's open-file limit: %s", nofile);
	free(nofile);
	cr_assert_eq(ly_cli(&w.d, &cli, "tokens", NULL), 0);
	expect_never_shown(&w, seen, nseen, cli);
	free(cli);
	free(out);
}

Test(sources, exec_helper_failures_are_a_clear_503_and_recover)
{
	char *cmd = h_path("h.sh"), *out, *log;
	struct ly_app w;
	pid_t sleeper;

	helper("h", "fail", 60);
	world_start(&w, h_strf("{ type: exec, command: [%s], timeout: 1s }", cmd), NULL);
	out = get_until(&w, "/f", 503, 3000);
	cr_expect_eq(status_of(out), 503, "%s", out);
	cr_expect(strstr(out, "exited with status 3"), "%s", out);
	cr_expect(!strstr(out, "permission denied"), "the helper's stderr went to the app");
	free(out);
	/* its stderr is in the daemon's log, for the operator */
	cr_expect_eq(h_wait_file_contains(h_err_path(w.d.name), "vault: permission denied", 3000),
		     0, "the helper's stderr is not in the daemon log");

	helper("h", "junk", 60);
	cr_expect_eq(h_wait_file_contains(w.d.audit, "not a JSON object", 8000), 0);
	out = get(&w, "/junk");
	cr_expect_eq(status_of(out), 503, "%s", out);
	free(out);

	helper("h", "hang", 60);
	cr_expect_eq(h_wait_file_contains(w.d.audit, "did not finish within 1000 ms", 20000), 0);
	log = h_read_file(h_path("h.sleeper"), NULL);
	cr_assert(log);
	sleeper = atoi(log);
	/* the helper's whole process group was killed, its child too */
	for (int i = 0; i < 20 && sleeper > 0 && kill(sleeper, 0) == 0; i++)
		usleep(100 * 1000);
	cr_expect(sleeper > 0 && kill(sleeper, 0) < 0, "the helper's child %d still runs",
		  sleeper);

	helper("h", "ok", 60);
	out = get_until(&w, "/back", 200, 70000);
	cr_expect_eq(status_of(out), 200, "no recovery: %s", out);
	cr_expect(h_alive(w.d.pid));
	free(out);
	free(log);
}

/* A curl from the app's cgroup in the background, its output " <status>" as @name's. */
static pid_t curl_bg(const struct ly_app *w, const char *name, const char *path)
{
	pid_t pid = h_spawnl(name, w->cg, "curl", "-s", "-w", " %{http_code}", "--noproxy", "*",
			     url(w, path), NULL);

	cr_assert_gt(pid, 0);
	return pid;
}

/* Until @n requests are parked for their credential (lanyard_credential_waits_total). */
static void wait_parked(const struct ly_app *w, long long n)
{
	for (int waited = 0; ly_metric(&w->d, "credential_waits") < n && waited < 10000;
	     waited += 50)
		usleep(50 * 1000);
	cr_assert_eq(ly_metric(&w->d, "credential_waits"), n, "not %lld requests parked", n);
}

/*
 * While the first token is being fetched (the helper waits for a gate), requests wait
 * for it instead of getting a 503 -- also one whose client shut its write side after the
 * request -- and then go upstream with it.
 */
Test(sources, a_request_waits_for_the_first_credential)
{
	char *cmd = helper("h", "gate", 60), *out, *raw = NULL;
	const char *req = "GET /half HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n\r\n";
	struct ly_app w;
	pid_t first, half;

	world_start(&w, h_strf("{ type: exec, command: [%s], timeout: 20s }", cmd), NULL);
	first = curl_bg(&w, "first", "/first");
	cr_assert_eq(h_write_file(h_path("half.req"), req, 0600), 0);
	half = ly_client_spawn("half", w.cg, "raw.py", "--host", "127.0.0.1", "--port",
			       h_strf("%d", w.up_port), "--send", h_path("half.req"), "--out",
			       h_path("half.resp"), "--timeout", "15", "--half-close", NULL);
	cr_assert_gt(half, 0);
	wait_parked(&w, 2);
	cr_assert_eq(h_write_file(h_path("h.gate"), "", 0600), 0);

	cr_assert_eq(h_wait_exit(first, 15000), 0, "curl failed");
	out = h_read_file(h_out_path("first"), NULL);
	cr_expect_eq(status_of(out), 200, "the first request: %s", out);
	free(out);
	cr_expect(!strncmp(upstream_token(&w, "/first", "Authorization", "Bearer "), "exec-tok-1-",
			   11), "not the first token");
	cr_assert_eq(h_wait_exit(half, 20000), 0, "raw.py failed");
	raw = h_read_file(h_path("half.resp"), NULL);
	cr_expect(raw && !strncmp(raw, "HTTP/1.1 200", 12), "the half-closed request: %s", raw);
	free(raw);
	cr_expect(h_jsonl_wait(w.up_log, "target", "/half", 3000), "/half never went upstream");
	cr_expect_eq(ly_metric(&w.d, "credential_unavailable"), 0);
}

/* ... for timeouts.head at most: then the 503, and once the token is in, a 200. */
Test(sources, a_request_waits_for_the_first_credential_until_the_head_timeout)
{
	char *cmd = helper("h", "gate", 60), *out;
	struct ly_app w;
	pid_t late;

	memset(&w, 0, sizeof(w));
	ly_init(&w.d, "lanyardd");
	w.d.policy_extra = "timeouts: { head: 2s }\n";
	ly_app_start_cred(&w, h_strf("{ type: exec, command: [%s], timeout: 20s }", cmd), NULL);
	late = curl_bg(&w, "late", "/late");
	wait_parked(&w, 1);
	cr_assert_eq(h_wait_exit(late, 8000), 0, "curl failed");
	out = h_read_file(h_out_path("late"), NULL);
	cr_expect_eq(status_of(out), 503, "waited past timeouts.head: %s", out);
	cr_expect(out && strstr(out, "being fetched"), "%s", out);
	free(out);
	cr_expect_eq(h_jsonl_count(w.up_log, "target", "/late"), 0, "/late went upstream");
	cr_expect_eq(ly_metric(&w.d, "credential_unavailable"), 1);
	cr_assert_eq(h_write_file(h_path("h.gate"), "", 0600), 0);
	out = get_until(&w, "/then", 200, 10000);
	cr_expect_eq(status_of(out), 200, "%s", out);
	free(out);
}

/* A request parked for the first credential gets its 403 at once when the workload is revoked. */
Test(sources, a_request_waiting_for_a_credential_is_refused_when_revoked)
{
	char *cmd = helper("h", "gate", 60), *out, *cli;
	struct ly_app w;
	pid_t curl;

	world_start(&w, h_strf("{ type: exec, command: [%s], timeout: 20s }", cmd), NULL);
	curl = curl_bg(&w, "parked", "/parked");
	wait_parked(&w, 1);
	cr_assert_eq(ly_cli(&w.d, &cli, "revoke", "--workload", "app", NULL), 0, "%s", cli);
	free(cli);
	/* long before the head timeout (10 s); the token never comes */
	cr_assert_eq(h_wait_exit(curl, 1500), 0, "the parked request still waits");
	out = h_read_file(h_out_path("parked"), NULL);
	cr_expect_eq(status_of(out), 403, "%s", out);
	free(out);
	cr_expect_eq(h_jsonl_count(w.up_log, "target", "/parked"), 0, "/parked went upstream");
}

/* --- revocation ------------------------------------------------------------------------- */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * An app hammering one keep-alive connection; `lanyard revoke` in the middle.  From the
 * moment the revoke returns no request succeeds; the first refusal comes within 100 ms of
 * asking; the app gets a 403 from lanyardd (or the connection closes, on_revoke: close);
 * a new connection is refused by the kernel.
 */
static void revoke_while_busy(const char *extra, const char *what, const char *arg,
			      int want_status)
{
	double t0, t1, first_refused = 0;
	struct ly_app w;
	json_t *lines, *l;
	char *out;
	pid_t app;
	size_t i;

	world_start(&w, "{ type: jwt, audience: " LY_AUD ", ttl: 5m }", extra);
	app = ly_client_spawn("ka", w.cg, "keepalive.py", "--host", "127.0.0.1", "--port",
			      h_strf("%d", w.up_port), "--interval", "0.002", "--duration", "4",
			      NULL);
	cr_assert_gt(app, 0);
	cr_assert_geq(ly_jsonl_wait_count(h_out_path("ka"), "status", NULL, 20, 5000), 20);
	if (!arg)	/* the route, as the policy writes it */
		arg = h_strf("127.0.0.1:%d", w.up_port);
	t0 = now_s();
	cr_assert_eq(ly_cli(&w.d, &out, "revoke", what, arg, NULL), 0, "%s", out);
	t1 = now_s();
	free(out);
	h_wait_exit(app, 10000);
	lines = ly_jsonl_all(h_out_path("ka"), "i", NULL);
	json_array_foreach(lines, i, l) {
		double sent = json_real_value(json_object_get(l, "t0"));
		double got = json_real_value(json_object_get(l, "t"));
		json_int_t st = json_integer_value(json_object_get(l, "status"));

		if (st == 200) {
			cr_expect_lt(sent, t1, "a request sent %.1f ms after the revoke succeeded",
				     (sent - t1) * 1e3);
			continue;
		}
		if (!first_refused) {
			first_refused = got;
			cr_expect(want_status ? st == want_status :
					      json_object_get(l, "error") != NULL,
				  "the first refusal: status %lld", (long long)st);
		}
	}
	cr_expect_gt(first_refused, 0, "no request was refused");
	cr_expect_lt(first_refused - t0, 0.100, "revocation took %.1f ms",
		     (first_refused - t0) * 1e3);
	printf("revoke: control answered in %.1f ms, first refusal %.1f ms after asking\n",
	       (t1 - t0) * 1e3, (first_refused - t0) * 1e3);
	json_decref(lines);
	if (!strcmp(what, "--workload")) {
		/* the kernel refuses the workload's new connections */
		cr_expect_neq(ly_curl(w.cg, &out, url(&w, "/new"), NULL), 0, "served: %s", out);
		free(out);
		cr_expect_eq(h_jsonl_count(w.up_log, "target", "/new"), 0);
	}
	l = h_jsonl_wait(w.d.audit, "event", "credential.revoke", 2000);
	cr_expect(l, "no credential.revoke audited");
	json_decref(l);
}

Test(sources, revoking_a_workload_refuses_the_next_request_within_100ms)
{
	revoke_while_busy(NULL, "--workload", "app", 403);
}

Test(sources, revoking_a_route_with_on_revoke_close_closes_open_connections)
{
	revoke_while_busy("        on_revoke: close\n", "--route", NULL, 0);
}

Test(sources, revoking_a_jti_never_injects_it_again)
{
	const char *first, *second;
	json_t *claims;
	struct ly_app w;
	char *out;

	world_start(&w, "{ type: jwt, audience: " LY_AUD ", ttl: 5m }", NULL);
	out = get_until(&w, "/j1", 200, 5000);
	free(out);
	first = upstream_token(&w, "/j1", "Authorization", "Bearer ");
	claims = ly_verify(&w.d, first, LY_AUD);
	cr_assert(claims);
	cr_assert_eq(ly_cli(&w.d, &out, "revoke", "--jti",
			    json_string_value(json_object_get(claims, "jti")), NULL), 0, "%s", out);
	json_decref(claims);
	cr_expect(strstr(out, "1 credentials dropped"), "%s", out);
	free(out);
	out = get(&w, "/j2");
	cr_expect_eq(status_of(out), 200, "%s", out);
	second = upstream_token(&w, "/j2", "Authorization", "Bearer ");
	cr_expect_str_neq(first, second, "the revoked token was injected again");
	free(out);
	cr_expect_neq(ly_cli(&w.d, &out, "revoke", "--jti", "no-such-jti", NULL), 0);
	cr_expect(strstr(out, "no credential with that jti"), "%s", out);
	free(out);
}
