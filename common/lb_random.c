/*
 * lb_random.c: the power of two choices: two eligible servers drawn at
 * random (weighted), and the one with fewer active connections wins.
 */
#include <sys/types.h>

#include <stdlib.h>

#include "event.h"
#include "upstream.h"

static struct up_server *
draw(struct up_pool *p, uint64_t tried, uint64_t now, int total)
{
	struct up_server	*s;
	uint32_t		 r = arc4random_uniform(total);
	int			 i;

	for (i = 0; i < p->nservers; i++) {
		s = p->servers[i];
		if ((tried & (1ULL << (i & 63))) ||
		    !up_eligible(p, s, now, NULL))
			continue;
		if (r < (uint32_t)atomic_load(&s->sh->weight))
			return (s);
		r -= atomic_load(&s->sh->weight);
	}
	return (NULL);
}

static struct up_server *
random_pick(struct up_pool *p, uint64_t key, uint64_t tried)
{
	struct up_server	*a, *b;
	uint64_t		 now = ev_monotonic_ms();
	int			 i, total = 0;

	for (i = 0; i < p->nservers; i++)
		if (!(tried & (1ULL << (i & 63))) &&
		    up_eligible(p, p->servers[i], now, NULL))
			total += atomic_load(&p->servers[i]->sh->weight);
	if (total <= 0)
		return (NULL);
	a = draw(p, tried, now, total);
	b = draw(p, tried, now, total);
	if (a == NULL || b == NULL)
		return (a ? a : b);
	return (atomic_load(&b->sh->conns) < atomic_load(&a->sh->conns) ?
	    b : a);
}

const struct lb_ops lb_random = {
	.name = "random",
	.pick = random_pick
};
