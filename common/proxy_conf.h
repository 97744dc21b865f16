/*
 * proxy_conf.h: the configuration of an upstream pool and its proxying,
 * the same keywords in lbd's "backend" and webd's "upstream" blocks:
 *
 *	balance roundrobin|static-rr|leastconn|source|uri|random
 *	server NAME ADDRESS [weight N] [maxconn N] [backup]
 *	connect-timeout 5s	response-timeout 60s	queue-timeout 5s
 *	keepalive 32		keepalive-timeout 30s	retries 2
 *	fail-max 3		fail-timeout 10s
 *	x-forwarded-for append|replace|off	forwarded no	via NAME
 *	buffer-request 0	buffer-response 0	proxy-protocol off|v1|v2
 *	tls no	tls-ca FILE	tls-verify yes	tls-name NAME
 */
#ifndef COMMON_PROXY_CONF_H
#define COMMON_PROXY_CONF_H

#include "conf.h"
#include "proxy.h"

extern const struct conf_opt proxy_server_opts[];

#define PROXY_GRAMMAR(p)						\
	{ "balance", p, 0, 1, { { CONF_ENUM, "balance", 0, 0, LB_NAMES },\
	    { CONF_STR, "field or parameter name" } }, NULL, "roundrobin" },\
	{ "server", p, CONF_MULTI | CONF_REQUIRED | CONF_UNIQUE, 2,	\
	    { { CONF_NAME, "server name" }, { CONF_ADDR, "address" } },	\
	    proxy_server_opts },					\
	{ "connect-timeout", p, 0, 1, { { CONF_TIME, "connect-timeout",\
	    1, 3600000 } } },						\
	{ "response-timeout", p, 0, 1, { { CONF_TIME,			\
	    "response-timeout", 1, 86400000 } } },			\
	{ "max-queue", p, 0, 1, { { CONF_INT, "max-queue", 0,		\
	    1000000 } } },						\
	{ "queue-timeout", p, 0, 1, { { CONF_TIME, "queue-timeout", 0,	\
	    3600000 } } },						\
	{ "tunnel-timeout", p, 0, 1, { { CONF_TIME, "tunnel-timeout", 1,\
	    86400000 } } },						\
	{ "keepalive", p, 0, 1, { { CONF_INT, "keepalive", 0, 10000 } } },\
	{ "keepalive-timeout", p, 0, 1, { { CONF_TIME,			\
	    "keepalive-timeout", 1, 3600000 } } },			\
	{ "retries", p, 0, 1, { { CONF_INT, "retries", 0, 63 } } },	\
	{ "fail-max", p, 0, 1, { { CONF_INT, "fail-max", 0, 1000 } } },	\
	{ "fail-timeout", p, 0, 1, { { CONF_TIME, "fail-timeout", 1,	\
	    86400000 } } },						\
	{ "x-forwarded-for", p, 0, 1, { { CONF_ENUM, "x-forwarded-for",\
	    0, 0, "append|replace|off" } } },				\
	{ "x-forwarded-proto", p, 0, 1, { { CONF_BOOL,			\
	    "x-forwarded-proto" } } },					\
	{ "forwarded", p, 0, 1, { { CONF_BOOL, "forwarded" } } },	\
	{ "via", p, 0, 1, { { CONF_NAME, "via" } } },			\
	{ "buffer-request", p, 0, 1, { { CONF_SIZE, "buffer-request", 0,\
	    1LL << 40 } } },						\
	{ "buffer-response", p, 0, 1, { { CONF_SIZE, "buffer-response",\
	    0, 1LL << 32 } } },						\
	{ "proxy-protocol", p, 0, 1, { { CONF_ENUM, "proxy-protocol", 0,\
	    0, "off|v1|v2" } } },					\
	{ "tls", p, 0, 1, { { CONF_BOOL, "tls" } } },			\
	{ "tls-ca", p, 0, 1, { { CONF_PATH, "tls-ca" } } },		\
	{ "tls-verify", p, 0, 1, { { CONF_BOOL, "tls-verify" } } },	\
	{ "tls-name", p, 0, 1, { { CONF_STR, "tls-name" } } }

int	proxy_conf_load(struct conf *, const struct conf_node *, const char *,
	    const char *, struct proxy_conf *);
void	proxy_conf_free(struct proxy_conf *);

#endif
