/*
 * test_event.c: the epoll loop, its timer heap, I/O and signal watchers.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "event.h"

#define TOLERANCE_MS	150	/* how late a timer may fire on a busy box */

static struct ev_loop	loop;

static void
loop_init(void)
{
	cr_assert_eq(ev_init(&loop), 0);
}

static void
loop_fini(void)
{
	ev_free(&loop);
}

/* The heap property, and every timer knows where it is. */
static void
heap_check(const struct ev_loop *l)
{
	size_t	i;

	cr_assert_leq(l->nheap, l->capheap);
	for (i = 0; i < l->nheap; i++) {
		cr_assert_eq(l->heap[i]->idx, i + 1, "heap[%zu] has idx %zu",
		    i, l->heap[i]->idx);
		if (i > 0)
			cr_assert_leq(l->heap[(i - 1) / 2]->when,
			    l->heap[i]->when, "heap order at %zu", i);
	}
}

/* A small deterministic generator, so that failures reproduce. */
static uint64_t	rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t
rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (rng_state);
}

/* What fired, in order. */
struct fired {
	int		ids[4096];
	uint64_t	whens[4096];
	uint64_t	at[4096];	/* ev_monotonic_ms() when it fired */
	int		n;
};

static struct fired	fired;

struct tmr {
	struct ev_timer	 t;
	int		 id;
};

static void
record_cb(struct ev_timer *t)
{
	struct tmr	*x = t->arg;

	cr_assert_lt(fired.n, (int)nitems(fired.ids));
	cr_assert(!ev_timer_pending(t), "pending in its own callback");
	cr_assert_leq(t->when, ev_now(&loop), "fired early");
	fired.ids[fired.n] = x->id;
	fired.whens[fired.n] = t->when;
	fired.at[fired.n] = ev_monotonic_ms();
	fired.n++;
}

static void
break_after(struct ev_loop *l, void *arg)
{
	int	*n = arg;

	if (n == NULL || --*n <= 0)
		ev_break(l);
}

/* Run one iteration: everything that is due fires. */
static void
run_once(void)
{
	int	n = 1;

	loop.after = break_after;
	loop.after_arg = &n;
	cr_assert_eq(ev_run(&loop), 0);
	loop.after = NULL;
}

static void
tmr_init(struct tmr *x, int n)
{
	int	i;

	for (i = 0; i < n; i++) {
		ev_timer_init(&x[i].t, record_cb, &x[i]);
		x[i].id = i;
	}
}

Test(event, init_and_free)
{
	struct ev_loop	l;

	cr_assert_eq(ev_init(&l), 0);
	cr_assert_geq(l.epfd, 0);
	cr_assert(fcntl(l.epfd, F_GETFD) & FD_CLOEXEC);
	cr_assert_eq(ev_timer_count(&l), 0);
	cr_assert_gt(ev_now(&l), 0);
	cr_assert_leq(ev_now(&l), ev_monotonic_ms());
	ev_free(&l);
	cr_assert_eq(l.epfd, -1);
	ev_free(&l);		/* twice is harmless */
}

Test(event, time_update)
{
	struct ev_loop	l;
	uint64_t	t0;

	cr_assert_eq(ev_init(&l), 0);
	t0 = ev_now(&l);
	usleep(20000);
	cr_assert_eq(ev_now(&l), t0, "now moves only when updated");
	cr_assert_geq(ev_time_update(&l), t0 + 20);
	cr_assert_geq(ev_now(&l), t0 + 20);
	ev_free(&l);
}

/* Timers armed in the past fire in one iteration, earliest first. */
Test(event, timer_order, .init = loop_init, .fini = loop_fini)
{
	static const uint64_t	ago[] = { 50, 10, 30, 20, 40, 0, 60, 5, 45 };
	struct tmr		x[nitems(ago)];
	uint64_t		now = ev_now(&loop);
	size_t			i;

	tmr_init(x, nitems(x));
	for (i = 0; i < nitems(ago); i++) {
		cr_assert(!ev_timer_pending(&x[i].t));
		ev_timer_at(&loop, &x[i].t, now - ago[i]);
		cr_assert(ev_timer_pending(&x[i].t));
		cr_assert_eq(ev_timer_count(&loop), i + 1);
		heap_check(&loop);
	}
	run_once();
	cr_assert_eq(fired.n, (int)nitems(ago));
	for (i = 1; i < nitems(ago); i++)
		cr_assert_gt(ago[fired.ids[i - 1]], ago[fired.ids[i]],
		    "%zu fired out of order", i);
	cr_assert_eq(ev_timer_count(&loop), 0);
	for (i = 0; i < nitems(ago); i++)
		cr_assert(!ev_timer_pending(&x[i].t));
}

/* Arming an armed timer moves it; it stays in the heap once. */
Test(event, timer_rearm_and_move, .init = loop_init, .fini = loop_fini)
{
	struct tmr	x[5];
	uint64_t	now = ev_now(&loop);
	int		i;

	tmr_init(x, 5);
	for (i = 0; i < 5; i++)
		ev_timer_at(&loop, &x[i].t, now - 100 + 10 * i);
	/* 0 1 2 3 4 */
	ev_timer_at(&loop, &x[4].t, now - 200);		/* last to first */
	heap_check(&loop);
	ev_timer_at(&loop, &x[0].t, now - 1);		/* first to last */
	heap_check(&loop);
	ev_timer_at(&loop, &x[2].t, now - 75);		/* a little later */
	heap_check(&loop);
	ev_timer_at(&loop, &x[3].t, now - 95);		/* a little earlier */
	heap_check(&loop);
	ev_timer_at(&loop, &x[1].t, now - 90);		/* to where it is */
	heap_check(&loop);
	cr_assert_eq(ev_timer_count(&loop), 5);
	/* 4 (-200), 3 (-95), 1 (-90), 2 (-75), 0 (-1) */
	run_once();
	cr_assert_eq(fired.n, 5);
	cr_assert_eq(fired.ids[0], 4);
	cr_assert_eq(fired.ids[1], 3);
	cr_assert_eq(fired.ids[2], 1);
	cr_assert_eq(fired.ids[3], 2);
	cr_assert_eq(fired.ids[4], 0);
}

/* Moving a timer into the future keeps it from firing now. */
Test(event, timer_move_later, .init = loop_init, .fini = loop_fini)
{
	struct tmr	x[3];
	uint64_t	now = ev_now(&loop);

	tmr_init(x, 3);
	ev_timer_at(&loop, &x[0].t, now - 10);
	ev_timer_at(&loop, &x[1].t, now - 5);
	ev_timer_at(&loop, &x[2].t, now - 1);
	ev_timer_at(&loop, &x[0].t, now + 3600 * 1000);
	ev_timer_add(&loop, &x[2].t, 3600 * 1000);
	heap_check(&loop);
	run_once();
	cr_assert_eq(fired.n, 1);
	cr_assert_eq(fired.ids[0], 1);
	cr_assert(ev_timer_pending(&x[0].t));
	cr_assert(ev_timer_pending(&x[2].t));
	cr_assert_eq(ev_timer_count(&loop), 2);
}

Test(event, timer_delete, .init = loop_init, .fini = loop_fini)
{
	struct tmr	x[100];
	uint64_t	now = ev_now(&loop);
	int		i, n = 0;

	tmr_init(x, 100);
	ev_timer_del(&loop, &x[0].t);		/* never armed: harmless */
	cr_assert_eq(ev_timer_count(&loop), 0);
	for (i = 0; i < 100; i++)
		ev_timer_at(&loop, &x[i].t, now - 1000 + (i * 37) % 100);
	/* from the middle, the end and the root */
	for (i = 0; i < 100; i += 3) {
		ev_timer_del(&loop, &x[i].t);
		cr_assert(!ev_timer_pending(&x[i].t));
		heap_check(&loop);
	}
	ev_timer_del(&loop, loop.heap[loop.nheap - 1]);
	heap_check(&loop);
	ev_timer_del(&loop, loop.heap[0]);
	heap_check(&loop);
	ev_timer_del(&loop, &x[3].t);		/* twice: harmless */
	ev_timer_del(&loop, &x[3].t);
	heap_check(&loop);
	for (i = 0; i < 100; i++)
		n += ev_timer_pending(&x[i].t);
	cr_assert_eq(ev_timer_count(&loop), (size_t)n);
	run_once();
	cr_assert_eq(fired.n, n);
	for (i = 0; i < fired.n; i++) {
		cr_assert_neq(fired.ids[i] % 3, 0, "deleted timer %d fired",
		    fired.ids[i]);
		if (i > 0)
			cr_assert_leq(fired.whens[i - 1], fired.whens[i]);
	}
	/* a deleted timer can be armed again */
	ev_timer_at(&loop, &x[0].t, now - 1);
	run_once();
	cr_assert_eq(fired.ids[fired.n - 1], 0);
}

/*
 * Many timers armed, moved and deleted in random order, against a model:
 * after each step the heap holds what the model holds, and taking the
 * root repeatedly gives the model's deadlines sorted.
 */
#define NRAND	600

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t	x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x < y ? -1 : x > y);
}

Test(event, timer_random_model, .init = loop_init, .fini = loop_fini)
{
	static struct tmr	x[NRAND];
	static uint64_t		model[NRAND], sorted[NRAND];
	static int		armed[NRAND];
	size_t			narmed = 0, i, k;
	int			round;

	tmr_init(x, NRAND);
	for (round = 0; round < 3; round++) {
		int	step;

		for (step = 0; step < 20000; step++) {
			uint64_t	r = rng();

			k = r % NRAND;
			switch ((r >> 32) % 4) {
			case 0:
			case 1:
			case 2:
				/* narrow range: many equal deadlines */
				model[k] = (r >> 40) % (round == 0 ? 50 :
				    1000000);
				if (!armed[k])
					narmed++;
				armed[k] = 1;
				ev_timer_at(&loop, &x[k].t, model[k]);
				break;
			default:
				if (armed[k])
					narmed--;
				armed[k] = 0;
				ev_timer_del(&loop, &x[k].t);
				break;
			}
			cr_assert_eq(ev_timer_pending(&x[k].t), armed[k]);
			cr_assert_eq(ev_timer_count(&loop), narmed);
			if (step % 101 == 0)
				heap_check(&loop);
		}
		heap_check(&loop);
		for (i = 0; i < NRAND; i++) {
			cr_assert_eq(ev_timer_pending(&x[i].t), armed[i]);
			if (armed[i])
				cr_assert_eq(x[i].t.when, model[i]);
		}
		/* drain by the root, against the sorted model */
		for (i = k = 0; i < NRAND; i++)
			if (armed[i])
				sorted[k++] = model[i];
		qsort(sorted, k, sizeof(sorted[0]), cmp_u64);
		for (i = 0; i < k; i++) {
			struct ev_timer	*t = loop.heap[0];

			cr_assert_eq(t->when, sorted[i], "pop %zu", i);
			ev_timer_del(&loop, t);
			armed[((struct tmr *)t->arg)->id] = 0;
			if (i % 17 == 0)
				heap_check(&loop);
		}
		cr_assert_eq(ev_timer_count(&loop), 0);
		narmed = 0;
	}
}

/* The same through ev_run: every due timer fires once, in order. */
Test(event, timer_random_run, .init = loop_init, .fini = loop_fini)
{
	static struct tmr	x[2000];
	static int		seen[2000];
	uint64_t		now = ev_now(&loop), span;
	int			i, n = 0;

	span = now < 100000 ? now : 100000;
	tmr_init(x, 2000);
	for (i = 0; i < 2000; i++) {
		ev_timer_at(&loop, &x[i].t, now - rng() % span);
		if (rng() % 5 == 0)
			ev_timer_at(&loop, &x[i].t, now - rng() % span);
		if (rng() % 7 == 0)
			ev_timer_del(&loop, &x[i].t);
		n += ev_timer_pending(&x[i].t);
	}
	run_once();
	cr_assert_eq(fired.n, n);
	for (i = 0; i < fired.n; i++) {
		cr_assert_eq(seen[fired.ids[i]]++, 0, "fired twice");
		if (i > 0)
			cr_assert_leq(fired.whens[i - 1], fired.whens[i],
			    "out of order at %d", i);
	}
	cr_assert_eq(ev_timer_count(&loop), 0);
}

/* Timers with a real clock: on time, in order, never early. */
Test(event, timer_real_clock, .init = loop_init, .fini = loop_fini,
    .timeout = 10)
{
	static const int	delay[] = { 120, 30, 90, 60, 1 };
	struct tmr		x[nitems(delay)];
	uint64_t		start;
	size_t			i;
	int			left = 0;

	tmr_init(x, nitems(x));
	start = ev_time_update(&loop);
	for (i = 0; i < nitems(delay); i++)
		ev_timer_add(&loop, &x[i].t, delay[i]);
	loop.after = NULL;
	while (fired.n < (int)nitems(delay)) {
		left = 1;
		loop.after = break_after;
		loop.after_arg = &left;
		cr_assert_eq(ev_run(&loop), 0);
	}
	cr_assert_eq(fired.n, (int)nitems(delay));
	for (i = 0; i < nitems(delay); i++) {
		int	id = fired.ids[i];

		if (i > 0)
			cr_assert_gt(delay[id], delay[fired.ids[i - 1]]);
		cr_assert_geq(fired.at[i], start + delay[id],
		    "timer %d fired %llu ms early", id, (unsigned long long)
		    (start + delay[id] - fired.at[i]));
		cr_assert_leq(fired.at[i], start + delay[id] + TOLERANCE_MS,
		    "timer %d fired %llu ms late", id, (unsigned long long)
		    (fired.at[i] - start - delay[id]));
	}
}

/* A periodic timer that re-arms itself from its callback. */
static int	ticks;

static void
tick_cb(struct ev_timer *t)
{
	ticks++;
	if (ticks < 5)
		ev_timer_add(&loop, t, 20);
	else
		ev_break(&loop);
}

Test(event, timer_periodic, .init = loop_init, .fini = loop_fini,
    .timeout = 10)
{
	struct ev_timer	t;
	uint64_t	start, took;

	ev_timer_init(&t, tick_cb, NULL);
	start = ev_time_update(&loop);
	ev_timer_add(&loop, &t, 20);
	cr_assert_eq(ev_run(&loop), 0);
	took = ev_monotonic_ms() - start;
	cr_assert_eq(ticks, 5);
	cr_assert_geq(took, 100);
	cr_assert_leq(took, 100 + TOLERANCE_MS);
	cr_assert(!ev_timer_pending(&t));
}

/*
 * A callback that re-arms its timer for now must not keep the loop in
 * its timer run: it fires again on the next iteration, after the I/O.
 */
static int	zero_fires;

static void
zero_cb(struct ev_timer *t)
{
	zero_fires++;
	ev_timer_add(&loop, t, 0);
}

Test(event, timer_rearm_zero_no_spin, .init = loop_init,
    .fini = loop_fini, .timeout = 10)
{
	struct ev_timer	t;
	int		n = 10;

	ev_timer_init(&t, zero_cb, NULL);
	ev_timer_add(&loop, &t, 0);
	loop.after = break_after;
	loop.after_arg = &n;
	cr_assert_eq(ev_run(&loop), 0);
	cr_assert_eq(zero_fires, 10, "fired %d times in 10 iterations",
	    zero_fires);
	cr_assert(ev_timer_pending(&t));
}

/* A callback may delete a timer that is due in the same run. */
static struct tmr	victims[3];

static void
killer_cb(struct ev_timer *t)
{
	record_cb(t);
	ev_timer_del(&loop, &victims[1].t);
	ev_timer_add(&loop, &victims[2].t, 3600 * 1000);
}

Test(event, timer_delete_from_callback, .init = loop_init,
    .fini = loop_fini)
{
	uint64_t	now = ev_now(&loop);

	tmr_init(victims, 3);
	victims[0].t.cb = killer_cb;
	ev_timer_at(&loop, &victims[0].t, now - 30);
	ev_timer_at(&loop, &victims[1].t, now - 20);
	ev_timer_at(&loop, &victims[2].t, now - 10);
	run_once();
	cr_assert_eq(fired.n, 1);
	cr_assert_eq(fired.ids[0], 0);
	cr_assert(!ev_timer_pending(&victims[1].t));
	cr_assert(ev_timer_pending(&victims[2].t));
	heap_check(&loop);
}

/* A deadline hours away does not keep a nearer one from firing. */
Test(event, timer_far_future, .init = loop_init, .fini = loop_fini,
    .timeout = 10)
{
	struct tmr	x[2];
	int		n = 1;

	tmr_init(x, 2);
	ev_timer_add(&loop, &x[0].t, UINT64_C(30) * 24 * 3600 * 1000);
	ev_timer_add(&loop, &x[1].t, 10);
	while (fired.n == 0) {
		n = 1;
		loop.after = break_after;
		loop.after_arg = &n;
		cr_assert_eq(ev_run(&loop), 0);
	}
	cr_assert_eq(fired.ids[0], 1);
	cr_assert(ev_timer_pending(&x[0].t));
}

/* I/O watchers */

struct watch {
	struct ev_io	io;
	int		calls;
	uint32_t	last;
	int		drain;		/* read what is there */
	int		stop;		/* ev_break when called */
	struct watch	*victim;	/* ev_io_del it when called */
	int		bytes;
	uint64_t	turn;		/* loop.iterations at the last call */
	int		order;		/* its place among the calls */
	int		hangup;	/* close this descriptor when called */
};

static int	calls_so_far;

static void
watch_cb(struct ev_io *io, uint32_t events)
{
	struct watch	*w = io->arg;
	char		 buf[256];
	ssize_t		 r;

	cr_assert_eq(&w->io, io);
	w->calls++;
	w->last = events;
	w->turn = loop.iterations;
	w->order = ++calls_so_far;
	if (w->hangup > 0) {
		close(w->hangup);
		w->hangup = -1;
	}
	if (w->drain)
		while ((r = read(io->fd, buf, sizeof(buf))) > 0)
			w->bytes += r;
	if (w->victim != NULL)
		ev_io_del(&loop, &w->victim->io);
	if (w->stop)
		ev_break(&loop);
}

static void
nonblock(int fd)
{
	cr_assert_neq(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK), -1);
}

static int	wfd = -1;

static void
write_cb(struct ev_timer *t)
{
	cr_assert_eq(write(wfd, "hello", 5), 5);
}

static void
break_cb(struct ev_timer *t)
{
	ev_break(&loop);
}

Test(event, io_pipe_readable, .init = loop_init, .fini = loop_fini,
    .timeout = 10)
{
	struct watch	w = { .drain = 1, .stop = 1 };
	struct ev_timer	t;
	uint64_t	start;
	int		p[2];

	cr_assert_eq(pipe(p), 0);
	nonblock(p[0]);
	wfd = p[1];
	cr_assert_eq(ev_io_add(&loop, &w.io, p[0], EPOLLIN, watch_cb, &w), 0);
	cr_assert(w.io.active);
	cr_assert_eq(w.io.fd, p[0]);
	ev_timer_init(&t, write_cb, NULL);
	start = ev_time_update(&loop);
	ev_timer_add(&loop, &t, 30);
	cr_assert_eq(ev_run(&loop), 0);
	cr_assert_eq(w.calls, 1);
	cr_assert(w.last & EPOLLIN);
	cr_assert_eq(w.bytes, 5);
	cr_assert_geq(ev_monotonic_ms(), start + 30);

	/* end of file: the watcher hears of it */
	close(p[1]);
	cr_assert_eq(ev_run(&loop), 0);
	cr_assert_eq(w.calls, 2);
	cr_assert(w.last & (EPOLLIN | EPOLLHUP));
	ev_io_del(&loop, &w.io);
	cr_assert(!w.io.active);
	close(p[0]);
}

/* Edge-triggered: one call per arrival, whether or not it was read. */
Test(event, io_edge_triggered, .init = loop_init, .fini = loop_fini,
    .timeout = 10)
{
	struct watch	w = { .stop = 0 };
	struct ev_timer	t;
	int		sv[2], i, n;

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	nonblock(sv[0]);
	cr_assert_eq(ev_io_add(&loop, &w.io, sv[0], EPOLLIN | EPOLLET,
	    watch_cb, &w), 0);
	cr_assert_eq(write(sv[1], "a", 1), 1);
	for (i = 0; i < 3; i++) {
		n = 1;
		loop.after = break_after;
		loop.after_arg = &n;
		ev_timer_init(&t, break_cb, NULL);
		if (i > 0)
			ev_timer_add(&loop, &t, 20);
		cr_assert_eq(ev_run(&loop), 0);
		ev_timer_del(&loop, &t);
	}
	cr_assert_eq(w.calls, 1, "level-triggered? %d calls", w.calls);
	cr_assert_eq(write(sv[1], "b", 1), 1);
	n = 1;
	cr_assert_eq(ev_run(&loop), 0);
	cr_assert_eq(w.calls, 2);
	ev_io_del(&loop, &w.io);
	close(sv[0]);
	close(sv[1]);
}

Test(event, io_mod_and_del, .init = loop_init, .fini = loop_fini,
    .timeout = 10)
{
	struct watch	w = { .stop = 1 };
	struct ev_timer	t;
	int		sv[2];

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	nonblock(sv[0]);
	/* nothing to read: only the timer ends the run */
	cr_assert_eq(ev_io_add(&loop, &w.io, sv[0], EPOLLIN, watch_cb, &w), 0);
	ev_timer_init(&t, break_cb, NULL);
	ev_timer_add(&loop, &t, 20);
	cr_assert_eq(ev_run(&loop), 0);
	cr_assert_eq(w.calls, 0);

	/* a socket can always be written to */
	cr_assert_eq(ev_io_mod(&loop, &w.io, EPOLLOUT), 0);
	cr_assert_eq(w.io.events, EPOLLOUT);
	cr_assert_eq(ev_io_mod(&loop, &w.io, EPOLLOUT), 0);
	cr_assert_eq(ev_run(&loop), 0);
	cr_assert_eq(w.calls, 1);
	cr_assert(w.last & EPOLLOUT);

	/* deleted: writable still, but not watched */
	ev_io_del(&loop, &w.io);
	ev_io_del(&loop, &w.io);		/* twice: harmless */
	ev_timer_add(&loop, &t, 20);
	cr_assert_eq(ev_run(&loop), 0);
	cr_assert_eq(w.calls, 1);
	cr_assert_eq(ev_io_mod(&loop, &w.io, EPOLLIN), -1, "not registered");

	/* and can be added again */
	cr_assert_eq(ev_io_add(&loop, &w.io, sv[0], EPOLLOUT, watch_cb, &w),
	    0);
	cr_assert_eq(ev_run(&loop), 0);
	cr_assert_eq(w.calls, 2);
	ev_io_del(&loop, &w.io);
	close(sv[0]);
	close(sv[1]);
}

Test(event, io_add_bad_fd, .init = loop_init, .fini = loop_fini)
{
	struct watch	w = { 0 };
	int		p[2];

	cr_assert_eq(ev_io_add(&loop, &w.io, -1, EPOLLIN, watch_cb, &w), -1);
	cr_assert(!w.io.active);
	cr_assert_eq(pipe(p), 0);
	cr_assert_eq(ev_io_add(&loop, &w.io, p[0], EPOLLIN, watch_cb, &w), 0);
	cr_assert_eq(ev_io_add(&loop, &w.io, p[0], EPOLLIN, watch_cb, &w), -1,
	    "added twice");
	cr_assert_eq(errno, EEXIST);
	ev_io_del(&loop, &w.io);
	close(p[0]);
	close(p[1]);
}

/* A callback deleting another watcher of the same batch: it is skipped. */
Test(event, io_delete_in_batch, .init = loop_init, .fini = loop_fini,
    .timeout = 10)
{
	struct watch	a = { .drain = 1 }, b = { .drain = 1 };
	int		pa[2], pb[2], n = 1;

	a.victim = &b;
	b.victim = &a;
	cr_assert_eq(pipe(pa), 0);
	cr_assert_eq(pipe(pb), 0);
	nonblock(pa[0]);
	nonblock(pb[0]);
	cr_assert_eq(ev_io_add(&loop, &a.io, pa[0], EPOLLIN, watch_cb, &a), 0);
	cr_assert_eq(ev_io_add(&loop, &b.io, pb[0], EPOLLIN, watch_cb, &b), 0);
	cr_assert_eq(write(pa[1], "x", 1), 1);
	cr_assert_eq(write(pb[1], "y", 1), 1);
	loop.after = break_after;
	loop.after_arg = &n;
	cr_assert_eq(ev_run(&loop), 0);
	cr_assert_eq(loop.iterations, 1);
	cr_assert_eq(a.calls + b.calls, 1, "a %d, b %d", a.calls, b.calls);
	ev_io_del(&loop, &a.io);
	ev_io_del(&loop, &b.io);
	close(pa[0]);
	close(pa[1]);
	close(pb[0]);
	close(pb[1]);
}

/* ev_break ends the run after the current iteration; it can run again. */
static int	after_calls;

static void
after_hook(struct ev_loop *l, void *arg)
{
	cr_assert_eq(arg, &after_calls);
	after_calls++;
	cr_assert_eq((uint64_t)after_calls, l->iterations,
	    "once per iteration");
	if (after_calls % 5 == 0)
		ev_break(l);
}

static void
noop_cb(struct ev_timer *t)
{
}

Test(event, break_and_after_hook, .init = loop_init, .fini = loop_fini,
    .timeout = 10)
{
	struct ev_timer	t[20];
	int		i;

	for (i = 0; i < 20; i++) {
		ev_timer_init(&t[i], noop_cb, NULL);
		ev_timer_add(&loop, &t[i], 5 * (i + 1));
	}
	loop.after = after_hook;
	loop.after_arg = &after_calls;
	cr_assert_eq(ev_run(&loop), 0);
	cr_assert_eq(after_calls, 5);
	cr_assert_eq(ev_run(&loop), 0, "runs again after a break");
	cr_assert_eq(after_calls, 10);
}

/* ev_break from an I/O callback. */
Test(event, break_from_io, .init = loop_init, .fini = loop_fini,
    .timeout = 10)
{
	struct watch	w = { .stop = 1 };
	int		sv[2];

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	cr_assert_eq(ev_io_add(&loop, &w.io, sv[0], EPOLLOUT, watch_cb, &w),
	    0);
	cr_assert_eq(ev_run(&loop), 0);
	cr_assert_eq(w.calls, 1);
	cr_assert_eq(loop.iterations, 1);
	ev_io_del(&loop, &w.io);
	close(sv[0]);
	close(sv[1]);
}

Test(event, run_error)
{
	struct ev_loop	l;

	cr_assert_eq(ev_init(&l), 0);
	close(l.epfd);
	cr_assert_eq(ev_run(&l), -1);
	cr_assert_eq(errno, EBADF);
	l.epfd = -1;
	ev_free(&l);
}

/* Signals */

struct sigrec {
	struct ev_signal	 sig;
	int			 signo[16];
	pid_t			 pid[16];
	int			 n;
	int			 want;
};

static void
sig_cb(struct ev_signal *s, int signo, pid_t pid)
{
	struct sigrec	*r = s->arg;

	cr_assert_eq(&r->sig, s);
	cr_assert_lt(r->n, 16);
	r->signo[r->n] = signo;
	r->pid[r->n] = pid;
	r->n++;
	if (r->n >= r->want)
		ev_break(&loop);
}

static void
raise_cb(struct ev_timer *t)
{
	cr_assert_eq(kill(getpid(), SIGUSR1), 0);
}

Test(event, signal_self, .init = loop_init, .fini = loop_fini,
    .timeout = 10)
{
	struct sigrec	r = { .want = 1 };
	struct ev_timer	t;
	sigset_t	mask, cur;

	sigemptyset(&mask);
	sigaddset(&mask, SIGUSR1);
	sigaddset(&mask, SIGUSR2);
	r.sig.arg = NULL;
	cr_assert_eq(ev_signal_add(&loop, &r.sig, &mask, sig_cb, &r), 0);
	cr_assert_eq(r.sig.arg, &r);
	cr_assert_eq(sigprocmask(SIG_BLOCK, NULL, &cur), 0);
	cr_assert(sigismember(&cur, SIGUSR1), "the signal stays blocked");
	cr_assert(sigismember(&cur, SIGUSR2));
	cr_assert(fcntl(r.sig.io.fd, F_GETFD) & FD_CLOEXEC);

	/* raised from a timer, delivered from the loop */
	ev_timer_init(&t, raise_cb, NULL);
	ev_timer_add(&loop, &t, 10);
	cr_assert_eq(ev_run(&loop), 0);
	cr_assert_eq(r.n, 1);
	cr_assert_eq(r.signo[0], SIGUSR1);
	cr_assert_eq(r.pid[0], getpid());

	/* pending before the loop runs: delivered on its first iteration */
	cr_assert_eq(kill(getpid(), SIGUSR2), 0);
	r.want = 2;
	cr_assert_eq(ev_run(&loop), 0);
	cr_assert_eq(r.n, 2);
	cr_assert_eq(r.signo[1], SIGUSR2);

	ev_signal_del(&loop, &r.sig);
	cr_assert_eq(r.sig.io.fd, -1);
	cr_assert(!r.sig.io.active);
}

/* A signal from another process names the sender. */
Test(event, signal_from_child, .init = loop_init, .fini = loop_fini,
    .timeout = 10)
{
	struct sigrec	r = { .want = 2 };
	sigset_t	mask;
	pid_t		pid;
	int		status, i;

	sigemptyset(&mask);
	sigaddset(&mask, SIGUSR1);
	sigaddset(&mask, SIGCHLD);
	cr_assert_eq(ev_signal_add(&loop, &r.sig, &mask, sig_cb, &r), 0);
	if ((pid = fork()) == 0) {
		kill(getppid(), SIGUSR1);
		_exit(0);
	}
	cr_assert_gt(pid, 0);
	/* SIGUSR1 and SIGCHLD, maybe in one read, maybe not */
	while (r.n < 2)
		cr_assert_eq(ev_run(&loop), 0);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	for (i = 0; i < r.n; i++) {
		cr_assert(r.signo[i] == SIGUSR1 || r.signo[i] == SIGCHLD,
		    "signal %d", r.signo[i]);
		cr_assert_eq(r.pid[i], pid, "from %d, not %d", r.pid[i], pid);
	}
	cr_assert_neq(r.signo[0], r.signo[1]);
	ev_signal_del(&loop, &r.sig);
}

/*
 * busy_us: after a batch of events the loop polls without sleeping for
 * that long (it burns CPU), timers due meanwhile still fire on time, and
 * then it sleeps again (it burns none).
 */
static uint64_t	busy_timer_at;

static void
busy_timer_cb(struct ev_timer *t)
{
	busy_timer_at = ev_monotonic_ms();
}

static uint64_t
cpu_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ((uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

Test(event, busy_poll, .init = loop_init, .fini = loop_fini, .timeout = 10)
{
	struct watch	w = { .drain = 1 };
	struct ev_timer	tw, tt, tb;
	uint64_t	start, cpu0, cpu1;
	int		p[2];

	cr_assert_eq(pipe(p), 0);
	nonblock(p[0]);
	wfd = p[1];
	cr_assert_eq(ev_io_add(&loop, &w.io, p[0], EPOLLIN, watch_cb, &w), 0);
	loop.busy_us = 300000;
	ev_timer_init(&tw, write_cb, NULL);
	ev_timer_init(&tt, busy_timer_cb, NULL);
	ev_timer_init(&tb, break_cb, NULL);
	start = ev_time_update(&loop);
	ev_timer_add(&loop, &tw, 10);		/* the event: spin to ~310 */
	ev_timer_add(&loop, &tt, 60);		/* due while spinning */
	ev_timer_add(&loop, &tb, 700);		/* ~390 ms asleep */
	cpu0 = cpu_ms();
	cr_assert_eq(ev_run(&loop), 0);
	cpu1 = cpu_ms();
	cr_assert_eq(w.calls, 1);
	cr_assert_geq(busy_timer_at, start + 60);
	cr_assert_lt(busy_timer_at, start + 250, "a timer due while spinning "
	    "fired %llu ms late", (unsigned long long)(busy_timer_at - start -
	    60));
	cr_assert_geq(cpu1 - cpu0, 100, "spun for %llu ms of CPU only",
	    (unsigned long long)(cpu1 - cpu0));
	cr_assert_lt(cpu1 - cpu0, 500, "%llu ms of CPU: it never slept",
	    (unsigned long long)(cpu1 - cpu0));
	cr_assert_eq(loop.spin_until, 0);

	/* off: the same run costs next to no CPU */
	loop.busy_us = 0;
	ev_timer_add(&loop, &tw, 10);
	ev_timer_add(&loop, &tb, 300);
	cpu0 = cpu_ms();
	cr_assert_eq(ev_run(&loop), 0);
	cr_assert_lt(cpu_ms() - cpu0, 50);
	cr_assert_eq(w.calls, 2);
	ev_io_del(&loop, &w.io);
	close(p[0]);
	close(p[1]);
}

/*
 * Low watchers (TLS handshakes) run after the batch's other events, one
 * per loop turn (EV_LOWBUDGET), oldest first; a queued one that is
 * deleted never runs; one that gets more events while queued runs once.
 */
Test(event, low_watchers_budgeted, .init = loop_init, .fini = loop_fini,
    .timeout = 10)
{
	struct watch	w[4];
	struct ev_timer	tb;
	int		p[4][2], i;

	cr_assert_eq(EV_LOWBUDGET, 1);
	memset(w, 0, sizeof(w));
	calls_so_far = 0;
	for (i = 0; i < 4; i++) {
		cr_assert_eq(pipe(p[i]), 0);
		nonblock(p[i][0]);
		w[i].drain = 1;
		cr_assert_eq(ev_io_add(&loop, &w[i].io, p[i][0], EPOLLIN |
		    EPOLLET, watch_cb, &w[i]), 0);
		w[i].io.low = i > 0;
	}
	w[0].victim = &w[3];		/* deletes low 3 while it waits */
	w[1].hangup = p[2][1];		/* low 2 gets EPOLLHUP while it waits */
	/* epoll reports them in this order: the low ones first */
	for (i = 1; i <= 4; i++)
		cr_assert_eq(write(p[i % 4][1], "x", 1), 1);
	ev_timer_init(&tb, break_cb, NULL);
	ev_timer_add(&loop, &tb, 200);
	cr_assert_eq(ev_run(&loop), 0);

	cr_assert_eq(w[0].calls, 1);
	cr_assert_eq(w[0].order, 1, "the normal watcher ran after a low one");
	cr_assert_eq(w[1].calls, 1);
	cr_assert_eq(w[1].turn, w[0].turn);
	cr_assert_eq(w[2].calls, 1, "low 2 ran %d times", w[2].calls);
	cr_assert_eq(w[2].turn, w[1].turn + 1, "two low watchers in a turn");
	cr_assert_eq(w[2].bytes, 1);
	cr_assert_eq(w[2].last, EPOLLIN | EPOLLHUP, "events %#x: those that "
	    "came while it waited were lost", w[2].last);
	cr_assert_eq(w[3].calls, 0, "a deleted watcher ran");
	cr_assert_eq(loop.nlowq, 0);
	for (i = 0; i < 4; i++) {
		ev_io_del(&loop, &w[i].io);
		close(p[i][0]);
		if (i != 2)
			close(p[i][1]);
	}
}

/*
 * Deferred calls: once after the batch's events (queued twice, run once),
 * not when cancelled, those queued by a deferred call in the same pass,
 * and one queued by a timer without the loop sleeping first.
 */
struct dcall {
	struct ev_defer	 d;
	int		 calls;
	int		 order;
	uint64_t	 turn;
	uint64_t	 at;		/* ms */
	struct dcall	*chain;		/* queued by this one */
};

static struct dcall	*dq_twice, *dq_cancel, *dq_timer;
static struct watch	*dq_queuer;

static void
dcall_cb(struct ev_defer *d)
{
	struct dcall	*c = d->arg;

	cr_assert_eq(&c->d, d);
	c->calls++;
	c->order = ++calls_so_far;
	c->turn = loop.iterations;
	c->at = ev_monotonic_ms();
	if (c->chain != NULL)
		ev_defer(&loop, &c->chain->d);
}

static void
defer_timer_cb(struct ev_timer *t)
{
	ev_defer(&loop, &dq_timer->d);
}

/* The first watcher queues two calls, one twice; the second cancels one. */
static void
defer_watch_cb(struct ev_io *io, uint32_t events)
{
	watch_cb(io, events);
	if (io->arg == dq_queuer) {
		ev_defer(&loop, &dq_twice->d);
		ev_defer(&loop, &dq_cancel->d);
		ev_defer(&loop, &dq_twice->d);
	} else
		ev_defer_cancel(&loop, &dq_cancel->d);
}

Test(event, deferred_calls, .init = loop_init, .fini = loop_fini,
    .timeout = 10)
{
	struct watch	w[3];
	struct dcall	c[4];
	struct ev_timer	tq, tb;
	int		p[3][2], i;

	memset(w, 0, sizeof(w));
	memset(c, 0, sizeof(c));
	calls_so_far = 0;
	for (i = 0; i < 4; i++)
		ev_defer_init(&c[i].d, dcall_cb, &c[i]);
	dq_twice = &c[0];
	dq_cancel = &c[1];
	c[0].chain = &c[2];
	dq_timer = &c[3];
	dq_queuer = &w[0];
	for (i = 0; i < 3; i++) {
		cr_assert_eq(pipe(p[i]), 0);
		nonblock(p[i][0]);
		w[i].drain = 1;
		cr_assert_eq(ev_io_add(&loop, &w[i].io, p[i][0], EPOLLIN |
		    EPOLLET, i < 2 ? defer_watch_cb : watch_cb, &w[i]), 0);
	}
	w[2].io.low = 1;		/* a handshake: after the calls */
	/* epoll reports them in this order */
	cr_assert_eq(write(p[2][1], "z", 1), 1);
	cr_assert_eq(write(p[0][1], "x", 1), 1);
	cr_assert_eq(write(p[1][1], "y", 1), 1);
	ev_timer_init(&tq, defer_timer_cb, NULL);
	ev_timer_add(&loop, &tq, 100);
	ev_timer_init(&tb, break_cb, NULL);
	ev_timer_add(&loop, &tb, 600);
	cr_assert_eq(ev_run(&loop), 0);

	cr_assert_eq(w[0].calls, 1);
	cr_assert_eq(w[1].calls, 1);
	cr_assert_eq(w[0].order, 1);
	cr_assert_eq(w[2].turn, w[0].turn);
	cr_assert_gt(w[2].order, c[2].order, "a low watcher ran before the "
	    "deferred calls");
	cr_assert_eq(w[1].turn, w[0].turn, "the pipes were ready together");
	cr_assert_eq(c[0].calls, 1, "queued twice, it ran %d times",
	    c[0].calls);
	cr_assert_eq(c[0].turn, w[0].turn, "not after its batch's events");
	cr_assert_gt(c[0].order, w[1].order, "it ran before the batch ended");
	cr_assert_eq(c[1].calls, 0, "a cancelled call ran");
	cr_assert_eq(c[2].calls, 1, "a call queued by a deferred call");
	cr_assert_eq(c[2].turn, c[0].turn);
	cr_assert_eq(c[2].order, c[0].order + 1);
	/* queued after the events of the timer's turn: no sleep before it */
	cr_assert_eq(c[3].calls, 1, "the call a timer queued never ran");
	cr_assert_lt(c[3].at + 100, tb.when, "it waited for the next event");
	cr_assert_eq(loop.defer_head, NULL);
	for (i = 0; i < 3; i++) {
		ev_io_del(&loop, &w[i].io);
		close(p[i][0]);
		close(p[i][1]);
	}
}

/* The queue itself: cancels from its middle, head and tail, from a call. */
static struct dcall	*dq_victim;

static void
dcall_cancel_cb(struct ev_defer *d)
{
	dcall_cb(d);
	ev_defer_cancel(&loop, &dq_victim->d);
}

Test(event, deferred_list, .init = loop_init, .fini = loop_fini,
    .timeout = 10)
{
	struct dcall	c[7];
	struct ev_timer	tb;
	int		i;

	memset(c, 0, sizeof(c));
	calls_so_far = 0;
	for (i = 0; i < 7; i++)
		ev_defer_init(&c[i].d, i == 4 ? dcall_cancel_cb : dcall_cb,
		    &c[i]);
	dq_victim = &c[6];
	for (i = 0; i < 3; i++)
		ev_defer(&loop, &c[i].d);	/* 0 1 2 */
	ev_defer_cancel(&loop, &c[1].d);	/* middle: 0 2 */
	ev_defer_cancel(&loop, &c[0].d);	/* head: 2 */
	ev_defer(&loop, &c[3].d);		/* 2 3 */
	ev_defer(&loop, &c[1].d);		/* 2 3 1 */
	ev_defer(&loop, &c[5].d);		/* 2 3 1 5 */
	ev_defer_cancel(&loop, &c[5].d);	/* tail: 2 3 1 */
	ev_defer(&loop, &c[4].d);		/* 2 3 1 4 */
	ev_defer(&loop, &c[6].d);		/* 2 3 1 4 6, 4 cancels 6 */
	ev_defer_cancel(&loop, &c[0].d);	/* not queued: nothing */
	ev_timer_init(&tb, break_cb, NULL);
	ev_timer_add(&loop, &tb, 50);
	cr_assert_eq(ev_run(&loop), 0);

	cr_assert_eq(c[0].calls, 0);
	cr_assert_eq(c[5].calls, 0);
	cr_assert_eq(c[6].calls, 0, "cancelled by a call before it, it ran");
	cr_assert_eq(c[2].order, 1);
	cr_assert_eq(c[3].order, 2);
	cr_assert_eq(c[1].order, 3);
	cr_assert_eq(c[4].order, 4);
	for (i = 1; i <= 4; i++)
		cr_assert_eq(c[i].calls, 1, "call %d ran %d times", i,
		    c[i].calls);
	cr_assert_eq(loop.defer_head, NULL);
	/* the queue works again once emptied */
	ev_defer(&loop, &c[0].d);
	ev_timer_add(&loop, &tb, 20);
	cr_assert_eq(ev_run(&loop), 0);
	cr_assert_eq(c[0].calls, 1);
	cr_assert_eq(c[0].order, 5);
}
