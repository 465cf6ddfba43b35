// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Copyright (c) 2026 The lanyard authors */
/*
 * libFuzzer driver for userspace/tlshello.c: parses the input as the start of a TLS
 * connection and checks the parser's invariants (bounds, server name, prefixes, re-cuts).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "tlshello.h"

/* Parse buf[0..len) from an exact-size heap copy, so ASan sees any over-read. */
static ssize_t parse_copy(const uint8_t *buf, size_t len, struct tlshello *h)
{
	uint8_t *copy = malloc(len ? len : 1);
	ssize_t n;

	CHECK(copy);
	memcpy(copy, buf, len);
	n = tlshello_parse(copy, len, h);
	free(copy);
	return n;
}

static int is_zero(const struct tlshello *h)
{
	static const struct tlshello zero;

	return !memcmp(h, &zero, sizeof(zero));
}

/* RFC 1123 host name, lowercased, no IP literal: what a success may report. */
static void check_sni(const struct tlshello *h)
{
	size_t len = strnlen(h->sni, sizeof(h->sni));
	const char *last;

	CHECK(len < sizeof(h->sni) && len <= TLSHELLO_MAX_SNI);
	CHECK(h->has_sni == (len > 0));
	if (!len)
		return;
	CHECK(h->sni[0] != '.' && h->sni[0] != '-');
	CHECK(h->sni[len - 1] != '.' && h->sni[len - 1] != '-');
	CHECK(!strstr(h->sni, "..") && !strstr(h->sni, ".-") && !strstr(h->sni, "-."));
	CHECK(strspn(h->sni, "abcdefghijklmnopqrstuvwxyz0123456789-.") == len);
	/* the last label is not all digits (IPv4 literal) */
	last = strrchr(h->sni, '.');
	last = last ? last + 1 : h->sni;
	CHECK(strspn(last, "0123456789") < strlen(last));
}

static void check_same(const struct tlshello *a, const struct tlshello *b)
{
	CHECK(!strcmp(a->sni, b->sni) && a->has_sni == b->has_sni);
	CHECK(a->legacy_version == b->legacy_version && a->has_ech == b->has_ech);
	CHECK(a->alpn_http11 == b->alpn_http11 && a->alpn_h2 == b->alpn_h2 &&
	      a->alpn_other == b->alpn_other);
}

/*
 * Cut the handshake bytes of the first n bytes of buf (a parsed hello) into records of at
 * most piece bytes and parse that: the same hello, or TOO_LARGE if it no longer fits.
 */
static void check_recut(const uint8_t *buf, size_t n, size_t piece, const struct tlshello *h)
{
	uint8_t *hs = malloc(n), *out;
	size_t off = 0, hlen = 0, olen = 0, frag;
	struct tlshello again;
	ssize_t r;

	CHECK(hs);
	while (off < n) {
		frag = (size_t)buf[off + 3] << 8 | buf[off + 4];
		CHECK(buf[off] == 0x16 && frag && off + 5 + frag <= n);
		memcpy(hs + hlen, buf + off + 5, frag);
		hlen += frag;
		off += 5 + frag;
	}
	out = malloc(hlen + (hlen / piece + 1) * 5);
	CHECK(out);
	for (off = 0; off < hlen; off += frag) {
		frag = hlen - off < piece ? hlen - off : piece;
		memcpy(out + olen, "\x16\x03\x03", 3);
		out[olen + 3] = (uint8_t)(frag >> 8);
		out[olen + 4] = (uint8_t)frag;
		memcpy(out + olen + 5, hs + off, frag);
		olen += 5 + frag;
	}
	r = parse_copy(out, olen, &again);
	if (olen <= TLSHELLO_MAX) {
		CHECK(r == (ssize_t)olen);
		check_same(h, &again);
	} else {
		CHECK(r == TLSHELLO_ERR_TOO_LARGE);
	}
	free(out);
	free(hs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tlshello h, again;
	size_t split = size ? (data[size - 1] * 131u + data[0]) % (size + 1) : 0;
	ssize_t n, m;

	memset(&h, 0x5a, sizeof(h));
	n = tlshello_parse(data, size, &h);
	CHECK(n >= TLSHELLO_ERR_TOO_LARGE && n != 0);
	CHECK(n != TLSHELLO_PARTIAL || size < TLSHELLO_MAX);
	CHECK(tlshello_strerror((int)n) != NULL);
	/* a verdict on a prefix is final: any prefix is incomplete or says the same */
	m = parse_copy(data, split, &again);
	CHECK(m == TLSHELLO_PARTIAL || m == n);
	if (n < 0) {
		CHECK(is_zero(&h));
		return 0;
	}
	CHECK((size_t)n <= size && n <= TLSHELLO_MAX && n >= 5 + 4 + 41);
	CHECK(h.record_len == (size_t)n && data[0] == 0x16);
	CHECK(h.legacy_version >> 8 == 3);
	CHECK((h.alpn_http11 | h.alpn_h2 | h.alpn_other | h.has_ech) <= 1);
	check_sni(&h);
	if (m == n)
		check_same(&h, &again);
	/* the records alone read the same; one byte less is only incomplete */
	CHECK(parse_copy(data, (size_t)n, &again) == n);
	check_same(&h, &again);
	CHECK(parse_copy(data, (size_t)n - 1, &again) == TLSHELLO_PARTIAL);
	check_recut(data, (size_t)n, split % 600 + 1, &h);
	return 0;
}
