/*
 * httplog.c: a log line per request (HTTP) or connection (TCP), in the
 * field order of HAProxy's httplog and tcplog so that the tools that
 * read those (halog, goaccess, logstash patterns) read ours:
 *
 *	client:port [date] frontend backend/server Tq/Tw/Tc/Tr/Ta status
 *	bytes - - term actconn/feconn/beconn/srvconn/retries 0/0 "request"
 *
 * frontend is followed by "~" on a TLS listener.  backend/server is
 * "frontend/<NOSRV>" for an answer of lbd's own (a redirect, a limit, a
 * malformed request) and "backend/<NOSRV>" when no server could take
 * the request.  Tq: ms to receive the request head, Tw: waiting for a
 * server slot, Tc: connecting (0 on a kept-alive server connection),
 * Tr: the server's response head, Ta: from the request head to the end
 * of the response; -1 for a step that did not happen.  status: -1 when
 * no answer was sent (the client left first).  bytes: body
 * bytes sent to the client.  term: who ended the exchange (c client,
 * s server, L lbd, - normally) and in which phase (R request, Q queue,
 * C connect, H response head, D data).  actconn: the worker's client
 * connections, feconn: the frontend's (all workers), beconn: the
 * backend's connections to its servers, srvconn: the server's, then
 * the retries.  The two dashes stand for HAProxy's captured cookies
 * and "0/0" for its queue positions, which lbd does not keep.  Every
 * byte of the request line outside printable ASCII, and the quote and
 * backslash, is escaped as \xHH.  The metrics of the request are
 * counted here too.
 *
 *	client:port [date] frontend backend/server Tw/Tc/Tt bytes term
 *
 * is the TCP line: Tt is the whole connection, bytes both ways.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <sys/time.h>
#include <time.h>

#include "log.h"
#include "lbd.h"

static size_t
esc(char *out, size_t size, const char *p, size_t len)
{
	static const char	hex[] = "0123456789abcdef";
	size_t			o = 0, i;

	for (i = 0; i < len && o + 5 < size; i++) {
		unsigned char	c = p[i];

		if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') {
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		} else
			out[o++] = c;
	}
	out[o] = '\0';
	return (o);
}

static void
datestr(char *buf, size_t size)
{
	struct timeval	tv;
	struct tm	tm;
	char		d[40];

	gettimeofday(&tv, NULL);
	localtime_r(&tv.tv_sec, &tm);
	strftime(d, sizeof(d), "%d/%b/%Y:%H:%M:%S", &tm);
	snprintf(buf, size, "%s.%03d", d, (int)(tv.tv_usec / 1000));
}

static uint16_t
port_of(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return (ntohs(((const struct sockaddr_in *)(const void *)sa)->
		    sin_port));
	if (sa->sa_family == AF_INET6)
		return (ntohs(((const struct sockaddr_in6 *)(const void *)
		    sa)->sin6_port));
	return (0);
}

/* Connections to the servers of <be> at this moment, all workers. */
static int
be_conns(struct lbd_backend *be)
{
	int	i, n = 0;

	for (i = 0; i < be->pc.pool->nservers; i++)
		n += shm_count_get(&be->pc.pool->servers[i]->sh->conns);
	return (n);
}

/*
 * The line itself.  <tw>, <tc>, <tr>: -1 for a step that did not
 * happen; <be>, <srv> NULL when the request went to no backend or no
 * server (the frontend's name stands in, as HAProxy's "fe fe/<NOSRV>").
 */
static void
logline(struct lbd_frontend *fe, struct lbd_backend *be,
    struct up_server *srv, const struct sockaddr *peer, int tls,
    int64_t tq, int64_t tw, int64_t tc, int64_t tr, int64_t ta, int status,
    uint64_t bytes, const char *term, int retries, const char *rl)
{
	char	 ip[INET6_ADDRSTRLEN], date[64];

	net_sockaddr_ip(peer, ip, sizeof(ip));
	datestr(date, sizeof(date));
	syslog(LOG_INFO | fe->lc->logfacility, "%s:%u [%s] %s%s %s/%s "
	    "%lld/%lld/%lld/%lld/%lld %d %llu - - %c%c-- %d/%lld/%d/%d/%d 0/0 "
	    "\"%s\"", ip, port_of(peer), date, fe->name, tls ? "~" : "",
	    be ? be->name : fe->name, srv ? srv->name : "<NOSRV>",
	    (long long)tq, (long long)tw, (long long)tc, (long long)tr,
	    (long long)ta, status > 0 ? status : -1, (unsigned long long)bytes,
	    term[0] ? term[0] : '-', term[0] && term[1] ? term[1] : '-',
	    http_server_nconns(), (long long)stats_gauge_value(fe->m_sessions),
	    be ? be_conns(be) : 0, srv ? shm_count_get(&srv->sh->conns) : 0,
	    retries, rl);
}

void
httplog(struct http_req *req, struct lbd_frontend *fe, struct lbd_backend *be,
    const struct proxy_info *info)
{
	struct http_conn	*c = req->conn;
	struct up_server	*srv = info->server;
	char			 rl[2048];
	struct slice		 m, t;
	uint64_t		 now = ev_now(c->loop);
	int64_t			 tq, ta;
	int			 status = info->status ? info->status :
				    req->status, cls = status / 100, n;
	int			 connected, head;

	/*
	 * What happened: a server connection unless it ended connecting or
	 * queued (sC, sQ; the times alone cannot tell: a step of less than
	 * a millisecond takes 0), and a response head if the proxy saw one
	 * (not after a request body that failed on its way, CD or cD).
	 */
	connected = srv != NULL && info->term[1] != 'C' &&
	    info->term[1] != 'Q';
	head = connected && info->head;

	/* metrics */
	if (cls >= 1 && cls <= 5)
		stats_inc(fe->m_req[cls]);
	stats_add(fe->m_bytes_out, req->bytes_out);
	stats_add(fe->m_bytes_in, req->body_in);
	ta = now - req->t_start;
	if (be != NULL) {
		stats_observe(be->m_total, ta / 1000.0);
		if (srv != NULL) {
			struct lbd_srvstats *ss = &be->srvstats[srv->index];

			stats_inc(ss->requests);
			if (cls >= 1 && cls <= 5 && head)
				stats_inc(ss->resp[cls]);
			stats_add(ss->bytes_out, info->bytes_in);
			stats_observe(be->m_queue, info->t_queue / 1000.0);
			if (connected)
				stats_observe(be->m_connect,
				    info->t_connect / 1000.0);
			if (head)
				stats_observe(be->m_response,
				    info->t_response / 1000.0);
		}
		if (info->retries > 0)
			stats_add(be->m_retries, info->retries);
	}
	if (!fe->lc->log)
		return;

	tq = c->t_first && req->t_start >= c->t_first ?
	    (int64_t)(req->t_start - c->t_first) : 0;
	m = http_req_method(req);
	t = http_req_target(req);
	n = esc(rl, sizeof(rl), m.p, m.len);
	if (n < (int)sizeof(rl) - 1)
		rl[n++] = ' ';
	n += esc(rl + n, sizeof(rl) - n, t.p, t.len);
	snprintf(rl + n, sizeof(rl) - n, " HTTP/1.%d", req->msg.minor);
	logline(fe, be, srv, http_req_peer(req), c->srv->scheme_https, tq,
	    srv ? (int64_t)info->t_queue : -1,
	    connected ? (int64_t)info->t_connect : -1,
	    head ? (int64_t)info->t_response : -1, ta, status,
	    req->bytes_out, info->term, info->retries, rl);
}

/*
 * A request the engine refused before there was one (malformed, too
 * large, its head not in time): the same line, with what came of the
 * request line (escaped, "<BADREQ>" when nothing came).  A 408 is the
 * client's doing (cR), the others lbd's (LR).
 */
void
httplog_refused(struct http_conn *c, struct lbd_frontend *fe, int status)
{
	char		 rl[1024];
	struct slice	 l = http_conn_first_line(c);
	uint64_t	 now = ev_now(c->loop);
	int		 cls = status / 100;

	if (cls >= 1 && cls <= 5)
		stats_inc(fe->m_req[cls]);
	if (!fe->lc->log)
		return;
	if (l.len > 0)
		esc(rl, sizeof(rl), l.p, l.len);
	else
		strlcpy(rl, "<BADREQ>", sizeof(rl));
	logline(fe, NULL, NULL, &c->peer.sa, c->srv->scheme_https, -1, -1,
	    -1, -1, now - (c->t_first ? c->t_first : c->t_accept), status,
	    http_error_body_len(status), status == 408 ? "cR" : "LR", 0, rl);
}

void
tcplog(struct lbd_frontend *fe, struct lbd_backend *be, struct up_server *srv,
    const struct sockaddr *peer, uint64_t tw, uint64_t tc, uint64_t tt,
    uint64_t bytes, const char *term)
{
	char	ip[INET6_ADDRSTRLEN], date[64];

	if (!fe->lc->log)
		return;
	net_sockaddr_ip(peer, ip, sizeof(ip));
	datestr(date, sizeof(date));
	syslog(LOG_INFO | fe->lc->logfacility, "%s:%u [%s] %s %s/%s "
	    "%lld/%lld/%llu %llu %s", ip, port_of(peer), date, fe->name,
	    be ? be->name : "-", srv ? srv->name : "<NOSRV>",
	    srv ? (long long)tw : -1LL, srv ? (long long)tc : -1LL,
	    (unsigned long long)tt, (unsigned long long)bytes, term);
}
