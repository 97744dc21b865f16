/*
 * tunnel.c: two sockets joined (see tunnel.h).
 */
#include <sys/types.h>
#include <sys/queue.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "stats.h"
#include "tunnel.h"

struct side {
	struct sock	 s;
	struct buf	*out;		/* bytes for this side */
	int		 pipe[2];	/* more bytes for it, spliced; -1 */
	size_t		 inpipe;	/* how many */
	int		 bulk;		/* bytes for it come in full reads */
	int		 rdone;		/* nothing more to read from it */
	int		 wdone;		/* shut down for writing */
	struct tunnel	*t;
};

struct tunnel {
	struct ev_loop		*loop;
	struct side		 a, b;
	struct ev_timer		 idle;
	uint32_t		 idle_ms;
	uint64_t		 ab, ba;	/* bytes a->b, b->a */
	int			 closed;
	int			 splice;	/* both plain, splice(2) works */
	struct stats_metric	*m_spliced;	/* bytes spliced, or NULL */
	void			(*done)(void *, uint64_t, uint64_t);
	void			*arg;
	TAILQ_ENTRY(tunnel)	 entry;
};

static TAILQ_HEAD(, tunnel)	tunnels = TAILQ_HEAD_INITIALIZER(tunnels);
static TAILQ_HEAD(, tunnel)	dead = TAILQ_HEAD_INITIALIZER(dead);
static int			ntunnels;

/*
 * Pipes for splice(2): a direction holds one only while bytes are in
 * it, and gives it back empty; TUNNEL_PIPES_IDLE are kept for reuse,
 * and no more than TUNNEL_PIPES exist (a direction without one copies).
 */
static int			pool[TUNNEL_PIPES_IDLE][2];
static int			npool, npipes;

static void	tunnel_run(struct tunnel *);

static int
pipe_get(int p[2])
{
	static int	max;
	struct rlimit	rl;

	/* pipes take two fds each: a sixteenth of the limit at most */
	if (max == 0) {
		max = TUNNEL_PIPES;
		if (getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
		    rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur / 16 < (rlim_t)max)
			max = rl.rlim_cur / 16 > 0 ? (int)(rl.rlim_cur / 16) : 1;
	}
	if (npool > 0) {
		npool--;
		p[0] = pool[npool][0];
		p[1] = pool[npool][1];
		return (0);
	}
	if (npipes >= max || pipe2(p, O_NONBLOCK | O_CLOEXEC) == -1)
		return (-1);
	npipes++;
	return (0);
}

/* Give back <p> (kept if <empty> and there is room in the pool). */
static void
pipe_put(int p[2], int empty)
{
	if (p[0] == -1)
		return;
	if (empty && npool < TUNNEL_PIPES_IDLE) {
		pool[npool][0] = p[0];
		pool[npool][1] = p[1];
		npool++;
	} else {
		close(p[0]);
		close(p[1]);
		npipes--;
	}
	p[0] = p[1] = -1;
}

int
tunnel_count(void)
{
	return (ntunnels);
}

void
tunnel_collect(void)
{
	struct tunnel	*t;

	while ((t = TAILQ_FIRST(&dead)) != NULL) {
		TAILQ_REMOVE(&dead, t, entry);
		free(t);
	}
}

static void
side_event(struct ev_io *io, uint32_t ev)
{
	struct side	*sd = io->arg;

	sock_events(&sd->s, ev);
	tunnel_run(sd->t);
}

static void
idle_timeout(struct ev_timer *tm)
{
	tunnel_close(tm->arg);
}

struct tunnel *
tunnel_new(struct ev_loop *loop, struct sock *a, struct sock *b,
    struct buf *to_b, struct buf *to_a, uint32_t idle_ms,
    struct stats_metric *m_spliced, void (*done)(void *, uint64_t, uint64_t),
    void *arg)
{
	struct tunnel	*t;

	if ((t = calloc(1, sizeof(*t))) == NULL)
		return (NULL);
	t->loop = loop;
	t->idle_ms = idle_ms;
	t->m_spliced = m_spliced;
	t->done = done;
	t->arg = arg;
	t->a.t = t->b.t = t;
	t->a.s = *a;
	t->b.s = *b;
	t->a.pipe[0] = t->a.pipe[1] = t->b.pipe[0] = t->b.pipe[1] = -1;
	t->splice = a->ssl == NULL && b->ssl == NULL;
	a->fd = b->fd = -1;
	a->ssl = b->ssl = NULL;
	if ((t->a.out = to_a) == NULL) {
		t->a.out = calloc(1, sizeof(struct buf));
		buf_init(t->a.out, TUNNEL_BUF);
	}
	if ((t->b.out = to_b) == NULL) {
		t->b.out = calloc(1, sizeof(struct buf));
		buf_init(t->b.out, TUNNEL_BUF);
	}
	t->a.out->max = t->b.out->max = TUNNEL_BUF + buf_used(t->a.out) +
	    buf_used(t->b.out);
	ev_io_del(loop, &t->a.s.io);
	ev_io_del(loop, &t->b.s.io);
	if (sock_watch(loop, &t->a.s, side_event, &t->a) == -1 ||
	    sock_watch(loop, &t->b.s, side_event, &t->b) == -1) {
		log_warn("%s: ev_io_add", __func__);
	}
	ev_timer_init(&t->idle, idle_timeout, t);
	if (idle_ms)
		ev_timer_add(loop, &t->idle, idle_ms);
	TAILQ_INSERT_TAIL(&tunnels, t, entry);
	ntunnels++;
	tunnel_run(t);
	return (t);
}

void
tunnel_close(struct tunnel *t)
{
	if (t->closed)
		return;
	t->closed = 1;
	ev_timer_del(t->loop, &t->idle);
	sock_close(t->loop, &t->a.s);
	sock_close(t->loop, &t->b.s);
	pipe_put(t->a.pipe, t->a.inpipe == 0);
	pipe_put(t->b.pipe, t->b.inpipe == 0);
	buf_free(t->a.out);
	buf_free(t->b.out);
	free(t->a.out);
	free(t->b.out);
	TAILQ_REMOVE(&tunnels, t, entry);
	TAILQ_INSERT_TAIL(&dead, t, entry);
	ntunnels--;
	if (t->done != NULL)
		t->done(t->arg, t->ab, t->ba);
}

/*
 * Splice more from <from> into <to>'s pipe: 1 on progress, 0 when it
 * cannot now, -1 on error; <t>->splice is cleared when the kernel cannot
 * splice these sockets, and the caller copies instead.
 */
static int
splice_in(struct tunnel *t, struct side *from, struct side *to)
{
	ssize_t	n;

	if (to->pipe[0] == -1 && pipe_get(to->pipe) == -1)
		return (0);
	if (to->inpipe >= TUNNEL_PIPE)
		return (0);
	n = sock_splice_in(&from->s, to->pipe[1], TUNNEL_PIPE - to->inpipe);
	if (n > 0) {
		to->inpipe += n;
		return (1);
	}
	if (errno == EAGAIN)
		return (0);
	if (errno == EINVAL && to->inpipe == 0) {
		t->splice = 0;
		return (0);
	}
	return (-1);
}

/*
 * Move bytes from <from> to <to>.  Returns 1 on progress, -1 on error.
 * Bytes are copied through <to>'s buffer until a read fills it: then
 * the direction is bulk, and with two plain sockets its bytes go through
 * a pipe with splice(2), from socket to socket without a copy to us.
 * The buffer's bytes (read first) are written before the pipe's, and
 * nothing is read into the buffer while the pipe holds bytes.
 */
static int
pump(struct tunnel *t, struct side *from, struct side *to, uint64_t *count)
{
	int	progress = 0, r;
	ssize_t	n;
	size_t	want;

	for (;;) {
		/* write what is buffered for <to>, then what is in its pipe */
		while (buf_used(to->out) > 0 && (to->s.flags & SOCK_WRITABLE) &&
		    !to->wdone) {
			n = sock_write(&to->s, buf_head(to->out),
			    buf_used(to->out));
			if (n > 0) {
				buf_consume(to->out, n);
				*count += n;
				progress = 1;
			} else if (n == -1 && errno == EAGAIN)
				break;
			else
				return (-1);
		}
		while (buf_used(to->out) == 0 && to->inpipe > 0 &&
		    (to->s.flags & SOCK_WRITABLE) && !to->wdone) {
			n = sock_splice_out(&to->s, to->pipe[0], to->inpipe);
			if (n > 0) {
				to->inpipe -= n;
				*count += n;
				if (t->m_spliced != NULL)
					stats_add(t->m_spliced, n);
				progress = 1;
			} else if (n == -1 && errno == EAGAIN)
				break;
			else
				return (-1);
		}
		if (from->rdone || !(from->s.flags & SOCK_READABLE))
			break;
		if (to->bulk && t->splice) {
			if ((r = splice_in(t, from, to)) == -1)
				return (-1);
			if (r == 1) {
				progress = 1;
				continue;
			}
			/*
			 * No pipe to be had, or splicing stopped and cannot
			 * say why (a drained socket, urgent data, the end):
			 * read(2) says, and passes urgent data.  Never while
			 * the pipe holds bytes: they go out first.
			 */
		}
		if (to->inpipe > 0 || buf_room(to->out) == 0)
			break;
		want = 16 * 1024 < buf_room(to->out) ? 16 * 1024 :
		    buf_room(to->out);
		if (buf_reserve(to->out, want) == -1)
			break;
		n = sock_read(&from->s, buf_tail(to->out),
		    to->out->cap - to->out->len);
		if (n > 0) {
			to->out->len += n;
			if ((size_t)n >= want)
				to->bulk = 1;
			progress = 1;
			continue;
		}
		if (n == 0) {
			from->rdone = 1;
			progress = 1;
			break;
		}
		if (errno == EAGAIN)
			break;
		return (-1);
	}
	/* an empty pipe goes back to the pool until the next bulk read */
	if (to->inpipe == 0)
		pipe_put(to->pipe, 1);
	/* the end of <from> reaches <to> once its bytes are out */
	if (from->rdone && buf_used(to->out) == 0 && to->inpipe == 0 &&
	    !to->wdone) {
		sock_shutdown(&to->s);
		to->wdone = 1;
		progress = 1;
	}
	return (progress);
}

static void
tunnel_run(struct tunnel *t)
{
	int	pa, pb;

	if (t->closed)
		return;
	do {
		pa = pump(t, &t->a, &t->b, &t->ab);
		pb = pump(t, &t->b, &t->a, &t->ba);
		if (pa == -1 || pb == -1 ||
		    ((t->a.s.flags | t->b.s.flags) & SOCK_ERROR)) {
			tunnel_close(t);
			return;
		}
		if (pa || pb) {
			if (t->idle_ms)
				ev_timer_add(t->loop, &t->idle, t->idle_ms);
		}
	} while (pa > 0 || pb > 0);
	if (t->a.rdone && t->b.rdone && t->a.wdone && t->b.wdone)
		tunnel_close(t);
}
