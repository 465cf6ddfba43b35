/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Copyright (c) 2026 The lanyard authors */
/*
 * Kernel <-> userspace ABI: map keys and values, event records, stats slots.
 * Fixed-width types only, explicit padding, a size assertion on every struct.
 * Included by the bpf programs (after vmlinux.h) and by userspace (after <linux/types.h>).
 */
#ifndef LANYARD_ABI_H
#define LANYARD_ABI_H

#define LY_COMM_LEN		16
#define LY_MAX_CGROUP_DEPTH	32	/* ancestor levels walked by ly_connect4/6 */
#define LY_MAX_WORKLOADS	4096	/* enrolled cgroup ids */
#define LY_MAX_ROUTES		16384	/* LPM entries (one per resolved address) */
#define LY_MAX_PEERS		65536	/* flows published, not yet accepted */
#define LY_RINGBUF_BYTES	(256 * 1024)

#define LY_AF_INET		2	/* == AF_INET; vmlinux.h has no libc macros */
#define LY_AF_INET6		10	/* == AF_INET6 */

/* ly_workload.flags */
#define LY_WL_ENFORCE		(1U << 0)	/* redirect matching connections */
#define LY_WL_REVOKED		(1U << 1)	/* refuse matching connect() with EPERM */

/* workloads: cgroup id (inode of the cgroup2 folder) -> workload */
struct ly_workload {
	__u32 workload_id;	/* daemon-assigned, stable across reloads */
	__u32 flags;		/* LY_WL_* */
};
_Static_assert(sizeof(struct ly_workload) == 8, "ly_workload ABI");

/*
 * routes: LPM_TRIE key.  The data that the prefix covers is laid out so that
 * a prefix length of 64 + n matches {workload, port, family} exactly and the
 * first n bits of the address.  port 0 means "any port": the kernel looks up
 * the exact port first, then port 0.
 */
#define LY_ROUTE_FIXED_BITS	64	/* workload_id + port + family */
struct ly_route_key {
	__u32 prefixlen;	/* LPM: bits of the fields below that must match */
	__u32 workload_id;
	__be16 port;		/* network order; 0 = any */
	__u16 family;		/* LY_AF_INET or LY_AF_INET6 */
	__u8 addr[16];		/* IPv4 in the first 4 bytes, network order */
};
_Static_assert(sizeof(struct ly_route_key) == 28, "ly_route_key ABI");

struct ly_route {
	__u32 route_id;		/* index of the route within its workload */
	__u32 flags;		/* reserved, 0 */
};
_Static_assert(sizeof(struct ly_route) == 8, "ly_route ABI");

/*
 * One redirected connection as the kernel saw it at connect(): who (cgroup,
 * pid, uid, comm) and where to (the destination the app dialled).
 * Stored in SK_STORAGE `flows`, then published in `flows_by_peer`.
 */
struct ly_flow {
	__u64 cookie;		/* socket cookie of the client socket */
	__u64 cgroup_id;	/* cgroup of the connecting task (leaf) */
	__u64 ts_ns;		/* bpf_ktime_get_ns() at connect */
	__u32 pid;		/* tgid */
	__u32 tid;
	__u32 uid;
	__u32 gid;
	__u32 workload_id;
	__u32 route_id;
	__u16 family;		/* LY_AF_INET / LY_AF_INET6 (v4-mapped -> INET) */
	__be16 dport;		/* original destination port, network order */
	__u32 pad;
	__u8 daddr[16];		/* original destination address, network order */
	char comm[LY_COMM_LEN];
};
_Static_assert(sizeof(struct ly_flow) == 88, "ly_flow ABI");

/* flows_by_peer key: the client's local address, which lanyardd's getpeername() returns */
struct ly_peer_key {
	__u16 family;		/* LY_AF_INET / LY_AF_INET6 */
	__be16 port;		/* network order */
	__u32 pad;
	__u8 addr[16];
};
_Static_assert(sizeof(struct ly_peer_key) == 24, "ly_peer_key ABI");

/* config: ARRAY[1], written by lanyardd before attaching */
#define LY_CFG_ENABLED		(1U << 0)
struct ly_config {
	__u32 flags;		/* LY_CFG_* */
	__u32 mark;		/* SO_MARK of lanyardd's own sockets: never redirected */
	__u64 daemon_cgid;	/* lanyardd's own cgroup: never redirected */
	__be32 listen4;		/* 127.0.0.1, network order */
	__be16 listen_port;	/* network order */
	__u16 pad;
	__u8 listen6[16];	/* ::1 */
};
_Static_assert(sizeof(struct ly_config) == 40, "ly_config ABI");

/* events: ring buffer records start with this header */
enum ly_event_type {
	LY_EV_CONNECT = 1,	/* a connect() was redirected; body = struct ly_flow */
	LY_EV_REFUSED = 2,	/* a revoked workload's connect() was refused; body = struct ly_flow */
};

struct ly_event_hdr {
	__u16 type;		/* enum ly_event_type */
	__u16 len;		/* bytes including this header */
	__u32 flags;
	__u64 ts_ns;
};
_Static_assert(sizeof(struct ly_event_hdr) == 16, "ly_event_hdr ABI");

struct ly_event_flow {
	struct ly_event_hdr hdr;
	struct ly_flow flow;
};
_Static_assert(sizeof(struct ly_event_flow) == 104, "ly_event_flow ABI");

/* stats: PERCPU_ARRAY slots */
enum ly_stat {
	LY_STAT_CONNECT = 0,	/* connect() seen by ly_connect4/6 */
	LY_STAT_ENROLLED,	/* ... from an enrolled cgroup */
	LY_STAT_REDIRECTED,	/* ... matched a route and was redirected */
	LY_STAT_NO_ROUTE,	/* enrolled, no route matched: untouched */
	LY_STAT_SKIP_MARK,	/* lanyardd's own socket (SO_MARK) */
	LY_STAT_SKIP_DAEMON,	/* lanyardd's own cgroup */
	LY_STAT_SKIP_LISTENER,	/* destination is the listener itself */
	LY_STAT_REFUSED,	/* revoked workload: connect() refused */
	LY_STAT_STORAGE_FAIL,	/* sk_storage could not be created: refused (fail closed) */
	LY_STAT_PUBLISHED,	/* ly_sockops published a flow under the peer key */
	LY_STAT_PUBLISH_FAIL,	/* flows_by_peer update failed */
	LY_STAT_RINGBUF_FULL,	/* event dropped */
	LY_STAT_SKIP_DISABLED,	/* config not (yet) enabled: untouched */
	LY_STAT_SKIP_PROTO,	/* not TCP (UDP connect(), MPTCP, SCTP): untouched */
	LY_STAT_SKIP_OBSERVE,	/* enrolled workload without LY_WL_ENFORCE: untouched */
	LY_STAT_PEER_CLOSED,	/* client closed before lanyardd took its flow: key deleted */
	LY_STAT_MAX,
};

#endif /* LANYARD_ABI_H */
