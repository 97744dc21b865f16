/*
 * db.c: the database file: connections, dbrepd's own tables, the node's
 * role and its local state.
 *
 * dbrepd keeps its bookkeeping in the same file as the data, so that
 * data, log and position commit together:
 *
 *	_dbrep_log	the records (record.c), pruned from the oldest; its
 *			last row is the database's position (LSN, epoch,
 *			hash), written by the transaction that made it, so
 *			a commit writes no other bookkeeping row
 *	_dbrep_meta	one row: the LSN, epoch, commit time and hash of the
 *			last record pruned (the position when the log is
 *			empty; the last record is never pruned)
 *	_dbrep_epochs	the epoch history: each epoch, the LSN it starts
 *			at and the node that became primary (like
 *			PostgreSQL's timeline history)
 *
 * A node is the primary when the latest epoch of its database was
 * started by itself (its name) and it has not learnt of a later epoch;
 * otherwise it is a replica.  What only this node knows, the primary it
 * was pointed at and the latest epoch it heard of, is kept beside the
 * database in "<data>-node", replaced atomically (write, fsync, rename).
 */
#include <sys/types.h>
#include <sys/stat.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "proc.h"
#include "dbrepd.h"

static const char *schema_sql =
    "CREATE TABLE IF NOT EXISTS _dbrep_meta("
    "id INTEGER PRIMARY KEY CHECK (id = 1), prune_lsn INTEGER NOT NULL, "
    "prune_epoch INTEGER NOT NULL, prune_ts INTEGER NOT NULL, "
    "prune_hash BLOB NOT NULL, format INTEGER NOT NULL);"
    "INSERT OR IGNORE INTO _dbrep_meta VALUES(1, 0, 0, 0, zeroblob(32), "
    "1);"
    "CREATE TABLE IF NOT EXISTS _dbrep_log(lsn INTEGER PRIMARY KEY, "
    "epoch INTEGER NOT NULL, ts INTEGER NOT NULL, hash BLOB NOT NULL, "
    "body BLOB NOT NULL);"
    "CREATE TABLE IF NOT EXISTS _dbrep_epochs(epoch INTEGER PRIMARY KEY, "
    "start_lsn INTEGER NOT NULL, node TEXT NOT NULL, ts INTEGER NOT NULL);";

/*
 * Open the database for <flags> (DB_*).  Returns the connection, or NULL
 * with a message in <err>.
 */
sqlite3 *
db_open(const struct dbrepd_conf *conf, int flags, char *err, size_t errlen)
{
	sqlite3	*db = NULL;
	char	 sql[256];
	int	 oflags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, x, sync;

	if (flags & DB_CREATE)
		oflags |= SQLITE_OPEN_CREATE;
	if (sqlite3_open_v2(conf->data, &db, oflags, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", conf->data, db ?
		    sqlite3_errmsg(db) : "out of memory");
		sqlite3_close(db);
		return (NULL);
	}
	sqlite3_extended_result_codes(db, 1);
	sqlite3_busy_timeout(db, (int)conf->busy_timeout);
	if (flags & DB_CREATE) {
		if (db_exec(db, "PRAGMA page_size = 4096") == -1 ||
		    db_exec(db, "PRAGMA journal_mode = WAL") == -1)
			goto fail;
	}
	/*
	 * The client writers commit at NORMAL when their commits are made
	 * durable in groups (db_sync): same durability, fewer flushes.
	 */
	sync = (flags & DB_READER) || ((flags & DB_WRITER) &&
	    GROUP_COMMIT(conf)) ? 1 : conf->synchronous;
	snprintf(sql, sizeof(sql), "PRAGMA synchronous = %d; "
	    "PRAGMA journal_size_limit = 67108864; PRAGMA foreign_keys = %d; "
	    "PRAGMA query_only = %d", sync,
	    (flags & DB_WRITER) ? conf->foreign_keys : 0,
	    (flags & DB_READER) ? 1 : 0);
	if (db_exec(db, sql) == -1)
		goto fail;
	if (flags & DB_APPLY) {
		/* a replica replays the primary's results, not its logic */
		if (sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_TRIGGER, 0,
		    &x) != SQLITE_OK)
			goto fail;
	}
	return (db);
 fail:
	snprintf(err, errlen, "%s: %s", conf->data, sqlite3_errmsg(db));
	sqlite3_close_v2(db);
	return (NULL);
}

/*
 * Flush the write-ahead log of <db>'s database to the disk: every
 * commit of any connection that returned before the call is durable
 * when it returns 0 (fdatasync covers the file, whoever wrote it).
 */
int
db_sync(sqlite3 *db)
{
	sqlite3_file	*f = NULL;
	int		 rc;

	if (sqlite3_file_control(db, "main", SQLITE_FCNTL_JOURNAL_POINTER,
	    &f) != SQLITE_OK || f == NULL || f->pMethods == NULL) {
		/* no log open yet: nothing committed through it */
		return (0);
	}
	if ((rc = f->pMethods->xSync(f, SQLITE_SYNC_NORMAL)) != SQLITE_OK) {
		log_warnx("%s: cannot flush the write-ahead log: %s",
		    sqlite3_db_filename(db, "main"), sqlite3_errstr(rc));
		return (-1);
	}
	return (0);
}

/* Run SQL without results; logs and returns -1 on failure. */
int
db_exec(sqlite3 *db, const char *sql)
{
	char	*e = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &e) != SQLITE_OK) {
		log_debug("%s: %s: %s", __func__, sql, e ? e : "?");
		sqlite3_free(e);
		return (-1);
	}
	return (0);
}

/* Create dbrepd's tables where they are missing. */
int
db_schema(sqlite3 *db, char *err, size_t errlen)
{
	char	*e = NULL;

	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, &e) != SQLITE_OK ||
	    sqlite3_exec(db, schema_sql, NULL, NULL, &e) != SQLITE_OK ||
	    sqlite3_exec(db, "COMMIT", NULL, NULL, &e) != SQLITE_OK) {
		snprintf(err, errlen, "cannot create dbrepd's tables: %s",
		    e ? e : sqlite3_errmsg(db));
		sqlite3_free(e);
		db_exec(db, "ROLLBACK");
		return (-1);
	}
	return (0);
}

static sqlite3_stmt *
prep(sqlite3 *db, const char *sql)
{
	sqlite3_stmt	*st = NULL;

	if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st,
	    NULL) != SQLITE_OK) {
		log_warnx("%s: %s: %s", __func__, sql, sqlite3_errmsg(db));
		return (NULL);
	}
	return (st);
}

/*
 * Statements of the write paths, prepared once per connection: a
 * process has at most a few connections, so a short list will do.
 */
#define DB_NSTMT	8
struct stmtcache {
	sqlite3		*db;
	sqlite3_stmt	*st[DB_NSTMT];
};
static struct stmtcache	 cache[8];

static sqlite3_stmt *
cached(sqlite3 *db, int id, const char *sql)
{
	struct stmtcache	*c = NULL;
	size_t			 i;

	for (i = 0; i < nitems(cache); i++)
		if (cache[i].db == db) {
			c = &cache[i];
			break;
		}
	if (c == NULL)
		for (i = 0; i < nitems(cache); i++)
			if (cache[i].db == NULL) {
				c = &cache[i];
				c->db = db;
				break;
			}
	if (c == NULL) {
		log_warnx("%s: too many connections", __func__);
		return (NULL);
	}
	if (c->st[id] == NULL)
		c->st[id] = prep(db, sql);
	return (c->st[id]);
}

/* Finalize what cached() kept for <db>, then close it. */
void
db_close(sqlite3 *db)
{
	size_t	i;
	int	j;

	if (db == NULL)
		return;
	for (i = 0; i < nitems(cache); i++)
		if (cache[i].db == db) {
			for (j = 0; j < DB_NSTMT; j++)
				sqlite3_finalize(cache[i].st[j]);
			memset(&cache[i], 0, sizeof(cache[i]));
		}
	sqlite3_close_v2(db);
}

static void
col_hash(sqlite3_stmt *st, int col, uint8_t *out)
{
	const void	*p = sqlite3_column_blob(st, col);

	memset(out, 0, DBREP_HASHLEN);
	if (p != NULL && sqlite3_column_bytes(st, col) == DBREP_HASHLEN)
		memcpy(out, p, DBREP_HASHLEN);
}

/*
 * The last log record's lsn, epoch, ts and hash into <mt>: SQLITE_ROW,
 * SQLITE_DONE (an empty log), or an error code.
 */
static int
last_record(sqlite3 *db, struct meta *mt)
{
	sqlite3_stmt	*st;
	int		 rc;

	if ((st = cached(db, 1, "SELECT lsn, epoch, ts, hash FROM _dbrep_log "
	    "ORDER BY lsn DESC LIMIT 1")) == NULL)
		return (SQLITE_ERROR);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		mt->lsn = sqlite3_column_int64(st, 0);
		mt->epoch = sqlite3_column_int64(st, 1);
		mt->ts = sqlite3_column_int64(st, 2);
		col_hash(st, 3, mt->hash);
	}
	sqlite3_reset(st);
	return (rc);
}

/*
 * The database's position (see struct meta).  Two plain lookups: one
 * query joining them made SQLite build a temporary table for the
 * subquery at every call, a tenth of a commit's CPU.
 */
static int	meta_read(sqlite3 *, struct meta *);

int
db_meta(sqlite3 *db, struct meta *mt)
{
	int	rc;

	/* both lookups from one snapshot */
	if (!sqlite3_get_autocommit(db))
		return (meta_read(db, mt));
	if (db_exec(db, "BEGIN") == -1)
		return (-1);
	rc = meta_read(db, mt);
	db_exec(db, "COMMIT");
	return (rc);
}

/*
 * Only the position (lsn, epoch, ts, hash), in the caller's transaction:
 * the last log row, and db_meta() when the log is empty.  The prune
 * fields are left zero.  The write and read paths need no more.
 */
int
db_position(sqlite3 *db, struct meta *mt)
{
	int	rc;

	memset(mt, 0, sizeof(*mt));
	if ((rc = last_record(db, mt)) == SQLITE_DONE)
		return (db_meta(db, mt));
	return (rc == SQLITE_ROW ? 0 : -1);
}

static int
meta_read(sqlite3 *db, struct meta *mt)
{
	sqlite3_stmt	*st;
	int		 rc;

	memset(mt, 0, sizeof(*mt));
	if ((st = cached(db, 0, "SELECT prune_lsn, prune_epoch, prune_ts, "
	    "prune_hash FROM _dbrep_meta WHERE id = 1")) == NULL)
		return (-1);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		mt->prune_lsn = sqlite3_column_int64(st, 0);
		mt->prune_epoch = sqlite3_column_int64(st, 1);
		mt->prune_ts = sqlite3_column_int64(st, 2);
		col_hash(st, 3, mt->prune_hash);
	}
	sqlite3_reset(st);
	if (rc != SQLITE_ROW)
		return (-1);
	if ((rc = last_record(db, mt)) == SQLITE_DONE) {
		mt->lsn = mt->prune_lsn;
		mt->epoch = mt->prune_epoch;
		mt->ts = mt->prune_ts;
		memcpy(mt->hash, mt->prune_hash, DBREP_HASHLEN);
	}
	return (rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1);
}

/* Bytes of record bodies in the log (once, at start: O(records)). */
int
db_log_bytes(sqlite3 *db, uint64_t *bytes)
{
	sqlite3_stmt	*st;
	int		 rc;

	*bytes = 0;
	if ((st = prep(db, "SELECT coalesce(sum(length(body)), 0) FROM "
	    "_dbrep_log")) == NULL)
		return (-1);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW)
		*bytes = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return (rc == SQLITE_ROW ? 0 : -1);
}

int
db_log_append(sqlite3 *db, const struct record *r)
{
	sqlite3_stmt	*st;
	int		 rc;

	if ((st = cached(db, 2, "INSERT INTO _dbrep_log(lsn, epoch, ts, "
	    "hash, body) VALUES(?1, ?2, ?3, ?4, ?5)")) == NULL)
		return (-1);
	sqlite3_bind_int64(st, 1, r->lsn);
	sqlite3_bind_int64(st, 2, r->epoch);
	sqlite3_bind_int64(st, 3, r->ts);
	sqlite3_bind_blob(st, 4, r->hash, DBREP_HASHLEN, SQLITE_STATIC);
	sqlite3_bind_blob64(st, 5, r->len ? (const void *)r->body : "",
	    r->len, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return (rc == SQLITE_DONE ? 0 : -1);
}

/* The latest epoch: its number, start LSN and node.  0 when none. */
int
db_latest_epoch(sqlite3 *db, uint64_t *epoch, uint64_t *start, char *node,
    size_t nodelen)
{
	sqlite3_stmt	*st;
	int		 rc;

	*epoch = *start = 0;
	if (node != NULL && nodelen > 0)
		node[0] = '\0';
	if ((st = prep(db, "SELECT epoch, start_lsn, node FROM _dbrep_epochs "
	    "ORDER BY epoch DESC LIMIT 1")) == NULL)
		return (-1);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		*epoch = sqlite3_column_int64(st, 0);
		*start = sqlite3_column_int64(st, 1);
		if (node != NULL && nodelen > 0)
			strlcpy(node, (const char *)sqlite3_column_text(st, 2),
			    nodelen);
	}
	sqlite3_finalize(st);
	return (rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1);
}

/*
 * Where the first epoch after <epoch> starts: *start = its LSN, or 0
 * when <epoch> is the latest.
 */
int
db_epoch_start(sqlite3 *db, uint64_t epoch, uint64_t *start)
{
	sqlite3_stmt	*st;
	int		 rc;

	*start = 0;
	if ((st = prep(db, "SELECT min(start_lsn) FROM _dbrep_epochs "
	    "WHERE epoch > ?1")) == NULL)
		return (-1);
	sqlite3_bind_int64(st, 1, epoch);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW)
		*start = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return (rc == SQLITE_ROW ? 0 : -1);
}


/*
 * The next argument of a CREATE VIRTUAL TABLE statement's list at *<pp>,
 * split as "key = value" (value unquoted) or a bare "key"; 0 at the end.
 */
static int
vtab_arg(const char **pp, char *key, size_t keylen, char *val, size_t vallen)
{
	const char	*p = *pp;
	size_t		 k = 0, v = 0;
	int		 depth = 0, eq = 0;
	char		 q = 0;

	key[0] = val[0] = '\0';
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' ||
	    *p == ',')
		p++;
	if (*p == '\0' || *p == ')')
		return (0);
	for (; *p != '\0'; p++) {
		char	ch = *p;

		if (q != 0) {
			if (ch == q && p[1] == q)
				p++;		/* a doubled quote */
			else if (ch == q) {
				q = 0;
				continue;
			}
		} else if (ch == '\'' || ch == '"' || ch == '`') {
			q = ch;
			continue;
		} else if (ch == '[') {
			q = ']';
			continue;
		} else if (ch == '(')
			depth++;
		else if (ch == ')' && depth-- == 0)
			break;
		else if (ch == ',' && depth == 0)
			break;
		else if (ch == '=' && !eq && depth == 0) {
			eq = 1;
			continue;
		} else if (ch == ' ' || ch == '\t' || ch == '\n' ||
		    ch == '\r')
			continue;
		if (!eq && k + 1 < keylen)
			key[k++] = ch;
		else if (eq && v + 1 < vallen)
			val[v++] = ch;
	}
	key[k] = val[v] = '\0';
	*pp = p;
	return (1);
}

/*
 * An fts5 table with external content (content=T) finds its rows in T by
 * rowid (content_rowid, "rowid" by default).  Replicas keep the rowids
 * of a table only when they are its INTEGER PRIMARY KEY: elsewhere a
 * changed key or a REPLACE gives the row another rowid on a replica than
 * on the primary, and the replicated index would point at other rows.
 * 1: fine; 0: not, and why in <err>; -1: SQLite failed.
 */
static int
vtab_ok(sqlite3 *db, const char *name, char *err, size_t errlen)
{
	sqlite3_stmt	*st;
	const char	*sql, *p;
	char		 key[64], val[256], content[256] = "", crowid[256] =
			    "rowid";
	int		 rc, ipk = 0, found = 0, wr = 0;

	if ((st = prep(db, "SELECT sql FROM sqlite_schema WHERE "
	    "type = 'table' AND name = ?1")) == NULL)
		return (-1);
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
		sqlite3_finalize(st);
		return (rc == SQLITE_DONE ? 1 : -1);
	}
	sql = (const char *)sqlite3_column_text(st, 0);
	/* CREATE VIRTUAL TABLE name USING module(args) */
	for (p = sql; p != NULL && (p = strcasestr(p, "using")) != NULL; p++)
		if (p > sql && isspace((unsigned char)p[-1]) &&
		    isspace((unsigned char)p[5]))
			break;
	if (p != NULL) {
		for (p += 5; isspace((unsigned char)*p); p++)
			;
		if (strncasecmp(p, "fts5", 4) != 0)
			p = NULL;
		else
			for (p += 4; isspace((unsigned char)*p); p++)
				;
	}
	if (p == NULL || *p++ != '(') {
		sqlite3_finalize(st);
		return (1);
	}
	while (vtab_arg(&p, key, sizeof(key), val, sizeof(val)))
		if (strcasecmp(key, "content") == 0)
			strlcpy(content, val, sizeof(content));
		else if (strcasecmp(key, "content_rowid") == 0)
			strlcpy(crowid, val, sizeof(crowid));
	sqlite3_finalize(st);
	if (content[0] == '\0')
		return (1);		/* the index keeps the text itself */
	if (strcasecmp(crowid, "rowid") != 0 &&
	    strcasecmp(crowid, "oid") != 0 &&
	    strcasecmp(crowid, "_rowid_") != 0)
		return (1);	/* a real column: replicated as the others */
	if ((st = prep(db, "SELECT l.wr, (SELECT count(*) = 1 AND "
	    "max(upper(i.type) = 'INTEGER') FROM pragma_table_info(l.name) "
	    "AS i WHERE i.pk > 0) FROM pragma_table_list AS l WHERE "
	    "l.schema = 'main' AND l.name = ?1 AND l.type = 'table'")) ==
	    NULL)
		return (-1);
	sqlite3_bind_text(st, 1, content, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		found = 1;
		wr = sqlite3_column_int(st, 0);
		ipk = sqlite3_column_int(st, 1);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return (-1);
	if (found && !wr && ipk)
		return (1);
	snprintf(err, errlen, "fts5 table %s: its content table %s %s: "
	    "replicas keep a table's rowids only when they are its INTEGER "
	    "PRIMARY KEY (or name such a column with content_rowid)", name,
	    content, !found ? "is not a table of this database (create it "
	    "first)" : wr ? "is WITHOUT ROWID" : "has no INTEGER PRIMARY "
	    "KEY");
	return (0);
}

/*
 * Can table <name> be replicated?  It needs a PRIMARY KEY, and outside
 * INTEGER PRIMARY KEY and WITHOUT ROWID tables its columns must be NOT
 * NULL: the changes recorded (rowcap.c, the session extension's rules)
 * skip a table without a PRIMARY KEY and a row with a NULL in its key.
 * Returns 1, 0 with the reason in <err>, or -1 on an SQLite error.
 */
int
db_table_ok(sqlite3 *db, const char *name, char *err, size_t errlen)
{
	sqlite3_stmt	*st = NULL;
	int		 rc, npk = 0, nullable = 0, wr = 0, intpk = 0, found = 0;
	char		 col[128] = "";

	if ((st = prep(db, "SELECT type, wr FROM pragma_table_list "
	    "WHERE schema = 'main' AND name = ?1")) == NULL)
		return (-1);
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char	*type = (const char *)sqlite3_column_text(st, 0);

		found = 1;
		wr = sqlite3_column_int(st, 1);
		if (type != NULL && strcmp(type, "virtual") == 0) {
			/* its shadow tables are checked as tables */
			sqlite3_finalize(st);
			return (vtab_ok(db, name, err, errlen));
		}
		if (type != NULL && strcmp(type, "table") != 0) {
			sqlite3_finalize(st);
			return (1);	/* views */
		}
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return (-1);
	if (!found)
		return (1);
	if ((st = prep(db, "SELECT name, type, \"notnull\", pk FROM "
	    "pragma_table_info(?1) WHERE pk > 0")) == NULL)
		return (-1);
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char	*type = (const char *)sqlite3_column_text(st, 1);

		npk++;
		if (type != NULL && strcasecmp(type, "INTEGER") == 0)
			intpk = 1;
		if (!sqlite3_column_int(st, 2) && !nullable) {
			nullable = 1;
			strlcpy(col, (const char *)sqlite3_column_text(st, 0),
			    sizeof(col));
		}
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return (-1);
	if (npk == 0) {
		snprintf(err, errlen, "table %s has no PRIMARY KEY: dbrepd "
		    "cannot replicate it (CREATE TABLE ... AS SELECT makes "
		    "none: create the table with a PRIMARY KEY, then INSERT "
		    "... SELECT)", name);
		return (0);
	}
	/*
	 * A key under a collation where unequal bytes are equal (NOCASE,
	 * RTRIM): the recorded changes match rows byte for byte, and two
	 * spellings of one key would reach replicas as two rows.
	 */
	if ((st = prep(db, "SELECT x.name, x.coll FROM pragma_index_list(?1) "
	    "AS l, pragma_index_xinfo(l.name) AS x WHERE l.origin = 'pk' AND "
	    "x.key = 1 AND x.coll <> 'BINARY' COLLATE NOCASE")) == NULL)
		return (-1);
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		snprintf(err, errlen, "column %s of the PRIMARY KEY of table %s "
		    "uses the collation %s: dbrepd replicates keys compared "
		    "byte for byte (declare it COLLATE BINARY)",
		    sqlite3_column_text(st, 0), name,
		    sqlite3_column_text(st, 1));
		sqlite3_finalize(st);
		return (0);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return (-1);
	if (nullable && !wr && !(npk == 1 && intpk)) {
		snprintf(err, errlen, "column %s of the PRIMARY KEY of table "
		    "%s may be NULL: declare it NOT NULL (rows with a NULL key "
		    "cannot be replicated)", col, name);
		return (0);
	}
	return (1);
}

/*
 * Every virtual table can still be replicated: after a request created
 * tables, one of which may be an fts5 table's content made again
 * without its INTEGER PRIMARY KEY.  As db_table_ok().
 */
int
db_vtabs_ok(sqlite3 *db, char *err, size_t errlen)
{
	sqlite3_stmt	*st;
	int		 rc = SQLITE_DONE, ok = 1;

	if ((st = prep(db, "SELECT name FROM sqlite_schema WHERE type = "
	    "'table' AND sql LIKE 'CREATE VIRTUAL TABLE%'")) == NULL)
		return (-1);
	while (ok == 1 && (rc = sqlite3_step(st)) == SQLITE_ROW)
		ok = vtab_ok(db, (const char *)sqlite3_column_text(st, 0), err,
		    errlen);
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return (-1);
	return (ok);
}

/* Every table of the database can be replicated; else 0 and why. */
int
db_check_tables(sqlite3 *db, char *err, size_t errlen)
{
	sqlite3_stmt	*st;
	int		 rc, ok = 1;

	if ((st = prep(db, "SELECT name FROM sqlite_schema WHERE "
	    "type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND "
	    "name NOT LIKE '\\_dbrep\\_%' ESCAPE '\\'")) == NULL)
		return (-1);
	while (ok == 1 && (rc = sqlite3_step(st)) == SQLITE_ROW)
		ok = db_table_ok(db, (const char *)sqlite3_column_text(st, 0),
		    err, errlen);
	sqlite3_finalize(st);
	return (ok);
}

/*
 * The role of this node (ROLE_PRIMARY or ROLE_REPLICA) and the epoch it
 * is in: the latest epoch of the database, or a later one it heard of.
 */
int
db_role(sqlite3 *db, const struct dbrepd_conf *conf,
    const struct nodestate *ns, uint64_t *epoch)
{
	uint64_t	start;
	char		node[DBREP_NAMELEN];

	if (db_latest_epoch(db, epoch, &start, node, sizeof(node)) == -1)
		return (-1);
	if (*epoch == 0)
		return (conf->role);
	if (ns->fenced > *epoch) {
		*epoch = ns->fenced;
		return (ROLE_REPLICA);
	}
	return (strcmp(node, conf->name) == 0 ? ROLE_PRIMARY : ROLE_REPLICA);
}

/*
 * Prune the log up to and including <upto>, never its last record, a
 * batch per transaction (the caller holds the writers' lock on a
 * primary).  Updates <mt>; adds the bytes freed to *<freed>.
 */
int
db_prune(sqlite3 *db, uint64_t upto, struct meta *mt, uint64_t *freed)
{
	sqlite3_stmt	*sum = NULL, *del = NULL, *set = NULL;
	uint64_t	 first, last;
	int		 rc = -1;

	if ((sum = prep(db, "SELECT sum(length(body)), (SELECT epoch FROM "
	    "_dbrep_log WHERE lsn = ?2), (SELECT ts FROM _dbrep_log WHERE "
	    "lsn = ?2), (SELECT hash FROM _dbrep_log WHERE lsn = ?2) FROM "
	    "_dbrep_log WHERE lsn <= ?2 AND lsn >= ?1")) == NULL ||
	    (del = prep(db, "DELETE FROM _dbrep_log WHERE lsn <= ?1")) ==
	    NULL ||
	    (set = prep(db, "UPDATE _dbrep_meta SET prune_lsn = ?1, "
	    "prune_epoch = ?2, prune_ts = ?3, prune_hash = ?4 WHERE id = 1")) ==
	    NULL)
		goto done;
	for (;;) {
		if (db_exec(db, "BEGIN IMMEDIATE") == -1)
			goto done;
		if (db_meta(db, mt) == -1)
			goto fail;
		first = mt->prune_lsn + 1;
		last = first + DBREP_PRUNE_BATCH - 1;
		if (last > upto)
			last = upto;
		if (last >= mt->lsn)
			last = mt->lsn - 1;	/* keep the position's row */
		if (mt->lsn == 0 || first > last) {
			db_exec(db, "ROLLBACK");
			break;
		}
		sqlite3_bind_int64(sum, 1, first);
		sqlite3_bind_int64(sum, 2, last);
		if (sqlite3_step(sum) != SQLITE_ROW ||
		    sqlite3_column_type(sum, 3) != SQLITE_BLOB) {
			sqlite3_reset(sum);
			goto fail;	/* a gap: never pruned past it */
		}
		*freed += sqlite3_column_int64(sum, 0);
		sqlite3_bind_int64(set, 1, last);
		sqlite3_bind_int64(set, 2, sqlite3_column_int64(sum, 1));
		sqlite3_bind_int64(set, 3, sqlite3_column_int64(sum, 2));
		sqlite3_bind_blob(set, 4, sqlite3_column_blob(sum, 3),
		    DBREP_HASHLEN, SQLITE_TRANSIENT);
		sqlite3_reset(sum);
		sqlite3_bind_int64(del, 1, last);
		rc = sqlite3_step(del);
		sqlite3_reset(del);
		if (rc != SQLITE_DONE || sqlite3_step(set) != SQLITE_DONE) {
			sqlite3_reset(set);
			rc = -1;
			goto fail;
		}
		sqlite3_reset(set);
		rc = -1;
		if (db_exec(db, "COMMIT") == -1)
			goto fail;
		if (last == upto)
			break;
	}
	db_meta(db, mt);
	rc = 0;
	goto done;
 fail:
	log_warnx("%s: %s", __func__, sqlite3_errmsg(db));
	db_exec(db, "ROLLBACK");
	db_meta(db, mt);
 done:
	sqlite3_finalize(sum);
	sqlite3_finalize(del);
	sqlite3_finalize(set);
	return (rc);
}

/* The node's local state; a missing file is an empty state. */
int
state_load(const char *path, struct nodestate *ns)
{
	FILE		*f;
	char		 line[512], *v;
	const char	*errstr;

	memset(ns, 0, sizeof(*ns));
	if ((f = fopen(path, "r")) == NULL)
		return (errno == ENOENT ? 0 : -1);
	while (fgets(line, sizeof(line), f) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		if ((v = strchr(line, ' ')) == NULL)
			continue;
		*v++ = '\0';
		if (strcmp(line, "follow") == 0)
			strlcpy(ns->follow, v, sizeof(ns->follow));
		else if (strcmp(line, "fenced") == 0) {
			ns->fenced = strtonum(v, 0, LLONG_MAX, &errstr);
			if (errstr != NULL)
				ns->fenced = 0;
		} else if (strcmp(line, "voted") == 0)
			strlcpy(ns->voted, v, sizeof(ns->voted));
		else if (strcmp(line, "counted") == 0) {
			ns->counted = strtonum(v, 0, LLONG_MAX, &errstr);
			if (errstr != NULL)
				ns->counted = 0;
		}
	}
	fclose(f);
	return (0);
}

int
state_save(const char *path, const struct nodestate *ns)
{
	char	 tmp[PATH_MAX + 8], dir[PATH_MAX], *slash;
	FILE	*f;
	int	 fd, ok;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return (-1);
	if ((f = fopen(tmp, "w")) == NULL)
		return (-1);
	fprintf(f, "follow %s\nfenced %llu\nvoted %s\ncounted %llu\n",
	    ns->follow, (unsigned long long)ns->fenced, ns->voted,
	    (unsigned long long)ns->counted);
	ok = fflush(f) == 0 && fsync(fileno(f)) == 0;
	if (fclose(f) != 0 || !ok || rename(tmp, path) == -1) {
		unlink(tmp);
		return (-1);
	}
	strlcpy(dir, path, sizeof(dir));
	if ((slash = strrchr(dir, '/')) != NULL) {
		*slash = '\0';
		if ((fd = open(dir[0] ? dir : "/", O_RDONLY | O_DIRECTORY)) !=
		    -1) {
			fsync(fd);
			close(fd);
		}
	}
	return (0);
}
