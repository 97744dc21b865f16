/*
 * board.c: what dbrepd's processes share, and how they wake each other.
 *
 * The board is one shared mapping made by the master before it forks:
 * the node's role and epoch, the committed (or applied) LSN, the LSN the
 * quorum of replicas holds, the replicas seen, administrative requests,
 * and the writers' lock.  Numbers are atomics; the few strings are
 * guarded by a mutex.  The writers' lock is a robust process-shared
 * mutex: writers queue on it instead of polling SQLite's busy handler,
 * and a worker killed while holding it does not block the others.
 *
 * Doorbells: every process that waits for something (a worker holding a
 * commit until the quorum acknowledges it, a read waiting for a minimum
 * LSN, the replication process waiting for new commits) binds an
 * abstract Unix datagram socket named after the board's token and its
 * pid, and watches it in its event loop.  bell_ring(pid) sends it one
 * byte.  A lost or extra ring is harmless: the woken process looks at
 * the board, and timers bound every wait.
 */
#include <sys/types.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "stats.h"
#include "dbrepd.h"

#define BOARD_MAGIC	0x44425250u

struct board	*board;
static int	 ringfd = -1;

int
board_init(void)
{
	pthread_mutexattr_t	 ma;
	uint8_t			 r[8];
	void			*p;
	int			 i;

	if (board != NULL)
		return (0);
	p = mmap(NULL, sizeof(struct board), PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return (-1);
	board = p;
	memset(board, 0, sizeof(*board));
	board->magic = BOARD_MAGIC;
	arc4random_buf(r, sizeof(r));
	for (i = 0; i < (int)sizeof(r); i++)
		snprintf(board->token + 2 * i, 3, "%02x", r[i]);
	if (pthread_mutexattr_init(&ma) != 0 ||
	    pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED) != 0 ||
	    pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST) != 0 ||
	    pthread_mutex_init(&board->wlock, &ma) != 0 ||
	    pthread_mutex_init(&board->lock, &ma) != 0)
		return (-1);
	pthread_mutexattr_destroy(&ma);
	return (0);
}

static int
lock(pthread_mutex_t *mu)
{
	int	rc = pthread_mutex_lock(mu);

	if (rc == EOWNERDEAD) {
		/* its holder died; what it guards is consistent by design */
		pthread_mutex_consistent(mu);
		rc = 0;
	}
	return (rc == 0 ? 0 : -1);
}

int
board_wlock(void)
{
	return (lock(&board->wlock));
}

void
board_wunlock(void)
{
	pthread_mutex_unlock(&board->wlock);
}

void
board_get(char *out, size_t size, const char *field)
{
	lock(&board->lock);
	strlcpy(out, field, size);
	pthread_mutex_unlock(&board->lock);
}

void
board_set(char *field, size_t size, const char *v)
{
	lock(&board->lock);
	strlcpy(field, v, size);
	pthread_mutex_unlock(&board->lock);
}

/* The last notable event, for dbrepctl status; also logged. */
void
board_note(const char *fmt, ...)
{
	char	msg[sizeof(board->note)];
	va_list	ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	board_set(board->note, sizeof(board->note), msg);
}

static socklen_t
bell_addr(pid_t pid, struct sockaddr_un *sun)
{
	int	n;

	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	n = snprintf(sun->sun_path + 1, sizeof(sun->sun_path) - 1,
	    "dbrepd.%s.%d", board->token, (int)pid);
	return (offsetof(struct sockaddr_un, sun_path) + 1 + n);
}

/* This process's doorbell: a descriptor to watch for reading. */
int
bell_open(void)
{
	struct sockaddr_un	sun;
	socklen_t		len;
	int			fd;

	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) == -1)
		return (-1);
	len = bell_addr(getpid(), &sun);
	if (bind(fd, (struct sockaddr *)&sun, len) == -1) {
		close(fd);
		return (-1);
	}
	return (fd);
}

void
bell_ring(pid_t pid)
{
	struct sockaddr_un	sun;
	socklen_t		len;

	if (pid <= 0)
		return;
	if (ringfd == -1 && (ringfd = socket(AF_UNIX, SOCK_DGRAM |
	    SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) == -1)
		return;
	len = bell_addr(pid, &sun);
	(void)sendto(ringfd, "!", 1, MSG_DONTWAIT, (struct sockaddr *)&sun,
	    len);
}

/* Empty the doorbell; returns how many rings were waiting. */
int
bell_drain(int fd)
{
	char	b[64];
	int	n = 0;

	while (recv(fd, b, sizeof(b), MSG_DONTWAIT) > 0)
		n++;
	return (n);
}

/*
 * What the worker in statistics slot <slot> waits for: the node to reach
 * <lsn>, the quorum to reach <qlsn>, or (<any>) any change; 0 for none.
 */
void
board_wait(int slot, uint64_t lsn, uint64_t qlsn, int any)
{
	struct board_waiter	*w;

	if (slot < 0 || slot >= (int)nitems(board->waiters))
		return;
	w = &board->waiters[slot];
	atomic_store(&w->want_lsn, lsn);
	atomic_store(&w->want_quorum, qlsn);
	atomic_store(&w->any, any);
	atomic_store(&w->pid, lsn || qlsn || any ? getpid() : 0);
}

/* Ring every waiter whose condition may hold now. */
void
board_wake(void)
{
	struct board_waiter	*w;
	uint64_t		 lsn = atomic_load(&board->lsn);
	uint64_t		 q = atomic_load(&board->quorum_lsn);
	size_t			 i;
	pid_t			 pid;

	for (i = 0; i < nitems(board->waiters); i++) {
		w = &board->waiters[i];
		if ((pid = atomic_load(&w->pid)) == 0)
			continue;
		if (atomic_load(&w->any) ||
		    (atomic_load(&w->want_lsn) && atomic_load(&w->want_lsn) <=
		    lsn) || (atomic_load(&w->want_quorum) &&
		    (atomic_load(&w->want_quorum) <= q ||
		    atomic_load(&board->degraded))))
			bell_ring(pid);
	}
}

/* *a = max(*a, v) */
void
board_max(_Atomic uint64_t *a, uint64_t v)
{
	uint64_t	cur = atomic_load(a);

	while (cur < v && !atomic_compare_exchange_weak(a, &cur, v))
		;
}

/*
 * The node's database is at <lsn> (committed at <ts>), durable: at
 * start, after a promotion, after a record applied.  What group commit
 * knows (committed, flushed) starts from there too.
 */
void
board_set_lsn(uint64_t lsn, uint64_t ts)
{
	atomic_store(&board->committed, lsn);
	atomic_store(&board->synced, lsn);
	atomic_store(&board->lsn, lsn);
	atomic_store(&board->lsn_ts, ts);
}

/* board->lsn = max(board->lsn, lsn) */
void
board_lsn_max(uint64_t lsn)
{
	board_max(&board->lsn, lsn);
}
