/*
 * http_parse.c: the HTTP/1.1 head parser and the chunked decoder.
 *
 * Grammar (RFC 9112), as enforced here:
 *
 *	message    = start-line *( field-line CRLF ) CRLF [ body ]
 *	start-line = method SP request-target SP HTTP-version CRLF
 *		   / HTTP-version SP 3DIGIT SP [ reason-phrase ] CRLF
 *	HTTP-version = "HTTP/" DIGIT "." DIGIT	(1.x only, else 505; 1.2
 *						and up read as 1.1)
 *	status-code = 3DIGIT			(100 to 599)
 *	request-target = origin-form / absolute-form (its authority checked)
 *		   / authority-form (CONNECT only, with a port)
 *		   / "*" (OPTIONS only)
 *	field-line = field-name ":" OWS field-value OWS
 *	field-name = token			(nothing before the colon)
 *	field-value = *( VCHAR / obs-text / SP / HTAB )
 *	chunk      = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
 *	chunk-ext  = *( BWS ";" BWS token [ BWS "=" BWS
 *		     ( token / quoted-string ) ] )
 *
 * Every line ends in CRLF: a bare LF or CR is an error, as is a field
 * line that starts with whitespace (obs-fold).  At most a few empty lines
 * before a request line are skipped (RFC 9112 section 2.2).
 */
#include <sys/types.h>

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "http.h"

#define HTTP_MAXSKIP	8		/* empty lines before a request */

const struct http_limits http_default_limits = {
	HTTP_MAXREQLINE, HTTP_MAXHEAD, HTTP_MAXHEADERS, HTTP_MAXBODY,
	HTTP_HEADER_TIMEOUT, HTTP_BODY_TIMEOUT, HTTP_IDLE_TIMEOUT,
	HTTP_SEND_TIMEOUT
};

enum {
	S_START = 0,
	S_START_LF,
	S_METHOD,
	S_TARGET,
	S_VERSION,
	S_RL_LF,
	S_RVERSION,
	S_STATUS,
	S_STATUS_SP,
	S_REASON,
	S_LINE,
	S_NAME,
	S_OWS,
	S_VALUE,
	S_VALUE_LF,
	S_END_LF,
	S_DONE,
	S_ERROR
};

/* character classes */
#define C_TCHAR		0x01	/* token */
#define C_VCHAR		0x02	/* field value: VCHAR obs-text SP HTAB */
#define C_TARGET	0x04	/* request-target: VCHAR */
#define C_HEX		0x08
#define C_REASON	0x10	/* reason-phrase: as field value */

static unsigned char	ctab[256];
static int		ctab_ready;

static void
ctab_init(void)
{
	const char	*tspecial = "!#$%&'*+-.^_`|~";
	int		 c;

	for (c = 0; c < 256; c++) {
		unsigned char	v = 0;

		if (isalnum(c) && c < 128)
			v |= C_TCHAR;
		if ((c > 0x20 && c < 0x7f) || c >= 0x80 || c == ' ' ||
		    c == '\t')
			v |= C_VCHAR | C_REASON;
		/* no "#": a fragment is never sent (RFC 9112 3.2), and a
		 * target with one would be read two ways */
		if (c > 0x20 && c < 0x7f && c != '#')
			v |= C_TARGET;
		if (isxdigit(c) && c < 128)
			v |= C_HEX;
		ctab[c] = v;
	}
	for (; *tspecial; tspecial++)
		ctab[(unsigned char)*tspecial] |= C_TCHAR;
	ctab_ready = 1;
}

void
http_msg_init(struct http_msg *m, int response, const struct http_limits *lim,
    struct http_hdr *hdrs)
{
	memset(m, 0, sizeof(*m));
	m->response = response;
	m->lim = lim ? lim : &http_default_limits;
	m->hdrs = hdrs;
	m->host = -1;
	m->state = response ? S_RVERSION : S_START;
	if (!ctab_ready)
		ctab_init();
}

static int	upgrade_h2c(const struct http_msg *, const char *);

static int
fail(struct http_msg *m, int status, const char *why)
{
	m->state = S_ERROR;
	m->error = m->response ? 502 : status;
	m->errmsg = why;
	return (HTTP_ERROR);
}

int
http_token_eq(const char *p, size_t len, const char *lower)
{
	size_t	i;

	for (i = 0; i < len; i++) {
		unsigned char	c = p[i];

		/* ASCII only: no locale */
		if (c >= 'A' && c <= 'Z')
			c += 'a' - 'A';
		if (lower[i] == '\0' || c != (unsigned char)lower[i])
			return (0);
	}
	return (lower[len] == '\0');
}

static const struct {
	const char		*name;
	enum http_method	 m;
} methods[] = {
	{ "GET", HTTP_M_GET }, { "HEAD", HTTP_M_HEAD },
	{ "POST", HTTP_M_POST }, { "PUT", HTTP_M_PUT },
	{ "DELETE", HTTP_M_DELETE }, { "CONNECT", HTTP_M_CONNECT },
	{ "OPTIONS", HTTP_M_OPTIONS }, { "TRACE", HTTP_M_TRACE },
	{ "PATCH", HTTP_M_PATCH }
};

const char *
http_method_name(enum http_method m)
{
	size_t	i;

	for (i = 0; i < nitems(methods); i++)
		if (methods[i].m == m)
			return (methods[i].name);
	return ("OTHER");
}

/* Methods are case-sensitive (RFC 9110 section 9.1). */
static enum http_method
method_lookup(const char *p, size_t len)
{
	size_t	i;

	for (i = 0; i < nitems(methods); i++)
		if (strlen(methods[i].name) == len &&
		    memcmp(methods[i].name, p, len) == 0)
			return (methods[i].m);
	return (HTTP_M_OTHER);
}

/* "HTTP/1.1": 0 with the minor version, -1 malformed, -2 unsupported */
static int
version_parse(const char *p, size_t len, int *minor)
{
	if (len != 8 || memcmp(p, "HTTP/", 5) != 0 ||
	    !isdigit((unsigned char)p[5]) || p[6] != '.' ||
	    !isdigit((unsigned char)p[7]))
		return (-1);
	if (p[5] != '1')
		return (-2);
	/* a higher minor is read as the highest we know (RFC 9112 2.3) */
	*minor = p[7] == '0' ? 0 : 1;
	return (0);
}

/* Iterate over the elements of a comma-separated list value. */
static int
list_next(struct slice *v, struct slice *elem)
{
	const char	*p, *end;

	for (;;) {
		if (v->len == 0)
			return (0);
		end = memchr(v->p, ',', v->len);
		p = v->p;
		if (end == NULL) {
			*elem = slice_trim(slice_make(p, v->len));
			v->p += v->len;
			v->len = 0;
		} else {
			*elem = slice_trim(slice_make(p, end - p));
			v->len -= end - p + 1;
			v->p = end + 1;
		}
		if (elem->len > 0)
			return (1);
	}
}

int
http_list_has(struct slice v, const char *lower)
{
	struct slice	e;

	while (list_next(&v, &e))
		if (http_token_eq(e.p, e.len, lower))
			return (1);
	return (0);
}

static int
is_token(struct slice s)
{
	size_t	i;

	if (s.len == 0)
		return (0);
	for (i = 0; i < s.len; i++)
		if (!(ctab[(unsigned char)s.p[i]] & C_TCHAR))
			return (0);
	return (1);
}

/* Per-message bookkeeping of Transfer-Encoding, kept in mark2 bits. */
#define TE_CHUNKED_LAST	0x1
#define TE_CHUNKED_SEEN	0x2
#define TE_OTHER	0x4
#define TE_BAD		0x8

/* Check one complete field line and note what it means. */
static int
field_done(struct http_msg *m, const char *buf, struct http_hdr *h)
{
	const char	*name = buf + h->name;
	struct slice	 v = slice_make(buf + h->value, h->valuelen);
	struct slice	 e;

	switch (h->namelen) {
	case 4:
		if (http_token_eq(name, 4, "host")) {
			h->flags |= HTTP_H_HOST;
			if (m->response)
				break;
			if (m->host != -1)
				return (fail(m, 400, "more than one Host"));
			m->host = m->nhdrs;
			if (!http_host_valid(v.p, v.len))
				return (fail(m, 400, "invalid Host"));
		}
		break;
	case 2:
		if (http_token_eq(name, 2, "te"))
			h->flags |= HTTP_H_TEHDR | HTTP_H_HOPBYHOP;
		break;
	case 6:
		if (http_token_eq(name, 6, "expect")) {
			h->flags |= HTTP_H_EXPECT;
			if (m->response)
				break;
			if (!http_token_eq(v.p, v.len, "100-continue"))
				return (fail(m, 417, "unsupported Expect"));
			/* ignored in HTTP/1.0 (RFC 9110 section 10.1.1) */
			if (m->minor == 1)
				m->flags |= HTTP_F_CONTINUE;
		}
		break;
	case 7:
		if (http_token_eq(name, 7, "upgrade"))
			h->flags |= HTTP_H_UPGRADE;
		else if (http_token_eq(name, 7, "trailer"))
			h->flags |= HTTP_H_TRAILER | HTTP_H_HOPBYHOP;
		break;
	case 10:
		if (http_token_eq(name, 10, "connection")) {
			h->flags |= HTTP_H_CONNECTION | HTTP_H_HOPBYHOP;
			while (list_next(&v, &e)) {
				if (!is_token(e))
					return (fail(m, 400,
					    "invalid Connection"));
				if (http_token_eq(e.p, e.len, "close"))
					m->flags |= HTTP_F_CLOSE;
				else if (http_token_eq(e.p, e.len,
				    "keep-alive"))
					m->flags |= HTTP_F_KEEPALIVE;
				else if (http_token_eq(e.p, e.len,
				    "upgrade")) {
					/* ignored in HTTP/1.0 (RFC 9110 7.8) */
					if (m->response || m->minor == 1)
						m->flags |= HTTP_F_UPGRADE;
				}
				else
					m->flags |= HTTP_F_CONN_OTHER;
			}
		} else if (http_token_eq(name, 10, "keep-alive"))
			h->flags |= HTTP_H_KEEPALIVE | HTTP_H_HOPBYHOP;
		break;
	case 14:
		if (http_token_eq(name, 14, "content-length")) {
			int	n_elem = 0;

			h->flags |= HTTP_H_CL;
			if (v.len == 0)
				return (fail(m, 400, "empty Content-Length"));
			while (list_next(&v, &e)) {
				uint64_t	n;

				if (e.len > 19 || slice_to_u64(e, &n) == -1)
					return (fail(m, 400,
					    "invalid Content-Length"));
				if ((m->flags & HTTP_F_CL) &&
				    n != m->content_length)
					return (fail(m, 400,
					    "differing Content-Length"));
				m->content_length = n;
				m->flags |= HTTP_F_CL;
				n_elem++;
			}
			/* "5, 5" is 5 (RFC 9110 section 8.6); "," is nothing */
			if (n_elem == 0)
				return (fail(m, 400, "invalid Content-Length"));
		}
		break;
	case 13:
		/*
		 * Credentials are one field (RFC 9110 11.6.2): two would
		 * let a guard check one while the app reads the other
		 */
		if (!m->response && http_token_eq(name, 13,
		    "authorization")) {
			if (m->flags & HTTP_F_AUTH)
				return (fail(m, 400,
				    "more than one Authorization"));
			m->flags |= HTTP_F_AUTH;
		}
		break;
	case 16:
		if (http_token_eq(name, 16, "proxy-connection"))
			h->flags |= HTTP_H_PROXYCONN | HTTP_H_HOPBYHOP;
		break;
	case 17:
		if (http_token_eq(name, 17, "transfer-encoding")) {
			h->flags |= HTTP_H_TE | HTTP_H_HOPBYHOP;
			m->flags |= HTTP_F_TE;
			if (v.len == 0)
				m->mark2 |= TE_BAD;
			while (list_next(&v, &e)) {
				if (http_token_eq(e.p, e.len, "chunked")) {
					if (m->mark2 & TE_CHUNKED_SEEN)
						m->mark2 |= TE_BAD;
					m->mark2 |= TE_CHUNKED_SEEN |
					    TE_CHUNKED_LAST;
				} else {
					/* anything after chunked, or with
					 * parameters, is not chunked */
					if (!is_token(e) &&
					    memchr(e.p, ';', e.len) == NULL)
						m->mark2 |= TE_BAD;
					m->mark2 &= ~TE_CHUNKED_LAST;
					m->mark2 |= TE_OTHER;
				}
			}
		}
		break;
	}
	return (0);
}

/* The head is complete: decide the framing and check what goes together. */
static int
head_done(struct http_msg *m, const char *buf)
{
	uint32_t	te = m->mark2;

	if (m->response) {
		int	s = m->status;

		if (s < 200 && s != 101) {
			m->framing = HTTP_BODY_NONE;
			return (HTTP_DONE);
		}
		if (s == 101) {
			m->framing = HTTP_BODY_TUNNEL;
			return (HTTP_DONE);
		}
		if (m->req_method == HTTP_M_CONNECT && s < 300) {
			m->framing = HTTP_BODY_TUNNEL;
			return (HTTP_DONE);
		}
		if (m->req_method == HTTP_M_HEAD || s == 204 || s == 304) {
			m->framing = HTTP_BODY_NONE;
			return (HTTP_DONE);
		}
		if (m->flags & HTTP_F_TE) {
			/*
			 * Only chunked: another coding would reach the
			 * client undone and unnamed, as the field is
			 * hop-by-hop (nginx refuses them too)
			 */
			if (te & (TE_OTHER | TE_BAD))
				return (fail(m, 502,
				    "unsupported transfer coding"));
			m->framing = HTTP_BODY_CHUNKED;
			/* chunked wins over a Content-Length; close after */
			if ((m->flags & HTTP_F_CL) || m->minor == 0)
				m->flags |= HTTP_F_BADFRAMING;
			return (HTTP_DONE);
		}
		if (m->flags & HTTP_F_CL) {
			m->framing = HTTP_BODY_LENGTH;
			return (HTTP_DONE);
		}
		m->framing = HTTP_BODY_CLOSE;
		return (HTTP_DONE);
	}

	if (m->minor == 1 && m->host == -1)
		return (fail(m, 400, "missing Host"));
	switch (m->form) {
	case HTTP_T_AUTHORITY:
		if (m->method != HTTP_M_CONNECT)
			return (fail(m, 400, "authority-form without CONNECT"));
		break;
	case HTTP_T_ASTERISK:
		if (m->method != HTTP_M_OPTIONS)
			return (fail(m, 400, "* without OPTIONS"));
		break;
	default:
		if (m->method == HTTP_M_CONNECT)
			return (fail(m, 400, "CONNECT needs host:port"));
		break;
	}
	if (m->flags & HTTP_F_TE) {
		if (m->minor == 0)
			return (fail(m, 400, "Transfer-Encoding in HTTP/1.0"));
		if (m->flags & HTTP_F_CL)
			return (fail(m, 400,
			    "Transfer-Encoding with Content-Length"));
		if ((te & TE_BAD) || !(te & TE_CHUNKED_LAST))
			return (fail(m, 400,
			    "Transfer-Encoding does not end in chunked"));
		if (te & TE_OTHER)
			return (fail(m, 501, "unsupported transfer coding"));
		m->framing = HTTP_BODY_CHUNKED;
	} else if (m->flags & HTTP_F_CL) {
		m->framing = m->content_length > 0 ? HTTP_BODY_LENGTH :
		    HTTP_BODY_NONE;
		if (m->lim->max_body != 0 &&
		    m->content_length > m->lim->max_body)
			return (fail(m, 413, "body too large"));
	} else
		m->framing = HTTP_BODY_NONE;
	if ((m->flags & HTTP_F_UPGRADE) && (http_find(m, buf, "upgrade",
	    0) == -1 || (!m->response && upgrade_h2c(m, buf))))
		m->flags &= ~HTTP_F_UPGRADE;
	return (HTTP_DONE);
}

/*
 * The form of a request target (RFC 9112 section 3.2), or -1.  The
 * authority of the absolute and authority forms is checked here, so that
 * no one downstream meets an empty host or a userinfo.
 */
static int
target_form(struct http_msg *m, const char *t, size_t len)
{
	struct slice	 host;
	size_t		 i, n;
	int		 port;

	if (t[0] == '/')
		return (HTTP_T_ORIGIN);
	if (len == 1 && t[0] == '*')
		return (HTTP_T_ASTERISK);
	if (m->method == HTTP_M_CONNECT) {
		/* uri-host ":" port, the port required */
		if (http_authority_parse(t, len, &host, &port) == -1 ||
		    host.len == 0 || port == 0)
			return (-1);
		return (HTTP_T_AUTHORITY);
	}
	/* absolute-form: scheme "://" authority [ path-abempty ] */
	if (!isalpha((unsigned char)t[0]))
		return (-1);
	for (i = 1; i < len; i++) {
		if (t[i] == ':')
			break;
		if (!isalnum((unsigned char)t[i]) && t[i] != '+' &&
		    t[i] != '-' && t[i] != '.')
			return (-1);
	}
	if (i + 3 > len || t[i + 1] != '/' || t[i + 2] != '/')
		return (-1);
	t += i + 3;
	len -= i + 3;
	for (n = 0; n < len; n++)
		if (t[n] == '/' || t[n] == '?')
			break;
	if (http_authority_parse(t, n, &host, &port) == -1 || host.len == 0)
		return (-1);
	return (HTTP_T_ABSOLUTE);
}

/*
 * An absolute-form target (one the parser took as HTTP_T_ABSOLUTE) cut in
 * two: the authority, and the rest (path and query, empty when none).
 * Everything that reads such a target cuts it here, so that none reads it
 * another way.
 */
void
http_absolute_split(const char *t, size_t len, struct slice *auth,
    struct slice *rest)
{
	const char	*s = memchr(t, ':', len), *e = t + len, *p;

	s = s != NULL && e - s >= 3 ? s + 3 : e;
	for (p = s; p < e && *p != '/' && *p != '?'; p++)
		;
	*auth = slice_make(s, p - s);
	*rest = slice_make(p, e - p);
}

/*
 * Parse the head of one message from buf[0..len).  <buf> must start
 * where the message starts, with the same bytes as the previous call and
 * possibly more.  Returns HTTP_AGAIN, HTTP_DONE or HTTP_ERROR.
 */
int
http_parse(struct http_msg *m, const char *buf, size_t len)
{
	const unsigned char	*p = (const unsigned char *)buf + m->pos;
	const unsigned char	*end = (const unsigned char *)buf + len;
	const unsigned char	*b = (const unsigned char *)buf;
	const struct http_limits *lim = m->lim;
	struct http_hdr		*h;
	int			 rv;
	size_t			 maxhead = lim->max_head + m->skipped;

	if (m->state == S_DONE)
		return (HTTP_DONE);
	if (m->state == S_ERROR)
		return (HTTP_ERROR);
	if (len > maxhead)
		end = b + maxhead;

	while (p < end) {
		switch (m->state) {
		case S_START:
			if (*p == '\r') {
				m->state = S_START_LF;
				p++;
				continue;
			}
			if (*p == '\n')
				return (fail(m, 400, "bare LF"));
			if (!(ctab[*p] & C_TCHAR))
				return (fail(m, 400, "invalid method"));
			m->method_off = p - b;
			m->mark = p - b;
			m->state = S_METHOD;
			continue;
		case S_START_LF:
			if (*p != '\n')
				return (fail(m, 400, "bare CR"));
			p++;
			m->skipped += 2;
			maxhead += 2;
			if (m->skipped > 2 * HTTP_MAXSKIP)
				return (fail(m, 400, "too many empty lines"));
			/* the limit moved: so may the end, up to len */
			end = b + (len > maxhead ? maxhead : len);
			m->state = S_START;
			continue;
		case S_METHOD:
			while (p < end && (ctab[*p] & C_TCHAR))
				p++;
			if (p - b - m->method_off > HTTP_MAXMETHOD)
				return (fail(m, 501, "method too long"));
			if (p == end)
				break;
			if (*p != ' ')
				return (fail(m, 400, "invalid method"));
			m->method_len = p - b - m->method_off;
			m->method = method_lookup(buf + m->method_off,
			    m->method_len);
			p++;
			m->target_off = p - b;
			m->state = S_TARGET;
			continue;
		case S_TARGET:
			while (p < end && (ctab[*p] & C_TARGET))
				p++;
			if ((size_t)(p - b) - m->method_off > lim->max_reqline)
				return (fail(m, 414, "request line too long"));
			if (p == end)
				break;
			if (*p != ' ') {
				if (*p == '\r' || *p == '\n')
					return (fail(m, 400,
					    "missing HTTP version"));
				return (fail(m, 400,
				    "invalid byte in request target"));
			}
			m->target_len = p - b - m->target_off;
			if (m->target_len == 0)
				return (fail(m, 400, "empty request target"));
			if ((rv = target_form(m, buf + m->target_off,
			    m->target_len)) == -1)
				return (fail(m, 400, "invalid request target"));
			m->form = rv;
			p++;
			m->mark = p - b;
			m->state = S_VERSION;
			continue;
		case S_VERSION:
			while (p < end && *p != '\r' && *p != '\n' &&
			    (size_t)(p - b) - m->mark < 9)
				p++;
			if ((size_t)(p - b) - m->method_off > lim->max_reqline)
				return (fail(m, 414, "request line too long"));
			if (p == end)
				break;
			if (*p == '\n')
				return (fail(m, 400, "bare LF"));
			if (*p != '\r')
				return (fail(m, 400, "invalid HTTP version"));
			rv = version_parse(buf + m->mark, p - b - m->mark,
			    &m->minor);
			if (rv == -1)
				return (fail(m, 400, "invalid HTTP version"));
			if (rv == -2)
				return (fail(m, 505, "unsupported HTTP version"));
			p++;
			m->state = S_RL_LF;
			continue;
		case S_RL_LF:
			if (*p != '\n')
				return (fail(m, 400, "bare CR"));
			p++;
			m->state = S_LINE;
			continue;

		case S_RVERSION:
			while (p < end && *p != ' ' && (p - b) < 9)
				p++;
			if (p == end)
				break;
			if (*p != ' ')
				return (fail(m, 502, "invalid status line"));
			rv = version_parse(buf, p - b, &m->minor);
			if (rv != 0)
				return (fail(m, 502, "invalid HTTP version"));
			p++;
			m->mark = p - b;
			m->state = S_STATUS;
			continue;
		case S_STATUS:
			while (p < end && isdigit(*p) && (p - b) - m->mark < 3)
				p++;
			if (p == end)
				break;
			if ((p - b) - m->mark != 3)
				return (fail(m, 502, "invalid status code"));
			m->status = (b[m->mark] - '0') * 100 +
			    (b[m->mark + 1] - '0') * 10 + (b[m->mark + 2] - '0');
			/* 100-599 (RFC 9110 section 15) */
			if (m->status < 100 || m->status > 599)
				return (fail(m, 502, "invalid status code"));
			m->state = S_STATUS_SP;
			continue;
		case S_STATUS_SP:
			if (*p == ' ') {
				p++;
				m->reason_off = p - b;
				m->state = S_REASON;
				continue;
			}
			if (*p != '\r')
				return (fail(m, 502, "invalid status line"));
			/* no reason phrase at all: tolerated */
			m->reason_off = p - b;
			m->state = S_REASON;
			continue;
		case S_REASON:
			while (p < end && (ctab[*p] & C_REASON))
				p++;
			if ((size_t)(p - b) > lim->max_reqline)
				return (fail(m, 502, "status line too long"));
			if (p == end)
				break;
			if (*p != '\r')
				return (fail(m, 502, "invalid reason phrase"));
			m->reason_len = p - b - m->reason_off;
			p++;
			m->state = S_RL_LF;
			continue;

		case S_LINE:
			if (*p == '\r') {
				p++;
				m->state = S_END_LF;
				continue;
			}
			if (*p == ' ' || *p == '\t')
				return (fail(m, 400, "obs-fold"));
			if (*p == '\n')
				return (fail(m, 400, "bare LF"));
			if (!(ctab[*p] & C_TCHAR))
				return (fail(m, 400, "invalid field name"));
			if (m->nhdrs >= (int)lim->max_headers)
				return (fail(m, 431, "too many header fields"));
			h = &m->hdrs[m->nhdrs];
			memset(h, 0, sizeof(*h));
			h->name = p - b;
			m->state = S_NAME;
			continue;
		case S_NAME:
			while (p < end && (ctab[*p] & C_TCHAR))
				p++;
			if (p == end)
				break;
			h = &m->hdrs[m->nhdrs];
			if (*p != ':') {
				if (*p == ' ' || *p == '\t')
					return (fail(m, 400,
					    "whitespace before colon"));
				return (fail(m, 400, "invalid field name"));
			}
			if ((size_t)(p - b) - h->name > 0xffff)
				return (fail(m, 431, "field name too long"));
			h->namelen = p - b - h->name;
			p++;
			m->state = S_OWS;
			continue;
		case S_OWS:
			while (p < end && (*p == ' ' || *p == '\t'))
				p++;
			if (p == end)
				break;
			h = &m->hdrs[m->nhdrs];
			h->value = p - b;
			m->mark = p - b;	/* end of the value so far */
			m->state = S_VALUE;
			continue;
		case S_VALUE: {
			const unsigned char	*run = p, *q;

			/* mark: one past the last byte that is not OWS */
			while (p < end && (ctab[*p] & C_VCHAR))
				p++;
			for (q = p; q > run && (q[-1] == ' ' || q[-1] == '\t');
			    q--)
				;
			if (q > run)
				m->mark = q - b;
			if (p == end)
				break;
			if (*p == '\n')
				return (fail(m, 400, "bare LF"));
			if (*p != '\r')
				return (fail(m, 400, "invalid byte in field "
				    "value"));
			h = &m->hdrs[m->nhdrs];
			h->valuelen = m->mark - h->value;
			p++;
			m->state = S_VALUE_LF;
			continue;
		}
		case S_VALUE_LF:
			if (*p != '\n')
				return (fail(m, 400, "bare CR"));
			p++;
			h = &m->hdrs[m->nhdrs];
			if (field_done(m, buf, h) == HTTP_ERROR)
				return (HTTP_ERROR);
			m->nhdrs++;
			m->state = S_LINE;
			continue;
		case S_END_LF:
			if (*p != '\n')
				return (fail(m, 400, "bare CR"));
			p++;
			m->pos = p - b;
			m->head_len = m->pos;
			m->state = S_DONE;
			rv = head_done(m, buf);
			if (rv == HTTP_DONE)
				m->state = S_DONE;
			return (rv);
		}
		/* ran out of bytes inside a state */
		break;
	}
	m->pos = p - b;
	if (len >= maxhead) {
		if (m->state <= S_VERSION && !m->response)
			return (fail(m, 414, "request line too long"));
		return (fail(m, 431, "header block too large"));
	}
	return (HTTP_AGAIN);
}

/* Chunked transfer coding */

/* the states of the chunked decoder */
enum {
	C_SIZE = 0,
	C_SIZE_BWS,		/* BWS before ";" */
	C_EXT,			/* after ";": BWS chunk-ext-name */
	C_SIZE_LF,
	C_DATA,
	C_DATA_CR,
	C_DATA_LF,
	C_TLINE,		/* start of a trailer line, or the final CRLF */
	C_TNAME,
	C_TVALUE,
	C_TLF,
	C_END_LF,
	C_DONE,
	C_ERROR,
	C_EXT_NAME,		/* in chunk-ext-name */
	C_EXT_NAMEWS,		/* BWS after the name: "=" or ";" next */
	C_EXT_EQ,		/* after "=": BWS chunk-ext-val */
	C_EXT_TOKEN,		/* in a token value */
	C_EXT_QS,		/* in a quoted-string value */
	C_EXT_QP,		/* after a backslash in it */
	C_EXT_QEND		/* after the closing quote */
};

#define HTTP_MAXCHUNKDIGITS	15	/* below 2^60 */

void
http_chunked_init(struct http_chunked *c, uint32_t trailer_max)
{
	memset(c, 0, sizeof(*c));
	c->trailer_max = trailer_max ? trailer_max : HTTP_MAXHEAD;
	if (!ctab_ready)
		ctab_init();
}

/*
 * Give back the last <n> data bytes that http_chunked_next() reported:
 * the caller could not take them, and will present them again.
 */
void
http_chunked_unget(struct http_chunked *c, size_t n)
{
	if (n == 0)
		return;
	c->size += n;
	c->total -= n;
	c->state = C_DATA;
}

static ssize_t
cfail(struct http_chunked *c, const char *why)
{
	c->state = C_ERROR;
	c->error = 400;
	c->errmsg = why;
	return (-1);
}

static int
hexval(int ch)
{
	if (ch >= '0' && ch <= '9')
		return (ch - '0');
	return ((ch | 0x20) - 'a' + 10);
}

/*
 * One byte of a chunk extension (RFC 9112 section 7.1.1):
 *	chunk-ext = *( BWS ";" BWS chunk-ext-name
 *		    [ BWS "=" BWS ( token / quoted-string ) ] )
 * Returns 0, or -1 when <ch> cannot come next.  A CR ends the line.
 */
static int
chunk_ext(struct http_chunked *c, int ch)
{
	int	ws = (ch == ' ' || ch == '\t');

	switch (c->state) {
	case C_EXT:
		if (ws)
			return (0);
		if (!(ctab[ch] & C_TCHAR))
			return (-1);
		c->state = C_EXT_NAME;
		return (0);
	case C_EXT_NAME:
		if (ctab[ch] & C_TCHAR)
			return (0);
		if (ws) {
			c->state = C_EXT_NAMEWS;
			return (0);
		}
		if (ch == '=') {
			c->state = C_EXT_EQ;
			return (0);
		}
		break;
	case C_EXT_NAMEWS:
		if (ws)
			return (0);
		if (ch == '=') {
			c->state = C_EXT_EQ;
			return (0);
		}
		if (ch != ';')
			return (-1);
		break;
	case C_EXT_EQ:
		if (ws)
			return (0);
		if (ch == '"')
			c->state = C_EXT_QS;
		else if (ctab[ch] & C_TCHAR)
			c->state = C_EXT_TOKEN;
		else
			return (-1);
		return (0);
	case C_EXT_TOKEN:
		if (ctab[ch] & C_TCHAR)
			return (0);
		if (ws) {
			c->state = C_SIZE_BWS;
			return (0);
		}
		break;
	case C_EXT_QS:
		if (ch == '"')
			c->state = C_EXT_QEND;
		else if (ch == '\\')
			c->state = C_EXT_QP;
		else if (!(ctab[ch] & C_VCHAR))
			return (-1);
		return (0);
	case C_EXT_QP:
		if (!(ctab[ch] & C_VCHAR))
			return (-1);
		c->state = C_EXT_QS;
		return (0);
	case C_EXT_QEND:
		if (ws) {
			c->state = C_SIZE_BWS;
			return (0);
		}
		break;
	default:
		return (-1);
	}
	/* the end of one extension */
	if (ch == ';')
		c->state = C_EXT;
	else if (ch == '\r')
		c->state = C_SIZE_LF;
	else
		return (-1);
	return (0);
}

/*
 * Decode from p[0..len).  Returns how many bytes were consumed (0: more
 * needed; -1: error, c->error and c->errmsg), and in <dataoff, datalen>
 * the span of body data among them (datalen may be 0).  Call again with
 * the rest until it returns 0 or c->done is set.
 */
ssize_t
http_chunked_next(struct http_chunked *c, const char *buf, size_t len,
    size_t *dataoff, size_t *datalen)
{
	const unsigned char	*p = (const unsigned char *)buf;
	const unsigned char	*end = p + len;

	*dataoff = *datalen = 0;
	if (c->state == C_ERROR)
		return (-1);
	while (p < end && c->state != C_DONE) {
		switch (c->state) {
		case C_SIZE:
			if (ctab[*p] & C_HEX) {
				if (c->linelen >= HTTP_MAXCHUNKDIGITS ||
				    c->size > (UINT64_MAX >> 4))
					return (cfail(c, "chunk size overflow"));
				c->size = (c->size << 4) | hexval(*p);
				c->linelen++;
				p++;
				continue;
			}
			if (c->linelen == 0)
				return (cfail(c, "missing chunk size"));
			if (*p == '\r') {
				c->state = C_SIZE_LF;
				p++;
			} else if (*p == ';') {
				c->state = C_EXT;
				p++;
			} else if (*p == ' ' || *p == '\t') {
				c->state = C_SIZE_BWS;
				p++;
			} else if (*p == '\n')
				return (cfail(c, "bare LF in chunk line"));
			else
				return (cfail(c, "invalid chunk size"));
			c->linelen++;
			continue;
		case C_SIZE_BWS:
			if (++c->linelen > HTTP_MAXCHUNKLINE)
				return (cfail(c, "chunk line too long"));
			if (*p == ' ' || *p == '\t') {
				p++;
				continue;
			}
			if (*p != ';')
				return (cfail(c, "invalid chunk size"));
			p++;
			c->state = C_EXT;
			continue;
		case C_EXT:
		case C_EXT_NAME:
		case C_EXT_NAMEWS:
		case C_EXT_EQ:
		case C_EXT_TOKEN:
		case C_EXT_QS:
		case C_EXT_QP:
		case C_EXT_QEND:
			/* until the line ends or BWS wants a ";" */
			while (p < end && c->state != C_SIZE_LF &&
			    c->state != C_SIZE_BWS) {
				if (++c->linelen > HTTP_MAXCHUNKLINE)
					return (cfail(c,
					    "chunk line too long"));
				if (chunk_ext(c, *p) == -1)
					return (cfail(c,
					    "invalid chunk extension"));
				p++;
			}
			continue;
		case C_SIZE_LF:
			if (*p != '\n')
				return (cfail(c, "bare CR in chunk line"));
			p++;
			c->linelen = 0;
			if (c->size == 0)
				c->state = C_TLINE;
			else {
				c->state = C_DATA;
				/* hand the framing back; data next call */
				goto out;
			}
			continue;
		case C_DATA: {
			size_t	n = end - p;

			if (n > c->size)
				n = c->size;
			*dataoff = (const char *)p - buf;
			*datalen = n;
			p += n;
			c->size -= n;
			c->total += n;
			if (c->size == 0)
				c->state = C_DATA_CR;
			goto out;
		}
		case C_DATA_CR:
			if (*p != '\r')
				return (cfail(c, "chunk data longer than its "
				    "size"));
			p++;
			c->state = C_DATA_LF;
			continue;
		case C_DATA_LF:
			if (*p != '\n')
				return (cfail(c, "bare CR after chunk data"));
			p++;
			c->state = C_SIZE;
			continue;
		case C_TLINE:
			if (*p == '\r') {
				p++;
				c->state = C_END_LF;
				continue;
			}
			if (*p == ' ' || *p == '\t')
				return (cfail(c, "obs-fold in trailer"));
			if (!(ctab[*p] & C_TCHAR))
				return (cfail(c, "invalid trailer field"));
			if (++c->ntrailers > HTTP_MAXHEADERS)
				return (cfail(c, "too many trailer fields"));
			c->state = C_TNAME;
			continue;
		case C_TNAME:
			while (p < end && (ctab[*p] & C_TCHAR)) {
				if (++c->trailer > c->trailer_max)
					return (cfail(c, "trailer too large"));
				p++;
			}
			if (p == end)
				break;
			if (*p != ':')
				return (cfail(c, "invalid trailer field"));
			p++;
			c->state = C_TVALUE;
			continue;
		case C_TVALUE:
			while (p < end && (ctab[*p] & C_VCHAR)) {
				if (++c->trailer > c->trailer_max)
					return (cfail(c, "trailer too large"));
				p++;
			}
			if (p == end)
				break;
			if (*p != '\r')
				return (cfail(c, "invalid byte in trailer"));
			p++;
			c->state = C_TLF;
			continue;
		case C_TLF:
			if (*p != '\n')
				return (cfail(c, "bare CR in trailer"));
			p++;
			c->state = C_TLINE;
			continue;
		case C_END_LF:
			if (*p != '\n')
				return (cfail(c, "bare CR at end of chunks"));
			p++;
			c->state = C_DONE;
			c->done = 1;
			goto out;
		}
		break;
	}
 out:
	return ((const char *)p - buf);
}

/* Helpers */

struct slice
http_msg_slice(const char *buf, uint32_t off, uint32_t len)
{
	return (slice_make(buf + off, len));
}

int
http_hdr_is(const char *buf, const struct http_hdr *h, const char *lower)
{
	return (http_token_eq(buf + h->name, h->namelen, lower));
}

struct slice
http_hdr_value(const char *buf, const struct http_hdr *h)
{
	return (slice_make(buf + h->value, h->valuelen));
}

/* Index of the first field named <lower> at or after <from>, or -1. */
int
http_find(const struct http_msg *m, const char *buf, const char *lower,
    int from)
{
	size_t	l = strlen(lower);
	int	i;

	for (i = from; i < m->nhdrs; i++)
		if (m->hdrs[i].namelen == l &&
		    http_token_eq(buf + m->hdrs[i].name, l, lower))
			return (i);
	return (-1);
}

const char *
http_reason(int status)
{
	switch (status) {
	case 100: return ("Continue");
	case 101: return ("Switching Protocols");
	case 200: return ("OK");
	case 201: return ("Created");
	case 202: return ("Accepted");
	case 203: return ("Non-Authoritative Information");
	case 204: return ("No Content");
	case 205: return ("Reset Content");
	case 206: return ("Partial Content");
	case 300: return ("Multiple Choices");
	case 301: return ("Moved Permanently");
	case 302: return ("Found");
	case 303: return ("See Other");
	case 304: return ("Not Modified");
	case 307: return ("Temporary Redirect");
	case 308: return ("Permanent Redirect");
	case 400: return ("Bad Request");
	case 401: return ("Unauthorized");
	case 402: return ("Payment Required");
	case 403: return ("Forbidden");
	case 404: return ("Not Found");
	case 405: return ("Method Not Allowed");
	case 406: return ("Not Acceptable");
	case 407: return ("Proxy Authentication Required");
	case 408: return ("Request Timeout");
	case 409: return ("Conflict");
	case 410: return ("Gone");
	case 411: return ("Length Required");
	case 412: return ("Precondition Failed");
	case 413: return ("Content Too Large");
	case 414: return ("URI Too Long");
	case 415: return ("Unsupported Media Type");
	case 416: return ("Range Not Satisfiable");
	case 417: return ("Expectation Failed");
	case 421: return ("Misdirected Request");
	case 422: return ("Unprocessable Content");
	case 426: return ("Upgrade Required");
	case 429: return ("Too Many Requests");
	case 431: return ("Request Header Fields Too Large");
	case 500: return ("Internal Server Error");
	case 501: return ("Not Implemented");
	case 502: return ("Bad Gateway");
	case 503: return ("Service Unavailable");
	case 504: return ("Gateway Timeout");
	case 505: return ("HTTP Version Not Supported");
	}
	return (status < 200 ? "Informational" : status < 300 ? "OK" :
	    status < 400 ? "Redirection" : status < 500 ? "Client Error" :
	    "Server Error");
}

/*
 * Whether a request's Upgrade field asks for h2c.  Such a request is
 * never a tunnel: a server that switched would read HTTP/2 requests
 * that no proxy in front of it routed, filtered or logged (RFC 9113
 * 3.1 deprecates the upgrade), so the field is dropped as hop-by-hop
 * and the request goes on as a plain one (RFC 9110 7.8 lets a server
 * ignore Upgrade).
 */
static int
upgrade_h2c(const struct http_msg *m, const char *buf)
{
	struct slice	v, e;
	int		i;

	for (i = 0; (i = http_find(m, buf, "upgrade", i)) != -1; i++) {
		v = slice_make(buf + m->hdrs[i].value, m->hdrs[i].valuelen);
		while (list_next(&v, &e)) {
			const char	*sl = memchr(e.p, '/', e.len);
			size_t		 n = sl != NULL ? (size_t)(sl - e.p) :
					    e.len;

			if (n == 3 && http_token_eq(e.p, 3, "h2c"))
				return (1);
		}
	}
	return (0);
}

/*
 * Whether a configuration may add, set or delete the field <name> (with
 * <value>, unless NULL): a token for a name, VCHAR, obs-text, SP and HTAB
 * for a value, and none of the fields that frame a message or belong to
 * one connection, which the engine and the proxy write themselves (a
 * second Content-Length would split a response in two for a cache in
 * front).  NULL when it may, else why not.
 */
const char *
http_conf_field_check(const char *name, const char *value)
{
	static const char	*own[] = { "connection", "content-length",
				    "keep-alive", "proxy-connection", "te",
				    "trailer", "transfer-encoding", "upgrade" };
	const char		*p;
	size_t			 i, len = strlen(name);

	if (!ctab_ready)
		ctab_init();
	if (len == 0)
		return ("an empty field name");
	for (p = name; *p != '\0'; p++)
		if (!(ctab[(unsigned char)*p] & C_TCHAR))
			return ("a field name is a token: letters, digits and "
			    "!#$%&'*+-.^_`|~");
	for (i = 0; i < sizeof(own) / sizeof(own[0]); i++)
		if (strlen(own[i]) == len && http_token_eq(name, len, own[i]))
			return ("a field the server writes itself (framing "
			    "and connection)");
	if (value != NULL)
		for (p = value; *p != '\0'; p++)
			if (!(ctab[(unsigned char)*p] & C_VCHAR))
				return ("control characters in the value");
	return (NULL);
}
