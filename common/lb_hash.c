/*
 * lb_hash.c: source-address and URI hashing.
 *
 * Rendezvous (highest random weight) hashing: each eligible server
 * scores hash(key, server), weighted, and the highest score wins.  A key
 * keeps its server as long as that server is eligible; when a server
 * leaves, only its own keys move.  The caller passes the key already
 * hashed (hash_bytes of the client address, of the path, or of a header
 * field's or query parameter's value: proxy_hash_request()).
 */
#include <sys/types.h>

#include <math.h>
#include <string.h>

#include "event.h"
#include "upstream.h"

static struct up_server *
hash_pick(struct up_pool *p, uint64_t key, uint64_t tried)
{
	struct up_server	*best = NULL, *s;
	uint64_t		 now = ev_monotonic_ms(), h;
	double			 bestscore = 0, score, u;
	int			 i;

	for (i = 0; i < p->nservers; i++) {
		s = p->servers[i];
		if ((tried & (1ULL << (i & 63))) ||
		    !up_eligible(p, s, now, NULL))
			continue;
		h = hash_bytes(s->name, strlen(s->name), key);
		/* weighted rendezvous: -w / ln(u), u uniform in (0, 1) */
		u = ((h >> 11) + 0.5) / 9007199254740992.0;
		score = -(double)atomic_load(&s->sh->weight) / log(u);
		if (best == NULL || score > bestscore) {
			best = s;
			bestscore = score;
		}
	}
	return (best);
}

const struct lb_ops lb_source = {
	.name = "source",
	.pick = hash_pick
};

const struct lb_ops lb_uri = {
	.name = "uri",
	.pick = hash_pick
};

const struct lb_ops lb_hdr = {
	.name = "hdr",
	.pick = hash_pick
};

const struct lb_ops lb_url_param = {
	.name = "url-param",
	.pick = hash_pick
};
