// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Copyright (c) 2026 The lanyard authors */
/*
 * ly-cgexec: move this process into a cgroup2 cgroup, then exec a command.
 * Used by the tests, the demo and the bench to start an "enrolled workload".
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cgroupfs.h"

#define EXIT_USAGE 2
#define EXIT_EXEC 127 /* as env(1) and the shells report a command that cannot run */

static void usage(FILE *f)
{
	fprintf(f, "usage: ly-cgexec [--create] CGROUP_PATH -- CMD [ARGS...]\n"
		   "  CGROUP_PATH is relative to the cgroup2 mount (\"/lanyard/app\"), or an\n"
		   "  absolute path below it (\"/sys/fs/cgroup/unified/lanyard/app\").\n"
		   "  --create  make the cgroup (and its parents) when missing\n");
}

/* mkdir -p: each missing component in turn; EEXIST is success. */
static int mkdir_p(const char *path)
{
	char buf[PATH_MAX], *p;

	if (strlen(path) >= sizeof(buf))
		return -ENAMETOOLONG;
	strcpy(buf, path);
	for (p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, 0755) && errno != EEXIST)
		return -errno;
	return 0;
}

/*
 * Build the cgroup folder from the mount and the user's path.  ".." is refused so a
 * typo cannot escape the cgroup2 tree (and move the caller somewhere surprising).
 */
static int cgroup_dir(const char *mnt, const char *cg, char *out, size_t size)
{
	size_t mlen = strlen(mnt);
	int n;

	if (cg[0] != '/')
		return -EINVAL;
	if (strstr(cg, "/../") || (strlen(cg) >= 3 && !strcmp(cg + strlen(cg) - 3, "/..")))
		return -EINVAL;
	if (!strncmp(cg, mnt, mlen) && (cg[mlen] == '/' || cg[mlen] == '\0'))
		n = snprintf(out, size, "%s", cg);
	else
		n = snprintf(out, size, "%s%s", strcmp(mnt, "/") ? mnt : "", cg);
	if (n < 0 || (size_t)n >= size)
		return -ENAMETOOLONG;
	/* "/a/b/" and "/a/b" name the same cgroup. */
	while (n > 1 && out[n - 1] == '/')
		out[--n] = '\0';
	return 0;
}

/* Move the calling process: write its pid to <dir>/cgroup.procs. */
static int cgroup_join(const char *dir)
{
	char path[PATH_MAX], pid[32];
	int fd, len, err = 0;

	if (snprintf(path, sizeof(path), "%s/cgroup.procs", dir) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	len = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
	if (write(fd, pid, len) != len)
		err = -errno;
	close(fd);
	return err;
}

int main(int argc, char **argv)
{
	char mnt[PATH_MAX], dir[PATH_MAX];
	bool create = false;
	const char *cg;
	int i = 1, err;

	if (i < argc && (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))) {
		usage(stdout);
		return 0;
	}
	if (i < argc && !strcmp(argv[i], "--create")) {
		create = true;
		i++;
	}
	if (i + 2 >= argc || strcmp(argv[i + 1], "--") != 0) {
		usage(stderr);
		return EXIT_USAGE;
	}
	cg = argv[i];
	err = cgroupfs_mount(mnt, sizeof(mnt));
	if (err) {
		fprintf(stderr, "ly-cgexec: no cgroup2 mount in /proc/self/mountinfo: %s\n",
			strerror(-err));
		return 1;
	}
	err = cgroup_dir(mnt, cg, dir, sizeof(dir));
	if (err) {
		fprintf(stderr, "ly-cgexec: bad cgroup path '%s': %s (want '/a/b' for %s/a/b)\n",
			cg, strerror(-err), mnt);
		return EXIT_USAGE;
	}
	if (create && (err = mkdir_p(dir))) {
		fprintf(stderr, "ly-cgexec: mkdir %s: %s\n", dir, strerror(-err));
		return 1;
	}
	err = cgroup_join(dir);
	if (err) {
		fprintf(stderr, "ly-cgexec: join %s: %s%s\n", dir, strerror(-err),
			err == -ENOENT && !create ? " (use --create to make it)" : "");
		return 1;
	}
	execvp(argv[i + 2], &argv[i + 2]);
	fprintf(stderr, "ly-cgexec: exec %s: %s\n", argv[i + 2], strerror(errno));
	return EXIT_EXEC;
}
