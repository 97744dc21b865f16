/*
 * net.c: addresses, listening and connecting sockets, CIDR allow lists.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "net.h"

static void
addr_text(struct net_addr *a)
{
	net_sockaddr_str((struct sockaddr *)&a->ss, a->len, a->text,
	    sizeof(a->text));
}

/* Digits only: strtonum(3) would also take a sign and leading spaces. */
static int
all_digits(const char *s)
{
	if (*s == '\0')
		return (0);
	for (; *s != '\0'; s++)
		if (*s < '0' || *s > '9')
			return (0);
	return (1);
}

/*
 * Parse "host:port", "[v6]:port", "*:port" or "unix:/path" into <a>.
 * Returns 0, or -1 with the reason in <err>.
 */
int
net_addr_parse(const char *s, struct net_addr *a, char *err, size_t errlen)
{
	struct addrinfo	 hints, *res;
	char		 host[256];
	const char	*colon, *port;
	const char	*errstr;
	size_t		 hl;
	int		 rv;

	memset(a, 0, sizeof(*a));
	if (strncmp(s, "unix:", 5) == 0) {
		struct sockaddr_un	*sun = (struct sockaddr_un *)&a->ss;

		if (s[5] != '/') {
			snprintf(err, errlen, "a unix socket needs an absolute "
			    "path");
			return (-1);
		}
		if (strlcpy(sun->sun_path, s + 5, sizeof(sun->sun_path)) >=
		    sizeof(sun->sun_path)) {
			snprintf(err, errlen, "socket path too long (max %zu)",
			    sizeof(sun->sun_path) - 1);
			return (-1);
		}
		sun->sun_family = AF_UNIX;
		a->family = AF_UNIX;
		a->len = sizeof(*sun);
		snprintf(a->text, sizeof(a->text), "unix:%s", sun->sun_path);
		return (0);
	}
	if (s[0] == '[') {
		const char	*end = strchr(s, ']');

		if (end == NULL || end[1] != ':') {
			snprintf(err, errlen, "expected [address]:port");
			return (-1);
		}
		hl = end - s - 1;
		if (hl >= sizeof(host)) {
			snprintf(err, errlen, "host too long");
			return (-1);
		}
		memcpy(host, s + 1, hl);
		host[hl] = '\0';
		port = end + 2;
	} else {
		if ((colon = strrchr(s, ':')) == NULL) {
			snprintf(err, errlen, "expected host:port");
			return (-1);
		}
		if (strchr(s, ':') != colon) {
			snprintf(err, errlen, "an IPv6 address goes in "
			    "brackets: [address]:port");
			return (-1);
		}
		hl = colon - s;
		if (hl == 0 || hl >= sizeof(host)) {
			snprintf(err, errlen, "missing or too long host");
			return (-1);
		}
		memcpy(host, s, hl);
		host[hl] = '\0';
		port = colon + 1;
	}
	rv = strtonum(port, 1, 65535, &errstr);
	if (errstr != NULL || !all_digits(port)) {
		snprintf(err, errlen, "invalid port \"%s\" (1-65535)", port);
		return (-1);
	}
	if (strcmp(host, "*") == 0) {
		struct sockaddr_in	*sin = (struct sockaddr_in *)&a->ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(rv);
		sin->sin_addr.s_addr = htonl(INADDR_ANY);
		a->family = AF_INET;
		a->len = sizeof(*sin);
		addr_text(a);
		return (0);
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	if ((rv = getaddrinfo(host, port, &hints, &res)) != 0) {
		snprintf(err, errlen, "cannot resolve \"%s\": %s", host,
		    gai_strerror(rv));
		return (-1);
	}
	memcpy(&a->ss, res->ai_addr, res->ai_addrlen);
	a->len = res->ai_addrlen;
	a->family = res->ai_family;
	freeaddrinfo(res);
	addr_text(a);
	return (0);
}

/* <a> with another port (a check's); -1 for a unix socket. */
int
net_addr_set_port(struct net_addr *a, int port)
{
	if (a->family == AF_INET)
		((struct sockaddr_in *)&a->ss)->sin_port = htons(port);
	else if (a->family == AF_INET6)
		((struct sockaddr_in6 *)&a->ss)->sin6_port = htons(port);
	else
		return (-1);
	addr_text(a);
	return (0);
}

/* "1.2.3.4:80", "[::1]:80", "unix:/path" */
const char *
net_sockaddr_str(const struct sockaddr *sa, socklen_t len, char *buf,
    size_t size)
{
	char	ip[INET6_ADDRSTRLEN];

	switch (sa->sa_family) {
	case AF_INET: {
		const struct sockaddr_in *sin = (const void *)sa;

		inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
		snprintf(buf, size, "%s:%u", ip, ntohs(sin->sin_port));
		break;
	}
	case AF_INET6: {
		const struct sockaddr_in6 *sin6 = (const void *)sa;

		inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip));
		snprintf(buf, size, "[%s]:%u", ip, ntohs(sin6->sin6_port));
		break;
	}
	case AF_UNIX: {
		const struct sockaddr_un *sun = (const void *)sa;

		if (len <= offsetof(struct sockaddr_un, sun_path) ||
		    sun->sun_path[0] == '\0')
			snprintf(buf, size, "unix:");
		else
			snprintf(buf, size, "unix:%.*s",
			    (int)(len - offsetof(struct sockaddr_un,
			    sun_path)), sun->sun_path);
		break;
	}
	default:
		snprintf(buf, size, "unknown");
	}
	return (buf);
}

/* The address alone: "1.2.3.4", "::1" (v4-mapped shown as v4), "unix". */
const char *
net_sockaddr_ip(const struct sockaddr *sa, char *buf, size_t size)
{
	switch (sa->sa_family) {
	case AF_INET: {
		/* by hand: inet_ntop goes through sprintf, once a request */
		const uint8_t	*a = (const uint8_t *)&((const struct
				    sockaddr_in *)(const void *)sa)->sin_addr;
		char		 t[16];
		int		 i, n = 0;

		for (i = 0; i < 4; i++) {
			if (a[i] >= 100)
				t[n++] = '0' + a[i] / 100;
			if (a[i] >= 10)
				t[n++] = '0' + a[i] / 10 % 10;
			t[n++] = '0' + a[i] % 10;
			t[n++] = i < 3 ? '.' : '\0';
		}
		strlcpy(buf, t, size);
		break;
	}
	case AF_INET6: {
		const struct sockaddr_in6 *sin6 = (const void *)sa;

		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr))
			inet_ntop(AF_INET, &sin6->sin6_addr.s6_addr[12], buf,
			    size);
		else
			inet_ntop(AF_INET6, &sin6->sin6_addr, buf, size);
		break;
	}
	default:
		snprintf(buf, size, "unix");
	}
	return (buf);
}

int
net_addr_eq(const struct net_addr *a, const struct net_addr *b)
{
	return (strcmp(a->text, b->text) == 0);
}

int
net_nonblock(int fd)
{
	int	fl;

	if ((fl = fcntl(fd, F_GETFL)) == -1 ||
	    fcntl(fd, F_SETFL, fl | O_NONBLOCK) == -1)
		return (-1);
	return (0);
}

int
net_somaxconn(void)
{
	FILE	*fp;
	int	 v = -1;

	if ((fp = fopen("/proc/sys/net/core/somaxconn", "r")) != NULL) {
		if (fscanf(fp, "%d", &v) != 1)
			v = -1;
		fclose(fp);
	}
	return (v);
}

/*
 * Remove a unix socket file left by a dead process; refuse one that
 * somebody still listens on.  Only a refused connection proves the file
 * stale: a full backlog (EAGAIN) or a socket of another type (EPROTOTYPE)
 * is somebody's live socket.
 */
static int
unix_stale(const struct net_addr *a)
{
	const struct sockaddr_un	*sun = (const void *)&a->ss;
	struct stat			 st;
	int				 fd, rv, saved;

	if (lstat(sun->sun_path, &st) == -1)
		return (errno == ENOENT ? 0 : -1);
	if (!S_ISSOCK(st.st_mode)) {
		errno = EEXIST;
		return (-1);
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) == -1)
		return (-1);
	rv = connect(fd, (const struct sockaddr *)sun, a->len);
	saved = errno;
	close(fd);
	if (rv == 0 || saved == EAGAIN || saved == EPROTOTYPE) {
		errno = EADDRINUSE;
		return (-1);
	}
	if (saved != ECONNREFUSED) {
		errno = saved;
		return (-1);
	}
	log_debug("removing stale socket %s", sun->sun_path);
	return (unlink(sun->sun_path));
}

/*
 * A non-blocking listening socket for <a>.  <backlog> 0 means NET_BACKLOG.
 * <clamped> gets the backlog the kernel will really use when it is
 * smaller than asked.  Returns the fd or -1 (errno set).
 */
int
net_listen(const struct net_addr *a, int backlog, int *clamped)
{
	int	fd, one = 1, max;

	if (backlog <= 0)
		backlog = NET_BACKLOG;
	if (clamped != NULL) {
		*clamped = 0;
		if ((max = net_somaxconn()) > 0 && max < backlog)
			*clamped = max;
	}
	if (a->family == AF_UNIX && unix_stale(a) == -1)
		return (-1);
	if ((fd = socket(a->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) == -1)
		return (-1);
	if (a->family != AF_UNIX &&
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1)
		goto fail;
	/* "[::]:80" and "0.0.0.0:80" may both be listed */
	if (a->family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) == -1)
		goto fail;
	if (a->family == AF_UNIX) {
		/*
		 * The file is made with mode 0600, and given its mode after
		 * (net_unix_perms()): no one else can connect in between.
		 */
		mode_t	um = umask(077);
		int	rv = bind(fd, (const struct sockaddr *)&a->ss, a->len);

		umask(um);
		if (rv == -1)
			goto fail;
	} else if (bind(fd, (const struct sockaddr *)&a->ss, a->len) == -1)
		goto fail;
	if (listen(fd, backlog) == -1)
		goto fail;
	return (fd);
 fail:
	{
		int	saved = errno;

		close(fd);
		errno = saved;
	}
	return (-1);
}

/* Owner and mode of a unix socket file; uid/gid (uid_t)-1 keep. */
int
net_unix_perms(const char *path, int mode, uid_t uid, gid_t gid)
{
	if (chown(path, uid, gid) == -1)
		return (-1);
	if (mode >= 0 && chmod(path, mode) == -1)
		return (-1);
	return (0);
}

/*
 * TCP_NODELAY on a TCP socket of address family <family> (others are
 * left alone): what a proxy or a server writes goes out at once.  With
 * Nagle's algorithm, a write smaller than the MSS (64 KiB on loopback)
 * waits for the ACK of what is in flight, and a peer that delays its
 * ACK holds it for up to 40 ms.
 */
void
net_nodelay(int fd, int family)
{
	int	one = 1;

	if (family == AF_INET || family == AF_INET6)
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
		    sizeof(one));
}

/* Start a non-blocking connect; returns the fd (errno EINPROGRESS ok). */
int
net_connect(const struct net_addr *a)
{
	int	fd;

	if ((fd = socket(a->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) == -1)
		return (-1);
	net_nodelay(fd, a->family);
	if (connect(fd, (const struct sockaddr *)&a->ss, a->len) == -1 &&
	    errno != EINPROGRESS) {
		int	saved = errno;

		close(fd);
		errno = saved;
		return (-1);
	}
	return (fd);
}

/*
 * Connect within <ms> milliseconds, for tools and the master (not for
 * the event loop).  Returns a non-blocking connected fd or -1.
 */
int
net_connect_wait(const struct net_addr *a, int ms)
{
	struct pollfd	pfd;
	socklen_t	sl = sizeof(int);
	int		fd, err = 0, rv;

	if ((fd = net_connect(a)) == -1)
		return (-1);
	pfd.fd = fd;
	pfd.events = POLLOUT;
	do {
		rv = poll(&pfd, 1, ms);
	} while (rv == -1 && errno == EINTR);
	if (rv == 0) {
		close(fd);
		errno = ETIMEDOUT;
		return (-1);
	}
	if (rv == -1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl) == -1)
		err = errno;
	if (err != 0) {
		close(fd);
		errno = err;
		return (-1);
	}
	return (fd);
}

/* "10.0.0.0/8", "10.1.2.3", "fd00::/8", "::1".  Host bits are cleared. */
int
net_cidr_parse(const char *s, struct net_cidr *c)
{
	char		 buf[INET6_ADDRSTRLEN + 8], *slash;
	const char	*errstr;
	int		 max, i;

	memset(c, 0, sizeof(*c));
	if (strlcpy(buf, s, sizeof(buf)) >= sizeof(buf))
		return (-1);
	if ((slash = strchr(buf, '/')) != NULL)
		*slash++ = '\0';
	if (inet_pton(AF_INET, buf, c->addr) == 1) {
		c->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, buf, c->addr) == 1) {
		c->family = AF_INET6;
		max = 128;
	} else
		return (-1);
	c->bits = max;
	if (slash != NULL) {
		c->bits = strtonum(slash, 0, max, &errstr);
		if (errstr != NULL || !all_digits(slash))
			return (-1);
	}
	for (i = 0; i < max / 8; i++) {
		int	keep = c->bits - i * 8;

		if (keep >= 8)
			continue;
		c->addr[i] &= keep <= 0 ? 0 : (uint8_t)(0xff << (8 - keep));
	}
	return (0);
}

static int
prefix_eq(const uint8_t *a, const uint8_t *b, int bits)
{
	int	full = bits / 8, rest = bits % 8;

	if (memcmp(a, b, full) != 0)
		return (0);
	if (rest == 0)
		return (1);
	return (((a[full] ^ b[full]) & (0xff << (8 - rest))) == 0);
}

int
net_cidr_match(const struct net_cidr *c, const struct sockaddr *sa)
{
	const uint8_t	*p;

	if (sa->sa_family == AF_INET) {
		if (c->family != AF_INET)
			return (0);
		p = (const uint8_t *)&((const struct sockaddr_in *)
		    (const void *)sa)->sin_addr;
		return (prefix_eq(p, c->addr, c->bits));
	}
	if (sa->sa_family == AF_INET6) {
		const struct in6_addr *in6 = &((const struct sockaddr_in6 *)
		    (const void *)sa)->sin6_addr;

		p = in6->s6_addr;
		if (c->family == AF_INET)
			return (IN6_IS_ADDR_V4MAPPED(in6) &&
			    prefix_eq(p + 12, c->addr, c->bits));
		return (prefix_eq(p, c->addr, c->bits));
	}
	return (0);
}

void
net_acl_add(struct net_acl *acl, int allow, const struct net_cidr *c)
{
	struct net_acl_rule	*r;

	if ((r = reallocarray(acl->rules, acl->nrules + 1,
	    sizeof(*r))) == NULL)
		fatal("%s", __func__);
	acl->rules = r;
	acl->rules[acl->nrules].allow = allow;
	acl->rules[acl->nrules].cidr = *c;
	acl->nrules++;
}

int
net_acl_allows(const struct net_acl *acl, const struct sockaddr *sa)
{
	int	i;

	if (sa->sa_family == AF_UNIX)
		return (1);	/* file permissions guard those */
	for (i = 0; i < acl->nrules; i++)
		if (net_cidr_match(&acl->rules[i].cidr, sa))
			return (acl->rules[i].allow);
	return (net_acl_unmatched(acl));
}

/* The verdict for an address no rule matches (or none at all). */
int
net_acl_unmatched(const struct net_acl *acl)
{
	int	i;

	for (i = 0; i < acl->nrules; i++)
		if (acl->rules[i].allow)
			return (0);
	return (1);
}

/* Does a rule of <acl> match <sa> (an IP address)?  Its verdict aside. */
int
net_acl_match(const struct net_acl *acl, const struct sockaddr *sa)
{
	int	i;

	for (i = 0; i < acl->nrules; i++)
		if (net_cidr_match(&acl->rules[i].cidr, sa))
			return (1);
	return (0);
}

int
net_trusted_peer(const struct net_trusted *t, const struct sockaddr *sa)
{
	if (sa->sa_family == AF_UNIX)
		return (t->unixpeers);
	return (net_acl_match(&t->acl, sa));
}

void
net_acl_free(struct net_acl *acl)
{
	free(acl->rules);
	acl->rules = NULL;
	acl->nrules = 0;
}
