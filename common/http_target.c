/*
 * http_target.c: request targets, hosts and dates.
 *
 * A target's path is percent-decoded (a malformed escape, a control byte
 * -- %00 to %1F and %7F --, an encoded "/" or "\" and bytes that are not
 * valid UTF-8 -- overlong forms included -- are refused), then
 * normalized: dot segments are removed as RFC 3986 section 5.2.4 says,
 * runs of slashes collapse, and ".." at the root stays at the root, so
 * that the result can never name anything above "/".
 *
 * Hosts are uri-host [ ":" port ] with the IPv6 literal checked by
 * inet_pton(3); dates are read in the three forms of RFC 9110 section
 * 5.6.7, exactly, and written as IMF-fixdate.
 */
#include <sys/types.h>
#include <arpa/inet.h>
#include <netinet/in.h>

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
 * <path> set, "%2F", "%5C", a raw "\", control bytes and invalid UTF-8
 * are refused too.  Returns 0, or -1 (malformed, %00, refused, no room).
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
			/* a path never holds "/" or "\" or a CTL decoded */
			if (path && (c == '/' || c == '\\' || c < 0x20 ||
			    c == 0x7f))
				return (-1);
		} else if (c == '\0' || (path && (c == '\\' || c < 0x20 ||
		    c == 0x7f)))
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
 * Whether a conf's host fits a Host field: a name or an address, with a
 * port if any (letters, digits, "-", ".", "_", ":", "[" and "]"), not
 * starting with a dot or a hyphen (which no name does, and "-" stands
 * for no site in webd's logs and metrics).
 */
int
http_host_ok(const char *s)
{
	if (*s == '\0' || *s == '.' || *s == '-')
		return (0);
	for (; *s != '\0'; s++)
		if (!isalnum((unsigned char)*s) && strchr("-._:[]", *s) == NULL)
			return (0);
	return (1);
}

/* Whether a decoded path has a "." or ".." segment. */
static int
dot_segment(const char *p, size_t len)
{
	size_t	i = 0, seg;

	while (i < len) {
		while (i < len && p[i] == '/')
			i++;
		seg = i;
		while (i < len && p[i] != '/')
			i++;
		if ((i - seg == 1 && p[seg] == '.') ||
		    (i - seg == 2 && p[seg] == '.' && p[seg + 1] == '.'))
			return (1);
	}
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
		{
			struct slice	auth, rest;

			/* the path starts at the first "/" or "?" after
			 * the authority, as everywhere else */
			http_absolute_split(t, len, &auth, &rest);
			path = rest.p;
		}
	}
	plen = len - (path - t);
	if ((q = memchr(path, '#', plen)) != NULL)
		plen = q - path;	/* a fragment is never sent; drop it */
	if ((q = memchr(path, '?', plen)) != NULL) {
		out->had_query = 1;
		out->query = q + 1;
		out->querylen = plen - (q - path) - 1;
		plen = q - path;
	}
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
	out->dotseg = dot_segment(out->path, out->pathlen);
	out->pathlen = http_path_normalize(out->path, out->pathlen);
	return (0);
}

/* reg-name = *( unreserved / pct-encoded / sub-delims ), bar the "%" */
static int
regname_char(int c)
{
	if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	    (c >= 'A' && c <= 'Z') || c == '.' || c == '-')
		return (1);
	return (c != '\0' && strchr("_~!$&'()*+,;=", c) != NULL);
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
		char		 a[INET6_ADDRSTRLEN];
		struct in6_addr	 in6;

		/* IP-literal: an IPv6 address (no zone, no IPvFuture) */
		if (e == NULL || (size_t)(e - s - 1) >= sizeof(a))
			return (-1);
		memcpy(a, s + 1, e - s - 1);
		a[e - s - 1] = '\0';
		if (inet_pton(AF_INET6, a, &in6) != 1)
			return (-1);
		hl = e - s + 1;
	} else {
		for (hl = 0; hl < len && s[hl] != ':'; hl++) {
			if (s[hl] == '%') {
				if (hl + 2 >= len || hexdig(s[hl + 1]) == -1 ||
				    hexdig(s[hl + 2]) == -1)
					return (-1);
				hl += 2;
				continue;
			}
			if (!regname_char((unsigned char)s[hl]))
				return (-1);
		}
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

/*
 * A Host field value: empty, or an authority without userinfo.  A comma,
 * valid in a reg-name, is refused: only two Host fields folded into one
 * would put it there, and Host is a singleton.
 */
int
http_host_valid(const char *s, size_t len)
{
	struct slice	h;
	int		port;

	if (len == 0)
		return (1);
	if (memchr(s, ',', len) != NULL)
		return (0);
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

	/* out of gmtime's range: say the epoch rather than garbage */
	if (gmtime_r(&t, &tm) == NULL || tm.tm_year + 1900 > 9999 ||
	    tm.tm_year + 1900 < 0) {
		t = 0;
		gmtime_r(&t, &tm);
	}
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

static const char	*wdays_long[] = { "Sunday", "Monday", "Tuesday",
			    "Wednesday", "Thursday", "Friday", "Saturday" };

/* Index of the name <s>[0..len) in <names>, or -1. */
static int
name_index(const char *s, size_t len, const char **names, int n)
{
	int	i;

	for (i = 0; i < n; i++)
		if (strlen(names[i]) == len && memcmp(s, names[i], len) == 0)
			return (i);
	return (-1);
}

/* <n> digits at <s>, or -1; with <pad>, the first may be a space. */
static int
digits(const char *s, int n, int pad)
{
	int	i, v = 0;

	for (i = 0; i < n; i++) {
		if (i == 0 && pad && s[i] == ' ' && n > 1)
			continue;
		if (s[i] < '0' || s[i] > '9')
			return (-1);
		v = v * 10 + (s[i] - '0');
	}
	return (v);
}

/* "08:49:37" */
static int
hms(const char *s, struct tm *tm)
{
	if (s[2] != ':' || s[5] != ':')
		return (-1);
	if ((tm->tm_hour = digits(s, 2, 0)) == -1 ||
	    (tm->tm_min = digits(s + 3, 2, 0)) == -1 ||
	    (tm->tm_sec = digits(s + 6, 2, 0)) == -1)
		return (-1);
	return (0);
}

/* "Nov" */
static int
month(const char *s, struct tm *tm)
{
	return ((tm->tm_mon = name_index(s, 3, months, 12)) == -1 ? -1 : 0);
}

/* The year of a two-digit rfc850-date (RFC 9110 section 5.6.7). */
static int
year2(int yy)
{
	struct tm	now;
	time_t		t = time(NULL);
	int		y, cy;

	if (gmtime_r(&t, &now) == NULL)
		return (-1);
	cy = now.tm_year + 1900;
	y = cy - cy % 100 + yy;
	/* more than 50 years ahead: the last such year in the past */
	if (y > cy + 50)
		y -= 100;
	return (y);
}

/*
 * Parse the three forms of RFC 9110 section 5.6.7, exactly:
 *	IMF-fixdate	Sun, 06 Nov 1994 08:49:37 GMT
 *	rfc850-date	Sunday, 06-Nov-94 08:49:37 GMT
 *	asctime-date	Sun Nov  6 08:49:37 1994
 * Returns the time, or -1 when <s> is not one of them, names a day that
 * does not exist or a time before 1970.
 */
time_t
http_date_parse(const char *s, size_t len)
{
	static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31,
			    30, 31 };
	struct tm	 tm;
	const char	*c;
	int		 y;

	memset(&tm, 0, sizeof(tm));
	if (len == 29 && s[3] == ',') {
		/* IMF-fixdate */
		if (name_index(s, 3, wdays, 7) == -1 || s[4] != ' ' ||
		    (tm.tm_mday = digits(s + 5, 2, 0)) == -1 || s[7] != ' ' ||
		    month(s + 8, &tm) == -1 || s[11] != ' ' ||
		    (y = digits(s + 12, 4, 0)) == -1 || s[16] != ' ' ||
		    hms(s + 17, &tm) == -1 || memcmp(s + 25, " GMT", 4) != 0)
			return (-1);
	} else if (len == 24 && s[3] == ' ') {
		/* asctime-date */
		if (name_index(s, 3, wdays, 7) == -1 || month(s + 4, &tm) ==
		    -1 || s[7] != ' ' ||
		    (tm.tm_mday = digits(s + 8, 2, 1)) == -1 || s[10] != ' ' ||
		    hms(s + 11, &tm) == -1 || s[19] != ' ' ||
		    (y = digits(s + 20, 4, 0)) == -1)
			return (-1);
	} else if (len >= 30 && len <= 33 &&
	    (c = memchr(s, ',', len)) != NULL && (size_t)(c - s) == len - 24) {
		/* rfc850-date */
		if (name_index(s, c - s, wdays_long, 7) == -1 || c[1] != ' ' ||
		    (tm.tm_mday = digits(c + 2, 2, 0)) == -1 || c[4] != '-' ||
		    month(c + 5, &tm) == -1 || c[8] != '-' ||
		    (y = digits(c + 9, 2, 0)) == -1 || c[11] != ' ' ||
		    hms(c + 12, &tm) == -1 || memcmp(c + 20, " GMT", 4) != 0 ||
		    (y = year2(y)) == -1)
			return (-1);
	} else
		return (-1);
	if (tm.tm_mday < 1 || tm.tm_mday > mdays[tm.tm_mon] ||
	    (tm.tm_mon == 1 && tm.tm_mday == 29 &&
	    (y % 4 != 0 || (y % 100 == 0 && y % 400 != 0))) ||
	    tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60 || y < 1970)
		return (-1);
	tm.tm_year = y - 1900;
	return (timegm(&tm));
}
