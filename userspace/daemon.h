/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Copyright (c) 2026 The lanyard authors */
/*
 * The daemon's shared state: the current policy and its generation, the
 * workload registry (stable ids across reloads), the issuer, the counters,
 * and the operations that the control socket triggers (reload, revoke).
 * Owned by main.c; read by proxy.c, control.c and admin.c.
 */
#ifndef LY_DAEMON_H
#define LY_DAEMON_H

#include <stddef.h>
#include <stdint.h>

#include "cred.h"
#include "jwt.h"
#include "kernel.h"
#include "loop.h"
#include "policy.h"

#define DAEMON_VERSION		"0.1.0"
#define DAEMON_MAX_WORKLOAD_IDS	LY_MAX_WORKLOADS

/* counters; /metrics and `lanyard status` print them under these names */
struct metrics {
	uint64_t flow_accepted;		/* lanyard_flow_accepted_total */
	uint64_t flow_rejected;		/* lanyard_flow_rejected_total: no kernel record */
	uint64_t flow_denied;		/* lanyard_flow_denied_total: unknown/revoked workload */
	uint64_t flow_active;		/* lanyard_flow_active */
	uint64_t requests;		/* lanyard_requests_total */
	uint64_t injected;		/* lanyard_credential_injected_total */
	uint64_t cred_failed;		/* lanyard_credential_failed_total{reason="unavailable"} */
	uint64_t cred_waits;		/* lanyard_credential_waits_total: a request parked
					 * for its route's first credential */
	uint64_t no_route;		/* lanyard_credential_failed_total{reason="no_route"} */
	uint64_t revoked;		/* lanyard_credential_failed_total{reason="revoked"} */
	uint64_t bad_request;		/* lanyard_request_rejected_total{reason="bad_request"} */
	uint64_t too_large;		/* ...{reason="head_too_large"} */
	uint64_t head_timeout;		/* ...{reason="head_timeout"} */
	uint64_t method_refused;	/* ...{reason="method"} */
	uint64_t flow_idle;		/* lanyard_flow_timeout_total{reason="idle"} */
	uint64_t flow_stalled;		/* ...{reason="stalled"}: bytes waiting, not read */
	uint64_t upstream_failed;	/* lanyard_upstream_failed_total */
	uint64_t bytes_up;		/* lanyard_bytes_total{dir="up"} */
	uint64_t bytes_down;		/* lanyard_bytes_total{dir="down"} */
	uint64_t reloads;		/* lanyard_reload_total */
	uint64_t reload_failed;		/* lanyard_reload_failed_total */
	uint64_t control_errors;	/* lanyard_control_errors_total */
};

struct proxy;
struct admin;
struct control;
struct ca;

struct daemon {
	struct loop *loop;
	struct kernel *kern;
	const char *config_path;

	struct policy *pol;		/* current policy: replaced whole by reload */
	uint64_t gen;			/* bumped on every successful reload */
	struct kernel_workload *wls;	/* parallel to pol->workloads */

	/* workload registry: ids stay stable for a name across reloads and restarts */
	char *wl_names[DAEMON_MAX_WORKLOAD_IDS + 1];	/* index = id; [0] unused */
	uint32_t wl_next;

	struct jwt_key *key;
	struct cred_issuer *creds;
	char issuer[128];		/* "http://<admin listen>" */
	char *jwks;			/* JWKS document (public) */
	struct ca *ca;			/* local or imported CA; NULL until TLS is set up */
	struct fetcher *fetch;		/* workers for oauth2, token_exchange, exec, static */

	struct proxy *proxy;
	struct discover *disc;		/* static secrets seen by the TLS uprobes (discover.c) */
	struct admin *admin;
	struct control *control;

	uint32_t mark;			/* SO_MARK on every upstream socket */
	int64_t started;		/* wall-clock seconds */
	struct metrics m;
};

/*
 * Parse, resolve and apply the policy file again.  On any error the running
 * policy stays in force and err says why ("file:line:col: ...").  0 or -errno.
 */
int daemon_reload(struct daemon *d, char *err, size_t errlen);

/*
 * Revoke a workload (the kernel refuses its new connections), a route (of one
 * workload or all), or one credential by jti or fingerprint (a fresh one is
 * issued).  Revoked slots issue nothing until the next reload; connections of
 * on_revoke: close routes are closed now.  Returns credentials dropped, or
 * -ENOENT when nothing matched.
 */
int daemon_revoke(struct daemon *d, const char *workload, const char *route, const char *jti);

/* index in d->pol->workloads of the workload with this registry id, or -1 */
int daemon_workload_index(const struct daemon *d, uint32_t id);

/* the route of workload index wi that (family, addr, port) falls in, or NULL */
const struct policy_route *daemon_route_for(const struct daemon *d, int wi, int family,
					    const uint8_t *addr, uint16_t port);

#endif /* LY_DAEMON_H */
