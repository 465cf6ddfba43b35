/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Copyright (c) 2026 The lanyard authors */
/*
 * The policy file (YAML, parsed with libyaml) as an immutable struct policy.
 * Unknown keys and bad values are errors carrying file:line:column.
 * A reload builds a new struct policy; the daemon swaps it in atomically.
 */
#ifndef LY_POLICY_H
#define LY_POLICY_H

#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>

#define POLICY_DEFAULT_PATH		"/etc/lanyard/lanyard.yaml"
#define POLICY_DEFAULT_LISTEN_PORT	15001
#define POLICY_DEFAULT_ADMIN		"127.0.0.1:15002"
#define POLICY_DEFAULT_STATE_DIR	"/var/lib/lanyard"
#define POLICY_DEFAULT_CONTROL		"/run/lanyard/control.sock"
#define POLICY_DEFAULT_TTL_S		300
#define POLICY_DEFAULT_X509_TTL_S	3600
#define POLICY_MAX_TTL_S		86400
#define POLICY_DEFAULT_FETCH_TIMEOUT_MS	10000
#define POLICY_DEFAULT_HEAD_TIMEOUT_S	10	/* a request head, a handshake, a connect */
#define POLICY_DEFAULT_IDLE_TIMEOUT_S	120	/* no byte either way: a flow is closed */
#define POLICY_DEFAULT_HEADER		"Authorization: Bearer {token}"
#define POLICY_ERR_LEN			512

/* One destination address or prefix, network byte order. */
struct policy_addr {
	int family;		/* AF_INET or AF_INET6 */
	uint8_t prefixlen;	/* 32/128 for a single address */
	uint8_t addr[16];	/* IPv4 in the first 4 bytes */
};

enum policy_dest_kind {
	POLICY_DEST_ADDR,	/* 10.0.0.1:80, [::1]:80 */
	POLICY_DEST_CIDR,	/* 10.0.0.0/8:80, [fd00::]/8:80 */
	POLICY_DEST_HOST,	/* api.example.org:443: resolved by policy_resolve() */
};

enum policy_cred_type {
	POLICY_CRED_JWT,
	POLICY_CRED_X509,	/* client certificate presented upstream (mTLS), no header */
	POLICY_CRED_OAUTH2,	/* client-credentials grant at a token endpoint (RFC 6749 4.4) */
	POLICY_CRED_TOKEN_EXCHANGE,	/* lanyard's JWT exchanged at an STS (RFC 8693) */
	POLICY_CRED_EXEC,	/* a helper command prints {"token", "expires_at"} */
	POLICY_CRED_STATIC,	/* a root-only file (or systemd credential), re-read on change */
};

/* the name of a credential type as the policy spells it ("jwt", "oauth2", ...) */
const char *policy_cred_type_name(enum policy_cred_type t);

/* Is the credential fetched off the event loop (oauth2, token_exchange, exec, static)? */
static inline int policy_cred_fetched(enum policy_cred_type t)
{
	return t >= POLICY_CRED_OAUTH2;
}

/* How lanyardd authenticates itself to a token endpoint. */
enum policy_client_auth {
	POLICY_AUTH_NONE,		/* token_exchange without client_id */
	POLICY_AUTH_PRIVATE_KEY_JWT,	/* RFC 7523 2.2: an assertion signed by lanyard's key */
	POLICY_AUTH_SECRET_BASIC,	/* RFC 6749 2.3.1: client_secret_file, for providers
					 * that cannot do better */
};

/*
 * Where a fetched credential comes from.  Read-only once parsed, and reference
 * counted: a fetch running off the event loop holds a reference while a
 * reload frees the policy that it came from.
 */
struct policy_source {
	int refs;			/* atomic: policy_source_get/put */
	char *token_url;		/* oauth2, token_exchange: https only */
	char *client_id;
	enum policy_client_auth auth;
	char *client_secret_file;	/* POLICY_AUTH_SECRET_BASIC: root-only, mode 0600 */
	char *scope;
	char *resource;			/* RFC 8707 */
	char *subject_audience;		/* token_exchange: aud of the subject JWT (token_url) */
	char *ca_file;			/* token endpoint trust anchors; NULL: system roots */
	char **argv;			/* exec: NULL-terminated, argv[0] absolute */
	size_t argc;
	uint32_t timeout_ms;		/* a fetch or a helper gives up after this */
	char *file;			/* static: the file (a systemd credential is resolved
					 * against $CREDENTIALS_DIRECTORY when read) */
	char *systemd_credential;	/* static: its name, or NULL */
	uint32_t max_age_s;		/* static: `lanyard tokens` warns past it; 0: never */
};

struct policy_source *policy_source_get(struct policy_source *s);
void policy_source_put(struct policy_source *s);

/* `on_revoke:` what a revocation does to a connection that is already open */
enum policy_on_revoke {
	POLICY_REVOKE_REFUSE,	/* its next request is answered 403 (default) */
	POLICY_REVOKE_CLOSE,	/* it is closed at once */
};

/* `tls:` on a route: what the app speaks and what lanyardd speaks upstream */
enum policy_tls_mode {
	POLICY_TLS_NONE,	/* plain HTTP on both sides (no `tls:` key) */
	POLICY_TLS_INTERCEPT,	/* app speaks TLS to a local-CA leaf; TLS upstream */
	POLICY_TLS_ORIGINATE,	/* app speaks plain HTTP; TLS upstream */
	POLICY_TLS_PASSTHROUGH,	/* app's TLS relayed as is, allowed by its SNI; no credential */
};

struct policy_route {
	char *to;			/* the value as written, for display */
	enum policy_dest_kind kind;
	char *host;			/* POLICY_DEST_HOST: the name; else NULL */
	uint16_t port;			/* host order; 0 never (port is required) */
	struct policy_addr *addrs;	/* ADDR/CIDR: one entry; HOST: after policy_resolve() */
	size_t naddrs;

	enum policy_cred_type cred_type;
	char *audience;			/* jwt: the JWT's aud; oauth2, token_exchange: the
					 * audience asked for (optional); NULL for x509 */
	uint32_t ttl_s;			/* jwt: 5m default; x509: 1h default; fetched: the
					 * lifetime when the source does not say (5m) */
	struct policy_source *src;	/* fetched credentials; NULL for jwt and x509 */
	enum policy_on_revoke on_revoke;
	int mtls;			/* jwt: also present a client cert (same ttl) and bind
					 * the JWT to it with cnf x5t#S256 (RFC 8705 3.1) */

	char *header_name;		/* "Authorization" */
	char *header_prefix;		/* template text before {token}: "Bearer " */
	char *header_suffix;		/* template text after {token}: usually "" */

	enum policy_tls_mode tls;
	uint16_t upstream_port;		/* host order; 0: the port the app dialled */
	char *ca_file;			/* upstream trust anchors (PEM); NULL: system roots */
	char *server_name;		/* lowercase; the name an IP/CIDR route's upstream must
					 * prove, and the SNI assumed when a client sends none */
	char **sni;			/* passthrough: allowed server names, lowercase; "*.x" is
					 * one label under x; NULL on other routes */
	size_t nsni;

	int line;			/* where the route starts in the file (1-based) */
	int col;			/* and its column (1-based), for policy_resolve() errors */
	void *cred;			/* owned by cred.c (struct cred_slot *); NULL in policy.c */
	void *tls_ctx;			/* owned by tls.c (struct tls_route *); NULL here */
};

enum policy_mode {
	POLICY_MODE_ENFORCE = 0,	/* routes redirected, credentials injected (default) */
	POLICY_MODE_OBSERVE,		/* `mode: observe`: nothing redirected; its TLS and
					 * plain-HTTP requests are inspected (discovery) */
};

struct policy_workload {
	char *name;
	char *cgroup;			/* path relative to the cgroup2 mount, starts with '/' */
	enum policy_mode mode;
	struct policy_route *routes;
	size_t nroutes;
	int line;
};

/* which processes get the TLS uprobes (`tls_probes`) */
enum policy_tls_probes {
	POLICY_TLS_PROBES_AUTO = 0,	/* process with uprobe.multi links, else host */
	POLICY_TLS_PROBES_HOST,		/* every process mapping the host's TLS libraries */
	POLICY_TLS_PROBES_PROCESS,	/* each process of an enrolled or observed cgroup */
};

struct policy {
	char *path;			/* file it was read from ("<buffer>" for tests) */
	char *trust_domain;
	uint16_t listen_port;		/* host order */
	char *admin_listen;		/* "127.0.0.1:15002" as written */
	struct sockaddr_storage admin_addr;	/* parsed admin_listen */
	char *state_dir;
	char *audit_path;		/* NULL: audit to stderr */
	char *control_socket;
	char *ca_cert, *ca_key;		/* imported CA (`ca:`); NULL: the one in state_dir */
	enum policy_tls_probes tls_probes;
	uint32_t head_timeout_ms;	/* `timeouts.head` */
	uint32_t idle_timeout_ms;	/* `timeouts.idle` */
	struct policy_workload *workloads;
	size_t nworkloads;
};

/*
 * Parse a policy from a file / a buffer.  On error returns NULL and writes
 * "file:line:column: message" into err (POLICY_ERR_LEN bytes).
 * Does not resolve host names: call policy_resolve() for that.
 * policy_load() also refuses a file that is not regular, is group- or
 * other-writable, is owned by neither root nor the euid, or is over 1 MiB;
 * those errors read "file: message".  policy_parse() is pure (no I/O).
 */
struct policy *policy_load(const char *path, char *err, size_t errlen);
struct policy *policy_parse(const char *buf, size_t len, const char *name, char *err,
			    size_t errlen);

/*
 * Resolve every POLICY_DEST_HOST route with getaddrinfo() (blocking: call at
 * start-up or reload, never from the event loop hot path).  Returns 0, or
 * -errno with "file:line:column: cannot resolve NAME: reason" in err.
 */
int policy_resolve(struct policy *p, char *err, size_t errlen);

/* Frees everything, including route->cred through the hook below. NULL ok. */
void policy_free(struct policy *p);

/* cred.c installs this so that policy_free() can release route->cred. */
extern void (*policy_cred_free_hook)(void *cred);
/* tls.c installs this so that policy_free() can release route->tls_ctx. */
extern void (*policy_tls_free_hook)(void *tls_ctx);

/* Find a workload by name; NULL if absent. */
const struct policy_workload *policy_workload_find(const struct policy *p, const char *name);

/*
 * Does (family, addr, port) fall within the route's destination?  addr is
 * 4 or 16 bytes in network order; port in host order.
 */
int policy_route_match(const struct policy_route *r, int family, const uint8_t *addr,
		       uint16_t port);

/*
 * May a tls: passthrough route relay a ClientHello naming sni (lowercase, as tlshello.c
 * gives it)?  Its host name (host name routes) and its sni: list allow; "*.x" stands for
 * one label.  0 for any other route, a NULL or empty sni.
 */
int policy_sni_allowed(const struct policy_route *r, const char *sni);

/* Parse "5m", "30s", "1h", "7d", "90" (seconds). Returns 0 or -EINVAL. */
int policy_parse_duration(const char *s, uint32_t *out_s);

#endif /* LY_POLICY_H */
