// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Copyright (c) 2026 The lanyard authors */
/*
 * Unit tests for userspace/http1.c: request heads and chunked framing.  Every input
 * ends at a PROT_NONE guard page (tests/lib/guard.h) so an over-read faults.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http1.h"
#include "lib/guard.h"

TestSuite(http1, .timeout = 5);

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/*
 * Criterion runs each parameterized case in a fresh process image, so parameters
 * (and every string they point to) must live in its shared arena: cr_malloc copies.
 */
static void *cr_dup(const void *p, size_t n)
{
	void *d = cr_malloc(n + 1);

	cr_assert_not_null(d);
	memcpy(d, p, n + 1);
	return d;
}

struct head_case {
	const char *in;
	size_t len;
	ssize_t want;	/* head length or HTTP1_* code */
};

/* OK: the whole input is one head; ERR: the input is refused with code e */
#define OK(s)		{ s, sizeof(s) - 1, sizeof(s) - 1 }
#define ERR(s, e)	{ s, sizeof(s) - 1, e }

#define H11	"GET / HTTP/1.1\r\nHost: a\r\n"

static ssize_t parse_guarded(const char *in, size_t len, struct http1_request *req)
{
	char *buf = guard_copy(in, len);
	ssize_t n;

	cr_assert_not_null(buf);
	n = http1_parse_request(buf, len, req);
	guard_free(buf, len);
	return n;
}

static void expect_head(const struct head_case *c)
{
	static struct http1_request req;
	ssize_t n = parse_guarded(c->in, c->len, &req);

	cr_expect_eq(n, c->want, "input \"%.*s\": got %zd (%s), want %zd (%s)", (int)c->len,
		     c->in, n, http1_strerror((int)n), c->want, http1_strerror((int)c->want));
}

static struct criterion_test_params head_params(const struct head_case *src, size_t n)
{
	struct head_case *p = cr_malloc(n * sizeof(*p));
	size_t i;

	cr_assert_not_null(p);
	for (i = 0; i < n; i++) {
		p[i] = src[i];
		p[i].in = cr_dup(src[i].in, src[i].len);
	}
	return cr_make_param_array(struct head_case, p, n);
}

/* VALID */
static struct head_case valid_heads[] = {
	OK(H11 "\r\n"),
	OK("GET / HTTP/1.0\r\n\r\n"),
	OK("\r\n\r\n" H11 "\r\n"),
	OK("get /lower-case-method-is-a-token HTTP/1.1\r\nHost: a\r\n\r\n"),
	OK("M-SEARCH * HTTP/1.1\r\nHost: a\r\n\r\n"),
	OK("GET http://a.example/b?c=d&e=%20 HTTP/1.1\r\nHost: a.example\r\n\r\n"),
	OK("CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n"),
	OK("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"),
	OK("GET / HTTP/1.1\r\nHost: \t a \t\r\n\r\n"),
	OK("GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n"),
	OK("GET / HTTP/1.1\r\nHost:\r\n\r\n"),
	OK(H11 "X-Empty:\r\nX-Ws: \t \r\n\r\n"),
	OK(H11 "X-Utf8: caf\xc3\xa9\r\n\r\n"),
	OK(H11 "X-Odd: a\tb \"q\" ,;=\r\n\r\n"),
	OK(H11 "Content-Length: 0\r\n\r\n"),
	OK(H11 "Content-Length: 5\r\ncontent-length: 5\r\n\r\n"),
	OK(H11 "Content-Length: 9223372036854775807\r\n\r\n"),
	OK(H11 "Transfer-Encoding: CHUNKED \r\n\r\n"),
	OK("GET / HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n"),
};

ParameterizedTestParameters(http1, accepts_valid_heads)
{
	return head_params(valid_heads, ARRAY_SIZE(valid_heads));
}

ParameterizedTest(struct head_case *c, http1, accepts_valid_heads)
{
	expect_head(c);
}

/* Every proper prefix of a valid head is incomplete, never an error. */
ParameterizedTestParameters(http1, every_prefix_of_valid_head_is_partial)
{
	return head_params(valid_heads, ARRAY_SIZE(valid_heads));
}

ParameterizedTest(struct head_case *c, http1, every_prefix_of_valid_head_is_partial)
{
	static struct http1_request req;
	size_t k;

	for (k = 0; k < c->len; k++) {
		ssize_t n = parse_guarded(c->in, k, &req);

		cr_expect_eq(n, HTTP1_PARTIAL, "prefix %zu of \"%s\": got %zd", k, c->in, n);
	}
}

/* MALFORMED */
ParameterizedTestParameters(http1, rejects_malformed_heads)
{
	static struct head_case cases[] = {
		ERR("\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", HTTP1_ERR_BARE_LF),
		ERR("GET / HTTP/1.1\nHost: a\r\n\r\n", HTTP1_ERR_BARE_LF),
		ERR(H11 "X: a\nb\r\n\r\n", HTTP1_ERR_BARE_LF),
		ERR(H11 "\n", HTTP1_ERR_BARE_LF),
		ERR(H11 "X: a\rb\r\n\r\n", HTTP1_ERR_SYNTAX),
		ERR("\rGET / HTTP/1.1\r\nHost: a\r\n\r\n", HTTP1_ERR_SYNTAX),
		ERR(H11 "\rX", HTTP1_ERR_SYNTAX),
		ERR(H11 "X: a\r\n b\r\n\r\n", HTTP1_ERR_OBS_FOLD),
		ERR(H11 "X: a\r\n\tb\r\n\r\n", HTTP1_ERR_OBS_FOLD),
		ERR("GET / HTTP/1.1\r\n Host: a\r\n\r\n", HTTP1_ERR_OBS_FOLD),
		ERR("GET / HTTP/1.1\r\nHost : a\r\n\r\n", HTTP1_ERR_SYNTAX),
		ERR(H11 "X\t: a\r\n\r\n", HTTP1_ERR_SYNTAX),
		ERR(H11 "No-Colon\r\n\r\n", HTTP1_ERR_SYNTAX),
		ERR(H11 ": no-name\r\n\r\n", HTTP1_ERR_SYNTAX),
		ERR(H11 "X(y): a\r\n\r\n", HTTP1_ERR_SYNTAX),
		ERR(H11 "X: a\0b\r\n\r\n", HTTP1_ERR_SYNTAX),
		ERR(H11 "X: a\x01" "b\r\n\r\n", HTTP1_ERR_SYNTAX),
		ERR(H11 "X: a\x7f\r\n\r\n", HTTP1_ERR_SYNTAX),
		ERR("G(T / HTTP/1.1\r\nHost: a\r\n\r\n", HTTP1_ERR_METHOD),
		ERR(" GET / HTTP/1.1\r\nHost: a\r\n\r\n", HTTP1_ERR_METHOD),
		ERR("GET\r\nHost: a\r\n\r\n", HTTP1_ERR_METHOD),
		ERR("G\xc3\x89T / HTTP/1.1\r\nHost: a\r\n\r\n", HTTP1_ERR_METHOD),
		ERR("GET /a\x01 HTTP/1.1\r\nHost: a\r\n\r\n", HTTP1_ERR_TARGET),
		ERR("GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", HTTP1_ERR_TARGET),
		ERR("GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n", HTTP1_ERR_TARGET),
		ERR("GET /a\x7f HTTP/1.1\r\nHost: a\r\n\r\n", HTTP1_ERR_TARGET),
		ERR("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", HTTP1_ERR_TARGET),
		ERR("GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", HTTP1_ERR_SYNTAX),
		ERR("GET /\r\n\r\n", HTTP1_ERR_SYNTAX),
		ERR("GET / HTTP/1.1 \r\nHost: a\r\n\r\n", HTTP1_ERR_SYNTAX),
		ERR("GET / http/1.1\r\nHost: a\r\n\r\n", HTTP1_ERR_SYNTAX),
		ERR("GET / HTTP/2.0\r\nHost: a\r\n\r\n", HTTP1_ERR_VERSION),
		ERR("GET / HTTP/1.2\r\nHost: a\r\n\r\n", HTTP1_ERR_VERSION),
		ERR("GET / HTTP/1.10\r\nHost: a\r\n\r\n", HTTP1_ERR_VERSION),
		ERR("GET / HTTP/0.9\r\n\r\n", HTTP1_ERR_VERSION),
		ERR("GET / HTTP/1.1\r\n\r\n", HTTP1_ERR_HOST),
		ERR("GET / HTTP/1.1\r\nX: a\r\n\r\n", HTTP1_ERR_HOST),
		ERR(H11 "Host: a\r\n\r\n", HTTP1_ERR_HOST),
		ERR("GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n", HTTP1_ERR_HOST),
		ERR("GET / HTTP/1.1\r\nHost: evil@a\r\n\r\n", HTTP1_ERR_HOST),
		ERR("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", HTTP1_ERR_HOST),
		ERR("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", HTTP1_ERR_HOST),
		ERR(H11 "Content-Length: \r\n\r\n", HTTP1_ERR_BAD_CL),
		ERR(H11 "Content-Length: +5\r\n\r\n", HTTP1_ERR_BAD_CL),
		ERR(H11 "Content-Length: -1\r\n\r\n", HTTP1_ERR_BAD_CL),
		ERR(H11 "Content-Length: 0x5\r\n\r\n", HTTP1_ERR_BAD_CL),
		ERR(H11 "Content-Length: 5a\r\n\r\n", HTTP1_ERR_BAD_CL),
		ERR(H11 "Content-Length: 5 5\r\n\r\n", HTTP1_ERR_BAD_CL),
		ERR(H11 "Content-Length: 9223372036854775808\r\n\r\n", HTTP1_ERR_BAD_CL),
		ERR(H11 "Content-Length: 99999999999999999999999\r\n\r\n", HTTP1_ERR_BAD_CL),
	};

	return head_params(cases, ARRAY_SIZE(cases));
}

ParameterizedTest(struct head_case *c, http1, rejects_malformed_heads)
{
	expect_head(c);
}

/* AMBIGUOUS: framing that two parsers could read differently (request smuggling) */
ParameterizedTestParameters(http1, rejects_ambiguous_framing)
{
	static struct head_case cases[] = {
		ERR(H11 "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
		    HTTP1_ERR_CL_TE),
		ERR(H11 "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
		    HTTP1_ERR_CL_TE),
		ERR(H11 "Content-Length: 5\r\nContent-Length: 6\r\n\r\n", HTTP1_ERR_DUP_CL),
		ERR(H11 "Content-Length: 5\r\nContent-Length: 05\r\n\r\n", HTTP1_ERR_DUP_CL),
		ERR(H11 "Content-Length: 5, 5\r\n\r\n", HTTP1_ERR_BAD_CL),
		ERR(H11 "Content-Length: 5,6\r\n\r\n", HTTP1_ERR_BAD_CL),
		ERR(H11 "Transfer-Encoding: gzip, chunked\r\n\r\n", HTTP1_ERR_BAD_TE),
		ERR(H11 "Transfer-Encoding: chunked, chunked\r\n\r\n", HTTP1_ERR_BAD_TE),
		ERR(H11 "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
		    HTTP1_ERR_BAD_TE),
		ERR(H11 "Transfer-Encoding: identity\r\n\r\n", HTTP1_ERR_BAD_TE),
		ERR(H11 "Transfer-Encoding: xchunked\r\n\r\n", HTTP1_ERR_BAD_TE),
		ERR(H11 "Transfer-Encoding: chunked;q=1\r\n\r\n", HTTP1_ERR_BAD_TE),
		ERR(H11 "Transfer-Encoding:\r\n\r\n", HTTP1_ERR_BAD_TE),
		ERR("GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", HTTP1_ERR_BAD_TE),
		ERR(H11 "Transfer-Encoding : chunked\r\n\r\n", HTTP1_ERR_SYNTAX),
		ERR(H11 "Transfer-Encoding: chunked\r\n\tgzip\r\n\r\n", HTTP1_ERR_OBS_FOLD),
		ERR(H11 "Transfer-Encoding: chunked\nContent-Length: 5\r\n\r\n",
		    HTTP1_ERR_BARE_LF),
		ERR(H11 "Content-Length: 5\r\x0bTransfer-Encoding: chunked\r\n\r\n",
		    HTTP1_ERR_SYNTAX),
	};

	return head_params(cases, ARRAY_SIZE(cases));
}

ParameterizedTest(struct head_case *c, http1, rejects_ambiguous_framing)
{
	expect_head(c);
}

/* TOO LONG: heads built to a given field count and total size */
struct big_case {
	size_t nfields;		/* including Host and the padding field */
	size_t total;		/* head length, final CRLF included */
	int complete;		/* 0: drop the final empty line */
	ssize_t want;		/* HTTP1_* code, or 0 for "the whole head" */
};

/* "GET / HTTP/1.1\r\nHost: a\r\n" + "X: y\r\n"... + "P: <pad>\r\n" + "\r\n" */
static char *build_big(const struct big_case *c, size_t *len)
{
	static const char start[] = "GET / HTTP/1.1\r\nHost: a\r\n";
	size_t fixed = sizeof(start) - 1 + (c->nfields - 2) * 6 + 5 + 2;
	char *s, *p;
	size_t i;

	cr_assert_geq(c->total, fixed);
	s = malloc(c->total);
	cr_assert_not_null(s);
	p = s + sizeof(start) - 1;
	memcpy(s, start, sizeof(start) - 1);
	for (i = 0; i < c->nfields - 2; i++, p += 6)
		memcpy(p, "X: y\r\n", 6);
	memcpy(p, "P: ", 3);
	memset(p + 3, 'p', c->total - fixed);
	memcpy(s + c->total - 4, "\r\n\r\n", 4);
	*len = c->complete ? c->total : c->total - 2;
	return s;
}

ParameterizedTestParameters(http1, bounds_head_size_and_field_count)
{
	static struct big_case cases[] = {
		{ HTTP1_MAX_HEADERS, 2000, 1, 0 },
		{ HTTP1_MAX_HEADERS + 1, 2000, 1, HTTP1_ERR_TOO_LARGE },
		{ 3, HTTP1_MAX_HEAD, 1, 0 },
		{ 3, HTTP1_MAX_HEAD + 1, 1, HTTP1_ERR_TOO_LARGE },
		{ 3, HTTP1_MAX_HEAD + 2, 0, HTTP1_ERR_TOO_LARGE },
		{ 3, HTTP1_MAX_HEAD + 1, 0, HTTP1_PARTIAL },
		{ 3, 200000, 0, HTTP1_ERR_TOO_LARGE },
	};

	return cr_make_param_array(struct big_case, cases, ARRAY_SIZE(cases));
}

ParameterizedTest(struct big_case *c, http1, bounds_head_size_and_field_count)
{
	static struct http1_request req;
	size_t len;
	char *s = build_big(c, &len);
	ssize_t n = parse_guarded(s, len, &req);

	cr_expect_eq(n, c->want ? c->want : (ssize_t)len, "fields %zu len %zu: got %zd",
		     c->nfields, len, n);
	if (n > 0)
		cr_expect_eq(req.nheaders, c->nfields);
	free(s);
}

Test(http1, rejects_long_request_line_without_end)
{
	static struct http1_request req;
	size_t len = HTTP1_MAX_HEAD + 10;
	char *s = malloc(len);

	cr_assert_not_null(s);
	memcpy(s, "GET /", 5);
	memset(s + 5, 'a', len - 5);
	cr_expect_eq(parse_guarded(s, HTTP1_MAX_HEAD - 1, &req), HTTP1_PARTIAL);
	cr_expect_eq(parse_guarded(s, HTTP1_MAX_HEAD, &req), HTTP1_ERR_TOO_LARGE);
	cr_expect_eq(parse_guarded(s, len, &req), HTTP1_ERR_TOO_LARGE);
	free(s);
}

/* Flags and body framing */
struct flag_case {
	const char *in;
	unsigned int flags;
	enum http1_body body;
	uint64_t content_length;
};

ParameterizedTestParameters(http1, sets_flags_and_body)
{
	static struct flag_case cases[] = {
		{ H11 "\r\n", 0, HTTP1_BODY_NONE, 0 },
		{ H11 "Expect: 100-Continue\r\n\r\n", HTTP1_F_EXPECT_CONTINUE, HTTP1_BODY_NONE, 0 },
		{ H11 "Expect: 200-ok\r\n\r\n", 0, HTTP1_BODY_NONE, 0 },
		{ H11 "Connection: close\r\n\r\n", HTTP1_F_CONN_CLOSE, HTTP1_BODY_NONE, 0 },
		{ H11 "Connection: Upgrade, CLOSE\r\nUpgrade: websocket\r\n\r\n",
		  HTTP1_F_CONN_CLOSE | HTTP1_F_UPGRADE, HTTP1_BODY_NONE, 0 },
		{ H11 "Connection: keep-alive,,x-close\r\n\r\n", 0, HTTP1_BODY_NONE, 0 },
		{ H11 "Connection: a\r\nConnection: close\r\n\r\n", HTTP1_F_CONN_CLOSE,
		  HTTP1_BODY_NONE, 0 },
		{ "GET / HTTP/1.0\r\n\r\n", HTTP1_F_CONN_CLOSE, HTTP1_BODY_NONE, 0 },
		{ "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", 0, HTTP1_BODY_NONE, 0 },
		{ "GET / HTTP/1.0\r\nConnection: keep-alive \t, TE\r\n\r\n", 0, HTTP1_BODY_NONE, 0 },
		{ "GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", HTTP1_F_CONN_CLOSE,
		  HTTP1_BODY_NONE, 0 },
		{ "POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
		  HTTP1_F_CONN_CLOSE, HTTP1_BODY_LENGTH, 1 },
		{ "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", HTTP1_F_UPGRADE,
		  HTTP1_BODY_NONE, 0 },
		{ H11 "Upgrade: h2c\r\n\r\n", HTTP1_F_UPGRADE, HTTP1_BODY_NONE, 0 },
		{ H11 "Content-Length: 42\r\n\r\n", 0, HTTP1_BODY_LENGTH, 42 },
		{ H11 "Content-Length: 0\r\n\r\n", 0, HTTP1_BODY_LENGTH, 0 },
		{ H11 "Content-Length: 007\r\n\r\n", 0, HTTP1_BODY_LENGTH, 7 },
		{ H11 "Transfer-Encoding: Chunked\r\nExpect: 100-continue\r\n\r\n",
		  HTTP1_F_EXPECT_CONTINUE, HTTP1_BODY_CHUNKED, 0 },
	};

	struct flag_case *p = cr_malloc(sizeof(cases));
	size_t i;

	cr_assert_not_null(p);
	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		p[i] = cases[i];
		p[i].in = cr_dup(cases[i].in, strlen(cases[i].in));
	}
	return cr_make_param_array(struct flag_case, p, ARRAY_SIZE(cases));
}

ParameterizedTest(struct flag_case *c, http1, sets_flags_and_body)
{
	static struct http1_request req;
	size_t len = strlen(c->in);

	cr_assert_eq(parse_guarded(c->in, len, &req), (ssize_t)len, "%s", c->in);
	cr_expect_eq(req.flags, c->flags, "%s: flags %#x", c->in, req.flags);
	cr_expect_eq(req.body, c->body, "%s: body %d", c->in, req.body);
	if (c->body == HTTP1_BODY_LENGTH)
		cr_expect_eq(req.content_length, c->content_length);
}

static int slice_is(struct http1_slice s, const char *want)
{
	return s.len == strlen(want) && !memcmp(s.ptr, want, s.len);
}

Test(http1, slices_point_into_the_buffer)
{
	static const char in[] = "\r\nPOST /p?q=1 HTTP/1.1\r\nHost:  api.example:8443 \r\n"
				 "X-Trace:\tabc def\t\r\nContent-Length: 3\r\n\r\nabc";
	static struct http1_request req;
	size_t len = sizeof(in) - 1, i;
	char *buf = guard_copy(in, len);
	ssize_t n;

	cr_assert_not_null(buf);
	n = http1_parse_request(buf, len, &req);
	cr_assert_eq(n, (ssize_t)(len - 3));
	cr_expect(slice_is(req.method, "POST"));
	cr_expect(slice_is(req.target, "/p?q=1"));
	cr_expect(slice_is(req.host, "api.example:8443"));
	cr_expect_eq(req.minor_version, 1);
	cr_assert_eq(req.nheaders, 3);
	cr_expect(slice_is(req.headers[1].name, "X-Trace"));
	cr_expect(slice_is(req.headers[1].value, "abc def"));
	for (i = 0; i < req.nheaders; i++) {
		const struct http1_header *h = &req.headers[i];

		cr_expect(h->name.ptr >= buf && h->name.ptr + h->name.len <= buf + n);
		cr_expect(h->value.ptr >= buf && h->value.ptr + h->value.len <= buf + n);
	}
	cr_expect(http1_name_eq(req.headers[2].name, "content-length"));
	guard_free(buf, len);
}

Test(http1, pipelined_requests_stop_at_first_head)
{
	static const char in[] = H11 "Content-Length: 5\r\n\r\nhello"
				 "GET /2 HTTP/1.1\r\nHost: b\r\n\r\n"
				 "GET /3 HTTP/1.1\r\nHost: c\r\n\r\n";
	static struct http1_request req;
	size_t len = sizeof(in) - 1;
	char *buf = guard_copy(in, len);
	ssize_t n, m;

	cr_assert_not_null(buf);
	n = http1_parse_request(buf, len, &req);
	cr_assert_eq(n, (ssize_t)strlen(H11 "Content-Length: 5\r\n\r\n"));
	cr_expect_eq(req.content_length, 5);
	m = http1_parse_request(buf + n + 5, len - (size_t)n - 5, &req);
	cr_assert_eq(m, (ssize_t)strlen("GET /2 HTTP/1.1\r\nHost: b\r\n\r\n"));
	cr_expect(slice_is(req.target, "/2"));
	cr_expect(slice_is(req.host, "b"));
	n += 5 + m;
	m = http1_parse_request(buf + n, len - (size_t)n, &req);
	cr_expect_eq((size_t)(n + m), len);
	cr_expect(slice_is(req.target, "/3"));
	guard_free(buf, len);
}

Test(http1, maps_errors_to_status_and_reason)
{
	int e;

	cr_expect_eq(http1_err_status(HTTP1_ERR_TOO_LARGE), 431);
	cr_expect_eq(http1_err_status(HTTP1_ERR_VERSION), 505);
	cr_expect_eq(http1_err_status(HTTP1_ERR_BAD_TE), 501);
	cr_expect_eq(http1_err_status(HTTP1_ERR_CL_TE), 400);
	cr_expect_eq(http1_err_status(HTTP1_ERR_CHUNK_OVERFLOW), 400);
	cr_expect_eq(http1_err_status(-1000), 400);
	for (e = HTTP1_ERR_TARGET; e <= HTTP1_PARTIAL; e++) {
		cr_expect_not_null(http1_strerror(e));
		cr_expect_str_neq(http1_strerror(e), http1_strerror(-1000), "code %d", e);
	}
	cr_expect_str_eq(http1_strerror(-1000), "bad request");
}

Test(http1, compares_names_case_insensitively)
{
	struct http1_slice s = { "Content-LENGTH: 5", 14 };

	cr_expect(http1_name_eq(s, "content-length"));
	cr_expect_not(http1_name_eq(s, "content-lengt"));
	cr_expect_not(http1_name_eq(s, "content-lengths"));
	cr_expect_not(http1_name_eq((struct http1_slice){ "", 0 }, "a"));
	cr_expect(http1_name_eq((struct http1_slice){ "", 0 }, ""));
}

/* ---- chunked framing ------------------------------------------------------------------ */

struct chunk_case {
	const char *head;	/* NUL-terminated start */
	char fill;		/* then nfill copies of fill */
	size_t nfill;
	const char *tail;	/* then tail[0..tlen) */
	size_t tlen;
	ssize_t want;		/* bytes consumed, or HTTP1_* code; ALL: every byte */
	int done;
};

#define ALL		((ssize_t)1 << 40)
#define CK(s, w, d)	{ s, 0, 0, "", 0, w, d }
#define CKF(h, f, n, t, w, d) { h, f, n, t, sizeof(t) - 1, w, d }

static char *build_chunk(const struct chunk_case *c, size_t *len)
{
	size_t hl = strlen(c->head);
	char *s = malloc(hl + c->nfill + c->tlen + 1);

	cr_assert_not_null(s);
	memcpy(s, c->head, hl);
	memset(s + hl, c->fill, c->nfill);
	memcpy(s + hl + c->nfill, c->tail, c->tlen);
	*len = hl + c->nfill + c->tlen;
	return s;
}

/*
 * Feed in[0..len) in pieces of at most step bytes after a first piece of split bytes.
 * Each piece is copied to end at the guard page of one buffer mapped per call.
 */
static ssize_t scan_pieces(const char *in, size_t len, size_t split, size_t step, int *done)
{
	char *buf = guard_copy(in, len), *end = buf + len;
	struct http1_chunked ck;
	size_t off = 0, piece = split;
	ssize_t total = 0, n;

	cr_assert_not_null(buf);
	http1_chunked_init(&ck);
	*done = 0;
	do {
		if (piece > len - off)
			piece = len - off;
		memcpy(end - piece, in + off, piece);
		n = http1_chunked_scan(&ck, end - piece, piece, done);
		if (n < 0)
			break;
		cr_assert_leq((size_t)n, piece);
		total += n;
		off += piece;
		piece = step;
	} while (!*done && off < len);
	guard_free(buf, len);
	return n < 0 ? n : total;
}

static void expect_chunked(const struct chunk_case *c, int every_split)
{
	size_t len, k;
	char *in = build_chunk(c, &len);
	ssize_t want = c->want == ALL ? (ssize_t)len : c->want, n;
	int done;

	n = scan_pieces(in, len, len, len, &done);
	cr_expect_eq(n, want, "\"%s\"+%zu: got %zd (%s)", c->head, c->nfill, n,
		     http1_strerror((int)n));
	if (n >= 0)
		cr_expect_eq(done, c->done, "\"%s\": done %d", c->head, done);
	for (k = 0; every_split && k <= len; k++) {
		n = scan_pieces(in, len, k, len, &done);
		cr_expect_eq(n, want, "\"%s\" split at %zu: got %zd", c->head, k, n);
		if (n >= 0)
			cr_expect_eq(done, c->done);
	}
	n = scan_pieces(in, len, 1, 1, &done);
	cr_expect_eq(n, want, "\"%s\" byte at a time: got %zd", c->head, n);
	if (n >= 0)
		cr_expect_eq(done, c->done);
	free(in);
}

static struct criterion_test_params chunk_params(const struct chunk_case *src, size_t n)
{
	struct chunk_case *p = cr_malloc(n * sizeof(*p));
	size_t i;

	cr_assert_not_null(p);
	for (i = 0; i < n; i++) {
		p[i] = src[i];
		p[i].head = cr_dup(src[i].head, strlen(src[i].head));
		p[i].tail = cr_dup(src[i].tail, src[i].tlen);
	}
	return cr_make_param_array(struct chunk_case, p, n);
}

/* VALID */
ParameterizedTestParameters(http1, frames_valid_chunked_bodies)
{
	static struct chunk_case cases[] = {
		CK("0\r\n\r\n", ALL, 1),
		CK("5\r\nhello\r\n0\r\n\r\n", ALL, 1),
		CK("5;name=value;x=\"q s\"\r\nhello\r\n0\r\n\r\n", ALL, 1),
		CK("A\r\n0123456789\r\na\r\n0123456789\r\n0\r\n\r\n", ALL, 1),
		CK("0005\r\nhello\r\n000\r\n\r\n", ALL, 1),
		CK("3\r\n\r\n\n\r\n0\r\n\r\n", ALL, 1),
		CK("0\r\nX-Trailer: v\r\nChecksum:\tabc \r\n\r\n", ALL, 1),
		CK("0;ext\r\nT: v\r\n\r\n", ALL, 1),
		CK("0\r\n\r\nGET / HTTP/1.1\r\n", 5, 1),
		CK("1\r\nx\r\n0\r\n\r\n0\r\n\r\n", 11, 1),
		CK("5\r\nhel", ALL, 0),
		CK("5\r\nhello\r\n", ALL, 0),
		CK("0\r\nT: v\r\n", ALL, 0),
		CK("7fffffffffffffff\r\nabc", ALL, 0),
		CKF("", '0', HTTP1_MAX_CHUNK_LINE - 3, "5\r\nhello\r\n0\r\n\r\n", ALL, 1),
	};

	return chunk_params(cases, ARRAY_SIZE(cases));
}

ParameterizedTest(struct chunk_case *c, http1, frames_valid_chunked_bodies)
{
	expect_chunked(c, c->nfill == 0);
}

/* MALFORMED */
ParameterizedTestParameters(http1, rejects_malformed_chunks)
{
	static struct chunk_case cases[] = {
		CK("\r\n", HTTP1_ERR_CHUNK_SIZE, 0),
		CK(";x\r\n", HTTP1_ERR_CHUNK_SIZE, 0),
		CK("x\r\n", HTTP1_ERR_CHUNK_SIZE, 0),
		CK(" 5\r\nhello\r\n0\r\n\r\n", HTTP1_ERR_CHUNK_SIZE, 0),
		CK("5 \r\nhello\r\n0\r\n\r\n", HTTP1_ERR_CHUNK_SIZE, 0),
		CK("5 ;x\r\nhello\r\n0\r\n\r\n", HTTP1_ERR_CHUNK_SIZE, 0),
		CK("+5\r\nhello\r\n0\r\n\r\n", HTTP1_ERR_CHUNK_SIZE, 0),
		CK("-5\r\n", HTTP1_ERR_CHUNK_SIZE, 0),
		CK("0x5\r\nhello\r\n0\r\n\r\n", HTTP1_ERR_CHUNK_SIZE, 0),
		CK("5\nhello\r\n0\r\n\r\n", HTTP1_ERR_CHUNK_SIZE, 0),
		CK("5\rhello\r\n0\r\n\r\n", HTTP1_ERR_CHUNK_SIZE, 0),
		CK("5;a\x01\r\nhello\r\n0\r\n\r\n", HTTP1_ERR_CHUNK_SIZE, 0),
		CK("5;a\nhello\r\n0\r\n\r\n", HTTP1_ERR_CHUNK_SIZE, 0),
		CK("5\r\nhelloX\r\n0\r\n\r\n", HTTP1_ERR_CHUNK_FRAMING, 0),
		CK("5\r\nhello\n0\r\n\r\n", HTTP1_ERR_CHUNK_FRAMING, 0),
		CK("5\r\nhello\r0\r\n\r\n", HTTP1_ERR_CHUNK_FRAMING, 0),
		CK("5\r\nhello0\r\n\r\n", HTTP1_ERR_CHUNK_FRAMING, 0),
		CK("0\r\nX: a\r\n b\r\n\r\n", HTTP1_ERR_CHUNK_FRAMING, 0),
		CK("0\r\nNo-Colon\r\n\r\n", HTTP1_ERR_CHUNK_FRAMING, 0),
		CK("0\r\nX : a\r\n\r\n", HTTP1_ERR_CHUNK_FRAMING, 0),
		CK("0\r\nX: a\x01\r\n\r\n", HTTP1_ERR_CHUNK_FRAMING, 0),
		CK("0\r\nX: a\nY: b\r\n\r\n", HTTP1_ERR_CHUNK_FRAMING, 0),
		CK("0\r\nX: a\rb\r\n\r\n", HTTP1_ERR_CHUNK_FRAMING, 0),
		CK("0\r\n\n", HTTP1_ERR_CHUNK_FRAMING, 0),
		CK("0\r\n\rX", HTTP1_ERR_CHUNK_FRAMING, 0),
		CK("8000000000000000\r\n", HTTP1_ERR_CHUNK_OVERFLOW, 0),
		CK("ffffffffffffffffff\r\n", HTTP1_ERR_CHUNK_OVERFLOW, 0),
		CK("00000000000000000010000000000000000\r\n", HTTP1_ERR_CHUNK_OVERFLOW, 0),
	};

	return chunk_params(cases, ARRAY_SIZE(cases));
}

ParameterizedTest(struct chunk_case *c, http1, rejects_malformed_chunks)
{
	expect_chunked(c, 1);
}

/* TOO LONG */
ParameterizedTestParameters(http1, bounds_chunk_lines_and_trailers)
{
	static struct chunk_case cases[] = {
		CKF("", '0', HTTP1_MAX_CHUNK_LINE - 2, "5\r\n", HTTP1_ERR_CHUNK_SIZE, 0),
		CKF("", '0', 100000, "5\r\n", HTTP1_ERR_CHUNK_SIZE, 0),
		CKF("5;", 'e', HTTP1_MAX_CHUNK_LINE - 4, "\r\nhello", ALL, 0),
		CKF("5;", 'e', HTTP1_MAX_CHUNK_LINE - 3, "\r\nhello", HTTP1_ERR_CHUNK_SIZE, 0),
		CKF("0\r\nT: ", 'v', HTTP1_MAX_HEAD - 7, "\r\n\r\n", ALL, 1),
		CKF("0\r\nT: ", 'v', HTTP1_MAX_HEAD - 6, "\r\n\r\n", HTTP1_ERR_TOO_LARGE, 0),
	};

	return chunk_params(cases, ARRAY_SIZE(cases));
}

ParameterizedTest(struct chunk_case *c, http1, bounds_chunk_lines_and_trailers)
{
	expect_chunked(c, 0);
}

Test(http1, chunked_scan_after_done_consumes_nothing)
{
	static const char in[] = "3\r\nabc\r\n0\r\n\r\nGET";
	struct http1_chunked ck;
	int done = 0;

	http1_chunked_init(&ck);
	cr_expect_eq(http1_chunked_scan(&ck, in, sizeof(in) - 1, &done), 13);
	cr_expect_eq(done, 1);
	done = 0;
	cr_expect_eq(http1_chunked_scan(&ck, in + 13, 3, &done), 0);
	cr_expect_eq(done, 1);
}

Test(http1, chunked_error_is_sticky_and_remain_is_tracked)
{
	struct http1_chunked ck;
	int done = 0;

	http1_chunked_init(&ck);
	cr_expect_eq(http1_chunked_scan(&ck, "1a\r\nxy", 6, &done), 6);
	cr_expect_eq(ck.remain, 0x1a - 2);
	cr_expect_eq(http1_chunked_scan(&ck, "", 0, &done), 0);
	http1_chunked_init(&ck);
	cr_expect_eq(http1_chunked_scan(&ck, "g", 1, &done), HTTP1_ERR_CHUNK_SIZE);
	cr_expect_eq(http1_chunked_scan(&ck, "0\r\n\r\n", 5, &done), HTTP1_ERR_CHUNK_SIZE);
	cr_expect_eq(done, 0);
}
