/*
 * shm.c: named blocks in one shared mapping (see shm.h).
 */
#include <sys/types.h>
#include <sys/mman.h>

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "shm.h"
#include "stats.h"

struct shm_entry {
	char		name[SHM_NAMELEN];	/* "": free, for a block of size */
	uint32_t	off;
	uint32_t	size;
	uint32_t	gen;	/* the last conf generation asking, 0: none */
	uint32_t	nextfree;	/* free list: entry + 1, 0 ends */
};

#define SHM_NSLOTS	(2 * SHM_MAXBLOCKS)	/* a power of two */

struct shm_hdr {
	shm_lock_t		lock;
	uint32_t		size;
	uint32_t		used;
	uint32_t		nblocks;
	uint32_t		freelist;	/* entry + 1, 0: none */
	/* names to entries (entry + 1; 0 empty), open addressing: added to
	 * under the lock, rebuilt when blocks are given back */
	uint32_t		index[SHM_NSLOTS];
	struct shm_entry	blocks[SHM_MAXBLOCKS];
};

static struct shm_hdr	*hdr;
static uint32_t		 curgen;	/* of the conf being loaded */

int
shm_init(size_t size)
{
	void	*p;

	if (hdr != NULL)
		return (0);
	if (size == 0)
		size = SHM_SIZE;
	if (size < sizeof(*hdr) + 65536)
		size = sizeof(*hdr) + 65536;
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
	    -1, 0);
	if (p == MAP_FAILED)
		return (-1);
	hdr = p;
	hdr->size = size;
	hdr->used = (sizeof(*hdr) + 63) & ~63u;
	atomic_init(&hdr->lock.owner, 0);
	return (0);
}

static uint64_t
hash_of(const char *name)
{
	return (hash_bytes(name, strlen(name), 0));
}

static int
named(uint32_t v, const void *name)
{
	return (strcmp(hdr->blocks[v - 1].name, name) == 0);
}

/* Under the lock: the entry named <name>, or NULL. */
static struct shm_entry *
index_find(const char *name)
{
	uint32_t	v;

	v = index_lookup(hdr->index, SHM_NSLOTS, hash_of(name), named, name);
	return (v != 0 ? &hdr->blocks[v - 1] : NULL);
}

/* Under the lock; never full: twice the slots there are entries. */
static void
index_add(struct shm_entry *e)
{
	index_insert(hdr->index, SHM_NSLOTS, hash_of(e->name),
	    e - hdr->blocks + 1);
}

/*
 * The block named <name>, created zeroed with <size> bytes if new (then
 * *created is set).  A block found with another size is an error: NULL.
 * Outside a daemon (no shm_init), a private zeroed block is returned.
 */
void *
shm_get(const char *name, size_t size, int *created)
{
	struct shm_entry	*e;
	uint32_t		 need, *prev;
	void			*p;

	if (created != NULL)
		*created = 0;
	if (hdr == NULL) {
		if (created != NULL)
			*created = 1;
		return (calloc(1, size));
	}
	if (strlen(name) >= SHM_NAMELEN)
		return (NULL);
	if (name[0] == '\0')
		return (NULL);
	shm_lock(&hdr->lock);
	if ((e = index_find(name)) != NULL) {
		p = e->size == size ? (char *)hdr + e->off : NULL;
		if (e->gen < curgen)
			e->gen = curgen;
		shm_unlock(&hdr->lock);
		return (p);
	}
	/* a block of this size that shm_collect() gave back: zero */
	for (prev = &hdr->freelist; *prev != 0; prev = &e->nextfree) {
		e = &hdr->blocks[*prev - 1];
		if (e->size != size)
			continue;
		*prev = e->nextfree;
		e->nextfree = 0;
		strlcpy(e->name, name, SHM_NAMELEN);
		e->gen = curgen;
		index_add(e);
		p = (char *)hdr + e->off;
		shm_unlock(&hdr->lock);
		if (created != NULL)
			*created = 1;
		return (p);
	}
	need = (size + 63) & ~(size_t)63;
	if (hdr->nblocks >= SHM_MAXBLOCKS || hdr->used + need > hdr->size) {
		static int	warned;

		shm_unlock(&hdr->lock);
		/* once: the callers say what went without (a conf refused) */
		if (!warned++)
			log_warnx("%s: shared memory full (%u blocks, %u of %u "
			    "bytes)", name, hdr->nblocks, hdr->used, hdr->size);
		return (NULL);
	}
	e = &hdr->blocks[hdr->nblocks];
	strlcpy(e->name, name, SHM_NAMELEN);
	e->off = hdr->used;
	e->size = size;
	e->gen = curgen;
	index_add(e);
	p = (char *)hdr + hdr->used;	/* never used: zero (see SHM_SIZE) */
	hdr->used += need;
	hdr->nblocks++;
	shm_unlock(&hdr->lock);
	if (created != NULL)
		*created = 1;
	return (p);
}

/*
 * The conf generation being loaded: the blocks it asks for are its, and
 * outlive it until shm_collect() is told that no process runs it.
 */
void
shm_set_generation(uint32_t gen)
{
	curgen = gen;
}

/*
 * Master, once no process runs a generation older than <oldest>: the
 * blocks no later one asked for are given back, zeroed, for blocks of
 * the same size (the names of servers, pools and frontends that confs
 * no longer have).  Blocks asked for before the first conf load (gen 0)
 * stay; those asked for at run time carry the last load's generation,
 * and each generation that uses them asks for them when it starts.
 * Returns how many were given back.
 */
int
shm_collect(uint32_t oldest)
{
	struct shm_entry	*e;
	long			 pg = sysconf(_SC_PAGESIZE);
	uint32_t		 i;
	int			 n = 0;

	if (hdr == NULL)
		return (0);
	shm_lock(&hdr->lock);
	for (i = 0; i < hdr->nblocks; i++) {
		char		*p, *a, *b;

		e = &hdr->blocks[i];
		if (e->name[0] == '\0' || e->gen == 0 || e->gen >= oldest)
			continue;
		/*
		 * Zero it (a new block is zero), giving whole pages back to
		 * the system: a rate limit's table is megabytes.
		 */
		p = (char *)hdr + e->off;
		a = (char *)(((uintptr_t)p + pg - 1) & ~(uintptr_t)(pg - 1));
		b = (char *)(((uintptr_t)p + e->size) & ~(uintptr_t)(pg - 1));
		if (b > a && madvise(a, b - a, MADV_REMOVE) == 0) {
			memset(p, 0, a - p);
			memset(b, 0, p + e->size - b);
		} else
			memset(p, 0, e->size);
		e->name[0] = '\0';
		e->gen = 0;
		e->nextfree = hdr->freelist;
		hdr->freelist = i + 1;
		n++;
	}
	if (n > 0) {
		memset(hdr->index, 0, sizeof(hdr->index));
		for (i = 0; i < hdr->nblocks; i++)
			if (hdr->blocks[i].name[0] != '\0')
				index_add(&hdr->blocks[i]);
	}
	shm_unlock(&hdr->lock);
	return (n);
}

pid_t	shm_pid;

static void
forked(void)
{
	shm_pid = 0;
}

/* This process's pid, kept (getpid(2) is a system call) until a fork. */
pid_t
shm_self(void)
{
	static int	registered;

	if (!registered) {
		registered = 1;
		(void)pthread_atfork(NULL, NULL, forked);
	}
	return (shm_pid = getpid());
}

/* The lock is taken: spin, yield, and take it over from a dead owner. */
void
shm_lock_wait(shm_lock_t *l)
{
	pid_t		owner, me = shm_pid != 0 ? shm_pid : shm_self();
	unsigned	spins = 0;

	for (;;) {
		owner = atomic_load_explicit(&l->owner, memory_order_relaxed);
		if (owner == 0) {
			if (atomic_compare_exchange_weak_explicit(&l->owner,
			    &owner, me, memory_order_acquire,
			    memory_order_relaxed))
				return;
			continue;
		}
		if (++spins % 1024 != 0)
			continue;
		if (kill(owner, 0) == -1 && errno == ESRCH) {
			if (atomic_compare_exchange_strong_explicit(&l->owner,
			    &owner, me, memory_order_acquire,
			    memory_order_relaxed)) {
				log_warnx("shared memory lock taken over from "
				    "pid %d, gone", (int)owner);
				return;
			}
			continue;
		}
		sched_yield();
	}
}

_Static_assert(SHM_COUNT_SLOTS == STATS_SLOTS, "a part for each slot");

/* Count <n> (negative to give back) as this process's. */
void
shm_count_add(struct shm_count *c, int n)
{
	atomic_fetch_add_explicit(&c->total, n, memory_order_relaxed);
	atomic_fetch_add_explicit(&c->part[stats_get_slot()], n,
	    memory_order_relaxed);
}

/*
 * Master: the part of the process of stats slot <slot>, which is gone,
 * taken out of the count.  Returns how much it held.
 */
int
shm_count_reap(struct shm_count *c, int slot)
{
	int	n;

	if (slot < 0 || slot >= SHM_COUNT_SLOTS)
		return (0);
	if ((n = atomic_exchange(&c->part[slot], 0)) != 0)
		atomic_fetch_sub(&c->total, n);
	return (n);
}

