// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Copyright (c) 2026 The lanyard authors */
/*
 * Secret buffers in OpenSSL's secure heap (mlocked, MADV_DONTDUMP, guard
 * pages), cleansed on free, and the fingerprints shown in their place.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "log.h"
#include "secret.h"

/* the secure heap allocates in powers of two from this minimum */
#define SECRET_HEAP_MINSIZE	16

static int heap_full_warned;

/*
 * CRYPTO_secure_malloc_init() wants a power of two.  Returns 0 (also when
 * already initialised), -EINVAL for a size of 0 or one too large to round,
 * -ENOMEM when the heap could not be set up.  When mlock() is refused
 * (RLIMIT_MEMLOCK) OpenSSL still gives a heap without the lock (return 2):
 * secrets stay out of core dumps and are cleansed, which is kept as success.
 */
int secret_heap_init(size_t size)
{
	size_t sz = SECRET_HEAP_MINSIZE;

	if (!size)
		return -EINVAL;
	if (CRYPTO_secure_malloc_initialized())
		return 0;
	while (sz < size) {
		if (sz > SIZE_MAX / 2)
			return -EINVAL;
		sz <<= 1;
	}
	if (!CRYPTO_secure_malloc_init(sz, SECRET_HEAP_MINSIZE))
		return -ENOMEM;
	return 0;
}

/*
 * The struct is ordinary heap (it holds only a length and a pointer); the
 * bytes are in the secure heap, or in the normal heap when the secure heap
 * is not initialised (OPENSSL_secure_zalloc falls back to malloc) or full —
 * they are cleansed on free either way.
 */
struct secret *secret_new(size_t len)
{
	struct secret *s;

	if (len == SIZE_MAX)
		return NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->buf = OPENSSL_secure_zalloc(len + 1);
	if (!s->buf && CRYPTO_secure_malloc_initialized()) {
		/*
		 * The secure heap is full (it has a fixed size): a credential in
		 * cleansed ordinary memory beats failing every request.  Said once.
		 */
		if (!heap_full_warned) {
			heap_full_warned = 1;
			log_warnx("%s: secure heap full, secrets now also in the normal heap",
				  __func__);
		}
		s->buf = OPENSSL_zalloc(len + 1);
	}
	if (!s->buf) {
		free(s);
		return NULL;
	}
	s->len = len;
	return s;
}

struct secret *secret_dup(const void *buf, size_t len)
{
	struct secret *s = secret_new(len);

	if (s && len)
		memcpy(s->buf, buf, len);
	return s;
}

void secret_free(struct secret *s)
{
	if (!s)
		return;
	/* cleanses whether or not buf came from the secure heap */
	OPENSSL_secure_clear_free(s->buf, s->len + 1);
	s->buf = NULL;
	s->len = 0;
	free(s);
}

void secret_fingerprint(const void *buf, size_t len, char out[SECRET_FP_LEN])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char *p = out;

	if (!EVP_Digest(buf, len, md, &mdlen, EVP_sha256(), NULL) || mdlen < 8) {
		/* cannot happen short of a broken libcrypto: never show a value */
		strcpy(out, "sha256:?");
		return;
	}
	memcpy(p, "sha256:", 7);
	p += 7;
	for (int i = 0; i < 8; i++) {
		*p++ = hex[md[i] >> 4];
		*p++ = hex[md[i] & 0xf];
	}
	*p = '\0';
	OPENSSL_cleanse(md, sizeof(md));
}

/* --- key files ------------------------------------------------------------------ */

int secret_file_check(const char *path, const char *what, const struct stat *st, char *err,
		      size_t errlen)
{
	if (!S_ISREG(st->st_mode)) {
		snprintf(err, errlen, "%s %s: not a regular file", what, path);
		return -EPERM;
	}
	if (st->st_uid != geteuid()) {
		snprintf(err, errlen, "%s %s: owned by uid %u, not by us (uid %u)", what, path,
			 (unsigned int)st->st_uid, (unsigned int)geteuid());
		return -EPERM;
	}
	if (st->st_mode & 077) {
		snprintf(err, errlen, "%s %s: mode %04o is readable by group or other: chmod 600 "
			 "it (and replace it: it may have been copied)", what, path,
			 (unsigned int)(st->st_mode & 07777));
		return -EPERM;
	}
	return 0;
}

/* Exactly len bytes from fd into s->buf (a longer or shorter file is refused). */
static int key_read_exact(int fd, struct secret *s)
{
	char extra;
	size_t off = 0;
	ssize_t n;

	while (off < s->len) {
		n = read(fd, s->buf + off, s->len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EINVAL;
		off += (size_t)n;
	}
	do
		n = read(fd, &extra, 1);
	while (n < 0 && errno == EINTR);
	return n == 0 ? 0 : -EINVAL;
}

/* A new file with len random bytes, 0600 whatever the umask, fsync'd. */
static int key_create(const char *path, struct secret *s)
{
	size_t off = 0;
	ssize_t n;
	int fd, err = 0;

	if (RAND_priv_bytes((unsigned char *)s->buf, (int)s->len) != 1)
		return -EIO;
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (fchmod(fd, 0600) < 0)
		err = -errno;
	while (!err && off < s->len) {
		n = write(fd, s->buf + off, s->len - off);
		if (n < 0 && errno != EINTR)
			err = -errno;
		else if (n > 0)
			off += (size_t)n;
	}
	if (!err && fsync(fd) < 0)
		err = -errno;
	close(fd);
	if (err)
		unlink(path);	/* a half-written key would be refused on the next start */
	return err;
}

int secret_key_file(const char *path, const char *what, size_t len, struct secret **out,
		    char *err, size_t errlen)
{
	struct secret *s = secret_new(len);
	struct stat st;
	int fd, rc;

	*out = NULL;
	if (!s || !len) {
		secret_free(s);
		snprintf(err, errlen, "%s %s: out of memory", what, path);
		return -ENOMEM;
	}
	/* O_NOFOLLOW: a symlink is refused; O_NONBLOCK: a FIFO won't hang us */
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) {
		rc = key_create(path, s);
		if (rc)
			snprintf(err, errlen, "%s %s: creating it: %s", what, path, strerror(-rc));
		goto cleanup;
	}
	if (fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "%s %s: %s", what, path,
			 rc == -ELOOP ? "not a regular file (symlink)" : strerror(-rc));
		goto cleanup;
	}
	rc = fstat(fd, &st) < 0 ? -errno : secret_file_check(path, what, &st, err, errlen);
	if (rc == -EPERM)
		goto cleanup;
	if (!rc)
		rc = key_read_exact(fd, s);
	if (rc)
		snprintf(err, errlen, "%s %s: %s", what, path,
			 rc == -EINVAL ? "not a key of the expected size" : strerror(-rc));
cleanup:
	if (fd >= 0)
		close(fd);
	if (rc)
		secret_free(s);
	else
		*out = s;
	return rc;
}
