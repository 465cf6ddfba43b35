// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Copyright (c) 2026 The lanyard authors */
/*
 * TLS observation, userspace half: which files get uprobes (the host's TLS
 * libraries at start, then what each enrolled or observed process maps, found
 * on exec and on its first redirected connect), and what an LY_EV_DATA record
 * becomes: a flow.tls audit record, a tag on the redirected flow it belongs to,
 * a request head for discovery.  A record may carry an app's credential: it is
 * copied once, parsed, and wiped; only the request line, Host and SNI (never a
 * header value, never a query string) reach the audit and the flow table.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit.h"
#include "discover.h"
#include "log.h"
#include "procscan.h"
#include "proxy.h"
#include "tlsobs.h"

#define PIDS_MIN	1024	/* slots of the pid table at first; it doubles at half full */
#define PIDS_MAX	65536	/* ... up to this (32768 processes); then pids go uncached */
#define SWEEP_MS	60000	/* tls_probes: host: forget exited processes this often */
#define RESCAN_MAX	256	/* pending re-scans after exec */
#define EXE_LEN		256
#define DST_LEN		(LY_SNI_LEN + 16)
#define METHOD_LEN	32	/* cleaned request-line parts: escapes take 4 bytes a byte */
#define TARGET_LEN	1024
#define HOST_LEN	256
#define WALK_MS		2000	/* tls_probes: process: look for new processes this often */
#define WALK_DEPTH	16	/* cgroup levels below a workload's cgroup */

struct pid_ent {
	uint32_t pid;		/* 0: a free slot */
	uint32_t walk;		/* the last cgroup walk that listed it (tls_probes: process) */
	uint64_t scanned_ms;	/* 0: never */
	int probed;		/* tls_probes: process: the host's libraries are probed for it */
	char exe[EXE_LEN];	/* "" until read */
};

/* ld.so maps a new program's libraries after exec: look again a little later */
struct rescan {
	uint32_t pid, wl_id;
	uint64_t due_ms;
	int left;
};

static const uint64_t rescan_delay_ms[] = { 100, 1000 };

/* What one decoded LY_EV_DATA record says (borrowed from the record and its copy). */
struct tls_write {
	const struct ly_event_data *ev;
	const char *workload, *exe, *lib;
	char exe_c[EXE_LEN];		/* exe (or comm), cleaned */
	char sni[LY_SNI_LEN];		/* cleaned; "" if none */
	char head[LY_CAP_LEN + 1];	/* the captured head, wiped after use */
	size_t headlen;
	struct discover_reqline rl;	/* slices of the cleaned copies below, not of head */
	char method[METHOD_LEN], target[TARGET_LEN], host[HOST_LEN];
	int has_rl;
	char dst[DST_LEN];
	uint64_t flow;
	const char *injected_header;	/* the header the flow's route overwrites, or NULL */
};

struct tlsobs {
	struct daemon *d;
	struct tls_write w;		/* the record being handled; zero between records */
	struct pid_ent *pids;		/* open addressing, linear probing, by pid */
	size_t npids, cap;		/* cap: a power of two, 0 until the first pid */
	struct pid_ent uncached;	/* what pid_get() hands out when the table is full */
	uint32_t walk;			/* walks so far */
	uint64_t walk_ms;		/* how often (WALK_MS; LANYARD_TLS_WALK_MS) */
	uint64_t swept_ms;
	struct rescan q[RESCAN_MAX];
	size_t nq;
	struct procscan_result scan;	/* 36 KiB: kept off the stack */
	struct procscan_result host;	/* the host's TLS libraries */
	int per_process;		/* tls_probes: process */
	uint64_t walked_ms;
	int nosup_warned;
};

struct tlsobs *tlsobs_new(struct daemon *d)
{
	struct tlsobs *t = calloc(1, sizeof(*t));

	if (t)
		t->d = d;
	return t;
}

void tlsobs_free(struct tlsobs *t)
{
	if (t)
		free(t->pids);
	free(t);
}

static const char *wl_name(const struct daemon *d, uint32_t id)
{
	return id && id <= DAEMON_MAX_WORKLOAD_IDS ? d->wl_names[id] : NULL;
}

/*
 * The processes lanyardd knows of, by pid: exe, last scan, probed.  A table, not a cache:
 * with per-process probes a live pid must never be forgotten while it is in a workload's
 * cgroups, or every walk would ask the helper for it again.  Each walk drops the pids it
 * did not list (exited, or moved out); with host probes, a sweep drops exited ones.
 */
static size_t pid_home(const struct tlsobs *t, uint32_t pid)
{
	return (size_t)(pid * 0x9e3779b1u) & (t->cap - 1);
}

static struct pid_ent *pid_slot(struct tlsobs *t, uint32_t pid)
{
	size_t i = pid_home(t, pid);

	while (t->pids[i].pid && t->pids[i].pid != pid)
		i = (i + 1) & (t->cap - 1);
	return &t->pids[i];
}

/* pid's entry, or NULL. */
static struct pid_ent *pid_find(struct tlsobs *t, uint32_t pid)
{
	struct pid_ent *e = t->cap && pid ? pid_slot(t, pid) : NULL;

	return e && e->pid == pid ? e : NULL;
}

/* The table again in @cap slots (more).  -ENOMEM: unchanged. */
static int pid_grow(struct tlsobs *t, size_t cap)
{
	struct pid_ent *old = t->pids;
	size_t oldcap = t->cap;

	t->pids = calloc(cap, sizeof(*t->pids));
	if (!t->pids) {
		t->pids = old;
		return -ENOMEM;
	}
	t->cap = cap;
	for (size_t i = 0; i < oldcap; i++)
		if (old[i].pid)
			*pid_slot(t, old[i].pid) = old[i];
	free(old);
	return 0;
}

/*
 * Empty slot i, moving back each entry after it that the hole would cut off from its home
 * slot (linear probing keeps no tombstones).
 */
static void pid_del(struct tlsobs *t, size_t i)
{
	const size_t mask = t->cap - 1;

	for (size_t j = (i + 1) & mask; t->pids[j].pid; j = (j + 1) & mask) {
		size_t home = pid_home(t, t->pids[j].pid);

		/* the hole lies on j's probe path, from its home to j: j's entry moves there */
		if (((j - home) & mask) >= ((j - i) & mask)) {
			t->pids[i] = t->pids[j];
			i = j;
		}
	}
	t->pids[i] = (struct pid_ent){ 0 };
	t->npids--;
}

/* Drop the entries keep() does not keep, in place. */
static void pid_sweep(struct tlsobs *t,
		      bool (*keep)(const struct tlsobs *, const struct pid_ent *))
{
	for (size_t i = 0; i < t->cap;) {
		if (t->pids[i].pid && !keep(t, &t->pids[i]))
			pid_del(t, i);	/* another entry may have moved into i: look again */
		else
			i++;
	}
}

/*
 * pid's entry, new (zeroed) if it had none.  Valid until the next pid_get() of another pid
 * or the next walk.  With the table full, a scratch entry that is forgotten at once.
 */
static struct pid_ent *pid_get(struct tlsobs *t, uint32_t pid)
{
	struct pid_ent *e = pid_find(t, pid);

	if (e)
		return e;
	if ((t->npids + 1) * 2 > t->cap &&
	    (t->cap >= PIDS_MAX || pid_grow(t, t->cap ? t->cap * 2 : PIDS_MIN) < 0)) {
		t->uncached = (struct pid_ent){ .pid = pid };
		return &t->uncached;
	}
	e = pid_slot(t, pid);
	*e = (struct pid_ent){ .pid = pid };
	t->npids++;
	return e;
}

/* In a workload's cgroups (listed by the walk, or named by an event) since the walk began. */
static bool listed_by_last_walk(const struct tlsobs *t, const struct pid_ent *e)
{
	return e->walk == t->walk;
}

static bool alive(const struct tlsobs *t, const struct pid_ent *e)
{
	(void)t;
	return kill((pid_t)e->pid, 0) == 0 || errno == EPERM;
}

/* The process's executable (cached per pid; an exec resets it), or its comm. */
static const char *pid_exe(struct tlsobs *t, uint32_t pid, const char *comm)
{
	struct pid_ent *e = pid_get(t, pid);
	char path[64];
	ssize_t n;

	if (e->exe[0])
		return e->exe;
	snprintf(path, sizeof(path), "/proc/%u/exe", pid);
	n = readlink(path, e->exe, sizeof(e->exe) - 1);
	e->exe[n > 0 ? n : 0] = '\0';
	return e->exe[0] ? e->exe : comm;
}

/* --- attaching -------------------------------------------------------------------- */

/*
 * Is the target one of the host's libraries, probed already for pid (for every process
 * with tls_probes: host, at start)?  Then a scan that finds it mapped asks nothing.
 */
static bool host_covered(struct tlsobs *t, const struct procscan_target *tg, uint32_t pid)
{
	if (t->per_process && !pid_get(t, pid)->probed)
		return false;
	for (size_t i = 0; i < t->host.n; i++)
		if (t->host.t[i].dev == tg->dev && t->host.t[i].ino == tg->ino)
			return true;
	return false;
}

/*
 * Probe the files of r: for every process (tls_probes: host), or for pid only.
 * The number of files probed for it now or before.
 */
static int attach_targets(struct tlsobs *t, const struct procscan_result *r, uint32_t pid)
{
	pid_t target = t->per_process ? (pid_t)pid : -1;
	char err[PATH_MAX + 128];
	int rc, ok = 0;

	if (target == 0)
		return 0;	/* no process to probe, and never the whole host */
	for (size_t i = 0; i < r->n; i++) {
		if (r != &t->host && host_covered(t, &r->t[i], pid)) {
			ok++;
			continue;
		}
		rc = kernel_tls_attach(t->d->kern, r->t[i].path, r->t[i].libs, target, err,
				       sizeof(err));
		if (rc == -ENOTSUP) {
			if (!t->nosup_warned++)
				log_warnx("TLS: %s", err);
			return ok;
		}
		/* the process is gone; the helper is busy: the next walk asks again */
		if (rc == -ESRCH || rc == -EAGAIN)
			return ok;
		if (rc < 0)
			log_warnx("TLS: %s", err);
		else
			ok++;
	}
	return ok;
}

/*
 * tls_probes: process: probe the host's libraries for pid, once per process (an exec
 * or fork starts over): by inode, so a library it maps later (ld.so, dlopen) is
 * probed from its first call.
 */
static void probe_process(struct tlsobs *t, uint32_t pid)
{
	struct pid_ent *e = pid_get(t, pid);

	if (!t->per_process || e->probed)
		return;
	if (attach_targets(t, &t->host, pid) == (int)t->host.n)
		e->probed = 1;
}

/* Probe what pid maps; report a TLS stack uprobes cannot see. */
static void pid_scan(struct tlsobs *t, uint32_t pid, uint32_t wl_id)
{
	struct pid_ent *e = pid_get(t, pid);
	struct procscan_result *r = &t->scan;
	int rc;

	e->scanned_ms = loop_now_ms(t->d->loop);
	rc = procscan_pid((pid_t)pid, r);
	if (rc < 0) {
		if (rc != -ESRCH && rc != -ENOENT)
			log_debug("TLS: scanning pid %u: %s", pid, strerror(-rc));
		return;
	}
	log_debug("TLS: pid %u (%s): %zu TLS library files%s%s", pid, r->exe, r->n,
		  r->unobservable ? ", unobservable: " : "", r->unobservable ? r->unobservable : "");
	if (r->exe[0] && !e->exe[0] && strlen(r->exe) < sizeof(e->exe))
		memcpy(e->exe, r->exe, strlen(r->exe) + 1);
	attach_targets(t, r, pid);
	if (r->unobservable && t->d->disc)
		discover_note_unobservable(t->d->disc, wl_name(t->d, wl_id), pid, r->exe,
					   r->unobservable, r->reason, loop_wall_s(t->d->loop));
}

static void rescan_queue(struct tlsobs *t, uint32_t pid, uint32_t wl_id)
{
	struct rescan *q;

	if (t->nq == RESCAN_MAX)
		return;		/* an exec storm: the connect-time scan still comes */
	q = &t->q[t->nq++];
	q->pid = pid;
	q->wl_id = wl_id;
	q->left = (int)(sizeof(rescan_delay_ms) / sizeof(rescan_delay_ms[0]));
	q->due_ms = loop_now_ms(t->d->loop) + rescan_delay_ms[0];
}

/* A process of a workload: probed, and scanned unless it was already. */
static void pid_seen(struct tlsobs *t, uint32_t pid, uint32_t wl_id)
{
	struct pid_ent *e;

	probe_process(t, pid);
	e = pid_get(t, pid);
	e->walk = t->walk;	/* in a workload's cgroups since this walk */
	/* a pid seen before has its libraries probed already (exec re-scans) */
	if (!e->scanned_ms)
		pid_scan(t, pid, wl_id);
}

/* A new program or a new process: what was known of pid is forgotten, it is probed anew. */
static void pid_new(struct tlsobs *t, uint32_t pid, uint32_t wl_id)
{
	*pid_get(t, pid) = (struct pid_ent){ .pid = pid };
	pid_seen(t, pid, wl_id);
}

/* tls_probes: process: every process in the cgroups of the workloads, probed. */
static void walk_cgroup(struct tlsobs *t, int dirfd, uint32_t wl_id, int depth)
{
	int fd = openat(dirfd, "cgroup.procs", O_RDONLY | O_CLOEXEC);
	FILE *f = fd >= 0 ? fdopen(fd, "re") : NULL;
	struct dirent *de;
	unsigned pid;
	DIR *dir;

	if (!f && fd >= 0)
		close(fd);
	while (f && fscanf(f, "%u", &pid) == 1)
		pid_seen(t, pid, wl_id);
	if (f)
		fclose(f);
	if (depth >= WALK_DEPTH || !(dir = fdopendir(dirfd))) {
		close(dirfd);
		return;
	}
	while ((de = readdir(dir))) {
		int sub;

		if (de->d_type != DT_DIR || de->d_name[0] == '.')
			continue;
		sub = openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (sub >= 0)
			walk_cgroup(t, sub, wl_id, depth + 1);
	}
	closedir(dir);	/* closes dirfd */
}

static void walk_workloads(struct tlsobs *t)
{
	const struct policy *p = t->d->pol;
	char path[PATH_MAX];
	int fd;

	t->walked_ms = loop_now_ms(t->d->loop);
	t->walk++;
	for (size_t i = 0; i < p->nworkloads; i++) {
		snprintf(path, sizeof(path), "%s%s", kernel_cgroup_root(t->d->kern),
			 p->workloads[i].cgroup);
		fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd >= 0)
			walk_cgroup(t, fd, t->d->wls[i].id, 0);
	}
	/* what it did not list has exited or left: a pid seen again is a process anew */
	pid_sweep(t, listed_by_last_walk);
}

int tlsobs_start(struct tlsobs *t)
{
	const char *walk = getenv("LANYARD_TLS_WALK_MS");	/* tests: only events probe */
	int rc = kernel_tls_helper_start(t->d->kern);

	t->walk_ms = walk && atoi(walk) > 0 ? (uint64_t)atoi(walk) : WALK_MS;
	t->per_process = kernel_tls_per_process(t->d->kern);
	if (rc < 0 && rc != -ENOTSUP)
		log_warnx("TLS: no attach helper (%s): library copies found after start-up "
			  "cannot be probed", strerror(-rc));
	rc = procscan_system_libs(&t->host);
	if (rc < 0) {
		log_warnx("TLS: looking for the host's TLS libraries: %s", strerror(-rc));
		return rc;
	}
	if (!t->host.n)
		log_warnx("TLS: no shared OpenSSL or GnuTLS library found on the host");
	if (!t->per_process) {
		attach_targets(t, &t->host, 0);
		return 0;
	}
	for (size_t i = 0; i < t->host.n; i++)
		log_info("TLS: %s is probed in each process of an enrolled or observed cgroup",
			 t->host.t[i].path);
	walk_workloads(t);
	return 0;
}

/*
 * Processes whose per-process attach failed in the helper (out of files, a limit): not
 * probed, so the next cgroup walk (or exec, fork, connect) asks again.
 */
static void retry_failed(struct tlsobs *t)
{
	pid_t failed[64];
	size_t n = kernel_tls_poll(t->d->kern, failed, sizeof(failed) / sizeof(failed[0]));

	for (size_t i = 0; i < n; i++) {
		struct pid_ent *e = pid_find(t, (uint32_t)failed[i]);

		if (e)
			e->probed = 0;
	}
}

void tlsobs_tick(struct tlsobs *t)
{
	uint64_t now = loop_now_ms(t->d->loop);
	const size_t ndelay = sizeof(rescan_delay_ms) / sizeof(rescan_delay_ms[0]);

	retry_failed(t);
	/* cgroups created or enrolled since, processes whose move was missed: found here */
	if (t->per_process && now - t->walked_ms >= t->walk_ms)
		walk_workloads(t);
	if (!t->per_process && t->cap && now - t->swept_ms >= SWEEP_MS) {
		t->swept_ms = now;
		pid_sweep(t, alive);
	}

	for (size_t i = 0; i < t->nq;) {
		struct rescan *q = &t->q[i];

		if (q->due_ms > now) {
			i++;
			continue;
		}
		pid_scan(t, q->pid, q->wl_id);
		if (--q->left > 0 && kill((pid_t)q->pid, 0) == 0) {
			q->due_ms = now + rescan_delay_ms[ndelay - (size_t)q->left];
			i++;
			continue;
		}
		t->q[i] = t->q[--t->nq];
	}
}

static void on_exec(struct tlsobs *t, const struct ly_event_exec *ev)
{
	pid_new(t, ev->pid, ev->workload_id);
	/* ld.so maps the new program's libraries after exec */
	rescan_queue(t, ev->pid, ev->workload_id);
}

/*
 * tls_probes: process: a new process has none of its parent's probes (pid_scan finds the
 * parent's private library copies, mapped in the child too).
 */
static void on_fork(struct tlsobs *t, const struct ly_event_exec *ev)
{
	pid_new(t, ev->pid, ev->workload_id);
}

/*
 * tls_probes: process: a process moved into a workload's cgroup, probed now rather than at
 * the next walk.  Its probes, if it had some from an earlier stay, are still its own.
 */
static void on_move(struct tlsobs *t, const struct ly_event_exec *ev)
{
	pid_seen(t, ev->pid, ev->workload_id);
}

/*
 * An observed process sends in a way whose bytes the send hook cannot read: listed as
 * unobservable, never silently missed.
 */
static void on_unseen(struct tlsobs *t, const struct ly_event_exec *ev)
{
	static const struct { const char *stack, *why; } unseen[] = {
		[LY_UNSEEN_IO_URING] = { "io_uring", "sends through io_uring: their bytes "
						     "(request heads) are not read" },
		[LY_UNSEEN_SENDMMSG] = { "sendmmsg", "sends with sendmmsg(2): their bytes "
						     "(request heads) are not read" },
	};
	uint32_t how = ev->hdr.flags;
	char comm[LY_COMM_LEN + 1];

	if (how >= sizeof(unseen) / sizeof(unseen[0]) || !unseen[how].stack || !t->d->disc)
		return;
	memcpy(comm, ev->comm, LY_COMM_LEN);
	comm[LY_COMM_LEN] = '\0';
	discover_note_unobservable(t->d->disc, wl_name(t->d, ev->workload_id), ev->pid,
				   pid_exe(t, ev->pid, comm), unseen[how].stack, unseen[how].why,
				   loop_wall_s(t->d->loop));
}

static void on_connect(struct tlsobs *t, const struct ly_flow *f)
{
	pid_seen(t, f->pid, f->workload_id);
}

/* --- LY_EV_DATA ------------------------------------------------------------------- */

static const char *lib_name(uint8_t lib)
{
	switch (lib) {
	case LY_LIB_OPENSSL: return "openssl";
	case LY_LIB_GNUTLS: return "gnutls";
	default: return "plain";
	}
}

/* The socket's peer is lanyardd's listener: the kernel redirected this connection. */
static int peer_is_listener(const struct tlsobs *t, const struct ly_event_data *ev)
{
	static const uint8_t lo6[16] = { [15] = 1 };
	const uint8_t lo4[4] = { 127, 0, 0, 1 };

	if (ntohs(ev->dport) != t->d->pol->listen_port)
		return 0;
	if (ev->family == LY_AF_INET)
		return !memcmp(ev->daddr, lo4, sizeof(lo4));
	return ev->family == LY_AF_INET6 && !memcmp(ev->daddr, lo6, sizeof(lo6));
}

static void addr_port(int family, const uint8_t *addr, uint16_t port, char *out, size_t len)
{
	char a[INET6_ADDRSTRLEN] = "?";

	inet_ntop(family == LY_AF_INET ? AF_INET : AF_INET6, addr, a, sizeof(a));
	snprintf(out, len, family == LY_AF_INET ? "%s:%u" : "[%s]:%u", a, port);
}

/* The port of an "addr:port" string (0 if none). */
static unsigned dst_port(const char *dst)
{
	const char *c = strrchr(dst, ':');

	return c ? (unsigned)strtoul(c + 1, NULL, 10) : 0;
}

/*
 * Where the app meant to go: a redirected flow's original destination (from
 * the proxy), else the socket's peer; named by the SNI, else Host, when known.
 */
static void write_dst(struct tlsobs *t, struct tls_write *w)
{
	const struct ly_event_data *ev = w->ev;
	char ip[DST_LEN] = "";
	unsigned port;

	if (ev->family && peer_is_listener(t, ev))
		w->flow = proxy_flow_tag(t->d->proxy, ev->family, ev->saddr, ntohs(ev->sport),
					 w->sni, w->has_rl ? &w->rl : NULL, &w->injected_header,
					 ip, sizeof(ip));
	if (!w->flow && ev->family)
		addr_port(ev->family, ev->daddr, ntohs(ev->dport), ip, sizeof(ip));
	port = dst_port(ip);
	if (w->sni[0] && port)
		snprintf(w->dst, sizeof(w->dst), "%s:%u", w->sni, port);
	else if (w->has_rl && w->rl.host_len && memchr(w->rl.host, ':', w->rl.host_len))
		snprintf(w->dst, sizeof(w->dst), "%.*s", (int)w->rl.host_len, w->rl.host);
	else if (w->has_rl && w->rl.host_len && port)
		snprintf(w->dst, sizeof(w->dst), "%.*s:%u", (int)w->rl.host_len, w->rl.host, port);
	else
		snprintf(w->dst, sizeof(w->dst), "%s", ip[0] ? ip : "unknown");
}

static void audit_write(const struct tls_write *w)
{
	const struct ly_event_data *ev = w->ev;
	const struct discover_reqline *rl = &w->rl;
	char path[LY_CAP_LEN + 1];

	audit_begin("flow.tls");
	audit_u64("flow", w->flow);
	audit_str("workload", w->workload);
	audit_u64("cgroup", ev->cgroup_id);
	audit_u64("pid", ev->pid);
	audit_str("exe", w->exe);
	audit_str("dst", w->dst);
	audit_str("sni", w->sni[0] ? w->sni : NULL);
	audit_str("lib", w->lib);
	if (w->has_rl) {
		audit_strn("method", rl->method, rl->method_len);
		if (rl->host_len)
			audit_strn("host", rl->host, rl->host_len);
		/* no query, no authority, no segment that may be a token (docs/audit.md) */
		audit_strn("path", path,
			   discover_redact_target(rl->target, rl->target_len, path, sizeof(path)));
	}
	audit_end();
}

static void observe_head(struct tlsobs *t, const struct tls_write *w)
{
	const struct ly_event_data *ev = w->ev;
	struct discover_obs o = {
		.workload = w->workload,
		.cgroup_id = ev->cgroup_id,
		.pid = ev->pid,
		.exe = w->exe,
		.dst = w->dst,
		.sni = w->sni[0] ? w->sni : NULL,
		.lib = w->lib,
		.flow = w->flow,
		.injected_header = w->injected_header,
		.head = w->head,
		.len = w->headlen,
		.truncated = (ev->hdr.flags & LY_DATA_TRUNC) != 0,
	};

	if (t->d->disc)
		discover_observe(t->d->disc, &o, loop_wall_s(t->d->loop));
}

/*
 * The request line and Host as the flow table and the audit get them: cleaned
 * (discover_clean) copies, so that an odd byte in what an app wrote can neither
 * break a JSON record nor make the flow vanish from `lanyard flows`.
 */
static void reqline_clean(struct tls_write *w)
{
	struct discover_reqline *rl = &w->rl;

	discover_clean(w->method, sizeof(w->method), rl->method, rl->method_len);
	discover_clean(w->target, sizeof(w->target), rl->target, rl->target_len);
	discover_clean(w->host, sizeof(w->host), rl->host, rl->host_len);
	rl->method = w->method;
	rl->method_len = strlen(w->method);
	rl->target = w->target;
	rl->target_len = strlen(w->target);
	rl->host = w->host;
	rl->host_len = rl->host_len ? strlen(w->host) : 0;
}

/* Sizes first: a record that does not add up is dropped, never parsed. */
static const struct ly_event_data *data_check(const struct ly_event_hdr *hdr, size_t len)
{
	const struct ly_event_data *ev = (const struct ly_event_data *)hdr;
	const size_t fixed = offsetof(struct ly_event_data, data);

	if (len < fixed || hdr->len < fixed)
		return NULL;
	if (ev->caplen > LY_CAP_LEN || hdr->len != fixed + ev->caplen || hdr->len > len)
		return NULL;
	if ((ev->hdr.flags & LY_DATA_HEAD) && !ev->caplen)
		return NULL;
	return ev;
}

static void on_data(struct tlsobs *t, const struct ly_event_hdr *hdr, size_t len)
{
	const struct ly_event_data *ev = data_check(hdr, len);
	struct tls_write *w = &t->w;

	if (!ev)
		return;
	w->ev = ev;
	w->workload = wl_name(t->d, ev->workload_id);
	w->exe = pid_exe(t, ev->pid, ev->comm);
	discover_clean(w->exe_c, sizeof(w->exe_c), w->exe, strnlen(w->exe, EXE_LEN));
	w->exe = w->exe_c;
	w->lib = lib_name(ev->lib);
	/* the app chose these bytes: never stored or printed as they are */
	if (ev->hdr.flags & LY_DATA_SNI)
		discover_clean(w->sni, sizeof(w->sni), ev->sni, strnlen(ev->sni, LY_SNI_LEN));
	if (ev->hdr.flags & LY_DATA_HEAD) {
		memcpy(w->head, ev->data, ev->caplen);
		w->headlen = ev->caplen;
		w->has_rl = discover_parse_reqline(w->head, w->headlen, &w->rl) == 0;
		if (w->has_rl)
			reqline_clean(w);
	}
	write_dst(t, w);
	if (w->has_rl || (ev->hdr.flags & LY_DATA_FIRST))
		audit_write(w);
	if (w->has_rl)
		observe_head(t, w);
	/* the copy may hold the app's credential */
	explicit_bzero(w, sizeof(*w));
}

void tlsobs_on_event(struct tlsobs *t, const struct ly_event_hdr *ev, size_t len)
{
	switch (ev->type) {
	case LY_EV_DATA:
		on_data(t, ev, len);
		break;
	case LY_EV_EXEC:
		if (len >= sizeof(struct ly_event_exec))
			on_exec(t, (const struct ly_event_exec *)ev);
		break;
	case LY_EV_FORK:
		if (len >= sizeof(struct ly_event_exec))
			on_fork(t, (const struct ly_event_exec *)ev);
		break;
	case LY_EV_MOVE:
		if (len >= sizeof(struct ly_event_exec))
			on_move(t, (const struct ly_event_exec *)ev);
		break;
	case LY_EV_UNSEEN:
		if (len >= sizeof(struct ly_event_exec))
			on_unseen(t, (const struct ly_event_exec *)ev);
		break;
	case LY_EV_CONNECT:
		if (len >= sizeof(struct ly_event_flow))
			on_connect(t, &((const struct ly_event_flow *)ev)->flow);
		break;
	default:
		break;
	}
}
