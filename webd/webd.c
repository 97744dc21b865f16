/*
 * webd: the web server.  Static files and a reverse proxy to the app
 * servers, on common/'s pre-fork master and HTTP engine.
 */
#include <sys/types.h>

#include <stdlib.h>
#include <string.h>

#include "http_worker.h"
#include "log.h"
#include "proc.h"
#include "proxy.h"
#include "tunnel.h"
#include "webd.h"

struct webd_conf	*wconf;
static struct http_worker hw;

static void
w_after(struct http_worker *h)
{
	proxy_collect();
	tunnel_collect();
	stats_gauge_set(wconf->m_conns, http_server_nconns());
}

static int
w_busy(struct http_worker *h)
{
	return (tunnel_count() > 0);
}

static void
w_drain(struct http_worker *h)
{
	proxy_drain();
}

static void
w_reopen(struct proc_worker *w)
{
	access_log_reopen_worker(w->conf);
}

static int
webd_worker(struct proc_worker *w)
{
	int	i;

	wconf = w->conf;
	if (http_worker_init(&hw, w) == -1)
		fatal("http_worker_init");
	for (i = 0; i < w->ps->nlisteners; i++)
		hw.servers[i] = w->ps->listeners[i].arg;
	hw.after = w_after;
	hw.busy = w_busy;
	hw.drain = w_drain;
	w->reopen = w_reopen;
	return (http_worker_run(&hw));
}

static const struct proc_ops webd_ops = {
	.name = "webd",
	.conffile = WEBD_CONF,
	.grammar = webd_grammar,
	.load = webd_load,
	.unload = webd_unload,
	.setup = webd_setup,
	.child_gone = webd_child_gone,
	.worker = webd_worker,
	.reopen = access_log_reopen,
};

int
main(int argc, char *argv[])
{
	return (proc_main(argc, argv, &webd_ops));
}
