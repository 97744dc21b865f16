/*
 * lbd.h: the load balancer.
 *
 * Processes: the master (common/proc.c), N workers that accept and relay
 * (HTTP through common/'s engine and proxy core, or TCP through tunnels),
 * and one checker process that runs every health check and serves the
 * control socket (lbdctl).  What they share lives in shared memory:
 * server state and counts (common/upstream.h), rate-limit tables, the
 * statistics.
 */
#ifndef LBD_H
#define LBD_H

#include <sys/types.h>
#include <sys/queue.h>
#include <stdint.h>

#include "auth.h"
#include "conf.h"
#include "http.h"
#include "http_server.h"
#include "net.h"
#include "proc.h"
#include "proxy.h"
#include "shm.h"
#include "stats.h"
#include "upstream.h"

#define LBD_CONF		"/etc/lbd.conf"
#define LBD_SOCKET		"/run/lbd.sock"
#define LBD_MAXRULES		64		/* routing rules per frontend */
#define LBD_MAXHDRRULES		32		/* header rules per frontend */
#define LBD_MAXERRPAGE		(64 * 1024)	/* an error page file */
#define LBD_RL_ENTRIES		65536		/* sources tracked per frontend */
#define LBD_RL_PROBE		8		/* slots tried per source */
#define LBD_RL_HELD		4096		/* a worker's ledger, per frontend */
#define LBD_COOKIE_MACLEN	16		/* hex digits of the cookie MAC */
#define LBD_CHECK_MAXRESP	16384		/* bytes of a check reply read */
#define LBD_CTL_MAXLINE		1024		/* a control command */
#define LBD_MAXSTATUS		16		/* expected status ranges */

enum lbd_mode {
	MODE_HTTP = 0,
	MODE_TCP
};

enum lbd_rule_type {
	RULE_HOST = 0,		/* Host equals, or *.suffix */
	RULE_PATH		/* path prefix */
};

struct lbd_backend;

struct lbd_rule {
	enum lbd_rule_type	 type;
	char			*value;
	size_t			 len;
	char			*path;		/* a host rule's, or NULL */
	size_t			 pathlen;
	struct net_acl		 acl;		/* who may, if has_acl */
	int			 has_acl;
	uint32_t		 rate_max;	/* per source and window, 0 */
	uint32_t		 rate_window;	/* ms */
	int			 rate_status;
	struct rl_table		*rl;		/* shared, with rate_max */
	struct http_auth	*auth;		/* basic auth, or NULL */
	struct lbd_backend	*be;
};

enum lbd_hdr_op {
	HDR_SET = 0,
	HDR_ADD,
	HDR_DEL
};

struct lbd_hdrrule {
	enum lbd_hdr_op	 op;
	int		 response;	/* on the response, else the request */
	char		*name;
	char		*value;
};

enum lbd_check_type {
	CHECK_NONE = 0,
	CHECK_TCP,		/* connect */
	CHECK_HTTP,		/* a request, an expected status */
	CHECK_TLS,		/* a TLS handshake */
	CHECK_SEND		/* send a string, expect a substring back */
};

struct lbd_check {
	enum lbd_check_type	 type;
	char			*method;	/* HTTP */
	char			*path;
	char			*host;
	struct {
		int	lo, hi;
	}			 status[LBD_MAXSTATUS];	/* HTTP, inclusive */
	int			 nstatus;
	char			*send;		/* SEND: unescaped */
	size_t			 sendlen;
	char			*expect;	/* SEND, HTTP body (optional) */
	size_t			 expectlen;	/* \x00 may be in it */
	uint32_t		 interval;	/* ms */
	uint32_t		 timeout;	/* ms */
	int			 rise;
	int			 fall;
	int			 tls;		/* HTTP over TLS */
	int			 port;		/* 0: the server's */
};

/*
 * Per server statistics, registered in the master.  The connection
 * errors are the servers' own count in shared memory (up_failed()),
 * rendered with the state when /metrics is asked.
 */
struct lbd_srvstats {
	struct stats_metric	*requests;
	struct stats_metric	*resp[6];	/* by status class */
	struct stats_metric	*bytes_out;
	struct stats_metric	*checks_failed;
	struct stats_metric	*updowns;
};

struct lbd_backend {
	char			*name;
	enum lbd_mode		 mode;
	struct proxy_conf	 pc;		/* the pool and its proxying */
	struct lbd_check	 check;
	char			*cookie;	/* sticky cookie name, NULL */
	struct lbd_srvstats	*srvstats;	/* one per server, by index */
	struct stats_metric	*m_queue;	/* histograms, seconds */
	struct stats_metric	*m_connect;
	struct stats_metric	*m_response;
	struct stats_metric	*m_total;
	struct stats_metric	*m_noserver;	/* 503 without a server */
	struct stats_metric	*m_retries;
	struct stats_metric	*m_redispatch;
	struct lbd_conf		*lc;
	TAILQ_ENTRY(lbd_backend) entry;
};

/* A source's requests (two windows) and connections, in shared memory. */
struct rl_entry {
	uint8_t			 addr[16];
	uint8_t			 family;
	uint8_t			 used;
	uint64_t		 window;	/* index of the current window */
	uint32_t		 cur;		/* requests in it */
	uint32_t		 prev;		/* in the one before */
	int32_t			 conns;
};

struct rl_table {
	shm_lock_t		 lock;
	uint64_t		 seed;		/* of the hash, drawn once */
	struct rl_entry		 e[LBD_RL_ENTRIES];
};

/*
 * The connections one worker (stats slot) holds open in a frontend's
 * table, by entry (index + 1; 0: free), so that the master takes them
 * back when the worker dies holding them: written by that worker only,
 * under the table's lock, and read by the master once it is gone.  Three
 * quarters full, it takes no more sources (those are not taken back).
 */
struct rl_ledger {
	uint32_t		 used;
	uint32_t		 idx[LBD_RL_HELD];
	int32_t			 n[LBD_RL_HELD];
};

struct rl_held {
	struct rl_ledger	 slot[STATS_SLOTS];
};

struct lbd_frontend;

/* A listening address of a frontend; the engine sees srv. */
struct lbd_listener {
	struct http_server	 srv;		/* first */
	struct lbd_frontend	*fe;
	int			 tls;
	struct shm_count	*conns;		/* all workers, shared */
	int			 mine;		/* this worker's */
	char			 addr[96];	/* as in the conf */
	TAILQ_ENTRY(lbd_listener) entry;
};

struct lbd_frontend {
	char			*name;
	enum lbd_mode		 mode;
	struct http_limits	 lim;
	struct tls_ctx		*tls;
	struct net_acl		 acl;
	int			 has_acl;
	struct net_acl		 proxy_from;	/* accept PROXY from these */
	int			 accept_proxy;
	int			 maxconn;	/* per listener, all workers */
	struct lbd_rule		 rules[LBD_MAXRULES];
	int			 nrules;
	struct lbd_backend	*defbe;
	int			 redirect_https;
	int			 redirect_code;
	int			 guarded;	/* a route has an allow list
						 * or basic auth */
	int			 limited;	/* a route has a rate limit */
	char			*redirect_except;	/* path prefix, or NULL */
	struct lbd_hdrrule	 hdr[LBD_MAXHDRRULES];
	int			 nhdr;
	char			*errpage[600];	/* body by status, NULL */
	size_t			 errlen[600];
	uint32_t		 rate_max;	/* requests per window, 0 off */
	uint32_t		 rate_window;	/* ms */
	int			 rate_status;
	uint32_t		 conn_max;	/* per source, 0 off */
	int			 conn_status;
	struct rl_table		*rl;		/* shared */
	struct rl_held		*held;		/* shared, with conn_max */
	uint32_t		 tunnel_timeout;	/* TCP mode idle */
	int			 abort_on_close; /* a client's FIN ends its request */
	struct stats_metric	*m_req[6];
	struct stats_metric	*m_bytes_in;
	struct stats_metric	*m_bytes_out;
	struct stats_metric	*m_sessions;	/* gauge: open connections */
	struct stats_metric	*m_conns;	/* counter: accepted */
	struct stats_metric	*m_denied;
	struct stats_metric	*m_limited;
	struct stats_metric	*m_spliced;	/* tcp mode */
	struct lbd_conf		*lc;
	TAILQ_ENTRY(lbd_frontend) entry;
};

struct lbd_conf {
	TAILQ_HEAD(, lbd_frontend)	 frontends;
	TAILQ_HEAD(, lbd_backend)	 backends;
	TAILQ_HEAD(, lbd_listener)	 listeners;
	struct http_server		*stats;		/* page, /metrics */
	struct net_acl			 stats_acl;
	struct http_auth		*stats_auth;	/* or NULL */
	int				 stats_refresh;	/* seconds */
	int				 healthz_servers; /* 503 when a
							  * backend has none */
	char				*control;	/* socket path */
	int				 control_index;	/* its listener */
	int				 logfacility;
	int				 log;		/* a line per request */
	unsigned char			 cookie_key[32];
};

/* lbd.c */
extern struct lbd_conf	*lconf;

/* parse.c */
extern const struct conf_kw lbd_grammar[];
void	*lbd_load(struct conf *, struct proc_settings *);
void	 lbd_unload(void *);
int	 lbd_setup(void *, struct proc_settings *);
int	 lbd_child_gone(void *, const struct proc_settings *, int);
struct lbd_backend *backend_find(struct lbd_conf *, const char *);

/* relay_http.c */
extern const struct http_handler lbd_handler;
void	 relay_http_hooks(struct lbd_backend *);

/* relay_tcp.c */
int	 relay_tcp_accept(struct lbd_listener *, int, struct ev_loop *,
	    int);
int	 relay_tcp_count(void);
void	 relay_tcp_collect(void);

/* ratelimit.c */
struct rl_table *rl_table(const char *);
int	 rl_request(struct rl_table *, uint32_t, uint32_t,
	    const struct sockaddr *, uint64_t, int);
int	 rl_conn_open(struct lbd_frontend *, const struct sockaddr *);
void	 rl_conn_close(struct lbd_frontend *, const struct sockaddr *);
int	 rl_reap(struct lbd_frontend *, int);

/* sticky.c */
struct up_server *sticky_find(struct lbd_backend *, struct http_req *);
void	 sticky_set(struct lbd_backend *, struct http_req *,
	    struct up_server *);

/* httplog.c */
void	 httplog(struct http_req *, struct lbd_frontend *, struct lbd_backend *,
	    const struct proxy_info *);
void	 httplog_refused(struct http_conn *, struct lbd_frontend *, int);
void	 tcplog(struct lbd_frontend *, struct lbd_backend *, struct up_server *,
	    const struct sockaddr *, uint64_t, uint64_t, uint64_t, uint64_t,
	    const char *);

/* stats_page.c */
struct http_server *stats_server(struct lbd_conf *);
void	 stats_server_free(struct http_server *);
int	 lbd_nup(struct lbd_backend *, int);

/* check.c (the checker process) */
/* A check's verdict, once known. */
enum check_verdict {
	CHECK_MORE = 0,		/* not yet: wants more bytes */
	CHECK_OK,
	CHECK_FAIL
};

/*
 * One check of one server, from connect to verdict: the state machine in
 * check.c; each type's start function (check_<type>.c) fills in what to
 * send and how to judge what comes back.
 */
struct check_srv;
struct check_run {
	struct check_srv	*cs;		/* check.c's schedule */
	struct lbd_backend	*be;
	struct up_server	*srv;
	const struct lbd_check	*ck;
	struct ev_loop		*loop;
	struct sock		 sock;
	struct ev_timer		 timer;		/* the check's timeout */
	int			 state;		/* check.c's CR_* */
	int64_t			 until;		/* set in the shared block */
	struct buf		 out;		/* to send, after connecting */
	struct buf		 in;		/* the answer, bounded */
	/* after the connect (and TLS handshake): a verdict, or CHECK_MORE */
	enum check_verdict	(*connected)(struct check_run *);
	/* after each read, <eof> at the end: a verdict, or CHECK_MORE */
	enum check_verdict	(*judge)(struct check_run *, int);
	enum check_verdict	 verdict;
	int			 code;		/* HTTP status, or 0 */
	char			 desc[96];	/* the result, for logs */
};

int	 checker_main(struct proc_worker *);
int	 checker_count(void *);
void	 check_result(struct lbd_backend *, struct up_server *, int, int,
	    const char *);
void	 check_now(struct lbd_backend *, struct up_server *);
const char *check_printable(const char *, char *, size_t);
enum check_verdict check_verdict(struct check_run *, enum check_verdict, int,
	    const char *, ...) __printflike(4, 5);

/* check_tcp.c, check_http.c, check_tls.c, check_send.c */
int	 check_tcp_start(struct check_run *);
int	 check_http_start(struct check_run *);
int	 check_tls_start(struct check_run *);
int	 check_tls_wrap(struct check_run *, const char *);
void	 check_tls_free(void);
int	 check_send_start(struct check_run *);
enum check_verdict check_http_parse(const char *, size_t, int,
	    const struct lbd_check *, int *, char *, size_t);

/* control.c (in the checker process) */
#define LBD_CTL_TIMEOUT		5000		/* ms to send the line */
#define LBD_CTL_MAXCLIENTS	16		/* connections at once */
#define LBD_CTL_MAXANSWER	(1024 * 1024)	/* bytes of an answer */

int	 control_init(struct ev_loop *, struct lbd_conf *, int);
int	 control_drain(void (*)(void));
void	 control_stop(void);
int	 control_command(struct lbd_conf *, const char *, struct buf *);

#endif
