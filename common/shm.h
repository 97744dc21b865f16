/*
 * shm.h: named blocks of memory shared by a daemon's processes.
 *
 * The master maps one segment before it forks; blocks are found by name
 * (get or create, zeroed on creation), so that state such as a backend's
 * round-robin position, its servers' health and connection counts, or
 * rate-limit tables, is shared by all workers and survives reloads: the
 * new generation's workers find the same blocks under the same names.
 * Blocks are never freed; a reload that drops a server leaves its block
 * unused.
 */
#ifndef COMMON_SHM_H
#define COMMON_SHM_H

#include <sys/types.h>
#include <stdatomic.h>
#include "compat.h"

/*
 * Mapped, not taken: a page is real once something is written on it (the
 * mapping is zero to begin with, and a block given back is zeroed, so a
 * new one needs no clearing).  Each lbd frontend with a rate or connection limit
 * takes 3 MiB, and with a connection limit 4 MiB more for the workers'
 * ledgers, of which a worker touches only its own.
 */
#define SHM_SIZE	(256 * 1024 * 1024)
#define SHM_NAMELEN	128
#define SHM_MAXBLOCKS	16384
#define SHM_COUNT_SLOTS	128		/* STATS_SLOTS */

int	 shm_init(size_t);
void	*shm_get(const char *, size_t, int *);
void	 shm_set_generation(uint32_t);
int	 shm_collect(uint32_t);

/*
 * A spin lock for short critical sections in shared memory.  It holds its
 * owner's pid: a process that died inside one (a crash, a SIGKILL) would
 * otherwise stop all the others for good, so a waiter that has spun a
 * while asks whether the owner is still there, and takes the lock over
 * from one that is gone.  A long wait yields the CPU, which the owner
 * may need (more processes than CPUs).
 */
typedef struct {
	_Atomic pid_t	owner;		/* 0: free */
} shm_lock_t;

extern pid_t	shm_pid;		/* this process's, 0 until known */
pid_t		shm_self(void);
void		shm_lock_wait(shm_lock_t *);

static inline void
shm_lock(shm_lock_t *l)
{
	pid_t	none = 0;

	if (!atomic_compare_exchange_strong_explicit(&l->owner, &none,
	    shm_pid != 0 ? shm_pid : shm_self(), memory_order_acquire,
	    memory_order_relaxed))
		shm_lock_wait(l);
}

static inline void
shm_unlock(shm_lock_t *l)
{
	atomic_store_explicit(&l->owner, 0, memory_order_release);
}

/*
 * A count the processes share (connections to a server, on a listener),
 * with each process's part kept by its stats slot: when a process dies
 * holding some (killed at the end of a reload's shutdown timeout, or a
 * crash), the master takes its part back (shm_count_reap()), else the
 * count would stay high for good.
 */
struct shm_count {
	_Atomic int	total;
	_Atomic int	part[SHM_COUNT_SLOTS];
};

void	shm_count_add(struct shm_count *, int);
int	shm_count_reap(struct shm_count *, int);

static inline int
shm_count_get(struct shm_count *c)
{
	return (atomic_load_explicit(&c->total, memory_order_relaxed));
}

#endif
