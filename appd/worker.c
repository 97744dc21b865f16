/*
 * worker.c: a worker: accept a connection, read a request, run it,
 * answer, keep the connection for the next request; one request at a
 * time, with blocking waits bounded by the conf's timeouts.
 *
 * Accepting.  All workers wait on the same listening sockets, each in
 * its own epoll set with EPOLLEXCLUSIVE, so a connection wakes one idle
 * worker rather than all of them; a reload's new workers wait on the
 * same sockets, so no connection is refused while the old ones leave.
 *
 * Keep-alive.  After a response the worker keeps the connection (webd
 * reuses its connections to appd) and waits for the next request, for
 * at most keepalive-timeout.  It holds one connection at a time: a
 * worker holding several would serve them one request at a time, and a
 * request on one would wait behind a slow request on another while
 * other workers are free.  A kept connection
 * must not starve new clients, as its worker is not accepting, so:
 *  - a worker idle on its kept connection also watches the listening
 *    sockets; when a connection has waited there APPD_PRESSURE_MS (the
 *    idle workers, blocked in epoll_wait, one of which the kernel wakes,
 *    did not take it) while the kept connection stayed idle, the worker
 *    closes that one and takes the new one;
 *  - a response is sent with "Connection: close" when connections wait
 *    in the listen queue and no other worker is available, so that
 *    under overload every queued connection is served in turn
 *    (connections then last about one request each, as with php-fpm
 *    behind nginx).
 *
 * Closing by saying so in a response is race-free; closing an idle
 * connection is not: the client may be sending a request on it at that
 * very moment.  The worker does so only after the connection was idle
 * APPD_PRESSURE_MS with a connection waiting for the worker (webd, whose
 * pool reuses its most recent connections first, then had no request
 * for it), after keepalive-timeout (longer, by default, than the 30 s
 * webd keeps idle connections, so webd closes first), or when leaving:
 * a worker told to leave (reload, stop, pool shrink) lingers
 * APPD_LINGER_MS on its idle connection for the client to use it one
 * last time (answered with "Connection: close") or to close it.  Before
 * closing it reads what has arrived (and answers it), so what remains
 * is the flight time of a request on the wire.  webd resends an
 * idempotent request that meets a closed reused connection; only a
 * non-idempotent one crossing the close is answered 502.
 *
 * Signals.  SIGTERM and SIGQUIT from the master mean "finish the request
 * in progress and leave" (reload, pool shrink, stop), except when the
 * master has marked the request in progress as timed out in the
 * scoreboard (kill_seq): then the handler writes a complete 504
 * response with write(2), if the response has not begun, and _exit()s.
 * SIGINT leaves at once.  A self-pipe wakes the waits.
 */
#include <sys/types.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "appd.h"
#include "log.h"

#define WORKER_INBUF	(16 * 1024)	/* beyond the head: a body window */

struct conn {
	int			 fd;
	union {
		struct sockaddr		sa;
		struct sockaddr_storage	ss;
	}			 peer;
	char			*ib;		/* the head, then body bytes */
	size_t			 ilen, icap;
	uint64_t		 deadline;	/* idle: closed then */
	int			 served;	/* requests answered on it */
};

static struct appd_conf		*ac;
static struct board_slot	*me;
static int			 epfd = -1;
static int			 sigpipe[2] = { -1, -1 };
static int			 lfds[PROC_MAXLISTENERS];
static int			 nlfds;
static struct http_hdr		*hdrs;
static struct arena		*arena;
static struct app_resp		 resp;
static struct buf		 body;
static struct buf		 out;
static struct conn		 conn = { .fd = -1 };	/* the one held */
static int			 force_close;
static uint64_t			 nserved;
static char			 recycle_why[128];
static char			 r504[256];
static size_t			 r504len;

static volatile sig_atomic_t	 got_term;
static volatile sig_atomic_t	 cur_fd = -1;
static volatile sig_atomic_t	 resp_started;
static volatile sig_atomic_t	 cgi_pgid;

/* Signals */

static void
on_term(int sig)
{
	int		saved = errno;
	uint64_t	ks;

	if (me != NULL && cur_fd >= 0 &&
	    (ks = atomic_load(&me->kill_seq)) != 0 &&
	    ks == atomic_load(&me->seq)) {
		/* the master stops this request: past request-timeout */
		if (cgi_pgid > 0)
			kill(-cgi_pgid, SIGKILL);
		if (!resp_started)
			(void)write(cur_fd, r504, r504len);
		_exit(0);
	}
	got_term = 1;
	(void)write(sigpipe[1], "t", 1);
	errno = saved;
}

static void
on_int(int sig)
{
	if (cgi_pgid > 0)
		kill(-cgi_pgid, SIGKILL);
	_exit(0);
}

void
worker_cgi_pid(pid_t pid)
{
	cgi_pgid = pid;
}

static void
signals_init(void)
{
	struct sigaction	sa;

	if (pipe2(sigpipe, O_NONBLOCK | O_CLOEXEC) == -1)
		fatal("pipe");
	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_term;	/* no SA_RESTART: waits see EINTR */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGQUIT, &sa, NULL);
	sa.sa_handler = on_int;
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGUSR2, &sa, NULL);
	sigaction(SIGPIPE, &sa, NULL);
	proc_worker_unblock();
}

static void
sigpipe_drain(void)
{
	char	b[64];

	while (read(sigpipe[0], b, sizeof(b)) > 0)
		;
}

/* Time */

static uint32_t	busy_us;	/* appd.conf busy-poll */
static uint64_t	spin_until;	/* us: polling without sleeping till then */

static uint64_t
now_ms(void)
{
	return (ev_monotonic_ms());
}

static int
left_ms(uint64_t deadline)
{
	uint64_t	n = now_ms();

	return (n >= deadline ? 0 : (int)(deadline - n));
}

/* Waits */

/*
 * Wait until <fd> has <events>, up to <deadline>.  Returns 1 when ready,
 * 0 on timeout.
 */
static int
wait_fd(int fd, short events, uint64_t deadline)
{
	struct pollfd	pfd;
	int		n;

	for (;;) {
		pfd.fd = fd;
		pfd.events = events;
		pfd.revents = 0;
		n = poll(&pfd, 1, left_ms(deadline));
		if (n == 1)
			return (1);
		if (n == 0)
			return (0);
		if (errno != EINTR)
			return (1);	/* let the read or write fail */
	}
}

/* Is a connection waiting in a listen queue? */
static int
listeners_pending(void)
{
	struct pollfd	pfd[PROC_MAXLISTENERS];
	int		i;

	for (i = 0; i < nlfds; i++) {
		pfd[i].fd = lfds[i];
		pfd[i].events = POLLIN;
		pfd[i].revents = 0;
	}
	return (poll(pfd, nlfds, 0) > 0);
}

/*
 * Is another worker available: waiting for a connection, or idle on its
 * kept connection for APPD_AVAIL_MS (not between two requests of a busy
 * one), so that it takes a queued connection soon?
 */
static int
available_elsewhere(void)
{
	struct board		*b = ac->board;
	struct board_slot	*s;
	uint64_t		 now = now_ms();
	int			 i, st;

	for (i = 1; i < STATS_SLOTS; i++) {
		s = &b->slots[i];
		if (s == me || atomic_load(&s->pid) == 0)
			continue;
		st = atomic_load(&s->state);
		if (st == W_IDLE)
			return (1);
		if (st == W_KEEPALIVE &&
		    now - atomic_load(&s->idle_since) >= APPD_AVAIL_MS)
			return (1);
	}
	return (0);
}

static void
set_state(int st)
{
	atomic_store(&me->state, st);
	if (st == W_IDLE || st == W_KEEPALIVE)
		atomic_store(&me->idle_since, now_ms());
}

/* Leaving: told to (SIGTERM), or recycled. */
static int
leaving(void)
{
	return (got_term || recycle_why[0] != '\0');
}

enum wait_ev {
	WAIT_READY,		/* the connection has bytes (or EOF) */
	WAIT_EXPIRED,		/* it stayed idle for keepalive-timeout */
	WAIT_PRESSURE,		/* a queued connection needs this worker */
	WAIT_LEAVE
};

/*
 * poll(2) until <wake>; after a request (busy-poll in appd.conf(5)),
 * without sleeping for the first busy_us microseconds, as the event loop
 * of the other daemons does (common/event.c).
 */
static int
spin_poll(struct pollfd *pfd, int np, uint64_t wake)
{
	uint64_t	end = spin_until;
	int		n;

	if (end != 0) {
		spin_until = 0;
		if (end > wake * 1000)
			end = wake * 1000;
		if ((n = ev_poll_spin(pfd, np, end)) != 0)
			return (n);
	}
	return (poll(pfd, np, left_ms(wake)));
}

/* Wait on the kept connection, and on the listening sockets. */
static enum wait_ev
conn_wait(void)
{
	struct pollfd	 pfd[PROC_MAXLISTENERS + 2];
	uint64_t	 now, wake, pressure = 0;
	static uint64_t	 linger;
	int		 i, n, np;

	/*
	 * A new connection's first request is on its way: it is waited for
	 * (header-timeout), never given up for another connection.
	 */
	for (;;) {
		now = now_ms();
		if (leaving() && conn.served > 0) {
			if (linger == 0)
				linger = now + APPD_LINGER_MS;
			if (now >= linger)
				return (WAIT_LEAVE);
		}
		if (conn.ilen > 0)		/* pipelined */
			return (WAIT_READY);
		if (now >= conn.deadline)
			return (WAIT_EXPIRED);
		wake = conn.deadline;
		if (linger != 0 && linger < wake)
			wake = linger;
		/*
		 * A connection the other workers left in the queue for
		 * APPD_PRESSURE_MS while this one had nothing to do.
		 */
		if (pressure != 0 && now >= pressure + APPD_PRESSURE_MS) {
			pressure = 0;
			if (!leaving() && listeners_pending())
				return (WAIT_PRESSURE);
		}
		if (pressure != 0 && pressure + APPD_PRESSURE_MS < wake)
			wake = pressure + APPD_PRESSURE_MS;
		pfd[0].fd = conn.fd;
		pfd[0].events = POLLIN | POLLRDHUP;
		pfd[1].fd = sigpipe[0];
		pfd[1].events = POLLIN;
		np = 2;
		if (pressure == 0 && !leaving() && conn.served > 0)
			for (i = 0; i < nlfds; i++) {
				pfd[np].fd = lfds[i];
				pfd[np++].events = POLLIN;
			}
		for (i = 0; i < np; i++)
			pfd[i].revents = 0;
		n = spin_poll(pfd, np, wake);
		if (n <= 0)
			continue;
		if (pfd[0].revents != 0)
			return (WAIT_READY);
		if (pfd[1].revents != 0)
			sigpipe_drain();
		for (i = 2; i < np; i++)
			if (pfd[i].revents & POLLIN)
				pressure = now_ms();
	}
}

/* I/O */

/*
 * Read more bytes of <c> into its buffer (growing it up to <max>),
 * waiting until <deadline>.  Returns the count, 0 at EOF, -1 on error or
 * timeout (errno ETIMEDOUT) or when the buffer is full (ENOBUFS).
 */
static ssize_t
conn_read(struct conn *c, size_t max, uint64_t deadline)
{
	ssize_t	n;
	size_t	want;

	if (c->ilen >= max) {
		errno = ENOBUFS;
		return (-1);
	}
	if (c->icap - c->ilen < 4096 && c->icap < max) {
		size_t	ncap = c->icap * 2 > max ? max : c->icap * 2;
		char	*p;

		if (ncap < c->ilen + 4096)
			ncap = c->ilen + 4096 > max ? max : c->ilen + 4096;
		if ((p = realloc(c->ib, ncap)) == NULL)
			return (-1);
		c->ib = p;
		c->icap = ncap;
	}
	want = (max < c->icap ? max : c->icap) - c->ilen;
	for (;;) {
		n = read(c->fd, c->ib + c->ilen, want);
		if (n > 0) {
			c->ilen += n;
			return (n);
		}
		if (n == 0)
			return (0);
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return (-1);
		if (!wait_fd(c->fd, POLLIN, deadline)) {
			errno = ETIMEDOUT;
			return (-1);
		}
	}
}

/* Write all of <iov>, waiting up to send-timeout between progress. */
static int
conn_writev(struct conn *c, struct iovec *iov, int niov)
{
	ssize_t	n;

	while (niov > 0) {
		n = writev(c->fd, iov, niov);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				return (-1);
			if (!wait_fd(c->fd, POLLOUT, now_ms() +
			    ac->lim.send_timeout))
				return (-1);
			continue;
		}
		while (niov > 0 && (size_t)n >= iov->iov_len) {
			n -= iov->iov_len;
			iov++;
			niov--;
		}
		if (niov > 0) {
			iov->iov_base = (char *)iov->iov_base + n;
			iov->iov_len -= n;
		}
	}
	return (0);
}

/* Responses */

static void
stats_status(int status, uint64_t t0)
{
	int	cls = status / 100;

	if (cls >= 1 && cls <= 5)
		stats_inc(ac->m_req[cls]);
	stats_observe(ac->m_dur, (double)(now_ms() - t0) / 1000.0);
}

/*
 * Frame and send <r> for a request of <method>; <keep> says whether the
 * connection stays (HTTP/1.0: <minor> 0 needs "keep-alive").
 */
static int
send_response(struct conn *c, struct app_resp *r, int head_only,
    int keep, int minor)
{
	struct iovec	iov[2];
	int		nobody = r->status < 200 || r->status == 204 ||
			    r->status == 304;

	buf_reset(&out);
	buf_printf(&out, "HTTP/1.1 %d %s\r\nDate: %s\r\n", r->status,
	    http_reason(r->status), http_date_now());
	if (!r->has_type && buf_used(&r->body) > 0)
		buf_printf(&out, "Content-Type: %s\r\n", r->json_used ?
		    "application/json" : "text/plain; charset=utf-8");
	buf_append(&out, buf_head(&r->head), buf_used(&r->head));
	if (!nobody)
		buf_printf(&out, "Content-Length: %zu\r\n",
		    buf_used(&r->body));
	if (!keep)
		buf_printf(&out, "Connection: close\r\n");
	else if (minor == 0)
		buf_printf(&out, "Connection: keep-alive\r\n");
	if (buf_append(&out, "\r\n", 2) == -1)
		return (-1);
	iov[0].iov_base = (void *)buf_head(&out);
	iov[0].iov_len = buf_used(&out);
	iov[1].iov_base = (void *)buf_head(&r->body);
	iov[1].iov_len = head_only || nobody ? 0 : buf_used(&r->body);
	resp_started = 1;
	return (conn_writev(c, iov, iov[1].iov_len ? 2 : 1));
}

/* An error of ours (malformed request, too large...): then close. */
static void
send_error(struct conn *c, int status, const char *why)
{
	resp_reset(&resp);
	app_error(&resp, status, "%s", why);
	(void)send_response(c, &resp, 0, 0, 1);
}

/* Recycling: should this worker leave after the request? */
static void
recycle_check(void)
{
	struct rusage	ru;
	FILE		*f;
	unsigned long	 size, rss;
	uint64_t	 bytes = 0;

	if (recycle_why[0] != '\0')
		return;
	if (ac->max_requests > 0 && nserved + 1 >= ac->max_requests) {
		snprintf(recycle_why, sizeof(recycle_why), "served %llu "
		    "requests (max-requests)",
		    (unsigned long long)nserved + 1);
		stats_inc(ac->m_recycled[0]);
		return;
	}
	if (ac->max_rss == 0) {
		/* for the status page only: now and then */
		if ((nserved & 63) != 0)
			return;
	} else if (getrusage(RUSAGE_SELF, &ru) == -1 ||
	    (uint64_t)ru.ru_maxrss * 1024 < ac->max_rss)
		return;		/* the peak is a cheap bound */
	if ((f = fopen("/proc/self/statm", "re")) == NULL)
		return;
	if (fscanf(f, "%lu %lu", &size, &rss) == 2)
		bytes = (uint64_t)rss * (uint64_t)sysconf(_SC_PAGESIZE);
	fclose(f);
	atomic_store(&me->rss, bytes);
	if (ac->max_rss > 0 && bytes > ac->max_rss) {
		snprintf(recycle_why, sizeof(recycle_why), "RSS %llu KiB "
		    "above max-rss %llu KiB", (unsigned long long)bytes / 1024,
		    (unsigned long long)ac->max_rss / 1024);
		stats_inc(ac->m_recycled[1]);
	}
}

/* Run a parsed request and build its response in <resp>. */
static void
dispatch(struct app_req *req, struct app_resp *r)
{
	struct http_target	*t;
	const struct appd_route	*rt;
	const char		*why = NULL;

	if ((t = arena_alloc(req->arena, sizeof(*t))) == NULL ||
	    http_target_parse(req->head + req->msg->target_off,
	    req->msg->target_len, t, &why) == -1) {
		app_error(r, 400, "%s", why ? why : "invalid target");
		return;
	}
	req->path = t->path;
	req->query = arena_strndup(req->arena, t->query ? t->query : "",
	    t->querylen);
	if (strcmp(req->path, "/ping") == 0) {
		resp_header_raw(r, "Content-Type", "text/plain");
		app_puts(r, "pong\n");
		return;
	}
	if ((rt = route_find(ac, req->path, &req->subpath)) == NULL) {
		app_error(r, 404, "no route for %s", req->path);
		return;
	}
	req->route = rt;
	if (rt->kind == ROUTE_APP) {
		req->app = rt->app;
		if (app_run(req, r) == -1)
			app_error(r, 500, "internal error");
	} else if (cgi_run(req, r) == -1)
		app_error(r, 500, "internal error");
}

/*
 * Read the body of the request whose head is c->ib[0, head_len) into
 * <body>.  Returns 0, or an HTTP status (then the connection closes),
 * or -1 when the client went away.  *<used> gets the bytes of c->ib the
 * request took (head and raw body).
 */
static int
read_body(struct conn *c, struct http_msg *m, size_t *used)
{
	size_t			 hl = m->head_len, have;
	uint64_t		 left;
	ssize_t			 n;
	struct http_chunked	 ch;

	buf_reset(&body);
	*used = hl;
	if (m->framing == HTTP_BODY_NONE)
		return (0);
	if ((m->flags & HTTP_F_CONTINUE) && c->ilen == hl && m->minor == 1) {
		static const char	cont[] =
		    "HTTP/1.1 100 Continue\r\n\r\n";
		struct iovec		iov = { (void *)cont,
		    sizeof(cont) - 1 };

		if (conn_writev(c, &iov, 1) == -1)
			return (-1);
	}
	if (m->framing == HTTP_BODY_LENGTH) {
		left = m->content_length;
		have = c->ilen - hl < left ? c->ilen - hl : left;
		if (buf_append(&body, c->ib + hl, have) == -1)
			return (413);
		*used = hl + have;
		left -= have;
		while (left > 0) {
			if (buf_reserve(&body, left < 65536 ? left : 65536) ==
			    -1)
				return (413);
			n = read(c->fd, buf_tail(&body), left < body.cap -
			    body.len ? left : body.cap - body.len);
			if (n > 0) {
				body.len += n;
				left -= n;
				continue;
			}
			if (n == 0)
				return (-1);
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				return (-1);
			if (!wait_fd(c->fd, POLLIN, now_ms() +
			    ac->lim.body_timeout))
				return (408);
		}
		return (0);
	}
	/* chunked: decode what follows the head, reading as needed */
	http_chunked_init(&ch, ac->lim.max_head);
	for (;;) {
		size_t	doff, dlen;
		ssize_t	u;

		u = http_chunked_next(&ch, c->ib + *used, c->ilen - *used,
		    &doff, &dlen);
		if (u == -1)
			return (400);
		if (dlen > 0) {
			if (buf_used(&body) + dlen > ac->lim.max_body ||
			    buf_append(&body, c->ib + *used + doff, dlen) == -1)
				return (413);
		}
		*used += u;
		if (ch.done)
			return (0);
		if (u == 0 || *used == c->ilen) {
			/* keep the head, slide the raw rest after it */
			if (*used > hl) {
				memmove(c->ib + hl, c->ib + *used,
				    c->ilen - *used);
				c->ilen -= *used - hl;
				*used = hl;
			}
			n = conn_read(c, hl + WORKER_INBUF, now_ms() +
			    ac->lim.body_timeout);
			if (n == 0)
				return (-1);
			if (n == -1)
				return (errno == ETIMEDOUT ? 408 :
				    errno == ENOBUFS ? 400 : -1);
		}
	}
}

/* The length of the request line of the head in <c>. */
static size_t
line_len(const struct conn *c, const struct http_msg *m)
{
	const char	*p = c->ib + m->skipped, *e;
	size_t		 n = c->ilen - m->skipped;

	if (m->head_len > m->skipped)
		n = m->head_len - m->skipped;
	if ((e = memchr(p, '\r', n)) != NULL)
		return (e - p);
	return (n);
}

/*
 * Serve one request on <c>, which has bytes to read (or EOF).  Returns 1
 * to keep the connection, 0 to close it.
 */
static int
serve_one(struct conn *c)
{
	struct http_msg		 m;
	struct app_req		 req;
	uint64_t		 t0, deadline;
	size_t			 used;
	ssize_t			 n;
	int			 rv, keep, st;

	set_state(W_READING);
	deadline = now_ms() + ac->lim.header_timeout;
	if (c->ilen == 0) {
		n = conn_read(c, ac->lim.max_head + WORKER_INBUF, deadline);
		if (n <= 0)
			return (0);
	}
	http_msg_init(&m, 0, &ac->lim, hdrs);
	while ((rv = http_parse(&m, c->ib, c->ilen)) == HTTP_AGAIN) {
		n = conn_read(c, ac->lim.max_head + WORKER_INBUF, deadline);
		if (n == 0)
			return (0);
		if (n == -1) {
			if (errno == ETIMEDOUT)
				send_error(c, 408, "request head timeout");
			return (0);
		}
	}
	t0 = now_ms();
	atomic_store(&me->req_start, t0);
	atomic_store(&me->seq, atomic_load(&me->requests) + 1);
	board_set_line(me, c->ib + m.skipped, line_len(c, &m));
	cur_fd = c->fd;
	resp_started = 0;
	keep = 0;
	if (rv == HTTP_ERROR) {
		log_debug("%s: %s", __func__, m.errmsg);
		send_error(c, m.error, m.errmsg ? m.errmsg :
		    http_reason(m.error));
		stats_status(m.error, t0);
		goto done;
	}
	rv = read_body(c, &m, &used);
	if (rv != 0) {
		if (rv > 0) {
			send_error(c, rv, rv == 413 ? "request body too large" :
			    rv == 408 ? "request body timeout" :
			    "malformed request body");
			stats_status(rv, t0);
		}
		goto done;
	}
	set_state(W_BUSY);
	req_init(&req, ac, arena);
	req.fd = c->fd;
	req.peer = &c->peer.sa;
	req.head = c->ib;
	req.msg = &m;
	req.method = arena_strndup(arena, c->ib + m.method_off, m.method_len);
	req.body = buf_used(&body) ? buf_cstr(&body) : "";
	req.bodylen = buf_used(&body);
	resp_reset(&resp);
	dispatch(&req, &resp);
	req_finish(&req);

	keep = (m.minor == 1 ? !(m.flags & HTTP_F_CLOSE) :
	    (m.flags & HTTP_F_KEEPALIVE) && !(m.flags & HTTP_F_CLOSE));
	recycle_check();
	/*
	 * Close by saying so when leaving, and when connections wait in the
	 * listen queue and no other worker is available to take them: then
	 * every queued connection is served in turn.
	 */
	if (leaving() || force_close)
		keep = 0;
	if (keep && listeners_pending() && !available_elsewhere())
		keep = 0;
	st = send_response(c, &resp, m.method == HTTP_M_HEAD, keep, m.minor);
	c->served++;
	atomic_fetch_add(&me->requests, 1);
	nserved++;
	stats_status(resp.status, t0);
	if (st == -1)
		keep = 0;
	if (keep) {
		/* pipelined bytes stay for the next request */
		memmove(c->ib, c->ib + used, c->ilen - used);
		c->ilen -= used;
	}
 done:
	cur_fd = -1;
	atomic_store(&me->seq, 0);
	atomic_store(&me->req_start, 0);
	arena_reset(arena);
	return (keep);
}

static void
conn_take(int fd, const struct sockaddr *sa, socklen_t sl)
{
	net_nodelay(fd, sa->sa_family);
	conn.fd = fd;
	memcpy(&conn.peer, sa, sl);
	conn.ilen = 0;
	conn.served = 0;
	/* its first request within header-timeout */
	conn.deadline = now_ms() + ac->lim.header_timeout;
	stats_inc(ac->m_accepted);
}

static void
conn_close(void)
{
	close(conn.fd);
	conn.fd = -1;
	if (conn.icap > 2 * (ac->lim.max_head + WORKER_INBUF)) {
		free(conn.ib);
		conn.ib = NULL;
		conn.icap = 0;
	}
}

/*
 * Close the idle connection, unless a request arrived on it after all:
 * then serve that one (answered with "Connection: close") first.
 */
static void
conn_close_idle(void)
{
	char	b;

	if (recv(conn.fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) == 1) {
		force_close = 1;
		(void)serve_one(&conn);
		force_close = 0;
	}
	conn_close();
}

/* Accept one connection: wait for it when <wait>.  0, or -1. */
static int
conn_accept(int wait)
{
	struct epoll_event	 ev[8];
	struct sockaddr_storage	 ss;
	socklen_t		 sl;
	int			 n, i, fd;

	if (wait)
		set_state(W_IDLE);
	for (;;) {
		if (leaving())
			return (-1);
		if (!wait) {
			/* the one that waited in a queue, if still there */
			for (i = 0; i < nlfds; i++) {
				sl = sizeof(ss);
				fd = accept4(lfds[i], (struct sockaddr *)&ss,
				    &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
				if (fd != -1) {
					conn_take(fd, (struct sockaddr *)&ss,
					    sl);
					return (0);
				}
			}
			return (-1);
		}
		n = epoll_wait(epfd, ev, nitems(ev), -1);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			fatal("epoll_wait");
		}
		for (i = 0; i < n; i++) {
			if (ev[i].data.fd == sigpipe[0]) {
				sigpipe_drain();
				continue;
			}
			sl = sizeof(ss);
			fd = accept4(ev[i].data.fd, (struct sockaddr *)&ss, &sl,
			    SOCK_NONBLOCK | SOCK_CLOEXEC);
			if (fd == -1) {
				if (errno != EAGAIN && errno != EINTR &&
				    errno != ECONNABORTED)
					log_warn("accept");
				continue;
			}
			conn_take(fd, (struct sockaddr *)&ss, sl);
			return (0);
		}
	}
}

/* The worker's loop: a connection, its requests, the next one. */
static void
worker_loop(void)
{
	for (;;) {
		if (conn.fd == -1 && conn_accept(1) == -1)
			return;
		set_state(W_KEEPALIVE);
		switch (conn_wait()) {
		case WAIT_READY:
			if (serve_one(&conn)) {
				conn.deadline = now_ms() + ac->lim.idle_timeout;
				if (busy_us != 0)
					spin_until = ev_monotonic_us() +
					    busy_us;
			}
			else
				conn_close();
			break;
		case WAIT_PRESSURE:
			conn_close_idle();
			(void)conn_accept(0);
			break;
		case WAIT_EXPIRED:
		case WAIT_LEAVE:
			conn_close_idle();
			break;
		}
	}
}

/* Before privileges are dropped: limits, and the modules. */
int
worker_child_init(struct proc_worker *w)
{
	struct appd_conf	*c = w->conf;
	struct rlimit		 rl;
	char			 err[512];
	int			 i;

	if (strcmp(w->role, "worker") != 0)
		return (0);
	for (i = 0; i < c->napps; i++)
		if (app_load(c->apps[i], err, sizeof(err)) == -1) {
			log_warnx("app %s: %s: %s", c->apps[i]->name,
			    c->apps[i]->module, err);
			return (-1);
		}
	if (c->rlimit_as > 0) {
		rl.rlim_cur = rl.rlim_max = c->rlimit_as;
		if (setrlimit(RLIMIT_AS, &rl) == -1) {
			log_warn("setrlimit RLIMIT_AS");
			return (-1);
		}
	}
	return (0);
}

int
worker_main(struct proc_worker *w)
{
	struct epoll_event	 ev;
	static const char	 msg[] = "{\"error\":\"the request took "
				    "longer than request-timeout\"}\n";
	int			 i;

	ac = aconf = w->conf;
	busy_us = w->ps->busy_us;
	me = board_attach(ac->board, w->slot);
	atomic_store(&me->generation, w->generation);
	atomic_store(&me->id, w->id);
	atomic_store(&me->started, now_ms());
	atomic_store(&me->pid, getpid());
	setproctitle("worker %d", w->id + 1);
	r504len = snprintf(r504, sizeof(r504), "HTTP/1.1 504 Gateway Timeout"
	    "\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
	    "Connection: close\r\n\r\n%s", sizeof(msg) - 1, msg);
	signals_init();

	if ((epfd = epoll_create1(EPOLL_CLOEXEC)) == -1)
		fatal("epoll_create1");
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.fd = sigpipe[0];
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, sigpipe[0], &ev) == -1)
		fatal("epoll_ctl");
	for (i = 0; i < w->ps->nlisteners; i++) {
		if (!appd_is_worker_listener(ac, &w->ps->listeners[i]))
			continue;
		lfds[nlfds++] = w->ps->listeners[i].fd;
		ev.events = EPOLLIN | EPOLLEXCLUSIVE;
		ev.data.fd = w->ps->listeners[i].fd;
		if (epoll_ctl(epfd, EPOLL_CTL_ADD, ev.data.fd, &ev) == -1)
			fatal("epoll_ctl %s", w->ps->listeners[i].addr.text);
	}
	if ((hdrs = calloc(ac->lim.max_headers, sizeof(*hdrs))) == NULL)
		fatal("%s", __func__);
	arena = arena_new();
	resp_init(&resp);
	buf_init(&body, ac->lim.max_body + 1);
	buf_init(&out, 128 * 1024);

	if (app_init_all(ac) == -1)
		exit(1);
	if (proc_worker_ready(w) == -1)
		fatal("proc_worker_ready");

	worker_loop();
	set_state(W_EXITING);
	app_fini_all(ac);
	if (recycle_why[0] != '\0')
		(void)proc_worker_recycle(w, recycle_why);
	atomic_store(&me->pid, 0);
	atomic_store(&me->state, W_FREE);
	free(conn.ib);
	free(hdrs);
	arena_free(arena);
	resp_free(&resp);
	buf_free(&body);
	buf_free(&out);
	close(epfd);
	return (0);
}
