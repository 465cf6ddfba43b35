// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Copyright (c) 2026 The lanyard authors */
/*
 * The e2e harness: per-test state (temp dir, spawned processes, cgroups), its teardown,
 * the janitor process that repeats the teardown when the test dies, and test helpers.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <bpf/libbpf.h>
#include <criterion/criterion.h>

#include "cgroupfs.h"
#include "lib/harness.h"

#define H_MAX_PROCS 256
#define H_MAX_CGROUPS 64
#define H_MAX_ARGS 64
#define H_GRACE_MS 2000 /* SIGTERM -> SIGKILL, and how long a cgroup may take to empty */
#define H_TMP_PREFIX "/tmp/lanyard-test."
#define H_MAX_CMDS 8      /* h_at_teardown() commands per test */
#define H_CMD_SEP '\x1f' /* separates the arguments of a stored command */
#define H_CMD_MS 5000     /* how long a teardown command may take */

struct h_proc {
	pid_t pid; /* 0: free slot */
	int pidfd;
	bool reaped, keep; /* keep: a named spawn, listed by h_dump after it exits */
	int status;	   /* exit code or 128 + signal, once reaped */
	char name[64];
};

static struct {
	bool active;
	pid_t owner; /* the test process; its forked children must not tear it down */
	char tmpdir[PATH_MAX];
	char cg_root[64];
	struct h_proc procs[H_MAX_PROCS];
	char *cgroups[H_MAX_CGROUPS]; /* folders under cg_root, as created */
	int ncgroups;
	char **owned; /* strings returned to tests, freed at teardown */
	size_t nowned, owned_cap;
	int ports[256];
	int nports;
	unsigned int run_seq;
	int janitor_fd;
	pid_t janitor_pid;
	char cmds[H_MAX_CMDS][PATH_MAX]; /* h_at_teardown(): arguments joined by H_CMD_SEP */
	int ncmds;
} H = { .janitor_fd = -1 };

static void hlog(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void hlog(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	flockfile(stderr);
	fputs("[harness] ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	funlockfile(stderr);
	va_end(ap);
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Polling interval for the wait helpers: 1 ms doubling to 20 ms. */
static void backoff(int *delay_ms)
{
	usleep((useconds_t)*delay_ms * 1000);
	if (*delay_ms < 20)
		*delay_ms *= 2;
}

static void h_ensure(void)
{
	if (!H.active || H.owner != getpid())
		h_setup();
}

/* Hand @s (malloc'd) to the harness: freed at teardown.  NULL passes through. */
static char *own(char *s)
{
	size_t cap = H.owned_cap ? H.owned_cap * 2 : 64;
	char **n;

	if (!s)
		return NULL;
	if (H.nowned == H.owned_cap) {
		n = realloc(H.owned, cap * sizeof(*n));
		if (!n) {
			free(s);
			return NULL;
		}
		H.owned = n;
		H.owned_cap = cap;
	}
	H.owned[H.nowned++] = s;
	return s;
}

static char *ownf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *ownf(const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	return n < 0 ? NULL : own(s);
}

/* --- shared by the teardown and the janitor ---------------------------------------------- */

static bool pidfd_exited(int pidfd, int timeout_ms)
{
	struct pollfd p = { .fd = pidfd, .events = POLLIN };

	return poll(&p, 1, timeout_ms) != 0; /* readable once the process has exited */
}

/*
 * SIGTERM every live process group, wait up to H_GRACE_MS for the leaders, SIGKILL what is
 * left.  @sweep: the caller is the parent and has not reaped the leaders yet, so the group
 * ids cannot have been reused and leftover group members may be SIGKILLed too.
 */
static void stop_groups(const int *pidfds, const pid_t *pids, int n, bool sweep)
{
	int64_t deadline = now_ms() + H_GRACE_MS;
	int i, left;

	for (i = 0; i < n; i++)
		if (!pidfd_exited(pidfds[i], 0))
			kill(-pids[i], SIGTERM);
	for (i = 0; i < n; i++) {
		left = (int)(deadline - now_ms());
		if (!pidfd_exited(pidfds[i], left > 0 ? left : 0)) {
			hlog("pid %d ignored SIGTERM for %d ms: SIGKILL", pids[i], H_GRACE_MS);
			kill(-pids[i], SIGKILL);
			pidfd_send_signal(pidfds[i], SIGKILL, NULL, 0);
		} else if (sweep) {
			kill(-pids[i], SIGKILL);
		}
	}
}

static int write_str(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC), err = 0;

	if (fd < 0)
		return -errno;
	if (write(fd, s, strlen(s)) < 0)
		err = -errno;
	close(fd);
	return err;
}

/* Kill what is in a cgroup: cgroup.kill (Linux 5.14) or, before that, pid by pid. */
static void cg_kill(const char *dir)
{
	char path[PATH_MAX];
	FILE *f;
	int pid;

	snprintf(path, sizeof(path), "%s/cgroup.kill", dir);
	if (write_str(path, "1") == 0)
		return;
	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	f = fopen(path, "re");
	if (!f)
		return;
	while (fscanf(f, "%d", &pid) == 1)
		kill(pid, SIGKILL);
	fclose(f);
}

/* Empty and remove one cgroup folder; rmdir says EBUSY until the killed tasks are gone. */
static int cg_remove(const char *dir)
{
	int64_t deadline = now_ms() + H_GRACE_MS;
	int delay = 1;

	cg_kill(dir);
	while (rmdir(dir)) {
		if (errno == ENOENT)
			return 0;
		if (errno != EBUSY || now_ms() > deadline) {
			hlog("cannot remove cgroup %s: %s", dir, strerror(errno));
			return -errno;
		}
		cg_kill(dir);
		backoff(&delay);
	}
	return 0;
}

static int depth(const char *p)
{
	int d = 0;

	for (; *p; p++)
		d += *p == '/';
	return d;
}

/* Remove the listed cgroup folders, deepest first (a parent is busy while it has children). */
static int cg_remove_all(const char **dirs, int n)
{
	int i, best, err = 0;

	while (n > 0) {
		for (best = 0, i = 1; i < n; i++)
			if (depth(dirs[i]) > depth(dirs[best]))
				best = i;
		if (cg_remove(dirs[best]))
			err = -EBUSY;
		dirs[best] = dirs[--n];
	}
	return err;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	if (remove(path) && errno != ENOENT)
		hlog("cannot remove %s: %s", path, strerror(errno));
	return 0;
}

/* rm -rf, refused outside the harness's own temp dirs. */
static void rm_tree(const char *dir)
{
	if (strncmp(dir, H_TMP_PREFIX, strlen(H_TMP_PREFIX)) != 0 || strstr(dir, "/../"))
		return;
	nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/*
 * Run one stored command (arguments joined by H_CMD_SEP) with no input or output, for at
 * most H_CMD_MS.  Plain fork + exec: the janitor runs this too, from a dying test's fork.
 */
static void run_cmd(const char *joined)
{
	char buf[PATH_MAX], *args[H_MAX_ARGS], *p;
	sigset_t none;
	int n = 0, fd, pidfd, sig;
	pid_t pid;

	snprintf(buf, sizeof(buf), "%s", joined);
	for (p = buf; p && n < H_MAX_ARGS - 1; n++) {
		args[n] = p;
		p = strchr(p, H_CMD_SEP);
		if (p)
			*p++ = '\0';
	}
	args[n] = NULL;
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return;
	if (pid == 0) {
		for (sig = 1; sig < NSIG; sig++)
			signal(sig, SIG_DFL);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		fd = open("/dev/null", O_RDWR | O_CLOEXEC);
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
		execvp(args[0], args);
		_exit(127);
	}
	pidfd = pidfd_open(pid, 0);
	if (pidfd >= 0 && !pidfd_exited(pidfd, H_CMD_MS)) {
		hlog("teardown command %s still running after %d ms: SIGKILL", args[0], H_CMD_MS);
		kill(pid, SIGKILL);
	}
	if (pidfd >= 0)
		close(pidfd);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
}

/* Last registered first: a later command may depend on what an earlier one set up. */
static void run_cmds(char cmds[][PATH_MAX], int n)
{
	while (n-- > 0)
		run_cmd(cmds[n]);
}

/* --- janitor ------------------------------------------------------------------------------ */

enum { J_PROC = 1, J_UNPROC, J_CGROUP, J_TMPDIR, J_DONE, J_CMD };

struct jmsg {
	int op;
	pid_t pid;
	char path[PATH_MAX];
};

/* Tell the janitor about a resource (with @fd, a pidfd, passed along); best effort. */
static void j_send(int op, pid_t pid, const char *path, int fd)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct jmsg m = { .op = op, .pid = pid };
	struct iovec iov = { .iov_base = &m, .iov_len = offsetof(struct jmsg, path) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *cm;

	if (H.janitor_fd < 0)
		return;
	if (path) {
		snprintf(m.path, sizeof(m.path), "%s", path);
		iov.iov_len += strlen(m.path) + 1;
	}
	if (fd >= 0) {
		mh.msg_control = u.buf;
		mh.msg_controllen = sizeof(u.buf);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	}
	if (sendmsg(H.janitor_fd, &mh, MSG_NOSIGNAL) < 0)
		hlog("janitor: sendmsg: %s", strerror(errno));
}

/* The janitor's own records: static, since it lives in a forked copy of the test. */
static struct {
	int pidfd[1024];
	pid_t pid[1024];
	int nproc;
	const char *cg[H_MAX_CGROUPS];
	char cgbuf[H_MAX_CGROUPS][PATH_MAX];
	int ncg;
	char tmpdir[PATH_MAX];
	char cmds[H_MAX_CMDS][PATH_MAX];
	int ncmds;
} J;

static void j_record(const struct jmsg *m, int fd)
{
	int i;

	if (m->op == J_PROC && fd >= 0 && J.nproc < 1024) {
		J.pidfd[J.nproc] = fd;
		J.pid[J.nproc++] = m->pid;
		return;
	}
	if (fd >= 0)
		close(fd);
	if (m->op == J_UNPROC) {
		for (i = 0; i < J.nproc; i++) {
			if (J.pid[i] != m->pid)
				continue;
			close(J.pidfd[i]);
			J.nproc--;
			J.pidfd[i] = J.pidfd[J.nproc];
			J.pid[i] = J.pid[J.nproc];
			break;
		}
	} else if (m->op == J_CGROUP && J.ncg < H_MAX_CGROUPS) {
		snprintf(J.cgbuf[J.ncg], PATH_MAX, "%s", m->path);
		J.cg[J.ncg] = J.cgbuf[J.ncg];
		J.ncg++;
	} else if (m->op == J_TMPDIR) {
		snprintf(J.tmpdir, sizeof(J.tmpdir), "%s", m->path);
	} else if (m->op == J_CMD && J.ncmds < H_MAX_CMDS) {
		snprintf(J.cmds[J.ncmds++], PATH_MAX, "%s", m->path);
	}
}

/* Receive one message; returns its op, 0 at EOF (the test process is gone), -1 on error. */
static int j_recv(int sock, struct jmsg *m, int *fd)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = { .iov_base = m, .iov_len = sizeof(*m) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
			     .msg_controllen = sizeof(u.buf) };
	struct cmsghdr *cm;
	ssize_t n;

	*fd = -1;
	do {
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	} while (n < 0 && errno == EINTR);
	if (n <= 0)
		return n == 0 ? 0 : -1;
	cm = CMSG_FIRSTHDR(&mh);
	if (cm && cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
		memcpy(fd, CMSG_DATA(cm), sizeof(int));
	if ((size_t)n < offsetof(struct jmsg, path))
		return -1;
	m->path[sizeof(m->path) - 1] = '\0';
	return m->op;
}

static void __attribute__((noreturn)) janitor_main(int sock)
{
	struct jmsg m;
	int fd, op, null;

	prctl(PR_SET_NAME, "h-janitor");
	signal(SIGINT, SIG_IGN); /* ^C reaches the whole process group: outlive the test */
	signal(SIGHUP, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	/* keep stderr and @sock; Criterion's pipes and sockets must not be held open */
	null = open("/dev/null", O_RDWR | O_CLOEXEC);
	dup2(null, 0);
	dup2(null, 1);
	if (sock > 3)
		close_range(3, (unsigned int)sock - 1, 0);
	close_range((unsigned int)sock + 1, ~0U, 0);
	while ((op = j_recv(sock, &m, &fd)) > 0) {
		if (op == J_DONE)
			_exit(0); /* the test cleaned up after itself */
		j_record(&m, fd);
	}
	if (J.nproc || J.ncg)
		hlog("janitor: test process %d died; cleaning up %d process(es), %d cgroup(s)",
		     (int)getppid(), J.nproc, J.ncg);
	stop_groups(J.pidfd, J.pid, J.nproc, false);
	run_cmds(J.cmds, J.ncmds);
	cg_remove_all(J.cg, J.ncg);
	if (J.tmpdir[0] && !getenv("LANYARD_KEEP_TMP"))
		rm_tree(J.tmpdir);
	_exit(0);
}

static int janitor_start(void)
{
	int sv[2];
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv))
		return -errno;
	fflush(NULL); /* the child must not flush a copy of our stdio buffers */
	pid = fork();
	if (pid < 0) {
		close(sv[0]);
		close(sv[1]);
		return -errno;
	}
	if (pid == 0) {
		close(sv[0]);
		janitor_main(sv[1]);
	}
	close(sv[1]);
	H.janitor_fd = sv[0];
	H.janitor_pid = pid;
	return 0;
}

/* --- lifecycle ---------------------------------------------------------------------------- */

static void h_atexit(void)
{
	if (H.active && H.owner == getpid())
		h_teardown();
}

void h_setup(void)
{
	static pid_t atexit_for;
	int err;

	if (H.active && H.owner == getpid())
		return;
	/* a fork of a test inherits its state: forget it, the parent owns those resources */
	memset(&H, 0, sizeof(H));
	H.janitor_fd = -1;
	H.owner = getpid();
	snprintf(H.cg_root, sizeof(H.cg_root), "/lanyard-test-%d", (int)getpid());
	snprintf(H.tmpdir, sizeof(H.tmpdir), "%sXXXXXX", H_TMP_PREFIX);
	if (!mkdtemp(H.tmpdir))
		cr_assert_fail("harness: mkdtemp %s: %s", H.tmpdir, strerror(errno));
	/* readable by a daemon that dropped privileges; secrets in it are 0600 files */
	chmod(H.tmpdir, 0755);
	err = janitor_start();
	if (err)
		hlog("no janitor (%s): a crashed test will leak", strerror(-err));
	j_send(J_TMPDIR, 0, H.tmpdir, -1);
	if (atexit_for != getpid()) {
		atexit(h_atexit);
		atexit_for = getpid();
	}
	H.active = true;
}

static void procs_stop_all(void);
static void procs_dump_all(void);

void h_teardown(void)
{
	const char *cg[H_MAX_CGROUPS];
	bool clean = true;
	size_t i;
	int n;

	if (!H.active || H.owner != getpid())
		return;
	procs_stop_all();
	run_cmds(H.cmds, H.ncmds);
	if (getenv("LANYARD_TEST_DUMP"))
		procs_dump_all();
	for (n = 0; n < H.ncgroups; n++)
		cg[n] = H.cgroups[n];
	if (cg_remove_all(cg, n))
		clean = false;
	for (n = 0; n < H.ncgroups; n++)
		free(H.cgroups[n]);
	if (getenv("LANYARD_KEEP_TMP"))
		hlog("kept %s", H.tmpdir);
	else
		rm_tree(H.tmpdir);
	for (i = 0; i < H.nowned; i++)
		free(H.owned[i]);
	free(H.owned);
	/* with something left over, let the janitor try again once we are gone */
	if (clean)
		j_send(J_DONE, 0, NULL, -1);
	if (H.janitor_fd >= 0)
		close(H.janitor_fd);
	if (H.janitor_pid > 0)
		waitpid(H.janitor_pid, NULL, clean ? 0 : WNOHANG);
	memset(&H, 0, sizeof(H));
	H.janitor_fd = -1;
}

void h_require_root_bpf(void)
{
	const char *why = NULL, *req = getenv("LANYARD_REQUIRE_BPF");

	if (geteuid() != 0)
		why = "not root";
	else if (!h_cgroup_mount())
		why = "no cgroup2 mount";
	else if (access("/sys/kernel/btf/vmlinux", R_OK))
		why = "no kernel BTF (/sys/kernel/btf/vmlinux)";
	else if (libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_CGROUP_SOCK_ADDR, NULL) != 1)
		why = "cannot load a cgroup/connect bpf program";
	else if (libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_SOCK_OPS, NULL) != 1)
		why = "cannot load a sockops bpf program";
	if (!why)
		return;
	if (req && !strcmp(req, "1"))
		cr_assert_fail("needs root and bpf: %s (LANYARD_REQUIRE_BPF=1)", why);
	h_teardown(); /* Criterion runs no .fini after a skip */
	cr_skip_test("needs root and bpf: %s", why);
}

int h_at_teardown(char *const argv[])
{
	char *cmd;
	size_t off = 0, len;
	int i;

	h_ensure();
	if (!argv || !argv[0])
		return -EINVAL;
	if (H.ncmds == H_MAX_CMDS)
		return -ENOSPC;
	cmd = H.cmds[H.ncmds];
	for (i = 0; argv[i]; i++) {
		len = strlen(argv[i]);
		if (strchr(argv[i], H_CMD_SEP) || off + len + 2 > PATH_MAX || i >= H_MAX_ARGS - 1)
			return -E2BIG;
		if (i)
			cmd[off++] = H_CMD_SEP;
		memcpy(cmd + off, argv[i], len);
		off += len;
	}
	cmd[off] = '\0';
	H.ncmds++;
	j_send(J_CMD, 0, cmd, -1);
	return 0;
}

/* --- files -------------------------------------------------------------------------------- */

const char *h_tmpdir(void)
{
	h_ensure();
	return H.tmpdir;
}

char *h_path(const char *fmt, ...)
{
	va_list ap;
	char *name, *p;
	int n;

	h_ensure();
	va_start(ap, fmt);
	n = vasprintf(&name, fmt, ap);
	va_end(ap);
	if (n < 0)
		return NULL;
	p = ownf("%s/%s", H.tmpdir, name);
	free(name);
	return p;
}

char *h_cr_strdup(const char *s)
{
	char *d = cr_malloc(strlen(s) + 1);

	cr_assert(d);
	return strcpy(d, s);
}

char *h_strf(const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	h_ensure();
	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	return n < 0 ? NULL : own(s);
}

/* The build folder: the test binary is <build>/tests/e2e/<name>. */
static char *build_dir(void)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	if (n <= 0)
		return NULL;
	exe[n] = '\0';
	return own(strdup(dirname(dirname(dirname(exe)))));
}

char *h_bin(const char *name)
{
	const char *dir = getenv("LANYARD_BIN_DIR");

	h_ensure();
	if (dir && *dir)
		return ownf("%s/%s", dir, name);
	dir = build_dir();
	return dir ? ownf("%s/bin/%s", dir, name) : NULL;
}

char *h_repo_path(const char *rel)
{
	char *b;

	h_ensure();
	b = build_dir();
	return b ? ownf("%s/%s", dirname(b), rel) : NULL;
}

char *h_read_file(const char *path, size_t *len)
{
	size_t cap = 4096, n = 0;
	char *buf = NULL, *nb;
	ssize_t r;
	int fd, err = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	for (;;) {
		if (!buf || n + 1 >= cap) {
			cap = buf ? cap * 2 : cap;
			nb = realloc(buf, cap);
			if (!nb) {
				err = ENOMEM;
				break;
			}
			buf = nb;
		}
		/* read to EOF: procfs files report size 0 */
		r = read(fd, buf + n, cap - n - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			err = r < 0 ? errno : 0;
			break;
		}
		n += (size_t)r;
	}
	close(fd);
	if (err) {
		free(buf);
		errno = err;
		return NULL;
	}
	buf[n] = '\0';
	if (len)
		*len = n;
	return buf;
}

int h_write_file(const char *path, const char *data, mode_t mode)
{
	size_t len = strlen(data), off = 0;
	ssize_t n;
	int fd, err = 0;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		return -errno;
	if (fchmod(fd, mode)) /* the umask must not decide a key file's mode */
		err = -errno;
	while (!err && off < len) {
		n = write(fd, data + off, len - off);
		if (n < 0 && errno != EINTR)
			err = -errno;
		else if (n > 0)
			off += (size_t)n;
	}
	if (close(fd) && !err)
		err = -errno;
	return err;
}

int h_write_filef(const char *path, mode_t mode, const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n, err;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -ENOMEM;
	err = h_write_file(path, s, mode);
	free(s);
	return err;
}

static bool file_has(const char *path, const char *needle, size_t nlen)
{
	size_t len;
	char *s = h_read_file(path, &len);
	bool hit = s && memmem(s, len, needle, nlen);

	free(s);
	return hit;
}

bool h_file_contains(const char *path, const char *needle)
{
	return file_has(path, needle, strlen(needle));
}

long long h_file_size(const char *path)
{
	struct stat st;

	if (stat(path, &st))
		return errno == ENOENT ? 0 : -errno;
	return (long long)st.st_size;
}

int h_wait_file_contains(const char *path, const char *needle, int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;
	int delay = 1;

	while (!h_file_contains(path, needle)) {
		if (now_ms() > deadline) {
			hlog("%s: no \"%s\" after %d ms", path, needle, timeout_ms);
			return -ETIMEDOUT;
		}
		backoff(&delay);
	}
	return 0;
}

/* nftw has no context argument: the needle being searched for and the hit count. */
static struct {
	const char *needle;
	size_t len;
	int hits;
} G;

static int grep_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)ftw;
	if (flag != FTW_F || !S_ISREG(st->st_mode))
		return 0;
	if (file_has(path, G.needle, G.len)) {
		hlog("needle found in %s", path);
		G.hits++;
	}
	return 0;
}

int h_grep_tree_for(const char *needle, ...)
{
	const char *path;
	struct stat st;
	va_list ap;
	int err = 0;

	G.needle = needle;
	G.len = strlen(needle);
	G.hits = 0;
	if (!G.len)
		return -EINVAL;
	va_start(ap, needle);
	while (!err && (path = va_arg(ap, const char *))) {
		if (lstat(path, &st)) {
			err = -errno;
			hlog("grep: %s: %s", path, strerror(errno));
		} else if (S_ISDIR(st.st_mode)) {
			nftw(path, grep_entry, 16, FTW_PHYS);
		} else {
			grep_entry(path, &st, FTW_F, NULL);
		}
	}
	va_end(ap);
	return err ?: G.hits;
}

/* --- network ------------------------------------------------------------------------------- */

static int bind_loopback(int family, int port)
{
	struct sockaddr_in6 s6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	struct sockaddr_in s4 = { .sin_family = AF_INET };
	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0), rc;

	if (fd < 0)
		return -errno;
	s4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	s4.sin_port = s6.sin6_port = htons((uint16_t)port);
	rc = family == AF_INET ? bind(fd, (struct sockaddr *)&s4, sizeof(s4)) :
				 bind(fd, (struct sockaddr *)&s6, sizeof(s6));
	if (rc) {
		rc = -errno;
		close(fd);
		return rc;
	}
	return fd;
}

bool h_have_ipv6(void)
{
	static int have = -1;
	int fd;

	if (have < 0) {
		fd = bind_loopback(AF_INET6, 0);
		have = fd >= 0;
		if (fd >= 0)
			close(fd);
	}
	return have;
}

static bool port_given(int port)
{
	int i;

	for (i = 0; i < H.nports; i++)
		if (H.ports[i] == port)
			return true;
	return false;
}

int h_free_port(void)
{
	struct sockaddr_in s4;
	socklen_t sl = sizeof(s4);
	int attempt, fd4, fd6, port;

	h_ensure();
	for (attempt = 0; attempt < 100; attempt++) {
		fd4 = bind_loopback(AF_INET, 0);
		if (fd4 < 0)
			return fd4;
		getsockname(fd4, (struct sockaddr *)&s4, &sl);
		port = ntohs(s4.sin_port);
		fd6 = h_have_ipv6() ? bind_loopback(AF_INET6, port) : INT_MAX;
		close(fd4);
		if (fd6 >= 0 && fd6 != INT_MAX)
			close(fd6);
		if (fd6 < 0 || port_given(port))
			continue;
		if (H.nports < (int)(sizeof(H.ports) / sizeof(H.ports[0])))
			H.ports[H.nports++] = port;
		return port;
	}
	return -EADDRINUSE;
}

static int try_connect(const char *addr, int port)
{
	struct sockaddr_storage ss = { 0 };
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	char host[INET6_ADDRSTRLEN];
	int fd, rc;

	snprintf(host, sizeof(host), "%s", addr[0] == '[' ? addr + 1 : addr);
	host[strcspn(host, "]")] = '\0';
	if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
	} else if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
	} else {
		return -EINVAL;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	rc = connect(fd, (struct sockaddr *)&ss, sizeof(ss)) ? -errno : 0;
	close(fd);
	return rc;
}

int h_wait_port(const char *addr, int port, int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;
	int delay = 1, rc;

	while ((rc = try_connect(addr, port))) {
		if (rc == -EINVAL || now_ms() > deadline) {
			hlog("connect %s port %d: %s", addr, port, strerror(-rc));
			return rc == -EINVAL ? rc : -ETIMEDOUT;
		}
		backoff(&delay);
	}
	return 0;
}

/* --- cgroups ------------------------------------------------------------------------------- */

/* the cgroup2 mount, found the way lanyardd finds it (userspace/cgroupfs.c) */
const char *h_cgroup_mount(void)
{
	static char mnt[PATH_MAX];

	if (!mnt[0] && cgroupfs_mount(mnt, sizeof(mnt)) < 0)
		mnt[0] = '\0';
	return mnt[0] ? mnt : NULL;
}

const char *h_cgroup_root(void)
{
	h_ensure();
	return H.cg_root;
}

/* A cgroup argument: a path from the mount ("/lanyard-test-1/app") or a name under ours. */
static char *cg_path(const char *cg)
{
	h_ensure();
	return cg[0] == '/' ? ownf("%s", cg) : ownf("%s/%s", H.cg_root, cg);
}

char *h_cgroup_fs(const char *cgroup)
{
	const char *mnt = h_cgroup_mount();
	char *p = cg_path(cgroup);

	return mnt && p ? ownf("%s%s", strcmp(mnt, "/") ? mnt : "", p) : NULL;
}

static void cg_register(const char *dir)
{
	int i;

	for (i = 0; i < H.ncgroups; i++)
		if (!strcmp(H.cgroups[i], dir))
			return;
	if (H.ncgroups == H_MAX_CGROUPS) {
		hlog("more than %d cgroups: %s will not be removed", H_MAX_CGROUPS, dir);
		return;
	}
	H.cgroups[H.ncgroups++] = strdup(dir);
	j_send(J_CGROUP, 0, dir, -1);
}

char *h_cgroup_create(const char *rel)
{
	char *cg, *fs, *p;
	size_t rootlen;

	h_ensure();
	while (*rel == '/')
		rel++;
	if (!*rel || strstr(rel, "..") || strstr(rel, "//") || rel[strlen(rel) - 1] == '/') {
		hlog("bad cgroup name \"%s\" (want \"app\" or \"app/inner\")", rel);
		return NULL;
	}
	cg = ownf("%s/%s", H.cg_root, rel);
	fs = h_cgroup_fs(cg);
	if (!fs)
		return NULL;
	/* mkdir -p from our root down, registering every level for removal */
	rootlen = strlen(fs) - strlen(cg) + strlen(H.cg_root);
	for (p = fs + rootlen;; p = strchr(p + 1, '/')) {
		if (p)
			*p = '\0';
		if (mkdir(fs, 0755) && errno != EEXIST) {
			hlog("mkdir %s: %s", fs, strerror(errno));
			return NULL;
		}
		cg_register(fs);
		if (!p)
			break;
		*p = '/';
	}
	return cg;
}

uint64_t h_cgroup_id(const char *cgroup)
{
	char *fs = h_cgroup_fs(cgroup);
	struct stat st;

	return fs && !stat(fs, &st) ? (uint64_t)st.st_ino : 0;
}

char *h_pid_cgroup(pid_t pid)
{
	char path[64], *s, *line, *end;

	h_ensure();
	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
	s = h_read_file(path, NULL);
	if (!s)
		return NULL;
	line = strstr(s, "0::");
	if (line && (line == s || line[-1] == '\n')) {
		line += 3;
		end = strchr(line, '\n');
		if (end)
			*end = '\0';
		line = ownf("%s", line);
	} else {
		line = NULL;
	}
	free(s);
	return line;
}

/* --- processes ----------------------------------------------------------------------------- */

static int decode_status(int st)
{
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static struct h_proc *proc_find(pid_t pid)
{
	int i;

	for (i = 0; i < H_MAX_PROCS; i++)
		if (H.procs[i].pid == pid && pid > 0)
			return &H.procs[i];
	return NULL;
}

static void proc_reap(struct h_proc *p)
{
	int st = 0;

	while (waitpid(p->pid, &st, 0) < 0 && errno == EINTR)
		;
	p->status = decode_status(st);
	p->reaped = true;
	close(p->pidfd);
	p->pidfd = -1;
	j_send(J_UNPROC, p->pid, NULL, -1);
}

/* The child side of a spawn: never returns.  errno goes back through @ep on failure. */
static void __attribute__((noreturn))
child_exec(int ep, const char *out, const char *err, char *const argv[], const char *cgfs)
{
	char procs[PATH_MAX], pid[32];
	sigset_t none;
	int fd, sig, e;

	setpgid(0, 0);
	for (sig = 1; sig < NSIG; sig++)
		signal(sig, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if ((fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0 || dup2(fd, 0) < 0)
		goto fail;
	if ((fd = open(out, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644)) < 0 ||
	    dup2(fd, 1) < 0)
		goto fail;
	if ((fd = open(err, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644)) < 0 ||
	    dup2(fd, 2) < 0)
		goto fail;
	if (cgfs) {
		snprintf(procs, sizeof(procs), "%s/cgroup.procs", cgfs);
		snprintf(pid, sizeof(pid), "%d", (int)getpid());
		if ((e = write_str(procs, pid))) {
			errno = -e;
			goto fail;
		}
	}
	/* Criterion's sockets, the janitor's socket: none of the child's business */
	close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
	execvp(argv[0], argv);
fail:
	e = errno;
	if (write(ep, &e, sizeof(e)) < 0)
		_exit(126);
	_exit(127);
}

/* fork + exec; returns the pid once exec succeeded, or -errno (the child reaped). */
static pid_t start_child(const char *out, const char *err, char *const argv[], const char *cgfs)
{
	int ep[2], e = 0;
	ssize_t n;
	pid_t pid;

	if (pipe2(ep, O_CLOEXEC))
		return -errno;
	fflush(NULL);
	pid = fork();
	if (pid == 0)
		child_exec(ep[1], out, err, argv, cgfs);
	e = pid < 0 ? errno : 0;
	close(ep[1]);
	if (pid > 0) {
		setpgid(pid, pid); /* both sides: kill(-pid) must work as soon as we return */
		do {
			n = read(ep[0], &e, sizeof(e));
		} while (n < 0 && errno == EINTR);
		if (n != sizeof(e))
			e = 0;
		else
			waitpid(pid, NULL, 0);
	}
	close(ep[0]);
	return e ? -e : pid;
}

/* Record a started child; -ENOSPC (child killed) when the table is full. */
static struct h_proc *proc_add(pid_t pid, const char *name, bool keep)
{
	struct h_proc *p = NULL;
	int i;

	for (i = 0; i < H_MAX_PROCS && !p; i++)
		if (!H.procs[i].pid || (H.procs[i].reaped && !H.procs[i].keep))
			p = &H.procs[i];
	if (!p) {
		hlog("more than %d processes: killing %s", H_MAX_PROCS, name);
		kill(-pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return NULL;
	}
	memset(p, 0, sizeof(*p));
	p->pid = pid;
	p->keep = keep;
	p->pidfd = pidfd_open(pid, 0); /* unreaped child: this cannot name another process */
	snprintf(p->name, sizeof(p->name), "%s", name);
	j_send(J_PROC, pid, NULL, p->pidfd);
	return p;
}

pid_t h_spawn(const char *name, char *const argv[], const char *cgroup)
{
	char *cgfs = NULL;
	pid_t pid;

	h_ensure();
	if (cgroup && !(cgfs = h_cgroup_fs(cgroup)))
		return -ENOENT;
	pid = start_child(h_out_path(name), h_err_path(name), argv, cgfs);
	if (pid < 0) {
		hlog("spawn %s (%s): %s", name, argv[0], strerror((int)-pid));
		return pid;
	}
	return proc_add(pid, name, true) ? pid : -ENOSPC;
}

/* Collect a NULL-terminated argument list; execvp's argv is char *const[] by history only. */
static int collect_args(char *args[H_MAX_ARGS], const char *arg0, va_list ap)
{
	union {
		const char *c;
		char *m;
	} u = { .c = arg0 };
	int n = 0;

	while (u.c && n < H_MAX_ARGS - 1) {
		args[n++] = u.m;
		u.c = va_arg(ap, const char *);
	}
	args[n] = NULL;
	return u.c ? -E2BIG : 0;
}

pid_t h_spawnl(const char *name, const char *cgroup, const char *arg0, ...)
{
	char *args[H_MAX_ARGS];
	va_list ap;
	int err;

	va_start(ap, arg0);
	err = collect_args(args, arg0, ap);
	va_end(ap);
	return err ?: h_spawn(name, args, cgroup);
}

char *h_out_path(const char *name)
{
	return h_path("%s.out", name);
}

char *h_err_path(const char *name)
{
	return h_path("%s.err", name);
}

bool h_alive(pid_t pid)
{
	struct h_proc *p = proc_find(pid);

	return p && !p->reaped && !pidfd_exited(p->pidfd, 0);
}

int h_wait_exit(pid_t pid, int timeout_ms)
{
	struct h_proc *p = proc_find(pid);

	if (!p)
		return -ECHILD;
	if (!p->reaped) {
		if (!pidfd_exited(p->pidfd, timeout_ms))
			return -ETIMEDOUT;
		proc_reap(p);
	}
	return p->status;
}

int h_stop(pid_t pid)
{
	struct h_proc *p = proc_find(pid);

	if (!p)
		return -ECHILD;
	if (!p->reaped) {
		stop_groups(&p->pidfd, &p->pid, 1, true);
		proc_reap(p);
	}
	return p->status;
}

static void procs_stop_all(void)
{
	int pidfds[H_MAX_PROCS], i, n = 0;
	pid_t pids[H_MAX_PROCS];

	for (i = 0; i < H_MAX_PROCS; i++) {
		if (!H.procs[i].pid || H.procs[i].reaped)
			continue;
		pidfds[n] = H.procs[i].pidfd;
		pids[n++] = H.procs[i].pid;
	}
	stop_groups(pidfds, pids, n, true);
	for (i = 0; i < H_MAX_PROCS; i++)
		if (H.procs[i].pid && !H.procs[i].reaped)
			proc_reap(&H.procs[i]);
}

static void dump_tail(const char *name, const char *ext, int lines)
{
	char *path = h_path("%s.%s", name, ext), *s, *p;
	size_t len;
	int n = 0;

	s = path ? h_read_file(path, &len) : NULL;
	if (!s || !len) {
		free(s);
		return;
	}
	for (p = s + len - 1; p > s; p--)
		if (*p == '\n' && p != s + len - 1 && ++n >= lines)
			break;
	fprintf(stderr, "---- %s.%s (last %d lines) ----\n%s%s", name, ext, lines,
		*p == '\n' ? p + 1 : p, s[len - 1] == '\n' ? "" : "\n");
	free(s);
}

void h_dump(const char *name, int lines)
{
	dump_tail(name, "out", lines);
	dump_tail(name, "err", lines);
}

static void procs_dump_all(void)
{
	int i;

	for (i = 0; i < H_MAX_PROCS; i++)
		if (H.procs[i].pid && H.procs[i].keep)
			h_dump(H.procs[i].name, 30);
}

int h_wait_output(pid_t pid, const char *needle, int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;
	struct h_proc *p = proc_find(pid);
	int delay = 1;
	bool gone;

	if (!p)
		return -ECHILD;
	for (;;) {
		gone = p->reaped || pidfd_exited(p->pidfd, 0);
		if (h_file_contains(h_out_path(p->name), needle) ||
		    h_file_contains(h_err_path(p->name), needle))
			return 0;
		if (gone) {
			hlog("%s exited before printing \"%s\"", p->name, needle);
			h_dump(p->name, 20);
			return -ESRCH;
		}
		if (now_ms() > deadline) {
			hlog("%s: no \"%s\" after %d ms", p->name, needle, timeout_ms);
			h_dump(p->name, 20);
			return -ETIMEDOUT;
		}
		backoff(&delay);
	}
}

int h_run(char *const argv[], const char *cgroup, int timeout_ms, char **out)
{
	char *path, *cgfs = NULL, *base;
	struct h_proc *p;
	pid_t pid;
	int rc;

	h_ensure();
	if (out)
		*out = NULL;
	base = strrchr(argv[0], '/');
	path = h_path("run-%03u-%s.out", ++H.run_seq, base ? base + 1 : argv[0]);
	if (cgroup && !(cgfs = h_cgroup_fs(cgroup)))
		return -ENOENT;
	pid = start_child(path, path, argv, cgfs);
	if (pid < 0) {
		hlog("run %s: %s", argv[0], strerror((int)-pid));
		rc = pid;
	} else if (!(p = proc_add(pid, argv[0], false))) {
		rc = -ENOSPC;
	} else if ((rc = h_wait_exit(pid, timeout_ms)) == -ETIMEDOUT) {
		hlog("run %s: still running after %d ms: killed", argv[0], timeout_ms);
		kill(-pid, SIGKILL);
		proc_reap(p);
	}
	if (out)
		*out = h_read_file(path, NULL) ?: strdup("");
	return rc;
}

int h_runl(const char *cgroup, int timeout_ms, char **out, const char *arg0, ...)
{
	char *args[H_MAX_ARGS];
	va_list ap;
	int err;

	va_start(ap, arg0);
	err = collect_args(args, arg0, ap);
	va_end(ap);
	return err ?: h_run(args, cgroup, timeout_ms, out);
}

pid_t h_upstream(const char *name, int port, const char *body)
{
	char l4[32], l6[48];
	char *args[16];
	int n = 0, rc;
	pid_t pid;

	h_ensure();
	snprintf(l4, sizeof(l4), "127.0.0.1:%d", port);
	snprintf(l6, sizeof(l6), "[::1]:%d", port);
	args[n++] = h_bin("ly-upstream");
	args[n++] = "--listen";
	args[n++] = l4;
	if (h_have_ipv6()) {
		args[n++] = "--listen";
		args[n++] = l6;
	}
	args[n++] = "--log";
	args[n++] = h_path("%s.jsonl", name);
	args[n++] = "--raw";
	args[n++] = h_path("%s.raw", name);
	if (body) {
		args[n++] = "--body";
		args[n++] = ownf("%s", body);
	}
	args[n] = NULL;
	pid = h_spawn(name, args, NULL);
	if (pid < 0)
		return pid;
	rc = h_wait_output(pid, "listening", 5000);
	if (rc) {
		h_stop(pid);
		return rc;
	}
	return pid;
}

pid_t h_upstream_args(const char *name, int port, const char *const extra[])
{
	char *args[H_MAX_ARGS];
	int n = 0, i, rc;
	pid_t pid;

	h_ensure();
	args[n++] = h_bin("ly-upstream");
	args[n++] = "--listen";
	args[n++] = ownf("127.0.0.1:%d", port);
	if (h_have_ipv6()) {
		args[n++] = "--listen";
		args[n++] = ownf("[::1]:%d", port);
	}
	args[n++] = "--log";
	args[n++] = h_path("%s.jsonl", name);
	args[n++] = "--raw";
	args[n++] = h_path("%s.raw", name);
	for (i = 0; extra && extra[i]; i++) {
		if (n == H_MAX_ARGS - 1)
			return -E2BIG;
		args[n++] = ownf("%s", extra[i]);
	}
	args[n] = NULL;
	pid = h_spawn(name, args, NULL);
	if (pid < 0)
		return pid;
	rc = h_wait_output(pid, "listening", 5000);
	if (rc) {
		h_stop(pid);
		return rc;
	}
	return pid;
}

pid_t h_tls_upstream(const char *name, int port, const char *cert, const char *key,
		     const char *client_ca)
{
	const char *extra[] = { "--tls-cert", cert, "--tls-key", key,
				client_ca ? "--client-ca" : NULL, client_ca, NULL };

	if (!cert || !key)
		return -EINVAL;
	return h_upstream_args(name, port, extra);
}

/* --- JSON lines ---------------------------------------------------------------------------- */

static json_t *json_at(json_t *obj, const char *key)
{
	char buf[256], *tok, *save = NULL;
	json_t *v = json_object_get(obj, key);

	if (v || !strchr(key, '.') || strlen(key) >= sizeof(buf))
		return v;
	strcpy(buf, key);
	for (tok = strtok_r(buf, ".", &save); tok && obj; tok = strtok_r(NULL, ".", &save))
		obj = json_object_get(obj, tok);
	return obj;
}

static bool json_value_is(const json_t *v, const char *want)
{
	char num[64];

	switch (json_typeof(v)) {
	case JSON_STRING:
		return !strcmp(json_string_value(v), want);
	case JSON_INTEGER:
		snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		return !strcmp(num, want);
	case JSON_REAL:
		return strtod(want, NULL) == json_real_value(v);
	case JSON_TRUE:
		return !strcmp(want, "true");
	case JSON_FALSE:
		return !strcmp(want, "false");
	case JSON_NULL:
		return !strcmp(want, "null");
	default:
		return false;
	}
}

static bool json_matches(json_t *obj, const char *key, const char *value)
{
	json_t *v;

	if (!json_is_object(obj))
		return false;
	if (!key)
		return true;
	v = json_at(obj, key);
	return v && (!value || json_value_is(v, value));
}

enum jsonl_mode { JL_FIRST, JL_LAST, JL_COUNT };

/* Scan the complete lines of @path; returns a new reference (FIRST/LAST) and sets *@count. */
static json_t *jsonl_scan(const char *path, const char *key, const char *value,
			  enum jsonl_mode mode, int *count)
{
	json_t *found = NULL, *obj;
	char *s, *line, *nl;
	size_t len;

	*count = 0;
	s = h_read_file(path, &len);
	if (!s) {
		*count = errno == ENOENT ? 0 : -errno;
		return NULL;
	}
	for (line = s; (nl = memchr(line, '\n', len - (size_t)(line - s))); line = nl + 1) {
		obj = json_loadb(line, (size_t)(nl - line), JSON_DECODE_ANY, NULL);
		if (obj && json_matches(obj, key, value)) {
			++*count;
			json_decref(found);
			found = json_incref(obj);
		}
		json_decref(obj);
		if (found && mode == JL_FIRST)
			break;
	}
	free(s);
	if (mode == JL_COUNT) {
		json_decref(found);
		found = NULL;
	}
	return found;
}

json_t *h_jsonl_find(const char *path, const char *key, const char *value)
{
	int n;

	return jsonl_scan(path, key, value, JL_FIRST, &n);
}

json_t *h_jsonl_last(const char *path, const char *key, const char *value)
{
	int n;

	return jsonl_scan(path, key, value, JL_LAST, &n);
}

int h_jsonl_count(const char *path, const char *key, const char *value)
{
	int n;

	jsonl_scan(path, key, value, JL_COUNT, &n);
	return n;
}

json_t *h_jsonl_wait(const char *path, const char *key, const char *value, int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;
	int delay = 1;
	json_t *obj;

	while (!(obj = h_jsonl_find(path, key, value))) {
		if (now_ms() > deadline) {
			hlog("%s: no line with %s=%s after %d ms", path, key ? key : "*",
			     value ? value : "*", timeout_ms);
			return NULL;
		}
		backoff(&delay);
	}
	return obj;
}

static const char *header_at(const json_t *req, const char *name, int *count)
{
	const json_t *hdrs = json_object_get(req, "headers"), *pair;
	const char *first = NULL, *n;
	size_t i;

	*count = 0;
	json_array_foreach(hdrs, i, pair)
	{
		n = json_string_value(json_array_get(pair, 0));
		if (!n || strcasecmp(n, name))
			continue;
		if (!(*count)++)
			first = json_string_value(json_array_get(pair, 1));
	}
	return first;
}

const char *h_json_header(const json_t *req, const char *name)
{
	int n;

	return header_at(req, name, &n);
}

int h_json_header_count(const json_t *req, const char *name)
{
	int n;

	header_at(req, name, &n);
	return n;
}

rlim_t h_nofile_leaving(pid_t pid, int n)
{
	char *dir = h_strf("/proc/%d/fd", (int)pid);
	bool used[4096] = { false };
	struct dirent *de;
	DIR *d = opendir(dir);
	rlim_t lim;
	int nfree = 0;

	cr_assert(d, "%s", dir);
	while ((de = readdir(d))) {
		int fd = atoi(de->d_name);

		if (de->d_name[0] != '.' && fd >= 0 && fd < 4096)
			used[fd] = true;
	}
	closedir(d);
	/* up to the (n+1)th free number: every descriptor below it but n is in use */
	for (lim = 0; lim < 4096; lim++)
		if (!used[lim] && nfree++ == n)
			break;
	return lim;
}

long h_cpu_ticks(pid_t pid)
{
	char *stat = h_read_file(h_strf("/proc/%d/stat", (int)pid), NULL);
	const char *p = stat ? strrchr(stat, ')') : NULL;
	unsigned long ut = 0, st = 0;

	/* after "pid (comm)": state ppid pgrp session tty tpgid flags minflt cminflt majflt
	 * cmajflt utime stime */
	cr_assert(p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
			      &ut, &st) == 2, "/proc/%d/stat", (int)pid);
	free(stat);
	return (long)(ut + st);
}
