/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Copyright (c) 2026 The lanyard authors */
/*
 * Credential cache: one slot per (workload, route) hanging off
 * policy_route->cred.  Credentials are minted ahead of need by a timer
 * (cred_tick) so that a request never waits for signing; cred_get() on the
 * hot path only reads.  An expired credential is never returned.
 */
#ifndef LY_CRED_H
#define LY_CRED_H

#include <stdint.h>

#include "ca.h"
#include "jwt.h"
#include "policy.h"
#include "secret.h"

struct cred {
	struct secret *header;	/* "Name: <prefix><token><suffix>\r\n": what goes upstream;
				 * NULL for an x509 credential (nothing in the request) */
	struct ca_cert *x509;	/* x509, or jwt with mtls: the client certificate and key to
				 * present upstream (one reference); else NULL */
	char x5t[CA_THUMBPRINT_LEN];	/* x509: its RFC 8705 x5t#S256 (the JWT's cnf) */
	char jti[JWT_JTI_LEN];	/* jwt only; "" for x509 (the serial is in x509) */
	char fp[SECRET_FP_LEN];	/* fingerprint of the token alone (x509: of the DER) */
	int64_t iat, exp;	/* unix seconds */
};

struct cred_slot {
	struct cred *cur;	/* NULL until minted, after revoke, or on error */
	struct cred *prev;	/* with a client cert: the one cur replaced, still used by
				 * connections whose handshake presented its certificate */
	const char *workload;	/* borrows the policy's workload name */
	int64_t refresh_at;	/* mint a new one at or after this time */
	int revoked;
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

/* Revoke: free the workload's credentials, issue none until cred_sync(). Returns count. */
int cred_revoke_workload(struct cred_issuer *ci, struct policy *p, const char *workload);

/* seconds before expiry at which a credential is refreshed, for a ttl */
int64_t cred_refresh_margin(uint32_t ttl_s);

#endif /* LY_CRED_H */
