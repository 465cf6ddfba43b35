/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Copyright (c) 2026 The lanyard authors */
/*
 * BPF-only odds and ends: errno values (vmlinux.h has no libc macros) and
 * the verdicts of cgroup sock_addr programs.  Never included by userspace.
 */
#ifndef LY_COMPILER_BPF_H
#define LY_COMPILER_BPF_H

#define EPERM		1
#define ENOENT		2
#define ENOMEM		12
#define ENOSPC		28

/* cgroup/connect4|6 return values: 1 lets connect() go on, 0 fails it with EPERM */
#define LY_VERDICT_ALLOW	1
#define LY_VERDICT_DENY		0

/* sockops: the return value is ignored for the callbacks we use; 1 by convention */
#define LY_SOCKOPS_OK		1

#endif /* LY_COMPILER_BPF_H */
