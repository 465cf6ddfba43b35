/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Copyright (c) 2026 The lanyard authors */
/*
 * The audit log: one JSON object per line (design section 7).  Records are
 * built field by field into a static buffer (no allocation on the hot path)
 * and written in batches by audit_flush() at the end of each loop turn.
 * Never pass a credential value: jti and fingerprints only.
 */
#ifndef LY_AUDIT_H
#define LY_AUDIT_H

#include <stdint.h>

/* Open (create 0600, append) path; NULL means stderr. 0 or -errno. */
int audit_open(const char *path);
/* Re-open after a reload changed the path (or for log rotation). */
int audit_reopen(const char *path);
void audit_close(void);
/* Write out what is buffered. */
void audit_flush(void);

/* Start a record with "ts" and "event"; then add fields; then audit_end(). */
void audit_begin(const char *event);
void audit_str(const char *key, const char *val);	/* NULL val: field omitted */
void audit_strn(const char *key, const char *val, size_t len);
void audit_u64(const char *key, uint64_t val);
void audit_i64(const char *key, int64_t val);
void audit_end(void);

/* Counters of records written and dropped (buffer full, write error). */
uint64_t audit_written(void);
uint64_t audit_dropped(void);

/* JSON string escaping into out (always NUL-terminated); returns bytes written. */
size_t audit_escape(char *out, size_t outlen, const char *in, size_t inlen);

#endif /* LY_AUDIT_H */
