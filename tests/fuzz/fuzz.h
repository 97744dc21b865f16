/*
 * fuzz.h: what the HTTP parser's libFuzzer harnesses share.  Every
 * parser call gets a fresh malloc'd copy of exactly the bytes it may
 * read, so that ASan catches a read past the length given; a broken
 * invariant aborts.
 */
#ifndef TESTS_FUZZ_H
#define TESTS_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define CHECK(cond)	do {						\
	if (!(cond)) {							\
		fprintf(stderr, "%s:%d: invariant broken: %s\n",	\
		    __FILE__, __LINE__, #cond);				\
		abort();						\
	}								\
} while (0)

/* Limits a harness may pick with its first byte */
static const struct http_limits fuzz_limits[] = {
	{ HTTP_MAXREQLINE, HTTP_MAXHEAD, HTTP_MAXHEADERS, HTTP_MAXBODY,
	    HTTP_HEADER_TIMEOUT, HTTP_BODY_TIMEOUT, HTTP_IDLE_TIMEOUT,
	    HTTP_SEND_TIMEOUT },
	{ 64, 256, 5, 10, HTTP_HEADER_TIMEOUT, HTTP_BODY_TIMEOUT,
	    HTTP_IDLE_TIMEOUT, HTTP_SEND_TIMEOUT },
	{ HTTP_MAXREQLINE, HTTP_MAXHEAD, HTTP_MAXHEADERS, 0,
	    HTTP_HEADER_TIMEOUT, HTTP_BODY_TIMEOUT, HTTP_IDLE_TIMEOUT,
	    HTTP_SEND_TIMEOUT }
};

static inline char *
fuzz_copy(const void *p, size_t len)
{
	char	*c = malloc(len ? len : 1);

	CHECK(c != NULL);
	if (len > 0)
		memcpy(c, p, len);
	return (c);
}

/* A split point that depends on the data, in [0, len]. */
static inline size_t
fuzz_split(const uint8_t *d, size_t len)
{
	uint32_t	h = 2166136261u;
	size_t		i;

	for (i = 0; i < len && i < 64; i++)
		h = (h ^ d[i]) * 16777619u;
	return (len ? h % (len + 1) : 0);
}

/* One http_parse() call on an exact copy. */
static inline int
fuzz_parse(struct http_msg *m, const uint8_t *d, size_t len)
{
	char	*c = fuzz_copy(d, len);
	int	 rc = http_parse(m, c, len);

	free(c);
	return (rc);
}

/* Two parses of the same bytes came to the same thing. */
static inline void
fuzz_same_msg(const struct http_msg *a, int ra, const struct http_msg *b,
    int rb)
{
	int	i;

	CHECK(ra == rb);
	CHECK(a->error == b->error);
	CHECK((a->errmsg == NULL) == (b->errmsg == NULL));
	CHECK(a->errmsg == NULL || strcmp(a->errmsg, b->errmsg) == 0);
	CHECK(a->method == b->method && a->method_off == b->method_off &&
	    a->method_len == b->method_len);
	CHECK(a->target_off == b->target_off && a->target_len == b->target_len);
	CHECK(a->form == b->form && a->minor == b->minor &&
	    a->status == b->status);
	CHECK(a->reason_off == b->reason_off && a->reason_len == b->reason_len);
	CHECK(a->nhdrs == b->nhdrs && a->host == b->host);
	CHECK(a->flags == b->flags && a->framing == b->framing);
	CHECK(a->content_length == b->content_length);
	CHECK(a->head_len == b->head_len && a->skipped == b->skipped);
	for (i = 0; i < a->nhdrs; i++)
		CHECK(memcmp(&a->hdrs[i], &b->hdrs[i], sizeof(a->hdrs[i])) ==
		    0);
}

/* What holds of any head the parser accepted. */
static inline void
fuzz_check_done(const struct http_msg *m, size_t len)
{
	const struct http_limits	*lim = m->lim;
	int				 i;

	CHECK(m->error == 0);
	CHECK(m->head_len <= len && m->head_len <= lim->max_head + m->skipped);
	CHECK(m->head_len >= 4);
	CHECK(m->minor == 0 || m->minor == 1);
	CHECK(m->nhdrs >= 0 && (uint32_t)m->nhdrs <= lim->max_headers);
	for (i = 0; i < m->nhdrs; i++) {
		const struct http_hdr	*h = &m->hdrs[i];

		CHECK(h->namelen > 0);
		CHECK(h->name + h->namelen < m->head_len);
		CHECK(h->value + h->valuelen <= m->head_len);
		CHECK(h->value >= h->name + h->namelen + 1);
	}
	CHECK(m->host == -1 || (m->host >= 0 && m->host < m->nhdrs));
	if (m->framing == HTTP_BODY_CHUNKED)
		CHECK(m->flags & HTTP_F_TE);
	if (m->framing == HTTP_BODY_LENGTH)
		CHECK(m->flags & HTTP_F_CL);
}

#endif
