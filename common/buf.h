/*
 * buf.h: growable byte buffers with a hard limit, and slices for parsers.
 *
 * A buffer holds the bytes [off, len) of data[0, cap).  It grows by
 * doubling up to <max> bytes and never beyond: an append that would pass
 * the limit fails with ENOBUFS and leaves the buffer unchanged, so that a
 * peer cannot make a connection use more memory than its configuration
 * allows.  Consumed bytes are reclaimed by moving the rest to the front
 * when that makes room.  A failed append sets <lost> (until buf_reset),
 * so that a message built of many appends can be checked once at its
 * end: a missing piece in its middle must not go unseen.
 */
#ifndef COMMON_BUF_H
#define COMMON_BUF_H

#include <sys/types.h>
#include <stdint.h>
#include "compat.h"

#define BUF_MINALLOC	1024		/* first allocation */

struct buf {
	char	*data;
	size_t	 off;			/* first unread byte */
	size_t	 len;			/* end of the bytes held */
	size_t	 cap;			/* allocated */
	size_t	 max;			/* hard limit on len - off */
	int	 lost;			/* a write to it failed since init */
};

/* A view into bytes someone else owns; never NUL-terminated. */
struct slice {
	const char	*p;
	size_t		 len;
};

void	 buf_init(struct buf *, size_t);
void	 buf_free(struct buf *);
void	 buf_reset(struct buf *);
int	 buf_reserve(struct buf *, size_t);
int	 buf_append(struct buf *, const void *, size_t);
int	 buf_printf(struct buf *, const char *, ...) __printflike(2, 3);
int	 buf_putc(struct buf *, int);
int	 buf_puts(struct buf *, const char *);
int	 buf_put_u64(struct buf *, uint64_t);
int	 buf_put_hex(struct buf *, uint64_t);
void	 buf_consume(struct buf *, size_t);
void	 buf_compact(struct buf *);
ssize_t	 buf_read_fd(struct buf *, int, size_t);
ssize_t	 buf_write_fd(struct buf *, int);
char	*buf_cstr(struct buf *);

static inline size_t
buf_used(const struct buf *b)
{
	return (b->len - b->off);
}

static inline const char *
buf_head(const struct buf *b)
{
	return (b->data + b->off);
}

static inline size_t
buf_room(const struct buf *b)
{
	return (b->max - buf_used(b));
}

/* Where to write <n> bytes directly, after buf_reserve(b, n) succeeded. */
static inline char *
buf_tail(struct buf *b)
{
	return (b->data + b->len);
}

static inline struct slice
slice_make(const char *p, size_t len)
{
	struct slice	s = { p, len };
	return (s);
}

int	 slice_eq(struct slice, const char *);
int	 slice_caseeq(struct slice, const char *);
struct slice slice_trim(struct slice);
int	 slice_to_u64(struct slice, uint64_t *);

uint64_t hash_bytes(const void *, size_t, uint64_t);
uint32_t index_lookup(const uint32_t *, uint32_t, uint64_t,
	    int (*)(uint32_t, const void *), const void *);
void	 index_insert(uint32_t *, uint32_t, uint64_t, uint32_t);
char	*slice_strdup(struct slice);

#endif
