// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Copyright (c) 2026 The lanyard authors */
/*
 * Strict HTTP/1.1 request-head parser and chunked-body framer (RFC 9110, RFC 9112).
 * Pure: slices into the caller's buffer, no allocation, never reads past len.
 */
#include <stdint.h>
#include <string.h>

#include "http1.h"

/*
 * Choices this parser makes where RFC 9112 leaves room (all in the strict direction,
 * because lanyardd must never frame a message differently from the upstream):
 * - Lines end in CRLF only; a bare LF is HTTP1_ERR_BARE_LF, a CR not followed by LF is
 *   HTTP1_ERR_SYNTAX (RFC 9112 2.2).  Errors are reported line by line, once the line's
 *   CRLF has arrived; until then the answer is HTTP1_PARTIAL.
 * - Empty lines (CRLF only) before the request-line are skipped (RFC 9112 2.2) and are
 *   counted in the returned head length.
 * - A version that starts with "HTTP/" but is not 1.0 or 1.1 is HTTP1_ERR_VERSION (505);
 *   anything else after the target (missing, extra spaces) is HTTP1_ERR_SYNTAX.
 * - Content-Length: 1*DIGIT, at most INT64_MAX; the list form ("5, 5") is refused with
 *   HTTP1_ERR_BAD_CL; a repeated field is accepted only when byte-identical, else
 *   HTTP1_ERR_DUP_CL (RFC 9112 6.3 item 5 lets us reject all of these).  Any
 *   Content-Length, 0 included, gives HTTP1_BODY_LENGTH.
 * - Transfer-Encoding: exactly one field whose value is "chunked" (any case); lists such
 *   as "gzip, chunked", a repeated field, or TE in HTTP/1.0 are HTTP1_ERR_BAD_TE, which
 *   answers 501 (RFC 9112 6.1: unsupported coding).
 * - Host: exactly one in HTTP/1.1, at most one in 1.0, and its value limited to the
 *   characters of RFC 3986 host [":" port] (so no userinfo "@", no whitespace).
 * - Expect: 100-continue is flagged in HTTP/1.1 only (RFC 9110 10.1.1).
 * - Chunked: no whitespace around chunk-size (BWS before ";" refused too), size line
 *   <= HTTP1_MAX_CHUNK_LINE bytes with its CRLF, trailer section <= HTTP1_MAX_HEAD.
 */

#define HTTP1_MAX_CL	((uint64_t)INT64_MAX)

/*
 * RFC 9110 5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." /
 * "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA
 */
static int is_tchar(unsigned char ch)
{
	if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'))
		return 1;
	return ch && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

/* RFC 9110 5.5: field-vchar / SP / HTAB (obs-text allowed, CTL and DEL refused) */
static int is_value_char(unsigned char ch)
{
	return ch == '\t' || (ch >= 0x20 && ch != 0x7f);
}

/* RFC 3986 3.2.2/3.2.3: reg-name, IP-literal, IPv4 and ":" port, nothing else */
static int is_host_char(unsigned char ch)
{
	if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'))
		return 1;
	return ch && strchr("-._~%!$&'()*+,;=:[]", ch) != NULL;
}

static int hex_value(unsigned char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

static int lower(unsigned char ch)
{
	return ch >= 'A' && ch <= 'Z' ? ch + ('a' - 'A') : ch;
}

int http1_name_eq(struct http1_slice name, const char *lower_name)
{
	size_t i;

	for (i = 0; i < name.len; i++) {
		if (!lower_name[i] || lower((unsigned char)name.ptr[i]) != lower_name[i])
			return 0;
	}
	return lower_name[i] == '\0';
}

static int slice_eq(struct http1_slice a, struct http1_slice b)
{
	return a.len == b.len && !memcmp(a.ptr, b.ptr, a.len);
}

/* ---- request head ------------------------------------------------------------------ */

/* Parser state shared by the line handlers while one head is parsed. */
struct head_state {
	struct http1_request *req;
	struct http1_slice cl;		/* first Content-Length value seen */
	int have_cl;
	int have_te;
	int have_host;
	int keep_alive;			/* Connection: keep-alive seen (matters for 1.0) */
};

/*
 * Find the end of the line starting at p: returns the number of bytes before its CR
 * (the line is p[0..n) followed by CRLF), HTTP1_PARTIAL when no line end is in
 * [p, end) yet, HTTP1_ERR_BARE_LF or HTTP1_ERR_SYNTAX (CR not followed by LF).
 */
static ssize_t line_end(const char *p, const char *end)
{
	const char *s;

	for (s = p; s < end; s++) {
		if (*s == '\n')
			return HTTP1_ERR_BARE_LF;
		if (*s != '\r')
			continue;
		if (s + 1 == end)
			return HTTP1_PARTIAL;
		if (s[1] != '\n')
			return HTTP1_ERR_SYNTAX;
		return s - p;
	}
	return HTTP1_PARTIAL;
}

/* "HTTP/" DIGIT "." DIGIT, only 1.0 and 1.1 spoken (RFC 9112 2.3); sets minor_version. */
static int parse_version(const char *p, size_t len, struct http1_request *req)
{
	if (memchr(p, ' ', len))
		return HTTP1_ERR_SYNTAX;	/* can't tell the target's end: refuse */
	if (len < 5 || memcmp(p, "HTTP/", 5))
		return HTTP1_ERR_SYNTAX;
	if (len != 8 || p[5] != '1' || p[6] != '.' || (p[7] != '0' && p[7] != '1'))
		return HTTP1_ERR_VERSION;
	req->minor_version = p[7] - '0';
	return 0;
}

/* request-line = method SP request-target SP HTTP-version (RFC 9112 3), CRLF excluded. */
static int parse_request_line(const char *p, size_t len, struct http1_request *req)
{
	size_t i = 0, start;

	while (i < len && is_tchar((unsigned char)p[i]))
		i++;
	if (i == 0 || i == len || p[i] != ' ')
		return HTTP1_ERR_METHOD;
	req->method = (struct http1_slice){ p, i };
	start = ++i;
	/* RFC 9112 3.2: visible US-ASCII only; whitespace, CTL and bytes >= 0x80 refused */
	while (i < len && p[i] > 0x20 && p[i] < 0x7f)
		i++;
	if (i == start)
		return HTTP1_ERR_TARGET;
	if (i == len)
		return HTTP1_ERR_SYNTAX;	/* no version: HTTP/0.9 is not spoken */
	if (p[i] != ' ')
		return HTTP1_ERR_TARGET;
	req->target = (struct http1_slice){ p + start, i - start };
	i++;
	return parse_version(p + i, len - i, req);
}

/* Content-Length = 1*DIGIT (RFC 9110 8.6), no list form, no overflow. */
static int parse_content_length(struct http1_slice v, uint64_t *out)
{
	uint64_t n = 0;
	size_t i;

	if (v.len == 0)
		return HTTP1_ERR_BAD_CL;
	for (i = 0; i < v.len; i++) {
		unsigned int d = (unsigned char)v.ptr[i] - '0';

		if (d > 9 || n > (HTTP1_MAX_CL - d) / 10)
			return HTTP1_ERR_BAD_CL;
		n = n * 10 + d;
	}
	*out = n;
	return 0;
}

/* Framing fields: Content-Length and Transfer-Encoding (RFC 9112 6.1-6.3). */
static int field_framing(struct head_state *st, const struct http1_header *h)
{
	struct http1_request *req = st->req;
	uint64_t cl;
	int err;

	if (http1_name_eq(h->name, "content-length")) {
		err = parse_content_length(h->value, &cl);
		if (err)
			return err;
		/* RFC 9112 6.3 item 5: repeated CL only if identical, else reject */
		if (st->have_cl && !slice_eq(st->cl, h->value))
			return HTTP1_ERR_DUP_CL;
		st->have_cl = 1;
		st->cl = h->value;
		req->content_length = cl;
	} else if (http1_name_eq(h->name, "transfer-encoding")) {
		/* RFC 9112 6.1: a second field would apply chunked twice; 1.0 must not use TE */
		if (st->have_te || req->minor_version == 0)
			return HTTP1_ERR_BAD_TE;
		if (!http1_name_eq(h->value, "chunked"))
			return HTTP1_ERR_BAD_TE;
		st->have_te = 1;
	} else {
		return 0;
	}
	/* RFC 9112 6.1: CL with TE is a smuggling vector; we refuse rather than drop CL */
	return st->have_cl && st->have_te ? HTTP1_ERR_CL_TE : 0;
}

/* Connection = #connection-option (RFC 9110 7.6.1): note close and keep-alive. */
static void field_connection(struct head_state *st, struct http1_slice v)
{
	size_t i = 0;

	while (i < v.len) {
		struct http1_slice tok;
		size_t s, e;

		while (i < v.len && (v.ptr[i] == ' ' || v.ptr[i] == '\t' || v.ptr[i] == ','))
			i++;
		s = i;
		while (i < v.len && v.ptr[i] != ',')
			i++;
		e = i;
		while (e > s && (v.ptr[e - 1] == ' ' || v.ptr[e - 1] == '\t'))
			e--;
		tok = (struct http1_slice){ v.ptr + s, e - s };
		if (http1_name_eq(tok, "close"))
			st->req->flags |= HTTP1_F_CONN_CLOSE;
		else if (http1_name_eq(tok, "keep-alive"))
			st->keep_alive = 1;
	}
}

/* Fields whose meaning lanyardd needs: framing, Host, Connection, Expect, Upgrade. */
static int field_semantics(struct head_state *st, const struct http1_header *h)
{
	struct http1_request *req = st->req;
	size_t i;

	if (http1_name_eq(h->name, "host")) {
		/* RFC 9112 3.2: more than one Host is a 400 */
		if (st->have_host)
			return HTTP1_ERR_HOST;
		for (i = 0; i < h->value.len; i++) {
			if (!is_host_char((unsigned char)h->value.ptr[i]))
				return HTTP1_ERR_HOST;
		}
		st->have_host = 1;
		req->host = h->value;
	} else if (http1_name_eq(h->name, "connection")) {
		field_connection(st, h->value);
	} else if (http1_name_eq(h->name, "expect")) {
		if (http1_name_eq(h->value, "100-continue"))
			req->flags |= HTTP1_F_EXPECT_CONTINUE;
	} else if (http1_name_eq(h->name, "upgrade")) {
		req->flags |= HTTP1_F_UPGRADE;
	}
	return field_framing(st, h);
}

/* field-line = field-name ":" OWS field-value OWS (RFC 9112 5), CRLF excluded. */
static int parse_field_line(const char *p, size_t len, struct http1_header *h)
{
	size_t i = 0, e;

	/* RFC 9112 5.2: obs-fold is refused, a line may not start with whitespace */
	if (p[0] == ' ' || p[0] == '\t')
		return HTTP1_ERR_OBS_FOLD;
	while (i < len && is_tchar((unsigned char)p[i]))
		i++;
	/* RFC 9112 5.1: no whitespace between field-name and colon, a 400 */
	if (i == 0 || i == len || p[i] != ':')
		return HTTP1_ERR_SYNTAX;
	h->name = (struct http1_slice){ p, i };
	for (e = ++i; e < len; e++) {
		if (!is_value_char((unsigned char)p[e]))
			return HTTP1_ERR_SYNTAX;
	}
	while (i < len && (p[i] == ' ' || p[i] == '\t'))
		i++;
	while (e > i && (p[e - 1] == ' ' || p[e - 1] == '\t'))
		e--;
	h->value = (struct http1_slice){ p + i, e - i };
	return 0;
}

/* Checks that need the whole head, and the body framing decision. */
static int finish_head(struct head_state *st)
{
	struct http1_request *req = st->req;

	/* RFC 9112 3.2: a 1.1 request without Host is a 400 */
	if (req->minor_version == 1 && !st->have_host)
		return HTTP1_ERR_HOST;
	if (req->minor_version == 0) {
		if (!st->keep_alive)
			req->flags |= HTTP1_F_CONN_CLOSE;
		/* RFC 9110 10.1.1: a 100-continue expectation in HTTP/1.0 is ignored */
		req->flags &= ~HTTP1_F_EXPECT_CONTINUE;
	}
	if (req->method.len == 7 && !memcmp(req->method.ptr, "CONNECT", 7))
		req->flags |= HTTP1_F_UPGRADE;
	if (st->have_te)
		req->body = HTTP1_BODY_CHUNKED;
	else if (st->have_cl)
		req->body = HTTP1_BODY_LENGTH;
	return 0;
}

/* Parse field lines from p until the empty line; returns bytes used or an error. */
static ssize_t parse_fields(struct head_state *st, const char *p, const char *end)
{
	struct http1_request *req = st->req;
	const char *s = p;
	ssize_t n;
	int err;

	for (;;) {
		n = line_end(s, end);
		if (n < 0)
			return n;
		if (n == 0)
			break;
		if (req->nheaders == HTTP1_MAX_HEADERS)
			return HTTP1_ERR_TOO_LARGE;
		err = parse_field_line(s, (size_t)n, &req->headers[req->nheaders]);
		if (!err)
			err = field_semantics(st, &req->headers[req->nheaders]);
		if (err)
			return err;
		req->nheaders++;
		s += n + 2;
	}
	err = finish_head(st);
	if (err)
		return err;
	return s + 2 - p;
}

static ssize_t parse_head(const char *buf, size_t len, struct http1_request *req)
{
	struct head_state st = { .req = req };
	const char *p = buf, *end = buf + len;
	ssize_t n;
	int err;

	/* RFC 9112 2.2: ignore empty lines before the request-line (CRLF only) */
	for (;;) {
		n = line_end(p, end);
		if (n != 0)
			break;
		p += 2;
	}
	if (n < 0)
		return n;
	err = parse_request_line(p, (size_t)n, req);
	if (err)
		return err;
	p += n + 2;
	n = parse_fields(&st, p, end);
	if (n < 0)
		return n;
	return p + n - buf;
}

ssize_t http1_parse_request(const char *buf, size_t len, struct http1_request *req)
{
	size_t lim = len < HTTP1_MAX_HEAD ? len : HTTP1_MAX_HEAD;
	ssize_t n;

	memset(req, 0, offsetof(struct http1_request, headers));
	n = parse_head(buf, lim, req);
	/* nothing complete within the first HTTP1_MAX_HEAD bytes: it never will be */
	if (n == HTTP1_PARTIAL && len >= HTTP1_MAX_HEAD)
		return HTTP1_ERR_TOO_LARGE;
	return n;
}

int http1_err_status(int err)
{
	switch (err) {
	case HTTP1_ERR_TOO_LARGE:
		return 431;
	case HTTP1_ERR_VERSION:
		return 505;
	case HTTP1_ERR_BAD_TE:
		return 501;	/* RFC 9112 6.1: transfer coding not understood */
	default:
		return 400;
	}
}

const char *http1_strerror(int err)
{
	switch (err) {
	case HTTP1_PARTIAL:
		return "incomplete request";
	case HTTP1_ERR_SYNTAX:
		return "malformed request";
	case HTTP1_ERR_BARE_LF:
		return "bare LF in request";
	case HTTP1_ERR_OBS_FOLD:
		return "obsolete line folding";
	case HTTP1_ERR_CL_TE:
		return "Content-Length with Transfer-Encoding";
	case HTTP1_ERR_DUP_CL:
		return "conflicting Content-Length";
	case HTTP1_ERR_BAD_CL:
		return "invalid Content-Length";
	case HTTP1_ERR_BAD_TE:
		return "unsupported Transfer-Encoding";
	case HTTP1_ERR_HOST:
		return "missing or invalid Host";
	case HTTP1_ERR_VERSION:
		return "HTTP version not supported";
	case HTTP1_ERR_TOO_LARGE:
		return "request header too large";
	case HTTP1_ERR_CHUNK_SIZE:
		return "invalid chunk size";
	case HTTP1_ERR_CHUNK_OVERFLOW:
		return "chunk size too large";
	case HTTP1_ERR_CHUNK_FRAMING:
		return "invalid chunked framing";
	case HTTP1_ERR_METHOD:
		return "invalid method";
	case HTTP1_ERR_TARGET:
		return "invalid request target";
	default:
		return "bad request";
	}
}

/* ---- chunked framing (RFC 9112 7.1) -------------------------------------------------- */

/*
 * One state per position in the grammar; every byte moves the machine, so any split
 * of the input gives the same result.  A failed framer keeps its error in c->state
 * (negative) and returns it again.
 */
enum {
	CK_SIZE,	/* chunk-size digits */
	CK_EXT,		/* ";" chunk-ext up to CR */
	CK_SIZE_LF,	/* LF ending the size line */
	CK_DATA,	/* c->remain bytes of chunk-data */
	CK_DATA_CR,	/* CRLF after chunk-data */
	CK_DATA_LF,
	CK_TRAILER,	/* start of a trailer field line, or the final CRLF */
	CK_TNAME,	/* trailer field-name */
	CK_TVALUE,	/* trailer field-value up to CR */
	CK_TLF,		/* LF ending a trailer field line */
	CK_END_LF,	/* LF of the final CRLF */
	CK_DONE,
};

void http1_chunked_init(struct http1_chunked *c)
{
	memset(c, 0, sizeof(*c));
	c->state = CK_SIZE;
}

/*
 * chunk-size [ chunk-ext ] CRLF.  chunk-size = 1*HEXDIG with nothing before it; BWS
 * before ";" is refused too (a lenient peer could read "5 x" as 5).  Leading zeros are
 * legal, so the line is bounded by HTTP1_MAX_CHUNK_LINE rather than by digit count.
 */
static int ck_size_byte(struct http1_chunked *c, unsigned char ch)
{
	int d;

	if (++c->line > HTTP1_MAX_CHUNK_LINE)
		return HTTP1_ERR_CHUNK_SIZE;
	switch (c->state) {
	case CK_SIZE:
		d = hex_value(ch);
		if (d >= 0) {
			/* RFC 9112 7.1: sizes must be checked for overflow; cap at 2^63 - 1 */
			if (c->remain >> 59)
				return HTTP1_ERR_CHUNK_OVERFLOW;
			c->remain = c->remain << 4 | (uint64_t)d;
			c->saw_digit = 1;
			return 0;
		}
		if (!c->saw_digit || (ch != ';' && ch != '\r'))
			return HTTP1_ERR_CHUNK_SIZE;
		c->state = ch == ';' ? CK_EXT : CK_SIZE_LF;
		return 0;
	case CK_EXT:
		if (ch == '\r')
			c->state = CK_SIZE_LF;
		else if (!is_value_char(ch))
			return HTTP1_ERR_CHUNK_SIZE;
		return 0;
	default: /* CK_SIZE_LF */
		if (ch != '\n')
			return HTTP1_ERR_CHUNK_SIZE;
		c->line = 0;
		c->saw_digit = 0;
		c->state = c->remain ? CK_DATA : CK_TRAILER;
		return 0;
	}
}

/*
 * trailer-section = *( field-line CRLF ) CRLF, validated like header fields (no
 * obs-fold, token names, no CTL in values) and bounded by HTTP1_MAX_HEAD in total.
 * Returns 1 when the final CRLF is complete.
 */
static int ck_trailer_byte(struct http1_chunked *c, unsigned char ch)
{
	if (++c->line > HTTP1_MAX_HEAD)
		return HTTP1_ERR_TOO_LARGE;
	switch (c->state) {
	case CK_TRAILER:
		if (ch == '\r')
			c->state = CK_END_LF;
		else if (is_tchar(ch))
			c->state = CK_TNAME;
		else
			return HTTP1_ERR_CHUNK_FRAMING;
		return 0;
	case CK_TNAME:
		if (ch == ':')
			c->state = CK_TVALUE;
		else if (!is_tchar(ch))
			return HTTP1_ERR_CHUNK_FRAMING;
		return 0;
	case CK_TVALUE:
		if (ch == '\r')
			c->state = CK_TLF;
		else if (!is_value_char(ch))
			return HTTP1_ERR_CHUNK_FRAMING;
		return 0;
	case CK_TLF:
		if (ch != '\n')
			return HTTP1_ERR_CHUNK_FRAMING;
		c->state = CK_TRAILER;
		return 0;
	default: /* CK_END_LF */
		if (ch != '\n')
			return HTTP1_ERR_CHUNK_FRAMING;
		c->state = CK_DONE;
		return 1;
	}
}

/* The CRLF that must follow chunk-data exactly (RFC 9112 7.1). */
static int ck_data_end_byte(struct http1_chunked *c, unsigned char ch)
{
	if (c->state == CK_DATA_CR) {
		if (ch != '\r')
			return HTTP1_ERR_CHUNK_FRAMING;
		c->state = CK_DATA_LF;
		return 0;
	}
	if (ch != '\n')
		return HTTP1_ERR_CHUNK_FRAMING;
	c->state = CK_SIZE;
	return 0;
}

ssize_t http1_chunked_scan(struct http1_chunked *c, const char *buf, size_t len, int *done)
{
	size_t i = 0;
	int r = 0;

	*done = 0;
	if (c->state < 0)
		return c->state;
	while (i < len && c->state != CK_DONE) {
		if (c->state == CK_DATA) {
			size_t n = len - i;

			if (n > c->remain)
				n = (size_t)c->remain;
			c->remain -= n;
			i += n;
			if (c->remain == 0)
				c->state = CK_DATA_CR;
			continue;
		}
		if (c->state <= CK_SIZE_LF)
			r = ck_size_byte(c, (unsigned char)buf[i]);
		else if (c->state <= CK_DATA_LF)
			r = ck_data_end_byte(c, (unsigned char)buf[i]);
		else
			r = ck_trailer_byte(c, (unsigned char)buf[i]);
		if (r < 0) {
			c->state = r;
			return r;
		}
		i++;
	}
	*done = c->state == CK_DONE;
	return (ssize_t)i;
}
