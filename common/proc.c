/*
 * proc.c: the pre-fork master (see proc.h).
 *
 * The master runs an event loop of its own: signals arrive on a signalfd,
 * children's channels are watched for their "ready" message and for EOF,
 * and timers drive respawn back-off, the readiness deadline of a new
 * generation and the grace periods of stops.  Children are grouped in
 * generations: one per loaded conf.  At any time one generation is
 * current; a reload starts a new one beside it, and the old one retires
 * when the new one is ready.
 */
#include <sys/types.h>
#include <sys/prctl.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <libutil.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "log.h"
#include "proc.h"
#include "shm.h"
#include "stats.h"

extern char	**environ;

enum gen_state {
	GEN_STARTING,		/* forked, waiting for every child's "ready" */
	GEN_CURRENT,
	GEN_RETIRING		/* told to stop; leaves when its children do */
};

struct proc_gen;

struct proc_child {
	pid_t			 pid;
	int			 role;		/* 0: worker, 1..: ops->roles */
	int			 id;
	int			 slot;
	int			 chan;
	int			 ready;
	int			 leaving;	/* retired by the pool */
	int			 recycle;	/* replace at once when gone */
	char			 why[128];	/* the recycle reason */
	uint64_t		 started;
	struct ev_io		 io;
	struct proc_gen		*gen;
	TAILQ_ENTRY(proc_child)	 entry;
};

struct proc_spawn {
	struct ev_timer		 timer;
	struct proc_gen		*gen;
	int			 role;
	int			 id;
};

struct proc_gen {
	int			 id;
	enum gen_state		 state;
	void			*dconf;
	struct conf		*tree;
	struct proc_settings	 ps;
	int			 nchildren;	/* alive */
	int			 nexpected;	/* children it should have */
	int			 nready;
	uint64_t		 backoff[PROC_MAXROLES + 1][PROC_MAXWORKERS];
	struct proc_spawn	 spawn[PROC_MAXROLES + 1][PROC_MAXWORKERS];
	struct ev_timer		 deadline;	/* readiness or grace */
	TAILQ_ENTRY(proc_gen)	 entry;
};

static const struct proc_ops	*ops;
static struct ev_loop		 mloop;
static struct ev_signal		 msig;
static TAILQ_HEAD(, proc_child)	 children = TAILQ_HEAD_INITIALIZER(children);
/* exited children, freed after the loop's batch (see ev_run) */
static TAILQ_HEAD(, proc_child)	 graveyard = TAILQ_HEAD_INITIALIZER(graveyard);
static TAILQ_HEAD(, proc_gen)	 gens = TAILQ_HEAD_INITIALIZER(gens);
static struct proc_gen		*current;
static int			 ngen;
static int			 debug;
static int			 stopping;	/* 1 graceful, 2 fast */
static struct ev_timer		 stoptimer;
static const char		*conffile;
static const char		*pidfile_arg;	/* -p: overrides the conf */
static char			**defines;
static int			 ndefines;
static struct pidfh		*pfh;
static pid_t			 masterpid;
static int			 slots[STATS_SLOTS];	/* in use */
static struct ipc_type		 msgtypes[32];
static struct ev_timer		 ticktimer;

/* The master's view of a generation, for ops->tick. */
struct proc_pool {
	struct proc_gen		*gen;
};

static void	gen_spawn(struct proc_gen *, int, int);
static void	gen_retire(struct proc_gen *);
static void	gen_free(struct proc_gen *);
static void	master_check_done(void);

int
proc_ncpu(void)
{
	long	n = sysconf(_SC_NPROCESSORS_ONLN);

	if (n < 1)
		n = 1;
	if (n > PROC_MAXWORKERS)
		n = PROC_MAXWORKERS;
	return ((int)n);
}

int
proc_foreground(void)
{
	return (debug);
}

static const char *
role_name(int role)
{
	return (role == 0 ? "worker" : ops->roles[role - 1].name);
}

static int
role_count(struct proc_gen *g, int role)
{
	int	n;

	if (role == 0)
		return (g->ps.workers);
	n = ops->roles[role - 1].count ? ops->roles[role - 1].count(g->dconf) :
	    1;
	if (n < 0)
		n = 0;
	if (n > PROC_MAXWORKERS)
		n = PROC_MAXWORKERS;
	return (n);
}

static int
nroles(void)
{
	int	n = 0;

	while (n < PROC_MAXROLES && ops->roles[n].name != NULL)
		n++;
	return (n + 1);
}

/*
 * Add a listener for <addr> (the text of an address argument) with the
 * options of <node>: backlog, mode, owner, group.  Returns 0 or -1 (the
 * error is reported against <node>).
 */
int
proc_listener_add(struct proc_settings *ps, struct conf *conf,
    const struct conf_node *node, const char *addr, void *arg)
{
	struct proc_listener	*l;
	const char		*s;
	char			 err[256];
	int			 i;

	if (ps->nlisteners >= PROC_MAXLISTENERS) {
		conf_error(conf, node, "too many listeners (max %d)",
		    PROC_MAXLISTENERS);
		return (-1);
	}
	l = &ps->listeners[ps->nlisteners];
	memset(l, 0, sizeof(*l));
	l->fd = -1;
	l->mode = -1;
	l->uid = (uid_t)-1;
	l->gid = (gid_t)-1;
	l->arg = arg;
	if (net_addr_parse(addr, &l->addr, err, sizeof(err)) == -1) {
		conf_error(conf, node, "invalid address \"%s\": %s", addr, err);
		return (-1);
	}
	for (i = 0; i < ps->nlisteners; i++)
		if (net_addr_eq(&ps->listeners[i].addr, &l->addr)) {
			conf_error(conf, node, "%s is listed twice",
			    l->addr.text);
			return (-1);
		}
	if (node != NULL) {
		l->backlog = conf_optnum(node, "backlog", 0);
		if (conf_opt(node, "mode") != NULL)
			l->mode = conf_optnum(node, "mode", 0);
		if ((s = conf_optstr(node, "owner", NULL)) != NULL) {
			struct passwd	*pw;

			if ((pw = getpwnam(s)) == NULL) {
				conf_error(conf, node, "unknown user \"%s\"",
				    s);
				return (-1);
			}
			l->uid = pw->pw_uid;
		}
		if ((s = conf_optstr(node, "group", NULL)) != NULL) {
			struct group	*gr;

			if ((gr = getgrnam(s)) == NULL) {
				conf_error(conf, node, "unknown group \"%s\"",
				    s);
				return (-1);
			}
			l->gid = gr->gr_gid;
		}
		if (l->addr.family != AF_UNIX && (l->mode != -1 ||
		    l->uid != (uid_t)-1 || l->gid != (gid_t)-1)) {
			conf_error(conf, node, "mode, owner and group are for "
			    "unix sockets");
			return (-1);
		}
	}
	ps->nlisteners++;
	return (0);
}

/* Read the keywords of PROC_GRAMMAR. */
static int
settings_load(struct conf *conf, struct proc_settings *ps)
{
	struct conf_node	*n;
	const char		*s;

	memset(ps, 0, sizeof(*ps));
	ps->workers = conf_get(&conf->root, "workers") ?
	    (int)conf_num(conf, &conf->root, "workers") : proc_ncpu();
	ps->grace_ms = conf_num(conf, &conf->root, "shutdown-timeout");
	s = conf_str(conf, &conf->root, "syslog-facility");
	ps->facility = log_facility(s);
	ps->busy_us = conf_num(conf, &conf->root, "busy-poll");
	if (pidfile_arg != NULL) {
		if (strlcpy(ps->pidfile, pidfile_arg, sizeof(ps->pidfile)) >=
		    sizeof(ps->pidfile))
			conf_error(conf, NULL, "-p %s: path too long",
			    pidfile_arg);
	} else if ((s = conf_str(conf, &conf->root, "pidfile")) == NULL) {
		snprintf(ps->pidfile, sizeof(ps->pidfile), "/run/%s.pid",
		    ops->name);
	} else if (strlcpy(ps->pidfile, s, sizeof(ps->pidfile)) >=
	    sizeof(ps->pidfile)) {
		conf_error(conf, conf_get(&conf->root, "pidfile"),
		    "pidfile path too long");
	}
	if ((s = conf_str(conf, &conf->root, "chroot")) != NULL &&
	    strlcpy(ps->chroot, s, sizeof(ps->chroot)) >= sizeof(ps->chroot))
		conf_error(conf, conf_get(&conf->root, "chroot"),
		    "chroot path too long");
	s = conf_str(conf, &conf->root, "user");
	n = conf_get(&conf->root, "user");
	if (geteuid() == 0) {
		struct passwd	*pw;

		if (s == NULL)
			s = "nobody";
		if ((pw = getpwnam(s)) == NULL) {
			conf_error(conf, n, "unknown user \"%s\"", s);
			return (-1);
		}
		strlcpy(ps->user, s, sizeof(ps->user));
		ps->uid = pw->pw_uid;
		ps->gid = pw->pw_gid;
		ps->droppriv = 1;
		if ((s = conf_str(conf, &conf->root, "group")) != NULL) {
			struct group	*gr;

			if ((gr = getgrnam(s)) == NULL) {
				conf_error(conf, conf_get(&conf->root, "group"),
				    "unknown group \"%s\"", s);
				return (-1);
			}
			ps->gid = gr->gr_gid;
		}
	} else {
		struct passwd	*pw = getpwuid(geteuid());

		if (s != NULL && (pw == NULL || strcmp(pw->pw_name, s) != 0))
			conf_error(conf, n, "running as user \"%s\" needs "
			    "root", s);
		if (ps->chroot[0] != '\0')
			conf_error(conf, conf_get(&conf->root, "chroot"),
			    "chroot needs root");
	}
	return (0);
}

static void
print_errors(struct conf *conf)
{
	int	i;

	for (i = 0; i < conf->nerrors && conf->errors[i] != NULL; i++) {
		if (debug || masterpid == 0)
			fprintf(stderr, "%s\n", conf->errors[i]);
		else
			syslog(LOG_ERR, "%s", conf->errors[i]);
	}
	if (conf->nerrors > CONF_MAXERRORS)
		log_warnx("%d more errors not shown",
		    conf->nerrors - CONF_MAXERRORS);
	fflush(stderr);
}

/* Parse and load a conf into a new generation; NULL on errors. */
static struct proc_gen *
gen_load(void)
{
	struct proc_gen	*g;
	struct conf	*conf;
	int		 i;

	if ((g = calloc(1, sizeof(*g))) == NULL)
		fatal("%s", __func__);
	conf = conf_new(ops->grammar);
	conf->quiet = 1;
	for (i = 0; i < ndefines; i++)
		if (conf_define(conf, defines[i]) == -1)
			conf_error(conf, NULL, "-D %s: not a macro name "
			    "(letters, digits and _, not first a digit)",
			    defines[i]);
	if (conf_parse_file(conf, conffile) == 0 &&
	    settings_load(conf, &g->ps) == 0 && conf->nerrors == 0) {
		/* the metrics and blocks it asks for are the next
		 * generation's */
		stats_set_generation(ngen + 1);
		shm_set_generation(ngen + 1);
		g->dconf = ops->load(conf, &g->ps);
		if (g->dconf == NULL && conf->nerrors == 0)
			conf_error(conf, NULL, "%s: configuration refused",
			    conffile);
	}
	if (conf->nerrors > 0 || g->dconf == NULL) {
		print_errors(conf);
		if (g->dconf != NULL && ops->unload != NULL)
			ops->unload(g->dconf);
		log_warnx("%s: %d error%s", conffile, conf->nerrors,
		    conf->nerrors == 1 ? "" : "s");
		conf_free(conf);
		free(g);
		return (NULL);
	}
	g->tree = conf;
	ev_timer_init(&g->deadline, NULL, g);
	return (g);
}

/*
 * Open what <g> listens on, taking over the descriptors of <old> for the
 * addresses both have.  Returns 0, or -1 with nothing left open.
 */
static int
gen_listen(struct proc_gen *g, struct proc_gen *old)
{
	struct proc_listener	*l, *o;
	int			 i, j, clamped;

	for (i = 0; i < g->ps.nlisteners; i++) {
		l = &g->ps.listeners[i];
		l->fd = -1;
		if (old != NULL)
			for (j = 0; j < old->ps.nlisteners; j++) {
				o = &old->ps.listeners[j];
				if (o->fd != -1 && net_addr_eq(&o->addr,
				    &l->addr)) {
					l->fd = o->fd;
					l->inherited = 1;
					break;
				}
			}
		if (l->fd != -1)
			continue;
		if ((l->fd = net_listen(&l->addr, l->backlog,
		    &clamped)) == -1) {
			log_warn("cannot listen on %s", l->addr.text);
			goto fail;
		}
		if (clamped)
			log_warnx("listen backlog of %s is %d, not %d "
			    "(net.core.somaxconn)", l->addr.text, clamped,
			    l->backlog ? l->backlog : NET_BACKLOG);
		if (l->addr.family == AF_UNIX) {
			const char	*path = l->addr.text + 5;

			if (net_unix_perms(path, l->mode, l->uid,
			    l->gid) == -1) {
				log_warn("%s: cannot set owner or mode", path);
				goto fail;
			}
		}
	}
	return (0);
 fail:
	for (j = 0; j <= i && j < g->ps.nlisteners; j++) {
		l = &g->ps.listeners[j];
		if (l->fd != -1 && !l->inherited) {
			close(l->fd);
			if (l->addr.family == AF_UNIX)
				unlink(l->addr.text + 5);
		}
		l->fd = -1;
	}
	return (-1);
}

/* Close what <g> listens on that <keep> does not; NULL keeps nothing. */
static void
gen_unlisten(struct proc_gen *g, struct proc_gen *keep)
{
	struct proc_listener	*l;
	int			 i, j, kept;

	for (i = 0; i < g->ps.nlisteners; i++) {
		l = &g->ps.listeners[i];
		if (l->fd == -1)
			continue;
		kept = 0;
		if (keep != NULL)
			for (j = 0; j < keep->ps.nlisteners; j++)
				if (keep->ps.listeners[j].fd == l->fd)
					kept = 1;
		if (!kept) {
			close(l->fd);
			if (l->addr.family == AF_UNIX)
				unlink(l->addr.text + 5);
		}
		l->fd = -1;
	}
}

/*
 * No process runs a generation older than the oldest left: give back the
 * shared blocks and statistics records that only older ones asked for.
 */
static void
gen_collect(void)
{
	struct proc_gen	*g;
	int		 oldest = 0, n;

	TAILQ_FOREACH(g, &gens, entry)
		if (g->id > 0 && (oldest == 0 || g->id < oldest))
			oldest = g->id;
	if (oldest > 0)
		stats_collect(oldest);
	if (oldest > 0 && (n = shm_collect(oldest)) > 0)
		log_debug("%s: %d shared blocks given back (generations "
		    "before %d)", __func__, n, oldest);
}

static void
gen_free(struct proc_gen *g)
{
	int	r, i;

	for (r = 0; r <= PROC_MAXROLES; r++)
		for (i = 0; i < PROC_MAXWORKERS; i++)
			ev_timer_del(&mloop, &g->spawn[r][i].timer);
	ev_timer_del(&mloop, &g->deadline);
	if (g->dconf != NULL && ops->unload != NULL)
		ops->unload(g->dconf);
	conf_free(g->tree);
	TAILQ_REMOVE(&gens, g, entry);
	free(g);
	gen_collect();
}

static int
slot_get(void)
{
	int	i;

	/* slot 0 is the master's */
	for (i = 1; i < STATS_SLOTS; i++)
		if (!slots[i]) {
			slots[i] = 1;
			return (i);
		}
	return (0);
}

static void
slot_put(int s)
{
	if (s > 0 && s < STATS_SLOTS) {
		stats_slot_reset(s);
		slots[s] = 0;
	}
}

/* Children */

static void
child_drop(struct proc_worker *w)
{
	struct proc_settings	*ps = w->ps;

	if (ps->chroot[0] != '\0') {
		if (chroot(ps->chroot) == -1)
			fatal("%s: chroot %s", __func__, ps->chroot);
		if (chdir("/") == -1)
			fatal("%s: chdir /", __func__);
	}
	if (!ps->droppriv)
		return;
	if (setgroups(1, &ps->gid) == -1 ||
	    setresgid(ps->gid, ps->gid, ps->gid) == -1 ||
	    setresuid(ps->uid, ps->uid, ps->uid) == -1)
		fatal("%s: cannot drop privileges", __func__);
	if (ps->uid != 0 && setuid(0) != -1)
		fatalx("%s: still able to regain root", __func__);
}

/* The signals that tell a child to go: SIGTERM, SIGQUIT and SIGINT. */
static void
stop_signals(sigset_t *mask)
{
	sigemptyset(mask);
	sigaddset(mask, SIGTERM);
	sigaddset(mask, SIGQUIT);
	sigaddset(mask, SIGINT);
}

static __dead void
child_main(struct proc_gen *g, int role, int id, int chan, int slot)
{
	struct proc_worker	 w;
	struct proc_child	*c;
	struct proc_gen		*og;
	static char		 lname[64];
	sigset_t		 mask;
	int			 rv, i;

	/*
	 * Nothing of the master's stays open here.  The epoll instance is
	 * shared with the master across fork(): close it, never touch it.
	 */
	close(msig.io.fd);
	close(mloop.epfd);
	TAILQ_FOREACH(c, &children, entry)
		close(c->chan);
	/*
	 * The master passes SIGUSR1 (reopen the logs) and SIGHUP on to its
	 * children at any time: until the child watches them, they must not
	 * kill it (their default).  proc_worker_watch() gives them back.
	 * SIGTERM, SIGQUIT and SIGINT stay blocked, pending, until then: a
	 * generation retired by a quick second reload is told to go while
	 * its children may still be starting, and they must finish and go
	 * as the others do, not die of the signal's default.
	 */
	signal(SIGHUP, SIG_IGN);
	signal(SIGUSR1, SIG_IGN);
	stop_signals(&mask);
	sigprocmask(SIG_SETMASK, &mask, NULL);
	if (pfh != NULL)
		pidfile_close(pfh);
	pfh = NULL;
	/* listeners of other generations */
	TAILQ_FOREACH(og, &gens, entry) {
		if (og == g)
			continue;
		for (i = 0; i < og->ps.nlisteners; i++) {
			int	fd = og->ps.listeners[i].fd, mine = 0, j;

			for (j = 0; j < g->ps.nlisteners; j++)
				if (g->ps.listeners[j].fd == fd)
					mine = 1;
			if (fd != -1 && !mine)
				close(fd);
		}
	}
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) == -1)
		fatal("%s: prctl", __func__);
	if (getppid() != masterpid)
		exit(0);

	memset(&w, 0, sizeof(w));
	w.ops = ops;
	w.role = role_name(role);
	w.id = id;
	w.count = role_count(g, role);
	w.generation = g->id;
	w.conf = g->dconf;
	w.ps = &g->ps;
	w.chan = chan;
	w.slot = slot;
	w.pid = getpid();
	stats_set_slot(slot);
	stats_set_generation(g->id);
	snprintf(lname, sizeof(lname), "%s %d", w.role, id + 1);
	log_procinit(lname);
	setproctitle("%s %d/%d", w.role, id + 1, w.count);

	if (ops->child_init != NULL && ops->child_init(&w) == -1)
		fatalx("%s: initialization failed", lname);
	child_drop(&w);
	if (role == 0)
		rv = ops->worker(&w);
	else
		rv = ops->roles[role - 1].main(&w);
	exit(rv);
}

static void
child_ready(struct proc_child *c)
{
	struct proc_gen	*old = current;

	if (c->ready)
		return;
	c->ready = 1;
	c->gen->nready++;
	log_debug("%s %d (pid %d) of generation %d ready", role_name(c->role),
	    c->id + 1, c->pid, c->gen->id);
	if (c->gen->state != GEN_STARTING ||
	    c->gen->nready < c->gen->nexpected)
		return;
	ev_timer_del(&mloop, &c->gen->deadline);
	c->gen->state = GEN_CURRENT;
	current = c->gen;
	if (old != NULL && old != c->gen)
		gen_retire(old);
	log_info("reload done: configuration generation %d running "
	    "(%d worker%s)", current->id, current->ps.workers,
	    current->ps.workers == 1 ? "" : "s");
}

static void
child_chan(struct ev_io *io, uint32_t events __unused)
{
	struct proc_child	*c = io->arg;
	struct ipc_msg		*m;
	int			 rv;

	if ((m = malloc(sizeof(*m))) == NULL)
		fatal("%s", __func__);
	for (;;) {
		rv = ipc_recv(c->chan, m, msgtypes);
		if (rv == 0 || (rv == -1 && errno != EBADMSG)) {
			/* EOF: the child is leaving; SIGCHLD tells the rest */
			if (rv == 0 || errno != EAGAIN)
				ev_io_del(&mloop, &c->io);
			break;
		}
		if (rv == -1)
			continue;	/* logged and dropped */
		if (m->hdr.type == PROC_MSG_READY)
			child_ready(c);
		else if (m->hdr.type == PROC_MSG_RECYCLE) {
			size_t	n = m->hdr.len < sizeof(c->why) ?
			    m->hdr.len : sizeof(c->why) - 1;

			memcpy(c->why, m->data, n);
			c->why[n] = '\0';
			c->recycle = 1;
		} else if (ops->msg != NULL) {
			struct proc_worker	w;

			memset(&w, 0, sizeof(w));
			w.ops = ops;
			w.role = role_name(c->role);
			w.id = c->id;
			w.pid = c->pid;
			w.generation = c->gen->id;
			w.conf = c->gen->dconf;
			w.ps = &c->gen->ps;
			w.slot = c->slot;
			ops->msg(&w, m);
		}
		if (m->fd != -1)
			close(m->fd);
	}
	free(m);
}

static void
spawn_timer(struct ev_timer *t)
{
	struct proc_spawn	*s = t->arg;

	gen_spawn(s->gen, s->role, s->id);
}

static void
gen_spawn(struct proc_gen *g, int role, int id)
{
	struct proc_child	*c;
	int			 fds[2], slot;
	pid_t			 pid;

	if (stopping || g->state == GEN_RETIRING)
		return;
	if (ipc_pair(fds) == -1) {
		log_warn("%s: socketpair", __func__);
		goto later;
	}
	slot = slot_get();
	switch ((pid = fork())) {
	case -1:
		log_warn("%s: fork", __func__);
		close(fds[0]);
		close(fds[1]);
		slot_put(slot);
		goto later;
	case 0:
		close(fds[0]);
		child_main(g, role, id, fds[1], slot);
		/* NOTREACHED */
	}
	close(fds[1]);
	if ((c = calloc(1, sizeof(*c))) == NULL)
		fatal("%s", __func__);
	c->pid = pid;
	c->role = role;
	c->id = id;
	c->slot = slot;
	c->chan = fds[0];
	c->gen = g;
	c->started = ev_now(&mloop);
	net_nonblock(c->chan);
	if (ev_io_add(&mloop, &c->io, c->chan, EPOLLIN, child_chan, c) == -1)
		fatal("%s: ev_io_add", __func__);
	TAILQ_INSERT_TAIL(&children, c, entry);
	g->nchildren++;
	log_debug("started %s %d (pid %d) of generation %d", role_name(role),
	    id + 1, pid, g->id);
	return;
 later:
	if (g->backoff[role][id] < PROC_BACKOFF_MIN)
		g->backoff[role][id] = PROC_BACKOFF_MIN;
	ev_timer_init(&g->spawn[role][id].timer, spawn_timer,
	    &g->spawn[role][id]);
	ev_timer_add(&mloop, &g->spawn[role][id].timer, g->backoff[role][id]);
}

static void
gen_start(struct proc_gen *g)
{
	int	r, i, n;

	g->id = ++ngen;
	g->nexpected = 0;
	for (r = 0; r < nroles(); r++) {
		n = role_count(g, r);
		for (i = 0; i < n; i++) {
			g->spawn[r][i].gen = g;
			g->spawn[r][i].role = r;
			g->spawn[r][i].id = i;
			ev_timer_init(&g->spawn[r][i].timer, spawn_timer,
			    &g->spawn[r][i]);
			g->nexpected++;
			gen_spawn(g, r, i);
		}
	}
}

static void
signal_gen(struct proc_gen *g, int sig)
{
	struct proc_child	*c;

	TAILQ_FOREACH(c, &children, entry)
		if (g == NULL || c->gen == g)
			kill(c->pid, sig);
}

static void
retire_timeout(struct ev_timer *t)
{
	struct proc_gen	*g = t->arg;

	if (g->nchildren > 0) {
		log_warnx("generation %d: %d process%s still busy after the "
		    "shutdown timeout, killing", g->id, g->nchildren,
		    g->nchildren == 1 ? "" : "es");
		signal_gen(g, SIGKILL);
	}
}

/* Tell a generation's children to finish and go. */
static void
gen_retire(struct proc_gen *g)
{
	int	r, i;

	g->state = GEN_RETIRING;
	for (r = 0; r <= PROC_MAXROLES; r++)
		for (i = 0; i < PROC_MAXWORKERS; i++)
			ev_timer_del(&mloop, &g->spawn[r][i].timer);
	gen_unlisten(g, current != g ? current : NULL);
	signal_gen(g, SIGTERM);
	ev_timer_init(&g->deadline, retire_timeout, g);
	ev_timer_add(&mloop, &g->deadline, g->ps.grace_ms);
	if (g->nchildren == 0)
		gen_free(g);
}

static void
ready_timeout(struct ev_timer *t)
{
	struct proc_gen	*g = t->arg;

	if (g->state != GEN_STARTING)
		return;
	log_warnx("reload failed, keeping current configuration: the new "
	    "workers did not start within %d ms", PROC_READY_TIMEOUT);
	gen_unlisten(g, current);
	g->state = GEN_RETIRING;
	signal_gen(g, SIGKILL);
	if (g->nchildren == 0)
		gen_free(g);
}

static void
reload(void)
{
	struct proc_gen	*g, *t;

	if (stopping)
		return;
	TAILQ_FOREACH(t, &gens, entry)
		if (t->state == GEN_STARTING) {
			log_warnx("reload ignored: the previous one is still "
			    "starting");
			return;
		}
	log_info("reloading configuration from %s", conffile);
	if ((g = gen_load()) == NULL) {
		log_warnx("reload failed, keeping current configuration");
		return;
	}
	if (strcmp(g->ps.pidfile, current->ps.pidfile) != 0)
		log_warnx("pidfile changes only at restart; still %s",
		    current->ps.pidfile);
	if (gen_listen(g, current) == -1) {
		log_warnx("reload failed, keeping current configuration");
		ops->unload ? ops->unload(g->dconf) : (void)0;
		g->dconf = NULL;
		conf_free(g->tree);
		free(g);
		return;
	}
	if (ops->setup != NULL && ops->setup(g->dconf, &g->ps) == -1) {
		log_warnx("reload failed, keeping current configuration");
		gen_unlisten(g, current);
		ops->unload ? ops->unload(g->dconf) : (void)0;
		g->dconf = NULL;
		conf_free(g->tree);
		free(g);
		return;
	}
	TAILQ_INSERT_TAIL(&gens, g, entry);
	g->state = GEN_STARTING;
	gen_start(g);
	ev_timer_init(&g->deadline, ready_timeout, g);
	ev_timer_add(&mloop, &g->deadline, PROC_READY_TIMEOUT);
	if (g->nexpected == 0) {
		/* a conf with no process at all is ready at once */
		ev_timer_del(&mloop, &g->deadline);
		g->state = GEN_CURRENT;
		t = current;
		current = g;
		gen_retire(t);
	}
}

static void
child_exited(struct proc_child *c, int status)
{
	struct proc_gen	*g = c->gen;
	char		 how[128];
	uint64_t	 lived = ev_now(&mloop) - c->started;
	int		 expected;

	if (WIFSIGNALED(status))
		snprintf(how, sizeof(how), "killed by signal %d (%s)",
		    WTERMSIG(status), strsignal(WTERMSIG(status)));
	else
		snprintf(how, sizeof(how), "exited with status %d",
		    WEXITSTATUS(status));
	expected = stopping || g->state == GEN_RETIRING || c->leaving;
	if (expected && WIFEXITED(status) && WEXITSTATUS(status) == 0)
		log_debug("%s %d (pid %d) of generation %d %s",
		    role_name(c->role), c->id + 1, c->pid, g->id, how);
	else if (c->recycle && !expected)
		log_info("%s %d (pid %d) %s: recycled%s%s, replacing it",
		    role_name(c->role), c->id + 1, c->pid, how,
		    c->why[0] ? ", " : "", c->why);
	else
		log_warnx("%s %d (pid %d) %s%s", role_name(c->role), c->id + 1,
		    c->pid, how, expected ? "" : ", respawning");

	ev_io_del(&mloop, &c->io);
	close(c->chan);
	if (ops->child_gone != NULL && g->dconf != NULL) {
		int	n = ops->child_gone(g->dconf, &g->ps, c->slot);

		if (n != 0)
			log_warnx("%s %d (pid %d) left %d connection%s counted "
			    "in shared memory: taken back", role_name(c->role),
			    c->id + 1, c->pid, n, n == 1 ? "" : "s");
	}
	slot_put(c->slot);
	TAILQ_REMOVE(&children, c, entry);
	g->nchildren--;
	if (c->ready)
		g->nready--;

	if (!expected && g->state == GEN_STARTING && !c->ready) {
		/* a new generation that cannot start: keep the old one */
		log_warnx("reload failed, keeping current configuration: "
		    "%s %d of the new configuration %s", role_name(c->role),
		    c->id + 1, how);
		gen_unlisten(g, current);
		g->state = GEN_RETIRING;
		signal_gen(g, SIGKILL);
	} else if (!expected) {
		uint64_t	b = g->backoff[c->role][c->id];

		if (lived >= PROC_STABLE || c->recycle)
			b = 0;
		else
			b = b == 0 ? PROC_BACKOFF_MIN : (b * 2 >
			    PROC_BACKOFF_MAX ? PROC_BACKOFF_MAX : b * 2);
		g->backoff[c->role][c->id] = b;
		if (b == 0)
			gen_spawn(g, c->role, c->id);
		else {
			log_info("respawning %s %d in %llu ms",
			    role_name(c->role), c->id + 1,
			    (unsigned long long)b);
			ev_timer_add(&mloop, &g->spawn[c->role][c->id].timer,
			    b);
		}
	}
	/* its channel's event may be later in this batch: free after it */
	TAILQ_INSERT_TAIL(&graveyard, c, entry);
	if (g->state == GEN_RETIRING && g->nchildren == 0) {
		if (g != current)
			gen_free(g);
	}
	master_check_done();
}

static void
master_after(struct ev_loop *l, void *arg)
{
	struct proc_child	*c;

	while ((c = TAILQ_FIRST(&graveyard)) != NULL) {
		TAILQ_REMOVE(&graveyard, c, entry);
		free(c);
	}
}

static void
reap(void)
{
	struct proc_child	*c;
	pid_t			 pid;
	int			 status;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		TAILQ_FOREACH(c, &children, entry)
			if (c->pid == pid)
				break;
		if (c != NULL)
			child_exited(c, status);
	}
}

static __dead void
master_exit(void)
{
	struct proc_gen	*g;

	TAILQ_FOREACH(g, &gens, entry)
		gen_unlisten(g, NULL);
	if (pfh != NULL)
		pidfile_remove(pfh);
	log_info("stopped");
	while ((g = TAILQ_FIRST(&gens)) != NULL)
		gen_free(g);
	ev_free(&mloop);
	free(defines);
	exit(0);
}

static void
master_check_done(void)
{
	if (stopping && TAILQ_EMPTY(&children))
		master_exit();
}

static void
stop_timeout(struct ev_timer *t __unused)
{
	if (!TAILQ_EMPTY(&children)) {
		log_warnx("processes still running after the %s, killing",
		    stopping == 2 ? "fast stop" : "shutdown timeout");
		signal_gen(NULL, SIGKILL);
	}
}

static void
stop(int fast)
{
	struct proc_gen	*g;

	if (stopping >= (fast ? 2 : 1))
		return;
	stopping = fast ? 2 : 1;
	log_info("stopping%s", fast ? " now" : ", finishing requests in "
	    "progress");
	TAILQ_FOREACH(g, &gens, entry) {
		int	r, i;

		for (r = 0; r <= PROC_MAXROLES; r++)
			for (i = 0; i < PROC_MAXWORKERS; i++)
				ev_timer_del(&mloop, &g->spawn[r][i].timer);
		ev_timer_del(&mloop, &g->deadline);
		/* the children keep their copies until they are done */
		gen_unlisten(g, NULL);
	}
	signal_gen(NULL, fast ? SIGINT : SIGTERM);
	/* a fast stop after a graceful one: the timer is armed already */
	ev_timer_del(&mloop, &stoptimer);
	ev_timer_init(&stoptimer, stop_timeout, NULL);
	ev_timer_add(&mloop, &stoptimer, fast ? PROC_FAST_GRACE :
	    current->ps.grace_ms);
	master_check_done();
}

static void
master_signal(struct ev_signal *s __unused, int sig, pid_t from __unused)
{
	struct proc_gen	*g;

	switch (sig) {
	case SIGCHLD:
		reap();
		break;
	case SIGHUP:
		reload();
		break;
	case SIGTERM:
	case SIGQUIT:
		stop(0);
		break;
	case SIGINT:
		stop(1);
		break;
	case SIGUSR1:
		log_info("reopening log files");
		/* those of every generation still running: one retiring,
		 * or still starting, may log to files of its own */
		if (ops->reopen != NULL)
			TAILQ_FOREACH(g, &gens, entry)
				if (g->dconf != NULL)
					ops->reopen(g->dconf);
		signal_gen(NULL, SIGUSR1);
		break;
	}
}

/* The pool, for ops->tick */

static void
tick_timer(struct ev_timer *t)
{
	struct proc_pool	pool;

	if (current != NULL) {
		pool.gen = current;
		ops->tick(current->dconf, &pool);
	}
	ev_timer_add(&mloop, &ticktimer, PROC_TICK);
}

int
proc_pool_stopping(struct proc_pool *pool)
{
	return (stopping);
}

/*
 * Workers of the pool's generation that stay: alive and not leaving, or
 * waiting to be respawned.
 */
int
proc_pool_count(struct proc_pool *pool)
{
	struct proc_gen		*g = pool->gen;
	struct proc_child	*c;
	int			 n = 0, i, alive[PROC_MAXWORKERS];

	memset(alive, 0, sizeof(alive));
	TAILQ_FOREACH(c, &children, entry)
		if (c->gen == g && c->role == 0) {
			alive[c->id] = 1;
			if (!c->leaving)
				n++;
		}
	for (i = 0; i < PROC_MAXWORKERS; i++)
		if (!alive[i] && ev_timer_pending(&g->spawn[0][i].timer))
			n++;
	return (n);
}

/*
 * Start one more worker in the pool's generation, under the lowest free
 * id.  Returns 0, or -1 when the generation cannot grow: stopping, not
 * current, a reload starting, or PROC_MAXWORKERS reached.
 */
int
proc_pool_spawn(struct proc_pool *pool)
{
	struct proc_gen		*g = pool->gen, *t;
	struct proc_child	*c;
	int			 used[PROC_MAXWORKERS], id;

	if (stopping || g != current || g->state != GEN_CURRENT)
		return (-1);
	TAILQ_FOREACH(t, &gens, entry)
		if (t->state == GEN_STARTING)
			return (-1);
	memset(used, 0, sizeof(used));
	TAILQ_FOREACH(c, &children, entry)
		if (c->gen == g && c->role == 0)
			used[c->id] = 1;
	for (id = 0; id < PROC_MAXWORKERS; id++)
		if (!used[id] && !ev_timer_pending(&g->spawn[0][id].timer))
			break;
	if (id == PROC_MAXWORKERS)
		return (-1);
	g->spawn[0][id].gen = g;
	g->spawn[0][id].role = 0;
	g->spawn[0][id].id = id;
	ev_timer_init(&g->spawn[0][id].timer, spawn_timer, &g->spawn[0][id]);
	g->backoff[0][id] = 0;
	gen_spawn(g, 0, id);
	return (0);
}

static struct proc_child *
pool_child(pid_t pid)
{
	struct proc_child	*c;

	TAILQ_FOREACH(c, &children, entry)
		if (c->pid == pid && c->role == 0)
			return (c);
	return (NULL);
}

/* Ask worker <pid> of the pool to finish and go, without a successor. */
int
proc_pool_retire(struct proc_pool *pool, pid_t pid)
{
	struct proc_child	*c;

	if ((c = pool_child(pid)) == NULL || c->gen != pool->gen ||
	    c->leaving)
		return (-1);
	c->leaving = 1;
	return (kill(pid, SIGTERM));
}

/*
 * Send <sig> to worker <pid> (of any generation); when it dies it is
 * replaced at once, without back-off, as a recycled worker.
 */
int
proc_pool_kill(struct proc_pool *pool, pid_t pid, int sig)
{
	struct proc_child	*c;

	if ((c = pool_child(pid)) == NULL)
		return (-1);
	c->recycle = 1;
	return (kill(pid, sig));
}

/* Fill <out> with at most <max> live children; returns how many. */
int
proc_pool_children(struct proc_pool *pool, struct proc_child_info *out,
    int max)
{
	struct proc_child	*c;
	int			 n = 0;

	TAILQ_FOREACH(c, &children, entry) {
		if (n >= max)
			break;
		out[n].pid = c->pid;
		out[n].role = c->role;
		out[n].id = c->id;
		out[n].slot = c->slot;
		out[n].generation = c->gen->id;
		out[n].current = c->gen == current;
		out[n].leaving = c->leaving || c->recycle ||
		    c->gen->state == GEN_RETIRING || stopping;
		out[n].started = c->started;
		n++;
	}
	return (n);
}

static __dead void
usage(void)
{
	fprintf(stderr, "usage: %s [-dnv] [-D macro=value] [-f file] "
	    "[-p pidfile]\n", ops->name);
	exit(1);
}

/* <path> from the current folder, made absolute (kept as is on error). */
static const char *
abspath(const char *path)
{
	char	cwd[PATH_MAX], *abs;

	if (path[0] == '/' || getcwd(cwd, sizeof(cwd)) == NULL ||
	    asprintf(&abs, "%s/%s", cwd, path) == -1)
		return (path);
	return (abs);
}

int
proc_main(int argc, char **argv, const struct proc_ops *o)
{
	struct proc_gen	*g;
	sigset_t	 mask;
	pid_t		 other;
	int		 ch, configtest = 0, verbose = 0, i, n;
	char		 title[PATH_MAX + 16];

	ops = o;
	setproctitle_init(argc, argv, environ);
	setprogname(ops->name);
	conffile = ops->conffile;
	while ((ch = getopt(argc, argv, "D:df:np:tv")) != -1) {
		switch (ch) {
		case 'D':
			if ((defines = reallocarray(defines, ndefines + 1,
			    sizeof(*defines))) == NULL)
				fatal("%s", __func__);
			if (strchr(optarg, '=') == NULL) {
				fprintf(stderr, "%s: -D %s: expected "
				    "macro=value\n", ops->name, optarg);
				exit(1);
			}
			defines[ndefines++] = optarg;
			break;
		case 'd':
			debug = 1;
			break;
		case 'f':
			conffile = optarg;
			break;
		case 'n':
		case 't':
			configtest = 1;
			break;
		case 'p':
			pidfile_arg = optarg;
			break;
		case 'v':
			verbose++;
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
	/*
	 * The master moves to / (daemon(3)): a reload must find the same
	 * conf file, and the exit the same pidfile, as the start did.
	 */
	conffile = abspath(conffile);
	if (pidfile_arg != NULL)
		pidfile_arg = abspath(pidfile_arg);

	log_init(1, LOG_DAEMON);
	log_setverbose(verbose);
	msgtypes[0] = (struct ipc_type){ PROC_MSG_READY, 0, 0, 0, "ready" };
	msgtypes[1] = (struct ipc_type){ PROC_MSG_RECYCLE, 0, 512, 0,
	    "recycle" };
	n = 2;
	for (i = 0; ops->msgtypes != NULL && ops->msgtypes[i].name != NULL &&
	    n < (int)nitems(msgtypes) - 1; i++)
		msgtypes[n++] = ops->msgtypes[i];
	if (ev_init(&mloop) == -1)
		fatal("epoll");
	/*
	 * The shared segments exist before the conf is loaded: a daemon's
	 * load() finds its shared blocks there (upstream pools: balancing
	 * state, connection counts, passive health), and a block taken
	 * before the mapping would be private to each worker.
	 */
	if (stats_init(0) == -1 || shm_init(0) == -1)
		fatal("cannot map the shared memory segments");
	if ((g = gen_load()) == NULL) {
		if (!configtest)
			fprintf(stderr, "%s: not starting\n", ops->name);
		exit(1);
	}
	if (configtest) {
		fprintf(stderr, "configuration OK\n");
		exit(0);
	}

	if ((pfh = pidfile_open(g->ps.pidfile, 0644, &other)) == NULL) {
		if (errno == EEXIST)
			fatalx("already running as pid %d (pidfile %s)",
			    (int)other, g->ps.pidfile);
		fatal("cannot create pidfile %s", g->ps.pidfile);
	}
	if (gen_listen(g, NULL) == -1) {
		pidfile_remove(pfh);
		exit(1);
	}
	if (ops->setup != NULL && ops->setup(g->dconf, &g->ps) == -1) {
		gen_unlisten(g, NULL);
		pidfile_remove(pfh);
		fatalx("not starting");
	}
	if (!debug) {
		if (daemon(0, 0) == -1)
			fatal("daemon");
		/* daemon(3) leaves std fds on /dev/null; keep them there */
	}
	masterpid = getpid();
	if (pidfile_write(pfh) == -1)
		log_warn("cannot write pidfile %s", g->ps.pidfile);
	log_init(debug, g->ps.facility);
	snprintf(title, sizeof(title), "master -f %s", conffile);
	setproctitle("%s", title);
	stats_set_slot(0);
	slots[0] = 1;

	/* the master's event loop was made before daemon(): still valid */
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGQUIT);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGUSR1);
	sigaddset(&mask, SIGUSR2);
	sigaddset(&mask, SIGPIPE);
	if (ev_signal_add(&mloop, &msig, &mask, master_signal, NULL) == -1)
		fatal("signalfd");
	/* children should see SIGPIPE as EPIPE, not die of it */
	signal(SIGPIPE, SIG_IGN);

	TAILQ_INSERT_TAIL(&gens, g, entry);
	g->state = GEN_CURRENT;
	current = g;
	log_info("started, %d worker%s, pid %d", g->ps.workers,
	    g->ps.workers == 1 ? "" : "s", (int)masterpid);
	gen_start(g);
	if (ops->tick != NULL) {
		ev_timer_init(&ticktimer, tick_timer, NULL);
		ev_timer_add(&mloop, &ticktimer, PROC_TICK);
	}
	mloop.after = master_after;
	ev_run(&mloop);
	return (0);
}

/* Children */

/*
 * In a child that takes SIGTERM, SIGQUIT and SIGINT with handlers of its
 * own rather than proc_worker_watch(): let them in, once the handlers
 * are in place (they are held from the fork, and one may be pending).
 */
void
proc_worker_unblock(void)
{
	sigset_t	mask;

	stop_signals(&mask);
	sigprocmask(SIG_UNBLOCK, &mask, NULL);
}

int
proc_worker_ready(struct proc_worker *w)
{
	return (ipc_send(w->chan, PROC_MSG_READY, NULL, 0, -1));
}

/*
 * Tell the master this child is about to leave on purpose (<why>, for
 * its log line), so that it is replaced at once, without back-off.
 */
int
proc_worker_recycle(struct proc_worker *w, const char *why)
{
	return (ipc_send(w->chan, PROC_MSG_RECYCLE, why, strlen(why), -1));
}

static void
worker_begin_drain(struct proc_worker *w)
{
	if (w->draining)
		return;
	w->draining = 1;
	if (w->drain != NULL)
		w->drain(w);
}

static void
worker_signal(struct ev_signal *s, int sig, pid_t from __unused)
{
	struct proc_worker	*w = s->arg;

	switch (sig) {
	case SIGTERM:
	case SIGQUIT:
		worker_begin_drain(w);
		break;
	case SIGINT:
		exit(0);
	case SIGUSR1:
		if (w->reopen != NULL)
			w->reopen(w);
		break;
	default:
		break;
	}
}

static void
worker_chan(struct ev_io *io, uint32_t events __unused)
{
	struct proc_worker	*w = io->arg;
	char			 b[64];
	ssize_t			 n;

	n = recv(w->chan, b, sizeof(b), MSG_DONTWAIT);
	if (n == 0 || (n == -1 && errno != EAGAIN && errno != EINTR)) {
		/* the master is gone */
		ev_io_del(w->loop, io);
		worker_begin_drain(w);
	}
}

/*
 * In a child with an event loop: take SIGTERM, SIGQUIT, SIGINT, SIGHUP
 * and SIGUSR1 on <loop>, and watch the master's channel.  SIGTERM,
 * SIGQUIT and the master's death call w->drain once (stop accepting,
 * finish in-flight work, then leave the loop); SIGINT exits at once.
 * Then tells the master this child is ready.
 */
int
proc_worker_watch(struct proc_worker *w, struct ev_loop *loop)
{
	sigset_t	mask;

	stop_signals(&mask);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGUSR1);
	w->loop = loop;
	/* workers only: a helper spinning takes a CPU from them */
	if (strcmp(w->role, "worker") == 0)
		loop->busy_us = w->ps->busy_us;
	if (ev_signal_add(loop, &w->sig, &mask, worker_signal, w) == -1)
		return (-1);
	/* blocked now, and read from the signalfd */
	signal(SIGHUP, SIG_DFL);
	signal(SIGUSR1, SIG_DFL);
	net_nonblock(w->chan);
	if (ev_io_add(loop, &w->chanio, w->chan, EPOLLIN, worker_chan,
	    w) == -1)
		return (-1);
	return (proc_worker_ready(w));
}
