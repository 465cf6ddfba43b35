// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Copyright (c) 2026 The lanyard authors */
/*
 * libFuzzer driver for userspace/discover.c: arbitrary request heads (and the same bytes as
 * the process and destination names) into discover_observe, then the inventory's JSON.
 * Invariants: no crash or over-read, request-line slices inside the head, every row
 * complete and valid JSON, canary credentials inserted into the head are found,
 * fingerprinted (keyed), and never shown, except the header an injecting route
 * overwrites; a redacted request target has no query, fragment, ':' or '@'.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "fuzz.h"
#include "discover.h"
#include "secret.h"

/* Canary credentials: one per kind the parser tells apart by scheme or header. */
static const char *const canary_values[] = {
	"CanaryBearer0x5eed9f1d6b7c",
	"Q2FuYXJ5OmJhc2ljLXBhc3N3b3Jk",
	"canary-api-key-7d2b4c91e0aa",
};
static const char canary_lines[] = "Authorization: Bearer CanaryBearer0x5eed9f1d6b7c\r\n"
				   "Proxy-Authorization: Basic Q2FuYXJ5OmJhc2ljLXBhc3N3b3Jk\r\n"
				   "X-Api-Key: canary-api-key-7d2b4c91e0aa\r\n";

static const unsigned char fuzz_key[DISCOVER_KEY_LEN] = "fuzz-discover-key-0123456789abcd";

/* "hmac:" + 16 hex of HMAC-SHA256(fuzz_key, v), computed apart from discover.c */
static void expected_fp(const char *v, char out[SECRET_FP_LEN])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	CHECK(HMAC(EVP_sha256(), fuzz_key, sizeof(fuzz_key), (const unsigned char *)v,
		   strlen(v), md, &mdlen));
	snprintf(out, SECRET_FP_LEN, "hmac:%02x%02x%02x%02x%02x%02x%02x%02x", md[0], md[1],
		 md[2], md[3], md[4], md[5], md[6], md[7]);
}

static const char *const kinds[] = { "bearer_jwt", "bearer", "basic", "api_key", "aws_sigv4",
				     NULL };

static int in_list(const char *s, const char *const *list)
{
	for (size_t i = 0; s && list[i]; i++)
		if (!strcmp(s, list[i]))
			return 1;
	return 0;
}

static int in_head(const char *p, size_t n, const char *head, size_t len)
{
	return p >= head && n <= len && p + n <= head + len;
}

static void check_redact(const char *t, size_t len)
{
	char out[64];
	size_t n = discover_redact_target(t, len, out, sizeof(out));

	CHECK(n < sizeof(out) && strlen(out) == n);
	CHECK(!strpbrk(out, "?#:@"));
}

static void check_reqline(const char *head, size_t len)
{
	struct discover_reqline rl;

	if (discover_parse_reqline(head, len, &rl))
		return;
	CHECK(rl.method == head && rl.method_len > 0 && rl.target_len > 0);
	CHECK(in_head(rl.target, rl.target_len, head, len));
	CHECK(!rl.host_len || in_head(rl.host, rl.host_len, head, len));
	check_redact(rl.target, rl.target_len);
}

/* Every row complete; no canary value anywhere in the dump. */
static void check_json(const struct discover *ds, size_t min_rows)
{
	json_t *all = discover_json(ds, 0), *secrets, *row;
	size_t i, canaries = 0;
	char fp[SECRET_FP_LEN];
	char *dump;

	CHECK(all);
	secrets = json_object_get(all, "secrets");
	CHECK(json_is_array(secrets) && json_array_size(secrets) >= min_rows);
	json_array_foreach(secrets, i, row) {
		const char *f = json_string_value(json_object_get(row, "fingerprint"));

		CHECK(json_is_object(row));
		CHECK(in_list(json_string_value(json_object_get(row, "kind")), kinds));
		CHECK(f && strlen(f) == SECRET_FP_LEN - 3 && !strncmp(f, "hmac:", 5));
		CHECK(json_integer_value(json_object_get(row, "requests")) >= 1);
		CHECK(json_is_string(json_object_get(row, "reason")));
		for (size_t c = 0; c < sizeof(canary_values) / sizeof(canary_values[0]); c++) {
			expected_fp(canary_values[c], fp);
			canaries += !strcmp(f, fp);
		}
	}
	CHECK(canaries >= min_rows);
	dump = json_dumps(all, JSON_COMPACT);
	CHECK(dump);
	for (i = 0; i < sizeof(canary_values) / sizeof(canary_values[0]); i++)
		CHECK(!strstr(dump, canary_values[i]));
	free(dump);
	json_decref(all);
}

/* The input with the canary lines right after its request line (when it has one). */
static char *with_canaries(const char *head, size_t len, size_t *outlen)
{
	const char *nl = memchr(head, '\n', len);
	size_t at, clen = sizeof(canary_lines) - 1;
	char *out;

	if (!nl)
		return NULL;
	at = (size_t)(nl - head) + 1;
	out = malloc(len + clen);
	CHECK(out);
	memcpy(out, head, at);
	memcpy(out + at, canary_lines, clen);
	memcpy(out + at + clen, head + at, len - at);
	*outlen = len + clen;
	return out;
}

/* The input as names, unless it holds a canary (a name is shown: that is no leak). */
static int names_ok(const uint8_t *data, size_t size)
{
	/* as shown: an escape (\xca) can complete a canary ("nary-...") */
	char *shown = malloc(size * 4 + 1);
	int ok = shown != NULL;

	if (ok)
		discover_clean(shown, size * 4 + 1, (const char *)data, size);
	for (size_t i = 0; ok && i < sizeof(canary_values) / sizeof(canary_values[0]); i++)
		ok = !memmem(data, size, canary_values[i], strlen(canary_values[i])) &&
		     !strstr(shown, canary_values[i]);
	free(shown);
	return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct discover *ds = discover_new(fuzz_key, sizeof(fuzz_key));
	char *head = malloc(size ? size : 1), *name = malloc(size + 1), *canary;
	struct discover_obs o = { .workload = "fuzz", .pid = 1, .lib = "plain" };
	size_t clen = 0, min_rows = 0;
	int n, reqline_ok;

	CHECK(ds && head && name);
	memcpy(head, data, size);	/* exact size: ASan sees an over-read */
	memcpy(name, data, size);
	name[size] = '\0';
	check_reqline(head, size);
	/* arbitrary bytes as strings: they must become valid JSON */
	o.exe = names_ok(data, size) ? name : "/fuzz/exe";
	o.dst = o.exe;
	o.sni = size & 1 ? o.exe : NULL;
	o.head = head;
	o.len = size;
	n = discover_observe(ds, &o, 1);
	reqline_ok = n >= 0;
	check_json(ds, 0);

	/* canaries after the request line: found, never shown; the injected header: skipped */
	canary = reqline_ok ? with_canaries(head, size, &clen) : NULL;
	if (canary) {
		o.head = canary;
		o.len = clen;
		o.injected_header = "Authorization";
		n = discover_observe(ds, &o, 2);
		CHECK(n >= 2);
		o.injected_header = NULL;
		CHECK(discover_observe(ds, &o, 3) >= 3);
		min_rows = 3;
		check_json(ds, min_rows);
		free(canary);
	}
	discover_note_unobservable(ds, o.exe, 1, o.exe, o.exe, o.exe, 4);
	check_json(ds, min_rows);
	free(head);
	free(name);
	discover_free(ds);
	return 0;
}
