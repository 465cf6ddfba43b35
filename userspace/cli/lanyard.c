// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Copyright (c) 2026 The lanyard authors */
/*
 * lanyard: the operator's CLI.  Sends one JSON request to lanyardd's control
 * socket and prints the answer as a table (or as JSON with --json).
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "policy.h"

#define MAX_RESPONSE	(16 * 1024 * 1024)

static void usage(FILE *f)
{
	fprintf(f,
		"usage: lanyard [--socket PATH] [--json] COMMAND\n"
		"\n"
		"commands:\n"
		"  status                    daemon, policy and counters\n"
		"  workloads                 workloads, their cgroups and enrolment\n"
		"  routes                    routes per workload\n"
		"  flows                     live flows (connections being served)\n"
		"  tokens                    current credentials: jti, audience, expiry, fingerprint\n"
		"  reload                    re-read the policy file (a bad one is refused)\n"
		"  revoke --workload NAME    refuse the workload's connections and credentials\n"
		"                            until the next reload\n"
		"\n"
		"  --socket PATH   control socket (default " POLICY_DEFAULT_CONTROL ")\n"
		"  --json          print the daemon's JSON answer\n");
}

/* Send one request line, read the whole answer.  Caller frees. */
static char *request(const char *path, const char *line)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	size_t len = 0, cap = 4096;
	char *buf = NULL;
	int fd;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		fprintf(stderr, "lanyard: socket path too long\n");
		return NULL;
	}
	strcpy(sun.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		fprintf(stderr, "lanyard: cannot connect to %s: %s (is lanyardd running?)\n",
			path, strerror(errno));
		goto fail;
	}
	if (write(fd, line, strlen(line)) != (ssize_t)strlen(line))
		goto fail_io;
	buf = malloc(cap);
	for (;;) {
		ssize_t n;

		if (!buf)
			goto fail;
		if (len + 1 >= cap) {
			char *p = cap < MAX_RESPONSE ? realloc(buf, cap * 2) : NULL;

			if (!p)
				goto fail;
			buf = p;
			cap *= 2;
		}
		n = read(fd, buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			goto fail_io;
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	close(fd);
	return buf;
fail_io:
	fprintf(stderr, "lanyard: %s: %s\n", path, strerror(errno));
fail:
	if (fd >= 0)
		close(fd);
	free(buf);
	return NULL;
}

static const char *s(json_t *o, const char *k)
{
	const char *v = json_string_value(json_object_get(o, k));

	return v ? v : "-";
}

static long long i(json_t *o, const char *k)
{
	return (long long)json_integer_value(json_object_get(o, k));
}

static void fmt_time(long long t, char *out, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (!t) {
		snprintf(out, len, "-");
		return;
	}
	gmtime_r(&tt, &tm);
	strftime(out, len, "%H:%M:%SZ", &tm);
}

static void print_status(json_t *r)
{
	json_t *m = json_object_get(r, "metrics"), *k = json_object_get(r, "kernel");
	const char *key;
	json_t *v;

	printf("lanyardd %s  pid %lld  up %llds\n", s(r, "version"), i(r, "pid"),
	       i(r, "uptime_s"));
	printf("policy    %s (generation %lld)\n", s(r, "policy"), i(r, "generation"));
	printf("listen    127.0.0.1:%lld [::1]:%lld\n", i(r, "listen_port"), i(r, "listen_port"));
	printf("issuer    %s\n", s(r, "issuer"));
	printf("workloads %lld  routes %lld\n", i(r, "workloads"), i(r, "routes"));
	printf("\ncounters\n");
	json_object_foreach(m, key, v)
		printf("  %-24s %lld\n", key, (long long)json_integer_value(v));
	printf("\nkernel (bpf stats)\n");
	json_object_foreach(k, key, v)
		printf("  %-24s %lld\n", key, (long long)json_integer_value(v));
}

static void print_workloads(json_t *r)
{
	size_t n;
	json_t *w;

	printf("%-20s %-4s %-36s %-10s %-9s %-8s %s\n", "WORKLOAD", "ID", "CGROUP", "CGROUP_ID",
	       "ENROLLED", "REVOKED", "ROUTES");
	json_array_foreach(json_object_get(r, "workloads"), n, w)
		printf("%-20s %-4lld %-36s %-10lld %-9s %-8s %lld\n", s(w, "name"), i(w, "id"),
		       s(w, "cgroup"), i(w, "cgroup_id"),
		       json_is_true(json_object_get(w, "enrolled")) ? "yes" : "no",
		       json_is_true(json_object_get(w, "revoked")) ? "yes" : "no",
		       i(w, "routes"));
}

static void print_routes(json_t *r)
{
	size_t n, k;
	json_t *w, *a;

	printf("%-20s %-30s %-10s %-30s %-6s %s\n", "WORKLOAD", "TO", "CREDENTIAL", "AUDIENCE",
	       "TTL", "HEADER / ADDRESSES");
	json_array_foreach(json_object_get(r, "routes"), n, w) {
		printf("%-20s %-30s %-10s %-30s %-6lld %s", s(w, "workload"), s(w, "to"),
		       s(w, "credential"), s(w, "audience"), i(w, "ttl_s"), s(w, "header"));
		json_array_foreach(json_object_get(w, "addrs"), k, a)
			printf(" %s", json_string_value(a));
		printf("\n");
	}
}

static void print_flows(json_t *r)
{
	size_t n;
	json_t *f;

	printf("%-6s %-16s %-7s %-16s %-28s %-8s %s\n", "FLOW", "WORKLOAD", "PID", "COMM", "DST",
	       "REQS", "EXE");
	json_array_foreach(json_object_get(r, "flows"), n, f)
		printf("%-6lld %-16s %-7lld %-16s %-28s %-8lld %s\n", i(f, "flow"),
		       s(f, "workload"), i(f, "pid"), s(f, "comm"), s(f, "dst"),
		       i(f, "requests"), s(f, "exe"));
}

static void print_tokens(json_t *r)
{
	size_t n;
	json_t *t;

	printf("%-16s %-26s %-24s %-24s %-10s %-25s %s\n", "WORKLOAD", "ROUTE", "JTI", "AUDIENCE",
	       "EXPIRES", "FINGERPRINT", "ISSUED/USED");
	json_array_foreach(json_object_get(r, "tokens"), n, t) {
		char exp[32];

		fmt_time(i(t, "exp"), exp, sizeof(exp));
		printf("%-16s %-26s %-24s %-24s %-10s %-25s %lld/%lld%s\n", s(t, "workload"),
		       s(t, "route"), s(t, "jti"), s(t, "audience"), exp, s(t, "fingerprint"),
		       i(t, "issued"), i(t, "used"),
		       json_is_true(json_object_get(t, "revoked")) ? " revoked" : "");
	}
}

static int build_request(const char *cmd, const char *workload, char **line)
{
	json_t *req = json_pack("{s:s}", "cmd", cmd);
	char *js;

	if (workload)
		json_object_set_new(req, "workload", json_string(workload));
	js = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	if (!js || asprintf(line, "%s\n", js) < 0) {
		free(js);
		return -ENOMEM;
	}
	free(js);
	return 0;
}

static int print_answer(const char *cmd, const char *text, int as_json)
{
	json_error_t jerr;
	json_t *r = json_loads(text, 0, &jerr);
	int ok;

	if (!r) {
		fprintf(stderr, "lanyard: bad answer from lanyardd: %s\n", jerr.text);
		return 1;
	}
	ok = json_is_true(json_object_get(r, "ok"));
	if (as_json)
		fputs(text, stdout);
	else if (!ok)
		fprintf(stderr, "lanyard: %s: %s\n", cmd, s(r, "error"));
	else if (!strcmp(cmd, "status"))
		print_status(r);
	else if (!strcmp(cmd, "workloads"))
		print_workloads(r);
	else if (!strcmp(cmd, "routes"))
		print_routes(r);
	else if (!strcmp(cmd, "flows"))
		print_flows(r);
	else if (!strcmp(cmd, "tokens"))
		print_tokens(r);
	else if (!strcmp(cmd, "reload"))
		printf("policy reloaded (generation %lld)\n", i(r, "generation"));
	else if (!strcmp(cmd, "revoke"))
		printf("workload %s revoked (%lld credentials dropped)\n", s(r, "workload"),
		       i(r, "credentials"));
	json_decref(r);
	return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "workload", required_argument, NULL, 'w' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	static const char *const cmds[] = { "status", "workloads", "routes", "flows",
					    "tokens", "reload", "revoke", NULL };
	const char *sock = POLICY_DEFAULT_CONTROL, *workload = NULL, *cmd;
	char *line = NULL, *answer;
	int as_json = 0, ch, rc, known = 0;

	while ((ch = getopt_long(argc, argv, "+s:jw:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 's': sock = optarg; break;
		case 'j': as_json = 1; break;
		case 'w': workload = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	cmd = argv[optind++];
	/* options may also follow the command: lanyard revoke --workload NAME */
	while ((ch = getopt_long(argc, argv, "s:jw:", longopts, NULL)) != -1) {
		switch (ch) {
		case 's': sock = optarg; break;
		case 'j': as_json = 1; break;
		case 'w': workload = optarg; break;
		default: usage(stderr); return 2;
		}
	}
	for (int k = 0; cmds[k]; k++)
		known |= !strcmp(cmds[k], cmd);
	/* revoke needs --workload; no other command takes it */
	if (!known || optind != argc || (!strcmp(cmd, "revoke") != !!workload)) {
		usage(stderr);
		return 2;
	}
	if (build_request(cmd, workload, &line) < 0)
		return 1;
	answer = request(sock, line);
	free(line);
	if (!answer)
		return 1;
	rc = print_answer(cmd, answer, as_json);
	free(answer);
	return rc;
}
