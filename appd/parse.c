/*
 * parse.c: appd.conf, from the checked tree to struct appd_conf.
 */
#include <sys/types.h>
#include <sys/stat.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "appd.h"
#include "dbrep.h"
#include "http_worker.h"
#include "log.h"
#include "shm.h"

static const struct conf_opt listen_opts[] = {
	{ "backlog", { CONF_INT, "backlog", 1, 65535 } },
	{ "mode", { CONF_MODE, "mode" } },
	{ "owner", { CONF_STR, "owner" } },
	{ "group", { CONF_STR, "group" } },
	{ NULL }
};

static const struct conf_opt route_opts[] = {
	{ "timeout", { CONF_TIME, "timeout", 1, 86400000 } },
	{ "root", { CONF_PATH, "root" } },
	{ NULL }
};

#define MAXW	PROC_MAXWORKERS

const struct conf_kw appd_grammar[] = {
	PROC_GRAMMAR,
	HTTP_LIMITS_GRAMMAR(NULL),
	{ "name", NULL, 0, 1, { { CONF_NAME, "instance name" } } },
	{ "listen", NULL, CONF_MULTI | CONF_REQUIRED, 1,
	    { { CONF_ADDR, "address" } }, listen_opts },
	{ "status", NULL, 0, 1, { { CONF_ADDR, "address" } }, listen_opts },
	{ "status-allow", NULL, CONF_MULTI | CONF_VARIADIC, 1,
	    { { CONF_CIDR, "address" } } },
	{ "trusted-proxy", NULL, CONF_MULTI | CONF_VARIADIC, 1,
	    { { CONF_STR, "address" } } },
	{ "pool", NULL, 0, 1, { { CONF_ENUM, "pool", 0, 0,
	    "static|dynamic" } }, NULL, "dynamic" },
	{ "start-workers", NULL, 0, 1, { { CONF_INT, "start-workers", 1,
	    MAXW } } },
	{ "min-spare", NULL, 0, 1, { { CONF_INT, "min-spare", 1, MAXW } } },
	{ "max-spare", NULL, 0, 1, { { CONF_INT, "max-spare", 1, MAXW } } },
	{ "max-workers", NULL, 0, 1, { { CONF_INT, "max-workers", 1,
	    MAXW } } },
	{ "spawn-rate", NULL, 0, 1, { { CONF_INT, "spawn-rate", 1, 1000 } },
	    NULL, "32" },
	{ "idle-timeout", NULL, 0, 1, { { CONF_TIME, "idle-timeout", 0,
	    86400000 } }, NULL, "10s" },
	{ "max-requests", NULL, 0, 1, { { CONF_INT, "max-requests", 0,
	    1000000000 } }, NULL, "0" },
	{ "max-rss", NULL, 0, 1, { { CONF_SIZE, "max-rss", 0, 1LL << 40 } },
	    NULL, "0" },
	{ "rlimit-as", NULL, 0, 1, { { CONF_SIZE, "rlimit-as", 0,
	    1LL << 46 } }, NULL, "0" },
	{ "request-timeout", NULL, 0, 1, { { CONF_TIME, "request-timeout", 0,
	    86400000 } }, NULL, "60s" },
	{ "kill-grace", NULL, 0, 1, { { CONF_TIME, "kill-grace", 0,
	    3600000 } }, NULL, "2s" },
	{ "slow-request", NULL, 0, 1, { { CONF_TIME, "slow-request", 0,
	    86400000 } }, NULL, "5s" },
	{ "cgi-timeout", NULL, 0, 1, { { CONF_TIME, "cgi-timeout", 1,
	    86400000 } }, NULL, "30s" },
	{ "app", NULL, CONF_BLOCK | CONF_MULTI | CONF_UNIQUE, 1,
	    { { CONF_NAME, "app name" } } },
	{ "module", "app", CONF_REQUIRED, 1, { { CONF_PATH, "module" } } },
	{ "set", "app", CONF_MULTI | CONF_UNIQUE, 2,
	    { { CONF_NAME, "setting" }, { CONF_STR, "value" } } },
	{ "database", "app", 0, 1, { { CONF_STR, "database nodes" } } },
	{ "database-secret", "app", 0, 1, { { CONF_STR, "secret" } } },
	{ "database-timeout", "app", 0, 1, { { CONF_TIME, "database-timeout",
	    1, 3600000 } } },
	{ "database-busy-poll", "app", 0, 1, { { CONF_USEC,
	    "database-busy-poll", 0, DBREP_BUSY_POLL_MAX } } },
	{ "lsn-wait", "app", 0, 1, { { CONF_TIME, "lsn-wait", 0,
	    600000 } } },
	{ "lsn-cookie", "app", 0, 1, { { CONF_NAME, "cookie name" } } },
	{ "route", NULL, CONF_MULTI | CONF_UNIQUE, 3,
	    { { CONF_STR, "path prefix" }, { CONF_ENUM, "kind", 0, 0,
	    "app|cgi" }, { CONF_STR, "app name or directory" } },
	    route_opts },
	{ NULL }
};

static void
app_free(struct app_conf *a)
{
	int	i;

	if (a == NULL)
		return;
	free(a->name);
	free(a->module);
	for (i = 0; i < a->nsettings; i++) {
		free(a->settings[i].name);
		free(a->settings[i].value);
	}
	free(a->db_nodes);
	if (a->db_secret != NULL) {
		explicit_bzero(a->db_secret, strlen(a->db_secret));
		free(a->db_secret);
	}
	free(a->lsn_cookie);
	free(a);
}

static struct app_conf *
app_read(struct conf *c, struct conf_node *b)
{
	struct app_conf		*a;
	struct conf_node	*n;
	char			 err[512];
	struct stat		 st;

	if ((a = calloc(1, sizeof(*a))) == NULL)
		fatal("%s", __func__);
	a->name = xstrdup(b->args[0].str);
	if ((n = conf_get(b, "module")) != NULL) {
		a->module = xstrdup(n->args[0].str);
		if (stat(a->module, &st) == -1)
			conf_error(c, n, "module %s: %s", a->module,
			    strerror(errno));
		else if (!S_ISREG(st.st_mode))
			conf_error(c, n, "module %s: not a regular file",
			    a->module);
		else if (app_load_check(a->module, err, sizeof(err)) == -1)
			conf_error(c, n, "module %s: %s", a->module, err);
	}
	CONF_FOREACH(n, b, "set") {
		if (a->nsettings >= APPD_MAXSETTINGS) {
			conf_error(c, n, "too many settings (max %d)",
			    APPD_MAXSETTINGS);
			break;
		}
		a->settings[a->nsettings].name = xstrdup(n->args[0].str);
		a->settings[a->nsettings].value = xstrdup(n->args[1].str);
		a->nsettings++;
	}
	if ((n = conf_get(b, "database")) != NULL)
		a->db_nodes = xstrdup(n->args[0].str);
	if ((n = conf_get(b, "database-secret")) != NULL)
		a->db_secret = xstrdup(n->args[0].str);
	a->db_timeout = (n = conf_get(b, "database-timeout")) != NULL ?
	    (int)n->args[0].num : APPD_DB_TIMEOUT;
	a->db_busy_us = (n = conf_get(b, "database-busy-poll")) != NULL ?
	    (unsigned)n->args[0].num : 0;
	a->lsn_wait = (n = conf_get(b, "lsn-wait")) != NULL ?
	    (int)n->args[0].num : APPD_LSN_WAIT;
	a->lsn_cookie = xstrdup((n = conf_get(b, "lsn-cookie")) != NULL ?
	    n->args[0].str : APPD_LSN_COOKIE);
	if (a->db_nodes == NULL && (conf_get(b, "database-secret") ||
	    conf_get(b, "lsn-wait") || conf_get(b, "lsn-cookie") ||
	    conf_get(b, "database-timeout") ||
	    conf_get(b, "database-busy-poll")))
		conf_error(c, b, "app %s: database settings without a "
		    "database line", a->name);
	return (a);
}

static void
route_read(struct conf *c, struct conf_node *n, struct appd_conf *ac)
{
	struct appd_route	*r;
	const char		*p = n->args[0].str, *t = n->args[2].str;
	struct stat		 st;
	int			 i;

	if (p[0] != '/') {
		conf_error(c, n, "a route is a path prefix starting with "
		    "\"/\": %s", p);
		return;
	}
	if (strstr(p, "/./") != NULL || strstr(p, "/../") != NULL ||
	    strstr(p, "//") != NULL) {
		conf_error(c, n, "route %s: not a normalized path", p);
		return;
	}
	if (ac->nroutes >= APPD_MAXROUTES) {
		conf_error(c, n, "too many routes (max %d)", APPD_MAXROUTES);
		return;
	}
	r = &ac->routes[ac->nroutes];
	memset(r, 0, sizeof(*r));
	r->prefix = xstrdup(p);
	r->prefixlen = strlen(p);
	r->kind = n->args[1].num == 0 ? ROUTE_APP : ROUTE_CGI;
	ac->nroutes++;
	if (r->kind == ROUTE_APP) {
		for (i = 0; i < ac->napps; i++)
			if (strcmp(ac->apps[i]->name, t) == 0)
				r->app = ac->apps[i];
		if (r->app == NULL)
			conf_error(c, n, "route %s: no app \"%s\"", p, t);
		if (conf_opt(n, "timeout") != NULL ||
		    conf_opt(n, "root") != NULL)
			conf_error(c, n, "route %s: timeout and root are for "
			    "cgi routes", p);
		return;
	}
	if (t[0] != '/') {
		conf_error(c, n, "route %s: the CGI directory must be an "
		    "absolute path: %s", p, t);
		return;
	}
	r->dir = xstrdup(t);
	if (stat(t, &st) == -1)
		conf_error(c, n, "route %s: %s: %s", p, t, strerror(errno));
	else if (!S_ISDIR(st.st_mode))
		conf_error(c, n, "route %s: %s is not a directory", p, t);
	r->root = xstrdup(conf_optstr(n, "root", t));
	r->timeout = conf_optnum(n, "timeout", ac->cgi_timeout);
}

/* The pool's settings, and the relations between them. */
static void
pool_read(struct conf *c, struct appd_conf *ac, struct proc_settings *ps)
{
	struct conf_node	*root = &c->root, *n;
	int			 ncpu = proc_ncpu();

	ac->pool = conf_num(c, root, "pool") == 0 ? POOL_STATIC :
	    POOL_DYNAMIC;
	ac->max_workers = (n = conf_get(root, "max-workers")) ?
	    (int)n->args[0].num : APPD_MAXWORKERS(ncpu);
	ac->spawn_rate = conf_num(c, root, "spawn-rate");
	ac->idle_timeout = conf_num(c, root, "idle-timeout");
	if (ac->pool == POOL_STATIC) {
		static const char *dyn[] = { "start-workers", "min-spare",
		    "max-spare", "max-workers" };
		size_t	i;

		for (i = 0; i < nitems(dyn); i++)
			if ((n = conf_get(root, dyn[i])) != NULL)
				conf_error(c, n, "%s is for a dynamic pool; a "
				    "static one has \"workers\"", dyn[i]);
		ac->workers = conf_get(root, "workers") ? ps->workers :
		    APPD_MAXWORKERS(ncpu);
		ac->max_workers = ac->min_spare = ac->max_spare =
		    ac->start_workers = ac->workers;
		ps->workers = ac->workers;
		return;
	}
	if ((n = conf_get(root, "workers")) != NULL)
		conf_error(c, n, "workers is for a static pool; a dynamic one "
		    "has start-workers, min-spare, max-spare and max-workers");
	ac->min_spare = (n = conf_get(root, "min-spare")) ?
	    (int)n->args[0].num : APPD_MINSPARE(ncpu);
	ac->max_spare = (n = conf_get(root, "max-spare")) ?
	    (int)n->args[0].num : APPD_MAXSPARE(ncpu);
	/* defaults yield to what the file says */
	if (conf_get(root, "max-spare") == NULL &&
	    ac->max_spare < ac->min_spare)
		ac->max_spare = ac->min_spare;
	if (conf_get(root, "max-workers") == NULL &&
	    ac->max_workers < ac->max_spare)
		ac->max_workers = ac->max_spare;
	if (conf_get(root, "min-spare") == NULL &&
	    ac->min_spare > ac->max_spare)
		ac->min_spare = ac->max_spare;
	if (conf_get(root, "max-spare") == NULL &&
	    ac->max_spare > ac->max_workers)
		ac->max_spare = ac->max_workers;
	if (conf_get(root, "min-spare") == NULL &&
	    ac->min_spare > ac->max_spare)
		ac->min_spare = ac->max_spare;
	ac->start_workers = (n = conf_get(root, "start-workers")) ?
	    (int)n->args[0].num : ac->min_spare +
	    (ac->max_spare - ac->min_spare) / 2;
	if (ac->min_spare > ac->max_spare)
		conf_error(c, conf_get(root, "min-spare"), "min-spare %d is "
		    "above max-spare %d", ac->min_spare, ac->max_spare);
	if (ac->max_spare > ac->max_workers)
		conf_error(c, conf_get(root, "max-spare"), "max-spare %d is "
		    "above max-workers %d", ac->max_spare, ac->max_workers);
	if (ac->start_workers > ac->max_workers)
		conf_error(c, conf_get(root, "start-workers"), "start-workers "
		    "%d is above max-workers %d", ac->start_workers,
		    ac->max_workers);
	ps->workers = ac->start_workers;
}

void *
appd_load(struct conf *c, struct proc_settings *ps)
{
	struct appd_conf	*ac;
	struct conf_node	*n, *root = &c->root;
	char			 host[256];
	int			 i;

	if ((ac = calloc(1, sizeof(*ac))) == NULL)
		fatal("%s", __func__);
	http_limits_load(root, &ac->lim, NULL);
	if (ac->lim.max_body == 0)
		ac->lim.max_body = APPD_MAXBODY_HARD;
	if ((n = conf_get(root, "name")) != NULL)
		ac->name = xstrdup(n->args[0].str);
	else {
		if (gethostname(host, sizeof(host)) == -1)
			strlcpy(host, "appd", sizeof(host));
		host[sizeof(host) - 1] = '\0';
		ac->name = xstrdup(host);
	}
	pool_read(c, ac, ps);
	ac->max_requests = conf_num(c, root, "max-requests");
	ac->max_rss = conf_num(c, root, "max-rss");
	ac->rlimit_as = conf_num(c, root, "rlimit-as");
	ac->request_timeout = conf_num(c, root, "request-timeout");
	ac->kill_grace = conf_num(c, root, "kill-grace");
	ac->slow_request = conf_num(c, root, "slow-request");
	ac->cgi_timeout = conf_num(c, root, "cgi-timeout");
	if (ac->slow_request > 0 && ac->request_timeout > 0 &&
	    ac->slow_request >= ac->request_timeout)
		conf_error(c, conf_get(root, "slow-request") ?
		    conf_get(root, "slow-request") :
		    conf_get(root, "request-timeout"), "slow-request (%llu "
		    "ms) must be below request-timeout (%llu ms), or 0",
		    (unsigned long long)ac->slow_request,
		    (unsigned long long)ac->request_timeout);
	if (ac->rlimit_as > 0 && ac->max_rss >= ac->rlimit_as)
		conf_error(c, conf_get(root, "max-rss"), "max-rss must be "
		    "below rlimit-as, or the limit stops the worker first");
	if (ac->request_timeout > 0 && ac->kill_grace + ac->request_timeout >
	    ps->grace_ms && ps->grace_ms > 0)
		log_debug("request-timeout + kill-grace exceed "
		    "shutdown-timeout: a stop may cut long requests");
	conf_trusted(c, "trusted-proxy", &ac->trusted);

	CONF_FOREACH(n, root, "listen")
		proc_listener_add(ps, c, n, n->args[0].str, ac);
	if ((n = conf_get(root, "status")) != NULL) {
		struct conf_node	*a;
		struct net_cidr		 cidr;

		CONF_FOREACH(a, root, "status-allow")
			for (i = 0; i < a->nargs; i++)
				if (net_cidr_parse(a->args[i].str, &cidr) == 0)
					net_acl_add(&ac->status_acl, 1, &cidr);
		ac->status = status_server(ac);
		proc_listener_add(ps, c, n, n->args[0].str, ac->status);
	} else if ((n = conf_get(root, "status-allow")) != NULL)
		conf_error(c, n, "status-allow without a status listener");

	CONF_FOREACH(n, root, "app") {
		if (ac->napps >= APPD_MAXAPPS) {
			conf_error(c, n, "too many apps (max %d)",
			    APPD_MAXAPPS);
			break;
		}
		ac->apps[ac->napps++] = app_read(c, n);
	}
	CONF_FOREACH(n, root, "route")
		route_read(c, n, ac);
	if (c->nerrors > 0) {
		appd_unload(ac);
		return (NULL);
	}
	return (ac);
}

void
appd_unload(void *p)
{
	struct appd_conf	*ac = p;
	int			 i;

	if (ac == NULL)
		return;
	for (i = 0; i < ac->napps; i++)
		app_free(ac->apps[i]);
	for (i = 0; i < ac->nroutes; i++) {
		free(ac->routes[i].prefix);
		free(ac->routes[i].dir);
		free(ac->routes[i].root);
	}
	status_free(ac->status);
	net_acl_free(&ac->status_acl);
	net_acl_free(&ac->trusted.acl);
	free(ac->name);
	free(ac);
}

/* Is <l> one of the listeners the workers serve (not the status one)? */
int
appd_is_worker_listener(struct appd_conf *ac, const struct proc_listener *l)
{
	return (l->arg == ac);
}

/*
 * In the master, before forking: the scoreboard and the statistics,
 * which both outlive a reload (found again by name).
 */
int
appd_setup(void *p, struct proc_settings *ps)
{
	struct appd_conf	*ac = p;
	static const char	*classes[] = { "1xx", "2xx", "3xx", "4xx",
				    "5xx" };
	int			 i;

	ac->ps = ps;
	if ((ac->board = board_get()) == NULL) {
		log_warnx("cannot map the scoreboard");
		return (-1);
	}
	for (i = 0; i < 5; i++)
		ac->m_req[i + 1] = stats_counter("appd_requests_total",
		    "Requests answered, by status class.", "code", classes[i],
		    NULL);
	ac->m_dur = stats_histogram("appd_request_duration_seconds",
	    "Time from the request head to the end of the response.",
	    stats_latency_buckets, stats_nlatency_buckets, NULL);
	ac->m_accepted = stats_counter("appd_accepted_connections_total",
	    "Connections accepted by the workers.", NULL);
	ac->m_slow = stats_counter("appd_slow_requests_total",
	    "Requests that ran longer than slow-request.", NULL);
	ac->m_timeouts = stats_counter("appd_request_timeouts_total",
	    "Requests stopped by request-timeout (answered 504).", NULL);
	ac->m_full = stats_counter("appd_max_workers_reached_total",
	    "Times every worker was busy at the pool's maximum.", NULL);
	ac->m_recycled[0] = stats_counter("appd_recycled_workers_total",
	    "Workers replaced after max-requests or max-rss.", "reason",
	    "max-requests", NULL);
	ac->m_recycled[1] = stats_counter("appd_recycled_workers_total",
	    "Workers replaced after max-requests or max-rss.", "reason",
	    "max-rss", NULL);
	ac->m_cgi_timeouts = stats_counter("appd_cgi_timeouts_total",
	    "CGI programs killed by their timeout.", NULL);
	ac->m_spawned = stats_counter("appd_pool_spawned_total",
	    "Workers the dynamic pool started.", NULL);
	ac->m_retired = stats_counter("appd_pool_retired_total",
	    "Idle workers the dynamic pool stopped.", NULL);
	for (i = 0; i < ps->nlisteners; i++)
		if (appd_is_worker_listener(ac, &ps->listeners[i])) {
			int	q, max;

			if (listen_queue(ps->listeners[i].fd,
			    ps->listeners[i].addr.family, &q, &max) == 0)
				atomic_store(&ac->board->listen_queue_len, max);
		}
	return (0);
}
