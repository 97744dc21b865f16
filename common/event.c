/*
 * event.c: the epoll loop, its timer heap and signal watchers.
 */
#include <sys/types.h>
#include <sys/epoll.h>
#include <poll.h>
#include <sys/signalfd.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "event.h"
#include "log.h"

uint64_t
ev_monotonic_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

uint64_t
ev_monotonic_us(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((uint64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000);
}

/*
 * busy-poll for code that waits in poll(2) itself (appd's workers,
 * dbrepd's client library): poll <pfd> without sleeping until one is
 * ready or <end> (us of CLOCK_MONOTONIC) has passed.  Returns poll's
 * count, 0 when the time ran out, -1 on error.
 */
int
ev_poll_spin(struct pollfd *pfd, int np, uint64_t end)
{
	int	n;

	while ((n = poll(pfd, np, 0)) == 0 && ev_monotonic_us() < end)
		;
	return (n);
}

int
ev_init(struct ev_loop *loop)
{
	memset(loop, 0, sizeof(*loop));
	if ((loop->lowq = calloc(EV_LOWQ, sizeof(*loop->lowq))) == NULL)
		return (-1);
	if ((loop->epfd = epoll_create1(EPOLL_CLOEXEC)) == -1) {
		free(loop->lowq);
		loop->lowq = NULL;
		return (-1);
	}
	loop->now = ev_monotonic_ms();
	return (0);
}

void
ev_free(struct ev_loop *loop)
{
	if (loop->epfd != -1)
		close(loop->epfd);
	loop->epfd = -1;
	free(loop->heap);
	loop->heap = NULL;
	free(loop->lowq);
	loop->lowq = NULL;
	loop->nlowq = 0;
	loop->defer_head = NULL;
	loop->defer_tail = NULL;
	loop->nheap = loop->capheap = 0;
}

uint64_t
ev_now(struct ev_loop *loop)
{
	return (loop->now);
}

uint64_t
ev_time_update(struct ev_loop *loop)
{
	return (loop->now = ev_monotonic_ms());
}

void
ev_break(struct ev_loop *loop)
{
	loop->stop = 1;
}

int
ev_io_add(struct ev_loop *loop, struct ev_io *io, int fd, uint32_t events,
    ev_io_cb cb, void *arg)
{
	struct epoll_event	ev;

	io->fd = fd;
	io->events = events;
	io->cb = cb;
	io->arg = arg;
	memset(&ev, 0, sizeof(ev));
	ev.events = events;
	ev.data.ptr = io;
	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) == -1)
		return (-1);
	io->active = 1;
	return (0);
}

int
ev_io_mod(struct ev_loop *loop, struct ev_io *io, uint32_t events)
{
	struct epoll_event	ev;

	if (io->active && io->events == events)
		return (0);
	memset(&ev, 0, sizeof(ev));
	ev.events = events;
	ev.data.ptr = io;
	if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, io->fd, &ev) == -1)
		return (-1);
	io->events = events;
	return (0);
}

/* Stop watching; the caller closes the fd. */
void
ev_io_del(struct ev_loop *loop, struct ev_io *io)
{
	if (!io->active)
		return;
	(void)epoll_ctl(loop->epfd, EPOLL_CTL_DEL, io->fd, NULL);
	io->active = 0;
	if (io->queued) {
		loop->lowq[io->queued - 1].data.ptr = NULL;
		io->queued = 0;
	}
}

/* Timer heap: heap[0] is the earliest deadline; t->idx is position + 1. */

static void
heap_swap(struct ev_loop *loop, size_t a, size_t b)
{
	struct ev_timer	*t = loop->heap[a];

	loop->heap[a] = loop->heap[b];
	loop->heap[b] = t;
	loop->heap[a]->idx = a + 1;
	loop->heap[b]->idx = b + 1;
}

static void
heap_up(struct ev_loop *loop, size_t i)
{
	while (i > 0) {
		size_t	p = (i - 1) / 2;

		if (loop->heap[p]->when <= loop->heap[i]->when)
			break;
		heap_swap(loop, p, i);
		i = p;
	}
}

static void
heap_down(struct ev_loop *loop, size_t i)
{
	for (;;) {
		size_t	l = 2 * i + 1, r = l + 1, m = i;

		if (l < loop->nheap && loop->heap[l]->when < loop->heap[m]->when)
			m = l;
		if (r < loop->nheap && loop->heap[r]->when < loop->heap[m]->when)
			m = r;
		if (m == i)
			break;
		heap_swap(loop, i, m);
		i = m;
	}
}

void
ev_timer_init(struct ev_timer *t, ev_timer_cb cb, void *arg)
{
	t->when = 0;
	t->idx = 0;
	t->cb = cb;
	t->arg = arg;
}

int
ev_timer_pending(const struct ev_timer *t)
{
	return (t->idx != 0);
}

size_t
ev_timer_count(const struct ev_loop *loop)
{
	return (loop->nheap);
}

void
ev_timer_del(struct ev_loop *loop, struct ev_timer *t)
{
	size_t	i;

	if (t->idx == 0)
		return;
	i = t->idx - 1;
	t->idx = 0;
	if (i == --loop->nheap)
		return;
	loop->heap[i] = loop->heap[loop->nheap];
	loop->heap[i]->idx = i + 1;
	heap_down(loop, i);
	heap_up(loop, i);
}

/* Arm (or move) <t> to fire at the absolute time <when>. */
void
ev_timer_at(struct ev_loop *loop, struct ev_timer *t, uint64_t when)
{
	if (t->idx != 0) {
		size_t	i = t->idx - 1;
		uint64_t old = t->when;

		t->when = when;
		if (when < old)
			heap_up(loop, i);
		else
			heap_down(loop, i);
		return;
	}
	if (loop->nheap == loop->capheap) {
		size_t		  ncap = loop->capheap ? loop->capheap * 2 : 64;
		struct ev_timer	**h;

		if ((h = reallocarray(loop->heap, ncap, sizeof(*h))) == NULL)
			fatal("%s", __func__);
		loop->heap = h;
		loop->capheap = ncap;
	}
	t->when = when;
	loop->heap[loop->nheap] = t;
	t->idx = ++loop->nheap;
	heap_up(loop, loop->nheap - 1);
}

/* Arm (or move) <t> to fire <ms> milliseconds from the loop's now. */
void
ev_timer_add(struct ev_loop *loop, struct ev_timer *t, uint64_t ms)
{
	ev_timer_at(loop, t, loop->now + ms);
}

/*
 * Fire what is due, at most as many timers as were armed on entry: a
 * callback that re-arms its timer for now may fire again in this pass
 * (as often as that bound allows), but cannot keep the loop here for
 * ever, and I/O is polled between passes.
 */
static void
run_timers(struct ev_loop *loop)
{
	struct ev_timer	*t;
	size_t		 n = loop->nheap;

	while (n-- > 0 && loop->nheap > 0 &&
	    loop->heap[0]->when <= loop->now) {
		t = loop->heap[0];
		ev_timer_del(loop, t);
		t->cb(t);
	}
}

void
ev_defer_init(struct ev_defer *d, ev_defer_cb cb, void *arg)
{
	memset(d, 0, sizeof(*d));
	d->cb = cb;
	d->arg = arg;
}

/* Call d->cb once after this batch's events; queued twice, it runs once. */
void
ev_defer(struct ev_loop *loop, struct ev_defer *d)
{
	if (d->prevp != NULL)
		return;
	if (loop->defer_tail == NULL)
		loop->defer_tail = &loop->defer_head;
	d->next = NULL;
	d->prevp = loop->defer_tail;
	*loop->defer_tail = d;
	loop->defer_tail = &d->next;
}

void
ev_defer_cancel(struct ev_loop *loop, struct ev_defer *d)
{
	if (d->prevp == NULL)
		return;
	*d->prevp = d->next;
	if (d->next != NULL)
		d->next->prevp = d->prevp;
	else
		loop->defer_tail = d->prevp;
	d->prevp = NULL;
	d->next = NULL;
}

/* The deferred calls, in order; those they queue run in this pass too. */
static void
defer_run(struct ev_loop *loop)
{
	struct ev_defer	*d;

	while ((d = loop->defer_head) != NULL) {
		ev_defer_cancel(loop, d);
		d->cb(d);
	}
}

/* Keep a low watcher's event for its turn; 0 when the queue is full. */
static int
low_queue(struct ev_loop *loop, struct ev_io *io, uint32_t events)
{
	if (io->queued) {
		loop->lowq[io->queued - 1].events |= events;
		return (1);
	}
	if (loop->nlowq == EV_LOWQ)
		return (0);
	loop->lowq[loop->nlowq].events = events;
	loop->lowq[loop->nlowq].data.ptr = io;
	io->queued = ++loop->nlowq;
	return (1);
}

/* Run EV_LOWBUDGET low watchers, oldest first; keep the others. */
static void
low_run(struct ev_loop *loop)
{
	struct ev_io	*io;
	int		 i, j, budget = EV_LOWBUDGET;

	for (i = 0; i < loop->nlowq && budget > 0; i++) {
		if ((io = loop->lowq[i].data.ptr) == NULL)
			continue;	/* deleted while it waited */
		loop->lowq[i].data.ptr = NULL;
		io->queued = 0;
		budget--;
		io->cb(io, loop->lowq[i].events);
	}
	/* the rest, less what the callbacks deleted, to the front */
	for (j = 0; i < loop->nlowq; i++) {
		if ((io = loop->lowq[i].data.ptr) == NULL)
			continue;
		loop->lowq[j] = loop->lowq[i];
		io->queued = ++j;
	}
	loop->nlowq = j;
}

/*
 * Run until ev_break().  I/O callbacks may delete any watcher or timer,
 * including other ones of the same batch: a deleted watcher's pending
 * event is skipped because the owner clears io->active (see ev_io_del)
 * and, when it frees the object, must not do so before the batch ends:
 * owners defer frees to the after hook or mark objects dead.
 */
int
ev_run(struct ev_loop *loop)
{
	struct epoll_event	 evs[EV_MAXEVENTS];
	int			 n, i, timeout;

	loop->stop = 0;
	while (!loop->stop) {
		/* queued by a timer or a low watcher: run without sleeping */
		timeout = loop->nlowq > 0 || loop->defer_head != NULL ? 0 : -1;
		if (timeout != 0 && loop->nheap > 0) {
			uint64_t	w = loop->heap[0]->when;

			timeout = w <= loop->now ? 0 :
			    (w - loop->now > 3600000 ? 3600000 :
			    (int)(w - loop->now));
		}
		if (loop->spin_until != 0 && timeout != 0) {
			n = epoll_wait(loop->epfd, evs, EV_MAXEVENTS, 0);
			if (n == 0) {
				uint64_t	us = ev_monotonic_us();

				/* a timer due meanwhile gets timeout 0 */
				loop->now = us / 1000;
				if (us >= loop->spin_until)
					loop->spin_until = 0;
				continue;
			}
		} else
			n = epoll_wait(loop->epfd, evs, EV_MAXEVENTS, timeout);
		if (n == -1 && errno != EINTR)
			return (-1);
		loop->now = ev_monotonic_ms();
		loop->iterations++;
		for (i = 0; i < n; i++) {
			struct ev_io	*io = evs[i].data.ptr;

			if (!io->active)
				continue;
			if (io->low && low_queue(loop, io, evs[i].events))
				continue;
			io->cb(io, evs[i].events);
		}
		if (loop->defer_head != NULL)
			defer_run(loop);
		if (loop->nlowq > 0)
			low_run(loop);
		run_timers(loop);
		if (loop->after != NULL)
			loop->after(loop, loop->after_arg);
		/* the window opens once the batch's answers are out */
		if (n > 0 && loop->busy_us != 0)
			loop->spin_until = ev_monotonic_us() + loop->busy_us;
	}
	return (0);
}

static void
signal_read(struct ev_io *io, uint32_t events __unused)
{
	struct ev_signal		*s = io->arg;
	struct signalfd_siginfo		 si;
	ssize_t				 r;

	while ((r = read(io->fd, &si, sizeof(si))) == sizeof(si))
		s->cb(s, si.ssi_signo, si.ssi_pid);
}

/*
 * Block <mask> and deliver those signals to <cb> from the loop.  The mask
 * stays blocked: a process that execs must restore its mask first.
 */
int
ev_signal_add(struct ev_loop *loop, struct ev_signal *s, const sigset_t *mask,
    void (*cb)(struct ev_signal *, int, pid_t), void *arg)
{
	int	fd;

	if (sigprocmask(SIG_BLOCK, mask, NULL) == -1)
		return (-1);
	if ((fd = signalfd(-1, mask, SFD_NONBLOCK | SFD_CLOEXEC)) == -1)
		return (-1);
	s->cb = cb;
	s->arg = arg;
	if (ev_io_add(loop, &s->io, fd, EPOLLIN, signal_read, s) == -1) {
		close(fd);
		return (-1);
	}
	return (0);
}

void
ev_signal_del(struct ev_loop *loop, struct ev_signal *s)
{
	ev_io_del(loop, &s->io);
	close(s->io.fd);
	s->io.fd = -1;
}
