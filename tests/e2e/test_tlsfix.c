// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Copyright (c) 2026 The lanyard authors */
/*
 * Self-test of the TLS test infrastructure: the certificate fixtures (tests/lib/tlsfix.h) are
 * what they claim, and ly-upstream in TLS mode serves curl, python3, gnutls-cli and OpenSSL.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "lib/harness.h"
#include "lib/lanyard.h"
#include "lib/tlsfix.h"

TestSuite(tlsfix, H_FIXTURES, .timeout = 60);
TestSuite(upstream_tls, H_FIXTURES, .timeout = 60);

#define CURL "curl", "-sS", "--noproxy", "*", "--max-time", "10"
#define PYTHON "/usr/bin/python3"


/* --- helpers ------------------------------------------------------------------------------ */

static struct tlsfix_ca *ca_and_server(char **cert, char **key)
{
	return ly_ca_and_server("lanyard test root", cert, key);
}

static int start_tls(const char *cert, const char *key, const char *client_ca)
{
	return ly_tls_upstream("up", cert, key, client_ca);
}

/* Start ly-upstream with @cert and run openssl s_client -verify_return_error against it. */
static int s_client_verify(const char *ca_cert, const char *cert, const char *key,
			   const char *host, char **out)
{
	static int n;
	int port = ly_tls_upstream(h_strf("up-%d", ++n), cert, key, NULL);

	return h_runl(NULL, 10000, out, "openssl", "s_client", "-brief", "-verify_return_error",
		      "-CAfile", ca_cert, "-servername", host, "-verify_hostname", host,
		      "-connect", h_strf("127.0.0.1:%d", port), NULL);
}

static const char *str_at(json_t *obj, const char *a, const char *b)
{
	json_t *v = json_object_get(json_object_get(obj, a), b);

	return json_string_value(v);
}

static void write_random_file(const char *path, size_t size)
{
	char *data = malloc(size + 1);
	size_t i;

	cr_assert(data);
	for (i = 0; i < size; i++)
		data[i] = (char)('a' + (i * 7919) % 26);
	data[size] = '\0';
	cr_assert_eq(h_write_file(path, data, 0600), 0);
	free(data);
}

static int tcp_connect(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	struct timeval tv = { .tv_sec = 5 };
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert(fd >= 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0, "connect: %s",
		     strerror(errno));
	return fd;
}

/*
 * Blocking TLS client verifying "localhost" against @ca: send @req, read until the server
 * closes (the last request should say Connection: close).  Caller frees; *@len is set.
 */
static char *tls_exchange(int port, const char *ca, const char *req, size_t *len)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	size_t n = 0, cap = 1 << 20, got, w;
	char *buf = malloc(cap);
	int fd = tcp_connect(port);
	SSL *ssl;

	cr_assert(ctx && buf);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	cr_assert_eq(SSL_CTX_load_verify_locations(ctx, ca, NULL), 1);
	ssl = SSL_new(ctx);
	cr_assert(ssl && SSL_set_fd(ssl, fd) && SSL_set_tlsext_host_name(ssl, "localhost") &&
		  SSL_set1_host(ssl, "localhost"));
	cr_assert_eq(SSL_connect(ssl), 1, "handshake: %s",
		     ERR_reason_error_string(ERR_peek_last_error()));
	cr_assert(SSL_write_ex(ssl, req, strlen(req), &w) && w == strlen(req));
	for (;;) {
		if (n == cap)
			cr_assert(buf = realloc(buf, cap *= 2));
		if (!SSL_read_ex(ssl, buf + n, cap - n, &got))
			break;
		n += got;
	}
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	close(fd);
	*len = n;
	return buf;
}

/* --- fixtures, checked without a server --------------------------------------------------- */

Test(tlsfix, writes_keys_0600_and_certificates_0644_in_the_tmpdir)
{
	struct tlsfix_ca *ca;
	char *cert, *key, *out;
	struct stat st;

	ca = ca_and_server(&cert, &key);
	cr_expect_eq(strncmp(cert, h_tmpdir(), strlen(h_tmpdir())), 0);
	cr_assert_eq(stat(key, &st), 0);
	cr_expect_eq(st.st_mode & 0777, 0600);
	cr_assert_eq(stat(tlsfix_ca_key_path(ca), &st), 0);
	cr_expect_eq(st.st_mode & 0777, 0600);
	cr_assert_eq(stat(cert, &st), 0);
	cr_expect_eq(st.st_mode & 0777, 0644);
	cr_assert_eq(h_runl(NULL, 10000, &out, "openssl", "x509", "-noout", "-text", "-in", cert,
			    NULL),
		     0, "%s", out);
	cr_expect(strstr(out, "DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1"),
		  "%s", out);
	cr_expect(strstr(out, "TLS Web Server Authentication"), "%s", out);
	cr_expect(strstr(out, "CA:FALSE"), "%s", out);
	cr_expect(strstr(out, "Subject: O = lanyard tests, CN = localhost"), "%s", out);
	free(out);
	cr_assert_eq(h_runl(NULL, 10000, &out, "openssl", "x509", "-noout", "-text", "-in",
			    tlsfix_ca_cert_path(ca), NULL),
		     0);
	cr_expect(strstr(out, "CA:TRUE") && strstr(out, "Certificate Sign"), "%s", out);
	free(out);
	tlsfix_ca_free(ca);
}

Test(tlsfix, openssl_verify_accepts_the_good_leaf_and_rejects_the_broken_ones)
{
	struct tlsfix_ca *ca;
	char *good, *expired, *self, *wrong, *out;

	ca = ca_and_server(&good, NULL);
	cr_assert_eq(tlsfix_expired_cert(ca, ly_local_names, &expired, NULL), 0);
	cr_assert_eq(tlsfix_self_signed(ly_local_names, &self, NULL), 0);
	cr_assert_eq(tlsfix_wrong_name_cert(ca, &wrong, NULL), 0);
#define VERIFY(cert) "openssl", "verify", "-CAfile", tlsfix_ca_cert_path(ca), "-purpose", \
		"sslserver", "-verify_hostname", "localhost", cert, NULL
	cr_expect_eq(h_runl(NULL, 10000, &out, VERIFY(good)), 0, "%s", out);
	free(out);
	cr_expect_neq(h_runl(NULL, 10000, &out, VERIFY(expired)), 0);
	cr_expect(strstr(out, "certificate has expired"), "%s", out);
	free(out);
	cr_expect_neq(h_runl(NULL, 10000, &out, VERIFY(self)), 0);
	cr_expect(strstr(out, "self-signed certificate"), "%s", out);
	free(out);
	cr_expect_neq(h_runl(NULL, 10000, &out, VERIFY(wrong)), 0);
	cr_expect(strstr(out, "hostname mismatch"), "%s", out);
	free(out);
#undef VERIFY
	tlsfix_ca_free(ca);
}

Test(tlsfix, client_cert_has_client_auth_and_the_uri_san)
{
	struct tlsfix_ca *ca = tlsfix_ca_new("client CA");
	char *cert, *out;

	cr_assert(ca);
	cr_assert_eq(tlsfix_client_cert(ca, "wl", "spiffe://test.lanyard/wl", &cert, NULL), 0);
	cr_assert_eq(h_runl(NULL, 10000, &out, "openssl", "x509", "-noout", "-text", "-in", cert,
			    NULL),
		     0);
	cr_expect(strstr(out, "URI:spiffe://test.lanyard/wl"), "%s", out);
	cr_expect(strstr(out, "TLS Web Client Authentication"), "%s", out);
	free(out);
	cr_expect_eq(h_runl(NULL, 10000, &out, "openssl", "verify", "-CAfile",
			    tlsfix_ca_cert_path(ca), "-purpose", "sslclient", cert, NULL),
		     0, "%s", out);
	free(out);
	cr_expect_neq(h_runl(NULL, 10000, &out, "openssl", "verify", "-CAfile",
			     tlsfix_ca_cert_path(ca), "-purpose", "sslserver", cert, NULL),
		      0, "a client certificate is no server certificate");
	free(out);
	tlsfix_ca_free(ca);
}

Test(tlsfix, leaf_of_an_intermediate_carries_the_chain)
{
	struct tlsfix_ca *root = tlsfix_ca_new("root"), *mid;
	char *cert, *out;

	cr_assert(root);
	mid = tlsfix_ca_intermediate(root, "intermediate");
	cr_assert(mid);
	cr_assert_eq(tlsfix_server_cert(mid, ly_local_names, &cert, NULL), 0);
	/* leaf then intermediate: a server sends the file as is (RFC 8446 4.4.2) */
	cr_assert_eq(h_runl(NULL, 10000, &out, "sh", "-c",
			    h_strf("openssl crl2pkcs7 -nocrl -certfile %s | openssl pkcs7 "
				   "-print_certs -noout",
				   cert),
			    NULL),
		     0);
	cr_expect(strstr(out, "subject=O = lanyard tests, CN = localhost\n"
			      "issuer=O = lanyard tests, CN = intermediate\n\n"
			      "subject=O = lanyard tests, CN = intermediate\n"
			      "issuer=O = lanyard tests, CN = root\n"),
		  "%s", out);
	free(out);
	cr_expect_eq(h_runl(NULL, 10000, &out, "openssl", "verify", "-CAfile",
			    tlsfix_ca_cert_path(root), "-untrusted", cert, cert, NULL),
		     0, "%s", out);
	free(out);
	tlsfix_ca_free(mid);
	tlsfix_ca_free(root);
}

Test(tlsfix, cert_info_matches_openssl_x509)
{
	struct tlsfix_info info;
	struct tlsfix_ca *ca;
	char *cert, *out, *want;

	ca = ca_and_server(&cert, NULL);
	cr_assert_eq(tlsfix_cert_info(cert, &info), 0);
	cr_assert_eq(h_runl(NULL, 10000, &out, "openssl", "x509", "-noout", "-serial",
			    "-fingerprint", "-sha256", "-in", cert, NULL),
		     0);
	/* openssl prints upper case with colons; the info is lower case hex */
	want = h_strf("serial=%s", info.serial);
	for (char *p = out; *p; p++)
		*p = (char)(*p >= 'A' && *p <= 'F' ? *p + 32 : *p);
	cr_expect(strcasestr(out, want) || strstr(out, h_strf("serial=0%s", info.serial)), "%s",
		  out);
	cr_expect_eq(strlen(info.sha256), 64);
	cr_expect(strstr(out, h_strf("%.2s:%.2s", info.sha256, info.sha256 + 2)), "%s", out);
	free(out);
	cr_expect_lt(info.not_before, time(NULL));
	cr_expect_gt(info.not_after, time(NULL) + 3600);
	cr_expect_neq(tlsfix_cert_info(h_path("missing.crt"), &info), 0);
	tlsfix_ca_free(ca);
}

/* --- s_client against ly-upstream: the fixtures fail the way they claim ------------------- */

Test(tlsfix, s_client_verifies_the_good_cert)
{
	struct tlsfix_ca *ca;
	char *cert, *key, *out;

	ca = ca_and_server(&cert, &key);
	cr_expect_eq(s_client_verify(tlsfix_ca_cert_path(ca), cert, key, "localhost", &out), 0,
		     "%s", out);
	cr_expect(strstr(out, "Verification: OK"), "%s", out);
	free(out);
	tlsfix_ca_free(ca);
}

Test(tlsfix, s_client_rejects_the_expired_cert)
{
	struct tlsfix_ca *ca = tlsfix_ca_new("root");
	char *cert, *key, *out;

	cr_assert(ca);
	cr_assert_eq(tlsfix_expired_cert(ca, ly_local_names, &cert, &key), 0);
	cr_expect_neq(s_client_verify(tlsfix_ca_cert_path(ca), cert, key, "localhost", &out), 0);
	cr_expect(strstr(out, "certificate has expired"), "%s", out);
	free(out);
	tlsfix_ca_free(ca);
}

Test(tlsfix, s_client_rejects_the_self_signed_cert)
{
	struct tlsfix_ca *ca = tlsfix_ca_new("root");
	char *cert, *key, *out;

	cr_assert(ca);
	cr_assert_eq(tlsfix_self_signed(ly_local_names, &cert, &key), 0);
	cr_expect_neq(s_client_verify(tlsfix_ca_cert_path(ca), cert, key, "localhost", &out), 0);
	cr_expect(strstr(out, "self-signed certificate"), "%s", out);
	free(out);
	tlsfix_ca_free(ca);
}

Test(tlsfix, s_client_rejects_the_wrong_name_cert)
{
	struct tlsfix_ca *ca = tlsfix_ca_new("root");
	char *cert, *key, *out;

	cr_assert(ca);
	cr_assert_eq(tlsfix_wrong_name_cert(ca, &cert, &key), 0);
	cr_expect_neq(s_client_verify(tlsfix_ca_cert_path(ca), cert, key, "localhost", &out), 0);
	cr_expect(strstr(out, "hostname mismatch"), "%s", out);
	free(out);
	/* the same certificate is fine for the name it has */
	cr_expect_eq(s_client_verify(tlsfix_ca_cert_path(ca), cert, key, TLSFIX_WRONG_NAME, &out),
		     0, "%s", out);
	free(out);
	tlsfix_ca_free(ca);
}

/* --- ly-upstream in TLS mode -------------------------------------------------------------- */

Test(upstream_tls, curl_with_cacert_gets_ok_and_the_tls_fields_are_logged)
{
	struct tlsfix_ca *ca;
	char *cert, *key, *out;
	json_t *r, *tls;
	int port;

	ca = ca_and_server(&cert, &key);
	port = start_tls(cert, key, NULL);
	cr_assert_eq(h_runl(NULL, 10000, &out, CURL, "--cacert", tlsfix_ca_cert_path(ca),
			    h_strf("https://localhost:%d/a", port),
			    h_strf("https://localhost:%d/b", port), NULL),
		     0, "curl: %s", out);
	cr_expect_str_eq(out, "ok\nok\n");
	free(out);
	r = h_jsonl_find(h_path("up.jsonl"), "target", "/b");
	cr_assert(r, "request logged");
	cr_expect_eq(json_integer_value(json_object_get(r, "req")), 2, "one connection");
	tls = json_object_get(r, "tls");
	cr_assert(json_is_object(tls));
	cr_expect_str_eq(json_string_value(json_object_get(tls, "version")), "TLSv1.3");
	cr_expect_str_eq(json_string_value(json_object_get(tls, "sni")), "localhost");
	cr_expect_str_eq(json_string_value(json_object_get(tls, "alpn")), "http/1.1");
	cr_expect(json_is_null(json_object_get(tls, "client_cert")));
	cr_expect_str_eq(h_json_header(r, "host"), h_strf("localhost:%d", port));
	json_decref(r);
	tlsfix_ca_free(ca);
}

Test(upstream_tls, logs_a_null_sni_for_an_ip_literal_and_answers_on_ipv6)
{
	struct tlsfix_ca *ca;
	char *cert, *key, *out;
	json_t *r;
	int port;

	ca = ca_and_server(&cert, &key);
	port = start_tls(cert, key, NULL);
	cr_assert_eq(h_runl(NULL, 10000, &out, CURL, "--cacert", tlsfix_ca_cert_path(ca),
			    h_strf("https://127.0.0.1:%d/ip", port), NULL),
		     0, "curl: %s", out);
	free(out);
	/* RFC 6066 3: "Literal IPv4 and IPv6 addresses are not permitted in HostName" */
	r = h_jsonl_find(h_path("up.jsonl"), "target", "/ip");
	cr_assert(r);
	cr_expect(json_is_null(json_object_get(json_object_get(r, "tls"), "sni")));
	json_decref(r);
	if (!h_have_ipv6())
		goto out;
	cr_assert_eq(h_runl(NULL, 10000, &out, CURL, "--cacert", tlsfix_ca_cert_path(ca),
			    h_strf("https://[::1]:%d/six", port), NULL),
		     0, "curl: %s", out);
	free(out);
	r = h_jsonl_find(h_path("up.jsonl"), "target", "/six");
	cr_assert(r);
	cr_expect_str_eq(json_string_value(json_object_get(r, "local")), h_strf("[::1]:%d", port));
	json_decref(r);
out:
	tlsfix_ca_free(ca);
}

Test(upstream_tls, speaks_tls12_and_goes_without_alpn_when_none_is_offered)
{
	struct tlsfix_ca *ca;
	char *cert, *key, *out;
	json_t *r;
	int port;

	ca = ca_and_server(&cert, &key);
	port = start_tls(cert, key, NULL);
	cr_assert_eq(h_runl(NULL, 10000, &out, CURL, "--cacert", tlsfix_ca_cert_path(ca),
			    "--tls-max", "1.2", "--no-alpn",
			    h_strf("https://localhost:%d/v12", port), NULL),
		     0, "curl: %s", out);
	free(out);
	r = h_jsonl_find(h_path("up.jsonl"), "target", "/v12");
	cr_assert(r);
	cr_expect_str_eq(str_at(r, "tls", "version"), "TLSv1.2");
	cr_expect(json_is_null(json_object_get(json_object_get(r, "tls"), "alpn")));
	json_decref(r);
	tlsfix_ca_free(ca);
}

Test(upstream_tls, tls_max_caps_the_server_version)
{
	struct tlsfix_ca *ca;
	char *cert, *key, *out;
	json_t *r;
	int port = h_free_port();

	ca = ca_and_server(&cert, &key);
	cr_assert_gt(h_upstream_args("up", port, (const char *const[]){ "--tls-cert", cert,
									"--tls-key", key,
									"--tls-max", "1.2",
									NULL }),
		     0);
	cr_assert_eq(h_runl(NULL, 10000, &out, CURL, "--cacert", tlsfix_ca_cert_path(ca),
			    h_strf("https://localhost:%d/capped", port), NULL),
		     0, "curl: %s", out);
	free(out);
	r = h_jsonl_find(h_path("up.jsonl"), "target", "/capped");
	cr_assert(r);
	cr_expect_str_eq(str_at(r, "tls", "version"), "TLSv1.2");
	json_decref(r);
	tlsfix_ca_free(ca);
}

Test(upstream_tls, mtls_logs_the_client_cert_with_its_san)
{
	struct tlsfix_ca *ca, *cca = tlsfix_ca_new("client CA");
	char *cert, *key, *ccert, *ckey, *out;
	struct tlsfix_info info;
	json_t *r, *cc, *uris;
	int port;

	ca = ca_and_server(&cert, &key);
	cr_assert(cca);
	cr_assert_eq(tlsfix_client_cert(cca, "wl", "spiffe://test.lanyard/wl", &ccert, &ckey), 0);
	cr_assert_eq(tlsfix_cert_info(ccert, &info), 0);
	port = start_tls(cert, key, tlsfix_ca_cert_path(cca));
	cr_assert_eq(h_runl(NULL, 10000, &out, CURL, "--cacert", tlsfix_ca_cert_path(ca),
			    "--cert", ccert, "--key", ckey, h_strf("https://localhost:%d/m", port),
			    NULL),
		     0, "curl: %s", out);
	cr_expect_str_eq(out, "ok\n");
	free(out);
	r = h_jsonl_find(h_path("up.jsonl"), "target", "/m");
	cr_assert(r);
	cc = json_object_get(json_object_get(r, "tls"), "client_cert");
	cr_assert(json_is_object(cc), "client_cert logged");
	cr_expect_str_eq(json_string_value(json_object_get(cc, "subject")),
			 "CN=wl,O=lanyard tests");
	cr_expect_str_eq(json_string_value(json_object_get(cc, "issuer")),
			 "CN=client CA,O=lanyard tests");
	uris = json_object_get(cc, "uri_sans");
	cr_expect_eq(json_array_size(uris), 1);
	cr_expect_str_eq(json_string_value(json_array_get(uris, 0)), "spiffe://test.lanyard/wl");
	cr_expect_str_eq(json_string_value(json_object_get(cc, "sha256")), info.sha256);
	cr_expect_str_eq(json_string_value(json_object_get(cc, "serial")), info.serial);
	cr_expect_eq(json_integer_value(json_object_get(cc, "not_before")), info.not_before);
	cr_expect_eq(json_integer_value(json_object_get(cc, "not_after")), info.not_after);
	json_decref(r);
	tlsfix_ca_free(cca);
	tlsfix_ca_free(ca);
}

Test(upstream_tls, mtls_refuses_a_client_without_a_certificate)
{
	struct tlsfix_ca *ca, *cca = tlsfix_ca_new("client CA");
	char *cert, *key, *out;
	pid_t pid;
	int port = h_free_port();

	ca = ca_and_server(&cert, &key);
	cr_assert(cca);
	pid = h_tls_upstream("up", port, cert, key, tlsfix_ca_cert_path(cca));
	cr_assert_gt(pid, 0);
	cr_expect_neq(h_runl(NULL, 10000, &out, CURL, "--cacert", tlsfix_ca_cert_path(ca),
			     h_strf("https://localhost:%d/nocert", port), NULL),
		      0, "served without a client certificate: %s", out);
	free(out);
	cr_expect_eq(h_wait_output(pid, "peer did not return a certificate", 3000), 0);
	cr_expect_eq(h_jsonl_count(h_path("up.jsonl"), NULL, NULL), 0);
	tlsfix_ca_free(cca);
	tlsfix_ca_free(ca);
}

Test(upstream_tls, mtls_refuses_a_certificate_from_another_ca)
{
	struct tlsfix_ca *ca, *cca = tlsfix_ca_new("client CA"), *other = tlsfix_ca_new("other");
	char *cert, *key, *ccert, *ckey, *out;
	pid_t pid;
	int port = h_free_port();

	ca = ca_and_server(&cert, &key);
	cr_assert(cca && other);
	cr_assert_eq(tlsfix_client_cert(other, "wl", "spiffe://test.lanyard/wl", &ccert, &ckey), 0);
	pid = h_tls_upstream("up", port, cert, key, tlsfix_ca_cert_path(cca));
	cr_assert_gt(pid, 0);
	cr_expect_neq(h_runl(NULL, 10000, &out, CURL, "--cacert", tlsfix_ca_cert_path(ca),
			     "--cert", ccert, "--key", ckey,
			     h_strf("https://localhost:%d/other", port), NULL),
		      0, "served a certificate of another CA: %s", out);
	free(out);
	cr_expect_eq(h_wait_output(pid, "unable to get local issuer certificate", 3000), 0);
	cr_expect_eq(h_jsonl_count(h_path("up.jsonl"), NULL, NULL), 0);
	tlsfix_ca_free(other);
	tlsfix_ca_free(cca);
	tlsfix_ca_free(ca);
}

Test(upstream_tls, survives_plain_http_and_garbage_then_keeps_serving)
{
	static const char hello_junk[] = "\x16\x03\x01\x00\x05hello-not-a-client-hello";
	struct tlsfix_ca *ca;
	char *cert, *key, *out, junk[4096];
	size_t i;
	pid_t pid;
	int port = h_free_port(), fd;

	ca = ca_and_server(&cert, &key);
	pid = h_tls_upstream("up", port, cert, key, NULL);
	cr_assert_gt(pid, 0);
	cr_expect_neq(h_runl(NULL, 10000, &out, CURL, h_strf("http://127.0.0.1:%d/plain", port),
			     NULL),
		      0);
	free(out);
	for (i = 0; i < sizeof(junk); i++)
		junk[i] = (char)(i * 131 + 7);
	fd = tcp_connect(port);
	cr_expect_eq(write(fd, junk, sizeof(junk)), (ssize_t)sizeof(junk));
	close(fd);
	fd = tcp_connect(port);
	cr_expect_eq(write(fd, hello_junk, sizeof(hello_junk) - 1),
		     (ssize_t)sizeof(hello_junk) - 1);
	close(fd);
	close(tcp_connect(port)); /* connect and leave in silence */
	cr_expect_eq(h_wait_output(pid, "tls handshake failed", 3000), 0);
	cr_assert_eq(h_runl(NULL, 10000, &out, CURL, "--cacert", tlsfix_ca_cert_path(ca),
			    h_strf("https://localhost:%d/after", port), NULL),
		     0, "curl: %s", out);
	cr_expect_str_eq(out, "ok\n");
	free(out);
	cr_expect(h_alive(pid));
	cr_expect_eq(h_jsonl_count(h_path("up.jsonl"), NULL, NULL), 1);
	tlsfix_ca_free(ca);
}

Test(upstream_tls, answers_pipelined_requests_and_logs_decrypted_raw_bytes)
{
	static const char req[] = "GET /p1 HTTP/1.1\r\nHost: x\r\n\r\n"
				  "POST /p2 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
				  "GET /p3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
	static const char one[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
				  "Content-Length: 3\r\nConnection: keep-alive\r\n\r\nok\n";
	struct tlsfix_ca *ca;
	char *cert, *key, *resp, *raw;
	size_t len;
	int port;

	ca = ca_and_server(&cert, &key);
	port = start_tls(cert, key, NULL);
	resp = tls_exchange(port, tlsfix_ca_cert_path(ca), req, &len);
	cr_expect_eq(len, 2 * (sizeof(one) - 1) + sizeof(one) - 1 + 5 - 10);
	cr_expect(len > 2 * (sizeof(one) - 1) && !memcmp(resp, one, sizeof(one) - 1) &&
			  !memcmp(resp + sizeof(one) - 1, one, sizeof(one) - 1),
		  "%.*s", (int)len, resp);
	free(resp);
	cr_expect_eq(h_jsonl_count(h_path("up.jsonl"), "conn", "1"), 3);
	raw = h_read_file(h_path("up.raw"), &len);
	cr_assert(raw);
	cr_expect_eq(len, sizeof(req) - 1);
	cr_expect(len == sizeof(req) - 1 && !memcmp(raw, req, len), "raw holds the plaintext");
	free(raw);
	tlsfix_ca_free(ca);
}

Test(upstream_tls, moves_big_bodies_both_ways)
{
	struct tlsfix_ca *ca;
	char *cert, *key, *out, *file = h_path("big.bin"), *body;
	json_t *r;
	int port = h_free_port();

	ca = ca_and_server(&cert, &key);
	write_random_file(file, 4 << 20);
	/* a response of many TLS records: partial SSL_write and EPOLLOUT */
	body = malloc(100001);
	cr_assert(body);
	memset(body, 'b', 100000);
	body[100000] = '\0';
	cr_assert_gt(h_upstream_args("up", port, (const char *const[]){ "--tls-cert", cert,
									"--tls-key", key,
									"--body", body, NULL }),
		     0);
	free(body);
	cr_assert_eq(h_runl(NULL, 30000, &out, CURL, "--cacert", tlsfix_ca_cert_path(ca), "-o",
			    h_path("resp.bin"), "-H", "Expect: 100-continue", "--data-binary",
			    h_strf("@%s", file), h_strf("https://localhost:%d/up", port),
			    h_strf("https://localhost:%d/down", port), NULL),
		     0, "curl: %s", out);
	free(out);
	cr_expect_eq(h_file_size(h_path("resp.bin")), 100000);
	r = h_jsonl_find(h_path("up.jsonl"), "target", "/up");
	cr_assert(r);
	cr_expect_eq(json_integer_value(json_object_get(r, "body_len")), 4 << 20);
	json_decref(r);
	tlsfix_ca_free(ca);
}

Test(upstream_tls, serves_the_chain_of_an_intermediate)
{
	struct tlsfix_ca *root = tlsfix_ca_new("root"), *mid;
	char *cert, *key, *out;
	int port;

	cr_assert(root);
	mid = tlsfix_ca_intermediate(root, "intermediate");
	cr_assert(mid);
	cr_assert_eq(tlsfix_server_cert(mid, ly_local_names, &cert, &key), 0);
	port = start_tls(cert, key, NULL);
	cr_expect_eq(h_runl(NULL, 10000, &out, CURL, "--cacert", tlsfix_ca_cert_path(root),
			    h_strf("https://localhost:%d/chain", port), NULL),
		     0, "curl: %s", out);
	free(out);
	tlsfix_ca_free(mid);
	tlsfix_ca_free(root);
}

Test(upstream_tls, serves_an_rsa_certificate)
{
	struct tlsfix_leaf o = { .names = ly_local_names, .rsa = true };
	struct tlsfix_ca *ca = tlsfix_ca_new("root");
	char *cert, *key, *out;
	int port;

	cr_assert(ca);
	cr_assert_eq(tlsfix_issue(ca, &o, &cert, &key), 0);
	port = start_tls(cert, key, NULL);
	cr_expect_eq(h_runl(NULL, 10000, &out, CURL, "--cacert", tlsfix_ca_cert_path(ca),
			    h_strf("https://localhost:%d/rsa", port), NULL),
		     0, "curl: %s", out);
	free(out);
	tlsfix_ca_free(ca);
}

Test(upstream_tls, python3_ssl_talks_to_it_with_and_without_a_client_cert)
{
	static const char script[] =
		"import ssl, sys, http.client\n"
		"ctx = ssl.create_default_context(cafile=sys.argv[1])\n"
		"if len(sys.argv) > 3: ctx.load_cert_chain(sys.argv[3], sys.argv[4])\n"
		"c = http.client.HTTPSConnection('localhost', int(sys.argv[2]), context=ctx)\n"
		"c.request('GET', '/py')\n"
		"r = c.getresponse()\n"
		"print(r.status, r.read().decode().strip(), c.sock.version())\n";
	struct tlsfix_ca *ca, *cca = tlsfix_ca_new("client CA");
	char *cert, *key, *ccert, *ckey, *out;
	int port, mport;

	ca = ca_and_server(&cert, &key);
	cr_assert(cca);
	cr_assert_eq(tlsfix_client_cert(cca, "py", "spiffe://test.lanyard/py", &ccert, &ckey), 0);
	port = start_tls(cert, key, NULL);
	cr_assert_eq(h_runl(NULL, 10000, &out, PYTHON, "-c", script, tlsfix_ca_cert_path(ca),
			    h_strf("%d", port), NULL),
		     0, "python3: %s", out);
	cr_expect_str_eq(out, "200 ok TLSv1.3\n");
	free(out);
	mport = h_free_port();
	cr_assert_gt(h_tls_upstream("mup", mport, cert, key, tlsfix_ca_cert_path(cca)), 0);
	cr_assert_eq(h_runl(NULL, 10000, &out, PYTHON, "-c", script, tlsfix_ca_cert_path(ca),
			    h_strf("%d", mport), ccert, ckey, NULL),
		     0, "python3: %s", out);
	cr_expect_str_eq(out, "200 ok TLSv1.3\n");
	free(out);
	cr_expect_eq(h_jsonl_count(h_path("mup.jsonl"), "tls.client_cert.subject",
				   "CN=py,O=lanyard tests"),
		     1);
	tlsfix_ca_free(cca);
	tlsfix_ca_free(ca);
}

Test(upstream_tls, gnutls_cli_talks_to_it)
{
	struct tlsfix_ca *ca;
	char *cert, *key, *out;
	json_t *r;
	int port;

	ca = ca_and_server(&cert, &key);
	port = start_tls(cert, key, NULL);
	/* gnutls-cli quits at the end of its input: keep it open until the server closes */
	cr_assert_eq(h_runl(NULL, 15000, &out, "sh", "-c",
			    h_strf("{ printf 'GET /gnutls HTTP/1.1\\r\\nHost: localhost\\r\\n"
				   "Connection: close\\r\\n\\r\\n'; sleep 3; } | "
				   "gnutls-cli --x509cafile %s -p %d 127.0.0.1",
				   tlsfix_ca_cert_path(ca), port),
			    NULL),
		     0, "gnutls-cli: %s", out);
	cr_expect(strstr(out, "HTTP/1.1 200 OK"), "%s", out);
	free(out);
	r = h_jsonl_find(h_path("up.jsonl"), "target", "/gnutls");
	cr_assert(r);
	cr_expect(json_is_object(json_object_get(r, "tls")));
	json_decref(r);
	tlsfix_ca_free(ca);
}

Test(upstream_tls, refuses_to_start_with_bad_tls_options)
{
	struct tlsfix_ca *ca;
	char *cert, *key, *other_key, *out;
	const char *up = h_bin("ly-upstream"), *l = h_strf("127.0.0.1:%d", h_free_port());

	ca = ca_and_server(&cert, &key);
	cr_assert_eq(tlsfix_self_signed(ly_local_names, NULL, &other_key), 0);
	cr_expect_eq(h_runl(NULL, 5000, &out, up, "--listen", l, "--tls-cert", cert, "--tls-key",
			    other_key, NULL),
		     1, "a key that does not match: %s", out);
	cr_expect(strstr(out, "TLS setup"), "%s", out);
	free(out);
	cr_expect_eq(h_runl(NULL, 5000, &out, up, "--listen", l, "--tls-cert", cert, "--tls-key",
			    h_path("missing.key"), NULL),
		     1);
	free(out);
	cr_expect_eq(h_runl(NULL, 5000, &out, up, "--listen", l, "--tls-cert", cert, NULL), 2);
	free(out);
	cr_expect_eq(h_runl(NULL, 5000, &out, up, "--listen", l, "--client-ca", cert, NULL), 2);
	free(out);
	cr_expect_eq(h_runl(NULL, 5000, &out, up, "--listen", l, "--tls-cert", cert, "--tls-key",
			    key, "--tls-max", "1.1", NULL),
		     2);
	free(out);
	tlsfix_ca_free(ca);
}

Test(upstream_tls, plain_mode_logs_carry_no_tls_member)
{
	char *out;
	json_t *r;
	int port = h_free_port();

	cr_assert_gt(h_upstream("up", port, NULL), 0);
	cr_assert_eq(h_runl(NULL, 10000, &out, CURL, h_strf("http://127.0.0.1:%d/plain", port),
			    NULL),
		     0, "curl: %s", out);
	free(out);
	r = h_jsonl_find(h_path("up.jsonl"), "target", "/plain");
	cr_assert(r);
	cr_expect_null(json_object_get(r, "tls"));
	json_decref(r);
}
