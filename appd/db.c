/*
 * db.c: the database handle of app.h, on dbrepd's client library.
 *
 * Each worker opens its own dbrep handle per module on first use (the
 * library keeps its connections open between requests).  Writes go to
 * the primary and their LSN is remembered in the request, to be sent
 * back in the module's lsn-cookie; reads go to a replica no older than
 * the session's LSN (the cookie's, or this request's writes), and to the
 * primary when the replica does not get there within lsn-wait.
 */
#include <sys/types.h>

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "appd.h"
#include "dbrep.h"
#include "log.h"

struct app_db {
	struct app_conf		*app;
	struct dbrep		*h;
	struct dbrep_error	 err;
};

struct app_rows {
	struct dbrep_result	*res;
	struct app_req		*req;		/* frees it at its end */
	struct app_rows		*next;
};

struct app_db *
app_conf_db(const struct app_conf *cc)
{
	struct app_conf		*c = (struct app_conf *)cc;
	struct dbrep_error	 err;
	struct app_db		*db;

	if (c == NULL || c->db_nodes == NULL)
		return (NULL);
	if (c->db != NULL)
		return (c->db);
	if ((db = calloc(1, sizeof(*db))) == NULL)
		return (NULL);
	if ((db->h = dbrep_open(c->db_nodes, c->db_secret, &err)) == NULL) {
		log_warnx("app %s: database \"%s\": %s", c->name, c->db_nodes,
		    err.msg);
		free(db);
		return (NULL);
	}
	dbrep_set_timeout(db->h, c->db_timeout);
	dbrep_set_lsn_wait(db->h, c->lsn_wait);
	dbrep_set_busy_poll(db->h, c->db_busy_us);
	db->app = c;
	c->db = db;
	return (db);
}

void
db_close_all(struct appd_conf *ac)
{
	int	i;

	for (i = 0; i < ac->napps; i++) {
		struct app_db	*db = ac->apps[i]->db;

		if (db == NULL)
			continue;
		dbrep_close(db->h);
		free(db);
		ac->apps[i]->db = NULL;
	}
}

uint64_t
app_req_lsn(struct app_req *req)
{
	const char	*v, *errstr;

	if (!req->cookie_lsn_read) {
		req->cookie_lsn_read = 1;
		req->cookie_lsn = 0;
		if (req->app != NULL && req->app->lsn_cookie != NULL &&
		    (v = app_cookie(req, req->app->lsn_cookie)) != NULL) {
			req->cookie_lsn = strtonum(v, 0, INT64_MAX, &errstr);
			if (errstr != NULL)
				req->cookie_lsn = 0;
		}
	}
	return (req->cookie_lsn > req->write_lsn ? req->cookie_lsn :
	    req->write_lsn);
}

static int
bind_args(struct dbrep_req *r, const char *types, va_list ap)
{
	const char	*t, *s;
	const void	*b;
	size_t		 l;
	int		 rv = 0;

	for (t = types; t != NULL && *t != '\0' && rv == 0; t++) {
		switch (*t) {
		case 'i':
			rv = dbrep_req_int(r, va_arg(ap, int));
			break;
		case 'I':
			rv = dbrep_req_int(r, va_arg(ap, int64_t));
			break;
		case 'r':
			rv = dbrep_req_real(r, va_arg(ap, double));
			break;
		case 't':
			s = va_arg(ap, const char *);
			rv = s == NULL ? dbrep_req_null(r) :
			    dbrep_req_text(r, s, -1);
			break;
		case 'T':
			s = va_arg(ap, const char *);
			l = va_arg(ap, size_t);
			rv = dbrep_req_text(r, s, (ssize_t)l);
			break;
		case 'b':
			b = va_arg(ap, const void *);
			l = va_arg(ap, size_t);
			rv = dbrep_req_blob(r, b, l);
			break;
		case 'n':
			rv = dbrep_req_null(r);
			break;
		default:
			return (-2);
		}
	}
	return (rv);
}

int
app_db_query(struct app_db *db, struct app_req *req, int mode,
    struct app_rows **rows, const char *sql, const char *types, ...)
{
	struct dbrep_req	*r;
	struct dbrep_result	*res = NULL;
	struct app_rows		*ar;
	uint64_t		 min = 0, lsn;
	va_list			 ap;
	int			 rc;

	if (rows != NULL)
		*rows = NULL;
	if (db == NULL)
		return (-1);
	memset(&db->err, 0, sizeof(db->err));
	if ((mode != APP_DB_WRITE && mode != APP_DB_READ) || sql == NULL) {
		db->err.code = DBREP_EUSAGE;
		strlcpy(db->err.msg, "bad mode or statement",
		    sizeof(db->err.msg));
		return (-1);
	}
	if ((r = dbrep_req_new()) == NULL || dbrep_req_sql(r, sql) == -1) {
		dbrep_req_free(r);
		db->err.code = DBREP_EUSAGE;
		strlcpy(db->err.msg, "out of memory", sizeof(db->err.msg));
		return (-1);
	}
	va_start(ap, types);
	rc = bind_args(r, types, ap);
	va_end(ap);
	if (rc != 0) {
		dbrep_req_free(r);
		db->err.code = DBREP_EUSAGE;
		strlcpy(db->err.msg, rc == -2 ? "unknown parameter type" :
		    "out of memory", sizeof(db->err.msg));
		return (-1);
	}
	if (mode == APP_DB_READ && req != NULL)
		min = app_req_lsn(req);
	rc = dbrep_exec(db->h, mode == APP_DB_WRITE ? DBREP_PRIMARY :
	    DBREP_REPLICA, min, r, &res, &db->err);
	if (rc == -1 && mode == APP_DB_READ && db->err.code ==
	    DBREP_ELSNWAIT) {
		/* the replica lags: the primary has every write */
		log_debug("app %s: %s; reading from the primary",
		    db->app->name, db->err.msg);
		rc = dbrep_exec(db->h, DBREP_PRIMARY, min, r, &res, &db->err);
	}
	dbrep_req_free(r);
	if (rc == -1)
		return (-1);
	if (mode == APP_DB_WRITE && req != NULL &&
	    (lsn = dbrep_result_lsn(res)) > req->write_lsn)
		req->write_lsn = lsn;
	if (rows == NULL) {
		dbrep_result_free(res);
		return (0);
	}
	if ((ar = calloc(1, sizeof(*ar))) == NULL) {
		dbrep_result_free(res);
		db->err.code = DBREP_EUSAGE;
		strlcpy(db->err.msg, "out of memory", sizeof(db->err.msg));
		return (-1);
	}
	ar->res = res;
	if (req != NULL) {
		ar->req = req;
		ar->next = req->rows;
		req->rows = ar;
	}
	*rows = ar;
	return (0);
}

const char *
app_db_error(const struct app_db *db)
{
	return (db == NULL ? "no database" : db->err.msg);
}

int
app_db_errcode(const struct app_db *db)
{
	return (db == NULL ? DBREP_EUSAGE : db->err.code);
}

void
app_rows_free(struct app_rows *ar)
{
	struct app_rows	**pp;

	if (ar == NULL)
		return;
	if (ar->req != NULL)
		for (pp = &ar->req->rows; *pp != NULL; pp = &(*pp)->next)
			if (*pp == ar) {
				*pp = ar->next;
				break;
			}
	dbrep_result_free(ar->res);
	free(ar);
}

/* The request is over: free what it still holds. */
void
db_req_end(struct app_req *req)
{
	struct app_rows	*ar;

	while ((ar = req->rows) != NULL) {
		req->rows = ar->next;
		dbrep_result_free(ar->res);
		free(ar);
	}
}

size_t
app_rows_count(const struct app_rows *ar)
{
	return (ar == NULL ? 0 : dbrep_result_rows(ar->res, 0));
}

int
app_rows_columns(const struct app_rows *ar)
{
	return (ar == NULL ? 0 : dbrep_result_columns(ar->res, 0));
}

const char *
app_rows_name(const struct app_rows *ar, int col)
{
	return (ar == NULL ? NULL : dbrep_result_column_name(ar->res, 0,
	    col));
}

static const struct dbrep_value *
val(const struct app_rows *ar, size_t row, int col)
{
	return (ar == NULL ? NULL : dbrep_result_value(ar->res, 0, row, col));
}

int
app_rows_type(const struct app_rows *ar, size_t row, int col)
{
	const struct dbrep_value	*v = val(ar, row, col);

	return (v == NULL ? APP_NULL : v->type);
}

long long
app_rows_int(const struct app_rows *ar, size_t row, int col)
{
	const struct dbrep_value	*v = val(ar, row, col);

	if (v == NULL)
		return (0);
	if (v->type == DBREP_INTEGER)
		return (v->i);
	if (v->type == DBREP_REAL)
		return ((long long)v->r);
	if (v->type == DBREP_TEXT)
		return (strtoll(v->p, NULL, 10));
	return (0);
}

double
app_rows_real(const struct app_rows *ar, size_t row, int col)
{
	const struct dbrep_value	*v = val(ar, row, col);

	if (v == NULL)
		return (0);
	if (v->type == DBREP_REAL)
		return (v->r);
	if (v->type == DBREP_INTEGER)
		return ((double)v->i);
	if (v->type == DBREP_TEXT)
		return (strtod(v->p, NULL));
	return (0);
}

const char *
app_rows_text(const struct app_rows *ar, size_t row, int col, size_t *len)
{
	const struct dbrep_value	*v = val(ar, row, col);

	if (len != NULL)
		*len = 0;
	if (v == NULL || (v->type != DBREP_TEXT && v->type != DBREP_BLOB))
		return (NULL);
	if (len != NULL)
		*len = v->len;
	return (v->p);
}

long long
app_rows_changes(const struct app_rows *ar)
{
	return (ar == NULL ? 0 : dbrep_result_changes(ar->res));
}

long long
app_rows_rowid(const struct app_rows *ar)
{
	return (ar == NULL ? 0 : dbrep_result_rowid(ar->res));
}

uint64_t
app_rows_lsn(const struct app_rows *ar)
{
	return (ar == NULL ? 0 : dbrep_result_lsn(ar->res));
}

const char *
app_rows_node(const struct app_rows *ar)
{
	return (ar == NULL ? NULL : dbrep_result_node(ar->res));
}
