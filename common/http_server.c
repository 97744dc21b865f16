/*
 * http_server.c: the HTTP/1.1 connection engine (see http_server.h).
 *
 * A connection goes through these states:
 *
 *	TLS	handshake (TLS listeners only)
 *	IDLE	no request; no buffer held (keep-alive idle timeout, or the
 *		header timeout on a fresh connection)
 *	HEAD	bytes of a request head have arrived (header timeout: 408)
 *	REQ	a request is with the handler: its body is read on demand,
 *		its response written as it is produced
 *	DISCARD	the response is out; unread body bytes are dropped before
 *		the next request can be read
 *	LINGER	closing: our side is shut, what the client still sends is
 *		read and dropped for a while so that a reset does not destroy
 *		the response on its way (as nginx's lingering close)
 *
 * All the work happens in conn_run(), which loops until no step makes
 * progress; event callbacks and handler calls only set flags and call it,
 * so no handler call ever recurses into the next request.
 */
#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "http_server.h"
#include "log.h"
#include "proxyproto.h"
#include "tls.h"

enum {
	CS_PROXY = 1,	/* reading a PROXY protocol header */
	CS_TLS,
	CS_IDLE,
	CS_HEAD,
	CS_REQ,
	CS_DISCARD,
	CS_LINGER,
	CS_CLOSED
};

/* http_conn.flags */
#define CF_RUNNING	0x01	/* inside conn_run */
#define CF_AGAIN	0x02	/* conn_run asked to loop again */
#define CF_CLOSE_AFTER	0x04	/* no keep-alive after this response */
#define CF_DRAIN_CALL	0x08	/* the handler waits for drain() */
#define CF_GOT_BYTES	0x10	/* bytes of a head have arrived */
#define CF_QUEUED	0x20	/* on the run queue */
#define CF_ABORT	0x40	/* close without finishing the response */
#define CF_COUNTED	0x80	/* in srv->shared_conns */
#define CF_OPENED	0x100	/* srv->conn_open was called */
#define CF_SHUT		0x200	/* our side is shut down (lingering) */
#define CF_LOWAT	0x400	/* TCP_NOTSENT_LOWAT is set */
#define CF_PIPELINED	0x800	/* the client pipelines its requests */

/*
 * The unsent bytes a socket sending a file may hold.  Without a bound,
 * sendfile(2) queues as much as the send buffer takes (megabytes once
 * autotuned), and that queue is then sent from wherever the peer's ACKs
 * are processed, in softirq on another CPU (on loopback, the client's).
 * With it, the worker is woken to send the next part itself, and idle
 * queues hold less memory.  32 KiB measured best on 1 MiB files: +13%
 * requests/s on loopback against 16 and 64 KiB's +1-3% (README).
 */
#define FILE_NOTSENT_LOWAT	(32 * 1024)

static struct ev_loop		*loop;
static TAILQ_HEAD(, http_conn)	 conns = TAILQ_HEAD_INITIALIZER(conns);
static TAILQ_HEAD(, http_conn)	 graveyard = TAILQ_HEAD_INITIALIZER(graveyard);
static TAILQ_HEAD(, http_conn)	 runq = TAILQ_HEAD_INITIALIZER(runq);
static int			 nconns;
static int			 draining;
static struct buf		*pool[HTTP_INBUF_POOL];
static int			 npool;

static void	conn_run(struct http_conn *);
static void	conn_kick(struct http_conn *);
static void	conn_close(struct http_conn *);
static void	conn_error(struct http_conn *, int, const char *);
static int	conn_pending(const struct http_conn *);
static void	conn_event(struct ev_io *, uint32_t);
static void	conn_timeout(struct ev_timer *);
static void	req_finish(struct http_conn *);
static void	body_end(struct http_req *, int);

void
http_server_init(struct ev_loop *l)
{
	loop = l;
}

int
http_server_nconns(void)
{
	return (nconns);
}

static struct buf *
buf_get(size_t max)
{
	struct buf	*b;

	if (npool > 0) {
		b = pool[--npool];
		b->max = max;
		b->off = b->len = 0;
		return (b);
	}
	if ((b = calloc(1, sizeof(*b))) == NULL)
		return (NULL);
	buf_init(b, max);
	return (b);
}

static void
buf_put(struct buf *b)
{
	if (b == NULL)
		return;
	if (npool < HTTP_INBUF_POOL && b->cap <= 16 * 1024) {
		pool[npool++] = b;
		return;
	}
	buf_free(b);
	free(b);
}

/*
 * Run what handlers asked for from outside the engine's own callbacks,
 * then free the connections closed during this loop iteration.  Daemons
 * call this from their loop's after hook.
 */
void
http_server_collect(void)
{
	struct http_conn	*c;

	while ((c = TAILQ_FIRST(&runq)) != NULL) {
		TAILQ_REMOVE(&runq, c, runq);
		c->flags &= ~CF_QUEUED;
		if (c->state != CS_CLOSED)
			conn_run(c);
	}
	while ((c = TAILQ_FIRST(&graveyard)) != NULL) {
		TAILQ_REMOVE(&graveyard, c, entry);
		free(c);
	}
}

static void
conn_timer(struct http_conn *c, uint32_t ms)
{
	if (ms == 0)
		ev_timer_del(loop, &c->timer);
	else
		ev_timer_add(loop, &c->timer, ms);
}

/*
 * The connection's client is known (after a PROXY header, if any): ask
 * the daemon about it, then start TLS or wait for a request.
 */
static int
conn_ready(struct http_conn *c)
{
	struct http_server	*srv = c->srv;
	int			 r;

	if (srv->conn_open != NULL) {
		/* refused at once: conn_close is not told of it */
		if ((r = srv->conn_open(c)) == -1) {
			conn_close(c);
			return (-1);
		}
		c->flags |= CF_OPENED;
		c->refuse = r;
	}
	c->state = CS_IDLE;
	if (srv->tls != NULL) {
		if ((c->s.ssl = tls_server_ssl(srv->tls, c->s.fd)) == NULL) {
			conn_close(c);
			return (-1);
		}
		c->s.flags |= SOCK_TLS_HS;
		c->s.io.low = 1;	/* budgeted until done (event.h) */
		c->state = CS_TLS;
	}
	return (0);
}

/* Accept one connection already taken from a listener. */
int
http_conn_accept(struct http_server *srv, int fd, const struct sockaddr *sa,
    socklen_t sl)
{
	struct http_conn	*c;

	if (srv->acl != NULL && !net_acl_allows(srv->acl, sa)) {
		close(fd);
		errno = EACCES;
		return (-1);
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		close(fd);
		return (-1);
	}
	net_nodelay(fd, sa->sa_family);
	sock_init(&c->s, fd);
	c->srv = srv;
	c->loop = loop;
	c->t_accept = ev_now(loop);
	if (sl > sizeof(c->peer))
		sl = sizeof(c->peer);
	memcpy(&c->peer, sa, sl);
	ev_timer_init(&c->timer, conn_timeout, c);
	if (sock_watch(loop, &c->s, conn_event, c) == -1) {
		sock_close(loop, &c->s);
		free(c);
		return (-1);
	}
	TAILQ_INSERT_TAIL(&conns, c, entry);
	nconns++;
	srv->mine++;
	if (srv->shared_conns != NULL) {
		shm_count_add(srv->shared_conns, 1);
		c->flags |= CF_COUNTED;
	}
	conn_timer(c, srv->lim->header_timeout);
	/* a trusted peer sends a PROXY header first; others never do */
	if (srv->proxy_from != NULL && net_acl_allows(srv->proxy_from, sa))
		c->state = CS_PROXY;
	else if (conn_ready(c) == -1)
		return (0);
	conn_run(c);
	return (0);
}

/*
 * Read a PROXY header without taking a byte beyond it (what follows may
 * be a TLS handshake that OpenSSL reads from the socket itself).
 * Returns 1 when done, 0 to wait, -1 after closing the connection.
 */
static int
conn_proxy(struct http_conn *c)
{
	char			 buf[PROXYPROTO_V1MAX + 64];
	struct sockaddr_storage	 ss;
	const char		*why;
	size_t			 used;
	ssize_t			 n;
	int			 r;

	if (!(c->s.flags & SOCK_READABLE))
		return (0);
	n = recv(c->s.fd, buf, sizeof(buf), MSG_PEEK);
	if (n == 0 || (n == -1 && errno != EAGAIN && errno != EINTR)) {
		conn_close(c);
		return (-1);
	}
	if (n == -1) {
		c->s.flags &= ~SOCK_READABLE;
		return (0);
	}
	r = proxyproto_parse(buf, n, &ss, &used, &why);
	if (r == 0 && (size_t)n >= 16 && memcmp(buf, "\r\n\r\n", 4) == 0) {
		/* a v2 header longer than what we peeked: take it whole */
		char	*big;
		size_t	 need = 16 + ((size_t)(unsigned char)buf[14] << 8 |
			    (unsigned char)buf[15]);

		if ((big = malloc(need)) == NULL) {
			conn_close(c);
			return (-1);
		}
		n = recv(c->s.fd, big, need, MSG_PEEK);
		if (n == (ssize_t)need)
			r = proxyproto_parse(big, n, &ss, &used, &why);
		free(big);
	}
	if (r == 0) {
		/* the rest is on its way: wait for the next event */
		c->s.flags &= ~SOCK_READABLE;
		return (0);
	}
	if (r == -1) {
		log_debug("%s: %s", __func__, why);
		conn_close(c);
		return (-1);
	}
	/* consume exactly the header */
	while (used > 0) {
		n = recv(c->s.fd, buf, used < sizeof(buf) ? used : sizeof(buf),
		    0);
		if (n <= 0) {
			conn_close(c);
			return (-1);
		}
		used -= n;
	}
	if (ss.ss_family == AF_INET)
		memcpy(&c->peer, &ss, sizeof(struct sockaddr_in));
	else if (ss.ss_family == AF_INET6)
		memcpy(&c->peer, &ss, sizeof(struct sockaddr_in6));
	if (conn_ready(c) == -1)
		return (-1);
	return (1);
}

/*
 * Accept at most <max> of what waits on <lfd> (http_worker.c decides how
 * many, so that the workers share the connections).  Returns how many
 * were accepted, or -1 when the listener is at its maxconn (the caller
 * pauses it: connections wait in the listen queue).
 */
int
http_accept(struct http_server *srv, int lfd, int max)
{
	struct sockaddr_storage	ss;
	socklen_t		sl;
	int			fd, n = 0;

	while (n < max) {
		if (srv->maxconn > 0 && srv->shared_conns != NULL &&
		    shm_count_get(srv->shared_conns) >= srv->maxconn)
			return (n > 0 ? n : -1);
		sl = sizeof(ss);
		fd = accept4(lfd, (struct sockaddr *)&ss, &sl,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1) {
			if (errno == EMFILE || errno == ENFILE)
				log_warn("accept");
			break;
		}
		if (http_conn_accept(srv, fd, (struct sockaddr *)&ss, sl) == 0)
			n++;
	}
	return (n);
}

/*
 * The worker is stopping: idle connections close now, the others after
 * their current response.  A connection that has not sent its first
 * request yet may still be sending it, so it gets its header timeout.
 */
void
http_server_drain(void)
{
	struct http_conn	*c, *t;

	draining = 1;
	TAILQ_FOREACH_SAFE(c, &conns, entry, t) {
		char	b;

		c->flags |= CF_CLOSE_AFTER;
		if (c->state != CS_IDLE || c->nreq == 0)
			continue;
		/* a request already in the kernel is answered, then closed */
		if (sock_pending(&c->s) ||
		    recv(c->s.fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) > 0) {
			c->s.flags |= SOCK_READABLE;
			conn_kick(c);
			continue;
		}
		conn_close(c);
	}
}

static void
conn_close(struct http_conn *c)
{
	struct http_req	*req = c->req;

	if (c->state == CS_CLOSED)
		return;
	if (req != NULL) {
		c->req = NULL;
		/* a head still arriving (no handler yet) has nothing to end */
		if (req->h != NULL && !(req->rflags & HTTP_R_DONE)) {
			req->rflags |= HTTP_R_DONE;
			if (req->h->done != NULL)
				req->h->done(req);
		}
		if (req->file != -1)
			close(req->file);
		free(req);
	}
	if (c->flags & CF_OPENED) {
		c->flags &= ~CF_OPENED;
		if (c->srv->conn_close != NULL)
			c->srv->conn_close(c);
	}
	if (c->flags & CF_COUNTED) {
		c->flags &= ~CF_COUNTED;
		shm_count_add(c->srv->shared_conns, -1);
	}
	ev_timer_del(loop, &c->timer);
	sock_close(loop, &c->s);
	buf_put(c->in);
	buf_put(c->out);
	c->in = c->out = NULL;
	c->state = CS_CLOSED;
	TAILQ_REMOVE(&conns, c, entry);
	TAILQ_INSERT_TAIL(&graveyard, c, entry);
	nconns--;
	c->srv->mine--;
}

/* Lingering: shut our side once the last of the output is out. */
static void
conn_linger_shut(struct http_conn *c)
{
	if (!(c->flags & CF_SHUT) && !conn_pending(c)) {
		sock_shutdown(&c->s);
		c->flags |= CF_SHUT;
	}
}

/*
 * Send what is left, shut our side and read what still comes for a
 * while, then close.
 */
static void
conn_linger(struct http_conn *c)
{
	if (c->state == CS_LINGER || c->state == CS_CLOSED)
		return;
	if (c->s.flags & (SOCK_EOF | SOCK_ERROR)) {
		conn_close(c);
		return;
	}
	c->state = CS_LINGER;
	conn_timer(c, HTTP_LINGER);
	conn_linger_shut(c);
}

static void
conn_timeout(struct ev_timer *t)
{
	struct http_conn	*c = t->arg;
	struct http_req		*req = c->req;

	switch (c->state) {
	case CS_HEAD:
		/*
		 * A head that did not arrive in time: 408, and a lingering
		 * close, so that the bytes the client is still sending do not
		 * make the kernel reset the connection under the answer.
		 */
		c->req = NULL;
		free(req);
		conn_error(c, 408, "request head not received in time");
		return;
	case CS_REQ:
		if (req != NULL && (req->rflags & HTTP_R_READBODY) &&
		    !(req->rflags & (HTTP_R_BODYDONE | HTTP_R_BODYPAUSED))) {
			/* the client stopped sending its body */
			c->flags |= CF_CLOSE_AFTER;
			body_end(req, 408);
			conn_run(c);
			return;
		}
		/* no write progress: give up */
		if (req != NULL)
			req->rflags |= HTTP_R_TIMEDOUT;
		conn_close(c);
		return;
	default:
		conn_close(c);
		return;
	}
}

static void
conn_event(struct ev_io *io, uint32_t ev)
{
	struct http_conn	*c = io->arg;

	sock_events(&c->s, ev);
	conn_run(c);
}

/*
 * A write found the socket full.  Progress re-arms the send timeout; a
 * response whose very first write finds the socket full (the previous
 * one filled it exactly) arms it here, else a client that never reads
 * would hold the connection for ever.
 */
static void
conn_send_blocked(struct http_conn *c)
{
	if (c->state == CS_REQ && !ev_timer_pending(&c->timer))
		conn_timer(c, c->srv->lim->send_timeout);
}

/* Write the output buffer, then the file; returns -1 when the socket failed. */
static int
conn_flush(struct http_conn *c)
{
	struct http_req	*req = c->req;
	ssize_t		 n;

	while (c->out != NULL && buf_used(c->out) > 0 &&
	    (c->s.flags & SOCK_WRITABLE)) {
		/*
		 * MSG_MORE before a sendfile'd body; and for the last bytes
		 * of a response after which the connection closes, so that
		 * they leave with our FIN in one segment (req_finish() closes
		 * or shuts down at once, which pushes them).
		 */
		if (req != NULL && ((req->file != -1 && req->file_left > 0) ||
		    ((req->rflags & (HTTP_R_RESP_ENDED | HTTP_R_BODYDONE)) ==
		    (HTTP_R_RESP_ENDED | HTTP_R_BODYDONE) && !(req->rflags &
		    (HTTP_R_KEEPALIVE | HTTP_R_TUNNEL)) && req->status != 101 &&
		    req->file == -1)))
			n = sock_write_more(&c->s, buf_head(c->out),
			    buf_used(c->out));
		else
			n = sock_write(&c->s, buf_head(c->out),
			    buf_used(c->out));
		if (n > 0) {
			buf_consume(c->out, n);
			if (c->state == CS_REQ)
				conn_timer(c, c->srv->lim->send_timeout);
		} else if (n == -1 && errno == EAGAIN) {
			conn_send_blocked(c);
			return (0);
		} else
			return (-1);
	}
	if (req == NULL || req->file == -1 ||
	    (c->out != NULL && buf_used(c->out) > 0))
		return (0);
	if (c->s.ssl == NULL && !(c->flags & CF_LOWAT) &&
	    req->file_left > FILE_NOTSENT_LOWAT) {
		int	lowat = FILE_NOTSENT_LOWAT;

		/* fails, harmlessly, on a Unix socket */
		(void)setsockopt(c->s.fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT,
		    &lowat, sizeof(lowat));
		c->flags |= CF_LOWAT;
	}
	while (req->file_left > 0 && (c->s.flags & SOCK_WRITABLE)) {
		if (c->s.ssl == NULL) {
			size_t	chunk = req->file_left > 1024 * 1024 ?
			    1024 * 1024 : req->file_left;

			n = sock_sendfile(&c->s, req->file, &req->file_off,
			    chunk);
			if (n > 0) {
				req->file_left -= n;
				conn_timer(c, c->srv->lim->send_timeout);
				continue;
			}
			if (n == 0) {
				/* the file shrank under us */
				return (-1);
			}
			if (errno == EAGAIN) {
				conn_send_blocked(c);
				return (0);
			}
			return (-1);
		} else {
			/* TLS: copy through the output buffer */
			size_t	room = buf_room(c->out);
			ssize_t	r;

			if (room > req->file_left)
				room = req->file_left;
			if (room > 16 * 1024)
				room = 16 * 1024;
			if (buf_reserve(c->out, room) == -1)
				return (-1);
			r = pread(req->file, buf_tail(c->out), room,
			    req->file_off);
			if (r <= 0)
				return (-1);
			c->out->len += r;
			req->file_off += r;
			req->file_left -= r;
			n = sock_write(&c->s, buf_head(c->out),
			    buf_used(c->out));
			if (n > 0)
				buf_consume(c->out, n);
			else if (n == -1 && errno != EAGAIN)
				return (-1);
			if (buf_used(c->out) > 0) {
				conn_send_blocked(c);
				return (0);
			}
		}
	}
	if (req->file_left == 0) {
		close(req->file);
		req->file = -1;
	}
	return (0);
}

/* Pending output, in the buffer or the file. */
static int
conn_pending(const struct http_conn *c)
{
	return ((c->out != NULL && buf_used(c->out) > 0) ||
	    (c->req != NULL && c->req->file != -1));
}

/* The body of the engine's own error answer: "400 Bad Request\n". */
size_t
http_error_body_len(int status)
{
	return (strlen(http_reason(status)) + 5);
}

/*
 * The first line of what the client sent (the head starts the input
 * buffer, where the parser reads it), without its end; empty if none.
 */
struct slice
http_conn_first_line(const struct http_conn *c)
{
	struct slice	 l = { NULL, 0 };
	const char	*eol;

	if (c->in == NULL || c->in->len == 0)
		return (l);
	l.p = c->in->data;
	l.len = c->in->len;
	if ((eol = memchr(l.p, '\n', l.len)) != NULL)
		l.len = eol - l.p;
	if (l.len > 0 && l.p[l.len - 1] == '\r')
		l.len--;
	return (l);
}

/* An error answer from the engine itself: the framing is in doubt. */
static void
conn_error(struct http_conn *c, int status, const char *why)
{
	const char	*reason = http_reason(status);

	if (c->srv->bad_request != NULL)
		c->srv->bad_request(c, status, why);

	if (c->out == NULL && (c->out = buf_get(HTTP_OUTBUF)) == NULL) {
		conn_close(c);
		return;
	}
	buf_printf(c->out, "HTTP/1.1 %d %s\r\nDate: %s\r\n%s%s%s"
	    "Content-Type: text/plain\r\nContent-Length: %zu\r\n"
	    "Connection: close\r\n\r\n%d %s\n", status, reason,
	    http_date_now(), c->srv->server_name ? "Server: " : "",
	    c->srv->server_name ? c->srv->server_name : "",
	    c->srv->server_name ? "\r\n" : "",
	    http_error_body_len(status), status, reason);
	c->flags |= CF_CLOSE_AFTER;
	(void)conn_flush(c);
	conn_linger(c);
}

/*
 * Read into the input buffer; at most up to <limit> bytes held.
 * Returns 1 if bytes came, 0 if none now, -1 at EOF or error.
 */
static int
conn_read(struct http_conn *c, size_t limit)
{
	ssize_t	n;
	size_t	want;

	if (!(c->s.flags & SOCK_READABLE))
		return (0);
	if (c->in == NULL &&
	    (c->in = buf_get(c->srv->lim->max_head + HTTP_BODYWIN)) == NULL)
		return (-1);
	if (c->in->len >= limit)
		return (0);
	want = limit - c->in->len;
	if (want > 16 * 1024)
		want = 16 * 1024;
	/* the head must stay where it is: grow, never compact */
	if (c->in->cap - c->in->len < want) {
		size_t	ncap = c->in->cap ? c->in->cap : 2048;
		char	*p;

		while (ncap - c->in->len < want && ncap < limit)
			ncap *= 2;
		if (ncap > limit)
			ncap = limit;
		if (ncap > c->in->cap) {
			if ((p = realloc(c->in->data, ncap)) == NULL)
				return (-1);
			c->in->data = p;
			c->in->cap = ncap;
		}
		want = c->in->cap - c->in->len;
		if (want == 0)
			return (0);
	}
	n = sock_read(&c->s, c->in->data + c->in->len, want);
	if (n > 0) {
		c->in->len += n;
		return (1);
	}
	if (n == -1 && errno == EAGAIN)
		return (0);
	return (-1);
}

static int
req_keepalive(const struct http_req *req)
{
	const struct http_msg	*m = &req->msg;

	if (m->minor == 1)
		return (!(m->flags & HTTP_F_CLOSE));
	return ((m->flags & HTTP_F_KEEPALIVE) && !(m->flags & HTTP_F_CLOSE));
}

static const struct http_handler refused_handler;

/* A complete head: make the request and give it to the handler. */
static void
req_start(struct http_conn *c, struct http_req *req)
{
	struct http_msg	*m = &req->msg;

	req->conn = c;
	req->h = c->srv->handler;
	req->file = -1;
	req->t_start = ev_now(loop);
	req->max_body = c->srv->lim->max_body;
	req->bstart = m->head_len;
	if (m->method == HTTP_M_HEAD)
		req->rflags |= HTTP_R_HEAD;
	if (req_keepalive(req) && !draining && !(c->flags & CF_CLOSE_AFTER) &&
	    (c->srv->keepalive_max == 0 ||
	    (int)c->nreq + 1 < c->srv->keepalive_max))
		req->rflags |= HTTP_R_KEEPALIVE;
	if (m->framing == HTTP_BODY_LENGTH)
		req->body_left = m->content_length;
	else if (m->framing == HTTP_BODY_CHUNKED)
		http_chunked_init(&req->chunked, c->srv->lim->max_head);
	else
		req->rflags |= HTTP_R_BODYDONE;
	c->nreq++;
	c->state = CS_REQ;
	c->req = req;
	conn_timer(c, 0);
	if (c->refuse != 0) {
		/* a limit the daemon applied when the connection came */
		req->h = &refused_handler;
		http_resp_error(req, c->refuse);
		return;
	}
	c->srv->handler->request(req);
}

/*
 * The client's FIN came while its request is with the handler, before the
 * answer began: gone, unless it pipelines (bytes of a next request came
 * before this one was answered, now or earlier on the connection).  Such
 * a client shuts its side once it has sent all it means to, and reads
 * the answers of the whole pipeline.
 */
static int
conn_gone(struct http_conn *c)
{
	const struct http_req	*req = c->req;
	int			 r;

	if (c->flags & CF_PIPELINED)
		return (0);
	if (c->in->len == req->bstart &&
	    (r = conn_read(c, c->in->len + 512)) != 1)
		return (r == -1);
	c->flags |= CF_PIPELINED;
	return (0);
}

/* Read and parse a head.  Returns 1 when the state changed. */
static int
conn_head(struct http_conn *c)
{
	const struct http_limits	*lim = c->srv->lim;
	struct http_req			*req = c->req;
	int				 r, rv;

	if (req == NULL) {
		if (c->in == NULL || buf_used(c->in) == 0) {
			r = conn_read(c, lim->max_head + HTTP_BODYWIN);
			if (r == -1) {
				conn_close(c);
				return (1);
			}
			if (r == 0) {
				/* idle and empty: give the buffer back */
				if (c->in != NULL && buf_used(c->in) == 0) {
					buf_put(c->in);
					c->in = NULL;
				}
				return (0);
			}
		}
		/* the field array needs no zeroing: the parser fills it */
		req = malloc(sizeof(*req) +
		    lim->max_headers * sizeof(struct http_hdr));
		if (req != NULL)
			memset(req, 0, sizeof(*req));
		if (req == NULL) {
			conn_close(c);
			return (1);
		}
		req->file = -1;
		http_msg_init(&req->msg, 0, lim, req->hdrs);
		c->req = req;
		c->state = CS_HEAD;
		if (!(c->flags & CF_GOT_BYTES)) {
			c->flags |= CF_GOT_BYTES;
			c->t_first = ev_now(loop);
			conn_timer(c, lim->header_timeout);
		}
	}
	for (;;) {
		rv = http_parse(&req->msg, c->in->data, c->in->len);
		if (rv == HTTP_DONE) {
			c->flags &= ~CF_GOT_BYTES;
			req_start(c, req);
			return (1);
		}
		if (rv == HTTP_ERROR) {
			int		 status = req->msg.error;
			const char	*why = req->msg.errmsg;

			log_debug("%s: %s", __func__, why);
			c->req = NULL;
			free(req);
			conn_error(c, status, why);
			return (1);
		}
		r = conn_read(c, lim->max_head + HTTP_BODYWIN);
		if (r == -1) {
			conn_close(c);
			return (1);
		}
		if (r == 0)
			return (0);
	}
}

static void
body_end(struct http_req *req, int status)
{
	const struct http_handler *h = req->h;

	req->rflags |= HTTP_R_BODYDONE;
	if (!(req->rflags & HTTP_R_READBODY) ||
	    (req->rflags & HTTP_R_BODYENDED))
		return;
	req->rflags |= HTTP_R_BODYENDED;
	if (h->body_end != NULL)
		h->body_end(req, status);
}

/*
 * Feed body bytes to the handler (or drop them when discarding).
 * Returns 1 on progress.
 */
static int
conn_body(struct http_conn *c, int discard)
{
	struct http_req		*req = c->req;
	const struct http_handler *h = req->h;
	struct buf		*in = c->in;
	int			 progress = 0, r;

	while (!(req->rflags & HTTP_R_BODYDONE)) {
		size_t	avail = in->len - req->bstart;

		if (avail == 0) {
			/* all taken: reuse the window after the head */
			in->len = req->bstart = req->msg.head_len;
			r = conn_read(c, req->msg.head_len + HTTP_BODYWIN);
			if (r == -1) {
				req->rflags |= HTTP_R_BODYDONE;
				c->flags |= CF_CLOSE_AFTER;
				if (!discard)
					body_end(req, 400);
				return (1);
			}
			if (r == 0)
				return (progress);
			conn_timer(c, c->srv->lim->body_timeout);
			progress = 1;
			continue;
		}
		if (req->msg.framing == HTTP_BODY_LENGTH) {
			size_t	n = avail < req->body_left ? avail :
			    req->body_left;
			size_t	took = n;

			if (!discard)
				took = h->body(req, in->data + req->bstart, n);
			req->bstart += took;
			req->body_left -= took;
			req->body_in += took;
			if (took > 0)
				progress = 1;
			if (req->body_left == 0) {
				req->rflags |= HTTP_R_BODYDONE;
				conn_timer(c, 0);
				if (!discard)
					body_end(req, 0);
				return (1);
			}
			if (took < n) {
				req->rflags |= HTTP_R_BODYPAUSED;
				conn_timer(c, 0);
				return (progress);
			}
			continue;
		}
		/* chunked */
		{
			size_t	doff, dlen, took;
			ssize_t	used;

			used = http_chunked_next(&req->chunked,
			    in->data + req->bstart, avail, &doff, &dlen);
			if (used == -1) {
				req->rflags |= HTTP_R_BODYDONE;
				c->flags |= CF_CLOSE_AFTER;
				log_debug("%s: %s", __func__,
				    req->chunked.errmsg);
				if (discard) {
					/* the answer is out: let it arrive */
					conn_linger(c);
					return (1);
				}
				if (req->rflags & HTTP_R_RESP_BEGUN) {
					conn_close(c);
					return (1);
				}
				body_end(req, 400);
				return (1);
			}
			if (dlen > 0 && !discard) {
				if (req->max_body != 0 &&
				    req->body_in + dlen > req->max_body) {
					req->rflags |= HTTP_R_BODYDONE;
					c->flags |= CF_CLOSE_AFTER;
					body_end(req, 413);
					return (1);
				}
				took = h->body(req, in->data + req->bstart +
				    doff, dlen);
				if (took < dlen) {
					/* give back what was not taken */
					http_chunked_unget(&req->chunked,
					    dlen - took);
					used = doff + took;
					req->rflags |= HTTP_R_BODYPAUSED;
				}
				req->body_in += took;
			} else if (dlen > 0 && discard) {
				req->body_in += dlen;
				if (req->body_in > HTTP_DISCARD_MAX) {
					/*
					 * Not worth reading on.  A close with
					 * bytes unread would reset the
					 * connection under the answer.
					 */
					conn_linger(c);
					return (1);
				}
			}
			req->bstart += used;
			if (used > 0)
				progress = 1;
			if (req->chunked.done) {
				req->rflags |= HTTP_R_BODYDONE;
				conn_timer(c, 0);
				if (!discard)
					body_end(req, 0);
				return (1);
			}
			if (req->rflags & HTTP_R_BODYPAUSED) {
				conn_timer(c, 0);
				return (progress);
			}
			if (used == 0 && avail == in->len - req->bstart) {
				/* a partial chunk line: read more */
				if (in->len >= req->msg.head_len +
				    HTTP_BODYWIN) {
					/* the window is full of one line */
					memmove(in->data + req->msg.head_len,
					    in->data + req->bstart, avail);
					in->len = req->msg.head_len + avail;
					req->bstart = req->msg.head_len;
				}
				r = conn_read(c, req->msg.head_len +
				    HTTP_BODYWIN);
				if (r == -1) {
					req->rflags |= HTTP_R_BODYDONE;
					c->flags |= CF_CLOSE_AFTER;
					if (!discard)
						body_end(req, 400);
					return (1);
				}
				if (r == 0)
					return (progress);
				conn_timer(c, c->srv->lim->body_timeout);
				progress = 1;
			}
		}
	}
	return (progress);
}

/* The response is out: next request, or close. */
static void
req_finish(struct http_conn *c)
{
	struct http_req	*req = c->req;
	size_t		 rest;

	if (!(req->rflags & HTTP_R_DONE)) {
		req->rflags |= HTTP_R_DONE;
		if (req->h->done != NULL)
			req->h->done(req);
	}
	if (!(req->rflags & HTTP_R_KEEPALIVE) || (c->flags & CF_CLOSE_AFTER) ||
	    (req->rflags & (HTTP_R_RESP_CLOSEDLM | HTTP_R_CONNCLOSE)) ||
	    draining) {
		/*
		 * The response said close, the request was read whole,
		 * nothing follows it in the buffer and the socket was drained
		 * at the last read: nothing unread can make close() reset
		 * the connection under the response, so close at once (as
		 * nginx does), without the shutdown, the wait for the
		 * client's FIN and its read.  Else linger: after an error,
		 * over TLS (close_notify), or when the client may still send
		 * (a keep-alive response cut short by a drain).
		 */
		if (!(req->rflags & HTTP_R_KEEPALIVE) && !draining &&
		    (req->rflags & HTTP_R_BODYDONE) && c->s.ssl == NULL &&
		    !(c->flags & CF_CLOSE_AFTER) &&
		    c->in->len == req->bstart &&
		    !(c->s.flags & (SOCK_READABLE | SOCK_HUP)))
			conn_close(c);
		else
			conn_linger(c);
		return;
	}
	if (!(req->rflags & HTTP_R_BODYDONE)) {
		/* an unread body: drop it if it is small, else close */
		if (req->msg.framing == HTTP_BODY_LENGTH &&
		    req->body_left > HTTP_DISCARD_MAX) {
			conn_linger(c);
			return;
		}
		if ((req->msg.flags & HTTP_F_CONTINUE) &&
		    !(req->rflags & HTTP_R_CONTINUE_SENT)) {
			/* the client may still wait for 100: don't guess */
			conn_linger(c);
			return;
		}
		c->state = CS_DISCARD;
		conn_timer(c, c->srv->lim->body_timeout);
		return;
	}
	/* keep the bytes of the next (pipelined) request, at the start */
	rest = c->in->len - req->bstart;
	if (rest > 0)
		c->flags |= CF_PIPELINED;
	if (rest > 0)
		memmove(c->in->data, c->in->data + req->bstart, rest);
	c->in->off = 0;
	c->in->len = rest;
	c->req = NULL;
	free(req);
	c->state = CS_IDLE;
	c->flags &= ~(CF_DRAIN_CALL | CF_GOT_BYTES);
	if (rest == 0) {
		buf_put(c->in);
		c->in = NULL;
		if (c->out != NULL && buf_used(c->out) == 0) {
			buf_put(c->out);
			c->out = NULL;
		}
		conn_timer(c, c->srv->lim->idle_timeout);
	} else {
		c->flags |= CF_GOT_BYTES;
		conn_timer(c, c->srv->lim->header_timeout);
	}
}

/*
 * Ask for conn_run() from an API call.  Inside conn_run() it loops once
 * more; elsewhere it runs from http_server_collect(), so that no API call
 * ever finishes (and frees) the request under the handler's feet.
 */
static void
conn_kick(struct http_conn *c)
{
	if (c->state == CS_CLOSED)
		return;
	if (c->flags & CF_RUNNING) {
		c->flags |= CF_AGAIN;
		return;
	}
	if (!(c->flags & CF_QUEUED)) {
		c->flags |= CF_QUEUED;
		TAILQ_INSERT_TAIL(&runq, c, runq);
	}
}

static void
conn_run(struct http_conn *c)
{
	struct http_req	*req;
	int		 progress, r;

	if (c->flags & CF_RUNNING) {
		c->flags |= CF_AGAIN;
		return;
	}
	c->flags |= CF_RUNNING;
	do {
		c->flags &= ~CF_AGAIN;
		progress = 0;
		if (c->flags & CF_ABORT) {
			conn_close(c);
			break;
		}
		if (c->s.flags & SOCK_ERROR && c->state != CS_REQ) {
			conn_close(c);
			break;
		}
		switch (c->state) {
		case CS_PROXY:
			r = conn_proxy(c);
			if (r == 1)
				progress = 1;
			break;
		case CS_TLS:
			r = sock_handshake(&c->s);
			if (r == -1) {
				conn_close(c);
				break;
			}
			if (r == 1) {
				c->state = CS_IDLE;
				progress = 1;
			}
			break;
		case CS_IDLE:
		case CS_HEAD:
			progress = conn_head(c);
			break;
		case CS_REQ:
			req = c->req;
			if (conn_flush(c) == -1) {
				conn_close(c);
				break;
			}
			if ((req->rflags & HTTP_R_READBODY) &&
			    !(req->rflags & (HTTP_R_BODYDONE |
			    HTTP_R_BODYPAUSED)))
				progress |= conn_body(c, 0);
			if (c->state != CS_REQ)
				break;
			if ((req->rflags & HTTP_R_READBODY) &&
			    (req->rflags & HTTP_R_BODYDONE) &&
			    !(req->rflags & HTTP_R_BODYENDED)) {
				body_end(req, 0);
				progress = 1;
			}
			if (c->state != CS_REQ)
				break;
			if ((c->s.flags & SOCK_HUP) && c->srv->abort_on_close &&
			    (req->rflags & HTTP_R_BODYDONE) &&
			    !(req->rflags & HTTP_R_RESP_BEGUN) &&
			    conn_gone(c)) {
				log_debug("%s: client closed before the answer",
				    __func__);
				conn_close(c);
				break;
			}
			if ((req->rflags & HTTP_R_RESP_ENDED) &&
			    !conn_pending(c)) {
				req_finish(c);
				progress = 1;
				break;
			}
			if ((c->flags & CF_DRAIN_CALL) &&
			    buf_used(c->out) < HTTP_OUTBUF / 2 &&
			    req->file == -1) {
				c->flags &= ~CF_DRAIN_CALL;
				if (req->h->drain != NULL)
					req->h->drain(req);
				progress = 1;
			}
			if (c->s.flags & SOCK_ERROR) {
				conn_close(c);
				break;
			}
			break;
		case CS_DISCARD:
			req = c->req;
			progress = conn_body(c, 1);
			if (c->state == CS_DISCARD &&
			    (req->rflags & HTTP_R_BODYDONE)) {
				req->rflags |= HTTP_R_KEEPALIVE;
				c->state = CS_REQ;
				req_finish(c);
				progress = 1;
			}
			break;
		case CS_LINGER: {
			char	junk[4096];
			ssize_t	n;

			if (conn_flush(c) == -1) {
				conn_close(c);
				break;
			}
			conn_linger_shut(c);
			while ((n = sock_read(&c->s, junk,
			    sizeof(junk))) > 0)
				;
			/* (a client that shut its side may still read) */
			if ((n == 0 && !conn_pending(c)) ||
			    (n == -1 && errno != EAGAIN))
				conn_close(c);
			break;
		}
		default:
			break;
		}
	} while ((progress || (c->flags & CF_AGAIN)) && c->state != CS_CLOSED);
	c->flags &= ~CF_RUNNING;
}

/* Request accessors */

const char *
http_req_buf(const struct http_req *req)
{
	return (req->conn->in->data);
}

struct slice
http_req_target(const struct http_req *req)
{
	return (slice_make(req->conn->in->data + req->msg.target_off,
	    req->msg.target_len));
}

/*
 * The target's path, without the query, as an origin-form target has it:
 * of an absolute-form target (which a server must take, RFC 9112 3.2.2),
 * what follows the authority, "/" if nothing does.  For the handlers
 * that serve a few fixed paths (metrics, statistics).
 */
struct slice
http_req_path(const struct http_req *req)
{
	struct slice	 t = http_req_target(req), auth;
	const char	*q;

	if (req->msg.form == HTTP_T_ABSOLUTE) {
		http_absolute_split(t.p, t.len, &auth, &t);
		if (t.len == 0 || t.p[0] == '?')
			return (slice_make("/", 1));
	}
	if ((q = memchr(t.p, '?', t.len)) != NULL)
		t.len = q - t.p;
	return (t);
}

/*
 * The target as an origin-form target has it, query included, for a
 * redirect to the same resource: of an absolute-form target, what
 * follows the authority, which needs a "/" before it (*slash set) when
 * it is empty or a query ("http://h?q" is "/?q", RFC 9112 3.2.2).
 */
struct slice
http_req_uri(const struct http_req *req, int *slash)
{
	struct slice	 t = http_req_target(req), auth;

	*slash = 0;
	if (req->msg.form == HTTP_T_ABSOLUTE) {
		http_absolute_split(t.p, t.len, &auth, &t);
		*slash = t.len == 0 || t.p[0] == '?';
	}
	return (t);
}

struct slice
http_req_method(const struct http_req *req)
{
	return (slice_make(req->conn->in->data + req->msg.method_off,
	    req->msg.method_len));
}

/* The first field named <lower>; an empty slice (p NULL) when absent. */
struct slice
http_req_header(const struct http_req *req, const char *lower)
{
	int	i = http_find(&req->msg, req->conn->in->data, lower, 0);

	if (i == -1)
		return (slice_make(NULL, 0));
	return (http_hdr_value(req->conn->in->data, &req->msg.hdrs[i]));
}

/*
 * The value of the next field line named <lower> after line *i (start
 * with *i = -1), for list fields that may come in several lines (RFC 9110
 * 5.3); a NULL slice when there is none left.
 */
struct slice
http_req_header_next(const struct http_req *req, const char *lower, int *i)
{
	*i = http_find(&req->msg, req->conn->in->data, lower, *i + 1);
	if (*i == -1)
		return (slice_make(NULL, 0));
	return (http_hdr_value(req->conn->in->data, &req->msg.hdrs[*i]));
}

/* The host the request is for: from an absolute target, else Host. */
struct slice
http_req_host(const struct http_req *req)
{
	const char	*b = req->conn->in->data;
	struct slice	 h = slice_make(NULL, 0);
	int		 port;

	if (req->msg.form == HTTP_T_ABSOLUTE) {
		struct slice	auth, rest;

		http_absolute_split(b + req->msg.target_off,
		    req->msg.target_len, &auth, &rest);
		if (http_authority_parse(auth.p, auth.len, &h, &port) == 0)
			return (h);
		return (slice_make(NULL, 0));
	}
	if (req->msg.host != -1) {
		struct slice	v = http_hdr_value(b,
			    &req->msg.hdrs[req->msg.host]);

		if (http_authority_parse(v.p, v.len, &h, &port) == 0)
			return (h);
	}
	return (slice_make(NULL, 0));
}

const struct sockaddr *
http_req_peer(const struct http_req *req)
{
	return (&req->conn->peer.sa);
}

int
http_req_has_body(const struct http_req *req)
{
	return (req->msg.framing == HTTP_BODY_LENGTH ||
	    req->msg.framing == HTTP_BODY_CHUNKED);
}

/* The handler wants the body: 100 Continue if the client waits for it. */
void
http_req_read_body(struct http_req *req)
{
	struct http_conn	*c = req->conn;

	if (req->rflags & HTTP_R_READBODY)
		return;
	req->rflags |= HTTP_R_READBODY;
	if (req->rflags & HTTP_R_BODYDONE) {
		/* no body at all: body_end() comes from conn_run */
		conn_kick(c);
		return;
	}
	if ((req->msg.flags & HTTP_F_CONTINUE) &&
	    !(req->rflags & HTTP_R_RESP_BEGUN) &&
	    c->in->len == req->bstart) {
		if (c->out == NULL)
			c->out = buf_get(HTTP_OUTBUF);
		if (c->out != NULL && buf_append(c->out,
		    "HTTP/1.1 100 Continue\r\n\r\n", 25) == 0)
			req->rflags |= HTTP_R_CONTINUE_SENT;
	}
	conn_timer(c, c->srv->lim->body_timeout);
	conn_kick(c);
}

/* The handler can take body bytes again. */
void
http_req_resume(struct http_req *req)
{
	if (!(req->rflags & HTTP_R_BODYPAUSED))
		return;
	req->rflags &= ~HTTP_R_BODYPAUSED;
	conn_timer(req->conn, req->conn->srv->lim->body_timeout);
	conn_kick(req->conn);
}

/* Answering */

static int
out_ready(struct http_req *req)
{
	struct http_conn	*c = req->conn;

	if (c->out == NULL && (c->out = buf_get(HTTP_OUTBUF)) == NULL)
		return (-1);
	return (0);
}

int
http_resp_begin(struct http_req *req, int status)
{
	if ((req->rflags & HTTP_R_RESP_BEGUN) || out_ready(req) == -1)
		return (-1);
	req->rflags |= HTTP_R_RESP_BEGUN;
	req->status = status;
	{
		struct buf	*o = req->conn->out;

		buf_append(o, "HTTP/1.1 ", 9);
		buf_put_u64(o, status);
		buf_putc(o, ' ');
		buf_puts(o, http_reason(status));
		return (buf_append(o, "\r\n", 2));
	}
}

int
http_resp_header(struct http_req *req, const char *name, const char *value)
{
	struct buf	*o = req->conn->out;

	buf_puts(o, name);
	buf_append(o, ": ", 2);
	buf_puts(o, value);
	return (buf_append(o, "\r\n", 2));
}

int
http_resp_headerf(struct http_req *req, const char *name, const char *fmt,
    ...)
{
	va_list	ap;
	char	v[2048], *big;
	int	n, rv;

	va_start(ap, fmt);
	n = vsnprintf(v, sizeof(v), fmt, ap);
	va_end(ap);
	if (n < 0)
		return (-1);
	if ((size_t)n < sizeof(v))
		return (http_resp_header(req, name, v));
	/* a long value (a Location): whole, never cut */
	if ((big = malloc(n + 1)) == NULL)
		return (-1);
	va_start(ap, fmt);
	vsnprintf(big, n + 1, fmt, ap);
	va_end(ap);
	rv = http_resp_header(req, name, big);
	free(big);
	return (rv);
}

/* A whole "Name: value\r\n" line, as it is. */
int
http_resp_header_raw(struct http_req *req, const char *line, size_t len)
{
	return (buf_append(req->conn->out, line, len));
}

/*
 * End the head.  <len> is the body length, or -1 when unknown: chunked
 * for HTTP/1.1 clients, close-delimited for HTTP/1.0 ones; or, for a
 * HEAD answer, HTTP_RESP_UNSAID: no framing field (the GET's unknown).
 */
int
http_resp_body(struct http_req *req, int64_t len)
{
	struct http_conn	*c = req->conn;
	struct buf		*o = c->out;
	int			 nobody, keep, unsaid = 0;

	if (req->rflags & HTTP_R_RESP_HEADDONE)
		return (-1);
	if (len == HTTP_RESP_UNSAID) {
		unsaid = 1;
		len = 0;
	}
	req->rflags |= HTTP_R_RESP_HEADDONE;
	nobody = req->status < 200 || req->status == 204 ||
	    req->status == 304;
	if (len < 0 && !nobody && !(req->rflags & HTTP_R_HEAD)) {
		if (req->msg.minor == 1) {
			req->rflags |= HTTP_R_RESP_CHUNKED;
			buf_append(o, "Transfer-Encoding: chunked\r\n", 28);
		} else
			req->rflags |= HTTP_R_RESP_CLOSEDLM;
	} else if (len >= 0 && !unsaid && req->status != 204 &&
	    req->status >= 200 && !(req->status == 304)) {
		buf_append(o, "Content-Length: ", 16);
		buf_put_u64(o, (uint64_t)len);
		buf_append(o, "\r\n", 2);
		req->resp_left = len;
	}
	if (len < 0 && (req->rflags & HTTP_R_HEAD) && req->msg.minor == 1)
		buf_append(o, "Transfer-Encoding: chunked\r\n", 28);
	keep = (req->rflags & HTTP_R_KEEPALIVE) &&
	    !(c->flags & CF_CLOSE_AFTER) && !draining &&
	    !(req->rflags & (HTTP_R_RESP_CLOSEDLM | HTTP_R_CONNCLOSE));
	/* an unread body we could not drop safely: close after */
	if (keep && !(req->rflags & HTTP_R_BODYDONE) &&
	    !(req->rflags & HTTP_R_READBODY) &&
	    ((req->msg.framing == HTTP_BODY_LENGTH &&
	    req->body_left > HTTP_DISCARD_MAX) ||
	    ((req->msg.flags & HTTP_F_CONTINUE) &&
	    !(req->rflags & HTTP_R_CONTINUE_SENT))))
		keep = 0;
	if (!keep) {
		req->rflags &= ~HTTP_R_KEEPALIVE;
		if (req->status != 101)
			buf_append(o, "Connection: close\r\n", 19);
	} else if (req->msg.minor == 0)
		buf_append(o, "Connection: keep-alive\r\n", 24);
	if (c->srv->server_name != NULL && !(req->rflags & HTTP_R_NODATE))
	{
		buf_append(o, "Server: ", 8);
		buf_puts(o, c->srv->server_name);
		buf_append(o, "\r\n", 2);
	}
	if (req->rflags & HTTP_R_NODATE)
		buf_append(o, "\r\n", 2);
	else
	{
		buf_append(o, "Date: ", 6);
		buf_puts(o, http_date_now());
		buf_append(o, "\r\n\r\n", 4);
	}
	if (nobody || (req->rflags & HTTP_R_HEAD))
		req->resp_left = 0;
	return (0);
}

/* How many body bytes http_resp_write would take now. */
size_t
http_resp_room(const struct http_req *req)
{
	const struct buf	*o = req->conn->out;

	if (o == NULL)
		return (0);
	return (buf_room(o) > 16 ? buf_room(o) - 16 : 0);
}

/*
 * Append body bytes; returns how many were taken.  When fewer than asked,
 * the handler's drain() is called once there is room again.
 */
size_t
http_resp_write(struct http_req *req, const void *p, size_t n)
{
	struct http_conn	*c = req->conn;
	size_t			 room;

	/* nothing after the end (http_resp_end, or a cut response) */
	if (!(req->rflags & HTTP_R_RESP_HEADDONE) || n == 0 ||
	    (req->rflags & HTTP_R_RESP_ENDED))
		return (0);
	/* taken and dropped: the log and the metrics count what is sent */
	if (req->rflags & HTTP_R_HEAD || req->status == 204 ||
	    req->status == 304)
		return (n);
	if (!(req->rflags & (HTTP_R_RESP_CHUNKED | HTTP_R_RESP_CLOSEDLM))) {
		if (n > req->resp_left)
			n = req->resp_left;
	}
	room = buf_room(c->out);
	if (req->rflags & HTTP_R_RESP_CHUNKED)
		room = room > 32 ? room - 32 : 0;
	if (n > room)
		n = room;
	if (n == 0) {
		c->flags |= CF_DRAIN_CALL;
		return (0);
	}
	if (req->rflags & HTTP_R_RESP_CHUNKED) {
		buf_put_hex(c->out, n);
		buf_append(c->out, "\r\n", 2);
		buf_append(c->out, p, n);
		buf_append(c->out, "\r\n", 2);
	} else {
		buf_append(c->out, p, n);
		req->resp_left -= n;
	}
	req->bytes_out += n;
	/* write as soon as a good part of the buffer is full */
	if (buf_used(c->out) >= HTTP_OUTBUF / 2 && !(c->flags & CF_RUNNING))
		(void)conn_flush(c);
	if (buf_room(c->out) < 64)
		c->flags |= CF_DRAIN_CALL;
	return (n);
}

/*
 * Send <len> bytes of <fd> from <off> as (the rest of) the body, with
 * sendfile(2) where the connection is plain.  The engine closes <fd>.
 */
int
http_resp_file(struct http_req *req, int fd, off_t off, uint64_t len)
{
	if (!(req->rflags & HTTP_R_RESP_HEADDONE) || req->file != -1) {
		close(fd);
		return (-1);
	}
	if ((req->rflags & HTTP_R_HEAD) || len == 0 ||
	    (req->rflags & HTTP_R_RESP_CHUNKED)) {
		close(fd);
		return (0);
	}
	req->file = fd;
	req->file_off = off;
	req->file_left = len;
	req->resp_left -= len < req->resp_left ? len : req->resp_left;
	req->bytes_out += len;
	return (0);
}

/*
 * Send what the response holds so far once this round of events is
 * handled, not only when half the buffer is full or the response ends:
 * for a relay, whose bytes may be all there is for a while (a stream of
 * events, a long poll, a slow server).
 */
void
http_resp_push(struct http_req *req)
{
	struct http_conn	*c = req->conn;

	if (buf_used(c->out) > 0)
		conn_kick(c);
}

int
http_resp_end(struct http_req *req)
{
	struct http_conn	*c = req->conn;

	if (!(req->rflags & HTTP_R_RESP_HEADDONE))
		http_resp_body(req, 0);
	if (req->rflags & HTTP_R_RESP_ENDED)
		return (0);
	req->rflags |= HTTP_R_RESP_ENDED;
	if ((req->rflags & HTTP_R_RESP_CHUNKED) && !(req->rflags & HTTP_R_HEAD))
		buf_append(c->out, "0\r\n\r\n", 5);
	else if (req->resp_left > 0 && !(req->rflags & HTTP_R_HEAD)) {
		/* the handler promised more than it sent: framing broken */
		req->rflags &= ~HTTP_R_KEEPALIVE;
		c->flags |= CF_CLOSE_AFTER;
	}
	conn_kick(c);
	return (0);
}

/*
 * Send all of <b> as the body declared with http_resp_body(), then end
 * the response.  <b> is taken over: freed here, or once the rest is out.
 * What the engine's buffer cannot take now is written from drain: the
 * handler sets .drain = http_resp_buf_drain and .done = http_resp_buf_done
 * and leaves req->ud to them.  Without memory to keep the rest, the body
 * ends short and http_resp_end() closes the connection.
 */
void
http_resp_send_buf(struct http_req *req, struct buf *b)
{
	struct buf	*rest;
	size_t		 off = 0, n;

	while (off < buf_used(b) && (n = http_resp_write(req, buf_head(b) +
	    off, buf_used(b) - off)) > 0)
		off += n;
	if (off == buf_used(b) || (rest = malloc(sizeof(*rest))) == NULL) {
		buf_free(b);
		http_resp_end(req);
		return;
	}
	buf_consume(b, off);
	*rest = *b;
	req->ud = rest;
}

void
http_resp_buf_drain(struct http_req *req)
{
	struct buf	*rest = req->ud;
	size_t		 n;

	if (rest == NULL)
		return;
	while (buf_used(rest) > 0) {
		if ((n = http_resp_write(req, buf_head(rest),
		    buf_used(rest))) == 0)
			return;
		buf_consume(rest, n);
	}
	http_resp_buf_done(req);
	http_resp_end(req);
}

void
http_resp_buf_done(struct http_req *req)
{
	struct buf	*rest = req->ud;

	if (rest != NULL) {
		buf_free(rest);
		free(rest);
		req->ud = NULL;
	}
}

/* Close the connection after this response. */
void
http_resp_close(struct http_req *req)
{
	req->rflags |= HTTP_R_CONNCLOSE;
	req->conn->flags |= CF_CLOSE_AFTER;
}

int
http_resp_simple(struct http_req *req, int status, const char *type,
    const void *body, size_t len)
{
	if (http_resp_begin(req, status) == -1)
		return (-1);
	if (type != NULL)
		http_resp_header(req, "Content-Type", type);
	http_resp_body(req, len);
	if (len > 0)
		http_resp_write(req, body, len);
	return (http_resp_end(req));
}

/* A small error page; it never echoes anything of the request. */
int
http_resp_error(struct http_req *req, int status)
{
	char	body[128];
	int	n;

	if (req->rflags & HTTP_R_RESP_BEGUN) {
		/*
		 * Too late for a status.  A complete head goes out with the
		 * body bytes given so far, then the connection closes short
		 * of the length or the last chunk, so that the client sees
		 * the truncation; a partial head is cut now.
		 */
		if (req->rflags & HTTP_R_RESP_HEADDONE) {
			if (req->file != -1) {
				close(req->file);
				req->file = -1;
			}
			req->rflags |= HTTP_R_RESP_ENDED | HTTP_R_CONNCLOSE;
			req->rflags &= ~HTTP_R_KEEPALIVE;
			req->conn->flags |= CF_CLOSE_AFTER;
		} else
			req->conn->flags |= CF_ABORT;
		conn_kick(req->conn);
		return (-1);
	}
	n = snprintf(body, sizeof(body), "%d %s\n", status,
	    http_reason(status));
	if (status == 400 || status == 408 || status == 413 || status == 414 ||
	    status == 431 || status >= 500)
		http_resp_close(req);
	return (http_resp_simple(req, status, "text/plain", body, n));
}

/*
 * After a 101 (or a 2xx to CONNECT) has been begun: hand the client's
 * socket to the caller, with the bytes the client sent beyond the head
 * (<in>) and the bytes still to write to it (<out>, the response head);
 * both buffers become the caller's (NULL when empty).  The handler's
 * done() is called and the request is gone afterwards.
 */
int
http_req_detach(struct http_req *req, struct sock *s, struct buf **in,
    struct buf **out)
{
	struct http_conn	*c = req->conn;
	struct buf		*b;

	if (c->state == CS_CLOSED)
		return (-1);
	*s = c->s;
	/* the engine forgets the socket: conn_close() must not close it */
	ev_io_del(loop, &c->s.io);
	c->s.fd = -1;
	c->s.ssl = NULL;
	*in = *out = NULL;
	if (c->in != NULL && c->in->len > req->bstart) {
		if ((b = calloc(1, sizeof(*b))) != NULL) {
			buf_init(b, c->in->len - req->bstart + 1);
			buf_append(b, c->in->data + req->bstart,
			    c->in->len - req->bstart);
			*in = b;
		}
	}
	if (c->out != NULL && buf_used(c->out) > 0) {
		*out = c->out;
		c->out = NULL;
	}
	req->rflags |= HTTP_R_TUNNEL;
	c->flags |= CF_ABORT;
	conn_kick(c);
	return (0);
}
