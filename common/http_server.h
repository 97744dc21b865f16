/*
 * http_server.h: the HTTP/1.1 connection engine (server side).
 *
 * The engine owns client connections: it reads and parses request heads,
 * answers malformed ones itself, hands each request to the daemon's
 * handler, streams the request body to it, frames and writes what the
 * handler answers, and keeps the connection alive for the next request
 * (pipelined requests are answered one after the other, in order).
 *
 * Memory per connection is bounded: an idle keep-alive connection holds
 * no buffer at all (about 200 bytes of state); an active one holds its
 * input buffer (the head, at most max_head bytes, plus a body window of
 * HTTP_BODYWIN bytes) and its output buffer (HTTP_OUTBUF bytes: when it
 * is full the handler is paused until it drains, and body reading stops
 * while the handler does not take what is read).  So the bound is about
 * max_head + HTTP_BODYWIN + HTTP_OUTBUF (32 + 16 + 64 KiB by default).
 *
 * A handler answers with:
 *	http_resp_begin(req, status)	status line
 *	http_resp_header(req, name, value) ...
 *	http_resp_body(req, length)	Content-Length, or -1 for chunked
 *					(close-delimited for HTTP/1.0)
 *	http_resp_write(req, data, n) / http_resp_file(req, fd, off, n)
 *	http_resp_push(req)		send what is written so far (a relay)
 *	http_resp_end(req)
 * or in one call http_resp_simple(req, status, type, body, len), or
 * http_resp_error(req, status).  The engine adds Date, Connection and the
 * framing fields, and for HEAD sends no body bytes.
 */
#ifndef COMMON_HTTP_SERVER_H
#define COMMON_HTTP_SERVER_H

#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include "buf.h"
#include "shm.h"
#include "event.h"
#include "http.h"
#include "net.h"
#include "sock.h"

#define HTTP_BODYWIN		(16 * 1024)	/* body bytes read at once */
#define HTTP_OUTBUF		(64 * 1024)	/* output held per connection */
#define HTTP_DISCARD_MAX	(64 * 1024)	/* unread body drained for
						   keep-alive, else close */
#define HTTP_LINGER		2000		/* ms of lingering close */
#define HTTP_INBUF_POOL		64		/* free buffers kept per worker */

struct http_req;
struct http_conn;
struct tls_ctx;

struct http_handler {
	/* A request head arrived.  Answer now or later. */
	void	(*request)(struct http_req *);
	/* Body bytes (after http_req_read_body); return how many were
	 * taken: fewer pauses the body until http_req_resume(). */
	size_t	(*body)(struct http_req *, const char *, size_t);
	/* The whole body has arrived (error 0) or could not (status). */
	void	(*body_end)(struct http_req *, int);
	/* The output buffer drained: write more. */
	void	(*drain)(struct http_req *);
	/* The exchange is over (response sent, or the client went away);
	 * release what the handler holds.  Always called once. */
	void	(*done)(struct http_req *);
};

/* One listening endpoint's settings, owned by the daemon. */
struct http_server {
	const struct http_limits	*lim;
	const struct http_handler	*handler;
	void				*arg;		/* the daemon's */
	struct tls_ctx			*tls;		/* NULL: plain */
	const char			*server_name;	/* Server: field, NULL */
	struct net_acl			*acl;		/* NULL: everyone */
	int				 keepalive_max;	/* requests, 0: no limit */
	int				 scheme_https;
	/* PROXY protocol v1/v2 expected from these peers, NULL: never */
	struct net_acl			*proxy_from;
	/* connections at once on this listener, all workers; 0: no limit */
	int				 maxconn;
	struct shm_count		*shared_conns;
	int				 mine;	/* this worker's */
	/* a new connection (after PROXY): 0, or a status to answer its
	 * first request with before closing (a limit was hit) */
	int	(*conn_open)(struct http_conn *);
	void	(*conn_close)(struct http_conn *);
	/* a request the engine refused itself (malformed, 408...) */
	void	(*bad_request)(struct http_conn *, int, const char *);
	/* a client's FIN before the answer began ends its request: done()
	 * with no status, the handler's upstream let go (nginx's 499);
	 * 0 keeps serving a client that only shut its sending side */
	int	 abort_on_close;
};

struct http_conn {
	struct sock		 s;
	struct http_server	*srv;
	struct ev_loop		*loop;
	struct ev_timer		 timer;
	union {
		struct sockaddr		sa;
		struct sockaddr_in	sin;
		struct sockaddr_in6	sin6;
	}			 peer;
	struct buf		*in;		/* NULL while idle */
	struct buf		*out;
	struct http_req		*req;
	uint32_t		 nreq;
	uint16_t		 state;
	uint16_t		 flags;
	int			 refuse;	/* conn_open's status, 0 */
	uint64_t		 t_accept;	/* ms */
	uint64_t		 t_first;	/* first byte of the head, ms */
	void			*ud;		/* the daemon's */
	TAILQ_ENTRY(http_conn)	 entry;
	TAILQ_ENTRY(http_conn)	 runq;
};

/* http_req.rflags */
#define HTTP_R_HEAD		0x0001	/* HEAD: no body bytes out */
#define HTTP_R_KEEPALIVE	0x0002	/* the connection may be reused */
#define HTTP_R_READBODY		0x0004	/* the handler reads the body */
#define HTTP_R_BODYDONE		0x0008	/* the request body was all read */
#define HTTP_R_CONTINUE_SENT	0x0010
#define HTTP_R_RESP_BEGUN	0x0020
#define HTTP_R_RESP_HEADDONE	0x0040
#define HTTP_R_RESP_CHUNKED	0x0080
#define HTTP_R_RESP_CLOSEDLM	0x0100	/* close-delimited response */
#define HTTP_R_RESP_ENDED	0x0200
#define HTTP_R_BODYPAUSED	0x0400
#define HTTP_R_DONE		0x0800	/* done() was called */
#define HTTP_R_TUNNEL		0x1000	/* 101 sent: raw bytes now */
#define HTTP_R_CONNCLOSE	0x2000	/* the handler asked to close */
#define HTTP_R_BODYENDED	0x4000	/* body_end() was called */
#define HTTP_R_NODATE		0x8000	/* the handler gave Date itself */
#define HTTP_R_TIMEDOUT		0x10000	/* ended by a client-side timeout */

struct http_req {
	struct http_conn	*conn;
	const struct http_handler *h;	/* srv->handler, or a takeover */
	struct http_msg		 msg;
	uint32_t		 rflags;
	int			 status;	/* of the response */
	uint64_t		 resp_left;	/* Content-Length still to send */
	uint64_t		 bytes_out;	/* body bytes sent */
	uint64_t		 body_in;	/* request body bytes read */
	uint64_t		 body_left;	/* Content-Length still to read */
	/* the listener's max_body, or what the handler's request() set
	 * (a location's): chunked bodies are held to it; a length over it
	 * is the handler's to refuse */
	uint64_t		 max_body;
	struct http_chunked	 chunked;
	uint32_t		 bstart;	/* first unread body byte in in */
	int			 file;		/* http_resp_file: fd, -1 */
	off_t			 file_off;
	uint64_t		 file_left;
	uint64_t		 t_start;	/* ms, when the head was complete */
	void			*ud;		/* the handler's */
	struct http_hdr		 hdrs[];
};

/* Set up once per worker, before accepting. */
void	 http_server_init(struct ev_loop *);
int	 http_conn_accept(struct http_server *, int,
	    const struct sockaddr *, socklen_t);
int	 http_accept(struct http_server *, int, int);
void	 http_server_drain(void);
int	 http_server_nconns(void);
void	 http_server_collect(void);

/* Reading the request */
const char	*http_req_buf(const struct http_req *);
struct slice	 http_req_target(const struct http_req *);
struct slice	 http_req_path(const struct http_req *);
struct slice	 http_req_uri(const struct http_req *, int *);
struct slice	 http_req_method(const struct http_req *);
struct slice	 http_req_header(const struct http_req *, const char *);
struct slice	 http_req_header_next(const struct http_req *, const char *,
		    int *);
struct slice	 http_req_host(const struct http_req *);
const struct sockaddr *http_req_peer(const struct http_req *);
void		 http_req_read_body(struct http_req *);
void		 http_req_resume(struct http_req *);
int		 http_req_has_body(const struct http_req *);

/* Answering */
#define HTTP_RESP_UNSAID	(-2)	/* http_resp_body(): see there */
int	 http_resp_begin(struct http_req *, int);
int	 http_resp_header(struct http_req *, const char *, const char *);
int	 http_resp_headerf(struct http_req *, const char *, const char *, ...)
	    __printflike(3, 4);
int	 http_resp_header_raw(struct http_req *, const char *, size_t);
int	 http_resp_body(struct http_req *, int64_t);
size_t	 http_resp_write(struct http_req *, const void *, size_t);
int	 http_resp_file(struct http_req *, int, off_t, uint64_t);
void	 http_resp_push(struct http_req *);
int	 http_resp_end(struct http_req *);
int	 http_resp_simple(struct http_req *, int, const char *, const void *,
	    size_t);
int	 http_resp_error(struct http_req *, int);
size_t	 http_resp_room(const struct http_req *);
void	 http_resp_close(struct http_req *);
void	 http_resp_send_buf(struct http_req *, struct buf *);
void	 http_resp_buf_drain(struct http_req *);
void	 http_resp_buf_done(struct http_req *);
int	 http_req_detach(struct http_req *, struct sock *, struct buf **,
	    struct buf **);

/* For bad_request(): what the refused client sent, and what it got */
struct slice	 http_conn_first_line(const struct http_conn *);
size_t		 http_error_body_len(int);

#endif
