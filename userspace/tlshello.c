// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Copyright (c) 2026 The lanyard authors */
/*
 * Strict TLS ClientHello parser: record-layer reassembly, the hello's vectors, server_name
 * and ALPN.  Pure: no allocation, never reads past len, every length checked against the
 * one that encloses it.
 */
#include <string.h>

#include "tlshello.h"

/*
 * Choices this parser makes (in the strict direction: lanyardd allows or denies a
 * passthrough flow on what it reads here, so it must not read a name the server would not):
 * - Record layer (RFC 8446 5.1): every record must be a handshake record (type 22) with
 *   major version 3; the minor version carries no meaning for a first hello (0x0301 or
 *   0x0303, older stacks 0x0300) and is not checked.  A wrong type or major version in the
 *   first record is TLSHELLO_ERR_NOT_TLS, decided from the first two bytes so that plain
 *   HTTP (or an SSLv2-format hello, RFC 6176) is told apart at once; in a later record it
 *   is TLSHELLO_ERR_MALFORMED (handshake messages are not interleaved with other types).
 * - Zero-length handshake fragments are MALFORMED (RFC 8446 5.1); a fragment over 2^14
 *   bytes, or a hello that needs more than TLSHELLO_MAX bytes, is TOO_LARGE.
 * - Fragmentation: a hello split over any number of records is reassembled, as long as all
 *   of them fit in TLSHELLO_MAX.  The record holding its last byte must end with it: a
 *   client sends nothing else before the server's first flight, so trailing bytes are
 *   MALFORMED.  The first handshake message must be a ClientHello (RFC 8446 4).
 * - ClientHello (RFC 8446 4.1.2, RFC 5246 7.4.1.2): legacy_version major 3, session id at
 *   most 32 bytes, cipher_suites an even number >= 2 of bytes, at least one compression
 *   method, then either nothing (a TLS 1.2 hello without extensions) or an extension block
 *   that ends exactly where the hello does.  No extension type twice (RFC 8446 4.2).
 * - server_name (RFC 6066 3): exactly one entry, of type host_name.  Only host_name was
 *   ever defined and an unknown type's length cannot be known, so, as OpenSSL does, any
 *   other list is MALFORMED.  The name must be an RFC 1123 host name: labels of 1..63
 *   letters, digits and hyphens, no hyphen at either end, at most 253 bytes, no trailing
 *   dot (RFC 6066), so no NUL, no underscore, no UTF-8 (IDNs travel as A-labels).
 * - An IP literal in server_name is MALFORMED, not "no SNI": RFC 6066 3 forbids it, common
 *   clients (curl, Python, Go, browsers) leave SNI out for an IP, the daemon already has the
 *   destination address from the flow record, and an error keeps a non-conforming client
 *   visible in the audit log.  An IPv4 literal is a name whose last label is all digits (no
 *   top-level domain is, RFC 3696 2); an IPv6 literal already fails on ':'.
 * - ALPN (RFC 7301 3.1): the list fills the extension exactly and no name is empty.
 * - Nothing else is judged (cipher values, other extensions' contents, GREASE): the TLS
 *   server does that, and none of it changes which name or protocols were offered.
 */

#define TLS_REC_HDR		5	/* type, version, length (RFC 8446 5.1) */
#define TLS_HS_HDR		4	/* msg_type, uint24 length (RFC 8446 4) */
#define TLS_MAX_FRAGMENT	(1 << 14)
#define TLS_CT_HANDSHAKE	22
#define TLS_HS_CLIENT_HELLO	1
#define TLS_RANDOM_LEN		32
#define TLS_MAX_SESSION_ID	32
#define EXT_SERVER_NAME		0	/* RFC 6066 3 */
#define EXT_ALPN		16	/* RFC 7301 3.1 */
#define EXT_ECH			0xfe0d	/* draft-ietf-tls-esni */
#define SNI_HOST_NAME		0
#define DNS_MAX_LABEL		63

/* A bounded reader over a vector: every read is checked against what is left of it. */
struct cur {
	const uint8_t *p;
	size_t len;
};

static int cur_take(struct cur *c, size_t n, struct cur *sub)
{
	if (n > c->len)
		return -1;
	sub->p = c->p;
	sub->len = n;
	c->p += n;
	c->len -= n;
	return 0;
}

static int cur_u8(struct cur *c, unsigned int *v)
{
	struct cur b;

	if (cur_take(c, 1, &b))
		return -1;
	*v = b.p[0];
	return 0;
}

static int cur_u16(struct cur *c, unsigned int *v)
{
	struct cur b;

	if (cur_take(c, 2, &b))
		return -1;
	*v = (unsigned int)b.p[0] << 8 | b.p[1];
	return 0;
}

/* opaque vector with a 1- or 2-byte length prefix (RFC 8446 3.4) */
static int cur_vec(struct cur *c, int prefix, struct cur *sub)
{
	unsigned int n;

	if (prefix == 1 ? cur_u8(c, &n) : cur_u16(c, &n))
		return -1;
	return cur_take(c, n, sub);
}

static int is_ldh(unsigned char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       ch == '-';
}

/*
 * Check name against RFC 1123 2.1 host name syntax and RFC 6066 3 (no trailing dot, no
 * IP literal) and copy it lowercased, NUL-terminated, into dst (TLSHELLO_MAX_SNI + 1 bytes).
 */
static int copy_host_name(struct cur name, char *dst)
{
	size_t i, label = 0;
	int numeric = 1;	/* the current label is all digits so far */

	if (!name.len || name.len > TLSHELLO_MAX_SNI)
		return -1;
	for (i = 0; i < name.len; i++) {
		unsigned char ch = name.p[i];

		if (ch == '.') {
			if (!label || name.p[i - 1] == '-')
				return -1;
			label = 0;
			numeric = 1;
		} else {
			if (!is_ldh(ch) || (!label && ch == '-') || ++label > DNS_MAX_LABEL)
				return -1;
			numeric = numeric && ch >= '0' && ch <= '9';
		}
		dst[i] = (char)(ch >= 'A' && ch <= 'Z' ? ch + ('a' - 'A') : ch);
	}
	/* empty last label = trailing dot; hyphen at the end; all-digit last label = IPv4 */
	if (!label || name.p[name.len - 1] == '-' || numeric)
		return -1;
	dst[name.len] = '\0';
	return 0;
}

/*
 * RFC 6066 3: ServerNameList server_name_list<1..2^16-1> of
 * { NameType name_type; HostName host_name<1..2^16-1> }; we take exactly one host_name.
 */
static int parse_sni(struct cur data, struct tlshello *h)
{
	struct cur list, name;
	unsigned int type;

	if (cur_vec(&data, 2, &list) || data.len)
		return -1;
	if (cur_u8(&list, &type) || type != SNI_HOST_NAME)
		return -1;
	if (cur_vec(&list, 2, &name) || list.len)
		return -1;
	if (copy_host_name(name, h->sni))
		return -1;
	h->has_sni = 1;
	return 0;
}

/* RFC 7301 3.1: ProtocolName protocol_name_list<2..2^16-1>, ProtocolName <1..2^8-1> */
static int parse_alpn(struct cur data, struct tlshello *h)
{
	struct cur list, name;

	if (cur_vec(&data, 2, &list) || data.len || list.len < 2)
		return -1;
	while (list.len) {
		if (cur_vec(&list, 1, &name) || !name.len)
			return -1;
		if (name.len == 8 && !memcmp(name.p, "http/1.1", 8))
			h->alpn_http11 = 1;
		else if (name.len == 2 && !memcmp(name.p, "h2", 2))
			h->alpn_h2 = 1;
		else
			h->alpn_other = 1;
	}
	return 0;
}

/* Extension extensions<..2^16-1>: { ExtensionType type; opaque data<0..2^16-1> } */
static int parse_extensions(struct cur exts, struct tlshello *h)
{
	uint64_t seen[65536 / 64];	/* one bit per extension type */
	struct cur data;
	unsigned int type;

	memset(seen, 0, sizeof(seen));
	while (exts.len) {
		if (cur_u16(&exts, &type) || cur_vec(&exts, 2, &data))
			return -1;
		/* RFC 8446 4.2: not more than one extension of the same type */
		if (seen[type / 64] & (1ULL << (type % 64)))
			return -1;
		seen[type / 64] |= 1ULL << (type % 64);
		if (type == EXT_SERVER_NAME && parse_sni(data, h))
			return -1;
		if (type == EXT_ALPN && parse_alpn(data, h))
			return -1;
		if (type == EXT_ECH)
			h->has_ech = 1;
	}
	return 0;
}

/* The ClientHello body (after the handshake header), exactly msg_len - 4 bytes. */
static int parse_hello(struct cur c, struct tlshello *h)
{
	struct cur skip, exts;
	unsigned int version;

	if (cur_u16(&c, &version) || version >> 8 != 3)
		return -1;
	h->legacy_version = (uint16_t)version;
	if (cur_take(&c, TLS_RANDOM_LEN, &skip))
		return -1;
	if (cur_vec(&c, 1, &skip) || skip.len > TLS_MAX_SESSION_ID)
		return -1;
	if (cur_vec(&c, 2, &skip) || skip.len < 2 || skip.len % 2)
		return -1;
	if (cur_vec(&c, 1, &skip) || !skip.len)
		return -1;
	/* RFC 5246 7.4.1.2: a hello may end after compression_methods (no extensions) */
	if (!c.len)
		return 0;
	if (cur_vec(&c, 2, &exts) || c.len)
		return -1;
	return parse_extensions(exts, h);
}

/*
 * Check the record header at p (avail bytes of it and after it are present; off is its
 * offset in the connection).  Whatever of the header has arrived is judged at once.
 * Returns 0 and the fragment length when the whole record is there, or a tlshello code.
 */
static int record_header(const uint8_t *p, size_t avail, size_t off, size_t *frag)
{
	size_t n;

	if (avail >= 1 && p[0] != TLS_CT_HANDSHAKE)
		return off ? TLSHELLO_ERR_MALFORMED : TLSHELLO_ERR_NOT_TLS;
	if (avail >= 2 && p[1] != 3)
		return off ? TLSHELLO_ERR_MALFORMED : TLSHELLO_ERR_NOT_TLS;
	/* the smallest next record would already go past the budget */
	if (off + TLS_REC_HDR + 1 > TLSHELLO_MAX)
		return TLSHELLO_ERR_TOO_LARGE;
	if (avail < TLS_REC_HDR)
		return TLSHELLO_PARTIAL;
	n = (size_t)p[3] << 8 | p[4];
	if (!n)
		return TLSHELLO_ERR_MALFORMED;
	if (n > TLS_MAX_FRAGMENT || off + TLS_REC_HDR + n > TLSHELLO_MAX)
		return TLSHELLO_ERR_TOO_LARGE;
	if (avail - TLS_REC_HDR < n)
		return TLSHELLO_PARTIAL;
	*frag = n;
	return 0;
}

/*
 * Walk the records at the start of buf until the handshake message they carry is
 * complete.  Returns the offset just past the record holding its last byte, with the
 * number of records in *nrec and the message length (header included) in *msg_len,
 * or a tlshello code.
 */
static ssize_t scan_records(const uint8_t *buf, size_t len, size_t *nrec, size_t *msg_len)
{
	uint8_t hs[TLS_HS_HDR];	/* the handshake header, which may itself be fragmented */
	size_t off = 0, have = 0, frag = 0, i;
	int err;

	*nrec = 0;
	for (;;) {
		err = record_header(buf + off, len - off, off, &frag);
		if (err)
			return err;
		for (i = 0; i < frag && have + i < TLS_HS_HDR; i++)
			hs[have + i] = buf[off + TLS_REC_HDR + i];
		have += frag;
		off += TLS_REC_HDR + frag;
		(*nrec)++;
		if (have < TLS_HS_HDR)
			continue;
		if (hs[0] != TLS_HS_CLIENT_HELLO)
			return TLSHELLO_ERR_MALFORMED;
		*msg_len = TLS_HS_HDR + ((size_t)hs[1] << 16 | (size_t)hs[2] << 8 | hs[3]);
		if (*msg_len > TLSHELLO_MAX - TLS_REC_HDR)
			return TLSHELLO_ERR_TOO_LARGE;
		if (have > *msg_len)
			return TLSHELLO_ERR_MALFORMED;
		if (have == *msg_len)
			return (ssize_t)off;
	}
}

/* Concatenate the fragments of the first nrec records of buf (checked by scan_records). */
static void gather(const uint8_t *buf, size_t nrec, uint8_t *dst)
{
	size_t off = 0, n = 0, frag;

	while (nrec--) {
		frag = (size_t)buf[off + 3] << 8 | buf[off + 4];
		memcpy(dst + n, buf + off + TLS_REC_HDR, frag);
		n += frag;
		off += TLS_REC_HDR + frag;
	}
}

ssize_t tlshello_parse(const uint8_t *buf, size_t len, struct tlshello *out)
{
	uint8_t joined[TLSHELLO_MAX];	/* only used for a fragmented hello */
	struct tlshello h;
	struct cur body;
	size_t nrec = 0, msg_len = 0;
	ssize_t end;

	memset(out, 0, sizeof(*out));
	memset(&h, 0, sizeof(h));
	end = scan_records(buf, len, &nrec, &msg_len);
	if (end < 0)
		return end;
	/* the common single-record hello is parsed in place, in the caller's buffer */
	if (nrec == 1) {
		body.p = buf + TLS_REC_HDR + TLS_HS_HDR;
	} else {
		gather(buf, nrec, joined);
		body.p = joined + TLS_HS_HDR;
	}
	body.len = msg_len - TLS_HS_HDR;
	if (parse_hello(body, &h))
		return TLSHELLO_ERR_MALFORMED;
	h.record_len = (size_t)end;
	*out = h;
	return end;
}

const char *tlshello_strerror(int err)
{
	switch (err) {
	case TLSHELLO_PARTIAL:
		return "incomplete ClientHello";
	case TLSHELLO_ERR_NOT_TLS:
		return "not a TLS handshake";
	case TLSHELLO_ERR_MALFORMED:
		return "malformed ClientHello";
	case TLSHELLO_ERR_TOO_LARGE:
		return "ClientHello too large";
	default:
		return err > 0 ? "ok" : "invalid ClientHello";
	}
}
