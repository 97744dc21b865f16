/*
 * buf.c: growable byte buffers with a hard limit.
 */
#include <sys/types.h>
#include <sys/uio.h>

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "buf.h"

void
buf_init(struct buf *b, size_t max)
{
	memset(b, 0, sizeof(*b));
	b->max = max;
}

void
buf_free(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->off = b->len = b->cap = 0;
}

void
buf_reset(struct buf *b)
{
	b->off = b->len = 0;
	b->lost = 0;
}

void
buf_compact(struct buf *b)
{
	if (b->off == 0)
		return;
	if (b->off < b->len)
		memmove(b->data, b->data + b->off, b->len - b->off);
	b->len -= b->off;
	b->off = 0;
}

/*
 * Make room for <n> more bytes after the tail.  Returns 0, or -1 with
 * errno ENOBUFS when the held bytes would pass the limit, ENOMEM when
 * the allocation fails.  The buffer is unchanged on failure.
 */
int
buf_reserve(struct buf *b, size_t n)
{
	size_t	 need, ncap;
	char	*p;

	if (n > b->max || buf_used(b) > b->max - n) {
		b->lost = 1;
		errno = ENOBUFS;
		return (-1);
	}
	if (b->cap - b->len >= n)
		return (0);
	if (b->off > 0 && b->cap - buf_used(b) >= n &&
	    (b->off >= b->cap / 2 || b->cap - buf_used(b) >= 2 * n)) {
		buf_compact(b);
		return (0);
	}
	need = buf_used(b) + n;
	ncap = b->cap ? b->cap : BUF_MINALLOC;
	while (ncap < need)
		ncap *= 2;
	/* never allocate far beyond the limit */
	if (ncap > b->max && need <= b->max)
		ncap = b->max;
	if (ncap < need)
		ncap = need;
	buf_compact(b);
	if ((p = realloc(b->data, ncap)) == NULL) {
		b->lost = 1;
		errno = ENOMEM;
		return (-1);
	}
	b->data = p;
	b->cap = ncap;
	return (0);
}

int
buf_append(struct buf *b, const void *p, size_t n)
{
	if (n == 0)
		return (0);
	if (buf_reserve(b, n) == -1)
		return (-1);
	memcpy(b->data + b->len, p, n);
	b->len += n;
	return (0);
}

int
buf_putc(struct buf *b, int c)
{
	char	ch = c;

	return (buf_append(b, &ch, 1));
}

/* The hot paths format with these, not printf: a NUL-terminated string, */
int
buf_puts(struct buf *b, const char *s)
{
	return (buf_append(b, s, strlen(s)));
}

/* an unsigned decimal, */
int
buf_put_u64(struct buf *b, uint64_t v)
{
	char	d[24];
	int	i = sizeof(d);

	do {
		d[--i] = '0' + v % 10;
		v /= 10;
	} while (v != 0);
	return (buf_append(b, d + i, sizeof(d) - i));
}

/* and a lower-case hexadecimal number (chunk sizes). */
int
buf_put_hex(struct buf *b, uint64_t v)
{
	static const char	hex[] = "0123456789abcdef";
	char			d[20];
	int			i = sizeof(d);

	do {
		d[--i] = hex[v & 15];
		v >>= 4;
	} while (v != 0);
	return (buf_append(b, d + i, sizeof(d) - i));
}

int
buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list	ap;
	int	n, rv;
	size_t	room, max;

	room = b->cap - b->len;
	va_start(ap, fmt);
	n = vsnprintf(room ? b->data + b->len : NULL, room, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->lost = 1;
		return (-1);
	}
	if ((size_t)n > buf_room(b)) {
		b->lost = 1;
		errno = ENOBUFS;
		return (-1);
	}
	if ((size_t)n < room) {
		b->len += n;
		return (0);
	}
	/* output that reaches the limit fits: only its NUL passes it */
	max = b->max;
	if ((size_t)n == buf_room(b))
		b->max++;
	rv = buf_reserve(b, (size_t)n + 1);
	b->max = max;
	if (rv == -1)
		return (-1);
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += n;
	return (0);
}

void
buf_consume(struct buf *b, size_t n)
{
	if (n >= buf_used(b)) {
		b->off = b->len = 0;
		return;
	}
	b->off += n;
}

/*
 * Read at most <n> bytes (0: as much as the limit allows) from <fd>.
 * Returns what read(2) returns; -1 with ENOBUFS when the buffer is full.
 */
ssize_t
buf_read_fd(struct buf *b, int fd, size_t n)
{
	ssize_t	r;
	size_t	room = buf_room(b);

	if (n == 0 || n > room)
		n = room;
	if (n == 0) {
		errno = ENOBUFS;
		return (-1);
	}
	/* read into what is allocated, growing only when it is full */
	if (b->cap - b->len == 0 && buf_reserve(b, n < 4096 ? n : 4096) == -1)
		return (-1);
	if (n > b->cap - b->len)
		n = b->cap - b->len;
	r = read(fd, b->data + b->len, n);
	if (r > 0)
		b->len += r;
	return (r);
}

/* Write what the buffer holds; consumes what was written. */
ssize_t
buf_write_fd(struct buf *b, int fd)
{
	ssize_t	w;

	if (buf_used(b) == 0)
		return (0);
	w = write(fd, buf_head(b), buf_used(b));
	if (w > 0)
		buf_consume(b, w);
	return (w);
}

/* NUL-terminate the held bytes (not counted) and return them. */
char *
buf_cstr(struct buf *b)
{
	if (b->cap - b->len < 1) {
		/* the terminator may pass the limit by one byte */
		size_t	max = b->max;

		b->max = buf_used(b) + 1;
		if (buf_reserve(b, 1) == -1) {
			b->max = max;
			return (NULL);
		}
		b->max = max;
	}
	b->data[b->len] = '\0';
	return (b->data + b->off);
}

int
slice_eq(struct slice s, const char *str)
{
	size_t	n = strlen(str);

	/* an empty slice may have no bytes at all: s.p NULL */
	return (s.len == n && (n == 0 || memcmp(s.p, str, n) == 0));
}

int
slice_caseeq(struct slice s, const char *str)
{
	size_t	n = strlen(str);

	return (s.len == n && (n == 0 || strncasecmp(s.p, str, n) == 0));
}

struct slice
slice_trim(struct slice s)
{
	while (s.len > 0 && (s.p[0] == ' ' || s.p[0] == '\t')) {
		s.p++;
		s.len--;
	}
	while (s.len > 0 && (s.p[s.len - 1] == ' ' || s.p[s.len - 1] == '\t'))
		s.len--;
	return (s);
}

/* Strict decimal: digits only, no sign, no spaces, no overflow. */
int
slice_to_u64(struct slice s, uint64_t *out)
{
	uint64_t	v = 0;
	size_t		i;

	if (s.len == 0)
		return (-1);
	for (i = 0; i < s.len; i++) {
		unsigned	d;

		if (s.p[i] < '0' || s.p[i] > '9')
			return (-1);
		d = s.p[i] - '0';
		if (v > (UINT64_MAX - d) / 10)
			return (-1);
		v = v * 10 + d;
	}
	*out = v;
	return (0);
}

char *
slice_strdup(struct slice s)
{
	char	*p;

	if ((p = malloc(s.len + 1)) == NULL)
		return (NULL);
	if (s.len > 0)
		memcpy(p, s.p, s.len);
	p[s.len] = '\0';
	return (p);
}

/*
 * FNV-1a, seeded, with murmur3's finalizer: for the hashing balancers,
 * the rate-limit tables and the shared indexes.
 */
uint64_t
hash_bytes(const void *p, size_t len, uint64_t seed)
{
	const unsigned char	*b = p;
	uint64_t		 h = 1469598103934665603ULL ^ seed;
	size_t			 i;

	for (i = 0; i < len; i++) {
		h ^= b[i];
		h *= 1099511628211ULL;
	}
	/* finalizer (murmur3's), so that similar keys spread */
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return (h);
}

/*
 * An index of nonzero values in <nslots> slots (a power of two; zero is
 * an empty slot), by open addressing from a hash: the shared segments'
 * names (shm.c, stats.c).  Its owner keeps it at most half full, so that
 * a probe ends, and rebuilds it rather than remove from it.
 * index_lookup(): the first value with that hash for which match(value,
 * key) says yes, or 0.
 */
uint32_t
index_lookup(const uint32_t *t, uint32_t nslots, uint64_t hash,
    int (*match)(uint32_t, const void *), const void *key)
{
	uint32_t	i;

	for (i = hash & (nslots - 1); t[i] != 0; i = (i + 1) & (nslots - 1))
		if (match(t[i], key))
			return (t[i]);
	return (0);
}

void
index_insert(uint32_t *t, uint32_t nslots, uint64_t hash, uint32_t v)
{
	uint32_t	i;

	for (i = hash & (nslots - 1); t[i] != 0; i = (i + 1) & (nslots - 1))
		;
	t[i] = v;
}
