/*
 * repl.c: the replication process.
 *
 * One per node.  It serves the replication port in every role (ship.c:
 * a primary streams its log there; any node answers the HELLO that peers
 * probe, and the votes of an election), and runs the node's role:
 *
 *	primary	stream to replicas, count their acknowledgements for the
 *		quorum, prune the log, and probe the peers: a peer at a
 *		later epoch fences this node (no more writes) and makes it
 *		a replica of that epoch's primary
 *	replica	follow the primary (follow.c): apply, acknowledge, take a
 *		snapshot when told; without a primary to follow, look for
 *		one among the peers; with "failover auto", promote itself
 *		when the primary stays silent and enough peers agree
 *
 * Automatic failover (the argument is in dbrepd.conf(5), FAILOVER
 * SAFETY).  A primary with "failover auto" counts for its quorum q only
 * the replicas that are its peers, and its heartbeats tell each replica
 * q, the number n of its peers and whether the replica counts.  A
 * replica told so that has heard nothing from it for "failover after"
 * asks every peer, first without commitment (pre-vote), then for real: a
 * peer grants its vote for epoch E when it is no primary, has heard
 * nothing from its own primary for about as long, is not ahead of the
 * candidate, and has not voted for another candidate at E; it then
 * closes its link to the old primary, persists the vote, and follows the
 * candidate.  A writable primary answering at the old epoch or later
 * vetoes the election.  The candidate promotes itself to E with
 * max(n - q + 1, n / 2 + 1) votes, its own included: the old primary is
 * left with at most q - 1 peers that may still acknowledge, so it never
 * completes another commit; one voter held each commit it acknowledged,
 * which the candidate has too since no voter is ahead of it; and two
 * candidates never both win one epoch.
 *
 * Role changes (promotion, repointing, fencing) are requested through the
 * board and made between two turns of the event loop, never inside a
 * callback of the state they tear down.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "event.h"
#include "log.h"
#include "proc.h"
#include "stats.h"
#include "dbrepd.h"

#define REPL_TICK	100		/* ms */

/* What a probe of a peer asks */
#define PK_EPOCH	0	/* a primary: is there a later epoch? */
#define PK_FIND		1	/* a replica: where is the primary? */
#define PK_PREVOTE	2	/* would you vote for me? */
#define PK_VOTE		3	/* vote for me */

struct probe {
	struct ev_io	 io;
	struct sock	 sk;		/* io.fd, plain or TLS */
	struct ev_timer	 timer;
	struct buf	 in;
	int		 state;		/* 0 connecting, 1 hello, 2 auth,
					   3 vote sent, 4 told of our epoch */
	int		 kind;
	int		 idx;
	int		 answered;	/* counted in the election */
	struct hello	 h;
	uint8_t		 cnonce[DBREP_NONCELEN];
};

/* This node's election, when it runs one. */
struct campaign {
	int		 phase;		/* 0 none, 1 pre-vote, 2 vote */
	int		 step;		/* decide in after() */
	uint64_t	 epoch;		/* asked for */
	uint64_t	 base;		/* the silent primary's */
	uint64_t	 silent;	/* ms, when it started */
	uint64_t	 started;	/* mono ms */
	uint64_t	 deadline;	/* mono ms */
	int		 need;		/* votes, this node's included */
	int		 votes;
	int		 waiting;	/* peers that have not answered */
	int		 veto;		/* a peer that is the primary, -1 */
	uint64_t	 veto_epoch;
	struct meta	 mt;
	char		 voters[DBREP_MAXPEERS][DBREP_NAMELEN];
};

static struct ev_loop		 loop;
static struct proc_worker	*self;
static struct dbrepd_conf	*conf;
static sqlite3			*db;
static int			 mode;
static int			 bellfd = -1;
static struct ev_io		 bellio;
static struct ev_timer		 tick;
static struct ev_io		 lio[PROC_MAXLISTENERS];
static uint64_t			 last_prune, last_probe;
static uint32_t			 repoint_seen;
static struct probe		 probes[DBREP_MAXPEERS];
static struct campaign		 cp;
static uint64_t			 next_try;	/* mono ms, next election */
static uint64_t			 seen_epoch;	/* latest a voter knew */
static int			 quiet_said;	/* why no election: logged */
static uint64_t			 found_epoch;	/* PK_FIND: best answer */
static int			 found_idx = -1;

/* mode changes wanted, made in after() */
static uint64_t			 want_fence;
static char			 want_follow[NET_ADDRSTRLEN];
static int			 want_promote, want_repoint;

static void	probe_end(struct probe *);
static void	campaign_step(void);
static void	found_step(void);

static void
mode_start(int role)
{
	mode = role;
	atomic_store(&board->role, role);
	stats_gauge_set(m.role, role == ROLE_PRIMARY);
	if (role == ROLE_PRIMARY)
		ship_start(&loop, conf, db);
	else
		follow_start(&loop, conf, db);
}

static void
mode_stop(void)
{
	if (mode == ROLE_PRIMARY)
		ship_stop();
	else
		follow_stop();
}

/*
 * This node learnt of epoch <epoch>, later than its own: it stops taking
 * writes now, and follows <addr> (the primary's replication address, ""
 * when unknown) once the loop turns.
 */
void
repl_fence(uint64_t epoch, const char *addr)
{
	if (epoch <= atomic_load(&board->epoch) && mode != ROLE_PRIMARY)
		return;
	if (atomic_exchange(&board->writable, 0) || mode == ROLE_PRIMARY)
		log_warnx("node %s learnt of epoch %llu (it is at %llu): it "
		    "no longer accepts writes%s%s", conf->name,
		    (unsigned long long)epoch,
		    (unsigned long long)atomic_load(&board->epoch),
		    addr && addr[0] ? " and follows " : "",
		    addr && addr[0] ? addr : "");
	if (epoch > want_fence)
		want_fence = epoch;
	if (addr != NULL && addr[0] != '\0')
		strlcpy(want_follow, addr, sizeof(want_follow));
}

static void
do_fence(void)
{
	struct nodestate	ns;
	uint64_t		epoch = want_fence;

	want_fence = 0;
	if (state_load(conf->statefile, &ns) == -1)
		memset(&ns, 0, sizeof(ns));
	if (epoch > ns.fenced)
		ns.fenced = epoch;
	if (want_follow[0] != '\0')
		strlcpy(ns.follow, want_follow, sizeof(ns.follow));
	if (state_save(conf->statefile, &ns) == -1)
		log_warn("%s", conf->statefile);
	board_note("fenced by epoch %llu", (unsigned long long)epoch);
	if (epoch > atomic_load(&board->epoch))
		atomic_store(&board->epoch, epoch);
	stats_gauge_set(m.epoch, atomic_load(&board->epoch));
	board_set(board->primary_client, sizeof(board->primary_client), "");
	if (want_follow[0] != '\0')
		board_set(board->follow, sizeof(board->follow), want_follow);
	want_follow[0] = '\0';
	mode_stop();
	mode_start(ROLE_REPLICA);
}

/*
 * Make this node the primary of the next epoch, or of epoch <want> (an
 * election's, 0: the next): its epoch record is written under the
 * writers' lock, then it takes writes.  Fails, as a replica, when the
 * database cannot be written, or when <want> is no longer later than
 * every epoch this node knows of.  <msg> gets what happened.
 */
static int
promote(uint64_t want, char *msg, size_t msglen)
{
	struct nodestate	ns;
	struct meta		mt;
	uint64_t		t0 = ev_monotonic_ms(), epoch;
	char			err[512];

	mode_stop();
	if (state_load(conf->statefile, &ns) == -1)
		memset(&ns, 0, sizeof(ns));
	if (db_meta(db, &mt) == -1) {
		snprintf(msg, msglen, "promotion failed: %s",
		    sqlite3_errmsg(db));
		goto fail;
	}
	epoch = mt.epoch;
	if (ns.fenced > epoch)
		epoch = ns.fenced;
	if (atomic_load(&board->epoch) > epoch)
		epoch = atomic_load(&board->epoch);
	if (atomic_load(&board->fence_hint) > epoch)
		epoch = atomic_load(&board->fence_hint);
	if (epoch == UINT64_MAX) {
		snprintf(msg, msglen, "promotion failed: epoch %llu is the "
		    "last", (unsigned long long)epoch);
		goto fail;
	}
	epoch++;
	if (want != 0 && want < epoch) {
		snprintf(msg, msglen, "promotion to epoch %llu abandoned: "
		    "this node knows of epoch %llu now",
		    (unsigned long long)want, (unsigned long long)epoch - 1);
		goto fail;
	}
	if (want != 0)
		epoch = want;
	board_wlock();
	if (apply_epoch(db, epoch, conf->name, &mt, err, sizeof(err)) != 0) {
		board_wunlock();
		snprintf(msg, msglen, "promotion failed: %.200s", err);
		goto fail;
	}
	ns.fenced = 0;
	ns.follow[0] = '\0';
	ns.voted[0] = '\0';
	if (state_save(conf->statefile, &ns) == -1)
		log_warn("%s", conf->statefile);
	atomic_store(&board->epoch, epoch);
	atomic_store(&board->promised, 0);
	board_set_lsn(mt.lsn, mt.ts);
	atomic_store(&board->quorum_lsn, mt.lsn);
	/*
	 * failover alone: the new primary answers commits alone until a
	 * replica holds them all; no replica may win an election before
	 * (none was told it counts in this epoch).
	 */
	atomic_store(&board->degraded, conf->failover_alone);
	atomic_store(&board->counted, 0);
	atomic_store(&board->alone_upto, mt.lsn);
	board_set(board->primary_client, sizeof(board->primary_client),
	    conf->advertise);
	board_set(board->primary_name, sizeof(board->primary_name),
	    conf->name);
	board_set(board->follow, sizeof(board->follow), "");
	atomic_store(&board->writable, 1);
	board_wunlock();
	stats_gauge_set(m.epoch, epoch);
	mode_start(ROLE_PRIMARY);
	/* probe the peers at once: an old primary among them is told */
	last_probe = 0;
	snprintf(msg, msglen, "node %s promoted to primary: epoch %llu "
	    "starts at LSN %llu (%llu ms)", conf->name,
	    (unsigned long long)epoch, (unsigned long long)mt.lsn,
	    (unsigned long long)(ev_monotonic_ms() - t0));
	log_info("%s", msg);
	board_note("promoted to epoch %llu at LSN %llu%s",
	    (unsigned long long)epoch, (unsigned long long)mt.lsn,
	    want != 0 ? " (automatic failover)" : "");
	return (0);
 fail:
	log_warnx("%s", msg);
	mode_start(ROLE_REPLICA);
	return (-1);
}

/* dbrepctl promote: the operator's decision, no election. */
static void
do_promote(void)
{
	uint32_t	req = atomic_load(&board->promote_req);
	char		msg[256];

	want_promote = 0;
	if (mode == ROLE_PRIMARY && atomic_load(&board->writable)) {
		snprintf(msg, sizeof(msg), "node %s is the primary already",
		    conf->name);
		atomic_store(&board->promote_rc, 0);
	} else {
		if (cp.phase != 0) {
			log_info("election for epoch %llu stopped: promoted "
			    "by the operator", (unsigned long long)cp.epoch);
			cp.phase = 0;
		}
		atomic_store(&board->promote_rc, promote(0, msg,
		    sizeof(msg)));
	}
	board_set(board->admin_msg, sizeof(board->admin_msg), msg);
	atomic_store(&board->promote_done, req);
	board_wake();
}

static void
do_repoint(void)
{
	struct nodestate	ns;

	want_repoint = 0;
	if (mode == ROLE_PRIMARY && atomic_load(&board->writable))
		return;
	if (state_load(conf->statefile, &ns) == -1)
		memset(&ns, 0, sizeof(ns));
	board_get(ns.follow, sizeof(ns.follow), board->follow);
	if (state_save(conf->statefile, &ns) == -1)
		log_warn("%s", conf->statefile);
	log_info("replicating from %s", ns.follow);
	board_note("repointed to %s", ns.follow);
	mode_stop();
	mode_start(ROLE_REPLICA);
}

static void
after(struct ev_loop *l, void *arg)
{
	ship_collect();
	if (self->draining) {
		if (!ship_busy())
			ev_break(l);
		return;
	}
	if (want_promote)
		do_promote();
	if (want_fence)
		do_fence();
	if (cp.step)
		campaign_step();
	if (found_idx != -1)
		found_step();
	if (want_repoint)
		do_repoint();
}

static void
bell_event(struct ev_io *io, uint32_t events)
{
	uint32_t	r;

	bell_drain(io->fd);
	if (atomic_load(&board->promote_req) !=
	    atomic_load(&board->promote_done))
		want_promote = 1;
	if ((r = atomic_load(&board->repoint_req)) != repoint_seen) {
		repoint_seen = r;
		want_repoint = 1;
	}
	/* a client saw a writable primary of a later epoch */
	if (mode == ROLE_PRIMARY && atomic_load(&board->fence_hint) >
	    atomic_load(&board->epoch)) {
		log_warnx("a client saw a primary at epoch %llu",
		    (unsigned long long)atomic_load(&board->fence_hint));
		repl_fence(atomic_load(&board->fence_hint), NULL);
	}
	if (mode == ROLE_PRIMARY) {
		stats_gauge_set(m.lsn, atomic_load(&board->lsn));
		ship_bell();
	}
}

/*
 * Keep the log within its bounds: at least log-min-records, what the
 * slowest streaming replica still needs, and never more than
 * log-max-records or log-max-size (a replica left behind gets a
 * snapshot).
 */
static void
prune(void)
{
	struct meta	mt;
	uint64_t	keep, slow, count, avg, upto, freed = 0, size;
	int		batches, rc;

	if (db_meta(db, &mt) == -1)
		return;
	count = mt.lsn - mt.prune_lsn;
	keep = mt.lsn >= conf->log_min_records ? mt.lsn -
	    conf->log_min_records + 1 : 1;
	if (mode == ROLE_PRIMARY && (slow = ship_slowest()) < keep)
		keep = slow;
	if (mt.lsn + 1 > conf->log_max_records &&
	    mt.lsn + 1 - conf->log_max_records > keep)
		keep = mt.lsn + 1 - conf->log_max_records;
	size = atomic_load(&board->log_bytes);
	if (size > conf->log_max_size && count > 0) {
		avg = size / count + 1;
		if (mt.lsn + 1 > conf->log_max_size / avg &&
		    mt.lsn + 1 - conf->log_max_size / avg > keep)
			keep = mt.lsn + 1 - conf->log_max_size / avg;
	}
	for (batches = 0; keep > mt.prune_lsn + 1 && batches < 50;
	    batches++) {
		upto = keep - 1;
		if (upto > mt.prune_lsn + DBREP_PRUNE_BATCH)
			upto = mt.prune_lsn + DBREP_PRUNE_BATCH;
		if (board_wlock() == -1)
			break;
		rc = db_prune(db, upto, &mt, &freed);
		board_wunlock();
		if (rc == -1 || mt.prune_lsn < upto)
			break;
	}
	if (freed > 0) {
		size = atomic_load(&board->log_bytes);
		atomic_store(&board->log_bytes, size > freed ? size - freed :
		    0);
	}
	atomic_store(&board->log_first, mt.prune_lsn + 1);
	stats_gauge_set(m.log_records, mt.lsn - mt.prune_lsn);
	stats_gauge_set(m.log_bytes, atomic_load(&board->log_bytes));
	if (mode == ROLE_PRIMARY) {
		/*
		 * a worker may have died between its commit and the board;
		 * what the board shows must be durable (group commit)
		 */
		if (atomic_load(&board->synced) < mt.lsn &&
		    !atomic_load(&board->sync_failed) && db_sync(db) == 0) {
			board_max(&board->synced, mt.lsn);
			board_lsn_max(mt.lsn);
		}
		stats_gauge_set(m.lsn, atomic_load(&board->lsn));
	}
}

/* Probing the peers: their epoch, the primary, votes. */

/* A peer's name, as it answered at its address (members, ship.c). */
int
repl_member(const char *name)
{
	char	n[DBREP_NAMELEN];
	int	i;

	for (i = 0; i < conf->npeers && i < DBREP_MAXPEERS; i++) {
		board_get(n, sizeof(n), board->peer_names[i]);
		if (n[0] != '\0' && strcmp(n, name) == 0)
			return (1);
	}
	return (0);
}

/*
 * failover alone: a replica holds every commit of the epoch; from now on
 * commits wait for the quorum, and replicas are told they count (they
 * may take over).  Persisted first: after a restart in this epoch the
 * primary never answers alone again.
 */
void
repl_counted(void)
{
	struct nodestate	ns;
	uint64_t		epoch = atomic_load(&board->epoch);

	if (!conf->failover_alone || atomic_load(&board->counted) == epoch)
		return;
	if (state_load(conf->statefile, &ns) == -1)
		memset(&ns, 0, sizeof(ns));
	ns.counted = epoch;
	if (state_save(conf->statefile, &ns) == -1) {
		log_warn("%s", conf->statefile);
		return;
	}
	atomic_store(&board->counted, epoch);
	log_info("epoch %llu: a replica holds every commit; commits wait for "
	    "the quorum from now on", (unsigned long long)epoch);
}

/* A replica the primary does not know by name connected: probe now. */
void
repl_probe_soon(void)
{
	last_probe = 0;
}

static void
probe_end(struct probe *p)
{
	if (p->io.active) {
		ev_io_del(&loop, &p->io);
		link_free(&p->sk);
		close(p->io.fd);
	}
	ev_timer_del(&loop, &p->timer);
	buf_free(&p->in);
	if ((p->kind == PK_PREVOTE || p->kind == PK_VOTE) && !p->answered &&
	    cp.phase != 0) {
		p->answered = 1;
		if (--cp.waiting <= 0)
			cp.step = 1;
	}
}

/*
 * PK_EPOCH: is the peer at a later epoch (fence this node), or an old
 * primary at an earlier one (tell it: returns 1, wait for its answer)?
 */
static int
probe_judge(struct probe *p)
{
	struct buf	 out;
	struct fw	 w;
	struct meta	 mt;
	const char	*addr;

	if (mode != ROLE_PRIMARY)
		return (0);
	if (p->h.epoch < atomic_load(&board->epoch) && p->h.role ==
	    ROLE_PRIMARY && (p->h.flags & HELLO_WRITABLE) &&
	    atomic_load(&board->writable)) {
		/*
		 * An old primary: the START of a node at a later epoch
		 * fences it (ship.c), as when a replica of ours connects.
		 */
		log_warnx("peer %s (%s) is a writable primary of epoch %llu, "
		    "before ours (%llu): telling it", p->h.node,
		    conf->peers[p->idx].text, (unsigned long long)p->h.epoch,
		    (unsigned long long)atomic_load(&board->epoch));
		if (db_meta(db, &mt) == -1)
			return (0);
		buf_init(&out, 4096);
		fw_begin(&w, &out, MSG_START);
		fw_str(&w, conf->name);
		fw_u64(&w, atomic_load(&board->epoch));
		fw_u64(&w, mt.epoch);
		fw_u64(&w, mt.lsn);
		fw_bytes(&w, mt.hash, DBREP_HASHLEN);
		fw_u32(&w, (uint32_t)sqlite3_libversion_number());
		fw_u32(&w, 0);
		if (fw_end(&w) == 0)
			(void)sock_write(&p->sk, buf_head(&out),
			    buf_used(&out));
		buf_free(&out);
		return (1);
	}
	if (p->h.epoch <= atomic_load(&board->epoch))
		return (0);
	addr = p->h.role == ROLE_PRIMARY ? conf->peers[p->idx].text :
	    p->h.prepl;
	log_warnx("peer %s (%s) is at epoch %llu", p->h.node,
	    conf->peers[p->idx].text, (unsigned long long)p->h.epoch);
	repl_fence(p->h.epoch, addr);
	return (0);
}

/* PK_FIND: a replica without a primary keeps the latest one found. */
static void
probe_find(struct probe *p)
{
	if (mode != ROLE_REPLICA || p->h.role != ROLE_PRIMARY ||
	    !(p->h.flags & HELLO_WRITABLE))
		return;
	if (p->h.epoch < atomic_load(&board->epoch) || p->h.epoch <
	    atomic_load(&board->promised) || p->h.epoch <= found_epoch)
		return;
	found_epoch = p->h.epoch;
	found_idx = p->idx;
}

static void
found_step(void)
{
	const char	*addr;
	char		 cur[NET_ADDRSTRLEN];

	if (mode != ROLE_REPLICA || found_idx < 0 || found_idx >=
	    conf->npeers) {
		found_idx = -1;
		return;
	}
	addr = conf->peers[found_idx].text;
	found_idx = -1;
	board_get(cur, sizeof(cur), board->follow);
	if (strcmp(cur, addr) == 0)
		return;
	log_warnx("found the primary of epoch %llu at %s: following it",
	    (unsigned long long)found_epoch, addr);
	board_set(board->follow, sizeof(board->follow), addr);
	want_repoint = 1;
}

/* Ask for the peer's vote (the connection is authenticated). */
static void
vote_send(struct probe *p)
{
	struct buf	out;
	struct fw	w;

	buf_init(&out, 4096);
	fw_begin(&w, &out, MSG_VOTE);
	fw_u32(&w, p->kind == PK_PREVOTE ? VOTE_PRE : 0);
	fw_str(&w, conf->name);
	fw_u64(&w, cp.epoch);
	fw_u64(&w, cp.base);
	fw_u64(&w, cp.mt.epoch);
	fw_u64(&w, cp.mt.lsn);
	fw_str(&w, conf->repladdr);
	if (fw_end(&w) == 0)
		(void)sock_write(&p->sk, buf_head(&out), buf_used(&out));
	buf_free(&out);
	p->state = 3;
}

/* The peer's HELLO: a writable primary at our epoch or later vetoes. */
static int
vote_veto(struct probe *p)
{
	if (p->h.role != ROLE_PRIMARY || !(p->h.flags & HELLO_WRITABLE) ||
	    p->h.epoch < cp.base)
		return (0);
	if (cp.veto == -1 || p->h.epoch > cp.veto_epoch) {
		cp.veto = p->idx;
		cp.veto_epoch = p->h.epoch;
	}
	p->answered = 1;
	cp.step = 1;
	return (1);
}

/* A VOTE_REPLY: count it. */
static void
vote_count(struct probe *p, const uint8_t *pl, size_t len)
{
	struct fr	r;
	uint64_t	known, lsn;
	uint32_t	granted;
	char		node[DBREP_NAMELEN], why[256];
	int		i;

	fr_init(&r, pl, len);
	granted = fr_u32(&r);
	known = fr_u64(&r);
	lsn = fr_u64(&r);
	fr_strcpy(&r, node, sizeof(node));
	fr_strcpy(&r, why, sizeof(why));
	if (!fr_done(&r) || cp.phase == 0 || p->answered)
		return;
	p->answered = 1;
	if (known > seen_epoch)
		seen_epoch = known;
	if (granted && strcmp(node, conf->name) != 0) {
		for (i = 0; i < DBREP_MAXPEERS; i++)
			if (strcmp(cp.voters[i], node) == 0)
				break;
		if (i == DBREP_MAXPEERS) {
			for (i = 0; i < DBREP_MAXPEERS; i++)
				if (cp.voters[i][0] == '\0') {
					strlcpy(cp.voters[i], node,
					    sizeof(cp.voters[i]));
					cp.votes++;
					break;
				}
		}
		log_info("%s of %s (%s) for epoch %llu: yes (at LSN %llu)",
		    cp.phase == 1 ? "pre-vote" : "vote", node,
		    conf->peers[p->idx].text, (unsigned long long)cp.epoch,
		    (unsigned long long)lsn);
	} else
		log_info("%s of %s (%s) for epoch %llu: no: %s",
		    cp.phase == 1 ? "pre-vote" : "vote", node,
		    conf->peers[p->idx].text, (unsigned long long)cp.epoch,
		    granted ? "that is this node" : why);
	if (--cp.waiting <= 0 || (cp.phase == 2 && cp.votes >= cp.need))
		cp.step = 1;
}

/*
 * A TLS probe of a peer failed before it could say anything: logged
 * when the reason changes (probes repeat every peer-check).
 */
static void
probe_tls_failed(struct probe *p, int err)
{
	static char	last[DBREP_MAXPEERS][160];
	char		why[160];

	if (p->sk.ssl == NULL || !(p->sk.flags & SOCK_TLS_HS))
		return;
	link_error(&p->sk, err, why, sizeof(why));
	if (strcmp(last[p->idx], why) == 0)
		return;
	strlcpy(last[p->idx], why, sizeof(last[p->idx]));
	log_warnx("peer %s: %s", conf->peers[p->idx].text, why);
}

static void
probe_event(struct ev_io *io, uint32_t events)
{
	struct probe	*p = io->arg;
	const uint8_t	*pl;
	uint8_t		 mac[DBREP_MACLEN];
	struct buf	 out;
	struct fw	 w;
	struct fr	 r;
	size_t		 size, len;
	int		 type, rc, err = 0, eof = 0;
	socklen_t	 sl = sizeof(err);

	if (p->state == 0) {
		if (getsockopt(io->fd, SOL_SOCKET, SO_ERROR, &err, &sl) ==
		    -1 || err != 0) {
			probe_end(p);
			return;
		}
		p->state = 1;
		if (conf->rtls != NULL && link_tls_client(&p->sk, conf->rtls,
		    conf->rtls_name, &conf->peers[p->idx]) == -1) {
			probe_end(p);
			return;
		}
	}
	for (;;) {
		ssize_t	n = link_read(&p->sk, &p->in);

		if (n == 0 || (n == -1 && errno != EAGAIN)) {
			eof = 1;	/* what came before it counts */
			probe_tls_failed(p, n == 0 ? 0 : errno);
			break;
		}
		if (n == -1)
			break;
	}
	while ((rc = frame_peek(buf_head(&p->in), buf_used(&p->in), 4096,
	    &type, &size)) == 1) {
		pl = (const uint8_t *)buf_head(&p->in) + DBREP_HDRLEN;
		len = size - DBREP_HDRLEN;
		if (p->state == 1 && type == MSG_HELLO &&
		    hello_parse(pl, len, &p->h) == 0) {
			buf_init(&out, 4096);
			auth_nonce(p->cnonce);
			auth_mac(conf->secret, conf->secretlen, "dbrep client",
			    p->h.nonce, p->cnonce, mac);
			fw_begin(&w, &out, MSG_AUTH);
			fw_bytes(&w, p->cnonce, sizeof(p->cnonce));
			fw_bytes(&w, mac, sizeof(mac));
			fw_end(&w);
			(void)sock_write(&p->sk, buf_head(&out),
			    buf_used(&out));
			buf_free(&out);
			p->state = 2;
		} else if (p->state == 2 && type == MSG_AUTH_OK) {
			fr_init(&r, pl, len);
			if (fr_fixed(&r, mac, sizeof(mac)) == -1 ||
			    !fr_done(&r) || !auth_check(conf->secret,
			    conf->secretlen, "dbrep server", p->cnonce,
			    p->h.nonce, mac)) {
				probe_end(p);
				return;
			}
			/* the peer proved it knows the secret: its name */
			board_set(board->peer_names[p->idx],
			    sizeof(board->peer_names[p->idx]), p->h.node);
			if (p->kind == PK_EPOCH && probe_judge(p)) {
				/* its ERROR says it got it */
				p->state = 4;
				buf_consume(&p->in, size);
				continue;
			} else if (p->kind == PK_FIND)
				probe_find(p);
			else if (cp.phase != 0 && !vote_veto(p)) {
				vote_send(p);
				buf_consume(&p->in, size);
				continue;
			}
			probe_end(p);
			return;
		} else if (p->state == 3 && type == MSG_VOTE_REPLY) {
			vote_count(p, pl, len);
			probe_end(p);
			return;
		} else if (p->state == 4) {
			probe_end(p);
			return;
		} else {
			probe_end(p);
			return;
		}
		buf_consume(&p->in, size);
	}
	if (rc == -1 || eof)
		probe_end(p);
}

static void
probe_timeout(struct ev_timer *t)
{
	probe_end(t->arg);
}

/* Ask peer <i>; a probe of another kind in flight is dropped first. */
static void
probe_start(int i, int kind, uint64_t ms)
{
	struct probe	*p = &probes[i];
	int		 fd;

	if (p->io.active) {
		if (p->kind == kind && kind <= PK_FIND)
			return;
		probe_end(p);
	}
	memset(p, 0, sizeof(*p));
	p->idx = i;
	p->kind = kind;
	if ((fd = net_connect(&conf->peers[i])) == -1) {
		if (kind >= PK_PREVOTE && cp.phase != 0) {
			p->answered = 1;
			if (--cp.waiting <= 0)
				cp.step = 1;
		}
		return;
	}
	sock_init(&p->sk, fd);
	buf_init(&p->in, 8192);
	ev_timer_init(&p->timer, probe_timeout, p);
	if (ev_io_add(&loop, &p->io, fd, EPOLLIN | EPOLLOUT | EPOLLET,
	    probe_event, p) == -1) {
		close(fd);
		buf_free(&p->in);
		if (kind >= PK_PREVOTE && cp.phase != 0) {
			p->answered = 1;
			if (--cp.waiting <= 0)
				cp.step = 1;
		}
		return;
	}
	ev_timer_add(&loop, &p->timer, ms);
}

static void
probe_all(int kind, uint64_t ms)
{
	int	i;

	if (kind == PK_FIND) {
		found_epoch = 0;
		found_idx = -1;
	}
	for (i = 0; i < conf->npeers; i++)
		probe_start(i, kind, ms);
}

/* Elections */

/* ms a round of votes may take */
static uint64_t
vote_time(void)
{
	uint64_t	ms = conf->failover_after / 2;

	if (ms > DBREP_VOTE_TIMEOUT)
		ms = DBREP_VOTE_TIMEOUT;
	return (ms < 200 ? 200 : ms);
}

static void
campaign_stop(uint64_t retry)
{
	int	i;

	cp.phase = 0;
	cp.step = 0;
	for (i = 0; i < conf->npeers; i++)
		if (probes[i].kind >= PK_PREVOTE)
			probe_end(&probes[i]);
	next_try = ev_now(&loop) + retry;
}

static void
campaign_round(int phase)
{
	cp.phase = phase;
	cp.votes = 1;			/* this node's */
	cp.waiting = conf->npeers;
	cp.veto = -1;
	cp.deadline = ev_now(&loop) + vote_time();
	memset(cp.voters, 0, sizeof(cp.voters));
	probe_all(phase == 1 ? PK_PREVOTE : PK_VOTE, vote_time());
}

/* The latest epoch this node knows of: applied, heard, fenced, voted. */
static uint64_t
known_epoch(const struct nodestate *ns, const struct meta *mt)
{
	uint64_t	e = atomic_load(&board->epoch);

	if (ns->fenced > e)
		e = ns->fenced;
	if (mt->epoch > e)
		e = mt->epoch;
	if (atomic_load(&board->promised) > e)
		e = atomic_load(&board->promised);
	if (atomic_load(&board->fence_hint) > e)
		e = atomic_load(&board->fence_hint);	/* a client saw it */
	return (e);
}

/*
 * May this node take over from the primary of its latest epoch (also
 * for dbrepctl status, in the workers)?  Only
 * when that primary runs failover auto with the same quorum and peers,
 * and said in its heartbeats that this node counts for its quorum (with
 * "alone": once this node held every commit of the epoch).  NULL, or
 * why not.
 */
const char *
repl_eligible(const struct dbrepd_conf *dc, uint64_t known)
{
	int	flags = atomic_load(&board->p_flags);

	if (atomic_load(&board->p_epoch) != known)
		return ("this node has not followed a primary of its latest "
		    "epoch since it started");
	if (!(flags & HB_FAILOVER))
		return ("its primary does not run \"failover auto\"");
	if (!dc->failover)
		return ("failover manual");
	if (atomic_load(&board->p_quorum) != dc->quorum ||
	    atomic_load(&board->p_members) != dc->npeers)
		return ("its primary's quorum or number of peers differ from "
		    "this node's: every node must list every other as a "
		    "peer, with the same durability");
	if (!(flags & HB_COUNTS))
		return ("its primary does not count this node in its quorum "
		    "(not caught up, or not among its peers)");
	return (NULL);
}

/*
 * Every tick of a replica with failover auto: has the primary been
 * silent long enough, and may this node take over?
 */
static void
campaign_tick(uint64_t now)
{
	struct nodestate	 ns;
	uint64_t		 silent, known, e;
	char			 pname[DBREP_NAMELEN];
	const char		*why;
	int			 n = conf->npeers, q = conf->quorum;

	if (cp.phase != 0) {
		if (now >= cp.deadline)
			cp.step = 1;
		return;
	}
	if (!conf->failover || mode != ROLE_REPLICA || now < next_try)
		return;
	silent = now - follow_heard();
	if (silent < conf->failover_after) {
		quiet_said = 0;
		return;
	}
	board_get(pname, sizeof(pname), board->primary_name);
	if (state_load(conf->statefile, &ns) == -1)
		memset(&ns, 0, sizeof(ns));
	if (db_meta(db, &cp.mt) == -1) {
		next_try = now + conf->failover_after;
		return;
	}
	known = known_epoch(&ns, &cp.mt);
	if ((why = repl_eligible(conf, known)) != NULL) {
		if (!quiet_said)
			log_warnx("primary %s silent for %llu ms: no automatic "
			    "failover: %s", pname[0] ? pname : "?",
			    (unsigned long long)silent, why);
		quiet_said = 1;
		next_try = now + conf->failover_after;
		return;
	}
	e = known;
	if (seen_epoch > e)
		e = seen_epoch;
	cp.epoch = e + 1;
	cp.base = known;
	cp.silent = silent;
	cp.started = now;
	/*
	 * The votes, this node's included, of the n nodes that are not the
	 * primary: enough that the old primary is left with fewer than q
	 * that may acknowledge (n - q + 1), and a majority, so that two
	 * candidates never both win one epoch.
	 */
	cp.need = n - q + 1;
	if (n / 2 + 1 > cp.need)
		cp.need = n / 2 + 1;
	stats_inc(m.elections);
	log_warnx("primary %s silent for %llu ms: asking %d peer%s whether "
	    "this node should be the primary of epoch %llu (%d vote%s "
	    "needed, its own included; at LSN %llu)", pname[0] ? pname : "?",
	    (unsigned long long)silent, n, n == 1 ? "" : "s",
	    (unsigned long long)cp.epoch, cp.need, cp.need == 1 ? "" : "s",
	    (unsigned long long)cp.mt.lsn);
	campaign_round(1);
}

/* An election's round ended (all answered, the deadline, a veto). */
static void
campaign_step(void)
{
	char		pname[DBREP_NAMELEN], msg[256];
	uint64_t	d = conf->failover_after;
	int		phase = cp.phase;

	cp.step = 0;
	if (phase == 0)
		return;
	board_get(pname, sizeof(pname), board->primary_name);
	if (mode != ROLE_REPLICA) {
		campaign_stop(d);
		return;
	}
	if (follow_heard() > cp.started) {
		log_warnx("not promoting: primary %s heard again",
		    pname[0] ? pname : "?");
		campaign_stop(d);
		return;
	}
	if (cp.veto != -1) {
		const char	*addr = conf->peers[cp.veto].text;
		char		 cur[NET_ADDRSTRLEN];

		log_warnx("not promoting: %s is a writable primary of epoch "
		    "%llu", addr, (unsigned long long)cp.veto_epoch);
		board_get(cur, sizeof(cur), board->follow);
		if (strcmp(cur, addr) != 0 && cp.veto_epoch >=
		    atomic_load(&board->epoch)) {
			log_warnx("following %s", addr);
			board_set(board->follow, sizeof(board->follow), addr);
			want_repoint = 1;
		}
		campaign_stop(d);
		return;
	}
	if (cp.votes < cp.need) {
		log_warnx("not promoting: %s for epoch %llu: %d of %d needed%s",
		    phase == 1 ? "pre-votes" : "votes",
		    (unsigned long long)cp.epoch, cp.votes, cp.need,
		    cp.waiting > 0 ? " (some peers did not answer)" : "");
		board_note("election for epoch %llu lost: %d of %d votes",
		    (unsigned long long)cp.epoch, cp.votes, cp.need);
		/* another candidate may be luckier: not all at once */
		campaign_stop(d / 2 + arc4random_uniform(d / 2 + 1));
		return;
	}
	if (phase == 1 && cp.need > 1) {
		log_info("pre-votes for epoch %llu: %d of %d: asking for the "
		    "votes", (unsigned long long)cp.epoch, cp.votes, cp.need);
		campaign_round(2);
		return;
	}
	log_warnx("primary %s silent for %llu ms: promoting myself, epoch "
	    "%llu (%d of %d votes)", pname[0] ? pname : "?",
	    (unsigned long long)cp.silent, (unsigned long long)cp.epoch,
	    cp.votes, cp.need);
	{
		uint64_t	e = cp.epoch;

		campaign_stop(d);
		if (promote(e, msg, sizeof(msg)) == 0)
			stats_inc(m.auto_promotions);
	}
}

/*
 * A peer asks for this node's vote (ship.c, on the replication port):
 * the answer goes to <out>.
 */
void
repl_vote(const uint8_t *pl, size_t len, struct buf *out)
{
	struct nodestate	 ns;
	struct meta		 mt;
	struct fr		 r;
	struct fw		 w;
	uint64_t		 epoch, cepoch, clsn, known, heard;
	uint64_t		 now = ev_now(&loop), d;
	uint32_t		 flags;
	char			 cand[DBREP_NAMELEN], caddr[NET_ADDRSTRLEN];
	char			 why[256], pname[DBREP_NAMELEN];
	int			 grant = 0, pre;

	fr_init(&r, pl, len);
	flags = fr_u32(&r);
	fr_strcpy(&r, cand, sizeof(cand));
	epoch = fr_u64(&r);
	(void)fr_u64(&r);		/* its latest epoch */
	cepoch = fr_u64(&r);
	clsn = fr_u64(&r);
	fr_strcpy(&r, caddr, sizeof(caddr));
	if (!fr_done(&r)) {
		frame_error(out, DBREP_EPROTO, DBREP_EPROTO, "malformed VOTE",
		    "", 0);
		return;
	}
	pre = (flags & VOTE_PRE) != 0;
	if (state_load(conf->statefile, &ns) == -1)
		memset(&ns, 0, sizeof(ns));
	if (db_meta(db, &mt) == -1)
		memset(&mt, 0, sizeof(mt));
	known = known_epoch(&ns, &mt);
	/*
	 * Heard lately: a primary's heartbeats to two replicas are not in
	 * step, so a voter may have heard it up to a heartbeat after the
	 * candidate did.
	 */
	d = (conf->failover ? conf->failover_after : conf->repl_timeout) -
	    conf->heartbeat;
	heard = now - follow_heard();
	board_get(pname, sizeof(pname), board->primary_name);
	why[0] = '\0';
	if (mode == ROLE_PRIMARY)
		snprintf(why, sizeof(why), "%s is the primary of epoch %llu",
		    conf->name, (unsigned long long)known);
	else if (epoch == ns.fenced && strcmp(ns.voted, cand) == 0)
		grant = 1;	/* asked again */
	else if (epoch <= known)
		snprintf(why, sizeof(why), "%s knows of epoch %llu already",
		    conf->name, (unsigned long long)known);
	else if (cp.phase == 2 && epoch <= cp.epoch && !(epoch == cp.epoch &&
	    !pre && cp.votes < cp.need && strcmp(cand, conf->name) < 0 &&
	    cepoch == cp.mt.epoch && clsn == cp.mt.lsn))
		/*
		 * (Two candidates at one position for one epoch: the one
		 * with the larger name gives its vote to the other and
		 * stops, unless it has won already.)
		 */
		snprintf(why, sizeof(why), "%s is a candidate for epoch %llu "
		    "itself", conf->name, (unsigned long long)cp.epoch);
	else if (conf->failover_alone && repl_eligible(conf, known) != NULL)
		/*
		 * The primary of <known> may be answering commits alone:
		 * nobody takes over before it has been followed.
		 */
		snprintf(why, sizeof(why), "%s knows of epoch %llu and has not "
		    "followed its primary yet (failover alone)", conf->name,
		    (unsigned long long)known);
	else if (heard < d)
		snprintf(why, sizeof(why), "%s heard its primary %s %llu ms "
		    "ago", conf->name, pname[0] ? pname : "?",
		    (unsigned long long)heard);
	else if (mt.epoch > cepoch || (mt.epoch == cepoch && mt.lsn > clsn))
		snprintf(why, sizeof(why), "%s is ahead: LSN %llu of epoch "
		    "%llu", conf->name, (unsigned long long)mt.lsn,
		    (unsigned long long)mt.epoch);
	else
		grant = 1;
	if (grant && !pre && !(epoch == ns.fenced &&
	    strcmp(ns.voted, cand) == 0)) {
		/*
		 * Binding: from now on this node acknowledges nothing of
		 * an epoch before <epoch> (its START carries <epoch>, which
		 * fences an old primary), and follows the candidate.
		 */
		follow_reset("voted for another primary");
		ns.fenced = epoch;
		strlcpy(ns.voted, cand, sizeof(ns.voted));
		strlcpy(ns.follow, caddr, sizeof(ns.follow));
		if (state_save(conf->statefile, &ns) == -1) {
			log_warn("%s", conf->statefile);
			snprintf(why, sizeof(why), "%s cannot save its vote",
			    conf->name);
			grant = 0;
		} else {
			atomic_store(&board->promised, epoch);
			board_set(board->follow, sizeof(board->follow),
			    caddr);
			stats_inc(m.votes);
			if (cp.phase != 0 && cp.epoch <= epoch) {
				log_info("election for epoch %llu stopped: "
				    "voted for %s", (unsigned long long)cp.epoch,
				    cand);
				campaign_stop(conf->failover_after);
			}
			log_warnx("voted for %s (%s) as the primary of epoch "
			    "%llu: primary %s silent for %llu ms here; "
			    "following %s", cand, caddr,
			    (unsigned long long)epoch, pname[0] ? pname : "?",
			    (unsigned long long)heard, cand);
			board_note("voted for %s, epoch %llu", cand,
			    (unsigned long long)epoch);
			/* give it the time to win */
			next_try = now + conf->failover_after;
		}
	} else if (!grant)
		log_info("%s of %s for epoch %llu: no: %s", pre ? "pre-vote" :
		    "vote", cand, (unsigned long long)epoch, why);
	fw_begin(&w, out, MSG_VOTE_REPLY);
	fw_u32(&w, grant);
	fw_u64(&w, known);
	fw_u64(&w, mt.lsn);
	fw_str(&w, conf->name);
	fw_str(&w, why);
	fw_end(&w);
}

/*
 * The same question, blocking, for the master before it forks: 0 with
 * the peer's role, epoch, name and (a replica's) primary, or -1.
 */
int
probe_peer(const struct dbrepd_conf *dc, const struct net_addr *a,
    int *role, uint64_t *epoch, char *node, size_t nodelen, char *prepl,
    size_t prepllen)
{
	struct hello	 h;
	struct buf	 in, out;
	struct fw	 w;
	struct fr	 r;
	const uint8_t	*p;
	uint8_t		 cnonce[DBREP_NONCELEN], mac[DBREP_MACLEN];
	uint64_t	 deadline = ev_monotonic_ms() + DBREP_PROBE_TIMEOUT;
	struct sock	 sk;
	size_t		 len, size;
	int		 fd, type, rc = -1;
	char		 why[256];

	if ((fd = net_connect_wait(a, DBREP_PROBE_TIMEOUT)) == -1)
		return (-1);
	sock_init(&sk, fd);
	buf_init(&in, 8192);
	buf_init(&out, 4096);
	if (dc->rtls != NULL && (link_tls_client(&sk, dc->rtls, dc->rtls_name,
	    a) == -1 || io_handshake(&sk, deadline) == -1)) {
		log_warnx("peer %s: %s", a->text, link_error(&sk, errno, why,
		    sizeof(why)));
		goto done;
	}
	if (io_frame(&sk, &in, 4096, deadline, 0, &type, &p, &len,
	    &size) != 1 || type != MSG_HELLO || hello_parse(p, len, &h) == -1)
		goto done;
	buf_consume(&in, size);
	auth_nonce(cnonce);
	auth_mac(dc->secret, dc->secretlen, "dbrep client", h.nonce, cnonce,
	    mac);
	fw_begin(&w, &out, MSG_AUTH);
	fw_bytes(&w, cnonce, sizeof(cnonce));
	fw_bytes(&w, mac, sizeof(mac));
	if (fw_end(&w) == -1 || io_send(&sk, buf_head(&out), buf_used(&out),
	    deadline) == -1)
		goto done;
	if (io_frame(&sk, &in, 4096, deadline, 0, &type, &p, &len,
	    &size) != 1 || type != MSG_AUTH_OK)
		goto done;
	fr_init(&r, p, len);
	if (fr_fixed(&r, mac, sizeof(mac)) == -1 || !fr_done(&r) ||
	    !auth_check(dc->secret, dc->secretlen, "dbrep server", cnonce,
	    h.nonce, mac))
		goto done;
	*role = h.role;
	*epoch = h.epoch;
	strlcpy(node, h.node, nodelen);
	strlcpy(prepl, h.prepl, prepllen);
	rc = 0;
 done:
	link_free(&sk);
	close(fd);
	buf_free(&in);
	buf_free(&out);
	return (rc);
}

static void
tick_event(struct ev_timer *t)
{
	uint64_t	now = ev_now(&loop);

	if (mode == ROLE_PRIMARY)
		ship_tick();
	else
		follow_tick();
	/* every second, or at once when the log is well over its bound */
	if (now - last_prune >= 1000 || atomic_load(&board->lsn) -
	    atomic_load(&board->log_first) > conf->log_max_records +
	    conf->log_max_records / 8) {
		last_prune = now;
		prune();
	}
	if (conf->npeers > 0 && now - last_probe >= conf->peer_check) {
		if (mode == ROLE_PRIMARY) {
			last_probe = now;
			probe_all(PK_EPOCH, DBREP_PROBE_TIMEOUT);
		} else if (cp.phase == 0 && !atomic_load(&board->connected) &&
		    now - follow_heard() >= conf->peer_check) {
			/* no primary to follow: is there one among the peers? */
			last_probe = now;
			probe_all(PK_FIND, DBREP_PROBE_TIMEOUT);
		}
	}
	if (mode == ROLE_REPLICA)
		campaign_tick(now);
	ev_timer_add(&loop, &tick, REPL_TICK);
}

/* The replication listener; its arg is non-NULL when it speaks TLS. */
static void
accept_event(struct ev_io *io, uint32_t events)
{
	int	fd, i;

	for (i = 0; i < 16; i++) {
		if ((fd = accept4(io->fd, NULL, NULL, SOCK_NONBLOCK |
		    SOCK_CLOEXEC)) == -1) {
			if (errno != EAGAIN && errno != EINTR &&
			    errno != ECONNABORTED)
				log_warn("accept");
			return;
		}
		ship_accept(fd, io->arg != NULL);
	}
}

static void
repl_drain(struct proc_worker *w)
{
	int	i;

	for (i = 0; i < w->ps->nlisteners; i++)
		if (lio[i].active)
			ev_io_del(&loop, &lio[i]);
	cp.phase = 0;
	for (i = 0; i < conf->npeers; i++)
		probe_end(&probes[i]);
	mode_stop();
	ship_close_all();
}

int
repl_main(struct proc_worker *w)
{
	char	err[512];
	int	i;

	self = w;
	conf = w->conf;
	if (ev_init(&loop) == -1)
		fatal("epoll");
	if ((db = db_open(conf, DB_APPLY, err, sizeof(err))) == NULL)
		fatalx("%s", err);
	atomic_store(&board->repl_pid, getpid());
	if ((bellfd = bell_open()) == -1)
		fatal("%s: doorbell", __func__);
	if (ev_io_add(&loop, &bellio, bellfd, EPOLLIN, bell_event, NULL) ==
	    -1)
		fatal("%s: ev_io_add", __func__);
	for (i = 0; i < w->ps->nlisteners; i++)
		if (w->ps->listeners[i].arg == LISTEN_REPL &&
		    ev_io_add(&loop, &lio[i], w->ps->listeners[i].fd,
		    EPOLLIN, accept_event, (conf->tls_listeners &
		    (1ULL << i)) ? conf->tls : NULL) == -1)
			fatal("%s: ev_io_add", __func__);
	repoint_seen = atomic_load(&board->repoint_req);
	if (atomic_load(&board->promote_req) !=
	    atomic_load(&board->promote_done))
		want_promote = 1;
	stats_gauge_set(m.epoch, atomic_load(&board->epoch));
	stats_gauge_set(m.lsn, atomic_load(&board->lsn));
	ship_init(&loop, conf, db);
	mode_start(atomic_load(&board->role));
	ev_timer_init(&tick, tick_event, NULL);
	ev_timer_add(&loop, &tick, REPL_TICK);
	loop.after = after;
	w->drain = repl_drain;
	if (proc_worker_watch(w, &loop) == -1)
		fatal("proc_worker_watch");
	ev_run(&loop);
	{
		pid_t	me = getpid();

		atomic_compare_exchange_strong(&board->repl_pid, &me, 0);
	}
	ship_close_all();
	ship_collect();
	db_close(db);
	close(bellfd);
	ev_free(&loop);
	return (0);
}
