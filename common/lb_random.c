/*
 * lb_random.c: the power of two choices: two eligible servers drawn at
 * random (weighted), and the one with fewer active connections wins.
 */
#include <sys/types.h>

#include <stdlib.h>

#include "event.h"
#include "upstream.h"

static struct up_server *
draw(struct up_pool *p, const int w[UP_MAXSERVERS], int total)
{
	uint32_t	r = arc4random_uniform(total);
	int		i;

	for (i = 0; i < p->nservers; i++) {
		if (r < (uint32_t)w[i])
			return (p->servers[i]);
		r -= w[i];
	}
	return (NULL);
}

static struct up_server *
random_pick(struct up_pool *p, uint64_t key, uint64_t tried)
{
	struct up_server	*a, *b;
	int			 total, w[UP_MAXSERVERS];

	if ((total = up_weights(p, tried, ev_monotonic_ms(), 1, w)) <= 0)
		return (NULL);
	a = draw(p, w, total);
	b = draw(p, w, total);
	if (a == NULL || b == NULL)
		return (a ? a : b);
	return (shm_count_get(&b->sh->conns) < shm_count_get(&a->sh->conns) ?
	    b : a);
}

const struct lb_ops lb_random = {
	.name = "random",
	.pick = random_pick
};
