/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Copyright (c) 2026 The lanyard authors */
/*
 * Privilege drop after start-up: once the bpf programs are attached, the
 * maps open and the sockets bound, lanyardd keeps only the capabilities its
 * event loop needs.
 */
#ifndef LY_PRIVS_H
#define LY_PRIVS_H

/*
 * Keep CAP_NET_ADMIN (SO_MARK on upstream sockets), CAP_SYS_PTRACE (read
 * /proc/PID/exe of any workload for the audit) and CAP_DAC_READ_SEARCH
 * (re-read the policy and cgroup folders on reload); drop every other
 * capability from the effective, permitted, inheritable and bounding sets
 * and set no_new_privs.  0 or -errno.
 */
int privs_drop(void);

#endif /* LY_PRIVS_H */
