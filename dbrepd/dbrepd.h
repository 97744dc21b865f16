/*
 * dbrepd.h: dbrepd, log shipping for SQLite.
 *
 * The primary runs each client request in BEGIN IMMEDIATE, records the
 * row changes as an SQLite changeset (rowcap.c) and appends them (with the
 * text of DDL statements, in execution order) to the log table
 * _dbrep_log in the same transaction, under the next LSN, the epoch and
 * a chained hash.  Its replication process pushes log records to the
 * replicas, which apply each batch in one transaction that also stores
 * the records, and acknowledge.  See dbrepd(8) and the files:
 *
 *	dbrepd.c	main, the conf grammar, setup in the master
 *	frame.c		the wire format (frames, fields), both protocols
 *	link.c		the links under the frames: plain or TLS,
 *			non-blocking and blocking I/O
 *	auth.c		the challenge-response on TCP connections
 *	record.c	log records: segments and the chained hash
 *	db.c		the database: schema, meta, node state, roles
 *	capture.c	the primary's write path
 *	rowcap.c	row changes as a changeset (the pre-update hook)
 *	apply.c		applying records on a replica
 *	snapshot.c	making, receiving and installing snapshots
 *	board.c		state shared by the processes; doorbells
 *	server.c	client workers: queries, waits, admin commands
 *	metrics.c	/metrics over the common HTTP engine
 *	repl.c		the replication process: roles, promotion,
 *			fencing, log pruning, elections
 *	ship.c		the primary's sender
 *	follow.c	the replica's receiver and applier
 *	client.c	the client library (dbrep.h), used by dbrepctl
 */
#ifndef DBREPD_H
#define DBREPD_H

#define SQLITE_ENABLE_SESSION		1
#define SQLITE_ENABLE_PREUPDATE_HOOK	1

#include <sys/types.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sqlite3.h>

#include "compat.h"
#include "buf.h"
#include "event.h"
#include "net.h"
#include "sock.h"
#include "dbrep.h"

struct proc_worker;
struct stats_metric;
struct tls_ctx;

/* Limits */
#define DBREP_HDRLEN		5		/* frame: length + type */
#define DBREP_MAXFRAME		(1U << 30)	/* any frame, hard limit */
#define DBREP_HASHLEN		32		/* SHA-256 */
#define DBREP_NONCELEN		32
#define DBREP_MACLEN		32		/* HMAC-SHA-256 */
#define DBREP_NAMELEN		64		/* node names */
#define DBREP_MAXREPLICAS	16		/* streaming to one primary */
#define DBREP_MAXPEERS		16
#define DBREP_MAXSTMTS		4096		/* statements per request */
#define DBREP_MAXSECRET		1024
#define DBREP_SNAPCHUNK		(256 * 1024)	/* bytes per SNAP_DATA */
#define DBREP_BATCH_RECORDS	2000		/* records per apply txn */
#define DBREP_BATCH_BYTES	(32 * 1024 * 1024)
#define DBREP_SEND_HIGH		(4 * 1024 * 1024) /* sender's buffer */
#define DBREP_READ_BATCH	(1024 * 1024)	/* replica: read, then apply */
#define DBREP_EPOCH_LEAP	1000000		/* a client's epoch past ours */
#define DBREP_FILL_ROWS		256		/* log rows read at once */
#define DBREP_TSRING		8192		/* (lsn, commit time) kept */
#define DBREP_RECONNECT_MIN	100		/* ms, replica back-off */
#define DBREP_RECONNECT_MAX	2000
#define DBREP_PROBE_TIMEOUT	1000		/* ms, a peer's hello */
#define DBREP_LINGER		500		/* ms, a leaving worker's conns */
#define DBREP_PROMOTE_TIMEOUT	10000		/* ms */
#define DBREP_VOTE_TIMEOUT	1000		/* ms, a round of votes */
#define DBREP_CONNECT_TIMEOUT	2000		/* ms, client: connect+HELLO */
#define DBREP_DOWN_TIME		1000		/* ms, client: node skipped */
#define DBREP_ALONE_NEAR	256		/* records: alone ends */
#define DBREP_PRUNE_BATCH	2000		/* log rows per delete */
#define DBREP_MAXWAITERS	1024		/* waiting clients per worker */

/* Frame types (frame.c has the format of each). */
enum dbrep_msg {
	MSG_HELLO = 1,
	MSG_AUTH = 2,
	MSG_AUTH_OK = 3,
	MSG_ERROR = 4,
	MSG_QUERY = 10,
	MSG_RESULT = 11,
	MSG_STATUS = 20,
	MSG_PROMOTE = 21,
	MSG_REPOINT = 22,
	MSG_ADMIN_OK = 23,
	MSG_SNAPSHOT = 24,
	MSG_START = 40,
	MSG_STREAM = 41,
	MSG_RECORD = 42,
	MSG_HEARTBEAT = 43,
	MSG_ACK = 44,
	MSG_SNAP_BEGIN = 45,
	MSG_SNAP_DATA = 46,
	MSG_SNAP_END = 47,
	MSG_VOTE = 48,
	MSG_VOTE_REPLY = 49
};

/* Roles of a node */
#define ROLE_NONE		0
#define ROLE_PRIMARY		1
#define ROLE_REPLICA		2

/* HELLO flags */
#define HELLO_AUTH		0x01	/* AUTH required before anything */
#define HELLO_WRITABLE		0x02
#define HELLO_REPL		0x04	/* the replication port */

/* QUERY flags */
#define QUERY_NOFOLLOW		0x01	/* (client side only) */
#define QUERY_EPOCH		0x02	/* a u64 epoch follows the wait */

/* HEARTBEAT flags: what the primary says of its quorum */
#define HB_FAILOVER		0x01	/* failover auto: members only, fail */
#define HB_COUNTS		0x02	/* this replica counts in the quorum */

/* VOTE flags */
#define VOTE_PRE		0x01	/* a question: nothing is promised */

/* START flags */
#define START_SNAPSHOT		0x01	/* the replica asks for one */

/* Log record segments */
#define SEG_CHANGESET		1
#define SEG_SQL			2
#define SEG_SEQUENCE		3
#define SEG_EPOCH		4

/* Listener kinds, the proc_listener arg */
#define LISTEN_CLIENT		((void *)(uintptr_t)1)
#define LISTEN_REPL		((void *)(uintptr_t)2)
#define LISTEN_METRICS		((void *)(uintptr_t)3)

struct dbrepd_conf {
	char		 name[DBREP_NAMELEN];
	char		 data[PATH_MAX];
	char		 statefile[PATH_MAX + 8];	/* <data>-node */
	int		 role;			/* bootstrap role */
	struct net_addr	 primary;		/* replica: replicate from */
	int		 has_primary;
	struct net_addr	 peers[DBREP_MAXPEERS];
	int		 npeers;
	char		 advertise[NET_ADDRSTRLEN]; /* clients reach us */
	char		 repladdr[NET_ADDRSTRLEN];  /* replicas reach us */
	char		*secret;
	size_t		 secretlen;
	int		 quorum;		/* 0: async */
	uint64_t	 quorum_timeout;	/* ms */
	int		 degrade;		/* on timeout: 1 degrade */
	int		 synchronous;		/* PRAGMA synchronous */
	int		 foreign_keys;
	int		 group_commit;
	uint64_t	 busy_timeout;
	uint64_t	 max_txn;
	uint64_t	 max_request;
	uint64_t	 max_result;
	uint64_t	 max_lsn_wait;
	uint64_t	 heartbeat;
	uint64_t	 repl_timeout;
	uint64_t	 peer_check;
	uint64_t	 idle_timeout;
	uint64_t	 log_min_records;
	uint64_t	 log_max_records;
	uint64_t	 log_max_size;
	int		 failover;		/* 1: auto */
	uint64_t	 failover_after;	/* ms of silence */
	int		 failover_alone;	/* a new epoch: alone first */
	struct net_acl	 acl;			/* allow, deny */
	struct net_acl	 repl_acl;		/* replication-allow, -deny */
	struct net_acl	 metrics_acl;		/* metrics-allow, -deny */
	struct tls_ctx	*tls;			/* "tls { }": listeners */
	uint64_t	 tls_listeners;		/* bit i: listener i is TLS */
	struct tls_ctx	*rtls;			/* replication-tls: links to
						   the other nodes, NULL */
	char		*rtls_name;		/* their certificates' name */
};

/*
 * Where a database is in the history: its last record (the last row of
 * _dbrep_log, or the last one pruned when the log is empty), and the
 * last record pruned (the row of _dbrep_meta).
 */
struct meta {
	uint64_t	 lsn;
	uint64_t	 epoch;		/* of the last record */
	uint64_t	 ts;		/* its commit time, ms since 1970 */
	uint8_t		 hash[DBREP_HASHLEN];
	uint64_t	 prune_lsn;	/* last record pruned, 0 */
	uint64_t	 prune_epoch;
	uint64_t	 prune_ts;
	uint8_t		 prune_hash[DBREP_HASHLEN];
};

/* A record as it travels: the body points into someone's buffer. */
struct record {
	uint64_t	 lsn;
	uint64_t	 epoch;
	uint64_t	 ts;
	uint8_t		 hash[DBREP_HASHLEN];
	const uint8_t	*body;
	size_t		 len;
};

/* What only this node knows, kept beside the database (<data>-node). */
struct nodestate {
	char		 follow[NET_ADDRSTRLEN];	/* repoint, "" */
	uint64_t	 fenced;	/* a higher epoch exists, 0 */
	char		 voted[DBREP_NAMELEN];	/* for epoch fenced, "" */
	uint64_t	 counted;	/* primary: replicas counted in it */
};

/* What a HELLO says. */
struct hello {
	uint32_t	 version;
	int		 role;
	int		 flags;
	uint64_t	 epoch;
	uint64_t	 lsn;
	char		 node[DBREP_NAMELEN];
	char		 pclient[NET_ADDRSTRLEN];	/* primary's, clients */
	char		 prepl[NET_ADDRSTRLEN];		/* primary's, replicas */
	uint8_t		 nonce[DBREP_NONCELEN];
};

/* Frame writing: errors are sticky and reported by fw_end(). */
struct fw {
	struct buf	*b;
	size_t		 start;		/* relative to b->off */
	int		 err;
};

/* Frame reading: never past len; errors are sticky. */
struct fr {
	const uint8_t	*p;
	size_t		 len;
	size_t		 off;
	int		 err;
};

/* A statement of a QUERY: its SQL, and a reader on its parameters. */
struct qstmt {
	const char	*sql;
	size_t		 len;
	uint32_t	 nparams;
	struct fr	 params;	/* at the first value */
};

/* Shared memory: one per daemon, mapped by the master (board.c). */
struct board_replica {
	_Atomic int	 used;
	_Atomic int	 streaming;	/* counts for the quorum */
	_Atomic int	 snapshot;	/* receiving a snapshot */
	_Atomic uint64_t acked;
	_Atomic uint64_t sent;
	_Atomic uint64_t lag_ms;
	_Atomic uint64_t since;		/* connected at, wall ms */
	_Atomic uint64_t seen;		/* last frame, wall ms */
	char		 name[DBREP_NAMELEN];
	char		 addr[NET_ADDRSTRLEN];
};

struct board_waiter {
	_Atomic pid_t	 pid;
	_Atomic uint64_t want_lsn;	/* the node's LSN to reach */
	_Atomic uint64_t want_quorum;	/* the quorum's LSN to reach */
	_Atomic int	 any;		/* any change (promotion) */
};

struct board {
	uint32_t		 magic;
	char			 token[24];	/* names the doorbells */
	pthread_mutex_t		 wlock;		/* the writers' lock */
	pthread_mutex_t		 lock;		/* strings below */
	_Atomic pid_t		 repl_pid;
	_Atomic int		 ring_sender;	/* commits wake it up */
	_Atomic int		 role;
	_Atomic int		 writable;
	_Atomic int		 degraded;	/* semi-sync fell back */
	_Atomic uint64_t	 epoch;
	_Atomic uint64_t	 lsn;		/* committed (and durable) or
						   applied */
	_Atomic uint64_t	 committed;	/* primary: committed, maybe
						   not flushed yet */
	_Atomic uint64_t	 synced;	/* primary: flushed to disk */
	_Atomic int		 sync_failed;	/* a flush failed: no more
						   writes, nothing published */
	_Atomic uint64_t	 lsn_ts;
	_Atomic uint64_t	 quorum_lsn;	/* held by the quorum */
	_Atomic uint64_t	 primary_lsn;	/* replica: last heard */
	_Atomic uint64_t	 primary_ts;	/* its commit time */
	_Atomic uint64_t	 primary_seen;	/* replica: wall ms */
	_Atomic int		 connected;	/* replica: streaming */
	/* replica: the quorum its primary announced (heartbeats) */
	_Atomic uint64_t	 p_epoch;	/* of that primary */
	_Atomic int		 p_quorum;
	_Atomic int		 p_members;
	_Atomic int		 p_flags;	/* HB_* */
	_Atomic uint64_t	 promised;	/* voted for this epoch */
	_Atomic uint64_t	 fence_hint;	/* a client saw this epoch */
	_Atomic uint64_t	 counted;	/* primary: epoch whose replicas
						   count (failover alone) */
	_Atomic uint64_t	 alone_upto;	/* last LSN answered alone */
	_Atomic uint64_t	 lag_ms;	/* replica's own view */
	_Atomic uint64_t	 log_first;
	_Atomic uint64_t	 log_bytes;
	_Atomic uint32_t	 promote_req;
	_Atomic uint32_t	 promote_done;
	_Atomic int		 promote_rc;
	_Atomic uint32_t	 repoint_req;
	_Atomic uint32_t	 repoint_done;
	_Atomic uint64_t	 snapshots;	/* installed here */
	char			 primary_name[DBREP_NAMELEN];	/* lock */
	char			 primary_client[NET_ADDRSTRLEN]; /* lock */
	char			 follow[NET_ADDRSTRLEN];	/* lock */
	char			 note[256];	/* lock: last event */
	char			 admin_msg[256]; /* lock: promote result */
	char			 peer_names[DBREP_MAXPEERS][DBREP_NAMELEN];
						/* lock: who answers there */
	struct board_waiter	 waiters[128];
	struct board_replica	 replicas[DBREP_MAXREPLICAS];
};

extern struct board	*board;


/* frame.c */
void		 fw_begin(struct fw *, struct buf *, int);
void		 fw_u8(struct fw *, uint8_t);
void		 fw_u32(struct fw *, uint32_t);
void		 fw_u64(struct fw *, uint64_t);
void		 fw_i64(struct fw *, int64_t);
void		 fw_f64(struct fw *, double);
void		 fw_bytes(struct fw *, const void *, size_t);
void		 fw_str(struct fw *, const char *);
void		 fw_value(struct fw *, const struct dbrep_value *);
int		 fw_end(struct fw *);
void		 fw_abort(struct fw *);
char		*fw_at(struct fw *, size_t);
size_t		 fw_pos(struct fw *);
int		 frame_peek(const void *, size_t, size_t, int *, size_t *);
void		 fr_init(struct fr *, const void *, size_t);
uint8_t		 fr_u8(struct fr *);
uint32_t	 fr_u32(struct fr *);
uint64_t	 fr_u64(struct fr *);
int64_t		 fr_i64(struct fr *);
double		 fr_f64(struct fr *);
const uint8_t	*fr_bytes(struct fr *, size_t *);
int		 fr_fixed(struct fr *, void *, size_t);
int		 fr_strcpy(struct fr *, char *, size_t);
char		*fr_strdup(struct fr *);
int		 fr_value(struct fr *, struct dbrep_value *);
int		 fr_done(const struct fr *);
void		 put_be64(uint8_t *, uint64_t);
uint64_t	 get_be64(const uint8_t *);
void		 put_be32(uint8_t *, uint32_t);
uint32_t	 get_be32(const uint8_t *);
int		 frame_error(struct buf *, int, int, const char *,
		    const char *, uint64_t);
int		 frame_hello(struct buf *, int, int, uint64_t, uint64_t,
		    const char *, const char *, const char *,
		    const uint8_t *);
int		 hello_parse(const uint8_t *, size_t, struct hello *);

/* link.c */
ssize_t		 link_read(struct sock *, struct buf *);
ssize_t		 link_write(struct sock *, struct buf *);
int		 link_tls_server(struct sock *, struct tls_ctx *);
int		 link_tls_client(struct sock *, struct tls_ctx *, const char *,
		    const struct net_addr *);
void		 link_free(struct sock *);
const char	*link_error(struct sock *, int, char *, size_t);
int		 io_handshake(struct sock *, uint64_t);
int		 io_send(struct sock *, const void *, size_t, uint64_t);
int		 io_frame(struct sock *, struct buf *, size_t, uint64_t,
		    unsigned, int *, const uint8_t **, size_t *, size_t *);

/* auth.c */
int		 auth_nonce(uint8_t *);
void		 auth_mac(const char *, size_t, const char *,
		    const uint8_t *, const uint8_t *, uint8_t *);
int		 auth_check(const char *, size_t, const char *,
		    const uint8_t *, const uint8_t *, const uint8_t *);

/* record.c */
uint64_t	 now_ms(void);		/* wall clock */
int		 seg_add(struct buf *, int, const void *, size_t);
int		 seg_next(struct fr *, int *, const uint8_t **, size_t *);
void		 chain_hash(const uint8_t *, uint64_t, uint64_t, uint64_t,
		    const void *, size_t, uint8_t *);
int		 record_verify(const struct record *, const uint8_t *);

/* db.c */
/* commits made durable by db_sync, in groups, not one by one by SQLite */
#define GROUP_COMMIT(c)	((c)->group_commit && (c)->synchronous >= 2)

#define DB_WRITER	0x01	/* the primary's client writes */
#define DB_READER	0x02	/* read only, for queries */
#define DB_APPLY	0x04	/* the replication process */
#define DB_CREATE	0x08
sqlite3		*db_open(const struct dbrepd_conf *, int, char *, size_t);
void		 db_close(sqlite3 *);
int		 db_exec(sqlite3 *, const char *);
int		 db_sync(sqlite3 *);
int		 db_schema(sqlite3 *, char *, size_t);
int		 db_meta(sqlite3 *, struct meta *);
int		 db_position(sqlite3 *, struct meta *);
int		 db_log_bytes(sqlite3 *, uint64_t *);
int		 db_log_append(sqlite3 *, const struct record *);
int		 db_latest_epoch(sqlite3 *, uint64_t *, uint64_t *, char *,
		    size_t);
int		 db_epoch_start(sqlite3 *, uint64_t, uint64_t *);
int		 db_table_ok(sqlite3 *, const char *, char *, size_t);
int		 db_vtabs_ok(sqlite3 *, char *, size_t);
int		 db_check_tables(sqlite3 *, char *, size_t);
int		 db_role(sqlite3 *, const struct dbrepd_conf *,
		    const struct nodestate *, uint64_t *);
int		 db_prune(sqlite3 *, uint64_t, struct meta *, uint64_t *);
int		 state_load(const char *, struct nodestate *);
int		 state_save(const char *, const struct nodestate *);

/* rowcap.c */
struct rowcap;
struct rowcap	*rowcap_new(sqlite3 *);
void		 rowcap_free(struct rowcap *);
int		 rowcap_begin(struct rowcap *);
void		 rowcap_end(struct rowcap *);
int		 rowcap_changeset(struct rowcap *, struct buf *);
size_t		 rowcap_memory(const struct rowcap *);
int		 rowcap_schema(const struct rowcap *);

/* capture.c */
struct capture;
struct capture	*capture_new(sqlite3 *, const struct dbrepd_conf *);
void		 capture_free(struct capture *);
struct qstmt	*capture_parse(struct fr *, uint32_t *, struct dbrep_error *);
int		 capture_classify(struct capture *, struct qstmt *, uint32_t,
		    struct dbrep_error *);
int		 capture_read(struct capture *, struct qstmt *, uint32_t,
		    uint64_t, struct buf *, struct dbrep_error *, uint64_t *);
int		 capture_write(struct capture *, struct qstmt *, uint32_t,
		    uint64_t, struct buf *, struct dbrep_error *, uint64_t *,
		    uint64_t *);

/* apply.c */
int		 apply_body(sqlite3 *, uint64_t, uint64_t, const uint8_t *,
		    size_t, char *, size_t);
int		 apply_records(sqlite3 *, const struct record *, int,
		    struct meta *, char *, size_t);
int		 apply_epoch(sqlite3 *, uint64_t, const char *, struct meta *,
		    char *, size_t);

/* snapshot.c */
int		 snap_tmpname(const struct dbrepd_conf *, pid_t, int, char *,
		    size_t);
int		 snap_make(const struct dbrepd_conf *, struct meta *,
		    uint64_t *, char *, size_t);
int		 snap_verify(const char *, struct meta *, char *, size_t);
int		 snap_install(sqlite3 *, const char *, struct meta *, char *,
		    size_t);
int		 snap_save_diverged(sqlite3 *, const struct dbrepd_conf *,
		    uint64_t, char *, size_t, char *, size_t);
void		 snap_cleanup(const char *);

/* board.c */
int		 board_init(void);
int		 bell_open(void);
void		 bell_ring(pid_t);
int		 bell_drain(int);
void		 board_wait(int, uint64_t, uint64_t, int);
void		 board_wake(void);
void		 board_lsn_max(uint64_t);
void		 board_set_lsn(uint64_t, uint64_t);
void		 board_max(_Atomic uint64_t *, uint64_t);
void		 board_get(char *, size_t, const char *);
void		 board_set(char *, size_t, const char *);
int		 board_wlock(void);
void		 board_wunlock(void);
void		 board_note(const char *, ...) __printflike(1, 2);

/* server.c */
int		 server_main(struct proc_worker *);
int		 acl_pass(const struct dbrepd_conf *, void *,
		    const struct sockaddr *);

/* metrics.c */
struct dbrep_metrics {
	struct stats_metric	*commits;
	struct stats_metric	*commit_errors;
	struct stats_metric	*queries;
	struct stats_metric	*query_errors;
	struct stats_metric	*commit_seconds;
	struct stats_metric	*group_syncs;
	struct stats_metric	*semisync_waits;
	struct stats_metric	*semisync_timeouts;
	struct stats_metric	*semisync_degraded;
	struct stats_metric	*semisync_seconds;
	struct stats_metric	*lsn;
	struct stats_metric	*epoch;
	struct stats_metric	*role;
	struct stats_metric	*log_records;
	struct stats_metric	*log_bytes;
	struct stats_metric	*applied;
	struct stats_metric	*apply_batches;
	struct stats_metric	*lag_records;
	struct stats_metric	*lag_ms;
	struct stats_metric	*connected;
	struct stats_metric	*snap_sent;
	struct stats_metric	*snap_installed;
	struct stats_metric	*snap_bytes;
	struct stats_metric	*reconnects;
	struct stats_metric	*diverged;
	struct stats_metric	*elections;
	struct stats_metric	*auto_promotions;
	struct stats_metric	*votes;
	struct stats_metric	*refused;
};
extern struct dbrep_metrics	m;
void		 metrics_init(void);
int		 metrics_attach(struct ev_loop *, int,
		    const struct dbrepd_conf *, int);
void		 metrics_drain(struct ev_loop *);
int		 metrics_busy(void);

/* repl.c */
int		 repl_main(struct proc_worker *);
void		 repl_fence(uint64_t, const char *);
int		 repl_member(const char *);
void		 repl_counted(void);
const char	*repl_eligible(const struct dbrepd_conf *, uint64_t);
void		 repl_probe_soon(void);
void		 repl_vote(const uint8_t *, size_t, struct buf *);
int		 probe_peer(const struct dbrepd_conf *, const struct net_addr *,
		    int *, uint64_t *, char *, size_t, char *, size_t);

/* ship.c */
void		 ship_init(struct ev_loop *, const struct dbrepd_conf *,
		    sqlite3 *);
void		 ship_start(struct ev_loop *, const struct dbrepd_conf *,
		    sqlite3 *);
void		 ship_stop(void);
void		 ship_close_all(void);
void		 ship_collect(void);
void		 ship_accept(int, int);
void		 ship_bell(void);
void		 ship_tick(void);
int		 ship_busy(void);
uint64_t	 ship_slowest(void);

/* follow.c */
void		 follow_start(struct ev_loop *, const struct dbrepd_conf *,
		    sqlite3 *);
void		 follow_stop(void);
void		 follow_tick(void);
uint64_t	 follow_heard(void);
void		 follow_reset(const char *);

#endif
