/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Copyright (c) 2026 The lanyard authors */
/*
 * Which files a process runs its TLS in: the OpenSSL and GnuTLS copies it maps
 * (shared libraries, or an executable with the library linked in statically),
 * found by symbol lookup in /proc/PID/maps' files, and the TLS stacks that
 * uprobes cannot observe (Go crypto/tls, Java JSSE, rustls).  Read-only: it
 * opens files and /proc entries, never the process's memory.
 */
#ifndef LY_PROCSCAN_H
#define LY_PROCSCAN_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define PROCSCAN_MAX 8

struct procscan_target {
	/*
	 * Path to attach uprobes to, valid in lanyardd's mount namespace: the host
	 * path when it names the very file the process maps, else
	 * "/proc/<pid>/root/<path in the process's mount ns>", or
	 * "/proc/<pid>/map_files/<range>" when the mapped file was deleted or replaced.
	 */
	char path[PATH_MAX];
	uint64_t dev, ino;	/* identity of the file (stat of path): attach once per inode */
	unsigned libs;		/* (1u << LY_LIB_OPENSSL) and/or (1u << LY_LIB_GNUTLS) */
};

struct procscan_result {
	struct procscan_target t[PROCSCAN_MAX];
	size_t n;
	char exe[PATH_MAX];	/* readlink /proc/pid/exe; "" for kernel threads */
	const char *unobservable;  /* NULL, or a static string: "go crypto/tls", "java jsse",
				      "rustls" */
	char reason[160];	/* why unobservable (e.g. "Go binary (.go.buildinfo) without libssl") */
};

/* What one ELF file holds (procscan_file). */
struct procscan_elf {
	unsigned libs;		/* LY_LIB_OPENSSL: defines SSL_write; LY_LIB_GNUTLS: defines
				   gnutls_record_send (in .dynsym or .symtab, as
				   procscan_funcs finds functions) */
	bool go;		/* a Go program or c-shared library (.go.buildinfo, runtime.main) */
	bool rustls;		/* defines symbols of the rustls crate */
	bool jvm;		/* is libjvm.so (by file name) */
};

/*
 * A file's identity for caches: the same key means the same bytes.  ctime too: a workload
 * can set mtime back (utimensat) after rewriting its file, not ctime.
 */
struct procscan_key {
	uint64_t dev, ino, size;
	int64_t mtime_s, mtime_ns, ctime_s, ctime_ns;
};

struct stat;
void procscan_key(const struct stat *st, struct procscan_key *key);

/*
 * The file offsets (what a uprobe is placed at) of the functions named in names[n], from
 * the STT_FUNC symbols of .dynsym, then .symtab, of any binding (a static binary's local
 * functions count; an STT_GNU_IFUNC symbol does not: its value is the resolver); 0 for a
 * function the file does not define in an executable section, inside the file.  The same
 * test as procscan_file's: a file classified as OpenSSL has an SSL_write offset here.
 * pread()s fd (ELF_C_READ, never mapped), with the limits of procscan_file.  The number
 * found, or -errno (-ENOEXEC: not ELF, -EFBIG over 512 MiB).
 */
int procscan_funcs(int fd, const char *const names[], size_t n, uint64_t off[]);

/*
 * Classify one file by its ELF sections and symbols.  0, -ENOEXEC when it is not a
 * regular ELF file (a FIFO or device is refused without blocking), -EFBIG over 512 MiB,
 * or -errno.  out is zeroed first.  Answers are cached per (dev, ino, size, mtime), up
 * to 1024 files, so that libc and libssl are not parsed again on every exec.  A symbol
 * table whose entry size, size or count (over 4M) does not add up is not read.
 */
int procscan_file(const char *path, struct procscan_elf *out);

/* Cache lookups so far that found a classified file, and those that did not. */
void procscan_cache_stats(uint64_t *hits, uint64_t *misses);

/*
 * Scan the files that process pid maps executable.  Fills out->t with up to
 * PROCSCAN_MAX distinct files (by dev, ino) that define OpenSSL or GnuTLS write
 * functions, out->exe, and out->unobservable / out->reason by these rules, first match:
 *   - a Go executable or library (section .go.buildinfo or .gopclntab, or symbol
 *     runtime.main) while no OpenSSL copy is mapped -> "go crypto/tls";
 *   - libjvm.so mapped -> "java jsse" (targets still listed: JNI code may use libssl);
 *   - a mapped file defines rustls symbols -> "rustls".
 * A process that exits during the scan gives -ESRCH; 0 otherwise (including kernel
 * threads: nothing mapped).  Files that cannot be read are skipped.
 */
int procscan_pid(pid_t pid, struct procscan_result *out);

/*
 * The host's shared TLS libraries that define the write functions: libssl.so.3,
 * libssl.so.1.1 and libgnutls.so.30 in the usual library folders, once per inode.
 * 0 (out->n may be 0), or -errno.
 */
int procscan_system_libs(struct procscan_result *out);

#endif /* LY_PROCSCAN_H */
