/*
 * dbrep.h: the client library of dbrepd, the SQLite log-shipping daemon.
 *
 * One handle talks to a set of dbrepd nodes and routes each request:
 * writes to the primary, reads to a replica (or to the primary when no
 * replica answers), optionally no older than a given log sequence number
 * (LSN) so that a client reads its own writes on any replica.
 * Connections are kept open and reused; a node that went away is
 * reconnected on the next request.  A handle is not thread-safe: use one
 * per thread or per process (appd's workers are processes).
 *
 *	struct dbrep_error	 err;
 *	struct dbrep_result	*res;
 *	struct dbrep		*db;
 *
 *	db = dbrep_open("primary=unix:/var/run/dbrepd.sock "
 *	    "replica=10.0.0.12:5433", "secret", &err);
 *	if (dbrep_query(db, DBREP_PRIMARY, 0, &res, &err,
 *	    "INSERT INTO notes(body) VALUES(?)", "t", body) == -1)
 *		warnx("%s (code %d)", err.msg, err.code);
 *	lsn = dbrep_result_lsn(res);		the commit's LSN
 *	dbrep_result_free(res);
 *	dbrep_query(db, DBREP_REPLICA, lsn, &res, &err,
 *	    "SELECT id, body FROM notes WHERE id = ?", "i", id);
 *
 * Every call that can fail returns -1 (or NULL) and fills a struct
 * dbrep_error: SQLite's result code and message when SQLite refused the
 * request, else one of the DBREP_E* codes below.
 */
#ifndef DBREP_H
#define DBREP_H

#include <sys/types.h>
#include <stdint.h>

#define DBREP_VERSION		1	/* of the wire protocol */

/* Value types, as SQLite's fundamental types. */
#define DBREP_NULL		0
#define DBREP_INTEGER		1
#define DBREP_REAL		2
#define DBREP_TEXT		3
#define DBREP_BLOB		4

/* Routes: where a request goes. */
#define DBREP_PRIMARY		1	/* the primary: writes (and reads) */
#define DBREP_REPLICA		2	/* a replica, else the primary */
#define DBREP_ANY		3	/* the first node that answers */

/*
 * Error codes.  Below 1000 they are SQLite's primary result codes
 * (SQLITE_CONSTRAINT 19, SQLITE_READONLY 8, SQLITE_FULL 13, ...), with
 * the extended code in dbrep_error.extended.
 */
#define DBREP_OK		0
#define DBREP_ECONNECT		1001	/* no node could be reached */
#define DBREP_EPROTO		1002	/* the peer broke the protocol */
#define DBREP_EAUTH		1003	/* shared secret refused */
#define DBREP_ETIMEOUT		1004	/* no answer within the timeout */
#define DBREP_EINDETERMINATE	1005	/* committed on the primary (at
					   dbrep_error.lsn) but not
					   confirmed by the quorum */
#define DBREP_ELSNWAIT		1006	/* the node did not reach the
					   minimum LSN in time */
#define DBREP_ENOTREPLICABLE	1007	/* refused: it could not be
					   replicated (no PRIMARY KEY...) */
#define DBREP_ETOOBIG		1008	/* transaction, request or result
					   over the node's limit */
#define DBREP_EUNAVAIL		1009	/* node (or worker) stopping or not
					   ready: the request was not run */
#define DBREP_EUSAGE		1010	/* bad call or argument */
#define DBREP_ELOST		1011	/* connection lost after a write
					   was sent: its outcome is unknown */

#define DBREP_ADDRLEN		128
#define DBREP_MSGLEN		512
#define DBREP_BUSY_POLL_MAX	10000	/* us, dbrep_set_busy_poll()'s limit */

struct dbrep_error {
	int		 code;		/* DBREP_OK, SQLite's, or DBREP_E* */
	int		 extended;	/* SQLite's extended code, or code */
	uint64_t	 lsn;		/* DBREP_EINDETERMINATE: local LSN */
	char		 primary[DBREP_ADDRLEN];	/* SQLITE_READONLY:
					   the primary's client address,
					   "" when unknown */
	char		 node[64];	/* the node that answered, "" */
	char		 msg[DBREP_MSGLEN];
};

/* A value of a row or of a parameter.  TEXT is NUL-terminated. */
struct dbrep_value {
	int		 type;
	int64_t		 i;
	double		 r;
	const char	*p;		/* TEXT and BLOB bytes */
	size_t		 len;		/* TEXT and BLOB length */
};

struct dbrep;
struct dbrep_req;
struct dbrep_result;

/*
 * Open a handle on <nodes>: addresses separated by spaces or commas,
 * each optionally prefixed by its role, "primary=", "replica=" or
 * "any=" (the default).  Addresses as in the conf files:
 * "host:port", "[v6]:port", "unix:/path".  <secret> authenticates TCP
 * connections (NULL when only Unix sockets are used).  A TCP node whose
 * listener speaks TLS is written "tls://host:port", optionally followed
 * by "?ca=/path/ca.pem", "&name=db1.example" (the name its certificate
 * must hold; default the host when it is a name, else its IP address)
 * and "&verify=no"; a certificate that does not verify fails as
 * DBREP_EAUTH, naming the node.  With TLS, a caller should ignore
 * SIGPIPE.  Nothing is connected yet.  Returns NULL with <err> filled
 * on a bad list.
 */
struct dbrep	*dbrep_open(const char *nodes, const char *secret,
		    struct dbrep_error *err);
void		 dbrep_close(struct dbrep *);
/* Per request: connect + send + answer, in ms (default 30000). */
void		 dbrep_set_timeout(struct dbrep *, int ms);
/*
 * Connecting to one node, up to its greeting and the authentication, in
 * ms (default 2000): a node that takes longer (stopped, cut off) is
 * passed over, and tried last for a second.
 */
void		 dbrep_set_connect_timeout(struct dbrep *, int ms);
/* Wait for a minimum LSN on a replica (default 5000 ms). */
void		 dbrep_set_lsn_wait(struct dbrep *, int ms);
/*
 * Wait for a query's answer without sleeping for up to <us>
 * microseconds (default 0, at most DBREP_BUSY_POLL_MAX; never past the
 * request's timeout), then sleep: a process woken from sleep by the
 * answer loses 20 to 40 us on a VM, as much as a short query's round
 * trip.  The spin burns the caller's CPU; worth it where that CPU would
 * idle while the database works (an application worker waiting for its
 * query) and the node is on the same host.  Keep the clients that may
 * wait at once below the spare CPUs: spinners that outnumber them take
 * the CPU the node needs to answer.
 */
void		 dbrep_set_busy_poll(struct dbrep *, unsigned us);
/* The highest LSN this handle has seen (writes and reads). */
uint64_t	 dbrep_lsn(const struct dbrep *);

/*
 * A request: one or more statements run atomically, as one transaction.
 * dbrep_req_sql() starts a statement; the dbrep_req_* value calls that
 * follow bind its parameters in order (?, ?NNN, :name in order of
 * appearance).  All return 0, or -1 when out of memory.
 */
struct dbrep_req *dbrep_req_new(void);
void		 dbrep_req_free(struct dbrep_req *);
void		 dbrep_req_reset(struct dbrep_req *);
int		 dbrep_req_sql(struct dbrep_req *, const char *);
int		 dbrep_req_null(struct dbrep_req *);
int		 dbrep_req_int(struct dbrep_req *, int64_t);
int		 dbrep_req_real(struct dbrep_req *, double);
int		 dbrep_req_text(struct dbrep_req *, const char *, ssize_t);
int		 dbrep_req_blob(struct dbrep_req *, const void *, size_t);
int		 dbrep_req_value(struct dbrep_req *,
		    const struct dbrep_value *);

/*
 * Run <req> on the node <route> selects; a read waits on that node until
 * it has applied <min_lsn> (0: no wait).  A write sent to a replica gets
 * SQLITE_READONLY naming the primary; the handle then tries that
 * primary, then the other nodes.  After a failover the handle finds the
 * new primary by itself: it prefers the writable node of the latest
 * epoch it has seen, and after a write failed without a clear answer
 * (DBREP_EINDETERMINATE, DBREP_ELOST, DBREP_ETIMEOUT, no node) it reads
 * every node's greeting again before the next one.  A failed write is
 * never retried by the handle.  Returns 0 with *<res> set (free it with
 * dbrep_result_free), or -1 with <err> filled.
 */
int		 dbrep_exec(struct dbrep *, int route, uint64_t min_lsn,
		    const struct dbrep_req *, struct dbrep_result **res,
		    struct dbrep_error *err);

/*
 * One statement, with its parameters given by <types>, one letter per
 * parameter: 'i' int, 'I' int64_t, 'r' double, 't' NUL-terminated text,
 * 'T' text and its length (const char *, size_t), 'b' blob (const void
 * *, size_t), 'n' NULL (no argument).  <types> may be NULL or "".
 */
int		 dbrep_query(struct dbrep *, int route, uint64_t min_lsn,
		    struct dbrep_result **, struct dbrep_error *,
		    const char *sql, const char *types, ...);

/*
 * A result holds one set of rows per statement that returns columns, in
 * statement order (an INSERT without RETURNING makes none).  Pointers
 * into a result stay valid until dbrep_result_free().
 */
uint64_t	 dbrep_result_lsn(const struct dbrep_result *);
int64_t		 dbrep_result_changes(const struct dbrep_result *);
int64_t		 dbrep_result_rowid(const struct dbrep_result *);
const char	*dbrep_result_node(const struct dbrep_result *);
int		 dbrep_result_sets(const struct dbrep_result *);
int		 dbrep_result_columns(const struct dbrep_result *, int set);
const char	*dbrep_result_column_name(const struct dbrep_result *,
		    int set, int col);
size_t		 dbrep_result_rows(const struct dbrep_result *, int set);
const struct dbrep_value *dbrep_result_value(const struct dbrep_result *,
		    int set, size_t row, int col);
void		 dbrep_result_free(struct dbrep_result *);

/*
 * Administration, for dbrepctl: <node> is an address of the handle's
 * list (NULL: the first).  <cmd> is "status", "promote" or "repoint"
 * (with <arg> the new primary's replication address).  *<reply> gets
 * the node's text answer (free it).
 */
int		 dbrep_admin(struct dbrep *, const char *node, const char *cmd,
		    const char *arg, char **reply, struct dbrep_error *);
/* A snapshot of <node>'s database written to <fd>; its LSN and size. */
int		 dbrep_snapshot(struct dbrep *, const char *node, int fd,
		    uint64_t *lsn, uint64_t *size, struct dbrep_error *);

const char	*dbrep_strerror(int code);

#endif
