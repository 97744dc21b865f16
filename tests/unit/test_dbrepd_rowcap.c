/*
 * test_dbrepd_rowcap.c: rowcap.c against the session extension it
 * replaces.  Two databases get the same random transactions; one is
 * recorded by an sqlite3session, the other by rowcap; their changesets
 * must hold the same changes, byte for byte once put in one order.
 */
#include <sys/types.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "../../dbrepd/dbrepd.h"

static const char *schema =
    "PRAGMA foreign_keys = ON;"
    "CREATE TABLE i(k INTEGER PRIMARY KEY, a, b REAL, c BLOB);"
    "CREATE TABLE s(name TEXT PRIMARY KEY NOT NULL, n INTEGER, "
    "    note TEXT UNIQUE);"
    "CREATE TABLE w(x TEXT NOT NULL, y INTEGER NOT NULL, z, "
    "    PRIMARY KEY(y, x)) WITHOUT ROWID;"
    "CREATE TABLE parent(id INTEGER PRIMARY KEY, v);"
    "CREATE TABLE child(id INTEGER PRIMARY KEY, pid REFERENCES "
    "    parent(id) ON DELETE CASCADE ON UPDATE CASCADE, v);"
    "CREATE TABLE audit(id INTEGER PRIMARY KEY, what TEXT);"
    "CREATE TRIGGER ti AFTER UPDATE ON i BEGIN "
    "    INSERT INTO audit(what) VALUES('i ' || new.k); END;"
    "CREATE TABLE nokey(a, b);"
    "CREATE TABLE auto(id INTEGER PRIMARY KEY AUTOINCREMENT, v);"
    "CREATE INDEX sx ON s(n); INSERT INTO s VALUES('a', 1, 'a');"
    "ANALYZE;";

static void
exec(sqlite3 *db, const char *sql)
{
	char	*e = NULL;

	cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, &e), SQLITE_OK,
	    "%s: %s", sql, e);
}

static unsigned long	seed;

static unsigned
rnd(unsigned n)
{
	seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
	return ((seed >> 33) % n);
}

/* a random literal: NULL, integer, real, text or blob */
static void
literal(char *out, size_t len)
{
	switch (rnd(6)) {
	case 0:
		snprintf(out, len, "NULL");
		break;
	case 1:
		snprintf(out, len, "%d", (int)rnd(20) - 5);
		break;
	case 2:
		snprintf(out, len, "%d.%d", (int)rnd(20), (int)rnd(10));
		break;
	case 3:
		snprintf(out, len, "'t%u'", rnd(12));
		break;
	case 4:
		snprintf(out, len, "x'%02x%02x'", rnd(4), rnd(256));
		break;
	default:
		snprintf(out, len, "%u", rnd(12));
		break;
	}
}

/* a random statement on the tables of <schema> */
static void
statement(char *sql, size_t len)
{
	char	a[32], b[32], c[32];

	literal(a, sizeof(a));
	literal(b, sizeof(b));
	literal(c, sizeof(c));
	switch (rnd(17)) {
	case 0:
		snprintf(sql, len, "INSERT OR REPLACE INTO i VALUES(%u, %s, "
		    "%s, %s)", rnd(12), a, b, c);
		break;
	case 1:
		snprintf(sql, len, "UPDATE i SET a = %s, b = %s WHERE k = %u",
		    a, b, rnd(12));
		break;
	case 2:
		snprintf(sql, len, "UPDATE i SET k = k + 20 WHERE k = %u",
		    rnd(12));
		break;
	case 3:
		snprintf(sql, len, "DELETE FROM i WHERE k %% 5 = %u", rnd(5));
		break;
	case 4:
		snprintf(sql, len, "INSERT OR IGNORE INTO s VALUES('n%u', %s, "
		    "'u%u')", rnd(10), a, rnd(6));
		break;
	case 5:
		snprintf(sql, len, "UPDATE OR IGNORE s SET name = 'n%u', "
		    "n = %s WHERE name = 'n%u'", rnd(10), a, rnd(10));
		break;
	case 6:
		snprintf(sql, len, "INSERT OR REPLACE INTO w VALUES('x%u', %u, "
		    "%s)", rnd(4), rnd(4), a);
		break;
	case 7:
		snprintf(sql, len, "UPDATE OR REPLACE w SET x = 'x%u', z = %s "
		    "WHERE y = %u", rnd(4), a, rnd(4));
		break;
	case 8:
		snprintf(sql, len, "DELETE FROM w WHERE x = 'x%u'", rnd(4));
		break;
	case 9:
		snprintf(sql, len, "INSERT OR REPLACE INTO parent VALUES(%u, "
		    "%s); INSERT OR REPLACE INTO child VALUES(%u, %u, %s)",
		    rnd(5), a, rnd(8), rnd(5), b);
		break;
	case 10:
		snprintf(sql, len, "DELETE FROM parent WHERE id = %u", rnd(5));
		break;
	case 11:
		snprintf(sql, len, "UPDATE OR IGNORE parent SET id = %u WHERE "
		    "id = %u", rnd(8), rnd(5));
		break;
	case 12:
		snprintf(sql, len, "INSERT INTO nokey VALUES(%s, %s); INSERT "
		    "INTO auto(v) VALUES(%s)", a, b, c);
		break;
	case 13:
		snprintf(sql, len, "UPDATE i SET c = %s WHERE k > %u", c,
		    rnd(12));
		break;
	case 15:
		/* sqlite_stat1: its key is (tbl, idx), idx may be NULL */
		if (rnd(3) != 0)
			snprintf(sql, len, "INSERT INTO sqlite_stat1 VALUES("
			    "'%s', %s, '%u 1')", rnd(2) ? "i" : "s", rnd(2) ?
			    "NULL" : "'sx'", rnd(50));
		else
			snprintf(sql, len, "DELETE FROM sqlite_stat1 WHERE "
			    "tbl = '%s'", rnd(2) ? "i" : "s");
		break;
	case 14:
		/* a change undone: nothing, or only what stays */
		snprintf(sql, len, "SAVEPOINT sp; INSERT OR REPLACE INTO i "
		    "VALUES(%u, %s, 1.5, NULL); ROLLBACK TO sp; RELEASE sp",
		    rnd(12), a);
		break;
	default:
		snprintf(sql, len, "INSERT OR REPLACE INTO i VALUES(%u, %s, "
		    "%s, %s); DELETE FROM i WHERE k = %u", rnd(12), a, b, c,
		    rnd(12));
		break;
	}
}

static int
cmp_str(const void *a, const void *b)
{
	return (strcmp(*(char *const *)a, *(char *const *)b));
}

static void
value_str(struct buf *b, sqlite3_value *v)
{
	const unsigned char	*p;
	int			 i, n;

	if (v == NULL) {
		buf_puts(b, " -");
		return;
	}
	switch (sqlite3_value_type(v)) {
	case SQLITE_INTEGER:
		buf_printf(b, " i%lld", (long long)sqlite3_value_int64(v));
		break;
	case SQLITE_FLOAT:
		buf_printf(b, " r%.17g", sqlite3_value_double(v));
		break;
	case SQLITE_TEXT:
		buf_printf(b, " t'%s'", sqlite3_value_text(v));
		break;
	case SQLITE_BLOB:
		p = sqlite3_value_blob(v);
		n = sqlite3_value_bytes(v);
		buf_puts(b, " x");
		for (i = 0; i < n; i++)
			buf_printf(b, "%02x", p[i]);
		break;
	default:
		buf_puts(b, " null");
		break;
	}
}

/* The changes of a changeset, one line each, sorted; their count. */
static size_t
lines(const void *cs, int n, char ***out)
{
	sqlite3_changeset_iter	*it;
	const char		*tab;
	unsigned char		*pk;
	sqlite3_value		*v;
	struct buf		 b;
	char			**l = NULL;
	size_t			 nl = 0;
	int			 ncol, op, ind, i, npk;

	cr_assert_eq(sqlite3changeset_start(&it, n, (void *)cs), SQLITE_OK);
	while (sqlite3changeset_next(it) == SQLITE_ROW) {
		buf_init(&b, 1 << 20);
		sqlite3changeset_op(it, &tab, &ncol, &op, &ind);
		sqlite3changeset_pk(it, &pk, &npk);
		buf_printf(&b, "%s op%d ind%d pk", tab, op, ind);
		for (i = 0; i < npk; i++)
			buf_printf(&b, "%d", pk[i]);
		buf_puts(&b, " old");
		for (i = 0; op != SQLITE_INSERT && i < ncol; i++) {
			v = NULL;
			sqlite3changeset_old(it, i, &v);
			value_str(&b, v);
		}
		buf_puts(&b, " new");
		for (i = 0; op != SQLITE_DELETE && i < ncol; i++) {
			v = NULL;
			sqlite3changeset_new(it, i, &v);
			value_str(&b, v);
		}
		l = reallocarray(l, nl + 1, sizeof(*l));
		l[nl++] = strdup(buf_cstr(&b));
		buf_free(&b);
	}
	cr_assert_eq(sqlite3changeset_finalize(it), SQLITE_OK);
	qsort(l, nl, sizeof(*l), cmp_str);
	*out = l;
	return (nl);
}

static sqlite3 *
open_mem(void)
{
	sqlite3	*db;

	cr_assert_eq(sqlite3_open(":memory:", &db), SQLITE_OK);
	exec(db, schema);
	return (db);
}

/*
 * Run <sql> (statements separated by NUL, ended by an empty one) as
 * one transaction on <a>, recorded by a session, and on <b>, recorded
 * by <r>; the changesets must hold the same changes.  Returns how many.
 */
static size_t
compare(sqlite3 *a, sqlite3 *b, struct rowcap *r, const char *sql,
    const char *what)
{
	sqlite3_session	*s;
	struct buf	 cs;
	char		**la, **lb;
	void		*p;
	size_t		 na, nb, i;
	int		 n, ra, rb;

	buf_init(&cs, 1 << 24);
	exec(a, "BEGIN");
	exec(b, "BEGIN");
	cr_assert_eq(sqlite3session_create(a, "main", &s), SQLITE_OK);
	cr_assert_eq(sqlite3session_attach(s, NULL), SQLITE_OK);
	cr_assert_eq(rowcap_begin(r), SQLITE_OK);
	for (; *sql != '\0'; sql += strlen(sql) + 1) {
		ra = sqlite3_exec(a, sql, NULL, NULL, NULL);
		rb = sqlite3_exec(b, sql, NULL, NULL, NULL);
		cr_assert_eq(ra, rb, "%s: %d %d", sql, ra, rb);
	}
	cr_assert_eq(sqlite3session_changeset(s, &n, &p), SQLITE_OK);
	cr_assert_eq(rowcap_changeset(r, &cs), SQLITE_OK);
	rowcap_end(r);
	na = n > 0 ? lines(p, n, &la) : 0;
	nb = buf_used(&cs) > 0 ? lines(buf_head(&cs), buf_used(&cs), &lb) :
	    0;
	for (i = 0; i < na && i < nb; i++)
		cr_assert_str_eq(la[i], lb[i], "%s:\n%s\n%s (the session)",
		    what, lb[i], la[i]);
	cr_assert_eq(na, nb, "%s: %zu changes, the session %zu", what, nb,
	    na);
	cr_assert_eq(buf_used(&cs), (size_t)n, "%s: %zu bytes, the session "
	    "%d", what, buf_used(&cs), n);
	for (i = 0; i < na; i++) {
		free(la[i]);
		free(lb[i]);
	}
	if (na > 0)
		free(la);
	if (nb > 0)
		free(lb);
	sqlite3_free(p);
	sqlite3session_delete(s);
	exec(a, "COMMIT");
	exec(b, "COMMIT");
	buf_free(&cs);
	return (na);
}

Test(rowcap, same_changes_as_the_session_extension)
{
	sqlite3		*a = open_mem(), *b = open_mem();
	struct rowcap	*r;
	char		 sql[4096], what[32];
	size_t		 total = 0, off;
	int		 round, k;

	seed = 42;
	cr_assert_not_null(r = rowcap_new(b));
	for (round = 0; round < 400; round++) {
		if (round == 200) {
			/* the tables described again after a schema change */
			exec(a, "ALTER TABLE i ADD COLUMN d DEFAULT 7");
			exec(b, "ALTER TABLE i ADD COLUMN d DEFAULT 7");
			exec(a, "DROP TRIGGER ti");
			exec(b, "DROP TRIGGER ti");
		}
		for (off = 0, k = 1 + rnd(6); k > 0; k--) {
			statement(sql + off, sizeof(sql) - off - 1);
			off += strlen(sql + off) + 1;
		}
		sql[off] = '\0';
		snprintf(what, sizeof(what), "round %d", round);
		total += compare(a, b, r, sql, what);
	}
	cr_assert_gt(total, 400, "only %zu changes compared", total);
	rowcap_free(r);
	sqlite3_close(a);
	sqlite3_close(b);
}

/* The hazard zoo of test_dbrepd_repl.py, a transaction a line. */
Test(rowcap, hazard_zoo)
{
	static const char	*zoo[] = {
		"CREATE TABLE acct(id INTEGER PRIMARY KEY, bal INT NOT NULL)",
		"CREATE TABLE audit(id INTEGER PRIMARY KEY AUTOINCREMENT, "
		"acct INT, delta INT, at TEXT DEFAULT 'now')",
		"CREATE TRIGGER acct_upd AFTER UPDATE ON acct BEGIN "
		"INSERT INTO audit(acct, delta) VALUES(new.id, "
		"new.bal - old.bal); END",
		"CREATE TABLE chain(id INTEGER PRIMARY KEY, n INT)",
		"CREATE TRIGGER chain_ins AFTER INSERT ON chain WHEN new.n > 0 "
		"BEGIN INSERT INTO chain(n) VALUES(new.n - 1); END",
		"CREATE TABLE parent(id INTEGER PRIMARY KEY, name TEXT)",
		"CREATE TABLE child(id INTEGER PRIMARY KEY, parent INT "
		"REFERENCES parent(id) ON DELETE CASCADE ON UPDATE CASCADE, "
		"x TEXT)",
		"CREATE TABLE u(id INTEGER PRIMARY KEY, k TEXT UNIQUE NOT NULL)",
		"CREATE TABLE docs(id INTEGER PRIMARY KEY, body TEXT)",
		"CREATE VIRTUAL TABLE fts USING fts5(body, content='docs', "
		"content_rowid='id')",
		"CREATE TRIGGER docs_ai AFTER INSERT ON docs BEGIN "
		"INSERT INTO fts(rowid, body) VALUES(new.id, new.body); END",
		"CREATE TRIGGER docs_ad AFTER DELETE ON docs BEGIN "
		"INSERT INTO fts(fts, rowid, body) VALUES('delete', old.id, "
		"old.body); END",
		"CREATE VIRTUAL TABLE plain USING fts5(a, b)",
		"PRAGMA recursive_triggers = ON; PRAGMA foreign_keys = ON",
		NULL
	}, *work[] = {
		"INSERT INTO acct VALUES(1, 100), (2, 100)",
		"UPDATE acct SET bal = bal - 10 WHERE id = 1",
		"INSERT INTO chain(n) VALUES(5)",
		"INSERT INTO parent VALUES(1, 'p1'), (2, 'p2')",
		"INSERT INTO child VALUES(1, 1, 'a'), (2, 1, 'b'), (3, 2, 'c')",
		"UPDATE parent SET id = 10 WHERE id = 2",
		"DELETE FROM parent WHERE id = 1",
		"INSERT INTO audit(acct, delta) VALUES(0, 0); DELETE FROM "
		"audit WHERE id = (SELECT max(id) FROM audit)",
		"INSERT INTO u VALUES(1, 'a'), (2, 'b'), (3, 'c')",
		"UPDATE u SET k = 'tmp' WHERE id = 1; UPDATE u SET k = 'a' "
		"WHERE id = 2; UPDATE u SET k = 'b' WHERE id = 1",
		"INSERT INTO docs(body) VALUES('document 1 about cats'), "
		"('document 2 about dogs'), ('document 3 about cats'), "
		"('document 4 about dogs'), ('document 5 about cats')",
		"DELETE FROM docs WHERE id IN (3, 4)",
		"INSERT INTO plain VALUES('hello world', 'x')",
		NULL
	};
	sqlite3		*a, *b;
	struct rowcap	*r;
	char		 sql[1024];
	size_t		 total = 0;
	int		 i;

	cr_assert_eq(sqlite3_open(":memory:", &a), SQLITE_OK);
	cr_assert_eq(sqlite3_open(":memory:", &b), SQLITE_OK);
	for (i = 0; zoo[i] != NULL; i++) {
		exec(a, zoo[i]);
		exec(b, zoo[i]);
	}
	cr_assert_not_null(r = rowcap_new(b));
	for (i = 0; work[i] != NULL; i++) {
		snprintf(sql, sizeof(sql) - 1, "%s", work[i]);
		sql[strlen(sql) + 1] = '\0';
		total += compare(a, b, r, sql, work[i]);
	}
	cr_assert_gt(total, 40, "only %zu changes compared", total);
	rowcap_free(r);
	sqlite3_close(a);
	sqlite3_close(b);
}

/* A database in memory with <setup> run, recorded by *<r>. */
static sqlite3 *
solo(const char *setup, struct rowcap **r)
{
	sqlite3	*db;

	cr_assert_eq(sqlite3_open(":memory:", &db), SQLITE_OK);
	exec(db, setup);
	cr_assert_not_null(*r = rowcap_new(db));
	return (db);
}

static void
solo_end(sqlite3 *db, struct rowcap *r)
{
	rowcap_free(r);
	sqlite3_close(db);
}

/*
 * <sql> as one recorded transaction, its changeset appended to <cs>:
 * rowcap_changeset()'s code; what rowcap held before it in *<mem>.
 */
static int
recorded(sqlite3 *db, struct rowcap *r, const char *sql, struct buf *cs,
    size_t *mem)
{
	int	rc;

	exec(db, "BEGIN");
	cr_assert_eq(rowcap_begin(r), SQLITE_OK);
	exec(db, sql);
	if (mem != NULL)
		*mem = rowcap_memory(r);
	rc = rowcap_changeset(r, cs);
	rowcap_end(r);
	exec(db, rc == SQLITE_OK ? "COMMIT" : "ROLLBACK");
	return (rc);
}

/* What the session extension refuses, rowcap refuses too. */
Test(rowcap, generated_columns_fail_as_with_the_session)
{
	struct rowcap	*r;
	sqlite3		*db = solo("CREATE TABLE g(a INTEGER PRIMARY KEY, b, "
			    "c AS (b || 'x'))", &r);
	struct buf	 cs;

	buf_init(&cs, 1 << 20);
	cr_assert_eq(recorded(db, r, "INSERT INTO g(a, b) VALUES(1, 'q')",
	    &cs, NULL), SQLITE_SCHEMA);
	buf_free(&cs);
	solo_end(db, r);
}

/* A changeset larger than its buffer's limit: SQLITE_TOOBIG. */
Test(rowcap, too_big)
{
	struct rowcap	*r;
	sqlite3		*db = solo("CREATE TABLE t(k INTEGER PRIMARY KEY, v)",
			    &r);
	struct buf	 cs;

	buf_init(&cs, 1000);
	cr_assert_eq(recorded(db, r, "INSERT INTO t VALUES(1, "
	    "zeroblob(2000))", &cs, NULL), SQLITE_TOOBIG);
	buf_free(&cs);
	solo_end(db, r);
}

/* A big transaction's memory is given back: the next ones stay small. */
Test(rowcap, memory_given_back)
{
	struct rowcap	*r;
	sqlite3		*db = solo("CREATE TABLE t(k INTEGER PRIMARY KEY, v)",
			    &r);
	struct buf	 cs;
	size_t		 mem;

	buf_init(&cs, 1 << 26);
	cr_assert_eq(recorded(db, r, "WITH RECURSIVE n(i) AS (SELECT 1 UNION "
	    "ALL SELECT i + 1 FROM n WHERE i < 200000) INSERT INTO t SELECT "
	    "i, 'v' FROM n", &cs, &mem), SQLITE_OK);
	cr_assert_gt(mem, 4 * 1024 * 1024);
	cr_assert_gt(buf_used(&cs), 200000 * 10);
	buf_reset(&cs);
	cr_assert_eq(recorded(db, r, "INSERT INTO t VALUES(0, 'small')", &cs,
	    &mem), SQLITE_OK);
	cr_assert_lt(mem, 64 * 1024, "%zu bytes kept", mem);
	cr_assert_gt(buf_used(&cs), 0);
	buf_free(&cs);
	solo_end(db, r);
}

/*
 * A REAL key is one row whatever its spelling: SQLite hands it over as
 * an INTEGER on INSERT and a REAL later, and -0.0 equals 0.0.  Here the
 * session extension records a DELETE of a row that never was (which
 * halts a replica), and rowcap recorded an INSERT of a row that is.
 */
Test(rowcap, real_keys_are_one_row)
{
	static const char	*cases[][2] = {
		{ "CREATE TABLE z(k PRIMARY KEY NOT NULL, v); "
		  "INSERT INTO z VALUES(-0.0, 'a')", "UPDATE z SET k = 0.0" },
		{ "CREATE TABLE r(k REAL PRIMARY KEY NOT NULL, v)",
		  "INSERT INTO r VALUES(2.0, 'x'); DELETE FROM r WHERE k = 2" },
	};
	struct rowcap	*r;
	sqlite3		*db;
	struct buf	 cs;
	size_t		 i;

	for (i = 0; i < nitems(cases); i++) {
		db = solo(cases[i][0], &r);
		buf_init(&cs, 1 << 20);
		cr_assert_eq(recorded(db, r, cases[i][1], &cs, NULL),
		    SQLITE_OK);
		cr_expect_eq(buf_used(&cs), 0, "%s: %zu bytes", cases[i][1],
		    buf_used(&cs));
		buf_free(&cs);
		solo_end(db, r);
	}
}
