// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Copyright (c) 2026 The lanyard authors */
/*
 * Helpers for the end-to-end tests (Criterion, root, real kernel): a temp dir, spawned
 * processes, test cgroups, waits, file and JSON-lines checks, all undone at teardown.
 */
#ifndef LANYARD_TESTS_HARNESS_H
#define LANYARD_TESTS_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

#include <jansson.h>

/*
 * LIFECYCLE
 *
 *	TestSuite(e2e_proxy, H_FIXTURES, .timeout = 60);
 *
 * h_setup() (the .init fixture) makes the test's temp dir and forks a small "janitor"
 * process; h_teardown() (the .fini fixture) kills every process the test spawned
 * (SIGTERM, SIGKILL after 2 s), removes the test's cgroups (deepest first, after killing
 * what is in them) and the temp dir.  Criterion runs each test in its own forked child and
 * runs .fini after a failed assertion, but not after a skip, a crash or a timeout: an
 * atexit() handler covers exit() and skips, and the janitor covers the rest -- it holds
 * one end of a socketpair and does the same cleanup when the test process dies for any
 * reason (SIGKILL included), because no signal handler can run then.
 * Every h_* function sets up lazily, so a test without the fixtures still cleans up.
 * h_teardown() is idempotent; a later h_* call starts a fresh setup.
 *
 * Environment: LANYARD_REQUIRE_BPF=1 turns "cannot test here" skips into failures;
 * LANYARD_KEEP_TMP=1 keeps the temp dir (its path is printed); LANYARD_TEST_DUMP=1 prints
 * the tail of each spawned process's output at teardown (tests/run.sh sets it, and shows
 * a binary's output only when the binary failed); LANYARD_BIN_DIR overrides build/bin.
 *
 * OWNERSHIP: functions returning a path or a name (h_path, h_bin, h_cgroup_*, ...) return
 * strings owned by the harness, valid until teardown; never free them.  Functions that
 * return contents (h_read_file, h_run output) return malloc'd memory the caller frees;
 * json_t results are new references the caller json_decref()s.
 */
void h_setup(void);
void h_teardown(void);
#define H_FIXTURES .init = h_setup, .fini = h_teardown

/* Skip the test (or fail it, with LANYARD_REQUIRE_BPF=1) unless root with working bpf. */
void h_require_root_bpf(void);

/* --- files ----------------------------------------------------------------------------- */

/* This test's private temp dir (/tmp/lanyard-test.XXXXXX, mode 0755). */
const char *h_tmpdir(void);
/* h_tmpdir() + "/" + formatted name. */
char *h_path(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A formatted string owned by the harness (URLs, arguments). */
char *h_strf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A copy in Criterion's shared memory: what a parameterized test's parameters point to
 * (the test runs in another process, where this one's addresses mean nothing). */
char *h_cr_strdup(const char *s);
/* A file of the repository (tests/e2e/data/...), located from the test binary. */
char *h_repo_path(const char *rel);
/* A lanyard binary: build/bin/<name>, or $LANYARD_BIN_DIR/<name>. */
char *h_bin(const char *name);

/* Whole file, NUL-terminated (binary-safe with @len, may be NULL); NULL + errno on error. */
char *h_read_file(const char *path, size_t *len);
/* Create or truncate @path with @mode (policy and key files want 0600); 0 or -errno. */
int h_write_file(const char *path, const char *data, mode_t mode);
int h_write_filef(const char *path, mode_t mode, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
bool h_file_contains(const char *path, const char *needle);
/* Size in bytes, 0 when the file does not exist ("nothing reached the upstream"), or -errno. */
long long h_file_size(const char *path);
/* Poll until @path contains @needle: 0, or -ETIMEDOUT. */
int h_wait_file_contains(const char *path, const char *needle, int timeout_ms);
/*
 * Count the files that contain @needle (byte string) under the NULL-terminated list of
 * paths (files or folders, walked without following symlinks); each hit's file name is
 * printed, never the needle.  Use it to prove a credential appears nowhere:
 *	cr_expect_eq(h_grep_tree_for(token, h_tmpdir(), NULL), 0);
 * Returns the count, or -errno when a listed path cannot be read.
 */
int h_grep_tree_for(const char *needle, ...) __attribute__((sentinel));

/* --- network ---------------------------------------------------------------------------- */

/* A TCP port free on 127.0.0.1 (and ::1 when present), never the same twice in a test. */
int h_free_port(void);
/* Poll until a TCP connect to @addr ("127.0.0.1", "::1" or "[::1]") @port succeeds. */
int h_wait_port(const char *addr, int port, int timeout_ms);
bool h_have_ipv6(void);

/* --- processes -------------------------------------------------------------------------- */

/*
 * Start @argv (argv[0] looked up in PATH) with stdin /dev/null and stdout, stderr appended
 * to <tmpdir>/<name>.out and <name>.err, in its own process group, with default signal
 * dispositions and an empty signal mask (Criterion's test child blocks SIGCHLD and ignores
 * SIGINT; exec would pass that on).  With @cgroup (see h_cgroup_create) the child joins it
 * before exec.  Killed at teardown.  Returns the pid, or -errno (exec failure included).
 */
pid_t h_spawn(const char *name, char *const argv[], const char *cgroup);
/* Same with a NULL-terminated argument list. */
pid_t h_spawnl(const char *name, const char *cgroup, const char *arg0, ...)
	__attribute__((sentinel));
char *h_out_path(const char *name);
char *h_err_path(const char *name);
/*
 * Wait until a spawned process's stdout or stderr contains @needle: 0, -ETIMEDOUT, or
 * -ESRCH when the process exited first (its stderr tail is printed).
 */
int h_wait_output(pid_t pid, const char *needle, int timeout_ms);
/* Exit code (0..255), 128 + signal number, or -ETIMEDOUT; reaps the process. */
int h_wait_exit(pid_t pid, int timeout_ms);
/* SIGTERM, SIGKILL after 2 s; returns as h_wait_exit (the group is swept with SIGKILL). */
int h_stop(pid_t pid);
bool h_alive(pid_t pid);
/* The lowest RLIMIT_NOFILE that leaves @pid exactly @n free descriptor numbers; asserts. */
rlim_t h_nofile_leaving(pid_t pid, int n);
/* CPU time (utime + stime) @pid used so far, in clock ticks; asserts. */
long h_cpu_ticks(pid_t pid);
/* Print the last @lines lines of a spawned process's stdout and stderr to stderr. */
void h_dump(const char *name, int lines);

/*
 * Run @argv to completion (in @cgroup when not NULL), stdout and stderr together into
 * *@out (malloc'd, NUL-terminated; @out may be NULL) and into <tmpdir>/run-NNN-<cmd>.out.
 * Returns the exit code (0..255), 128 + signal, -ETIMEDOUT (the command was killed at
 * @timeout_ms; *@out holds what it printed), or -errno when it could not be started.
 */
int h_run(char *const argv[], const char *cgroup, int timeout_ms, char **out);
int h_runl(const char *cgroup, int timeout_ms, char **out, const char *arg0, ...)
	__attribute__((sentinel));

/* ly-upstream on 127.0.0.1:@port (and [::1]:@port with IPv6), --log <name>.jsonl,
 * --raw <name>.raw, --body @body (NULL: "ok\n"); waits until it listens.  pid or -errno.
 */
pid_t h_upstream(const char *name, int port, const char *body);
/* The same (body "ok\n") with more ly-upstream arguments (NULL-terminated, may be NULL). */
pid_t h_upstream_args(const char *name, int port, const char *const extra[]);
/*
 * ly-upstream in TLS mode on 127.0.0.1:@port (and [::1]:@port): --tls-cert @cert --tls-key
 * @key, and --client-ca @client_ca (may be NULL) to require a client certificate.  Files
 * come from tests/lib/tlsfix.h.  Log lines gain "tls"; failed handshakes go to <name>.err
 * ("tls handshake failed").  Waits until it listens; pid or -errno.
 */
pid_t h_tls_upstream(const char *name, int port, const char *cert, const char *key,
		     const char *client_ca);

/*
 * Run @argv (a NULL-terminated list, copied) at teardown, after the spawned processes are
 * stopped and before the cgroups are removed -- and from the janitor when the test dies, so
 * a command that undoes system state (lanyardd --detach --pin-dir DIR) runs whatever
 * happens.  Output goes to /dev/null; each command gets 5 s.  Up to 8 per test; later ones
 * run first.  0, or -errno.
 */
int h_at_teardown(char *const argv[]);

/* --- cgroups ---------------------------------------------------------------------------- */

/* The cgroup2 mount point (/sys/fs/cgroup/unified on hybrid hosts), or NULL. */
const char *h_cgroup_mount(void);
/* This test's cgroup root, relative to the mount: "/lanyard-test-<pid>". */
const char *h_cgroup_root(void);
/*
 * mkdir -p h_cgroup_root()/@rel; returns its path relative to the cgroup2 mount (what a
 * policy's `match: { cgroup: ... }` and /proc/PID/cgroup show), or NULL.  Removed at
 * teardown.  Functions taking a cgroup accept this path, or @rel alone.
 */
char *h_cgroup_create(const char *rel);
/* The cgroup's folder (mount + path). */
char *h_cgroup_fs(const char *cgroup);
/* The cgroup id as bpf sees it: the inode number of its folder; 0 on error. */
uint64_t h_cgroup_id(const char *cgroup);
/* The cgroup2 path of @pid (the "0::" line of /proc/PID/cgroup), or NULL. */
char *h_pid_cgroup(pid_t pid);

/* --- JSON lines (audit log, ly-upstream --log) ------------------------------------------ */

/*
 * Objects of a JSON-lines file whose @key equals @value.  @key is a member name or a
 * dotted path ("flow.id"); NULL matches every object.  @value is compared with strings
 * as is and with numbers, true/false/null as their JSON text; NULL matches any value of
 * an existing @key.  A last line without its newline is still being written: ignored.
 */
json_t *h_jsonl_find(const char *path, const char *key, const char *value);
json_t *h_jsonl_last(const char *path, const char *key, const char *value);
/* Number of matching objects; 0 when the file does not exist; -errno on other errors. */
int h_jsonl_count(const char *path, const char *key, const char *value);
/* Poll until a matching object appears; NULL after @timeout_ms. */
json_t *h_jsonl_wait(const char *path, const char *key, const char *value, int timeout_ms);
/* ly-upstream's "headers": [[name, value], ...]: first value of @name (any case), or NULL. */
const char *h_json_header(const json_t *req, const char *name);
int h_json_header_count(const json_t *req, const char *name);

#endif /* LANYARD_TESTS_HARNESS_H */
