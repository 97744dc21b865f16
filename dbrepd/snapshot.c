/*
 * snapshot.c: whole copies of the database, consistent at a known LSN.
 *
 * Making one: sqlite3_backup in a single step copies the database as one
 * read transaction sees it, into "<data>.snap-<pid>-<n>".  dbrepd's
 * position lives in the data (_dbrep_meta), so the copy carries the LSN,
 * epoch and hash it is consistent with.  The maker never blocks writers
 * (WAL), and runs in a child process on the primary so that the
 * replication process keeps streaming meanwhile.
 *
 * Installing one on a replica: the file is received beside the database,
 * checked (SHA-256 of the transfer, PRAGMA quick_check, its meta), and
 * copied over the live database with sqlite3_backup, again in one step:
 * the whole copy is one write transaction in the live database's WAL, so
 * a crash at any point leaves the old database or the new one, never a
 * mix, and readers on other connections go from one to the other.
 */
#include <sys/types.h>
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "dbrepd.h"

/*
 * The file the <n>-th snap_make() of process <pid> makes (the first of a
 * child forked for one snapshot: a parent that kills it unlinks it).
 */
int
snap_tmpname(const struct dbrepd_conf *conf, pid_t pid, int n, char *buf,
    size_t len)
{
	return (snprintf(buf, len, "%s.snap-%d-%d", conf->data, (int)pid,
	    n) >= (int)len ? -1 : 0);
}

/*
 * Make a snapshot of conf->data.  Returns 0 with its path in <path>, its
 * position in <mt> and its size, or -1 with a message in <path>.
 */
int
snap_make(const struct dbrepd_conf *conf, struct meta *mt, uint64_t *size,
    char *path, size_t pathlen)
{
	static int	 n;
	sqlite3		*src = NULL, *dst = NULL;
	sqlite3_backup	*bk;
	struct stat	 sb;
	char		 err[256], tmp[PATH_MAX];
	int		 rc;

	if (snap_tmpname(conf, getpid(), ++n, tmp, sizeof(tmp)) == -1) {
		snprintf(path, pathlen, "snapshot path too long");
		return (-1);
	}
	unlink(tmp);
	if ((src = db_open(conf, DB_READER, err, sizeof(err))) == NULL) {
		snprintf(path, pathlen, "%s", err);
		return (-1);
	}
	if (sqlite3_open_v2(tmp, &dst, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
		snprintf(path, pathlen, "%s: %s", tmp, dst ?
		    sqlite3_errmsg(dst) : "out of memory");
		goto fail;
	}
	db_exec(dst, "PRAGMA synchronous = OFF");
	if ((bk = sqlite3_backup_init(dst, "main", src, "main")) == NULL) {
		snprintf(path, pathlen, "backup: %s", sqlite3_errmsg(dst));
		goto fail;
	}
	rc = sqlite3_backup_step(bk, -1);
	sqlite3_backup_finish(bk);
	if (rc != SQLITE_DONE) {
		snprintf(path, pathlen, "backup: %s", sqlite3_errstr(rc));
		goto fail;
	}
	/* a commit in the copy may not be flushed yet (group commit) */
	if (db_sync(src) == -1) {
		snprintf(path, pathlen, "cannot flush the write-ahead log");
		goto fail;
	}
	if (db_meta(dst, mt) == -1) {
		snprintf(path, pathlen, "snapshot has no position");
		goto fail;
	}
	db_close(dst);
	dst = NULL;
	db_close(src);
	if (stat(tmp, &sb) == -1) {
		snprintf(path, pathlen, "%s: %s", tmp, strerror(errno));
		unlink(tmp);
		return (-1);
	}
	*size = sb.st_size;
	strlcpy(path, tmp, pathlen);
	return (0);
 fail:
	db_close(dst);
	db_close(src);
	unlink(tmp);
	return (-1);
}

/* Check a received snapshot; its position in <mt>. */
int
snap_verify(const char *path, struct meta *mt, char *err, size_t errlen)
{
	sqlite3		*db = NULL;
	sqlite3_stmt	*st = NULL;
	int		 rc = -1;

	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) !=
	    SQLITE_OK) {
		snprintf(err, errlen, "%s", db ? sqlite3_errmsg(db) :
		    "out of memory");
		goto done;
	}
	if (sqlite3_prepare_v2(db, "PRAGMA quick_check", -1, &st, NULL) !=
	    SQLITE_OK || sqlite3_step(st) != SQLITE_ROW) {
		snprintf(err, errlen, "quick_check: %s", sqlite3_errmsg(db));
		goto done;
	}
	if (strcmp((const char *)sqlite3_column_text(st, 0), "ok") != 0) {
		snprintf(err, errlen, "quick_check: %s",
		    sqlite3_column_text(st, 0));
		goto done;
	}
	sqlite3_finalize(st);
	st = NULL;
	if (db_meta(db, mt) == -1) {
		snprintf(err, errlen, "snapshot has no position");
		goto done;
	}
	rc = 0;
 done:
	sqlite3_finalize(st);
	db_close(db);
	return (rc);
}

/*
 * Replace the database of <db> (the applier's connection) with the
 * snapshot at <path>, atomically.  <mt> becomes the new position.
 */
int
snap_install(sqlite3 *db, const char *path, struct meta *mt, char *err,
    size_t errlen)
{
	sqlite3		*src = NULL;
	sqlite3_backup	*bk;
	int		 rc;

	if (sqlite3_open_v2(path, &src, SQLITE_OPEN_READWRITE, NULL) !=
	    SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path, src ?
		    sqlite3_errmsg(src) : "out of memory");
		sqlite3_close(src);
		return (-1);
	}
	if ((bk = sqlite3_backup_init(db, "main", src, "main")) == NULL) {
		snprintf(err, errlen, "backup: %s", sqlite3_errmsg(db));
		sqlite3_close(src);
		return (-1);
	}
	rc = sqlite3_backup_step(bk, -1);
	sqlite3_backup_finish(bk);
	sqlite3_close(src);
	if (rc != SQLITE_DONE) {
		snprintf(err, errlen, "install: %s", sqlite3_errstr(rc));
		return (-1);
	}
	/* the copy sits in the WAL: move it into the file, best effort */
	db_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)");
	if (db_meta(db, mt) == -1) {
		snprintf(err, errlen, "installed snapshot has no position");
		return (-1);
	}
	return (0);
}

/* Render a changeset as text, one change per line, for an operator. */
static void
render_changeset(struct buf *out, const void *p, size_t n)
{
	sqlite3_changeset_iter	*it;
	sqlite3_value		*v;
	const char		*tab;
	char			*s;
	int			 ncol, op, ind, i, pass;

	if (sqlite3changeset_start(&it, (int)n, (void *)p) != SQLITE_OK)
		return;
	while (sqlite3changeset_next(it) == SQLITE_ROW) {
		sqlite3changeset_op(it, &tab, &ncol, &op, &ind);
		buf_printf(out, "%s %s", op == SQLITE_INSERT ? "INSERT" :
		    op == SQLITE_UPDATE ? "UPDATE" : "DELETE", tab);
		for (pass = 0; pass < 2; pass++) {
			if ((pass == 0 && op == SQLITE_INSERT) ||
			    (pass == 1 && op == SQLITE_DELETE))
				continue;
			buf_printf(out, "%s(", pass ? " new" : " old");
			for (i = 0; i < ncol; i++) {
				v = NULL;
				if (pass == 0)
					sqlite3changeset_old(it, i, &v);
				else
					sqlite3changeset_new(it, i, &v);
				s = v == NULL ? NULL : sqlite3_mprintf("%Q",
				    sqlite3_value_text(v));
				buf_printf(out, "%s%s", i ? ", " : "",
				    v == NULL ? "-" : s ? s : "NULL");
				sqlite3_free(s);
			}
			buf_printf(out, ")");
		}
		buf_printf(out, "\n");
	}
	sqlite3changeset_finalize(it);
}

static void
render_body(struct buf *out, const uint8_t *body, size_t len)
{
	struct fr	 r;
	const uint8_t	*p;
	size_t		 n;
	int		 kind;

	fr_init(&r, body, len);
	while (seg_next(&r, &kind, &p, &n) == 1) {
		switch (kind) {
		case SEG_CHANGESET:
			render_changeset(out, p, n);
			break;
		case SEG_SQL:
			buf_printf(out, "SQL %.*s\n", (int)n, (const char *)p);
			break;
		case SEG_SEQUENCE:
			buf_printf(out, "SEQUENCE (%zu bytes)\n", n);
			break;
		case SEG_EPOCH:
			buf_printf(out, "EPOCH\n");
			break;
		}
	}
}

/*
 * Keep aside the records of <db> after <fork>, which the primary's
 * history does not have, in a new file "<data>-diverged-<lsn>-<time>.db"
 * (table diverged: lsn, epoch, ts, hash, body, and the changes as text).
 * Returns the number of records saved, -1 on error; the file's name in
 * <path>.
 */
int
snap_save_diverged(sqlite3 *db, const struct dbrepd_conf *conf,
    uint64_t fork, char *path, size_t pathlen, char *err, size_t errlen)
{
	sqlite3		*side = NULL;
	sqlite3_stmt	*sel = NULL, *ins = NULL;
	struct buf	 text;
	int		 n = 0, rc = -1;

	buf_init(&text, 64 * 1024 * 1024);
	snprintf(path, pathlen, "%s-diverged-%llu-%llu.db", conf->data,
	    (unsigned long long)fork, (unsigned long long)now_ms());
	if (sqlite3_prepare_v2(db, "SELECT lsn, epoch, ts, hash, body FROM "
	    "_dbrep_log WHERE lsn > ?1 ORDER BY lsn", -1, &sel, NULL) !=
	    SQLITE_OK) {
		snprintf(err, errlen, "%s", sqlite3_errmsg(db));
		goto done;
	}
	sqlite3_bind_int64(sel, 1, fork);
	if (sqlite3_open_v2(path, &side, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE, NULL) != SQLITE_OK ||
	    db_exec(side, "CREATE TABLE diverged(lsn INTEGER PRIMARY KEY, "
	    "epoch INTEGER, ts INTEGER, hash BLOB, body BLOB, changes TEXT); "
	    "BEGIN") == -1 ||
	    sqlite3_prepare_v2(side, "INSERT INTO diverged VALUES(?1, ?2, ?3, "
	    "?4, ?5, ?6)", -1, &ins, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path, side ?
		    sqlite3_errmsg(side) : "out of memory");
		goto done;
	}
	while (sqlite3_step(sel) == SQLITE_ROW) {
		buf_reset(&text);
		render_body(&text, sqlite3_column_blob(sel, 4),
		    sqlite3_column_bytes(sel, 4));
		sqlite3_bind_value(ins, 1, sqlite3_column_value(sel, 0));
		sqlite3_bind_value(ins, 2, sqlite3_column_value(sel, 1));
		sqlite3_bind_value(ins, 3, sqlite3_column_value(sel, 2));
		sqlite3_bind_value(ins, 4, sqlite3_column_value(sel, 3));
		sqlite3_bind_value(ins, 5, sqlite3_column_value(sel, 4));
		sqlite3_bind_text(ins, 6, buf_head(&text), buf_used(&text),
		    SQLITE_STATIC);
		if (sqlite3_step(ins) != SQLITE_DONE) {
			snprintf(err, errlen, "%s: %s", path,
			    sqlite3_errmsg(side));
			goto done;
		}
		sqlite3_reset(ins);
		n++;
	}
	if (db_exec(side, "COMMIT") == -1) {
		snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(side));
		goto done;
	}
	rc = n;
 done:
	sqlite3_finalize(sel);
	sqlite3_finalize(ins);
	sqlite3_close(side);
	buf_free(&text);
	if (rc <= 0)
		unlink(path);
	return (rc);
}

/* Remove snapshot files a crash left beside <data>. */
void
snap_cleanup(const char *data)
{
	char		 dir[PATH_MAX], base[PATH_MAX], p[PATH_MAX * 2];
	struct dirent	*de;
	DIR		*d;
	size_t		 bl;

	strlcpy(dir, data, sizeof(dir));
	strlcpy(base, data, sizeof(base));
	strlcpy(dir, dirname(dir), sizeof(dir));
	strlcpy(base, basename(base), sizeof(base));
	strlcat(base, ".snap-", sizeof(base));
	bl = strlen(base);
	if ((d = opendir(dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, base, bl) != 0)
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		if (unlink(p) == 0)
			log_info("removed %s, left by a crash", p);
	}
	closedir(d);
}
