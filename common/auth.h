/*
 * auth.h: HTTP basic authentication (RFC 7617) against a file of
 * user:hash lines checked by crypt(3); see auth.c.
 */
#ifndef COMMON_AUTH_H
#define COMMON_AUTH_H

#include <stddef.h>

#include "conf.h"
#include "http_server.h"

struct http_auth;

/* auth-basic REALM FILE: the file's users; errors go to conf_error() */
struct http_auth *auth_load(struct conf *, struct conf_node *);
void	 auth_free(struct http_auth *);
/* the WWW-Authenticate field of a 401 */
void	 auth_challenge(struct http_req *, const struct http_auth *);
/* a whole 401: the challenge, and a page or a line of text */
int	 auth_refuse(struct http_req *, const struct http_auth *,
	    const char *, size_t);
/* 1 when the request carries the credentials of one of the users */
int	 auth_check(struct http_req *, const struct http_auth *);
/* the user name the request's credentials give, checked or not */
int	 auth_user(struct http_req *, char *, size_t);

#endif
