/*
 * app.h: the interface between appd and the applications it runs.
 *
 * This header is the reference of the application API.  An application
 * is a shared object (cc -shared -fPIC -o notes.so notes.c) that
 * includes only this header and exports one symbol:
 *
 *	const struct app_module app_module = {
 *		"notes", notes_init, notes_handle, notes_fini, APP_ABI
 *	};
 *
 * appd.conf names the object and gives it a settings block:
 *
 *	app notes {
 *		module "/usr/local/lib/appd/notes.so"
 *		set page-size 20
 *		database "primary=unix:/var/run/dbrepd.sock"
 *	}
 *	route "/api/" app notes
 *
 * Life cycle.  Every worker process loads the object when it starts
 * (so a reload, which starts new workers, runs the new code) and calls
 * init() once, after privileges are dropped; a non-zero return stops the
 * worker (and refuses a reload).  Then handle() runs once per request,
 * one request at a time per process: the application needs no locks,
 * and may keep state in globals, but that state is per worker process
 * and lost when the worker is recycled.  fini() runs when the worker
 * leaves gracefully (never after a crash or a timeout kill).
 *
 * The application never touches sockets: it reads the request through
 * the app_* accessors and builds the response with the app_* builders;
 * appd frames it (Content-Length, Date, Connection) and sends it once
 * handle() has returned.  handle() returns 0 when it built a response,
 * an HTTP status (400..599) to have appd answer a short JSON error with
 * it, or -1 for a 500.  A crash in handle() kills only its worker: that
 * request gets no answer (webd answers 502) and the worker is replaced.
 * A request running longer than appd's request-timeout is answered 504
 * and its worker replaced.
 *
 * Memory.  Every pointer the accessors return stays valid until handle()
 * returns, and is freed by appd; app_rows are freed at the end of the
 * request too unless app_rows_free() was called earlier (those obtained
 * without a request, in init(), must be freed by the application).
 * Strings are NUL-terminated; bodies and decoded values may contain NUL
 * bytes, which the variants with a length pointer report.
 *
 * Errors.  Functions returning int return 0 on success and -1 on
 * failure (out of memory, an invalid header name or value, a misused
 * JSON writer); a response whose building failed is replaced by a 500.
 */
#ifndef APPD_APP_H
#define APPD_APP_H

#include <stddef.h>
#include <stdint.h>

#define APP_ABI		1	/* of this header; 0 in a module means 1 */

struct app_conf;		/* the module's settings block */
struct app_req;			/* the request being handled */
struct app_resp;		/* its response */
struct app_db;			/* the module's database handle */
struct app_rows;		/* what a query returned */

struct app_module {
	const char	*name;
	/* once per worker, after privileges are dropped: 0 or -1 */
	int		(*init)(const struct app_conf *);
	/* once per request: 0, an HTTP status, or -1 (500) */
	int		(*handle)(struct app_req *, struct app_resp *);
	/* when the worker leaves gracefully (may be NULL) */
	void		(*fini)(const struct app_conf *);
	int		 abi;		/* APP_ABI */
};

/*
 * Settings: "set NAME VALUE" lines of the module's block.  app_conf_get
 * returns NULL when the setting is absent; app_conf_int returns <def>
 * when it is absent or not an integer.
 */
const char	*app_conf_name(const struct app_conf *);	/* "notes" */
const char	*app_conf_get(const struct app_conf *, const char *);
long long	 app_conf_int(const struct app_conf *, const char *, long long);
/* appd's "name" (the instance, for logs and /whoami pages) */
const char	*app_instance(void);
/* syslog through appd, under its name and pid: LOG_ERR, LOG_INFO... */
void		 app_log(int, const char *, ...)
		    __attribute__((__format__(__printf__, 2, 3)));

/*
 * The request.
 *
 * app_method	"GET", "POST"...
 * app_path	the decoded, normalized path: "/api/notes/12"
 * app_subpath	the path below the route's prefix, starting with "/":
 *		"/notes/12" for the route "/api/"
 * app_query_string  the raw query, without "?", "" when none
 * app_query	a query parameter, percent- and "+"-decoded; the first
 *		one of that name; NULL when absent
 * app_header	a field value (the first field of that name, any case),
 *		NULL when absent
 * app_cookie	a cookie of the Cookie fields, NULL when absent
 * app_body	the request body (NUL-terminated, <len> may be NULL),
 *		"" when none; appd has read all of it, within max-body-size
 * app_form	a field of an application/x-www-form-urlencoded body
 * app_json_body   1 when the body is a JSON object, else 0
 * app_json_field  a member of that object: strings decoded (\u escapes
 *		to UTF-8), numbers, true, false and null as their text;
 *		NULL when absent or when it is an object or an array
 * app_client_addr  the client's IP address: the peer's, or, when the
 *		peer is a trusted proxy (appd.conf trusted-proxy), the
 *		last address of X-Forwarded-For that is not a trusted proxy
 * app_client_gone  1 once the client has shut its sending side (its
 *		FIN: webd closes the connection when its own client
 *		leaves), else 0: for a long handler to stop early,
 *		returning 499 (the status nginx logs for a client that
 *		left).  PHP's connection_aborted().  A client that only
 *		half-closed (straight to appd, or through a TCP relay)
 *		counts as gone too, as for CGI programs.  appd itself
 *		never interrupts handle().
 */
const char	*app_method(const struct app_req *);
const char	*app_path(const struct app_req *);
const char	*app_subpath(const struct app_req *);
const char	*app_query_string(const struct app_req *);
const char	*app_query(struct app_req *, const char *);
const char	*app_header(struct app_req *, const char *);
const char	*app_cookie(struct app_req *, const char *);
const char	*app_body(const struct app_req *, size_t *);
const char	*app_form(struct app_req *, const char *, size_t *);
int		 app_json_body(struct app_req *);
const char	*app_json_field(struct app_req *, const char *, size_t *);
const char	*app_client_addr(struct app_req *);
int		 app_client_gone(struct app_req *);

/*
 * The response.  The status is 200 unless set; Content-Type defaults to
 * "text/plain; charset=utf-8" for a body written with app_write and to
 * "application/json" for one written with the JSON writer.  appd sets
 * Date, Content-Length and Connection itself and refuses them here, as
 * it refuses names that are not tokens and values with control bytes.
 */
void		 app_status(struct app_resp *, int);
int		 app_header_add(struct app_resp *, const char *, const char *);
int		 app_cookie_set(struct app_resp *, const char *, const char *,
		    const char *);		/* attributes, or NULL */
int		 app_write(struct app_resp *, const void *, size_t);
int		 app_puts(struct app_resp *, const char *);
int		 app_printf(struct app_resp *, const char *, ...)
		    __attribute__((__format__(__printf__, 2, 3)));
/* status, and {"error": "<message>"} as the body */
int		 app_error(struct app_resp *, int, const char *, ...)
		    __attribute__((__format__(__printf__, 3, 4)));

/*
 * The JSON writer appends to the response body.  Commas and colons are
 * placed by the writer; app_json_key must come before each value of an
 * object.  Strings are escaped as RFC 8259 requires: quote, backslash
 * and the control characters U+0000..U+001F (as \n, \t... or \u00XX),
 * also U+007F and U+2028/U+2029 for the sake of JavaScript, and every
 * byte sequence that is not valid UTF-8 (overlong forms, surrogates,
 * truncated sequences, bytes above U+10FFFF) is replaced by U+FFFD, one
 * per maximal invalid subpart.  Non-finite reals are written as null.
 */
int		 app_json_object(struct app_resp *);
int		 app_json_array(struct app_resp *);
int		 app_json_end(struct app_resp *);	/* closes either */
int		 app_json_key(struct app_resp *, const char *);
int		 app_json_string(struct app_resp *, const char *);
int		 app_json_stringn(struct app_resp *, const char *, size_t);
int		 app_json_int(struct app_resp *, long long);
int		 app_json_real(struct app_resp *, double);
int		 app_json_bool(struct app_resp *, int);
int		 app_json_null(struct app_resp *);

/*
 * The database: dbrepd, through its client library, as the module's
 * "database" line names it (NULL when it has none).  One query is one
 * statement run as one transaction.
 *
 * APP_DB_WRITE goes to the primary.  When <req> is given, the LSN of
 * the commit is remembered for the rest of the request and sent back to
 * the client in a cookie (the module's lsn-cookie, "appd_lsn" by
 * default).  APP_DB_READ goes to a replica (the primary when none
 * answers) and waits there until it has applied the session's LSN: the
 * highest of the cookie's and of this request's writes, so that a client
 * reads its own writes on any app server; a replica that does not get
 * there within lsn-wait is left for the primary.
 *
 * <types> gives the parameters bound to the statement's placeholders,
 * one letter each: 'i' int, 'I' int64_t, 'r' double, 't' a
 * NUL-terminated string (NULL binds NULL), 'T' a string and its length
 * (const char *, size_t), 'b' a blob (const void *, size_t), 'n' NULL
 * (no argument).  Returns 0 with *<rows> set (which may be NULL when the
 * caller does not want them), or -1: app_db_error() and
 * app_db_errcode() tell why (SQLite's code, or dbrep.h's DBREP_E*).
 */
#define APP_DB_WRITE	1
#define APP_DB_READ	2

/* value types, as SQLite's */
#define APP_NULL	0
#define APP_INTEGER	1
#define APP_REAL	2
#define APP_TEXT	3
#define APP_BLOB	4

struct app_db	*app_conf_db(const struct app_conf *);
int		 app_db_query(struct app_db *, struct app_req *, int,
		    struct app_rows **, const char *, const char *, ...);
const char	*app_db_error(const struct app_db *);
int		 app_db_errcode(const struct app_db *);
uint64_t	 app_req_lsn(struct app_req *);	/* the session's LSN */

size_t		 app_rows_count(const struct app_rows *);
int		 app_rows_columns(const struct app_rows *);
const char	*app_rows_name(const struct app_rows *, int);
int		 app_rows_type(const struct app_rows *, size_t, int);
long long	 app_rows_int(const struct app_rows *, size_t, int);
double		 app_rows_real(const struct app_rows *, size_t, int);
/* TEXT and BLOB bytes (NULL for NULL), their length in <len> */
const char	*app_rows_text(const struct app_rows *, size_t, int, size_t *);
long long	 app_rows_changes(const struct app_rows *);
long long	 app_rows_rowid(const struct app_rows *);
uint64_t	 app_rows_lsn(const struct app_rows *);	/* node's, or commit */
/* the node that answered */
const char	*app_rows_node(const struct app_rows *);
void		 app_rows_free(struct app_rows *);

#endif
