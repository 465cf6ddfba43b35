// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Copyright (c) 2026 The lanyard authors */
/*
 * make bench helper: the cost of one SSL_write as the app sees it.  One loopback TLS 1.3
 * connection (libssl.so.3, a throwaway self-signed key made in memory) to a sink thread in
 * the same process; a tight loop of small SSL_write calls, timed in batches.  Run it with and
 * without lanyard's uprobes, from an observed and an unobserved cgroup, to get their cost.
 *
 *   ly-bench-uprobe WRITES [SIZE] [body|head|syscall] [trap]
 *
 * head: every write is an HTTP/1.1 request head of SIZE bytes (what the probes capture and
 * hand to lanyardd); body: SIZE bytes of body (inspected, not captured); syscall: the loop
 * makes getppid() calls instead of writes, for what a hook costs the other syscalls of the
 * host (the connection is still made).  trap: the helper
 * puts a counting uprobe perf event (no bpf program) on its own SSL_write, for the cost of
 * the kernel's uprobe mechanism alone, whoever attaches it.
 * Prints: writes=N warmup=W size=S mode=body|head|syscall ns_per_write=X median_batch_ns=Y [trap_hits=H]
 */
#include <arpa/inet.h>
#include <limits.h>
#include <errno.h>
#include <linux/perf_event.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#define BATCH	1000	/* writes per timed batch */
#define WARMUP	5000	/* untimed writes first: caches, TCP window, the probes' maps */
#define MAX_SIZE 4096

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static void die(const char *what)
{
	fprintf(stderr, "ly-bench-uprobe: %s\n", what);
	ERR_print_errors_fp(stderr);
	exit(1);
}

/* A server context with a fresh P-256 key and a self-signed certificate (never verified). */
static SSL_CTX *server_ctx(void)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *crt = X509_new();
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (!key || !crt || !ctx)
		die("cannot make the server key");
	ASN1_INTEGER_set(X509_get_serialNumber(crt), 1);
	X509_gmtime_adj(X509_getm_notBefore(crt), -3600);
	X509_gmtime_adj(X509_getm_notAfter(crt), 3600);
	X509_set_pubkey(crt, key);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(crt), "CN", MBSTRING_ASC,
				   (const unsigned char *)"bench", -1, -1, 0);
	X509_set_issuer_name(crt, X509_get_subject_name(crt));
	if (!X509_sign(crt, key, EVP_sha256()) || SSL_CTX_use_certificate(ctx, crt) != 1 ||
	    SSL_CTX_use_PrivateKey(ctx, key) != 1)
		die("cannot make the server certificate");
	X509_free(crt);
	EVP_PKEY_free(key);
	return ctx;
}

/* The sink: accept one connection, read until the client closes. */
static void *sink(void *arg)
{
	int lfd = (int)(long)arg, fd;
	SSL_CTX *ctx = server_ctx();
	char buf[16384];
	SSL *s;

	fd = accept(lfd, NULL, NULL);
	if (fd < 0)
		die("accept failed");
	s = SSL_new(ctx);
	if (!s || !SSL_set_fd(s, fd) || SSL_accept(s) != 1)
		die("server handshake failed");
	while (SSL_read(s, buf, sizeof(buf)) > 0)
		;
	SSL_free(s);
	SSL_CTX_free(ctx);
	close(fd);
	return NULL;
}

static int listen_loopback(struct sockaddr_in *addr)
{
	socklen_t len = sizeof(*addr);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	memset(addr, 0, sizeof(*addr));
	addr->sin_family = AF_INET;
	addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)addr, sizeof(*addr)) || listen(fd, 1) ||
	    getsockname(fd, (struct sockaddr *)addr, &len))
		die("cannot listen on 127.0.0.1");
	return fd;
}

/* The payload of every write: a request head of exactly @size bytes, or body bytes. */
static void fill(char *buf, size_t size, int head)
{
	static const char line[] = "GET /bench HTTP/1.1\r\nHost: bench\r\nX-Pad: ";
	size_t n;

	memset(buf, 'b', size);
	if (!head)
		return;
	n = strlen(line);
	memcpy(buf, line, n);
	memset(buf + n, 'p', size - n - 4);
	memcpy(buf + size - 4, "\r\n\r\n", 4);
}

/*
 * Where SSL_write is in the libssl file this process mapped: its address minus the start of
 * the executable mapping that holds it, plus that mapping's file offset (/proc/self/maps).
 */
static int ssl_write_file_off(char *path, size_t len, unsigned long *off)
{
	unsigned long addr = (unsigned long)(void *)SSL_write, start, end, foff;
	char line[PATH_MAX + 128];
	FILE *f = fopen("/proc/self/maps", "re");
	int n, err = -ENOENT;

	while (f && fgets(line, sizeof(line), f)) {
		n = 0;
		if (sscanf(line, "%lx-%lx %*s %lx %*s %*s %n", &start, &end, &foff, &n) < 3 || !n ||
		    addr < start || addr >= end)
			continue;
		line[strcspn(line, "\n")] = '\0';
		snprintf(path, len, "%s", line + n);
		*off = addr - start + foff;
		err = 0;
		break;
	}
	if (f)
		fclose(f);
	return err;
}

/* A counting uprobe perf event on this process's SSL_write: the trap, no program. */
static int trap_open(void)
{
	struct perf_event_attr attr = { .size = sizeof(attr) };
	char path[PATH_MAX];
	unsigned long off;
	FILE *f = fopen("/sys/bus/event_source/devices/uprobe/type", "re");
	int type = -1, fd;

	if (!f || fscanf(f, "%d", &type) != 1 || ssl_write_file_off(path, sizeof(path), &off))
		die("no uprobe PMU, or SSL_write not found in /proc/self/maps");
	fclose(f);
	attr.type = (unsigned)type;
	attr.uprobe_path = (unsigned long)path;
	attr.probe_offset = off;
	fd = (int)syscall(SYS_perf_event_open, &attr, 0, -1, -1, PERF_FLAG_FD_CLOEXEC);
	if (fd < 0)
		die("perf_event_open(uprobe) failed (root needed)");
	return fd;
}

/*
 * Per-process probes are put in place after this process started: wait (5 s at most) until
 * the first byte of its SSL_write is the breakpoint (int3) they put there.
 */
static void wait_probed(void)
{
	const volatile unsigned char *code = (const volatile unsigned char *)(void *)SSL_write;

	for (int i = 0; i < 500 && *code != 0xcc; i++)
		usleep(10 * 1000);
	if (*code != 0xcc)
		die("SSL_write was not probed for this process within 5 s");
}

/* One call of the timed loop: an SSL_write of buf, or (buf NULL) a getppid(). */
static void one_call(SSL *s, const char *buf, size_t size)
{
	if (!buf)
		syscall(SYS_getppid);
	else if (SSL_write(s, buf, (int)size) != (int)size)
		die("SSL_write failed");
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	long writes = argc > 1 ? atol(argv[1]) : 0, i, nb;
	size_t size = argc > 2 ? (size_t)atol(argv[2]) : 64;
	const char *mode = argc > 3 ? argv[3] : "body";
	int head = !strcmp(mode, "head"), sys = !strcmp(mode, "syscall"), lfd, fd, trap = -1;
	unsigned long long hits = 0;
	struct sockaddr_in addr;
	char buf[MAX_SIZE];
	double t0, total, *batch;
	pthread_t th;
	SSL_CTX *ctx;
	SSL *s;

	if (writes < BATCH || size < 64 || size > MAX_SIZE) {
		fprintf(stderr, "usage: ly-bench-uprobe WRITES(>=%d) [SIZE 64..%d] [body|head|syscall] "
			"[trap|probed]\n",
			BATCH, MAX_SIZE);
		return 2;
	}
	nb = writes / BATCH;
	batch = calloc((size_t)nb, sizeof(*batch));
	lfd = listen_loopback(&addr);
	if (!batch || pthread_create(&th, NULL, sink, (void *)(long)lfd))
		die("cannot start the sink");
	ctx = SSL_CTX_new(TLS_client_method());
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (!ctx || fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)))
		die("cannot connect");
	s = SSL_new(ctx);
	if (!s || !SSL_set_fd(s, fd) || !SSL_set_tlsext_host_name(s, "bench") ||
	    SSL_connect(s) != 1)
		die("client handshake failed");
	fill(buf, size, head);
	if (argc > 4 && !strcmp(argv[4], "trap"))
		trap = trap_open();
	if (argc > 4 && !strcmp(argv[4], "probed"))
		wait_probed();
	for (i = 0; i < WARMUP; i++)
		one_call(s, sys ? NULL : buf, size);
	t0 = now_ns();
	for (i = 0; i < nb; i++) {
		double b0 = now_ns();

		for (int j = 0; j < BATCH; j++)
			one_call(s, sys ? NULL : buf, size);
		batch[i] = (now_ns() - b0) / BATCH;
	}
	total = now_ns() - t0;
	if (trap >= 0 && read(trap, &hits, sizeof(hits)) != sizeof(hits))
		die("cannot read the uprobe count");
	SSL_shutdown(s);
	SSL_free(s);
	close(fd);
	pthread_join(th, NULL);
	qsort(batch, (size_t)nb, sizeof(*batch), cmp_double);
	printf("writes=%ld warmup=%d size=%zu mode=%s ns_per_write=%.0f median_batch_ns=%.0f",
	       nb * BATCH, WARMUP, size, sys ? "syscall" : head ? "head" : "body",
	       total / (double)(nb * BATCH),
	       batch[nb / 2]);
	if (trap >= 0)
		printf(" trap_hits=%llu", hits);
	printf("\n");
	free(batch);
	SSL_CTX_free(ctx);
	close(lfd);
	return 0;
}
