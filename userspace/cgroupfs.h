/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Copyright (c) 2026 The lanyard authors */
/*
 * Where the cgroup2 hierarchy is mounted: /sys/fs/cgroup on a unified host,
 * /sys/fs/cgroup/unified on a hybrid one; neither is assumed.  Shared by
 * lanyardd, ly-cgexec and the test harness.
 */
#ifndef LY_CGROUPFS_H
#define LY_CGROUPFS_H

#include <stddef.h>

/*
 * The mount point of the cgroup2 root ("/") from /proc/self/mountinfo into
 * out.  0, -ENOENT when there is none, -ENAMETOOLONG, or -errno.
 */
int cgroupfs_mount(char *out, size_t len);

#endif /* LY_CGROUPFS_H */
