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

static const struct sockaddr *
px_client(void *arg, struct http_req *req)
{
	return (server_client(req));
}

static void
px_done(void *arg, struct http_req *req, const struct proxy_info *info)
{
	struct webd_upstream	*u = arg;
	struct webd_listener	*wl = (struct webd_listener *)req->conn->srv;
	struct webd_server	*s = server_find(wl, req);
	int			 st = info->status ? info->status :
				    req->status;

	if (st == 502 || st == 503 || st == 504)
		stats_inc(u->m_errors);
	access_log(req, s, st, req->bytes_out);
}

void
proxy_hooks(struct webd_upstream *u)
{
	u->pc.client_addr = px_client;
	u->pc.done = px_done;
	u->pc.arg = u;
}

void
server_proxy(struct http_req *req, struct webd_server *s, struct webd_loc *l)
{
	struct wreq	*w = req->ud;

	/* the proxy keeps its own state; it logs through px_done */
	if (w != NULL) {
		file_free(w);
		free(w);
	}
	req->ud = NULL;
	proxy_start(req, &l->proxy->pc);
}
