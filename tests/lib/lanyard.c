// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Copyright (c) 2026 The lanyard authors */
/*
 * Fixtures of the lanyardd end-to-end tests: policy files, starting and stopping lanyardd,
 * the CLI, curl and the python3 clients in a cgroup, credentials taken from the upstream.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "lib/lanyard.h"
#include "lib/tlsfix.h"

#define MAX_ARGS 48

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Append a NULL-terminated va_list of strings to args[*n]; asserts on overflow. */
static void args_add(char **args, int *n, const char *first, va_list ap)
{
	union {
		const char *c;
		char *m;
	} u = { .c = first };

	while (u.c) {
		cr_assert_lt(*n, MAX_ARGS - 1, "too many arguments");
		args[(*n)++] = u.m;
		u.c = va_arg(ap, const char *);
	}
	args[*n] = NULL;
}

/* --- the daemon --------------------------------------------------------------------------- */

void ly_init(struct ly_daemon *d, const char *name)
{
	static int seq;

	memset(d, 0, sizeof(*d));
	d->name = h_strf("%s", name);
	d->port = h_free_port();
	d->admin_port = h_free_port();
	cr_assert(d->port > 0 && d->admin_port > 0, "no free ports");
	d->policy = h_path("%s.yaml", name);
	d->audit = h_path("%s-audit.jsonl", name);
	d->control = h_path("%s.sock", name);
	d->state_dir = h_path("%s-state", name);
	/* one pin folder per daemon: tests never share bpf state */
	d->pin_dir = h_strf("/sys/fs/bpf/lanyard-t%d%s", (int)getpid(),
			    seq++ ? h_strf("-%d", seq) : "");
	d->issuer = h_strf("http://127.0.0.1:%d", d->admin_port);
	d->jwks_url = h_strf("%s/.well-known/jwks.json", d->issuer);
}

char *ly_yaml_route(const char *to, const char *audience, const char *ttl, const char *header)
{
	return h_strf("      - to: %s\n"
		      "        credential: { type: jwt, audience: %s, ttl: %s }\n"
		      "%s",
		      to, audience, ttl, header ? h_strf("        header: \"%s\"\n", header) : "");
}

char *ly_yaml_workload(const char *name, const char *cgroup, const char *routes)
{
	return h_strf("  - name: %s\n"
		      "    match: { cgroup: %s }\n"
		      "    routes:\n"
		      "%s",
		      name, cgroup, routes);
}

char *ly_policy_text(const struct ly_daemon *d, const char *workloads)
{
	return h_strf("trust_domain: " LY_TRUST_DOMAIN "\n"
		      "listen: { port: %d }\n"
		      "admin: { listen: 127.0.0.1:%d }\n"
		      "state_dir: %s\n"
		      "audit: { path: %s }\n"
		      "control_socket: %s\n"
		      "%s"
		      "workloads:\n"
		      "%s",
		      d->port, d->admin_port, d->state_dir, d->audit, d->control,
		      d->policy_extra ? d->policy_extra : "", workloads);
}

void ly_write_policy(const struct ly_daemon *d, const char *workloads)
{
	int err = h_write_file(d->policy, ly_policy_text(d, workloads), 0600);

	cr_assert_eq(err, 0, "writing %s: %s", d->policy, strerror(-err));
}

pid_t ly_spawn(struct ly_daemon *d)
{
	char *detach[] = { h_bin("lanyardd"), "--detach", "--pin-dir", d->pin_dir, NULL };
	char *argv[] = { h_bin("lanyardd"), "--config", d->policy, "--pin-dir", d->pin_dir,
			 "--ephemeral", "--verbose", NULL };

	/* the safety net first: it must run even if lanyardd dies half-way through start-up */
	if (!d->detach_registered) {
		cr_assert_eq(h_at_teardown(detach), 0);
		d->detach_registered = true;
	}
	d->pid = h_spawn(d->name, argv, NULL);
	return d->pid;
}

/* One HTTP/1.1 GET to 127.0.0.1:@port from this process; status or -errno. */
static int http_get(int port, const char *path, char **body)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	struct timeval tv = { .tv_sec = 5 };
	size_t n = 0, cap = 1 << 16;
	char *buf = NULL, *p, req[512];
	int fd, status = -EPROTO;
	ssize_t r;

	if (body)
		*body = NULL;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	snprintf(req, sizeof(req),
		 "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n", path, port);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    write(fd, req, strlen(req)) != (ssize_t)strlen(req)) {
		status = -errno;
		goto out;
	}
	buf = malloc(cap);
	while (buf && n + 1 < cap && (r = read(fd, buf + n, cap - n - 1)) > 0)
		n += (size_t)r;
	if (!buf)
		goto out;
	buf[n] = '\0';
	status = ly_status_of(buf);
	if (status < 0)
		status = -EPROTO;
	p = strstr(buf, "\r\n\r\n");
	if (body && p)
		*body = strdup(p + 4);
out:
	free(buf);
	close(fd);
	return status;
}

int ly_admin_get(const struct ly_daemon *d, const char *path, char **body)
{
	return http_get(d->admin_port, path, body);
}

int ly_wait_ready(struct ly_daemon *d, int timeout_ms)
{
	int64_t deadline = mono_ms() + timeout_ms;
	struct stat st;

	for (;;) {
		if (!h_alive(d->pid)) {
			fprintf(stderr, "[lanyard] %s exited during start-up (status %d)\n",
				d->name, h_wait_exit(d->pid, 0));
			h_dump(d->name, 40);
			return -ESRCH;
		}
		if (!stat(d->control, &st) && S_ISSOCK(st.st_mode) &&
		    http_get(d->admin_port, "/healthz", NULL) == 200)
			return 0;
		if (mono_ms() > deadline) {
			fprintf(stderr, "[lanyard] %s not ready after %d ms\n", d->name,
				timeout_ms);
			h_dump(d->name, 40);
			return -ETIMEDOUT;
		}
		usleep(20 * 1000);
	}
}

void ly_start(struct ly_daemon *d, const char *workloads)
{
	pid_t pid;
	int rc;

	if (!d->name)
		ly_init(d, "lanyardd");
	ly_write_policy(d, workloads);
	pid = ly_spawn(d);
	cr_assert_gt(pid, 0, "cannot spawn lanyardd: %s", strerror((int)-pid));
	rc = ly_wait_ready(d, 15000);
	cr_assert_eq(rc, 0, "lanyardd did not become ready: %s", strerror(-rc));
}

/* --- the TLS attach helper ---------------------------------------------------------------- */

/* The pid of lanyardd's child named lanyardd-tls, 0 if none. */
pid_t ly_tls_helper_pid(const struct ly_daemon *ly)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	pid_t found = 0;

	cr_assert(d);
	while (!found && (de = readdir(d))) {
		long ppid = 0;
		const char *p;
		char *st;

		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		st = h_read_file(h_strf("/proc/%s/status", de->d_name), NULL);
		if (!st)
			continue;
		p = strstr(st, "\nPPid:");
		if (p)
			ppid = strtol(p + 6, NULL, 10);
		if (ppid == ly->pid && !strncmp(st, "Name:\tlanyardd-tls\n", 19))
			found = (pid_t)atoi(de->d_name);
		free(st);
	}
	closedir(d);
	return found;
}

/* --- CLI ---------------------------------------------------------------------------------- */

int ly_cli(const struct ly_daemon *d, char **out, const char *arg0, ...)
{
	char *args[MAX_ARGS] = { h_bin("lanyard"), "--socket", d->control };
	va_list ap;
	int n = 3;

	va_start(ap, arg0);
	args_add(args, &n, arg0, ap);
	va_end(ap);
	return h_run(args, NULL, 10000, out);
}

json_t *ly_cli_json(const struct ly_daemon *d, const char *cmd)
{
	json_error_t jerr;
	json_t *j = NULL;
	char *out = NULL;
	int rc;

	rc = ly_cli(d, &out, "--json", cmd, NULL);
	if (rc == 0)
		j = json_loads(out, JSON_DECODE_ANY, &jerr);
	if (!j)
		fprintf(stderr, "[lanyard] lanyard --json %s: exit %d: %s\n", cmd, rc,
			out ? out : "");
	free(out);
	return j;
}

/* The counter @name of the @section object of `lanyard --json status`; -1 if none. */
static long long status_counter(const struct ly_daemon *d, const char *section, const char *name)
{
	json_t *st = ly_cli_json(d, "status"), *v;
	long long n = -1;

	v = json_object_get(json_object_get(st, section), name);
	if (json_is_integer(v))
		n = (long long)json_integer_value(v);
	json_decref(st);
	return n;
}

long long ly_metric(const struct ly_daemon *d, const char *name)
{
	return status_counter(d, "metrics", name);
}

long long ly_kernel_stat(const struct ly_daemon *d, const char *name)
{
	return status_counter(d, "kernel", name);
}

bool ly_wait_enrolled(const struct ly_daemon *d, const char *workload, int timeout_ms)
{
	int64_t deadline = mono_ms() + timeout_ms;
	json_t *j, *w;
	bool yes;
	size_t i;

	for (;;) {
		yes = false;
		j = ly_cli_json(d, "workloads");
		json_array_foreach(json_object_get(j, "workloads"), i, w)
		{
			const char *name = json_string_value(json_object_get(w, "name"));

			if (name && !strcmp(name, workload))
				yes = json_is_true(json_object_get(w, "enrolled"));
		}
		json_decref(j);
		if (yes)
			return true;
		if (mono_ms() > deadline)
			return false;
		usleep(50 * 1000);
	}
}

/* --- clients ------------------------------------------------------------------------------ */

int ly_curl(const char *cgroup, char **out, const char *arg0, ...)
{
	char *args[MAX_ARGS] = { LY_CURL };
	va_list ap;
	int n = 6;

	va_start(ap, arg0);
	args_add(args, &n, arg0, ap);
	va_end(ap);
	return h_run(args, cgroup, 15000, out);
}

char *ly_client_path(const char *script)
{
	return h_repo_path(h_strf("tests/clients/%s", script));
}

pid_t ly_client_spawn(const char *name, const char *cgroup, const char *script, ...)
{
	char *args[MAX_ARGS] = { LY_PYTHON, "-u", ly_client_path(script) };
	va_list ap;
	int n = 3;

	va_start(ap, script);
	args_add(args, &n, va_arg(ap, const char *), ap);
	va_end(ap);
	return h_spawn(name, args, cgroup);
}

int ly_client_run(const char *cgroup, int timeout_ms, char **out, const char *script, ...)
{
	char *args[MAX_ARGS] = { LY_PYTHON, "-u", ly_client_path(script) };
	va_list ap;
	int n = 3;

	va_start(ap, script);
	args_add(args, &n, va_arg(ap, const char *), ap);
	va_end(ap);
	return h_run(args, cgroup, timeout_ms, out);
}

static int write_bytes(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600), err = 0;
	size_t off = 0;
	ssize_t n;

	if (fd < 0)
		return -errno;
	while (!err && off < len) {
		n = write(fd, (const char *)data + off, len - off);
		if (n < 0 && errno != EINTR)
			err = -errno;
		else if (n > 0)
			off += (size_t)n;
	}
	close(fd);
	return err;
}

int ly_raw(const char *cgroup, const char *host, int port, const void *data, size_t len,
	   double timeout_s, char **resp, size_t *resp_len)
{
	return ly_raw_split(cgroup, host, port, data, len, 0, timeout_s, resp, resp_len);
}

int ly_raw_split(const char *cgroup, const char *host, int port, const void *data, size_t len,
		 size_t split_last, double timeout_s, char **resp, size_t *resp_len)
{
	static int seq;
	char *in = h_path("raw-%d.in", ++seq), *out = h_path("raw-%d.resp", seq), *log = NULL;
	int rc;

	cr_assert_eq(write_bytes(in, data, len), 0);
	rc = ly_client_run(cgroup, (int)(timeout_s * 1000) + 10000, &log, "raw.py", "--host", host,
			   "--port", h_strf("%d", port), "--send", in, "--out", out, "--timeout",
			   h_strf("%.1f", timeout_s), "--split-last", h_strf("%zu", split_last),
			   NULL);
	if (rc != 0)
		fprintf(stderr, "[lanyard] raw.py exit %d: %s\n", rc, log ? log : "");
	free(log);
	*resp = h_read_file(out, resp_len);
	if (!*resp) {
		*resp = strdup("");
		if (resp_len)
			*resp_len = 0;
	}
	return rc;
}

int ly_status_of(const char *resp)
{
	int status;

	if (!resp || sscanf(resp, "HTTP/1.%*1[01] %3d ", &status) != 1)
		return -1;
	return status;
}

void ly_driver_start(struct ly_driver *dr, const char *name, const char *cgroup,
		     const char *host, int port)
{
	char *fifo = h_path("%s.fifo", name);

	memset(dr, 0, sizeof(*dr));
	dr->name = h_strf("%s", name);
	cr_assert_eq(mkfifo(fifo, 0600), 0, "mkfifo: %s", strerror(errno));
	/* O_RDWR: does not wait for the reader, and the driver never sees EOF from us */
	dr->fifo = open(fifo, O_RDWR | O_CLOEXEC);
	cr_assert_geq(dr->fifo, 0);
	dr->pid = ly_client_spawn(name, cgroup, "driver.py", "--host", host, "--port",
				  h_strf("%d", port), "--fifo", fifo, NULL);
	cr_assert_gt(dr->pid, 0);
	dr->hello = h_jsonl_wait(h_out_path(name), "connected", NULL, 10000);
	if (!dr->hello)
		h_dump(name, 20);
	cr_assert(dr->hello, "driver.py did not connect");
	cr_assert(json_is_true(json_object_get(dr->hello, "connected")), "driver.py: %s",
		  json_string_value(json_object_get(dr->hello, "error")));
}

json_t *ly_driver_get(struct ly_driver *dr, const char *path, int timeout_ms)
{
	char *cmd = h_strf("GET %s\n", path);
	json_t *r;

	cr_assert_eq(write(dr->fifo, cmd, strlen(cmd)), (ssize_t)strlen(cmd));
	r = h_jsonl_wait(h_out_path(dr->name), "n", h_strf("%d", ++dr->n), timeout_ms);
	if (!r)
		h_dump(dr->name, 20);
	return r;
}

/* --- requests with their status ------------------------------------------------------------ */

/* not inlined: gcc then loses track of &out escaping into ly_curl() and warns */
__attribute__((noinline)) char *ly_get_status(const char *cgroup, const char *url)
{
	char *out = NULL;

	ly_curl(cgroup, &out, "-w", " %{http_code}", url, NULL);
	return out;
}

int ly_status_tail(const char *out)
{
	const char *sp = out ? strrchr(out, ' ') : NULL;

	return sp ? atoi(sp + 1) : -1;
}

char *ly_get_until(const char *cgroup, const char *url, int want, int timeout_ms)
{
	char *out = NULL;

	for (int waited = 0; waited <= timeout_ms; waited += 100) {
		free(out);
		out = ly_get_status(cgroup, url);
		if (ly_status_tail(out) == want)
			break;
		usleep(100 * 1000);
	}
	return out;
}

/* --- credentials -------------------------------------------------------------------------- */

const char *ly_req_token(const json_t *req, const char *header, const char *prefix)
{
	const char *v = h_json_header(req, header);
	size_t pl = prefix ? strlen(prefix) : 0;

	if (!v || h_json_header_count(req, header) != 1 || strncmp(v, prefix ? prefix : "", pl))
		return NULL;
	return h_strf("%s", v + pl);
}

json_t *ly_verify(const struct ly_daemon *d, const char *token, const char *aud)
{
	static int seq;
	char *file = h_path("verify-%d.tok", ++seq), *out = NULL;
	json_t *claims = NULL;
	json_error_t jerr;
	int rc;

	if (!token)
		return NULL;
	cr_assert_eq(write_bytes(file, token, strlen(token)), 0);
	rc = h_runl(NULL, 20000, &out, LY_PYTHON, h_repo_path("tests/tools/verify_jwt.py"),
		    "--jwks", d->jwks_url, "--aud", aud, "--iss", d->issuer, file, NULL);
	unlink(file);
	if (rc == 0)
		claims = json_loads(out, JSON_DECODE_ANY, &jerr);
	if (!json_is_object(claims)) {
		/* verify_jwt.py never prints the token: its message is safe to show */
		fprintf(stderr, "[lanyard] verify_jwt.py: exit %d: %s\n", rc, out ? out : "");
		json_decref(claims);
		claims = NULL;
	}
	free(out);
	return claims;
}

/* --- the common world --------------------------------------------------------------------- */

void ly_app_start(struct ly_app *a, const char *ttl, const char *header)
{
	ly_app_start_body(a, ttl, header, NULL);
}

/* Upstream and cgroup of the common world; a->d as the caller left it. */
static void app_prepare(struct ly_app *a, const char *body)
{
	h_require_root_bpf();
	a->up_port = h_free_port();
	cr_assert_gt(a->up_port, 0);
	a->up_pid = h_upstream("up", a->up_port, body);
	cr_assert_gt(a->up_pid, 0, "ly-upstream did not start");
	a->up_log = h_path("up.jsonl");
	a->up_raw = h_path("up.raw");
	a->cg = h_cgroup_create("app");
	cr_assert(a->cg);
}

static void app_start(struct ly_app *a, const char *ttl, const char *header, const char *body,
		      const char *policy_extra)
{
	memset(a, 0, sizeof(*a));
	ly_init(&a->d, "lanyardd");
	a->d.policy_extra = policy_extra;
	app_prepare(a, body);
	ly_start(&a->d, ly_yaml_workload("app", a->cg,
					 ly_yaml_route(h_strf("127.0.0.1:%d", a->up_port), LY_AUD,
						       ttl, header)));
}

void ly_app_start_body(struct ly_app *a, const char *ttl, const char *header, const char *body)
{
	app_start(a, ttl, header, body, NULL);
}

void ly_app_start_policy(struct ly_app *a, const char *policy_extra, const char *body)
{
	app_start(a, "5m", NULL, body, policy_extra);
}

void ly_app_start_cred(struct ly_app *a, const char *cred, const char *extra)
{
	app_prepare(a, NULL);
	ly_start(&a->d, ly_yaml_workload("app", a->cg,
					 h_strf("      - to: 127.0.0.1:%d\n        credential: %s\n%s",
						a->up_port, cred, extra ? extra : "")));
}

int ly_jsonl_wait_count(const char *path, const char *key, const char *value, int n,
			int timeout_ms)
{
	int64_t deadline = mono_ms() + timeout_ms;
	int c;

	while ((c = h_jsonl_count(path, key, value)) < n && mono_ms() < deadline)
		usleep(10 * 1000);
	return c;
}

json_t *ly_jsonl_all(const char *path, const char *key, const char *value)
{
	json_t *all = json_array(), *obj, *v;
	char *s, *line, *nl;
	size_t len;

	cr_assert(all);
	s = h_read_file(path, &len);
	if (!s)
		return all;
	for (line = s; (nl = memchr(line, '\n', len - (size_t)(line - s))); line = nl + 1) {
		obj = json_loadb(line, (size_t)(nl - line), 0, NULL);
		v = key ? json_object_get(obj, key) : obj;
		if (v && (!value || (json_is_string(v) && !strcmp(json_string_value(v), value))))
			json_array_append(all, obj);
		json_decref(obj);
	}
	free(s);
	return all;
}

/* --- TLS upstreams ---------------------------------------------------------------------- */

const char *const ly_local_names[] = { "localhost", "127.0.0.1", "::1", NULL };

struct tlsfix_ca *ly_ca_and_server(const char *cn, char **cert, char **key)
{
	struct tlsfix_ca *ca = tlsfix_ca_new(cn);

	cr_assert(ca, "tlsfix_ca_new");
	cr_assert_eq(tlsfix_server_cert(ca, ly_local_names, cert, key), 0);
	return ca;
}

int ly_tls_upstream(const char *name, const char *cert, const char *key, const char *client_ca)
{
	int port = h_free_port();
	pid_t pid;

	cr_assert_gt(port, 0);
	pid = h_tls_upstream(name, port, cert, key, client_ca);
	cr_assert_gt(pid, 0, "ly-upstream did not start: %s", strerror((int)-pid));
	return port;
}
