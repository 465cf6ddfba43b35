// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Copyright (c) 2026 The lanyard authors */
/*
 * TLS observation: uprobes on OpenSSL and GnuTLS see what an enrolled or
 * observed app writes before it is encrypted; the send the library then makes
 * names the socket.  The join is per thread: a library write's entry marks the
 * thread "in flight" with the plaintext buffer, and the first TCP send of that
 * thread until the library returns names the socket and emits the request head.
 * Outside library writes, the same send hook captures plain-HTTP request heads
 * of observed workloads.  Read-only: nothing here writes application memory.
 */
/* vmlinux.h has a typedef named config (zstd); our map must be called config */
#define config ly_vmlinux_config
#include "vmlinux.h"
#undef config
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

#include "lanyard/abi.h"
#include "compiler.bpf.h"
#include "maps.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define SSL_CTRL_SET_TLSEXT_HOSTNAME	55
#define S_IFMT_				00170000
#define S_IFSOCK_			0140000
#define LY_TLS_THREADS			16384	/* threads inside a library write at once */
#define LY_TLS_OBJECTS			65536	/* SSL objects / sessions remembered */
#define LY_CG_CACHE			4096	/* cgroups whose task_watched() answer is kept */
#define LY_METHOD_PEEK			8	/* longest method + space: "OPTIONS ", "CONNECT " */
#define LY_INFLIGHT_MAX_NS		1000000000ULL	/* older: a missed return, not a write */
#define LY_DATA_RINGBUF_BYTES		(1024 * 1024)
#define LY_TS_COMPAT			0x0002	/* x86 thread_info.status: 32-bit syscall */
#define LY_PSR_MODE32_BIT		0x10	/* arm64 pstate: AArch32 task */
#define LY_PF_IO_WORKER			0x00000010	/* task->flags: an io_uring io-wq worker */
#define LY_UNSEEN_EVERY_NS		(60ULL * 1000000000ULL)	/* LY_EV_UNSEEN per process */
#define LY_UNSEEN_PROCS			1024

/* A thread inside SSL_write / SSL_write_ex / gnutls_record_send. */
struct tls_inflight {
	__u64 ssl;
	__u64 buf;		/* the app's plaintext */
	__u32 len;
	__u8 lib;		/* enum ly_lib */
	__u8 done;		/* the event of this call is out (one per library call) */
	__u16 pad;
	__u32 workload_id;
	__u32 tgid;		/* the entry's process and cgroup: a reused tid is not this call */
	__u64 cgroup_id;
	__u64 ts_ns;		/* entry time: a return missed long ago is not this write */
};

/* What the library told us about one SSL object / session of a process. */
struct tls_key {
	__u32 tgid;
	__u32 pad;
	__u64 ssl;
};

struct tls_obj {
	__u64 sk;		/* struct sock * of the last event: a new socket = first again */
	__s32 fd;		/* SSL_set_fd / gnutls_transport_set_int2; -1 if never given */
	__u32 has_sni;
	char sni[LY_SNI_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, LY_TLS_THREADS);
	__type(key, __u64);		/* pid_tgid */
	__type(value, struct tls_inflight);
} tls_inflight SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, LY_TLS_OBJECTS);
	__type(key, struct tls_key);
	__type(value, struct tls_obj);
} tls_objs SEC(".maps");

/*
 * LY_EV_DATA and LY_EV_EXEC have their own ring, not pinned: a chatty app fills this
 * one, never the shared `events` ring that carries connect/refused records (flow.deny).
 */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, LY_DATA_RINGBUF_BYTES);
} data_events SEC(".maps");

/* An event is 2288 bytes: built here, not on the 512-byte stack. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ly_event_data);
} tls_scratch SEC(".maps");

/* A socket as the event reports it. */
struct sock_info {
	__u64 sk;
	__u32 mark;
	__u16 family;
	__be16 sport, dport;
	__u8 saddr[16], daddr[16];
};

/* What task_watched() found for one cgroup. */
struct cg_watch {
	__u32 gen;		/* ly_config.wl_gen when it was found */
	__u32 watched;
	struct ly_workload w;
};

/*
 * task_watched()'s answer per cgroup, until `workloads` changes: every send of every
 * task on the host asks, and one lookup here is cheaper than one per cgroup level.
 * A cgroup's ancestors never change, and its id is never reused.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, LY_CG_CACHE);
	__type(key, __u64);		/* cgroup id */
	__type(value, struct cg_watch);
} cg_watch SEC(".maps");

/*
 * Is the current task in an enrolled or observed workload (and not lanyardd)?
 * lanyardd's cgroup is never in `workloads`; the explicit checks (its cgroup, its
 * pid; its sockets' SO_MARK in sock_is_daemons) keep its own SSL_write, which
 * carries injected credentials, out even if it were.
 */
static __always_inline int task_watched(struct ly_workload *w)
{
	const struct ly_config *cfg = config_get();
	__u64 cgid = bpf_get_current_cgroup_id();
	struct cg_watch *c, fresh = {};

	if (!cfg || !(cfg->flags & LY_CFG_ENABLED))
		return 0;
	if (cfg->daemon_cgid && cgid == cfg->daemon_cgid)
		return 0;
	if (cfg->daemon_tgid && bpf_get_current_pid_tgid() >> 32 == cfg->daemon_tgid)
		return 0;
	/* the generation before the walk: a change during it makes the answer stale at once */
	fresh.gen = *(volatile const __u32 *)&cfg->wl_gen;
	c = bpf_map_lookup_elem(&cg_watch, &cgid);
	if (c && c->gen == fresh.gen) {
		*w = c->w;
		return c->watched;
	}
	fresh.watched = workload_find(&fresh.w) == 0 &&
			(fresh.w.flags & (LY_WL_ENFORCE | LY_WL_OBSERVE)) != 0;
	bpf_map_update_elem(&cg_watch, &cgid, &fresh, BPF_ANY);
	*w = fresh.w;
	return fresh.watched;
}

/* A socket of lanyardd's (SO_MARK): never observed, wherever the write comes from. */
static __always_inline int sock_is_daemons(const struct sock_info *si)
{
	const struct ly_config *cfg = config_get();

	return !cfg || (cfg->mark && si->mark == cfg->mark);
}

static __always_inline int ip6_v4mapped(const __u32 *a)
{
	return a[0] == 0 && a[1] == 0 && a[2] == bpf_htonl(0xffff);
}

/* fd -> struct file -> struct socket -> struct sock of the current task; NULL: not a socket. */
static __always_inline struct sock *sock_of_fd(int fd)
{
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();
	struct file **fds;
	struct file *f = NULL;
	struct socket *so;
	unsigned int max;

	if (fd < 0)
		return NULL;
	fds = BPF_CORE_READ(t, files, fdt, fd);
	max = BPF_CORE_READ(t, files, fdt, max_fds);
	if (!fds || (unsigned int)fd >= max)
		return NULL;
	bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]);
	if (!f || (BPF_CORE_READ(f, f_inode, i_mode) & S_IFMT_) != S_IFSOCK_)
		return NULL;
	so = BPF_CORE_READ(f, private_data);
	return BPF_CORE_READ(so, sk);
}

/*
 * A TCP socket's 4-tuple (v4-mapped folded into INET, as ly_sockops does).  0, or
 * -ENOENT when sk is not a TCP stream socket.
 */
static __always_inline int sock_info_of(struct sock *sk, struct sock_info *si)
{
	__u32 a[4];

	if (!sk || BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP ||
	    BPF_CORE_READ(sk, sk_type) != SOCK_STREAM)
		return -ENOENT;
	si->sk = (__u64)sk;
	si->mark = BPF_CORE_READ(sk, sk_mark);
	si->family = BPF_CORE_READ(sk, __sk_common.skc_family);
	si->sport = bpf_htons(BPF_CORE_READ(sk, __sk_common.skc_num));
	si->dport = BPF_CORE_READ(sk, __sk_common.skc_dport);
	__builtin_memset(si->saddr, 0, sizeof(si->saddr));
	__builtin_memset(si->daddr, 0, sizeof(si->daddr));
	/* BPF_CORE_READ_INTO copies sizeof(*dst): read into whole objects, never into arrays */
	if (si->family == LY_AF_INET) {
		__be32 v4;

		v4 = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
		__builtin_memcpy(si->saddr, &v4, 4);
		v4 = BPF_CORE_READ(sk, __sk_common.skc_daddr);
		__builtin_memcpy(si->daddr, &v4, 4);
		return 0;
	}
	if (si->family != LY_AF_INET6)
		return -ENOENT;
	BPF_CORE_READ_INTO(&a, sk, __sk_common.skc_v6_daddr);
	if (ip6_v4mapped(a)) {
		si->family = LY_AF_INET;
		__builtin_memcpy(si->daddr, &a[3], 4);
		BPF_CORE_READ_INTO(&a, sk, __sk_common.skc_v6_rcv_saddr);
		__builtin_memcpy(si->saddr, &a[3], 4);
		return 0;
	}
	__builtin_memcpy(si->daddr, a, 16);
	BPF_CORE_READ_INTO(&a, sk, __sk_common.skc_v6_rcv_saddr);
	__builtin_memcpy(si->saddr, a, 16);
	return 0;
}

/* The first k bytes of the string s as a little-endian word: constant-folded. */
#define LY_WORD(s, k)	(LY_B(s, 0) | LY_B(s, 1) << 8 | LY_B(s, 2) << 16 | LY_B(s, 3) << 24 | \
			 LY_B(s, 4) << 32 | LY_B(s, 5) << 40 | LY_B(s, 6) << 48 | \
			 LY_B(s, 7) << 56) & (~0ULL >> (64 - 8 * (k)))
#define LY_B(s, i)	((__u64)(__u8)((i) < sizeof(s) - 1 ? (s)[(i) < sizeof(s) ? (i) : 0] : 0))
#define LY_IS(w, s)	(((w) & (~0ULL >> (64 - 8 * (sizeof(s) - 1)))) == (LY_WORD(s, sizeof(s) - 1)))

/*
 * Do the first 8 bytes w (little endian) start with one of the methods we capture
 * and a space?  Word compares: no memcmp in bpf (clang would emit a libc call).
 */
static __always_inline int is_request_line(__u64 w)
{
	return LY_IS(w, "GET ") || LY_IS(w, "POST ") || LY_IS(w, "PUT ") || LY_IS(w, "HEAD ") ||
	       LY_IS(w, "DELETE ") || LY_IS(w, "OPTIONS ") || LY_IS(w, "PATCH ") ||
	       LY_IS(w, "CONNECT ") || LY_IS(w, "TRACE ");
}

struct head_scan {
	const __u8 *d;
	__u32 n;
	__u32 end;		/* just past the empty line that ends the head; 0: none yet */
	__u32 last;		/* just past the last LF seen: the end of the last complete line */
};

static long head_scan_step(__u64 i, void *arg)
{
	struct head_scan *hs = arg;
	const __u8 *d = hs->d;

	/* d[i..i+2]: constant offsets from one bounded index keep the verifier happy */
	if (i >= LY_CAP_LEN - 2 || i >= hs->n)
		return 1;
	if (d[i] != '\n')
		return 0;
	hs->last = i + 1;
	/* an empty line: LF LF, or LF CR LF (which covers CRLF CRLF) */
	if (i + 1 < hs->n && d[i + 1] == '\n')
		hs->end = i + 2;
	else if (i + 2 < hs->n && d[i + 1] == '\r' && d[i + 2] == '\n')
		hs->end = i + 3;
	return hs->end != 0;
}

struct zero_tail {
	__u8 *d;
	__u32 from, to;
};

static long zero_tail_step(__u64 i, void *arg)
{
	struct zero_tail *zt = arg;
	__u64 at = zt->from + i;

	if (at >= zt->to || at >= LY_CAP_LEN)
		return 1;
	zt->d[at] = 0;
	return 0;
}

/*
 * Where the capture of the head in d[0..n) stops: just past the empty line that ends
 * it, else (*trunc set) just past its last complete line, else n (a request line longer
 * than the capture: still only head bytes).  A bare LF ends lines too: discovery's
 * parser accepts it, so the kernel must not read a body past "\n\n" as more head.
 * bpf_loop: the verifier checks the step once, not 2048 unrolled iterations.
 */
static __always_inline __u32 head_cut(const __u8 *d, __u32 n, int *trunc)
{
	struct head_scan hs = { .d = d, .n = n };

	bpf_loop(n, head_scan_step, &hs, 0);
	if (hs.end)
		return hs.end;
	*trunc = 1;
	return hs.last ? hs.last : n;
}

/*
 * Copy the request head at the user buffer buf (len bytes) into ev->data.
 * Returns the captured length (0: not a request head).  Sets LY_DATA_HEAD and
 * LY_DATA_TRUNC.  Only the head is kept: bytes past its end are wiped from the
 * per-CPU scratch as well, so a body never leaves the kernel nor stays in a map.
 */
static __always_inline __u32 capture_head(struct ly_event_data *ev, __u64 buf, __u32 len)
{
	struct zero_tail zt = { .d = ev->data };
	__u32 n = len, cut;
	int trunc = 0;
	__u64 w = 0;

	/* "GET / HTTP/1.1\r\n\r\n" is longer than the longest method: peek 8 bytes */
	if (!buf || len < LY_METHOD_PEEK)
		return 0;
	if (bpf_probe_read_user(&w, sizeof(w), (const void *)buf) < 0) {
		stat_inc(LY_STAT_DATA_READ_FAIL);
		return 0;
	}
	if (!is_request_line(w))
		return 0;
	if (n > LY_CAP_LEN)
		n = LY_CAP_LEN;
	/* the verifier wants the bound visible on the register that is passed */
	n &= 2 * LY_CAP_LEN - 1;
	if (n > LY_CAP_LEN)
		return 0;
	/* on failure the helper zeroes what it was to fill: nothing is left behind */
	if (bpf_probe_read_user(ev->data, n, (const void *)buf) < 0) {
		stat_inc(LY_STAT_DATA_READ_FAIL);
		return 0;
	}
	cut = head_cut(ev->data, n, &trunc);
	if (cut < n) {
		zt.from = cut;
		zt.to = n;
		bpf_loop(n - cut, zero_tail_step, &zt, 0);
	}
	ev->hdr.flags |= LY_DATA_HEAD;
	if (trunc)
		ev->hdr.flags |= LY_DATA_TRUNC;
	return cut;
}

static __always_inline struct ly_event_data *scratch_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&tls_scratch, &zero);
}

/* The fields every event has; data/caplen and the socket are filled by the caller. */
static __always_inline void event_init(struct ly_event_data *ev, __u8 lib, __u64 ssl, __u32 len,
				       __u32 workload_id)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();

	ev->hdr.type = LY_EV_DATA;
	ev->hdr.flags = 0;
	ev->hdr.ts_ns = bpf_ktime_get_ns();
	ev->cgroup_id = bpf_get_current_cgroup_id();
	ev->ssl = ssl;
	ev->pid = pid_tgid >> 32;
	ev->tid = (__u32)pid_tgid;
	ev->workload_id = workload_id;
	ev->fd = -1;
	ev->len = len;
	ev->caplen = 0;
	ev->lib = lib;
	ev->pad = 0;
	ev->family = 0;
	ev->sport = 0;
	ev->dport = 0;
	ev->pad2 = 0;
	__builtin_memset(ev->saddr, 0, sizeof(ev->saddr));
	__builtin_memset(ev->daddr, 0, sizeof(ev->daddr));
	bpf_get_current_comm(ev->comm, sizeof(ev->comm));
	ev->sni[0] = '\0';
}

static __always_inline void event_sock(struct ly_event_data *ev, int fd,
				       const struct sock_info *si)
{
	ev->fd = fd;
	ev->family = si->family;
	ev->sport = si->sport;
	ev->dport = si->dport;
	__builtin_memcpy(ev->saddr, si->saddr, sizeof(ev->saddr));
	__builtin_memcpy(ev->daddr, si->daddr, sizeof(ev->daddr));
}

static __always_inline void event_send(struct ly_event_data *ev, __u32 caplen)
{
	__u32 size;

	caplen &= 2 * LY_CAP_LEN - 1;
	if (caplen > LY_CAP_LEN)
		caplen = LY_CAP_LEN;
	ev->caplen = caplen;
	size = __builtin_offsetof(struct ly_event_data, data) + caplen;
	ev->hdr.len = size;
	if (size > sizeof(*ev))
		return;
	if (bpf_ringbuf_output(&data_events, ev, size, 0) < 0) {
		stat_inc(LY_STAT_DATA_DROP);
		stat_inc(LY_STAT_RINGBUF_FULL);
		return;
	}
	stat_inc(LY_STAT_DATA_EVENT);
}

/*
 * The event of one library write: a request head, or (first write of this SSL
 * object on this socket) a bare event carrying the SNI so the flow is tagged
 * even when it is not HTTP.  si NULL: the socket is unknown (fd -1, family 0).
 */
static __always_inline void tls_emit(const struct tls_inflight *in, int fd,
				     const struct sock_info *si)
{
	struct tls_key key = { .tgid = bpf_get_current_pid_tgid() >> 32, .ssl = in->ssl };
	struct tls_obj fresh = { .fd = -1 }, *o;
	struct ly_event_data *ev = scratch_get();
	__u32 caplen;
	int first;

	if (!ev || (si && sock_is_daemons(si)))
		return;
	o = bpf_map_lookup_elem(&tls_objs, &key);
	if (!o) {
		bpf_map_update_elem(&tls_objs, &key, &fresh, BPF_NOEXIST);
		o = bpf_map_lookup_elem(&tls_objs, &key);
		if (!o)
			return;
	}
	event_init(ev, in->lib, in->ssl, in->len, in->workload_id);
	caplen = capture_head(ev, in->buf, in->len);
	first = si ? o->sk != si->sk : o->sk == 0;
	if (!caplen && !first)
		return;
	if (si) {
		o->sk = si->sk;
		if (fd >= 0)
			o->fd = fd;
		event_sock(ev, fd, si);
	} else if (!o->sk) {
		o->sk = 1;	/* socket unknown: still only one bare event per object */
	}
	if (first)
		ev->hdr.flags |= LY_DATA_FIRST;
	if (o->has_sni) {
		__builtin_memcpy(ev->sni, o->sni, sizeof(ev->sni));
		ev->sni[LY_SNI_LEN - 1] = '\0';
		ev->hdr.flags |= LY_DATA_SNI;
	}
	event_send(ev, caplen);
}

/* --- library entries ---------------------------------------------------------------- */

static __always_inline int write_enter(__u8 lib, __u64 ssl, __u64 buf, __u64 len)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct tls_inflight in = {};
	struct ly_workload w;

	if (!task_watched(&w))
		return 0;
	stat_inc(LY_STAT_TLS_WRITE);
	in.ssl = ssl;
	in.buf = buf;
	in.len = len > 0xffffffffULL ? 0xffffffffU : (__u32)len;
	in.lib = lib;
	in.workload_id = w.workload_id;
	in.tgid = pid_tgid >> 32;
	in.cgroup_id = bpf_get_current_cgroup_id();
	in.ts_ns = bpf_ktime_get_ns();
	/* a fresh call: whatever a missed return left for this thread is replaced */
	bpf_map_update_elem(&tls_inflight, &pid_tgid, &in, BPF_ANY);
	return 0;
}

/*
 * The library returns.  No write syscall seen during the call (data buffered,
 * or a BIO that does not write): use the fd the library was given if any,
 * else count LY_STAT_TLS_NOFD and emit with fd -1 and family 0, so a request
 * head is not lost to discovery.
 */
static __always_inline int write_return(void)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct tls_inflight *in = bpf_map_lookup_elem(&tls_inflight, &pid_tgid);
	struct tls_key key = { .tgid = pid_tgid >> 32 };
	struct sock_info si;
	struct tls_obj *o;
	int fd;

	if (!in)
		return 0;
	if (!in->done) {
		key.ssl = in->ssl;
		o = bpf_map_lookup_elem(&tls_objs, &key);
		fd = o ? o->fd : -1;
		if (fd < 0 || sock_info_of(sock_of_fd(fd), &si) < 0) {
			stat_inc(LY_STAT_TLS_NOFD);
			fd = -1;
		}
		/* one call site: the capture is verified once per program */
		tls_emit(in, fd, fd < 0 ? NULL : &si);
	}
	bpf_map_delete_elem(&tls_inflight, &pid_tgid);
	return 0;
}

/* Remember something the library was told about ssl (its fd, its SNI). */
static __always_inline struct tls_obj *obj_get(__u64 ssl)
{
	struct tls_key key = { .tgid = bpf_get_current_pid_tgid() >> 32, .ssl = ssl };
	struct tls_obj fresh = { .fd = -1 };
	struct ly_workload w;

	if (!task_watched(&w))
		return NULL;
	/* set_fd and SNI come before a connection's first write: a reused object starts over */
	bpf_map_update_elem(&tls_objs, &key, &fresh, BPF_NOEXIST);
	return bpf_map_lookup_elem(&tls_objs, &key);
}

/*
 * An object that already wrote on a socket and is now given another fd is being
 * reused (a freed SSL's address handed out again, SSL_clear): its SNI is the old
 * connection's.  A fresh one keeps the SNI set before its fd (older curl does that).
 */
static __always_inline void obj_set_fd(__u64 ssl, int fd)
{
	struct tls_obj *o = obj_get(ssl);

	if (!o)
		return;
	if (o->sk) {
		o->has_sni = 0;
		__builtin_memset(o->sni, 0, sizeof(o->sni));
		o->sk = 0;
	}
	o->fd = fd;
}

static __always_inline void obj_set_sni(__u64 ssl, const void *name, __u32 len)
{
	struct tls_obj *o = obj_get(ssl);

	if (!o || !name)
		return;
	if (len >= LY_SNI_LEN)
		len = LY_SNI_LEN - 1;
	/* a name set after the object wrote: a reused object, its fd is the old one too */
	if (o->sk)
		o->fd = -1;
	o->has_sni = 0;
	o->sk = 0;
	__builtin_memset(o->sni, 0, sizeof(o->sni));
	if (len) {
		/* gnutls: a length; the name need not be NUL-terminated */
		if (bpf_probe_read_user(o->sni, len & (LY_SNI_LEN - 1), name) < 0)
			return;
	} else if (bpf_probe_read_user_str(o->sni, sizeof(o->sni), name) < 0) {
		return;
	}
	o->has_sni = o->sni[0] != '\0';	/* the next write is a first write (sk 0) */
}

/* SSL_free / gnutls_deinit: the address may come back as another object. */
static __always_inline void obj_forget(__u64 ssl)
{
	struct tls_key key = { .tgid = bpf_get_current_pid_tgid() >> 32, .ssl = ssl };

	/* one hash delete, no workload walk: cheaper than finding out whether it is ours */
	bpf_map_delete_elem(&tls_objs, &key);
}

/*
 * Every probed function's entry, told apart by the link's cookie (enum ly_tls_fn): one
 * uprobe.multi link per library file and process where the kernel has them (lanyardd
 * then loads this program with that attach type), else one perf-event link per function,
 * each with its cookie.
 */
SEC("uprobe")
int BPF_KPROBE(ly_tls_entry, __u64 a1, __u64 a2, __u64 a3, __u64 a4)
{
	switch (bpf_get_attach_cookie(ctx)) {
	case LY_FN_SSL_WRITE:		/* (ssl, buf, int num) */
		return write_enter(LY_LIB_OPENSSL, a1, a2, (int)a3 > 0 ? (int)a3 : 0);
	case LY_FN_SSL_WRITE_EX:	/* (ssl, buf, size_t num, size_t *written) */
		return write_enter(LY_LIB_OPENSSL, a1, a2, a3);
	case LY_FN_GNUTLS_SEND:		/* (session, data, size_t size) */
		return write_enter(LY_LIB_GNUTLS, a1, a2, a3);
	case LY_FN_SSL_CTRL:
		/* SSL_set_tlsext_host_name(ssl, name) is SSL_ctrl(ssl, 55, 0, name) */
		if ((int)a2 == SSL_CTRL_SET_TLSEXT_HOSTNAME)
			obj_set_sni(a1, (const void *)a4, 0);
		break;
	case LY_FN_GNUTLS_SNI:
		/* gnutls_server_name_set(session, GNUTLS_NAME_DNS, name, name_length) */
		if ((int)a2 == 1 && a4)
			obj_set_sni(a1, (const void *)a3, a4 > LY_SNI_LEN ? LY_SNI_LEN : (__u32)a4);
		break;
	case LY_FN_SSL_SET_FD:		/* (ssl, fd) */
		obj_set_fd(a1, (int)a2);
		break;
	case LY_FN_GNUTLS_FD:
		/* gnutls_transport_set_int2(session, recv_fd, send_fd); set_int() is a macro */
		obj_set_fd(a1, (int)a3);
		break;
	case LY_FN_SSL_FREE:
	case LY_FN_GNUTLS_DEINIT:
		obj_forget(a1);
		break;
	}
	return 0;
}

/* SSL_write, SSL_write_ex and gnutls_record_send return */
SEC("uretprobe")
int BPF_KRETPROBE(ly_tls_wret)
{
	return write_return();
}

/*
 * A new program (LY_EV_EXEC), process (LY_EV_FORK), arrival (LY_EV_MOVE) or unseen send
 * (LY_EV_UNSEEN, flags: how) in workload w's cgroup cgid: the process of task.
 */
static __always_inline void proc_event(__u16 type, __u32 flags, struct task_struct *task,
				       __u64 cgid, const struct ly_workload *w)
{
	struct ly_event_exec *ev = bpf_ringbuf_reserve(&data_events, sizeof(*ev), 0);

	if (!ev) {
		stat_inc(LY_STAT_RINGBUF_FULL);
		return;
	}
	ev->hdr.type = type;
	ev->hdr.len = sizeof(*ev);
	ev->hdr.flags = flags;
	ev->hdr.ts_ns = bpf_ktime_get_ns();
	ev->cgroup_id = cgid;
	ev->pid = BPF_CORE_READ(task, tgid);
	ev->workload_id = w->workload_id;
	BPF_CORE_READ_STR_INTO(&ev->comm, task, comm);
	bpf_ringbuf_submit(ev, 0);
}

/* --- sends ---------------------------------------------------------------------------- */

/*
 * Where the socket of a library write, and a plain-HTTP request head, are seen: each send
 * of the thread.  Two hooks, one chosen by lanyardd:
 *  - the sock_send_length tracepoint (Linux 6.3): it fires once per socket send, after
 *    the protocol took the bytes, with the socket.  Nothing else the host does pays for
 *    it.  The syscall's arguments (the fd, the user buffer) are read from the task's
 *    saved user registers, only when an event is to be made.
 *  - the sys_enter raw tracepoint, before 6.3: it runs on every syscall of every task
 *    (it turns the kernel's syscall slow path on), and finds the socket from the fd.
 */

/*
 * Syscall numbers of the write family, and where the saved registers keep the number.
 * Raw tracepoints, not syscalls/sys_enter_* ones: they attach by name, without tracefs
 * (often not mounted on hosts and containers).
 */
#if defined(__TARGET_ARCH_x86)
#define LY_NR_WRITE	1
#define LY_NR_WRITEV	20
#define LY_NR_SENDTO	44
#define LY_NR_SENDMSG	46
#define LY_NR_SENDMMSG	307
#define LY_NR_IO_URING_ENTER	426
#define LY_REGS_NR(r)	BPF_CORE_READ(r, orig_ax)
#elif defined(__TARGET_ARCH_arm64)
#define LY_NR_WRITE	64
#define LY_NR_WRITEV	66
#define LY_NR_SENDTO	206
#define LY_NR_SENDMSG	211
#define LY_NR_SENDMMSG	269
#define LY_NR_IO_URING_ENTER	426
#define LY_REGS_NR(r)	BPF_CORE_READ(r, syscallno)
#else
#error "syscall numbers for this architecture"
#endif

static __always_inline int nr_is_send(long id)
{
	return id == LY_NR_WRITE || id == LY_NR_SENDTO || id == LY_NR_WRITEV ||
	       id == LY_NR_SENDMSG;
}

/*
 * A 32-bit (compat) task's syscall numbers are another table: write is 4 on i386, so
 * its ids must not be read as the 64-bit ones.
 */
static __always_inline int task_compat(struct pt_regs *regs)
{
#if defined(__TARGET_ARCH_x86)
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();

	(void)regs;
	return (BPF_CORE_READ(t, thread_info.status) & LY_TS_COMPAT) != 0;
#else
	return (BPF_CORE_READ(regs, pstate) & LY_PSR_MODE32_BIT) != 0;
#endif
}

/* What a write-family syscall sends: its fd, and where a request head would start. */
struct send_args {
	__u64 buf, len;
	int fd;
};

/* The first iovec of a writev/sendmsg. */
static __always_inline void iov_first(__u64 iov, struct send_args *a)
{
	struct iovec v = {};

	if (!iov || bpf_probe_read_user(&v, sizeof(v), (const void *)iov) < 0)
		return;
	a->buf = (__u64)v.iov_base;
	a->len = v.iov_len;
}

/* The arguments of syscall id as saved in regs.  0, or -1: not a 64-bit write-family call. */
static __always_inline int send_args_of(struct pt_regs *regs, long id, struct send_args *a)
{
	struct user_msghdr m = {};
	__u64 p2;

	a->buf = a->len = 0;
	a->fd = -1;
	if (!nr_is_send(id) || task_compat(regs))
		return -1;
	a->fd = (int)PT_REGS_PARM1_CORE_SYSCALL(regs);
	p2 = PT_REGS_PARM2_CORE_SYSCALL(regs);
	if (id == LY_NR_WRITE || id == LY_NR_SENDTO) {
		a->buf = p2;
		a->len = PT_REGS_PARM3_CORE_SYSCALL(regs);
	} else if (id == LY_NR_WRITEV) {
		iov_first(p2, a);
	} else if (p2 && bpf_probe_read_user(&m, sizeof(m), (const void *)p2) == 0 &&
		   m.msg_iovlen) {
		iov_first((__u64)m.msg_iov, a);
	}
	return 0;
}

/* The same, of the syscall the current task is in (its user registers, saved at entry). */
static __always_inline int current_send_args(struct send_args *a)
{
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());

	return send_args_of(regs, LY_REGS_NR(regs), a);
}

/* Is in the library write this thread is making now (same process, cgroup, recent)? */
static __always_inline int inflight_current(const struct tls_inflight *in, __u64 pid_tgid)
{
	return in->tgid == pid_tgid >> 32 && in->cgroup_id == bpf_get_current_cgroup_id() &&
	       bpf_ktime_get_ns() - in->ts_ns < LY_INFLIGHT_MAX_NS;
}

/* The library write this thread is in, if any. */
static __always_inline struct tls_inflight *inflight_get(__u64 pid_tgid)
{
	struct tls_inflight *in = bpf_map_lookup_elem(&tls_inflight, &pid_tgid);

	if (in && !inflight_current(in, pid_tgid)) {
		/* a return never seen (a thread killed in the library): not this write */
		stat_inc(LY_STAT_TLS_STALE);
		bpf_map_delete_elem(&tls_inflight, &pid_tgid);
		return NULL;
	}
	return in;
}

/*
 * A send inside a library write: the first one on a TCP socket names the socket of that
 * write (its bytes are ciphertext; the plaintext is the one saved at the library's entry).
 */
static __always_inline void tls_join(struct tls_inflight *in, struct sock *sk, int fd)
{
	struct sock_info si;

	if (in->done || sock_info_of(sk, &si) < 0)
		return;
	in->done = 1;
	tls_emit(in, fd, &si);
}

/*
 * Is the current task's plain HTTP captured (w: its workload)?  Only an observed
 * workload's: an enforced one's plain HTTP goes through lanyardd, which sees it anyway.
 * No cgroup lookup at all while no workload observes (LY_CFG_OBSERVE).
 */
static __always_inline int plain_watched(struct ly_workload *w)
{
	const struct ly_config *cfg = config_get();

	return cfg && (cfg->flags & LY_CFG_OBSERVE) && task_watched(w) &&
	       (w->flags & LY_WL_OBSERVE);
}

/* A plain-HTTP send of workload w on sk: an event if its bytes start a request head. */
static __always_inline void plain_emit(const struct ly_workload *w, struct sock *sk,
				       const struct send_args *a)
{
	struct ly_event_data *ev;
	struct sock_info si;
	__u32 caplen;

	if (sock_info_of(sk, &si) < 0 || sock_is_daemons(&si))
		return;
	ev = scratch_get();
	if (!ev)
		return;
	event_init(ev, LY_LIB_PLAIN, 0, a->len > 0xffffffffULL ? 0xffffffffU : (__u32)a->len,
		   w->workload_id);
	caplen = capture_head(ev, a->buf, ev->len);
	if (!caplen)
		return;
	event_sock(ev, a->fd, &si);
	event_send(ev, caplen);
}

/*
 * The fd of the send at sock_send_length, read from the saved registers, and only if it
 * is this socket's: a kernel socket (a network filesystem) sends inside a write() to some
 * other file.  Never on an io-wq worker: its saved registers are a copy of its creator's,
 * which may name this very socket in a write() long over, and a stale buffer.  -1 otherwise.
 */
static __always_inline int send_args_for(struct sock *sk, struct send_args *a)
{
	if ((bpf_get_current_task_btf()->flags & LY_PF_IO_WORKER) || current_send_args(a) < 0 ||
	    sock_of_fd(a->fd) != sk)
		a->fd = -1;
	return a->fd;
}

/* When each process last reported an unseen send (LY_EV_UNSEEN). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, LY_UNSEEN_PROCS);
	__type(key, __u32);		/* tgid */
	__type(value, __u64);		/* bpf_ktime_get_ns() */
} unseen_at SEC(".maps");

/*
 * A send of observed workload w on sk whose bytes cannot be found: the syscall is not a
 * write-family one, or its fd is not this socket.  io_uring (inline in io_uring_enter, or
 * on an io-wq worker of the process) and sendmmsg are reported, so that discovery lists
 * the process rather than silently missing what it sends.  The rest is not a request
 * head: sendfile and splice carry bodies, and a kernel socket may send inside any call.
 */
static __always_inline void send_unseen(const struct ly_workload *w, struct sock *sk)
{
	struct task_struct *t = bpf_get_current_task_btf();
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(t);
	__u32 tgid = bpf_get_current_pid_tgid() >> 32, how;
	__u64 now = bpf_ktime_get_ns(), *last;
	long id = LY_REGS_NR(regs);
	struct sock_info si;

	if (t->flags & LY_PF_IO_WORKER || id == LY_NR_IO_URING_ENTER)
		how = LY_UNSEEN_IO_URING;
	else if (id == LY_NR_SENDMMSG)
		how = LY_UNSEEN_SENDMMSG;
	else
		return;
	/* a kernel socket (NFS, CIFS: file I/O the ring asked for) is not the app's */
	if (!BPF_CORE_READ(sk, sk_socket, file))
		return;
	if (task_compat(regs) || sock_info_of(sk, &si) < 0 || sock_is_daemons(&si))
		return;
	stat_inc(LY_STAT_SEND_UNSEEN);
	last = bpf_map_lookup_elem(&unseen_at, &tgid);
	if (last && now - *last < LY_UNSEEN_EVERY_NS)
		return;
	bpf_map_update_elem(&unseen_at, &tgid, &now, BPF_ANY);
	proc_event(LY_EV_UNSEEN, how, t, bpf_get_current_cgroup_id(), w);
}

/* sock_send_length(struct sock *sk, int ret, int flags), in the sender's context. */
SEC("raw_tracepoint/sock_send_length")
int ly_sock_send(struct bpf_raw_tracepoint_args *ctx)
{
	struct sock *sk = (struct sock *)ctx->args[0];
	int ret = (int)ctx->args[1];
	struct tls_inflight *in = inflight_get(bpf_get_current_pid_tgid());
	struct ly_workload w;
	struct send_args a;

	if (in) {
		/* an fd is a nicety here: the event has the socket either way */
		tls_join(in, sk, send_args_for(sk, &a));
		return 0;
	}
	/* only bytes sent: a write that failed (EAGAIN) is seen again when it is retried */
	if (ret <= 0 || !plain_watched(&w))
		return 0;
	if (send_args_for(sk, &a) < 0) {
		send_unseen(&w, sk);
		return 0;
	}
	if (a.len > (__u64)ret)
		a.len = ret;
	plain_emit(&w, sk, &a);
	return 0;
}

/* sys_enter(struct pt_regs *regs, long id): args[0] = regs, args[1] = id */
SEC("raw_tracepoint/sys_enter")
int ly_sys_enter(struct bpf_raw_tracepoint_args *ctx)
{
	struct pt_regs *regs = (struct pt_regs *)ctx->args[0];
	long id = (long)ctx->args[1];
	struct tls_inflight *in;
	struct ly_workload w;
	struct send_args a;
	struct sock *sk;

	if (!nr_is_send(id))
		return 0;
	in = inflight_get(bpf_get_current_pid_tgid());
	if (!in && !plain_watched(&w))
		return 0;
	if (send_args_of(regs, id, &a) < 0)
		return 0;
	sk = sock_of_fd(a.fd);
	if (in)
		tls_join(in, sk, a.fd);
	else
		plain_emit(&w, sk, &a);
	return 0;
}

/* --- exec and fork --------------------------------------------------------------------- */

SEC("raw_tracepoint/sched_process_exec")
int ly_exec(void *ctx)
{
	struct ly_workload w;

	if (!task_watched(&w))
		return 0;
	stat_inc(LY_STAT_EXEC);
	proc_event(LY_EV_EXEC, 0, (struct task_struct *)bpf_get_current_task(),
		   bpf_get_current_cgroup_id(), &w);
	return 0;
}

/*
 * sched_process_fork(parent, child), run by the parent.  Per-process probes name the
 * process they were made for: a forked child's copy of the parent's breakpoints runs
 * no program, so lanyardd must probe the child too (and attaches this only then).
 * Threads share their process's probes and are not reported.
 */
SEC("raw_tracepoint/sched_process_fork")
int ly_fork(struct bpf_raw_tracepoint_args *ctx)
{
	struct task_struct *child = (struct task_struct *)ctx->args[1];
	struct ly_workload w;

	if (BPF_CORE_READ(child, pid) != BPF_CORE_READ(child, tgid) || !task_watched(&w))
		return 0;
	stat_inc(LY_STAT_FORK);
	proc_event(LY_EV_FORK, 0, child, bpf_get_current_cgroup_id(), &w);
	return 0;
}

/*
 * cgroup_attach_task(dst_cgrp, path, task, threadgroup), run by whoever wrote
 * cgroup.procs, after the move.  With per-process probes, a process moved into an
 * enrolled or observed cgroup is probed now rather than at lanyardd's next walk of the
 * cgroups.  The cgroup is the destination's, not the current task's: the deepest
 * workload among it and its ancestors, as workload_find() finds for a task.  Moves are
 * rare (a service start, a container): nothing else pays for this.
 */
SEC("raw_tracepoint/cgroup_attach_task")
int ly_cgroup_move(struct bpf_raw_tracepoint_args *ctx)
{
	struct cgroup *cg = (struct cgroup *)ctx->args[0];
	struct task_struct *task = (struct task_struct *)ctx->args[2];
	const struct ly_config *cfg = config_get();
	__u64 cgid = BPF_CORE_READ(cg, kn, id);
	struct ly_workload *w = NULL;

	/* a cgroup v1 hierarchy's (hybrid hosts: another id space); v2's is "0::" */
	if (BPF_CORE_READ(cg, root, hierarchy_id) != 0)
		return 0;
	if (!cfg || !(cfg->flags & LY_CFG_ENABLED) || cgid == cfg->daemon_cgid ||
	    BPF_CORE_READ(task, tgid) == cfg->daemon_tgid)
		return 0;
	for (int level = 0; level < LY_MAX_CGROUP_DEPTH && cg && !w; level++) {
		__u64 id = BPF_CORE_READ(cg, kn, id);

		w = bpf_map_lookup_elem(&workloads, &id);
		cg = BPF_CORE_READ(cg, self.parent, cgroup);
	}
	if (!w || !(w->flags & (LY_WL_ENFORCE | LY_WL_OBSERVE)))
		return 0;
	stat_inc(LY_STAT_MOVE);
	proc_event(LY_EV_MOVE, 0, task, cgid, w);
	return 0;
}
