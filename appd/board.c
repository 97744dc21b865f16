/*
 * board.c: the scoreboard (see appd.h), one block of common/shm found by
 * name, so that it outlives reloads: the workers of every generation
 * and the status process see the same slots.
 */
#include <sys/types.h>

#include <string.h>
#include <time.h>

#include "appd.h"
#include "shm.h"

static struct board_slot	dummy;	/* a child without a slot */

struct board *
board_get(void)
{
	struct board	*b;
	int		 created;

	if ((b = shm_get("appd/board", sizeof(*b), &created)) == NULL)
		return (NULL);
	if (created)
		atomic_store(&b->start_time, (uint64_t)time(NULL));
	return (b);
}

/* The slot of process slot <slot>, cleared for its new owner. */
struct board_slot *
board_attach(struct board *b, int slot)
{
	struct board_slot	*s;

	if (b == NULL || slot <= 0 || slot >= STATS_SLOTS)
		s = &dummy;
	else
		s = &b->slots[slot];
	atomic_store(&s->state, W_STARTING);
	atomic_store(&s->requests, 0);
	atomic_store(&s->seq, 0);
	atomic_store(&s->req_start, 0);
	atomic_store(&s->kill_seq, 0);
	atomic_store(&s->rss, 0);
	s->line[0] = '\0';
	return (s);
}

/* Copy a request line in, printable ASCII only. */
void
board_set_line(struct board_slot *s, const char *p, size_t len)
{
	size_t	i;

	atomic_fetch_add(&s->lineseq, 1);
	if (len > sizeof(s->line) - 1)
		len = sizeof(s->line) - 1;
	for (i = 0; i < len; i++)
		s->line[i] = (p[i] >= 0x20 && p[i] < 0x7f) ? p[i] : '?';
	s->line[len] = '\0';
	atomic_fetch_add(&s->lineseq, 1);
}

/* Read a slot's request line without tearing (a few tries, then as is). */
void
board_get_line(struct board_slot *s, char *out, size_t outlen)
{
	uint32_t	a, b;
	int		 tries;

	for (tries = 0; tries < 100; tries++) {
		a = atomic_load(&s->lineseq);
		if (a & 1)
			continue;
		strlcpy(out, s->line, outlen);
		b = atomic_load(&s->lineseq);
		if (a == b)
			return;
	}
	strlcpy(out, s->line, outlen);
}

const char *
board_state_name(int st)
{
	switch (st) {
	case W_STARTING:
		return ("starting");
	case W_IDLE:
		return ("idle");
	case W_KEEPALIVE:
		return ("keepalive");
	case W_READING:
		return ("reading");
	case W_BUSY:
		return ("busy");
	case W_EXITING:
		return ("exiting");
	default:
		return ("free");
	}
}

/* In a request: what the request timeout and "active" count. */
int
board_active(int st)
{
	return (st == W_READING || st == W_BUSY);
}

/* Able to take a new connection now or soon. */
int
board_idle(int st)
{
	return (st == W_STARTING || st == W_IDLE || st == W_KEEPALIVE);
}
