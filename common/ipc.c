/*
 * ipc.c: framed messages over SOCK_SEQPACKET with SCM_RIGHTS; see ipc.h
 * for the frame.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "ipc.h"
#include "log.h"

int
ipc_pair(int fds[2])
{
	return (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds));
}

/* Send one message; <fd> -1 for none.  Returns 0 or -1 (errno). */
int
ipc_send(int sock, uint32_t type, const void *data, size_t len, int fd)
{
	struct ipc_hdr	 hdr;
	struct msghdr	 msg;
	struct iovec	 iov[2];
	union {
		struct cmsghdr	hdr;
		char		buf[CMSG_SPACE(sizeof(int))];
	} cmsgbuf;
	struct cmsghdr	*cmsg;
	ssize_t		 n;

	if (len > IPC_MAXPAYLOAD) {
		errno = EMSGSIZE;
		return (-1);
	}
	hdr.type = type;
	hdr.len = len;
	iov[0].iov_base = &hdr;
	iov[0].iov_len = sizeof(hdr);
	iov[1].iov_base = (void *)data;
	iov[1].iov_len = len;
	memset(&msg, 0, sizeof(msg));
	msg.msg_iov = iov;
	msg.msg_iovlen = len ? 2 : 1;
	if (fd != -1) {
		memset(&cmsgbuf, 0, sizeof(cmsgbuf));
		msg.msg_control = cmsgbuf.buf;
		msg.msg_controllen = sizeof(cmsgbuf.buf);
		cmsg = CMSG_FIRSTHDR(&msg);
		cmsg->cmsg_level = SOL_SOCKET;
		cmsg->cmsg_type = SCM_RIGHTS;
		cmsg->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
	}
	do {
		n = sendmsg(sock, &msg, MSG_NOSIGNAL);
	} while (n == -1 && errno == EINTR);
	if (n == -1)
		return (-1);
	if ((size_t)n != sizeof(hdr) + len) {
		errno = EMSGSIZE;
		return (-1);
	}
	return (0);
}

/*
 * Receive one message into <m>, checked against <types> (terminated by a
 * zero name).  Returns 1 for a message, 0 at end of file, -1 on error
 * (errno EAGAIN when nothing waits on a non-blocking channel, EBADMSG
 * for a malformed or unknown frame: the message is logged and dropped).
 */
int
ipc_recv(int sock, struct ipc_msg *m, const struct ipc_type *types)
{
	struct msghdr	 msg;
	struct iovec	 iov[2];
	union {
		struct cmsghdr	hdr;
		char		buf[CMSG_SPACE(sizeof(int) * 4)];
	} cmsgbuf;
	struct cmsghdr	*cmsg;
	const struct ipc_type *t;
	ssize_t		 n;
	int		 fds[4], nfds = 0, i;

	m->fd = -1;
	iov[0].iov_base = &m->hdr;
	iov[0].iov_len = sizeof(m->hdr);
	iov[1].iov_base = m->data;
	iov[1].iov_len = sizeof(m->data);
	memset(&msg, 0, sizeof(msg));
	msg.msg_iov = iov;
	msg.msg_iovlen = 2;
	msg.msg_control = cmsgbuf.buf;
	msg.msg_controllen = sizeof(cmsgbuf.buf);
	do {
		n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
	} while (n == -1 && errno == EINTR);
	if (n == -1)
		return (-1);
	for (cmsg = CMSG_FIRSTHDR(&msg); cmsg != NULL;
	    cmsg = CMSG_NXTHDR(&msg, cmsg)) {
		if (cmsg->cmsg_level == SOL_SOCKET &&
		    cmsg->cmsg_type == SCM_RIGHTS) {
			int	k = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);

			for (i = 0; i < k && nfds < 4; i++)
				memcpy(&fds[nfds++], CMSG_DATA(cmsg) +
				    i * sizeof(int), sizeof(int));
		}
	}
	/* an empty frame with a descriptor is malformed, not the end */
	if (n == 0 && nfds == 0)
		return (0);
	if ((msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) ||
	    (size_t)n < sizeof(m->hdr) ||
	    m->hdr.len != (size_t)n - sizeof(m->hdr)) {
		log_warnx("%s: malformed message (%zd bytes)", __func__, n);
		goto bad;
	}
	for (t = types; t->name != NULL; t++)
		if (t->type == m->hdr.type)
			break;
	if (t->name == NULL) {
		log_warnx("%s: unknown message type %u", __func__,
		    m->hdr.type);
		goto bad;
	}
	if (m->hdr.len < t->minlen || m->hdr.len > t->maxlen) {
		log_warnx("%s: %s: bad length %u", __func__, t->name,
		    m->hdr.len);
		goto bad;
	}
	if (nfds > (t->withfd ? 1 : 0)) {
		log_warnx("%s: %s: unexpected descriptor", __func__, t->name);
		goto bad;
	}
	if (nfds == 1)
		m->fd = fds[0];
	return (1);
 bad:
	for (i = 0; i < nfds; i++)
		close(fds[i]);
	m->fd = -1;
	errno = EBADMSG;
	return (-1);
}
