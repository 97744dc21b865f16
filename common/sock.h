/*
 * sock.h: a non-blocking stream socket, plain or TLS, on the event loop.
 *
 * Sockets are registered once, edge-triggered, for reading and writing;
 * the readiness the loop reports is kept in flags that the I/O calls
 * clear when the kernel (or OpenSSL) says EAGAIN, so that callers try a
 * read or a write only when it can make progress and no epoll_ctl(2) is
 * made per request.  A read that returns less than was asked counts as
 * draining the socket: with EPOLLET the next arrival raises a new event.
 */
#ifndef COMMON_SOCK_H
#define COMMON_SOCK_H

#include <sys/types.h>
#include <sys/uio.h>
#include "compat.h"
#include "event.h"

#define SOCK_READABLE	0x01
#define SOCK_WRITABLE	0x02
#define SOCK_EOF	0x04	/* the peer shut down its side */
#define SOCK_ERROR	0x08
#define SOCK_TLS_HS	0x10	/* TLS handshake in progress */
#define SOCK_HUP	0x20	/* EPOLLRDHUP/EPOLLHUP seen */

typedef struct ssl_st SSL;

struct sock {
	int		 fd;
	uint8_t		 flags;
	SSL		*ssl;
	struct ev_io	 io;
	struct ev_loop	*loop;		/* sock_watch's */
};

void	 sock_init(struct sock *, int);
int	 sock_watch(struct ev_loop *, struct sock *, ev_io_cb, void *);
int	 sock_watch_connect(struct ev_loop *, struct sock *, ev_io_cb, void *);
void	 sock_events(struct sock *, uint32_t);
ssize_t	 sock_read(struct sock *, void *, size_t);
ssize_t	 sock_write(struct sock *, const void *, size_t);
ssize_t	 sock_write_more(struct sock *, const void *, size_t);
ssize_t	 sock_writev(struct sock *, struct iovec *, int);
ssize_t	 sock_sendfile(struct sock *, int, off_t *, size_t);
ssize_t	 sock_splice_in(struct sock *, int, size_t);
ssize_t	 sock_splice_out(struct sock *, int, size_t);
int	 sock_shutdown(struct sock *);
void	 sock_close(struct ev_loop *, struct sock *);
int	 sock_handshake(struct sock *);
void	 sock_tls_setup(SSL *);
int	 sock_pending(const struct sock *);

#endif
