/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Copyright (c) 2026 The lanyard authors */
/*
 * Strict TLS ClientHello parser (RFC 8446 4.1.2, RFC 5246 7.4.1.2) for passthrough routes:
 * reads the server name (RFC 6066 3) and the offered ALPN protocols (RFC 7301 3.1) from the
 * first bytes of a connection.  Pure: no allocation, never reads past len, trusts no length.
 */
#ifndef LY_TLSHELLO_H
#define LY_TLSHELLO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * Most bytes lanyardd buffers to find a ClientHello: one full record (2^14 bytes of
 * fragment, RFC 8446 5.1) and its header.  A hello fragmented over several records must
 * fit in the same budget, headers included.
 */
#define TLSHELLO_MAX		(16 * 1024 + 5)
#define TLSHELLO_MAX_SNI	253	/* RFC 1035 2.3.4 name, no trailing dot */

/* return codes: > 0 success (bytes), < 0 one of these */
enum tlshello_err {
	TLSHELLO_PARTIAL = -1,		/* need more bytes (not an error) */
	TLSHELLO_ERR_NOT_TLS = -2,	/* first record is not a TLS handshake record */
	TLSHELLO_ERR_MALFORMED = -3,	/* any inconsistent length or field, bad server name */
	TLSHELLO_ERR_TOO_LARGE = -4,	/* the hello would not fit in TLSHELLO_MAX bytes */
};

struct tlshello {
	char sni[256];		/* server_name host_name, lowercased, NUL-terminated, or "" */
	int has_sni;
	uint16_t legacy_version;	/* ClientHello.legacy_version (0x0303 for TLS 1.2, 1.3) */
	/* 1 when offered in application_layer_protocol_negotiation (RFC 7301) */
	int alpn_http11, alpn_h2, alpn_other;
	int has_ech;		/* encrypted_client_hello offered: sni is the outer name */
	size_t record_len;	/* bytes of the TLS record(s) that held the ClientHello */
};

/*
 * Parse the start of a TLS connection in buf[0..len) (borrowed, never modified).
 * Returns the number of bytes of the record(s) that held a complete ClientHello
 * (== out->record_len, > 0), TLSHELLO_PARTIAL when more bytes are needed (only while
 * len < TLSHELLO_MAX), or a negative enum tlshello_err.  On anything but success *out is
 * all zeroes.  Bytes after the returned length (early data, the next records) are not
 * looked at.  A hello fragmented over several handshake records is reassembled.
 */
ssize_t tlshello_parse(const uint8_t *buf, size_t len, struct tlshello *out);

/* short constant reason for a return code, safe to log and audit */
const char *tlshello_strerror(int err);

#endif /* LY_TLSHELLO_H */
