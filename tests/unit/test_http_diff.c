/*
 * test_http_diff.c: our HTTP/1.1 parser against Debian's libhttp-parser
 * (a test-only dependency), over the corpus of tests/unit/http/corpus.h
 * (its chunked bodies sent as requests) and over random mutations of it
 * (a fixed seed: byte flips, insertions
 * of CR, LF, SP, HTAB, NUL, ":" and ",", deletions, duplicated field
 * lines).
 *
 * Where both accept a message, the method, target, version, status and
 * every field (names and values) must agree, and for requests the body
 * bytes too.  Where one accepts and the other refuses, the disagreement
 * has a kind -- our error message or their error name -- and every kind
 * met must be listed, with its reason, in tests/unit/http/differential.txt:
 * a kind not listed there fails the test.
 */
#include <sys/types.h>

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

/* both define enum http_method */
#define http_method	hp_method
#include <http_parser.h>
#undef http_method

#include "http.h"
#include "http/corpus.h"

#define DIFF_FILE	"tests/unit/http/differential.txt"
#define NMUT_REQ	6000	/* mutated requests */
#define NMUT_RSP	2000	/* mutated responses */
#define NMUT_CHUNKED	3000	/* mutated chunked bodies */
#define MUT_MAXLEN	4096	/* only cases this small are mutated */
#define MAXKINDS	256
#define MAXFIELDS	(HTTP_MAXHEADERS + 8)

/* A growable byte string. */
struct bytes {
	char	*p;
	size_t	 len;
};

static void
bytes_add(struct bytes *b, const char *p, size_t len)
{
	b->p = realloc(b->p, b->len + len + 1);
	cr_assert_not_null(b->p);
	memcpy(b->p + b->len, p, len);
	b->len += len;
}

/* What libhttp-parser made of a message. */
struct theirs {
	int		 headers_done;
	int		 msg_done;
	int		 response;
	struct bytes	 url;
	struct bytes	 name[MAXFIELDS];
	struct bytes	 value[MAXFIELDS];
	int		 nfields;
	int		 head_fields;	/* fields before the body */
	int		 in_value;
	struct bytes	 body;
};

static int
on_url(http_parser *p, const char *at, size_t len)
{
	struct theirs	*t = p->data;

	bytes_add(&t->url, at, len);
	return (0);
}

static int
on_field(http_parser *p, const char *at, size_t len)
{
	struct theirs	*t = p->data;

	if (t->in_value || t->nfields == 0) {
		if (t->nfields == MAXFIELDS)
			return (1);
		t->nfields++;
		t->in_value = 0;
	}
	bytes_add(&t->name[t->nfields - 1], at, len);
	return (0);
}

static int
on_value(http_parser *p, const char *at, size_t len)
{
	struct theirs	*t = p->data;

	t->in_value = 1;
	bytes_add(&t->value[t->nfields - 1], at, len);
	return (0);
}

static int
on_headers_complete(http_parser *p)
{
	struct theirs	*t = p->data;

	t->headers_done = 1;
	t->head_fields = t->nfields;	/* the rest are trailer fields */
	if (t->response)
		http_parser_pause(p, 1);	/* the head is all we compare */
	return (0);
}

static int
on_body(http_parser *p, const char *at, size_t len)
{
	struct theirs	*t = p->data;

	bytes_add(&t->body, at, len);
	return (0);
}

static int
on_message_complete(http_parser *p)
{
	struct theirs	*t = p->data;

	t->msg_done = 1;
	http_parser_pause(p, 1);	/* not the next message */
	return (0);
}

static void
theirs_free(struct theirs *t)
{
	int	i;

	free(t->url.p);
	for (i = 0; i < t->nfields; i++) {
		free(t->name[i].p);
		free(t->value[i].p);
	}
	free(t->body.p);
}

/* Outcomes of one side */
enum { O_WAIT, O_ACCEPT, O_REFUSE };

struct kind {
	char	 name[128];
	int	 listed;
	int	 seen;
	char	 example[160];
};

struct diffstate {
	struct kind	 kinds[MAXKINDS];
	int		 nkinds;
	int		 unlisted;
	int		 mismatches;
	int		 both_accept, both_refuse, undecided, bodies;
};

static void
kinds_load(struct diffstate *d)
{
	char	 path[1024], line[1024];
	FILE	*f;
	char	*top = getenv("TOP");

	snprintf(path, sizeof(path), "%s%s%s", top ? top : "", top ? "/" : "",
	    DIFF_FILE);
	f = fopen(path, "r");
	cr_assert_not_null(f, "cannot open %s", path);
	while (fgets(line, sizeof(line), f) != NULL) {
		char	*bar = strstr(line, " | ");
		char	*e;

		if (line[0] == '#' || bar == NULL)
			continue;
		for (e = bar; e > line && isspace((unsigned char)e[-1]); e--)
			;
		*e = '\0';
		cr_assert_lt(d->nkinds, MAXKINDS);
		cr_assert_lt(strlen(line), sizeof(d->kinds[0].name));
		strlcpy(d->kinds[d->nkinds].name, line,
		    sizeof(d->kinds[0].name));
		d->kinds[d->nkinds].listed = 1;
		d->nkinds++;
	}
	fclose(f);
}

/* Printable, short form of a message for reports. */
static void
escape(const char *in, size_t len, char *out, size_t size)
{
	size_t	i, o = 0;

	for (i = 0; i < len && o + 5 < size; i++) {
		unsigned char	c = in[i];

		if (c == '\r')
			o += snprintf(out + o, size - o, "\\r");
		else if (c == '\n')
			o += snprintf(out + o, size - o, "\\n");
		else if (c < 0x20 || c >= 0x7f || c == '\\')
			o += snprintf(out + o, size - o, "\\x%02x", c);
		else
			out[o++] = c;
	}
	out[o] = '\0';
}

static void
kind_met(struct diffstate *d, const char *name, const char *in, size_t len)
{
	int	i;

	for (i = 0; i < d->nkinds; i++)
		if (strcmp(d->kinds[i].name, name) == 0)
			break;
	if (i == d->nkinds) {
		cr_assert_lt(d->nkinds, MAXKINDS);
		strlcpy(d->kinds[i].name, name, sizeof(d->kinds[0].name));
		d->nkinds++;
	}
	if (d->kinds[i].seen++ == 0)
		escape(in, len, d->kinds[i].example,
		    sizeof(d->kinds[i].example));
	if (!d->kinds[i].listed && d->kinds[i].seen == 1) {
		d->unlisted++;
		cr_expect(0, "disagreement not listed in %s: \"%s\", e.g. "
		    "\"%s\"", DIFF_FILE, name, d->kinds[i].example);
	}
}

static int
same(const char *a, size_t alen, const char *b, size_t blen)
{
	return (alen == blen && (alen == 0 || memcmp(a, b, alen) == 0));
}

static void
mismatch(struct diffstate *d, const char *what, const char *in, size_t len)
{
	char	ex[200];

	escape(in, len, ex, sizeof(ex));
	if (d->mismatches++ < 20)
		cr_expect(0, "both accept, %s differs: \"%s\"", what, ex);
}

/* Ours: decode the body of an accepted request. */
static int
our_body(const struct http_msg *m, const char *buf, size_t len,
    struct bytes *body, const char **why)
{
	const char		*p = buf + m->head_len;
	size_t			 avail = len - m->head_len;
	struct http_chunked	 ch;

	if (m->framing == HTTP_BODY_NONE)
		return (O_ACCEPT);
	if (m->framing == HTTP_BODY_LENGTH) {
		if (avail < m->content_length)
			return (O_WAIT);
		bytes_add(body, p, m->content_length);
		return (O_ACCEPT);
	}
	http_chunked_init(&ch, 0);
	while (avail > 0 && !ch.done) {
		size_t	doff, dlen;
		ssize_t	r;

		r = http_chunked_next(&ch, p, avail, &doff, &dlen);

		if (r == -1) {
			*why = ch.errmsg;
			return (O_REFUSE);
		}
		if (dlen > 0)
			bytes_add(body, p + doff, dlen);
		if (r == 0)
			break;
		p += r;
		avail -= r;
	}
	return (ch.done ? O_ACCEPT : O_WAIT);
}

/* Run both parsers over one message; note what they disagree on. */
static void
compare(struct diffstate *d, const char *buf, size_t len, int response,
    enum http_method req_method)
{
	http_parser_settings	 s;
	http_parser		 hp;
	struct theirs		*t;
	struct http_msg		 m;
	struct http_hdr		 hdrs[HTTP_MAXHEADERS];
	struct bytes		 body = { NULL, 0 };
	enum http_errno		 herr;
	const char		*side = response ? "response" : "request";
	const char		*why = NULL;
	char			 kind[160];
	int			 rc, ours, theirs, i;

	/* ours */
	http_msg_init(&m, response, NULL, hdrs);
	m.req_method = req_method;
	rc = http_parse(&m, buf, len);
	ours = rc == HTTP_DONE ? O_ACCEPT : rc == HTTP_ERROR ? O_REFUSE :
	    O_WAIT;

	/* theirs */
	t = calloc(1, sizeof(*t));
	cr_assert_not_null(t);
	t->response = response;
	http_parser_settings_init(&s);
	s.on_url = on_url;
	s.on_header_field = on_field;
	s.on_header_value = on_value;
	s.on_headers_complete = on_headers_complete;
	s.on_body = on_body;
	s.on_message_complete = on_message_complete;
	http_parser_init(&hp, response ? HTTP_RESPONSE : HTTP_REQUEST);
	hp.data = t;
	http_parser_execute(&hp, &s, buf, len);
	herr = HTTP_PARSER_ERRNO(&hp);
	if (t->headers_done)
		theirs = O_ACCEPT;
	else if (herr != HPE_OK && herr != HPE_PAUSED)
		theirs = O_REFUSE;
	else
		theirs = O_WAIT;

	if (ours == O_REFUSE && theirs == O_ACCEPT) {
		snprintf(kind, sizeof(kind), "%s: we refuse \"%s\"", side,
		    m.errmsg);
		kind_met(d, kind, buf, len);
		goto done;
	}
	if (ours == O_ACCEPT && theirs == O_REFUSE) {
		snprintf(kind, sizeof(kind), "%s: they refuse %s", side,
		    http_errno_name(herr));
		kind_met(d, kind, buf, len);
		goto done;
	}
	if (ours == O_WAIT && theirs == O_ACCEPT) {
		snprintf(kind, sizeof(kind), "%s: we want more, they accept",
		    side);
		kind_met(d, kind, buf, len);
		goto done;
	}
	if (ours == O_REFUSE && theirs == O_REFUSE) {
		d->both_refuse++;
		goto done;
	}
	if (ours != O_ACCEPT || theirs != O_ACCEPT) {
		d->undecided++;
		goto done;
	}

	/* both accept the head: it must read the same */
	d->both_accept++;
	/* we read 1.2 and up as 1.1 (RFC 9112 2.3); it keeps the number */
	if (hp.http_major != 1 || (hp.http_minor > 0) != m.minor)
		mismatch(d, "version", buf, len);
	if (response) {
		if ((int)hp.status_code != m.status)
			mismatch(d, "status", buf, len);
	} else {
		const char	*hm = http_method_str(hp.method);

		if (!same(buf + m.method_off, m.method_len, hm, strlen(hm)))
			mismatch(d, "method", buf, len);
		if (!same(buf + m.target_off, m.target_len, t->url.p,
		    t->url.len))
			mismatch(d, "target", buf, len);
	}
	if (t->head_fields != m.nhdrs)
		mismatch(d, "number of fields", buf, len);
	else
		for (i = 0; i < m.nhdrs; i++) {
			struct slice	v = http_hdr_value(buf, &hdrs[i]);

			if (!same(buf + hdrs[i].name, hdrs[i].namelen,
			    t->name[i].p, t->name[i].len))
				mismatch(d, "field name", buf, len);
			/* they keep trailing OWS, not part of the value
			 * (RFC 9110 section 5.5) */
			while (t->value[i].len > 0 &&
			    (t->value[i].p[t->value[i].len - 1] == ' ' ||
			    t->value[i].p[t->value[i].len - 1] == '\t'))
				t->value[i].len--;
			if (!same(v.p, v.len, t->value[i].p, t->value[i].len))
				mismatch(d, "field value", buf, len);
		}
	if (response)
		goto done;

	/* and the body */
	ours = our_body(&m, buf, len, &body, &why);
	if (t->msg_done)
		theirs = O_ACCEPT;
	else if (herr != HPE_OK && herr != HPE_PAUSED)
		theirs = O_REFUSE;
	else
		theirs = O_WAIT;
	if (ours == O_REFUSE && theirs == O_ACCEPT) {
		snprintf(kind, sizeof(kind), "request body: we refuse \"%s\"",
		    why);
		kind_met(d, kind, buf, len);
	} else if (ours == O_ACCEPT && theirs == O_REFUSE) {
		snprintf(kind, sizeof(kind), "request body: they refuse %s",
		    http_errno_name(herr));
		kind_met(d, kind, buf, len);
	} else if (ours == O_ACCEPT && theirs == O_ACCEPT) {
		d->bodies++;
		if (!same(body.p, body.len, t->body.p, t->body.len))
			mismatch(d, "body", buf, len);
	}
 done:
	free(body.p);
	theirs_free(t);
	free(t);
}

/* xorshift64*: the same mutations on every run */
static uint64_t	rng_state = 0x9e3779b97f4a7c15ULL;

static uint32_t
rng(uint32_t n)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return ((uint32_t)((rng_state * 0x2545f4914f6cdd1dULL) >> 32) % n);
}

/* One random change to buf[0..*len), which has room for 2 * *len + 2. */
static void
mutate(char *buf, size_t *len)
{
	static const char	 ins[] = { '\r', '\n', ' ', '\t', '\0', ':',
				    ',' };
	static const char	 flip[] = { '\r', '\n', ' ', '\t', '\0', ':',
				    ',', ';', '"', '\\', 'a', '0', '9', 'f',
				    '\x7f', '\x80', '\xff', '\x0b', '+', '-' };
	size_t			 n = *len, at, s, e, i;

	switch (rng(4)) {
	case 0:		/* byte flip */
		if (n == 0)
			return;
		at = rng(n);
		buf[at] = rng(2) ? flip[rng(sizeof(flip))] : (char)rng(256);
		break;
	case 1:		/* insertion */
		at = rng(n + 1);
		memmove(buf + at + 1, buf + at, n - at);
		buf[at] = ins[rng(sizeof(ins))];
		*len = n + 1;
		break;
	case 2:		/* deletion */
		if (n == 0)
			return;
		at = rng(n);
		memmove(buf + at, buf + at + 1, n - at - 1);
		*len = n - 1;
		break;
	case 3:		/* duplicate a line */
		if (n == 0)
			return;
		at = rng(n);
		for (s = at; s > 0 && buf[s - 1] != '\n'; s--)
			;
		for (e = at; e < n && buf[e] != '\n'; e++)
			;
		if (e < n)
			e++;
		if (e - s > n)
			return;
		memmove(buf + e + (e - s), buf + e, n - e);
		for (i = 0; i < e - s; i++)
			buf[e + i] = buf[s + i];
		*len = n + (e - s);
		break;
	}
}

static void
report(struct diffstate *d, const char *what, int n)
{
	int	i;

	cr_log_info("%s: %d messages: both accept %d (%d bodies), both "
	    "refuse %d, undecided %d", what, n, d->both_accept, d->bodies,
	    d->both_refuse, d->undecided);
	for (i = 0; i < d->nkinds; i++)
		if (d->kinds[i].seen > 0)
			cr_log_info("  %5d  %s%s\n         e.g. \"%s\"",
			    d->kinds[i].seen, d->kinds[i].name,
			    d->kinds[i].listed ? "" : "  (NOT LISTED)",
			    d->kinds[i].example);
	cr_expect_eq(d->unlisted, 0, "%d kinds of disagreement not listed",
	    d->unlisted);
	cr_expect_eq(d->mismatches, 0, "%d fields read differently",
	    d->mismatches);
}

static void
run(const struct hcase *tab, size_t n, int response, int nmut,
    const char *what)
{
	struct diffstate	*d;
	size_t			 i, len;
	int			 k;

	d = calloc(1, sizeof(*d));
	cr_assert_not_null(d);
	kinds_load(d);
	for (i = 0; i < n; i++) {
		char	*buf;

		buf = corpus_input(tab[i].in, tab[i].len, tab[i].rep,
		    tab[i].nrep, &len);
		cr_assert_not_null(buf);
		compare(d, buf, len, response, tab[i].req_method);
		free(buf);
	}
	for (k = 0; k < nmut; k++) {
		const struct hcase	*c;
		char			*in, *buf;
		int			 m, nm;

		do {
			c = &tab[rng(n)];
		} while (c->nrep > 0 || c->len > MUT_MAXLEN);
		in = corpus_input(c->in, c->len, NULL, 0, &len);
		cr_assert_not_null(in);
		/* three changes at most, each at most doubling it */
		buf = malloc(8 * (len + 2));
		cr_assert_not_null(buf);
		memcpy(buf, in, len);
		nm = 1 + rng(3);
		for (m = 0; m < nm; m++)
			mutate(buf, &len);
		free(in);
		in = malloc(len ? len : 1);	/* exact size, for ASan */
		cr_assert_not_null(in);
		memcpy(in, buf, len);
		compare(d, in, len, response, c->req_method);
		free(in);
		free(buf);
	}
	report(d, what, (int)n + nmut);
	free(d);
}

/* The chunked bodies of the corpus, as requests; mutations of the body. */
static void
run_chunked(void)
{
	static const char	 head[] = "POST /c HTTP/1.1\r\nHost: a\r\n"
				    "Transfer-Encoding: chunked\r\n\r\n";
	const size_t		 hl = sizeof(head) - 1;
	const size_t		 n = nitems(corpus_chunked);
	struct diffstate	*d;
	size_t			 len;
	int			 k;

	d = calloc(1, sizeof(*d));
	cr_assert_not_null(d);
	kinds_load(d);
	for (k = -(int)n; k < NMUT_CHUNKED; k++) {
		const struct ccase	*c;
		char			*body, *buf;
		int			 m, nm;

		/* first each case as it is, then mutations */
		c = &corpus_chunked[k < 0 ? (size_t)(k + (int)n) : rng(n)];
		if (k >= 0 && c->nrep > 0)
			continue;
		body = corpus_input(c->in, c->len, c->rep, c->nrep, &len);
		cr_assert_not_null(body);
		buf = malloc(hl + 8 * (len + 2));
		cr_assert_not_null(buf);
		memcpy(buf + hl, body, len);
		free(body);
		nm = k < 0 ? 0 : 1 + rng(3);
		for (m = 0; m < nm; m++)
			mutate(buf + hl, &len);
		memcpy(buf, head, hl);
		body = malloc(hl + len);	/* exact size, for ASan */
		cr_assert_not_null(body);
		memcpy(body, buf, hl + len);
		compare(d, body, hl + len, 0, HTTP_M_OTHER);
		free(body);
		free(buf);
	}
	report(d, "chunked requests", (int)n + NMUT_CHUNKED);
	free(d);
}

TestSuite(http_diff, .timeout = 600);

Test(http_diff, requests)
{
	run(corpus_req, nitems(corpus_req), 0, NMUT_REQ, "requests");
}

Test(http_diff, responses)
{
	run(corpus_rsp, nitems(corpus_rsp), 1, NMUT_RSP, "responses");
}

Test(http_diff, chunked)
{
	run_chunked();
}
