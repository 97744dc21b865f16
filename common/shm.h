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
 * Mapped, not taken: a page is real once a block on it is made.  Each
 * lbd frontend with a rate or connection limit takes 3 MiB.
 */
#define SHM_SIZE	(64 * 1024 * 1024)
#define SHM_NAMELEN	128
#define SHM_MAXBLOCKS	4096
#define SHM_COUNT_SLOTS	128		/* STATS_SLOTS */

int	 shm_init(size_t);
void	*shm_get(const char *, size_t, int *);

/* A spin lock for short critical sections in shared memory. */
typedef struct {
	atomic_flag	f;
} shm_lock_t;

static inline void
shm_lock(shm_lock_t *l)
{
	while (atomic_flag_test_and_set_explicit(&l->f, memory_order_acquire))
		;
}

static inline void
shm_unlock(shm_lock_t *l)
{
	atomic_flag_clear_explicit(&l->f, memory_order_release);
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
