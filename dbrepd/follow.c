/*
 * follow.c: a replica's receiver and applier.
 *
 * It connects to the primary's replication port (board->follow), checks
 * the HELLO, authenticates both ways and sends its position.  Records
 * that arrive together are applied in one transaction (apply.c), up to
 * DBREP_BATCH_RECORDS, and acknowledged once committed: an ACK means the
 * records are durable and visible on this replica.  Heartbeats carry the
 * primary's LSN (lag) and are answered.  A snapshot is received into
 * "<data>.snap-recv", checked, and installed atomically (snapshot.c);
 * records this node has that the primary's history lacks are first kept
 * aside.  Any failure closes the link and a timer reconnects with a
 * growing delay.  The last frame heard from the primary is kept: with
 * "failover auto" a long silence starts an election (repl.c), and a
 * node that heard its primary lately refuses to vote in another's.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "event.h"
#include "log.h"
#include "stats.h"
#include "dbrepd.h"

#define F_IDLE		0
#define F_CONNECT	1
#define F_HELLO		2
#define F_AUTH		3
#define F_START		4
#define F_STREAM	5
#define F_SNAP		6

static struct ev_loop			*loop;
static const struct dbrepd_conf		*conf;
static sqlite3				*db;
static int				 running;
static int				 state;
static struct sock			 sk;		/* and its ev_io */
static struct net_addr			 peer;		/* its address */
static struct ev_timer			 retry;
static struct buf			 in, out;
static uint64_t				 backoff;
static uint64_t				 last_rx;
static uint64_t				 heard;		/* mono ms */
static struct hello			 hello;
static uint8_t				 cnonce[DBREP_NONCELEN];
static struct meta			 mt;
static int				 want_snapshot;
static char				 addr[NET_ADDRSTRLEN];
static struct record			*batch;
static int				 nbatch;
static uint64_t				 pending_ts;	/* oldest unapplied */
static uint64_t				 last_err_log;
/* a snapshot being received */
static int				 snap_fd = -1;
static char				 snap_path[PATH_MAX + 16];
static uint64_t				 snap_lsn, snap_epoch, snap_size;
static uint64_t				 snap_got, snap_fork;
static uint8_t				 snap_hash[DBREP_HASHLEN];
static EVP_MD_CTX			*snap_md;

static void	link_close(const char *, int);
static void	link_connect(struct ev_timer *);
static void	flush_out(void);

static void
snap_abort(void)
{
	if (snap_fd != -1) {
		close(snap_fd);
		snap_fd = -1;
		unlink(snap_path);
	}
	EVP_MD_CTX_free(snap_md);
	snap_md = NULL;
}

static void
send_ack_of(uint64_t lsn)
{
	struct fw	w;

	fw_begin(&w, &out, MSG_ACK);
	fw_u64(&w, lsn);
	fw_u64(&w, now_ms());
	fw_end(&w);
}

static void
send_ack(void)
{
	send_ack_of(mt.lsn);
}

/*
 * Receiving a snapshot: say so each heartbeat, with an ACK of LSN 0 (it
 * holds nothing of the snapshot yet, and a primary takes no LSN from
 * it), so that a slow one is not taken for a dead one.
 */
static void
snap_alive(void)
{
	static uint64_t	last;
	uint64_t	now = ev_time_update(loop);

	if (state == F_SNAP && now - last >= conf->heartbeat) {
		last = now;
		send_ack_of(0);
		flush_out();
	}
}

static void
publish(void)
{
	uint64_t	plsn = atomic_load(&board->primary_lsn);

	board_set_lsn(mt.lsn, mt.ts);
	if (mt.epoch > atomic_load(&board->epoch))
		atomic_store(&board->epoch, mt.epoch);
	if (plsn < mt.lsn)
		atomic_store(&board->primary_lsn, (plsn = mt.lsn));
	stats_gauge_set(m.lsn, mt.lsn);
	stats_gauge_set(m.epoch, atomic_load(&board->epoch));
	stats_gauge_set(m.lag_records, plsn - mt.lsn);
	board_wake();
}

/* Apply the records gathered; 0, or -1 when the link must close. */
static int
batch_apply(void)
{
	char		err[512];
	uint64_t	before = mt.lsn, bytes = 0;
	int		rc, i;

	if (nbatch == 0)
		return (0);
	rc = apply_records(db, batch, nbatch, &mt, err, sizeof(err));
	for (i = 0; i < nbatch; i++)
		if (batch[i].lsn > before && batch[i].lsn <= mt.lsn)
			bytes += batch[i].len;
	nbatch = 0;
	if (rc == 0) {
		atomic_fetch_add(&board->log_bytes, bytes);
		stats_add(m.applied, mt.lsn - before);
		stats_observe(m.apply_batches, (double)(mt.lsn - before));
		publish();
		send_ack();
		return (0);
	}
	if (rc == -2) {
		log_warnx("cannot apply the primary's records: %s; asking for "
		    "a snapshot", err);
		board_note("diverged: %s", err);
		stats_inc(m.diverged);
		want_snapshot = 1;
	} else if (ev_now(loop) - last_err_log > 10000) {
		last_err_log = ev_now(loop);
		log_warnx("apply failed, will retry: %s", err);
		board_note("apply failed: %s", err);
	}
	return (-1);
}

static void
do_hello(const uint8_t *p, size_t n)
{
	struct fw	w;
	uint8_t		mac[DBREP_MACLEN];

	if (hello_parse(p, n, &hello) == -1) {
		link_close("malformed HELLO", 1);
		return;
	}
	if (!(hello.flags & HELLO_REPL)) {
		link_close("not a replication port", 1);
		return;
	}
	if (strcmp(hello.node, conf->name) == 0) {
		link_close("that is this node (two nodes with one name?)", 1);
		return;
	}
	/* (not past a vote: the candidate is not the primary yet) */
	if (hello.role != ROLE_PRIMARY && hello.prepl[0] != '\0' &&
	    strcmp(hello.prepl, addr) != 0 &&
	    strcmp(hello.prepl, conf->repladdr) != 0 &&
	    hello.epoch >= atomic_load(&board->epoch) &&
	    hello.epoch >= atomic_load(&board->promised)) {
		log_info("%s (%s) is a replica of %s: following that",
		    hello.node, addr, hello.prepl);
		board_set(board->follow, sizeof(board->follow), hello.prepl);
		link_close(NULL, 0);
		return;
	}
	auth_nonce(cnonce);
	auth_mac(conf->secret, conf->secretlen, "dbrep client", hello.nonce,
	    cnonce, mac);
	fw_begin(&w, &out, MSG_AUTH);
	fw_bytes(&w, cnonce, sizeof(cnonce));
	fw_bytes(&w, mac, sizeof(mac));
	fw_end(&w);
	state = F_AUTH;
}

static void
do_auth_ok(const uint8_t *p, size_t n)
{
	struct nodestate	ns;
	struct fr		r;
	struct fw		w;
	uint8_t			mac[DBREP_MACLEN];
	uint64_t		epoch;

	fr_init(&r, p, n);
	if (fr_fixed(&r, mac, sizeof(mac)) == -1 || !fr_done(&r) ||
	    !auth_check(conf->secret, conf->secretlen, "dbrep server", cnonce,
	    hello.nonce, mac)) {
		link_close("the primary does not know the secret", 1);
		return;
	}
	if (db_meta(db, &mt) == -1) {
		link_close("cannot read this node's position", 1);
		return;
	}
	epoch = mt.epoch;
	if (state_load(conf->statefile, &ns) == 0 && ns.fenced > epoch)
		epoch = ns.fenced;
	if (hello.epoch < epoch)
		log_warnx("%s (%s) is at epoch %llu, behind this node's %llu: "
		    "it cannot be our primary", hello.node, addr,
		    (unsigned long long)hello.epoch,
		    (unsigned long long)epoch);
	board_set(board->primary_name, sizeof(board->primary_name),
	    hello.node);
	board_set(board->primary_client, sizeof(board->primary_client),
	    hello.pclient);
	fw_begin(&w, &out, MSG_START);
	fw_str(&w, conf->name);
	fw_u64(&w, epoch);
	fw_u64(&w, mt.epoch);
	fw_u64(&w, mt.lsn);
	fw_bytes(&w, mt.hash, DBREP_HASHLEN);
	fw_u32(&w, (uint32_t)sqlite3_libversion_number());
	fw_u32(&w, want_snapshot ? START_SNAPSHOT : 0);
	fw_end(&w);
	state = F_START;
}

static void
do_heartbeat(const uint8_t *p, size_t n)
{
	struct fr	r;
	uint64_t	lsn, epoch, ts;
	uint32_t	quorum, members, flags;

	fr_init(&r, p, n);
	lsn = fr_u64(&r);
	epoch = fr_u64(&r);
	(void)fr_u64(&r);
	ts = fr_u64(&r);
	quorum = fr_u32(&r);
	members = fr_u32(&r);
	flags = fr_u32(&r);
	if (!fr_done(&r)) {
		link_close("malformed heartbeat", 1);
		return;
	}
	/* what the primary says of its quorum: may it be failed over? */
	atomic_store(&board->p_quorum, (int)quorum);
	atomic_store(&board->p_members, (int)members);
	atomic_store(&board->p_flags, (int)flags);
	atomic_store(&board->p_epoch, epoch);
	if (lsn > atomic_load(&board->primary_lsn))
		atomic_store(&board->primary_lsn, lsn);
	atomic_store(&board->primary_ts, ts);
	if (epoch > atomic_load(&board->epoch))
		atomic_store(&board->epoch, epoch);
	send_ack();
}

static void
do_record(const uint8_t *p, size_t n)
{
	struct record	*r;
	struct fr	 fr;

	r = &batch[nbatch];
	memset(r, 0, sizeof(*r));
	fr_init(&fr, p, n);
	r->lsn = fr_u64(&fr);
	r->epoch = fr_u64(&fr);
	r->ts = fr_u64(&fr);
	fr_fixed(&fr, r->hash, sizeof(r->hash));
	r->body = fr_bytes(&fr, &r->len);
	if (!fr_done(&fr)) {
		link_close("malformed record", 1);
		return;
	}
	if (r->body == NULL)
		r->body = (const uint8_t *)"";
	if (nbatch == 0)
		pending_ts = r->ts;
	if (r->lsn > atomic_load(&board->primary_lsn))
		atomic_store(&board->primary_lsn, r->lsn);
	nbatch++;
}

static void
do_snap_begin(const uint8_t *p, size_t n)
{
	struct fr	r;
	char		reason[128];

	fr_init(&r, p, n);
	snap_lsn = fr_u64(&r);
	snap_epoch = fr_u64(&r);
	fr_fixed(&r, snap_hash, sizeof(snap_hash));
	snap_size = fr_u64(&r);
	snap_fork = fr_u64(&r);
	fr_strcpy(&r, reason, sizeof(reason));
	if (!fr_done(&r)) {
		link_close("malformed snapshot", 1);
		return;
	}
	log_info("receiving a snapshot at LSN %llu (%llu bytes) from %s: %s",
	    (unsigned long long)snap_lsn, (unsigned long long)snap_size,
	    hello.node, reason);
	snap_abort();
	snprintf(snap_path, sizeof(snap_path), "%s.snap-recv", conf->data);
	unlink(snap_path);
	if ((snap_fd = open(snap_path, O_WRONLY | O_CREAT | O_TRUNC |
	    O_CLOEXEC, 0600)) == -1) {
		log_warn("%s", snap_path);
		link_close(NULL, 1);
		return;
	}
	if ((snap_md = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(snap_md, EVP_sha256(), NULL) != 1) {
		link_close("out of memory", 1);
		return;
	}
	snap_got = 0;
	state = F_SNAP;
	atomic_store(&board->connected, 0);
}

static void
do_snap_data(const uint8_t *p, size_t n)
{
	struct fr	 r;
	const uint8_t	*d;
	size_t		 len, off = 0;
	ssize_t		 w;

	fr_init(&r, p, n);
	d = fr_bytes(&r, &len);
	if (!fr_done(&r) || snap_got + len > snap_size) {
		link_close("malformed snapshot data", 1);
		return;
	}
	while (off < len) {
		w = write(snap_fd, d + off, len - off);
		if (w <= 0) {
			log_warn("%s", snap_path);
			link_close(NULL, 1);
			return;
		}
		off += w;
	}
	EVP_DigestUpdate(snap_md, d, len);
	snap_got += len;
}

static void
do_snap_end(const uint8_t *p, size_t n)
{
	struct nodestate	ns;
	struct meta		sm;
	struct fr		r;
	uint8_t			want[DBREP_HASHLEN], got[DBREP_HASHLEN];
	unsigned int		gl = DBREP_HASHLEN;
	uint64_t		t0 = ev_monotonic_ms(), bytes;
	char			err[512], side[PATH_MAX + 64];
	int			k;

	fr_init(&r, p, n);
	if (fr_fixed(&r, want, sizeof(want)) == -1 || !fr_done(&r) ||
	    snap_got != snap_size) {
		link_close("malformed snapshot end", 1);
		return;
	}
	EVP_DigestFinal_ex(snap_md, got, &gl);
	if (memcmp(want, got, DBREP_HASHLEN) != 0) {
		link_close("snapshot damaged in transfer", 1);
		return;
	}
	if (fsync(snap_fd) == -1) {
		log_warn("%s", snap_path);
		link_close(NULL, 1);
		return;
	}
	close(snap_fd);
	snap_fd = -1;
	if (snap_verify(snap_path, &sm, err, sizeof(err)) == -1 ||
	    sm.lsn != snap_lsn || memcmp(sm.hash, snap_hash,
	    DBREP_HASHLEN) != 0) {
		log_warnx("snapshot refused: %s", sm.lsn != snap_lsn ?
		    "position differs" : err);
		unlink(snap_path);
		link_close(NULL, 1);
		return;
	}
	if (db_meta(db, &mt) == 0 && snap_fork != UINT64_MAX &&
	    mt.lsn > snap_fork) {
		k = snap_save_diverged(db, conf, snap_fork, side, sizeof(side),
		    err, sizeof(err));
		if (k > 0) {
			log_warnx("diverged: %d records after LSN %llu are not "
			    "in the primary's history; kept in %s", k,
			    (unsigned long long)snap_fork, side);
			board_note("diverged after LSN %llu: %d records kept "
			    "in %s", (unsigned long long)snap_fork, k, side);
		} else if (k == -1)
			log_warnx("diverged after LSN %llu; keeping the "
			    "records aside failed: %s",
			    (unsigned long long)snap_fork, err);
	}
	if (snap_install(db, snap_path, &mt, err, sizeof(err)) == -1) {
		log_warnx("snapshot install failed: %s", err);
		unlink(snap_path);
		link_close(NULL, 1);
		return;
	}
	unlink(snap_path);
	want_snapshot = 0;
	if (state_load(conf->statefile, &ns) == 0 && ns.fenced != 0 &&
	    ns.fenced <= mt.epoch) {
		ns.fenced = 0;
		state_save(conf->statefile, &ns);
	}
	atomic_fetch_add(&board->snapshots, 1);
	if (db_log_bytes(db, &bytes) == 0)
		atomic_store(&board->log_bytes, bytes);
	atomic_store(&board->log_first, mt.prune_lsn + 1);
	stats_inc(m.snap_installed);
	log_info("snapshot installed: LSN %llu, epoch %llu (%llu ms)",
	    (unsigned long long)mt.lsn, (unsigned long long)mt.epoch,
	    (unsigned long long)(ev_monotonic_ms() - t0));
	board_note("snapshot installed at LSN %llu",
	    (unsigned long long)mt.lsn);
	publish();
	send_ack();
	state = F_STREAM;
	atomic_store(&board->connected, 1);
	EVP_MD_CTX_free(snap_md);
	snap_md = NULL;
}

static void
do_error(const uint8_t *p, size_t n)
{
	struct fr	r;
	char		msg[DBREP_MSGLEN + 64];
	uint32_t	code;

	fr_init(&r, p, n);
	code = fr_u32(&r);
	(void)fr_u32(&r);
	fr_strcpy(&r, msg, sizeof(msg));
	snprintf(msg + strlen(msg), sizeof(msg) - strlen(msg), " (code %u)",
	    code);
	link_close(msg, 1);
}

/* Handle the frames at the head of in; records go to the batch. */
static void
process(void)
{
	const uint8_t	*p;
	size_t		 size, used = 0, limit;
	int		 type, rc;

	limit = conf->max_txn + 1024 * 1024;
	while (state != F_IDLE) {
		rc = frame_peek(buf_head(&in) + used, buf_used(&in) - used,
		    limit, &type, &size);
		if (rc == 0)
			break;
		if (rc == -1) {
			link_close("frame too large", 1);
			return;
		}
		p = (const uint8_t *)buf_head(&in) + used + DBREP_HDRLEN;
		if (type >= MSG_STREAM && type <= MSG_SNAP_END &&
		    type != MSG_ACK && state >= F_START)
			heard = ev_now(loop);	/* the primary speaks */
		if (type == MSG_RECORD && state == F_STREAM) {
			do_record(p, size - DBREP_HDRLEN);
			used += size;
			if (nbatch == DBREP_BATCH_RECORDS) {
				if (batch_apply() == -1) {
					link_close(NULL, 1);
					return;
				}
				buf_consume(&in, used);
				used = 0;
			}
			continue;
		}
		/* anything else: apply what came before it first */
		if (batch_apply() == -1) {
			link_close(NULL, 1);
			return;
		}
		switch (type) {
		case MSG_HELLO:
			if (state == F_HELLO)
				do_hello(p, size - DBREP_HDRLEN);
			else
				link_close("unexpected HELLO", 1);
			break;
		case MSG_AUTH_OK:
			if (state == F_AUTH)
				do_auth_ok(p, size - DBREP_HDRLEN);
			else
				link_close("unexpected AUTH_OK", 1);
			break;
		case MSG_STREAM:
			if (state == F_START) {
				state = F_STREAM;
				backoff = 0;
				atomic_store(&board->connected, 1);
				stats_gauge_set(m.connected, 1);
				log_info("replicating from %s (%s) at LSN %llu",
				    hello.node, addr,
				    (unsigned long long)mt.lsn);
			} else
				link_close("unexpected STREAM", 1);
			break;
		case MSG_HEARTBEAT:
			if (state == F_STREAM)
				do_heartbeat(p, size - DBREP_HDRLEN);
			break;
		case MSG_SNAP_BEGIN:
			if (state == F_START || state == F_STREAM)
				do_snap_begin(p, size - DBREP_HDRLEN);
			else
				link_close("unexpected snapshot", 1);
			break;
		case MSG_SNAP_DATA:
			if (state == F_SNAP)
				do_snap_data(p, size - DBREP_HDRLEN);
			else
				link_close("unexpected snapshot data", 1);
			break;
		case MSG_SNAP_END:
			if (state == F_SNAP)
				do_snap_end(p, size - DBREP_HDRLEN);
			else
				link_close("unexpected snapshot end", 1);
			break;
		case MSG_ERROR:
			do_error(p, size - DBREP_HDRLEN);
			break;
		default:
			link_close("unexpected frame", 1);
		}
		if (state == F_IDLE)
			return;
		used += size;
	}
	if (state == F_IDLE)
		return;
	if (batch_apply() == -1) {
		link_close(NULL, 1);
		return;
	}
	buf_consume(&in, used);
}

static void
flush_out(void)
{
	ssize_t	n;

	while (state != F_IDLE && buf_used(&out) > 0) {
		n = link_write(&sk, &out);
		if (n == -1) {
			char	why[256];

			if (errno != EAGAIN)
				link_close(link_error(&sk, errno, why,
				    sizeof(why)), 1);
			return;
		}
	}
}

static void
link_event(struct ev_io *e, uint32_t events)
{
	ssize_t	n;
	int	err = 0, kick = 0;
	socklen_t sl = sizeof(err);
	char	why[256];

	sock_events(&sk, events);
	if (state == F_CONNECT) {
		if (getsockopt(sk.fd, SOL_SOCKET, SO_ERROR, &err, &sl) == -1 ||
		    err != 0) {
			errno = err;
			link_close(strerror(err), 1);
			return;
		}
		/* connected: EPOLLOUT again only once a write does not
		 * finish (sock.c) */
		if (ev_io_mod(loop, &sk.io, sk.io.events & ~EPOLLOUT) == -1) {
			link_close("epoll_ctl", 1);
			return;
		}
		state = F_HELLO;
		/* TLS: the client speaks first, and reading starts it */
		if (conf->rtls != NULL) {
			if (link_tls_client(&sk, conf->rtls, conf->rtls_name,
			    &peer) == -1) {
				link_close("TLS: out of memory", 1);
				return;
			}
			kick = 1;
		}
	}
	/* set by the event, or still set by a TLS read that waited for a
	 * write (sock.c) */
	if (kick || (sk.flags & SOCK_READABLE)) {
		size_t	got = 0;
		int	saved;

		for (;;) {
			n = link_read(&sk, &in);
			if (n == 0 || (n == -1 && errno != EAGAIN &&
			    errno != ENOBUFS)) {
				/*
				 * What came whole before the end is the
				 * primary's, and is applied (the end of a
				 * snapshot among it).
				 */
				saved = errno;
				process();
				if (state == F_IDLE)
					return;
				errno = saved;
				link_close(n == 0 && !(sk.flags &
				    SOCK_TLS_HS) ? "disconnected" :
				    link_error(&sk, n == 0 ? 0 : errno, why,
				    sizeof(why)), 1);
				return;
			}
			if (n > 0) {
				last_rx = ev_now(loop);
				got += n;
			}
			if (n == -1 && errno == EAGAIN)
				break;
			/*
			 * Full, or a while read: apply, so that no long
			 * pass over megabytes holds the loop (and its
			 * answers) at once.
			 */
			if (n == -1 || buf_room(&in) == 0 ||
			    got >= DBREP_READ_BATCH) {
				process();
				got = 0;
				if (state == F_IDLE)
					return;
				snap_alive();
				if (state == F_IDLE)
					return;
			}
		}
		process();
	}
	flush_out();
}

/*
 * Close the link; <why> is logged (NULL: already said), <again>
 * reconnects after a growing delay.
 */
static void
link_close(const char *why, int again)
{
	int	was = state;

	if (why != NULL && was != F_IDLE)
		log_info("replication link to %s: %s", addr[0] ? addr : "?",
		    why);
	if (sk.io.active) {
		ev_io_del(loop, &sk.io);
		link_free(&sk);
		close(sk.fd);
	}
	snap_abort();
	nbatch = 0;
	buf_reset(&in);
	buf_reset(&out);
	state = F_IDLE;
	atomic_store(&board->connected, 0);
	stats_gauge_set(m.connected, 0);
	if (!running)
		return;
	if (!again) {
		backoff = 0;
		ev_timer_add(loop, &retry, 1);
		return;
	}
	backoff = backoff == 0 ? DBREP_RECONNECT_MIN : backoff * 2;
	if (backoff > DBREP_RECONNECT_MAX)
		backoff = DBREP_RECONNECT_MAX;
	ev_timer_add(loop, &retry, backoff);
}

static void
link_connect(struct ev_timer *t)
{
	char		err[256];
	int		fd;

	if (!running || state != F_IDLE)
		return;
	board_get(addr, sizeof(addr), board->follow);
	if (addr[0] == '\0') {
		ev_timer_add(loop, &retry, 1000);
		return;
	}
	if (net_addr_parse(addr, &peer, err, sizeof(err)) == -1) {
		log_warnx("replication: %s: %s", addr, err);
		ev_timer_add(loop, &retry, DBREP_RECONNECT_MAX);
		return;
	}
	if ((fd = net_connect(&peer)) == -1) {
		state = F_CONNECT;	/* so that it is logged once */
		link_close(strerror(errno), 1);
		return;
	}
	stats_inc(m.reconnects);
	sock_init(&sk, fd);
	state = F_CONNECT;
	last_rx = ev_now(loop);
	if (sock_watch_connect(loop, &sk, link_event, NULL) == -1) {
		close(fd);
		link_close("ev_io_add", 1);
	}
}

void
follow_start(struct ev_loop *l, const struct dbrepd_conf *c, sqlite3 *d)
{
	loop = l;
	conf = c;
	db = d;
	running = 1;
	if (batch == NULL && (batch = calloc(DBREP_BATCH_RECORDS,
	    sizeof(*batch))) == NULL)
		fatal("%s", __func__);
	buf_init(&in, conf->max_txn + 2 * 1024 * 1024);
	buf_init(&out, 1024 * 1024);
	atomic_store(&board->writable, 0);
	heard = ev_now(loop);
	db_meta(db, &mt);
	/*
	 * a primary stepping down: its workers' last commits may not be
	 * flushed yet (group commit), and what is published counts as
	 * flushed
	 */
	db_sync(db);
	publish();
	ev_timer_init(&retry, link_connect, NULL);
	ev_timer_add(loop, &retry, 1);
}

/* When the primary was last heard (or following it began), mono ms. */
uint64_t
follow_heard(void)
{
	return (heard);
}

/*
 * Close the link now, whatever it was doing (a vote was given: nothing
 * more of the old primary is acknowledged); it reconnects to
 * board->follow.
 */
void
follow_reset(const char *why)
{
	if (!running)
		return;
	heard = ev_now(loop);
	if (state != F_IDLE)
		link_close(why, 0);
}

void
follow_stop(void)
{
	if (!running)
		return;
	running = 0;
	if (state != F_IDLE)
		link_close(NULL, 0);
	ev_timer_del(loop, &retry);
	buf_free(&in);
	buf_free(&out);
	free(batch);
	batch = NULL;
}

void
follow_tick(void)
{
	uint64_t	now = ev_now(loop), plsn, lag = 0;

	if (!running)
		return;
	if (state != F_IDLE && now - last_rx > conf->repl_timeout) {
		link_close("timed out", 1);
		return;
	}
	plsn = atomic_load(&board->primary_lsn);
	if (plsn > mt.lsn) {
		uint64_t	ts = nbatch > 0 ? pending_ts :
		    atomic_load(&board->primary_ts);

		if (ts != 0 && now_ms() > ts)
			lag = now_ms() - ts;
	}
	atomic_store(&board->lag_ms, lag);
	stats_gauge_set(m.lag_ms, lag);
	stats_gauge_set(m.lag_records, plsn > mt.lsn ? plsn - mt.lsn : 0);
	snap_alive();
	if (state != F_IDLE)
		flush_out();
}
