// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Copyright (c) 2026 The lanyard authors */
/*
 * ly-static-tls: an HTTPS client with OpenSSL linked in statically (it maps no libssl.so),
 * so that the tests can check that lanyard finds SSL_write in an executable's own symbols.
 * Each request is a new connection: SNI, SSL_set_fd, one SSL_write of the whole head.
 */
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#define MAX_HEADERS 8

static struct {
	const char *host, *port, *sni, *path, *cafile, *wait_file;
	const char *headers[MAX_HEADERS];
	int nheaders, count, interval_ms;
} opt = { .path = "/", .count = 1 };

static void usage(void)
{
	fprintf(stderr,
		"usage: ly-static-tls --connect HOST:PORT [--sni NAME] [--path P] [--cafile F]\n"
		"       [--header 'Name: value']... [--count N] [--interval-ms MS]\n"
		"       [--wait-file F]\n"
		"  --wait-file: print \"ready <pid>\" and wait until F exists before connecting\n"
		"  without --cafile the server certificate is not verified\n");
	exit(2);
}

static void parse_args(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "connect", required_argument, NULL, 'c' },
		{ "sni", required_argument, NULL, 's' },
		{ "path", required_argument, NULL, 'p' },
		{ "cafile", required_argument, NULL, 'a' },
		{ "header", required_argument, NULL, 'H' },
		{ "count", required_argument, NULL, 'n' },
		{ "interval-ms", required_argument, NULL, 'i' },
		{ "wait-file", required_argument, NULL, 'w' },
		{ NULL, 0, NULL, 0 },
	};
	static char hostport[256];
	char *colon;
	int c;

	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'c':
			snprintf(hostport, sizeof(hostport), "%s", optarg);
			colon = strrchr(hostport, ':');
			if (!colon)
				usage();
			*colon = '\0';
			opt.host = hostport;
			opt.port = colon + 1;
			break;
		case 's':
			opt.sni = optarg;
			break;
		case 'p':
			opt.path = optarg;
			break;
		case 'a':
			opt.cafile = optarg;
			break;
		case 'H':
			if (opt.nheaders == MAX_HEADERS)
				usage();
			opt.headers[opt.nheaders++] = optarg;
			break;
		case 'n':
			opt.count = atoi(optarg);
			break;
		case 'i':
			opt.interval_ms = atoi(optarg);
			break;
		case 'w':
			opt.wait_file = optarg;
			break;
		default:
			usage();
		}
	}
	if (!opt.host || optind != argc || opt.count < 1)
		usage();
}

static int tcp_connect(void)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res, *ai;
	int fd = -1, err;

	err = getaddrinfo(opt.host, opt.port, &hints, &res);
	if (err) {
		fprintf(stderr, "ly-static-tls: %s: %s\n", opt.host, gai_strerror(err));
		return -1;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd >= 0 && !connect(fd, ai->ai_addr, ai->ai_addrlen))
			break;
		if (fd >= 0)
			close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		perror("ly-static-tls: connect");
	return fd;
}

/* The whole request head in one buffer: one SSL_write, as most clients do. */
static int build_head(char *buf, size_t len)
{
	const char *host = opt.sni ? opt.sni : opt.host;
	size_t n;
	int i, r;

	r = snprintf(buf, len, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: ly-static-tls\r\n",
		     opt.path, host);
	for (i = 0; i < opt.nheaders && r > 0 && (size_t)r < len; i++) {
		n = (size_t)r;
		r += snprintf(buf + n, len - n, "%s\r\n", opt.headers[i]);
	}
	if (r > 0 && (size_t)r < len) {
		n = (size_t)r;
		r += snprintf(buf + n, len - n, "Connection: close\r\n\r\n");
	}
	return r > 0 && (size_t)r < len ? r : -1;
}

/* One request on a new connection; prints the status line.  0 on a 2xx answer. */
static int one_request(SSL_CTX *ctx, const char *head, int len)
{
	char resp[4096];
	SSL *ssl = NULL;
	int fd, n, got = 0, err = -1;

	fd = tcp_connect();
	if (fd < 0)
		return -1;
	ssl = SSL_new(ctx);
	if (!ssl || !SSL_set_fd(ssl, fd))
		goto cleanup;
	if (opt.sni && (!SSL_set_tlsext_host_name(ssl, opt.sni) || !SSL_set1_host(ssl, opt.sni)))
		goto cleanup;
	if (SSL_connect(ssl) != 1 || SSL_write(ssl, head, len) != len)
		goto cleanup;
	while (got < (int)sizeof(resp) - 1 &&
	       (n = SSL_read(ssl, resp + got, (int)sizeof(resp) - 1 - got)) > 0)
		got += n;
	resp[got] = '\0';
	resp[strcspn(resp, "\r\n")] = '\0';
	printf("%s\n", resp);
	fflush(stdout);
	err = strncmp(resp, "HTTP/1.1 2", 10) ? -1 : 0;
cleanup:
	if (err)
		ERR_print_errors_fp(stderr);
	SSL_free(ssl);
	close(fd);
	return err;
}

static void wait_for_file(const char *path)
{
	struct timespec ts = { 0, 20 * 1000 * 1000 };
	struct stat st;

	printf("ready %d\n", (int)getpid());
	fflush(stdout);
	while (stat(path, &st))
		nanosleep(&ts, NULL);
}

int main(int argc, char **argv)
{
	SSL_CTX *ctx;
	char head[8192];
	int i, len, failed = 0;

	parse_args(argc, argv);
	len = build_head(head, sizeof(head));
	if (len < 0)
		usage();
	ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx)
		return 1;
	if (opt.cafile) {
		if (!SSL_CTX_load_verify_locations(ctx, opt.cafile, NULL)) {
			ERR_print_errors_fp(stderr);
			return 1;
		}
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	}
	if (opt.wait_file)
		wait_for_file(opt.wait_file);
	for (i = 0; i < opt.count; i++) {
		struct timespec ts = { opt.interval_ms / 1000, (opt.interval_ms % 1000) * 1000000L };

		if (one_request(ctx, head, len))
			failed++;
		if (opt.interval_ms && i + 1 < opt.count)
			nanosleep(&ts, NULL);
	}
	SSL_CTX_free(ctx);
	return failed ? 1 : 0;
}
