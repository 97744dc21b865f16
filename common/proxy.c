/*
 * proxy.c: forward HTTP requests to upstream servers (see proxy.h).
 *
 * A proxied request (struct preq) goes through:
 *
 *	BUFFER	reading the whole request body first (buffer_request)
 *	PICK	choosing a server; QUEUE when all eligible ones are full
 *	CONNECT	a new connection (and its TLS handshake) in progress
 *	SEND	the head (and the body, streamed) going out; the response
 *		may start coming meanwhile
 *	RESP	the response head arrived; its body is relayed
 *	DONE
 *
 * An upstream connection (struct up_conn) belongs to one preq while in
 * use, or sits on its server's idle list, watched for the server closing
 * it, until its idle timeout.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "http.h"
#include "log.h"
#include "proxy.h"
#include "proxyproto.h"
#include "stats.h"
#include "tls.h"
#include "tunnel.h"

enum {
	P_BUFFER = 1,
	P_PICK,
	P_QUEUE,
	P_CONNECT,
	P_SEND,
	P_RESP,
	P_DONE
};

struct preq;

struct up_conn {
	struct sock		 s;
	struct up_server	*srv;
	struct buf		 in;
	struct buf		 out;
	struct ev_timer		 timer;
	struct preq		*pr;		/* NULL when idle */
	uint64_t		 idle_since;
	int			 reused;
	int			 handshaking;
	int			 dead;
	int			 idle;		/* on its server's idle list */
	int			 flush_now;	/* in its deferred flush */
	struct ev_defer		 flushd;	/* the request goes out */
	TAILQ_ENTRY(up_conn)	 entry;
};

struct preq {
	struct http_req		*req;
	struct proxy_conf	*pc;
	int			 state;
	struct up_conn		*uc;
	uint64_t		 tried;		/* bitmap of servers */
	int			 tries;
	struct proxy_info	 info;
	struct buf		 head;		/* the rewritten request head */
	struct buf		 body;		/* buffered request body */
	int			 bodyfd;	/* spilled body, -1 */
	uint64_t		 bodylen;
	int			 chunked_out;	/* re-chunk the body */
	size_t			 body_off;	/* of pr->body, sent */
	int			 body_sent;	/* all of it is out */
	int			 body_started;	/* bytes of it went out */
	int			 idempotent;
	int			 bufferall;
	uint64_t		 t0, t_pick, t_conn;
	struct ev_timer		 timer;		/* queue */
	/* response */
	struct http_msg		 resp;
	struct http_hdr		*rhdrs;
	struct http_chunked	 rch;
	uint64_t		 rleft;
	int			 rhead_done;
	int			 rbody_done;
	int			 upstream_close;
	int			 up_eof;	/* the server has closed */
	struct buf		 rbuf;		/* decoded body not yet taken */
	uint64_t		 hashkey;
	int			 queued;	/* on pr_queued */
	TAILQ_ENTRY(preq)	 qentry;	/* pr_queued, then pr_dead */
};

static TAILQ_HEAD(, up_conn)	uc_dead = TAILQ_HEAD_INITIALIZER(uc_dead);
static TAILQ_HEAD(, preq)	pr_dead = TAILQ_HEAD_INITIALIZER(pr_dead);
/* the requests of this worker waiting for a server, oldest first */
static TAILQ_HEAD(, preq)	pr_queued = TAILQ_HEAD_INITIALIZER(pr_queued);
static struct ev_loop		*ploop;
static int			nidle;
static int			draining;

static void	uc_event(struct ev_io *, uint32_t);
static void	uc_timeout(struct ev_timer *);
static void	uc_close(struct up_conn *);
static void	uc_flush_deferred(struct ev_defer *);
static void	pr_dispatch(struct preq *);
static void	pr_queue(struct preq *, int);
static void	queue_kick(struct up_pool *);
static int	queue_full(struct preq *);
static void	px_dropped(struct up_server *);
static void	pr_run(struct preq *);
static void	pr_fail(struct preq *, int, const char *, int);
static void	pr_finish(struct preq *);

static size_t	p_body(struct http_req *, const char *, size_t);
static void	p_body_end(struct http_req *, int);
static void	p_drain(struct http_req *);
static void	p_done(struct http_req *);

static const struct http_handler proxy_handler = {
	NULL, p_body, p_body_end, p_drain, p_done
};

void
proxy_conf_defaults(struct proxy_conf *pc)
{
	memset(pc, 0, sizeof(*pc));
	pc->connect_timeout = PROXY_CONNECT_TIMEOUT;
	pc->response_timeout = PROXY_RESPONSE_TIMEOUT;
	pc->idle_timeout = PROXY_IDLE_TIMEOUT;
	pc->queue_timeout = PROXY_QUEUE_TIMEOUT;
	pc->tunnel_timeout = 3600000;
	pc->max_idle = PROXY_MAXIDLE;
	pc->retries = PROXY_RETRIES;
	pc->xfp = 1;
	pc->tmpdir = "/tmp";
}

int
proxy_idle_count(void)
{
	return (nidle);
}

void
proxy_collect(void)
{
	struct up_conn	*uc;
	struct preq	*pr;

	while ((uc = TAILQ_FIRST(&uc_dead)) != NULL) {
		TAILQ_REMOVE(&uc_dead, uc, entry);
		ev_defer_cancel(ploop, &uc->flushd);	/* the tunnel's, too */
		free(uc);
	}
	while ((pr = TAILQ_FIRST(&pr_dead)) != NULL) {
		TAILQ_REMOVE(&pr_dead, pr, qentry);
		free(pr);
	}
}

/* Upstream connections */

static void
uc_close(struct up_conn *uc)
{
	if (uc->dead)
		return;
	uc->dead = 1;
	if (uc->idle) {
		/* an idle connection was already dropped from the count */
		TAILQ_REMOVE(&uc->srv->idle, uc, entry);
		uc->srv->nidle--;
		nidle--;
		uc->idle = 0;
	} else if (uc->srv != NULL)
		px_dropped(uc->srv);
	ev_timer_del(ploop, &uc->timer);
	ev_defer_cancel(ploop, &uc->flushd);
	sock_close(ploop, &uc->s);
	buf_free(&uc->in);
	buf_free(&uc->out);
	uc->pr = NULL;
	TAILQ_INSERT_TAIL(&uc_dead, uc, entry);
}

/* The request is over with this connection: keep it for the next one? */
static void
uc_release(struct up_conn *uc, int reusable, struct proxy_conf *pc)
{
	struct up_server	*s = uc->srv;

	uc->pr = NULL;
	/* one that began with a client's PROXY header serves no other */
	if (!reusable || pc->proxy_protocol || draining ||
	    s->nidle >= pc->max_idle ||
	    buf_used(&uc->in) > 0 || sock_pending(&uc->s) ||
	    (uc->s.flags & (SOCK_EOF | SOCK_ERROR | SOCK_HUP))) {
		uc_close(uc);
		return;
	}
	buf_reset(&uc->in);
	buf_reset(&uc->out);
	/*
	 * Idle connections are not active ones: leastconn and maxconn
	 * count requests in progress, as the servers feel them.
	 */
	px_dropped(s);
	uc->idle_since = ev_now(ploop);
	uc->reused = 1;
	uc->idle = 1;
	TAILQ_INSERT_HEAD(&s->idle, uc, entry);
	s->nidle++;
	nidle++;
	ev_timer_add(ploop, &uc->timer, pc->idle_timeout);
}

/* Close idle connections: the worker is stopping. */
void
proxy_drain(void)
{
	draining = 1;
}

static struct up_conn *
uc_take_idle(struct up_server *s)
{
	struct up_conn	*c;
	struct up_conn	*uc;

	while ((c = TAILQ_FIRST(&s->idle)) != NULL) {
		uc = c;
		if (uc->s.flags & (SOCK_EOF | SOCK_ERROR | SOCK_HUP)) {
			uc_close(uc);
			continue;
		}
		TAILQ_REMOVE(&s->idle, c, entry);
		s->nidle--;
		nidle--;
		uc->idle = 0;
		up_taken(s);
		ev_timer_del(ploop, &uc->timer);
		return (uc);
	}
	return (NULL);
}

static struct up_conn *
uc_connect(struct preq *pr, struct up_server *s)
{
	struct up_conn	*uc;
	int		 fd;

	if ((fd = net_connect(&s->addr)) == -1)
		return (NULL);
	if ((uc = calloc(1, sizeof(*uc))) == NULL) {
		close(fd);
		return (NULL);
	}
	sock_init(&uc->s, fd);
	uc->srv = s;
	buf_init(&uc->in, pr->req->conn->srv->lim->max_head + 16384);
	buf_init(&uc->out, PROXY_OUTBUF + pr->head.len + 4096);
	ev_timer_init(&uc->timer, uc_timeout, uc);
	ev_defer_init(&uc->flushd, uc_flush_deferred, uc);
	if (sock_watch_connect(ploop, &uc->s, uc_event, uc) == -1) {
		close(fd);
		free(uc);
		return (NULL);
	}
	/* connecting: not writable until the kernel says so */
	uc->s.flags &= ~(SOCK_READABLE | SOCK_WRITABLE);
	up_taken(s);
	if (pr->pc->tls != NULL) {
		uc->s.ssl = tls_client_ssl(pr->pc->tls, fd, pr->pc->sni,
		    &s->addr);
		if (uc->s.ssl == NULL) {
			uc->pr = NULL;
			uc_close(uc);
			return (NULL);
		}
		uc->handshaking = 1;
	}
	return (uc);
}

static void
uc_event(struct ev_io *io, uint32_t ev)
{
	struct up_conn	*uc = io->arg;

	sock_events(&uc->s, ev);
	if (uc->pr == NULL) {
		/* idle: anything from the server means it is closing */
		if (uc->s.flags & (SOCK_READABLE | SOCK_HUP | SOCK_ERROR))
			uc_close(uc);
		return;
	}
	pr_run(uc->pr);
}

static void
uc_timeout(struct ev_timer *t)
{
	struct up_conn	*uc = t->arg;
	struct preq	*pr = uc->pr;

	if (pr == NULL) {
		uc_close(uc);
		return;
	}
	if (pr->state == P_CONNECT) {
		up_failed(uc->srv, 0);
		pr->uc = NULL;
		uc->pr = NULL;
		uc_close(uc);
		log_warnx("%s/%s: connect timeout", pr->pc->pool->name,
		    uc->srv->name);
		pr->info.term[0] = 's';
		pr->info.term[1] = 'C';
		pr_dispatch(pr);
		return;
	}
	/*
	 * Waits that are the client's, not the server's: for more of the
	 * request body, or for the client to take the response body (the
	 * engine's body and send timeouts cover those).
	 */
	if ((!pr->body_sent && buf_used(&uc->out) == 0) ||
	    (pr->rhead_done && buf_used(&pr->rbuf) > 0)) {
		ev_timer_add(ploop, &uc->timer, pr->pc->response_timeout);
		return;
	}
	/* no response in time */
	up_failed(uc->srv, 0);
	pr->info.term[0] = 's';
	pr->info.term[1] = pr->rhead_done ? 'D' : 'H';
	pr_fail(pr, 504, "response timeout", 0);
}

/* The request head as it goes upstream */

static int
is_hop_field(const struct http_msg *m, const char *b, const struct http_hdr *h,
    int tunnel)
{
	int	i;

	if (h->flags & (HTTP_H_HOPBYHOP | HTTP_H_CL))
		return (1);
	if ((h->flags & HTTP_H_UPGRADE) && !tunnel)
		return (1);
	if (h->flags & HTTP_H_UPGRADE)
		return (0);
	/* fields the Connection field names; never Host, which we routed on */
	if ((m->flags & HTTP_F_CONN_OTHER) && !(h->flags & HTTP_H_HOST)) {
		for (i = 0; i < m->nhdrs; i++) {
			struct slice	v, e;
			const char	*p;
			size_t		 left;

			if (!(m->hdrs[i].flags & HTTP_H_CONNECTION))
				continue;
			v = http_hdr_value(b, &m->hdrs[i]);
			p = v.p;
			left = v.len;
			while (left > 0) {
				const char *comma = memchr(p, ',', left);
				size_t	    l = comma ? (size_t)(comma - p) :
					    left;

				e = slice_trim(slice_make(p, l));
				if (e.len == h->namelen &&
				    strncasecmp(e.p, b + h->name, e.len) == 0)
					return (1);
				if (comma == NULL)
					break;
				left -= l + 1;
				p = comma + 1;
			}
		}
	}
	return (0);
}

static const struct sockaddr *
client_addr(struct preq *pr)
{
	if (pr->pc->client_addr != NULL)
		return (pr->pc->client_addr(pr->pc->arg, pr->req));
	return (http_req_peer(pr->req));
}

static int
build_head(struct preq *pr)
{
	struct http_req		*req = pr->req;
	struct http_msg		*m = &req->msg;
	struct proxy_conf	*pc = pr->pc;
	const char		*b = http_req_buf(req);
	struct buf		*o = &pr->head;
	struct slice		 t = http_req_target(req);
	struct slice		 auth = slice_make(NULL, 0), rest;
	char			 ip[INET6_ADDRSTRLEN + 2];
	int			 i, tunnel = (m->flags & HTTP_F_UPGRADE) != 0;
	int			 xfp_sent = 0;
	const char		*proto = req->conn->srv->scheme_https ?
				    "https" : "http";

	net_sockaddr_ip(client_addr(pr), ip, sizeof(ip));
	/*
	 * absolute-form: the target's authority replaces the Host field
	 * (RFC 9112 3.2.2), so that the server sees the host we routed on
	 */
	if (m->form == HTTP_T_ABSOLUTE) {
		/* (the parser took its authority only if it is one) */
		http_absolute_split(t.p, t.len, &auth, &rest);
		/* absolute-form becomes origin-form */
		buf_printf(o, "%.*s %s%.*s HTTP/1.1\r\n", (int)m->method_len,
		    b + m->method_off, rest.len == 0 || rest.p[0] == '?' ?
		    "/" : "", (int)rest.len, rest.p);
	} else {
		buf_append(o, b + m->method_off, m->method_len);
		buf_putc(o, ' ');
		buf_append(o, t.p, t.len);
		buf_append(o, " HTTP/1.1\r\n", 11);
	}
	for (i = 0; i < m->nhdrs; i++) {
		const struct http_hdr	*h = &m->hdrs[i];
		struct slice		 name = slice_make(b + h->name,
					    h->namelen);
		struct slice		 val = http_hdr_value(b, h);

		if (is_hop_field(m, b, h, tunnel))
			continue;
		if (auth.p != NULL && (h->flags & HTTP_H_HOST))
			continue;
		/* a body read whole first follows the head at once: the
		 * client had its 100 from us (nginx drops the field too) */
		if ((h->flags & HTTP_H_EXPECT) && pc->buffer_request != 0)
			continue;
		/* appended to, or replaced: one line of ours below */
		if (h->namelen == 15 && pc->xff != PROXY_XFF_OFF &&
		    slice_caseeq(name, "x-forwarded-for"))
			continue;
		/* at an edge, what the client says of itself goes */
		if (pc->xff == PROXY_XFF_REPLACE && h->namelen == 9 &&
		    slice_caseeq(name, "forwarded"))
			continue;
		if (pc->xfp && h->namelen == 17 &&
		    slice_caseeq(name, "x-forwarded-proto") &&
		    pc->xff != PROXY_XFF_APPEND)
			continue;
		if (pc->req_filter != NULL &&
		    !pc->req_filter(pc->arg, req, name, val))
			continue;
		if (h->namelen == 17 && slice_caseeq(name, "x-forwarded-proto"))
			xfp_sent = 1;
		buf_append(o, b + h->name, h->namelen);
		buf_append(o, ": ", 2);
		buf_append(o, val.p, val.len);
		buf_append(o, "\r\n", 2);
	}
	if (auth.p != NULL)
		buf_printf(o, "Host: %.*s\r\n", (int)auth.len, auth.p);
	else if (m->host == -1)
		/* HTTP/1.0 without one; HTTP/1.1 needs one: nginx's
		 * $proxy_host, the upstream's name */
		buf_printf(o, "Host: %s\r\n", pc->pool->name);
	/*
	 * X-Forwarded-For: what came, in all its lines, joined in one (a
	 * reader of one line sees it all, as with nginx's
	 * $proxy_add_x_forwarded_for), then the peer, once.
	 */
	if (pc->xff != PROXY_XFF_OFF) {
		buf_append(o, "X-Forwarded-For: ", 17);
		if (pc->xff == PROXY_XFF_APPEND)
			for (i = -1; (i = http_find(m, b, "x-forwarded-for",
			    i + 1)) != -1;) {
				struct slice	v = http_hdr_value(b,
						    &m->hdrs[i]);

				if (v.len > 0)
					buf_printf(o, "%.*s, ", (int)v.len,
					    v.p);
			}
		buf_puts(o, ip);
		buf_append(o, "\r\n", 2);
	}
	if (pc->xfp && (pc->xff != PROXY_XFF_APPEND || !xfp_sent))
	{
		buf_append(o, "X-Forwarded-Proto: ", 19);
		buf_puts(o, proto);
		buf_append(o, "\r\n", 2);
	}
	if (pc->forwarded) {
		/* brackets for IPv6 only, not a v4-mapped address */
		if (strchr(ip, ':') != NULL)
			buf_printf(o, "Forwarded: for=\"[%s]\";proto=%s\r\n",
			    ip, proto);
		else
			buf_printf(o, "Forwarded: for=%s;proto=%s\r\n", ip,
			    proto);
	}
	if (pc->via != NULL)
		buf_printf(o, "Via: 1.%d %s\r\n", m->minor, pc->via);
	if (pc->req_add != NULL)
		pc->req_add(pc->arg, req, o);
	if (tunnel)
		buf_append(o, "Connection: upgrade\r\n", 21);
	if (pr->bufferall)
		buf_printf(o, "Content-Length: %llu\r\n",
		    (unsigned long long)pr->bodylen);
	else if (m->framing == HTTP_BODY_LENGTH)
		buf_printf(o, "Content-Length: %llu\r\n",
		    (unsigned long long)m->content_length);
	else if (m->framing == HTTP_BODY_CHUNKED) {
		buf_append(o, "Transfer-Encoding: chunked\r\n", 28);
		pr->chunked_out = 1;
	} else if ((m->flags & HTTP_F_CL) && m->content_length == 0)
		buf_append(o, "Content-Length: 0\r\n", 19);
	buf_append(o, "\r\n", 2);
	/*
	 * A field that did not fit is not left out: without its framing
	 * (Content-Length), the body would reach the server as the next
	 * request, one that was never routed, filtered or logged here.
	 */
	return (o->lost ? -1 : 0);
}

/* Forwarding begins: the head rewritten once, then a server chosen. */
static void
pr_start(struct preq *pr)
{
	pr->state = P_PICK;
	if (build_head(pr) == -1) {
		pr_fail(pr, 431, "request head too large to forward", 1);
		return;
	}
	pr_dispatch(pr);
}

/* PROXY protocol header for a new connection */
static void
proxy_proto(struct preq *pr, struct buf *o)
{
	struct sockaddr_storage	 local;
	socklen_t		 sl = sizeof(local);

	if (getsockname(pr->req->conn->s.fd, (struct sockaddr *)&local,
	    &sl) == -1)
		local.ss_family = AF_UNSPEC;
	proxyproto_write(o, pr->pc->proxy_protocol, client_addr(pr),
	    (struct sockaddr *)&local);
}

/*
 * The key of the hashing balancers when the daemon gives none: the
 * client's address for "source", else proxy_hash_request()'s.
 */
static uint64_t
hash_key(struct preq *pr)
{
	const struct sockaddr		*sa = client_addr(pr);
	const struct sockaddr_in	*sin = (const void *)sa;
	const struct sockaddr_in6	*sin6 = (const void *)sa;
	uint64_t			 key;

	if (pr->pc->pool->lb == &lb_source) {
		if (sa->sa_family == AF_INET)
			return (hash_bytes(&sin->sin_addr, sizeof(sin->sin_addr),
			    0));
		if (sa->sa_family == AF_INET6)
			return (hash_bytes(&sin6->sin6_addr,
			    sizeof(sin6->sin6_addr), 0));
		return (0);
	}
	if (proxy_hash_request(pr->pc, pr->req, &key))
		return (key);
	return (0);
}

/* Starting */

/*
 * The key of a balancer that hashes something of the request: the path
 * (uri), a header field's value (hdr: the first field of the name) or a
 * query parameter's raw value (url-param: the first of the name).  A
 * request without that field or parameter, or with an empty one, gets a
 * key of its own, so
 * that such requests spread as they would in turn.  Returns 0 when the
 * balancer hashes nothing of the request.
 */
int
proxy_hash_request(const struct proxy_conf *pc, struct http_req *req,
    uint64_t *key)
{
	static uint64_t		 seq;
	const struct lb_ops	*lb = pc->pool->lb;
	struct slice		 t, v;
	const char		*q, *p, *end;
	size_t			 n;

	if (lb != &lb_uri && lb != &lb_hdr && lb != &lb_url_param)
		return (0);
	t = http_req_target(req);
	q = memchr(t.p, '?', t.len);
	if (lb == &lb_uri) {
		*key = hash_bytes(t.p, q ? (size_t)(q - t.p) : t.len, 0);
		return (1);
	}
	v = slice_make(NULL, 0);
	if (lb == &lb_hdr)
		v = http_req_header(req, pc->hash_name);
	else if (q != NULL) {
		n = strlen(pc->hash_name);
		end = t.p + t.len;
		for (p = q + 1; p < end; p = q + 1) {
			if ((q = memchr(p, '&', end - p)) == NULL)
				q = end;
			if ((size_t)(q - p) > n && p[n] == '=' &&
			    memcmp(p, pc->hash_name, n) == 0) {
				v = slice_make(p + n + 1, q - p - n - 1);
				break;
			}
			if (q == end)
				break;
		}
	}
	*key = v.len > 0 ? hash_bytes(v.p, v.len, 1) :
	    hash_bytes(&seq, sizeof(seq), 2);
	seq++;
	return (1);
}

/*
 * Take over <req> from the daemon's handler and forward it with <pc>.
 * The daemon hears of it again through pc->done.
 */
void
proxy_start(struct http_req *req, struct proxy_conf *pc)
{
	struct preq	*pr;
	enum http_method m = req->msg.method;

	ploop = req->conn->loop;
	if ((pr = calloc(1, sizeof(*pr))) == NULL) {
		http_resp_error(req, 500);
		return;
	}
	pr->req = req;
	pr->pc = pc;
	pr->bodyfd = -1;
	pr->t0 = ev_now(ploop);
	pr->info.term[0] = pr->info.term[1] = '-';
	pr->idempotent = m == HTTP_M_GET || m == HTTP_M_HEAD ||
	    m == HTTP_M_PUT || m == HTTP_M_DELETE || m == HTTP_M_OPTIONS ||
	    m == HTTP_M_TRACE;
	buf_init(&pr->head, req->conn->srv->lim->max_head + 4096);
	buf_init(&pr->rbuf, pc->buffer_response ? pc->buffer_response :
	    PROXY_RBUF);
	ev_timer_init(&pr->timer, NULL, pr);
	req->ud = pr;
	req->h = &proxy_handler;
	if (pc->hash_key != NULL)
		pr->hashkey = pc->hash_key(pc->arg, req);
	else
		pr->hashkey = hash_key(pr);
	if (pc->buffer_request > 0 && http_req_has_body(req)) {
		pr->bufferall = 1;
		pr->state = P_BUFFER;
		buf_init(&pr->body, pc->buffer_request);
		http_req_read_body(req);
		return;
	}
	pr_start(pr);
}

/*
 * The backend's max-queue is reached: no more wait, in all workers when
 * the daemon counts them (m_queued), else in this one.
 */
static int
queue_full(struct preq *pr)
{
	struct proxy_conf	*pc = pr->pc;

	if (pc->max_queue == 0 || pr->queued)
		return (0);
	return ((pc->m_queued != NULL ? stats_gauge_value(pc->m_queued) :
	    pc->pool->nqueued) >= pc->max_queue);
}

/* The oldest request of this worker waiting for <pool>, or NULL. */
static struct preq *
queue_oldest(struct up_pool *pool)
{
	struct preq	*pr;

	if (pool->nqueued > 0)
		TAILQ_FOREACH(pr, &pr_queued, qentry)
			if (pr->pc->pool == pool)
				return (pr);
	return (NULL);
}

static void
queue_timer(struct ev_timer *t)
{
	pr_dispatch(t->arg);
}

/*
 * <pr> joins the queue (<in>) or leaves it: the list, the gauge and its
 * timer.  Only the oldest of a pool retries, every 10 ms (any free slot
 * serves any request); the others wait for their turn or their
 * queue-timeout, so that a long line costs one retry, not one each.
 * The oldest leaving hands the turn on.  A request already waiting is
 * the oldest, retrying again.
 */
static void
pr_queue(struct preq *pr, int in)
{
	struct up_pool	*pool = pr->pc->pool;
	int		 first;

	if (pr->queued && in) {
		ev_timer_add(ploop, &pr->timer, 10);
		return;
	}
	if (pr->queued == in)
		return;
	pr->queued = in;
	if (in) {
		first = pool->nqueued == 0;
		TAILQ_INSERT_TAIL(&pr_queued, pr, qentry);
		pool->nqueued++;
		pr->state = P_QUEUE;
		ev_timer_init(&pr->timer, queue_timer, pr);
		ev_timer_at(ploop, &pr->timer, first ? ev_now(ploop) + 10 :
		    pr->t0 + pr->pc->queue_timeout);
	} else {
		first = queue_oldest(pool) == pr;
		TAILQ_REMOVE(&pr_queued, pr, qentry);
		pool->nqueued--;
		if (first)
			queue_kick(pool);
	}
	if (pr->pc->m_queued != NULL)
		stats_gauge_add(pr->pc->m_queued, in ? 1 : -1);
}

/*
 * A connection to <s> is no longer busy: the oldest request of this
 * worker waiting for its pool tries at once (on the next round of the
 * loop), not at its next 10 ms retry.  The other workers' waiting
 * requests find the slot at their retry.
 */
static void
queue_kick(struct up_pool *pool)
{
	struct preq	*pr;

	if ((pr = queue_oldest(pool)) != NULL)
		ev_timer_add(ploop, &pr->timer, 0);
}

/* Connections to <s> in use: one less (and a waiting request's turn). */
static void
px_dropped(struct up_server *s)
{
	up_dropped(s);
	queue_kick(s->pool);
}

/* Choose a server and get a connection to it; or fail the request. */
static void
pr_dispatch(struct preq *pr)
{
	struct proxy_conf	*pc = pr->pc;
	struct up_server	*s;
	struct up_conn		*uc = NULL;
	uint64_t		 now = ev_now(ploop);
	const char		*why;
	int			 i, full = 0, any = 0;

	if (pr->tries > pc->retries) {
		pr_fail(pr, 502, "no server answered", 0);
		return;
	}
	/*
	 * Requests of this worker already wait for this pool: behind them,
	 * and the oldest has the turn (a slot came free, or it would not
	 * have been handed this one).
	 */
	if (!pr->queued && pc->pool->nqueued > 0 && pr->tries == 0) {
		if (queue_full(pr)) {
			/* no cutting in: the line is full */
			pr->info.term[0] = 's';
			pr->info.term[1] = 'Q';
			pr_fail(pr, 503, "all servers full, and the queue", 0);
			return;
		}
		queue_kick(pc->pool);
		pr_queue(pr, 1);
		return;
	}
	s = NULL;
	/* a server the daemon names (a sticky cookie's), if it can take it */
	if (pc->pick != NULL && pr->tries == 0 &&
	    (s = pc->pick(pc->arg, pr->req)) != NULL &&
	    (!up_eligible(pc->pool, s, now, NULL) ||
	    (pr->tried & (1ULL << (s->index & 63)))))
		s = NULL;
	if (s == NULL)
		s = up_pick(pc->pool, pr->hashkey, pr->tried);
	if (s == NULL && pr->tried != 0) {
		/* every server tried: try them again rather than fail */
		s = up_pick(pc->pool, pr->hashkey, 0);
	}
	if (s == NULL) {
		for (i = 0; i < pc->pool->nservers; i++) {
			int	f;

			if (up_eligible(pc->pool, pc->pool->servers[i], now,
			    &f))
				any = 1;
			full |= f;
		}
		why = full ? "all servers full" : "no server available";
		if (full && !any && now - pr->t0 < pc->queue_timeout) {
			if (!queue_full(pr)) {
				/* all eligible servers are at maxconn: wait */
				pr_queue(pr, 1);
				return;
			}
			why = "all servers full, and the queue";
			pr->state = P_QUEUE;	/* for the log: sQ */
		}
		pr_queue(pr, 0);
		pr->info.term[0] = 's';
		pr->info.term[1] = pr->state == P_QUEUE ? 'Q' : 'C';
		pr_fail(pr, 503, why, 0);
		return;
	}
	/* served: the next one tries too, there may be more room */
	pr_queue(pr, 0);
	pr->info.t_queue = now - pr->t0;
	pr->tries++;
	pr->tried |= 1ULL << (s->index & 63);
	pr->info.server = s;
	pr->info.retries = pr->tries - 1;
	atomic_fetch_add(&s->sh->requests, 1);
	/*
	 * A kept-alive connection, for idempotent requests only: the server
	 * may close an idle connection at any moment, and a request sent on
	 * one it just closed can be retried only if repeating it is safe.
	 * Others get a new connection (HAProxy's "http-reuse safe").
	 */
	if (!pc->proxy_protocol && pr->idempotent)
		uc = uc_take_idle(s);
	pr->t_pick = now;
	if (uc != NULL) {
		uc->pr = pr;
		pr->uc = uc;
		pr->state = P_SEND;
		buf_reset(&uc->out);
		buf_append(&uc->out, buf_head(&pr->head), buf_used(&pr->head));
		ev_timer_add(ploop, &uc->timer, pc->response_timeout);
		pr_run(pr);
		return;
	}
	if ((uc = uc_connect(pr, s)) == NULL) {
		log_warn("%s/%s: connect %s", pc->pool->name, s->name,
		    s->addr.text);
		up_failed(s, now);
		pr_dispatch(pr);
		return;
	}
	uc->pr = pr;
	pr->uc = uc;
	pr->state = P_CONNECT;
	if (pc->proxy_protocol)
		proxy_proto(pr, &uc->out);
	buf_append(&uc->out, buf_head(&pr->head), buf_used(&pr->head));
	ev_timer_add(ploop, &uc->timer, pc->connect_timeout);
}

/* An answer from us, not from a server. */
static void
pr_fail(struct preq *pr, int status, const char *why, int silent)
{
	struct up_conn	*uc = pr->uc;

	if (uc != NULL) {
		pr->uc = NULL;
		uc->pr = NULL;
		uc_close(uc);
	}
	if (!silent && pr->info.server != NULL)
		log_warnx("%s/%s: %s", pr->pc->pool->name,
		    pr->info.server->name, why);
	else if (!silent)
		log_warnx("%s: %s", pr->pc->pool->name, why);
	pr->state = P_DONE;
	/* once the head went, the client has its status: log that one */
	if (!(pr->req->rflags & HTTP_R_RESP_BEGUN))
		pr->info.status = status;
	/* the daemon's own page for it (error-page), if it has one */
	if (pr->pc->error != NULL &&
	    !(pr->req->rflags & HTTP_R_RESP_BEGUN) &&
	    pr->pc->error(pr->pc->arg, pr->req, status))
		return;
	http_resp_error(pr->req, status);
}

/*
 * The connection failed before any response byte.  The request goes to
 * a server again if it is idempotent and its body (if any) is not lost;
 * a reused keep-alive connection that the server had closed does not
 * count as a try or as a failure of the server.
 */
static void
pr_retry_or_fail(struct preq *pr, const char *why)
{
	struct up_conn	*uc = pr->uc;
	int		 reused = uc != NULL && uc->reused;

	if (uc != NULL) {
		if (!reused)
			up_failed(uc->srv, 0);
		pr->uc = NULL;
		uc->pr = NULL;
		uc_close(uc);
	}
	/*
	 * Not once the server began its answer: it acted on the request,
	 * and the next server's head would meet this one's parser state.
	 */
	if (pr->rhdrs != NULL)
		why = "server closed in the middle of its response head";
	else if (pr->idempotent && (!pr->body_started || pr->bufferall)) {
		if (reused && pr->tries > 0) {
			pr->tries--;
			pr->tried &= ~(1ULL << (pr->info.server->index & 63));
		}
		if (pr->bufferall && pr->bodyfd != -1)
			(void)lseek(pr->bodyfd, 0, SEEK_SET);
		pr->body_off = 0;	/* the body held in memory, again */
		pr->body_sent = 0;
		pr->body_started = 0;
		pr->state = P_PICK;
		/* what the log says if no server answers (pr_dispatch) */
		pr->info.term[0] = 's';
		pr->info.term[1] = 'H';
		pr_dispatch(pr);
		return;
	}
	pr->info.term[0] = 's';
	pr->info.term[1] = 'H';
	pr_fail(pr, 502, why, 0);
}

/* Sending */

static int
uc_flush(struct up_conn *uc)
{
	ssize_t	n;

	while (buf_used(&uc->out) > 0 && (uc->s.flags & SOCK_WRITABLE)) {
		n = sock_write(&uc->s, buf_head(&uc->out), buf_used(&uc->out));
		if (n > 0) {
			buf_consume(&uc->out, n);
			/* the server is taking the request: not late */
			if (uc->pr != NULL)
				ev_timer_add(ploop, &uc->timer,
				    uc->pr->pc->response_timeout);
		} else if (n == -1 && errno == EAGAIN)
			return (0);
		else
			return (-1);
	}
	return (0);
}

/*
 * The requests read in one batch of events go out together after it:
 * a server then wakes once for all those it gets, not once for each
 * (waking a sleeping process on another CPU is the dearest part of a
 * send here), and reads them in one turn of its loop.
 */
static void
uc_flush_deferred(struct ev_defer *d)
{
	struct up_conn	*uc = d->arg;

	if (uc->dead || uc->pr == NULL)
		return;
	/* all of a request without a body to follow went: nothing to run */
	if (uc_flush(uc) == 0 && buf_used(&uc->out) == 0 && uc->pr->body_sent)
		return;
	uc->flush_now = 1;
	pr_run(uc->pr);
	uc->flush_now = 0;
}

/* A streamed body has ended: its last chunk, when re-chunked, follows. */
static void
body_out_ended(struct preq *pr)
{
	if (pr->chunked_out && pr->uc != NULL)
		buf_append(&pr->uc->out, "0\r\n\r\n", 5);
	pr->body_sent = 1;
}

/* The buffered body (memory, then the spill file) goes out. */
static void
send_buffered_body(struct preq *pr)
{
	struct up_conn	*uc = pr->uc;

	if (pr->body_sent)
		return;
	if (pr->bodyfd == -1) {
		/* kept whole, not consumed: a retry sends it again */
		size_t	n = buf_used(&pr->body) - pr->body_off;

		if (buf_room(&uc->out) < n)
			n = buf_room(&uc->out);
		buf_append(&uc->out, buf_head(&pr->body) + pr->body_off, n);
		pr->body_off += n;
		if (pr->body_off == buf_used(&pr->body))
			pr->body_sent = 1;
		pr->body_started = 1;
		return;
	}
	while (buf_room(&uc->out) > 0) {
		size_t	room = buf_room(&uc->out);
		ssize_t	r;

		if (buf_reserve(&uc->out, room > 16384 ? 16384 : room) == -1)
			break;
		r = read(pr->bodyfd, buf_tail(&uc->out),
		    uc->out.cap - uc->out.len < 16384 ?
		    uc->out.cap - uc->out.len : 16384);
		if (r <= 0) {
			pr->body_sent = 1;
			break;
		}
		uc->out.len += r;
		pr->body_started = 1;
	}
}

/* Responses */

static int
resp_field_keep(struct preq *pr, const char *b, const struct http_hdr *h)
{
	struct proxy_conf	*pc = pr->pc;

	if (h->flags & (HTTP_H_HOPBYHOP | HTTP_H_CL))
		return (0);
	if ((h->flags & HTTP_H_UPGRADE) && pr->resp.status != 101)
		return (0);
	if (is_hop_field(&pr->resp, b, h, pr->resp.status == 101))
		return (0);
	if (pc->resp_filter != NULL && !pc->resp_filter(pc->arg, pr->req,
	    slice_make(b + h->name, h->namelen), http_hdr_value(b, h)))
		return (0);
	return (1);
}

static void
tunnel_done(void *arg, uint64_t ab, uint64_t ba)
{
	struct up_server	*srv = arg;

	(void)ab;
	(void)ba;
	/* the tunnel's connection counted for maxconn and leastconn */
	px_dropped(srv);
}

/* The response head is complete: pass it on. */
static int
resp_head(struct preq *pr)
{
	struct up_conn		*uc = pr->uc;
	struct http_req		*req = pr->req;
	struct http_msg		*m = &pr->resp;
	const char		*b = uc->in.data + uc->in.off;
	int			 i, has_date = 0;

	pr->info.t_response = ev_now(ploop) - pr->t_pick;
	pr->info.head = 1;
	if (m->status < 200 && m->status != 101) {
		/* 100 Continue and 103: ours went already, drop theirs */
		buf_consume(&uc->in, m->head_len);
		http_msg_init(&pr->resp, 1, req->conn->srv->lim, pr->rhdrs);
		pr->resp.req_method = req->msg.method;
		return (1);
	}
	if (m->status == 101 && !(req->msg.flags & HTTP_F_UPGRADE)) {
		pr_fail(pr, 502, "101 to a request without Upgrade", 0);
		return (-1);
	}
	pr->rhead_done = 1;
	up_succeeded(uc->srv);
	/*
	 * An error before the server took the whole body (a 413, a 401):
	 * it will not read the rest, nor will we, so the client's
	 * connection ends after the answer; say so in it
	 */
	if (m->status >= 400 && (req->rflags & HTTP_R_READBODY) &&
	    !(req->rflags & HTTP_R_BODYDONE))
		http_resp_close(req);
	http_resp_begin(req, m->status);
	for (i = 0; i < m->nhdrs; i++) {
		const struct http_hdr	*h = &m->hdrs[i];

		if (!resp_field_keep(pr, b, h))
			continue;
		if (h->namelen == 4 && http_hdr_is(b, h, "date"))
			has_date = 1;
		http_resp_header_raw(req, b + h->name, h->namelen);
		http_resp_header_raw(req, ": ", 2);
		http_resp_header_raw(req, b + h->value, h->valuelen);
		http_resp_header_raw(req, "\r\n", 2);
	}
	if (pr->pc->resp_add != NULL)
		pr->pc->resp_add(pr->pc->arg, req, &pr->info);
	if (has_date)
		req->rflags |= HTTP_R_NODATE;
	if ((m->flags & HTTP_F_CLOSE) || (m->minor == 0 &&
	    !(m->flags & HTTP_F_KEEPALIVE)) || (m->flags & HTTP_F_BADFRAMING))
		pr->upstream_close = 1;
	pr->info.status = m->status;
	/* a try that failed before this answer ends nothing */
	pr->info.term[0] = pr->info.term[1] = '-';
	if (m->status == 101) {
		struct sock	 cs;
		struct buf	*cin, *cout, *uin = NULL;

		http_resp_header_raw(req, "Connection: upgrade\r\n", 21);
		req->rflags |= HTTP_R_NODATE;
		http_resp_body(req, 0);
		buf_consume(&uc->in, m->head_len);
		if (buf_used(&uc->in) > 0) {
			uin = calloc(1, sizeof(*uin));
			buf_init(uin, buf_used(&uc->in) + 1);
			buf_append(uin, buf_head(&uc->in), buf_used(&uc->in));
		}
		if (http_req_detach(req, &cs, &cin, &cout) == -1)
			return (-1);
		/* to the client: the 101 head, then what the server sent */
		if (uin != NULL) {
			if (cout == NULL) {
				cout = uin;
				uin = NULL;
			} else {
				cout->max += buf_used(uin);
				buf_append(cout, buf_head(uin), buf_used(uin));
				buf_free(uin);
				free(uin);
			}
		}
		ev_timer_del(ploop, &uc->timer);
		buf_free(&uc->in);
		buf_free(&uc->out);
		uc->pr = NULL;
		pr->uc = NULL;
		/* the tunnel owns both sockets now; the slot stays taken */
		{
			struct sock	us = uc->s;
			struct up_server *srv = uc->srv;

			uc->s.fd = -1;
			uc->s.ssl = NULL;
			uc->dead = 1;
			TAILQ_INSERT_TAIL(&uc_dead, uc, entry);
			if (tunnel_new(ploop, &cs, &us, cin, cout,
			    pr->pc->tunnel_timeout, NULL, tunnel_done,
			    srv) == NULL) {
				sock_close(ploop, &cs);
				sock_close(ploop, &us);
				px_dropped(srv);
			}
		}
		pr->state = P_DONE;
		return (-1);
	}
	switch (m->framing) {
	case HTTP_BODY_NONE:
		/* a HEAD answer tells the framing a GET would have had */
		if (req->msg.method == HTTP_M_HEAD && (m->flags & HTTP_F_CL))
			http_resp_body(req, m->content_length);
		else if (req->msg.method == HTTP_M_HEAD &&
		    (m->flags & HTTP_F_TE))
			http_resp_body(req, -1);
		else if (req->msg.method == HTTP_M_HEAD)
			http_resp_body(req, HTTP_RESP_UNSAID);
		else
			http_resp_body(req, 0);
		pr->rbody_done = 1;
		break;
	case HTTP_BODY_LENGTH:
		pr->rleft = m->content_length;
		http_resp_body(req, m->content_length);
		if (pr->rleft == 0)
			pr->rbody_done = 1;
		break;
	case HTTP_BODY_CHUNKED:
		http_chunked_init(&pr->rch, req->conn->srv->lim->max_head);
		http_resp_body(req, -1);
		break;
	default:
		pr->upstream_close = 1;
		http_resp_body(req, -1);
		break;
	}
	buf_consume(&uc->in, m->head_len);
	return (1);
}

/* Hand decoded body bytes to the client (what it does not take waits). */
static size_t
to_client(struct preq *pr, const char *p, size_t n)
{
	size_t	took = 0;

	if (buf_used(&pr->rbuf) == 0)
		took = http_resp_write(pr->req, p, n);
	if (took < n) {
		if (buf_append(&pr->rbuf, p + took, n - took) == -1) {
			/* cannot happen: reading stops when rbuf is full */
			return (took);
		}
	}
	pr->info.bytes_in += n;
	return (n);
}

/* Relay what the upstream sent of the body.  Returns -1 on error. */
static int
resp_body(struct preq *pr)
{
	struct up_conn	*uc = pr->uc;
	size_t		 n;

	while (!pr->rbody_done && buf_used(&uc->in) > 0 &&
	    buf_room(&pr->rbuf) > 0) {
		const char	*p = buf_head(&uc->in);
		size_t		 avail = buf_used(&uc->in);

		if (avail > buf_room(&pr->rbuf))
			avail = buf_room(&pr->rbuf);
		switch (pr->resp.framing) {
		case HTTP_BODY_LENGTH:
			n = avail < pr->rleft ? avail : pr->rleft;
			to_client(pr, p, n);
			buf_consume(&uc->in, n);
			pr->rleft -= n;
			if (pr->rleft == 0)
				pr->rbody_done = 1;
			break;
		case HTTP_BODY_CHUNKED: {
			size_t	doff, dlen;
			ssize_t	used;

			used = http_chunked_next(&pr->rch, p, avail, &doff,
			    &dlen);
			if (used < 0)
				return (-1);
			if (dlen > 0)
				to_client(pr, p + doff, dlen);
			buf_consume(&uc->in, used);
			if (pr->rch.done)
				pr->rbody_done = 1;
			if (used == 0)
				return (0);
			break;
		}
		default:
			to_client(pr, p, avail);
			buf_consume(&uc->in, avail);
			break;
		}
	}
	return (0);
}

/* Move the buffered response body to the client. */
static void
rbuf_flush(struct preq *pr)
{
	size_t	took;

	while (buf_used(&pr->rbuf) > 0) {
		took = http_resp_write(pr->req, buf_head(&pr->rbuf),
		    buf_used(&pr->rbuf));
		if (took == 0)
			return;
		buf_consume(&pr->rbuf, took);
	}
}

static int
uc_read(struct up_conn *uc)
{
	ssize_t	n;
	size_t	want;

	if (!(uc->s.flags & SOCK_READABLE) || buf_room(&uc->in) == 0)
		return (0);
	want = buf_room(&uc->in) < 16384 ? buf_room(&uc->in) : 16384;
	if (uc->in.off > 0 && uc->in.off == uc->in.len)
		buf_reset(&uc->in);
	if (buf_reserve(&uc->in, want) == -1)
		return (0);
	n = sock_read(&uc->s, buf_tail(&uc->in), uc->in.cap - uc->in.len);
	if (n > 0) {
		uc->in.len += n;
		return (1);
	}
	if (n == 0)
		return (-1);
	if (errno == EAGAIN)
		return (0);
	return (-2);
}

/* Drive a proxied request as far as it can go now. */
static void
pr_run(struct preq *pr)
{
	struct up_conn	*uc;
	size_t		 out;
	int		 r, progress;

	do {
		progress = 0;
		uc = pr->uc;
		if (pr->state == P_DONE || uc == NULL)
			return;
		if (pr->state == P_CONNECT) {
			int		err = 0;
			socklen_t	sl = sizeof(err);

			if (!(uc->s.flags & (SOCK_WRITABLE | SOCK_ERROR)))
				return;
			if (!uc->handshaking || uc->s.flags & SOCK_ERROR) {
				if (getsockopt(uc->s.fd, SOL_SOCKET, SO_ERROR,
				    &err, &sl) == -1)
					err = errno;
				if (err != 0 || (uc->s.flags & SOCK_ERROR)) {
					errno = err;
					log_warn("%s/%s: connect %s",
					    pr->pc->pool->name, uc->srv->name,
					    uc->srv->addr.text);
					up_failed(uc->srv, 0);
					pr->uc = NULL;
					uc->pr = NULL;
					uc_close(uc);
					pr->info.term[0] = 's';
					pr->info.term[1] = 'C';
					pr_dispatch(pr);
					return;
				}
			}
			if (uc->handshaking) {
				uc->s.flags |= SOCK_READABLE;
				r = sock_handshake(&uc->s);
				if (r == 0)
					return;
				if (r == -1) {
					log_warnx("%s/%s: TLS handshake failed",
					    pr->pc->pool->name, uc->srv->name);
					up_failed(uc->srv, 0);
					pr->uc = NULL;
					uc->pr = NULL;
					uc_close(uc);
					pr_dispatch(pr);
					return;
				}
				uc->handshaking = 0;
			}
			uc->s.flags |= SOCK_READABLE | SOCK_WRITABLE;
			pr->info.t_connect = ev_now(ploop) - pr->t_pick;
			pr->state = P_SEND;
			ev_timer_add(ploop, &uc->timer,
			    pr->pc->response_timeout);
			progress = 1;
		}
		/* the body, from the buffer or streamed */
		if (pr->state >= P_SEND && !pr->body_sent) {
			if (pr->bufferall)
				send_buffered_body(pr);
			else if (!http_req_has_body(pr->req))
				pr->body_sent = 1;
			else if (pr->req->rflags & HTTP_R_BODYENDED)
				/*
				 * A retry of a body that ended with none of
				 * it sent (an empty chunked one): end it again.
				 */
				body_out_ended(pr);
			else if (!(pr->req->rflags & HTTP_R_READBODY))
				http_req_read_body(pr->req);
			else if (buf_room(&uc->out) > 0)
				http_req_resume(pr->req);
		}
		out = buf_used(&uc->out);
		if (out > 0 && !uc->flush_now &&
		    (uc->s.flags & SOCK_WRITABLE)) {
			/* with the batch's other requests: see uc_flush_deferred */
			ev_defer(ploop, &uc->flushd);
		} else if (uc_flush(uc) == -1) {
			if (!pr->rhead_done) {
				pr_retry_or_fail(pr, "upstream write failed");
				return;
			}
		}
		/*
		 * The server took bytes and may take more: loop for more of
		 * the body (buffered, or paused while the buffer was full),
		 * since an edge-triggered socket that stayed writable raises
		 * no new event.
		 */
		if (buf_used(&uc->out) < out && !pr->body_sent)
			progress = 1;
		/* the response */
		r = uc_read(uc);
		if (r > 0) {
			progress = 1;
			ev_timer_add(ploop, &uc->timer,
			    pr->pc->response_timeout);
		}
		if (!pr->rhead_done && buf_used(&uc->in) > 0) {
			int	rv;

			if (pr->rhdrs == NULL) {
				pr->rhdrs = reallocarray(NULL, pr->req->conn->
				    srv->lim->max_headers,
				    sizeof(struct http_hdr));
				if (pr->rhdrs == NULL) {
					pr_fail(pr, 500, "out of memory", 0);
					return;
				}
				http_msg_init(&pr->resp, 1,
				    pr->req->conn->srv->lim, pr->rhdrs);
				pr->resp.req_method = pr->req->msg.method;
			}
			rv = http_parse(&pr->resp, buf_head(&uc->in),
			    buf_used(&uc->in));
			if (rv == HTTP_ERROR) {
				up_failed(uc->srv, 0);
				pr->info.term[0] = 's';
				pr->info.term[1] = 'H';
				pr_fail(pr, 502, pr->resp.errmsg, 0);
				return;
			}
			if (rv == HTTP_DONE) {
				pr->state = P_RESP;
				if (resp_head(pr) == -1)
					return;
				progress = 1;
				continue;
			}
		}
		if (pr->rhead_done) {
			size_t	held = buf_used(&uc->in), moved;

			if (resp_body(pr) == -1) {
				pr->info.term[0] = 's';
				pr->info.term[1] = 'D';
				http_resp_close(pr->req);
				pr_fail(pr, 502, "bad response body", 0);
				return;
			}
			moved = buf_used(&pr->rbuf);
			rbuf_flush(pr);
			/*
			 * The client took some of a full rbuf while uc->in
			 * still holds more: relay on now, before the server's
			 * end is judged below.
			 */
			if (buf_used(&pr->rbuf) < moved && !pr->rbody_done &&
			    buf_used(&uc->in) > 0)
				progress = 1;
			/*
			 * Room made in a full uc->in: read on now.  The
			 * socket's edge is spent, and when the client took it
			 * all no drain call will come to do it.
			 */
			if (buf_used(&uc->in) < held &&
			    (uc->s.flags & SOCK_READABLE))
				progress = 1;
		}
		if (r < 0) {
			/* the server closed (or failed) */
			if (!pr->rhead_done) {
				pr_retry_or_fail(pr, r == -1 ?
				    "server closed before answering" :
				    "server reset before answering");
				return;
			}
			/* (uc_release() will not keep it: SOCK_EOF or _ERROR) */
			pr->up_eof = 1;
		}
		/*
		 * After the server's end, judge the body once what came
		 * before it is relayed, or can go no further: a slow client
		 * may leave bytes in uc->in when the end is read.
		 */
		if (pr->up_eof && !pr->rbody_done &&
		    (buf_used(&uc->in) == 0 ||
		    (buf_room(&pr->rbuf) > 0 && !progress))) {
			if (pr->resp.framing == HTTP_BODY_CLOSE &&
			    buf_used(&uc->in) == 0)
				pr->rbody_done = 1;
			else {
				pr->info.term[0] = 's';
				pr->info.term[1] = 'D';
				http_resp_close(pr->req);
				pr_fail(pr, 502, "server closed mid-body", 1);
				return;
			}
		}
		if (pr->rbody_done) {
			/*
			 * The server has said all: its connection goes back
			 * now, even if the client is still reading what we
			 * buffered, so a slow client never holds a server.
			 */
			pr_finish(pr);
			return;
		}
	} while (progress);
	/* what came of the response goes now, not when more comes */
	if (pr->rhead_done)
		http_resp_push(pr->req);
}

/* The response is all with the client's engine: end it. */
static void
pr_finish(struct preq *pr)
{
	struct up_conn	*uc = pr->uc;
	int		 reusable;

	pr->state = P_DONE;
	/* a server that answered before taking the whole body: close */
	reusable = !pr->upstream_close && pr->body_sent &&
	    buf_used(&uc->in) == 0 && buf_used(&uc->out) == 0 &&
	    pr->resp.framing != HTTP_BODY_CLOSE;
	pr->uc = NULL;
	uc_release(uc, reusable, pr->pc);
	if (buf_used(&pr->rbuf) == 0)
		http_resp_end(pr->req);
	/* else p_drain ends it once the buffer is out */
}

/* Engine callbacks */

/*
 * Add to the spilled body; on failure (a full tmpdir) a 500 that says
 * why in the log, as nginx's, and the unnamed file goes with the request.
 */
static int
spill_write(struct preq *pr, const char *p, size_t n)
{
	ssize_t	w;

	while (n > 0) {
		if ((w = write(pr->bodyfd, p, n)) == -1 && errno == EINTR)
			continue;
		if (w <= 0) {
			char	why[1024];

			snprintf(why, sizeof(why), "cannot buffer the request "
			    "body in %s: %s", pr->pc->tmpdir, w == 0 ?
			    "short write" : strerror(errno));
			pr_fail(pr, 500, why, 0);
			return (-1);
		}
		p += w;
		n -= w;
	}
	return (0);
}

static int
spill(struct preq *pr)
{
	char	path[1024];

	snprintf(path, sizeof(path), "%s/proxy-body.XXXXXX", pr->pc->tmpdir);
	if ((pr->bodyfd = mkstemp(path)) == -1) {
		log_warn("%s: mkstemp %s", __func__, path);
		pr_fail(pr, 500, "cannot buffer the request body", 0);
		return (-1);
	}
	unlink(path);
	if (spill_write(pr, buf_head(&pr->body), buf_used(&pr->body)) == -1)
		return (-1);
	buf_reset(&pr->body);
	return (0);
}

static size_t
p_body(struct http_req *req, const char *p, size_t n)
{
	struct preq	*pr = req->ud;
	struct up_conn	*uc = pr->uc;
	size_t		 room;

	if (pr->state == P_BUFFER) {
		pr->bodylen += n;
		if (pr->bodyfd == -1 && buf_append(&pr->body, p, n) == 0)
			return (n);
		if (pr->bodyfd == -1 && spill(pr) == -1)
			return (n);
		(void)spill_write(pr, p, n);
		return (n);
	}
	if (uc == NULL || pr->state < P_SEND)
		return (0);
	room = buf_room(&uc->out);
	if (pr->chunked_out)
		room = room > 32 ? room - 32 : 0;
	if (n > room)
		n = room;
	if (n == 0)
		return (0);
	if (pr->chunked_out) {
		buf_put_hex(&uc->out, n);
		buf_append(&uc->out, "\r\n", 2);
		buf_append(&uc->out, p, n);
		buf_append(&uc->out, "\r\n", 2);
	} else
		buf_append(&uc->out, p, n);
	pr->body_started = 1;
	if (uc_flush(uc) == -1) {
		/* pr_run sees the error */
	}
	return (n);
}

static void
p_body_end(struct http_req *req, int status)
{
	struct preq	*pr = req->ud;

	if (status != 0) {
		pr->info.term[0] = status == 408 ? 'c' : 'C';
		pr->info.term[1] = 'D';
		pr_fail(pr, status, "request body", 1);
		return;
	}
	if (pr->state == P_BUFFER) {
		if (pr->bodyfd != -1 && lseek(pr->bodyfd, 0, SEEK_SET) == -1) {
			pr_fail(pr, 500, "body file", 0);
			return;
		}
		pr_start(pr);
		return;
	}
	body_out_ended(pr);
	pr_run(pr);
}

static void
p_drain(struct http_req *req)
{
	struct preq	*pr = req->ud;

	rbuf_flush(pr);
	if (pr->uc != NULL)
		pr_run(pr);
	else if (pr->state == P_DONE && pr->rbody_done &&
	    buf_used(&pr->rbuf) == 0)
		http_resp_end(req);
}

static void
p_done(struct http_req *req)
{
	struct preq	*pr = req->ud;

	if (pr == NULL)
		return;
	req->ud = NULL;
	if (pr->state != P_DONE && pr->info.term[0] == '-') {
		/* HAProxy's letters: C the client went, c it timed out */
		pr->info.term[0] = (req->rflags & HTTP_R_TIMEDOUT) ? 'c' : 'C';
		pr->info.term[1] = pr->rhead_done ? 'D' : 'H';
	}
	if (pr->uc != NULL) {
		pr->uc->pr = NULL;
		uc_close(pr->uc);
		pr->uc = NULL;
	}
	if (pr->info.status == 0)
		pr->info.status = req->status;
	pr_queue(pr, 0);
	if (pr->pc->done != NULL)
		pr->pc->done(pr->pc->arg, req, &pr->info);
	ev_timer_del(ploop, &pr->timer);
	buf_free(&pr->head);
	buf_free(&pr->body);
	buf_free(&pr->rbuf);
	free(pr->rhdrs);
	if (pr->bodyfd != -1)
		close(pr->bodyfd);
	TAILQ_INSERT_TAIL(&pr_dead, pr, qentry);
}
