/*
 * http_worker.h: the event loop of an HTTP worker, shared by webd, lbd
 * and the test servers: accept on the listeners (lshare.h), run the
 * connection engine, drain gracefully on SIGTERM.
 */
#ifndef COMMON_HTTP_WORKER_H
#define COMMON_HTTP_WORKER_H

#include "conf.h"
#include "event.h"
#include "http_server.h"
#include "lshare.h"
#include "proc.h"

/* Keywords for the limits of http.h, for a daemon's grammar. */
#define HTTP_LIMITS_GRAMMAR(parents)					\
	{ "max-request-line", parents, 0, 1, { { CONF_SIZE,		\
	    "max-request-line", 256, 1024 * 1024 } } },			\
	{ "max-header-size", parents, 0, 1, { { CONF_SIZE,		\
	    "max-header-size", 1024, 1024 * 1024 } } },			\
	{ "max-headers", parents, 0, 1, { { CONF_INT, "max-headers", 1,	\
	    HTTP_MAXHEADERS_HARD } } },					\
	{ "max-body-size", parents, 0, 1, { { CONF_SIZE,		\
	    "max-body-size", 0, 1LL << 40 } } },				\
	{ "header-timeout", parents, 0, 1, { { CONF_TIME,		\
	    "header-timeout", 100, 3600000 } } },			\
	{ "body-timeout", parents, 0, 1, { { CONF_TIME, "body-timeout",	\
	    100, 3600000 } } },						\
	{ "keepalive-timeout", parents, 0, 1, { { CONF_TIME,		\
	    "keepalive-timeout", 0, 3600000 } } },			\
	{ "send-timeout", parents, 0, 1, { { CONF_TIME, "send-timeout",	\
	    100, 3600000 } } }

void	http_limits_load(const struct conf_node *, struct http_limits *,
	    const struct http_limits *);

struct http_worker {
	struct ev_loop		 loop;
	struct proc_worker	*w;
	/*
	 * Set one of these for each listener i the worker serves: an HTTP
	 * server, or (lbd's TCP mode) how to accept its connections.
	 */
	struct http_server	*servers[PROC_MAXLISTENERS];
	struct lshare		 lsn[PROC_MAXLISTENERS];
	struct lshare_set	 ls;
	void			(*after)(struct http_worker *);
	void			(*drain)(struct http_worker *);
	int			(*busy)(struct http_worker *);
	void			*arg;
};

int	http_worker_init(struct http_worker *, struct proc_worker *);
int	http_worker_run(struct http_worker *);

#endif
