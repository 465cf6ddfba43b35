// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Copyright (c) 2026 The lanyard authors */
/*
 * Unit tests for userspace/policy.c: the schema, defaults, destinations, header
 * templates, durations, error positions, file checks and the route matcher.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "policy.h"
#include "lib/guard.h"

TestSuite(policy, .timeout = 5);

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Parse from a buffer that ends at a PROT_NONE guard page, so an over-read faults. */
static struct policy *parse_guarded(const char *yaml, char *err)
{
	size_t len = strlen(yaml);
	char *buf = guard_copy(yaml, len);
	struct policy *p;

	cr_assert_not_null(buf);
	p = policy_parse(buf, len, "p.yaml", err, POLICY_ERR_LEN);
	guard_free(buf, len);
	return p;
}

static struct policy *parse_ok(const char *yaml)
{
	char err[POLICY_ERR_LEN] = "";
	struct policy *p = parse_guarded(yaml, err);

	cr_assert_not_null(p, "policy_parse: %s", err);
	return p;
}

static char *cr_strdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = cr_malloc(n);

	cr_assert_not_null(d);
	memcpy(d, s, n);
	return d;
}

#define HEAD	"trust_domain: example.org\n"
/* lines 2-5; the first route starts on line 6 */
#define WL	"workloads:\n" \
		"  - name: billing\n" \
		"    match: { cgroup: /system.slice/billing.service }\n" \
		"    routes:\n"
/* a route whose `to` value is at column 13 of its first line */
#define ROUTE(to)	"      - to: " to "\n" \
			"        credential: { type: jwt, audience: https://api.example.org }\n"
#define ONE_ROUTE(to)	HEAD WL ROUTE(to)

/* --- valid policies -------------------------------------------------------------- */

static const char full_yaml[] =
	"trust_domain: example.org\n"
	"listen: { port: 16001 }\n"
	"admin: { listen: \"[::1]:16002\" }\n"
	"state_dir: /srv/lanyard/state\n"
	"audit: { path: /var/log/lanyard/audit.jsonl }\n"
	"control_socket: /run/ly/control.sock\n"
	"workloads:\n"
	"  - name: billing\n"
	"    match: { cgroup: /system.slice/billing.service }\n"
	"    routes:\n"
	"      - to: 10.0.0.1:8080\n"
	"        credential: { type: jwt, audience: https://api.example.org, ttl: 10m }\n"
	"        header: \"X-Api-Key: {token}\"\n"
	"  - name: reports.v2\n"
	"    match:\n"
	"      cgroup: /system.slice/reports.service\n"
	"    routes:\n"
	"      - to: Reports.Example.ORG:443\n"
	"        credential:\n"
	"          type: jwt\n"
	"          audience: reports\n";

Test(policy, parses_a_full_policy_with_every_key)
{
	struct policy *p = parse_ok(full_yaml);
	const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)&p->admin_addr;
	const struct policy_workload *w;
	const struct policy_route *r;

	cr_expect_str_eq(p->path, "p.yaml");
	cr_expect_str_eq(p->trust_domain, "example.org");
	cr_expect_eq(p->listen_port, 16001);
	cr_expect_str_eq(p->admin_listen, "[::1]:16002");
	cr_expect_eq(a6->sin6_family, AF_INET6);
	cr_expect_eq(ntohs(a6->sin6_port), 16002);
	cr_expect(IN6_IS_ADDR_LOOPBACK(&a6->sin6_addr));
	cr_expect_str_eq(p->state_dir, "/srv/lanyard/state");
	cr_expect_str_eq(p->audit_path, "/var/log/lanyard/audit.jsonl");
	cr_expect_str_eq(p->control_socket, "/run/ly/control.sock");
	cr_assert_eq(p->nworkloads, 2);

	w = &p->workloads[0];
	cr_expect_str_eq(w->name, "billing");
	cr_expect_str_eq(w->cgroup, "/system.slice/billing.service");
	cr_expect_eq(w->line, 8);
	cr_assert_eq(w->nroutes, 1);
	r = &w->routes[0];
	cr_expect_str_eq(r->to, "10.0.0.1:8080");
	cr_expect_eq(r->cred_type, POLICY_CRED_JWT);
	cr_expect_str_eq(r->audience, "https://api.example.org");
	cr_expect_eq(r->ttl_s, 600);
	cr_expect_str_eq(r->header_name, "X-Api-Key");
	cr_expect_str_eq(r->header_prefix, "");
	cr_expect_str_eq(r->header_suffix, "");
	cr_expect_eq(r->line, 11);
	cr_expect_eq(r->col, 9);
	cr_expect_null(r->cred);

	w = policy_workload_find(p, "reports.v2");
	cr_assert_eq(w, &p->workloads[1]);
	r = &w->routes[0];
	cr_expect_eq(r->kind, POLICY_DEST_HOST);
	cr_expect_str_eq(r->to, "Reports.Example.ORG:443", "to is kept as written");
	cr_expect_str_eq(r->host, "reports.example.org", "host names are lowercased");
	cr_expect_eq(r->port, 443);
	cr_expect_eq(r->naddrs, 0, "names are resolved by policy_resolve() only");
	cr_expect_eq(r->ttl_s, POLICY_DEFAULT_TTL_S);
	cr_expect_null(policy_workload_find(p, "nobody"));
	policy_free(p);
}

Test(policy, fills_defaults_for_a_minimal_policy)
{
	struct policy *p = parse_ok("trust_domain: example.org\n");
	const struct sockaddr_in *a4 = (const struct sockaddr_in *)&p->admin_addr;
	const struct policy_route *r;

	cr_expect_eq(p->listen_port, POLICY_DEFAULT_LISTEN_PORT);
	cr_expect_str_eq(p->admin_listen, POLICY_DEFAULT_ADMIN);
	cr_expect_eq(a4->sin_family, AF_INET);
	cr_expect_eq(ntohs(a4->sin_port), 15002);
	cr_expect_eq(ntohl(a4->sin_addr.s_addr), INADDR_LOOPBACK);
	cr_expect_str_eq(p->state_dir, POLICY_DEFAULT_STATE_DIR);
	cr_expect_null(p->audit_path);
	cr_expect_str_eq(p->control_socket, POLICY_DEFAULT_CONTROL);
	cr_expect_eq(p->nworkloads, 0);
	policy_free(p);

	/* empty mappings and an empty list take the defaults too */
	p = parse_ok(HEAD "listen: {}\nadmin: {}\naudit: {}\nworkloads: []\n");
	cr_expect_eq(p->listen_port, POLICY_DEFAULT_LISTEN_PORT);
	cr_expect_null(p->audit_path);
	policy_free(p);

	p = parse_ok(ONE_ROUTE("10.0.0.1:80"));
	r = &p->workloads[0].routes[0];
	cr_expect_eq(r->ttl_s, 300);
	cr_expect_str_eq(r->header_name, "Authorization");
	cr_expect_str_eq(r->header_prefix, "Bearer ");
	cr_expect_str_eq(r->header_suffix, "");
	cr_expect_eq(r->tls, POLICY_TLS_NONE, "plain HTTP unless tls: says otherwise");
	cr_expect_eq(r->upstream_port, 0);
	cr_expect_null(r->ca_file);
	cr_expect_null(r->server_name);
	cr_expect_null(r->tls_ctx);
	cr_expect_null(p->ca_cert);
	cr_expect_null(p->ca_key);
	policy_free(p);
}

/* --- TLS routes ------------------------------------------------------------------- */

static const char tls_yaml[] =
	"trust_domain: example.org\n"
	"ca: { cert: /etc/lanyard/corp-ca.crt, key: /etc/lanyard/corp-ca.key }\n"
	"workloads:\n"
	"  - name: billing\n"
	"    match: { cgroup: /b }\n"
	"    routes:\n"
	"      - to: api.example.org:443\n"
	"        tls: intercept\n"
	"        credential: { type: jwt, audience: a }\n"
	"      - to: API.example.org:80\n"
	"        tls: originate\n"
	"        upstream: { port: 8443 }\n"
	"        ca_file: /etc/lanyard/api-ca.pem\n"
	"        server_name: Api.Example.ORG\n"
	"        credential: { type: jwt, audience: a }\n"
	"      - to: 10.0.0.0/8:443\n"
	"        tls: intercept\n"
	"        server_name: Internal.Example.org\n"
	"        credential: { type: jwt, audience: a }\n";

Test(policy, parses_tls_routes_and_an_imported_ca)
{
	struct policy *p = parse_ok(tls_yaml);
	const struct policy_route *r;

	cr_expect_str_eq(p->ca_cert, "/etc/lanyard/corp-ca.crt");
	cr_expect_str_eq(p->ca_key, "/etc/lanyard/corp-ca.key");
	cr_assert_eq(p->workloads[0].nroutes, 3);
	r = &p->workloads[0].routes[0];
	cr_expect_eq(r->tls, POLICY_TLS_INTERCEPT);
	cr_expect_eq(r->upstream_port, 0, "the port the app dialled");
	cr_expect_null(r->ca_file, "system roots");
	cr_expect_null(r->server_name, "a host name route proves its own name");
	r = &p->workloads[0].routes[1];
	cr_expect_eq(r->tls, POLICY_TLS_ORIGINATE);
	cr_expect_eq(r->port, 80);
	cr_expect_eq(r->upstream_port, 8443);
	cr_expect_str_eq(r->ca_file, "/etc/lanyard/api-ca.pem");
	cr_expect_str_eq(r->server_name, "api.example.org", "names are lowercased");
	r = &p->workloads[0].routes[2];
	cr_expect_eq(r->kind, POLICY_DEST_CIDR);
	cr_expect_eq(r->tls, POLICY_TLS_INTERCEPT);
	cr_expect_str_eq(r->server_name, "internal.example.org");
	policy_free(p);
}

static const char passthrough_yaml[] =
	"trust_domain: example.org\n"
	"workloads:\n"
	"  - name: billing\n"
	"    match: { cgroup: /b }\n"
	"    routes:\n"
	"      - to: API.example.org:443\n"
	"        tls: passthrough\n"
	"      - to: 10.0.0.0/8:443\n"
	"        tls: passthrough\n"
	"        sni: [Internal.Example.org, \"*.Svc.example.org\"]\n"
	"      - to: mirror.example.org:443\n"
	"        tls: passthrough\n"
	"        sni: [cdn.example.net]\n";

Test(policy, parses_passthrough_routes_without_a_credential)
{
	struct policy *p = parse_ok(passthrough_yaml);
	const struct policy_route *r;

	cr_assert_eq(p->workloads[0].nroutes, 3);
	r = &p->workloads[0].routes[0];
	cr_expect_eq(r->tls, POLICY_TLS_PASSTHROUGH);
	cr_expect_null(r->audience, "no credential");
	cr_expect_eq(r->nsni, 0);
	cr_expect_null(r->sni);
	r = &p->workloads[0].routes[1];
	cr_expect_eq(r->tls, POLICY_TLS_PASSTHROUGH);
	cr_assert_eq(r->nsni, 2);
	cr_expect_str_eq(r->sni[0], "internal.example.org", "names are lowercased");
	cr_expect_str_eq(r->sni[1], "*.svc.example.org");
	r = &p->workloads[0].routes[2];
	cr_assert_eq(r->nsni, 1);
	cr_expect_str_eq(r->sni[0], "cdn.example.net");
	policy_free(p);
}

Test(policy, sni_allowed_takes_the_host_the_list_and_one_label_wildcards)
{
	struct policy *p = parse_ok(passthrough_yaml);
	const struct policy_route *host = &p->workloads[0].routes[0];
	const struct policy_route *net = &p->workloads[0].routes[1];
	const struct policy_route *both = &p->workloads[0].routes[2];
	struct policy *plain = parse_ok(ONE_ROUTE("api.example.org:443"));

	/* VALID */
	cr_expect(policy_sni_allowed(host, "api.example.org"), "the route's own host");
	cr_expect(policy_sni_allowed(net, "internal.example.org"));
	cr_expect(policy_sni_allowed(net, "a.svc.example.org"), "the wildcard's one label");
	cr_expect(policy_sni_allowed(both, "mirror.example.org"));
	cr_expect(policy_sni_allowed(both, "cdn.example.net"));
	/* REFUSED */
	cr_expect(!policy_sni_allowed(host, "other.example.org"));
	cr_expect(!policy_sni_allowed(host, "api.example.org.evil.test"));
	cr_expect(!policy_sni_allowed(net, "svc.example.org"), "the wildcard needs a label");
	cr_expect(!policy_sni_allowed(net, "a.b.svc.example.org"), "only one label");
	cr_expect(!policy_sni_allowed(net, ".svc.example.org"));
	cr_expect(!policy_sni_allowed(net, "xsvc.example.org"));
	cr_expect(!policy_sni_allowed(net, "*.svc.example.org"), "a pattern is not a name");
	cr_expect(!policy_sni_allowed(net, ""));
	cr_expect(!policy_sni_allowed(net, NULL));
	cr_expect(!policy_sni_allowed(NULL, "api.example.org"));
	cr_expect(!policy_sni_allowed(&plain->workloads[0].routes[0], "api.example.org"),
		  "only passthrough routes relay by name");
	policy_free(plain);
	policy_free(p);
}

Test(policy, accepts_flow_style_crlf_and_a_bom)
{
	struct policy *p = parse_ok("\xef\xbb\xbf{trust_domain: a.b, workloads: [{name: x, match: "
				    "{cgroup: /x}, routes: [{to: \"1.2.3.4:5\", credential: "
				    "{type: jwt, audience: y}}]}]}\r\n");

	cr_expect_str_eq(p->trust_domain, "a.b");
	cr_assert_eq(p->nworkloads, 1);
	cr_expect_eq(p->workloads[0].routes[0].port, 5);
	policy_free(p);
}

/* --- destinations ---------------------------------------------------------------- */

struct dest_case {
	const char *to;
	enum policy_dest_kind kind;
	int family;		/* 0 for a host name */
	const char *addr;	/* address or host name */
	int prefixlen;
	uint16_t port;
};

ParameterizedTestParameters(policy, parses_each_destination_form)
{
	static struct dest_case cases[] = {
		/* VALID */
		{ "10.0.0.1:8080", POLICY_DEST_ADDR, AF_INET, "10.0.0.1", 32, 8080 },
		{ "\"[::1]:80\"", POLICY_DEST_ADDR, AF_INET6, "::1", 128, 80 },
		{ "\"[fd00::7]:65535\"", POLICY_DEST_ADDR, AF_INET6, "fd00::7", 128, 65535 },
		{ "10.0.0.0/8:80", POLICY_DEST_CIDR, AF_INET, "10.0.0.0", 8, 80 },
		{ "172.16.0.0/12:1", POLICY_DEST_CIDR, AF_INET, "172.16.0.0", 12, 1 },
		{ "0.0.0.0/0:443", POLICY_DEST_CIDR, AF_INET, "0.0.0.0", 0, 443 },
		{ "10.0.0.1/32:80", POLICY_DEST_CIDR, AF_INET, "10.0.0.1", 32, 80 },
		{ "\"[fd00::]/8:80\"", POLICY_DEST_CIDR, AF_INET6, "fd00::", 8, 80 },
		{ "\"[2001:db8::]/32:443\"", POLICY_DEST_CIDR, AF_INET6, "2001:db8::", 32, 443 },
		{ "api.example.org:443", POLICY_DEST_HOST, 0, "api.example.org", 0, 443 },
		{ "localhost:80", POLICY_DEST_HOST, 0, "localhost", 0, 80 },
		{ "a-1.b2.example:8443", POLICY_DEST_HOST, 0, "a-1.b2.example", 0, 8443 },
		{ "1a.example:80", POLICY_DEST_HOST, 0, "1a.example", 0, 80 },
	};
	struct dest_case *p = cr_malloc(sizeof(cases));

	cr_assert_not_null(p);
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		p[i] = cases[i];
		p[i].to = cr_strdup(cases[i].to);
		p[i].addr = cr_strdup(cases[i].addr);
	}
	return cr_make_param_array(struct dest_case, p, ARRAY_SIZE(cases));
}

ParameterizedTest(struct dest_case *c, policy, parses_each_destination_form)
{
	char yaml[512];
	uint8_t want[16] = { 0 };
	struct policy *p;
	const struct policy_route *r;

	snprintf(yaml, sizeof(yaml), ONE_ROUTE("%s"), c->to);
	p = parse_ok(yaml);
	r = &p->workloads[0].routes[0];
	cr_expect_eq(r->kind, c->kind, "%s: kind %d", c->to, r->kind);
	cr_expect_eq(r->port, c->port, "%s: port %u", c->to, r->port);
	if (c->kind == POLICY_DEST_HOST) {
		cr_expect_str_eq(r->host, c->addr);
		cr_expect_eq(r->naddrs, 0);
	} else {
		cr_assert_eq(r->naddrs, 1, "%s", c->to);
		cr_assert_eq(inet_pton(c->family, c->addr, want), 1);
		cr_expect_eq(r->addrs[0].family, c->family, "%s", c->to);
		cr_expect_eq(r->addrs[0].prefixlen, c->prefixlen, "%s", c->to);
		cr_expect_arr_eq(r->addrs[0].addr, want, sizeof(want), "%s", c->to);
		cr_expect_null(r->host);
	}
	policy_free(p);
}

Test(policy, resolves_localhost_to_loopback)
{
	struct policy *p = parse_ok(ONE_ROUTE("localhost:80") ROUTE("10.0.0.1:80"));
	struct policy_route *r = &p->workloads[0].routes[0];
	char err[POLICY_ERR_LEN] = "";
	static const uint8_t v4[4] = { 127, 0, 0, 1 };
	int seen = 0;

	cr_assert_eq(policy_resolve(p, err, sizeof(err)), 0, "%s", err);
	cr_assert_gt(r->naddrs, 0);
	for (size_t i = 0; i < r->naddrs; i++) {
		const struct policy_addr *a = &r->addrs[i];

		if (a->family == AF_INET) {
			cr_expect_arr_eq(a->addr, v4, 4);
			cr_expect_eq(a->prefixlen, 32);
		} else {
			cr_expect_eq(a->family, AF_INET6);
			cr_expect(IN6_IS_ADDR_LOOPBACK((const struct in6_addr *)a->addr));
			cr_expect_eq(a->prefixlen, 128);
		}
		for (size_t j = 0; j < i; j++)
			cr_expect(memcmp(&r->addrs[j], a, sizeof(*a)), "duplicate address %zu", i);
		seen++;
	}
	cr_expect(policy_route_match(r, r->addrs[0].family, r->addrs[0].addr, 80));
	/* resolving again replaces the list instead of appending to it */
	cr_assert_eq(policy_resolve(p, err, sizeof(err)), 0, "%s", err);
	cr_expect_eq((int)r->naddrs, seen);
	cr_expect_eq(p->workloads[0].routes[1].naddrs, 1, "literal routes are untouched");
	policy_free(p);
}

Test(policy, resolve_error_points_at_the_route)
{
	struct policy *p = parse_ok(ONE_ROUTE("10.0.0.1:80") ROUTE("no-such-host.invalid:80"));
	char err[POLICY_ERR_LEN] = "";

	/*
	 * RFC 6761 6.4: .invalid never resolves.  Bound the wait on a host whose DNS
	 * server does not answer (a per-test .timeout would leak in Criterion 2.4's runner).
	 */
	setenv("RES_OPTIONS", "timeout:1 attempts:1", 1);
	cr_expect_lt(policy_resolve(p, err, sizeof(err)), 0);
	cr_expect(strstr(err, "p.yaml:8:9: cannot resolve no-such-host.invalid"), "%s", err);
	policy_free(p);
}

/* --- the route matcher ------------------------------------------------------------ */

static int match4(const struct policy_route *r, const char *ip, uint16_t port)
{
	uint8_t a[4];

	cr_assert_eq(inet_pton(AF_INET, ip, a), 1);
	return policy_route_match(r, AF_INET, a, port);
}

static int match6(const struct policy_route *r, const char *ip, uint16_t port)
{
	uint8_t a[16];

	cr_assert_eq(inet_pton(AF_INET6, ip, a), 1);
	return policy_route_match(r, AF_INET6, a, port);
}

Test(policy, route_match_compares_family_prefix_bits_and_port)
{
	struct policy *p = parse_ok(ONE_ROUTE("172.16.0.0/12:80") ROUTE("\"[fd00::]/9:443\"")
				    ROUTE("10.1.2.3:8080"));
	const struct policy_route *r = p->workloads[0].routes;

	cr_expect(match4(&r[0], "172.16.0.1", 80));
	cr_expect(match4(&r[0], "172.31.255.255", 80));
	cr_expect_not(match4(&r[0], "172.32.0.0", 80), "outside the /12");
	cr_expect_not(match4(&r[0], "172.15.255.255", 80));
	cr_expect_not(match4(&r[0], "172.16.0.1", 81), "other port");
	cr_expect_not(match6(&r[0], "::ffff:172.16.0.1", 80), "other family");

	cr_expect(match6(&r[1], "fd00::1", 443));
	cr_expect(match6(&r[1], "fd7f:ffff::1", 443));
	cr_expect_not(match6(&r[1], "fd80::1", 443), "outside the /9");
	cr_expect_not(match6(&r[1], "fd00::1", 80));

	cr_expect(match4(&r[2], "10.1.2.3", 8080));
	cr_expect_not(match4(&r[2], "10.1.2.4", 8080));
	cr_expect_not(policy_route_match(NULL, AF_INET, (const uint8_t *)"\0\0\0\0", 80));
	policy_free(p);
}

/* --- header templates -------------------------------------------------------------- */

struct header_case {
	const char *header;
	const char *name, *prefix, *suffix;
};

ParameterizedTestParameters(policy, splits_header_templates)
{
	static struct header_case cases[] = {
		/* VALID */
		{ "Authorization: Bearer {token}", "Authorization", "Bearer ", "" },
		{ "X-Api-Key: {token}", "X-Api-Key", "", "" },
		{ "X-Api-Key:{token}", "X-Api-Key", "", "" },
		{ "X-Api-Key:    {token}", "X-Api-Key", "", "" },
		{ "Authorization: Token token={token}, v=1", "Authorization", "Token token=",
		  ", v=1" },
		{ "x_custom!#$%&'*+-.^`|~: pre {token} post", "x_custom!#$%&'*+-.^`|~", "pre ",
		  " post" },
		{ "Cookie: session={token}", "Cookie", "session=", "" },
	};
	struct header_case *p = cr_malloc(sizeof(cases));

	cr_assert_not_null(p);
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		p[i].header = cr_strdup(cases[i].header);
		p[i].name = cr_strdup(cases[i].name);
		p[i].prefix = cr_strdup(cases[i].prefix);
		p[i].suffix = cr_strdup(cases[i].suffix);
	}
	return cr_make_param_array(struct header_case, p, ARRAY_SIZE(cases));
}

ParameterizedTest(struct header_case *c, policy, splits_header_templates)
{
	char yaml[512];
	struct policy *p;
	const struct policy_route *r;

	/* single-quoted YAML: only ' needs escaping ('') */
	snprintf(yaml, sizeof(yaml), ONE_ROUTE("10.0.0.1:80") "        header: '");
	for (const char *s = c->header; *s; s++)
		snprintf(yaml + strlen(yaml), sizeof(yaml) - strlen(yaml), *s == '\'' ? "''" : "%c",
			 *s);
	strcat(yaml, "'\n");
	p = parse_ok(yaml);
	r = &p->workloads[0].routes[0];
	cr_expect_str_eq(r->header_name, c->name, "%s", c->header);
	cr_expect_str_eq(r->header_prefix, c->prefix, "%s", c->header);
	cr_expect_str_eq(r->header_suffix, c->suffix, "%s", c->header);
	policy_free(p);
}

/* --- durations ----------------------------------------------------------------------- */

struct duration_case {
	const char *in;
	int rc;
	uint32_t secs;
};

ParameterizedTestParameters(policy, parses_durations)
{
	static struct duration_case cases[] = {
		/* VALID */
		{ "30s", 0, 30 }, { "5m", 0, 300 }, { "1h", 0, 3600 }, { "90", 0, 90 },
		{ "24h", 0, 86400 }, { "1440m", 0, 86400 }, { "0", 0, 0 }, { "007s", 0, 7 },
		{ "4294967295", 0, UINT32_MAX },
		/* MALFORMED */
		{ "", -EINVAL, 0 }, { "s", -EINVAL, 0 }, { "5x", -EINVAL, 0 },
		{ "5 m", -EINVAL, 0 }, { " 5m", -EINVAL, 0 }, { "5m ", -EINVAL, 0 },
		{ "-5", -EINVAL, 0 }, { "+5", -EINVAL, 0 }, { "1h30m", -EINVAL, 0 },
		{ "1.5h", -EINVAL, 0 }, { "5ms", -EINVAL, 0 }, { "1d", 0, 86400 }, { "1w", -EINVAL, 0 },
		{ "5M", -EINVAL, 0 },
		/* TOO LONG */
		{ "4294967296", -EINVAL, 0 }, { "1193047h", -EINVAL, 0 },
		{ "99999999999999999999999s", -EINVAL, 0 },
	};
	struct duration_case *p = cr_malloc(sizeof(cases));

	cr_assert_not_null(p);
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		p[i] = cases[i];
		p[i].in = cr_strdup(cases[i].in);
	}
	return cr_make_param_array(struct duration_case, p, ARRAY_SIZE(cases));
}

ParameterizedTest(struct duration_case *c, policy, parses_durations)
{
	uint32_t secs = 12345;
	int rc = policy_parse_duration(c->in, &secs);

	cr_expect_eq(rc, c->rc, "\"%s\": rc %d", c->in, rc);
	if (!c->rc)
		cr_expect_eq(secs, c->secs, "\"%s\": %u", c->in, secs);
	else
		cr_expect_eq(secs, 12345, "\"%s\": output written on error", c->in);
}

Test(policy, route_ttl_takes_every_duration_form)
{
	static const struct { const char *ttl; uint32_t secs; } t[] = {
		{ "1s", 1 }, { "30s", 30 }, { "5m", 300 }, { "1h", 3600 }, { "90", 90 },
		{ "\"120\"", 120 }, { "24h", 86400 },
	};
	char yaml[512];

	for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
		struct policy *p;

		snprintf(yaml, sizeof(yaml), HEAD WL "      - to: 10.0.0.1:80\n"
			 "        credential: { type: jwt, audience: a, ttl: %s }\n", t[i].ttl);
		p = parse_ok(yaml);
		cr_expect_eq(p->workloads[0].routes[0].ttl_s, t[i].secs, "%s", t[i].ttl);
		policy_free(p);
	}
}

/* --- malformed policies ------------------------------------------------------------- */

struct bad_case {
	const char *yaml;
	int line, col;
	const char *msg;	/* a substring of the message */
};

#define CRED(extra)	"        credential: { type: jwt, audience: a" extra " }\n"
#define RT		"      - to: 10.0.0.1:80\n"

ParameterizedTestParameters(policy, rejects_malformed_policies)
{
	static struct bad_case cases[] = {
		/* MALFORMED: YAML itself */
		{ "trust_domain: a\nlisten: { port: 1\n", 3, 1,
		  "YAML syntax error: did not find expected ',' or '}' (while parsing a flow "
		  "mapping that started at 2:9)" },
		{ "trust_domain: a\n\tlisten: {}\n", 2, 1, "YAML syntax error: found a tab" },
		{ "trust_domain: a\n  b: c\n", 2, 4, "mapping values are not allowed" },
		{ "trust_domain: \"abc\n", 2, 1, "found unexpected end of stream" },
		{ "trust_domain: a\nx: &big [1, 2]\n", 2, 4,
		  "YAML anchors and aliases are not allowed (anchor \"big\")" },
		{ "trust_domain: *big\n", 1, 15, "aliases are not allowed (alias \"big\")" },
		{ "trust_domain: !!str a\n", 1, 15, "YAML tags are not allowed" },
		{ "trust_domain: a\n---\ntrust_domain: b\n", 2, 1, "one YAML document" },
		{ "trust_domain: a\nx: b\xc3(\n", 2, 6,
		  "YAML error: invalid trailing UTF-8 octet" },
		{ "trust_domain: a\nx: \x01\n", 2, 4, "control characters are not allowed" },
		{ "a: [[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]\n", 1, 19,
		  "nesting is deeper than 16 levels" },
		{ "# nothing here\n", 1, 1, "the policy is empty" },
		/* MALFORMED: structure */
		{ "- trust_domain: a\n", 1, 1, "expected a mapping, got a list" },
		{ "listen: { port: 1 }\n", 1, 1,
		  "missing required key \"trust_domain\" in policy" },
		{ "trust_domain: a\ntrust_domain: b\n", 2, 1,
		  "duplicate key \"trust_domain\" in policy (first at line 1, column 1)" },
		{ "trust_domain: a\ntrsut: b\n", 2, 1,
		  "unknown key \"trsut\" in policy (expected: trust_domain, listen, admin, "
		  "state_dir, audit, control_socket, ca, tls_probes, timeouts, workloads)" },
		{ HEAD WL RT CRED("") "        rotes: x\n", 8, 9,
		  "unknown key \"rotes\" in route (expected: to, credential, header, tls, "
		  "upstream, ca_file, server_name" },
		{ "trust_domain: a\n? [x]\n: y\n", 2, 3, "keys in policy must be strings" },
		{ "trust_domain: a\nlisten: [1]\n", 2, 9,
		  "listen: expected a mapping, got a list" },
		{ "trust_domain: [a]\n", 1, 15, "trust_domain: expected a string, got a list" },
		{ "trust_domain:\n", 1, 14, "trust_domain: value is missing" },
		{ "trust_domain: \"a\\0b\"\n", 1, 15, "control character 0x00" },
		{ "trust_domain: a\nworkloads:\n", 2, 11,
		  "workloads: expected a list, got an empty value (write [] for no workloads)" },
		/* MALFORMED: top-level values */
		{ "trust_domain: Example.org\n", 1, 15,
		  "trust_domain: \"Example.org\" must be lowercase" },
		{ "trust_domain: a..b\n", 1, 15, "has an empty label" },
		{ "trust_domain: a\nlisten: { port: 70000 }\n", 2, 17,
		  "listen.port: 70000 is out of range 1..65535" },
		{ "trust_domain: a\nlisten:\n  port: http\n", 3, 9,
		  "listen.port: \"http\": the port is not a number" },
		{ "trust_domain: a\nadmin: { listen: localhost:15002 }\n", 2, 18,
		  "admin.listen: \"localhost:15002\": expected an IPv4 address" },
		{ "trust_domain: a\nstate_dir: var/lib/lanyard\n", 2, 12,
		  "state_dir: \"var/lib/lanyard\" is not an absolute path" },
		{ "trust_domain: a\naudit: { path: audit.jsonl }\n", 2, 16,
		  "audit.path: \"audit.jsonl\" is not an absolute path" },
		{ "trust_domain: a\ncontrol_socket: /run/"
		  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx.sock\n", 2, 17,
		  "control_socket: path is longer than 107 bytes" },
		/* MALFORMED: workloads */
		{ HEAD "workloads:\n  - name: Billing\n", 3, 11,
		  "workloads[0].name: \"Billing\" must match [a-z0-9][a-z0-9._-]{0,62}" },
		{ HEAD "workloads:\n  - name: b\n", 3, 5,
		  "workloads[0]: missing required key \"match\" in workload" },
		{ HEAD "workloads:\n  - name: b\n    match: { cgroup: system.slice/b }\n", 4, 22,
		  "workloads[0].match.cgroup: \"system.slice/b\" is not an absolute path" },
		{ HEAD "workloads:\n  - name: b\n    match: { cgroup: /a/../b }\n", 4, 22,
		  "may not contain \".\" or \"..\"" },
		{ HEAD "workloads:\n  - name: b\n    match: { cgroup: /a//b }\n", 4, 22,
		  "has an empty component" },
		{ HEAD "workloads:\n  - name: b\n    match: { cgroup: / }\n", 4, 22,
		  "the root cgroup" },
		{ HEAD WL, 5, 12, "workloads[0].routes: expected a list, got an empty value" },
		{ HEAD WL "      []\n", 6, 7,
		  "workloads[0].routes: at least one route is required" },
		{ HEAD WL RT CRED("") "  - name: billing\n    match: { cgroup: /b }\n    routes:\n"
		  RT CRED(""), 8, 11, "workloads[1].name: duplicate workload name \"billing\" "
		  "(first at line 3)" },
		{ HEAD WL RT CRED("") "  - name: other\n"
		  "    match: { cgroup: /system.slice/billing.service }\n    routes:\n" RT CRED(""),
		  9, 22, "is already the cgroup of workload \"billing\"" },
		/* MALFORMED: routes */
		{ HEAD WL RT, 6, 9,
		  "workloads[0].routes[0]: missing required key \"credential\" in route" },
		{ ONE_ROUTE("10.0.0.1"), 6, 13, "routes[0].to: \"10.0.0.1\": missing \":port\"" },
		{ ONE_ROUTE("10.0.0.1:0"), 6, 13, "the port is out of range 1..65535" },
		{ ONE_ROUTE("10.0.0.1:65536"), 6, 13, "the port is out of range 1..65535" },
		{ ONE_ROUTE("10.0.0.1:080"), 6, 13, "the port has a leading zero" },
		{ ONE_ROUTE("10.0.0.256:80"), 6, 13, "invalid IPv4 address" },
		{ ONE_ROUTE("fd00::1:80"), 6, 13, "an IPv6 address must be in brackets" },
		{ ONE_ROUTE("\"[fd00::g]:80\""), 6, 13, "invalid IPv6 address" },
		{ ONE_ROUTE("\"[fd00::1:80\""), 6, 13, "missing ']'" },
		{ ONE_ROUTE("10.0.0.1/8:80"), 6, 13,
		  "\"10.0.0.1/8:80\": host bits are set (the network is 10.0.0.0/8)" },
		{ ONE_ROUTE("\"[fd00::1]/8:80\""), 6, 13,
		  "host bits are set (the network is [fd00::]/8)" },
		{ ONE_ROUTE("10.0.0.0/33:80"), 6, 13, "the prefix length must be /0../32" },
		{ ONE_ROUTE("\"[fd00::]/129:80\""), 6, 13, "the prefix length must be /0../128" },
		{ ONE_ROUTE("10.0.0.0/:80"), 6, 13, "the prefix length must be" },
		{ ONE_ROUTE("-api.example.org:80"), 6, 13, "a host name label starts with '-'" },
		{ ONE_ROUTE("api_1.example.org:80"), 6, 13, "may contain only letters, digits" },
		{ ONE_ROUTE("example.123:80"), 6, 13, "last label is all digits" },
		{ ONE_ROUTE("10.0.0.1:80") RT CRED(""), 8, 13,
		  "workloads[0].routes[1].to: \"10.0.0.1:80\" is the same destination as routes[0] "
		  "(line 6)" },
		{ ONE_ROUTE("10.0.0.1:80") "      - to: 10.0.0.1/32:80\n" CRED(""), 8, 13,
		  "is the same destination as routes[0]" },
		{ ONE_ROUTE("API.example.org:80") "      - to: api.EXAMPLE.org:80\n" CRED(""),
		  8, 13,
		  "is the same destination as routes[0]" },
		/* MALFORMED: credentials */
		{ HEAD WL RT "        credential: jwt\n", 7, 21,
		  "workloads[0].routes[0].credential: expected a mapping, got a scalar" },
		{ HEAD WL RT "        credential: { type: oauth3, audience: a }\n", 7, 29,
		  "credential.type: \"oauth3\" is not supported (supported: jwt, x509, oauth2, "
		  "token_exchange, exec, static)" },
		{ HEAD WL RT "        credential: { type: jwt }\n", 7, 21,
		  "credential: missing required key \"audience\" in credential (type jwt)" },
		{ HEAD WL RT "        credential: { type: jwt, audience: \"\" }\n", 7, 44,
		  "credential.audience: must not be empty" },
		{ HEAD WL RT CRED(", ttl: 25h"), 7, 52,
		  "credential.ttl: \"25h\" is out of range 1s..24h" },
		{ HEAD WL RT CRED(", ttl: 0s"), 7, 52, "is out of range 1s..24h" },
		{ HEAD WL RT CRED(", ttl: 5w"), 7, 52, "credential.ttl: \"5w\" is not a duration" },
		/* MALFORMED: header templates */
		{ HEAD WL RT CRED("") "        header: \"Authorization: Bearer\"\n", 8, 17,
		  "header: \"Authorization: Bearer\": the template must contain {token}" },
		{ HEAD WL RT CRED("") "        header: \"X: {token}.{token}\"\n", 8, 17,
		  "{token} must appear exactly once" },
		{ HEAD WL RT CRED("") "        header: \"X: {tokn} {token}\"\n", 8, 17,
		  "only the {token} placeholder is supported" },
		{ HEAD WL RT CRED("") "        header: \"{token}\"\n", 8, 17,
		  "expected \"Name: template\"" },
		{ HEAD WL RT CRED("") "        header: \"X Key: {token}\"\n", 8, 17,
		  "the header name is not an HTTP token" },
		{ HEAD WL RT CRED("") "        header: \"X-Key : {token}\"\n", 8, 17,
		  "no space is allowed before ':'" },
		{ HEAD WL RT CRED("") "        header: \"Host: {token}\"\n", 8, 17,
		  "controls message framing or routing" },
		{ HEAD WL RT CRED("") "        header: \"transfer-encoding: {token}\"\n", 8, 17,
		  "controls message framing or routing" },
		{ HEAD WL RT CRED("") "        header: \"X: a{token}\\r\\nHost: evil\"\n", 8, 17,
		  "control character 0x0d" },
		{ HEAD WL RT CRED("") "        header: \"X: \\u00e9{token}\"\n", 8, 17,
		  "the template must be printable ASCII" },
		{ HEAD WL RT CRED("") "        header: \"X: {token} \"\n", 8, 17,
		  "must not end with a space" },
	};
	struct bad_case *p = cr_malloc(sizeof(cases));

	cr_assert_not_null(p);
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		p[i] = cases[i];
		p[i].yaml = cr_strdup(cases[i].yaml);
		p[i].msg = cr_strdup(cases[i].msg);
	}
	return cr_make_param_array(struct bad_case, p, ARRAY_SIZE(cases));
}

/* The TLS keys: same table shape, its own list so that each case says what it checks. */
#define TLS(k)		"        " k "\n"
/* a passthrough route without any other key, lines 6-7 */
#define PT(to)		"      - to: " to "\n        tls: passthrough\n"
ParameterizedTestParameters(policy, rejects_malformed_tls_settings)
{
	static struct bad_case cases[] = {
		/* MALFORMED: tls */
		{ HEAD WL RT CRED("") TLS("tls: Intercept"), 8, 14,
		  "\"Intercept\" is not a TLS mode (intercept, originate, passthrough)" },
		{ HEAD WL RT CRED("") TLS("tls: [intercept]"), 8, 14,
		  "tls: expected a string, got a list" },
		{ HEAD WL RT CRED("") TLS("tls:"), 8, 13, "tls: value is missing" },
		{ HEAD WL "      - to: a.example.org:443\n" TLS("tls: intercept"), 6, 9,
		  "workloads[0].routes[0]: missing required key \"credential\" in route" },
		/* MALFORMED: passthrough */
		{ HEAD WL PT("10.0.0.1:443"), 6, 9,
		  "workloads[0].routes[0]: a tls: passthrough route to an address needs an sni: "
		  "list of the server names it allows" },
		{ HEAD WL PT("10.0.0.0/8:443"), 6, 9, "needs an sni: list" },
		{ HEAD WL PT("api.example.org:443") CRED(""), 8, 21,
		  "routes[0].credential: passthrough routes carry no credential" },
		{ HEAD WL PT("api.example.org:443") TLS("header: \"X: {token}\""), 8, 17,
		  "routes[0].header: passthrough routes carry no credential" },
		{ HEAD WL PT("api.example.org:443") TLS("server_name: api.example.org"), 8, 22,
		  "server_name is only used with tls: intercept or originate" },
		{ HEAD WL PT("api.example.org:443") TLS("upstream: { port: 8443 }"), 8, 19,
		  "upstream is only used with tls: intercept or originate" },
		{ HEAD WL PT("10.0.0.1:443") TLS("sni: []"), 8, 14,
		  "routes[0].sni: at least one server name is required" },
		{ HEAD WL PT("10.0.0.1:443") TLS("sni: a.example.org"), 8, 14,
		  "routes[0].sni: expected a list of server names, got a scalar" },
		{ HEAD WL PT("10.0.0.1:443") TLS("sni: [a.example, \"*.org\"]"), 8, 26,
		  "routes[0].sni[1]: \"*.org\": a wildcard must be followed by at least two "
		  "labels" },
		{ HEAD WL PT("10.0.0.1:443") TLS("sni: [\"*.*.example.org\"]"), 8, 15,
		  "routes[0].sni[0]: \"*.*.example.org\": a host name may contain only letters" },
		{ HEAD WL PT("10.0.0.1:443") TLS("sni: [\"a.*.example.org\"]"), 8, 15,
		  "may contain only letters" },
		{ HEAD WL PT("10.0.0.1:443") TLS("sni: [10.0.0.1]"), 8, 15,
		  "the host name's last label is all digits" },
		{ HEAD WL PT("10.0.0.1:443") TLS("sni: [[a.example.org]]"), 8, 15,
		  "routes[0].sni[0]: expected a string, got a list" },
		{ HEAD WL RT CRED("") TLS("sni: [a.example.org]"), 8, 14,
		  "routes[0].sni: sni is only used with tls: passthrough" },
		{ HEAD WL RT CRED("") TLS("tls: intercept") TLS("sni: [a.example.org]"), 9, 14,
		  "sni is only used with tls: passthrough" },
		/* MALFORMED: upstream */
		{ HEAD WL RT CRED("") TLS("tls: originate") TLS("upstream: { port: 0 }"), 9, 27,
		  "routes[0].upstream.port: \"0\": the port is out of range 1..65535" },
		{ HEAD WL RT CRED("") TLS("tls: originate") TLS("upstream: { port: https }"), 9, 27,
		  "the port is not a number" },
		{ HEAD WL RT CRED("") TLS("tls: originate") TLS("upstream: {}"), 9, 19,
		  "routes[0].upstream: missing required key \"port\" in upstream" },
		{ HEAD WL RT CRED("") TLS("tls: originate") TLS("upstream: { host: x }"), 9, 21,
		  "unknown key \"host\" in upstream (expected: port)" },
		{ HEAD WL RT CRED("") TLS("tls: originate") TLS("upstream: 8443"), 9, 19,
		  "upstream: expected a mapping, got a scalar" },
		/* MALFORMED: ca_file, server_name */
		{ HEAD WL RT CRED("") TLS("tls: originate") TLS("ca_file: ca.pem"), 9, 18,
		  "routes[0].ca_file: \"ca.pem\" is not an absolute path" },
		{ HEAD WL RT CRED("") TLS("tls: intercept") TLS("server_name: 10.0.0.1"), 9, 22,
		  "routes[0].server_name: \"10.0.0.1\": the host name's last label is all digits" },
		{ HEAD WL RT CRED("") TLS("tls: intercept") TLS("server_name: a_b.example"), 9, 22,
		  "may contain only letters, digits" },
		{ HEAD WL RT CRED("") TLS("tls: intercept") TLS("server_name: \"*.example.org\""),
		  9, 22, "may contain only letters, digits" },
		{ ONE_ROUTE("api.example.org:443") TLS("tls: intercept")
		  TLS("server_name: other.example.org"), 9, 22,
		  "routes[0].server_name: \"other.example.org\" differs from the route's host name "
		  "\"api.example.org\"" },
		/* AMBIGUOUS: TLS settings on a plain route would be silently ignored */
		{ HEAD WL RT CRED("") TLS("upstream: { port: 8443 }"), 8, 19,
		  "routes[0].upstream: upstream is only used with tls: intercept or originate" },
		{ HEAD WL RT CRED("") TLS("ca_file: /etc/ca.pem"), 8, 18,
		  "routes[0].ca_file: ca_file is only used with tls: intercept or originate" },
		{ HEAD WL RT CRED("") TLS("server_name: api.example.org"), 8, 22,
		  "server_name is only used with tls: intercept or originate" },
		/* MALFORMED: ca */
		{ HEAD "ca: { cert: /etc/ca.crt }\n", 2, 5,
		  "ca: missing required key \"key\" in ca" },
		{ HEAD "ca: { cert: ca.crt, key: /etc/ca.key }\n", 2, 13,
		  "ca.cert: \"ca.crt\" is not an absolute path" },
		{ HEAD "ca: { cert: /a, key: /b, pass: x }\n", 2, 26,
		  "unknown key \"pass\" in ca (expected: cert, key)" },
		{ HEAD "ca: /etc/ca.crt\n", 2, 5, "ca: expected a mapping, got a scalar" },
	};
	struct bad_case *p = cr_malloc(sizeof(cases));

	cr_assert_not_null(p);
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		p[i] = cases[i];
		p[i].yaml = cr_strdup(cases[i].yaml);
		p[i].msg = cr_strdup(cases[i].msg);
	}
	return cr_make_param_array(struct bad_case, p, ARRAY_SIZE(cases));
}

static void expect_refused(const struct bad_case *c)
{
	char err[POLICY_ERR_LEN] = "", where[32];
	struct policy *p = parse_guarded(c->yaml, err);

	cr_expect_null(p, "accepted:\n%s", c->yaml);
	policy_free(p);
	snprintf(where, sizeof(where), "p.yaml:%d:%d: ", c->line, c->col);
	cr_expect(!strncmp(err, where, strlen(where)), "want %s..., got: %s", where, err);
	cr_expect(strstr(err, c->msg), "want \"%s\" in: %s", c->msg, err);
	for (const char *s = err; *s; s++)
		cr_expect(*s >= 0x20 && *s < 0x7f, "unprintable byte in: %s", err);
}

ParameterizedTest(struct bad_case *c, policy, rejects_malformed_tls_settings)
{
	expect_refused(c);
}

ParameterizedTest(struct bad_case *c, policy, rejects_malformed_policies)
{
	expect_refused(c);
}

Test(policy, refuses_a_policy_larger_than_1mib)
{
	size_t len = 1024 * 1024 + 1;
	char *buf = malloc(len), err[POLICY_ERR_LEN] = "";

	cr_assert_not_null(buf);
	memset(buf, '#', len);
	cr_expect_null(policy_parse(buf, len, "big.yaml", err, sizeof(err)));
	cr_expect(strstr(err, "big.yaml:1:1: the policy is larger than 1048576 bytes"), "%s", err);
	free(buf);
}

Test(policy, an_alias_bomb_is_refused_at_the_first_anchor)
{
	const char *bomb = "trust_domain: a\n"
			   "a: &a [\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\"]\n"
			   "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
			   "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
			   "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n";
	char err[POLICY_ERR_LEN] = "";

	cr_expect_null(parse_guarded(bomb, err));
	cr_expect(strstr(err, "p.yaml:2:4: YAML anchors and aliases are not allowed"), "%s", err);
}

Test(policy, error_buffer_is_optional_and_truncated_safely)
{
	char small[16];

	cr_expect_null(policy_parse("x: 1\n", 5, "p.yaml", NULL, 0));
	cr_expect_null(policy_parse("x: 1\n", 5, "p.yaml", small, sizeof(small)));
	cr_expect_eq(strlen(small), sizeof(small) - 1);
	cr_expect_null(policy_parse(NULL, 0, NULL, small, sizeof(small)));
	cr_expect(!strncmp(small, "<buffer>:1:1", 12), "%s", small);
}

/* --- ownership ------------------------------------------------------------------------ */

static int hook_calls;
static void *hook_last;

static void count_hook(void *cred)
{
	hook_calls++;
	hook_last = cred;
}

Test(policy, free_releases_route_credentials_through_the_hook)
{
	struct policy *p = parse_ok(ONE_ROUTE("10.0.0.1:80") ROUTE("10.0.0.2:80"));
	int token = 0;

	policy_free(NULL);
	p->workloads[0].routes[1].cred = &token;
	policy_cred_free_hook = count_hook;
	policy_free(p);
	policy_cred_free_hook = NULL;
	cr_expect_eq(hook_calls, 1, "the hook runs once per route that holds a credential");
	cr_expect_eq(hook_last, &token);

	/* without a hook the pointer is left alone (and not freed) */
	p = parse_ok(ONE_ROUTE("10.0.0.1:80"));
	p->workloads[0].routes[0].cred = &token;
	policy_free(p);
	cr_expect_eq(hook_calls, 1);
}

Test(policy, free_releases_route_tls_contexts_through_their_hook)
{
	struct policy *p = parse_ok(ONE_ROUTE("10.0.0.1:80") ROUTE("10.0.0.2:80"));
	int ctx = 0;

	hook_calls = 0;
	p->workloads[0].routes[0].tls_ctx = &ctx;
	policy_tls_free_hook = count_hook;
	policy_free(p);
	policy_tls_free_hook = NULL;
	cr_expect_eq(hook_calls, 1, "the hook runs once per route that holds TLS contexts");
	cr_expect_eq(hook_last, &ctx);
}

/* --- files ------------------------------------------------------------------------------ */

static char *write_policy(const char *text, mode_t mode)
{
	char *path = strdup("/tmp/ly-test-policy-XXXXXX");
	int fd;

	cr_assert_not_null(path);
	fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	cr_assert_eq(fchmod(fd, mode), 0);
	close(fd);
	return path;
}

static void expect_load_refused(const char *path, const char *msg)
{
	char err[POLICY_ERR_LEN] = "";
	struct policy *p = policy_load(path, err, sizeof(err));

	cr_expect_null(p, "%s was loaded", path);
	policy_free(p);
	cr_expect(!strncmp(err, path, strlen(path)), "error does not name the file: %s", err);
	cr_expect(strstr(err, msg), "want \"%s\" in: %s", msg, err);
}

Test(policy, loads_a_private_file_and_reports_errors_with_its_name)
{
	char *path = write_policy(full_yaml, 0600), err[POLICY_ERR_LEN] = "", want[128];
	struct policy *p = policy_load(path, err, sizeof(err));

	cr_assert_not_null(p, "%s", err);
	cr_expect_str_eq(p->path, path);
	cr_expect_eq(p->nworkloads, 2);
	policy_free(p);
	unlink(path);
	free(path);

	path = write_policy("trust_domain: a\nlisten: { port: 0 }\n", 0644);
	cr_expect_null(policy_load(path, err, sizeof(err)));
	snprintf(want, sizeof(want), "%s:2:17: listen.port: 0 is out of range", path);
	cr_expect(strstr(err, want), "%s", err);
	unlink(path);
	free(path);
}

Test(policy, refuses_group_or_other_writable_files)
{
	static const mode_t modes[] = { 0666, 0620, 0602, 0660 };

	for (size_t i = 0; i < ARRAY_SIZE(modes); i++) {
		char *path = write_policy("trust_domain: a\n", modes[i]);

		expect_load_refused(path, "refusing a group- or other-writable policy file");
		unlink(path);
		free(path);
	}
}

Test(policy, refuses_files_owned_by_another_user)
{
	char *path;

	if (geteuid() != 0)
		cr_skip_test("needs root to chown the file");
	path = write_policy("trust_domain: a\n", 0600);
	cr_assert_eq(chown(path, 4242, 4242), 0);
	expect_load_refused(path, "refusing a policy file owned by uid 4242");
	unlink(path);
	free(path);
}

Test(policy, refuses_large_missing_and_special_files)
{
	char *path = write_policy("", 0600), dir[] = "/tmp/ly-test-policy-dir-XXXXXX";
	FILE *f = fopen(path, "w");

	cr_assert_not_null(f);
	for (int i = 0; i < 1100; i++)
		fprintf(f, "# %01020d\n", i);
	fclose(f);
	expect_load_refused(path, "the policy file is larger than 1048576 bytes");
	unlink(path);
	free(path);

	expect_load_refused("/nonexistent/lanyard.yaml", "cannot open: No such file");
	cr_assert_not_null(mkdtemp(dir));
	expect_load_refused(dir, "not a regular file");
	rmdir(dir);
	cr_assert_eq(mkfifo(dir, 0600), 0);
	expect_load_refused(dir, "not a regular file");
	unlink(dir);
}

/* --- x509 credentials and mtls ------------------------------------------------------ */

static const char x509_yaml[] =
	"trust_domain: example.org\n"
	"workloads:\n"
	"  - name: billing\n"
	"    match: { cgroup: /b }\n"
	"    routes:\n"
	"      - to: api.example.org:443\n"
	"        tls: intercept\n"
	"        credential: { type: x509 }\n"
	"      - to: 10.0.0.1:80\n"
	"        tls: originate\n"
	"        server_name: api.example.org\n"
	"        credential: { type: x509, ttl: 2s }\n"
	"      - to: 10.0.0.2:80\n"
	"        tls: originate\n"
	"        server_name: api.example.org\n"
	"        credential: { type: jwt, audience: a, mtls: true }\n";

Test(policy, parses_x509_credentials_and_mtls_jwts)
{
	struct policy *p = parse_ok(x509_yaml);
	const struct policy_route *r;

	cr_assert_eq(p->workloads[0].nroutes, 3);
	r = &p->workloads[0].routes[0];
	cr_expect_eq(r->cred_type, POLICY_CRED_X509);
	cr_expect_eq(r->ttl_s, 3600, "x509 defaults to 1h");
	cr_expect_null(r->audience);
	cr_expect_null(r->header_name, "an x509 credential adds no header");
	r = &p->workloads[0].routes[1];
	cr_expect_eq(r->cred_type, POLICY_CRED_X509);
	cr_expect_eq(r->ttl_s, 2);
	r = &p->workloads[0].routes[2];
	cr_expect_eq(r->cred_type, POLICY_CRED_JWT);
	cr_expect_eq(r->mtls, 1);
	cr_expect_eq(r->ttl_s, POLICY_DEFAULT_TTL_S, "jwt keeps its 5m default");
	cr_expect_str_eq(r->header_name, "Authorization");
	policy_free(p);
}

#define X509(extra)	"        credential: { type: x509" extra " }\n"

ParameterizedTestParameters(policy, rejects_malformed_x509_credentials)
{
	static struct bad_case cases[] = {
		/* MALFORMED: x509 */
		{ HEAD WL RT X509(""), 7, 21,
		  "workloads[0].routes[0].credential: an x509 credential is only used with tls: "
		  "intercept or originate" },
		{ HEAD WL RT X509(", audience: a") TLS("tls: originate"), 7, 45,
		  "routes[0].credential.audience: an x509 credential has no audience" },
		{ HEAD WL RT X509(", mtls: true") TLS("tls: originate"), 7, 41,
		  "routes[0].credential.mtls: an x509 credential is always mTLS" },
		{ HEAD WL RT X509(", ttl: 25h") TLS("tls: originate"), 7, 40,
		  "credential.ttl: \"25h\" is out of range 1s..24h" },
		{ HEAD WL RT X509("") TLS("tls: originate") TLS("header: \"X: {token}\""), 9, 17,
		  "routes[0].header: an x509 credential is not sent in a header" },
		/* MALFORMED: mtls */
		{ HEAD WL RT CRED(", mtls: true"), 7, 21,
		  "routes[0].credential: mtls is only used with tls: intercept or originate" },
		{ HEAD WL RT CRED(", mtls: yes") TLS("tls: originate"), 7, 53,
		  "credential.mtls: \"yes\" is not a boolean (true, false)" },
	};
	struct bad_case *p = cr_malloc(sizeof(cases));

	cr_assert_not_null(p);
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		p[i] = cases[i];
		p[i].yaml = cr_strdup(cases[i].yaml);
		p[i].msg = cr_strdup(cases[i].msg);
	}
	return cr_make_param_array(struct bad_case, p, ARRAY_SIZE(cases));
}

ParameterizedTest(struct bad_case *c, policy, rejects_malformed_x509_credentials)
{
	expect_refused(c);
}

/* --- mode: enforce | observe -------------------------------------------------------- */

static const char mode_yaml[] =
	"trust_domain: example.org\n"
	"workloads:\n"
	"  - name: legacy\n"
	"    mode: observe\n"
	"    match: { cgroup: /system.slice/legacy.service }\n"
	"  - name: billing\n"
	"    match: { cgroup: /system.slice/billing.service }\n"
	"    routes:\n"
	"      - to: 10.0.0.1:80\n"
	"        credential: { type: jwt, audience: a }\n"
	"    mode: enforce\n"
	"  - name: reports\n"
	"    match: { cgroup: /r }\n"
	"    routes: [ { to: 10.0.0.2:80, credential: { type: jwt, audience: a } } ]\n";

Test(policy, parses_workload_modes_and_observe_without_routes)
{
	struct policy *p = parse_ok(mode_yaml);

	cr_assert_eq(p->nworkloads, 3);
	cr_expect_eq(p->workloads[0].mode, POLICY_MODE_OBSERVE);
	cr_expect_eq(p->workloads[0].nroutes, 0);
	cr_expect_null(p->workloads[0].routes);
	cr_expect_str_eq(p->workloads[0].cgroup, "/system.slice/legacy.service");
	cr_expect_eq(p->workloads[1].mode, POLICY_MODE_ENFORCE, "mode after routes");
	cr_expect_eq(p->workloads[1].nroutes, 1);
	cr_expect_eq(p->workloads[2].mode, POLICY_MODE_ENFORCE, "enforce is the default");
	cr_expect_eq(p->workloads[2].nroutes, 1);
	cr_expect_eq(policy_workload_find(p, "legacy"), &p->workloads[0]);
	policy_free(p);

	/* flow style, mode last */
	p = parse_ok(HEAD "workloads: [ { name: a, match: { cgroup: /a }, mode: observe } ]\n");
	cr_expect_eq(p->workloads[0].mode, POLICY_MODE_OBSERVE);
	cr_expect_eq(p->workloads[0].nroutes, 0);
	cr_expect_eq(p->tls_probes, POLICY_TLS_PROBES_AUTO, "auto is the default probe scope");
	policy_free(p);
}

Test(policy, parses_the_tls_probe_scope)
{
	struct policy *p = parse_ok(HEAD "tls_probes: process\nworkloads: []\n");

	cr_expect_eq(p->tls_probes, POLICY_TLS_PROBES_PROCESS);
	policy_free(p);
	p = parse_ok(HEAD "workloads: []\ntls_probes: host\n");
	cr_expect_eq(p->tls_probes, POLICY_TLS_PROBES_HOST);
	policy_free(p);
	p = parse_ok(HEAD "tls_probes: auto\nworkloads: []\n");
	cr_expect_eq(p->tls_probes, POLICY_TLS_PROBES_AUTO);
	policy_free(p);
}

Test(policy, parses_the_timeouts)
{
	struct policy *p = parse_ok(HEAD "workloads: []\n");

	cr_expect_eq(p->head_timeout_ms, 10000, "the default head timeout");
	cr_expect_eq(p->idle_timeout_ms, 120000, "the default idle timeout");
	policy_free(p);
	p = parse_ok(HEAD "timeouts: { head: 3s, idle: 15m }\nworkloads: []\n");
	cr_expect_eq(p->head_timeout_ms, 3000);
	cr_expect_eq(p->idle_timeout_ms, 900000);
	policy_free(p);
	p = parse_ok(HEAD "timeouts:\n  idle: 24h\nworkloads: []\n");
	cr_expect_eq(p->head_timeout_ms, 10000, "head keeps its default");
	cr_expect_eq(p->idle_timeout_ms, 86400000);
	policy_free(p);
	p = parse_ok(HEAD "timeouts: { head: 300, idle: 300 }\nworkloads: []\n");
	cr_expect_eq(p->head_timeout_ms, 300000, "a number is seconds");
	policy_free(p);
}

/* an observe workload (lines 2-4), keys appended from line 5 */
#define OBS	"workloads:\n" \
		"  - name: legacy\n" \
		"    match: { cgroup: /l }\n"

ParameterizedTestParameters(policy, rejects_bad_modes_and_routes_on_observe_workloads)
{
	static struct bad_case cases[] = {
		/* MALFORMED: mode values */
		{ HEAD OBS "    mode: Observe\n", 5, 11,
		  "workloads[0].mode: \"Observe\" is not a mode (enforce, observe)" },
		{ HEAD OBS "    mode: audit\n", 5, 11, "\"audit\" is not a mode (enforce, observe)" },
		{ HEAD OBS "    mode:\n", 5, 10, "workloads[0].mode: value is missing" },
		{ HEAD OBS "    mode: [observe]\n", 5, 11,
		  "workloads[0].mode: expected a string, got a list" },
		{ HEAD OBS "    mode: observe\n    mode: observe\n", 6, 5,
		  "duplicate key \"mode\" in workload (first at line 5, column 5)" },
		/* MALFORMED: routes on an observe workload, before or after mode */
		{ HEAD OBS "    mode: observe\n    routes:\n" RT CRED(""), 7, 7,
		  "workloads[0].routes: a workload in mode observe is never redirected" },
		{ HEAD OBS "    routes:\n" RT CRED("") "    mode: observe\n", 6, 7,
		  "workloads[0].routes: a workload in mode observe is never redirected" },
		{ HEAD OBS "    mode: observe\n    routes: []\n", 6, 13,
		  "remove its routes, or set mode: enforce" },
		/* MALFORMED: enforce (explicit or default) without routes */
		{ HEAD OBS, 3, 5,
		  "workloads[0]: missing required key \"routes\" in workload (or set mode: observe)" },
		{ HEAD OBS "    mode: enforce\n", 3, 5, "missing required key \"routes\"" },
		{ HEAD OBS "    routes: []\n    mode: enforce\n", 5, 13,
		  "workloads[0].routes: at least one route is required" },
		/* a bad route is reported as such whatever the mode */
		{ HEAD OBS "    routes:\n      - to: 10.0.0.1\n" CRED("") "    mode: observe\n", 6, 13,
		  "routes[0].to: \"10.0.0.1\": missing \":port\"" },
		/* MALFORMED: the probe scope */
		{ HEAD "tls_probes: processes\n" OBS "    mode: observe\n", 2, 13,
		  "tls_probes: \"processes\" is not a probe scope (auto, host, process)" },
		{ HEAD "tls_probes: Host\n" OBS "    mode: observe\n", 2, 13,
		  "\"Host\" is not a probe scope (auto, host, process)" },
		{ HEAD "tls_probes:\n" OBS "    mode: observe\n", 2, 12, "tls_probes: value is missing" },
		{ HEAD "tls_probes: [host]\n" OBS "    mode: observe\n", 2, 13,
		  "tls_probes: expected a string, got a list" },
		/* MALFORMED: timeouts */
		{ HEAD "timeouts: { head: 0s }\n" OBS "    mode: observe\n", 2, 19,
		  "timeouts.head: \"0s\" is out of range 1s..5m" },
		{ HEAD "timeouts: { head: 6m }\n" OBS "    mode: observe\n", 2, 19,
		  "\"6m\" is out of range 1s..5m" },
		{ HEAD "timeouts: { idle: 25h }\n" OBS "    mode: observe\n", 2, 19,
		  "timeouts.idle: \"25h\" is out of range 1s..24h" },
		{ HEAD "timeouts: { idle: soon }\n" OBS "    mode: observe\n", 2, 19,
		  "timeouts.idle: \"soon\" is not a duration" },
		{ HEAD "timeouts: { idel: 5s }\n" OBS "    mode: observe\n", 2, 13,
		  "unknown key \"idel\" in timeouts (expected: head, idle)" },
		{ HEAD "timeouts: 5s\n" OBS "    mode: observe\n", 2, 11,
		  "timeouts: expected a mapping" },
		{ HEAD "timeouts: { idle: 5s }\n" OBS "    mode: observe\n", 2, 11,
		  "timeouts: idle (5s) must not be shorter than head (10s)" },
		{ HEAD "timeouts: { head: 30s, idle: 20s }\n" OBS "    mode: observe\n", 2, 11,
		  "idle (20s) must not be shorter than head (30s)" },
	};
	struct bad_case *p = cr_malloc(sizeof(cases));

	cr_assert_not_null(p);
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		p[i] = cases[i];
		p[i].yaml = cr_strdup(cases[i].yaml);
		p[i].msg = cr_strdup(cases[i].msg);
	}
	return cr_make_param_array(struct bad_case, p, ARRAY_SIZE(cases));
}

ParameterizedTest(struct bad_case *c, policy, rejects_bad_modes_and_routes_on_observe_workloads)
{
	expect_refused(c);
}

/* --- fetched credentials: oauth2, token_exchange, exec, static; on_revoke ----------------- */

static const char fetched_yaml[] =
	"trust_domain: example.org\n"
	"workloads:\n"
	"  - name: billing\n"
	"    match: { cgroup: /system.slice/billing.service }\n"
	"    routes:\n"
	"      - to: 10.0.0.1:443\n"
	"        credential:\n"
	"          type: oauth2\n"
	"          token_url: https://idp.example.org/oauth2/token\n"
	"          client_id: lanyard-billing\n"
	"          scope: \"payments.read payments.write\"\n"
	"          resource: https://api.example.org/\n"
	"          audience: payments\n"
	"      - to: 10.0.0.2:443\n"
	"        credential: { type: oauth2, token_url: \"https://idp.example.org:8443/t?x=1\",\n"
	"                      client_id: c2, auth: client_secret_basic,\n"
	"                      client_secret_file: /etc/lanyard/idp.secret,\n"
	"                      ca_file: /etc/lanyard/idp-ca.pem, timeout: 30s, ttl: 10m }\n"
	"      - to: 10.0.0.3:443\n"
	"        credential: { type: token_exchange, token_url: https://sts.example.org/token }\n"
	"        on_revoke: close\n"
	"      - to: 10.0.0.4:443\n"
	"        credential: { type: token_exchange, token_url: https://sts.example.org/token,\n"
	"                      client_id: lanyard, subject_audience: sts, audience: reports }\n"
	"        on_revoke: refuse\n"
	"      - to: 10.0.0.5:443\n"
	"        credential:\n"
	"          type: exec\n"
	"          command: [/usr/local/bin/vault-helper, --role, \"billing reader\"]\n"
	"          timeout: 5m\n"
	"          audience: vault\n"
	"      - to: 10.0.0.6:443\n"
	"        credential: { type: static, file: /etc/lanyard/api.key, max_age: 90d }\n"
	"        header: \"X-Api-Key: {token}\"\n"
	"      - to: 10.0.0.7:443\n"
	"        credential: { type: static, systemd_credential: api-key }\n"
	"      - to: 10.0.0.8:443\n"
	"        credential: { type: jwt, audience: a }\n";

Test(policy, parses_each_fetched_credential_type_with_its_defaults)
{
	struct policy *p = parse_ok(fetched_yaml);
	const struct policy_route *r;
	const struct policy_source *s;

	cr_assert_eq(p->workloads[0].nroutes, 8);

	/* oauth2: private_key_jwt unless told otherwise; timeout and ttl defaults */
	r = &p->workloads[0].routes[0];
	s = r->src;
	cr_expect_eq(r->cred_type, POLICY_CRED_OAUTH2);
	cr_expect_str_eq(policy_cred_type_name(r->cred_type), "oauth2");
	cr_assert_not_null(s);
	cr_expect_eq(s->refs, 1);
	cr_expect_str_eq(s->token_url, "https://idp.example.org/oauth2/token");
	cr_expect_str_eq(s->client_id, "lanyard-billing");
	cr_expect_eq(s->auth, POLICY_AUTH_PRIVATE_KEY_JWT);
	cr_expect_null(s->client_secret_file);
	cr_expect_str_eq(s->scope, "payments.read payments.write");
	cr_expect_str_eq(s->resource, "https://api.example.org/");
	cr_expect_str_eq(r->audience, "payments");
	cr_expect_null(s->subject_audience);
	cr_expect_null(s->ca_file);
	cr_expect_null(s->argv);
	cr_expect_eq(s->timeout_ms, POLICY_DEFAULT_FETCH_TIMEOUT_MS);
	cr_expect_eq(r->ttl_s, POLICY_DEFAULT_TTL_S, "the lifetime when the source says none");
	cr_expect_eq(r->on_revoke, POLICY_REVOKE_REFUSE, "refuse is the default");
	cr_expect_str_eq(r->header_name, "Authorization");
	cr_expect_str_eq(r->header_prefix, "Bearer ");
	cr_expect_str_eq(r->header_suffix, "");

	/* oauth2 with a client secret */
	r = &p->workloads[0].routes[1];
	s = r->src;
	cr_assert_not_null(s);
	cr_expect_str_eq(s->token_url, "https://idp.example.org:8443/t?x=1");
	cr_expect_eq(s->auth, POLICY_AUTH_SECRET_BASIC);
	cr_expect_str_eq(s->client_secret_file, "/etc/lanyard/idp.secret");
	cr_expect_str_eq(s->ca_file, "/etc/lanyard/idp-ca.pem");
	cr_expect_eq(s->timeout_ms, 30000);
	cr_expect_eq(r->ttl_s, 600);
	cr_expect_null(r->audience);
	cr_expect_null(s->scope);

	/* token_exchange without a client: no client authentication, subject aud = token_url */
	r = &p->workloads[0].routes[2];
	s = r->src;
	cr_expect_eq(r->cred_type, POLICY_CRED_TOKEN_EXCHANGE);
	cr_expect_str_eq(policy_cred_type_name(r->cred_type), "token_exchange");
	cr_assert_not_null(s);
	cr_expect_null(s->client_id);
	cr_expect_eq(s->auth, POLICY_AUTH_NONE);
	cr_expect_str_eq(s->subject_audience, "https://sts.example.org/token");
	cr_expect_neq(s->subject_audience, s->token_url, "a copy, freed on its own");
	cr_expect_eq(r->on_revoke, POLICY_REVOKE_CLOSE);

	/* token_exchange naming a client */
	r = &p->workloads[0].routes[3];
	s = r->src;
	cr_assert_not_null(s);
	cr_expect_str_eq(s->client_id, "lanyard");
	cr_expect_eq(s->auth, POLICY_AUTH_PRIVATE_KEY_JWT);
	cr_expect_str_eq(s->subject_audience, "sts");
	cr_expect_str_eq(r->audience, "reports");
	cr_expect_eq(r->on_revoke, POLICY_REVOKE_REFUSE);

	/* exec */
	r = &p->workloads[0].routes[4];
	s = r->src;
	cr_expect_eq(r->cred_type, POLICY_CRED_EXEC);
	cr_expect_str_eq(policy_cred_type_name(r->cred_type), "exec");
	cr_assert_not_null(s);
	cr_assert_eq(s->argc, 3);
	cr_expect_str_eq(s->argv[0], "/usr/local/bin/vault-helper");
	cr_expect_str_eq(s->argv[1], "--role");
	cr_expect_str_eq(s->argv[2], "billing reader");
	cr_expect_null(s->argv[3], "argv is NULL-terminated");
	cr_expect_eq(s->timeout_ms, 300000);
	cr_expect_str_eq(r->audience, "vault");
	cr_expect_null(s->token_url);

	/* static: a file, or a systemd credential */
	r = &p->workloads[0].routes[5];
	s = r->src;
	cr_expect_eq(r->cred_type, POLICY_CRED_STATIC);
	cr_expect_str_eq(policy_cred_type_name(r->cred_type), "static");
	cr_assert_not_null(s);
	cr_expect_str_eq(s->file, "/etc/lanyard/api.key");
	cr_expect_null(s->systemd_credential);
	cr_expect_eq(s->max_age_s, 90 * 86400);
	cr_expect_str_eq(r->header_name, "X-Api-Key");
	cr_expect_str_eq(r->header_prefix, "");
	r = &p->workloads[0].routes[6];
	s = r->src;
	cr_assert_not_null(s);
	cr_expect_null(s->file);
	cr_expect_str_eq(s->systemd_credential, "api-key");
	cr_expect_eq(s->max_age_s, 0, "no max_age: never warned");

	/* jwt keeps no source */
	r = &p->workloads[0].routes[7];
	cr_expect_eq(r->cred_type, POLICY_CRED_JWT);
	cr_expect_null(r->src);
	cr_expect_eq(r->on_revoke, POLICY_REVOKE_REFUSE);
	policy_free(p);
}

Test(policy, a_source_outlives_its_policy_while_a_fetch_holds_it)
{
	struct policy *p = parse_ok(fetched_yaml);
	struct policy_source *s = policy_source_get(p->workloads[0].routes[4].src);

	cr_expect_eq(s->refs, 2);
	policy_free(p);
	/* ASan: a use after free here if policy_free() dropped the source */
	cr_expect_eq(s->refs, 1);
	cr_expect_str_eq(s->argv[0], "/usr/local/bin/vault-helper");
	policy_source_put(s);
	policy_source_put(NULL);
	cr_expect_null(policy_source_get(NULL));
}

Test(policy, names_every_credential_type)
{
	cr_expect_str_eq(policy_cred_type_name(POLICY_CRED_JWT), "jwt");
	cr_expect_str_eq(policy_cred_type_name(POLICY_CRED_X509), "x509");
	cr_expect_str_eq(policy_cred_type_name((enum policy_cred_type)99), "?");
	cr_expect(!policy_cred_fetched(POLICY_CRED_JWT) && !policy_cred_fetched(POLICY_CRED_X509));
	cr_expect(policy_cred_fetched(POLICY_CRED_OAUTH2) &&
		  policy_cred_fetched(POLICY_CRED_TOKEN_EXCHANGE) &&
		  policy_cred_fetched(POLICY_CRED_EXEC) && policy_cred_fetched(POLICY_CRED_STATIC));
}

/* a credential on line 7 whose first key is at column 23 (the `{` at column 21) */
#define FCRED(x)	"        credential: { " x " }\n"

ParameterizedTestParameters(policy, rejects_malformed_fetched_credentials)
{
	static struct bad_case cases[] = {
		/* MALFORMED: token_url */
		{ HEAD WL RT FCRED("type: oauth2, token_url: http://idp.example.org/token, "
				   "client_id: c"), 7, 48,
		  "credential.token_url: \"http://idp.example.org/token\" is not an https:// URL "
		  "(a token endpoint is only called over verified TLS)" },
		{ HEAD WL RT FCRED("type: oauth2, token_url: \"https://user@idp.example.org/to"
				   "ken\", client_id: c"), 7, 48,
		  "credential.token_url: \"https://user@idp.example.org/token\" is not a token "
		  "endpoint URL (https://host[:port]/path, no user info, no fragment)" },
		{ HEAD WL RT FCRED("type: oauth2, token_url: \"https://idp.example.org/token#f"
				   "rag\", client_id: c"), 7, 48,
		  "no user info, no fragment" },
		{ HEAD WL RT FCRED("type: oauth2, token_url: https:///token, client_id: c"), 7, 48,
		  "is not a token endpoint URL" },
		{ HEAD WL RT FCRED("type: oauth2, token_url: HTTPS://idp.example.org/token, "
				   "client_id: c"), 7, 48,
		  "is not an https:// URL" },
		/* MALFORMED: required keys and client authentication */
		{ HEAD WL RT FCRED("type: oauth2, token_url: https://idp.example.org/token"), 7, 21,
		  "routes[0].credential: missing required key \"client_id\" in credential (type "
		  "oauth2)" },
		{ HEAD WL RT FCRED("type: oauth2, client_id: c"), 7, 21,
		  "missing required key \"token_url\" in credential (type oauth2)" },
		{ HEAD WL RT FCRED("type: token_exchange, client_id: c"), 7, 21,
		  "missing required key \"token_url\" in credential (type token_exchange)" },
		{ HEAD WL RT FCRED("type: token_exchange, token_url: https://i/t, auth: "
				   "private_key_jwt"), 7, 21,
		  "routes[0].credential: client authentication needs a client_id" },
		{ HEAD WL RT FCRED("type: token_exchange, token_url: https://i/t, auth: "
				   "client_secret_basic, client_secret_file: /s"), 7, 21,
		  "client authentication needs a client_id" },
		{ HEAD WL RT FCRED("type: oauth2, token_url: https://i/t, client_id: c, "
				   "client_secret_file: /etc/lanyard/s"), 7, 95,
		  "routes[0].credential.client_secret_file: client_secret_file is only used with "
		  "auth: client_secret_basic" },
		{ HEAD WL RT FCRED("type: oauth2, token_url: https://i/t, client_id: c, auth: "
				   "private_key_jwt, client_secret_file: /s"), 7, 118,
		  "client_secret_file is only used with auth: client_secret_basic" },
		{ HEAD WL RT FCRED("type: oauth2, token_url: https://i/t, client_id: c, auth: "
				   "client_secret_basic"), 7, 21,
		  "routes[0].credential: auth: client_secret_basic needs client_secret_file" },
		{ HEAD WL RT FCRED("type: oauth2, token_url: https://i/t, client_id: c, auth: "
				   "client_secret_basic, client_secret_file: s"), 7, 122,
		  "credential.client_secret_file: \"s\" is not an absolute path" },
		{ HEAD WL RT FCRED("type: oauth2, token_url: https://i/t, client_id: c, auth: "
				   "none"), 7, 81,
		  "credential.auth: \"none\" is not a client authentication (private_key_jwt, "
		  "client_secret_basic)" },
		{ HEAD WL RT FCRED("type: oauth2, token_url: https://i/t, client_id: \"\""), 7, 72,
		  "credential.client_id: must not be empty" },
		{ HEAD WL RT FCRED("type: oauth2, token_url: https://i/t, client_id: c, "
				   "scope: \"\""), 7, 82,
		  "credential.scope: must not be empty" },
		{ HEAD WL RT FCRED("type: vault"), 7, 29,
		  "credential.type: \"vault\" is not supported (supported: jwt, x509, oauth2, "
		  "token_exchange, exec, static)" },
		/* MALFORMED: exec */
		{ HEAD WL RT FCRED("type: exec, command: [helper, --role, x]"), 7, 45,
		  "routes[0].credential.command[0]: \"helper\" is not an absolute path" },
		{ HEAD WL RT FCRED("type: exec, command: []"), 7, 44,
		  "routes[0].credential.command: expected a non-empty list: [/path/to/helper, "
		  "arg, ...]" },
		{ HEAD WL RT FCRED("type: exec, command: /usr/bin/helper"), 7, 44,
		  "credential.command: expected a non-empty list" },
		{ HEAD WL RT FCRED("type: exec"), 7, 21,
		  "missing required key \"command\" in credential (type exec)" },
		{ HEAD WL RT FCRED("type: exec, command: [/bin/x], timeout: 0"), 7, 63,
		  "credential.timeout: \"0\" is out of range 1s..5m" },
		{ HEAD WL RT FCRED("type: exec, command: [/bin/x], timeout: 301s"), 7, 63,
		  "credential.timeout: \"301s\" is out of range 1s..5m" },
		{ HEAD WL RT FCRED("type: exec, command: [/bin/x], timeout: soon"), 7, 63,
		  "\"soon\" is not a duration" },
		/* MALFORMED: static */
		{ HEAD WL RT FCRED("type: static, file: /etc/k, systemd_credential: k"), 7, 21,
		  "routes[0].credential: a static credential needs exactly one of file, "
		  "systemd_credential" },
		{ HEAD WL RT FCRED("type: static"), 7, 21,
		  "a static credential needs exactly one of file, systemd_credential" },
		{ HEAD WL RT FCRED("type: static, file: etc/k"), 7, 43,
		  "credential.file: \"etc/k\" is not an absolute path" },
		{ HEAD WL RT FCRED("type: static, systemd_credential: a/b"), 7, 57,
		  "credential.systemd_credential: \"a/b\" is not a credential name (one file "
		  "name under $CREDENTIALS_DIRECTORY)" },
		{ HEAD WL RT FCRED("type: static, systemd_credential: .."), 7, 57,
		  "\"..\" is not a credential name" },
		{ HEAD WL RT FCRED("type: static, systemd_credential: \"\""), 7, 57,
		  "is not a credential name" },
		{ HEAD WL RT FCRED("type: static, file: /k, max_age: 0"), 7, 56,
		  "credential.max_age: \"0\" is out of range 1s.." },
		{ HEAD WL RT FCRED("type: static, file: /k, max_age: forever"), 7, 56,
		  "\"forever\" is not a duration" },
		/* MALFORMED: a key of another type */
		{ HEAD WL RT FCRED("type: oauth2, token_url: https://i/t, client_id: c, "
				   "command: [/bin/x]"), 7, 84,
		  "routes[0].credential.command: \"command\" is not used by type oauth2" },
		{ HEAD WL RT FCRED("type: exec, command: [/bin/x], token_url: https://i/t"), 7, 65,
		  "credential.token_url: \"token_url\" is not used by type exec" },
		{ HEAD WL RT FCRED("type: static, file: /k, ttl: 5m"), 7, 52,
		  "credential.ttl: \"ttl\" is not used by type static" },
		{ HEAD WL RT FCRED("type: static, file: /k, audience: a"), 7, 57,
		  "\"audience\" is not used by type static" },
		{ HEAD WL RT FCRED("type: oauth2, token_url: https://i/t, client_id: c, "
				   "subject_audience: s"), 7, 93,
		  "\"subject_audience\" is not used by type oauth2" },
		{ HEAD WL RT FCRED("type: oauth2, token_url: https://i/t, client_id: c, mtls: "
				   "true"), 7, 81,
		  "\"mtls\" is not used by type oauth2" },
		{ HEAD WL RT FCRED("type: oauth2, token_url: https://i/t, client_id: c, "
				   "max_age: 1d"), 7, 84,
		  "\"max_age\" is not used by type oauth2" },
		{ HEAD WL RT FCRED("type: jwt, audience: a, token_url: https://i/t"), 7, 58,
		  "\"token_url\" is not used by type jwt" },
		{ HEAD WL RT FCRED("type: jwt, audience: a, command: [/bin/x]"), 7, 56,
		  "\"command\" is not used by type jwt" },
		/* MALFORMED: on_revoke */
		{ HEAD WL RT FCRED("type: exec, command: [/bin/x]")
		  "        on_revoke: maybe\n", 8, 20,
		  "routes[0].on_revoke: \"maybe\" is not a revocation action (refuse, close)" },
		{ HEAD WL RT CRED("") "        on_revoke: Close\n", 8, 20,
		  "\"Close\" is not a revocation action" },
		{ HEAD WL RT CRED("") "        on_revoke: [close]\n", 8, 20,
		  "routes[0].on_revoke: expected a string, got a list" },
	};
	struct bad_case *p = cr_malloc(sizeof(cases));

	cr_assert_not_null(p);
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		p[i] = cases[i];
		p[i].yaml = cr_strdup(cases[i].yaml);
		p[i].msg = cr_strdup(cases[i].msg);
	}
	return cr_make_param_array(struct bad_case, p, ARRAY_SIZE(cases));
}

ParameterizedTest(struct bad_case *c, policy, rejects_malformed_fetched_credentials)
{
	expect_refused(c);
}
