// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Copyright (c) 2026 The lanyard authors */
/*
 * The test identity provider (tests/servers/idp.py) from the end-to-end tests: a strict
 * OAuth 2.0 token endpoint over HTTPS, its control port, its request log.
 */
#ifndef LANYARD_TESTS_IDP_H
#define LANYARD_TESTS_IDP_H

#include <stdbool.h>
#include <sys/types.h>

#include <jansson.h>

#include "lib/harness.h"

/* RFC 7523 / RFC 8693 names, as the tests and the provider spell them */
#define LY_IDP_ASSERTION_TYPE "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#define LY_IDP_GRANT_EXCHANGE "urn:ietf:params:oauth:grant-type:token-exchange"
#define LY_IDP_TYPE_JWT "urn:ietf:params:oauth:token-type:jwt"
#define LY_IDP_TYPE_ACCESS "urn:ietf:params:oauth:token-type:access_token"

/*
 * One running provider.  Every string is owned by the harness (valid until teardown); the
 * process is spawned with h_spawn(), so the harness stops it at teardown.  Its output is
 * <tmp>/<name>.out and <name>.err.
 */
struct ly_idp {
	pid_t pid;
	int port;	 /* token endpoint: TLS on 127.0.0.1:port */
	int ctl_port;	 /* control: plain HTTP on 127.0.0.1:ctl_port */
	char *name;	 /* "idp", "idp-2", ... */
	char *token_url; /* "https://localhost:<port>/token": also the aud of client assertions */
	char *log;	 /* JSON lines, one per token request */
	char *cert, *key; /* the endpoint's certificate (localhost, 127.0.0.1) and key */
	char *ca_cert;	 /* the CA that signed the endpoint's cert: for lanyard's ca_file */
};

/*
 * Start idp.py with a fresh test CA and server certificate, and wait until it listens.
 * @jwks_url: lanyard's JWKS (a URL, or a file path); @clients: NULL-terminated "id" (may
 * only use private_key_jwt) or "id:/path/secretfile" (client_secret_basic too), may be
 * NULL; @subject_audience: the aud token exchange subject tokens must carry (NULL: no
 * token exchange); @expires_in: expires_in of issued tokens (<= 0: the default, 60).
 * Asserts on failure.
 */
void ly_idp_start(struct ly_idp *p, const char *jwks_url, const char *const clients[],
		  const char *subject_audience, int expires_in);

/*
 * GET /mode?@query on the control port ("set=fail&status=503", "set=slow&delay=2",
 * "set=ok"): 0, or -1 when the provider refused it (bad mode) or did not answer.
 */
int ly_idp_mode(struct ly_idp *p, const char *query);
/* expires_in of the tokens issued from now on: 0 or -1. */
int ly_idp_expires_in(struct ly_idp *p, int n);
/* Reset the counters of /stats: 0 or -1. */
int ly_idp_reset(struct ly_idp *p);
/*
 * The counters: {"token_requests", "issued", "rejected", "by_grant": {grant: n},
 * "by_client": {id: n}, "mode", "expires_in"}; new reference, NULL when unavailable.
 */
json_t *ly_idp_stats(struct ly_idp *p);
/* One counter of ly_idp_stats() ("issued"); -1 when unavailable. */
long long ly_idp_stat(struct ly_idp *p, const char *name);
/* Every line of the log so far: a new array (empty when nothing was logged). */
json_t *ly_idp_log(struct ly_idp *p);
/*
 * True when the provider issued @token: a log line with status 200, mode "ok" or "slow"
 * and token_sha256 = SHA-256(@token).  Tokens of the broken modes (crlf, huge) do not count.
 */
bool ly_idp_issued(struct ly_idp *p, const char *token);

#endif /* LANYARD_TESTS_IDP_H */
