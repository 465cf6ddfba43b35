// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Copyright (c) 2026 The lanyard authors */
/*
 * `tls_probes: process` (and `auto`, the default, on this kernel): the TLS uprobes are put on each process of an enrolled or observed
 * cgroup instead of on the host's libraries for everyone.  What the kernel shows: the
 * breakpoint byte (int3, 0xcc) at SSL_write in a process's own memory is there in the
 * processes lanyardd watches and not in the others; a process forked without exec, a process
 * moved into a watched cgroup, and a process that was running before lanyardd started, are
 * probed too; the probes of a process go when it exits.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "lib/lanyard.h"
#include "lib/procmem.h"
#include "lib/tlsfix.h"

TestSuite(perproc, H_FIXTURES, .timeout = 90);

#define INT3 0xcc

/* A TLS upstream; workload "obs" (mode observe) on cgroup obs; cgroup "other" not enrolled. */
struct world {
	struct ly_daemon d;
	struct tlsfix_ca *ca;
	const char *obs, *other;
	int up_port;
	const char *up_log;
};

static void world_init(struct world *w)
{
	char *cert = NULL, *key = NULL;

	memset(w, 0, sizeof(*w));
	h_require_root_bpf();
	w->ca = ly_ca_and_server("perproc test root", &cert, &key);
	w->up_port = ly_tls_upstream("up", cert, key, NULL);
	w->up_log = h_path("up.jsonl");
	w->obs = h_cgroup_create("obs");
	w->other = h_cgroup_create("other");
	cr_assert(w->obs && w->other);
	ly_init(&w->d, "lanyardd");
}

/* lanyardd with @scope ("process" or "host") probes; NULL: the default scope. */
static void daemon_start(struct world *w, const char *scope)
{
	w->d.policy_extra = scope ? h_strf("tls_probes: %s\n", scope) : NULL;
	ly_start(&w->d, h_strf("  - name: obs\n    match: { cgroup: %s }\n    mode: observe\n",
			       w->obs));
}

/* tests/clients/probed.py in @cg as @name, with @more arguments (NULL-terminated). */
static pid_t probed_spawn(const struct world *w, const char *name, const char *cg,
			  const char *path, const char *a1, const char *a2, const char *a3)
{
	pid_t pid = ly_client_spawn(name, cg, "probed.py", tlsfix_ca_cert_path(w->ca),
				    h_strf("%d", w->up_port), path, a1, a2, a3, NULL);

	cr_assert_gt(pid, 0);
	cr_assert_eq(h_wait_output(pid, "ready", 10000), 0, "%s did not start", name);
	return pid;
}

/* The number after @key in what process @name printed (hex with 0x); 0 if none. */
static unsigned long printed(const char *name, const char *key)
{
	char *out = h_read_file(h_out_path(name), NULL);
	const char *p = out ? strstr(out, key) : NULL;
	unsigned long v = p ? strtoul(p + strlen(key), NULL, 0) : 0;

	free(out);
	return v;
}

/* The byte at @addr in @pid, polled for up to @timeout_ms until it is @want. */
static int byte_until(pid_t pid, unsigned long addr, int want, int timeout_ms)
{
	int b = -1;

	for (int waited = 0; waited <= timeout_ms; waited += 50) {
		b = h_proc_mem_byte(pid, addr);
		if (b == want)
			break;
		usleep(50 * 1000);
	}
	return b;
}

/* The flow.tls record for @path, NULL after @timeout_ms.  New reference. */
static json_t *flow_tls(const struct world *w, const char *path, int timeout_ms)
{
	return h_jsonl_wait(w->d.audit, "path", path, timeout_ms);
}

static long long num(const json_t *o, const char *key)
{
	return json_integer_value(json_object_get(o, key));
}

/* Let process @pid send its request (the go file) and wait for lanyardd's flow.tls of @path. */
static void go_and_seen(const struct world *w, pid_t pid, const char *path, const char *what)
{
	json_t *ev;

	cr_assert_eq(h_write_file(h_path("go"), "", 0644), 0);
	cr_assert_eq(h_wait_output(pid, "status 200", 10000), 0, "%s: the request failed", what);
	ev = flow_tls(w, path, 5000);
	cr_assert(ev, "%s: the request was not seen", what);
	cr_expect_eq(num(ev, "pid"), pid, "%s", what);
	json_decref(ev);
}

static void only_the_observed_process_is_probed(const char *scope)
{
	unsigned long a_obs, a_other;
	pid_t obs, other;
	struct world w;
	json_t *ev;
	int b;

	world_init(&w);
	daemon_start(&w, scope);
	obs = probed_spawn(&w, "p-obs", w.obs, "/obs", "--go", h_path("go"), "--hold");
	other = probed_spawn(&w, "p-other", w.other, "/other", "--go", h_path("go"), "--hold");
	a_obs = printed("p-obs", "ssl_write ");
	a_other = printed("p-other", "ssl_write ");
	cr_assert(a_obs && a_other, "no SSL_write address printed");

	b = byte_until(obs, a_obs, INT3, 5000);
	cr_expect_eq(b, INT3, "no breakpoint at SSL_write in the observed process (byte %#x)", b);
	/* Python writes with SSL_write_ex, probed after SSL_write: wait for it too */
	cr_assert_eq(byte_until(obs, printed("p-obs", "ssl_write_ex "), INT3, 5000), INT3);
	b = h_proc_mem_byte(other, a_other);
	cr_expect_geq(b, 0, "cannot read the other process's memory");
	cr_expect_neq(b, INT3, "an unenrolled process carries lanyard's breakpoint");

	cr_assert_eq(h_write_file(h_path("go"), "", 0644), 0);
	cr_assert_eq(h_wait_output(obs, "status 200", 10000), 0);
	cr_assert_eq(h_wait_output(other, "status 200", 10000), 0);
	ev = flow_tls(&w, "/obs", 5000);
	cr_assert(ev, "the observed request was not seen");
	cr_expect_eq(num(ev, "pid"), obs);
	cr_expect_str_eq(json_string_value(json_object_get(ev, "sni")), "localhost");
	json_decref(ev);
	/* the other one's request really went out, and was not seen */
	cr_assert(h_jsonl_wait(w.up_log, "target", "/other", 5000));
	cr_expect_eq(h_jsonl_count(w.d.audit, "path", "/other"), 0);
	cr_expect_eq(h_proc_mem_byte(other, a_other), b);
	tlsfix_ca_free(w.ca);
}

Test(perproc, only_the_observed_process_carries_the_breakpoint)
{
	only_the_observed_process_is_probed("process");
}

/* Kernels without uprobe.multi links: one perf-event uprobe per function, same result. */
Test(perproc, without_uprobe_multi_links_only_the_observed_process_carries_it)
{
	char *log;

	cr_assert_eq(setenv("LANYARD_UPROBE_MULTI", "0", 1), 0);
	only_the_observed_process_is_probed("process");
	log = h_read_file(h_err_path("lanyardd"), NULL);
	cr_expect(log && strstr(log, "one uprobe link per function"),
		  "lanyardd did not fall back to one link per function");
	free(log);
}

/* tls_probes: auto (the default) is per process on a kernel with uprobe.multi links. */
Test(perproc, by_default_only_the_observed_process_carries_the_breakpoint)
{
	only_the_observed_process_is_probed(NULL);
}

/* The same two processes with tls_probes: host: both carry it (the control). */
Test(perproc, with_host_probes_every_process_carries_the_breakpoint)
{
	unsigned long a_other;
	struct world w;
	pid_t other;
	int b;

	world_init(&w);
	daemon_start(&w, "host");
	other = probed_spawn(&w, "p-other", w.other, "/other", "--go", h_path("go"), "--hold");
	a_other = printed("p-other", "ssl_write ");
	cr_assert(a_other);
	b = byte_until(other, a_other, INT3, 5000);
	cr_expect_eq(b, INT3, "host probes, yet no breakpoint in an unenrolled process (%#x)", b);
	tlsfix_ca_free(w.ca);
}

/* Does the attach helper hold a pidfd of @pid (kept once a library is probed for it)? */
static bool helper_holds_pid(pid_t helper, pid_t pid)
{
	DIR *d = opendir(h_strf("/proc/%d/fdinfo", helper));
	const char *want = h_strf("\nPid:\t%d\n", (int)pid);
	struct dirent *de;
	bool found = false;

	cr_assert(d, "the attach helper is gone");
	while (!found && (de = readdir(d))) {
		char *info = de->d_name[0] == '.' ? NULL :
			     h_read_file(h_strf("/proc/%d/fdinfo/%s", helper, de->d_name), NULL);

		found = info && strstr(info, want);
		free(info);
	}
	closedir(d);
	return found;
}

Test(perproc, a_child_forked_without_exec_is_probed)
{
	struct world w;
	pid_t parent, helper;
	bool probed = false;
	json_t *ev;
	long child;

	world_init(&w);
	daemon_start(&w, "process");
	helper = ly_tls_helper_pid(&w.d);
	cr_assert_gt(helper, 0, "no attach helper");
	parent = probed_spawn(&w, "p-fork", w.obs, "/forked", "--fork", "--go", h_path("go"));
	cr_assert_eq(h_wait_output(parent, "child ", 10000), 0, "no child");
	child = (long)printed("p-fork", "child ");
	cr_assert_gt(child, 0);
	cr_assert_neq(child, parent);
	/* its probes are its own, not its parent's: in place once the helper watches it */
	for (int waited = 0; !probed && waited < 10000; waited += 50) {
		probed = helper_holds_pid(helper, (pid_t)child);
		if (!probed)
			usleep(50 * 1000);
	}
	cr_assert(probed, "lanyardd did not probe the forked child");
	cr_assert_eq(h_write_file(h_path("go"), "", 0644), 0);
	cr_assert_eq(h_wait_output(parent, "status 200", 10000), 0, "the child's request failed");
	ev = flow_tls(&w, "/forked", 5000);
	cr_assert(ev, "the forked child's request was not seen");
	cr_expect_eq(num(ev, "pid"), child);
	json_decref(ev);
	cr_expect_gt(ly_kernel_stat(&w.d, "fork"), 0, "the kernel counted no fork");
	tlsfix_ca_free(w.ca);
}

/* Move @pid into @cgroup the way a service manager does: through its cgroup.procs. */
static void cgroup_move(pid_t pid, const char *cgroup)
{
	FILE *f = fopen(h_strf("%s/cgroup.procs", h_cgroup_fs(cgroup)), "we");

	cr_assert(f, "cannot open %s's cgroup.procs", cgroup);
	fprintf(f, "%d\n", (int)pid);
	cr_assert_eq(fclose(f), 0, "moving %d into %s: %s", (int)pid, cgroup, strerror(errno));
}

/*
 * The kernel reports the move (cgroup_attach_task), so the process is probed at once, not
 * at lanyardd's next walk of the cgroups; into a cgroup below the workload's, as the
 * deepest workload of the destination decides.
 */
Test(perproc, a_process_moved_into_an_observed_cgroup_is_probed)
{
	unsigned long addr;
	const char *sub;
	struct world w;
	json_t *ev;
	pid_t pid;

	world_init(&w);
	sub = h_cgroup_create("obs/moved");
	cr_assert(sub);
	/* no walk of the cgroups after the first: only the kernel's report can probe it */
	cr_assert_eq(setenv("LANYARD_TLS_WALK_MS", "600000", 1), 0);
	daemon_start(&w, "process");
	pid = probed_spawn(&w, "p-move", w.other, "/moved", "--go", h_path("go"), "--hold");
	addr = printed("p-move", "ssl_write_ex ");
	cr_assert(addr);
	cr_assert_eq(ly_kernel_stat(&w.d, "move"), 0, "a move counted before any");
	cr_assert_neq(h_proc_mem_byte(pid, addr), INT3, "probed before it was moved");

	cgroup_move(pid, sub);
	cr_assert_eq(byte_until(pid, addr, INT3, 5000), INT3, "not probed after the move");
	cr_expect_eq(ly_kernel_stat(&w.d, "move"), 1, "the kernel did not report the one move");
	cr_assert_eq(h_write_file(h_path("go"), "", 0644), 0);
	cr_assert_eq(h_wait_output(pid, "status 200", 10000), 0);
	ev = flow_tls(&w, "/moved", 5000);
	cr_assert(ev, "the moved process's request was not seen");
	cr_expect_eq(num(ev, "pid"), pid);
	cr_expect_eq(num(ev, "cgroup"), (long long)h_cgroup_id(sub));
	json_decref(ev);

	/* moved out: its probes stay, the kernel no longer reports its writes */
	cgroup_move(pid, w.other);
	cr_expect_eq(ly_kernel_stat(&w.d, "move"), 1, "a move out of the workload was reported");
	tlsfix_ca_free(w.ca);
}

Test(perproc, a_process_running_before_lanyardd_started_is_probed)
{
	unsigned long addr;
	struct world w;
	pid_t pid;

	world_init(&w);
	pid = probed_spawn(&w, "p-early", w.obs, "/early", "--go", h_path("go"), "--hold");
	addr = printed("p-early", "ssl_write ");
	cr_assert(addr);
	cr_assert_neq(h_proc_mem_byte(pid, addr), INT3, "a breakpoint before lanyardd runs?");
	daemon_start(&w, "process");
	cr_expect_eq(byte_until(pid, addr, INT3, 5000), INT3);
	cr_assert_eq(byte_until(pid, printed("p-early", "ssl_write_ex "), INT3, 5000), INT3);
	go_and_seen(&w, pid, "/early", "a process older than lanyardd");
	tlsfix_ca_free(w.ca);
}

/* The attach helper's descriptors that are one of @kinds (anon inode names, NULL-ended). */
static int helper_fds(pid_t helper, const char *const kinds[])
{
	DIR *d = opendir(h_strf("/proc/%d/fd", helper));
	struct dirent *de;
	int n = 0;

	cr_assert(d, "the attach helper is gone");
	while ((de = readdir(d))) {
		char link[256] = "";
		ssize_t len = readlink(h_strf("/proc/%d/fd/%s", helper, de->d_name), link,
				       sizeof(link) - 1);

		link[len > 0 ? len : 0] = '\0';
		for (int k = 0; kinds[k]; k++)
			n += !strcmp(link, kinds[k]);
	}
	closedir(d);
	return n;
}

/* Uprobe links (a bpf_link, or a perf event without uprobe.multi) and pidfds it holds. */
static int helper_probe_fds(pid_t helper)
{
	static const char *const kinds[] = { "anon_inode:bpf_link", "anon_inode:[perf_event]",
					     "anon_inode:[pidfd]", NULL };

	return helper_fds(helper, kinds);
}

Test(perproc, the_probes_of_a_process_go_when_it_exits)
{
	int before, during, after = -1;
	struct world w;
	pid_t helper, pid;

	world_init(&w);
	daemon_start(&w, "process");
	helper = ly_tls_helper_pid(&w.d);
	cr_assert_gt(helper, 0, "no attach helper");
	before = helper_probe_fds(helper);
	cr_expect_eq(before, 0, "probes held with no process in the cgroups: %d", before);
	pid = probed_spawn(&w, "p-exit", w.obs, "/exit", "--go", h_path("go"), "--hold");
	cr_expect_eq(byte_until(pid, printed("p-exit", "ssl_write "), INT3, 5000), INT3);
	during = helper_probe_fds(helper);
	/* its pidfd and at least one link */
	cr_expect_geq(during, before + 2, "no probe held for the process (%d fds)", during);
	h_stop(pid);
	for (int waited = 0; waited < 5000; waited += 100) {
		after = helper_probe_fds(helper);
		if (after == before)
			break;
		usleep(100 * 1000);
	}
	cr_expect_eq(after, before, "the probes of an exited process are still held (%d)", after);
	tlsfix_ca_free(w.ca);
}

/*
 * An attach the helper could not make (here: no descriptor left for the link) is asked
 * again at the next walk, and the process is probed once the helper can.  The process
 * stays in its cgroup throughout: nothing but the retry brings its probes.
 */
Test(perproc, an_attach_that_failed_is_retried)
{
	struct rlimit old, starved;
	unsigned long addr;
	struct world w;
	pid_t helper, pid;
	char *log;

	world_init(&w);
	daemon_start(&w, "process");
	helper = ly_tls_helper_pid(&w.d);
	cr_assert_gt(helper, 0, "no attach helper");
	cr_assert_eq(prlimit(helper, RLIMIT_NOFILE, NULL, &old), 0);
	/* room for the two descriptors each request brings, none for a link */
	starved = (struct rlimit){ .rlim_cur = h_nofile_leaving(helper, 2),
				   .rlim_max = old.rlim_max };
	cr_assert_eq(prlimit(helper, RLIMIT_NOFILE, &starved, NULL), 0);
	pid = probed_spawn(&w, "p-retry", w.obs, "/retry", "--go", h_path("go"), "--hold");
	addr = printed("p-retry", "ssl_write_ex ");
	cr_assert(addr);
	/* two walks at least: each asks, each fails */
	usleep(4500 * 1000);
	cr_expect_neq(h_proc_mem_byte(pid, addr), INT3, "probed with no descriptor to spare?");
	log = h_read_file(h_err_path("lanyardd"), NULL);
	cr_expect(log && strstr(log, "Too many open files"), "no warning of the failed attach");
	free(log);

	cr_assert_eq(prlimit(helper, RLIMIT_NOFILE, &old, NULL), 0);
	cr_assert_eq(byte_until(pid, addr, INT3, 5000), INT3, "not probed after the retry");
	go_and_seen(&w, pid, "/retry", "after the retry");
	cr_expect_eq(ly_tls_helper_pid(&w.d), helper, "the attach helper was replaced");
	tlsfix_ca_free(w.ca);
}

/* The pidfds the attach helper holds: one per process and library it probes. */
static int helper_pidfds(pid_t helper)
{
	static const char *const kinds[] = { "anon_inode:[pidfd]", NULL };

	return helper_fds(helper, kinds);
}

/*
 * More processes than the first size of lanyardd's pid table (1024): each is asked of the
 * helper until it is probed, and then never again while it lives, walk after walk (a
 * direct-mapped cache asked again for every pid that shared a slot, every 2 s).
 */
Test(perproc, a_probed_process_is_not_asked_for_again, .timeout = 150)
{
	const int nproc = 1050 + 1;	/* the children and their parent */
	int held = 0, nlibs = 0;
	struct world w;
	pid_t pid, helper;
	char *log, *at;
	long long n;

	world_init(&w);
	daemon_start(&w, "process");
	helper = ly_tls_helper_pid(&w.d);
	cr_assert_gt(helper, 0, "no attach helper");
	log = h_read_file(h_err_path("lanyardd"), NULL);
	for (at = log; at && (at = strstr(at, "is probed in each process")); at++)
		nlibs++;
	free(log);
	cr_assert_gt(nlibs, 0, "no host library probed per process");
	pid = ly_client_spawn("many", w.obs, "idle_children.py", "1050", NULL);
	cr_assert_gt(pid, 0);
	cr_assert_eq(h_wait_output(pid, "ready", 60000), 0, "the children did not start");
	/* every one probed (the helper takes 64 requests at a time) */
	for (int waited = 0; waited < 110000 && held < nproc * nlibs; waited += 500) {
		usleep(500 * 1000);
		held = helper_pidfds(helper);
	}
	cr_assert_geq(held, nproc * nlibs, "only %d of %d (process, library) pairs probed", held,
		      nproc * nlibs);
	usleep(500 * 1000);	/* the last answers counted */
	n = ly_metric(&w.d, "tls_attach_requests");
	cr_assert_geq(n, nproc);
	usleep(4500 * 1000);	/* two more walks */
	cr_expect_eq(ly_metric(&w.d, "tls_attach_requests"), n, "probed processes asked again");
	tlsfix_ca_free(w.ca);
}
