/*
 * queue.c: how many connections wait in a listening socket's accept
 * queue, and how many it may hold.
 *
 * TCP: getsockopt(TCP_INFO) on a listening socket reports the accept
 * queue's length in tcpi_unacked and its limit (the backlog) in
 * tcpi_sacked.  Unix sockets have no such option; the kernel tells it
 * through sock_diag(7): a NETLINK_SOCK_DIAG request for the socket's
 * inode with UDIAG_SHOW_RQLEN answers, for a listening socket, the
 * queue's length (udiag_rqueue) and limit (udiag_wqueue).
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include "appd.h"

static int
unix_queue(int fd, int *len, int *max)
{
	struct {
		struct nlmsghdr		h;
		struct unix_diag_req	r;
	}			 req;
	struct sockaddr_nl	 sa;
	struct stat		 st;
	struct nlmsghdr		*h;
	struct unix_diag_msg	*m;
	struct rtattr		*a;
	char			 buf[4096];
	struct pollfd		 pfd;
	ssize_t			 n;
	int			 nl, alen, rv = -1;

	if (fstat(fd, &st) == -1)
		return (-1);
	if ((nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC,
	    NETLINK_SOCK_DIAG)) == -1)
		return (-1);
	memset(&req, 0, sizeof(req));
	req.h.nlmsg_len = sizeof(req);
	req.h.nlmsg_type = SOCK_DIAG_BY_FAMILY;
	req.h.nlmsg_flags = NLM_F_REQUEST;
	req.r.sdiag_family = AF_UNIX;
	req.r.udiag_states = ~0u;
	req.r.udiag_ino = (uint32_t)st.st_ino;
	req.r.udiag_show = UDIAG_SHOW_RQLEN;
	req.r.udiag_cookie[0] = req.r.udiag_cookie[1] = ~0u;
	memset(&sa, 0, sizeof(sa));
	sa.nl_family = AF_NETLINK;
	if (sendto(nl, &req, sizeof(req), 0, (struct sockaddr *)&sa,
	    sizeof(sa)) == -1)
		goto done;
	pfd.fd = nl;
	pfd.events = POLLIN;
	if (poll(&pfd, 1, 100) != 1)
		goto done;
	if ((n = recv(nl, buf, sizeof(buf), MSG_DONTWAIT)) <= 0)
		goto done;
	for (h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n);
	    h = NLMSG_NEXT(h, n)) {
		if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY)
			break;
		m = NLMSG_DATA(h);
		if (m->udiag_ino != (uint32_t)st.st_ino)
			continue;
		alen = h->nlmsg_len - NLMSG_LENGTH(sizeof(*m));
		for (a = (struct rtattr *)(m + 1); RTA_OK(a, alen);
		    a = RTA_NEXT(a, alen)) {
			struct unix_diag_rqlen	*q;

			if (a->rta_type != UNIX_DIAG_RQLEN ||
			    RTA_PAYLOAD(a) < sizeof(*q))
				continue;
			q = RTA_DATA(a);
			*len = (int)q->udiag_rqueue;
			*max = (int)q->udiag_wqueue;
			rv = 0;
			goto done;
		}
	}
 done:
	close(nl);
	return (rv);
}

/* The accept queue of listening socket <fd>: 0, or -1 when unknown. */
int
listen_queue(int fd, int family, int *len, int *max)
{
	struct tcp_info	ti;
	socklen_t	tl = sizeof(ti);

	*len = *max = 0;
	if (fd == -1)
		return (-1);
	if (family == AF_UNIX)
		return (unix_queue(fd, len, max));
	memset(&ti, 0, sizeof(ti));
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &tl) == -1)
		return (-1);
	*len = (int)ti.tcpi_unacked;
	*max = (int)ti.tcpi_sacked;
	return (0);
}
