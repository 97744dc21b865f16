/*
 * upstream.h: pools of upstream servers and how to choose among them.
 *
 * A pool's servers have an address, a weight, a connection limit and a
 * backup flag.  What all workers must agree on lives in shared memory
 * (shm.h), under the pool's and the server's names, and so survives
 * reloads: the operator's state (ready, drain, maint), the health the
 * checker found, the active connection count across workers, the run of
 * passive failures, the runtime weight, the round-robin state.
 *
 * Balancing algorithms share one small interface, as HAProxy's lbprm
 * callbacks do: init, pick, server up/down, connection taken/dropped.
 * One file each: lb_rr.c (smooth weighted round-robin, nginx's scheme, so
 * 5:1 weights interleave; and static-rr), lb_leastconn.c, lb_hash.c
 * (source address and URI, rendezvous hashing so that a server leaving
 * moves only its own keys), lb_random.c (power of two choices).
 */
#ifndef COMMON_UPSTREAM_H
#define COMMON_UPSTREAM_H

#include <sys/types.h>
#include <sys/queue.h>
#include <stdatomic.h>
#include <stdint.h>
#include "buf.h"
#include "net.h"
#include "shm.h"
#include "sock.h"

#define UP_MAXSERVERS	64
#define UP_NAMELEN	64
#define UP_MAXWEIGHT	256

enum up_admin { UP_READY = 0, UP_DRAIN, UP_MAINT };
enum up_health { UP_HEALTHY = 0, UP_DOWN };

/* Per server, in shared memory. */
struct up_shared {
	_Atomic int		admin;		/* enum up_admin */
	_Atomic int		health;		/* enum up_health */
	struct shm_count	conns;		/* active, all workers */
	_Atomic int		queued;		/* waiting for a slot */
	_Atomic int		fails;		/* passive failures in a row */
	_Atomic uint64_t	skip_until;	/* ms, CLOCK_MONOTONIC */
	_Atomic int		weight;		/* runtime weight */
	_Atomic int		conf_weight;	/* the conf's, last load */
	int			cw;		/* smooth rr, under pool lock */
	_Atomic int		checked;	/* a check result exists */
	_Atomic int		rise;		/* successes in a row */
	_Atomic int		fall;		/* failures in a row */
	_Atomic int64_t		last_check;	/* unix ms */
	_Atomic int64_t		check_until;	/* monotonic ms: in flight */
	_Atomic int64_t		check_started;	/* monotonic ms: the last */
	_Atomic int64_t		last_change;	/* unix ms */
	_Atomic int		check_code;	/* last HTTP status, or 0 */
	char			check_desc[96];	/* last check result */
	_Atomic uint64_t	requests;
	_Atomic uint64_t	errors;
};

struct up_pool_shared {
	shm_lock_t		lock;
	_Atomic uint64_t	seq;
};

struct up_conn;

struct up_server {
	char			 name[UP_NAMELEN];
	struct net_addr		 addr;
	int			 weight;	/* from the conf */
	int			 maxconn;	/* 0: no limit */
	int			 backup;
	int			 index;
	int			 created;	/* its shared block is new */
	int			 private;	/* no room in shared memory */
	struct up_pool		*pool;
	struct up_shared	*sh;
	TAILQ_HEAD(, up_conn)	 idle;		/* this worker's */
	int			 nidle;
	void			*arg;		/* the daemon's */
};

struct up_pool;

struct lb_ops {
	const char	*name;
	void		(*init)(struct up_pool *);
	struct up_server *(*pick)(struct up_pool *, uint64_t, uint64_t);
	void		(*up)(struct up_pool *, struct up_server *);
	void		(*down)(struct up_pool *, struct up_server *);
	void		(*taken)(struct up_pool *, struct up_server *);
	void		(*dropped)(struct up_pool *, struct up_server *);
};

struct up_pool {
	char			 name[UP_NAMELEN];
	struct up_server	*servers[UP_MAXSERVERS];
	int			 nservers;
	const struct lb_ops	*lb;
	struct up_pool_shared	*sh;
	int			 private;	/* no room in shared memory */
	int			 fail_max;	/* passive: failures in a row */
	uint32_t		 fail_timeout;	/* ms skipped after */
	int			 nqueued;	/* this worker's, waiting */
	void			*arg;
};

extern const struct lb_ops lb_roundrobin, lb_static_rr, lb_leastconn,
	lb_source, lb_uri, lb_hdr, lb_url_param, lb_random;

const struct lb_ops	*lb_find(const char *);
#define LB_NAMES	"roundrobin|static-rr|leastconn|source|uri|hdr|url-param|random"

struct up_pool	*up_pool_new(const char *, const char *, const struct lb_ops *);
int		 up_pool_shm_full(const struct up_pool *);
struct up_server *up_server_add(struct up_pool *, const char *,
		    const struct net_addr *, int, int, int);
void		 up_pool_commit(struct up_pool *);
int		 up_pool_reap(struct up_pool *, int);
int		 up_weights(struct up_pool *, uint64_t, uint64_t, int,
		    int [UP_MAXSERVERS]);
void		 up_pool_free(struct up_pool *);
int		 up_usable(const struct up_server *, uint64_t);
struct up_server *up_pick(struct up_pool *, uint64_t, uint64_t);
void		 up_taken(struct up_server *);
void		 up_dropped(struct up_server *);
void		 up_failed(struct up_server *, uint64_t);
void		 up_succeeded(struct up_server *);
int		 up_eligible(struct up_pool *, struct up_server *, uint64_t,
		    int *);
int		 up_nusable(struct up_pool *);
const char	*up_state_name(const struct up_server *);

#endif
