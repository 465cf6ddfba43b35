// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Copyright (c) 2026 The lanyard authors */
/*
 * Credentials from a helper command (a Vault agent, a cloud CLI), run on a
 * fetch worker.  The helper gets no capabilities, an empty environment but for
 * PATH and the workload it works for, /dev/null as stdin, and its own process
 * group; it must print {"token": ..., "expires_at": ...} and exit 0 within the
 * timeout, or the whole group is killed.  Its stdout is read into wiped
 * memory and never logged; the first lines of its stderr go to the daemon log
 * on failure.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fetch.h"

#define EXEC_MAX_STDERR 4096
#define EXEC_ENV_MAX 8

struct helper {
	const struct fetch_job *job;
	pid_t pid;
	int pidfd;		/* readable once the helper exited */
	int out, err;		/* its stdout and stderr; -1 at EOF */
	char *obuf;		/* stdout, wiped before it is freed */
	size_t olen;
	char ebuf[EXEC_MAX_STDERR + 1];
	size_t elen;
	int status;
	int exited, out_too_big;
};

/*
 * In the child, between fork and exec: only async-signal-safe calls.  The
 * capabilities go first: with no_new_privs (set at start-up) the kernel caps
 * what execve grants root at what the process had, which is then nothing.
 */
static void __attribute__((noreturn)) child(char *const argv[], char *const envp[], int devnull,
					    int out, int err)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct caps[2] = { 0 };
	struct rlimit nofile;
	sigset_t none;

	/* lanyardd raised its soft limit; a helper may still use select() */
	if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur > FD_SETSIZE) {
		nofile.rlim_cur = FD_SETSIZE;
		setrlimit(RLIMIT_NOFILE, &nofile);
	}
	sigemptyset(&none);
	if (syscall(SYS_capset, &hdr, caps) < 0 || setpgid(0, 0) < 0 ||
	    sigprocmask(SIG_SETMASK, &none, NULL) < 0 || signal(SIGPIPE, SIG_DFL) == SIG_ERR ||
	    dup2(devnull, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0 ||
	    syscall(SYS_close_range, 3U, ~0U, 0) < 0)
		_exit(126);
	execve(argv[0], argv, envp);
	_exit(127);
}

/* PATH, the workload, the route and its audience: all a helper learns from us */
static int build_env(const struct fetch_job *j, char env[EXEC_ENV_MAX][256], char *envp[])
{
	int n = 0;

	snprintf(env[n++], 256, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
	snprintf(env[n++], 256, "LANYARD_WORKLOAD=%s", j->workload);
	snprintf(env[n++], 256, "LANYARD_ROUTE=%s", j->route);
	if (j->audience[0])
		snprintf(env[n++], 256, "LANYARD_AUDIENCE=%s", j->audience);
	for (int i = 0; i < n; i++)
		envp[i] = env[i];
	envp[n] = NULL;
	return n;
}

static int helper_spawn(struct fetch_job *j, struct helper *h)
{
	char env[EXEC_ENV_MAX][256], *envp[EXEC_ENV_MAX + 1];
	int po[2] = { -1, -1 }, pe[2] = { -1, -1 }, devnull, rc = 0;

	build_env(j, env, envp);
	devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (devnull < 0 || pipe2(po, O_CLOEXEC) < 0 || pipe2(pe, O_CLOEXEC) < 0) {
		rc = -errno;
		goto out;
	}
	h->pid = fork();
	if (h->pid < 0) {
		rc = -errno;
		goto out;
	}
	if (h->pid == 0)
		child(j->src->argv, envp, devnull, po[1], pe[1]);
	h->pidfd = (int)syscall(SYS_pidfd_open, h->pid, 0);
	if (h->pidfd < 0)
		rc = -errno;
	h->out = po[0];
	h->err = pe[0];
	po[0] = pe[0] = -1;
out:
	for (int i = 0; i < 2; i++) {
		if (po[i] >= 0)
			close(po[i]);
		if (pe[i] >= 0)
			close(pe[i]);
	}
	if (devnull >= 0)
		close(devnull);
	return rc;
}

/* Read what is there from fd into buf (past cap: discarded, *too_big set); -1 the fd at EOF. */
static void drain(int *fd, char *buf, size_t *len, size_t cap, int *too_big)
{
	char scratch[4096];
	ssize_t n;

	do {
		size_t room = cap - *len;

		n = read(*fd, room ? buf + *len : scratch, room ? room : sizeof(scratch));
		if (n > 0 && room)
			*len += (size_t)n;
		else if (n > 0 && too_big)
			*too_big = 1;
	} while (n > 0 || (n < 0 && errno == EINTR));
	if (n == 0 || errno != EAGAIN) {
		close(*fd);
		*fd = -1;
	}
	explicit_bzero(scratch, sizeof(scratch));
}

/* Wait for output and exit until the deadline.  0, or -ETIMEDOUT. */
static int helper_wait(struct helper *h, uint64_t deadline)
{
	while (!h->exited || h->out >= 0 || h->err >= 0) {
		struct pollfd p[3] = {
			{ .fd = h->out, .events = POLLIN },
			{ .fd = h->err, .events = POLLIN },
			{ .fd = h->exited ? -1 : h->pidfd, .events = POLLIN },
		};
		uint64_t now = loop_clock_us() / 1000;
		int n;

		if (now >= deadline)
			return -ETIMEDOUT;
		if (fetch_cancelled(h->job))
			return -ECANCELED;
		/* wake at least every 100 ms to notice a shutdown */
		n = poll(p, 3, deadline - now < 100 ? (int)(deadline - now) : 100);
		if (n < 0 && errno != EINTR)
			return -errno;
		if (p[0].revents)
			drain(&h->out, h->obuf, &h->olen, FETCH_MAX_RESPONSE, &h->out_too_big);
		if (p[1].revents)
			drain(&h->err, h->ebuf, &h->elen, EXEC_MAX_STDERR, NULL);
		if (p[2].revents)
			h->exited = 1;
	}
	return 0;
}

/*
 * Kill the helper's process group while the helper is still an unreaped
 * zombie (its pid, and so the group id, cannot have been reused), then reap.
 */
static void helper_reap(struct helper *h)
{
	kill(-h->pid, SIGKILL);
	while (waitpid(h->pid, &h->status, 0) < 0 && errno == EINTR)
		;
	if (h->pidfd >= 0)
		close(h->pidfd);
	if (h->out >= 0)
		close(h->out);
	if (h->err >= 0)
		close(h->err);
}

/* The first three lines of stderr, control bytes replaced, for the daemon log. */
static void stderr_summary(const struct helper *h, char *out, size_t cap)
{
	size_t o = 0;
	int lines = 0;

	for (size_t i = 0; i < h->elen && o + 4 < cap && lines < 3; i++) {
		unsigned char ch = (unsigned char)h->ebuf[i];

		if (ch == '\n') {
			lines++;
			if (i + 1 < h->elen && lines < 3)
				o += (size_t)snprintf(out + o, cap - o, " | ");
			continue;
		}
		out[o++] = ch < 0x20 || ch > 0x7e ? '?' : (char)ch;
	}
	out[o] = '\0';
}

static void helper_result(struct fetch_job *j, struct helper *h, int rc)
{
	const char *cmd = j->src->argv[0];

	stderr_summary(h, j->detail, sizeof(j->detail));
	if (rc == -ETIMEDOUT)
		fetch_fail(j, rc, "helper %s did not finish within %u ms: killed", cmd,
			   j->src->timeout_ms);
	else if (rc)
		fetch_fail(j, rc, "helper %s: %s", cmd, strerror(-rc));
	else if (WIFSIGNALED(h->status))
		fetch_fail(j, -EIO, "helper %s was killed by signal %d", cmd, WTERMSIG(h->status));
	else if (WEXITSTATUS(h->status))
		fetch_fail(j, -EIO, "helper %s exited with status %d%s", cmd,
			   WEXITSTATUS(h->status), WEXITSTATUS(h->status) == 127 ?
			   " (cannot execute it)" : "");
	else if (h->out_too_big)
		fetch_fail(j, -EPROTO, "helper %s printed more than 64 KiB", cmd);
	else if (fetch_parse_exec_output(h->obuf, h->olen, &j->token, &j->expires_at, j->why,
					 sizeof(j->why)))
		j->err = -EPROTO;
	if (!j->err)
		j->detail[0] = '\0';
}

void source_exec_fetch(struct fetch_job *j)
{
	struct helper h = { .job = j, .pid = -1, .pidfd = -1, .out = -1, .err = -1 };
	uint64_t deadline = loop_clock_us() / 1000 + j->src->timeout_ms;
	int rc;

	h.obuf = malloc(FETCH_MAX_RESPONSE + 1);
	if (!h.obuf) {
		fetch_fail(j, -ENOMEM, "out of memory");
		return;
	}
	rc = helper_spawn(j, &h);
	if (!rc) {
		fcntl(h.out, F_SETFL, O_NONBLOCK);
		fcntl(h.err, F_SETFL, O_NONBLOCK);
		rc = helper_wait(&h, deadline);
	}
	if (h.pid > 0)
		helper_reap(&h);
	h.obuf[h.olen] = '\0';
	helper_result(j, &h, rc);
	explicit_bzero(h.obuf, FETCH_MAX_RESPONSE + 1);
	free(h.obuf);
}
