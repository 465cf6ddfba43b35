// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Copyright (c) 2026 The lanyard authors */
/* make bench helper: new TLS connections, each a full handshake (no resumption) and one
 * GET with Connection: close; prints the rate and the time to the first response byte. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#define MAX_SAMPLES (1 << 20)

static struct {
	struct sockaddr_in addr;
	const char *sni;     /* NULL: send no SNI */
	const char *ca_file; /* NULL: do not verify (like wrk) */
	int fresh;	     /* every connection asks for a never-seen name under sni */
	int threads, count;  /* count: connections per thread, 0 = until the deadline */
	double deadline;
	SSL_CTX *ctx;
	pthread_mutex_t lock;
	long *lat_us;
	int nlat, errors;
	char first_err[200];
} g;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void record(long us, const char *err)
{
	pthread_mutex_lock(&g.lock);
	if (err) {
		if (!g.errors++)
			snprintf(g.first_err, sizeof(g.first_err), "%s", err);
	} else if (g.nlat < MAX_SAMPLES) {
		g.lat_us[g.nlat++] = us;
	}
	pthread_mutex_unlock(&g.lock);
}

/* read one whole response (head + Content-Length body); 0 when it is a 200 */
static int read_response(SSL *s, double *first)
{
	char buf[4096];
	const char *he, *cl;
	size_t len = 0;
	long want = -1;
	int n;

	while (want < 0 || (long)len < want) {
		n = SSL_read(s, buf + len, (int)(sizeof(buf) - 1 - len));
		if (n <= 0)
			return -EIO;
		if (!*first)
			*first = now();
		len += (size_t)n;
		buf[len] = 0;
		he = strstr(buf, "\r\n\r\n");
		if (want < 0 && he) {
			cl = strcasestr(buf, "\r\nContent-Length:");
			want = (he - buf) + 4 + (cl && cl < he ? atol(cl + 17) : 0);
		}
		if (len >= sizeof(buf) - 1)
			return -E2BIG;
	}
	return strncmp(buf, "HTTP/1.1 200", 12) ? -EPROTO : 0;
}

/* one connection: connect, full handshake, GET, response; the latency is to its first byte */
static void one_conn(unsigned int id)
{
	char name[256], req[512];
	double t0 = now(), first = 0;
	const char *err = NULL;
	int fd, one = 1;
	SSL *s = NULL;

	if (g.fresh)
		snprintf(name, sizeof(name), "n%u-%d.%s", id, (int)getpid(), g.sni);
	else
		snprintf(name, sizeof(name), "%s", g.sni ? g.sni : "bench");
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&g.addr, sizeof(g.addr))) {
		err = "connect failed";
		goto out;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	s = SSL_new(g.ctx); /* a new SSL without SSL_set_session: never resumed */
	if (!s || !SSL_set_fd(s, fd) || (g.sni && !SSL_set_tlsext_host_name(s, name)) ||
	    (g.ca_file && g.sni && !SSL_set1_host(s, name))) {
		err = "SSL setup failed";
		goto out;
	}
	if (SSL_connect(s) != 1) {
		err = ERR_reason_error_string(ERR_peek_last_error());
		err = err ? err : "handshake failed";
		goto out;
	}
	snprintf(req, sizeof(req), "GET /bench HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n",
		 name);
	if (SSL_write(s, req, (int)strlen(req)) <= 0 || read_response(s, &first)) {
		err = "request failed";
		goto out;
	}
	SSL_shutdown(s);
out:
	ERR_clear_error();
	record((long)((first - t0) * 1e6), err);
	SSL_free(s);
	if (fd >= 0)
		close(fd);
}

static void *worker(void *arg)
{
	unsigned int id = (unsigned int)(long)arg * 1000000u;
	int i;

	for (i = 0; g.count ? i < g.count : now() < g.deadline; i++)
		one_conn(id++);
	return NULL;
}

static int cmp_long(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;

	return (x > y) - (x < y);
}

static long pct(int p)
{
	return g.nlat ? g.lat_us[(long)(g.nlat - 1) * p / 100] : 0;
}

/* the command line into g; -EINVAL when it is wrong */
static int parse_args(int argc, char **argv)
{
	int opt, port = 0;

	g.threads = 1;
	while ((opt = getopt(argc, argv, "p:c:d:n:s:a:f")) != -1) {
		switch (opt) {
		case 'p':
			port = atoi(optarg);
			break;
		case 'c':
			g.threads = atoi(optarg);
			break;
		case 'd':
			g.deadline = atof(optarg);
			break;
		case 'n':
			g.count = atoi(optarg);
			break;
		case 's':
			g.sni = optarg;
			break;
		case 'a':
			g.ca_file = optarg;
			break;
		case 'f':
			g.fresh = 1;
			break;
		default:
			return -EINVAL;
		}
	}
	if (optind != argc - 1 || port <= 0 || g.threads < 1 || g.threads > 64 ||
	    (!g.count && g.deadline <= 0) || (g.fresh && !g.sni))
		return -EINVAL;
	g.addr.sin_family = AF_INET;
	g.addr.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, argv[optind], &g.addr.sin_addr) != 1)
		return -EINVAL;
	return 0;
}

int main(int argc, char **argv)
{
	pthread_t th[64];
	double t0, secs;
	int i;

	if (parse_args(argc, argv))
		goto usage;
	g.ctx = SSL_CTX_new(TLS_client_method());
	g.lat_us = calloc(MAX_SAMPLES, sizeof(*g.lat_us));
	if (!g.ctx || !g.lat_us)
		return 1;
	SSL_CTX_set_min_proto_version(g.ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(g.ctx, SSL_OP_NO_TICKET);
	SSL_CTX_set_session_cache_mode(g.ctx, SSL_SESS_CACHE_OFF);
	if (g.ca_file) {
		if (SSL_CTX_load_verify_locations(g.ctx, g.ca_file, NULL) != 1) {
			fprintf(stderr, "ly-bench-tls: cannot load %s\n", g.ca_file);
			return 1;
		}
		SSL_CTX_set_verify(g.ctx, SSL_VERIFY_PEER, NULL);
	}
	pthread_mutex_init(&g.lock, NULL);
	t0 = now();
	g.deadline += t0;
	for (i = 0; i < g.threads; i++)
		if (pthread_create(&th[i], NULL, worker, (void *)(long)i))
			return 1;
	for (i = 0; i < g.threads; i++)
		pthread_join(th[i], NULL);
	secs = now() - t0;
	qsort(g.lat_us, (size_t)g.nlat, sizeof(*g.lat_us), cmp_long);
	printf("TLS_RESULT conns=%d errors=%d secs=%.3f per_s=%.0f p50_us=%ld p95_us=%ld "
	       "p99_us=%ld max_us=%ld\n", g.nlat, g.errors, secs, g.nlat / secs, pct(50), pct(95),
	       pct(99), pct(100));
	if (g.errors)
		fprintf(stderr, "ly-bench-tls: %d failed connections; first: %s\n", g.errors,
			g.first_err);
	return g.errors ? 2 : 0;
usage:
	fprintf(stderr, "usage: ly-bench-tls -p PORT [-c THREADS] (-d SECONDS | -n COUNT)\n"
			"                    [-s SNI [-f]] [-a CA_FILE] IPV4\n"
			"  -f: each connection asks for a new name, n<i>-<pid>.SNI\n");
	return 1;
}
