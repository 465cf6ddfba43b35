// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Copyright (c) 2026 The lanyard authors */
/* Diagnostic logging to stderr with a timestamp and level. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

static int verbose;
static const char *prog = "lanyard";

void log_init(int v, const char *progname)
{
	verbose = v;
	if (progname)
		prog = progname;
}

int log_verbose(void)
{
	return verbose;
}

static void vlog(const char *level, const char *emsg, const char *fmt, va_list ap)
{
	char ts[32];
	struct timespec now;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	flockfile(stderr);
	fprintf(stderr, "%s.%03ldZ %s %s: ", ts, now.tv_nsec / 1000000, prog, level);
	vfprintf(stderr, fmt, ap);
	if (emsg)
		fprintf(stderr, ": %s", emsg);
	fputc('\n', stderr);
	funlockfile(stderr);
}

#define LOG_BODY(level, with_errno)                                                   \
	do {                                                                          \
		int saved = errno;                                                    \
		va_list ap;                                                           \
		va_start(ap, fmt);                                                    \
		vlog(level, (with_errno) ? strerror(saved) : NULL, fmt, ap);          \
		va_end(ap);                                                           \
		errno = saved;                                                        \
	} while (0)

void log_warn(const char *fmt, ...)
{
	LOG_BODY("warn", 1);
}

void log_warnx(const char *fmt, ...)
{
	LOG_BODY("warn", 0);
}

void log_info(const char *fmt, ...)
{
	LOG_BODY("info", 0);
}

void log_debug(const char *fmt, ...)
{
	if (!verbose)
		return;
	LOG_BODY("debug", 0);
}

void fatal(const char *fmt, ...)
{
	LOG_BODY("fatal", 1);
	exit(1);
}

void fatalx(const char *fmt, ...)
{
	LOG_BODY("fatal", 0);
	exit(1);
}
