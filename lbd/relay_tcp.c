/*
 * relay_tcp.c: TCP frontends.  A connection is accepted (after the
 * frontend's allow list and connection limits), a server is picked and
 * connected to (another one on failure, up to the backend's retries),
 * and the two sockets are joined by a tunnel (common/tunnel.c) until
 * either side is done or the tunnel's idle timeout.
 */
#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "lbd.h"
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
	TAILQ_ENTRY(tcp_sess)	 entry;
};

static TAILQ_HEAD(, tcp_sess)	sessions = TAILQ_HEAD_INITIALIZER(sessions);
static TAILQ_HEAD(, tcp_sess)	dead = TAILQ_HEAD_INITIALIZER(dead);
static int			nsessions;

static void	sess_connect(struct tcp_sess *);

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
	if (ts->srv != NULL && term != NULL)
		up_dropped(ts->srv);
	if (ts->counted)
		rl_conn_close(fe, &ts->peer.sa);
	atomic_fetch_sub(ts->l->conns, 1);
	stats_gauge_add(fe->m_sessions, -1);
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
	up_dropped(ts->srv);
	ts->srv = NULL;
	sess_free(ts, "----", ab + ba);
}

static void
up_event(struct ev_io *io, uint32_t ev)
{
	struct tcp_sess	*ts = io->arg;
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
		stats_inc(ts->be->srvstats[ts->srv->index].errors);
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
	if (tunnel_new(ts->loop, &ts->client, &ts->up, NULL, NULL,
	    ts->l->fe->tunnel_timeout, tunnel_done, ts) == NULL)
		sess_free(ts, "LC--", 0);
}

static void
connect_timeout(struct ev_timer *t)
{
	struct tcp_sess	*ts = t->arg;

	log_warnx("%s/%s: connect timeout", ts->be->name, ts->srv->name);
	stats_inc(ts->be->srvstats[ts->srv->index].errors);
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
			key = up_hash(ip, strlen(ip), 0);
		}
		s = up_pick(be->pc.pool, key, ts->tried);
		if (s == NULL && ts->tried != 0)
			s = up_pick(be->pc.pool, key, 0);
		if (s == NULL) {
			stats_inc(be->m_noserver);
			sess_free(ts, "sQ--", 0);
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
	if (sock_watch(ts->loop, &ts->up, up_event, ts) == -1) {
		sess_free(ts, "LC--", 0);
		return;
	}
	ts->up.flags &= ~(SOCK_READABLE | SOCK_WRITABLE);
	ev_timer_init(&ts->timer, connect_timeout, ts);
	ev_timer_add(ts->loop, &ts->timer, be->pc.connect_timeout);
}

/* Accept what waits on the TCP listener <l>. */
void
relay_tcp_accept(struct lbd_listener *l, int lfd, struct ev_loop *loop)
{
	struct lbd_frontend	*fe = l->fe;
	struct sockaddr_storage	 ss;
	socklen_t		 sl;
	struct tcp_sess		*ts;
	int			 fd, n;

	for (n = 0; n < 16; n++) {
		sl = sizeof(ss);
		if ((fd = accept4(lfd, (struct sockaddr *)&ss, &sl,
		    SOCK_NONBLOCK | SOCK_CLOEXEC)) == -1)
			return;
		stats_inc(fe->m_conns);
		if (fe->has_acl && !net_acl_allows(&fe->acl,
		    (struct sockaddr *)&ss)) {
			stats_inc(fe->m_denied);
			close(fd);
			continue;
		}
		if (fe->maxconn > 0 && atomic_load(l->conns) >= fe->maxconn) {
			close(fd);
			continue;
		}
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
		atomic_fetch_add(l->conns, 1);
		stats_gauge_add(fe->m_sessions, 1);
		TAILQ_INSERT_TAIL(&sessions, ts, entry);
		nsessions++;
		if (fe->conn_max > 0) {
			ts->counted = 1;
			if (rl_conn_open(fe, &ts->peer.sa) == -1) {
				stats_inc(fe->m_limited);
				sess_free(ts, "LR--", 0);
				continue;
			}
		}
		sess_connect(ts);
	}
}
