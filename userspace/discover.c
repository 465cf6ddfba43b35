// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Copyright (c) 2026 The lanyard authors */
/*
 * Discovery: the credential-bearing headers of request heads that apps wrote, a
 * bounded inventory of their fingerprints, and a recommendation per row.  Reads
 * slices of the caller's buffer; the only copies of secret-derived bytes are the
 * decoded JWT header and payload, wiped after use.  Values are never kept.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "audit.h"
#include "discover.h"
#include "http1.h"
#include "log.h"
#include "secret.h"

/*
 * What is inspected (docs/discover.md):
 * - Only complete lines of the head: a line without its LF (the capture limit or the
 *   write cut it) is ignored, so a value is never fingerprinted from a prefix of
 *   itself.  Lines end in LF or CRLF (the app is the source here, nothing is forwarded).
 * - The head ends at the first empty line: what follows is a body and is not read.
 * - Authorization and Proxy-Authorization by scheme; the API-key headers below; the
 *   query parameters below on a complete request line.  Cookies are session state and
 *   are not inspected.
 * - Authorization schemes made of auth-params (Digest, OAuth 1.0, Hawk...) carry a
 *   per-request proof, not a reusable secret: not reported.  Any other scheme with a
 *   token68 credential ("token ghp_...", "SSWS ...") is a static key: api_key.  Its
 *   scheme is named only when it is in api_key_schemes: an app that writes
 *   "<key> <token>" would otherwise have its key shown as the scheme.
 * - The header lanyardd overwrites on the flow's route (its own credential) is skipped.
 */

#define DISCOVER_MAX_ROWS	4096	/* inventory rows; more are counted in "dropped" */
#define DISCOVER_HASH_SLOTS	8192	/* power of two, twice the rows: short probes */
#define DISCOVER_MAX_UNOBS	1024	/* unobservable (workload, exe, stack) rows */
#define DISCOVER_MAX_CREDS	16	/* credentials taken from one head */
#define DISCOVER_STR_MAX	255	/* stored strings (exe, destination, iss) cut here */
#define DISCOVER_JWT_PART_MAX	2048	/* base64url chars of a JWT header or payload */
#define DISCOVER_FP_PREFIX	"hmac:"	/* not "sha256:": those are unkeyed (secret.h) */

enum dkind {
	DK_BEARER_JWT,
	DK_BEARER,
	DK_BASIC,
	DK_API_KEY,
	DK_AWS_SIGV4,
};

static const char *const kind_names[] = {
	[DK_BEARER_JWT] = "bearer_jwt", [DK_BEARER] = "bearer", [DK_BASIC] = "basic",
	[DK_API_KEY] = "api_key", [DK_AWS_SIGV4] = "aws_sigv4",
};

/* Headers whose whole value is a static API key (compared without case). */
static const char *const api_key_headers[] = {
	"x-api-key", "api-key", "apikey", "x-apikey", "x-api-token", "x-auth-token",
	"x-access-token", "private-token", "x-goog-api-key", "ocp-apim-subscription-key",
	"x-functions-key", "x-rapidapi-key", "x-vault-token", "x-consul-token",
	"x-nomad-token", "dd-api-key", "dd-application-key", "x-honeycomb-team",
	"x-algolia-api-key", "x-shopify-access-token", "x-postmark-server-token",
	"circle-token", "x-jfrog-art-api", NULL,
};

/* Query parameters (name as the "header" field: "?api_key"). */
static const struct {
	const char *name, *field;
	enum dkind kind;	/* DK_BEARER: classified like a Bearer token (JWT or not) */
} query_keys[] = {
	{ "api_key", "?api_key", DK_API_KEY },
	{ "apikey", "?apikey", DK_API_KEY },
	{ "api-key", "?api-key", DK_API_KEY },
	{ "access_token", "?access_token", DK_BEARER },	/* RFC 6750 2.3 */
	{ "auth_token", "?auth_token", DK_API_KEY },
	{ "x-amz-credential", "?x-amz-credential", DK_AWS_SIGV4 },	/* presigned URL */
};

/* A value that is only one of these is a scheme without its credentials: nothing. */
static const char *const known_schemes[] = {
	"bearer", "basic", "aws4-hmac-sha256", "digest", "negotiate", "ntlm", NULL,
};

/* Authorization schemes of static keys that are shown by name (letters, dashes, <= 16). */
static const char *const api_key_schemes[] = {
	"token", "ssws", "apikey", "api-key", "key", "sso-key", "bot", "client-id",
	"klaviyo-api-key", "dsn", "access-key", "secret", "splunk", "geniekey", NULL,
};

/* Schemes whose credentials are a per-request challenge response: nothing static. */
static const char *const challenge_schemes[] = {
	"digest", "negotiate", "ntlm", "mutual", "hoba", "scram-sha-1", "scram-sha-256", NULL,
};

/* One credential found in a head.  val points into the head: never copied. */
struct dcred {
	enum dkind kind;
	const char *header;		/* static lowercase name */
	const char *val;		/* the bytes that are fingerprinted */
	size_t val_len;
	const char *scheme;		/* api_key: static name from api_key_schemes, or
					 * "(unknown scheme)"; NULL: no scheme */
	char iss[DISCOVER_STR_MAX + 1];	/* bearer_jwt: "iss" claim, cleaned; "" if none */
	int has_iss, has_exp;
	int64_t lifetime;		/* bearer_jwt: exp - iat (or exp - nbf); -1 unknown */
	int temporary;			/* aws_sigv4: STS credentials (ASIA key or session token) */
};

struct scan {
	struct dcred c[DISCOVER_MAX_CREDS];
	size_t n;
	int sts;			/* X-Amz-Security-Token seen in this head */
};

struct drow {
	char *workload, *exe, *dst, *sni, *lib;
	const char *header;		/* static */
	enum dkind kind;
	char fp[SECRET_FP_LEN];
	const char *scheme;		/* static; NULL: none */
	char *iss;			/* NULL: no "iss" claim */
	int has_exp, temporary;
	int64_t lifetime;
	uint64_t cgroup, requests, hash;
	uint32_t pid;
	int64_t first, last;
	unsigned int values;		/* bearer: distinct tokens seen for this workload, exe,
					 * destination and header (> 1: it rotates) */
};

struct dunobs {
	char *workload, *exe, *stack, *reason;
	uint32_t pid;
	int64_t first, last;
};

struct discover {
	struct secret *key;		/* HMAC key of the fingerprints (secure heap) */
	struct drow *rows;		/* grown on demand up to DISCOVER_MAX_ROWS */
	size_t nrows, cap;
	uint32_t *slots;		/* row index + 1; 0: free */
	struct dunobs *unobs;		/* grown on demand up to DISCOVER_MAX_UNOBS */
	size_t nunobs, ucap;
	uint64_t dropped, unobs_dropped;
	int full_warned;
};

/* --- small helpers ---------------------------------------------------------------- */

static int is_tchar(unsigned char ch)
{
	if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'))
		return 1;
	return ch && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

static int is_ows(char ch)
{
	return ch == ' ' || ch == '\t';
}

static struct http1_slice slice(const char *p, size_t len)
{
	return (struct http1_slice){ p, len };
}

static struct http1_slice trim(const char *p, size_t len)
{
	while (len && is_ows(*p)) {
		p++;
		len--;
	}
	while (len && is_ows(p[len - 1]))
		len--;
	return slice(p, len);
}

/*
 * How the inventory stores a string from the app or the kernel: at most
 * DISCOVER_STR_MAX bytes of printable ASCII, any other byte as \xNN, so that it is
 * always valid JSON and one line.  NULL -> "".
 */
void discover_clean(char *out, size_t size, const char *s, size_t len)
{
	size_t o = 0;

	if (!size)
		return;
	for (size_t i = 0; s && i < len && s[i]; i++) {
		unsigned char ch = (unsigned char)s[i];
		size_t need = ch >= 0x20 && ch < 0x7f && ch != '\\' ? 1 : 4;

		if (o + need > size - 1)
			break;
		if (need == 1)
			out[o++] = (char)ch;
		else
			o += (size_t)snprintf(out + o, size - o, "\\x%02x", ch);
	}
	out[o] = '\0';
}

static void clean_into(char out[DISCOVER_STR_MAX + 1], const char *s, size_t len)
{
	discover_clean(out, DISCOVER_STR_MAX + 1, s, len);
}

static char *clean_str(const char *s)
{
	char buf[DISCOVER_STR_MAX + 1];

	clean_into(buf, s, s ? strlen(s) : 0);
	return strdup(buf);
}

/* --- request line ----------------------------------------------------------------- */

/* Length of the line at p (without CR LF), and whether its LF is within len. */
static size_t line_len(const char *p, size_t len, int *complete)
{
	const char *nl = memchr(p, '\n', len);
	size_t n = nl ? (size_t)(nl - p) : len;

	*complete = nl != NULL;
	if (nl && n && p[n - 1] == '\r')
		n--;
	return n;
}

/* Offset of the line after the one at p, or len when it has no LF. */
static size_t next_line(const char *p, size_t len)
{
	const char *nl = memchr(p, '\n', len);

	return nl ? (size_t)(nl - p) + 1 : len;
}

/* Length of the first n bytes of s without any byte of reject. */
static size_t strcspn_n(const char *s, size_t n, const char *reject)
{
	size_t i = 0;

	while (i < n && s[i] && !strchr(reject, s[i]))
		i++;
	return i;
}

/* The first Host field among the complete lines from off (none: host_len stays 0). */
static void host_header(const char *head, size_t len, size_t off, struct discover_reqline *out)
{
	while (off < len) {
		const char *p = head + off;
		int complete;
		size_t n = line_len(p, len - off, &complete);
		const char *colon = memchr(p, ':', n);

		if (!complete || n == 0)
			break;
		if (colon && http1_name_eq(slice(p, (size_t)(colon - p)), "host")) {
			struct http1_slice v = trim(colon + 1, n - (size_t)(colon + 1 - p));

			out->host = v.ptr;
			out->host_len = v.len;
			return;
		}
		off += next_line(p, len - off);
	}
}

int discover_parse_reqline(const char *head, size_t len, struct discover_reqline *out)
{
	size_t n, i = 0, start;
	int complete;

	memset(out, 0, sizeof(*out));
	if (!head)
		return -EINVAL;
	n = line_len(head, len, &complete);
	while (i < n && is_tchar((unsigned char)head[i]))
		i++;
	if (i == 0 || i >= n || head[i] != ' ')
		return -EINVAL;
	start = ++i;
	while (i < n && head[i] > 0x20 && head[i] < 0x7f)
		i++;
	if (i == start)
		return -EINVAL;
	/* a complete line must end in the version; a cut one just stops in the target */
	if (complete && (n - i != 9 || memcmp(head + i, " HTTP/1.", 8) ||
			 (head[i + 8] != '0' && head[i + 8] != '1')))
		return -EINVAL;
	if (!complete && i < n && head[i] != ' ')
		return -EINVAL;
	out->method = head;
	out->method_len = start - 1;
	out->target = head + start;
	out->target_len = i - start;
	if (complete)
		host_header(head, len, next_line(head, len), out);
	return 0;
}

/* --- redaction of a request target ------------------------------------------------- */

#define REDACT_LONG	16	/* a segment longer than this may be a token */
#define REDACT_MIXED	8	/* letters and digits from this length: an id or a token */

/* A path segment that may carry a secret (docs/discover.md "Request targets"). */
static int segment_secret(const char *p, size_t n)
{
	int alpha = 0, digit = 0;

	if (n > REDACT_LONG)
		return 1;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)p[i];

		if (ch == ':' || ch == '@')
			return 1;
		/* %3A ':' and %40 '@', as a client may encode them in a path */
		if (ch == '%' && i + 2 < n &&
		    ((p[i + 1] == '3' && (p[i + 2] | 0x20) == 'a') ||
		     (p[i + 1] == '4' && p[i + 2] == '0')))
			return 1;
		alpha |= (ch | 0x20) >= 'a' && (ch | 0x20) <= 'z';
		digit |= ch >= '0' && ch <= '9';
	}
	return alpha && digit && n >= REDACT_MIXED;
}

/* "scheme://authority" of an absolute-form target (RFC 9112 3.2.2): its length, or 0. */
static size_t absolute_prefix(const char *in, size_t len)
{
	size_t i = 0;

	while (i < len && (((in[i] | 0x20) >= 'a' && (in[i] | 0x20) <= 'z') ||
			   (i && ((in[i] >= '0' && in[i] <= '9') || strchr("+-.", in[i])))))
		i++;
	if (!i || len - i < 3 || memcmp(in + i, "://", 3))
		return 0;
	i += 3;
	while (i < len && !strchr("/?#", in[i]))	/* userinfo@host:port */
		i++;
	return i;
}

size_t discover_redact_target(const char *in, size_t len, char *out, size_t outlen)
{
	size_t o = 0, i;

	if (!out || !outlen)
		return 0;
	out[0] = '\0';
	if (!in)
		return 0;
	i = absolute_prefix(in, len);
	len = i + strcspn_n(in + i, len - i, "?#");	/* no query, no fragment */
	if (i && i == len && outlen > 1)	/* "http://host": its path is "/" */
		out[o++] = '/';
	while (i < len) {
		size_t n = strcspn_n(in + i, len - i, "/");
		int secret = segment_secret(in + i, n);
		size_t w = secret ? 1 : n;
		int slash = i + n < len;

		if (o + w + (size_t)slash >= outlen)
			break;		/* whole segments only: never a prefix of one */
		memcpy(out + o, secret ? "*" : in + i, w);
		o += w;
		if (slash)
			out[o++] = '/';
		i += n + (size_t)slash;
	}
	out[o] = '\0';
	return o;
}

/* --- JWT --------------------------------------------------------------------------- */

static int b64url_val(unsigned char ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	if (ch == '-')
		return 62;
	return ch == '_' ? 63 : -1;
}

/* base64url without padding (RFC 7515 2) into out; decoded length, or -EINVAL. */
static ssize_t b64url_decode(const char *in, size_t len, unsigned char *out, size_t outlen)
{
	uint32_t acc = 0;
	size_t o = 0;
	int bits = 0;

	if (len % 4 == 1 || len / 4 * 3 + 2 > outlen)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		int v = b64url_val((unsigned char)in[i]);

		if (v < 0)
			return -EINVAL;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (unsigned char)(acc >> bits);
		}
	}
	return (ssize_t)o;
}

/* Decode one JWT part and parse it as a JSON object; NULL if it is not one. */
static json_t *jwt_part(const char *p, size_t len)
{
	unsigned char buf[DISCOVER_JWT_PART_MAX / 4 * 3 + 4];
	json_t *j = NULL;
	ssize_t n;

	if (!len || len > DISCOVER_JWT_PART_MAX)
		return NULL;
	n = b64url_decode(p, len, buf, sizeof(buf));
	if (n > 0)
		j = json_loadb((const char *)buf, (size_t)n, 0, NULL);
	explicit_bzero(buf, sizeof(buf));	/* claims of a live token: not left on the stack */
	if (j && !json_is_object(j)) {
		json_decref(j);
		j = NULL;
	}
	return j;
}

/* A NumericDate (RFC 7519 2) from 1970 to 9999: other values are treated as absent. */
static int claim_time(json_t *payload, const char *name, int64_t *out)
{
	json_t *v = json_object_get(payload, name);
	double d;

	if (!json_is_number(v))
		return 0;
	d = json_number_value(v);	/* NaN fails both tests */
	if (!(d >= 0 && d <= 253402300799.0))
		return 0;
	*out = (int64_t)d;
	return 1;
}

/* The claims a row shows: iss and the lifetime (exp - iat, else exp - nbf). */
static void jwt_claims(json_t *payload, struct dcred *c)
{
	const char *iss = json_string_value(json_object_get(payload, "iss"));
	int64_t exp = 0, start = 0;

	c->lifetime = -1;
	if (iss) {
		c->has_iss = 1;
		clean_into(c->iss, iss, strlen(iss));
	}
	c->has_exp = claim_time(payload, "exp", &exp);
	if (c->has_exp && (claim_time(payload, "iat", &start) || claim_time(payload, "nbf", &start)))
		c->lifetime = exp >= start ? exp - start : 0;
}

/*
 * A JWS compact serialisation (RFC 7515 7.1): three base64url parts, a header object
 * with "alg" and a payload that is a JSON object.  Nothing is verified: this is an
 * inventory.  1 (claims filled in) or 0 (an opaque token).
 */
static int jwt_inspect(const char *t, size_t len, struct dcred *c)
{
	const char *d1 = memchr(t, '.', len), *d2, *end = t + len;
	json_t *hdr = NULL, *payload = NULL;
	int ok = 0;

	if (!d1)
		return 0;
	d2 = memchr(d1 + 1, '.', (size_t)(end - d1 - 1));
	if (!d2 || memchr(d2 + 1, '.', (size_t)(end - d2 - 1)))
		return 0;	/* not three parts (a JWE has five) */
	for (const char *p = d2 + 1; p < end; p++)
		if (b64url_val((unsigned char)*p) < 0)
			return 0;
	hdr = jwt_part(t, (size_t)(d1 - t));
	if (!hdr || !json_is_string(json_object_get(hdr, "alg")))
		goto cleanup;
	payload = jwt_part(d1 + 1, (size_t)(d2 - d1 - 1));
	if (!payload)
		goto cleanup;
	jwt_claims(payload, c);
	ok = 1;
cleanup:
	json_decref(hdr);
	json_decref(payload);
	return ok;
}

/* --- credentials in a head ---------------------------------------------------------- */

static struct dcred *cred_add(struct scan *sc, enum dkind kind, const char *header,
			      struct http1_slice v)
{
	struct dcred *c;

	if (!v.len || sc->n == DISCOVER_MAX_CREDS)
		return NULL;
	c = &sc->c[sc->n++];
	memset(c, 0, sizeof(*c));
	c->kind = kind;
	c->header = header;
	c->val = v.ptr;
	c->val_len = v.len;
	c->lifetime = -1;
	return c;
}

/* A bearer token: a JWT (with its claims) or an opaque one. */
static void bearer_add(struct scan *sc, const char *header, struct http1_slice tok)
{
	struct dcred *c = cred_add(sc, DK_BEARER, header, tok);

	if (c && jwt_inspect(tok.ptr, tok.len, c))
		c->kind = DK_BEARER_JWT;
}

/*
 * SigV4: "Credential=<access key id>/<date>/<region>/<service>/aws4_request".  The
 * access key id is what identifies the static key (the signature changes with every
 * request), so it is what is fingerprinted.  An ASIA... key id is a temporary STS one.
 * v starts at the access key id; it ends at '/', or at "%2F" in a presigned URL.
 */
static void akid_add(struct scan *sc, const char *header, struct http1_slice v)
{
	struct dcred *c;
	size_t n = 0;

	while (n < v.len && v.ptr[n] && !strchr("/, %", v.ptr[n]))
		n++;
	c = cred_add(sc, DK_AWS_SIGV4, header, slice(v.ptr, n));
	if (c && n >= 4 && !memcmp(v.ptr, "ASIA", 4))
		c->temporary = 1;
}

/* The Authorization value after "AWS4-HMAC-SHA256": find Credential= among its params. */
static void sigv4_add(struct scan *sc, const char *header, struct http1_slice v)
{
	static const char key[] = "credential=";
	const size_t klen = sizeof(key) - 1;

	for (size_t i = 0; i + klen <= v.len; i++) {
		if (strncasecmp(v.ptr + i, key, klen) ||
		    (i && v.ptr[i - 1] != ' ' && v.ptr[i - 1] != ','))
			continue;
		akid_add(sc, header, slice(v.ptr + i + klen, v.len - i - klen));
		return;
	}
}

/* RFC 7235 2.1 token68: the only form of a single static credential after a scheme */
static int is_token68(struct http1_slice v)
{
	size_t i = 0;

	while (i < v.len && (b64url_val((unsigned char)v.ptr[i]) >= 0 ||
			     (v.ptr[i] && strchr(".~+/", v.ptr[i]))))
		i++;
	if (i == 0)
		return 0;
	while (i < v.len && v.ptr[i] == '=')
		i++;
	return i == v.len;
}

static int in_list(struct http1_slice s, const char *const *list)
{
	for (size_t i = 0; list[i]; i++)
		if (http1_name_eq(s, list[i]))
			return 1;
	return 0;
}

/*
 * How an api_key's scheme is shown: the allowlisted name (ours, lowercase), never the
 * bytes the app sent: "Authorization: <key-id> <secret>" is common and its first word
 * is then a secret too.
 */
static const char *scheme_name(struct http1_slice scheme)
{
	for (size_t i = 0; api_key_schemes[i]; i++)
		if (http1_name_eq(scheme, api_key_schemes[i]))
			return api_key_schemes[i];
	return "(unknown scheme)";
}

/* Authorization / Proxy-Authorization: "<scheme> <credentials>" (RFC 9110 11.4). */
static void authorization_add(struct scan *sc, const char *header, struct http1_slice v)
{
	struct http1_slice scheme, rest;
	struct dcred *c;
	size_t i = 0;

	if (!memchr(v.ptr, ' ', v.len) && !memchr(v.ptr, '\t', v.len)) {
		/* no scheme: the whole value is the key (e.g. "Authorization: sk-...") */
		if (is_token68(v) && !in_list(v, known_schemes))
			cred_add(sc, DK_API_KEY, header, v);
		return;
	}
	while (i < v.len && is_tchar((unsigned char)v.ptr[i]))
		i++;
	scheme = slice(v.ptr, i);
	rest = trim(v.ptr + i, v.len - i);
	if (!scheme.len || !is_ows(v.ptr[i]))
		return;
	if (http1_name_eq(scheme, "bearer"))
		bearer_add(sc, header, rest);
	else if (http1_name_eq(scheme, "basic"))
		cred_add(sc, DK_BASIC, header, rest);
	else if (http1_name_eq(scheme, "aws4-hmac-sha256"))
		sigv4_add(sc, header, rest);
	else if (!in_list(scheme, challenge_schemes) && is_token68(rest)) {
		c = cred_add(sc, DK_API_KEY, header, rest);
		if (c)
			c->scheme = scheme_name(scheme);
	}
}

static void header_add(struct scan *sc, struct http1_slice name, struct http1_slice v)
{
	if (http1_name_eq(name, "authorization"))
		authorization_add(sc, "authorization", v);
	else if (http1_name_eq(name, "proxy-authorization"))
		authorization_add(sc, "proxy-authorization", v);
	else if (http1_name_eq(name, "x-amz-security-token"))
		sc->sts = 1;
	else
		for (size_t i = 0; api_key_headers[i]; i++)
			if (http1_name_eq(name, api_key_headers[i])) {
				cred_add(sc, DK_API_KEY, api_key_headers[i], v);
				break;
			}
}

/* One query parameter of the request target. */
static void param_add(struct scan *sc, struct http1_slice name, struct http1_slice v)
{
	if (http1_name_eq(name, "x-amz-security-token")) {
		sc->sts = 1;
		return;
	}
	for (size_t i = 0; i < sizeof(query_keys) / sizeof(query_keys[0]); i++) {
		if (!http1_name_eq(name, query_keys[i].name))
			continue;
		if (query_keys[i].kind == DK_BEARER)
			bearer_add(sc, query_keys[i].field, v);
		else if (query_keys[i].kind == DK_AWS_SIGV4)
			akid_add(sc, query_keys[i].field, v);
		else
			cred_add(sc, query_keys[i].kind, query_keys[i].field, v);
		return;
	}
}

/* "?a=1&b=2": the value as sent (percent-encoding is not decoded). */
static void query_scan(struct scan *sc, const struct discover_reqline *rl)
{
	const char *q = memchr(rl->target, '?', rl->target_len);
	const char *end = rl->target + rl->target_len;

	while (q && q < end) {
		const char *p = q + 1, *amp = memchr(p, '&', (size_t)(end - p));
		const char *pend = amp ? amp : end, *eq = memchr(p, '=', (size_t)(pend - p));

		if (eq)
			param_add(sc, slice(p, (size_t)(eq - p)), slice(eq + 1, (size_t)(pend - eq - 1)));
		q = amp;
	}
}

/*
 * Header lines after the request line, complete ones only, up to the empty line.
 * skip: the header lanyardd overwrites on this route (NULL: none): what the app puts
 * there never leaves the host, and on an injected flow it is usually empty.
 */
static void head_scan(const char *head, size_t len, const char *skip, struct scan *sc)
{
	size_t off = next_line(head, len);

	while (off < len) {
		const char *p = head + off, *colon;
		int complete;
		size_t n = line_len(p, len - off, &complete), i = 0;

		if (!complete || n == 0)
			break;	/* a cut line, or the end of the head: nothing after is read */
		off += next_line(p, len - off);
		while (i < n && is_tchar((unsigned char)p[i]))
			i++;
		colon = i && i < n && p[i] == ':' ? p + i : NULL;
		if (!colon)	/* obs-fold continuations and junk lines have none */
			continue;
		/* skip is spelt as the policy wrote it ("Authorization"): without case */
		if (!skip || strlen(skip) != i || strncasecmp(p, skip, i))
			header_add(sc, slice(p, i), trim(colon + 1, n - i - 1));
	}
}

/* --- recommendation ------------------------------------------------------------------ */

static const char REC_SECRETLESS[] = "secretless";
static const char REC_SECRETS_MGMT[] = "secrets_management";

static void lifetime_text(const struct drow *r, char *out, size_t len)
{
	if (!r->has_exp)
		snprintf(out, len, "no exp claim: it never expires");
	else if (r->lifetime < 0)
		snprintf(out, len, "exp without iat or nbf: lifetime unknown");
	else
		snprintf(out, len, "lifetime %" PRId64 "s%s", r->lifetime,
			 r->lifetime > 86400 ? ", long-lived" : "");
}

/* bearer_jwt and aws_sigv4: the destination already takes short-lived credentials */
static const char *advice_federated(const struct drow *r, char *out, size_t len)
{
	char life[64];

	if (r->kind == DK_AWS_SIGV4) {
		snprintf(out, len, "AWS SigV4 with %s: AWS accepts federated, short-lived "
			 "credentials; let lanyard's jwt obtain them (AssumeRoleWithWebIdentity) "
			 "or use an x509 certificate (IAM Roles Anywhere)",
			 r->temporary ? "temporary STS credentials, handed to the app"
				      : "a long-term access key");
		return REC_SECRETLESS;
	}
	lifetime_text(r, life, sizeof(life));
	snprintf(out, len, "bearer JWT in %s from issuer %s (%s): the destination accepts "
		 "signed, expiring tokens; route it through lanyard with credential type jwt "
		 "(token_exchange or oauth2 if it only trusts %s)", r->header,
		 r->iss ? r->iss : "(none)", life, r->iss ? r->iss : "that issuer");
	return REC_SECRETLESS;
}

/*
 * The recommendation of a row and its reason (into out).  Rules (docs/discover.md):
 * bearer JWT and SigV4 -> secretless; an opaque bearer -> secretless only once more
 * than one value was seen for the same workload, exe, destination and header (the
 * token rotates, so an authorization server issues it), else secrets management;
 * Basic and API keys -> secrets management.
 */
static const char *row_advice(const struct drow *r, char *out, size_t len)
{
	switch (r->kind) {
	case DK_BEARER_JWT:
	case DK_AWS_SIGV4:
		return advice_federated(r, out, len);
	case DK_BEARER:
		if (r->values > 1) {
			snprintf(out, len, "opaque bearer token in %s that rotates (%u values seen): "
				 "an authorization server issues it, so the destination accepts "
				 "short-lived tokens; let lanyard obtain them (oauth2 or "
				 "token_exchange)", r->header, r->values);
			return REC_SECRETLESS;
		}
		snprintf(out, len, "opaque bearer token in %s, one value seen: lanyard cannot tell "
			 "who issued it; if the destination accepts OAuth 2.0 access tokens, route "
			 "it through lanyard (oauth2 or token_exchange), else keep it in secrets "
			 "management", r->header);
		return REC_SECRETS_MGMT;
	case DK_BASIC:
		snprintf(out, len, "HTTP Basic user:password in %s: only this static password "
			 "works at the destination; keep it in secrets management and rotate it",
			 r->header);
		return REC_SECRETS_MGMT;
	case DK_API_KEY:
	default:
		snprintf(out, len, "static API key in %s%s%s%s: the destination accepts only its "
			 "own keys; keep it in secrets management and rotate it", r->header,
			 r->scheme ? " (scheme " : "", r->scheme ? r->scheme : "",
			 r->scheme ? ")" : "");
		return REC_SECRETS_MGMT;
	}
}

/* --- inventory ------------------------------------------------------------------------ */

static void row_fini(struct drow *r)
{
	free(r->workload);
	free(r->exe);
	free(r->dst);
	free(r->sni);
	free(r->lib);
	free(r->iss);
	memset(r, 0, sizeof(*r));
}

static uint64_t fnv1a(uint64_t h, const char *s)
{
	do {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ULL;
	} while (*s++);		/* the NUL too: "ab"+"c" differs from "a"+"bc" */
	return h;
}

static uint64_t row_hash(const char *wl, const char *exe, const char *dst, enum dkind kind,
			 const char *header, const char *fp)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	h = fnv1a(h, wl);
	h = fnv1a(h, exe);
	h = fnv1a(h, dst);
	h = fnv1a(h, kind_names[kind]);
	h = fnv1a(h, header);
	return fnv1a(h, fp);
}

/* The row's key strings, cleaned as the inventory stores them (no allocation). */
struct rkey {
	char workload[DISCOVER_STR_MAX + 1], exe[DISCOVER_STR_MAX + 1], dst[DISCOVER_STR_MAX + 1];
};

static void rkey_init(struct rkey *k, const struct discover_obs *o)
{
	clean_into(k->workload, o->workload, o->workload ? strlen(o->workload) : 0);
	clean_into(k->exe, o->exe, o->exe ? strlen(o->exe) : 0);
	clean_into(k->dst, o->dst, o->dst ? strlen(o->dst) : 0);
}

static int row_is(const struct drow *r, uint64_t h, const struct rkey *k, const struct dcred *c,
		  const char *fp)
{
	return r->hash == h && r->kind == c->kind && r->header == c->header &&
	       !strcmp(r->fp, fp) && !strcmp(r->workload, k->workload) &&
	       !strcmp(r->exe, k->exe) && !strcmp(r->dst, k->dst);
}

/* The slot holding the row, or the free slot where it would go. */
static uint32_t *slot_find(struct discover *ds, uint64_t h, const struct rkey *k,
			   const struct dcred *c, const char *fp)
{
	size_t i = (size_t)h & (DISCOVER_HASH_SLOTS - 1);

	for (;; i = (i + 1) & (DISCOVER_HASH_SLOTS - 1)) {
		uint32_t *s = &ds->slots[i];

		if (!*s || row_is(&ds->rows[*s - 1], h, k, c, fp))
			return s;
	}
}

/* Replace *dst with the cleaned s when it differs (only then is anything allocated). */
static void str_update(char **dst, const char *s)
{
	char buf[DISCOVER_STR_MAX + 1], *d;

	if (!s)
		return;
	clean_into(buf, s, strlen(s));
	if (*dst && !strcmp(*dst, buf))
		return;
	d = strdup(buf);
	if (d) {
		free(*dst);
		*dst = d;
	}
}

/* Keep the latest pid, cgroup, SNI and library. */
static void row_touch(struct drow *r, const struct discover_obs *o, int64_t now)
{
	r->pid = o->pid;
	r->cgroup = o->cgroup_id;
	r->requests++;
	if (now > r->last)
		r->last = now;
	str_update(&r->sni, o->sni);
	str_update(&r->lib, o->lib);
}

/* A new bearer row: count the tokens of its (workload, exe, destination, header). */
static void bearer_values(struct discover *ds, struct drow *nr)
{
	unsigned int n = 1;

	for (size_t i = 0; i + 1 < ds->nrows; i++) {
		const struct drow *r = &ds->rows[i];

		n += r->kind == DK_BEARER && r->header == nr->header &&
		     !strcmp(r->workload, nr->workload) && !strcmp(r->exe, nr->exe) &&
		     !strcmp(r->dst, nr->dst);
	}
	for (size_t i = 0; n > 1 && i < ds->nrows; i++) {
		struct drow *r = &ds->rows[i];

		if (r->kind == DK_BEARER && r->header == nr->header &&
		    !strcmp(r->workload, nr->workload) && !strcmp(r->exe, nr->exe) &&
		    !strcmp(r->dst, nr->dst))
			r->values = n;
	}
}

/* Fill a new row.  0 or -ENOMEM (nothing kept). */
static int row_fill(struct drow *r, const struct rkey *k, const struct discover_obs *o,
		    const struct dcred *c, const char *fp, uint64_t h, int64_t now)
{
	memset(r, 0, sizeof(*r));
	r->workload = strdup(k->workload);
	r->exe = strdup(k->exe);
	r->dst = strdup(k->dst);
	r->lib = clean_str(o->lib);
	r->sni = o->sni ? clean_str(o->sni) : NULL;
	r->iss = c->has_iss ? strdup(c->iss) : NULL;
	if (!r->workload || !r->exe || !r->dst || !r->lib || (o->sni && !r->sni) ||
	    (c->has_iss && !r->iss)) {
		row_fini(r);
		return -ENOMEM;
	}
	r->kind = c->kind;
	r->header = c->header;
	memcpy(r->fp, fp, SECRET_FP_LEN);
	r->scheme = c->scheme;
	r->has_exp = c->has_exp;
	r->lifetime = c->lifetime;
	r->temporary = c->temporary;
	r->hash = h;
	r->first = r->last = now;
	r->values = 1;
	return 0;
}

/* secret.discovered: a row seen for the first time (docs/audit.md). */
static void audit_discovered(const struct drow *r)
{
	char reason[512];
	const char *rec = row_advice(r, reason, sizeof(reason));

	audit_begin("secret.discovered");
	audit_str("workload", r->workload);
	audit_u64("cgroup", r->cgroup);
	audit_u64("pid", r->pid);
	audit_str("exe", r->exe);
	audit_str("dst", r->dst);
	audit_str("sni", r->sni);
	audit_str("lib", r->lib);
	audit_str("kind", kind_names[r->kind]);
	audit_str("header", r->header);
	audit_str("fingerprint", r->fp);
	audit_str("recommendation", rec);
	audit_str("reason", reason);
	if (r->kind == DK_BEARER_JWT) {
		audit_str("jwt_iss", r->iss);
		if (r->has_exp && r->lifetime >= 0)
			audit_i64("jwt_lifetime_s", r->lifetime);
	}
	audit_end();
}

/* Room for one more element in *arr (n used of *cap, at most max). 0 or -ENOMEM. */
static int grow(void **arr, size_t *cap, size_t n, size_t size, size_t max)
{
	size_t ncap = *cap ? *cap * 2 : 16;
	void *p;

	if (n < *cap)
		return 0;
	if (ncap > max)
		ncap = max;
	p = realloc(*arr, ncap * size);
	if (!p)
		return -ENOMEM;
	*arr = p;
	*cap = ncap;
	return 0;
}

static int inventory_full(struct discover *ds)
{
	ds->dropped++;
	if (!ds->full_warned) {
		ds->full_warned = 1;
		log_warnx("discover: the inventory is full (%d rows): new credentials are "
			  "counted as dropped", DISCOVER_MAX_ROWS);
	}
	return -ENOSPC;
}

/*
 * DISCOVER_FP_PREFIX + the first 16 hex digits of HMAC-SHA256(key, value).  Keyed: an
 * unkeyed hash of a Basic user:password or a short key is found offline by guessing.
 */
static void fingerprint(const struct discover *ds, const char *val, size_t len,
			char out[SECRET_FP_LEN])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char *p = out + sizeof(DISCOVER_FP_PREFIX) - 1;

	if (!HMAC(EVP_sha256(), ds->key->buf, (int)ds->key->len, (const unsigned char *)val,
		  len, md, &mdlen) || mdlen < 8) {
		/* cannot happen short of a broken libcrypto: never show a value */
		snprintf(out, SECRET_FP_LEN, "%s?", DISCOVER_FP_PREFIX);
		return;
	}
	memcpy(out, DISCOVER_FP_PREFIX, sizeof(DISCOVER_FP_PREFIX) - 1);
	for (int i = 0; i < 8; i++) {
		*p++ = hex[md[i] >> 4];
		*p++ = hex[md[i] & 0xf];
	}
	*p = '\0';
	OPENSSL_cleanse(md, sizeof(md));
}

/* One credential of a head: update its row or add one.  0 or -errno. */
static int account(struct discover *ds, const struct discover_obs *o, const struct dcred *c,
		   int64_t now)
{
	struct rkey k;
	char fp[SECRET_FP_LEN];
	struct drow *r;
	uint32_t *slot;
	uint64_t h;

	fingerprint(ds, c->val, c->val_len, fp);
	rkey_init(&k, o);
	h = row_hash(k.workload, k.exe, k.dst, c->kind, c->header, fp);
	slot = slot_find(ds, h, &k, c, fp);
	if (*slot) {
		row_touch(&ds->rows[*slot - 1], o, now);
		return 0;
	}
	if (ds->nrows == DISCOVER_MAX_ROWS)
		return inventory_full(ds);
	if (grow((void **)&ds->rows, &ds->cap, ds->nrows, sizeof(*ds->rows),
		 DISCOVER_MAX_ROWS)) {
		ds->dropped++;
		return -ENOMEM;
	}
	r = &ds->rows[ds->nrows];
	if (row_fill(r, &k, o, c, fp, h, now)) {
		ds->dropped++;
		return -ENOMEM;
	}
	*slot = (uint32_t)++ds->nrows;
	row_touch(r, o, now);
	if (c->kind == DK_BEARER)
		bearer_values(ds, r);
	audit_discovered(r);
	return 0;
}

/* A head that carries the same credential twice counts once. */
static int seen_before(const struct scan *sc, size_t i)
{
	for (size_t j = 0; j < i; j++)
		if (sc->c[j].kind == sc->c[i].kind && sc->c[j].header == sc->c[i].header &&
		    sc->c[j].val_len == sc->c[i].val_len &&
		    !memcmp(sc->c[j].val, sc->c[i].val, sc->c[i].val_len))
			return 1;
	return 0;
}

int discover_observe(struct discover *ds, const struct discover_obs *o, int64_t now_s)
{
	struct discover_reqline rl;
	struct scan sc;
	int n = 0;

	if (!ds || !o || !o->head)
		return -EINVAL;
	if (discover_parse_reqline(o->head, o->len, &rl))
		return -EINVAL;
	sc.n = 0;
	sc.sts = 0;
	head_scan(o->head, o->len, o->injected_header, &sc);
	if (memchr(o->head, '\n', o->len))	/* the query of a complete request line */
		query_scan(&sc, &rl);
	for (size_t i = 0; i < sc.n; i++) {
		if (seen_before(&sc, i))
			continue;
		if (sc.c[i].kind == DK_AWS_SIGV4 && sc.sts)
			sc.c[i].temporary = 1;
		account(ds, o, &sc.c[i], now_s);
		n++;
	}
	/* pointers to the values and a live token's claims: not left on the stack */
	explicit_bzero(sc.c, sc.n * sizeof(sc.c[0]));
	return n;
}

/* --- unobservable stacks ------------------------------------------------------------- */

void discover_note_unobservable(struct discover *ds, const char *workload, uint32_t pid,
				const char *exe, const char *stack, const char *reason,
				int64_t now_s)
{
	char cwl[DISCOVER_STR_MAX + 1], cexe[DISCOVER_STR_MAX + 1], cstack[DISCOVER_STR_MAX + 1];
	struct dunobs *u;

	if (!ds)
		return;
	/* rows keep cleaned strings: compare cleaned ones (a non-ASCII exe is escaped) */
	clean_into(cwl, workload, workload ? strlen(workload) : 0);
	clean_into(cexe, exe, exe ? strlen(exe) : 0);
	clean_into(cstack, stack, stack ? strlen(stack) : 0);
	for (size_t i = 0; i < ds->nunobs; i++) {
		u = &ds->unobs[i];
		if (!strcmp(u->workload, cwl) && !strcmp(u->exe, cexe) &&
		    !strcmp(u->stack, cstack)) {
			u->pid = pid;
			if (now_s > u->last)
				u->last = now_s;
			return;
		}
	}
	if (ds->nunobs == DISCOVER_MAX_UNOBS ||
	    grow((void **)&ds->unobs, &ds->ucap, ds->nunobs, sizeof(*ds->unobs),
		 DISCOVER_MAX_UNOBS)) {
		ds->unobs_dropped++;
		return;
	}
	u = &ds->unobs[ds->nunobs];
	u->workload = strdup(cwl);
	u->exe = strdup(cexe);
	u->stack = clean_str(stack);
	u->reason = clean_str(reason);
	if (!u->workload || !u->exe || !u->stack || !u->reason) {
		free(u->workload);
		free(u->exe);
		free(u->stack);
		free(u->reason);
		ds->unobs_dropped++;
		return;
	}
	u->pid = pid;
	u->first = u->last = now_s;
	ds->nunobs++;
	audit_begin("tls.unobservable");
	audit_str("workload", u->workload);
	audit_u64("pid", pid);
	audit_str("exe", u->exe);
	audit_str("stack", u->stack);
	audit_str("reason", u->reason);
	audit_end();
}

/* --- JSON ------------------------------------------------------------------------------ */

static json_t *jwt_json(const struct drow *r)
{
	if (r->kind != DK_BEARER_JWT)
		return json_null();
	return json_pack("{s:s?, s:o}", "iss", r->iss, "lifetime_s",
			 r->has_exp && r->lifetime >= 0 ? json_integer((json_int_t)r->lifetime)
							: json_null());
}

static json_t *row_json(const struct drow *r)
{
	char reason[512];
	const char *rec = row_advice(r, reason, sizeof(reason));

	return json_pack("{s:s, s:I, s:I, s:s, s:s, s:s?, s:s, s:s, s:s, s:s, s:o, s:I, s:I, "
			 "s:I, s:s, s:s}",
			 "workload", r->workload, "pid", (json_int_t)r->pid,
			 "cgroup", (json_int_t)r->cgroup, "exe", r->exe, "destination", r->dst,
			 "sni", r->sni, "lib", r->lib, "kind", kind_names[r->kind],
			 "header", r->header, "fingerprint", r->fp, "jwt", jwt_json(r),
			 "first_seen", (json_int_t)r->first, "last_seen", (json_int_t)r->last,
			 "requests", (json_int_t)r->requests, "recommendation", rec,
			 "reason", reason);
}

static json_t *unobs_json(const struct dunobs *u)
{
	return json_pack("{s:s, s:I, s:s, s:s, s:s, s:I, s:I}", "workload", u->workload,
			 "pid", (json_int_t)u->pid, "exe", u->exe, "stack", u->stack,
			 "reason", u->reason, "first_seen", (json_int_t)u->first,
			 "last_seen", (json_int_t)u->last);
}

json_t *discover_json(const struct discover *ds, int64_t since_s)
{
	json_t *secrets = json_array(), *unobs = json_array();

	for (size_t i = 0; ds && secrets && i < ds->nrows; i++)
		if (ds->rows[i].last >= since_s)
			json_array_append_new(secrets, row_json(&ds->rows[i]));
	for (size_t i = 0; ds && unobs && i < ds->nunobs; i++)
		if (ds->unobs[i].last >= since_s)
			json_array_append_new(unobs, unobs_json(&ds->unobs[i]));
	return json_pack("{s:o, s:o, s:I, s:I}", "secrets", secrets, "unobservable", unobs,
			 "dropped", (json_int_t)(ds ? ds->dropped : 0),
			 "unobservable_dropped", (json_int_t)(ds ? ds->unobs_dropped : 0));
}

/* --- lifetime ------------------------------------------------------------------------- */

struct discover *discover_new(const void *key, size_t keylen)
{
	struct discover *ds;

	if (!key || keylen != DISCOVER_KEY_LEN)
		return NULL;
	ds = calloc(1, sizeof(*ds));
	if (!ds)
		return NULL;
	ds->key = secret_dup(key, keylen);
	ds->slots = calloc(DISCOVER_HASH_SLOTS, sizeof(*ds->slots));
	if (!ds->key || !ds->slots) {
		discover_free(ds);
		return NULL;
	}
	return ds;
}

void discover_free(struct discover *ds)
{
	if (!ds)
		return;
	for (size_t i = 0; ds->rows && i < ds->nrows; i++)
		row_fini(&ds->rows[i]);
	for (size_t i = 0; ds->unobs && i < ds->nunobs; i++) {
		free(ds->unobs[i].workload);
		free(ds->unobs[i].exe);
		free(ds->unobs[i].stack);
		free(ds->unobs[i].reason);
	}
	free(ds->rows);
	free(ds->slots);
	free(ds->unobs);
	secret_free(ds->key);
	free(ds);
}

struct secret *discover_key_load_or_create(const char *state_dir, char *err, size_t errlen)
{
	char path[4096];
	struct secret *key = NULL;
	int r;

	r = snprintf(path, sizeof(path), "%s/%s", state_dir, DISCOVER_KEY_FILE);
	if (r < 0 || (size_t)r >= sizeof(path)) {
		snprintf(err, errlen, "discovery key: state_dir too long");
		return NULL;
	}
	if (secret_key_file(path, "discovery key", DISCOVER_KEY_LEN, &key, err, errlen))
		return NULL;
	return key;
}
