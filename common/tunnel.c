/*
 * tunnel.c: two sockets joined (see tunnel.h).
 */
#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "tunnel.h"

struct side {
	struct sock	 s;
	struct buf	*out;		/* bytes for this side */
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
	void			(*done)(void *, uint64_t, uint64_t);
	void			*arg;
	TAILQ_ENTRY(tunnel)	 entry;
};

static TAILQ_HEAD(, tunnel)	tunnels = TAILQ_HEAD_INITIALIZER(tunnels);
static TAILQ_HEAD(, tunnel)	dead = TAILQ_HEAD_INITIALIZER(dead);
static int			ntunnels;

static void	tunnel_run(struct tunnel *);

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
    void (*done)(void *, uint64_t, uint64_t), void *arg)
{
	struct tunnel	*t;

	if ((t = calloc(1, sizeof(*t))) == NULL)
		return (NULL);
	t->loop = loop;
	t->idle_ms = idle_ms;
	t->done = done;
	t->arg = arg;
	t->a.t = t->b.t = t;
	t->a.s = *a;
	t->b.s = *b;
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

/* Move bytes from <from> to <to>.  Returns 1 on progress, -1 on error. */
static int
pump(struct tunnel *t, struct side *from, struct side *to, uint64_t *count)
{
	int	progress = 0;
	ssize_t	n;

	for (;;) {
		/* write what is buffered for <to> */
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
		if (from->rdone || !(from->s.flags & SOCK_READABLE) ||
		    buf_room(to->out) == 0)
			break;
		if (buf_reserve(to->out, 16 * 1024 < buf_room(to->out) ?
		    16 * 1024 : buf_room(to->out)) == -1)
			break;
		n = sock_read(&from->s, buf_tail(to->out),
		    to->out->cap - to->out->len);
		if (n > 0) {
			to->out->len += n;
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
	/* the end of <from> reaches <to> once its bytes are out */
	if (from->rdone && buf_used(to->out) == 0 && !to->wdone) {
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
