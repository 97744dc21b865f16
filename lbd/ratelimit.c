/*
 * ratelimit.c: per-source request rates and connection counts, shared
 * by all workers.
 *
 * Each frontend with a limit has a table of LBD_RL_ENTRIES sources in
 * shared memory, found by hashing the address and probing a few slots;
 * when all are taken the stalest is reused.  The request rate is a
 * sliding window made of two fixed ones (the previous window counts in
 * proportion to how much of it still overlaps), as nginx's limit_req and
 * HAProxy's http_req_rate approximate it.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include <string.h>

#include "lbd.h"

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
	h = up_hash(addr, 16, fam);
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

/* Count a request; -1 when the source is over the frontend's rate. */
int
rl_request(struct lbd_frontend *fe, const struct sockaddr *sa, uint64_t now)
{
	struct rl_entry	*e;
	uint64_t	 w = now / fe->rate_window, into;
	double		 rate;
	int		 over = 0;

	if (fe->rl == NULL)
		return (0);
	shm_lock(&fe->rl->lock);
	if ((e = entry_of(fe->rl, sa, w)) != NULL) {
		if (e->window != w) {
			e->prev = e->window + 1 == w ? e->cur : 0;
			e->cur = 0;
			e->window = w;
		}
		into = now % fe->rate_window;
		rate = e->prev * (double)(fe->rate_window - into) /
		    fe->rate_window + e->cur;
		if (rate >= fe->rate_max)
			over = 1;
		else
			e->cur++;
	}
	shm_unlock(&fe->rl->lock);
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
	if ((e = entry_of(fe->rl, sa, 0)) != NULL && e->conns > 0)
		e->conns--;
	shm_unlock(&fe->rl->lock);
}
