/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Copyright (c) 2026 The lanyard authors */
/*
 * The control socket: a unix stream socket (0600, root only, checked with
 * SO_PEERCRED) speaking one JSON object per line to the `lanyard` CLI.
 * Requests: {"cmd":"status|workloads|routes|flows|tokens|reload|revoke|ca",
 * "workload":NAME}.  Responses: {"ok":true,...} or {"ok":false,"error":...}.
 * No credential value is ever part of a response.
 */
#ifndef LY_CONTROL_H
#define LY_CONTROL_H

#include <stddef.h>

struct daemon;
struct control;

#define CONTROL_MAX_REQUEST	4096

struct control *control_new(struct daemon *d, const char *path, char *err, size_t errlen);
void control_free(struct control *c);

/* Build the response to one request line (also used by the unit tests).
 * Returns a malloc'd JSON line (with '\n'); never NULL except on ENOMEM. */
char *control_handle(struct daemon *d, const char *line, size_t len);

#endif /* LY_CONTROL_H */
