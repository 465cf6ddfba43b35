/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Copyright (c) 2026 The lanyard authors */
/*
 * Strict HTTP/1.1 request-head parser and chunked-body framing (RFC 9110,
 * RFC 9112).  Pure functions over {ptr, len} slices of the caller's buffer:
 * nothing is copied, nothing is allocated.  Anything ambiguous is an error:
 * lanyardd answers it itself, before any credential is attached.
 */
#ifndef LY_HTTP1_H
#define LY_HTTP1_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define HTTP1_MAX_HEAD		(64 * 1024)	/* request line + fields + CRLF; larger -> 431 */
#define HTTP1_MAX_HEADERS	128		/* more fields -> 431 */
#define HTTP1_MAX_CHUNK_LINE	4096		/* chunk-size line incl. extensions */

/* return codes: >= 0 success (bytes), < 0 one of these */
enum http1_err {
	HTTP1_PARTIAL = -1,		/* need more bytes (not an error) */
	HTTP1_ERR_SYNTAX = -2,		/* malformed request line or field */
	HTTP1_ERR_BARE_LF = -3,		/* LF without CR (RFC 9112 2.2: we refuse) */
	HTTP1_ERR_OBS_FOLD = -4,	/* obs-fold line continuation (RFC 9112 5.2) */
	HTTP1_ERR_CL_TE = -5,		/* Content-Length with Transfer-Encoding (RFC 9112 6.1) */
	HTTP1_ERR_DUP_CL = -6,		/* differing Content-Length values (RFC 9112 6.3) */
	HTTP1_ERR_BAD_CL = -7,		/* Content-Length not 1*DIGIT or overflowing */
	HTTP1_ERR_BAD_TE = -8,		/* Transfer-Encoding other than a final "chunked" */
	HTTP1_ERR_HOST = -9,		/* missing (1.1) or repeated Host */
	HTTP1_ERR_VERSION = -10,	/* not HTTP/1.0 or HTTP/1.1 -> 505 */
	HTTP1_ERR_TOO_LARGE = -11,	/* head over HTTP1_MAX_HEAD or too many fields -> 431 */
	HTTP1_ERR_CHUNK_SIZE = -12,	/* chunk-size not HEXDIG / bad line -> 400 */
	HTTP1_ERR_CHUNK_OVERFLOW = -13,	/* chunk-size over 2^63 -> 400 */
	HTTP1_ERR_CHUNK_FRAMING = -14,	/* missing CRLF after chunk data, bad trailer -> 400 */
	HTTP1_ERR_METHOD = -15,		/* method not a token -> 400 */
	HTTP1_ERR_TARGET = -16,		/* request-target with CTL/space/non-ASCII -> 400 */
};

struct http1_slice {
	const char *ptr;	/* borrows the caller's buffer */
	size_t len;
};

struct http1_header {
	struct http1_slice name;	/* as sent (case preserved) */
	struct http1_slice value;	/* OWS trimmed on both sides */
};

enum http1_body {
	HTTP1_BODY_NONE = 0,
	HTTP1_BODY_LENGTH,	/* content_length bytes follow the head */
	HTTP1_BODY_CHUNKED,	/* chunked coding; frame with http1_chunked_* */
};

/* http1_request.flags */
#define HTTP1_F_EXPECT_CONTINUE	(1U << 0)	/* Expect: 100-continue */
#define HTTP1_F_CONN_CLOSE	(1U << 1)	/* Connection: close (or 1.0 without keep-alive) */
#define HTTP1_F_UPGRADE		(1U << 2)	/* Upgrade header present, or CONNECT */

struct http1_request {
	struct http1_slice method;
	struct http1_slice target;	/* request-target as sent */
	struct http1_slice host;	/* Host field value; len 0 when absent (1.0) */
	int minor_version;		/* 0 or 1 */
	unsigned int flags;		/* HTTP1_F_* */
	enum http1_body body;
	uint64_t content_length;	/* when body == HTTP1_BODY_LENGTH */
	size_t nheaders;
	struct http1_header headers[HTTP1_MAX_HEADERS];
};

/*
 * Parse one request head at the start of buf[0..len).
 * Returns the length of the head (through the empty line's CRLF) on success,
 * HTTP1_PARTIAL when the head is incomplete (and len < HTTP1_MAX_HEAD), or a
 * negative enum http1_err.  On success every slice in req points into buf.
 * Never reads beyond buf[len - 1].
 */
ssize_t http1_parse_request(const char *buf, size_t len, struct http1_request *req);

/* HTTP status lanyardd answers an error with (400, 431, 501, 505). */
int http1_err_status(int err);
/* short constant reason for an error code, safe to show to a client */
const char *http1_strerror(int err);

/* Case-insensitive field-name comparison against a NUL-terminated name. */
int http1_name_eq(struct http1_slice name, const char *lower_name);

/* Incremental chunked-coding framer (RFC 9112 7.1): tracks, never rewrites. */
struct http1_chunked {
	int state;		/* private */
	uint64_t remain;	/* data bytes left in the current chunk */
	size_t line;		/* bytes in the current size/trailer line (limit) */
	int saw_digit;		/* private */
};

void http1_chunked_init(struct http1_chunked *c);

/*
 * Scan buf[0..len) as the continuation of a chunked body.
 * Returns the number of bytes that belong to the body (<= len), and sets
 * *done = 1 when those bytes end the message (last-chunk, trailers, CRLF),
 * or a negative enum http1_err.  Bytes after the end of the message are not
 * consumed (they are the next pipelined request).
 */
ssize_t http1_chunked_scan(struct http1_chunked *c, const char *buf, size_t len, int *done);

#endif /* LY_HTTP1_H */
