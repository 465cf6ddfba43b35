// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Copyright (c) 2026 The lanyard authors */
/*
 * Secret buffers in OpenSSL's secure heap (mlocked, MADV_DONTDUMP, guard
 * pages), cleansed on free, and the fingerprints shown in their place.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

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
