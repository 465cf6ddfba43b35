// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Copyright (c) 2026 The lanyard authors */
/*
 * Find the TLS library copies a process runs (for the uprobes of bpf/tls.bpf.c) and the
 * TLS stacks that cannot be observed that way.  ELF symbols through libelf, mappings
 * through /proc/PID/maps, files through /proc/PID/root so that containers work.
 */
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "lanyard/abi.h"
#include "procscan.h"

/*
 * Files come from workloads: lanyardd's event loop must not block, fault or spend long on
 * them.  ELF_C_READ copies what libelf reads (ELF_C_READ_MMAP would let a workload
 * truncate the file under the mapping and SIGBUS lanyardd); the size cap bounds that copy
 * and the time spent: the largest real TLS carriers (libjvm.so, a browser, a static Go or
 * Rust binary) are a few hundred MiB at most, and a bigger file is skipped rather than
 * read on the event loop.
 */
#define PROCSCAN_FILE_MAX	(512ull << 20)
#define PROCSCAN_SYMS_MAX	(4u << 20)	/* symbols read from one table */
#define PROCSCAN_CACHE		1024		/* classified files, direct-mapped */

/* A file mapped executable, by the identity /proc/PID/maps gives it. */
struct mapped {
	unsigned long dev;	/* makedev(major, minor) as maps prints it */
	unsigned long ino;
};

/* One classified file. */
struct cache_ent {
	struct procscan_key key;
	int rc;				/* procscan_file's answer: 0 or -ENOEXEC */
	struct procscan_elf elf;	/* jvm is by path: set by the caller */
	bool used;
};

static struct cache_ent cache[PROCSCAN_CACHE];
static uint64_t cache_hits, cache_misses;

/* What one process's mapped files add up to, for the unobservable rules. */
struct scan_acc {
	bool openssl, go, jvm, rustls;
	char go_file[64], rustls_file[64];	/* base names, for the reason */
};

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');

	return s ? s + 1 : path;
}

/*
 * Rust mangles the crate name, length-prefixed, into every symbol: legacy _ZN6rustls...,
 * v0 _R...6rustls...; rustls-ffi exports a C API named rustls_*.  A C function that only
 * has "rustls" inside its name is not one.
 */
static bool is_rustls_sym(const char *name)
{
	if (!strncmp(name, "_ZN6rustls", 10) || !strncmp(name, "rustls_", 7))
		return true;
	return name[0] == '_' && name[1] == 'R' && strstr(name, "6rustls");
}

/*
 * One walk over a file's symbols, shared by the classification and the offset lookup:
 * what the caller asks (sym, arg) and what the walk holds and notes on the way.
 */
struct elf_walk {
	/* called on each defined, named symbol; true stops the walk */
	bool (*sym)(struct elf_walk *w, const char *name, const GElf_Sym *s);
	void *arg;		/* the caller's, for sym */
	Elf *elf;		/* the file, while the walk runs */
	uint64_t size;		/* its size: offsets must be inside it */
	bool go;		/* has .go.buildinfo or .gopclntab */
};

/*
 * The one test of "this file defines function X", for procscan_file's classification as
 * for procscan_funcs' offsets, so that a file classified as OpenSSL or GnuTLS has its write
 * function to probe.  The file offset of sym's code, or 0 when a uprobe there would not
 * probe the function:
 *  - STT_FUNC only: an STT_GNU_IFUNC symbol's value is its resolver, which runs once when
 *    the dynamic linker binds the name; the function the callers get is elsewhere;
 *  - any binding: a local symbol of .symtab (a static binary's, or a library's that links
 *    OpenSSL in with hidden visibility) is that function's code as much as a global one;
 *  - inside an executable section (not SHN_ABS, SHN_COMMON or an escaped index) that is
 *    itself inside the file: the offset is where the kernel puts the breakpoint.
 */
static uint64_t elf_func_off(const struct elf_walk *w, const GElf_Sym *sym)
{
	Elf_Scn *scn;
	GElf_Shdr sh;

	if (GELF_ST_TYPE(sym->st_info) != STT_FUNC || sym->st_shndx == SHN_UNDEF ||
	    sym->st_shndx >= SHN_LORESERVE)
		return 0;
	scn = elf_getscn(w->elf, sym->st_shndx);
	if (!scn || !gelf_getshdr(scn, &sh) || sh.sh_type != SHT_PROGBITS ||
	    !(sh.sh_flags & SHF_EXECINSTR) || sh.sh_offset > w->size ||
	    sh.sh_size > w->size - sh.sh_offset || sym->st_value < sh.sh_addr ||
	    sym->st_value - sh.sh_addr >= sh.sh_size)
		return 0;
	return sym->st_value - sh.sh_addr + sh.sh_offset;
}

/*
 * A symbol table whose header does not add up (entry size not the class's Elf_Sym, size
 * not a multiple of it, more than PROCSCAN_SYMS_MAX entries, data shorter than said) is
 * skipped: it is a crafted or broken file, not a TLS library.
 */
static size_t syms_count(Elf *elf, const GElf_Shdr *sh)
{
	size_t ent = gelf_getclass(elf) == ELFCLASS64 ? sizeof(Elf64_Sym) : sizeof(Elf32_Sym);

	if (sh->sh_entsize != ent || sh->sh_size % ent || sh->sh_size / ent > PROCSCAN_SYMS_MAX)
		return 0;
	return sh->sh_size / ent;
}

/*
 * w->sym on each symbol of the table scn (NULL: none) until it returns true; true when it
 * did.  Defined symbols only: an importer of SSL_write (libcurl) is not a copy of OpenSSL.
 */
static bool elf_walk_table(struct elf_walk *w, Elf_Scn *scn)
{
	Elf_Data *data;
	GElf_Shdr sh;
	size_t i, n;

	if (!scn || !gelf_getshdr(scn, &sh))
		return false;
	n = syms_count(w->elf, &sh);	/* checked before libelf reads (copies) the table */
	data = n ? elf_getdata(scn, NULL) : NULL;
	if (!data || data->d_size < sh.sh_size)
		return false;
	for (i = 1; i < n; i++) {
		GElf_Sym sym;
		const char *name;

		if (!gelf_getsym(data, (int)i, &sym) || sym.st_shndx == SHN_UNDEF || !sym.st_name)
			continue;
		name = elf_strptr(w->elf, sh.sh_link, sym.st_name);
		if (name && w->sym(w, name, &sym))
			return true;
	}
	return false;
}

/* The first .dynsym and .symtab, and the Go sections.  0, or -ENOEXEC. */
static int elf_walk_sections(struct elf_walk *w, Elf_Scn **dynsym, Elf_Scn **symtab)
{
	Elf_Scn *scn = NULL;
	size_t shstrndx;

	if (elf_kind(w->elf) != ELF_K_ELF || elf_getshdrstrndx(w->elf, &shstrndx))
		return -ENOEXEC;
	while ((scn = elf_nextscn(w->elf, scn))) {
		GElf_Shdr sh;
		const char *name;

		if (!gelf_getshdr(scn, &sh))
			return -ENOEXEC;
		name = elf_strptr(w->elf, shstrndx, sh.sh_name);
		/* stripped Go binaries keep these two: the runtime needs them */
		if (name && (!strcmp(name, ".go.buildinfo") || !strcmp(name, ".gopclntab")))
			w->go = true;
		if (sh.sh_type == SHT_DYNSYM && !*dynsym)
			*dynsym = scn;
		else if (sh.sh_type == SHT_SYMTAB && !*symtab)
			*symtab = scn;
	}
	return 0;
}

/*
 * Read the ELF file fd (st: its fstat) and call w->sym on the symbols of .dynsym, then of
 * .symtab unless w->sym stopped the walk: a shared library answers from its small .dynsym.
 * 0, -ENOEXEC (not ELF), -EFBIG over PROCSCAN_FILE_MAX, or -EINVAL (libelf unusable).
 */
static int elf_walk(int fd, const struct stat *st, struct elf_walk *w)
{
	Elf_Scn *dynsym = NULL, *symtab = NULL;
	int err;

	w->size = (uint64_t)st->st_size;
	if (w->size > PROCSCAN_FILE_MAX)
		return -EFBIG;
	if (elf_version(EV_CURRENT) == EV_NONE)
		return -EINVAL;
	w->elf = elf_begin(fd, ELF_C_READ, NULL);
	err = w->elf ? elf_walk_sections(w, &dynsym, &symtab) : -ENOEXEC;
	if (!err && !elf_walk_table(w, dynsym))
		elf_walk_table(w, symtab);
	elf_end(w->elf);
	w->elf = NULL;
	return err;
}

/* procscan_file's symbols: the write functions, runtime.main, rustls.  True: stop. */
static bool sym_classify(struct elf_walk *w, const char *name, const GElf_Sym *sym)
{
	struct procscan_elf *out = w->arg;

	if (!strcmp(name, "SSL_write") && elf_func_off(w, sym))
		out->libs |= 1u << LY_LIB_OPENSSL;
	else if (!strcmp(name, "gnutls_record_send") && elf_func_off(w, sym))
		out->libs |= 1u << LY_LIB_GNUTLS;
	else if (!strcmp(name, "runtime.main") && elf_func_off(w, sym))
		out->go = true;
	if (!out->rustls && is_rustls_sym(name))
		out->rustls = true;
	/* the first write function tells where to attach: .symtab is not read after it */
	return out->libs != 0;
}

static struct cache_ent *cache_slot(const struct stat *st)
{
	uint64_t h = ((uint64_t)st->st_dev * 0x9e3779b97f4a7c15ull) ^ (uint64_t)st->st_ino ^
		     ((uint64_t)st->st_size << 17) ^ (uint64_t)st->st_mtim.tv_nsec;

	h ^= h >> 29;
	return &cache[h % PROCSCAN_CACHE];
}

void procscan_key(const struct stat *st, struct procscan_key *key)
{
	*key = (struct procscan_key){
		.dev = st->st_dev, .ino = st->st_ino, .size = (uint64_t)st->st_size,
		.mtime_s = st->st_mtim.tv_sec, .mtime_ns = st->st_mtim.tv_nsec,
		.ctime_s = st->st_ctim.tv_sec, .ctime_ns = st->st_ctim.tv_nsec,
	};
}

static bool cache_is(const struct cache_ent *e, const struct stat *st)
{
	struct procscan_key key;

	procscan_key(st, &key);
	return e->used && !memcmp(&e->key, &key, sizeof(key));
}

/* Classify an open regular file (st: its fstat), from the cache when it was seen. */
static int fd_classify(int fd, const struct stat *st, struct procscan_elf *out)
{
	struct cache_ent *e = cache_slot(st);
	struct elf_walk w = { .sym = sym_classify, .arg = out };
	int err;

	if (cache_is(e, st)) {
		cache_hits++;
		*out = e->elf;
		return e->rc;
	}
	cache_misses++;
	err = elf_walk(fd, st, &w);
	if (err && err != -ENOEXEC)
		return err;	/* not cached: -EFBIG or -EINVAL says nothing about the bytes */
	out->go |= !err && w.go;
	*e = (struct cache_ent){ .rc = err, .elf = *out, .used = true };
	procscan_key(st, &e->key);
	return err;
}

/* What procscan_funcs looks for, and the offsets found so far. */
struct funcs_find {
	const char *const *names;
	uint64_t *off;
	size_t n, found;
};

/* A function of names not found yet takes sym's offset.  True: all are found. */
static bool sym_find(struct elf_walk *w, const char *name, const GElf_Sym *sym)
{
	struct funcs_find *q = w->arg;
	size_t j;

	for (j = 0; j < q->n; j++) {
		if (q->off[j] || strcmp(name, q->names[j]))
			continue;
		q->off[j] = elf_func_off(w, sym);
		q->found += q->off[j] != 0;
		break;
	}
	return q->found == q->n;
}

int procscan_funcs(int fd, const char *const names[], size_t n, uint64_t off[])
{
	struct funcs_find q = { .names = names, .off = off, .n = n };
	struct elf_walk w = { .sym = sym_find, .arg = &q };
	struct stat st;
	int err;

	memset(off, 0, n * sizeof(off[0]));
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -ENOEXEC;
	err = elf_walk(fd, &st, &w);
	return err ? err : (int)q.found;
}

/*
 * Open a file a workload may control: never a FIFO's or a device's open that blocks or
 * acts (O_NONBLOCK, O_NOCTTY), only a regular file.  The fd, with *st, or -errno.
 */
static int open_regular(const char *path, struct stat *st)
{
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);

	int err = 0;

	if (fd < 0)
		return -errno;
	if (fstat(fd, st) < 0)
		err = -errno;
	else if (!S_ISREG(st->st_mode))
		err = -ENOEXEC;
	if (err) {
		close(fd);
		return err;
	}
	return fd;
}

int procscan_file(const char *path, struct procscan_elf *out)
{
	struct stat st;
	int fd, err;

	memset(out, 0, sizeof(*out));
	fd = open_regular(path, &st);
	if (fd < 0)
		return fd;
	err = fd_classify(fd, &st, out);
	out->jvm = !strcmp(base_name(path), "libjvm.so");
	close(fd);
	return err;
}

void procscan_cache_stats(uint64_t *hits, uint64_t *misses)
{
	*hits = cache_hits;
	*misses = cache_misses;
}

/* Append a target unless its inode is already listed; -ENOSPC when full. */
static int add_target(struct procscan_result *out, const char *path, const struct stat *st,
		      unsigned libs)
{
	struct procscan_target *t;
	size_t i;

	for (i = 0; i < out->n; i++) {
		if (out->t[i].dev == (uint64_t)st->st_dev && out->t[i].ino == (uint64_t)st->st_ino) {
			out->t[i].libs |= libs;
			return 0;
		}
	}
	if (out->n == PROCSCAN_MAX)
		return -ENOSPC;
	if (strlen(path) >= sizeof(t->path))
		return -ENAMETOOLONG;
	t = &out->t[out->n++];
	strcpy(t->path, path);
	t->dev = st->st_dev;
	t->ino = st->st_ino;
	t->libs = libs;
	return 0;
}

/* The open file is the one maps named (the path may have been swapped since). */
static bool is_mapped(const struct stat *st, const struct mapped *m)
{
	return (unsigned long)st->st_ino == m->ino &&
	       (((unsigned long)major(st->st_dev) << 20) | minor(st->st_dev)) == m->dev;
}

/*
 * Open the file mapped at [start, end): through the process's root when that still names
 * the mapped inode, else through map_files (the mapping itself: a library deleted or
 * replaced by an upgrade after the process loaded it).  Either way the open file's device
 * and inode must be the ones maps gave.  The fd with out and *st filled, or -errno.
 */
static int mapped_open(pid_t pid, unsigned long start, unsigned long end, const char *mpath,
		       const struct mapped *m, char *out, size_t len, struct stat *st)
{
	size_t n = strlen(mpath);
	bool deleted = n > 10 && !strcmp(mpath + n - 10, " (deleted)");
	int r, fd;

	r = snprintf(out, len, "/proc/%d/root%s", (int)pid, mpath);
	if (!deleted && r > 0 && (size_t)r < len) {
		fd = open_regular(out, st);
		if (fd >= 0 && is_mapped(st, m))
			return fd;
		if (fd >= 0)
			close(fd);
	}
	/* overlayfs: maps shows the real inode, stat the overlay's; map_files has the file */
	r = snprintf(out, len, "/proc/%d/map_files/%lx-%lx", (int)pid, start, end);
	if (r < 0 || (size_t)r >= len)
		return -ENAMETOOLONG;
	fd = open_regular(out, st);
	if (fd >= 0 && !is_mapped(st, m)) {
		close(fd);
		return -ESTALE;
	}
	return fd;
}

/* Prefer the host path when it is the same file: it outlives the process. */
static void host_path_if_same(const char *mpath, char *path, const struct stat *st)
{
	struct stat hst;

	if (strncmp(path, "/proc/", 6) || strstr(path, "/map_files/"))
		return;
	if (!stat(mpath, &hst) && hst.st_dev == st->st_dev && hst.st_ino == st->st_ino &&
	    strlen(mpath) < PATH_MAX)
		strcpy(path, mpath);
}

static void scan_mapping(pid_t pid, unsigned long start, unsigned long end, const char *mpath,
			 const struct mapped *m, struct procscan_result *out, struct scan_acc *acc)
{
	char path[PATH_MAX];
	struct procscan_elf e = { 0 };
	struct stat st;
	int fd, err;

	fd = mapped_open(pid, start, end, mpath, m, path, sizeof(path), &st);
	if (fd < 0)
		return;
	err = fd_classify(fd, &st, &e);
	close(fd);
	if (err)
		return;
	e.jvm = !strcmp(base_name(mpath), "libjvm.so");
	if (e.libs) {
		host_path_if_same(mpath, path, &st);
		add_target(out, path, &st, e.libs);
		acc->openssl |= !!(e.libs & (1u << LY_LIB_OPENSSL));
	}
	if (e.go && !acc->go) {
		acc->go = true;
		snprintf(acc->go_file, sizeof(acc->go_file), "%s", base_name(mpath));
	}
	if (e.rustls && !acc->rustls) {
		acc->rustls = true;
		snprintf(acc->rustls_file, sizeof(acc->rustls_file), "%s", base_name(mpath));
	}
	acc->jvm |= e.jvm;
}

static bool seen_add(struct mapped **seen, size_t *n, size_t *cap, unsigned long dev,
		     unsigned long ino)
{
	struct mapped *m;
	size_t i;

	for (i = 0; i < *n; i++)
		if ((*seen)[i].dev == dev && (*seen)[i].ino == ino)
			return true;
	if (*n == *cap) {
		m = realloc(*seen, (*cap ? *cap * 2 : 64) * sizeof(*m));
		if (!m)
			return true;	/* out of memory: skip the file rather than fail */
		*seen = m;
		*cap = *cap ? *cap * 2 : 64;
	}
	(*seen)[(*n)++] = (struct mapped){ .dev = dev, .ino = ino };
	return false;
}

/* "start-end perms offset major:minor inode   path"; only executable file mappings. */
static int scan_maps(pid_t pid, struct procscan_result *out, struct scan_acc *acc)
{
	struct mapped *seen = NULL;
	size_t nseen = 0, cap = 0, lcap = 0;
	char p[64], *line = NULL;
	FILE *f;

	snprintf(p, sizeof(p), "/proc/%d/maps", (int)pid);
	f = fopen(p, "re");
	if (!f)
		return errno == ENOENT ? -ESRCH : -errno;
	while (getline(&line, &lcap, f) > 0) {
		unsigned long start, end, ino;
		unsigned int maj, min;
		struct mapped m;
		char perms[8];
		int off = 0;

		if (sscanf(line, "%lx-%lx %7s %*x %x:%x %lu %n", &start, &end, perms, &maj, &min,
			   &ino, &off) != 6 || !off)
			continue;
		line[strcspn(line, "\n")] = '\0';
		if (!strchr(perms, 'x') || !ino || line[off] != '/')
			continue;
		m = (struct mapped){ .dev = ((unsigned long)maj << 20) | min, .ino = ino };
		if (seen_add(&seen, &nseen, &cap, m.dev, m.ino))
			continue;
		scan_mapping(pid, start, end, line + off, &m, out, acc);
	}
	free(line);
	free(seen);
	fclose(f);
	return 0;
}

static void set_unobservable(struct procscan_result *out, const struct scan_acc *acc)
{
	if (acc->go && !acc->openssl) {
		out->unobservable = "go crypto/tls";
		snprintf(out->reason, sizeof(out->reason),
			 "Go binary (%s: .go.buildinfo/runtime.main) without libssl: "
			 "crypto/tls is compiled into the program", acc->go_file);
	} else if (acc->jvm) {
		out->unobservable = "java jsse";
		snprintf(out->reason, sizeof(out->reason),
			 "JVM (libjvm.so mapped): JSSE runs as Java code, not in a TLS library");
	} else if (acc->rustls) {
		out->unobservable = "rustls";
		snprintf(out->reason, sizeof(out->reason),
			 "rustls symbols in %s: Rust TLS compiled into the program",
			 acc->rustls_file);
	}
}

int procscan_pid(pid_t pid, struct procscan_result *out)
{
	struct scan_acc acc = { 0 };
	char p[64];
	ssize_t n;
	int err;

	memset(out, 0, sizeof(*out));
	if (pid <= 0)
		return -EINVAL;
	snprintf(p, sizeof(p), "/proc/%d/exe", (int)pid);
	n = readlink(p, out->exe, sizeof(out->exe) - 1);
	if (n < 0 && errno != ENOENT)	/* ENOENT: a kernel thread, or gone (maps says) */
		return errno == ESRCH ? -ESRCH : -errno;
	out->exe[n > 0 ? n : 0] = '\0';
	err = scan_maps(pid, out, &acc);
	if (err)
		return err;
	set_unobservable(out, &acc);
	return 0;
}

int procscan_system_libs(struct procscan_result *out)
{
	static const char *const dirs[] = {
#if defined(__x86_64__)
		"/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu",
#elif defined(__aarch64__)
		"/usr/lib/aarch64-linux-gnu", "/lib/aarch64-linux-gnu",
#endif
		"/usr/lib64", "/lib64", "/usr/lib", "/lib", "/usr/local/lib64", "/usr/local/lib",
	};
	static const char *const names[] = { "libssl.so.3", "libssl.so.1.1", "libgnutls.so.30" };
	size_t d, i;

	memset(out, 0, sizeof(*out));
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		for (d = 0; d < sizeof(dirs) / sizeof(dirs[0]); d++) {
			char path[PATH_MAX];
			struct procscan_elf e;
			struct stat st;

			snprintf(path, sizeof(path), "%s/%s", dirs[d], names[i]);
			if (stat(path, &st) || procscan_file(path, &e) || !e.libs)
				continue;
			add_target(out, path, &st, e.libs);
		}
	}
	return 0;
}
