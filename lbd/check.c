/*
 * check.c: the checker process.
 *
 * One process for the whole daemon, never one per worker: it checks
 * every server of every backend that has a "check", each every interval
 * (the first ones spread over the interval), each within its timeout,
 * all at once on one event loop.  What it finds goes to the servers'
 * shared blocks (common/upstream.h), where the workers read it:
 *
 *	rise, fall	successes and failures in a row
 *	health		UP_HEALTHY after <rise> successes in a row,
 *			UP_DOWN after <fall> failures in a row
 *	last_check, check_code, check_desc
 *
 * A server never checked before goes by its first result at once, as
 * HAProxy does; after that only a run of <rise> or <fall> changes it.
 * The blocks survive reloads, so a new checker generation goes on from
 * the state it finds: a DOWN server stays DOWN until it rises.  Servers
 * in maintenance are not checked; leaving maintenance forgets the old
 * results (control.c), so the next check decides again.  One check of a
 * server runs at a time, in all generations, one an interval: a check
 * claims the block (check_until, until its timeout) and records its
 * start (check_started), both on the monotonic clock, which every
 * process shares and no step of the wall clock moves; a new checker that finds the block claimed
 * waits until that check is over and schedules its own an interval
 * after that one's start, rather than count a second result for the
 * same interval.
 *
 * A check (struct check_run) connects, does the TLS handshake when the
 * check asks for TLS, sends what its type put in <out>, and reads into
 * <in> (at most LBD_CHECK_MAXRESP bytes) until its type's judge gives a
 * verdict, the server closes, or the timeout fires.  The types:
 * check_tcp.c, check_http.c, check_tls.c, check_send.c.
 *
 * The same process serves the control socket (control.c).
 */
#include <sys/types.h>
#include <sys/param.h>
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
#include "proxyproto.h"

#define CHECK_MAXRUN	1000000		/* rise, fall: counted up to this */

enum cr_state {
	CR_CONNECT = 0,
	CR_HANDSHAKE,
	CR_SEND,
	CR_READ
};

/* A checked server: its schedule and the check in flight. */
struct check_srv {
	struct lbd_backend	*be;
	struct up_server	*srv;
	struct ev_timer		 next;
	uint64_t		 started;	/* ms: the last start */
	struct check_run	*run;		/* NULL between checks */
	int			 waited;	/* for another generation's */
	struct net_addr		 addr;		/* the server's, or check port */
};

static struct ev_loop		 loop;
static struct check_srv		*checks;
static int			 nchecks;
static int			 stopping;
static int			 ctl_busy;	/* draining: control clients left */

static void	 run_event(struct ev_io *, uint32_t);
static void	 run_step(struct check_run *);
static void	 run_end(struct check_run *);
static void	 check_start(struct ev_timer *);
static void	 drain_check(void);

int
checker_count(void *p)
{
	/* one, also without checks: it serves the control socket */
	return (1);
}

static int64_t
unix_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

/* Set the verdict of <run> with its description; returns <v>. */
enum check_verdict
check_verdict(struct check_run *run, enum check_verdict v, int code,
    const char *fmt, ...)
{
	va_list	ap;

	run->verdict = v;
	run->code = code;
	va_start(ap, fmt);
	vsnprintf(run->desc, sizeof(run->desc), fmt, ap);
	va_end(ap);
	return (v);
}

/* "connection refused": strerror(3), in the lower case of log lines. */
static void
errdesc(struct check_run *run, const char *what, int err)
{
	char	e[64];
	size_t	i;

	strlcpy(e, strerror(err), sizeof(e));
	for (i = 0; e[i] != '\0'; i++)
		if (e[i] >= 'A' && e[i] <= 'Z')
			e[i] += 'a' - 'A';
	if (what != NULL)
		check_verdict(run, CHECK_FAIL, 0, "%s: %s", what, e);
	else
		check_verdict(run, CHECK_FAIL, 0, "%s", e);
}

/*
 * <s> for a log line in <out> (<len> at least 8): printable ASCII as is,
 * the rest as \xHH, "..." when it does not all fit.
 */
const char *
check_printable(const char *s, char *out, size_t len)
{
	size_t	o = 0;

	for (; *s != '\0' && o + 5 < len; s++) {
		unsigned char	c = *s;

		if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
			out[o++] = c;
		else
			o += snprintf(out + o, len - o, "\\x%02x", c);
	}
	if (*s != '\0' && o + 4 <= len) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
	return (out);
}

static int
has_backups(struct lbd_backend *be)
{
	int	i;

	for (i = 0; i < be->pc.pool->nservers; i++)
		if (be->pc.pool->servers[i]->backup)
			return (1);
	return (0);
}

/*
 * Apply a check result to <srv>'s shared state: the runs of successes
 * and failures, the health, the counters; log changes of health.
 */
void
check_result(struct lbd_backend *be, struct up_server *srv, int ok, int code,
    const char *desc)
{
	struct up_shared	*sh = srv->sh;
	struct lbd_srvstats	*ss = be->srvstats != NULL ?
				    &be->srvstats[srv->index] : NULL;
	const struct lbd_check	*ck = &be->check;
	int			 first, health, n, change = 0;
	char			 left[64];

	if (atomic_load(&sh->admin) == UP_MAINT)
		return;		/* set to maintenance meanwhile */
	first = atomic_exchange(&sh->checked, 1) == 0;
	atomic_store(&sh->last_check, unix_ms());
	atomic_store(&sh->check_code, code);
	/* readers may see a mix of two results for a moment: display only */
	strlcpy(sh->check_desc, desc, sizeof(sh->check_desc));
	health = atomic_load(&sh->health);
	if (ok) {
		atomic_store(&sh->fall, 0);
		if ((n = atomic_fetch_add(&sh->rise, 1) + 1) >= CHECK_MAXRUN)
			atomic_store(&sh->rise, CHECK_MAXRUN);
		if (health == UP_DOWN && (first || n >= ck->rise)) {
			/* the checker saw it work: passive marks are stale */
			atomic_store(&sh->fails, 0);
			atomic_store(&sh->skip_until, 0);
			atomic_store(&sh->health, UP_HEALTHY);
			change = 1;
		}
	} else {
		if (ss != NULL)
			stats_inc(ss->checks_failed);
		atomic_store(&sh->rise, 0);
		if ((n = atomic_fetch_add(&sh->fall, 1) + 1) >= CHECK_MAXRUN)
			atomic_store(&sh->fall, CHECK_MAXRUN);
		if (health == UP_HEALTHY && (first || n >= ck->fall)) {
			atomic_store(&sh->health, UP_DOWN);
			change = 1;
		}
	}
	if (!change) {
		log_debug("server %s/%s check %s: %s (%d in a row)", be->name,
		    srv->name, ok ? "passed" : "failed", desc, n);
		return;
	}
	atomic_store(&sh->last_change, unix_ms());
	if (ss != NULL)
		stats_inc(ss->updowns);
	if (has_backups(be))
		snprintf(left, sizeof(left), "%d active and %d backup left",
		    lbd_nup(be, 0), lbd_nup(be, 1));
	else
		snprintf(left, sizeof(left), "%d active left", lbd_nup(be, 0));
	if (ok)
		log_info("server %s/%s%s is UP: %s, %s", be->name, srv->name,
		    srv->backup ? " (backup)" : "", desc, left);
	else {
		log_warnx("server %s/%s%s is DOWN: %s, %s", be->name,
		    srv->name, srv->backup ? " (backup)" : "", desc, left);
		if (lbd_nup(be, 0) == 0 && lbd_nup(be, 1) == 0)
			log_warnx("backend %s has no server available",
			    be->name);
	}
}

static void
run_free(struct check_run *run)
{
	int64_t	until = run->until;

	/* unless a checker took over after the mark ran out */
	if (until != 0)
		atomic_compare_exchange_strong(&run->srv->sh->check_until,
		    &until, 0);
	ev_timer_del(run->loop, &run->timer);
	sock_close(run->loop, &run->sock);
	buf_free(&run->out);
	buf_free(&run->in);
	free(run);
}

/* The verdict is in: apply it, schedule the next check. */
static void
run_end(struct check_run *run)
{
	struct check_srv	*cs = run->cs;

	if (run->verdict == CHECK_MORE)
		check_verdict(run, CHECK_FAIL, run->code, "no verdict");
	check_result(run->be, run->srv, run->verdict == CHECK_OK, run->code,
	    run->desc);
	cs->run = NULL;
	ev_timer_at(&loop, &cs->next, MAX(cs->started + run->ck->interval,
	    ev_now(&loop) + 1));
	run_free(run);
	if (stopping)
		drain_check();
}

static void
run_timeout(struct ev_timer *t)
{
	struct check_run	*run = t->arg;

	check_verdict(run, CHECK_FAIL, 0, "timeout after %u ms%s",
	    run->ck->timeout, run->state == CR_CONNECT ? " connecting" :
	    run->state == CR_HANDSHAKE ? " in the TLS handshake" :
	    run->state == CR_SEND ? " sending" : "");
	run_end(run);
}

static void
run_event(struct ev_io *io, uint32_t ev)
{
	struct check_run	*run = io->arg;

	sock_events(&run->sock, ev);
	run_step(run);
}

/* Connected, and through the handshake: what the type does next. */
static int
run_connected(struct check_run *run)
{
	if (run->connected != NULL &&
	    run->connected(run) != CHECK_MORE) {
		run_end(run);
		return (-1);
	}
	run->state = CR_SEND;
	return (0);
}

/*
 * Move <run> as far as its socket allows.  Every path either waits for
 * the next event or ends the run (and frees it).
 */
static void
run_step(struct check_run *run)
{
	socklen_t		 sl = sizeof(int);
	struct sockaddr_storage	 ss;
	enum check_verdict	 v;
	ssize_t			 n;
	int			 err = 0;

	switch (run->state) {
	case CR_CONNECT:
		if (getsockopt(run->sock.fd, SOL_SOCKET, SO_ERROR, &err,
		    &sl) == -1)
			err = errno;
		if (err != 0) {
			errdesc(run, NULL, err);
			run_end(run);
			return;
		}
		sl = sizeof(ss);
		if (getpeername(run->sock.fd, (struct sockaddr *)&ss,
		    &sl) == -1) {
			if (errno == ENOTCONN)
				return;		/* still connecting */
			errdesc(run, NULL, errno);
			run_end(run);
			return;
		}
		/*
		 * A backend that sends servers a PROXY header sends one on
		 * its checks too (as HAProxy does), before any TLS: LOCAL
		 * (v2) or UNKNOWN (v1), what the protocol has for checks.
		 * It fits a new connection's socket buffer whole.
		 */
		if (run->be->pc.proxy_protocol != 0) {
			struct buf		pp;
			struct sockaddr		none = { .sa_family = AF_UNSPEC };

			buf_init(&pp, 64);
			proxyproto_write(&pp, run->be->pc.proxy_protocol,
			    &none, &none);
			n = send(run->sock.fd, buf_head(&pp), buf_used(&pp),
			    MSG_NOSIGNAL);
			err = n == (ssize_t)buf_used(&pp) ? 0 : n == -1 ?
			    errno : EAGAIN;
			buf_free(&pp);
			if (err != 0) {
				errdesc(run, "send", err);
				run_end(run);
				return;
			}
		}
		if (run->sock.ssl != NULL) {
			run->state = CR_HANDSHAKE;
			run->sock.flags |= SOCK_TLS_HS;
		} else if (run_connected(run) == -1)
			return;
		run_step(run);
		return;
	case CR_HANDSHAKE:
		switch (sock_handshake(&run->sock)) {
		case 0:
			return;
		case -1:
			check_verdict(run, CHECK_FAIL, 0, "TLS handshake "
			    "failed");
			run_end(run);
			return;
		}
		if (run_connected(run) == -1)
			return;
		/* FALLTHROUGH */
	case CR_SEND:
		while (buf_used(&run->out) > 0) {
			n = sock_write(&run->sock, buf_head(&run->out),
			    buf_used(&run->out));
			if (n == -1 && errno == EAGAIN)
				return;
			if (n <= 0) {
				errdesc(run, "send", n == 0 || errno == 0 ?
				    EPIPE : errno);
				run_end(run);
				return;
			}
			buf_consume(&run->out, n);
		}
		run->state = CR_READ;
		if (run->judge == NULL) {
			if (run->verdict == CHECK_MORE)
				check_verdict(run, CHECK_OK, 0, "sent");
			run_end(run);
			return;
		}
		/* FALLTHROUGH */
	case CR_READ:
		for (;;) {
			size_t	room = buf_room(&run->in);

			if (room == 0) {
				/* as much as we read: judge it as it is */
				if ((v = run->judge(run, 1)) == CHECK_MORE)
					check_verdict(run, CHECK_FAIL,
					    run->code, "no answer within %d "
					    "bytes", LBD_CHECK_MAXRESP);
				run_end(run);
				return;
			}
			if (room > 4096)
				room = 4096;
			if (buf_reserve(&run->in, room) == -1) {
				errdesc(run, "read", errno);
				run_end(run);
				return;
			}
			n = sock_read(&run->sock, buf_tail(&run->in), room);
			if (n == -1 && errno == EAGAIN)
				return;
			if (n == -1) {
				errdesc(run, "read", errno ? errno : EIO);
				run_end(run);
				return;
			}
			run->in.len += n;
			if ((v = run->judge(run, n == 0)) != CHECK_MORE) {
				run_end(run);
				return;
			}
			if (n == 0) {
				check_verdict(run, CHECK_FAIL, run->code,
				    "server closed the connection");
				run_end(run);
				return;
			}
		}
	default:
		return;
	}
}

/* The timer of <cs>: time for its next check. */
static void
check_start(struct ev_timer *t)
{
	struct check_srv	*cs = t->arg;
	struct check_run	*run;
	struct up_shared	*sh = cs->srv->sh;
	const struct lbd_check	*ck = &cs->be->check;
	int64_t			 now, until;
	int			 fd, rv = -1;

	if (cs->run != NULL || stopping)
		return;		/* check_now() while one runs */
	/*
	 * A check of this server in flight in another checker (the one a
	 * reload retires): wait until it is over, then go by its start.
	 * The waits are bounded (by this conf's timeout and interval):
	 * the other generation's may have been longer.
	 */
	now = (int64_t)ev_monotonic_ms();	/* the marks' clock */
	if ((until = atomic_load(&sh->check_until)) > now) {
		cs->waited = 1;
		ev_timer_add(&loop, &cs->next, (uint64_t)MIN(until - now,
		    (int64_t)ck->timeout + 2));
		return;
	}
	if (cs->waited) {
		int64_t	due = atomic_load(&sh->check_started) + ck->interval;

		cs->waited = 0;
		if (due > now) {
			ev_timer_add(&loop, &cs->next, (uint64_t)MIN(due - now,
			    (int64_t)ck->interval));
			return;
		}
	}
	cs->started = ev_now(&loop);
	if (atomic_load(&sh->admin) == UP_MAINT) {
		ev_timer_add(&loop, &cs->next, ck->interval);
		return;
	}
	/* the mark: its timeout, and one more interval of the loop's clock */
	if (!atomic_compare_exchange_strong(&sh->check_until, &until,
	    now + ck->timeout + 2)) {
		cs->waited = 1;		/* the other checker took it */
		ev_timer_add(&loop, &cs->next, 1);
		return;
	}
	atomic_store(&sh->check_started, now);
	if ((run = calloc(1, sizeof(*run))) == NULL) {
		log_warn("%s: %s/%s", __func__, cs->be->name, cs->srv->name);
		until = now + ck->timeout + 2;
		atomic_compare_exchange_strong(&sh->check_until, &until, 0);
		ev_timer_add(&loop, &cs->next, ck->interval);
		return;
	}
	run->cs = cs;
	run->be = cs->be;
	run->srv = cs->srv;
	run->ck = ck;
	run->loop = &loop;
	buf_init(&run->out, LBD_CHECK_MAXRESP);
	buf_init(&run->in, LBD_CHECK_MAXRESP);
	ev_timer_init(&run->timer, run_timeout, run);
	sock_init(&run->sock, -1);
	cs->run = run;
	run->until = now + ck->timeout + 2;

	if ((fd = net_connect(&cs->addr)) == -1) {
		errdesc(run, NULL, errno);
		run_end(run);
		return;
	}
	sock_init(&run->sock, fd);
	switch (ck->type) {
	case CHECK_TCP:
		rv = check_tcp_start(run);
		break;
	case CHECK_HTTP:
		rv = check_http_start(run);
		break;
	case CHECK_TLS:
		rv = check_tls_start(run);
		break;
	case CHECK_SEND:
		rv = check_send_start(run);
		break;
	case CHECK_NONE:
		break;
	}
	if (rv == 0 && sock_watch_connect(&loop, &run->sock, run_event,
	    run) == -1) {
		errdesc(run, "epoll", errno);
		rv = -1;
	}
	if (rv == -1) {
		if (run->verdict == CHECK_MORE)
			check_verdict(run, CHECK_FAIL, 0, "cannot start the "
			    "check");
		run_end(run);
		return;
	}
	run->state = CR_CONNECT;
	ev_timer_add(&loop, &run->timer, ck->timeout);
}

/* Check <srv> of <be> now (control.c: it left maintenance). */
void
check_now(struct lbd_backend *be, struct up_server *srv)
{
	int	i;

	for (i = 0; i < nchecks; i++)
		if (checks[i].srv == srv && checks[i].run == NULL) {
			ev_timer_at(&loop, &checks[i].next, ev_now(&loop));
			return;
		}
}

/*
 * Draining: the loop ends once the control clients have their answers
 * and the checks in flight their results (each within its timeout).  A
 * check dropped at a reload left the server's last check where it was,
 * and the next checker found it overdue again.
 */
static void
drain_check(void)
{
	int	i;

	if (ctl_busy)
		return;
	for (i = 0; i < nchecks; i++)
		if (checks[i].run != NULL)
			return;
	ev_break(&loop);
}

static void
drained(void)
{
	ctl_busy = 0;
	drain_check();
}

/*
 * SIGTERM: no new check starts; the control clients already accepted
 * get their answer and the checks started their result, then the loop
 * ends (after that round of events: objects are freed after it, not
 * while other events of the round may still point at them).
 */
static void
drain(struct proc_worker *w)
{
	stopping = 1;
	ctl_busy = control_drain(drained);
	drain_check();
}

static void
checker_free(void)
{
	int	i;

	for (i = 0; i < nchecks; i++) {
		ev_timer_del(&loop, &checks[i].next);
		if (checks[i].run != NULL) {
			run_free(checks[i].run);
			checks[i].run = NULL;
		}
	}
	control_stop();
	check_tls_free();
	free(checks);
	checks = NULL;
	nchecks = 0;
}

int
checker_main(struct proc_worker *w)
{
	struct lbd_backend	*be;
	int64_t			 now;
	int			 i, n = 0, k;

	lconf = w->conf;
	if (ev_init(&loop) == -1)
		fatal("epoll");
	TAILQ_FOREACH(be, &lconf->backends, entry)
		if (be->check.type != CHECK_NONE)
			n += be->pc.pool->nservers;
	if (n > 0 && (checks = calloc(n, sizeof(*checks))) == NULL)
		fatal("%s", __func__);
	TAILQ_FOREACH(be, &lconf->backends, entry) {
		if (be->check.type == CHECK_NONE)
			continue;
		for (i = 0; i < be->pc.pool->nservers; i++) {
			struct check_srv	*cs = &checks[nchecks++];

			cs->be = be;
			cs->srv = be->pc.pool->servers[i];
			cs->addr = cs->srv->addr;
			if (be->check.port != 0)
				net_addr_set_port(&cs->addr, be->check.port);
			ev_timer_init(&cs->next, check_start, cs);
		}
	}
	/*
	 * The first checks: when each server is due by its last check (in
	 * shared memory, kept across reloads: a checker of a reload every
	 * 30 s must not put a 1 min check off for ever), and those overdue
	 * or never checked spread over the interval, not all at once: the
	 * k-th of n after k/n of an interval, or at the k-th of n slots of
	 * the interval by the clock if that comes first.  The slot is the
	 * same in every generation: counted from each checker's start
	 * alone, reloads closer than k/n of an interval would put the k-th
	 * server off for ever.
	 */
	now = unix_ms();
	for (k = 0; k < nchecks; k++) {
		int64_t		iv = checks[k].be->check.interval;
		struct up_shared *sh = checks[k].srv->sh;
		int64_t		last = atomic_load(&sh->check_started);
		int64_t		due;

		/* by the last check's start, in whichever generation (the
		 * monotonic clock: a step of the wall clock moves nothing) */
		if (last > 0)
			due = last + iv - (int64_t)ev_monotonic_ms();
		else if ((last = atomic_load(&sh->last_check)) > 0)
			due = last + iv - now;
		else
			due = 0;

		if (due <= 0)
			due = MIN(iv * k / nchecks,
			    (iv * k / nchecks - now % iv + iv) % iv);
		ev_timer_add(&loop, &checks[k].next,
		    (uint64_t)(due < iv ? due : iv));
	}
	if (lconf->control_index >= 0 &&
	    control_init(&loop, lconf,
	    w->ps->listeners[lconf->control_index].fd) == -1)
		fatal("control socket");
	w->drain = drain;
	if (proc_worker_watch(w, &loop) == -1)
		fatal("proc_worker_watch");
	log_debug("checking %d server%s", nchecks, nchecks == 1 ? "" : "s");
	ev_run(&loop);
	checker_free();
	ev_free(&loop);
	return (0);
}
