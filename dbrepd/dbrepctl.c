/*
 * dbrepctl: the operator's tool for dbrepd, on the client library.
 *
 *	dbrepctl [-C cafile] [-n nodes] [-s secret | -S file] [-t timeout]
 *	    command
 *	query [-c] [-p | -r] [-m lsn] sql [param ...]
 *	status | promote | repoint address | snapshot file
 *	drill [-d seconds] [-i ms] [table]
 */
#include <sys/types.h>

#include <limits.h>

#include <ctype.h>
#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "compat.h"
#include "event.h"
#include "dbrep.h"

#define CTL_DEFNODES	"unix:/var/run/dbrepd.sock"
#define CTL_MAXSECRET	1024

static __dead void
usage(void)
{
	fprintf(stderr, "usage: dbrepctl [-C cafile] [-n nodes] "
	    "[-s secret | -S file] [-t ms] command [args]\n"
	    "\tquery [-c] [-p | -r] [-m lsn] sql [param ...]\n"
	    "\tstatus\n\tpromote\n\trepoint address\n\tsnapshot file\n"
	    "\tdrill [-d seconds] [-i ms] [table]\n"
	    "params: i:INTEGER r:REAL t:TEXT x:HEXBLOB null, else text\n");
	exit(2);
}

static void
fail(const char *what, const struct dbrep_error *e)
{
	fprintf(stderr, "dbrepctl: %s%s%s (code %d", what, *what ? ": " : "",
	    e->msg, e->code);
	if (e->extended != e->code)
		fprintf(stderr, ", extended %d", e->extended);
	fprintf(stderr, ")");
	if (e->primary[0] != '\0')
		fprintf(stderr, "; the primary is %s", e->primary);
	if (e->lsn != 0)
		fprintf(stderr, "; LSN %llu", (unsigned long long)e->lsn);
	fprintf(stderr, "\n");
	exit(1);
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return (c - '0');
	if (c >= 'a' && c <= 'f')
		return (c - 'a' + 10);
	if (c >= 'A' && c <= 'F')
		return (c - 'A' + 10);
	return (-1);
}

static int
add_param(struct dbrep_req *req, const char *a)
{
	const char	*errstr = NULL;
	unsigned char	*b;
	char		*end;
	size_t		 n, i;
	int		 rc;

	if (strcmp(a, "null") == 0)
		return (dbrep_req_null(req));
	if (strncmp(a, "i:", 2) == 0) {
		long long v = strtonum(a + 2, LLONG_MIN, LLONG_MAX, &errstr);

		if (errstr != NULL) {
			fprintf(stderr, "dbrepctl: %s: integer %s\n", a,
			    errstr);
			exit(2);
		}
		return (dbrep_req_int(req, v));
	}
	if (strncmp(a, "r:", 2) == 0) {
		double	d = strtod(a + 2, &end);

		if (*end != '\0' || end == a + 2) {
			fprintf(stderr, "dbrepctl: %s: not a number\n", a);
			exit(2);
		}
		return (dbrep_req_real(req, d));
	}
	if (strncmp(a, "x:", 2) == 0) {
		n = strlen(a + 2);
		if (n % 2 != 0 || (b = malloc(n / 2 + 1)) == NULL) {
			fprintf(stderr, "dbrepctl: %s: bad blob\n", a);
			exit(2);
		}
		for (i = 0; i < n / 2; i++) {
			int	h = hexval(a[2 + 2 * i]);
			int	l = hexval(a[3 + 2 * i]);

			if (h < 0 || l < 0) {
				fprintf(stderr, "dbrepctl: %s: bad blob\n", a);
				exit(2);
			}
			b[i] = h << 4 | l;
		}
		rc = dbrep_req_blob(req, b, n / 2);
		free(b);
		return (rc);
	}
	if (strncmp(a, "t:", 2) == 0)
		a += 2;
	return (dbrep_req_text(req, a, -1));
}

/* A value as text, into <out> (size at least 64). */
static const char *
vtext(const struct dbrep_value *v, char *out, size_t size, char **dyn)
{
	size_t	i;

	*dyn = NULL;
	switch (v->type) {
	case DBREP_NULL:
		return ("NULL");
	case DBREP_INTEGER:
		snprintf(out, size, "%lld", (long long)v->i);
		return (out);
	case DBREP_REAL:
		snprintf(out, size, "%.17g", v->r);
		return (out);
	case DBREP_TEXT:
		return (v->p);
	default:
		if ((*dyn = malloc(2 * v->len + 4)) == NULL)
			return ("?");
		(*dyn)[0] = 'x';
		(*dyn)[1] = '\'';
		for (i = 0; i < v->len; i++)
			snprintf(*dyn + 2 + 2 * i, 3, "%02x",
			    (unsigned char)v->p[i]);
		strlcat(*dyn, "'", 2 * v->len + 4);
		return (*dyn);
	}
}

static void
print_csv_field(const char *s)
{
	if (strpbrk(s, ",\"\r\n") == NULL) {
		fputs(s, stdout);
		return;
	}
	putchar('"');
	for (; *s; s++) {
		if (*s == '"')
			putchar('"');
		putchar(*s);
	}
	putchar('"');
}

static void
print_set(const struct dbrep_result *res, int set, int csv)
{
	const struct dbrep_value	*v;
	size_t				 rows = dbrep_result_rows(res, set), r;
	size_t				*w;
	int				 cols = dbrep_result_columns(res, set), c;
	char				 tmp[64], *dyn;
	const char			*s;

	if ((w = calloc(cols, sizeof(*w))) == NULL)
		return;
	for (c = 0; c < cols; c++)
		w[c] = strlen(dbrep_result_column_name(res, set, c));
	if (!csv)
		for (r = 0; r < rows; r++)
			for (c = 0; c < cols; c++) {
				v = dbrep_result_value(res, set, r, c);
				s = vtext(v, tmp, sizeof(tmp), &dyn);
				if (strlen(s) > w[c])
					w[c] = strlen(s);
				free(dyn);
			}
	for (c = 0; c < cols; c++) {
		s = dbrep_result_column_name(res, set, c);
		if (csv) {
			if (c)
				putchar(',');
			print_csv_field(s);
		} else
			printf("%s%-*s", c ? " | " : "", (int)w[c], s);
	}
	putchar('\n');
	if (!csv) {
		for (c = 0; c < cols; c++) {
			size_t	k;

			printf("%s", c ? "-+-" : "");
			for (k = 0; k < w[c]; k++)
				putchar('-');
		}
		putchar('\n');
	}
	for (r = 0; r < rows; r++) {
		for (c = 0; c < cols; c++) {
			v = dbrep_result_value(res, set, r, c);
			s = vtext(v, tmp, sizeof(tmp), &dyn);
			if (csv) {
				if (c)
					putchar(',');
				if (v->type != DBREP_NULL)
					print_csv_field(s);
			} else
				printf("%s%-*s", c ? " | " : "", (int)w[c], s);
			free(dyn);
		}
		putchar('\n');
	}
	free(w);
}

static int
cmd_query(struct dbrep *db, int argc, char **argv)
{
	struct dbrep_error	 e;
	struct dbrep_result	*res;
	struct dbrep_req	*req;
	const char		*errstr;
	uint64_t		 min = 0;
	int			 ch, csv = 0, route = DBREP_PRIMARY, i;

	optind = 1;
	while ((ch = getopt(argc, argv, "cm:pr")) != -1) {
		switch (ch) {
		case 'c':
			csv = 1;
			break;
		case 'm':
			min = strtonum(optarg, 0, LLONG_MAX, &errstr);
			if (errstr != NULL)
				usage();
			break;
		case 'p':
			route = DBREP_PRIMARY;
			break;
		case 'r':
			route = DBREP_REPLICA;
			break;
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1)
		usage();
	if ((req = dbrep_req_new()) == NULL || dbrep_req_sql(req,
	    argv[0]) == -1)
		exit(1);
	for (i = 1; i < argc; i++)
		if (add_param(req, argv[i]) == -1)
			exit(1);
	if (dbrep_exec(db, route, min, req, &res, &e) == -1)
		fail("", &e);
	for (i = 0; i < dbrep_result_sets(res); i++) {
		if (i > 0 && !csv)
			putchar('\n');
		print_set(res, i, csv);
	}
	if (!csv)
		printf("(node %s, lsn %llu, changes %lld, rowid %lld)\n",
		    dbrep_result_node(res),
		    (unsigned long long)dbrep_result_lsn(res),
		    (long long)dbrep_result_changes(res),
		    (long long)dbrep_result_rowid(res));
	dbrep_result_free(res);
	dbrep_req_free(req);
	return (0);
}

static volatile sig_atomic_t	drill_stop;

static void
drill_signal(int sig)
{
	drill_stop = 1;
}

/* Seconds since <t0> (ms of CLOCK_MONOTONIC). */
static double
since(uint64_t t0)
{
	return ((ev_monotonic_ms() - t0) / 1000.0);
}

/* Run <sql> on the primary until it works (or a signal); 0 or -1. */
static int
drill_retry(struct dbrep *db, const char *sql, struct dbrep_result **res,
    uint64_t t0, int limit)
{
	struct dbrep_error	e;
	uint64_t		start = ev_monotonic_ms();
	int			said = 0;

	while (!drill_stop) {
		if (dbrep_query(db, DBREP_PRIMARY, 0, res, &e, sql, NULL) == 0)
			return (0);
		if (!said)
			printf("t+%.3fs waiting for a primary: %s (code %d)\n",
			    since(t0), e.msg, e.code);
		said = 1;
		if (limit > 0 && ev_monotonic_ms() - start > (uint64_t)limit)
			break;
		usleep(100 * 1000);
	}
	return (-1);
}

/*
 * A failover drill: one handle writes one row per interval into <table>
 * on the primary, says when writes stop and start again and where, and
 * finally checks on the primary that every acknowledged row is there.
 * Exits 1 when one is missing.
 */
static int
cmd_drill(struct dbrep *db, int argc, char **argv)
{
	struct sigaction	 sa;
	struct dbrep_error	 e;
	struct dbrep_result	*res;
	const struct dbrep_value *v;
	const char		*table = "dbrep_drill", *errstr, *c;
	char			 sql[256], ins[256], last_err[DBREP_MSGLEN];
	char			 node[64], was[64];
	uint8_t			*st = NULL;	/* 1 acked 2 failed 3 unsure */
	uint64_t		 t0 = ev_monotonic_ms(), t, base, id, n = 0;
	uint64_t		 last_ok = 0, gap = 0, gap_from = 0, cap = 0;
	uint64_t		 interval = 20, dur = 0;
	size_t			 r;
	int			 ch, failing = 0, lost = 0, acked = 0;
	int			 failed = 0, unsure = 0, unsure_in = 0;

	optind = 1;
	while ((ch = getopt(argc, argv, "d:i:")) != -1) {
		switch (ch) {
		case 'd':
			dur = strtonum(optarg, 1, 86400, &errstr) * 1000;
			if (errstr != NULL)
				usage();
			break;
		case 'i':
			interval = strtonum(optarg, 1, 60000, &errstr);
			if (errstr != NULL)
				usage();
			break;
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc > 1)
		usage();
	if (argc == 1)
		table = argv[0];
	for (c = table; *c; c++)
		if (!isalnum((unsigned char)*c) && *c != '_')
			break;
	if (*c != '\0' || isdigit((unsigned char)table[0]) ||
	    strlen(table) > 64) {
		fprintf(stderr, "dbrepctl: %s: not a table name\n", table);
		exit(2);
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = drill_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	setvbuf(stdout, NULL, _IOLBF, 0);
	/* at: ms since the drill started */
	snprintf(sql, sizeof(sql), "CREATE TABLE IF NOT EXISTS %s(id INTEGER "
	    "PRIMARY KEY, node TEXT, at INTEGER)", table);
	if (drill_retry(db, sql, &res, t0, 0) == -1)
		return (1);
	dbrep_result_free(res);
	snprintf(sql, sizeof(sql), "SELECT coalesce(max(id), 0) FROM %s",
	    table);
	if (drill_retry(db, sql, &res, t0, 0) == -1)
		return (1);
	v = dbrep_result_value(res, 0, 0, 0);
	base = v != NULL && v->type == DBREP_INTEGER ? (uint64_t)v->i : 0;
	dbrep_result_free(res);
	snprintf(ins, sizeof(ins), "INSERT INTO %s(id, node, at) VALUES(?, "
	    "?, ?)", table);
	printf("t+%.3fs drill: a write every %llu ms into %s from id %llu\n",
	    since(t0), (unsigned long long)interval, table,
	    (unsigned long long)base + 1);
	was[0] = last_err[0] = '\0';
	while (!drill_stop && (dur == 0 || ev_monotonic_ms() - t0 < dur)) {
		t = ev_monotonic_ms();
		if (n == cap) {
			cap = cap ? cap * 2 : 4096;
			if ((st = realloc(st, cap)) == NULL)
				err(1, NULL);
		}
		id = base + 1 + n;
		if (dbrep_query(db, DBREP_PRIMARY, 0, &res, &e, ins, "ItI",
		    (int64_t)id, "dbrepctl drill", (int64_t)(t - t0)) == 0) {
			st[n] = 1;
			acked++;
			strlcpy(node, dbrep_result_node(res), sizeof(node));
			dbrep_result_free(res);
			if (failing)
				printf("t+%.3fs write %llu acknowledged by %s: "
				    "%.3f s without an acknowledged write\n",
				    since(t0), (unsigned long long)id, node,
				    (ev_monotonic_ms() - last_ok) / 1000.0);
			else if (strcmp(node, was) != 0 && was[0] != '\0')
				printf("t+%.3fs writes acknowledged by %s "
				    "now\n", since(t0), node);
			if (last_ok != 0 && ev_monotonic_ms() - last_ok > gap) {
				gap = ev_monotonic_ms() - last_ok;
				gap_from = last_ok;
			}
			last_ok = ev_monotonic_ms();
			strlcpy(was, node, sizeof(was));
			failing = 0;
			last_err[0] = '\0';
		} else {
			if (e.code == DBREP_EINDETERMINATE ||
			    e.code == DBREP_ELOST || e.code == DBREP_ETIMEOUT) {
				st[n] = 3;
				unsure++;
			} else {
				st[n] = 2;
				failed++;
			}
			if (!failing || strcmp(e.msg, last_err) != 0)
				printf("t+%.3fs write %llu failed: %s (code "
				    "%d)%s\n", since(t0), (unsigned long long)id,
				    e.msg, e.code, st[n] == 3 ?
				    ", outcome unknown" : "");
			strlcpy(last_err, e.msg, sizeof(last_err));
			failing = 1;
		}
		n++;
		t += interval;
		if (t > ev_monotonic_ms())
			usleep((t - ev_monotonic_ms()) * 1000);
	}
	drill_stop = 0;
	snprintf(sql, sizeof(sql), "SELECT id FROM %s WHERE id > %llu AND "
	    "id <= %llu", table, (unsigned long long)base,
	    (unsigned long long)(base + n));
	if (drill_retry(db, sql, &res, t0, 30000) == -1) {
		printf("drill: no primary to verify on\n");
		free(st);
		return (1);
	}
	for (r = 0; r < dbrep_result_rows(res, 0); r++) {
		v = dbrep_result_value(res, 0, r, 0);
		if (v == NULL || v->type != DBREP_INTEGER ||
		    (uint64_t)v->i <= base || (uint64_t)v->i > base + n)
			continue;
		id = v->i - base - 1;
		if (st[id] == 3)
			unsure_in++;
		st[id] |= 0x80;
	}
	dbrep_result_free(res);
	for (id = 0; id < n; id++)
		if ((st[id] & 0x7f) == 1 && !(st[id] & 0x80)) {
			if (lost < 10)
				printf("drill: acknowledged write %llu is "
				    "missing\n", (unsigned long long)(base +
				    id + 1));
			lost++;
		}
	printf("drill: %llu writes in %.1f s: %d acknowledged, %d failed, %d "
	    "outcome unknown (%d of them committed)\n",
	    (unsigned long long)n, since(t0), acked, failed, unsure,
	    unsure_in);
	if (gap > 0)
		printf("drill: longest time without an acknowledged write: "
		    "%.3f s (from t+%.3fs)\n", gap / 1000.0,
		    (gap_from - t0) / 1000.0);
	printf("drill: acknowledged writes lost: %d\n", lost);
	free(st);
	return (lost > 0 ? 1 : 0);
}

static char *
read_secret(const char *path)
{
	static char	buf[CTL_MAXSECRET + 2];
	ssize_t		n;
	int		fd;

	if ((fd = open(path, O_RDONLY)) == -1) {
		fprintf(stderr, "dbrepctl: %s: %s\n", path, strerror(errno));
		exit(1);
	}
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0) {
		fprintf(stderr, "dbrepctl: %s: empty\n", path);
		exit(1);
	}
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	buf[n] = '\0';
	return (buf);
}

/*
 * -C: every TCP node of <nodes> that does not say tls:// speaks TLS,
 * its certificate checked against <ca>.  Returns the new list.
 */
static char *
tls_nodes(const char *nodes, const char *ca)
{
	char	*list, *p, *w, *out = NULL, *eq, *q, *t;

	if ((list = strdup(nodes)) == NULL || (out = strdup("")) == NULL)
		err(1, NULL);
	for (p = list; (w = strsep(&p, " ,\t\n")) != NULL;) {
		const char	*role = "", *addr = w;

		if (*w == '\0')
			continue;
		q = strpbrk(w, ":?");
		if ((eq = strchr(w, '=')) != NULL && strncmp(w, "unix:", 5) &&
		    (q == NULL || eq < q)) {
			*eq = '\0';
			role = w;
			addr = eq + 1;
		}
		if (strncmp(addr, "unix:", 5) == 0 ||
		    strncmp(addr, "tls://", 6) == 0) {
			if (asprintf(&t, "%s %s%s%s", out, role, *role ? "=" :
			    "", addr) == -1)
				err(1, NULL);
		} else if (asprintf(&t, "%s %s%stls://%s?ca=%s", out, role,
		    *role ? "=" : "", addr, ca) == -1)
			err(1, NULL);
		free(out);
		out = t;
	}
	free(list);
	return (out);
}

int
main(int argc, char *argv[])
{
	struct dbrep_error	 e;
	struct dbrep		*db;
	const char		*nodes = getenv("DBREP_NODES");
	const char		*secret = getenv("DBREP_SECRET");
	const char		*errstr, *ca = NULL;
	char			*reply, *tnodes = NULL;
	uint64_t		 lsn, size;
	int			 ch, timeout = 0, fd;

	if (nodes == NULL)
		nodes = CTL_DEFNODES;
	/* a node that closes a TLS link would make SSL_write raise it */
	signal(SIGPIPE, SIG_IGN);
	while ((ch = getopt(argc, argv, "+C:n:s:S:t:")) != -1) {
		switch (ch) {
		case 'C':
			ca = optarg;
			break;
		case 'n':
			nodes = optarg;
			break;
		case 's':
			secret = optarg;
			break;
		case 'S':
			secret = read_secret(optarg);
			break;
		case 't':
			timeout = strtonum(optarg, 1, 86400000, &errstr);
			if (errstr != NULL)
				usage();
			break;
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1)
		usage();
	if (ca != NULL)
		nodes = tnodes = tls_nodes(nodes, ca);
	if ((db = dbrep_open(nodes, secret, &e)) == NULL)
		fail("", &e);
	free(tnodes);
	if (timeout)
		dbrep_set_timeout(db, timeout);
	if (strcmp(argv[0], "query") == 0)
		cmd_query(db, argc, argv);
	else if (strcmp(argv[0], "drill") == 0) {
		ch = cmd_drill(db, argc, argv);
		dbrep_close(db);
		return (ch);
	}
	else if (strcmp(argv[0], "status") == 0 ||
	    strcmp(argv[0], "promote") == 0 ||
	    strcmp(argv[0], "repoint") == 0) {
		if ((strcmp(argv[0], "repoint") == 0) != (argc == 2))
			usage();
		if (dbrep_admin(db, NULL, argv[0], argc == 2 ? argv[1] : NULL,
		    &reply, &e) == -1)
			fail(argv[0], &e);
		printf("%s%s", reply, reply[0] && reply[strlen(reply) - 1] ==
		    '\n' ? "" : "\n");
		free(reply);
	} else if (strcmp(argv[0], "snapshot") == 0) {
		if (argc != 2)
			usage();
		if ((fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0600)) ==
		    -1) {
			fprintf(stderr, "dbrepctl: %s: %s\n", argv[1],
			    strerror(errno));
			exit(1);
		}
		if (dbrep_snapshot(db, NULL, fd, &lsn, &size, &e) == -1) {
			unlink(argv[1]);
			fail("snapshot", &e);
		}
		if (fsync(fd) == -1 || close(fd) == -1) {
			fprintf(stderr, "dbrepctl: %s: %s\n", argv[1],
			    strerror(errno));
			exit(1);
		}
		printf("snapshot %s: LSN %llu, %llu bytes\n", argv[1],
		    (unsigned long long)lsn, (unsigned long long)size);
	} else
		usage();
	dbrep_close(db);
	return (0);
}
