// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Copyright (c) 2026 The lanyard authors */
/*
 * ly-send-ways: one plain HTTP request whose head is sent in a chosen way, so that the
 * tests can check what lanyard's send hook sees of each: write(2), sendmmsg(2), or
 * io_uring (the send made inline in io_uring_enter, or by an io-wq worker with
 * IOSQE_ASYNC).  Prints "status <code>" for the answer.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <liburing.h>

static void usage(void)
{
	fprintf(stderr, "usage: ly-send-ways write|sendmmsg|uring|uring-async PORT PATH "
			"'Name: value'\n  sends GET PATH to 127.0.0.1:PORT with that header\n");
	exit(2);
}

static void die(const char *what, int err)
{
	fprintf(stderr, "ly-send-ways: %s: %s\n", what, strerror(err));
	exit(1);
}

static void send_uring(int fd, const char *buf, size_t len, int async)
{
	struct io_uring ring;
	struct io_uring_sqe *sqe;
	struct io_uring_cqe *cqe;
	int rc = io_uring_queue_init(4, &ring, 0);

	if (rc < 0)
		die("io_uring_queue_init", -rc);
	sqe = io_uring_get_sqe(&ring);
	io_uring_prep_send(sqe, fd, buf, len, 0);
	if (async)
		sqe->flags |= IOSQE_ASYNC;	/* made by an io-wq worker thread */
	rc = io_uring_submit_and_wait(&ring, 1);
	if (rc < 0)
		die("io_uring_submit_and_wait", -rc);
	rc = io_uring_wait_cqe(&ring, &cqe);
	if (rc < 0)
		die("io_uring_wait_cqe", -rc);
	if (cqe->res != (int)len)
		die("io_uring send", cqe->res < 0 ? -cqe->res : EIO);
	io_uring_cqe_seen(&ring, cqe);
	io_uring_queue_exit(&ring);
}

static void send_mmsg(int fd, char *buf, size_t len)
{
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	struct mmsghdr m = { .msg_hdr = { .msg_iov = &iov, .msg_iovlen = 1 } };

	if (sendmmsg(fd, &m, 1, 0) != 1 || m.msg_len != len)
		die("sendmmsg", errno);
}

int main(int argc, char **argv)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	char head[1024], answer[256];
	int fd, n, status;
	size_t len;

	if (argc != 5)
		usage();
	sa.sin_port = htons((uint16_t)atoi(argv[2]));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	n = snprintf(head, sizeof(head), "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%s\r\n%s\r\n"
		     "Connection: close\r\n\r\n", argv[3], argv[2], argv[4]);
	if (n < 0 || (size_t)n >= sizeof(head))
		usage();
	len = (size_t)n;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		die("connect", errno);
	if (!strcmp(argv[1], "write")) {
		if (write(fd, head, len) != (ssize_t)len)
			die("write", errno);
	} else if (!strcmp(argv[1], "sendmmsg")) {
		send_mmsg(fd, head, len);
	} else if (!strcmp(argv[1], "uring") || !strcmp(argv[1], "uring-async")) {
		send_uring(fd, head, len, !strcmp(argv[1], "uring-async"));
	} else {
		usage();
	}
	n = (int)read(fd, answer, sizeof(answer) - 1);
	if (n <= 0)
		die("read", n < 0 ? errno : ECONNRESET);
	answer[n] = '\0';
	if (sscanf(answer, "HTTP/1.1 %d", &status) != 1)
		die("answer", EPROTO);
	printf("status %d\n", status);
	close(fd);
	return 0;
}
