/*
 * proc.h: the pre-fork master shared by all daemons.
 *
 * A daemon's main() is one call: proc_main(argc, argv, &ops).  The master
 * parses the flags and the conf, opens the listening sockets and the
 * pidfile, daemonizes, maps the statistics segment, forks the workers
 * (and the daemon's helper processes: a checker, a replicator) which drop
 * privileges, and then supervises them:
 *
 *	SIGCHLD	a dead child is logged and respawned, with an exponential
 *		back-off while it keeps dying young
 *	SIGHUP	reload: parse into a new conf; on any error log "reload
 *		failed, keeping current configuration" and change nothing;
 *		else fork a new generation on the same listening sockets
 *		(new listeners opened, removed ones closed) and, once all of
 *		it has reported ready, retire the old one gracefully
 *	SIGTERM	graceful stop (also SIGQUIT): listeners closed, in-flight
 *		work finished within "shutdown-timeout", then SIGKILL
 *	SIGINT	fast stop
 *	SIGUSR1	reopen log files (the daemon's reopen hook, and workers)
 *
 * Children die with the master (PR_SET_PDEATHSIG, and EOF on their
 * channel).  A child starts with SIGHUP and SIGUSR1 ignored and SIGTERM,
 * SIGQUIT and SIGINT blocked, so that none sent before it is ready
 * kills it; proc_worker_watch() takes them all on its event loop.  A
 * child that handles them otherwise (appd's workers) calls
 * proc_worker_unblock() once its handlers are in place.
 *
 * A daemon whose pool of workers changes size at run time (appd) sets
 * ops->tick: the master calls it every PROC_TICK ms with the current
 * generation's pool, where the daemon grows role 0 (proc_pool_spawn),
 * shrinks it (proc_pool_retire: SIGTERM, not replaced) and stops stuck
 * workers (proc_pool_kill: replaced at once, without back-off).  A
 * worker that leaves on purpose (it served its quota of requests) says
 * so first with proc_worker_recycle(), and is replaced at once too.
 * Daemons without a tick are not affected by any of this.
 */
#ifndef COMMON_PROC_H
#define COMMON_PROC_H

#include <sys/types.h>
#include <limits.h>
#include "compat.h"
#include "conf.h"
#include "event.h"
#include "ipc.h"
#include "net.h"

#define PROC_MAXWORKERS		64
#define PROC_MAXROLES		4		/* helper kinds besides workers */
#define PROC_MAXLISTENERS	64
#define PROC_GRACE		"30s"		/* shutdown-timeout default */
#define PROC_READY_TIMEOUT	10000		/* ms for a new generation */
#define PROC_BACKOFF_MIN	100		/* ms, first respawn delay */
#define PROC_BACKOFF_MAX	30000		/* ms */
#define PROC_STABLE		5000		/* ms alive: back-off resets */
#define PROC_FAST_GRACE		1000		/* ms after SIGINT: SIGKILL */

#define PROC_MAXBUSY		10000		/* us, busy-poll's limit */
#define PROC_TICK		100		/* ms between ops->tick calls */

/* Messages on a child's channel; daemons number theirs from 100. */
#define PROC_MSG_READY		1
#define PROC_MSG_RECYCLE	2		/* leaving on purpose: text */

/* The keywords every daemon's conf has; put first in its grammar. */
#define PROC_GRAMMAR							\
	{ "user", NULL, 0, 1, { { CONF_STR, "user" } } },		\
	{ "group", NULL, 0, 1, { { CONF_STR, "group" } } },		\
	{ "chroot", NULL, 0, 1, { { CONF_PATH, "chroot directory" } } },\
	{ "workers", NULL, 0, 1, { { CONF_INT, "workers", 1,		\
	    PROC_MAXWORKERS } } },					\
	{ "pidfile", NULL, 0, 1, { { CONF_PATH, "pidfile" } } },		\
	{ "shutdown-timeout", NULL, 0, 1, { { CONF_TIME,		\
	    "shutdown-timeout", 0, 3600000 } }, NULL, PROC_GRACE },	\
	{ "syslog-facility", NULL, 0, 1, { { CONF_ENUM, "facility", 0, 0,\
	    "daemon|user|local0|local1|local2|local3|local4|local5|"	\
	    "local6|local7" } }, NULL, "daemon" },			\
	{ "busy-poll", NULL, 0, 1, { { CONF_USEC, "busy-poll", 0,	\
	    PROC_MAXBUSY } }, NULL, "0" }

struct proc_listener {
	struct net_addr	 addr;
	int		 backlog;
	int		 mode;		/* unix sockets; -1: leave */
	uid_t		 uid;		/* unix sockets; -1: leave */
	gid_t		 gid;
	int		 fd;
	int		 inherited;	/* fd taken over from the previous conf */
	void		*arg;		/* the daemon's, for this conf */
};

struct proc_settings {
	char			 user[64];
	char			 chroot[PATH_MAX];
	char			 pidfile[PATH_MAX];
	uid_t			 uid;
	gid_t			 gid;
	int			 droppriv;	/* uid/gid valid */
	int			 workers;
	uint64_t		 grace_ms;
	int			 facility;
	uint32_t		 busy_us;	/* busy-poll */
	struct proc_listener	 listeners[PROC_MAXLISTENERS];
	int			 nlisteners;
};

struct proc_worker;
struct proc_pool;

/* A live child, as proc_pool_children() lists them. */
struct proc_child_info {
	pid_t		 pid;
	int		 role;			/* 0: worker */
	int		 id;
	int		 slot;			/* statistics slot */
	int		 generation;
	int		 current;		/* of the current generation */
	int		 leaving;		/* retired, recycled, or its
						   generation is retiring */
	uint64_t	 started;		/* ms, CLOCK_MONOTONIC */
};

struct proc_role {
	const char	*name;			/* "checker" */
	int		(*count)(void *);	/* how many for this conf */
	int		(*main)(struct proc_worker *);
};

struct proc_ops {
	const char		*name;		/* "webd" */
	const char		*conffile;	/* default -f */
	const struct conf_kw	*grammar;
	/*
	 * Build the daemon's conf from the checked tree; add listeners with
	 * proc_listener_add(); report problems with conf_error().  Return
	 * NULL when anything is wrong.  Runs in the master at start and at
	 * each reload.
	 */
	void			*(*load)(struct conf *, struct proc_settings *);
	void			 (*unload)(void *);
	/* Master, after the listeners are open, before forking (optional). */
	int			 (*setup)(void *, struct proc_settings *);
	/* Child, before privileges are dropped (optional). */
	int			 (*child_init)(struct proc_worker *);
	int			 (*worker)(struct proc_worker *);
	void			 (*reopen)(void *);	/* master, SIGUSR1 */
	/* master: a daemon message (type >= 100) from a child (optional) */
	const struct ipc_type	*msgtypes;
	void			 (*msg)(struct proc_worker *, struct ipc_msg *);
	struct proc_role	 roles[PROC_MAXROLES];	/* name NULL ends */
	/*
	 * Master: a child of this conf's generation is gone; take back what
	 * its stats slot holds in the shared counts (shm_count_reap()).
	 * Returns how much that was (optional).
	 */
	int			 (*child_gone)(void *, const struct proc_settings *,
				    int);
	/* master, every PROC_TICK ms: the current conf and pool (optional) */
	void			 (*tick)(void *, struct proc_pool *);
};

/* What a child gets. */
struct proc_worker {
	const struct proc_ops	*ops;
	const char		*role;		/* "worker", "checker".. */
	int			 id;		/* 0.. within its role */
	int			 count;		/* of its role */
	int			 generation;
	void			*conf;
	struct proc_settings	*ps;
	int			 chan;		/* to the master */
	int			 slot;		/* statistics slot */
	pid_t			 pid;
	/* set by the daemon, called by proc_worker_watch */
	void			(*drain)(struct proc_worker *);
	void			(*reopen)(struct proc_worker *);
	void			*arg;
	int			 draining;
	struct ev_loop		*loop;
	struct ev_signal	 sig;
	struct ev_io		 chanio;
};

int	 proc_main(int, char **, const struct proc_ops *);
int	 proc_listener_add(struct proc_settings *, struct conf *,
	    const struct conf_node *, const char *, void *);
int	 proc_worker_watch(struct proc_worker *, struct ev_loop *);
void	 proc_worker_unblock(void);
int	 proc_worker_ready(struct proc_worker *);
int	 proc_ncpu(void);
int	 proc_foreground(void);
int	 proc_worker_recycle(struct proc_worker *, const char *);

/* In ops->tick only. */
int	 proc_pool_count(struct proc_pool *);
int	 proc_pool_spawn(struct proc_pool *);
int	 proc_pool_retire(struct proc_pool *, pid_t);
int	 proc_pool_kill(struct proc_pool *, pid_t, int);
int	 proc_pool_children(struct proc_pool *, struct proc_child_info *,
	    int);
int	 proc_pool_stopping(struct proc_pool *);

#endif
