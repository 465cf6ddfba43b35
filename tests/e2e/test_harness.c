// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Copyright (c) 2026 The lanyard authors */
/*
 * Self-test of the e2e infrastructure on the real system: ly-upstream, ly-cgexec and the
 * harness (spawning, cgroups, waits, JSON lines, teardown and the janitor).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "lib/harness.h"

TestSuite(upstream, H_FIXTURES, .timeout = 30);
TestSuite(cgexec, H_FIXTURES, .timeout = 30);
TestSuite(harness, H_FIXTURES, .timeout = 60);

#define CURL "curl", "-sS", "--noproxy", "*", "--max-time", "10"

/* --- helpers ------------------------------------------------------------------------------ */

/* Send @req to 127.0.0.1:@port, half-close, read until EOF (3 s at most); caller frees. */
static char *raw_exchange(int port, const char *req, size_t len)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	struct timeval tv = { .tv_sec = 3 };
	size_t n = 0, cap = 65536;
	char *buf = calloc(1, cap);
	ssize_t r;
	int fd;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert(fd >= 0 && buf);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0, "connect: %s",
		     strerror(errno));
	cr_assert_eq(write(fd, req, len), (ssize_t)len);
	shutdown(fd, SHUT_WR);
	while (n + 1 < cap && (r = read(fd, buf + n, cap - n - 1)) > 0)
		n += (size_t)r;
	close(fd);
	return buf;
}

static pid_t start_upstream(int *port)
{
	pid_t pid;

	*port = h_free_port();
	cr_assert_gt(*port, 0);
	pid = h_upstream("up", *port, NULL);
	cr_assert_gt(pid, 0, "ly-upstream did not start: %s", strerror((int)-pid));
	return pid;
}

/* Gone, or a zombie nobody reaped yet: either way no longer running. */
static bool pid_gone(pid_t pid)
{
	char path[64], *s, *p;
	bool gone;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	s = h_read_file(path, NULL);
	if (!s)
		return true;
	p = strrchr(s, ')');
	gone = p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X');
	free(s);
	return gone;
}

static bool path_exists(const char *p)
{
	struct stat st;

	return stat(p, &st) == 0;
}

static void write_random_file(const char *path, size_t size)
{
	char *data = malloc(size + 1);
	size_t i;

	cr_assert(data);
	for (i = 0; i < size; i++)
		data[i] = (char)('a' + (i * 7919) % 26); /* no NUL: h_write_file takes a string */
	data[size] = '\0';
	cr_assert_eq(h_write_file(path, data, 0600), 0);
	free(data);
}

/* --- ly-upstream -------------------------------------------------------------------------- */

Test(upstream, answers_two_urls_on_one_keep_alive_connection)
{
	json_t *a, *b;
	char *out;
	int port;

	start_upstream(&port);
	cr_assert_eq(h_runl(NULL, 10000, &out, CURL, h_strf("http://127.0.0.1:%d/a", port),
			    h_strf("http://127.0.0.1:%d/b?x=1", port), NULL),
		     0, "curl: %s", out);
	cr_expect_str_eq(out, "ok\nok\n");
	free(out);
	a = h_jsonl_find(h_path("up.jsonl"), "target", "/a");
	b = h_jsonl_find(h_path("up.jsonl"), "target", "/b?x=1");
	cr_assert(a && b, "both requests logged");
	cr_expect_eq(json_integer_value(json_object_get(a, "conn")),
		     json_integer_value(json_object_get(b, "conn")), "one connection");
	cr_expect_eq(json_integer_value(json_object_get(b, "req")), 2);
	cr_expect_str_eq(json_string_value(json_object_get(a, "method")), "GET");
	cr_expect_str_eq(json_string_value(json_object_get(a, "version")), "HTTP/1.1");
	cr_expect_str_eq(h_json_header(a, "host"), h_strf("127.0.0.1:%d", port));
	cr_expect_eq(h_json_header_count(a, "user-agent"), 1);
	cr_expect_eq(h_json_header_count(a, "authorization"), 0);
	cr_expect_eq(json_integer_value(json_object_get(a, "body_len")), 0);
	cr_expect_str_eq(json_string_value(json_object_get(a, "local")),
			 h_strf("127.0.0.1:%d", port));
	json_decref(a);
	json_decref(b);
}

Test(upstream, answers_on_ipv6)
{
	json_t *r;
	char *out;
	int port;

	if (!h_have_ipv6())
		cr_skip_test("no IPv6 loopback");
	start_upstream(&port);
	cr_assert_eq(h_runl(NULL, 10000, &out, CURL, h_strf("http://[::1]:%d/six", port), NULL), 0);
	cr_expect_str_eq(out, "ok\n");
	free(out);
	r = h_jsonl_find(h_path("up.jsonl"), "target", "/six");
	cr_assert(r);
	cr_expect_str_eq(json_string_value(json_object_get(r, "local")), h_strf("[::1]:%d", port));
	cr_expect(strncmp(json_string_value(json_object_get(r, "peer")), "[::1]:", 6) == 0);
	json_decref(r);
}

Test(upstream, reads_a_chunked_post_body)
{
	char *file = h_path("body.bin"), *out;
	json_t *r;
	int port;

	start_upstream(&port);
	write_random_file(file, 300000);
	cr_assert_eq(h_runl(NULL, 10000, &out, CURL, "-H", "Transfer-Encoding: chunked",
			    "--data-binary", h_strf("@%s", file),
			    h_strf("http://127.0.0.1:%d/chunked", port), NULL),
		     0, "curl: %s", out);
	cr_expect_str_eq(out, "ok\n");
	free(out);
	r = h_jsonl_find(h_path("up.jsonl"), "target", "/chunked");
	cr_assert(r);
	cr_expect_str_eq(json_string_value(json_object_get(r, "method")), "POST");
	cr_expect_str_eq(h_json_header(r, "Transfer-Encoding"), "chunked");
	cr_expect_eq(h_json_header_count(r, "Content-Length"), 0);
	cr_expect_eq(json_integer_value(json_object_get(r, "body_len")), 300000);
	json_decref(r);
}

Test(upstream, sends_100_continue_before_a_big_body)
{
	char *file = h_path("big.bin"), *out;
	json_t *r;
	int port;

	start_upstream(&port);
	write_random_file(file, 4 << 20);
	cr_assert_eq(h_runl(NULL, 20000, &out, CURL, "-v", "-H", "Expect: 100-continue",
			    "--data-binary", h_strf("@%s", file),
			    h_strf("http://127.0.0.1:%d/expect", port), NULL),
		     0, "curl: %s", out);
	cr_expect(strstr(out, "< HTTP/1.1 100 Continue") != NULL, "no 100 Continue: %s", out);
	cr_expect(strstr(out, "< HTTP/1.1 200 OK") != NULL);
	free(out);
	r = h_jsonl_find(h_path("up.jsonl"), "target", "/expect");
	cr_assert(r);
	cr_expect_str_eq(h_json_header(r, "expect"), "100-continue");
	cr_expect_eq(json_integer_value(json_object_get(r, "body_len")), 4 << 20);
	json_decref(r);
}

Test(upstream, answers_pipelined_requests_in_order)
{
	static const char req[] = "GET /p1 HTTP/1.1\r\nHost: x\r\n\r\n"
				  "POST /p2 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
				  "POST /p3 HTTP/1.1\r\nHost: x\r\n"
				  "Transfer-Encoding: chunked\r\n\r\n"
				  "3\r\nabc\r\n0\r\n\r\n"
				  "HEAD /p4 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
				  "GET /never HTTP/1.1\r\nHost: x\r\n\r\n";
	char *resp;
	int port;

	start_upstream(&port);
	resp = raw_exchange(port, req, sizeof(req) - 1);
	cr_expect_str_eq(
		resp, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n"
		      "Connection: keep-alive\r\n\r\nok\n"
		      "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n"
		      "Connection: keep-alive\r\n\r\nok\n"
		      "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n"
		      "Connection: keep-alive\r\n\r\nok\n"
		      "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n"
		      "Connection: close\r\n\r\n");
	free(resp);
	cr_expect_eq(h_jsonl_count(h_path("up.jsonl"), "conn", "1"), 4);
	cr_expect_eq(h_jsonl_count(h_path("up.jsonl"), "body_len", "5"), 1);
	cr_expect_eq(h_jsonl_count(h_path("up.jsonl"), "body_len", "3"), 1);
	cr_expect_eq(h_jsonl_count(h_path("up.jsonl"), "target", "/never"), 0);
}

Test(upstream, raw_file_stays_empty_without_traffic)
{
	int port;

	start_upstream(&port);
	cr_expect_eq(h_file_size(h_path("up.raw")), 0);
	cr_expect_eq(h_file_size(h_path("no-such-file")), 0);
	cr_expect_eq(h_jsonl_count(h_path("up.jsonl"), NULL, NULL), 0);
}

Test(upstream, logs_odd_header_bytes_as_valid_json)
{
	static const char req[] = "GET /odd HTTP/1.1\r\nX-Odd: a\x01\xff\"\\b\t\r\n\r\n";
	char *resp;
	json_t *r;
	int port;

	start_upstream(&port);
	resp = raw_exchange(port, req, sizeof(req) - 1);
	free(resp);
	r = h_jsonl_wait(h_path("up.jsonl"), "target", "/odd", 2000);
	cr_assert(r);
	/* \u00ff comes back as U+00FF in UTF-8; trailing whitespace is trimmed (RFC 9110 5.5) */
	cr_expect_str_eq(h_json_header(r, "x-odd"), "a\x01\xc3\xbf\"\\b");
	json_decref(r);
	cr_expect(h_file_contains(h_path("up.jsonl"), "a\\u0001\\u00ff\\\"\\\\b\""));
}

Test(upstream, raw_file_has_every_byte_received)
{
	static const char req[] = "GET /raw HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
	size_t len;
	char *resp, *raw;
	int port;

	start_upstream(&port);
	resp = raw_exchange(port, req, sizeof(req) - 1);
	free(resp);
	raw = h_read_file(h_path("up.raw"), &len);
	cr_assert(raw);
	cr_expect_eq(len, sizeof(req) - 1);
	cr_expect_str_eq(raw, req);
	free(raw);
}

Test(upstream, survives_garbage_and_keeps_serving)
{
	static const struct {
		const char *data;
		size_t len;
	} bad[] = {
#define BAD(s) { s, sizeof(s) - 1 }
		BAD("garbage\r\n\r\n"),
		BAD("\x00\x01\x02\r\n\r\n"),
		BAD("GET / HTTP/1.1\r\n folded\r\n\r\n"),
		BAD("POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
		BAD("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
		BAD("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n"),
		BAD("GET / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n"),
#undef BAD
	};
	char *resp, *out, big[80000];
	size_t i;
	int port;
	pid_t pid = start_upstream(&port);

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		resp = raw_exchange(port, bad[i].data, bad[i].len);
		cr_expect(!strncmp(resp, "HTTP/1.1 400 ", 13), "case %zu: %s", i, resp);
		free(resp);
	}
	memset(big, 'a', sizeof(big));
	memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
	resp = raw_exchange(port, big, sizeof(big));
	cr_expect(!strncmp(resp, "HTTP/1.1 431 ", 13), "%s", resp);
	free(resp);
	cr_expect(h_alive(pid));
	cr_expect_eq(h_runl(NULL, 10000, &out, CURL, h_strf("http://127.0.0.1:%d/", port), NULL),
		     0);
	cr_expect_str_eq(out, "ok\n");
	free(out);
}

Test(upstream, answers_with_the_given_body_and_exits_0_on_sigterm)
{
	char *out;
	int port = h_free_port();
	pid_t pid = h_upstream("custom", port, "hello there\n");

	cr_assert_gt(pid, 0);
	cr_assert_eq(h_runl(NULL, 10000, &out, CURL, "-i", h_strf("http://127.0.0.1:%d/", port),
			    NULL),
		     0);
	cr_expect(strstr(out, "Content-Length: 12\r\n") != NULL, "%s", out);
	cr_expect(strstr(out, "\r\n\r\nhello there\n") != NULL, "%s", out);
	free(out);
	cr_expect_eq(h_stop(pid), 0);
}

/* --- ly-cgexec ---------------------------------------------------------------------------- */

Test(cgexec, runs_the_command_inside_the_cgroup)
{
	char *cg = h_strf("%s/viaexec", h_cgroup_root()), *out;

	cr_assert_eq(h_cgroup_create("anchor") != NULL, 1); /* our root exists and is ours */
	cr_assert_eq(h_runl(NULL, 5000, &out, h_bin("ly-cgexec"), "--create", cg, "--", "cat",
			    "/proc/self/cgroup", NULL),
		     0, "%s", out);
	cr_expect(strstr(out, h_strf("0::%s\n", cg)) != NULL, "%s", out);
	free(out);
	/* created outside the harness: register it so that teardown removes it */
	cr_assert_str_eq(h_cgroup_create("viaexec"), cg);
}

Test(cgexec, accepts_a_path_below_the_mount)
{
	char *cg = h_cgroup_create("full"), *out;

	cr_assert(cg);
	cr_assert_eq(h_runl(NULL, 5000, &out, h_bin("ly-cgexec"), h_cgroup_fs(cg), "--", "cat",
			    "/proc/self/cgroup", NULL),
		     0, "%s", out);
	cr_expect(strstr(out, h_strf("0::%s\n", cg)) != NULL, "%s", out);
	free(out);
}

Test(cgexec, reports_errors_with_distinct_exit_codes)
{
	char *cg = h_cgroup_create("err"), *out;
	const char *bin = h_bin("ly-cgexec");

	cr_assert(cg);
	cr_expect_eq(h_runl(NULL, 5000, &out, bin, cg, "--", "/nonexistent/cmd", NULL), 127);
	cr_expect(strstr(out, "No such file") != NULL, "%s", out);
	free(out);
	cr_expect_eq(h_runl(NULL, 5000, &out, bin, h_strf("%s/missing", cg), "--", "true", NULL),
		     1);
	cr_expect(strstr(out, "--create") != NULL, "%s", out);
	free(out);
	cr_expect_eq(h_runl(NULL, 5000, &out, bin, "relative", "--", "true", NULL), 2);
	free(out);
	cr_expect_eq(h_runl(NULL, 5000, &out, bin, "/a/../b", "--", "true", NULL), 2);
	free(out);
	cr_expect_eq(h_runl(NULL, 5000, &out, bin, cg, "true", NULL), 2);
	free(out);
}

/* --- harness ------------------------------------------------------------------------------ */

Test(harness, spawned_process_is_in_its_cgroup)
{
	char *cg = h_cgroup_create("app/inner"), *out;
	pid_t pid;

	cr_assert(cg);
	cr_expect_str_eq(cg, h_strf("%s/app/inner", h_cgroup_root()));
	pid = h_spawnl("sleeper", cg, "sleep", "30", NULL);
	cr_assert_gt(pid, 0);
	cr_expect_str_eq(h_pid_cgroup(pid), cg);
	cr_expect_neq(h_cgroup_id(cg), 0);
	cr_expect_neq(h_cgroup_id(cg), h_cgroup_id("app"));
	/* the short form names the same cgroup */
	cr_expect_str_eq(h_cgroup_fs("app/inner"), h_cgroup_fs(cg));
	cr_assert_eq(h_runl("app", 5000, &out, "cat", "/proc/self/cgroup", NULL), 0);
	cr_expect(strstr(out, h_strf("0::%s/app\n", h_cgroup_root())) != NULL, "%s", out);
	free(out);
	cr_expect_str_neq(h_pid_cgroup(getpid()), cg);
}

Test(harness, spawn_resets_signals_and_captures_output)
{
	pid_t pid;

	/* Criterion's test child ignores SIGINT: a spawned shell must still die of it */
	pid = h_spawnl("sh", NULL, "sh", "-c", "echo to-out; echo to-err >&2; exec sleep 30",
		       NULL);
	cr_assert_gt(pid, 0);
	cr_assert_eq(h_wait_output(pid, "to-err", 5000), 0);
	cr_expect(h_file_contains(h_out_path("sh"), "to-out\n"));
	cr_expect(!h_file_contains(h_out_path("sh"), "to-err"));
	cr_expect(h_alive(pid));
	kill(pid, SIGINT);
	cr_expect_eq(h_wait_exit(pid, 5000), 128 + SIGINT);
	cr_expect(!h_alive(pid));
	cr_expect_eq(h_spawnl("nope", NULL, "/nonexistent/binary", NULL), -ENOENT);
	pid = h_spawnl("quitter", NULL, "sh", "-c", "echo bye >&2; exit 3", NULL);
	cr_expect_eq(h_wait_output(pid, "never printed", 5000), -ESRCH);
	cr_expect_eq(h_wait_exit(pid, 1000), 3);
}

Test(harness, stop_escalates_to_sigkill)
{
	pid_t pid = h_spawnl("stubborn", NULL, "sh", "-c", "trap '' TERM; echo ready; "
				   "while :; do sleep 0.1; done", NULL);

	cr_assert_gt(pid, 0);
	cr_assert_eq(h_wait_output(pid, "ready", 5000), 0);
	cr_expect_eq(h_stop(pid), 128 + SIGKILL);
	cr_expect_eq(h_stop(pid), 128 + SIGKILL, "a second stop reports the same status");
}

Test(harness, run_reports_status_output_and_timeouts)
{
	char *out;
	int rc;

	cr_expect_eq(h_runl(NULL, 5000, &out, "sh", "-c", "echo one; echo two >&2; exit 7", NULL),
		     7);
	cr_expect_str_eq(out, "one\ntwo\n");
	free(out);
	cr_expect_eq(h_runl(NULL, 5000, &out, "sh", "-c", "kill -USR1 $$", NULL), 128 + SIGUSR1);
	free(out);
	cr_expect_eq(h_runl(NULL, 5000, &out, "/nonexistent/binary", NULL), -ENOENT);
	free(out);
	rc = h_runl(NULL, 300, &out, "sh", "-c", "echo started; exec sleep 30", NULL);
	cr_expect_eq(rc, -ETIMEDOUT);
	cr_expect_str_eq(out, "started\n");
	free(out);
	cr_expect_eq(h_runl(NULL, 5000, NULL, "true", NULL), 0, "output may be ignored");
	cr_expect(h_file_contains(h_path("run-001-sh.out"), "one\n"), "output kept in tmpdir");
}

Test(harness, grep_tree_counts_files_with_the_needle)
{
	const char *secret = "eyJ-not-a-real-token.s3cr3t";

	cr_assert_eq(mkdir(h_path("sub"), 0700), 0);
	cr_assert_eq(h_write_filef(h_path("a.log"), 0600, "x %s y\n", secret), 0);
	cr_assert_eq(h_write_filef(h_path("sub/b.log"), 0600, "prefix%s", secret), 0);
	cr_assert_eq(h_write_file(h_path("sub/c.log"), "eyJ-not-a-real-token.s3cr3", 0600), 0);
	cr_assert_eq(symlink(h_path("a.log"), h_path("sub/link")), 0);
	cr_expect_eq(h_grep_tree_for(secret, h_tmpdir(), NULL), 2);
	cr_expect_eq(h_grep_tree_for(secret, h_path("sub/c.log"), h_path("a.log"), NULL), 1);
	cr_expect_eq(h_grep_tree_for("absent-needle", h_tmpdir(), NULL), 0);
	cr_expect_eq(h_grep_tree_for(secret, h_path("missing"), NULL), -ENOENT);
	cr_expect_eq(h_grep_tree_for("", h_tmpdir(), NULL), -EINVAL);
}

Test(harness, jsonl_helpers_match_strings_numbers_and_paths)
{
	const char *p = h_path("audit.jsonl");
	json_t *o;

	cr_assert_eq(h_write_file(p,
				  "{\"event\":\"flow.open\",\"flow\":{\"id\":7},\"pid\":42}\n"
				  "not json\n"
				  "[1,2]\n"
				  "{\"event\":\"credential.issue\",\"jti\":\"a\",\"ok\":true}\n"
				  "{\"event\":\"credential.issue\",\"jti\":\"b\",\"ok\":false}\n"
				  "{\"event\":\"flow.close\",\"flow\":{\"id\":7}",
				  0600),
		     0);
	cr_expect_eq(h_jsonl_count(p, NULL, NULL), 3 + 0, "objects on complete lines");
	cr_expect_eq(h_jsonl_count(p, "event", "credential.issue"), 2);
	cr_expect_eq(h_jsonl_count(p, "flow.id", "7"), 1, "unterminated last line ignored");
	cr_expect_eq(h_jsonl_count(p, "pid", "42"), 1);
	cr_expect_eq(h_jsonl_count(p, "ok", "true"), 1);
	cr_expect_eq(h_jsonl_count(p, "jti", NULL), 2);
	cr_expect_eq(h_jsonl_count(h_path("missing.jsonl"), NULL, NULL), 0);
	o = h_jsonl_find(p, "event", "credential.issue");
	cr_assert(o);
	cr_expect_str_eq(json_string_value(json_object_get(o, "jti")), "a");
	json_decref(o);
	o = h_jsonl_last(p, "event", "credential.issue");
	cr_assert(o);
	cr_expect_str_eq(json_string_value(json_object_get(o, "jti")), "b");
	json_decref(o);
	cr_expect_null(h_jsonl_find(p, "event", "flow.close"));
	cr_expect_null(h_jsonl_wait(p, "event", "never", 50));
}

Test(harness, waits_succeed_and_time_out)
{
	const char *f = h_path("later.txt");
	int port = h_free_port(), other = h_free_port();
	pid_t pid;

	cr_expect_neq(port, other);
	cr_expect_eq(h_wait_port("127.0.0.1", port, 50), -ETIMEDOUT);
	cr_expect_eq(h_wait_file_contains(f, "x", 50), -ETIMEDOUT);
	pid = h_spawnl("writer", NULL, "sh", "-c", h_strf("sleep 0.2; echo done > %s", f), NULL);
	cr_assert_gt(pid, 0);
	cr_expect_eq(h_wait_file_contains(f, "done", 5000), 0);
	cr_assert_gt(h_upstream("up", port, NULL), 0);
	cr_expect_eq(h_wait_port("127.0.0.1", port, 1000), 0);
	if (h_have_ipv6())
		cr_expect_eq(h_wait_port("[::1]", port, 1000), 0);
	cr_expect_eq(h_wait_port("not-an-address", port, 1000), -EINVAL);
}

Test(harness, bin_and_repo_paths_point_into_the_tree)
{
	cr_expect(path_exists(h_bin("ly-upstream")), "%s", h_bin("ly-upstream"));
	cr_expect(path_exists(h_repo_path("tests/lib/harness.h")), "%s",
		  h_repo_path("tests/lib/harness.h"));
	cr_expect(strncmp(h_tmpdir(), "/tmp/lanyard-test.", 18) == 0);
}

Test(harness, require_root_bpf_passes_on_this_host)
{
	h_require_root_bpf();
	cr_expect_eq(geteuid(), 0);
}

Test(harness, teardown_kills_processes_and_removes_cgroups)
{
	char *cg = h_cgroup_create("td/deep"), *fs_deep, *fs_root, *tmp;
	pid_t a, b, c;

	cr_assert(cg);
	fs_deep = strdup(h_cgroup_fs(cg));
	fs_root = strdup(h_cgroup_fs(h_cgroup_root()));
	tmp = strdup(h_tmpdir());
	a = h_spawnl("in-cgroup", cg, "sleep", "100", NULL);
	b = h_spawnl("stubborn", NULL, "sh", "-c", "trap '' TERM; echo ready; "
			   "while :; do sleep 0.1; done", NULL);
	c = h_spawnl("forker", NULL, "sh", "-c", "sleep 100 & echo child $!; wait", NULL);
	cr_assert(a > 0 && b > 0 && c > 0);
	cr_assert_eq(h_wait_output(b, "ready", 5000), 0);
	cr_assert_eq(h_wait_output(c, "child", 5000), 0);
	h_teardown();
	cr_expect(pid_gone(a) && pid_gone(b) && pid_gone(c));
	cr_expect(!path_exists(fs_deep), "%s left behind", fs_deep);
	cr_expect(!path_exists(fs_root), "%s left behind", fs_root);
	cr_expect(!path_exists(tmp), "%s left behind", tmp);
	free(fs_deep);
	free(fs_root);
	free(tmp);
}

/*
 * The janitor: a copy of this binary (see victim_mode below) sets up, spawns, records
 * what it made, and SIGKILLs itself -- no .fini, no atexit.  Its janitor must clean up.
 */
Test(harness, janitor_cleans_up_after_a_killed_test)
{
	char *rec = h_path("victim.txt"), *out, *s, cgfs[4096], tmp[4096], exe[4096];
	int pa = 0, pb = 0, delay_ms = 0;
	bool clean = false;

	cr_assert(realpath("/proc/self/exe", exe));
	cr_assert_eq(h_runl(NULL, 20000, &out, "env", h_strf("H_VICTIM_FILE=%s", rec), exe, NULL),
		     128 + SIGKILL, "victim: %s", out);
	free(out);
	s = h_read_file(rec, NULL);
	cr_assert(s);
	cr_assert_eq(sscanf(s, "%d %d %4095s %4095s", &pa, &pb, cgfs, tmp), 4, "%s", s);
	free(s);
	while (!clean && delay_ms < 10000) {
		clean = pid_gone(pa) && pid_gone(pb) && !path_exists(cgfs) && !path_exists(tmp);
		usleep(50000);
		delay_ms += 50;
	}
	cr_expect(pid_gone(pa), "spawned pid %d still running", pa);
	cr_expect(pid_gone(pb), "spawned pid %d still running", pb);
	cr_expect(!path_exists(cgfs), "%s left behind", cgfs);
	cr_expect(!path_exists(tmp), "%s left behind", tmp);
}

/* Runs before Criterion's main when H_VICTIM_FILE is set: the janitor test's victim. */
static void __attribute__((constructor)) victim_mode(void)
{
	const char *rec = getenv("H_VICTIM_FILE");
	char *cg;
	pid_t a, b;

	if (!rec)
		return;
	unsetenv("H_VICTIM_FILE");
	h_setup();
	cg = h_cgroup_create("victim/app");
	a = h_spawnl("in-cgroup", cg, "sleep", "100", NULL);
	b = h_spawnl("stubborn", NULL, "sh", "-c",
		     "trap '' TERM; echo ready; while :; do sleep 0.1; done", NULL);
	h_wait_output(b, "ready", 5000); /* so that the janitor has to use SIGKILL */
	h_write_filef(rec, 0644, "%d %d %s %s\n", (int)a, (int)b, h_cgroup_fs(h_cgroup_root()),
		      h_tmpdir());
	raise(SIGKILL);
}
