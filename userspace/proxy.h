/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Copyright (c) 2026 The lanyard authors */
/*
 * The proxy: listeners on 127.0.0.1 and ::1, the per-connection state
 * machine (accept, kernel flow lookup, route selection, upstream connect,
 * per-request credential injection, relay, close) with limits and timeouts.
 */
#ifndef LY_PROXY_H
#define LY_PROXY_H

#include <stdint.h>

#include "daemon.h"
#include "discover.h"

#define PROXY_REQ_LEN		256	/* "METHOD /path" kept per flow (no query) */

struct proxy_flow_info {
	uint64_t id;
	const char *workload;
	uint32_t pid;
	uint64_t cgroup_id;
	const char *comm;
	const char *exe;
	const char *dst;
	uint64_t requests;
	uint64_t bytes_up, bytes_down;
	int64_t since;		/* wall-clock seconds */
	const char *sni;	/* server name the app's TLS library set; NULL if unknown */
	const char *request;	/* its last request line "METHOD /path" (no query); NULL */
};

/* Bind the listeners (v4 and v6 loopback, port) and register them. NULL on error. */
struct proxy *proxy_new(struct daemon *d, uint16_t port, char *err, size_t errlen);
/* Close every connection and the listeners. NULL ok. */
void proxy_free(struct proxy *p);

/* Timeouts (head, idle): called from a periodic timer. */
void proxy_tick(struct proxy *p);

/*
 * The requests parked for their route's credential are decided again: after a fetch ended
 * (installed or failed), a reload, a revocation.
 */
void proxy_wake_parked(struct proxy *p);

/* After a revocation: close the connections of on_revoke: close routes that it hit. */
void proxy_on_revoke(struct proxy *p);

/* Visit every live flow (for `lanyard flows`). */
typedef void (*proxy_flow_cb)(void *ctx, const struct proxy_flow_info *fi);
void proxy_foreach_flow(struct proxy *p, proxy_flow_cb cb, void *ctx);

/*
 * A TLS library write or plain write of an app (tlsobs.c) on the socket whose
 * local address is family (LY_AF_INET/6) addr, port (host order): when that
 * connection was redirected, remember sni (may be NULL) and the request line
 * of rl (may be NULL; its target redacted by discover_redact_target()) on the
 * flow, set *injected_header (the header the route overwrites with lanyardd's
 * credential, borrowed from the policy; NULL for x509 and passthrough routes)
 * and dst (what the app dialled, "addr:port").  Returns the flow id, or 0 when
 * no live flow has that peer (*injected_header = NULL, dst untouched).
 */
uint64_t proxy_flow_tag(struct proxy *px, int family, const uint8_t *addr, uint16_t port,
			const char *sni, const struct discover_reqline *rl,
			const char **injected_header, char *dst, size_t dstlen);

#endif /* LY_PROXY_H */
