/*
 * relay_tcp.c: TCP frontends.  A connection is accepted (from a peer
 * listed in "accept-proxy", after its PROXY header: the client is the
 * one the header names), admitted by the frontend's allow list and
 * connection limit, a server is picked and connected to (another one on
 * failure, up to the backend's retries), the backend's PROXY header is
 * sent to it, and the two sockets are joined by a tunnel
 * (common/tunnel.c) until either side is done or the tunnel's idle
 * timeout.  A listener at its maxconn is not accepted from (lbd.c
 * pauses it): the connections wait in the listen queue.
 */
#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <arpa/inet.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "lbd.h"
#include "proxyproto.h"
#include "tunnel.h"

struct tcp_sess {
	struct lbd_listener	*l;
	struct lbd_backend	*be;
	struct ev_loop		*loop;
	struct sock		 client;
	struct sock		 up;
	struct up_server	*srv;
	union {
		struct sockaddr		sa;
		struct sockaddr_in6	sin6;
	}			 peer;
	uint64_t		 tried;
	int			 tries;
	struct ev_timer		 timer;
	uint64_t		 t0, t_pick, t_conn;
	int			 counted;	/* in the rate-limit table */
	int			 nolog;		/* refused at once: no line */
	TAILQ_ENTRY(tcp_sess)	 entry;
};

static TAILQ_HEAD(, tcp_sess)	sessions = TAILQ_HEAD_INITIALIZER(sessions);
static TAILQ_HEAD(, tcp_sess)	dead = TAILQ_HEAD_INITIALIZER(dead);
static int			nsessions;

static void	sess_connect(struct tcp_sess *);
static void	sess_admit(struct tcp_sess *);

int
relay_tcp_count(void)
{
	return (nsessions);
}

void
relay_tcp_collect(void)
{
	struct tcp_sess	*ts;

	while ((ts = TAILQ_FIRST(&dead)) != NULL) {
		TAILQ_REMOVE(&dead, ts, entry);
		free(ts);
	}
}

static void
sess_free(struct tcp_sess *ts, const char *term, uint64_t bytes)
{
	struct lbd_frontend	*fe = ts->l->fe;

	ev_timer_del(ts->loop, &ts->timer);
	sock_close(ts->loop, &ts->client);
	sock_close(ts->loop, &ts->up);
	if (ts->srv != NULL)
		up_dropped(ts->srv);
	if (ts->counted)
		rl_conn_close(fe, &ts->peer.sa);
	shm_count_add(ts->l->conns, -1);
	ts->l->mine--;
	stats_gauge_add(fe->m_sessions, -1);
	if (!ts->nolog)
		tcplog(fe, ts->be, ts->srv, &ts->peer.sa, ts->t_pick - ts->t0,
		    ts->t_conn ? ts->t_conn - ts->t_pick : 0,
		    ev_now(ts->loop) - ts->t0, bytes, term ? term : "----");
	TAILQ_REMOVE(&sessions, ts, entry);
	TAILQ_INSERT_TAIL(&dead, ts, entry);
	nsessions--;
}

static void
tunnel_done(void *arg, uint64_t ab, uint64_t ba)
{
	struct tcp_sess	*ts = arg;

	stats_add(ts->l->fe->m_bytes_in, ab);
	stats_add(ts->l->fe->m_bytes_out, ba);
	if (ts->srv != NULL)
		stats_add(ts->be->srvstats[ts->srv->index].bytes_out, ba);
	sess_free(ts, "----", ab + ba);
}

/*
 * The PROXY header (the backend's version) for the server: the client,
 * and the address it connected to.  A buffer for the tunnel to send
 * first, or NULL.
 */
static struct buf *
proxy_header(struct tcp_sess *ts)
{
	struct sockaddr_storage	 local;
	socklen_t		 sl = sizeof(local);
	struct buf		*b;

	if ((b = calloc(1, sizeof(*b))) == NULL)
		return (NULL);
	buf_init(b, 256);
	if (getsockname(ts->client.fd, (struct sockaddr *)&local,
	    &sl) == -1)
		local.ss_family = AF_UNSPEC;
	proxyproto_write(b, ts->be->pc.proxy_protocol, &ts->peer.sa,
	    (struct sockaddr *)&local);
	return (b);
}

static void
up_event(struct ev_io *io, uint32_t ev)
{
	struct tcp_sess	*ts = io->arg;
	struct buf	*pp = NULL;
	int		 err = 0;
	socklen_t	 sl = sizeof(err);

	sock_events(&ts->up, ev);
	if (!(ts->up.flags & (SOCK_WRITABLE | SOCK_ERROR)))
		return;
	if (getsockopt(ts->up.fd, SOL_SOCKET, SO_ERROR, &err, &sl) == -1)
		err = errno;
	ev_timer_del(ts->loop, &ts->timer);
	if (err != 0) {
		errno = err;
		log_warn("%s/%s: connect %s", ts->be->name, ts->srv->name,
		    ts->srv->addr.text);
		up_failed(ts->srv, 0);
		up_dropped(ts->srv);
		ts->srv = NULL;
		sock_close(ts->loop, &ts->up);
		sess_connect(ts);
		return;
	}
	up_succeeded(ts->srv);
	stats_inc(ts->be->srvstats[ts->srv->index].requests);
	ts->t_conn = ev_now(ts->loop);
	stats_observe(ts->be->m_connect, (ts->t_conn - ts->t_pick) / 1000.0);
	if (ts->be->pc.proxy_protocol && (pp = proxy_header(ts)) == NULL) {
		sess_free(ts, "LC--", 0);
		return;
	}
	if (tunnel_new(ts->loop, &ts->client, &ts->up, pp, NULL,
	    ts->l->fe->tunnel_timeout, ts->l->fe->m_spliced, tunnel_done,
	    ts) == NULL) {
		if (pp != NULL) {
			buf_free(pp);
			free(pp);
		}
		sess_free(ts, "LC--", 0);
	}
}

static void
connect_timeout(struct ev_timer *t)
{
	struct tcp_sess	*ts = t->arg;

	log_warnx("%s/%s: connect timeout", ts->be->name, ts->srv->name);
	up_failed(ts->srv, 0);
	up_dropped(ts->srv);
	ts->srv = NULL;
	sock_close(ts->loop, &ts->up);
	sess_connect(ts);
}

static void
sess_connect(struct tcp_sess *ts)
{
	struct lbd_backend	*be = ts->be;
	struct up_server	*s;
	char			 ip[INET6_ADDRSTRLEN];
	uint64_t		 key = 0;
	int			 fd;

	for (;;) {
		if (ts->tries > be->pc.retries) {
			sess_free(ts, "sC--", 0);
			return;
		}
		if (be->pc.pool->lb == &lb_source) {
			net_sockaddr_ip(&ts->peer.sa, ip, sizeof(ip));
			key = hash_bytes(ip, strlen(ip), 0);
		}
		s = up_pick(be->pc.pool, key, ts->tried);
		if (s == NULL && ts->tried != 0)
			s = up_pick(be->pc.pool, key, 0);
		if (s == NULL) {
			/* no queue in tcp mode: no server could take it */
			stats_inc(be->m_noserver);
			sess_free(ts, "sC--", 0);
			return;
		}
		ts->tries++;
		ts->tried |= 1ULL << (s->index & 63);
		ts->t_pick = ev_now(ts->loop);
		if ((fd = net_connect(&s->addr)) == -1) {
			log_warn("%s/%s: connect %s", be->name, s->name,
			    s->addr.text);
			up_failed(s, 0);
			continue;
		}
		break;
	}
	ts->srv = s;
	up_taken(s);
	sock_init(&ts->up, fd);
	if (sock_watch_connect(ts->loop, &ts->up, up_event, ts) == -1) {
		sess_free(ts, "LC--", 0);
		return;
	}
	ts->up.flags &= ~(SOCK_READABLE | SOCK_WRITABLE);
	ev_timer_init(&ts->timer, connect_timeout, ts);
	ev_timer_add(ts->loop, &ts->timer, be->pc.connect_timeout);
}

/*
 * A trusted peer's PROXY header, read without taking a byte beyond it:
 * then the client is the one it names.  Anything else closes.
 */
static void
client_proxy(struct tcp_sess *ts)
{
	char			 buf[PROXYPROTO_V1MAX + 64], *big = NULL;
	struct sockaddr_storage	 ss;
	const char		*why;
	size_t			 used;
	ssize_t			 n;
	int			 r;

	n = recv(ts->client.fd, buf, sizeof(buf), MSG_PEEK);
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		sess_free(ts, "cR--", 0);
		return;
	}
	r = proxyproto_parse(buf, n, &ss, &used, &why);
	if (r == 0 && n >= 16 && memcmp(buf, "\r\n\r\n", 4) == 0) {
		/* a v2 header longer than what we peeked: take it whole */
		size_t	need = 16 + ((size_t)(unsigned char)buf[14] << 8 |
			    (unsigned char)buf[15]);

		if ((big = malloc(need)) == NULL) {
			sess_free(ts, "LR--", 0);
			return;
		}
		n = recv(ts->client.fd, big, need, MSG_PEEK);
		if (n == (ssize_t)need)
			r = proxyproto_parse(big, n, &ss, &used, &why);
		free(big);
	}
	if (r == 0)
		return;		/* the rest is on its way */
	if (r == -1) {
		log_debug("%s: %s", __func__, why);
		ts->nolog = 1;
		sess_free(ts, "LR--", 0);
		return;
	}
	while (used > 0) {
		n = recv(ts->client.fd, buf, used < sizeof(buf) ? used :
		    sizeof(buf), 0);
		if (n <= 0) {
			sess_free(ts, "cR--", 0);
			return;
		}
		used -= n;
	}
	if (ss.ss_family == AF_INET)
		memcpy(&ts->peer, &ss, sizeof(struct sockaddr_in));
	else if (ss.ss_family == AF_INET6)
		memcpy(&ts->peer, &ss, sizeof(struct sockaddr_in6));
	ev_timer_del(ts->loop, &ts->timer);
	ev_io_del(ts->loop, &ts->client.io);
	sess_admit(ts);
}

static void
client_proxy_event(struct ev_io *io, uint32_t ev)
{
	client_proxy(io->arg);
}

static void
client_proxy_timeout(struct ev_timer *t)
{
	struct tcp_sess	*ts = t->arg;

	ts->nolog = 1;
	sess_free(ts, "cR--", 0);
}

/* The client is known: the allow list, the limit, then a server. */
static void
sess_admit(struct tcp_sess *ts)
{
	struct lbd_frontend	*fe = ts->l->fe;

	if (fe->has_acl && !net_acl_allows(&fe->acl, &ts->peer.sa)) {
		stats_inc(fe->m_denied);
		ts->nolog = 1;
		sess_free(ts, "LR--", 0);
		return;
	}
	if (fe->conn_max > 0) {
		ts->counted = 1;
		if (rl_conn_open(fe, &ts->peer.sa) == -1) {
			stats_inc(fe->m_limited);
			sess_free(ts, "LR--", 0);
			return;
		}
	}
	ev_timer_init(&ts->timer, connect_timeout, ts);
	sess_connect(ts);
}

/*
 * Accept at most <max> of what waits on the TCP listener <l>.  Returns
 * how many, or -1 when the listener is at its maxconn (http_worker.c
 * pauses it).
 */
int
relay_tcp_accept(struct lbd_listener *l, int lfd, struct ev_loop *loop,
    int max)
{
	struct lbd_frontend	*fe = l->fe;
	struct sockaddr_storage	 ss;
	socklen_t		 sl;
	struct tcp_sess		*ts;
	int			 fd, n;

	for (n = 0; n < max; n++) {
		if (fe->maxconn > 0 && shm_count_get(l->conns) >= fe->maxconn)
			return (n > 0 ? n : -1);
		sl = sizeof(ss);
		if ((fd = accept4(lfd, (struct sockaddr *)&ss, &sl,
		    SOCK_NONBLOCK | SOCK_CLOEXEC)) == -1) {
			if (errno == EMFILE || errno == ENFILE)
				log_warn("frontend %s: accept", fe->name);
			return (n);
		}
		stats_inc(fe->m_conns);
		net_nodelay(fd, ss.ss_family);
		if ((ts = calloc(1, sizeof(*ts))) == NULL) {
			close(fd);
			continue;
		}
		ts->l = l;
		ts->loop = loop;
		ts->be = fe->defbe;
		ts->t0 = ev_now(loop);
		memcpy(&ts->peer, &ss, sl < sizeof(ts->peer) ? sl :
		    sizeof(ts->peer));
		sock_init(&ts->client, fd);
		sock_init(&ts->up, -1);
		ev_timer_init(&ts->timer, connect_timeout, ts);
		shm_count_add(l->conns, 1);
		l->mine++;
		stats_gauge_add(fe->m_sessions, 1);
		TAILQ_INSERT_TAIL(&sessions, ts, entry);
		nsessions++;
		if (fe->accept_proxy && net_acl_allows(&fe->proxy_from,
		    &ts->peer.sa)) {
			ev_timer_init(&ts->timer, client_proxy_timeout, ts);
			ev_timer_add(loop, &ts->timer, fe->lim.header_timeout);
			if (sock_watch(loop, &ts->client, client_proxy_event,
			    ts) == -1) {
				ts->nolog = 1;
				sess_free(ts, "LR--", 0);
			}
			continue;
		}
		sess_admit(ts);
	}
	return (0);
}
