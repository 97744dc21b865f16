/*
 * test_dbrepd_capture.c: the primary's write path (capture.c) and the
 * replica's apply (apply.c) in one process, on two database files: what
 * the log carries, what it refuses, and that applying it reproduces the
 * primary (the hazards of the session extension included).
 */
#include <sys/types.h>

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "../../dbrepd/dbrepd.h"

struct env {
	char			 dir[64];
	struct dbrepd_conf	 pc, rc;
	sqlite3			*pdb, *rdb;
	struct capture		*cap;
};

static struct env	e;
static struct capture	*cur;		/* run() writes through it, or e.cap */

static void
conf_init(struct dbrepd_conf *c, const char *name)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->data, sizeof(c->data), "%s/%s.db", e.dir, name);
	strlcpy(c->name, name, sizeof(c->name));
	c->busy_timeout = 5000;
	c->max_txn = 1024 * 1024;
	c->max_result = 1024 * 1024;
	c->max_request = 1024 * 1024;
	c->synchronous = 1;
	c->foreign_keys = 1;
}

static void
setup(void)
{
	struct meta	mt;
	char		err[512];

	strlcpy(e.dir, "/tmp/dbrepd-unit-XXXXXX", sizeof(e.dir));
	cr_assert_not_null(mkdtemp(e.dir));
	conf_init(&e.pc, "p");
	conf_init(&e.rc, "r");
	e.pdb = db_open(&e.pc, DB_CREATE | DB_WRITER, err, sizeof(err));
	cr_assert_not_null(e.pdb, "%s", err);
	cr_assert_eq(db_schema(e.pdb, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(apply_epoch(e.pdb, 1, "p", &mt, err, sizeof(err)), 0,
	    "%s", err);
	e.rdb = db_open(&e.rc, DB_CREATE | DB_APPLY, err, sizeof(err));
	cr_assert_not_null(e.rdb, "%s", err);
	cr_assert_eq(db_schema(e.rdb, err, sizeof(err)), 0, "%s", err);
	cr_assert_not_null(e.cap = capture_new(e.pdb, &e.pc));
}

static void
teardown(void)
{
	char	cmd[128];

	capture_free(e.cap);
	db_close(e.pdb);
	db_close(e.rdb);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", e.dir);
	(void)system(cmd);
}

TestSuite(capture, .init = setup, .fini = teardown);

/*
 * Run the statements (NULL-terminated, no parameters) as one request on
 * the primary.  Returns 0 or -1, with <err> filled.
 */
static int
run(struct dbrep_error *err, ...)
{
	struct qstmt	*q;
	struct buf	 req, out;
	struct fw	 w;
	struct fr	 r;
	const char	*sql, *stmts[64];
	uint64_t	 lsn, bytes;
	uint32_t	 n = 0, i, nq;
	va_list		 ap;
	int		 rc;

	va_start(ap, err);
	while ((sql = va_arg(ap, const char *)) != NULL && n < 64)
		stmts[n++] = sql;
	va_end(ap);
	buf_init(&req, 1 << 20);
	buf_init(&out, 1 << 20);
	fw_begin(&w, &req, MSG_QUERY);
	fw_u32(&w, n);
	for (i = 0; i < n; i++) {
		fw_str(&w, stmts[i]);
		fw_u32(&w, 0);
	}
	cr_assert_eq(fw_end(&w), 0);
	memset(err, 0, sizeof(*err));
	fr_init(&r, req.data + DBREP_HDRLEN, req.len - DBREP_HDRLEN);
	cr_assert_not_null(q = capture_parse(&r, &nq, err));
	rc = capture_write(cur != NULL ? cur : e.cap, q, nq, 1, &out, err,
	    &lsn, &bytes);
	free(q);
	buf_free(&req);
	buf_free(&out);
	return (rc);
}

static void
ok(const char *sql)
{
	struct dbrep_error	err;

	cr_assert_eq(run(&err, sql, NULL), 0, "%s: %s", sql, err.msg);
}

/* Apply what the replica lacks; returns apply_records()'s verdict. */
static int
ship(void)
{
	sqlite3_stmt	*st;
	struct record	 recs[256];
	struct meta	 rm, mt;
	char		 err[512];
	int		 n = 0, rc;

	cr_assert_eq(db_meta(e.rdb, &rm), 0);
	cr_assert_eq(sqlite3_prepare_v2(e.pdb, "SELECT lsn, epoch, ts, hash, "
	    "body FROM _dbrep_log WHERE lsn > ?1 ORDER BY lsn", -1, &st,
	    NULL), SQLITE_OK);
	sqlite3_bind_int64(st, 1, rm.lsn);
	while (sqlite3_step(st) == SQLITE_ROW && n < 256) {
		struct record	*r = &recs[n++];
		size_t		 len = sqlite3_column_bytes(st, 4);
		uint8_t		*body = malloc(len + 1);

		r->lsn = sqlite3_column_int64(st, 0);
		r->epoch = sqlite3_column_int64(st, 1);
		r->ts = sqlite3_column_int64(st, 2);
		memcpy(r->hash, sqlite3_column_blob(st, 3), DBREP_HASHLEN);
		memcpy(body, sqlite3_column_blob(st, 4), len);
		r->body = body;
		r->len = len;
	}
	sqlite3_finalize(st);
	rc = apply_records(e.rdb, recs, n, &mt, err, sizeof(err));
	if (rc != 0)
		cr_log_info("apply: %s", err);
	while (n > 0)
		free((void *)recs[--n].body);
	return (rc);
}

/* The rows of <sql> on <db> as text, one line per row. */
static char *
rows(sqlite3 *db, const char *sql)
{
	static char	 out[2][8192];
	static int	 k;
	sqlite3_stmt	*st;
	char		*o = out[k++ & 1];
	size_t		 len = 0;
	int		 i;

	o[0] = '\0';
	cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK,
	    "%s: %s", sql, sqlite3_errmsg(db));
	while (sqlite3_step(st) == SQLITE_ROW) {
		for (i = 0; i < sqlite3_column_count(st); i++)
			len += snprintf(o + len, 8192 - len, "%s%s", i ? "|" :
			    "", sqlite3_column_text(st, i) ?
			    (const char *)sqlite3_column_text(st, i) : "NULL");
		len += snprintf(o + len, 8192 - len, "\n");
	}
	sqlite3_finalize(st);
	return (o);
}

static void
same(const char *sql)
{
	char	*a = strdup(rows(e.pdb, sql)), *b = strdup(rows(e.rdb, sql));

	cr_expect_str_eq(b, a, "%s", sql);
	free(a);
	free(b);
}

static uint64_t
lsn_of(sqlite3 *db)
{
	struct meta	mt;

	cr_assert_eq(db_meta(db, &mt), 0);
	return (mt.lsn);
}

Test(capture, ddl_and_dml_in_one_record)
{
	struct dbrep_error	err;
	uint64_t		before = lsn_of(e.pdb);

	cr_assert_eq(run(&err,
	    "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT)",
	    "INSERT INTO t(a) VALUES('one')",
	    "ALTER TABLE t ADD COLUMN b INT DEFAULT 5",
	    "INSERT INTO t(a, b) VALUES('two', 2)",
	    "UPDATE t SET b = b + 1",
	    "CREATE INDEX t_b ON t(b)",
	    "PRAGMA user_version = 3", NULL), 0, "%s", err.msg);
	cr_expect_eq(lsn_of(e.pdb), before + 1, "one request, one record");
	cr_assert_eq(ship(), 0);
	same("SELECT * FROM t ORDER BY id");
	same("SELECT sql FROM sqlite_schema ORDER BY name");
	same("PRAGMA user_version");
	cr_expect_eq(lsn_of(e.rdb), lsn_of(e.pdb));
	/* rows older than an ADD COLUMN with a default: SQLite 3.40's
	 * session records NULL as their old value of the new column */
	ok("INSERT INTO t(a) VALUES('three')");
	ok("ALTER TABLE t ADD COLUMN c TEXT DEFAULT 'dflt'");
	ok("UPDATE t SET c = 'set' WHERE id = 3");
	ok("DELETE FROM t WHERE id = 1");
	cr_assert_eq(ship(), 0);
	same("SELECT * FROM t ORDER BY id");
}

Test(capture, refusals_commit_nothing)
{
	static const char	*bad[] = {
		"CREATE TABLE x(a, b)",
		"CREATE TABLE x(a TEXT PRIMARY KEY)",
		"CREATE TABLE x AS SELECT 1 AS a",
		"CREATE TEMP TABLE x(a INTEGER PRIMARY KEY)",
		"DELETE FROM _dbrep_meta",
		"PRAGMA synchronous = OFF",
		"COMMIT",
		/* keys equal under the collation but not byte for byte */
		"CREATE TABLE x(a TEXT PRIMARY KEY NOT NULL COLLATE NOCASE)",
		"CREATE TABLE x(a TEXT NOT NULL, b INT NOT NULL, PRIMARY KEY("
		"b, a COLLATE RTRIM)) WITHOUT ROWID",
		/* runs ANALYZE unseen */
		"PRAGMA optimize",
		/* longer than the name kept for the key check */
		"CREATE TABLE x23456789012345678901234567890123456789012345678"
		"90123456789012345678901234567890123456789012345678901234567890"
		"1234567890123456789(a, b)",
	};
	struct dbrep_error	 err;
	uint64_t		 before;
	size_t			 i;

	ok("CREATE TABLE t(id INTEGER PRIMARY KEY)");
	before = lsn_of(e.pdb);
	for (i = 0; i < nitems(bad); i++) {
		cr_expect_eq(run(&err, "INSERT INTO t VALUES(1)", bad[i],
		    NULL), -1, "%s accepted", bad[i]);
		cr_expect_eq(err.code, DBREP_ENOTREPLICABLE, "%s: %d %s",
		    bad[i], err.code, err.msg);
	}
	cr_expect_eq(lsn_of(e.pdb), before);
	cr_expect_str_eq(rows(e.pdb, "SELECT count(*) FROM t"), "0\n");
	cr_expect_str_eq(rows(e.pdb, "SELECT count(*) FROM sqlite_schema "
	    "WHERE name = 'x'"), "0\n");
}

/* REAL keys are one row whatever their spelling (2, 2.0, -0.0, 0.0). */
Test(capture, real_keys)
{
	struct dbrep_error	err;

	ok("CREATE TABLE r(k REAL PRIMARY KEY NOT NULL, v)");
	ok("CREATE TABLE z(k PRIMARY KEY NOT NULL, v)");
	ok("INSERT INTO r VALUES(1.0, 'one')");
	cr_assert_eq(run(&err, "INSERT INTO r VALUES(2.0, 'x')",
	    "DELETE FROM r WHERE k = 2", NULL), 0, "%s", err.msg);
	cr_assert_eq(run(&err, "INSERT INTO r VALUES(3.0, 'x')",
	    "UPDATE r SET v = 'three' WHERE k = 3", NULL), 0, "%s", err.msg);
	ok("INSERT INTO z VALUES(-0.0, 'a')");
	ok("UPDATE z SET k = 0.0");
	cr_assert_eq(ship(), 0);
	same("SELECT k, v FROM r ORDER BY k");
	same("SELECT k, v FROM z ORDER BY k");
	cr_expect_str_eq(rows(e.rdb, "SELECT count(*) FROM r"), "2\n");
}

/*
 * ROLLBACK TO may undo row changes, never DDL: changes recorded before
 * a schema change and the change itself are logged as they run.  The
 * statement is checked each time (never kept prepared).
 */
Test(capture, rollback_to_after_ddl_refused)
{
	struct dbrep_error	err;
	uint64_t		before;

	ok("CREATE TABLE t(k INTEGER PRIMARY KEY, v)");
	cr_assert_eq(run(&err, "SAVEPOINT s", "INSERT INTO t VALUES(1, 1)",
	    "ROLLBACK TO s", "RELEASE s", "INSERT INTO t VALUES(2, 2)", NULL),
	    0, "%s", err.msg);
	before = lsn_of(e.pdb);
	cr_assert_eq(run(&err, "SAVEPOINT s", "INSERT INTO t VALUES(3, 3)",
	    "CREATE INDEX tv ON t(v)", "ROLLBACK TO s", "RELEASE s", NULL),
	    -1);
	cr_expect_eq(err.code, DBREP_ENOTREPLICABLE, "%d %s", err.code,
	    err.msg);
	cr_expect_eq(lsn_of(e.pdb), before);
	cr_assert_eq(ship(), 0);
	same("SELECT * FROM t ORDER BY k");
	same("SELECT name FROM sqlite_schema ORDER BY name");
	cr_expect_str_eq(rows(e.rdb, "SELECT k FROM t"), "2\n");
}

Test(capture, too_large)
{
	struct dbrep_error	err;

	ok("CREATE TABLE t(id INTEGER PRIMARY KEY, b BLOB)");
	cr_expect_eq(run(&err, "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL "
	    "SELECT i + 1 FROM s WHERE i < 400) INSERT INTO t SELECT i, "
	    "zeroblob(4000) FROM s", NULL), -1);
	cr_expect_eq(err.code, DBREP_ETOOBIG, "%s", err.msg);
	cr_expect_str_eq(rows(e.pdb, "SELECT count(*) FROM t"), "0\n");
}

Test(capture, autoincrement_sequence)
{
	ok("CREATE TABLE a(id INTEGER PRIMARY KEY AUTOINCREMENT, v)");
	ok("INSERT INTO a(v) VALUES(1), (2), (3)");
	ok("DELETE FROM a WHERE id = 3");
	{
		struct dbrep_error	err;

		/* insert and delete the top id in one transaction: the
		 * changeset is empty, sqlite_sequence moved */
		cr_assert_eq(run(&err, "INSERT INTO a(v) VALUES(4)",
		    "DELETE FROM a WHERE v = 4", NULL), 0, "%s", err.msg);
	}
	cr_assert_eq(ship(), 0);
	same("SELECT * FROM sqlite_sequence");
	cr_expect_str_eq(rows(e.rdb, "SELECT seq FROM sqlite_sequence"),
	    "4\n");
}

/*
 * Whether sqlite_sequence exists is asked once per schema: a table with
 * AUTOINCREMENT created through another connection (another worker) is
 * seen by this one at its next write.
 */
Test(capture, autoincrement_from_another_connection)
{
	struct dbrep_error	 err;
	struct capture		*other;
	sqlite3			*db;
	char			 msg[512];

	ok("CREATE TABLE p(id INTEGER PRIMARY KEY, v)");
	ok("INSERT INTO p(v) VALUES(1)");	/* no sqlite_sequence yet */
	db = db_open(&e.pc, DB_WRITER, msg, sizeof(msg));
	cr_assert_not_null(db, "%s", msg);
	cr_assert_not_null(other = capture_new(db, &e.pc));
	cur = other;
	ok("CREATE TABLE a(id INTEGER PRIMARY KEY AUTOINCREMENT, v)");
	ok("INSERT INTO a(v) VALUES(1), (2)");
	cur = NULL;
	/* only sqlite_sequence changes: the row comes and goes */
	cr_assert_eq(run(&err, "INSERT INTO a(v) VALUES(3)",
	    "DELETE FROM a WHERE v = 3", NULL), 0, "%s", err.msg);
	cr_assert_eq(ship(), 0);
	cr_expect_str_eq(rows(e.rdb, "SELECT seq FROM sqlite_sequence"),
	    "3\n");
	capture_free(other);
	db_close(db);
}

Test(capture, unique_swap)
{
	struct dbrep_error	err;

	ok("CREATE TABLE u(id INTEGER PRIMARY KEY, k TEXT NOT NULL UNIQUE)");
	ok("INSERT INTO u VALUES(1, 'a'), (2, 'b'), (3, 'c')");
	/* a cycle: 1 a->b, 2 b->c, 3 c->a; no order of the changeset's
	 * updates satisfies UNIQUE at every step */
	cr_assert_eq(run(&err, "UPDATE u SET k = 't1' WHERE id = 1",
	    "UPDATE u SET k = 't2' WHERE id = 2",
	    "UPDATE u SET k = 'a' WHERE id = 3",
	    "UPDATE u SET k = 'b' WHERE id = 1",
	    "UPDATE u SET k = 'c' WHERE id = 2", NULL), 0, "%s", err.msg);
	cr_assert_eq(ship(), 0);
	same("SELECT * FROM u ORDER BY id");
	cr_expect_str_eq(rows(e.rdb, "SELECT k FROM u ORDER BY id"),
	    "b\nc\na\n");
}

Test(capture, triggers_and_cascades_apply_once)
{
	ok("CREATE TABLE p(id INTEGER PRIMARY KEY)");
	ok("CREATE TABLE c(id INTEGER PRIMARY KEY, p INT REFERENCES p(id) ON "
	    "DELETE CASCADE)");
	ok("CREATE TABLE audit(id INTEGER PRIMARY KEY, what TEXT)");
	ok("CREATE TRIGGER c_del AFTER DELETE ON c BEGIN INSERT INTO "
	    "audit(what) VALUES('c ' || old.id); END");
	ok("INSERT INTO p VALUES(1), (2)");
	ok("INSERT INTO c VALUES(10, 1), (11, 1), (12, 2)");
	ok("DELETE FROM p WHERE id = 1");
	cr_assert_eq(ship(), 0);
	same("SELECT * FROM c ORDER BY id");
	same("SELECT * FROM audit ORDER BY id");
	cr_expect_str_eq(rows(e.rdb, "SELECT count(*) FROM audit"), "2\n");
}

Test(capture, diverged_and_broken_records)
{
	struct meta	mt;
	struct record	rec;
	char		err[256];

	ok("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)");
	ok("INSERT INTO t VALUES(1, 'a')");
	cr_assert_eq(ship(), 0);
	/* the replica's row changed behind dbrepd's back: the next update
	 * is a conflict, reported as a divergence, nothing applied */
	cr_assert_eq(db_exec(e.rdb, "UPDATE t SET v = 'z'"), 0);
	ok("UPDATE t SET v = 'b'");
	cr_expect_eq(ship(), -2);
	cr_expect_str_eq(rows(e.rdb, "SELECT v FROM t"), "z\n");
	/* a record that does not chain is refused */
	cr_assert_eq(db_meta(e.rdb, &mt), 0);
	memset(&rec, 0, sizeof(rec));
	rec.lsn = mt.lsn + 1;
	rec.epoch = mt.epoch;
	rec.body = (const uint8_t *)"";
	cr_expect_eq(apply_records(e.rdb, &rec, 1, &mt, err, sizeof(err)),
	    -2);
	/* a gap too */
	chain_hash(mt.hash, mt.lsn + 2, mt.epoch, 0, "", 0, rec.hash);
	rec.lsn = mt.lsn + 2;
	cr_expect_eq(apply_records(e.rdb, &rec, 1, &mt, err, sizeof(err)),
	    -2);
	/* and an epoch going back */
	rec.lsn = mt.lsn + 1;
	rec.epoch = mt.epoch - 1;
	chain_hash(mt.hash, rec.lsn, rec.epoch, 0, "", 0, rec.hash);
	cr_expect_eq(apply_records(e.rdb, &rec, 1, &mt, err, sizeof(err)),
	    -2);
}

Test(capture, epochs_and_roles)
{
	struct nodestate	ns;
	struct meta		mt;
	uint64_t		epoch, start;
	char			err[256], node[64];

	memset(&ns, 0, sizeof(ns));
	e.pc.role = ROLE_PRIMARY;
	cr_expect_eq(db_role(e.pdb, &e.pc, &ns, &epoch), ROLE_PRIMARY);
	cr_expect_eq(epoch, 1);
	ns.fenced = 2;
	cr_expect_eq(db_role(e.pdb, &e.pc, &ns, &epoch), ROLE_REPLICA);
	cr_expect_eq(epoch, 2);
	cr_assert_eq(ship(), 0);
	/* the replica learnt epoch 1 from the log; promote it */
	ns.fenced = 0;
	e.rc.role = ROLE_REPLICA;
	cr_expect_eq(db_role(e.rdb, &e.rc, &ns, &epoch), ROLE_REPLICA);
	cr_assert_eq(apply_epoch(e.rdb, 2, "r", &mt, err, sizeof(err)), 0);
	cr_expect_eq(db_role(e.rdb, &e.rc, &ns, &epoch), ROLE_PRIMARY);
	cr_expect_eq(epoch, 2);
	cr_assert_eq(db_latest_epoch(e.rdb, &epoch, &start, node,
	    sizeof(node)), 0);
	cr_expect_eq(start, mt.lsn);
	cr_expect_str_eq(node, "r");
	cr_assert_eq(db_epoch_start(e.rdb, 1, &start), 0);
	cr_expect_eq(start, mt.lsn);
}
