/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Copyright (c) 2026 The lanyard authors */
/*
 * Credential cache: one slot per (workload, route) hanging off
 * policy_route->cred.  Credentials are minted (jwt, x509) or fetched (oauth2,
 * token_exchange, exec, static: on the fetch workers, one fetch in flight per
 * slot) ahead of need by a timer (cred_tick), so that a request never waits;
 * cred_get() on the hot path only reads.  An expired credential is never
 * returned; a revoked one is never returned again.
 */
#ifndef LY_CRED_H
#define LY_CRED_H

#include <stdint.h>
#include <sys/types.h>

#include "ca.h"
#include "fetch.h"
#include "jwt.h"
#include "policy.h"
#include "secret.h"

#define CRED_JTI_LEN	65	/* room for a jti or a fingerprint */

struct cred {
	struct secret *header;	/* "Name: <prefix><token><suffix>\r\n": what goes upstream;
				 * NULL for an x509 credential (nothing in the request) */
	struct ca_cert *x509;	/* x509, or jwt with mtls: the client certificate and key to
				 * present upstream (one reference); else NULL */
	char x5t[CA_THUMBPRINT_LEN];	/* x509: its RFC 8705 x5t#S256 (the JWT's cnf) */
	char jti[CRED_JTI_LEN];	/* jwt; a fetched token's own jti if it is a JWT; else "" */
	char fp[SECRET_FP_LEN];	/* fingerprint of the token alone (x509: of the DER) */
	int64_t iat, exp;	/* unix seconds; a static credential: exp = INT64_MAX */
	int64_t mtime;		/* static: the file's mtime (its age) */
};

struct cred_slot {
	const struct policy_route *route;	/* the route the slot hangs off */
	struct cred *cur;	/* NULL until minted, after revoke, or on error */
	struct cred *prev;	/* with a client cert: the one cur replaced, still used by
				 * connections whose handshake presented its certificate */
	const char *workload;	/* borrows the policy's workload name */
	int64_t refresh_at;	/* mint a new one at or after this time */
	int revoked;
	struct fetch_job *job;	/* the fetch in flight, or NULL: at most one */
	uint32_t backoff_s;	/* fetched: the wait after the last failure, 0 if none */
	char why[FETCH_WHY_LEN];	/* the last failure, "" after a success */
	struct fetch_file_id file;	/* static: the file as last read */
	uint64_t took_us;	/* the last issuance: signing or fetching */
	uint64_t issued;	/* counters for `lanyard tokens` / metrics */
	uint64_t used;
	uint64_t failed;
};

struct cred_issuer;

/* borrows key; copies issuer and trust_domain */
struct cred_issuer *cred_issuer_new(const struct jwt_key *key, const char *issuer,
				    const char *trust_domain);
void cred_issuer_free(struct cred_issuer *ci);
/* The CA (borrowed) that mints x509 credentials and mtls client certs; NULL: they fail. */
void cred_issuer_set_ca(struct cred_issuer *ci, struct ca *ca);
/* The fetch workers (borrowed) and the SO_MARK of their sockets; NULL: fetches fail. */
void cred_issuer_set_fetcher(struct cred_issuer *ci, struct fetcher *f, uint32_t mark);
/* The fetcher's done callback (arg: the issuer): installs or drops the result. */
void cred_fetch_done(struct fetch_job *j, void *arg);

/*
 * Give every route of newp a slot: routes equal in old and new policy (same
 * workload, to, audience, ttl, header) take over the old slot (and its
 * live credential); the others get a fresh slot and are minted now.
 * oldp may be NULL.  Revocations are cleared.  Returns 0 or -errno.
 */
int cred_sync(struct cred_issuer *ci, struct policy *newp, struct policy *oldp, int64_t now);

/* Mint for every slot whose refresh time has come (timer, off the hot path). */
void cred_tick(struct cred_issuer *ci, struct policy *p, int64_t now);

/*
 * The credential to inject now for this route, or NULL (never minted,
 * revoked, or expired).  Hot path: no allocation, no signing.
 */
const struct cred *cred_get(const struct policy_route *r, int64_t now);

/*
 * For a connection whose upstream handshake presented x509: the credential
 * of the route carrying that certificate (the current one, or the one it
 * replaced), unexpired and not revoked; else NULL.  A JWT bound to a
 * certificate (cnf) is only valid on a connection authenticated with it.
 */
const struct cred *cred_get_bound(const struct policy_route *r, const struct ca_cert *x509,
				  int64_t now);

/*
 * Is the route's credential revoked (403 for its requests)?  Hot path.
 */
int cred_revoked(const struct policy_route *r);

/*
 * Is the route's first credential being fetched: none held, the fetch in flight, no
 * failure since the last success (a request may wait for it)?
 */
int cred_pending(const struct policy_route *r);

/* Why cred_get() has nothing for this route: for the 503 (never a token). */
const char *cred_unavailable_reason(const struct policy_route *r);

/*
 * Revoke.  workload and/or route (its `to` as written): those slots drop their
 * credentials and issue none until the next reload.  jti (or a fingerprint as
 * `lanyard tokens` shows it): that one credential is dropped, never injected
 * again, and its slot issues a fresh one now.  Returns how many credentials
 * were dropped, -ENOENT when nothing matched.
 */
int cred_revoke(struct cred_issuer *ci, struct policy *p, const char *workload,
		const char *route, const char *jti, int64_t now);

/* seconds before expiry at which a credential is refreshed, for a ttl */
int64_t cred_refresh_margin(uint32_t ttl_s);

#endif /* LY_CRED_H */
