/*
 * http_metrics.h: the /metrics endpoint every daemon serves on a
 * listener of its own: the shared statistics (stats.h) of the daemon, in
 * the Prometheus text format 0.0.4.  GET /metrics only; / gives a short
 * page pointing there; anything else is 404.
 */
#ifndef COMMON_HTTP_METRICS_H
#define COMMON_HTTP_METRICS_H

#include "http_server.h"

struct http_server *http_metrics_server(const char *, struct net_acl *,
		    void (*)(void *), void *);
void		 http_metrics_free(struct http_server *);

#endif
