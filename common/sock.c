/*
 * sock.c: plain and TLS I/O behind one interface (see sock.h).
 */
#include <sys/types.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "log.h"
#include "sock.h"

void
sock_init(struct sock *s, int fd)
{
	memset(s, 0, sizeof(*s));
	s->fd = fd;
}

/*
 * Register <s> once, edge-triggered, for reading.  It may be written
 * until a write does not finish: only then is writing watched too
 * (want_write), as most sockets never fill and an EPOLLOUT interest
 * costs the kernel an event for each new connection.
 */
static int
watch(struct ev_loop *loop, struct sock *s, uint32_t out, ev_io_cb cb,
    void *arg)
{
	s->flags |= SOCK_READABLE | SOCK_WRITABLE;
	s->loop = loop;
	return (ev_io_add(loop, &s->io, s->fd, EPOLLIN | EPOLLRDHUP | EPOLLET |
	    out, cb, arg));
}

int
sock_watch(struct ev_loop *loop, struct sock *s, ev_io_cb cb, void *arg)
{
	return (watch(loop, s, 0, cb, arg));
}

/* The same for a socket whose connect(2) is in progress: its end is an
 * EPOLLOUT event, so both directions are watched from the start. */
int
sock_watch_connect(struct ev_loop *loop, struct sock *s, ev_io_cb cb,
    void *arg)
{
	return (watch(loop, s, EPOLLOUT, cb, arg));
}

/*
 * A write did not finish: not writable until the loop says so.  Adding
 * EPOLLOUT to an edge-triggered registration reports it at once if the
 * socket drained meanwhile, so no wake-up is lost.
 */
static void
want_write(struct sock *s)
{
	s->flags &= ~SOCK_WRITABLE;
	if (s->loop != NULL && s->io.active && !(s->io.events & EPOLLOUT) &&
	    ev_io_mod(s->loop, &s->io, s->io.events | EPOLLOUT) == -1)
		s->flags |= SOCK_ERROR;
}

/*
 * What a plain write of <len> bytes that returned <n> says of <s>: a
 * short count or EAGAIN, that it is full (watched until it drains);
 * another error, that it failed.  Returns <n>.
 */
static ssize_t
wrote(struct sock *s, ssize_t n, size_t len)
{
	if (n >= 0) {
		if ((size_t)n < len)
			want_write(s);
	} else if (errno == EAGAIN)
		want_write(s);
	else
		s->flags |= SOCK_ERROR;
	return (n);
}

/* Note what the loop reported. */
void
sock_events(struct sock *s, uint32_t ev)
{
	if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		s->flags |= SOCK_READABLE;
	if (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR))
		s->flags |= SOCK_WRITABLE;
	if (ev & (EPOLLRDHUP | EPOLLHUP))
		s->flags |= SOCK_HUP;
	if (ev & EPOLLERR)
		s->flags |= SOCK_ERROR;
}

static ssize_t
tls_result(struct sock *s, int n, int wantread_flag)
{
	int	e = SSL_get_error(s->ssl, n);

	switch (e) {
	case SSL_ERROR_WANT_READ:
		s->flags &= ~SOCK_READABLE;
		errno = EAGAIN;
		return (-1);
	case SSL_ERROR_WANT_WRITE:
		want_write(s);
		errno = EAGAIN;
		return (-1);
	case SSL_ERROR_ZERO_RETURN:
		s->flags |= SOCK_EOF;
		return (0);
	case SSL_ERROR_SYSCALL:
		if (n == 0 || errno == 0) {
			/* EOF without close_notify: treated as EOF */
			s->flags |= SOCK_EOF;
			ERR_clear_error();
			return (0);
		}
		s->flags |= SOCK_ERROR;
		ERR_clear_error();
		return (-1);
	default:
		s->flags |= SOCK_ERROR;
		ERR_clear_error();
		errno = EPROTO;
		return (-1);
	}
	(void)wantread_flag;
}

/*
 * Was OpenSSL's last read(2) of a socket short (the socket drained)?  For
 * sock_read(): each process has one loop, and this is cleared and read
 * around one SSL_read().
 */
static int	tls_short;

static long
tls_rbio_cb(BIO *b, int oper, const char *argp, size_t len, int argi,
    long argl, int ret, size_t *processed)
{
	if (oper == (BIO_CB_READ | BIO_CB_RETURN))
		tls_short = ret <= 0 || processed == NULL || *processed < len;
	return (ret);
}

/*
 * Prepare a TLS connection's reads: OpenSSL reads ahead (a record in one
 * read(2), not its header and then its body), and sock_read() learns
 * from its reads when the socket is drained, as for a plain socket.
 */
void
sock_tls_setup(SSL *ssl)
{
	BIO	*rb;

	SSL_set_read_ahead(ssl, 1);
	if ((rb = SSL_get_rbio(ssl)) != NULL)
		BIO_set_callback_ex(rb, tls_rbio_cb);
}

/* Bytes read from the socket that wait in OpenSSL (read ahead). */
int
sock_pending(const struct sock *s)
{
	return (s->ssl != NULL && SSL_has_pending(s->ssl));
}

/*
 * Read up to <len> bytes.  Returns >0, 0 at EOF, or -1 (errno EAGAIN
 * when nothing is there now).
 */
ssize_t
sock_read(struct sock *s, void *p, size_t len)
{
	ssize_t	n;

	if (s->ssl != NULL) {
		int	r;

		if (len > INT32_MAX)
			len = INT32_MAX;
		ERR_clear_error();
		tls_short = 0;
		r = SSL_read(s->ssl, p, (int)len);
		if (r > 0) {
			/*
			 * The plain rule (below) through OpenSSL: when its
			 * last read of the socket was short and it holds
			 * nothing more, the socket is drained, and reading
			 * again would only say EAGAIN.  Else more may wait.
			 */
			if (tls_short && !sock_pending(s) &&
			    !(s->flags & SOCK_HUP))
				s->flags &= ~SOCK_READABLE;
			return (r);
		}
		return (tls_result(s, r, 1));
	}
	do {
		n = read(s->fd, p, len);
	} while (n == -1 && errno == EINTR);
	if (n > 0) {
		/*
		 * A short read drained the socket, unless the peer's FIN came
		 * with the data: that edge is spent, and only reading again
		 * (0, EOF) tells of it.
		 */
		if ((size_t)n < len && !(s->flags & SOCK_HUP))
			s->flags &= ~SOCK_READABLE;
		return (n);
	}
	if (n == 0) {
		s->flags |= SOCK_EOF;
		s->flags &= ~SOCK_READABLE;
		return (0);
	}
	if (errno == EAGAIN)
		s->flags &= ~SOCK_READABLE;
	else
		s->flags |= SOCK_ERROR;
	return (-1);
}

ssize_t
sock_write(struct sock *s, const void *p, size_t len)
{
	struct iovec	iov;

	iov.iov_base = (void *)p;
	iov.iov_len = len;
	return (sock_writev(s, &iov, 1));
}

/*
 * Write with more to follow at once (a head before a sendfile'd body):
 * MSG_MORE lets the kernel put both in the same segments.
 */
ssize_t
sock_write_more(struct sock *s, const void *p, size_t len)
{
	ssize_t	n;

	if (s->ssl != NULL)
		return (sock_write(s, p, len));
	do {
		n = send(s->fd, p, len, MSG_NOSIGNAL | MSG_MORE);
	} while (n == -1 && errno == EINTR);
	return (wrote(s, n, len));
}

/* Write what the kernel takes now; -1 with EAGAIN when nothing fits. */
ssize_t
sock_writev(struct sock *s, struct iovec *iov, int cnt)
{
	ssize_t	n;
	size_t	want = 0;
	int	i;

	for (i = 0; i < cnt; i++)
		want += iov[i].iov_len;
	if (s->ssl != NULL) {
		ssize_t	total = 0;
		int	saved;

		for (i = 0; i < cnt; i++) {
			int	r;

			if (iov[i].iov_len == 0)
				continue;
			ERR_clear_error();
			r = SSL_write(s->ssl, iov[i].iov_base,
			    iov[i].iov_len > INT32_MAX ? INT32_MAX :
			    (int)iov[i].iov_len);
			if (r <= 0) {
				if (total == 0)
					total = tls_result(s, r, 0);
				break;
			}
			total += r;
			if ((size_t)r < iov[i].iov_len)
				break;
		}
		/*
		 * A write may read (a renegotiation the server asked for),
		 * and reading ahead take the peer's next bytes with it: they
		 * wait in OpenSSL, and no event will come for them.
		 */
		saved = errno;
		if (sock_pending(s))
			s->flags |= SOCK_READABLE;
		errno = saved;
		return (total);
	}
	do {
		n = cnt == 1 ? send(s->fd, iov[0].iov_base, iov[0].iov_len,
		    MSG_NOSIGNAL) : writev(s->fd, iov, cnt);
	} while (n == -1 && errno == EINTR);
	return (wrote(s, n, want));
}

/* sendfile(2) for plain sockets; callers copy through memory for TLS. */
ssize_t
sock_sendfile(struct sock *s, int fd, off_t *off, size_t len)
{
	ssize_t	n;

	do {
		n = sendfile(s->fd, fd, off, len);
	} while (n == -1 && errno == EINTR);
	return (wrote(s, n, len));
}

/*
 * splice(2) from plain socket <s> into the pipe whose write end is
 * <pipefd>, at most <len> bytes.  Only a count is sure: TCP splicing
 * stops at urgent data (EAGAIN, or 0 once the FIN is in) and at a full
 * pipe, so 0 and EAGAIN both come back as -1 with EAGAIN and leave the
 * flags alone; the caller read(2)s to learn (which passes urgent data).
 * EINVAL: these sockets cannot be spliced.
 */
ssize_t
sock_splice_in(struct sock *s, int pipefd, size_t len)
{
	ssize_t	n;

	do {
		n = splice(s->fd, NULL, pipefd, NULL, len,
		    SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
	} while (n == -1 && errno == EINTR);
	if (n > 0)
		return (n);
	if (n == 0)
		errno = EAGAIN;
	else if (errno != EAGAIN && errno != EINVAL)
		s->flags |= SOCK_ERROR;
	return (-1);
}

/* splice(2) from the pipe whose read end is <pipefd> to plain <s>. */
ssize_t
sock_splice_out(struct sock *s, int pipefd, size_t len)
{
	ssize_t	n;

	do {
		n = splice(pipefd, NULL, s->fd, NULL, len,
		    SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
	} while (n == -1 && errno == EINTR);
	if (n == -1 && errno == EINVAL)
		return (-1);	/* cannot splice: the caller gives up */
	return (wrote(s, n, len));
}

/* Our side is done sending (close_notify for TLS, then FIN). */
int
sock_shutdown(struct sock *s)
{
	if (s->ssl != NULL) {
		ERR_clear_error();
		(void)SSL_shutdown(s->ssl);
	}
	return (shutdown(s->fd, SHUT_WR));
}

void
sock_close(struct ev_loop *loop, struct sock *s)
{
	if (s->fd == -1)
		return;
	ev_io_del(loop, &s->io);
	if (s->ssl != NULL) {
		SSL_free(s->ssl);
		s->ssl = NULL;
	}
	close(s->fd);
	s->fd = -1;
	s->flags = 0;
}

/*
 * Drive a TLS handshake.  Returns 1 when done, 0 to wait for the socket,
 * -1 on failure (the reason is in OpenSSL's error queue, logged at debug).
 */
int
sock_handshake(struct sock *s)
{
	int	r;

	ERR_clear_error();
	r = SSL_do_handshake(s->ssl);
	if (r == 1) {
		s->flags &= ~SOCK_TLS_HS;
		/* a request read ahead with the handshake's end */
		if (sock_pending(s))
			s->flags |= SOCK_READABLE;
		s->io.low = 0;		/* its requests are not budgeted */
		return (1);
	}
	switch (SSL_get_error(s->ssl, r)) {
	case SSL_ERROR_WANT_READ:
		s->flags &= ~SOCK_READABLE;
		return (0);
	case SSL_ERROR_WANT_WRITE:
		want_write(s);
		return (0);
	default:
		if (log_getverbose() > 0) {
			unsigned long	e = ERR_peek_error();
			char		b[256];

			ERR_error_string_n(e, b, sizeof(b));
			log_debug("tls handshake: %s", e ? b : "connection "
			    "closed");
		}
		ERR_clear_error();
		s->flags |= SOCK_ERROR;
		return (-1);
	}
}
