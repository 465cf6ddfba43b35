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

#define PROXY_HEAD_TIMEOUT_MS	10000	/* a request head must complete within this */
#define PROXY_IDLE_TIMEOUT_MS	120000	/* no bytes either way for this long: close */

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
};

/* Bind the listeners (v4 and v6 loopback, port) and register them. NULL on error. */
struct proxy *proxy_new(struct daemon *d, uint16_t port, char *err, size_t errlen);
/* Close every connection and the listeners. NULL ok. */
void proxy_free(struct proxy *p);

/* Timeouts (head, idle): called from a periodic timer. */
void proxy_tick(struct proxy *p);

/* Visit every live flow (for `lanyard flows`). */
typedef void (*proxy_flow_cb)(void *ctx, const struct proxy_flow_info *fi);
void proxy_foreach_flow(struct proxy *p, proxy_flow_cb cb, void *ctx);

#endif /* LY_PROXY_H */
