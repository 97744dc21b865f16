/*
 * repl.c: the replication process.
 *
 * One per node.  It serves the replication port in every role (ship.c:
 * a primary streams its log there; any node answers the HELLO that peers
 * probe), and runs the node's role:
 *
 *	primary	stream to replicas, count their acknowledgements for the
 *		quorum, prune the log, and probe the peers: a peer at a
 *		later epoch fences this node (no more writes) and makes it
 *		a replica of that epoch's primary
 *	replica	follow the primary (follow.c): apply, acknowledge, take a
 *		snapshot when told
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

struct probe {
	struct ev_io	 io;
	struct ev_timer	 timer;
	struct buf	 in;
	int		 state;		/* 0 connecting, 1 hello, 2 auth */
	int		 idx;
	struct hello	 h;
	uint8_t		 cnonce[DBREP_NONCELEN];
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

/* mode changes wanted, made in after() */
static uint64_t			 want_fence;
static char			 want_follow[NET_ADDRSTRLEN];
static int			 want_promote, want_repoint;

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

static void
do_promote(void)
{
	struct nodestate	ns;
	struct meta		mt;
	uint64_t		t0 = ev_monotonic_ms(), epoch;
	uint32_t		req = atomic_load(&board->promote_req);
	char			err[512], msg[256];

	want_promote = 0;
	if (mode == ROLE_PRIMARY && atomic_load(&board->writable)) {
		snprintf(msg, sizeof(msg), "node %s is the primary already",
		    conf->name);
		atomic_store(&board->promote_rc, 0);
		goto done;
	}
	mode_stop();
	if (state_load(conf->statefile, &ns) == -1)
		memset(&ns, 0, sizeof(ns));
	if (db_meta(db, &mt) == -1) {
		snprintf(msg, sizeof(msg), "promotion failed: %s",
		    sqlite3_errmsg(db));
		goto fail;
	}
	epoch = mt.epoch;
	if (ns.fenced > epoch)
		epoch = ns.fenced;
	if (atomic_load(&board->epoch) > epoch)
		epoch = atomic_load(&board->epoch);
	epoch++;
	board_wlock();
	if (apply_epoch(db, epoch, conf->name, &mt, err, sizeof(err)) != 0) {
		board_wunlock();
		snprintf(msg, sizeof(msg), "promotion failed: %.200s", err);
		goto fail;
	}
	ns.fenced = 0;
	ns.follow[0] = '\0';
	if (state_save(conf->statefile, &ns) == -1)
		log_warn("%s", conf->statefile);
	atomic_store(&board->epoch, epoch);
	atomic_store(&board->lsn, mt.lsn);
	atomic_store(&board->lsn_ts, mt.ts);
	atomic_store(&board->quorum_lsn, mt.lsn);
	atomic_store(&board->degraded, 0);
	board_set(board->primary_client, sizeof(board->primary_client),
	    conf->advertise);
	board_set(board->primary_name, sizeof(board->primary_name),
	    conf->name);
	board_set(board->follow, sizeof(board->follow), "");
	atomic_store(&board->writable, 1);
	board_wunlock();
	stats_gauge_set(m.epoch, epoch);
	mode_start(ROLE_PRIMARY);
	snprintf(msg, sizeof(msg), "node %s promoted to primary: epoch %llu "
	    "starts at LSN %llu (%llu ms)", conf->name,
	    (unsigned long long)epoch, (unsigned long long)mt.lsn,
	    (unsigned long long)(ev_monotonic_ms() - t0));
	log_info("%s", msg);
	board_note("promoted to epoch %llu at LSN %llu",
	    (unsigned long long)epoch, (unsigned long long)mt.lsn);
	atomic_store(&board->promote_rc, 0);
	goto done;
 fail:
	log_warnx("%s", msg);
	atomic_store(&board->promote_rc, -1);
	mode_start(ROLE_REPLICA);
 done:
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
	if (self->draining) {
		if (!ship_busy())
			ev_break(l);
		return;
	}
	if (want_promote)
		do_promote();
	if (want_fence)
		do_fence();
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
		/* a worker may have died between its commit and the board */
		board_lsn_max(mt.lsn);
		stats_gauge_set(m.lsn, atomic_load(&board->lsn));
	}
}

/* Probing the peers: is there a later epoch? */

static void
probe_end(struct probe *p)
{
	if (p->io.active) {
		ev_io_del(&loop, &p->io);
		close(p->io.fd);
	}
	ev_timer_del(&loop, &p->timer);
	buf_free(&p->in);
}

static void
probe_judge(struct probe *p)
{
	const char	*addr;

	if (p->h.epoch <= atomic_load(&board->epoch) || mode !=
	    ROLE_PRIMARY)
		return;
	addr = p->h.role == ROLE_PRIMARY ? conf->peers[p->idx].text :
	    p->h.prepl;
	log_warnx("peer %s (%s) is at epoch %llu", p->h.node,
	    conf->peers[p->idx].text, (unsigned long long)p->h.epoch);
	repl_fence(p->h.epoch, addr);
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
	int		 type, rc, err = 0;
	socklen_t	 sl = sizeof(err);

	if (p->state == 0) {
		if (getsockopt(io->fd, SOL_SOCKET, SO_ERROR, &err, &sl) ==
		    -1 || err != 0) {
			probe_end(p);
			return;
		}
		p->state = 1;
	}
	for (;;) {
		ssize_t	n = buf_read_fd(&p->in, io->fd, 0);

		if (n == 0 || (n == -1 && errno != EAGAIN)) {
			probe_end(p);
			return;
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
			(void)write(io->fd, buf_head(&out), buf_used(&out));
			buf_free(&out);
			p->state = 2;
		} else if (p->state == 2 && type == MSG_AUTH_OK) {
			fr_init(&r, pl, len);
			if (fr_fixed(&r, mac, sizeof(mac)) == 0 &&
			    fr_done(&r) && auth_check(conf->secret,
			    conf->secretlen, "dbrep server", p->cnonce,
			    p->h.nonce, mac))
				probe_judge(p);
			probe_end(p);
			return;
		} else {
			probe_end(p);
			return;
		}
		buf_consume(&p->in, size);
	}
	if (rc == -1)
		probe_end(p);
}

static void
probe_timeout(struct ev_timer *t)
{
	probe_end(t->arg);
}

static void
probe_all(void)
{
	struct probe	*p;
	int		 i, fd;

	for (i = 0; i < conf->npeers; i++) {
		p = &probes[i];
		if (p->io.active)
			continue;
		memset(p, 0, sizeof(*p));
		p->idx = i;
		if ((fd = net_connect(&conf->peers[i])) == -1)
			continue;
		buf_init(&p->in, 8192);
		ev_timer_init(&p->timer, probe_timeout, p);
		if (ev_io_add(&loop, &p->io, fd, EPOLLIN | EPOLLOUT | EPOLLET,
		    probe_event, p) == -1) {
			close(fd);
			buf_free(&p->in);
			continue;
		}
		ev_timer_add(&loop, &p->timer, DBREP_PROBE_TIMEOUT);
	}
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
	size_t		 len, size;
	int		 fd, type, rc = -1;

	if ((fd = net_connect_wait(a, DBREP_PROBE_TIMEOUT)) == -1)
		return (-1);
	buf_init(&in, 8192);
	buf_init(&out, 4096);
	if (io_frame(fd, &in, 4096, deadline, &type, &p, &len, &size) != 1 ||
	    type != MSG_HELLO || hello_parse(p, len, &h) == -1)
		goto done;
	buf_consume(&in, size);
	auth_nonce(cnonce);
	auth_mac(dc->secret, dc->secretlen, "dbrep client", h.nonce, cnonce,
	    mac);
	fw_begin(&w, &out, MSG_AUTH);
	fw_bytes(&w, cnonce, sizeof(cnonce));
	fw_bytes(&w, mac, sizeof(mac));
	if (fw_end(&w) == -1 || io_send(fd, buf_head(&out), buf_used(&out),
	    deadline) == -1)
		goto done;
	if (io_frame(fd, &in, 4096, deadline, &type, &p, &len, &size) != 1 ||
	    type != MSG_AUTH_OK)
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
	if (mode == ROLE_PRIMARY && conf->npeers > 0 &&
	    now - last_probe >= conf->peer_check) {
		last_probe = now;
		probe_all();
	}
	ev_timer_add(&loop, &tick, REPL_TICK);
}

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
		ship_accept(fd);
	}
}

static void
repl_drain(struct proc_worker *w)
{
	int	i;

	for (i = 0; i < w->ps->nlisteners; i++)
		if (lio[i].active)
			ev_io_del(&loop, &lio[i]);
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
		    EPOLLIN, accept_event, NULL) == -1)
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
	db_close(db);
	close(bellfd);
	ev_free(&loop);
	return (0);
}
