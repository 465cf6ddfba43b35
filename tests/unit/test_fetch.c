// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Copyright (c) 2026 The lanyard authors */
/*
 * Unit tests for fetch.c and the exec and static sources: the credential check,
 * token endpoint and helper answers (read from guard-page buffers), static files
 * and systemd credentials, helper processes (status, stderr, timeout and kill,
 * environment, capabilities), and the worker pool on a real event loop.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/lsan_interface.h>
#endif

#include "fetch.h"
#include "loop.h"
#include "policy.h"
#include "secret.h"
#include "lib/guard.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define T0 1700000000

static char tmpdir[64];

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void setup_dir(void)
{
	strcpy(tmpdir, "/tmp/ly-test-fetch-XXXXXX");
	cr_assert_not_null(mkdtemp(tmpdir));
}

static void teardown_dir(void)
{
	nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/*
 * Criterion ends a test's process without the exit-time leak check: run it here
 * (tests/run.sh sets the suppressions for third-party libraries).
 */
static void expect_no_leak(void)
{
#ifdef __SANITIZE_ADDRESS__
	cr_expect_eq(__lsan_do_recoverable_leak_check(), 0, "LeakSanitizer found leaks (stderr)");
#endif
}

static void expect_token(const struct secret *t, const char *want)
{
	cr_assert_not_null(t, "no token");
	cr_expect_eq(t->len, strlen(want), "token length %zu, want %zu", t->len, strlen(want));
	cr_expect(t->len == strlen(want) && !memcmp(t->buf, want, t->len), "token bytes differ");
	cr_expect_eq(t->buf[t->len], '\0', "token not NUL-terminated");
}

/* --- fetch_token_check ------------------------------------------------------------- */

TestSuite(token_check);

/* s is copied to end at a guard page: a read past len faults */
static const char *check(const char *s, size_t len)
{
	char *g = guard_copy(s, len);
	const char *why;

	cr_assert(g || !len);
	why = fetch_token_check(g, len);
	guard_free(g, len);
	return why;
}

Test(token_check, accepts_visible_ascii_and_inner_spaces)
{
	static const char *const ok[] = {
		"a", "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln", "key with inner  spaces",
		"!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", "~",
	};

	for (size_t i = 0; i < ARRAY_SIZE(ok); i++)
		cr_expect_null(check(ok[i], strlen(ok[i])), "refused: \"%s\"", ok[i]);
}

Test(token_check, refuses_empty_edge_spaces_controls_del_and_non_ascii)
{
	static const struct {
		const char *s;
		size_t len;
		const char *why;
	} bad[] = {
		{ "", 0, "the credential is empty" },
		{ " abc", 4, "starts or ends with a space" },
		{ "abc ", 4, "starts or ends with a space" },
		{ " ", 1, "starts or ends with a space" },
		{ "ab\rc", 4, "control or non-ASCII" },
		{ "ab\nc", 4, "control or non-ASCII" },
		{ "abc\r\n", 5, "control or non-ASCII" },
		{ "ab\0cd", 5, "control or non-ASCII" },
		{ "\0", 1, "control or non-ASCII" },
		{ "ab\tc", 4, "control or non-ASCII" },
		{ "ab\x7f" "c", 4, "control or non-ASCII" },
		{ "ab\x80" "c", 4, "control or non-ASCII" },
		{ "caf\xc3\xa9", 5, "control or non-ASCII" },
		{ "\xff", 1, "control or non-ASCII" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		const char *why = check(bad[i].s, bad[i].len);

		cr_expect_not_null(why, "case %zu accepted", i);
		cr_expect(why && strstr(why, bad[i].why), "case %zu: want \"%s\", got \"%s\"", i,
			  bad[i].why, why ? why : "(null)");
	}
}

Test(token_check, takes_8192_bytes_and_refuses_8193)
{
	char *s = malloc(FETCH_MAX_TOKEN + 1);
	const char *why;

	cr_assert_not_null(s);
	memset(s, 'x', FETCH_MAX_TOKEN + 1);
	cr_expect_null(check(s, FETCH_MAX_TOKEN));
	why = check(s, FETCH_MAX_TOKEN + 1);
	cr_expect(why && strstr(why, "longer than 8192 bytes"), "got %s", why ? why : "(null)");
	/* the limit is checked before the bytes: a long bad value says it is long */
	s[100] = '\n';
	why = check(s, FETCH_MAX_TOKEN + 1);
	cr_expect(why && strstr(why, "longer than 8192"), "got %s", why ? why : "(null)");
	why = check(s, FETCH_MAX_TOKEN);
	cr_expect(why && strstr(why, "control"), "got %s", why ? why : "(null)");
	free(s);
}

/* --- fetch_parse_token_response ------------------------------------------------------ */

TestSuite(token_response);

struct tr_result {
	int err;
	struct secret *token;
	int64_t exp;
	char why[FETCH_WHY_LEN];
};

static void parse_tr(long status, const char *body, struct tr_result *r)
{
	size_t len = strlen(body);
	char *g = guard_copy(body, len);

	cr_assert(g || !len);
	memset(r, 0, sizeof(*r));
	r->exp = -1;
	r->token = (struct secret *)1;	/* must be reset to NULL on failure */
	r->err = fetch_parse_token_response(status, g, len, T0, &r->token, &r->exp, r->why,
					    sizeof(r->why));
	guard_free(g, len);
}

/* failed with -EPROTO, no token, no expiry, why contains want and none of the hidden */
static void expect_tr_refused(long status, const char *body, const char *want,
			      const char *hidden)
{
	struct tr_result r;

	parse_tr(status, body, &r);
	cr_expect_eq(r.err, -EPROTO, "%ld %s: err %d", status, body, r.err);
	cr_expect_null(r.token, "%ld %s: a token on failure", status, body);
	if (r.token && r.token != (struct secret *)1)
		secret_free(r.token);
	cr_expect_eq(r.exp, 0, "%ld %s: expires_at %lld", status, body, (long long)r.exp);
	cr_expect(strstr(r.why, want), "%ld %s: want \"%s\" in \"%s\"", status, body, want, r.why);
	if (hidden)
		cr_expect_null(strstr(r.why, hidden), "\"%s\" leaked into why: %s", hidden, r.why);
}

Test(token_response, takes_the_token_and_turns_expires_in_into_a_time)
{
	struct tr_result r;

	parse_tr(200, "{\"access_token\":\"tok.EN-1 x~\",\"token_type\":\"Bearer\","
		 "\"expires_in\":3600,\"scope\":\"read\"}", &r);
	cr_assert_eq(r.err, 0, "%s", r.why);
	expect_token(r.token, "tok.EN-1 x~");
	cr_expect_eq(r.exp, T0 + 3600);
	secret_free(r.token);

	/* RFC 6749 5.1: expires_in is RECOMMENDED, not required */
	parse_tr(200, "{\"access_token\":\"abc\",\"token_type\":\"Bearer\"}", &r);
	cr_assert_eq(r.err, 0, "%s", r.why);
	expect_token(r.token, "abc");
	cr_expect_eq(r.exp, 0, "no expires_in: 0");
	secret_free(r.token);

	/* any 2xx; the longest lifetime taken is 30 days */
	parse_tr(201, "{\"expires_in\":2592000,\"access_token\":\"abc\"}", &r);
	cr_assert_eq(r.err, 0, "%s", r.why);
	cr_expect_eq(r.exp, T0 + 2592000);
	secret_free(r.token);
}

Test(token_response, refuses_bad_expires_in)
{
	static const char *const bodies[] = {
		"{\"access_token\":\"abc\",\"expires_in\":0}",
		"{\"access_token\":\"abc\",\"expires_in\":-60}",
		"{\"access_token\":\"abc\",\"expires_in\":\"3600\"}",
		"{\"access_token\":\"abc\",\"expires_in\":3600.5}",
		"{\"access_token\":\"abc\",\"expires_in\":1e3}",
		"{\"access_token\":\"abc\",\"expires_in\":null}",
		"{\"access_token\":\"abc\",\"expires_in\":true}",
		"{\"access_token\":\"abc\",\"expires_in\":2592001}",
		"{\"access_token\":\"abc\",\"expires_in\":9223372036854775807}",
	};

	for (size_t i = 0; i < ARRAY_SIZE(bodies); i++)
		expect_tr_refused(200, bodies[i], "expires_in", NULL);
}

Test(token_response, refuses_a_missing_or_bad_access_token_without_quoting_it)
{
	expect_tr_refused(200, "{\"token_type\":\"Bearer\",\"expires_in\":60}",
			  "no \"access_token\" string", NULL);
	expect_tr_refused(200, "{\"access_token\":42}", "no \"access_token\" string", NULL);
	expect_tr_refused(200, "{\"access_token\":null}", "no \"access_token\" string", NULL);
	expect_tr_refused(200, "{\"access_token\":[\"abc\"]}", "no \"access_token\" string",
			  NULL);
	expect_tr_refused(200, "{\"access_token\":\"SECRETTOKEN\\r\\nX-Injected: 1\"}",
			  "\"access_token\" refused: the credential holds a control",
			  "SECRETTOKEN");
	expect_tr_refused(200, "{\"access_token\":\"SECRETTOKEN\\r\\nX-Injected: 1\"}",
			  "refused", "Injected");
	expect_tr_refused(200, "{\"access_token\":\"\"}", "the credential is empty", NULL);
	expect_tr_refused(200, "{\"access_token\":\" SECRETTOKEN\"}", "space", "SECRETTOKEN");
	expect_tr_refused(200, "{\"access_token\":\"SECRET\\u00e9TOKEN\"}", "non-ASCII",
			  "SECRET");
	/* jansson refuses \u0000 unless asked to allow it: not JSON at all */
	expect_tr_refused(200, "{\"access_token\":\"SECRET\\u0000TOKEN\"}", "not a JSON object",
			  "SECRET");
}

Test(token_response, refuses_duplicate_keys_and_non_objects)
{
	/* which of two tokens would be used is up to the parser: neither */
	expect_tr_refused(200, "{\"access_token\":\"aaa\",\"access_token\":\"bbb\"}",
			  "not a JSON object", "aaa");
	expect_tr_refused(200, "{\"access_token\":\"aaa\",\"expires_in\":60,\"expires_in\":1}",
			  "not a JSON object", NULL);
	expect_tr_refused(200, "<html>SECRET-PAGE</html>",
			  "token endpoint answered 200 with a body that is not a JSON object",
			  "SECRET-PAGE");
	expect_tr_refused(200, "", "not a JSON object", NULL);
	expect_tr_refused(200, "[\"abc\"]", "not a JSON object", NULL);
	expect_tr_refused(200, "\"abc\"", "not a JSON object", NULL);
	expect_tr_refused(200, "{\"access_token\":\"abc\"} trailing", "not a JSON object", NULL);
	expect_tr_refused(200, "{\"access_token\":\"abc\"", "not a JSON object", NULL);
}

Test(token_response, an_error_answer_gives_its_code_never_its_description)
{
	struct tr_result r;

	parse_tr(400, "{\"error\":\"invalid_client\",\"error_description\":\"SECRET-LOOKING\","
		 "\"error_uri\":\"https://idp/SECRET-URI\"}", &r);
	cr_expect_eq(r.err, -EPROTO);
	cr_expect_null(r.token);
	cr_expect_str_eq(r.why, "token endpoint answered 400: invalid_client");

	parse_tr(401, "{\"error\":\"unauthorized_client\"}", &r);
	cr_expect_str_eq(r.why, "token endpoint answered 401: unauthorized_client");

	/* a token in a non-2xx answer is never taken */
	parse_tr(403, "{\"access_token\":\"abc\",\"expires_in\":60}", &r);
	cr_expect_eq(r.err, -EPROTO);
	cr_expect_null(r.token);
	cr_expect_eq(r.exp, 0);
	cr_expect_str_eq(r.why, "token endpoint answered 403");
}

Test(token_response, an_error_code_with_odd_characters_is_left_out)
{
	static const char *const bodies[] = {
		"{\"error\":\"invalid client SECRET\"}",
		"{\"error\":\"invalid_client\\r\\nSECRET\"}",
		"{\"error\":\"Invalid_Client\"}",
		"{\"error\":\"invalid-client\"}",
		"{\"error\":\"\"}",
		"{\"error\":42}",
		"{\"error\":[\"invalid_client\"]}",
		"{\"error\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
		"{\"error\":\"invalid_client\",\"error\":\"x\"}",
		"[\"invalid_client\"]",
	};
	struct tr_result r;

	for (size_t i = 0; i < ARRAY_SIZE(bodies); i++) {
		parse_tr(400, bodies[i], &r);
		cr_expect_eq(r.err, -EPROTO);
		cr_expect_str_eq(r.why, "token endpoint answered 400", "%s", bodies[i]);
	}
	/* 64 characters is the longest code kept */
#define CODE64 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	parse_tr(400, "{\"error\":\"" CODE64 "\"}", &r);
	cr_expect_str_eq(r.why, "token endpoint answered 400: " CODE64);
#undef CODE64
}

Test(token_response, a_server_error_with_a_page_is_named_by_status)
{
	struct tr_result r;

	parse_tr(500, "<html><body>Internal Server Error SECRET</body></html>", &r);
	cr_expect_eq(r.err, -EPROTO);
	cr_expect_null(r.token);
	cr_expect_str_eq(r.why, "token endpoint answered 500");
	parse_tr(302, "", &r);
	cr_expect_str_eq(r.why, "token endpoint answered 302");
	parse_tr(0, "", &r);
	cr_expect_str_eq(r.why, "token endpoint answered 0");
}

Test(token_response, a_short_why_buffer_is_truncated_not_overrun)
{
	char why[8 + 1];
	struct secret *t = NULL;
	int64_t exp = 0;

	memset(why, 'Z', sizeof(why));
	cr_expect_eq(fetch_parse_token_response(400, "{\"error\":\"invalid_client\"}", 26, T0,
						&t, &exp, why, 8), -EPROTO);
	cr_expect_eq(why[7], '\0');
	cr_expect_eq(why[8], 'Z', "wrote past wl");
	cr_expect_str_eq(why, "token e");
}

/* --- fetch_parse_exec_output ----------------------------------------------------------- */

TestSuite(exec_output);

static void parse_eo(const char *out, struct tr_result *r)
{
	size_t len = strlen(out);
	char *g = guard_copy(out, len);

	cr_assert(g || !len);
	memset(r, 0, sizeof(*r));
	r->exp = -1;
	r->token = (struct secret *)1;
	r->err = fetch_parse_exec_output(g, len, &r->token, &r->exp, r->why, sizeof(r->why));
	guard_free(g, len);
}

static void expect_eo_refused(const char *out, const char *want, const char *hidden)
{
	struct tr_result r;

	parse_eo(out, &r);
	cr_expect_eq(r.err, -EPROTO, "%s: err %d", out, r.err);
	cr_expect_null(r.token, "%s: a token on failure", out);
	if (r.token && r.token != (struct secret *)1)
		secret_free(r.token);
	cr_expect_eq(r.exp, 0, "%s: expires_at %lld", out, (long long)r.exp);
	cr_expect(strstr(r.why, want), "%s: want \"%s\" in \"%s\"", out, want, r.why);
	if (hidden)
		cr_expect_null(strstr(r.why, hidden), "\"%s\" leaked into why: %s", hidden, r.why);
}

/* 2030-01-02T03:04:05Z */
#define T2030 1893553445

Test(exec_output, takes_unix_seconds_and_rfc3339_times)
{
	static const struct {
		const char *out;
		int64_t exp;
	} ok[] = {
		{ "{\"token\":\"s.abc\",\"expires_at\":1893553445}", T2030 },
		{ "{\"token\":\"s.abc\",\"expires_at\":\"2030-01-02T03:04:05Z\"}", T2030 },
		{ "{\"token\":\"s.abc\",\"expires_at\":\"2030-01-02T03:04:05z\"}", T2030 },
		{ "{\"token\":\"s.abc\",\"expires_at\":\"2030-01-02T03:04:05+02:00\"}",
		  T2030 - 7200 },
		{ "{\"token\":\"s.abc\",\"expires_at\":\"2030-01-02T03:04:05-05:30\"}",
		  T2030 + 19800 },
		{ "{\"token\":\"s.abc\",\"expires_at\":\"2030-01-02T03:04:05+00:00\"}", T2030 },
		{ "{\"token\":\"s.abc\",\"expires_at\":\"2030-01-02T03:04:05.123456789Z\"}",
		  T2030 },
		{ "{\"token\":\"s.abc\",\"expires_at\":\"2030-01-02T03:04:05.5+01:00\"}",
		  T2030 - 3600 },
		{ "{\"expires_at\":\"2030-01-02T03:04:05Z\",\"token\":\"s.abc\",\"other\":[1]}",
		  T2030 },
		{ "\n  {\"token\": \"s.abc\"}\n", 0 },
		{ "{\"token\":\"s.abc\",\"expires_at\":null}", 0 },
	};
	struct tr_result r;

	for (size_t i = 0; i < ARRAY_SIZE(ok); i++) {
		parse_eo(ok[i].out, &r);
		cr_expect_eq(r.err, 0, "%s: %s", ok[i].out, r.why);
		if (r.err)
			continue;
		expect_token(r.token, "s.abc");
		cr_expect_eq(r.exp, ok[i].exp, "%s: got %lld", ok[i].out, (long long)r.exp);
		secret_free(r.token);
	}
}

Test(exec_output, refuses_times_that_are_not_unix_seconds_or_rfc3339)
{
	static const char *const bad[] = {
		"0", "-1", "1893553445.5", "1.9e9", "true", "[]", "{}",
		"\"1893553445\"", "\"tomorrow\"", "\"\"",
		"\"2030-01-02T03:04:05\"",		/* no zone */
		"\"2030-01-02 03:04:05Z\"",
		"\"2030-01-02T03:04:05+0200\"",
		"\"2030-01-02T03:04:05+02\"",
		"\"2030-01-02T03:04:05Z junk\"",
		"\"2030-01-02T03:04:05ZZ\"",
		"\"2030-13-02T03:04:05Z\"",
		"\"2030-01-02T25:04:05Z\"",
		"\"2030-01-02\"",
		"\"1969-12-31T23:59:59Z\"",
		"\"1970-01-01T00:00:00Z\"",
	};
	char out[256];

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		snprintf(out, sizeof(out), "{\"token\":\"SECRETTOKEN\",\"expires_at\":%s}", bad[i]);
		expect_eo_refused(out, "expires_at is neither unix seconds nor an RFC 3339 time",
				  "SECRETTOKEN");
	}
}

/*
 * Near misses that a lenient parser (strptime, sscanf's %2d, timegm's normalising) would
 * turn into some expiry: an offset minute of 99, "+-1:00", "+ 2:00", a dot without
 * digits, February 30, a leading space, one-digit fields.  None is an RFC 3339
 * date-time (5.6, 5.7).
 */
Test(exec_output, refuses_near_miss_rfc3339_times)
{
	static const char *const bad[] = {
		"2030-01-02T03:04:05+02:99",
		"2030-01-02T03:04:05+-1:00",
		"2030-01-02T03:04:05+ 2:00",
		"2030-01-02T03:04:05.Z",
		"2030-02-30T03:04:05Z",
		" 2030-01-02T03:04:05Z",
		"2030-1-2T3:4:5Z",
	};
	char out[256];

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		snprintf(out, sizeof(out), "{\"token\":\"abc\",\"expires_at\":\"%s\"}", bad[i]);
		expect_eo_refused(out, "expires_at is neither unix seconds nor an RFC 3339 time",
				  NULL);
	}
}

Test(exec_output, refuses_junk_and_bad_tokens_without_quoting_them)
{
	expect_eo_refused("JUNK-OUTPUT-SECRET", "helper output is not a JSON object",
			  "JUNK");
	expect_eo_refused("", "not a JSON object", NULL);
	expect_eo_refused("token=abc", "not a JSON object", "abc");
	expect_eo_refused("[\"abc\"]", "not a JSON object", NULL);
	expect_eo_refused("{\"token\":\"abc\"}{\"token\":\"def\"}", "not a JSON object", NULL);
	expect_eo_refused("{\"token\":\"aaa\",\"token\":\"bbb\"}", "not a JSON object", "aaa");
	expect_eo_refused("{\"access_token\":\"abc\"}", "no \"token\" string", NULL);
	expect_eo_refused("{\"token\":123}", "no \"token\" string", NULL);
	expect_eo_refused("{\"token\":\"SECRETTOKEN\\r\\nX-Evil: 1\"}",
			  "\"token\" refused: the credential holds a control", "SECRETTOKEN");
	expect_eo_refused("{\"token\":\"SECRETTOKEN\\n\"}", "refused", "SECRETTOKEN");
	expect_eo_refused("{\"token\":\"SECRETTOKEN \"}", "space", "SECRETTOKEN");
}

/* --- the static source ----------------------------------------------------------------- */

TestSuite(static_src, .init = setup_dir, .fini = teardown_dir);

static void write_file(const char *path, const void *data, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
	cr_assert_eq(write(fd, data, len), (ssize_t)len);
	cr_assert_eq(fchmod(fd, mode), 0);
	close(fd);
}

static char *in_dir(const char *name)
{
	char *p = malloc(strlen(tmpdir) + strlen(name) + 2);

	cr_assert_not_null(p);
	sprintf(p, "%s/%s", tmpdir, name);
	return p;
}

/* a static source; takes ownership of file and cred_name (either may be NULL) */
static struct policy_source *static_src_new(char *file, char *cred_name)
{
	struct policy_source *src = calloc(1, sizeof(*src));

	cr_assert_not_null(src);
	src->refs = 1;
	src->file = file;
	src->systemd_credential = cred_name;
	src->timeout_ms = POLICY_DEFAULT_FETCH_TIMEOUT_MS;
	return src;
}

/* run a static job; st_* carried over from prev (the file as last read) if not NULL */
static struct fetch_job *run_static(struct policy_source *src, const struct fetch_job *prev)
{
	struct fetch_job *j = fetch_job_new(POLICY_CRED_STATIC, src);

	cr_assert_not_null(j);
	if (prev) {
		j->file = prev->file;
	}
	fetch_run(j);
	return j;
}

static void expect_static_refused(struct fetch_job *j, int err, const char *want)
{
	cr_expect_eq(j->err, err, "err %d (%s), want %d", j->err, strerror(-j->err), err);
	cr_expect_null(j->token);
	cr_expect_eq(j->unchanged, 0);
	cr_expect(strstr(j->why, want), "want \"%s\" in \"%s\"", want, j->why);
}

/* One static job on src, refused with err and a reason that has want. */
static void expect_refused_now(struct policy_source *src, int err, const char *want)
{
	struct fetch_job *j = run_static(src, NULL);

	expect_static_refused(j, err, want);
	fetch_job_free(j);
}

Test(static_src, reads_a_private_file_without_its_line_end)
{
	static const struct {
		const char *content;
		const char *token;
	} cases[] = {
		{ "sk-live-abc", "sk-live-abc" },
		{ "sk-live-abc\n", "sk-live-abc" },
		{ "sk-live-abc\r\n", "sk-live-abc" },
		{ "key with inner space\n", "key with inner space" },
	};
	char *path = in_dir("api.key");
	struct policy_source *src = static_src_new(path, NULL);
	struct stat st;

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct fetch_job *j;

		write_file(path, cases[i].content, strlen(cases[i].content), 0600);
		cr_assert_eq(stat(path, &st), 0);
		j = run_static(src, NULL);
		cr_expect_eq(j->err, 0, "%s", j->why);
		cr_expect_eq(j->unchanged, 0);
		expect_token(j->token, cases[i].token);
		cr_expect_eq(j->expires_at, 0, "a static credential has no expiry");
		cr_expect_eq(j->mtime, st.st_mtim.tv_sec);
		cr_expect_eq(j->file.ino, st.st_ino);
		cr_expect_eq(j->file.dev, st.st_dev);
		fetch_job_free(j);
	}
	cr_expect_eq(src->refs, 1, "the jobs put their references");
	policy_source_put(src);
}

Test(static_src, refuses_a_file_readable_by_group_or_other)
{
	static const mode_t modes[] = { 0640, 0604, 0644, 0660, 0606 };
	char *path = in_dir("api.key");
	struct policy_source *src = static_src_new(path, NULL);

	for (size_t i = 0; i < ARRAY_SIZE(modes); i++) {
		struct fetch_job *j;

		write_file(path, "SECRETKEY\n", 10, modes[i]);
		j = run_static(src, NULL);
		expect_static_refused(j, -EPERM, "readable by group");
		cr_expect_null(strstr(j->why, "SECRETKEY"));
		fetch_job_free(j);
	}
	/* a file others could only write or execute is not readable by them: taken */
	write_file(path, "SECRETKEY\n", 10, 0600);
	cr_assert_eq(chmod(path, 0700), 0);
	{
		struct fetch_job *j = run_static(src, NULL);

		cr_expect_eq(j->err, 0, "%s", j->why);
		fetch_job_free(j);
	}
	policy_source_put(src);
}

Test(static_src, refuses_a_file_owned_by_another_user)
{
	char *path = in_dir("api.key");
	struct policy_source *src = static_src_new(path, NULL);

	write_file(path, "SECRETKEY\n", 10, 0600);
	cr_assert_eq(chown(path, 65534, 65534), 0, "the tests run as root: %s",
		     strerror(errno));
	expect_refused_now(src, -EPERM, "owned by uid 65534");
	policy_source_put(src);
}

Test(static_src, an_unchanged_file_is_not_read_again_and_a_rotated_one_is)
{
	char *path = in_dir("api.key"), *next = in_dir("api.key.new");
	struct policy_source *src = static_src_new(path, NULL);
	struct fetch_job *a, *b, *c, *d;

	write_file(path, "first-key\n", 10, 0600);
	a = run_static(src, NULL);
	cr_assert_eq(a->err, 0, "%s", a->why);
	expect_token(a->token, "first-key");

	b = run_static(src, a);
	cr_expect_eq(b->err, 0, "%s", b->why);
	cr_expect_eq(b->unchanged, 1);
	cr_expect_null(b->token, "an unchanged file gives no token");
	cr_expect_eq(b->mtime, a->mtime, "its age is still reported");

	/* rotation by rename: another inode */
	write_file(next, "second-key\r\n", 12, 0600);
	cr_assert_eq(rename(next, path), 0);
	c = run_static(src, b);
	cr_expect_eq(c->err, 0, "%s", c->why);
	cr_expect_eq(c->unchanged, 0);
	expect_token(c->token, "second-key");
	cr_expect_neq(c->file.ino, a->file.ino);

	/* a rotation in place (same inode) moves mtime and ctime */
	usleep(20000);
	write_file(path, "third-key", 9, 0600);
	d = run_static(src, c);
	cr_expect_eq(d->err, 0, "%s", d->why);
	cr_expect_eq(d->unchanged, 0);
	cr_expect_eq(d->file.ino, c->file.ino);
	expect_token(d->token, "third-key");

	/* rewritten in place with its mtime put back (cp -p, rsync -t): ctime still moves */
	{
		struct timespec keep[2] = { { 0, UTIME_OMIT }, { d->file.mtime_ns / 1000000000,
								 d->file.mtime_ns % 1000000000 } };

		usleep(20000);
		write_file(path, "fourth-key", 10, 0600);
		cr_assert_eq(utimensat(AT_FDCWD, path, keep, 0), 0);
		fetch_job_free(a);
		a = run_static(src, d);
		cr_expect_eq(a->err, 0, "%s", a->why);
		cr_expect_eq(a->unchanged, 0, "a change of ctime alone was not seen");
		cr_expect_eq(a->file.mtime_ns, d->file.mtime_ns);
		expect_token(a->token, "fourth-key");
	}

	/* a file that became group-readable is refused even though its content did not change */
	fetch_job_free(d);
	d = run_static(src, a);
	cr_expect_eq(d->unchanged, 1);
	fetch_job_free(a);
	a = d;
	d = NULL;
	usleep(20000);
	cr_assert_eq(chmod(path, 0640), 0);
	fetch_job_free(b);
	b = run_static(src, a);
	expect_static_refused(b, -EPERM, "readable by group");

	fetch_job_free(a);
	fetch_job_free(b);
	fetch_job_free(c);
	fetch_job_free(d);
	free(next);
	policy_source_put(src);
}

Test(static_src, refuses_directories_missing_files_and_fifos)
{
	char *dir = in_dir("a-dir"), *fifo = in_dir("a-fifo");
	struct policy_source *src;

	cr_assert_eq(mkdir(dir, 0700), 0);
	src = static_src_new(dir, NULL);
	expect_refused_now(src, -EPERM, "not a regular file");
	policy_source_put(src);

	src = static_src_new(in_dir("nothing-here"), NULL);
	expect_refused_now(src, -ENOENT, "nothing-here: No such file or directory");
	policy_source_put(src);

	/* opened without blocking (no writer), then refused as not a regular file */
	cr_assert_eq(mkfifo(fifo, 0600), 0);
	src = static_src_new(fifo, NULL);
	expect_refused_now(src, -EPERM, "not a regular file");
	policy_source_put(src);
}

Test(static_src, refuses_long_empty_and_multi_line_files)
{
	char *path = in_dir("api.key"), *big = malloc(9000);
	struct policy_source *src = static_src_new(path, NULL);
	struct fetch_job *j;

	cr_assert_not_null(big);
	memset(big, 'k', 9000);
	write_file(path, big, 9000, 0600);
	expect_refused_now(src, -EINVAL, "longer than 8192 bytes");

	/* the limit: 8192 bytes and a line end are taken, one more byte is not */
	big[8192] = '\r';
	big[8193] = '\n';
	write_file(path, big, 8194, 0600);
	j = run_static(src, NULL);
	cr_expect_eq(j->err, 0, "%s", j->why);
	cr_expect(j->token && j->token->len == 8192);
	fetch_job_free(j);
	big[8192] = 'k';
	big[8193] = '\n';
	write_file(path, big, 8194, 0600);
	expect_refused_now(src, -EINVAL, "longer than 8192 bytes");

#define BAD(s) { s, sizeof(s) - 1 }
	static const struct {
		const char *s;
		size_t len;
	} bad[] = { BAD(""), BAD("\n"), BAD("\r\n"), BAD("line-one\nline-two\n"),
		    BAD("line-one\r\nline-two"), BAD("key\n\n"), BAD(" key\n"), BAD("key\t\n"),
		    BAD("k\0ey\n") };
#undef BAD

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		write_file(path, bad[i].s, bad[i].len, 0600);
		j = run_static(src, NULL);
		expect_static_refused(j, -EINVAL, "static credential");
		cr_expect_null(strstr(j->why, "line-"), "content in why: %s", j->why);
		fetch_job_free(j);
	}
	free(big);
	policy_source_put(src);
}

/*
 * A file of 8192 bytes, CRLF and a second line: the read must see that the file goes on
 * past the longest value and its line end (it once took the first 8192 bytes).
 */
Test(static_src, a_second_line_past_a_full_length_first_line_is_refused)
{
	char *path = in_dir("api.key"), *big = malloc(8200);
	struct policy_source *src = static_src_new(path, NULL);

	cr_assert_not_null(big);
	memset(big, 'k', 8192);
	memcpy(big + 8192, "\r\nnext\n", 7);
	write_file(path, big, 8199, 0600);
	expect_refused_now(src, -EINVAL, "static credential");
	free(big);
	policy_source_put(src);
}

Test(static_src, reads_a_systemd_credential_from_credentials_directory)
{
	char *path = in_dir("api-key");
	struct policy_source *src = static_src_new(NULL, strdup("api-key"));
	struct fetch_job *j;

	cr_assert_not_null(src->systemd_credential);
	write_file(path, "from-systemd\n", 13, 0600);

	cr_assert_eq(unsetenv("CREDENTIALS_DIRECTORY"), 0);
	expect_refused_now(src, -ENOENT, "systemd credential api-key: $CREDENTIALS_DIRECTORY "
			      "is not set (LoadCredential= in the unit)");

	cr_assert_eq(setenv("CREDENTIALS_DIRECTORY", "relative/dir", 1), 0);
	expect_refused_now(src, -ENOENT, "$CREDENTIALS_DIRECTORY is not set");

	cr_assert_eq(setenv("CREDENTIALS_DIRECTORY", tmpdir, 1), 0);
	j = run_static(src, NULL);
	cr_expect_eq(j->err, 0, "%s", j->why);
	expect_token(j->token, "from-systemd");
	fetch_job_free(j);

	cr_assert_eq(unlink(path), 0);
	expect_refused_now(src, -ENOENT, "/api-key: No such file or directory");
	unsetenv("CREDENTIALS_DIRECTORY");
	free(path);
	policy_source_put(src);
}

/* --- the exec source ------------------------------------------------------------------- */

TestSuite(exec_src, .init = setup_dir, .fini = teardown_dir);

/* an exec source running "/bin/sh -c script" */
static struct policy_source *sh_src_new(const char *script, uint32_t timeout_ms)
{
	struct policy_source *src = calloc(1, sizeof(*src));

	cr_assert_not_null(src);
	src->refs = 1;
	src->argv = calloc(4, sizeof(*src->argv));
	cr_assert_not_null(src->argv);
	src->argv[0] = strdup("/bin/sh");
	src->argv[1] = strdup("-c");
	src->argv[2] = strdup(script);
	src->argc = 3;
	src->timeout_ms = timeout_ms;
	cr_assert(src->argv[0] && src->argv[1] && src->argv[2]);
	return src;
}

static struct fetch_job *run_src(struct policy_source *src)
{
	struct fetch_job *j = fetch_job_new(POLICY_CRED_EXEC, src);

	cr_assert_not_null(j);
	snprintf(j->workload, sizeof(j->workload), "billing");
	snprintf(j->route, sizeof(j->route), "10.0.0.7:8080");
	fetch_run(j);
	return j;
}

/* run "/bin/sh -c script" as an exec source; the source is put, the job returned */
static struct fetch_job *run_sh(const char *script, uint32_t timeout_ms)
{
	struct policy_source *src = sh_src_new(script, timeout_ms);
	struct fetch_job *j = run_src(src);

	policy_source_put(src);
	return j;
}

/* a script with the test's directory substituted for every %1$s */
static char *script_in_dir(const char *fmt)
{
	char *s = NULL;

	cr_assert_gt(asprintf(&s, fmt, tmpdir), 0);
	return s;
}

static char *read_text(const char *path)
{
	FILE *f = fopen(path, "re");
	char *buf = calloc(1, 8192);

	cr_assert_not_null(f, "%s: %s", path, strerror(errno));
	cr_assert_not_null(buf);
	cr_assert(fread(buf, 1, 8191, f) < 8191 && !ferror(f), "%s: too long or unreadable",
		  path);
	fclose(f);
	return buf;
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	cr_assert_not_null(d);
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

Test(exec_src, takes_the_token_a_helper_prints)
{
	struct fetch_job *j;

	j = run_sh("echo '{\"token\": \"hvs.helper-token\", \"expires_at\": 1893553445}'", 5000);
	cr_expect_eq(j->err, 0, "%s", j->why);
	expect_token(j->token, "hvs.helper-token");
	cr_expect_eq(j->expires_at, T2030);
	cr_expect_str_eq(j->detail, "");
	fetch_job_free(j);

	/* stderr of a helper that succeeds is not kept */
	j = run_sh("echo 'warming up' >&2; printf '{\"token\":\"abc\",\"expires_at\":"
		   "\"2030-01-02T03:04:05Z\"}'", 5000);
	cr_expect_eq(j->err, 0, "%s", j->why);
	expect_token(j->token, "abc");
	cr_expect_eq(j->expires_at, T2030);
	cr_expect_str_eq(j->detail, "");
	fetch_job_free(j);
}

Test(exec_src, a_failing_helper_gives_its_status_and_first_stderr_lines)
{
	struct fetch_job *j;

	j = run_sh("echo '{\"token\":\"SECRETTOKEN\"}'; "
		   "printf 'first line\\nsecond\\tline\\nthird\\033[31m\\nfourth-hidden\\n' >&2; "
		   "exit 3", 5000);
	cr_expect_eq(j->err, -EIO);
	cr_expect_null(j->token, "no token from a failed helper");
	cr_expect_str_eq(j->why, "helper /bin/sh exited with status 3");
	cr_expect_str_eq(j->detail, "first line | second?line | third?[31m");
	cr_expect_null(strstr(j->detail, "fourth"));
	cr_expect_null(strstr(j->why, "SECRETTOKEN"));
	fetch_job_free(j);

	/* no stderr, one line without a newline, non-ASCII bytes */
	j = run_sh("exit 1", 5000);
	cr_expect_str_eq(j->why, "helper /bin/sh exited with status 1");
	cr_expect_str_eq(j->detail, "");
	fetch_job_free(j);
	j = run_sh("printf 'caf\\303\\251 down' >&2; exit 2", 5000);
	cr_expect_str_eq(j->detail, "caf?? down");
	fetch_job_free(j);

	/* killed by a signal */
	j = run_sh("kill -TERM $$", 5000);
	cr_expect_eq(j->err, -EIO);
	cr_expect_str_eq(j->why, "helper /bin/sh was killed by signal 15");
	fetch_job_free(j);
}

Test(exec_src, junk_output_is_refused_without_quoting_it)
{
	struct fetch_job *j;

	j = run_sh("echo 'JUNK-SECRET-OUTPUT'", 5000);
	cr_expect_eq(j->err, -EPROTO);
	cr_expect_null(j->token);
	cr_expect_str_eq(j->why, "helper output is not a JSON object");
	cr_expect_null(strstr(j->detail, "JUNK"));
	fetch_job_free(j);

	j = run_sh("true", 5000);
	cr_expect_eq(j->err, -EPROTO, "no output at all");
	cr_expect_str_eq(j->why, "helper output is not a JSON object");
	fetch_job_free(j);

	/* printf %s: dash's echo would turn \r\n into bytes, which JSON does not allow */
	j = run_sh("printf '%s' '{\"token\":\"SECRETTOKEN\\r\\nX-Evil: 1\"}'", 5000);
	cr_expect_eq(j->err, -EPROTO);
	cr_expect_null(j->token);
	cr_expect(strstr(j->why, "\"token\" refused"), "%s", j->why);
	cr_expect_null(strstr(j->why, "SECRETTOKEN"));
	fetch_job_free(j);
}

Test(exec_src, a_helper_past_its_timeout_is_killed_with_its_children)
{
	char *script = script_in_dir("sleep 30 & echo $! > %1$s/child; echo $$ > %1$s/pgid; "
				     "echo started >&2; wait");
	char *child_path = in_dir("child"), *pgid_path = in_dir("pgid"), *txt;
	uint64_t t0, took;
	struct fetch_job *j;
	pid_t child, pgid, got = 0;
	int status = 0;

	/* the helper's children are re-parented to us, so that we can see how they died */
	cr_assert_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
	t0 = mono_ms();
	j = run_sh(script, 300);
	took = mono_ms() - t0;
	cr_expect_eq(j->err, -ETIMEDOUT, "err %d: %s", j->err, j->why);
	cr_expect_str_eq(j->why, "helper /bin/sh did not finish within 300 ms: killed");
	cr_expect_str_eq(j->detail, "started", "stderr is kept on a timeout");
	cr_expect_null(j->token);
	cr_expect_geq(took, 300, "gave up after %llu ms", (unsigned long long)took);
	cr_expect_lt(took, 1000, "gave up after %llu ms", (unsigned long long)took);
	fetch_job_free(j);

	txt = read_text(child_path);
	child = atoi(txt);
	free(txt);
	txt = read_text(pgid_path);
	pgid = atoi(txt);
	free(txt);
	cr_assert_gt(child, 1);
	for (int i = 0; i < 200 && got == 0; i++) {
		got = waitpid(child, &status, WNOHANG);
		if (got < 0 && errno == ECHILD)
			got = 0;	/* not re-parented yet */
		if (got == 0)
			usleep(10000);
	}
	cr_assert_eq(got, child, "the background sleep %d was not killed", child);
	cr_expect(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "status %#x", status);
	cr_expect_eq(kill(child, 0), -1);
	cr_expect_eq(kill(-pgid, 0), -1, "something of the helper's group is alive");
	cr_expect_eq(errno, ESRCH);
	free(script);
	free(child_path);
	free(pgid_path);
}

/* a helper that floods a pipe is still killed at its deadline: reading never starves it */
Test(exec_src, a_helper_flooding_stdout_or_stderr_is_killed_at_its_timeout)
{
	static const char *const scripts[] = { "cat /dev/zero", "cat /dev/zero >&2", "yes" };

	for (size_t i = 0; i < ARRAY_SIZE(scripts); i++) {
		uint64_t t0 = mono_ms(), took;
		struct fetch_job *j = run_sh(scripts[i], 300);

		took = mono_ms() - t0;
		cr_expect_eq(j->err, -ETIMEDOUT, "%s: %s", scripts[i], j->why);
		cr_expect_null(j->token);
		cr_expect_lt(took, 1500, "%s: gave up after %llu ms", scripts[i],
			     (unsigned long long)took);
		fetch_job_free(j);
	}
}

Test(exec_src, output_is_limited_to_64_kib)
{
	static const char json[] = "{\"token\":\"big-ok\",\"expires_at\":1893553445}";
	size_t pad = FETCH_MAX_RESPONSE - (sizeof(json) - 1);
	char script[256];
	struct fetch_job *j;

	/* exactly 64 KiB: taken */
	snprintf(script, sizeof(script), "printf '%s'; head -c %zu /dev/zero | tr '\\0' ' '",
		 json, pad);
	j = run_sh(script, 5000);
	cr_expect_eq(j->err, 0, "%s", j->why);
	expect_token(j->token, "big-ok");
	fetch_job_free(j);

	/* one byte more: refused */
	snprintf(script, sizeof(script), "printf '%s'; head -c %zu /dev/zero | tr '\\0' ' '",
		 json, pad + 1);
	j = run_sh(script, 5000);
	cr_expect_eq(j->err, -EPROTO);
	cr_expect_null(j->token);
	cr_expect_str_eq(j->why, "helper /bin/sh printed more than 64 KiB");
	fetch_job_free(j);

	/* a lot more: read and dropped until the helper exits */
	j = run_sh("head -c 5000000 /dev/zero | tr '\\0' x", 5000);
	cr_expect_eq(j->err, -EPROTO);
	cr_expect_str_eq(j->why, "helper /bin/sh printed more than 64 KiB");
	fetch_job_free(j);
}

Test(exec_src, the_helper_gets_path_and_lanyard_variables_only)
{
	char *script = script_in_dir("tr '\\0' '\\n' < /proc/$$/environ > %1$s/env; "
				     "echo '{\"token\":\"t\"}'");
	char *env_path = in_dir("env"), *env;
	struct policy_source *src;
	struct fetch_job *j;

	cr_assert_eq(setenv("LY_TEST_SECRET", "hunter2", 1), 0);
	cr_assert_eq(setenv("HOME", "/root", 1), 0);
	src = sh_src_new(script, 5000);
	j = fetch_job_new(POLICY_CRED_EXEC, src);
	cr_assert_not_null(j);
	snprintf(j->workload, sizeof(j->workload), "billing");
	snprintf(j->route, sizeof(j->route), "api.example.org:443");
	snprintf(j->audience, sizeof(j->audience), "https://api.example.org");
	fetch_run(j);
	cr_expect_eq(j->err, 0, "%s", j->why);
	fetch_job_free(j);
	env = read_text(env_path);
	cr_expect_str_eq(env, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
			 "LANYARD_WORKLOAD=billing\n"
			 "LANYARD_ROUTE=api.example.org:443\n"
			 "LANYARD_AUDIENCE=https://api.example.org\n");
	free(env);

	/* no audience: no LANYARD_AUDIENCE */
	j = run_src(src);
	cr_expect_eq(j->err, 0, "%s", j->why);
	fetch_job_free(j);
	env = read_text(env_path);
	cr_expect_str_eq(env, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
			 "LANYARD_WORKLOAD=billing\n"
			 "LANYARD_ROUTE=10.0.0.7:8080\n");
	free(env);
	policy_source_put(src);
	free(script);
	free(env_path);
}

static void *run_job_thread(void *arg)
{
	fetch_run(arg);
	return NULL;
}

/* "CapXxx:\t<hex>" lines of /proc/pid/status, and the fds of pid, as "0 1 2 " */
static void proc_caps_fds(pid_t pid, char *caps, size_t caps_len, char *fds, size_t fds_len)
{
	char path[64], line[256];
	size_t o = 0;
	FILE *f;
	DIR *d;
	struct dirent *e;
	int fdnums[64], n = 0;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	cr_assert_not_null(f, "%s: %s", path, strerror(errno));
	caps[0] = '\0';
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "CapInh:", 7) || !strncmp(line, "CapPrm:", 7) ||
		    !strncmp(line, "CapEff:", 7) || !strncmp(line, "CapAmb:", 7))
			o += (size_t)snprintf(caps + o, caps_len - o, "%s", line);
	fclose(f);

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	d = opendir(path);
	cr_assert_not_null(d, "%s: %s", path, strerror(errno));
	while ((e = readdir(d)) && n < 64)
		if (e->d_name[0] != '.')
			fdnums[n++] = atoi(e->d_name);
	closedir(d);
	o = 0;
	fds[0] = '\0';
	for (int want = 0; want < 1024; want++)
		for (int i = 0; i < n; i++)
			if (fdnums[i] == want)
				o += (size_t)snprintf(fds + o, fds_len - o, "%d ", want);
}

/*
 * The helper is looked at from outside while it runs (a shell listing its own fds
 * would see the ones it opens for that), with the job on a thread as on a worker.
 */
Test(exec_src, the_helper_has_no_capabilities_no_inherited_fds_and_null_stdin)
{
	char *script = script_in_dir("echo $$ > %1$s/pid.new; mv %1$s/pid.new %1$s/pid; "
				     "sleep 2; echo '{\"token\":\"t\"}'");
	char *pid_path = in_dir("pid"), *txt, caps[512], fds[256], link[PATH_MAX], path[64];
	struct policy_source *src = sh_src_new(script, 10000);
	struct fetch_job *j = fetch_job_new(POLICY_CRED_EXEC, src);
	int leak = open("/dev/null", O_RDONLY);	/* without O_CLOEXEC: must not get through */
	pthread_t th;
	ssize_t n;
	pid_t pid;
	int i, in[2];

	cr_assert_not_null(j);
	cr_assert_geq(leak, 3);
	/* our stdin a pipe: a helper that inherited it would not show /dev/null */
	cr_assert_eq(pipe(in), 0);
	cr_assert_eq(dup2(in[0], 0), 0);
	cr_assert_eq(geteuid(), 0, "the tests run as root: a capability drop shows only then");
	/* lanyardd sets no_new_privs at start-up (privs_drop()): execve gives root nothing back */
	cr_assert_eq(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
	cr_assert_eq(pthread_create(&th, NULL, run_job_thread, j), 0);
	for (i = 0; i < 500 && access(pid_path, F_OK); i++)
		usleep(10000);
	cr_assert_eq(access(pid_path, F_OK), 0, "the helper did not start");
	txt = read_text(pid_path);
	pid = atoi(txt);
	free(txt);
	cr_assert_gt(pid, 1);

	proc_caps_fds(pid, caps, sizeof(caps), fds, sizeof(fds));
	cr_expect_str_eq(caps, "CapInh:\t0000000000000000\nCapPrm:\t0000000000000000\n"
			 "CapEff:\t0000000000000000\nCapAmb:\t0000000000000000\n");
	cr_expect_str_eq(fds, "0 1 2 ", "the helper has more than stdin, stdout, stderr");
	snprintf(path, sizeof(path), "/proc/%d/fd/0", (int)pid);
	n = readlink(path, link, sizeof(link) - 1);
	cr_assert_gt(n, 0);
	link[n] = '\0';
	cr_expect_str_eq(link, "/dev/null");
	for (int fd = 1; fd <= 2; fd++) {
		snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)pid, fd);
		n = readlink(path, link, sizeof(link) - 1);
		cr_assert_gt(n, 0);
		link[n] = '\0';
		cr_expect(!strncmp(link, "pipe:[", 6), "fd %d is %s, not a pipe", fd, link);
	}
	cr_expect_eq(getpgid(pid), pid, "the helper leads its own process group");

	cr_assert_eq(pthread_join(th, NULL), 0);
	cr_expect_eq(j->err, 0, "%s", j->why);
	fetch_job_free(j);
	policy_source_put(src);
	close(leak);
	close(in[0]);
	close(in[1]);
	free(script);
	free(pid_path);
}

Test(exec_src, a_helper_that_cannot_be_executed_exits_127)
{
	struct policy_source *src = calloc(1, sizeof(*src));
	struct fetch_job *j;

	cr_assert_not_null(src);
	src->refs = 1;
	src->argv = calloc(2, sizeof(*src->argv));
	cr_assert_not_null(src->argv);
	src->argv[0] = strdup("/nonexistent/lanyard-helper");
	src->argc = 1;
	src->timeout_ms = 5000;
	j = run_src(src);
	cr_expect_eq(j->err, -EIO);
	cr_expect_null(j->token);
	cr_expect_str_eq(j->why, "helper /nonexistent/lanyard-helper exited with status 127 "
			 "(cannot execute it)");
	fetch_job_free(j);
	policy_source_put(src);
}

Test(exec_src, leaves_no_fd_and_no_child_behind)
{
	static const char *const scripts[] = {
		"echo '{\"token\":\"t\"}'", "echo junk", "exit 4", "sleep 5",
		"sleep 5 >/dev/null 2>&1 & echo '{\"token\":\"t\"}'",
	};
	int before = count_fds();

	for (size_t i = 0; i < ARRAY_SIZE(scripts); i++) {
		struct fetch_job *j = run_sh(scripts[i], 200);

		cr_expect_eq(count_fds(), before, "fds after \"%s\"", scripts[i]);
		cr_expect_eq(waitpid(-1, NULL, WNOHANG), -1, "a child left by \"%s\"", scripts[i]);
		cr_expect_eq(errno, ECHILD);
		fetch_job_free(j);
	}
}

/* --- the worker pool ----------------------------------------------------------------------- */

TestSuite(fetcher, .init = setup_dir, .fini = teardown_dir);

struct pool_state {
	struct loop *loop;
	pthread_t loop_thread;
	int want, done, ok, off_loop, timed_out;
};

static void pool_done(struct fetch_job *j, void *arg)
{
	struct pool_state *s = arg;

	s->done++;
	if (!pthread_equal(pthread_self(), s->loop_thread))
		s->off_loop++;
	if (!j->err && j->token && j->token->len == 10 && !memcmp(j->token->buf, "pool-token", 10))
		s->ok++;
	fetch_job_free(j);
	if (s->done == s->want)
		loop_stop(s->loop);
}

static void pool_give_up(struct loop *l, void *arg)
{
	struct pool_state *s = arg;

	s->timed_out = 1;
	loop_stop(l);
}

Test(fetcher, runs_jobs_on_workers_and_completes_them_on_the_loop)
{
	char *path = in_dir("api.key");
	struct policy_source *src = static_src_new(path, NULL);
	struct pool_state s = { .want = 20, .loop_thread = pthread_self() };
	struct fetcher *f;

	write_file(path, "pool-token\n", 11, 0600);
	s.loop = loop_new();
	cr_assert_not_null(s.loop);
	f = fetcher_new(s.loop, pool_done, &s);
	cr_assert_not_null(f);
	cr_assert_eq(fetcher_start(f, 2), 0);
	cr_assert_eq(loop_every(s.loop, 10000, pool_give_up, &s), 0);
	for (int i = 0; i < s.want; i++) {
		struct fetch_job *j = fetch_job_new(POLICY_CRED_STATIC, src);

		cr_assert_not_null(j);
		fetcher_submit(f, j);
	}
	cr_assert_eq(loop_run(s.loop), 0);
	cr_expect_eq(s.timed_out, 0, "the loop gave up after 10 s with %d of %d jobs", s.done,
		     s.want);
	cr_expect_eq(s.done, s.want);
	cr_expect_eq(s.ok, s.want, "%d jobs without the token", s.want - s.ok);
	cr_expect_eq(s.off_loop, 0, "done callbacks off the loop thread");
	fetcher_free(f);
	loop_free(s.loop);
	cr_expect_eq(src->refs, 1, "every job put its source reference");
	policy_source_put(src);
	expect_no_leak();
}

Test(fetcher, free_drops_queued_jobs_of_a_fetcher_never_started)
{
	char *path = in_dir("api.key");
	struct policy_source *src = static_src_new(path, NULL);
	struct loop *l = loop_new();
	struct pool_state s = { .want = 1 };
	struct fetcher *f;

	cr_assert_not_null(l);
	s.loop = l;
	f = fetcher_new(l, pool_done, &s);
	cr_assert_not_null(f);
	for (int i = 0; i < 5; i++) {
		struct fetch_job *j = fetch_job_new(POLICY_CRED_STATIC, src);

		cr_assert_not_null(j);
		j->token = secret_dup("queued", 6);	/* freed with the job (ASan: no leak) */
		fetcher_submit(f, j);
	}
	cr_expect_eq(src->refs, 6);
	fetcher_free(f);
	cr_expect_eq(src->refs, 1, "queued jobs were not freed");
	cr_expect_eq(s.done, 0, "no done callback for a dropped job");
	loop_free(l);
	policy_source_put(src);
	expect_no_leak();
}

Test(fetcher, free_cancels_a_running_helper_and_drops_the_queue)
{
	char *script = script_in_dir("touch %1$s/running; exec sleep 30");
	char *running = in_dir("running");
	struct policy_source *src = sh_src_new(script, 30000);
	struct loop *l = loop_new();
	struct pool_state s = { .want = 100 };
	struct fetcher *f;
	uint64_t t0;
	int i;

	cr_assert_not_null(l);
	s.loop = l;
	f = fetcher_new(l, pool_done, &s);
	cr_assert_not_null(f);
	cr_assert_eq(fetcher_start(f, 1), 0);
	for (i = 0; i < 4; i++)
		fetcher_submit(f, fetch_job_new(POLICY_CRED_EXEC, src));
	for (i = 0; i < 500 && access(running, F_OK); i++)
		usleep(10000);
	cr_assert_eq(access(running, F_OK), 0, "the first helper did not start");

	t0 = mono_ms();
	fetcher_free(f);
	cr_expect_lt(mono_ms() - t0, 1000, "a running helper was not cancelled");
	cr_expect_eq(src->refs, 1, "jobs (running, finished or queued) were not freed");
	cr_expect_eq(s.done, 0);
	cr_expect_eq(waitpid(-1, NULL, WNOHANG), -1, "the cancelled helper was not reaped");
	loop_free(l);
	policy_source_put(src);
	free(script);
	free(running);
	expect_no_leak();
}
