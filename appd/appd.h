/*
 * appd.h: the application server: a pool of pre-forked workers running
 * the site's code (C modules, CGI programs) one request at a time.
 */
#ifndef APPD_H
#define APPD_H

#include <sys/types.h>
#include <sys/socket.h>
#include <stdatomic.h>
#include <stdint.h>

#include "app.h"
#include "buf.h"
#include "conf.h"
#include "http.h"
#include "http_server.h"
#include "net.h"
#include "proc.h"
#include "stats.h"

#define APPD_CONF		"/etc/appd.conf"
#define APPD_MAXAPPS		16
#define APPD_MAXROUTES		64
#define APPD_MAXSETTINGS	64		/* "set" lines per app */
#define APPD_REQLINE		256		/* request line in the board */
#define APPD_PRESSURE_MS	20		/* ms queued: an idle kept
						   connection makes room */
#define APPD_AVAIL_MS		2		/* ms idle: worker available */
#define APPD_LINGER_MS		1000		/* ms a leaving worker keeps
						   its idle connection */
#define APPD_MAXRESP		(64 * 1024 * 1024)	/* response body */
#define APPD_MAXBODY_HARD	(1024LL * 1024 * 1024)	/* max-body-size 0 */
#define APPD_MAXREDIRECTS	5		/* CGI local redirects */
#define APPD_CGI_MAXOUT		(64 * 1024 * 1024)	/* CGI output */
#define APPD_CGI_MAXHEAD	(64 * 1024)	/* CGI header block */
#define APPD_CGI_MAXENV		256		/* meta-variables */
#define APPD_CGI_LOGLINE	4096		/* stderr lines cut above */
#define APPD_MAXJSONDEPTH	64
#define APPD_LSN_COOKIE		"appd_lsn"
#define APPD_LSN_WAIT		2000		/* ms, default lsn-wait */
#define APPD_DB_TIMEOUT		10000		/* ms, database-timeout */

/* Defaults of the pool, for <n> CPUs. */
#define APPD_MAXWORKERS(n)	((n) * 4 < 4 ? 4 : (n) * 4 > PROC_MAXWORKERS ? \
				    PROC_MAXWORKERS : (n) * 4)
#define APPD_MINSPARE(n)	((n) < 1 ? 1 : (n))
#define APPD_MAXSPARE(n)	((n) * 2 < 2 ? 2 : (n) * 2)

enum appd_pool {
	POOL_STATIC = 0,
	POOL_DYNAMIC
};

enum route_kind {
	ROUTE_APP = 0,
	ROUTE_CGI
};

/* A worker's state in the scoreboard. */
enum board_state {
	W_FREE = 0,		/* no process */
	W_STARTING,		/* loading its modules */
	W_IDLE,			/* waiting for a connection */
	W_KEEPALIVE,		/* idle on a kept connection */
	W_READING,		/* reading a request */
	W_BUSY,			/* running it, writing the answer */
	W_EXITING
};

/*
 * The scoreboard: one slot per process slot of common/proc (its
 * statistics slot), in shared memory.  Each worker writes its own slot;
 * the master reads them all every PROC_TICK ms (pool size, timeouts,
 * slow requests) and so does the status process.  The request line is
 * guarded by a sequence counter (odd while it is being written).
 */
struct board_slot {
	_Atomic int32_t		 pid;
	_Atomic int32_t		 state;
	_Atomic int32_t		 generation;
	_Atomic int32_t		 id;
	_Atomic uint64_t	 started;	/* ms, monotonic */
	_Atomic uint64_t	 requests;	/* served by this process */
	_Atomic uint64_t	 seq;		/* request number, 0 between */
	_Atomic uint64_t	 req_start;	/* ms, monotonic */
	_Atomic uint64_t	 idle_since;	/* ms, monotonic */
	_Atomic uint64_t	 kill_seq;	/* master: request to kill */
	_Atomic uint64_t	 rss;		/* bytes, after a request */
	_Atomic uint32_t	 lineseq;
	char			 line[APPD_REQLINE];
	/* the master's own */
	uint64_t		 slow_seq;	/* logged as slow */
	uint64_t		 kill_at;	/* SIGKILL deadline, ms */
};

struct board {
	_Atomic uint64_t	 start_time;	/* s, epoch */
	_Atomic int32_t		 listen_queue;	/* last sample */
	_Atomic int32_t		 max_listen_queue;
	_Atomic int32_t		 listen_queue_len;	/* backlog */
	_Atomic int32_t		 max_active;
	_Atomic int32_t		 full;		/* all workers busy */
	struct board_slot	 slots[STATS_SLOTS];
};

struct app_setting {
	char	*name;
	char	*value;
};

/* An application module and its settings block (app.h's app_conf). */
struct app_conf {
	char			*name;
	char			*module;	/* path of the shared object */
	struct app_setting	 settings[APPD_MAXSETTINGS];
	int			 nsettings;
	char			*db_nodes;	/* NULL: no database */
	char			*db_secret;
	char			*lsn_cookie;
	int			 db_timeout;	/* ms */
	int			 lsn_wait;	/* ms */
	unsigned		 db_busy_us;	/* us, database-busy-poll */
	/* in a worker */
	void			*dl;
	const struct app_module	*mod;
	struct app_db		*db;
	int			 inited;
};

struct appd_route {
	char			*prefix;
	size_t			 prefixlen;
	enum route_kind		 kind;
	struct app_conf		*app;		/* ROUTE_APP */
	char			*dir;		/* ROUTE_CGI: the programs */
	char			*root;		/* ROUTE_CGI: DOCUMENT_ROOT */
	uint64_t		 timeout;	/* ROUTE_CGI, ms */
};

struct appd_conf {
	char			*name;		/* instance name */
	struct http_limits	 lim;
	enum appd_pool		 pool;
	int			 workers;	/* static */
	int			 start_workers;
	int			 min_spare;
	int			 max_spare;
	int			 max_workers;
	int			 spawn_rate;	/* per second */
	uint64_t		 idle_timeout;	/* ms, shrink to min-spare */
	uint64_t		 max_requests;
	uint64_t		 max_rss;	/* bytes */
	uint64_t		 rlimit_as;	/* bytes */
	uint64_t		 request_timeout;	/* ms */
	uint64_t		 kill_grace;	/* ms */
	uint64_t		 slow_request;	/* ms */
	uint64_t		 cgi_timeout;	/* ms, default of CGI routes */
	struct net_trusted	 trusted;
	struct app_conf		*apps[APPD_MAXAPPS];
	int			 napps;
	struct appd_route	 routes[APPD_MAXROUTES];
	int			 nroutes;
	struct http_server	*status;	/* the status listener's */
	struct net_acl		 status_acl;
	struct proc_settings	*ps;		/* master: the listeners */
	struct board		*board;
	/* statistics, registered in the master (setup) */
	struct stats_metric	*m_req[6];	/* by status class */
	struct stats_metric	*m_dur;
	struct stats_metric	*m_accepted;
	struct stats_metric	*m_slow;
	struct stats_metric	*m_timeouts;
	struct stats_metric	*m_full;
	struct stats_metric	*m_recycled[2];	/* max-requests, max-rss */
	struct stats_metric	*m_cgi_timeouts;
	struct stats_metric	*m_spawned;
	struct stats_metric	*m_retired;
};

/* The request being handled, in a worker (app.h's app_req). */
struct arena;
struct kv;

struct app_req {
	struct appd_conf	*ac;
	const struct appd_route	*route;
	struct app_conf		*app;
	int			 fd;
	const struct sockaddr	*peer;
	const char		*head;		/* the message head */
	const struct http_msg	*msg;
	const char		*method;
	char			*path;		/* decoded, normalized */
	const char		*subpath;
	char			*query;		/* raw, NUL-terminated */
	const char		*body;
	size_t			 bodylen;
	uint64_t		 write_lsn;
	uint64_t		 cookie_lsn;	/* -1: not read yet */
	int			 cookie_lsn_read;
	char			*client;
	struct kv		*qs;		/* parsed on demand */
	int			 nqs, qs_done;
	struct kv		*form;
	int			 nform, form_done;
	struct kv		*json;
	int			 njson, json_done, json_ok;
	struct app_rows		*rows;		/* freed at the end */
	struct arena		*arena;
	int			 redirects;	/* CGI local redirects */
};

struct json_level {
	char	kind;			/* '{' or '[' */
	int	n;			/* values so far */
	int	keyed;			/* a key waits for its value */
};

/* The response being built (app.h's app_resp). */
struct app_resp {
	int			 status;
	struct buf		 head;		/* "Name: value\r\n" lines */
	struct buf		 body;
	int			 has_type;
	int			 json_used;
	int			 err;		/* building failed: 500 */
	struct json_level	 json[APPD_MAXJSONDEPTH];
	int			 depth;
	int			 json_done;	/* a top-level value ended */
};

/* appd.c */
extern struct appd_conf	*aconf;

/* parse.c */
extern const struct conf_kw appd_grammar[];
void	*appd_load(struct conf *, struct proc_settings *);
void	 appd_unload(void *);
int	 appd_setup(void *, struct proc_settings *);
int	 appd_is_worker_listener(struct appd_conf *,
	    const struct proc_listener *);

/* board.c */
struct board	*board_get(void);
struct board_slot *board_attach(struct board *, int);
void	 board_set_line(struct board_slot *, const char *, size_t);
void	 board_get_line(struct board_slot *, char *, size_t);
const char *board_state_name(int);
int	 board_active(int);
int	 board_idle(int);

/* pool.c */
void	 pool_tick(void *, struct proc_pool *);

/* worker.c */
int	 worker_main(struct proc_worker *);
int	 worker_child_init(struct proc_worker *);
void	 worker_cgi_pid(pid_t);

/* request.c */
void	 req_init(struct app_req *, struct appd_conf *, struct arena *);
void	 req_finish(struct app_req *);
void	 resp_init(struct app_resp *);
void	 resp_reset(struct app_resp *);
void	 resp_free(struct app_resp *);
const struct appd_route *route_find(struct appd_conf *, const char *,
	    const char **);
void	*arena_alloc(struct arena *, size_t);
char	*arena_strndup(struct arena *, const char *, size_t);
struct arena *arena_new(void);
void	 arena_reset(struct arena *);
void	 arena_free(struct arena *);
int	 resp_header_ok(const char *, const char *);
int	 resp_header_raw(struct app_resp *, const char *, const char *);
int	 req_peer_trusted(struct app_req *);
int	 req_json_add(struct app_req *, const char *, const char *, size_t);

/* json.c */
int	 json_escape(struct buf *, const char *, size_t);
int	 json_parse_object(struct app_req *, const char *, size_t);

/* db.c */
void	 db_close_all(struct appd_conf *);
void	 db_req_end(struct app_req *);

/* app.c */
int	 app_load_check(const char *, char *, size_t);
int	 app_load(struct app_conf *, char *, size_t);
int	 app_init_all(struct appd_conf *);
void	 app_fini_all(struct appd_conf *);
int	 app_run(struct app_req *, struct app_resp *);

/* cgi.c */
int	 cgi_run(struct app_req *, struct app_resp *);

/* status.c */
int	 status_count(void *);
int	 status_main(struct proc_worker *);
struct http_server *status_server(struct appd_conf *);
void	 status_free(struct http_server *);

/* queue.c */
int	 listen_queue(int, int, int *, int *);

#endif
