// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Copyright (c) 2026 The lanyard authors */
/*
 * Certificate fixtures of the TLS tests: test CAs, the leaves they sign (server, client) and
 * deliberately broken leaves (expired, self-signed, wrong name), as PEM files in h_tmpdir().
 */
#ifndef LANYARD_TESTS_TLSFIX_H
#define LANYARD_TESTS_TLSFIX_H

#include <stdbool.h>

/*
 * Everything is made with the OpenSSL 3 C API: EC P-256 keys (RSA 2048 on request), SHA-256
 * signatures, random 127-bit serials, SKI/AKI on every certificate, subject
 * "CN=<cn>,O=lanyard tests".  Key files are 0600, certificate files 0644, all under
 * h_tmpdir() named tls-NN-<cn>.{crt,key}, so they go away at teardown.
 *
 * OWNERSHIP: paths returned (char **cert_path, ...) are harness strings, valid until
 * teardown; never free them.  Output pointers may be NULL when not wanted.  A struct
 * tlsfix_ca is freed with tlsfix_ca_free() (NULL accepted); its files stay.
 * ERRORS: 0 or -errno (-EINVAL bad argument, -EIO OpenSSL failure, printed to stderr).
 */
struct tlsfix_ca;

/*
 * A self-signed root CA: basicConstraints critical CA:TRUE, keyUsage critical
 * keyCertSign+cRLSign, valid [now - 30 days, now + 1 year].  Writes its certificate and key;
 * NULL on error.  The client CA of mTLS tests is one of these too.
 */
struct tlsfix_ca *tlsfix_ca_new(const char *cn);
/* An intermediate CA signed by @parent (pathlen unset); leaves it signs carry the chain. */
struct tlsfix_ca *tlsfix_ca_intermediate(struct tlsfix_ca *parent, const char *cn);
void tlsfix_ca_free(struct tlsfix_ca *ca);
/* PEM files of the CA itself: what a client trusts (--cacert) / the CA's private key. */
const char *tlsfix_ca_cert_path(const struct tlsfix_ca *ca);
const char *tlsfix_ca_key_path(const struct tlsfix_ca *ca);

struct tlsfix_leaf {
	const char *cn;		   /* subject CN; NULL: the first name, else the first URI */
	const char *const *names;  /* DNS names / IP literals -> dNSName / iPAddress SANs */
	const char *const *uris;   /* URI SANs ("spiffe://td/workload"); NULL-terminated lists */
	long not_before, not_after; /* seconds from now; both 0: [-3600, +86400] */
	bool client;		   /* EKU clientAuth (default serverAuth) */
	bool rsa;		   /* RSA 2048 key instead of EC P-256 */
};

/*
 * The general issuer: a leaf described by @o (basicConstraints critical CA:FALSE, keyUsage
 * digitalSignature) signed by @ca, or self-signed when @ca is NULL.  The certificate file
 * holds the leaf followed by @ca's intermediates (never the root): what a server sends.
 */
int tlsfix_issue(struct tlsfix_ca *ca, const struct tlsfix_leaf *o, char **cert_path,
		 char **key_path);

/* A valid server certificate for @names (NULL-terminated, e.g. {"localhost", "127.0.0.1"}). */
int tlsfix_server_cert(struct tlsfix_ca *ca, const char *const names[], char **cert_path,
		       char **key_path);
/* Signed by @ca for @names, but valid only from 2 days ago to 1 day ago. */
int tlsfix_expired_cert(struct tlsfix_ca *ca, const char *const names[], char **cert_path,
			char **key_path);
/* Valid for @names in every way except that nobody signed it but itself. */
int tlsfix_self_signed(const char *const names[], char **cert_path, char **key_path);
/* Signed by @ca and valid, for TLSFIX_WRONG_NAME only. */
#define TLSFIX_WRONG_NAME "wrong-name.invalid"
int tlsfix_wrong_name_cert(struct tlsfix_ca *ca, char **cert_path, char **key_path);
/* A client certificate (EKU clientAuth) "CN=@cn" with the URI SAN @uri (may be NULL). */
int tlsfix_client_cert(struct tlsfix_ca *ca, const char *cn, const char *uri, char **cert_path,
		       char **key_path);

/* What ly-upstream logs of a certificate, computed from its PEM file (first certificate). */
struct tlsfix_info {
	char sha256[65];	/* lowercase hex of SHA-256(DER) */
	char serial[64];	/* lowercase hex, no leading zeros */
	long long not_before, not_after; /* unix seconds */
};
int tlsfix_cert_info(const char *cert_path, struct tlsfix_info *info);

#endif /* LANYARD_TESTS_TLSFIX_H */
