/*
 * server.c: dbrepd's client workers.
 *
 * Each worker accepts on the client listeners (Unix and TCP, shared with
 * EPOLLEXCLUSIVE) and on the metrics listeners, and serves its
 * connections from one event loop.  A request runs to completion on the
 * worker's connections to the database (capture.c); what may take long
 * is a wait, and a wait never blocks the loop:
 *
 *	a read with a minimum LSN the node has not reached keeps its frame
 *	    and runs again when the replication process rings the worker's
 *	    doorbell (board.c), or fails when its time is up;
 *	a write is committed, and with group commit (dbrepd.conf(5)
 *	    group-commit) its answer held until the end of the loop's
 *	    turn, where one flush of the write-ahead log makes the turn's
 *	    commits durable (group_sync); only then do they count in the
 *	    board's LSN, go to the replicas and get their answers;
 *	a write in quorum mode is committed, and its answer held until the
 *	    quorum's LSN passes it, or the quorum timeout decides: fail
 *	    (the client gets "indeterminate") or degrade (it gets its
 *	    answer, and the primary stops waiting, loudly);
 *	a promotion waits for the replication process to finish it.
 *
 * Frames of one connection are answered in order; a waiting request
 * holds the ones behind it.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "event.h"
#include "log.h"
#include "lshare.h"
#include "proc.h"
#include "stats.h"
#include "dbrepd.h"

#define C_AUTH		1	/* TCP: waiting for AUTH */
#define C_READY		2
#define C_WAIT		3	/* a request waits: see wait */
#define C_SNAP		4	/* sending a snapshot */

#define W_LSN		1
#define W_QUORUM	2
#define W_PROMOTE	3
#define W_SYNC		4	/* a commit, for group_sync() */

struct conn {
	struct lshare		*sh;		/* the listener it came from */
	struct sock		 sk;		/* plain or TLS, and its ev_io */
	struct ev_timer		 timer;
	int			 state;
	int			 tcp;
	int			 dead;
	int			 wait;
	int			 closing;	/* lingers: see conn_linger */
	uint64_t		 want;
	uint64_t		 t0;		/* us, the request's start */
	uint64_t		 tw;		/* us, its quorum wait's */
	uint64_t		 deadline;	/* ms, of a minimum-LSN wait */
	uint32_t		 seq;		/* promotion asked */
	uint8_t			 nonce[DBREP_NONCELEN];
	struct buf		 in;
	struct buf		 out;
	struct buf		 held;		/* a commit's answer, held until
						   durable (and held by the
						   quorum) */
	int			 snapfd;
	uint64_t		 snapoff;
	uint64_t		 snapsize;
	EVP_MD_CTX		*md;
	char			 peer[NET_ADDRSTRLEN];
	TAILQ_ENTRY(conn)	 entry;
	TAILQ_ENTRY(conn)	 sentry;	/* in syncq */
};

static struct ev_loop		 loop;
static struct proc_worker	*self;
static struct dbrepd_conf	*conf;
static sqlite3			*rdb, *wdb;
static struct capture		*rcap, *wcap;
static int			 bellfd = -1;
static struct ev_io		 bellio;
static struct lshare_set	 ls;		/* the client listeners */
/* a client listener: its TLS context (NULL: plain), its sharing, and how
 * many of its connections this worker holds */
static struct lctx {
	void		*tls;
	struct lshare	*sh;
	int		 mine;
} lctx[PROC_MAXLISTENERS];
static TAILQ_HEAD(, conn)	 conns = TAILQ_HEAD_INITIALIZER(conns);
static TAILQ_HEAD(, conn)	 graveyard = TAILQ_HEAD_INITIALIZER(graveyard);
/* commits answered after the next flush of the log (group_sync) */
static TAILQ_HEAD(, conn)	 syncq = TAILQ_HEAD_INITIALIZER(syncq);
static int			 nconns;
static uint64_t			 sync_want;	/* commits to flush, up to */

static void	conn_close(struct conn *);
static void	conn_flush(struct conn *);
static void	conn_process(struct conn *);
static void	waiters_update(void);
static void	durable(struct conn *);
static int	group_sync(void);
static void	reply_unflushed(struct conn *, uint64_t);

static uint64_t
mono(void)
{
	return (ev_now(&loop));
}

/*
 * May the TCP peer <sa> use a listener of kind <kind> (LISTEN_*)?  The
 * replication and metrics listeners have their own lists when the conf
 * gives them, else the client's (allow, deny); Unix sockets always may
 * (their file's mode guards them).  Called before anything is read or
 * sent; refusals are counted, and logged at most once a second.
 */
int
acl_pass(const struct dbrepd_conf *dc, void *kind, const struct sockaddr *sa)
{
	static uint64_t		 last;
	static unsigned int	 more;
	const struct net_acl	*acl = &dc->acl;
	const char		*what = "client", *list = "allow";
	char			 ip[NET_ADDRSTRLEN];
	uint64_t		 now;

	if (sa->sa_family == AF_UNIX)
		return (1);
	if (kind == LISTEN_REPL) {
		what = "replication";
		if (dc->repl_acl.nrules > 0) {
			acl = &dc->repl_acl;
			list = "replication-allow";
		}
	} else if (kind == LISTEN_METRICS) {
		what = "metrics";
		if (dc->metrics_acl.nrules > 0) {
			acl = &dc->metrics_acl;
			list = "metrics-allow";
		}
	}
	if (net_acl_allows(acl, sa))
		return (1);
	stats_inc(m.refused);
	now = ev_monotonic_ms();
	if (now - last >= 1000) {
		if (more > 0)
			log_warnx("%u more connections refused by the allow "
			    "lists", more);
		log_warnx("%s connection from %s refused by the %s list",
		    what, net_sockaddr_ip(sa, ip, sizeof(ip)), list);
		last = now;
		more = 0;
	} else
		more++;
	return (0);
}

static void
reply_error(struct conn *c, const struct dbrep_error *e)
{
	char	primary[NET_ADDRSTRLEN] = "";

	if (e->code == SQLITE_READONLY) {
		board_get(primary, sizeof(primary), board->primary_client);
		/* a primary being fenced does not name itself */
		if (strcmp(primary, conf->advertise) == 0)
			primary[0] = '\0';
	}
	stats_inc(m.query_errors);
	if (frame_error(&c->out, e->code, e->extended, e->msg, primary,
	    e->lsn) == -1)
		c->dead = 1;
}

static void
reply_errorf(struct conn *c, int code, const char *fmt, ...)
    __printflike(3, 4);

static void
reply_errorf(struct conn *c, int code, const char *fmt, ...)
{
	struct dbrep_error	e;
	va_list			ap;

	memset(&e, 0, sizeof(e));
	e.code = e.extended = code;
	va_start(ap, fmt);
	vsnprintf(e.msg, sizeof(e.msg), fmt, ap);
	va_end(ap);
	reply_error(c, &e);
}

static int
open_dbs(void)
{
	char	err[512];

	if (rdb == NULL) {
		rdb = db_open(conf, DB_READER, err, sizeof(err));
		if (rdb == NULL) {
			log_warnx("%s", err);
			return (-1);
		}
		if ((rcap = capture_new(rdb, conf)) == NULL)
			return (-1);
	}
	if (wdb == NULL && atomic_load(&board->role) == ROLE_PRIMARY) {
		wdb = db_open(conf, DB_WRITER, err, sizeof(err));
		if (wdb == NULL) {
			log_warnx("%s", err);
			return (-1);
		}
		if ((wcap = capture_new(wdb, conf)) == NULL)
			return (-1);
	}
	return (0);
}

static void
wait_begin(struct conn *c, int kind, uint64_t want, uint64_t ms)
{
	c->state = C_WAIT;
	c->wait = kind;
	c->want = want;
	ev_timer_add(&loop, &c->timer, ms);
	waiters_update();
}

/* Is what <c> waits for there? */
static int
wait_done(struct conn *c)
{
	switch (c->wait) {
	case W_LSN:
		return (atomic_load(&board->lsn) >= c->want);
	case W_QUORUM:
		return (atomic_load(&board->quorum_lsn) >= c->want ||
		    atomic_load(&board->degraded));
	case W_PROMOTE:
		return (atomic_load(&board->promote_done) == c->seq);
	case W_SYNC:
		return (0);	/* group_sync() answers it */
	}
	return (1);
}

static void
wait_end(struct conn *c)
{
	c->state = C_READY;
	c->wait = 0;
	ev_timer_del(&loop, &c->timer);
	ev_timer_add(&loop, &c->timer, conf->idle_timeout);
}

/* Tell the board what this worker waits for (board.c). */
static void
waiters_update(void)
{
	struct conn	*c;
	uint64_t	 lsn = 0, q = 0;
	int		 any = 0;

	TAILQ_FOREACH(c, &conns, entry) {
		if (c->state != C_WAIT)
			continue;
		if (c->wait == W_LSN && (lsn == 0 || c->want < lsn))
			lsn = c->want;
		else if (c->wait == W_QUORUM && (q == 0 || c->want < q))
			q = c->want;
		else if (c->wait == W_PROMOTE)
			any = 1;
	}
	board_wait(self->slot, lsn, q, any);
}

/*
 * Commits up to <lsn> are durable: the board shows them, the replication
 * process ships them, the waiters for them wake.
 */
static void
publish(uint64_t lsn)
{
	board_lsn_max(lsn);
	if (atomic_load(&board->ring_sender))
		bell_ring(atomic_load(&board->repl_pid));
	board_wake();
}

/* The held answer goes out. */
static void
held_release(struct conn *c)
{
	if (c->tw != 0)
		stats_observe(m.semisync_seconds,
		    (ev_monotonic_us() - c->tw) / 1e6);
	c->tw = 0;
	stats_observe(m.commit_seconds, (ev_monotonic_us() - c->t0) / 1e6);
	if (buf_append(&c->out, buf_head(&c->held), buf_used(&c->held)) ==
	    -1)
		c->dead = 1;
	buf_reset(&c->held);
}

/*
 * A client has seen a writable primary at <epoch>, later than ours: a
 * primary stops taking writes at once, and its replication process
 * fences it.  An epoch no cluster could have reached since ours (each
 * promotion adds one) is a client's mistake, not news: believed, it
 * would fence every node for good, and the next promotion's epoch
 * would wrap around to 0.
 */
static void
epoch_hint(uint64_t epoch)
{
	static uint64_t	said;
	uint64_t	cur = atomic_load(&board->fence_hint);
	uint64_t	ours = atomic_load(&board->epoch);

	if (epoch - ours > DBREP_EPOCH_LEAP) {
		if (said == 0 || mono() - said >= 60000) {
			said = mono();
			log_warnx("a client says it saw a primary of epoch "
			    "%llu, more than %d past this node's %llu: not "
			    "believed", (unsigned long long)epoch,
			    DBREP_EPOCH_LEAP, (unsigned long long)ours);
		}
		return;
	}

	while (cur < epoch && !atomic_compare_exchange_weak(
	    &board->fence_hint, &cur, epoch))
		;
	if (atomic_load(&board->role) == ROLE_PRIMARY &&
	    atomic_exchange(&board->writable, 0)) {
		log_warnx("a client saw a primary of epoch %llu (this node is "
		    "at %llu): no more writes here",
		    (unsigned long long)epoch,
		    (unsigned long long)atomic_load(&board->epoch));
		bell_ring(atomic_load(&board->repl_pid));
	}
}

/*
 * A read needs LSN <min> and the node is at <lsn>: it waits, for <waitms>
 * (0: max-lsn-wait) at most, or fails when that time is up.  Returns
 * do_query's 1 (answered) or 0 (waits).
 */
static int
lsn_wait(struct conn *c, uint64_t min, uint32_t waitms, uint64_t lsn)
{
	uint64_t	ms;

	ms = waitms ? waitms : conf->max_lsn_wait;
	if (ms > conf->max_lsn_wait)
		ms = conf->max_lsn_wait;
	if (c->deadline == 0)
		c->deadline = mono() + ms;
	if (mono() >= c->deadline) {
		reply_errorf(c, DBREP_ELSNWAIT, "node %s is at LSN %llu and "
		    "did not reach LSN %llu within %llu ms", conf->name,
		    (unsigned long long)lsn, (unsigned long long)min,
		    (unsigned long long)ms);
		return (1);
	}
	wait_begin(c, W_LSN, min, c->deadline - mono());
	return (0);
}

/* The query of the frame at the head of c->in. 1: consumed, 0: waits. */
static int
do_query(struct conn *c, const uint8_t *p, size_t n)
{
	struct dbrep_error	 err;
	struct qstmt		*q;
	struct fr		 r;
	struct buf		*dst;
	uint64_t		 min, lsn, bytes, cepoch = 0;
	uint32_t		 nq, waitms, flags;
	int			 rc, quorum, gc;

	memset(&err, 0, sizeof(err));
	fr_init(&r, p, n);
	flags = fr_u32(&r);
	min = fr_u64(&r);
	waitms = fr_u32(&r);
	if (flags & QUERY_EPOCH)
		cepoch = fr_u64(&r);
	if (cepoch > atomic_load(&board->epoch))
		epoch_hint(cepoch);
	if ((q = capture_parse(&r, &nq, &err)) == NULL) {
		reply_error(c, &err);
		c->dead = err.code == DBREP_EPROTO;
		return (1);
	}
	if (open_dbs() == -1) {
		free(q);
		reply_errorf(c, DBREP_EUNAVAIL, "database not available");
		return (1);
	}
	if (c->deadline == 0)
		c->t0 = ev_monotonic_us();
	rc = capture_classify(rcap, q, nq, &err);
	if (rc == -1 && err.code == SQLITE_ERROR &&
	    min > (lsn = atomic_load(&board->lsn))) {
		/*
		 * it may name a table or a column this node has not received
		 * yet: it is prepared again once the node reaches its minimum
		 * LSN
		 */
		free(q);
		return (lsn_wait(c, min, waitms, lsn));
	}
	if (rc == -1) {
		free(q);
		reply_error(c, &err);
		return (1);
	}
	if (rc == 1) {
		/* a read */
		rc = capture_read(rcap, q, nq, min, &c->out, &err, &lsn);
		free(q);
		if (rc == 0) {
			stats_inc(m.queries);
			return (1);
		}
		if (rc == -1) {
			reply_error(c, &err);
			return (1);
		}
		return (lsn_wait(c, min, waitms, lsn));
	}

	/* a write */
	if (atomic_load(&board->role) != ROLE_PRIMARY ||
	    !atomic_load(&board->writable) || wdb == NULL ||
	    atomic_load(&board->sync_failed)) {
		char	pc[NET_ADDRSTRLEN];

		free(q);
		board_get(pc, sizeof(pc), board->primary_client);
		err.code = err.extended = SQLITE_READONLY;
		if (atomic_load(&board->sync_failed))
			snprintf(err.msg, sizeof(err.msg), "node %s no longer "
			    "takes writes: flushing its log to the disk "
			    "failed", conf->name);
		else if (atomic_load(&board->role) == ROLE_PRIMARY)
			snprintf(err.msg, sizeof(err.msg), "node %s no longer "
			    "takes writes: a primary of a later epoch exists",
			    conf->name);
		else
			snprintf(err.msg, sizeof(err.msg), "node %s is a "
			    "read-only replica; the primary is %s", conf->name,
			    pc[0] ? pc : "unknown");
		reply_error(c, &err);
		return (1);
	}
	quorum = conf->quorum > 0;
	gc = GROUP_COMMIT(conf);
	dst = quorum || gc ? &c->held : &c->out;
	if (board_wlock() == -1) {
		free(q);
		reply_errorf(c, DBREP_EUNAVAIL, "writers' lock unavailable");
		return (1);
	}
	rc = capture_write(wcap, q, nq, atomic_load(&board->epoch), dst,
	    &err, &lsn, &bytes);
	if (rc >= 0 && bytes > 0)
		board_max(&board->committed, lsn);
	board_wunlock();
	free(q);
	if (rc == -1) {
		stats_inc(m.commit_errors);
		reply_error(c, &err);
		return (1);
	}
	if (bytes > 0) {
		atomic_fetch_add(&board->log_bytes, bytes);
		atomic_store(&board->lsn_ts, now_ms());
		stats_inc(m.commits);
		if (!gc)
			publish(lsn);
		else if (lsn > sync_want)
			sync_want = lsn;
	}
	if (rc == 1) {
		/*
		 * Committed, but its answer is too large: that error is its
		 * answer, held as any other until the commit is durable and,
		 * with a quorum, held by the replicas too.
		 */
		buf_reset(&c->held);
		stats_inc(m.query_errors);
		if (frame_error(&c->held, err.code, err.extended, err.msg, "",
		    err.lsn) == -1)
			c->dead = 1;
	} else
		stats_inc(m.queries);
	if (bytes == 0)
		held_release(c);	/* nothing to wait for */
	else if (gc) {
		/* after() answers it: no timer, no doorbell */
		c->state = C_WAIT;
		c->wait = W_SYNC;
		c->want = lsn;
		TAILQ_INSERT_TAIL(&syncq, c, sentry);
	} else {
		c->want = lsn;
		durable(c);
	}
	return (1);
}

/*
 * <c>'s commit (LSN c->want) is durable: its answer goes now, or once the
 * quorum holds it too.
 */
static void
durable(struct conn *c)
{
	if (conf->quorum == 0 || atomic_load(&board->degraded) ||
	    atomic_load(&board->quorum_lsn) >= c->want) {
		held_release(c);
		return;
	}
	stats_inc(m.semisync_waits);
	c->tw = ev_monotonic_us();
	wait_begin(c, W_QUORUM, c->want, conf->quorum_timeout);
}

/*
 * Group commit: the commits of this turn of the loop, this worker's and
 * any other's that came before, are made durable by one flush of the
 * write-ahead log, then published (the board's LSN, the replication
 * process, the waiters) and answered.  A commit is shipped to replicas
 * only once durable here.  Returns -1 when the flush failed.
 */
static int
group_sync(void)
{
	uint64_t	upto, want = sync_want;

	sync_want = 0;
	if (atomic_load(&board->sync_failed))
		return (-1);
	if (want == 0 || atomic_load(&board->synced) >= want)
		return (0);	/* another worker's flush covered them */
	upto = atomic_load(&board->committed);
	if (db_sync(wdb) == -1) {
		/*
		 * After a failed fdatasync the kernel may have dropped the
		 * pages and a later one may succeed regardless: nothing
		 * committed from now on can be said durable (PostgreSQL
		 * panics).  The node stops taking writes.
		 */
		if (!atomic_exchange(&board->sync_failed, 1)) {
			atomic_store(&board->writable, 0);
			log_warnx("flushing the write-ahead log failed: node %s "
			    "takes no more writes; check the disk, then "
			    "restart it", conf->name);
			board_note("log flush failed: writes stopped");
		}
		return (-1);
	}
	stats_inc(m.group_syncs);
	board_max(&board->synced, upto);
	publish(upto);
	return (0);
}

/* <c>'s commit at <lsn> was not flushed: it may be lost. */
static void
reply_unflushed(struct conn *c, uint64_t lsn)
{
	struct dbrep_error	e;

	buf_reset(&c->held);
	memset(&e, 0, sizeof(e));
	e.code = e.extended = DBREP_EINDETERMINATE;
	e.lsn = lsn;
	snprintf(e.msg, sizeof(e.msg), "committed on node %s at LSN %llu, "
	    "but the flush of its log to the disk failed: it may be lost if "
	    "the host fails", conf->name, (unsigned long long)lsn);
	reply_error(c, &e);
}

/* Answer the commits waiting for group_sync(). */
static void
sync_answer(int failed)
{
	TAILQ_HEAD(, conn)	 q = TAILQ_HEAD_INITIALIZER(q);
	struct conn		*c;

	/* what the flush covered; what they run next waits for the next */
	TAILQ_CONCAT(&q, &syncq, sentry);
	while ((c = TAILQ_FIRST(&q)) != NULL) {
		TAILQ_REMOVE(&q, c, sentry);
		wait_end(c);
		if (failed)
			reply_unflushed(c, c->want);
		else
			durable(c);
		conn_process(c);
		if (c->sk.io.active)
			conn_flush(c);
	}
}

static void
do_status(struct conn *c)
{
	struct buf	 b;
	struct fw	 w;
	char		 s1[NET_ADDRSTRLEN], s2[NET_ADDRSTRLEN], s3[256];
	uint64_t	 lsn = atomic_load(&board->lsn), now = now_ms();
	int		 role = atomic_load(&board->role), i;

	buf_init(&b, 1024 * 1024);
	buf_printf(&b, "node %s\n", conf->name);
	buf_printf(&b, "role %s\n", role == ROLE_PRIMARY ? "primary" :
	    "replica");
	buf_printf(&b, "writable %s\n", atomic_load(&board->writable) ?
	    "yes" : "no");
	buf_printf(&b, "epoch %llu\n",
	    (unsigned long long)atomic_load(&board->epoch));
	buf_printf(&b, "lsn %llu\n", (unsigned long long)lsn);
	buf_printf(&b, "log first %llu bytes %llu\n",
	    (unsigned long long)atomic_load(&board->log_first),
	    (unsigned long long)atomic_load(&board->log_bytes));
	if (conf->quorum == 0)
		buf_printf(&b, "durability async\n");
	else
		buf_printf(&b, "durability quorum %d timeout %llu on-timeout "
		    "%s degraded %s\n", conf->quorum,
		    (unsigned long long)conf->quorum_timeout,
		    conf->degrade ? "degrade" : "fail",
		    atomic_load(&board->degraded) ? "yes" : "no");
	buf_printf(&b, "quorum_lsn %llu\n",
	    (unsigned long long)atomic_load(&board->quorum_lsn));
	if (!conf->failover)
		buf_printf(&b, "failover manual\n");
	else {
		uint64_t	 known = atomic_load(&board->epoch);
		const char	*why;

		if (atomic_load(&board->promised) > known)
			known = atomic_load(&board->promised);
		buf_printf(&b, "failover auto after %llu ms%s\n",
		    (unsigned long long)conf->failover_after,
		    conf->failover_alone ? " alone" : "");
		if (role != ROLE_PRIMARY) {
			why = repl_eligible(conf, known);
			buf_printf(&b, "takeover %s%s\n", why ? "no: " : "yes",
			    why ? why : "");
		}
	}
	if (role == ROLE_PRIMARY) {
		for (i = 0; i < DBREP_MAXREPLICAS; i++) {
			struct board_replica	*r = &board->replicas[i];
			uint64_t		 acked;

			if (!atomic_load(&r->used))
				continue;
			acked = atomic_load(&r->acked);
			board_get(s1, sizeof(s1), r->name);
			board_get(s2, sizeof(s2), r->addr);
			buf_printf(&b, "replica %s addr %s connected %s "
			    "acked %llu lag_records %llu lag_ms %llu "
			    "snapshot %s seen_ms_ago %llu\n", s1, s2,
			    atomic_load(&r->streaming) ? "yes" : "no",
			    (unsigned long long)acked,
			    (unsigned long long)(lsn > acked ? lsn - acked : 0),
			    (unsigned long long)atomic_load(&r->lag_ms),
			    atomic_load(&r->snapshot) ? "yes" : "no",
			    (unsigned long long)(now - atomic_load(&r->seen)));
		}
	} else {
		uint64_t	plsn = atomic_load(&board->primary_lsn);

		board_get(s1, sizeof(s1), board->follow);
		board_get(s2, sizeof(s2), board->primary_client);
		board_get(s3, sizeof(s3), board->primary_name);
		buf_printf(&b, "primary %s replication %s client %s\n",
		    s3[0] ? s3 : "-", s1[0] ? s1 : "-", s2[0] ? s2 : "-");
		buf_printf(&b, "connected %s\n",
		    atomic_load(&board->connected) ? "yes" : "no");
		buf_printf(&b, "primary_lsn %llu\n", (unsigned long long)plsn);
		buf_printf(&b, "lag_records %llu\n",
		    (unsigned long long)(plsn > lsn ? plsn - lsn : 0));
		buf_printf(&b, "lag_ms %llu\n",
		    (unsigned long long)atomic_load(&board->lag_ms));
	}
	buf_printf(&b, "snapshots_installed %llu\n",
	    (unsigned long long)atomic_load(&board->snapshots));
	board_get(s3, sizeof(s3), board->note);
	if (s3[0] != '\0')
		buf_printf(&b, "note %s\n", s3);
	fw_begin(&w, &c->out, MSG_ADMIN_OK);
	fw_bytes(&w, buf_head(&b), buf_used(&b));
	if (fw_end(&w) == -1)
		c->dead = 1;
	buf_free(&b);
}

static void
admin_ok(struct conn *c, const char *text)
{
	struct fw	w;

	fw_begin(&w, &c->out, MSG_ADMIN_OK);
	fw_str(&w, text);
	if (fw_end(&w) == -1)
		c->dead = 1;
}

static void
promote_reply(struct conn *c)
{
	char	msg[sizeof(board->admin_msg)];

	board_get(msg, sizeof(msg), board->admin_msg);
	if (atomic_load(&board->promote_rc) == 0)
		admin_ok(c, msg);
	else
		reply_errorf(c, SQLITE_ERROR, "%s", msg);
}

static void
do_promote(struct conn *c)
{
	if (atomic_load(&board->role) == ROLE_PRIMARY &&
	    atomic_load(&board->writable)) {
		reply_errorf(c, SQLITE_ERROR, "node %s is the primary "
		    "already (epoch %llu)", conf->name,
		    (unsigned long long)atomic_load(&board->epoch));
		return;
	}
	c->seq = atomic_fetch_add(&board->promote_req, 1) + 1;
	bell_ring(atomic_load(&board->repl_pid));
	wait_begin(c, W_PROMOTE, 0, DBREP_PROMOTE_TIMEOUT);
	if (wait_done(c)) {
		wait_end(c);
		promote_reply(c);
		waiters_update();
	}
}

static void
do_repoint(struct conn *c, const uint8_t *p, size_t n)
{
	struct net_addr	 a;
	struct fr	 r;
	char		 addr[NET_ADDRSTRLEN], err[256];

	fr_init(&r, p, n);
	if (fr_strcpy(&r, addr, sizeof(addr)) == -1 || !fr_done(&r)) {
		reply_errorf(c, DBREP_EPROTO, "malformed repoint");
		c->dead = 1;
		return;
	}
	if (net_addr_parse(addr, &a, err, sizeof(err)) == -1) {
		reply_errorf(c, DBREP_EUSAGE, "%s: %s", addr, err);
		return;
	}
	if (atomic_load(&board->role) == ROLE_PRIMARY &&
	    atomic_load(&board->writable)) {
		reply_errorf(c, DBREP_EUSAGE, "node %s is a writable primary: "
		    "it follows another node only once it learns of a later "
		    "epoch", conf->name);
		return;
	}
	board_set(board->follow, sizeof(board->follow), a.text);
	atomic_fetch_add(&board->repoint_req, 1);
	bell_ring(atomic_load(&board->repl_pid));
	snprintf(err, sizeof(err), "node %s now replicates from %s",
	    conf->name, a.text);
	admin_ok(c, err);
}

static void
snap_fill(struct conn *c)
{
	struct fw	w;
	uint8_t		digest[DBREP_HASHLEN];
	unsigned int	dl = DBREP_HASHLEN;
	char		chunk[DBREP_SNAPCHUNK];
	ssize_t		n;

	while (c->state == C_SNAP && buf_used(&c->out) < DBREP_SNAPCHUNK) {
		if (c->snapoff < c->snapsize) {
			n = pread(c->snapfd, chunk, sizeof(chunk),
			    (off_t)c->snapoff);
			if (n <= 0) {
				log_warn("snapshot read");
				c->dead = 1;
				return;
			}
			EVP_DigestUpdate(c->md, chunk, n);
			fw_begin(&w, &c->out, MSG_SNAP_DATA);
			fw_bytes(&w, chunk, n);
			if (fw_end(&w) == -1) {
				c->dead = 1;
				return;
			}
			c->snapoff += n;
			stats_add(m.snap_bytes, n);
			continue;
		}
		EVP_DigestFinal_ex(c->md, digest, &dl);
		fw_begin(&w, &c->out, MSG_SNAP_END);
		fw_bytes(&w, digest, DBREP_HASHLEN);
		if (fw_end(&w) == -1)
			c->dead = 1;
		close(c->snapfd);
		c->snapfd = -1;
		EVP_MD_CTX_free(c->md);
		c->md = NULL;
		c->state = C_READY;
		stats_inc(m.snap_sent);
	}
}

static void
do_snapshot(struct conn *c)
{
	struct meta	mt;
	struct fw	w;
	char		path[PATH_MAX];

	if (snap_make(conf, &mt, &c->snapsize, path, sizeof(path)) == -1) {
		reply_errorf(c, SQLITE_ERROR, "snapshot: %s", path);
		return;
	}
	c->snapfd = open(path, O_RDONLY | O_CLOEXEC);
	unlink(path);
	if (c->snapfd == -1 || (c->md = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(c->md, EVP_sha256(), NULL) != 1) {
		reply_errorf(c, SQLITE_ERROR, "snapshot: %s", strerror(errno));
		return;
	}
	log_info("snapshot at LSN %llu (%llu bytes) for %s",
	    (unsigned long long)mt.lsn, (unsigned long long)c->snapsize,
	    c->peer);
	c->snapoff = 0;
	fw_begin(&w, &c->out, MSG_SNAP_BEGIN);
	fw_u64(&w, mt.lsn);
	fw_u64(&w, mt.epoch);
	fw_bytes(&w, mt.hash, DBREP_HASHLEN);
	fw_u64(&w, c->snapsize);
	fw_u64(&w, UINT64_MAX);
	fw_str(&w, "requested");
	if (fw_end(&w) == -1) {
		c->dead = 1;
		return;
	}
	c->state = C_SNAP;
	snap_fill(c);
}

static void
do_auth(struct conn *c, const uint8_t *p, size_t n)
{
	uint8_t		cnonce[DBREP_NONCELEN], mac[DBREP_MACLEN];
	struct fr	r;
	struct fw	w;

	fr_init(&r, p, n);
	fr_fixed(&r, cnonce, sizeof(cnonce));
	fr_fixed(&r, mac, sizeof(mac));
	if (!fr_done(&r) || !auth_check(conf->secret, conf->secretlen,
	    "dbrep client", c->nonce, cnonce, mac)) {
		log_warnx("%s: authentication failed", c->peer);
		reply_errorf(c, DBREP_EAUTH, "authentication failed");
		c->dead = 1;
		return;
	}
	auth_mac(conf->secret, conf->secretlen, "dbrep server", cnonce,
	    c->nonce, mac);
	fw_begin(&w, &c->out, MSG_AUTH_OK);
	fw_bytes(&w, mac, sizeof(mac));
	if (fw_end(&w) == -1)
		c->dead = 1;
	c->state = C_READY;
}

/* Answer the complete frames in c->in, in order, until one waits. */
static void
conn_process(struct conn *c)
{
	const uint8_t	*p;
	size_t		 size;
	int		 type, rc;

	while (!c->dead && (c->state == C_READY || c->state == C_AUTH)) {
		/* before it has proven the secret, a client gets no room
		 * for more than the AUTH frame (a nonce and a MAC) */
		rc = frame_peek(buf_head(&c->in), buf_used(&c->in),
		    c->state == C_AUTH ? 256 : conf->max_request, &type, &size);
		if (rc == 0)
			break;
		if (rc == -1 && c->state == C_AUTH) {
			reply_errorf(c, DBREP_EAUTH, "authenticate first");
			c->dead = 1;
			break;
		}
		if (rc == -1) {
			reply_errorf(c, DBREP_ETOOBIG, "request larger than "
			    "max-request-size (%llu bytes)",
			    (unsigned long long)conf->max_request);
			c->dead = 1;
			break;
		}
		p = (const uint8_t *)buf_head(&c->in) + DBREP_HDRLEN;
		size -= DBREP_HDRLEN;
		if (c->closing) {
			/* not run: the client sends it again elsewhere */
			reply_errorf(c, DBREP_EUNAVAIL, "node %s: this worker "
			    "is leaving and closes the connection; the request "
			    "was not run", conf->name);
			c->dead = 1;
			break;
		}
		if (c->state == C_AUTH) {
			if (type == MSG_AUTH)
				do_auth(c, p, size);
			else {
				reply_errorf(c, DBREP_EAUTH, "authenticate "
				    "first");
				c->dead = 1;
			}
		} else {
			switch (type) {
			case MSG_QUERY:
				if (do_query(c, p, size) == 0)
					return;	/* the frame waits in c->in */
				c->deadline = 0;
				break;
			case MSG_STATUS:
				do_status(c);
				break;
			case MSG_PROMOTE:
				do_promote(c);
				break;
			case MSG_REPOINT:
				do_repoint(c, p, size);
				break;
			case MSG_SNAPSHOT:
				do_snapshot(c);
				break;
			default:
				reply_errorf(c, DBREP_EPROTO, "unexpected "
				    "frame type %d", type);
				c->dead = 1;
			}
		}
		buf_consume(&c->in, size + DBREP_HDRLEN);
	}
}

/*
 * A leaving worker does not close a connection at once when it is done
 * with it: a client may be sending its next request at that moment, and
 * could not tell whether it ran.  For DBREP_LINGER ms the connection
 * stays; a request that comes is answered EUNAVAIL, not run, and the
 * client sends it again on a new connection (a new worker's).
 */
static void
conn_linger(struct conn *c)
{
	if (c->closing)
		return;
	c->closing = 1;
	ev_timer_del(&loop, &c->timer);
	ev_timer_add(&loop, &c->timer, DBREP_LINGER);
}

static void
conn_flush(struct conn *c)
{
	ssize_t	n;

	for (;;) {
		if (c->state == C_SNAP)
			snap_fill(c);
		if (buf_used(&c->out) == 0)
			break;
		n = link_write(&c->sk, &c->out);
		if (n == -1) {
			if (errno != EAGAIN) {
				conn_close(c);
				return;
			}
			return;
		}
	}
	if (c->dead)
		conn_close(c);
	else if (self->draining && c->state == C_READY &&
	    buf_used(&c->in) == 0)
		conn_linger(c);
}

static void
conn_event(struct ev_io *io, uint32_t events)
{
	struct conn	*c = io->arg;
	ssize_t		 n;

	sock_events(&c->sk, events);
	/* set by the event, or still set by a TLS read that waited for a
	 * write (sock.c) */
	if (c->sk.flags & SOCK_READABLE) {
		for (;;) {
			n = link_read(&c->sk, &c->in);
			if (n == 0 || (n == -1 && errno != EAGAIN &&
			    errno != ENOBUFS)) {
				c->dead = 1;
				break;
			}
			if (n == -1)
				break;
			if (!(c->sk.flags & SOCK_READABLE))
				break;	/* a short read drained it */
		}
		if (c->state != C_WAIT && c->state != C_SNAP) {
			if (!c->closing)
				ev_timer_add(&loop, &c->timer,
				    conf->idle_timeout);
			conn_process(c);
		}
	}
	if (c->sk.io.active)
		conn_flush(c);
}

static void
conn_timer(struct ev_timer *t)
{
	struct conn	*c = t->arg;
	char		 pc[NET_ADDRSTRLEN];

	if (c->state != C_WAIT) {
		conn_close(c);		/* idle */
		return;
	}
	switch (c->wait) {
	case W_LSN:
		/* run once more: it answers with the error if still behind */
		wait_end(c);
		break;
	case W_QUORUM:
		if (wait_done(c)) {
			wait_end(c);
			held_release(c);
			break;
		}
		wait_end(c);
		stats_inc(m.semisync_timeouts);
		if (conf->degrade) {
			if (!atomic_exchange(&board->degraded, 1)) {
				log_warnx("semi-synchronous replication "
				    "DEGRADED to asynchronous: fewer than %d "
				    "replicas confirmed LSN %llu within %llu "
				    "ms; commits no longer wait", conf->quorum,
				    (unsigned long long)c->want,
				    (unsigned long long)conf->quorum_timeout);
				board_note("semi-sync degraded to async at LSN "
				    "%llu", (unsigned long long)c->want);
			}
			held_release(c);
			break;
		}
		buf_reset(&c->held);
		board_get(pc, sizeof(pc), board->primary_client);
		{
			struct dbrep_error	e;

			memset(&e, 0, sizeof(e));
			e.code = e.extended = DBREP_EINDETERMINATE;
			e.lsn = c->want;
			snprintf(e.msg, sizeof(e.msg), "committed on the "
			    "primary at LSN %llu, but fewer than %d replicas "
			    "confirmed it within %llu ms: it may be lost if "
			    "the primary fails", (unsigned long long)c->want,
			    conf->quorum,
			    (unsigned long long)conf->quorum_timeout);
			reply_error(c, &e);
		}
		break;
	case W_PROMOTE:
		wait_end(c);
		reply_errorf(c, DBREP_ETIMEOUT, "promotion did not finish "
		    "within %d ms", DBREP_PROMOTE_TIMEOUT);
		break;
	case W_SYNC:
		/* not reached: every turn of the loop flushes */
		sync_answer(group_sync() == -1);
		return;
	}
	waiters_update();
	conn_process(c);
	if (c->sk.io.active)
		conn_flush(c);
}

/* The doorbell rang: look at what the waiting connections wait for. */
static void
bell_event(struct ev_io *io, uint32_t events)
{
	struct conn	*c, *t;

	bell_drain(io->fd);
	TAILQ_FOREACH_SAFE(c, &conns, entry, t) {
		if (c->state != C_WAIT || !wait_done(c))
			continue;
		switch (c->wait) {
		case W_LSN:
			wait_end(c);
			break;
		case W_QUORUM:
			wait_end(c);
			held_release(c);
			break;
		case W_PROMOTE:
			wait_end(c);
			promote_reply(c);
			break;
		}
		conn_process(c);
		if (c->sk.io.active)
			conn_flush(c);
	}
	waiters_update();
}

static void
conn_close(struct conn *c)
{
	if (!c->sk.io.active)
		return;
	ev_io_del(&loop, &c->sk.io);
	ev_timer_del(&loop, &c->timer);
	link_free(&c->sk);
	close(c->sk.fd);
	if (c->snapfd != -1)
		close(c->snapfd);
	EVP_MD_CTX_free(c->md);
	c->md = NULL;
	TAILQ_REMOVE(&conns, c, entry);
	TAILQ_INSERT_TAIL(&graveyard, c, entry);
	nconns--;
	lshare_count(c->sh, -1);
	if (c->state == C_WAIT && c->wait == W_SYNC)
		TAILQ_REMOVE(&syncq, c, sentry);
	else if (c->state == C_WAIT)
		waiters_update();
}

/*
 * Accept at most <max> clients on a client listener (lshare.c decides
 * how many, so that the workers share them); returns how many.
 */
static int
client_accept(void *arg, int lfd, int max)
{
	struct lctx		*lc = arg;
	struct sockaddr_storage	 ss;
	socklen_t		 sl;
	struct conn		*c;
	char			 pc[NET_ADDRSTRLEN], pr[NET_ADDRSTRLEN];
	int			 fd, i, tcp;

	for (i = 0; i < max; i++) {
		sl = sizeof(ss);
		fd = accept4(lfd, (struct sockaddr *)&ss, &sl,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1) {
			if (errno != EAGAIN && errno != EINTR &&
			    errno != ECONNABORTED)
				log_warn("accept");
			return (i);
		}
		tcp = ss.ss_family != AF_UNIX;
		if (!acl_pass(conf, LISTEN_CLIENT, (struct sockaddr *)&ss)) {
			close(fd);
			continue;
		}
		net_nodelay(fd, ss.ss_family);
		if ((c = calloc(1, sizeof(*c))) == NULL) {
			close(fd);
			continue;
		}
		c->tcp = tcp;
		c->snapfd = -1;
		sock_init(&c->sk, fd);
		if (lc->tls != NULL && link_tls_server(&c->sk,
		    conf->tls) == -1) {
			log_warnx("%s: TLS: out of memory", __func__);
			close(fd);
			free(c);
			continue;
		}
		if (tcp)
			net_sockaddr_str((struct sockaddr *)&ss, sl, c->peer,
			    sizeof(c->peer));
		else
			strlcpy(c->peer, "unix socket", sizeof(c->peer));
		buf_init(&c->in, conf->max_request + DBREP_HDRLEN);
		buf_init(&c->out, conf->max_result + 2 * DBREP_SNAPCHUNK);
		buf_init(&c->held, conf->max_result + 1024);
		ev_timer_init(&c->timer, conn_timer, c);
		/* EPOLLOUT only once a write does not finish (sock.c): else
		 * each answer read by the client woke the worker for nothing */
		if (sock_watch(&loop, &c->sk, conn_event, c) == -1) {
			link_free(&c->sk);
			close(fd);
			free(c);
			continue;
		}
		TAILQ_INSERT_TAIL(&conns, c, entry);
		nconns++;
		c->sh = lc->sh;
		lshare_count(c->sh, 1);
		c->state = tcp ? C_AUTH : C_READY;
		if (tcp && auth_nonce(c->nonce) == -1) {
			conn_close(c);
			continue;
		}
		board_get(pc, sizeof(pc), board->primary_client);
		board_get(pr, sizeof(pr), board->follow);
		frame_hello(&c->out, atomic_load(&board->role),
		    (tcp ? HELLO_AUTH : 0) | (atomic_load(&board->writable) ?
		    HELLO_WRITABLE : 0), atomic_load(&board->epoch),
		    atomic_load(&board->lsn), conf->name, pc, pr, c->nonce);
		ev_timer_add(&loop, &c->timer, conf->idle_timeout);
		conn_flush(c);
	}
	return (i);
}

static void
server_drain(struct proc_worker *w)
{
	struct conn	*c, *t;

	lshare_stop(&ls);
	metrics_drain(&loop);
	/*
	 * Idle connections close, but a request the kernel already holds
	 * for one is read and answered first (conn_flush closes it after):
	 * a client may have sent it a moment ago.
	 */
	TAILQ_FOREACH_SAFE(c, &conns, entry, t) {
		ssize_t	n;

		if (c->state != C_READY || buf_used(&c->in) != 0 ||
		    buf_used(&c->out) != 0)
			continue;
		while ((n = link_read(&c->sk, &c->in)) > 0)
			;
		if (n == 0)
			c->dead = 1;
		if (buf_used(&c->in) > 0) {
			conn_process(c);
			conn_flush(c);
		} else if (c->dead)
			conn_close(c);
		else
			conn_linger(c);
	}
}

static void
after(struct ev_loop *l, void *arg)
{
	struct conn	*c;

	while ((c = TAILQ_FIRST(&graveyard)) != NULL) {
		TAILQ_REMOVE(&graveyard, c, entry);
		buf_free(&c->in);
		buf_free(&c->out);
		buf_free(&c->held);
		free(c);
	}
	while (!TAILQ_EMPTY(&syncq) || sync_want != 0)
		sync_answer(group_sync() == -1);
	lshare_after(&ls);
	if (self->draining && nconns == 0 && metrics_busy() == 0)
		ev_break(l);
}

int
server_main(struct proc_worker *w)
{
	int	i;

	self = w;
	conf = w->conf;
	if (ev_init(&loop) == -1)
		fatal("epoll");
	if ((bellfd = bell_open()) == -1)
		fatal("%s: doorbell", __func__);
	if (ev_io_add(&loop, &bellio, bellfd, EPOLLIN, bell_event, NULL) ==
	    -1)
		fatal("%s: ev_io_add", __func__);
	lshare_init(&ls, &loop, w);
	for (i = 0; i < w->ps->nlisteners; i++) {
		struct proc_listener	*l = &w->ps->listeners[i];
		int			 tls;

		tls = (conf->tls_listeners & (1ULL << i)) != 0;
		if (l->arg == LISTEN_CLIENT) {
			struct lshare	sh = { client_accept, &lctx[i], NULL,
			    &lctx[i].mine };

			lctx[i].tls = tls ? conf->tls : NULL;
			if ((lctx[i].sh = lshare_add(&ls, i, &sh)) == NULL)
				fatal("ev_io_add");
		} else if (l->arg == LISTEN_METRICS) {
			if (metrics_attach(&loop, l->fd, conf, tls) == -1)
				fatal("metrics listener");
		}
	}
	if (open_dbs() == -1)
		log_warnx("database not available yet");
	w->drain = server_drain;
	loop.after = after;
	if (proc_worker_watch(w, &loop) == -1)
		fatal("proc_worker_watch");
	ev_run(&loop);
	board_wait(self->slot, 0, 0, 0);
	capture_free(rcap);
	capture_free(wcap);
	db_close(rdb);
	db_close(wdb);
	close(bellfd);
	ev_free(&loop);
	return (0);
}
