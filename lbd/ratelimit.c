/*
 * ratelimit.c: per-source request rates and connection counts, shared
 * by all workers.
 *
 * Each frontend with a limit, and each route with a rate limit, has a
 * table of LBD_RL_ENTRIES sources in shared memory, found by hashing the
 * address and probing a few slots; when all are taken the stalest is
 * reused.  The request rate is a
 * sliding window made of two fixed ones (the previous window counts in
 * proportion to how much of it still overlaps), as nginx's limit_req and
 * HAProxy's http_req_rate approximate it.
 *
 * A source's open connections are one count that every worker adds to;
 * each worker also keeps a ledger of its own part (struct rl_ledger), so
 * that the master takes back what a worker killed or crashed left open.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include <stdlib.h>
#include <string.h>

#include "lbd.h"
#include "log.h"

static void
key_of(const struct sockaddr *sa, uint8_t *addr, uint8_t *fam)
{
	memset(addr, 0, 16);
	if (sa->sa_family == AF_INET) {
		memcpy(addr, &((const struct sockaddr_in *)(const void *)sa)->
		    sin_addr, 4);
		*fam = 4;
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)sa;

		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
			memcpy(addr, &s6->sin6_addr.s6_addr[12], 4);
			*fam = 4;
		} else {
			memcpy(addr, &s6->sin6_addr, 16);
			*fam = 6;
		}
	} else
		*fam = 0;
}

/* The entry of <sa>, made if needed; the table is locked. */
static struct rl_entry *
entry_of(struct rl_table *t, const struct sockaddr *sa, uint64_t window)
{
	uint8_t		 addr[16], fam;
	uint64_t	 h;
	struct rl_entry	*e, *victim = NULL;
	int		 i;

	key_of(sa, addr, &fam);
	if (fam == 0)
		return (NULL);
	h = hash_bytes(addr, 16, fam ^ t->seed);
	for (i = 0; i < LBD_RL_PROBE; i++) {
		e = &t->e[(h + i) % LBD_RL_ENTRIES];
		if (e->used && e->family == fam &&
		    memcmp(e->addr, addr, 16) == 0)
			return (e);
		if (!e->used) {
			if (victim == NULL || victim->used)
				victim = e;
		} else if (e->conns == 0 && (victim == NULL ||
		    (victim->used && e->window < victim->window)))
			victim = e;
	}
	if (victim == NULL)
		return (NULL);	/* all busy with open connections */
	memset(victim, 0, sizeof(*victim));
	victim->used = 1;
	victim->family = fam;
	memcpy(victim->addr, addr, 16);
	victim->window = window;
	return (victim);
}

/*
 * The table of name <key> in shared memory, made if it is not there;
 * NULL when the segment is full.
 */
struct rl_table *
rl_table(const char *key)
{
	struct rl_table	*t;
	int		 made = 0;

	if ((t = shm_get(key, sizeof(*t), &made)) == NULL)
		return (NULL);
	/* unforeseeable slots, so that no one can aim at a source's with
	 * addresses of his own */
	if (made)
		t->seed = (uint64_t)arc4random() << 32 | arc4random();
	return (t);
}

/* The home of entry <idx1> (index + 1) in a ledger. */
static uint32_t
held_home(uint32_t idx1)
{
	return ((idx1 * 2654435761u) & (LBD_RL_HELD - 1));
}

/* Entry <idx1>'s place in <lg>, made if <make> and there is room; -1. */
static int
held_find(struct rl_ledger *lg, uint32_t idx1, int make)
{
	uint32_t	h = held_home(idx1), i;

	for (i = 0; i < LBD_RL_HELD; i++, h = (h + 1) & (LBD_RL_HELD - 1)) {
		if (lg->idx[h] == idx1)
			return ((int)h);
		if (lg->idx[h] == 0)
			break;
	}
	if (!make || lg->used >= LBD_RL_HELD / 4 * 3)
		return (-1);
	lg->idx[h] = idx1;
	lg->n[h] = 0;
	lg->used++;
	return ((int)h);
}

/* Free place <h> of <lg>, moving back the ones its use pushed on. */
static void
held_free(struct rl_ledger *lg, uint32_t h)
{
	uint32_t	j = h, k;

	lg->idx[h] = 0;
	lg->used--;
	for (;;) {
		j = (j + 1) & (LBD_RL_HELD - 1);
		if (lg->idx[j] == 0)
			return;
		k = held_home(lg->idx[j]);
		/* j may move to h unless its home lies in (h, j] */
		if (h < j ? (k <= h || k > j) : (k <= h && k > j)) {
			lg->idx[h] = lg->idx[j];
			lg->n[h] = lg->n[j];
			lg->idx[j] = 0;
			h = j;
		}
	}
}

/* This worker's part of entry <e>'s connections moves by <d>. */
static void
held_add(struct lbd_frontend *fe, struct rl_entry *e, int d)
{
	static int	 warned;
	struct rl_ledger *lg;
	int		 h;

	if (fe->held == NULL)
		return;
	lg = &fe->held->slot[stats_get_slot()];
	if ((h = held_find(lg, (uint32_t)(e - fe->rl->e) + 1, d > 0)) == -1) {
		if (d > 0 && !warned) {
			warned = 1;
			log_warnx("frontend %s: more than %d sources with open "
			    "connections in this worker: the others are not "
			    "taken back if it dies", fe->name,
			    LBD_RL_HELD / 4 * 3);
		}
		return;
	}
	if ((lg->n[h] += d) <= 0)
		held_free(lg, h);
}

/*
 * Master: the connections the gone worker of stats slot <slot> held open,
 * taken out of the sources' counts.  Returns how many.
 */
int
rl_reap(struct lbd_frontend *fe, int slot)
{
	struct rl_ledger	*lg;
	struct rl_entry		*e;
	int			 h, n = 0;

	if (fe->held == NULL || fe->rl == NULL || slot < 0 ||
	    slot >= STATS_SLOTS)
		return (0);
	lg = &fe->held->slot[slot];
	if (lg->used == 0)
		return (0);
	shm_lock(&fe->rl->lock);
	for (h = 0; h < LBD_RL_HELD; h++) {
		if (lg->idx[h] == 0)
			continue;
		e = &fe->rl->e[lg->idx[h] - 1];
		e->conns = e->conns > lg->n[h] ? e->conns - lg->n[h] : 0;
		n += lg->n[h];
		lg->idx[h] = 0;
		lg->n[h] = 0;
	}
	lg->used = 0;
	shm_unlock(&fe->rl->lock);
	return (n);
}

/*
 * Count a request in table <t>, of a frontend or a route (only look,
 * without <count>): -1 when the source is over <max> requests per
 * <window> ms, and then it is not counted.
 */
int
rl_request(struct rl_table *t, uint32_t max, uint32_t window,
    const struct sockaddr *sa, uint64_t now, int count)
{
	struct rl_entry	*e;
	uint64_t	 w = now / window, into;
	double		 rate;
	int		 over = 0;

	if (t == NULL)
		return (0);
	shm_lock(&t->lock);
	if ((e = entry_of(t, sa, w)) != NULL) {
		if (e->window != w) {
			e->prev = e->window + 1 == w ? e->cur : 0;
			e->cur = 0;
			e->window = w;
		}
		into = now % window;
		rate = e->prev * (double)(window - into) / window + e->cur;
		if (rate >= max)
			over = 1;
		else if (count)
			e->cur++;
	}
	shm_unlock(&t->lock);
	return (over ? -1 : 0);
}

/* Count a connection; -1 when the source has too many open. */
int
rl_conn_open(struct lbd_frontend *fe, const struct sockaddr *sa)
{
	struct rl_entry	*e;
	int		 over = 0;

	if (fe->rl == NULL || fe->conn_max == 0)
		return (0);
	shm_lock(&fe->rl->lock);
	if ((e = entry_of(fe->rl, sa, 0)) != NULL) {
		if ((uint32_t)e->conns >= fe->conn_max)
			over = 1;
		e->conns++;	/* counted either way: closed the same way */
		held_add(fe, e, 1);
	}
	shm_unlock(&fe->rl->lock);
	return (over ? -1 : 0);
}

void
rl_conn_close(struct lbd_frontend *fe, const struct sockaddr *sa)
{
	struct rl_entry	*e;

	if (fe->rl == NULL || fe->conn_max == 0)
		return;
	shm_lock(&fe->rl->lock);
	if ((e = entry_of(fe->rl, sa, 0)) != NULL && e->conns > 0) {
		e->conns--;
		held_add(fe, e, -1);
	}
	shm_unlock(&fe->rl->lock);
}
