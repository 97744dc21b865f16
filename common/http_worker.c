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

static int
accept_http(void *arg, int fd, int max)
{
	return (http_accept(arg, fd, max));
}

static void
worker_drain(struct proc_worker *w)
{
	struct http_worker	*hw = w->arg;

	lshare_stop(&hw->ls);
	if (hw->drain != NULL)
		hw->drain(hw);
	http_server_drain();
}

static void
worker_after(struct ev_loop *l, void *arg)
{
	struct http_worker	*hw = arg;

	http_server_collect();
	lshare_after(&hw->ls);
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

	lshare_init(&hw->ls, &hw->loop, w);
	for (i = 0; i < w->ps->nlisteners; i++) {
		struct http_server	*srv = hw->servers[i];
		struct lshare		*l = &hw->lsn[i];

		if (srv != NULL) {
			l->accept = accept_http;
			l->arg = srv;
			l->all = srv->shared_conns;
			l->mine = &srv->mine;
		}
		if (l->accept == NULL)
			continue;
		if ((l = lshare_add(&hw->ls, i, l)) == NULL)
			fatal("%s: listener %s", __func__,
			    w->ps->listeners[i].addr.text);
		/* the engine counts in the block the sharing reads */
		if (srv != NULL)
			srv->shared_conns = l->all;
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
