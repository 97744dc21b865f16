/*
 * lshare.c: listening sockets shared by the workers (see lshare.h).
 */
#include <sys/types.h>

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "lshare.h"
#include "shm.h"

static void	accept_event(struct ev_io *, uint32_t);

/* How many connections listener <i> may take now (0: none). */
static int
budget(struct lshare_set *s, int i)
{
	struct lshare	*l = &s->sh[i];
	int		 n = s->w->count, all, others, b;

	if (n <= 1 || l->all == NULL || l->mine == NULL)
		return (LSHARE_BATCH);
	all = shm_count_get(l->all);
	if ((others = all - *l->mine) < 0)
		others = 0;
	b = others / (n - 1) + 2 + all / 32 + 1 - *l->mine;
	if (b > LSHARE_BATCH)
		b = LSHARE_BATCH;
	return (b < 0 ? 0 : b);
}

static void
listen_again(struct lshare_set *s, int i)
{
	if (s->yielding[i]) {
		s->yielding[i] = 0;
		s->nyielding--;
	}
	if (s->stopped || s->io[i].active)
		return;
	if (ev_io_add(s->loop, &s->io[i], s->w->ps->listeners[i].fd,
	    EPOLLIN | EPOLLEXCLUSIVE, accept_event, s) == -1)
		log_warn("%s: listener %s", __func__,
		    s->w->ps->listeners[i].addr.text);
}

static void
resume(struct ev_timer *t)
{
	struct lshare_set	*s = t->arg;
	int			 i = t - s->paused;

	s->forced[i] = s->yielding[i];
	listen_again(s, i);
}

static void
pause_listener(struct lshare_set *s, int i, int yield)
{
	ev_io_del(s->loop, &s->io[i]);
	if (yield) {
		s->yielding[i] = 1;
		s->nyielding++;
	}
	ev_timer_add(s->loop, &s->paused[i],
	    yield ? LSHARE_YIELD : LSHARE_PAUSE);
}

static void
accept_event(struct ev_io *io, uint32_t ev)
{
	struct lshare_set	*s = io->arg;
	int			 i = io - s->io, max;

	max = budget(s, i);
	if (max == 0 && s->forced[i])
		max = 1;
	s->forced[i] = 0;
	if (max == 0)
		pause_listener(s, i, 1);
	else if (s->sh[i].accept(s->sh[i].arg, io->fd, max) == -1)
		pause_listener(s, i, 0);
}

void
lshare_init(struct lshare_set *s, struct ev_loop *loop,
    struct proc_worker *w)
{
	int	i;

	memset(s, 0, sizeof(*s));
	s->loop = loop;
	s->w = w;
	for (i = 0; i < PROC_MAXLISTENERS; i++)
		ev_timer_init(&s->paused[i], resume, s);
}

/*
 * Master: take back the connections a gone process (stats slot <slot>)
 * left counted on the listeners of <ps>.  Returns how many.
 */
int
lshare_reap(const struct proc_settings *ps, int slot)
{
	char			 key[SHM_NAMELEN];
	struct shm_count	*all;
	int			 i, n = 0;

	for (i = 0; i < ps->nlisteners; i++) {
		snprintf(key, sizeof(key), "accept/%s",
		    ps->listeners[i].addr.text);
		if ((all = shm_get(key, sizeof(*all), NULL)) != NULL)
			n += shm_count_reap(all, slot);
	}
	return (n);
}

/* Serve listener <i> of the worker's settings as <sh> says. */
struct lshare *
lshare_add(struct lshare_set *s, int i, const struct lshare *sh)
{
	char	key[SHM_NAMELEN];

	s->sh[i] = *sh;
	if (s->sh[i].all == NULL) {
		snprintf(key, sizeof(key), "accept/%s",
		    s->w->ps->listeners[i].addr.text);
		s->sh[i].all = shm_get(key, sizeof(*s->sh[i].all), NULL);
	}
	if (ev_io_add(s->loop, &s->io[i], s->w->ps->listeners[i].fd,
	    EPOLLIN | EPOLLEXCLUSIVE, accept_event, s) == -1)
		return (NULL);
	return (&s->sh[i]);
}

/* After each turn of the loop: listeners left to the others come back
 * as soon as the worker is within its share. */
void
lshare_after(struct lshare_set *s)
{
	int	i;

	for (i = 0; i < s->w->ps->nlisteners && s->nyielding > 0; i++)
		if (s->yielding[i] && budget(s, i) > 0) {
			ev_timer_del(s->loop, &s->paused[i]);
			listen_again(s, i);
		}
}

/* The worker is draining: it stops accepting and closes its copies of
 * the listening sockets. */
void
lshare_stop(struct lshare_set *s)
{
	int	i;

	s->stopped = 1;
	for (i = 0; i < s->w->ps->nlisteners; i++) {
		ev_timer_del(s->loop, &s->paused[i]);
		if (s->sh[i].accept == NULL)
			continue;
		if (s->io[i].active)
			ev_io_del(s->loop, &s->io[i]);
		close(s->w->ps->listeners[i].fd);
	}
}
