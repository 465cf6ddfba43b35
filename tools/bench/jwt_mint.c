// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Copyright (c) 2026 The lanyard authors */
/*
 * ly-bench-jwt: how many JWTs per second one thread mints with lanyard's own jwt_mint()
 * (ES256 over a fresh key), the call lanyardd makes per issuance.  Prints no token.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jwt.h"
#include "log.h"
#include "secret.h"

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	double secs = argc > 2 ? strtod(argv[2], NULL) : 1.0, t0, t;
	struct jwt_claims c = {
		.iss = "http://127.0.0.1:15002",
		.sub = "spiffe://bench.lanyard.internal/client",
		.aud = "http://127.0.0.2:18080",
	};
	struct jwt_key *k = NULL;
	struct secret *s = NULL;
	char err[256] = "";
	size_t len = 0;
	long n = 0;

	if (argc < 2 || secs <= 0) {
		fprintf(stderr, "usage: ly-bench-jwt STATE_DIR [SECONDS]\n");
		return 2;
	}
	log_init(0, "ly-bench-jwt");
	if (secret_heap_init(1024 * 1024) < 0) {
		fprintf(stderr, "ly-bench-jwt: no secure heap\n");
		return 1;
	}
	k = jwt_key_load_or_create(argv[1], err, sizeof(err));
	if (!k) {
		fprintf(stderr, "ly-bench-jwt: %s\n", err);
		return 1;
	}
	t0 = now_s();
	do {
		c.iat = c.nbf = (int64_t)time(NULL);
		c.exp = c.iat + 300;
		if (jwt_mint(k, &c, "", "", &s) < 0) {
			fprintf(stderr, "ly-bench-jwt: jwt_mint failed\n");
			jwt_key_free(k);
			return 1;
		}
		len = s->len;
		secret_free(s);
		s = NULL;
		n++;
		t = now_s() - t0;
	} while (t < secs);
	printf("JWT_RESULT mints=%ld seconds=%.3f per_s=%.0f us_per_mint=%.1f token_len=%zu\n", n,
	       t, (double)n / t, t * 1e6 / (double)n, len);
	jwt_key_free(k);
	return 0;
}
