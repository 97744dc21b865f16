/*
 * stats_page.c: lbd's own listener: "/" the statistics page (HTML,
 * refreshing itself, a row per frontend, backend and server), "/metrics"
 * (Prometheus: the shared counters and histograms, and the servers'
 * state read from shared memory when asked), "/healthz" (200 while lbd
 * runs: keepalived tracks it).
 */
#include <sys/types.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "lbd.h"

struct stats_srv {
	struct http_server	 srv;
	struct lbd_conf		*lc;
};

struct sreq {
	struct buf		*rest;
};

static void
html(struct buf *b, const char *s)
{
	for (; *s; s++)
		switch (*s) {
		case '&':
			buf_append(b, "&amp;", 5);
			break;
		case '<':
			buf_append(b, "&lt;", 4);
			break;
		case '>':
			buf_append(b, "&gt;", 4);
			break;
		case '"':
			buf_append(b, "&quot;", 6);
			break;
		default:
			buf_putc(b, *s);
		}
}

/* Prometheus label values: \ " and newline escaped. */
static void
label(struct buf *b, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			buf_putc(b, '\\');
		if (*s == '\n') {
			buf_append(b, "\\n", 2);
			continue;
		}
		buf_putc(b, *s);
	}
}

/*
 * The servers of <be> (its backups when <backup>) that take traffic: up,
 * ready, of a weight above 0, as HAProxy counts the "active servers
 * left".  Those passively set aside for a moment after errors count: it
 * is not a state.
 */
int
lbd_nup(struct lbd_backend *be, int backup)
{
	struct up_shared	*sh;
	int			 i, n = 0;

	for (i = 0; i < be->pc.pool->nservers; i++) {
		sh = be->pc.pool->servers[i]->sh;
		if (!be->pc.pool->servers[i]->backup == !backup &&
		    atomic_load(&sh->health) == UP_HEALTHY &&
		    atomic_load(&sh->admin) == UP_READY &&
		    atomic_load(&sh->weight) > 0)
			n++;
	}
	return (n);
}

static int
state_code(const struct up_server *s)
{
	/* HAProxy's haproxy_server_status: 0 DOWN 1 UP 2 MAINT 3 DRAIN */
	switch (atomic_load(&s->sh->admin)) {
	case UP_MAINT:
		return (2);
	case UP_DRAIN:
		return (3);
	}
	if (atomic_load(&s->sh->health) == UP_DOWN)
		return (0);
	/* weight 0 takes no new requests: HAProxy shows it as DRAIN */
	return (atomic_load(&s->sh->weight) == 0 ? 3 : 1);
}

static void
metrics(struct lbd_conf *lc, struct buf *b)
{
	struct lbd_backend	*be;
	int			 i, f;
	static const struct {
		const char	*name, *help, *type;
	} fam[] = {
		{ "lbd_server_up", "1 when the server takes traffic (UP and "
		    "ready), else 0.", "gauge" },
		{ "lbd_server_status", "0 DOWN, 1 UP, 2 MAINT, 3 DRAIN "
		    "(as haproxy_server_status).", "gauge" },
		{ "lbd_server_weight", "The server's current weight.",
		    "gauge" },
		{ "lbd_server_current_sessions", "Connections open to the "
		    "server, all workers.", "gauge" },
		{ "lbd_server_last_check_timestamp_seconds", "When the last "
		    "health check ended (0: none yet).", "gauge" },
		{ "lbd_server_check_status", "The last check's HTTP status, "
		    "or 0.", "gauge" },
		{ "lbd_server_connection_errors_total", "Connections to the "
		    "server that failed (refused, timed out, reset before an "
		    "answer).", "counter" },
	};

	stats_render(b, "lbd_");
	for (f = 0; f < (int)nitems(fam); f++) {
		buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", fam[f].name,
		    fam[f].help, fam[f].name, fam[f].type);
		TAILQ_FOREACH(be, &lc->backends, entry)
			for (i = 0; i < be->pc.pool->nservers; i++) {
				struct up_server *s = be->pc.pool->servers[i];
				long long	  v = 0;

				switch (f) {
				case 0:
					v = state_code(s) == 1;
					break;
				case 1:
					v = state_code(s);
					break;
				case 2:
					v = atomic_load(&s->sh->weight);
					break;
				case 3:
					v = shm_count_get(&s->sh->conns);
					break;
				case 4:
					/* none where the check is gone */
					if (be->check.type != CHECK_NONE)
						v = atomic_load(
						    &s->sh->last_check) / 1000;
					break;
				case 5:
					if (be->check.type != CHECK_NONE)
						v = atomic_load(
						    &s->sh->check_code);
					break;
				case 6:
					v = atomic_load(&s->sh->errors);
					break;
				}
				buf_printf(b, "%s{backend=\"", fam[f].name);
				label(b, be->name);
				buf_printf(b, "\",server=\"");
				label(b, s->name);
				buf_printf(b, "\"} %lld\n", v);
			}
	}
}

static void
page(struct lbd_conf *lc, struct buf *b)
{
	struct lbd_frontend	*fe;
	struct lbd_backend	*be;
	int			 i, k;
	time_t			 now = time(NULL);

	buf_printf(b, "<!doctype html>\n<html><head><meta charset=\"utf-8\">"
	    "<meta http-equiv=\"refresh\" content=\"%d\"><title>lbd "
	    "statistics</title><style>body{font-family:sans-serif}"
	    "table{border-collapse:collapse;margin-bottom:1em}"
	    "td,th{border:1px solid #999;padding:2px 6px;text-align:right}"
	    "th{background:#ddd}.DOWN{background:#f99}.UP{background:#9f9}"
	    ".DRAIN,.MAINT{background:#fd9}.FAILING{background:#fc9}</style>"
	    "</head><body><h1>lbd</h1>\n", lc->stats_refresh);
	buf_printf(b, "<table><tr><th>frontend</th><th>sessions</th>"
	    "<th>1xx</th><th>2xx</th><th>3xx</th><th>4xx</th><th>5xx</th>"
	    "<th>bytes in</th><th>bytes out</th><th>denied</th>"
	    "<th>limited</th></tr>\n");
	TAILQ_FOREACH(fe, &lc->frontends, entry) {
		buf_printf(b, "<tr><td>");
		html(b, fe->name);
		buf_printf(b, "</td><td>%lld</td>",
		    (long long)stats_gauge_value(fe->m_sessions));
		for (k = 1; k <= 5; k++)
			buf_printf(b, "<td>%llu</td>", (unsigned long long)
			    stats_counter_value(fe->m_req[k]));
		buf_printf(b, "<td>%llu</td><td>%llu</td><td>%llu</td>"
		    "<td>%llu</td></tr>\n",
		    (unsigned long long)stats_counter_value(fe->m_bytes_in),
		    (unsigned long long)stats_counter_value(fe->m_bytes_out),
		    (unsigned long long)stats_counter_value(fe->m_denied),
		    (unsigned long long)stats_counter_value(fe->m_limited));
	}
	buf_printf(b, "</table>\n");
	TAILQ_FOREACH(be, &lc->backends, entry) {
		buf_printf(b, "<h2>backend ");
		html(b, be->name);
		buf_printf(b, " (%s, %d up, %lld waiting)</h2>\n<table><tr>"
		    "<th>server</th><th>address</th><th>state</th>"
		    "<th>weight</th><th>sessions</th><th>requests</th>"
		    "<th>errors</th><th>last check</th><th>result</th></tr>\n",
		    be->pc.pool->lb->name, lbd_nup(be, 0),
		    (long long)stats_gauge_value(be->pc.m_queued));
		for (i = 0; i < be->pc.pool->nservers; i++) {
			struct up_server *s = be->pc.pool->servers[i];
			int64_t		  lc_ms = atomic_load(
					    &s->sh->last_check);
			char		  ago[32];

			if (lc_ms == 0 || be->check.type == CHECK_NONE)
				snprintf(ago, sizeof(ago), "-");
			else
				snprintf(ago, sizeof(ago), "%llds ago",
				    (long long)(now - lc_ms / 1000));
			buf_printf(b, "<tr><td>");
			html(b, s->name);
			buf_printf(b, "%s</td><td>", s->backup ? " (backup)" :
			    "");
			html(b, s->addr.text);
			buf_printf(b, "</td><td class=\"%s\">%s</td><td>%d"
			    "</td><td>%d</td><td>%llu</td><td>%llu</td>"
			    "<td>%s</td><td>", up_state_name(s),
			    up_state_name(s), atomic_load(&s->sh->weight),
			    shm_count_get(&s->sh->conns), (unsigned long long)
			    stats_counter_value(be->srvstats[i].requests),
			    (unsigned long long)atomic_load(&s->sh->errors),
			    ago);
			html(b, be->check.type == CHECK_NONE ? "no check" :
			    s->sh->check_desc);
			buf_printf(b, "</td></tr>\n");
		}
		buf_printf(b, "</table>\n");
	}
	buf_printf(b, "</body></html>\n");
}

static void
s_send(struct http_req *req, struct buf *b)
{
	struct sreq	*sr = req->ud;
	size_t		 n;

	while (buf_used(b) > 0) {
		n = http_resp_write(req, buf_head(b), buf_used(b));
		if (n == 0)
			break;
		buf_consume(b, n);
	}
	if (buf_used(b) > 0) {
		sr->rest = b;
		return;
	}
	buf_free(b);
	free(b);
	http_resp_end(req);
}

static void
s_request(struct http_req *req)
{
	struct stats_srv	*ss = (struct stats_srv *)req->conn->srv;
	struct slice		 t = http_req_path(req);
	struct sreq		*sr;
	struct buf		*b;
	const char		*type;
	int			 status = 200;

	if ((sr = calloc(1, sizeof(*sr))) == NULL ||
	    (b = calloc(1, sizeof(*b))) == NULL) {
		free(sr);
		http_resp_error(req, 500);
		return;
	}
	req->ud = sr;
	buf_init(b, 64 * 1024 * 1024);
	if (req->msg.method != HTTP_M_GET && req->msg.method != HTTP_M_HEAD) {
		free(b);
		http_resp_begin(req, 405);
		http_resp_header(req, "Allow", "GET, HEAD");
		http_resp_body(req, 0);
		http_resp_end(req);
		return;
	}
	/* /healthz stays open: keepalived's check has no password */
	if (ss->lc->stats_auth != NULL && !slice_eq(t, "/healthz") &&
	    !auth_check(req, ss->lc->stats_auth)) {
		buf_free(b);
		free(b);
		auth_refuse(req, ss->lc->stats_auth, NULL, 0);
		return;
	}
	if (slice_eq(t, "/metrics")) {
		metrics(ss->lc, b);
		type = "text/plain; version=0.0.4; charset=utf-8";
	} else if (slice_eq(t, "/") || slice_eq(t, "/stats")) {
		page(ss->lc, b);
		type = "text/html; charset=utf-8";
	} else if (slice_eq(t, "/healthz")) {
		struct lbd_backend	*be;

		/*
		 * "healthz servers": this balancer is no use while a backend
		 * has no server it can reach, and the other one may have
		 * (keepalived moves the address on a 503)
		 */
		type = "text/plain";
		if (ss->lc->healthz_servers)
			TAILQ_FOREACH(be, &ss->lc->backends, entry)
				if (be->pc.pool->nservers > 0 &&
				    lbd_nup(be, 0) == 0 && lbd_nup(be, 1) == 0) {
					buf_printf(b, "backend %s has no server "
					    "available\n", be->name);
					status = 503;
					break;
				}
		if (status == 200)
			buf_printf(b, "ok\n");
	} else {
		buf_free(b);
		free(b);
		http_resp_error(req, 404);
		return;
	}
	http_resp_begin(req, status);
	http_resp_header(req, "Content-Type", type);
	http_resp_header(req, "Cache-Control", "no-store");
	http_resp_body(req, buf_used(b));
	s_send(req, b);
}

static void
s_drain(struct http_req *req)
{
	struct sreq	*sr = req->ud;
	struct buf	*b;

	if (sr == NULL || sr->rest == NULL)
		return;
	b = sr->rest;
	sr->rest = NULL;
	s_send(req, b);
}

static void
s_done(struct http_req *req)
{
	struct sreq	*sr = req->ud;

	if (sr == NULL)
		return;
	if (sr->rest != NULL) {
		buf_free(sr->rest);
		free(sr->rest);
	}
	free(sr);
	req->ud = NULL;
}

static const struct http_handler stats_handler = {
	s_request, NULL, NULL, s_drain, s_done
};

struct http_server *
stats_server(struct lbd_conf *lc)
{
	struct stats_srv	*ss;

	if ((ss = calloc(1, sizeof(*ss))) == NULL)
		fatal("%s", __func__);
	ss->lc = lc;
	ss->srv.lim = &http_default_limits;
	ss->srv.handler = &stats_handler;
	ss->srv.acl = lc->stats_acl.nrules ? &lc->stats_acl : NULL;
	return (&ss->srv);
}

void
stats_server_free(struct http_server *srv)
{
	free(srv);
}
