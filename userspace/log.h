/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Copyright (c) 2026 The lanyard authors */
/*
 * Diagnostic log (stderr), relayd style: *_warn appends strerror(errno),
 * *_warnx does not.  Never pass a secret to these functions: log a
 * fingerprint or a jti instead.  The audit log is audit.c, not this.
 */
#ifndef LY_LOG_H
#define LY_LOG_H

#include <stdarg.h>

/* verbosity: 0 = warnings and info, 1 = + debug, 2 = + libbpf debug */
void log_init(int verbose, const char *progname);
int log_verbose(void);

void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* fatal*: only before the event loop runs (config, pinning, privilege drop) */
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif /* LY_LOG_H */
