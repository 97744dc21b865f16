/*
 * dbrepd.c: main, the configuration, and the master's setup.
 *
 * The master (common/proc.c) parses the conf, opens the listeners and
 * forks the client workers (server.c) and one replication process
 * (repl.c).  Before it forks, setup() prepares the database: dbrepd's
 * tables, the first epoch of a new primary, the check that every table
 * can be replicated, and the node's role; a primary that has peers asks
 * them first whether a later epoch exists, so that an old primary coming
 * back never takes a write it should not.
 */
#include <sys/types.h>
#include <sys/stat.h>
#include <sys/time.h>

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "log.h"
#include "proc.h"
#include "stats.h"
#include "tls.h"
#include "dbrepd.h"

static const struct conf_opt listen_opts[] = {
	{ "backlog", { CONF_INT, "backlog", 1, 65535 } },
	{ "mode", { CONF_MODE, "mode" } },
	{ "owner", { CONF_STR, "owner" } },
	{ "group", { CONF_STR, "group" } },
	{ "tls", { CONF_NONE } },
	{ NULL }
};

static const struct conf_opt rtls_opts[] = {
	{ "ca", { CONF_PATH, "CA file" } },
	{ "name", { CONF_STR, "server name" } },
	{ "verify", { CONF_BOOL, "verify" } },
	{ NULL }
};

static const struct conf_opt failover_opts[] = {
	{ "after", { CONF_TIME, "failover delay", 100, 3600000 } },
	{ "alone", { CONF_NONE, "alone" } },
	{ NULL }
};

static const struct conf_opt durability_opts[] = {
	{ "timeout", { CONF_TIME, "quorum timeout", 1, 3600000 } },
	{ "on-timeout", { CONF_ENUM, "on-timeout", 0, 0, "fail|degrade" } },
	{ NULL }
};

static const struct conf_kw grammar[] = {
	PROC_GRAMMAR,
	{ "name", NULL, 0, 1, { { CONF_NAME, "node name" } } },
	{ "data", NULL, CONF_REQUIRED, 1, { { CONF_PATH, "database" } } },
	{ "role", NULL, 0, 1, { { CONF_ENUM, "role", 0, 0,
	    "primary|replica" } }, NULL, "primary" },
	{ "primary", NULL, 0, 1, { { CONF_ADDR, "primary address" } } },
	{ "peer", NULL, CONF_MULTI | CONF_VARIADIC, 1,
	    { { CONF_ADDR, "peer address" } } },
	{ "listen", NULL, CONF_MULTI, 1, { { CONF_ADDR, "address" } },
	    listen_opts },
	{ "replication-listen", NULL, CONF_MULTI, 1,
	    { { CONF_ADDR, "address" } }, listen_opts },
	{ "metrics-listen", NULL, CONF_MULTI, 1,
	    { { CONF_ADDR, "address" } }, listen_opts },
	{ "advertise", NULL, 0, 1, { { CONF_ADDR, "address" } } },
	{ "secret", NULL, 0, 1, { { CONF_STR, "secret" } } },
	{ "secret-file", NULL, 0, 1, { { CONF_PATH, "secret file" } } },
	{ "tls", NULL, CONF_BLOCK, 0 },
	TLS_GRAMMAR("tls"),
	{ "replication-tls", NULL, 0, 1, { { CONF_BOOL, "replication-tls" } },
	    rtls_opts, "no" },
	{ "durability", NULL, 0, 1, { { CONF_ENUM, "durability", 0, 0,
	    "async|quorum" }, { CONF_INT, "quorum", 1, DBREP_MAXREPLICAS } },
	    durability_opts, "async" },
	{ "synchronous", NULL, 0, 1, { { CONF_ENUM, "synchronous", 0, 0,
	    "off|normal|full|extra" } }, NULL, "full" },
	{ "group-commit", NULL, 0, 1, { { CONF_BOOL, "group-commit" } },
	    NULL, "yes" },
	{ "foreign-keys", NULL, 0, 1, { { CONF_BOOL, "foreign-keys" } },
	    NULL, "yes" },
	{ "busy-timeout", NULL, 0, 1, { { CONF_TIME, "busy-timeout", 0,
	    600000 } }, NULL, "5s" },
	{ "max-txn-size", NULL, 0, 1, { { CONF_SIZE, "max-txn-size", 1024,
	    512LL * 1024 * 1024 } }, NULL, "64m" },
	{ "max-request-size", NULL, 0, 1, { { CONF_SIZE, "max-request-size",
	    1024, 512LL * 1024 * 1024 } }, NULL, "16m" },
	{ "max-result-size", NULL, 0, 1, { { CONF_SIZE, "max-result-size",
	    1024, 512LL * 1024 * 1024 } }, NULL, "64m" },
	{ "max-lsn-wait", NULL, 0, 1, { { CONF_TIME, "max-lsn-wait", 0,
	    600000 } }, NULL, "5s" },
	{ "heartbeat", NULL, 0, 1, { { CONF_TIME, "heartbeat", 10,
	    60000 } }, NULL, "1s" },
	{ "replication-timeout", NULL, 0, 1, { { CONF_TIME,
	    "replication-timeout", 100, 600000 } }, NULL, "5s" },
	{ "peer-check", NULL, 0, 1, { { CONF_TIME, "peer-check", 100,
	    3600000 } }, NULL, "2s" },
	{ "idle-timeout", NULL, 0, 1, { { CONF_TIME, "idle-timeout", 100,
	    86400000 } }, NULL, "5m" },
	{ "log-min-records", NULL, 0, 1, { { CONF_INT, "log-min-records", 0,
	    1000000000 } }, NULL, "10000" },
	{ "log-max-records", NULL, 0, 1, { { CONF_INT, "log-max-records", 1,
	    1000000000 } }, NULL, "1000000" },
	{ "log-max-size", NULL, 0, 1, { { CONF_SIZE, "log-max-size", 4096,
	    1LL << 40 } }, NULL, "1g" },
	{ "failover", NULL, 0, 1, { { CONF_ENUM, "failover", 0, 0,
	    "manual|auto" } }, failover_opts, "manual" },
	{ "allow", NULL, CONF_MULTI | CONF_VARIADIC, 1,
	    { { CONF_CIDR, "address" } } },
	{ "deny", NULL, CONF_MULTI | CONF_VARIADIC, 1,
	    { { CONF_CIDR, "address" } } },
	{ "replication-allow", NULL, CONF_MULTI | CONF_VARIADIC, 1,
	    { { CONF_CIDR, "address" } } },
	{ "replication-deny", NULL, CONF_MULTI | CONF_VARIADIC, 1,
	    { { CONF_CIDR, "address" } } },
	{ "metrics-allow", NULL, CONF_MULTI | CONF_VARIADIC, 1,
	    { { CONF_CIDR, "address" } } },
	{ "metrics-deny", NULL, CONF_MULTI | CONF_VARIADIC, 1,
	    { { CONF_CIDR, "address" } } },
	{ NULL }
};

static int
read_secret(struct conf *c, struct conf_node *n, const char *path,
    struct dbrepd_conf *dc)
{
	char	buf[DBREP_MAXSECRET + 2];
	ssize_t	len;
	int	fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		conf_error(c, n, "%s: %s", path, strerror(errno));
		return (-1);
	}
	len = read(fd, buf, sizeof(buf));
	close(fd);
	if (len < 0) {
		conf_error(c, n, "%s: %s", path, strerror(errno));
		return (-1);
	}
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		len--;
	if (len == 0 || len > DBREP_MAXSECRET) {
		conf_error(c, n, "%s: the secret must be 1 to %d bytes", path,
		    DBREP_MAXSECRET);
		explicit_bzero(buf, sizeof(buf));
		return (-1);
	}
	if ((dc->secret = malloc(len + 1)) == NULL)
		fatal("%s", __func__);
	memcpy(dc->secret, buf, len);
	dc->secret[len] = '\0';
	dc->secretlen = len;
	explicit_bzero(buf, sizeof(buf));
	return (0);
}

static void
dbrepd_unload(void *p)
{
	struct dbrepd_conf	*dc = p;

	if (dc == NULL)
		return;
	if (dc->secret != NULL) {
		explicit_bzero(dc->secret, dc->secretlen);
		free(dc->secret);
	}
	net_acl_free(&dc->acl);
	net_acl_free(&dc->repl_acl);
	net_acl_free(&dc->metrics_acl);
	tls_free(dc->tls);
	tls_free(dc->rtls);
	free(dc->rtls_name);
	free(dc);
}

/*
 * The allow lists, in conf order, the first match winning: allow/deny
 * for every TCP listener, replication-allow/-deny and
 * metrics-allow/-deny instead of them for those listeners.
 */
static void
acl_load(struct conf *c, struct dbrepd_conf *dc)
{
	static const struct {
		const char	*allow, *deny;
		size_t		 off;
	} lists[] = {
		{ "allow", "deny", offsetof(struct dbrepd_conf, acl) },
		{ "replication-allow", "replication-deny",
		    offsetof(struct dbrepd_conf, repl_acl) },
		{ "metrics-allow", "metrics-deny",
		    offsetof(struct dbrepd_conf, metrics_acl) },
	};
	struct conf_node	*n;
	struct net_cidr		 cidr;
	struct net_acl		*acl;
	size_t			 k;
	int			 i, allow;

	TAILQ_FOREACH(n, &c->root.children, entry) {
		for (k = 0; k < nitems(lists); k++) {
			allow = strcmp(n->kw->name, lists[k].allow) == 0;
			if (allow || strcmp(n->kw->name, lists[k].deny) == 0)
				break;
		}
		if (k == nitems(lists))
			continue;
		acl = (struct net_acl *)((char *)dc + lists[k].off);
		for (i = 0; i < n->nargs; i++)
			if (net_cidr_parse(n->args[i].str, &cidr) == 0)
				net_acl_add(acl, allow, &cidr);
	}
}

/*
 * failover auto: the checks that make it safe where the conf can tell
 * (dbrepd.conf(5) has the argument).
 */
static void
failover_load(struct conf *c, struct dbrepd_conf *dc)
{
	struct conf_node	*n, *d;

	if ((n = conf_get(&c->root, "failover")) == NULL)
		return;
	dc->failover = n->args[0].num == 1;
	dc->failover_after = conf_optnum(n, "after", 0);
	dc->failover_alone = conf_opt(n, "alone") != NULL;
	if (!dc->failover) {
		if (conf_opt(n, "after") != NULL || dc->failover_alone)
			conf_error(c, n, "failover manual takes no options");
		return;
	}
	d = conf_get(&c->root, "durability");
	if (conf_opt(n, "after") == NULL)
		conf_error(c, n, "failover auto needs the silence after which "
		    "a replica promotes itself: failover auto after 2s");
	else if (dc->failover_after < 2 * dc->heartbeat)
		conf_error(c, n, "failover auto after %llu ms: at least twice "
		    "the heartbeat (%llu ms), or a late heartbeat starts an "
		    "election", (unsigned long long)dc->failover_after,
		    (unsigned long long)dc->heartbeat);
	if (dc->quorum == 0)
		conf_error(c, d != NULL ? d : n, "failover auto needs "
		    "durability quorum: an async primary acknowledges commits "
		    "that no replica holds, and a promotion would lose them; "
		    "its replicas could not tell that it is dead rather than "
		    "cut off, and two primaries would take writes");
	else if (dc->degrade)
		conf_error(c, d, "failover auto needs on-timeout fail: a "
		    "degraded primary acknowledges commits alone, as an async "
		    "one");
	if (dc->npeers == 0)
		conf_error(c, n, "failover auto needs the other nodes as "
		    "\"peer\": the election asks them, the quorum counts "
		    "them, and they tell an old primary of the new epoch");
	else if (dc->failover_alone && dc->npeers > 1)
		conf_error(c, n, "failover auto ... alone is for a pair of "
		    "nodes (one peer): with more, a new primary has replicas "
		    "left to hold its commits");
	else if (dc->quorum > dc->npeers)
		conf_error(c, d != NULL ? d : n, "durability quorum %d with "
		    "%d peer%s: with failover auto only peers count for the "
		    "quorum, and a primary could never commit", dc->quorum,
		    dc->npeers, dc->npeers == 1 ? "" : "s");
}

/*
 * The listener just added for <n> speaks TLS if the statement says
 * "tls": TCP only, with the certificates of the "tls" block.
 */
static void
tls_listener(struct conf *c, struct conf_node *n, struct proc_settings *ps,
    struct dbrepd_conf *dc)
{
	int	i = ps->nlisteners - 1;

	if (conf_opt(n, "tls") == NULL)
		return;
	if (ps->listeners[i].addr.family == AF_UNIX)
		conf_error(c, n, "tls is for TCP listeners: a unix socket is "
		    "guarded by its mode, owner and group");
	else if (conf_get(&c->root, "tls") == NULL)
		conf_error(c, n, "%s ... tls needs a \"tls { certificate ... "
		    "}\" block", n->kw->name);
	else
		dc->tls_listeners |= 1ULL << i;
}

/* The "tls" block and replication-tls: the contexts, in the master. */
static void
tls_load(struct conf *c, struct dbrepd_conf *dc)
{
	struct conf_node	*n;
	const char		*ca, *name;
	char			 err[512];

	if ((n = conf_get(&c->root, "tls")) != NULL)
		dc->tls = tls_server_load(c, n);
	if ((n = conf_get(&c->root, "replication-tls")) == NULL)
		return;
	ca = conf_optstr(n, "ca", NULL);
	name = conf_optstr(n, "name", NULL);
	if (!n->args[0].num) {
		if (n->nopts > 0)
			conf_error(c, n, "replication-tls no takes no options");
		return;
	}
	if (!conf_optnum(n, "verify", 1) && (ca != NULL || name != NULL))
		conf_error(c, n, "replication-tls ... verify no checks no CA "
		    "and no name");
	if ((dc->rtls = tls_client_new(ca, conf_optnum(n, "verify", 1), err,
	    sizeof(err))) == NULL)
		conf_error(c, n, "%s", err);
	if (name != NULL && (dc->rtls_name = strdup(name)) == NULL)
		fatal("%s", __func__);
}

static void *
dbrepd_load(struct conf *c, struct proc_settings *ps)
{
	struct dbrepd_conf	*dc;
	struct conf_node	*n;
	char			 err[256], host[DBREP_NAMELEN];
	const char		*s;
	int			 i, ntcp = 0, nclient = 0;

	if ((dc = calloc(1, sizeof(*dc))) == NULL)
		fatal("%s", __func__);
	if ((s = conf_str(c, &c->root, "name")) != NULL)
		strlcpy(dc->name, s, sizeof(dc->name));
	else {
		if (gethostname(host, sizeof(host)) == -1)
			strlcpy(host, "dbrepd", sizeof(host));
		host[sizeof(host) - 1] = '\0';
		strlcpy(dc->name, host, sizeof(dc->name));
	}
	n = conf_get(&c->root, "data");
	if (n != NULL) {
		if (strlcpy(dc->data, n->args[0].str, sizeof(dc->data)) >=
		    sizeof(dc->data) - 16)
			conf_error(c, n, "data path too long");
		snprintf(dc->statefile, sizeof(dc->statefile), "%s-node",
		    dc->data);
	}
	dc->role = conf_num(c, &c->root, "role") == 0 ? ROLE_PRIMARY :
	    ROLE_REPLICA;
	if ((n = conf_get(&c->root, "primary")) != NULL) {
		if (net_addr_parse(n->args[0].str, &dc->primary, err,
		    sizeof(err)) == -1)
			conf_error(c, n, "invalid address \"%s\": %s",
			    n->args[0].str, err);
		dc->has_primary = 1;
	}
	if (dc->role == ROLE_REPLICA && !dc->has_primary)
		conf_error(c, conf_get(&c->root, "role"), "a replica needs "
		    "\"primary\", the address of its primary's "
		    "replication-listen");
	CONF_FOREACH(n, &c->root, "peer")
		for (i = 0; i < n->nargs; i++) {
			if (dc->npeers >= DBREP_MAXPEERS) {
				conf_error(c, n, "too many peers (max %d)",
				    DBREP_MAXPEERS);
				break;
			}
			if (net_addr_parse(n->args[i].str,
			    &dc->peers[dc->npeers], err, sizeof(err)) == -1)
				conf_error(c, n, "invalid address \"%s\": %s",
				    n->args[i].str, err);
			else
				dc->npeers++;
		}
	CONF_FOREACH(n, &c->root, "listen") {
		if (proc_listener_add(ps, c, n, n->args[0].str,
		    LISTEN_CLIENT) == -1)
			continue;
		tls_listener(c, n, ps, dc);
		nclient++;
		if (ps->listeners[ps->nlisteners - 1].addr.family != AF_UNIX) {
			ntcp++;
			if (dc->advertise[0] == '\0')
				strlcpy(dc->advertise, ps->listeners[
				    ps->nlisteners - 1].addr.text,
				    sizeof(dc->advertise));
		}
	}
	if (nclient == 0)
		conf_error(c, NULL, "%s: no \"listen\": clients could not "
		    "connect", c->nfiles > 0 ? c->files[0] : "conf");
	if (dc->advertise[0] == '\0' && ps->nlisteners > 0)
		strlcpy(dc->advertise, ps->listeners[0].addr.text,
		    sizeof(dc->advertise));
	if ((n = conf_get(&c->root, "advertise")) != NULL)
		strlcpy(dc->advertise, n->args[0].str, sizeof(dc->advertise));
	CONF_FOREACH(n, &c->root, "replication-listen") {
		if (proc_listener_add(ps, c, n, n->args[0].str,
		    LISTEN_REPL) == -1)
			continue;
		tls_listener(c, n, ps, dc);
		if (ps->listeners[ps->nlisteners - 1].addr.family != AF_UNIX)
			ntcp++;
		if (dc->repladdr[0] == '\0')
			strlcpy(dc->repladdr, ps->listeners[
			    ps->nlisteners - 1].addr.text,
			    sizeof(dc->repladdr));
	}
	CONF_FOREACH(n, &c->root, "metrics-listen")
		if (proc_listener_add(ps, c, n, n->args[0].str,
		    LISTEN_METRICS) == 0)
			tls_listener(c, n, ps, dc);
	if ((n = conf_get(&c->root, "secret")) != NULL) {
		if ((dc->secret = strdup(n->args[0].str)) == NULL)
			fatal("%s", __func__);
		dc->secretlen = strlen(dc->secret);
		if (dc->secretlen == 0 || dc->secretlen > DBREP_MAXSECRET)
			conf_error(c, n, "the secret must be 1 to %d bytes",
			    DBREP_MAXSECRET);
	}
	if ((n = conf_get(&c->root, "secret-file")) != NULL) {
		if (dc->secret != NULL)
			conf_error(c, n, "secret and secret-file exclude each "
			    "other");
		else
			read_secret(c, n, n->args[0].str, dc);
	}
	if ((ntcp > 0 || dc->has_primary || dc->npeers > 0) &&
	    dc->secret == NULL)
		conf_error(c, NULL, "%s: TCP listeners and replication need a "
		    "shared secret (secret or secret-file)",
		    c->nfiles > 0 ? c->files[0] : "conf");
	if ((n = conf_get(&c->root, "durability")) != NULL &&
	    n->args[0].num == 1) {
		if (n->nargs < 2)
			conf_error(c, n, "durability quorum needs the number "
			    "of replicas");
		else
			dc->quorum = n->args[1].num;
		dc->quorum_timeout = conf_optnum(n, "timeout", 1000);
		dc->degrade = conf_optnum(n, "on-timeout", 0) == 1;
	} else if (n != NULL && n->nargs > 1)
		conf_error(c, n, "durability async takes no number");
	dc->synchronous = conf_num(c, &c->root, "synchronous");
	dc->foreign_keys = conf_num(c, &c->root, "foreign-keys");
	dc->group_commit = conf_num(c, &c->root, "group-commit");
	dc->busy_timeout = conf_num(c, &c->root, "busy-timeout");
	dc->max_txn = conf_num(c, &c->root, "max-txn-size");
	dc->max_request = conf_num(c, &c->root, "max-request-size");
	dc->max_result = conf_num(c, &c->root, "max-result-size");
	dc->max_lsn_wait = conf_num(c, &c->root, "max-lsn-wait");
	dc->heartbeat = conf_num(c, &c->root, "heartbeat");
	dc->repl_timeout = conf_num(c, &c->root, "replication-timeout");
	dc->peer_check = conf_num(c, &c->root, "peer-check");
	dc->idle_timeout = conf_num(c, &c->root, "idle-timeout");
	dc->log_min_records = conf_num(c, &c->root, "log-min-records");
	dc->log_max_records = conf_num(c, &c->root, "log-max-records");
	dc->log_max_size = conf_num(c, &c->root, "log-max-size");
	if (dc->log_min_records > dc->log_max_records)
		conf_error(c, conf_get(&c->root, "log-min-records"),
		    "log-min-records is above log-max-records");
	if (dc->repl_timeout <= dc->heartbeat)
		conf_error(c, conf_get(&c->root, "replication-timeout"),
		    "replication-timeout must be longer than heartbeat");
	failover_load(c, dc);
	acl_load(c, dc);
	tls_load(c, dc);
	if (c->nerrors > 0) {
		dbrepd_unload(dc);
		return (NULL);
	}
	return (dc);
}

static void
chown_files(const struct dbrepd_conf *dc, struct proc_settings *ps)
{
	const char	*sfx[] = { "", "-wal", "-shm", "-node" };
	char		 p[PATH_MAX + 8];
	size_t		 i;

	if (!ps->droppriv)
		return;
	for (i = 0; i < nitems(sfx); i++) {
		snprintf(p, sizeof(p), "%s%s", dc->data, sfx[i]);
		if (chown(p, ps->uid, ps->gid) == -1 && errno != ENOENT)
			log_warn("chown %s", p);
	}
}

/*
 * Ask the peers whether a later epoch exists; if one does, this node
 * fences itself before it takes any write (repl.c does the same while
 * it runs).
 */
static void
startup_probe(struct dbrepd_conf *dc, struct nodestate *ns, uint64_t *epoch,
    int *role)
{
	uint64_t	pe;
	char		pnode[DBREP_NAMELEN], prepl[NET_ADDRSTRLEN];
	int		prole, i;

	for (i = 0; i < dc->npeers; i++) {
		if (probe_peer(dc, &dc->peers[i], &prole, &pe, pnode,
		    sizeof(pnode), prepl, sizeof(prepl)) == -1)
			continue;
		/* who answers there: a member of the quorum (ship.c) */
		board_set(board->peer_names[i], sizeof(board->peer_names[i]),
		    pnode);
		if (pe <= *epoch)
			continue;
		log_warnx("peer %s (%s) is at epoch %llu, this node at %llu: "
		    "starting as a replica", pnode, dc->peers[i].text,
		    (unsigned long long)pe, (unsigned long long)*epoch);
		ns->fenced = pe;
		if (prole == ROLE_PRIMARY)
			strlcpy(ns->follow, dc->peers[i].text,
			    sizeof(ns->follow));
		else if (prepl[0] != '\0')
			strlcpy(ns->follow, prepl, sizeof(ns->follow));
		if (state_save(dc->statefile, ns) == -1)
			log_warn("%s", dc->statefile);
		*epoch = pe;
		*role = ROLE_REPLICA;
	}
}

static int
dbrepd_setup(void *p, struct proc_settings *ps)
{
	static int		 done;
	struct dbrepd_conf	*dc = p;
	struct nodestate	 ns;
	struct meta		 mt;
	sqlite3			*db;
	uint64_t		 epoch, bytes;
	char			 err[512];
	int			 role, rc;

	if (board_init() == -1) {
		log_warn("cannot map the shared board");
		return (-1);
	}
	metrics_init();
	if (done)
		return (0);	/* a reload: the database is set up */
	snap_cleanup(dc->data);
	if ((db = db_open(dc, DB_CREATE | DB_APPLY, err, sizeof(err))) ==
	    NULL) {
		log_warnx("%s", err);
		return (-1);
	}
	if (db_schema(db, err, sizeof(err)) == -1) {
		log_warnx("%s: %s", dc->data, err);
		goto fail;
	}
	if ((rc = db_check_tables(db, err, sizeof(err))) != 1) {
		log_warnx("%s: %s", dc->data, rc == 0 ? err :
		    sqlite3_errmsg(db));
		goto fail;
	}
	if (state_load(dc->statefile, &ns) == -1) {
		log_warn("%s", dc->statefile);
		goto fail;
	}
	if ((role = db_role(db, dc, &ns, &epoch)) == -1) {
		log_warnx("%s: %s", dc->data, sqlite3_errmsg(db));
		goto fail;
	}
	if (epoch == 0 && role == ROLE_PRIMARY) {
		if (apply_epoch(db, 1, dc->name, &mt, err, sizeof(err)) == -1) {
			log_warnx("%s: cannot start epoch 1: %s", dc->data,
			    err);
			goto fail;
		}
		epoch = 1;
		log_info("new database %s: primary %s, epoch 1", dc->data,
		    dc->name);
	}
	if (role == ROLE_PRIMARY)
		startup_probe(dc, &ns, &epoch, &role);
	if (db_meta(db, &mt) == -1) {
		log_warnx("%s: %s", dc->data, sqlite3_errmsg(db));
		goto fail;
	}
	if (role != dc->role)
		log_info("%s is the %s of epoch %llu (the conf says %s)",
		    dc->name, role == ROLE_PRIMARY ? "primary" : "replica",
		    (unsigned long long)epoch,
		    dc->role == ROLE_PRIMARY ? "primary" : "replica");
	atomic_store(&board->role, role);
	atomic_store(&board->epoch, epoch);
	db_sync(db);	/* what a crashed primary committed, now durable */
	board_set_lsn(mt.lsn, mt.ts);
	atomic_store(&board->quorum_lsn, mt.lsn);
	atomic_store(&board->log_first, mt.prune_lsn + 1);
	if (db_log_bytes(db, &bytes) == 0)
		atomic_store(&board->log_bytes, bytes);
	atomic_store(&board->writable, role == ROLE_PRIMARY);
	if (role == ROLE_PRIMARY)
		board_set(board->primary_client, sizeof(board->primary_client),
		    dc->advertise);
	if (role == ROLE_PRIMARY && dc->failover_alone) {
		if (ns.counted >= epoch)
			atomic_store(&board->counted, epoch);
		else {
			/* no replica was told it counts yet: none may win */
			atomic_store(&board->degraded, 1);
			atomic_store(&board->alone_upto, mt.lsn);
			log_warnx("primary of epoch %llu: commits are answered "
			    "alone until a replica holds them (failover "
			    "alone)", (unsigned long long)epoch);
		}
	}
	if (ns.follow[0] != '\0')
		board_set(board->follow, sizeof(board->follow), ns.follow);
	else if (dc->has_primary)
		board_set(board->follow, sizeof(board->follow),
		    dc->primary.text);
	db_close(db);
	chown_files(dc, ps);
	done = 1;
	return (0);
 fail:
	db_close(db);
	return (-1);
}

static int
repl_child_count(void *p)
{
	return (1);
}

static const struct proc_ops dbrepd_ops = {
	.name = "dbrepd",
	.conffile = "/etc/dbrepd.conf",
	.grammar = grammar,
	.load = dbrepd_load,
	.unload = dbrepd_unload,
	.setup = dbrepd_setup,
	.worker = server_main,
	.roles = {
		{ "replication", repl_child_count, repl_main },
		{ NULL }
	},
};

int
main(int argc, char *argv[])
{
	return (proc_main(argc, argv, &dbrepd_ops));
}
