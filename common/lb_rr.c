/*
 * lb_rr.c: round-robin.
 *
 * roundrobin is nginx's smooth weighted scheme: each pick adds every
 * eligible server's weight to its current weight, takes the server with
 * the highest, and subtracts the total from it.  Weights 5:1 give
 * a a b a a a, not a a a a a b; equal weights rotate strictly.  The
 * current weights live in shared memory under the pool's lock, so the
 * rotation is one across all workers.
 *
 * static-rr walks a shared counter over the cumulative weights: weights
 * 5:1 give five picks of one server, then one of the other.
 */
#include <sys/types.h>

#include "event.h"
#include "upstream.h"

static struct up_server *
rr_pick(struct up_pool *p, uint64_t key, uint64_t tried)
{
	struct up_server	*best = NULL, *s;
	uint64_t		 now = ev_monotonic_ms();
	int			 i, total = 0, w;

	shm_lock(&p->sh->lock);
	for (i = 0; i < p->nservers; i++) {
		s = p->servers[i];
		if ((tried & (1ULL << (i & 63))) ||
		    !up_eligible(p, s, now, NULL))
			continue;
		w = atomic_load(&s->sh->weight);
		s->sh->cw += w;
		total += w;
		if (best == NULL || s->sh->cw > best->sh->cw)
			best = s;
	}
	if (best != NULL)
		best->sh->cw -= total;
	shm_unlock(&p->sh->lock);
	return (best);
}

static struct up_server *
static_pick(struct up_pool *p, uint64_t key, uint64_t tried)
{
	uint64_t	pos;
	int		i, total, w[UP_MAXSERVERS];

	/* the conf's weights: static */
	if ((total = up_weights(p, tried, ev_monotonic_ms(), 0, w)) == 0)
		return (NULL);
	pos = atomic_fetch_add(&p->sh->seq, 1) % total;
	for (i = 0; i < p->nservers; i++) {
		if (pos < (uint64_t)w[i])
			return (p->servers[i]);
		pos -= w[i];
	}
	return (NULL);
}

const struct lb_ops lb_roundrobin = {
	.name = "roundrobin",
	.pick = rr_pick
};

const struct lb_ops lb_static_rr = {
	.name = "static-rr",
	.pick = static_pick
};
