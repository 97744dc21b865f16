/*
 * event.h: an epoll(7) loop with timers, for non-blocking sockets.
 *
 * I/O watchers are embedded in the objects they serve (a connection holds
 * its struct ev_io) and registered once; lbd and webd register their
 * connections edge-triggered (EPOLLET) for reading and writing at once so
 * that a request costs no epoll_ctl(2) calls.  Timers are deadlines in
 * milliseconds of CLOCK_MONOTONIC kept in a binary heap, so arming,
 * moving and cancelling a connection's deadline costs O(log n).
 * Signals arrive through a signalfd(2) watcher: the handler-sets-a-flag
 * idiom without its race between the flag test and the wait.
 *
 * A watcher marked low (a TLS handshake: http_server.c sets it, sock.c
 * clears it when the handshake ends) does not run with its batch: its
 * events wait in a queue, and each loop turn runs EV_LOWBUDGET of them
 * after the batch's other events, then polls again without sleeping.
 * A handshake costs hundreds of microseconds of CPU: run as they came,
 * a burst of them held every request of the established connections
 * behind it (lbd's p99 at saturation went from 19 to 14 ms).
 *
 * A deferred call (ev_defer) runs once after the current batch's events,
 * before the low watchers' turn: the proxy sends its requests to the
 * servers there, so that a batch of requests reaches a server together
 * and wakes it once, not once per request.  A call queued while the
 * deferred calls run runs in the same pass: a call must not queue itself
 * again without end.  One queued by a timer or a low watcher runs at the
 * next turn, which polls without sleeping.
 *
 * With busy_us set (the conf's busy-poll), the loop does not sleep for
 * busy_us microseconds after a batch of events: it polls epoll without
 * waiting, so that the next request of a client that answers at once
 * finds the process awake.  Waking a sleeping process on another CPU
 * costs tens of microseconds in a VM; the price is that CPU time.
 */
#ifndef COMMON_EVENT_H
#define COMMON_EVENT_H

#include <sys/types.h>
#include <sys/epoll.h>
#include <signal.h>
#include <stdint.h>
#include "compat.h"

#define EV_MAXEVENTS	512		/* events taken per epoll_wait */
#define EV_LOWBUDGET	1		/* low watchers run per loop turn */
#define EV_LOWQ		1024		/* low events kept waiting */

struct ev_loop;
struct ev_io;
struct ev_timer;

typedef void (*ev_io_cb)(struct ev_io *, uint32_t);
typedef void (*ev_timer_cb)(struct ev_timer *);
struct ev_defer;
typedef void (*ev_defer_cb)(struct ev_defer *);

struct ev_io {
	int		 fd;
	uint32_t	 events;
	ev_io_cb	 cb;
	void		*arg;
	int		 active;
	int		 low;		/* budgeted: see EV_LOWBUDGET */
	int		 queued;	/* its place in the low queue + 1 */
};

struct ev_timer {
	uint64_t	 when;		/* ms, CLOCK_MONOTONIC */
	size_t		 idx;		/* heap position + 1; 0: not armed */
	ev_timer_cb	 cb;
	void		*arg;
};

/* A call made once, after the events of the current batch. */
struct ev_defer {
	ev_defer_cb	 cb;
	void		*arg;
	struct ev_defer	*next;
	struct ev_defer	**prevp;	/* NULL: not queued */
};

struct ev_signal {
	struct ev_io	 io;
	void		(*cb)(struct ev_signal *, int, pid_t);
	void		*arg;
};

struct ev_loop {
	int			 epfd;
	uint64_t		 now;
	struct ev_timer		**heap;
	size_t			 nheap;
	size_t			 capheap;
	int			 stop;
	void			(*after)(struct ev_loop *, void *);
	void			*after_arg;
	uint64_t		 iterations;
	struct epoll_event	*lowq;		/* low events waiting their turn */
	int			 nlowq;
	struct ev_defer		*defer_head;	/* due after this batch */
	struct ev_defer		**defer_tail;	/* NULL before the first */
	uint32_t		 busy_us;	/* busy-poll window, 0: off */
	uint64_t		 spin_until;	/* us, CLOCK_MONOTONIC */
};

int		 ev_init(struct ev_loop *);
void		 ev_free(struct ev_loop *);
int		 ev_run(struct ev_loop *);
void		 ev_break(struct ev_loop *);
uint64_t	 ev_now(struct ev_loop *);
uint64_t	 ev_time_update(struct ev_loop *);
uint64_t	 ev_monotonic_ms(void);
uint64_t	 ev_monotonic_us(void);
struct pollfd;
int		 ev_poll_spin(struct pollfd *, int, uint64_t);

int		 ev_io_add(struct ev_loop *, struct ev_io *, int, uint32_t,
		    ev_io_cb, void *);
int		 ev_io_mod(struct ev_loop *, struct ev_io *, uint32_t);
void		 ev_io_del(struct ev_loop *, struct ev_io *);

void		 ev_timer_init(struct ev_timer *, ev_timer_cb, void *);
void		 ev_timer_add(struct ev_loop *, struct ev_timer *, uint64_t);
void		 ev_timer_at(struct ev_loop *, struct ev_timer *, uint64_t);
void		 ev_timer_del(struct ev_loop *, struct ev_timer *);
int		 ev_timer_pending(const struct ev_timer *);
size_t		 ev_timer_count(const struct ev_loop *);

void		 ev_defer_init(struct ev_defer *, ev_defer_cb, void *);
void		 ev_defer(struct ev_loop *, struct ev_defer *);
void		 ev_defer_cancel(struct ev_loop *, struct ev_defer *);

int		 ev_signal_add(struct ev_loop *, struct ev_signal *,
		    const sigset_t *, void (*)(struct ev_signal *, int, pid_t),
		    void *);
void		 ev_signal_del(struct ev_loop *, struct ev_signal *);

#endif
