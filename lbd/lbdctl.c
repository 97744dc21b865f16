/*
 * lbdctl: talk to lbd's control socket.
 *
 *	lbdctl [-s socket] command [argument ...]
 *
 * The words are sent as one line, the answer is printed as it comes.
 * Exits 0, or 1 when the answer is an error (it starts with "error") or
 * the socket cannot be reached.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <err.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lbd.h"

#define LBDCTL_TIMEOUT	10000		/* ms without a byte of the answer */

static __dead void
usage(void)
{
	fprintf(stderr, "usage: %s [-s socket] command [argument ...]\n",
	    getprogname());
	exit(1);
}

static int
ctl_connect(const char *path)
{
	struct sockaddr_un	sun;
	int			fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlcpy(sun.sun_path, path, sizeof(sun.sun_path)) >=
	    sizeof(sun.sun_path))
		errx(1, "%s: socket path too long (max %zu)", path,
		    sizeof(sun.sun_path) - 1);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		err(1, "socket");
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1)
		err(1, "cannot connect to %s", path);
	return (fd);
}

int
main(int argc, char *argv[])
{
	const char	*path = LBD_SOCKET;
	char		 line[LBD_CTL_MAXLINE + 1], buf[8192];
	char		 head[6] = "";
	struct pollfd	 pfd;
	size_t		 len = 0, wl, total = 0;
	ssize_t		 n;
	int		 ch, i, fd, rv, senderr = 0;

	/* "+": options end at the command, as on BSD ("weight -1") */
	while ((ch = getopt(argc, argv, "+s:")) != -1) {
		switch (ch) {
		case 's':
			path = optarg;
			break;
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc == 0)
		usage();

	for (i = 0; i < argc; i++) {
		wl = strlen(argv[i]);
		if (strchr(argv[i], '\n') != NULL)
			errx(1, "a word cannot hold a newline");
		if (len + wl + 2 > LBD_CTL_MAXLINE)
			errx(1, "command too long (max %d bytes)",
			    LBD_CTL_MAXLINE - 1);
		if (i > 0)
			line[len++] = ' ';
		memcpy(line + len, argv[i], wl);
		len += wl;
	}
	line[len++] = '\n';

	fd = ctl_connect(path);
	for (wl = 0; wl < len; wl += n)
		if ((n = send(fd, line + wl, len - wl, MSG_NOSIGNAL)) == -1) {
			if (errno == EINTR) {
				n = 0;
				continue;
			}
			/* a busy server answers and closes before reading:
			 * its answer says why */
			if (errno != EPIPE && errno != ECONNRESET)
				err(1, "%s: send", path);
			senderr = errno;
			break;
		}
	pfd.fd = fd;
	pfd.events = POLLIN;
	for (;;) {
		rv = poll(&pfd, 1, LBDCTL_TIMEOUT);
		if (rv == -1 && errno == EINTR)
			continue;
		if (rv == -1)
			err(1, "poll");
		if (rv == 0)
			errx(1, "%s: no answer within %d ms", path,
			    LBDCTL_TIMEOUT);
		if ((n = read(fd, buf, sizeof(buf))) == -1) {
			if (errno == EINTR)
				continue;
			if (senderr != 0 && total == 0) {
				errno = senderr;
				err(1, "%s: send", path);
			}
			err(1, "%s: read", path);
		}
		if (n == 0)
			break;
		for (i = 0; i < n && total + i < sizeof(head) - 1; i++)
			head[total + i] = buf[i];
		total += n;
		if (fwrite(buf, 1, n, stdout) != (size_t)n)
			err(1, "stdout");
	}
	close(fd);
	if (fflush(stdout) == EOF)
		err(1, "stdout");
	if (total == 0 && senderr != 0) {
		errno = senderr;
		err(1, "%s: send", path);
	}
	if (total == 0)
		errx(1, "%s: the server closed without an answer", path);
	return (strncmp(head, "error", 5) == 0);
}
