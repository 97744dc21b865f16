/*
 * http_metrics.c: the /metrics endpoint (see http_metrics.h).
 */
#include <sys/types.h>

#include <stdlib.h>
#include <string.h>

#include "http_metrics.h"
#include "log.h"
#include "stats.h"

struct metrics_srv {
	struct http_server	 srv;
	char			*prefix;
	void			(*refresh)(void *);
	void			*arg;
};

static void
m_request(struct http_req *req)
{
	struct metrics_srv	*ms = (struct metrics_srv *)req->conn->srv;
	struct slice		 t = http_req_path(req);
	struct buf		 b;

	if (req->msg.method != HTTP_M_GET && req->msg.method != HTTP_M_HEAD) {
		http_resp_begin(req, 405);
		http_resp_header(req, "Allow", "GET, HEAD");
		http_resp_body(req, 0);
		http_resp_end(req);
		return;
	}
	if (slice_eq(t, "/")) {
		static const char page[] = "<!doctype html><title>metrics"
		    "</title><a href=\"/metrics\">/metrics</a>\n";

		http_resp_simple(req, 200, "text/html", page,
		    sizeof(page) - 1);
		return;
	}
	if (!slice_eq(t, "/metrics")) {
		http_resp_error(req, 404);
		return;
	}
	if (ms->refresh != NULL)
		ms->refresh(ms->arg);
	buf_init(&b, 64 * 1024 * 1024);
	if (stats_render(&b, ms->prefix) == -1) {
		buf_free(&b);
		http_resp_error(req, 500);
		return;
	}
	http_resp_begin(req, 200);
	http_resp_header(req, "Content-Type",
	    "text/plain; version=0.0.4; charset=utf-8");
	http_resp_body(req, buf_used(&b));
	http_resp_send_buf(req, &b);
}

static const struct http_handler metrics_handler = {
	m_request, NULL, NULL, http_resp_buf_drain, http_resp_buf_done
};

/*
 * A server for /metrics showing the families named <prefix>*.  <refresh>
 * (optional) runs before each rendering, to update gauges.
 */
struct http_server *
http_metrics_server(const char *prefix, struct net_acl *acl,
    void (*refresh)(void *), void *arg)
{
	struct metrics_srv	*ms;

	if ((ms = calloc(1, sizeof(*ms))) == NULL ||
	    (ms->prefix = strdup(prefix)) == NULL)
		fatal("%s", __func__);
	ms->srv.lim = &http_default_limits;
	ms->srv.handler = &metrics_handler;
	ms->srv.acl = acl;
	ms->refresh = refresh;
	ms->arg = arg;
	return (&ms->srv);
}

void
http_metrics_free(struct http_server *srv)
{
	struct metrics_srv	*ms = (struct metrics_srv *)srv;

	if (ms == NULL)
		return;
	free(ms->prefix);
	free(ms);
}
