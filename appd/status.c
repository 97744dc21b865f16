/*
 * status.c: the status process.  A helper process of its own (a role of
 * common/proc), on the event-driven HTTP engine, with a listener of its
 * own ("status" in appd.conf), so that it answers even when every worker
 * is busy:
 *
 *	/status		the pool, php-fpm's fields, and a line per worker
 *	/status?json	the same in JSON
 *	/metrics	Prometheus text: the shared statistics and the
 *			scoreboard's gauges, per worker too
 *	/ping		"pong"
 *
 * Everything comes from shared memory: the scoreboard and the stats
 * segment; the listen queue is read from the listening sockets.
 */
#include <sys/types.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "appd.h"
#include "http_worker.h"
#include "log.h"

struct status_srv {
	struct http_server	 srv;
	struct appd_conf	*ac;
};

struct wrow {
	int		 slot;
	pid_t		 pid;
	int		 id;
	int		 generation;
	int		 state;
	uint64_t	 requests;
	uint64_t	 duration;	/* ms of the request in progress */
	uint64_t	 rss;
	char		 line[APPD_REQLINE];
};

struct snap {
	int		 active, idle, total;
	int		 queue, queue_max, queue_len;
	uint64_t	 start;
	struct wrow	 rows[STATS_SLOTS];
	int		 nrows;
};

static struct proc_worker	*self;
static struct http_worker	 hw;

int
status_count(void *p)
{
	struct appd_conf	*ac = p;

	return (ac->status != NULL ? 1 : 0);
}

static void
snapshot(struct appd_conf *ac, struct snap *sn)
{
	struct board		*b = ac->board;
	struct board_slot	*s;
	struct wrow		*r;
	uint64_t		 now = ev_monotonic_ms(), start;
	int			 i, q, max;

	memset(sn, 0, sizeof(*sn));
	sn->start = atomic_load(&b->start_time);
	for (i = 1; i < STATS_SLOTS; i++) {
		s = &b->slots[i];
		if (atomic_load(&s->pid) == 0 ||
		    atomic_load(&s->state) == W_FREE)
			continue;
		r = &sn->rows[sn->nrows++];
		r->slot = i;
		r->pid = atomic_load(&s->pid);
		r->id = atomic_load(&s->id);
		r->generation = atomic_load(&s->generation);
		r->state = atomic_load(&s->state);
		r->requests = atomic_load(&s->requests);
		r->rss = atomic_load(&s->rss);
		start = atomic_load(&s->req_start);
		if (board_active(r->state) && start != 0 && start <= now)
			r->duration = now - start;
		board_get_line(s, r->line, sizeof(r->line));
		if (board_active(r->state))
			sn->active++;
		else if (board_idle(r->state))
			sn->idle++;
	}
	sn->total = sn->active + sn->idle;
	for (i = 0; self != NULL && i < self->ps->nlisteners; i++)
		if (appd_is_worker_listener(ac, &self->ps->listeners[i]) &&
		    listen_queue(self->ps->listeners[i].fd,
		    self->ps->listeners[i].addr.family, &q, &max) == 0) {
			sn->queue += q;
			sn->queue_len += max;
		}
	sn->queue_max = atomic_load(&b->max_listen_queue);
	if (sn->queue > sn->queue_max)
		sn->queue_max = sn->queue;
}

static const char *
pool_name(struct appd_conf *ac)
{
	return (ac->pool == POOL_STATIC ? "static" : "dynamic");
}

static void
status_text(struct appd_conf *ac, struct snap *sn, struct buf *b)
{
	char		 when[64];
	time_t		 t = (time_t)sn->start;
	struct tm	 tm;
	int		 i;

	gmtime_r(&t, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	buf_printf(b, "instance:             %s\n", ac->name);
	buf_printf(b, "process manager:      %s\n", pool_name(ac));
	buf_printf(b, "start time:           %s\n", when);
	buf_printf(b, "start since:          %lld\n",
	    (long long)(time(NULL) - t));
	buf_printf(b, "accepted conn:        %llu\n", (unsigned long long)
	    stats_counter_value(ac->m_accepted));
	buf_printf(b, "listen queue:         %d\n", sn->queue);
	buf_printf(b, "max listen queue:     %d\n", sn->queue_max);
	buf_printf(b, "listen queue len:     %d\n", sn->queue_len);
	buf_printf(b, "idle processes:       %d\n", sn->idle);
	buf_printf(b, "active processes:     %d\n", sn->active);
	buf_printf(b, "total processes:      %d\n", sn->total);
	buf_printf(b, "max active processes: %d\n",
	    atomic_load(&ac->board->max_active));
	buf_printf(b, "max children reached: %llu\n", (unsigned long long)
	    stats_counter_value(ac->m_full));
	buf_printf(b, "slow requests:        %llu\n", (unsigned long long)
	    stats_counter_value(ac->m_slow));
	buf_printf(b, "request timeouts:     %llu\n", (unsigned long long)
	    stats_counter_value(ac->m_timeouts));
	buf_printf(b, "\n%-6s %-8s %-6s %-4s %-10s %-10s %-10s %s\n", "slot",
	    "pid", "worker", "gen", "state", "requests", "duration", "request");
	for (i = 0; i < sn->nrows; i++) {
		struct wrow	*r = &sn->rows[i];
		char		 d[24] = "";

		if (board_active(r->state))
			snprintf(d, sizeof(d), "%llums",
			    (unsigned long long)r->duration);
		buf_printf(b, "%-6d %-8d %-6d %-4d %-10s %-10llu %-10s %s\n",
		    r->slot, (int)r->pid, r->id + 1, r->generation,
		    board_state_name(r->state),
		    (unsigned long long)r->requests, d,
		    board_active(r->state) ? r->line : "");
	}
}

static void
status_json(struct appd_conf *ac, struct snap *sn, struct app_resp *r)
{
	int	i;

	app_json_object(r);
	app_json_key(r, "instance");
	app_json_string(r, ac->name);
	app_json_key(r, "process_manager");
	app_json_string(r, pool_name(ac));
	app_json_key(r, "start_time");
	app_json_int(r, (long long)sn->start);
	app_json_key(r, "start_since");
	app_json_int(r, (long long)(time(NULL) - (time_t)sn->start));
	app_json_key(r, "accepted_conn");
	app_json_int(r, (long long)stats_counter_value(ac->m_accepted));
	app_json_key(r, "listen_queue");
	app_json_int(r, sn->queue);
	app_json_key(r, "max_listen_queue");
	app_json_int(r, sn->queue_max);
	app_json_key(r, "listen_queue_len");
	app_json_int(r, sn->queue_len);
	app_json_key(r, "idle_processes");
	app_json_int(r, sn->idle);
	app_json_key(r, "active_processes");
	app_json_int(r, sn->active);
	app_json_key(r, "total_processes");
	app_json_int(r, sn->total);
	app_json_key(r, "max_active_processes");
	app_json_int(r, atomic_load(&ac->board->max_active));
	app_json_key(r, "max_children_reached");
	app_json_int(r, (long long)stats_counter_value(ac->m_full));
	app_json_key(r, "slow_requests");
	app_json_int(r, (long long)stats_counter_value(ac->m_slow));
	app_json_key(r, "request_timeouts");
	app_json_int(r, (long long)stats_counter_value(ac->m_timeouts));
	app_json_key(r, "min_spare");
	app_json_int(r, ac->min_spare);
	app_json_key(r, "max_spare");
	app_json_int(r, ac->max_spare);
	app_json_key(r, "max_workers");
	app_json_int(r, ac->max_workers);
	app_json_key(r, "workers");
	app_json_array(r);
	for (i = 0; i < sn->nrows; i++) {
		struct wrow	*w = &sn->rows[i];

		app_json_object(r);
		app_json_key(r, "slot");
		app_json_int(r, w->slot);
		app_json_key(r, "pid");
		app_json_int(r, w->pid);
		app_json_key(r, "worker");
		app_json_int(r, w->id + 1);
		app_json_key(r, "generation");
		app_json_int(r, w->generation);
		app_json_key(r, "state");
		app_json_string(r, board_state_name(w->state));
		app_json_key(r, "requests");
		app_json_int(r, (long long)w->requests);
		app_json_key(r, "request_duration_ms");
		app_json_int(r, (long long)w->duration);
		app_json_key(r, "request");
		app_json_string(r, board_active(w->state) ? w->line : "");
		app_json_key(r, "rss");
		app_json_int(r, (long long)w->rss);
		app_json_end(r);
	}
	app_json_end(r);
	app_json_end(r);
	app_write(r, "\n", 1);
}

static void
metrics(struct appd_conf *ac, struct snap *sn, struct buf *b)
{
	int	i;

	stats_render(b, "appd_");
#define GAUGE(name, help, v)						\
	buf_printf(b, "# HELP appd_" name " " help "\n# TYPE appd_" name \
	    " gauge\nappd_" name " %lld\n", (long long)(v))
	GAUGE("active_workers", "Workers in a request.", sn->active);
	GAUGE("idle_workers", "Workers able to take a request.", sn->idle);
	GAUGE("total_workers", "Workers.", sn->total);
	GAUGE("max_active_workers", "Most workers in a request at once.",
	    atomic_load(&ac->board->max_active));
	GAUGE("listen_queue", "Connections waiting to be accepted.",
	    sn->queue);
	GAUGE("max_listen_queue", "Most connections seen waiting.",
	    sn->queue_max);
	GAUGE("listen_queue_length", "Size of the listen queues.",
	    sn->queue_len);
	GAUGE("pool_max_workers", "The pool's max-workers.",
	    ac->max_workers);
#undef GAUGE
	buf_printf(b, "# HELP appd_worker_requests Requests served by each "
	    "worker process since it started.\n"
	    "# TYPE appd_worker_requests gauge\n");
	for (i = 0; i < sn->nrows; i++)
		buf_printf(b, "appd_worker_requests{slot=\"%d\"} %llu\n",
		    sn->rows[i].slot, (unsigned long long)sn->rows[i].requests);
	buf_printf(b, "# HELP appd_worker_request_duration_seconds How long "
	    "each worker's request in progress has run (0: idle).\n"
	    "# TYPE appd_worker_request_duration_seconds gauge\n");
	for (i = 0; i < sn->nrows; i++)
		buf_printf(b, "appd_worker_request_duration_seconds"
		    "{slot=\"%d\"} %.3f\n", sn->rows[i].slot,
		    (double)sn->rows[i].duration / 1000.0);
	buf_printf(b, "# HELP appd_worker_active Whether each worker is in a "
	    "request.\n# TYPE appd_worker_active gauge\n");
	for (i = 0; i < sn->nrows; i++)
		buf_printf(b, "appd_worker_active{slot=\"%d\"} %d\n",
		    sn->rows[i].slot, board_active(sn->rows[i].state));
}

/* Send <b> (taken over: freed here or when the rest is out). */
static void
send_buf(struct http_req *req, int status, const char *type, struct buf *b)
{
	http_resp_begin(req, status);
	http_resp_header(req, "Content-Type", type);
	http_resp_header(req, "Cache-Control", "no-store");
	http_resp_body(req, buf_used(b));
	http_resp_send_buf(req, b);
}

static void
s_request(struct http_req *req)
{
	struct status_srv	*ss = (struct status_srv *)req->conn->srv;
	struct appd_conf	*ac = ss->ac;
	struct http_target	 t;
	const char		*why;
	struct snap		*sn;
	struct buf		 b;

	if (req->msg.method != HTTP_M_GET && req->msg.method != HTTP_M_HEAD) {
		http_resp_error(req, 405);
		return;
	}
	if (http_target_parse(http_req_buf(req) + req->msg.target_off,
	    req->msg.target_len, &t, &why) == -1) {
		http_resp_error(req, 400);
		return;
	}
	if (strcmp(t.path, "/ping") == 0) {
		http_resp_simple(req, 200, "text/plain", "pong\n", 5);
		return;
	}
	if (strcmp(t.path, "/status") != 0 && strcmp(t.path, "/metrics") != 0) {
		http_resp_error(req, 404);
		return;
	}
	if ((sn = malloc(sizeof(*sn))) == NULL) {
		http_resp_error(req, 500);
		return;
	}
	snapshot(ac, sn);
	if (strcmp(t.path, "/metrics") == 0) {
		buf_init(&b, 16 * 1024 * 1024);
		metrics(ac, sn, &b);
		send_buf(req, 200, "text/plain; version=0.0.4; charset=utf-8",
		    &b);
	} else if (t.query != NULL && (t.querylen == 4 &&
	    memcmp(t.query, "json", 4) == 0)) {
		struct app_resp	r;

		resp_init(&r);
		status_json(ac, sn, &r);
		buf_free(&r.head);
		send_buf(req, 200, "application/json", &r.body);
	} else {
		buf_init(&b, 16 * 1024 * 1024);
		status_text(ac, sn, &b);
		send_buf(req, 200, "text/plain; charset=utf-8", &b);
	}
	free(sn);
}

static const struct http_handler status_handler = {
	s_request, NULL, NULL, http_resp_buf_drain, http_resp_buf_done
};

struct http_server *
status_server(struct appd_conf *ac)
{
	struct status_srv	*ss;

	if ((ss = calloc(1, sizeof(*ss))) == NULL)
		fatal("%s", __func__);
	ss->ac = ac;
	ss->srv.lim = &http_default_limits;
	ss->srv.handler = &status_handler;
	ss->srv.acl = ac->status_acl.nrules ? &ac->status_acl : NULL;
	ss->srv.server_name = "appd";
	return (&ss->srv);
}

void
status_free(struct http_server *srv)
{
	free(srv);
}

int
status_main(struct proc_worker *w)
{
	struct appd_conf	*ac = w->conf;
	int			 i;

	self = w;
	aconf = ac;
	if (http_worker_init(&hw, w) == -1)
		fatal("http_worker_init");
	for (i = 0; i < w->ps->nlisteners; i++)
		if (w->ps->listeners[i].arg == ac->status)
			hw.servers[i] = ac->status;
	return (http_worker_run(&hw));
}
