/*
 * testhttpd: an HTTP server on common/'s engine, for the engine's tests.
 *
 *	GET /hello		"hello\n"
 *	GET /pid		the worker's pid
 *	GET /source/N		N bytes of a pattern (?chunked: chunked)
 *	POST /sink		reads the body, answers "<bytes> <sum>"
 *	POST /echo		streams the body back, chunked
 *	GET /slow/MS		answers after MS milliseconds
 *	GET /head		the request head as received
 *	GET /peer		"<client addr:port> <requests on this connection>"
 *	GET /close		answers with Connection: close
 *	GET /status/N		answers with status N
 *	GET /ws			WebSocket-like upgrade: 101, then echoes bytes
 *
 * "listen ADDR proxy-from CIDR" expects a PROXY protocol header (v1 or
 * v2) from peers in CIDR on that listener, through the engine's
 * http_server.proxy_from: /peer then shows the address the header gave.
 *
 * With an "upstream { }" block (proxy_conf.h's keywords) it is a test
 * proxy instead: every request goes to the upstream servers.
 */
#include <sys/types.h>
#include <sys/queue.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "http.h"
#include "http_server.h"
#include "http_worker.h"
#include "log.h"
#include "net.h"
#include "proc.h"
#include "proxy.h"
#include "proxy_conf.h"
#include "tls.h"
#include "tunnel.h"

static const struct conf_opt listen_opts[] = {
	{ "backlog", { CONF_INT, "backlog", 1, 65535 } },
	{ "mode", { CONF_MODE, "mode" } },
	{ "owner", { CONF_STR, "owner" } },
	{ "group", { CONF_STR, "group" } },
	{ "tls", { CONF_NONE } },
	{ "proxy-from", { CONF_CIDR, "proxy-from" } },
	{ NULL }
};

static const struct conf_kw grammar[] = {
	PROC_GRAMMAR,
	{ "listen", NULL, CONF_MULTI | CONF_REQUIRED, 1,
	    { { CONF_ADDR, "address" } }, listen_opts },
	{ "server-name", NULL, 0, 1, { { CONF_STR, "server-name" } } },
	HTTP_LIMITS_GRAMMAR(NULL),
	{ "tls", NULL, CONF_BLOCK, 0 },
	TLS_GRAMMAR("tls"),
	{ "upstream", NULL, CONF_BLOCK, 0 },
	PROXY_GRAMMAR("upstream"),
	{ NULL }
};

/* A listener of its own: one that takes PROXY headers from some peers. */
struct tlistener {
	struct http_server	srv;
	struct net_acl		acl;
};

struct tconf {
	struct http_limits	lim;
	struct tlistener	*pl[PROC_MAXLISTENERS];
	int			npl;
	struct http_server	srv;
	struct http_server	tlssrv;
	struct tls_ctx		*tls;
	char			name[64];
	int			proxying;
	struct proxy_conf	pc;
};

enum { K_SOURCE = 1, K_SINK, K_ECHO, K_SLOW };

struct treq {
	int		kind;
	uint64_t	left;
	uint64_t	count;
	uint64_t	sum;
	struct ev_timer	timer;
	struct http_req	*req;
};

static struct http_worker	 hw;
static struct tconf		*cur;
static char			 pattern[16384];

static void
source_fill(struct http_req *req)
{
	struct treq	*t = req->ud;

	/* byte i of the body is pattern[i % sizeof(pattern)] */
	while (t->left > 0) {
		size_t	off = t->count % sizeof(pattern);
		size_t	n = sizeof(pattern) - off;
		size_t	w;

		if (n > t->left)
			n = t->left;
		w = http_resp_write(req, pattern + off, n);
		t->left -= w;
		t->count += w;
		if (w < n)
			return;		/* drain() calls again */
	}
	http_resp_end(req);
}

static void
slow_done(struct ev_timer *tm)
{
	struct treq	*t = tm->arg;

	http_resp_simple(t->req, 200, "text/plain", "slow\n", 5);
}

struct echo {
	struct sock		 s;
	struct buf		 b;
	TAILQ_ENTRY(echo)	 entry;
};

/*
 * The WebSocket echoes open (closed when the worker drains), and the
 * closed ones, freed after the loop's turn: an event for one may still
 * be in the turn's batch.
 */
static TAILQ_HEAD(, echo)	echoes = TAILQ_HEAD_INITIALIZER(echoes);
static TAILQ_HEAD(, echo)	dead_echoes =
				    TAILQ_HEAD_INITIALIZER(dead_echoes);

static void
echo_free(struct echo *e)
{
	TAILQ_REMOVE(&echoes, e, entry);
	sock_close(&hw.loop, &e->s);
	buf_free(&e->b);
	TAILQ_INSERT_TAIL(&dead_echoes, e, entry);
}

static void
echo_event(struct ev_io *io, uint32_t ev)
{
	struct echo	*e = io->arg;
	ssize_t		 n;

	sock_events(&e->s, ev);
	for (;;) {
		while (buf_used(&e->b) > 0 && (e->s.flags & SOCK_WRITABLE)) {
			n = sock_write(&e->s, buf_head(&e->b), buf_used(&e->b));
			if (n <= 0)
				break;
			buf_consume(&e->b, n);
		}
		if (buf_used(&e->b) > 0 || !(e->s.flags & SOCK_READABLE))
			break;
		if (buf_reserve(&e->b, 4096) == -1)
			break;
		n = sock_read(&e->s, buf_tail(&e->b), 4096);
		if (n > 0) {
			e->b.len += n;
			continue;
		}
		if (n == 0 || errno != EAGAIN)
			echo_free(e);
		return;
	}
}

/* After a 101: echo whatever the client sends, on the raw socket. */
static void
ws_echo(struct http_req *req)
{
	struct echo	*e;
	struct buf	*in, *out;

	if ((e = calloc(1, sizeof(*e))) == NULL ||
	    http_req_detach(req, &e->s, &in, &out) == -1) {
		free(e);
		return;
	}
	buf_init(&e->b, 1024 * 1024);
	if (out != NULL) {
		buf_append(&e->b, buf_head(out), buf_used(out));
		buf_free(out);
		free(out);
	}
	if (in != NULL) {
		buf_append(&e->b, buf_head(in), buf_used(in));
		buf_free(in);
		free(in);
	}
	TAILQ_INSERT_TAIL(&echoes, e, entry);
	if (sock_watch(&hw.loop, &e->s, echo_event, e) == -1) {
		echo_free(e);
		return;
	}
	echo_event(&e->s.io, EPOLLOUT);
}

static void
t_request(struct http_req *req)
{
	struct slice	 tg = http_req_target(req);
	struct treq	*t;
	char		 b[64], *end;
	int		 n;

	if (cur->proxying) {
		proxy_start(req, &cur->pc);
		return;
	}
	if ((t = calloc(1, sizeof(*t))) == NULL) {
		http_resp_error(req, 500);
		return;
	}
	t->req = req;
	req->ud = t;
	if (slice_eq(tg, "/hello")) {
		http_resp_simple(req, 200, "text/plain", "hello\n", 6);
	} else if (slice_eq(tg, "/pid")) {
		n = snprintf(b, sizeof(b), "%d\n", (int)getpid());
		http_resp_simple(req, 200, "text/plain", b, n);
	} else if (slice_eq(tg, "/peer")) {
		char	a[128];

		net_sockaddr_str(http_req_peer(req), sizeof(req->conn->peer),
		    a, sizeof(a));
		n = snprintf(b, sizeof(b), "%s %u\n", a,
		    (unsigned)req->conn->nreq);
		http_resp_simple(req, 200, "text/plain", b, n);
	} else if (slice_eq(tg, "/close")) {
		http_resp_close(req);
		http_resp_simple(req, 200, "text/plain", "bye\n", 4);
	} else if (slice_eq(tg, "/head")) {
		http_resp_simple(req, 200, "text/plain", http_req_buf(req),
		    req->msg.head_len);
	} else if (tg.len > 8 && memcmp(tg.p, "/source/", 8) == 0) {
		char	num[32];
		size_t	l = tg.len - 8;
		int	chunked;

		if (l >= sizeof(num))
			l = sizeof(num) - 1;
		memcpy(num, tg.p + 8, l);
		num[l] = '\0';
		t->left = strtoull(num, &end, 10);
		chunked = strcmp(end, "?chunked") == 0;
		t->kind = K_SOURCE;
		http_resp_begin(req, 200);
		http_resp_header(req, "Content-Type",
		    "application/octet-stream");
		http_resp_body(req, chunked ? -1 : (int64_t)t->left);
		source_fill(req);
	} else if (tg.len > 8 && memcmp(tg.p, "/status/", 8) == 0) {
		int	st = atoi(tg.p + 8);

		if (st < 200 || st > 599)
			st = 500;
		n = snprintf(b, sizeof(b), "status %d\n", st);
		http_resp_simple(req, st, "text/plain", b, n);
	} else if (slice_eq(tg, "/ws")) {
		struct sock	 cs, other;
		struct buf	*in, *out;

		if (!(req->msg.flags & HTTP_F_UPGRADE)) {
			http_resp_error(req, 426);
			return;
		}
		http_resp_begin(req, 101);
		http_resp_header(req, "Upgrade", "testecho");
		http_resp_header(req, "Connection", "upgrade");
		http_resp_body(req, 0);
		/* echo: a tunnel from the client to itself is a loop, so
		 * use a socketpair whose far end echoes */
		(void)cs;
		(void)other;
		(void)in;
		(void)out;
		ws_echo(req);
	} else if (slice_eq(tg, "/sink")) {
		t->kind = K_SINK;
		http_req_read_body(req);
	} else if (slice_eq(tg, "/echo")) {
		t->kind = K_ECHO;
		/* reading first: the engine keeps the connection alive only
		 * for a body it knows will be read */
		http_req_read_body(req);
		http_resp_begin(req, 200);
		http_resp_header(req, "Content-Type",
		    "application/octet-stream");
		http_resp_body(req, -1);
	} else if (tg.len > 6 && memcmp(tg.p, "/slow/", 6) == 0) {
		char	num[32];
		size_t	l = tg.len - 6;

		if (l >= sizeof(num))
			l = sizeof(num) - 1;
		memcpy(num, tg.p + 6, l);
		num[l] = '\0';
		t->kind = K_SLOW;
		ev_timer_init(&t->timer, slow_done, t);
		ev_timer_add(&hw.loop, &t->timer, strtoul(num, NULL, 10));
	} else
		http_resp_error(req, 404);
}

static size_t
t_body(struct http_req *req, const char *p, size_t n)
{
	struct treq	*t = req->ud;
	size_t		 i;

	if (t->kind == K_SINK) {
		for (i = 0; i < n; i++)
			t->sum += (unsigned char)p[i];
		t->count += n;
		return (n);
	}
	/* echo: what the output buffer takes; the rest waits for drain */
	return (http_resp_write(req, p, n));
}

static void
t_body_end(struct http_req *req, int status)
{
	struct treq	*t = req->ud;
	char		 b[64];
	int		 n;

	if (status != 0) {
		if (t->kind == K_ECHO)
			http_resp_error(req, status);
		else
			http_resp_error(req, status);
		return;
	}
	if (t->kind == K_SINK) {
		n = snprintf(b, sizeof(b), "%llu %llu\n",
		    (unsigned long long)t->count, (unsigned long long)t->sum);
		http_resp_simple(req, 200, "text/plain", b, n);
	} else if (t->kind == K_ECHO)
		http_resp_end(req);
}

static void
t_drain(struct http_req *req)
{
	struct treq	*t = req->ud;

	if (t->kind == K_SOURCE)
		source_fill(req);
	else if (t->kind == K_ECHO)
		http_req_resume(req);
}

static void
t_done(struct http_req *req)
{
	struct treq	*t = req->ud;

	if (t != NULL) {
		ev_timer_del(&hw.loop, &t->timer);
		free(t);
		req->ud = NULL;
	}
}

static const struct http_handler handler = {
	t_request, t_body, t_body_end, t_drain, t_done
};

static void	t_unload(void *);

static void *
t_load(struct conf *c, struct proc_settings *ps)
{
	struct tconf		*tc;
	struct conf_node	*n;
	const char		*s;

	if ((tc = calloc(1, sizeof(*tc))) == NULL)
		fatal("%s", __func__);
	http_limits_load(&c->root, &tc->lim, NULL);
	tc->srv.lim = &tc->lim;
	tc->srv.handler = &handler;
	if ((s = conf_str(c, &c->root, "server-name")) != NULL) {
		strlcpy(tc->name, s, sizeof(tc->name));
		tc->srv.server_name = tc->name;
	}
	if ((n = conf_get(&c->root, "upstream")) != NULL) {
		tc->proxying = 1;
		proxy_conf_load(c, n, "up", "up", &tc->pc);
		tc->pc.via = tc->pc.via ? tc->pc.via : NULL;
	}
	tc->tlssrv = tc->srv;
	tc->tlssrv.scheme_https = 1;
	if ((n = conf_get(&c->root, "tls")) != NULL &&
	    (tc->tls = tls_server_load(c, n)) == NULL)
		goto fail;
	tc->tlssrv.tls = tc->tls;
	CONF_FOREACH(n, &c->root, "listen") {
		int			 tls = conf_opt(n, "tls") != NULL;
		struct http_server	*srv = tls ? &tc->tlssrv : &tc->srv;
		const char		*from = conf_optstr(n, "proxy-from",
					    NULL);
		struct net_cidr		 cidr;

		if (tls && tc->tls == NULL)
			conf_error(c, n, "a tls listener needs a tls block");
		if (from != NULL && tc->npl < PROC_MAXLISTENERS &&
		    net_cidr_parse(from, &cidr) == 0) {
			struct tlistener	*tl;

			if ((tl = calloc(1, sizeof(*tl))) == NULL)
				fatal("%s", __func__);
			tl->srv = *srv;
			net_acl_add(&tl->acl, 1, &cidr);
			tl->srv.proxy_from = &tl->acl;
			tc->pl[tc->npl++] = tl;
			srv = &tl->srv;
		}
		proc_listener_add(ps, c, n, n->args[0].str, srv);
	}
	if (c->nerrors > 0)
		goto fail;
	return (tc);
 fail:
	t_unload(tc);
	return (NULL);
}

static void
t_unload(void *p)
{
	struct tconf	*tc = p;
	int		 i;

	if (tc->proxying)
		proxy_conf_free(&tc->pc);
	for (i = 0; i < tc->npl; i++) {
		net_acl_free(&tc->pl[i]->acl);
		free(tc->pl[i]);
	}
	tls_free(tc->tls);
	free(tc);
}

static void
t_after(struct http_worker *h)
{
	struct echo	*e;

	proxy_collect();
	tunnel_collect();
	while ((e = TAILQ_FIRST(&dead_echoes)) != NULL) {
		TAILQ_REMOVE(&dead_echoes, e, entry);
		free(e);
	}
}

static int
t_busy(struct http_worker *h)
{
	return (tunnel_count() > 0);
}

/* Stopping: the WebSocket echoes close, as upgraded connections do. */
static void
w_drain(struct http_worker *h)
{
	struct echo	*e;

	while ((e = TAILQ_FIRST(&echoes)) != NULL)
		echo_free(e);
}

static int
t_worker(struct proc_worker *w)
{
	int	i;

	memset(pattern, 'a', sizeof(pattern));
	for (i = 0; i < (int)sizeof(pattern); i++)
		pattern[i] = 'a' + i % 26;
	if (http_worker_init(&hw, w) == -1)
		fatal("http_worker_init");
	cur = w->conf;
	hw.after = t_after;
	hw.busy = t_busy;
	hw.drain = w_drain;
	for (i = 0; i < w->ps->nlisteners; i++)
		hw.servers[i] = w->ps->listeners[i].arg;
	return (http_worker_run(&hw));
}

/* Master, once the conf is known good: the weights go live. */
static int
t_setup(void *p, struct proc_settings *ps)
{
	struct tconf	*tc = p;

	if (tc->proxying)
		up_pool_commit(tc->pc.pool);
	(void)ps;
	return (0);
}

static const struct proc_ops ops = {
	.name = "testhttpd",
	.conffile = "/etc/testhttpd.conf",
	.grammar = grammar,
	.load = t_load,
	.setup = t_setup,
	.unload = t_unload,
	.worker = t_worker,
};

int
main(int argc, char *argv[])
{
	return (proc_main(argc, argv, &ops));
}
