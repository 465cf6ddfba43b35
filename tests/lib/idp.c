// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Copyright (c) 2026 The lanyard authors */
/*
 * The test identity provider from C: certificates, spawning idp.py, its control port and
 * its request log.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <openssl/evp.h>

#include "lib/idp.h"
#include "lib/lanyard.h"
#include "lib/tlsfix.h"

#define IDP_MAX_ARGS 48
#define IDP_MAX_CLIENTS 16

/* One HTTP/1.1 GET to the control port; the status (or -errno), *@body malloc'd. */
static int ctl_get(const struct ly_idp *p, const char *path, char **body)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)p->ctl_port) };
	struct timeval tv = { .tv_sec = 5 };
	size_t n = 0, cap = 1 << 16;
	char *buf = NULL, *hdr_end, req[512];
	int fd, len, status = -EPROTO;
	ssize_t r;

	*body = NULL;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	len = snprintf(req, sizeof(req),
		       "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n", path,
		       p->ctl_port);
	if (len < 0 || (size_t)len >= sizeof(req))
		return -ENAMETOOLONG;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) || write(fd, req, (size_t)len) != len) {
		status = -errno;
		goto cleanup;
	}
	buf = malloc(cap);
	if (!buf) {
		status = -ENOMEM;
		goto cleanup;
	}
	/* Connection: close: the answer ends at EOF */
	while (n + 1 < cap && (r = read(fd, buf + n, cap - n - 1)) > 0)
		n += (size_t)r;
	buf[n] = '\0';
	status = ly_status_of(buf);
	hdr_end = strstr(buf, "\r\n\r\n");
	if (status < 0 || !hdr_end)
		status = -EPROTO;
	else
		*body = strdup(hdr_end + 4);
cleanup:
	free(buf);
	close(fd);
	return status;
}

/* A control request that answers 200 or not: 0 or -1 (the answer is printed). */
static int ctl_ok(struct ly_idp *p, const char *path)
{
	char *body = NULL;
	int status = ctl_get(p, path, &body);

	if (status != 200)
		fprintf(stderr, "[idp] GET %s: %d %s", path, status, body ? body : "\n");
	free(body);
	return status == 200 ? 0 : -1;
}

/* A test CA and a certificate for the names a client of token_url may use. */
static void make_certs(struct ly_idp *p)
{
	static const char *const names[] = { "localhost", "127.0.0.1", NULL };
	struct tlsfix_ca *ca = tlsfix_ca_new(h_strf("%s test ca", p->name));
	int err;

	cr_assert(ca, "tlsfix_ca_new");
	err = tlsfix_server_cert(ca, names, &p->cert, &p->key);
	cr_assert_eq(err, 0, "server certificate: %s", strerror(-err));
	p->ca_cert = h_strf("%s", tlsfix_ca_cert_path(ca));
	tlsfix_ca_free(ca);
}

void ly_idp_start(struct ly_idp *p, const char *jwks_url, const char *const clients[],
		  const char *subject_audience, int expires_in)
{
	static int seq;
	char *args[IDP_MAX_ARGS];
	int n = 0, i, rc;

	memset(p, 0, sizeof(*p));
	p->name = seq++ ? h_strf("idp-%d", seq) : h_strf("idp");
	p->port = h_free_port();
	p->ctl_port = h_free_port();
	cr_assert(p->port > 0 && p->ctl_port > 0, "no free ports");
	p->token_url = h_strf("https://localhost:%d/token", p->port);
	p->log = h_path("%s.jsonl", p->name);
	make_certs(p);

	args[n++] = LY_PYTHON;
	args[n++] = "-u";
	args[n++] = h_repo_path("tests/servers/idp.py");
	args[n++] = "--listen";
	args[n++] = h_strf("127.0.0.1:%d", p->port);
	args[n++] = "--ctl";
	args[n++] = h_strf("127.0.0.1:%d", p->ctl_port);
	args[n++] = "--cert";
	args[n++] = p->cert;
	args[n++] = "--key";
	args[n++] = p->key;
	args[n++] = "--token-url";
	args[n++] = p->token_url;
	args[n++] = "--jwks";
	args[n++] = h_strf("%s", jwks_url);
	args[n++] = "--log";
	args[n++] = p->log;
	for (i = 0; clients && clients[i]; i++) {
		cr_assert_lt(i, IDP_MAX_CLIENTS, "too many clients");
		args[n++] = "--client";
		args[n++] = h_strf("%s", clients[i]);
	}
	if (subject_audience) {
		args[n++] = "--subject-audience";
		args[n++] = h_strf("%s", subject_audience);
	}
	if (expires_in > 0) {
		args[n++] = "--expires-in";
		args[n++] = h_strf("%d", expires_in);
	}
	args[n] = NULL;

	p->pid = h_spawn(p->name, args, NULL);
	cr_assert_gt(p->pid, 0, "cannot spawn idp.py: %s", strerror((int)-p->pid));
	rc = h_wait_output(p->pid, "listening", 15000);
	cr_assert_eq(rc, 0, "idp.py did not start: %s", strerror(-rc));
}

int ly_idp_mode(struct ly_idp *p, const char *query)
{
	return ctl_ok(p, h_strf("/mode?%s", query));
}

int ly_idp_expires_in(struct ly_idp *p, int n)
{
	return ctl_ok(p, h_strf("/expires_in?set=%d", n));
}

int ly_idp_reset(struct ly_idp *p)
{
	return ctl_ok(p, "/reset");
}

json_t *ly_idp_stats(struct ly_idp *p)
{
	char *body = NULL;
	json_t *j = NULL;
	int status;

	status = ctl_get(p, "/stats", &body);
	if (status == 200)
		j = json_loads(body, 0, NULL);
	if (!json_is_object(j)) {
		fprintf(stderr, "[idp] GET /stats: %d %s\n", status, body ? body : "");
		json_decref(j);
		j = NULL;
	}
	free(body);
	return j;
}

long long ly_idp_stat(struct ly_idp *p, const char *name)
{
	json_t *st = ly_idp_stats(p), *v = json_object_get(st, name);
	long long n = json_is_integer(v) ? (long long)json_integer_value(v) : -1;

	json_decref(st);
	return n;
}

json_t *ly_idp_log(struct ly_idp *p)
{
	return ly_jsonl_all(p->log, NULL, NULL);
}

/* Lowercase hex SHA-256 of @s into @hex (65 bytes). */
static void sha256_hex(const char *s, char hex[65])
{
	unsigned char md[32];
	unsigned int len = 0;
	int i;

	cr_assert(EVP_Digest(s, strlen(s), md, &len, EVP_sha256(), NULL) && len == 32);
	for (i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
}

bool ly_idp_issued(struct ly_idp *p, const char *token)
{
	json_t *lines = ly_idp_log(p), *line;
	bool found = false;
	char hex[65];
	size_t i;

	if (!token)
		goto out;
	sha256_hex(token, hex);
	json_array_foreach(lines, i, line)
	{
		const char *sum = json_string_value(json_object_get(line, "token_sha256"));
		const char *mode = json_string_value(json_object_get(line, "mode"));

		if (json_integer_value(json_object_get(line, "status")) == 200 && sum &&
		    !strcmp(sum, hex) && mode && (!strcmp(mode, "ok") || !strcmp(mode, "slow")))
			found = true;
	}
out:
	json_decref(lines);
	return found;
}
