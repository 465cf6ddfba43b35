// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Copyright (c) 2026 The lanyard authors */
/*
 * The policy file: libyaml events -> a small node tree (no anchors, aliases or tags) ->
 * a validated, immutable struct policy.  Every error is "FILE:LINE:COLUMN: message".
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <yaml.h>

#include "policy.h"

#define POLICY_MAX_SIZE		(1024 * 1024)	/* bytes; larger files are refused */
#define POLICY_MAX_DEPTH	16		/* the schema needs 6 levels */
#define POLICY_MAX_SCALAR	4096		/* bytes in any one value */
#define POLICY_QUOTE_MAX	64		/* bytes of a value echoed in an error */
#define TOKEN_MARK		"{token}"

void (*policy_cred_free_hook)(void *cred);
void (*policy_tls_free_hook)(void *tls_ctx);

/* --- the node tree ------------------------------------------------------------ */

enum ynode_type {
	YN_SCALAR,
	YN_SEQ,
	YN_MAP,
};

/*
 * One YAML node.  The tree is built from libyaml events so that anchors, aliases
 * and tags can be refused where they appear, and the schema walk below can report
 * each problem at the node's own mark.
 */
struct ynode {
	enum ynode_type type;
	int line, col;		/* 1-based */
	int plain;		/* scalar written without quotes: may be a YAML null */
	char *str;		/* scalar value, NUL-terminated; may hold a NUL: see len */
	size_t len;
	struct ynode **kids;	/* seq: items; map: key, value, key, value, ... */
	size_t nkids, cap;
};

struct pctx {
	const char *file;	/* name for messages */
	const char *buf;	/* the input, to place reader errors */
	size_t len;
	char *err;
	size_t errlen;
	int failed;		/* the first error wins; later ones are not written */
	char path[192];		/* key path for messages: "workloads[0].routes[1].to" */
	size_t plen;
	char quote[2][POLICY_QUOTE_MAX * 4 + 8];	/* two values per message */
	int qi;
};

static void node_free(struct ynode *n)
{
	if (!n)
		return;
	for (size_t i = 0; i < n->nkids; i++)
		node_free(n->kids[i]);
	free(n->kids);
	free(n->str);
	free(n);
}

static struct ynode *node_new(enum ynode_type type, const yaml_mark_t *m)
{
	struct ynode *n = calloc(1, sizeof(*n));

	if (!n)
		return NULL;
	n->type = type;
	n->line = (int)m->line + 1;
	n->col = (int)m->column + 1;
	return n;
}

static int node_add(struct ynode *parent, struct ynode *kid)
{
	if (parent->nkids == parent->cap) {
		size_t cap = parent->cap ? parent->cap * 2 : 8;
		struct ynode **k = realloc(parent->kids, cap * sizeof(*k));

		if (!k)
			return -ENOMEM;
		parent->kids = k;
		parent->cap = cap;
	}
	parent->kids[parent->nkids++] = kid;
	return 0;
}

/* YAML 1.2 core schema nulls; only a plain scalar can be one ("" quoted is a string) */
static int node_is_null(const struct ynode *n)
{
	static const char *const nulls[] = { "", "~", "null", "Null", "NULL" };

	if (n->type != YN_SCALAR || !n->plain)
		return 0;
	for (size_t i = 0; i < sizeof(nulls) / sizeof(nulls[0]); i++)
		if (!strcmp(n->str, nulls[i]))
			return 1;
	return 0;
}

static const char *node_kind(const struct ynode *n)
{
	if (n->type == YN_SEQ)
		return "a list";
	if (n->type == YN_MAP)
		return "a mapping";
	return node_is_null(n) ? "an empty value" : "a scalar";
}

/* The value under key in mapping m, or NULL. */
static const struct ynode *map_get(const struct ynode *m, const char *key)
{
	for (size_t i = 0; i + 1 < m->nkids; i += 2)
		if (m->kids[i]->type == YN_SCALAR && !strcmp(m->kids[i]->str, key))
			return m->kids[i + 1];
	return NULL;
}

/* --- errors ------------------------------------------------------------------- */

static void vperr(struct pctx *c, int line, int col, int with_path, const char *fmt, va_list ap)
{
	int n;

	if (c->failed || !c->err || !c->errlen) {
		c->failed = 1;
		return;
	}
	c->failed = 1;
	n = snprintf(c->err, c->errlen, "%s:%d:%d: ", c->file, line, col);
	if (n >= 0 && (size_t)n < c->errlen && with_path && c->plen) {
		n += snprintf(c->err + n, c->errlen - (size_t)n, "%s: ", c->path);
	}
	if (n >= 0 && (size_t)n < c->errlen)
		vsnprintf(c->err + n, c->errlen - (size_t)n, fmt, ap);
}

/* An error at node n, prefixed with the current key path.  Returns -EINVAL. */
__attribute__((format(printf, 3, 4)))
static int perr(struct pctx *c, const struct ynode *n, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vperr(c, n->line, n->col, 1, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* An error at line:col without the key path (the message names its own context). */
__attribute__((format(printf, 4, 5)))
static int perr_at(struct pctx *c, int line, int col, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vperr(c, line, col, 0, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/*
 * A value from the file, quoted for an error message: at most POLICY_QUOTE_MAX bytes,
 * anything but printable ASCII as \xNN (messages go to logs and into JSON on the
 * control socket, so they must stay one line of valid UTF-8).
 */
static const char *q(struct pctx *c, const char *s, size_t len)
{
	char *out = c->quote[c->qi++ & 1], *o = out;
	size_t i;

	*o++ = '"';
	for (i = 0; i < len && i < POLICY_QUOTE_MAX; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\')
			*o++ = (char)ch;
		else
			o += sprintf(o, "\\x%02x", ch);
	}
	if (i < len)
		o += sprintf(o, "...");
	*o++ = '"';
	*o = '\0';
	return out;
}

static const char *qn(struct pctx *c, const struct ynode *n)
{
	return q(c, n->str, n->len);
}

static size_t path_push(struct pctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static size_t path_push(struct pctx *c, const char *fmt, ...)
{
	size_t saved = c->plen;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(c->path + c->plen, sizeof(c->path) - c->plen, fmt, ap);
	va_end(ap);
	if (n > 0)
		c->plen += (size_t)n;
	if (c->plen >= sizeof(c->path))
		c->plen = sizeof(c->path) - 1;
	return saved;
}

static void path_pop(struct pctx *c, size_t saved)
{
	c->plen = saved;
	c->path[saved] = '\0';
}

/* --- events -> tree ------------------------------------------------------------ */

struct builder {
	struct ynode *root;
	struct ynode *stack[POLICY_MAX_DEPTH];
	int depth;
	int ndocs;
	int done;
};

/* libyaml's own message, placed at its mark (reader errors carry a byte offset only). */
static int yaml_error(struct pctx *c, const yaml_parser_t *ps)
{
	int line = 1, col = 1;

	if (ps->error == YAML_MEMORY_ERROR)
		return perr_at(c, 1, 1, "out of memory");
	if (ps->error == YAML_READER_ERROR) {
		for (size_t i = 0; i < ps->problem_offset && i < c->len; i++) {
			col++;
			if (c->buf[i] == '\n') {
				line++;
				col = 1;
			}
		}
		if (ps->problem_value != -1)
			return perr_at(c, line, col, "YAML error: %s (byte 0x%02x)",
				       ps->problem, (unsigned)ps->problem_value & 0xff);
		return perr_at(c, line, col, "YAML error: %s", ps->problem);
	}
	line = (int)ps->problem_mark.line + 1;
	col = (int)ps->problem_mark.column + 1;
	if (ps->context)
		return perr_at(c, line, col, "YAML syntax error: %s (%s that started at %d:%d)",
			       ps->problem ? ps->problem : "invalid input", ps->context,
			       (int)ps->context_mark.line + 1, (int)ps->context_mark.column + 1);
	return perr_at(c, line, col, "YAML syntax error: %s",
		       ps->problem ? ps->problem : "invalid input");
}

/*
 * Anchors and aliases are refused: an alias bomb (a billion laughs) expands to
 * gigabytes from a few hundred bytes, and a policy never needs them.  Tags are
 * refused too: every value has exactly one meaning in this schema.
 */
static int check_node_event(struct pctx *c, const yaml_event_t *ev, const yaml_char_t *anchor,
			    const yaml_char_t *tag)
{
	int line = (int)ev->start_mark.line + 1, col = (int)ev->start_mark.column + 1;

	if (anchor)
		return perr_at(c, line, col, "YAML anchors and aliases are not allowed (anchor %s)",
			       q(c, (const char *)anchor, strlen((const char *)anchor)));
	if (tag)
		return perr_at(c, line, col, "YAML tags are not allowed (tag %s)",
			       q(c, (const char *)tag, strlen((const char *)tag)));
	return 0;
}

/* Attach n to the open container (or make it the root); push it if it is one. */
static int builder_attach(struct pctx *c, struct builder *b, struct ynode *n)
{
	if (b->depth == 0 && b->root) {
		int line = n->line, col = n->col;

		node_free(n);
		return perr_at(c, line, col, "more than one root node");
	}
	if (b->depth > 0 && node_add(b->stack[b->depth - 1], n)) {
		node_free(n);
		return perr_at(c, 1, 1, "out of memory");
	}
	if (b->depth == 0)
		b->root = n;
	if (n->type == YN_SCALAR)
		return 0;
	if (b->depth == POLICY_MAX_DEPTH)
		return perr_at(c, n->line, n->col, "nesting is deeper than %d levels",
			       POLICY_MAX_DEPTH);
	b->stack[b->depth++] = n;
	return 0;
}

static int builder_scalar(struct pctx *c, struct builder *b, const yaml_event_t *ev)
{
	struct ynode *n;
	int err;

	err = check_node_event(c, ev, ev->data.scalar.anchor, ev->data.scalar.tag);
	if (err)
		return err;
	n = node_new(YN_SCALAR, &ev->start_mark);
	if (n)
		n->str = malloc(ev->data.scalar.length + 1);
	if (!n || !n->str) {
		node_free(n);
		return perr_at(c, 1, 1, "out of memory");
	}
	memcpy(n->str, ev->data.scalar.value, ev->data.scalar.length);
	n->str[ev->data.scalar.length] = '\0';
	n->len = ev->data.scalar.length;
	n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
	return builder_attach(c, b, n);
}

static int builder_event(struct pctx *c, struct builder *b, const yaml_event_t *ev)
{
	struct ynode *n;
	int err;

	switch (ev->type) {
	case YAML_DOCUMENT_START_EVENT:
		if (b->ndocs++)
			return perr_at(c, (int)ev->start_mark.line + 1,
				       (int)ev->start_mark.column + 1,
				       "a policy file holds one YAML document, found a second");
		return 0;
	case YAML_ALIAS_EVENT:
		return perr_at(c, (int)ev->start_mark.line + 1, (int)ev->start_mark.column + 1,
			       "YAML anchors and aliases are not allowed (alias %s)",
			       q(c, (const char *)ev->data.alias.anchor,
				 strlen((const char *)ev->data.alias.anchor)));
	case YAML_SCALAR_EVENT:
		return builder_scalar(c, b, ev);
	case YAML_SEQUENCE_START_EVENT:
	case YAML_MAPPING_START_EVENT:
		if (ev->type == YAML_SEQUENCE_START_EVENT)
			err = check_node_event(c, ev, ev->data.sequence_start.anchor,
					       ev->data.sequence_start.tag);
		else
			err = check_node_event(c, ev, ev->data.mapping_start.anchor,
					       ev->data.mapping_start.tag);
		if (err)
			return err;
		n = node_new(ev->type == YAML_SEQUENCE_START_EVENT ? YN_SEQ : YN_MAP,
			     &ev->start_mark);
		if (!n)
			return perr_at(c, 1, 1, "out of memory");
		return builder_attach(c, b, n);
	case YAML_SEQUENCE_END_EVENT:
	case YAML_MAPPING_END_EVENT:
		if (b->depth > 0)
			b->depth--;
		return 0;
	case YAML_STREAM_END_EVENT:
		b->done = 1;
		return 0;
	default:	/* stream start, document end, no event */
		return 0;
	}
}

/* Parse buf into a tree; NULL root (and no error) for an empty stream. */
static int tree_build(struct pctx *c, struct ynode **root)
{
	struct builder b = { 0 };
	yaml_parser_t ps;
	yaml_event_t ev;
	int err = 0;

	*root = NULL;
	/* UTF-8 only (so a UTF-16 file is an error, not a surprise); a UTF-8 BOM is fine */
	if (c->len >= 3 && !memcmp(c->buf, "\xef\xbb\xbf", 3)) {
		c->buf += 3;
		c->len -= 3;
	}
	if (!yaml_parser_initialize(&ps))
		return perr_at(c, 1, 1, "out of memory");
	yaml_parser_set_input_string(&ps, (const unsigned char *)c->buf, c->len);
	yaml_parser_set_encoding(&ps, YAML_UTF8_ENCODING);
	while (!b.done && !err) {
		if (!yaml_parser_parse(&ps, &ev)) {
			err = yaml_error(c, &ps);
			break;
		}
		err = builder_event(c, &b, &ev);
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&ps);
	if (err)
		node_free(b.root);
	else
		*root = b.root;
	return err;
}

/* --- schema helpers ------------------------------------------------------------ */

/* One key of a mapping and what to do with its value (obj: the struct being filled). */
struct field {
	const char *key;
	int (*parse)(struct pctx *c, const struct ynode *v, void *obj);
	int required;
};

#define MAX_FIELDS 20

static int unknown_key(struct pctx *c, const struct ynode *k, const char *what,
		       const struct field *f, size_t nf)
{
	char expected[160] = "";
	size_t off = 0;

	for (size_t i = 0; i < nf && off < sizeof(expected); i++)
		off += (size_t)snprintf(expected + off, sizeof(expected) - off, "%s%s",
					i ? ", " : "", f[i].key);
	return perr_at(c, k->line, k->col, "unknown key %s in %s (expected: %s)", qn(c, k), what,
		       expected);
}

/*
 * Walk mapping m (called "what" in messages) in document order: each key must be
 * a known, unique string; its value goes to the field's parser with the key pushed
 * on the path.  Then every required key must have been seen.
 */
static int map_walk(struct pctx *c, const struct ynode *m, const char *what,
		    const struct field *f, size_t nf, void *obj)
{
	const struct ynode *seen[MAX_FIELDS] = { 0 };
	size_t i, fi, saved;
	int err;

	if (m->type != YN_MAP)
		return perr(c, m, "expected a mapping, got %s", node_kind(m));
	if (nf > MAX_FIELDS)	/* a schema table grew: raise MAX_FIELDS */
		return perr(c, m, "internal error: %zu fields in %s", nf, what);
	for (i = 0; i + 1 < m->nkids; i += 2) {
		const struct ynode *k = m->kids[i], *v = m->kids[i + 1];

		if (k->type != YN_SCALAR)
			return perr_at(c, k->line, k->col, "keys in %s must be strings, got %s",
				       what, node_kind(k));
		for (fi = 0; fi < nf; fi++)
			if (strlen(f[fi].key) == k->len && !memcmp(f[fi].key, k->str, k->len))
				break;
		if (fi == nf)
			return unknown_key(c, k, what, f, nf);
		if (seen[fi])
			return perr_at(c, k->line, k->col,
				       "duplicate key %s in %s (first at line %d, column %d)",
				       qn(c, k), what, seen[fi]->line, seen[fi]->col);
		seen[fi] = k;
		saved = path_push(c, c->plen ? ".%s" : "%s", f[fi].key);
		err = f[fi].parse(c, v, obj);
		path_pop(c, saved);
		if (err)
			return err;
	}
	for (fi = 0; fi < nf; fi++)
		if (f[fi].required && !seen[fi])
			return perr(c, m, "missing required key \"%s\" in %s", f[fi].key, what);
	return 0;
}

/*
 * v as a string: a scalar, not a YAML null, at most POLICY_MAX_SCALAR bytes, and free
 * of control characters (C0, DEL; a NUL from a "\0" escape would truncate it, a CR or
 * LF could split a header or a log line).  Borrows the tree's string.
 */
static int get_str(struct pctx *c, const struct ynode *v, const char **out)
{
	if (v->type != YN_SCALAR)
		return perr(c, v, "expected a string, got %s", node_kind(v));
	if (node_is_null(v))
		return perr(c, v, "value is missing");
	if (v->len > POLICY_MAX_SCALAR)
		return perr(c, v, "value is longer than %d bytes", POLICY_MAX_SCALAR);
	for (size_t i = 0; i < v->len; i++) {
		unsigned char ch = (unsigned char)v->str[i];

		if (ch < 0x20 || ch == 0x7f)
			return perr(c, v, "control character 0x%02x in %s", ch, qn(c, v));
	}
	*out = v->str;
	return 0;
}

/* Replace *dst with a copy of v's string. */
static int dup_str(struct pctx *c, const struct ynode *v, char **dst)
{
	const char *s;
	char *d;
	int err = get_str(c, v, &s);

	if (err)
		return err;
	d = strdup(s);
	if (!d)
		return perr(c, v, "out of memory");
	free(*dst);
	*dst = d;
	return 0;
}

/*
 * v as one of the words of @names (NULL-terminated): its index in *out.  Else
 * "\"v\" is not WHAT (a, b, c)".
 */
static int get_word(struct pctx *c, const struct ynode *v, const char *what,
		    const char *const names[], int *out)
{
	char list[128] = "";
	size_t off = 0;
	const char *s;
	int err = get_str(c, v, &s);

	if (err)
		return err;
	for (int i = 0; names[i]; i++) {
		if (!strcmp(s, names[i])) {
			*out = i;
			return 0;
		}
		off += (size_t)snprintf(list + off, sizeof(list) - off, "%s%s", i ? ", " : "",
					names[i]);
		if (off >= sizeof(list))
			off = sizeof(list) - 1;
	}
	return perr(c, v, "%s is not %s (%s)", qn(c, v), what, list);
}

static int is_digit(int ch)
{
	return ch >= '0' && ch <= '9';
}

/*
 * A TCP port: decimal, 1..65535, no sign and no leading zero (YAML 1.1 would read
 * "0123" as octal, so it is refused rather than guessed).  NULL or why not.
 */
static const char port_range[] = "the port is out of range 1..65535";

static const char *parse_port(const char *s, size_t len, uint16_t *out)
{
	uint32_t v = 0;

	if (!len)
		return "the port is missing";
	for (size_t i = 0; i < len; i++) {
		if (!is_digit(s[i]))
			return "the port is not a number";
		if (v <= 65535)
			v = v * 10 + (uint32_t)(s[i] - '0');
	}
	if (s[0] == '0' && len > 1)
		return "the port has a leading zero";
	if (v < 1 || v > 65535)
		return port_range;
	*out = (uint16_t)v;
	return NULL;
}

/* --- top-level keys ------------------------------------------------------------ */

/* DNS-name-ish (RFC 1123 labels) and lowercase, as a SPIFFE trust domain must be. */
static int parse_trust_domain(struct pctx *c, const struct ynode *v, void *obj)
{
	struct policy *p = obj;
	size_t label = 0;
	const char *s;
	int err = get_str(c, v, &s);

	if (err)
		return err;
	if (v->len > 253)
		return perr(c, v, "%s is longer than 253 characters", qn(c, v));
	for (size_t i = 0; i <= v->len; i++) {
		char ch = s[i];

		if (ch == '.' || ch == '\0') {
			if (!label)
				return perr(c, v, "%s has an empty label", qn(c, v));
			if (s[i - 1] == '-')
				return perr(c, v, "%s: a label ends with '-'", qn(c, v));
			label = 0;
		} else if (ch >= 'A' && ch <= 'Z') {
			return perr(c, v, "%s must be lowercase", qn(c, v));
		} else if (!(ch >= 'a' && ch <= 'z') && !is_digit(ch) && ch != '-') {
			return perr(c, v, "%s may contain only a-z, 0-9, '.' and '-'", qn(c, v));
		} else if (ch == '-' && !label) {
			return perr(c, v, "%s: a label starts with '-'", qn(c, v));
		} else if (++label > 63) {
			return perr(c, v, "%s has a label longer than 63 characters", qn(c, v));
		}
	}
	return dup_str(c, v, &p->trust_domain);
}

static int parse_listen_port(struct pctx *c, const struct ynode *v, void *obj)
{
	struct policy *p = obj;
	const char *s, *why;
	int err = get_str(c, v, &s);

	if (err)
		return err;
	why = parse_port(s, v->len, &p->listen_port);
	if (why == port_range)
		return perr(c, v, "%.20s is out of range 1..65535", s);
	if (why)
		return perr(c, v, "%s: %s", qn(c, v), why);
	return 0;
}

/* "IPv4:port" or "[IPv6]:port" into ss; NULL or why not. */
static const char *parse_sockaddr(const char *s, struct sockaddr_storage *ss)
{
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	const char *colon, *h = s, *why;
	char host[INET6_ADDRSTRLEN];
	uint16_t port;
	size_t hl;

	memset(ss, 0, sizeof(*ss));
	if (*s == '[') {
		const char *close = strchr(s, ']');

		if (!close || close[1] != ':')
			return "expected [IPv6]:port";
		h = s + 1;
		hl = (size_t)(close - h);
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return "expected IPv4:port or [IPv6]:port";
		hl = (size_t)(colon - s);
		if (memchr(s, ':', hl))
			return "an IPv6 address must be in brackets: [addr]:port";
	}
	why = parse_port(colon + 1, strlen(colon + 1), &port);
	if (why)
		return why;
	if (hl == 0 || hl >= sizeof(host))
		return "expected IPv4:port or [IPv6]:port";
	memcpy(host, h, hl);
	host[hl] = '\0';
	if (*s == '[') {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
			return "invalid IPv6 address";
		return NULL;
	}
	sin->sin_family = AF_INET;
	sin->sin_port = htons(port);
	if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
		return "expected an IPv4 address or a bracketed IPv6 address, not a name";
	return NULL;
}

static int parse_admin_listen(struct pctx *c, const struct ynode *v, void *obj)
{
	struct policy *p = obj;
	const char *s, *why;
	int err = get_str(c, v, &s);

	if (err)
		return err;
	why = parse_sockaddr(s, &p->admin_addr);
	if (why)
		return perr(c, v, "%s: %s", qn(c, v), why);
	return dup_str(c, v, &p->admin_listen);
}

/* An absolute path of at most maxlen - 1 bytes, copied into *dst. */
static int abs_path(struct pctx *c, const struct ynode *v, char **dst, size_t maxlen)
{
	const char *s;
	int err = get_str(c, v, &s);

	if (err)
		return err;
	if (s[0] != '/')
		return perr(c, v, "%s is not an absolute path", qn(c, v));
	if (v->len >= maxlen)
		return perr(c, v, "path is longer than %zu bytes", maxlen - 1);
	return dup_str(c, v, dst);
}

static int parse_state_dir(struct pctx *c, const struct ynode *v, void *obj)
{
	return abs_path(c, v, &((struct policy *)obj)->state_dir, PATH_MAX);
}

static int parse_audit_path(struct pctx *c, const struct ynode *v, void *obj)
{
	return abs_path(c, v, &((struct policy *)obj)->audit_path, PATH_MAX);
}

/* sun_path is 108 bytes with the NUL (unix(7)) */
static int parse_control_socket(struct pctx *c, const struct ynode *v, void *obj)
{
	return abs_path(c, v, &((struct policy *)obj)->control_socket,
			sizeof(((struct sockaddr_un *)NULL)->sun_path));
}

static int parse_ca_cert(struct pctx *c, const struct ynode *v, void *obj)
{
	return abs_path(c, v, &((struct policy *)obj)->ca_cert, PATH_MAX);
}

static int parse_ca_key(struct pctx *c, const struct ynode *v, void *obj)
{
	return abs_path(c, v, &((struct policy *)obj)->ca_key, PATH_MAX);
}

static const struct field ca_fields[] = {
	{ "cert", parse_ca_cert, 1 },
	{ "key", parse_ca_key, 1 },
};

static const struct field listen_fields[] = {
	{ "port", parse_listen_port, 0 },
};

static const struct field admin_fields[] = {
	{ "listen", parse_admin_listen, 0 },
};

static const struct field audit_fields[] = {
	{ "path", parse_audit_path, 0 },
};

#define WALK(c, v, what, fields, obj) \
	map_walk(c, v, what, fields, sizeof(fields) / sizeof(fields[0]), obj)

static int parse_listen(struct pctx *c, const struct ynode *v, void *obj)
{
	return WALK(c, v, "listen", listen_fields, obj);
}

static int parse_admin(struct pctx *c, const struct ynode *v, void *obj)
{
	return WALK(c, v, "admin", admin_fields, obj);
}

static int parse_audit(struct pctx *c, const struct ynode *v, void *obj)
{
	return WALK(c, v, "audit", audit_fields, obj);
}

static int parse_ca(struct pctx *c, const struct ynode *v, void *obj)
{
	return WALK(c, v, "ca", ca_fields, obj);
}

/* --- routes -------------------------------------------------------------------- */

/* Write why a `to` is refused into why[wl]; returns err. */
__attribute__((format(printf, 4, 5)))
static int why_fail(char *why, size_t wl, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, wl, fmt, ap);
	va_end(ap);
	return err;
}

/* RFC 1123 2.1 host name; the last label not all digits (RFC 3696 2), so never an IPv4 */
static const char *check_hostname(const char *s, size_t len)
{
	size_t label = 0, digits = 0;

	if (len > 253)
		return "the host name is longer than 253 characters";
	for (size_t i = 0; i <= len; i++) {
		char ch = i < len ? s[i] : '.';

		if (ch == '.') {
			if (!label)
				return "the host name has an empty label";
			if (s[i - 1] == '-')
				return "a host name label ends with '-'";
			if (i == len && digits == label)
				return "the host name's last label is all digits";
			label = digits = 0;
			continue;
		}
		if (!is_digit(ch) && ch != '-' && !((ch | 0x20) >= 'a' && (ch | 0x20) <= 'z'))
			return "a host name may contain only letters, digits, '-' and '.'";
		if (ch == '-' && !label)
			return "a host name label starts with '-'";
		digits += is_digit(ch);
		if (++label > 63)
			return "a host name label is longer than 63 characters";
	}
	return NULL;
}

/* "/NN" after an address: decimal, no leading zero, at most max.  -1 if malformed. */
static int parse_prefixlen(const char *s, size_t len, int max)
{
	int v = 0;

	if (len < 2 || len > 4 || s[0] != '/' || (s[1] == '0' && len > 2))
		return -1;
	for (size_t i = 1; i < len; i++) {
		if (!is_digit(s[i]))
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v <= max ? v : -1;
}

/* Host bits of a CIDR must be zero: 10.0.0.1/8 is more likely a typo than a network. */
static int host_bits_set(const struct policy_addr *a)
{
	size_t n = a->family == AF_INET ? 4 : 16;

	for (size_t bit = a->prefixlen; bit < n * 8; bit++)
		if (a->addr[bit / 8] & (0x80 >> (bit % 8)))
			return 1;
	return 0;
}

/* The address (and prefix) part of a `to`, into r; why not in why. */
static int dest_addr(const char *h, size_t hl, const char *pfx, size_t pl, int v6,
		     struct policy_route *r, char *why, size_t wl)
{
	struct policy_addr a = { .family = v6 ? AF_INET6 : AF_INET };
	char host[INET6_ADDRSTRLEN + 1];
	int plen = v6 ? 128 : 32;

	if (!hl || hl >= sizeof(host))
		return why_fail(why, wl, -EINVAL, "the address is missing or too long");
	memcpy(host, h, hl);
	host[hl] = '\0';
	if (inet_pton(a.family, host, a.addr) != 1)
		return why_fail(why, wl, -EINVAL, "invalid IPv%d address", v6 ? 6 : 4);
	if (pl) {
		plen = parse_prefixlen(pfx, pl, plen);
		if (plen < 0)
			return why_fail(why, wl, -EINVAL, "the prefix length must be /0../%d",
					v6 ? 128 : 32);
	}
	a.prefixlen = (uint8_t)plen;
	if (pl && host_bits_set(&a)) {
		char net[INET6_ADDRSTRLEN];

		for (size_t bit = a.prefixlen; bit < (v6 ? 128u : 32u); bit++)
			a.addr[bit / 8] &= (uint8_t)~(0x80 >> (bit % 8));
		inet_ntop(a.family, a.addr, net, sizeof(net));
		return why_fail(why, wl, -EINVAL, "host bits are set (the network is %s%s%s/%d)",
				v6 ? "[" : "", net, v6 ? "]" : "", plen);
	}
	r->addrs = calloc(1, sizeof(*r->addrs));
	if (!r->addrs)
		return why_fail(why, wl, -ENOMEM, "out of memory");
	r->addrs[0] = a;
	r->naddrs = 1;
	r->kind = pl ? POLICY_DEST_CIDR : POLICY_DEST_ADDR;
	return 0;
}

/* "host:port" where host is not an IP literal: a name, resolved later. */
static int dest_host(const char *h, size_t hl, struct policy_route *r, char *why, size_t wl)
{
	const char *bad = check_hostname(h, hl);

	if (bad)
		return why_fail(why, wl, -EINVAL, "%s", bad);
	r->host = strndup(h, hl);
	if (!r->host)
		return why_fail(why, wl, -ENOMEM, "out of memory");
	/* DNS names are case-insensitive (RFC 4343): keep one spelling */
	for (char *p = r->host; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p | 0x20);
	r->kind = POLICY_DEST_HOST;
	return 0;
}

/*
 * Split a `to` value: "[v6]" or "[v6]/len" or "v4" or "v4/len" or "name", then
 * ":port" after the last colon.  Fills r->kind, port, addrs or host.
 */
static int dest_split(const char *s, struct policy_route *r, char *why, size_t wl)
{
	const char *colon, *h = s, *hend, *slash;
	int v6 = s[0] == '[';
	const char *bad;

	if (v6) {
		hend = strchr(s, ']');
		if (!hend)
			return why_fail(why, wl, -EINVAL, "missing ']' after the IPv6 address");
		h = s + 1;
		colon = strrchr(hend, ':');
	} else {
		colon = strrchr(s, ':');
	}
	if (!colon)
		return why_fail(why, wl, -EINVAL, "missing \":port\"");
	bad = parse_port(colon + 1, strlen(colon + 1), &r->port);
	if (bad)
		return why_fail(why, wl, -EINVAL, "%s", bad);
	if (!v6) {
		if (memchr(s, ':', (size_t)(colon - s)))
			return why_fail(why, wl, -EINVAL,
					"an IPv6 address must be in brackets: [addr]:port");
		slash = memchr(s, '/', (size_t)(colon - s));
		hend = slash ? slash : colon;
	} else {
		slash = hend + 1;
	}
	if (v6 || slash || strspn(s, "0123456789.") == (size_t)(colon - s))
		return dest_addr(h, (size_t)(hend - h), slash, (size_t)(slash ? colon - slash : 0),
				 v6, r, why, wl);
	return dest_host(s, (size_t)(colon - s), r, why, wl);
}

static int parse_to(struct pctx *c, const struct ynode *v, void *obj)
{
	struct policy_route *r = obj;
	char why[128];
	const char *s;
	int err = get_str(c, v, &s);

	if (err)
		return err;
	err = dup_str(c, v, &r->to);
	if (err)
		return err;
	if (dest_split(s, r, why, sizeof(why)))
		return perr(c, v, "%s: %s", qn(c, v), why);
	return 0;
}

static const char *const cred_type_names[] = {
	[POLICY_CRED_JWT] = "jwt",
	[POLICY_CRED_X509] = "x509",
	[POLICY_CRED_OAUTH2] = "oauth2",
	[POLICY_CRED_TOKEN_EXCHANGE] = "token_exchange",
	[POLICY_CRED_EXEC] = "exec",
	[POLICY_CRED_STATIC] = "static",
};

#define NCRED_TYPES (sizeof(cred_type_names) / sizeof(cred_type_names[0]))

const char *policy_cred_type_name(enum policy_cred_type t)
{
	return (size_t)t < NCRED_TYPES ? cred_type_names[t] : "?";
}

static int parse_cred_type(struct pctx *c, const struct ynode *v, void *obj)
{
	struct policy_route *r = obj;
	const char *s;
	int err = get_str(c, v, &s);

	if (err)
		return err;
	for (size_t i = 0; i < NCRED_TYPES; i++) {
		if (!strcmp(s, cred_type_names[i])) {
			r->cred_type = (enum policy_cred_type)i;
			return 0;
		}
	}
	return perr(c, v, "%s is not supported (supported: jwt, x509, oauth2, token_exchange, "
		    "exec, static)", qn(c, v));
}

static int parse_audience(struct pctx *c, const struct ynode *v, void *obj)
{
	struct policy_route *r = obj;

	if (v->type == YN_SCALAR && !v->len && !v->plain)
		return perr(c, v, "must not be empty");
	return dup_str(c, v, &r->audience);
}

/* v as a duration (policy_parse_duration) within [min, max] seconds; @range for the error */
static int get_duration(struct pctx *c, const struct ynode *v, uint32_t min, uint32_t max,
			const char *range, uint32_t *out)
{
	const char *s;
	int err = get_str(c, v, &s);

	if (err)
		return err;
	if (policy_parse_duration(s, out))
		return perr(c, v, "%s is not a duration (e.g. 30s, 5m, 1h, 90d, or 90 for seconds)",
			    qn(c, v));
	if (*out < min || *out > max)
		return perr(c, v, "%s is out of range %s", qn(c, v), range);
	return 0;
}

static int parse_ttl(struct pctx *c, const struct ynode *v, void *obj)
{
	return get_duration(c, v, 1, POLICY_MAX_TTL_S, "1s..24h",
			    &((struct policy_route *)obj)->ttl_s);
}

static int parse_mtls(struct pctx *c, const struct ynode *v, void *obj)
{
	static const char *const names[] = { "true", "false", NULL };
	int i, err = get_word(c, v, "a boolean", names, &i);

	if (!err)
		((struct policy_route *)obj)->mtls = i == 0;
	return err;
}

/* --- fetched credential sources ------------------------------------------------ */

/*
 * A token endpoint: an absolute https URL without credentials or a fragment.  Plain
 * http would send the client assertion, a client secret or the workload's subject
 * token in the clear, and would take a token from a peer nobody verified.
 */
static int parse_token_url(struct pctx *c, const struct ynode *v, void *obj)
{
	struct policy_route *r = obj;
	const char *s, *host, *end;
	int err = get_str(c, v, &s);

	if (err)
		return err;
	if (strncmp(s, "https://", 8))
		return perr(c, v, "%s is not an https:// URL (a token endpoint is only called "
			    "over verified TLS)", qn(c, v));
	host = s + 8;
	end = host + strcspn(host, "/?#");
	if (end == host || memchr(host, '@', (size_t)(end - host)) || strchr(s, '#') ||
	    strpbrk(s, " \"<>\\^`{|}"))
		return perr(c, v, "%s is not a token endpoint URL (https://host[:port]/path, no "
			    "user info, no fragment)", qn(c, v));
	return dup_str(c, v, &r->src->token_url);
}

static int parse_client_id(struct pctx *c, const struct ynode *v, void *obj)
{
	struct policy_route *r = obj;

	if (v->type == YN_SCALAR && !v->len)
		return perr(c, v, "must not be empty");
	return dup_str(c, v, &r->src->client_id);
}

static int parse_auth(struct pctx *c, const struct ynode *v, void *obj)
{
	static const char *const names[] = { "private_key_jwt", "client_secret_basic", NULL };
	static const enum policy_client_auth val[] = { POLICY_AUTH_PRIVATE_KEY_JWT,
						       POLICY_AUTH_SECRET_BASIC };
	int i, err = get_word(c, v, "a client authentication", names, &i);

	if (!err)
		((struct policy_route *)obj)->src->auth = val[i];
	return err;
}

static int parse_secret_file(struct pctx *c, const struct ynode *v, void *obj)
{
	return abs_path(c, v, &((struct policy_route *)obj)->src->client_secret_file, PATH_MAX);
}

static int parse_src_str(struct pctx *c, const struct ynode *v, char **dst)
{
	if (v->type == YN_SCALAR && !v->len)
		return perr(c, v, "must not be empty");
	return dup_str(c, v, dst);
}

static int parse_scope(struct pctx *c, const struct ynode *v, void *obj)
{
	return parse_src_str(c, v, &((struct policy_route *)obj)->src->scope);
}

static int parse_resource(struct pctx *c, const struct ynode *v, void *obj)
{
	return parse_src_str(c, v, &((struct policy_route *)obj)->src->resource);
}

static int parse_subject_audience(struct pctx *c, const struct ynode *v, void *obj)
{
	return parse_src_str(c, v, &((struct policy_route *)obj)->src->subject_audience);
}

static int parse_src_ca_file(struct pctx *c, const struct ynode *v, void *obj)
{
	return abs_path(c, v, &((struct policy_route *)obj)->src->ca_file, PATH_MAX);
}

/* get_duration() in milliseconds, into *out_ms only when valid */
static int get_duration_ms(struct pctx *c, const struct ynode *v, uint32_t min, uint32_t max,
			   const char *range, uint32_t *out_ms)
{
	uint32_t s;
	int err = get_duration(c, v, min, max, range, &s);

	if (!err)
		*out_ms = s * 1000;
	return err;
}

static int parse_timeout(struct pctx *c, const struct ynode *v, void *obj)
{
	struct policy_route *r = obj;

	return get_duration_ms(c, v, 1, 300, "1s..5m", &r->src->timeout_ms);
}

/* exec's command: a list of strings, the first an absolute path (no $PATH search) */
static int parse_command(struct pctx *c, const struct ynode *v, void *obj)
{
	struct policy_source *src = ((struct policy_route *)obj)->src;
	size_t saved;
	int err;

	if (v->type != YN_SEQ || !v->nkids)
		return perr(c, v, "expected a non-empty list: [/path/to/helper, arg, ...]");
	src->argv = calloc(v->nkids + 1, sizeof(*src->argv));
	if (!src->argv)
		return perr(c, v, "out of memory");
	for (size_t i = 0; i < v->nkids; i++) {
		saved = path_push(c, "[%zu]", i);
		err = i ? dup_str(c, v->kids[i], &src->argv[i]) :
			  abs_path(c, v->kids[i], &src->argv[i], PATH_MAX);
		path_pop(c, saved);
		if (err)
			return err;
		src->argc++;
	}
	return 0;
}

static int parse_static_file(struct pctx *c, const struct ynode *v, void *obj)
{
	return abs_path(c, v, &((struct policy_route *)obj)->src->file, PATH_MAX);
}

/* a systemd credential name: one path component (systemd.exec(5) LoadCredential=) */
static int parse_systemd_credential(struct pctx *c, const struct ynode *v, void *obj)
{
	struct policy_route *r = obj;
	const char *s;
	int err = get_str(c, v, &s);

	if (err)
		return err;
	if (!v->len || v->len > 255 || strchr(s, '/') || !strcmp(s, ".") || !strcmp(s, ".."))
		return perr(c, v, "%s is not a credential name (one file name under "
			    "$CREDENTIALS_DIRECTORY)", qn(c, v));
	return dup_str(c, v, &r->src->systemd_credential);
}

static int parse_max_age(struct pctx *c, const struct ynode *v, void *obj)
{
	return get_duration(c, v, 1, UINT32_MAX, "1s..",
			    &((struct policy_route *)obj)->src->max_age_s);
}

static const struct field cred_fields[] = {
	{ "type", parse_cred_type, 1 },
	{ "audience", parse_audience, 0 },
	{ "ttl", parse_ttl, 0 },
	{ "mtls", parse_mtls, 0 },
	{ "token_url", parse_token_url, 0 },
	{ "client_id", parse_client_id, 0 },
	{ "auth", parse_auth, 0 },
	{ "client_secret_file", parse_secret_file, 0 },
	{ "scope", parse_scope, 0 },
	{ "resource", parse_resource, 0 },
	{ "subject_audience", parse_subject_audience, 0 },
	{ "ca_file", parse_src_ca_file, 0 },
	{ "timeout", parse_timeout, 0 },
	{ "command", parse_command, 0 },
	{ "file", parse_static_file, 0 },
	{ "systemd_credential", parse_systemd_credential, 0 },
	{ "max_age", parse_max_age, 0 },
};

/*
 * The keys each type takes ("type" always) and the ones it needs; anything else
 * in a credential is an error, so that a key meant for another type is never
 * silently ignored.
 */
struct cred_schema {
	const char *allowed;	/* space-separated */
	const char *required;
};

static const struct cred_schema cred_schemas[] = {
	[POLICY_CRED_JWT] = { "audience ttl mtls", "audience" },
	[POLICY_CRED_X509] = { "ttl", "" },
	[POLICY_CRED_OAUTH2] = { "token_url client_id auth client_secret_file scope resource "
				 "audience ca_file timeout ttl", "token_url client_id" },
	[POLICY_CRED_TOKEN_EXCHANGE] = { "token_url client_id auth client_secret_file scope "
					 "resource audience subject_audience ca_file timeout ttl",
					 "token_url" },
	[POLICY_CRED_EXEC] = { "command timeout ttl audience", "command" },
	[POLICY_CRED_STATIC] = { "file systemd_credential max_age", "" },
};

static int word_in(const char *list, const char *w, size_t wl)
{
	for (const char *p = list; *p; p += strcspn(p, " "), p += *p == ' ') {
		if (strcspn(p, " ") == wl && !memcmp(p, w, wl))
			return 1;
	}
	return 0;
}

static int cred_schema_check(struct pctx *c, const struct ynode *v, const struct policy_route *r)
{
	const struct cred_schema *sc = &cred_schemas[r->cred_type];
	const char *name = cred_type_names[r->cred_type];

	for (size_t i = 0; i + 1 < v->nkids; i += 2) {
		const struct ynode *k = v->kids[i];

		if ((k->len == 4 && !memcmp(k->str, "type", 4)) ||
		    word_in(sc->allowed, k->str, k->len))
			continue;
		path_push(c, ".%.*s", (int)k->len, k->str);
		return perr(c, v->kids[i + 1], "%s is not used by type %s", qn(c, k), name);
	}
	for (const char *p = sc->required; *p; p += strcspn(p, " "), p += *p == ' ') {
		char key[32];

		snprintf(key, sizeof(key), "%.*s", (int)strcspn(p, " "), p);
		if (!map_get(v, key))
			return perr(c, v, "missing required key \"%s\" in credential (type %s)",
				    key, name);
	}
	return 0;
}

/* Rules between keys of the fetched types, once the schema let them all in. */
static int source_check(struct pctx *c, const struct ynode *v, struct policy_route *r)
{
	struct policy_source *src = r->src;
	const struct ynode *k;

	if (r->cred_type == POLICY_CRED_OAUTH2 || r->cred_type == POLICY_CRED_TOKEN_EXCHANGE) {
		/* oauth2 always authenticates; token_exchange when it names a client */
		if (!map_get(v, "auth") && src->client_id)
			src->auth = POLICY_AUTH_PRIVATE_KEY_JWT;
		if (src->auth != POLICY_AUTH_NONE && !src->client_id)
			return perr(c, v, "client authentication needs a client_id");
		k = map_get(v, "client_secret_file");
		if ((src->auth == POLICY_AUTH_SECRET_BASIC) != !!k) {
			if (k)
				path_push(c, ".client_secret_file");
			return perr(c, k ? k : v, k ? "client_secret_file is only used with auth: "
				    "client_secret_basic" : "auth: client_secret_basic needs "
				    "client_secret_file");
		}
		if (r->cred_type == POLICY_CRED_TOKEN_EXCHANGE && !src->subject_audience) {
			src->subject_audience = strdup(src->token_url);
			if (!src->subject_audience)
				return perr(c, v, "out of memory");
		}
	}
	if (r->cred_type == POLICY_CRED_STATIC && !src->file == !src->systemd_credential)
		return perr(c, v, "a static credential needs exactly one of file, "
			    "systemd_credential");
	if (!src->timeout_ms)
		src->timeout_ms = POLICY_DEFAULT_FETCH_TIMEOUT_MS;
	return 0;
}

/*
 * jwt needs an audience; x509 is a client certificate, which has none, and is
 * always mTLS.  The ttl default depends on the type (jwt 5m, x509 1h).  The
 * fetched types keep their keys in a policy_source, which jwt and x509 drop.
 */
static int parse_credential(struct pctx *c, const struct ynode *v, void *obj)
{
	struct policy_route *r = obj;
	int err;

	if (!r->src) {
		r->src = calloc(1, sizeof(*r->src));
		if (!r->src)
			return perr(c, v, "out of memory");
		r->src->refs = 1;
	}
	err = WALK(c, v, "credential", cred_fields, obj);
	if (err)
		return err;
	if (r->cred_type == POLICY_CRED_X509 && map_get(v, "audience")) {
		path_push(c, ".audience");
		return perr(c, map_get(v, "audience"), "an x509 credential has no audience");
	}
	if (r->cred_type == POLICY_CRED_X509 && map_get(v, "mtls")) {
		path_push(c, ".mtls");
		return perr(c, map_get(v, "mtls"), "an x509 credential is always mTLS");
	}
	err = cred_schema_check(c, v, r);
	if (!err && policy_cred_fetched(r->cred_type))
		err = source_check(c, v, r);
	if (err)
		return err;
	if (!policy_cred_fetched(r->cred_type)) {
		policy_source_put(r->src);
		r->src = NULL;
	}
	if (!r->ttl_s)
		r->ttl_s = r->cred_type == POLICY_CRED_X509 ? POLICY_DEFAULT_X509_TTL_S :
							     POLICY_DEFAULT_TTL_S;
	return 0;
}

struct policy_source *policy_source_get(struct policy_source *s)
{
	if (s)
		__atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED);
	return s;
}

void policy_source_put(struct policy_source *s)
{
	if (!s || __atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL))
		return;
	free(s->token_url);
	free(s->client_id);
	free(s->client_secret_file);
	free(s->scope);
	free(s->resource);
	free(s->subject_audience);
	free(s->ca_file);
	for (size_t i = 0; i < s->argc; i++)
		free(s->argv[i]);
	free(s->argv);
	free(s->file);
	free(s->systemd_credential);
	free(s);
}

/* RFC 9110 5.6.2 tchar */
static int is_tchar(unsigned char ch)
{
	if (is_digit(ch) || ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'z'))
		return 1;
	return ch && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

/*
 * Fields that decide how a message is framed or where it goes (RFC 9112 6, 7.8, 9.6;
 * RFC 9110 7.2, 10.1.1, 7.6.1): a credential template must never be able to set them.
 */
static const char *const reserved_headers[] = {
	"Host", "Content-Length", "Transfer-Encoding", "Connection", "Upgrade", "TE",
	"Trailer", "Expect", "Keep-Alive", "Proxy-Connection",
};

/* "Name: template" -> name; NULL or why not */
static const char *check_header_name(const char *s, size_t n)
{
	if (!n)
		return "the header name is empty";
	if (s[n - 1] == ' ')
		return "no space is allowed before ':' (RFC 9112 5.1)";
	for (size_t i = 0; i < n; i++) {
		if (!is_tchar((unsigned char)s[i]))
			return "the header name is not an HTTP token (RFC 9110 5.6.2)";
	}
	for (size_t i = 0; i < sizeof(reserved_headers) / sizeof(reserved_headers[0]); i++)
		if (strlen(reserved_headers[i]) == n && !strncasecmp(s, reserved_headers[i], n))
			return "this header controls message framing or routing and cannot carry "
			       "a credential";
	return NULL;
}

/* The template after "Name:": printable ASCII, exactly one {token}, no other braces. */
static const char *check_header_template(const char *t, const char **tok)
{
	size_t len = strlen(t);

	*tok = strstr(t, TOKEN_MARK);
	if (!*tok)
		return "the template must contain {token}";
	if (strstr(*tok + 1, TOKEN_MARK))
		return "{token} must appear exactly once";
	for (const char *p = t; *p; p++) {
		unsigned char ch = (unsigned char)*p;

		if (ch < 0x20 || ch >= 0x7f)
			return "the template must be printable ASCII";
		if ((ch == '{' || ch == '}') && (p < *tok || p >= *tok + strlen(TOKEN_MARK)))
			return "only the {token} placeholder is supported";
	}
	/* RFC 9110 5.5: a recipient strips trailing whitespace; say so instead */
	if (len && t[len - 1] == ' ')
		return "the template must not end with a space";
	return NULL;
}

static int parse_header(struct pctx *c, const struct ynode *v, void *obj)
{
	struct policy_route *r = obj;
	const char *s, *colon, *t, *tok, *why;
	int err = get_str(c, v, &s);

	if (err)
		return err;
	colon = strchr(s, ':');
	if (!colon)
		return perr(c, v, "%s: expected \"Name: template\", e.g. \"X-Api-Key: {token}\"",
			    qn(c, v));
	why = check_header_name(s, (size_t)(colon - s));
	if (why)
		return perr(c, v, "%s: %s", qn(c, v), why);
	for (t = colon + 1; *t == ' '; t++)
		;
	why = check_header_template(t, &tok);
	if (why)
		return perr(c, v, "%s: %s", qn(c, v), why);
	free(r->header_name);
	free(r->header_prefix);
	free(r->header_suffix);
	r->header_name = strndup(s, (size_t)(colon - s));
	r->header_prefix = strndup(t, (size_t)(tok - t));
	r->header_suffix = strdup(tok + strlen(TOKEN_MARK));
	if (!r->header_name || !r->header_prefix || !r->header_suffix)
		return perr(c, v, "out of memory");
	return 0;
}

static int parse_tls(struct pctx *c, const struct ynode *v, void *obj)
{
	static const char *const names[] = { "intercept", "originate", "passthrough", NULL };
	static const enum policy_tls_mode val[] = { POLICY_TLS_INTERCEPT, POLICY_TLS_ORIGINATE,
						    POLICY_TLS_PASSTHROUGH };
	int i, err = get_word(c, v, "a TLS mode", names, &i);

	if (!err)
		((struct policy_route *)obj)->tls = val[i];
	return err;
}

static int parse_upstream_port(struct pctx *c, const struct ynode *v, void *obj)
{
	struct policy_route *r = obj;
	const char *s, *why;
	int err = get_str(c, v, &s);

	if (err)
		return err;
	why = parse_port(s, v->len, &r->upstream_port);
	if (why)
		return perr(c, v, "%s: %s", qn(c, v), why);
	return 0;
}

static const struct field upstream_fields[] = {
	{ "port", parse_upstream_port, 1 },
};

static int parse_upstream(struct pctx *c, const struct ynode *v, void *obj)
{
	return WALK(c, v, "upstream", upstream_fields, obj);
}

static int parse_ca_file(struct pctx *c, const struct ynode *v, void *obj)
{
	return abs_path(c, v, &((struct policy_route *)obj)->ca_file, PATH_MAX);
}

/* A DNS name as SNI carries it (RFC 6066 3: never an IP literal), kept lowercase. */
static int parse_server_name(struct pctx *c, const struct ynode *v, void *obj)
{
	struct policy_route *r = obj;
	const char *s, *why;
	int err = get_str(c, v, &s);

	if (err)
		return err;
	why = check_hostname(s, v->len);
	if (why)
		return perr(c, v, "%s: %s", qn(c, v), why);
	err = dup_str(c, v, &r->server_name);
	for (char *p = r->server_name; !err && *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p | 0x20);
	return err;
}

/*
 * One `sni:` entry: a host name, or "*." and a host name of at least two labels (the
 * wildcard stands for exactly one label, as in RFC 6125 6.4.3; "*.org" would allow a
 * whole top-level domain).  Kept lowercase: tlshello.c lowercases the ClientHello's.
 */
static int parse_sni_name(struct pctx *c, const struct ynode *v, char **out)
{
	const char *s, *name, *why;
	int err = get_str(c, v, &s);

	if (err)
		return err;
	name = strncmp(s, "*.", 2) ? s : s + 2;
	why = check_hostname(name, strlen(name));
	if (!why && name != s && !strchr(name, '.'))
		why = "a wildcard must be followed by at least two labels (\"*.example.org\")";
	if (why)
		return perr(c, v, "%s: %s", qn(c, v), why);
	err = dup_str(c, v, out);
	for (char *p = *out; !err && *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p | 0x20);
	return err;
}

static int parse_sni(struct pctx *c, const struct ynode *v, void *obj)
{
	struct policy_route *r = obj;
	size_t saved;
	int err;

	if (v->type != YN_SEQ)
		return perr(c, v, "expected a list of server names, got %s", node_kind(v));
	if (!v->nkids)
		return perr(c, v, "at least one server name is required");
	r->sni = calloc(v->nkids, sizeof(*r->sni));
	if (!r->sni)
		return perr(c, v, "out of memory");
	for (size_t i = 0; i < v->nkids; i++) {
		saved = path_push(c, "[%zu]", i);
		err = parse_sni_name(c, v->kids[i], &r->sni[r->nsni]);
		path_pop(c, saved);
		if (err)
			return err;
		r->nsni++;
	}
	return 0;
}

static int parse_on_revoke(struct pctx *c, const struct ynode *v, void *obj)
{
	static const char *const names[] = { "refuse", "close", NULL };
	static const enum policy_on_revoke val[] = { POLICY_REVOKE_REFUSE, POLICY_REVOKE_CLOSE };
	int i, err = get_word(c, v, "a revocation action", names, &i);

	if (!err)
		((struct policy_route *)obj)->on_revoke = val[i];
	return err;
}

static const struct field route_fields[] = {
	{ "to", parse_to, 1 },
	{ "credential", parse_credential, 0 },	/* required unless passthrough */
	{ "header", parse_header, 0 },
	{ "tls", parse_tls, 0 },
	{ "upstream", parse_upstream, 0 },
	{ "ca_file", parse_ca_file, 0 },
	{ "server_name", parse_server_name, 0 },
	{ "sni", parse_sni, 0 },
	{ "on_revoke", parse_on_revoke, 0 },
};

/*
 * Keys that only mean something with TLS upstream, and server_name on a host name
 * route: that route's upstream proves the route's own name, so another name would
 * be a second, silently ignored identity.
 */
static int route_tls_check(struct pctx *c, const struct ynode *v, const struct policy_route *r)
{
	static const char *const tls_only[] = { "upstream", "ca_file", "server_name" };
	const struct ynode *sn = map_get(v, "server_name");

	for (size_t i = 0; (r->tls == POLICY_TLS_NONE || r->tls == POLICY_TLS_PASSTHROUGH) &&
			   i < 3; i++) {
		const struct ynode *k = map_get(v, tls_only[i]);

		if (!k)
			continue;
		path_push(c, ".%s", tls_only[i]);
		return perr(c, k, "%s is only used with tls: intercept or originate",
			    tls_only[i]);
	}
	/* a client certificate is presented in a TLS handshake, so only upstream of TLS */
	if (r->tls == POLICY_TLS_NONE && (r->cred_type == POLICY_CRED_X509 || r->mtls)) {
		path_push(c, ".credential");
		return perr(c, map_get(v, "credential"), "%s is only used with tls: intercept or "
			    "originate", r->mtls ? "mtls" : "an x509 credential");
	}
	if (r->cred_type == POLICY_CRED_X509 && map_get(v, "header")) {
		path_push(c, ".header");
		return perr(c, map_get(v, "header"), "an x509 credential is not sent in a header");
	}
	if (sn && r->kind == POLICY_DEST_HOST && strcmp(r->server_name, r->host)) {
		path_push(c, ".server_name");
		return perr(c, sn, "%s differs from the route's host name %s (a host name "
			    "route's upstream is verified against its own name)", qn(c, sn),
			    q(c, r->host, strlen(r->host)));
	}
	return 0;
}

/*
 * A passthrough route relays the app's own TLS unmodified: there is nothing to inject
 * into, so it carries no credential or header; what is allowed is the ClientHello's
 * server name.  The names: `sni:`, and a host name route's own host.  An IP or CIDR
 * route says nothing about names, so it must list them (fail closed, never "any").
 * Every other route needs a credential, and has no use for `sni:`.
 */
static int route_mode_check(struct pctx *c, const struct ynode *v, const struct policy_route *r)
{
	static const char *const refused[] = { "credential", "header" };
	const struct ynode *k;

	if (r->tls != POLICY_TLS_PASSTHROUGH) {
		k = map_get(v, "sni");
		if (k) {
			path_push(c, ".sni");
			return perr(c, k, "sni is only used with tls: passthrough");
		}
		if (!map_get(v, "credential"))
			return perr(c, v, "missing required key \"credential\" in route");
		return 0;
	}
	for (size_t i = 0; i < 2; i++) {
		k = map_get(v, refused[i]);
		if (!k)
			continue;
		path_push(c, ".%s", refused[i]);
		return perr(c, k, "passthrough routes carry no credential (the app's TLS is "
			    "relayed unmodified: nothing can be injected)");
	}
	if (r->kind != POLICY_DEST_HOST && !r->nsni)
		return perr(c, v, "a tls: passthrough route to an address needs an sni: list of "
			    "the server names it allows");
	return 0;
}

/* Same destination?  10.0.0.1:80 and 10.0.0.1/32:80 are; names compare without case. */
static int route_same_dest(const struct policy_route *a, const struct policy_route *b)
{
	if (a->port != b->port || (a->kind == POLICY_DEST_HOST) != (b->kind == POLICY_DEST_HOST))
		return 0;
	if (a->kind == POLICY_DEST_HOST)
		return !strcmp(a->host, b->host);
	return a->addrs[0].family == b->addrs[0].family &&
	       a->addrs[0].prefixlen == b->addrs[0].prefixlen &&
	       !memcmp(a->addrs[0].addr, b->addrs[0].addr, sizeof(a->addrs[0].addr));
}

/* Defaults first, then the mapping, then the header split if none was given. */
static int parse_route(struct pctx *c, const struct ynode *v, struct policy_route *r)
{
	int err;

	r->line = v->line;
	r->col = v->col;
	err = WALK(c, v, "route", route_fields, r);
	if (!err)
		err = route_tls_check(c, v, r);
	if (!err)
		err = route_mode_check(c, v, r);
	if (err)
		return err;
	if (!r->ttl_s)	/* a route without a credential (passthrough) */
		r->ttl_s = POLICY_DEFAULT_TTL_S;
	if (!r->header_name && r->cred_type != POLICY_CRED_X509) {
		r->header_name = strdup("Authorization");
		r->header_prefix = strdup("Bearer ");
		r->header_suffix = strdup("");
		if (!r->header_name || !r->header_prefix || !r->header_suffix)
			return perr(c, v, "out of memory");
	}
	return 0;
}

static int parse_routes(struct pctx *c, const struct ynode *v, void *obj)
{
	struct policy_workload *w = obj;
	size_t saved;
	int err;

	if (v->type != YN_SEQ)
		return perr(c, v, "expected a list, got %s", node_kind(v));
	if (!v->nkids)
		return 0;	/* refused by workload_routes_check(), which knows the mode */
	w->routes = calloc(v->nkids, sizeof(*w->routes));
	if (!w->routes)
		return perr(c, v, "out of memory");
	for (size_t i = 0; i < v->nkids; i++) {
		struct policy_route *r = &w->routes[w->nroutes++];

		saved = path_push(c, "[%zu]", i);
		err = parse_route(c, v->kids[i], r);
		for (size_t j = 0; !err && j < i; j++) {
			if (!route_same_dest(&w->routes[j], r))
				continue;
			path_push(c, ".to");
			err = perr(c, map_get(v->kids[i], "to"),
				   "%s is the same destination as routes[%zu] (line %d)",
				   q(c, r->to, strlen(r->to)), j, w->routes[j].line);
		}
		path_pop(c, saved);
		if (err)
			return err;
	}
	return 0;
}

/* --- workloads ----------------------------------------------------------------- */

/* [a-z0-9][a-z0-9._-]{0,62}: safe in a SPIFFE path, a file name and a metric label */
static int parse_name(struct pctx *c, const struct ynode *v, void *obj)
{
	struct policy_workload *w = obj;
	const char *s;
	int err = get_str(c, v, &s);

	if (err)
		return err;
	if (v->len > 63)
		return perr(c, v, "%s is longer than 63 characters", qn(c, v));
	for (size_t i = 0; i < v->len; i++) {
		char ch = s[i];

		if ((ch >= 'a' && ch <= 'z') || is_digit(ch) || (i && strchr("._-", ch)))
			continue;
		return perr(c, v, "%s must match [a-z0-9][a-z0-9._-]{0,62}", qn(c, v));
	}
	return dup_str(c, v, &w->name);
}

/* Relative to the cgroup2 mount, canonical: "/a/b", no "//", ".", ".." or trailing '/'. */
static int parse_cgroup(struct pctx *c, const struct ynode *v, void *obj)
{
	struct policy_workload *w = obj;
	const char *s, *p;
	int err = get_str(c, v, &s);

	if (err)
		return err;
	if (s[0] != '/')
		return perr(c, v, "%s is not an absolute path (e.g. /system.slice/app.service)",
			    qn(c, v));
	if (!strcmp(s, "/"))
		return perr(c, v, "the root cgroup holds every process, lanyardd included, and "
			    "cannot be a workload");
	if (!strncmp(s, "/sys/fs/cgroup/", 15))
		return perr(c, v, "%s: give the path below the cgroup2 mount, without "
			    "/sys/fs/cgroup", qn(c, v));
	if (v->len >= PATH_MAX)
		return perr(c, v, "path is longer than %d bytes", PATH_MAX - 1);
	for (p = s; *p; p++) {
		size_t n;

		if (*p != '/')
			continue;
		n = strcspn(p + 1, "/");
		if (n == 0)
			return perr(c, v, "%s has an empty component (\"//\" or a trailing '/')",
				    qn(c, v));
		if ((n == 1 && p[1] == '.') || (n == 2 && p[1] == '.' && p[2] == '.'))
			return perr(c, v, "%s may not contain \".\" or \"..\"", qn(c, v));
	}
	return dup_str(c, v, &w->cgroup);
}

static const struct field match_fields[] = {
	{ "cgroup", parse_cgroup, 1 },
};

static int parse_match(struct pctx *c, const struct ynode *v, void *obj)
{
	return WALK(c, v, "match", match_fields, obj);
}

static int parse_mode(struct pctx *c, const struct ynode *v, void *obj)
{
	static const char *const names[] = { "enforce", "observe", NULL };
	static const enum policy_mode val[] = { POLICY_MODE_ENFORCE, POLICY_MODE_OBSERVE };
	int i, err = get_word(c, v, "a mode", names, &i);

	if (!err)
		((struct policy_workload *)obj)->mode = val[i];
	return err;
}

/* routes is required unless mode is observe (checked after the walk: keys come in any order) */
static const struct field workload_fields[] = {
	{ "name", parse_name, 1 },
	{ "match", parse_match, 1 },
	{ "mode", parse_mode, 0 },
	{ "routes", parse_routes, 0 },
};

/*
 * An enforce workload needs at least one route; an observe workload has none: nothing of
 * it is redirected, so routes there would be a policy that says what does not happen.
 */
static int workload_routes_check(struct pctx *c, const struct policy_workload *w,
				 const struct ynode *v)
{
	const struct ynode *routes = map_get(v, "routes");

	if (w->mode == POLICY_MODE_OBSERVE && routes) {
		path_push(c, ".routes");
		return perr(c, routes, "a workload in mode observe is never redirected and gets no "
			    "credential: remove its routes, or set mode: enforce");
	}
	if (w->mode == POLICY_MODE_ENFORCE && !routes)
		return perr(c, v, "missing required key \"routes\" in workload (or set mode: "
			    "observe)");
	if (w->mode == POLICY_MODE_ENFORCE && !w->nroutes) {
		path_push(c, ".routes");
		return perr(c, routes, "at least one route is required");
	}
	return 0;
}

/* Workload i (already parsed) against 0..i-1: names and cgroups must be unique. */
static int workload_unique(struct pctx *c, const struct policy *p, size_t i,
			   const struct ynode *v)
{
	const struct policy_workload *w = &p->workloads[i];

	for (size_t j = 0; j < i; j++) {
		const struct policy_workload *o = &p->workloads[j];

		if (!strcmp(o->name, w->name)) {
			path_push(c, ".name");
			return perr(c, map_get(v, "name"), "duplicate workload name %s (first at "
				    "line %d)", q(c, w->name, strlen(w->name)), o->line);
		}
		if (!strcmp(o->cgroup, w->cgroup)) {
			path_push(c, ".match.cgroup");
			return perr(c, map_get(map_get(v, "match"), "cgroup"),
				    "%s is already the cgroup of workload %s (line %d)",
				    q(c, w->cgroup, strlen(w->cgroup)),
				    q(c, o->name, strlen(o->name)), o->line);
		}
	}
	return 0;
}

static int parse_workloads(struct pctx *c, const struct ynode *v, void *obj)
{
	struct policy *p = obj;
	size_t saved;
	int err;

	if (v->type != YN_SEQ)
		return perr(c, v, "expected a list, got %s%s", node_kind(v),
			    node_is_null(v) ? " (write [] for no workloads)" : "");
	p->workloads = calloc(v->nkids ? v->nkids : 1, sizeof(*p->workloads));
	if (!p->workloads)
		return perr(c, v, "out of memory");
	for (size_t i = 0; i < v->nkids; i++) {
		struct policy_workload *w = &p->workloads[p->nworkloads++];

		saved = path_push(c, "[%zu]", i);
		w->line = v->kids[i]->line;
		err = WALK(c, v->kids[i], "workload", workload_fields, w);
		if (!err)
			err = workload_routes_check(c, w, v->kids[i]);
		if (!err)
			err = workload_unique(c, p, i, v->kids[i]);
		path_pop(c, saved);
		if (err)
			return err;
	}
	return 0;
}

static int parse_tls_probes(struct pctx *c, const struct ynode *v, void *obj)
{
	static const char *const names[] = { "auto", "host", "process", NULL };
	static const enum policy_tls_probes val[] = { POLICY_TLS_PROBES_AUTO,
						      POLICY_TLS_PROBES_HOST,
						      POLICY_TLS_PROBES_PROCESS };
	int i, err = get_word(c, v, "a probe scope", names, &i);

	if (!err)
		((struct policy *)obj)->tls_probes = val[i];
	return err;
}

/* a request head, a ClientHello or a handshake, an upstream connect and handshake */
static int parse_head_timeout(struct pctx *c, const struct ynode *v, void *obj)
{
	return get_duration_ms(c, v, 1, 300, "1s..5m", &((struct policy *)obj)->head_timeout_ms);
}

static int parse_idle_timeout(struct pctx *c, const struct ynode *v, void *obj)
{
	return get_duration_ms(c, v, 1, POLICY_MAX_TTL_S, "1s..24h",
			       &((struct policy *)obj)->idle_timeout_ms);
}

static const struct field timeouts_fields[] = {
	{ "head", parse_head_timeout, 0 },
	{ "idle", parse_idle_timeout, 0 },
};

/* idle never shorter than head: a request waiting for its head or a credential is idle */
static int parse_timeouts(struct pctx *c, const struct ynode *v, void *obj)
{
	struct policy *p = obj;
	int err = WALK(c, v, "timeouts", timeouts_fields, obj);

	if (!err && p->idle_timeout_ms < p->head_timeout_ms)
		return perr(c, v, "idle (%us) must not be shorter than head (%us)",
			    p->idle_timeout_ms / 1000, p->head_timeout_ms / 1000);
	return err;
}

static const struct field policy_fields[] = {
	{ "trust_domain", parse_trust_domain, 1 },
	{ "listen", parse_listen, 0 },
	{ "admin", parse_admin, 0 },
	{ "state_dir", parse_state_dir, 0 },
	{ "audit", parse_audit, 0 },
	{ "control_socket", parse_control_socket, 0 },
	{ "ca", parse_ca, 0 },
	{ "tls_probes", parse_tls_probes, 0 },
	{ "timeouts", parse_timeouts, 0 },
	{ "workloads", parse_workloads, 0 },
};

/* --- public -------------------------------------------------------------------- */

static int set_defaults(struct pctx *c, struct policy *p)
{
	if (!p->admin_listen) {
		p->admin_listen = strdup(POLICY_DEFAULT_ADMIN);
		if (parse_sockaddr(POLICY_DEFAULT_ADMIN, &p->admin_addr))
			return perr_at(c, 1, 1, "bad built-in admin address");
	}
	if (!p->state_dir)
		p->state_dir = strdup(POLICY_DEFAULT_STATE_DIR);
	if (!p->control_socket)
		p->control_socket = strdup(POLICY_DEFAULT_CONTROL);
	if (!p->workloads)
		p->workloads = calloc(1, sizeof(*p->workloads));
	if (!p->admin_listen || !p->state_dir || !p->control_socket || !p->workloads)
		return perr_at(c, 1, 1, "out of memory");
	return 0;
}

struct policy *policy_parse(const char *buf, size_t len, const char *name, char *err,
			    size_t errlen)
{
	struct pctx c = { .file = name ? name : "<buffer>", .buf = buf, .len = len,
			  .err = err, .errlen = errlen };
	struct ynode *root = NULL;
	struct policy *p = NULL;

	if (err && errlen)
		err[0] = '\0';
	if (!buf) {
		c.buf = "";
		c.len = len = 0;
	}
	if (len > POLICY_MAX_SIZE) {
		perr_at(&c, 1, 1, "the policy is larger than %d bytes", POLICY_MAX_SIZE);
		goto cleanup;
	}
	if (tree_build(&c, &root))
		goto cleanup;
	if (!root || node_is_null(root)) {
		perr_at(&c, 1, 1, "the policy is empty (trust_domain is required)");
		goto cleanup;
	}
	p = calloc(1, sizeof(*p));
	if (!p || !(p->path = strdup(c.file))) {
		perr_at(&c, 1, 1, "out of memory");
		goto cleanup;
	}
	p->listen_port = POLICY_DEFAULT_LISTEN_PORT;
	p->head_timeout_ms = POLICY_DEFAULT_HEAD_TIMEOUT_S * 1000;
	p->idle_timeout_ms = POLICY_DEFAULT_IDLE_TIMEOUT_S * 1000;
	if (WALK(&c, root, "policy", policy_fields, p) || set_defaults(&c, p))
		goto cleanup;
	node_free(root);
	return p;
cleanup:
	node_free(root);
	policy_free(p);
	return NULL;
}

__attribute__((format(printf, 4, 5)))
static void file_err(char *err, size_t errlen, const char *path, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!err || !errlen)
		return;
	n = snprintf(err, errlen, "%s: ", path);
	va_start(ap, fmt);
	if (n >= 0 && (size_t)n < errlen)
		vsnprintf(err + (size_t)n, errlen - (size_t)n, fmt, ap);
	va_end(ap);
}

/*
 * Whoever can write the policy decides which workloads get credentials: refuse a
 * file that anyone but root or our own uid could have changed (relayd's
 * check_file_secrecy, for writability).
 */
static int file_check(int fd, const char *path, char *err, size_t errlen)
{
	struct stat st;

	if (fstat(fd, &st)) {
		int e = errno;

		file_err(err, errlen, path, "cannot stat: %s", strerror(e));
		return -e;
	}
	if (!S_ISREG(st.st_mode)) {
		file_err(err, errlen, path, "not a regular file");
		return -EINVAL;
	}
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		file_err(err, errlen, path, "refusing a group- or other-writable policy file "
			 "(mode %04o); run: chmod go-w %s", (unsigned)(st.st_mode & 07777), path);
		return -EPERM;
	}
	if (st.st_uid != 0 && st.st_uid != geteuid()) {
		file_err(err, errlen, path, "refusing a policy file owned by uid %u (expected "
			 "root or uid %u)", (unsigned)st.st_uid, (unsigned)geteuid());
		return -EPERM;
	}
	if (st.st_size > POLICY_MAX_SIZE) {
		file_err(err, errlen, path, "the policy file is larger than %d bytes",
			 POLICY_MAX_SIZE);
		return -EFBIG;
	}
	return 0;
}

/* Read at most POLICY_MAX_SIZE bytes; the file may have grown since fstat(). */
static int file_read(int fd, const char *path, char **out, size_t *len, char *err,
		     size_t errlen)
{
	char *buf = malloc(POLICY_MAX_SIZE + 1);
	size_t off = 0;
	ssize_t n;

	if (!buf) {
		file_err(err, errlen, path, "out of memory");
		return -ENOMEM;
	}
	while (off <= POLICY_MAX_SIZE) {
		n = read(fd, buf + off, POLICY_MAX_SIZE + 1 - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			n = -errno;
			file_err(err, errlen, path, "read: %s", strerror(errno));
			free(buf);
			return (int)n;
		}
		if (n == 0)
			break;
		off += (size_t)n;
	}
	if (off > POLICY_MAX_SIZE) {
		file_err(err, errlen, path, "the policy file is larger than %d bytes",
			 POLICY_MAX_SIZE);
		free(buf);
		return -EFBIG;
	}
	*out = buf;
	*len = off;
	return 0;
}

struct policy *policy_load(const char *path, char *err, size_t errlen)
{
	struct policy *p = NULL;
	char *buf = NULL;
	size_t len = 0;
	int fd;

	if (err && errlen)
		err[0] = '\0';
	/* O_NONBLOCK: a FIFO planted at the path must not hang the daemon in open() */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		file_err(err, errlen, path, "cannot open: %s", strerror(errno));
		goto cleanup;
	}
	if (file_check(fd, path, err, errlen) || file_read(fd, path, &buf, &len, err, errlen))
		goto cleanup;
	p = policy_parse(buf, len, path, err, errlen);
cleanup:
	if (fd >= 0)
		close(fd);
	free(buf);
	return p;
}

static int gai_errno(int rc)
{
	switch (rc) {
	case EAI_SYSTEM:
		return errno ? -errno : -EIO;
	case EAI_MEMORY:
		return -ENOMEM;
	case EAI_AGAIN:
		return -EAGAIN;
	default:
		return -ENOENT;
	}
}

/* ai into the first free slot of addrs unless already there.  Returns the new count. */
static size_t addr_add(struct policy_addr *addrs, size_t n, const struct addrinfo *ai)
{
	struct policy_addr a = { .family = ai->ai_family };

	if (ai->ai_family == AF_INET) {
		memcpy(a.addr, &((const struct sockaddr_in *)ai->ai_addr)->sin_addr, 4);
		a.prefixlen = 32;
	} else if (ai->ai_family == AF_INET6) {
		memcpy(a.addr, &((const struct sockaddr_in6 *)ai->ai_addr)->sin6_addr, 16);
		a.prefixlen = 128;
	} else {
		return n;
	}
	for (size_t i = 0; i < n; i++)
		if (!memcmp(&addrs[i], &a, sizeof(a)))
			return n;
	addrs[n] = a;
	return n + 1;
}

static int resolve_route(const struct policy *p, struct policy_route *r, char *err,
			 size_t errlen)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
	struct addrinfo *res = NULL, *ai;
	struct policy_addr *addrs = NULL;
	size_t n = 0, cap = 0;
	int rc;

	errno = 0;
	rc = getaddrinfo(r->host, NULL, &hints, &res);
	if (rc) {
		int e = gai_errno(rc);

		if (err && errlen)
			snprintf(err, errlen, "%s:%d:%d: cannot resolve %s: %s", p->path, r->line,
				 r->col, r->host,
				 rc == EAI_SYSTEM ? strerror(-e) : gai_strerror(rc));
		return e;
	}
	for (ai = res; ai; ai = ai->ai_next)
		cap++;
	addrs = calloc(cap ? cap : 1, sizeof(*addrs));
	if (!addrs) {
		freeaddrinfo(res);
		if (err && errlen)
			snprintf(err, errlen, "%s:%d:%d: out of memory", p->path, r->line, r->col);
		return -ENOMEM;
	}
	for (ai = res; ai; ai = ai->ai_next)
		n = addr_add(addrs, n, ai);
	freeaddrinfo(res);
	if (!n) {
		free(addrs);
		if (err && errlen)
			snprintf(err, errlen, "%s:%d:%d: cannot resolve %s: no IPv4 or IPv6 "
				 "address", p->path, r->line, r->col, r->host);
		return -ENOENT;
	}
	free(r->addrs);
	r->addrs = addrs;
	r->naddrs = n;
	return 0;
}

int policy_resolve(struct policy *p, char *err, size_t errlen)
{
	int rc;

	if (err && errlen)
		err[0] = '\0';
	for (size_t i = 0; p && i < p->nworkloads; i++) {
		struct policy_workload *w = &p->workloads[i];

		for (size_t j = 0; j < w->nroutes; j++) {
			if (w->routes[j].kind != POLICY_DEST_HOST)
				continue;
			rc = resolve_route(p, &w->routes[j], err, errlen);
			if (rc)
				return rc;
		}
	}
	return 0;
}

static void route_fini(struct policy_route *r)
{
	if (r->cred && policy_cred_free_hook)
		policy_cred_free_hook(r->cred);
	r->cred = NULL;
	if (r->tls_ctx && policy_tls_free_hook)
		policy_tls_free_hook(r->tls_ctx);
	r->tls_ctx = NULL;
	free(r->ca_file);
	free(r->server_name);
	for (size_t i = 0; i < r->nsni; i++)
		free(r->sni[i]);
	free(r->sni);
	free(r->to);
	free(r->host);
	free(r->addrs);
	free(r->audience);
	free(r->header_name);
	free(r->header_prefix);
	free(r->header_suffix);
	policy_source_put(r->src);
}

void policy_free(struct policy *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->nworkloads; i++) {
		struct policy_workload *w = &p->workloads[i];

		for (size_t j = 0; j < w->nroutes; j++)
			route_fini(&w->routes[j]);
		free(w->routes);
		free(w->name);
		free(w->cgroup);
	}
	free(p->workloads);
	free(p->path);
	free(p->trust_domain);
	free(p->admin_listen);
	free(p->state_dir);
	free(p->audit_path);
	free(p->control_socket);
	free(p->ca_cert);
	free(p->ca_key);
	free(p);
}

const struct policy_workload *policy_workload_find(const struct policy *p, const char *name)
{
	for (size_t i = 0; p && name && i < p->nworkloads; i++)
		if (!strcmp(p->workloads[i].name, name))
			return &p->workloads[i];
	return NULL;
}

int policy_route_match(const struct policy_route *r, int family, const uint8_t *addr,
		       uint16_t port)
{
	if (!r || !addr || port != r->port)
		return 0;
	for (size_t i = 0; i < r->naddrs; i++) {
		const struct policy_addr *a = &r->addrs[i];
		size_t full = a->prefixlen / 8, rem = a->prefixlen % 8;

		if (a->family != family || memcmp(a->addr, addr, full))
			continue;
		if (rem && ((a->addr[full] ^ addr[full]) & (uint8_t)(0xff00 >> rem)))
			continue;
		return 1;
	}
	return 0;
}

int policy_parse_duration(const char *s, uint32_t *out_s)
{
	uint64_t v = 0, unit = 1;

	if (!s || !is_digit(*s))
		return -EINVAL;
	for (; is_digit(*s); s++) {
		v = v * 10 + (uint64_t)(*s - '0');
		if (v > UINT32_MAX)
			return -EINVAL;
	}
	switch (*s) {
	case 's':
		s++;
		break;
	case 'm':
		unit = 60;
		s++;
		break;
	case 'h':
		unit = 3600;
		s++;
		break;
	case 'd':
		unit = 86400;
		s++;
		break;
	default:
		break;
	}
	if (*s || v * unit > UINT32_MAX)
		return -EINVAL;
	*out_s = (uint32_t)(v * unit);
	return 0;
}

/* "*.example.org" covers exactly one more label: "a.example.org", not "a.b.example.org" */
static int sni_match(const char *pat, const char *name)
{
	const char *dot;

	if (strncmp(pat, "*.", 2))
		return !strcmp(pat, name);
	dot = strchr(name, '.');
	return dot && dot != name && !strcmp(dot + 1, pat + 2);
}

int policy_sni_allowed(const struct policy_route *r, const char *sni)
{
	/* a name never holds '*' (tlshello.c refuses it too): a pattern must not match itself */
	if (!r || r->tls != POLICY_TLS_PASSTHROUGH || !sni || !*sni || strchr(sni, '*'))
		return 0;
	if (r->kind == POLICY_DEST_HOST && !strcmp(r->host, sni))
		return 1;
	for (size_t i = 0; i < r->nsni; i++)
		if (sni_match(r->sni[i], sni))
			return 1;
	return 0;
}
