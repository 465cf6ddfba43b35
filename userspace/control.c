// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Copyright (c) 2026 The lanyard authors */
/*
 * The control socket: accept root-only clients, read one JSON request line,
 * answer one JSON line, close.  Requests are parsed with jansson; a bad
 * request gets {"ok":false} and is counted, never a crash.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "audit.h"
#include "ca.h"
#include "control.h"
#include "daemon.h"
#include "discover.h"
#include "log.h"
#include "proxy.h"

#define CONTROL_MAX_SESSIONS	16

struct session {
	struct control *ctl;
	struct loop_io io;
	char in[CONTROL_MAX_REQUEST];
	size_t inlen;
	char *out;		/* response being written */
	size_t outlen, outoff;
	int used;
};

struct control {
	struct daemon *d;
	struct loop_io lio;
	char *path;
	struct session s[CONTROL_MAX_SESSIONS];
};

static const char *stat_names[LY_STAT_MAX] = {
	[LY_STAT_CONNECT] = "connect",
	[LY_STAT_ENROLLED] = "enrolled",
	[LY_STAT_REDIRECTED] = "redirected",
	[LY_STAT_NO_ROUTE] = "no_route",
	[LY_STAT_SKIP_MARK] = "skip_mark",
	[LY_STAT_SKIP_DAEMON] = "skip_daemon",
	[LY_STAT_SKIP_LISTENER] = "skip_listener",
	[LY_STAT_REFUSED] = "refused",
	[LY_STAT_STORAGE_FAIL] = "storage_fail",
	[LY_STAT_PUBLISHED] = "published",
	[LY_STAT_PUBLISH_FAIL] = "publish_fail",
	[LY_STAT_RINGBUF_FULL] = "ringbuf_full",
	[LY_STAT_SKIP_DISABLED] = "skip_disabled",
	[LY_STAT_SKIP_PROTO] = "skip_proto",
	[LY_STAT_SKIP_OBSERVE] = "skip_observe",
	[LY_STAT_PEER_CLOSED] = "peer_closed",
	[LY_STAT_TLS_WRITE] = "tls_write",
	[LY_STAT_TLS_NOFD] = "tls_nofd",
	[LY_STAT_DATA_EVENT] = "data_event",
	[LY_STAT_DATA_DROP] = "data_drop",
	[LY_STAT_EXEC] = "exec",
	[LY_STAT_TLS_STALE] = "tls_stale",
	[LY_STAT_DATA_READ_FAIL] = "data_read_fail",
	[LY_STAT_FORK] = "fork",
	[LY_STAT_MOVE] = "move",
	[LY_STAT_SEND_UNSEEN] = "send_unseen",
};

static json_t *error_reply(const char *msg)
{
	return json_pack("{s:b, s:s}", "ok", 0, "error", msg);
}

static json_t *metrics_json(const struct daemon *d)
{
	const struct metrics *m = &d->m;

	return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, "
			 "s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
			 "flow_accepted", (json_int_t)m->flow_accepted,
			 "flow_rejected", (json_int_t)m->flow_rejected,
			 "flow_denied", (json_int_t)m->flow_denied,
			 "flow_active", (json_int_t)m->flow_active,
			 "requests", (json_int_t)m->requests,
			 "injected", (json_int_t)m->injected,
			 "credential_unavailable", (json_int_t)m->cred_failed,
			 "credential_waits", (json_int_t)m->cred_waits,
			 "no_route", (json_int_t)m->no_route,
			 "revoked", (json_int_t)m->revoked,
			 "bad_request", (json_int_t)m->bad_request,
			 "head_too_large", (json_int_t)m->too_large,
			 "head_timeout", (json_int_t)m->head_timeout,
			 "method_refused", (json_int_t)m->method_refused,
			 "flow_idle", (json_int_t)m->flow_idle,
			 "flow_stalled", (json_int_t)m->flow_stalled,
			 "upstream_failed", (json_int_t)m->upstream_failed,
			 "reloads", (json_int_t)m->reloads,
			 "reload_failed", (json_int_t)m->reload_failed,
			 "audit_dropped", (json_int_t)audit_dropped(),
			 "tls_attach_requests", (json_int_t)kernel_tls_requests(d->kern));
}

static json_t *cmd_status(struct daemon *d)
{
	uint64_t st[LY_STAT_MAX] = { 0 };
	json_t *kstats = json_object();
	size_t nroutes = 0;

	for (size_t i = 0; i < d->pol->nworkloads; i++)
		nroutes += d->pol->workloads[i].nroutes;
	if (kernel_read_stats(d->kern, st) == 0)
		for (int i = 0; i < LY_STAT_MAX; i++)
			json_object_set_new(kstats, stat_names[i] ? stat_names[i] : "?",
					    json_integer((json_int_t)st[i]));
	return json_pack("{s:b, s:s, s:i, s:I, s:s, s:I, s:i, s:I, s:i, s:s, s:o, s:o}",
			 "ok", 1, "version", DAEMON_VERSION, "pid", (int)getpid(),
			 "uptime_s", (json_int_t)(loop_wall_s(d->loop) - d->started),
			 "policy", d->config_path, "generation", (json_int_t)d->gen,
			 "workloads", (int)d->pol->nworkloads, "routes", (json_int_t)nroutes,
			 "listen_port", (int)d->pol->listen_port, "issuer", d->issuer,
			 "metrics", metrics_json(d), "kernel", kstats);
}

static json_t *cmd_workloads(struct daemon *d)
{
	json_t *arr = json_array();

	for (size_t i = 0; i < d->pol->nworkloads; i++) {
		const struct policy_workload *w = &d->pol->workloads[i];
		uint64_t cgid = kernel_workload_cgid(d->kern, i);

		json_array_append_new(arr, json_pack("{s:s, s:i, s:s, s:I, s:b, s:b, s:i}",
			"name", w->name, "id", (int)d->wls[i].id, "cgroup", w->cgroup,
			"cgroup_id", (json_int_t)cgid, "enrolled", cgid != 0,
			"revoked", (d->wls[i].flags & LY_WL_REVOKED) != 0,
			"routes", (int)w->nroutes));
	}
	return json_pack("{s:b, s:o}", "ok", 1, "workloads", arr);
}

static json_t *addrs_json(const struct policy_route *r)
{
	json_t *arr = json_array();

	for (size_t i = 0; i < r->naddrs; i++) {
		char a[INET6_ADDRSTRLEN], s[INET6_ADDRSTRLEN + 8];

		inet_ntop(r->addrs[i].family, r->addrs[i].addr, a, sizeof(a));
		snprintf(s, sizeof(s), "%s/%u", a, r->addrs[i].prefixlen);
		json_array_append_new(arr, json_string(s));
	}
	return arr;
}

/* where a fetched credential comes from, for display: a URL, a command, a file */
static const char *route_source(const struct policy_route *r)
{
	if (!r->src)
		return NULL;
	if (r->src->token_url)
		return r->src->token_url;
	if (r->src->argv)
		return r->src->argv[0];
	return r->src->file ? r->src->file : r->src->systemd_credential;
}

static json_t *cmd_routes(struct daemon *d)
{
	json_t *arr = json_array();

	for (size_t i = 0; i < d->pol->nworkloads; i++) {
		const struct policy_workload *w = &d->pol->workloads[i];

		for (size_t j = 0; j < w->nroutes; j++) {
			const struct policy_route *r = &w->routes[j];

			json_array_append_new(arr, json_pack("{s:s, s:s, s:i, s:o, s:s, s:s?, s:s?, "
							     "s:i, s:s?, s:b, s:s}",
				"workload", w->name, "to", r->to, "port", (int)r->port,
				"addrs", addrs_json(r),
				"credential", policy_cred_type_name(r->cred_type),
				"source", route_source(r),
				"audience", r->audience, "ttl_s", (int)r->ttl_s,
				"header", r->header_name,
				"mtls", r->cred_type == POLICY_CRED_X509 || r->mtls,
				"on_revoke", r->on_revoke == POLICY_REVOKE_CLOSE ? "close" : "refuse"));
		}
	}
	return json_pack("{s:b, s:o}", "ok", 1, "routes", arr);
}

static void flow_to_json(void *ctx, const struct proxy_flow_info *fi)
{
	/* sni, request: what the TLS uprobes saw the app say (null until then) */
	json_array_append_new(ctx, json_pack("{s:I, s:s?, s:i, s:I, s:s, s:s, s:s, s:I, s:I, s:I, "
					     "s:I, s:s?, s:s?}",
		"flow", (json_int_t)fi->id, "workload", fi->workload, "pid", (int)fi->pid,
		"cgroup", (json_int_t)fi->cgroup_id, "comm", fi->comm, "exe", fi->exe,
		"dst", fi->dst, "requests", (json_int_t)fi->requests,
		"bytes_up", (json_int_t)fi->bytes_up, "bytes_down", (json_int_t)fi->bytes_down,
		"since", (json_int_t)fi->since, "sni", fi->sni, "request", fi->request));
}

static json_t *cmd_flows(struct daemon *d)
{
	json_t *arr = json_array();

	proxy_foreach_flow(d->proxy, flow_to_json, arr);
	return json_pack("{s:b, s:o}", "ok", 1, "flows", arr);
}

/*
 * The discovery inventory: {"since": N, "secrets": [...], "unobservable": [...],
 * "dropped": N}.  "since" (optional, unix seconds, 0 = all) keeps the rows last seen
 * at or after it.  Fingerprints only: the inventory never holds a value.
 */
static json_t *cmd_discover(struct daemon *d, json_t *req)
{
	json_t *since = json_object_get(req, "since"), *inv, *r;
	json_int_t s = 0;

	if (since && (!json_is_integer(since) || json_integer_value(since) < 0))
		return error_reply("\"since\" must be a non-negative integer (unix seconds)");
	if (since)
		s = json_integer_value(since);
	if (!d->disc)
		return error_reply("discovery is not running");
	inv = discover_json(d->disc, (int64_t)s);
	r = inv ? json_pack("{s:b, s:I}", "ok", 1, "since", s) : NULL;
	if (!r || json_object_update(r, inv) < 0) {
		json_decref(inv);
		json_decref(r);
		return error_reply("out of memory");
	}
	json_decref(inv);
	return r;
}

/* A client certificate's serial and validity (public data; never its key), or null. */
static json_t *x509_json(const struct cred *c)
{
	if (!c || !c->x509)
		return json_null();
	return json_pack("{s:s, s:s, s:I, s:I}", "serial", c->x509->serial, "x5t#S256", c->x5t,
			 "not_before", (json_int_t)c->x509->not_before,
			 "not_after", (json_int_t)c->x509->not_after);
}

/* A static credential's age, and whether it is past the route's max_age. */
static void static_age(json_t *o, const struct policy_route *r, const struct cred *c, int64_t now)
{
	if (r->cred_type != POLICY_CRED_STATIC || !c)
		return;
	json_object_set_new(o, "age_s", json_integer(now - c->mtime));
	json_object_set_new(o, "too_old", json_boolean(r->src->max_age_s &&
						       now - c->mtime > r->src->max_age_s));
}

/*
 * Per route: type, jti, audience, expiry and fingerprint (x509: serial,
 * validity), a fetch in flight, the last error: never the token or a key.
 */
static json_t *token_json(const struct policy_workload *w, const struct policy_route *r,
			  int64_t now)
{
	const struct cred_slot *s = r->cred;
	const struct cred *c = s ? s->cur : NULL;
	json_t *o = json_pack("{s:s, s:s, s:s, s:s?, s:s?, s:s?, s:o, s:I, s:I, s:b, s:b, s:s?, "
			      "s:I, s:I, s:I}",
		"workload", w->name, "route", r->to,
		"type", policy_cred_type_name(r->cred_type),
		"audience", r->audience,
		"jti", c && c->jti[0] ? c->jti : NULL,
		"fingerprint", c ? c->fp : NULL,
		"x509", x509_json(c),
		"iat", (json_int_t)(c ? c->iat : 0),
		"exp", (json_int_t)(c && c->exp != INT64_MAX ? c->exp : 0),
		"revoked", s && s->revoked,
		"fetching", s && s->job,
		"error", s && s->why[0] ? s->why : NULL,
		"issued", (json_int_t)(s ? s->issued : 0),
		"used", (json_int_t)(s ? s->used : 0),
		"took_us", (json_int_t)(s ? s->took_us : 0));

	if (o)
		static_age(o, r, c, now);
	return o;
}

static json_t *cmd_tokens(struct daemon *d)
{
	int64_t now = loop_wall_s(d->loop);
	json_t *arr = json_array();

	for (size_t i = 0; i < d->pol->nworkloads; i++) {
		const struct policy_workload *w = &d->pol->workloads[i];

		for (size_t j = 0; j < w->nroutes; j++)
			json_array_append_new(arr, token_json(w, &w->routes[j], now));
	}
	return json_pack("{s:b, s:o}", "ok", 1, "tokens", arr);
}

static json_t *cmd_reload(struct daemon *d)
{
	char err[POLICY_ERR_LEN];

	if (daemon_reload(d, err, sizeof(err)) < 0)
		return error_reply(err);
	return json_pack("{s:b, s:I}", "ok", 1, "generation", (json_int_t)d->gen);
}

static json_t *cmd_revoke(struct daemon *d, json_t *req)
{
	const char *name = json_string_value(json_object_get(req, "workload"));
	const char *route = json_string_value(json_object_get(req, "route"));
	const char *jti = json_string_value(json_object_get(req, "jti"));
	int n;

	if (!name && !route && !jti)
		return error_reply("revoke needs \"workload\", \"route\" or \"jti\"");
	n = daemon_revoke(d, name, route, jti);
	if (n == -ENOENT)
		return error_reply(jti ? "no credential with that jti or fingerprint" :
				   name && !route ? "no such workload" : "no such route");
	if (n < 0)
		return error_reply(strerror(-n));
	return json_pack("{s:b, s:s?, s:s?, s:s?, s:i}", "ok", 1, "workload", name,
			 "route", route, "jti", jti, "credentials", n);
}

/*
 * The CA certificate (public) for `lanyard trust print`, and the anchor that
 * `lanyard trust install` puts in the host's trust store: the same for the
 * local root; for an imported intermediate the root from its file, if any.
 */
static json_t *cmd_ca(struct daemon *d)
{
	char *pem, *anchor;
	json_t *r;

	if (!d->ca)
		return error_reply("no CA");
	pem = ca_cert_pem(d->ca);
	anchor = ca_anchor_pem(d->ca);
	r = pem ? json_pack("{s:b, s:s, s:s?, s:b}", "ok", 1, "pem", pem, "anchor", anchor,
			    "imported", ca_is_imported(d->ca))
		: error_reply("out of memory");
	free(pem);
	free(anchor);
	return r;
}

char *control_handle(struct daemon *d, const char *line, size_t len)
{
	json_error_t jerr;
	json_t *req = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
	json_t *resp;
	const char *cmd;
	char *out;

	cmd = json_is_object(req) ? json_string_value(json_object_get(req, "cmd")) : NULL;
	if (!cmd)
		resp = error_reply("request must be a JSON object with \"cmd\"");
	else if (!strcmp(cmd, "status"))
		resp = cmd_status(d);
	else if (!strcmp(cmd, "workloads"))
		resp = cmd_workloads(d);
	else if (!strcmp(cmd, "routes"))
		resp = cmd_routes(d);
	else if (!strcmp(cmd, "flows"))
		resp = cmd_flows(d);
	else if (!strcmp(cmd, "tokens"))
		resp = cmd_tokens(d);
	else if (!strcmp(cmd, "reload"))
		resp = cmd_reload(d);
	else if (!strcmp(cmd, "revoke"))
		resp = cmd_revoke(d, req);
	else if (!strcmp(cmd, "ca"))
		resp = cmd_ca(d);
	else if (!strcmp(cmd, "discover"))
		resp = cmd_discover(d, req);
	else
		resp = error_reply("unknown command");
	if (!cmd || json_is_false(json_object_get(resp, "ok")))
		d->m.control_errors++;
	json_decref(req);
	out = resp ? json_dumps(resp, JSON_COMPACT) : NULL;
	json_decref(resp);
	if (out) {
		size_t n = strlen(out);
		char *p = realloc(out, n + 2);

		if (!p) {
			free(out);
			return NULL;
		}
		p[n] = '\n';
		p[n + 1] = '\0';
		out = p;
	}
	return out;
}

/* --- sessions ------------------------------------------------------------------ */

static void session_end(struct session *s)
{
	int fd = s->io.fd;

	loop_del(s->ctl->d->loop, &s->io);
	close(fd);
	free(s->out);
	s->out = NULL;
	s->used = 0;
}

static void session_write(struct session *s)
{
	while (s->outoff < s->outlen) {
		ssize_t n = send(s->io.fd, s->out + s->outoff, s->outlen - s->outoff,
				 MSG_NOSIGNAL);

		if (n < 0 && errno == EAGAIN) {
			loop_mod(s->ctl->d->loop, &s->io, EPOLLOUT);
			return;
		}
		if (n <= 0)
			break;
		s->outoff += (size_t)n;
	}
	session_end(s);
}

static void on_session(struct loop *l, struct loop_io *io, uint32_t events)
{
	struct session *s = io->arg;
	char *nl;
	ssize_t n;

	(void)l;
	if (s->out) {
		session_write(s);
		return;
	}
	n = recv(io->fd, s->in + s->inlen, sizeof(s->in) - s->inlen, 0);
	if (n < 0 && errno == EAGAIN && !(events & (EPOLLHUP | EPOLLERR)))
		return;
	if (n <= 0) {
		session_end(s);
		return;
	}
	s->inlen += (size_t)n;
	nl = memchr(s->in, '\n', s->inlen);
	if (!nl && s->inlen < sizeof(s->in))
		return;
	s->out = nl ? control_handle(s->ctl->d, s->in, (size_t)(nl - s->in))
		    : strdup("{\"ok\":false,\"error\":\"request too long\"}\n");
	if (!s->out) {
		session_end(s);
		return;
	}
	s->outlen = strlen(s->out);
	s->outoff = 0;
	session_write(s);
}

static void on_control_accept(struct loop *l, struct loop_io *io, uint32_t events)
{
	struct control *ctl = io->arg;
	struct ucred cred;
	socklen_t len = sizeof(cred);
	int fd, i;

	(void)events;
	while ((fd = accept4(io->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
		/* the socket is 0600 already; SO_PEERCRED is the second lock */
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 ||
		    (cred.uid != 0 && cred.uid != geteuid())) {
			ctl->d->m.control_errors++;
			close(fd);
			continue;
		}
		for (i = 0; i < CONTROL_MAX_SESSIONS && ctl->s[i].used; i++)
			;
		if (i == CONTROL_MAX_SESSIONS ||
		    loop_add(l, &ctl->s[i].io, fd, EPOLLIN, on_session, &ctl->s[i]) < 0) {
			close(fd);
			continue;
		}
		ctl->s[i].used = 1;
		ctl->s[i].inlen = 0;
		ctl->s[i].ctl = ctl;
	}
}

static int mkdir_parent(const char *path)
{
	char *dir = strdup(path), *slash;
	int rc = 0;

	if (!dir)
		return -ENOMEM;
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		if (mkdir(dir, 0755) < 0 && errno != EEXIST)
			rc = -errno;
	}
	free(dir);
	return rc;
}

struct control *control_new(struct daemon *d, const char *path, char *err, size_t errlen)
{
	struct control *ctl = calloc(1, sizeof(*ctl));
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = -1;
	mode_t old;

	if (!ctl || strlen(path) >= sizeof(sun.sun_path)) {
		snprintf(err, errlen, "%s: path too long", path);
		goto fail;
	}
	ctl->d = d;
	ctl->path = strdup(path);
	strcpy(sun.sun_path, path);
	if (mkdir_parent(path) < 0)
		goto fail_errno;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail_errno;
	unlink(path);
	old = umask(0177);	/* created 0600: no window where others can connect */
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		umask(old);
		goto fail_errno;
	}
	umask(old);
	if (listen(fd, 16) < 0 || loop_add(d->loop, &ctl->lio, fd, EPOLLIN, on_control_accept,
					   ctl) < 0)
		goto fail_errno;
	return ctl;
fail_errno:
	snprintf(err, errlen, "%s: %s", path, strerror(errno));
fail:
	if (fd >= 0)
		close(fd);
	if (ctl)
		free(ctl->path);
	free(ctl);
	return NULL;
}

void control_free(struct control *ctl)
{
	if (!ctl)
		return;
	for (int i = 0; i < CONTROL_MAX_SESSIONS; i++)
		if (ctl->s[i].used)
			session_end(&ctl->s[i]);
	if (ctl->lio.fd >= 0) {
		int fd = ctl->lio.fd;

		loop_del(ctl->d->loop, &ctl->lio);
		close(fd);
	}
	unlink(ctl->path);
	free(ctl->path);
	free(ctl);
}
