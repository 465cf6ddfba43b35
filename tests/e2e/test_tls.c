// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Copyright (c) 2026 The lanyard authors */
/*
 * lanyardd end to end with TLS routes: interception (curl, python3 ssl, wget and gnutls-cli
 * through the local CA), origination, passthrough (SNI checks, the splice relay: big bodies,
 * backpressure, half-closes, no descriptors), x509 client certificates, upstreams that
 * cannot prove their name, and bad TLS input.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include "lib/lanyard.h"
#include "lib/tlsfix.h"

TestSuite(tls, H_FIXTURES, .timeout = 60);

static const char *const local_names[] = { "localhost", "127.0.0.1", "::1", NULL };

enum cert_kind { CERT_GOOD, CERT_EXPIRED, CERT_SELF_SIGNED, CERT_WRONG_NAME };

/*
 * The world of these tests: ly-upstream speaking TLS with a certificate from a test CA
 * (the route's ca_file), cgroup "app", and lanyardd with one TLS route for it.
 */
struct world {
	struct ly_daemon d;
	struct tlsfix_ca *ca;	/* the upstream's CA */
	const char *cg;
	int up_port;		/* the TLS upstream */
	int app_port;		/* what the app dials: up_port, or a plain port (originate) */
	const char *up_log, *up_raw, *lanyard_ca;
};

/* --- helpers ------------------------------------------------------------------------------ */

/*
 * Start ly-upstream "up" in TLS mode with a certificate of @kind, answering @body (NULL:
 * "ok\n"); sets w->ca, w->up_port.
 */
static void upstream_start_body(struct world *w, enum cert_kind kind, const char *body)
{
	char *cert = NULL, *key = NULL;
	int rc = -1;

	w->ca = tlsfix_ca_new("upstream test root");
	cr_assert(w->ca);
	switch (kind) {
	case CERT_GOOD:
		rc = tlsfix_server_cert(w->ca, local_names, &cert, &key);
		break;
	case CERT_EXPIRED:
		rc = tlsfix_expired_cert(w->ca, local_names, &cert, &key);
		break;
	case CERT_SELF_SIGNED:
		rc = tlsfix_self_signed(local_names, &cert, &key);
		break;
	case CERT_WRONG_NAME:
		rc = tlsfix_wrong_name_cert(w->ca, &cert, &key);
		break;
	}
	cr_assert_eq(rc, 0, "certificate fixture");
	w->up_port = h_free_port();
	if (body) {
		const char *extra[] = { "--tls-cert", cert, "--tls-key", key, "--body", body,
					NULL };

		cr_assert_gt(h_upstream_args("up", w->up_port, extra), 0, "ly-upstream");
	} else {
		cr_assert_gt(h_tls_upstream("up", w->up_port, cert, key, NULL), 0, "ly-upstream");
	}
	w->up_log = h_path("up.jsonl");
	w->up_raw = h_path("up.raw");
}

static void upstream_start(struct world *w, enum cert_kind kind)
{
	upstream_start_body(w, kind, NULL);
}

/* A route with tls: @mode and @extra keys (8-space indented lines, may be ""). */
static char *tls_route(const char *to, const char *mode, const char *ca_file, const char *extra)
{
	return h_strf("%s        tls: %s\n        ca_file: %s\n%s",
		      ly_yaml_route(to, LY_AUD, "5m", NULL), mode, ca_file, extra);
}

/*
 * Upstream with a @kind certificate; route localhost:<port> with tls: @mode (originate: the
 * app dials a plain port, upstream: { port } names the TLS one) and the test CA as ca_file.
 */
static void world_start(struct world *w, const char *mode, enum cert_kind kind)
{
	char *extra = "";

	memset(w, 0, sizeof(*w));
	h_require_root_bpf();
	upstream_start(w, kind);
	w->app_port = w->up_port;
	if (!strcmp(mode, "originate")) {
		w->app_port = h_free_port();
		extra = h_strf("        upstream: { port: %d }\n", w->up_port);
	}
	w->cg = h_cgroup_create("app");
	cr_assert(w->cg);
	ly_start(&w->d, ly_yaml_workload("app", w->cg,
					 tls_route(h_strf("localhost:%d", w->app_port), mode,
						   tlsfix_ca_cert_path(w->ca), extra)));
	w->lanyard_ca = h_strf("%s/ca.crt", w->d.state_dir);
}

static const char *https(const struct world *w, const char *path)
{
	return h_strf("https://localhost:%d%s", w->app_port, path);
}

/* The upstream's record of @target with a credential that verifies; asserts.  New ref. */
static json_t *verified_request(const struct world *w, const char *target, json_t **claims)
{
	json_t *req = h_jsonl_wait(w->up_log, "target", target, 5000);
	const char *tok;

	cr_assert(req, "the upstream never received %s", target);
	tok = ly_req_token(req, "Authorization", "Bearer ");
	cr_assert(tok, "%s: no single Authorization: Bearer upstream", target);
	*claims = ly_verify(&w->d, tok, LY_AUD);
	cr_assert(*claims, "%s: the credential did not verify", target);
	cr_expect_str_eq(json_string_value(json_object_get(*claims, "sub")), LY_SUB("app"));
	return req;
}

static const char *tls_member(const json_t *req, const char *name)
{
	return json_string_value(json_object_get(json_object_get(req, "tls"), name));
}

/* Wait for a flow.deny whose reason contains @needle; asserts.  New reference. */
static json_t *wait_deny(const struct world *w, const char *needle)
{
	for (int i = 0; i < 100; i++) {
		json_t *all = ly_jsonl_all(w->d.audit, "event", "flow.deny"), *ev;
		size_t k;

		json_array_foreach(all, k, ev) {
			const char *r = json_string_value(json_object_get(ev, "reason"));

			if (r && strstr(r, needle)) {
				json_incref(ev);
				json_decref(all);
				return ev;
			}
		}
		json_decref(all);
		usleep(50 * 1000);
	}
	cr_assert_fail("no flow.deny with \"%s\" in %s", needle, w->d.audit);
	return NULL;
}

/* Nothing at all reached the upstream's HTTP layer. */
static void expect_upstream_got_nothing(const struct world *w)
{
	cr_expect_eq(h_file_size(w->up_raw), 0, "the upstream received request bytes");
	cr_expect_eq(h_jsonl_count(w->up_log, NULL, NULL), 0, "the upstream logged a request");
	cr_expect_eq(h_jsonl_count(w->d.audit, "event", "credential.use"), 0,
		     "a credential was used");
}

/* --- interception ------------------------------------------------------------------------ */

Test(tls, intercept_gives_curl_a_local_ca_leaf_and_the_upstream_a_verified_jwt)
{
	json_t *req, *claims;
	struct world w;
	char *out;

	world_start(&w, "intercept", CERT_GOOD);
	/* -i: the response head too, to show the credential never comes back */
	cr_assert_eq(ly_curl(w.cg, &out, "-i", "--cacert", w.lanyard_ca, https(&w, "/hello"),
			     NULL), 0, "curl: %s", out);
	cr_expect(strstr(out, "\r\n\r\nok\n"), "curl got: %s", out);
	req = verified_request(&w, "/hello", &claims);
	cr_expect(!strstr(out, ly_req_token(req, "Authorization", "Bearer ")),
		  "the app saw its credential");
	/* lanyardd's own TLS upstream: SNI = the route's host, ALPN http/1.1 */
	cr_expect_str_eq(tls_member(req, "sni"), "localhost");
	cr_expect_str_eq(tls_member(req, "alpn"), "http/1.1");
	cr_expect_str_eq(h_json_header(req, "host"), h_strf("localhost:%d", w.app_port));
	free(out);
	json_decref(claims);
	json_decref(req);

	/* TLS 1.2 without ALPN is served as well (HTTP/1.1 is then assumed) */
	cr_assert_eq(ly_curl(w.cg, &out, "--tls-max", "1.2", "--no-alpn", "--cacert",
			     w.lanyard_ca, https(&w, "/v12"), NULL), 0, "curl: %s", out);
	cr_expect_str_eq(out, "ok\n");
	free(out);
	req = verified_request(&w, "/v12", &claims);
	json_decref(claims);
	json_decref(req);
	tlsfix_ca_free(w.ca);
}

/* The bodies of the big-transfer tests: @up (written to <tmp>/big.bin) and @down. */
static void big_bodies(char *up, size_t up_size, char *down, size_t down_size)
{
	cr_assert(up && down);
	for (size_t i = 0; i < up_size; i++)
		up[i] = (char)('a' + (i * 7919 + i / 4096) % 26);
	up[up_size] = '\0';
	for (size_t i = 0; i < down_size; i++)
		down[i] = (char)('A' + (i * 31) % 26);
	down[down_size] = '\0';
	cr_assert_eq(h_write_file(h_path("big.bin"), up, 0600), 0);
}

/* Bodies larger than every buffer on the way, both ways, through two TLS hops. */
Test(tls, intercept_streams_big_bodies_both_ways)
{
	size_t up_size = 3 * 1024 * 1024, down_size = 120 * 1000;
	char *data = malloc(up_size + 1), *down = malloc(down_size + 1), *out;
	json_t *req, *claims;
	struct world w;

	big_bodies(data, up_size, down, down_size);
	memset(&w, 0, sizeof(w));
	h_require_root_bpf();
	upstream_start_body(&w, CERT_GOOD, down);
	w.app_port = w.up_port;
	w.cg = h_cgroup_create("app");
	ly_start(&w.d, ly_yaml_workload("app", w.cg,
					tls_route(h_strf("localhost:%d", w.up_port), "intercept",
						  tlsfix_ca_cert_path(w.ca), "")));
	w.lanyard_ca = h_strf("%s/ca.crt", w.d.state_dir);
	cr_assert_eq(ly_curl(w.cg, &out, "--cacert", w.lanyard_ca, "--data-binary",
			     h_strf("@%s", h_path("big.bin")), "-H", "Expect:",
			     https(&w, "/big"), NULL), 0, "curl failed");
	cr_expect_eq(strlen(out), down_size, "response of %zu bytes", strlen(out));
	cr_expect(!strcmp(out, down), "the response was altered");
	req = verified_request(&w, "/big", &claims);
	cr_expect_eq(json_integer_value(json_object_get(req, "body_len")), (json_int_t)up_size);
	json_decref(claims);
	json_decref(req);
	free(out);
	free(data);
	free(down);
	tlsfix_ca_free(w.ca);
}

/* python3's ssl module (OpenSSL, its own defaults) and wget (GnuTLS) through interception */
static const char py_client[] =
	"import http.client, ssl, sys\n"
	"ctx = ssl.create_default_context(cafile=sys.argv[1])\n"
	"c = http.client.HTTPSConnection('localhost', int(sys.argv[2]), context=ctx)\n"
	"c.request('GET', '/py')\n"
	"r = c.getresponse()\n"
	"print(r.status, r.read().decode().strip())\n";

Test(tls, intercept_serves_python_ssl_and_gnutls_wget)
{
	json_t *req, *claims;
	struct world w;
	char *out;

	world_start(&w, "intercept", CERT_GOOD);
	cr_assert_eq(h_runl(w.cg, 15000, &out, LY_PYTHON, "-c", py_client, w.lanyard_ca,
			    h_strf("%d", w.app_port), NULL), 0, "python3: %s", out);
	cr_expect_str_eq(out, "200 ok\n");
	free(out);
	req = verified_request(&w, "/py", &claims);
	json_decref(claims);
	json_decref(req);

	cr_assert_eq(h_runl(w.cg, 15000, &out, "wget", "-q", "-O", "-", "--no-proxy",
			    h_strf("--ca-certificate=%s", w.lanyard_ca), https(&w, "/wget"), NULL),
		     0, "wget: %s", out);
	cr_expect_str_eq(out, "ok\n");
	free(out);
	req = verified_request(&w, "/wget", &claims);
	json_decref(claims);
	json_decref(req);
	tlsfix_ca_free(w.ca);
}

/*
 * gnutls-cli, GnuTLS's own client (its defaults, no ALPN): it must verify lanyard's leaf
 * against the local CA alone (it exits 1 when it cannot), and its request gets a credential.
 */
Test(tls, intercept_serves_gnutls_cli)
{
	static const char script[] =
		"printf 'GET /gnutls-cli HTTP/1.1\\r\\nHost: localhost:%s\\r\\n"
		"Connection: close\\r\\n\\r\\n' \"$2\" | gnutls-cli --x509cafile=\"$1\" -p \"$2\" "
		"localhost";
	json_t *req, *claims;
	struct world w;
	char *out;

	world_start(&w, "intercept", CERT_GOOD);
	cr_assert_eq(h_runl(w.cg, 15000, &out, "sh", "-c", script, "sh", w.lanyard_ca,
			    h_strf("%d", w.app_port), NULL), 0, "gnutls-cli: %s", out);
	cr_expect(strstr(out, "HTTP/1.1 200 OK\r\n"), "gnutls-cli got: %s", out);
	cr_expect(strstr(out, "\r\n\r\nok\n"), "gnutls-cli got: %s", out);
	req = verified_request(&w, "/gnutls-cli", &claims);
	cr_expect(!strstr(out, ly_req_token(req, "Authorization", "Bearer ")),
		  "the app saw its credential");
	free(out);
	json_decref(claims);
	json_decref(req);
	tlsfix_ca_free(w.ca);
}

/*
 * A client that sends its request and then closes its side of TCP (no close_notify): the
 * head waits for the upstream's handshake, and the answer still comes back over TLS.
 */
static const char py_half_close[] =
	"import socket, ssl, sys\n"
	"ctx = ssl.create_default_context(cafile=sys.argv[1])\n"
	"s = ctx.wrap_socket(socket.create_connection(('localhost', int(sys.argv[2]))),\n"
	"                    server_hostname='localhost')\n"
	"s.sendall(b'GET /half HTTP/1.1\\r\\nHost: localhost\\r\\n\\r\\n')\n"
	"socket.socket.shutdown(s, socket.SHUT_WR)\n"
	"data = b''\n"
	"try:\n"
	"    while True:\n"
	"        b = s.recv(4096)\n"
	"        if not b: break\n"
	"        data += b\n"
	"except ssl.SSLError as e:\n"
	"    pass\n"
	"print(data.split(b'\\r\\n')[0].decode())\n";

Test(tls, intercept_answers_a_client_that_half_closes_after_its_request)
{
	json_t *req, *claims;
	struct world w;
	char *out;

	world_start(&w, "intercept", CERT_GOOD);
	cr_assert_eq(h_runl(w.cg, 15000, &out, LY_PYTHON, "-c", py_half_close, w.lanyard_ca,
			    h_strf("%d", w.app_port), NULL), 0, "python3: %s", out);
	cr_expect_str_eq(out, "HTTP/1.1 200 OK\n");
	free(out);
	req = verified_request(&w, "/half", &claims);
	json_decref(claims);
	json_decref(req);
	tlsfix_ca_free(w.ca);
}

/* An h2-only client is refused in the handshake (no_application_protocol), not served h2. */
static const char py_h2_only[] =
	"import socket, ssl, sys\n"
	"ctx = ssl.create_default_context(cafile=sys.argv[1])\n"
	"ctx.set_alpn_protocols(['h2'])\n"
	"s = socket.create_connection(('localhost', int(sys.argv[2])))\n"
	"try:\n"
	"    ctx.wrap_socket(s, server_hostname='localhost')\n"
	"    print('handshake ok')\n"
	"except ssl.SSLError as e:\n"
	"    print('refused', e.reason)\n";

Test(tls, intercept_refuses_an_h2_only_client)
{
	struct world w;
	json_t *ev;
	char *out;

	world_start(&w, "intercept", CERT_GOOD);
	cr_assert_eq(h_runl(w.cg, 15000, &out, LY_PYTHON, "-c", py_h2_only, w.lanyard_ca,
			    h_strf("%d", w.app_port), NULL), 0, "python3: %s", out);
	cr_expect(strstr(out, "refused"), "python3: %s", out);
	free(out);
	ev = wait_deny(&w, "no ALPN protocol");
	cr_expect_str_eq(json_string_value(json_object_get(ev, "workload")), "app");
	json_decref(ev);
	expect_upstream_got_nothing(&w);
	tlsfix_ca_free(w.ca);
}

/* --- origination --------------------------------------------------------------------------- */

Test(tls, originate_speaks_verified_tls_upstream_for_a_plain_http_app)
{
	const char *local, *suffix;
	json_t *req, *claims;
	struct world w;
	char *out;

	world_start(&w, "originate", CERT_GOOD);
	cr_assert_eq(ly_curl(w.cg, &out, h_strf("http://localhost:%d/orig", w.app_port), NULL), 0,
		     "curl: %s", out);
	cr_expect_str_eq(out, "ok\n");
	free(out);
	req = verified_request(&w, "/orig", &claims);
	cr_expect_str_eq(tls_member(req, "sni"), "localhost");
	local = json_string_value(json_object_get(req, "local"));
	suffix = h_strf(":%d", w.up_port);
	cr_expect(local && strlen(local) > strlen(suffix) &&
		  !strcmp(local + strlen(local) - strlen(suffix), suffix),
		  "lanyardd did not dial upstream.port: %s", local);
	json_decref(claims);
	json_decref(req);
	tlsfix_ca_free(w.ca);
}

/* --- upstreams that cannot prove their name ------------------------------------------------ */

struct bad_upstream {
	enum cert_kind kind;
	int intercept;
	const char *reason;	/* in the 502 body and the flow.deny */
};

ParameterizedTestParameters(tls, refuses_an_upstream_that_cannot_prove_its_name)
{
	static struct bad_upstream cases[] = {
		{ CERT_EXPIRED, 0, "certificate verify failed: certificate has expired" },
		{ CERT_SELF_SIGNED, 0, "certificate verify failed: self-signed certificate" },
		{ CERT_WRONG_NAME, 0, "certificate verify failed: hostname mismatch" },
		{ CERT_WRONG_NAME, 1, "certificate verify failed: hostname mismatch" },
	};
	size_t n = sizeof(cases) / sizeof(cases[0]);
	struct bad_upstream *p = cr_malloc(sizeof(cases));

	cr_assert(p);
	for (size_t i = 0; i < n; i++) {
		p[i] = cases[i];
		p[i].reason = strcpy(cr_malloc(strlen(cases[i].reason) + 1), cases[i].reason);
	}
	return cr_make_param_array(struct bad_upstream, p, n);
}

ParameterizedTest(struct bad_upstream *c, tls, refuses_an_upstream_that_cannot_prove_its_name)
{
	struct world w;
	json_t *ev;
	char *out;

	world_start(&w, c->intercept ? "intercept" : "originate", c->kind);
	if (c->intercept)
		cr_assert_eq(ly_curl(w.cg, &out, "-i", "--cacert", w.lanyard_ca,
				     https(&w, "/bad"), NULL), 0, "curl: %s", out);
	else
		cr_assert_eq(ly_curl(w.cg, &out, "-i",
				     h_strf("http://localhost:%d/bad", w.app_port), NULL), 0,
			     "curl: %s", out);
	cr_expect_eq(ly_status_of(out), 502, "curl got: %s", out);
	cr_expect(strstr(out, c->reason), "want \"%s\" in: %s", c->reason, out);
	free(out);
	ev = wait_deny(&w, c->reason);
	cr_expect_str_eq(json_string_value(json_object_get(ev, "workload")), "app");
	cr_expect_str_eq(json_string_value(json_object_get(ev, "server_name")), "localhost");
	cr_expect(json_string_value(json_object_get(ev, "upstream")));
	json_decref(ev);
	expect_upstream_got_nothing(&w);
	cr_expect_geq(ly_metric(&w.d, "upstream_failed"), 1);
	tlsfix_ca_free(w.ca);
}

/* --- bad input from the app ----------------------------------------------------------------- */

Test(tls, garbage_instead_of_a_client_hello_is_refused_and_others_are_served)
{
	static const char garbage[] = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
	struct world w;
	size_t len = 0;
	json_t *ev;
	char *resp, *out;

	world_start(&w, "intercept", CERT_GOOD);
	cr_assert_eq(ly_raw(w.cg, "127.0.0.1", w.app_port, garbage, strlen(garbage), 5, &resp,
			    &len), 0);
	cr_expect(len == 0 || strncmp(resp, "HTTP/", 5), "plain HTTP came back: %s", resp);
	free(resp);
	ev = wait_deny(&w, "TLS handshake failed");
	cr_expect(json_string_value(json_object_get(ev, "detail")), "no detail");
	json_decref(ev);
	cr_expect_geq(ly_metric(&w.d, "flow_denied"), 1);
	expect_upstream_got_nothing(&w);
	/* and the next app is served */
	cr_assert_eq(ly_curl(w.cg, &out, "--cacert", w.lanyard_ca, https(&w, "/after"), NULL), 0,
		     "curl: %s", out);
	cr_expect_str_eq(out, "ok\n");
	free(out);
	tlsfix_ca_free(w.ca);
}

Test(tls, a_client_hello_without_sni_is_refused)
{
	struct world w;
	json_t *ev;
	char *out;

	world_start(&w, "intercept", CERT_GOOD);
	/* an IP literal in the URL: curl sends no SNI (RFC 6066 3) */
	cr_expect_neq(ly_curl(w.cg, &out, "--cacert", w.lanyard_ca,
			      h_strf("https://127.0.0.1:%d/nosni", w.app_port), NULL), 0,
		      "curl was served: %s", out);
	free(out);
	ev = wait_deny(&w, "no SNI");
	json_decref(ev);
	expect_upstream_got_nothing(&w);
	tlsfix_ca_free(w.ca);
}

/*
 * An IP route with server_name: a client without SNI is served as that name, and the upstream
 * is verified against it (python3 with check_hostname off sends no SNI for an address).
 */
static const char py_no_sni[] =
	"import socket, ssl, sys\n"
	"ctx = ssl.create_default_context(cafile=sys.argv[1])\n"
	"ctx.check_hostname = False\n"
	"s = ctx.wrap_socket(socket.create_connection(('127.0.0.1', int(sys.argv[2]))))\n"
	"san = s.getpeercert()['subjectAltName']\n"
	"s.sendall(b'GET /ipsni HTTP/1.1\\r\\nHost: localhost\\r\\n'\n"
	"          b'Connection: close\\r\\n\\r\\n')\n"
	"data = b''\n"
	"while True:\n"
	"    b = s.recv(4096)\n"
	"    if not b: break\n"
	"    data += b\n"
	"print(san, data.split(b'\\r\\n')[0].decode())\n";

Test(tls, an_ip_route_with_server_name_serves_a_client_without_sni)
{
	json_t *req, *claims;
	struct world w;
	char *out;

	memset(&w, 0, sizeof(w));
	h_require_root_bpf();
	upstream_start(&w, CERT_GOOD);
	w.app_port = w.up_port;
	w.cg = h_cgroup_create("app");
	ly_start(&w.d, ly_yaml_workload("app", w.cg,
					tls_route(h_strf("127.0.0.1:%d", w.up_port), "intercept",
						  tlsfix_ca_cert_path(w.ca),
						  "        server_name: localhost\n")));
	w.lanyard_ca = h_strf("%s/ca.crt", w.d.state_dir);
	cr_assert_eq(h_runl(w.cg, 15000, &out, LY_PYTHON, "-c", py_no_sni, w.lanyard_ca,
			    h_strf("%d", w.up_port), NULL), 0, "python3: %s", out);
	cr_expect_str_eq(out, "(('DNS', 'localhost'),) HTTP/1.1 200 OK\n");
	free(out);
	req = verified_request(&w, "/ipsni", &claims);
	cr_expect_str_eq(tls_member(req, "sni"), "localhost");
	json_decref(claims);
	json_decref(req);
	tlsfix_ca_free(w.ca);
}

/*
 * An IP route without server_name serves the name the app asks for, and the upstream must
 * prove that same name: a name it cannot prove gets a 502, and no credential leaves.
 */
Test(tls, an_ip_route_verifies_the_upstream_against_the_apps_sni)
{
	json_t *req, *claims, *ev;
	struct world w;
	char *out;

	memset(&w, 0, sizeof(w));
	h_require_root_bpf();
	upstream_start(&w, CERT_GOOD);
	w.app_port = w.up_port;
	w.cg = h_cgroup_create("app");
	ly_start(&w.d, ly_yaml_workload("app", w.cg,
					tls_route(h_strf("127.0.0.0/8:%d", w.up_port), "intercept",
						  tlsfix_ca_cert_path(w.ca), "")));
	w.lanyard_ca = h_strf("%s/ca.crt", w.d.state_dir);
	cr_assert_eq(ly_curl(w.cg, &out, "--cacert", w.lanyard_ca, "--resolve",
			     h_strf("localhost:%d:127.0.0.1", w.up_port), https(&w, "/named"),
			     NULL), 0, "curl: %s", out);
	cr_expect_str_eq(out, "ok\n");
	free(out);
	req = verified_request(&w, "/named", &claims);
	cr_expect_str_eq(tls_member(req, "sni"), "localhost");
	json_decref(claims);
	json_decref(req);

	cr_assert_eq(ly_curl(w.cg, &out, "-i", "--cacert", w.lanyard_ca, "--resolve",
			     h_strf("unproven.test:%d:127.0.0.1", w.up_port),
			     h_strf("https://unproven.test:%d/unproven", w.up_port), NULL),
		     0, "curl: %s", out);
	cr_expect_eq(ly_status_of(out), 502, "curl got: %s", out);
	free(out);
	ev = wait_deny(&w, "hostname mismatch");
	cr_expect_str_eq(json_string_value(json_object_get(ev, "server_name")), "unproven.test");
	json_decref(ev);
	cr_expect_eq(h_jsonl_count(w.up_log, NULL, NULL), 1, "/unproven reached the upstream");
	tlsfix_ca_free(w.ca);
}

Test(tls, another_workloads_name_in_the_sni_gets_nothing)
{
	struct world w;
	json_t *ev;
	char *out, *routes_b;

	memset(&w, 0, sizeof(w));
	h_require_root_bpf();
	upstream_start(&w, CERT_GOOD);
	w.app_port = w.up_port;
	w.cg = h_cgroup_create("app");
	/* "other" may reach other.test (its own address); "app" may reach localhost only */
	routes_b = tls_route(h_strf("127.0.0.2:%d", w.up_port), "intercept",
			     tlsfix_ca_cert_path(w.ca), "        server_name: other.test\n");
	ly_start(&w.d, h_strf("%s%s",
			      ly_yaml_workload("app", w.cg,
					       tls_route(h_strf("localhost:%d", w.up_port),
							 "intercept", tlsfix_ca_cert_path(w.ca),
							 "")),
			      ly_yaml_workload("other", h_cgroup_create("other"), routes_b)));
	w.lanyard_ca = h_strf("%s/ca.crt", w.d.state_dir);
	cr_expect_neq(ly_curl(w.cg, &out, "--cacert", w.lanyard_ca, "--resolve",
			      h_strf("other.test:%d:127.0.0.1", w.up_port),
			      h_strf("https://other.test:%d/steal", w.up_port), NULL), 0,
		      "curl was served: %s", out);
	free(out);
	ev = wait_deny(&w, "the SNI does not match the route");
	cr_expect_str_eq(json_string_value(json_object_get(ev, "workload")), "app");
	json_decref(ev);
	expect_upstream_got_nothing(&w);
	tlsfix_ca_free(w.ca);
}

Test(tls, a_client_stalling_mid_handshake_is_cut_off_while_others_are_served)
{
	/* a TLS record header announcing 528 bytes of ClientHello that never come */
	static const char partial[] = "\x16\x03\x01\x02\x10";
	struct world w;
	json_t *ev;
	char *out;
	pid_t raw;

	world_start(&w, "intercept", CERT_GOOD);
	cr_assert_eq(h_write_file(h_path("stall.in"), partial, 0600), 0);
	raw = ly_client_spawn("stall", w.cg, "raw.py", "--host", "127.0.0.1", "--port",
			      h_strf("%d", w.app_port), "--send", h_path("stall.in"), "--out",
			      h_path("stall.out"), "--timeout", "20", NULL);
	cr_assert_gt(raw, 0);
	cr_assert_eq(ly_curl(w.cg, &out, "--cacert", w.lanyard_ca, https(&w, "/meanwhile"), NULL),
		     0, "curl: %s", out);
	cr_expect_str_eq(out, "ok\n");
	free(out);
	/* the handshake has the head timeout: 10 s */
	cr_expect_eq(h_wait_exit(raw, 14000), 0, "raw.py was not cut off");
	ev = wait_deny(&w, "TLS handshake timed out");
	json_decref(ev);
	cr_expect_eq(h_jsonl_count(w.up_log, NULL, NULL), 1, "only /meanwhile went upstream");
	tlsfix_ca_free(w.ca);
}

/* --- reload ---------------------------------------------------------------------------------- */

Test(tls, reload_reads_the_ca_file_again)
{
	struct tlsfix_ca *other;
	json_t *req, *claims;
	struct world w;
	char *out;

	memset(&w, 0, sizeof(w));
	h_require_root_bpf();
	upstream_start(&w, CERT_GOOD);
	w.app_port = w.up_port;
	w.cg = h_cgroup_create("app");
	/* first the wrong anchors: the upstream cannot prove its name */
	other = tlsfix_ca_new("another root");
	cr_assert(other);
	ly_start(&w.d, ly_yaml_workload("app", w.cg,
					tls_route(h_strf("localhost:%d", w.up_port), "originate",
						  tlsfix_ca_cert_path(other), "")));
	cr_assert_eq(ly_curl(w.cg, &out, "-i", h_strf("http://localhost:%d/before", w.up_port),
			     NULL), 0, "curl: %s", out);
	cr_expect_eq(ly_status_of(out), 502, "curl got: %s", out);
	cr_expect(strstr(out, "unable to get local issuer certificate"), "curl got: %s", out);
	free(out);

	ly_write_policy(&w.d, ly_yaml_workload("app", w.cg,
					       tls_route(h_strf("localhost:%d", w.up_port),
							 "originate", tlsfix_ca_cert_path(w.ca),
							 "")));
	cr_assert_eq(ly_cli(&w.d, &out, "reload", NULL), 0, "reload: %s", out);
	free(out);
	cr_assert_eq(ly_curl(w.cg, &out, h_strf("http://localhost:%d/after", w.up_port), NULL), 0,
		     "curl: %s", out);
	cr_expect_str_eq(out, "ok\n");
	free(out);
	req = verified_request(&w, "/after", &claims);
	cr_expect_eq(h_jsonl_count(w.up_log, NULL, NULL), 1, "/before never reached the upstream");
	json_decref(claims);
	json_decref(req);
	tlsfix_ca_free(other);
	tlsfix_ca_free(w.ca);
}

/* --- passthrough ------------------------------------------------------------------------------ */

/*
 * Upstream with a good certificate of the test CA; workload "app" with one route @to
 * (quoted in the YAML) tls: passthrough plus @extra keys.  The app trusts the upstream's CA,
 * never lanyard's: a handshake that succeeds is end to end.
 */
static void passthrough_start(struct world *w, const char *to, const char *extra)
{
	memset(w, 0, sizeof(*w));
	h_require_root_bpf();
	upstream_start(w, CERT_GOOD);
	w->app_port = w->up_port;
	w->cg = h_cgroup_create("app");
	ly_start(&w->d, ly_yaml_workload("app", w->cg,
					 h_strf("      - to: \"%s\"\n        tls: passthrough\n%s",
						h_strf(to, w->up_port), extra)));
}

static json_t *wait_event_sni(const struct world *w, const char *event, const char *sni)
{
	for (int i = 0; i < 100; i++) {
		json_t *all = ly_jsonl_all(w->d.audit, "event", event), *ev;
		size_t k;

		json_array_foreach(all, k, ev) {
			const char *s = json_string_value(json_object_get(ev, "sni"));

			if (s && !strcmp(s, sni)) {
				json_incref(ev);
				json_decref(all);
				return ev;
			}
		}
		json_decref(all);
		usleep(50 * 1000);
	}
	cr_assert_fail("no %s with sni \"%s\" in %s", event, sni, w->d.audit);
	return NULL;
}

Test(tls, passthrough_relays_the_apps_own_tls_to_an_allowed_sni_without_a_credential)
{
	struct world w;
	json_t *req, *ev;
	char *out;

	passthrough_start(&w, "localhost:%d", "");
	/* curl verifies the upstream's own certificate: lanyard's CA is not even offered */
	cr_assert_eq(ly_curl(w.cg, &out, "--cacert", tlsfix_ca_cert_path(w.ca),
			     https(&w, "/pt"), NULL), 0, "curl: %s", out);
	cr_expect_str_eq(out, "ok\n");
	free(out);
	req = h_jsonl_wait(w.up_log, "target", "/pt", 5000);
	cr_assert(req, "the upstream never received /pt");
	cr_expect_eq(h_json_header_count(req, "authorization"), 0, "a credential was injected");
	cr_expect_str_eq(tls_member(req, "sni"), "localhost");
	json_decref(req);
	ev = wait_event_sni(&w, "flow.sni", "localhost");
	cr_expect_str_eq(json_string_value(json_object_get(ev, "mode")), "passthrough");
	cr_expect_str_eq(json_string_value(json_object_get(ev, "workload")), "app");
	json_decref(ev);
	cr_expect_eq(h_jsonl_count(w.d.audit, "event", "credential.use"), 0);
	tlsfix_ca_free(w.ca);
}

Test(tls, passthrough_refuses_a_server_name_not_on_its_list)
{
	struct world w;
	json_t *ev;
	char *out;

	passthrough_start(&w, "localhost:%d", "");
	cr_expect_neq(ly_curl(w.cg, &out, "--cacert", tlsfix_ca_cert_path(w.ca), "--resolve",
			      h_strf("other.test:%d:127.0.0.1", w.up_port),
			      h_strf("https://other.test:%d/steal", w.up_port), NULL), 0,
		      "curl was served: %s", out);
	free(out);
	ev = wait_event_sni(&w, "flow.deny", "other.test");
	cr_expect_str_eq(json_string_value(json_object_get(ev, "reason")),
			 "server name not allowed");
	json_decref(ev);
	cr_expect_geq(ly_metric(&w.d, "flow_denied"), 1);
	expect_upstream_got_nothing(&w);
	tlsfix_ca_free(w.ca);
}

/* An address route lists its names; "*." stands for exactly one label. */
Test(tls, passthrough_on_an_address_allows_the_sni_list_and_its_wildcards)
{
	struct world w;
	json_t *ev;
	char *out;

	passthrough_start(&w, "127.0.0.1:%d", "        sni: [localhost, \"*.example.test\"]\n");
	cr_assert_eq(ly_curl(w.cg, &out, "--cacert", tlsfix_ca_cert_path(w.ca), "--resolve",
			     h_strf("localhost:%d:127.0.0.1", w.up_port), https(&w, "/listed"),
			     NULL), 0, "curl: %s", out);
	cr_expect_str_eq(out, "ok\n");
	free(out);
	/* the upstream's certificate does not name a.example.test: -k, the SNI is the point */
	cr_assert_eq(ly_curl(w.cg, &out, "-k", "--resolve",
			     h_strf("a.example.test:%d:127.0.0.1", w.up_port),
			     h_strf("https://a.example.test:%d/wild", w.up_port), NULL), 0,
		     "curl: %s", out);
	cr_expect_str_eq(out, "ok\n");
	free(out);
	ev = wait_event_sni(&w, "flow.sni", "a.example.test");
	json_decref(ev);
	cr_expect_neq(ly_curl(w.cg, &out, "-k", "--resolve",
			      h_strf("b.a.example.test:%d:127.0.0.1", w.up_port),
			      h_strf("https://b.a.example.test:%d/deep", w.up_port), NULL), 0,
		      "curl was served: %s", out);
	free(out);
	ev = wait_event_sni(&w, "flow.deny", "b.a.example.test");
	json_decref(ev);
	cr_expect_eq(h_jsonl_count(w.up_log, "target", "/deep"), 0, "/deep reached the upstream");
	cr_expect_eq(h_jsonl_count(w.up_log, NULL, NULL), 2);
	tlsfix_ca_free(w.ca);
}

Test(tls, passthrough_refuses_plain_http_garbage_and_a_hello_without_sni)
{
	static const char plain[] = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
	struct world w;
	size_t len = 0;
	json_t *ev;
	char *resp, *out;

	passthrough_start(&w, "localhost:%d", "");
	cr_assert_eq(ly_raw(w.cg, "127.0.0.1", w.app_port, plain, strlen(plain), 5, &resp,
			    &len), 0);
	cr_expect_eq(len, 0, "something came back: %s", resp);
	free(resp);
	ev = wait_deny(&w, "not a TLS handshake");
	cr_expect_str_eq(json_string_value(json_object_get(ev, "mode")), "passthrough");
	json_decref(ev);
	/* an IP literal in the URL: curl sends no SNI (RFC 6066 3) */
	cr_expect_neq(ly_curl(w.cg, &out, "--cacert", tlsfix_ca_cert_path(w.ca),
			      h_strf("https://127.0.0.1:%d/nosni", w.app_port), NULL), 0,
		      "curl was served: %s", out);
	free(out);
	json_decref(wait_deny(&w, "no server name in the ClientHello"));
	cr_expect_geq(ly_metric(&w.d, "flow_denied"), 2);
	expect_upstream_got_nothing(&w);
	tlsfix_ca_free(w.ca);
}

Test(tls, passthrough_streams_big_bodies_both_ways_unmodified)
{
	size_t up_size = 3 * 1024 * 1024, down_size = 120 * 1000;
	char *data = malloc(up_size + 1), *down = malloc(down_size + 1), *out;
	struct world w;
	json_t *req, *ev;

	big_bodies(data, up_size, down, down_size);
	memset(&w, 0, sizeof(w));
	h_require_root_bpf();
	upstream_start_body(&w, CERT_GOOD, down);
	w.app_port = w.up_port;
	w.cg = h_cgroup_create("app");
	ly_start(&w.d, ly_yaml_workload("app", w.cg, h_strf("      - to: localhost:%d\n"
							     "        tls: passthrough\n", w.up_port)));
	cr_assert_eq(ly_curl(w.cg, &out, "--cacert", tlsfix_ca_cert_path(w.ca), "--data-binary",
			     h_strf("@%s", h_path("big.bin")), "-H", "Expect:",
			     https(&w, "/big"), NULL), 0, "curl failed");
	cr_expect_eq(strlen(out), down_size, "response of %zu bytes", strlen(out));
	cr_expect(!strcmp(out, down), "the response was altered");
	req = h_jsonl_wait(w.up_log, "target", "/big", 5000);
	cr_assert(req, "the upstream never received /big");
	cr_expect_eq(json_integer_value(json_object_get(req, "body_len")), (json_int_t)up_size);
	cr_expect_eq(h_json_header_count(req, "authorization"), 0, "a credential was injected");
	json_decref(req);
	ev = h_jsonl_wait(w.d.audit, "event", "flow.close", 5000);
	cr_assert(ev, "no flow.close");
	cr_expect_gt(json_integer_value(json_object_get(ev, "bytes_up")), (json_int_t)up_size);
	cr_expect_gt(json_integer_value(json_object_get(ev, "bytes_down")), (json_int_t)down_size);
	cr_expect_eq(json_integer_value(json_object_get(ev, "requests")), 0);
	json_decref(ev);
	free(out);
	free(data);
	free(down);
	tlsfix_ca_free(w.ca);
}

/*
 * A TLS server for the relay tests: one connection on 127.0.0.1:argv[3], certificate
 * argv[1], key argv[2].  It reads the app's request line; with argv[4] "half" it then reads
 * on to the app's EOF (it answers nothing before the FIN came through).  Then it sends
 * argv[5] bytes (1 MiB random blocks, each stamped with its index) and prints "sent N
 * SHA256 T" (T: CLOCK_MONOTONIC when the last byte was taken by the kernel).  With "first"
 * it then shuts its write side (TCP FIN, no close_notify), waits 1 s and reads the app's
 * bytes to EOF with a small receive buffer: "read N SHA256".  A small send buffer keeps
 * what it can have sent ahead of the app close to what lanyardd holds.
 */
static const char py_pt_server[] =
	"import hashlib, os, socket, ssl, sys, time\n"
	"ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\n"
	"ctx.load_cert_chain(sys.argv[1], sys.argv[2])\n"
	"ctx.options |= ssl.OP_IGNORE_UNEXPECTED_EOF\n"
	"ls = socket.create_server(('127.0.0.1', int(sys.argv[3])))\n"
	"if sys.argv[4] == 'first':\n"
	"    ls.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)\n"
	"print('listening', flush=True)\n"
	"c, _ = ls.accept()\n"
	"c.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 256 * 1024)\n"
	"s = ctx.wrap_socket(c, server_side=True)\n"
	"req = b''\n"
	"while not req.endswith(b'\\n'):\n"
	"    b = s.recv(4096)\n"
	"    if not b: sys.exit('no request')\n"
	"    req += b\n"
	"if sys.argv[4] == 'half':\n"
	"    while s.recv(4096): pass\n"
	"    print('eof after', req.decode().strip(), flush=True)\n"
	"size, block, h, sent = int(sys.argv[5]), os.urandom(1 << 20), hashlib.sha256(), 0\n"
	"while sent < size:\n"
	"    b = (sent >> 20).to_bytes(8, 'big') + block[8:min(1 << 20, size - sent)]\n"
	"    s.sendall(b)\n"
	"    h.update(b)\n"
	"    sent += len(b)\n"
	"print('sent', sent, h.hexdigest(), time.monotonic(), flush=True)\n"
	"if sys.argv[4] == 'first':\n"
	"    socket.socket.shutdown(s, socket.SHUT_WR)\n"
	"    time.sleep(1)\n"
	"    h, n = hashlib.sha256(), 0\n"
	"    while True:\n"
	"        b = s.recv(65536)\n"
	"        if not b: break\n"
	"        h.update(b)\n"
	"        n += len(b)\n"
	"    print('read', n, h.hexdigest(), time.monotonic(), flush=True)\n"
	"s.close()\n";

/*
 * The app of the relay tests: TLS to 127.0.0.1:argv[2] as "localhost" trusting argv[1],
 * sends "GIVE\n"; argv[3] "half" then shuts its write side (TCP FIN, no close_notify).
 * After argv[4] seconds of not reading, it reads to EOF in 64 KiB reads, pausing 10 ms per
 * MiB, and prints "got N SHA256 T" (T: CLOCK_MONOTONIC when it started reading).  With
 * "after" it then sends 4 MiB of random bytes, shuts its write side and prints "wrote N
 * SHA256 T".
 */
static const char py_pt_client[] =
	"import hashlib, os, socket, ssl, sys, time\n"
	"ctx = ssl.create_default_context(cafile=sys.argv[1])\n"
	"ctx.options |= ssl.OP_IGNORE_UNEXPECTED_EOF\n"
	"c = socket.create_connection(('127.0.0.1', int(sys.argv[2])))\n"
	"c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 256 * 1024)\n"
	"s = ctx.wrap_socket(c, server_hostname='localhost')\n"
	"s.sendall(b'GIVE\\n')\n"
	"if sys.argv[3] == 'half':\n"
	"    socket.socket.shutdown(s, socket.SHUT_WR)\n"
	"time.sleep(float(sys.argv[4]))\n"
	"start, h, n, pause = time.monotonic(), hashlib.sha256(), 0, 1 << 20\n"
	"while True:\n"
	"    b = s.recv(65536)\n"
	"    if not b: break\n"
	"    h.update(b)\n"
	"    n += len(b)\n"
	"    if n >= pause:\n"
	"        time.sleep(0.01)\n"
	"        pause += 1 << 20\n"
	"print('got', n, h.hexdigest(), start, flush=True)\n"
	"if sys.argv[3] == 'after':\n"
	"    h, n = hashlib.sha256(), 0\n"
	"    for i in range(64):\n"
	"        b = os.urandom(64 << 10)\n"
	"        s.sendall(b)\n"
	"        h.update(b)\n"
	"        n += len(b)\n"
	"    socket.socket.shutdown(s, socket.SHUT_WR)\n"
	"    print('wrote', n, h.hexdigest(), time.monotonic())\n";

struct pt_result {
	long long n;
	char sha[65];
	double t;
};

/* "<word> N SHA256 T" somewhere in @text; asserts. */
static struct pt_result pt_parse(const char *text, const char *word)
{
	const char *p = text ? strstr(text, word) : NULL;
	struct pt_result r = { 0 };

	cr_assert(p, "no \"%s\" in: %s", word, text ? text : "(nothing)");
	cr_assert_eq(sscanf(p + strlen(word), " %lld %64s %lf", &r.n, r.sha, &r.t), 3,
		     "cannot parse: %s", p);
	return r;
}

/*
 * Workload "app" with a passthrough route to localhost:<port>, py_pt_server on that port
 * in mode @mode sending @size bytes; returns the server's pid.
 */
static pid_t pt_relay_start(struct world *w, const char *mode, long long size)
{
	char *cert = NULL, *key = NULL;
	pid_t srv;

	memset(w, 0, sizeof(*w));
	h_require_root_bpf();
	w->ca = tlsfix_ca_new("upstream test root");
	cr_assert(w->ca);
	cr_assert_eq(tlsfix_server_cert(w->ca, local_names, &cert, &key), 0);
	w->up_port = w->app_port = h_free_port();
	srv = h_spawnl("ptsrv", NULL, LY_PYTHON, "-c", py_pt_server, cert, key,
		       h_strf("%d", w->up_port), mode, h_strf("%lld", size), NULL);
	cr_assert_gt(srv, 0);
	cr_assert_eq(h_wait_output(srv, "listening", 10000), 0, "the TLS server did not start");
	w->cg = h_cgroup_create("app");
	ly_start(&w->d, ly_yaml_workload("app", w->cg,
					 h_strf("      - to: localhost:%d\n"
						"        tls: passthrough\n", w->up_port)));
	return srv;
}

/* The third field of /proc/sys/net/ipv4/@name (the most a socket buffer may autotune to). */
static long long tcp_mem_max(const char *name)
{
	char *s = h_read_file(h_strf("/proc/sys/net/ipv4/%s", name), NULL);
	long long lo, def, max;

	cr_assert(s && sscanf(s, "%lld %lld %lld", &lo, &def, &max) == 3, "%s", name);
	free(s);
	return max;
}

/* The flow.close of the (only) passthrough flow; asserts.  New reference. */
static json_t *pt_flow_close(const struct world *w)
{
	json_t *ev = h_jsonl_wait(w->d.audit, "event", "flow.close", 10000);

	cr_assert(ev, "no flow.close");
	return ev;
}

/*
 * An upstream that sends far more than every socket buffer on the way can hold, to an app
 * that does not read for 2 s and then reads slowly: the upstream is held back (it cannot
 * have sent everything before the app began to read), and every byte arrives unmodified.
 */
Test(tls, passthrough_holds_back_a_fast_upstream_for_a_slow_reader)
{
	long long size;
	struct pt_result sent, got;
	struct world w;
	json_t *ev;
	char *out, *srv_out;
	pid_t srv;

	/* lanyardd's two sockets may autotune up to these; the app's and server's are small */
	size = 2 * (tcp_mem_max("tcp_rmem") + tcp_mem_max("tcp_wmem")) + (16 << 20);
	srv = pt_relay_start(&w, "big", size);
	cr_assert_eq(h_runl(w.cg, 50000, &out, LY_PYTHON, "-c", py_pt_client,
			    tlsfix_ca_cert_path(w.ca), h_strf("%d", w.app_port), "keep", "2",
			    NULL), 0, "client: %s", out);
	got = pt_parse(out, "got");
	cr_assert_eq(h_wait_exit(srv, 10000), 0, "the TLS server failed");
	srv_out = h_read_file(h_out_path("ptsrv"), NULL);
	sent = pt_parse(srv_out, "sent");
	cr_expect_eq(got.n, size, "the app got %lld of %lld bytes", got.n, size);
	cr_expect_str_eq(got.sha, sent.sha, "the bytes were altered on the way");
	cr_expect_gt(sent.t, got.t, "the upstream sent everything %.3f s before the app read: "
		     "nothing held it back", got.t - sent.t);
	ev = pt_flow_close(&w);
	cr_expect_geq(json_integer_value(json_object_get(ev, "bytes_down")), size);
	cr_expect_str_eq(json_string_value(json_object_get(ev, "reason")), "done");
	json_decref(ev);
	/* the flow went over to splice(2) after its ClientHello (lanyardd -v says so) */
	cr_expect(h_file_contains(h_err_path(w.d.name), "passthrough relayed by splice"));
	free(srv_out);
	free(out);
	tlsfix_ca_free(w.ca);
}

/* An upstream whose accept queue is full: the kernel drops lanyardd's SYNs, connect() hangs. */
static const char py_full_backlog[] =
	"import socket, sys, time\n"
	"port = int(sys.argv[1])\n"
	"s = socket.socket()\n"
	"s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
	"s.bind(('127.0.0.1', port))\n"
	"s.listen(0)\n"
	"fill = []\n"
	"for i in range(4):\n"
	"    c = socket.socket()\n"
	"    c.setblocking(False)\n"
	"    try:\n"
	"        c.connect(('127.0.0.1', port))\n"
	"    except BlockingIOError:\n"
	"        pass\n"
	"    fill.append(c)\n"
	"time.sleep(0.5)\n"
	"print('full', flush=True)\n"
	"time.sleep(60)\n";

Test(tls, passthrough_gives_up_on_an_upstream_that_never_answers_the_connect)
{
	struct world w;
	json_t *ev;
	char *out;
	pid_t pid;

	memset(&w, 0, sizeof(w));
	h_require_root_bpf();
	w.ca = tlsfix_ca_new("unused");
	cr_assert(w.ca);
	w.up_port = w.app_port = h_free_port();
	pid = h_spawnl("backlog", NULL, LY_PYTHON, "-c", py_full_backlog,
		       h_strf("%d", w.up_port), NULL);
	cr_assert_gt(pid, 0);
	cr_assert_eq(h_wait_output(pid, "full", 10000), 0, "the backlog was not filled");
	w.cg = h_cgroup_create("app");
	ly_start(&w.d, ly_yaml_workload("app", w.cg, h_strf("      - to: localhost:%d\n"
							     "        tls: passthrough\n", w.up_port)));
	cr_expect_neq(ly_curl(w.cg, &out, "--max-time", "25", "-k", https(&w, "/never"), NULL), 0,
		      "curl was served: %s", out);
	free(out);
	ev = wait_deny(&w, "upstream connect timed out");
	json_decref(ev);
	cr_expect(h_alive(w.d.pid));
	tlsfix_ca_free(w.ca);
}

/*
 * A ClientHello that passes, then one urgent (MSG_OOB) byte and more data: splice()
 * stops at TCP's urgent mark with EAGAIN while epoll keeps saying EPOLLIN.
 */
static const char py_oob[] =
	"import socket, ssl, sys, time\n"
	"ctx = ssl.create_default_context(cafile=sys.argv[1])\n"
	"inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()\n"
	"obj = ctx.wrap_bio(inc, out, server_hostname='localhost')\n"
	"try:\n"
	"    obj.do_handshake()\n"
	"except ssl.SSLWantReadError:\n"
	"    pass\n"
	"s = socket.create_connection(('localhost', int(sys.argv[2])))\n"
	"s.sendall(out.read())\n"
	"time.sleep(0.3)\n"
	"s.send(b'!', socket.MSG_OOB)\n"
	"s.sendall(b'after the urgent mark ' * 50)\n"
	"print('sent', flush=True)\n"
	"time.sleep(4)\n";

Test(tls, passthrough_moves_past_an_urgent_byte_without_spinning)
{
	struct world w;
	json_t *ev;
	long t0, t1;
	pid_t pid;

	passthrough_start(&w, "localhost:%d", "");
	pid = h_spawnl("oob", w.cg, LY_PYTHON, "-c", py_oob, tlsfix_ca_cert_path(w.ca),
		       h_strf("%d", w.app_port), NULL);
	cr_assert_gt(pid, 0);
	cr_assert_eq(h_wait_output(pid, "sent", 10000), 0, "the client did not get to send");
	ev = wait_event_sni(&w, "flow.sni", "localhost");
	cr_assert(ev, "the ClientHello was not allowed");
	json_decref(ev);
	t0 = h_cpu_ticks(w.d.pid);
	usleep(1000 * 1000);
	t1 = h_cpu_ticks(w.d.pid);
	cr_expect_lt(t1 - t0, sysconf(_SC_CLK_TCK) / 4, "lanyardd burnt %ld ticks in 1 s",
		     t1 - t0);
	/* the bytes after the mark went on (the upstream saw them and gave up on the flow) */
	ev = h_jsonl_wait(w.d.audit, "event", "flow.close", 8000);
	cr_expect(ev, "the flow never ended");
	cr_expect_gt(json_integer_value(json_object_get(ev, "bytes_up")), 1000);
	json_decref(ev);
	h_wait_exit(pid, 10000);
	cr_expect(h_alive(w.d.pid));
	tlsfix_ca_free(w.ca);
}

/*
 * The app shuts its write side after its request (no close_notify): the upstream sees the
 * FIN, and only then answers; the answer still reaches the app, which then sees the EOF.
 */
Test(tls, passthrough_relays_a_half_close_and_the_answer_after_it)
{
	long long size = 3 * 1024 * 1024 + 17;
	struct pt_result sent, got;
	struct world w;
	json_t *ev;
	char *out, *srv_out;
	pid_t srv;

	srv = pt_relay_start(&w, "half", size);
	cr_assert_eq(h_runl(w.cg, 30000, &out, LY_PYTHON, "-c", py_pt_client,
			    tlsfix_ca_cert_path(w.ca), h_strf("%d", w.app_port), "half", "0",
			    NULL), 0, "client: %s", out);
	got = pt_parse(out, "got");
	cr_assert_eq(h_wait_exit(srv, 10000), 0, "the TLS server failed");
	srv_out = h_read_file(h_out_path("ptsrv"), NULL);
	cr_expect(strstr(srv_out, "eof after GIVE"), "the upstream never saw the FIN: %s",
		  srv_out);
	sent = pt_parse(srv_out, "sent");
	cr_expect_eq(got.n, size);
	cr_expect_str_eq(got.sha, sent.sha, "the bytes were altered on the way");
	ev = pt_flow_close(&w);
	cr_expect_str_eq(json_string_value(json_object_get(ev, "reason")), "done");
	json_decref(ev);
	cr_expect(h_file_contains(h_err_path(w.d.name), "passthrough relayed by splice"));
	free(srv_out);
	free(out);
	tlsfix_ca_free(w.ca);
}

/*
 * The other way round: the upstream answers and half-closes first, and only then does the
 * app send (more than the upstream, which waits 1 s, can take at once) and close its side.
 * The app's FIN reaches lanyardd while its bytes still wait there (the socket is then hung
 * up both ways): they all get through.
 */
Test(tls, passthrough_relays_the_apps_bytes_after_the_upstream_half_closed)
{
	struct pt_result sent, got, wrote, read;
	struct world w;
	json_t *ev;
	char *out, *srv_out;
	pid_t srv;

	srv = pt_relay_start(&w, "first", 100000);
	cr_assert_eq(h_runl(w.cg, 30000, &out, LY_PYTHON, "-c", py_pt_client,
			    tlsfix_ca_cert_path(w.ca), h_strf("%d", w.app_port), "after", "0",
			    NULL), 0, "client: %s", out);
	got = pt_parse(out, "got");
	wrote = pt_parse(out, "wrote");
	cr_assert_eq(h_wait_exit(srv, 10000), 0, "the TLS server failed");
	srv_out = h_read_file(h_out_path("ptsrv"), NULL);
	sent = pt_parse(srv_out, "sent");
	read = pt_parse(srv_out, "read");
	cr_expect_eq(got.n, 100000);
	cr_expect_str_eq(got.sha, sent.sha, "the answer was altered on the way");
	cr_expect_eq(read.n, wrote.n, "the upstream got %lld of %lld bytes", read.n, wrote.n);
	cr_expect_str_eq(read.sha, wrote.sha, "the app's bytes were altered on the way");
	ev = pt_flow_close(&w);
	cr_expect_str_eq(json_string_value(json_object_get(ev, "reason")), "done");
	json_decref(ev);
	free(srv_out);
	free(out);
	tlsfix_ca_free(w.ca);
}

/*
 * A passthrough flow needs two pipes: when lanyardd has no descriptor for them the flow is
 * refused (flow.deny, nothing sent upstream) and lanyardd goes on serving.
 */
Test(tls, passthrough_without_descriptors_for_its_pipes_is_refused_cleanly)
{
	struct rlimit old, low;
	struct world w;
	json_t *ev;
	char *out;

	passthrough_start(&w, "localhost:%d", "");
	cr_assert_eq(ly_curl(w.cg, &out, "--cacert", tlsfix_ca_cert_path(w.ca),
			     https(&w, "/first"), NULL), 0, "curl: %s", out);
	free(out);
	cr_assert(h_jsonl_wait(w.d.audit, "event", "flow.close", 5000));
	/* room for the accepted socket and one more: the first pipe2() fails with EMFILE */
	cr_assert_eq(prlimit(w.d.pid, RLIMIT_NOFILE, NULL, &old), 0);
	low = (struct rlimit){ .rlim_cur = h_nofile_leaving(w.d.pid, 2), .rlim_max = old.rlim_max };
	cr_assert_eq(prlimit(w.d.pid, RLIMIT_NOFILE, &low, NULL), 0);
	cr_expect_neq(ly_curl(w.cg, &out, "--cacert", tlsfix_ca_cert_path(w.ca),
			      https(&w, "/starved"), NULL), 0, "curl was served: %s", out);
	free(out);
	ev = wait_deny(&w, "out of file descriptors");
	cr_expect_str_eq(json_string_value(json_object_get(ev, "mode")), "passthrough");
	cr_expect_str_eq(json_string_value(json_object_get(ev, "sni")), "localhost");
	json_decref(ev);
	cr_assert_eq(prlimit(w.d.pid, RLIMIT_NOFILE, &old, NULL), 0);
	cr_expect_eq(h_jsonl_count(w.up_log, "target", "/starved"), 0, "/starved went upstream");
	cr_expect_eq(h_jsonl_count(w.d.audit, "event", "flow.sni"), 1, "the refused flow was "
		     "allowed first");
	cr_assert_eq(ly_curl(w.cg, &out, "--cacert", tlsfix_ca_cert_path(w.ca),
			     https(&w, "/after"), NULL), 0, "curl: %s", out);
	cr_expect_str_eq(out, "ok\n");
	free(out);
	cr_expect(h_alive(w.d.pid));
	tlsfix_ca_free(w.ca);
}

/* --- x509 credentials: mTLS to the upstream, cnf-bound JWTs (RFC 8705) ---------------------- */

/*
 * lanyardd first (its CA is then in state_dir), then ly-upstream requiring a client
 * certificate from that CA; route localhost:<app_port> with tls: originate and @cred (a
 * `credential:` flow mapping).  @client_ca false: the upstream asks for no certificate.
 * @tickets: ly-upstream's --tls-tickets ("full": tickets after full handshakes only), or NULL.
 */
static void mtls_start_tickets(struct world *w, const char *cred, bool client_ca,
			       const char *tickets)
{
	char *cert = NULL, *key = NULL;
	const char *extra[9] = { "--tls-cert", NULL, "--tls-key", NULL };
	int n = 4;

	memset(w, 0, sizeof(*w));
	h_require_root_bpf();
	w->ca = tlsfix_ca_new("upstream test root");
	cr_assert(w->ca);
	cr_assert_eq(tlsfix_server_cert(w->ca, local_names, &cert, &key), 0);
	w->up_port = h_free_port();
	w->app_port = h_free_port();
	w->cg = h_cgroup_create("app");
	cr_assert(w->cg);
	ly_start(&w->d, ly_yaml_workload("app", w->cg, h_strf(
		"      - to: localhost:%d\n"
		"        tls: originate\n"
		"        ca_file: %s\n"
		"        upstream: { port: %d }\n"
		"        credential: %s\n",
		w->app_port, tlsfix_ca_cert_path(w->ca), w->up_port, cred)));
	w->lanyard_ca = h_strf("%s/ca.crt", w->d.state_dir);
	extra[1] = cert;
	extra[3] = key;
	if (client_ca) {
		extra[n++] = "--client-ca";
		extra[n++] = w->lanyard_ca;
	}
	if (tickets) {
		extra[n++] = "--tls-tickets";
		extra[n++] = tickets;
	}
	cr_assert_gt(h_upstream_args("up", w->up_port, extra), 0, "ly-upstream");
	w->up_log = h_path("up.jsonl");
	w->up_raw = h_path("up.raw");
}

/* The same, the upstream issuing tickets as OpenSSL does by default. */
static void mtls_start(struct world *w, const char *cred, bool client_ca)
{
	mtls_start_tickets(w, cred, client_ca, NULL);
}

/* curl http://localhost:<app_port>@path from the app (a new connection each time); "ok". */
static void app_get(const struct world *w, const char *path)
{
	char *out;

	cr_assert_eq(ly_curl(w->cg, &out, h_strf("http://localhost:%d%s", w->app_port, path),
			     NULL), 0, "curl: %s", out);
	cr_expect_str_eq(out, "ok\n");
	free(out);
}

/* The client certificate that the upstream saw on the request for @target; asserts. */
static json_t *seen_cert(const struct world *w, const char *target)
{
	json_t *req = h_jsonl_wait(w->up_log, "target", target, 5000), *cc;

	cr_assert(req, "the upstream never received %s", target);
	cc = json_object_get(json_object_get(req, "tls"), "client_cert");
	cr_assert(json_is_object(cc), "%s: no client certificate upstream", target);
	json_incref(cc);
	json_decref(req);
	return cc;
}

Test(tls, x509_presents_a_spiffe_client_certificate_to_an_upstream_that_requires_one)
{
	json_t *cc, *req, *toks, *t, *x = NULL, *use;
	struct world w;
	long long nb, na;
	char *dump;
	size_t i;

	mtls_start(&w, "{ type: x509 }", true);
	/* the upstream verified the chain against lanyard's CA (or the handshake had failed) */
	app_get(&w, "/x509");
	cc = seen_cert(&w, "/x509");
	cr_expect_str_eq(json_string_value(json_array_get(json_object_get(cc, "uri_sans"), 0)),
			 LY_SUB("app"));
	cr_expect_eq(json_array_size(json_object_get(cc, "uri_sans")), 1);
	nb = json_integer_value(json_object_get(cc, "not_before"));
	na = json_integer_value(json_object_get(cc, "not_after"));
	cr_expect_eq(na - nb, 3600 + 60, "1 h, backdated 60 s: %lld", na - nb);
	cr_expect_leq(llabs(na - 3600 - (long long)time(NULL)), 10);
	req = h_jsonl_wait(w.up_log, "target", "/x509", 1000);
	cr_assert(req);
	cr_expect_eq(h_json_header_count(req, "Authorization"), 0, "x509 adds no header");
	json_decref(req);
	/* lanyard tokens: the serial and expiry, never key material */
	toks = ly_cli_json(&w.d, "tokens");
	cr_assert(toks);
	json_array_foreach(json_object_get(toks, "tokens"), i, t)
		x = json_object_get(t, "x509");
	cr_assert(json_is_object(x), "no x509 in lanyard tokens");
	cr_expect(!strcasecmp(json_string_value(json_object_get(x, "serial")),
			      json_string_value(json_object_get(cc, "serial"))),
		  "tokens lists another serial than the upstream saw");
	cr_expect_eq(json_integer_value(json_object_get(x, "not_after")), na);
	dump = json_dumps(toks, 0);
	cr_expect_null(strstr(dump, "PRIVATE"), "key material in tokens");
	free(dump);
	use = h_jsonl_wait(w.d.audit, "event", "credential.use", 5000);
	cr_assert(use);
	cr_expect(!strcasecmp(json_string_value(json_object_get(use, "serial")),
			      json_string_value(json_object_get(cc, "serial"))));
	json_decref(use);
	json_decref(toks);
	json_decref(cc);
	tlsfix_ca_free(w.ca);
}

Test(tls, x509_client_certificates_rotate_across_three_lifetimes, .timeout = 90)
{
	char serials[16][64];
	size_t nserials = 0;
	struct world w;

	mtls_start(&w, "{ type: x509, ttl: 2s }", true);
	/* new connections for four 2 s lifetimes: each must carry an unexpired certificate */
	for (int i = 0; i < 16; i++) {
		const char *target = h_strf("/rot/%d", i);
		long long before = (long long)time(NULL);
		json_t *cc;
		const char *serial;
		size_t k;

		app_get(&w, target);
		cc = seen_cert(&w, target);
		serial = json_string_value(json_object_get(cc, "serial"));
		cr_expect_eq(json_integer_value(json_object_get(cc, "not_after")) -
			     json_integer_value(json_object_get(cc, "not_before")), 2 + 60);
		cr_expect_geq(json_integer_value(json_object_get(cc, "not_after")), before,
			      "%s: the certificate had expired when it was used", target);
		for (k = 0; k < nserials && strcmp(serials[k], serial); k++)
			;
		if (k == nserials)
			snprintf(serials[nserials++], sizeof(serials[0]), "%s", serial);
		json_decref(cc);
		usleep(500 * 1000);
	}
	cr_expect_geq(nserials, 3, "%zu distinct serials over ~8 s of 2 s certificates",
		      nserials);
	cr_expect_geq(h_jsonl_count(w.d.audit, "event", "credential.issue"), 3);
	tlsfix_ca_free(w.ca);
}

/* hex (lowercase SHA-256) -> base64url, as RFC 8705 3.1 x5t#S256 */
static char *x5t_of_hex(const char *hex)
{
	static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				  "abcdefghijklmnopqrstuvwxyz0123456789-_";
	unsigned char md[32];
	char *out = h_strf("%64s", "");
	size_t o = 0;

	cr_assert_eq(strlen(hex), 64);
	for (int i = 0; i < 32; i++)
		cr_assert_eq(sscanf(hex + 2 * i, "%2hhx", &md[i]), 1);
	for (int i = 0; i < 32; i += 3) {
		unsigned v = (unsigned)md[i] << 16 | (i + 1 < 32 ? (unsigned)md[i + 1] << 8 : 0) |
			     (i + 2 < 32 ? md[i + 2] : 0);

		out[o++] = b64[v >> 18 & 63];
		out[o++] = b64[v >> 12 & 63];
		if (i + 1 < 32)
			out[o++] = b64[v >> 6 & 63];
		if (i + 2 < 32)
			out[o++] = b64[v & 63];
	}
	out[o] = '\0';
	return out;
}

Test(tls, a_jwt_with_mtls_is_bound_to_the_certificate_the_upstream_saw)
{
	json_t *req, *claims, *cc;
	const char *x5t;
	struct world w;

	mtls_start(&w, "{ type: jwt, audience: " LY_AUD ", ttl: 5m, mtls: true }", true);
	app_get(&w, "/bound");
	req = verified_request(&w, "/bound", &claims);
	cc = seen_cert(&w, "/bound");
	x5t = json_string_value(json_object_get(json_object_get(claims, "cnf"), "x5t#S256"));
	cr_assert(x5t, "no cnf x5t#S256 in the JWT");
	cr_expect_str_eq(x5t, x5t_of_hex(json_string_value(json_object_get(cc, "sha256"))),
			 "the JWT is bound to another certificate");
	cr_expect_str_eq(json_string_value(json_array_get(json_object_get(cc, "uri_sans"), 0)),
			 LY_SUB("app"));
	json_decref(cc);
	json_decref(claims);
	json_decref(req);
	tlsfix_ca_free(w.ca);
}

Test(tls, a_route_without_x509_presents_no_client_certificate)
{
	json_t *req, *claims;
	struct world w;

	/* an upstream that does not ask: nothing is sent */
	mtls_start(&w, "{ type: jwt, audience: " LY_AUD ", ttl: 5m }", false);
	app_get(&w, "/nocert");
	req = verified_request(&w, "/nocert", &claims);
	cr_expect(json_is_null(json_object_get(json_object_get(req, "tls"), "client_cert")),
		  "a client certificate was presented");
	cr_expect_null(json_object_get(claims, "cnf"));
	json_decref(claims);
	json_decref(req);
	tlsfix_ca_free(w.ca);
}

Test(tls, a_kept_alive_connection_keeps_its_certificate_and_bound_jwt_until_it_expires,
     .timeout = 90)
{
	const char *serial0 = NULL, *x5t0 = NULL;
	struct ly_driver dr;
	json_t *toks, *r;
	int ok = 0, expired = 0;
	struct world w;

	mtls_start(&w, "{ type: jwt, audience: " LY_AUD ", ttl: 6s, mtls: true }", true);
	ly_driver_start(&dr, "drv", w.cg, "127.0.0.1", w.app_port);
	/* one connection, a request every 0.5 s: rotation at half life (3 s), expiry at 6 s */
	for (int i = 0; i < 24 && !expired; i++) {
		const char *target = h_strf("/ka/%d", i);
		long long status;
		json_t *req, *claims, *cc, *cnf;

		r = ly_driver_get(&dr, target, 5000);
		cr_assert(r, "%s: no answer", target);
		status = json_integer_value(json_object_get(r, "status"));
		if (status == 503) {
			const char *body = json_string_value(json_object_get(r, "body"));

			cr_expect(body && strstr(body, "client certificate of this connection "
						 "expired"), "%s: %s", target, body);
			cr_expect_eq(h_jsonl_count(w.up_log, "target", target), 0);
			expired = 1;
			json_decref(r);
			break;
		}
		cr_assert_eq(status, 200, "%s: %lld", target, status);
		json_decref(r);
		req = verified_request(&w, target, &claims);
		cc = json_object_get(json_object_get(req, "tls"), "client_cert");
		if (!serial0) {
			serial0 = h_strf("%s", json_string_value(json_object_get(cc, "serial")));
			x5t0 = x5t_of_hex(json_string_value(json_object_get(cc, "sha256")));
		}
		/* every request on the connection: the JWT of the certificate it presented */
		cnf = json_object_get(claims, "cnf");
		cr_expect_str_eq(json_string_value(json_object_get(cnf, "x5t#S256")), x5t0, "%s",
				 target);
		ok++;
		json_decref(claims);
		json_decref(req);
		usleep(500 * 1000);
	}
	cr_expect_geq(ok, 2);
	cr_expect(expired, "the connection's certificate never expired for its requests");
	/* meanwhile new connections got a newer certificate */
	toks = ly_cli_json(&w.d, "tokens");
	cr_assert(toks);
	r = json_object_get(json_array_get(json_object_get(toks, "tokens"), 0), "x509");
	cr_expect(json_is_object(r) &&
		  strcasecmp(json_string_value(json_object_get(r, "serial")), serial0),
		  "the route's certificate did not rotate");
	json_decref(toks);
	tlsfix_ca_free(w.ca);
}

/* --- upstream session resumption ------------------------------------------------------------ */

/* The upstream's "resumed" for the request to @target; asserts it was received. */
static bool seen_resumed(const struct world *w, const char *target)
{
	json_t *req = h_jsonl_wait(w->up_log, "target", target, 5000);
	bool r;

	cr_assert(req, "the upstream never received %s", target);
	r = json_is_true(json_object_get(json_object_get(req, "tls"), "resumed"));
	json_decref(req);
	return r;
}

Test(tls, upstream_sessions_are_resumed_and_every_request_still_gets_a_credential)
{
	json_t *req, *claims;
	struct world w;

	mtls_start(&w, "{ type: jwt, audience: " LY_AUD ", ttl: 5m }", false);
	app_get(&w, "/resume-1");
	app_get(&w, "/resume-2");
	app_get(&w, "/resume-3");
	cr_expect(!seen_resumed(&w, "/resume-1"), "the first connection cannot resume");
	/* the first response brought the upstream's ticket: the next connections use it */
	cr_expect(seen_resumed(&w, "/resume-2"), "the second upstream handshake was full");
	cr_expect(seen_resumed(&w, "/resume-3"), "the third upstream handshake was full");
	req = verified_request(&w, "/resume-3", &claims);
	json_decref(claims);
	json_decref(req);
	tlsfix_ca_free(w.ca);
}

/* The upstream's number of the ticket resumed for @target, 0 if it was not resumed. */
static long long ticket_of(const struct world *w, const char *target)
{
	json_t *req = h_jsonl_wait(w->up_log, "target", target, 5000);
	long long n;

	cr_assert(req, "the upstream never received %s", target);
	n = json_integer_value(json_object_get(json_object_get(req, "tls"), "ticket"));
	json_decref(req);
	return n;
}

/*
 * A TLS 1.3 ticket is presented once (RFC 8446 C.4: a reused ticket links the connections
 * that present it).  The upstream issues tickets after full handshakes only, two each
 * (OpenSSL's default): the first connection brings two, the next two resume with one each,
 * the fourth has none left and makes a full handshake, whose tickets the fifth uses.
 */
Test(tls, an_upstream_ticket_is_presented_once)
{
	long long t[6];
	struct world w;

	mtls_start_tickets(&w, "{ type: jwt, audience: " LY_AUD ", ttl: 5m }", false, "full");
	for (int i = 1; i <= 5; i++) {
		app_get(&w, h_strf("/ticket-%d", i));
		t[i] = ticket_of(&w, h_strf("/ticket-%d", i));
	}
	cr_expect_eq(t[1], 0, "the first connection resumed");
	cr_expect(t[2] > 0 && t[3] > 0, "tickets %lld, %lld: not resumed", t[2], t[3]);
	cr_expect_neq(t[2], t[3], "ticket %lld presented twice", t[2]);
	cr_expect_eq(t[4], 0, "resumed with ticket %lld: presented again", t[4]);
	cr_expect(t[5] > 0 && t[5] != t[2] && t[5] != t[3], "the fifth: ticket %lld", t[5]);
	tlsfix_ca_free(w.ca);
}

Test(tls, a_connection_with_a_client_certificate_never_resumes)
{
	struct world w;
	json_t *cc;

	/* a resumed session would carry the client identity of an older handshake */
	mtls_start(&w, "{ type: x509, ttl: 1h }", true);
	app_get(&w, "/cert-1");
	app_get(&w, "/cert-2");
	cr_expect(!seen_resumed(&w, "/cert-1") && !seen_resumed(&w, "/cert-2"),
		  "an mTLS upstream session was resumed");
	cc = seen_cert(&w, "/cert-2");
	json_decref(cc);
	tlsfix_ca_free(w.ca);
}
