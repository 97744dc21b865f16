/*
 * check_http.c: the HTTP check.
 *
 * The request, one per connection:
 *
 *	METHOD PATH HTTP/1.1
 *	Host: HOST			the check's host, else the server's
 *					address ("10.0.0.1:80")
 *	User-Agent: lbd-check
 *	Connection: close
 *
 * The answer must start with a status line of exactly this form (the
 * reason phrase may be empty; a bare LF ends the line as well as CRLF):
 *
 *	HTTP/1.x SP 3DIGIT [SP reason] CRLF
 *
 * and its status must be in the check's list ("200-399" by default).
 * With "expect" the body must hold that string too: it is looked for in
 * the bytes after the head as they come (a chunked body is decoded when
 * the answer is complete), until the server closes, the Content-Length
 * is reached or LBD_CHECK_MAXRESP bytes were read.  "tls" runs the check
 * over TLS (check_tls.c).
 */
#include <sys/types.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lbd.h"

#define CHECK_HTTP_MAXLINE	1024	/* a status line, a header line */

static int
status_ok(const struct lbd_check *ck, int st)
{
	int	i;

	for (i = 0; i < ck->nstatus; i++)
		if (st >= ck->status[i].lo && st <= ck->status[i].hi)
			return (1);
	return (0);
}

/* "200-399,404" back from the list, for messages. */
static void
status_text(const struct lbd_check *ck, char *out, size_t len)
{
	size_t	o = 0;
	int	i;

	out[0] = '\0';
	for (i = 0; i < ck->nstatus && o < len; i++) {
		if (ck->status[i].lo == ck->status[i].hi)
			o += snprintf(out + o, len - o, "%s%d", i ? "," : "",
			    ck->status[i].lo);
		else
			o += snprintf(out + o, len - o, "%s%d-%d", i ? "," : "",
			    ck->status[i].lo, ck->status[i].hi);
	}
}

/*
 * Whether <p, len> can still become "HTTP/1.x SP ddd": 1 yes (a prefix
 * of it, or all of it), 0 no.
 */
static int
status_prefix(const char *p, size_t len)
{
	static const char	proto[] = "HTTP/1.";
	size_t			i;

	for (i = 0; i < len && i < 12; i++) {
		if (i < 7) {
			if (p[i] != proto[i])
				return (0);
		} else if (i == 7 || (i >= 9 && i <= 11)) {
			if (p[i] < '0' || p[i] > '9')
				return (0);
		} else if (p[i] != ' ')	/* i == 8 */
			return (0);
	}
	return (1);
}

/* The value of header <name> in <head, len> (no status line), or NULL. */
static const char *
header(const char *head, size_t len, const char *name, size_t *vlen)
{
	const char	*p = head, *end = head + len, *eol, *v;
	size_t		 nl = strlen(name);

	for (; p < end; p = eol + 1) {
		if ((eol = memchr(p, '\n', end - p)) == NULL)
			eol = end;
		if ((size_t)(eol - p) > nl && p[nl] == ':' &&
		    strncasecmp(p, name, nl) == 0) {
			v = p + nl + 1;
			while (v < eol && (*v == ' ' || *v == '\t'))
				v++;
			*vlen = eol - v;
			while (*vlen > 0 && (v[*vlen - 1] == '\r' ||
			    v[*vlen - 1] == ' ' || v[*vlen - 1] == '\t'))
				(*vlen)--;
			return (v);
		}
	}
	return (NULL);
}

/*
 * Decode the chunked body <p, len> into <out> (as large as <len>): the
 * bytes of the chunks that are complete.  Returns their length; *last
 * says whether the last chunk (size 0) came.
 */
static size_t
dechunk(const char *p, size_t len, char *out, int *last)
{
	const char	*end = p + len, *eol;
	size_t		 o = 0, size;
	char		*e, num[20];

	*last = 0;
	while (p < end) {
		if ((eol = memchr(p, '\n', end - p)) == NULL ||
		    (size_t)(eol - p) >= sizeof(num))
			break;
		memcpy(num, p, eol - p);
		num[eol - p] = '\0';
		size = strtoul(num, &e, 16);
		if (e == num || (*e != '\0' && *e != '\r' && *e != ';'))
			break;
		if (size == 0) {
			*last = 1;
			break;
		}
		p = eol + 1;
		if (size > (size_t)(end - p))
			size = end - p;		/* a partial last chunk */
		memcpy(out + o, p, size);
		o += size;
		p += size;
		if (end - p >= 2 && p[0] == '\r' && p[1] == '\n')
			p += 2;
		else if (p < end && p[0] == '\n')
			p++;
		else
			break;
	}
	return (o);
}

/*
 * Judge the answer <p, len> of an HTTP check <ck> (<eof>: nothing more
 * will come).  Returns CHECK_MORE, or a verdict with the status in
 * <code> and a description in <desc>.  Reads nothing beyond <len>.
 */
enum check_verdict
check_http_parse(const char *p, size_t len, int eof,
    const struct lbd_check *ck, int *code, char *desc, size_t desclen)
{
	const char	*eol, *head, *body, *v;
	char		 list[64], e[32];
	size_t		 hlen, blen, vlen;
	int		 st, found, complete = 0;

	*code = 0;
	/*
	 * Interim answers (100 Continue, 103 Early Hints) come before the
	 * final one: skip their heads (RFC 9110 15.2), judge what follows
	 */
	while (len >= 12 && status_prefix(p, len) && p[9] == '1' &&
	    memcmp(p + 9, "101", 3) != 0) {
		const char	*q = p, *nl;

		while ((nl = memchr(q, '\n', p + len - q)) != NULL &&
		    !(nl + 1 < p + len && nl[1] == '\n') &&
		    !(nl + 2 < p + len && nl[1] == '\r' && nl[2] == '\n'))
			q = nl + 1;
		if (nl == NULL || nl + 1 >= p + len ||
		    (nl[1] == '\r' && nl + 2 >= p + len)) {
			if (!eof && len < CHECK_HTTP_MAXLINE * 4)
				return (CHECK_MORE);
			snprintf(desc, desclen, "truncated interim answer");
			return (CHECK_FAIL);
		}
		nl += nl[1] == '\n' ? 2 : 3;
		len -= nl - p;
		p = nl;
	}
	if (len == 0) {
		if (!eof)
			return (CHECK_MORE);
		snprintf(desc, desclen, "closed without an answer");
		return (CHECK_FAIL);
	}
	if (!status_prefix(p, len)) {
		snprintf(desc, desclen, "not an HTTP/1 answer");
		return (CHECK_FAIL);
	}
	if ((eol = memchr(p, '\n', len)) == NULL) {
		if (!eof && len < CHECK_HTTP_MAXLINE)
			return (CHECK_MORE);
		snprintf(desc, desclen, len >= CHECK_HTTP_MAXLINE ?
		    "status line too long" : "truncated status line");
		return (CHECK_FAIL);
	}
	/* the line: "HTTP/1.x ddd" then nothing, or SP and a reason */
	hlen = eol - p;
	if (hlen > 0 && p[hlen - 1] == '\r')
		hlen--;
	if (hlen < 12 || (hlen > 12 && p[12] != ' ') || p[9] < '1' ||
	    p[9] > '5') {
		snprintf(desc, desclen, "bad status line");
		return (CHECK_FAIL);
	}
	for (v = p + 13; v < p + hlen; v++)
		if ((unsigned char)*v < 0x20 && *v != '\t') {
			snprintf(desc, desclen, "bad status line");
			return (CHECK_FAIL);
		}
	st = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
	*code = st;
	if (!status_ok(ck, st)) {
		status_text(ck, list, sizeof(list));
		snprintf(desc, desclen, "HTTP %d, expected %s", st, list);
		return (CHECK_FAIL);
	}
	if (ck->expect == NULL || ck->expectlen == 0) {
		snprintf(desc, desclen, "HTTP %d", st);
		return (CHECK_OK);
	}

	/* the body must hold <expect>: find the end of the head first */
	head = eol + 1;
	for (body = head; body < p + len; body = eol + 1) {
		if ((eol = memchr(body, '\n', p + len - body)) == NULL)
			break;
		if (eol == body || (eol == body + 1 && *body == '\r')) {
			body = eol + 1;
			complete = 1;
			break;
		}
	}
	if (!complete) {
		if (!eof)
			return (CHECK_MORE);
		snprintf(desc, desclen, "HTTP %d, truncated head", st);
		return (CHECK_FAIL);
	}
	hlen = body - head;
	blen = p + len - body;
	check_printable(ck->expect, e, sizeof(e));
	if (memmem(body, blen, ck->expect, ck->expectlen) != NULL) {
		snprintf(desc, desclen, "HTTP %d, \"%s\" found", st, e);
		return (CHECK_OK);
	}
	if (!eof && (v = header(head, hlen, "Content-Length", &vlen)) !=
	    NULL) {
		char		 num[24];
		unsigned long	 cl;

		if (vlen < sizeof(num)) {
			memcpy(num, v, vlen);
			num[vlen] = '\0';
			cl = strtoul(num, NULL, 10);
			if (blen >= cl)
				eof = 1;	/* all of it is here */
		}
	}
	found = 0;
	if ((v = header(head, hlen, "Transfer-Encoding", &vlen)) != NULL &&
	    vlen >= 7 && strncasecmp(v + vlen - 7, "chunked", 7) == 0 &&
	    blen > 0) {
		char	*dec;
		size_t	 dlen;
		int	 last;

		if ((dec = malloc(blen)) != NULL) {
			dlen = dechunk(body, blen, dec, &last);
			found = memmem(dec, dlen, ck->expect,
			    ck->expectlen) != NULL;
			free(dec);
			if (last)
				eof = 1;	/* the last chunk came */
		}
	}
	if (!found && !eof)
		return (CHECK_MORE);
	if (found) {
		snprintf(desc, desclen, "HTTP %d, \"%s\" found", st, e);
		return (CHECK_OK);
	}
	snprintf(desc, desclen, "HTTP %d, no \"%s\" in the body", st, e);
	return (CHECK_FAIL);
}

static enum check_verdict
http_judge(struct check_run *run, int eof)
{
	enum check_verdict	v;

	v = check_http_parse(buf_head(&run->in), buf_used(&run->in), eof,
	    run->ck, &run->code, run->desc, sizeof(run->desc));
	if (v != CHECK_MORE)
		run->verdict = v;
	return (v);
}

int
check_http_start(struct check_run *run)
{
	const struct lbd_check	*ck = run->ck;
	const char		*host = ck->host;

	if (host == NULL)
		host = run->srv->addr.family == AF_UNIX ? "localhost" :
		    run->srv->addr.text;
	if (buf_printf(&run->out, "%s %s HTTP/1.1\r\nHost: %s\r\n"
	    "User-Agent: lbd-check\r\nConnection: close\r\n\r\n",
	    ck->method, ck->path, host) == -1) {
		check_verdict(run, CHECK_FAIL, 0, "request too long");
		return (-1);
	}
	run->judge = http_judge;
	if (ck->tls)
		return (check_tls_wrap(run, ck->host));
	return (0);
}
