/*
 * lb_leastconn.c: the eligible server with the fewest active connections
 * for its weight (counted across all workers in shared memory); ties
 * rotate, so that idle servers share the load.
 */
#include <sys/types.h>

#include "event.h"
#include "upstream.h"

static struct up_server *
lc_pick(struct up_pool *p, uint64_t key, uint64_t tried)
{
	struct up_server	*best = NULL, *s;
	uint64_t		 now = ev_monotonic_ms();
	uint64_t		 start = atomic_fetch_add(&p->sh->seq, 1);
	int			 i, k;
	double			 bestload = 0, load;

	for (k = 0; k < p->nservers; k++) {
		i = (start + k) % p->nservers;
		s = p->servers[i];
		if ((tried & (1ULL << (i & 63))) ||
		    !up_eligible(p, s, now, NULL))
			continue;
		load = (double)shm_count_get(&s->sh->conns) /
		    atomic_load(&s->sh->weight);
		if (best == NULL || load < bestload) {
			best = s;
			bestload = load;
		}
	}
	return (best);
}

const struct lb_ops lb_leastconn = {
	.name = "leastconn",
	.pick = lc_pick
};
