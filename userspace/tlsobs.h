/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Copyright (c) 2026 The lanyard authors */
/*
 * TLS observation, userspace half: put the uprobes of bpf/tls.bpf.c on the
 * host's TLS libraries and on the private copies enrolled processes map
 * (procscan.c), decode LY_EV_DATA / LY_EV_EXEC, join each write to its flow
 * (a redirected socket's local addr:port -> proxy flow id), audit flow.tls and
 * feed request heads to discovery.  Event bytes may hold an app's secret:
 * they are wiped after use and never logged.
 */
#ifndef LY_TLSOBS_H
#define LY_TLSOBS_H

#include <stddef.h>

#include "daemon.h"

struct tlsobs;

/* d->kern, d->proxy and d->disc (may be NULL: no discovery) are used as they are then. */
struct tlsobs *tlsobs_new(struct daemon *d);
void tlsobs_free(struct tlsobs *t);

/*
 * Start the uprobe attach helper (kernel_tls_helper_start: before the capability
 * drop) and probe the host's shared OpenSSL/GnuTLS libraries. 0 or -errno.
 */
int tlsobs_start(struct tlsobs *t);

/*
 * One ring-buffer record (kernel.c checked hdr.len <= len): LY_EV_DATA is
 * decoded, joined, audited and observed; LY_EV_EXEC and the first
 * LY_EV_CONNECT of a pid have the process scanned for TLS libraries.
 */
void tlsobs_on_event(struct tlsobs *t, const struct ly_event_hdr *ev, size_t len);

/* Due re-scans (a new process maps its libraries after exec): a periodic timer. */
void tlsobs_tick(struct tlsobs *t);

#endif /* LY_TLSOBS_H */
