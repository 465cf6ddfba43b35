// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Copyright (c) 2026 The lanyard authors */
/*
 * Fixtures of the lanyardd end-to-end tests, on top of the harness: a policy, a running
 * lanyardd, the CLI, curl and the python3 clients in a cgroup, and JWT checks.
 */
#ifndef LANYARD_TESTS_LANYARD_H
#define LANYARD_TESTS_LANYARD_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <jansson.h>

#include "lib/harness.h"

#define LY_TRUST_DOMAIN "test.lanyard"
#define LY_AUD "https://api.test"
#define LY_SUB(workload) "spiffe://" LY_TRUST_DOMAIN "/" workload
#define LY_PYTHON "/usr/bin/python3" /* the one with python3-jwt */

/* curl as the tests run it: quiet but with errors, no proxy, bounded */
#define LY_CURL "curl", "-sS", "--noproxy", "*", "--max-time", "10"

/*
 * One lanyardd.  ly_init() picks free ports and paths in the test's temp dir; every string
 * is owned by the harness.  Its output is <tmp>/<name>.out and <name>.err.
 */
struct ly_daemon {
	pid_t pid;	/* 0 until spawned */
	int port;	/* listener: 127.0.0.1:port and [::1]:port */
	int admin_port; /* 127.0.0.1 */
	char *name, *policy, *audit, *control, *state_dir, *pin_dir;
	char *issuer;	/* "http://127.0.0.1:<admin_port>" */
	char *jwks_url; /* issuer + "/.well-known/jwks.json" */
	const char *policy_extra;	/* top-level policy lines ("key: value\n"), or NULL */
	bool detach_registered;
};

/* Free ports and paths for a daemon called @name ("lanyardd"); asserts. */
void ly_init(struct ly_daemon *d, const char *name);

/*
 * Policy YAML pieces, harness-owned.  A route (6-space indent, as a workload's routes
 * list item); @ttl "5m"; @header NULL for the default ("Authorization: Bearer {token}").
 */
char *ly_yaml_route(const char *to, const char *audience, const char *ttl, const char *header);
/* A workload list item with its routes (ly_yaml_route() texts, concatenated). */
char *ly_yaml_workload(const char *name, const char *cgroup, const char *routes);

/* The whole policy: the daemon's fixed part, then "workloads:" and @workloads. */
char *ly_policy_text(const struct ly_daemon *d, const char *workloads);
/* (Re)write d->policy (0600); asserts. */
void ly_write_policy(const struct ly_daemon *d, const char *workloads);

/*
 * Spawn lanyardd on d->policy (--ephemeral --verbose) and register
 * `lanyardd --detach --pin-dir` with h_at_teardown().  Returns the pid or -errno.
 */
pid_t ly_spawn(struct ly_daemon *d);
/*
 * Wait until lanyardd answers GET /healthz on its admin port and its control socket
 * exists: 0, -ESRCH when it exited first (its output is printed), or -ETIMEDOUT.
 */
int ly_wait_ready(struct ly_daemon *d, int timeout_ms);
/* ly_init() when needed, write the policy, spawn, wait until ready; asserts. */
void ly_start(struct ly_daemon *d, const char *workloads);

/*
 * GET @path from the admin endpoint (a direct connection from the test process).  Returns
 * the HTTP status (or -errno); *@body (may be NULL) gets the body, malloc'd.
 */
int ly_admin_get(const struct ly_daemon *d, const char *path, char **body);

/* The pid of lanyardd's child lanyardd-tls (the uprobe attach helper), 0 if none. */
pid_t ly_tls_helper_pid(const struct ly_daemon *d);

/* `lanyard --socket <control> ARGS...`: exit code as h_run; *@out as h_run. */
int ly_cli(const struct ly_daemon *d, char **out, const char *arg0, ...)
	__attribute__((sentinel));
/* `lanyard --socket <control> --json CMD`, parsed; NULL when it failed (message printed). */
json_t *ly_cli_json(const struct ly_daemon *d, const char *cmd);
/* A counter of `lanyard --json status` (metrics.@name); -1 when unavailable. */
long long ly_metric(const struct ly_daemon *d, const char *name);
/* A counter of the kernel side (`lanyard --json status`: kernel.@name); -1 when unavailable. */
long long ly_kernel_stat(const struct ly_daemon *d, const char *name);
/* Poll `lanyard --json workloads` until @workload is enrolled: true, or false at timeout. */
bool ly_wait_enrolled(const struct ly_daemon *d, const char *workload, int timeout_ms);

/* curl (LY_CURL + ARGS) in @cgroup (NULL: the test's own) as h_run, 15 s at most. */
int ly_curl(const char *cgroup, char **out, const char *arg0, ...) __attribute__((sentinel));
/* GET @url with curl from @cgroup: "<body> <status>" (malloc'd; the status is last). */
char *ly_get_status(const char *cgroup, const char *url);
/* The status at the end of what ly_get_status() returned; -1 if none. */
int ly_status_tail(const char *out);
/* ly_get_status() every 100 ms until the status is @want or @timeout_ms passed: the last. */
char *ly_get_until(const char *cgroup, const char *url, int want, int timeout_ms);

/* tests/clients/@script of the repository. */
char *ly_client_path(const char *script);
/* Spawn LY_PYTHON tests/clients/@script ARGS... in @cgroup as h_spawn (name @name). */
pid_t ly_client_spawn(const char *name, const char *cgroup, const char *script, ...)
	__attribute__((sentinel));
/* Run it to completion as h_run. */
int ly_client_run(const char *cgroup, int timeout_ms, char **out, const char *script, ...)
	__attribute__((sentinel));

/*
 * tests/clients/raw.py: from @cgroup, connect to @host (127.0.0.1 or ::1) @port, send
 * @len bytes of @data, keep the connection open, read what comes back until EOF or
 * @timeout_s.  Returns the exit code of raw.py (0: connected and read to the end, 3: the
 * connect failed); *@resp gets the bytes received (malloc'd, NUL-terminated, @resp_len).
 */
int ly_raw(const char *cgroup, const char *host, int port, const void *data, size_t len,
	   double timeout_s, char **resp, size_t *resp_len);
/* Same, but the last @split_last bytes go in a second write(), 0.3 s after the rest. */
int ly_raw_split(const char *cgroup, const char *host, int port, const void *data, size_t len,
		 size_t split_last, double timeout_s, char **resp, size_t *resp_len);
/* The status code of an HTTP/1.1 status line at the start of @resp, or -1. */
int ly_status_of(const char *resp);

/*
 * tests/clients/driver.py: ONE connection from @cgroup to @host:@port, kept open; each
 * ly_driver_get() sends one GET on it and returns the driver's JSON result (new reference:
 * {"n", "status", "headers", "body"} or {"n", "error"}), or NULL at timeout.  The driver
 * never reconnects: a closed connection gives {"error": "closed"}.
 */
struct ly_driver {
	pid_t pid;
	int fifo; /* commands to the driver */
	int n;	  /* requests sent */
	const char *name;
	json_t *hello; /* {"connected": true, "local": "127.0.0.1:N"} */
};
void ly_driver_start(struct ly_driver *dr, const char *name, const char *cgroup,
		     const char *host, int port);
json_t *ly_driver_get(struct ly_driver *dr, const char *path, int timeout_ms);

/*
 * The credential in an upstream request (ly-upstream --log object): the value of @header
 * after @prefix ("Bearer "), harness-owned; NULL when the header is absent, repeated or
 * does not start with @prefix.
 */
const char *ly_req_token(const json_t *req, const char *header, const char *prefix);
/*
 * Verify @token with tests/tools/verify_jwt.py against the daemon's JWKS URL, audience
 * @aud and issuer d->issuer (the token goes through a 0600 file, removed after).  Returns
 * the verified claims (new reference) or NULL (the verifier's message is printed).
 */
json_t *ly_verify(const struct ly_daemon *d, const char *token, const char *aud);

/*
 * The common world: ly-upstream "up" (<tmp>/up.jsonl, up.raw), cgroup "app", lanyardd
 * with workload "app" and one route to 127.0.0.1:<up_port> (audience LY_AUD, @ttl,
 * @header or NULL for the default).
 */
struct ly_app {
	struct ly_daemon d;
	const char *cg; /* the enrolled cgroup, as a policy names it */
	int up_port;
	pid_t up_pid;
	const char *up_log, *up_raw;
};
void ly_app_start(struct ly_app *a, const char *ttl, const char *header);
/* Same, the upstream answering every request with @body. */
void ly_app_start_body(struct ly_app *a, const char *ttl, const char *header, const char *body);
/* Same (ttl 5m, the default header), with @policy_extra top-level policy lines (or NULL). */
void ly_app_start_policy(struct ly_app *a, const char *policy_extra, const char *body);
/*
 * Same world, the route's credential being @cred (a YAML flow mapping) and @extra more route
 * keys (lines, or NULL).  @a must be zeroed; a->d may already be ly_init()ed (to hand its
 * JWKS URL to an identity provider before lanyardd starts).
 */
void ly_app_start_cred(struct ly_app *a, const char *cred, const char *extra);

/*
 * Every complete line of @path with member @key (NULL: any line) equal to the string
 * @value (NULL: any value): a new array.
 */
json_t *ly_jsonl_all(const char *path, const char *key, const char *value);
/* Poll until @path has at least @n JSON lines matching @key = @value; the count reached. */
int ly_jsonl_wait_count(const char *path, const char *key, const char *value, int n,
			int timeout_ms);

/* --- TLS upstreams ---------------------------------------------------------------------- */

struct tlsfix_ca;

/* localhost, 127.0.0.1 and ::1: the names of a test upstream's certificate. */
extern const char *const ly_local_names[];
/* A test CA called @cn and a server certificate for ly_local_names (paths); asserts. */
struct tlsfix_ca *ly_ca_and_server(const char *cn, char **cert, char **key);
/*
 * ly-upstream "@name" in TLS mode on a free port, which it returns (a name used twice
 * would make the "listening" wait pass); asserts.
 */
int ly_tls_upstream(const char *name, const char *cert, const char *key, const char *client_ca);

#endif /* LANYARD_TESTS_LANYARD_H */
