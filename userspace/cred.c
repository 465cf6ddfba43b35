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

#include "audit.h"
#include "cred.h"
#include "log.h"

struct cred_issuer {
	const struct jwt_key *key;	/* borrowed */
	struct ca *ca;			/* borrowed; mints client certificates */
	char *issuer;
	char *trust_domain;
};

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

static struct cred_slot *slot_new(const struct policy_workload *w)
{
	struct cred_slot *s = calloc(1, sizeof(*s));

	if (s)
		s->workload = w->name;
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

/*
 * Sign a JWT for (w, r) and render the header line around it.  The token is
 * written once, into the secret; its fingerprint is taken in place.  x509:
 * a client certificate only; jwt with mtls: a client certificate of the same
 * ttl, minted first, and a JWT bound to it (RFC 8705 3.1 cnf x5t#S256).
 */
static int cred_mint(struct cred_issuer *ci, const struct policy_workload *w,
		     const struct policy_route *r, int64_t now, struct cred **out)
{
	const char *name = r->header_name ? r->header_name : "Authorization";
	const char *hp = r->header_prefix ? r->header_prefix : "";
	const char *hs = r->header_suffix ? r->header_suffix : "";
	struct jwt_claims cl = { 0 };
	char *sub = NULL, *pre = NULL, *suf = NULL;
	struct cred *c = NULL;
	size_t off;
	int err = -ENOMEM;

	*out = NULL;
	if (has_crlf(name) || has_crlf(hp) || has_crlf(hs))
		return -EINVAL;
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
	if (asprintf(&pre, "%s: %s", name, hp) < 0 || asprintf(&suf, "%s\r\n", hs) < 0)
		goto cleanup;
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
	memcpy(c->jti, cl.jti, sizeof(c->jti));
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
	audit_str("audience", r->audience);
	audit_str("jti", c->jti[0] ? c->jti : NULL);
	audit_str("fingerprint", c->fp);
	if (c->x509) {
		audit_str("serial", c->x509->serial);
		audit_str("x5t#S256", c->x5t);
	}
	audit_i64("iat", c->iat);
	audit_i64("exp", c->exp);
	audit_end();
}

/*
 * Mint into a slot.  On failure the current credential stays while it is
 * unexpired (cred_get() stops returning it at expiry anyway), and the next
 * attempt is in a second: a broken signer costs one log line a second, not
 * one per tick.
 */
static int slot_refresh(struct cred_issuer *ci, struct cred_slot *s,
			const struct policy_workload *w, const struct policy_route *r,
			int64_t now)
{
	struct cred *c = NULL;
	int err;

	s->workload = w->name;
	/* passthrough: the app's TLS goes through untouched, nothing is ever injected */
	if (r->tls == POLICY_TLS_PASSTHROUGH) {
		s->refresh_at = INT64_MAX;
		return 0;
	}
	err = cred_mint(ci, w, r, now, &c);
	if (err) {
		s->failed++;
		s->refresh_at = now + 1;
		if (s->cur && now >= s->cur->exp) {
			cred_free(s->cur);
			s->cur = NULL;
		}
		log_warnx("%s: workload %s route %s: cannot mint a credential: %s", __func__,
			  w->name, r->to, strerror(-err));
		audit_begin("credential.error");
		audit_str("workload", w->name);
		audit_str("route", r->to);
		audit_str("reason", strerror(-err));
		audit_end();
		return err;
	}
	/* connections that presented the old certificate go on with it until it expires */
	cred_free(s->prev);
	s->prev = s->cur && s->cur->x509 ? s->cur : NULL;
	if (!s->prev)
		cred_free(s->cur);
	s->cur = c;
	s->issued++;
	s->refresh_at = c->exp - cred_refresh_margin(r->ttl_s);
	log_debug("%s: workload %s route %s: jti %s serial %s %s exp %" PRId64, __func__, w->name,
		  r->to, c->jti, c->x509 ? c->x509->serial : "-", c->fp, c->exp);
	audit_issue(s, r);
	return 0;
}

/* --- reload -------------------------------------------------------------------- */

static int str_eq(const char *a, const char *b)
{
	return a == b || (a && b && !strcmp(a, b));
}

/* Would a credential minted for a serve b unchanged? (workload names compared by caller) */
static int route_same_cred(const struct policy_route *a, const struct policy_route *b)
{
	return a->cred_type == b->cred_type && a->ttl_s == b->ttl_s && a->mtls == b->mtls &&
	       str_eq(a->to, b->to) &&
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
		e[i].r->cred = slot_new(e[i].w);
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
		/* the old policy (and the name it lent) is about to be freed */
		s->workload = e[i].w->name;
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
				s = slot_new(w);
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

/*
 * Every route of the workload gets a revoked slot (also one that had none,
 * so cred_tick() cannot mint for it).  Returns how many credentials were
 * dropped, -ENOENT for an unknown workload, -ENOMEM if a route could not be
 * marked (the daemon's workload flag still refuses its requests).
 */
int cred_revoke_workload(struct cred_issuer *ci, struct policy *p, const char *workload)
{
	int n = 0, found = 0, err = 0;

	(void)ci;
	for (size_t i = 0; p && i < p->nworkloads; i++) {
		struct policy_workload *w = &p->workloads[i];

		if (strcmp(w->name, workload))
			continue;
		found = 1;
		for (size_t j = 0; j < w->nroutes; j++) {
			struct cred_slot *s = w->routes[j].cred;

			if (!s) {
				s = slot_new(w);
				if (!s) {
					err = -ENOMEM;
					continue;
				}
				w->routes[j].cred = s;
			}
			if (s->cur) {
				cred_free(s->cur);
				s->cur = NULL;
				n++;
			}
			cred_free(s->prev);
			s->prev = NULL;
			s->revoked = 1;
		}
	}
	if (!found)
		return -ENOENT;
	return err ? err : n;
}
