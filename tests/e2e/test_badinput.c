// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Copyright (c) 2026 The lanyard authors */
/*
 * lanyardd end to end, bad input from an enrolled app: lanyardd answers it itself (400,
 * 405, 408, 431), audits a request.reject, and not one byte of it reaches the upstream.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include "lib/lanyard.h"

TestSuite(badinput, H_FIXTURES, .timeout = 60);

struct bad_case {
	const char *name;
	const char *req; /* NUL-free; "%s" is replaced by a 70 KiB filler */
	int status;
};

#define H "Host: api.test\r\n"

/* MALFORMED */
static struct bad_case bad_cases[] = {
	{ "cl_and_te",
	  "POST /bad HTTP/1.1\r\n" H "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
	  "0\r\n\r\n",
	  400 },
	{ "two_content_lengths",
	  "POST /bad HTTP/1.1\r\n" H "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400 },
	{ "obs_fold", "GET /bad HTTP/1.1\r\n" H "X-Folded: a\r\n  b\r\n\r\n", 400 },
	{ "bare_lf", "GET /bad HTTP/1.1\n" "Host: api.test\n\n", 400 },
	{ "invalid_chunk_size",
	  "POST /bad HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
	  400 },
	{ "overflowing_chunk_size",
	  "POST /bad HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n"
	  "10000000000000000000\r\nhello\r\n0\r\n\r\n",
	  400 },
	/* TOO LONG */
	{ "head_over_64k", "GET /bad HTTP/1.1\r\n" H "X-Big: %s\r\n\r\n", 431 },
	/* REFUSED METHOD: TRACE would echo the injected credential back to the app */
	{ "trace", "TRACE /bad HTTP/1.1\r\n" H "\r\n", 405 },
};

ParameterizedTestParameters(badinput, is_answered_by_lanyardd_alone)
{
	size_t i, n = sizeof(bad_cases) / sizeof(bad_cases[0]);
	struct bad_case *p = cr_malloc(n * sizeof(*p));

	cr_assert(p);
	for (i = 0; i < n; i++) {
		p[i] = bad_cases[i];
		p[i].name = h_cr_strdup(bad_cases[i].name);
		p[i].req = h_cr_strdup(bad_cases[i].req);
	}
	return cr_make_param_array(struct bad_case, p, n);
}

/* What a refused request must leave behind: our status, one request.reject, an idle upstream. */
static void expect_refused(const struct ly_app *a, const char *name, const char *resp,
			   int status)
{
	json_t *rej;

	cr_expect_eq(ly_status_of(resp), status, "%s: lanyardd answered: %.200s", name, resp);
	cr_expect(strstr(resp, "X-Lanyard-Error: "), "%s: not lanyardd's own answer", name);
	rej = h_jsonl_wait(a->d.audit, "event", "request.reject", 3000);
	cr_assert(rej, "%s: no request.reject audit record", name);
	cr_expect_eq(json_integer_value(json_object_get(rej, "status")), status, "%s", name);
	cr_expect(json_string_value(json_object_get(rej, "reason")), "%s: no reason", name);
	cr_expect_str_eq(json_string_value(json_object_get(rej, "workload")), "app");
	json_decref(rej);
	cr_expect_eq(h_file_size(a->up_raw), 0, "%s: %lld bytes reached the upstream", name,
		     h_file_size(a->up_raw));
	cr_expect_eq(h_jsonl_count(a->d.audit, "event", "credential.use"), 0);
}

ParameterizedTest(struct bad_case *c, badinput, is_answered_by_lanyardd_alone)
{
	char *req, *resp, *filler = NULL;
	struct ly_app a;
	int rc;

	ly_app_start(&a, "5m", NULL);
	if (strstr(c->req, "%s")) {
		filler = malloc(70 * 1024 + 1);
		cr_assert(filler);
		memset(filler, 'a', 70 * 1024);
		filler[70 * 1024] = '\0';
	}
	req = filler ? h_strf(c->req, filler) : h_strf("%s", c->req);
	free(filler);
	rc = ly_raw(a.cg, "127.0.0.1", a.up_port, req, strlen(req), 5, &resp, NULL);
	cr_assert_eq(rc, 0, "%s: raw.py could not connect", c->name);
	expect_refused(&a, c->name, resp, c->status);
	free(resp);
}

Test(badinput, times_out_a_head_that_never_completes, .timeout = 40)
{
	const char *req = "GET /slow HTTP/1.1\r\n" H "X-Partial: yes\r\n";
	struct ly_app a;
	char *resp;

	ly_app_start_policy(&a, "timeouts: { head: 2s }\n", NULL);
	/* raw.py waits 8 s for the answer without closing */
	cr_assert_eq(ly_raw(a.cg, "127.0.0.1", a.up_port, req, strlen(req), 8, &resp, NULL), 0);
	expect_refused(&a, "partial head", resp, 408);
	free(resp);
	cr_expect_eq(ly_metric(&a.d, "head_timeout"), 1);
}

/* The flow.close record with reason @reason, within @timeout_ms.  New reference. */
static json_t *closed_by(const struct ly_app *a, const char *reason, int timeout_ms)
{
	json_t *ev = h_jsonl_wait(a->d.audit, "reason", reason, timeout_ms);

	cr_assert(ev, "no flow closed as %s", reason);
	cr_expect_str_eq(json_string_value(json_object_get(ev, "event")), "flow.close");
	return ev;
}

/* timeouts.idle: a keep-alive flow nobody uses is closed, after its answer. */
Test(badinput, closes_a_flow_idle_for_the_idle_timeout)
{
	const char *req = "GET /idle HTTP/1.1\r\n" H "\r\n";
	struct ly_app a;
	json_t *ev;
	char *resp;

	ly_app_start_policy(&a, "timeouts: { head: 2s, idle: 2s }\n", NULL);
	/* raw.py reads until EOF, for at most 8 s: lanyardd's close ends it */
	cr_assert_eq(ly_raw(a.cg, "127.0.0.1", a.up_port, req, strlen(req), 8, &resp, NULL), 0);
	cr_expect_eq(ly_status_of(resp), 200, "%.200s", resp);
	free(resp);
	ev = closed_by(&a, "idle", 1000);
	cr_expect_eq(json_integer_value(json_object_get(ev, "requests")), 1);
	json_decref(ev);
	cr_expect_eq(ly_metric(&a.d, "flow_idle"), 1);
	cr_expect_eq(ly_metric(&a.d, "flow_stalled"), 0);
}

/*
 * A client that pipelines requests for large answers and stops reading: lanyardd's buffer
 * toward it stays full, nothing moves, and the flow is closed as stalled at the idle
 * timeout (it used to be held for ever: bytes waiting exempted it).
 */
Test(badinput, closes_a_flow_whose_client_stops_reading)
{
	char *body = malloc(64 * 1024 + 1), *req = NULL, *in = h_path("stall.in"), *log = NULL;
	size_t len = 0;
	struct ly_app a;
	json_t *ev;
	FILE *f;

	cr_assert(body);
	memset(body, 'b', 64 * 1024);
	body[64 * 1024] = '\0';
	ly_app_start_policy(&a, "timeouts: { head: 2s, idle: 2s }\n", body);
	free(body);
	f = open_memstream(&req, &len);
	cr_assert(f);
	for (int i = 0; i < 200; i++)	/* 12.5 MiB of answers: more than any socket buffers */
		fprintf(f, "GET /stall-%d HTTP/1.1\r\n" H "\r\n", i);
	cr_assert_eq(fclose(f), 0);
	cr_assert_eq(h_write_file(in, req, 0600), 0);
	free(req);
	/* reads nothing for 6 s, then whatever is left until EOF or a reset */
	cr_assert_eq(ly_client_run(a.cg, 20000, &log, "raw.py", "--host", "127.0.0.1", "--port",
				   h_strf("%d", a.up_port), "--send", in, "--out",
				   h_path("stall.resp"), "--stall", "6", "--timeout", "3", NULL),
		     0, "raw.py: %s", log);
	free(log);
	ev = closed_by(&a, "stalled", 1000);
	cr_expect_lt(json_integer_value(json_object_get(ev, "bytes_down")), 200 * 64 * 1024,
		     "every answer reached the client: nothing stalled");
	json_decref(ev);
	cr_expect_eq(ly_metric(&a.d, "flow_stalled"), 1);
	cr_expect_eq(ly_metric(&a.d, "flow_idle"), 0);
	cr_expect(h_alive(a.d.pid));
}

Test(badinput, answers_a_good_request_before_refusing_the_bad_one_behind_it)
{
	const char *req = "GET /good HTTP/1.1\r\n" H "\r\n"
			  "GET /evil HTTP/1.1\r\n" H "Content-Length: 1\r\n"
			  "Content-Length: 2\r\n\r\nxy";
	json_t *good, *claims, *rej;
	struct ly_app a;
	char *resp, *second;

	ly_app_start(&a, "5m", NULL);
	cr_assert_eq(ly_raw(a.cg, "127.0.0.1", a.up_port, req, strlen(req), 5, &resp, NULL), 0);
	/* first the upstream's answer to /good, then lanyardd's 400 for /evil, in order */
	cr_expect_eq(ly_status_of(resp), 200, "first answer: %.300s", resp);
	second = strstr(resp + 1, "HTTP/1.1 ");
	cr_expect(second, "no second answer: %.300s", resp);
	cr_expect_eq(ly_status_of(second), 400, "second answer: %.300s", second ?: "");
	cr_expect(second && strstr(second, "X-Lanyard-Error: "));
	free(resp);

	good = h_jsonl_wait(a.up_log, "target", "/good", 3000);
	cr_assert(good, "the good request did not reach the upstream");
	claims = ly_verify(&a.d, ly_req_token(good, "Authorization", "Bearer "), LY_AUD);
	cr_expect(claims, "the good request carried no valid credential");
	cr_expect_eq(h_jsonl_count(a.up_log, NULL, NULL), 1, "the upstream saw a second request");
	cr_expect_not(h_file_contains(a.up_raw, "/evil"), "the bad request's bytes went upstream");
	cr_expect_not(h_file_contains(a.up_raw, "Content-Length"));
	rej = h_jsonl_wait(a.d.audit, "event", "request.reject", 3000);
	cr_expect(rej && json_integer_value(json_object_get(rej, "status")) == 400);
	json_decref(rej);
	json_decref(claims);
	json_decref(good);
}

Test(badinput, out_of_descriptors_refuses_new_flows_without_spinning_and_recovers)
{
	struct rlimit old, low;
	struct ly_app a;
	json_t *ev;
	long t0, t1;
	char *out;

	ly_app_start(&a, "5m", NULL);
	cr_assert_eq(prlimit(a.d.pid, RLIMIT_NOFILE, NULL, &old), 0);
	/* no free descriptor at all: accept() fails with EMFILE */
	low = (struct rlimit){ .rlim_cur = h_nofile_leaving(a.d.pid, 0), .rlim_max = old.rlim_max };
	cr_assert_eq(prlimit(a.d.pid, RLIMIT_NOFILE, &low, NULL), 0);
	cr_expect_neq(ly_curl(a.cg, &out, h_strf("http://127.0.0.1:%d/starved", a.up_port), NULL),
		      0, "curl was served: %s", out);
	free(out);
	ev = h_jsonl_wait(a.d.audit, "reason", "out of file descriptors", 5000);
	cr_expect(ev, "no flow.deny for the shed connection");
	cr_expect_str_eq(json_string_value(json_object_get(ev, "event")), "flow.deny");
	json_decref(ev);
	/* a listener that stays readable must not make the loop spin */
	t0 = h_cpu_ticks(a.d.pid);
	usleep(1000 * 1000);
	t1 = h_cpu_ticks(a.d.pid);
	cr_expect_lt(t1 - t0, sysconf(_SC_CLK_TCK) / 4, "lanyardd burnt %ld ticks in 1 s",
		     t1 - t0);
	cr_assert_eq(prlimit(a.d.pid, RLIMIT_NOFILE, &old, NULL), 0);
	cr_expect_eq(h_jsonl_count(a.up_log, "target", "/starved"), 0, "/starved went upstream");
	cr_assert_eq(ly_curl(a.cg, &out, h_strf("http://127.0.0.1:%d/after", a.up_port), NULL), 0,
		     "curl: %s", out);
	free(out);
	cr_expect(h_jsonl_wait(a.up_log, "target", "/after", 3000), "not served after recovery");
	cr_expect(h_alive(a.d.pid));
}

/*
 * An upstream that resets its connection while lanyardd holds a full buffer of its answer
 * for a client that reads nothing: the reset (EPOLLERR and EPOLLHUP, which no epoll mask
 * silences) must not make lanyardd's loop spin, and the flow is closed as stalled at the
 * idle timeout (a spinning loop also kept it "active" for ever).
 */
Test(badinput, an_upstream_reset_behind_a_client_that_does_not_read, .timeout = 40)
{
	const char *req = "GET /reset HTTP/1.1\r\n" H "\r\n", *cg, *reason;
	struct ly_daemon d;
	pid_t up, client;
	json_t *ev;
	long t0, t1;
	int port;

	h_require_root_bpf();
	port = h_free_port();
	cr_assert_gt(port, 0);
	up = h_spawnl("reset-up", NULL, LY_PYTHON, h_repo_path("tests/servers/reset_upstream.py"),
		      h_strf("%d", port), NULL);
	cr_assert_gt(up, 0);
	cr_assert_eq(h_wait_output(up, "ready", 10000), 0, "reset_upstream.py did not start");
	cg = h_cgroup_create("app");
	cr_assert(cg);
	ly_init(&d, "lanyardd");
	d.policy_extra = "timeouts: { head: 2s, idle: 4s }\n";
	ly_start(&d, ly_yaml_workload("app", cg, ly_yaml_route(h_strf("127.0.0.1:%d", port), LY_AUD,
								 "5m", NULL)));
	cr_assert_eq(h_write_file(h_path("reset.req"), req, 0600), 0);
	client = ly_client_spawn("stall", cg, "raw.py", "--host", "127.0.0.1", "--port",
				 h_strf("%d", port), "--send", h_path("reset.req"), "--out",
				 h_path("reset.resp"), "--stall", "10", "--timeout", "2", NULL);
	cr_assert_gt(client, 0);
	cr_assert_eq(h_wait_output(up, "reset", 15000), 0, "the upstream never reset");
	usleep(300 * 1000);
	t0 = h_cpu_ticks(d.pid);
	usleep(1000 * 1000);
	t1 = h_cpu_ticks(d.pid);
	cr_expect_lt(t1 - t0, sysconf(_SC_CLK_TCK) / 4, "lanyardd burnt %ld ticks in 1 s", t1 - t0);
	/* closed at the idle timeout: stalled if its answer still filled lanyardd's buffer */
	ev = h_jsonl_wait(d.audit, "event", "flow.close", 8000);
	cr_assert(ev, "the flow was never closed");
	reason = json_string_value(json_object_get(ev, "reason"));
	cr_expect(reason && (!strcmp(reason, "stalled") || !strcmp(reason, "idle")), "closed: %s",
		  reason);
	json_decref(ev);
	cr_expect(h_alive(d.pid));
}
