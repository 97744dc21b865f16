/*
 * notes: the demo site's application, an appd module on dbrepd.
 *
 * A note has an id, a text, an author and a creation time.  Below the
 * route's prefix (the demo routes "/api/" here):
 *
 *	GET    /notes		newest first: ?limit=N (1-100, default
 *				page-size) and ?before=ID for the next page;
 *				{"notes": [...], "next": URL or null}
 *	POST   /notes		a JSON object or a form: "text" (1 to
 *				max-length characters) and "author"
 *				(default "anonymous"); 201 with Location
 *				and the note
 *	GET    /notes/ID	the note, or 404
 *	DELETE /notes/ID	204, or 404
 *	GET    /whoami		which app server answered, which database
 *				node served the read, and its LSN
 *
 * Errors are JSON: {"error": "..."}.  Writes go to the primary; appd
 * returns each write's LSN in a cookie and makes later reads wait for it
 * on the replica they go to (app.h), so a client always reads its own
 * notes, whichever app server and replica answer.  The table is made
 * when missing (with a PRIMARY KEY: dbrepd replicates only those).
 *
 * Settings: "set max-length 1000", "set page-size 20".
 */
#include <sys/types.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "app.h"

#define NOTES_MAXLEN	1000		/* characters of a note's text */
#define NOTES_MAXAUTHOR	64		/* characters of an author */
#define NOTES_PAGE	20
#define NOTES_MAXPAGE	100

static const struct app_conf	*conf;
static struct app_db		*db;
static int			 table_ok;
static long long		 maxlen = NOTES_MAXLEN;
static long long		 pagesize = NOTES_PAGE;

static const char	create_sql[] =
    "CREATE TABLE IF NOT EXISTS notes ("
    "id INTEGER PRIMARY KEY AUTOINCREMENT, "
    "text TEXT NOT NULL, "
    "author TEXT NOT NULL, "
    "created INTEGER NOT NULL)";

/* Make the table if it is missing; 0 when it exists. */
static int
ensure_table(void)
{
	struct app_rows	*rows;
	int		 have;

	if (table_ok)
		return (0);
	/* look on the primary first: a CREATE is a write, logged */
	if (app_db_query(db, NULL, APP_DB_WRITE, &rows, "SELECT count(*) "
	    "FROM sqlite_master WHERE type = 'table' AND name = 'notes'",
	    NULL) == -1)
		return (-1);
	have = app_rows_int(rows, 0, 0) > 0;
	app_rows_free(rows);
	if (!have && app_db_query(db, NULL, APP_DB_WRITE, NULL, create_sql,
	    NULL) == -1)
		return (-1);
	table_ok = 1;
	return (0);
}

static int
notes_init(const struct app_conf *c)
{
	conf = c;
	maxlen = app_conf_int(c, "max-length", NOTES_MAXLEN);
	pagesize = app_conf_int(c, "page-size", NOTES_PAGE);
	if (pagesize < 1 || pagesize > NOTES_MAXPAGE)
		pagesize = NOTES_PAGE;
	if ((db = app_conf_db(c)) == NULL) {
		app_log(LOG_ERR, "notes: no database (a \"database\" line in "
		    "the app block)");
		return (-1);
	}
	/* the database may not be up yet: then at the first request */
	if (ensure_table() == -1)
		app_log(LOG_WARNING, "notes: database not ready (%s), will "
		    "retry", app_db_error(db));
	return (0);
}

static int
db_failed(struct app_resp *r)
{
	app_log(LOG_WARNING, "notes: database: %s (code %d)",
	    app_db_error(db), app_db_errcode(db));
	return (app_error(r, 503, "database unavailable: %s",
	    app_db_error(db)));
}

/* Characters of UTF-8 text: bytes that do not continue a sequence. */
static size_t
nchars(const char *s, size_t len)
{
	size_t	i, n = 0;

	for (i = 0; i < len; i++)
		if (((unsigned char)s[i] & 0xc0) != 0x80)
			n++;
	return (n);
}

/* A positive integer, or -1. */
static long long
parse_id(const char *s)
{
	const char	*errstr;
	long long	 v;

	if (s == NULL || *s == '\0' || strspn(s, "0123456789") != strlen(s))
		return (-1);
	v = strtonum(s, 1, INT64_MAX, &errstr);
	return (errstr == NULL ? v : -1);
}

static void
note_json(struct app_resp *r, const struct app_rows *rows, size_t i)
{
	const char	*s;
	size_t		 len;
	time_t		 t = (time_t)app_rows_int(rows, i, 3);
	struct tm	 tm;
	char		 when[32];

	gmtime_r(&t, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	app_json_object(r);
	app_json_key(r, "id");
	app_json_int(r, app_rows_int(rows, i, 0));
	s = app_rows_text(rows, i, 1, &len);
	app_json_key(r, "text");
	app_json_stringn(r, s ? s : "", len);
	s = app_rows_text(rows, i, 2, &len);
	app_json_key(r, "author");
	app_json_stringn(r, s ? s : "", len);
	app_json_key(r, "created");
	app_json_string(r, when);
	app_json_end(r);
}

static int
notes_list(struct app_req *req, struct app_resp *r)
{
	struct app_rows	*rows;
	const char	*v;
	long long	 limit = pagesize, before = INT64_MAX;
	size_t		 i, n;
	char		 next[512];

	if ((v = app_query(req, "limit")) != NULL &&
	    ((limit = parse_id(v)) < 1 || limit > NOTES_MAXPAGE))
		return (app_error(r, 400, "limit must be 1 to %d",
		    NOTES_MAXPAGE));
	if ((v = app_query(req, "before")) != NULL &&
	    (before = parse_id(v)) < 1)
		return (app_error(r, 400, "before must be a note id"));
	if (app_db_query(db, req, APP_DB_READ, &rows, "SELECT id, text, "
	    "author, created FROM notes WHERE id < ? ORDER BY id DESC "
	    "LIMIT ?", "II", (int64_t)before, (int64_t)limit) == -1)
		return (db_failed(r));
	n = app_rows_count(rows);
	app_json_object(r);
	app_json_key(r, "notes");
	app_json_array(r);
	for (i = 0; i < n; i++)
		note_json(r, rows, i);
	app_json_end(r);
	app_json_key(r, "next");
	if (n == (size_t)limit && n > 0) {
		snprintf(next, sizeof(next), "%s?before=%lld&limit=%lld",
		    app_path(req), app_rows_int(rows, n - 1, 0), limit);
		app_json_string(r, next);
	} else
		app_json_null(r);
	app_json_end(r);
	return (0);
}

static int
notes_get(struct app_req *req, struct app_resp *r, long long id)
{
	struct app_rows	*rows;

	if (app_db_query(db, req, APP_DB_READ, &rows, "SELECT id, text, "
	    "author, created FROM notes WHERE id = ?", "I", (int64_t)id) == -1)
		return (db_failed(r));
	if (app_rows_count(rows) == 0)
		return (app_error(r, 404, "no note %lld", id));
	note_json(r, rows, 0);
	return (0);
}

static int
notes_create(struct app_req *req, struct app_resp *r)
{
	struct app_rows	*rows;
	const char	*ct = app_header(req, "content-type");
	const char	*text, *author;
	size_t		 tlen, alen = 0;
	long long	 id;
	char		 loc[256];

	if (ct != NULL && strncasecmp(ct, "application/json", 16) == 0) {
		if (!app_json_body(req))
			return (app_error(r, 400, "the body is not a JSON "
			    "object"));
		text = app_json_field(req, "text", &tlen);
		author = app_json_field(req, "author", &alen);
	} else if (ct != NULL && strncasecmp(ct,
	    "application/x-www-form-urlencoded", 33) == 0) {
		text = app_form(req, "text", &tlen);
		author = app_form(req, "author", &alen);
	} else
		return (app_error(r, 415, "send a JSON object or a form"));
	if (text == NULL || tlen == 0)
		return (app_error(r, 400, "a note needs a text"));
	if (nchars(text, tlen) > (size_t)maxlen)
		return (app_error(r, 400, "the text is longer than %lld "
		    "characters", maxlen));
	if (author == NULL || alen == 0) {
		author = "anonymous";
		alen = strlen(author);
	}
	if (nchars(author, alen) > NOTES_MAXAUTHOR)
		return (app_error(r, 400, "the author is longer than %d "
		    "characters", NOTES_MAXAUTHOR));
	if (app_db_query(db, req, APP_DB_WRITE, &rows, "INSERT INTO notes "
	    "(text, author, created) VALUES (?, ?, ?)", "TTI", text, tlen,
	    author, alen, (int64_t)time(NULL)) == -1)
		return (db_failed(r));
	id = app_rows_rowid(rows);
	/* read it back from the primary: the answer is the stored note */
	if (app_db_query(db, req, APP_DB_WRITE, &rows, "SELECT id, text, "
	    "author, created FROM notes WHERE id = ?", "I", (int64_t)id) == -1)
		return (db_failed(r));
	if (app_rows_count(rows) == 0)
		return (app_error(r, 500, "note %lld vanished", id));
	snprintf(loc, sizeof(loc), "%s/%lld", app_path(req), id);
	app_status(r, 201);
	app_header_add(r, "Location", loc);
	note_json(r, rows, 0);
	return (0);
}

static int
notes_delete(struct app_req *req, struct app_resp *r, long long id)
{
	struct app_rows	*rows;

	if (app_db_query(db, req, APP_DB_WRITE, &rows, "DELETE FROM notes "
	    "WHERE id = ?", "I", (int64_t)id) == -1)
		return (db_failed(r));
	if (app_rows_changes(rows) == 0)
		return (app_error(r, 404, "no note %lld", id));
	app_status(r, 204);
	return (0);
}

static int
notes_whoami(struct app_req *req, struct app_resp *r)
{
	struct app_rows	*rows;
	const char	*node;

	if (app_db_query(db, req, APP_DB_READ, &rows, "SELECT count(*) FROM "
	    "notes", NULL) == -1)
		return (db_failed(r));
	node = app_rows_node(rows);
	app_json_object(r);
	app_json_key(r, "instance");
	app_json_string(r, app_instance());
	app_json_key(r, "app");
	app_json_string(r, app_conf_name(conf));
	app_json_key(r, "pid");
	app_json_int(r, (long long)getpid());
	app_json_key(r, "db_node");
	app_json_string(r, node ? node : "");
	app_json_key(r, "db_lsn");
	app_json_int(r, (long long)app_rows_lsn(rows));
	app_json_key(r, "session_lsn");
	app_json_int(r, (long long)app_req_lsn(req));
	app_json_key(r, "notes");
	app_json_int(r, app_rows_int(rows, 0, 0));
	app_json_end(r);
	return (0);
}

static int
method_not_allowed(struct app_resp *r, const char *allow)
{
	app_header_add(r, "Allow", allow);
	return (app_error(r, 405, "allowed: %s", allow));
}

static int
notes_handle(struct app_req *req, struct app_resp *r)
{
	const char	*p = app_subpath(req), *m = app_method(req);
	long long	 id;

	if (ensure_table() == -1)
		return (db_failed(r));
	if (strcmp(p, "/notes") == 0 || strcmp(p, "/notes/") == 0) {
		if (strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0)
			return (notes_list(req, r));
		if (strcmp(m, "POST") == 0)
			return (notes_create(req, r));
		return (method_not_allowed(r, "GET, HEAD, POST"));
	}
	if (strncmp(p, "/notes/", 7) == 0) {
		if ((id = parse_id(p + 7)) == -1)
			return (app_error(r, 404, "no note %s", p + 7));
		if (strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0)
			return (notes_get(req, r, id));
		if (strcmp(m, "DELETE") == 0)
			return (notes_delete(req, r, id));
		return (method_not_allowed(r, "GET, HEAD, DELETE"));
	}
	if (strcmp(p, "/whoami") == 0) {
		if (strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0)
			return (notes_whoami(req, r));
		return (method_not_allowed(r, "GET, HEAD"));
	}
	return (app_error(r, 404, "no such resource"));
}

const struct app_module app_module = {
	"notes", notes_init, notes_handle, NULL, APP_ABI
};
