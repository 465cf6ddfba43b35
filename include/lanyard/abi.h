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
#define LY_WL_OBSERVE		(1U << 2)	/* policy mode: observe; nothing redirected, its
						 * TLS and plain-HTTP requests are inspected */

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
#define LY_CFG_OBSERVE		(1U << 1)	/* some workload is observed: inspect plain HTTP */
/* (1U << 2) was LY_CFG_TLS_PROC: ly_fork is now attached only with per-process probes */
struct ly_config {
	__u32 flags;		/* LY_CFG_* */
	__u32 mark;		/* SO_MARK of lanyardd's own sockets: never redirected */
	__u64 daemon_cgid;	/* lanyardd's own cgroup: never redirected */
	__be32 listen4;		/* 127.0.0.1, network order */
	__be16 listen_port;	/* network order */
	__u16 pad;
	__u8 listen6[16];	/* ::1 */
	__u32 daemon_tgid;	/* lanyardd's pid: its own TLS writes are never observed */
	__u32 wl_gen;		/* bumped after each change of `workloads` (and each write of
				 * config): answers cached per cgroup are stale */
};
_Static_assert(sizeof(struct ly_config) == 48, "ly_config ABI");

/* events: ring buffer records start with this header */
enum ly_event_type {
	LY_EV_CONNECT = 1,	/* a connect() was redirected; body = struct ly_flow */
	LY_EV_REFUSED = 2,	/* a revoked workload's connect() was refused; body = struct ly_flow */
	LY_EV_DATA = 3,		/* a TLS library write or a plain-HTTP write; struct ly_event_data */
	LY_EV_EXEC = 4,		/* exec in an enrolled/observed cgroup; struct ly_event_exec */
	LY_EV_FORK = 5,		/* a process of an enrolled/observed cgroup forked a new one
				 * (per-process probes only); struct ly_event_exec, pid = the child */
	LY_EV_MOVE = 6,		/* a process was moved into an enrolled/observed cgroup
				 * (per-process probes only); struct ly_event_exec, cgroup_id =
				 * the destination */
	LY_EV_UNSEEN = 7,	/* an observed process sent on a TCP socket in a way whose bytes
				 * cannot be read (hdr.flags: enum ly_unseen); struct
				 * ly_event_exec; at most once a minute per process */
};

/* How an LY_EV_UNSEEN send was made. */
enum ly_unseen {
	LY_UNSEEN_IO_URING = 1,	/* submitted through io_uring (inline, or an io-wq worker) */
	LY_UNSEEN_SENDMMSG = 2,	/* sendmmsg(2) */
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

/*
 * What the TLS uprobes (bpf/tls.bpf.c) and the plain-HTTP write hook saw an app in an
 * enrolled or observed cgroup write on a TCP socket.  Only writes whose first bytes are an
 * HTTP request line are captured, and only up to the end of the head (an empty line: CRLF CRLF,
 * LF LF or LF CRLF) or, with no end in the first LY_CAP_LEN bytes, up to the last complete
 * line: bodies never leave the kernel.  Writes that are not a request head
 * produce an event without data only the first time an SSL object is seen on a socket
 * (to tag the flow with its SNI).  hdr.len = offsetof(data) + caplen.
 */
#define LY_CAP_LEN		2048	/* power of two: the verifier bounds reads with a mask */
#define LY_SNI_LEN		128	/* SNI as set by SSL_ctrl / gnutls_server_name_set */

enum ly_lib {
	LY_LIB_PLAIN = 0,	/* write(2)/sendto(2)/sendmsg(2) outside any TLS library call */
	LY_LIB_OPENSSL = 1,	/* SSL_write, SSL_write_ex */
	LY_LIB_GNUTLS = 2,	/* gnutls_record_send */
};

/*
 * The library functions probed: the cookie of each probe (an offset of a uprobe.multi link,
 * or a perf-event link of its own), which tells ly_tls_entry what it was called for.
 */
enum ly_tls_fn {
	LY_FN_SSL_CTRL,
	LY_FN_SSL_SET_FD,
	LY_FN_SSL_FREE,
	LY_FN_SSL_WRITE,
	LY_FN_SSL_WRITE_EX,
	LY_FN_GNUTLS_SNI,	/* gnutls_server_name_set */
	LY_FN_GNUTLS_FD,	/* gnutls_transport_set_int2 */
	LY_FN_GNUTLS_DEINIT,
	LY_FN_GNUTLS_SEND,	/* gnutls_record_send */
	LY_FN_COUNT
};

/* ly_event_data.hdr.flags */
#define LY_DATA_HEAD		(1U << 0)	/* data[] starts with an HTTP request line */
#define LY_DATA_TRUNC		(1U << 1)	/* no end of head in the capture: cut after its
						 * last complete line */
#define LY_DATA_SNI		(1U << 2)	/* sni[] is set */
#define LY_DATA_FIRST		(1U << 3)	/* first event of this SSL object on this socket */

struct ly_event_data {
	struct ly_event_hdr hdr;
	__u64 cgroup_id;	/* leaf cgroup of the writing task */
	__u64 ssl;		/* SSL * / gnutls_session_t in the app; 0 for LY_LIB_PLAIN */
	__u32 pid;		/* tgid */
	__u32 tid;
	__u32 workload_id;	/* of the enrolled/observed ancestor */
	__s32 fd;		/* the socket the library wrote to; -1 if unknown */
	__u32 len;		/* bytes the app passed to this write call */
	__u16 caplen;		/* valid bytes in data[] */
	__u8 lib;		/* enum ly_lib */
	__u8 pad;
	__u16 family;		/* LY_AF_INET / LY_AF_INET6 of the socket; 0 if unknown */
	__be16 sport;		/* the socket's local port, network order */
	__be16 dport;		/* its peer port (15001 if lanyardd redirected it), network order */
	__u16 pad2;
	__u8 saddr[16];		/* local address (v4 in the first 4 bytes) */
	__u8 daddr[16];		/* peer address */
	char comm[LY_COMM_LEN];
	char sni[LY_SNI_LEN];	/* NUL-terminated when LY_DATA_SNI */
	__u8 data[LY_CAP_LEN];
};
_Static_assert(sizeof(struct ly_event_data) == 2288, "ly_event_data ABI");

/* An exec in an enrolled or observed cgroup: lanyardd looks for TLS libraries to probe. */
struct ly_event_exec {
	struct ly_event_hdr hdr;
	__u64 cgroup_id;
	__u32 pid;
	__u32 workload_id;
	char comm[LY_COMM_LEN];
};
_Static_assert(sizeof(struct ly_event_exec) == 48, "ly_event_exec ABI");

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
	LY_STAT_TLS_WRITE,	/* TLS library write from an enrolled/observed cgroup */
	LY_STAT_TLS_NOFD,	/* ... whose socket could not be found (no syscall seen) */
	LY_STAT_DATA_EVENT,	/* ly_event_data emitted (TLS or plain) */
	LY_STAT_DATA_DROP,	/* ... dropped: ring buffer full */
	LY_STAT_EXEC,		/* exec in an enrolled/observed cgroup */
	LY_STAT_TLS_STALE,	/* in-flight library write of another process/cgroup or > 1 s old */
	LY_STAT_DATA_READ_FAIL,	/* the app's buffer could not be read (bpf_probe_read_user) */
	LY_STAT_FORK,		/* new process forked in an enrolled/observed cgroup
				 * (per-process probes only) */
	LY_STAT_MOVE,		/* process moved into an enrolled/observed cgroup
				 * (per-process probes only) */
	LY_STAT_SEND_UNSEEN,	/* observed process's TCP send through io_uring or sendmmsg:
				 * its bytes not read */
	LY_STAT_MAX,
};

#endif /* LANYARD_ABI_H */
