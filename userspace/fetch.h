/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Copyright (c) 2026 The lanyard authors */
/*
 * Fetching credentials off the event loop.  A few worker threads take jobs
 * from a queue, run the source (a token endpoint over libcurl, a helper
 * process, a file), and hand the finished job back through an eventfd that
 * the loop watches; the done callback runs on the loop thread.  The workers
 * touch nothing but their job: the policy source it holds a reference to,
 * the inputs the loop prepared (a signed assertion, a subject token), and
 * the outputs.
 */
#ifndef LY_FETCH_H
#define LY_FETCH_H

#include <stdint.h>
#include <sys/types.h>

#include "loop.h"
#include "policy.h"
#include "secret.h"

#define FETCH_WHY_LEN		200	/* never holds a token or a secret */
#define FETCH_MAX_TOKEN		8192	/* bytes in a token we accept */
#define FETCH_MAX_RESPONSE	(64 * 1024)	/* a token endpoint's or helper's answer */

/* A static credential's file as last read: another inode, mtime or ctime is a change. */
struct fetch_file_id {
	dev_t dev;
	ino_t ino;		/* 0: never read */
	int64_t mtime_ns, ctime_ns;
};

struct fetch_job {
	/* in: set before fetcher_submit(), read-only for the worker */
	enum policy_cred_type type;
	struct policy_source *src;	/* a reference, put by fetch_job_free() */
	char workload[64];		/* exec: LANYARD_WORKLOAD */
	char route[128];		/* exec: LANYARD_ROUTE; messages */
	char audience[128];		/* oauth2, token_exchange, exec; "" if none */
	struct secret *assertion;	/* private_key_jwt client assertion, or NULL */
	struct secret *subject;		/* token_exchange: lanyard's JWT for the workload */
	struct fetch_file_id file;	/* static: in, as last read; out, as read now */
	uint32_t mark;			/* SO_MARK on a token endpoint socket */
	const int *cancel;		/* set (atomically) when the fetcher shuts down */

	/* out: set by the worker */
	int err;			/* 0 or -errno */
	int unchanged;			/* static: same file as before, token NULL */
	char why[FETCH_WHY_LEN];	/* err != 0: what went wrong */
	char detail[512];		/* exec: the first lines of the helper's stderr, for
					 * the daemon log only (never the 503, the audit) */
	struct secret *token;		/* the credential value */
	int64_t expires_at;		/* unix seconds; 0 when the source did not say */
	int64_t mtime;			/* static: the file's mtime (its age) */
	uint64_t took_us;		/* how long the worker spent */

	/* the submitter's */
	void *owner;			/* NULL once the owner is gone: the result is dropped */
	struct fetch_job *next;
};

struct fetcher;
typedef void (*fetch_done_cb)(struct fetch_job *j, void *arg);

/* Queue and eventfd; the threads start with fetcher_start(). NULL on error. */
struct fetcher *fetcher_new(struct loop *l, fetch_done_cb done, void *arg);
/*
 * Start the workers.  Call after the process dropped its capabilities:
 * capabilities are per thread, and a worker forks exec helpers.
 */
int fetcher_start(struct fetcher *f, int nthreads);
/* Stops the workers (a running fetch finishes first) and frees queued jobs. */
void fetcher_free(struct fetcher *f);

/* Hand a job to the workers; it comes back to the done callback. */
void fetcher_submit(struct fetcher *f, struct fetch_job *j);

struct fetch_job *fetch_job_new(enum policy_cred_type type, struct policy_source *src);
void fetch_job_free(struct fetch_job *j);

/* Run a job on the calling thread (what a worker does). */
void fetch_run(struct fetch_job *j);

/* Should a long wait in a source give up (lanyardd is stopping)? */
static inline int fetch_cancelled(const struct fetch_job *j)
{
	return j->cancel && __atomic_load_n(j->cancel, __ATOMIC_RELAXED);
}

/* --- the sources: run on a worker; fill j->token and j->expires_at, or j->err and j->why */
void source_http_fetch(struct fetch_job *j);	/* oauth2, token_exchange */
void source_exec_fetch(struct fetch_job *j);
void source_static_fetch(struct fetch_job *j);

/* set j->err = err and j->why from fmt; returns err */
int fetch_fail(struct fetch_job *j, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * A credential value as it may go into a header: 1..FETCH_MAX_TOKEN bytes of
 * visible ASCII (RFC 9110 field-vchar without obs-text) and inner spaces.
 * NULL, or why not (never quoting the value).
 */
const char *fetch_token_check(const char *s, size_t len);

/*
 * A token endpoint's JSON answer (RFC 6749 5.1; RFC 8693 2.2.1): the
 * access_token, and expires_in as an absolute time (0 if absent).  The
 * error code of an RFC 6749 5.2 answer, for a non-2xx status, goes into why.
 */
int fetch_parse_token_response(long status, const char *body, size_t len, int64_t now,
			       struct secret **token, int64_t *expires_at, char *why,
			       size_t wl);

/* An exec helper's stdout: {"token": "...", "expires_at": unix seconds or RFC 3339}. */
int fetch_parse_exec_output(const char *out, size_t len, struct secret **token,
			    int64_t *expires_at, char *why, size_t wl);

#endif /* LY_FETCH_H */
