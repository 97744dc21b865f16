/*
 * ship.c: the replication port: the primary's sender, and the HELLO that
 * every node answers there.
 *
 * A connection gets HELLO, must authenticate, then either leaves (a peer
 * that probed our epoch) or sends START with its position (epoch, LSN,
 * hash).  Only a writable primary accepts START.  From the position:
 *
 *	the hash at that LSN is ours	STREAM from the next LSN
 *	the LSN is older than the log	a snapshot, then records after it
 *	the hash differs, or the LSN	diverged: a snapshot, with the
 *	  is past ours			    "fork" LSN after which the
 *					    replica's records are not in
 *					    our history (our epoch history
 *					    says where its epoch ended); it
 *					    keeps them aside
 *	the replica is at a later epoch	we are an old primary: fence
 *
 * Records are pushed as they commit (workers ring the doorbell) from
 * short read transactions on _dbrep_log, up to DBREP_SEND_HIGH bytes in
 * flight per replica.  Acknowledgements move each replica's LSN; the
 * quorum LSN is the N-th highest of them, never going back.  With
 * "failover auto" only members count: replicas whose name one of the
 * peers answered with (repl.c); heartbeats tell each replica the quorum,
 * the number of peers and whether it counts, which is what a replica
 * needs to hold an election.
 *
 * An authenticated connection may also ask for this node's vote (VOTE,
 * answered by repl_vote()) and leave.
 */
#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "event.h"
#include "log.h"
#include "stats.h"
#include "dbrepd.h"

#define P_AUTH		1
#define P_START		2	/* authenticated: START or leave */
#define P_STREAM	3
#define P_SNAPMAKE	4	/* a child makes the snapshot */
#define P_SNAPSEND	5

struct snapmsg {
	int		rc;
	struct meta	mt;
	uint64_t	size;
	char		path[PATH_MAX];
};

struct peer {
	struct sock		 sk;		/* plain or TLS, and its ev_io */
	struct buf		 in;
	struct buf		 out;
	int			 state;
	int			 dead;
	uint8_t			 nonce[DBREP_NONCELEN];
	char			 addr[NET_ADDRSTRLEN];
	char			 name[DBREP_NAMELEN];
	uint64_t		 sent;
	uint64_t		 acked;
	uint64_t		 last_rx;	/* mono ms */
	uint64_t		 last_hb;
	int			 slot;		/* in board->replicas */
	int			 member;	/* counts for the quorum */
	/* snapshot */
	pid_t			 snap_pid;
	struct ev_io		 snap_io;
	int			 snap_fd;
	uint64_t		 snap_off;
	uint64_t		 snap_seen;	/* snap_off at the last tick */
	int			 snap_pending;	/* not installed: not acked */
	struct snapmsg		 snap;
	uint64_t		 fork;
	char			 reason[64];
	EVP_MD_CTX		*md;
	struct stats_metric	*g_lag, *g_lagms, *g_conn, *g_acked;
	TAILQ_ENTRY(peer)	 entry;
};

static struct ev_loop			*loop;
static const struct dbrepd_conf		*conf;
static sqlite3				*db;
static int				 active;
static TAILQ_HEAD(, peer)		 peers = TAILQ_HEAD_INITIALIZER(peers);
/* closed, freed after the loop's turn: an event of theirs may follow */
static TAILQ_HEAD(, peer)		 graveyard =
					    TAILQ_HEAD_INITIALIZER(graveyard);
static sqlite3_stmt			*fill_st;
static struct {
	uint64_t	lsn;
	uint64_t	ts;
}					 tsring[DBREP_TSRING];

static void	peer_close(struct peer *, const char *);
static void	ring_update(void);
static void	peer_flush(struct peer *);
static void	peer_fill(struct peer *);
static void	snap_start(struct peer *, uint64_t, const char *);
static void	send_heartbeat(struct peer *);

void
ship_init(struct ev_loop *l, const struct dbrepd_conf *c, sqlite3 *d)
{
	loop = l;
	conf = c;
	db = d;
}

void
ship_start(struct ev_loop *l, const struct dbrepd_conf *c, sqlite3 *d)
{
	ship_init(l, c, d);
	active = 1;
}

/* Close the streams (the node is no longer the primary). */
void
ship_stop(void)
{
	struct peer	*p, *t;

	active = 0;
	TAILQ_FOREACH_SAFE(p, &peers, entry, t)
		if (p->state >= P_STREAM)
			peer_close(p, "no longer the primary");
	sqlite3_finalize(fill_st);
	fill_st = NULL;
}

void
ship_close_all(void)
{
	struct peer	*p, *t;

	TAILQ_FOREACH_SAFE(p, &peers, entry, t)
		peer_close(p, NULL);
	sqlite3_finalize(fill_st);
	fill_st = NULL;
}

int
ship_busy(void)
{
	return (!TAILQ_EMPTY(&peers));
}

/* Workers ring the doorbell after a commit only when a replica waits. */
static void
ring_update(void)
{
	struct peer	*p;
	int		 any = 0;

	TAILQ_FOREACH(p, &peers, entry)
		if (p->state >= P_STREAM)
			any = 1;
	atomic_store(&board->ring_sender, any);
}

/* The oldest LSN a connected replica still needs from the log. */
uint64_t
ship_slowest(void)
{
	struct peer	*p;
	uint64_t	 slow = UINT64_MAX, need;

	TAILQ_FOREACH(p, &peers, entry) {
		if (p->state < P_STREAM)
			continue;
		need = p->state == P_STREAM && !p->snap_pending ?
		    p->acked + 1 : p->snap.mt.lsn ? p->snap.mt.lsn + 1 :
		    p->sent + 1;
		if (need < slow)
			slow = need;
	}
	return (slow);
}

static int
slot_get(const char *name, const char *addr)
{
	struct board_replica	*r;
	int			 i, free_ = -1;

	for (i = 0; i < DBREP_MAXREPLICAS; i++) {
		r = &board->replicas[i];
		if (atomic_load(&r->used) && strcmp(r->name, name) == 0)
			break;
		if (!atomic_load(&r->used) && free_ == -1)
			free_ = i;
	}
	if (i == DBREP_MAXREPLICAS) {
		if (free_ == -1) {
			/* forget the one seen longest ago */
			uint64_t	oldest = UINT64_MAX;

			for (i = 0; i < DBREP_MAXREPLICAS; i++) {
				r = &board->replicas[i];
				if (!atomic_load(&r->streaming) &&
				    atomic_load(&r->seen) < oldest) {
					oldest = atomic_load(&r->seen);
					free_ = i;
				}
			}
			if (free_ == -1)
				return (-1);
		}
		i = free_;
	}
	r = &board->replicas[i];
	board_set(r->name, sizeof(r->name), name);
	board_set(r->addr, sizeof(r->addr), addr);
	atomic_store(&r->since, now_ms());
	atomic_store(&r->seen, now_ms());
	atomic_store(&r->used, 1);
	return (i);
}

static uint64_t
ts_of(uint64_t lsn)
{
	sqlite3_stmt	*st;
	uint64_t	 ts = 0;

	if (tsring[lsn % DBREP_TSRING].lsn == lsn)
		return (tsring[lsn % DBREP_TSRING].ts);
	if (sqlite3_prepare_v2(db, "SELECT ts FROM _dbrep_log WHERE lsn = ?1",
	    -1, &st, NULL) != SQLITE_OK)
		return (0);
	sqlite3_bind_int64(st, 1, lsn);
	if (sqlite3_step(st) == SQLITE_ROW)
		ts = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return (ts);
}

/* The quorum LSN: the N-th highest acknowledged LSN. */
static void
quorum_update(void)
{
	struct peer	*p;
	uint64_t	 acks[DBREP_MAXREPLICAS * 2], q, lsn, t;
	int		 n = 0, i, j;

	if (conf->quorum == 0)
		return;
	TAILQ_FOREACH(p, &peers, entry)
		if (p->state == P_STREAM && p->member &&
		    n < (int)nitems(acks))
			acks[n++] = p->acked;
	if (n < conf->quorum)
		return;
	for (i = 0; i < n; i++)
		for (j = i + 1; j < n; j++)
			if (acks[j] > acks[i]) {
				t = acks[i];
				acks[i] = acks[j];
				acks[j] = t;
			}
	q = acks[conf->quorum - 1];
	if (q > atomic_load(&board->quorum_lsn)) {
		atomic_store(&board->quorum_lsn, q);
		board_wake();
	}
	lsn = atomic_load(&board->lsn);
	/*
	 * failover alone: the quorum is near enough; commits wait for it
	 * from now on (a worker publishes its LSN before it looks at
	 * "degraded": none answered alone is after alone_upto).
	 */
	if (atomic_load(&board->degraded) && (q >= lsn ||
	    (conf->failover_alone && q + DBREP_ALONE_NEAR >= lsn))) {
		atomic_store(&board->degraded, 0);
		atomic_store(&board->alone_upto, atomic_load(&board->lsn));
		log_info("semi-synchronous replication restored: %d "
		    "replica%s hold LSN %llu", conf->quorum,
		    conf->quorum == 1 ? "" : "s", (unsigned long long)q);
		board_note("semi-sync restored at LSN %llu",
		    (unsigned long long)q);
	}
	/* ... and once the quorum holds those, replicas may take over */
	if (conf->failover_alone && !atomic_load(&board->degraded) &&
	    atomic_load(&board->counted) != atomic_load(&board->epoch) &&
	    q >= atomic_load(&board->alone_upto)) {
		repl_counted();
		TAILQ_FOREACH(p, &peers, entry)
			if (p->state == P_STREAM)
				send_heartbeat(p);
	}
}

static void
peer_metrics(struct peer *p)
{
	if (p->g_lag != NULL)
		return;
	p->g_lag = stats_gauge("dbrepd_replica_lag_records",
	    "Records a replica has not acknowledged.", "replica", p->name,
	    NULL);
	p->g_lagms = stats_gauge("dbrepd_replica_lag_milliseconds",
	    "Age of the oldest record a replica has not acknowledged.",
	    "replica", p->name, NULL);
	p->g_conn = stats_gauge("dbrepd_replica_connected",
	    "1 while a replica streams.", "replica", p->name, NULL);
	p->g_acked = stats_gauge("dbrepd_replica_acked_lsn",
	    "The LSN a replica acknowledged last.", "replica", p->name, NULL);
}

static void
peer_lag(struct peer *p)
{
	struct board_replica	*r;
	uint64_t		 lsn = atomic_load(&board->lsn), ms = 0, ts;

	if (p->slot < 0)
		return;
	r = &board->replicas[p->slot];
	if (p->acked < lsn && (ts = ts_of(p->acked + 1)) != 0 &&
	    now_ms() > ts)
		ms = now_ms() - ts;
	atomic_store(&r->lag_ms, ms);
	atomic_store(&r->acked, p->acked);
	stats_gauge_set(p->g_lag, lsn > p->acked ? lsn - p->acked : 0);
	stats_gauge_set(p->g_lagms, ms);
	stats_gauge_set(p->g_acked, p->acked);
}

static void
peer_close(struct peer *p, const char *why)
{
	if (why != NULL && p->state >= P_STREAM)
		log_info("replica %s (%s): %s", p->name, p->addr, why);
	else if (why != NULL)
		log_debug("%s: %s", p->addr, why);
	if (p->slot >= 0) {
		atomic_store(&board->replicas[p->slot].streaming, 0);
		atomic_store(&board->replicas[p->slot].snapshot, 0);
		stats_gauge_set(p->g_conn, 0);
	}
	if (p->sk.io.active) {
		ev_io_del(loop, &p->sk.io);
		link_free(&p->sk);
		close(p->sk.fd);
	}
	if (p->snap_io.active) {
		ev_io_del(loop, &p->snap_io);
		close(p->snap_io.fd);
	}
	if (p->snap_pid > 0) {
		kill(p->snap_pid, SIGKILL);
		waitpid(p->snap_pid, NULL, 0);
		/* killed before it told us its file: the one it makes */
		if (p->snap.path[0] == '\0')
			snap_tmpname(conf, p->snap_pid, 1, p->snap.path,
			    sizeof(p->snap.path));
		unlink(p->snap.path);
	}
	if (p->snap_fd != -1)
		close(p->snap_fd);
	EVP_MD_CTX_free(p->md);
	p->md = NULL;
	buf_free(&p->in);
	buf_free(&p->out);
	TAILQ_REMOVE(&peers, p, entry);
	TAILQ_INSERT_TAIL(&graveyard, p, entry);
	ring_update();
}

/* Free the peers closed during the loop's last turn (repl.c's after). */
void
ship_collect(void)
{
	struct peer	*p;

	while ((p = TAILQ_FIRST(&graveyard)) != NULL) {
		TAILQ_REMOVE(&graveyard, p, entry);
		free(p);
	}
}

/*
 * A heartbeat: the primary's position, and what a replica needs for an
 * election: the quorum, the number of members (the peers) and flags.
 */
static void
send_heartbeat(struct peer *p)
{
	struct fw	w;
	uint32_t	flags = 0;

	if (conf->failover)
		flags |= HB_FAILOVER;
	if (p->member && (!conf->failover_alone ||
	    atomic_load(&board->counted) == atomic_load(&board->epoch)))
		flags |= HB_COUNTS;
	p->last_hb = ev_now(loop);
	fw_begin(&w, &p->out, MSG_HEARTBEAT);
	fw_u64(&w, atomic_load(&board->lsn));
	fw_u64(&w, atomic_load(&board->epoch));
	fw_u64(&w, now_ms());
	fw_u64(&w, atomic_load(&board->lsn_ts));
	fw_u32(&w, (uint32_t)conf->quorum);
	fw_u32(&w, (uint32_t)(conf->failover ? conf->npeers : 0));
	fw_u32(&w, flags);
	if (fw_end(&w) == -1)
		p->dead = 1;
}

/* Does replica <p> count for the quorum?  <ask>: probe if unknown. */
static void
peer_member(struct peer *p, int ask)
{
	int	was = p->member;

	p->member = !conf->failover || repl_member(p->name);
	if (!p->member && ask)
		repl_probe_soon();
	if (p->member != was && p->state >= P_STREAM) {
		log_info("replica %s (%s) %s for the quorum", p->name,
		    p->addr, p->member ? "counts" : "does not count");
		send_heartbeat(p);
	}
}

static void
send_error(struct peer *p, int code, const char *msg)
{
	char	pc[NET_ADDRSTRLEN];

	board_get(pc, sizeof(pc), board->primary_client);
	frame_error(&p->out, code, code, msg, pc, 0);
	p->dead = 1;
}

static int
have_hash(const struct meta *mt, uint64_t lsn, uint8_t *h)
{
	sqlite3_stmt	*st;
	int		 ok = 0;

	if (lsn == 0) {
		memset(h, 0, DBREP_HASHLEN);
		return (1);
	}
	if (lsn == mt->lsn) {
		memcpy(h, mt->hash, DBREP_HASHLEN);
		return (1);
	}
	if (lsn == mt->prune_lsn) {
		memcpy(h, mt->prune_hash, DBREP_HASHLEN);
		return (1);
	}
	if (lsn < mt->prune_lsn || lsn > mt->lsn)
		return (0);
	if (sqlite3_prepare_v2(db, "SELECT hash FROM _dbrep_log WHERE "
	    "lsn = ?1", -1, &st, NULL) != SQLITE_OK)
		return (0);
	sqlite3_bind_int64(st, 1, lsn);
	if (sqlite3_step(st) == SQLITE_ROW &&
	    sqlite3_column_bytes(st, 0) == DBREP_HASHLEN) {
		memcpy(h, sqlite3_column_blob(st, 0), DBREP_HASHLEN);
		ok = 1;
	}
	sqlite3_finalize(st);
	return (ok);
}

/*
 * Where a replica at (<epoch>, <lsn>) that does not follow our history
 * left it: its records after the returned LSN are not ours.
 */
static uint64_t
fork_point(const struct meta *mt, uint64_t epoch, uint64_t lsn)
{
	uint64_t	f = lsn, next;

	if (db_epoch_start(db, epoch, &next) == 0 && next > 0 &&
	    next - 1 < f)
		f = next - 1;
	if (f > mt->lsn)
		f = mt->lsn;
	if (f == lsn)	/* the same epoch, another history: keep it all */
		f = mt->prune_lsn;
	return (f);
}

static void
do_start(struct peer *p, const uint8_t *pl, size_t len)
{
	struct meta	 mt;
	struct fr	 r;
	struct fw	 w;
	uint8_t		 hash[DBREP_HASHLEN], mine[DBREP_HASHLEN];
	uint64_t	 epoch, recepoch, lsn;
	uint64_t	 myepoch = atomic_load(&board->epoch);
	uint32_t	 version, flags;
	char		 msg[256], pc[NET_ADDRSTRLEN];

	fr_init(&r, pl, len);
	fr_strcpy(&r, p->name, sizeof(p->name));
	epoch = fr_u64(&r);
	recepoch = fr_u64(&r);
	lsn = fr_u64(&r);
	fr_fixed(&r, hash, sizeof(hash));
	version = fr_u32(&r);
	flags = fr_u32(&r);
	if (!fr_done(&r)) {
		send_error(p, DBREP_EPROTO, "malformed START");
		return;
	}
	if (epoch > myepoch && atomic_load(&board->role) == ROLE_PRIMARY) {
		/* (a replica, or a candidate, is not fenced by its voters) */
		snprintf(msg, sizeof(msg), "node %s is at epoch %llu, behind "
		    "your %llu: it stops accepting writes", conf->name,
		    (unsigned long long)myepoch, (unsigned long long)epoch);
		send_error(p, SQLITE_READONLY, msg);
		repl_fence(epoch, NULL);
		return;
	}
	if (!active || atomic_load(&board->role) != ROLE_PRIMARY ||
	    !atomic_load(&board->writable)) {
		board_get(pc, sizeof(pc), board->follow);
		snprintf(msg, sizeof(msg), "node %s is not the primary%s%s",
		    conf->name, pc[0] ? "; it replicates from " : "", pc);
		send_error(p, SQLITE_READONLY, msg);
		return;
	}
	if (strcmp(p->name, conf->name) == 0) {
		send_error(p, DBREP_EUSAGE, "a node cannot replicate from "
		    "itself (or two nodes have the same name)");
		return;
	}
	/*
	 * A replica that comes back replaces its old link (half-open, not
	 * yet timed out): one name, one vote in the quorum.
	 */
	{
		struct peer	*q, *t;

		TAILQ_FOREACH_SAFE(q, &peers, entry, t)
			if (q != p && q->state >= P_STREAM &&
			    strcmp(q->name, p->name) == 0)
				peer_close(q, "replaced by its new connection");
	}
	if (version / 1000 != (uint32_t)sqlite3_libversion_number() / 1000) {
		snprintf(msg, sizeof(msg), "SQLite %u on the replica, %d "
		    "here: major and minor versions must match", version,
		    sqlite3_libversion_number());
		send_error(p, DBREP_EUSAGE, msg);
		return;
	}
	if (db_meta(db, &mt) == -1) {
		send_error(p, DBREP_EUNAVAIL, "cannot read the log position");
		return;
	}
	if ((p->slot = slot_get(p->name, p->addr)) >= 0) {
		atomic_store(&board->replicas[p->slot].acked, lsn);
		atomic_store(&board->replicas[p->slot].streaming, 0);
	}
	peer_metrics(p);
	stats_gauge_set(p->g_conn, 1);
	p->acked = lsn;
	p->sent = lsn;
	peer_member(p, 1);
	if (flags & START_SNAPSHOT) {
		snap_start(p, UINT64_MAX, "asked for by the replica");
		return;
	}
	if (lsn > mt.lsn) {
		stats_inc(m.diverged);
		snap_start(p, fork_point(&mt, recepoch, lsn), "its history is "
		    "ahead of ours (diverged)");
		return;
	}
	if (!have_hash(&mt, lsn, mine)) {
		uint64_t	next;

		if (db_epoch_start(db, recepoch, &next) == 0 && next > 0 &&
		    next <= lsn)
			snap_start(p, next - 1, "its epoch ended before its "
			    "LSN (diverged)");
		else
			snap_start(p, UINT64_MAX, "behind the retained log");
		return;
	}
	if (memcmp(mine, hash, DBREP_HASHLEN) != 0) {
		stats_inc(m.diverged);
		snap_start(p, fork_point(&mt, recepoch, lsn), "its hash "
		    "differs (diverged)");
		return;
	}
	fw_begin(&w, &p->out, MSG_STREAM);
	fw_u64(&w, lsn + 1);
	if (fw_end(&w) == -1) {
		p->dead = 1;
		return;
	}
	p->state = P_STREAM;
	ring_update();
	if (p->slot >= 0)
		atomic_store(&board->replicas[p->slot].streaming, 1);
	log_info("replica %s (%s) streams from LSN %llu%s", p->name, p->addr,
	    (unsigned long long)lsn + 1, p->member ? "" :
	    ", not counted for the quorum yet (not known as a peer)");
	send_heartbeat(p);
	peer_fill(p);
	quorum_update();
}

static void
do_ack(struct peer *p, const uint8_t *pl, size_t len)
{
	struct fr	r;
	uint64_t	lsn;

	fr_init(&r, pl, len);
	lsn = fr_u64(&r);
	(void)fr_u64(&r);
	if (!fr_done(&r)) {
		p->dead = 1;
		return;
	}
	if (p->slot >= 0)
		atomic_store(&board->replicas[p->slot].seen, now_ms());
	/*
	 * A snapshot on its way: the replica holds nothing of it until it
	 * has installed it, and acks only then, with the snapshot's LSN.
	 * An ack sent before the snapshot began (by a replica that fell
	 * behind the log mid-stream) is below it, and is not that one.
	 */
	if (p->snap_pending) {
		if (p->state != P_STREAM || lsn < p->snap.mt.lsn)
			return;
		p->snap_pending = 0;
	}
	if (lsn <= p->acked)
		return;
	p->acked = lsn;
	if (p->slot >= 0)
		atomic_store(&board->replicas[p->slot].acked, lsn);
	quorum_update();
}

static void
do_auth(struct peer *p, const uint8_t *pl, size_t len)
{
	uint8_t		cnonce[DBREP_NONCELEN], mac[DBREP_MACLEN];
	struct fr	r;
	struct fw	w;

	fr_init(&r, pl, len);
	fr_fixed(&r, cnonce, sizeof(cnonce));
	fr_fixed(&r, mac, sizeof(mac));
	if (!fr_done(&r) || !auth_check(conf->secret, conf->secretlen,
	    "dbrep client", p->nonce, cnonce, mac)) {
		log_warnx("replication %s: authentication failed", p->addr);
		send_error(p, DBREP_EAUTH, "authentication failed");
		return;
	}
	auth_mac(conf->secret, conf->secretlen, "dbrep server", cnonce,
	    p->nonce, mac);
	fw_begin(&w, &p->out, MSG_AUTH_OK);
	fw_bytes(&w, mac, sizeof(mac));
	if (fw_end(&w) == -1)
		p->dead = 1;
	p->state = P_START;
}

static void
peer_process(struct peer *p)
{
	const uint8_t	*pl;
	size_t		 size;
	int		 type, rc = 0;

	while (!p->dead && (rc = frame_peek(buf_head(&p->in),
	    buf_used(&p->in), 64 * 1024, &type, &size)) == 1) {
		pl = (const uint8_t *)buf_head(&p->in) + DBREP_HDRLEN;
		p->last_rx = ev_now(loop);
		if (p->state == P_AUTH && type == MSG_AUTH)
			do_auth(p, pl, size - DBREP_HDRLEN);
		else if (p->state == P_START && type == MSG_START)
			do_start(p, pl, size - DBREP_HDRLEN);
		else if (p->state >= P_STREAM && type == MSG_ACK)
			do_ack(p, pl, size - DBREP_HDRLEN);
		else if (p->state == P_START && type == MSG_VOTE) {
			repl_vote(pl, size - DBREP_HDRLEN, &p->out);
			p->dead = 1;
		}
		else {
			send_error(p, DBREP_EPROTO, "unexpected frame");
			break;
		}
		buf_consume(&p->in, size);
	}
	if (!p->dead && rc == -1)
		send_error(p, DBREP_EPROTO, "frame too large");
}

static void
peer_event(struct ev_io *io, uint32_t events)
{
	struct peer	*p = io->arg;
	ssize_t		 n;

	sock_events(&p->sk, events);
	/* set by the event, or still set by a TLS read that waited for a
	 * write (sock.c) */
	if (p->sk.flags & SOCK_READABLE) {
		for (;;) {
			n = link_read(&p->sk, &p->in);
			if (n == 0 || (n == -1 && errno != EAGAIN &&
			    errno != ENOBUFS)) {
				char	why[256];

				peer_close(p, n == 0 && !(p->sk.flags &
				    SOCK_TLS_HS) ? "disconnected" :
				    link_error(&p->sk, n == 0 ? 0 : errno, why,
				    sizeof(why)));
				return;
			}
			if (n == -1)
				break;
		}
		peer_process(p);
	}
	peer_flush(p);
}

/* Write what is queued, and queue more while the socket takes it. */
static void
peer_flush(struct peer *p)
{
	ssize_t	n;

	for (;;) {
		if (!p->dead)
			peer_fill(p);
		if (buf_used(&p->out) == 0)
			break;
		n = link_write(&p->sk, &p->out);
		if (n == -1) {
			char	why[256];

			if (errno != EAGAIN)
				peer_close(p, link_error(&p->sk, errno, why,
				    sizeof(why)));
			else if (p->dead && buf_used(&p->out) > 0 &&
			    ev_now(loop) - p->last_rx > 1000)
				peer_close(p, "stuck");
			return;
		}
		if (buf_used(&p->out) == 0 && p->dead)
			break;
	}
	if (p->dead)
		peer_close(p, NULL);
}

static void
snap_fill(struct peer *p)
{
	struct fw	w;
	uint8_t		digest[DBREP_HASHLEN];
	unsigned int	dl = DBREP_HASHLEN;
	static char	chunk[DBREP_SNAPCHUNK];
	ssize_t		n;

	while (p->state == P_SNAPSEND && buf_used(&p->out) < DBREP_SEND_HIGH) {
		if (p->snap_off < p->snap.size) {
			n = pread(p->snap_fd, chunk, sizeof(chunk),
			    (off_t)p->snap_off);
			if (n <= 0) {
				log_warn("replica %s: snapshot read", p->name);
				p->dead = 1;
				return;
			}
			EVP_DigestUpdate(p->md, chunk, n);
			fw_begin(&w, &p->out, MSG_SNAP_DATA);
			fw_bytes(&w, chunk, n);
			if (fw_end(&w) == -1) {
				p->dead = 1;
				return;
			}
			p->snap_off += n;
			stats_add(m.snap_bytes, n);
			continue;
		}
		EVP_DigestFinal_ex(p->md, digest, &dl);
		fw_begin(&w, &p->out, MSG_SNAP_END);
		fw_bytes(&w, digest, DBREP_HASHLEN);
		if (fw_end(&w) == -1) {
			p->dead = 1;
			return;
		}
		close(p->snap_fd);
		p->snap_fd = -1;
		stats_inc(m.snap_sent);
		log_info("replica %s: snapshot at LSN %llu sent (%llu bytes)",
		    p->name, (unsigned long long)p->snap.mt.lsn,
		    (unsigned long long)p->snap.size);
		/* records follow the snapshot */
		p->sent = p->snap.mt.lsn;
		p->state = P_STREAM;
		send_heartbeat(p);
		if (p->slot >= 0) {
			atomic_store(&board->replicas[p->slot].snapshot, 0);
			atomic_store(&board->replicas[p->slot].streaming, 1);
		}
	}
}

static void
peer_fill(struct peer *p)
{
	struct fw	 w;
	uint64_t	 lsn, upto;
	int		 rc, got;

	if (p->state == P_SNAPSEND) {
		snap_fill(p);
		return;
	}
	if (p->state != P_STREAM)
		return;
	if (fill_st == NULL && sqlite3_prepare_v3(db, "SELECT lsn, epoch, ts, "
	    "hash, body FROM _dbrep_log WHERE lsn > ?1 AND lsn <= ?3 ORDER BY lsn "
	    "LIMIT ?2",
	    -1, SQLITE_PREPARE_PERSISTENT, &fill_st, NULL) != SQLITE_OK) {
		log_warnx("%s: %s", __func__, sqlite3_errmsg(db));
		return;
	}
	while (buf_used(&p->out) < DBREP_SEND_HIGH &&
	    p->sent < (upto = atomic_load(&board->lsn))) {
		sqlite3_bind_int64(fill_st, 1, p->sent);
		sqlite3_bind_int64(fill_st, 2, DBREP_FILL_ROWS);
		/* no further than published: durable (group commit) */
		sqlite3_bind_int64(fill_st, 3, upto);
		got = 0;
		while ((rc = sqlite3_step(fill_st)) == SQLITE_ROW) {
			lsn = sqlite3_column_int64(fill_st, 0);
			if (lsn != p->sent + 1) {
				sqlite3_reset(fill_st);
				snap_start(p, UINT64_MAX, "behind the retained "
				    "log");
				return;
			}
			fw_begin(&w, &p->out, MSG_RECORD);
			fw_u64(&w, lsn);
			fw_u64(&w, sqlite3_column_int64(fill_st, 1));
			fw_u64(&w, sqlite3_column_int64(fill_st, 2));
			fw_bytes(&w, sqlite3_column_blob(fill_st, 3),
			    sqlite3_column_bytes(fill_st, 3));
			fw_bytes(&w, sqlite3_column_blob(fill_st, 4),
			    sqlite3_column_bytes(fill_st, 4));
			if (fw_end(&w) == -1) {
				sqlite3_reset(fill_st);
				p->dead = 1;
				return;
			}
			tsring[lsn % DBREP_TSRING].lsn = lsn;
			tsring[lsn % DBREP_TSRING].ts =
			    sqlite3_column_int64(fill_st, 2);
			p->sent = lsn;
			got++;
			if (buf_used(&p->out) >= DBREP_SEND_HIGH)
				break;
		}
		sqlite3_reset(fill_st);
		if (got == 0) {
			if (rc != SQLITE_DONE && rc != SQLITE_ROW)
				log_warnx("%s: %s", __func__,
				    sqlite3_errmsg(db));
			else if (p->sent < upto) {
				/* the board is ahead of the log: pruned? */
				struct meta	mt;

				if (db_meta(db, &mt) == 0 &&
				    mt.prune_lsn > p->sent)
					snap_start(p, UINT64_MAX, "behind the "
					    "retained log");
			}
			break;
		}
	}
}

static void
snap_done(struct ev_io *io, uint32_t events)
{
	struct peer	*p = io->arg;
	struct fw	 w;
	ssize_t		 n;

	n = read(io->fd, &p->snap, sizeof(p->snap));
	ev_io_del(loop, io);
	close(io->fd);
	waitpid(p->snap_pid, NULL, 0);
	p->snap_pid = 0;
	if (n != (ssize_t)sizeof(p->snap) || p->snap.rc != 0) {
		log_warnx("replica %s: snapshot failed: %s", p->name,
		    n == (ssize_t)sizeof(p->snap) ? p->snap.path : "no answer");
		send_error(p, DBREP_EUNAVAIL, "snapshot failed");
		peer_flush(p);
		return;
	}
	p->snap_fd = open(p->snap.path, O_RDONLY | O_CLOEXEC);
	unlink(p->snap.path);
	if (p->snap_fd == -1 || (p->md = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(p->md, EVP_sha256(), NULL) != 1) {
		log_warn("replica %s: snapshot", p->name);
		p->dead = 1;
		peer_flush(p);
		return;
	}
	log_info("replica %s: snapshot at LSN %llu (%llu bytes), %s",
	    p->name, (unsigned long long)p->snap.mt.lsn,
	    (unsigned long long)p->snap.size, p->reason);
	p->snap_off = 0;
	fw_begin(&w, &p->out, MSG_SNAP_BEGIN);
	fw_u64(&w, p->snap.mt.lsn);
	fw_u64(&w, p->snap.mt.epoch);
	fw_bytes(&w, p->snap.mt.hash, DBREP_HASHLEN);
	fw_u64(&w, p->snap.size);
	fw_u64(&w, p->fork);
	fw_str(&w, p->reason);
	if (fw_end(&w) == -1)
		p->dead = 1;
	p->state = P_SNAPSEND;
	peer_flush(p);
}

/*
 * Send <p> a snapshot: a child process makes it (the loop keeps
 * streaming to the others meanwhile) and tells us through a pipe.
 */
static void
snap_start(struct peer *p, uint64_t forklsn, const char *reason)
{
	struct snapmsg	 sm;
	int		 fds[2];
	pid_t		 pid;

	p->fork = forklsn;
	strlcpy(p->reason, reason, sizeof(p->reason));
	atomic_store(&board->ring_sender, 1);
	/* the snapshot will be at least here: keep the log from here */
	memset(&p->snap, 0, sizeof(p->snap));
	p->sent = atomic_load(&board->lsn);
	p->state = P_SNAPMAKE;
	/*
	 * What it said it had (START) is not what it will have: it counts
	 * for the quorum again once it has installed the snapshot.  (A
	 * diverged replica's LSN, ahead of ours, made the quorum count
	 * records it never held.)
	 */
	p->acked = 0;
	p->snap_pending = 1;
	p->snap_seen = 0;
	if (p->slot >= 0) {
		atomic_store(&board->replicas[p->slot].acked, 0);
		atomic_store(&board->replicas[p->slot].snapshot, 1);
		atomic_store(&board->replicas[p->slot].streaming, 0);
	}
	if (pipe2(fds, O_CLOEXEC) == -1) {
		log_warn("%s: pipe", __func__);
		p->dead = 1;
		return;
	}
	switch ((pid = fork())) {
	case -1:
		log_warn("%s: fork", __func__);
		close(fds[0]);
		close(fds[1]);
		p->dead = 1;
		return;
	case 0:
		close(fds[0]);
		memset(&sm, 0, sizeof(sm));
		sm.rc = snap_make(conf, &sm.mt, &sm.size, sm.path,
		    sizeof(sm.path));
		(void)write(fds[1], &sm, sizeof(sm));
		_exit(0);
	}
	close(fds[1]);
	p->snap_pid = pid;
	if (ev_io_add(loop, &p->snap_io, fds[0], EPOLLIN, snap_done, p) ==
	    -1) {
		close(fds[0]);
		p->dead = 1;
	}
}

/* A connection on the replication port, over TLS if <tls>. */
void
ship_accept(int fd, int tls)
{
	struct sockaddr_storage	 ss;
	socklen_t		 sl = sizeof(ss);
	struct peer		*p;
	char			 pc[NET_ADDRSTRLEN];
	int			 flags;

	if (getpeername(fd, (struct sockaddr *)&ss, &sl) == -1 ||
	    !acl_pass(conf, LISTEN_REPL, (struct sockaddr *)&ss)) {
		close(fd);
		return;
	}
	net_nodelay(fd, ss.ss_family);
	if ((p = calloc(1, sizeof(*p))) == NULL) {
		close(fd);
		return;
	}
	p->snap_fd = -1;
	p->slot = -1;
	sock_init(&p->sk, fd);
	if (tls && link_tls_server(&p->sk, conf->tls) == -1) {
		log_warnx("%s: TLS: out of memory", __func__);
		close(fd);
		free(p);
		return;
	}
	if (ss.ss_family == AF_UNIX)
		strlcpy(p->addr, "unix socket", sizeof(p->addr));
	else
		net_sockaddr_str((struct sockaddr *)&ss, sl, p->addr,
		    sizeof(p->addr));
	buf_init(&p->in, 128 * 1024);
	buf_init(&p->out, DBREP_SEND_HIGH + conf->max_txn + 1024 * 1024);
	p->state = P_AUTH;
	p->last_rx = ev_now(loop);
	/* EPOLLOUT only once a write does not finish (sock.c), as for the
	 * workers' client connections */
	if (auth_nonce(p->nonce) == -1 ||
	    sock_watch(loop, &p->sk, peer_event, p) == -1) {
		link_free(&p->sk);
		close(fd);
		buf_free(&p->in);
		buf_free(&p->out);
		free(p);
		return;
	}
	TAILQ_INSERT_TAIL(&peers, p, entry);
	flags = HELLO_AUTH | HELLO_REPL |
	    (atomic_load(&board->writable) ? HELLO_WRITABLE : 0);
	board_get(pc, sizeof(pc), board->primary_client);
	{
		char	fl[NET_ADDRSTRLEN];

		board_get(fl, sizeof(fl), board->follow);
		frame_hello(&p->out, atomic_load(&board->role), flags,
		    atomic_load(&board->epoch), atomic_load(&board->lsn),
		    conf->name, pc, atomic_load(&board->role) == ROLE_PRIMARY ?
		    conf->repladdr : fl, p->nonce);
	}
	peer_flush(p);
}

/* New commits: push them. */
void
ship_bell(void)
{
	struct peer	*p, *t;

	TAILQ_FOREACH_SAFE(p, &peers, entry, t)
		if (p->state == P_STREAM)
			peer_flush(p);
}

/*
 * How long a replica may say nothing while it installs a snapshot (from
 * the last word it said while receiving it): a check of the file and
 * its copy into the database, each a pass over it with an fsync (a
 * millisecond per 16 KiB, 16 MB/s), and six timeouts besides.
 */
static uint64_t
snap_grace(const struct peer *p)
{
	return (6 * (uint64_t)conf->repl_timeout + p->snap.size / 16384);
}

void
ship_tick(void)
{
	struct peer	*p, *t;
	uint64_t	 now = ev_now(loop), limit;

	/* gauges: set by this process only (they sum over processes) */
	stats_gauge_set(m.semisync_degraded, atomic_load(&board->degraded));
	TAILQ_FOREACH_SAFE(p, &peers, entry, t) {
		/*
		 * A snapshot: alive while the child makes it, while the
		 * socket takes its bytes, and while the replica receiving
		 * them says so (an ACK of LSN 0 each heartbeat; a replica
		 * of before those says nothing).  Then it installs it in
		 * silence, for a time that grows with its size.
		 */
		limit = conf->repl_timeout;
		if (p->state == P_SNAPMAKE)
			p->last_rx = now;
		else if (p->state == P_SNAPSEND && p->snap_off != p->snap_seen) {
			p->snap_seen = p->snap_off;
			p->last_rx = now;
		} else if (p->state == P_STREAM && p->snap_pending)
			limit += snap_grace(p);
		if (now - p->last_rx > limit) {
			peer_close(p, "timed out");
			continue;
		}
		if (p->state < P_STREAM)
			continue;
		if (!p->member)
			peer_member(p, 0);
		if (now - p->last_hb >= conf->heartbeat)
			send_heartbeat(p);
		peer_lag(p);
		peer_flush(p);
	}
	quorum_update();
}
