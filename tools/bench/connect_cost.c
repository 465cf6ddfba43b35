// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Copyright (c) 2026 The lanyard authors */
/*
 * ly-bench-connect: what one TCP connect() to a local listener costs the caller; lanyard's
 * cgroup/connect4 and sockops programs run inside that call.  A helper of `make bench`.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define WARMUP 1000

static void *acceptor(void *arg)
{
	int lfd = *(int *)arg;

	for (;;) {
		int fd = accept(lfd, NULL, NULL);

		if (fd >= 0)
			close(fd);
		else if (errno != EINTR && errno != ECONNABORTED)
			return NULL;
	}
}

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/* socket + timed connect + abortive close (SO_LINGER 0: no TIME_WAIT to run out of ports) */
static int one_connect(const struct sockaddr_in *sa, int64_t *ns)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	int64_t t0;
	int fd, err = 0;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	t0 = now_ns();
	if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) < 0)
		err = -errno;
	*ns = now_ns() - t0;
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
	return err;
}

/* Listen on 127.0.0.1:<any> and start the thread that accepts and closes. */
static int listener_start(struct sockaddr_in *sa, pthread_t *th, int *lfd)
{
	socklen_t len = sizeof(*sa);

	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	*lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (*lfd < 0 || bind(*lfd, (struct sockaddr *)sa, sizeof(*sa)) < 0 ||
	    listen(*lfd, 4096) < 0 || getsockname(*lfd, (struct sockaddr *)sa, &len) < 0)
		return -errno;
	return -pthread_create(th, NULL, acceptor, lfd);
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? strtol(argv[1], NULL, 10) : 20000;
	struct sockaddr_in sa;
	int64_t *ns = NULL, sum = 0;
	pthread_t th;
	int lfd = -1, err;

	if (n < 100 || n > 10000000) {
		fprintf(stderr, "usage: ly-bench-connect [COUNT >= 100]\n");
		return 2;
	}
	ns = calloc((size_t)n, sizeof(*ns));
	err = ns ? listener_start(&sa, &th, &lfd) : -ENOMEM;
	for (long i = 0; !err && i < WARMUP; i++)
		err = one_connect(&sa, &ns[0]);
	for (long i = 0; !err && i < n; i++)
		err = one_connect(&sa, &ns[i]);
	if (err) {
		fprintf(stderr, "ly-bench-connect: %s\n", strerror(-err));
		return 1;
	}
	for (long i = 0; i < n; i++)
		sum += ns[i];
	qsort(ns, (size_t)n, sizeof(*ns), cmp_i64);
	printf("CONNECT_RESULT n=%ld median_ns=%lld p90_ns=%lld mean_ns=%lld\n", n,
	       (long long)ns[n / 2], (long long)ns[n * 9 / 10], (long long)(sum / n));
	free(ns);
	return 0;
}
