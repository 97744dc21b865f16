/*
 * test_ipc.c: framed messages over SOCK_SEQPACKET, with and without a
 * descriptor, and what the receiver does with frames it must refuse.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "ipc.h"

enum {
	T_PING = 1,
	T_FD,
	T_FIXED,
	T_BIG,
	T_MAYBEFD,
	T_UNKNOWN = 99
};

static const struct ipc_type types[] = {
	{ T_PING, 0, 64, 0, "ping" },
	{ T_FD, 0, 16, 1, "fd" },
	{ T_FIXED, 4, 4, 0, "fixed" },
	{ T_BIG, 0, IPC_MAXPAYLOAD, 0, "big" },
	{ T_MAYBEFD, 1, 8, 1, "maybefd" },
	{ 0, 0, 0, 0, NULL }
};

static int		 sv[2] = { -1, -1 };
static struct ipc_msg	*m;

static void
setup(void)
{
	cr_assert_eq(ipc_pair(sv), 0, "ipc_pair: %s", strerror(errno));
	cr_assert_not_null(m = malloc(sizeof(*m)));
}

static void
teardown(void)
{
	if (sv[0] != -1)
		close(sv[0]);
	if (sv[1] != -1)
		close(sv[1]);
	free(m);
}

static void
nonblock(int fd)
{
	cr_assert_neq(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK), -1);
}

/* Send a raw frame: any bytes, any number of descriptors. */
static void
send_raw(int sock, const void *p, size_t len, const int *fds, int nfds)
{
	struct msghdr	 msg;
	struct iovec	 iov;
	union {
		struct cmsghdr	hdr;
		char		buf[CMSG_SPACE(sizeof(int) * 8)];
	} cbuf;
	struct cmsghdr	*cmsg;

	iov.iov_base = (void *)p;
	iov.iov_len = len;
	memset(&msg, 0, sizeof(msg));
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	if (nfds > 0) {
		memset(&cbuf, 0, sizeof(cbuf));
		msg.msg_control = cbuf.buf;
		msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		cmsg = CMSG_FIRSTHDR(&msg);
		cmsg->cmsg_level = SOL_SOCKET;
		cmsg->cmsg_type = SCM_RIGHTS;
		cmsg->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(cmsg), fds, sizeof(int) * nfds);
	}
	cr_assert_eq(sendmsg(sock, &msg, 0), (ssize_t)len, "sendmsg: %s",
	    strerror(errno));
}

/* A frame with a header saying <hlen> and <len> payload bytes. */
static void
send_frame(int sock, uint32_t type, uint32_t hlen, size_t len, int fd)
{
	char		*p;
	struct ipc_hdr	 h = { type, hlen };

	cr_assert_not_null(p = calloc(1, sizeof(h) + len));
	memcpy(p, &h, sizeof(h));
	memset(p + sizeof(h), 'z', len);
	send_raw(sock, p, sizeof(h) + len, &fd, fd == -1 ? 0 : 1);
	free(p);
}

/*
 * Has every copy of a pipe's write end been closed?  Then its read end
 * (non-blocking) reads end of file.
 */
static int
write_end_closed(int rfd)
{
	char	c;

	return (read(rfd, &c, 1) == 0);
}

static int
nopen(void)
{
	int	fd, n = 0;

	for (fd = 0; fd < 1024; fd++)
		if (fcntl(fd, F_GETFD) != -1)
			n++;
	return (n);
}

Test(ipc, pair, .init = setup, .fini = teardown)
{
	int		type;
	socklen_t	sl = sizeof(type);

	cr_assert_eq(getsockopt(sv[0], SOL_SOCKET, SO_TYPE, &type, &sl), 0);
	cr_assert_eq(type, SOCK_SEQPACKET);
	cr_assert(fcntl(sv[0], F_GETFD) & FD_CLOEXEC);
	cr_assert(fcntl(sv[1], F_GETFD) & FD_CLOEXEC);
}

Test(ipc, round_trip, .init = setup, .fini = teardown)
{
	uint32_t	v = 0xdeadbeef;

	cr_assert_eq(ipc_send(sv[0], T_PING, "hello", 5, -1), 0);
	cr_assert_eq(ipc_send(sv[0], T_PING, NULL, 0, -1), 0);
	cr_assert_eq(ipc_send(sv[0], T_FIXED, &v, sizeof(v), -1), 0);
	/* both ways */
	cr_assert_eq(ipc_send(sv[1], T_PING, "back", 4, -1), 0);

	cr_assert_eq(ipc_recv(sv[1], m, types), 1);
	cr_assert_eq(m->hdr.type, T_PING);
	cr_assert_eq(m->hdr.len, 5);
	cr_assert(memcmp(m->data, "hello", 5) == 0);
	cr_assert_eq(m->fd, -1);

	m->fd = 1234;
	cr_assert_eq(ipc_recv(sv[1], m, types), 1, "boundaries are kept");
	cr_assert_eq(m->hdr.type, T_PING);
	cr_assert_eq(m->hdr.len, 0);
	cr_assert_eq(m->fd, -1);

	cr_assert_eq(ipc_recv(sv[1], m, types), 1);
	cr_assert_eq(m->hdr.type, T_FIXED);
	cr_assert_eq(m->hdr.len, 4);
	cr_assert(memcmp(m->data, &v, 4) == 0);

	cr_assert_eq(ipc_recv(sv[0], m, types), 1);
	cr_assert_eq(m->hdr.len, 4);
	cr_assert(memcmp(m->data, "back", 4) == 0);
}

Test(ipc, largest_payload, .init = setup, .fini = teardown)
{
	char	*p;
	size_t	 i;
	int	 sz = 4 * IPC_MAXPAYLOAD;

	/* room for one large frame, whatever the system default */
	(void)setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	cr_assert_not_null(p = malloc(IPC_MAXPAYLOAD + 1));
	for (i = 0; i < IPC_MAXPAYLOAD + 1; i++)
		p[i] = (char)(i * 31 + 7);
	cr_assert_eq(ipc_send(sv[0], T_BIG, p, IPC_MAXPAYLOAD, -1), 0,
	    "%s", strerror(errno));
	cr_assert_eq(ipc_recv(sv[1], m, types), 1);
	cr_assert_eq(m->hdr.type, T_BIG);
	cr_assert_eq(m->hdr.len, IPC_MAXPAYLOAD);
	cr_assert(memcmp(m->data, p, IPC_MAXPAYLOAD) == 0);

	errno = 0;
	cr_assert_eq(ipc_send(sv[0], T_BIG, p, IPC_MAXPAYLOAD + 1, -1), -1);
	cr_assert_eq(errno, EMSGSIZE);
	nonblock(sv[1]);
	cr_assert_eq(ipc_recv(sv[1], m, types), -1, "nothing was sent");
	cr_assert_eq(errno, EAGAIN);
	free(p);
}

Test(ipc, pass_descriptor, .init = setup, .fini = teardown)
{
	char	buf[16];
	int	p[2], before;

	cr_assert_eq(pipe(p), 0);
	nonblock(p[0]);
	cr_assert_eq(ipc_send(sv[0], T_FD, "w", 1, p[1]), 0);
	close(p[1]);			/* the copy in flight remains */
	before = nopen();
	cr_assert_eq(ipc_recv(sv[1], m, types), 1);
	cr_assert_eq(m->hdr.type, T_FD);
	cr_assert_geq(m->fd, 0);
	cr_assert_eq(nopen(), before + 1);
	cr_assert(fcntl(m->fd, F_GETFD) & FD_CLOEXEC, "received fd leaks on "
	    "exec");
	/* it is the same pipe */
	cr_assert_eq(write(m->fd, "via fd", 6), 6);
	cr_assert_eq(read(p[0], buf, sizeof(buf)), 6);
	cr_assert(memcmp(buf, "via fd", 6) == 0);
	close(m->fd);
	cr_assert(write_end_closed(p[0]));
	close(p[0]);

	/* a type that may carry one need not */
	cr_assert_eq(ipc_send(sv[0], T_FD, "", 0, -1), 0);
	cr_assert_eq(ipc_recv(sv[1], m, types), 1);
	cr_assert_eq(m->fd, -1);
}

/* The descriptor works in another process: a worker writes through it. */
Test(ipc, pass_descriptor_to_child, .init = setup, .fini = teardown,
    .timeout = 20)
{
	char	buf[64];
	size_t	got = 0;
	ssize_t	r;
	pid_t	pid;
	int	p[2], status;

	fflush(NULL);
	if ((pid = fork()) == 0) {
		struct ipc_msg	*cm = malloc(sizeof(*cm));

		close(sv[0]);
		if (cm == NULL || ipc_recv(sv[1], cm, types) != 1 ||
		    cm->hdr.type != T_FD || cm->fd == -1)
			_exit(2);
		if (write(cm->fd, cm->data, cm->hdr.len) !=
		    (ssize_t)cm->hdr.len)
			_exit(3);
		close(cm->fd);
		if (ipc_send(sv[1], T_PING, "done", 4, -1) == -1)
			_exit(4);
		free(cm);
		_exit(0);
	}
	cr_assert_gt(pid, 0);
	close(sv[1]);
	sv[1] = -1;
	cr_assert_eq(pipe(p), 0);
	cr_assert_eq(ipc_send(sv[0], T_FD, "from the child", 14, p[1]), 0);
	close(p[1]);
	while ((r = read(p[0], buf + got, sizeof(buf) - got)) > 0)
		got += r;
	cr_assert_eq(r, 0, "end of file once the child closed it");
	cr_assert_eq(got, 14);
	cr_assert(memcmp(buf, "from the child", 14) == 0);
	close(p[0]);
	cr_assert_eq(ipc_recv(sv[0], m, types), 1);
	cr_assert_eq(m->hdr.type, T_PING);
	cr_assert(memcmp(m->data, "done", 4) == 0);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "child status %#x", status);
	/* the child's end is gone: end of file */
	cr_assert_eq(ipc_recv(sv[0], m, types), 0);
}

Test(ipc, unknown_type, .init = setup, .fini = teardown)
{
	cr_assert_eq(ipc_send(sv[0], T_UNKNOWN, "x", 1, -1), 0);
	cr_assert_eq(ipc_send(sv[0], 0, "x", 1, -1), 0);
	cr_assert_eq(ipc_send(sv[0], T_PING, "next", 4, -1), 0);
	errno = 0;
	cr_assert_eq(ipc_recv(sv[1], m, types), -1);
	cr_assert_eq(errno, EBADMSG);
	cr_assert_eq(m->fd, -1);
	cr_assert_eq(ipc_recv(sv[1], m, types), -1, "type 0 is not the "
	    "table's end");
	cr_assert_eq(errno, EBADMSG);
	/* the channel is still in step */
	cr_assert_eq(ipc_recv(sv[1], m, types), 1);
	cr_assert_eq(m->hdr.type, T_PING);
	cr_assert(memcmp(m->data, "next", 4) == 0);
}

/* The payload must lie within the type's bounds. */
Test(ipc, length_bounds, .init = setup, .fini = teardown)
{
	static const struct {
		uint32_t	type;
		size_t		len;
		int		ok;
	} t[] = {
		{ T_FIXED, 0, 0 },
		{ T_FIXED, 3, 0 },
		{ T_FIXED, 4, 1 },
		{ T_FIXED, 5, 0 },
		{ T_PING, 0, 1 },
		{ T_PING, 64, 1 },
		{ T_PING, 65, 0 },
		{ T_PING, 4096, 0 },
		{ T_MAYBEFD, 0, 0 },
		{ T_MAYBEFD, 1, 1 },
		{ T_MAYBEFD, 8, 1 },
		{ T_MAYBEFD, 9, 0 },
	};
	char	payload[4096];
	size_t	i;

	memset(payload, 'p', sizeof(payload));
	for (i = 0; i < nitems(t); i++) {
		int	rv;

		cr_assert_eq(ipc_send(sv[0], t[i].type, payload, t[i].len, -1),
		    0);
		errno = 0;
		rv = ipc_recv(sv[1], m, types);
		if (t[i].ok) {
			cr_expect_eq(rv, 1, "case %zu refused", i);
			cr_expect_eq(m->hdr.len, t[i].len);
		} else {
			cr_expect_eq(rv, -1, "case %zu accepted", i);
			cr_expect_eq(errno, EBADMSG);
		}
	}
}

/* A descriptor where none is allowed is closed, and so is the message. */
Test(ipc, unexpected_descriptor_closed, .init = setup, .fini = teardown)
{
	int	p[2], before;

	cr_assert_eq(pipe(p), 0);
	nonblock(p[0]);
	before = nopen();
	cr_assert_eq(ipc_send(sv[0], T_PING, "x", 1, p[1]), 0);
	close(p[1]);
	errno = 0;
	cr_assert_eq(ipc_recv(sv[1], m, types), -1);
	cr_assert_eq(errno, EBADMSG);
	cr_assert_eq(m->fd, -1);
	cr_assert(write_end_closed(p[0]), "the descriptor was kept open");
	cr_assert_eq(nopen(), before - 1);
	close(p[0]);
}

/* Whatever is wrong with a frame, a descriptor it carried is closed. */
Test(ipc, refused_frames_close_descriptors, .init = setup,
    .fini = teardown)
{
	static const struct {
		uint32_t	type;
		uint32_t	hlen;	/* the header's claim */
		size_t		len;	/* the bytes sent after it */
	} t[] = {
		{ T_UNKNOWN, 1, 1 },	/* unknown type */
		{ T_MAYBEFD, 0, 0 },	/* below the type's least */
		{ T_MAYBEFD, 9, 9 },	/* above its most */
		{ T_MAYBEFD, 8, 4 },	/* says more than it holds */
		{ T_MAYBEFD, 2, 4 },	/* says less */
	};
	size_t	i;

	for (i = 0; i < nitems(t); i++) {
		int	p[2], before;

		cr_assert_eq(pipe(p), 0);
		nonblock(p[0]);
		before = nopen();
		send_frame(sv[0], t[i].type, t[i].hlen, t[i].len, p[1]);
		close(p[1]);
		errno = 0;
		cr_expect_eq(ipc_recv(sv[1], m, types), -1, "case %zu", i);
		cr_expect_eq(errno, EBADMSG, "case %zu", i);
		cr_expect_eq(m->fd, -1);
		cr_expect(write_end_closed(p[0]), "case %zu: fd kept", i);
		cr_expect_eq(nopen(), before - 1, "case %zu", i);
		close(p[0]);
	}
}

/* Two descriptors where one is allowed: both closed. */
Test(ipc, two_descriptors, .init = setup, .fini = teardown)
{
	struct ipc_hdr	h = { T_FD, 0 };
	int		p[2], q[2], fds[2], before;

	cr_assert_eq(pipe(p), 0);
	cr_assert_eq(pipe(q), 0);
	nonblock(p[0]);
	nonblock(q[0]);
	fds[0] = p[1];
	fds[1] = q[1];
	before = nopen();
	send_raw(sv[0], &h, sizeof(h), fds, 2);
	close(p[1]);
	close(q[1]);
	errno = 0;
	cr_assert_eq(ipc_recv(sv[1], m, types), -1);
	cr_assert_eq(errno, EBADMSG);
	cr_assert(write_end_closed(p[0]));
	cr_assert(write_end_closed(q[0]));
	cr_assert_eq(nopen(), before - 2);
	close(p[0]);
	close(q[0]);
}

/* Frames shorter than a header, or whose length disagrees. */
Test(ipc, malformed_frames, .init = setup, .fini = teardown)
{
	static const struct {
		char		bytes[16];
		size_t		len;
	} shortf[] = {
		{ "\x01", 1 },
		{ "\x01\0\0", 3 },
		{ "\x01\0\0\0\0\0\0", 7 },
	};
	size_t	i;
	int	p[2];

	for (i = 0; i < nitems(shortf); i++) {
		send_raw(sv[0], shortf[i].bytes, shortf[i].len, NULL, 0);
		errno = 0;
		cr_expect_eq(ipc_recv(sv[1], m, types), -1, "short %zu", i);
		cr_expect_eq(errno, EBADMSG);
	}
	/* the header claims more, or fewer, bytes than follow */
	send_frame(sv[0], T_PING, 10, 5, -1);
	cr_assert_eq(ipc_recv(sv[1], m, types), -1);
	cr_assert_eq(errno, EBADMSG);
	send_frame(sv[0], T_PING, 5, 10, -1);
	cr_assert_eq(ipc_recv(sv[1], m, types), -1);
	cr_assert_eq(errno, EBADMSG);
	send_frame(sv[0], T_PING, UINT32_MAX, 5, -1);
	cr_assert_eq(ipc_recv(sv[1], m, types), -1);
	cr_assert_eq(errno, EBADMSG);
	/* a short frame with a descriptor */
	cr_assert_eq(pipe(p), 0);
	nonblock(p[0]);
	send_raw(sv[0], "abc", 3, &p[1], 1);
	close(p[1]);
	cr_assert_eq(ipc_recv(sv[1], m, types), -1);
	cr_assert_eq(errno, EBADMSG);
	cr_assert(write_end_closed(p[0]));
	close(p[0]);
	/* and the channel still works */
	cr_assert_eq(ipc_send(sv[0], T_PING, "ok", 2, -1), 0);
	cr_assert_eq(ipc_recv(sv[1], m, types), 1);
	cr_assert(memcmp(m->data, "ok", 2) == 0);
}

/* A frame larger than any payload: truncated by the kernel, refused. */
Test(ipc, oversized_frame, .init = setup, .fini = teardown)
{
	size_t	len = IPC_MAXPAYLOAD + 100;
	int	sz = 4 * IPC_MAXPAYLOAD;

	(void)setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	send_frame(sv[0], T_BIG, len, len, -1);
	errno = 0;
	cr_assert_eq(ipc_recv(sv[1], m, types), -1);
	cr_assert_eq(errno, EBADMSG);
	cr_assert_eq(ipc_send(sv[0], T_PING, "ok", 2, -1), 0);
	cr_assert_eq(ipc_recv(sv[1], m, types), 1);
}

Test(ipc, end_of_file, .init = setup, .fini = teardown)
{
	cr_assert_eq(ipc_send(sv[0], T_PING, "last", 4, -1), 0);
	close(sv[0]);
	sv[0] = -1;
	cr_assert_eq(ipc_recv(sv[1], m, types), 1, "queued before the close");
	cr_assert_eq(ipc_recv(sv[1], m, types), 0);
	cr_assert_eq(ipc_recv(sv[1], m, types), 0, "and stays at the end");
	errno = 0;
	cr_assert_eq(ipc_send(sv[1], T_PING, "x", 1, -1), -1,
	    "no SIGPIPE, an error");
	cr_assert_eq(errno, EPIPE);
}

Test(ipc, nothing_waiting, .init = setup, .fini = teardown)
{
	nonblock(sv[1]);
	errno = 0;
	cr_assert_eq(ipc_recv(sv[1], m, types), -1);
	cr_assert_eq(errno, EAGAIN);
}

Test(ipc, bad_socket)
{
	struct ipc_msg	*msg;

	cr_assert_not_null(msg = malloc(sizeof(*msg)));
	cr_assert_eq(ipc_send(-1, T_PING, "x", 1, -1), -1);
	cr_assert_eq(errno, EBADF);
	cr_assert_eq(ipc_recv(-1, msg, types), -1);
	cr_assert_eq(errno, EBADF);
	free(msg);
}

/* A frame of no bytes at all that carries a descriptor. */
Test(ipc, empty_frame_with_descriptor, .init = setup, .fini = teardown)
{
	int	p[2], before, rv;

	cr_assert_eq(pipe(p), 0);
	nonblock(p[0]);
	before = nopen();
	send_raw(sv[0], "", 0, &p[1], 1);
	close(p[1]);
	errno = 0;
	rv = ipc_recv(sv[1], m, types);
	cr_assert_eq(rv, -1, "taken for %s", rv == 0 ? "end of file" :
	    "a message");
	cr_assert_eq(errno, EBADMSG);
	cr_assert(write_end_closed(p[0]), "the descriptor leaked");
	cr_assert_eq(nopen(), before - 1);
	close(p[0]);
}

/* More descriptors than the receiver has room for: none stays open. */
Test(ipc, many_descriptors, .init = setup, .fini = teardown)
{
	struct ipc_hdr	h = { T_FD, 0 };
	int		r[8], w[8], i, before;

	for (i = 0; i < 8; i++) {
		int	p[2];

		cr_assert_eq(pipe(p), 0);
		nonblock(p[0]);
		r[i] = p[0];
		w[i] = p[1];
	}
	before = nopen();
	send_raw(sv[0], &h, sizeof(h), w, 8);
	for (i = 0; i < 8; i++)
		close(w[i]);
	errno = 0;
	cr_assert_eq(ipc_recv(sv[1], m, types), -1);
	cr_assert_eq(errno, EBADMSG);
	for (i = 0; i < 8; i++) {
		cr_expect(write_end_closed(r[i]), "descriptor %d kept", i);
		close(r[i]);
	}
	cr_assert_eq(nopen(), before - 16);
}
