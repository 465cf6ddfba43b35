/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Copyright (c) 2026 The lanyard authors */
/*
 * TLS with OpenSSL 3: the per-route contexts (upstream client with full
 * verification; interception server whose leaf is minted per SNI by the local
 * CA) and non-blocking handshake, read and write mapped to epoll interest.
 */
#ifndef LY_TLS_H
#define LY_TLS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <openssl/ssl.h>

#include "ca.h"
#include "policy.h"

#define TLS_WHY_LEN	160	/* a failure reason: constant text from us and OpenSSL */
#define TLS_RECORD_MAX	16384	/* plaintext of one record (RFC 8446 5.1) */
#define TLS_HS_FAILED	"TLS handshake failed"	/* start of a handshake's "why" */

/*
 * Give every tls: intercept / originate route of p its contexts (route->tls_ctx,
 * released by policy_free()): upstream client contexts, one per distinct ca_file
 * (system roots without one), and one interception server context shared by
 * the intercept routes.  Call after policy_parse(), on start-up and on every
 * reload, so that a changed ca_file is read again.  0, or -errno with
 * "file:line:col: ..." (the route's position) in err.
 */
int tls_policy_build(struct policy *p, char *err, size_t errlen);

/*
 * What the interception handshake needs from the proxy, and what it reports.
 * The proxy fills the inputs before every tls_handshake() on an interception
 * connection (a reload may have replaced the route); the SSL borrows it.
 */
struct tls_accept {
	struct ca *ca;			/* in: mints the leaf */
	const struct policy_route *route; /* in: NULL refuses the handshake ... */
	const char *refuse;		/* in: ... for this reason */
	int64_t now;			/* in: wall-clock seconds */
	char name[CA_HOST_MAX + 1];	/* out: the name the leaf was minted for */
	const char *reason;		/* out: why the ClientHello was refused, or NULL */
};

/*
 * A TLS server (interception) on fd for route r (tls: intercept, built).  The
 * ClientHello is checked before any leaf is minted: its SNI must be the route's
 * host name (host name routes) or its server_name (when set); an IP or CIDR
 * route without server_name accepts any valid DNS name, which the upstream must
 * then prove.  No SNI: server_name, else refused.  ALPN: http/1.1 or none.
 * NULL on allocation failure.  Free with tls_free().
 */
SSL *tls_accept_new(const struct policy_route *r, int fd, struct tls_accept *ta);

/*
 * A TLS client on fd for route r (tls: intercept or originate, built).  The
 * upstream must present a chain to the route's trust anchors (ca_file or the
 * system roots) for, in this order: the route's host name; its server_name;
 * sni (the name an interception client asked for, may be NULL); else the IP
 * address addr (family AF_INET/AF_INET6, network order).  A DNS name is also
 * sent as SNI.  ALPN offers http/1.1 only; TLS 1.2 or later.  NULL + why.
 */
SSL *tls_connect_new(const struct policy_route *r, int fd, const char *sni, int family,
		     const uint8_t *addr, char *why, size_t whylen);

/*
 * Present cc (borrowed; the SSL takes its own references to the certificate,
 * key and chain) as the client certificate of ssl, before tls_handshake().
 * It is sent only after the upstream's certificate has verified.  0 or
 * -EINVAL + why.
 */
int tls_use_client_cert(SSL *ssl, const struct ca_cert *cc, char *why, size_t whylen);

/* The name (or IP literal) the upstream of ssl is verified against, into buf (audit). */
void tls_peer_name(SSL *ssl, char *buf, size_t len);

/*
 * Advance a handshake.  1 done (and, for a client, the peer verified), 0 not
 * yet: *events is what to wait for (EPOLLIN or EPOLLOUT), -EPROTO failed: why
 * says so, "certificate verify failed: <X509 reason>" or TLS_HS_FAILED [": "
 * <OpenSSL reason>] ("certificate verify failed: certificate has expired",
 * "TLS handshake failed: wrong version number").
 */
int tls_handshake(SSL *ssl, uint32_t *events, char *why, size_t whylen);

/*
 * Application data.  tls_read: bytes (> 0), 0 at the peer's close_notify,
 * -EAGAIN (*events: what to wait for), -EPIPE at a TCP close without
 * close_notify (a possible truncation), another -errno on error.  Give it at
 * least TLS_RECORD_MAX bytes of room, so that no plaintext stays buffered in
 * the SSL where epoll cannot see it.  tls_write: bytes written (> 0, may be
 * partial), -EAGAIN (*events), or -errno.  A write may be retried with a
 * moved buffer holding the same bytes and more.
 */
ssize_t tls_read(SSL *ssl, void *buf, size_t len, uint32_t *events);
ssize_t tls_write(SSL *ssl, const void *buf, size_t len, uint32_t *events);

/* Send close_notify now (best effort, non-blocking): the write side is done. */
void tls_shutdown(SSL *ssl);
/* Never send close_notify on ssl (its peer must see a truncation as one). */
void tls_quiet(SSL *ssl);
/* close_notify unless quiet or already sent, then free.  Does not close the fd.  NULL ok. */
void tls_free(SSL *ssl);

#endif /* LY_TLS_H */
