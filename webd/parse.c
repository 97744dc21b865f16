/*
 * parse.c: webd.conf, from the checked tree to struct webd_conf.
 */
#include <sys/types.h>
#include <sys/stat.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "http_metrics.h"
#include "http_worker.h"
#include "log.h"
#include "proxy_conf.h"
#include "shm.h"
#include "tls.h"
#include "webd.h"

static const struct conf_opt listen_opts[] = {
	{ "tls", { CONF_NONE } },
	{ "proxy-protocol", { CONF_NONE } },
	{ "backlog", { CONF_INT, "backlog", 1, 65535 } },
	{ "mode", { CONF_MODE, "mode" } },
	{ "owner", { CONF_STR, "owner" } },
	{ "group", { CONF_STR, "group" } },
	{ NULL }
};

static const struct conf_opt log_opts[] = {
	{ "format", { CONF_ENUM, "format", 0, 0, "common|combined|forwarded|timed" } },
	{ "facility", { CONF_ENUM, "facility", 0, 0, "daemon|user|local0|"
	    "local1|local2|local3|local4|local5|local6|local7" } },
	{ NULL }
};

static const struct conf_opt server_opts[] = {
	{ "default", { CONF_NONE } },
	{ NULL }
};

static const struct conf_opt location_opts[] = {
	{ "exact", { CONF_NONE } },
	{ NULL }
};

static const struct conf_opt hsts_opts[] = {
	{ "subdomains", { CONF_NONE } },
	{ "preload", { CONF_NONE } },
	{ NULL }
};

#define SL	"server|location"

const struct conf_kw webd_grammar[] = {
	PROC_GRAMMAR,
	HTTP_LIMITS_GRAMMAR(NULL),
	/* a server's or location's own, over the global one */
	{ "max-body-size", SL, 0, 1, { { CONF_SIZE, "max-body-size", 0,
	    1LL << 40 } } },
	{ "mime-types", NULL, 0, 1, { { CONF_PATH, "mime-types file" } } },
	{ "access-log", NULL, 0, 1, { { CONF_STR, "destination" } }, log_opts,
	    "syslog" },
	{ "metrics", NULL, 0, 1, { { CONF_ADDR, "address" } }, listen_opts },
	{ "metrics-allow", NULL, CONF_MULTI | CONF_VARIADIC, 1,
	    { { CONF_CIDR, "address" } } },
	{ "trusted-proxy", NULL, CONF_MULTI | CONF_VARIADIC, 1,
	    { { CONF_STR, "address" } } },
	{ "peer-allow", NULL, CONF_MULTI | CONF_VARIADIC, 1,
	    { { CONF_CIDR, "address" } } },
	{ "server-header", NULL, 0, 1, { { CONF_BOOL, "server-header" } },
	    NULL, "yes" },
	{ "tmpdir", NULL, 0, 1, { { CONF_PATH, "tmpdir" } }, NULL, "/tmp" },
	{ "upstream", NULL, CONF_BLOCK | CONF_MULTI | CONF_UNIQUE, 1,
	    { { CONF_NAME, "upstream name" } } },
	PROXY_GRAMMAR("upstream"),
	{ "server", NULL, CONF_BLOCK | CONF_MULTI | CONF_UNIQUE |
	    CONF_REQUIRED, 1, { { CONF_STR, "server name" } }, server_opts },
	{ "name", "server", CONF_MULTI | CONF_VARIADIC, 1,
	    { { CONF_STR, "host name" } } },
	{ "listen", "server", CONF_MULTI | CONF_REQUIRED, 1,
	    { { CONF_ADDR, "address" } }, listen_opts },
	{ "tls", "server", CONF_BLOCK, 0 },
	TLS_GRAMMAR("tls"),
	{ "hsts", "server", 0, 0, { { CONF_TIME, "max-age", 0,
	    3 * 365 * 86400000LL } }, hsts_opts },
	{ "location", "server", CONF_BLOCK | CONF_MULTI, 1,
	    { { CONF_STR, "path" } }, location_opts },
	{ "root", SL, 0, 1, { { CONF_PATH, "root" } } },
	{ "alias", "location", 0, 1, { { CONF_PATH, "alias" } } },
	{ "index", SL, CONF_VARIADIC, 1, { { CONF_STR, "index file" } } },
	{ "autoindex", SL, 0, 1, { { CONF_BOOL, "autoindex" } } },
	{ "gzip-static", SL, 0, 1, { { CONF_BOOL, "gzip-static" } } },
	{ "dotfiles", SL, 0, 1, { { CONF_BOOL, "dotfiles" } } },
	{ "symlinks", SL, 0, 1, { { CONF_BOOL, "symlinks" } } },
	{ "try-files", SL, CONF_VARIADIC, 1, { { CONF_STR, "try-files" } } },
	{ "header", SL, CONF_MULTI, 2, { { CONF_STR, "field name" },
	    { CONF_STR, "value" } } },
	{ "expires", SL, 0, 1, { { CONF_TIME, "expires", 0,
	    10 * 365 * 86400000LL } } },
	{ "cache-control", SL, 0, 1, { { CONF_STR, "cache-control" } } },
	{ "error-page", SL, CONF_MULTI, 2, { { CONF_INT, "status", 400, 599 },
	    { CONF_STR, "page" } } },
	{ "charset", SL, 0, 1, { { CONF_STR, "charset" } } },
	{ "auth-basic", SL, 0, 1, { { CONF_STR, "realm" },
	    { CONF_PATH, "user file" } } },
	{ "allow", SL, CONF_MULTI | CONF_VARIADIC, 1,
	    { { CONF_CIDR, "address" } } },
	{ "deny", SL, CONF_MULTI | CONF_VARIADIC, 1,
	    { { CONF_CIDR, "address" } } },
	{ "proxy", SL, 0, 1, { { CONF_NAME, "upstream" } } },
	{ "return", SL, 0, 1, { { CONF_INT, "status", 200, 599 },
	    { CONF_STR, "text or URL" } } },
	{ NULL }
};

/* a field value: no control characters but HTAB (RFC 9110 5.5) */
static int
field_value_ok(const char *s)
{
	for (; *s; s++)
		if (((unsigned char)*s < 0x20 && *s != '\t') || *s == 0x7f)
			return (0);
	return (1);
}

static void
loc_init(struct webd_loc *l)
{
	memset(l, 0, sizeof(*l));
	l->rootfd = -1;
	l->autoindex = -1;
	l->gzip_static = -1;
	l->dotfiles = -1;
	l->symlinks = -1;
	l->expires = -1;
	l->max_body = -1;
}

/* A name a request's host can match: a host or address, or "*." and one. */
static int
host_name_ok(const char *s)
{
	return (http_host_ok(s[0] == '*' && s[1] == '.' ? s + 2 : s));
}

/* Whether <p> has a ".." segment. */
static int
dotdot(const char *p)
{
	size_t	n = strlen(p);

	return (strcmp(p, "..") == 0 || strncmp(p, "../", 3) == 0 ||
	    strstr(p, "/../") != NULL || (n >= 3 &&
	    strcmp(p + n - 3, "/..") == 0));
}

/*
 * A try-files entry: "/path", "$uri", "$uri/", "$uri" and a suffix with
 * no variable or ".." segment in it, or "=STATUS" (400-599) or
 * "@upstream" as the last.
 */
static int
try_entry_bad(const char *t, int last)
{
	const char	*p;

	if (t[0] == '@')
		return (!last || t[1] == '\0');
	if (t[0] == '=') {
		for (p = t + 1; *p >= '0' && *p <= '9'; p++)
			;
		return (!last || *p != '\0' || p - t != 4 ||
		    atoi(t + 1) < 400 || atoi(t + 1) > 599);
	}
	if (strncmp(t, "$uri", 4) == 0)
		p = t + 4;
	else if (t[0] == '/')
		p = t;
	else
		return (1);
	if (strchr(p, '$') != NULL || dotdot(p))
		return (1);
	return (0);
}

static struct webd_upstream *
upstream_find(struct webd_conf *wc, const char *name)
{
	struct webd_upstream	*u;

	TAILQ_FOREACH(u, &wc->upstreams, entry)
		if (strcmp(u->name, name) == 0)
			return (u);
	return (NULL);
}

/* The first unknown variable of a redirect's URL, or NULL. */
static const char *
redirect_var_bad(const char *u)
{
	for (; (u = strchr(u, '$')) != NULL; u++)
		if (server_redirect_var(u, NULL, NULL) == 0)
			return (u);
	return (NULL);
}

/*
 * A root or alias must be a directory now: the master opens it before
 * the workers fork (webd_setup()), and a start or reload would fail
 * there, without a line number.  Said here, `webd -n` says it too.
 */
static void
check_dir(struct conf *c, struct conf_node *n, const char *what)
{
	const char	*dir = n->args[0].str;
	struct stat	 st;

	if (stat(dir, &st) == -1)
		conf_error(c, n, "%s %s: %s", what, dir, strerror(errno));
	else if (!S_ISDIR(st.st_mode))
		conf_error(c, n, "%s %s: not a directory", what, dir);
}

/* Read the settings a server and a location share. */
static void
loc_read(struct conf *c, struct conf_node *b, struct webd_loc *l,
    struct webd_conf *wc)
{
	struct conf_node	*n;
	int			 i;

	if ((n = conf_get(b, "root")) != NULL) {
		l->root = xstrdup(n->args[0].str);
		check_dir(c, n, "root");
	}
	if (b->kw != NULL && strcmp(b->kw->name, "location") == 0 &&
	    (n = conf_get(b, "alias")) != NULL) {
		if (l->root != NULL)
			conf_error(c, n, "a location has root or alias, not "
			    "both");
		l->alias = xstrdup(n->args[0].str);
		check_dir(c, n, "alias");
	}
	if ((n = conf_get(b, "auth-basic")) != NULL) {
		l->auth_set = 1;
		if (n->nargs > 1 || strcmp(n->args[0].str, "off") != 0) {
			l->auth = auth_load(c, n);
			l->auth_own = 1;
		}
	}
	if ((n = conf_get(b, "index")) != NULL) {
		if (n->nargs > WEBD_MAXINDEX)
			conf_error(c, n, "too many index files (max %d)",
			    WEBD_MAXINDEX);
		for (i = 0; i < n->nargs && i < WEBD_MAXINDEX; i++) {
			if (strchr(n->args[i].str, '/') != NULL)
				conf_error(c, n, "an index file is a name, "
				    "not a path: %s", n->args[i].str);
			l->index[l->nindex++] = xstrdup(n->args[i].str);
		}
	}
	if ((n = conf_get(b, "autoindex")) != NULL)
		l->autoindex = n->args[0].num;
	if ((n = conf_get(b, "gzip-static")) != NULL)
		l->gzip_static = n->args[0].num;
	if ((n = conf_get(b, "dotfiles")) != NULL)
		l->dotfiles = n->args[0].num;
	if ((n = conf_get(b, "symlinks")) != NULL)
		l->symlinks = n->args[0].num;
	if ((n = conf_get(b, "max-body-size")) != NULL)
		l->max_body = n->args[0].num;
	if ((n = conf_get(b, "try-files")) != NULL) {
		if (n->nargs > WEBD_MAXTRY)
			conf_error(c, n, "too many try-files entries (max %d)",
			    WEBD_MAXTRY);
		for (i = 0; i < n->nargs && i < WEBD_MAXTRY; i++) {
			const char	*t = n->args[i].str;

			if (try_entry_bad(t, i == n->nargs - 1)) {
				conf_error(c, n, "try-files entry \"%s\": a "
				    "path from the root, $uri, $uri/, $uri "
				    "followed by a suffix (\"$uri.html\"), or "
				    "=STATUS (400-599) or @UPSTREAM as the last",
				    t);
				continue;
			}
			if (t[0] == '@' &&
			    (l->try_proxy = upstream_find(wc, t + 1)) == NULL)
				conf_error(c, n, "try-files: no upstream \"%s\"",
				    t + 1);
			if (t[0] == '@' && conf_get(b, "proxy") != NULL)
				conf_error(c, n, "try-files ending in an upstream "
				    "and proxy: the one or the other (proxy "
				    "passes everything)");
			l->try[l->ntry++] = xstrdup(t);
		}
	}
	CONF_FOREACH(n, b, "header") {
		const char	*why;

		if ((why = http_conf_field_check(n->args[0].str,
		    n->args[1].str)) != NULL) {
			conf_error(c, n, "header \"%s\": %s", n->args[0].str,
			    why);
			continue;
		}
		if (l->nheaders >= WEBD_MAXHEADERS) {
			conf_error(c, n, "too many header lines (max %d)",
			    WEBD_MAXHEADERS);
			break;
		}
		l->headers[l->nheaders].name = xstrdup(n->args[0].str);
		l->headers[l->nheaders].value = xstrdup(n->args[1].str);
		l->nheaders++;
	}
	if ((n = conf_get(b, "expires")) != NULL)
		l->expires = n->args[0].num / 1000;
	if ((n = conf_get(b, "cache-control")) != NULL) {
		if (!field_value_ok(n->args[0].str))
			conf_error(c, n, "control characters in "
			    "cache-control");
		l->cache_control = xstrdup(n->args[0].str);
	}
	CONF_FOREACH(n, b, "error-page") {
		if (l->nerrpages >= WEBD_MAXERRPAGES) {
			conf_error(c, n, "too many error pages");
			break;
		}
		if (n->args[1].str[0] != '/' || dotdot(n->args[1].str))
			conf_error(c, n, "an error page is a path from the "
			    "root, with no \"..\": %s", n->args[1].str);
		l->errpages[l->nerrpages].status = n->args[0].num;
		l->errpages[l->nerrpages].path = xstrdup(n->args[1].str);
		l->nerrpages++;
	}
	if ((n = conf_get(b, "charset")) != NULL) {
		const char	*p = n->args[0].str;

		/* it goes into Content-Type: a token, nothing else */
		if (*p == '\0' || p[strspn(p, "abcdefghijklmnopqrstuvwxyz"
		    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-.^_`|~")] !=
		    '\0')
			conf_error(c, n, "invalid charset \"%s\"", p);
		l->charset = xstrdup(p);
	}
	TAILQ_FOREACH(n, &b->children, entry) {
		int		allow = strcmp(n->kw->name, "allow") == 0;
		struct net_cidr	cidr;

		if (!allow && strcmp(n->kw->name, "deny") != 0)
			continue;
		for (i = 0; i < n->nargs; i++)
			if (net_cidr_parse(n->args[i].str, &cidr) == 0)
				net_acl_add(&l->acl, allow, &cidr);
		l->has_acl = 1;
	}
	if ((n = conf_get(b, "proxy")) != NULL) {
		if ((l->proxy = upstream_find(wc, n->args[0].str)) == NULL)
			conf_error(c, n, "no upstream \"%s\"",
			    n->args[0].str);
	}
	if ((n = conf_get(b, "return")) != NULL) {
		const char	*bad;

		l->ret_status = n->args[0].num;
		if (n->nargs > 1) {
			if (!field_value_ok(n->args[1].str))
				conf_error(c, n, "control characters in the "
				    "return text");
			else if (l->ret_status >= 300 && l->ret_status < 400 &&
			    (bad = redirect_var_bad(n->args[1].str)) != NULL)
				conf_error(c, n, "return: unknown variable "
				    "\"%.*s\" (there are $scheme, $host and "
				    "$request_uri)", (int)strcspn(bad + 1,
				    "/?#:$") + 1, bad);
			l->ret_text = xstrdup(n->args[1].str);
		} else if (l->ret_status >= 300 && l->ret_status < 400)
			conf_error(c, n, "a redirect needs a URL");
	}
}

/* Fill what a location leaves unset from its server. */
static void
loc_inherit(struct webd_loc *l, const struct webd_loc *s)
{
	int	i, j;

	/*
	 * A location that says neither where its files are nor to proxy
	 * nor what to return answers as its server does; it still takes
	 * the server's root (for its error pages, when it proxies).
	 */
	if (l->root == NULL && l->alias == NULL && l->proxy == NULL &&
	    l->ret_status == 0) {
		l->proxy = s->proxy;
		l->ret_status = s->ret_status;
		l->ret_text = xstrdup(s->ret_text);
	}
	if (l->root == NULL && l->alias == NULL)
		l->root = xstrdup(s->root);
	if (l->nindex == 0)
		for (i = 0; i < s->nindex; i++)
			l->index[l->nindex++] = xstrdup(s->index[i]);
	if (l->autoindex == -1)
		l->autoindex = s->autoindex;
	if (l->gzip_static == -1)
		l->gzip_static = s->gzip_static;
	if (l->dotfiles == -1)
		l->dotfiles = s->dotfiles;
	if (l->symlinks == -1)
		l->symlinks = s->symlinks;
	if (l->max_body == -1)
		l->max_body = s->max_body;
	if (l->ntry == 0) {
		for (i = 0; i < s->ntry; i++)
			l->try[l->ntry++] = xstrdup(s->try[i]);
		l->try_proxy = s->try_proxy;
	}
	/*
	 * Header lines merge: the server's, then the location's; a location
	 * line replaces a server line of the same name (an empty value
	 * removes it).  Unlike nginx's add_header, a location that adds one
	 * line does not lose all the server's.
	 */
	for (i = 0; i < s->nheaders; i++) {
		for (j = 0; j < l->nheaders; j++)
			if (strcasecmp(l->headers[j].name,
			    s->headers[i].name) == 0)
				break;
		if (j < l->nheaders || l->nheaders >= WEBD_MAXHEADERS)
			continue;
		l->headers[l->nheaders].name = xstrdup(s->headers[i].name);
		l->headers[l->nheaders].value = xstrdup(s->headers[i].value);
		l->nheaders++;
	}
	if (l->expires == -1)
		l->expires = s->expires;
	if (l->cache_control == NULL)
		l->cache_control = xstrdup(s->cache_control);
	for (i = 0; i < s->nerrpages && l->nerrpages < WEBD_MAXERRPAGES;
	    i++) {
		for (j = 0; j < l->nerrpages; j++)
			if (l->errpages[j].status == s->errpages[i].status)
				break;
		if (j < l->nerrpages)
			continue;
		l->errpages[l->nerrpages].status = s->errpages[i].status;
		l->errpages[l->nerrpages].path = xstrdup(s->errpages[i].path);
		l->errpages[l->nerrpages].inherited = 1;
		l->nerrpages++;
	}
	if (l->charset == NULL)
		l->charset = xstrdup(s->charset);
	if (!l->auth_set)
		l->auth = s->auth;
	if (!l->has_acl && s->has_acl) {
		for (i = 0; i < s->acl.nrules; i++)
			net_acl_add(&l->acl, s->acl.rules[i].allow,
			    &s->acl.rules[i].cidr);
		l->has_acl = 1;
	}
}

static void
loc_defaults(struct webd_loc *l)
{
	if (l->nindex == 0)
		l->index[l->nindex++] = xstrdup("index.html");
	if (l->autoindex == -1)
		l->autoindex = 0;
	if (l->gzip_static == -1)
		l->gzip_static = 0;
	if (l->dotfiles == -1)
		l->dotfiles = 0;
	if (l->symlinks == -1)
		l->symlinks = 0;
	if (l->charset == NULL)
		l->charset = xstrdup("utf-8");
}

static void
loc_free(struct webd_loc *l)
{
	int	i;

	free(l->path);
	free(l->root);
	free(l->alias);
	if (l->auth_own)
		auth_free(l->auth);
	if (l->rootfd != -1)
		close(l->rootfd);
	for (i = 0; i < l->nindex; i++)
		free(l->index[i]);
	for (i = 0; i < l->ntry; i++)
		free(l->try[i]);
	for (i = 0; i < l->nheaders; i++) {
		free(l->headers[i].name);
		free(l->headers[i].value);
	}
	free(l->cache_control);
	for (i = 0; i < l->nerrpages; i++)
		free(l->errpages[i].path);
	free(l->charset);
	net_acl_free(&l->acl);
	free(l->ret_text);
}

static struct webd_listener *
listener_get(struct webd_conf *wc, struct conf *c, struct conf_node *n,
    struct proc_settings *ps, int tls)
{
	struct webd_listener	*l;
	struct net_addr		 a;
	char			 err[256];
	int			 i;

	if (net_addr_parse(n->args[0].str, &a, err, sizeof(err)) == -1)
		return (NULL);
	for (i = 0; i < ps->nlisteners; i++) {
		if (!net_addr_eq(&ps->listeners[i].addr, &a))
			continue;
		l = ps->listeners[i].arg;
		if (l->srv.scheme_https != tls) {
			conf_error(c, n, "%s is used with and without tls",
			    a.text);
			return (NULL);
		}
		if (l->proxyproto != (conf_opt(n, "proxy-protocol") != NULL)) {
			conf_error(c, n, "%s is used with and without "
			    "proxy-protocol", a.text);
			return (NULL);
		}
		return (l);
	}
	if ((l = calloc(1, sizeof(*l))) == NULL)
		fatal("%s", __func__);
	l->wc = wc;
	l->srv.lim = &wc->lim;
	l->srv.handler = &webd_handler;
	l->srv.arg = l;
	l->srv.scheme_https = tls;
	l->srv.bad_request = access_log_refused;
	/* a client gone before its answer frees its app worker (nginx) */
	l->srv.abort_on_close = 1;
	/* peers, not clients: checked before a byte is read */
	if (wc->peer_acl.nrules > 0)
		l->srv.acl = &wc->peer_acl;
	/* a PROXY header is taken from the trusted proxies only */
	if ((l->proxyproto = conf_opt(n, "proxy-protocol") != NULL)) {
		if (wc->trusted.acl.nrules == 0 && !wc->trusted.unixpeers)
			conf_error(c, n, "listen ... proxy-protocol needs "
			    "trusted-proxy");
		l->srv.proxy_from = &wc->trusted.acl;
	}
	TAILQ_INSERT_TAIL(&wc->listeners, l, entry);
	if (proc_listener_add(ps, c, n, n->args[0].str, l) == -1)
		return (NULL);
	return (l);
}

static void
acl_read(struct conf *c, const char *kw, struct net_acl *acl)
{
	struct conf_node	*n;
	struct net_cidr		 cidr;
	int			 i;

	CONF_FOREACH(n, &c->root, kw)
		for (i = 0; i < n->nargs; i++)
			if (net_cidr_parse(n->args[i].str, &cidr) == 0)
				net_acl_add(acl, 1, &cidr);
}

/*
 * The engine holds a request head's Content-Length, before any location
 * is chosen, to the largest body a location takes (0: one takes any);
 * server_request() holds it to its location's.
 */
static void
body_limit(struct webd_conf *wc)
{
	struct webd_server	*s;
	struct webd_loc		*l;
	uint64_t		 max = wc->lim.max_body;

	TAILQ_FOREACH(s, &wc->servers, entry) {
		if (max != 0 && (s->base.max_body == 0 ||
		    (uint64_t)s->base.max_body > max))
			max = s->base.max_body;
		TAILQ_FOREACH(l, &s->locs, entry)
			if (max != 0 && (l->max_body == 0 ||
			    (uint64_t)l->max_body > max))
				max = l->max_body;
	}
	wc->lim.max_body = max;
}

void *
webd_load(struct conf *c, struct proc_settings *ps)
{
	struct webd_conf	*wc;
	struct webd_server	*s;
	struct webd_upstream	*u;
	struct webd_loc		*l;
	struct conf_node	*n, *sn, *ln;
	const char		*dst;
	int			 i;

	if ((wc = calloc(1, sizeof(*wc))) == NULL)
		fatal("%s", __func__);
	TAILQ_INIT(&wc->servers);
	TAILQ_INIT(&wc->upstreams);
	TAILQ_INIT(&wc->listeners);
	wc->logdir = -1;
	wc->logfd = -1;
	http_limits_load(&c->root, &wc->lim, NULL);
	wc->server_header = conf_num(c, &c->root, "server-header");
	wc->tmpdir = xstrdup(conf_str(c, &c->root, "tmpdir"));
	wc->mimefile = xstrdup(conf_str(c, &c->root, "mime-types"));
	n = conf_get(&c->root, "access-log");
	dst = conf_str(c, &c->root, "access-log");
	wc->logfmt = n ? conf_optnum(n, "format", LOG_COMBINED) : LOG_COMBINED;
	wc->logfacility = n && conf_opt(n, "facility") ?
	    log_facility(conf_optstr(n, "facility", "daemon")) : -1;
	if (strcmp(dst, "off") == 0)
		wc->logfmt = LOG_OFF;
	else if (strcmp(dst, "syslog") != 0) {
		if (dst[0] != '/')
			conf_error(c, n, "access-log: syslog, off or an "
			    "absolute path");
		wc->logfile = xstrdup(dst);
	}
	conf_trusted(c, "trusted-proxy", &wc->trusted);
	acl_read(c, "peer-allow", &wc->peer_acl);

	CONF_FOREACH(n, &c->root, "upstream") {
		char	key[128];

		if ((u = calloc(1, sizeof(*u))) == NULL)
			fatal("%s", __func__);
		u->name = xstrdup(n->args[0].str);
		u->wc = wc;
		snprintf(key, sizeof(key), "upstream/%s", u->name);
		proxy_conf_load(c, n, u->name, key, &u->pc);
		/* a slow client never holds an app worker: bodies buffered */
		if (conf_get(n, "buffer-request") == NULL)
			u->pc.buffer_request = WEBD_BUFFER_REQUEST;
		if (conf_get(n, "buffer-response") == NULL)
			u->pc.buffer_response = WEBD_BUFFER_RESPONSE;
		u->pc.tmpdir = wc->tmpdir;
		proxy_hooks(u);
		TAILQ_INSERT_TAIL(&wc->upstreams, u, entry);
	}

	CONF_FOREACH(sn, &c->root, "server") {
		if ((s = calloc(1, sizeof(*s))) == NULL)
			fatal("%s", __func__);
		TAILQ_INIT(&s->locs);
		s->wc = wc;
		TAILQ_INSERT_TAIL(&wc->servers, s, entry);
		s->name = xstrdup(sn->args[0].str);
		s->names[s->nnames++] = xstrdup(sn->args[0].str);
		if (!host_name_ok(s->name))
			conf_error(c, sn, "invalid server name \"%s\": a host "
			    "name or an address, or \"*.\" and a name", s->name);
		s->isdefault = conf_opt(sn, "default") != NULL;
		CONF_FOREACH(n, sn, "name")
			for (i = 0; i < n->nargs; i++) {
				if (s->nnames >= WEBD_MAXNAMES) {
					conf_error(c, n, "too many names (max "
					    "%d)", WEBD_MAXNAMES);
					break;
				}
				if (!host_name_ok(n->args[i].str))
					conf_error(c, n, "invalid name \"%s\": a "
					    "host name or an address, or \"*.\" "
					    "and a name", n->args[i].str);
				s->names[s->nnames++] =
				    xstrdup(n->args[i].str);
			}
		loc_init(&s->base);
		s->base.path = xstrdup("/");
		s->base.srv = s;
		s->base.pathlen = 1;
		loc_read(c, sn, &s->base, wc);
		loc_defaults(&s->base);
		if (s->base.max_body == -1)
			s->base.max_body = wc->lim.max_body;
		s->hsts = -1;
		if ((n = conf_get(sn, "hsts")) != NULL) {
			s->hsts = n->nargs > 0 ? n->args[0].num / 1000 :
			    365 * 86400;
			s->hsts_sub = conf_opt(n, "subdomains") != NULL;
			s->hsts_preload = conf_opt(n, "preload") != NULL;
		}
		if (s->base.root == NULL && s->base.proxy == NULL &&
		    s->base.ret_status == 0) {
			int	covered = 0;

			CONF_FOREACH(ln, sn, "location")
				if (strcmp(ln->args[0].str, "/") == 0)
					covered = 1;
			if (!covered)
				conf_error(c, sn, "server \"%s\" needs a root, "
				    "a proxy, a return or a location \"/\"",
				    s->name);
		}
		CONF_FOREACH(ln, sn, "location") {
			const char	*p = ln->args[0].str;
			int		 glob = strpbrk(p, "*?[") != NULL;

			if (p[0] != '/' && !(glob && p[0] == '*')) {
				conf_error(c, ln, "a location is a path "
				    "starting with \"/\", or a pattern starting "
				    "with \"/\" or \"*\": %s", p);
				continue;
			}
			if (glob && conf_opt(ln, "exact") != NULL) {
				conf_error(c, ln, "location \"%s\" is a pattern "
				    "(it has * ? or [), not an exact path", p);
				continue;
			}
			{
				struct webd_loc	*o;
				int		 ex = conf_opt(ln, "exact") != NULL;

				TAILQ_FOREACH(o, &s->locs, entry)
					if (o->exact == ex &&
					    strcmp(o->path, p) == 0)
						break;
				if (o != NULL) {
					conf_error(c, ln, "location \"%s\"%s "
					    "twice in server \"%s\"", p,
					    ex ? " exact" : "", s->name);
					continue;
				}
			}
			if ((l = calloc(1, sizeof(*l))) == NULL)
				fatal("%s", __func__);
			loc_init(l);
			l->path = xstrdup(p);
			l->pathlen = strlen(p);
			l->exact = conf_opt(ln, "exact") != NULL;
			l->glob = glob;
			l->srv = s;
			loc_read(c, ln, l, wc);
			loc_inherit(l, &s->base);
			loc_defaults(l);
			if (l->alias != NULL && (l->exact || l->glob))
				conf_error(c, ln, "alias needs a prefix "
				    "location, not %s", l->exact ?
				    "an exact one" : "a pattern");
			TAILQ_INSERT_TAIL(&s->locs, l, entry);
		}
		/* listeners */
		s->tls = 0;
		CONF_FOREACH(n, sn, "listen") {
			struct webd_listener	*wl;
			int			 tls = conf_opt(n, "tls") != NULL;

			if (tls && conf_get(sn, "tls") == NULL) {
				conf_error(c, n, "listen ... tls needs a tls "
				    "block in server \"%s\"", s->name);
				continue;
			}
			if ((wl = listener_get(wc, c, n, ps, tls)) == NULL)
				continue;
			if (wl->nservers >= (int)nitems(wl->servers)) {
				conf_error(c, n, "too many servers on %s",
				    n->args[0].str);
				continue;
			}
			/* a name twice on a listener: the second never wins */
			for (i = 0; i < wl->nservers; i++) {
				struct webd_server	*o = wl->servers[i];
				int			 a, b2;

				for (a = 0; a < s->nnames; a++)
					for (b2 = 0; b2 < o->nnames; b2++)
						if (strcasecmp(s->names[a],
						    o->names[b2]) == 0)
							conf_error(c, n, "server "
							    "\"%s\": name \"%s\" "
							    "is server \"%s\"'s "
							    "on %s already",
							    s->name,
							    s->names[a],
							    o->name,
							    n->args[0].str);
			}
			if (s->isdefault)
				for (i = 0; i < wl->nservers; i++)
					if (wl->servers[i]->isdefault &&
					    wl->servers[i] != s)
						conf_error(c, n, "server \"%s\" "
						    "and server \"%s\" are both "
						    "default on %s",
						    wl->servers[i]->name,
						    s->name, n->args[0].str);
			wl->servers[wl->nservers++] = s;
			if (tls) {
				int	first = tls_server_ncerts(wl->tls);

				s->tls = 1;
				if (wl->tls == NULL) {
					wl->tls = tls_server_load(c,
					    conf_get(sn, "tls"));
				} else if (tls_server_add(wl->tls, c,
				    conf_get(sn, "tls")) == -1)
					continue;
				/* the default server's certificate, too */
				if (s->isdefault)
					tls_server_default(wl->tls, first);
			}
		}
	}
	/* a listener's servers: the first marked default comes first */
	{
		struct webd_listener	*wl;

		TAILQ_FOREACH(wl, &wc->listeners, entry) {
			for (i = 0; i < wl->nservers; i++)
				if (wl->servers[i]->isdefault) {
					struct webd_server *t = wl->servers[0];

					wl->servers[0] = wl->servers[i];
					wl->servers[i] = t;
					break;
				}
			wl->srv.tls = wl->tls;
		}
	}
	if ((n = conf_get(&c->root, "metrics")) != NULL) {
		acl_read(c, "metrics-allow", &wc->metrics_acl);
		wc->metrics = http_metrics_server("webd_",
		    wc->metrics_acl.nrules ? &wc->metrics_acl : NULL, NULL,
		    NULL);
		proc_listener_add(ps, c, n, n->args[0].str, wc->metrics);
	}
	{
		char	err[512];

		/* this conf's own table: a refused reload changes nothing */
		if ((wc->mime = mime_load(wc->mimefile, err, sizeof(err))) ==
		    NULL)
			conf_error(c, conf_get(&c->root, "mime-types"), "%s",
			    err);
	}
	body_limit(wc);
	if (c->nerrors > 0) {
		webd_unload(wc);
		return (NULL);
	}
	return (wc);
}

void
webd_unload(void *p)
{
	struct webd_conf	*wc = p;
	struct webd_server	*s;
	struct webd_loc		*l;
	struct webd_upstream	*u;
	struct webd_listener	*wl;
	int			 i;

	if (wc == NULL)
		return;
	while ((s = TAILQ_FIRST(&wc->servers)) != NULL) {
		TAILQ_REMOVE(&wc->servers, s, entry);
		while ((l = TAILQ_FIRST(&s->locs)) != NULL) {
			TAILQ_REMOVE(&s->locs, l, entry);
			loc_free(l);
			free(l);
		}
		loc_free(&s->base);
		for (i = 0; i < s->nnames; i++)
			free(s->names[i]);
		free(s->name);
		free(s);
	}
	while ((u = TAILQ_FIRST(&wc->upstreams)) != NULL) {
		TAILQ_REMOVE(&wc->upstreams, u, entry);
		proxy_conf_free(&u->pc);
		free(u->name);
		free(u);
	}
	while ((wl = TAILQ_FIRST(&wc->listeners)) != NULL) {
		TAILQ_REMOVE(&wc->listeners, wl, entry);
		tls_free(wl->tls);
		free(wl);
	}
	http_metrics_free(wc->metrics);
	net_acl_free(&wc->metrics_acl);
	net_acl_free(&wc->trusted.acl);
	net_acl_free(&wc->peer_acl);
	if (wc->logdir != -1)
		close(wc->logdir);
	if (wc->logfd != -1)
		close(wc->logfd);
	mime_free(wc->mime);
	free(wc->logfile);
	free(wc->mimefile);
	free(wc->tmpdir);
	free(wc);
}

static int
open_root(struct webd_loc *l, const char *what)
{
	const char	*dir = l->alias ? l->alias : l->root;

	if (dir == NULL)
		return (0);
	if ((l->rootfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC)) == -1) {
		log_warn("%s: %s %s", what, l->alias ? "alias" : "root", dir);
		return (-1);
	}
	return (0);
}

/*
 * In the master, before the workers fork: open every document root, so
 * that the workers find their files beneath these descriptors (also
 * from inside a chroot), and register the metrics.
 */
int
webd_setup(void *p, struct proc_settings *ps)
{
	struct webd_conf	*wc = p;
	struct webd_server	*s;
	struct webd_loc		*l;
	struct webd_upstream	*u;
	struct webd_listener	*wl;
	static const char	*classes[] = { "1xx", "2xx", "3xx", "4xx",
				    "5xx" };
	int			 i;

	TAILQ_FOREACH(s, &wc->servers, entry) {
		if (open_root(&s->base, s->name) == -1)
			return (-1);
		TAILQ_FOREACH(l, &s->locs, entry)
			if (open_root(l, s->name) == -1)
				return (-1);
		for (i = 0; i < 5; i++)
			s->m_req[i + 1] = stats_counter("webd_requests_total",
			    "Requests answered, by site and status class.",
			    "site", s->name, "code", classes[i], NULL);
		s->m_bytes = stats_counter("webd_response_bytes_total",
		    "Response body bytes sent, by site.", "site", s->name,
		    NULL);
		s->m_dur = stats_histogram("webd_request_duration_seconds",
		    "Time from the request head to the end of the response.",
		    stats_latency_buckets, stats_nlatency_buckets, "site",
		    s->name, NULL);
	}
	for (i = 0; i < 5; i++)
		wc->m_refused[i + 1] = stats_counter("webd_requests_total",
		    "Requests answered, by site and status class.", "site",
		    "-", "code", classes[i], NULL);
	wc->m_refused_bytes = stats_counter("webd_response_bytes_total",
	    "Response body bytes sent, by site.", "site", "-", NULL);
	TAILQ_FOREACH(u, &wc->upstreams, entry)
		up_pool_commit(u->pc.pool);
	TAILQ_FOREACH(u, &wc->upstreams, entry)
		u->m_errors = stats_counter("webd_upstream_errors_total",
		    "Requests an upstream failed (502, 503, 504).",
		    "upstream", u->name, NULL);
	wc->m_conns = stats_gauge("webd_connections",
	    "Open client connections.", NULL);
	TAILQ_FOREACH(wl, &wc->listeners, entry)
		wl->srv.server_name = wc->server_header ? "webd" : NULL;
	wc->uid = ps->droppriv ? ps->uid : (uid_t)-1;
	if (access_log_open(wc) == -1)
		return (-1);
	return (0);
}

/*
 * Master: the connections a gone worker (stats slot <slot>) left counted
 * on the app servers and listeners, taken back (see lbd_child_gone()).
 */
int
webd_child_gone(void *p, const struct proc_settings *ps, int slot)
{
	struct webd_conf	*wc = p;
	struct webd_upstream	*u;
	int			 n;

	n = lshare_reap(ps, slot);
	TAILQ_FOREACH(u, &wc->upstreams, entry)
		n += up_pool_reap(u->pc.pool, slot);
	return (n);
}

