// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Copyright (c) 2026 The lanyard authors */
/*
 * Unit tests for userspace/tlshello.c: real ClientHellos captured from openssl, curl, Python
 * and GnuTLS (tools/fuzz/corpus/tlshello/), synthetic hellos for each rule, every length
 * field corrupted, refragmentation.  Every input ends at a PROT_NONE guard page.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tlshello.h"
#include "lib/guard.h"

TestSuite(tlshello, .timeout = 5);

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define WANT_OK	0	/* success: the whole input is the hello's records */

/*
 * Criterion runs each parameterized case in a fresh process image, so parameters
 * (and every string they point to) must live in its shared arena: cr_malloc copies.
 */
static void *cr_dup(const void *p, size_t n)
{
	char *d = cr_malloc(n + 1);

	cr_assert_not_null(d);
	memcpy(d, p, n);
	d[n] = '\0';
	return d;
}

static ssize_t parse_guarded(const uint8_t *in, size_t len, struct tlshello *h)
{
	char *buf = guard_copy(in, len);
	ssize_t n;

	cr_assert_not_null(buf);
	n = tlshello_parse((const uint8_t *)buf, len, h);
	guard_free(buf, len);
	return n;
}

/* ---- captured hellos ------------------------------------------------------------------- */

/* The corpus: from LY_SRCDIR, else from build/tests/unit/<exe>, else ".". */
static void corpus_path(const char *name, char *out, size_t outlen)
{
	const char *rel = "tools/fuzz/corpus/tlshello";
	char exe[PATH_MAX] = "";
	ssize_t n;

	if (getenv("LY_SRCDIR")) {
		snprintf(out, outlen, "%s/%s/%s", getenv("LY_SRCDIR"), rel, name);
		return;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = '\0';
		snprintf(out, outlen, "%s/%s/%s", dirname(dirname(dirname(dirname(exe)))), rel,
			 name);
		if (access(out, R_OK) == 0)
			return;
	}
	snprintf(out, outlen, "%s/%s", rel, name);
}

/* Read a captured hello (at most TLSHELLO_MAX bytes); caller frees. */
static uint8_t *load_hello(const char *name, size_t *len)
{
	char path[PATH_MAX];
	uint8_t *buf = malloc(TLSHELLO_MAX);
	FILE *f;

	cr_assert_not_null(buf);
	corpus_path(name, path, sizeof(path));
	f = fopen(path, "rb");
	cr_assert_not_null(f, "%s: %s (set LY_SRCDIR)", path, strerror(errno));
	*len = fread(buf, 1, TLSHELLO_MAX, f);
	fclose(f);
	cr_assert_gt(*len, 0);
	return buf;
}

/* Re-cut the handshake stream of a hello into records of at most size bytes; caller frees. */
static uint8_t *refragment(const uint8_t *in, size_t len, size_t size, size_t *outlen)
{
	uint8_t *hs = malloc(len), *out;
	size_t off = 0, n = 0, o = 0, frag;

	cr_assert_not_null(hs);
	while (off + 5 <= len) {
		frag = (size_t)in[off + 3] << 8 | in[off + 4];
		cr_assert_leq(off + 5 + frag, len);
		memcpy(hs + n, in + off + 5, frag);
		n += frag;
		off += 5 + frag;
	}
	out = malloc(n + (n / size + 1) * 5);
	cr_assert_not_null(out);
	for (off = 0; off < n; off += frag) {
		frag = n - off < size ? n - off : size;
		out[o++] = 0x16;
		out[o++] = 0x03;
		out[o++] = 0x01;
		out[o++] = (uint8_t)(frag >> 8);
		out[o++] = (uint8_t)frag;
		memcpy(out + o, hs + off, frag);
		o += frag;
	}
	free(hs);
	*outlen = o;
	return out;
}

struct capture_case {
	const char *file;
	ssize_t want;		/* WANT_OK or a TLSHELLO_* code */
	const char *sni;	/* "" when none */
	int http11, h2, other;
};

static struct capture_case captures[] = {
	/* VALID */
	{ "openssl_tls13_alpn", WANT_OK, "api.example.com", 1, 1, 0 },
	{ "openssl_tls12", WANT_OK, "api.example.com", 0, 0, 0 },	/* sent API.Example.COM */
	{ "openssl_nosni", WANT_OK, "", 0, 0, 0 },
	{ "openssl_frag", WANT_OK, "frag.example.net", 1, 1, 1 },	/* two records */
	{ "curl_h2", WANT_OK, "api.example.com", 1, 1, 0 },
	{ "curl_http11", WANT_OK, "www.example.org", 1, 0, 0 },
	{ "curl_ip", WANT_OK, "", 1, 1, 0 },			/* curl omits SNI for an IP */
	{ "python_ssl", WANT_OK, "mixed.case.example", 1, 0, 0 },
	{ "gnutls", WANT_OK, "gnutls.example.com", 1, 1, 0 },
	/* MALFORMED */
	{ "openssl_ip_sni", TLSHELLO_ERR_MALFORMED, "", 0, 0, 0 },	/* -servername 10.1.2.3 */
};

static struct criterion_test_params capture_params(void)
{
	struct capture_case *p = cr_malloc(sizeof(captures));
	size_t i;

	cr_assert_not_null(p);
	for (i = 0; i < ARRAY_SIZE(captures); i++) {
		p[i] = captures[i];
		p[i].file = cr_dup(captures[i].file, strlen(captures[i].file));
		p[i].sni = cr_dup(captures[i].sni, strlen(captures[i].sni));
	}
	return cr_make_param_array(struct capture_case, p, ARRAY_SIZE(captures));
}

static void expect_capture(const struct capture_case *c, const uint8_t *in, size_t len)
{
	struct tlshello h;
	ssize_t n = parse_guarded(in, len, &h);

	if (c->want != WANT_OK) {
		cr_expect_eq(n, c->want, "%s: got %zd (%s)", c->file, n, tlshello_strerror((int)n));
		return;
	}
	cr_expect_eq(n, (ssize_t)len, "%s: got %zd (%s), want %zu", c->file, n,
		     tlshello_strerror((int)n), len);
	cr_expect_eq(h.record_len, len, "%s", c->file);
	cr_expect_str_eq(h.sni, c->sni, "%s", c->file);
	cr_expect_eq(h.has_sni, c->sni[0] != '\0', "%s", c->file);
	cr_expect_eq(h.legacy_version, 0x0303, "%s", c->file);
	cr_expect_eq(h.alpn_http11, c->http11, "%s: http/1.1", c->file);
	cr_expect_eq(h.alpn_h2, c->h2, "%s: h2", c->file);
	cr_expect_eq(h.alpn_other, c->other, "%s: other", c->file);
	cr_expect_eq(h.has_ech, 0, "%s", c->file);
}

ParameterizedTestParameters(tlshello, reads_captured_client_hellos)
{
	return capture_params();
}

ParameterizedTest(struct capture_case *c, tlshello, reads_captured_client_hellos)
{
	size_t len;
	uint8_t *in = load_hello(c->file, &len);

	expect_capture(c, in, len);
	free(in);
}

/* Every proper prefix of a captured hello is incomplete, never an error. */
ParameterizedTestParameters(tlshello, every_prefix_of_captured_hello_is_partial)
{
	return capture_params();
}

ParameterizedTest(struct capture_case *c, tlshello, every_prefix_of_captured_hello_is_partial)
{
	struct tlshello h;
	size_t len, k;
	uint8_t *in = load_hello(c->file, &len);

	for (k = 0; k < len; k++) {
		ssize_t n = parse_guarded(in, k, &h);

		cr_expect_eq(n, TLSHELLO_PARTIAL, "%s prefix %zu: got %zd", c->file, k, n);
		cr_expect_eq(h.has_sni, 0);
	}
	free(in);
}

/* The same handshake message cut into records of any size reads the same. */
ParameterizedTestParameters(tlshello, refragmented_hello_reads_the_same)
{
	return capture_params();
}

ParameterizedTest(struct capture_case *c, tlshello, refragmented_hello_reads_the_same)
{
	static const size_t sizes[] = { 1, 2, 3, 4, 5, 7, 64, 200, 511, 16384 };
	size_t len, flen, i;
	uint8_t *in = load_hello(c->file, &len);

	for (i = 0; i < ARRAY_SIZE(sizes); i++) {
		uint8_t *f = refragment(in, len, sizes[i], &flen);

		expect_capture(c, f, flen);
		free(f);
	}
	free(in);
}

/* ---- every length field corrupted -------------------------------------------------------- */

struct len_field {
	size_t off;
	size_t width;	/* 1 or 2 bytes, big-endian */
	int realigns;	/* an ALPN name length: a wrong one may still split the list exactly */
};

static size_t get_be(const uint8_t *p, size_t width)
{
	return width == 1 ? p[0] : (size_t)p[0] << 8 | p[1];
}

/* Offsets of the length fields inside an extension's data (server_name and ALPN). */
static size_t ext_len_fields(const uint8_t *b, size_t data, size_t dlen, unsigned int type,
			     struct len_field *f, size_t nf)
{
	size_t p;

	if (type == 0) {	/* list length, then name_type and name length */
		f[nf++] = (struct len_field){ data, 2, 0 };
		f[nf++] = (struct len_field){ data + 3, 2, 0 };
	} else if (type == 16) {	/* list length, then each name's length */
		f[nf++] = (struct len_field){ data, 2, 0 };
		for (p = data + 2; p < data + dlen; p += 1 + b[p])
			f[nf++] = (struct len_field){ p, 1, 1 };
	}
	return nf;
}

/* Offsets of every length field under the handshake header of a one-record hello. */
static size_t find_len_fields(const uint8_t *b, size_t len, struct len_field *f)
{
	size_t nf = 0, p = 5 + 4 + 2 + 32, end;

	f[nf++] = (struct len_field){ p, 1, 0 };	/* legacy_session_id */
	p += 1 + b[p];
	f[nf++] = (struct len_field){ p, 2, 0 };	/* cipher_suites */
	p += 2 + get_be(b + p, 2);
	f[nf++] = (struct len_field){ p, 1, 0 };	/* legacy_compression_methods */
	p += 1 + b[p];
	if (p == len)
		return nf;
	f[nf++] = (struct len_field){ p, 2, 0 };	/* extensions */
	end = p + 2 + get_be(b + p, 2);
	cr_assert_eq(end, len);
	for (p += 2; p < end; p += 4 + get_be(b + p + 2, 2)) {
		f[nf++] = (struct len_field){ p + 2, 2, 0 };
		nf = ext_len_fields(b, p + 4, get_be(b + p + 2, 2), (unsigned int)get_be(b + p, 2),
				    f, nf);
	}
	return nf;
}

static void put_be(uint8_t *p, size_t width, size_t v)
{
	if (width == 2)
		*p++ = (uint8_t)(v >> 8);
	*p = (uint8_t)v;
}

ParameterizedTestParameters(tlshello, corrupted_length_field_is_malformed)
{
	return capture_params();
}

/*
 * Each inner length +1, -1, 0 and all-ones: MALFORMED, never a read past the end.  The one
 * exception is an ALPN name length, which is only checked against the list: a corrupted
 * one can re-split a long list (openssl_frag has 42 names) into other valid names.
 */
ParameterizedTest(struct capture_case *c, tlshello, corrupted_length_field_is_malformed)
{
	struct len_field fields[512];
	struct tlshello h;
	size_t len, one_len, nf, i, k;
	uint8_t *in = load_hello(c->file, &len), *one;

	if (c->want != WANT_OK) {
		free(in);
		return;
	}
	one = refragment(in, len, 16384, &one_len);	/* one record, to walk it simply */
	nf = find_len_fields(one, one_len, fields);
	cr_assert_gt(nf, 3);
	for (i = 0; i < nf; i++) {
		size_t w = fields[i].width, v = get_be(one + fields[i].off, w);
		size_t max = w == 1 ? 0xff : 0xffff;
		size_t vals[] = { (v + 1) & max, (v - 1) & max, 0, max };

		for (k = 0; k < ARRAY_SIZE(vals); k++) {
			ssize_t n;

			if (vals[k] == v)
				continue;
			put_be(one + fields[i].off, w, vals[k]);
			n = parse_guarded(one, one_len, &h);
			if (fields[i].realigns && n == (ssize_t)one_len)
				n = TLSHELLO_ERR_MALFORMED;
			cr_expect_eq(n, TLSHELLO_ERR_MALFORMED,
				     "%s: length at %zu set %zu -> %zu: got %zd (%s)", c->file,
				     fields[i].off, v, vals[k], n, tlshello_strerror((int)n));
			put_be(one + fields[i].off, w, v);
		}
	}
	cr_expect_eq(parse_guarded(one, one_len, &h), (ssize_t)one_len);
	free(one);
	free(in);
}

/* The record and handshake lengths: too long waits for more, too short or trailing is an error. */
Test(tlshello, corrupted_outer_lengths)
{
	struct tlshello h;
	size_t len;
	uint8_t *in = load_hello("curl_h2", &len), *big;

	cr_assert_eq(parse_guarded(in, len, &h), (ssize_t)len);
	cr_assert_eq(get_be(in + 3, 2), 512);
	put_be(in + 3, 2, 513);		/* record length + 1: one more byte to come */
	cr_expect_eq(parse_guarded(in, len, &h), TLSHELLO_PARTIAL);
	big = malloc(len + 1);
	cr_assert_not_null(big);
	memcpy(big, in, len);
	big[len] = 0;			/* ... which is a byte after the hello in its record */
	cr_expect_eq(parse_guarded(big, len + 1, &h), TLSHELLO_ERR_MALFORMED);
	free(big);
	put_be(in + 3, 2, 511);		/* record length - 1: padding byte starts a record */
	cr_expect_eq(parse_guarded(in, len, &h), TLSHELLO_ERR_MALFORMED);
	put_be(in + 3, 2, 0);		/* zero-length record */
	cr_expect_eq(parse_guarded(in, len, &h), TLSHELLO_ERR_MALFORMED);
	put_be(in + 3, 2, 0x4001);	/* 2^14 + 1 */
	cr_expect_eq(parse_guarded(in, len, &h), TLSHELLO_ERR_TOO_LARGE);
	put_be(in + 3, 2, 512);
	cr_assert_eq(get_be(in + 7, 2), 508);
	put_be(in + 7, 2, 509);		/* handshake length + 1: waits for a next record */
	cr_expect_eq(parse_guarded(in, len, &h), TLSHELLO_PARTIAL);
	put_be(in + 7, 2, 507);		/* handshake length - 1: a byte after the hello */
	cr_expect_eq(parse_guarded(in, len, &h), TLSHELLO_ERR_MALFORMED);
	in[6] = in[7] = in[8] = 0xff;
	cr_expect_eq(parse_guarded(in, len, &h), TLSHELLO_ERR_TOO_LARGE);
	free(in);
}

/* ---- synthetic hellos ------------------------------------------------------------------- */

#define RANDOM32	"0123456789abcdef0123456789abcdef"
/* legacy_version, random, empty session id, one suite, null compression: 41 bytes */
#define BODY_HEAD	"\x03\x03" RANDOM32 "\x00" "\x00\x02\x13\x01" "\x01\x00"
#define BODY_HEAD_LEN	(sizeof(BODY_HEAD) - 1)

/* Wrap a ClientHello body in a handshake header and one record; returns the length. */
static size_t wrap_body(uint8_t *out, const void *body, size_t blen)
{
	size_t frag = blen + 4;

	cr_assert_leq(frag, 0xffff);
	memcpy(out, "\x16\x03\x01", 3);
	put_be(out + 3, 2, frag);
	out[5] = 0x01;
	out[6] = (uint8_t)(blen >> 16);
	put_be(out + 7, 2, blen & 0xffff);
	memcpy(out + 9, body, blen);
	return 9 + blen;
}

/* A hello with BODY_HEAD and then an extension block holding exts[0..elen). */
static size_t build_hello(uint8_t *out, const void *exts, size_t elen)
{
	uint8_t *body = malloc(BODY_HEAD_LEN + 2 + elen);
	size_t n;

	cr_assert_not_null(body);
	memcpy(body, BODY_HEAD, BODY_HEAD_LEN);
	put_be(body + BODY_HEAD_LEN, 2, elen);
	memcpy(body + BODY_HEAD_LEN + 2, exts, elen);
	n = wrap_body(out, body, BODY_HEAD_LEN + 2 + elen);
	free(body);
	return n;
}

/* A hello whose only extension is server_name with the one host_name name[0..nlen). */
static size_t build_sni_hello(uint8_t *out, const void *name, size_t nlen)
{
	uint8_t *ext = malloc(9 + nlen);
	size_t n;

	cr_assert_not_null(ext);
	put_be(ext, 2, 0);		/* server_name */
	put_be(ext + 2, 2, nlen + 5);	/* extension data */
	put_be(ext + 4, 2, nlen + 3);	/* server_name_list */
	ext[6] = 0;			/* host_name */
	put_be(ext + 7, 2, nlen);
	memcpy(ext + 9, name, nlen);
	n = build_hello(out, ext, 9 + nlen);
	free(ext);
	return n;
}

struct bytes_case {
	const char *in;
	size_t len;
	ssize_t want;		/* WANT_OK (the whole built input) or a TLSHELLO_* code */
	const char *sni;	/* WANT_OK: the expected server name, "" for none */
};

#define OK_SNI(s, name)	{ s, sizeof(s) - 1, WANT_OK, name }
#define OK(s)		{ s, sizeof(s) - 1, WANT_OK, "" }
#define ERR(s, e)	{ s, sizeof(s) - 1, e, "" }

static struct criterion_test_params bytes_params(const struct bytes_case *src, size_t n)
{
	struct bytes_case *p = cr_malloc(n * sizeof(*p));
	size_t i;

	cr_assert_not_null(p);
	for (i = 0; i < n; i++) {
		p[i] = src[i];
		p[i].in = cr_dup(src[i].in, src[i].len);
		p[i].sni = cr_dup(src[i].sni, strlen(src[i].sni));
	}
	return cr_make_param_array(struct bytes_case, p, n);
}

/* Check a built input (len bytes at buf) against c; "what" names the input kind. */
static void expect_bytes(const struct bytes_case *c, const uint8_t *buf, size_t len)
{
	struct tlshello h;
	ssize_t n = parse_guarded(buf, len, &h);
	ssize_t want = c->want == WANT_OK ? (ssize_t)len : c->want;

	cr_expect_eq(n, want, "case \"%.*s\" (%zu bytes): got %zd (%s), want %zd (%s)",
		     (int)c->len, c->in, c->len, n, tlshello_strerror((int)n), want,
		     tlshello_strerror((int)want));
	if (c->want != WANT_OK)
		return;
	cr_expect_str_eq(h.sni, c->sni);
	cr_expect_eq(h.has_sni, c->sni[0] != '\0');
}

#define L63	"abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz0123456789a"
#define L61	"abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz012345678"

ParameterizedTestParameters(tlshello, checks_server_name)
{
	static struct bytes_case cases[] = {
		/* VALID */
		OK_SNI("example.com", "example.com"),
		OK_SNI("EXAMPLE.Com", "example.com"),
		OK_SNI("localhost", "localhost"),
		OK_SNI("a", "a"),
		OK_SNI("xn--caf-dma.example", "xn--caf-dma.example"),
		OK_SNI("123.example.com", "123.example.com"),
		OK_SNI("a-b.c--d.e1", "a-b.c--d.e1"),
		OK_SNI("1.2.3.x", "1.2.3.x"),
		OK_SNI(L63 ".example", L63 ".example"),
		OK_SNI(L63 "." L63 "." L63 "." L61, L63 "." L63 "." L63 "." L61),	/* 253 */
		/* MALFORMED */
		ERR("", TLSHELLO_ERR_MALFORMED),
		ERR("example.com.", TLSHELLO_ERR_MALFORMED),
		ERR(".example.com", TLSHELLO_ERR_MALFORMED),
		ERR("a..b", TLSHELLO_ERR_MALFORMED),
		ERR(".", TLSHELLO_ERR_MALFORMED),
		ERR("-a.example", TLSHELLO_ERR_MALFORMED),
		ERR("a-.example", TLSHELLO_ERR_MALFORMED),
		ERR("a.-b", TLSHELLO_ERR_MALFORMED),
		ERR("a.b-", TLSHELLO_ERR_MALFORMED),
		ERR("a_b.example", TLSHELLO_ERR_MALFORMED),
		ERR("a b.example", TLSHELLO_ERR_MALFORMED),
		ERR("a\0b.example", TLSHELLO_ERR_MALFORMED),
		ERR("example.com\0", TLSHELLO_ERR_MALFORMED),
		ERR("caf\xc3\xa9.example", TLSHELLO_ERR_MALFORMED),
		ERR("*.example.com", TLSHELLO_ERR_MALFORMED),
		ERR("a/b", TLSHELLO_ERR_MALFORMED),
		ERR("user@example.com", TLSHELLO_ERR_MALFORMED),
		ERR("example.com:443", TLSHELLO_ERR_MALFORMED),
		ERR(L63 "b.example", TLSHELLO_ERR_MALFORMED),		/* 64-byte label */
		ERR(L63 "." L63 "." L63 "." L61 "b", TLSHELLO_ERR_MALFORMED),	/* 254 */
		/* MALFORMED: IP literals (RFC 6066 3) */
		ERR("10.1.2.3", TLSHELLO_ERR_MALFORMED),
		ERR("127.0.0.1", TLSHELLO_ERR_MALFORMED),
		ERR("example.123", TLSHELLO_ERR_MALFORMED),
		ERR("4294967295", TLSHELLO_ERR_MALFORMED),
		ERR("::1", TLSHELLO_ERR_MALFORMED),
		ERR("[::1]", TLSHELLO_ERR_MALFORMED),
		ERR("fe80::1%eth0", TLSHELLO_ERR_MALFORMED),
	};

	return bytes_params(cases, ARRAY_SIZE(cases));
}

ParameterizedTest(struct bytes_case *c, tlshello, checks_server_name)
{
	static uint8_t buf[2 * TLSHELLO_MAX];

	expect_bytes(c, buf, build_sni_hello(buf, c->in, c->len));
}

/* extension blocks; "\x03" "a.b": a hex escape must not swallow the letters after it */
#define SNI_AB	"\x00\x00\x00\x08\x00\x06\x00\x00\x03" "a.b"
#define ALPN_H2	"\x00\x10\x00\x05\x00\x03\x02h2"

ParameterizedTestParameters(tlshello, checks_extensions)
{
	static struct bytes_case cases[] = {
		/* VALID */
		OK(""),
		OK_SNI(SNI_AB, "a.b"),
		OK(ALPN_H2),
		OK_SNI(ALPN_H2 SNI_AB, "a.b"),
		OK("\xff\x01\x00\x00"),
		OK("\x0a\x0a\x00\x00" "\x1a\x1a\x00\x01\x00"),	/* GREASE (RFC 8701) */
		OK("\x00\x15\x00\x03\x00\x00\x00"),		/* padding (RFC 7685) */
		/* MALFORMED: repeated extensions (RFC 8446 4.2) */
		ERR(SNI_AB SNI_AB, TLSHELLO_ERR_MALFORMED),
		ERR(ALPN_H2 ALPN_H2, TLSHELLO_ERR_MALFORMED),
		ERR("\xff\x01\x00\x00\xff\x01\x00\x00", TLSHELLO_ERR_MALFORMED),
		ERR("\x0a\x0a\x00\x00\x0a\x0a\x00\x00", TLSHELLO_ERR_MALFORMED),
		/* MALFORMED: server_name (RFC 6066 3) */
		ERR("\x00\x00\x00\x0e\x00\x0c\x00\x00\x03" "a.b" "\x00\x00\x03" "c.d",
		    TLSHELLO_ERR_MALFORMED),				/* two host_names */
		ERR("\x00\x00\x00\x08\x00\x06\x01\x00\x03" "a.b", TLSHELLO_ERR_MALFORMED),
		ERR("\x00\x00\x00\x0e\x00\x0c\x00\x00\x03" "a.b" "\x01\x00\x03" "c.d",
		    TLSHELLO_ERR_MALFORMED),				/* host_name + other */
		ERR("\x00\x00\x00\x00", TLSHELLO_ERR_MALFORMED),	/* ServerHello form */
		ERR("\x00\x00\x00\x02\x00\x00", TLSHELLO_ERR_MALFORMED),
		ERR("\x00\x00\x00\x03\x00\x01\x00", TLSHELLO_ERR_MALFORMED),
		ERR("\x00\x00\x00\x05\x00\x03\x00\x00\x00", TLSHELLO_ERR_MALFORMED),
		ERR("\x00\x00\x00\x09\x00\x06\x00\x00\x03" "a.bX", TLSHELLO_ERR_MALFORMED),
		ERR("\x00\x00\x00\x08\x00\x07\x00\x00\x03" "a.b", TLSHELLO_ERR_MALFORMED),
		ERR("\x00\x00\x00\x08\x00\x06\x00\x00\x04" "a.b", TLSHELLO_ERR_MALFORMED),
		ERR("\x00\x00\x00\x08\x00\x06\x00\x00\x02" "a.b", TLSHELLO_ERR_MALFORMED),
		/* MALFORMED: ALPN (RFC 7301 3.1) */
		ERR("\x00\x10\x00\x02\x00\x00", TLSHELLO_ERR_MALFORMED),
		ERR("\x00\x10\x00\x03\x00\x01\x00", TLSHELLO_ERR_MALFORMED),
		ERR("\x00\x10\x00\x06\x00\x04\x02h2\x00", TLSHELLO_ERR_MALFORMED),
		ERR("\x00\x10\x00\x06\x00\x03\x02h2X", TLSHELLO_ERR_MALFORMED),
		ERR("\x00\x10\x00\x05\x00\x03\x03h2", TLSHELLO_ERR_MALFORMED),
		ERR("\x00\x10\x00\x05\x00\x04\x02h2", TLSHELLO_ERR_MALFORMED),
		ERR("\x00\x10\x00\x00", TLSHELLO_ERR_MALFORMED),
		/* MALFORMED: extension framing */
		ERR("\x00", TLSHELLO_ERR_MALFORMED),
		ERR("\xff\x01\x00", TLSHELLO_ERR_MALFORMED),
		ERR("\xff\x01\x00\x05\x00", TLSHELLO_ERR_MALFORMED),
		ERR("\xff\x01\x00\x00\x00", TLSHELLO_ERR_MALFORMED),
	};

	return bytes_params(cases, ARRAY_SIZE(cases));
}

ParameterizedTest(struct bytes_case *c, tlshello, checks_extensions)
{
	static uint8_t buf[2 * TLSHELLO_MAX];

	expect_bytes(c, buf, build_hello(buf, c->in, c->len));
}

ParameterizedTestParameters(tlshello, checks_hello_body)
{
	static struct bytes_case cases[] = {
		/* VALID */
		OK(BODY_HEAD),				/* TLS 1.2, no extension block */
		OK(BODY_HEAD "\x00\x00"),		/* empty extension block */
		OK("\x03\x00" RANDOM32 "\x00" "\x00\x02\x00\x2f" "\x01\x00"),	/* SSL 3.0 */
		OK("\x03\x03" RANDOM32 "\x20" RANDOM32 "\x00\x04\x13\x01\x13\x02" "\x02\x01\x00"),
		/* MALFORMED */
		ERR("", TLSHELLO_ERR_MALFORMED),
		ERR("\x03", TLSHELLO_ERR_MALFORMED),
		ERR("\x03\x03" "0123456789", TLSHELLO_ERR_MALFORMED),
		ERR("\x02\x00" RANDOM32 "\x00" "\x00\x02\x13\x01" "\x01\x00",
		    TLSHELLO_ERR_MALFORMED),
		ERR("\x04\x03" RANDOM32 "\x00" "\x00\x02\x13\x01" "\x01\x00",
		    TLSHELLO_ERR_MALFORMED),
		ERR("\x03\x03" RANDOM32 "\x21" RANDOM32 "X" "\x00\x02\x13\x01" "\x01\x00",
		    TLSHELLO_ERR_MALFORMED),			/* session id 33 */
		ERR("\x03\x03" RANDOM32 "\x00" "\x00\x00" "\x01\x00", TLSHELLO_ERR_MALFORMED),
		ERR("\x03\x03" RANDOM32 "\x00" "\x00\x03\x13\x01\x13" "\x01\x00",
		    TLSHELLO_ERR_MALFORMED),			/* odd cipher_suites */
		ERR("\x03\x03" RANDOM32 "\x00" "\x00\x02\x13\x01" "\x00", TLSHELLO_ERR_MALFORMED),
		ERR("\x03\x03" RANDOM32 "\x00" "\x00\x02\x13\x01", TLSHELLO_ERR_MALFORMED),
		ERR("\x03\x03" RANDOM32 "\x00" "\x00\x02\x13\x01" "\x02\x00",
		    TLSHELLO_ERR_MALFORMED),
		ERR(BODY_HEAD "\x00", TLSHELLO_ERR_MALFORMED),
		ERR(BODY_HEAD "\x00\x01", TLSHELLO_ERR_MALFORMED),
		ERR(BODY_HEAD "\x00\x00\x00", TLSHELLO_ERR_MALFORMED),
		ERR(BODY_HEAD "\x00\x04\xff\x01\x00\x00X", TLSHELLO_ERR_MALFORMED),
	};

	return bytes_params(cases, ARRAY_SIZE(cases));
}

ParameterizedTest(struct bytes_case *c, tlshello, checks_hello_body)
{
	static uint8_t buf[2 * TLSHELLO_MAX];

	expect_bytes(c, buf, wrap_body(buf, c->in, c->len));
}

ParameterizedTestParameters(tlshello, checks_records)
{
	static struct bytes_case cases[] = {
		/* NOT TLS */
		ERR("GET / HTTP/1.1\r\nHost: a\r\n\r\n", TLSHELLO_ERR_NOT_TLS),
		ERR("G", TLSHELLO_ERR_NOT_TLS),
		ERR("SSH-2.0-OpenSSH_9.2\r\n", TLSHELLO_ERR_NOT_TLS),
		ERR("\x80\x2e\x01\x03\x01\x00\x15", TLSHELLO_ERR_NOT_TLS),	/* SSLv2 hello */
		ERR("\x15\x03\x03\x00\x02\x02\x28", TLSHELLO_ERR_NOT_TLS),	/* alert */
		ERR("\x17\x03\x03\x00\x01X", TLSHELLO_ERR_NOT_TLS),		/* app data */
		ERR("\x16\x02", TLSHELLO_ERR_NOT_TLS),
		ERR("\x16\xfe\xfd\x00\x01\x01", TLSHELLO_ERR_NOT_TLS),		/* DTLS 1.2 */
		ERR("\x00", TLSHELLO_ERR_NOT_TLS),
		/* PARTIAL */
		ERR("", TLSHELLO_PARTIAL),
		ERR("\x16", TLSHELLO_PARTIAL),
		ERR("\x16\x03", TLSHELLO_PARTIAL),
		ERR("\x16\x03\x01\x00", TLSHELLO_PARTIAL),
		ERR("\x16\x03\x01\x40\x00", TLSHELLO_PARTIAL),
		ERR("\x16\x03\x01\x00\x01\x01", TLSHELLO_PARTIAL),	/* hs header in pieces */
		ERR("\x16\x03\x01\x00\x01\x01" "\x16\x03\x01\x00\x02\x00\x00", TLSHELLO_PARTIAL),
		ERR("\x16\x03\x01\x00\x04\x01\x00\x3f\xfc", TLSHELLO_PARTIAL),
		/* MALFORMED */
		ERR("\x16\x03\x01\x00\x00", TLSHELLO_ERR_MALFORMED),	/* empty fragment */
		/* a ServerHello; an empty ClientHello */
		ERR("\x16\x03\x01\x00\x04\x02\x00\x00\x00", TLSHELLO_ERR_MALFORMED),
		ERR("\x16\x03\x01\x00\x04\x01\x00\x00\x00", TLSHELLO_ERR_MALFORMED),
		ERR("\x16\x03\x01\x00\x01\x01" "\x17", TLSHELLO_ERR_MALFORMED),
		ERR("\x16\x03\x01\x00\x01\x01" "\x16\x02", TLSHELLO_ERR_MALFORMED),
		ERR("\x16\x03\x01\x00\x01\x01" "\x16\x03\x01\x00\x00", TLSHELLO_ERR_MALFORMED),
		ERR("\x16\x03\x01\x00\x02\x02\x00" "\x16\x03\x01\x00\x02\x00\x00",
		    TLSHELLO_ERR_MALFORMED),		/* not a ClientHello, split header */
		/* TOO LARGE */
		ERR("\x16\x03\x01\x40\x01", TLSHELLO_ERR_TOO_LARGE),
		ERR("\x16\x03\x01\xff\xff", TLSHELLO_ERR_TOO_LARGE),
		ERR("\x16\x03\x01\x00\x04\x01\xff\xff\xff", TLSHELLO_ERR_TOO_LARGE),
		ERR("\x16\x03\x01\x00\x04\x01\x00\x40\x00", TLSHELLO_ERR_TOO_LARGE),
		ERR("\x16\x03\x01\x00\x04\x01\x00\x3f\xfc" "\x16\x03\x01\x3f\xfc",
		    TLSHELLO_ERR_TOO_LARGE),		/* second record past the budget */
	};

	return bytes_params(cases, ARRAY_SIZE(cases));
}

ParameterizedTest(struct bytes_case *c, tlshello, checks_records)
{
	expect_bytes(c, (const uint8_t *)c->in, c->len);
}

/* ---- limits and contract ---------------------------------------------------------------- */

/* A padding extension of pad bytes, in a hello of one record. */
static size_t build_padded(uint8_t *out, size_t pad)
{
	uint8_t *ext = calloc(1, 4 + pad);
	size_t n;

	cr_assert_not_null(ext);
	put_be(ext, 2, 0x15);
	put_be(ext + 2, 2, pad);
	n = build_hello(out, ext, 4 + pad);
	free(ext);
	return n;
}

Test(tlshello, largest_hello_fits_the_budget)
{
	static uint8_t buf[2 * TLSHELLO_MAX];
	struct tlshello h;
	size_t len = build_padded(buf, 16333), flen;
	uint8_t *f;

	cr_assert_eq(len, TLSHELLO_MAX);
	cr_expect_eq(parse_guarded(buf, len, &h), TLSHELLO_MAX);
	cr_expect_eq(parse_guarded(buf, len - 1, &h), TLSHELLO_PARTIAL);
	/* the same hello in two records needs 5 more bytes than the budget */
	f = refragment(buf, len, 8192, &flen);
	cr_expect_eq(parse_guarded(f, flen, &h), TLSHELLO_ERR_TOO_LARGE);
	cr_expect_eq(parse_guarded(f, TLSHELLO_MAX, &h), TLSHELLO_ERR_TOO_LARGE);
	free(f);
	/* one byte more does not fit one record */
	len = build_padded(buf, 16334);
	cr_expect_eq(parse_guarded(buf, len, &h), TLSHELLO_ERR_TOO_LARGE);
	cr_expect_eq(parse_guarded(buf, 5, &h), TLSHELLO_ERR_TOO_LARGE);
}

Test(tlshello, fragmented_hello_within_the_budget)
{
	static uint8_t buf[2 * TLSHELLO_MAX];
	struct tlshello h;
	size_t len = build_padded(buf, 16333 - 5), flen;
	uint8_t *f = refragment(buf, len, 8192, &flen);

	cr_assert_eq(flen, TLSHELLO_MAX);
	cr_expect_eq(parse_guarded(f, flen, &h), TLSHELLO_MAX);
	free(f);
}

/* Never asks for more than TLSHELLO_MAX bytes, even with 1-byte fragments. */
Test(tlshello, partial_never_past_the_budget)
{
	static uint8_t buf[2 * TLSHELLO_MAX];
	struct tlshello h;
	size_t len = build_padded(buf, 4000), flen, k;
	uint8_t *f = refragment(buf, len, 1, &flen);

	cr_assert_gt(flen, TLSHELLO_MAX);
	cr_expect_eq(parse_guarded(f, 2730 * 6, &h), TLSHELLO_PARTIAL);
	/* 2731 records leave less room than a 1-byte record needs: known at once */
	cr_expect_eq(parse_guarded(f, 2731 * 6, &h), TLSHELLO_ERR_TOO_LARGE);
	for (k = 16000; k <= flen; k += 7) {
		ssize_t n = parse_guarded(f, k, &h);
		int ok = n == TLSHELLO_ERR_TOO_LARGE || (n == TLSHELLO_PARTIAL && k < TLSHELLO_MAX);

		cr_expect(ok, "prefix %zu: got %zd", k, n);
	}
	free(f);
}

/* Records after the hello (TLS 1.3 middlebox CCS, early data) are not examined. */
Test(tlshello, stops_at_end_of_hello_records)
{
	static const uint8_t after[] = "\x14\x03\x03\x00\x01\x01" "\x17\x03\x03\x00\x01X";
	struct tlshello h;
	size_t len;
	uint8_t *in = load_hello("openssl_frag", &len);

	in = realloc(in, len + sizeof(after));
	cr_assert_not_null(in);
	memcpy(in + len, after, sizeof(after));
	cr_expect_eq(parse_guarded(in, len + sizeof(after), &h), (ssize_t)len);
	cr_expect_eq(h.record_len, len);
	cr_expect_str_eq(h.sni, "frag.example.net");
	free(in);
}

Test(tlshello, out_is_zeroed_unless_complete)
{
	static const struct tlshello zero;
	struct tlshello h;
	size_t len;
	uint8_t *in = load_hello("curl_h2", &len);

	memset(&h, 0xaa, sizeof(h));
	cr_expect_eq(parse_guarded(in, len - 1, &h), TLSHELLO_PARTIAL);
	cr_expect_eq(memcmp(&h, &zero, sizeof(h)), 0);
	in[5 + 4 + 2 + 32 + 1 + 32 + 1] ^= 1;	/* cipher_suites length: odd */
	memset(&h, 0xaa, sizeof(h));
	cr_expect_eq(parse_guarded(in, len, &h), TLSHELLO_ERR_MALFORMED);
	cr_expect_eq(memcmp(&h, &zero, sizeof(h)), 0);
	free(in);
}

Test(tlshello, reports_encrypted_client_hello)
{
	static uint8_t buf[2 * TLSHELLO_MAX];
	static const char exts[] = SNI_AB "\xfe\x0d\x00\x01\x00";
	struct tlshello h;
	size_t len = build_hello(buf, exts, sizeof(exts) - 1);

	cr_expect_eq(parse_guarded(buf, len, &h), (ssize_t)len);
	cr_expect_eq(h.has_ech, 1);
	cr_expect_str_eq(h.sni, "a.b");
}

Test(tlshello, strerror_names_every_code)
{
	static const int codes[] = { TLSHELLO_PARTIAL, TLSHELLO_ERR_NOT_TLS,
				     TLSHELLO_ERR_MALFORMED, TLSHELLO_ERR_TOO_LARGE };
	size_t i, j;

	for (i = 0; i < ARRAY_SIZE(codes); i++) {
		cr_expect_not_null(tlshello_strerror(codes[i]));
		for (j = 0; j < i; j++)
			cr_expect_str_neq(tlshello_strerror(codes[i]), tlshello_strerror(codes[j]));
	}
	cr_expect_not_null(tlshello_strerror(-100));
	cr_expect_not_null(tlshello_strerror(517));
}
