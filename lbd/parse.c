/*
 * parse.c: lbd.conf, from the checked tree to struct lbd_conf.
 */
#include <sys/types.h>
#include <sys/stat.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "http_worker.h"
#include "log.h"
#include "lbd.h"
#include "proxy_conf.h"
#include "tls.h"

static const struct conf_opt listen_opts[] = {
	{ "tls", { CONF_NONE } },
	{ "backlog", { CONF_INT, "backlog", 1, 65535 } },
	{ "mode", { CONF_MODE, "mode" } },
	{ "owner", { CONF_STR, "owner" } },
	{ "group", { CONF_STR, "group" } },
	{ NULL }
};

/* the stats listener: plain HTTP, for the loopback or a private net */
static const struct conf_opt stats_opts[] = {
	{ "backlog", { CONF_INT, "backlog", 1, 65535 } },
	{ "mode", { CONF_MODE, "mode" } },
	{ "owner", { CONF_STR, "owner" } },
	{ "group", { CONF_STR, "group" } },
	{ NULL }
};

static const struct conf_opt log_opts[] = {
	{ "facility", { CONF_ENUM, "facility", 0, 0, "daemon|user|local0|"
	    "local1|local2|local3|local4|local5|local6|local7" } },
	{ NULL }
};

static const struct conf_opt route_opts[] = {
	{ "backend", { CONF_NAME, "backend" } },
	{ "path", { CONF_STR, "path prefix" } },
	{ NULL }
};

static const struct conf_opt redirect_opts[] = {
	{ "code", { CONF_INT, "code", 301, 308 } },
	{ "except", { CONF_STR, "path prefix" } },
	{ NULL }
};

static const struct conf_opt status_opts[] = {
	{ "status", { CONF_INT, "status", 400, 599 } },
	{ NULL }
};

static const struct conf_opt check_opts[] = {
	{ "method", { CONF_NAME, "method" } },
	{ "path", { CONF_STR, "path" } },
	{ "host", { CONF_STR, "host" } },
	{ "status", { CONF_STR, "status list" } },
	{ "send", { CONF_STR, "send" } },
	{ "expect", { CONF_STR, "expect" } },
	{ "interval", { CONF_TIME, "interval", 100, 3600000 } },
	{ "timeout", { CONF_TIME, "timeout", 10, 600000 } },
	{ "rise", { CONF_INT, "rise", 1, 100 } },
	{ "fall", { CONF_INT, "fall", 1, 100 } },
	{ "tls", { CONF_NONE } },
	{ "port", { CONF_INT, "port", 1, 65535 } },
	{ NULL }
};

const struct conf_kw lbd_grammar[] = {
	PROC_GRAMMAR,
	{ "stats", NULL, CONF_BLOCKOPT, 1, { { CONF_ADDR, "address" } },
	    stats_opts },
	{ "refresh", "stats", 0, 1, { { CONF_TIME, "refresh", 1000,
	    3600000 } } },
	{ "healthz", "stats", 0, 1, { { CONF_ENUM, "healthz", 0, 0,
	    "running|servers" } }, NULL, "running" },
	{ "auth-basic", "stats|route", 0, 2, { { CONF_STR, "realm" },
	    { CONF_PATH, "user file" } } },
	{ "control", NULL, 0, 1, { { CONF_STR, "control socket" } }, NULL,
	    LBD_SOCKET },
	{ "log", NULL, 0, 1, { { CONF_BOOL, "log" } }, log_opts, "yes" },
	{ "cookie-key-file", NULL, 0, 1, { { CONF_PATH, "cookie-key-file" } } },
	{ "frontend", NULL, CONF_BLOCK | CONF_MULTI | CONF_UNIQUE |
	    CONF_REQUIRED, 1, { { CONF_NAME, "frontend name" } } },
	{ "backend", NULL, CONF_BLOCK | CONF_MULTI | CONF_UNIQUE, 1,
	    { { CONF_NAME, "backend name" } } },
	{ "mode", "frontend|backend", 0, 1, { { CONF_ENUM, "mode", 0, 0,
	    "http|tcp" } }, NULL, "http" },
	{ "listen", "frontend", CONF_MULTI | CONF_REQUIRED, 1,
	    { { CONF_ADDR, "address" } }, listen_opts },
	{ "tls", "frontend", CONF_BLOCK, 0 },
	TLS_GRAMMAR("tls"),
	{ "maxconn", "frontend", 0, 1, { { CONF_INT, "maxconn", 1,
	    1000000 } } },
	{ "allow", "frontend|stats|route", CONF_MULTI | CONF_VARIADIC, 1,
	    { { CONF_CIDR, "address" } } },
	{ "deny", "frontend|stats|route", CONF_MULTI | CONF_VARIADIC, 1,
	    { { CONF_CIDR, "address" } } },
	{ "accept-proxy", "frontend", CONF_MULTI | CONF_VARIADIC, 1,
	    { { CONF_CIDR, "trusted address" } } },
	{ "backend", "frontend", 0, 1, { { CONF_NAME, "backend" } } },
	{ "route", "frontend", CONF_MULTI | CONF_BLOCKOPT, 2, { { CONF_ENUM, "route", 0, 0,
	    "host|path" }, { CONF_STR, "value" } }, route_opts },
	{ "redirect", "frontend", 0, 1, { { CONF_ENUM, "redirect", 0, 0,
	    "https" } }, redirect_opts },
	{ "header", "frontend", CONF_MULTI, 2, { { CONF_ENUM, "action", 0, 0,
	    "set|add|delete" }, { CONF_STR, "field name" },
	    { CONF_STR, "value" } } },
	{ "response-header", "frontend", CONF_MULTI, 2, { { CONF_ENUM,
	    "action", 0, 0, "set|add|delete" }, { CONF_STR, "field name" },
	    { CONF_STR, "value" } } },
	{ "error-page", "frontend", CONF_MULTI, 2, { { CONF_INT, "status",
	    400, 599 }, { CONF_PATH, "file" } } },
	{ "rate-limit", "frontend|route", 0, 2, { { CONF_INT, "requests", 1,
	    100000000 }, { CONF_TIME, "window", 100, 86400000 } },
	    status_opts },
	{ "conn-limit", "frontend", 0, 1, { { CONF_INT, "connections", 1,
	    1000000 } }, status_opts },
	{ "tunnel-timeout", "frontend", 0, 1, { { CONF_TIME,
	    "tunnel-timeout", 100, 86400000 } } },
	{ "abort-on-close", "frontend", 0, 1, { { CONF_BOOL,
	    "abort-on-close" } }, NULL, "no" },
	HTTP_LIMITS_GRAMMAR("frontend"),
	PROXY_GRAMMAR("backend"),
	{ "check", "backend", 0, 1, { { CONF_ENUM, "check", 0, 0,
	    "tcp|http|tls|send" } }, check_opts },
	{ "cookie", "backend", 0, 1, { { CONF_NAME, "cookie name" } } },
	{ NULL }
};

/* Whether two routes match the same requests (as written). */
static int
same_match(const struct lbd_rule *a, const struct lbd_rule *b)
{
	if (a->type != b->type || (a->type == RULE_HOST ?
	    strcasecmp(a->value, b->value) : strcmp(a->value, b->value)) != 0)
		return (0);
	return ((a->path == NULL) == (b->path == NULL) &&
	    (a->path == NULL || strcmp(a->path, b->path) == 0));
}

struct lbd_backend *
backend_find(struct lbd_conf *lc, const char *name)
{
	struct lbd_backend	*be;

	TAILQ_FOREACH(be, &lc->backends, entry)
		if (strcmp(be->name, name) == 0)
			return (be);
	return (NULL);
}

static void
acl_read(struct conf_node *block, struct net_acl *acl, const char *allow,
    const char *deny)
{
	struct conf_node	*n;
	struct net_cidr		 cidr;
	int			 i;

	TAILQ_FOREACH(n, &block->children, entry) {
		int	a = strcmp(n->kw->name, allow) == 0;

		if (!a && (deny == NULL || strcmp(n->kw->name, deny) != 0))
			continue;
		for (i = 0; i < n->nargs; i++)
			if (net_cidr_parse(n->args[i].str, &cidr) == 0)
				net_acl_add(acl, a, &cidr);
	}
}

/* "200-399,404": ranges of statuses */
static int
status_list(struct lbd_check *ck, const char *s)
{
	char	*dup = xstrdup(s), *p = dup, *tok;
	int	 rv = 0;

	while ((tok = strsep(&p, ",")) != NULL) {
		char		*dash = strchr(tok, '-');
		const char	*e1 = NULL, *e2 = NULL;
		int		 lo, hi;

		if (ck->nstatus >= LBD_MAXSTATUS) {
			rv = -1;
			break;
		}
		if (dash != NULL)
			*dash++ = '\0';
		lo = strtonum(tok, 100, 599, &e1);
		hi = dash ? strtonum(dash, 100, 599, &e2) : lo;
		if (e1 != NULL || e2 != NULL || hi < lo) {
			rv = -1;
			break;
		}
		ck->status[ck->nstatus].lo = lo;
		ck->status[ck->nstatus].hi = hi;
		ck->nstatus++;
	}
	free(dup);
	return (rv);
}

/* Backslash escapes of send/expect strings: \r \n \t \\ \xHH */
static char *
unescape(const char *s, size_t *len)
{
	char	*out = malloc(strlen(s) + 1);
	size_t	 o = 0;

	if (out == NULL)
		fatal("%s", __func__);
	for (; *s; s++) {
		if (*s != '\\' || s[1] == '\0') {
			out[o++] = *s;
			continue;
		}
		s++;
		switch (*s) {
		case 'r':
			out[o++] = '\r';
			break;
		case 'n':
			out[o++] = '\n';
			break;
		case 't':
			out[o++] = '\t';
			break;
		case 'x':
			if (isxdigit((unsigned char)s[1]) &&
			    isxdigit((unsigned char)s[2])) {
				char	h[3] = { s[1], s[2], 0 };

				out[o++] = (char)strtol(h, NULL, 16);
				s += 2;
				break;
			}
			/* FALLTHROUGH */
		default:
			out[o++] = *s;
		}
	}
	out[o] = '\0';
	*len = o;
	return (out);
}

/*
 * Keywords of the proxy grammar that a tcp backend has no use for: each
 * would be silently ignored (TLS to the servers would even go plain).
 */
static void
tcp_backend_check(struct conf *c, struct conf_node *bn)
{
	static const char	*http_only[] = { "response-timeout",
	    "queue-timeout", "max-queue", "keepalive", "keepalive-timeout",
	    "x-forwarded-for", "x-forwarded-proto", "forwarded", "via",
	    "buffer-request", "buffer-response", "tls", "tls-ca",
	    "tls-verify", "tls-name" };
	struct conf_node	*n;
	size_t			 i;

	for (i = 0; i < nitems(http_only); i++)
		if ((n = conf_get(bn, http_only[i])) != NULL)
			conf_error(c, n, "%s needs mode http (a tcp backend "
			    "relays bytes as they come)", http_only[i]);
	if ((n = conf_get(bn, "tunnel-timeout")) != NULL)
		conf_error(c, n, "tunnel-timeout of a tcp backend: set it in "
		    "the frontend, whose connections it times");
}

static void
check_read(struct conf *c, struct conf_node *bn, struct lbd_backend *be)
{
	struct lbd_check	*ck = &be->check;
	struct conf_node	*n;
	const char		*s;
	int			 i;

	ck->interval = 2000;
	ck->timeout = 1000;
	ck->rise = 2;
	ck->fall = 3;
	if ((n = conf_get(bn, "check")) == NULL)
		return;
	ck->type = n->args[0].num + 1;
	ck->interval = conf_optnum(n, "interval", 2000);
	ck->timeout = conf_optnum(n, "timeout", ck->interval < 1000 ?
	    ck->interval : 1000);
	ck->rise = conf_optnum(n, "rise", 2);
	ck->fall = conf_optnum(n, "fall", 3);
	ck->tls = conf_opt(n, "tls") != NULL;
	ck->port = conf_optnum(n, "port", 0);
	if (ck->port != 0)
		for (i = 0; i < be->pc.pool->nservers; i++)
			if (be->pc.pool->servers[i]->addr.family == AF_UNIX) {
				conf_error(c, n, "check port: server %s is a "
				    "unix socket", be->pc.pool->servers[i]->name);
				break;
			}
	if (ck->timeout > ck->interval)
		conf_error(c, n, "check timeout %ums is longer than its "
		    "interval %ums", ck->timeout, ck->interval);
	switch (ck->type) {
	case CHECK_HTTP:
		ck->method = xstrdup(conf_optstr(n, "method", "GET"));
		ck->path = xstrdup(conf_optstr(n, "path", "/"));
		if (ck->path[0] != '/')
			conf_error(c, n, "check path must start with \"/\"");
		/* what goes on the request line and in Host as it is */
		for (s = ck->path; *s != '\0'; s++)
			if (*s <= ' ' || *s >= 0x7f || *s == '#') {
				conf_error(c, n, "check path: no spaces, "
				    "control bytes or \"#\" (percent-encode "
				    "them)");
				break;
			}
		ck->host = xstrdup(conf_optstr(n, "host", NULL));
		if (ck->host != NULL && !http_host_ok(ck->host))
			conf_error(c, n, "check host: a host name or an "
			    "address, with a port if any");
		s = conf_optstr(n, "status", "200-399");
		if (status_list(ck, s) == -1)
			conf_error(c, n, "invalid status list \"%s\" (such as "
			    "200-399,404)", s);
		if ((s = conf_optstr(n, "expect", NULL)) != NULL)
			ck->expect = unescape(s, &ck->expectlen);
		if (conf_opt(n, "send") != NULL)
			conf_error(c, n, "check http sends a request: \"send\" "
			    "is for check send");
		break;
	case CHECK_SEND:
		if ((s = conf_optstr(n, "send", NULL)) == NULL)
			conf_error(c, n, "check send needs \"send\" (and "
			    "\"expect\")");
		else
			ck->send = unescape(s, &ck->sendlen);
		if ((s = conf_optstr(n, "expect", NULL)) != NULL)
			ck->expect = unescape(s, &ck->expectlen);
		/* FALLTHROUGH */
	default:
		if (ck->type != CHECK_HTTP && (conf_opt(n, "status") ||
		    conf_opt(n, "path") || conf_opt(n, "method")))
			conf_error(c, n, "status, path and method are for "
			    "check http");
		if (ck->type != CHECK_SEND && conf_opt(n, "send"))
			conf_error(c, n, "\"send\" is for check send");
		/* options the kind would silently ignore */
		if (ck->type == CHECK_TCP && (conf_opt(n, "host") ||
		    conf_opt(n, "tls") || conf_opt(n, "expect")))
			conf_error(c, n, "check tcp only connects: host, tls "
			    "and expect are for check http, tls or send");
		if (ck->type == CHECK_TLS && conf_opt(n, "expect"))
			conf_error(c, n, "check tls only completes a "
			    "handshake: \"expect\" is for check http or send");
		break;
	}
}

static void
hdr_read(struct conf *c, struct conf_node *fn, struct lbd_frontend *fe,
    const char *kw, int response)
{
	struct conf_node	*n;

	CONF_FOREACH(n, fn, kw) {
		struct lbd_hdrrule	*h;
		const char		*why;

		if (fe->nhdr >= LBD_MAXHDRRULES) {
			conf_error(c, n, "too many header rules (max %d)",
			    LBD_MAXHDRRULES);
			return;
		}
		h = &fe->hdr[fe->nhdr];
		h->op = n->args[0].num;
		h->response = response;
		if (h->op != HDR_DEL && n->nargs < 3) {
			conf_error(c, n, "%s %s needs a value", kw,
			    n->args[0].str);
			continue;
		}
		if ((why = http_conf_field_check(n->args[1].str,
		    h->op != HDR_DEL ? n->args[2].str : NULL)) != NULL) {
			conf_error(c, n, "%s \"%s\": %s", kw, n->args[1].str,
			    why);
			continue;
		}
		h->name = xstrdup(n->args[1].str);
		if (h->op != HDR_DEL)
			h->value = xstrdup(n->args[2].str);
		else if (n->nargs > 2)
			conf_error(c, n, "%s delete takes no value", kw);
		fe->nhdr++;
	}
}

static int
errpage_read(struct conf *c, struct conf_node *n, struct lbd_frontend *fe)
{
	int		 st = n->args[0].num, fd;
	struct stat	 sb;
	char		*buf;
	ssize_t		 r;

	if ((fd = open(n->args[1].str, O_RDONLY | O_CLOEXEC)) == -1) {
		conf_error(c, n, "%s: %s", n->args[1].str, strerror(errno));
		return (-1);
	}
	if (fstat(fd, &sb) == -1 || !S_ISREG(sb.st_mode) ||
	    sb.st_size > LBD_MAXERRPAGE) {
		conf_error(c, n, "%s: not a regular file of at most %d bytes",
		    n->args[1].str, LBD_MAXERRPAGE);
		close(fd);
		return (-1);
	}
	if ((buf = malloc(sb.st_size + 1)) == NULL)
		fatal("%s", __func__);
	r = read(fd, buf, sb.st_size);
	close(fd);
	if (r != sb.st_size) {
		conf_error(c, n, "%s: short read", n->args[1].str);
		free(buf);
		return (-1);
	}
	free(fe->errpage[st]);
	fe->errpage[st] = buf;
	fe->errlen[st] = r;
	return (0);
}

/*
 * The sticky cookies' key: from cookie-key-file, the same on every host
 * that has the file (a client keeps its server when its address moves
 * to the other load balancer); else drawn once by the master, the same
 * for every conf it loads, so that a reload keeps the clients on their
 * servers.
 */
static void
cookie_key(struct conf *c, struct lbd_conf *lc)
{
	static unsigned char	key[sizeof(lc->cookie_key)];
	static int		drawn;
	struct conf_node	*n;

	if ((n = conf_get(&c->root, "cookie-key-file")) != NULL) {
		unsigned char	secret[TLS_SECRETLEN];
		char		err[512];
		unsigned int	len = sizeof(lc->cookie_key);

		if (tls_read_secret(n->args[0].str, secret, err,
		    sizeof(err)) == -1) {
			conf_error(c, n, "%s", err);
			return;
		}
		/* its own key, even from the file of the ticket keys */
		HMAC(EVP_sha256(), secret, sizeof(secret),
		    (const unsigned char *)"lbd sticky cookie", 17,
		    lc->cookie_key, &len);
		explicit_bzero(secret, sizeof(secret));
		return;
	}
	if (!drawn) {
		if (RAND_bytes(key, sizeof(key)) != 1)
			fatalx("%s: RAND_bytes", __func__);
		drawn = 1;
	}
	memcpy(lc->cookie_key, key, sizeof(key));
}

static struct lbd_listener *
listener_new(struct lbd_conf *lc, struct lbd_frontend *fe, int tls)
{
	struct lbd_listener	*l;

	if ((l = calloc(1, sizeof(*l))) == NULL)
		fatal("%s", __func__);
	l->fe = fe;
	l->tls = tls;
	l->srv.lim = &fe->lim;
	l->srv.handler = fe->mode == MODE_HTTP ? &lbd_handler : NULL;
	l->srv.arg = l;
	l->srv.scheme_https = tls;
	/* the allow list is applied in the conn_open hook (lbd.c), counted */
	TAILQ_INSERT_TAIL(&lc->listeners, l, entry);
	return (l);
}

/*
 * lbd streams request bodies to the servers, so its frontends have no
 * body limit by default (HAProxy has none): the servers have theirs.
 */
static struct http_limits	lbd_limits;

void *
lbd_load(struct conf *c, struct proc_settings *ps)
{
	struct lbd_conf		*lc;
	struct lbd_frontend	*fe;
	struct lbd_backend	*be;
	struct conf_node	*n, *fn, *bn, *rn;
	const char		*s;
	int			 i;

	if ((lc = calloc(1, sizeof(*lc))) == NULL)
		fatal("%s", __func__);
	lbd_limits = http_default_limits;
	lbd_limits.max_body = 0;
	TAILQ_INIT(&lc->frontends);
	TAILQ_INIT(&lc->backends);
	TAILQ_INIT(&lc->listeners);
	lc->control_index = -1;
	n = conf_get(&c->root, "log");
	lc->log = conf_num(c, &c->root, "log");
	lc->logfacility = log_facility(n ? conf_optstr(n, "facility",
	    "local0") : "local0");
	cookie_key(c, lc);

	CONF_FOREACH(bn, &c->root, "backend") {
		char	key[128];

		if ((be = calloc(1, sizeof(*be))) == NULL)
			fatal("%s", __func__);
		be->lc = lc;
		be->name = xstrdup(bn->args[0].str);
		be->mode = conf_num(c, bn, "mode");
		snprintf(key, sizeof(key), "backend/%s", be->name);
		proxy_conf_load(c, bn, be->name, key, &be->pc);
		check_read(c, bn, be);
		if ((n = conf_get(bn, "cookie")) != NULL) {
			if (be->mode == MODE_TCP)
				conf_error(c, n, "cookie needs mode http");
			be->cookie = xstrdup(n->args[0].str);
		}
		if (be->mode == MODE_TCP && (be->pc.pool->lb == &lb_uri ||
		    be->pc.pool->lb == &lb_hdr ||
		    be->pc.pool->lb == &lb_url_param))
			conf_error(c, conf_get(bn, "balance"), "balance %s "
			    "needs mode http", be->pc.pool->lb->name);
		if (be->mode == MODE_TCP)
			tcp_backend_check(c, bn);
		/* a check speaks TLS to servers that the backend does */
		if (be->pc.tls != NULL && (n = conf_get(bn, "check")) != NULL &&
		    (be->check.type == CHECK_HTTP ||
		    be->check.type == CHECK_SEND))
			be->check.tls = 1;
		/* an edge: what clients say about themselves is dropped */
		if (conf_get(bn, "x-forwarded-for") == NULL)
			be->pc.xff = PROXY_XFF_REPLACE;
		relay_http_hooks(be);
		TAILQ_INSERT_TAIL(&lc->backends, be, entry);
	}

	CONF_FOREACH(fn, &c->root, "frontend") {
		if ((fe = calloc(1, sizeof(*fe))) == NULL)
			fatal("%s", __func__);
		fe->lc = lc;
		fe->name = xstrdup(fn->args[0].str);
		fe->mode = conf_num(c, fn, "mode");
		TAILQ_INSERT_TAIL(&lc->frontends, fe, entry);
		http_limits_load(fn, &fe->lim, &lbd_limits);
		fe->tunnel_timeout = conf_get(fn, "tunnel-timeout") ?
		    conf_num(c, fn, "tunnel-timeout") : 3600000;
		fe->abort_on_close = conf_num(c, fn, "abort-on-close");
		acl_read(fn, &fe->acl, "allow", "deny");
		fe->has_acl = fe->acl.nrules > 0;
		acl_read(fn, &fe->proxy_from, "accept-proxy", NULL);
		fe->accept_proxy = fe->proxy_from.nrules > 0;
		fe->maxconn = conf_get(fn, "maxconn") ?
		    conf_num(c, fn, "maxconn") : 0;
		if ((n = conf_get(fn, "backend")) != NULL &&
		    (fe->defbe = backend_find(lc, n->args[0].str)) == NULL)
			conf_error(c, n, "no backend \"%s\"", n->args[0].str);
		/* backends must speak the frontend's mode */
		else if (n != NULL && fe->defbe->mode != fe->mode)
			conf_error(c, n, "frontend %s is mode %s but backend "
			    "%s is not", fe->name, fe->mode == MODE_TCP ?
			    "tcp" : "http", fe->defbe->name);
		CONF_FOREACH(n, fn, "route") {
			struct lbd_rule	*r;
			const char	*bname = conf_optstr(n, "backend", NULL);

			if (fe->nrules >= LBD_MAXRULES) {
				conf_error(c, n, "too many routes (max %d)",
				    LBD_MAXRULES);
				break;
			}
			if (bname == NULL) {
				conf_error(c, n, "route needs \"backend NAME\"");
				continue;
			}
			r = &fe->rules[fe->nrules];
			r->type = n->args[0].num;
			r->value = xstrdup(n->args[1].str);
			r->len = strlen(r->value);
			if (r->type == RULE_PATH && r->value[0] != '/')
				conf_error(c, n, "a path route starts with "
				    "\"/\"");
			/* route ... { allow ...; deny ... }: 403 for others */
			acl_read(n, &r->acl, "allow", "deny");
			if ((r->has_acl = r->acl.nrules > 0))
				fe->guarded = 1;
			/* route ... { auth-basic REALM FILE }: 401 without */
			if ((rn = conf_get(n, "auth-basic")) != NULL) {
				r->auth = auth_load(c, rn);
				fe->guarded = 1;
			}
			/* route ... { rate-limit N WINDOW }: on top of the
			 * frontend's, for the requests it matches */
			if ((rn = conf_get(n, "rate-limit")) != NULL) {
				r->rate_max = rn->args[0].num;
				r->rate_window = rn->args[1].num;
				r->rate_status = conf_optnum(rn, "status", 429);
				fe->limited = 1;
			}
			/* route host NAME path PREFIX: both must match */
			if ((r->path = xstrdup(conf_optstr(n, "path",
			    NULL))) != NULL) {
				r->pathlen = strlen(r->path);
				if (r->type != RULE_HOST)
					conf_error(c, n, "route path takes no "
					    "second path (route host NAME path "
					    "PREFIX matches both)");
				else if (r->path[0] != '/')
					conf_error(c, n, "a path route starts "
					    "with \"/\"");
			}
			/* the request's host is matched without port or
			 * final dot: a rule with either would never match */
			if (r->type == RULE_HOST && r->len > 1 &&
			    r->value[r->len - 1] == '.')
				r->value[--r->len] = '\0';
			if (r->type == RULE_HOST && (r->len == 0 ||
			    (strchr(r->value, ':') != NULL &&
			    r->value[0] != '[')))
				conf_error(c, n, "a host route is a name or "
				    "\"*.name\", without a port: %s", r->value);
			if ((r->be = backend_find(lc, bname)) == NULL)
				conf_error(c, n, "no backend \"%s\"", bname);
			else if (fe->mode == MODE_HTTP &&
			    r->be->mode != MODE_HTTP)
				conf_error(c, n, "frontend %s routes to "
				    "backend %s of another mode", fe->name,
				    r->be->name);
			/* one table per match: two would count twice */
			for (i = 0; r->rate_max > 0 && i < fe->nrules; i++)
				if (fe->rules[i].rate_max > 0 &&
				    same_match(&fe->rules[i], r))
					conf_error(c, conf_get(n, "rate-limit"),
					    "an earlier route matching the same "
					    "requests has a rate-limit too");
			fe->nrules++;
		}
		if (fe->defbe == NULL && fe->nrules == 0 &&
		    (fe->mode == MODE_TCP || conf_get(fn, "redirect") == NULL))
			conf_error(c, fn, "frontend %s needs a backend",
			    fe->name);
		else if (fe->defbe == NULL && fe->nrules == 0 &&
		    (n = conf_get(fn, "redirect")) != NULL &&
		    conf_opt(n, "except") != NULL)
			conf_error(c, n, "frontend %s: redirect https except "
			    "needs a backend for the requests it lets through",
			    fe->name);
		else if (fe->defbe == NULL && fe->nrules == 0) {
			/* redirect https sends the clients to its tls ones */
			CONF_FOREACH(n, fn, "listen")
				if (conf_opt(n, "tls") != NULL) {
					conf_error(c, n, "frontend %s: a tls "
					    "listener needs a backend (redirect "
					    "https sends clients there)",
					    fe->name);
					break;
				}
		}
		if ((n = conf_get(fn, "redirect")) != NULL) {
			const char	*ex = conf_optstr(n, "except", NULL);

			fe->redirect_https = 1;
			fe->redirect_code = conf_optnum(n, "code", 301);
			if (ex != NULL && (ex[0] != '/' ||
			    ex[strlen(ex) - 1] != '/'))
				conf_error(c, n, "redirect https except: a path "
				    "prefix starts and ends with \"/\"");
			fe->redirect_except = xstrdup(ex);
		}
		hdr_read(c, fn, fe, "header", 0);
		hdr_read(c, fn, fe, "response-header", 1);
		CONF_FOREACH(n, fn, "error-page")
			errpage_read(c, n, fe);
		if ((n = conf_get(fn, "rate-limit")) != NULL) {
			fe->rate_max = n->args[0].num;
			fe->rate_window = n->args[1].num;
			fe->rate_status = conf_optnum(n, "status", 429);
		}
		if ((n = conf_get(fn, "conn-limit")) != NULL) {
			fe->conn_max = n->args[0].num;
			fe->conn_status = conf_optnum(n, "status", 503);
		}
		/* what the other mode would silently ignore */
		if (fe->mode == MODE_TCP) {
			static const char *httponly[] = { "route", "redirect",
			    "header", "response-header", "rate-limit",
			    "abort-on-close" };

			for (i = 0; i < (int)nitems(httponly); i++)
				CONF_FOREACH(n, fn, httponly[i])
					conf_error(c, n, "%s needs mode http",
					    httponly[i]);
			if ((n = conf_get(fn, "error-page")) != NULL)
				conf_error(c, n, "error pages need mode http "
				    "(a tcp frontend answers nothing)");
			if ((n = conf_get(fn, "conn-limit")) != NULL &&
			    conf_opt(n, "status") != NULL)
				conf_error(c, n, "conn-limit status needs mode "
				    "http (a tcp frontend closes at once)");
		} else if ((n = conf_get(fn, "tunnel-timeout")) != NULL)
			conf_error(c, n, "tunnel-timeout of an http frontend: "
			    "set it in the backend, whose tunnels it times");
		/* listeners */
		CONF_FOREACH(n, fn, "listen") {
			struct lbd_listener	*l;
			int			 tls = conf_opt(n, "tls") != NULL;

			if (tls && conf_get(fn, "tls") == NULL) {
				conf_error(c, n, "listen ... tls needs a tls "
				    "block");
				continue;
			}
			if (tls && fe->mode == MODE_TCP) {
				conf_error(c, n, "TLS termination needs mode "
				    "http");
				continue;
			}
			if (tls && fe->tls == NULL &&
			    (fe->tls = tls_server_load(c,
			    conf_get(fn, "tls"))) == NULL)
				continue;
			l = listener_new(lc, fe, tls);
			strlcpy(l->addr, n->args[0].str, sizeof(l->addr));
			l->srv.tls = tls ? fe->tls : NULL;
			if (fe->accept_proxy)
				l->srv.proxy_from = &fe->proxy_from;
			proc_listener_add(ps, c, n, n->args[0].str, l);
		}
	}
	if ((n = conf_get(&c->root, "stats")) != NULL) {
		acl_read(n, &lc->stats_acl, "allow", "deny");
		lc->stats_refresh = conf_get(n, "refresh") ?
		    conf_num(c, n, "refresh") / 1000 : 5;
		lc->healthz_servers = conf_get(n, "healthz") != NULL &&
		    conf_num(c, n, "healthz") == 1;
		if ((rn = conf_get(n, "auth-basic")) != NULL)
			lc->stats_auth = auth_load(c, rn);
		lc->stats = stats_server(lc);
		proc_listener_add(ps, c, n, n->args[0].str, lc->stats);
	}
	s = conf_str(c, &c->root, "control");
	if (strcmp(s, "off") != 0) {
		char	addr[256];

		if (s[0] != '/')
			conf_error(c, conf_get(&c->root, "control"), "control: "
			    "a socket path, or off");
		lc->control = xstrdup(s);
		snprintf(addr, sizeof(addr), "unix:%s", s);
		lc->control_index = ps->nlisteners;
		if (proc_listener_add(ps, c, conf_get(&c->root, "control"),
		    addr, NULL) == 0)
			ps->listeners[ps->nlisteners - 1].mode = 0600;
	}
	if (c->nerrors > 0) {
		lbd_unload(lc);
		return (NULL);
	}
	return (lc);
}

void
lbd_unload(void *p)
{
	struct lbd_conf		*lc = p;
	struct lbd_frontend	*fe;
	struct lbd_backend	*be;
	struct lbd_listener	*l;
	int			 i;

	if (lc == NULL)
		return;
	while ((fe = TAILQ_FIRST(&lc->frontends)) != NULL) {
		TAILQ_REMOVE(&lc->frontends, fe, entry);
		for (i = 0; i < fe->nrules; i++) {
			free(fe->rules[i].value);
			free(fe->rules[i].path);
			net_acl_free(&fe->rules[i].acl);
			auth_free(fe->rules[i].auth);
		}
		for (i = 0; i < fe->nhdr; i++) {
			free(fe->hdr[i].name);
			free(fe->hdr[i].value);
		}
		for (i = 0; i < 600; i++)
			free(fe->errpage[i]);
		net_acl_free(&fe->acl);
		net_acl_free(&fe->proxy_from);
		tls_free(fe->tls);
		free(fe->redirect_except);
		free(fe->name);
		free(fe);
	}
	while ((be = TAILQ_FIRST(&lc->backends)) != NULL) {
		TAILQ_REMOVE(&lc->backends, be, entry);
		proxy_conf_free(&be->pc);
		free(be->check.method);
		free(be->check.path);
		free(be->check.host);
		free(be->check.send);
		free(be->check.expect);
		free(be->cookie);
		free(be->srvstats);
		free(be->name);
		free(be);
	}
	while ((l = TAILQ_FIRST(&lc->listeners)) != NULL) {
		TAILQ_REMOVE(&lc->listeners, l, entry);
		free(l);
	}
	stats_server_free(lc->stats);
	net_acl_free(&lc->stats_acl);
	auth_free(lc->stats_auth);
	free(lc->control);
	explicit_bzero(lc->cookie_key, sizeof(lc->cookie_key));
	free(lc);
}

/* Master, before forking: statistics and shared tables. */
int
lbd_setup(void *p, struct proc_settings *ps)
{
	struct lbd_conf		*lc = p;
	struct lbd_frontend	*fe;
	struct lbd_backend	*be;
	struct lbd_listener	*l;
	static const char	*cls[] = { "1xx", "2xx", "3xx", "4xx", "5xx" };
	char			 key[SHM_NAMELEN];
	int			 i, j;

	TAILQ_FOREACH(fe, &lc->frontends, entry) {
		for (i = 0; i < 5; i++)
			fe->m_req[i + 1] = stats_counter(
			    "lbd_frontend_responses_total",
			    "Responses sent by a frontend, by status class.",
			    "frontend", fe->name, "code", cls[i], NULL);
		fe->m_bytes_in = stats_counter("lbd_frontend_bytes_in_total",
		    "Bytes received from clients.", "frontend", fe->name,
		    NULL);
		fe->m_bytes_out = stats_counter(
		    "lbd_frontend_bytes_out_total", "Bytes sent to clients.",
		    "frontend", fe->name, NULL);
		fe->m_sessions = stats_gauge("lbd_frontend_current_sessions",
		    "Open client connections.", "frontend", fe->name, NULL);
		fe->m_conns = stats_counter("lbd_frontend_connections_total",
		    "Client connections accepted.", "frontend", fe->name,
		    NULL);
		fe->m_denied = stats_counter("lbd_frontend_denied_total",
		    "Connections refused by the allow list, and requests by "
		    "a route's.", "frontend", fe->name, NULL);
		fe->m_limited = stats_counter("lbd_frontend_limited_total",
		    "Requests and connections refused by a rate or "
		    "connection limit.", "frontend", fe->name, NULL);
		if (fe->mode == MODE_TCP)
			fe->m_spliced = stats_counter(
			    "lbd_frontend_spliced_bytes_total",
			    "Bytes of TCP-mode connections moved with "
			    "splice(2), not copied.", "frontend", fe->name,
			    NULL);
		if (fe->rate_max > 0 || fe->conn_max > 0) {
			snprintf(key, sizeof(key), "rl/%s", fe->name);
			if ((fe->rl = rl_table(key)) == NULL) {
				log_warnx("frontend %s: no shared memory left "
				    "for its limits", fe->name);
				return (-1);
			}
		}
		/* a route's table is named by what it matches, so that a
		 * reload that moves it keeps its counts */
		for (i = 0; i < fe->nrules; i++) {
			struct lbd_rule	*r = &fe->rules[i];
			uint64_t	 h;

			if (r->rate_max == 0)
				continue;
			h = hash_bytes(r->value, r->len, r->type);
			if (r->path != NULL)
				h = hash_bytes(r->path, r->pathlen, h + 1);
			snprintf(key, sizeof(key), "rlroute/%016llx/%s",
			    (unsigned long long)h, fe->name);
			if ((r->rl = rl_table(key)) == NULL) {
				log_warnx("frontend %s: no shared memory left "
				    "for the rate limit of route %s", fe->name,
				    r->value);
				return (-1);
			}
		}
		if (fe->conn_max > 0) {
			snprintf(key, sizeof(key), "rlheld/%s", fe->name);
			if ((fe->held = shm_get(key, sizeof(*fe->held),
			    NULL)) == NULL)
				return (-1);
		}
	}
	TAILQ_FOREACH(l, &lc->listeners, entry) {
		/*
		 * Per listener connection count, for maxconn: by name, so
		 * that a reload's workers count with the old ones still
		 * draining, and a reload does not take a new block.
		 */
		snprintf(key, sizeof(key), "lconns/%s/%s", l->fe->name,
		    l->addr);
		if ((l->conns = shm_get(key, sizeof(*l->conns),
		    NULL)) == NULL) {
			log_warnx("frontend %s: no shared memory left for the "
			    "connections of %s", l->fe->name, l->addr);
			return (-1);
		}
		if (l->fe->maxconn > 0) {
			l->srv.maxconn = l->fe->maxconn;
			l->srv.shared_conns = l->conns;
		}
	}
	TAILQ_FOREACH(be, &lc->backends, entry) {
		struct up_pool	*pool = be->pc.pool;

		up_pool_commit(pool);
		/*
		 * Without a check the servers are taken as up: a check this
		 * reload removed leaves none DOWN (only a checker sets it).
		 */
		for (i = 0; be->check.type == CHECK_NONE &&
		    i < pool->nservers; i++) {
			struct up_shared	*sh = pool->servers[i]->sh;

			if (atomic_exchange(&sh->health, UP_HEALTHY) !=
			    UP_HEALTHY) {
				atomic_store(&sh->checked, 0);
				atomic_store(&sh->rise, 0);
				atomic_store(&sh->fall, 0);
				log_info("server %s/%s is UP: no check any more",
				    be->name, pool->servers[i]->name);
			}
			/* nor a last check to show (stats page, metrics) */
			atomic_store(&sh->last_check, 0);
			atomic_store(&sh->check_code, 0);
		}
		if ((be->srvstats = calloc(pool->nservers,
		    sizeof(*be->srvstats))) == NULL)
			fatal("%s", __func__);
		for (i = 0; i < pool->nservers; i++) {
			struct lbd_srvstats	*ss = &be->srvstats[i];
			const char		*sn = pool->servers[i]->name;

			ss->requests = stats_counter(
			    "lbd_server_requests_total",
			    "Requests sent to a server.", "backend", be->name,
			    "server", sn, NULL);
			for (j = 0; j < 5; j++)
				ss->resp[j + 1] = stats_counter(
				    "lbd_server_responses_total",
				    "Responses from a server, by status class.",
				    "backend", be->name, "server", sn, "code",
				    cls[j], NULL);
			ss->bytes_out = stats_counter(
			    "lbd_server_bytes_out_total",
			    "Response bytes from a server sent to clients.",
			    "backend", be->name, "server", sn, NULL);
			ss->checks_failed = stats_counter(
			    "lbd_server_check_failures_total",
			    "Failed health checks.", "backend", be->name,
			    "server", sn, NULL);
			ss->updowns = stats_counter(
			    "lbd_server_check_up_down_total",
			    "Changes between UP and DOWN.", "backend",
			    be->name, "server", sn, NULL);
		}
		be->pc.m_queued = stats_gauge("lbd_backend_current_queue",
		    "Requests waiting for a server slot (maxconn), all "
		    "workers.", "backend", be->name, NULL);
		be->m_queue = stats_histogram("lbd_backend_queue_seconds",
		    "Time waiting for a server slot.", stats_latency_buckets,
		    stats_nlatency_buckets, "backend", be->name, NULL);
		be->m_connect = stats_histogram("lbd_backend_connect_seconds",
		    "Time to connect to a server.", stats_latency_buckets,
		    stats_nlatency_buckets, "backend", be->name, NULL);
		be->m_response = stats_histogram(
		    "lbd_backend_response_seconds",
		    "Time from the request sent to the response head.",
		    stats_latency_buckets, stats_nlatency_buckets, "backend",
		    be->name, NULL);
		be->m_total = stats_histogram(
		    "lbd_backend_total_time_seconds",
		    "Time from the request head to the end of the response.",
		    stats_latency_buckets, stats_nlatency_buckets, "backend",
		    be->name, NULL);
		be->m_noserver = stats_counter(
		    "lbd_backend_unavailable_total",
		    "Requests answered 503 for want of a server.", "backend",
		    be->name, NULL);
		be->m_retries = stats_counter("lbd_backend_retries_total",
		    "Requests sent again after a failure.", "backend",
		    be->name, NULL);
	}
	(void)ps;
	return (0);
}

/*
 * Master: the connections a gone worker (stats slot <slot>) left counted
 * on the servers, the listeners and the per-source limits, taken back: a worker killed at the end
 * of a reload's shutdown timeout, or one that crashed, would otherwise
 * leave its servers looking busy (maxconn, leastconn) for good.
 */
int
lbd_child_gone(void *p, const struct proc_settings *ps, int slot)
{
	struct lbd_conf		*lc = p;
	struct lbd_backend	*be;
	struct lbd_listener	*l;
	struct lbd_frontend	*fe;
	int			 n = 0;

	TAILQ_FOREACH(be, &lc->backends, entry)
		n += up_pool_reap(be->pc.pool, slot);
	TAILQ_FOREACH(fe, &lc->frontends, entry)
		n += rl_reap(fe, slot);
	TAILQ_FOREACH(l, &lc->listeners, entry)
		if (l->conns != NULL)
			n += shm_count_reap(l->conns, slot);
	(void)ps;
	return (n);
}

