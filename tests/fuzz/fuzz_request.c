/*
 * fuzz_request.c: request heads, and the chunked bodies after them.
 * The first byte picks the limits (tests/fuzz/fuzz.h); the rest is the
 * message.  Checks: no read past the length given; a parse split at a
 * point that depends on the data ends as the whole one does; accepted
 * heads hold together (offsets inside the head, Host for 1.1, framing
 * from one of CL or TE, limits kept); the target of an accepted request
 * normalizes to a path that never climbs above "/".
 */
#include <sys/types.h>

#include "fuzz.h"

static void
check_target(const char *t, size_t len)
{
	struct http_target	 tg;
	const char		*why, *p;
	size_t			 i;

	if (http_target_parse(t, len, &tg, &why) == -1)
		return;
	p = tg.path;
	CHECK(tg.pathlen > 0 && p[0] == '/' && strlen(p) == tg.pathlen);
	for (i = 0; i + 1 < tg.pathlen; i++) {
		CHECK(!(p[i] == '/' && p[i + 1] == '/'));
		if (p[i] == '/' && p[i + 1] == '.')
			CHECK(!(i + 2 == tg.pathlen || p[i + 2] == '/' ||
			    (p[i + 2] == '.' && (i + 3 == tg.pathlen ||
			    p[i + 3] == '/'))));
	}
}

static void
check_body(const struct http_msg *m, const uint8_t *d, size_t len)
{
	struct http_chunked	 ch;
	const uint8_t		*p = d + m->head_len;
	size_t			 avail = len - m->head_len;
	uint64_t		 total = 0;

	http_chunked_init(&ch, m->lim->max_head);
	while (avail > 0) {
		char	*c = fuzz_copy(p, avail);
		size_t	 doff, dlen;
		ssize_t	 r;

		r = http_chunked_next(&ch, c, avail, &doff, &dlen);
		free(c);
		if (r == -1) {
			CHECK(ch.error == 400 && ch.errmsg != NULL);
			return;
		}
		CHECK((size_t)r <= avail && doff + dlen <= (size_t)r);
		total += dlen;
		if (ch.done || r == 0)
			break;
		p += r;
		avail -= r;
	}
	CHECK(total == ch.total);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct http_hdr		 h1[HTTP_MAXHEADERS];
	struct http_hdr		 h2[HTTP_MAXHEADERS];
	struct http_msg		 a, b;
	const struct http_limits *lim;
	size_t			 k;
	int			 ra, rb;

	if (size == 0)
		return (0);
	lim = &fuzz_limits[data[0] % nitems(fuzz_limits)];
	data++;
	size--;

	http_msg_init(&a, 0, lim, h1);
	ra = fuzz_parse(&a, data, size);
	k = fuzz_split(data, size);
	http_msg_init(&b, 0, lim, h2);
	rb = fuzz_parse(&b, data, k);
	if (rb == HTTP_AGAIN)
		rb = fuzz_parse(&b, data, size);
	fuzz_same_msg(&a, ra, &b, rb);

	if (ra == HTTP_ERROR) {
		CHECK(a.errmsg != NULL);
		CHECK(a.error == 400 || a.error == 413 || a.error == 414 ||
		    a.error == 417 || a.error == 431 || a.error == 501 ||
		    a.error == 505);
		return (0);
	}
	if (ra == HTTP_AGAIN) {
		CHECK(size < lim->max_head + a.skipped);
		return (0);
	}
	fuzz_check_done(&a, size);
	CHECK(a.method_len > 0 && a.method_len <= HTTP_MAXMETHOD);
	CHECK(a.target_len > 0 &&
	    a.target_off + a.target_len < a.head_len);
	CHECK(a.method_len + 1 + a.target_len + 9 <= lim->max_reqline);
	if (a.minor == 1)
		CHECK(a.host != -1);
	CHECK(!((a.flags & HTTP_F_TE) && (a.flags & HTTP_F_CL)));
	CHECK(a.framing == HTTP_BODY_NONE || a.framing == HTTP_BODY_LENGTH ||
	    a.framing == HTTP_BODY_CHUNKED);
	if (a.framing == HTTP_BODY_LENGTH)
		CHECK(a.content_length > 0 && (lim->max_body == 0 ||
		    a.content_length <= lim->max_body));
	if (a.flags & HTTP_F_TE)
		CHECK(a.framing == HTTP_BODY_CHUNKED && a.minor == 1);
	if (a.form == HTTP_T_AUTHORITY)
		CHECK(a.method == HTTP_M_CONNECT);
	if (a.form == HTTP_T_ASTERISK)
		CHECK(a.method == HTTP_M_OPTIONS);
	if (a.method == HTTP_M_CONNECT)
		CHECK(a.form == HTTP_T_AUTHORITY);
	if (a.form == HTTP_T_ORIGIN || a.form == HTTP_T_ABSOLUTE)
		check_target((const char *)data + a.target_off, a.target_len);
	if (a.framing == HTTP_BODY_CHUNKED)
		check_body(&a, data, size);
	return (0);
}
