/*
 * capture.c: running client requests; on the primary, the write path.
 *
 * A request is one or more statements run as one transaction.  It is a
 * read when every statement is read-only (sqlite3_stmt_readonly), and
 * runs in a deferred transaction that also reads _dbrep_meta, so that
 * the answer carries the LSN of the state it saw.  Otherwise, on the
 * primary:
 *
 *	BEGIN IMMEDIATE (under the writers' lock of board.c)
 *	row changes recorded on all tables (rowcap.c, as the session
 *	    extension would)
 *	for each statement: a DDL statement (seen by the authorizer while
 *	    it is prepared) first flushes the changeset recorded so far as
 *	    a segment, runs unrecorded, and is logged as an SQL segment;
 *	    then recording starts again
 *	the last changeset; sqlite_sequence when the request inserted
 *	size check (max-txn-size)
 *	INSERT INTO _dbrep_log (next LSN, epoch, commit time, chained hash):
 *	    its row is the new position of the database (db.c)
 *	COMMIT
 *
 * Any failure rolls the whole of it back: data never commits without its
 * log record.  The authorizer refuses what cannot be replicated: writes
 * to dbrepd's tables, temporary objects, ATTACH, BEGIN/COMMIT inside a
 * request, PRAGMAs that change state other than user_version and
 * application_id, virtual tables other than fts5 and rtree; a created
 * table must have a PRIMARY KEY whose columns cannot be NULL (db.c).
 * AUTOINCREMENT works: the whole of sqlite_sequence is shipped after a
 * transaction that inserted.
 */
#include <sys/types.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "stats.h"
#include "dbrepd.h"

#define CAP_MAXCREATED	64		/* tables created by one statement */
#define CAP_NCACHE	64		/* prepared statements kept */

/* A client statement kept prepared, found again by its text. */
struct cstmt {
	char		*sql;
	size_t		 len;
	sqlite3_stmt	*st;
	int		 inserted;	/* the authorizer saw an INSERT */
	uint64_t	 used;
};

enum { TX_BEGIN, TX_BEGIN_IMMEDIATE, TX_COMMIT, TX_ROLLBACK, TX_N };

struct capture {
	sqlite3				*db;
	const struct dbrepd_conf	*conf;
	struct rowcap			*rows;		/* the changes */
	int				 recording;
	struct buf			 cs;		/* a changeset */
	struct buf			 body;
	int				 client;	/* checking a client's */
	int				 ddl;		/* statement is DDL */
	int				 randdl;	/* the request ran DDL */
	int				 nocache;	/* statement is a SAVEPOINT's */
	int				 inserted;
	char				 deny[256];
	char				 created[CAP_MAXCREATED][128];
	int				 ncreated;
	struct cstmt			 cache[CAP_NCACHE];
	uint64_t			 tick;
	sqlite3_stmt			*tx[TX_N];
	sqlite3_stmt			*seq;		/* sqlite_sequence */
	int				 noseq;		/* none, */
	int				 noseq_schema;	/* at this cookie */
};

static int	capture_flush(struct capture *, struct dbrep_error *);
static int	capture_record(struct capture *, struct dbrep_error *);

static const char *pragma_reads[] = {
	"table_info", "table_xinfo", "index_info", "index_xinfo",
	"index_list", "foreign_key_list", "foreign_key_check",
	"integrity_check", "quick_check", "table_list", "function_list",
	"collation_list", "module_list", "pragma_list", "compile_options",
	"database_list", "data_version", NULL
};

static int
name_is_ours(const char *t)
{
	return (t != NULL && strncasecmp(t, "_dbrep_", 7) == 0);
}

static int
deny(struct capture *c, const char *fmt, const char *arg)
{
	if (c->deny[0] == '\0')
		snprintf(c->deny, sizeof(c->deny), fmt, arg ? arg : "");
	return (SQLITE_DENY);
}

static int
authorizer(void *arg, int action, const char *a1, const char *a2,
    const char *db, const char *trigger)
{
	struct capture	*c = arg;
	int		 i;

	if (!c->client)
		return (SQLITE_OK);
	switch (action) {
	case SQLITE_CREATE_TABLE:
		if (name_is_ours(a1))
			return (deny(c, "%s: dbrepd's tables are its own", a1));
		if (strlen(a1) >= sizeof(c->created[0]))
			return (deny(c, "table name %.40s... is longer than 127 "
			    "bytes", a1));
		if (c->ncreated < CAP_MAXCREATED &&
		    strncmp(a1, "sqlite_", 7) != 0)
			strlcpy(c->created[c->ncreated++], a1,
			    sizeof(c->created[0]));
		c->ddl = 1;
		return (SQLITE_OK);
	case SQLITE_CREATE_INDEX:
	case SQLITE_CREATE_TRIGGER:
	case SQLITE_DROP_INDEX:
	case SQLITE_DROP_TRIGGER:
	case SQLITE_DROP_TABLE:
		if (name_is_ours(a2) || (action == SQLITE_DROP_TABLE &&
		    name_is_ours(a1)))
			return (deny(c, "%s: dbrepd's tables are its own",
			    name_is_ours(a1) ? a1 : a2));
		/* FALLTHROUGH */
	case SQLITE_CREATE_VIEW:
	case SQLITE_DROP_VIEW:
	case SQLITE_REINDEX:
	case SQLITE_ANALYZE:
	case SQLITE_DROP_VTABLE:
		c->ddl = 1;
		return (SQLITE_OK);
	case SQLITE_ALTER_TABLE:
		if (name_is_ours(a2))
			return (deny(c, "%s: dbrepd's tables are its own", a2));
		c->ddl = 1;
		return (SQLITE_OK);
	case SQLITE_CREATE_VTABLE:
		if (a2 == NULL || (strcasecmp(a2, "fts5") != 0 &&
		    strcasecmp(a2, "rtree") != 0 &&
		    strcasecmp(a2, "rtree_i32") != 0))
			return (deny(c, "virtual table module %s cannot be "
			    "replicated (fts5 and rtree can)", a2));
		if (a1 != NULL && strlen(a1) >= sizeof(c->created[0]))
			return (deny(c, "table name %.40s... is longer than 127 "
			    "bytes", a1));
		/* checked after it ran, as the tables are (vtab_ok, db.c) */
		if (a1 != NULL && c->ncreated < CAP_MAXCREATED)
			strlcpy(c->created[c->ncreated++], a1,
			    sizeof(c->created[0]));
		c->ddl = 1;
		return (SQLITE_OK);
	case SQLITE_CREATE_TEMP_INDEX:
	case SQLITE_CREATE_TEMP_TABLE:
	case SQLITE_CREATE_TEMP_TRIGGER:
	case SQLITE_CREATE_TEMP_VIEW:
	case SQLITE_DROP_TEMP_INDEX:
	case SQLITE_DROP_TEMP_TABLE:
	case SQLITE_DROP_TEMP_TRIGGER:
	case SQLITE_DROP_TEMP_VIEW:
		return (deny(c, "temporary objects are not allowed: "
		    "connections are shared%s", NULL));
	case SQLITE_ATTACH:
	case SQLITE_DETACH:
		return (deny(c, "ATTACH and DETACH are not allowed%s", NULL));
	case SQLITE_SAVEPOINT:
		/* never kept prepared: the check below must run each time */
		c->nocache = 1;
		if (a1 != NULL && strcmp(a1, "ROLLBACK") == 0 && c->randdl)
			return (deny(c, "ROLLBACK TO after a schema change in "
			    "the same request is not allowed: it could not be "
			    "replicated%s", NULL));
		return (SQLITE_OK);
	case SQLITE_TRANSACTION:
		return (deny(c, "a request is one transaction: BEGIN, COMMIT "
		    "and ROLLBACK are not allowed in it%s", NULL));
	case SQLITE_INSERT:
	case SQLITE_UPDATE:
	case SQLITE_DELETE:
		if (name_is_ours(a1))
			return (deny(c, "%s: dbrepd's tables are read-only",
			    a1));
		if (action == SQLITE_INSERT ||
		    (a1 != NULL && strcmp(a1, "sqlite_sequence") == 0))
			c->inserted = 1;
		return (SQLITE_OK);
	case SQLITE_PRAGMA:
		if (strcasecmp(a1, "optimize") == 0)
			return (deny(c, "PRAGMA optimize is not allowed: the "
			    "ANALYZE it may run would not be replicated (run "
			    "ANALYZE, which is)%s", NULL));
		if (a2 == NULL)
			return (SQLITE_OK);
		if (strcasecmp(a1, "user_version") == 0 ||
		    strcasecmp(a1, "application_id") == 0) {
			c->ddl = 1;
			return (SQLITE_OK);
		}
		for (i = 0; pragma_reads[i] != NULL; i++)
			if (strcasecmp(a1, pragma_reads[i]) == 0)
				return (SQLITE_OK);
		return (deny(c, "PRAGMA %s with an argument is not allowed: "
		    "it would not be replicated", a1));
	default:
		return (SQLITE_OK);
	}
}

struct capture *
capture_new(sqlite3 *db, const struct dbrepd_conf *conf)
{
	struct capture	*c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return (NULL);
	c->db = db;
	c->conf = conf;
	if ((c->rows = rowcap_new(db)) == NULL) {
		free(c);
		return (NULL);
	}
	buf_init(&c->body, conf->max_txn + 1024 * 1024);
	buf_init(&c->cs, conf->max_txn + 1024 * 1024);
	sqlite3_set_authorizer(db, authorizer, c);
	return (c);
}

void
capture_free(struct capture *c)
{
	int	i;

	if (c == NULL)
		return;
	for (i = 0; i < CAP_NCACHE; i++) {
		sqlite3_finalize(c->cache[i].st);
		free(c->cache[i].sql);
	}
	for (i = 0; i < TX_N; i++)
		sqlite3_finalize(c->tx[i]);
	sqlite3_finalize(c->seq);
	rowcap_free(c->rows);
	sqlite3_set_authorizer(c->db, NULL, NULL);
	buf_free(&c->body);
	buf_free(&c->cs);
	free(c);
}

static void
seterr(struct dbrep_error *err, int code, int ext, const char *fmt, ...)
    __printflike(4, 5);

static void
seterr(struct dbrep_error *err, int code, int ext, const char *fmt, ...)
{
	va_list	ap;

	err->code = code;
	err->extended = ext;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
}

static void
sqlerr(struct capture *c, struct dbrep_error *err, int rc)
{
	if (rc == SQLITE_AUTH && c->deny[0] != '\0')
		seterr(err, DBREP_ENOTREPLICABLE, SQLITE_AUTH, "%s", c->deny);
	else
		seterr(err, rc & 0xff, rc, "%s", sqlite3_errmsg(c->db));
}

/* BEGIN, BEGIN IMMEDIATE, COMMIT, ROLLBACK, prepared once. */
static int
tx(struct capture *c, int which)
{
	static const char	*sql[TX_N] = { "BEGIN", "BEGIN IMMEDIATE",
				    "COMMIT", "ROLLBACK" };
	int			 rc;

	if (c->tx[which] == NULL && (rc = sqlite3_prepare_v3(c->db,
	    sql[which], -1, SQLITE_PREPARE_PERSISTENT, &c->tx[which], NULL)) !=
	    SQLITE_OK)
		return (rc);
	rc = sqlite3_step(c->tx[which]);
	sqlite3_reset(c->tx[which]);
	return (rc == SQLITE_DONE ? SQLITE_OK : rc);
}

static int
only_blanks(const char *p, const char *end)
{
	for (; p < end; p++)
		if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r' &&
		    *p != ';')
			return (0);
	return (1);
}

/*
 * Prepare the next statement of [sql, end).  A text that is one whole
 * statement, neither DDL nor refused, is kept prepared and found again
 * by its text: the next request with it prepares nothing (the
 * authorizer saw it the first time; SQLite prepares it again by itself,
 * authorizer included, when the schema changed).  *<cached> says
 * whether to give it back with release() rather than finalize it.
 */
static int
cap_prepare(struct capture *c, const char *sql, const char *end,
    sqlite3_stmt **st, const char **tail, int *cached)
{
	struct cstmt	*k, *victim = &c->cache[0];
	size_t		 len = end - sql;
	int		 i, rc, saved = c->inserted;

	*cached = 0;
	c->deny[0] = '\0';
	c->ddl = 0;
	c->nocache = 0;
	c->ncreated = 0;
	for (i = 0; i < CAP_NCACHE; i++) {
		k = &c->cache[i];
		if (k->st != NULL && k->len == len &&
		    memcmp(k->sql, sql, len) == 0) {
			*st = k->st;
			*tail = end;
			*cached = 1;
			k->used = ++c->tick;
			c->inserted |= k->inserted;
			return (SQLITE_OK);
		}
		if (k->used < victim->used)
			victim = k;
	}
	c->inserted = 0;
	rc = sqlite3_prepare_v2(c->db, sql, len, st, tail);
	k = victim;
	if (rc == SQLITE_OK && *st != NULL && !c->ddl && !c->nocache &&
	    c->ncreated == 0 &&
	    only_blanks(*tail, end)) {
		sqlite3_finalize(k->st);
		free(k->sql);
		memset(k, 0, sizeof(*k));
		if ((k->sql = malloc(len)) != NULL) {
			memcpy(k->sql, sql, len);
			k->len = len;
			k->st = *st;
			k->inserted = c->inserted;
			k->used = ++c->tick;
			*cached = 1;
		}
	}
	c->inserted |= saved;
	return (rc);
}

static void
release(sqlite3_stmt *st, int cached)
{
	if (st == NULL)
		return;
	if (cached) {
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
	} else
		sqlite3_finalize(st);
}

/* Parse the statements of a QUERY; <r> is at the statement count. */
struct qstmt *
capture_parse(struct fr *r, uint32_t *np, struct dbrep_error *err)
{
	struct qstmt		*q;
	struct dbrep_value	 v;
	uint32_t		 n, i, j;

	n = fr_u32(r);
	if (r->err || n == 0 || n > DBREP_MAXSTMTS) {
		seterr(err, DBREP_EPROTO, DBREP_EPROTO, "bad statement count");
		return (NULL);
	}
	if ((q = calloc(n, sizeof(*q))) == NULL) {
		seterr(err, SQLITE_NOMEM, SQLITE_NOMEM, "out of memory");
		return (NULL);
	}
	for (i = 0; i < n; i++) {
		q[i].sql = (const char *)fr_bytes(r, &q[i].len);
		q[i].nparams = fr_u32(r);
		q[i].params = *r;
		for (j = 0; j < q[i].nparams && !r->err; j++)
			fr_value(r, &v);
		if (r->err)
			break;
		if (q[i].sql == NULL)
			q[i].sql = "";
	}
	if (!fr_done(r)) {
		free(q);
		seterr(err, DBREP_EPROTO, DBREP_EPROTO, "malformed query");
		return (NULL);
	}
	*np = n;
	return (q);
}

/* Bind the next <n> parameters of <q> to <st>. */
static int
bind_params(struct capture *c, sqlite3_stmt *st, struct qstmt *q,
    uint32_t *used, struct dbrep_error *err)
{
	struct dbrep_value	v;
	int			n = sqlite3_bind_parameter_count(st), i, rc;

	if (*used + n > q->nparams) {
		seterr(err, SQLITE_RANGE, SQLITE_RANGE, "statement needs %d "
		    "parameters, %u given", n, q->nparams - *used);
		return (-1);
	}
	for (i = 1; i <= n; i++) {
		fr_value(&q->params, &v);
		(*used)++;
		switch (v.type) {
		case DBREP_INTEGER:
			rc = sqlite3_bind_int64(st, i, v.i);
			break;
		case DBREP_REAL:
			rc = sqlite3_bind_double(st, i, v.r);
			break;
		case DBREP_TEXT:
			rc = sqlite3_bind_text64(st, i, v.p, v.len,
			    SQLITE_STATIC, SQLITE_UTF8);
			break;
		case DBREP_BLOB:
			rc = sqlite3_bind_blob64(st, i, v.p, v.len,
			    SQLITE_STATIC);
			break;
		default:
			rc = sqlite3_bind_null(st, i);
		}
		if (rc != SQLITE_OK) {
			sqlerr(c, err, rc);
			return (-1);
		}
	}
	return (0);
}

/*
 * The result frame: header fields are written now and patched at the
 * end, when the LSN is known.
 */
struct result {
	struct fw	 w;
	uint32_t	 nsets;
};

static void
result_begin(struct result *res, struct buf *out)
{
	fw_begin(&res->w, out, MSG_RESULT);
	fw_u64(&res->w, 0);	/* lsn */
	fw_i64(&res->w, 0);	/* changes */
	fw_i64(&res->w, 0);	/* rowid */
	fw_u32(&res->w, 0);
	res->nsets = 0;
}

static int
result_end(struct result *res, uint64_t lsn, int64_t changes, int64_t rowid)
{
	uint8_t	*p;

	if (res->w.err) {
		fw_abort(&res->w);
		return (-1);
	}
	p = (uint8_t *)fw_at(&res->w, DBREP_HDRLEN);
	put_be64(p, lsn);
	put_be64(p + 8, (uint64_t)changes);
	put_be64(p + 16, (uint64_t)rowid);
	put_be32(p + 24, res->nsets);
	return (fw_end(&res->w));
}

/* Step <st> to the end, adding its rows to <res> when it has columns. */
static int
run_stmt(struct capture *c, sqlite3_stmt *st, struct result *res,
    struct dbrep_error *err)
{
	struct dbrep_value	 v;
	size_t			 rows_off = 0;
	uint64_t		 nrows = 0;
	int			 ncol = sqlite3_column_count(st), i, rc;

	if (ncol > 0) {
		res->nsets++;
		fw_u32(&res->w, ncol);
		for (i = 0; i < ncol; i++)
			fw_str(&res->w, sqlite3_column_name(st, i));
		rows_off = fw_pos(&res->w);
		fw_u64(&res->w, 0);
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (ncol == 0)
			continue;
		nrows++;
		for (i = 0; i < ncol; i++) {
			memset(&v, 0, sizeof(v));
			switch ((v.type = sqlite3_column_type(st, i))) {
			case SQLITE_INTEGER:
				v.type = DBREP_INTEGER;
				v.i = sqlite3_column_int64(st, i);
				break;
			case SQLITE_FLOAT:
				v.type = DBREP_REAL;
				v.r = sqlite3_column_double(st, i);
				break;
			case SQLITE_TEXT:
				v.type = DBREP_TEXT;
				v.p = (const char *)sqlite3_column_text(st, i);
				v.len = sqlite3_column_bytes(st, i);
				break;
			case SQLITE_BLOB:
				v.type = DBREP_BLOB;
				v.p = sqlite3_column_blob(st, i);
				v.len = sqlite3_column_bytes(st, i);
				break;
			default:
				v.type = DBREP_NULL;
			}
			fw_value(&res->w, &v);
		}
		if (res->w.err) {
			seterr(err, DBREP_ETOOBIG, DBREP_ETOOBIG, "result "
			    "larger than max-result-size (%llu bytes)",
			    (unsigned long long)c->conf->max_result);
			return (-1);
		}
	}
	if (rc != SQLITE_DONE) {
		sqlerr(c, err, rc);
		return (-1);
	}
	if (ncol > 0 && !res->w.err)
		put_be64((uint8_t *)fw_at(&res->w, rows_off), nrows);
	return (0);
}

/*
 * Is every statement of the request read-only?  1 yes, 0 no, -1 when a
 * statement fails to prepare before any write (its error in <err>).
 */
int
capture_classify(struct capture *c, struct qstmt *q, uint32_t n,
    struct dbrep_error *err)
{
	sqlite3_stmt	*st;
	const char	*sql, *tail, *end;
	uint32_t	 i;
	int		 rc, ro, cached;

	c->client = 1;
	for (i = 0; i < n; i++) {
		sql = q[i].sql;
		end = sql + q[i].len;
		while (sql < end) {
			rc = cap_prepare(c, sql, end, &st, &tail, &cached);
			if (rc != SQLITE_OK) {
				c->client = 0;
				/* DDL may have been refused: a write */
				if (rc == SQLITE_AUTH && c->deny[0] != '\0')
					return (0);
				sqlerr(c, err, rc);
				return (-1);
			}
			if (st == NULL)
				break;
			ro = sqlite3_stmt_readonly(st);
			release(st, cached);
			if (!ro) {
				c->client = 0;
				return (0);
			}
			sql = tail;
		}
	}
	c->client = 0;
	return (1);
}

/*
 * Run the statements of <q> on the connection, in the transaction the
 * caller opened, writing result sets into <res>.  <write>: segment the
 * recorded changes at DDL (the primary's write path).
 */
static int
run_all(struct capture *c, struct qstmt *q, uint32_t n, struct result *res,
    int write, int64_t *changes, struct dbrep_error *err)
{
	sqlite3_stmt	*st = NULL;
	const char	*sql, *end, *tail;
	uint32_t	 i, used;
	int		 rc, j, ok, cached = 0;

	for (i = 0; i < n; i++) {
		sql = q[i].sql;
		end = sql + q[i].len;
		used = 0;
		while (sql < end) {
			c->client = 1;
			rc = cap_prepare(c, sql, end, &st, &tail, &cached);
			if (rc != SQLITE_OK) {
				sqlerr(c, err, rc);
				goto fail;
			}
			if (st == NULL)
				break;
			if (!write && !sqlite3_stmt_readonly(st)) {
				seterr(err, SQLITE_READONLY, SQLITE_READONLY,
				    "not a read-only statement");
				goto fail;
			}
			if (write && c->ddl && c->recording) {
				c->client = 0;
				if (capture_flush(c, err) == -1)
					goto fail;
				c->client = 1;
			}
			if (bind_params(c, st, &q[i], &used, err) == -1 ||
			    run_stmt(c, st, res, err) == -1)
				goto fail;
			c->client = 0;
			if (!sqlite3_stmt_readonly(st))
				*changes += sqlite3_changes64(c->db);
			if (sqlite3_get_autocommit(c->db)) {
				/* INSERT OR ROLLBACK and its kind */
				seterr(err, SQLITE_ABORT, SQLITE_ABORT, "the "
				    "transaction was rolled back");
				goto fail;
			}
			if (write && c->ddl) {
				const char	*text;
				char		*exp = NULL;

				c->randdl = 1;
				if (sqlite3_bind_parameter_count(st) > 0)
					text = exp = sqlite3_expanded_sql(st);
				else
					text = sqlite3_sql(st);
				rc = seg_add(&c->body, SEG_SQL, text,
				    text ? strlen(text) : 0);
				sqlite3_free(exp);
				if (rc == -1) {
					seterr(err, DBREP_ETOOBIG,
					    DBREP_ETOOBIG, "transaction too "
					    "large");
					goto fail;
				}
				for (j = 0, ok = 1; ok == 1 && j < c->ncreated;
				    j++)
					ok = db_table_ok(c->db, c->created[j],
					    err->msg, sizeof(err->msg));
				/* an fts5 table's content made again */
				if (ok == 1 && c->ncreated > 0)
					ok = db_vtabs_ok(c->db, err->msg,
					    sizeof(err->msg));
				if (ok == 0)
					err->code = err->extended =
					    DBREP_ENOTREPLICABLE;
				else if (ok == -1)
					sqlerr(c, err, SQLITE_ERROR);
				if (ok != 1)
					goto fail;
				if (capture_record(c, err) == -1)
					goto fail;
			}
			if (write && c->recording &&
			    (uint64_t)rowcap_memory(c->rows) >
			    2 * c->conf->max_txn + 16 * 1024 * 1024) {
				seterr(err, DBREP_ETOOBIG, DBREP_ETOOBIG,
				    "transaction larger than max-txn-size "
				    "(%llu bytes)", (unsigned long long)
				    c->conf->max_txn);
				goto fail;
			}
			release(st, cached);
			st = NULL;
			sql = tail;
		}
		if (used != q[i].nparams) {
			seterr(err, SQLITE_RANGE, SQLITE_RANGE, "statement %u: "
			    "%u parameters given, %u used", i + 1,
			    q[i].nparams, used);
			goto fail;
		}
	}
	c->client = 0;
	return (0);
 fail:
	c->client = 0;
	release(st, cached);
	return (-1);
}

/* Record the row changes of every table from here (rowcap.c). */
static int
capture_record(struct capture *c, struct dbrep_error *err)
{
	int	rc;

	if ((rc = rowcap_begin(c->rows)) != SQLITE_OK) {
		seterr(err, rc & 0xff, rc, "cannot record the changes: %s",
		    sqlite3_errstr(rc));
		return (-1);
	}
	c->recording = 1;
	return (0);
}

/* The changes recorded as a CHANGESET segment; recording stops. */
static int
capture_flush(struct capture *c, struct dbrep_error *err)
{
	int	rc;

	if (!c->recording)
		return (0);
	c->recording = 0;
	buf_reset(&c->cs);
	rc = rowcap_changeset(c->rows, &c->cs);
	rowcap_end(c->rows);
	if (rc == SQLITE_TOOBIG || (buf_used(&c->cs) > 0 &&
	    (buf_used(&c->cs) + c->body.len > c->conf->max_txn ||
	    seg_add(&c->body, SEG_CHANGESET, buf_head(&c->cs),
	    buf_used(&c->cs)) == -1))) {
		seterr(err, DBREP_ETOOBIG, DBREP_ETOOBIG, "transaction "
		    "larger than max-txn-size (%llu bytes)",
		    (unsigned long long)c->conf->max_txn);
		return (-1);
	}
	if (rc != SQLITE_OK) {
		seterr(err, rc & 0xff, rc, "cannot make the changeset: %s",
		    sqlite3_errstr(rc));
		return (-1);
	}
	return (0);
}

/*
 * The whole of sqlite_sequence as a SEQUENCE segment, if it exists.  Its
 * query is prepared once, when the table first exists (it never goes
 * away): compiling it at every insert cost a tenth of a commit.
 */
static int
capture_sequence(struct capture *c, struct dbrep_error *err)
{
	sqlite3_stmt	*st;
	struct buf	 seg;
	struct fw	 w;
	uint32_t	 n = 0;
	int		 rc;

	if (c->seq == NULL) {
		/* asked once per schema: the lookup cost a tenth of a commit */
		if (c->noseq && c->noseq_schema == rowcap_schema(c->rows))
			return (0);
		if (sqlite3_table_column_metadata(c->db, "main",
		    "sqlite_sequence", NULL, NULL, NULL, NULL, NULL, NULL) !=
		    SQLITE_OK) {
			c->noseq = 1;
			c->noseq_schema = rowcap_schema(c->rows);
			return (0);	/* no AUTOINCREMENT table */
		}
		if (sqlite3_prepare_v3(c->db, "SELECT name, seq FROM "
		    "sqlite_sequence ORDER BY name", -1,
		    SQLITE_PREPARE_PERSISTENT, &c->seq, NULL) != SQLITE_OK) {
			sqlerr(c, err, sqlite3_extended_errcode(c->db));
			c->seq = NULL;
			return (-1);
		}
	}
	st = c->seq;
	buf_init(&seg, c->conf->max_txn);
	/* a frame writer gives the field encoding; the header is dropped */
	fw_begin(&w, &seg, 0);
	fw_u32(&w, 0);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		fw_str(&w, (const char *)sqlite3_column_text(st, 0));
		fw_i64(&w, sqlite3_column_int64(st, 1));
		n++;
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE || w.err) {
		sqlerr(c, err, rc == SQLITE_DONE ? SQLITE_NOMEM : rc);
		/* prepared again next time, from what the schema says then */
		sqlite3_finalize(c->seq);
		c->seq = NULL;
		buf_free(&seg);
		return (-1);
	}
	put_be32((uint8_t *)seg.data + DBREP_HDRLEN, n);
	rc = seg_add(&c->body, SEG_SEQUENCE, seg.data + DBREP_HDRLEN,
	    seg.len - DBREP_HDRLEN);
	buf_free(&seg);
	if (rc == -1) {
		seterr(err, DBREP_ETOOBIG, DBREP_ETOOBIG, "transaction too "
		    "large");
		return (-1);
	}
	return (0);
}

static void
rollback(struct capture *c)
{
	if (!sqlite3_get_autocommit(c->db))
		tx(c, TX_ROLLBACK);
}

/*
 * A read: every statement in one deferred transaction.  Returns 0 with a
 * RESULT frame in <out>, 1 when the database is not yet at <min_lsn>
 * (nothing written), -1 with <err> set.
 */
int
capture_read(struct capture *c, struct qstmt *q, uint32_t n,
    uint64_t min_lsn, struct buf *out, struct dbrep_error *err,
    uint64_t *lsn)
{
	struct result	res;
	struct meta	mt;
	int64_t		changes = 0;
	int		rc;

	if ((rc = tx(c, TX_BEGIN)) != SQLITE_OK ||
	    db_position(c->db, &mt) == -1) {
		sqlerr(c, err, rc != SQLITE_OK ? rc :
		    sqlite3_extended_errcode(c->db));
		rollback(c);
		return (-1);
	}
	*lsn = mt.lsn;
	if (mt.lsn < min_lsn) {
		rollback(c);
		return (1);
	}
	result_begin(&res, out);
	if (run_all(c, q, n, &res, 0, &changes, err) == -1) {
		fw_abort(&res.w);
		rollback(c);
		return (-1);
	}
	rollback(c);	/* a read: nothing to commit */
	if (result_end(&res, mt.lsn, 0, 0) == -1) {
		seterr(err, DBREP_ETOOBIG, DBREP_ETOOBIG, "result larger "
		    "than max-result-size (%llu bytes)",
		    (unsigned long long)c->conf->max_result);
		return (-1);
	}
	return (0);
}

/*
 * The primary's write path (see the top of this file).  The caller
 * holds the writers' lock.  <epoch> is the epoch this node believes it
 * leads: a database at another epoch is not written.  Returns 0 with a
 * RESULT frame in <out> and the commit's LSN (the current one when
 * nothing changed) and the size of its record (0: none), or -1 with
 * <err> set and nothing committed.
 */
int
capture_write(struct capture *c, struct qstmt *q, uint32_t n,
    uint64_t epoch, struct buf *out, struct dbrep_error *err,
    uint64_t *lsn, uint64_t *bytes)
{
	struct result	res;
	struct record	rec;
	struct meta	mt;
	int64_t		changes = 0, rowid;
	int		rc;

	buf_reset(&c->body);
	c->inserted = 0;
	c->randdl = 0;
	res.w.b = NULL;
	*bytes = 0;
	if ((rc = tx(c, TX_BEGIN_IMMEDIATE)) != SQLITE_OK) {
		sqlerr(c, err, rc);
		return (-1);
	}
	if (db_position(c->db, &mt) == -1) {
		sqlerr(c, err, sqlite3_extended_errcode(c->db));
		goto fail;
	}
	if (mt.epoch != epoch) {
		seterr(err, SQLITE_READONLY, SQLITE_READONLY, "this node is "
		    "not the primary of epoch %llu (its database is at epoch "
		    "%llu)", (unsigned long long)epoch,
		    (unsigned long long)mt.epoch);
		goto fail;
	}
	if (capture_record(c, err) == -1)
		goto fail;
	result_begin(&res, out);
	if (run_all(c, q, n, &res, 1, &changes, err) == -1 ||
	    capture_flush(c, err) == -1 ||
	    (c->inserted && capture_sequence(c, err) == -1))
		goto fail;
	*lsn = mt.lsn;
	rowid = sqlite3_last_insert_rowid(c->db);	/* before the log's */
	if (c->body.len > c->conf->max_txn) {
		seterr(err, DBREP_ETOOBIG, DBREP_ETOOBIG, "transaction "
		    "larger than max-txn-size (%zu > %llu bytes)",
		    c->body.len, (unsigned long long)c->conf->max_txn);
		goto fail;
	}
	if (c->body.len > 0) {
		rec.lsn = mt.lsn + 1;
		rec.epoch = mt.epoch;
		rec.ts = now_ms();
		rec.body = (const uint8_t *)buf_head(&c->body);
		rec.len = buf_used(&c->body);
		chain_hash(mt.hash, rec.lsn, rec.epoch, rec.ts, rec.body,
		    rec.len, rec.hash);
		mt.lsn = rec.lsn;
		mt.ts = rec.ts;
		memcpy(mt.hash, rec.hash, DBREP_HASHLEN);
		if (db_log_append(c->db, &rec) == -1) {
			sqlerr(c, err, sqlite3_extended_errcode(c->db));
			goto fail;
		}
	}
	if ((rc = tx(c, TX_COMMIT)) != SQLITE_OK) {
		sqlerr(c, err, rc);
		goto fail;
	}
	if (c->body.len > 0) {
		*lsn = mt.lsn;
		*bytes = c->body.len;
	}
	if (result_end(&res, *lsn, changes, rowid) == -1) {
		/* committed, but the answer does not fit: say so */
		seterr(err, DBREP_ETOOBIG, DBREP_ETOOBIG, "committed at LSN "
		    "%llu, but the result is larger than max-result-size",
		    (unsigned long long)*lsn);
		err->lsn = *lsn;
		return (1);
	}
	return (0);
 fail:
	if (c->recording) {
		rowcap_end(c->rows);
		c->recording = 0;
	}
	if (res.w.b != NULL)
		fw_abort(&res.w);
	rollback(c);
	buf_reset(&c->body);
	return (-1);
}
