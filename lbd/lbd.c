/*
 * lbd: the load balancer.
 */
#include <sys/types.h>

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http_worker.h"
#include "log.h"
#include "lbd.h"
#include "proc.h"
#include "proxy.h"
#include "tunnel.h"

struct lbd_conf		*lconf;
static struct http_worker hw;

static int
tcp_accept(void *arg, int fd, int max)
{
	return (relay_tcp_accept(arg, fd, &hw.loop, max));
}

static void
w_after(struct http_worker *h)
{
	proxy_collect();
	tunnel_collect();
	relay_tcp_collect();
}

static int
w_busy(struct http_worker *h)
{
	return (tunnel_count() > 0 || relay_tcp_count() > 0);
}

static void
w_drain(struct http_worker *h)
{
	proxy_drain();
}

/* Connection hooks of HTTP listeners: sessions and per-source limits. */
static int
c_open(struct http_conn *c)
{
	struct lbd_listener	*l = (struct lbd_listener *)c->srv;
	struct lbd_frontend	*fe = l->fe;

	stats_inc(fe->m_conns);
	/* the allow list, before any byte of the request is read */
	if (fe->has_acl && !net_acl_allows(&fe->acl, &c->peer.sa)) {
		stats_inc(fe->m_denied);
		return (-1);
	}
	stats_gauge_add(fe->m_sessions, 1);
	/* over the limit: its first request is answered, logged, closed */
	if (fe->conn_max > 0 && rl_conn_open(fe, &c->peer.sa) == -1) {
		stats_inc(fe->m_limited);
		c->ud = &fe->conn_status;
	}
	return (0);
}

static void
c_close(struct http_conn *c)
{
	struct lbd_listener	*l = (struct lbd_listener *)c->srv;

	stats_gauge_add(l->fe->m_sessions, -1);
	if (l->fe->conn_max > 0)
		rl_conn_close(l->fe, &c->peer.sa);
}

/* A request the engine refused itself: logged like the others. */
static void
c_refused(struct http_conn *c, int status, const char *why)
{
	struct lbd_listener	*l = (struct lbd_listener *)c->srv;

	httplog_refused(c, l->fe, status);
}

static int
lbd_worker(struct proc_worker *w)
{
	struct lbd_listener	*l;
	int			 i;

	lconf = w->conf;
	if (http_worker_init(&hw, w) == -1)
		fatal("http_worker_init");
	for (i = 0; i < w->ps->nlisteners; i++) {
		if (i == lconf->control_index)
			continue;	/* the checker's */
		if (w->ps->listeners[i].arg == lconf->stats) {
			hw.servers[i] = lconf->stats;
			continue;
		}
		l = w->ps->listeners[i].arg;
		if (l->fe->mode == MODE_TCP) {
			hw.lsn[i].accept = tcp_accept;
			hw.lsn[i].arg = l;
			hw.lsn[i].all = l->conns;
			hw.lsn[i].mine = &l->mine;
			continue;
		}
		l->srv.conn_open = c_open;
		l->srv.conn_close = c_close;
		l->srv.bad_request = c_refused;
		l->srv.abort_on_close = l->fe->abort_on_close;
		hw.servers[i] = &l->srv;
	}
	hw.after = w_after;
	hw.busy = w_busy;
	hw.drain = w_drain;
	return (http_worker_run(&hw));
}

static const struct proc_ops lbd_ops = {
	.name = "lbd",
	.conffile = LBD_CONF,
	.grammar = lbd_grammar,
	.load = lbd_load,
	.unload = lbd_unload,
	.setup = lbd_setup,
	.child_gone = lbd_child_gone,
	.worker = lbd_worker,
	.roles = {
		{ "checker", checker_count, checker_main },
		{ NULL }
	}
};

int
main(int argc, char *argv[])
{
	return (proc_main(argc, argv, &lbd_ops));
}
