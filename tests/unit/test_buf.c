/*
 * test_buf.c: growable buffers with a hard limit, and slices.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "buf.h"

/* A copy of what a buffer looked like, to prove a failure changed nothing. */
struct snap {
	char	*data;
	size_t	 off, len, cap, max;
	char	*bytes;
};

static void
snap_take(struct snap *s, const struct buf *b)
{
	s->data = b->data;
	s->off = b->off;
	s->len = b->len;
	s->cap = b->cap;
	s->max = b->max;
	s->bytes = malloc(b->len - b->off + 1);
	cr_assert_not_null(s->bytes);
	memcpy(s->bytes, b->data ? b->data + b->off : "", b->len - b->off);
}

static void
snap_check(struct snap *s, const struct buf *b)
{
	cr_assert_eq(b->data, s->data, "data moved");
	cr_assert_eq(b->off, s->off, "off %zu, was %zu", b->off, s->off);
	cr_assert_eq(b->len, s->len, "len %zu, was %zu", b->len, s->len);
	cr_assert_eq(b->cap, s->cap, "cap %zu, was %zu", b->cap, s->cap);
	cr_assert_eq(b->max, s->max);
	cr_assert(s->len == s->off ||
	    memcmp(buf_head(b), s->bytes, s->len - s->off) == 0,
	    "bytes changed");
	free(s->bytes);
	s->bytes = NULL;
}

static void
fill(struct buf *b, char c, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++)
		cr_assert_eq(buf_putc(b, c), 0, "putc %zu of %zu", i, n);
}

Test(buf, fresh)
{
	struct buf	b;

	buf_init(&b, 100);
	cr_assert_eq(buf_used(&b), 0);
	cr_assert_eq(buf_room(&b), 100);
	cr_assert_null(b.data);
	cr_assert_str_eq(buf_cstr(&b), "");
	cr_assert_eq(buf_used(&b), 0, "the terminator is not counted");
	buf_free(&b);
	buf_free(&b);		/* twice is harmless */
	cr_assert_null(b.data);
}

Test(buf, append_and_grow)
{
	struct buf	 b;
	char		*ref;
	size_t		 i, n = 100000, lastcap = 0;

	buf_init(&b, 1024 * 1024);
	cr_assert_not_null(ref = malloc(n));
	for (i = 0; i < n; i++)
		ref[i] = 'a' + i % 26;
	for (i = 0; i < n; i += 7) {
		size_t	k = n - i < 7 ? n - i : 7;

		cr_assert_eq(buf_append(&b, ref + i, k), 0);
		if (b.cap != lastcap) {
			/* the first allocation, then doublings */
			if (lastcap == 0)
				cr_assert_eq(b.cap, BUF_MINALLOC);
			else
				cr_assert_eq(b.cap, 2 * lastcap,
				    "cap %zu after %zu", b.cap, lastcap);
			lastcap = b.cap;
		}
	}
	cr_assert_eq(buf_used(&b), n);
	cr_assert(memcmp(buf_head(&b), ref, n) == 0);
	cr_assert_geq(b.cap, n);
	cr_assert_lt(b.cap, 2 * n, "grew too far: %zu", b.cap);
	free(ref);
	buf_free(&b);
}

Test(buf, never_allocates_past_limit)
{
	struct buf	b;

	buf_init(&b, 100);
	cr_assert_eq(buf_append(&b, "x", 1), 0);
	cr_assert_leq(b.cap, 100, "small limit, cap %zu", b.cap);
	buf_free(&b);

	buf_init(&b, 3000);
	fill(&b, 'y', 3000);
	cr_assert_eq(b.cap, 3000, "cap %zu", b.cap);
	cr_assert_eq(buf_putc(&b, 'z'), -1);
	cr_assert_eq(errno, ENOBUFS);
	buf_free(&b);
}

/*
 * An append that would pass the limit fails with ENOBUFS and leaves the
 * buffer as it was; one that reaches it exactly succeeds.
 */
static const struct {
	size_t	max;
	size_t	pre;		/* bytes appended first */
	size_t	consumed;	/* then consumed */
	size_t	n;		/* the append under test */
	int	ok;
} limit_cases[] = {
	{ 16, 0, 0, 16, 1 },
	{ 16, 0, 0, 17, 0 },
	{ 16, 15, 0, 1, 1 },
	{ 16, 15, 0, 2, 0 },
	{ 16, 16, 0, 1, 0 },
	{ 16, 16, 10, 10, 1 },	/* consumed bytes are room again */
	{ 16, 16, 10, 11, 0 },
	{ 16, 16, 16, 16, 1 },
	{ 0, 0, 0, 1, 0 },
	{ 1, 0, 0, 1, 1 },
	{ 1, 1, 0, 1, 0 },
	{ 4096, 4000, 0, 96, 1 },
	{ 4096, 4000, 0, 97, 0 },
	{ 4096, 4000, 3999, 4095, 1 },
	{ 4096, 4000, 3999, 4096, 0 },
	{ 1 << 20, 0, 0, (1 << 20) + 1, 0 },
	{ 1 << 20, 0, 0, 1 << 20, 1 },
};

Test(buf, hard_limit_table)
{
	size_t	i;

	for (i = 0; i < nitems(limit_cases); i++) {
		struct buf	 b;
		struct snap	 s;
		char		*src;
		size_t		 j;
		int		 rv;

		buf_init(&b, limit_cases[i].max);
		for (j = 0; j < limit_cases[i].pre; j++)
			cr_assert_eq(buf_putc(&b, '0' + j % 10), 0);
		buf_consume(&b, limit_cases[i].consumed);
		cr_assert_not_null(src = malloc(limit_cases[i].n));
		memset(src, 'n', limit_cases[i].n);
		snap_take(&s, &b);
		errno = 0;
		rv = buf_append(&b, src, limit_cases[i].n);
		if (limit_cases[i].ok) {
			cr_assert_eq(rv, 0, "case %zu: refused", i);
			cr_assert_eq(buf_used(&b), limit_cases[i].pre -
			    limit_cases[i].consumed + limit_cases[i].n,
			    "case %zu", i);
			cr_assert(s.len == s.off || memcmp(buf_head(&b),
			    s.bytes, s.len - s.off) == 0,
			    "case %zu: old bytes", i);
			cr_assert(memcmp(buf_head(&b) + (s.len - s.off), src,
			    limit_cases[i].n) == 0, "case %zu: new bytes", i);
			cr_assert_leq(buf_used(&b), b.max);
			free(s.bytes);
		} else {
			cr_assert_eq(rv, -1, "case %zu: accepted", i);
			cr_assert_eq(errno, ENOBUFS, "case %zu: errno %d", i,
			    errno);
			snap_check(&s, &b);
		}
		free(src);
		buf_free(&b);
	}
}

Test(buf, reserve_overflow)
{
	struct buf	b;
	struct snap	s;

	buf_init(&b, 64);
	cr_assert_eq(buf_append(&b, "abc", 3), 0);
	snap_take(&s, &b);
	cr_assert_eq(buf_reserve(&b, SIZE_MAX), -1);
	cr_assert_eq(errno, ENOBUFS);
	cr_assert_eq(buf_reserve(&b, SIZE_MAX - 2), -1);
	cr_assert_eq(errno, ENOBUFS);
	snap_check(&s, &b);
	buf_free(&b);

	/* a limit of SIZE_MAX must not wrap either */
	buf_init(&b, SIZE_MAX);
	cr_assert_eq(buf_append(&b, "abc", 3), 0);
	cr_assert_eq(buf_reserve(&b, SIZE_MAX), -1);
	cr_assert_eq(errno, ENOBUFS);
	cr_assert_eq(buf_used(&b), 3);
	buf_free(&b);
}

Test(buf, append_zero_at_limit)
{
	struct buf	b;

	buf_init(&b, 4);
	cr_assert_eq(buf_append(&b, "abcd", 4), 0);
	cr_assert_eq(buf_append(&b, "", 0), 0);
	cr_assert_eq(buf_append(&b, NULL, 0), 0);
	cr_assert_eq(buf_used(&b), 4);
	buf_free(&b);
}

Test(buf, consume_and_compact)
{
	struct buf	b;

	buf_init(&b, 1024);
	cr_assert_eq(buf_append(&b, "hello, world", 12), 0);
	buf_consume(&b, 7);
	cr_assert_eq(buf_used(&b), 5);
	cr_assert_eq(b.off, 7);
	cr_assert(memcmp(buf_head(&b), "world", 5) == 0);
	buf_compact(&b);
	cr_assert_eq(b.off, 0);
	cr_assert_eq(b.len, 5);
	cr_assert(memcmp(b.data, "world", 5) == 0);
	buf_compact(&b);			/* nothing to do */
	cr_assert_eq(b.len, 5);

	buf_consume(&b, 5);			/* everything: back to 0 */
	cr_assert_eq(b.off, 0);
	cr_assert_eq(b.len, 0);
	cr_assert_eq(buf_append(&b, "xy", 2), 0);
	buf_consume(&b, 1000);			/* more than held */
	cr_assert_eq(buf_used(&b), 0);
	cr_assert_eq(b.off, 0);
	buf_consume(&b, 0);
	cr_assert_eq(buf_used(&b), 0);

	cr_assert_eq(buf_append(&b, "abc", 3), 0);
	buf_consume(&b, 3);
	buf_compact(&b);
	cr_assert_eq(b.len, 0);
	buf_free(&b);
}

/* Reclaiming consumed bytes moves the rest to the front, without growing. */
Test(buf, reserve_reclaims_consumed)
{
	struct buf	 b;
	char		*data;
	size_t		 cap, i;

	buf_init(&b, 1 << 20);
	fill(&b, 'a', 1000);
	fill(&b, 'b', 24);
	cap = b.cap;
	data = b.data;
	cr_assert_eq(cap, BUF_MINALLOC);
	buf_consume(&b, 1000);
	cr_assert_eq(buf_append(&b, "0123456789", 10), 0);
	cr_assert_eq(b.cap, cap, "grew instead of compacting");
	cr_assert_eq(b.data, data);
	cr_assert_eq(b.off, 0);
	cr_assert_eq(buf_used(&b), 34);
	for (i = 0; i < 24; i++)
		cr_assert_eq(buf_head(&b)[i], 'b');
	cr_assert(memcmp(buf_head(&b) + 24, "0123456789", 10) == 0);
	buf_free(&b);
}

/* A stream through a small buffer: append, consume, again, never growing. */
Test(buf, ring_like_use)
{
	struct buf	b;
	uint32_t	in = 0, out = 0;
	int		round;

	buf_init(&b, 256);
	for (round = 0; round < 10000; round++) {
		uint32_t	k, n = 1 + round % 37, c = 1 + round % 41;

		for (k = 0; k < n && buf_room(&b) > 0; k++) {
			cr_assert_eq(buf_putc(&b, (char)in), 0);
			in++;
		}
		for (k = 0; k < c && buf_used(&b) > 0; k++) {
			cr_assert_eq((unsigned char)buf_head(&b)[0],
			    out & 0xff, "round %d", round);
			buf_consume(&b, 1);
			out++;
		}
		cr_assert_leq(b.cap, 256);
	}
	buf_free(&b);
}

Test(buf, reset_keeps_memory)
{
	struct buf	 b;
	char		*data;

	buf_init(&b, 100);
	cr_assert_eq(buf_append(&b, "abc", 3), 0);
	buf_consume(&b, 1);
	data = b.data;
	buf_reset(&b);
	cr_assert_eq(buf_used(&b), 0);
	cr_assert_eq(b.off, 0);
	cr_assert_eq(b.data, data);
	cr_assert_eq(buf_append(&b, "z", 1), 0);
	cr_assert_str_eq(buf_cstr(&b), "z");
	buf_free(&b);
}

Test(buf, printf_small_and_growing)
{
	struct buf	 b;
	char		*big, *ref;
	size_t		 i, reflen = 0;

	buf_init(&b, 1 << 20);
	cr_assert_eq(buf_printf(&b, "%d-%s", 42, "x"), 0);
	cr_assert_str_eq(buf_cstr(&b), "42-x");
	cr_assert_eq(buf_used(&b), 4);
	cr_assert_eq(buf_printf(&b, "%s", ""), 0);
	cr_assert_eq(buf_used(&b), 4);

	/* one call much larger than the first allocation */
	cr_assert_not_null(big = malloc(5000 + 1));
	memset(big, 'q', 5000);
	big[5000] = '\0';
	cr_assert_eq(buf_printf(&b, "[%s]", big), 0);
	cr_assert_eq(buf_used(&b), 4 + 5002);
	cr_assert(memcmp(buf_head(&b), "42-x[", 5) == 0);
	cr_assert(memcmp(buf_head(&b) + 5, big, 5000) == 0);
	cr_assert_eq(buf_head(&b)[5005], ']');
	free(big);
	buf_free(&b);

	/* many calls crossing every growth step, against a reference */
	buf_init(&b, 1 << 20);
	cr_assert_not_null(ref = malloc(1 << 20));
	for (i = 0; i < 20000; i++) {
		int	n;

		n = snprintf(ref + reflen, (1 << 20) - reflen, "%zu:%x;", i,
		    (unsigned)(i * 2654435761u));
		reflen += n;
		cr_assert_eq(buf_printf(&b, "%zu:%x;", i,
		    (unsigned)(i * 2654435761u)), 0, "call %zu", i);
	}
	cr_assert_eq(buf_used(&b), reflen);
	cr_assert(memcmp(buf_head(&b), ref, reflen) == 0);
	free(ref);
	buf_free(&b);
}

Test(buf, printf_after_consume)
{
	struct buf	b;

	buf_init(&b, 64);
	cr_assert_eq(buf_printf(&b, "%s%s", "01234567890123456789",
	    "01234567890123456789"), 0);
	buf_consume(&b, 30);
	cr_assert_eq(buf_printf(&b, "%s%s", "abcdefghijabcdefghij",
	    "abcdefghijabcdefghij"), 0);
	cr_assert_str_eq(buf_cstr(&b),
	    "0123456789abcdefghijabcdefghijabcdefghijabcdefghij");
	buf_free(&b);
}

/* Formatted output obeys the limit like an append of the same bytes. */
static const struct {
	size_t	max;
	size_t	pre;
	size_t	n;		/* bytes formatted */
	int	ok;
} printf_limit_cases[] = {
	{ 10, 0, 10, 1 },	/* reaches the limit exactly */
	{ 10, 0, 11, 0 },
	{ 10, 5, 5, 1 },
	{ 10, 5, 6, 0 },
	{ 10, 10, 1, 0 },
	{ 10, 10, 0, 1 },
	{ 2000, 1024, 976, 1 },	/* room in the limit, not in the allocation */
	{ 2000, 1024, 977, 0 },
	{ 2000, 1000, 20, 1 },	/* fits in what is allocated */
	{ 1030, 1000, 30, 1 },
	{ 1030, 1000, 31, 0 },
	{ 1024, 1000, 24, 1 },	/* exactly fills the allocation */
	{ 1024, 1000, 25, 0 },
};

Test(buf, printf_limit_table)
{
	size_t	i;

	for (i = 0; i < nitems(printf_limit_cases); i++) {
		struct buf	 b;
		struct snap	 s;
		char		*str;
		size_t		 n = printf_limit_cases[i].n;
		int		 rv;

		buf_init(&b, printf_limit_cases[i].max);
		fill(&b, 'p', printf_limit_cases[i].pre);
		cr_assert_not_null(str = malloc(n + 1));
		memset(str, 's', n);
		str[n] = '\0';
		snap_take(&s, &b);
		errno = 0;
		rv = buf_printf(&b, "%s", str);
		if (printf_limit_cases[i].ok) {
			cr_assert_eq(rv, 0, "case %zu: refused (errno %d)", i,
			    errno);
			cr_assert_eq(buf_used(&b),
			    printf_limit_cases[i].pre + n, "case %zu", i);
			cr_assert(memcmp(buf_head(&b) +
			    printf_limit_cases[i].pre, str, n) == 0,
			    "case %zu", i);
			cr_assert_leq(buf_used(&b), b.max, "case %zu", i);
			free(s.bytes);
		} else {
			cr_assert_eq(rv, -1, "case %zu: accepted", i);
			cr_assert_eq(errno, ENOBUFS, "case %zu", i);
			cr_assert_eq(buf_used(&b), printf_limit_cases[i].pre,
			    "case %zu", i);
			cr_assert(printf_limit_cases[i].pre == 0 ||
			    memcmp(buf_head(&b), s.bytes,
			    printf_limit_cases[i].pre) == 0, "case %zu", i);
			free(s.bytes);
		}
		free(str);
		buf_free(&b);
	}
}

Test(buf, cstr_at_limit)
{
	struct buf	 b;
	char		*s;

	buf_init(&b, 8);
	cr_assert_eq(buf_append(&b, "12345678", 8), 0);
	cr_assert_not_null(s = buf_cstr(&b));
	cr_assert_str_eq(s, "12345678");
	cr_assert_eq(buf_used(&b), 8);
	cr_assert_eq(b.max, 8, "limit restored");
	cr_assert_eq(buf_putc(&b, '9'), -1);
	cr_assert_eq(errno, ENOBUFS);
	buf_consume(&b, 3);
	cr_assert_str_eq(buf_cstr(&b), "45678");
	buf_free(&b);

	buf_init(&b, 0);
	cr_assert_str_eq(buf_cstr(&b), "");
	buf_free(&b);
}

static void
nonblock(int fd)
{
	cr_assert_neq(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK), -1);
}

static void
write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t	w = write(fd, p, n);

		cr_assert_gt(w, 0, "write: %s", strerror(errno));
		p += w;
		n -= w;
	}
}

Test(buf, read_fd_limit)
{
	struct buf	b;
	char		src[200];
	int		p[2];
	size_t		i;

	for (i = 0; i < sizeof(src); i++)
		src[i] = i;
	cr_assert_eq(pipe(p), 0);
	nonblock(p[0]);
	write_all(p[1], src, sizeof(src));

	buf_init(&b, 64);
	cr_assert_eq(buf_read_fd(&b, p[0], 10), 10, "asked for 10");
	cr_assert_eq(buf_read_fd(&b, p[0], 0), 54, "the rest of the limit");
	cr_assert_eq(buf_used(&b), 64);
	cr_assert(memcmp(buf_head(&b), src, 64) == 0);
	errno = 0;
	cr_assert_eq(buf_read_fd(&b, p[0], 0), -1, "full");
	cr_assert_eq(errno, ENOBUFS);
	cr_assert_eq(buf_read_fd(&b, p[0], 1), -1, "full");
	cr_assert_eq(errno, ENOBUFS);
	cr_assert_eq(buf_used(&b), 64);

	buf_consume(&b, 20);
	cr_assert_eq(buf_read_fd(&b, p[0], 1000), 20, "only the room");
	cr_assert_eq(buf_used(&b), 64);
	cr_assert(memcmp(buf_head(&b), src + 20, 64) == 0);
	buf_reset(&b);
	cr_assert_eq(buf_read_fd(&b, p[0], 0), 64);
	cr_assert_eq(buf_read_fd(&b, p[0], 0), -1);
	buf_reset(&b);
	cr_assert_eq(buf_read_fd(&b, p[0], 0), 200 - 148);
	cr_assert(memcmp(buf_head(&b), src + 148, 52) == 0);

	/* nothing waiting, then end of file */
	errno = 0;
	cr_assert_eq(buf_read_fd(&b, p[0], 0), -1);
	cr_assert_eq(errno, EAGAIN);
	close(p[1]);
	cr_assert_eq(buf_read_fd(&b, p[0], 0), 0);
	cr_assert_eq(buf_used(&b), 52);
	close(p[0]);
	buf_free(&b);
}

/* Reading a large stream grows the buffer but never past the limit. */
Test(buf, read_fd_large)
{
	struct buf	 b;
	char		*src;
	size_t		 n = 300000, sent = 0, i;
	int		 sv[2];

	cr_assert_not_null(src = malloc(n));
	for (i = 0; i < n; i++)
		src[i] = (char)(i * 7 + i / 251);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	nonblock(sv[0]);
	nonblock(sv[1]);
	buf_init(&b, n);
	while (buf_used(&b) < n) {
		ssize_t	r;

		if (sent < n) {
			ssize_t	w = write(sv[1], src + sent, n - sent);

			if (w > 0)
				sent += w;
			else
				cr_assert_eq(errno, EAGAIN);
		}
		r = buf_read_fd(&b, sv[0], 0);
		if (r == -1)
			cr_assert_eq(errno, EAGAIN, "errno %d", errno);
		else
			cr_assert_gt(r, 0);
		cr_assert_leq(b.cap, n);
	}
	cr_assert(memcmp(buf_head(&b), src, n) == 0);
	cr_assert_eq(buf_read_fd(&b, sv[0], 0), -1);
	cr_assert_eq(errno, ENOBUFS);
	close(sv[0]);
	close(sv[1]);
	free(src);
	buf_free(&b);
}

Test(buf, write_fd_partial)
{
	struct buf	 b;
	char		*out;
	size_t		 n = 1 << 20, got = 0;
	ssize_t		 w;
	int		 p[2];

	cr_assert_eq(pipe(p), 0);
	nonblock(p[1]);
	nonblock(p[0]);
	buf_init(&b, n);
	while (buf_room(&b) > 0)
		cr_assert_eq(buf_printf(&b, "%c", (char)('a' + buf_used(&b) %
		    26)), 0);
	cr_assert_eq(buf_write_fd(&(struct buf){ .max = 1 }, p[1]), 0,
	    "empty: nothing to write");
	cr_assert_not_null(out = malloc(n));
	while (buf_used(&b) > 0) {
		size_t	before = buf_used(&b);
		ssize_t	r;

		w = buf_write_fd(&b, p[1]);
		if (w == -1)
			cr_assert_eq(errno, EAGAIN);
		else
			cr_assert_eq(buf_used(&b), before - w,
			    "consumes what was written");
		while ((r = read(p[0], out + got, n - got)) > 0)
			got += r;
	}
	cr_assert_eq(got, n);
	for (got = 0; got < n; got++)
		cr_assert_eq(out[got], 'a' + got % 26, "byte %zu", got);
	free(out);
	close(p[0]);
	close(p[1]);
	buf_free(&b);
}

Test(slice, eq_and_caseeq)
{
	static const struct {
		char	s[16];
		size_t	len;
		char	str[16];
		int	eq, caseeq;
	} t[] = {
		{ "abc", 3, "abc", 1, 1 },
		{ "abc", 3, "ABC", 0, 1 },
		{ "abc", 2, "ab", 1, 1 },
		{ "abc", 2, "abc", 0, 0 },
		{ "abc", 3, "ab", 0, 0 },
		{ "", 0, "", 1, 1 },
		{ "x", 0, "", 1, 1 },
		{ "Host", 4, "host", 0, 1 },
		{ "Hosz", 4, "host", 0, 0 },
		{ "a\0c", 3, "a", 0, 0 },
	};
	size_t	i;

	for (i = 0; i < nitems(t); i++) {
		struct slice	s = slice_make(t[i].s, t[i].len);

		cr_expect_eq(slice_eq(s, t[i].str), t[i].eq, "case %zu", i);
		cr_expect_eq(slice_caseeq(s, t[i].str), t[i].caseeq,
		    "case %zu", i);
	}
	/* an empty slice may have no bytes at all */
	cr_expect(slice_eq(slice_make(NULL, 0), ""));
	cr_expect(!slice_eq(slice_make(NULL, 0), "a"));
	cr_expect(slice_caseeq(slice_make(NULL, 0), ""));
}

Test(slice, trim)
{
	static const struct {
		char	in[16];
		char	out[16];
	} t[] = {
		{ "", "" },
		{ " ", "" },
		{ " \t \t", "" },
		{ "a", "a" },
		{ "  a b  ", "a b" },
		{ "\ta\t", "a" },
		{ "\r\na\r\n", "\r\na\r\n" },	/* only SP and HTAB */
		{ "x ", "x" },
		{ " x", "x" },
	};
	size_t	i;

	for (i = 0; i < nitems(t); i++) {
		struct slice	s = slice_trim(slice_make(t[i].in,
		    strlen(t[i].in)));

		cr_expect(slice_eq(s, t[i].out), "case %zu: \"%.*s\"", i,
		    (int)s.len, s.p);
	}
	/* never reads outside the slice */
	{
		char		 z[3] = { ' ', 'q', ' ' };
		struct slice	 s = slice_trim(slice_make(z + 1, 1));

		cr_assert_eq(s.p, z + 1);
		cr_assert_eq(s.len, 1);
	}
}

Test(slice, to_u64_table)
{
	static const struct {
		char		in[32];
		int		ok;
		uint64_t	v;
	} t[] = {
		{ "0", 1, 0 },
		{ "1", 1, 1 },
		{ "007", 1, 7 },
		{ "65535", 1, 65535 },
		{ "4294967296", 1, 4294967296ULL },
		{ "18446744073709551615", 1, UINT64_MAX },
		{ "018446744073709551615", 1, UINT64_MAX },
		{ "18446744073709551614", 1, UINT64_MAX - 1 },
		{ "18446744073709551616", 0, 0 },	/* 2^64 */
		{ "18446744073709551620", 0, 0 },
		{ "99999999999999999999", 0, 0 },
		{ "184467440737095516150", 0, 0 },
		{ "", 0, 0 },
		{ "-1", 0, 0 },
		{ "+1", 0, 0 },
		{ "-0", 0, 0 },
		{ " 1", 0, 0 },
		{ "1 ", 0, 0 },
		{ "1 2", 0, 0 },
		{ "\t1", 0, 0 },
		{ "0x10", 0, 0 },
		{ "1e3", 0, 0 },
		{ "1.0", 0, 0 },
		{ "12a", 0, 0 },
		{ "a12", 0, 0 },
		{ "/", 0, 0 },
		{ ":", 0, 0 },
	};
	size_t	i;

	for (i = 0; i < nitems(t); i++) {
		uint64_t	v = 12345;
		int		rv;

		rv = slice_to_u64(slice_make(t[i].in, strlen(t[i].in)), &v);
		if (t[i].ok) {
			cr_expect_eq(rv, 0, "\"%s\" refused", t[i].in);
			cr_expect_eq(v, t[i].v, "\"%s\" gave %llu", t[i].in,
			    (unsigned long long)v);
		} else {
			cr_expect_eq(rv, -1, "\"%s\" accepted", t[i].in);
			cr_expect_eq(v, 12345, "\"%s\": output written",
			    t[i].in);
		}
	}
}

/* Only the slice's bytes count, not what follows them. */
Test(slice, to_u64_bounded)
{
	uint64_t	v;

	cr_assert_eq(slice_to_u64(slice_make("123456", 3), &v), 0);
	cr_assert_eq(v, 123);
	cr_assert_eq(slice_to_u64(slice_make("12x", 2), &v), 0);
	cr_assert_eq(v, 12);
	cr_assert_eq(slice_to_u64(slice_make("5", 0), &v), -1);
	cr_assert_eq(slice_to_u64(slice_make("1\0" "2", 3), &v), -1);
}

Test(slice, strdup)
{
	char	*p;

	cr_assert_not_null(p = slice_strdup(slice_make("hello world", 5)));
	cr_assert_str_eq(p, "hello");
	free(p);
	cr_assert_not_null(p = slice_strdup(slice_make("", 0)));
	cr_assert_str_eq(p, "");
	free(p);
	cr_assert_not_null(p = slice_strdup(slice_make(NULL, 0)));
	cr_assert_str_eq(p, "");
	free(p);
}

static int
is_key(uint32_t v, const void *key)
{
	return (v == *(const uint32_t *)key);
}

/*
 * Values whose hashes collide, at the last slot: each is found past the
 * others, wrapping to the first slots; one never added is not, and its
 * probe ends at an empty slot.
 */
Test(index, collisions_wrap_around)
{
	uint32_t	t[8] = { 0 }, v, k;

	for (v = 1; v <= 4; v++)
		index_insert(t, 8, 7 + 8 * v, v);	/* all hash to slot 7 */
	cr_assert_eq(t[7], 1);
	cr_assert_eq(t[0], 2);
	cr_assert_eq(t[2], 4);
	for (k = 1; k <= 4; k++)
		cr_assert_eq(index_lookup(t, 8, 7, is_key, &k), k);
	k = 5;
	cr_assert_eq(index_lookup(t, 8, 7, is_key, &k), 0);
	cr_assert_eq(index_lookup(t, 8, 4, is_key, &k), 0);
	k = 1;
	cr_assert_eq(index_lookup(t, 8, 3, is_key, &k), 0,
	    "found from another hash's empty slot");
}
