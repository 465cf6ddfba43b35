// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Copyright (c) 2026 The lanyard authors */
/*
 * The credential cache: a slot per policy route holding the JWT header to
 * inject, minted ahead of need by a timer, carried across reloads for routes
 * that did not change, dropped on revoke.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit.h"
#include "cred.h"
#include "log.h"

struct cred_issuer {
	const struct jwt_key *key;	/* borrowed */
	struct ca *ca;			/* borrowed; mints client certificates */
	struct fetcher *fetch;		/* borrowed; runs the fetched sources */
	uint32_t mark;			/* SO_MARK of the fetchers' sockets */
	char *issuer;
	char *trust_domain;
};

#define STATIC_POLL_S	2	/* a static credential's file is looked at this often */
#define BACKOFF_MAX_S	60	/* failed fetches are retried at least this often */
#define ASSERTION_TTL_S	60	/* client assertions and subject tokens: short-lived */

/* --- timing ------------------------------------------------------------------ */

/*
 * Refresh with half the lifetime left: a 5 minute token is replaced after
 * 2.5 minutes, so a signer that fails has half a lifetime of retries (one a
 * second) before requests see a 503.
 */
int64_t cred_refresh_margin(uint32_t ttl_s)
{
	return ttl_s / 2;
}

/*
 * Seconds before exp from which a credential is no longer injected (design
 * 8: never inject an expired one).  1 s absorbs the request's queueing and
 * the upstream's clock; but it must fall strictly after the refresh, or
 * every refresh would open a 503 window until the next tick: so it is 1 s
 * only when the margin is at least 2 s (ttl >= 4 s), else 0 — tokens of a
 * 2-3 s lifetime (tests) are used up to their expiry second.
 */
static int64_t cred_guard(int64_t ttl_s)
{
	return ttl_s >= 4 ? 1 : 0;
}

/* --- credentials and slots ------------------------------------------------------ */

static void cred_free(struct cred *c)
{
	if (!c)
		return;
	secret_free(c->header);
	ca_cert_put(c->x509);
	free(c);
}

static struct cred_slot *slot_new(const struct policy_workload *w, const struct policy_route *r)
{
	struct cred_slot *s = calloc(1, sizeof(*s));

	if (s) {
		s->workload = w->name;
		s->route = r;
	}
	return s;
}

/* installed as policy_cred_free_hook: policy_free() calls it for each route */
static void slot_free(void *p)
{
	struct cred_slot *s = p;

	if (!s)
		return;
	cred_free(s->cur);
	s->cur = NULL;
	cred_free(s->prev);
	s->prev = NULL;
	/* a fetch still running finishes on its own; its result is dropped */
	if (s->job)
		s->job->owner = NULL;
	free(s);
}

struct cred_issuer *cred_issuer_new(const struct jwt_key *key, const char *issuer,
				    const char *trust_domain)
{
	struct cred_issuer *ci = calloc(1, sizeof(*ci));

	if (!ci)
		return NULL;
	ci->key = key;
	ci->issuer = strdup(issuer ? issuer : "");
	ci->trust_domain = strdup(trust_domain ? trust_domain : "");
	if (!ci->issuer || !ci->trust_domain) {
		cred_issuer_free(ci);
		return NULL;
	}
	policy_cred_free_hook = slot_free;
	return ci;
}

void cred_issuer_set_ca(struct cred_issuer *ci, struct ca *ca)
{
	ci->ca = ca;
}

void cred_issuer_set_fetcher(struct cred_issuer *ci, struct fetcher *f, uint32_t mark)
{
	ci->fetch = f;
	ci->mark = mark;
}

void cred_issuer_free(struct cred_issuer *ci)
{
	if (!ci)
		return;
	free(ci->issuer);
	free(ci->trust_domain);
	free(ci);
}

/* --- minting ------------------------------------------------------------------- */

/* a CR or LF in the header template would let the policy smuggle a header line */
static int has_crlf(const char *s)
{
	return s && strpbrk(s, "\r\n");
}

/*
 * The client certificate of an x509 (or jwt + mtls) credential, for the
 * workload's SPIFFE ID, with the route's ttl; its key stays in the ca_cert.
 */
static int cred_mint_x509(struct cred_issuer *ci, const char *sub, uint32_t ttl_s, int64_t now,
			  struct cred *c)
{
	unsigned char *der = NULL;
	char err[256];
	int n;

	if (!ci->ca) {
		log_warnx("%s: no CA to mint client certificates", __func__);
		return -ENOENT;
	}
	c->x509 = ca_client_cert(ci->ca, sub, ttl_s, now, err, sizeof(err));
	if (!c->x509) {
		log_warnx("%s: %s", __func__, err);
		return -EINVAL;
	}
	if (ca_cert_thumbprint(c->x509, c->x5t, sizeof(c->x5t)))
		return -EINVAL;
	n = i2d_X509(c->x509->cert, &der);
	if (n <= 0)
		return -ENOMEM;
	secret_fingerprint(der, (size_t)n, c->fp);
	OPENSSL_free(der);
	c->iat = now;
	c->exp = c->x509->not_after;
	return 0;
}

/* "Name: prefix" and "suffix\r\n" around the token, from the route's template */
static int header_parts(const struct policy_route *r, char **pre, char **suf)
{
	const char *name = r->header_name ? r->header_name : "Authorization";
	const char *hp = r->header_prefix ? r->header_prefix : "";
	const char *hs = r->header_suffix ? r->header_suffix : "";

	*pre = *suf = NULL;
	if (has_crlf(name) || has_crlf(hp) || has_crlf(hs))
		return -EINVAL;
	if (asprintf(pre, "%s: %s", name, hp) < 0) {
		*pre = NULL;
		return -ENOMEM;
	}
	if (asprintf(suf, "%s\r\n", hs) < 0) {
		*suf = NULL;
		return -ENOMEM;
	}
	return 0;
}

/*
 * Sign a JWT for (w, r) and render the header line around it.  The token is
 * written once, into the secret; its fingerprint is taken in place.  x509:
 * a client certificate only; jwt with mtls: a client certificate of the same
 * ttl, minted first, and a JWT bound to it (RFC 8705 3.1 cnf x5t#S256).
 */
static int cred_mint(struct cred_issuer *ci, const struct policy_workload *w,
		     const struct policy_route *r, int64_t now, struct cred **out)
{
	struct jwt_claims cl = { 0 };
	char *sub = NULL, *pre = NULL, *suf = NULL;
	struct cred *c = NULL;
	size_t off;
	int err;

	*out = NULL;
	err = header_parts(r, &pre, &suf);
	if (err)
		goto cleanup;
	err = -ENOMEM;
	c = calloc(1, sizeof(*c));
	if (!c || asprintf(&sub, "spiffe://%s/%s", ci->trust_domain, w->name) < 0)
		goto cleanup;
	if (r->cred_type == POLICY_CRED_X509 || r->mtls) {
		err = cred_mint_x509(ci, sub, r->ttl_s, now, c);
		if (err)
			goto cleanup;
		err = -ENOMEM;
		cl.cnf_x5t = c->x5t;
	}
	if (r->cred_type == POLICY_CRED_X509) {
		*out = c;
		c = NULL;
		err = 0;
		goto cleanup;
	}
	cl.iss = ci->issuer;
	cl.sub = sub;
	cl.aud = r->audience;
	cl.iat = cl.nbf = now;
	cl.exp = now + r->ttl_s;
	err = jwt_mint(ci->key, &cl, pre, suf, &c->header);
	if (err)
		goto cleanup;
	off = strlen(pre);
	secret_fingerprint(c->header->buf + off, c->header->len - off - strlen(suf), c->fp);
	snprintf(c->jti, sizeof(c->jti), "%s", cl.jti);
	c->iat = cl.iat;
	c->exp = cl.exp;
	*out = c;
	c = NULL;
cleanup:
	cred_free(c);
	free(sub);
	free(pre);
	free(suf);
	return err;
}

static void audit_issue(const struct cred_slot *s, const struct policy_route *r)
{
	const struct cred *c = s->cur;

	audit_begin("credential.issue");
	audit_str("workload", s->workload);
	audit_str("route", r->to);
	audit_str("type", policy_cred_type_name(r->cred_type));
	audit_str("audience", r->audience);
	audit_str("jti", c->jti[0] ? c->jti : NULL);
	audit_str("fingerprint", c->fp);
	if (c->x509) {
		audit_str("serial", c->x509->serial);
		audit_str("x5t#S256", c->x5t);
	}
	audit_i64("iat", c->iat);
	if (c->exp != INT64_MAX)
		audit_i64("exp", c->exp);
	audit_u64("took_us", s->took_us);
	audit_end();
}

static int is_fetched(const struct policy_route *r)
{
	return policy_cred_fetched(r->cred_type) && r->src;
}

/*
 * A failed issuance.  The current credential stays while it is unexpired
 * (cred_get() stops returning it at expiry anyway).  A local signer is
 * retried in a second: a broken one costs a log line a second, not one per
 * tick.  A fetch backs off exponentially, with jitter so that the slots of
 * one provider do not retry in step, up to a minute.
 */
static void slot_failed(struct cred_slot *s, const struct policy_route *r, int64_t now,
			const char *why, const char *detail)
{
	uint32_t wait = 1;

	s->failed++;
	snprintf(s->why, sizeof(s->why), "%s", why);
	if (is_fetched(r)) {
		s->backoff_s = s->backoff_s ? s->backoff_s * 2 : 1;
		if (s->backoff_s > BACKOFF_MAX_S)
			s->backoff_s = BACKOFF_MAX_S;
		wait = s->backoff_s / 2 + (uint32_t)random() % (s->backoff_s / 2 + 1);
	}
	s->refresh_at = now + (wait ? wait : 1);
	/* a static file that went away or became readable by others is not used any more */
	if (s->cur && (now >= s->cur->exp || r->cred_type == POLICY_CRED_STATIC)) {
		cred_free(s->cur);
		s->cur = NULL;
	}
	log_warnx("workload %s route %s: no %s credential: %s%s%s%s", s->workload, r->to,
		  policy_cred_type_name(r->cred_type), why, detail && *detail ? " (stderr: " : "",
		  detail && *detail ? detail : "", detail && *detail ? ")" : "");
	audit_begin("credential.error");
	audit_str("workload", s->workload);
	audit_str("route", r->to);
	audit_str("type", policy_cred_type_name(r->cred_type));
	audit_str("reason", why);
	audit_u64("retry_in", wait);
	audit_end();
}

/* Put a new credential in the slot; the one it replaces goes (or waits, with a cert). */
static void slot_install(struct cred_slot *s, const struct policy_route *r, struct cred *c)
{
	/* connections that presented the old certificate go on with it until it expires */
	cred_free(s->prev);
	s->prev = s->cur && s->cur->x509 ? s->cur : NULL;
	if (!s->prev)
		cred_free(s->cur);
	s->cur = c;
	s->issued++;
	s->backoff_s = 0;
	s->why[0] = '\0';
	log_debug("workload %s route %s: jti %s serial %s %s exp %" PRId64, s->workload, r->to,
		  c->jti, c->x509 ? c->x509->serial : "-", c->fp, c->exp);
	audit_issue(s, r);
}

/* A short-lived JWT signed by lanyard's key: a client assertion or a subject token */
static struct secret *sign_short(struct cred_issuer *ci, const char *iss, const char *sub,
				 const char *aud, int64_t now)
{
	struct jwt_claims cl = { .iss = iss, .sub = sub, .aud = aud };
	struct secret *t = NULL;

	cl.iat = cl.nbf = now;
	cl.exp = now + ASSERTION_TTL_S;
	return jwt_mint(ci->key, &cl, "", "", &t) ? NULL : t;
}

/*
 * Hand the slot's source to a fetch worker.  What needs lanyard's key (the
 * client assertion, RFC 7523 3: iss = sub = client_id, aud = the token
 * endpoint; the subject token of an exchange) is signed here, on the loop:
 * the workers never see a key.
 */
static int slot_fetch(struct cred_issuer *ci, struct cred_slot *s,
		      const struct policy_workload *w, const struct policy_route *r, int64_t now)
{
	const struct policy_source *src = r->src;
	struct fetch_job *j;
	char sub[256];

	if (s->job)
		return 0;	/* single flight: the running fetch will do */
	if (!ci->fetch)
		return -ENOSYS;
	j = fetch_job_new(r->cred_type, r->src);
	if (!j)
		return -ENOMEM;
	snprintf(j->workload, sizeof(j->workload), "%s", w->name);
	snprintf(j->route, sizeof(j->route), "%s", r->to);
	snprintf(j->audience, sizeof(j->audience), "%s", r->audience ? r->audience : "");
	snprintf(sub, sizeof(sub), "spiffe://%s/%s", ci->trust_domain, w->name);
	if (src->auth == POLICY_AUTH_PRIVATE_KEY_JWT)
		j->assertion = sign_short(ci, src->client_id, src->client_id, src->token_url, now);
	if (r->cred_type == POLICY_CRED_TOKEN_EXCHANGE)
		j->subject = sign_short(ci, ci->issuer, sub, src->subject_audience, now);
	if ((src->auth == POLICY_AUTH_PRIVATE_KEY_JWT && !j->assertion) ||
	    (r->cred_type == POLICY_CRED_TOKEN_EXCHANGE && !j->subject)) {
		fetch_job_free(j);
		return -ENOMEM;
	}
	/* static: "unchanged" only means something while the slot holds what it read */
	if (s->cur)
		j->file = s->file;
	j->mark = ci->mark;
	j->owner = s;
	s->job = j;
	s->refresh_at = INT64_MAX;	/* cred_fetch_done() sets the next one */
	fetcher_submit(ci->fetch, j);
	return 0;
}

/* The fetched token in the route's header template, as a credential. */
static int cred_from_fetch(const struct policy_route *r, struct fetch_job *j, int64_t now,
			   struct cred **out)
{
	char *pre = NULL, *suf = NULL;
	struct cred *c = NULL;
	size_t pl, sl;
	int err = header_parts(r, &pre, &suf);

	if (err)
		goto out;
	err = -ENOMEM;
	pl = strlen(pre);
	sl = strlen(suf);
	c = calloc(1, sizeof(*c));
	if (!c || !(c->header = secret_new(pl + j->token->len + sl)))
		goto out;
	memcpy(c->header->buf, pre, pl);
	memcpy(c->header->buf + pl, j->token->buf, j->token->len);
	memcpy(c->header->buf + pl + j->token->len, suf, sl);
	c->header->buf[c->header->len] = '\0';
	secret_fingerprint(j->token->buf, j->token->len, c->fp);
	c->iat = now;
	c->mtime = j->mtime;
	if (r->cred_type == POLICY_CRED_STATIC)
		c->exp = INT64_MAX;
	else
		c->exp = j->expires_at ? j->expires_at : now + r->ttl_s;
	*out = c;
	c = NULL;
	err = 0;
out:
	cred_free(c);
	free(pre);
	free(suf);
	return err;
}

/*
 * Refresh at 80% of the lifetime: a 60 s token is replaced after 48 s, which
 * leaves 12 s of retries (with backoff) before requests see a 503.
 */
static int64_t fetched_refresh_at(const struct cred *c, int64_t now)
{
	int64_t life = c->exp - now;

	return now + (life * 4 / 5 > 1 ? life * 4 / 5 : 1);
}

void cred_fetch_done(struct fetch_job *j, void *arg)
{
	struct cred_slot *s = j->owner;
	const struct policy_route *r;
	struct cred *c = NULL;
	int64_t now = time(NULL);
	int err;

	(void)arg;
	if (!s)
		goto out;	/* the slot went (reload, shutdown) while the fetch ran */
	s->job = NULL;
	r = s->route;
	s->took_us = j->took_us;
	if (s->revoked)
		goto out;
	s->file = j->file;
	if (j->err) {
		slot_failed(s, r, now, j->why, j->detail);
		goto out;
	}
	if (j->unchanged) {
		s->refresh_at = now + STATIC_POLL_S;
		goto out;
	}
	err = cred_from_fetch(r, j, now, &c);
	if (!err && c->exp <= now)
		err = -ETIME;
	if (err) {
		cred_free(c);
		slot_failed(s, r, now, err == -ETIME ? "the credential arrived already expired" :
			    strerror(-err), NULL);
		goto out;
	}
	slot_install(s, r, c);
	s->refresh_at = r->cred_type == POLICY_CRED_STATIC ? now + STATIC_POLL_S :
							      fetched_refresh_at(c, now);
out:
	fetch_job_free(j);
}

/* Mint into a slot (jwt, x509), or start a fetch (the rest). */
static int slot_refresh(struct cred_issuer *ci, struct cred_slot *s,
			const struct policy_workload *w, const struct policy_route *r,
			int64_t now)
{
	struct cred *c = NULL;
	uint64_t t0;
	int err;

	s->workload = w->name;
	s->route = r;
	/* passthrough: the app's TLS goes through untouched, nothing is ever injected */
	if (r->tls == POLICY_TLS_PASSTHROUGH) {
		s->refresh_at = INT64_MAX;
		return 0;
	}
	if (is_fetched(r)) {
		err = slot_fetch(ci, s, w, r, now);
		if (err)
			slot_failed(s, r, now, strerror(-err), NULL);
		return 0;	/* the fetch reports later; a reload never waits for it */
	}
	t0 = loop_clock_us();
	err = cred_mint(ci, w, r, now, &c);
	s->took_us = loop_clock_us() - t0;
	if (err) {
		slot_failed(s, r, now, strerror(-err), NULL);
		return err;
	}
	slot_install(s, r, c);
	s->refresh_at = c->exp - cred_refresh_margin(r->ttl_s);
	return 0;
}

/* --- reload -------------------------------------------------------------------- */

static int str_eq(const char *a, const char *b)
{
	return a == b || (a && b && !strcmp(a, b));
}

static int source_same(const struct policy_source *a, const struct policy_source *b)
{
	if (!a || !b)
		return a == b;
	if (a->argc != b->argc)
		return 0;
	for (size_t i = 0; i < a->argc; i++)
		if (strcmp(a->argv[i], b->argv[i]))
			return 0;
	return a->auth == b->auth && a->timeout_ms == b->timeout_ms &&
	       a->max_age_s == b->max_age_s && str_eq(a->token_url, b->token_url) &&
	       str_eq(a->client_id, b->client_id) &&
	       str_eq(a->client_secret_file, b->client_secret_file) &&
	       str_eq(a->scope, b->scope) && str_eq(a->resource, b->resource) &&
	       str_eq(a->subject_audience, b->subject_audience) &&
	       str_eq(a->ca_file, b->ca_file) && str_eq(a->file, b->file) &&
	       str_eq(a->systemd_credential, b->systemd_credential);
}

/* Would a credential minted for a serve b unchanged? (workload names compared by caller) */
static int route_same_cred(const struct policy_route *a, const struct policy_route *b)
{
	return a->cred_type == b->cred_type && a->ttl_s == b->ttl_s && a->mtls == b->mtls &&
	       source_same(a->src, b->src) && str_eq(a->to, b->to) &&
	       str_eq(a->audience, b->audience) && str_eq(a->header_name, b->header_name) &&
	       str_eq(a->header_prefix, b->header_prefix) &&
	       str_eq(a->header_suffix, b->header_suffix);
}

/* One route of the new policy and the old route whose slot it takes over. */
struct sync_ent {
	struct policy_workload *w;
	struct policy_route *r;
	struct policy_route *from;	/* NULL: fresh slot */
	int fresh;
};

static int claimed(const struct sync_ent *e, size_t n, const struct policy_route *from)
{
	for (size_t i = 0; i < n; i++)
		if (e[i].from == from)
			return 1;
	return 0;
}

/* The old route with a slot that e[n] can take over, not claimed by e[0..n). */
static struct policy_route *sync_match(struct policy *oldp, const struct sync_ent *e, size_t n)
{
	for (size_t i = 0; oldp && i < oldp->nworkloads; i++) {
		struct policy_workload *ow = &oldp->workloads[i];

		if (strcmp(ow->name, e[n].w->name))
			continue;
		for (size_t j = 0; j < ow->nroutes; j++) {
			struct policy_route *o = &ow->routes[j];

			if (o->cred && route_same_cred(o, e[n].r) && !claimed(e, n, o))
				return o;
		}
	}
	return NULL;
}

/* Plan the sync: an entry per route of newp, with the old slot it will take. */
static struct sync_ent *sync_plan(struct policy *newp, struct policy *oldp, size_t *n)
{
	struct sync_ent *e;
	size_t total = 0, k = 0;

	for (size_t i = 0; i < newp->nworkloads; i++)
		total += newp->workloads[i].nroutes;
	e = calloc(total ? total : 1, sizeof(*e));
	if (!e)
		return NULL;
	for (size_t i = 0; i < newp->nworkloads; i++) {
		for (size_t j = 0; j < newp->workloads[i].nroutes; j++, k++) {
			e[k].w = &newp->workloads[i];
			e[k].r = &e[k].w->routes[j];
			/* a route that already has a slot (sync called twice) keeps it */
			if (!e[k].r->cred)
				e[k].from = sync_match(oldp, e, k);
		}
	}
	*n = total;
	return e;
}

/*
 * Two phases so that a failure leaves both policies as they were: first the
 * fresh slots are made and minted (oldp untouched, undone by freeing them),
 * then — nothing can fail any more — the old slots are moved over.
 */
int cred_sync(struct cred_issuer *ci, struct policy *newp, struct policy *oldp, int64_t now)
{
	struct sync_ent *e;
	size_t n = 0, i;
	int err = 0;

	policy_cred_free_hook = slot_free;
	e = sync_plan(newp, oldp, &n);
	if (!e)
		return -ENOMEM;
	for (i = 0; i < n && !err; i++) {
		if (e[i].r->cred || e[i].from)
			continue;
		e[i].r->cred = slot_new(e[i].w, e[i].r);
		e[i].fresh = 1;
		err = e[i].r->cred ? slot_refresh(ci, e[i].r->cred, e[i].w, e[i].r, now) : -ENOMEM;
	}
	for (i = 0; i < n; i++) {
		struct cred_slot *s;

		if (err) {
			if (e[i].fresh) {
				slot_free(e[i].r->cred);
				e[i].r->cred = NULL;
			}
			continue;
		}
		if (e[i].fresh || (!e[i].from && !e[i].r->cred))
			continue;
		if (e[i].from) {
			e[i].r->cred = e[i].from->cred;
			e[i].from->cred = NULL;
		}
		s = e[i].r->cred;
		/* the old policy (and the name and route it lent) is about to be freed */
		s->workload = e[i].w->name;
		s->route = e[i].r;
		s->revoked = 0;
		/* revoked or never minted: mint now; failing is retried by the tick */
		if (!s->cur)
			slot_refresh(ci, s, e[i].w, e[i].r, now);
	}
	free(e);
	return err;
}

/* --- timer, hot path, revoke -------------------------------------------------- */

/*
 * A route can lack a slot only when a reload failed after cred_sync() moved
 * its slot away (the new policy, slots and all, was then freed): it gets a
 * new one here, so the running policy heals within a tick.
 */
void cred_tick(struct cred_issuer *ci, struct policy *p, int64_t now)
{
	for (size_t i = 0; p && i < p->nworkloads; i++) {
		struct policy_workload *w = &p->workloads[i];

		for (size_t j = 0; j < w->nroutes; j++) {
			struct policy_route *r = &w->routes[j];
			struct cred_slot *s = r->cred;

			if (!s) {
				s = slot_new(w, r);
				if (!s)
					continue;
				r->cred = s;
			}
			if (s->revoked)
				continue;
			/* now < iat: the clock stepped back; upstreams would see nbf ahead */
			if (now >= s->refresh_at || (s->cur && now < s->cur->iat))
				slot_refresh(ci, s, w, r, now);
		}
	}
}

const struct cred *cred_get(const struct policy_route *r, int64_t now)
{
	const struct cred_slot *s = r->cred;
	const struct cred *c;

	if (!s || s->revoked)
		return NULL;
	c = s->cur;
	if (!c || now >= c->exp - cred_guard(c->exp - c->iat))
		return NULL;
	return c;
}

const struct cred *cred_get_bound(const struct policy_route *r, const struct ca_cert *x509,
				  int64_t now)
{
	const struct cred_slot *s = r->cred;
	const struct cred *c = NULL;

	if (!s || s->revoked || !x509)
		return NULL;
	if (s->cur && s->cur->x509 == x509)
		c = s->cur;
	else if (s->prev && s->prev->x509 == x509)
		c = s->prev;
	if (!c || now >= c->exp - cred_guard(c->exp - c->iat))
		return NULL;
	return c;
}

int cred_revoked(const struct policy_route *r)
{
	const struct cred_slot *s = r->cred;

	return s && s->revoked;
}

int cred_pending(const struct policy_route *r)
{
	const struct cred_slot *s = r->cred;

	return s && s->job && !s->cur && !s->revoked && !s->why[0];
}

const char *cred_unavailable_reason(const struct policy_route *r)
{
	const struct cred_slot *s = r->cred;

	if (s && s->why[0])
		return s->why;
	if (s && s->job)
		return "the credential is being fetched";
	return "no credential available";
}

/* Drop a slot's credentials; 1 if it held one. */
static int slot_drop(struct cred_slot *s)
{
	int had = s->cur != NULL;

	cred_free(s->cur);
	s->cur = NULL;
	cred_free(s->prev);
	s->prev = NULL;
	return had;
}

static int cred_matches(const struct cred *c, const char *id)
{
	return c && ((c->jti[0] && !strcmp(c->jti, id)) || !strcmp(c->fp, id));
}

/*
 * Revoke the slot of (w, r): dropped and marked, also a route that had no
 * slot yet, so that cred_tick() cannot issue for it.  By jti: only the
 * slot holding that credential, and it issues afresh.
 */
static int revoke_route(struct cred_issuer *ci, const struct policy_workload *w,
			struct policy_route *r, const char *jti, int64_t now, int *found)
{
	struct cred_slot *s = r->cred;

	if (jti) {
		if (!s || (!cred_matches(s->cur, jti) && !cred_matches(s->prev, jti)))
			return 0;
		*found = 1;
		slot_drop(s);
		slot_refresh(ci, s, w, r, now);
		return 1;
	}
	*found = 1;
	if (!s) {
		s = slot_new(w, r);
		if (!s)
			return -ENOMEM;
		r->cred = s;
	}
	s->revoked = 1;
	if (s->job) {		/* its result must not bring a credential back */
		s->job->owner = NULL;
		s->job = NULL;
	}
	return slot_drop(s);
}

int cred_revoke(struct cred_issuer *ci, struct policy *p, const char *workload,
		const char *route, const char *jti, int64_t now)
{
	int n = 0, found = 0, err = 0, rc;

	for (size_t i = 0; p && i < p->nworkloads; i++) {
		struct policy_workload *w = &p->workloads[i];

		if (workload && strcmp(w->name, workload))
			continue;
		if (!route && !jti)
			found = 1;	/* a workload without routes is still revoked */
		for (size_t j = 0; j < w->nroutes; j++) {
			if (route && strcmp(w->routes[j].to, route))
				continue;
			rc = revoke_route(ci, w, &w->routes[j], jti, now, &found);
			if (rc < 0)
				err = rc;
			else
				n += rc;
		}
	}
	if (!found)
		return -ENOENT;
	return err ? err : n;
}
