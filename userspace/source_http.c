// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Copyright (c) 2026 The lanyard authors */
/*
 * Credentials from a token endpoint, with libcurl, on a fetch worker:
 *   oauth2          client-credentials grant (RFC 6749 4.4)
 *   token_exchange  lanyard's JWT for the workload as the subject (RFC 8693)
 * lanyardd authenticates with private_key_jwt (RFC 7523 2.2: an assertion the
 * loop signed with lanyard's key, so no client secret exists at all), with
 * client_secret_basic from a root-only file for providers that cannot, or
 * (token exchange only) not at all.  TLS is always verified; nothing follows
 * a redirect; the answer is bounded; the request body, which holds the
 * assertion or the subject token, lives in the secure heap.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "fetch.h"

#define GRANT_CLIENT_CREDENTIALS "client_credentials"
#define GRANT_TOKEN_EXCHANGE "urn:ietf:params:oauth:grant-type:token-exchange"
#define ASSERTION_TYPE "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#define TOKEN_TYPE_JWT "urn:ietf:params:oauth:token-type:jwt"
#define TOKEN_TYPE_ACCESS "urn:ietf:params:oauth:token-type:access_token"
#define MAX_CLIENT_SECRET 1024

/* The request body: form fields appended with escaping, in the secure heap. */
struct form {
	struct secret *s;
	size_t len;
	int err;
};

/* RFC 3986 2.3 unreserved */
static int unreserved(unsigned char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       ch == '-' || ch == '.' || ch == '_' || ch == '~';
}

/* application/x-www-form-urlencoded: unreserved bytes stay, the rest become %XX */
static size_t form_escape(char *out, const char *v, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)v[i];

		if (unreserved(ch)) {
			if (out)
				out[o] = (char)ch;
			o++;
		} else {
			if (out) {
				out[o] = '%';
				out[o + 1] = hex[ch >> 4];
				out[o + 2] = hex[ch & 15];
			}
			o += 3;
		}
	}
	return o;
}

static void form_add(struct form *f, const char *name, const char *v, size_t n)
{
	size_t need;

	if (f->err || !v)
		return;
	need = f->len + (f->len ? 1 : 0) + strlen(name) + 1 + form_escape(NULL, v, n);
	if (need + 1 > f->s->len) {
		f->err = -E2BIG;
		return;
	}
	if (f->len)
		f->s->buf[f->len++] = '&';
	f->len += (size_t)sprintf(f->s->buf + f->len, "%s=", name);
	f->len += form_escape(f->s->buf + f->len, v, n);
	f->s->buf[f->len] = '\0';
}

static void form_add_str(struct form *f, const char *name, const char *v)
{
	if (v && *v)
		form_add(f, name, v, strlen(v));
}

/* The client secret file: root's, mode 0600, one line. */
static int read_client_secret(struct fetch_job *j, struct secret **out)
{
	const char *path = j->src->client_secret_file;
	char err[256], *nl;
	struct secret *s;
	struct stat st;
	ssize_t n;
	int fd, rc;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return fetch_fail(j, -errno, "client_secret_file %s: %s", path, strerror(errno));
	rc = fstat(fd, &st) < 0 ? -errno : secret_file_check(path, "client_secret_file", &st, err,
							       sizeof(err));
	s = rc ? NULL : secret_new(MAX_CLIENT_SECRET);
	if (!rc && !s)
		rc = -ENOMEM;
	n = rc ? -1 : read(fd, s->buf, MAX_CLIENT_SECRET);
	close(fd);
	if (rc) {
		secret_free(s);
		return fetch_fail(j, rc, "%s", rc == -ENOMEM ? "out of memory" : err);
	}
	if (n < 0 || n >= MAX_CLIENT_SECRET) {
		secret_free(s);
		return fetch_fail(j, -EINVAL, "client_secret_file %s: %s", path,
				  n < 0 ? strerror(errno) : "longer than 1 KiB");
	}
	s->buf[n] = '\0';
	nl = strchr(s->buf, '\n');
	if (nl && nl[1] == '\0')
		*nl = '\0';
	s->len = strlen(s->buf);
	if (!s->len || fetch_token_check(s->buf, s->len)) {
		secret_free(s);
		return fetch_fail(j, -EINVAL, "client_secret_file %s: not one line of visible "
				  "ASCII", path);
	}
	*out = s;
	return 0;
}

/* The grant's fields, and the client's authentication (into the form or basic). */
static int build_form(struct fetch_job *j, struct form *f, struct secret **basic)
{
	const struct policy_source *src = j->src;
	int exchange = j->type == POLICY_CRED_TOKEN_EXCHANGE;

	form_add_str(f, "grant_type", exchange ? GRANT_TOKEN_EXCHANGE : GRANT_CLIENT_CREDENTIALS);
	if (exchange) {
		form_add(f, "subject_token", j->subject->buf, j->subject->len);
		form_add_str(f, "subject_token_type", TOKEN_TYPE_JWT);
		form_add_str(f, "requested_token_type", TOKEN_TYPE_ACCESS);
	}
	form_add_str(f, "scope", src->scope);
	form_add_str(f, "resource", src->resource);
	form_add_str(f, "audience", j->audience);
	switch (src->auth) {
	case POLICY_AUTH_PRIVATE_KEY_JWT:
		form_add_str(f, "client_id", src->client_id);
		form_add_str(f, "client_assertion_type", ASSERTION_TYPE);
		form_add(f, "client_assertion", j->assertion->buf, j->assertion->len);
		break;
	case POLICY_AUTH_SECRET_BASIC:
		if (read_client_secret(j, basic))
			return j->err;
		break;
	case POLICY_AUTH_NONE:
		break;
	}
	if (f->err)
		return fetch_fail(j, f->err, "the token request is too large");
	return 0;
}

/* --- libcurl ------------------------------------------------------------------------ */

struct answer {
	char *buf;		/* wiped before it is freed: it holds the token */
	size_t len, cap;
	int too_big;
};

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct answer *a = arg;
	size_t n = size * nmemb;
	char *nb;

	if (a->len + n > FETCH_MAX_RESPONSE) {
		a->too_big = 1;
		return 0;	/* curl stops with CURLE_WRITE_ERROR */
	}
	if (a->len + n + 1 > a->cap) {
		/* grow by copy, not realloc: the old block is wiped before it goes */
		size_t cap = a->cap ? a->cap * 2 : 4096;

		while (cap < a->len + n + 1)
			cap *= 2;
		nb = malloc(cap);
		if (!nb)
			return 0;
		if (a->buf) {
			memcpy(nb, a->buf, a->len);
			explicit_bzero(a->buf, a->cap);
			free(a->buf);
		}
		a->buf = nb;
		a->cap = cap;
	}
	memcpy(a->buf + a->len, ptr, n);
	a->len += n;
	a->buf[a->len] = '\0';
	return n;
}

/* a fetch in progress gives up when lanyardd stops */
static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		       curl_off_t ulnow)
{
	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	return fetch_cancelled(arg);
}

/* lanyardd's own sockets carry its mark: the kernel never redirects them to itself */
static int on_socket(void *arg, curl_socket_t fd, curlsocktype purpose)
{
	const struct fetch_job *j = arg;

	(void)purpose;
	if (j->mark && setsockopt(fd, SOL_SOCKET, SO_MARK, &j->mark, sizeof(j->mark)) < 0)
		return CURL_SOCKOPT_ERROR;
	return CURL_SOCKOPT_OK;
}

static CURLcode curl_setup(CURL *h, struct fetch_job *j, struct curl_slist *hdrs,
			   const struct form *f, const struct secret *basic, struct answer *a,
			   char *errbuf)
{
	const struct policy_source *src = j->src;
	CURLcode rc = CURLE_OK;

#define SET(opt, val) do { if (rc == CURLE_OK) rc = curl_easy_setopt(h, opt, val); } while (0)
	SET(CURLOPT_URL, src->token_url);
	SET(CURLOPT_PROTOCOLS_STR, "https");
	SET(CURLOPT_FOLLOWLOCATION, 0L);
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_NOPROXY, "*");
	SET(CURLOPT_SSL_VERIFYPEER, 1L);
	SET(CURLOPT_SSL_VERIFYHOST, 2L);
	if (src->ca_file)
		SET(CURLOPT_CAINFO, src->ca_file);
	SET(CURLOPT_TIMEOUT_MS, (long)src->timeout_ms);
	SET(CURLOPT_CONNECTTIMEOUT_MS, (long)src->timeout_ms);
	SET(CURLOPT_POSTFIELDS, f->s->buf);
	SET(CURLOPT_POSTFIELDSIZE, (long)f->len);
	SET(CURLOPT_HTTPHEADER, hdrs);
	SET(CURLOPT_USERAGENT, "lanyard");
	SET(CURLOPT_WRITEFUNCTION, on_body);
	SET(CURLOPT_WRITEDATA, a);
	SET(CURLOPT_SOCKOPTFUNCTION, on_socket);
	SET(CURLOPT_SOCKOPTDATA, j);
	SET(CURLOPT_ERRORBUFFER, errbuf);
	SET(CURLOPT_NOPROGRESS, 0L);
	SET(CURLOPT_XFERINFOFUNCTION, on_progress);
	SET(CURLOPT_XFERINFODATA, j);
	if (basic) {
		/* RFC 6749 2.3.1: both parts form-encoded before they are joined */
		SET(CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
		SET(CURLOPT_USERNAME, src->client_id);
		SET(CURLOPT_PASSWORD, basic->buf);
	}
#undef SET
	return rc;
}

/* The client secret as RFC 6749 2.3.1 wants it in Basic: form-encoded. */
static struct secret *basic_password(const struct secret *raw)
{
	struct secret *s = secret_new(form_escape(NULL, raw->buf, raw->len));

	if (s)
		s->buf[form_escape(s->buf, raw->buf, raw->len)] = '\0';
	return s;
}

static void http_post(struct fetch_job *j, const struct form *f, const struct secret *basic)
{
	char errbuf[CURL_ERROR_SIZE] = "";
	struct answer a = { 0 };
	struct curl_slist *hdrs = NULL;
	long status = 0;
	CURLcode rc;
	CURL *h = curl_easy_init();

	hdrs = curl_slist_append(hdrs, "Accept: application/json");
	if (!h || !hdrs) {
		fetch_fail(j, -ENOMEM, "out of memory");
		goto out;
	}
	rc = curl_setup(h, j, hdrs, f, basic, &a, errbuf);
	if (rc == CURLE_OK)
		rc = curl_easy_perform(h);
	if (rc != CURLE_OK) {
		fetch_fail(j, rc == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT : -EIO,
			   "token endpoint %s: %s", j->src->token_url,
			   a.too_big ? "answer larger than 64 KiB" :
			   errbuf[0] ? errbuf : curl_easy_strerror(rc));
		goto out;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	j->err = fetch_parse_token_response(status, a.buf ? a.buf : "", a.len, time(NULL),
					    &j->token, &j->expires_at, j->why, sizeof(j->why));
out:
	if (a.buf)
		explicit_bzero(a.buf, a.cap);
	free(a.buf);
	curl_slist_free_all(hdrs);
	if (h)
		curl_easy_cleanup(h);
}

void source_http_fetch(struct fetch_job *j)
{
	struct secret *raw = NULL, *basic = NULL;
	struct form f = { 0 };

	f.s = secret_new(FETCH_MAX_TOKEN * 4);
	if (!f.s) {
		fetch_fail(j, -ENOMEM, "out of memory");
		return;
	}
	f.s->buf[0] = '\0';
	if ((j->src->auth == POLICY_AUTH_PRIVATE_KEY_JWT && !j->assertion) ||
	    (j->type == POLICY_CRED_TOKEN_EXCHANGE && !j->subject)) {
		fetch_fail(j, -EINVAL, "no assertion or subject token to send");
		goto out;
	}
	if (build_form(j, &f, &raw))
		goto out;
	if (raw) {
		basic = basic_password(raw);
		if (!basic) {
			fetch_fail(j, -ENOMEM, "out of memory");
			goto out;
		}
	}
	http_post(j, &f, basic);
out:
	secret_free(raw);
	secret_free(basic);
	secret_free(f.s);
}
