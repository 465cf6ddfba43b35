// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Copyright (c) 2026 The lanyard authors */
/*
 * The proxy: accept only kernel-redirected connections, attach a fresh
 * credential to every HTTP/1.1 request on its way to the destination the app
 * dialled, stream responses back unmodified.  Bad input is answered here,
 * before any credential is attached, and nothing of it reaches the upstream.
 * Either side may be TLS (route tls: intercept / originate): the same state
 * machine runs on the plaintext, and a credential waits until the upstream's
 * handshake has verified its identity.  A passthrough route relays the app's
 * own TLS untouched once its ClientHello named an allowed server: zero-copy,
 * with splice(2) through a pipe per direction.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "audit.h"
#include "http1.h"
#include "log.h"
#include "proxy.h"
#include "tls.h"
#include "tlshello.h"

#define BUF_INIT	(16 * 1024)
#define CIN_MAX		(HTTP1_MAX_HEAD + 4096)	/* a full head plus a little body */
#define OUT_HIGH	(64 * 1024)		/* stop reading the client above this */
#define DOWN_CAP	(64 * 1024)		/* upstream -> client relay buffer */
#define RELAY_CHUNK	(64 * 1024)		/* one splice() into a relay pipe */
#define RELAY_ROUNDS	16			/* pipe fills per direction per event: fairness */
#define EXE_LEN		256

enum req_state {
	RS_HEAD,	/* waiting for a request head */
	RS_LENGTH,	/* relaying a Content-Length body */
	RS_CHUNKED,	/* relaying a chunked body */
	RS_TUNNEL,	/* after an Upgrade/CONNECT: raw bytes both ways, no injection */
	RS_ERROR,	/* a request was refused: read nothing more from the client */
};

struct buf {
	char *data;
	size_t cap;
	size_t off;	/* first unread byte */
	size_t len;	/* bytes after off */
};

/* One direction of a spliced passthrough flow: source socket -> pipe -> destination socket. */
struct relay_pipe {
	int rfd, wfd;		/* -1 until the flow is allowed */
	size_t len;		/* bytes in the pipe, not yet at the destination */
};

struct conn {
	struct conn *prev, *next;	/* live list */
	struct proxy *px;
	struct loop_io cio, uio;	/* client and upstream watchers */
	int cfd, ufd;
	uint64_t id;

	/*
	 * TLS: NULL on a plain side.  *_rdev / *_wrev: the epoll event that a blocked
	 * TLS read (or handshake) / write waits for; EPOLLIN / EPOLLOUT on a plain side.
	 */
	SSL *cssl, *ussl;
	struct ca_cert *ucert;		/* client cert of the upstream handshake (a ref) */
	uint32_t c_rdev, c_wrev, u_rdev, u_wrev;
	struct tls_accept ta;		/* interception: the ClientHello check */
	uint64_t uhs_deadline;		/* ms; upstream handshake must finish by then */
	char udst[INET6_ADDRSTRLEN + 8];	/* what lanyardd dialled ("addr:port") */
	char tls_why[TLS_WHY_LEN];	/* why a handshake failed (502 body, audit) */

	struct ly_flow flow;		/* what the kernel saw at connect() */
	uint32_t wl_id;
	char dst[INET6_ADDRSTRLEN + 8];
	char exe[EXE_LEN];
	char comm[LY_COMM_LEN + 1];
	char sni[LY_SNI_LEN], req[PROXY_REQ_LEN];	/* seen by the TLS uprobes (tlsobs.c) */
	struct ly_peer_key peer;	/* the app's local addr:port, filled by proxy_flow_tag */

	/* route cache: valid while gen == daemon gen */
	uint64_t gen;
	int wi;
	const struct policy_route *route;

	enum req_state rs;
	uint64_t body_remain;
	struct http1_chunked chunk;

	struct buf in;			/* from the client, not yet handled */
	struct buf out;			/* to the upstream (rewritten heads + bodies) */
	struct buf down;		/* to the client (responses, our own errors) */
	size_t out_secret;		/* out held a credential up to here: wipe when drained */
	struct relay_pipe pup, pdown;	/* spliced passthrough: client -> upstream, and back */

	unsigned connecting : 1, uconnected : 1, client_eof : 1, upstream_eof : 1,
		 up_shut : 1, closing : 1, dead : 1, chs : 1, uhs : 1, parked : 1,
		 pt : 1, pth : 1,	/* passthrough flow; its ClientHello awaited */
		 spliced : 1,		/* passthrough relayed by splice(2), buffers unused */
		 down_shut : 1,		/* spliced: the client's write side was shut */
		 c_hup : 1, u_hup : 1,	/* spliced: that side hung up and is no longer watched */
		 cred_wait : 1,		/* parked for the route's first credential */
		 u_unwatched : 1;	/* upstream hung up with no room for its bytes: not
					 * watched (HUP cannot be masked), read as down drains */
	int err_status;			/* pending error answer (RS_ERROR), 0 if none */
	char err_why[FETCH_WHY_LEN];	/* its reason (a copy: a slot's error may be freed) */

	uint64_t head_deadline;		/* ms; 0 when no head is in progress */
	uint64_t last_active;		/* ms: the last byte moved, either way */
	uint64_t requests;
	uint64_t bytes_up, bytes_down;
	int64_t since;
};

struct proxy {
	struct daemon *d;
	struct loop_io lio[2];		/* 127.0.0.1 and ::1 */
	struct conn live;		/* list head */
	struct conn *dead;		/* closed this turn, freed at turn end */
	struct conn *pool;		/* freed conns kept with their buffers */
	uint64_t next_id;
	int spare_fd;			/* held back for shedding at EMFILE (shed_one) */
	int64_t emfile_logged;		/* ms of the last "out of descriptors" warning */
	int64_t accept_paused;		/* ms: listeners unwatched since, 0 if watched */
};

static void conn_update(struct conn *c);
static void conn_close(struct conn *c, const char *reason);
static void process_input(struct conn *c);
static void flush_down(struct conn *c);
static void flush_up(struct conn *c);
static void flow_dst_string(const struct ly_flow *f, char *out, size_t len);
static void relay_event(struct conn *c, uint32_t events, int upstream);

/* When what must come soon (a request head, a handshake, a connect) is late: timeouts.head */
static uint64_t head_deadline(const struct proxy *px)
{
	return loop_now_ms(px->d->loop) + px->d->pol->head_timeout_ms;
}

/* --- one side: plain socket or TLS --------------------------------------------- */

/*
 * Read from one side: > 0 bytes, 0 EOF, -EAGAIN, or -errno.  The plain branch is
 * the recv() it always was; *ev learns what a blocked TLS read waits for.
 */
static ssize_t side_read(int fd, SSL *ssl, uint32_t *ev, void *buf, size_t len)
{
	ssize_t n;

	if (ssl)
		return tls_read(ssl, buf, len, ev);
	do
		n = recv(fd, buf, len, 0);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n;
}

/* Write to one side: bytes (> 0, maybe partial), -EAGAIN, or -errno (0 never). */
static ssize_t side_write(int fd, SSL *ssl, uint32_t *ev, const void *buf, size_t len)
{
	ssize_t n;

	if (ssl)
		return tls_write(ssl, buf, len, ev);
	do
		n = send(fd, buf, len, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n ? n : -EPIPE;
}

/*
 * Room to ask a side's read for: a TLS read needs a whole record's room, so that
 * no plaintext stays inside the SSL where epoll cannot see it (tls_read()).
 */
static size_t read_need(const SSL *ssl)
{
	return ssl ? TLS_RECORD_MAX : 1;
}

/* --- buffers ---------------------------------------------------------------- */

static int buf_reserve(struct buf *b, size_t need, size_t max)
{
	size_t cap;
	char *p;

	if (b->off + b->len + need <= b->cap)
		return 0;
	if (b->off) {			/* compact first: cheaper than growing */
		memmove(b->data, b->data + b->off, b->len);
		b->off = 0;
		if (b->len + need <= b->cap)
			return 0;
	}
	cap = b->cap ? b->cap : BUF_INIT;
	while (cap < b->len + need)
		cap *= 2;
	if (cap > max)
		cap = max;
	if (b->len + need > cap)
		return -ENOBUFS;
	/* not realloc(): the old block may hold a credential and must be wiped */
	p = malloc(cap);
	if (!p)
		return -ENOMEM;
	if (b->data) {
		memcpy(p, b->data, b->len);
		explicit_bzero(b->data, b->cap);
		free(b->data);
	}
	b->data = p;
	b->cap = cap;
	return 0;
}

static void buf_consume(struct buf *b, size_t n)
{
	b->off += n;
	b->len -= n;
	if (b->len == 0)
		b->off = 0;
}

static int buf_append(struct buf *b, const void *p, size_t n, size_t max)
{
	int err = buf_reserve(b, n, max);

	if (err)
		return err;
	memcpy(b->data + b->off + b->len, p, n);
	b->len += n;
	return 0;
}

static void buf_fini(struct buf *b)
{
	if (b->data)
		explicit_bzero(b->data, b->cap);
	free(b->data);
	memset(b, 0, sizeof(*b));
}

/* --- error answers ------------------------------------------------------------ */

static const char *status_text(int status)
{
	switch (status) {
	case 400: return "Bad Request";
	case 403: return "Forbidden";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 431: return "Request Header Fields Too Large";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 505: return "HTTP Version Not Supported";
	default: return "Error";
	}
}

/*
 * Queue lanyardd's own answer for the client.  The reason is one of our
 * constant strings: nothing from the request is reflected (design 8).
 */
static void queue_error(struct conn *c, int status, const char *reason)
{
	char msg[512];
	int body, n;

	c->closing = 1;
	if (c->pt)
		return;	/* the app speaks TLS end to end: an HTTP answer would be noise */
	body = (int)strlen(reason) + (int)strlen("lanyard: \n");
	n = snprintf(msg, sizeof(msg),
		     "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
		     "Connection: close\r\nX-Lanyard-Error: %s\r\n\r\nlanyard: %s\n",
		     status, status_text(status), body, reason, reason);
	if (n > 0 && (size_t)n < sizeof(msg))
		buf_append(&c->down, msg, (size_t)n, SIZE_MAX);
	c->closing = 1;
}

static void count_reject(struct metrics *m, int status)
{
	switch (status) {
	case 431: m->too_large++; break;
	case 408: m->head_timeout++; break;
	case 405: m->method_refused++; break;
	case 502: m->upstream_failed++; break;
	case 403: break;	/* counted as revoked */
	case 503: break;	/* counted where the credential was missing */
	default: m->bad_request++; break;
	}
}

/*
 * Refuse the current request.  Nothing more is read from the client.  When
 * earlier requests of this connection are still being answered upstream,
 * the upstream's write side is shut so it finishes them and closes; our
 * answer follows the last of its responses (pipelining order is kept).
 */
static void conn_reject(struct conn *c, int status, const char *reason)
{
	struct daemon *d = c->px->d;

	count_reject(&d->m, status);
	audit_begin("request.reject");
	audit_u64("flow", c->id);
	audit_str("workload", d->wl_names[c->wl_id]);
	audit_u64("pid", c->flow.pid);
	audit_u64("status", (uint64_t)status);
	audit_str("reason", reason);
	audit_end();

	c->rs = RS_ERROR;
	c->head_deadline = 0;
	c->in.len = 0;
	c->in.off = 0;
	/*
	 * Still connecting counts as in flight: c->out may hold earlier pipelined requests
	 * that are sent once connected; dropping them would lose a good request.
	 */
	if (c->ufd < 0 || c->upstream_eof) {
		/* nothing in flight upstream: answer now */
		c->out.len = 0;
		c->out.off = 0;
		queue_error(c, status, reason);
		return;
	}
	c->err_status = status;
	snprintf(c->err_why, sizeof(c->err_why), "%s", reason);
}

/* --- route and credential ---------------------------------------------------- */

/* The route for this connection under the current policy, or NULL. */
static const struct policy_route *conn_route(struct conn *c)
{
	struct daemon *d = c->px->d;

	if (c->gen == d->gen)
		return c->route;
	c->gen = d->gen;
	c->wi = daemon_workload_index(d, c->wl_id);
	c->route = NULL;
	if (c->wi >= 0)
		c->route = daemon_route_for(d, c->wi,
					    c->flow.family == LY_AF_INET ? AF_INET : AF_INET6,
					    c->flow.daddr, ntohs(c->flow.dport));
	return c->route;
}

/* Start the audit record @event of c with who it is: flow, workload, cgroup, pid, exe. */
static void audit_conn_begin(const struct conn *c, const char *event)
{
	const struct daemon *d = c->px->d;

	audit_begin(event);
	audit_u64("flow", c->id);
	audit_str("workload", d->wl_names[c->wl_id]);
	audit_u64("cgroup", c->flow.cgroup_id);
	audit_u64("pid", c->flow.pid);
	audit_str("exe", c->exe);
}

static void audit_use(struct conn *c, const struct http1_request *req, const struct cred *cr)
{
	char path[1024];	/* whole segments up to here: the rest is cut */
	/* a query, userinfo or a path segment may carry a secret (docs/discover.md) */
	size_t plen = discover_redact_target(req->target.ptr, req->target.len, path, sizeof(path));

	audit_conn_begin(c, "credential.use");
	audit_strn("method", req->method.ptr, req->method.len);
	audit_strn("host", req->host.ptr, req->host.len);
	audit_strn("path", path, plen);
	audit_str("route", c->route->to);
	audit_str("audience", c->route->audience);
	audit_str("jti", cr->jti[0] ? cr->jti : NULL);
	if (cr->x509)
		audit_str("serial", cr->x509->serial);
	audit_end();
}

/*
 * Write the request head to c->out: the request line and every field as
 * sent, except the route's credential header (the app's own value is
 * dropped), then our credential, then the empty line.  Copies: the head is
 * rewritten, so it cannot be sent from the client buffer in place.
 */
static int write_head(struct conn *c, const struct http1_request *req, const char *head,
		      size_t headlen, const struct cred *cr)
{
	/* the request line starts at the method: leading empty lines are dropped */
	const char *line = req->method.ptr;
	const char *line_end = memchr(line, '\n', headlen - (size_t)(line - head));
	size_t hlen = cr->header ? cr->header->len : 0;	/* x509: nothing to add */
	const char *hname = c->route->header_name;
	size_t need = (size_t)(line_end - line) + 1 + hlen + 2;
	struct buf *o = &c->out;
	char *p;
	int err;

	for (size_t i = 0; i < req->nheaders; i++)
		need += req->headers[i].name.len + req->headers[i].value.len + 4;
	err = buf_reserve(o, need, SIZE_MAX);
	if (err)
		return err;
	p = o->data + o->off + o->len;
	memcpy(p, line, (size_t)(line_end - line) + 1);
	p += line_end - line + 1;
	for (size_t i = 0; i < req->nheaders; i++) {
		const struct http1_header *h = &req->headers[i];

		/* header_name is as the policy wrote it ("Authorization"): compare without case */
		if (hname && h->name.len == strlen(hname) &&
		    !strncasecmp(h->name.ptr, hname, h->name.len))
			continue;
		memcpy(p, h->name.ptr, h->name.len);
		p += h->name.len;
		*p++ = ':';
		*p++ = ' ';
		memcpy(p, h->value.ptr, h->value.len);
		p += h->value.len;
		*p++ = '\r';
		*p++ = '\n';
	}
	if (hlen)
		memcpy(p, cr->header->buf, hlen);
	p += hlen;
	*p++ = '\r';
	*p++ = '\n';
	o->len = (size_t)(p - (o->data + o->off));
	if (o->off + o->len > c->out_secret)
		c->out_secret = o->off + o->len;
	return 0;
}

/* --- upstream ------------------------------------------------------------------ */

static void on_upstream(struct loop *l, struct loop_io *io, uint32_t events);

static int route_tls_upstream(const struct policy_route *r)
{
	return r && (r->tls == POLICY_TLS_INTERCEPT || r->tls == POLICY_TLS_ORIGINATE);
}

static int upstream_connect(struct conn *c)
{
	struct daemon *d = c->px->d;
	const struct policy_route *r = conn_route(c);
	struct sockaddr_storage ss = { 0 };
	struct ly_flow up = c->flow;
	socklen_t slen;
	int fd, one = 1, err;

	/* originate: the app dialled the plain port, TLS lives on another one */
	if (route_tls_upstream(r) && r->upstream_port)
		up.dport = htons(r->upstream_port);
	flow_dst_string(&up, c->udst, sizeof(c->udst));
	if (c->flow.family == LY_AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		sin->sin_family = AF_INET;
		sin->sin_port = up.dport;
		memcpy(&sin->sin_addr, c->flow.daddr, 4);
		slen = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = up.dport;
		memcpy(&sin6->sin6_addr, c->flow.daddr, 16);
		slen = sizeof(*sin6);
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* the mark is what keeps ly_connect4/6 from redirecting us to ourselves */
	if (setsockopt(fd, SOL_SOCKET, SO_MARK, &d->mark, sizeof(d->mark)) < 0)
		goto fail;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&ss, slen) < 0 && errno != EINPROGRESS)
		goto fail;
	err = loop_add(d->loop, &c->uio, fd, EPOLLOUT, on_upstream, c);
	if (err) {
		close(fd);
		return err;
	}
	c->ufd = fd;
	c->connecting = 1;
	/* connect (and a TLS handshake after it) must finish by then: proxy_tick() */
	c->uhs_deadline = head_deadline(c->px);
	return 0;
fail:
	err = -errno;
	close(fd);
	return err;
}

/* Wipe out: the request heads waiting there carry the credential. */
static void out_wipe(struct conn *c)
{
	size_t n = c->out.off + c->out.len;

	if (n < c->out_secret)
		n = c->out_secret;
	if (c->out.data && n)
		explicit_bzero(c->out.data, n);
	c->out.off = c->out.len = 0;
	c->out_secret = 0;
}


/*
 * The upstream did not prove its identity (c->tls_why says how): nothing that
 * waits for it is sent, the app gets a 502 with the reason, the audit a
 * flow.deny.  The TLS alert OpenSSL sent is the only thing the upstream saw.
 */
static void upstream_tls_fail(struct conn *c)
{
	struct daemon *d = c->px->d;
	char name[CA_HOST_MAX + 1] = "";

	if (c->ussl)
		tls_peer_name(c->ussl, name, sizeof(name));
	d->m.upstream_failed++;
	audit_conn_begin(c, "flow.deny");
	audit_str("reason", c->tls_why);
	audit_str("upstream", c->udst);
	audit_str("server_name", name[0] ? name : NULL);
	audit_end();
	log_debug("flow %llu: upstream %s: %s", (unsigned long long)c->id, c->udst, c->tls_why);
	out_wipe(c);
	c->uhs = 0;
	c->uhs_deadline = 0;
	c->connecting = 0;
	c->uconnected = 0;
	c->upstream_eof = 1;
	loop_del(d->loop, &c->uio);
	c->rs = RS_ERROR;
	c->head_deadline = 0;
	c->in.len = c->in.off = 0;
	c->parked = 0;
	c->err_status = 0;
	snprintf(c->err_why, sizeof(c->err_why), "%s", c->tls_why);
	queue_error(c, 502, c->tls_why);
}

static void upstream_handshake(struct conn *c)
{
	char why[TLS_WHY_LEN - 16];	/* room for "upstream " */
	int rc = tls_handshake(c->ussl, &c->u_rdev, why, sizeof(why));

	if (rc == 0)
		return;
	if (rc < 0) {
		snprintf(c->tls_why, sizeof(c->tls_why), "upstream %s", why);
		upstream_tls_fail(c);
		return;
	}
	/* verified: only now may the heads in c->out (and their credential) go */
	c->uhs = 0;
	c->uhs_deadline = 0;
	c->u_rdev = EPOLLIN;
	c->uconnected = 1;
}

/*
 * TCP is up: start TLS when the route wants it.  Returns 1 when TLS took over
 * (handshake under way, or already failed), 0 for a plain upstream.
 */
static int upstream_tls_start(struct conn *c)
{
	struct daemon *d = c->px->d;
	const struct policy_route *r = conn_route(c);
	char why[TLS_WHY_LEN - 16];	/* room for "upstream " */

	if (!route_tls_upstream(r)) {
		if (!c->cssl)
			return 0;
		/* an intercepted app asked for TLS: never downgrade it behind its back */
		snprintf(c->tls_why, sizeof(c->tls_why), "the route no longer speaks TLS upstream");
		upstream_tls_fail(c);
		return 1;
	}
	/* x509 / mtls: the certificate of the route's current credential, kept for the conn */
	if (!c->ucert && (r->cred_type == POLICY_CRED_X509 || r->mtls)) {
		const struct cred *cr = cred_get(r, loop_wall_s(d->loop));

		if (!cr || !cr->x509) {
			snprintf(c->tls_why, sizeof(c->tls_why), "no client certificate available");
			upstream_tls_fail(c);
			return 1;
		}
		c->ucert = cr->x509;
		c->ucert->refs++;	/* released in conn_close(); one loop thread */
	}
	c->ussl = tls_connect_new(r, c->ufd, c->cssl ? c->ta.name : NULL,
				  c->flow.family == LY_AF_INET ? AF_INET : AF_INET6, c->flow.daddr,
				  why, sizeof(why));
	if (!c->ussl || (c->ucert && tls_use_client_cert(c->ussl, c->ucert, why, sizeof(why)))) {
		snprintf(c->tls_why, sizeof(c->tls_why), "upstream %s", why);
		upstream_tls_fail(c);
		return 1;
	}
	c->uhs = 1;
	if (!c->uhs_deadline)
		c->uhs_deadline = head_deadline(c->px);
	upstream_handshake(c);
	return 1;
}

static void upstream_connected(struct conn *c)
{
	int soerr = 0;
	socklen_t len = sizeof(soerr);

	c->connecting = 0;
	if (getsockopt(c->ufd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
		soerr = errno;
	if (soerr) {
		log_debug("flow %llu: upstream %s: %s", (unsigned long long)c->id, c->udst,
			  strerror(soerr));
		c->upstream_eof = 1;
		c->uconnected = 0;
		loop_del(c->px->d->loop, &c->uio);
		conn_reject(c, 502, "upstream connect failed");
		return;
	}
	if (upstream_tls_start(c))
		return;
	c->uhs_deadline = 0;	/* plain: connected, nothing more to wait for */
	c->uconnected = 1;
}

/* Bytes moved on the connection: it is not idle (proxy_tick, timeouts.idle). */
static void conn_moved(struct conn *c)
{
	c->last_active = loop_now_ms(c->px->d->loop);
}

/* Read what the upstream sent into down.  1 when down has no room left, else 0. */
static int upstream_read(struct conn *c)
{
	size_t need = read_need(c->ussl);

	for (;;) {
		size_t space;
		ssize_t n;

		if (buf_reserve(&c->down, need, DOWN_CAP + need - 1) < 0)
			return 1;	/* full: wait for the client to drain */
		space = c->down.cap - c->down.off - c->down.len;
		n = side_read(c->ufd, c->ussl, &c->u_rdev, c->down.data + c->down.off + c->down.len,
			      space);
		if (n > 0) {
			c->down.len += (size_t)n;
			c->bytes_down += (uint64_t)n;
			c->px->d->m.bytes_down += (uint64_t)n;
			conn_moved(c);
			if (!c->ussl && (size_t)n < space)
				return 0;	/* drained: spare the recv() that would say EAGAIN */
			continue;
		}
		if (n == -EAGAIN)
			return 0;
		/* a cut-off upstream must not look like a clean end to a TLS client */
		if (n < 0)
			tls_quiet(c->cssl);
		/* EOF or error: responses are complete; stop watching (HUP is level-triggered) */
		c->upstream_eof = 1;
		loop_del(c->px->d->loop, &c->uio);
		if (c->err_status)
			queue_error(c, c->err_status, c->err_why);
		return 0;
	}
}

/*
 * An upstream that hung up (EPOLLHUP, EPOLLERR: reported whatever the mask) while down is
 * full would wake the loop on every turn: it is unwatched until the client has read, and
 * then read directly (what it sent, then its EOF or error).
 */
static void upstream_unwatch(struct conn *c)
{
	loop_del(c->px->d->loop, &c->uio);
	c->u_unwatched = 1;
}

static void upstream_read_unwatched(struct conn *c)
{
	if (c->u_unwatched && !c->upstream_eof && c->down.len < DOWN_CAP && !c->dead) {
		upstream_read(c);
		flush_down(c);
	}
}

static void flush_up(struct conn *c)
{
	while (c->out.len && c->uconnected && !c->upstream_eof) {
		ssize_t n = side_write(c->ufd, c->ussl, &c->u_wrev, c->out.data + c->out.off,
				       c->out.len);

		if (n == -EAGAIN)
			return;
		if (n < 0) {
			c->upstream_eof = 1;
			loop_del(c->px->d->loop, &c->uio);
			c->rs = RS_ERROR;
			c->closing = 1;
			break;
		}
		c->bytes_up += (uint64_t)n;
		c->px->d->m.bytes_up += (uint64_t)n;
		buf_consume(&c->out, (size_t)n);
		conn_moved(c);
	}
	if (c->out.len == 0 && c->out_secret) {
		/* the credential was copied into out: wipe it once sent */
		explicit_bzero(c->out.data, c->out_secret);
		c->out_secret = 0;
	}
	/* the client is done, or a request was refused: let the upstream finish */
	if (c->out.len == 0 && c->uconnected && !c->up_shut && !c->parked &&
	    (c->client_eof || c->err_status)) {
		tls_shutdown(c->ussl);
		shutdown(c->ufd, SHUT_WR);
		c->up_shut = 1;
	}
}

static void on_upstream(struct loop *l, struct loop_io *io, uint32_t events)
{
	struct conn *c = io->arg;

	(void)l;
	if (c->spliced) {
		relay_event(c, events, 1);
		return;
	}
	if (c->connecting && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
		upstream_connected(c);
	else if (c->uhs)
		upstream_handshake(c);
	/* u_rdev: EPOLLIN, or EPOLLOUT while a TLS read waits to write */
	if (c->uconnected && !c->upstream_eof &&
	    (events & (EPOLLIN | EPOLLHUP | EPOLLERR | c->u_rdev)) && upstream_read(c) &&
	    (events & (EPOLLHUP | EPOLLERR)))
		upstream_unwatch(c);
	flush_down(c);
	if (c->dead)
		return;
	flush_up(c);
	process_input(c);
	conn_update(c);
}

/* --- client side ---------------------------------------------------------------- */

/*
 * A TLS upstream proves its identity before any credential is even attached:
 * a complete head waits in c->in, unhandled, until the handshake verified the
 * upstream; then process_input() comes back to it.  Returns 1 while parked.
 */
static int upstream_park(struct conn *c)
{
	c->parked = 0;
	if (c->uconnected || c->upstream_eof || !route_tls_upstream(conn_route(c)))
		return 0;
	/* the upstream's own deadline runs now (proxy_tick): not the head's */
	c->head_deadline = 0;
	if (c->ufd < 0 && upstream_connect(c) < 0) {
		c->upstream_eof = 1;
		conn_reject(c, 502, "upstream connect failed");
		return 1;
	}
	if (!c->uhs_deadline)
		c->uhs_deadline = head_deadline(c->px);
	c->parked = 1;
	return 1;
}

/* Is the connection's workload, or its route's credential, revoked? */
static int conn_revoked(const struct conn *c, const struct policy_route *r)
{
	return (c->px->d->wls[c->wi].flags & LY_WL_REVOKED) || cred_revoked(r);
}

static const struct cred *conn_cred(struct conn *c, const struct policy_route *r, int64_t now);

/* Will handle_head() refuse the request whatever the upstream (no route, revoked)? */
static int head_refused(struct conn *c)
{
	const struct policy_route *r = conn_route(c);

	return !r || conn_revoked(c, r);
}

/*
 * The route (not refused: head_refused) has no credential and one is being fetched
 * (lanyardd just started, a reload added the route): a complete head waits in c->in,
 * unhandled, until the fetch ends (proxy_wake_parked) or timeouts.head has passed
 * (proxy_tick: 503).  A source that is failing answers at once instead.  Returns 1 while
 * parked.
 */
static int cred_park(struct conn *c)
{
	const struct policy_route *r = conn_route(c);

	if (c->ucert || !cred_pending(r) || conn_cred(c, r, loop_wall_s(c->px->d->loop))) {
		c->cred_wait = 0;
		return 0;
	}
	if (!c->cred_wait) {
		c->cred_wait = 1;
		c->head_deadline = head_deadline(c->px);
		c->px->d->m.cred_waits++;
	}
	c->parked = 1;
	return 1;
}

/*
 * The credential for the next request.  With a client certificate (x509, or
 * jwt + mtls) the upstream handshake pinned one to the connection
 * (upstream_tls_start), and every request must use the credential of that
 * certificate (a JWT's cnf names it, RFC 8705 3.1) until it expires.
 */
static const struct cred *conn_cred(struct conn *c, const struct policy_route *r, int64_t now)
{
	const struct cred *cr;

	if (c->ucert)
		return cred_get_bound(r, c->ucert, now);
	cr = cred_get(r, now);
	/* the upstream is up without a certificate (a reload added one): never unbound */
	return cr && cr->x509 ? NULL : cr;
}

/* Handle one complete request head: decide, inject, queue.  0 or rejected. */
static void handle_head(struct conn *c, const struct http1_request *req, size_t headlen)
{
	struct daemon *d = c->px->d;
	const struct policy_route *r = conn_route(c);
	const struct cred *cr;

	c->head_deadline = 0;
	c->cred_wait = c->parked = 0;
	d->m.requests++;
	if (!r) {
		d->m.no_route++;
		conn_reject(c, 503, "no route for this destination");
		return;
	}
	/* TRACE would echo the injected header back to the app (design 8) */
	if (req->method.len == 5 && !memcmp(req->method.ptr, "TRACE", 5)) {
		conn_reject(c, 405, "TRACE is refused on injected routes");
		return;
	}
	if (conn_revoked(c, r)) {
		d->m.revoked++;
		conn_reject(c, 403, "credential revoked");
		return;
	}
	cr = conn_cred(c, r, loop_wall_s(d->loop));
	if (!cr) {
		d->m.cred_failed++;
		conn_reject(c, 503, c->ucert ? "the client certificate of this connection expired" :
				    cred_unavailable_reason(r));
		return;
	}
	if (write_head(c, req, c->in.data + c->in.off, headlen, cr) < 0) {
		conn_reject(c, 503, "out of memory");
		return;
	}
	buf_consume(&c->in, headlen);
	audit_use(c, req, cr);
	((struct cred_slot *)r->cred)->used++;
	d->m.injected++;
	c->requests++;
	if (req->flags & HTTP1_F_UPGRADE) {
		c->rs = RS_TUNNEL;
	} else if (req->body == HTTP1_BODY_LENGTH) {
		c->body_remain = req->content_length;
		c->rs = c->body_remain ? RS_LENGTH : RS_HEAD;
	} else if (req->body == HTTP1_BODY_CHUNKED) {
		http1_chunked_init(&c->chunk);
		c->rs = RS_CHUNKED;
	} else {
		c->rs = RS_HEAD;
	}
	if (c->ufd < 0 && upstream_connect(c) < 0) {
		c->upstream_eof = 1;
		conn_reject(c, 502, "upstream connect failed");
	}
}

/*
 * A chunked request's head is only forwarded once its first chunk-size line
 * is in and valid, so a bad size never reaches the upstream (with a
 * credential on the head).  Returns 1 ready, 0 need more, < 0 error.
 */
static int chunked_precheck(const char *body, size_t len)
{
	struct http1_chunked ck;
	const char *nl = memchr(body, '\n', len < HTTP1_MAX_CHUNK_LINE ? len : HTTP1_MAX_CHUNK_LINE);
	int done = 0;
	ssize_t n;

	if (!nl)
		return len >= HTTP1_MAX_CHUNK_LINE ? HTTP1_ERR_CHUNK_SIZE : 0;
	http1_chunked_init(&ck);
	n = http1_chunked_scan(&ck, body, len, &done);
	return n < 0 ? (int)n : 1;
}

static void step_head(struct conn *c, int *more)
{
	struct http1_request req;
	ssize_t n;

	*more = 0;
	if (c->in.len == 0)
		return;
	if (!c->head_deadline)
		c->head_deadline = head_deadline(c->px);
	n = http1_parse_request(c->in.data + c->in.off, c->in.len, &req);
	if (n == HTTP1_PARTIAL)
		return;
	if (n < 0) {
		conn_reject(c, http1_err_status((int)n), http1_strerror((int)n));
		return;
	}
	if (req.body == HTTP1_BODY_CHUNKED) {
		int ok = chunked_precheck(c->in.data + c->in.off + n, c->in.len - (size_t)n);

		if (ok == 0)
			return;
		if (ok < 0) {
			conn_reject(c, http1_err_status(ok), http1_strerror(ok));
			return;
		}
	}
	/* no route or revoked: refused by handle_head, before any wait or upstream handshake */
	if (!head_refused(c) && (cred_park(c) || upstream_park(c)))
		return;
	handle_head(c, &req, (size_t)n);
	*more = c->rs != RS_ERROR;
}

/* Move up to n bytes of body from in to out. */
static size_t move_body(struct conn *c, size_t n)
{
	if (n > c->in.len)
		n = c->in.len;
	if (c->out.len + n > OUT_HIGH)
		n = c->out.len < OUT_HIGH ? OUT_HIGH - c->out.len : 0;
	if (n == 0 || buf_append(&c->out, c->in.data + c->in.off, n, SIZE_MAX) < 0)
		return 0;
	buf_consume(&c->in, n);
	return n;
}

static void step_body(struct conn *c, int *more)
{
	size_t n;

	*more = 0;
	if (c->rs == RS_LENGTH) {
		n = move_body(c, c->body_remain < c->in.len ? c->body_remain : c->in.len);
		c->body_remain -= n;
		if (c->body_remain == 0) {
			c->rs = RS_HEAD;
			*more = 1;
		}
	} else if (c->rs == RS_CHUNKED) {
		size_t avail = c->in.len;
		int done = 0;
		ssize_t k;

		if (c->out.len >= OUT_HIGH)
			return;
		if (avail > OUT_HIGH - c->out.len)
			avail = OUT_HIGH - c->out.len;
		k = http1_chunked_scan(&c->chunk, c->in.data + c->in.off, avail, &done);
		if (k < 0) {
			/*
			 * The head already went upstream: cut the message short so the
			 * upstream never sees a complete request, and answer 400.
			 */
			c->upstream_eof = 1;
			conn_reject(c, 400, http1_strerror((int)k));
			return;
		}
		move_body(c, (size_t)k);
		if (done) {
			c->rs = RS_HEAD;
			*more = 1;
		}
	} else if (c->rs == RS_TUNNEL) {
		move_body(c, c->in.len);
	}
}

static void process_input(struct conn *c)
{
	size_t queued;
	int more;

	do {
		more = 1;
		while (more && !c->dead && c->out.len < OUT_HIGH) {
			switch (c->rs) {
			case RS_HEAD:
				step_head(c, &more);
				break;
			case RS_LENGTH:
			case RS_CHUNKED:
			case RS_TUNNEL:
				step_body(c, &more);
				break;
			case RS_ERROR:
				more = 0;
				break;
			}
		}
		queued = c->out.len;
		flush_up(c);
		/*
		 * move_body() stops at OUT_HIGH and may leave body bytes in c->in.  When
		 * flush_up() then drains c->out, no event would bring us back to them (the
		 * client may have sent everything; the upstream is not watched for EPOLLOUT
		 * with c->out empty): go round again while sending makes progress.
		 */
	} while (!c->dead && c->out.len < queued && c->in.len && c->rs != RS_ERROR);
}

static void client_read(struct conn *c)
{
	size_t need = read_need(c->cssl);

	for (;;) {
		size_t space;
		ssize_t n;

		if (buf_reserve(&c->in, need, CIN_MAX + need - 1) < 0)
			return;		/* full: the parser will decide (431 or wait) */
		space = c->in.cap - c->in.off - c->in.len;
		n = side_read(c->cfd, c->cssl, &c->c_rdev, c->in.data + c->in.off + c->in.len,
			      space);
		if (n > 0) {
			c->in.len += (size_t)n;
			conn_moved(c);
			if (!c->cssl && (size_t)n < space)
				return;
			continue;
		}
		if (n == -EAGAIN)
			return;
		/* a cut-off TLS client: no close_notify upstream on its behalf */
		if (n < 0)
			tls_quiet(c->ussl);
		c->client_eof = 1;
		return;
	}
}

static void flush_down(struct conn *c)
{
	while (c->down.len) {
		ssize_t n = side_write(c->cfd, c->cssl, &c->c_wrev, c->down.data + c->down.off,
				       c->down.len);

		if (n == -EAGAIN)
			return;
		if (n < 0) {
			conn_close(c, "client write failed");
			return;
		}
		buf_consume(&c->down, (size_t)n);
		conn_moved(c);
	}
	/*
	 * Close once everything for the client is out and nothing more can come; a request
	 * parked for its credential is still to be answered, whatever either side did.
	 */
	if (c->cred_wait)
		return;
	if (c->closing || (c->upstream_eof && !c->err_status) || (c->client_eof && c->ufd < 0))
		conn_close(c, c->err_why[0] ? c->err_why : "done");
}

/* --- interception (tls: intercept) ------------------------------------------------ */

/* The app's TLS was refused: alert sent by OpenSSL (when it could), audit, close. */
static void client_tls_fail(struct conn *c, const char *reason, const char *detail)
{
	struct daemon *d = c->px->d;

	d->m.flow_denied++;
	audit_conn_begin(c, "flow.deny");
	audit_str("dst", c->dst);
	audit_str("reason", reason);
	audit_str("detail", detail);
	audit_end();
	log_debug("flow %llu: TLS from the app refused: %s%s%s", (unsigned long long)c->id,
		  reason, detail ? ": " : "", detail ? detail : "");
	conn_close(c, reason);
}

/* Start the interception handshake; the ClientHello is awaited under the head timeout. */
static void client_tls_start(struct conn *c)
{
	c->cssl = tls_accept_new(c->route, c->cfd, &c->ta);
	if (!c->cssl) {
		client_tls_fail(c, "cannot set up TLS", NULL);
		return;
	}
	c->chs = 1;
	c->head_deadline = head_deadline(c->px);
}

/*
 * Advance the interception handshake.  The route is looked up again first (a
 * reload may have changed it, a revoke may have come): the ClientHello callback
 * mints a leaf only if the route still allows this connection.  1 done, 0 not
 * yet or refused (then the connection is closed).
 */
static int client_handshake(struct conn *c)
{
	struct daemon *d = c->px->d;
	const struct policy_route *r = conn_route(c);
	int rc;

	c->ta.route = r && r->tls == POLICY_TLS_INTERCEPT ? r : NULL;
	c->ta.refuse = r ? "the route is no longer tls: intercept" :
			   "no route for this destination";
	if (c->ta.route && (d->wls[c->wi].flags & LY_WL_REVOKED)) {
		c->ta.route = NULL;
		c->ta.refuse = "workload revoked";
	}
	c->ta.ca = d->ca;
	c->ta.now = loop_wall_s(d->loop);
	rc = tls_handshake(c->cssl, &c->c_rdev, c->tls_why, sizeof(c->tls_why));
	if (rc == 0)
		return 0;
	if (rc < 0) {
		if (c->ta.reason)
			client_tls_fail(c, c->ta.reason, NULL);
		else if (!strncmp(c->tls_why, TLS_HS_FAILED ": ", strlen(TLS_HS_FAILED) + 2))
			client_tls_fail(c, TLS_HS_FAILED, c->tls_why + strlen(TLS_HS_FAILED) + 2);
		else
			client_tls_fail(c, TLS_HS_FAILED, c->tls_why);
		return 0;
	}
	c->chs = 0;
	c->head_deadline = 0;
	c->c_rdev = EPOLLIN;
	log_debug("flow %llu: TLS intercepted as %s", (unsigned long long)c->id, c->ta.name);
	return 1;
}

/* --- passthrough (tls: passthrough) ---------------------------------------------- */

/* A passthrough flow refused before a byte reached the upstream: audit, close. */
static void passthrough_deny(struct conn *c, const char *reason, const char *sni)
{
	struct daemon *d = c->px->d;

	d->m.flow_denied++;
	audit_conn_begin(c, "flow.deny");
	audit_str("dst", c->dst);
	audit_str("mode", "passthrough");
	audit_str("reason", reason);
	audit_str("sni", sni);
	audit_end();
	log_debug("flow %llu: passthrough refused: %s%s%s", (unsigned long long)c->id, reason,
		  sni ? ": " : "", sni ? sni : "");
	conn_close(c, reason);
}

/* Why the parsed ClientHello h may not pass on route r (NULL: it may). */
static const char *passthrough_refusal(struct conn *c, const struct policy_route *r,
				       const struct tlshello *h)
{
	if (!r)
		return "no route for this destination";
	if (r->tls != POLICY_TLS_PASSTHROUGH)
		return "the route is no longer tls: passthrough";
	if (c->px->d->wls[c->wi].flags & LY_WL_REVOKED)
		return "workload revoked";
	if (!h->has_sni)
		return "no server name in the ClientHello";
	/* RFC 9849 (ECH): the SNI seen is the outer, public name, not the one dialled */
	if (h->has_ech)
		return "encrypted ClientHello hides the server name";
	if (!policy_sni_allowed(r, h->sni))
		return "server name not allowed";
	return NULL;
}

/*
 * The relay pipes of an allowed passthrough flow, made before anything goes upstream, so
 * that running out of descriptors refuses the flow cleanly.  NULL, or why not.
 */
static const char *relay_pipes_open(struct conn *c)
{
	int up[2], down[2], err;

	if (pipe2(up, O_NONBLOCK | O_CLOEXEC) < 0)
		goto fail;
	if (pipe2(down, O_NONBLOCK | O_CLOEXEC) < 0) {
		err = errno;
		close(up[0]);
		close(up[1]);
		errno = err;
		goto fail;
	}
	c->pup = (struct relay_pipe){ .rfd = up[0], .wfd = up[1] };
	c->pdown = (struct relay_pipe){ .rfd = down[0], .wfd = down[1] };
	return NULL;
fail:
	err = errno;
	log_debug("flow %llu: relay pipe: %s", (unsigned long long)c->id, strerror(err));
	return err == EMFILE || err == ENFILE ? "out of file descriptors"
					      : "cannot create a relay pipe";
}

static void relay_pipes_close(struct conn *c)
{
	struct relay_pipe *ps[] = { &c->pup, &c->pdown };

	for (size_t i = 0; i < 2; i++) {
		if (ps[i]->rfd >= 0)
			close(ps[i]->rfd);
		if (ps[i]->wfd >= 0)
			close(ps[i]->wfd);
		*ps[i] = (struct relay_pipe){ .rfd = -1, .wfd = -1 };
	}
}

/*
 * The app's first bytes must be a ClientHello naming an allowed server (RFC 6066 3).
 * Until then they stay in c->in, unconsumed, under the head timeout; then they go
 * upstream exactly as they came, and the flow is a tunnel both ways: no credential
 * exists for it, nothing is injected, cred_get() is never called.
 */
static void passthrough_hello(struct conn *c)
{
	struct daemon *d = c->px->d;
	const struct policy_route *r = conn_route(c);
	struct tlshello h;
	const char *why;
	ssize_t n;

	n = tlshello_parse((const uint8_t *)c->in.data + c->in.off, c->in.len, &h);
	if (n == TLSHELLO_PARTIAL) {
		if (c->client_eof)
			passthrough_deny(c, "closed before a complete ClientHello", NULL);
		return;
	}
	if (n < 0) {
		passthrough_deny(c, tlshello_strerror((int)n), NULL);
		return;
	}
	why = passthrough_refusal(c, r, &h);
	if (!why)
		why = relay_pipes_open(c);
	if (why) {
		passthrough_deny(c, why, h.has_sni ? h.sni : NULL);
		return;
	}
	audit_begin("flow.sni");
	audit_u64("flow", c->id);
	audit_str("workload", d->wl_names[c->wl_id]);
	audit_u64("pid", c->flow.pid);
	audit_str("dst", c->dst);
	audit_str("route", r->to);
	audit_str("mode", "passthrough");
	audit_str("sni", h.sni);
	audit_end();
	c->pth = 0;
	c->head_deadline = 0;
	c->rs = RS_TUNNEL;
	if (upstream_connect(c) < 0) {
		c->upstream_eof = 1;
		conn_reject(c, 502, "upstream connect failed");
	}
}

/* --- passthrough relay: splice(2) --------------------------------------------------- */

enum relay_rc {
	RELAY_MORE = 0,		/* blocked, or the round limit: epoll brings us back */
	RELAY_EOF = 1,		/* the source ended and the pipe is drained */
	RELAY_SRC_FAIL = -1,
	RELAY_DST_FAIL = -2,
};

/*
 * splice() stops at TCP's urgent mark and says EAGAIN while epoll still says
 * EPOLLIN: a peer sending one MSG_OOB byte would make the loop spin on that
 * flow forever.  At the mark, one plain recv() moves past it (the urgent byte
 * itself is out of band and dropped, as on the buffered path) into the empty
 * pipe.  Bytes moved, or -1 with errno (EAGAIN: really nothing to read).
 */
static ssize_t relay_past_mark(int src, struct relay_pipe *p)
{
	char buf[PIPE_BUF];
	int atmark = 0;
	ssize_t n;

	if (ioctl(src, SIOCATMARK, &atmark) < 0 || !atmark) {
		errno = EAGAIN;
		return -1;
	}
	n = recv(src, buf, sizeof(buf), MSG_DONTWAIT);
	if (n <= 0)
		return n;
	/* at most PIPE_BUF bytes into an empty pipe: written whole, never partly */
	if (write(p->wfd, buf, (size_t)n) != n) {
		errno = EIO;
		return -1;
	}
	return n;
}

/*
 * One direction: src -> p -> dst, zero-copy.  The pipe is drained before src is read
 * again, so a destination that does not read stops its source being read (backpressure:
 * at most one pipe in flight per direction).  *moved gets the bytes that reached dst.
 */
static enum relay_rc relay_pump(int src, int dst, struct relay_pipe *p, int src_eof,
				uint64_t *moved)
{
	for (int round = 0; round < RELAY_ROUNDS;) {
		ssize_t n;

		if (p->len) {
			n = splice(p->rfd, NULL, dst, NULL, p->len,
				   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
			if (n > 0) {
				p->len -= (size_t)n;
				*moved += (uint64_t)n;
				continue;
			}
			if (n < 0 && errno == EINTR)
				continue;
			return n < 0 && errno != EAGAIN ? RELAY_DST_FAIL : RELAY_MORE;
		}
		if (src_eof)
			return RELAY_EOF;
		n = splice(src, NULL, p->wfd, NULL, RELAY_CHUNK, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (n < 0 && errno == EAGAIN)
			n = relay_past_mark(src, p);
		if (n > 0) {
			p->len = (size_t)n;
			round++;
		} else if (n == 0) {
			src_eof = 1;
		} else if (errno == EAGAIN) {
			return RELAY_MORE;	/* src has nothing: epoll brings us back */
		} else if (errno != EINTR) {
			return RELAY_SRC_FAIL;
		}
	}
	return RELAY_MORE;
}

/*
 * Both directions of a spliced flow.  A direction whose source ended shuts the write
 * side of its destination once its pipe is drained (a half-close goes through as one);
 * both shut: done.  An error on either side ends the flow.
 */
static void relay_run(struct conn *c)
{
	static const char *const fail[2][2] = {
		{ "upstream read failed", "client write failed" },	/* down */
		{ "client read failed", "upstream write failed" },	/* up */
	};
	struct daemon *d = c->px->d;
	uint64_t down = 0, up = 0;
	enum relay_rc rd, ru = RELAY_MORE;

	/* down first: what the upstream said before an error upstream still reaches the app */
	rd = relay_pump(c->ufd, c->cfd, &c->pdown, c->upstream_eof, &down);
	if (rd >= 0)
		ru = relay_pump(c->cfd, c->ufd, &c->pup, c->client_eof, &up);
	c->bytes_down += down;
	c->bytes_up += up;
	d->m.bytes_down += down;
	d->m.bytes_up += up;
	if (down || up)
		c->last_active = loop_now_ms(d->loop);
	if (rd < 0 || ru < 0) {
		conn_close(c, rd < 0 ? fail[0][rd == RELAY_DST_FAIL]
				     : fail[1][ru == RELAY_DST_FAIL]);
		return;
	}
	if (rd == RELAY_EOF && !c->down_shut) {
		c->upstream_eof = 1;
		shutdown(c->cfd, SHUT_WR);
		c->down_shut = 1;
	}
	if (ru == RELAY_EOF && !c->up_shut) {
		c->client_eof = 1;
		shutdown(c->ufd, SHUT_WR);
		c->up_shut = 1;
	}
	if (c->down_shut && c->up_shut)
		conn_close(c, "done");
}

/*
 * A passthrough flow goes over to splice once what went through the buffers (the
 * ClientHello and anything sent with it) is upstream and nothing waits for the app;
 * a flow that already half-closed finishes in the buffers.
 */
static void relay_try_splice(struct conn *c)
{
	if (c->pt && !c->pth && !c->spliced && !c->dead && !c->closing && c->rs == RS_TUNNEL &&
	    c->uconnected && !c->connecting && c->pup.rfd >= 0 && !c->in.len && !c->out.len &&
	    !c->down.len && !c->client_eof && !c->upstream_eof) {
		c->spliced = 1;
		log_debug("flow %llu: passthrough relayed by splice", (unsigned long long)c->id);
	}
}

/* Ask epoll for what a spliced flow can make progress on now. */
static void relay_update(struct conn *c)
{
	struct loop *l = c->px->d->loop;
	uint32_t ce = 0, ue = 0;

	/* a side is read only while its pipe is empty; a full pipe waits for the other side */
	if (!c->client_eof && !c->pup.len)
		ce |= EPOLLIN;
	if (!c->upstream_eof && !c->pdown.len)
		ue |= EPOLLIN;
	if (c->pdown.len)
		ce |= EPOLLOUT;
	if (c->pup.len)
		ue |= EPOLLOUT;
	/*
	 * A hung-up side is no longer watched (EPOLLHUP cannot be masked); its reads never
	 * block now, so the other side's EPOLLOUT paces them.
	 */
	if (c->c_hup && !c->client_eof)
		ue |= EPOLLOUT;
	if (c->u_hup && !c->upstream_eof)
		ce |= EPOLLOUT;
	loop_mod(l, &c->cio, ce);
	loop_mod(l, &c->uio, ue);
}

/* An event on one side (@upstream: which) of a spliced flow. */
static void relay_event(struct conn *c, uint32_t events, int upstream)
{
	if (events & EPOLLERR) {
		/* a reset: the stream is cut both ways, as the peer meant it */
		conn_close(c, upstream ? "upstream reset" : "client reset");
		return;
	}
	relay_run(c);
	if (c->dead)
		return;
	if (events & EPOLLHUP) {
		/*
		 * Both directions of that socket are shut (its FIN after ours): what it sent
		 * is still to be read, but watching it would report HUP on every turn.  Bytes
		 * still waiting for it can no longer go anywhere.
		 */
		if (upstream ? c->pup.len : c->pdown.len) {
			conn_close(c, upstream ? "upstream closed" : "client closed");
			return;
		}
		loop_del(c->px->d->loop, upstream ? &c->uio : &c->cio);
		if (upstream)
			c->u_hup = 1;
		else
			c->c_hup = 1;
		if (c->u_hup && c->c_hup) {
			conn_close(c, "closed");
			return;
		}
	}
	relay_update(c);
}

static void on_client(struct loop *l, struct loop_io *io, uint32_t events)
{
	struct conn *c = io->arg;

	(void)l;
	if (c->spliced) {
		relay_event(c, events, 0);
		return;
	}
	if (events & (EPOLLHUP | EPOLLERR)) {
		/* both directions are gone: nothing more can reach the client */
		conn_close(c, "client closed");
		return;
	}
	if (c->chs) {
		if (!client_handshake(c)) {
			if (!c->dead)
				conn_update(c);
			return;
		}
		events |= EPOLLIN;	/* the first request may have come with the Finished */
	}
	/* c_rdev: EPOLLIN, or EPOLLOUT while a TLS read waits to write */
	if (events & (EPOLLIN | c->c_rdev))
		client_read(c);
	if (c->pth) {
		passthrough_hello(c);
		if (c->dead || c->pth) {
			if (!c->dead)
				conn_update(c);
			return;
		}
	}
	process_input(c);
	if (c->client_eof && c->rs == RS_HEAD && c->in.len && !c->parked)
		c->in.len = 0;	/* a partial head at EOF is dropped, never forwarded */
	flush_down(c);
	upstream_read_unwatched(c);
	if (!c->dead)
		conn_update(c);
}

/* Ask epoll for what the connection can make progress on now. */
static void conn_update(struct conn *c)
{
	struct loop *l = c->px->d->loop;
	uint32_t ce = 0, ue = 0;

	relay_try_splice(c);
	if (c->spliced) {
		relay_update(c);
		return;
	}
	/* on a plain side c_rdev/u_rdev are EPOLLIN and c_wrev/u_wrev EPOLLOUT */
	if (c->chs)
		ce = c->c_rdev;		/* interception handshake: only what it waits for */
	else if (c->rs != RS_ERROR && !c->client_eof && !c->closing && c->out.len < OUT_HIGH &&
		 c->in.len < CIN_MAX)
		ce |= c->c_rdev;
	if (c->down.len)
		ce |= c->c_wrev;
	if (c->ufd >= 0) {
		if (c->connecting)
			ue |= EPOLLOUT;
		else if (c->uhs)
			ue |= c->u_rdev;	/* the credential waits in out: no EPOLLOUT */
		else if (c->out.len)
			ue |= c->u_wrev;
		if (!c->uhs && !c->upstream_eof && c->down.len < DOWN_CAP)
			ue |= c->u_rdev;
		loop_mod(l, &c->uio, ue);
	}
	loop_mod(l, &c->cio, ce);
}

/* --- accept and close ---------------------------------------------------------- */

static void peer_string(const struct sockaddr_storage *ss, char *out, size_t len)
{
	char a[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s = (const struct sockaddr_in *)ss;

		inet_ntop(AF_INET, &s->sin_addr, a, sizeof(a));
		port = ntohs(s->sin_port);
		snprintf(out, len, "%s:%u", a, port);
	} else {
		const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)ss;

		inet_ntop(AF_INET6, &s->sin6_addr, a, sizeof(a));
		port = ntohs(s->sin6_port);
		snprintf(out, len, "[%s]:%u", a, port);
	}
}

static void flow_dst_string(const struct ly_flow *f, char *out, size_t len)
{
	char a[INET6_ADDRSTRLEN] = "?";

	if (f->family == LY_AF_INET) {
		inet_ntop(AF_INET, f->daddr, a, sizeof(a));
		snprintf(out, len, "%s:%u", a, ntohs(f->dport));
	} else {
		inet_ntop(AF_INET6, f->daddr, a, sizeof(a));
		snprintf(out, len, "[%s]:%u", a, ntohs(f->dport));
	}
}

static void reject_peer(struct proxy *px, int fd, const struct sockaddr_storage *ss,
			const char *event, const char *reason, const struct ly_flow *f)
{
	struct daemon *d = px->d;
	char peer[INET6_ADDRSTRLEN + 8];

	peer_string(ss, peer, sizeof(peer));
	audit_begin(event);
	audit_str("peer", peer);
	if (f) {
		audit_str("workload", f->workload_id <= DAEMON_MAX_WORKLOAD_IDS ?
						d->wl_names[f->workload_id] : NULL);
		audit_u64("cgroup", f->cgroup_id);
		audit_u64("pid", f->pid);
	}
	audit_str("reason", reason);
	audit_end();
	log_debug("%s from %s: %s", event, peer, reason);
	close(fd);
}

static struct conn *conn_alloc(struct proxy *px)
{
	struct conn *c = px->pool;
	struct buf in, out, down;

	if (!c)
		return calloc(1, sizeof(*c));
	px->pool = c->next;
	/* keep the pooled buffers, reset everything else */
	in = c->in;
	out = c->out;
	down = c->down;
	memset(c, 0, sizeof(*c));
	c->in = (struct buf){ .data = in.data, .cap = in.cap };
	c->out = (struct buf){ .data = out.data, .cap = out.cap };
	c->down = (struct buf){ .data = down.data, .cap = down.cap };
	return c;
}

static void conn_open(struct proxy *px, int fd, const struct ly_flow *f)
{
	struct daemon *d = px->d;
	struct conn *c = conn_alloc(px);
	char path[64];
	ssize_t n;
	int one = 1;

	if (!c) {
		close(fd);
		return;
	}
	c->px = px;
	c->cfd = fd;
	c->ufd = -1;
	c->c_rdev = c->u_rdev = EPOLLIN;
	c->c_wrev = c->u_wrev = EPOLLOUT;
	c->cio.fd = c->uio.fd = -1;
	c->pup = c->pdown = (struct relay_pipe){ .rfd = -1, .wfd = -1 };
	c->flow = *f;
	c->wl_id = f->workload_id;
	c->id = ++px->next_id;
	c->gen = UINT64_MAX;
	c->since = loop_wall_s(d->loop);
	c->last_active = loop_now_ms(d->loop);
	flow_dst_string(f, c->dst, sizeof(c->dst));
	memcpy(c->comm, f->comm, LY_COMM_LEN);
	snprintf(path, sizeof(path), "/proc/%u/exe", f->pid);
	n = readlink(path, c->exe, sizeof(c->exe) - 1);
	c->exe[n > 0 ? n : 0] = '\0';
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (loop_add(d->loop, &c->cio, fd, EPOLLIN, on_client, c) < 0) {
		close(fd);
		buf_fini(&c->in);
		buf_fini(&c->out);
		buf_fini(&c->down);
		free(c);
		return;
	}
	c->next = px->live.next;
	c->prev = &px->live;
	px->live.next->prev = c;
	px->live.next = c;
	d->m.flow_accepted++;
	d->m.flow_active++;
	conn_route(c);

	audit_begin("flow.open");
	audit_u64("flow", c->id);
	audit_str("workload", d->wl_names[c->wl_id]);
	audit_u64("cgroup", f->cgroup_id);
	audit_u64("pid", f->pid);
	audit_u64("uid", f->uid);
	audit_str("comm", c->comm);
	audit_str("exe", c->exe);
	audit_str("dst", c->dst);
	audit_str("route", c->route ? c->route->to : NULL);
	audit_str("mode", c->route && c->route->tls == POLICY_TLS_PASSTHROUGH ? "passthrough"
									     : NULL);
	audit_end();
	if (c->route && c->route->tls == POLICY_TLS_INTERCEPT)
		client_tls_start(c);
	if (c->route && c->route->tls == POLICY_TLS_PASSTHROUGH) {
		c->pt = c->pth = 1;
		c->head_deadline = head_deadline(c->px);
	}
}

static void accept_one(struct proxy *px, int fd)
{
	struct daemon *d = px->d;
	struct sockaddr_storage ss;
	socklen_t slen = sizeof(ss);
	struct ly_flow f;
	int err, wi;

	if (getpeername(fd, (struct sockaddr *)&ss, &slen) < 0) {
		close(fd);
		return;
	}
	err = kernel_take_flow(d->kern, (struct sockaddr *)&ss, &f);
	if (err) {
		/* not redirected by the kernel: a direct connection to the listener */
		d->m.flow_rejected++;
		reject_peer(px, fd, &ss, "flow.reject",
			    err == -ENOENT ? "no kernel flow record" : "flow lookup failed", NULL);
		return;
	}
	wi = f.workload_id <= DAEMON_MAX_WORKLOAD_IDS ? daemon_workload_index(d, f.workload_id)
						       : -1;
	if (wi < 0 || (d->wls[wi].flags & LY_WL_REVOKED)) {
		d->m.flow_denied++;
		reject_peer(px, fd, &ss, "flow.deny",
			    wi < 0 ? "workload not in policy" : "workload revoked", &f);
		return;
	}
	conn_open(px, fd, &f);
}

/* Stop or resume watching both listeners (pending connections wait in the backlog). */
static void accept_pause(struct proxy *px, int pause)
{
	for (int i = 0; i < 2; i++)
		if (px->lio[i].fd >= 0)
			loop_mod(px->d->loop, &px->lio[i], pause ? 0 : EPOLLIN);
	px->accept_paused = pause ? loop_now_ms(px->d->loop) : 0;
}

/*
 * Out of descriptors, the listener stays readable: level-triggered epoll would
 * call on_accept() again at once, forever.  So the descriptor held back for
 * this takes the oldest pending connection, which is refused (flow.deny, its
 * kernel record dropped); one per turn, every pending connection is refused
 * so until a descriptor is free again.  If even that fails (the limit was
 * lowered below the spare), the listeners rest until the next tick.
 */
static void shed_one(struct proxy *px, int lfd)
{
	struct daemon *d = px->d;
	struct sockaddr_storage ss;
	socklen_t slen = sizeof(ss);
	int64_t now = loop_now_ms(d->loop);
	struct ly_flow f;
	int fd;

	if (now - px->emfile_logged >= 1000) {
		log_warnx("out of file descriptors: refusing new flows until some close");
		px->emfile_logged = now;
	}
	if (px->spare_fd < 0) {
		px->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (px->spare_fd < 0) {
			accept_pause(px, 1);
			return;
		}
	}
	close(px->spare_fd);
	px->spare_fd = -1;
	fd = accept4(lfd, (struct sockaddr *)&ss, &slen, SOCK_CLOEXEC);
	if (fd >= 0) {
		int known = !kernel_take_flow(d->kern, (struct sockaddr *)&ss, &f);

		d->m.flow_denied++;
		reject_peer(px, fd, &ss, "flow.deny", "out of file descriptors", known ? &f : NULL);
	} else if (errno == EMFILE || errno == ENFILE) {
		accept_pause(px, 1);
	}
	px->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

static void on_accept(struct loop *l, struct loop_io *io, uint32_t events)
{
	struct proxy *px = io->arg;

	(void)l;
	(void)events;
	for (int i = 0; i < 64; i++) {	/* bounded: keep serving established flows */
		int fd = accept4(io->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE) {
				shed_one(px, io->fd);
			} else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
				/* ENOBUFS, ENOMEM...: the backlog stays readable; rest a tick */
				log_warn("%s: accept", __func__);
				accept_pause(px, 1);
			}
			return;
		}
		accept_one(px, fd);
	}
}

static void conn_close(struct conn *c, const char *reason)
{
	struct proxy *px = c->px;
	struct daemon *d = px->d;

	if (c->dead)
		return;
	c->dead = 1;
	loop_del(d->loop, &c->cio);
	loop_del(d->loop, &c->uio);
	/* close_notify where the stream ended cleanly (tls_quiet() marked the others) */
	tls_free(c->cssl);
	tls_free(c->ussl);
	c->cssl = c->ussl = NULL;
	ca_cert_put(c->ucert);
	c->ucert = NULL;
	close(c->cfd);
	if (c->ufd >= 0)
		close(c->ufd);
	relay_pipes_close(c);
	if (c->out_secret && c->out.data)
		explicit_bzero(c->out.data, c->out_secret);
	c->prev->next = c->next;
	c->next->prev = c->prev;
	c->next = px->dead;
	px->dead = c;
	d->m.flow_active--;

	audit_begin("flow.close");
	audit_u64("flow", c->id);
	audit_str("workload", d->wl_names[c->wl_id]);
	audit_u64("pid", c->flow.pid);
	audit_u64("requests", c->requests);
	audit_u64("bytes_up", c->bytes_up);
	audit_u64("bytes_down", c->bytes_down);
	audit_str("reason", reason);
	audit_end();
}

/* end of turn: closed connections go to the pool (their buffers are kept) */
static void proxy_reap(struct loop *l, void *arg)
{
	struct proxy *px = arg;

	(void)l;
	while (px->dead) {
		struct conn *c = px->dead;

		px->dead = c->next;
		if (c->in.cap > BUF_INIT || c->out.cap > OUT_HIGH * 2) {
			buf_fini(&c->in);	/* an oversized head: give the memory back */
			buf_fini(&c->out);
		}
		c->next = px->pool;
		px->pool = c;
	}
}

void proxy_on_revoke(struct proxy *px)
{
	struct conn *c, *next;

	/* a request parked for a credential that will not come: its 403 now */
	proxy_wake_parked(px);
	for (c = px->live.next; c != &px->live; c = next) {
		const struct policy_route *r;

		next = c->next;
		if (c->dead || c->closing)
			continue;
		r = conn_route(c);
		if (r && r->on_revoke == POLICY_REVOKE_CLOSE && conn_revoked(c, r))
			conn_close(c, "credential revoked");
	}
}

/* Out of the event callbacks (a timer, a fetch): send what is queued, watch what is due. */
static void conn_flush(struct conn *c)
{
	flush_up(c);
	flush_down(c);
	if (!c->dead)
		conn_update(c);
}

void proxy_wake_parked(struct proxy *px)
{
	for (struct conn *c = px->live.next, *next; c != &px->live; c = next) {
		next = c->next;
		if (c->dead || !c->cred_wait)
			continue;
		process_input(c);
		conn_flush(c);
	}
}

void proxy_tick(struct proxy *px)
{
	uint64_t now = loop_now_ms(px->d->loop);

	if (px->accept_paused)
		accept_pause(px, 0);	/* try again: descriptors may have been freed */
	for (struct conn *c = px->live.next, *next; c != &px->live; c = next) {
		next = c->next;
		if (c->cred_wait && now >= c->head_deadline) {
			const struct policy_route *r = conn_route(c);

			c->cred_wait = c->parked = 0;
			px->d->m.requests++;
			px->d->m.cred_failed++;
			conn_reject(c, 503, r ? cred_unavailable_reason(r) : "no credential available");
			conn_flush(c);
		} else if (c->chs && now >= c->head_deadline) {
			client_tls_fail(c, "TLS handshake timed out", NULL);
		} else if (c->pth && now >= c->head_deadline) {
			passthrough_deny(c, "no ClientHello in time", NULL);
		} else if (c->uhs_deadline && now >= c->uhs_deadline && (c->uhs || c->connecting)) {
			snprintf(c->tls_why, sizeof(c->tls_why), "upstream %s timed out",
				 c->uhs ? "TLS handshake" : "connect");
			upstream_tls_fail(c);
			flush_down(c);
			if (!c->dead)
				conn_update(c);
		} else if (c->head_deadline && now >= c->head_deadline && c->rs == RS_HEAD) {
			conn_reject(c, 408, "request head not complete in time");
			conn_flush(c);
		} else if (now - c->last_active >= px->d->pol->idle_timeout_ms) {
			/* bytes waiting for a peer that has not read for that long: stalled */
			int stalled = c->down.len || c->out.len || c->pup.len || c->pdown.len;

			if (stalled)
				px->d->m.flow_stalled++;
			else
				px->d->m.flow_idle++;
			conn_close(c, stalled ? "stalled" : "idle");
		}
	}
}

static int listen_on(struct proxy *px, int family, uint16_t port, int idx, char *err,
		     size_t errlen)
{
	struct sockaddr_storage ss = { 0 };
	socklen_t slen;
	int fd, one = 1, rc;

	if (family == AF_INET) {
		struct sockaddr_in *s = (struct sockaddr_in *)&ss;

		s->sin_family = AF_INET;
		s->sin_port = htons(port);
		s->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		slen = sizeof(*s);
	} else {
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)&ss;

		s->sin6_family = AF_INET6;
		s->sin6_port = htons(port);
		s->sin6_addr = in6addr_loopback;
		slen = sizeof(*s);
	}
	fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, slen) < 0 || listen(fd, 4096) < 0)
		goto fail;
	rc = loop_add(px->d->loop, &px->lio[idx], fd, EPOLLIN, on_accept, px);
	if (rc) {
		errno = -rc;
		goto fail;
	}
	return 0;
fail:
	snprintf(err, errlen, "listen on %s port %u: %s", family == AF_INET ? "127.0.0.1" : "::1",
		 port, strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
}

static void proxy_tick_cb(struct loop *l, void *arg)
{
	(void)l;
	proxy_tick(arg);
}

struct proxy *proxy_new(struct daemon *d, uint16_t port, char *err, size_t errlen)
{
	struct proxy *px = calloc(1, sizeof(*px));

	if (!px) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	px->d = d;
	px->live.next = px->live.prev = &px->live;
	px->lio[0].fd = px->lio[1].fd = -1;
	px->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (px->spare_fd < 0) {
		snprintf(err, errlen, "/dev/null: %s", strerror(errno));
		free(px);
		return NULL;
	}
	if (listen_on(px, AF_INET, port, 0, err, errlen) < 0 ||
	    listen_on(px, AF_INET6, port, 1, err, errlen) < 0 ||
	    loop_on_turn_end(d->loop, proxy_reap, px) < 0 ||
	    loop_every(d->loop, 250, proxy_tick_cb, px) < 0) {
		proxy_free(px);
		return NULL;
	}
	return px;
}

void proxy_free(struct proxy *px)
{
	if (!px)
		return;
	while (px->live.next != &px->live)
		conn_close(px->live.next, "shutdown");
	proxy_reap(px->d->loop, px);
	while (px->pool) {
		struct conn *c = px->pool;

		px->pool = c->next;
		buf_fini(&c->in);
		buf_fini(&c->out);
		buf_fini(&c->down);
		free(c);
	}
	for (int i = 0; i < 2; i++) {
		if (px->lio[i].fd >= 0) {
			int fd = px->lio[i].fd;

			loop_del(px->d->loop, &px->lio[i]);
			close(fd);
		}
	}
	if (px->spare_fd >= 0)
		close(px->spare_fd);
	free(px);
}

void proxy_foreach_flow(struct proxy *px, proxy_flow_cb cb, void *ctx)
{
	for (struct conn *c = px->live.next; c != &px->live; c = c->next) {
		struct proxy_flow_info fi = {
			.id = c->id,
			.workload = px->d->wl_names[c->wl_id],
			.pid = c->flow.pid,
			.cgroup_id = c->flow.cgroup_id,
			.comm = c->comm,
			.exe = c->exe,
			.dst = c->dst,
			.requests = c->requests,
			.bytes_up = c->bytes_up,
			.bytes_down = c->bytes_down,
			.since = c->since,
			.sni = c->sni[0] ? c->sni : NULL,
			.request = c->req[0] ? c->req : NULL,
		};

		cb(ctx, &fi);
	}
}

/* --- flow tagging (TLS uprobes) ---------------------------------------------------- */

/* The accepted socket's peer (the app's local addr:port) as a flows_by_peer key; cached. */
static const struct ly_peer_key *conn_peer(struct conn *c)
{
	struct sockaddr_storage ss;
	socklen_t slen = sizeof(ss);

	if (c->peer.family)
		return &c->peer;
	if (getpeername(c->cfd, (struct sockaddr *)&ss, &slen) < 0 ||
	    kernel_peer_key(&c->peer, (struct sockaddr *)&ss) < 0)
		memset(&c->peer, 0, sizeof(c->peer));
	return &c->peer;
}

/* "METHOD /redacted/path" into c->req (discover_redact_target: no secret in the path). */
static void conn_tag_request(struct conn *c, const struct discover_reqline *rl)
{
	int n = snprintf(c->req, sizeof(c->req), "%.*s ", (int)rl->method_len, rl->method);

	if (n < 0 || (size_t)n >= sizeof(c->req)) {
		c->req[0] = '\0';
		return;
	}
	discover_redact_target(rl->target, rl->target_len, c->req + n, sizeof(c->req) - (size_t)n);
}

uint64_t proxy_flow_tag(struct proxy *px, int family, const uint8_t *addr, uint16_t port,
			const char *sni, const struct discover_reqline *rl,
			const char **injected_header, char *dst, size_t dstlen)
{
	for (struct conn *c = px->live.next; c != &px->live; c = c->next) {
		const struct ly_peer_key *k = conn_peer(c);
		const struct policy_route *r;

		if (c->dead || k->family != family || ntohs(k->port) != port ||
		    memcmp(k->addr, addr, family == LY_AF_INET ? 4 : 16))
			continue;
		if (sni && sni[0])
			snprintf(c->sni, sizeof(c->sni), "%s", sni);
		if (rl)
			conn_tag_request(c, rl);
		r = conn_route(c);
		/* write_head() overwrites this header; x509 routes have none (mTLS only) */
		*injected_header = r && r->tls != POLICY_TLS_PASSTHROUGH ? r->header_name : NULL;
		snprintf(dst, dstlen, "%s", c->dst);
		return c->id;
	}
	*injected_header = NULL;
	return 0;
}
