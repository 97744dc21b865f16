/*
 * httplog.c: a log line per request (HTTP) or connection (TCP), in the
 * field order of HAProxy's httplog and tcplog so that the tools that
 * read those (halog, goaccess, logstash patterns) read ours:
 *
 *	client:port [date] frontend backend/server Tq/Tw/Tc/Tr/Ta status
 *	bytes - - term actconn/feconn/beconn/srvconn/retries 0/0 "request"
 *
 * Tq: ms to receive the request head, Tw: waiting for a server slot,
 * Tc: connecting, Tr: the server's response head, Ta: all of it (-1 for
 * a step that did not happen).  term: who ended the exchange (c client,
 * s server, L lbd, - normally) and in which phase (R request, Q queue,
 * C connect, H response head, D data).  Every byte of the request line
 * outside printable ASCII, and the quote and backslash, is escaped as
 * \xHH.  The metrics of the request are counted here too.
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

void
httplog(struct http_req *req, struct lbd_frontend *fe, struct lbd_backend *be,
    const struct proxy_info *info)
{
	struct http_conn	*c = req->conn;
	struct up_server	*srv = info->server;
	const struct sockaddr	*peer = http_req_peer(req);
	char			 line[4096], rl[2048], ip[INET6_ADDRSTRLEN];
	char			 date[64];
	struct slice		 m, t;
	uint64_t		 now = ev_now(c->loop);
	int64_t			 tq, ta;
	int			 status = info->status ? info->status :
				    req->status, cls = status / 100, n;

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
			if (cls >= 1 && cls <= 5 && info->t_response > 0)
				stats_inc(ss->resp[cls]);
			stats_add(ss->bytes_out, info->bytes_in);
			stats_observe(be->m_queue, info->t_queue / 1000.0);
			if (info->t_connect > 0 || info->t_response > 0)
				stats_observe(be->m_connect,
				    info->t_connect / 1000.0);
			if (info->t_response > 0)
				stats_observe(be->m_response,
				    info->t_response / 1000.0);
			if (info->term[0] == 's' && info->term[1] == 'C')
				stats_inc(ss->errors);
		}
		if (info->retries > 0)
			stats_add(be->m_retries, info->retries);
	}
	if (!fe->lc->log)
		return;

	tq = c->t_first && req->t_start >= c->t_first ?
	    (int64_t)(req->t_start - c->t_first) : 0;
	net_sockaddr_ip(peer, ip, sizeof(ip));
	datestr(date, sizeof(date));
	m = http_req_method(req);
	t = http_req_target(req);
	n = esc(rl, sizeof(rl), m.p, m.len);
	if (n < (int)sizeof(rl) - 1)
		rl[n++] = ' ';
	n += esc(rl + n, sizeof(rl) - n, t.p, t.len);
	snprintf(rl + n, sizeof(rl) - n, " HTTP/1.%d", req->msg.minor);
	snprintf(line, sizeof(line), "%s:%u [%s] %s%s %s/%s "
	    "%lld/%lld/%lld/%lld/%lld %d %llu - - %c%c-- %d/%lld/%d/%d/%d 0/0 "
	    "\"%s\"", ip, port_of(peer), date, fe->name,
	    c->srv->scheme_https ? "~" : "", be ? be->name : "-",
	    srv ? srv->name : "<NOSRV>", (long long)tq,
	    srv ? (long long)info->t_queue : -1LL,
	    srv && (info->t_connect || info->t_response) ?
	    (long long)info->t_connect : -1LL,
	    info->t_response ? (long long)info->t_response : -1LL,
	    (long long)ta, status, (unsigned long long)req->bytes_out,
	    info->term[0] ? info->term[0] : '-',
	    info->term[1] ? info->term[1] : '-', http_server_nconns(),
	    (long long)stats_gauge_value(fe->m_sessions),
	    srv ? 0 : 0, srv ? atomic_load(&srv->sh->conns) : 0,
	    info->retries, rl);
	syslog(LOG_INFO | fe->lc->logfacility, "%s", line);
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
