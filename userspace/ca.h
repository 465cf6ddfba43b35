/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Copyright (c) 2026 The lanyard authors */
/*
 * The local CA: generated on first start into state_dir (EC P-256, key 0600,
 * refused when group/other-readable) or an imported intermediate; mints
 * short-lived interception leaves (one host name each) and workload client
 * certificates (URI SAN spiffe://<trust_domain>/<workload>), kept in memory
 * only.  Private keys never leave lanyardd.
 */
#ifndef LY_CA_H
#define LY_CA_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#define CA_CERT_FILE	"ca.crt"
#define CA_KEY_FILE	"ca.key"
#define CA_LEAF_TTL_S	(24 * 3600)	/* interception leaves */
#define CA_CLIENT_TTL_S	3600		/* x509 credential (client certificates) */
#define CA_LEAF_CACHE_MAX 4096		/* interception leaves kept, LRU beyond */
#define CA_HOST_MAX	253		/* RFC 1035 2.3.4, without the root dot */
#define CA_THUMBPRINT_LEN 44		/* base64url SHA-256 (43) + NUL */

struct ca;

/* One minted certificate with its key: refcounted (a TLS session may hold it). */
struct ca_cert {
	X509 *cert;
	EVP_PKEY *key;
	STACK_OF(X509) *chain;	/* intermediates to send after cert (may be empty) */
	int64_t not_before, not_after;	/* unix seconds */
	char serial[41];	/* hex */
	unsigned refs;
};

/*
 * Load state_dir/ca.{crt,key} or create them (self-signed root, EC P-256,
 * 10 years, key 0600 via O_EXCL+link), or, when cert_path/key_path are
 * given, load that imported intermediate (must be a CA certificate whose key
 * matches; key file refused when group/other-readable).  NULL + err on failure.
 */
struct ca *ca_open(const char *state_dir, const char *cert_path, const char *key_path,
		   char *err, size_t errlen);
void ca_free(struct ca *ca);

/* The CA certificate as PEM (public; for `lanyard trust print`). Caller frees. */
char *ca_cert_pem(const struct ca *ca);
/* The CA certificate (borrowed), for chains and tests. */
X509 *ca_cert(const struct ca *ca);

/*
 * Interception leaf for host (DNS name or IP literal): SAN = that one name,
 * EKU serverAuth, valid [now - 60 s, now + ttl_s] (ttl_s 0 = CA_LEAF_TTL_S;
 * never past the CA's notAfter), its own P-256 key.  host is checked with
 * ca_host_normalize() first; the error never repeats it.  Cached per host
 * (CA_LEAF_CACHE_MAX, LRU) and reminted when less than a third of its life is
 * left; a hit ignores ttl_s.  The returned cert carries a reference: release
 * with ca_cert_put().  NULL + err on failure.  Not thread-safe (one loop).
 */
struct ca_cert *ca_leaf(struct ca *ca, const char *host, uint32_t ttl_s, int64_t now,
			char *err, size_t errlen);

/*
 * Client certificate for a workload: URI SAN spiffe://<trust_domain>/<workload>,
 * EKU clientAuth, valid [now - 60 s, now + ttl_s] (ttl_s 0 = CA_CLIENT_TTL_S),
 * subject CN = the path of the ID (none, with a critical SAN, past 64 bytes).
 * The ID must follow SPIFFE-ID 2 and have a path.  Not cached here (cred.c
 * owns rotation).  Reference as above.
 */
struct ca_cert *ca_client_cert(struct ca *ca, const char *spiffe_uri, uint32_t ttl_s,
			       int64_t now, char *err, size_t errlen);

void ca_cert_put(struct ca_cert *c);

/* RFC 8705 x5t#S256: base64url(SHA-256(DER cert)) into out (>= 44 bytes). */
int ca_cert_thumbprint(const struct ca_cert *c, char *out, size_t outlen);

/*
 * The name check that ca_leaf() applies, for the TLS layer to use on SNI:
 * a DNS name of RFC 1123 labels (lowercased into out, one trailing dot
 * dropped, <= 253 bytes, last label not all-digits, no wildcard) or an IPv4 /
 * IPv6 literal without brackets or zone (canonical inet_ntop form into out).
 * *family = 0 for a DNS name, AF_INET or AF_INET6.  outlen >= CA_HOST_MAX + 1.
 * 0 or -EINVAL.
 */
int ca_host_normalize(const char *host, char *out, size_t outlen, int *family);

/* 1 when the CA is an imported certificate (policy ca: {cert, key}), else 0. */
int ca_is_imported(const struct ca *ca);

/*
 * The certificate a host must trust for the leaves to verify, as PEM, caller
 * frees: the local root, or for an imported intermediate the self-signed root
 * found at the end of its certificate file.  NULL when that file holds no
 * root (the organisation's root is then installed by other means).
 */
char *ca_anchor_pem(const struct ca *ca);

/* Cap the leaf cache (default CA_LEAF_CACHE_MAX); only before the first leaf. 0 or -EBUSY. */
int ca_set_leaf_cache_max(struct ca *ca, size_t max);
/* Number of leaves in the cache. */
size_t ca_leaf_cached(const struct ca *ca);

#endif /* LY_CA_H */
