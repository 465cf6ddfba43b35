// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Copyright (c) 2026 The lanyard authors */
/*
 * Unit tests for cred.c: slots across reloads, refresh timing, expiry,
 * revocation, audit records, and a minted header verified by PyJWT
 * (tests/tools/verify_jwt.py) as an upstream would.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <jansson.h>
#include <openssl/crypto.h>

#include "audit.h"
#include "cred.h"
#include "jwt.h"
#include "policy.h"
#include "secret.h"

#define ISSUER	"http://127.0.0.1:15002"
#define T0	1700000000

static char tmpdir[64];
static struct jwt_key *key;
static struct cred_issuer *ci;

#define POLICY_YAML(reports_aud) \
	"trust_domain: example.org\n" \
	"workloads:\n" \
	"  - name: billing\n" \
	"    match: { cgroup: /system.slice/billing.service }\n" \
	"    routes:\n" \
	"      - to: 10.0.0.7:8080\n" \
	"        credential: { type: jwt, audience: https://api.example.org, ttl: 10s }\n" \
	"      - to: 10.30.0.5:9000\n" \
	"        credential: { type: jwt, audience: reports, ttl: 2m }\n" \
	"        header: \"X-Api-Key: {token}\"\n" \
	"  - name: reports\n" \
	"    match: { cgroup: /system.slice/reports.service }\n" \
	"    routes:\n" \
	"      - to: 10.0.0.7:8080\n" \
	"        credential: { type: jwt, audience: " reports_aud ", ttl: 10s }\n"

static const char base_yaml[] = POLICY_YAML("https://api.example.org");

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void setup(void)
{
	char err[512] = "", state[128];

	strcpy(tmpdir, "/tmp/ly-test-cred-XXXXXX");
	cr_assert_not_null(mkdtemp(tmpdir));
	snprintf(state, sizeof(state), "%s/state", tmpdir);
	key = jwt_key_load_or_create(state, err, sizeof(err));
	cr_assert_not_null(key, "%s", err);
	ci = cred_issuer_new(key, ISSUER, "example.org");
	cr_assert_not_null(ci);
}

static void teardown(void)
{
	audit_close();
	cred_issuer_free(ci);
	jwt_key_free(key);
	nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(cred, .init = setup, .fini = teardown, .timeout = 5);

static struct policy *parse(const char *yaml)
{
	char err[POLICY_ERR_LEN] = "";
	struct policy *p = policy_parse(yaml, strlen(yaml), "<test>", err, sizeof(err));

	cr_assert_not_null(p, "policy_parse: %s", err);
	return p;
}

static struct policy_route *route(struct policy *p, size_t w, size_t r)
{
	cr_assert(w < p->nworkloads && r < p->workloads[w].nroutes);
	return &p->workloads[w].routes[r];
}

static struct cred_slot *slot(struct policy *p, size_t w, size_t r)
{
	return route(p, w, r)->cred;
}

/* The token inside a rendered header line "<name>: <prefix><token><suffix>\r\n". */
static const char *token_of(const struct cred *c, const char *lead, size_t *len)
{
	size_t ll = strlen(lead);

	cr_assert_geq(c->header->len, ll + 2);
	cr_assert_eq(memcmp(c->header->buf, lead, ll), 0, "header does not start with %s", lead);
	*len = c->header->len - ll - 2;
	return c->header->buf + ll;
}

static void sync_ok(struct policy *np, struct policy *op, int64_t now)
{
	cr_assert_eq(cred_sync(ci, np, op, now), 0);
}

/* --- minting on sync ---------------------------------------------------------------- */

Test(cred, sync_mints_every_route_with_the_exact_header_form)
{
	struct policy *p = parse(base_yaml);
	const struct cred *c;
	const char *tok;
	char fp[SECRET_FP_LEN];
	size_t len = 0;

	sync_ok(p, NULL, T0);
	for (size_t w = 0; w < p->nworkloads; w++) {
		for (size_t r = 0; r < p->workloads[w].nroutes; r++) {
			cr_assert_not_null(slot(p, w, r));
			cr_expect_eq(slot(p, w, r)->issued, 1);
			cr_expect_not_null(cred_get(route(p, w, r), T0));
		}
	}
	c = cred_get(route(p, 0, 0), T0);
	tok = token_of(c, "Authorization: Bearer ", &len);
	/* exactly "Authorization: Bearer <jwt>\r\n": three base64url parts, nothing else */
	cr_expect_eq(strspn(tok, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
			    "0123456789-_."), len);
	cr_expect_eq(memcmp(tok + len, "\r\n", 3), 0);
	cr_expect_eq(c->header->len, strlen(c->header->buf));
	cr_expect_eq(c->iat, T0);
	cr_expect_eq(c->exp, T0 + 10);
	secret_fingerprint(tok, len, fp);
	cr_expect_str_eq(c->fp, fp, "fingerprint is not of the token alone");
	cr_expect_str_eq(slot(p, 0, 0)->workload, "billing");
	policy_free(p);
}

Test(cred, header_template_renders_around_the_token)
{
	struct policy *p = parse(base_yaml);
	const struct cred *c;
	size_t len = 0;

	sync_ok(p, NULL, T0);
	c = cred_get(route(p, 0, 1), T0);
	token_of(c, "X-Api-Key: ey", &len);
	cr_expect_eq(memcmp(c->header->buf + c->header->len - 2, "\r\n", 2), 0);
	cr_expect_null(strchr(c->header->buf + strlen("X-Api-Key: "), ' '));
	cr_expect_eq(c->exp - c->iat, 120);
	policy_free(p);
}

/* --- reload ---------------------------------------------------------------------- */

/* inline arrays, not pointers: Criterion runs each case in a re-executed process */
struct sync_case {
	char name[16];
	char to[24];
	char cred[96];
	char header[48];
	int moved;
};

ParameterizedTestParameters(cred, sync_moves_the_slot_only_for_an_equal_route)
{
#define AUD_OK	"type: jwt, audience: https://api.example.org"
	static struct sync_case cases[] = {
		/* EQUAL */
		{ "billing", "10.0.0.7:8080", AUD_OK ", ttl: 10s", "", 1 },
		{ "billing", "10.0.0.7:8080", AUD_OK ", ttl: 10", "", 1 },
		{ "billing", "10.0.0.7:8080", AUD_OK ", ttl: 10s",
		  "Authorization: Bearer {token}", 1 },
		/* CHANGED */
		{ "billing", "10.0.0.7:8080", "type: jwt, audience: https://x.example.org, ttl: 10",
		  "", 0 },
		{ "billing", "10.0.0.7:8080", AUD_OK ", ttl: 11s", "", 0 },
		{ "billing", "10.0.0.7:8080", AUD_OK ", ttl: 10s", "X-Api-Key: {token}", 0 },
		{ "billing", "10.0.0.7:8080", AUD_OK ", ttl: 10s",
		  "Authorization: Token {token}", 0 },
		{ "billing", "10.0.0.8:8080", AUD_OK ", ttl: 10s", "", 0 },
		{ "billing2", "10.0.0.7:8080", AUD_OK ", ttl: 10s", "", 0 },
	};
#undef AUD_OK

	return cr_make_param_array(struct sync_case, cases, sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct sync_case *t, cred, sync_moves_the_slot_only_for_an_equal_route)
{
	char yaml[1024], hdr[80] = "";
	struct policy *op = parse(base_yaml), *np;
	struct cred_slot *old0;
	char jti[JWT_JTI_LEN];

	if (t->header[0])
		snprintf(hdr, sizeof(hdr), "        header: \"%s\"\n", t->header);
	snprintf(yaml, sizeof(yaml),
		 "trust_domain: example.org\n"
		 "workloads:\n"
		 "  - name: %s\n"
		 "    match: { cgroup: /system.slice/billing.service }\n"
		 "    routes:\n"
		 "      - to: %s\n"
		 "        credential: { %s }\n%s",
		 t->name, t->to, t->cred, hdr);
	np = parse(yaml);
	sync_ok(op, NULL, T0);
	old0 = slot(op, 0, 0);
	memcpy(jti, old0->cur->jti, sizeof(jti));

	sync_ok(np, op, T0 + 3);
	if (t->moved) {
		cr_expect_eq(slot(np, 0, 0), old0, "the slot was not taken over");
		cr_expect_null(route(op, 0, 0)->cred, "the old route still owns the slot");
		cr_expect_str_eq(slot(np, 0, 0)->cur->jti, jti, "a live credential was re-minted");
		cr_expect_eq(slot(np, 0, 0)->issued, 1);
	} else {
		cr_expect_neq(slot(np, 0, 0), old0);
		cr_expect_eq(route(op, 0, 0)->cred, old0, "an unequal route took the slot");
		cr_expect_str_neq(slot(np, 0, 0)->cur->jti, jti);
		cr_expect_eq(slot(np, 0, 0)->cur->iat, T0 + 3, "a changed route is minted at once");
	}
	/* the name that the slot borrows must be the new policy's */
	cr_expect_eq(slot(np, 0, 0)->workload, np->workloads[0].name);
	/* both orders of freeing are clean: no slot is owned twice (ASan) */
	policy_free(op);
	cr_expect_not_null(cred_get(route(np, 0, 0), T0 + 3));
	policy_free(np);
}

Test(cred, sync_failure_leaves_both_policies_as_they_were)
{
	struct policy *op = parse(base_yaml), *np = parse(POLICY_YAML("changed"));
	struct policy_route *fresh;
	char *saved;

	sync_ok(op, NULL, T0);
	/* make the new policy's one changed route unmintable (a CR in the template) */
	fresh = route(np, 1, 0);
	saved = fresh->header_suffix;
	fresh->header_suffix = "\r\nX-Evil: 1";
	cr_expect_eq(cred_sync(ci, np, op, T0 + 1), -EINVAL);
	fresh->header_suffix = saved;
	for (size_t w = 0; w < np->nworkloads; w++)
		for (size_t r = 0; r < np->workloads[w].nroutes; r++) {
			cr_expect_null(route(np, w, r)->cred, "new policy kept a slot");
			cr_expect_not_null(route(op, w, r)->cred, "old policy lost a slot");
		}
	policy_free(np);
	cr_expect_not_null(cred_get(route(op, 0, 0), T0 + 1));
	policy_free(op);
}

Test(cred, tick_heals_a_route_that_lost_its_slot)
{
	struct policy *op = parse(base_yaml), *np = parse(base_yaml);

	/* a reload that failed after cred_sync(): the new policy is freed with the slots */
	sync_ok(op, NULL, T0);
	sync_ok(np, op, T0 + 1);
	policy_free(np);
	cr_expect_null(cred_get(route(op, 0, 0), T0 + 1));
	cred_tick(ci, op, T0 + 1);
	cr_expect_not_null(cred_get(route(op, 0, 0), T0 + 1));
	cr_expect_not_null(cred_get(route(op, 1, 0), T0 + 1));
	policy_free(op);
}

/* --- refresh and expiry -------------------------------------------------------------- */

Test(cred, tick_refreshes_only_when_due)
{
	struct policy *p = parse(base_yaml);
	struct cred_slot *s;
	char jti[JWT_JTI_LEN];

	sync_ok(p, NULL, T0);
	s = slot(p, 0, 0);	/* ttl 10 s: refreshed with 5 s left */
	cr_expect_eq(cred_refresh_margin(10), 5);
	cr_expect_eq(s->refresh_at, T0 + 5);
	memcpy(jti, s->cur->jti, sizeof(jti));
	cred_tick(ci, p, T0 + 4);
	cr_expect_str_eq(s->cur->jti, jti, "refreshed early");
	cr_expect_eq(s->issued, 1);
	cr_expect_eq(slot(p, 0, 1)->issued, 1, "the 2m route was refreshed early");

	cred_tick(ci, p, T0 + 5);
	cr_expect_str_neq(s->cur->jti, jti, "not refreshed when due");
	cr_expect_eq(s->issued, 2);
	cr_expect_eq(s->cur->iat, T0 + 5);
	cr_expect_eq(s->cur->exp, T0 + 15);
	cr_expect_eq(s->refresh_at, T0 + 10);
	cr_expect_eq(slot(p, 0, 1)->issued, 1);
	policy_free(p);
}

/* With a tick every second, every second of a long run has a credential. */
Test(cred, refresh_is_seamless_for_any_ttl)
{
	static const unsigned int ttls[] = { 1, 2, 3, 4, 5, 7, 10, 60, 300 };
	char yaml[1024];

	for (size_t i = 0; i < sizeof(ttls) / sizeof(ttls[0]); i++) {
		struct policy *p;

		snprintf(yaml, sizeof(yaml),
			 "trust_domain: example.org\n"
			 "workloads:\n"
			 "  - name: billing\n"
			 "    match: { cgroup: /system.slice/billing.service }\n"
			 "    routes:\n"
			 "      - to: 10.0.0.7:8080\n"
			 "        credential: { type: jwt, audience: a, ttl: %u }\n",
			 ttls[i]);
		p = parse(yaml);
		sync_ok(p, NULL, T0);
		for (int64_t t = T0; t < T0 + 3 * ttls[i] + 2; t++) {
			const struct cred *c;

			cred_tick(ci, p, t);
			c = cred_get(route(p, 0, 0), t);
			cr_assert_not_null(c, "ttl %u: no credential at t0+%lld", ttls[i],
					   (long long)(t - T0));
			cr_assert(t >= c->iat && t < c->exp, "ttl %u: injected outside [iat, exp)",
				  ttls[i]);
			/* refreshed at half-life: an injected token has >= half its ttl left */
			cr_expect_geq(c->exp - t, (int64_t)(ttls[i] - ttls[i] / 2));
		}
		policy_free(p);
	}
}

Test(cred, get_returns_null_once_expired)
{
	struct policy *p = parse(base_yaml);
	const struct policy_route *r = route(p, 0, 0);	/* ttl 10 s */

	sync_ok(p, NULL, T0);
	/* no tick: the refresh never happens, as when the signer is down */
	cr_expect_not_null(cred_get(r, T0 + 8));
	cr_expect_null(cred_get(r, T0 + 9), "a token with 1 s left is not injected");
	cr_expect_null(cred_get(r, T0 + 10));
	cr_expect_null(cred_get(r, T0 + 1000));
	policy_free(p);
}

Test(cred, mint_failure_keeps_the_unexpired_credential)
{
	struct policy *p = parse(base_yaml);
	struct policy_route *r = route(p, 0, 0);
	struct cred_slot *s;
	char audit_path[128], buf[8192] = "", jti[JWT_JTI_LEN];
	char *saved;
	int fd;

	snprintf(audit_path, sizeof(audit_path), "%s/audit.jsonl", tmpdir);
	cr_assert_eq(audit_open(audit_path), 0);
	sync_ok(p, NULL, T0);
	s = r->cred;
	memcpy(jti, s->cur->jti, sizeof(jti));
	saved = r->header_suffix;
	r->header_suffix = "\r\nX-Evil: 1";	/* the signer "fails" from now on */
	cred_tick(ci, p, T0 + 5);
	cr_expect_eq(s->failed, 1);
	cr_expect_str_eq(cred_get(r, T0 + 5)->jti, jti, "the old credential was dropped");
	cr_expect_eq(s->refresh_at, T0 + 6, "retry in a second");
	cred_tick(ci, p, T0 + 5);
	cr_expect_eq(s->failed, 1, "retried before its time");
	cred_tick(ci, p, T0 + 10);
	cr_expect_null(s->cur, "an expired credential was kept");
	cr_expect_null(cred_get(r, T0 + 10));
	r->header_suffix = saved;
	cred_tick(ci, p, T0 + 11);
	cr_expect_not_null(cred_get(r, T0 + 11), "no recovery after the signer came back");

	audit_flush();
	fd = open(audit_path, O_RDONLY);
	cr_assert_geq(fd, 0);
	cr_assert_gt(read(fd, buf, sizeof(buf) - 1), 0);
	close(fd);
	cr_expect_not_null(strstr(buf, "\"event\":\"credential.error\""));
	cr_expect_not_null(strstr(buf, "\"reason\":\"Invalid argument\""));
	policy_free(p);
}

/* --- revocation ----------------------------------------------------------------------- */

Test(cred, revoke_drops_credentials_and_stops_minting)
{
	struct policy *p = parse(base_yaml);

	sync_ok(p, NULL, T0);
	cr_expect_eq(cred_revoke(ci, p, "billing", NULL, NULL, 1000), 2);
	cr_expect_null(cred_get(route(p, 0, 0), T0));
	cr_expect_null(cred_get(route(p, 0, 1), T0));
	cr_expect_null(slot(p, 0, 0)->cur, "revoked credential kept in memory");
	cr_expect_not_null(cred_get(route(p, 1, 0), T0), "another workload was revoked");

	cred_tick(ci, p, T0 + 100);
	cr_expect_null(cred_get(route(p, 0, 0), T0 + 100), "minted for a revoked workload");
	cr_expect_eq(slot(p, 0, 0)->issued, 1);
	cr_expect_not_null(cred_get(route(p, 1, 0), T0 + 100));

	cr_expect_eq(cred_revoke(ci, p, "billing", NULL, NULL, 1000), 0, "nothing left to drop");
	cr_expect_eq(cred_revoke(ci, p, "nobody", NULL, NULL, 1000), -ENOENT);
	policy_free(p);
}

Test(cred, sync_clears_a_revocation)
{
	struct policy *op = parse(base_yaml), *np = parse(base_yaml);

	sync_ok(op, NULL, T0);
	cr_assert_eq(cred_revoke(ci, op, "billing", NULL, NULL, 1000), 2);
	sync_ok(np, op, T0 + 2);
	cr_expect_eq(slot(np, 0, 0)->revoked, 0);
	cr_expect_not_null(cred_get(route(np, 0, 0), T0 + 2), "not minted again after reload");
	cr_expect_eq(slot(np, 0, 0)->cur->iat, T0 + 2);
	policy_free(op);
	policy_free(np);
}

/* --- audit --------------------------------------------------------------------------- */

Test(cred, audit_records_each_issue_without_the_token)
{
	struct policy *p = parse(base_yaml);
	const struct cred *c;
	const char *tok, *line;
	char audit_path[128], buf[16384] = "", needle[128];
	size_t len = 0;
	ssize_t n;
	int fd, lines = 0;

	snprintf(audit_path, sizeof(audit_path), "%s/audit.jsonl", tmpdir);
	cr_assert_eq(audit_open(audit_path), 0);
	sync_ok(p, NULL, T0);
	audit_flush();
	fd = open(audit_path, O_RDONLY);
	cr_assert_geq(fd, 0);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	cr_assert_gt(n, 0);
	for (line = buf; (line = strstr(line, "\"event\":\"credential.issue\"")); line++)
		lines++;
	cr_expect_eq(lines, 3, "one credential.issue per route");

	c = cred_get(route(p, 0, 0), T0);
	tok = token_of(c, "Authorization: Bearer ", &len);
	snprintf(needle, sizeof(needle), "\"jti\":\"%s\"", c->jti);
	cr_expect_not_null(strstr(buf, needle));
	snprintf(needle, sizeof(needle), "\"fingerprint\":\"%s\"", c->fp);
	cr_expect_not_null(strstr(buf, needle));
	cr_expect_not_null(strstr(buf, "\"workload\":\"billing\",\"route\":\"10.0.0.7:8080\""));
	cr_expect_not_null(strstr(buf, "\"iat\":1700000000,\"exp\":1700000010"));
	/* neither the token nor its signature part appears */
	cr_expect_null(memmem(buf, (size_t)n, tok, len), "the token is in the audit log");
	tok = (const char *)memrchr(tok, '.', len) + 1;
	cr_expect_null(memmem(buf, (size_t)n, tok, 20), "the signature is in the audit log");
	policy_free(p);
}

/* --- an upstream's view: PyJWT ----------------------------------------------------------- */

/* The source tree: from LY_SRCDIR, else from build/tests/unit/<exe>, else ".". */
static void verifier_path(char *out, size_t outlen)
{
	char exe[PATH_MAX] = "";
	ssize_t n;

	if (getenv("LY_SRCDIR")) {
		snprintf(out, outlen, "%s/tests/tools/verify_jwt.py", getenv("LY_SRCDIR"));
		return;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = '\0';
		snprintf(out, outlen, "%s/tests/tools/verify_jwt.py",
			 dirname(dirname(dirname(dirname(exe)))));
		if (access(out, R_OK) == 0)
			return;
	}
	snprintf(out, outlen, "tests/tools/verify_jwt.py");
}

/* Run verify_jwt.py on a token file; its stdout (claims) into out. Exit status. */
static int run_verifier(const char *jwks, const char *aud, const char *tokfile, char *out,
			size_t outlen)
{
	char script[PATH_MAX];
	int pfd[2], status = 0;
	size_t got = 0;
	ssize_t n;
	pid_t pid;

	verifier_path(script, sizeof(script));
	cr_assert_eq(access(script, R_OK), 0, "%s not found (set LY_SRCDIR)", script);
	cr_assert_eq(pipe(pfd), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		dup2(pfd[1], STDOUT_FILENO);
		close(pfd[0]);
		close(pfd[1]);
		execl("/usr/bin/python3", "python3", script, "--jwks", jwks, "--aud", aud,
		      "--iss", ISSUER, tokfile, (char *)NULL);
		_exit(127);
	}
	close(pfd[1]);
	while (got + 1 < outlen && (n = read(pfd[0], out + got, outlen - 1 - got)) > 0)
		got += (size_t)n;
	out[got] = '\0';
	close(pfd[0]);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

/* write len bytes to a new 0600 file */
static void write_private(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, buf, len), (ssize_t)len);
	close(fd);
}

Test(cred, minted_header_verifies_with_pyjwt)
{
	struct policy *p = parse(base_yaml);
	int64_t now = time(NULL);
	char jwks_path[128], tok_path[128], bad_path[128], out[4096];
	const struct cred *c;
	char *jwks = jwt_jwks_json(key), *bad;
	const char *tok;
	json_t *claims;
	size_t len = 0;

	snprintf(jwks_path, sizeof(jwks_path), "%s/jwks.json", tmpdir);
	snprintf(tok_path, sizeof(tok_path), "%s/token", tmpdir);
	snprintf(bad_path, sizeof(bad_path), "%s/token.bad", tmpdir);
	cr_assert_not_null(jwks);
	write_private(jwks_path, jwks, strlen(jwks));
	sync_ok(p, NULL, now);
	c = cred_get(route(p, 0, 0), now);
	tok = token_of(c, "Authorization: Bearer ", &len);
	/* the token goes to a file, never to a command line or our output */
	write_private(tok_path, tok, len);

	cr_assert_eq(run_verifier(jwks_path, "https://api.example.org", tok_path, out,
				  sizeof(out)), 0, "PyJWT refused the token");
	cr_expect_null(memmem(out, strlen(out), tok, len), "the verifier printed the token");
	claims = json_loads(out, 0, NULL);
	cr_assert_not_null(claims, "verifier output is not one JSON object");
	cr_expect_str_eq(json_string_value(json_object_get(claims, "sub")),
			 "spiffe://example.org/billing");
	cr_expect_str_eq(json_string_value(json_object_get(claims, "iss")), ISSUER);
	cr_expect_str_eq(json_string_value(json_object_get(claims, "aud")),
			 "https://api.example.org");
	cr_expect_str_eq(json_string_value(json_object_get(claims, "jti")), c->jti);
	cr_expect_eq(json_integer_value(json_object_get(claims, "exp")) -
		     json_integer_value(json_object_get(claims, "iat")), 10);
	cr_expect_eq(json_integer_value(json_object_get(claims, "nbf")), now);
	json_decref(claims);

	/* an upstream with another audience refuses it; so does any tampering */
	cr_expect_eq(run_verifier(jwks_path, "https://other.example.org", tok_path, out,
				  sizeof(out)), 1);
	bad = malloc(len);
	cr_assert_not_null(bad);
	memcpy(bad, tok, len);
	bad[len - 3] = bad[len - 3] == 'A' ? 'B' : 'A';	/* inside the signature */
	write_private(bad_path, bad, len);
	OPENSSL_cleanse(bad, len);
	free(bad);
	cr_expect_eq(run_verifier(jwks_path, "https://api.example.org", bad_path, out,
				  sizeof(out)), 1);
	free(jwks);
	policy_free(p);
}

/* --- x509 credentials and cnf-bound JWTs (RFC 8705) ------------------------------- */

#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "ca.h"

#define X509_YAML \
	"trust_domain: example.org\n" \
	"workloads:\n" \
	"  - name: billing\n" \
	"    match: { cgroup: /system.slice/billing.service }\n" \
	"    routes:\n" \
	"      - to: 10.0.0.7:8443\n" \
	"        tls: originate\n" \
	"        server_name: api.example.org\n" \
	"        credential: { type: x509 }\n" \
	"      - to: 10.0.0.8:8443\n" \
	"        tls: originate\n" \
	"        server_name: api.example.org\n" \
	"        credential: { type: x509, ttl: 2s }\n" \
	"      - to: 10.0.0.9:8443\n" \
	"        tls: originate\n" \
	"        server_name: api.example.org\n" \
	"        credential: { type: jwt, audience: https://api.example.org, ttl: 10s, " \
	"mtls: true }\n"

static struct ca *open_ca(void)
{
	char err[512] = "", dir[128];
	struct ca *ca;

	snprintf(dir, sizeof(dir), "%s/ca", tmpdir);
	ca = ca_open(dir, NULL, NULL, err, sizeof(err));
	cr_assert_not_null(ca, "ca_open: %s", err);
	cred_issuer_set_ca(ci, ca);
	return ca;
}

/* The first URI SAN of cert, into out. */
static void uri_san(X509 *cert, char *out, size_t outlen)
{
	GENERAL_NAMES *gens = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);

	out[0] = '\0';
	for (int i = 0; gens && i < sk_GENERAL_NAME_num(gens); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);

		const ASN1_IA5STRING *u = g->d.uniformResourceIdentifier;

		if (g->type == GEN_URI) {
			snprintf(out, outlen, "%.*s", ASN1_STRING_length(u),
				 (const char *)ASN1_STRING_get0_data(u));
			break;
		}
	}
	GENERAL_NAMES_free(gens);
}

/* base64url(SHA-256(DER)), computed here independently of ca.c */
static void thumbprint(X509 *cert, char *out, size_t outlen)
{
	unsigned char md[32];
	unsigned int n = 0;

	cr_assert_eq(X509_digest(cert, EVP_sha256(), md, &n), 1);
	jwt_b64url(md, n, out, outlen);
}

Test(cred, x509_slot_holds_a_client_certificate_and_no_header)
{
	struct ca *ca = open_ca();
	struct policy *p = parse(X509_YAML);
	int64_t now = time(NULL);
	const struct cred *c;
	char san[128], x5t[CA_THUMBPRINT_LEN];
	X509_STORE *st = X509_STORE_new();
	X509_STORE_CTX *vc = X509_STORE_CTX_new();

	sync_ok(p, NULL, now);
	c = cred_get(route(p, 0, 0), now);
	cr_assert_not_null(c);
	cr_assert_not_null(c->x509);
	cr_expect_null(c->header, "an x509 credential puts nothing in the request");
	cr_expect_str_eq(c->jti, "");
	uri_san(c->x509->cert, san, sizeof(san));
	cr_expect_str_eq(san, "spiffe://example.org/billing");
	cr_expect_eq(c->x509->not_after - now, 3600, "default ttl 1h");
	cr_expect_eq(c->exp, c->x509->not_after);
	thumbprint(c->x509->cert, x5t, sizeof(x5t));
	cr_expect_str_eq(c->x5t, x5t);
	cr_expect_eq(X509_check_private_key(c->x509->cert, c->x509->key), 1);
	/* the chain verifies against the CA, for client authentication */
	cr_assert(st && vc);
	X509_STORE_add_cert(st, ca_cert(ca));
	X509_STORE_CTX_init(vc, st, c->x509->cert, c->x509->chain);
	X509_STORE_CTX_set_purpose(vc, X509_PURPOSE_SSL_CLIENT);
	cr_expect_eq(X509_verify_cert(vc), 1, "%s",
		     X509_verify_cert_error_string(X509_STORE_CTX_get_error(vc)));
	X509_STORE_CTX_free(vc);
	X509_STORE_free(st);
	policy_free(p);
	ca_free(ca);
}

Test(cred, x509_rotates_with_a_fresh_serial_every_lifetime)
{
	struct ca *ca = open_ca();
	struct policy *p = parse(X509_YAML);
	int64_t t0 = time(NULL);
	char seen[8][41];
	size_t nseen = 0;

	sync_ok(p, NULL, t0);
	/* 250 ms ticks over four 2 s lifetimes, in whole seconds as the loop gives them */
	for (int ms = 0; ms <= 8000; ms += 250) {
		int64_t now = t0 + ms / 1000;
		const struct cred *c;
		size_t k;

		cred_tick(ci, p, now);
		c = cred_get(route(p, 0, 1), now);
		cr_assert_not_null(c, "no certificate at +%d ms", ms);
		cr_expect_lt(now, c->x509->not_after, "an expired certificate was handed out");
		cr_expect_geq(now, c->x509->not_before);
		for (k = 0; k < nseen && strcmp(seen[k], c->x509->serial); k++)
			;
		if (k == nseen && nseen < 8)
			strcpy(seen[nseen++], c->x509->serial);
	}
	cr_expect_geq(nseen, 4, "%zu distinct serials over 4 lifetimes", nseen);
	policy_free(p);
	ca_free(ca);
}

/* The claims of a JWT in a header line, parsed. */
static json_t *claims_of(const struct cred *c)
{
	size_t len = 0, n, i;
	const char *tok = token_of(c, "Authorization: Bearer ", &len);
	const char *dot1 = memchr(tok, '.', len);
	const char *dot2 = memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - tok));
	char b64[1024];
	unsigned char raw[1024];
	json_t *j;
	int m;

	n = (size_t)(dot2 - dot1 - 1);
	cr_assert_lt(n + 4, sizeof(b64));
	for (i = 0; i < n; i++)
		b64[i] = dot1[1 + i] == '-' ? '+' : dot1[1 + i] == '_' ? '/' : dot1[1 + i];
	while (i % 4)
		b64[i++] = '=';
	m = EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)i);
	cr_assert_gt(m, 0);
	while (m > 0 && raw[m - 1] == '\0')	/* DecodeBlock counts the padding */
		m--;
	j = json_loadb((const char *)raw, (size_t)m, 0, NULL);
	cr_assert_not_null(j);
	return j;
}

Test(cred, mtls_jwt_carries_the_thumbprint_of_its_certificate)
{
	struct ca *ca = open_ca();
	struct policy *p = parse(X509_YAML);
	int64_t now = time(NULL);
	const struct cred *c, *old;
	char x5t[CA_THUMBPRINT_LEN];
	struct ca_cert *x;
	json_t *j;

	sync_ok(p, NULL, now);
	c = cred_get(route(p, 0, 2), now);
	cr_assert_not_null(c);
	cr_assert_not_null(c->x509, "mtls: a client certificate too");
	cr_assert_not_null(c->header);
	j = claims_of(c);
	thumbprint(c->x509->cert, x5t, sizeof(x5t));
	cr_expect_str_eq(json_string_value(json_object_get(json_object_get(j, "cnf"), "x5t#S256")),
			 x5t);
	cr_expect_str_eq(json_string_value(json_object_get(j, "sub")),
			 "spiffe://example.org/billing");
	cr_expect_eq(json_integer_value(json_object_get(j, "exp")), c->x509->not_after,
		     "the token and its certificate expire together");
	json_decref(j);
	/* after a rotation the old pair still serves connections that presented it */
	old = c;
	cred_tick(ci, p, now + 5);
	c = cred_get(route(p, 0, 2), now + 5);
	cr_assert_neq(c, old);
	cr_expect_eq(cred_get_bound(route(p, 0, 2), old->x509, now + 5), old);
	cr_expect_eq(cred_get_bound(route(p, 0, 2), c->x509, now + 5), c);
	cr_expect_null(cred_get_bound(route(p, 0, 2), old->x509, now + 10), "expired");
	cr_expect_null(cred_get_bound(route(p, 0, 2), NULL, now + 5));
	x = c->x509;
	x->refs++;	/* as a connection holds it */
	cred_revoke(ci, p, "billing", NULL, NULL, 1000);
	cr_expect_null(cred_get_bound(route(p, 0, 2), x, now + 5), "revoked");
	ca_cert_put(x);
	policy_free(p);
	ca_free(ca);
}

Test(cred, x509_without_a_ca_fails_closed)
{
	struct policy *p = parse(X509_YAML);
	int64_t now = time(NULL);

	cr_expect_lt(cred_sync(ci, p, NULL, now), 0);
	policy_free(p);
}
