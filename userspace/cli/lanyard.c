// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Copyright (c) 2026 The lanyard authors */
/*
 * lanyard: the operator's CLI.  Sends one JSON request to lanyardd's control
 * socket and prints the answer as a table (or as JSON with --json).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "policy.h"

#define MAX_RESPONSE	(16 * 1024 * 1024)

/* Debian's local trust anchors (update-ca-certificates(8)) */
#define TRUST_DIR	"/usr/local/share/ca-certificates"
#define TRUST_FILE	TRUST_DIR "/lanyard-local-ca.crt"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: lanyard [--socket PATH] [--json] COMMAND\n"
		"\n"
		"commands:\n"
		"  status                    daemon, policy and counters\n"
		"  workloads                 workloads, their cgroups and enrolment\n"
		"  routes                    routes per workload\n"
		"  flows                     live flows (connections being served), with the SNI and\n"
		"                            last request the TLS probes saw\n"
		"  tokens                    current credentials: type, jti, audience, expiry,\n"
		"                            fingerprint, the last error; a static one's age\n"
		"  reload                    re-read the policy file (a bad one is refused)\n"
		"  revoke --workload NAME    refuse the workload's connections and credentials\n"
		"                            until the next reload\n"
		"  revoke --route TO [--workload NAME]\n"
		"                            drop the route's credentials (of every workload, or\n"
		"                            of one); its requests get 403 until the next reload\n"
		"  revoke --jti ID           drop one credential (a jti, or a fingerprint as\n"
		"                            tokens shows it) for good; a fresh one is issued\n"
		"  discover [--since DURATION]\n"
		"                            static credentials that workloads send themselves\n"
		"                            (fingerprints only) and what to do with each; DURATION\n"
		"                            like 90s, 10m, 2h, 1d (default: everything seen)\n"
		"  trust print               the CA certificate of interception leaves (PEM)\n"
		"  trust install             add it to this host's trust store\n"
		"  trust uninstall           remove it from this host's trust store\n"
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

/* A unix time as UTC in strftime's fmt, or "-" for 0 (never). */
static void fmt_utc(long long t, const char *fmt, char *out, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (!t) {
		snprintf(out, len, "-");
		return;
	}
	gmtime_r(&tt, &tm);
	strftime(out, len, fmt, &tm);
}

static void fmt_time(long long t, char *out, size_t len)
{
	fmt_utc(t, "%H:%M:%SZ", out, len);
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

/*
 * A flow's last request as the TLS probes saw it: a string as is, or an object's
 * "method host path"; "-" when lanyardd has none (no probe, or not HTTP).
 */
static void flow_request(json_t *f, char *out, size_t len)
{
	json_t *req = json_object_get(f, "request");

	if (json_is_string(req))
		snprintf(out, len, "%s", json_string_value(req));
	else if (json_is_object(req))
		snprintf(out, len, "%s %s%s", s(req, "method"), s(req, "host"), s(req, "path"));
	else
		snprintf(out, len, "-");
}

static void print_flows(json_t *r)
{
	char req[512];
	size_t n;
	json_t *f;

	printf("%-6s %-16s %-7s %-16s %-28s %-24s %-8s %-32s %s\n", "FLOW", "WORKLOAD", "PID",
	       "COMM", "DST", "SNI", "REQS", "REQUEST", "EXE");
	json_array_foreach(json_object_get(r, "flows"), n, f) {
		flow_request(f, req, sizeof(req));
		printf("%-6lld %-16s %-7lld %-16s %-28s %-24s %-8lld %-32s %s\n", i(f, "flow"),
		       s(f, "workload"), i(f, "pid"), s(f, "comm"), s(f, "dst"), s(f, "sni"),
		       i(f, "requests"), req, s(f, "exe"));
	}
}

static void fmt_datetime(long long t, char *out, size_t len)
{
	fmt_utc(t, "%Y-%m-%dT%H:%M:%SZ", out, len);
}

/* The inventory: one table row per credential, its reason below, then what was not seen. */
static void print_discover(json_t *r)
{
	json_t *secrets = json_object_get(r, "secrets"), *unobs = json_object_get(r, "unobservable");
	char first[32], last[32];
	size_t n;
	json_t *e;

	printf("%-3s %-16s %-24s %-26s %-10s %-20s %-23s %-20s %-20s %-6s %s\n", "#", "WORKLOAD",
	       "EXE", "DESTINATION", "KIND", "HEADER", "FINGERPRINT", "FIRST", "LAST", "REQS",
	       "RECOMMENDATION");
	json_array_foreach(secrets, n, e) {
		fmt_datetime(i(e, "first_seen"), first, sizeof(first));
		fmt_datetime(i(e, "last_seen"), last, sizeof(last));
		printf("%-3zu %-16s %-24s %-26s %-10s %-20s %-23s %-20s %-20s %-6lld %s\n", n + 1,
		       s(e, "workload"), s(e, "exe"), s(e, "destination"), s(e, "kind"),
		       s(e, "header"), s(e, "fingerprint"), first, last, i(e, "requests"),
		       s(e, "recommendation"));
	}
	if (!json_array_size(secrets))
		printf("(no static credential seen)\n");
	if (json_array_size(secrets))
		printf("\nreasons\n");
	json_array_foreach(secrets, n, e)
		printf("  %zu  %s\n", n + 1, s(e, "reason"));
	if (i(r, "dropped"))
		printf("\n%lld credentials not recorded: the inventory is full\n", i(r, "dropped"));
	printf("\nunobservable TLS stacks (their requests are not inspected)\n");
	if (!json_array_size(unobs))
		printf("  (none)\n");
	json_array_foreach(unobs, n, e) {
		fmt_datetime(i(e, "first_seen"), first, sizeof(first));
		printf("  %-16s %-7lld %-32s %-16s %s  %s\n", s(e, "workload"), i(e, "pid"),
		       s(e, "exe"), s(e, "stack"), first, s(e, "reason"));
	}
}

/* "12s", "5m", "3h", "4d": an age or a time left, coarse */
static void fmt_span(long long secs, char *out, size_t len)
{
	if (secs < 120)
		snprintf(out, len, "%llds", secs);
	else if (secs < 7200)
		snprintf(out, len, "%lldm", secs / 60);
	else if (secs < 172800)
		snprintf(out, len, "%lldh", secs / 3600);
	else
		snprintf(out, len, "%lldd", secs / 86400);
}

static void print_token_notes(json_t *t)
{
	json_t *x = json_object_get(t, "x509");
	char age[32];

	if (json_is_true(json_object_get(t, "revoked")))
		printf(" revoked");
	if (json_is_true(json_object_get(t, "fetching")))
		printf(" fetching");
	/* x509 and mtls: the client certificate (serial, not after), never its key */
	if (json_is_object(x))
		printf(" cert serial %s not_after %lld", s(x, "serial"), i(x, "not_after"));
	if (json_object_get(t, "age_s")) {
		fmt_span(i(t, "age_s"), age, sizeof(age));
		printf(" age %s", age);
	}
	if (json_is_true(json_object_get(t, "too_old")))
		printf(" WARNING: older than max_age, rotate it");
	if (json_string_value(json_object_get(t, "error")))
		printf(" last error: %s", s(t, "error"));
}

static void print_tokens(json_t *r)
{
	size_t n;
	json_t *t;

	printf("%-16s %-26s %-14s %-24s %-24s %-10s %-25s %s\n", "WORKLOAD", "ROUTE", "TYPE", "JTI",
	       "AUDIENCE", "EXPIRES", "FINGERPRINT", "ISSUED/USED");
	json_array_foreach(json_object_get(r, "tokens"), n, t) {
		char exp[32] = "never";

		if (i(t, "exp"))
			fmt_time(i(t, "exp"), exp, sizeof(exp));
		if (!strcmp(s(t, "fingerprint"), "-"))
			snprintf(exp, sizeof(exp), "-");	/* nothing issued */
		printf("%-16s %-26s %-14s %-24s %-24s %-10s %-25s %lld/%lld", s(t, "workload"),
		       s(t, "route"), s(t, "type"), s(t, "jti"), s(t, "audience"), exp,
		       s(t, "fingerprint"), i(t, "issued"), i(t, "used"));
		print_token_notes(t);
		printf("\n");
	}
}

/* what the command line asks for; since < 0: none */
struct args {
	const char *sock, *cmd, *workload, *route, *jti, *since;
	long long since_s;
	int as_json;
};

static int build_request(const struct args *a, char **line)
{
	json_t *req = json_pack("{s:s}", "cmd", a->cmd);
	char *js;

	if (a->workload)
		json_object_set_new(req, "workload", json_string(a->workload));
	if (a->route)
		json_object_set_new(req, "route", json_string(a->route));
	if (a->jti)
		json_object_set_new(req, "jti", json_string(a->jti));
	if (a->since_s >= 0)
		json_object_set_new(req, "since", json_integer(a->since_s));
	js = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	if (!js || asprintf(line, "%s\n", js) < 0) {
		free(js);
		return -ENOMEM;
	}
	free(js);
	return 0;
}

static void print_revoke(json_t *r)
{
	if (json_string_value(json_object_get(r, "jti")))
		printf("credential %s revoked", s(r, "jti"));
	else if (json_string_value(json_object_get(r, "route")))
		printf("route %s%s%s revoked", s(r, "route"),
		       json_string_value(json_object_get(r, "workload")) ? " of workload " : "",
		       json_string_value(json_object_get(r, "workload")) ? s(r, "workload") : "");
	else
		printf("workload %s revoked", s(r, "workload"));
	printf(" (%lld credentials dropped)\n", i(r, "credentials"));
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
	else if (!strcmp(cmd, "discover"))
		print_discover(r);
	else if (!strcmp(cmd, "reload"))
		printf("policy reloaded (generation %lld)\n", i(r, "generation"));
	else if (!strcmp(cmd, "revoke"))
		print_revoke(r);
	json_decref(r);
	return ok ? 0 : 1;
}

/* "90", "90s", "10m", "2h", "1d" -> seconds; -1 if malformed or over ten years. */
static long long parse_age(const char *arg)
{
	long long v = 0, unit = 1;
	const char *p = arg;

	if (*p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		v = v * 10 + (*p - '0');
		if (v > 10LL * 366 * 86400)
			return -1;
	}
	if (*p == 's' || *p == 'm' || *p == 'h' || *p == 'd') {
		unit = *p == 's' ? 1 : *p == 'm' ? 60 : *p == 'h' ? 3600 : 86400;
		p++;
	}
	if (*p || v * unit > 10LL * 366 * 86400)
		return -1;
	return v * unit;
}

/* --- trust: the CA in the host's trust store ------------------------------------------ */

/* update-ca-certificates, if this host has Debian's trust store layout; else NULL */
static const char *trust_tool(void)
{
	static const char *const tools[] = { "/usr/sbin/update-ca-certificates",
					     "/usr/bin/update-ca-certificates",
					     "/sbin/update-ca-certificates", NULL };
	struct stat st;

	if (stat(TRUST_DIR, &st) < 0 || !S_ISDIR(st.st_mode))
		return NULL;
	for (int k = 0; tools[k]; k++)
		if (access(tools[k], X_OK) == 0)
			return tools[k];
	return NULL;
}

static void trust_elsewhere(void)
{
	fprintf(stderr,
		"lanyard: this host has no %s with update-ca-certificates.\n"
		"Save the certificate with `lanyard trust print > lanyard-local-ca.crt`, then:\n"
		"  Fedora, RHEL, CentOS:  cp lanyard-local-ca.crt /etc/pki/ca-trust/source/anchors/"
		" && update-ca-trust\n"
		"  Arch (p11-kit):        trust anchor --store lanyard-local-ca.crt\n"
		"  openSUSE:              cp lanyard-local-ca.crt /etc/pki/trust/anchors/"
		" && update-ca-certificates\n"
		"  Alpine:                apk add ca-certificates, then as on Debian\n",
		TRUST_DIR);
}

/*
 * Run update-ca-certificates (no shell), with --fresh when fresh: a plain run
 * rebuilds the bundle but leaves the link of a removed certificate dangling
 * in /etc/ssl/certs.  0 when it exits 0.
 */
static int run_tool(const char *tool, int fresh)
{
	char name[] = "update-ca-certificates", opt[] = "--fresh";
	char *const argv[] = { name, fresh ? opt : NULL, NULL };
	pid_t pid;
	int st = 0;

	fflush(stdout);	/* our lines first, then the tool's */
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		execv(tool, argv);
		_exit(127);
	}
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -EIO;
}

/*
 * The anchor must be what it claims: a self-signed CA certificate.  The
 * control socket is root-only, but a trust store is no place to be trusting.
 */
static X509 *anchor_parse(const char *pem)
{
	BIO *bio = BIO_new_mem_buf(pem, -1);
	X509 *x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;

	BIO_free(bio);
	if (x && (!(X509_get_extension_flags(x) & EXFLAG_SS) || !X509_check_ca(x))) {
		X509_free(x);
		x = NULL;
	}
	return x;
}

static void print_cert_id(const char *what, X509 *x)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	char subject[256];

	X509_NAME_oneline(X509_get_subject_name(x), subject, sizeof(subject));
	printf("%s %s\n  subject %s\n  sha256  ", what, TRUST_FILE, subject);
	X509_digest(x, EVP_sha256(), md, &n);
	for (unsigned int k = 0; k < n; k++)
		printf("%02X%s", md[k], k + 1 < n ? ":" : "\n");
}

/* Write pem to TRUST_FILE, 0644, atomically (temporary file + rename). 0 or -errno. */
static int trust_write(const char *pem)
{
	const char *tmp = TRUST_FILE ".tmp";
	size_t len = strlen(pem);
	int fd, rc = 0;

	unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	if (fchmod(fd, 0644) < 0 || write(fd, pem, len) != (ssize_t)len || fsync(fd) < 0)
		rc = errno ? -errno : -EIO;
	if (close(fd) < 0 && !rc)
		rc = -errno;
	if (!rc && rename(tmp, TRUST_FILE) < 0)
		rc = -errno;
	if (rc)
		unlink(tmp);
	return rc;
}

static int trust_install(json_t *r)
{
	const char *anchor = json_string_value(json_object_get(r, "anchor"));
	const char *tool = trust_tool();
	int rc, replace;
	X509 *x;

	if (!anchor) {
		fprintf(stderr, "lanyard: lanyardd signs with an imported intermediate whose file "
			"holds no root: trust your organisation's root CA on this host (an "
			"intermediate alone is not a trust anchor for TLS clients)\n");
		return 1;
	}
	x = anchor_parse(anchor);
	if (!x) {
		fprintf(stderr, "lanyard: the CA in lanyardd's answer is not a self-signed CA\n");
		return 1;
	}
	if (!tool) {
		X509_free(x);
		trust_elsewhere();
		return 1;
	}
	/*
	 * Replacing a certificate (a regenerated CA) under the same name: a plain
	 * run sees no new link and skips the rehash of /etc/ssl/certs, so CApath
	 * users would keep the old one.  --fresh rebuilds it all.
	 */
	replace = access(TRUST_FILE, F_OK) == 0;
	rc = trust_write(anchor);
	if (rc) {
		fprintf(stderr, "lanyard: %s: %s\n", TRUST_FILE, strerror(-rc));
		X509_free(x);
		return 1;
	}
	print_cert_id("wrote", x);
	X509_free(x);
	rc = run_tool(tool, replace);
	printf("%s %s\n", rc ? "FAILED:" : "ran", tool);
	if (!rc)
		printf("programs that use the system store now trust lanyard's leaves; browsers "
		       "(NSS) and runtimes with their own bundle (certifi, Node) need it added "
		       "there too\n");
	return rc ? 1 : 0;
}

static int trust_uninstall(void)
{
	const char *tool = trust_tool();
	int rc;

	if (unlink(TRUST_FILE) < 0) {
		if (errno != ENOENT) {
			fprintf(stderr, "lanyard: %s: %s\n", TRUST_FILE, strerror(errno));
			return 1;
		}
		printf("not installed: %s does not exist\n", TRUST_FILE);
		return 0;
	}
	printf("removed %s\n", TRUST_FILE);
	if (!tool) {
		fprintf(stderr, "lanyard: no update-ca-certificates: refresh the trust store by "
			"hand\n");
		return 1;
	}
	rc = run_tool(tool, 1);
	printf("%s %s\n", rc ? "FAILED:" : "ran", tool);
	return rc ? 1 : 0;
}

/* lanyard trust print|install|uninstall */
static int trust_main(const char *sock, const char *sub, int as_json)
{
	json_error_t jerr;
	char *answer;
	json_t *r;
	int rc = 1;

	if (!strcmp(sub, "uninstall"))
		return trust_uninstall();	/* works with lanyardd stopped, too */
	answer = request(sock, "{\"cmd\":\"ca\"}\n");
	if (!answer)
		return 1;
	r = json_loads(answer, 0, &jerr);
	if (!r)
		fprintf(stderr, "lanyard: bad answer from lanyardd: %s\n", jerr.text);
	else if (!json_is_true(json_object_get(r, "ok")))
		fprintf(stderr, "lanyard: trust: %s\n", s(r, "error"));
	else if (!strcmp(sub, "print") && as_json)
		rc = fputs(answer, stdout) < 0;
	else if (!strcmp(sub, "print"))
		rc = fputs(s(r, "pem"), stdout) < 0;
	else
		rc = trust_install(r);
	json_decref(r);
	free(answer);
	return rc;
}

static int parse_opts(int argc, char **argv, const char *optstring, struct args *a)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "workload", required_argument, NULL, 'w' },
		{ "route", required_argument, NULL, 'r' },
		{ "jti", required_argument, NULL, 'J' },
		{ "since", required_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int ch;

	while ((ch = getopt_long(argc, argv, optstring, longopts, NULL)) != -1) {
		switch (ch) {
		case 's': a->sock = optarg; break;
		case 'j': a->as_json = 1; break;
		case 'w': a->workload = optarg; break;
		case 'r': a->route = optarg; break;
		case 'J': a->jti = optarg; break;
		case 'S': a->since = optarg; break;
		case 'h': usage(stdout); exit(0);
		default: return -1;
		}
	}
	return 0;
}

/*
 * revoke takes --workload, --route (with or without --workload) or --jti
 * alone; no other command takes them; only discover takes --since.
 */
static int args_valid(const struct args *a)
{
	int revoke = !strcmp(a->cmd, "revoke");

	if (a->since && strcmp(a->cmd, "discover"))
		return 0;
	if (!revoke)
		return !a->workload && !a->route && !a->jti;
	if (a->jti)
		return !a->workload && !a->route;
	return a->workload || a->route;
}

int main(int argc, char **argv)
{
	static const char *const cmds[] = { "status", "workloads", "routes", "flows",
					    "tokens", "reload", "revoke", "trust", "discover",
					    NULL };
	struct args a = { .sock = POLICY_DEFAULT_CONTROL, .since_s = -1 };
	char *line = NULL, *answer;
	int rc, known = 0;

	if (parse_opts(argc, argv, "+s:jw:h", &a) < 0 || optind >= argc) {
		usage(stderr);
		return 2;
	}
	a.cmd = argv[optind++];
	/* options may also follow the command: lanyard revoke --workload NAME */
	if (parse_opts(argc, argv, "s:jw:", &a) < 0) {
		usage(stderr);
		return 2;
	}
	for (int k = 0; cmds[k]; k++)
		known |= !strcmp(cmds[k], a.cmd);
	/* trust takes one sub-command word: print, install or uninstall */
	if (known && !strcmp(a.cmd, "trust")) {
		const char *sub = optind == argc - 1 ? argv[optind] : "";

		if (a.workload || a.route || a.jti || a.since ||
		    (strcmp(sub, "print") && strcmp(sub, "install") && strcmp(sub, "uninstall"))) {
			usage(stderr);
			return 2;
		}
		return trust_main(a.sock, sub, a.as_json);
	}
	if (!known || optind != argc || !args_valid(&a)) {
		usage(stderr);
		return 2;
	}
	if (a.since) {
		long long age = parse_age(a.since);

		if (age < 0) {
			fprintf(stderr, "lanyard: --since %s: expected a duration like 90s, 10m, 2h "
				"or 1d\n", a.since);
			return 2;
		}
		a.since_s = (long long)time(NULL) - age;
		if (a.since_s < 0)
			a.since_s = 0;
	}
	if (build_request(&a, &line) < 0)
		return 1;
	answer = request(a.sock, line);
	free(line);
	if (!answer)
		return 1;
	rc = print_answer(a.cmd, answer, a.as_json);
	free(answer);
	return rc;
}
