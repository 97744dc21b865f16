/*
 * tls.h: TLS (OpenSSL 3) for the event loop.
 *
 * Server side: TLS 1.2 and 1.3 only, forward-secret AEAD ciphers only,
 * RSA and ECDSA certificates, several certificates chosen by SNI (the
 * first is the default), ALPN "http/1.1", stateless session tickets.
 * Ticket keys are derived from one secret and the current rotation
 * period, so every worker (and every host given the same secret file)
 * computes the same keys with no coordination: tickets are issued with
 * the current period's key and accepted for one more period.  Without a
 * secret file the master draws a random secret once; reloads keep it.
 * Contexts are built in the master (setup), so private keys are read by
 * the master only and workers inherit the contexts when they fork.
 *
 * Client side (to upstreams): verification against a CA file and SNI.
 */
#ifndef COMMON_TLS_H
#define COMMON_TLS_H

#include "compat.h"
#include "conf.h"
#include "sock.h"

#define TLS_MAXCERTS		16
#define TLS_MAXNAMES		64		/* names per certificate */
#define TLS_SECRETLEN		48
#define TLS_ROTATION		"12h"		/* ticket key period */

/* The keywords of a "tls { }" block, for a daemon's grammar. */
#define TLS_GRAMMAR(parent)						\
	{ "certificate", parent, CONF_MULTI | CONF_REQUIRED, 1,	\
	    { { CONF_PATH, "certificate file" } }, tls_cert_opts },	\
	{ "ticket-key-file", parent, 0, 1, { { CONF_PATH,		\
	    "ticket key file" } } },					\
	{ "ticket-rotation", parent, 0, 1, { { CONF_TIME,		\
	    "ticket-rotation", 60000, 7 * 86400000LL } }, NULL,		\
	    TLS_ROTATION },						\
	{ "tickets", parent, 0, 1, { { CONF_BOOL, "tickets" } }, NULL,	\
	    "yes" }

extern const struct conf_opt tls_cert_opts[];

struct tls_ctx;

struct tls_ctx	*tls_server_load(struct conf *, const struct conf_node *);
int		 tls_server_add(struct tls_ctx *, struct conf *,
		    const struct conf_node *);
struct tls_ctx	*tls_client_new(const char *, int, char *, size_t);
void		 tls_free(struct tls_ctx *);
int		 tls_read_secret(const char *, unsigned char *, char *, size_t);
int		 tls_server_ncerts(const struct tls_ctx *);
void		 tls_server_default(struct tls_ctx *, int);
SSL		*tls_server_ssl(struct tls_ctx *, int);
struct net_addr;
SSL		*tls_client_ssl(struct tls_ctx *, int, const char *,
		    const struct net_addr *);
const char	*tls_version(SSL *);
int		 tls_resumed(SSL *);

#endif
