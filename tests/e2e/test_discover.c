// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Copyright (c) 2026 The lanyard authors */
/*
 * Discovery end to end: real clients (curl/OpenSSL, python3 ssl, wget/GnuTLS, a statically
 * linked OpenSSL client, a Go client) send their own credentials from an observed cgroup,
 * an enrolled one and an unenrolled one; `lanyard discover` must list exactly the observed
 * ones with the right kind and fingerprint, the unobservable Go stack as such, the injected
 * flows not at all -- and no value may appear in any output of lanyard.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "lib/lanyard.h"
#include "lib/tlsfix.h"

TestSuite(discover, H_FIXTURES, .timeout = 90);

#define MAX_VALUES	32
#define ROW_WAIT_MS	10000
#define JWT_ISS		"https://issuer.discover.test"
#define JWT_LIFETIME	3600

static const char *const local_names[] = { "localhost", "127.0.0.1", "::1", NULL };

/*
 * The world: a TLS upstream "up" (the test CA), a second one "pt" behind a passthrough
 * route, a plain upstream "plain"; cgroups "obs" (workload obs, mode observe), "enr"
 * (workload enr: an intercept jwt route to up, a passthrough route to pt) and "none" (not
 * in the policy).  Every credential value a client sends is remembered for the leak check.
 */
struct world {
	struct ly_daemon d;
	struct tlsfix_ca *ca;
	const char *ca_file, *lanyard_ca;
	const char *obs, *enr, *none;
	int up_port, pt_port, plain_port;
	const char *up_log, *up_raw, *pt_log, *plain_log, *plain_raw;
	const char *values[MAX_VALUES];
	int nvalues;
};

/* --- values, fingerprints, JWTs --------------------------------------------------------- */

static const char *rand_hex(size_t bytes)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char b[32];
	char *s = h_strf("%*s", (int)(bytes * 2), "");

	cr_assert(bytes <= sizeof(b) && RAND_bytes(b, (int)bytes) == 1);
	for (size_t i = 0; i < bytes; i++) {
		s[2 * i] = hex[b[i] >> 4];
		s[2 * i + 1] = hex[b[i] & 0xf];
	}
	return s;
}

/* A new credential value, remembered for expect_no_leak(). */
static const char *secret_value(struct world *w, const char *prefix)
{
	const char *v = h_strf("%s%s", prefix, rand_hex(16));

	cr_assert_lt(w->nvalues, MAX_VALUES);
	w->values[w->nvalues++] = v;
	return v;
}

static void remember(struct world *w, const char *v)
{
	cr_assert_lt(w->nvalues, MAX_VALUES);
	w->values[w->nvalues++] = v;
}

/* The daemon's fingerprint key (state_dir/discover.key), read by world_start(). */
static unsigned char disc_key[32];

static void disc_key_read(const char *state_dir)
{
	const char *path = h_strf("%s/discover.key", state_dir);
	struct stat st;
	FILE *f = fopen(path, "rb");

	cr_assert(f, "no %s", path);
	cr_assert_eq(fstat(fileno(f), &st), 0);
	cr_expect_eq(st.st_mode & 07777, 0600, "discover.key mode %o", st.st_mode & 07777);
	cr_assert_eq(st.st_size, (off_t)sizeof(disc_key));
	cr_assert_eq(fread(disc_key, 1, sizeof(disc_key), f), sizeof(disc_key));
	fclose(f);
}

/* "hmac:" + 16 hex digits of HMAC-SHA256(discover.key, value), computed here. */
static const char *fp_of(const char *value)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	char hex[17];

	cr_assert(HMAC(EVP_sha256(), disc_key, sizeof(disc_key), (const unsigned char *)value,
		       strlen(value), md, &len));
	for (int i = 0; i < 8; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	return h_strf("hmac:%s", hex);
}

static const char *b64(const void *in, size_t len, bool url)
{
	char *out = h_strf("%*s", (int)(4 * ((len + 2) / 3)), "");
	int n = EVP_EncodeBlock((unsigned char *)out, in, (int)len);

	cr_assert_geq(n, 0);
	out[n] = '\0';
	if (url) {
		for (char *p = out; *p; p++)
			*p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
		out[strcspn(out, "=")] = '\0';
	}
	return out;
}

/* An HS256 JWT from iss @iss, valid for @lifetime s from now, signed with a random key. */
static const char *mint_jwt(const char *iss, long lifetime)
{
	const char *hdr = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
	long now = (long)time(NULL);
	const char *claims = h_strf("{\"iss\":\"%s\",\"sub\":\"svc-%s\",\"aud\":\"https://api.test\","
				    "\"iat\":%ld,\"exp\":%ld,\"jti\":\"%s\"}", iss, rand_hex(4),
				    now, now + lifetime, rand_hex(8));
	const char *input = h_strf("%s.%s", b64(hdr, strlen(hdr), true),
				   b64(claims, strlen(claims), true));
	unsigned char key[32], mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;

	cr_assert_eq(RAND_bytes(key, sizeof(key)), 1);
	cr_assert(HMAC(EVP_sha256(), key, sizeof(key), (const unsigned char *)input, strlen(input),
		       mac, &maclen));
	return h_strf("%s.%s", input, b64(mac, maclen, true));
}

/* --- the world ---------------------------------------------------------------------------- */

static void upstreams_start(struct world *w)
{
	char *cert = NULL, *key = NULL;

	w->ca = tlsfix_ca_new("discover test root");
	cr_assert(w->ca);
	cr_assert_eq(tlsfix_server_cert(w->ca, local_names, &cert, &key), 0);
	w->ca_file = tlsfix_ca_cert_path(w->ca);
	w->up_port = h_free_port();
	w->pt_port = h_free_port();
	w->plain_port = h_free_port();
	cr_assert_gt(h_tls_upstream("up", w->up_port, cert, key, NULL), 0, "ly-upstream up");
	cr_assert_gt(h_tls_upstream("pt", w->pt_port, cert, key, NULL), 0, "ly-upstream pt");
	cr_assert_gt(h_upstream("plain", w->plain_port, NULL), 0, "ly-upstream plain");
	w->up_log = h_path("up.jsonl");
	w->up_raw = h_path("up.raw");
	w->pt_log = h_path("pt.jsonl");
	w->plain_log = h_path("plain.jsonl");
	w->plain_raw = h_path("plain.raw");
}

static void world_start(struct world *w)
{
	const char *obs_yaml, *enr_routes;

	memset(w, 0, sizeof(*w));
	h_require_root_bpf();
	upstreams_start(w);
	w->obs = h_cgroup_create("obs");
	w->enr = h_cgroup_create("enr");
	w->none = h_cgroup_create("none");
	cr_assert(w->obs && w->enr && w->none);
	/* observe mode: no routes, nothing redirected, requests inspected */
	obs_yaml = h_strf("  - name: obs\n    match: { cgroup: %s }\n    mode: observe\n", w->obs);
	enr_routes = h_strf("%s        tls: intercept\n        ca_file: %s\n"
			    "      - to: localhost:%d\n        tls: passthrough\n",
			    ly_yaml_route(h_strf("localhost:%d", w->up_port), LY_AUD, "5m", NULL),
			    w->ca_file, w->pt_port);
	ly_start(&w->d, h_strf("%s%s", obs_yaml, ly_yaml_workload("enr", w->enr, enr_routes)));
	cr_assert(ly_wait_enrolled(&w->d, "obs", 5000), "obs not enrolled");
	cr_assert(ly_wait_enrolled(&w->d, "enr", 5000), "enr not enrolled");
	w->lanyard_ca = h_strf("%s/ca.crt", w->d.state_dir);
	disc_key_read(w->d.state_dir);
}

static void world_stop(struct world *w)
{
	tlsfix_ca_free(w->ca);
	w->ca = NULL;
}

static const char *up_url(const struct world *w, const char *path)
{
	return h_strf("https://localhost:%d%s", w->up_port, path);
}

/* --- clients ------------------------------------------------------------------------------ */

/* curl (OpenSSL) over TLS to "up" with one extra header, from @cg; asserts a 200. */
static void curl_tls(const struct world *w, const char *cg, const char *path, const char *header)
{
	char *out = NULL;

	cr_assert_eq(ly_curl(cg, &out, "--cacert", w->ca_file, "-H", header, up_url(w, path),
			     NULL), 0, "curl %s failed", path);
	cr_expect_str_eq(out, "ok\n");
	free(out);
}

static const char py_basic[] =
	"import http.client, ssl, sys\n"
	"ctx = ssl.create_default_context(cafile=sys.argv[1])\n"
	"c = http.client.HTTPSConnection('localhost', int(sys.argv[2]), context=ctx)\n"
	"c.request('GET', '/basic', headers={'Authorization': 'Basic ' + sys.argv[3]})\n"
	"r = c.getresponse()\n"
	"print(r.status, r.read().decode().strip())\n";

/* python3's http.client over ssl with a Basic header from @cg; returns the base64 part. */
static const char *python_basic(struct world *w, const char *cg)
{
	/* only the base64 form is on the wire: that is the value to look for */
	const char *user_pass = h_strf("svc:pw-%s", rand_hex(16));
	const char *b = b64(user_pass, strlen(user_pass), false);
	char *out = NULL;

	remember(w, b);
	cr_assert_eq(h_runl(cg, 15000, &out, LY_PYTHON, "-c", py_basic, w->ca_file,
			    h_strf("%d", w->up_port), b, NULL), 0, "python3 failed");
	cr_expect_str_eq(out, "200 ok\n");
	free(out);
	return b;
}

/* wget (GnuTLS) with Authorization: Bearer @token from @cg; asserts it succeeded. */
static void wget_bearer(const struct world *w, const char *cg, const char *token)
{
	char *out = NULL;

	cr_assert_eq(h_runl(cg, 15000, &out, "wget", "-q", "-O", "-", "--no-proxy",
			    h_strf("--ca-certificate=%s", w->ca_file),
			    h_strf("--header=Authorization: Bearer %s", token),
			    up_url(w, "/jwt"), NULL), 0, "wget failed");
	cr_expect_str_eq(out, "ok\n");
	free(out);
}

/* curl over plain HTTP to "plain" with an X-API-Key from @cg. */
static void curl_plain(const struct world *w, const char *cg, const char *key)
{
	char *out = NULL;

	cr_assert_eq(ly_curl(cg, &out, "-H", h_strf("X-API-Key: %s", key),
			     h_strf("http://127.0.0.1:%d/plain", w->plain_port), NULL), 0,
		     "curl plain failed");
	cr_expect_str_eq(out, "ok\n");
	free(out);
}

/* build/tests/tools/@name (this binary is build/tests/e2e/test_discover), resolved. */
static const char *tool(const char *name)
{
	char exe[PATH_MAX], real[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	char *slash;

	cr_assert_gt(n, 0);
	exe[n] = '\0';
	for (int i = 0; i < 2; i++) {
		slash = strrchr(exe, '/');
		cr_assert(slash);
		*slash = '\0';
	}
	cr_assert(realpath(h_strf("%s/tools/%s", exe, name), real), "%s/tools/%s not built",
		  exe, name);
	return h_strf("%s", real);
}

static const char *realpath_of(const char *path)
{
	char real[PATH_MAX];

	cr_assert(realpath(path, real), "%s", path);
	return h_strf("%s", real);
}

/* --- the inventory ------------------------------------------------------------------------- */

/* `lanyard --json discover [--since @since]`; asserts it answered ok.  New reference. */
static json_t *inventory(const struct world *w, const char *since)
{
	json_error_t jerr;
	char *out = NULL;
	json_t *j;
	int rc;

	if (since)
		rc = ly_cli(&w->d, &out, "--json", "discover", "--since", since, NULL);
	else
		rc = ly_cli(&w->d, &out, "--json", "discover", NULL);
	cr_assert_eq(rc, 0, "lanyard discover: exit %d: %s", rc, out ? out : "");
	j = json_loads(out, 0, &jerr);
	cr_assert(j, "lanyard discover: not JSON: %s", out);
	free(out);
	cr_assert(json_is_true(json_object_get(j, "ok")));
	cr_assert(json_is_array(json_object_get(j, "secrets")));
	cr_assert(json_is_array(json_object_get(j, "unobservable")));
	return j;
}

static const char *str(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static long long num(const json_t *o, const char *key)
{
	return json_integer_value(json_object_get(o, key));
}

/* The secrets row with fingerprint @fp in @inv (borrowed), or NULL. */
static json_t *row_by_fp(json_t *inv, const char *fp)
{
	json_t *row;
	size_t i;

	json_array_foreach(json_object_get(inv, "secrets"), i, row)
		if (str(row, "fingerprint") && !strcmp(str(row, "fingerprint"), fp))
			return row;
	return NULL;
}

/* Poll the inventory until a row has fingerprint @fp (and >= @min_requests): new ref. */
static json_t *wait_row(const struct world *w, const char *fp, long long min_requests)
{
	for (int waited = 0; waited < ROW_WAIT_MS; waited += 100) {
		json_t *inv = inventory(w, NULL), *row = row_by_fp(inv, fp);

		if (row && num(row, "requests") >= min_requests) {
			json_incref(row);
			json_decref(inv);
			return row;
		}
		json_decref(inv);
		usleep(100 * 1000);
	}
	cr_assert_fail("no discover row with %s after %d ms", fp, ROW_WAIT_MS);
	return NULL;
}

/*
 * A request from the observed cgroup, waited for in the inventory.  The kernel hands
 * events over in order, so when it is listed, what other clients wrote before has been
 * accounted too: checking that something is NOT listed is then meaningful.
 */
static void sentinel(struct world *w)
{
	const char *key = secret_value(w, "sentinel-");

	curl_tls(w, w->obs, "/sentinel", h_strf("X-API-Key: %s", key));
	json_decref(wait_row(w, fp_of(key), 1));
}

static void expect_row(const json_t *row, const char *workload, const char *exe, const char *lib,
		       const char *kind, const char *header)
{
	cr_expect_str_eq(str(row, "workload"), workload);
	cr_expect_str_eq(str(row, "exe"), exe);
	cr_expect_str_eq(str(row, "lib"), lib);
	cr_expect_str_eq(str(row, "kind"), kind);
	cr_expect_str_eq(str(row, "header"), header);
	cr_expect_gt(num(row, "pid"), 0);
	cr_expect_gt(num(row, "first_seen"), 0);
	cr_expect_geq(num(row, "last_seen"), num(row, "first_seen"));
	cr_expect(str(row, "reason") && *str(row, "reason"), "a row without a reason");
}

/* --- the leak check ------------------------------------------------------------------------ */

/* Every output of lanyard into <tmp>/leak/: the CLI's discover and flows, text and JSON. */
static const char *collect_outputs(const struct world *w)
{
	static const char *const cmds[][3] = {
		{ "discover", NULL, NULL },	    { "--json", "discover", NULL },
		{ "flows", NULL, NULL },	    { "--json", "flows", NULL },
		{ "discover", "--since", "1h" }, { "status", NULL, NULL },
	};
	const char *dir = h_path("leak");

	mkdir(dir, 0755);
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		char *out = NULL;
		int rc = ly_cli(&w->d, &out, cmds[i][0], cmds[i][1], cmds[i][2], NULL);

		cr_expect_eq(rc, 0, "lanyard %s %s: exit %d", cmds[i][0],
			     cmds[i][1] ? cmds[i][1] : "", rc);
		cr_assert_eq(h_write_file(h_strf("%s/%zu.out", dir, i), out ? out : "", 0644), 0);
		free(out);
	}
	return dir;
}

/*
 * No value any client sent appears in the audit log, lanyardd's stdout/stderr or any CLI
 * output.  @sent_to: a file that did receive them (the upstream's raw log), to prove that
 * the values were really on the wire and that the search finds what is there.
 */
static void expect_no_leak(const struct world *w)
{
	const char *dir = collect_outputs(w);
	const char *out = h_out_path(w->d.name), *err = h_err_path(w->d.name);

	cr_assert_gt(w->nvalues, 0);
	for (int i = 0; i < w->nvalues; i++) {
		const char *v = w->values[i];

		cr_expect_gt(h_grep_tree_for(v, w->up_raw, w->plain_raw, h_path("pt.raw"), NULL),
			     0, "value %d was never sent: the leak check would prove nothing", i);
		cr_expect_eq(h_grep_tree_for(v, w->d.audit, out, err, dir, NULL), 0,
			     "value %d leaked into lanyard's output", i);
	}
}

/* --- tests -------------------------------------------------------------------------------- */

Test(discover, curl_api_key_over_tls_from_an_observed_cgroup)
{
	struct world w;
	const char *key;
	json_t *row, *ev, *req;

	world_start(&w);
	key = secret_value(&w, "lyk_");
	for (int i = 0; i < 3; i++)
		curl_tls(&w, w.obs, "/k", h_strf("X-API-Key: %s", key));
	row = wait_row(&w, fp_of(key), 3);
	expect_row(row, "obs", "/usr/bin/curl", "openssl", "api_key", "x-api-key");
	cr_expect_eq(num(row, "requests"), 3);
	cr_expect_str_eq(str(row, "sni"), "localhost");
	cr_expect_str_eq(str(row, "destination"), h_strf("localhost:%d", w.up_port));
	cr_expect(json_is_null(json_object_get(row, "jwt")));
	cr_expect_str_eq(str(row, "recommendation"), "secrets_management");
	json_decref(row);

	/* observe mode redirects nothing: the upstream got the app's own key, from curl */
	req = h_jsonl_wait(w.up_log, "target", "/k", 5000);
	cr_assert(req);
	cr_expect_str_eq(h_json_header(req, "x-api-key"), key);
	cr_expect_eq(h_json_header_count(req, "authorization"), 0);
	json_decref(req);

	/* first sight audited once, with the fingerprint and never the value */
	cr_expect_eq(h_jsonl_count(w.d.audit, "fingerprint", fp_of(key)), 1);
	ev = h_jsonl_find(w.d.audit, "fingerprint", fp_of(key));
	cr_assert(ev, "no audit event with the fingerprint");
	cr_expect_str_eq(str(ev, "event"), "secret.discovered");
	cr_expect_str_eq(str(ev, "workload"), "obs");
	cr_expect_str_eq(str(ev, "kind"), "api_key");
	cr_expect_str_eq(str(ev, "lib"), "openssl");
	json_decref(ev);
	/* and each request head as flow.tls, not redirected (flow 0), with the SNI */
	ev = h_jsonl_find(w.d.audit, "path", "/k");
	cr_assert(ev, "no flow.tls for /k");
	cr_expect_str_eq(str(ev, "event"), "flow.tls");
	cr_expect_eq(num(ev, "flow"), 0);
	cr_expect_str_eq(str(ev, "sni"), "localhost");
	cr_expect_str_eq(str(ev, "method"), "GET");
	json_decref(ev);
	expect_no_leak(&w);
	world_stop(&w);
}

Test(discover, python_basic_and_gnutls_bearer_jwt)
{
	const char *basic, *jwt;
	struct world w;
	json_t *row, *j;

	world_start(&w);
	basic = python_basic(&w, w.obs);
	jwt = mint_jwt(JWT_ISS, JWT_LIFETIME);
	remember(&w, jwt);
	/* the signature alone is a value too */
	remember(&w, strrchr(jwt, '.') + 1);
	wget_bearer(&w, w.obs, jwt);

	row = wait_row(&w, fp_of(basic), 1);
	expect_row(row, "obs", realpath_of(LY_PYTHON), "openssl", "basic", "authorization");
	cr_expect_str_eq(str(row, "recommendation"), "secrets_management");
	cr_expect_str_eq(str(row, "sni"), "localhost");
	json_decref(row);

	row = wait_row(&w, fp_of(jwt), 1);
	expect_row(row, "obs", "/usr/bin/wget", "gnutls", "bearer_jwt", "authorization");
	j = json_object_get(row, "jwt");
	cr_assert(json_is_object(j), "bearer_jwt row without jwt");
	cr_expect_str_eq(str(j, "iss"), JWT_ISS);
	cr_expect_eq(num(j, "lifetime_s"), JWT_LIFETIME);
	cr_expect_str_eq(str(row, "recommendation"), "secretless");
	cr_expect_str_eq(str(row, "sni"), "localhost");
	json_decref(row);
	expect_no_leak(&w);
	world_stop(&w);
}

Test(discover, plain_http_api_key)
{
	struct world w;
	const char *key;
	json_t *row;

	world_start(&w);
	key = secret_value(&w, "plain-");
	curl_plain(&w, w.obs, key);
	row = wait_row(&w, fp_of(key), 1);
	expect_row(row, "obs", "/usr/bin/curl", "plain", "api_key", "x-api-key");
	cr_expect(strstr(str(row, "destination"), h_strf(":%d", w.plain_port)), "destination %s",
		  str(row, "destination"));
	json_decref(row);
	expect_no_leak(&w);
	world_stop(&w);
}

Test(discover, unenrolled_cgroup_reports_nothing)
{
	const char *fps[4], *jwt;
	struct world w;
	json_t *inv, *row;
	size_t i;

	world_start(&w);
	fps[0] = fp_of(secret_value(&w, "none-"));
	curl_tls(&w, w.none, "/none", h_strf("X-API-Key: %s", w.values[w.nvalues - 1]));
	fps[1] = fp_of(python_basic(&w, w.none));
	jwt = mint_jwt(JWT_ISS, JWT_LIFETIME);
	remember(&w, jwt);
	fps[2] = fp_of(jwt);
	wget_bearer(&w, w.none, jwt);
	fps[3] = fp_of(secret_value(&w, "none-plain-"));
	curl_plain(&w, w.none, w.values[w.nvalues - 1]);
	/* all four reached their upstream */
	cr_expect_eq(h_jsonl_count(w.up_log, "target", "/none"), 1);
	cr_expect_eq(h_jsonl_count(w.up_log, "target", "/basic"), 1);
	cr_expect_eq(h_jsonl_count(w.up_log, "target", "/jwt"), 1);
	cr_expect_eq(h_jsonl_count(w.plain_log, "target", "/plain"), 1);

	sentinel(&w);
	inv = inventory(&w, NULL);
	for (i = 0; i < 4; i++)
		cr_expect_null(row_by_fp(inv, fps[i]), "an unenrolled client was reported (%zu)", i);
	json_array_foreach(json_object_get(inv, "secrets"), i, row)
		cr_expect_str_eq(str(row, "workload"), "obs");
	cr_expect_eq(json_array_size(json_object_get(inv, "secrets")), 1);
	json_decref(inv);
	cr_expect_eq(h_jsonl_count(w.d.audit, "event", "secret.discovered"), 1);
	expect_no_leak(&w);
	world_stop(&w);
}

Test(discover, injected_header_is_skipped_and_the_apps_own_key_reported)
{
	json_t *req, *claims, *inv, *row, *ev;
	const char *token, *own, *app_bearer, *bot, *target;
	struct world w;
	char *out = NULL;
	size_t i;

	world_start(&w);
	/*
	 * enrolled, intercept route: lanyardd overwrites Authorization with its JWT, so the
	 * app's bearer there is not reported; its own X-Api-Key is a static secret it holds.
	 * The path carries a Telegram-style bot token: redacted in flow.tls and flows.
	 */
	own = secret_value(&w, "own_");
	/* not remembered: lanyardd drops it, so it never reaches the upstream's raw log */
	app_bearer = h_strf("appbearer_%s", rand_hex(16));
	bot = secret_value(&w, "bot12345:AAH");
	target = h_strf("/inj/%s/send", bot);
	cr_assert_eq(ly_curl(w.enr, &out, "--cacert", w.lanyard_ca, "-H",
			     h_strf("X-Api-Key: %s", own), "-H",
			     h_strf("Authorization: Bearer %s", app_bearer), up_url(&w, target),
			     NULL), 0, "curl /inj failed");
	cr_expect_str_eq(out, "ok\n");
	free(out);
	req = h_jsonl_wait(w.up_log, "target", target, 5000);
	cr_assert(req, "the upstream never got /inj");
	token = ly_req_token(req, "Authorization", "Bearer ");
	cr_assert(token, "no injected JWT upstream");
	claims = ly_verify(&w.d, token, LY_AUD);
	cr_assert(claims, "the injected JWT did not verify");
	cr_expect_str_eq(str(claims, "sub"), LY_SUB("enr"));
	json_decref(claims);
	remember(&w, token);
	json_decref(req);

	row = wait_row(&w, fp_of(own), 1);
	expect_row(row, "enr", "/usr/bin/curl", "openssl", "api_key", "x-api-key");
	json_decref(row);
	sentinel(&w);
	inv = inventory(&w, NULL);
	cr_expect_null(row_by_fp(inv, fp_of(token)), "lanyard's own JWT was reported");
	cr_expect_null(row_by_fp(inv, fp_of(app_bearer)), "the overwritten header was reported");
	cr_expect_eq(h_grep_tree_for(app_bearer, w.d.audit, NULL), 0, "the app's bearer leaked");
	json_array_foreach(json_object_get(inv, "secrets"), i, row)
		cr_expect(strcmp(str(row, "workload"), "enr") ||
			  !strcmp(str(row, "header"), "x-api-key"),
			  "an injected header was reported: %s", str(row, "header"));
	json_decref(inv);
	/* the app's request was seen all the same, and joined to its redirected flow */
	ev = h_jsonl_find(w.d.audit, "path", "/inj/*/send");
	cr_assert(ev, "no flow.tls for /inj");
	cr_expect_str_eq(str(ev, "event"), "flow.tls");
	cr_expect_str_eq(str(ev, "workload"), "enr");
	cr_expect_gt(num(ev, "flow"), 0);
	cr_expect_str_eq(str(ev, "dst"), h_strf("localhost:%d", w.up_port));
	cr_expect_str_eq(str(ev, "sni"), "localhost");
	json_decref(ev);
	expect_no_leak(&w);
	world_stop(&w);
}

Test(discover, passthrough_flow_is_tagged_and_its_static_key_reported)
{
	struct world w;
	const char *key;
	json_t *ev, *row;
	char *out = NULL;

	world_start(&w);
	key = secret_value(&w, "pt-");
	/* passthrough: the app's own TLS to the real upstream, relayed byte for byte */
	cr_assert_eq(ly_curl(w.enr, &out, "--cacert", w.ca_file, "-H",
			     h_strf("X-API-Key: %s", key),
			     h_strf("https://localhost:%d/pt", w.pt_port), NULL), 0,
		     "curl /pt failed");
	cr_expect_str_eq(out, "ok\n");
	free(out);
	cr_assert(h_jsonl_wait(w.pt_log, "target", "/pt", 5000), "the upstream never got /pt");

	ev = h_jsonl_wait(w.d.audit, "path", "/pt", 5000);
	cr_assert(ev, "no flow.tls for /pt");
	cr_expect_str_eq(str(ev, "event"), "flow.tls");
	cr_expect_str_eq(str(ev, "workload"), "enr");
	cr_expect_gt(num(ev, "flow"), 0, "the passthrough request was not joined to its flow");
	/* the destination the app dialled, not lanyardd's listener it was redirected to */
	cr_expect_str_eq(str(ev, "dst"), h_strf("localhost:%d", w.pt_port));
	cr_expect_str_eq(str(ev, "sni"), "localhost");
	cr_expect_str_eq(str(ev, "lib"), "openssl");
	json_decref(ev);
	/* lanyardd adds nothing on passthrough: the key is the app's own static secret */
	row = wait_row(&w, fp_of(key), 1);
	expect_row(row, "enr", "/usr/bin/curl", "openssl", "api_key", "x-api-key");
	cr_expect_str_eq(str(row, "destination"), h_strf("localhost:%d", w.pt_port));
	json_decref(row);
	expect_no_leak(&w);
	world_stop(&w);
}

Test(discover, static_openssl_client_is_covered)
{
	const char *exe = tool("ly-static-tls"), *key;
	struct world w;
	json_t *row;
	char *maps;
	pid_t pid;

	world_start(&w);
	key = secret_value(&w, "static-");
	/* new connections for 15 s: the uprobes on its own executable come after its exec */
	pid = h_spawnl("static", w.obs, exe, "--connect", h_strf("localhost:%d", w.up_port),
		       "--sni", "localhost", "--cafile", w.ca_file, "--path", "/static",
		       "--header", h_strf("X-API-Key: %s", key), "--count", "60",
		       "--interval-ms", "250", NULL);
	cr_assert_gt(pid, 0);
	cr_assert_eq(h_wait_output(pid, "HTTP/1.1 200", 5000), 0, "ly-static-tls got no answer");
	maps = h_read_file(h_strf("/proc/%d/maps", pid), NULL);
	cr_assert(maps, "ly-static-tls exited early");
	cr_assert_null(strstr(maps, "libssl.so"), "ly-static-tls maps a shared libssl");
	free(maps);

	/*
	 * 3 requests: the first connection may have set its SNI before the uprobes on the
	 * executable were in place (they come after its exec); the row keeps the latest SNI.
	 */
	row = wait_row(&w, fp_of(key), 3);
	expect_row(row, "obs", exe, "openssl", "api_key", "x-api-key");
	cr_expect_eq(num(row, "pid"), pid);
	cr_expect_str_eq(str(row, "sni"), "localhost");
	json_decref(row);
	h_stop(pid);
	expect_no_leak(&w);
	world_stop(&w);
}

/* The unobservable entry of process @pid (with @stack, unless NULL), waited for; NULL.
 * New reference. */
static json_t *wait_unobservable(const struct world *w, pid_t pid, const char *stack)
{
	for (int waited = 0; waited < ROW_WAIT_MS; waited += 100) {
		json_t *inv = inventory(w, NULL), *u;
		size_t i;

		json_array_foreach(json_object_get(inv, "unobservable"), i, u) {
			if (num(u, "pid") == pid && (!stack || !strcmp(str(u, "stack"), stack))) {
				json_incref(u);
				json_decref(inv);
				return u;
			}
		}
		json_decref(inv);
		usleep(100 * 1000);
	}
	return NULL;
}

Test(discover, go_client_is_listed_unobservable)
{
	const char *exe = tool("ly-go-tls"), *key, *go_fp, *wait_file = h_path("go.go");
	json_t *inv, *found;
	struct world w;
	pid_t pid;

	world_start(&w);
	key = secret_value(&w, "go-");
	go_fp = fp_of(key);
	pid = h_spawnl("go", w.obs, exe, "-url", up_url(&w, "/go"), "-cafile", w.ca_file,
		       "-header", h_strf("X-API-Key: %s", key), "-wait-file", wait_file, NULL);
	cr_assert_gt(pid, 0);
	cr_assert_eq(h_wait_output(pid, "ready", 10000), 0, "ly-go-tls did not start");
	found = wait_unobservable(&w, pid, NULL);
	cr_assert(found, "the Go client is not listed as unobservable");
	cr_expect_str_eq(str(found, "workload"), "obs");
	cr_expect_str_eq(str(found, "exe"), exe);
	cr_expect_str_eq(str(found, "stack"), "go crypto/tls");
	cr_expect(str(found, "reason") && *str(found, "reason"));
	cr_expect_gt(num(found, "first_seen"), 0);
	json_decref(found);
	cr_expect_eq(h_jsonl_count(w.d.audit, "event", "tls.unobservable"), 1);

	/* now it sends: the request is real, and invisible to the probes */
	cr_assert_eq(h_write_file(wait_file, "", 0644), 0);
	cr_assert_eq(h_wait_exit(pid, 15000), 0, "ly-go-tls failed");
	cr_assert(h_jsonl_wait(w.up_log, "target", "/go", 5000), "the upstream never got /go");
	sentinel(&w);
	inv = inventory(&w, NULL);
	cr_expect_null(row_by_fp(inv, go_fp), "a Go crypto/tls request was seen?");
	json_decref(inv);
	expect_no_leak(&w);
	world_stop(&w);
}

/*
 * Plain HTTP sent another way than a write-family syscall: the send hook cannot read the
 * bytes of an io_uring send (inline, or on an io-wq worker) nor of a sendmmsg, so the
 * process is listed as unobservable instead of being silently missed.  The same tool with
 * write() is read as usual (the control).
 */
Test(discover, plain_http_sent_through_io_uring_or_sendmmsg_is_listed_unobservable)
{
	static const struct { const char *way, *stack; } ways[] = {
		{ "uring", "io_uring" }, { "uring-async", "io_uring" }, { "sendmmsg", "sendmmsg" },
	};
	const char *exe = tool("ly-send-ways"), *key;
	struct world w;
	json_t *row;
	char *out;
	pid_t pid;

	world_start(&w);
	key = secret_value(&w, "ways-write-");
	cr_assert_eq(h_runl(w.obs, 10000, &out, exe, "write", h_strf("%d", w.plain_port),
			    "/ways-write", h_strf("X-API-Key: %s", key), NULL), 0, "%s", out);
	free(out);
	row = wait_row(&w, fp_of(key), 1);
	/* the path, or the comm of a process gone before lanyardd read its exe */
	cr_expect(strstr(str(row, "exe"), "ly-send-ways"), "exe %s", str(row, "exe"));
	cr_expect_str_eq(str(row, "lib"), "plain");
	cr_expect_str_eq(str(row, "kind"), "api_key");
	json_decref(row);

	for (size_t i = 0; i < sizeof(ways) / sizeof(ways[0]); i++) {
		const char *path = h_strf("/ways-%s", ways[i].way);
		json_t *u, *inv;

		key = secret_value(&w, h_strf("ways-%s-", ways[i].way));
		pid = h_spawnl(ways[i].way, w.obs, exe, ways[i].way, h_strf("%d", w.plain_port),
			       path, h_strf("X-API-Key: %s", key), NULL);
		cr_assert_gt(pid, 0);
		cr_assert_eq(h_wait_exit(pid, 10000), 0, "ly-send-ways %s failed", ways[i].way);
		cr_assert(h_jsonl_wait(w.plain_log, "target", path, 5000), "%s never arrived", path);
		u = wait_unobservable(&w, pid, ways[i].stack);
		cr_assert(u, "%s: the process is not listed as unobservable", ways[i].way);
		cr_expect_str_eq(str(u, "workload"), "obs");
		cr_expect(strstr(str(u, "exe"), "ly-send-ways"), "exe %s", str(u, "exe"));
		cr_expect(str(u, "reason") && *str(u, "reason"));
		json_decref(u);
		sentinel(&w);
		inv = inventory(&w, NULL);
		cr_expect_null(row_by_fp(inv, fp_of(key)), "%s: its key was read?", ways[i].way);
		json_decref(inv);
	}
	cr_expect_geq(ly_kernel_stat(&w.d, "send_unseen"), 3);
	cr_expect_eq(h_jsonl_count(w.d.audit, "stack", "io_uring"), 1, "io_uring audited twice");
	cr_expect_eq(h_jsonl_count(w.d.audit, "stack", "sendmmsg"), 1);
	expect_no_leak(&w);
	world_stop(&w);
}

Test(discover, since_filters_rows_and_audits_first_sight_once)
{
	const char *old_key, *new_key;
	struct world w;
	json_t *inv, *row;

	world_start(&w);
	old_key = secret_value(&w, "old-");
	curl_tls(&w, w.obs, "/old", h_strf("X-API-Key: %s", old_key));
	curl_tls(&w, w.obs, "/old", h_strf("X-API-Key: %s", old_key));
	json_decref(wait_row(&w, fp_of(old_key), 2));
	sleep(3);
	new_key = secret_value(&w, "new-");
	curl_tls(&w, w.obs, "/new", h_strf("X-API-Key: %s", new_key));
	json_decref(wait_row(&w, fp_of(new_key), 1));

	inv = inventory(&w, "2s");
	cr_expect_gt(num(inv, "since"), 0);
	cr_expect_leq(num(inv, "since"), (long long)time(NULL) - 2);
	cr_expect_not_null(row_by_fp(inv, fp_of(new_key)), "--since 2s lost the new row");
	cr_expect_null(row_by_fp(inv, fp_of(old_key)), "--since 2s kept a row last seen 3 s ago");
	json_decref(inv);
	inv = inventory(&w, NULL);
	cr_expect_eq(num(inv, "since"), 0);
	row = row_by_fp(inv, fp_of(old_key));
	cr_expect_not_null(row, "without --since the old row is listed");
	if (row)
		cr_expect_eq(num(row, "requests"), 2);
	cr_expect_not_null(row_by_fp(inv, fp_of(new_key)));
	json_decref(inv);
	/* the old row seen again is back in the window */
	curl_tls(&w, w.obs, "/old", h_strf("X-API-Key: %s", old_key));
	json_decref(wait_row(&w, fp_of(old_key), 3));
	inv = inventory(&w, "2s");
	cr_expect_not_null(row_by_fp(inv, fp_of(old_key)));
	json_decref(inv);
	/* secret.discovered: first sight only, with no value in it */
	cr_expect_eq(h_jsonl_count(w.d.audit, "fingerprint", fp_of(old_key)), 1);
	cr_expect_eq(h_jsonl_count(w.d.audit, "fingerprint", fp_of(new_key)), 1);
	cr_expect_eq(h_jsonl_count(w.d.audit, "event", "secret.discovered"), 2);
	expect_no_leak(&w);
	world_stop(&w);
}

/* Every client at once, each value searched for in everything lanyard wrote or printed. */
Test(discover, no_value_leaks_anywhere)
{
	const char *jwt, *key;
	struct world w;
	char *out = NULL;

	world_start(&w);
	key = secret_value(&w, "all-");
	curl_tls(&w, w.obs, "/all", h_strf("X-API-Key: %s", key));
	curl_tls(&w, w.obs, "/all-bearer", h_strf("Authorization: Bearer %s",
						   secret_value(&w, "opaque-")));
	python_basic(&w, w.obs);
	jwt = mint_jwt(JWT_ISS, 600);
	remember(&w, jwt);
	wget_bearer(&w, w.obs, jwt);
	curl_plain(&w, w.obs, secret_value(&w, "all-plain-"));
	curl_tls(&w, w.none, "/none", h_strf("X-API-Key: %s", secret_value(&w, "all-none-")));
	cr_assert_eq(ly_curl(w.enr, &out, "--cacert", w.lanyard_ca, "-H",
			     h_strf("X-API-Key: %s", secret_value(&w, "all-enr-")),
			     up_url(&w, "/all-enr"), NULL), 0, "curl /all-enr failed");
	free(out);
	json_decref(wait_row(&w, fp_of(jwt), 1));
	json_decref(wait_row(&w, fp_of(key), 1));
	sentinel(&w);
	expect_no_leak(&w);
	world_stop(&w);
}
