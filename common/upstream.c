/*
 * upstream.c: pools, servers and their shared state (see upstream.h).
 */
#include <sys/types.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "event.h"
#include "log.h"
#include "upstream.h"

static const struct lb_ops *lbs[] = {
	&lb_roundrobin, &lb_static_rr, &lb_leastconn, &lb_source, &lb_uri,
	&lb_hdr, &lb_url_param, &lb_random
};

const struct lb_ops *
lb_find(const char *name)
{
	size_t	i;

	for (i = 0; i < nitems(lbs); i++)
		if (strcmp(lbs[i]->name, name) == 0)
			return (lbs[i]);
	return (NULL);
}

/*
 * A pool named <name>; its shared state is found under <key> (unique in
 * the daemon, stable across reloads).
 */
struct up_pool *
up_pool_new(const char *name, const char *key, const struct lb_ops *lb)
{
	struct up_pool	*p;
	char		 sk[SHM_NAMELEN];

	if ((p = calloc(1, sizeof(*p))) == NULL)
		fatal("%s", __func__);
	strlcpy(p->name, name, sizeof(p->name));
	p->lb = lb ? lb : &lb_roundrobin;
	p->fail_max = 3;
	p->fail_timeout = 10000;
	snprintf(sk, sizeof(sk), "pool/%s", key);
	/*
	 * No room (names of earlier confs hold theirs): a private block,
	 * so that the loader goes on to report it (up_pool_shm_full) and
	 * the conf is refused, a reload keeping the running one.
	 */
	if ((p->sh = shm_get(sk, sizeof(*p->sh), NULL)) == NULL) {
		if ((p->sh = calloc(1, sizeof(*p->sh))) == NULL)
			fatal("%s", __func__);
		p->private = 1;
	}
	return (p);
}

struct up_server *
up_server_add(struct up_pool *p, const char *name, const struct net_addr *a,
    int weight, int maxconn, int backup)
{
	struct up_server	*s;
	char			 sk[SHM_NAMELEN];
	int			 created;

	if (p->nservers >= UP_MAXSERVERS)
		return (NULL);
	if ((s = calloc(1, sizeof(*s))) == NULL)
		fatal("%s", __func__);
	strlcpy(s->name, name, sizeof(s->name));
	s->addr = *a;
	s->weight = weight > 0 ? weight : 0;	/* 0: no new requests */
	s->maxconn = maxconn;
	s->backup = backup;
	s->pool = p;
	s->index = p->nservers;
	TAILQ_INIT(&s->idle);
	/* the pool block's name is "pool/<key>"; servers hang below it */
	snprintf(sk, sizeof(sk), "srv/%p/%s", (void *)p->sh, name);
	if ((s->sh = shm_get(sk, sizeof(*s->sh), &created)) == NULL) {
		if ((s->sh = calloc(1, sizeof(*s->sh))) == NULL)
			fatal("%s", __func__);
		s->private = 1;
		created = 1;
	}
	s->created = created;
	p->servers[p->nservers++] = s;
	if (p->lb->init != NULL && p->nservers == 1)
		p->lb->init(p);
	return (s);
}

/*
 * The conf's weights into the shared state, from the daemon's setup:
 * once the conf is known good, so that a reload that fails leaves the
 * running weights alone.  A weight set at run time (lbdctl) outlives a
 * reload, unless the reload changes the conf's weight for this server:
 * then the conf wins, as the operator just asked for it.  Weight 0
 * takes no new requests.
 */
void
up_pool_commit(struct up_pool *p)
{
	int	i;

	for (i = 0; i < p->nservers; i++) {
		struct up_server	*s = p->servers[i];

		if (s->created ||
		    atomic_load(&s->sh->conf_weight) != s->weight) {
			atomic_store(&s->sh->weight, s->weight);
			atomic_store(&s->sh->conf_weight, s->weight);
		}
		s->created = 0;
	}
}

/*
 * Master: the connections a gone process (stats slot <slot>) left
 * counted on the pool's servers, taken back.  Returns how many.
 */
int
up_pool_reap(struct up_pool *p, int slot)
{
	int	i, n = 0;

	for (i = 0; i < p->nservers; i++)
		n += shm_count_reap(&p->servers[i]->sh->conns, slot);
	return (n);
}

void
up_pool_free(struct up_pool *p)
{
	int	i;

	if (p == NULL)
		return;
	for (i = 0; i < p->nservers; i++) {
		if (p->servers[i]->private)
			free(p->servers[i]->sh);
		free(p->servers[i]);
	}
	if (p->private)
		free(p->sh);
	free(p);
}

/* Whether <p> or one of its servers found no room in shared memory. */
int
up_pool_shm_full(const struct up_pool *p)
{
	int	i;

	for (i = 0; i < p->nservers; i++)
		if (p->servers[i]->private)
			return (1);
	return (p->private);
}

static uint64_t
mono_ms(void)
{
	return (ev_monotonic_ms());
}

/*
 * Is <s> up: ready, healthy, not skipped after failures, and of a weight
 * that takes new requests?  <now>: monotonic ms, 0 to read.
 */
static int
up_up(const struct up_server *s, uint64_t now)
{
	struct up_shared	*sh = s->sh;

	return (atomic_load(&sh->admin) == UP_READY &&
	    atomic_load(&sh->health) == UP_HEALTHY &&
	    atomic_load(&sh->skip_until) <= (now ? now : mono_ms()) &&
	    atomic_load(&sh->weight) > 0);
}

/* Can <s> take a new connection now: up, and not at its maxconn? */
int
up_usable(const struct up_server *s, uint64_t now)
{
	return (up_up(s, now) && (s->maxconn == 0 ||
	    shm_count_get(&s->sh->conns) < s->maxconn));
}

/*
 * Whether <s> is in the tier to choose from: the normal servers, or the
 * backups when no normal server is up.  <full> is set when the server
 * is up but at its connection limit.
 */
int
up_eligible(struct up_pool *p, struct up_server *s, uint64_t now, int *full)
{
	int	i, normal_up = 0;

	if (full != NULL)
		*full = 0;
	if (s->backup) {
		for (i = 0; i < p->nservers; i++) {
			struct up_server *o = p->servers[i];

			if (!o->backup && up_up(o, now)) {
				normal_up = 1;
				break;
			}
		}
		if (normal_up)
			return (0);
	}
	if (up_usable(s, now))
		return (1);
	if (full != NULL && s->maxconn > 0 &&
	    shm_count_get(&s->sh->conns) >= s->maxconn &&
	    atomic_load(&s->sh->admin) == UP_READY &&
	    atomic_load(&s->sh->health) == UP_HEALTHY)
		*full = 1;
	return (0);
}

/*
 * The weight of each server that may be chosen now (0 for the others)
 * into <w>, read once: a choice made over two passes would otherwise
 * see a server fill up (another worker) between them and find none.
 * <runtime>: the weights set at run time, else the conf's.  Returns
 * their sum.
 */
int
up_weights(struct up_pool *p, uint64_t tried, uint64_t now, int runtime,
    int w[UP_MAXSERVERS])
{
	int	i, total = 0;

	for (i = 0; i < p->nservers; i++) {
		struct up_server	*s = p->servers[i];

		w[i] = 0;
		if (!(tried & (1ULL << (i & 63))) &&
		    up_eligible(p, s, now, NULL))
			w[i] = runtime ? atomic_load(&s->sh->weight) :
			    s->weight;
		total += w[i];
	}
	return (total);
}

/*
 * Choose a server; <key> for the hashing algorithms, <tried> a bitmap of
 * servers (by index) not to choose again.  NULL when none can take it.
 */
struct up_server *
up_pick(struct up_pool *p, uint64_t key, uint64_t tried)
{
	return (p->lb->pick(p, key, tried));
}

int
up_nusable(struct up_pool *p)
{
	uint64_t	now = mono_ms();
	int		i, n = 0;

	for (i = 0; i < p->nservers; i++)
		if (up_eligible(p, p->servers[i], now, NULL))
			n++;
	return (n);
}

void
up_taken(struct up_server *s)
{
	shm_count_add(&s->sh->conns, 1);
	if (s->pool->lb->taken != NULL)
		s->pool->lb->taken(s->pool, s);
}

void
up_dropped(struct up_server *s)
{
	shm_count_add(&s->sh->conns, -1);
	if (s->pool->lb->dropped != NULL)
		s->pool->lb->dropped(s->pool, s);
}

/*
 * A connection or request to <s> failed: after fail_max in a row the
 * server is skipped for fail_timeout ms (passive health).
 */
void
up_failed(struct up_server *s, uint64_t now)
{
	struct up_pool	*p = s->pool;
	int		 f = atomic_fetch_add(&s->sh->fails, 1) + 1;

	atomic_fetch_add(&s->sh->errors, 1);
	if (p->fail_max > 0 && f >= p->fail_max) {
		atomic_store(&s->sh->skip_until, (now ? now : mono_ms()) +
		    p->fail_timeout);
		atomic_store(&s->sh->fails, 0);
		log_warnx("server %s/%s failed %d times in a row, skipped for "
		    "%u ms", p->name, s->name, f, p->fail_timeout);
		if (p->lb->down != NULL)
			p->lb->down(p, s);
	}
}

void
up_succeeded(struct up_server *s)
{
	if (atomic_load(&s->sh->fails) != 0)
		atomic_store(&s->sh->fails, 0);
}

const char *
up_state_name(const struct up_server *s)
{
	switch (atomic_load(&s->sh->admin)) {
	case UP_MAINT:
		return ("MAINT");
	case UP_DRAIN:
		return ("DRAIN");
	}
	if (atomic_load(&s->sh->health) == UP_DOWN)
		return ("DOWN");
	if (atomic_load(&s->sh->skip_until) > mono_ms())
		return ("FAILING");
	return ("UP");
}
