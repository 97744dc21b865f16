/*
 * http_worker.c: the event loop of an HTTP worker (see http_worker.h).
 */
#include <sys/types.h>

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "http_worker.h"
#include "log.h"

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

#define HTTP_WORKER_PAUSE	20	/* ms a full listener rests */

static struct http_worker	*self;

static void
resume_listener(struct ev_timer *t)
{
	struct http_worker	*hw = self;
	int			 i = (struct ev_timer *)t - hw->paused;

	if (hw->w->draining || hw->lio[i].active)
		return;
	if (ev_io_add(&hw->loop, &hw->lio[i], hw->w->ps->listeners[i].fd,
	    EPOLLIN | EPOLLEXCLUSIVE, hw->lio[i].cb, hw->servers[i]) == -1)
		log_warn("%s: listener %s", __func__,
		    hw->w->ps->listeners[i].addr.text);
}

static void
accept_event(struct ev_io *io, uint32_t ev)
{
	struct http_server	*srv = io->arg;
	struct http_worker	*hw = self;
	int			 i;

	if (http_accept(srv, io->fd) != -1)
		return;
	/*
	 * The listener is at its maxconn: stop watching it for a while,
	 * or its level-triggered readiness would spin the loop;
	 * connections wait in the listen queue meanwhile.
	 */
	i = io - hw->lio;
	ev_io_del(&hw->loop, io);
	ev_timer_add(&hw->loop, &hw->paused[i], HTTP_WORKER_PAUSE);
}

static void
worker_drain(struct proc_worker *w)
{
	struct http_worker	*hw = w->arg;
	int			 i;

	for (i = 0; i < w->ps->nlisteners; i++) {
		ev_timer_del(&hw->loop, &hw->paused[i]);
		if (hw->servers[i] == NULL)
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
	if (hw->after != NULL)
		hw->after(hw);
	if (hw->w->draining && http_server_nconns() == 0 &&
	    (hw->busy == NULL || !hw->busy(hw)))
		ev_break(l);
}

/* Before http_worker_run(): set hw->servers[i] for each listener i. */
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
	int			 i;

	/*
	 * All workers wait on the same listening sockets with
	 * EPOLLEXCLUSIVE, so that a reload's new workers take over the
	 * same accept queues and no connection is refused meanwhile (with
	 * SO_REUSEPORT each worker would have its own queue, reset when it
	 * leaves).
	 */
	for (i = 0; i < w->ps->nlisteners; i++) {
		ev_timer_init(&hw->paused[i], resume_listener, hw);
		if (hw->servers[i] == NULL)
			continue;
		if (ev_io_add(&hw->loop, &hw->lio[i], w->ps->listeners[i].fd,
		    EPOLLIN | EPOLLEXCLUSIVE, accept_event,
		    hw->servers[i]) == -1)
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
