// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Copyright (c) 2026 The lanyard authors */
/*
 * connect() redirection: ly_connect4/6 send an enrolled cgroup's connections
 * that match one of its routes to lanyardd's listener and record who dialled
 * where; ly_sockops publishes that record under the client's local addr:port.
 */
/* vmlinux.h has a typedef named config (zstd); our map must be called config */
#define config ly_vmlinux_config
#include "vmlinux.h"
#undef config
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "lanyard/abi.h"
#include "compiler.bpf.h"
#include "maps.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* A destination (connect) or local endpoint (sockops), v4-mapped folded into INET. */
struct ly_dst {
	__u16 family;		/* LY_AF_INET / LY_AF_INET6 */
	__be16 port;		/* network order */
	__u8 mapped;		/* was ::ffff:a.b.c.d on an AF_INET6 socket */
	__u8 pad[3];
	__u32 addr[4];		/* network order; IPv4 in addr[0] */
};

static __always_inline int ip6_is_v4mapped(const __u32 *a)
{
	/* RFC 4291 2.5.5.2: ::ffff:0:0/96 */
	return a[0] == 0 && a[1] == 0 && a[2] == bpf_htonl(0xffff);
}

/* ctx->user_ip6[] may only be read with 4-byte loads: copy word by word */
static __always_inline void dst_from_ctx6(struct bpf_sock_addr *ctx, struct ly_dst *d)
{
	__u32 a[4];

	a[0] = ctx->user_ip6[0];
	a[1] = ctx->user_ip6[1];
	a[2] = ctx->user_ip6[2];
	a[3] = ctx->user_ip6[3];
	/* user_port: network order in the low 16 bits */
	d->port = (__be16)ctx->user_port;
	if (ip6_is_v4mapped(a)) {
		d->family = LY_AF_INET;
		d->mapped = 1;
		d->addr[0] = a[3];
		return;
	}
	d->family = LY_AF_INET6;
	__builtin_memcpy(d->addr, a, sizeof(a));
}

static __always_inline int dst_is_listener(const struct ly_config *cfg, const struct ly_dst *d)
{
	__u32 l6[4];

	if (d->port != cfg->listen_port)
		return 0;
	if (d->family == LY_AF_INET)
		return d->addr[0] == cfg->listen4;
	__builtin_memcpy(l6, cfg->listen6, sizeof(l6));
	/* no memcmp in bpf: clang would emit a libc call */
	return d->addr[0] == l6[0] && d->addr[1] == l6[1] && d->addr[2] == l6[2] &&
	       d->addr[3] == l6[3];
}

/* Longest prefix for {workload, exact port}, then for {workload, any port}. */
static __always_inline int route_find(const struct ly_dst *d, __u32 workload_id,
				      struct ly_route *out)
{
	struct ly_route_key key = {};
	struct ly_route *r;

	key.prefixlen = LY_ROUTE_FIXED_BITS + (d->family == LY_AF_INET ? 32 : 128);
	key.workload_id = workload_id;
	key.port = d->port;
	key.family = d->family;
	__builtin_memcpy(key.addr, d->addr, sizeof(key.addr));
	r = bpf_map_lookup_elem(&routes, &key);
	if (!r) {
		key.port = 0;
		r = bpf_map_lookup_elem(&routes, &key);
	}
	if (!r)
		return -ENOENT;
	*out = *r;
	return 0;
}

static __always_inline void flow_fill(struct bpf_sock_addr *ctx, const struct ly_dst *d,
				      const struct ly_workload *w, const struct ly_route *r,
				      struct ly_flow *f)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u64 uid_gid = bpf_get_current_uid_gid();

	__builtin_memset(f, 0, sizeof(*f));
	f->cookie = bpf_get_socket_cookie(ctx);
	f->cgroup_id = bpf_get_current_cgroup_id();
	f->ts_ns = bpf_ktime_get_ns();
	f->pid = pid_tgid >> 32;
	f->tid = (__u32)pid_tgid;
	f->uid = (__u32)uid_gid;
	f->gid = uid_gid >> 32;
	f->workload_id = w->workload_id;
	f->route_id = r->route_id;
	f->family = d->family;
	f->dport = d->port;
	__builtin_memcpy(f->daddr, d->addr, sizeof(f->daddr));
	bpf_get_current_comm(f->comm, sizeof(f->comm));
}

/*
 * Decide what happens to this connect().  0: redirect, flow filled in;
 * -EPERM: the workload is revoked, flow filled in; -ENOENT: leave the
 * connection untouched (the reason is counted here).
 */
static __always_inline int connect_match(struct bpf_sock_addr *ctx, const struct ly_config *cfg,
					 const struct ly_dst *d, struct ly_flow *f)
{
	struct ly_workload w;
	struct ly_route r;
	struct bpf_sock *sk = ctx->sk;

	if (!(cfg->flags & LY_CFG_ENABLED)) {
		stat_inc(LY_STAT_SKIP_DISABLED);
		return -ENOENT;
	}
	/* only TCP: UDP has no accept() for lanyardd, MPTCP/SCTP are not proxied */
	if (ctx->type != SOCK_STREAM || ctx->protocol != IPPROTO_TCP) {
		stat_inc(LY_STAT_SKIP_PROTO);
		return -ENOENT;
	}
	/* loop guard 1: lanyardd's upstream sockets carry SO_MARK */
	if (cfg->mark && sk && sk->mark == cfg->mark) {
		stat_inc(LY_STAT_SKIP_MARK);
		return -ENOENT;
	}
	/* loop guard 2: lanyardd's own cgroup, whatever its sockets are marked with */
	if (cfg->daemon_cgid && bpf_get_current_cgroup_id() == cfg->daemon_cgid) {
		stat_inc(LY_STAT_SKIP_DAEMON);
		return -ENOENT;
	}
	if (dst_is_listener(cfg, d)) {
		stat_inc(LY_STAT_SKIP_LISTENER);
		return -ENOENT;
	}
	if (workload_find(&w) < 0)
		return -ENOENT;		/* unenrolled: CONNECT - ENROLLED - SKIP_* */
	stat_inc(LY_STAT_ENROLLED);
	if (route_find(d, w.workload_id, &r) < 0) {
		stat_inc(LY_STAT_NO_ROUTE);
		return -ENOENT;
	}
	flow_fill(ctx, d, &w, &r, f);
	if (w.flags & LY_WL_REVOKED)
		return -EPERM;
	if (!(w.flags & LY_WL_ENFORCE)) {
		stat_inc(LY_STAT_SKIP_OBSERVE);
		return -ENOENT;
	}
	return 0;
}

/* Copy the flow into the socket's storage, where ly_sockops will find it. */
static __always_inline int flow_store(struct bpf_sock_addr *ctx, const struct ly_flow *f)
{
	struct ly_flow *st;

	if (!ctx->sk)
		return -ENOENT;
	st = bpf_sk_storage_get(&flows, ctx->sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!st)
		return -ENOMEM;
	/* a socket may connect() again after a failure: overwrite every field */
	__builtin_memcpy(st, f, sizeof(*st));
	return 0;
}

static __always_inline int event_emit(__u16 type, const struct ly_flow *f)
{
	struct ly_event_flow *ev;

	ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);
	if (!ev)
		return -ENOSPC;
	ev->hdr.type = type;
	ev->hdr.len = sizeof(*ev);
	ev->hdr.flags = 0;
	ev->hdr.ts_ns = f->ts_ns;
	__builtin_memcpy(&ev->flow, f, sizeof(*f));
	bpf_ringbuf_submit(ev, 0);
	return 0;
}

static __always_inline void event_emit_counted(__u16 type, const struct ly_flow *f)
{
	if (event_emit(type, f) < 0)
		stat_inc(LY_STAT_RINGBUF_FULL);
}

/*
 * Everything but the verdict.  0: redirect (flow stored, event sent);
 * -ENOENT: leave untouched; -EPERM: revoked; -ENOMEM: matched, but the flow
 * record could not be stored.  Each outcome is counted here.
 */
static __always_inline int connect_handle(struct bpf_sock_addr *ctx, const struct ly_config *cfg,
					  const struct ly_dst *d)
{
	struct ly_flow f;
	int err;

	err = connect_match(ctx, cfg, d, &f);
	if (err == -EPERM) {
		stat_inc(LY_STAT_REFUSED);
		event_emit_counted(LY_EV_REFUSED, &f);
		return err;
	}
	if (err < 0)
		return err;
	err = flow_store(ctx, &f);
	if (err < 0) {
		stat_inc(LY_STAT_STORAGE_FAIL);
		return err;
	}
	event_emit_counted(LY_EV_CONNECT, &f);
	stat_inc(LY_STAT_REDIRECTED);
	return 0;
}

/*
 * The verdict, in one place for both families.  Fail closed: a matched
 * connection without a flow record would be rejected by lanyardd anyway;
 * refusing it here gives the app a clear EPERM, never a silent bypass.
 */
static __always_inline int connect_verdict(int err)
{
	if (err == -ENOENT)
		return LY_VERDICT_ALLOW;
	return err < 0 ? LY_VERDICT_DENY : LY_VERDICT_ALLOW;
}

SEC("cgroup/connect4")
int ly_connect4(struct bpf_sock_addr *ctx)
{
	const struct ly_config *cfg = config_get();
	struct ly_dst d = {};
	int err;

	stat_inc(LY_STAT_CONNECT);
	if (!cfg)
		return LY_VERDICT_ALLOW;
	d.family = LY_AF_INET;
	d.port = (__be16)ctx->user_port;	/* network order in the low 16 bits */
	d.addr[0] = ctx->user_ip4;
	err = connect_handle(ctx, cfg, &d);
	if (err < 0)
		return connect_verdict(err);
	ctx->user_ip4 = cfg->listen4;
	ctx->user_port = cfg->listen_port;
	return connect_verdict(0);
}

SEC("cgroup/connect6")
int ly_connect6(struct bpf_sock_addr *ctx)
{
	const struct ly_config *cfg = config_get();
	struct ly_dst d = {};
	__u32 l6[4];
	int err;

	stat_inc(LY_STAT_CONNECT);
	if (!cfg)
		return LY_VERDICT_ALLOW;
	dst_from_ctx6(ctx, &d);
	err = connect_handle(ctx, cfg, &d);
	if (err < 0)
		return connect_verdict(err);
	if (d.mapped) {
		/* an AF_INET6 socket talking IPv4: keep it IPv4, to ::ffff:127.0.0.1 */
		ctx->user_ip6[0] = 0;
		ctx->user_ip6[1] = 0;
		ctx->user_ip6[2] = bpf_htonl(0xffff);
		ctx->user_ip6[3] = cfg->listen4;
	} else {
		__builtin_memcpy(l6, cfg->listen6, sizeof(l6));
		ctx->user_ip6[0] = l6[0];
		ctx->user_ip6[1] = l6[1];
		ctx->user_ip6[2] = l6[2];
		ctx->user_ip6[3] = l6[3];
	}
	ctx->user_port = cfg->listen_port;
	return connect_verdict(0);
}

/*
 * The socket's local endpoint, as lanyardd's getpeername() on the accepted
 * socket will report it.  local_port is HOST order in sock_ops.
 */
static __always_inline void local_from_skops(struct bpf_sock_ops *skops, struct ly_dst *d)
{
	__u32 a[4];

	d->port = bpf_htons((__u16)skops->local_port);
	if (skops->family == LY_AF_INET) {
		d->family = LY_AF_INET;
		d->addr[0] = skops->local_ip4;
		return;
	}
	a[0] = skops->local_ip6[0];
	a[1] = skops->local_ip6[1];
	a[2] = skops->local_ip6[2];
	a[3] = skops->local_ip6[3];
	if (ip6_is_v4mapped(a)) {
		d->family = LY_AF_INET;
		d->mapped = 1;
		d->addr[0] = a[3];
		return;
	}
	d->family = LY_AF_INET6;
	__builtin_memcpy(d->addr, a, sizeof(a));
}

/*
 * Is the socket connected to the listener?  A socket whose first connect()
 * was redirected and failed keeps its storage; if it then connects
 * elsewhere, its stale record must not be published.
 */
static __always_inline int remote_is_listener(struct bpf_sock_ops *skops,
					      const struct ly_config *cfg)
{
	struct ly_dst d = {};
	__u32 a[4];

	/* remote_port: network order, shifted into the high half: ntohl gives host order */
	d.port = bpf_htons((__u16)bpf_ntohl(skops->remote_port));
	if (skops->family == LY_AF_INET) {
		d.family = LY_AF_INET;
		d.addr[0] = skops->remote_ip4;
		return dst_is_listener(cfg, &d);
	}
	a[0] = skops->remote_ip6[0];
	a[1] = skops->remote_ip6[1];
	a[2] = skops->remote_ip6[2];
	a[3] = skops->remote_ip6[3];
	if (ip6_is_v4mapped(a)) {
		d.family = LY_AF_INET;
		d.addr[0] = a[3];
	} else {
		d.family = LY_AF_INET6;
		__builtin_memcpy(d.addr, a, sizeof(a));
	}
	return dst_is_listener(cfg, &d);
}

static __always_inline void peer_key_from_local(struct bpf_sock_ops *skops,
						struct ly_peer_key *key)
{
	struct ly_dst d = {};

	local_from_skops(skops, &d);
	__builtin_memset(key, 0, sizeof(*key));
	key->family = d.family;
	key->port = d.port;
	__builtin_memcpy(key->addr, d.addr, sizeof(key->addr));
}

/* 0: published; -ENOENT: not a redirected socket; other -errno: update failed */
static __always_inline int peer_publish(struct bpf_sock_ops *skops)
{
	const struct ly_config *cfg = config_get();
	struct bpf_sock *sk = skops->sk;
	struct ly_peer_key key;
	struct ly_flow *f;

	if (!sk || !cfg)
		return -ENOENT;
	f = bpf_sk_storage_get(&flows, sk, 0, 0);
	if (!f)
		return -ENOENT;
	if (!remote_is_listener(skops, cfg))
		return -ENOENT;
	peer_key_from_local(skops, &key);
	return bpf_map_update_elem(&flows_by_peer, &key, f, BPF_ANY);
}

/*
 * The socket is gone: drop its record if lanyardd never took it, so that a
 * later socket on the same local addr:port can never be matched with it.
 * The cookie check keeps a newer socket's record (port reuse) in place.
 */
static __always_inline int peer_unpublish(struct bpf_sock_ops *skops)
{
	struct ly_peer_key key;
	struct ly_flow *f;

	peer_key_from_local(skops, &key);
	f = bpf_map_lookup_elem(&flows_by_peer, &key);
	if (!f)
		return -ENOENT;
	if (f->cookie != bpf_get_socket_cookie(skops))
		return -ENOENT;
	return bpf_map_delete_elem(&flows_by_peer, &key);
}

SEC("sockops")
int ly_sockops(struct bpf_sock_ops *skops)
{
	int err;

	switch (skops->op) {
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
		err = peer_publish(skops);
		if (err == -ENOENT)
			break;
		if (err < 0) {
			stat_inc(LY_STAT_PUBLISH_FAIL);
			break;
		}
		stat_inc(LY_STAT_PUBLISHED);
		/* ask for STATE_CB so the record is dropped when the socket closes */
		bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags |
						 BPF_SOCK_OPS_STATE_CB_FLAG);
		break;
	case BPF_SOCK_OPS_STATE_CB:
		if (skops->args[1] == BPF_TCP_CLOSE && peer_unpublish(skops) == 0)
			stat_inc(LY_STAT_PEER_CLOSED);
		break;
	default:
		break;
	}
	return LY_SOCKOPS_OK;
}
