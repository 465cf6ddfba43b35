// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Copyright (c) 2026 The lanyard authors */
/*
 * ly-upstream: the HTTP/1.1 upstream of the tests and the bench.  Single-threaded epoll;
 * answers every request 200 and records what it received (JSON lines, raw bytes), over
 * plain TCP or TLS (OpenSSL 3, optional client certificates).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#define MAX_LISTEN 16
#define MAX_HEAD (64 * 1024)	  /* a head longer than this gets 431 and a close */
#define MAX_OUT_QUEUED (1 << 20) /* stop reading a pipelining client that does not read */
#define IN_BUF_MIN (16 * 1024)
#define ADDR_STR 64
#define TLS_RECORD_MAX 16384 /* plaintext of one record (RFC 8446 5.1) */

enum ev_type { EV_LISTEN, EV_CONN, EV_SIGNAL };

/* Every epoll registration points at one of these first members. */
struct ev {
	enum ev_type type;
	int fd;
};

struct listener {
	struct ev ev;
	char name[ADDR_STR];
};

enum conn_state {
	ST_HEAD,
	ST_BODY_CL,
	ST_CH_SIZE,
	ST_CH_DATA,
	ST_CH_DATA_END,
	ST_CH_TRAILER,
	ST_DONE,
};

struct buf {
	char *p;
	size_t len, cap;
};

struct conn {
	struct ev ev;
	unsigned long id, nreq;
	const struct listener *lst;
	char peer[ADDR_STR];
	struct buf in;	 /* received, not yet consumed */
	struct buf out;	 /* response bytes; out_off already written */
	size_t out_off;
	struct buf log;	 /* JSON line of the request in progress, up to its headers */
	enum conn_state st;
	uint64_t body_left, body_len;
	bool keep_alive, is_head, rd_eof, close_after;
	uint32_t events;
	SSL *ssl;	     /* NULL on a plain listener */
	bool hs_done;	     /* handshake complete: application data flows */
	bool tls_dead;	     /* fatal TLS error: no close_notify (SSL_shutdown(3)) */
	struct buf tls_json; /* "tls":{...}, -- the same in every log line of the connection */
	uint64_t ticket;     /* resumed: the number of the ticket the client presented */
};

static struct {
	int epfd, log_fd, raw_fd;
	const char *body;
	size_t body_len;
	struct buf resp_ka, resp_close, resp_ka_head, resp_close_head;
	unsigned long next_id;
	bool stop;
	const char *tls_cert, *tls_key, *client_ca;
	int tls_max;	 /* 0, TLS1_2_VERSION or TLS1_3_VERSION */
	bool tickets_full_only; /* no new ticket on a resumed handshake */
	uint64_t tickets; /* session tickets issued so far: each carries its number */
	SSL_CTX *ssl_ctx; /* set: every listener speaks TLS */
} g = { .epfd = -1, .log_fd = -1, .raw_fd = -1, .body = "ok\n", .next_id = 1 };

static void usage(FILE *f)
{
	fprintf(f, "usage: ly-upstream --listen ADDR:PORT [--listen ...] [--log FILE]\n"
		   "                   [--raw FILE] [--body TEXT]\n"
		   "                   [--tls-cert FILE --tls-key FILE [--client-ca FILE]\n"
		   "                    [--tls-max 1.2|1.3] [--tls-tickets full]]\n"
		   "  ADDR is IPv4 (127.0.0.1) or bracketed IPv6 ([::1]).  Every request is\n"
		   "  answered 200 with TEXT (default \"ok\\n\").\n"
		   "  --log: one JSON line per request (ts_ms: wall-clock ms when its head\n"
		   "  was complete); --raw: every byte received (after decryption), appended.\n"
		   "  --tls-cert/--tls-key: every listener speaks TLS 1.2+ (cert file: PEM\n"
		   "  leaf then chain; ALPN http/1.1 when offered); log lines gain \"tls\".\n"
		   "  --client-ca: require a client certificate that verifies against FILE.\n"
		   "  A failed handshake prints \"tls handshake failed\" on stderr.  Each session\n"
		   "  ticket carries its number: a resumed connection logs \"ticket\": N.\n"
		   "  --tls-tickets full: tickets after full handshakes only, none on resumption.\n");
}

/* --- buffers ----------------------------------------------------------------------------- */

static int buf_reserve(struct buf *b, size_t extra)
{
	size_t cap = b->cap ? b->cap : 256;
	char *p;

	if (b->len + extra <= b->cap)
		return 0;
	while (cap < b->len + extra)
		cap *= 2;
	p = realloc(b->p, cap);
	if (!p)
		return -ENOMEM;
	b->p = p;
	b->cap = cap;
	return 0;
}

static int buf_add(struct buf *b, const void *data, size_t len)
{
	if (buf_reserve(b, len))
		return -ENOMEM;
	memcpy(b->p + b->len, data, len);
	b->len += len;
	return 0;
}

static int buf_str(struct buf *b, const char *s)
{
	return buf_add(b, s, strlen(s));
}

/*
 * Append @s as a JSON string (RFC 8259 section 7).  The wire is bytes, not UTF-8, so every
 * byte >= 0x80 is written as \u00XX: the log stays valid JSON and the byte is recoverable.
 */
static int buf_json_str(struct buf *b, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	char esc[7] = "\\u00";
	size_t i;
	int err;

	err = buf_reserve(b, len + 2) ?: buf_add(b, "\"", 1);
	for (i = 0; i < len && !err; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\') {
			char e[2] = { '\\', (char)c };

			err = buf_add(b, e, 2);
		} else if (c < 0x20 || c >= 0x7f) {
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 15];
			err = buf_add(b, esc, 6);
		} else {
			err = buf_add(b, &s[i], 1);
		}
	}
	return err ?: buf_add(b, "\"", 1);
}

static void buf_free(struct buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

/* --- responses ----------------------------------------------------------------------------- */

static int make_response(struct buf *b, bool keep_alive, bool head)
{
	char hdr[256];

	snprintf(hdr, sizeof(hdr),
		 "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
		 "Connection: %s\r\n\r\n",
		 g.body_len, keep_alive ? "keep-alive" : "close");
	if (buf_str(b, hdr))
		return -ENOMEM;
	return head ? 0 : buf_add(b, g.body, g.body_len);
}

static int make_responses(void)
{
	g.body_len = strlen(g.body);
	if (make_response(&g.resp_ka, true, false) || make_response(&g.resp_close, false, false) ||
	    make_response(&g.resp_ka_head, true, true) ||
	    make_response(&g.resp_close_head, false, true))
		return -ENOMEM;
	return 0;
}

static void send_error(struct conn *c, const char *status)
{
	char r[128];

	snprintf(r, sizeof(r), "HTTP/1.1 %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
		 status);
	buf_str(&c->out, r);
	c->close_after = true;
}

/* --- request head ------------------------------------------------------------------------ */

static bool token_in_list(const char *v, size_t len, const char *token)
{
	size_t tl = strlen(token), i = 0;

	/* comma-separated list with optional whitespace (RFC 9110 5.6.1) */
	while (i < len) {
		size_t s, e;

		while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		s = i;
		while (i < len && v[i] != ',')
			i++;
		e = i;
		while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
			e--;
		if (e - s == tl && !strncasecmp(v + s, token, tl))
			return true;
	}
	return false;
}

/* Is the last transfer coding "chunked"?  (RFC 9112 6.3 item 4: otherwise a request is 400.) */
static bool te_is_chunked(const char *v, size_t len)
{
	size_t e = len, s;

	while (e > 0 && (v[e - 1] == ' ' || v[e - 1] == '\t'))
		e--;
	s = e;
	while (s > 0 && v[s - 1] != ',' && v[s - 1] != ' ' && v[s - 1] != '\t')
		s--;
	return e - s == 7 && !strncasecmp(v + s, "chunked", 7);
}

struct head_info {
	bool has_cl, has_te, chunked, expect_continue, conn_close, conn_ka;
	uint64_t cl;
};

/* Returns 0, or -EINVAL for a framing we refuse (bad or conflicting Content-Length). */
static int note_header(struct head_info *h, const char *n, size_t nl, const char *v, size_t vl)
{
	uint64_t cl = 0;
	size_t i;

	if (nl == 14 && !strncasecmp(n, "content-length", 14)) {
		if (vl == 0 || vl > 18)
			return -EINVAL;
		for (i = 0; i < vl; i++) {
			if (!isdigit((unsigned char)v[i]))
				return -EINVAL;
			cl = cl * 10 + (uint64_t)(v[i] - '0');
		}
		if (h->has_cl && h->cl != cl)
			return -EINVAL;
		h->has_cl = true;
		h->cl = cl;
	} else if (nl == 17 && !strncasecmp(n, "transfer-encoding", 17)) {
		h->has_te = true;
		h->chunked = te_is_chunked(v, vl);
	} else if (nl == 6 && !strncasecmp(n, "expect", 6)) {
		h->expect_continue = vl == 12 && !strncasecmp(v, "100-continue", 12);
	} else if (nl == 10 && !strncasecmp(n, "connection", 10)) {
		h->conn_close |= token_in_list(v, vl, "close");
		h->conn_ka |= token_in_list(v, vl, "keep-alive");
	}
	return 0;
}

/* Next line in [p, end): returns its length without CR LF (bare LF tolerated), or -1. */
static ssize_t next_line(const char *p, const char *end, const char **next)
{
	const char *lf = memchr(p, '\n', (size_t)(end - p));
	size_t len;

	if (!lf)
		return -1;
	*next = lf + 1;
	len = (size_t)(lf - p);
	if (len && p[len - 1] == '\r')
		len--;
	return (ssize_t)len;
}

static void log_begin(struct conn *c, const char *line, size_t len)
{
	const char *sp1 = memchr(line, ' ', len), *sp2;
	struct timespec now;
	char pre[256];

	/* wall clock when the head was complete: tests compare it with a token's exp */
	clock_gettime(CLOCK_REALTIME, &now);
	sp2 = memchr(sp1 + 1, ' ', len - (size_t)(sp1 + 1 - line));
	snprintf(pre, sizeof(pre),
		 "{\"conn\":%lu,\"req\":%lu,\"ts_ms\":%lld,\"peer\":\"%s\",\"local\":\"%s\",",
		 c->id, c->nreq, (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000, c->peer,
		 c->lst->name);
	c->log.len = 0;
	buf_str(&c->log, pre);
	if (c->tls_json.len)
		buf_add(&c->log, c->tls_json.p, c->tls_json.len);
	buf_str(&c->log, "\"method\":");
	buf_json_str(&c->log, line, (size_t)(sp1 - line));
	buf_str(&c->log, ",\"target\":");
	buf_json_str(&c->log, sp1 + 1, (size_t)(sp2 - sp1 - 1));
	buf_str(&c->log, ",\"version\":");
	buf_json_str(&c->log, sp2 + 1, len - (size_t)(sp2 + 1 - line));
	buf_str(&c->log, ",\"headers\":[");
}

/* "METHOD SP target SP HTTP/1.x" with non-empty parts; returns true when it looks like one. */
static bool request_line_ok(const char *line, size_t len)
{
	const char *sp1 = memchr(line, ' ', len), *sp2;

	if (!sp1 || sp1 == line)
		return false;
	sp2 = memchr(sp1 + 1, ' ', len - (size_t)(sp1 + 1 - line));
	if (!sp2 || sp2 == sp1 + 1)
		return false;
	return len - (size_t)(sp2 + 1 - line) == 8 && !strncmp(sp2 + 1, "HTTP/1.", 7) &&
	       isdigit((unsigned char)sp2[8]);
}

/* Walk the header lines of a complete head; fills @h and the log line. */
static int parse_headers(struct conn *c, const char *p, const char *end, struct head_info *h)
{
	const char *next, *colon, *v;
	ssize_t len;
	size_t vl;
	int n = 0;

	while ((len = next_line(p, end, &next)) > 0) {
		colon = memchr(p, ':', (size_t)len);
		/* no name, whitespace before the colon, obs-fold: 400 (RFC 9112 5.1, 5.2) */
		if (!colon || colon == p || colon[-1] == ' ' || colon[-1] == '\t' || *p == ' ' ||
		    *p == '\t')
			return -EINVAL;
		v = colon + 1;
		vl = (size_t)(p + len - v);
		while (vl && (*v == ' ' || *v == '\t'))
			v++, vl--;
		while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
			vl--;
		if (note_header(h, p, (size_t)(colon - p), v, vl))
			return -EINVAL;
		if (g.log_fd >= 0) {
			buf_str(&c->log, n++ ? ",[" : "[");
			buf_json_str(&c->log, p, (size_t)(colon - p));
			buf_str(&c->log, ",");
			buf_json_str(&c->log, v, vl);
			buf_str(&c->log, "]");
		}
		p = next;
	}
	return 0;
}

/* Parse the complete head in [p, end) and set up the body state. */
static int start_request(struct conn *c, const char *p, const char *end)
{
	struct head_info h = { 0 };
	const char *next;
	ssize_t len = next_line(p, end, &next);
	bool http10;

	if (len <= 0 || !request_line_ok(p, (size_t)len))
		return -EINVAL;
	c->nreq++;
	if (g.log_fd >= 0)
		log_begin(c, p, (size_t)len);
	http10 = !strncmp(p + len - 3, "1.0", 3);
	c->is_head = len > 5 && !strncmp(p, "HEAD ", 5);
	if (parse_headers(c, next, end, &h))
		return -EINVAL;
	if (h.has_te && !h.chunked)
		return -EINVAL;
	c->keep_alive = http10 ? h.conn_ka && !h.conn_close : !h.conn_close;
	c->body_len = 0;
	c->body_left = h.has_te ? 0 : h.cl;
	c->st = h.has_te ? ST_CH_SIZE : ST_BODY_CL;
	/* RFC 9110 10.1.1: the client waits for 100 before sending a body it was asked about */
	if (h.expect_continue && !http10 && (h.has_te || h.cl > 0))
		buf_str(&c->out, "HTTP/1.1 100 Continue\r\n\r\n");
	return 0;
}

/* --- request body ------------------------------------------------------------------------ */

/* One step of the chunked decoder (RFC 9112 7.1); returns bytes used, 0 = need more, -1 bad. */
static ssize_t chunked_step(struct conn *c, const char *p, size_t avail)
{
	const char *next;
	ssize_t len;
	size_t n;

	if (c->st == ST_CH_DATA) {
		n = avail < c->body_left ? avail : (size_t)c->body_left;
		c->body_left -= n;
		c->body_len += n;
		if (!c->body_left)
			c->st = ST_CH_DATA_END;
		return (ssize_t)n;
	}
	len = next_line(p, p + avail, &next);
	if (len < 0)
		return avail > 4096 ? -1 : 0;
	if (c->st == ST_CH_DATA_END) {
		if (len)
			return -1;
		c->st = ST_CH_SIZE;
	} else if (c->st == ST_CH_SIZE) {
		uint64_t sz = 0;
		ssize_t i;

		for (i = 0; i < len && isxdigit((unsigned char)p[i]); i++) {
			if (sz >> 56)
				return -1;
			sz = sz * 16 + (uint64_t)(isdigit((unsigned char)p[i]) ? p[i] - '0' :
									 (p[i] | 0x20) - 'a' + 10);
		}
		if (i == 0)
			return -1;
		c->body_left = sz;
		c->st = sz ? ST_CH_DATA : ST_CH_TRAILER;
	} else if (len == 0) { /* ST_CH_TRAILER: an empty line ends the message */
		c->st = ST_DONE;
	}
	return next - p;
}

/* --- TLS --------------------------------------------------------------------------------- */

/* ALPN (RFC 7301 3.2): pick http/1.1 when offered; otherwise go on without ALPN. */
static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
		       const unsigned char *in, unsigned int inlen, void *arg)
{
	static const unsigned char h11[] = "\x08http/1.1";
	unsigned char *sel = NULL;

	(void)ssl;
	(void)arg;
	if (SSL_select_next_proto(&sel, outlen, h11, sizeof(h11) - 1, in, inlen) !=
	    OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_NOACK;
	*out = sel;
	return SSL_TLSEXT_ERR_OK;
}

/* Number each ticket, so that the log shows which one a client resumed with. */
static int ticket_gen(SSL *s, void *arg)
{
	uint64_t n = ++g.tickets;

	(void)arg;
	return SSL_SESSION_set1_ticket_appdata(SSL_get0_session(s), &n, sizeof(n));
}

/* OpenSSL's own answer to each status, and the number of a ticket used. */
static SSL_TICKET_RETURN ticket_dec(SSL *s, SSL_SESSION *ss, const unsigned char *keyname,
				    size_t keyname_len, SSL_TICKET_STATUS status, void *arg)
{
	struct conn *c = SSL_get_app_data(s);
	void *data = NULL;
	size_t len = 0;

	(void)keyname, (void)keyname_len, (void)arg;
	switch (status) {
	case SSL_TICKET_SUCCESS:
	case SSL_TICKET_SUCCESS_RENEW:
		if (c && SSL_SESSION_get0_ticket_appdata(ss, &data, &len) && len == sizeof(c->ticket))
			memcpy(&c->ticket, data, len);
		if (g.tickets_full_only) {
			SSL_set_num_tickets(s, 0);
			return SSL_TICKET_RETURN_USE;
		}
		return status == SSL_TICKET_SUCCESS ? SSL_TICKET_RETURN_USE :
						      SSL_TICKET_RETURN_USE_RENEW;
	case SSL_TICKET_EMPTY:
	case SSL_TICKET_NO_DECRYPT:
		return SSL_TICKET_RETURN_IGNORE_RENEW;
	default:
		return SSL_TICKET_RETURN_ABORT;
	}
}

/* One server context for every listener; fatal problems are reported before the loop. */
static int tls_setup(void)
{
	static const unsigned char sid_ctx[] = "ly-upstream";
	STACK_OF(X509_NAME) *names = NULL;
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (!ctx || !SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) ||
	    (g.tls_max && !SSL_CTX_set_max_proto_version(ctx, g.tls_max)))
		goto fail;
	/* conn_flush retries a partial write after more responses were queued (realloc) */
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	/* a peer that closes without close_notify is an EOF, as on a plain listener */
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION);
	/* without it a client resuming a session under SSL_VERIFY_PEER fails its handshake */
	SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1);
	SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
	if (!SSL_CTX_set_session_ticket_cb(ctx, ticket_gen, ticket_dec, NULL))
		goto fail;
	if (SSL_CTX_use_certificate_chain_file(ctx, g.tls_cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, g.tls_key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1)
		goto fail;
	if (g.client_ca) {
		/* RFC 8446 4.3.2: the CertificateRequest names the acceptable CAs */
		names = SSL_load_client_CA_file(g.client_ca);
		if (!names || SSL_CTX_load_verify_locations(ctx, g.client_ca, NULL) != 1)
			goto fail;
		SSL_CTX_set_client_CA_list(ctx, names); /* takes ownership */
		names = NULL;
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	}
	g.ssl_ctx = ctx;
	return 0;
fail:
	fprintf(stderr, "ly-upstream: TLS setup (%s, %s%s%s) failed:\n", g.tls_cert, g.tls_key,
		g.client_ca ? ", " : "", g.client_ca ?: "");
	ERR_print_errors_fp(stderr);
	sk_X509_NAME_pop_free(names, X509_NAME_free);
	SSL_CTX_free(ctx);
	return -EINVAL;
}

static void json_hex(struct buf *b, const unsigned char *p, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t i;

	buf_str(b, "\"");
	for (i = 0; i < n; i++) {
		char x[2] = { hex[p[i] >> 4], hex[p[i] & 15] };

		buf_add(b, x, 2);
	}
	buf_str(b, "\"");
}

/* RFC 4514 form, most specific RDN first: "CN=client,O=lanyard tests". */
static void json_x509_name(struct buf *b, const char *key, const X509_NAME *name)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *p = NULL;
	long n = 0;

	if (bio && X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253) >= 0)
		n = BIO_get_mem_data(bio, &p);
	buf_str(b, key);
	buf_json_str(b, p ?: "", n > 0 ? (size_t)n : 0);
	BIO_free(bio);
}

/* ,"<key>":[...] with the subjectAltName entries of @type (GEN_URI, GEN_DNS). */
static void json_sans(struct buf *b, const char *key, const X509 *x, int type)
{
	GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	int i, n = 0;

	buf_str(b, key);
	buf_str(b, "[");
	for (i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
		const GENERAL_NAME *gn = sk_GENERAL_NAME_value(gens, i);

		if (gn->type != type)
			continue;
		buf_str(b, n++ ? "," : "");
		buf_json_str(b, (const char *)ASN1_STRING_get0_data(gn->d.ia5),
			     (size_t)ASN1_STRING_length(gn->d.ia5));
	}
	buf_str(b, "]");
	GENERAL_NAMES_free(gens);
}

static long long asn1_time_unix(const ASN1_TIME *t)
{
	struct tm tm;

	return ASN1_TIME_to_tm(t, &tm) ? (long long)timegm(&tm) : 0;
}

/* "client_cert":{subject, issuer, uri_sans, dns_sans, not_before, not_after, serial, sha256} */
static void json_client_cert(struct buf *b, const X509 *x)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
	char *serial = bn ? BN_bn2hex(bn) : NULL, nums[96], *s;

	json_x509_name(b, "{\"subject\":", X509_get_subject_name(x));
	json_x509_name(b, ",\"issuer\":", X509_get_issuer_name(x));
	json_sans(b, ",\"uri_sans\":", x, GEN_URI);
	json_sans(b, ",\"dns_sans\":", x, GEN_DNS);
	snprintf(nums, sizeof(nums), ",\"not_before\":%lld,\"not_after\":%lld,\"serial\":",
		 asn1_time_unix(X509_get0_notBefore(x)), asn1_time_unix(X509_get0_notAfter(x)));
	buf_str(b, nums);
	for (s = serial; s && *s; s++)
		*s = (char)tolower((unsigned char)*s);
	buf_json_str(b, serial ?: "", serial ? strlen(serial) : 0);
	buf_str(b, ",\"sha256\":");
	X509_digest(x, EVP_sha256(), md, &mdlen);
	json_hex(b, md, mdlen);
	buf_str(b, "}");
	OPENSSL_free(serial);
	BN_free(bn);
}

/* After the handshake: the "tls" member every log line of this connection carries. */
static int tls_describe(struct conn *c)
{
	const char *sni = SSL_get_servername(c->ssl, TLSEXT_NAMETYPE_host_name);
	const unsigned char *alpn = NULL;
	const X509 *peer = SSL_get0_peer_certificate(c->ssl);
	unsigned int alpn_len = 0;
	struct buf *b = &c->tls_json;

	SSL_get0_alpn_selected(c->ssl, &alpn, &alpn_len);
	buf_str(b, "\"tls\":{\"version\":");
	buf_json_str(b, SSL_get_version(c->ssl), strlen(SSL_get_version(c->ssl)));
	buf_str(b, ",\"cipher\":");
	buf_json_str(b, SSL_get_cipher_name(c->ssl), strlen(SSL_get_cipher_name(c->ssl)));
	buf_str(b, ",\"sni\":");
	if (sni)
		buf_json_str(b, sni, strlen(sni));
	else
		buf_str(b, "null");
	buf_str(b, ",\"alpn\":");
	if (alpn_len)
		buf_json_str(b, (const char *)alpn, alpn_len);
	else
		buf_str(b, "null");
	buf_str(b, SSL_session_reused(c->ssl) ? ",\"resumed\":true" : ",\"resumed\":false");
	if (SSL_session_reused(c->ssl) && c->ticket) {
		char n[32];

		snprintf(n, sizeof(n), ",\"ticket\":%" PRIu64, c->ticket);
		buf_str(b, n);
	}
	buf_str(b, ",\"client_cert\":");
	if (peer)
		json_client_cert(b, peer);
	else
		buf_str(b, "null");
	return buf_str(b, "},");
}

/* One stderr line per failed handshake: tests wait for it ("tls handshake failed"). */
static void tls_report_failure(const struct conn *c, int ssl_err)
{
	unsigned long e = ERR_peek_last_error();
	long vr = SSL_get_verify_result(c->ssl);
	const char *why = "peer closed the connection";
	char reason[256];

	if (e) {
		ERR_error_string_n(e, reason, sizeof(reason));
		why = reason;
	} else if (ssl_err == SSL_ERROR_SYSCALL && errno) {
		why = strerror(errno);
	}
	fprintf(stderr, "ly-upstream: tls handshake failed: conn %lu peer %s: %s%s%s\n", c->id,
		c->peer, why, vr != X509_V_OK ? ": client certificate: " : "",
		vr != X509_V_OK ? X509_verify_cert_error_string(vr) : "");
	ERR_clear_error();
}

/* Map an SSL_get_error() result to read(2)/write(2) conventions. */
static ssize_t tls_result(struct conn *c, int ssl_err, bool reading)
{
	switch (ssl_err) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		/*
		 * No renegotiation (SSL_OP_NO_RENEGOTIATION), so a read that wants to write
		 * (a TLS 1.3 KeyUpdate answer) is rare enough to wait for the next EPOLLIN.
		 */
		errno = EAGAIN;
		return -1;
	case SSL_ERROR_ZERO_RETURN: /* close_notify (RFC 8446 6.1), or EOF without it */
		if (reading)
			return 0;
		break;
	default:
		c->tls_dead = true;
		break;
	}
	ERR_clear_error();
	errno = reading ? EPROTO : EPIPE;
	return -1;
}

/* --- connection -------------------------------------------------------------------------- */

/* read(2) over either transport: bytes, 0 at EOF, or -1 with errno (EAGAIN: wait). */
static ssize_t conn_recv(struct conn *c, char *p, size_t len)
{
	int n;

	if (!c->ssl)
		return read(c->ev.fd, p, len);
	ERR_clear_error();
	n = SSL_read(c->ssl, p, len > INT32_MAX ? INT32_MAX : (int)len);
	return n > 0 ? n : tls_result(c, SSL_get_error(c->ssl, n), true);
}

/* write(2) over either transport: bytes (> 0), or -1 with errno (EAGAIN: wait). */
static ssize_t conn_send(struct conn *c, const char *p, size_t len)
{
	int n;

	if (!c->ssl)
		return write(c->ev.fd, p, len);
	ERR_clear_error();
	n = SSL_write(c->ssl, p, len > INT32_MAX ? INT32_MAX : (int)len);
	return n > 0 ? n : tls_result(c, SSL_get_error(c->ssl, n), false);
}

static void finish_request(struct conn *c)
{
	const struct buf *r;

	if (g.log_fd >= 0) {
		char tail[64];

		snprintf(tail, sizeof(tail), "],\"body_len\":%llu}\n",
			 (unsigned long long)c->body_len);
		buf_str(&c->log, tail);
		/* one write per line: O_APPEND keeps lines whole for a reader tailing the file */
		if (write(g.log_fd, c->log.p, c->log.len) < 0)
			perror("ly-upstream: write log");
	}
	if (c->keep_alive)
		r = c->is_head ? &g.resp_ka_head : &g.resp_ka;
	else
		r = c->is_head ? &g.resp_close_head : &g.resp_close;
	buf_add(&c->out, r->p, r->len);
	c->close_after = !c->keep_alive;
	c->st = ST_HEAD;
}

/* Find the end of the head: returns the offset after the empty line, or 0 when incomplete. */
static size_t head_end(const char *p, size_t len)
{
	const char *q = p, *end = p + len, *next;
	ssize_t l;

	while ((l = next_line(q, end, &next)) >= 0) {
		if (l == 0 && q != p)
			return (size_t)(next - p);
		q = next;
	}
	return 0;
}

/* One parsing step at c->in.p + off; returns bytes consumed, 0 = need more, -1 = bad input. */
static ssize_t input_step(struct conn *c, const char *p, size_t avail)
{
	size_t n;

	switch (c->st) {
	case ST_HEAD:
		/* tolerate the CRLF some clients send after a body (RFC 9112 2.2) */
		if (*p == '\n')
			return 1;
		if (avail >= 2 && p[0] == '\r' && p[1] == '\n')
			return 2;
		n = head_end(p, avail);
		if (n > MAX_HEAD || (!n && avail > MAX_HEAD)) {
			send_error(c, "431 Request Header Fields Too Large");
			return -1;
		}
		if (!n)
			return 0;
		if (start_request(c, p, p + n)) {
			send_error(c, "400 Bad Request");
			return -1;
		}
		return (ssize_t)n;
	case ST_BODY_CL:
		n = avail < c->body_left ? avail : (size_t)c->body_left;
		c->body_left -= n;
		c->body_len += n;
		return (ssize_t)n;
	default:
		n = (size_t)chunked_step(c, p, avail);
		if ((ssize_t)n < 0)
			send_error(c, "400 Bad Request");
		return (ssize_t)n;
	}
}

/* Consume as many whole requests from c->in as are there; queue their responses. */
static void process_input(struct conn *c)
{
	size_t off = 0;
	ssize_t used;

	while (!c->close_after && off < c->in.len) {
		used = input_step(c, c->in.p + off, c->in.len - off);
		if (used < 0)
			break;
		off += (size_t)used;
		if (c->st == ST_DONE || (c->st == ST_BODY_CL && !c->body_left))
			finish_request(c);
		else if (used == 0)
			break;
	}
	memmove(c->in.p, c->in.p + off, c->in.len - off);
	c->in.len -= off;
}

static void conn_close(struct conn *c)
{
	if (c->ssl) {
		/* best effort close_notify (RFC 8446 6.1): clients read responses to EOF */
		if (c->hs_done && !c->tls_dead)
			SSL_shutdown(c->ssl);
		ERR_clear_error();
		SSL_free(c->ssl);
	}
	close(c->ev.fd);
	buf_free(&c->in);
	buf_free(&c->out);
	buf_free(&c->log);
	buf_free(&c->tls_json);
	free(c);
}

static int conn_set_events(struct conn *c, uint32_t events)
{
	struct epoll_event e = { .events = events, .data.ptr = c };

	if (events == c->events)
		return 0;
	c->events = events;
	return epoll_ctl(g.epfd, EPOLL_CTL_MOD, c->ev.fd, &e);
}

/*
 * Write what is queued; then decide what to wait for.  Returns -1 when the connection is
 * finished (closed by us), 0 otherwise.
 */
static int conn_flush(struct conn *c)
{
	uint32_t ev = 0;
	ssize_t n;

	while (c->out_off < c->out.len) {
		n = conn_send(c, c->out.p + c->out_off, c->out.len - c->out_off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN)
			goto done; /* peer gone: EPIPE, ECONNRESET */
		if (n < 0)
			break;
		c->out_off += (size_t)n;
	}
	if (c->out_off == c->out.len) {
		c->out_off = c->out.len = 0;
		if (c->close_after || c->rd_eof)
			goto done;
	} else {
		ev |= EPOLLOUT;
	}
	/* backpressure: a client that pipelines without reading stops being read */
	if (!c->rd_eof && !c->close_after && c->out.len - c->out_off < MAX_OUT_QUEUED)
		ev |= EPOLLIN;
	if (conn_set_events(c, ev) == 0)
		return 0;
done:
	conn_close(c);
	return -1;
}

static void conn_read(struct conn *c)
{
	bool got = false;
	ssize_t n;

	do {
		if (c->in.cap - c->in.len < 4096 && buf_reserve(&c->in, c->in.cap)) {
			conn_close(c);
			return;
		}
		n = conn_recv(c, c->in.p + c->in.len, c->in.cap - c->in.len);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			break;
		if (n < 0) {
			conn_close(c);
			return;
		}
		got = true;
		if (n == 0) {
			/* half-close: still answer what was received (printf ... | nc) */
			c->rd_eof = true;
		} else if (g.raw_fd >= 0 && write(g.raw_fd, c->in.p + c->in.len, (size_t)n) < 0) {
			perror("ly-upstream: write raw");
		}
		c->in.len += (size_t)n;
		/*
		 * The rest of a TLS record already read from the socket is decrypted and
		 * waiting inside OpenSSL, where epoll cannot see it: take it now.
		 */
	} while (n > 0 && c->ssl && SSL_pending(c->ssl) > 0);
	if (!got)
		return;
	process_input(c);
	conn_flush(c);
}

/* Non-blocking server handshake, one step per readiness event. */
static void conn_handshake(struct conn *c)
{
	int r, err;

	ERR_clear_error();
	r = SSL_do_handshake(c->ssl);
	if (r == 1) {
		c->hs_done = true;
		if (tls_describe(c) || conn_set_events(c, EPOLLIN)) {
			conn_close(c);
			return;
		}
		/* the request may have come with the client's Finished */
		conn_read(c);
		return;
	}
	err = SSL_get_error(c->ssl, r);
	if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
		if (conn_set_events(c, err == SSL_ERROR_WANT_READ ? EPOLLIN : EPOLLOUT))
			conn_close(c);
		return;
	}
	/* garbage, a plain-HTTP client, a refused or missing client certificate: close */
	tls_report_failure(c, err);
	c->tls_dead = true;
	conn_close(c);
}

static void conn_event(struct conn *c, uint32_t revents)
{
	if (c->ssl && !c->hs_done)
		conn_handshake(c);
	else if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR) &&
		 (c->events & EPOLLIN || !(revents & EPOLLOUT)))
		conn_read(c);
	else
		conn_flush(c);
}

/* --- sockets ----------------------------------------------------------------------------- */

static void format_addr(const struct sockaddr_storage *ss, char *out, size_t size)
{
	char ip[INET6_ADDRSTRLEN] = "?";

	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;

		inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
		snprintf(out, size, "[%s]:%u", ip, ntohs(s6->sin6_port));
	} else {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;

		inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
		snprintf(out, size, "%s:%u", ip, ntohs(s4->sin_port));
	}
}

static void accept_all(struct listener *l)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	struct epoll_event e;
	struct conn *c;
	int fd, one = 1;

	for (;;) {
		fd = accept4(l->ev.fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			break; /* EAGAIN: all taken; EMFILE and friends: try at the next event */
		c = calloc(1, sizeof(*c));
		if (!c || buf_reserve(&c->in, IN_BUF_MIN)) {
			free(c);
			close(fd);
			continue;
		}
		c->ev = (struct ev){ .type = EV_CONN, .fd = fd };
		c->id = g.next_id++;
		c->lst = l;
		c->events = EPOLLIN;
		format_addr(&ss, c->peer, sizeof(c->peer));
		/* a 100 Continue followed by the response must not wait for a delayed ACK */
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		e = (struct epoll_event){ .events = EPOLLIN, .data.ptr = c };
		if (g.ssl_ctx && (!(c->ssl = SSL_new(g.ssl_ctx)) || !SSL_set_fd(c->ssl, fd) ||
				  !SSL_set_app_data(c->ssl, c)))
			conn_close(c);
		else if (epoll_ctl(g.epfd, EPOLL_CTL_ADD, fd, &e))
			conn_close(c);
		else if (c->ssl)
			SSL_set_accept_state(c->ssl);
		sl = sizeof(ss);
	}
}

/* "127.0.0.1:8080" or "[::1]:8080" */
static int parse_listen(const char *arg, struct sockaddr_storage *ss, socklen_t *sl)
{
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	char host[INET6_ADDRSTRLEN + 2];
	const char *colon = strrchr(arg, ':');
	char *end;
	long port;
	size_t hl;

	if (!colon)
		return -EINVAL;
	port = strtol(colon + 1, &end, 10);
	hl = (size_t)(colon - arg);
	if (*end || port <= 0 || port > 65535 || hl == 0 || hl >= sizeof(host))
		return -EINVAL;
	memcpy(host, arg, hl);
	host[hl] = '\0';
	memset(ss, 0, sizeof(*ss));
	if (host[0] == '[' && host[hl - 1] == ']') {
		host[hl - 1] = '\0';
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		*sl = sizeof(*s6);
		return inet_pton(AF_INET6, host + 1, &s6->sin6_addr) == 1 ? 0 : -EINVAL;
	}
	s4->sin_family = AF_INET;
	s4->sin_port = htons((uint16_t)port);
	*sl = sizeof(*s4);
	return inet_pton(AF_INET, host, &s4->sin_addr) == 1 ? 0 : -EINVAL;
}

static int listen_on(struct listener *l, const char *arg)
{
	struct sockaddr_storage ss;
	struct epoll_event e;
	socklen_t sl;
	int one = 1, err;

	if (parse_listen(arg, &ss, &sl)) {
		fprintf(stderr, "ly-upstream: bad --listen '%s' (want 127.0.0.1:P or [::1]:P)\n",
			arg);
		return -EINVAL;
	}
	l->ev = (struct ev){ .type = EV_LISTEN };
	l->ev.fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (l->ev.fd < 0)
		goto fail;
	setsockopt(l->ev.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* [::]:P and 0.0.0.0:P may both be asked for: keep the v6 socket v6-only */
	if (ss.ss_family == AF_INET6)
		setsockopt(l->ev.fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(l->ev.fd, (struct sockaddr *)&ss, sl) || listen(l->ev.fd, 1024))
		goto fail;
	format_addr(&ss, l->name, sizeof(l->name));
	e = (struct epoll_event){ .events = EPOLLIN, .data.ptr = l };
	if (epoll_ctl(g.epfd, EPOLL_CTL_ADD, l->ev.fd, &e))
		goto fail;
	return 0;
fail:
	err = -errno;
	fprintf(stderr, "ly-upstream: listen %s: %s\n", arg, strerror(errno));
	return err;
}

/* SIGTERM and SIGINT arrive through a signalfd so that the loop exits between events. */
static int signals_setup(struct ev *sev)
{
	struct epoll_event e = { .events = EPOLLIN, .data.ptr = sev };
	sigset_t set;

	/* an ignored signal never reaches a signalfd: undo what a parent may have set */
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	if (sigprocmask(SIG_BLOCK, &set, NULL))
		return -errno;
	sev->type = EV_SIGNAL;
	sev->fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (sev->fd < 0 || epoll_ctl(g.epfd, EPOLL_CTL_ADD, sev->fd, &e))
		return -errno;
	return 0;
}

static int open_append(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);

	if (fd < 0)
		fprintf(stderr, "ly-upstream: open %s: %s\n", path, strerror(errno));
	return fd;
}

static void run_loop(void)
{
	struct epoll_event evs[256];
	int i, n;

	while (!g.stop) {
		n = epoll_wait(g.epfd, evs, 256, -1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			perror("ly-upstream: epoll_wait");
			return;
		}
		for (i = 0; i < n; i++) {
			struct ev *ev = evs[i].data.ptr;

			if (ev->type == EV_LISTEN) {
				accept_all((struct listener *)ev);
			} else if (ev->type == EV_SIGNAL) {
				g.stop = true;
			} else {
				conn_event((struct conn *)ev, evs[i].events);
			}
		}
	}
}

static int parse_args(int argc, char **argv, const char **listens, int *nlisten)
{
	int i;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			exit(0);
		}
		if (i + 1 >= argc)
			goto bad;
		if (!strcmp(a, "--listen") && *nlisten < MAX_LISTEN)
			listens[(*nlisten)++] = argv[++i];
		else if (!strcmp(a, "--log") && g.log_fd < 0)
			g.log_fd = open_append(argv[++i]);
		else if (!strcmp(a, "--raw") && g.raw_fd < 0)
			g.raw_fd = open_append(argv[++i]);
		else if (!strcmp(a, "--body"))
			g.body = argv[++i];
		else if (!strcmp(a, "--tls-cert"))
			g.tls_cert = argv[++i];
		else if (!strcmp(a, "--tls-key"))
			g.tls_key = argv[++i];
		else if (!strcmp(a, "--client-ca"))
			g.client_ca = argv[++i];
		else if (!strcmp(a, "--tls-max") && !strcmp(argv[i + 1], "1.2") && ++i)
			g.tls_max = TLS1_2_VERSION;
		else if (!strcmp(a, "--tls-max") && !strcmp(argv[i + 1], "1.3") && ++i)
			g.tls_max = TLS1_3_VERSION;
		else if (!strcmp(a, "--tls-tickets") && !strcmp(argv[i + 1], "full") && ++i)
			g.tickets_full_only = true;
		else
			goto bad;
		if ((!strcmp(a, "--log") && g.log_fd < 0) || (!strcmp(a, "--raw") && g.raw_fd < 0))
			return -EINVAL;
	}
	/* TLS wants a certificate and its key; the other TLS options want both */
	if (!g.tls_cert != !g.tls_key ||
	    ((g.client_ca || g.tls_max || g.tickets_full_only) && !g.tls_cert))
		goto bad;
	if (*nlisten)
		return 0;
bad:
	usage(stderr);
	return -EINVAL;
}

int main(int argc, char **argv)
{
	static struct listener lst[MAX_LISTEN];
	const char *listens[MAX_LISTEN];
	struct ev sev = { .fd = -1 };
	int i, nlisten = 0;

	if (parse_args(argc, argv, listens, &nlisten))
		return 2;
	g.epfd = epoll_create1(EPOLL_CLOEXEC);
	if (g.epfd < 0 || signals_setup(&sev) || make_responses()) {
		perror("ly-upstream: setup");
		return 1;
	}
	if (g.tls_cert && tls_setup())
		return 1;
	for (i = 0; i < nlisten; i++)
		if (listen_on(&lst[i], listens[i]))
			return 1;
	printf("listening");
	for (i = 0; i < nlisten; i++)
		printf(" %s", lst[i].name);
	printf("\n");
	fflush(stdout);
	run_loop();
	/* log lines are written whole as they happen; connections close with the process */
	return 0;
}
