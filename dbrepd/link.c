/*
 * link.c: the byte streams under dbrepd's frames, plain or TLS.
 *
 * Every link is a struct sock (common/sock.h): a descriptor and, when
 * TLS is on, its SSL.  The same frames of frame.c travel either way; TLS
 * only wraps them, and the shared secret's challenge-response (auth.c)
 * still runs inside it.
 *
 *	non-blocking, on an event loop (server.c, ship.c, follow.c, the
 *	    probes of repl.c): link_read() and link_write() move bytes
 *	    between a struct buf and the socket as buf_read_fd() and
 *	    buf_write_fd() do, through sock_read() and sock_write(), which
 *	    drive the handshake and turn OpenSSL's WANT_READ/WANT_WRITE
 *	    into EAGAIN; the loop's next event resumes it.
 *	blocking, with a deadline (the client library, dbrepctl, the
 *	    master's probe): io_handshake(), io_send(), io_frame() poll(2)
 *	    for what OpenSSL (or the kernel) waits for.
 *
 * A client checks the server's certificate unless told not to: it must
 * chain to the CA file (or the system's CAs) and name the server (the
 * name given; else, in the library, the host of the address when it is
 * a name; else the address's IP in its subjectAltName).  A handshake
 * that fails says why (link_error()) before any frame is read.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "event.h"
#include "tls.h"
#include "dbrepd.h"

/* Read what the link has into <b>, as buf_read_fd(b, fd, 0). */
ssize_t
link_read(struct sock *s, struct buf *b)
{
	size_t	n, room = buf_room(b);
	ssize_t	r;

	if (room == 0) {
		errno = ENOBUFS;
		return (-1);
	}
	if (b->cap - b->len == 0 && buf_reserve(b, room < 4096 ? room :
	    4096) == -1)
		return (-1);
	n = b->cap - b->len;
	if (n > room)
		n = room;
	r = sock_read(s, b->data + b->len, n);
	if (r > 0) {
		b->len += r;
		/* data came: the handshake is done */
		s->flags &= ~SOCK_TLS_HS;
	}
	return (r);
}

/*
 * Write the head of <b> to the link, as buf_write_fd(): > 0 bytes
 * written, -1 with errno EAGAIN when nothing fits now, or another errno
 * (EPIPE: the TLS peer closed).
 */
ssize_t
link_write(struct sock *s, struct buf *b)
{
	ssize_t	w;

	if (buf_used(b) == 0)
		return (0);
	w = sock_write(s, buf_head(b), buf_used(b));
	if (w > 0) {
		buf_consume(b, w);
		s->flags &= ~SOCK_TLS_HS;
	} else if (w == 0) {
		errno = EPIPE;
		w = -1;
	}
	return (w);
}

/*
 * A peer that closes without close_notify (killed, or a link cut) is at
 * the end of its stream, not in error: every frame says its length, so
 * a truncated one is seen anyway.
 */
static void
link_tls_opts(struct sock *s)
{
	SSL_set_options(s->ssl, SSL_OP_IGNORE_UNEXPECTED_EOF);
	s->flags |= SOCK_TLS_HS;
}

/*
 * Make <s> (on <fd>) the server side of a TLS link with <t>.  Returns 0,
 * or -1 when OpenSSL could not.
 */
int
link_tls_server(struct sock *s, struct tls_ctx *t)
{
	if ((s->ssl = tls_server_ssl(t, s->fd)) == NULL) {
		ERR_clear_error();
		return (-1);
	}
	link_tls_opts(s);
	return (0);
}

/*
 * Make <s> the client side of a TLS link with <t>, to a server named
 * <name> (NULL: its address <a> must be in its certificate).
 */
int
link_tls_client(struct sock *s, struct tls_ctx *t, const char *name,
    const struct net_addr *a)
{
	if ((s->ssl = tls_client_ssl(t, s->fd, name, a)) == NULL) {
		ERR_clear_error();
		return (-1);
	}
	link_tls_opts(s);
	return (0);
}

/*
 * Say goodbye (close_notify, when the link is sound) and forget the
 * link's TLS state; the descriptor is the caller's to close.
 */
void
link_free(struct sock *s)
{
	if (s->ssl != NULL) {
		if (!(s->flags & (SOCK_TLS_HS | SOCK_ERROR | SOCK_EOF)))
			(void)SSL_shutdown(s->ssl);
		ERR_clear_error();
		SSL_free(s->ssl);
	}
	s->ssl = NULL;
	s->flags = 0;
}

/*
 * Why a link failed, for a message: a certificate that did not verify
 * says why, a handshake that failed says so; else strerror(<err>).
 */
const char *
link_error(struct sock *s, int err, char *buf, size_t len)
{
	long	v;

	if (s->ssl != NULL && (v = SSL_get_verify_result(s->ssl)) !=
	    X509_V_OK)
		snprintf(buf, len, "TLS: the server's certificate does not "
		    "verify: %s", X509_verify_cert_error_string(v));
	else if (s->ssl != NULL && (s->flags & SOCK_TLS_HS))
		snprintf(buf, len, "TLS handshake failed (%s; not a TLS "
		    "port?)", err == EPROTO ? "protocol error" : err == 0 ?
		    "connection closed" : strerror(err));
	else
		snprintf(buf, len, "%s", err == 0 ? "connection closed" :
		    strerror(err));
	return (buf);
}

/*
 * Blocking I/O on a non-blocking socket with a deadline (ms of
 * CLOCK_MONOTONIC, 0: none), for the library, dbrepctl and the master.
 */
static int
io_wait(int fd, short ev, uint64_t deadline)
{
	struct pollfd	pfd;
	uint64_t	now;
	int		rv, ms;

	for (;;) {
		ms = -1;
		if (deadline != 0) {
			now = ev_monotonic_ms();
			if (now >= deadline) {
				errno = ETIMEDOUT;
				return (-1);
			}
			ms = (int)(deadline - now);
		}
		pfd.fd = fd;
		pfd.events = ev;
		pfd.revents = 0;
		rv = poll(&pfd, 1, ms);
		if (rv > 0)
			return (0);
		if (rv == 0) {
			errno = ETIMEDOUT;
			return (-1);
		}
		if (errno != EINTR)
			return (-1);
	}
}

/* Wait for what the last sock_* call of <s> said it waits for. */
static int
io_wait_sock(struct sock *s, uint64_t deadline)
{
	return (io_wait(s->fd, (s->flags & SOCK_WRITABLE) ? POLLIN : POLLOUT,
	    deadline));
}

/* The TLS handshake of a client link.  0, or -1 (see link_error()). */
int
io_handshake(struct sock *s, uint64_t deadline)
{
	int	r;

	for (;;) {
		s->flags |= SOCK_READABLE | SOCK_WRITABLE;
		if ((r = sock_handshake(s)) == 1)
			return (0);
		if (r == -1) {
			errno = EPROTO;
			return (-1);
		}
		if (io_wait_sock(s, deadline) == -1)
			return (-1);
	}
}

int
io_send(struct sock *s, const void *p, size_t n, uint64_t deadline)
{
	const char	*c = p;
	ssize_t		 w;

	while (n > 0) {
		s->flags |= SOCK_READABLE | SOCK_WRITABLE;
		w = sock_write(s, c, n);
		if (w > 0) {
			c += w;
			n -= w;
			continue;
		}
		if (w == 0) {
			errno = EPIPE;
			return (-1);
		}
		if (errno != EAGAIN)
			return (-1);
		if (io_wait_sock(s, deadline) == -1)
			return (-1);
	}
	return (0);
}

/*
 * Read until a whole frame is at the head of <in>.  Returns 1 with its
 * type, payload and total size (consume it with buf_consume(in, size)),
 * 0 at end of file, -1 on error (errno ETIMEDOUT, EPROTO, ...).  With
 * <spin_us>, waiting for the peer's bytes polls without sleeping, for up
 * to that long in all from the first wait and never past the deadline
 * (dbrep_set_busy_poll()); then it sleeps.  Waking a sleeping process
 * costs 20 to 40 us on this project's VM, as much as a short query's
 * whole round trip.
 */
int
io_frame(struct sock *s, struct buf *in, size_t max, uint64_t deadline,
    unsigned spin_us, int *type, const uint8_t **payload, size_t *len,
    size_t *size)
{
	struct pollfd	pfd;
	uint64_t	spin_end = 0;
	ssize_t		n;
	int		rc;

	for (;;) {
		rc = frame_peek(buf_head(in), buf_used(in), max, type, size);
		if (rc == 1) {
			*payload = (const uint8_t *)buf_head(in) + DBREP_HDRLEN;
			*len = *size - DBREP_HDRLEN;
			return (1);
		}
		if (rc == -1) {
			errno = EPROTO;
			return (-1);
		}
		s->flags |= SOCK_READABLE | SOCK_WRITABLE;
		n = link_read(s, in);
		if (n == 0)
			return (0);
		if (n > 0)
			continue;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return (-1);
		/* not while OpenSSL waits to write (SOCK_WRITABLE off) */
		if (spin_us > 0 && (s->flags & SOCK_WRITABLE)) {
			if (spin_end == 0) {
				spin_end = ev_monotonic_us() + spin_us;
				if (deadline != 0 && spin_end > deadline * 1000)
					spin_end = deadline * 1000;
			}
			pfd.fd = s->fd;
			pfd.events = POLLIN;
			pfd.revents = 0;
			if (ev_poll_spin(&pfd, 1, spin_end) > 0)
				continue;
		}
		if (io_wait_sock(s, deadline) == -1)
			return (-1);
	}
}
