/*
 * webd.h: the web server: static files and a reverse proxy to appd.
 */
#ifndef WEBD_H
#define WEBD_H

#include <sys/types.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <limits.h>
#include <stdint.h>

#include "auth.h"
#include "conf.h"
#include "http.h"
#include "http_server.h"
#include "net.h"
#include "proc.h"
#include "proxy.h"
#include "stats.h"

#define WEBD_CONF		"/etc/webd.conf"
#define WEBD_MAXNAMES		32		/* host names per server */
#define WEBD_MAXINDEX		8		/* index files */
#define WEBD_MAXTRY		8		/* try-files entries */
#define WEBD_MAXHEADERS		32		/* extra response fields */
#define WEBD_MAXERRPAGES	16
#define WEBD_MAXRANGES		8		/* more: the whole file */
#define WEBD_INLINE_MAX		(16 * 1024)	/* files read into the
						   output, not sendfile'd */
#define WEBD_AUTOINDEX_MAX	10000		/* entries listed */
#define WEBD_BUFFER_REQUEST	(1024 * 1024)	/* proxied bodies in memory */
#define WEBD_BUFFER_RESPONSE	(1024 * 1024)	/* proxied answers buffered */
#define WEBD_LOGLINE		4096		/* access-log line, cut above */
#define WEBD_MIME_DEFAULT	"application/octet-stream"

enum webd_logfmt {
	LOG_COMMON = 0,
	LOG_COMBINED,
	LOG_FORWARDED,
	LOG_TIMED,
	LOG_OFF
};

struct webd_header {
	char	*name;
	char	*value;
};

/* What a location (or a server, for its locations) says; unset fields
 * inherit from the enclosing server. */
struct webd_loc {
	char			*path;		/* the prefix, the exact path or
						 * the pattern */
	size_t			 pathlen;
	int			 exact;
	int			 glob;		/* path has * ? or [: fnmatch */
	char			*root;		/* document root */
	char			*alias;		/* replaces the matched prefix */
	int			 rootfd;	/* opened by the master */
	char			*index[WEBD_MAXINDEX];
	int			 nindex;
	int			 autoindex;	/* -1: inherit */
	int			 gzip_static;
	int			 dotfiles;	/* serve names starting with "." */
	int			 symlinks;	/* follow links out of the root */
	char			*try[WEBD_MAXTRY];
	int			 ntry;
	struct webd_upstream	*try_proxy;	/* try-files' "@upstream" */
	int64_t			 max_body;	/* bytes, 0 none, -1 inherit */
	struct webd_header	 headers[WEBD_MAXHEADERS];
	int			 nheaders;
	int64_t			 expires;	/* seconds, -1: unset */
	char			*cache_control;
	struct {
		int	 status;
		char	*path;
		int	 inherited;	/* the server's: beneath its root */
	}			 errpages[WEBD_MAXERRPAGES];
	int			 nerrpages;
	char			*charset;
	struct net_acl		 acl;
	int			 has_acl;
	struct http_auth	*auth;		/* basic auth, or NULL */
	int			 auth_set;	/* said, maybe "off" */
	int			 auth_own;	/* not the server's */
	struct webd_upstream	*proxy;
	int			 ret_status;	/* "return": 0 none */
	char			*ret_text;
	struct webd_server	*srv;		/* the server it is in */
	TAILQ_ENTRY(webd_loc)	 entry;
};

struct webd_upstream {
	char			*name;
	struct proxy_conf	 pc;
	struct stats_metric	*m_errors;
	struct webd_conf	*wc;
	TAILQ_ENTRY(webd_upstream) entry;
};

struct webd_server {
	char			*name;
	char			*names[WEBD_MAXNAMES];
	int			 nnames;
	int			 isdefault;
	struct webd_loc		 base;		/* the server's own settings */
	TAILQ_HEAD(, webd_loc)	 locs;
	struct webd_conf	*wc;
	int64_t			 hsts;		/* max-age seconds, -1: off */
	int			 hsts_sub;
	int			 hsts_preload;
	int			 tls;
	struct stats_metric	*m_req[6];	/* 1xx..5xx, by index */
	struct stats_metric	*m_bytes;
	struct stats_metric	*m_dur;
	TAILQ_ENTRY(webd_server) entry;
};

/* One listening address and the servers on it. */
struct webd_listener {
	struct http_server	 srv;		/* first: the engine's view */
	struct webd_conf	*wc;
	struct webd_server	*servers[64];
	int			 nservers;
	int			 proxyproto;	/* expects a PROXY header */
	struct tls_ctx		*tls;
	TAILQ_ENTRY(webd_listener) entry;
};

struct webd_conf {
	struct http_limits		 lim;
	TAILQ_HEAD(, webd_server)	 servers;
	TAILQ_HEAD(, webd_upstream)	 upstreams;
	TAILQ_HEAD(, webd_listener)	 listeners;
	struct http_server		*metrics;
	struct net_acl			 metrics_acl;
	struct net_trusted		 trusted;	/* real IP sources */
	struct net_acl			 peer_acl;	/* who may connect */
	enum webd_logfmt		 logfmt;
	char				*logfile;	/* NULL: syslog */
	const char			*logname;	/* its last component */
	int				 logdir;	/* its folder, O_PATH */
	int				 logfd;		/* the file, or -1 */
	int				 logfacility;
	int				 server_header;
	char				*mimefile;
	struct mime_table		*mime;
	char				*tmpdir;
	uid_t				 uid;		/* workers' */
	struct stats_metric		*m_conns;
	struct stats_metric		*m_uperr;
	/* requests refused before a site was known, site "-" */
	struct stats_metric		*m_refused[6];
	struct stats_metric		*m_refused_bytes;
};

/* A request's state in webd. */
struct multipart;
struct wreq {
	struct webd_server	*s;
	struct buf		*rest;		/* body still to write */
	struct multipart	*mp;		/* multipart/byteranges */
};

/* webd.c */
extern struct webd_conf	*wconf;

/* parse.c */
extern const struct conf_kw webd_grammar[];
void	*webd_load(struct conf *, struct proc_settings *);
void	 webd_unload(void *);
int	 webd_setup(void *, struct proc_settings *);
int	 webd_child_gone(void *, const struct proc_settings *, int);

/* server.c */
extern const struct http_handler webd_handler;
void	 server_request(struct http_req *);
void	 server_done(struct http_req *);
struct webd_server *server_find(struct webd_listener *, struct http_req *);
struct webd_loc *location_find(struct webd_server *, const char *, size_t);
struct webd_loc *location_prefix(struct webd_server *, const char *, size_t);
int	 server_guard(struct http_req *, struct webd_server *,
	    struct webd_loc *, const char *, size_t);
int	 server_error(struct http_req *, struct webd_server *,
	    struct webd_loc *, int);
void	 server_headers(struct http_req *, struct webd_server *,
	    struct webd_loc *);
const struct sockaddr *server_client(struct http_req *);
void	 server_send(struct http_req *, struct webd_loc *, int, const char *,
	    struct buf *);
void	 server_cache_headers(struct http_req *, struct webd_loc *);
size_t	 server_redirect_var(const char *, struct http_req *, struct buf *);

/* server_file.c */
void	 server_file(struct http_req *, struct webd_server *,
	    struct webd_loc *, struct http_target *);
int	 file_open_beneath(struct webd_loc *, const char *, int);
void	 file_content_type(struct webd_loc *, const char *, char *, size_t);
void	 file_drain(struct http_req *);
void	 file_free(struct wreq *);

/* server_proxy.c */
void	 server_proxy(struct http_req *, struct webd_server *,
	    struct webd_loc *, struct webd_upstream *, struct http_target *);
void	 proxy_hooks(struct webd_upstream *);

/* server_log.c */
void	 access_log(struct http_req *, struct webd_server *, int, uint64_t,
	    int64_t);
void	 access_log_refused(struct http_conn *, int, const char *);
int	 access_log_open(struct webd_conf *);
void	 access_log_reopen(void *);
void	 access_log_reopen_worker(void *);

/* mime.c */
struct mime_table *mime_load(const char *, char *, size_t);
void	 mime_free(struct mime_table *);
const char *mime_type(const struct mime_table *, const char *);

/* autoindex.c */
void	 server_autoindex(struct http_req *, struct webd_server *,
	    struct webd_loc *, int, const char *);

#endif
