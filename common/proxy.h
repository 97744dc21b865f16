/*
 * proxy.h: forward HTTP requests to upstream servers (lbd and webd).
 *
 * proxy_start() takes over a request from the daemon's handler: it picks
 * a server of the pool, reuses an idle keep-alive connection to it or
 * opens one (TCP, unix socket, optionally TLS), sends the request head
 * rewritten for the hop (hop-by-hop fields removed, Connection-named
 * fields removed, X-Forwarded-For / X-Forwarded-Proto / Forwarded added,
 * Via optional), streams the body (re-framed: decoded chunked bodies are
 * re-chunked), and streams the response back, with backpressure in both
 * directions.  After a 101 the two connections become a tunnel.
 *
 * Failures: a connect error or timeout is retried on another server
 * (up to <retries> more), so is a reset before any response byte for an
 * idempotent request whose body is not lost; a server failing fail_max
 * times in a row is skipped for a while (upstream.h).  When no server
 * can take the request: 503 (all down, or all full past queue_timeout);
 * when they fail: 502; when the response does not come in time: 504.
 *
 * Memory per proxied request: the engine's buffers (http_server.h), an
 * upstream connection's input buffer (max_head + 16 KiB) and output
 * buffer (PROXY_OUTBUF), and the response buffer (buffer_response bytes,
 * or PROXY_RBUF when streaming).
 */
#ifndef COMMON_PROXY_H
#define COMMON_PROXY_H

#include "buf.h"
#include "http_server.h"
#include "upstream.h"

#define PROXY_OUTBUF		(64 * 1024)	/* to the upstream */
#define PROXY_RBUF		(64 * 1024)	/* response, when streaming */
#define PROXY_CONNECT_TIMEOUT	5000		/* ms */
#define PROXY_RESPONSE_TIMEOUT	60000		/* ms */
#define PROXY_IDLE_TIMEOUT	30000		/* ms, idle upstream conn */
#define PROXY_MAXIDLE		32		/* per server per worker */
#define PROXY_RETRIES		2
#define PROXY_QUEUE_TIMEOUT	5000		/* ms, all servers full */

enum proxy_xff {
	PROXY_XFF_APPEND = 0,	/* keep what came, add the peer */
	PROXY_XFF_REPLACE,	/* drop what came (an untrusted edge) */
	PROXY_XFF_OFF
};

/* What happened, for logs and metrics (HAProxy's timers and state). */
struct proxy_info {
	struct up_server	*server;
	int			 status;	/* sent to the client */
	int			 retries;
	uint64_t		 t_queue;	/* ms waiting for a server */
	uint64_t		 t_connect;	/* ms to connect */
	uint64_t		 t_response;	/* ms to the response head */
	int			 head;		/* a response head came */
	uint64_t		 bytes_in;	/* response body bytes */
	char			 term[3];	/* who ended it, and when */
};

struct proxy_conf {
	struct up_pool		*pool;
	struct stats_metric	*m_queued;	/* gauge of the waiting, NULL */
	uint32_t		 connect_timeout;
	uint32_t		 response_timeout;
	uint32_t		 idle_timeout;
	uint32_t		 queue_timeout;
	int			 max_queue;	/* waiting at most, 0: any */
	uint32_t		 tunnel_timeout;
	int			 max_idle;
	int			 retries;
	enum proxy_xff		 xff;
	int			 xfp;		/* add X-Forwarded-Proto */
	int			 forwarded;	/* add Forwarded */
	const char		*via;		/* Via pseudonym, NULL */
	size_t			 buffer_request;  /* 0: stream the body */
	size_t			 buffer_response; /* 0: PROXY_RBUF */
	const char		*tmpdir;	/* spilled request bodies */
	int			 proxy_protocol;  /* 0, 1 or 2 to servers */
	struct tls_ctx		*tls;		/* to servers, NULL */
	const char		*sni;
	char			*hash_name;	/* balance hdr, url-param */
	/* hooks, all optional; <arg> is theirs */
	int	(*req_filter)(void *, struct http_req *, struct slice,
		    struct slice);			/* 0 drops a field */
	void	(*req_add)(void *, struct http_req *, struct buf *);
	int	(*resp_filter)(void *, struct http_req *, struct slice,
		    struct slice);
	void	(*resp_add)(void *, struct http_req *,
		    const struct proxy_info *);
	uint64_t (*hash_key)(void *, struct http_req *);
	/* a server to try first (a sticky cookie's), NULL: balance */
	struct up_server *(*pick)(void *, struct http_req *);
	/* answer an error status ourselves (error pages): 1 if done */
	int	(*error)(void *, struct http_req *, int);
	void	(*done)(void *, struct http_req *, const struct proxy_info *);
	const struct sockaddr *(*client_addr)(void *, struct http_req *);
	void			*arg;
};

void	proxy_conf_defaults(struct proxy_conf *);
int	proxy_hash_request(const struct proxy_conf *, struct http_req *,
	    uint64_t *);
void	proxy_start(struct http_req *, struct proxy_conf *);
int	proxy_idle_count(void);
void	proxy_collect(void);
void	proxy_drain(void);

#endif
