/*
 * json.c: the JSON writer of app.h, and the reader behind
 * app_json_field (RFC 8259).
 *
 * The writer escapes strings so that any byte string becomes valid
 * JSON text: quote, backslash and controls are escaped, and bytes that
 * are not UTF-8 are replaced by U+FFFD, one replacement per maximal
 * invalid subpart (Unicode's "best practice for U+FFFD substitution"):
 * a lead byte followed by some, but not all, of the continuation bytes
 * its sequence needs makes one U+FFFD, and the byte that broke the
 * sequence is looked at again.
 */
#include <sys/types.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "appd.h"

#define REPLACEMENT	"\xef\xbf\xbd"

/* JSON string contents for the bytes <s, n>, without the quotes. */
int
json_escape(struct buf *b, const char *s, size_t n)
{
	const unsigned char	*p = (const unsigned char *)s;
	size_t			 i = 0, start, need, k;
	unsigned char		 c, lo, hi;
	char			 esc[8];

	while (i < n) {
		c = p[i];
		if (c < 0x80) {
			const char	*e = NULL;

			switch (c) {
			case '"':
				e = "\\\"";
				break;
			case '\\':
				e = "\\\\";
				break;
			case '\n':
				e = "\\n";
				break;
			case '\r':
				e = "\\r";
				break;
			case '\t':
				e = "\\t";
				break;
			case '\b':
				e = "\\b";
				break;
			case '\f':
				e = "\\f";
				break;
			default:
				if (c < 0x20 || c == 0x7f) {
					snprintf(esc, sizeof(esc), "\\u%04x",
					    c);
					e = esc;
				}
			}
			if (e != NULL) {
				if (buf_append(b, e, strlen(e)) == -1)
					return (-1);
			} else if (buf_putc(b, c) == -1)
				return (-1);
			i++;
			continue;
		}
		/* the sequence's length and its second byte's range */
		lo = 0x80;
		hi = 0xbf;
		if (c >= 0xc2 && c <= 0xdf)
			need = 1;
		else if (c >= 0xe0 && c <= 0xef) {
			need = 2;
			if (c == 0xe0)
				lo = 0xa0;
			else if (c == 0xed)
				hi = 0x9f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			need = 3;
			if (c == 0xf0)
				lo = 0x90;
			else if (c == 0xf4)
				hi = 0x8f;
		} else {
			if (buf_append(b, REPLACEMENT, 3) == -1)
				return (-1);
			i++;
			continue;
		}
		start = i++;
		for (k = 0; k < need; k++, i++) {
			unsigned char	l = k == 0 ? lo : 0x80;
			unsigned char	h = k == 0 ? hi : 0xbf;

			if (i >= n || p[i] < l || p[i] > h)
				break;
		}
		if (k < need) {
			/* invalid: one U+FFFD for what was taken */
			if (buf_append(b, REPLACEMENT, 3) == -1)
				return (-1);
			continue;
		}
		/* U+2028 and U+2029 end lines in JavaScript */
		if (need == 2 && p[start] == 0xe2 && p[start + 1] == 0x80 &&
		    (p[start + 2] == 0xa8 || p[start + 2] == 0xa9)) {
			if (buf_append(b, p[start + 2] == 0xa8 ? "\\u2028" :
			    "\\u2029", 6) == -1)
				return (-1);
			continue;
		}
		if (buf_append(b, p + start, i - start) == -1)
			return (-1);
	}
	return (0);
}

/* The writer */

static int
jfail(struct app_resp *r)
{
	r->err = 1;
	return (-1);
}

/* Place a value: a comma, or the pending key consumed. */
static int
jvalue(struct app_resp *r)
{
	struct json_level	*l;

	if (r->err)
		return (-1);
	r->json_used = 1;
	if (r->depth == 0) {
		if (r->json_done)
			return (jfail(r));
		return (0);
	}
	l = &r->json[r->depth - 1];
	if (l->kind == '{') {
		if (!l->keyed)
			return (jfail(r));
		l->keyed = 0;
		l->n++;
		return (0);
	}
	if (l->n++ > 0 && buf_putc(&r->body, ',') == -1)
		return (jfail(r));
	return (0);
}

static int
jdone(struct app_resp *r)
{
	if (r->depth == 0)
		r->json_done = 1;
	return (0);
}

static int
jopen(struct app_resp *r, char kind)
{
	if (jvalue(r) == -1)
		return (-1);
	if (r->depth >= APPD_MAXJSONDEPTH || buf_putc(&r->body, kind) == -1)
		return (jfail(r));
	r->json[r->depth].kind = kind;
	r->json[r->depth].n = 0;
	r->json[r->depth].keyed = 0;
	r->depth++;
	return (0);
}

int
app_json_object(struct app_resp *r)
{
	return (jopen(r, '{'));
}

int
app_json_array(struct app_resp *r)
{
	return (jopen(r, '['));
}

int
app_json_end(struct app_resp *r)
{
	struct json_level	*l;

	if (r->err)
		return (-1);
	if (r->depth == 0)
		return (jfail(r));
	l = &r->json[r->depth - 1];
	if (l->keyed)
		return (jfail(r));
	if (buf_putc(&r->body, l->kind == '{' ? '}' : ']') == -1)
		return (jfail(r));
	r->depth--;
	return (jdone(r));
}

int
app_json_key(struct app_resp *r, const char *k)
{
	struct json_level	*l;

	if (r->err)
		return (-1);
	if (r->depth == 0 || k == NULL)
		return (jfail(r));
	l = &r->json[r->depth - 1];
	if (l->kind != '{' || l->keyed)
		return (jfail(r));
	if ((l->n > 0 && buf_putc(&r->body, ',') == -1) ||
	    buf_putc(&r->body, '"') == -1 ||
	    json_escape(&r->body, k, strlen(k)) == -1 ||
	    buf_append(&r->body, "\":", 2) == -1)
		return (jfail(r));
	l->keyed = 1;
	return (0);
}

int
app_json_stringn(struct app_resp *r, const char *s, size_t n)
{
	if (s == NULL)
		return (app_json_null(r));
	if (jvalue(r) == -1)
		return (-1);
	if (buf_putc(&r->body, '"') == -1 || json_escape(&r->body, s, n) ==
	    -1 || buf_putc(&r->body, '"') == -1)
		return (jfail(r));
	return (jdone(r));
}

int
app_json_string(struct app_resp *r, const char *s)
{
	return (app_json_stringn(r, s, s ? strlen(s) : 0));
}

int
app_json_int(struct app_resp *r, long long v)
{
	if (jvalue(r) == -1)
		return (-1);
	if (buf_printf(&r->body, "%lld", v) == -1)
		return (jfail(r));
	return (jdone(r));
}

int
app_json_real(struct app_resp *r, double v)
{
	if (!isfinite(v))
		return (app_json_null(r));
	if (jvalue(r) == -1)
		return (-1);
	if (buf_printf(&r->body, "%.17g", v) == -1)
		return (jfail(r));
	return (jdone(r));
}

int
app_json_bool(struct app_resp *r, int v)
{
	if (jvalue(r) == -1)
		return (-1);
	if (buf_append(&r->body, v ? "true" : "false", v ? 4 : 5) == -1)
		return (jfail(r));
	return (jdone(r));
}

int
app_json_null(struct app_resp *r)
{
	if (jvalue(r) == -1)
		return (-1);
	if (buf_append(&r->body, "null", 4) == -1)
		return (jfail(r));
	return (jdone(r));
}

/* The reader */

struct jr {
	const char	*p, *end;
	struct arena	*a;
	int		 depth;
};

static void
jr_ws(struct jr *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' ||
	    *j->p == '\n' || *j->p == '\r'))
		j->p++;
}

static int
hex4(const char *p, unsigned *v)
{
	int	i, d;

	*v = 0;
	for (i = 0; i < 4; i++) {
		if (p[i] >= '0' && p[i] <= '9')
			d = p[i] - '0';
		else if (p[i] >= 'a' && p[i] <= 'f')
			d = p[i] - 'a' + 10;
		else if (p[i] >= 'A' && p[i] <= 'F')
			d = p[i] - 'A' + 10;
		else
			return (-1);
		*v = *v * 16 + d;
	}
	return (0);
}

static size_t
utf8_put(char *o, unsigned cp)
{
	if (cp < 0x80) {
		o[0] = cp;
		return (1);
	}
	if (cp < 0x800) {
		o[0] = 0xc0 | (cp >> 6);
		o[1] = 0x80 | (cp & 0x3f);
		return (2);
	}
	if (cp < 0x10000) {
		o[0] = 0xe0 | (cp >> 12);
		o[1] = 0x80 | ((cp >> 6) & 0x3f);
		o[2] = 0x80 | (cp & 0x3f);
		return (3);
	}
	o[0] = 0xf0 | (cp >> 18);
	o[1] = 0x80 | ((cp >> 12) & 0x3f);
	o[2] = 0x80 | ((cp >> 6) & 0x3f);
	o[3] = 0x80 | (cp & 0x3f);
	return (4);
}

/* A string at j->p (on the quote); decoded into the arena when <out>. */
static int
jr_string(struct jr *j, char **out, size_t *outlen)
{
	const char	*s = ++j->p;
	char		*o = NULL;
	size_t		 n = 0;
	unsigned	 cp, lo;

	/* decoded, a string is never longer than its source */
	while (j->p < j->end && *j->p != '"') {
		if (*j->p == '\\')
			j->p++;
		j->p++;
	}
	if (j->p >= j->end)
		return (-1);
	if (out != NULL && (o = arena_alloc(j->a, j->p - s + 1)) == NULL)
		return (-1);
	j->p = s;
	while (*j->p != '"') {
		unsigned char	c = *j->p;

		if (c < 0x20)
			return (-1);
		if (c != '\\') {
			if (o != NULL)
				o[n] = c;
			n++;
			j->p++;
			continue;
		}
		j->p++;
		c = *j->p++;
		switch (c) {
		case '"':
		case '\\':
		case '/':
			break;
		case 'b':
			c = '\b';
			break;
		case 'f':
			c = '\f';
			break;
		case 'n':
			c = '\n';
			break;
		case 'r':
			c = '\r';
			break;
		case 't':
			c = '\t';
			break;
		case 'u':
			if (j->end - j->p < 4 || hex4(j->p, &cp) == -1)
				return (-1);
			j->p += 4;
			if (cp >= 0xd800 && cp <= 0xdbff &&
			    j->end - j->p >= 6 &&
			    j->p[0] == '\\' && j->p[1] == 'u' &&
			    hex4(j->p + 2, &lo) == 0 && lo >= 0xdc00 &&
			    lo <= 0xdfff) {
				cp = 0x10000 + ((cp - 0xd800) << 10) +
				    (lo - 0xdc00);
				j->p += 6;
			} else if (cp >= 0xd800 && cp <= 0xdfff)
				cp = 0xfffd;	/* a lone surrogate */
			if (o != NULL)
				n += utf8_put(o + n, cp);
			else
				n += 4;
			continue;
		default:
			return (-1);
		}
		if (o != NULL)
			o[n] = c;
		n++;
	}
	j->p++;
	if (o != NULL) {
		o[n] = '\0';
		*out = o;
		*outlen = n;
	}
	return (0);
}

static int
jr_number(struct jr *j)
{
	const char	*s = j->p;

	if (j->p < j->end && *j->p == '-')
		j->p++;
	if (j->p < j->end && *j->p == '0')
		j->p++;
	else if (j->p < j->end && *j->p >= '1' && *j->p <= '9')
		while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
			j->p++;
	else
		return (-1);
	if (j->p < j->end && *j->p == '.') {
		j->p++;
		if (j->p >= j->end || *j->p < '0' || *j->p > '9')
			return (-1);
		while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
			j->p++;
	}
	if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
		j->p++;
		if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
			j->p++;
		if (j->p >= j->end || *j->p < '0' || *j->p > '9')
			return (-1);
		while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
			j->p++;
	}
	return (j->p > s ? 0 : -1);
}

static int	jr_value(struct jr *, char **, size_t *, int *);

static int
jr_container(struct jr *j, char close)
{
	size_t	 kl;
	int	 scalar;

	if (++j->depth > APPD_MAXJSONDEPTH)
		return (-1);
	j->p++;
	jr_ws(j);
	if (j->p < j->end && *j->p == close) {
		j->p++;
		j->depth--;
		return (0);
	}
	for (;;) {
		jr_ws(j);
		if (close == '}') {
			if (j->p >= j->end || *j->p != '"' ||
			    jr_string(j, NULL, NULL) == -1)
				return (-1);
			jr_ws(j);
			if (j->p >= j->end || *j->p++ != ':')
				return (-1);
			jr_ws(j);
		}
		if (jr_value(j, NULL, &kl, &scalar) == -1)
			return (-1);
		jr_ws(j);
		if (j->p >= j->end)
			return (-1);
		if (*j->p == ',') {
			j->p++;
			continue;
		}
		if (*j->p++ != close)
			return (-1);
		j->depth--;
		return (0);
	}
}

/* A value: decoded when scalar and <out> is given. */
static int
jr_value(struct jr *j, char **out, size_t *outlen, int *scalar)
{
	const char	*s = j->p;
	static const char	*lits[] = { "true", "false", "null" };
	size_t		 i, l;

	*scalar = 1;
	if (j->p >= j->end)
		return (-1);
	switch (*j->p) {
	case '"':
		return (jr_string(j, out, outlen));
	case '{':
		*scalar = 0;
		return (jr_container(j, '}'));
	case '[':
		*scalar = 0;
		return (jr_container(j, ']'));
	case 't':
	case 'f':
	case 'n':
		for (i = 0; i < nitems(lits); i++) {
			l = strlen(lits[i]);
			if ((size_t)(j->end - j->p) >= l &&
			    memcmp(j->p, lits[i], l) == 0) {
				j->p += l;
				break;
			}
		}
		if (i == nitems(lits))
			return (-1);
		break;
	default:
		if (jr_number(j) == -1)
			return (-1);
	}
	if (out != NULL) {
		if ((*out = arena_strndup(j->a, s, j->p - s)) == NULL)
			return (-1);
		*outlen = j->p - s;
	}
	return (0);
}

/*
 * Parse <s, n> as one JSON object and keep its scalar members for
 * app_json_field.  Returns 0, or -1 when it is not valid JSON or not an
 * object.
 */
int
json_parse_object(struct app_req *req, const char *s, size_t n)
{
	struct jr	 j;
	char		*k, *v;
	size_t		 kl, vl;
	int		 scalar;

	j.p = s;
	j.end = s + n;
	j.a = req->arena;
	j.depth = 1;
	jr_ws(&j);
	if (j.p >= j.end || *j.p++ != '{')
		return (-1);
	jr_ws(&j);
	if (j.p < j.end && *j.p == '}') {
		j.p++;
		goto end;
	}
	for (;;) {
		jr_ws(&j);
		if (j.p >= j.end || *j.p != '"' || jr_string(&j, &k, &kl) ==
		    -1)
			return (-1);
		jr_ws(&j);
		if (j.p >= j.end || *j.p++ != ':')
			return (-1);
		jr_ws(&j);
		v = NULL;
		if (jr_value(&j, &v, &vl, &scalar) == -1)
			return (-1);
		if (scalar && v != NULL && strlen(k) == kl &&
		    req_json_add(req, k, v, vl) == -1)
			return (-1);
		jr_ws(&j);
		if (j.p >= j.end)
			return (-1);
		if (*j.p == ',') {
			j.p++;
			continue;
		}
		if (*j.p++ != '}')
			return (-1);
		break;
	}
 end:
	jr_ws(&j);
	return (j.p == j.end ? 0 : -1);
}
