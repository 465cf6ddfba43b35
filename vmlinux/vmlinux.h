/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Copyright (c) 2026 The lanyard authors */
/* Per-arch vmlinux.h selector; `make vmlinux` regenerates the x86 one from /sys/kernel/btf/vmlinux. */
#ifndef LY_VMLINUX_H
#define LY_VMLINUX_H

#if defined(__TARGET_ARCH_x86)
#include "vmlinux_x86.h"
#else
#error "no vmlinux.h for this architecture: run `make vmlinux` on a host of that arch"
#endif

#endif /* LY_VMLINUX_H */
