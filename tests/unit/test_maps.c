// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Copyright (c) 2026 The lanyard authors */
/*
 * Unit tests for the map-key encoders in userspace/kernel.c (kernel_route_key,
 * kernel_peer_key): byte order, prefix lengths, v4-mapped folding, layout.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/un.h>

#include "kernel.h"

TestSuite(maps, .timeout = 5);

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* --- ABI layout that the bpf side relies on ---------------------------------- */

Test(maps, route_key_fixed_bits_cover_workload_port_family)
{
	/* LPM data starts after prefixlen; the first 64 bits are {workload, port, family} */
	cr_expect_eq(offsetof(struct ly_route_key, workload_id), 4);
	cr_expect_eq(offsetof(struct ly_route_key, port), 8);
	cr_expect_eq(offsetof(struct ly_route_key, family), 10);
	cr_expect_eq(offsetof(struct ly_route_key, addr), 12);
	cr_expect_eq(LY_ROUTE_FIXED_BITS, 8 * (offsetof(struct ly_route_key, addr) -
					       offsetof(struct ly_route_key, workload_id)));
	cr_expect_eq(LY_AF_INET, AF_INET);
	cr_expect_eq(LY_AF_INET6, AF_INET6);
}

/* --- kernel_route_key ----------------------------------------------------------- */

/*
 * Strings inline, not pointers: Criterion re-executes the binary for each
 * parameter, so (with ASLR) a pointer into .rodata would dangle.
 */
struct route_case {
	int family;		/* policy_addr family */
	char addr[48];		/* inet_pton text, "" for none */
	unsigned int plen;
	uint16_t port;		/* host order */
	int want_rc;
	uint16_t want_family;	/* LY_AF_* */
	unsigned int want_plen;	/* address bits, without the 64 fixed bits */
	char want_addr[48];	/* masked, in want_family's text form */
};

static void route_case_addr(const struct route_case *c, struct policy_addr *a)
{
	memset(a, 0, sizeof(*a));
	a->family = c->family;
	a->prefixlen = (uint8_t)c->plen;
	if (c->addr[0])
		cr_assert_eq(inet_pton(c->family == AF_INET ? AF_INET : AF_INET6, c->addr, a->addr),
			     1, "bad test address %s", c->addr);
}

static void expect_route_key(const struct route_case *c)
{
	struct policy_addr a;
	struct ly_route_key k;
	uint8_t want[16] = { 0 };
	int rc;

	route_case_addr(c, &a);
	memset(&k, 0xa5, sizeof(k));
	rc = kernel_route_key(&k, 7, &a, c->port);
	cr_expect_eq(rc, c->want_rc, "%s/%u: rc %d, want %d", c->addr, c->plen, rc, c->want_rc);
	if (rc < 0)
		return;
	cr_assert_eq(inet_pton(c->want_family, c->want_addr, want), 1);
	cr_expect_eq(k.prefixlen, LY_ROUTE_FIXED_BITS + c->want_plen, "%s/%u: prefixlen %u",
		     c->addr, c->plen, k.prefixlen);
	cr_expect_eq(k.workload_id, 7);
	cr_expect_eq(k.port, htons(c->port), "port must be network order");
	cr_expect_eq(k.family, c->want_family);
	cr_expect_arr_eq(k.addr, want, sizeof(want), "%s/%u: address not masked to %s", c->addr,
			 c->plen, c->want_addr);
}

/* VALID */
static struct route_case valid_routes[] = {
	{ AF_INET, "127.0.0.1", 32, 26000, 0, LY_AF_INET, 32, "127.0.0.1" },
	{ AF_INET, "10.20.30.40", 16, 8080, 0, LY_AF_INET, 16, "10.20.0.0" },
	{ AF_INET, "10.255.1.1", 13, 443, 0, LY_AF_INET, 13, "10.248.0.0" },
	{ AF_INET, "192.0.2.1", 0, 443, 0, LY_AF_INET, 0, "0.0.0.0" },
	{ AF_INET, "192.0.2.1", 32, 0, 0, LY_AF_INET, 32, "192.0.2.1" },
	{ AF_INET6, "::1", 128, 26000, 0, LY_AF_INET6, 128, "::1" },
	{ AF_INET6, "2001:db8:1:2:3:4:5:6", 64, 443, 0, LY_AF_INET6, 64, "2001:db8:1:2::" },
	{ AF_INET6, "2001:db8:ffff::", 35, 443, 0, LY_AF_INET6, 35, "2001:db8:e000::" },
	{ AF_INET6, "fd00::1", 0, 1, 0, LY_AF_INET6, 0, "::" },
	/* V4-MAPPED: looked up as IPv4 by ly_connect6, so encoded as IPv4 */
	{ AF_INET6, "::ffff:10.0.0.1", 128, 80, 0, LY_AF_INET, 32, "10.0.0.1" },
	{ AF_INET6, "::ffff:10.1.2.3", 104, 80, 0, LY_AF_INET, 8, "10.0.0.0" },
	{ AF_INET6, "::ffff:0.0.0.0", 96, 80, 0, LY_AF_INET, 0, "0.0.0.0" },
	{ AF_INET6, "::ffff:10.0.0.1", 80, 80, 0, LY_AF_INET6, 80, "::" },
	/* high port: byte order shows */
	{ AF_INET, "127.0.0.1", 32, 65535, 0, LY_AF_INET, 32, "127.0.0.1" },
	{ AF_INET, "127.0.0.1", 32, 0x0102, 0, LY_AF_INET, 32, "127.0.0.1" },
};

ParameterizedTestParameters(maps, route_key_encodes_valid_addresses)
{
	return cr_make_param_array(struct route_case, valid_routes, ARRAY_SIZE(valid_routes));
}

ParameterizedTest(struct route_case *c, maps, route_key_encodes_valid_addresses)
{
	expect_route_key(c);
}

/* MALFORMED */
static struct route_case bad_routes[] = {
	{ AF_INET, "10.0.0.1", 33, 80, -EINVAL, 0, 0, "" },
	{ AF_INET6, "::1", 129, 80, -EINVAL, 0, 0, "" },
	{ AF_INET6, "::ffff:10.0.0.1", 200, 80, -EINVAL, 0, 0, "" },
	{ AF_UNIX, "", 0, 80, -EINVAL, 0, 0, "" },
	{ 0, "", 32, 80, -EINVAL, 0, 0, "" },
};

ParameterizedTestParameters(maps, route_key_rejects_malformed_addresses)
{
	return cr_make_param_array(struct route_case, bad_routes, ARRAY_SIZE(bad_routes));
}

ParameterizedTest(struct route_case *c, maps, route_key_rejects_malformed_addresses)
{
	expect_route_key(c);
}

Test(maps, route_key_port_is_network_order_bytes)
{
	struct policy_addr a = { .family = AF_INET, .prefixlen = 32, .addr = { 127, 0, 0, 1 } };
	struct ly_route_key k;
	const uint8_t *p = (const uint8_t *)&k.port;

	cr_assert_eq(kernel_route_key(&k, 1, &a, 0x1234), 0);
	cr_expect_eq(p[0], 0x12);
	cr_expect_eq(p[1], 0x34);
}

Test(maps, route_key_equal_routes_encode_equal_keys)
{
	/* host bits differ, prefix equal: the stale-entry sweep compares whole keys */
	struct policy_addr a = { .family = AF_INET, .prefixlen = 24, .addr = { 10, 0, 0, 1 } };
	struct policy_addr b = { .family = AF_INET, .prefixlen = 24, .addr = { 10, 0, 0, 200 } };
	struct ly_route_key ka, kb;

	memset(&ka, 0x11, sizeof(ka));
	memset(&kb, 0x22, sizeof(kb));
	cr_assert_eq(kernel_route_key(&ka, 3, &a, 443), 0);
	cr_assert_eq(kernel_route_key(&kb, 3, &b, 443), 0);
	cr_expect_arr_eq(&ka, &kb, sizeof(ka));
}

Test(maps, route_key_workloads_never_share_keys)
{
	struct policy_addr a = { .family = AF_INET, .prefixlen = 32, .addr = { 10, 0, 0, 1 } };
	struct ly_route_key k1, k2;

	cr_assert_eq(kernel_route_key(&k1, 1, &a, 443), 0);
	cr_assert_eq(kernel_route_key(&k2, 2, &a, 443), 0);
	cr_expect_arr_neq(&k1, &k2, sizeof(k1));
}

/* --- kernel_peer_key -------------------------------------------------------------- */

Test(maps, peer_key_from_sockaddr_in)
{
	struct sockaddr_in s = { .sin_family = AF_INET, .sin_port = htons(40000) };
	struct ly_peer_key k;
	const uint8_t want[16] = { 127, 0, 0, 1 };

	s.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	memset(&k, 0xa5, sizeof(k));
	cr_assert_eq(kernel_peer_key(&k, (struct sockaddr *)&s), 0);
	cr_expect_eq(k.family, LY_AF_INET);
	cr_expect_eq(k.port, htons(40000));
	cr_expect_eq(((const uint8_t *)&k.port)[0], 40000 >> 8, "port must be network order");
	cr_expect_eq(k.pad, 0);
	cr_expect_arr_eq(k.addr, want, sizeof(want));
}

Test(maps, peer_key_from_sockaddr_in6)
{
	struct sockaddr_in6 s = { .sin6_family = AF_INET6, .sin6_port = htons(50001),
				  .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	struct ly_peer_key k;

	memset(&k, 0xa5, sizeof(k));
	cr_assert_eq(kernel_peer_key(&k, (struct sockaddr *)&s), 0);
	cr_expect_eq(k.family, LY_AF_INET6);
	cr_expect_eq(k.port, htons(50001));
	cr_expect_eq(k.pad, 0);
	cr_expect_arr_eq(k.addr, &s.sin6_addr, 16);
}

Test(maps, peer_key_folds_v4_mapped_into_inet)
{
	struct sockaddr_in6 s6 = { .sin6_family = AF_INET6, .sin6_port = htons(1234) };
	struct sockaddr_in s4 = { .sin_family = AF_INET, .sin_port = htons(1234) };
	struct ly_peer_key k6, k4;

	cr_assert_eq(inet_pton(AF_INET6, "::ffff:127.0.0.1", &s6.sin6_addr), 1);
	s4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(kernel_peer_key(&k6, (struct sockaddr *)&s6), 0);
	cr_assert_eq(kernel_peer_key(&k4, (struct sockaddr *)&s4), 0);
	cr_expect_eq(k6.family, LY_AF_INET);
	cr_expect_arr_eq(&k6, &k4, sizeof(k6), "v4-mapped must encode like plain IPv4");
}

Test(maps, peer_key_rejects_other_families)
{
	struct sockaddr_un s = { .sun_family = AF_UNIX };
	struct ly_peer_key k;

	cr_expect_eq(kernel_peer_key(&k, (struct sockaddr *)&s), -EAFNOSUPPORT);
}
