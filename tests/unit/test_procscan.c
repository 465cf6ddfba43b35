// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Copyright (c) 2026 The lanyard authors */
/*
 * Unit tests for userspace/procscan.c on real files and real processes: the host's libssl
 * and libgnutls, /bin/true, libcurl (imports SSL_write, defines none), the statically linked
 * ly-static-tls and the Go client ly-go-tls (build/tests/tools), python3 with ssl loaded,
 * small libraries compiled here to stand for rustls and libjvm.so, a library deleted after
 * it was loaded, and (as root) a library only visible in another mount namespace.
 */
#include <criterion/criterion.h>
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lanyard/abi.h"
#include "procscan.h"

TestSuite(procscan);

#define OPENSSL	(1u << LY_LIB_OPENSSL)
#define GNUTLS	(1u << LY_LIB_GNUTLS)

#if defined(__x86_64__)
#define LIBDIR "/usr/lib/x86_64-linux-gnu"
#elif defined(__aarch64__)
#define LIBDIR "/usr/lib/aarch64-linux-gnu"
#else
#error "add this architecture's multiarch library folder"
#endif

/* build/tests/tools/<name>, found from this binary (build/tests/unit/test_procscan). */
static const char *tool_path(const char *name)
{
	static char path[PATH_MAX];
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	cr_assert_gt(n, 0);
	exe[n] = '\0';
	snprintf(path, sizeof(path), "%s/tools/%s", dirname(dirname(exe)), name);
	cr_assert_eq(access(path, X_OK), 0, "%s not built (make tests)", path);
	return path;
}

/* Run argv with stdout on a pipe; returns once it printed a line with "ready". */
static pid_t spawn_ready(char *const argv[])
{
	char buf[256];
	size_t got = 0;
	int p[2];
	pid_t pid;

	cr_assert_eq(pipe(p), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (!pid) {
		dup2(p[1], STDOUT_FILENO);
		close(p[0]);
		close(p[1]);
		execv(argv[0], argv);
		_exit(127);
	}
	close(p[1]);
	while (got < sizeof(buf) - 1) {
		ssize_t r = read(p[0], buf + got, sizeof(buf) - 1 - got);

		if (r <= 0)
			break;
		got += (size_t)r;
		buf[got] = '\0';
		/* the whole line: a writer that gets EPIPE on its "\n" dies */
		if (strstr(buf, "ready") && strchr(strstr(buf, "ready"), '\n'))
			break;
	}
	close(p[0]);
	buf[got] = '\0';
	cr_assert(strstr(buf, "ready"), "%s did not start: \"%s\"", argv[0], buf);
	return pid;
}

static void reap(pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

static int run(char *const argv[])
{
	int st;
	pid_t pid = fork();

	cr_assert_geq(pid, 0);
	if (!pid) {
		execvp(argv[0], argv);
		_exit(127);
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* A shared library compiled with cc from the C source @code into @dir/@name. */
static const char *build_so(const char *dir, const char *name, const char *code)
{
	static char so[PATH_MAX];
	char src[PATH_MAX], *const argv[] = { "cc", "-shared", "-fPIC", "-o", so, src, NULL };
	FILE *f;

	snprintf(src, sizeof(src), "%s/%s.c", dir, name);
	snprintf(so, sizeof(so), "%s/%s", dir, name);
	f = fopen(src, "w");
	cr_assert_not_null(f);
	fputs(code, f);
	fclose(f);
	cr_assert_eq(run(argv), 0, "cc could not build %s", so);
	return so;
}

/* A shared library defining one function @sym, compiled with cc into @dir/@name. */
static const char *build_lib(const char *dir, const char *name, const char *sym)
{
	char code[512];

	snprintf(code, sizeof(code), "int %s(int x);\nint %s(int x) { return x + 1; }\n", sym,
		 sym);
	return build_so(dir, name, code);
}

static char *make_tmpdir(void)
{
	static char dir[] = "/tmp/ly-procscan.XXXXXX";

	cr_assert_not_null(mkdtemp(dir));
	return dir;
}

static void rm_tree(const char *dir)
{
	char *const argv[] = { "rm", "-rf", (char *)(uintptr_t)dir, NULL };

	run(argv);
}

static const struct procscan_target *find_target(const struct procscan_result *r, unsigned libs)
{
	size_t i;

	for (i = 0; i < r->n; i++)
		if (r->t[i].libs & libs)
			return &r->t[i];
	return NULL;
}

static bool same_file(const struct procscan_target *t, const char *path)
{
	struct stat st;

	return !stat(path, &st) && t->dev == (uint64_t)st.st_dev && t->ino == (uint64_t)st.st_ino;
}

/* ---- files ----------------------------------------------------------------------------- */

Test(procscan, libssl_defines_the_openssl_write)
{
	struct procscan_elf e;

	cr_assert_eq(procscan_file(LIBDIR "/libssl.so.3", &e), 0);
	cr_expect_eq(e.libs, OPENSSL);
	cr_expect(!e.go && !e.rustls && !e.jvm);
}

Test(procscan, libgnutls_defines_the_gnutls_write)
{
	struct procscan_elf e;

	cr_assert_eq(procscan_file(LIBDIR "/libgnutls.so.30", &e), 0);
	cr_expect_eq(e.libs, GNUTLS);
	cr_expect(!e.go && !e.rustls);
}

Test(procscan, importer_of_ssl_write_is_not_a_copy)
{
	struct procscan_elf e;

	/* libcurl calls SSL_write: an undefined symbol in its .dynsym */
	cr_assert_eq(procscan_file(LIBDIR "/libcurl.so.4", &e), 0);
	cr_expect_eq(e.libs, 0u);
	cr_assert_eq(procscan_file("/bin/true", &e), 0);
	cr_expect_eq(e.libs, 0u);
	cr_expect(!e.go && !e.rustls && !e.jvm);
}

Test(procscan, static_openssl_found_in_symtab)
{
	struct procscan_elf e;

	cr_assert_eq(procscan_file(tool_path("ly-static-tls"), &e), 0);
	cr_expect_eq(e.libs, OPENSSL);
	cr_expect(!e.go);
}

Test(procscan, go_binary_is_go)
{
	struct procscan_elf e;

	cr_assert_eq(procscan_file(tool_path("ly-go-tls"), &e), 0);
	cr_expect(e.go);
	cr_expect_eq(e.libs, 0u);
}

Test(procscan, rejects_non_elf_and_missing_files)
{
	struct procscan_elf e;

	cr_expect_eq(procscan_file("/etc/passwd", &e), -ENOEXEC);
	cr_expect_eq(procscan_file("/dev/null", &e), -ENOEXEC);
	cr_expect_eq(procscan_file("/proc/self", &e), -ENOEXEC);
	cr_expect_eq(procscan_file("/nonexistent/libssl.so.3", &e), -ENOENT);
}

/* ---- files a workload controls --------------------------------------------------------- */

Test(procscan, a_fifo_is_refused_without_blocking)
{
	char *dir = make_tmpdir(), path[PATH_MAX];
	struct procscan_elf e;

	snprintf(path, sizeof(path), "%s/libssl.so.3", dir);
	cr_assert_eq(mkfifo(path, 0644), 0);
	/* no writer: a blocking open would never return */
	cr_expect_eq(procscan_file(path, &e), -ENOEXEC);
	cr_expect_eq(e.libs, 0);
	rm_tree(dir);
}

/* Copy @src to @dst (a new inode), returning its bytes' length. */
static size_t copy_file(const char *src, const char *dst)
{
	char *const argv[] = { "cp", (char *)(uintptr_t)src, (char *)(uintptr_t)dst, NULL };
	struct stat st;

	cr_assert_eq(run(argv), 0);
	cr_assert_eq(stat(dst, &st), 0);
	return (size_t)st.st_size;
}

/* Set field @what of every symbol table's section header in the 64-bit ELF file @path. */
enum shdr_field { SH_ENTSIZE, SH_SIZE };

static void patch_symtabs(const char *path, enum shdr_field what, uint64_t val)
{
	FILE *f = fopen(path, "r+b");
	Elf64_Ehdr eh;
	int patched = 0;

	cr_assert_not_null(f);
	cr_assert_eq(fread(&eh, sizeof(eh), 1, f), 1);
	cr_assert_eq(eh.e_ident[EI_CLASS], ELFCLASS64);
	for (unsigned i = 0; i < eh.e_shnum; i++) {
		long off = (long)(eh.e_shoff + (uint64_t)i * eh.e_shentsize);
		Elf64_Shdr sh;

		cr_assert_eq(fseek(f, off, SEEK_SET), 0);
		cr_assert_eq(fread(&sh, sizeof(sh), 1, f), 1);
		if (sh.sh_type != SHT_SYMTAB && sh.sh_type != SHT_DYNSYM)
			continue;
		if (what == SH_ENTSIZE)
			sh.sh_entsize = val;
		else
			sh.sh_size = val;
		cr_assert_eq(fseek(f, off, SEEK_SET), 0);
		cr_assert_eq(fwrite(&sh, sizeof(sh), 1, f), 1);
		patched++;
	}
	cr_assert_geq(patched, 2, "no .dynsym and .symtab in %s", path);
	fclose(f);
}

/*
 * The offsets procscan_funcs gives for the uprobes are where the code of those functions
 * is: the file's bytes there are the bytes the dynamic linker mapped at dlsym()'s address
 * (from the second byte: the first may be a breakpoint of a lanyardd running on the host).
 */
static void expect_offsets_are_code(const char *lib, const char *const names[], size_t n)
{
	uint64_t off[8];
	void *h = dlopen(lib, RTLD_NOW | RTLD_NOLOAD) ?: dlopen(lib, RTLD_NOW);
	int fd = open(lib, O_RDONLY | O_CLOEXEC);

	cr_assert(h && fd >= 0 && n <= 8, "%s: %s", lib, dlerror());
	cr_assert_eq(procscan_funcs(fd, names, n, off), (int)n, "%s", lib);
	for (size_t i = 0; i < n; i++) {
		const unsigned char *code = dlsym(h, names[i]);
		unsigned char file[16];

		cr_assert(code, "%s: no %s", lib, names[i]);
		cr_assert_gt(off[i], 0);
		cr_assert_eq(pread(fd, file, sizeof(file), (off_t)off[i]), (ssize_t)sizeof(file));
		cr_expect_arr_eq(file + 1, code + 1, sizeof(file) - 1, "%s: %s at 0x%llx", lib,
				 names[i], (unsigned long long)off[i]);
	}
	close(fd);
	dlclose(h);
}

Test(procscan, function_offsets_are_the_mapped_code)
{
	static const char *const ssl[] = { "SSL_write", "SSL_write_ex", "SSL_ctrl",
					   "SSL_set_fd", "SSL_free" };
	static const char *const gnutls[] = { "gnutls_record_send", "gnutls_server_name_set",
					      "gnutls_transport_set_int2", "gnutls_deinit" };

	expect_offsets_are_code(LIBDIR "/libssl.so.3", ssl, 5);
	expect_offsets_are_code(LIBDIR "/libgnutls.so.30", gnutls, 4);
}

Test(procscan, function_offsets_of_what_a_file_does_not_define_are_zero)
{
	static const char *const names[] = { "SSL_write", "no_such_function", "gnutls_deinit" };
	uint64_t off[3];
	int fd = open(LIBDIR "/libcurl.so.4", O_RDONLY | O_CLOEXEC);

	/* libcurl imports SSL_write: undefined there, not a place to probe */
	cr_assert_geq(fd, 0);
	cr_expect_eq(procscan_funcs(fd, names, 3, off), 0);
	cr_expect(!off[0] && !off[1] && !off[2]);
	close(fd);
	fd = open(tool_path("ly-static-tls"), O_RDONLY | O_CLOEXEC);
	cr_assert_geq(fd, 0);
	cr_expect_eq(procscan_funcs(fd, names, 3, off), 1, "SSL_write in the static .symtab");
	cr_expect(off[0] && !off[1] && !off[2]);
	close(fd);
	fd = open("/etc/passwd", O_RDONLY | O_CLOEXEC);
	cr_assert_geq(fd, 0);
	cr_expect_eq(procscan_funcs(fd, names, 3, off), -ENOEXEC);
	close(fd);
}

/* How many of { SSL_write } procscan_funcs finds in path. */
static int offsets_found(const char *path)
{
	static const char *const names[] = { "SSL_write" };
	uint64_t off[1];
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc;

	cr_assert_geq(fd, 0);
	rc = procscan_funcs(fd, names, 1, off);
	close(fd);
	return rc;
}

Test(procscan, malformed_symbol_tables_are_not_read)
{
	static const struct {
		enum shdr_field what;
		uint64_t val;
		const char *why;
	} cases[] = {
		{ SH_ENTSIZE, 23, "entry size not sizeof(Elf64_Sym)" },
		{ SH_ENTSIZE, 0, "entry size 0" },
		{ SH_ENTSIZE, 2 * sizeof(Elf64_Sym), "entry size twice Elf64_Sym" },
		{ SH_SIZE, 100 * sizeof(Elf64_Sym) + 5, "size not a multiple of the entry" },
		{ SH_SIZE, (uint64_t)(4u << 20) * sizeof(Elf64_Sym) + sizeof(Elf64_Sym),
		  "more than 4M symbols" },
		{ SH_SIZE, UINT64_MAX / sizeof(Elf64_Sym) * sizeof(Elf64_Sym),
		  "size past the file" },
	};
	char *dir = make_tmpdir(), path[PATH_MAX];
	const char *so = build_lib(dir, "libgood.so", "SSL_write");
	struct procscan_elf e;

	cr_assert_eq(procscan_file(so, &e), 0);
	cr_assert_eq(e.libs, OPENSSL, "the unpatched copy defines SSL_write");
	cr_assert_eq(offsets_found(so), 1, "the unpatched copy's SSL_write offset");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(path, sizeof(path), "%s/libbad%zu.so", dir, i);
		copy_file(so, path);
		patch_symtabs(path, cases[i].what, cases[i].val);
		cr_expect_eq(procscan_file(path, &e), 0, "%s", cases[i].why);
		cr_expect_eq(e.libs, 0, "%s: symbols were read", cases[i].why);
		cr_expect_eq(offsets_found(path), 0, "%s: an offset was read", cases[i].why);
	}
	rm_tree(dir);
}

/*
 * procscan_file says a file defines SSL_write exactly when procscan_funcs has an offset to
 * probe for it: one test of "defines function X" for both.
 */
Test(procscan, classification_and_offsets_agree_on_ssl_write)
{
	static const struct {
		const char *code;
		unsigned libs;
		const char *why;
	} cases[] = {
		/* DEFINED */
		{ "int SSL_write(int x) { return x + 1; }\n", OPENSSL, "a global function" },
		{ "__attribute__((weak)) int SSL_write(int x) { return x + 1; }\n", OPENSSL,
		  "a weak function" },
		{ "__attribute__((used)) static int SSL_write(int x) { return x + 1; }\n",
		  OPENSSL, "a local function, in .symtab only" },
		/* NOT A PLACE TO PROBE */
		{ "static int impl(int x) { return x + 1; }\n"
		  "static int (*pick(void))(int) { return impl; }\n"
		  "int SSL_write(int x) __attribute__((ifunc(\"pick\")));\n", 0,
		  "an IFUNC: its value is the resolver" },
		{ "__asm__(\".pushsection .rodata\\n.globl SSL_write\\n"
		  ".type SSL_write, %function\\nSSL_write: .byte 0\\n.popsection\\n\");\n", 0,
		  "a function symbol in a section that is not executable" },
		{ "__asm__(\".pushsection .bss\\n.globl SSL_write\\n"
		  ".type SSL_write, %function\\nSSL_write: .zero 1\\n.popsection\\n\");\n", 0,
		  "a function symbol in .bss: no bytes in the file" },
		{ "__asm__(\".globl SSL_write\\n.type SSL_write, %function\\n"
		  ".set SSL_write, 0x1000\\n\");\n", 0, "an absolute function symbol" },
		{ "int SSL_write = 1;\n", 0, "a variable" },
	};
	char *dir = make_tmpdir(), name[32];
	struct procscan_elf e;
	const char *so;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(name, sizeof(name), "libcase%zu.so", i);
		so = build_so(dir, name, cases[i].code);
		cr_expect_eq(procscan_file(so, &e), 0, "%s", cases[i].why);
		cr_expect_eq(e.libs, cases[i].libs, "%s: classified %#x", cases[i].why, e.libs);
		cr_expect_eq(offsets_found(so), cases[i].libs ? 1 : 0, "%s: offsets",
			     cases[i].why);
	}
	rm_tree(dir);
}

Test(procscan, local_function_offset_is_its_code)
{
	static const char *const names[] = { "SSL_write", "ly_alias" };
	char *dir = make_tmpdir();
	const char *so = build_so(dir, "liblocal.so",
				  "static int SSL_write(int x) { return x + 1; }\n"
				  "int ly_alias(int x) __attribute__((alias(\"SSL_write\")));\n");
	uint64_t off[2];
	int fd = open(so, O_RDONLY | O_CLOEXEC);

	/* the local SSL_write of .symtab is where the exported alias's code is */
	cr_assert_geq(fd, 0);
	cr_expect_eq(procscan_funcs(fd, names, 2, off), 2);
	cr_expect(off[0] && off[0] == off[1], "SSL_write at 0x%llx, its alias at 0x%llx",
		  (unsigned long long)off[0], (unsigned long long)off[1]);
	close(fd);
	rm_tree(dir);
}

Test(procscan, real_files_agree_on_the_write_functions)
{
	static const char *const names[] = { "SSL_write", "gnutls_record_send" };
	const char *paths[] = { LIBDIR "/libssl.so.3", LIBDIR "/libgnutls.so.30",
				LIBDIR "/libcurl.so.4", "/bin/true", tool_path("ly-static-tls"),
				NULL };
	struct procscan_elf e;
	uint64_t off[2];

	for (size_t i = 0; paths[i]; i++) {
		int fd = open(paths[i], O_RDONLY | O_CLOEXEC);

		cr_assert_geq(fd, 0, "%s", paths[i]);
		cr_assert_geq(procscan_funcs(fd, names, 2, off), 0, "%s", paths[i]);
		close(fd);
		cr_assert_eq(procscan_file(paths[i], &e), 0, "%s", paths[i]);
		cr_expect_eq(!!(e.libs & OPENSSL), !!off[0], "%s: SSL_write", paths[i]);
		cr_expect_eq(!!(e.libs & GNUTLS), !!off[1], "%s: gnutls_record_send", paths[i]);
	}
}

Test(procscan, files_over_the_size_cap_are_skipped)
{
	char *dir = make_tmpdir(), path[PATH_MAX];
	struct procscan_elf e;

	snprintf(path, sizeof(path), "%s/libhuge.so", dir);
	copy_file(LIBDIR "/libssl.so.3", path);
	/* sparse: 513 MiB without the disk space */
	cr_assert_eq(truncate(path, (off_t)513 << 20), 0);
	cr_expect_eq(procscan_file(path, &e), -EFBIG);
	cr_expect_eq(e.libs, 0);
	rm_tree(dir);
}

Test(procscan, classification_is_cached_per_file_version)
{
	char *dir = make_tmpdir(), path[PATH_MAX];
	uint64_t h0, m0, h, m;
	struct timespec ts[2] = { { 0, UTIME_OMIT }, { 1000000000, 0 } };
	struct procscan_elf e;

	snprintf(path, sizeof(path), "%s/libcopy.so.3", dir);
	copy_file(LIBDIR "/libssl.so.3", path);
	procscan_cache_stats(&h0, &m0);
	cr_assert_eq(procscan_file(path, &e), 0);
	cr_expect_eq(e.libs, OPENSSL);
	procscan_cache_stats(&h, &m);
	cr_expect_eq(m, m0 + 1, "first sight parses");
	cr_expect_eq(h, h0);
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(procscan_file(path, &e), 0);
		cr_expect_eq(e.libs, OPENSSL, "the cached answer");
	}
	procscan_cache_stats(&h, &m);
	cr_expect_eq(h, h0 + 3, "the same file is not parsed again");
	cr_expect_eq(m, m0 + 1);

	/* a new mtime (or a new ctime) is a new version: parsed again */
	cr_assert_eq(utimensat(AT_FDCWD, path, ts, 0), 0);
	cr_assert_eq(procscan_file(path, &e), 0);
	procscan_cache_stats(&h, &m);
	cr_expect_eq(m, m0 + 2);
	usleep(20000);		/* ctime has the kernel's coarse clock: a tick apart */
	cr_assert_eq(chmod(path, 0600), 0);
	cr_assert_eq(procscan_file(path, &e), 0);
	procscan_cache_stats(&h, &m);
	cr_expect_eq(m, m0 + 3);

	/* rewritten in place with the same size and mtime: ctime differs, no stale answer */
	{
		struct stat st;
		FILE *f;

		usleep(20000);
		cr_assert_eq(stat(path, &st), 0);
		f = fopen(path, "r+b");
		cr_assert_not_null(f);
		cr_assert_eq(fwrite("\177ELX", 4, 1, f), 1);	/* not ELF any more */
		fclose(f);
		ts[0] = st.st_atim;
		ts[1] = st.st_mtim;
		cr_assert_eq(utimensat(AT_FDCWD, path, ts, 0), 0);
	}
	cr_expect_eq(procscan_file(path, &e), -ENOEXEC);
	rm_tree(dir);
}

Test(procscan, system_libs_once_per_inode)
{
	struct procscan_result r;
	const struct procscan_target *ssl, *gnutls;
	size_t i, j;

	cr_assert_eq(procscan_system_libs(&r), 0);
	ssl = find_target(&r, OPENSSL);
	gnutls = find_target(&r, GNUTLS);
	cr_assert_not_null(ssl);
	cr_assert_not_null(gnutls);
	cr_expect(same_file(ssl, LIBDIR "/libssl.so.3"), "%s", ssl->path);
	cr_expect(same_file(gnutls, LIBDIR "/libgnutls.so.30"), "%s", gnutls->path);
	cr_expect_null(r.unobservable);
	/* /lib -> /usr/lib on merged-/usr hosts: the same inode under two names */
	for (i = 0; i < r.n; i++)
		for (j = i + 1; j < r.n; j++)
			cr_expect(r.t[i].ino != r.t[j].ino || r.t[i].dev != r.t[j].dev);
}

/* ---- processes ------------------------------------------------------------------------- */

Test(procscan, python_maps_libssl)
{
	char *const argv[] = { "/usr/bin/python3", "-c",
			       "import ssl, sys, time; print('ready', flush=True); time.sleep(60)",
			       NULL };
	struct procscan_result r;
	const struct procscan_target *t;
	pid_t pid = spawn_ready(argv);
	int err = procscan_pid(pid, &r);

	reap(pid);
	cr_assert_eq(err, 0);
	cr_expect(!strncmp(r.exe, "/usr/bin/python3", 16), "exe %s", r.exe);
	t = find_target(&r, OPENSSL);
	cr_assert_not_null(t);
	/* the host path, since it is the very file mapped: it outlives the process */
	cr_expect_str_eq(t->path, LIBDIR "/libssl.so.3");
	cr_expect(same_file(t, LIBDIR "/libssl.so.3"));
	cr_expect_null(r.unobservable);
}

Test(procscan, static_client_is_its_own_target)
{
	const char *exe = tool_path("ly-static-tls");
	char *const argv[] = { (char *)(uintptr_t)exe, "--connect", "127.0.0.1:1", "--wait-file",
			       "/nonexistent/ly-procscan", NULL };
	struct procscan_result r;
	pid_t pid = spawn_ready(argv);
	int err = procscan_pid(pid, &r);
	char real[PATH_MAX];
	size_t i;

	reap(pid);
	cr_assert_eq(err, 0);
	cr_assert_not_null(realpath(exe, real));
	cr_expect_str_eq(r.exe, real);
	cr_assert_eq(r.n, 1, "targets: %zu", r.n);
	cr_expect_eq(r.t[0].libs, OPENSSL);
	cr_expect(same_file(&r.t[0], exe), "%s", r.t[0].path);
	for (i = 0; i < r.n; i++)
		cr_expect_null(strstr(r.t[i].path, "libssl.so"));
	cr_expect_null(r.unobservable);
}

Test(procscan, go_client_is_unobservable)
{
	char *const argv[] = { (char *)(uintptr_t)tool_path("ly-go-tls"), "-url",
			       "https://127.0.0.1:1/", "-wait-file", "/nonexistent/ly-procscan",
			       NULL };
	struct procscan_result r;
	pid_t pid = spawn_ready(argv);
	int err = procscan_pid(pid, &r);

	reap(pid);
	cr_assert_eq(err, 0);
	cr_expect_eq(r.n, 0u);
	cr_assert_not_null(r.unobservable);
	cr_expect_str_eq(r.unobservable, "go crypto/tls");
	cr_expect(strstr(r.reason, ".go.buildinfo") && strstr(r.reason, "ly-go-tls"), "%s",
		  r.reason);
}

Test(procscan, plain_process_has_nothing)
{
	char *const argv[] = { "/bin/sh", "-c", "echo ready; exec sleep 60", NULL };
	struct procscan_result r;
	pid_t pid = spawn_ready(argv);
	int err;

	usleep(100 * 1000);	/* let sh exec sleep */
	err = procscan_pid(pid, &r);
	reap(pid);
	cr_assert_eq(err, 0);
	cr_expect_eq(r.n, 0u);
	cr_expect_null(r.unobservable);
	cr_expect(strstr(r.exe, "sleep"), "exe %s", r.exe);
}

Test(procscan, exited_process_is_esrch)
{
	struct procscan_result r;
	pid_t pid = fork();

	cr_assert_geq(pid, 0);
	if (!pid)
		_exit(0);
	waitpid(pid, NULL, 0);
	cr_expect_eq(procscan_pid(pid, &r), -ESRCH);
	cr_expect_eq(procscan_pid(0, &r), -EINVAL);
}

Test(procscan, kernel_thread_has_nothing)
{
	struct procscan_result r;

	/* pid 2 is kthreadd: no exe, no mappings */
	cr_assert_eq(procscan_pid(2, &r), 0);
	cr_expect_eq(r.n, 0u);
	cr_expect_str_eq(r.exe, "");
}

Test(procscan, rustls_symbols_are_unobservable)
{
	char *dir = make_tmpdir();
	const char *so = build_lib(dir, "libapp_tls.so", "_ZN6rustls4conn10ConnectionE");
	struct procscan_result r;
	void *h = dlopen(so, RTLD_NOW);
	int err;

	cr_assert_not_null(h, "%s", dlerror());
	err = procscan_pid(getpid(), &r);
	dlclose(h);
	rm_tree(dir);
	cr_assert_eq(err, 0);
	cr_assert_not_null(r.unobservable);
	cr_expect_str_eq(r.unobservable, "rustls");
	cr_expect(strstr(r.reason, "libapp_tls.so"), "%s", r.reason);
	/* this test binary links libssl: still listed */
	cr_expect_not_null(find_target(&r, OPENSSL));
}

Test(procscan, jvm_is_unobservable)
{
	char *dir = make_tmpdir();
	const char *so = build_lib(dir, "libjvm.so", "JNI_CreateJavaVM");
	struct procscan_result r;
	void *h = dlopen(so, RTLD_NOW);
	int err;

	cr_assert_not_null(h, "%s", dlerror());
	err = procscan_pid(getpid(), &r);
	dlclose(h);
	rm_tree(dir);
	cr_assert_eq(err, 0);
	cr_assert_not_null(r.unobservable);
	cr_expect_str_eq(r.unobservable, "java jsse");
}

Test(procscan, deleted_library_through_map_files)
{
	char *dir = make_tmpdir(), copy[128], code[512];
	char *const cp[] = { "cp", LIBDIR "/libssl.so.3", copy, NULL };
	char *const argv[] = { "/usr/bin/python3", "-c", code, NULL };
	struct procscan_result r;
	const struct procscan_target *t;
	struct stat st;
	pid_t pid;
	int err;

	if (geteuid())
		cr_skip_test("map_files needs CAP_SYS_ADMIN");
	snprintf(copy, sizeof(copy), "%s/libssl.so.3", dir);
	cr_assert_eq(run(cp), 0);
	cr_assert_eq(stat(copy, &st), 0);
	/* load the copy, then delete it: maps says "(deleted)", the path names nothing */
	snprintf(code, sizeof(code),
		 "import ctypes, os, time; ctypes.CDLL('%s'); os.unlink('%s'); "
		 "print('ready', flush=True); time.sleep(60)", copy, copy);
	pid = spawn_ready(argv);
	err = procscan_pid(pid, &r);
	reap(pid);
	rm_tree(dir);
	cr_assert_eq(err, 0);
	t = find_target(&r, OPENSSL);
	cr_assert_not_null(t);
	cr_expect(strstr(t->path, "/map_files/"), "%s", t->path);
	cr_expect_eq(t->ino, (uint64_t)st.st_ino);
}

Test(procscan, library_in_another_mount_namespace)
{
	char *dir = make_tmpdir(), code[PATH_MAX * 2 + 400], want[PATH_MAX];
	char *const argv[] = { "/usr/bin/unshare", "-m", "--propagation", "private", "/bin/sh",
			       "-c", code, NULL };
	struct procscan_result r;
	const struct procscan_target *t;
	struct stat host_ssl;
	pid_t pid;
	int err;

	if (geteuid())
		cr_skip_test("unshare -m needs root");
	/* a tmpfs over dir exists only in the child's mount ns; the host sees dir empty */
	snprintf(code, sizeof(code),
		 "mount -t tmpfs none %s && cp " LIBDIR "/libssl.so.3 %s/ && exec /usr/bin/python3 "
		 "-c \"import ctypes, time; ctypes.CDLL('%s/libssl.so.3'); print('ready', "
		 "flush=True); time.sleep(60)\"", dir, dir, dir);
	pid = spawn_ready(argv);
	err = procscan_pid(pid, &r);
	reap(pid);
	rmdir(dir);
	cr_assert_eq(err, 0);
	cr_assert_eq(stat(LIBDIR "/libssl.so.3", &host_ssl), 0);
	snprintf(want, sizeof(want), "/proc/%d/root%s/libssl.so.3", (int)pid, dir);
	/* ssl is not imported: the only OpenSSL mapped is the copy in the private tmpfs */
	t = find_target(&r, OPENSSL);
	cr_assert_not_null(t);
	cr_expect_str_eq(t->path, want);
	cr_expect(t->ino != (uint64_t)host_ssl.st_ino || t->dev != (uint64_t)host_ssl.st_dev);
}
