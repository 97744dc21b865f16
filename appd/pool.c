/*
 * pool.c: the master's watch over the workers, every PROC_TICK ms
 * (common/proc's ops->tick), from the scoreboard.
 *
 *  - Stuck requests: a request older than request-timeout is logged and
 *    its worker signalled SIGTERM with the request marked in the
 *    scoreboard, so the worker answers 504 and leaves; kill-grace later
 *    it gets SIGKILL.  Either way it is replaced at once.  Only requests
 *    are timed: a worker idle on a kept connection never is.
 *  - Slow requests (over slow-request) are logged once and counted.
 *  - The dynamic pool: while fewer than min-spare workers are idle, start
 *    more, at most spawn-rate a second and max-workers in all; when more
 *    than max-spare stayed idle for a whole second, stop one; and when
 *    more than min-spare stayed idle for a whole idle-timeout, stop the
 *    surplus.
 *    Workers idle on a kept connection count as idle (they take a new
 *    connection within APPD_PRESSURE_MS), as do starting ones.
 *  - Every worker busy at max-workers: "pool full" is logged once and
 *    counted, and requests wait in the listen queue.
 *  - The listen queue is sampled for the status page's maxima.
 *  - Slots of processes that died without clearing theirs are freed.
 */
#include <sys/types.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "appd.h"
#include "log.h"

#define POOL_MAXKIDS	512
#define POOL_FULL_LOG	10000		/* ms between "pool full" lines */

static double		 tokens;	/* workers we may start now */
static uint64_t		 last_tick;
static uint64_t		 window_start;	/* idle-timeout window */
static int		 window_min = -1;	/* least idle seen in it */
static uint64_t		 last_full_log;
static uint64_t		 short_start;	/* one-second window */
static int		 short_min = -1;

static void
check_requests(struct appd_conf *ac, struct proc_pool *pool,
    struct board_slot *s, pid_t pid, int id, uint64_t now)
{
	uint64_t	seq = atomic_load(&s->seq);
	uint64_t	start = atomic_load(&s->req_start);
	uint64_t	dur;
	char		line[APPD_REQLINE];

	if (s->kill_at != 0 && now >= s->kill_at) {
		log_warnx("worker %d (pid %d) still running %llu ms after "
		    "SIGTERM, killing it", id + 1, (int)pid,
		    (unsigned long long)ac->kill_grace);
		proc_pool_kill(pool, pid, SIGKILL);
		s->kill_at = 0;
	}
	if (seq == 0 || start == 0 || start > now ||
	    !board_active(atomic_load(&s->state)))
		return;
	dur = now - start;
	if (ac->slow_request > 0 && dur >= ac->slow_request &&
	    s->slow_seq != seq) {
		s->slow_seq = seq;
		stats_inc(ac->m_slow);
		board_get_line(s, line, sizeof(line));
		log_warnx("slow request: worker %d (pid %d) busy for %llu ms "
		    "with \"%s\"", id + 1, (int)pid, (unsigned long long)dur,
		    line);
	}
	if (ac->request_timeout > 0 && dur >= ac->request_timeout &&
	    atomic_load(&s->kill_seq) != seq) {
		board_get_line(s, line, sizeof(line));
		log_warnx("request timeout: worker %d (pid %d) busy for %llu "
		    "ms with \"%s\", stopping it", id + 1, (int)pid,
		    (unsigned long long)dur, line);
		stats_inc(ac->m_timeouts);
		atomic_store(&s->kill_seq, seq);
		s->kill_at = now + ac->kill_grace;
		proc_pool_kill(pool, pid, SIGTERM);
	}
}

/* Stop the idle worker that has been idle longest; 0, or -1 if none. */
static int
retire_one(struct appd_conf *ac, struct proc_pool *pool,
    struct proc_child_info *k, int nk, const char *why)
{
	struct board_slot	*s, *best = NULL;
	int			 i, bi = -1, st, bst = 0;
	uint64_t		 since;

	for (i = 0; i < nk; i++) {
		if (k[i].role != 0 || !k[i].current || k[i].leaving ||
		    k[i].slot <= 0)
			continue;
		s = &ac->board->slots[k[i].slot];
		st = atomic_load(&s->state);
		if (st != W_IDLE && st != W_KEEPALIVE)
			continue;
		since = atomic_load(&s->idle_since);
		/* one without a kept connection first: no close race */
		if (best == NULL || (st == W_IDLE && bst != W_IDLE) ||
		    (st == bst && since < atomic_load(&best->idle_since))) {
			best = s;
			bi = i;
			bst = st;
		}
	}
	if (bi == -1)
		return (-1);
	log_info("pool: stopping idle worker %d (pid %d): %s", k[bi].id + 1,
	    (int)k[bi].pid, why);
	stats_inc(ac->m_retired);
	k[bi].leaving = 1;
	return (proc_pool_retire(pool, k[bi].pid));
}

void
pool_tick(void *conf, struct proc_pool *pool)
{
	struct appd_conf	*ac = conf;
	struct board		*b = ac->board;
	struct proc_child_info	 k[POOL_MAXKIDS];
	struct board_slot	*s;
	uint64_t		 now = ev_monotonic_ms(), dt;
	int			 nk, i, j, st, idle = 0, active = 0, mine = 0;
	int			 total, n, q, max, qsum = 0, live;
	char			 why[128];

	if (b == NULL)
		return;
	dt = last_tick ? now - last_tick : PROC_TICK;
	last_tick = now;
	nk = proc_pool_children(pool, k, nitems(k));

	/* slots whose process is gone */
	for (i = 1; i < STATS_SLOTS; i++) {
		pid_t	pid = atomic_load(&b->slots[i].pid);

		if (pid == 0)
			continue;
		for (live = 0, j = 0; j < nk && !live; j++)
			live = k[j].pid == pid && k[j].slot == i;
		if (!live) {
			atomic_store(&b->slots[i].pid, 0);
			atomic_store(&b->slots[i].state, W_FREE);
			atomic_store(&b->slots[i].seq, 0);
			b->slots[i].kill_at = 0;
		}
	}

	for (i = 0; i < nk; i++) {
		if (k[i].role != 0 || k[i].slot <= 0)
			continue;
		s = &b->slots[k[i].slot];
		if (atomic_load(&s->pid) != k[i].pid) {
			/* forked, not yet in the scoreboard: starting */
			if (k[i].current && !k[i].leaving) {
				idle++;
				mine++;
			}
			continue;
		}
		check_requests(ac, pool, s, k[i].pid, k[i].id, now);
		st = atomic_load(&s->state);
		if (board_active(st))
			active++;
		if (!k[i].current || k[i].leaving)
			continue;
		mine++;
		if (board_idle(st))
			idle++;
	}
	if (active > atomic_load(&b->max_active))
		atomic_store(&b->max_active, active);

	/* the listen queue */
	for (i = 0; ac->ps != NULL && i < ac->ps->nlisteners; i++)
		if (appd_is_worker_listener(ac, &ac->ps->listeners[i]) &&
		    listen_queue(ac->ps->listeners[i].fd,
		    ac->ps->listeners[i].addr.family, &q, &max) == 0)
			qsum += q;
	atomic_store(&b->listen_queue, qsum);
	if (qsum > atomic_load(&b->max_listen_queue))
		atomic_store(&b->max_listen_queue, qsum);

	if (proc_pool_stopping(pool))
		return;
	total = proc_pool_count(pool);
	/* respawns pending: on their way, count them idle */
	if (total > mine)
		idle += total - mine;

	/* every worker busy, and no room to grow */
	if (total >= ac->max_workers && idle == 0) {
		if (!atomic_load(&b->full)) {
			atomic_store(&b->full, 1);
			stats_inc(ac->m_full);
			/* counted every time, logged every POOL_FULL_LOG ms */
			if (last_full_log == 0 ||
			    now - last_full_log >= POOL_FULL_LOG) {
				last_full_log = now;
				log_warnx("pool full: %d workers busy, "
				    "requests wait in the listen queue "
				    "(max-workers %d)", total,
				    ac->max_workers);
			}
		}
	} else if (idle > 0)
		atomic_store(&b->full, 0);

	if (ac->pool != POOL_DYNAMIC)
		return;
	tokens += (double)ac->spawn_rate * (double)dt / 1000.0;
	if (tokens > ac->spawn_rate)
		tokens = ac->spawn_rate;
	if (idle < ac->min_spare && total < ac->max_workers) {
		n = ac->min_spare - idle;
		if (n > ac->max_workers - total)
			n = ac->max_workers - total;
		if (n > (int)tokens)
			n = (int)tokens;
		for (i = 0; i < n; i++) {
			if (proc_pool_spawn(pool) == -1)
				break;
			stats_inc(ac->m_spawned);
			tokens -= 1;
		}
		if (i > 0)
			log_debug("pool: %d idle of %d, started %d", idle,
			    total, i);
		window_start = short_start = now;
		window_min = short_min = -1;
		return;
	}
	/*
	 * Shrinking looks at the least idle count over a window, not at one
	 * sample: with short requests the workers flick between busy and
	 * idle, and a sample would stop a worker one tick to start one the
	 * next.  Above max-spare for a second: stop one; above min-spare
	 * for idle-timeout: stop the surplus.
	 */
	if (short_min == -1 || idle < short_min)
		short_min = idle;
	if (window_min == -1 || idle < window_min)
		window_min = idle;
	if (now - short_start >= 1000) {
		if (short_min > ac->max_spare) {
			snprintf(why, sizeof(why), "%d idle for a second, "
			    "above max-spare %d", short_min, ac->max_spare);
			if (retire_one(ac, pool, k, nk, why) == 0) {
				window_start = now;
				window_min = -1;
			}
		}
		short_start = now;
		short_min = -1;
	}
	if (ac->idle_timeout == 0 || now - window_start < ac->idle_timeout)
		return;
	n = window_min - ac->min_spare;
	for (i = 0; i < n; i++) {
		snprintf(why, sizeof(why), "more than min-spare %d idle for "
		    "%llu ms", ac->min_spare,
		    (unsigned long long)ac->idle_timeout);
		if (retire_one(ac, pool, k, nk, why) == -1)
			break;
	}
	window_start = now;
	window_min = -1;
}
