// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Copyright (c) 2026 The lanyard authors */
/*
 * libFuzzer driver for userspace/http1.c: parses the input as a request head, frames a
 * chunked body after it, and checks the parser's invariants (bounds, slices, splits).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "http1.h"

static int in_range(struct http1_slice s, const char *buf, size_t len)
{
	return s.ptr >= buf && s.len <= len && s.ptr + s.len <= buf + len;
}

static int has_crlf_or_ws_edge(struct http1_slice s)
{
	if (memchr(s.ptr, '\r', s.len) || memchr(s.ptr, '\n', s.len))
		return 1;
	return s.len && (s.ptr[0] == ' ' || s.ptr[0] == '\t' || s.ptr[s.len - 1] == ' ' ||
			 s.ptr[s.len - 1] == '\t');
}

/* Re-parse buf[0..len) from an exact-size heap copy, so ASan sees any over-read. */
static ssize_t parse_copy(const char *buf, size_t len, struct http1_request *req)
{
	char *copy = malloc(len ? len : 1);
	ssize_t n;

	CHECK(copy);
	memcpy(copy, buf, len);
	n = http1_parse_request(copy, len, req);
	free(copy);
	return n;
}

static void check_request(const char *buf, size_t size, ssize_t n, const struct http1_request *req)
{
	static struct http1_request again;
	size_t i;

	CHECK((size_t)n <= size && n <= HTTP1_MAX_HEAD && n >= 4);
	CHECK(!memcmp(buf + n - 4, "\r\n\r\n", 4));
	CHECK(req->method.len && in_range(req->method, buf, (size_t)n));
	CHECK(req->target.len && in_range(req->target, buf, (size_t)n));
	CHECK(!req->host.len || in_range(req->host, buf, (size_t)n));
	CHECK(req->minor_version == 0 || req->minor_version == 1);
	CHECK(req->nheaders <= HTTP1_MAX_HEADERS);
	CHECK(req->body != HTTP1_BODY_CHUNKED || req->minor_version == 1);
	CHECK(req->body != HTTP1_BODY_LENGTH || req->content_length <= INT64_MAX);
	for (i = 0; i < req->nheaders; i++) {
		const struct http1_header *h = &req->headers[i];

		CHECK(h->name.len && in_range(h->name, buf, (size_t)n));
		CHECK(in_range(h->value, buf, (size_t)n));
		CHECK(!has_crlf_or_ws_edge(h->name) && !has_crlf_or_ws_edge(h->value));
	}
	/* the head alone parses the same; one byte less is only incomplete */
	CHECK(parse_copy(buf, (size_t)n, &again) == n);
	CHECK(again.nheaders == req->nheaders && again.flags == req->flags);
	CHECK(parse_copy(buf, (size_t)n - 1, &again) == HTTP1_PARTIAL);
}

/* Frame buf[0..len) in pieces: first split bytes, then step bytes at a time. */
static ssize_t scan_split(const char *buf, size_t len, size_t split, size_t step, int *done)
{
	struct http1_chunked ck;
	size_t off = 0, piece = split;
	ssize_t total = 0, n;

	http1_chunked_init(&ck);
	*done = 0;
	do {
		if (piece > len - off)
			piece = len - off;
		n = http1_chunked_scan(&ck, buf + off, piece, done);
		if (n < 0)
			return n;
		CHECK((size_t)n <= piece);
		CHECK(*done || (size_t)n == piece);
		total += n;
		off += piece;
		piece = step;
	} while (!*done && off < len);
	return total;
}

/* Any split of a chunked body must frame it identically. */
static void check_chunked(const char *buf, size_t len, size_t split)
{
	ssize_t whole, n;
	int done, d;

	whole = scan_split(buf, len, len, len, &done);
	CHECK(whole >= HTTP1_ERR_TARGET && (whole < 0 || (size_t)whole <= len));
	if (whole > 0 && done)
		CHECK(whole >= 5 && !memcmp(buf + whole - 2, "\r\n", 2));
	n = scan_split(buf, len, split % (len + 1), len, &d);
	CHECK(n == whole && (n < 0 || d == done));
	if (len <= 4096) {
		n = scan_split(buf, len, 1, 1, &d);
		CHECK(n == whole && (n < 0 || d == done));
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct http1_request req;
	const char *buf = (const char *)data;
	size_t split = size ? data[size - 1] * 31u + data[0] : 0;
	ssize_t n;

	n = http1_parse_request(buf, size, &req);
	CHECK(n >= HTTP1_ERR_TARGET);
	CHECK(n != HTTP1_PARTIAL || size < HTTP1_MAX_HEAD);
	CHECK(http1_strerror((int)n) != NULL);
	if (n < 0) {
		CHECK(http1_err_status((int)n) >= 400);
	} else {
		check_request(buf, size, n, &req);
		if (req.body == HTTP1_BODY_CHUNKED)
			check_chunked(buf + n, size - (size_t)n, split);
	}
	/* the framer on its own, so it is fuzzed without needing a valid head first */
	check_chunked(buf, size, split);
	return 0;
}
