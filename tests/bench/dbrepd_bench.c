/*
 * dbrepd_bench: the measuring half of tests/bench/bench_dbrepd.sh, which
 * starts the daemons and calls it once per figure:
 *
 *	plain PATH N [CONC]	N one-row commits on plain SQLite (WAL,
 *				synchronous=FULL): rate, p50, p99; from
 *				CONC processes at once: rate
 *	write NODES N LABEL [BUSY_US]
 *				N one-row commits through dbrepd (the client
 *				busy-polling for up to BUSY_US for each answer)
 *	fill NODES N CONC [BUSY_US]
 *				N one-row commits from CONC connections (each
 *				busy-polling for up to BUSY_US): rate
 *	bulk NODES MB		about MB megabytes of 1 KiB rows, in big
 *				transactions
 *	lag PRIMARY REPLICA RATE SECONDS
 *				commits at RATE per second on PRIMARY; for
 *				each, the time until REPLICA shows it
 *	catchup NODE LSN TIMEOUT
 *				seconds until NODE has applied LSN
 *	snapshot NODE FILE	a snapshot to FILE: bytes, seconds, MB/s
 *	promote NODE		ms until promoted, ms until writable
 *
 * Every figure is printed as "name value" lines for the script.
 */
#include <sys/types.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <err.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "compat.h"
#include "../../dbrepd/dbrep.h"

static const char	*secret;

static uint64_t
now_us(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((uint64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000);
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t	x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x < y ? -1 : x > y);
}

static void
report(const char *what, uint64_t *lat, size_t n, uint64_t t0, uint64_t t1)
{
	qsort(lat, n, sizeof(*lat), cmp_u64);
	printf("%s_rate %.1f\n", what, n * 1e6 / (double)(t1 - t0));
	printf("%s_p50_us %llu\n", what, (unsigned long long)lat[n / 2]);
	printf("%s_p99_us %llu\n", what,
	    (unsigned long long)lat[n * 99 / 100]);
}

static struct dbrep *
open_nodes(const char *nodes)
{
	struct dbrep_error	 e;
	struct dbrep		*db;

	if ((db = dbrep_open(nodes, secret, &e)) == NULL)
		errx(1, "%s: %s", nodes, e.msg);
	dbrep_set_lsn_wait(db, 10000);
	return (db);
}

static void
must(int rc, const struct dbrep_error *e, const char *what)
{
	if (rc == -1)
		errx(1, "%s: %s (code %d)", what, e->msg, e->code);
}

static void
plain_open(const char *path, sqlite3 **db, sqlite3_stmt **st)
{
	if (sqlite3_open(path, db) != SQLITE_OK ||
	    sqlite3_busy_timeout(*db, 60000) != SQLITE_OK ||
	    sqlite3_exec(*db, "PRAGMA journal_mode = WAL; PRAGMA synchronous = "
	    "FULL; CREATE TABLE IF NOT EXISTS kv(k INTEGER PRIMARY KEY, v TEXT "
	    "NOT NULL, n INTEGER)", NULL, NULL, NULL) != SQLITE_OK)
		errx(1, "%s: %s", path, sqlite3_errmsg(*db));
	if (sqlite3_prepare_v2(*db, "INSERT INTO kv(v, n) VALUES(?1, ?2)", -1,
	    st, NULL) != SQLITE_OK)
		errx(1, "%s", sqlite3_errmsg(*db));
}

/* n one-row commits; their latencies in lat[] when not NULL */
static void
plain_commits(sqlite3 *db, sqlite3_stmt *st, long n, uint64_t *lat)
{
	uint64_t	t;
	long		i;

	for (i = 0; i < n; i++) {
		t = now_us();
		if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) !=
		    SQLITE_OK)
			errx(1, "%s", sqlite3_errmsg(db));
		sqlite3_bind_text(st, 1, "a value of some 40 bytes, more or less",
		    -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, i);
		if (sqlite3_step(st) != SQLITE_DONE)
			errx(1, "%s", sqlite3_errmsg(db));
		sqlite3_reset(st);
		if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
			errx(1, "%s", sqlite3_errmsg(db));
		if (lat != NULL)
			lat[i] = now_us() - t;
	}
}

/*
 * n one-row commits on plain SQLite from conc processes at once (each
 * its own connection, SQLite's busy handler between them), as the
 * workers of an application writing to the file themselves would do
 */
static int
plain(const char *path, long n, int conc)
{
	sqlite3		*db;
	sqlite3_stmt	*st;
	uint64_t	*lat = NULL, t0;
	int		 i, status, failed = 0;
	char		 label[32];

	unlink(path);
	plain_open(path, &db, &st);
	if (conc <= 1) {
		lat = calloc(n, sizeof(*lat));
		t0 = now_us();
		plain_commits(db, st, n, lat);
		report("plain", lat, n, t0, now_us());
		free(lat);
	} else {
		t0 = now_us();
		for (i = 0; i < conc; i++) {
			switch (fork()) {
			case -1:
				err(1, "fork");
			case 0:
				sqlite3_finalize(st);
				sqlite3_close(db);
				plain_open(path, &db, &st);
				plain_commits(db, st, n / conc, NULL);
				_exit(0);
			}
		}
		while (wait(&status) > 0)
			failed |= !WIFEXITED(status) || WEXITSTATUS(status);
		if (failed)
			errx(1, "a writer failed");
		snprintf(label, sizeof(label), "plain%d_rate", conc);
		printf("%s %.1f\n", label, n / conc * conc * 1e6 /
		    (double)(now_us() - t0));
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	return (0);
}

static void
create_kv(struct dbrep *db)
{
	struct dbrep_result	*res;
	struct dbrep_error	 e;

	must(dbrep_query(db, DBREP_PRIMARY, 0, &res, &e, "CREATE TABLE IF NOT "
	    "EXISTS kv(k INTEGER PRIMARY KEY, v TEXT NOT NULL, n INTEGER)",
	    NULL), &e, "create");
	dbrep_result_free(res);
}

static int
write_n(const char *nodes, long n, const char *label, unsigned busy_us)
{
	struct dbrep_result	*res;
	struct dbrep_error	 e;
	struct dbrep		*db = open_nodes(nodes);
	uint64_t		*lat, t0, t;
	long			 i;

	create_kv(db);
	dbrep_set_busy_poll(db, busy_us);
	lat = calloc(n, sizeof(*lat));
	t0 = now_us();
	for (i = 0; i < n; i++) {
		t = now_us();
		must(dbrep_query(db, DBREP_PRIMARY, 0, &res, &e, "INSERT INTO "
		    "kv(v, n) VALUES(?, ?)", "tI", "a value of some 40 bytes, "
		    "more or less", (int64_t)i), &e, "insert");
		dbrep_result_free(res);
		lat[i] = now_us() - t;
	}
	report(label, lat, n, t0, now_us());
	free(lat);
	dbrep_close(db);
	return (0);
}

struct filler {
	const char	*nodes;
	long		 n;
	int		 big;
	unsigned	 busy_us;
};

static void *
fill_thread(void *arg)
{
	struct filler		*f = arg;
	struct dbrep_result	*res;
	struct dbrep_error	 e;
	struct dbrep		*db = open_nodes(f->nodes);
	long			 i;

	dbrep_set_busy_poll(db, f->busy_us);
	for (i = 0; i < f->n; i++) {
		if (f->big)
			must(dbrep_query(db, DBREP_PRIMARY, 0, &res, &e,
			    "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT "
			    "i + 1 FROM s WHERE i < 8192) INSERT INTO kv(v, n) "
			    "SELECT hex(randomblob(512)), i FROM s", NULL), &e,
			    "bulk");
		else
			must(dbrep_query(db, DBREP_PRIMARY, 0, &res, &e,
			    "INSERT INTO kv(v, n) VALUES(?, ?)", "tI",
			    "a value of some 40 bytes, more or less",
			    (int64_t)i), &e, "fill");
		dbrep_result_free(res);
	}
	dbrep_close(db);
	return (NULL);
}

static int
fill(const char *nodes, long n, int conc, int big, unsigned busy_us)
{
	struct filler	 f;
	pthread_t	 th[64];
	struct dbrep	*db = open_nodes(nodes);
	uint64_t	 t0;
	int		 i;

	create_kv(db);
	dbrep_close(db);
	if (conc < 1 || conc > 64)
		conc = 4;
	f.nodes = nodes;
	f.n = n / conc;
	f.big = big;
	f.busy_us = busy_us;
	t0 = now_us();
	for (i = 0; i < conc; i++)
		pthread_create(&th[i], NULL, fill_thread, &f);
	for (i = 0; i < conc; i++)
		pthread_join(th[i], NULL);
	t0 = now_us() - t0;
	printf("%s_seconds %.2f\n", big ? "bulk" : "fill", t0 / 1e6);
	if (!big)
		printf("fill_rate %.1f\n", f.n * conc * 1e6 / (double)t0);
	return (0);
}

/* Lag: the writer hands each commit's (lsn, time) to the prober. */
#define LAG_RING	65536
static struct {
	uint64_t	lsn;
	uint64_t	t;
}			 ring[LAG_RING];
static volatile long	 ring_w, ring_done;
static pthread_mutex_t	 ring_mu = PTHREAD_MUTEX_INITIALIZER;

struct prober {
	const char	*replica;
	uint64_t	*lat;
	long		 n;
	uint64_t	 rtt;
};

static void *
probe_thread(void *arg)
{
	struct prober		*p = arg;
	struct dbrep_result	*res;
	struct dbrep_error	 e;
	struct dbrep		*db = open_nodes(p->replica);
	uint64_t		 lsn, t, end;
	long			 r = 0, w;

	for (;;) {
		pthread_mutex_lock(&ring_mu);
		w = ring_w;
		pthread_mutex_unlock(&ring_mu);
		if (r == w) {
			if (ring_done)
				break;
			usleep(50);
			continue;
		}
		lsn = ring[r % LAG_RING].lsn;
		t = ring[r % LAG_RING].t;
		must(dbrep_query(db, DBREP_REPLICA, lsn, &res, &e, "SELECT 1",
		    NULL), &e, "probe");
		dbrep_result_free(res);
		end = now_us();
		/* the probe's own round trip is not lag */
		p->lat[p->n++] = end - t > p->rtt ? end - t - p->rtt : 0;
		r++;
	}
	dbrep_close(db);
	return (NULL);
}

static int
lag(const char *primary, const char *replica, double rate, double secs)
{
	struct dbrep_result	*res;
	struct dbrep_error	 e;
	struct prober		 p;
	struct dbrep		*db = open_nodes(primary), *rd;
	pthread_t		 th;
	uint64_t		 t0, next, t, rtt[200];
	long			 i, n = (long)(rate * secs);

	create_kv(db);
	/* the prober's round trip when nothing waits */
	rd = open_nodes(replica);
	for (i = 0; i < 200; i++) {
		t = now_us();
		must(dbrep_query(rd, DBREP_REPLICA, 0, &res, &e, "SELECT 1",
		    NULL), &e, "rtt");
		dbrep_result_free(res);
		rtt[i] = now_us() - t;
	}
	dbrep_close(rd);
	qsort(rtt, 200, sizeof(rtt[0]), cmp_u64);
	memset(&p, 0, sizeof(p));
	p.replica = replica;
	p.rtt = rtt[100];
	p.lat = calloc(n + 1, sizeof(uint64_t));
	pthread_create(&th, NULL, probe_thread, &p);
	t0 = now_us();
	for (i = 0; i < n; i++) {
		next = t0 + (uint64_t)(i * 1e6 / rate);
		while ((t = now_us()) < next)
			usleep(next - t > 200 ? (useconds_t)(next - t - 100) :
			    0);
		must(dbrep_query(db, DBREP_PRIMARY, 0, &res, &e, "INSERT INTO "
		    "kv(v, n) VALUES(?, ?)", "tI", "lag probe", (int64_t)i), &e,
		    "insert");
		pthread_mutex_lock(&ring_mu);
		ring[ring_w % LAG_RING].lsn = dbrep_result_lsn(res);
		ring[ring_w % LAG_RING].t = now_us();
		ring_w++;
		pthread_mutex_unlock(&ring_mu);
		dbrep_result_free(res);
	}
	printf("lag_offered_rate %.1f\n", n * 1e6 / (double)(now_us() - t0));
	ring_done = 1;
	pthread_join(th, NULL);
	qsort(p.lat, p.n, sizeof(uint64_t), cmp_u64);
	printf("lag_probe_rtt_us %llu\n", (unsigned long long)p.rtt);
	printf("lag_p50_us %llu\n", (unsigned long long)p.lat[p.n / 2]);
	printf("lag_p99_us %llu\n", (unsigned long long)p.lat[p.n * 99 / 100]);
	free(p.lat);
	dbrep_close(db);
	return (0);
}

static uint64_t
status_num(struct dbrep *db, const char *key)
{
	struct dbrep_error	 e;
	char			*reply, *p;
	uint64_t		 v = 0;
	size_t			 kl = strlen(key);

	if (dbrep_admin(db, NULL, "status", NULL, &reply, &e) == -1)
		return (0);
	for (p = reply; p != NULL && *p; p = strchr(p, '\n') ?
	    strchr(p, '\n') + 1 : NULL)
		if (strncmp(p, key, kl) == 0 && p[kl] == ' ') {
			v = strtoull(p + kl + 1, NULL, 10);
			break;
		}
	free(reply);
	return (v);
}

static int
catchup(const char *node, uint64_t lsn, double timeout)
{
	struct dbrep	*db = open_nodes(node);
	uint64_t	 t0 = now_us(), cur = 0, first = 0;

	while ((now_us() - t0) / 1e6 < timeout) {
		cur = status_num(db, "lsn");
		if (first == 0)
			first = cur;
		if (cur >= lsn)
			break;
		usleep(2000);
	}
	printf("catchup_records %llu\n", (unsigned long long)(cur - first));
	printf("catchup_seconds %.3f\n", (now_us() - t0) / 1e6);
	printf("catchup_rate %.1f\n", (cur - first) * 1e6 /
	    (double)(now_us() - t0));
	dbrep_close(db);
	return (cur >= lsn ? 0 : 1);
}

static int
snapshot(const char *node, const char *file)
{
	struct dbrep_error	 e;
	struct dbrep		*db = open_nodes(node);
	uint64_t		 lsn, size, t0;
	int			 fd;

	if ((fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0600)) == -1)
		err(1, "%s", file);
	t0 = now_us();
	must(dbrep_snapshot(db, NULL, fd, &lsn, &size, &e), &e, "snapshot");
	close(fd);
	printf("snapshot_bytes %llu\n", (unsigned long long)size);
	printf("snapshot_seconds %.3f\n", (now_us() - t0) / 1e6);
	printf("snapshot_mb_s %.1f\n", size / 1048576.0 /
	    ((now_us() - t0) / 1e6));
	dbrep_close(db);
	return (0);
}

static int
promote(const char *node)
{
	struct dbrep_result	*res;
	struct dbrep_error	 e;
	struct dbrep		*db = open_nodes(node);
	char			*reply;
	uint64_t		 t0 = now_us();

	must(dbrep_admin(db, NULL, "promote", NULL, &reply, &e), &e,
	    "promote");
	printf("promote_ms %.2f\n", (now_us() - t0) / 1000.0);
	free(reply);
	while (dbrep_query(db, DBREP_ANY, 0, &res, &e, "INSERT INTO kv(v, n) "
	    "VALUES('after promotion', 0)", NULL) == -1)
		usleep(100);
	dbrep_result_free(res);
	printf("promote_writable_ms %.2f\n", (now_us() - t0) / 1000.0);
	dbrep_close(db);
	return (0);
}

static __dead void
usage(void)
{
	fprintf(stderr, "usage: dbrepd_bench plain|write|fill|bulk|lag|"
	    "catchup|snapshot|promote args (see the source)\n");
	exit(2);
}

int
main(int argc, char *argv[])
{
	secret = getenv("DBREP_SECRET");
	if (argc < 2)
		usage();
	if (strcmp(argv[1], "plain") == 0 && (argc == 4 || argc == 5))
		return (plain(argv[2], atol(argv[3]), argc == 5 ?
		    atoi(argv[4]) : 1));
	if (strcmp(argv[1], "write") == 0 && (argc == 5 || argc == 6))
		return (write_n(argv[2], atol(argv[3]), argv[4], argc == 6 ?
		    (unsigned)atoi(argv[5]) : 0));
	if (strcmp(argv[1], "fill") == 0 && (argc == 5 || argc == 6))
		return (fill(argv[2], atol(argv[3]), atoi(argv[4]), 0,
		    argc == 6 ? (unsigned)atoi(argv[5]) : 0));
	if (strcmp(argv[1], "bulk") == 0 && argc == 4)
		return (fill(argv[2], (atol(argv[3]) + 7) / 8, 1, 1, 0));
	if (strcmp(argv[1], "lag") == 0 && argc == 6)
		return (lag(argv[2], argv[3], atof(argv[4]), atof(argv[5])));
	if (strcmp(argv[1], "catchup") == 0 && argc == 5)
		return (catchup(argv[2], strtoull(argv[3], NULL, 10),
		    atof(argv[4])));
	if (strcmp(argv[1], "snapshot") == 0 && argc == 4)
		return (snapshot(argv[2], argv[3]));
	if (strcmp(argv[1], "promote") == 0 && argc == 3)
		return (promote(argv[2]));
	usage();
}
