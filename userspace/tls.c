// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Copyright (c) 2026 The lanyard authors */
/*
 * TLS with OpenSSL 3: per-route contexts built from the policy, the interception
 * ClientHello check (SNI against the route, then a leaf from the local CA), and
 * the non-blocking handshake / read / write that the proxy maps to epoll.
 */
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "log.h"
#include "tls.h"

/* ALPN wire format (RFC 7301 3.1): the only protocol lanyardd parses is HTTP/1.1 */
static const unsigned char alpn_h1[] = "\x08http/1.1";
#define ALPN_H1_LEN	(sizeof(alpn_h1) - 1)

/* Hung on policy_route->tls_ctx; the contexts are shared (refcounted) between routes. */
struct tls_route {
	SSL_CTX *client;	/* upstream: verification against the route's anchors */
	SSL_CTX *server;	/* interception: NULL unless tls: intercept */
};

static void tls_route_free(void *p)
{
	struct tls_route *tr = p;

	if (!tr)
		return;
	SSL_CTX_free(tr->client);
	SSL_CTX_free(tr->server);
	free(tr);
}

/* The first OpenSSL error's reason (a constant string), or dflt; clears the queue. */
static const char *ssl_reason(const char *dflt)
{
	const char *r = ERR_reason_error_string(ERR_peek_error());

	ERR_clear_error();
	return r ? r : dflt;
}

/* --- contexts ------------------------------------------------------------------------- */

/*
 * Options common to both roles: TLS 1.2+, no renegotiation (a renegotiation in
 * the middle of a request is an attack surface, not a feature here), and writes
 * that may be partial and retried from a buffer that moved (the proxy's buffers
 * compact and grow between retries).
 */
static int ctx_common(SSL_CTX *ctx)
{
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	return SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) ? 0 : -EIO;
}

/*
 * Upstream session resumption.  A new app connection costs lanyardd two full
 * handshakes (the app's, and its own upstream); resuming the upstream one
 * skips the upstream's signature and our chain verification.  One cache per
 * client context, i.e. per set of trust anchors, keyed by the identity the
 * upstream proved (the verified name or IP): a session is only offered to a
 * connection that would verify the same identity against the same anchors.
 * Never for a connection that presents a client certificate: a resumed session
 * carries the client identity of the handshake that made it, and that may be
 * another workload's or an expired certificate.  A TLS 1.3 ticket is used once
 * (RFC 8446 C.4: a reused ticket links the connections that present it), so a
 * few are kept per upstream, the newest offered first.
 */
#define SESS_SLOTS	64
#define SESS_PER_ID	4		/* tickets (or TLS 1.2 sessions) kept per upstream */

struct sess_cache {
	struct {
		char id[CA_HOST_MAX + 8];	/* "name|port" */
		SSL_SESSION *sess;		/* NULL: a free slot */
		uint64_t seq;			/* when it came: the oldest goes first */
	} slot[SESS_SLOTS];
	uint64_t seq;
};

static int sess_idx = -1;		/* SSL_CTX ex_data index of the struct sess_cache */

static void sess_cache_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
			    void *argp)
{
	struct sess_cache *sc = ptr;

	(void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
	if (!sc)
		return;
	for (size_t i = 0; i < SESS_SLOTS; i++)
		SSL_SESSION_free(sc->slot[i].sess);
	free(sc);
}

static struct sess_cache *sess_cache_of(SSL *ssl)
{
	return sess_idx < 0 ? NULL : SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), sess_idx);
}

/*
 * The cache key of ssl: the identity it verifies and the upstream's port (two
 * servers with one name on two ports are two servers).  After connect().
 */
static void sess_id(SSL *ssl, char *id, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	unsigned port = 0;
	size_t n;

	tls_peer_name(ssl, id, len);
	if (!getpeername(SSL_get_fd(ssl), (struct sockaddr *)&ss, &sl))
		port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port :
							((struct sockaddr_in *)&ss)->sin_port);
	n = strlen(id);
	if (!port || !n || n + 7 > len)
		id[0] = '\0';	/* no key, no resumption */
	else
		snprintf(id + n, len - n, "|%u", port);
}

/*
 * The newest (@newest) or oldest session cached for id, or NULL; *count: how many are
 * (may be NULL).
 */
static int sess_pick(struct sess_cache *sc, const char *id, bool newest, int *count)
{
	int pick = -1, n = 0;

	for (int i = 0; sc && *id && i < SESS_SLOTS; i++) {
		if (!sc->slot[i].sess || strcmp(sc->slot[i].id, id))
			continue;
		n++;
		if (pick < 0 || (newest ? sc->slot[i].seq > sc->slot[pick].seq :
					  sc->slot[i].seq < sc->slot[pick].seq))
			pick = i;
	}
	if (count)
		*count = n;
	return pick;
}

/* Where a new session goes: a free slot, else the oldest of all. */
static int sess_free_slot(struct sess_cache *sc)
{
	int pick = 0;

	for (int i = 0; i < SESS_SLOTS; i++) {
		if (!sc->slot[i].sess)
			return i;
		if (sc->slot[i].seq < sc->slot[pick].seq)
			pick = i;
	}
	return pick;
}

/* OpenSSL hands over each new session (TLS 1.3: each ticket) of a verified handshake. */
static int sess_new_cb(SSL *ssl, SSL_SESSION *sess)
{
	struct sess_cache *sc = sess_cache_of(ssl);
	char id[CA_HOST_MAX + 8];
	int i, n;

	if (!sc || SSL_get_certificate(ssl) || SSL_get_verify_result(ssl) != X509_V_OK)
		return 0;	/* 0: we took no reference */
	sess_id(ssl, id, sizeof(id));
	if (!*id)
		return 0;
	i = sess_pick(sc, id, false, &n);
	if (n < SESS_PER_ID)
		i = sess_free_slot(sc);
	SSL_SESSION_free(sc->slot[i].sess);
	memcpy(sc->slot[i].id, id, sizeof(id));
	sc->slot[i].sess = sess;
	sc->slot[i].seq = ++sc->seq;
	return 1;
}

/*
 * Offer the newest session cached for ssl's identity, if any (before the handshake).  A
 * TLS 1.3 ticket leaves the cache: the next connection presents another, or none.
 */
static void sess_offer(SSL *ssl)
{
	struct sess_cache *sc = sess_cache_of(ssl);
	char id[CA_HOST_MAX + 8];
	SSL_SESSION *s;
	int i;

	sess_id(ssl, id, sizeof(id));
	while ((i = sess_pick(sc, id, true, NULL)) >= 0) {
		s = sc->slot[i].sess;
		if (!SSL_SESSION_is_resumable(s)) {
			sc->slot[i].sess = NULL;
			SSL_SESSION_free(s);
			continue;
		}
		SSL_set_session(ssl, s);	/* takes its own reference */
		if (SSL_SESSION_get_protocol_version(s) >= TLS1_3_VERSION) {
			sc->slot[i].sess = NULL;	/* a ticket is presented once */
			SSL_SESSION_free(s);
		}
		return;
	}
}

static int client_sess_init(SSL_CTX *ctx)
{
	struct sess_cache *sc;

	if (sess_idx < 0)
		sess_idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, sess_cache_free);
	sc = sess_idx < 0 ? NULL : calloc(1, sizeof(*sc));
	if (!sc || !SSL_CTX_set_ex_data(ctx, sess_idx, sc)) {
		free(sc);
		return -ENOMEM;
	}
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT |
					    SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_sess_set_new_cb(ctx, sess_new_cb);
	return 0;
}

static SSL_CTX *client_ctx_new(const char *ca_file, char *why, size_t whylen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	int ok;

	if (!ctx || ctx_common(ctx) || client_sess_init(ctx)) {
		snprintf(why, whylen, "cannot create a TLS context: %s", ssl_reason("?"));
		SSL_CTX_free(ctx);
		return NULL;
	}
	/* OpenSSL's message for a missing file is "no certificate found": say why first */
	if (ca_file && access(ca_file, R_OK) < 0) {
		snprintf(why, whylen, "ca_file %s: %s", ca_file, strerror(errno));
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	ok = ca_file ? SSL_CTX_load_verify_file(ctx, ca_file) :
		       SSL_CTX_set_default_verify_paths(ctx);
	/* set_alpn_protos returns 0 on success (SSL_CTX_set_alpn_protos(3)) */
	if (!ok || SSL_CTX_set_alpn_protos(ctx, alpn_h1, ALPN_H1_LEN)) {
		if (ca_file)
			snprintf(why, whylen, "ca_file %s: cannot load certificates: %s", ca_file,
				 ssl_reason("no certificate found"));
		else
			snprintf(why, whylen, "cannot load the system trust store: %s",
				 ssl_reason("?"));
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

static int hello_cb(SSL *ssl, int *al, void *arg);
static int alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
		   const unsigned char *in, unsigned int inlen, void *arg);

/*
 * No certificate here: each connection gets its leaf in the ClientHello
 * callback.  No session resumption (no tickets, no cache): every connection
 * goes through that callback's checks with a fresh look at the policy.
 */
static SSL_CTX *server_ctx_new(char *why, size_t whylen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (!ctx || ctx_common(ctx) || !SSL_CTX_set_num_tickets(ctx, 0)) {
		snprintf(why, whylen, "cannot create a TLS context: %s", ssl_reason("?"));
		SSL_CTX_free(ctx);
		return NULL;
	}
	/*
	 * An app that sends its request and then shuts its side of TCP without
	 * close_notify still wants the answer: OpenSSL would make that EOF a fatal
	 * error and refuse our writes.  Requests are framed by HTTP (a cut-off head
	 * or body never goes upstream complete), so the EOF is taken as the end.
	 */
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_CIPHER_SERVER_PREFERENCE |
				 SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_client_hello_cb(ctx, hello_cb, NULL);
	SSL_CTX_set_alpn_select_cb(ctx, alpn_cb, NULL);
	return ctx;
}

/* Contexts made during one build, shared by the routes that want the same. */
struct build {
	SSL_CTX *server;
	struct {
		const char *ca_file;	/* NULL: system roots */
		SSL_CTX *ctx;
	} clients[64];
	size_t nclients;
};

static SSL_CTX *build_client(struct build *b, const char *ca_file, char *why, size_t whylen)
{
	SSL_CTX *ctx;

	for (size_t i = 0; i < b->nclients; i++) {
		const char *f = b->clients[i].ca_file;

		if (f == ca_file || (f && ca_file && !strcmp(f, ca_file)))
			return SSL_CTX_up_ref(b->clients[i].ctx) ? b->clients[i].ctx : NULL;
	}
	ctx = client_ctx_new(ca_file, why, whylen);
	if (!ctx)
		return NULL;
	if (b->nclients < sizeof(b->clients) / sizeof(b->clients[0]) && SSL_CTX_up_ref(ctx)) {
		b->clients[b->nclients].ca_file = ca_file;
		b->clients[b->nclients++].ctx = ctx;
	}
	return ctx;
}

static int build_route(struct build *b, struct policy_route *r, char *why, size_t whylen)
{
	struct tls_route *tr = calloc(1, sizeof(*tr));

	if (!tr) {
		snprintf(why, whylen, "out of memory");
		return -ENOMEM;
	}
	r->tls_ctx = tr;	/* from here on policy_free() releases it */
	tr->client = build_client(b, r->ca_file, why, whylen);
	if (!tr->client)
		return -EINVAL;
	if (r->tls != POLICY_TLS_INTERCEPT)
		return 0;
	if (!b->server) {
		b->server = server_ctx_new(why, whylen);
		if (!b->server)
			return -EIO;
	}
	if (!SSL_CTX_up_ref(b->server)) {
		snprintf(why, whylen, "out of memory");
		return -ENOMEM;
	}
	tr->server = b->server;
	return 0;
}

int tls_policy_build(struct policy *p, char *err, size_t errlen)
{
	struct build b = { 0 };
	char why[TLS_WHY_LEN + PATH_MAX];
	int rc = 0;

	policy_tls_free_hook = tls_route_free;
	for (size_t i = 0; !rc && i < p->nworkloads; i++) {
		struct policy_workload *w = &p->workloads[i];

		for (size_t j = 0; !rc && j < w->nroutes; j++) {
			struct policy_route *r = &w->routes[j];

			if (r->tls != POLICY_TLS_INTERCEPT && r->tls != POLICY_TLS_ORIGINATE)
				continue;
			tls_route_free(r->tls_ctx);
			r->tls_ctx = NULL;
			rc = build_route(&b, r, why, sizeof(why));
			if (rc && err && errlen)
				snprintf(err, errlen, "%s:%d:%d: workloads[%zu].routes[%zu]: %s",
					 p->path, r->line, r->col, i, j, why);
		}
	}
	/* the routes hold their own references */
	SSL_CTX_free(b.server);
	for (size_t i = 0; i < b.nclients; i++)
		SSL_CTX_free(b.clients[i].ctx);
	return rc;
}

/* --- interception: the ClientHello ----------------------------------------------------- */

/*
 * The host_name of a server_name extension (RFC 6066 3) into out, normalised
 * (lowercase, no trailing dot) by the CA's own name check.  1 found, 0 no
 * extension, -1 malformed or not a DNS name (an IP literal is not allowed in SNI).
 */
static int hello_sni(SSL *ssl, char *out, size_t outlen)
{
	const unsigned char *p;
	size_t len, n;
	char raw[CA_HOST_MAX + 2];
	int family;

	if (!SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &p, &len))
		return 0;
	/* ServerNameList: u16 length, then one entry: u8 type, u16 length, name */
	if (len < 5 || (size_t)(p[0] << 8 | p[1]) != len - 2 || p[2] != TLSEXT_NAMETYPE_host_name)
		return -1;
	n = (size_t)(p[3] << 8 | p[4]);
	if (n == 0 || n > len - 5 || n >= sizeof(raw) || memchr(p + 5, '\0', n))
		return -1;
	memcpy(raw, p + 5, n);
	raw[n] = '\0';
	if (ca_host_normalize(raw, out, outlen, &family) || family)
		return -1;
	return 1;
}

/* No ALPN extension (HTTP/1.1 then), or one that lists http/1.1 (RFC 7301 3.1). */
static int hello_alpn_ok(SSL *ssl)
{
	const unsigned char *p;
	size_t len, i;

	if (!SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_application_layer_protocol_negotiation,
				       &p, &len))
		return 1;
	if (len < 2 || (size_t)(p[0] << 8 | p[1]) != len - 2)
		return 0;
	for (i = 2; i < len && i + 1 + p[i] <= len; i += 1 + p[i])
		if (p[i] == ALPN_H1_LEN - 1 && !memcmp(p + i + 1, alpn_h1 + 1, ALPN_H1_LEN - 1))
			return 1;
	return 0;
}

/*
 * Which name this connection may be served as, into ta->name; NULL, or why
 * not.  The route decides, never the client: a host name route is only ever
 * its own name; an IP route with server_name only that name.  An IP route
 * without server_name takes any DNS name, because the credential still goes
 * only to the destination the kernel recorded, and only after that upstream
 * proved it owns the name (tls_connect_new verifies the upstream against it).
 */
static const char *sni_accept(struct tls_accept *ta, int found, const char *sni)
{
	const struct policy_route *r = ta->route;
	const char *want = r->kind == POLICY_DEST_HOST ? r->host : r->server_name;

	if (found < 0)
		return "the SNI is not a valid host name";
	if (!found && !r->server_name)
		return "no SNI, and the route names no server_name";
	if (!found)
		sni = r->server_name;
	if (want && strcmp(sni, want))
		return "the SNI does not match the route";
	snprintf(ta->name, sizeof(ta->name), "%s", sni);
	return NULL;
}

/* Install the leaf for ta->name; 0 or -1 (why in ta->reason). */
static int leaf_install(SSL *ssl, struct tls_accept *ta)
{
	struct ca_cert *leaf;
	char err[256];
	int ok;

	leaf = ta->ca ? ca_leaf(ta->ca, ta->name, 0, ta->now, err, sizeof(err)) : NULL;
	if (!leaf) {
		log_warnx("%s: no interception leaf: %s", __func__, ta->ca ? err : "no CA");
		ta->reason = "cannot mint an interception certificate";
		return -1;
	}
	/* the SSL takes its own references: the cache keeps the leaf for the next one */
	ok = SSL_use_certificate(ssl, leaf->cert) == 1 &&
	     SSL_use_PrivateKey(ssl, leaf->key) == 1 && SSL_set1_chain(ssl, leaf->chain) == 1;
	ca_cert_put(leaf);
	if (!ok) {
		ta->reason = "cannot install the interception certificate";
		ERR_clear_error();
		return -1;
	}
	return 0;
}

/*
 * Runs before OpenSSL answers a ClientHello (and again after a HelloRetryRequest):
 * every check that does not need a certificate comes first, so a leaf is minted
 * only for a connection that the route allows (design 8).
 */
static int hello_cb(SSL *ssl, int *al, void *arg)
{
	struct tls_accept *ta = SSL_get_app_data(ssl);
	char sni[CA_HOST_MAX + 1];
	int found;

	(void)arg;
	if (!ta || !ta->route) {
		if (ta)
			ta->reason = ta->refuse ? ta->refuse : "no route";
		*al = SSL_AD_ACCESS_DENIED;
		return SSL_CLIENT_HELLO_ERROR;
	}
	if (!hello_alpn_ok(ssl)) {
		ta->reason = "the client offers no ALPN protocol lanyardd speaks (http/1.1)";
		*al = SSL_AD_NO_APPLICATION_PROTOCOL;
		return SSL_CLIENT_HELLO_ERROR;
	}
	found = hello_sni(ssl, sni, sizeof(sni));
	ta->reason = sni_accept(ta, found, sni);
	if (ta->reason) {
		*al = SSL_AD_UNRECOGNIZED_NAME;
		return SSL_CLIENT_HELLO_ERROR;
	}
	if (leaf_install(ssl, ta)) {
		*al = SSL_AD_INTERNAL_ERROR;
		return SSL_CLIENT_HELLO_ERROR;
	}
	return SSL_CLIENT_HELLO_SUCCESS;
}

/* http/1.1 when the client offers ALPN at all (h2-only clients were refused above). */
static int alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
		   const unsigned char *in, unsigned int inlen, void *arg)
{
	unsigned char *sel;

	(void)ssl;
	(void)arg;
	if (SSL_select_next_proto(&sel, outlen, alpn_h1, ALPN_H1_LEN, in, inlen) !=
	    OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	*out = sel;
	return SSL_TLSEXT_ERR_OK;
}

SSL *tls_accept_new(const struct policy_route *r, int fd, struct tls_accept *ta)
{
	const struct tls_route *tr = r ? r->tls_ctx : NULL;
	SSL *ssl;

	if (!tr || !tr->server)
		return NULL;
	ssl = SSL_new(tr->server);
	if (!ssl || !SSL_set_fd(ssl, fd)) {
		SSL_free(ssl);
		ERR_clear_error();
		return NULL;
	}
	SSL_set_app_data(ssl, ta);
	SSL_set_accept_state(ssl);
	ta->name[0] = '\0';
	ta->reason = NULL;
	return ssl;
}

/* --- upstream ---------------------------------------------------------------------------- */

/* The identity the upstream must prove, set on ssl: a DNS name (also the SNI) or an IP. */
static int peer_identity(SSL *ssl, const struct policy_route *r, const char *sni, int family,
			 const uint8_t *addr)
{
	const char *name = r->kind == POLICY_DEST_HOST ? r->host :
			   r->server_name ? r->server_name : sni && *sni ? sni : NULL;

	if (!name) {
		/* RFC 6066 3: no SNI for an address; the certificate must carry it as iPAddress */
		return X509_VERIFY_PARAM_set1_ip(SSL_get0_param(ssl), addr,
						 family == AF_INET ? 4 : 16) ? 0 : -1;
	}
	SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	if (!SSL_set1_host(ssl, name) || !SSL_set_tlsext_host_name(ssl, name))
		return -1;
	return 0;
}

SSL *tls_connect_new(const struct policy_route *r, int fd, const char *sni, int family,
		     const uint8_t *addr, char *why, size_t whylen)
{
	const struct tls_route *tr = r ? r->tls_ctx : NULL;
	SSL *ssl;

	if (!tr || !tr->client) {
		snprintf(why, whylen, "no TLS context for the route");
		return NULL;
	}
	ssl = SSL_new(tr->client);
	if (!ssl || !SSL_set_fd(ssl, fd) || peer_identity(ssl, r, sni, family, addr)) {
		snprintf(why, whylen, "cannot set up upstream TLS: %s", ssl_reason("?"));
		SSL_free(ssl);
		return NULL;
	}
	if (r->cred_type != POLICY_CRED_X509 && !r->mtls)
		sess_offer(ssl);
	SSL_set_connect_state(ssl);
	return ssl;
}

/*
 * The certificate is only sent once the upstream is verified: the client's
 * Certificate message follows the server's Certificate (TLS 1.2, RFC 5246
 * 7.3) or its Finished (TLS 1.3, RFC 8446 4.4), and with SSL_VERIFY_PEER
 * OpenSSL aborts as soon as the server's chain fails, before writing ours.
 */
int tls_use_client_cert(SSL *ssl, const struct ca_cert *cc, char *why, size_t whylen)
{
	if (!cc || !cc->cert || !cc->key) {
		snprintf(why, whylen, "no client certificate");
		return -EINVAL;
	}
	/* both take their own references: the SSL outlives a rotation of cc */
	if (SSL_use_certificate(ssl, cc->cert) != 1 || SSL_use_PrivateKey(ssl, cc->key) != 1 ||
	    (cc->chain && SSL_set1_chain(ssl, cc->chain) != 1) || SSL_check_private_key(ssl) != 1) {
		snprintf(why, whylen, "cannot use the client certificate: %s", ssl_reason("?"));
		return -EINVAL;
	}
	return 0;
}

void tls_peer_name(SSL *ssl, char *buf, size_t len)
{
	X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);
	const char *host = X509_VERIFY_PARAM_get0_host(vp, 0);
	char *ip;

	if (host) {
		snprintf(buf, len, "%s", host);
		return;
	}
	ip = X509_VERIFY_PARAM_get1_ip_asc(vp);
	snprintf(buf, len, "%s", ip ? ip : "");
	OPENSSL_free(ip);
}

/* --- handshake and data ------------------------------------------------------------------ */

/* Why a handshake failed: the verification result first, then OpenSSL's reason. */
static void handshake_why(SSL *ssl, int e, char *why, size_t whylen)
{
	long v = SSL_get_verify_result(ssl);
	unsigned long err = ERR_peek_error();

	if (v != X509_V_OK)
		snprintf(why, whylen, "certificate verify failed: %s",
			 X509_verify_cert_error_string(v));
	else if (err && ERR_reason_error_string(err))
		snprintf(why, whylen, TLS_HS_FAILED ": %s", ERR_reason_error_string(err));
	else if (e == SSL_ERROR_SYSCALL)
		snprintf(why, whylen, TLS_HS_FAILED ": connection closed");
	else
		snprintf(why, whylen, TLS_HS_FAILED);
	ERR_clear_error();
}

/* SSL_ERROR_WANT_*: what to wait for; 0 for anything else. */
static uint32_t want_events(int e)
{
	if (e == SSL_ERROR_WANT_READ)
		return EPOLLIN;
	if (e == SSL_ERROR_WANT_WRITE)
		return EPOLLOUT;
	return 0;
}

int tls_handshake(SSL *ssl, uint32_t *events, char *why, size_t whylen)
{
	int rc, e;

	/* SSL_get_error() reads the thread's error queue: start from a clean one */
	ERR_clear_error();
	rc = SSL_do_handshake(ssl);
	if (rc == 1)
		return 1;
	e = SSL_get_error(ssl, rc);
	*events = want_events(e);
	if (*events)
		return 0;
	handshake_why(ssl, e, why, whylen);
	/* SSL_shutdown(3): no close_notify after a fatal error */
	SSL_set_quiet_shutdown(ssl, 1);
	return -EPROTO;
}

/* A fatal error on ssl: the -errno to report; the SSL is made quiet. */
static ssize_t io_fail(SSL *ssl, int e, int saved_errno)
{
	unsigned long err = ERR_peek_error();
	ssize_t rc = -EPROTO;

	if (e == SSL_ERROR_SYSCALL)
		rc = saved_errno ? -saved_errno : -EPIPE;
	else if (e == SSL_ERROR_SSL && ERR_GET_REASON(err) == SSL_R_UNEXPECTED_EOF_WHILE_READING)
		rc = -EPIPE;
	ERR_clear_error();
	SSL_set_quiet_shutdown(ssl, 1);
	return rc;
}

ssize_t tls_read(SSL *ssl, void *buf, size_t len, uint32_t *events)
{
	size_t n = 0;
	int rc, e;

	ERR_clear_error();
	errno = 0;
	rc = SSL_read_ex(ssl, buf, len, &n);
	if (rc == 1)
		return (ssize_t)n;
	e = SSL_get_error(ssl, rc);
	*events = want_events(e);
	if (*events)
		return -EAGAIN;
	if (e == SSL_ERROR_ZERO_RETURN)
		return 0;
	return io_fail(ssl, e, errno);
}

ssize_t tls_write(SSL *ssl, const void *buf, size_t len, uint32_t *events)
{
	size_t n = 0;
	int rc, e;

	ERR_clear_error();
	errno = 0;
	rc = SSL_write_ex(ssl, buf, len, &n);
	if (rc == 1)
		return (ssize_t)n;
	e = SSL_get_error(ssl, rc);
	*events = want_events(e);
	if (*events)
		return -EAGAIN;
	return io_fail(ssl, e, errno);
}

void tls_shutdown(SSL *ssl)
{
	if (!ssl || SSL_get_quiet_shutdown(ssl) || (SSL_get_shutdown(ssl) & SSL_SENT_SHUTDOWN) ||
	    !SSL_is_init_finished(ssl))
		return;
	ERR_clear_error();
	SSL_shutdown(ssl);	/* one non-blocking try: a lost close_notify is a truncation */
	ERR_clear_error();
}

void tls_quiet(SSL *ssl)
{
	if (ssl)
		SSL_set_quiet_shutdown(ssl, 1);
}

void tls_free(SSL *ssl)
{
	if (!ssl)
		return;
	tls_shutdown(ssl);
	SSL_free(ssl);
}
