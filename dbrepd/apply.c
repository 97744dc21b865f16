/*
 * apply.c: applying log records to a database (a replica's applier, and
 * the primary's own epoch records).
 *
 * A batch of records is applied in one transaction that also stores each
 * record in _dbrep_log (the last one is the database's position), so that
 * a crash at any point leaves the database at a record boundary.  Before
 * a record is applied its LSN must follow the database's, its epoch must
 * not go back, and its hash must chain from the database's hash.
 *
 * The applier's connection runs with triggers and foreign keys off: the
 * changesets already hold every row that triggers and foreign-key
 * actions changed on the primary.  A conflict of any kind means the
 * replica diverged, except a UNIQUE constraint that a changeset cannot
 * satisfy in any order (two rows swapping a unique value): that
 * changeset is applied again as the deletion of every row it changes,
 * then the insertion of their new versions.
 */
#include <sys/types.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "dbrepd.h"

struct apply_ctx {
	sqlite3		*db;
	sqlite3_stmt	*exists;
	int		 conflict;	/* SQLITE_CHANGESET_*, 0 */
	char		 table[128];
	char		 missing[128];
};

static const char *
conflict_name(int kind)
{
	switch (kind) {
	case SQLITE_CHANGESET_DATA:
		return ("a row differs from the primary's old version");
	case SQLITE_CHANGESET_NOTFOUND:
		return ("a row to change is missing");
	case SQLITE_CHANGESET_CONFLICT:
		return ("a row to insert exists");
	case SQLITE_CHANGESET_CONSTRAINT:
		return ("a constraint fails");
	case SQLITE_CHANGESET_FOREIGN_KEY:
		return ("a foreign key fails");
	default:
		return ("conflict");
	}
}

static int
filter(void *arg, const char *table)
{
	struct apply_ctx	*a = arg;
	int			 found;

	sqlite3_bind_text(a->exists, 1, table, -1, SQLITE_STATIC);
	found = sqlite3_step(a->exists) == SQLITE_ROW;
	sqlite3_reset(a->exists);
	if (!found && a->missing[0] == '\0')
		strlcpy(a->missing, table, sizeof(a->missing));
	return (found);
}

/*
 * Is <cur> the default of column <col> of <table>?  SQLite 3.40's session
 * extension records NULL as the old value of a column that ALTER TABLE
 * ADD COLUMN gave a default, for rows written before the ALTER (their
 * record lacks the column): the replica holds the default there.
 */
static int
is_default(sqlite3 *db, const char *table, int col, sqlite3_value *cur)
{
	sqlite3_stmt	*st;
	char		*sql = NULL;
	int		 yes = 0;

	if (sqlite3_prepare_v2(db, "SELECT dflt_value FROM "
	    "pragma_table_info(?1) WHERE cid = ?2", -1, &st, NULL) !=
	    SQLITE_OK)
		return (0);
	sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, col);
	if (sqlite3_step(st) == SQLITE_ROW &&
	    sqlite3_column_type(st, 0) != SQLITE_NULL)
		sql = sqlite3_mprintf("SELECT (%s) IS ?1",
		    sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	if (sql == NULL)
		return (0);
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_value(st, 1, cur);
		yes = sqlite3_step(st) == SQLITE_ROW &&
		    sqlite3_column_int(st, 0) == 1;
		sqlite3_finalize(st);
	}
	sqlite3_free(sql);
	return (yes);
}

/* A DATA conflict that is only that artifact: apply the change. */
static int
data_artifact(struct apply_ctx *a, sqlite3_changeset_iter *it)
{
	sqlite3_value	*old, *cur;
	sqlite3_stmt	*st;
	const char	*tab;
	int		 ncol, op, ind, i, same, artifact = 0;

	if (sqlite3changeset_op(it, &tab, &ncol, &op, &ind) != SQLITE_OK ||
	    sqlite3_prepare_v2(a->db, "SELECT ?1 IS ?2", -1, &st, NULL) !=
	    SQLITE_OK)
		return (0);
	for (i = 0; i < ncol; i++) {
		old = cur = NULL;
		if (sqlite3changeset_old(it, i, &old) != SQLITE_OK ||
		    old == NULL)
			continue;	/* not in the change */
		if (sqlite3changeset_conflict(it, i, &cur) != SQLITE_OK ||
		    cur == NULL)
			break;
		sqlite3_bind_value(st, 1, old);
		sqlite3_bind_value(st, 2, cur);
		same = sqlite3_step(st) == SQLITE_ROW &&
		    sqlite3_column_int(st, 0) == 1;
		sqlite3_reset(st);
		if (same)
			continue;
		if (sqlite3_value_type(old) != SQLITE_NULL ||
		    !is_default(a->db, tab, i, cur))
			break;
		artifact = 1;
	}
	sqlite3_finalize(st);
	return (i == ncol && artifact);
}

static int
conflict(void *arg, int kind, sqlite3_changeset_iter *it)
{
	struct apply_ctx	*a = arg;
	const char		*tab = NULL;
	int			 ncol, op, ind;

	if (kind == SQLITE_CHANGESET_DATA && data_artifact(a, it))
		return (SQLITE_CHANGESET_REPLACE);
	if (a->conflict == 0) {
		a->conflict = kind;
		if (sqlite3changeset_op(it, &tab, &ncol, &op, &ind) ==
		    SQLITE_OK && tab != NULL)
			strlcpy(a->table, tab, sizeof(a->table));
	}
	return (SQLITE_CHANGESET_ABORT);
}

/* Names of the columns of <table>, in order; NULL on error. */
static char **
columns(sqlite3 *db, const char *table, int *n)
{
	sqlite3_stmt	*st;
	char		**names = NULL, **nn;
	int		 k = 0;

	if (sqlite3_prepare_v2(db, "SELECT name FROM pragma_table_info(?1) "
	    "ORDER BY cid", -1, &st, NULL) != SQLITE_OK)
		return (NULL);
	sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
	while (sqlite3_step(st) == SQLITE_ROW) {
		if ((nn = reallocarray(names, k + 1, sizeof(*nn))) == NULL)
			break;
		names = nn;
		names[k++] = strdup((const char *)sqlite3_column_text(st, 0));
	}
	sqlite3_finalize(st);
	*n = k;
	return (names);
}

static void
columns_free(char **names, int n)
{
	int	i;

	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/*
 * One pass of the fallback: pass 0 deletes the old version of every row
 * updated or deleted, pass 1 inserts the new version of every row
 * inserted or updated.
 */
static int
swap_pass(sqlite3 *db, const void *p, int n, int pass, char *err,
    size_t errlen)
{
	sqlite3_changeset_iter	*it = NULL;
	sqlite3_stmt		*st = NULL;
	sqlite3_value		*v;
	const char		*tab;
	unsigned char		*pk;
	char			**cols = NULL, *sql, *w, last[128] = "";
	int			 ncols = 0, ncol, op, ind, npk, i, k, rc = -1;

	if (sqlite3changeset_start(&it, n, (void *)p) != SQLITE_OK)
		return (-1);
	while (sqlite3changeset_next(it) == SQLITE_ROW) {
		sqlite3changeset_op(it, &tab, &ncol, &op, &ind);
		sqlite3changeset_pk(it, &pk, &npk);
		if ((pass == 0 && op == SQLITE_INSERT) ||
		    (pass == 1 && op == SQLITE_DELETE))
			continue;
		if (strcmp(tab, last) != 0) {
			columns_free(cols, ncols);
			cols = columns(db, tab, &ncols);
			strlcpy(last, tab, sizeof(last));
		}
		if (cols == NULL || ncols != ncol) {
			snprintf(err, errlen, "table %s: %d columns, the "
			    "changeset has %d", tab, ncols, ncol);
			goto done;
		}
		if (pass == 0) {
			sql = sqlite3_mprintf("DELETE FROM \"%w\" WHERE 1",
			    tab);
			for (i = 0; i < ncol && sql != NULL; i++) {
				if (!pk[i])
					continue;
				w = sql;
				sql = sqlite3_mprintf("%s AND \"%w\" IS ?%d", w,
				    cols[i], i + 1);
				sqlite3_free(w);
			}
		} else {
			sql = sqlite3_mprintf("INSERT INTO \"%w\" VALUES(",
			    tab);
			for (i = 0; i < ncol && sql != NULL; i++) {
				w = sql;
				sql = sqlite3_mprintf("%s%s?%d", w, i ? "," :
				    "", i + 1);
				sqlite3_free(w);
			}
			if (sql != NULL) {
				w = sql;
				sql = sqlite3_mprintf("%s)", w);
				sqlite3_free(w);
			}
		}
		if (sql == NULL)
			goto done;
		k = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
		sqlite3_free(sql);
		if (k != SQLITE_OK)
			goto sqlfail;
		for (i = 0; i < ncol; i++) {
			v = NULL;
			if (pass == 1 && op != SQLITE_DELETE)
				sqlite3changeset_new(it, i, &v);
			if (v == NULL && op != SQLITE_INSERT)
				sqlite3changeset_old(it, i, &v);
			if (pass == 0 && !pk[i])
				continue;
			if (v != NULL)
				sqlite3_bind_value(st, i + 1, v);
		}
		if (sqlite3_step(st) != SQLITE_DONE)
			goto sqlfail;
		if (sqlite3_changes(db) != 1) {
			snprintf(err, errlen, "table %s: a row to change is "
			    "missing", tab);
			goto done;
		}
		sqlite3_finalize(st);
		st = NULL;
	}
	rc = 0;
	goto done;
 sqlfail:
	snprintf(err, errlen, "%s", sqlite3_errmsg(db));
 done:
	sqlite3_finalize(st);
	columns_free(cols, ncols);
	sqlite3changeset_finalize(it);
	return (rc);
}

static int
apply_swap(sqlite3 *db, const void *p, int n, char *err, size_t errlen)
{
	if (db_exec(db, "SAVEPOINT dbrep_swap") == -1) {
		snprintf(err, errlen, "%s", sqlite3_errmsg(db));
		return (-1);
	}
	if (swap_pass(db, p, n, 0, err, errlen) == -1 ||
	    swap_pass(db, p, n, 1, err, errlen) == -1) {
		db_exec(db, "ROLLBACK TO dbrep_swap");
		db_exec(db, "RELEASE dbrep_swap");
		return (-1);
	}
	return (db_exec(db, "RELEASE dbrep_swap"));
}

static int
apply_changeset(sqlite3 *db, const uint8_t *p, size_t n, char *err,
    size_t errlen)
{
	struct apply_ctx	a;
	int			rc;

	memset(&a, 0, sizeof(a));
	a.db = db;
	if (n > INT32_MAX) {
		snprintf(err, errlen, "changeset too large");
		return (-2);
	}
	if (sqlite3_prepare_v2(db, "SELECT 1 FROM sqlite_schema WHERE "
	    "type = 'table' AND name = ?1", -1, &a.exists, NULL) !=
	    SQLITE_OK) {
		snprintf(err, errlen, "%s", sqlite3_errmsg(db));
		return (-1);
	}
	rc = sqlite3changeset_apply_v2(db, (int)n, (void *)p, filter,
	    conflict, &a, NULL, NULL, 0);
	sqlite3_finalize(a.exists);
	if (a.missing[0] != '\0') {
		snprintf(err, errlen, "diverged: table %s is missing",
		    a.missing);
		return (-2);
	}
	if (rc == SQLITE_OK)
		return (0);
	if (rc == SQLITE_ABORT && a.conflict == SQLITE_CHANGESET_CONSTRAINT) {
		if (apply_swap(db, p, (int)n, err, errlen) == 0)
			return (0);
		return (-2);
	}
	if (rc == SQLITE_ABORT && a.conflict != 0) {
		snprintf(err, errlen, "diverged: table %s: %s", a.table,
		    conflict_name(a.conflict));
		return (-2);
	}
	snprintf(err, errlen, "%s", sqlite3_errstr(rc));
	return (-1);
}

static int
apply_sequence(sqlite3 *db, const uint8_t *p, size_t len, char *err,
    size_t errlen)
{
	sqlite3_stmt	*st = NULL;
	struct fr	 r;
	char		 name[256];
	uint32_t	 n, i;
	int64_t		 seq;

	fr_init(&r, p, len);
	n = fr_u32(&r);
	if (db_exec(db, "DELETE FROM sqlite_sequence") == -1) {
		if (n == 0)
			return (0);	/* no AUTOINCREMENT table here */
		goto sqlfail;
	}
	if (sqlite3_prepare_v2(db, "INSERT INTO sqlite_sequence(name, seq) "
	    "VALUES(?1, ?2)", -1, &st, NULL) != SQLITE_OK)
		goto sqlfail;
	for (i = 0; i < n; i++) {
		if (fr_strcpy(&r, name, sizeof(name)) == -1)
			break;
		seq = fr_i64(&r);
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, seq);
		if (sqlite3_step(st) != SQLITE_DONE)
			goto sqlfail;
		sqlite3_reset(st);
	}
	sqlite3_finalize(st);
	if (!fr_done(&r)) {
		snprintf(err, errlen, "malformed sequence segment");
		return (-2);
	}
	return (0);
 sqlfail:
	snprintf(err, errlen, "sqlite_sequence: %s", sqlite3_errmsg(db));
	sqlite3_finalize(st);
	return (-1);
}

static int
apply_epoch_seg(sqlite3 *db, uint64_t lsn, uint64_t ts, const uint8_t *p,
    size_t len, char *err, size_t errlen)
{
	sqlite3_stmt	*st;
	struct fr	 r;
	char		 node[DBREP_NAMELEN];
	uint64_t	 epoch;
	int		 rc;

	fr_init(&r, p, len);
	epoch = fr_u64(&r);
	fr_strcpy(&r, node, sizeof(node));
	if (!fr_done(&r)) {
		snprintf(err, errlen, "malformed epoch segment");
		return (-2);
	}
	if (sqlite3_prepare_v2(db, "INSERT INTO _dbrep_epochs(epoch, "
	    "start_lsn, node, ts) VALUES(?1, ?2, ?3, ?4)", -1, &st, NULL) !=
	    SQLITE_OK) {
		snprintf(err, errlen, "%s", sqlite3_errmsg(db));
		return (-1);
	}
	sqlite3_bind_int64(st, 1, epoch);
	sqlite3_bind_int64(st, 2, lsn);
	sqlite3_bind_text(st, 3, node, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, ts);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		snprintf(err, errlen, "epoch %llu: %s",
		    (unsigned long long)epoch, sqlite3_errmsg(db));
		return (rc == SQLITE_CONSTRAINT_PRIMARYKEY ? -2 : -1);
	}
	return (0);
}

/*
 * Apply the segments of one record in the caller's transaction.  Returns
 * 0, -1 on an error that may pass (disk full, busy), -2 when the record
 * does not fit this database (diverged, malformed).
 */
int
apply_body(sqlite3 *db, uint64_t lsn, uint64_t ts, const uint8_t *body,
    size_t len, char *err, size_t errlen)
{
	struct fr	 r;
	const uint8_t	*p;
	size_t		 n;
	char		*sql, *e = NULL;
	int		 kind, rc;

	fr_init(&r, body, len);
	while ((rc = seg_next(&r, &kind, &p, &n)) == 1) {
		switch (kind) {
		case SEG_CHANGESET:
			if ((rc = apply_changeset(db, p, n, err, errlen)) != 0)
				return (rc);
			break;
		case SEG_SQL:
			if ((sql = malloc(n + 1)) == NULL) {
				snprintf(err, errlen, "out of memory");
				return (-1);
			}
			memcpy(sql, p, n);
			sql[n] = '\0';
			rc = sqlite3_exec(db, sql, NULL, NULL, &e);
			if (rc != SQLITE_OK) {
				snprintf(err, errlen, "%s: %s", sql,
				    e ? e : sqlite3_errstr(rc));
				sqlite3_free(e);
				free(sql);
				rc &= 0xff;
				return (rc == SQLITE_FULL ||
				    rc == SQLITE_IOERR || rc == SQLITE_BUSY ||
				    rc == SQLITE_NOMEM ? -1 : -2);
			}
			free(sql);
			break;
		case SEG_SEQUENCE:
			if ((rc = apply_sequence(db, p, n, err, errlen)) != 0)
				return (rc);
			break;
		case SEG_EPOCH:
			if ((rc = apply_epoch_seg(db, lsn, ts, p, n, err,
			    errlen)) != 0)
				return (rc);
			break;
		default:
			snprintf(err, errlen, "unknown segment kind %d", kind);
			return (-2);
		}
	}
	if (rc == -1) {
		snprintf(err, errlen, "malformed record");
		return (-2);
	}
	return (0);
}

/*
 * Apply <n> records in one transaction.  On success <mt> is the new
 * position.  Returns 0, -1 for an error that may pass (retry later), -2
 * when the records do not follow this database (another history, a
 * conflict, a bad hash): it needs a snapshot.
 */
int
apply_records(sqlite3 *db, const struct record *recs, int n,
    struct meta *mt, char *err, size_t errlen)
{
	const struct record	*r;
	int			 i, rc, applied = 0;

	if ((rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL)) !=
	    SQLITE_OK) {
		snprintf(err, errlen, "BEGIN: %s", sqlite3_errstr(rc));
		return (-1);
	}
	if (db_meta(db, mt) == -1) {
		snprintf(err, errlen, "%s", sqlite3_errmsg(db));
		rc = -1;
		goto fail;
	}
	for (i = 0; i < n; i++) {
		r = &recs[i];
		if (r->lsn <= mt->lsn)
			continue;	/* applied already */
		if (r->lsn != mt->lsn + 1) {
			snprintf(err, errlen, "record %llu does not follow "
			    "LSN %llu", (unsigned long long)r->lsn,
			    (unsigned long long)mt->lsn);
			rc = -2;
			goto fail;
		}
		if (r->epoch < mt->epoch) {
			snprintf(err, errlen, "record %llu of epoch %llu "
			    "follows epoch %llu", (unsigned long long)r->lsn,
			    (unsigned long long)r->epoch,
			    (unsigned long long)mt->epoch);
			rc = -2;
			goto fail;
		}
		if (!record_verify(r, mt->hash)) {
			snprintf(err, errlen, "record %llu: its hash does not "
			    "chain from this database's",
			    (unsigned long long)r->lsn);
			rc = -2;
			goto fail;
		}
		if ((rc = apply_body(db, r->lsn, r->ts, r->body, r->len, err,
		    errlen)) != 0)
			goto fail;
		if (db_log_append(db, r) == -1) {
			snprintf(err, errlen, "log: %s", sqlite3_errmsg(db));
			rc = -1;
			goto fail;
		}
		mt->lsn = r->lsn;
		mt->epoch = r->epoch;
		mt->ts = r->ts;
		memcpy(mt->hash, r->hash, DBREP_HASHLEN);
		applied++;
	}
	if (applied == 0) {
		db_exec(db, "ROLLBACK");
		return (0);
	}
	if ((rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL)) !=
	    SQLITE_OK) {
		snprintf(err, errlen, "COMMIT: %s", sqlite3_errstr(rc));
		rc = -1;
		goto fail;
	}
	return (0);
 fail:
	if (!sqlite3_get_autocommit(db))
		db_exec(db, "ROLLBACK");
	db_meta(db, mt);
	return (rc);
}

/*
 * Start epoch <epoch> led by <node> at the next LSN: a record of its own,
 * so that replicas learn the epoch history from the log.
 */
int
apply_epoch(sqlite3 *db, uint64_t epoch, const char *node, struct meta *mt,
    char *err, size_t errlen)
{
	struct record	rec;
	struct buf	body, seg;
	struct fw	w;
	int		rc;

	buf_init(&body, 4096);
	buf_init(&seg, 4096);
	fw_begin(&w, &seg, 0);
	fw_u64(&w, epoch);
	fw_str(&w, node);
	if (w.err || seg_add(&body, SEG_EPOCH, seg.data + DBREP_HDRLEN,
	    seg.len - DBREP_HDRLEN) == -1) {
		snprintf(err, errlen, "out of memory");
		rc = -1;
		goto done;
	}
	if ((rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL)) !=
	    SQLITE_OK || db_meta(db, mt) == -1) {
		snprintf(err, errlen, "%s", sqlite3_errmsg(db));
		rc = -1;
		goto fail;
	}
	rec.lsn = mt->lsn + 1;
	rec.epoch = epoch;
	rec.ts = now_ms();
	rec.body = (const uint8_t *)body.data;
	rec.len = body.len;
	chain_hash(mt->hash, rec.lsn, rec.epoch, rec.ts, rec.body, rec.len,
	    rec.hash);
	if ((rc = apply_body(db, rec.lsn, rec.ts, rec.body, rec.len, err,
	    errlen)) != 0)
		goto fail;
	mt->lsn = rec.lsn;
	mt->epoch = epoch;
	mt->ts = rec.ts;
	memcpy(mt->hash, rec.hash, DBREP_HASHLEN);
	if (db_log_append(db, &rec) == -1 ||
	    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s", sqlite3_errmsg(db));
		rc = -1;
		goto fail;
	}
	rc = 0;
	goto done;
 fail:
	if (!sqlite3_get_autocommit(db))
		db_exec(db, "ROLLBACK");
	db_meta(db, mt);
 done:
	buf_free(&body);
	buf_free(&seg);
	return (rc);
}
