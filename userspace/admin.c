// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Copyright (c) 2026 The lanyard authors */
/*
 * The admin HTTP endpoint: the JWKS and OIDC discovery documents that
 * upstreams verify lanyard's JWTs with, Prometheus metrics and a health
 * check.  One request per connection, parsed with the strict http1 parser.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "admin.h"
#include "audit.h"
#include "daemon.h"
#include "http1.h"
#include "log.h"

#define ADMIN_MAX_SESSIONS	64
#define ADMIN_MAX_REQUEST	8192
#define ADMIN_TIMEOUT_MS	5000

struct asession {
	struct admin *a;
	struct loop_io io;
	char in[ADMIN_MAX_REQUEST];
	size_t inlen;
	char *out;
	size_t outlen, outoff;
	uint64_t deadline;
	int used;
};

struct admin {
	struct daemon *d;
	struct loop_io lio;
	struct asession s[ADMIN_MAX_SESSIONS];
};

static char *respond(int status, const char *reason, const char *ctype, const char *body)
{
	size_t blen = strlen(body);
	char *out = NULL;

	if (asprintf(&out, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
			   "Cache-Control: max-age=60\r\nConnection: close\r\n\r\n%s",
		     status, reason, ctype, blen, body) < 0)
		return NULL;
	return out;
}

static char *openid_configuration(const struct daemon *d)
{
	char jwks_uri[256];
	json_t *doc;
	char *body, *out;

	snprintf(jwks_uri, sizeof(jwks_uri), "%s/.well-known/jwks.json", d->issuer);
	doc = json_pack("{s:s, s:s, s:[s], s:[s], s:[s], s:[s]}", "issuer", d->issuer,
			"jwks_uri", jwks_uri, "id_token_signing_alg_values_supported", "ES256",
			"response_types_supported", "id_token", "subject_types_supported",
			"public", "claims_supported", "sub");
	body = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
	json_decref(doc);
	if (!body)
		return NULL;
	out = respond(200, "OK", "application/json", body);
	free(body);
	return out;
}

static void metric(FILE *f, const char *name, const char *labels, uint64_t v)
{
	fprintf(f, "%s%s %llu\n", name, labels, (unsigned long long)v);
}

static char *metrics_text(const struct daemon *d)
{
	const struct metrics *m = &d->m;
	uint64_t st[LY_STAT_MAX] = { 0 };
	char *body = NULL, *out;
	size_t len = 0;
	FILE *f = open_memstream(&body, &len);

	if (!f)
		return NULL;
	metric(f, "lanyard_flow_accepted_total", "", m->flow_accepted);
	metric(f, "lanyard_flow_rejected_total", "", m->flow_rejected);
	metric(f, "lanyard_flow_denied_total", "", m->flow_denied);
	metric(f, "lanyard_flow_active", "", m->flow_active);
	metric(f, "lanyard_requests_total", "", m->requests);
	metric(f, "lanyard_credential_injected_total", "", m->injected);
	metric(f, "lanyard_credential_failed_total", "{reason=\"unavailable\"}", m->cred_failed);
	metric(f, "lanyard_credential_waits_total", "", m->cred_waits);
	metric(f, "lanyard_credential_failed_total", "{reason=\"no_route\"}", m->no_route);
	metric(f, "lanyard_credential_failed_total", "{reason=\"revoked\"}", m->revoked);
	metric(f, "lanyard_request_rejected_total", "{reason=\"bad_request\"}", m->bad_request);
	metric(f, "lanyard_request_rejected_total", "{reason=\"head_too_large\"}", m->too_large);
	metric(f, "lanyard_request_rejected_total", "{reason=\"head_timeout\"}", m->head_timeout);
	metric(f, "lanyard_request_rejected_total", "{reason=\"method\"}", m->method_refused);
	metric(f, "lanyard_flow_timeout_total", "{reason=\"idle\"}", m->flow_idle);
	metric(f, "lanyard_flow_timeout_total", "{reason=\"stalled\"}", m->flow_stalled);
	metric(f, "lanyard_upstream_failed_total", "", m->upstream_failed);
	metric(f, "lanyard_bytes_total", "{dir=\"up\"}", m->bytes_up);
	metric(f, "lanyard_bytes_total", "{dir=\"down\"}", m->bytes_down);
	metric(f, "lanyard_reload_total", "", m->reloads);
	metric(f, "lanyard_reload_failed_total", "", m->reload_failed);
	metric(f, "lanyard_audit_dropped_total", "", audit_dropped());
	metric(f, "lanyard_tls_attach_requests_total", "", kernel_tls_requests(d->kern));
	if (kernel_read_stats(d->kern, st) == 0) {
		metric(f, "lanyard_bpf_connect_total", "", st[LY_STAT_CONNECT]);
		metric(f, "lanyard_bpf_redirected_total", "", st[LY_STAT_REDIRECTED]);
		metric(f, "lanyard_bpf_refused_total", "", st[LY_STAT_REFUSED]);
		metric(f, "lanyard_bpf_publish_failed_total", "", st[LY_STAT_PUBLISH_FAIL]);
	}
	fclose(f);
	out = respond(200, "OK", "text/plain; version=0.0.4", body);
	free(body);
	return out;
}

static char *route(struct admin *a, const struct http1_request *req)
{
	struct daemon *d = a->d;
	const struct http1_slice t = req->target;

#define IS(path) (t.len == strlen(path) && !memcmp(t.ptr, path, t.len))
	if (!(req->method.len == 3 && !memcmp(req->method.ptr, "GET", 3)))
		return respond(405, "Method Not Allowed", "text/plain", "GET only\n");
	if (IS("/.well-known/jwks.json"))
		return respond(200, "OK", "application/json", d->jwks);
	if (IS("/.well-known/openid-configuration"))
		return openid_configuration(d);
	if (IS("/metrics"))
		return metrics_text(d);
	if (IS("/healthz"))
		return respond(200, "OK", "text/plain", "ok\n");
#undef IS
	return respond(404, "Not Found", "text/plain", "not found\n");
}

static void asession_end(struct asession *s)
{
	int fd = s->io.fd;

	loop_del(s->a->d->loop, &s->io);
	close(fd);
	free(s->out);
	s->out = NULL;
	s->used = 0;
}

static void asession_write(struct asession *s)
{
	while (s->outoff < s->outlen) {
		ssize_t n = send(s->io.fd, s->out + s->outoff, s->outlen - s->outoff,
				 MSG_NOSIGNAL);

		if (n < 0 && errno == EAGAIN) {
			loop_mod(s->a->d->loop, &s->io, EPOLLOUT);
			return;
		}
		if (n <= 0)
			break;
		s->outoff += (size_t)n;
	}
	asession_end(s);
}

static void on_asession(struct loop *l, struct loop_io *io, uint32_t events)
{
	struct asession *s = io->arg;
	struct http1_request req;
	ssize_t n;

	(void)l;
	if (s->out) {
		asession_write(s);
		return;
	}
	n = recv(io->fd, s->in + s->inlen, sizeof(s->in) - s->inlen, 0);
	if (n < 0 && errno == EAGAIN && !(events & (EPOLLHUP | EPOLLERR)))
		return;
	if (n <= 0) {
		asession_end(s);
		return;
	}
	s->inlen += (size_t)n;
	n = http1_parse_request(s->in, s->inlen, &req);
	if (n == HTTP1_PARTIAL && s->inlen < sizeof(s->in))
		return;
	s->out = n < 0 ? respond(400, "Bad Request", "text/plain", "bad request\n")
		       : route(s->a, &req);
	if (!s->out) {
		asession_end(s);
		return;
	}
	s->outlen = strlen(s->out);
	s->outoff = 0;
	asession_write(s);
}

static void on_admin_accept(struct loop *l, struct loop_io *io, uint32_t events)
{
	struct admin *a = io->arg;
	int fd, i;

	(void)events;
	while ((fd = accept4(io->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
		for (i = 0; i < ADMIN_MAX_SESSIONS && a->s[i].used; i++)
			;
		if (i == ADMIN_MAX_SESSIONS ||
		    loop_add(l, &a->s[i].io, fd, EPOLLIN, on_asession, &a->s[i]) < 0) {
			close(fd);
			continue;
		}
		a->s[i].used = 1;
		a->s[i].inlen = 0;
		a->s[i].a = a;
		a->s[i].deadline = loop_now_ms(l) + ADMIN_TIMEOUT_MS;
	}
}

/* slow or silent admin clients are cut off: the table is small */
static void on_admin_tick(struct loop *l, void *arg)
{
	struct admin *a = arg;

	for (int i = 0; i < ADMIN_MAX_SESSIONS; i++)
		if (a->s[i].used && loop_now_ms(l) >= a->s[i].deadline)
			asession_end(&a->s[i]);
}

struct admin *admin_new(struct daemon *d, char *err, size_t errlen)
{
	struct admin *a = calloc(1, sizeof(*a));
	const struct sockaddr_storage *ss = &d->pol->admin_addr;
	socklen_t slen = ss->ss_family == AF_INET ? sizeof(struct sockaddr_in)
						  : sizeof(struct sockaddr_in6);
	int fd = -1, one = 1;

	if (!a)
		goto fail;
	a->d = d;
	fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)ss, slen) < 0 || listen(fd, 64) < 0 ||
	    loop_add(d->loop, &a->lio, fd, EPOLLIN, on_admin_accept, a) < 0 ||
	    loop_every(d->loop, 1000, on_admin_tick, a) < 0)
		goto fail;
	return a;
fail:
	snprintf(err, errlen, "%s: %s", d->pol->admin_listen, strerror(errno));
	if (fd >= 0)
		close(fd);
	free(a);
	return NULL;
}

void admin_free(struct admin *a)
{
	if (!a)
		return;
	for (int i = 0; i < ADMIN_MAX_SESSIONS; i++)
		if (a->s[i].used)
			asession_end(&a->s[i]);
	if (a->lio.fd >= 0) {
		int fd = a->lio.fd;

		loop_del(a->d->loop, &a->lio);
		close(fd);
	}
	free(a);
}
