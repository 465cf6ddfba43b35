// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Copyright (c) 2026 The lanyard authors */
/*
 * The kernel side as seen from lanyardd: load redirect.bpf.o, pin its maps
 * and links, attach at the cgroup2 root, mirror the policy into the maps,
 * enrol late cgroups (inotify + rescan), take flows, read stats and events.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <sys/mount.h>
#include <pthread.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#include <linux/capability.h>
#include <linux/magic.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "cgroupfs.h"
#include "kernel.h"
#include "log.h"
#include "procscan.h"
/* the generated skeleton casts away const on its embedded ELF bytes */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wcast-qual"
#include "redirect.skel.h"
#include "tls.skel.h"
#pragma GCC diagnostic pop

#define BPFFS_ROOT	"/sys/fs/bpf"
#define NPROGS		3
#define NTPS		4	/* tls.bpf.c's raw tracepoints */
#define TLS_MAX_FILES	1024	/* library files probed (system + private copies) */
#define TLS_MAX_PROC_FILES 8192	/* (file, process) pairs probed with tls_probes: process */
#define TLS_MAX_PENDING	64	/* per-process attaches queued at the helper */
#define TLS_RELEASERS	8	/* threads closing uprobe links (each close waits) */
#define TLS_OFFS_CACHE	64	/* library files whose function offsets are known */
/* uprobe.multi (Linux 6.6), which the uapi headers built against may predate */
#define LY_BPF_TRACE_UPROBE_MULTI	48
#define LY_BPF_F_UPROBE_MULTI_RETURN	1U

/* what kernel_apply() keeps of one workload */
struct kernel_wl {
	char *name;
	char *cgroup;		/* relative to the cgroup2 mount, starts with '/' */
	uint32_t id;
	uint32_t flags;
	enum policy_mode mode;
	uint64_t cgid;		/* enrolled cgroup id, 0 = not (yet) */
	int is_daemon;		/* the path is lanyardd's own cgroup (warned once) */
};

/* one library file with uprobes on it, for every process or one: never probed twice */
struct tls_file {
	uint64_t dev, ino;
	pid_t pid;		/* -1: every process that maps the file */
	int pidfd;		/* pid's, in tls_epfd: its exit removes the probes; -1 */
	int mlinks[2];		/* uprobe.multi: the entries' link, the returns' link; -1 */
	struct bpf_link **links;	/* without uprobe.multi: one per function */
	size_t nlinks;
};

/* Where the probed functions are in one library file (enum ly_tls_fn; 0: not defined). */
struct tls_offs {
	struct procscan_key key;
	uint64_t off[LY_FN_COUNT];
	int found;
};

/*
 * Releasing a uprobe link waits for an RCU tasks-trace grace period (tens of ms): the
 * threads of a release pool close links side by side, so that those waits overlap and
 * neither the attach helper nor lanyardd's event loop sits through them.
 */
struct tls_release {
	int pipe[2];		/* fds to close, one int per write; -1 until first used */
	pthread_t threads[TLS_RELEASERS];
	int nthreads;
};

struct kernel {
	struct redirect_bpf *skel;
	struct bpf_link *links[NPROGS];
	struct tls_bpf *tls;		/* NULL: TLS observation unavailable (warned) */
	struct bpf_link *tps[NTPS];	/* not pinned: observation stops with lanyardd */
	struct tls_file *tfiles;
	size_t ntfiles, nproc_files;	/* all, and those of one process */
	int tls_epfd;			/* the pidfds of tfiles; -1 until one is probed */
	int tls_per_process;		/* probes per process: attaches sent, answers read later */
	unsigned tls_pending;		/* ... sent and not answered yet */
	pid_t tls_failed[TLS_MAX_PENDING];	/* ... answered with an error: to ask again */
	unsigned tls_nfailed;
	int tls_failed_rc;		/* the last such error (warned once in a row) */
	uint64_t tls_requests;		/* per-process attach requests sent to the helper */
	int tls_sock;			/* to the attach helper; -1: attach in this process */
	pid_t tls_helper;
	int tls_helper_gone;		/* it did not answer: attach nothing any more */
	int gen_stale;			/* `workloads` changed, config.wl_gen not bumped yet */
	int tls_multi;			/* ly_tls_entry/ly_tls_wret loaded for uprobe.multi */
	struct tls_offs offs[TLS_OFFS_CACHE];
	unsigned noffs;			/* filled in offs, then the next one replaced */
	struct tls_release rel;
	struct ring_buffer *rb;
	kernel_event_cb cb;		/* only set during kernel_events_poll() */
	void *cb_ctx;
	char pin_dir[PATH_MAX];
	char cgroot[PATH_MAX];
	uint64_t daemon_cgid;
	int cg_fd;
	int ino_fd;
	int *wds;			/* inotify watches currently held */
	size_t nwds;
	struct kernel_wl *wls;
	size_t nwls;
};

/* one `routes` entry wanted by the policy */
struct route_ent {
	struct ly_route_key key;
	struct ly_route val;
};

/* --- pure helpers ---------------------------------------------------------- */

static void addr_mask(uint8_t *addr, unsigned int len, unsigned int plen)
{
	for (unsigned int i = 0; i < len; i++) {
		unsigned int bits = plen > i * 8 ? plen - i * 8 : 0;

		if (bits < 8)
			addr[i] &= (uint8_t)(0xff00 >> bits);
	}
}

int kernel_route_key(struct ly_route_key *key, uint32_t workload_id, const struct policy_addr *a,
		     uint16_t port)
{
	static const uint8_t v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	unsigned int plen = a->prefixlen;

	memset(key, 0, sizeof(*key));
	key->workload_id = workload_id;
	key->port = htons(port);
	if (a->family == AF_INET6 && plen >= 96 && plen <= 128 &&
	    !memcmp(a->addr, v4mapped, sizeof(v4mapped))) {
		/* ly_connect6 looks ::ffff:a.b.c.d up as IPv4 */
		key->family = LY_AF_INET;
		plen -= 96;
		memcpy(key->addr, a->addr + 12, 4);
	} else if (a->family == AF_INET && plen <= 32) {
		key->family = LY_AF_INET;
		memcpy(key->addr, a->addr, 4);
	} else if (a->family == AF_INET6 && plen <= 128) {
		key->family = LY_AF_INET6;
		memcpy(key->addr, a->addr, 16);
	} else {
		return -EINVAL;
	}
	addr_mask(key->addr, key->family == LY_AF_INET ? 4 : 16, plen);
	key->prefixlen = LY_ROUTE_FIXED_BITS + plen;
	return 0;
}

int kernel_peer_key(struct ly_peer_key *key, const struct sockaddr *sa)
{
	const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;

	memset(key, 0, sizeof(*key));
	if (sa->sa_family == AF_INET) {
		key->family = LY_AF_INET;
		key->port = s4->sin_port;
		memcpy(key->addr, &s4->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
		/* ly_sockops folds v4-mapped local addresses into IPv4 too */
		key->family = LY_AF_INET;
		key->port = s6->sin6_port;
		memcpy(key->addr, &s6->sin6_addr.s6_addr[12], 4);
	} else if (sa->sa_family == AF_INET6) {
		key->family = LY_AF_INET6;
		key->port = s6->sin6_port;
		memcpy(key->addr, &s6->sin6_addr, 16);
	} else {
		return -EAFNOSUPPORT;
	}
	return 0;
}

/* --- mounts ------------------------------------------------------------------ */

static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	char buf[1024];
	size_t n;

	/* libbpf's own debug chatter (relocations) only at -vv: it drowns lanyardd's */
	if (level == LIBBPF_DEBUG ? log_verbose() < 2 : level == LIBBPF_INFO && !log_verbose())
		return 0;
	vsnprintf(buf, sizeof(buf), fmt, ap);
	n = strlen(buf);
	while (n && buf[n - 1] == '\n')
		buf[--n] = '\0';
	if (level == LIBBPF_WARN)
		log_warnx("libbpf: %s", buf);
	else
		log_debug("libbpf: %s", buf);
	return 0;
}

/* The cgroup2 path ("/a/b") in file, a /proc/PID/cgroup: 0 or -errno. */
static int proc_cgroup_path(const char *file, char *out, size_t len)
{
	char line[PATH_MAX];
	FILE *f = fopen(file, "re");
	int err = -ENOENT;

	if (!f)
		return -errno;
	/* the cgroup2 line is "0::/path" */
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "0::", 3))
			continue;
		line[strcspn(line, "\n")] = '\0';
		err = snprintf(out, len, "%s", line + 3) < (int)len ? 0 : -ENAMETOOLONG;
		break;
	}
	fclose(f);
	return err;
}

int kernel_self_cgroup_id(uint64_t *out)
{
	char root[PATH_MAX], path[PATH_MAX], full[PATH_MAX * 2];
	struct stat st;
	int err;

	err = cgroupfs_mount(root, sizeof(root));
	if (err < 0)
		return err;
	err = proc_cgroup_path("/proc/self/cgroup", path, sizeof(path));
	if (err < 0)
		return err;
	snprintf(full, sizeof(full), "%s%s", root, path);
	if (stat(full, &st) < 0)
		return -errno;
	*out = st.st_ino;
	return 0;
}

static int mkdir_p(const char *path, mode_t mode)
{
	char buf[PATH_MAX];
	size_t n = strlen(path);

	if (n == 0 || n >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, path, n + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, mode) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static int is_fs(const char *path, long magic)
{
	struct statfs sf;

	return statfs(path, &sf) == 0 && (long)sf.f_type == magic;
}

/* bpffs at /sys/fs/bpf (mounted if missing), and pin_dir on a bpffs. */
static int bpffs_ensure(const char *pin_dir, char *err, size_t errlen)
{
	int rc;

	if (!is_fs(BPFFS_ROOT, BPF_FS_MAGIC) &&
	    mount("bpf", BPFFS_ROOT, "bpf", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0700") < 0) {
		rc = -errno;
		snprintf(err, errlen, "mounting bpffs at %s: %s", BPFFS_ROOT, strerror(-rc));
		return rc;
	}
	rc = mkdir_p(pin_dir, 0700);
	if (rc < 0) {
		snprintf(err, errlen, "creating %s: %s", pin_dir, strerror(-rc));
		return rc;
	}
	if (!is_fs(pin_dir, BPF_FS_MAGIC)) {
		snprintf(err, errlen, "%s is not on a bpf filesystem", pin_dir);
		return -EINVAL;
	}
	return 0;
}

/* --- load, pin, attach ------------------------------------------------------- */

/*
 * A pinned map from an older lanyardd whose shape differs (say, more stats
 * slots) cannot be reused and would make the load fail: unpin it, so this
 * run creates a fresh one.  The old programs keep their map until their
 * links are updated below, moments later.  These are the checks libbpf
 * makes before reusing a pin; a layout change that keeps the sizes is not
 * caught, so such a change must also change a size or a map name.
 */
static void maps_drop_incompatible(struct bpf_object *obj)
{
	struct bpf_map *m;

	bpf_object__for_each_map(m, obj) {
		struct bpf_map_info info = { 0 };
		__u32 len = sizeof(info);
		const char *path = bpf_map__pin_path(m);
		int fd;

		if (!path)
			continue;
		fd = bpf_obj_get(path);
		if (fd < 0)
			continue;
		if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0 &&
		    (info.type != bpf_map__type(m) || info.key_size != bpf_map__key_size(m) ||
		     info.value_size != bpf_map__value_size(m) ||
		     info.max_entries != bpf_map__max_entries(m) ||
		     info.map_flags != bpf_map__map_flags(m) ||
		     info.map_extra != bpf_map__map_extra(m))) {
			log_warnx("%s: pinned map %s has another shape: replacing it", __func__,
				  path);
			unlink(path);
		}
		close(fd);
	}
}

static int config_write(struct kernel *k, const struct kernel_opts *o)
{
	int fd = bpf_map__fd(k->skel->maps.config);
	struct ly_config cfg = { 0 }, old = { 0 };
	struct in6_addr lo6 = IN6ADDR_LOOPBACK_INIT;
	__u32 zero = 0;

	/* never back to an earlier generation: a cached answer of that one would be current */
	if (bpf_map_lookup_elem(fd, &zero, &old) == 0)
		cfg.wl_gen = old.wl_gen + 1;

	cfg.flags = LY_CFG_ENABLED;
	cfg.mark = o->mark;
	cfg.daemon_cgid = o->daemon_cgid;
	cfg.daemon_tgid = (__u32)getpid();
	cfg.listen4 = htonl(INADDR_LOOPBACK);
	cfg.listen_port = htons(o->listen_port ? o->listen_port : POLICY_DEFAULT_LISTEN_PORT);
	memcpy(cfg.listen6, &lo6, sizeof(cfg.listen6));
	if (bpf_map_update_elem(fd, &zero, &cfg, BPF_ANY) < 0)
		return -errno;
	return 0;
}

/* After `workloads` changed: what the programs cached per cgroup is stale. */
static int config_bump_gen(struct kernel *k)
{
	int fd = bpf_map__fd(k->skel->maps.config);
	struct ly_config cfg;
	__u32 zero = 0;

	if (bpf_map_lookup_elem(fd, &zero, &cfg) < 0)
		return -errno;
	cfg.wl_gen++;
	if (bpf_map_update_elem(fd, &zero, &cfg, BPF_ANY) < 0)
		return -errno;
	return 0;
}

/*
 * Attach one program at the cgroup2 root through a pinned link.  If an
 * earlier lanyardd left the link pinned, swap its program in place
 * (BPF_LINK_UPDATE): enforcement never stops across a restart.  Otherwise
 * create a link (cgroup links are always multi-attach: BPF_F_ALLOW_MULTI
 * semantics), and only then replace the old pin, so old and new overlap
 * rather than leave a gap; overlapping is harmless since the second
 * program sees the listener as destination and leaves it alone.
 */
static int link_attach(struct kernel *k, int i, struct bpf_program *prog, const char *name)
{
	char path[PATH_MAX + 32];
	struct bpf_link *old = NULL, *link;
	int err;

	snprintf(path, sizeof(path), "%s/link_%s", k->pin_dir, name);
	if (access(path, F_OK) == 0) {
		old = bpf_link__open(path);
		if (old && bpf_link__update_program(old, prog) == 0) {
			k->links[i] = old;
			log_debug("%s: %s: program updated in place", __func__, path);
			return 0;
		}
		log_debug("%s: %s: cannot update in place (%s), relinking", __func__, path,
			  strerror(errno));
	}
	link = bpf_program__attach_cgroup(prog, k->cg_fd);
	if (!link) {
		err = -errno;
		bpf_link__destroy(old);
		return err;
	}
	if (unlink(path) < 0 && errno != ENOENT)
		log_warn("%s: unlink %s", __func__, path);
	bpf_link__destroy(old);	/* unpinned and closed: the old link detaches */
	err = bpf_link__pin(link, path);
	if (err) {
		bpf_link__destroy(link);
		return err;
	}
	k->links[i] = link;
	return 0;
}

static int links_attach(struct kernel *k)
{
	struct bpf_program *progs[NPROGS] = {
		k->skel->progs.ly_connect4,
		k->skel->progs.ly_connect6,
		k->skel->progs.ly_sockops,
	};
	static const char *const names[NPROGS] = { "connect4", "connect6", "sockops" };
	int err;

	for (int i = 0; i < NPROGS; i++) {
		err = link_attach(k, i, progs[i], names[i]);
		if (err < 0)
			return err;
	}
	return 0;
}

static int ringbuf_sample(void *ctx, void *data, size_t len)
{
	struct kernel *k = ctx;
	struct ly_event_hdr hdr;

	if (len < sizeof(hdr))
		return 0;
	memcpy(&hdr, data, sizeof(hdr));
	if (hdr.len < sizeof(hdr) || hdr.len > len)
		return 0;
	if (k->cb)
		k->cb(k->cb_ctx, data, hdr.len);
	return 0;
}

static int kernel_load(struct kernel *k, const struct kernel_opts *o, char *err, size_t errlen)
{
	LIBBPF_OPTS(bpf_object_open_opts, oo, .pin_root_path = k->pin_dir);
	int rc;

	k->skel = redirect_bpf__open_opts(&oo);
	if (!k->skel) {
		rc = -errno;
		snprintf(err, errlen, "opening the bpf object: %s", strerror(-rc));
		return rc;
	}
	maps_drop_incompatible(k->skel->obj);
	rc = redirect_bpf__load(k->skel);
	if (rc) {
		snprintf(err, errlen, "loading the bpf programs: %s (lanyardd -v shows the "
			 "libbpf log)", strerror(-rc));
		return rc;
	}
	rc = config_write(k, o);
	if (rc < 0) {
		snprintf(err, errlen, "writing the config map: %s", strerror(-rc));
		return rc;
	}
	return 0;
}

/* --- TLS observation (tls.bpf.c) ----------------------------------------------- */

/*
 * Load tls.bpf.o on the maps redirect.bpf.o pinned (LIBBPF_PIN_BY_NAME under
 * the same pin root: one `workloads`, `config`, `events`, `stats`) and attach
 * its write-syscall and exec raw tracepoints.  Its links are not pinned: TLS
 * observation is not enforcement, and stops with lanyardd.  Failing here only
 * disables observation (warned): enforcement must not depend on tracing.
 */
/* BPF_LINK_CREATE's uprobe.multi layout (Linux 6.6; uapi headers may predate it). */
struct umulti_attr {
	uint32_t prog_fd, target_fd, attach_type, flags;
	uint64_t path, offsets, ref_ctr_offsets, cookies;
	uint32_t cnt, mflags, pid;
};

/* A uprobe.multi link of prog at offs in path, for process pid (0: all): its fd or -errno. */
static int umulti_link(const struct bpf_program *prog, const char *path, uint32_t pid,
		       const uint64_t *offs, const uint64_t *cookies, uint32_t cnt,
		       uint32_t flags)
{
	struct umulti_attr a;
	int fd;

	memset(&a, 0, sizeof(a));	/* the kernel wants zeros past what it reads */
	a.prog_fd = (uint32_t)bpf_program__fd(prog);
	a.attach_type = LY_BPF_TRACE_UPROBE_MULTI;
	a.path = (uint64_t)(uintptr_t)path;
	a.offsets = (uint64_t)(uintptr_t)offs;
	a.cookies = (uint64_t)(uintptr_t)cookies;
	a.cnt = cnt;
	a.mflags = flags;
	a.pid = pid;
	fd = (int)syscall(SYS_bpf, BPF_LINK_CREATE, &a, offsetof(struct umulti_attr, pid) +
			  sizeof(a.pid));
	return fd < 0 ? -errno : fd;
}

/*
 * Does the kernel make uprobe.multi links, filtering by process (not by thread: Linux 6.6
 * to 6.9 without the fix ran a pid's link for its main thread only)?  A program loads
 * with that attach type on older kernels too: ask for two links that must fail, and see
 * how.  The way libbpf tells.
 */
static int umulti_works(const struct bpf_program *prog)
{
	const uint64_t off = 0;
	int fd;

	/* "/" is no regular file: EBADF where the link type exists */
	fd = umulti_link(prog, "/", 0, &off, NULL, 1, 0);
	if (fd >= 0)
		close(fd);
	if (fd != -EBADF)
		return 0;
	/* an invalid pid: EINVAL once pids are processes, ESRCH before */
	fd = umulti_link(prog, "/", UINT32_MAX, &off, NULL, 1, LY_BPF_F_UPROBE_MULTI_RETURN);
	if (fd >= 0)
		close(fd);
	return fd == -EINVAL;
}

static int tls_load(struct kernel *k, int multi)
{
	LIBBPF_OPTS(bpf_object_open_opts, oo, .pin_root_path = k->pin_dir);

	k->tls = tls_bpf__open_opts(&oo);
	if (!k->tls)
		return -errno;
	if (multi) {
		bpf_program__set_expected_attach_type(k->tls->progs.ly_tls_entry,
						      LY_BPF_TRACE_UPROBE_MULTI);
		bpf_program__set_expected_attach_type(k->tls->progs.ly_tls_wret,
						      LY_BPF_TRACE_UPROBE_MULTI);
	}
	k->tls_multi = multi;
	return tls_bpf__load(k->tls);
}

/*
 * The send hook (tls.bpf.c): the sock_send_length tracepoint where the kernel has it
 * (6.3), which only socket sends pay for; else sys_enter, which every syscall of the
 * host pays for.  0, or -errno.
 */
static int tls_send_attach(struct kernel *k)
{
	const char *tp = getenv("LANYARD_SEND_TRACEPOINT");	/* "0": sys_enter (compare) */
	const char *why = "LANYARD_SEND_TRACEPOINT=0";

	if (!tp || strcmp(tp, "0")) {
		k->tps[0] = bpf_program__attach(k->tls->progs.ly_sock_send);
		if (k->tps[0])
			return 0;
		why = strerror(errno);
	}
	log_info("TLS: no sock_send_length tracepoint (%s): sends are seen at sys_enter, "
		 "on every syscall of the host", why);
	k->tps[0] = bpf_program__attach(k->tls->progs.ly_sys_enter);
	return k->tps[0] ? 0 : -errno;
}

/*
 * Load tls.bpf.o and attach its tracepoints.  Decides tls_probes: auto (per process where
 * uprobe.multi links work); forks and cgroup moves are only reported to per-process probes.
 */
static int tls_open(struct kernel *k, enum policy_tls_probes probes)
{
	const char *multi = getenv("LANYARD_UPROBE_MULTI");	/* "0": never (compare, work around) */
	int rc;

	rc = multi && !strcmp(multi, "0") ? -ENOTSUP : tls_load(k, 1);
	if (!rc && !umulti_works(k->tls->progs.ly_tls_entry))
		rc = -ENOTSUP;
	if (rc) {
		/* before Linux 6.6 (or 6.10): one perf event per function and process */
		log_info("TLS: no uprobe.multi links that filter by process (%s): one uprobe "
			 "link per function", strerror(-rc));
		tls_bpf__destroy(k->tls);
		rc = tls_load(k, 0);
		if (rc)
			return rc;
	}
	if (probes == POLICY_TLS_PROBES_AUTO)
		k->tls_per_process = k->tls_multi;
	else if (k->tls_per_process && !k->tls_multi)
		log_warnx("tls_probes: process without uprobe.multi links (Linux 6.6): a process's "
			  "probes come long after it starts and a short-lived one is missed");
	rc = tls_send_attach(k);
	if (rc)
		return rc;
	k->tps[1] = bpf_program__attach(k->tls->progs.ly_exec);
	if (!k->tps[1])
		return -errno;
	if (k->tls_per_process) {
		k->tps[2] = bpf_program__attach(k->tls->progs.ly_fork);
		if (!k->tps[2])
			return -errno;
		k->tps[3] = bpf_program__attach(k->tls->progs.ly_cgroup_move);
		if (!k->tps[3])
			return -errno;
	}
	return 0;
}

static void *tls_release_main(void *arg)
{
	int fd, rfd = *(int *)arg;

	while (read(rfd, &fd, sizeof(fd)) == (ssize_t)sizeof(fd))
		close(fd);
	return NULL;
}

/* The release pool, started on first use.  0, or -errno (then links close inline). */
static int tls_release_start(struct tls_release *r)
{
	pthread_attr_t attr;

	if (r->pipe[1] >= 0)
		return 0;
	if (pipe2(r->pipe, O_CLOEXEC) < 0)
		return -errno;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 64 << 10);
	for (; r->nthreads < TLS_RELEASERS; r->nthreads++)
		if (pthread_create(&r->threads[r->nthreads], &attr, tls_release_main, &r->pipe[0]))
			break;
	pthread_attr_destroy(&attr);
	if (r->nthreads)
		return 0;
	close(r->pipe[0]);
	close(r->pipe[1]);
	r->pipe[0] = r->pipe[1] = -1;
	return -EAGAIN;
}

/* Hand a link's fd to the pool; closed here when there is none. */
static void tls_release_fd(struct tls_release *r, int fd)
{
	if (fd < 0)
		return;
	if (tls_release_start(r) < 0 || write(r->pipe[1], &fd, sizeof(fd)) != sizeof(fd))
		close(fd);
}

/* Wait until the pool closed every fd it was given. */
static void tls_release_stop(struct tls_release *r)
{
	if (r->pipe[1] < 0)
		return;
	close(r->pipe[1]);	/* EOF once drained: each thread returns */
	for (int i = 0; i < r->nthreads; i++)
		pthread_join(r->threads[i], NULL);
	close(r->pipe[0]);
	r->pipe[0] = r->pipe[1] = -1;
	r->nthreads = 0;
}

static void tls_file_free(struct kernel *k, struct tls_file *tf)
{
	for (size_t j = 0; j < tf->nlinks; j++)
		bpf_link__destroy(tf->links[j]);
	free(tf->links);
	for (int j = 0; j < 2; j++)
		tls_release_fd(&k->rel, tf->mlinks[j]);
	if (tf->pidfd >= 0)
		close(tf->pidfd);
}

static void tls_close(struct kernel *k)
{
	for (size_t i = 0; i < k->ntfiles; i++)
		tls_file_free(k, &k->tfiles[i]);
	free(k->tfiles);
	k->tfiles = NULL;
	k->ntfiles = 0;
	k->nproc_files = 0;
	tls_release_stop(&k->rel);
	if (k->tls_epfd >= 0)
		close(k->tls_epfd);
	k->tls_epfd = -1;
	for (int i = 0; i < NTPS; i++) {
		bpf_link__destroy(k->tps[i]);
		k->tps[i] = NULL;
	}
	tls_bpf__destroy(k->tls);
	k->tls = NULL;
}

/*
 * One library function.  ly_tls_entry watches every entry; a write function's return is
 * watched too (ly_tls_wret): both or neither, since an entry without its return leaves a
 * thread "in flight", and the return is attached first (a return without its entry sees
 * nothing).
 */
struct tls_probe {
	unsigned lib;		/* enum ly_lib */
	const char *func;
	int ret;		/* also a uretprobe */
};

/*
 * By enum ly_tls_fn, the cookie of each probe.  What the library is told about
 * an object (SNI, fd) is probed before its writes: a process already running while its
 * file is probed has a write seen without the SNI set just before only if its handshake
 * spans the attach of the probes in between.
 */
static const struct tls_probe tls_probes[LY_FN_COUNT] = {
	[LY_FN_SSL_CTRL] = { LY_LIB_OPENSSL, "SSL_ctrl", 0 },
	[LY_FN_SSL_SET_FD] = { LY_LIB_OPENSSL, "SSL_set_fd", 0 },
	[LY_FN_SSL_FREE] = { LY_LIB_OPENSSL, "SSL_free", 0 },
	[LY_FN_SSL_WRITE] = { LY_LIB_OPENSSL, "SSL_write", 1 },
	[LY_FN_SSL_WRITE_EX] = { LY_LIB_OPENSSL, "SSL_write_ex", 1 },
	[LY_FN_GNUTLS_SNI] = { LY_LIB_GNUTLS, "gnutls_server_name_set", 0 },
	[LY_FN_GNUTLS_FD] = { LY_LIB_GNUTLS, "gnutls_transport_set_int2", 0 },
	[LY_FN_GNUTLS_DEINIT] = { LY_LIB_GNUTLS, "gnutls_deinit", 0 },
	[LY_FN_GNUTLS_SEND] = { LY_LIB_GNUTLS, "gnutls_record_send", 1 },
};
#define NPROBE_LINKS	(2 * LY_FN_COUNT)

/* Is the file probed for pid (or for every process)? */
static struct tls_file *tls_file_find(struct kernel *k, uint64_t dev, uint64_t ino, pid_t pid)
{
	for (size_t i = 0; i < k->ntfiles; i++) {
		struct tls_file *tf = &k->tfiles[i];

		if (tf->dev == dev && tf->ino == ino && (tf->pid == -1 || tf->pid == pid))
			return tf;
	}
	return NULL;
}

/* Release the files of the n pidfds that became readable; how many were. */
static int tls_reap_events(struct kernel *k, const struct epoll_event *ev, int n)
{
	int released = 0;

	for (int e = 0; e < n; e++) {
		for (size_t i = 0; i < k->ntfiles; i++) {
			if (k->tfiles[i].pidfd != ev[e].data.fd)
				continue;
			tls_file_free(k, &k->tfiles[i]);
			k->tfiles[i] = k->tfiles[--k->ntfiles];
			k->nproc_files--;
			released++;
			break;
		}
	}
	return released;
}

/*
 * Processes whose pidfd became readable have exited: their probes go (the kernel keeps a
 * dead task's perf events until their fds close).  Returns how many files were released.
 */
static int tls_reap(struct kernel *k)
{
	struct epoll_event ev[64];
	int n, released = 0;

	if (k->tls_epfd < 0)
		return 0;
	/* all of them: a pid left probed by a dead process would pass for a new process's */
	do {
		n = epoll_wait(k->tls_epfd, ev, 64, 0);
		released += tls_reap_events(k, ev, n);
	} while (n == 64);
	return released;
}

/* Where the probed functions are in the open file fd (st: its fstat); parsed once. */
static const struct tls_offs *tls_offs_get(struct kernel *k, int fd, const struct stat *st)
{
	const char *names[LY_FN_COUNT];
	struct procscan_key key;
	struct tls_offs *o;

	procscan_key(st, &key);
	for (unsigned i = 0; i < k->noffs && i < TLS_OFFS_CACHE; i++)
		if (!memcmp(&k->offs[i].key, &key, sizeof(key)))
			return &k->offs[i];
	for (int fn = 0; fn < LY_FN_COUNT; fn++)
		names[fn] = tls_probes[fn].func;
	o = &k->offs[k->noffs++ % TLS_OFFS_CACHE];
	o->key = key;
	o->found = procscan_funcs(fd, names, LY_FN_COUNT, o->off);
	return o;
}

/* The functions of libs that fd defines (o: their offsets), by enum ly_tls_fn. */
struct tls_sel {
	uint64_t eoff[LY_FN_COUNT], ecookie[LY_FN_COUNT];	/* entries */
	uint64_t roff[LY_FN_COUNT], rcookie[LY_FN_COUNT];	/* returns of the writes */
	uint32_t ne, nr;
};

static void tls_select(const struct tls_offs *o, unsigned libs, struct tls_sel *sel)
{
	sel->ne = sel->nr = 0;
	for (int fn = 0; fn < LY_FN_COUNT; fn++) {
		if (!(libs & (1u << tls_probes[fn].lib)) || !o->off[fn])
			continue;
		sel->eoff[sel->ne] = o->off[fn];
		sel->ecookie[sel->ne++] = (uint64_t)fn;
		if (tls_probes[fn].ret) {
			sel->roff[sel->nr] = o->off[fn];
			sel->rcookie[sel->nr++] = (uint64_t)fn;
		}
	}
}

/* One uprobe (or uretprobe) link of prog at off in path for tf's process(es), with cookie. */
static int tls_link_one(struct tls_file *tf, const struct bpf_program *prog, const char *path,
			uint64_t off, uint64_t cookie, bool ret)
{
	LIBBPF_OPTS(bpf_uprobe_opts, uo, .bpf_cookie = cookie, .retprobe = ret);
	struct bpf_link *l;

	/* pid -1: every process mapping this file, now and later; else that process */
	l = bpf_program__attach_uprobe_opts(prog, tf->pid, path, (size_t)off, &uo);
	if (!l)
		return -errno;
	tf->links[tf->nlinks++] = l;
	return 0;
}

/* Without uprobe.multi: one perf-event link per probe, the returns first. */
static int tls_file_attach_each(struct kernel *k, struct tls_file *tf, const char *path,
				const struct tls_sel *sel)
{
	int rc = 0;

	tf->links = calloc(NPROBE_LINKS, sizeof(*tf->links));
	if (!tf->links)
		return -ENOMEM;
	for (uint32_t i = 0; i < sel->nr && !rc; i++)
		rc = tls_link_one(tf, k->tls->progs.ly_tls_wret, path, sel->roff[i],
				  sel->rcookie[i], true);
	for (uint32_t i = 0; i < sel->ne && !rc; i++)
		rc = tls_link_one(tf, k->tls->progs.ly_tls_entry, path, sel->eoff[i],
				  sel->ecookie[i], false);
	return rc;	/* on error, the caller releases the links made */
}

/* With uprobe.multi: one link for the entries, one for the writes' returns (first). */
static int tls_file_attach_multi(struct kernel *k, struct tls_file *tf, const char *path,
				 const struct tls_sel *sel)
{
	uint32_t pid = tf->pid > 0 ? (uint32_t)tf->pid : 0;
	int rc;

	rc = umulti_link(k->tls->progs.ly_tls_wret, path, pid, sel->roff, sel->rcookie, sel->nr,
			 LY_BPF_F_UPROBE_MULTI_RETURN);
	if (rc < 0)
		return rc;
	tf->mlinks[1] = rc;
	rc = umulti_link(k->tls->progs.ly_tls_entry, path, pid, sel->eoff, sel->ecookie, sel->ne,
			 0);
	if (rc < 0)
		return rc;	/* the caller releases mlinks[1] */
	tf->mlinks[0] = rc;
	return 0;
}

/*
 * Attach what libs asks for in fd (at path, st its fstat) to tf: the functions' offsets
 * are read once per file version.  The number of probes, or -errno.
 */
static int tls_file_attach(struct kernel *k, struct tls_file *tf, int fd, const struct stat *st,
			   const char *path, unsigned libs)
{
	const struct tls_offs *o = tls_offs_get(k, fd, st);
	struct tls_sel sel;
	int rc;

	if (o->found < 0)
		return o->found;
	tls_select(o, libs, &sel);
	if (!sel.nr)
		return -ENOENT;		/* no write function: nothing to see */
	if (k->tls_multi)
		rc = tls_file_attach_multi(k, tf, path, &sel);
	else
		rc = tls_file_attach_each(k, tf, path, &sel);
	return rc < 0 ? rc : (int)(sel.ne + sel.nr);
}

/* Watch pidfd in tls_epfd (created on first use): 0 or -errno. */
static int tls_watch_exit(struct kernel *k, int pidfd)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = pidfd };

	if (k->tls_epfd < 0) {
		k->tls_epfd = epoll_create1(EPOLL_CLOEXEC);
		if (k->tls_epfd < 0)
			return -errno;
	}
	return epoll_ctl(k->tls_epfd, EPOLL_CTL_ADD, pidfd, &ev) < 0 ? -errno : 0;
}

/*
 * Attach to the open file fd (name is for messages only): a regular file, probed
 * through /proc/self/fd/N, so what is probed is what was opened, whatever the path
 * names by now.  pidfd -1: for every process; else for that process (pid), whose exit
 * releases the probes; the file takes pidfd over.  The number of probes attached,
 * 0 if the file is probed already.
 */
static int tls_attach_fd(struct kernel *k, int fd, int pidfd, pid_t pid, const char *name,
			 unsigned libs, char *err, size_t errlen)
{
	char path[64];
	struct tls_file *tf, *v;
	struct stat st;
	int n;

	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", name);
		n = -EINVAL;
		goto fail;
	}
	tls_reap(k);	/* a pid probed before may be a new process by now */
	if (tls_file_find(k, st.st_dev, st.st_ino, pid)) {
		n = 0;
		goto fail;
	}
	if (k->ntfiles - k->nproc_files >= TLS_MAX_FILES ||
	    (pid > 0 && k->nproc_files >= TLS_MAX_PROC_FILES)) {
		snprintf(err, errlen, "%s: more than %d TLS library files probed%s", name,
			 pid > 0 ? TLS_MAX_PROC_FILES : TLS_MAX_FILES,
			 pid > 0 ? " for single processes" : "");
		n = -ENOSPC;
		goto fail;
	}
	v = realloc(k->tfiles, (k->ntfiles + 1) * sizeof(*v));
	if (!v) {
		snprintf(err, errlen, "out of memory");
		n = -ENOMEM;
		goto fail;
	}
	k->tfiles = v;
	tf = &v[k->ntfiles];
	*tf = (struct tls_file){ .dev = st.st_dev, .ino = st.st_ino, .pid = pid, .pidfd = -1,
				 .mlinks = { -1, -1 } };
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = tls_file_attach(k, tf, fd, &st, path, libs);
	if (n > 0 && pidfd >= 0) {
		struct pollfd p = { .fd = pidfd, .events = POLLIN };
		int rc = tls_watch_exit(k, pidfd);

		n = rc < 0 ? rc : n;
		/* gone by now: the pid may already be another process's, which gets nothing */
		if (n > 0 && poll(&p, 1, 0) != 0)
			n = -ESRCH;
	}
	if (n <= 0) {
		if (n == -ESRCH || (n == -ENOENT && pid > 0 && kill(pid, 0) < 0))
			snprintf(err, errlen, "%s: process %d is gone", name, (int)pid);
		else
			snprintf(err, errlen, "%s: no TLS write function could be probed: %s",
				 name, strerror(n < 0 ? -n : ENOENT));
		tls_file_free(k, tf);
		n = n < 0 ? n : -ENOENT;
		goto fail;
	}
	tf->pidfd = pidfd;	/* the file owns it from now on */
	k->ntfiles++;
	if (pid > 0)
		k->nproc_files++;
	return n;
fail:
	if (pidfd >= 0)
		close(pidfd);
	return n;
}

/* Open a library file to probe: never a FIFO or device (no blocking, no side effect). */
static int tls_file_open(const char *path, char *err, size_t errlen)
{
	struct stat st;
	int fd, rc;

	fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(-rc));
		return rc;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		snprintf(err, errlen, "%s: not a regular file", path);
		return -EINVAL;
	}
	return fd;
}

/*
 * The attach helper.  Creating a uprobe perf event needs CAP_SYS_ADMIN on
 * kernels where CAP_PERFMON is not enough, and private library copies show up
 * after lanyardd dropped its capabilities.  So a child forked before the drop
 * keeps CAP_SYS_ADMIN, CAP_PERFMON and CAP_BPF (bounding set included) and
 * nothing else of lanyardd's: no ring buffer mapping, no fd but its socket and
 * tls.bpf.o's program fds.  lanyardd opens each library file itself (it keeps
 * the capabilities to read other processes' files) and passes the fd
 * (SCM_RIGHTS): the helper never opens a path it is given.  It attaches the
 * inherited, already verified programs to that regular file and holds the
 * links.  The worst a compromised lanyardd can make it do is put these
 * read-only probes on another file.  It dies with lanyardd (PR_SET_PDEATHSIG)
 * or when the socket closes.
 */
#define HELPER_TIMEOUT_S	2	/* lanyardd's event loop waits no longer for a reply */

struct tls_req {
	uint32_t libs;
	int32_t pid;		/* -1: every process; else the pidfd is passed too */
	char name[PATH_MAX];	/* for messages only: the file is the fd passed along */
};

struct tls_rep {
	int32_t rc;
	int32_t pid;		/* the request's */
	char err[PATH_MAX + 128];
};

static const int helper_caps[] = { CAP_SYS_ADMIN, CAP_PERFMON, CAP_BPF };

static int helper_cap_kept(int cap)
{
	for (size_t i = 0; i < sizeof(helper_caps) / sizeof(helper_caps[0]); i++)
		if (helper_caps[i] == cap)
			return 1;
	return 0;
}

static int helper_caps_drop(void)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[2] = { 0 };

	/* the bounding set first (needs CAP_SETPCAP, dropped just after) */
	for (int cap = 0; cap <= 63 && prctl(PR_CAPBSET_READ, cap, 0, 0, 0) >= 0; cap++)
		if (!helper_cap_kept(cap) && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 &&
		    errno != EINVAL)
			return -errno;
	for (size_t i = 0; i < sizeof(helper_caps) / sizeof(helper_caps[0]); i++) {
		data[helper_caps[i] / 32].effective |= 1U << (helper_caps[i] % 32);
		data[helper_caps[i] / 32].permitted |= 1U << (helper_caps[i] % 32);
	}
	if (syscall(SYS_capset, &hdr, data) < 0)
		return -errno;
	return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ? -errno : 0;
}

static int int_cmp(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

/*
 * Close every fd of the helper but sock and the programs it attaches; 0-2 become
 * /dev/null, so that nothing it opens later is taken for stdout or stderr.
 */
static int helper_fds_close(const struct kernel *k, int sock)
{
	int keep[3], n = 0, from = 3, null;

	keep[n++] = bpf_program__fd(k->tls->progs.ly_tls_entry);
	keep[n++] = bpf_program__fd(k->tls->progs.ly_tls_wret);
	keep[n++] = sock;
	qsort(keep, (size_t)n, sizeof(keep[0]), int_cmp);
	null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null < 0)
		return -errno;
	for (int fd = 0; fd < 3; fd++)
		if (dup2(null, fd) < 0)
			return -errno;
	for (int i = 0; i < n; i++) {
		if (keep[i] < from)
			continue;
		if (keep[i] > from && close_range((unsigned)from, (unsigned)keep[i] - 1, 0) < 0)
			return -errno;
		from = keep[i] + 1;
	}
	return close_range((unsigned)from, ~0U, 0) < 0 ? -errno : 0;
}

/*
 * One request: {libs, pid, name}, the file and, for one process, its pidfd as
 * SCM_RIGHTS fds.  0, or -1 at EOF or on a malformed request.
 */
static int helper_recv(int sock, struct tls_req *req, int *fd, int *pidfd)
{
	char cbuf[CMSG_SPACE(2 * sizeof(int))];
	struct iovec iov = { .iov_base = req, .iov_len = sizeof(*req) };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			    .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *c;
	int fds[2] = { -1, -1 }, nfds = 0;
	ssize_t n;

	do {
		n = recvmsg(sock, &m, MSG_CMSG_CLOEXEC);
	} while (n < 0 && errno == EINTR);
	if (n <= 0)
		return -1;
	c = CMSG_FIRSTHDR(&m);
	if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
	    (c->cmsg_len == CMSG_LEN(sizeof(int)) || c->cmsg_len == CMSG_LEN(2 * sizeof(int)))) {
		nfds = c->cmsg_len == CMSG_LEN(sizeof(int)) ? 1 : 2;
		memcpy(fds, CMSG_DATA(c), (size_t)nfds * sizeof(int));
	}
	if (n != (ssize_t)sizeof(*req) || (m.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || !nfds ||
	    (req->pid == -1) != (nfds == 1) || req->pid == 0 || req->pid < -1) {
		for (int i = 0; i < nfds; i++)
			close(fds[i]);
		return -1;
	}
	req->name[sizeof(req->name) - 1] = '\0';
	*fd = fds[0];
	*pidfd = fds[1];
	return 0;
}

/* As many files as it may hold probes on: each probe of one process is a perf event fd. */
static void helper_raise_nofile(void)
{
	struct rlimit rl = { .rlim_cur = 1 << 20, .rlim_max = 1 << 20 };

	if (setrlimit(RLIMIT_NOFILE, &rl) < 0 && getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static void __attribute__((noreturn)) tls_helper_main(struct kernel *k, int sock, pid_t parent)
{
	struct tls_req req;
	struct tls_rep rep;
	int fd, pidfd;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	/* lanyardd died before the line above: nobody would ever kill this process */
	if (getppid() != parent)
		_exit(1);
	prctl(PR_SET_NAME, "lanyardd-tls");
	/* the event rings may carry request heads: unmap them (their fds go next) */
	ring_buffer__free(k->rb);
	k->rb = NULL;
	helper_raise_nofile();
	/* a release pool of lanyardd's has no threads here; its pipe is closed just below */
	k->rel = (struct tls_release){ .pipe = { -1, -1 } };
	if (helper_fds_close(k, sock) < 0 || helper_caps_drop() < 0)
		_exit(1);
	for (;;) {
		struct pollfd pfd[2] = { { .fd = sock, .events = POLLIN },
					 { .fd = k->tls_epfd, .events = POLLIN } };

		/* the probes of processes that exited go as soon as they have */
		if (poll(pfd, k->tls_epfd >= 0 ? 2 : 1, -1) < 0 && errno != EINTR)
			_exit(1);
		if (pfd[1].revents)
			tls_reap(k);
		if (!pfd[0].revents)
			continue;
		if (helper_recv(sock, &req, &fd, &pidfd) < 0)
			_exit(0);
		memset(&rep, 0, sizeof(rep));
		rep.pid = req.pid;
		rep.rc = tls_attach_fd(k, fd, pidfd, req.pid, req.name, req.libs, rep.err,
				       sizeof(rep.err));
		close(fd);
		if (send(sock, &rep, sizeof(rep), MSG_NOSIGNAL) < 0)
			_exit(0);
	}
}

int kernel_tls_helper_start(struct kernel *k)
{
	struct timeval tv = { .tv_sec = HELPER_TIMEOUT_S };
	pid_t pid, self = getpid();
	int sv[2];

	if (!k->tls)
		return -ENOTSUP;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	if (setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(sv[0], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0) {
		close(sv[0]);
		close(sv[1]);
		return -errno;
	}
	pid = fork();
	if (pid < 0) {
		close(sv[0]);
		close(sv[1]);
		return -errno;
	}
	if (pid == 0) {
		close(sv[0]);
		tls_helper_main(k, sv[1], self);
	}
	close(sv[1]);
	k->tls_sock = sv[0];
	k->tls_helper = pid;
	return 0;
}

static void tls_helper_stop(struct kernel *k)
{
	if (k->tls_sock < 0)
		return;
	close(k->tls_sock);	/* EOF: the helper exits, its uprobes go with it */
	k->tls_sock = -1;
	waitpid(k->tls_helper, NULL, 0);
}

/* A helper that does not answer in time is never asked again: a late reply would be taken
 * for the next request's. */
static void tls_helper_abandon(struct kernel *k)
{
	close(k->tls_sock);
	k->tls_sock = -1;
	k->tls_helper_gone = 1;
	kill(k->tls_helper, SIGKILL);
	waitpid(k->tls_helper, NULL, 0);
}

/* Send {libs, pid, name}, fd and pidfd (-1: none) to the helper.  0 or -errno. */
static int helper_send(struct kernel *k, int fd, int pidfd, struct tls_req *req, int flags)
{
	char cbuf[CMSG_SPACE(2 * sizeof(int))] = { 0 };
	size_t nfds = pidfd < 0 ? 1 : 2;
	struct iovec iov = { .iov_base = req, .iov_len = sizeof(*req) };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			    .msg_controllen = CMSG_SPACE(nfds * sizeof(int)) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);
	int fds[2] = { fd, pidfd };

	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
	memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
	return sendmsg(k->tls_sock, &m, MSG_NOSIGNAL | flags) < 0 ? -errno : 0;
}

/* One answer of the helper.  0, -EAGAIN (none yet, with MSG_DONTWAIT) or -errno. */
static int helper_recv_rep(struct kernel *k, struct tls_rep *rep, int flags)
{
	ssize_t n;

	do {
		n = recv(k->tls_sock, rep, sizeof(*rep), flags);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	rep->err[sizeof(rep->err) - 1] = '\0';
	return n == (ssize_t)sizeof(*rep) ? 0 : -EPIPE;
}

/*
 * The outcome of a per-process attach, answered after the request was sent.  The pid of
 * one that failed while the process lives is kept for kernel_tls_poll(), to be asked again.
 */
static void helper_async_done(struct kernel *k, const struct tls_rep *rep)
{
	k->tls_pending--;
	if (rep->rc > 0)
		log_debug("TLS: %d uprobes for process %d", rep->rc, (int)rep->pid);
	if (rep->rc >= 0 || rep->rc == -ESRCH)
		return;
	/* asked again every walk until it works: one warning per kind of error */
	if (rep->rc == k->tls_failed_rc)
		log_debug("TLS: %s", rep->err);
	else
		log_warnx("TLS: %s (processes it happens to again are logged at debug level)",
			  rep->err);
	k->tls_failed_rc = rep->rc;
	if (rep->pid > 0 && k->tls_nfailed < TLS_MAX_PENDING)
		k->tls_failed[k->tls_nfailed++] = rep->pid;
}

static int helper_failed(struct kernel *k, int rc, char *err, size_t errlen)
{
	snprintf(err, errlen, "the uprobe attach helper %s: %s; library files found from now on "
		 "are not probed", rc == -EAGAIN ? "did not answer" : "is gone", strerror(-rc));
	tls_helper_abandon(k);
	return rc == -EAGAIN ? -ETIMEDOUT : -EPIPE;
}

/*
 * Through the helper.  pid -1: waits for what tls_attach_fd() answered there (the answers
 * still due for per-process requests first).  pid > 0 with tls_probes: process: the
 * request is queued and 0 returned at once (-EAGAIN when TLS_MAX_PENDING are queued):
 * an exec or fork storm must not stall the event loop; kernel_tls_poll() reads the answer.
 */
static int tls_attach_helper(struct kernel *k, int fd, int pidfd, pid_t pid, const char *path,
			     unsigned libs, char *err, size_t errlen)
{
	struct tls_req req = { .libs = libs, .pid = pidfd < 0 ? -1 : pid };
	int async = pidfd >= 0 && k->tls_per_process, rc;
	struct tls_rep rep;

	snprintf(req.name, sizeof(req.name), "%s", path);
	if (async && k->tls_pending >= TLS_MAX_PENDING) {
		snprintf(err, errlen, "%s: %u attaches queued already", path, k->tls_pending);
		close(pidfd);
		return -EAGAIN;
	}
	while (!async && k->tls_pending) {
		rc = helper_recv_rep(k, &rep, 0);
		if (rc < 0) {
			close(pidfd);
			return helper_failed(k, rc, err, errlen);
		}
		helper_async_done(k, &rep);
	}
	rc = helper_send(k, fd, pidfd, &req, async ? MSG_DONTWAIT : 0);
	if (pidfd >= 0)
		close(pidfd);	/* the helper holds its own copy */
	if (async && rc == -EAGAIN) {
		snprintf(err, errlen, "%s: the attach helper is busy", path);
		return -EAGAIN;
	}
	if (rc < 0)
		return helper_failed(k, rc, err, errlen);
	if (async) {
		k->tls_pending++;
		k->tls_requests++;
		return 0;
	}
	rc = helper_recv_rep(k, &rep, 0);
	if (rc < 0)
		return helper_failed(k, rc, err, errlen);
	if (rep.rc < 0)
		snprintf(err, errlen, "%s", rep.err);
	return rep.rc;
}

/*
 * Is the process of pidfd, pid, in a workload's cgroup?  A pid reused since the event
 * that named it is another process, which must not get probes.  /proc/PID named the
 * pidfd's process if that one is still alive after the read.
 */
static int pid_in_workloads(const struct kernel *k, pid_t pid, int pidfd)
{
	struct pollfd p = { .fd = pidfd, .events = POLLIN };
	char file[64], cg[PATH_MAX];

	snprintf(file, sizeof(file), "/proc/%d/cgroup", (int)pid);
	if (proc_cgroup_path(file, cg, sizeof(cg)) < 0 || poll(&p, 1, 0) != 0)
		return 0;
	for (size_t i = 0; i < k->nwls; i++) {
		size_t n = strlen(k->wls[i].cgroup);

		if (!strncmp(cg, k->wls[i].cgroup, n) && (cg[n] == '\0' || cg[n] == '/'))
			return 1;
	}
	return 0;
}

int kernel_tls_attach(struct kernel *k, const char *path, unsigned libs, pid_t pid, char *err,
		      size_t errlen)
{
	int fd, pidfd = -1, rc;

	if (k->tls_helper_gone) {
		snprintf(err, errlen, "the uprobe attach helper is gone");
		return -EPIPE;
	}
	if (!k->tls) {
		snprintf(err, errlen, "TLS observation is not available");
		return -ENOTSUP;
	}
	fd = tls_file_open(path, err, errlen);
	if (fd < 0)
		return fd;
	if (pid > 0) {
		pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
		rc = pidfd < 0 ? -errno : 0;
		if (!rc && !pid_in_workloads(k, pid, pidfd)) {
			close(pidfd);
			rc = -ESRCH;	/* gone, or its pid is another process's by now */
		}
		if (rc) {
			snprintf(err, errlen, "process %d: %s", (int)pid, strerror(-rc));
			close(fd);
			return rc;
		}
	}
	if (k->tls_sock >= 0)
		rc = tls_attach_helper(k, fd, pidfd, pid, path, libs, err, errlen);
	else
		rc = tls_attach_fd(k, fd, pidfd, pid, path, libs, err, errlen);
	close(fd);	/* the uprobes hold the inode */
	if (rc > 0 && pid > 0)
		log_debug("TLS: %d uprobes on %s for pid %d", rc, path, (int)pid);
	else if (rc > 0)
		log_info("TLS: %d uprobes on %s", rc, path);
	return rc;
}

int kernel_tls_per_process(const struct kernel *k)
{
	return k->tls && k->tls_per_process;
}

uint64_t kernel_tls_requests(const struct kernel *k)
{
	return k ? k->tls_requests : 0;
}

size_t kernel_tls_poll(struct kernel *k, pid_t *failed, size_t max)
{
	struct tls_rep rep;
	size_t n;
	int rc;

	if (k->tls_sock < 0) {
		tls_reap(k);
		return 0;
	}
	while (k->tls_pending && (rc = helper_recv_rep(k, &rep, MSG_DONTWAIT)) != -EAGAIN) {
		if (rc < 0) {
			char err[256];

			helper_failed(k, rc, err, sizeof(err));
			log_warnx("TLS: %s", err);
			break;
		}
		helper_async_done(k, &rep);
	}
	n = k->tls_nfailed < max ? k->tls_nfailed : max;
	memcpy(failed, k->tls_failed, n * sizeof(*failed));
	k->tls_nfailed = 0;
	return n;
}

struct kernel *kernel_open(const struct kernel_opts *o, char *err, size_t errlen)
{
	struct kernel *k = calloc(1, sizeof(*k));
	const char *pin_dir = o->pin_dir ? o->pin_dir : KERNEL_DEFAULT_PIN_DIR;
	int rc;

	if (!k) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	k->cg_fd = -1;
	k->ino_fd = -1;
	k->tls_sock = -1;
	k->tls_epfd = -1;
	k->rel.pipe[0] = k->rel.pipe[1] = -1;
	k->tls_per_process = o->tls_probes == POLICY_TLS_PROBES_PROCESS;
	k->daemon_cgid = o->daemon_cgid;
	libbpf_set_print(libbpf_print);
	if (strlen(pin_dir) >= sizeof(k->pin_dir)) {
		snprintf(err, errlen, "pin folder name too long");
		goto fail;
	}
	strcpy(k->pin_dir, pin_dir);
	rc = cgroupfs_mount(k->cgroot, sizeof(k->cgroot));
	if (rc < 0) {
		snprintf(err, errlen, "no cgroup2 mount in /proc/self/mountinfo: %s",
			 strerror(-rc));
		goto fail;
	}
	if (bpffs_ensure(k->pin_dir, err, errlen) < 0 || kernel_load(k, o, err, errlen) < 0)
		goto fail;
	k->cg_fd = open(k->cgroot, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (k->cg_fd < 0) {
		snprintf(err, errlen, "opening %s: %s", k->cgroot, strerror(errno));
		goto fail;
	}
	rc = links_attach(k);
	if (rc < 0) {
		snprintf(err, errlen, "attaching at %s: %s", k->cgroot, strerror(-rc));
		goto fail;
	}
	rc = tls_open(k, o->tls_probes);
	if (rc < 0) {
		log_warnx("TLS observation unavailable: loading tls.bpf.o: %s (lanyardd -v shows "
			  "the libbpf log)", strerror(-rc));
		tls_close(k);
	}
	k->rb = ring_buffer__new(bpf_map__fd(k->skel->maps.events), ringbuf_sample, k, NULL);
	if (!k->rb)
		log_warn("%s: ring buffer: events will not be read", __func__);
	/* tls.bpf.c's own ring (data, exec): one epoll fd, one callback for both */
	if (k->rb && k->tls && ring_buffer__add(k->rb, bpf_map__fd(k->tls->maps.data_events),
						 ringbuf_sample, k) < 0)
		log_warn("%s: TLS ring buffer: requests will not be observed", __func__);
	k->ino_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (k->ino_fd < 0)
		log_warn("%s: inotify: late cgroups wait for the periodic rescan", __func__);
	log_info("bpf attached at %s, pinned under %s", k->cgroot, k->pin_dir);
	return k;
fail:
	kernel_close(k, 0);
	return NULL;
}

/* --- close / detach ------------------------------------------------------------ */

static void wls_free(struct kernel_wl *wls, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(wls[i].name);
		free(wls[i].cgroup);
	}
	free(wls);
}

void kernel_close(struct kernel *k, int detach)
{
	if (!k)
		return;
	ring_buffer__free(k->rb);
	tls_helper_stop(k);
	tls_close(k);
	for (int i = 0; i < NPROGS; i++) {
		/* closing a pinned link's fd leaves it attached; unpin first to detach */
		if (detach && k->links[i])
			bpf_link__unpin(k->links[i]);
		bpf_link__destroy(k->links[i]);
	}
	if (detach && k->skel)
		bpf_object__unpin_maps(k->skel->obj, NULL);
	if (detach && k->skel && rmdir(k->pin_dir) < 0 && errno != ENOENT)
		log_warn("%s: rmdir %s", __func__, k->pin_dir);
	redirect_bpf__destroy(k->skel);
	if (k->cg_fd >= 0)
		close(k->cg_fd);
	if (k->ino_fd >= 0)
		close(k->ino_fd);
	free(k->wds);
	wls_free(k->wls, k->nwls);
	free(k);
}

/* unlink the entries of pin_dir whose name does (links) or does not start with link_ */
static int pins_remove(const char *pin_dir, int links)
{
	DIR *d = opendir(pin_dir);
	struct dirent *de;
	char path[PATH_MAX + 256];
	int err = 0;

	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		int is_link = !strncmp(de->d_name, "link_", 5);

		if (de->d_name[0] == '.' || is_link != links)
			continue;
		snprintf(path, sizeof(path), "%s/%s", pin_dir, de->d_name);
		if (unlink(path) < 0) {
			err = -errno;
			log_warn("%s: unlink %s", __func__, path);
		}
	}
	closedir(d);
	return err;
}

int kernel_detach_pinned(const char *pin_dir)
{
	int err;

	if (!pin_dir)
		pin_dir = KERNEL_DEFAULT_PIN_DIR;
	if (access(pin_dir, F_OK) < 0)
		return errno == ENOENT ? 0 : -errno;
	/* never unlink anything that is not a bpffs pin */
	if (!is_fs(pin_dir, BPF_FS_MAGIC)) {
		log_warnx("%s: %s is not on a bpf filesystem", __func__, pin_dir);
		return -EINVAL;
	}
	/* links first: enforcement stops before the maps it reads go away */
	err = pins_remove(pin_dir, 1);
	if (!err)
		err = pins_remove(pin_dir, 0);
	if (!err && rmdir(pin_dir) < 0)
		err = -errno;
	if (!err)
		log_info("detached: %s removed", pin_dir);
	return err;
}

const char *kernel_cgroup_root(const struct kernel *k)
{
	return k->cgroot;
}

int kernel_watch_fd(const struct kernel *k)
{
	return k->ino_fd;
}

int kernel_events_fd(const struct kernel *k)
{
	return k->rb ? ring_buffer__epoll_fd(k->rb) : -1;
}

int kernel_events_poll(struct kernel *k, kernel_event_cb cb, void *ctx)
{
	int n;

	if (!k->rb)
		return -ENOTSUP;
	k->cb = cb;
	k->cb_ctx = ctx;
	n = ring_buffer__consume(k->rb);
	k->cb = NULL;
	k->cb_ctx = NULL;
	return n;
}

uint64_t kernel_workload_cgid(const struct kernel *k, size_t i)
{
	return i < k->nwls ? k->wls[i].cgid : 0;
}

/* --- workloads: cgroup paths -> ids ------------------------------------------- */

/* Policy cgroup paths are absolute under the mount; "..", "." and "//" could escape it. */
static int cgroup_path_ok(const char *p)
{
	if (p[0] != '/' || strstr(p, "//"))
		return 0;
	for (const char *s = p; (s = strchr(s, '/')); s++) {
		if (!strncmp(s, "/..", 3) && (s[3] == '/' || s[3] == '\0'))
			return 0;
		if (!strncmp(s, "/.", 2) && (s[2] == '/' || s[2] == '\0'))
			return 0;
	}
	return 1;
}

static void cgroup_full(const struct kernel *k, const char *rel, char *out, size_t len)
{
	snprintf(out, len, "%s%s", k->cgroot, strcmp(rel, "/") ? rel : "");
}

/* The cgroup id of a path under the cgroup2 mount; 0 if it does not exist (yet). */
static uint64_t cgroup_resolve(const struct kernel *k, const char *rel)
{
	char full[PATH_MAX * 2];
	struct stat st;

	if (!cgroup_path_ok(rel))
		return 0;
	cgroup_full(k, rel, full, sizeof(full));
	if (stat(full, &st) < 0 || !S_ISDIR(st.st_mode) || !is_fs(full, CGROUP2_SUPER_MAGIC))
		return 0;
	return st.st_ino;
}

/*
 * Watch what can change a workload's enrolment: its own folder (removed) or,
 * while it is missing, its nearest existing ancestor (a child created).
 */
static int watch_add(struct kernel *k, const struct kernel_wl *w, int *wds, size_t *n)
{
	char path[PATH_MAX * 2];
	uint32_t mask = IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR | IN_MASK_ADD;
	int wd;

	cgroup_full(k, w->cgroup, path, sizeof(path));
	if (!w->cgid) {
		mask |= IN_CREATE | IN_MOVED_TO;
		while (access(path, F_OK) < 0 && strlen(path) > strlen(k->cgroot))
			*strrchr(path, '/') = '\0';
	}
	wd = inotify_add_watch(k->ino_fd, path, mask);
	if (wd < 0)
		return -errno;
	for (size_t i = 0; i < *n; i++)
		if (wds[i] == wd)
			return 0;
	wds[(*n)++] = wd;
	return 0;
}

static void watches_refresh(struct kernel *k)
{
	int *wds;
	size_t n = 0;

	if (k->ino_fd < 0)
		return;
	wds = calloc(k->nwls + 1, sizeof(*wds));
	if (!wds)
		return;
	for (size_t i = 0; i < k->nwls; i++)
		if (cgroup_path_ok(k->wls[i].cgroup))
			watch_add(k, &k->wls[i], wds, &n);
	/* drop the watches nobody needs any more */
	for (size_t i = 0; i < k->nwds; i++) {
		size_t j = 0;

		while (j < n && wds[j] != k->wds[i])
			j++;
		if (j == n)
			inotify_rm_watch(k->ino_fd, k->wds[i]);
	}
	free(k->wds);
	k->wds = wds;
	k->nwds = n;
}

/*
 * An observed workload is never redirected: LY_WL_OBSERVE and never
 * LY_WL_ENFORCE, whatever the caller asked (ly_connect4/6 leave a workload
 * without LY_WL_ENFORCE untouched, counted LY_STAT_SKIP_OBSERVE).
 */
static uint32_t wl_flags(enum policy_mode mode, uint32_t flags)
{
	if (mode == POLICY_MODE_OBSERVE)
		return (flags & ~LY_WL_ENFORCE) | LY_WL_OBSERVE;
	return flags & ~LY_WL_OBSERVE;
}

/* Is cgid wanted in `workloads`?  Fills val (the first workload with that cgroup wins). */
static int workload_wanted(const struct kernel *k, uint64_t cgid, struct ly_workload *val)
{
	for (size_t i = 0; i < k->nwls; i++) {
		if (k->wls[i].cgid != cgid)
			continue;
		val->workload_id = k->wls[i].id;
		val->flags = k->wls[i].flags;
		return 1;
	}
	return 0;
}

/* Make `workloads` exactly what k->wls says.  Returns entries changed, or -errno. */
static int workloads_sync(struct kernel *k)
{
	int fd = bpf_map__fd(k->skel->maps.workloads);
	uint64_t key, next, *stale = NULL;
	size_t nstale = 0, cap = 0;
	struct ly_workload want, have;
	int changed = 0, err = 0, more;

	for (size_t i = 0; i < k->nwls; i++) {
		uint64_t id = k->wls[i].cgid;

		if (!id || !workload_wanted(k, id, &want))
			continue;
		if (bpf_map_lookup_elem(fd, &id, &have) == 0 && !memcmp(&have, &want, sizeof(have)))
			continue;
		if (bpf_map_update_elem(fd, &id, &want, BPF_ANY) < 0) {
			err = -errno;
			goto cleanup;
		}
		changed++;
	}
	for (more = bpf_map_get_next_key(fd, NULL, &next) == 0; more;
	     more = bpf_map_get_next_key(fd, &key, &next) == 0) {
		key = next;
		if (workload_wanted(k, key, &want))
			continue;
		if (nstale == cap) {
			uint64_t *n = realloc(stale, (cap = cap ? cap * 2 : 16) * sizeof(*n));

			if (!n) {
				err = -ENOMEM;
				goto cleanup;
			}
			stale = n;
		}
		stale[nstale++] = key;
	}
	for (size_t i = 0; i < nstale; i++)
		if (bpf_map_delete_elem(fd, &stale[i]) == 0)
			changed++;
cleanup:
	free(stale);
	/* a bump that failed is retried with the next sync: a cached answer must not outlive it */
	if (changed || k->gen_stale) {
		int rc = config_bump_gen(k);

		k->gen_stale = rc < 0;
		if (!err)
			err = rc;
	}
	return err < 0 ? err : changed;
}

/* Re-resolve one workload's cgroup; 1 if its enrolment changed. */
static int workload_resolve(struct kernel *k, struct kernel_wl *w)
{
	uint64_t id = cgroup_resolve(k, w->cgroup);

	if (id && id == k->daemon_cgid) {
		if (!w->is_daemon)
			log_warnx("workload %s: cgroup %s is lanyardd's own: never enrolled",
				  w->name, w->cgroup);
		w->is_daemon = 1;
		id = 0;
	} else {
		w->is_daemon = 0;
	}
	if (id == w->cgid)
		return 0;
	if (id)
		log_info("workload %s: cgroup %s enrolled (id %llu)", w->name, w->cgroup,
			 (unsigned long long)id);
	else
		log_info("workload %s: cgroup %s is gone: waiting for it", w->name, w->cgroup);
	w->cgid = id;
	return 1;
}

int kernel_rescan(struct kernel *k)
{
	size_t missing = 0;
	int changed = 0, rc;

	for (size_t i = 0; i < k->nwls; i++) {
		changed += workload_resolve(k, &k->wls[i]);
		missing += !k->wls[i].cgid;
	}
	/* a missing path's nearest ancestor may have moved down a level */
	if (missing || changed)
		watches_refresh(k);
	/* runs every second: touch the map only when an id changed (or a bump is owed) */
	if (!changed && !k->gen_stale)
		return 0;
	rc = workloads_sync(k);
	if (rc < 0)
		log_warnx("%s: updating workloads: %s", __func__, strerror(-rc));
	return rc;
}

int kernel_set_workload_flags(struct kernel *k, uint32_t workload_id, uint32_t flags)
{
	int found = 0, rc;

	for (size_t i = 0; i < k->nwls; i++) {
		if (k->wls[i].id != workload_id)
			continue;
		k->wls[i].flags = wl_flags(k->wls[i].mode, flags);
		found = 1;
	}
	if (!found)
		return -ENOENT;
	rc = workloads_sync(k);
	return rc < 0 ? rc : 0;
}

/* --- routes ------------------------------------------------------------------- */

static int route_ent_cmp(const void *a, const void *b)
{
	const struct route_ent *x = a, *y = b;
	int c = memcmp(&x->key, &y->key, sizeof(x->key));

	if (c)
		return c;
	return x->val.route_id < y->val.route_id ? -1 : x->val.route_id > y->val.route_id;
}

static int route_key_cmp(const void *a, const void *b)
{
	return memcmp(a, &((const struct route_ent *)b)->key, sizeof(struct ly_route_key));
}

/*
 * The `routes` entries the policy wants, sorted by key, one per key (when
 * two routes of a workload cover the same key the first one wins, as the
 * proxy's route selection does).  0 or -errno; caller frees *out.
 */
static int routes_build(const struct policy *p, const struct kernel_workload *wls,
			struct route_ent **out, size_t *nout)
{
	struct route_ent *v;
	size_t total = 0, n = 0, w = 0;

	for (size_t i = 0; i < p->nworkloads; i++)
		for (size_t j = 0; j < p->workloads[i].nroutes; j++)
			total += p->workloads[i].routes[j].naddrs;
	v = calloc(total + 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < p->nworkloads; i++) {
		for (size_t j = 0; j < p->workloads[i].nroutes; j++) {
			const struct policy_route *r = &p->workloads[i].routes[j];

			for (size_t a = 0; a < r->naddrs; a++) {
				if (kernel_route_key(&v[n].key, wls[i].id, &r->addrs[a],
						     r->port) < 0) {
					log_warnx("route %s: bad address %zu skipped", r->to, a);
					continue;
				}
				v[n++].val.route_id = (uint32_t)j;
			}
		}
	}
	qsort(v, n, sizeof(*v), route_ent_cmp);
	for (size_t i = 0; i < n; i++)
		if (w == 0 || memcmp(&v[i].key, &v[w - 1].key, sizeof(v[i].key)))
			v[w++] = v[i];
	if (w > LY_MAX_ROUTES) {
		free(v);
		return -E2BIG;
	}
	*out = v;
	*nout = w;
	return 0;
}

/* Make `routes` exactly want[]: add/replace first, then delete what is stale. */
static int routes_sync(struct kernel *k, const struct route_ent *want, size_t n)
{
	int fd = bpf_map__fd(k->skel->maps.routes);
	struct ly_route_key key, next, *stale = NULL;
	size_t nstale = 0, cap = 0;
	int err = 0, more;

	for (size_t i = 0; i < n; i++)
		if (bpf_map_update_elem(fd, &want[i].key, &want[i].val, BPF_ANY) < 0)
			return -errno;
	for (more = bpf_map_get_next_key(fd, NULL, &next) == 0; more;
	     more = bpf_map_get_next_key(fd, &key, &next) == 0) {
		key = next;
		if (bsearch(&key, want, n, sizeof(*want), route_key_cmp))
			continue;
		if (nstale == cap) {
			struct ly_route_key *s = realloc(stale, (cap = cap ? cap * 2 : 16) *
								sizeof(*s));

			if (!s) {
				err = -ENOMEM;
				goto cleanup;
			}
			stale = s;
		}
		stale[nstale++] = key;
	}
	for (size_t i = 0; i < nstale; i++)
		if (bpf_map_delete_elem(fd, &stale[i]) < 0 && errno != ENOENT)
			err = -errno;
cleanup:
	free(stale);
	return err;
}

/* Copy what the kernel side needs of each workload; 0 or -ENOMEM. */
static int wls_copy(const struct policy *p, const struct kernel_workload *wls,
		    struct kernel_wl **out)
{
	struct kernel_wl *v = calloc(p->nworkloads + 1, sizeof(*v));

	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < p->nworkloads; i++) {
		v[i].name = strdup(p->workloads[i].name);
		v[i].cgroup = strdup(p->workloads[i].cgroup ? p->workloads[i].cgroup : "");
		v[i].id = wls[i].id;
		v[i].mode = p->workloads[i].mode;
		v[i].flags = wl_flags(v[i].mode, wls[i].flags);
		if (!v[i].name || !v[i].cgroup) {
			wls_free(v, p->nworkloads);
			return -ENOMEM;
		}
		if (!cgroup_path_ok(v[i].cgroup))
			log_warnx("workload %s: cgroup path %s is not absolute and clean: "
				  "never enrolled", v[i].name, v[i].cgroup);
	}
	*out = v;
	return 0;
}

/* LY_CFG_OBSERVE when some workload observes: the plain-HTTP write hook runs only then. */
static int config_set_observe(struct kernel *k)
{
	int fd = bpf_map__fd(k->skel->maps.config);
	struct ly_config cfg;
	__u32 zero = 0, want = 0;

	for (size_t i = 0; i < k->nwls; i++)
		if (k->wls[i].mode == POLICY_MODE_OBSERVE)
			want = LY_CFG_OBSERVE;
	if (bpf_map_lookup_elem(fd, &zero, &cfg) < 0)
		return -errno;
	if ((cfg.flags & LY_CFG_OBSERVE) == want)
		return 0;
	cfg.flags = (cfg.flags & ~LY_CFG_OBSERVE) | want;
	if (bpf_map_update_elem(fd, &zero, &cfg, BPF_ANY) < 0)
		return -errno;
	return 0;
}

int kernel_apply(struct kernel *k, const struct policy *p, const struct kernel_workload *wls)
{
	struct route_ent *want = NULL;
	struct kernel_wl *nw = NULL;
	size_t nwant = 0;
	int err;

	err = routes_build(p, wls, &want, &nwant);
	if (err < 0)
		goto cleanup;
	err = wls_copy(p, wls, &nw);
	if (err < 0)
		goto cleanup;
	for (size_t i = 0; i < p->nworkloads; i++) {
		int known = 0;

		/* keep what is already resolved so that the log says only what changed */
		for (size_t j = 0; j < k->nwls && !known; j++) {
			if (strcmp(nw[i].cgroup, k->wls[j].cgroup))
				continue;
			nw[i].cgid = k->wls[j].cgid;
			nw[i].is_daemon = k->wls[j].is_daemon;
			known = 1;
		}
		workload_resolve(k, &nw[i]);
		if (!known && !nw[i].cgid && !nw[i].is_daemon)
			log_info("workload %s: cgroup %s does not exist yet: enrolled when it "
				 "appears", nw[i].name, nw[i].cgroup);
	}
	err = routes_sync(k, want, nwant);
	if (err < 0)
		goto cleanup;
	wls_free(k->wls, k->nwls);
	k->wls = nw;
	k->nwls = p->nworkloads;
	nw = NULL;
	err = workloads_sync(k);
	if (err >= 0)
		err = config_set_observe(k);
	watches_refresh(k);
cleanup:
	if (nw)
		wls_free(nw, p->nworkloads);
	free(want);
	return err < 0 ? err : 0;
}

/* --- flows and stats ---------------------------------------------------------- */

int kernel_take_flow(struct kernel *k, const struct sockaddr *peer, struct ly_flow *out)
{
	struct ly_peer_key key;
	int err;

	err = kernel_peer_key(&key, peer);
	if (err < 0)
		return err;
	if (bpf_map_lookup_and_delete_elem(bpf_map__fd(k->skel->maps.flows_by_peer), &key,
					   out) < 0)
		return -errno;
	return 0;
}

int kernel_read_stats(struct kernel *k, uint64_t *out)
{
	int ncpu = libbpf_num_possible_cpus(), fd = bpf_map__fd(k->skel->maps.stats);
	uint64_t *v;

	if (ncpu <= 0)
		return ncpu < 0 ? ncpu : -EINVAL;
	v = calloc((size_t)ncpu, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (__u32 slot = 0; slot < LY_STAT_MAX; slot++) {
		out[slot] = 0;
		if (bpf_map_lookup_elem(fd, &slot, v) < 0)
			continue;
		for (int c = 0; c < ncpu; c++)
			out[slot] += v[c];
	}
	free(v);
	return 0;
}
