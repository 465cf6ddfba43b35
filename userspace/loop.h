/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Copyright (c) 2026 The lanyard authors */
/*
 * A small epoll event loop in the spirit of Redis ae.c: fd watchers embedded
 * in their owners, periodic timers, and an end-of-turn hook (audit flush,
 * deferred frees).  Single-threaded; nothing here allocates per event.
 */
#ifndef LY_LOOP_H
#define LY_LOOP_H

#include <stdint.h>

struct loop;
struct loop_io;

typedef void (*loop_io_cb)(struct loop *l, struct loop_io *io, uint32_t events);
typedef void (*loop_timer_cb)(struct loop *l, void *arg);
typedef void (*loop_hook_cb)(struct loop *l, void *arg);

/* Embedded in the object that owns fd; io->fd < 0 while not registered. */
struct loop_io {
	int fd;
	uint32_t events;	/* EPOLLIN | EPOLLOUT currently asked for */
	loop_io_cb cb;
	void *arg;
};

struct loop *loop_new(void);
void loop_free(struct loop *l);

/* Register fd with events (EPOLLIN/EPOLLOUT); 0 or -errno. */
int loop_add(struct loop *l, struct loop_io *io, int fd, uint32_t events, loop_io_cb cb,
	     void *arg);
/* Change the events asked for; a no-op when unchanged.  0 or -errno. */
int loop_mod(struct loop *l, struct loop_io *io, uint32_t events);
/*
 * Unregister (does not close fd).  Events already fetched for io in this
 * turn are not delivered: the owner may be freed after the turn's end hook.
 */
void loop_del(struct loop *l, struct loop_io *io);

/* Call cb every period_ms (first call after one period).  0 or -errno. */
int loop_every(struct loop *l, uint64_t period_ms, loop_timer_cb cb, void *arg);
/* Call cb at the end of every turn (after all events of the turn). */
int loop_on_turn_end(struct loop *l, loop_hook_cb cb, void *arg);

/* Run until loop_stop(). Returns 0, or -errno if epoll_wait fails. */
int loop_run(struct loop *l);
void loop_stop(struct loop *l);

/* Monotonic milliseconds, cached at the start of the turn. */
uint64_t loop_now_ms(const struct loop *l);
/* The monotonic clock now, in microseconds (read, not the turn's cached time): any thread. */
uint64_t loop_clock_us(void);
/* Wall-clock seconds, cached at the start of the turn. */
int64_t loop_wall_s(const struct loop *l);

#endif /* LY_LOOP_H */
