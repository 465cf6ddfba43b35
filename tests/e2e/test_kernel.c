// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Copyright (c) 2026 The lanyard authors */
/*
 * The kernel side against the real kernel (root, bpf, cgroup2): kernel.c loads
 * and attaches redirect.bpf.o in a private pin folder, the test plays lanyardd's
 * listener, and forked clients in a fresh cgroup connect() and get redirected.
 */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <bpf/bpf.h>

#include "kernel.h"
#include "log.h"
#include "policy.h"

#define DST_PORT	26000		/* nothing listens here: unredirected connects fail */
#define WL_MAIN		7		/* workload ids, as the daemon registry would assign */
#define WL_LATE		8
#define MARK		0x4c59
#define CLIENT_COMM	"ly-e2e-client"
#define IO_TIMEOUT_MS	3000

static struct env {
	struct kernel *k;
	struct policy *pol;
	char pin_dir[128];
	char cg_name[64];		/* "/lanyard-e2e-<pid>", relative to the cgroup2 mount */
	char cg[512];			/* absolute */
	char late[520];			/* absolute: <cg>-late (created by a test) */
	uint16_t port;			/* listener port, host order */
	int lfd4, lfd6;
	uint64_t cg_id;
} env = { .lfd4 = -1, .lfd6 = -1 };

/* --- helpers --------------------------------------------------------------------- */

static uint64_t ino_of(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (uint64_t)st.st_ino : 0;
}

/* rmdir a cgroup and its children; processes must have left it */
static void cg_remove(const char *path)
{
	char sub[1024];
	struct dirent *de;
	DIR *d = opendir(path);

	if (!d)
		return;
	while ((de = readdir(d))) {
		if (de->d_type != DT_DIR || de->d_name[0] == '.')
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
		cg_remove(sub);
	}
	closedir(d);
	for (int i = 0; i < 50 && rmdir(path) < 0 && errno == EBUSY; i++)
		usleep(20000);	/* exited children leave the cgroup asynchronously */
}

/* leftovers of a test run that crashed: pins and cgroups of pids that are gone */
static void sweep_stale(const char *cgroot)
{
	struct dirent *de;
	char path[1024];
	DIR *d;
	int pid;

	d = opendir("/sys/fs/bpf");
	while (d && (de = readdir(d))) {
		if (sscanf(de->d_name, "lanyard-test-%d", &pid) == 1 && kill(pid, 0) < 0 &&
		    errno == ESRCH) {
			snprintf(path, sizeof(path), "/sys/fs/bpf/%s", de->d_name);
			kernel_detach_pinned(path);
		}
	}
	if (d)
		closedir(d);
	d = opendir(cgroot);
	while (d && (de = readdir(d))) {
		if (sscanf(de->d_name, "lanyard-e2e-%d", &pid) == 1 && kill(pid, 0) < 0 &&
		    errno == ESRCH) {
			snprintf(path, sizeof(path), "%s/%s", cgroot, de->d_name);
			cg_remove(path);
		}
	}
	if (d)
		closedir(d);
}

static int listen_on(int family, uint16_t port)
{
	struct sockaddr_storage ss = { 0 };
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
	int one = 1, fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (family == AF_INET) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	} else {
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		s6->sin6_addr = in6addr_loopback;
	}
	if (bind(fd, (struct sockaddr *)&ss, sizeof(ss)) < 0 || listen(fd, 64) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* 127.0.0.1:P and [::1]:P with one free P, as lanyardd's listener would be */
static void listeners_open(void)
{
	for (int i = 0; i < 200; i++) {
		/* 27001-30000: clear of DST_PORT and of the ephemeral range */
		uint16_t port = (uint16_t)(27001 + (getpid() * 7 + i) % 3000);

		env.lfd4 = listen_on(AF_INET, port);
		if (env.lfd4 < 0)
			continue;
		env.lfd6 = listen_on(AF_INET6, port);
		if (env.lfd6 >= 0) {
			env.port = port;
			return;
		}
		close(env.lfd4);
		env.lfd4 = -1;
	}
	cr_assert_fail("no free port pair for the listener");
}

/* main_cg: the main workload's cgroup, relative to the mount */
static char *policy_text(const char *main_cg)
{
	char *s = NULL;

	cr_assert_gt(asprintf(&s,
			      "trust_domain: e2e.test\n"
			      "listen: { port: %u }\n"
			      "workloads:\n"
			      "  - name: main\n"
			      "    match: { cgroup: %s }\n"
			      "    routes:\n"
			      "      - to: 127.0.0.1:%d\n"
			      "        credential: { type: jwt, audience: https://v4.e2e.test }\n"
			      "      - to: \"[::1]:%d\"\n"
			      "        credential: { type: jwt, audience: https://v6.e2e.test }\n"
			      "  - name: late\n"
			      "    match: { cgroup: %s-late/inner }\n"
			      "    routes:\n"
			      "      - to: 127.0.0.0/8:%d\n"
			      "        credential: { type: jwt, audience: https://late.test }\n",
			      env.port, main_cg, DST_PORT, DST_PORT, env.cg_name, DST_PORT), 0);
	return s;
}

static void apply_policy(const char *main_cg)
{
	struct kernel_workload wls[2] = {
		{ .id = WL_MAIN, .flags = LY_WL_ENFORCE },
		{ .id = WL_LATE, .flags = LY_WL_ENFORCE },
	};
	char err[POLICY_ERR_LEN] = "";
	char *text = policy_text(main_cg);

	env.pol = policy_parse(text, strlen(text), "<e2e>", err, sizeof(err));
	free(text);
	cr_assert_not_null(env.pol, "policy_parse: %s", err);
	cr_assert_eq(env.pol->nworkloads, 2);
	cr_assert_eq(kernel_apply(env.k, env.pol, wls), 0);
}

static void setup(void)
{
	struct kernel_opts o = { .mark = MARK };
	char err[512] = "", root[256];
	const char *req = getenv("LANYARD_REQUIRE_BPF");

	if (geteuid() != 0) {
		if (req && !strcmp(req, "1"))
			cr_assert_fail("needs root (LANYARD_REQUIRE_BPF=1)");
		cr_skip_test("needs root, bpf and cgroup2");
	}
	log_init(getenv("LANYARD_TEST_VERBOSE") != NULL, "test_kernel");
	listeners_open();
	snprintf(env.pin_dir, sizeof(env.pin_dir), "/sys/fs/bpf/lanyard-test-%d", (int)getpid());
	snprintf(env.cg_name, sizeof(env.cg_name), "/lanyard-e2e-%d", (int)getpid());
	o.pin_dir = env.pin_dir;
	o.listen_port = env.port;
	cr_assert_eq(kernel_self_cgroup_id(&o.daemon_cgid), 0);

	env.k = kernel_open(&o, err, sizeof(err));
	cr_assert_not_null(env.k, "kernel_open: %s", err);
	snprintf(root, sizeof(root), "%s", kernel_cgroup_root(env.k));
	sweep_stale(root);
	snprintf(env.cg, sizeof(env.cg), "%s%s", root, env.cg_name);
	snprintf(env.late, sizeof(env.late), "%s-late", env.cg);
	cr_assert_eq(mkdir(env.cg, 0755), 0, "mkdir %s: %s", env.cg, strerror(errno));
	env.cg_id = ino_of(env.cg);
	apply_policy(env.cg_name);
}

/*
 * Runs after the suite's setup: restart "lanyardd" from inside <cg>/lanyardd,
 * as if the daemon's own cgroup were under an enrolled one.
 */
static void setup_daemon_variant(void)
{
	struct kernel_opts o = { .pin_dir = env.pin_dir, .mark = MARK, .listen_port = env.port };
	char d[600], err[512] = "";

	snprintf(d, sizeof(d), "%s/lanyardd", env.cg);
	cr_assert_eq(mkdir(d, 0755), 0);
	o.daemon_cgid = ino_of(d);
	kernel_close(env.k, 0);
	policy_free(env.pol);
	env.k = kernel_open(&o, err, sizeof(err));
	cr_assert_not_null(env.k, "kernel_open: %s", err);
	apply_policy(env.cg_name);
}

static void teardown(void)
{
	kernel_close(env.k, 1);
	env.k = NULL;
	policy_free(env.pol);
	env.pol = NULL;
	if (env.lfd4 >= 0)
		close(env.lfd4);
	if (env.lfd6 >= 0)
		close(env.lfd6);
	if (env.cg[0])
		cg_remove(env.cg);
	if (env.late[0])
		cg_remove(env.late);
	cr_expect_eq(access(env.pin_dir, F_OK), -1, "pin folder %s left behind", env.pin_dir);
}

TestSuite(kernel_e2e, .init = setup, .fini = teardown, .timeout = 30);

/* --- a client process ------------------------------------------------------------ */

struct client {
	pid_t pid;
	int res_fd;		/* child -> test: struct client_result */
	int go_fd;		/* test -> child: exit now (closing the socket) */
};

struct client_result {
	int rc;
	int err;
	struct sockaddr_storage local;
};

struct client_spec {
	const char *cgroup;	/* absolute cgroup folder to join; NULL: stay put */
	int family;		/* socket family */
	const char *dst;	/* inet_pton text in that family */
	uint16_t port;
	uint32_t mark;		/* SO_MARK, 0 = none */
	int reset;		/* close with SO_LINGER 0 (RST): the socket is gone at once */
};

static void client_main(const struct client_spec *s, int res_fd, int go_fd)
{
	struct client_result r = { 0 };
	struct sockaddr_storage ss = { 0 };
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
	socklen_t len = sizeof(r.local);
	char procs[600], c;
	int fd;

	prctl(PR_SET_NAME, CLIENT_COMM);
	if (s->cgroup) {
		snprintf(procs, sizeof(procs), "%s/cgroup.procs", s->cgroup);
		fd = open(procs, O_WRONLY);
		if (fd < 0 || write(fd, "0", 1) != 1)
			_exit(3);
		close(fd);
	}
	fd = socket(s->family, SOCK_STREAM, 0);
	if (s->mark)
		setsockopt(fd, SOL_SOCKET, SO_MARK, &s->mark, sizeof(s->mark));
	if (s->family == AF_INET) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons(s->port);
		inet_pton(AF_INET, s->dst, &s4->sin_addr);
	} else {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(s->port);
		inet_pton(AF_INET6, s->dst, &s6->sin6_addr);
	}
	r.rc = connect(fd, (struct sockaddr *)&ss, sizeof(ss));
	r.err = r.rc < 0 ? errno : 0;
	getsockname(fd, (struct sockaddr *)&r.local, &len);
	if (write(res_fd, &r, sizeof(r)) != sizeof(r))
		_exit(4);
	/* keep the socket open until told: closing it drops the published flow */
	if (read(go_fd, &c, 1) < 0)
		_exit(5);
	if (s->reset) {
		struct linger lg = { .l_onoff = 1, .l_linger = 0 };

		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	}
	close(fd);
	_exit(0);
}

static void client_start(struct client *c, const struct client_spec *s, struct client_result *r)
{
	int res[2], go[2];
	struct pollfd p;

	cr_assert_eq(pipe2(res, O_CLOEXEC), 0);
	cr_assert_eq(pipe2(go, O_CLOEXEC), 0);
	c->pid = fork();
	cr_assert_geq(c->pid, 0);
	if (c->pid == 0) {
		close(res[0]);
		close(go[1]);
		client_main(s, res[1], go[0]);
	}
	close(res[1]);
	close(go[0]);
	c->res_fd = res[0];
	c->go_fd = go[1];
	p = (struct pollfd){ .fd = c->res_fd, .events = POLLIN };
	cr_assert_eq(poll(&p, 1, IO_TIMEOUT_MS), 1, "client did not report");
	cr_assert_eq(read(c->res_fd, r, sizeof(*r)), (ssize_t)sizeof(*r), "client failed early");
}

static void client_finish(struct client *c)
{
	int status = 0;

	close(c->go_fd);	/* EOF: the child exits */
	close(c->res_fd);
	waitpid(c->pid, &status, 0);
	cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "client exit status %d",
		  status);
}

/* accept one connection on a listener; -1 if none came */
static int accept_one(int lfd, struct sockaddr_storage *peer)
{
	struct pollfd p = { .fd = lfd, .events = POLLIN };
	socklen_t len = sizeof(*peer);

	if (poll(&p, 1, IO_TIMEOUT_MS) != 1)
		return -1;
	return accept4(lfd, (struct sockaddr *)peer, &len, SOCK_CLOEXEC);
}

static const struct client_spec main_v4 = { .family = AF_INET, .dst = "127.0.0.1",
					     .port = DST_PORT };

static struct client_spec in_cgroup(struct client_spec s, const char *cg)
{
	s.cgroup = cg;
	return s;
}

/* A redirected client: accept it, take its flow, check the record. */
static void expect_redirected(const struct client_spec *s, int lfd, uint32_t wl,
			      uint64_t cgid, int family, const char *daddr, struct ly_flow *out)
{
	struct client c;
	struct client_result r;
	struct sockaddr_storage peer;
	struct ly_flow f;
	uint8_t want[16] = { 0 };
	int afd;

	client_start(&c, s, &r);
	cr_expect_eq(r.rc, 0, "redirected connect failed: %s", strerror(r.err));
	afd = accept_one(lfd, &peer);
	cr_expect_geq(afd, 0, "the listener got no connection");
	if (afd >= 0) {
		cr_expect_eq(kernel_take_flow(env.k, (struct sockaddr *)&peer, &f), 0,
			     "no flow record for the accepted peer");
		cr_expect_eq(f.family, family);
		cr_expect_eq(f.dport, htons(s->port), "original port, network order");
		inet_pton(family, daddr, want);
		cr_expect_arr_eq(f.daddr, want, sizeof(want), "original destination");
		cr_expect_eq(f.pid, (uint32_t)c.pid);
		cr_expect_eq(f.tid, (uint32_t)c.pid);
		cr_expect_eq(f.uid, getuid());
		cr_expect_eq(f.cgroup_id, cgid);
		cr_expect_eq(f.workload_id, wl);
		cr_expect_neq(f.cookie, 0);
		cr_expect_str_eq(f.comm, CLIENT_COMM);
		cr_expect_eq(kernel_take_flow(env.k, (struct sockaddr *)&peer, &f), -ENOENT,
			     "a flow record must be taken once");
		if (out)
			*out = f;
		close(afd);
	}
	client_finish(&c);
}

static void expect_connect_error(const struct client_spec *s, int err)
{
	struct client c;
	struct client_result r;

	client_start(&c, s, &r);
	cr_expect_eq(r.rc, -1, "connect should have failed");
	cr_expect_eq(r.err, err, "connect: %s, want %s", strerror(r.err), strerror(err));
	client_finish(&c);
}

static uint64_t stat_of(int slot)
{
	uint64_t st[LY_STAT_MAX];

	cr_assert_eq(kernel_read_stats(env.k, st), 0);
	return st[slot];
}

/* --- tests ------------------------------------------------------------------------ */

Test(kernel_e2e, redirects_enrolled_cgroup_and_records_flow)
{
	struct client_spec s = in_cgroup(main_v4, env.cg);
	uint64_t before = stat_of(LY_STAT_REDIRECTED);

	expect_redirected(&s, env.lfd4, WL_MAIN, env.cg_id, AF_INET, "127.0.0.1", NULL);
	cr_expect_eq(stat_of(LY_STAT_REDIRECTED), before + 1);
	cr_expect_geq(stat_of(LY_STAT_PUBLISHED), 1);
}

Test(kernel_e2e, leaves_other_cgroups_alone)
{
	expect_connect_error(&main_v4, ECONNREFUSED);
}

Test(kernel_e2e, skips_sockets_with_the_daemon_mark)
{
	struct client_spec s = in_cgroup(main_v4, env.cg);

	s.mark = MARK;
	expect_connect_error(&s, ECONNREFUSED);
	cr_expect_geq(stat_of(LY_STAT_SKIP_MARK), 1);
}

Test(kernel_e2e, redirects_ipv6)
{
	struct client_spec s = { .cgroup = env.cg, .family = AF_INET6, .dst = "::1",
				.port = DST_PORT };

	expect_redirected(&s, env.lfd6, WL_MAIN, env.cg_id, AF_INET6, "::1", NULL);
}

Test(kernel_e2e, redirects_v4_mapped_ipv6_as_ipv4)
{
	struct client_spec s = { .cgroup = env.cg, .family = AF_INET6,
				.dst = "::ffff:127.0.0.1", .port = DST_PORT };

	/* the route is 127.0.0.1: matched as IPv4, sent to the IPv4 listener */
	expect_redirected(&s, env.lfd4, WL_MAIN, env.cg_id, AF_INET, "127.0.0.1", NULL);
}

Test(kernel_e2e, leaves_unrouted_destinations_alone)
{
	struct client_spec s = in_cgroup(main_v4, env.cg);

	s.port = DST_PORT + 1;
	expect_connect_error(&s, ECONNREFUSED);
	cr_expect_geq(stat_of(LY_STAT_NO_ROUTE), 1);
}

Test(kernel_e2e, redirects_the_subtree)
{
	char child[600], grandchild[700];
	struct client_spec s;

	snprintf(child, sizeof(child), "%s/child", env.cg);
	snprintf(grandchild, sizeof(grandchild), "%s/grandchild", child);
	cr_assert_eq(mkdir(child, 0755), 0);
	cr_assert_eq(mkdir(grandchild, 0755), 0);
	s = in_cgroup(main_v4, grandchild);
	/* the deepest enrolled ancestor is env.cg; the flow names the leaf */
	expect_redirected(&s, env.lfd4, WL_MAIN, ino_of(grandchild), AF_INET, "127.0.0.1", NULL);
}

Test(kernel_e2e, never_redirects_to_the_listener_itself)
{
	struct client_spec s = in_cgroup(main_v4, env.cg);
	struct client c;
	struct client_result r;
	struct sockaddr_storage peer;
	struct ly_flow f;
	int afd;

	s.port = env.port;
	client_start(&c, &s, &r);
	cr_expect_eq(r.rc, 0);
	afd = accept_one(env.lfd4, &peer);
	cr_expect_geq(afd, 0);
	cr_expect_eq(kernel_take_flow(env.k, (struct sockaddr *)&peer, &f), -ENOENT,
		     "a direct connection to the listener has no flow record");
	if (afd >= 0)
		close(afd);
	client_finish(&c);
	cr_expect_geq(stat_of(LY_STAT_SKIP_LISTENER), 1);
}

Test(kernel_e2e, enrols_a_late_cgroup_on_rescan)
{
	char inner[600], buf[4096];
	struct pollfd p = { .fd = kernel_watch_fd(env.k), .events = POLLIN };
	struct client_spec s;

	cr_expect_eq(kernel_workload_cgid(env.k, 1), 0, "the late cgroup does not exist yet");
	cr_assert_geq(p.fd, 0);
	cr_assert_eq(mkdir(env.late, 0755), 0);
	cr_expect_eq(poll(&p, 1, IO_TIMEOUT_MS), 1, "inotify saw no mkdir of the parent");
	while (read(p.fd, buf, sizeof(buf)) > 0)
		;
	cr_expect_eq(kernel_rescan(env.k), 0, "parent only: nothing to enrol yet");
	snprintf(inner, sizeof(inner), "%s/inner", env.late);
	cr_assert_eq(mkdir(inner, 0755), 0);
	cr_expect_eq(poll(&p, 1, IO_TIMEOUT_MS), 1, "inotify saw no mkdir of the cgroup");
	while (read(p.fd, buf, sizeof(buf)) > 0)
		;
	cr_expect_eq(kernel_rescan(env.k), 1);
	cr_expect_eq(kernel_workload_cgid(env.k, 1), ino_of(inner));
	s = in_cgroup(main_v4, inner);

	expect_redirected(&s, env.lfd4, WL_LATE, ino_of(inner), AF_INET, "127.0.0.1", NULL);
}

Test(kernel_e2e, forgets_a_removed_cgroup_on_rescan)
{
	char d[600];

	snprintf(d, sizeof(d), "%s-late/inner", env.cg);
	cr_assert_eq(mkdir(env.late, 0755), 0);
	cr_assert_eq(mkdir(d, 0755), 0);
	cr_expect_eq(kernel_rescan(env.k), 1);
	cr_assert_eq(rmdir(d), 0);
	cr_expect_eq(kernel_rescan(env.k), 1, "the stale id leaves the workloads map");
	cr_expect_eq(kernel_workload_cgid(env.k, 1), 0);
	cr_expect_eq(kernel_rescan(env.k), 0);
}

Test(kernel_e2e, refuses_a_revoked_workload_with_eperm)
{
	struct client_spec s = in_cgroup(main_v4, env.cg);
	uint64_t before = stat_of(LY_STAT_REFUSED);

	cr_assert_eq(kernel_set_workload_flags(env.k, WL_MAIN, LY_WL_ENFORCE | LY_WL_REVOKED), 0);
	expect_connect_error(&s, EPERM);
	cr_expect_eq(stat_of(LY_STAT_REFUSED), before + 1);
	cr_expect_eq(kernel_set_workload_flags(env.k, 999, LY_WL_REVOKED), -ENOENT);
}

struct seen {
	int connect, refused, bad;
	struct ly_flow last;
};

static void on_event(void *ctx, const struct ly_event_hdr *ev, size_t len)
{
	struct seen *s = ctx;
	const struct ly_event_flow *ef = (const struct ly_event_flow *)ev;

	/* the client joining its cgroup is a move, reported to per-process TLS probes */
	if (ev->type == LY_EV_EXEC || ev->type == LY_EV_FORK || ev->type == LY_EV_MOVE ||
	    ev->type == LY_EV_UNSEEN) {
		if (len != sizeof(struct ly_event_exec) || ev->len != len)
			s->bad++;
		return;
	}
	if (len != sizeof(*ef) || ev->len != sizeof(*ef)) {
		s->bad++;
		return;
	}
	s->last = ef->flow;
	if (ev->type == LY_EV_CONNECT)
		s->connect++;
	else if (ev->type == LY_EV_REFUSED)
		s->refused++;
}

Test(kernel_e2e, reports_connect_and_refusal_events)
{
	struct client_spec s = in_cgroup(main_v4, env.cg);
	struct seen seen = { 0 };
	struct ly_flow f;

	expect_redirected(&s, env.lfd4, WL_MAIN, env.cg_id, AF_INET, "127.0.0.1", &f);
	cr_assert_geq(kernel_events_fd(env.k), 0);
	cr_expect_geq(kernel_events_poll(env.k, on_event, &seen), 1);
	cr_expect_eq(seen.connect, 1);
	cr_expect_eq(seen.last.cookie, f.cookie);
	cr_assert_eq(kernel_set_workload_flags(env.k, WL_MAIN, LY_WL_REVOKED), 0);
	expect_connect_error(&s, EPERM);
	cr_expect_geq(kernel_events_poll(env.k, on_event, &seen), 1);
	cr_expect_eq(seen.refused, 1);
	cr_expect_eq(seen.last.workload_id, WL_MAIN);
	cr_expect_eq(seen.bad, 0);
}

/*
 * The client's socket dies before "lanyardd" takes its record: ly_sockops
 * drops it at TCP_CLOSE.  (A graceful close() that nobody answers keeps the
 * orphan in FIN_WAIT2, and its local port taken, until tcp_fin_timeout; the
 * record goes when the socket does.  RST makes that immediate.)
 */
Test(kernel_e2e, drops_the_record_of_a_client_that_closed)
{
	struct client_spec s = in_cgroup(main_v4, env.cg);
	struct client c;
	struct client_result r;
	struct ly_flow f;
	int rc = 0;

	s.reset = 1;
	client_start(&c, &s, &r);
	cr_assert_eq(r.rc, 0);
	client_finish(&c);
	for (int i = 0; i < 100; i++) {
		rc = kernel_take_flow(env.k, (struct sockaddr *)&r.local, &f);
		if (rc == -ENOENT)
			break;
		usleep(10000);
	}
	cr_expect_eq(rc, -ENOENT, "a closed client's record must not stay matchable");
	cr_expect_eq(stat_of(LY_STAT_PEER_CLOSED), 1);
}

Test(kernel_e2e, publishes_under_the_client_local_address)
{
	struct client_spec s = in_cgroup(main_v4, env.cg);
	struct client c;
	struct client_result r;
	struct ly_flow f;

	client_start(&c, &s, &r);
	cr_assert_eq(r.rc, 0);
	/* getsockname() on the client == getpeername() on lanyardd's side */
	cr_expect_eq(kernel_take_flow(env.k, (struct sockaddr *)&r.local, &f), 0);
	cr_expect_eq(f.pid, (uint32_t)c.pid);
	client_finish(&c);
}

Test(kernel_e2e, skips_the_daemon_cgroup, .init = setup_daemon_variant)
{
	char d[600];
	struct client_spec s;

	snprintf(d, sizeof(d), "%s/lanyardd", env.cg);
	s = in_cgroup(main_v4, d);
	expect_connect_error(&s, ECONNREFUSED);
	cr_expect_geq(stat_of(LY_STAT_SKIP_DAEMON), 1);
}

Test(kernel_e2e, never_enrols_the_daemon_cgroup, .init = setup_daemon_variant)
{
	char rel[128];

	cr_assert_neq(kernel_workload_cgid(env.k, 0), 0);
	snprintf(rel, sizeof(rel), "%s/lanyardd", env.cg_name);
	policy_free(env.pol);
	apply_policy(rel);
	cr_expect_eq(kernel_workload_cgid(env.k, 0), 0, "lanyardd's cgroup was enrolled");
	cr_expect_eq(kernel_rescan(env.k), 0);
	cr_expect_eq(kernel_workload_cgid(env.k, 0), 0);
}

Test(kernel_e2e, replaces_a_pinned_map_of_another_shape)
{
	struct kernel_opts o = { .pin_dir = env.pin_dir, .mark = MARK, .listen_port = env.port };
	struct client_spec s = in_cgroup(main_v4, env.cg);
	struct bpf_map_info info = { 0 };
	__u32 len = sizeof(info);
	char path[200], err[512];
	int fd;

	/* an older lanyardd with fewer stats slots left its map pinned */
	kernel_close(env.k, 0);
	env.k = NULL;
	snprintf(path, sizeof(path), "%s/stats", env.pin_dir);
	cr_assert_eq(unlink(path), 0);
	fd = bpf_map_create(BPF_MAP_TYPE_PERCPU_ARRAY, "stats", 4, 8, 3, NULL);
	cr_assert_geq(fd, 0);
	cr_assert_eq(bpf_obj_pin(fd, path), 0);
	close(fd);

	cr_assert_eq(kernel_self_cgroup_id(&o.daemon_cgid), 0);
	env.k = kernel_open(&o, err, sizeof(err));
	cr_assert_not_null(env.k, "kernel_open with an old map pinned: %s", err);
	fd = bpf_obj_get(path);
	cr_assert_geq(fd, 0);
	cr_assert_eq(bpf_obj_get_info_by_fd(fd, &info, &len), 0);
	close(fd);
	cr_expect_eq(info.max_entries, LY_STAT_MAX);
	/* the other maps were reused: the enrolment survives without a kernel_apply */
	expect_redirected(&s, env.lfd4, WL_MAIN, env.cg_id, AF_INET, "127.0.0.1", NULL);
	cr_expect_eq(stat_of(LY_STAT_REDIRECTED), 1);
}

static uint32_t link_prog_id(const char *path, uint32_t *link_id)
{
	struct bpf_link_info info = { 0 };
	__u32 len = sizeof(info);
	int fd = bpf_obj_get(path);

	cr_assert_geq(fd, 0, "%s not pinned", path);
	cr_assert_eq(bpf_obj_get_info_by_fd(fd, &info, &len), 0);
	close(fd);
	*link_id = info.id;
	return info.prog_id;
}

Test(kernel_e2e, restart_keeps_enforcing_and_updates_links_in_place)
{
	struct kernel_opts o = { .pin_dir = env.pin_dir, .mark = MARK, .listen_port = env.port };
	struct client_spec s = in_cgroup(main_v4, env.cg);
	char path[200], err[512];
	uint32_t link1, link2, prog1, prog2;
	struct client c;
	struct client_result r;
	struct sockaddr_storage peer;
	struct ly_flow f;
	int afd;

	snprintf(path, sizeof(path), "%s/link_connect4", env.pin_dir);
	prog1 = link_prog_id(path, &link1);
	kernel_close(env.k, 0);		/* the daemon stops; pins stay */
	env.k = NULL;

	/* no daemon: the kernel still redirects and records */
	client_start(&c, &s, &r);
	cr_expect_eq(r.rc, 0);
	afd = accept_one(env.lfd4, &peer);
	cr_expect_geq(afd, 0);

	cr_assert_eq(kernel_self_cgroup_id(&o.daemon_cgid), 0);
	env.k = kernel_open(&o, err, sizeof(err));
	cr_assert_not_null(env.k, "kernel_open again: %s", err);
	prog2 = link_prog_id(path, &link2);
	cr_expect_eq(link2, link1, "the pinned link is kept, not replaced");
	cr_expect_neq(prog2, prog1, "the link runs the newly loaded program");
	cr_expect_eq(kernel_take_flow(env.k, (struct sockaddr *)&peer, &f), 0,
		     "the record published while no daemon ran is in the reused map");
	cr_expect_eq(f.workload_id, WL_MAIN);
	if (afd >= 0)
		close(afd);
	client_finish(&c);
}

Test(kernel_e2e, detach_stops_redirecting)
{
	struct client_spec s = in_cgroup(main_v4, env.cg);

	kernel_close(env.k, 1);
	env.k = NULL;
	cr_expect_eq(access(env.pin_dir, F_OK), -1, "pin folder removed");
	expect_connect_error(&s, ECONNREFUSED);
}

Test(kernel_e2e, detach_pinned_removes_links_and_maps)
{
	kernel_close(env.k, 0);
	env.k = NULL;
	cr_expect_eq(kernel_detach_pinned(env.pin_dir), 0);
	cr_expect_eq(access(env.pin_dir, F_OK), -1);
	cr_expect_eq(kernel_detach_pinned(env.pin_dir), 0, "nothing pinned is not an error");
	cr_expect_eq(kernel_detach_pinned("/tmp"), -EINVAL, "refuses a folder off bpffs");
}
