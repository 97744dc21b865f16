/*
 * test_http_parse.c: the HTTP/1.1 head parser and the chunked decoder,
 * over the corpus of tests/unit/http/corpus.h, and the helpers of
 * http_target.c (percent-decoding, path normalization, authorities,
 * dates).
 *
 * Every case is checked whole, then split in two at every byte (for
 * inputs above SPLIT_ALL bytes: near both ends and at a stride between)
 * and fed byte by byte; each call gets a fresh malloc'd copy of exactly
 * the bytes it may read, so that under ASan a read past the length given
 * is caught, and the outcome must be the same whatever the read sizes.
 */
#include <sys/types.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <criterion/criterion.h>

#include "http.h"
#include "http/corpus.h"

#define SPLIT_ALL	2048	/* above: near the ends and by stride */
#define SPLIT_EDGE	600
#define SPLIT_STRIDE	37

/* What one parse came to: the result fields of struct http_msg. */
struct outcome {
	int		 rc;
	struct http_msg	 m;
	struct http_hdr	 hdrs[HTTP_MAXHEADERS];
};

/* A fresh copy of buf[0..len) in an allocation of exactly len bytes. */
static char *
exact_copy(const char *buf, size_t len)
{
	char	*p = malloc(len ? len : 1);

	cr_assert_not_null(p);
	if (len > 0)
		memcpy(p, buf, len);
	return (p);
}

static void
msg_start(struct http_msg *m, struct http_hdr *hdrs, const struct hcase *c,
    int response)
{
	http_msg_init(m, response, &corpus_limits[c->lim], hdrs);
	m->req_method = c->req_method;
}

/* One http_parse() call on a fresh exact copy of buf[0..len). */
static int
feed(struct http_msg *m, const char *buf, size_t len)
{
	char	*p = exact_copy(buf, len);
	int	 rc;

	rc = http_parse(m, p, len);
	free(p);
	return (rc);
}

static void
outcome_take(struct outcome *o, int rc, const struct http_msg *m,
    const struct http_hdr *hdrs)
{
	memset(o, 0, sizeof(*o));
	o->rc = rc;
	o->m = *m;
	o->m.hdrs = o->hdrs;		/* not the caller's, soon gone */
	if (m->nhdrs > 0)
		memcpy(o->hdrs, hdrs, m->nhdrs * sizeof(*hdrs));
}

/* Which result field differs, or NULL. */
static const char *
outcome_diff(const struct outcome *a, const struct outcome *b)
{
	const struct http_msg	*x = &a->m, *y = &b->m;

#define CMP(f)	do { if (x->f != y->f) return (#f); } while (0)
	if (a->rc != b->rc)
		return ("rc");
	CMP(error);
	if ((x->errmsg == NULL) != (y->errmsg == NULL) ||
	    (x->errmsg != NULL && strcmp(x->errmsg, y->errmsg) != 0))
		return ("errmsg");
	CMP(method);
	CMP(method_off);
	CMP(method_len);
	CMP(target_off);
	CMP(target_len);
	CMP(form);
	CMP(minor);
	CMP(status);
	CMP(reason_off);
	CMP(reason_len);
	CMP(nhdrs);
	CMP(host);
	CMP(flags);
	CMP(framing);
	CMP(content_length);
	CMP(head_len);
	CMP(skipped);
#undef CMP
	if (x->nhdrs > 0 && memcmp(a->hdrs, b->hdrs,
	    x->nhdrs * sizeof(a->hdrs[0])) != 0)
		return ("hdrs");
	return (NULL);
}

static void
parse_whole(const struct hcase *c, int response, const char *buf, size_t len,
    struct outcome *o)
{
	struct http_msg	m;
	struct http_hdr	hdrs[HTTP_MAXHEADERS];
	int		rc;

	msg_start(&m, hdrs, c, response);
	rc = feed(&m, buf, len);
	outcome_take(o, rc, &m, hdrs);
}

/* buf[0..k) first, then all of it. */
static void
parse_split(const struct hcase *c, int response, const char *buf, size_t len,
    size_t k, struct outcome *o)
{
	struct http_msg	m;
	struct http_hdr	hdrs[HTTP_MAXHEADERS];
	int		rc;

	msg_start(&m, hdrs, c, response);
	rc = feed(&m, buf, k);
	if (rc == HTTP_AGAIN)
		rc = feed(&m, buf, len);
	outcome_take(o, rc, &m, hdrs);
}

/* One more byte each call. */
static void
parse_bytes(const struct hcase *c, int response, const char *buf,
    size_t len, struct outcome *o)
{
	struct http_msg	m;
	struct http_hdr	hdrs[HTTP_MAXHEADERS];
	size_t		k = 0;
	int		rc;

	msg_start(&m, hdrs, c, response);
	do {
		rc = feed(&m, buf, k);
	} while (rc == HTTP_AGAIN && ++k <= len);
	outcome_take(o, rc, &m, hdrs);
}

/* Where the head of an accepted case ends when .head_len is not given. */
static uint32_t
head_end(const char *buf, size_t len)
{
	size_t	i = 0;

	while (i + 1 < len && buf[i] == '\r' && buf[i + 1] == '\n')
		i += 2;
	for (; i + 4 <= len; i++)
		if (memcmp(buf + i, "\r\n\r\n", 4) == 0)
			return (i + 4);
	return (0);
}

static const char *
rcname(int rc)
{
	return (rc == HTTP_DONE ? "DONE" : rc == HTTP_ERROR ? "ERROR" :
	    "AGAIN");
}

/* Check the whole-input outcome of <c> against what the case says. */
static int
check_case(const struct hcase *c, const char *buf, size_t len,
    const struct outcome *o)
{
	const struct http_msg	*m = &o->m;
	uint32_t		 hl;
	int			 bad = 0, i;

#define EXPECT(cond, ...)	do {					\
	if (!(cond)) {							\
		cr_expect(0, __VA_ARGS__);				\
		bad = 1;						\
	}								\
} while (0)
	EXPECT(o->rc == c->rc, "%s: %s (%d %s), want %s", c->name,
	    rcname(o->rc), m->error, m->errmsg ? m->errmsg : "",
	    rcname(c->rc));
	if (o->rc != c->rc)
		return (1);
	if (c->rc == HTTP_ERROR) {
		EXPECT(m->error == c->error, "%s: error %d (%s), want %d",
		    c->name, m->error, m->errmsg, c->error);
		EXPECT(m->errmsg != NULL, "%s: no errmsg", c->name);
		return (bad);
	}
	if (c->rc != HTTP_DONE)
		return (bad);
	EXPECT(m->error == 0, "%s: error %d set", c->name, m->error);
	EXPECT(m->method == c->method, "%s: method %d, want %d", c->name,
	    m->method, c->method);
	if (c->target != NULL)
		EXPECT(m->target_len == strlen(c->target) &&
		    memcmp(buf + m->target_off, c->target, m->target_len) == 0,
		    "%s: target \"%.*s\", want \"%s\"", c->name,
		    (int)m->target_len, buf + m->target_off, c->target);
	if (c->form != 0)
		EXPECT((int)m->form == c->form, "%s: form %d, want %d",
		    c->name, m->form, c->form);
	EXPECT(m->minor == c->minor, "%s: minor %d, want %d", c->name,
	    m->minor, c->minor);
	EXPECT(m->status == c->status, "%s: status %d, want %d", c->name,
	    m->status, c->status);
	EXPECT(m->nhdrs == c->nhdrs, "%s: %d fields, want %d", c->name,
	    m->nhdrs, c->nhdrs);
	EXPECT((int)m->framing == c->framing, "%s: framing %d, want %d",
	    c->name, m->framing, c->framing);
	EXPECT(m->content_length == c->cl, "%s: content_length %llu, want "
	    "%llu", c->name, (unsigned long long)m->content_length,
	    (unsigned long long)c->cl);
	EXPECT(m->flags == c->flags, "%s: flags %#x, want %#x", c->name,
	    m->flags, c->flags);
	hl = c->head_len ? c->head_len : head_end(buf, len);
	EXPECT(m->head_len == hl, "%s: head_len %u, want %u", c->name,
	    m->head_len, hl);
	for (i = 0; i < 8 && c->hv[i] != NULL; i += 2) {
		int		j = http_find(m, buf, c->hv[i], 0);
		struct slice	v;

		EXPECT(j != -1, "%s: no field %s", c->name, c->hv[i]);
		if (j == -1)
			continue;
		v = http_hdr_value(buf, &o->hdrs[j]);
		EXPECT(v.len == strlen(c->hv[i + 1]) &&
		    memcmp(v.p, c->hv[i + 1], v.len) == 0,
		    "%s: %s is \"%.*s\", want \"%s\"", c->name, c->hv[i],
		    (int)v.len, v.p, c->hv[i + 1]);
	}
#undef EXPECT
	return (bad);
}

static void
run_table(const struct hcase *tab, size_t n, int response)
{
	size_t	i, len;
	int	bad = 0;

	for (i = 0; i < n; i++) {
		const struct hcase	*c = &tab[i];
		struct outcome		 o;
		char			*buf;

		buf = corpus_input(c->in, c->len, c->rep, c->nrep, &len);
		cr_assert_not_null(buf);
		parse_whole(c, response, buf, len, &o);
		bad += check_case(c, buf, len, &o);
		free(buf);
	}
	cr_expect_eq(bad, 0, "%d of %zu cases wrong", bad, n);
}

static int
split_here(size_t k, size_t len)
{
	if (len <= SPLIT_ALL || k <= SPLIT_EDGE || k + SPLIT_EDGE >= len)
		return (1);
	return (k % SPLIT_STRIDE == 0);
}

static void
run_splits(const struct hcase *tab, size_t n, int response)
{
	size_t	i, k, len, splits = 0;
	int	bad = 0;

	for (i = 0; i < n; i++) {
		const struct hcase	*c = &tab[i];
		struct outcome		 whole, o;
		const char		*d;
		char			*buf;

		buf = corpus_input(c->in, c->len, c->rep, c->nrep, &len);
		cr_assert_not_null(buf);
		parse_whole(c, response, buf, len, &whole);
		for (k = 0; k <= len; k++) {
			if (!split_here(k, len))
				continue;
			splits++;
			parse_split(c, response, buf, len, k, &o);
			if ((d = outcome_diff(&o, &whole)) != NULL) {
				cr_expect(0, "%s: split at %zu: %s differs "
				    "(%s %s, whole %s %s)", c->name, k, d,
				    rcname(o.rc), o.m.errmsg ? o.m.errmsg : "",
				    rcname(whole.rc), whole.m.errmsg ?
				    whole.m.errmsg : "");
				bad++;
				break;
			}
		}
		parse_bytes(c, response, buf, len, &o);
		if ((d = outcome_diff(&o, &whole)) != NULL) {
			cr_expect(0, "%s: byte by byte: %s differs", c->name,
			    d);
			bad++;
		}
		free(buf);
	}
	cr_expect_eq(bad, 0, "%d cases depend on read sizes", bad);
	cr_log_info("%zu cases, %zu splits", n, splits);
}

TestSuite(http_parse, .timeout = 600);

Test(http_parse, corpus_size)
{
	cr_expect_geq(nitems(corpus_req), 200, "only %zu requests",
	    nitems(corpus_req));
	cr_expect_geq(nitems(corpus_rsp), 80, "only %zu responses",
	    nitems(corpus_rsp));
	cr_log_info("corpus: %zu requests, %zu responses, %zu chunked",
	    nitems(corpus_req), nitems(corpus_rsp), nitems(corpus_chunked));
}

Test(http_parse, requests)
{
	run_table(corpus_req, nitems(corpus_req), 0);
}

Test(http_parse, responses)
{
	run_table(corpus_rsp, nitems(corpus_rsp), 1);
}

Test(http_parse, requests_split)
{
	run_splits(corpus_req, nitems(corpus_req), 0);
}

Test(http_parse, responses_split)
{
	run_splits(corpus_rsp, nitems(corpus_rsp), 1);
}

/* The offsets stay valid when the caller moves its buffer between calls. */
Test(http_parse, buffer_moves)
{
	const char	*req = "POST /a?b HTTP/1.1\r\nHost: h\r\n"
			    "Content-Length: 3\r\n\r\nabc";
	struct http_msg	 m;
	struct http_hdr	 hdrs[HTTP_MAXHEADERS];
	char		*a, *b;
	size_t		 len = strlen(req);

	http_msg_init(&m, 0, NULL, hdrs);
	a = exact_copy(req, 12);
	cr_assert_eq(http_parse(&m, a, 12), HTTP_AGAIN);
	free(a);
	b = exact_copy(req, len);
	cr_assert_eq(http_parse(&m, b, len), HTTP_DONE);
	cr_assert_eq(m.target_len, 4);
	cr_assert(memcmp(b + m.target_off, "/a?b", 4) == 0);
	cr_assert(http_hdr_is(b, &hdrs[1], "content-length"));
	cr_assert_eq(m.head_len, len - 3);
	/* done is done: more calls change nothing */
	cr_assert_eq(http_parse(&m, b, len), HTTP_DONE);
	free(b);
}

/* An error is sticky. */
Test(http_parse, error_sticky)
{
	struct http_msg	m;
	struct http_hdr	hdrs[HTTP_MAXHEADERS];
	const char	*bad = "GET / HTTP/1.1\nHost: a\r\n\r\n";

	http_msg_init(&m, 0, NULL, hdrs);
	cr_assert_eq(http_parse(&m, bad, strlen(bad)), HTTP_ERROR);
	cr_assert_eq(m.error, 400);
	cr_assert_eq(http_parse(&m, bad, strlen(bad)), HTTP_ERROR);
	cr_assert_eq(m.error, 400);
}

Test(http_parse, helpers)
{
	struct slice	v = slice_make(" a, b ,c,,", 10);

	cr_expect(http_list_has(v, "b"));
	cr_expect(http_list_has(v, "c"));
	cr_expect(!http_list_has(v, ""));
	cr_expect(!http_list_has(v, "a,"));
	cr_expect(http_token_eq("Close", 5, "close"));
	cr_expect(!http_token_eq("Closer", 6, "close"));
	cr_expect(!http_token_eq("Clos", 4, "close"));
	cr_expect_str_eq(http_method_name(HTTP_M_PATCH), "PATCH");
	cr_expect_str_eq(http_method_name(HTTP_M_OTHER), "OTHER");
	cr_expect_str_eq(http_reason(431), "Request Header Fields Too Large");
	cr_expect_str_eq(http_reason(299), "OK");
	cr_expect_str_eq(http_reason(599), "Server Error");
}

/* Chunked bodies */

struct coutcome {
	int	 rc;		/* 1 done, 0 more, -1 error */
	char	*data;
	size_t	 datalen;
	size_t	 used;		/* bytes consumed */
	int	 ntrailers;
	int	 error;
	char	 errmsg[64];
};

/* Feed buf[0..len) to the decoder, each call on an exact copy. */
static void
chunk_feed(struct http_chunked *ch, const char *buf, size_t len,
    struct coutcome *o)
{
	while (o->rc == 0 && o->used < len) {
		size_t	 doff, dlen, n = len - o->used;
		char	*p = exact_copy(buf + o->used, n);
		ssize_t	 r;

		r = http_chunked_next(ch, p, n, &doff, &dlen);
		if (r == -1) {
			o->rc = -1;
			o->error = ch->error;
			snprintf(o->errmsg, sizeof(o->errmsg), "%s",
			    ch->errmsg);
			free(p);
			break;
		}
		cr_assert_leq((size_t)r, n);
		cr_assert_leq(doff + dlen, (size_t)r);
		if (dlen > 0) {
			o->data = realloc(o->data, o->datalen + dlen);
			cr_assert_not_null(o->data);
			memcpy(o->data + o->datalen, p + doff, dlen);
			o->datalen += dlen;
		}
		free(p);
		o->used += r;
		if (ch->done)
			o->rc = 1;
		else if (r == 0)
			break;
	}
	o->ntrailers = ch->ntrailers;
}

/* <k>: where to split (0: whole); <bytes>: one byte more at a time. */
static void
chunk_run(const struct ccase *c, const char *buf, size_t len, size_t k,
    int bytes, struct coutcome *o)
{
	struct http_chunked	ch;
	size_t			i;

	memset(o, 0, sizeof(*o));
	http_chunked_init(&ch, c->trailer_max);
	if (bytes) {
		for (i = 1; i <= len && o->rc == 0; i++)
			chunk_feed(&ch, buf, i, o);
	} else {
		if (k > 0)
			chunk_feed(&ch, buf, k, o);
		chunk_feed(&ch, buf, len, o);
	}
}

static const char *
coutcome_diff(const struct coutcome *a, const struct coutcome *b)
{
	if (a->rc != b->rc)
		return ("rc");
	if (a->rc == -1)
		return (strcmp(a->errmsg, b->errmsg) != 0 ? "errmsg" : NULL);
	if (a->datalen != b->datalen || (a->datalen > 0 &&
	    memcmp(a->data, b->data, a->datalen) != 0))
		return ("data");
	if (a->rc == 1 && a->used != b->used)
		return ("used");
	if (a->ntrailers != b->ntrailers)
		return ("ntrailers");
	return (NULL);
}

Test(http_chunked, table)
{
	size_t	i, len;
	int	bad = 0;

	for (i = 0; i < nitems(corpus_chunked); i++) {
		const struct ccase	*c = &corpus_chunked[i];
		struct coutcome		 o;
		char			*buf;
		int			 wrong = 0;

		buf = corpus_input(c->in, c->len, c->rep, c->nrep, &len);
		cr_assert_not_null(buf);
		chunk_run(c, buf, len, 0, 0, &o);
		if (o.rc != c->rc) {
			cr_expect(0, "%s: rc %d (%s), want %d", c->name, o.rc,
			    o.errmsg, c->rc);
			wrong = 1;
		} else if (c->rc == -1) {
			if (o.error != 400) {
				cr_expect(0, "%s: error %d", c->name, o.error);
				wrong = 1;
			}
		} else {
			if (o.datalen != c->datalen || (o.datalen > 0 &&
			    memcmp(o.data, c->data, o.datalen) != 0)) {
				cr_expect(0, "%s: data \"%.*s\", want \"%s\"",
				    c->name, (int)o.datalen, o.data, c->data);
				wrong = 1;
			}
			if (c->rc == 1 && len - o.used != c->left) {
				cr_expect(0, "%s: %zu bytes left, want %zu",
				    c->name, len - o.used, c->left);
				wrong = 1;
			}
			if (c->rc == 1 && o.ntrailers != c->ntrailers) {
				cr_expect(0, "%s: %d trailers, want %d",
				    c->name, o.ntrailers, c->ntrailers);
				wrong = 1;
			}
		}
		bad += wrong;
		free(o.data);
		free(buf);
	}
	cr_expect_eq(bad, 0, "%d chunked cases wrong", bad);
}

Test(http_chunked, split)
{
	size_t	i, k, len;
	int	bad = 0;

	for (i = 0; i < nitems(corpus_chunked); i++) {
		const struct ccase	*c = &corpus_chunked[i];
		struct coutcome		 whole, o;
		const char		*d;
		char			*buf;

		buf = corpus_input(c->in, c->len, c->rep, c->nrep, &len);
		cr_assert_not_null(buf);
		chunk_run(c, buf, len, 0, 0, &whole);
		for (k = 1; k < len; k++) {
			chunk_run(c, buf, len, k, 0, &o);
			d = coutcome_diff(&o, &whole);
			free(o.data);
			if (d != NULL) {
				cr_expect(0, "%s: split at %zu: %s differs",
				    c->name, k, d);
				bad++;
				break;
			}
		}
		chunk_run(c, buf, len, 0, 1, &o);
		if ((d = coutcome_diff(&o, &whole)) != NULL) {
			cr_expect(0, "%s: byte by byte: %s differs", c->name,
			    d);
			bad++;
		}
		free(o.data);
		free(whole.data);
		free(buf);
	}
	cr_expect_eq(bad, 0, "%d chunked cases depend on read sizes", bad);
}

/* A chunked request: the head, then its body through the decoder. */
Test(http_chunked, after_head)
{
	const char	*in = "POST / HTTP/1.1\r\nHost: a\r\n"
			    "Transfer-Encoding: chunked\r\n\r\n"
			    "3;x=\"y\"\r\nabc\r\n2\r\nde\r\n0\r\nT: 1\r\n\r\n"
			    "GET";
	struct http_msg	 m;
	struct http_hdr	 hdrs[HTTP_MAXHEADERS];
	struct http_chunked ch;
	struct coutcome	 o;
	size_t		 len = strlen(in);

	http_msg_init(&m, 0, NULL, hdrs);
	cr_assert_eq(http_parse(&m, in, len), HTTP_DONE);
	cr_assert_eq(m.framing, HTTP_BODY_CHUNKED);
	memset(&o, 0, sizeof(o));
	http_chunked_init(&ch, 0);
	chunk_feed(&ch, in + m.head_len, len - m.head_len, &o);
	cr_assert_eq(o.rc, 1);
	cr_assert_eq(o.datalen, 5);
	cr_assert(memcmp(o.data, "abcde", 5) == 0);
	cr_assert_eq(ch.total, 5);
	cr_assert_eq(len - m.head_len - o.used, 3, "the next request stays");
	free(o.data);
}

/* http_target.c */

struct pct_case {
	const char	*in;
	int		 path;
	const char	*out;		/* NULL: refused */
	size_t		 outlen;
};

Test(http_target, pct_decode)
{
	static const struct pct_case	tab[] = {
		{ "/a%20b", 1, "/a b", 4 },
		{ "/%41%42%43", 1, "/ABC", 4 },
		{ "/%e2%82%ac", 1, "/\xe2\x82\xac", 4 },
		{ "/%E2%82%AC", 1, "/\xe2\x82\xac", 4 },
		{ "/%f0%9f%98%80", 1, "/\xf0\x9f\x98\x80", 5 },
		{ "/\xc3\xa9", 1, "/\xc3\xa9", 3 },
		{ "/%25", 1, "/%", 2 },
		{ "/%2e%2E", 1, "/..", 3 },
		{ "", 1, "", 0 },
		{ "/%", 1, NULL, 0 },
		{ "/%4", 1, NULL, 0 },
		{ "/%4g", 1, NULL, 0 },
		{ "/%g4", 1, NULL, 0 },
		{ "/%%41", 1, NULL, 0 },
		{ "/a%", 0, NULL, 0 },
		{ "/%00", 1, NULL, 0 },
		{ "%00", 0, NULL, 0 },
		{ "/%2F", 1, NULL, 0 },
		{ "/%2f", 1, NULL, 0 },
		{ "/%2F", 0, "//", 2 },
		{ "/%5C", 1, NULL, 0 },
		{ "/%5c", 1, NULL, 0 },
		{ "/%5C", 0, "/\\", 2 },
		{ "/a\\b", 1, NULL, 0 },
		{ "/a\\b", 0, "/a\\b", 4 },
		{ "/%0A", 1, NULL, 0 },
		{ "/%0d%0a", 1, NULL, 0 },
		{ "/%09", 1, NULL, 0 },
		{ "/%1f", 1, NULL, 0 },
		{ "/%7F", 1, NULL, 0 },
		{ "q=%0A", 0, "q=\n", 3 },
		{ "/%c0%af", 1, NULL, 0 },		/* overlong "/" */
		{ "/%c0%ae%c0%ae", 1, NULL, 0 },	/* overlong ".." */
		{ "/%e0%80%af", 1, NULL, 0 },
		{ "/%f0%80%80%af", 1, NULL, 0 },
		{ "/%c1%bf", 1, NULL, 0 },
		{ "/%80", 1, NULL, 0 },			/* continuation */
		{ "/%c3", 1, NULL, 0 },			/* truncated */
		{ "/%e2%82", 1, NULL, 0 },
		{ "/%ed%a0%80", 1, NULL, 0 },		/* surrogate */
		{ "/%f4%90%80%80", 1, NULL, 0 },	/* above U+10FFFF */
		{ "/%f8%88%80%80%80", 1, NULL, 0 },	/* 5 bytes */
		{ "/%fe", 1, NULL, 0 },
		{ "/%ff", 1, NULL, 0 },
		{ "/\xc0\xaf", 1, NULL, 0 },		/* raw overlong */
		{ "/\xff", 1, NULL, 0 },
		{ "/%ff", 0, "/\xff", 2 },		/* not a path */
		{ "/%c3%a9", 1, "/\xc3\xa9", 3 },
		{ "/%f4%8f%bf%bf", 1, "/\xf4\x8f\xbf\xbf", 5 },
	};
	char	out[64];
	size_t	i, olen;
	int	rv;

	for (i = 0; i < nitems(tab); i++) {
		rv = http_pct_decode(tab[i].in, strlen(tab[i].in), out,
		    sizeof(out), &olen, tab[i].path);
		if (tab[i].out == NULL) {
			cr_expect_eq(rv, -1, "\"%s\" (path %d) accepted",
			    tab[i].in, tab[i].path);
			continue;
		}
		cr_expect_eq(rv, 0, "\"%s\" (path %d) refused", tab[i].in,
		    tab[i].path);
		if (rv == 0)
			cr_expect(olen == tab[i].outlen &&
			    memcmp(out, tab[i].out, olen) == 0 &&
			    out[olen] == '\0', "\"%s\" -> \"%s\"", tab[i].in,
			    out);
	}
	/* no room */
	cr_expect_eq(http_pct_decode("/abcd", 5, out, 5, &olen, 1), -1);
	cr_expect_eq(http_pct_decode("/abcd", 5, out, 6, &olen, 1), 0);
	/* an embedded NUL */
	cr_expect_eq(http_pct_decode("/a\0b", 4, out, sizeof(out), &olen, 0),
	    -1);
}

struct path_case {
	const char	*in;
	const char	*out;		/* NULL: refused */
};

/* No "/../" or "/./" segment, starts with "/", nothing above the root. */
static int
path_safe(const char *p, size_t len)
{
	size_t	i, s;

	if (len == 0 || p[0] != '/' || strlen(p) != len)
		return (0);
	for (i = 0; i < len; i = s) {
		size_t	n;

		s = i + 1;
		while (s < len && p[s] != '/')
			s++;
		n = s - i - 1;
		if (n == 0 && s < len)
			return (0);		/* "//" */
		if ((n == 1 && p[i + 1] == '.') ||
		    (n == 2 && p[i + 1] == '.' && p[i + 2] == '.'))
			return (0);
	}
	return (1);
}

Test(http_target, traversal)
{
	static const struct path_case	tab[] = {
		{ "/../../etc/passwd", "/etc/passwd" },
		{ "/a/./b/../../..", "/" },
		{ "//..//", "/" },
		{ "/%2e%2e/", "/" },
		{ "/.%2e/", "/" },
		{ "/%2e./", "/" },
		{ "/%2E%2E/%2E%2E/etc/passwd", "/etc/passwd" },
		{ "/..", "/" },
		{ "/.", "/" },
		{ "/../", "/" },
		{ "/./", "/" },
		{ "/...", "/..." },
		{ "/..../", "/..../" },
		{ "/a/..", "/" },
		{ "/a/../", "/" },
		{ "/a/b/..", "/a/" },
		{ "/a/b/.", "/a/b/" },
		{ "/a/./b", "/a/b" },
		{ "/a//b", "/a/b" },
		{ "///a///b///", "/a/b/" },
		{ "/a/b/../../../../c", "/c" },
		{ "/a/b/c/../../d", "/a/d" },
		{ "/../a/../b/../c", "/c" },
		{ "/./../.././..", "/" },
		{ "/a/%2e%2e/%2e%2e/%2e%2e/b", "/b" },
		{ "/a/..%2f..%2f", NULL },
		{ "/%2e%2e%2f%2e%2e%2fetc", NULL },
		{ "/..%5c..%5cwindows", NULL },
		{ "/..\\..\\windows", NULL },
		{ "/%c0%ae%c0%ae/etc", NULL },
		{ "/%c0%af../etc", NULL },
		{ "/%25%32%65%25%32%65/", "/%2e%2e/" },
		{ "/..;/etc", "/..;/etc" },
		{ "/.../..", "/" },
		{ "/a/.../b/..", "/a/.../" },
		{ "/.a/..b/c.", "/.a/..b/c." },
		{ "/a/b/c/./../../g", "/a/g" },
		{ "/mid/content=5/../6", "/mid/6" },
		{ "/a/b/c/d;p?q", "/a/b/c/d;p" },
		{ "/../../../../../../../../../../etc/shadow", "/etc/shadow" },
		{ "/%2e/%2e%2e/%2e/x", "/x" },
		{ "/.%2E/.%2e/%2E./x/", "/x/" },
		{ "/a/..//../b", "/b" },
		{ "//../a", "/a" },
		{ "/a/b//..", "/a/" },
		{ "/.//./..//a", "/a" },
		{ "/x/../../y/./z/..", "/y/" },
		{ "/x/%2e%2e%2e/", "/x/.../" },
		{ "/%2e%2e%00/", NULL },
		{ "/%2e%2e%0a/", NULL },
		{ "/a#/../../b", "/a" },
		{ "/a?/../../b", "/a" },
	};
	struct http_target	 t;
	const char		*why;
	size_t			 i;

	cr_expect_geq(nitems(tab), 40);
	for (i = 0; i < nitems(tab); i++) {
		const char	*in = tab[i].in;
		int		 rv;

		rv = http_target_parse(in, strlen(in), &t, &why);
		if (tab[i].out == NULL) {
			cr_expect_eq(rv, -1, "\"%s\" accepted as \"%s\"", in,
			    t.path);
			continue;
		}
		cr_expect_eq(rv, 0, "\"%s\" refused", in);
		if (rv != 0)
			continue;
		cr_expect_str_eq(t.path, tab[i].out, "\"%s\" -> \"%s\", want "
		    "\"%s\"", in, t.path, tab[i].out);
		cr_expect_eq(t.pathlen, strlen(t.path), "%s: pathlen", in);
		cr_expect(path_safe(t.path, t.pathlen), "\"%s\" -> unsafe "
		    "\"%s\"", in, t.path);
	}
}

/* Every path made of "a", ".", ".." and "" segments normalizes safely. */
Test(http_target, normalize_exhaustive)
{
	static const char	*seg[] = { "a", ".", "..", "", "%2e", "%2e.",
				    "b.." };
	char			 in[128];
	struct http_target	 t;
	const char		*why;
	unsigned		 code, n, depth;

	for (depth = 1; depth <= 6; depth++) {
		unsigned	total = 1;

		for (n = 0; n < depth; n++)
			total *= nitems(seg);
		for (code = 0; code < total; code++) {
			unsigned	c = code;

			in[0] = '\0';
			for (n = 0; n < depth; n++) {
				strlcat(in, "/", sizeof(in));
				strlcat(in, seg[c % nitems(seg)], sizeof(in));
				c /= nitems(seg);
			}
			cr_assert_eq(http_target_parse(in, strlen(in), &t,
			    &why), 0, "%s refused", in);
			cr_assert(path_safe(t.path, t.pathlen),
			    "\"%s\" -> \"%s\"", in, t.path);
		}
	}
}

Test(http_target, normalize_direct)
{
	char	p[64];
	size_t	n;

	strlcpy(p, "", sizeof(p));
	n = http_path_normalize(p, 0);
	cr_expect(n == 1 && strcmp(p, "/") == 0);
	strlcpy(p, "a/b", sizeof(p));
	n = http_path_normalize(p, 3);
	cr_expect(n == 1 && strcmp(p, "/") == 0, "relative: \"%s\"", p);
	strlcpy(p, "/a/b/../c/.", sizeof(p));
	n = http_path_normalize(p, strlen(p));
	cr_expect(n == 5 && strcmp(p, "/a/c/") == 0, "\"%s\"", p);
}

struct tgt_case {
	const char	*in;
	int		 ok;
	const char	*path;
	int		 had_query;
	const char	*query;
};

Test(http_target, parse)
{
	static const struct tgt_case	tab[] = {
		{ "/", 1, "/", 0, "" },
		{ "/a?b=c", 1, "/a", 1, "b=c" },
		{ "/a?", 1, "/a", 1, "" },
		{ "/a?b?c", 1, "/a", 1, "b?c" },
		{ "/a%3Fb?c", 1, "/a?b", 1, "c" },
		{ "/a?%2F..%2F", 1, "/a", 1, "%2F..%2F" },
		{ "/a#frag", 1, "/a", 0, "" },
		{ "/a?q#frag", 1, "/a", 1, "q" },
		{ "/a#f?q", 1, "/a", 0, "" },
		{ "http://example.com/x/../y?z", 1, "/y", 1, "z" },
		{ "http://example.com", 1, "/", 0, "" },
		{ "http://example.com?q", 1, "/", 1, "q" },
		{ "https://[::1]:8443/a/b", 1, "/a/b", 0, "" },
		{ "http://example.com/%2e%2e/%2e%2e/x", 1, "/x", 0, "" },
		{ "http://a/b%2Fc", 0, NULL, 0, NULL },
		{ "http:/a", 0, NULL, 0, NULL },
		{ "http:", 0, NULL, 0, NULL },
		{ "a", 0, NULL, 0, NULL },
		{ "/%zz", 0, NULL, 0, NULL },
		{ "/a%00", 0, NULL, 0, NULL },
		{ "", 1, "/", 0, "" },
	};
	struct http_target	 t;
	const char		*why = NULL;
	size_t			 i;

	for (i = 0; i < nitems(tab); i++) {
		int	rv;

		rv = http_target_parse(tab[i].in, strlen(tab[i].in), &t, &why);

		if (!tab[i].ok) {
			cr_expect_eq(rv, -1, "\"%s\" accepted", tab[i].in);
			if (rv == -1)
				cr_expect_not_null(why);
			continue;
		}
		cr_expect_eq(rv, 0, "\"%s\" refused: %s", tab[i].in, why);
		if (rv != 0)
			continue;
		cr_expect_str_eq(t.path, tab[i].path, "\"%s\": path \"%s\"",
		    tab[i].in, t.path);
		cr_expect_eq(t.had_query, tab[i].had_query, "\"%s\": query?",
		    tab[i].in);
		cr_expect(t.querylen == strlen(tab[i].query) &&
		    (t.querylen == 0 || memcmp(t.query, tab[i].query,
		    t.querylen) == 0), "\"%s\": query \"%.*s\"", tab[i].in,
		    (int)t.querylen, t.query ? t.query : "");
	}
}

/* A decoded path that does not fit is refused, not cut. */
Test(http_target, path_too_long)
{
	struct http_target	 t;
	const char		*why;
	char			*in;

	in = malloc(HTTP_MAXPATH + 1);
	cr_assert_not_null(in);
	memset(in, 'a', HTTP_MAXPATH);
	in[0] = '/';
	cr_expect_eq(http_target_parse(in, HTTP_MAXPATH, &t, &why), -1);
	cr_expect_eq(http_target_parse(in, HTTP_MAXPATH - 1, &t, &why), 0);
	cr_expect_eq(t.pathlen, HTTP_MAXPATH - 1);
	free(in);
}

struct auth_case {
	const char	*in;
	int		 ok;
	const char	*host;
	int		 port;
	int		 host_valid;
};

Test(http_target, authority)
{
	static const struct auth_case	tab[] = {
		{ "example.com", 1, "example.com", 0, 1 },
		{ "example.com:80", 1, "example.com", 80, 1 },
		{ "example.com:65535", 1, "example.com", 65535, 1 },
		{ "example.com:", 1, "example.com", 0, 1 },
		{ "example.com:00080", 1, "example.com", 80, 1 },
		{ "127.0.0.1:8080", 1, "127.0.0.1", 8080, 1 },
		{ "[::1]", 1, "[::1]", 0, 1 },
		{ "[::1]:443", 1, "[::1]", 443, 1 },
		{ "[2001:db8::a:b]:1", 1, "[2001:db8::a:b]", 1, 1 },
		{ "[::ffff:10.0.0.1]", 1, "[::ffff:10.0.0.1]", 0, 1 },
		{ "a%41b", 1, "a%41b", 0, 1 },
		{ "a-b_c~d.e!f$g&h'i(j)k*l+m;n=o", 1,
		    "a-b_c~d.e!f$g&h'i(j)k*l+m;n=o", 0, 1 },
		{ "a,b", 1, "a,b", 0, 0 },		/* not as a Host */
		{ ":80", 1, "", 80, 0 },		/* no host */
		{ "", 0, NULL, 0, 1 },			/* empty Host ok */
		{ "example.com:65536", 0, NULL, 0, 0 },
		{ "example.com:000080", 0, NULL, 0, 0 },
		{ "example.com:8a", 0, NULL, 0, 0 },
		{ "example.com:-1", 0, NULL, 0, 0 },
		{ "example.com:+1", 0, NULL, 0, 0 },
		{ "a:1:2", 0, NULL, 0, 0 },
		{ "u@example.com", 0, NULL, 0, 0 },
		{ "u:p@example.com", 0, NULL, 0, 0 },
		{ "a b", 0, NULL, 0, 0 },
		{ "a/b", 0, NULL, 0, 0 },
		{ "a?b", 0, NULL, 0, 0 },
		{ "a#b", 0, NULL, 0, 0 },
		{ "a\\b", 0, NULL, 0, 0 },
		{ "a\"b", 0, NULL, 0, 0 },
		{ "a%4", 0, NULL, 0, 0 },
		{ "a%", 0, NULL, 0, 0 },
		{ "a%gg", 0, NULL, 0, 0 },
		{ "caf\xc3\xa9", 0, NULL, 0, 0 },
		{ "[::1", 0, NULL, 0, 0 },
		{ "[]", 0, NULL, 0, 0 },
		{ "[1]", 0, NULL, 0, 0 },
		{ "[:::1]", 0, NULL, 0, 0 },
		{ "[::1]x", 0, NULL, 0, 0 },
		{ "[::1]:", 1, "[::1]", 0, 1 },
		{ "[::1]:99999", 0, NULL, 0, 0 },
		{ "[fe80::1%25eth0]", 0, NULL, 0, 0 },
		{ "[v1.x]", 0, NULL, 0, 0 },
		{ "[1.2.3.4]", 0, NULL, 0, 0 },
		{ "[0000:0000:0000:0000:0000:0000:0000:0000:0000]", 0, NULL, 0,
		    0 },
	};
	struct slice	h;
	size_t		i;
	int		port, rv;

	for (i = 0; i < nitems(tab); i++) {
		const char	*in = tab[i].in;

		rv = http_authority_parse(in, strlen(in), &h, &port);
		cr_expect_eq(rv, tab[i].ok ? 0 : -1, "authority \"%s\": %d",
		    in, rv);
		if (rv == 0 && tab[i].ok) {
			cr_expect(h.len == strlen(tab[i].host) &&
			    memcmp(h.p, tab[i].host, h.len) == 0,
			    "\"%s\": host \"%.*s\"", in, (int)h.len, h.p);
			cr_expect_eq(port, tab[i].port, "\"%s\": port %d", in,
			    port);
		}
		cr_expect_eq(http_host_valid(in, strlen(in)),
		    tab[i].host_valid, "host_valid \"%s\"", in);
	}
	/* a NUL is never part of a name */
	cr_expect_eq(http_authority_parse("a\0b", 3, &h, &port), -1);
	cr_expect_eq(http_host_valid("a\0b", 3), 0);
	cr_expect_eq(http_host_valid("[::1]\0", 6), 0);
}

struct date_case {
	const char	*in;
	time_t		 t;		/* -1: refused */
};

Test(http_target, date_parse)
{
	static const struct date_case	tab[] = {
		{ "Sun, 06 Nov 1994 08:49:37 GMT", 784111777 },
		{ "Sunday, 06-Nov-94 08:49:37 GMT", 784111777 },
		{ "Sun Nov  6 08:49:37 1994", 784111777 },
		{ "Sun Nov 06 08:49:37 1994", 784111777 },
		{ "Thu, 01 Jan 1970 00:00:00 GMT", 0 },
		{ "Wed, 29 Feb 2024 12:00:00 GMT", 1709208000 },
		{ "Fri, 31 Dec 9999 23:59:59 GMT", 253402300799 },
		{ "Wednesday, 09-Jun-21 10:18:14 GMT", 1623233894 },
		{ "Thu Jan  1 00:00:00 1970", 0 },
		{ "Tue, 19 Jan 2038 03:14:08 GMT", 2147483648 },
		/* garbage and near misses */
		{ "", -1 },
		{ "garbage", -1 },
		{ "Sun, 06 Nov 1994 08:49:37 UTC", -1 },
		{ "Sun, 06 Nov 1994 08:49:37 gmt", -1 },
		{ "Sun, 06 Nov 1994 08:49:37", -1 },
		{ "Sun, 06 Nov 1994 08:49:37 GMT ", -1 },
		{ " Sun, 06 Nov 1994 08:49:37 GMT", -1 },
		{ "Sun,  6 Nov 1994 08:49:37 GMT", -1 },
		{ "Sun, 6 Nov 1994 08:49:37 GMT", -1 },
		{ "Sun,06 Nov 1994 08:49:37 GMT ", -1 },
		{ "Xyz, 06 Nov 1994 08:49:37 GMT", -1 },
		{ "Sun, 06 Nov 94 08:49:37 GMT", -1 },
		{ "Sun, 06 nov 1994 08:49:37 GMT", -1 },
		{ "Sun, 06 Foo 1994 08:49:37 GMT", -1 },
		{ "Sun, 32 Nov 1994 08:49:37 GMT", -1 },
		{ "Sun, 00 Nov 1994 08:49:37 GMT", -1 },
		{ "Sun, 31 Nov 1994 08:49:37 GMT", -1 },
		{ "Thu, 29 Feb 2001 00:00:00 GMT", -1 },
		{ "Thu, 29 Feb 2100 00:00:00 GMT", -1 },
		{ "Sun, 06 Nov 1994 24:00:00 GMT", -1 },
		{ "Sun, 06 Nov 1994 08:60:00 GMT", -1 },
		{ "Sun, 06 Nov 1994 08:49:61 GMT", -1 },
		{ "Sun, 06 Nov 1994 8:49:37 GMT ", -1 },
		{ "Sun, 06 Nov 1994 08-49-37 GMT", -1 },
		{ "Sun, +6 Nov 1994 08:49:37 GMT", -1 },
		{ "Sun, 06 Nov 1969 08:49:37 GMT", -1 },
		{ "Sun, 06 Nov 0000 08:49:37 GMT", -1 },
		{ "Sunday, 06-Nov-1994 08:49:37 GMT", -1 },
		{ "Sun, 06-Nov-94 08:49:37 GMT", -1 },
		{ "Someday, 06-Nov-94 08:49:37 GMT", -1 },
		{ "Sunday 06-Nov-94 08:49:37 GMT", -1 },
		{ "Sunday, 06 Nov 94 08:49:37 GMT", -1 },
		{ "Sunday, 06-Nov-94 08:49:37 GMT ", -1 },
		{ "Sun Nov 6 08:49:37 1994", -1 },
		{ "Sun Nov  6 08:49:37 94", -1 },
		{ "Sun Nov  6 08:49:37 1994 ", -1 },
		{ "Sun Nov    6 08:49:37 1994", -1 },
		{ "Sun  Nov  6 08:49:37 1994", -1 },
		{ "Sun Nov  x 08:49:37 1994", -1 },
		{ "1994-11-06T08:49:37Z", -1 },
		{ "784111777", -1 },
	};
	size_t	i;

	for (i = 0; i < nitems(tab); i++) {
		time_t	t = http_date_parse(tab[i].in, strlen(tab[i].in));

		cr_expect_eq(t, tab[i].t, "\"%s\": %lld, want %lld", tab[i].in,
		    (long long)t, (long long)tab[i].t);
	}
	/* an embedded NUL; never reads past the length */
	cr_expect_eq(http_date_parse("Sun, 06 Nov 1994 08:49:37 GMT\0", 30),
	    -1);
	cr_expect_eq(http_date_parse("Sun, 06 Nov 1994 08:49:37 GMT", 28), -1);
	{
		char	*p = exact_copy("Sun Nov  6 08:49:37 1994", 24);

		cr_expect_eq(http_date_parse(p, 24), 784111777);
		free(p);
	}
}

/* The two-digit year of rfc850-date: never more than 50 years ahead. */
Test(http_target, date_rfc850_year)
{
	struct tm	now;
	time_t		t = time(NULL), got;
	char		in[64];
	int		yy;

	gmtime_r(&t, &now);
	for (yy = 0; yy < 100; yy++) {
		struct tm	tm;

		snprintf(in, sizeof(in), "Monday, 01-Jan-%02d 00:00:00 GMT",
		    yy);
		got = http_date_parse(in, strlen(in));
		if (got == -1) {
			/* only years before 1970 are refused */
			cr_expect(yy < 70 && now.tm_year + 1900 + 50 >=
			    2100 + yy, "%s refused", in);
			continue;
		}
		gmtime_r(&got, &tm);
		cr_expect_eq(tm.tm_year % 100, yy, "%s", in);
		cr_expect_leq(tm.tm_year + 1900, now.tm_year + 1900 + 50,
		    "%s: %d", in, tm.tm_year + 1900);
		cr_expect_gt(tm.tm_year + 1900, now.tm_year + 1900 + 50 - 100,
		    "%s: %d", in, tm.tm_year + 1900);
	}
}

Test(http_target, date_fmt)
{
	static const struct {
		time_t		 t;
		const char	*s;
	} tab[] = {
		{ 0, "Thu, 01 Jan 1970 00:00:00 GMT" },
		{ 784111777, "Sun, 06 Nov 1994 08:49:37 GMT" },
		{ 951782400, "Tue, 29 Feb 2000 00:00:00 GMT" },
		{ 2147483647, "Tue, 19 Jan 2038 03:14:07 GMT" },
		{ 253402300799, "Fri, 31 Dec 9999 23:59:59 GMT" },
	};
	char	buf[64], small[8];
	size_t	i;
	time_t	t;

	for (i = 0; i < nitems(tab); i++) {
		http_date_fmt(tab[i].t, buf, sizeof(buf));
		cr_expect_str_eq(buf, tab[i].s);
		cr_expect_eq(http_date_parse(buf, strlen(buf)), tab[i].t);
	}
	/* beyond four-digit years and gmtime's range: the epoch, not junk */
	http_date_fmt((time_t)253402300800, buf, sizeof(buf));
	cr_expect_str_eq(buf, "Thu, 01 Jan 1970 00:00:00 GMT");
	http_date_fmt((time_t)INT64_MAX, buf, sizeof(buf));
	cr_expect_str_eq(buf, "Thu, 01 Jan 1970 00:00:00 GMT");
	/* truncated, still terminated */
	http_date_fmt(0, small, sizeof(small));
	cr_expect_str_eq(small, "Thu, 01");
	/* round trip */
	for (t = 0; t < 4000000000LL; t += 7777777) {
		http_date_fmt(t, buf, sizeof(buf));
		cr_expect_eq(http_date_parse(buf, strlen(buf)), t, "%s", buf);
	}
	cr_expect_eq(strlen(http_date_now()), 29);
}
