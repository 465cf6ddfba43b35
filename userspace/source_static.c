// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Copyright (c) 2026 The lanyard authors */
/*
 * Static credentials, for systems that only take a long-lived key: a file
 * that root owns and nobody else can read, or a systemd credential
 * ($CREDENTIALS_DIRECTORY/<name>, LoadCredential=).  Read on a fetch worker,
 * and read again only when the file changed (another inode, mtime or ctime),
 * so a rotation by rename or in place is picked up within a poll.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fetch.h"

static int64_t ts_ns(const struct timespec *ts)
{
	return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
}

static int static_path(struct fetch_job *j, char *path, size_t cap)
{
	const char *dir;

	if (j->src->file) {
		snprintf(path, cap, "%s", j->src->file);
		return 0;
	}
	dir = getenv("CREDENTIALS_DIRECTORY");
	if (!dir || dir[0] != '/')
		return fetch_fail(j, -ENOENT, "systemd credential %s: $CREDENTIALS_DIRECTORY is "
				  "not set (LoadCredential= in the unit)",
				  j->src->systemd_credential);
	if ((size_t)snprintf(path, cap, "%s/%s", dir, j->src->systemd_credential) >= cap)
		return fetch_fail(j, -ENAMETOOLONG, "systemd credential %s: path too long",
				  j->src->systemd_credential);
	return 0;
}

/* The file's content: one line, a trailing LF or CRLF dropped. */
static int static_read(struct fetch_job *j, int fd, const char *path)
{
	/* room for the longest value, CRLF, and one byte more to see that the file goes on */
	struct secret *s = secret_new(FETCH_MAX_TOKEN + 3);
	const char *bad;
	size_t len = 0;
	ssize_t n;

	if (!s)
		return fetch_fail(j, -ENOMEM, "out of memory");
	while (len < s->len && ((n = read(fd, s->buf + len, s->len - len)) > 0 ||
				(n < 0 && errno == EINTR)))
		len += n > 0 ? (size_t)n : 0;
	if (len == s->len) {
		secret_free(s);
		return fetch_fail(j, -EINVAL, "static credential %s: the credential is longer "
				  "than 8192 bytes", path);
	}
	if (len && s->buf[len - 1] == '\n')
		len--;
	if (len && s->buf[len - 1] == '\r')
		len--;
	bad = len > FETCH_MAX_TOKEN ? "the credential is longer than 8192 bytes" :
				      fetch_token_check(s->buf, len);
	if (bad) {
		secret_free(s);
		return fetch_fail(j, -EINVAL, "static credential %s: %s", path, bad);
	}
	s->buf[len] = '\0';
	s->len = len;
	j->token = s;
	return 0;
}

void source_static_fetch(struct fetch_job *j)
{
	char path[PATH_MAX], err[PATH_MAX + 128];
	struct stat st;
	int fd;

	if (static_path(j, path, sizeof(path)))
		return;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		fetch_fail(j, -errno, "static credential %s: %s", path, strerror(errno));
		return;
	}
	if (fstat(fd, &st) < 0) {
		fetch_fail(j, -errno, "static credential %s: %s", path, strerror(errno));
	} else if (secret_file_check(path, "static credential", &st, err, sizeof(err))) {
		fetch_fail(j, -EPERM, "%s", err);
	} else {
		j->mtime = st.st_mtim.tv_sec;
		struct fetch_file_id now = { st.st_dev, st.st_ino, ts_ns(&st.st_mtim),
					     ts_ns(&st.st_ctim) };

		j->unchanged = j->file.ino && now.dev == j->file.dev && now.ino == j->file.ino &&
			       now.mtime_ns == j->file.mtime_ns && now.ctime_ns == j->file.ctime_ns;
		j->file = now;
		if (!j->unchanged)
			static_read(j, fd, path);
	}
	close(fd);
}
