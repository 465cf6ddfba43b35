// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Copyright (c) 2026 The lanyard authors */
/*
 * lanyardd end to end, the promises of design section 1: only enrolled workloads get a
 * credential, the listener serves nobody else, the app never holds a credential, and no
 * log, audit record, CLI answer or metrics page ever shows one.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <openssl/sha.h>

#include "lib/lanyard.h"

TestSuite(security, H_FIXTURES, .timeout = 60);

#define MAX_NEEDLES 64

/* --- needles: every credential the upstream saw, and its signature alone ------------------ */

struct needles {
	const char *s[MAX_NEEDLES];
	size_t len[MAX_NEEDLES];
	int n;
};

static void needle_add(struct needles *nd, const char *s)
{
	int i;

	for (i = 0; i < nd->n; i++)
		if (!strcmp(nd->s[i], s))
			return;
	cr_assert_lt(nd->n, MAX_NEEDLES);
	nd->s[nd->n] = s;
	nd->len[nd->n++] = strlen(s);
}

/*
 * The distinct Authorization credentials in the upstream log, each also by its signature
 * (the part after the last dot: a copy of the signature alone would be a leak too).
 * Returns how many requests carried one.
 */
static int collect_tokens(const char *up_log, struct needles *nd)
{
	json_t *all = ly_jsonl_all(up_log, NULL, NULL), *req;
	const char *tok;
	size_t i;
	int n = 0;

	json_array_foreach(all, i, req)
	{
		tok = ly_req_token(req, "Authorization", "Bearer ");
		if (!tok)
			continue;
		n++;
		needle_add(nd, tok);
		cr_assert(strrchr(tok, '.') && strlen(strrchr(tok, '.')) > 40);
		needle_add(nd, strrchr(tok, '.') + 1);
	}
	json_decref(all);
	return n;
}

/*
 * How many needles occur in buf[0..len); each hit is reported with @what (NULL: silently),
 * never by value.
 */
static int hits_in(const struct needles *nd, const char *buf, size_t len, const char *what)
{
	int i, hits = 0;

	for (i = 0; i < nd->n; i++) {
		if (!buf || !memmem(buf, len, nd->s[i], nd->len[i]))
			continue;
		if (what)
			fprintf(stderr, "[security] credential part #%d found in %s\n", i, what);
		hits++;
	}
	return hits;
}

static int hits_in_file(const struct needles *nd, const char *path, bool report)
{
	size_t len = 0;
	char *s = h_read_file(path, &len);
	int hits = hits_in(nd, s, len, report ? path : NULL);

	free(s);
	return hits;
}

/*
 * Read every readable mapping of @pid through /proc/PID/mem (root) and count, per needle,
 * whether it occurs.  found[i] is set per needle; returns the bytes scanned.
 */
static size_t scan_memory(pid_t pid, const struct needles *nd, bool *found)
{
	char *maps = h_read_file(h_strf("/proc/%d/maps", (int)pid), NULL), *line, *save = NULL;
	size_t chunk = 1 << 20, maxlen = 1, scanned = 0, keep, n, total;
	char *buf, perms[8];
	unsigned long start, end, at;
	int fd, i;
	ssize_t r;

	cr_assert(maps, "cannot read /proc/%d/maps", (int)pid);
	fd = open(h_strf("/proc/%d/mem", (int)pid), O_RDONLY | O_CLOEXEC);
	cr_assert_geq(fd, 0, "cannot open /proc/%d/mem: %s", (int)pid, strerror(errno));
	for (i = 0; i < nd->n; i++) {
		found[i] = false;
		if (nd->len[i] > maxlen)
			maxlen = nd->len[i];
	}
	buf = malloc(chunk + maxlen);
	cr_assert(buf);
	for (line = strtok_r(maps, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (sscanf(line, "%lx-%lx %7s", &start, &end, perms) != 3 || perms[0] != 'r')
			continue;
		for (at = start, keep = 0; at < end; at += n) {
			n = end - at < chunk ? end - at : chunk;
			r = pread(fd, buf + keep, n, (off_t)at);
			if (r <= 0)
				break; /* [vvar] and friends cannot be read: skip the mapping */
			n = (size_t)r;
			scanned += n;
			total = keep + n;
			for (i = 0; i < nd->n; i++)
				if (memmem(buf, total, nd->s[i], nd->len[i]))
					found[i] = true;
			/* carry the tail over: a needle may straddle two reads */
			keep = total < maxlen - 1 ? total : maxlen - 1;
			memmove(buf, buf + total - keep, keep);
		}
	}
	free(buf);
	close(fd);
	free(maps);
	return scanned;
}

/* Needles in the regular files @pid has open (its stdout file included). */
static int hits_in_open_files(pid_t pid, const struct needles *nd, int *nfiles)
{
	char *dir = h_strf("/proc/%d/fd", (int)pid);
	struct dirent *de;
	struct stat st;
	DIR *d = opendir(dir);
	int hits = 0;

	cr_assert(d, "cannot list %s", dir);
	*nfiles = 0;
	while ((de = readdir(d))) {
		char *fd = h_strf("%s/%s", dir, de->d_name);

		if (de->d_name[0] == '.' || stat(fd, &st) || !S_ISREG(st.st_mode))
			continue;
		(*nfiles)++;
		hits += hits_in_file(nd, fd, true);
	}
	closedir(d);
	return hits;
}

/* --- who gets served ---------------------------------------------------------------------- */

Test(security, leaves_an_unenrolled_cgroup_alone)
{
	json_t *req;
	long long before, redirected;
	struct ly_app a;
	char *other, *out;

	ly_app_start(&a, "5m", NULL);
	other = h_cgroup_create("other");
	before = ly_metric(&a.d, "flow_accepted");
	cr_assert_eq(before, 0);
	redirected = ly_kernel_stat(&a.d, "redirected");
	cr_assert_geq(redirected, 0);

	cr_assert_eq(ly_curl(other, &out, h_strf("http://127.0.0.1:%d/other", a.up_port), NULL),
		     0, "curl: %s", out);
	cr_expect_str_eq(out, "ok\n");
	free(out);
	req = h_jsonl_wait(a.up_log, "target", "/other", 5000);
	cr_assert(req, "the unenrolled client must reach the upstream directly");
	cr_expect_eq(h_json_header_count(req, "Authorization"), 0,
		     "an unenrolled cgroup got a credential");
	json_decref(req);
	cr_expect_eq(ly_metric(&a.d, "flow_accepted"), before, "lanyardd served the flow");
	cr_expect_eq(ly_kernel_stat(&a.d, "redirected"), redirected,
		     "the kernel redirected an unenrolled cgroup");

	/* the same request from the enrolled cgroup moves both counters: they can fail */
	cr_assert_eq(ly_curl(a.cg, &out, h_strf("http://127.0.0.1:%d/app", a.up_port), NULL), 0);
	free(out);
	req = h_jsonl_wait(a.up_log, "target", "/app", 5000);
	cr_assert(req);
	cr_expect_eq(h_json_header_count(req, "Authorization"), 1);
	json_decref(req);
	cr_expect_eq(ly_metric(&a.d, "flow_accepted"), before + 1);
}

/* One direct connection to the listener at @host from @cgroup: nothing may come back. */
static void expect_no_service(const struct ly_daemon *d, const char *cgroup, const char *host)
{
	const char *req = "GET /direct HTTP/1.1\r\nHost: api.test\r\n\r\n";
	size_t len;
	char *resp;
	int rc;

	rc = ly_raw(cgroup, host, d->port, req, strlen(req), 3, &resp, &len);
	cr_expect_eq(rc, 0, "%s: could not connect to the listener at all", host);
	cr_expect_eq(len, 0, "a direct connection from %s to %s got an answer: %s",
		     cgroup ? cgroup : "the test", host, resp);
	free(resp);
}

Test(security, serves_nothing_on_a_direct_connection_to_the_listener)
{
	struct ly_daemon d = { 0 };
	json_t *rejects, *r;
	char *cg, *routes;
	int up, want = 2;
	size_t i;

	h_require_root_bpf();
	up = h_free_port();
	cr_assert_gt(h_upstream("up", up, NULL), 0);
	cg = h_cgroup_create("app");
	ly_init(&d, "lanyardd");
	/* a route covering the listener itself: the kernel must still never redirect to it */
	routes = h_strf("%s%s", ly_yaml_route(h_strf("127.0.0.1:%d", up), LY_AUD, "5m", NULL),
			ly_yaml_route(h_strf("127.0.0.1:%d", d.port), LY_AUD, "5m", NULL));
	ly_start(&d, ly_yaml_workload("app", cg, routes));

	expect_no_service(&d, NULL, "127.0.0.1");
	expect_no_service(&d, cg, "127.0.0.1");
	if (h_have_ipv6()) {
		expect_no_service(&d, NULL, "::1");
		want++;
	}
	cr_expect_eq(ly_jsonl_wait_count(d.audit, "event", "flow.reject", want, 3000), want);
	rejects = ly_jsonl_all(d.audit, "event", "flow.reject");
	json_array_foreach(rejects, i, r)
	{
		cr_expect(json_string_value(json_object_get(r, "peer")), "flow.reject: no peer");
		cr_expect(json_string_value(json_object_get(r, "reason")));
	}
	json_decref(rejects);
	cr_expect_eq(ly_metric(&d, "flow_accepted"), 0);
	cr_expect_eq(ly_metric(&d, "flow_rejected"), want);
	cr_expect_eq(h_file_size(h_path("up.raw")), 0, "bytes reached the upstream");
	cr_expect_eq(h_jsonl_count(d.audit, "event", "credential.use"), 0);
}

/* --- the app holds nothing ---------------------------------------------------------------- */

Test(security, app_memory_environment_and_files_hold_no_credential)
{
	char *marker = h_strf("ly-marker-%d-%ld-%ld", (int)getpid(), (long)time(NULL), random());
	bool found[MAX_NEEDLES], found_d[MAX_NEEDLES];
	struct needles nd = { 0 };
	int i, nreq, nfiles, mi;
	struct ly_app a;
	size_t scanned;
	pid_t pid;

	/* the upstream answers with the marker: the app keeps every body it got on purpose */
	ly_app_start_body(&a, "5m", NULL, marker);
	pid = ly_client_spawn("app", a.cg, "keepalive.py", "--host", "127.0.0.1", "--port",
			      h_strf("%d", a.up_port), "--count", "5", "--interval", "0.05",
			      "--hold", "120", NULL);
	cr_assert_gt(pid, 0);
	cr_assert_eq(h_wait_output(pid, "\"holding\"", 20000), 0);
	cr_expect(h_file_contains(h_out_path("app"), "\"failed\":0"));
	nreq = collect_tokens(a.up_log, &nd);
	cr_assert_eq(nreq, 5, "every request reached the upstream with a credential");
	mi = nd.n;
	needle_add(&nd, marker);

	scanned = scan_memory(pid, &nd, found);
	cr_assert_gt(scanned, 1 << 20, "scanned only %zu bytes", scanned);
	/* positive control: what the app does hold, the scanner finds */
	cr_assert(found[mi], "the scanner missed the marker the app holds (%zu bytes)", scanned);
	for (i = 0; i < mi; i++)
		cr_expect_not(found[i], "credential part #%d is in the app's memory", i);
	/* and the credential itself is findable where it does live: in lanyardd */
	scan_memory(a.d.pid, &nd, found_d);
	cr_expect(found_d[0], "the scanner cannot find the live credential in lanyardd");

	cr_expect_eq(hits_in_file(&nd, h_strf("/proc/%d/environ", (int)pid), true), 0);
	cr_expect_eq(hits_in_file(&nd, h_strf("/proc/%d/cmdline", (int)pid), true), 0);
	cr_expect_eq(hits_in_open_files(pid, &nd, &nfiles), 0);
	cr_expect_geq(nfiles, 1, "the app's stdout file was not scanned");
	cr_expect(h_alive(pid), "the app died during the scan");
}

/* --- the audit, and nothing shows a credential -------------------------------------------- */

static const char *jstr(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static long long jint(const json_t *o, const char *k)
{
	return (long long)json_integer_value(json_object_get(o, k));
}

/* "sha256:" + the first 16 hex digits of SHA-256(@tok), as docs/audit.md says */
static char *fingerprint(const char *tok)
{
	unsigned char md[SHA256_DIGEST_LENGTH];
	char hex[17];
	int i;

	SHA256((const unsigned char *)tok, strlen(tok), md);
	for (i = 0; i < 8; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	return h_strf("sha256:%s", hex);
}

static json_t *use_for_path(const char *audit, const char *path)
{
	json_t *r = h_jsonl_wait(audit, "path", path, 3000);

	cr_assert(r, "no audit record with path %s", path);
	cr_assert_str_eq(jstr(r, "event"), "credential.use");
	return r;
}

static void check_use(const json_t *use, const struct ly_app *a, const char *jti,
		      const char *exe, const char *path)
{
	cr_expect_str_eq(jstr(use, "workload"), "app");
	cr_expect_eq((unsigned long long)jint(use, "cgroup"),
		     (unsigned long long)h_cgroup_id(a->cg));
	cr_expect_gt(jint(use, "pid"), 1);
	cr_expect_gt(jint(use, "flow"), 0);
	cr_expect_str_eq(jstr(use, "exe"), exe, "%s: exe", path);
	cr_expect_str_eq(jstr(use, "method"), "GET");
	cr_expect_str_eq(jstr(use, "host"), h_strf("127.0.0.1:%d", a->up_port));
	cr_expect_str_eq(jstr(use, "path"), path);
	cr_expect_str_eq(jstr(use, "route"), h_strf("127.0.0.1:%d", a->up_port));
	cr_expect_str_eq(jstr(use, "audience"), LY_AUD);
	cr_expect_str_eq(jstr(use, "jti"), jti);
}

/* credential.issue and credential.use describe the credential @tok by jti and fingerprint */
static void check_audit(const struct ly_app *a, const char *tok, const char *jti)
{
	char exe[PATH_MAX];
	json_t *issue, *use;

	issue = h_jsonl_find(a->d.audit, "event", "credential.issue");
	cr_assert(issue, "no credential.issue record");
	cr_expect_str_eq(jstr(issue, "jti"), jti);
	cr_expect_str_eq(jstr(issue, "fingerprint"), fingerprint(tok));
	cr_expect_str_eq(jstr(issue, "workload"), "app");
	cr_expect_str_eq(jstr(issue, "audience"), LY_AUD);
	cr_expect_str_eq(jstr(issue, "route"), h_strf("127.0.0.1:%d", a->up_port));
	cr_expect_eq(jint(issue, "exp") - jint(issue, "iat"), 300);
	json_decref(issue);

	use = use_for_path(a->d.audit, "/audit/a"); /* the query string is not audited */
	check_use(use, a, jti, "/usr/bin/curl", "/audit/a");
	json_decref(use);
	use = use_for_path(a->d.audit, "/audit/c");
	cr_assert(realpath(LY_PYTHON, exe));
	check_use(use, a, jti, exe, "/audit/c");
	json_decref(use);
	cr_expect_not(h_file_contains(a->d.audit, "app-data"));
}

static const char *const cli_cmds[] = { "status", "workloads", "routes", "flows", "tokens" };

#define NOUT (2 * 5 + 3)

/* Every operator-facing output, text and JSON, into outs[NOUT] (caller frees). */
static void collect_outputs(const struct ly_daemon *d, const char *jti, char **outs)
{
	json_t *flows;
	int i, n = 0;

	for (i = 0; i < 5; i++) {
		cr_expect_eq(ly_cli(d, &outs[n++], cli_cmds[i], NULL), 0, "lanyard %s",
			     cli_cmds[i]);
		cr_expect_eq(ly_cli(d, &outs[n++], "--json", cli_cmds[i], NULL), 0);
	}
	flows = json_loads(outs[7], 0, NULL);
	cr_expect_eq(json_array_size(json_object_get(flows, "flows")), 1,
		     "the driver's flow is live: %s", outs[7]);
	json_decref(flows);
	cr_expect(strstr(outs[8], jti), "lanyard tokens shows the jti: %s", outs[8]);
	cr_expect(strstr(outs[9], jti), "lanyard --json tokens shows the jti");
	cr_expect_eq(ly_admin_get(d, "/metrics", &outs[n]), 200);
	cr_expect(outs[n] && strstr(outs[n], "lanyard_credential_injected_total 3"),
		  "metrics: %s", outs[n]);
	n++;
	cr_expect_eq(ly_admin_get(d, "/.well-known/jwks.json", &outs[n++]), 200);
	cr_expect_eq(ly_admin_get(d, "/.well-known/openid-configuration", &outs[n++]), 200);
}

Test(security, audits_issue_and_use_and_never_shows_a_credential)
{
	char *outs[NOUT] = { 0 }, *out, *jti;
	struct needles nd = { 0 };
	struct ly_driver dr;
	json_t *req, *claims;
	struct ly_app a;
	const char *tok;
	int i;

	ly_app_start(&a, "5m", NULL);
	cr_assert_eq(ly_curl(a.cg, &out, h_strf("http://127.0.0.1:%d/audit/a?q=app-data",
						 a.up_port),
			     h_strf("http://127.0.0.1:%d/audit/b", a.up_port), NULL),
		     0, "curl: %s", out);
	free(out);
	/* a live flow for `lanyard flows`, from another program */
	ly_driver_start(&dr, "drv", a.cg, "127.0.0.1", a.up_port);
	req = ly_driver_get(&dr, "/audit/c", 5000);
	cr_assert_eq(jint(req, "status"), 200);
	json_decref(req);
	cr_assert_eq(ly_jsonl_wait_count(a.d.audit, "event", "credential.use", 3, 3000), 3);

	req = h_jsonl_wait(a.up_log, "target", "/audit/a?q=app-data", 3000);
	tok = ly_req_token(req, "Authorization", "Bearer ");
	json_decref(req);
	claims = ly_verify(&a.d, tok, LY_AUD);
	cr_assert(claims);
	jti = h_strf("%s", jstr(claims, "jti"));
	json_decref(claims);
	check_audit(&a, tok, jti);
	collect_outputs(&a.d, jti, outs);

	/* stop lanyardd: its logs and the audit are complete */
	cr_expect_eq(h_stop(a.d.pid), 0, "lanyardd exit status");
	cr_assert_gt(collect_tokens(a.up_log, &nd), 0);
	/* positive control: the search finds the credentials where they are expected */
	cr_assert_eq(hits_in_file(&nd, a.up_log, false), nd.n, "the token search is broken");
	cr_expect_eq(hits_in_file(&nd, a.d.audit, true), 0, "a credential is in the audit log");
	cr_expect_eq(hits_in_file(&nd, h_err_path(a.d.name), true), 0, "in lanyardd's stderr");
	cr_expect_eq(hits_in_file(&nd, h_out_path(a.d.name), true), 0, "in lanyardd's stdout");
	cr_expect_eq(h_grep_tree_for(nd.s[0], a.d.state_dir, NULL), 0, "in the state dir");
	for (i = 0; i < NOUT; i++)
		cr_expect_eq(hits_in(&nd, outs[i], outs[i] ? strlen(outs[i]) : 0,
				     i < 10 ? cli_cmds[i / 2] : "the admin endpoint"),
			     0, "output #%d shows a credential", i);
	for (i = 0; i < NOUT; i++)
		free(outs[i]);
}

/* --- least privilege ------------------------------------------------------------------------ */

/* After start-up lanyardd holds net_admin, sys_ptrace and dac_read_search only. */
Test(security, runs_with_three_capabilities_and_no_new_privs)
{
	struct ly_app a;
	char *status, *line;
	unsigned long long eff = ~0ULL, bnd = ~0ULL;
	int nnp = -1;
	const unsigned long long want = (1ULL << 12) | (1ULL << 19) | (1ULL << 2);

	ly_app_start(&a, "5m", NULL);
	status = h_read_file(h_strf("/proc/%d/status", (int)a.d.pid), NULL);
	cr_assert(status, "cannot read lanyardd's status");
	for (line = strtok(status, "\n"); line; line = strtok(NULL, "\n")) {
		sscanf(line, "CapEff: %llx", &eff);
		sscanf(line, "CapBnd: %llx", &bnd);
		sscanf(line, "NoNewPrivs: %d", &nnp);
	}
	cr_expect_eq(eff, want, "CapEff %llx, want %llx", eff, want);
	cr_expect_eq(bnd, want, "CapBnd %llx, want %llx", bnd, want);
	cr_expect_eq(nnp, 1, "no_new_privs not set");
	free(status);
}
