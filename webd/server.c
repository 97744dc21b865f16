/*
 * server.c: a request's way through webd: the virtual server by Host,
 * the location by path (exact first, then the first pattern, then the
 * longest prefix), the
 * location's access list, then "return", the proxy or the files.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <sys/stat.h>

#include <ctype.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "proxyproto.h"
#include "webd.h"

static void	server_drain(struct http_req *);

const struct http_handler webd_handler = {
	server_request, NULL, NULL, server_drain, server_done
};

static int
host_match(const char *name, struct slice host)
{
	size_t	nl = strlen(name);

	if (name[0] == '*' && name[1] == '.') {
		/* *.example.org: any name ending in .example.org */
		nl--;
		return (host.len > nl && strncasecmp(host.p + host.len - nl,
		    name + 1, nl) == 0);
	}
	return (host.len == nl && strncasecmp(host.p, name, nl) == 0);
}

/*
 * The server of <wl> for the request's host: an exact name, else the
 * longest wildcard, else the default (first) server.
 */
struct webd_server *
server_find(struct webd_listener *wl, struct http_req *req)
{
	struct slice		 host = http_req_host(req);
	struct webd_server	*best = NULL;
	size_t			 bestlen = 0;
	int			 i, j;

	if (host.len > 0 && host.p[host.len - 1] == '.')
		host.len--;
	if (host.len > 0)
		for (i = 0; i < wl->nservers; i++) {
			struct webd_server *s = wl->servers[i];

			for (j = 0; j < s->nnames; j++) {
				const char	*n = s->names[j];

				if (!host_match(n, host))
					continue;
				if (n[0] != '*')
					return (s);
				if (strlen(n) > bestlen) {
					best = s;
					bestlen = strlen(n);
				}
			}
		}
	return (best ? best : wl->servers[0]);
}

/*
 * The location of <path> (<len> bytes, NUL-terminated): the exact one,
 * else the first pattern that matches it, else the longest prefix, else
 * the server's own.
 */
struct webd_loc *
location_find(struct webd_server *s, const char *path, size_t len)
{
	struct webd_loc	*l;

	TAILQ_FOREACH(l, &s->locs, entry)
		if (l->exact && l->pathlen == len &&
		    memcmp(l->path, path, len) == 0)
			return (l);
	TAILQ_FOREACH(l, &s->locs, entry)
		if (l->glob && fnmatch(l->path, path, 0) == 0)
			return (l);
	return (location_prefix(s, path, len));
}

/* The prefix location of <path>: the longest, else the server's own. */
struct webd_loc *
location_prefix(struct webd_server *s, const char *path, size_t len)
{
	struct webd_loc	*l, *best = NULL;

	TAILQ_FOREACH(l, &s->locs, entry) {
		if (l->exact || l->glob || l->pathlen > len ||
		    memcmp(l->path, path, l->pathlen) != 0)
			continue;
		if (best == NULL || l->pathlen > best->pathlen)
			best = l;
	}
	return (best ? best : &s->base);
}

/*
 * The client's address: the peer, or, when the peer is a trusted proxy
 * (lbd), the one its X-Forwarded-For names (see xff_client()).
 */
const struct sockaddr *
server_client(struct http_req *req)
{
	static struct sockaddr_storage	 ss;
	struct webd_listener		*wl = (struct webd_listener *)
					    req->conn->srv;
	const struct sockaddr		*peer = http_req_peer(req);

	if (!net_trusted_peer(&wl->wc->trusted, peer) ||
	    xff_client(&req->msg, req->conn->in->data, &wl->wc->trusted,
	    &ss) == -1)
		return (peer);
	return ((struct sockaddr *)&ss);
}

/*
 * May the client reach location <l>?  A client known only as a unix
 * socket's peer (no trusted-proxy unix, or no X-Forwarded-For) has no
 * address: no rule matches it, and a list with "allow" rules refuses it.
 */
static int
server_allowed(struct http_req *req, struct webd_loc *l)
{
	const struct sockaddr	*sa = server_client(req);

	if (!l->has_acl)
		return (1);
	return (sa->sa_family == AF_UNIX ? net_acl_unmatched(&l->acl) :
	    net_acl_allows(&l->acl, sa));
}

/*
 * Do <l>'s guards let the request reach <path> (<len> bytes), which <l>
 * serves?  A pattern's path stays under its prefix location's guards too:
 * "*.css" does not open /admin/x.css.  When not, answer 403 or 401 and
 * return -1.
 */
int
server_guard(struct http_req *req, struct webd_server *s, struct webd_loc *l,
    const char *path, size_t len)
{
	struct webd_loc	*g = l->glob ? location_prefix(s, path, len) : l;

	if (!server_allowed(req, l)) {
		server_error(req, s, l, 403);
		return (-1);
	}
	if (g != l && !server_allowed(req, g)) {
		server_error(req, s, g, 403);
		return (-1);
	}
	if (l->auth != NULL && !auth_check(req, l->auth)) {
		server_error(req, s, l, 401);
		return (-1);
	}
	if (g != l && g->auth != NULL && !auth_check(req, g->auth)) {
		server_error(req, s, g, 401);
		return (-1);
	}
	return (0);
}

/* The configured fields, HSTS and caching fields of a response. */
void
server_headers(struct http_req *req, struct webd_server *s, struct webd_loc *l)
{
	int	i;

	for (i = 0; i < l->nheaders; i++)
		if (l->headers[i].value[0] != '\0')
			http_resp_header(req, l->headers[i].name,
			    l->headers[i].value);
	if (s->hsts >= 0 && req->conn->srv->scheme_https)
		http_resp_headerf(req, "Strict-Transport-Security",
		    "max-age=%lld%s%s", (long long)s->hsts,
		    s->hsts_sub ? "; includeSubDomains" : "",
		    s->hsts_preload ? "; preload" : "");
}

/* Cache-Control and Expires of a successful response. */
static void
cache_headers(struct http_req *req, struct webd_loc *l)
{
	char	date[64];

	if (l->cache_control != NULL)
		http_resp_header(req, "Cache-Control", l->cache_control);
	if (l->expires >= 0) {
		if (l->cache_control == NULL)
			http_resp_headerf(req, "Cache-Control", "max-age=%lld",
			    (long long)l->expires);
		http_date_fmt(time(NULL) + l->expires, date, sizeof(date));
		http_resp_header(req, "Expires", date);
	}
}

void
server_cache_headers(struct http_req *req, struct webd_loc *l)
{
	cache_headers(req, l);
}

/* Write <b> as the body (already framed); what does not fit waits. */
static void
send_buf(struct http_req *req, struct buf *b)
{
	struct wreq	*w = req->ud;
	size_t		 n;

	while (buf_used(b) > 0) {
		n = http_resp_write(req, buf_head(b), buf_used(b));
		if (n == 0)
			break;
		buf_consume(b, n);
	}
	if (buf_used(b) > 0 && w != NULL) {
		w->rest = b;
		return;
	}
	buf_free(b);
	free(b);
	http_resp_end(req);
}

/*
 * Answer <body> for location <l>: what the engine does not take now
 * waits for its drain.  Takes <body>.
 */
void
server_send(struct http_req *req, struct webd_loc *l, int status,
    const char *type, struct buf *body)
{
	http_resp_begin(req, status);
	if (type != NULL)
		http_resp_header(req, "Content-Type", type);
	server_headers(req, l->srv, l);
	http_resp_body(req, buf_used(body));
	send_buf(req, body);
}

static void
server_drain(struct http_req *req)
{
	struct wreq	*w = req->ud;
	struct buf	*b;

	if (w == NULL)
		return;
	if (w->mp != NULL) {
		file_drain(req);
		return;
	}
	if (w->rest == NULL)
		return;
	b = w->rest;
	w->rest = NULL;
	send_buf(req, b);
}

/* The errors after which the connection ends (what follows may be junk). */
static int
error_closes(int status)
{
	return (status == 400 || status == 408 || status == 413 ||
	    status == 414 || status == 431 || status >= 500);
}

/* A 401 of a location with basic authentication: its challenge. */
static void
challenge(struct http_req *req, struct webd_loc *l, int status)
{
	if (status == 401 && l != NULL && l->auth != NULL)
		auth_challenge(req, l->auth);
}

/*
 * An error answer: the location's error page for <status> if it has one,
 * else a small page that says the status and nothing of the request.
 */
int
server_error(struct http_req *req, struct webd_server *s, struct webd_loc *l,
    int status)
{
	char	page[256], type[160];
	int	i, n, fd;

	if (l != NULL) {
		for (i = 0; i < l->nerrpages; i++) {
			struct stat	st;
			const char	*path = l->errpages[i].path;
			char		 buf[WEBD_INLINE_MAX];
			ssize_t		 r;

			if (l->errpages[i].status != status)
				continue;
			/* an inherited page is the server's, beneath its
			 * root, also in a location with a root of its own */
			if ((fd = file_open_beneath(l->errpages[i].inherited ?
			    &l->srv->base : l, path + 1, O_RDONLY)) == -1)
				break;
			if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) ||
			    st.st_size > (off_t)sizeof(buf) ||
			    (r = pread(fd, buf, st.st_size, 0)) !=
			    st.st_size) {
				close(fd);
				break;
			}
			close(fd);
			file_content_type(l, path, type, sizeof(type));
			http_resp_begin(req, status);
			http_resp_header(req, "Content-Type", type);
			server_headers(req, s, l);
			challenge(req, l, status);
			if (error_closes(status))
				http_resp_close(req);
			http_resp_body(req, r);
			http_resp_write(req, buf, r);
			return (http_resp_end(req));
		}
	}
	n = snprintf(page, sizeof(page), "<!doctype html>\n<html><head><title>"
	    "%d %s</title></head>\n<body><h1>%d %s</h1><hr>webd</body>"
	    "</html>\n", status, http_reason(status), status,
	    http_reason(status));
	http_resp_begin(req, status);
	http_resp_header(req, "Content-Type", "text/html; charset=utf-8");
	if (s != NULL && l != NULL)
		server_headers(req, s, l);
	challenge(req, l, status);
	if (error_closes(status))
		http_resp_close(req);
	http_resp_body(req, n);
	http_resp_write(req, page, n);
	return (http_resp_end(req));
}

/*
 * The variable at <v> (its "$") in a redirect's URL: its length, 0 when
 * it is none of them.  With <req>, its value is appended to <out>:
 * $scheme, $host (the request's, without its port: the engine checked
 * its bytes) and $request_uri (the target as sent, in origin form).
 */
size_t
server_redirect_var(const char *v, struct http_req *req, struct buf *out)
{
	static const char	*names[] = { "$scheme", "$host",
				    "$request_uri" };
	struct webd_listener	*wl;
	struct slice		 x;
	size_t			 i, n;
	int			 slash;

	for (i = 0; i < nitems(names); i++) {
		n = strlen(names[i]);
		/* the longest name: "$hostx" is not $host */
		if (strncmp(v, names[i], n) == 0 && (v[n] == '\0' ||
		    strchr("/?#:$", v[n]) != NULL))
			break;
	}
	if (i == nitems(names))
		return (0);
	if (req == NULL)
		return (n);
	switch (i) {
	case 0:
		wl = (struct webd_listener *)req->conn->srv;
		buf_puts(out, wl->tls != NULL ? "https" : "http");
		break;
	case 1:
		x = http_req_host(req);
		buf_append(out, x.p, x.len);
		break;
	default:
		x = http_req_uri(req, &slash);
		/*
		 * At the start of a URL, "//evil.example/" would be another
		 * host's (a scheme-relative reference): one slash
		 */
		if (buf_used(out) == 0)
			while (x.len > 1 && x.p[0] == '/' && x.p[1] == '/') {
				x.p++;
				x.len--;
			}
		if (slash)
			buf_putc(out, '/');
		buf_append(out, x.p, x.len);
		break;
	}
	return (n);
}

static void
server_return(struct http_req *req, struct webd_server *s, struct webd_loc *l)
{
	static const char	 moved[] = "moved\n";
	const char		*t = l->ret_text ? l->ret_text : "", *p;
	int			 st = l->ret_status;
	struct buf		 u;
	size_t			 n, max;

	buf_init(&u, 0);
	if (st >= 300 && st < 400 && strchr(t, '$') != NULL) {
		/* no host to send the client back to (HTTP/1.0) */
		if (strstr(t, "$host") != NULL &&
		    http_req_host(req).len == 0) {
			server_error(req, s, l, 400);
			return;
		}
		for (max = strlen(t) + 1, p = t; (p = strchr(p, '$')) != NULL;
		    p++)
			max += http_req_target(req).len +
			    http_req_host(req).len + 8;
		buf_init(&u, max);
		for (p = t; *p != '\0'; p++)
			if (*p != '$' ||
			    (n = server_redirect_var(p, req, &u)) == 0)
				buf_putc(&u, *p);
			else
				p += n - 1;
		if (u.lost || (t = buf_cstr(&u)) == NULL) {
			buf_free(&u);
			server_error(req, s, l, 500);
			return;
		}
	}
	http_resp_begin(req, st);
	server_headers(req, s, l);
	if (st >= 300 && st < 400) {
		http_resp_header(req, "Location", t);
		http_resp_header(req, "Content-Type", "text/plain");
		http_resp_body(req, sizeof(moved) - 1);
		http_resp_write(req, moved, sizeof(moved) - 1);
	} else {
		n = strlen(t);
		http_resp_header(req, "Content-Type",
		    "text/plain; charset=utf-8");
		http_resp_body(req, n + (n > 0));
		http_resp_write(req, t, n);
		if (n > 0)
			http_resp_write(req, "\n", 1);
	}
	buf_free(&u);
	http_resp_end(req);
}

void
server_request(struct http_req *req)
{
	struct webd_listener	*wl = (struct webd_listener *)req->conn->srv;
	struct webd_server	*s;
	struct webd_loc		*l;
	struct http_target	 t;
	struct slice		 tg;
	struct wreq		*w;
	const char		*why;

	s = server_find(wl, req);
	if ((w = calloc(1, sizeof(*w))) == NULL) {
		http_resp_error(req, 500);
		return;
	}
	w->s = s;
	req->ud = w;
	if (req->msg.form == HTTP_T_ASTERISK ||
	    req->msg.form == HTTP_T_AUTHORITY) {
		server_error(req, s, NULL, 400);
		return;
	}
	tg = http_req_target(req);
	if (http_target_parse(tg.p, tg.len, &t, &why) == -1) {
		log_debug("%s: %s", s->name, why);
		server_error(req, s, &s->base, 400);
		return;
	}
	l = location_find(s, t.path, t.pathlen);
	if (server_guard(req, s, l, t.path, t.pathlen) == -1)
		return;
	/* the location's max-body-size: a length now, chunks as they come */
	req->max_body = l->max_body;
	if (l->max_body != 0 && (req->msg.flags & HTTP_F_CL) &&
	    req->msg.content_length > (uint64_t)l->max_body) {
		http_resp_close(req);
		server_error(req, s, l, 413);
		return;
	}
	if (l->ret_status != 0) {
		server_return(req, s, l);
		return;
	}
	if (l->proxy != NULL) {
		server_proxy(req, s, l, l->proxy, &t);
		return;
	}
	server_file(req, s, l, &t);
}

void
server_done(struct http_req *req)
{
	struct wreq	*w = req->ud;

	if (w == NULL)
		return;
	access_log(req, w->s, req->status, req->bytes_out, -1);
	if (w->rest != NULL) {
		buf_free(w->rest);
		free(w->rest);
	}
	file_free(w);
	free(w);
	req->ud = NULL;
}
