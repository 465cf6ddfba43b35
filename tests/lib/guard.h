/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Copyright (c) 2026 The lanyard authors */
/*
 * Guard-page buffers for parser tests: a copy of the input that ends exactly where a
 * PROT_NONE page begins, so a read past len faults at once (also without ASan).
 */
#ifndef LY_TESTS_GUARD_H
#define LY_TESTS_GUARD_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/*
 * Map enough pages for len bytes plus one PROT_NONE page and copy data so that its
 * last byte is the last byte before the guard.  Returns the copy (len 0: the guard
 * page itself), or NULL on failure.  Release with guard_free(ptr, len).
 */
static inline char *guard_copy(const void *data, size_t len)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	size_t body = (len + pg - 1) / pg * pg;
	char *map;

	map = mmap(NULL, body + pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (map == MAP_FAILED)
		return NULL;
	if (mprotect(map + body, pg, PROT_NONE)) {
		munmap(map, body + pg);
		return NULL;
	}
	if (len)
		memcpy(map + body - len, data, len);
	return map + body - len;
}

/* Unmap a buffer from guard_copy(); NULL is accepted. */
static inline void guard_free(char *ptr, size_t len)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	size_t body = (len + pg - 1) / pg * pg;

	if (ptr)
		munmap(ptr + len - body, body + pg);
}

#endif /* LY_TESTS_GUARD_H */
