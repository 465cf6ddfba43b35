// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Copyright (c) 2026 The lanyard authors */
/*
 * Search a live process's memory (/proc/PID/maps + /proc/PID/mem) for byte strings.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/procmem.h"

#define CHUNK (4u << 20)	/* bytes read per pread() of a mapping */

struct scan {
	int mem;
	const struct h_needle *nd;
	size_t n;
	bool *found;
	char *buf;		/* CHUNK + the tail kept from the previous read */
	size_t keep;		/* longest needle - 1: what a split match needs */
	long long total;
};

static void scan_buf(struct scan *s, size_t len)
{
	for (size_t i = 0; i < s->n; i++)
		if (!s->found[i] && memmem(s->buf, len, s->nd[i].p, s->nd[i].len))
			s->found[i] = true;
}

/* One mapping [start, end): read it in chunks, keeping a tail so no match is cut in two. */
static void scan_range(struct scan *s, uint64_t start, uint64_t end)
{
	size_t have = 0;

	/* pread() takes an off_t: [vsyscall] lies above it (and holds nothing of the app's) */
	if (end > (uint64_t)INT64_MAX)
		return;
	for (uint64_t off = start; off < end;) {
		size_t want = end - off < CHUNK ? (size_t)(end - off) : CHUNK;
		ssize_t r = pread(s->mem, s->buf + have, want, (off_t)off);

		if (r <= 0)
			return;	/* EIO: [vvar], or a file mapping beyond its file's end */
		off += (uint64_t)r;
		have += (size_t)r;
		s->total += r;
		scan_buf(s, have);
		if (have > s->keep) {
			memmove(s->buf, s->buf + have - s->keep, s->keep);
			have = s->keep;
		}
	}
}

long long h_proc_mem_scan(pid_t pid, const struct h_needle *needles, size_t n, bool *found)
{
	struct scan s = { .mem = -1, .nd = needles, .n = n, .found = found };
	char path[64], line[4096];
	FILE *maps = NULL;
	long long ret;

	for (size_t i = 0; i < n; i++) {
		if (!needles[i].len || needles[i].len > H_NEEDLE_MAX)
			return -EINVAL;
		if (needles[i].len - 1 > s.keep)
			s.keep = needles[i].len - 1;
		found[i] = false;
	}
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	maps = fopen(path, "re");
	if (!maps) {
		ret = -errno;
		goto cleanup;
	}
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)pid);
	s.mem = open(path, O_RDONLY | O_CLOEXEC);
	if (s.mem < 0) {
		ret = -errno;
		goto cleanup;
	}
	s.buf = malloc(CHUNK + s.keep);
	if (!s.buf) {
		ret = -ENOMEM;
		goto cleanup;
	}
	while (fgets(line, sizeof(line), maps)) {
		unsigned long long start, end;
		char perms[8];

		if (sscanf(line, "%llx-%llx %7s", &start, &end, perms) != 3) {
			ret = -EPROTO;
			goto cleanup;
		}
		if (perms[0] == 'r')
			scan_range(&s, start, end);
	}
	ret = s.total;
cleanup:
	free(s.buf);
	if (s.mem >= 0)
		close(s.mem);
	if (maps)
		fclose(maps);
	return ret;
}

int h_proc_mem_contains(pid_t pid, const void *needle, size_t len)
{
	struct h_needle nd = { .p = needle, .len = len, .label = "needle" };
	bool found = false;
	long long r = h_proc_mem_scan(pid, &nd, 1, &found);

	return r < 0 ? (int)r : found;
}

int h_proc_mem_byte(pid_t pid, unsigned long addr)
{
	char path[64];
	unsigned char b;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/mem", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = pread(fd, &b, 1, (off_t)addr);
	close(fd);
	if (n < 0)
		return -errno;
	return n == 1 ? b : -EIO;
}
