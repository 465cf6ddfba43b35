/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Copyright (c) 2026 The lanyard authors */
/*
 * lanyardd's JWT issuer: the ES256 signing key (generated on first start into
 * state_dir, 0600), JWT minting (RFC 7519/7515) and the JWKS (RFC 7517) with a
 * RFC 7638 thumbprint as kid.
 */
#ifndef LY_JWT_H
#define LY_JWT_H

#include <stddef.h>
#include <stdint.h>

#include "secret.h"

#define JWT_KEY_FILE	"jwt-es256.pem"
#define JWT_JTI_LEN	23	/* 16 random bytes, base64url (22) + NUL */
#define JWT_KID_LEN	44	/* base64url SHA-256 (43) + NUL */

struct jwt_key;

struct jwt_claims {
	const char *iss;
	const char *sub;	/* spiffe://<trust_domain>/<workload> */
	const char *aud;
	int64_t iat, nbf, exp;	/* unix seconds */
	const char *cnf_x5t;	/* NULL, or cnf {"x5t#S256"} (RFC 8705 3.1): base64url */
	char jti[JWT_JTI_LEN];	/* filled by jwt_mint() */
};

/*
 * Load state_dir/jwt-es256.pem, or generate it (EC P-256, mode 0600, the
 * folder created 0700) when absent.  A key file readable by group or other,
 * or not owned by us, is refused.  NULL with a message in err on failure.
 */
struct jwt_key *jwt_key_load_or_create(const char *state_dir, char *err, size_t errlen);
void jwt_key_free(struct jwt_key *k);
const char *jwt_key_kid(const struct jwt_key *k);

/* {"keys":[{kty,crv,x,y,kid,use,alg}]}; caller frees with free(). */
char *jwt_jwks_json(const struct jwt_key *k);

/*
 * Sign the claims (fresh random jti written into c->jti) and render
 * "<prefix><jwt><suffix>" into a new secret.  Returns 0 or -errno.
 */
int jwt_mint(const struct jwt_key *k, struct jwt_claims *c, const char *prefix,
	     const char *suffix, struct secret **out);

/* base64url without padding; returns bytes written (excl. NUL) into out. */
size_t jwt_b64url(const void *in, size_t len, char *out, size_t outlen);

#endif /* LY_JWT_H */
