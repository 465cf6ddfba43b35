/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Copyright (c) 2026 The lanyard authors */
/*
 * Discovery: the static credentials that workloads still send themselves.
 * Fed with request heads that the TLS uprobes and the plain-HTTP write hook
 * saw an enrolled or observed app write; classifies each credential-bearing
 * header (bearer JWT with issuer and lifetime, opaque bearer, Basic, API-key
 * header, AWS SigV4), keeps one inventory row per (workload, exe,
 * destination, kind, fingerprint), recommends secretless or secrets
 * management, and audits secret.discovered on first sight.  Never keeps,
 * logs or returns a secret value: only its "hmac:" fingerprint, keyed with a
 * per-install random key (state_dir/discover.key) so that a short or guessable
 * value cannot be found from the fingerprint offline.
 */
#ifndef LY_DISCOVER_H
#define LY_DISCOVER_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct discover;
struct secret;

/* One request head as an app wrote it (borrowed for the call). */
struct discover_obs {
	const char *workload;	/* workload name */
	uint64_t cgroup_id;
	uint32_t pid;
	const char *exe;	/* the process's executable path (or its comm) */
	const char *dst;	/* "host:port" when a name is known (SNI, else Host), else "ip:port" */
	const char *sni;	/* NULL if none */
	const char *lib;	/* "openssl", "gnutls", "plain" */
	uint64_t flow;		/* lanyardd's flow id when the kernel redirected it, else 0 */
	const char *injected_header;	/* the header lanyardd overwrites on this flow's
					 * route (its own credential, not the app's): skipped;
					 * NULL when it injects none (x509, passthrough) */
	const char *head;	/* the request head: request line + headers (not NUL-terminated) */
	size_t len;
	int truncated;		/* the head was cut by the kernel's capture limit */
};

/* The request line and Host of a head, as slices of it (for flow tagging and audit). */
struct discover_reqline {
	const char *method, *target, *host;
	size_t method_len, target_len, host_len;	/* host_len 0: no Host header */
};

#define DISCOVER_KEY_LEN	32	/* HMAC-SHA256 key of the fingerprints */
#define DISCOVER_KEY_FILE	"discover.key"

/*
 * key: DISCOVER_KEY_LEN bytes, copied into the secure heap.  Fingerprints are
 * "hmac:" + the first 16 hex digits of HMAC-SHA256(key, value).
 */
struct discover *discover_new(const void *key, size_t keylen);
void discover_free(struct discover *ds);

/*
 * The fingerprint key of this install: state_dir/discover.key (DISCOVER_KEY_LEN
 * random bytes, mode 0600, created on first start; refused when it is not a
 * regular file we own or is readable by group or other).  A secret (secure heap),
 * or NULL with a message in err.
 */
struct secret *discover_key_load_or_create(const char *state_dir, char *err, size_t errlen);

/*
 * A request target as it may be shown (flow.tls "path", `lanyard flows`): the
 * path of an absolute-form target (scheme and authority, userinfo included,
 * dropped), without query or fragment, each path segment that may be a secret
 * replaced by "*": longer than 16 bytes, mixing letters and digits with 8 bytes
 * or more, or holding ':' or '@' (also percent-encoded).  Writes at most
 * outlen - 1 bytes and a NUL (whole segments only); returns the length.
 */
size_t discover_redact_target(const char *in, size_t len, char *out, size_t outlen);

/*
 * Parse the request line (and Host) of head.  0, or -EINVAL when it is not an
 * HTTP/1.x request head.  Tolerates a head cut short (truncated capture).
 */
int discover_parse_reqline(const char *head, size_t len, struct discover_reqline *out);

/*
 * A string from an app or the kernel made safe to store and to put in JSON: at most
 * size - 1 bytes of printable ASCII, any other byte (and '\\') as \\xNN, cut at a NUL
 * or len.  out is always NUL-terminated (size > 0).
 */
void discover_clean(char *out, size_t size, const char *s, size_t len);

/*
 * Account one observed request head: every credential it carries becomes (or
 * updates) an inventory row; a new row is audited as secret.discovered.  The
 * header named by o->injected_header is skipped (lanyardd replaces it).
 * Returns the number of credentials found in the head, or -errno.
 */
int discover_observe(struct discover *ds, const struct discover_obs *o, int64_t now_s);

/*
 * A process whose TLS stack uprobes cannot observe (Go crypto/tls, Java,
 * rustls...), or whose sends cannot be read (io_uring, sendmmsg): listed once per
 * (workload, exe, stack), audited as tls.unobservable.
 */
void discover_note_unobservable(struct discover *ds, const char *workload, uint32_t pid,
				const char *exe, const char *stack, const char *reason,
				int64_t now_s);

/*
 * The inventory for the control socket's "discover" command: rows last seen at
 * or after since_s (0: all).  {"secrets": [...], "unobservable": [...]}; new reference.
 */
json_t *discover_json(const struct discover *ds, int64_t since_s);

#endif /* LY_DISCOVER_H */
