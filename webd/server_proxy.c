/*
 * server_proxy.c: locations that pass requests to an upstream (appd),
 * through common/'s proxy core.  The request body is read whole first
 * (in memory up to buffer-request, then in a temporary file) and the
 * response is taken as fast as the upstream gives it (up to
 * buffer-response), so that a slow client never holds an app worker.
 */
#include <sys/types.h>

#include <stdlib.h>

#include "log.h"
#include "webd.h"

/*
 * The location a proxied request went through, kept in its connection
 * while the proxy owns the request (one request at a time per
 * connection), for the hooks below.
 */
static struct webd_loc *
px_loc(struct http_req *req)
{
	return (req->conn->ud);
}

static const struct sockaddr *
px_client(void *arg, struct http_req *req)
{
	return (server_client(req));
}

/* An upstream field the location sets itself is replaced by it. */
static int
px_resp_filter(void *arg, struct http_req *req, struct slice name,
    struct slice value)
{
	struct webd_loc	*l = px_loc(req);
	int		 i;

	if (l == NULL)
		return (1);
	for (i = 0; i < l->nheaders; i++)
		if (slice_caseeq(name, l->headers[i].name))
			return (0);
	if (l->srv->hsts >= 0 && req->conn->srv->scheme_https &&
	    slice_caseeq(name, "strict-transport-security"))
		return (0);
	return (1);
}

/* The location's fields and HSTS, as on the files it serves. */
static void
px_resp_add(void *arg, struct http_req *req, const struct proxy_info *info)
{
	struct webd_loc	*l = px_loc(req);

	if (l != NULL)
		server_headers(req, l->srv, l);
}

/* 502, 503, 504: the location's error page, or webd's own. */
static int
px_error(void *arg, struct http_req *req, int status)
{
	struct webd_loc	*l = px_loc(req);

	if (l == NULL)
		return (0);
	server_error(req, l->srv, l, status);
	return (1);
}

static void
px_done(void *arg, struct http_req *req, const struct proxy_info *info)
{
	struct webd_upstream	*u = arg;
	struct webd_loc		*l = px_loc(req);
	int			 st = info->status ? info->status :
				    req->status;

	/* the client left before an answer began: nginx's 499 */
	if (st == 0)
		st = 499;
	if (st == 502 || st == 503 || st == 504)
		stats_inc(u->m_errors);
	access_log(req, l != NULL ? l->srv : NULL, st, req->bytes_out,
	    info->head ? (int64_t)info->t_response : -1);
	req->conn->ud = NULL;
}

void
proxy_hooks(struct webd_upstream *u)
{
	u->pc.client_addr = px_client;
	u->pc.resp_filter = px_resp_filter;
	u->pc.resp_add = px_resp_add;
	u->pc.error = px_error;
	u->pc.done = px_done;
	u->pc.arg = u;
}

/*
 * Pass <req> to <u>: <l>'s proxy, or its try-files' last entry.  The
 * target goes to the app as the client sent it; one that dot segments
 * (".." or "%2e%2e") made route here could mean another path to an app
 * that does not resolve them: /admin/%2e%2e/api/x passed the /api/
 * location's rules.
 */
void
server_proxy(struct http_req *req, struct webd_server *s, struct webd_loc *l,
    struct webd_upstream *u, struct http_target *t)
{
	struct wreq	*w = req->ud;

	if (t->dotseg) {
		log_debug("%s: dot segment in a proxied path", s->name);
		server_error(req, s, l, 400);
		return;
	}

	/* the proxy keeps its own state; it logs through px_done */
	if (w != NULL) {
		file_free(w);
		free(w);
	}
	req->ud = NULL;
	req->conn->ud = l;
	proxy_start(req, &u->pc);
}
