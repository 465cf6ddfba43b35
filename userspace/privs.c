// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Copyright (c) 2026 The lanyard authors */
/* Capability drop with capset(2) and the bounding set; no libcap needed. */
#include <errno.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "log.h"
#include "privs.h"

static const int keep[] = { CAP_NET_ADMIN, CAP_SYS_PTRACE, CAP_DAC_READ_SEARCH };

static int kept(int cap)
{
	for (unsigned i = 0; i < sizeof(keep) / sizeof(keep[0]); i++)
		if (keep[i] == cap)
			return 1;
	return 0;
}

int privs_drop(void)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[2] = { 0 };
	int last = CAP_LAST_CAP;

	/* the running kernel may know more capabilities than our headers */
	for (int cap = 0; cap <= 63; cap++) {
		if (prctl(PR_CAPBSET_READ, cap, 0, 0, 0) < 0)
			break;
		last = cap;
	}
	for (int cap = 0; cap <= last; cap++) {
		if (kept(cap))
			continue;
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
			return -errno;
	}
	for (unsigned i = 0; i < sizeof(keep) / sizeof(keep[0]); i++) {
		data[keep[i] / 32].effective |= 1U << (keep[i] % 32);
		data[keep[i] / 32].permitted |= 1U << (keep[i] % 32);
	}
	if (syscall(SYS_capset, &hdr, data) < 0)
		return -errno;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -errno;
	log_debug("capabilities dropped to net_admin, sys_ptrace, dac_read_search");
	return 0;
}
