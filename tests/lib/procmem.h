// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Copyright (c) 2026 The lanyard authors */
/*
 * Search the memory of a live process for byte strings: every readable mapping listed in
 * /proc/PID/maps, read through /proc/PID/mem.  What proves that a credential or a private
 * key never reached an app's address space.
 */
#ifndef LANYARD_TESTS_PROCMEM_H
#define LANYARD_TESTS_PROCMEM_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* One byte string to look for; @label names it in messages (never print the bytes). */
struct h_needle {
	const void *p;
	size_t len;		/* 1 .. H_NEEDLE_MAX */
	const char *label;
};

#define H_NEEDLE_MAX 4096

/*
 * Read every readable mapping of @pid once and set found[i] for each of the @n needles that
 * occurs somewhere (a needle split across two reads of one mapping counts; across two
 * mappings it does not).  Parts of a mapping that cannot be read (EIO: [vvar], a file
 * mapping past its end) are skipped.  Needs ptrace read access to @pid (root).  The process
 * keeps running: scan one that waits.  Returns the number of bytes read, or -errno.
 */
long long h_proc_mem_scan(pid_t pid, const struct h_needle *needles, size_t n, bool *found);

/* 1 when @needle (@len bytes) occurs in @pid's memory, 0 when not, or -errno. */
int h_proc_mem_contains(pid_t pid, const void *needle, size_t len);

/* The byte at @addr in @pid's memory (0..255, what the process sees there), or -errno. */
int h_proc_mem_byte(pid_t pid, unsigned long addr);

#endif /* LANYARD_TESTS_PROCMEM_H */
