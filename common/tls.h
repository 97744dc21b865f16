/*
 * tls.h: TLS (OpenSSL 3) for the event loop.
 */
#ifndef COMMON_TLS_H
#define COMMON_TLS_H

#include "compat.h"
#include "sock.h"

struct tls_ctx;

SSL	*tls_server_ssl(struct tls_ctx *, int);

#endif
