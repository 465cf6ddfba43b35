// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Copyright (c) 2026 The lanyard authors */
/*
 * libFuzzer driver for userspace/policy.c: parses the input as a policy file and checks
 * what a caller relies on: a complete, valid struct policy, or one printable error line.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "policy.h"

#define NAME "fuzz.yaml"

/* the error goes to logs and into JSON: one line, printable ASCII, placed in the file */
static void check_error(const char *err)
{
	size_t n = strlen(err);

	CHECK(n > 0 && n < POLICY_ERR_LEN);
	CHECK(!strncmp(err, NAME ":", strlen(NAME ":")));
	for (size_t i = 0; i < n; i++)
		CHECK(err[i] >= 0x20 && err[i] < 0x7f);
}

static void check_route(const struct policy_route *r)
{
	int tls_here = r->tls == POLICY_TLS_INTERCEPT || r->tls == POLICY_TLS_ORIGINATE;

	CHECK(r->to && r->port != 0 && r->cred == NULL);
	CHECK(r->ttl_s >= 1 && r->ttl_s <= POLICY_MAX_TTL_S);
	/* a client certificate exists only in a handshake lanyardd makes */
	CHECK(!r->mtls || (r->cred_type == POLICY_CRED_JWT && tls_here));
	CHECK(r->nsni == 0 || r->tls == POLICY_TLS_PASSTHROUGH);
	if (r->tls == POLICY_TLS_PASSTHROUGH) {
		/* nothing is injected: no audience; an address lists the names it allows */
		CHECK(!r->audience && (r->kind == POLICY_DEST_HOST || r->nsni > 0));
		for (size_t i = 0; i < r->nsni; i++)
			CHECK(r->sni[i] && *r->sni[i] && policy_sni_allowed(r, r->sni[i]) ==
							      !strchr(r->sni[i], '*'));
	} else if (r->cred_type == POLICY_CRED_X509) {
		CHECK(tls_here && !r->audience && !r->header_name);
	} else {
		CHECK(r->cred_type == POLICY_CRED_JWT && r->audience);
	}
	if (r->header_name) {
		CHECK(r->header_prefix && r->header_suffix && *r->header_name);
		CHECK(!strpbrk(r->header_name, ": \r\n") && !strpbrk(r->header_prefix, "\r\n{}"));
		CHECK(!strpbrk(r->header_suffix, "\r\n{}"));
	}
	CHECK(r->line > 0 && r->col > 0);
	if (r->kind == POLICY_DEST_HOST) {
		CHECK(r->host && *r->host && r->naddrs == 0 && r->addrs == NULL);
		return;
	}
	CHECK(!r->host && r->naddrs == 1 && r->addrs);
	CHECK(r->addrs[0].family == AF_INET || r->addrs[0].family == AF_INET6);
	CHECK(r->addrs[0].prefixlen <= (r->addrs[0].family == AF_INET ? 32 : 128));
	CHECK(r->kind == POLICY_DEST_CIDR || r->addrs[0].prefixlen % 32 == 0);
	/* a route matches its own address, on its own port only */
	CHECK(policy_route_match(r, r->addrs[0].family, r->addrs[0].addr, r->port));
	CHECK(!policy_route_match(r, r->addrs[0].family, r->addrs[0].addr,
				  (uint16_t)(r->port + 1)));
}

static void check_policy(const struct policy *p)
{
	CHECK(p->path && !strcmp(p->path, NAME));
	CHECK(p->trust_domain && *p->trust_domain && p->listen_port != 0);
	CHECK(p->admin_listen && p->state_dir && p->control_socket);
	CHECK(p->state_dir[0] == '/' && p->control_socket[0] == '/');
	CHECK(!p->audit_path || p->audit_path[0] == '/');
	CHECK(p->admin_addr.ss_family == AF_INET || p->admin_addr.ss_family == AF_INET6);
	CHECK(p->workloads || p->nworkloads == 0);
	for (size_t i = 0; i < p->nworkloads; i++) {
		const struct policy_workload *w = &p->workloads[i];

		CHECK(w->name && w->cgroup && w->cgroup[0] == '/');
		/* enforce: at least one route; observe: none (nothing is redirected) */
		CHECK(w->mode == POLICY_MODE_ENFORCE || w->mode == POLICY_MODE_OBSERVE);
		CHECK((w->mode == POLICY_MODE_OBSERVE) == (w->nroutes == 0));
		CHECK(policy_workload_find(p, w->name) == w);
		for (size_t j = 0; j < w->nroutes; j++)
			check_route(&w->routes[j]);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[POLICY_ERR_LEN] = "";
	struct policy *p;
	uint32_t ttl;
	char *s;

	p = policy_parse((const char *)data, size, NAME, err, sizeof(err));
	if (p)
		check_policy(p);
	else
		check_error(err);
	policy_free(p);

	/* the duration parser on its own, from a NUL-terminated copy */
	s = malloc(size + 1);
	CHECK(s);
	memcpy(s, data, size);
	s[size] = '\0';
	if (policy_parse_duration(s, &ttl) == 0)
		CHECK(s[0] >= '0' && s[0] <= '9');
	free(s);
	return 0;
}
