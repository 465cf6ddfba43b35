// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Copyright (c) 2026 The lanyard authors */
/*
 * libFuzzer driver for userspace/procscan.c: the input is a file a workload maps (an ELF
 * library or executable, or anything else).  Classifying it and finding the probed
 * functions' offsets must answer 0 or -errno, an offset is inside the file, and the two
 * agree: a file classified as OpenSSL (GnuTLS) has an SSL_write (gnutls_record_send) offset.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <linux/types.h>

#include "fuzz.h"
#include "lanyard/abi.h"
#include "procscan.h"

static const char *const names[] = {
	"SSL_ctrl", "SSL_set_fd", "SSL_free", "SSL_write", "SSL_write_ex",
	"gnutls_server_name_set", "gnutls_transport_set_int2", "gnutls_deinit",
	"gnutls_record_send",
};
#define NNAMES (sizeof(names) / sizeof(names[0]))
#define SSL_WRITE	3	/* names[] index */
#define GNUTLS_SEND	8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t off[NNAMES];
	struct procscan_elf e;
	char path[64];
	int fd, n, found, rc;

	fd = memfd_create("fuzz_procscan", MFD_CLOEXEC);
	CHECK(fd >= 0);
	CHECK(write(fd, data, size) == (ssize_t)size);
	n = found = procscan_funcs(fd, names, NNAMES, off);
	CHECK(n == -ENOEXEC || (n >= 0 && (size_t)n <= NNAMES));
	for (size_t i = 0; i < NNAMES; i++) {
		CHECK(off[i] == 0 || off[i] < size);
		n -= n > 0 && off[i] != 0;
	}
	CHECK(n <= 0);		/* as many offsets as it said it found */
	/* a new inode for each input: the classification cache never answers for another */
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	rc = procscan_file(path, &e);
	CHECK(rc == (found < 0 ? found : 0));
	CHECK(!(e.libs & ~((1u << LY_LIB_OPENSSL) | (1u << LY_LIB_GNUTLS))));
	/* one test of "defines": the classifier stops at the first write function it sees */
	CHECK(!(e.libs & (1u << LY_LIB_OPENSSL)) || off[SSL_WRITE]);
	CHECK(!(e.libs & (1u << LY_LIB_GNUTLS)) || off[GNUTLS_SEND]);
	CHECK(e.libs || (!off[SSL_WRITE] && !off[GNUTLS_SEND]));
	close(fd);
	return 0;
}
