/*
 * relay_http.c: HTTP frontends.  A request goes through the frontend's
 * redirect, its rate limit, its routes (by Host, then by path prefix, the
 * first that matches, else the default backend), then to the backend's
 * pool through common/'s proxy core, with the frontend's header rules,
 * the backend's sticky cookie and the frontend's error pages.
 */
#include <sys/types.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "lbd.h"

static struct lbd_listener *
listener_of(struct http_req *req)
{
	return ((struct lbd_listener *)req->conn->srv);
}

/* An answer of ours: the frontend's page for <status>, or a small one. */
static int
fe_error(struct lbd_frontend *fe, struct http_req *req, int status)
{
	if (status > 0 && status < 600 && fe->errpage[status] != NULL) {
		http_resp_begin(req, status);
		http_resp_header(req, "Content-Type", "text/html");
		http_resp_header(req, "Cache-Control", "no-store");
		if (status >= 500 || status == 400 || status == 408)
			http_resp_close(req);
		http_resp_body(req, fe->errlen[status]);
		http_resp_write(req, fe->errpage[status], fe->errlen[status]);
		return (http_resp_end(req));
	}
	return (http_resp_error(req, status));
}

/* Per request, before the proxy takes it over: for our own answers. */
struct lreq {
	struct lbd_frontend	*fe;
	struct lbd_backend	*be;
};

static void
l_done(struct http_req *req)
{
	struct lreq	*lr = req->ud;
	struct proxy_info info;

	if (lr == NULL)
		return;
	memset(&info, 0, sizeof(info));
	info.status = req->status;
	info.term[0] = 'L';
	info.term[1] = 'R';
	httplog(req, lr->fe, lr->be, &info);
	free(lr);
	req->ud = NULL;
}

static void	l_request(struct http_req *);

const struct http_handler lbd_handler = {
	l_request, NULL, NULL, NULL, l_done
};

static int
host_matches(const struct lbd_rule *r, struct slice host)
{
	if (r->value[0] == '*' && r->value[1] == '.')
		return (host.len > r->len - 1 && strncasecmp(host.p +
		    host.len - (r->len - 1), r->value + 1, r->len - 1) == 0);
	return (host.len == r->len && strncasecmp(host.p, r->value,
	    r->len) == 0);
}

/* The request's host as routes match it: without its port, final dot. */
static struct slice
route_host(struct http_req *req)
{
	struct slice	host = http_req_host(req);

	if (host.len > 0 && host.p[host.len - 1] == '.')
		host.len--;
	return (host);
}

/* Whether rule <r> matches <host> and the path <path>. */
static int
rule_matches(const struct lbd_rule *r, struct slice host, const char *path,
    size_t plen)
{
	if (r->type == RULE_HOST)
		return (host.len > 0 && host_matches(r, host) &&
		    (r->path == NULL || (plen >= r->pathlen &&
		    memcmp(path, r->path, r->pathlen) == 0)));
	return (plen >= r->len && memcmp(path, r->value, r->len) == 0);
}

/* Does a route with basic auth that matches refuse the request? */
static int
route_auth(struct lbd_frontend *fe, struct http_req *req, struct slice host,
    const struct http_target *t, const struct http_auth **challenge)
{
	const struct lbd_rule	*r;
	int			 i;

	for (i = 0; i < fe->nrules; i++) {
		r = &fe->rules[i];
		if (r->auth != NULL &&
		    rule_matches(r, host, t->path, t->pathlen) &&
		    !auth_check(req, r->auth)) {
			*challenge = r->auth;
			return (1);
		}
	}
	return (0);
}

/*
 * The routes with an allow list or basic auth guard their host and
 * path, whichever route takes the request, on the decoded and
 * normalized path: neither /%61dmin/ nor /x/../admin/ passes a guard on
 * /admin/.  The routes with a rate limit match the same way, and a
 * request counts in each of theirs only when none is over (one refused
 * by an allow list or a limit is not counted, nor one without
 * credentials that basic auth refuses; one with wrong credentials is,
 * so that a limit slows down the guessing of passwords and spares the
 * worker their hashing).  Returns 0, or the status to
 * refuse the request with: 403; 401, with the auth to challenge with in
 * <challenge>; the limit's; 400 for a target that cannot be normalized
 * on a guarded frontend.  Without a guard such a target is not refused:
 * it counts in every limit of its host, whatever the path.
 */
static int
route_guard(struct lbd_frontend *fe, struct http_req *req,
    const struct http_auth **challenge)
{
	struct http_target	 t;
	struct slice		 p, host;
	const struct lbd_rule	*r;
	const struct sockaddr	*peer = http_req_peer(req);
	const char		*why;
	uint64_t		 now;
	int			 i, pass, parsed, bare;

	if (!fe->guarded && !fe->limited)
		return (0);
	p = http_req_path(req);
	parsed = http_target_parse(p.p, p.len, &t, &why) == 0;
	if (!parsed && fe->guarded)
		return (400);
	host = route_host(req);
	for (i = 0; parsed && i < fe->nrules; i++) {
		r = &fe->rules[i];
		if (r->has_acl && rule_matches(r, host, t.path, t.pathlen) &&
		    !net_acl_allows(&r->acl, peer)) {
			stats_inc(fe->m_denied);
			return (403);
		}
	}
	/*
	 * Without credentials, a guard refuses at no cost: before the
	 * limits, so that a browser's first, bare request does not count;
	 * with them, after the limits, which count wrong passwords and
	 * spare their hash
	 */
	bare = !(req->msg.flags & HTTP_F_AUTH);
	if (bare && parsed && route_auth(fe, req, host, &t, challenge))
		return (401);
	/* the limits: each one looked at, then counted in if none is over */
	now = ev_now(req->conn->loop);
	for (pass = 0; fe->limited && pass < 2; pass++)
		for (i = 0; i < fe->nrules; i++) {
			r = &fe->rules[i];
			if (r->rate_max == 0 || !(parsed ?
			    rule_matches(r, host, t.path, t.pathlen) :
			    (r->type == RULE_PATH || (host.len > 0 &&
			    host_matches(r, host)))))
				continue;
			if (rl_request(r->rl, r->rate_max, r->rate_window,
			    peer, now, pass) == -1) {
				stats_inc(fe->m_limited);
				return (r->rate_status);
			}
		}
	if (!bare && parsed && route_auth(fe, req, host, &t, challenge))
		return (401);
	return (0);
}

static struct lbd_backend *
route(struct lbd_frontend *fe, struct http_req *req)
{
	struct slice	 host;
	struct slice	 t = http_req_target(req);
	const char	*path = t.p;
	size_t		 plen = t.len;
	int		 i;

	if (fe->nrules == 0)
		return (fe->defbe);
	host = route_host(req);
	/* the path of an absolute-form target */
	if (req->msg.form == HTTP_T_ABSOLUTE) {
		struct slice	auth, rest;

		http_absolute_split(t.p, t.len, &auth, &rest);
		path = rest.p;
		plen = rest.len;
		if (plen == 0 || *path == '?') {
			path = "/";	/* as it goes to the server */
			plen = 1;
		}
	}
	for (i = 0; i < fe->nrules; i++)
		if (rule_matches(&fe->rules[i], host, path, plen))
			return (fe->rules[i].be);
	return (fe->defbe);
}

static void
redirect_https(struct lbd_frontend *fe, struct http_req *req)
{
	struct slice	 host = http_req_host(req), uri;
	static const char body[] = "moved to https\n";
	int		 slash;

	/* no URI to move to for OPTIONS * or CONNECT's authority */
	if (host.len == 0 || req->msg.form == HTTP_T_ASTERISK ||
	    req->msg.form == HTTP_T_AUTHORITY) {
		fe_error(fe, req, 400);
		return;
	}
	/* the host without its port: the HTTPS port is 443 */
	http_resp_begin(req, fe->redirect_code);
	uri = http_req_uri(req, &slash);
	http_resp_headerf(req, "Location", "https://%.*s%s%.*s",
	    (int)host.len, host.p, slash ? "/" : "", (int)uri.len, uri.p);
	http_resp_header(req, "Content-Type", "text/plain");
	http_resp_body(req, sizeof(body) - 1);
	http_resp_write(req, body, sizeof(body) - 1);
	http_resp_end(req);
}

/*
 * The requests "redirect https except PREFIX" lets through on plain
 * HTTP (an ACME HTTP-01 challenge): those whose path, as sent, is PREFIX
 * and one name of letters, digits, "-" and "_" (an ACME token is
 * base64url), the query aside.  No encoding, dot segment, ";" or second
 * slash: what passes is read alike by lbd's routes and by any server.
 */
static int
redirect_exempt(struct lbd_frontend *fe, struct http_req *req)
{
	struct slice	 p;
	size_t		 n, i;

	if (fe->redirect_except == NULL)
		return (0);
	p = http_req_path(req);
	n = strlen(fe->redirect_except);
	if (p.len < n || memcmp(p.p, fe->redirect_except, n) != 0)
		return (0);
	for (i = n; i < p.len; i++)
		if (!isalnum((unsigned char)p.p[i]) && p.p[i] != '-' &&
		    p.p[i] != '_')
			return (0);
	return (1);
}

static void
l_request(struct http_req *req)
{
	struct lbd_listener	*l = listener_of(req);
	struct lbd_frontend	*fe = l->fe;
	struct lbd_backend	*be;
	struct lreq		*lr;
	const struct http_auth	*challenge = NULL;
	int			 st;

	if ((lr = calloc(1, sizeof(*lr))) == NULL) {
		http_resp_error(req, 500);
		return;
	}
	lr->fe = fe;
	req->ud = lr;
	if (req->conn->ud != NULL) {
		/* over the frontend's conn-limit (lbd.c) */
		http_resp_close(req);
		fe_error(fe, req, *(int *)req->conn->ud);
		return;
	}
	if (fe->redirect_https && !l->tls && !redirect_exempt(fe, req)) {
		redirect_https(fe, req);
		return;
	}
	/* (OPTIONS * goes on to a server, as HAProxy sends it) */
	if (req->msg.form == HTTP_T_AUTHORITY) {
		fe_error(fe, req, 400);
		return;
	}
	if (fe->rate_max > 0 && rl_request(fe->rl, fe->rate_max,
	    fe->rate_window, http_req_peer(req),
	    ev_now(req->conn->loop), 1) == -1) {
		stats_inc(fe->m_limited);
		fe_error(fe, req, fe->rate_status);
		return;
	}
	if ((st = route_guard(fe, req, &challenge)) == 401) {
		auth_refuse(req, challenge, fe->errpage[401], fe->errlen[401]);
		return;
	} else if (st != 0) {
		fe_error(fe, req, st);
		return;
	}
	if ((be = route(fe, req)) == NULL) {
		fe_error(fe, req, 503);
		return;
	}
	lr->be = be;
	/* the proxy takes the request over; we hear of it in r_done */
	free(lr);
	req->ud = NULL;
	proxy_start(req, &be->pc);
}

/* Proxy hooks */

static int
hdr_named(const struct lbd_hdrrule *h, struct slice name)
{
	return (strlen(h->name) == name.len &&
	    strncasecmp(h->name, name.p, name.len) == 0);
}

/* Request fields: "set" and "delete" remove the field as it came. */
static int
r_req_filter(void *arg, struct http_req *req, struct slice name,
    struct slice value)
{
	struct lbd_frontend	*fe = listener_of(req)->fe;
	int			 i;

	(void)arg;
	for (i = 0; i < fe->nhdr; i++)
		if (!fe->hdr[i].response && fe->hdr[i].op != HDR_ADD &&
		    hdr_named(&fe->hdr[i], name))
			return (0);
	return (1);
}

static void
r_req_add(void *arg, struct http_req *req, struct buf *b)
{
	struct lbd_frontend	*fe = listener_of(req)->fe;
	int			 i;

	for (i = 0; i < fe->nhdr; i++)
		if (!fe->hdr[i].response && fe->hdr[i].op != HDR_DEL)
			buf_printf(b, "%s: %s\r\n", fe->hdr[i].name,
			    fe->hdr[i].value);
}

static int
r_resp_filter(void *arg, struct http_req *req, struct slice name,
    struct slice value)
{
	struct lbd_frontend	*fe = listener_of(req)->fe;
	int			 i;

	for (i = 0; i < fe->nhdr; i++)
		if (fe->hdr[i].response && fe->hdr[i].op != HDR_ADD &&
		    hdr_named(&fe->hdr[i], name))
			return (0);
	return (1);
}

static void
r_resp_add(void *arg, struct http_req *req, const struct proxy_info *info)
{
	struct lbd_backend	*be = arg;
	struct lbd_frontend	*fe = listener_of(req)->fe;
	int			 i;

	for (i = 0; i < fe->nhdr; i++)
		if (fe->hdr[i].response && fe->hdr[i].op != HDR_DEL)
			http_resp_header(req, fe->hdr[i].name,
			    fe->hdr[i].value);
	if (be->cookie != NULL && info->server != NULL)
		sticky_set(be, req, info->server);
}

static uint64_t
r_hash_key(void *arg, struct http_req *req)
{
	struct lbd_backend	*be = arg;
	char			 ip[INET6_ADDRSTRLEN];
	uint64_t		 key;

	if (proxy_hash_request(&be->pc, req, &key))
		return (key);
	net_sockaddr_ip(http_req_peer(req), ip, sizeof(ip));
	return (hash_bytes(ip, strlen(ip), 0));
}

static struct up_server *
r_pick(void *arg, struct http_req *req)
{
	struct lbd_backend	*be = arg;

	if (be->cookie == NULL)
		return (NULL);
	return (sticky_find(be, req));
}

static int
r_error(void *arg, struct http_req *req, int status)
{
	struct lbd_frontend	*fe = listener_of(req)->fe;
	struct lbd_backend	*be = arg;

	if (status == 503)
		stats_inc(be->m_noserver);
	if (status > 0 && status < 600 && fe->errpage[status] != NULL) {
		fe_error(fe, req, status);
		return (1);
	}
	return (0);
}

static void
r_done(void *arg, struct http_req *req, const struct proxy_info *info)
{
	struct lbd_backend	*be = arg;
	struct lbd_frontend	*fe = listener_of(req)->fe;

	httplog(req, fe, be, info);
}

void
relay_http_hooks(struct lbd_backend *be)
{
	be->pc.req_filter = r_req_filter;
	be->pc.req_add = r_req_add;
	be->pc.resp_filter = r_resp_filter;
	be->pc.resp_add = r_resp_add;
	if (be->pc.pool->lb == &lb_source || be->pc.pool->lb == &lb_uri)
		be->pc.hash_key = r_hash_key;
	be->pc.pick = r_pick;
	be->pc.error = r_error;
	be->pc.done = r_done;
	be->pc.arg = be;
}
