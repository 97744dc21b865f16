/*
 * lshare.h: the listening sockets a worker shares with the other workers
 * of its daemon, and the sharing of their connections.
 *
 * All workers wait on the same listening sockets with EPOLLEXCLUSIVE, so
 * that a reload's new workers take over the same accept queues and no
 * connection is refused meanwhile (with SO_REUSEPORT each worker would
 * have its own queue, reset when it leaves).  The kernel wakes the first
 * idle waiter in the socket's queue: left alone, one worker takes most
 * of a burst of connections (wrk's 50 went 13/37 to 4/46; 19 of the 20
 * connections appd's workers open to dbrepd went to one worker) and keeps
 * them for their whole life.  So a worker takes connections only while
 * it holds no more than the others' average plus a slack (2, and 1/32 of
 * the listener's connections); past that it stops watching the listener
 * (it leaves the socket's wait queue, so new connections wake another
 * worker) until it is back within its share, or for LSHARE_YIELD ms at
 * most, after which it takes at least one: a stuck or dead worker never
 * strands connections in the queue.  A listener at its maxconn rests
 * LSHARE_PAUSE ms (its level-triggered readiness would spin the loop).
 *
 * The daemon says, for each listener it serves, how to accept
 * (accept(arg, fd, max) takes at most <max> connections and returns how
 * many, or -1 when the listener is at its maxconn) and where the counts
 * are: <all>, the listener's connections in every worker (shared memory;
 * NULL: lshare_add finds a block named after the address), and <mine>,
 * this worker's.  The daemon keeps both up to date as connections come
 * and go (lshare_count() does both), and calls lshare_after() after each
 * turn of its loop.  lshare_add() returns the set's copy of <sh>, with
 * <all> filled in, or NULL when the listener cannot be watched.
 */
#ifndef COMMON_LSHARE_H
#define COMMON_LSHARE_H

#include <stdatomic.h>
#include <stdint.h>

#include "event.h"
#include "proc.h"
#include "shm.h"

#define LSHARE_PAUSE	20	/* ms a full listener rests */
#define LSHARE_YIELD	1	/* ms a worker over its share rests */
#define LSHARE_BATCH	16	/* connections taken per wakeup */

struct lshare {
	int		(*accept)(void *, int, int);
	void		*arg;
	struct shm_count *all;
	int		*mine;
};

struct lshare_set {
	struct ev_loop		*loop;
	struct proc_worker	*w;
	struct lshare		 sh[PROC_MAXLISTENERS];
	struct ev_io		 io[PROC_MAXLISTENERS];
	struct ev_timer		 paused[PROC_MAXLISTENERS];
	uint8_t			 yielding[PROC_MAXLISTENERS];
	uint8_t			 forced[PROC_MAXLISTENERS];
	int			 nyielding;
	int			 stopped;
};

void		 lshare_init(struct lshare_set *, struct ev_loop *,
		    struct proc_worker *);
struct lshare	*lshare_add(struct lshare_set *, int, const struct lshare *);
void		 lshare_after(struct lshare_set *);
void		 lshare_stop(struct lshare_set *);
int		 lshare_reap(const struct proc_settings *, int);

/* A connection of <l> opened (+1) or closed (-1) in this worker. */
static inline void
lshare_count(struct lshare *l, int n)
{
	*l->mine += n;
	if (l->all != NULL)
		shm_count_add(l->all, n);
}

#endif
