/*
 * net.h: addresses, listening and connecting sockets, CIDR allow lists.
 *
 * Address syntax, shared by every conf file: "host:port", "[v6]:port",
 * "*:port" (all IPv4 addresses), "unix:/absolute/path".  A host name is
 * resolved once, when the conf is read.
 */
#ifndef COMMON_NET_H
#define COMMON_NET_H

#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <stdint.h>
#include "compat.h"

#define NET_BACKLOG	511		/* listen(2) default, as nginx */
#define NET_ADDRSTRLEN	128		/* "[v6]:port", "unix:/path" */

struct net_addr {
	int			 family;	/* AF_INET, AF_INET6, AF_UNIX */
	socklen_t		 len;
	struct sockaddr_storage	 ss;
	char			 text[NET_ADDRSTRLEN];
};

struct net_cidr {
	int		family;
	uint8_t		addr[16];
	int		bits;
};

struct net_acl_rule {
	int		allow;
	struct net_cidr	cidr;
};

/*
 * Rules are tried in order and the first match wins.  When none matches
 * the address is denied if the list holds any "allow" rule, allowed
 * otherwise; an empty list allows everything.
 */
struct net_acl {
	struct net_acl_rule	*rules;
	int			 nrules;
};

/*
 * The proxies whose word on the client is believed (X-Forwarded-For, a
 * PROXY header): networks, and unix socket peers when <unixpeers>.
 */
struct net_trusted {
	struct net_acl		 acl;
	int			 unixpeers;
};

int	 net_addr_parse(const char *, struct net_addr *, char *, size_t);
const char *net_sockaddr_str(const struct sockaddr *, socklen_t, char *,
	    size_t);
const char *net_sockaddr_ip(const struct sockaddr *, char *, size_t);
int	 net_addr_eq(const struct net_addr *, const struct net_addr *);
int	 net_addr_set_port(struct net_addr *, int);
int	 net_listen(const struct net_addr *, int, int *);
int	 net_unix_perms(const char *, int, uid_t, gid_t);
void	 net_nodelay(int, int);
int	 net_connect(const struct net_addr *);
int	 net_connect_wait(const struct net_addr *, int);
int	 net_nonblock(int);
int	 net_somaxconn(void);

int	 net_cidr_parse(const char *, struct net_cidr *);
int	 net_cidr_match(const struct net_cidr *, const struct sockaddr *);
void	 net_acl_add(struct net_acl *, int, const struct net_cidr *);
int	 net_acl_allows(const struct net_acl *, const struct sockaddr *);
int	 net_acl_unmatched(const struct net_acl *);
void	 net_acl_free(struct net_acl *);
int	 net_acl_match(const struct net_acl *, const struct sockaddr *);
int	 net_trusted_peer(const struct net_trusted *, const struct sockaddr *);

#endif
