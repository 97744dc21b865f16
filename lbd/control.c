/*
 * control.c: the control socket, served by the checker process on the
 * unix socket the master opened ("control", mode 0600).
 *
 * One command per connection, as HAProxy's non-interactive stats socket
 * and relayctl(8) do: the client sends a line (at most LBD_CTL_MAXLINE
 * bytes, within LBD_CTL_TIMEOUT ms), gets the answer, and the socket is
 * closed.  An answer that starts with "error:" is a failure.
 *
 *	help
 *	show servers [BACKEND]
 *	show backends
 *	set server BACKEND/SERVER state ready|drain|maint
 *	set server BACKEND/SERVER weight N		(0-256)
 *
 * Changes are written to the servers' shared blocks at once, where every
 * worker sees them on its next pick, and logged.  drain and maint take
 * no new requests; requests in flight finish.  Leaving maint forgets the
 * old check results: the next check (run at once) decides the health.
 */
#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "event.h"
#include "log.h"
#include "lbd.h"

#define CTL_MAXWORDS	8
#define CTL_MAXCOLS	8
#define CTL_CELLLEN	128
#define CTL_LINGER	1000	/* ms to read what a client sent too much */

struct ctl_client {
	int			 fd;
	struct ev_io		 io;
	struct ev_timer		 timer;
	struct buf		 in;
	struct buf		 out;
	int			 answered;
	int			 linger;	/* bytes left unread */
	TAILQ_ENTRY(ctl_client)	 entry;
};

static TAILQ_HEAD(, ctl_client)	 clients = TAILQ_HEAD_INITIALIZER(clients);
static int			 nclients;
static struct ev_loop		*cloop;
static struct lbd_conf		*clc;
static struct ev_io		 lio;
static void			(*drained)(void);

static const char	*state_names[] = { "ready", "drain", "maint" };

static const char usage_text[] =
    "commands:\n"
    "  help\n"
    "  show servers [BACKEND]\n"
    "  show backends\n"
    "  set server BACKEND/SERVER state ready|drain|maint\n"
    "  set server BACKEND/SERVER weight N   (0-256)\n";

/* Commands */

static int
answer_error(struct buf *out, const char *fmt, ...) __printflike(2, 3);

static int
answer_error(struct buf *out, const char *fmt, ...)
{
	char	msg[512];
	va_list	ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	buf_printf(out, "error: %s\n", msg);
	return (-1);
}

static int64_t
unix_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

/* A table: rows of cells, columns padded to the widest cell. */
struct table {
	int	 ncols;
	int	 width[CTL_MAXCOLS];
	int	 nrows;
	char	(*cells)[CTL_MAXCOLS][CTL_CELLLEN];
};

static void
table_row(struct table *t, ...)
{
	va_list		 ap;
	const char	*s;
	int		 c, n;

	if (t->cells == NULL)
		return;
	va_start(ap, t);
	for (c = 0; c < t->ncols; c++) {
		s = va_arg(ap, const char *);
		strlcpy(t->cells[t->nrows][c], s ? s : "-", CTL_CELLLEN);
		n = strlen(t->cells[t->nrows][c]);
		if (n > t->width[c])
			t->width[c] = n;
	}
	va_end(ap);
	t->nrows++;
}

static void
table_print(struct table *t, struct buf *out)
{
	int	r, c;

	for (r = 0; r < t->nrows; r++) {
		for (c = 0; c < t->ncols; c++) {
			if (c == t->ncols - 1)
				buf_printf(out, "%s\n", t->cells[r][c]);
			else
				buf_printf(out, "%-*s  ", t->width[c],
				    t->cells[r][c]);
		}
	}
	free(t->cells);
	t->cells = NULL;
}

static void
table_init(struct table *t, int ncols, int nrows)
{
	memset(t, 0, sizeof(*t));
	t->ncols = ncols;
	t->cells = calloc(nrows + 1, sizeof(*t->cells));
}

static void
check_text(const struct lbd_check *ck, char *out, size_t len)
{
	switch (ck->type) {
	case CHECK_NONE:
		strlcpy(out, "none", len);
		return;
	case CHECK_TCP:
		snprintf(out, len, "tcp");
		break;
	case CHECK_HTTP:
		snprintf(out, len, "http%s %s %s", ck->tls ? "s" : "",
		    ck->method, ck->path);
		break;
	case CHECK_TLS:
		snprintf(out, len, "tls");
		break;
	case CHECK_SEND:
		snprintf(out, len, "send%s", ck->tls ? " (tls)" : "");
		break;
	}
	snprintf(out + strlen(out), len - strlen(out), " every %ums, "
	    "rise %d fall %d", ck->interval, ck->rise, ck->fall);
}

static int
show_servers(struct lbd_conf *lc, const char *only, struct buf *out)
{
	struct lbd_backend	*be;
	struct table		 t;
	int			 i, n = 0;
	int64_t			 now = unix_ms();

	if (only != NULL && backend_find(lc, only) == NULL)
		return (answer_error(out, "no backend %s", only));
	TAILQ_FOREACH(be, &lc->backends, entry)
		n += be->pc.pool->nservers;
	table_init(&t, 8, n);
	table_row(&t, "BACKEND", "SERVER", "ADDRESS", "STATE", "WEIGHT",
	    "CONNS", "LASTCHECK", "RESULT");
	TAILQ_FOREACH(be, &lc->backends, entry) {
		if (only != NULL && strcmp(be->name, only) != 0)
			continue;
		for (i = 0; i < be->pc.pool->nservers; i++) {
			struct up_server *s = be->pc.pool->servers[i];
			struct up_shared *sh = s->sh;
			int64_t		  last = atomic_load(&sh->last_check);
			char		  w[16], c[16], age[32];
			char		  res[sizeof(sh->check_desc)];

			snprintf(w, sizeof(w), "%d", atomic_load(&sh->weight));
			snprintf(c, sizeof(c), "%d", shm_count_get(&sh->conns));
			if (be->check.type == CHECK_NONE || last == 0)
				strlcpy(age, "-", sizeof(age));
			else
				snprintf(age, sizeof(age), "%.1fs",
				    (now > last ? now - last : 0) / 1000.0);
			if (be->check.type == CHECK_NONE)
				strlcpy(res, "no check", sizeof(res));
			else {
				memcpy(res, sh->check_desc, sizeof(res));
				res[sizeof(res) - 1] = '\0';
				if (res[0] == '\0')
					strlcpy(res, "-", sizeof(res));
			}
			table_row(&t, be->name, s->name, s->addr.text,
			    up_state_name(s), w, c, age, res);
		}
	}
	table_print(&t, out);
	return (0);
}

static int
show_backends(struct lbd_conf *lc, struct buf *out)
{
	struct lbd_backend	*be;
	struct table		 t;
	int			 n = 0;

	TAILQ_FOREACH(be, &lc->backends, entry)
		n++;
	table_init(&t, 7, n);
	table_row(&t, "BACKEND", "MODE", "BALANCE", "SERVERS", "ACTIVE",
	    "BACKUP", "CHECK");
	TAILQ_FOREACH(be, &lc->backends, entry) {
		char	ns[16], na[16], nb[16], ck[CTL_CELLLEN];

		snprintf(ns, sizeof(ns), "%d", be->pc.pool->nservers);
		snprintf(na, sizeof(na), "%d", lbd_nup(be, 0));
		snprintf(nb, sizeof(nb), "%d", lbd_nup(be, 1));
		check_text(&be->check, ck, sizeof(ck));
		table_row(&t, be->name, be->mode == MODE_TCP ? "tcp" : "http",
		    be->pc.pool->lb->name, ns, na, nb, ck);
	}
	table_print(&t, out);
	return (0);
}

/* "backend/server" to its objects, or an error answered. */
static int
find_server(struct lbd_conf *lc, const char *name, struct lbd_backend **bep,
    struct up_server **sp, struct buf *out)
{
	struct lbd_backend	*be;
	const char		*slash;
	char			 bname[UP_NAMELEN];
	size_t			 bl;
	int			 i;

	if ((slash = strchr(name, '/')) == NULL || slash == name ||
	    slash[1] == '\0')
		return (answer_error(out, "\"%s\": expected BACKEND/SERVER",
		    name));
	bl = slash - name;
	if (bl >= sizeof(bname))
		return (answer_error(out, "no server %s", name));
	memcpy(bname, name, bl);
	bname[bl] = '\0';
	if ((be = backend_find(lc, bname)) == NULL)
		return (answer_error(out, "no server %s (no backend %s)",
		    name, bname));
	for (i = 0; i < be->pc.pool->nservers; i++)
		if (strcmp(be->pc.pool->servers[i]->name, slash + 1) == 0) {
			*bep = be;
			*sp = be->pc.pool->servers[i];
			return (0);
		}
	return (answer_error(out, "no server %s", name));
}

static void
left_text(struct lbd_backend *be, char *out, size_t len)
{
	int	i, backups = 0;

	for (i = 0; i < be->pc.pool->nservers; i++)
		backups |= be->pc.pool->servers[i]->backup;
	if (backups)
		snprintf(out, len, "%d active and %d backup left",
		    lbd_nup(be, 0), lbd_nup(be, 1));
	else
		snprintf(out, len, "%d active left", lbd_nup(be, 0));
}

static int
set_state(struct lbd_backend *be, struct up_server *s, const char *word,
    struct buf *out)
{
	struct up_shared	*sh = s->sh;
	char			 left[64];
	int			 st, old;

	for (st = 0; st < (int)nitems(state_names); st++)
		if (strcmp(word, state_names[st]) == 0)
			break;
	if (st == (int)nitems(state_names))
		return (answer_error(out, "unknown state \"%s\" (ready, "
		    "drain or maint)", word));
	old = atomic_exchange(&sh->admin, st);
	if (old == st) {
		buf_printf(out, "server %s/%s is already %s\n", be->name,
		    s->name, state_names[st]);
		return (0);
	}
	if (old == UP_MAINT && be->check.type != CHECK_NONE) {
		/* the results from before are stale: the next one decides */
		atomic_store(&sh->rise, 0);
		atomic_store(&sh->fall, 0);
		atomic_store(&sh->checked, 0);
		check_now(be, s);
	}
	left_text(be, left, sizeof(left));
	log_info("server %s/%s set to %s (was %s) on the control socket, %s",
	    be->name, s->name, state_names[st], state_names[old], left);
	buf_printf(out, "server %s/%s is now %s (was %s), %s\n", be->name,
	    s->name, state_names[st], state_names[old], left);
	return (0);
}

static int
set_weight(struct lbd_backend *be, struct up_server *s, const char *word,
    struct buf *out)
{
	const char	*errstr;
	int		 w, old;

	w = strtonum(word, 0, UP_MAXWEIGHT, &errstr);
	if (errstr != NULL)
		return (answer_error(out, "weight \"%s\" is %s (0-%d)", word,
		    errstr, UP_MAXWEIGHT));
	/* as HAProxy: a static algorithm takes only on and off */
	if (be->pc.pool->lb == &lb_static_rr && w != 0 && w != s->weight)
		return (answer_error(out, "backend %s balances static-rr: "
		    "its weights are static (0 or %d)", be->name, s->weight));
	old = atomic_exchange(&s->sh->weight, w);
	if (old != w)
		log_info("server %s/%s weight set to %d (was %d) on the "
		    "control socket", be->name, s->name, w, old);
	buf_printf(out, "server %s/%s weight is now %d (was %d)\n", be->name,
	    s->name, w, old);
	return (0);
}

/*
 * Run the command <line> and write its answer to <out>.  Returns 0, or
 * -1 when the answer is an error (it starts with "error:").
 */
int
control_command(struct lbd_conf *lc, const char *line, struct buf *out)
{
	char			 copy[LBD_CTL_MAXLINE], *w[CTL_MAXWORDS], *p;
	struct lbd_backend	*be = NULL;
	struct up_server	*s = NULL;
	int			 n = 0;
	const char		*c;

	for (c = line; *c != '\0'; c++)
		if ((unsigned char)*c < 0x20 && *c != '\t')
			return (answer_error(out, "control characters in the "
			    "command"));
	if (strlcpy(copy, line, sizeof(copy)) >= sizeof(copy))
		return (answer_error(out, "command longer than %d bytes",
		    LBD_CTL_MAXLINE - 1));
	for (p = copy; n < CTL_MAXWORDS; ) {
		char	*word;

		while ((word = strsep(&p, " \t")) != NULL && *word == '\0')
			;
		if (word == NULL)
			break;
		w[n++] = word;
	}
	if (p != NULL && strspn(p, " \t") != strlen(p))
		return (answer_error(out, "too many words; try help"));

	if (n == 0)
		return (answer_error(out, "empty command; try help"));
	if (strcmp(w[0], "help") == 0 && n == 1) {
		buf_printf(out, "%s", usage_text);
		return (0);
	}
	if (strcmp(w[0], "show") == 0 && n >= 2) {
		if (strcmp(w[1], "servers") == 0 && n <= 3)
			return (show_servers(lc, n == 3 ? w[2] : NULL, out));
		if (strcmp(w[1], "backends") == 0 && n == 2)
			return (show_backends(lc, out));
		return (answer_error(out, "usage: show servers [BACKEND] | "
		    "show backends"));
	}
	if (strcmp(w[0], "set") == 0 && n >= 2 && strcmp(w[1], "server") ==
	    0) {
		if (n != 5 || (strcmp(w[3], "state") != 0 &&
		    strcmp(w[3], "weight") != 0))
			return (answer_error(out, "usage: set server "
			    "BACKEND/SERVER state ready|drain|maint | "
			    "set server BACKEND/SERVER weight N"));
		if (find_server(lc, w[2], &be, &s, out) == -1)
			return (-1);
		if (strcmp(w[3], "state") == 0)
			return (set_state(be, s, w[4], out));
		return (set_weight(be, s, w[4], out));
	}
	return (answer_error(out, "unknown command \"%s\"; try help", line));
}

/* Connections */

static void
client_close(struct ctl_client *cl)
{
	ev_io_del(cloop, &cl->io);
	ev_timer_del(cloop, &cl->timer);
	close(cl->fd);
	buf_free(&cl->in);
	buf_free(&cl->out);
	TAILQ_REMOVE(&clients, cl, entry);
	nclients--;
	free(cl);
	if (nclients == 0 && drained != NULL)
		drained();
}

/*
 * Write what is left of the answer; close once it is all out.  A client
 * that sent more than we read is given the answer and our EOF first,
 * and its bytes are read and dropped until it closes (or CTL_LINGER):
 * closing on unread bytes would reset the connection, and the answer
 * could be lost with it.
 */
static void
client_write(struct ctl_client *cl)
{
	ssize_t	n;

	while (buf_used(&cl->out) > 0) {
		n = send(cl->fd, buf_head(&cl->out), buf_used(&cl->out),
		    MSG_NOSIGNAL);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN) {
			if (ev_io_mod(cloop, &cl->io, EPOLLOUT) == -1)
				break;
			return;
		}
		if (n <= 0)
			break;
		buf_consume(&cl->out, n);
	}
	if (buf_used(&cl->out) == 0 && cl->linger == 1 &&
	    shutdown(cl->fd, SHUT_WR) == 0 &&
	    ev_io_mod(cloop, &cl->io, EPOLLIN) == 0) {
		cl->linger = 2;
		ev_timer_add(cloop, &cl->timer, CTL_LINGER);
		return;
	}
	client_close(cl);
}

/* Drop what a client still sends after its answer; close at its EOF. */
static void
client_linger(struct ctl_client *cl)
{
	char	b[4096];
	ssize_t	n;

	while ((n = read(cl->fd, b, sizeof(b))) > 0 ||
	    (n == -1 && errno == EINTR))
		;
	if (n == -1 && errno == EAGAIN)
		return;
	client_close(cl);
}

static void
client_answer(struct ctl_client *cl, const char *line, size_t len)
{
	cl->answered = 1;
	/* a NUL would end the line for the parser: the rest unseen */
	if (memchr(line, '\0', len) != NULL) {
		answer_error(&cl->out, "control characters in the command");
		client_write(cl);
		return;
	}
	if (control_command(clc, line, &cl->out) == -1 &&
	    buf_used(&cl->out) == 0)
		buf_printf(&cl->out, "error: answer too long\n");
	client_write(cl);
}

static void
client_event(struct ev_io *io, uint32_t ev)
{
	struct ctl_client	*cl = io->arg;
	char			*nl;
	ssize_t			 n;

	if (cl->linger == 2) {
		client_linger(cl);
		return;
	}
	if (cl->answered) {
		client_write(cl);
		return;
	}
	for (;;) {
		if (buf_room(&cl->in) <= 1) {
			answer_error(&cl->out, "command longer than %d bytes",
			    LBD_CTL_MAXLINE - 1);
			cl->answered = 1;
			cl->linger = 1;
			client_write(cl);
			return;
		}
		if (buf_reserve(&cl->in, buf_room(&cl->in)) == -1) {
			client_close(cl);
			return;
		}
		n = read(cl->fd, buf_tail(&cl->in), buf_room(&cl->in) - 1);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			return;
		if (n == -1) {
			client_close(cl);
			return;
		}
		cl->in.len += n;
		cl->in.data[cl->in.len] = '\0';
		if ((nl = memchr(buf_head(&cl->in), '\n',
		    buf_used(&cl->in))) != NULL) {
			size_t	len = nl - buf_head(&cl->in);

			*nl = '\0';
			if (len > 0 && nl[-1] == '\r') {
				nl[-1] = '\0';
				len--;
			}
			if (nl + 1 < cl->in.data + cl->in.len)
				cl->linger = 1;		/* more than a line */
			client_answer(cl, buf_head(&cl->in), len);
			return;
		}
		if (n == 0) {
			/* the last line may come without its newline */
			if (buf_used(&cl->in) > 0)
				client_answer(cl, buf_head(&cl->in),
				    buf_used(&cl->in));
			else
				client_close(cl);
			return;
		}
	}
}

static void
client_timeout(struct ev_timer *t)
{
	struct ctl_client	*cl = t->arg;

	if (cl->linger == 2) {
		client_close(cl);
		return;
	}
	if (!cl->answered) {
		/* a client too slow to send a line: tell it, if it listens */
		buf_reset(&cl->out);
		answer_error(&cl->out, "timeout: no command within %d ms",
		    LBD_CTL_TIMEOUT);
		(void)send(cl->fd, buf_head(&cl->out), buf_used(&cl->out),
		    MSG_NOSIGNAL | MSG_DONTWAIT);
	}
	client_close(cl);
}

static void
control_accept(struct ev_io *io, uint32_t ev)
{
	struct ctl_client	*cl;
	int			 fd;
	static const char	 busy[] = "error: too many control "
				    "connections, try again\n";

	for (;;) {
		fd = accept4(io->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN)
				log_warn("%s: accept", __func__);
			return;
		}
		if (nclients >= LBD_CTL_MAXCLIENTS) {
			(void)send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL);
			close(fd);
			continue;
		}
		if ((cl = calloc(1, sizeof(*cl))) == NULL) {
			log_warn("%s", __func__);
			close(fd);
			continue;
		}
		cl->fd = fd;
		buf_init(&cl->in, LBD_CTL_MAXLINE + 1);
		buf_init(&cl->out, LBD_CTL_MAXANSWER);
		if (ev_io_add(cloop, &cl->io, fd, EPOLLIN, client_event,
		    cl) == -1) {
			log_warn("%s: epoll", __func__);
			close(fd);
			free(cl);
			continue;
		}
		ev_timer_init(&cl->timer, client_timeout, cl);
		ev_timer_add(cloop, &cl->timer, LBD_CTL_TIMEOUT);
		TAILQ_INSERT_TAIL(&clients, cl, entry);
		nclients++;
	}
}

/* Serve the control socket <fd> (listening, from the master) on <loop>. */
int
control_init(struct ev_loop *loop, struct lbd_conf *lc, int fd)
{
	cloop = loop;
	clc = lc;
	if (fd == -1)
		return (-1);
	net_nonblock(fd);
	return (ev_io_add(loop, &lio, fd, EPOLLIN, control_accept, NULL));
}

/*
 * The checker is asked to leave: accept no more (the listening socket
 * stays open in the master and the next checker, where connections not
 * yet accepted wait), and answer the clients already accepted: a reload
 * must not reset an lbdctl that connected just before it.  Returns 0
 * when nothing is left to answer, else 1, and <done> runs once the last
 * client is gone (each is bounded by LBD_CTL_TIMEOUT).
 */
int
control_drain(void (*done)(void))
{
	if (cloop == NULL)
		return (0);
	if (lio.active) {
		ev_io_del(cloop, &lio);
		close(lio.fd);
	}
	if (nclients == 0)
		return (0);
	drained = done;
	return (1);
}

/* Stop serving: the checker is leaving. */
void
control_stop(void)
{
	struct ctl_client	*cl;

	if (cloop == NULL)
		return;
	while ((cl = TAILQ_FIRST(&clients)) != NULL)
		client_close(cl);
	drained = NULL;
	if (lio.active) {
		ev_io_del(cloop, &lio);
		close(lio.fd);
	}
	cloop = NULL;
}
