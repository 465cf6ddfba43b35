/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Copyright (c) 2026 The lanyard authors */
/*
 * Secret values (tokens, rendered credential headers) live only here: in
 * OpenSSL's secure heap (mlocked, excluded from core dumps, guard pages),
 * cleansed on free.  Everything that must show a secret shows its
 * fingerprint instead.
 */
#ifndef LY_SECRET_H
#define LY_SECRET_H

#include <stddef.h>

#define SECRET_FP_LEN	24	/* "sha256:" + 16 hex + NUL */

struct secret {
	size_t len;
	char *buf;		/* len bytes + NUL, in the secure heap */
};

/* Initialise the secure heap once at start-up (size bytes). 0 or -errno. */
int secret_heap_init(size_t size);

/* Allocate a secret of len bytes (zeroed, NUL-terminated). NULL on ENOMEM. */
struct secret *secret_new(size_t len);
/* Copy len bytes into a new secret. */
struct secret *secret_dup(const void *buf, size_t len);
/* Cleanse and free; NULL ok. */
void secret_free(struct secret *s);

/* "sha256:" + first 16 hex digits of SHA-256(buf), into out[SECRET_FP_LEN]. */
void secret_fingerprint(const void *buf, size_t len, char out[SECRET_FP_LEN]);

/*
 * May the key file path (what names it in messages: "signing key"), as fstat()
 * saw it, be used?  Refused (-EPERM, message in err): not a regular file, not
 * owned by our euid (it could be swapped), readable by group or other (it may
 * have been copied).  0 if fine.
 */
struct stat;
int secret_file_check(const char *path, const char *what, const struct stat *st, char *err,
		      size_t errlen);

/*
 * A random key of len bytes kept in the file path (what names it in messages):
 * read when it exists, else len random bytes are written to a new file (O_EXCL,
 * mode 0600).  Refused (-EPERM) like the signing and CA keys: not a regular
 * file (symlinks included), not ours, or readable by group or other.  0 with
 * *out set, or -errno with a message in err.
 */
int secret_key_file(const char *path, const char *what, size_t len, struct secret **out,
		    char *err, size_t errlen);

#endif /* LY_SECRET_H */
