/*
 * request.c: the request accessors and response builders of app.h, the
 * per-request arena, and routing.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <ctype.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "appd.h"
#include "log.h"
#include "proxyproto.h"

/* The arena: every allocation of a request, freed at once. */

#define ARENA_CHUNK	8192

struct arena_chunk {
	struct arena_chunk	*next;
	size_t			 used, size;
	max_align_t		 data[];
};

struct arena {
	struct arena_chunk	*head;
	struct arena_chunk	*big;	/* allocations larger than a chunk */
};

struct kv {
	const char	*name;
	const char	*value;
	size_t		 len;
};

struct arena *
arena_new(void)
{
	struct arena	*a;

	if ((a = calloc(1, sizeof(*a))) == NULL)
		fatal("%s", __func__);
	return (a);
}

void *
arena_alloc(struct arena *a, size_t n)
{
	struct arena_chunk	*c;
	size_t			 al = sizeof(max_align_t);

	n = (n + al - 1) & ~(al - 1);
	if (n > ARENA_CHUNK / 4) {
		if ((c = malloc(sizeof(*c) + n)) == NULL)
			return (NULL);
		c->size = c->used = n;
		c->next = a->big;
		a->big = c;
		return (c->data);
	}
	c = a->head;
	if (c == NULL || c->size - c->used < n) {
		if ((c = malloc(sizeof(*c) + ARENA_CHUNK)) == NULL)
			return (NULL);
		c->size = ARENA_CHUNK;
		c->used = 0;
		c->next = a->head;
		a->head = c;
	}
	c->used += n;
	return ((char *)c->data + c->used - n);
}

char *
arena_strndup(struct arena *a, const char *s, size_t n)
{
	char	*p;

	if ((p = arena_alloc(a, n + 1)) == NULL)
		return (NULL);
	memcpy(p, s, n);
	p[n] = '\0';
	return (p);
}

/* Free all but one chunk, for the next request. */
void
arena_reset(struct arena *a)
{
	struct arena_chunk	*c, *next;

	while ((c = a->big) != NULL) {
		a->big = c->next;
		free(c);
	}
	if ((c = a->head) == NULL)
		return;
	for (next = c->next; next != NULL; next = c) {
		c = next->next;
		free(next);
	}
	a->head->next = NULL;
	a->head->used = 0;
}

void
arena_free(struct arena *a)
{
	arena_reset(a);
	free(a->head);
	free(a);
}

/* Routing */

/*
 * The route of <path>: the longest prefix that matches at a segment
 * boundary.  *<sub> gets the path below it, starting with "/".
 */
const struct appd_route *
route_find(struct appd_conf *ac, const char *path, const char **sub)
{
	const struct appd_route	*r, *best = NULL;
	size_t			 plen = strlen(path);
	int			 i;

	for (i = 0; i < ac->nroutes; i++) {
		r = &ac->routes[i];
		if (r->prefixlen > plen ||
		    memcmp(path, r->prefix, r->prefixlen) != 0)
			continue;
		if (r->prefix[r->prefixlen - 1] != '/' &&
		    path[r->prefixlen] != '\0' && path[r->prefixlen] != '/')
			continue;
		if (best == NULL || r->prefixlen > best->prefixlen)
			best = r;
	}
	if (best != NULL) {
		const char	*s = path + best->prefixlen;

		if (best->prefix[best->prefixlen - 1] == '/')
			s--;
		*sub = *s == '\0' ? "/" : s;
	}
	return (best);
}

/* The request */

void
req_init(struct app_req *req, struct appd_conf *ac, struct arena *a)
{
	memset(req, 0, sizeof(*req));
	req->ac = ac;
	req->arena = a;
	req->fd = -1;
}

void
req_finish(struct app_req *req)
{
	db_req_end(req);
}

const char *
app_method(const struct app_req *req)
{
	return (req->method);
}

const char *
app_path(const struct app_req *req)
{
	return (req->path);
}

const char *
app_subpath(const struct app_req *req)
{
	return (req->subpath);
}

const char *
app_query_string(const struct app_req *req)
{
	return (req->query);
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

/* Decode a www-form-urlencoded component; a malformed escape stays. */
static char *
form_decode(struct arena *a, const char *s, size_t n, size_t *outlen)
{
	char	*p;
	size_t	 i, o = 0;

	if ((p = arena_alloc(a, n + 1)) == NULL)
		return (NULL);
	for (i = 0; i < n; i++) {
		if (s[i] == '+')
			p[o++] = ' ';
		else if (s[i] == '%' && i + 2 < n &&
		    hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
			p[o++] = (char)(hexval(s[i + 1]) * 16 +
			    hexval(s[i + 2]));
			i += 2;
		} else
			p[o++] = s[i];
	}
	p[o] = '\0';
	if (outlen != NULL)
		*outlen = o;
	return (p);
}

/* Split "a=1&b=2" into pairs. */
static int
form_parse(struct arena *a, const char *s, size_t n, struct kv **out)
{
	struct kv	*kv;
	size_t		 i, start, eq, cnt = 1, k = 0;

	for (i = 0; i < n; i++)
		if (s[i] == '&')
			cnt++;
	if ((kv = arena_alloc(a, cnt * sizeof(*kv))) == NULL)
		return (0);
	for (start = 0; start <= n; start = i + 1) {
		for (i = start; i < n && s[i] != '&'; i++)
			;
		if (i == start)
			continue;
		for (eq = start; eq < i && s[eq] != '='; eq++)
			;
		kv[k].name = form_decode(a, s + start, eq - start, NULL);
		if (eq < i)
			kv[k].value = form_decode(a, s + eq + 1, i - eq - 1,
			    &kv[k].len);
		else {
			kv[k].value = "";
			kv[k].len = 0;
		}
		if (kv[k].name == NULL || kv[k].value == NULL)
			break;
		k++;
	}
	*out = kv;
	return ((int)k);
}

static const char *
kv_find(const struct kv *kv, int n, const char *name, size_t *len)
{
	int	i;

	for (i = 0; i < n; i++)
		if (strcmp(kv[i].name, name) == 0) {
			if (len != NULL)
				*len = kv[i].len;
			return (kv[i].value);
		}
	return (NULL);
}

const char *
app_query(struct app_req *req, const char *name)
{
	if (!req->qs_done) {
		req->qs_done = 1;
		req->nqs = form_parse(req->arena, req->query,
		    strlen(req->query), &req->qs);
	}
	return (kv_find(req->qs, req->nqs, name, NULL));
}

const char *
app_form(struct app_req *req, const char *name, size_t *len)
{
	const char	*ct;

	if (!req->form_done) {
		req->form_done = 1;
		ct = app_header(req, "content-type");
		if (ct != NULL && strncasecmp(ct,
		    "application/x-www-form-urlencoded", 33) == 0 &&
		    (ct[33] == '\0' || ct[33] == ';' || ct[33] == ' '))
			req->nform = form_parse(req->arena, req->body,
			    req->bodylen, &req->form);
	}
	return (kv_find(req->form, req->nform, name, len));
}

int
app_json_body(struct app_req *req)
{
	if (!req->json_done) {
		req->json_done = 1;
		req->json_ok = json_parse_object(req, req->body,
		    req->bodylen) == 0;
	}
	return (req->json_ok);
}

const char *
app_json_field(struct app_req *req, const char *name, size_t *len)
{
	if (!app_json_body(req))
		return (NULL);
	return (kv_find(req->json, req->njson, name, len));
}

/* For json.c: keep a member of the body's object. */
int
req_json_add(struct app_req *req, const char *name, const char *value,
    size_t len)
{
	struct kv	*kv;

	if ((req->njson & 15) == 0) {
		if ((kv = arena_alloc(req->arena, (req->njson + 16) *
		    sizeof(*kv))) == NULL)
			return (-1);
		if (req->njson > 0)
			memcpy(kv, req->json, req->njson * sizeof(*kv));
		req->json = kv;
	}
	req->json[req->njson].name = name;
	req->json[req->njson].value = value;
	req->json[req->njson].len = len;
	req->njson++;
	return (0);
}

const char *
app_header(struct app_req *req, const char *name)
{
	char		 lower[128];
	struct slice	 v;
	size_t		 i;
	int		 h;

	for (i = 0; name[i] != '\0' && i < sizeof(lower) - 1; i++)
		lower[i] = tolower((unsigned char)name[i]);
	if (name[i] != '\0')
		return (NULL);
	lower[i] = '\0';
	if ((h = http_find(req->msg, req->head, lower, 0)) == -1)
		return (NULL);
	v = http_hdr_value(req->head, &req->msg->hdrs[h]);
	return (arena_strndup(req->arena, v.p, v.len));
}

const char *
app_cookie(struct app_req *req, const char *name)
{
	struct slice	 v;
	const char	*p, *end, *e, *semi;
	size_t		 nlen = strlen(name);
	int		 h = -1;

	while ((h = http_find(req->msg, req->head, "cookie", h + 1)) != -1) {
		v = http_hdr_value(req->head, &req->msg->hdrs[h]);
		p = v.p;
		end = v.p + v.len;
		while (p < end) {
			while (p < end && (*p == ' ' || *p == '\t' ||
			    *p == ';'))
				p++;
			if ((semi = memchr(p, ';', end - p)) == NULL)
				semi = end;
			e = memchr(p, '=', semi - p);
			if (e != NULL && (size_t)(e - p) == nlen &&
			    memcmp(p, name, nlen) == 0) {
				const char	*vs = e + 1, *ve = semi;

				while (ve > vs && (ve[-1] == ' ' ||
				    ve[-1] == '\t'))
					ve--;
				if (ve - vs >= 2 && *vs == '"' &&
				    ve[-1] == '"') {
					vs++;
					ve--;
				}
				return (arena_strndup(req->arena, vs,
				    ve - vs));
			}
			p = semi;
		}
	}
	return (NULL);
}

const char *
app_body(const struct app_req *req, size_t *len)
{
	if (len != NULL)
		*len = req->bodylen;
	return (req->body);
}

int
req_peer_trusted(struct app_req *req)
{
	return (net_trusted_peer(&req->ac->trusted, req->peer));
}

/*
 * 1 once the client has shut its sending side (its FIN: webd letting go
 * of a request whose own client left), for a module's long loops to
 * stop early, as CGI programs are stopped (cgi.c); bytes of a next
 * request the client pipelined are not a FIN.
 */
int
app_client_gone(struct app_req *req)
{
	struct pollfd	pfd = { .fd = req->fd, .events = POLLRDHUP };

	return (req->fd >= 0 && poll(&pfd, 1, 0) == 1 &&
	    (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0);
}

/*
 * The client's address: the peer's, or when the peer is a trusted
 * proxy, the one X-Forwarded-For names (see xff_client()).
 */
const char *
app_client_addr(struct app_req *req)
{
	struct sockaddr_storage	 ss;
	char			 buf[INET6_ADDRSTRLEN];

	if (req->client != NULL)
		return (req->client);
	if (req_peer_trusted(req) && xff_client(req->msg, req->head,
	    &req->ac->trusted, &ss) == 0)
		net_sockaddr_ip((struct sockaddr *)&ss, buf, sizeof(buf));
	else if (req->peer->sa_family == AF_UNIX)
		strlcpy(buf, "unix", sizeof(buf));
	else
		net_sockaddr_ip(req->peer, buf, sizeof(buf));
	req->client = arena_strndup(req->arena, buf, strlen(buf));
	return (req->client);
}

/* The response */

void
resp_init(struct app_resp *r)
{
	memset(r, 0, sizeof(*r));
	buf_init(&r->head, 64 * 1024);
	buf_init(&r->body, APPD_MAXRESP);
	r->status = 200;
}

void
resp_reset(struct app_resp *r)
{
	buf_reset(&r->head);
	buf_reset(&r->body);
	r->status = 200;
	r->has_type = r->json_used = r->err = 0;
	r->depth = r->json_done = 0;
}

void
resp_free(struct app_resp *r)
{
	buf_free(&r->head);
	buf_free(&r->body);
}

void
app_status(struct app_resp *r, int status)
{
	if (status < 100 || status > 999) {
		r->err = 1;
		return;
	}
	r->status = status;
}

/* A field a handler may set: a token name, a value without controls. */
int
resp_header_ok(const char *name, const char *value)
{
	static const char	*own[] = { "content-length", "date",
				    "connection", "transfer-encoding",
				    "keep-alive", "upgrade", "te", "trailer" };
	const char		*p;
	size_t			 i;

	if (*name == '\0')
		return (0);
	for (p = name; *p; p++)
		if (!isalnum((unsigned char)*p) &&
		    strchr("!#$%&'*+-.^_`|~", *p) == NULL)
			return (0);
	for (p = value; *p; p++)
		if (((unsigned char)*p < 0x20 && *p != '\t') || *p == 0x7f)
			return (0);
	for (i = 0; i < nitems(own); i++)
		if (strcasecmp(name, own[i]) == 0)
			return (0);
	return (1);
}

/* Append a field without the checks (appd's own). */
int
resp_header_raw(struct app_resp *r, const char *name, const char *value)
{
	if (strcasecmp(name, "content-type") == 0)
		r->has_type = 1;
	if (buf_printf(&r->head, "%s: %s\r\n", name, value) == -1) {
		r->err = 1;
		return (-1);
	}
	return (0);
}

int
app_header_add(struct app_resp *r, const char *name, const char *value)
{
	if (name == NULL || value == NULL || !resp_header_ok(name, value)) {
		log_warnx("app: refused response field \"%s\"",
		    name ? name : "(null)");
		return (-1);
	}
	return (resp_header_raw(r, name, value));
}

int
app_cookie_set(struct app_resp *r, const char *name, const char *value,
    const char *attrs)
{
	const char	*p;

	for (p = name; *p; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f ||
		    strchr("()<>@,;:\\\"/[]?={}", *p) != NULL)
			return (-1);
	for (p = value; *p; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f ||
		    *p == '"' || *p == ',' || *p == ';' || *p == '\\')
			return (-1);
	if (*name == '\0' || (attrs != NULL && !resp_header_ok("x", attrs)))
		return (-1);
	if (buf_printf(&r->head, "Set-Cookie: %s=%s%s%s\r\n", name, value,
	    attrs ? "; " : "", attrs ? attrs : "") == -1) {
		r->err = 1;
		return (-1);
	}
	return (0);
}

int
app_write(struct app_resp *r, const void *p, size_t n)
{
	if (buf_append(&r->body, p, n) == -1) {
		r->err = 1;
		return (-1);
	}
	return (0);
}

int
app_puts(struct app_resp *r, const char *s)
{
	return (app_write(r, s, strlen(s)));
}

int
app_printf(struct app_resp *r, const char *fmt, ...)
{
	va_list	ap;
	char	small[512], *big = NULL;
	int	n, rv;

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0) {
		r->err = 1;
		return (-1);
	}
	if ((size_t)n < sizeof(small))
		return (app_write(r, small, n));
	if ((big = malloc(n + 1)) == NULL) {
		r->err = 1;
		return (-1);
	}
	va_start(ap, fmt);
	vsnprintf(big, n + 1, fmt, ap);
	va_end(ap);
	rv = app_write(r, big, n);
	free(big);
	return (rv);
}

int
app_error(struct app_resp *r, int status, const char *fmt, ...)
{
	va_list	ap;
	char	msg[1024];

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	buf_reset(&r->body);
	r->depth = r->json_done = 0;
	app_status(r, status);
	if (app_json_object(r) == -1 || app_json_key(r, "error") == -1 ||
	    app_json_string(r, msg) == -1 || app_json_end(r) == -1)
		return (-1);
	return (0);
}
