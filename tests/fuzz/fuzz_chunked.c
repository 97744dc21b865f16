/*
 * fuzz_chunked.c: the chunked decoder.  The first byte picks the limit
 * on trailer bytes (small or the default); the rest is the body.
 * Checks: no read past the length given; every span of data is inside
 * what the call consumed; decoding in two parts split at a point that
 * depends on the data, and byte by byte, gives the same data, the same
 * end and the same leftover as decoding it whole.
 */
#include <sys/types.h>

#include "fuzz.h"

struct out {
	int	 rc;		/* 1 done, 0 more, -1 error */
	char	*data;
	size_t	 datalen;
	size_t	 used;
	const char *errmsg;
};

static void
feed(struct http_chunked *ch, const uint8_t *d, size_t len, struct out *o)
{
	while (o->rc == 0 && o->used < len) {
		size_t	 n = len - o->used, doff, dlen;
		char	*c = fuzz_copy(d + o->used, n);
		ssize_t	 r = http_chunked_next(ch, c, n, &doff, &dlen);

		if (r == -1) {
			CHECK(ch->error == 400 && ch->errmsg != NULL);
			o->rc = -1;
			o->errmsg = ch->errmsg;
			free(c);
			return;
		}
		CHECK((size_t)r <= n && doff + dlen <= (size_t)r);
		if (dlen > 0) {
			o->data = realloc(o->data, o->datalen + dlen);
			CHECK(o->data != NULL);
			memcpy(o->data + o->datalen, c + doff, dlen);
			o->datalen += dlen;
		}
		free(c);
		o->used += r;
		if (ch->done)
			o->rc = 1;
		else if (r == 0)
			break;
	}
	CHECK(ch->total == o->datalen);
}

static void
same(const struct out *a, const struct out *b)
{
	CHECK(a->rc == b->rc);
	if (a->rc == -1) {
		CHECK(strcmp(a->errmsg, b->errmsg) == 0);
		return;
	}
	CHECK(a->datalen == b->datalen);
	CHECK(a->datalen == 0 || memcmp(a->data, b->data, a->datalen) == 0);
	if (a->rc == 1)
		CHECK(a->used == b->used);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct http_chunked	ch;
	struct out		a, b, c;
	uint32_t		tmax;
	size_t			k, i;

	if (size == 0)
		return (0);
	tmax = (data[0] & 1) ? 16 : 0;
	data++;
	size--;

	memset(&a, 0, sizeof(a));
	http_chunked_init(&ch, tmax);
	feed(&ch, data, size, &a);
	CHECK(a.datalen <= size);

	memset(&b, 0, sizeof(b));
	http_chunked_init(&ch, tmax);
	k = fuzz_split(data, size);
	feed(&ch, data, k, &b);
	feed(&ch, data, size, &b);
	same(&a, &b);

	if (size <= 512) {
		memset(&c, 0, sizeof(c));
		http_chunked_init(&ch, tmax);
		for (i = 1; i <= size && c.rc == 0; i++)
			feed(&ch, data, i, &c);
		same(&a, &c);
		free(c.data);
	}
	free(a.data);
	free(b.data);
	return (0);
}
