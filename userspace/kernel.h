/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Copyright (c) 2026 The lanyard authors */
/*
 * The kernel side as seen from lanyardd: load the bpf skeleton, pin maps and
 * links under the pin folder, attach at the cgroup2 root, mirror the policy
 * into the workloads/routes maps (cgroup paths resolved to ids, late cgroups
 * enrolled by inotify + rescan), take flow records on accept, read stats and
 * the event ring buffer.
 */
#ifndef LY_KERNEL_H
#define LY_KERNEL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <linux/types.h>
#include "lanyard/abi.h"
#include "policy.h"

#define KERNEL_DEFAULT_PIN_DIR	"/sys/fs/bpf/lanyard"
#define KERNEL_DEFAULT_MARK	0x4c59	/* "LY" */

struct kernel;

struct kernel_opts {
	const char *pin_dir;		/* NULL: KERNEL_DEFAULT_PIN_DIR */
	uint32_t mark;			/* SO_MARK of lanyardd's sockets */
	uint16_t listen_port;		/* host order */
	uint64_t daemon_cgid;		/* lanyardd's own cgroup id, never enrolled */
	enum policy_tls_probes tls_probes;	/* where the TLS uprobes go (auto: see below) */
};

/* What the daemon wants enrolled: parallel to policy->workloads. */
struct kernel_workload {
	uint32_t id;			/* stable workload id (daemon registry) */
	uint32_t flags;			/* LY_WL_ENFORCE | LY_WL_REVOKED; kernel_apply() turns
					 * ENFORCE into LY_WL_OBSERVE for `mode: observe` */
};

/*
 * Find (or mount) bpffs and the cgroup2 mount (unified /sys/fs/cgroup or
 * hybrid /sys/fs/cgroup/unified), load the programs, reuse or create the
 * pinned maps, write config, attach ly_connect4/6 and ly_sockops at the
 * cgroup2 root with BPF_F_ALLOW_MULTI and pin the links (replacing links a
 * previous lanyardd pinned).  NULL with a message in err on failure.
 */
struct kernel *kernel_open(const struct kernel_opts *o, char *err, size_t errlen);

/* Close fds.  detach != 0 also unpins links and maps (enforcement stops). */
void kernel_close(struct kernel *k, int detach);

/* Remove everything pinned under pin_dir (links first). For `lanyardd --detach`. */
int kernel_detach_pinned(const char *pin_dir);

/*
 * The cgroup id (cgroup2 inode) of the calling process, from /proc/self/cgroup
 * and the cgroup2 mount: lanyardd passes its own as kernel_opts.daemon_cgid.
 * 0 or -errno.
 */
int kernel_self_cgroup_id(uint64_t *out);

/* the cgroup2 mount point found at kernel_open (e.g. "/sys/fs/cgroup/unified") */
const char *kernel_cgroup_root(const struct kernel *k);

/*
 * Mirror the policy into the maps: routes (one LPM entry per address of each
 * route, route_id = route index) and workloads (each workload's cgroup path
 * resolved to its id now, or later when it appears).  Stale entries are
 * removed.  wls has p->nworkloads entries.  Keeps a private copy of what it
 * needs; p may be freed after the next kernel_apply.  0 or -errno.
 */
int kernel_apply(struct kernel *k, const struct policy *p, const struct kernel_workload *wls);

/* Change one workload's flags (revoke) in the map at once. 0 or -errno. */
int kernel_set_workload_flags(struct kernel *k, uint32_t workload_id, uint32_t flags);

/*
 * Re-resolve workload cgroup paths (a cgroup created or re-created since):
 * called when kernel_watch_fd() is readable and from a periodic timer.
 * Returns the number of map entries changed.
 */
int kernel_rescan(struct kernel *k);
/* inotify fd to add to the event loop (-1 if unavailable) */
int kernel_watch_fd(const struct kernel *k);

/* cgroup id enrolled for workload index i of the last applied policy, 0 if not (yet) */
uint64_t kernel_workload_cgid(const struct kernel *k, size_t i);

/*
 * Take (look up and delete) the flow record published for an accepted
 * connection whose peer is addr.  0 and *out filled, -ENOENT when the kernel
 * redirected no such connection, other -errno on error.
 */
int kernel_take_flow(struct kernel *k, const struct sockaddr *peer, struct ly_flow *out);

/*
 * Put the TLS uprobes (bpf/tls.bpf.c) on the library file path: OpenSSL's
 * SSL_write, SSL_write_ex, SSL_ctrl, SSL_set_fd, SSL_free when libs has
 * 1u << LY_LIB_OPENSSL, GnuTLS's gnutls_record_send, gnutls_server_name_set,
 * gnutls_transport_set_int2, gnutls_deinit when it has 1u << LY_LIB_GNUTLS.
 * pid -1: for every process that maps the file (once per (dev, ino)); pid > 0:
 * for that process only, now and after its execs, until it exits (once per
 * (dev, ino, pid); the probes of a process that exited are released before the
 * next attach, or by kernel_tls_poll()).  0 when already probed.  A function
 * missing from the file is skipped.  Returns the number of probes attached, or
 * -errno (err says why; -ENOTSUP when tls.bpf.o could not be loaded, -ESRCH
 * when the process is gone or not in a workload's cgroup: its pid was reused).
 * Links are not pinned: they go with kernel_close().  With the attach helper and
 * per-process probes, a pid > 0 request is only queued: 0 at once (-EAGAIN when
 * too many are), the outcome is logged by kernel_tls_poll().
 */
int kernel_tls_attach(struct kernel *k, const char *path, unsigned libs, pid_t pid, char *err,
		      size_t errlen);

/*
 * Are the TLS uprobes made for each process of the enrolled and observed cgroups (1), or
 * for every process on the host (0)?  tls_probes: auto is per process when the kernel has
 * uprobe.multi links that filter by process (Linux 6.10, or a 6.6+ with the fix): one
 * link per process and library, made in under a millisecond; without them a process's
 * probes come too late for a short-lived one.
 */
int kernel_tls_per_process(const struct kernel *k);

/*
 * Call often (lanyardd: every 100 ms): read the helper's answers to queued requests, or
 * without a helper release the probes of processes that exited (the helper does that by
 * itself).  Fills failed with up to max processes (alive) whose queued attach failed since
 * the last call, to be asked again; returns how many.
 */
size_t kernel_tls_poll(struct kernel *k, pid_t *failed, size_t max);

/* Per-process attach requests sent to the helper so far (lanyard_tls_attach_requests_total). */
uint64_t kernel_tls_requests(const struct kernel *k);

/*
 * Fork the attach helper (before lanyardd drops its capabilities): a child that
 * keeps what creating uprobes needs, so that library copies found later can
 * still be probed; kernel_tls_attach() then goes through it.  0 or -errno
 * (-ENOTSUP without tls.bpf.o); without it kernel_tls_attach() attaches here.
 */
int kernel_tls_helper_start(struct kernel *k);

/* Sum the per-CPU stats slots into out[LY_STAT_MAX]. 0 or -errno. */
int kernel_read_stats(struct kernel *k, uint64_t *out);

/* Ring buffer: fd for the loop, and a consumer that calls cb per valid event. */
typedef void (*kernel_event_cb)(void *ctx, const struct ly_event_hdr *ev, size_t len);
int kernel_events_fd(const struct kernel *k);
int kernel_events_poll(struct kernel *k, kernel_event_cb cb, void *ctx);

/*
 * Pure key encoders (no kernel needed; unit-tested in tests/unit/test_maps.c).
 *
 * kernel_route_key: the `routes` LPM key for one address/prefix of a route of
 * workload_id.  port is host order (0 = any).  An IPv4-mapped IPv6 prefix
 * (::ffff:0:0/96 or longer) is encoded as IPv4, as ly_connect6 looks it up.
 * Address bits past the prefix are cleared so that equal routes encode to
 * equal keys.  0, or -EINVAL for a bad family or prefix length.
 *
 * kernel_peer_key: the `flows_by_peer` key for a peer address as
 * getpeername() returns it (sockaddr_in, sockaddr_in6; v4-mapped -> IPv4).
 * 0, or -EAFNOSUPPORT.
 */
int kernel_route_key(struct ly_route_key *key, uint32_t workload_id, const struct policy_addr *a,
		     uint16_t port);
int kernel_peer_key(struct ly_peer_key *key, const struct sockaddr *sa);

#endif /* LY_KERNEL_H */
