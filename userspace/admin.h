/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Copyright (c) 2026 The lanyard authors */
/*
 * The admin HTTP endpoint (policy admin.listen, default 127.0.0.1:15002):
 * /.well-known/jwks.json, /.well-known/openid-configuration, /metrics
 * (Prometheus text), /healthz.  Public material only; one request per
 * connection.
 */
#ifndef LY_ADMIN_H
#define LY_ADMIN_H

#include <stddef.h>

struct daemon;
struct admin;

struct admin *admin_new(struct daemon *d, char *err, size_t errlen);
void admin_free(struct admin *a);

#endif /* LY_ADMIN_H */
