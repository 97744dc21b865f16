/*
 * metrics.c: dbrepd's statistics, and GET /metrics on the listeners of
 * "metrics-listen", served by the workers through the common HTTP engine.
 *
 * The metrics are created by the master before it forks (the segment is
 * shared, so every process updates the same numbers); per-replica ones
 * by the replication process when a replica first connects.  The
 * listeners' allow list (metrics-allow, else allow) is applied before
 * the HTTP engine sees a connection.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http_server.h"
#include "log.h"
#include "stats.h"
#include "dbrepd.h"

struct dbrep_metrics	 m;

static struct http_server	 msrv, msrv_tls;	/* plain, TLS */
static const struct dbrepd_conf	*mconf;
static struct ev_io		 mio[8];
static int			 nmio;

static const double apply_buckets[] = {
	1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000
};

void
metrics_init(void)
{
	m.commits = stats_counter("dbrepd_commits_total",
	    "Transactions committed to the log by this node as primary.",
	    NULL);
	m.commit_errors = stats_counter("dbrepd_commit_errors_total",
	    "Write requests that failed and committed nothing.", NULL);
	m.queries = stats_counter("dbrepd_requests_total",
	    "Client requests answered.", NULL);
	m.query_errors = stats_counter("dbrepd_request_errors_total",
	    "Client requests answered with an error.", NULL);
	m.commit_seconds = stats_histogram("dbrepd_commit_seconds",
	    "Time of a write request, quorum wait included.",
	    stats_latency_buckets, stats_nlatency_buckets, NULL);
	m.group_syncs = stats_counter("dbrepd_log_flushes_total",
	    "Flushes of the write-ahead log made for client commits (group "
	    "commit: one flush makes several commits durable).", NULL);
	m.semisync_waits = stats_counter("dbrepd_semisync_waits_total",
	    "Commits that waited for the quorum of replicas.", NULL);
	m.semisync_timeouts = stats_counter("dbrepd_semisync_timeouts_total",
	    "Commits the quorum did not confirm in time.", NULL);
	m.semisync_degraded = stats_gauge("dbrepd_semisync_degraded",
	    "1 while semi-synchronous replication runs degraded to async.",
	    NULL);
	m.semisync_seconds = stats_histogram("dbrepd_semisync_wait_seconds",
	    "Time commits waited for the quorum.", stats_latency_buckets,
	    stats_nlatency_buckets, NULL);
	m.lsn = stats_gauge("dbrepd_lsn",
	    "LSN of the last record committed (primary) or applied "
	    "(replica).", NULL);
	m.epoch = stats_gauge("dbrepd_epoch", "The node's epoch.", NULL);
	m.role = stats_gauge("dbrepd_primary", "1 on the primary.", NULL);
	m.log_records = stats_gauge("dbrepd_log_records",
	    "Records kept in the log.", NULL);
	m.log_bytes = stats_gauge("dbrepd_log_bytes",
	    "Bytes of records kept in the log.", NULL);
	m.applied = stats_counter("dbrepd_applied_records_total",
	    "Records applied by this replica.", NULL);
	m.apply_batches = stats_histogram("dbrepd_apply_batch_records",
	    "Records per apply transaction.", apply_buckets,
	    (int)nitems(apply_buckets), NULL);
	m.lag_records = stats_gauge("dbrepd_replication_lag_records",
	    "This replica: records it has not applied yet.", NULL);
	m.lag_ms = stats_gauge("dbrepd_replication_lag_milliseconds",
	    "This replica: age of the oldest record not applied yet.", NULL);
	m.connected = stats_gauge("dbrepd_replication_connected",
	    "This replica: 1 while it streams from its primary.", NULL);
	m.snap_sent = stats_counter("dbrepd_snapshots_sent_total",
	    "Snapshots sent to replicas and to dbrepctl.", NULL);
	m.snap_installed = stats_counter("dbrepd_snapshots_installed_total",
	    "Snapshots installed by this replica.", NULL);
	m.snap_bytes = stats_counter("dbrepd_snapshot_bytes_total",
	    "Bytes of snapshots sent.", NULL);
	m.reconnects = stats_counter("dbrepd_replication_connects_total",
	    "Connections of this replica to its primary.", NULL);
	m.diverged = stats_counter("dbrepd_diverged_total",
	    "Times this node found its history diverged from its primary's.",
	    NULL);
	m.elections = stats_counter("dbrepd_elections_total",
	    "Elections this node started, its primary silent (failover "
	    "auto).", NULL);
	m.auto_promotions = stats_counter("dbrepd_auto_promotions_total",
	    "Times this node promoted itself after an election.", NULL);
	m.votes = stats_counter("dbrepd_votes_total",
	    "Votes this node gave to another node's election.", NULL);
	m.refused = stats_counter("dbrepd_connections_refused_total",
	    "TCP connections closed unread by an allow list.", NULL);
}

struct mreq {
	struct buf	b;
};

static void
mreq_send(struct http_req *req)
{
	struct mreq	*r = req->ud;
	size_t		 n;

	while (buf_used(&r->b) > 0) {
		n = http_resp_write(req, buf_head(&r->b), buf_used(&r->b));
		if (n == 0)
			return;		/* drain() brings us back */
		buf_consume(&r->b, n);
	}
	http_resp_end(req);
}

static void
mreq_request(struct http_req *req)
{
	struct slice	 t = http_req_path(req);
	struct mreq	*r;

	if (!slice_eq(t, "/metrics")) {
		http_resp_simple(req, 404, "text/plain", "not found\n", 10);
		return;
	}
	if ((r = calloc(1, sizeof(*r))) == NULL) {
		http_resp_error(req, 500);
		return;
	}
	buf_init(&r->b, 64 * 1024 * 1024);
	stats_render(&r->b, NULL);
	req->ud = r;
	http_resp_begin(req, 200);
	http_resp_header(req, "Content-Type",
	    "text/plain; version=0.0.4; charset=utf-8");
	http_resp_body(req, buf_used(&r->b));
	mreq_send(req);
}

static void
mreq_done(struct http_req *req)
{
	struct mreq	*r = req->ud;

	if (r != NULL) {
		buf_free(&r->b);
		free(r);
		req->ud = NULL;
	}
}

static const struct http_handler mhandler = {
	.request = mreq_request,
	.drain = mreq_send,
	.done = mreq_done,
};

/* Accept, and hand to the HTTP engine what the allow list lets in. */
static void
maccept(struct ev_io *io, uint32_t ev)
{
	struct sockaddr_storage	ss;
	socklen_t		sl;
	int			fd, i;

	for (i = 0; i < 16; i++) {
		sl = sizeof(ss);
		if ((fd = accept4(io->fd, (struct sockaddr *)&ss, &sl,
		    SOCK_NONBLOCK | SOCK_CLOEXEC)) == -1) {
			if (errno == EMFILE || errno == ENFILE)
				log_warn("accept");
			return;
		}
		if (!acl_pass(mconf, LISTEN_METRICS, (struct sockaddr *)&ss)) {
			close(fd);
			continue;
		}
		http_conn_accept(io->arg != NULL ? &msrv_tls : &msrv, fd,
		    (struct sockaddr *)&ss, sl);
	}
}

/* In a worker: serve /metrics on listener <fd>, over TLS if <tls>. */
int
metrics_attach(struct ev_loop *loop, int fd, const struct dbrepd_conf *dc,
    int tls)
{
	if (nmio >= (int)nitems(mio))
		return (-1);
	mconf = dc;
	if (nmio == 0) {
		http_server_init(loop);
		msrv.lim = &http_default_limits;
		msrv.handler = &mhandler;
		msrv.server_name = "dbrepd";
		msrv_tls = msrv;
		msrv_tls.tls = dc->tls;
		msrv_tls.scheme_https = 1;
	}
	return (ev_io_add(loop, &mio[nmio++], fd, EPOLLIN | EPOLLEXCLUSIVE,
	    maccept, tls ? &msrv_tls : NULL));
}

void
metrics_drain(struct ev_loop *loop)
{
	int	i;

	for (i = 0; i < nmio; i++)
		if (mio[i].active)
			ev_io_del(loop, &mio[i]);
	if (nmio > 0)
		http_server_drain();
}

/* Connections still open; collects the finished ones. */
int
metrics_busy(void)
{
	if (nmio == 0)
		return (0);
	http_server_collect();
	return (http_server_nconns());
}
