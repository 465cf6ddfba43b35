// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Copyright (c) 2026 The lanyard authors */
/*
 * What lanyard promises an app's memory: after real requests through interception with a
 * JWT, a JWT bound to an mTLS certificate and an x509 route, the app's whole address space
 * holds none of the credentials its upstreams received and none of lanyardd's private keys.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include "lib/lanyard.h"
#include "lib/procmem.h"
#include "lib/tlsfix.h"

TestSuite(appmem, H_FIXTURES, .timeout = 60);

#define MAX_NEEDLES 512
#define ROUNDS 4	/* requests per route */

static const char *const local_names[] = { "localhost", "127.0.0.1", "::1", NULL };

struct needles {
	struct h_needle nd[MAX_NEEDLES];
	size_t n;
};

static void add(struct needles *ns, const void *p, size_t len, const char *label)
{
	cr_assert_lt(ns->n, MAX_NEEDLES);
	cr_assert_gt(len, 0);
	ns->nd[ns->n++] = (struct h_needle){ .p = p, .len = len, .label = label };
}

/* A harness-owned copy of @len bytes (needles outlive the buffers they come from). */
static void *keep(const void *p, size_t len)
{
	char *c = h_strf("%*s", (int)len, "");

	memcpy(c, p, len);
	return c;
}

/*
 * Needles for the PEM private key file @path: each base64 line of the file, the DER it
 * encodes, and the private value (EC) both as big-endian bytes and as OpenSSL keeps it in
 * a BIGNUM (little-endian limbs on x86-64 and arm64: the bytes reversed).
 */
static void key_needles(struct needles *ns, const char *path, const char *what)
{
	char *text = h_read_file(path, NULL), *name = NULL, *hdr = NULL, *save = NULL, *line;
	unsigned char *der = NULL, raw[66], rev[66];
	const unsigned char *p;
	long derlen = 0;
	BIGNUM *priv = NULL;
	EVP_PKEY *pkey;
	BIO *bio;
	int len;

	cr_assert(text, "%s: cannot read the key", path);
	bio = BIO_new_mem_buf(text, -1);
	cr_assert(bio && PEM_read_bio(bio, &name, &hdr, &der, &derlen), "%s: not PEM", path);
	add(ns, keep(der, (size_t)derlen), (size_t)derlen, h_strf("%s: DER", what));
	p = der;
	pkey = d2i_AutoPrivateKey(NULL, &p, derlen);
	cr_assert(pkey, "%s: not a private key", path);
	cr_assert(EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_PRIV_KEY, &priv), "%s: not EC",
		  path);
	len = (EVP_PKEY_get_bits(pkey) + 7) / 8;
	cr_assert(len > 0 && len <= (int)sizeof(raw) && BN_bn2binpad(priv, raw, len) == len);
	for (int i = 0; i < len; i++)
		rev[i] = raw[len - 1 - i];
	add(ns, keep(raw, (size_t)len), (size_t)len, h_strf("%s: private value", what));
	add(ns, keep(rev, (size_t)len), (size_t)len, h_strf("%s: private value (BIGNUM)", what));
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		if (strncmp(line, "-----", 5) && strlen(line) >= 16)
			add(ns, h_strf("%s", line), strlen(line), h_strf("%s: PEM line", what));
	explicit_bzero(raw, sizeof(raw));
	explicit_bzero(rev, sizeof(rev));
	BN_clear_free(priv);
	EVP_PKEY_free(pkey);
	OPENSSL_free(name);
	OPENSSL_free(hdr);
	OPENSSL_clear_free(der, (size_t)derlen);
	BIO_free(bio);
	explicit_bzero(text, strlen(text));
	free(text);
}

/*
 * Needles for every credential an upstream log (@log) shows: the whole Authorization
 * value after "Bearer ", and its signature alone (a part of the token is as bad).  Only
 * requests whose target contains @canary (made by the scanned app) count.  Returns how
 * many requests carried one.
 */
static int token_needles(struct needles *ns, const char *log, const char *canary,
			 const struct ly_daemon *d)
{
	json_t *all = ly_jsonl_all(log, NULL, NULL), *req;
	int count = 0;
	size_t i;

	json_array_foreach(all, i, req) {
		const char *target = json_string_value(json_object_get(req, "target"));
		const char *tok = ly_req_token(req, "Authorization", "Bearer ");
		const char *sig;

		if (!target || !strstr(target, canary) || !tok)
			continue;
		sig = strrchr(tok, '.');
		cr_assert(sig && strlen(sig + 1) >= 40, "%s: not a signed JWT", target);
		add(ns, tok, strlen(tok), h_strf("the token of %s", target));
		add(ns, sig + 1, strlen(sig + 1), h_strf("the signature of the token of %s",
							 target));
		if (!count) {
			/* a real credential, not something that merely looks like one */
			json_t *claims = ly_verify(d, tok, LY_AUD);

			cr_assert(claims, "%s: the token does not verify", target);
			json_decref(claims);
		}
		count++;
	}
	json_decref(all);
	return count;
}

/*
 * The app: three connections kept open -- HTTPS to A (intercept, JWT) and B (intercept, JWT
 * bound to an mTLS certificate upstream), plain HTTP to C (originate, x509) -- ROUNDS
 * requests on each, to paths that carry a random canary the script keeps in a variable.
 * Then it prints the canary and "done", and waits with everything still open.
 */
static const char py_app[] =
	"import http.client, os, ssl, sys, time\n"
	"canary = 'canary-' + os.urandom(16).hex()\n"
	"ctx = ssl.create_default_context(cafile=sys.argv[1])\n"
	"conns = [http.client.HTTPSConnection('localhost', int(sys.argv[2]), context=ctx),\n"
	"         http.client.HTTPSConnection('localhost', int(sys.argv[3]), context=ctx),\n"
	"         http.client.HTTPConnection('localhost', int(sys.argv[4]))]\n"
	"bodies = []\n"
	"for i in range(int(sys.argv[5])):\n"
	"    for k, c in enumerate(conns):\n"
	"        c.request('GET', '/%s/%s/%d' % (canary, 'ABC'[k], i))\n"
	"        r = c.getresponse()\n"
	"        bodies.append(r.read())\n"
	"        if r.status != 200: sys.exit('%s %d %r' % ('ABC'[k], r.status, bodies[-1]))\n"
	"print('canary', canary, flush=True)\n"
	"print('done', flush=True)\n"
	"time.sleep(300)\n";

struct world {
	struct ly_daemon d;
	struct tlsfix_ca *ca;	/* the upstreams' CA */
	const char *cg, *lanyard_ca;
	int port_a, port_b, port_c;
};

/*
 * lanyardd first (its CA then exists), then upstream A (TLS) and B (TLS, requires a client
 * certificate from lanyard's CA).  Routes: A intercept + JWT; B intercept + JWT with mtls;
 * C (a plain port) originate to B's port + x509.
 */
static void world_start(struct world *w)
{
	char *cert = NULL, *key = NULL;
	const char *cafile;

	memset(w, 0, sizeof(*w));
	h_require_root_bpf();
	w->ca = tlsfix_ca_new("upstream test root");
	cr_assert(w->ca);
	cr_assert_eq(tlsfix_server_cert(w->ca, local_names, &cert, &key), 0);
	cafile = tlsfix_ca_cert_path(w->ca);
	w->port_a = h_free_port();
	w->port_b = h_free_port();
	w->port_c = h_free_port();
	w->cg = h_cgroup_create("app");
	cr_assert(w->cg);
	ly_start(&w->d, ly_yaml_workload("app", w->cg, h_strf(
		"      - to: localhost:%d\n"
		"        tls: intercept\n"
		"        ca_file: %s\n"
		"        credential: { type: jwt, audience: " LY_AUD ", ttl: 5m }\n"
		"      - to: localhost:%d\n"
		"        tls: intercept\n"
		"        ca_file: %s\n"
		"        credential: { type: jwt, audience: " LY_AUD ", ttl: 5m, mtls: true }\n"
		"      - to: localhost:%d\n"
		"        tls: originate\n"
		"        ca_file: %s\n"
		"        upstream: { port: %d }\n"
		"        credential: { type: x509 }\n",
		w->port_a, cafile, w->port_b, cafile, w->port_c, cafile, w->port_b)));
	w->lanyard_ca = h_strf("%s/ca.crt", w->d.state_dir);
	cr_assert_gt(h_tls_upstream("upa", w->port_a, cert, key, NULL), 0, "ly-upstream A");
	cr_assert_gt(h_tls_upstream("upb", w->port_b, cert, key, w->lanyard_ca), 0,
		     "ly-upstream B");
}

/* The canary the app printed; asserts. */
static char *app_canary(void)
{
	char *out = h_read_file(h_out_path("app"), NULL), *p, *canary;

	cr_assert(out && (p = strstr(out, "canary ")), "the app printed no canary: %s", out);
	canary = h_strf("%.39s", p + strlen("canary "));
	cr_assert_eq(strlen(canary), 39, "canary: %s", canary);
	free(out);
	return canary;
}

Test(appmem, the_apps_memory_holds_no_credential_and_no_private_key)
{
	static struct needles ns;
	static bool found[MAX_NEEDLES];
	struct world w;
	char *canary;
	long long scanned;
	int ntok;
	pid_t app;

	world_start(&w);
	app = h_spawnl("app", w.cg, LY_PYTHON, "-c", py_app, w.lanyard_ca,
		       h_strf("%d", w.port_a), h_strf("%d", w.port_b), h_strf("%d", w.port_c),
		       h_strf("%d", ROUNDS), NULL);
	cr_assert_gt(app, 0);
	cr_assert_eq(h_wait_output(app, "done", 30000), 0, "the app did not finish its requests");
	canary = app_canary();

	/* every credential the upstreams received from this app */
	ntok = token_needles(&ns, h_path("upa.jsonl"), canary, &w.d);
	cr_expect_eq(ntok, ROUNDS, "upstream A: %d requests with a token", ntok);
	ntok = token_needles(&ns, h_path("upb.jsonl"), canary, &w.d);
	/* B's log also holds C's requests (same upstream): x509 only, no token */
	cr_expect_eq(ntok, ROUNDS, "upstream B: %d requests with a token", ntok);
	cr_expect_eq(h_jsonl_count(h_path("upb.jsonl"), NULL, NULL), 2 * ROUNDS);
	cr_expect_eq(ly_jsonl_wait_count(w.d.audit, "event", "credential.use", 3 * ROUNDS, 5000),
		     3 * ROUNDS);
	/* lanyardd's keys: the local CA (it signed the app's leaves) and the JWT key */
	key_needles(&ns, h_strf("%s/ca.key", w.d.state_dir), "the CA key");
	key_needles(&ns, h_strf("%s/jwt-es256.pem", w.d.state_dir), "the JWT signing key");
	/* any PEM private key at all (the mTLS client key is known only to lanyardd) */
	add(&ns, "PRIVATE KEY-----", strlen("PRIVATE KEY-----"), "a PEM private key marker");
	/* the control: the scan must find what the app does hold */
	add(&ns, canary, strlen(canary), "the app's own canary");

	cr_assert(h_alive(app), "the app is gone: nothing to scan");
	scanned = h_proc_mem_scan(app, ns.nd, ns.n, found);
	cr_assert_gt(scanned, 1 << 20, "scanned %lld bytes of the app", scanned);
	cr_assert(found[ns.n - 1], "the canary the app holds was not found in %lld bytes: the "
		  "scan proves nothing", scanned);
	for (size_t i = 0; i + 1 < ns.n; i++)
		cr_expect(!found[i], "the app's memory holds %s", ns.nd[i].label);
	cr_assert(h_alive(app), "the app exited during the scan");
	tlsfix_ca_free(w.ca);
}

/* The scanner itself: it finds bytes a process holds, and not bytes it never saw. */
Test(appmem, the_scanner_finds_what_a_process_holds_and_nothing_else)
{
	unsigned char held[24], never[24];
	char *hex_held = h_strf("%48s", ""), *hex_never = h_strf("%48s", "");
	pid_t pid;

	cr_assert_eq(RAND_bytes(held, sizeof(held)), 1);
	cr_assert_eq(RAND_bytes(never, sizeof(never)), 1);
	for (size_t i = 0; i < sizeof(held); i++) {
		snprintf(hex_held + 2 * i, 3, "%02x", held[i]);
		snprintf(hex_never + 2 * i, 3, "%02x", never[i]);
	}
	/* the process holds held's bytes (decoded from hex: not in its argv as such) */
	pid = h_spawnl("holder", NULL, LY_PYTHON, "-c",
		       "import sys, time\n"
		       "x = bytes.fromhex(sys.argv[1])\n"
		       "print('ready', flush=True)\n"
		       "time.sleep(60)\n", hex_held, NULL);
	cr_assert_gt(pid, 0);
	cr_assert_eq(h_wait_output(pid, "ready", 10000), 0);
	cr_expect_eq(h_proc_mem_contains(pid, held, sizeof(held)), 1);
	cr_expect_eq(h_proc_mem_contains(pid, hex_held, strlen(hex_held)), 1, "its argv");
	cr_expect_eq(h_proc_mem_contains(pid, never, sizeof(never)), 0);
	cr_expect_eq(h_proc_mem_contains(pid, hex_never, strlen(hex_never)), 0);
	cr_expect_lt(h_proc_mem_contains(1 << 30, held, sizeof(held)), 0, "no such process");
}
