// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Copyright (c) 2026 The lanyard authors */
/*
 * The fetch workers: a mutex-guarded queue in, a done list and an eventfd
 * out.  Plus what every source shares: failing with a reason, checking a
 * token, and reading the JSON that token endpoints and helpers answer with.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "fetch.h"
#include "log.h"

#define FETCH_MAX_THREADS 8

struct fetcher {
	struct loop *loop;
	struct loop_io io;		/* the eventfd */
	fetch_done_cb done;
	void *arg;

	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct fetch_job *queue, **queue_tail;	/* FIFO: submitted, not yet taken */
	struct fetch_job *finished;		/* back from the workers, any order */
	int stopping;
	pthread_t threads[FETCH_MAX_THREADS];
	int nthreads;
};

/* --- jobs ------------------------------------------------------------------------ */

struct fetch_job *fetch_job_new(enum policy_cred_type type, struct policy_source *src)
{
	struct fetch_job *j = calloc(1, sizeof(*j));

	if (!j)
		return NULL;
	j->type = type;
	j->src = policy_source_get(src);
	return j;
}

void fetch_job_free(struct fetch_job *j)
{
	if (!j)
		return;
	secret_free(j->assertion);
	secret_free(j->subject);
	secret_free(j->token);
	policy_source_put(j->src);
	free(j);
}

int fetch_fail(struct fetch_job *j, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(j->why, sizeof(j->why), fmt, ap);
	va_end(ap);
	j->err = err;
	return err;
}

void fetch_run(struct fetch_job *j)
{
	uint64_t t0 = loop_clock_us();

	switch (j->type) {
	case POLICY_CRED_OAUTH2:
	case POLICY_CRED_TOKEN_EXCHANGE:
		source_http_fetch(j);
		break;
	case POLICY_CRED_EXEC:
		source_exec_fetch(j);
		break;
	case POLICY_CRED_STATIC:
		source_static_fetch(j);
		break;
	default:
		fetch_fail(j, -EINVAL, "credential type %s is not fetched",
			   policy_cred_type_name(j->type));
		break;
	}
	/* a source that failed must not leave half a result behind */
	if (j->err) {
		secret_free(j->token);
		j->token = NULL;
	} else if (!j->token && !j->unchanged) {
		fetch_fail(j, -EIO, "the source returned no credential");
	}
	j->took_us = loop_clock_us() - t0;
}

/* --- workers and the loop side ------------------------------------------------------ */

static void *worker(void *arg)
{
	struct fetcher *f = arg;
	struct fetch_job *j;
	uint64_t one = 1;

	pthread_mutex_lock(&f->mu);
	for (;;) {
		while (!f->queue && !f->stopping)
			pthread_cond_wait(&f->cv, &f->mu);
		if (f->stopping)
			break;
		j = f->queue;
		f->queue = j->next;
		if (!f->queue)
			f->queue_tail = &f->queue;
		pthread_mutex_unlock(&f->mu);

		fetch_run(j);

		pthread_mutex_lock(&f->mu);
		j->next = f->finished;
		f->finished = j;
		/* the eventfd counter only saturates after 2^64-2 writes */
		if (write(f->io.fd, &one, sizeof(one)) < 0)
			log_warnx("%s: eventfd: %s", __func__, strerror(errno));
	}
	pthread_mutex_unlock(&f->mu);
	return NULL;
}

static void on_finished(struct loop *l, struct loop_io *io, uint32_t events)
{
	struct fetcher *f = io->arg;
	struct fetch_job *list, *next;
	uint64_t n;

	(void)l;
	(void)events;
	while (read(io->fd, &n, sizeof(n)) == sizeof(n))
		;
	pthread_mutex_lock(&f->mu);
	list = f->finished;
	f->finished = NULL;
	pthread_mutex_unlock(&f->mu);
	for (; list; list = next) {
		next = list->next;
		list->next = NULL;
		f->done(list, f->arg);
	}
}

struct fetcher *fetcher_new(struct loop *l, fetch_done_cb done, void *arg)
{
	struct fetcher *f = calloc(1, sizeof(*f));
	int fd;

	if (!f)
		return NULL;
	f->loop = l;
	f->done = done;
	f->arg = arg;
	f->queue_tail = &f->queue;
	pthread_mutex_init(&f->mu, NULL);
	pthread_cond_init(&f->cv, NULL);
	fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (fd < 0 || loop_add(l, &f->io, fd, EPOLLIN, on_finished, f) < 0) {
		if (fd >= 0)
			close(fd);
		pthread_mutex_destroy(&f->mu);
		pthread_cond_destroy(&f->cv);
		free(f);
		return NULL;
	}
	return f;
}

/*
 * Every signal stays blocked in the workers: the loop takes SIGHUP and SIGTERM
 * through a signalfd, which only works if no thread can have them delivered.
 */
int fetcher_start(struct fetcher *f, int nthreads)
{
	sigset_t all, old;
	int err = 0;

	if (nthreads > FETCH_MAX_THREADS)
		nthreads = FETCH_MAX_THREADS;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	while (f->nthreads < nthreads && !err) {
		err = -pthread_create(&f->threads[f->nthreads], NULL, worker, f);
		if (!err)
			f->nthreads++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return f->nthreads ? 0 : err;
}

static void job_list_free(struct fetch_job *j)
{
	struct fetch_job *next;

	for (; j; j = next) {
		next = j->next;
		fetch_job_free(j);
	}
}

void fetcher_free(struct fetcher *f)
{
	if (!f)
		return;
	pthread_mutex_lock(&f->mu);
	__atomic_store_n(&f->stopping, 1, __ATOMIC_RELAXED);
	pthread_cond_broadcast(&f->cv);
	pthread_mutex_unlock(&f->mu);
	for (int i = 0; i < f->nthreads; i++)
		pthread_join(f->threads[i], NULL);
	job_list_free(f->queue);
	job_list_free(f->finished);
	loop_del(f->loop, &f->io);
	close(f->io.fd);
	pthread_mutex_destroy(&f->mu);
	pthread_cond_destroy(&f->cv);
	free(f);
}

void fetcher_submit(struct fetcher *f, struct fetch_job *j)
{
	j->next = NULL;
	j->cancel = &f->stopping;
	pthread_mutex_lock(&f->mu);
	*f->queue_tail = j;
	f->queue_tail = &j->next;
	pthread_cond_signal(&f->cv);
	pthread_mutex_unlock(&f->mu);
}

/* --- what the sources share ----------------------------------------------------------- */

const char *fetch_token_check(const char *s, size_t len)
{
	if (!len)
		return "the credential is empty";
	if (len > FETCH_MAX_TOKEN)
		return "the credential is longer than 8192 bytes";
	if (s[0] == ' ' || s[len - 1] == ' ')
		return "the credential starts or ends with a space";
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch < 0x20 || ch > 0x7e)
			return "the credential holds a control or non-ASCII byte";
	}
	return NULL;
}

/* A JSON string member, checked as a credential and copied into the secure heap. */
static int token_from_json(const json_t *v, const char *name, struct secret **token, char *why,
			   size_t wl)
{
	const char *bad;

	if (!json_is_string(v)) {
		snprintf(why, wl, "no \"%s\" string in the answer", name);
		return -EPROTO;
	}
	bad = fetch_token_check(json_string_value(v), json_string_length(v));
	if (bad) {
		snprintf(why, wl, "\"%s\" refused: %s", name, bad);
		return -EPROTO;
	}
	*token = secret_dup(json_string_value(v), json_string_length(v));
	return *token ? 0 : -ENOMEM;
}

/* An RFC 6749 5.2 error code is an NQSCHAR string: keep it only if it looks like one. */
static const char *error_code(const json_t *root)
{
	const char *e = json_string_value(json_object_get(root, "error"));
	size_t n = e ? strlen(e) : 0;

	if (!n || n > 64 || strspn(e, "abcdefghijklmnopqrstuvwxyz_") != n)
		return NULL;
	return e;
}

/*
 * jansson copies every string of the document into its own heap: the token
 * in a json_t is wiped (it is our copy, nothing else refers to it) before the
 * document goes, so that only the secure-heap copy outlives the parse.
 */
static void json_wipe_free(json_t *root, const char *name)
{
	json_t *v = json_object_get(root, name);

	if (json_is_string(v))
		explicit_bzero((void *)(uintptr_t)json_string_value(v), json_string_length(v));
	json_decref(root);
}

int fetch_parse_token_response(long status, const char *body, size_t len, int64_t now,
			       struct secret **token, int64_t *expires_at, char *why,
			       size_t wl)
{
	json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
	const json_t *ei;
	const char *code;
	int err = -EPROTO;

	*token = NULL;
	*expires_at = 0;
	if (status < 200 || status > 299) {
		code = root ? error_code(root) : NULL;
		snprintf(why, wl, "token endpoint answered %ld%s%s", status, code ? ": " : "",
			 code ? code : "");
		goto out;
	}
	if (!json_is_object(root)) {
		snprintf(why, wl, "token endpoint answered %ld with a body that is not a JSON "
			 "object", status);
		goto out;
	}
	ei = json_object_get(root, "expires_in");
	if (ei && (!json_is_integer(ei) || json_integer_value(ei) <= 0 ||
		   json_integer_value(ei) > POLICY_MAX_TTL_S * 30)) {
		snprintf(why, wl, "token endpoint answered an expires_in that is not a positive "
			 "number of seconds");
		goto out;
	}
	err = token_from_json(json_object_get(root, "access_token"), "access_token", token, why,
			      wl);
	if (!err && ei)
		*expires_at = now + json_integer_value(ei);
out:
	json_wipe_free(root, "access_token");
	return err;
}

/* n digits at s as a number, or -1 */
static int digits(const char *s, int n)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

/*
 * An RFC 3339 date-time (5.6: "2026-11-23T10:00:00Z", fractions, "+02:00") as unix
 * seconds; -1 if it is not exactly one.  Fields are checked, never normalised: a
 * 30 February is refused, not taken for 2 March.
 */
static int64_t rfc3339(const char *s)
{
	struct tm tm = { 0 }, chk;
	int off = 0, oh, om;
	const char *p = s + 19;
	int64_t t;

	if (strlen(s) < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') ||
	    s[13] != ':' || s[16] != ':')
		return -1;
	tm.tm_year = digits(s, 4) - 1900;
	tm.tm_mon = digits(s + 5, 2) - 1;
	tm.tm_mday = digits(s + 8, 2);
	tm.tm_hour = digits(s + 11, 2);
	tm.tm_min = digits(s + 14, 2);
	tm.tm_sec = digits(s + 17, 2);
	if (tm.tm_year < 70 || tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 ||
	    tm.tm_hour < 0 || tm.tm_hour > 23 || tm.tm_min < 0 || tm.tm_min > 59 ||
	    tm.tm_sec < 0 || tm.tm_sec > 59)
		return -1;
	if (*p == '.') {
		size_t n = strspn(p + 1, "0123456789");

		if (!n)
			return -1;
		p += 1 + n;
	}
	if ((*p == 'Z' || *p == 'z') && !p[1]) {
		off = 0;
	} else if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':' &&
		   (oh = digits(p + 1, 2)) >= 0 && oh <= 23 && (om = digits(p + 4, 2)) >= 0 &&
		   om <= 59) {
		off = (oh * 3600 + om * 60) * (*p == '-' ? -1 : 1);
	} else {
		return -1;
	}
	chk = tm;
	t = timegm(&chk);
	if (t < 0 || chk.tm_mday != tm.tm_mday || chk.tm_mon != tm.tm_mon)
		return -1;
	return t - off;
}

int fetch_parse_exec_output(const char *out, size_t len, struct secret **token,
			    int64_t *expires_at, char *why, size_t wl)
{
	json_t *root = json_loadb(out, len, JSON_REJECT_DUPLICATES, NULL);
	const json_t *ea;
	int err = -EPROTO;

	*token = NULL;
	*expires_at = 0;
	if (!json_is_object(root)) {
		snprintf(why, wl, "helper output is not a JSON object");
		goto out;
	}
	ea = json_object_get(root, "expires_at");
	if (json_is_integer(ea) && json_integer_value(ea) > 0)
		*expires_at = json_integer_value(ea);
	else if (json_is_string(ea))
		*expires_at = rfc3339(json_string_value(ea));
	if (ea && !json_is_null(ea) && *expires_at <= 0) {
		*expires_at = 0;
		snprintf(why, wl, "helper output: expires_at is neither unix seconds nor an "
			 "RFC 3339 time");
		goto out;
	}
	err = token_from_json(json_object_get(root, "token"), "token", token, why, wl);
out:
	json_wipe_free(root, "token");
	return err;
}
