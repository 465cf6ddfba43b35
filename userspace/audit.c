// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Copyright (c) 2026 The lanyard authors */
/*
 * The audit log: JSON lines built into a static record buffer, appended to a
 * batch buffer and written by audit_flush() once per event-loop turn, so a
 * busy proxy pays one write() per turn, not one per request.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "log.h"

#define AUDIT_REC_MAX	4096		/* one record; longer fields are truncated */
#define AUDIT_BATCH_MAX	(256 * 1024)	/* flushed early when this fills */

static int audit_fd = -1;
static char rec[AUDIT_REC_MAX];
static size_t rec_len;
static int rec_overflow;
static char batch[AUDIT_BATCH_MAX];
static size_t batch_len;
static uint64_t n_written, n_dropped;

static int open_path(const char *path)
{
	int fd;

	if (!path)
		return dup(STDERR_FILENO);
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	return fd;
}

int audit_open(const char *path)
{
	int fd = open_path(path);

	if (fd < 0)
		return fd;
	audit_close();
	audit_fd = fd;
	return 0;
}

int audit_reopen(const char *path)
{
	audit_flush();
	return audit_open(path);
}

void audit_close(void)
{
	audit_flush();
	if (audit_fd >= 0)
		close(audit_fd);
	audit_fd = -1;
}

void audit_flush(void)
{
	size_t off = 0;

	if (audit_fd < 0) {
		batch_len = 0;
		return;
	}
	while (off < batch_len) {
		ssize_t n = write(audit_fd, batch + off, batch_len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			log_warn("%s: audit write", __func__);
			n_dropped++;
			break;
		}
		off += (size_t)n;
	}
	batch_len = 0;
}

static void rec_put(const char *s, size_t len)
{
	if (rec_len + len >= sizeof(rec) - 2) {	/* keep room for "}\n" */
		rec_overflow = 1;
		return;
	}
	memcpy(rec + rec_len, s, len);
	rec_len += len;
}

size_t audit_escape(char *out, size_t outlen, const char *in, size_t inlen)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	if (outlen == 0)
		return 0;
	for (size_t i = 0; i < inlen; i++) {
		unsigned char c = (unsigned char)in[i];
		char esc[7];
		size_t n;

		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			n = 2;
		} else if (c < 0x20 || c >= 0x7f) {
			/* non-ASCII is escaped byte-wise: audit input is not trusted UTF-8 */
			memcpy(esc, "\\u00", 4);
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 15];
			n = 6;
		} else {
			esc[0] = (char)c;
			n = 1;
		}
		if (o + n >= outlen)
			break;
		memcpy(out + o, esc, n);
		o += n;
	}
	out[o] = '\0';
	return o;
}

static void rec_key(const char *key)
{
	rec_put(",\"", 2);
	rec_put(key, strlen(key));
	rec_put("\":", 2);
}

void audit_begin(const char *event)
{
	struct timespec ts;
	struct tm tm;
	char buf[64];
	int n;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = (int)strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
	n += snprintf(buf + n, sizeof(buf) - (size_t)n, ".%06ldZ", ts.tv_nsec / 1000);
	rec_len = 0;
	rec_overflow = 0;
	rec_put("{\"ts\":\"", 7);
	rec_put(buf, (size_t)n);
	rec_put("\"", 1);
	audit_str("event", event);
}

void audit_strn(const char *key, const char *val, size_t len)
{
	char esc[1024];
	size_t n;

	if (!val)
		return;
	n = audit_escape(esc, sizeof(esc), val, len);
	rec_key(key);
	rec_put("\"", 1);
	rec_put(esc, n);
	rec_put("\"", 1);
}

void audit_str(const char *key, const char *val)
{
	if (val)
		audit_strn(key, val, strlen(val));
}

void audit_u64(const char *key, uint64_t val)
{
	char buf[24];
	int n = snprintf(buf, sizeof(buf), "%" PRIu64, val);

	rec_key(key);
	rec_put(buf, (size_t)n);
}

void audit_i64(const char *key, int64_t val)
{
	char buf[24];
	int n = snprintf(buf, sizeof(buf), "%" PRId64, val);

	rec_key(key);
	rec_put(buf, (size_t)n);
}

void audit_end(void)
{
	if (rec_overflow)
		audit_str("truncated", "true");
	memcpy(rec + rec_len, "}\n", 2);	/* rec_put kept room */
	rec_len += 2;
	if (batch_len + rec_len > sizeof(batch))
		audit_flush();
	if (batch_len + rec_len > sizeof(batch)) {
		n_dropped++;
		return;
	}
	memcpy(batch + batch_len, rec, rec_len);
	batch_len += rec_len;
	n_written++;
}

uint64_t audit_written(void)
{
	return n_written;
}

uint64_t audit_dropped(void)
{
	return n_dropped;
}
