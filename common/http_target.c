/*
 * http_target.c: request targets, hosts and dates.
 *
 * A target's path is percent-decoded (a malformed escape, %00, an encoded
 * "/" or "\" and bytes that are not valid UTF-8 -- overlong forms
 * included -- are refused), then normalized: dot segments are removed as
 * RFC 3986 section 5.2.4 says, runs of slashes collapse, and ".." at the
 * root stays at the root, so that the result can never name anything
 * above "/".
 */
#include <sys/types.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http.h"

static int
hexdig(int c)
{
	if (c >= '0' && c <= '9')
		return (c - '0');
	if (c >= 'a' && c <= 'f')
		return (c - 'a' + 10);
	if (c >= 'A' && c <= 'F')
		return (c - 'A' + 10);
	return (-1);
}

/* Strict UTF-8: no overlong forms, no surrogates, at most U+10FFFF. */
static int
utf8_valid(const unsigned char *s, size_t len)
{
	size_t	i = 0;

	while (i < len) {
		unsigned char	c = s[i];
		size_t		n;
		unsigned	cp, min;

		if (c < 0x80) {
			i++;
			continue;
		}
		if ((c & 0xe0) == 0xc0) {
			n = 1;
			cp = c & 0x1f;
			min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			n = 2;
			cp = c & 0x0f;
			min = 0x800;
		} else if ((c & 0xf8) == 0xf0) {
			n = 3;
			cp = c & 0x07;
			min = 0x10000;
		} else
			return (0);
		for (size_t k = 1; k <= n; k++) {
			if (i + k >= len || (s[i + k] & 0xc0) != 0x80)
				return (0);
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return (0);
		i += n + 1;
	}
	return (1);
}

/*
 * Decode %XX escapes of in[0..len) into out (NUL-terminated).  With
 * <path> set, "%2F", "%5C", a raw "\" and invalid UTF-8 are refused too.
 * Returns 0, or -1 (malformed, %00, refused, or no room).
 */
int
http_pct_decode(const char *in, size_t len, char *out, size_t size,
    size_t *outlen, int path)
{
	size_t	i, o = 0;

	for (i = 0; i < len; i++) {
		int	c = (unsigned char)in[i];

		if (c == '%') {
			int	hi, lo;

			if (i + 2 >= len)
				return (-1);
			if ((hi = hexdig(in[i + 1])) == -1 ||
			    (lo = hexdig(in[i + 2])) == -1)
				return (-1);
			c = hi * 16 + lo;
			i += 2;
			if (c == 0)
				return (-1);
			if (path && (c == '/' || c == '\\'))
				return (-1);
		} else if (c == '\0' || (path && c == '\\'))
			return (-1);
		if (o + 1 >= size)
			return (-1);
		out[o++] = c;
	}
	out[o] = '\0';
	if (path && !utf8_valid((unsigned char *)out, o))
		return (-1);
	*outlen = o;
	return (0);
}

/*
 * Normalize an absolute path in place: collapse "//", remove "." and
 * resolve ".." segments without ever going above "/".  A trailing "/."
 * or "/.." leaves a trailing slash.  Returns the new length.
 */
size_t
http_path_normalize(char *path, size_t len)
{
	size_t	r = 0, w = 0;

	if (len == 0 || path[0] != '/') {
		path[0] = '/';
		path[1] = '\0';
		return (1);
	}
	while (r < len) {
		size_t	seg, slen;

		/* at a '/' in the input */
		while (r < len && path[r] == '/')
			r++;
		seg = r;
		while (r < len && path[r] != '/')
			r++;
		slen = r - seg;
		if (slen == 0) {
			/* trailing slash(es) */
			if (w == 0 || path[w - 1] != '/')
				path[w++] = '/';
			break;
		}
		if (slen == 1 && path[seg] == '.') {
			if (r >= len && (w == 0 || path[w - 1] != '/'))
				path[w++] = '/';
			else if (w == 0)
				path[w++] = '/';
			continue;
		}
		if (slen == 2 && path[seg] == '.' && path[seg + 1] == '.') {
			/* drop the last written segment */
			while (w > 0 && path[w - 1] == '/')
				w--;
			while (w > 0 && path[w - 1] != '/')
				w--;
			if (w == 0)
				path[w++] = '/';
			continue;
		}
		if (w == 0 || path[w - 1] != '/')
			path[w++] = '/';
		memmove(path + w, path + seg, slen);
		w += slen;
	}
	if (w == 0)
		path[w++] = '/';
	path[w] = '\0';
	return (w);
}

/*
 * Decode and normalize the path of a request target (origin-form or
 * absolute-form), and note its raw query.  Returns 0, or -1 with the
 * reason in <why>.
 */
int
http_target_parse(const char *t, size_t len, struct http_target *out,
    const char **why)
{
	const char	*q, *path = t;
	size_t		 plen;

	memset(out, 0, sizeof(*out));
	if (len > 0 && t[0] != '/') {
		/* absolute-form: skip "scheme://authority" */
		const char	*s = memchr(t, ':', len);

		if (s == NULL || (size_t)(s - t) + 3 > len || s[1] != '/' ||
		    s[2] != '/') {
			*why = "invalid request target";
			return (-1);
		}
		s += 3;
		path = memchr(s, '/', len - (s - t));
		if (path == NULL) {
			const char	*qq = memchr(s, '?', len - (s - t));

			path = qq ? qq : t + len;
		}
	}
	plen = len - (path - t);
	if ((q = memchr(path, '?', plen)) != NULL) {
		out->had_query = 1;
		out->query = q + 1;
		out->querylen = plen - (q - path) - 1;
		plen = q - path;
	}
	if ((q = memchr(path, '#', plen)) != NULL)
		plen = q - path;	/* a fragment is never sent; drop it */
	if (plen == 0) {
		out->path[0] = '/';
		out->path[1] = '\0';
		out->pathlen = 1;
		return (0);
	}
	if (path[0] != '/') {
		*why = "invalid request target";
		return (-1);
	}
	if (http_pct_decode(path, plen, out->path, sizeof(out->path),
	    &out->pathlen, 1) == -1) {
		*why = "invalid path encoding";
		return (-1);
	}
	out->pathlen = http_path_normalize(out->path, out->pathlen);
	return (0);
}

static int
regname_char(int c)
{
	return (isalnum(c) || strchr("-._~!$&'()*+,;=%", c) != NULL);
}

/*
 * Split "host[:port]" or "[v6]:port" (no userinfo).  <port> gets the
 * port or 0.  Returns 0 or -1.
 */
int
http_authority_parse(const char *s, size_t len, struct slice *host, int *port)
{
	size_t	i, hl;
	int	p = 0;

	*port = 0;
	if (len == 0)
		return (-1);
	if (s[0] == '[') {
		const char	*e = memchr(s, ']', len);

		if (e == NULL)
			return (-1);
		for (i = 1; s + i < e; i++)
			if (!isxdigit((unsigned char)s[i]) && s[i] != ':' &&
			    s[i] != '.')
				return (-1);
		if (e - s < 3)
			return (-1);
		hl = e - s + 1;
	} else {
		for (hl = 0; hl < len && s[hl] != ':'; hl++)
			if (!regname_char((unsigned char)s[hl]))
				return (-1);
	}
	*host = slice_make(s, hl);
	if (hl == len)
		return (0);
	if (s[hl] != ':')
		return (-1);
	if (hl + 1 == len)
		return (0);		/* "host:" is allowed, port empty */
	for (i = hl + 1; i < len; i++) {
		if (!isdigit((unsigned char)s[i]) || i - hl > 5)
			return (-1);
		p = p * 10 + (s[i] - '0');
	}
	if (p > 65535)
		return (-1);
	*port = p;
	return (0);
}

/* A Host field value: empty, or an authority without userinfo. */
int
http_host_valid(const char *s, size_t len)
{
	struct slice	h;
	int		port;

	if (len == 0)
		return (1);
	return (http_authority_parse(s, len, &h, &port) == 0 && h.len > 0);
}

/* Dates (IMF-fixdate out; the three RFC 9110 forms in) */

static const char	*wdays[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri",
			    "Sat" };
static const char	*months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
			    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };

void
http_date_fmt(time_t t, char *buf, size_t size)
{
	struct tm	tm;

	gmtime_r(&t, &tm);
	snprintf(buf, size, "%s, %02d %s %04d %02d:%02d:%02d GMT",
	    wdays[tm.tm_wday], tm.tm_mday, months[tm.tm_mon],
	    tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* The current date, formatted once a second. */
const char *
http_date_now(void)
{
	static char	buf[40];
	static time_t	last;
	time_t		now = time(NULL);

	if (now != last) {
		http_date_fmt(now, buf, sizeof(buf));
		last = now;
	}
	return (buf);
}

static int
month_index(const char *m)
{
	int	i;

	for (i = 0; i < 12; i++)
		if (strncmp(m, months[i], 3) == 0)
			return (i);
	return (-1);
}

/* Returns the time, or -1 when <s> is not an HTTP date. */
time_t
http_date_parse(const char *s, size_t len)
{
	char		buf[64], mon[4], wd[16];
	struct tm	tm;
	int		d, y, hh, mm, ss, n = 0;

	if (len >= sizeof(buf))
		return (-1);
	memcpy(buf, s, len);
	buf[len] = '\0';
	memset(&tm, 0, sizeof(tm));
	/* IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT */
	if (sscanf(buf, "%3s, %2d %3s %4d %2d:%2d:%2d GMT%n", wd, &d, mon, &y,
	    &hh, &mm, &ss, &n) == 7 && n == (int)len) {
		;
	/* RFC 850: Sunday, 06-Nov-94 08:49:37 GMT */
	} else if (sscanf(buf, "%15[A-Za-z], %2d-%3s-%2d %2d:%2d:%2d GMT%n",
	    wd, &d, mon, &y, &hh, &mm, &ss, &n) == 7 && n == (int)len) {
		y += y < 70 ? 2000 : 1900;
	/* asctime: Sun Nov  6 08:49:37 1994 */
	} else if (sscanf(buf, "%3s %3s %2d %2d:%2d:%2d %4d%n", wd, mon, &d,
	    &hh, &mm, &ss, &y, &n) == 7 && n == (int)len) {
		;
	} else
		return (-1);
	if ((tm.tm_mon = month_index(mon)) == -1 || d < 1 || d > 31 ||
	    hh > 23 || mm > 59 || ss > 60 || y < 1970)
		return (-1);
	tm.tm_mday = d;
	tm.tm_year = y - 1900;
	tm.tm_hour = hh;
	tm.tm_min = mm;
	tm.tm_sec = ss;
	return (timegm(&tm));
}
