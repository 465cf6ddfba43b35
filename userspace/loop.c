// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Copyright (c) 2026 The lanyard authors */
/* The epoll event loop: fd watchers, periodic timers, end-of-turn hooks. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "loop.h"

#define LOOP_MAX_EVENTS	256
#define LOOP_MAX_TIMERS	16
#define LOOP_MAX_HOOKS	8

struct loop_timer {
	uint64_t period_ms;
	uint64_t next_ms;
	loop_timer_cb cb;
	void *arg;
};

struct loop_hook {
	loop_hook_cb cb;
	void *arg;
};

struct loop {
	int epfd;
	int stop;
	uint64_t now_ms;
	int64_t wall_s;
	struct loop_timer timers[LOOP_MAX_TIMERS];
	int ntimers;
	struct loop_hook hooks[LOOP_MAX_HOOKS];
	int nhooks;
	/* events of the current turn, so loop_del can cancel pending ones */
	struct epoll_event ev[LOOP_MAX_EVENTS];
	int nev;
};

uint64_t loop_clock_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static void loop_clock(struct loop *l)
{
	struct timespec ts;

	l->now_ms = loop_clock_us() / 1000;
	clock_gettime(CLOCK_REALTIME, &ts);
	l->wall_s = ts.tv_sec;
}

struct loop *loop_new(void)
{
	struct loop *l = calloc(1, sizeof(*l));

	if (!l)
		return NULL;
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0) {
		free(l);
		return NULL;
	}
	loop_clock(l);
	return l;
}

void loop_free(struct loop *l)
{
	if (!l)
		return;
	close(l->epfd);
	free(l);
}

int loop_add(struct loop *l, struct loop_io *io, int fd, uint32_t events, loop_io_cb cb,
	     void *arg)
{
	struct epoll_event ev = { .events = events, .data.ptr = io };

	io->fd = fd;
	io->events = events;
	io->cb = cb;
	io->arg = arg;
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		int err = -errno;

		io->fd = -1;
		return err;
	}
	return 0;
}

int loop_mod(struct loop *l, struct loop_io *io, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = io };

	if (io->fd < 0 || io->events == events)
		return 0;
	if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, io->fd, &ev) < 0)
		return -errno;
	io->events = events;
	return 0;
}

void loop_del(struct loop *l, struct loop_io *io)
{
	if (io->fd < 0)
		return;
	epoll_ctl(l->epfd, EPOLL_CTL_DEL, io->fd, NULL);
	io->fd = -1;
	/* cancel events of this turn that point at io */
	for (int i = 0; i < l->nev; i++)
		if (l->ev[i].data.ptr == io)
			l->ev[i].data.ptr = NULL;
}

int loop_every(struct loop *l, uint64_t period_ms, loop_timer_cb cb, void *arg)
{
	struct loop_timer *t;

	if (l->ntimers == LOOP_MAX_TIMERS)
		return -ENOSPC;
	t = &l->timers[l->ntimers++];
	t->period_ms = period_ms;
	t->next_ms = l->now_ms + period_ms;
	t->cb = cb;
	t->arg = arg;
	return 0;
}

int loop_on_turn_end(struct loop *l, loop_hook_cb cb, void *arg)
{
	if (l->nhooks == LOOP_MAX_HOOKS)
		return -ENOSPC;
	l->hooks[l->nhooks].cb = cb;
	l->hooks[l->nhooks].arg = arg;
	l->nhooks++;
	return 0;
}

/* milliseconds until the next timer is due, for epoll_wait */
static int loop_timeout(const struct loop *l)
{
	uint64_t next = UINT64_MAX;

	for (int i = 0; i < l->ntimers; i++)
		if (l->timers[i].next_ms < next)
			next = l->timers[i].next_ms;
	if (next == UINT64_MAX)
		return -1;
	return next <= l->now_ms ? 0 : (int)(next - l->now_ms);
}

static void loop_run_timers(struct loop *l)
{
	for (int i = 0; i < l->ntimers; i++) {
		struct loop_timer *t = &l->timers[i];

		if (t->next_ms > l->now_ms)
			continue;
		t->next_ms = l->now_ms + t->period_ms;
		t->cb(l, t->arg);
	}
}

int loop_run(struct loop *l)
{
	while (!l->stop) {
		int n = epoll_wait(l->epfd, l->ev, LOOP_MAX_EVENTS, loop_timeout(l));

		if (n < 0 && errno != EINTR)
			return -errno;
		loop_clock(l);
		l->nev = n < 0 ? 0 : n;
		for (int i = 0; i < l->nev; i++) {
			struct loop_io *io = l->ev[i].data.ptr;

			if (io && io->fd >= 0)	/* NULL: cancelled by loop_del this turn */
				io->cb(l, io, l->ev[i].events);
		}
		l->nev = 0;
		loop_run_timers(l);
		for (int i = 0; i < l->nhooks; i++)
			l->hooks[i].cb(l, l->hooks[i].arg);
	}
	return 0;
}

void loop_stop(struct loop *l)
{
	l->stop = 1;
}

uint64_t loop_now_ms(const struct loop *l)
{
	return l->now_ms;
}

int64_t loop_wall_s(const struct loop *l)
{
	return l->wall_s;
}
