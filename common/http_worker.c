/*
 * http_worker.c: the event loop of an HTTP worker (see http_worker.h).
 */
#include <sys/types.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "http_worker.h"
#include "log.h"
#include "shm.h"

/*
 * Read the limit keywords of <block> over <inherit> (or the defaults).
 * Keywords absent from the block keep the inherited value.
 */
void
http_limits_load(const struct conf_node *block, struct http_limits *l,
    const struct http_limits *inherit)
{
	struct conf_node	*n;

	*l = inherit ? *inherit : http_default_limits;
	if ((n = conf_get(block, "max-request-line")) != NULL)
		l->max_reqline = n->args[0].num;
	if ((n = conf_get(block, "max-header-size")) != NULL)
		l->max_head = n->args[0].num;
	if ((n = conf_get(block, "max-headers")) != NULL)
		l->max_headers = n->args[0].num;
	if ((n = conf_get(block, "max-body-size")) != NULL)
		l->max_body = n->args[0].num;
	if ((n = conf_get(block, "header-timeout")) != NULL)
		l->header_timeout = n->args[0].num;
	if ((n = conf_get(block, "body-timeout")) != NULL)
		l->body_timeout = n->args[0].num;
	if ((n = conf_get(block, "keepalive-timeout")) != NULL)
		l->idle_timeout = n->args[0].num ? n->args[0].num : 1;
	if ((n = conf_get(block, "send-timeout")) != NULL)
		l->send_timeout = n->args[0].num;
	if (l->max_reqline > l->max_head)
		l->max_reqline = l->max_head;
}

/*
 * Sharing the connections out among the workers.  All workers wait on
 * the same listening sockets with EPOLLEXCLUSIVE, and the kernel wakes
 * the first idle waiter in its queue: left alone, one worker takes most
 * of a burst of connections (wrk's 50 went 13/37 to 4/46) and keeps them
 * for their whole life.  So a worker takes connections only while it
 * holds no more than the others' average plus a slack (2, and 1/32 of
 * the listener's connections); past that it stops watching the listener
 * (it leaves the socket's wait queue, so new connections wake another
 * worker) until it is back within its share, or for HTTP_WORKER_YIELD ms
 * at most, after which it takes at least one (a stuck or dead worker
 * never strands connections in the queue).  The counts are the
 * listener's block in shared memory and the worker's own.
 */
#define HTTP_WORKER_PAUSE	20	/* ms a full listener rests */
#define HTTP_WORKER_YIELD	1	/* ms a worker over its share rests */
#define HTTP_WORKER_BATCH	16	/* connections taken per wakeup */

static struct http_worker	*self;

static int
accept_budget(struct http_worker *hw, int i)
{
	struct http_worker_lsn	*l = &hw->lsn[i];
	int			 n = hw->w->count, all, others, b;

	if (n <= 1 || l->all == NULL)
		return (HTTP_WORKER_BATCH);
	all = atomic_load_explicit(l->all, memory_order_relaxed);
	if ((others = all - *l->mine) < 0)
		others = 0;
	b = others / (n - 1) + 2 + all / 32 + 1 - *l->mine;
	if (b > HTTP_WORKER_BATCH)
		b = HTTP_WORKER_BATCH;
	return (b < 0 ? 0 : b);
}

static void	accept_event(struct ev_io *, uint32_t);

static void
listen_again(struct http_worker *hw, int i)
{
	if (hw->yielding[i]) {
		hw->yielding[i] = 0;
		hw->nyielding--;
	}
	if (hw->w->draining || hw->lio[i].active)
		return;
	if (ev_io_add(&hw->loop, &hw->lio[i], hw->w->ps->listeners[i].fd,
	    EPOLLIN | EPOLLEXCLUSIVE, accept_event, hw) == -1)
		log_warn("%s: listener %s", __func__,
		    hw->w->ps->listeners[i].addr.text);
}

static void
resume_listener(struct ev_timer *t)
{
	struct http_worker	*hw = self;
	int			 i = t - hw->paused;

	hw->forced[i] = hw->yielding[i];
	listen_again(hw, i);
}

/*
 * Stop watching listener <i> for a while: it is at its maxconn (its
 * level-triggered readiness would spin the loop; connections wait in the
 * listen queue meanwhile), or this worker holds more than its share.
 */
static void
pause_listener(struct http_worker *hw, int i, int yield)
{
	ev_io_del(&hw->loop, &hw->lio[i]);
	if (yield) {
		hw->yielding[i] = 1;
		hw->nyielding++;
	}
	ev_timer_add(&hw->loop, &hw->paused[i],
	    yield ? HTTP_WORKER_YIELD : HTTP_WORKER_PAUSE);
}

static void
accept_event(struct ev_io *io, uint32_t ev)
{
	struct http_worker	*hw = io->arg;
	int			 i = io - hw->lio, max;

	max = accept_budget(hw, i);
	if (max == 0 && hw->forced[i])
		max = 1;
	hw->forced[i] = 0;
	if (max == 0)
		pause_listener(hw, i, 1);
	else if (hw->lsn[i].accept(hw->lsn[i].arg, io->fd, max) == -1)
		pause_listener(hw, i, 0);
}

/* Listeners left to the others come back as soon as we are in share. */
static void
yielders_check(struct http_worker *hw)
{
	int	i;

	for (i = 0; i < hw->w->ps->nlisteners && hw->nyielding > 0; i++)
		if (hw->yielding[i] && accept_budget(hw, i) > 0) {
			ev_timer_del(&hw->loop, &hw->paused[i]);
			listen_again(hw, i);
		}
}

static int
accept_http(void *arg, int fd, int max)
{
	return (http_accept(arg, fd, max));
}

static void
worker_drain(struct proc_worker *w)
{
	struct http_worker	*hw = w->arg;
	int			 i;

	for (i = 0; i < w->ps->nlisteners; i++) {
		ev_timer_del(&hw->loop, &hw->paused[i]);
		if (hw->lsn[i].accept == NULL)
			continue;
		if (hw->lio[i].active)
			ev_io_del(&hw->loop, &hw->lio[i]);
		close(w->ps->listeners[i].fd);
	}
	if (hw->drain != NULL)
		hw->drain(hw);
	http_server_drain();
}

static void
worker_after(struct ev_loop *l, void *arg)
{
	struct http_worker	*hw = arg;

	http_server_collect();
	if (hw->nyielding > 0)
		yielders_check(hw);
	if (hw->after != NULL)
		hw->after(hw);
	if (hw->w->draining && http_server_nconns() == 0 &&
	    (hw->busy == NULL || !hw->busy(hw)))
		ev_break(l);
}

/* Before http_worker_run(): set hw->servers[i] or hw->lsn[i] for each
 * listener i the worker serves. */
int
http_worker_init(struct http_worker *hw, struct proc_worker *w)
{
	memset(hw, 0, sizeof(*hw));
	self = hw;
	hw->w = w;
	w->arg = hw;
	if (ev_init(&hw->loop) == -1)
		return (-1);
	http_server_init(&hw->loop);
	return (0);
}

int
http_worker_run(struct http_worker *hw)
{
	struct proc_worker	*w = hw->w;
	char			 key[SHM_NAMELEN];
	int			 i;

	/*
	 * All workers wait on the same listening sockets with
	 * EPOLLEXCLUSIVE, so that a reload's new workers take over the
	 * same accept queues and no connection is refused meanwhile (with
	 * SO_REUSEPORT each worker would have its own queue, reset when it
	 * leaves).
	 */
	for (i = 0; i < w->ps->nlisteners; i++) {
		struct http_server	*srv = hw->servers[i];
		struct http_worker_lsn	*l = &hw->lsn[i];

		ev_timer_init(&hw->paused[i], resume_listener, hw);
		if (srv != NULL) {
			if (srv->shared_conns == NULL) {
				snprintf(key, sizeof(key), "accept/%s",
				    w->ps->listeners[i].addr.text);
				srv->shared_conns = shm_get(key,
				    sizeof(*srv->shared_conns), NULL);
			}
			l->accept = accept_http;
			l->arg = srv;
			l->all = srv->shared_conns;
			l->mine = &srv->mine;
		}
		if (l->accept == NULL)
			continue;
		if (ev_io_add(&hw->loop, &hw->lio[i], w->ps->listeners[i].fd,
		    EPOLLIN | EPOLLEXCLUSIVE, accept_event, hw) == -1)
			fatal("%s: listener %s", __func__,
			    w->ps->listeners[i].addr.text);
	}
	w->drain = worker_drain;
	hw->loop.after = worker_after;
	hw->loop.after_arg = hw;
	if (proc_worker_watch(w, &hw->loop) == -1)
		fatal("%s: proc_worker_watch", __func__);
	if (ev_run(&hw->loop) == -1)
		fatal("%s: epoll_wait", __func__);
	ev_free(&hw->loop);
	return (0);
}
