/*
 * echod: a line echo server on common/, for the foundation's tests.
 *
 * Each line a client sends is answered with the conf's prefix and the
 * line.  A few lines are commands:
 *	sleep MS	answer "slept MS" after MS milliseconds (a slow request)
 *	pid		answer the worker's pid
 *	metrics		answer the Prometheus rendering of the statistics
 *	quit		close the connection
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "conf.h"
#include "event.h"
#include "log.h"
#include "net.h"
#include "proc.h"
#include "stats.h"

#define ECHOD_MAXLINE	4096		/* a longer line closes */
#define ECHOD_MAXOUT	(1024 * 1024)	/* output buffered per client */

static const struct conf_opt listen_opts[] = {
	{ "backlog", { CONF_INT, "backlog", 1, 65535 } },
	{ "mode", { CONF_MODE, "mode" } },
	{ "owner", { CONF_STR, "owner" } },
	{ "group", { CONF_STR, "group" } },
	{ NULL }
};

static const struct conf_kw grammar[] = {
	PROC_GRAMMAR,
	{ "listen", NULL, CONF_MULTI | CONF_REQUIRED, 1,
	    { { CONF_ADDR, "address" } }, listen_opts },
	{ "prefix", NULL, 0, 1, { { CONF_STR, "prefix" } }, NULL, "" },
	{ "idle-timeout", NULL, 0, 1, { { CONF_TIME, "idle-timeout", 100,
	    86400000 } }, NULL, "60s" },
	/* a worker that takes this long to start (a slow module, a key) */
	{ "start-delay", NULL, 0, 1, { { CONF_TIME, "start-delay", 0,
	    60000 } }, NULL, "0" },
	{ "allow", NULL, CONF_MULTI | CONF_VARIADIC, 1,
	    { { CONF_CIDR, "address" } } },
	{ "deny", NULL, CONF_MULTI | CONF_VARIADIC, 1,
	    { { CONF_CIDR, "address" } } },
	{ NULL }
};

struct echod_conf {
	char		*prefix;
	uint64_t	 idle_ms;
	uint64_t	 start_delay_ms;
	struct net_acl	 acl;
};

struct client {
	struct ev_io	 io;
	struct ev_timer	 idle;
	struct ev_timer	 sleep;
	struct buf	 in;
	struct buf	 out;
	int		 busy;		/* a "sleep" in progress */
	int		 nlines;	/* answered */
	int		 dead;
	TAILQ_ENTRY(client) entry;
};

static struct ev_loop		 loop;
static struct echod_conf	*conf;
static struct proc_worker	*self;
static struct ev_io		 lio[PROC_MAXLISTENERS];
static TAILQ_HEAD(, client)	 clients = TAILQ_HEAD_INITIALIZER(clients);
static TAILQ_HEAD(, client)	 graveyard = TAILQ_HEAD_INITIALIZER(graveyard);
static int			 nclients;
static struct stats_metric	*m_lines, *m_conns, *m_denied;

static void	client_close(struct client *);
static void	client_flush(struct client *);
static void	client_lines(struct client *);

static void *
echod_load(struct conf *c, struct proc_settings *ps)
{
	struct echod_conf	*ec;
	struct conf_node	*n;
	struct net_cidr		 cidr;
	int			 i;

	if ((ec = calloc(1, sizeof(*ec))) == NULL)
		fatal("%s", __func__);
	if ((ec->prefix = strdup(conf_str(c, &c->root, "prefix"))) == NULL)
		fatal("%s", __func__);
	ec->idle_ms = conf_num(c, &c->root, "idle-timeout");
	ec->start_delay_ms = conf_num(c, &c->root, "start-delay");
	CONF_FOREACH(n, &c->root, "listen")
		proc_listener_add(ps, c, n, n->args[0].str, NULL);
	/* allow and deny rules apply in the order written */
	TAILQ_FOREACH(n, &c->root.children, entry) {
		int	allow = strcmp(n->kw->name, "allow") == 0;

		if (!allow && strcmp(n->kw->name, "deny") != 0)
			continue;
		for (i = 0; i < n->nargs; i++)
			if (net_cidr_parse(n->args[i].str, &cidr) == 0)
				net_acl_add(&ec->acl, allow, &cidr);
	}
	if (c->nerrors > 0) {
		net_acl_free(&ec->acl);
		free(ec->prefix);
		free(ec);
		return (NULL);
	}
	return (ec);
}

static void
echod_unload(void *p)
{
	struct echod_conf	*ec = p;

	net_acl_free(&ec->acl);
	free(ec->prefix);
	free(ec);
}

static int
echod_setup(void *p, struct proc_settings *ps)
{
	m_lines = stats_counter("echod_lines_total", "Lines answered.", NULL);
	m_conns = stats_gauge("echod_connections", "Open connections.", NULL);
	m_denied = stats_counter("echod_denied_total",
	    "Connections refused by the allow list.", NULL);
	return (0);
}

static void
client_idle(struct ev_timer *t)
{
	client_close(t->arg);
}

static void
client_slept(struct ev_timer *t)
{
	struct client	*c = t->arg;

	c->busy = 0;
	client_lines(c);
	client_flush(c);
}

static void
answer(struct client *c, const char *line, size_t len)
{
	const char	*errstr;
	char		 arg[32];
	long long	 ms;

	stats_inc(m_lines);
	c->nlines++;
	if (len == 4 && memcmp(line, "quit", 4) == 0) {
		c->dead = 1;
		return;
	}
	if (len == 3 && memcmp(line, "pid", 3) == 0) {
		buf_printf(&c->out, "%d\n", (int)getpid());
		return;
	}
	if (len == 7 && memcmp(line, "metrics", 7) == 0) {
		stats_render(&c->out, NULL);
		buf_printf(&c->out, "# EOF\n");
		return;
	}
	if (len > 6 && len < 6 + sizeof(arg) && memcmp(line, "sleep ", 6) == 0) {
		memcpy(arg, line + 6, len - 6);
		arg[len - 6] = '\0';
		ms = strtonum(arg, 0, 600000, &errstr);
		if (errstr == NULL) {
			buf_printf(&c->out, "slept %lld\n", ms);
			c->busy = 1;
			ev_timer_add(&loop, &c->sleep, ms);
			return;
		}
	}
	buf_printf(&c->out, "%s%.*s\n", conf->prefix, (int)len, line);
}

static void
client_flush(struct client *c)
{
	ssize_t	n;

	while (!c->busy && buf_used(&c->out) > 0) {
		n = buf_write_fd(&c->out, c->io.fd);
		if (n == -1) {
			if (errno == EAGAIN)
				return;
			client_close(c);
			return;
		}
	}
	if (!c->busy && (c->dead || (self->draining && c->nlines > 0)))
		client_close(c);
}

static void
client_lines(struct client *c)
{
	char	*nl;

	/* a "sleep" answers later; lines after it wait their turn */
	while (!c->busy && (nl = memchr(buf_head(&c->in), '\n',
	    buf_used(&c->in))) != NULL) {
		size_t	len = nl - buf_head(&c->in);

		if (len > 0 && buf_head(&c->in)[len - 1] == '\r')
			len--;
		answer(c, buf_head(&c->in), len);
		buf_consume(&c->in, nl - buf_head(&c->in) + 1);
	}
	if (buf_used(&c->in) >= ECHOD_MAXLINE)
		c->dead = 1;
}

static void
client_read(struct client *c)
{
	ssize_t	 n;

	for (;;) {
		n = buf_read_fd(&c->in, c->io.fd, 0);
		if (n == 0 || (n == -1 && errno != EAGAIN)) {
			c->dead = 1;
			break;
		}
		if (n == -1)
			break;
	}
	client_lines(c);
}

static void
client_event(struct ev_io *io, uint32_t events)
{
	struct client	*c = io->arg;

	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP))
		client_read(c);
	if (c->io.active)
		ev_timer_add(&loop, &c->idle, conf->idle_ms);
	if (c->io.active)
		client_flush(c);
	if (c->io.active && c->dead && !c->busy && buf_used(&c->out) == 0)
		client_close(c);
}

static void
client_close(struct client *c)
{
	if (!c->io.active)
		return;
	ev_io_del(&loop, &c->io);
	ev_timer_del(&loop, &c->idle);
	ev_timer_del(&loop, &c->sleep);
	close(c->io.fd);
	TAILQ_REMOVE(&clients, c, entry);
	TAILQ_INSERT_TAIL(&graveyard, c, entry);
	nclients--;
	stats_gauge_add(m_conns, -1);
}

static void
accept_event(struct ev_io *io, uint32_t events)
{
	struct sockaddr_storage	 ss;
	socklen_t		 sl;
	struct client		*c;
	int			 fd, i;

	for (i = 0; i < 16; i++) {
		sl = sizeof(ss);
		fd = accept4(io->fd, (struct sockaddr *)&ss, &sl,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1) {
			if (errno != EAGAIN && errno != EINTR &&
			    errno != ECONNABORTED)
				log_warn("accept");
			return;
		}
		if (!net_acl_allows(&conf->acl, (struct sockaddr *)&ss)) {
			char	a[NET_ADDRSTRLEN];

			log_info("connection from %s denied", net_sockaddr_str(
			    (struct sockaddr *)&ss, sl, a, sizeof(a)));
			stats_inc(m_denied);
			close(fd);
			continue;
		}
		if ((c = calloc(1, sizeof(*c))) == NULL) {
			close(fd);
			continue;
		}
		buf_init(&c->in, ECHOD_MAXLINE);
		buf_init(&c->out, ECHOD_MAXOUT);
		ev_timer_init(&c->idle, client_idle, c);
		ev_timer_init(&c->sleep, client_slept, c);
		if (ev_io_add(&loop, &c->io, fd, EPOLLIN | EPOLLOUT | EPOLLET |
		    EPOLLRDHUP, client_event, c) == -1) {
			close(fd);
			free(c);
			continue;
		}
		TAILQ_INSERT_TAIL(&clients, c, entry);
		nclients++;
		stats_gauge_add(m_conns, 1);
		ev_timer_add(&loop, &c->idle, conf->idle_ms);
	}
}

static void
echod_drain(struct proc_worker *w)
{
	struct client	*c, *t;
	int		 i;

	for (i = 0; i < w->ps->nlisteners; i++) {
		ev_io_del(&loop, &lio[i]);
		close(w->ps->listeners[i].fd);
	}
	/*
	 * Idle clients go now, busy ones when their answer is out.  A client
	 * that has not sent its first line yet may have it on the way: it
	 * gets that line answered (or its idle timeout) before it goes.
	 */
	TAILQ_FOREACH_SAFE(c, &clients, entry, t)
		if (!c->busy && buf_used(&c->out) == 0 && c->nlines > 0)
			client_close(c);
}

static void
after(struct ev_loop *l, void *arg)
{
	struct client	*c;

	while ((c = TAILQ_FIRST(&graveyard)) != NULL) {
		TAILQ_REMOVE(&graveyard, c, entry);
		buf_free(&c->in);
		buf_free(&c->out);
		free(c);
	}
	if (self->draining && nclients == 0)
		ev_break(l);
}

static int
echod_worker(struct proc_worker *w)
{
	int	i;

	self = w;
	conf = w->conf;
	if (ev_init(&loop) == -1)
		fatal("epoll");
	/*
	 * One listening socket shared by all workers, each waiting on it
	 * with EPOLLEXCLUSIVE: a reload's new workers take over the same
	 * accept queue, so no connection is refused while the old ones
	 * leave (SO_REUSEPORT would give each worker its own queue, and
	 * connections queued on a leaving worker's socket would be reset).
	 */
	for (i = 0; i < w->ps->nlisteners; i++)
		if (ev_io_add(&loop, &lio[i], w->ps->listeners[i].fd,
		    EPOLLIN | EPOLLEXCLUSIVE, accept_event, NULL) == -1)
			fatal("ev_io_add");
	w->drain = echod_drain;
	loop.after = after;
	if (conf->start_delay_ms > 0)
		usleep(conf->start_delay_ms * 1000);
	if (proc_worker_watch(w, &loop) == -1)
		fatal("proc_worker_watch");
	ev_run(&loop);
	ev_free(&loop);
	return (0);
}

static const struct proc_ops echod_ops = {
	.name = "echod",
	.conffile = "/etc/echod.conf",
	.grammar = grammar,
	.load = echod_load,
	.unload = echod_unload,
	.setup = echod_setup,
	.worker = echod_worker,
};

int
main(int argc, char *argv[])
{
	return (proc_main(argc, argv, &echod_ops));
}
