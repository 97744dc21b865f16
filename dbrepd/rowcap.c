/*
 * rowcap.c: the row changes of a transaction as an SQLite changeset,
 * from SQLite's pre-update hook, without the session extension.
 *
 * Why not sqlite3session: a session describes each table it meets with
 * a PRAGMA, and writing its changeset compiles a SELECT per table.  A
 * session lives for one transaction, so a one-row commit compiled two
 * statements: two thirds of the primary's CPU per commit.  This module
 * follows the session extension's rules (SQLite 3.40's sqlite3session.c)
 * and writes the same bytes, but keeps the descriptions of the tables
 * and their statements until the schema changes (the schema cookie).
 * The unit test test_dbrepd_rowcap.c compares both on random work.
 *
 * The rules:
 *	a table without a PRIMARY KEY is ignored, and so is a row with a
 *	    NULL in its key (dbrepd refuses both at CREATE TABLE)
 *	the first change of a row keeps its old values (UPDATE, DELETE)
 *	    or its key (INSERT); later changes of the row only clear the
 *	    "indirect" flag (set when a trigger made the first one)
 *	an UPDATE is also an INSERT of its new key: an UPDATE that
 *	    changes the key ends as a DELETE and an INSERT
 *	when the changeset is made, each row is read again by its key:
 *	    first inserted and there now, an INSERT of what is there;
 *	    there at first and now, an UPDATE of the columns that differ
 *	    (none: nothing); there at first and gone, a DELETE
 *	sqlite_stat1 has the key (tbl, idx), a NULL idx as an empty blob
 *	a table whose column count is not the hook's (generated columns)
 *	    fails the transaction with SQLITE_SCHEMA
 * Tables come in the order of their first change, rows too.
 *
 * The changeset format (SQLite's):
 *	per table: 'T', varint column count, a byte per column (its place
 *	    in the PRIMARY KEY, 0), the table's name and a NUL
 *	per row: the operation (18 INSERT, 9 DELETE, 23 UPDATE), the
 *	    indirect flag, then values: INSERT the new row, DELETE the old
 *	    row, UPDATE the old row then the new, where a column neither
 *	    changed nor in the key is "undefined" in the old row, and a
 *	    column not changed is undefined in the new
 *	a value: a type byte, 0 undefined, 1 integer (8 bytes big-endian),
 *	    2 real (its 8 bytes big-endian), 3 text and 4 blob (varint
 *	    length, bytes), 5 NULL
 */
#include <sys/types.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dbrepd.h"

#define RC_INSERT	18	/* SQLITE_INSERT, SQLITE_DELETE, SQLITE_UPDATE */
#define RC_DELETE	9
#define RC_UPDATE	23
#define RC_KEEP		(1024 * 1024)	/* memory kept between transactions */

/* A table, as described when first changed under the current schema. */
struct rtab {
	char		*name;
	int		 ncol;
	uint8_t		*pk;		/* per column: place in the key, 0 */
	int		 keyed;		/* has a PRIMARY KEY */
	int		 stat1;		/* sqlite_stat1 */
	char		*sel;		/* the current row by its key */
	sqlite3_stmt	*st;
	int		 used;		/* changed in this transaction */
	uint32_t	 first, last;	/* its rows' changes */
};

/* The first change of a row in this transaction. */
struct rchange {
	uint32_t	 tab;
	uint8_t		 op;
	uint8_t		 indirect;
	size_t		 rec, reclen;	/* its values, in the arena */
	size_t		 key, keylen;	/* its key's values, in the arena */
	uint32_t	 hash;
	uint32_t	 next;		/* in its hash chain, 0: none */
	uint32_t	 tnext;		/* its table's next, 0: none */
};

struct rowcap {
	sqlite3		*db;
	int		 active;
	int		 rc;		/* first error of the transaction */
	int		 schema;	/* cookie the tables were described at */
	sqlite3_stmt	*cookie, *info, *sp, *release;
	struct rtab	*tab;
	size_t		 ntab, tabcap, last;	/* last: the last one found */
	uint32_t	*order;		/* tables by first change */
	size_t		 norder;
	struct rchange	*ch;		/* [0] unused: 0 ends a chain */
	size_t		 nch, chcap;
	uint32_t	*bucket;
	size_t		 nbucket;
	struct buf	 arena;		/* records and keys of the rows */
};

static void	hook(void *, sqlite3 *, int, const char *, const char *,
		    sqlite3_int64, sqlite3_int64);

struct rowcap *
rowcap_new(sqlite3 *db)
{
	struct rowcap	*r;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return (NULL);
	r->db = db;
	r->schema = -1;
	buf_init(&r->arena, SIZE_MAX);
	sqlite3_preupdate_hook(db, hook, r);
	return (r);
}

static void
forget_tables(struct rowcap *r)
{
	size_t	i;

	for (i = 0; i < r->ntab; i++) {
		free(r->tab[i].name);
		free(r->tab[i].pk);
		free(r->tab[i].sel);
		sqlite3_finalize(r->tab[i].st);
	}
	r->ntab = 0;
	r->norder = 0;
}

void
rowcap_free(struct rowcap *r)
{
	if (r == NULL)
		return;
	sqlite3_preupdate_hook(r->db, NULL, NULL);
	forget_tables(r);
	sqlite3_finalize(r->cookie);
	sqlite3_finalize(r->info);
	sqlite3_finalize(r->sp);
	sqlite3_finalize(r->release);
	free(r->tab);
	free(r->order);
	free(r->ch);
	free(r->bucket);
	buf_free(&r->arena);
	free(r);
}

static void
clear(struct rowcap *r)
{
	size_t	i;

	for (i = 0; i < r->norder; i++)
		r->tab[r->order[i]].used = 0;
	r->norder = 0;
	r->nch = 1;
	buf_reset(&r->arena);
	r->rc = SQLITE_OK;
	/* what a big transaction grew goes back; small ones keep theirs */
	if (r->arena.cap > RC_KEEP) {
		buf_free(&r->arena);
		buf_init(&r->arena, SIZE_MAX);
	}
	if (r->chcap * sizeof(*r->ch) > RC_KEEP) {
		free(r->ch);
		r->ch = NULL;
		r->chcap = 0;
	}
	if (r->nbucket * sizeof(*r->bucket) > RC_KEEP) {
		free(r->bucket);
		r->bucket = NULL;
		r->nbucket = 0;
	}
	if (r->bucket != NULL)
		memset(r->bucket, 0, r->nbucket * sizeof(*r->bucket));
}

static int
prep(struct rowcap *r, sqlite3_stmt **st, const char *sql)
{
	if (*st != NULL)
		return (SQLITE_OK);
	return (sqlite3_prepare_v3(r->db, sql, -1, SQLITE_PREPARE_PERSISTENT,
	    st, NULL));
}

/* Prepare if need be, step once, reset. */
static int
run(struct rowcap *r, sqlite3_stmt **st, const char *sql)
{
	int	rc;

	if ((rc = prep(r, st, sql)) != SQLITE_OK)
		return (rc);
	rc = sqlite3_step(*st);
	sqlite3_reset(*st);
	return (rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc);
}

/*
 * Start recording (inside the transaction): the tables are described
 * again if the schema changed since.
 */
int
rowcap_begin(struct rowcap *r)
{
	int	rc, cookie;

	clear(r);
	if ((rc = prep(r, &r->cookie, "PRAGMA main.schema_version")) !=
	    SQLITE_OK)
		return (rc);
	rc = sqlite3_step(r->cookie);
	cookie = sqlite3_column_int(r->cookie, 0);
	sqlite3_reset(r->cookie);
	if (rc != SQLITE_ROW)
		return (sqlite3_errcode(r->db));
	if (cookie != r->schema) {
		forget_tables(r);
		r->schema = cookie;
	}
	r->active = 1;
	return (SQLITE_OK);
}

/* The schema cookie read by the last rowcap_begin(). */
int
rowcap_schema(const struct rowcap *r)
{
	return (r->schema);
}

/* Stop recording; what was recorded is dropped. */
void
rowcap_end(struct rowcap *r)
{
	r->active = 0;
	clear(r);
}

static uint8_t *
at(struct rowcap *r, size_t off)
{
	return ((uint8_t *)r->arena.data + off);
}

size_t
rowcap_memory(const struct rowcap *r)
{
	return (r->arena.len + r->nch * sizeof(struct rchange) +
	    r->nbucket * sizeof(uint32_t));
}

/* SQLite's varint, for lengths (below 2^31): 7 bits a byte, high first */
static size_t
varint(uint8_t *p, uint64_t v)
{
	uint8_t	tmp[10];
	size_t	n = 0, i;

	tmp[n++] = v & 0x7f;
	while ((v >>= 7) != 0)
		tmp[n++] = (v & 0x7f) | 0x80;
	for (i = 0; i < n; i++)
		p[i] = tmp[n - 1 - i];
	return (n);
}

static size_t
get_varint(const uint8_t *p, const uint8_t *end, uint64_t *v)
{
	size_t	n = 0;

	*v = 0;
	while (p + n < end && n < 9) {
		*v = (*v << 7) | (p[n] & 0x7f);
		if (!(p[n++] & 0x80))
			break;
	}
	return (n);
}

/* One value in changeset form; <v> NULL: undefined. */
static int
put_value(struct buf *b, sqlite3_value *v)
{
	uint8_t		h[16];
	const void	*p;
	double		d;
	uint64_t	u;
	int		n, t;

	if (v == NULL)
		return (buf_putc(b, 0));
	switch ((t = sqlite3_value_type(v))) {
	case SQLITE_INTEGER:
		h[0] = 1;
		put_be64(h + 1, (uint64_t)sqlite3_value_int64(v));
		return (buf_append(b, h, 9));
	case SQLITE_FLOAT:
		h[0] = 2;
		d = sqlite3_value_double(v);
		memcpy(&u, &d, 8);
		put_be64(h + 1, u);
		return (buf_append(b, h, 9));
	case SQLITE_TEXT:
	case SQLITE_BLOB:
		p = t == SQLITE_TEXT ? (const void *)sqlite3_value_text(v) :
		    sqlite3_value_blob(v);
		n = sqlite3_value_bytes(v);
		if (p == NULL && n > 0)
			return (-1);	/* SQLite out of memory */
		h[0] = t == SQLITE_TEXT ? 3 : 4;
		if (buf_append(b, h, 1 + varint(h + 1, n)) == -1)
			return (-1);
		return (n > 0 ? buf_append(b, p, n) : 0);
	default:
		return (buf_putc(b, 5));
	}
}

/* The length of the value at <p> (its type byte included), 0: bad. */
static size_t
value_len(const uint8_t *p, const uint8_t *end)
{
	uint64_t	n;
	size_t		h;

	if (p >= end)
		return (0);
	switch (*p) {
	case 0:
	case 5:
		return (1);
	case 1:
	case 2:
		return (p + 9 <= end ? 9 : 0);
	case 3:
	case 4:
		h = 1 + get_varint(p + 1, end, &n);
		return (n <= (uint64_t)(end - p) - h ? h + n : 0);
	default:
		return (0);
	}
}

static uint32_t
fnv(const uint8_t *p, size_t n, uint32_t h)
{
	while (n-- > 0)
		h = (h ^ *p++) * 16777619u;
	return (h);
}

/* "name", quoted for SQL; -1 when out of memory */
static int
ident(struct buf *b, const char *name)
{
	int	bad = buf_putc(b, '"');

	for (; name != NULL && *name != '\0'; name++)
		bad |= *name == '"' ? buf_puts(b, "\"\"") : buf_putc(b, *name);
	return (bad | buf_putc(b, '"'));
}

/*
 * The description of table <name> (its index), read once per schema:
 * column names, key places, and the SELECT of a row by its key.
 */
static int
table(struct rowcap *r, const char *name, uint32_t *idx)
{
	struct rtab	*t;
	struct buf	 sql;
	size_t		 i;
	int		 rc, n = 0, k, bad;

	/* a transaction mostly changes one table: try the last one first */
	if (r->last < r->ntab && strcasecmp(r->tab[r->last].name, name) == 0) {
		*idx = r->last;
		return (SQLITE_OK);
	}
	for (i = 0; i < r->ntab; i++)
		if (strcasecmp(r->tab[i].name, name) == 0) {
			*idx = r->last = i;
			return (SQLITE_OK);
		}
	if (r->ntab == r->tabcap) {
		size_t		 cap = r->tabcap ? r->tabcap * 2 : 16;
		struct rtab	*nt;
		uint32_t	*no;

		if ((nt = reallocarray(r->tab, cap, sizeof(*nt))) == NULL)
			return (SQLITE_NOMEM);
		r->tab = nt;
		if ((no = reallocarray(r->order, cap, sizeof(*no))) == NULL)
			return (SQLITE_NOMEM);
		r->order = no;
		r->tabcap = cap;
	}
	t = &r->tab[r->ntab];
	memset(t, 0, sizeof(*t));
	buf_init(&sql, SIZE_MAX);	/* no limit: a cut statement is wrong */
	rc = SQLITE_NOMEM;
	if ((t->name = strdup(name)) == NULL)
		goto fail;
	t->stat1 = strcasecmp(name, "sqlite_stat1") == 0;
	if ((rc = prep(r, &r->info, "SELECT name, pk FROM "
	    "pragma_table_info(?1, 'main') ORDER BY cid")) != SQLITE_OK)
		goto fail;
	sqlite3_bind_text(r->info, 1, name, -1, SQLITE_STATIC);
	bad = buf_puts(&sql, "SELECT * FROM main.") | ident(&sql, name);
	while ((rc = sqlite3_step(r->info)) == SQLITE_ROW) {
		uint8_t	*pk;

		if ((pk = realloc(t->pk, n + 1)) == NULL) {
			rc = SQLITE_NOMEM;
			break;
		}
		t->pk = pk;
		k = sqlite3_column_int(r->info, 1);
		pk[n] = k > 0 ? (uint8_t)k : 0;	/* as sqlite3session: a u8 */
		if (pk[n] != 0) {
			bad |= buf_puts(&sql, t->keyed ? " AND " : " WHERE ") |
			    ident(&sql, (const char *)sqlite3_column_text(
			    r->info, 0)) | buf_printf(&sql, " IS ?%d", n + 1);
			t->keyed = 1;
		}
		n++;
	}
	sqlite3_reset(r->info);
	sqlite3_clear_bindings(r->info);
	if (rc != SQLITE_DONE)
		goto fail;
	rc = SQLITE_NOMEM;
	if (bad)
		goto fail;
	t->ncol = n;
	if (t->stat1 && n == 3) {
		/* as sqlite3session: (tbl, idx) for a key, idx NULL as X'' */
		t->pk[0] = 1;
		t->pk[1] = 2;
		t->pk[2] = 0;
		t->keyed = 1;
		buf_reset(&sql);
		buf_puts(&sql, "SELECT tbl, ?2, stat FROM main.sqlite_stat1 "
		    "WHERE tbl IS ?1 AND idx IS (CASE WHEN ?2 = X'' THEN NULL "
		    "ELSE ?2 END)");
	}
	if (t->keyed && (buf_cstr(&sql) == NULL ||
	    (t->sel = strdup(buf_cstr(&sql))) == NULL)) {
		rc = SQLITE_NOMEM;
		goto fail;
	}
	buf_free(&sql);
	*idx = r->last = r->ntab++;
	return (SQLITE_OK);
 fail:
	buf_free(&sql);
	free(t->name);
	free(t->pk);
	return (rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_ERROR : rc);
}

static int
grow_hash(struct rowcap *r)
{
	uint32_t	*b;
	size_t		 n = r->nbucket ? r->nbucket * 2 : 256, i;

	if ((b = calloc(n, sizeof(*b))) == NULL)
		return (-1);
	free(r->bucket);
	r->bucket = b;
	r->nbucket = n;
	for (i = 1; i < r->nch; i++) {
		r->ch[i].next = b[r->ch[i].hash & (n - 1)];
		b[r->ch[i].hash & (n - 1)] = i;
	}
	return (0);
}

static sqlite3_value *
hook_value(struct rowcap *r, int old, int i)
{
	sqlite3_value	*v = NULL;

	if ((old ? sqlite3_preupdate_old(r->db, i, &v) :
	    sqlite3_preupdate_new(r->db, i, &v)) != SQLITE_OK)
		return (NULL);
	return (v);
}

/* A stat1 idx NULL is written as an empty blob. */
static int
put_col(struct rowcap *r, struct rtab *t, int i, sqlite3_value *v)
{
	static const uint8_t	empty[2] = { 4, 0 };

	if (t->stat1 && i == 1 && v != NULL &&
	    sqlite3_value_type(v) == SQLITE_NULL)
		return (buf_append(&r->arena, empty, 2));
	return (put_value(&r->arena, v));
}

/*
 * A key value as the key's comparison sees it: a REAL with an integer
 * value is the INTEGER (SQLite hands a REAL key over as an INTEGER on
 * INSERT and as a REAL later, and -0.0 equals 0.0), so that one row is
 * one row.  sqlite3session tells them apart, and a replica then halted.
 */
static int
put_key(struct rowcap *r, struct rtab *t, int col, sqlite3_value *v)
{
	uint8_t	h[9];
	double	d;

	if (sqlite3_value_type(v) == SQLITE_FLOAT) {
		d = sqlite3_value_double(v);
		if (d >= -9223372036854775808.0 && d < 9223372036854775808.0 &&
		    d == (double)(int64_t)d) {
			h[0] = 1;
			put_be64(h + 1, (uint64_t)(int64_t)d);
			return (buf_append(&r->arena, h, 9));
		}
	}
	return (put_col(r, t, col, v));
}

/* One change, as sessionPreupdateOneChange records it. */
static int
one_change(struct rowcap *r, uint32_t ti, int op)
{
	struct rtab	*t = &r->tab[ti];
	struct rchange	*c;
	sqlite3_value	*v;
	size_t		 key = r->arena.len, rec;
	uint32_t	 h, i;
	int		 col, old = op != RC_INSERT;

	if (sqlite3_preupdate_count(r->db) != t->ncol)
		return (SQLITE_SCHEMA);
	/* the key, in the arena for now */
	for (col = 0; col < t->ncol; col++) {
		if (t->pk[col] == 0)
			continue;
		if ((v = hook_value(r, old, col)) == NULL)
			return (SQLITE_ERROR);
		if (sqlite3_value_type(v) == SQLITE_NULL &&
		    !(t->stat1 && col == 1)) {
			r->arena.len = key;
			return (SQLITE_OK);	/* a NULL in the key: ignored */
		}
		if (put_key(r, t, col, v) == -1)
			return (SQLITE_NOMEM);
	}
	h = fnv(at(r, key), r->arena.len - key, 2166136261u ^ ti);
	if (r->nbucket > 0)
		for (i = r->bucket[h & (r->nbucket - 1)]; i != 0;
		    i = r->ch[i].next) {
			c = &r->ch[i];
			if (c->tab == ti && c->hash == h &&
			    c->keylen == r->arena.len - key &&
			    memcmp(at(r, c->key), at(r, key),
			    c->keylen) == 0) {
				r->arena.len = key;	/* known: drop the copy */
				if (sqlite3_preupdate_depth(r->db) == 0)
					c->indirect = 0;
				return (SQLITE_OK);
			}
		}
	/* a new row: its old values, or its key for an insert */
	rec = r->arena.len;
	for (col = 0; col < t->ncol; col++) {
		v = NULL;
		if (old || t->pk[col] != 0)
			if ((v = hook_value(r, old, col)) == NULL)
				return (SQLITE_ERROR);
		if (put_col(r, t, col, v) == -1)
			return (SQLITE_NOMEM);
	}
	if (r->nch >= r->chcap) {
		size_t		 cap = r->chcap ? r->chcap * 2 : 64;
		struct rchange	*nc;

		if ((nc = reallocarray(r->ch, cap, sizeof(*nc))) == NULL)
			return (SQLITE_NOMEM);
		r->ch = nc;
		r->chcap = cap;
	}
	if (r->nch * 2 >= r->nbucket && grow_hash(r) == -1)
		return (SQLITE_NOMEM);
	c = &r->ch[r->nch];
	c->tab = ti;
	c->op = op;
	c->indirect = sqlite3_preupdate_depth(r->db) > 0;
	c->key = key;
	c->keylen = rec - key;
	c->rec = rec;
	c->reclen = r->arena.len - rec;
	c->hash = h;
	c->next = r->bucket[h & (r->nbucket - 1)];
	c->tnext = 0;
	r->bucket[h & (r->nbucket - 1)] = r->nch;
	if (!t->used) {
		t->used = 1;
		t->first = r->nch;
		r->order[r->norder++] = ti;
	} else
		r->ch[t->last].tnext = r->nch;
	t->last = r->nch++;
	return (SQLITE_OK);
}

static void
hook(void *arg, sqlite3 *db, int op, const char *zdb, const char *name,
    sqlite3_int64 key1, sqlite3_int64 key2)
{
	struct rowcap	*r = arg;
	uint32_t	 ti = 0;
	int		 rc;

	if (!r->active || r->rc != SQLITE_OK || strcmp(zdb, "main") != 0)
		return;
	if ((rc = table(r, name, &ti)) != SQLITE_OK) {
		r->rc = rc;
		return;
	}
	if (!r->tab[ti].keyed)
		return;
	rc = one_change(r, ti, op == SQLITE_INSERT ? RC_INSERT :
	    op == SQLITE_DELETE ? RC_DELETE : RC_UPDATE);
	if (rc == SQLITE_OK && op == SQLITE_UPDATE)
		rc = one_change(r, ti, RC_INSERT);
	if (rc != SQLITE_OK)
		r->rc = rc;
}

/* Bind the key values of <c> to <st>, each as ?<column + 1>. */
static int
bind_key(struct rowcap *r, struct rtab *t, struct rchange *c,
    sqlite3_stmt *st)
{
	const uint8_t	*p = at(r, c->key), *end = p + c->keylen;
	uint64_t	 u, n;
	double		 d;
	size_t		 len, h;
	int		 col;

	for (col = 0; col < t->ncol; col++) {
		if (t->pk[col] == 0)
			continue;
		if ((len = value_len(p, end)) == 0)
			return (SQLITE_CORRUPT);
		u = len == 9 ? get_be64(p + 1) : 0;
		switch (*p) {
		case 1:
			sqlite3_bind_int64(st, col + 1, (sqlite3_int64)u);
			break;
		case 2:
			memcpy(&d, &u, 8);
			sqlite3_bind_double(st, col + 1, d);
			break;
		case 3:
		case 4:
			h = 1 + get_varint(p + 1, end, &n);
			if (*p == 3)
				sqlite3_bind_text(st, col + 1,
				    (const char *)p + h, n, SQLITE_STATIC);
			else
				sqlite3_bind_blob(st, col + 1, p + h, n,
				    SQLITE_STATIC);
			break;
		default:
			sqlite3_bind_null(st, col + 1);
			break;
		}
		p += len;
	}
	return (SQLITE_OK);
}

/* Does the old value at <p> (<len> bytes) equal column <i> of <st>? */
static int
same(const uint8_t *p, size_t len, sqlite3_stmt *st, int i)
{
	const void	*q;
	uint64_t	 u, n;
	double		 d;
	size_t		 h;
	int		 t = sqlite3_column_type(st, i);

	switch (*p) {
	case 5:
		return (t == SQLITE_NULL);
	case 1:
	case 2:
		if ((*p == 1 && t != SQLITE_INTEGER) ||
		    (*p == 2 && t != SQLITE_FLOAT))
			return (0);
		u = get_be64(p + 1);
		if (*p == 1)
			return ((sqlite3_int64)u == sqlite3_column_int64(st, i));
		memcpy(&d, &u, 8);
		return (d == sqlite3_column_double(st, i));
	default:
		if ((*p == 3 && t != SQLITE_TEXT) ||
		    (*p == 4 && t != SQLITE_BLOB))
			return (0);
		q = *p == 3 ? (const void *)sqlite3_column_text(st, i) :
		    sqlite3_column_blob(st, i);
		h = 1 + get_varint(p + 1, p + len, &n);
		if (n != (uint64_t)sqlite3_column_bytes(st, i))
			return (0);
		return (n == 0 || (q != NULL && memcmp(p + h, q, n) == 0));
	}
}

/* The record of one row, if it still says something; -1: no room. */
static int
row(struct rowcap *r, struct rtab *t, struct rchange *c, sqlite3_stmt *st,
    int there, struct buf *out, struct buf *nw)
{
	const uint8_t	*p, *end;
	uint8_t		 h[2] = { 0, c->indirect };
	size_t		 rewind = out->len, len;
	int		 i, changed, any = 0;

	if (c->op == RC_INSERT) {
		if (!there)
			return (0);
		h[0] = RC_INSERT;
		if (buf_append(out, h, 2) == -1)
			return (-1);
		for (i = 0; i < t->ncol; i++)
			if (put_value(out, sqlite3_column_value(st, i)) == -1)
				return (-1);
		return (0);
	}
	if (!there) {
		h[0] = RC_DELETE;
		if (buf_append(out, h, 2) == -1 ||
		    buf_append(out, at(r, c->rec), c->reclen) == -1)
			return (-1);
		return (0);
	}
	h[0] = RC_UPDATE;
	if (buf_append(out, h, 2) == -1)
		return (-1);
	buf_reset(nw);
	p = at(r, c->rec);
	end = p + c->reclen;
	for (i = 0; i < t->ncol; i++, p += len) {
		if ((len = value_len(p, end)) == 0)
			return (-2);
		changed = !same(p, len, st, i);
		any |= changed;
		if (changed || t->pk[i] != 0) {
			if (buf_append(out, p, len) == -1)
				return (-1);
		} else if (buf_putc(out, 0) == -1)
			return (-1);
		if (changed) {
			if (put_value(nw, sqlite3_column_value(st, i)) == -1)
				return (-1);
		} else if (buf_putc(nw, 0) == -1)
			return (-1);
	}
	if (!any) {
		out->len = rewind;
		return (0);
	}
	return (buf_append(out, buf_head(nw), buf_used(nw)));
}

/*
 * The changeset of what was recorded since rowcap_begin(), appended to
 * <out> (nothing when nothing changed); recording goes on, empty.
 * Returns an SQLite code: SQLITE_TOOBIG when <out> is full.
 */
int
rowcap_changeset(struct rowcap *r, struct buf *out)
{
	struct rtab	*t;
	struct rchange	*c;
	struct buf	 nw;
	uint8_t		 h[16];
	size_t		 i, j, start, hdr;
	int		 rc = r->rc, there;

	if (rc != SQLITE_OK) {
		clear(r);
		return (rc);
	}
	/*
	 * A savepoint makes virtual tables write what they hold back
	 * (FTS5 its pending index data) while recording goes on, as
	 * sqlite3session_changeset() does; else it would be written at
	 * COMMIT, unrecorded.
	 */
	if ((rc = run(r, &r->sp, "SAVEPOINT rowcap")) != SQLITE_OK ||
	    (rc = r->rc) != SQLITE_OK ||
	    (rc = run(r, &r->release, "RELEASE rowcap")) != SQLITE_OK) {
		clear(r);
		return (rc);
	}
	buf_init(&nw, SIZE_MAX);
	for (i = 0; i < r->norder && rc == SQLITE_OK; i++) {
		t = &r->tab[r->order[i]];
		if (t->st == NULL && (rc = prep(r, &t->st, t->sel)) !=
		    SQLITE_OK)
			break;
		start = out->len;
		h[0] = 'T';
		if (buf_append(out, h, 1 + varint(h + 1, t->ncol)) == -1 ||
		    buf_append(out, t->pk, t->ncol) == -1 ||
		    buf_append(out, t->name, strlen(t->name) + 1) == -1) {
			rc = SQLITE_TOOBIG;
			break;
		}
		hdr = out->len;
		for (j = t->first; j != 0 && rc == SQLITE_OK; j = c->tnext) {
			c = &r->ch[j];
			if ((rc = bind_key(r, t, c, t->st)) != SQLITE_OK)
				break;
			there = sqlite3_step(t->st);
			if (there != SQLITE_ROW && there != SQLITE_DONE) {
				rc = sqlite3_errcode(r->db);
				sqlite3_reset(t->st);
				break;
			}
			switch (row(r, t, c, t->st, there == SQLITE_ROW, out,
			    &nw)) {
			case -1:
				rc = SQLITE_TOOBIG;
				break;
			case -2:
				rc = SQLITE_CORRUPT;
				break;
			}
			sqlite3_reset(t->st);
		}
		sqlite3_clear_bindings(t->st);
		if (out->len == hdr)
			out->len = start;	/* no row left: no table */
	}
	buf_free(&nw);
	clear(r);
	return (rc);
}
