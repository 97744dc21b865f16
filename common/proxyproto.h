/*
 * proxyproto.h: the client address that proxies pass on.  The PROXY
 * protocol header (HAProxy's PROXY protocol
 * specification, versions 1 and 2), read from peers that are trusted to
 * send it, and only from those: the receiver never sniffs.
 *
 * Version 1, text, at most 107 bytes with its CRLF:
 *	"PROXY TCP4 1.2.3.4 5.6.7.8 1111 80\r\n", "PROXY TCP6 ...",
 *	"PROXY UNKNOWN ...\r\n"
 * Version 2, binary:
 *	offset	size	field
 *	0	12	signature \r\n\r\n\0\r\nQUIT\n
 *	12	1	version (high nibble, 2) and command (0 LOCAL, 1 PROXY)
 *	13	1	family (1 INET, 2 INET6, 3 UNIX) and transport (1 STREAM)
 *	14	2	length of what follows, network order
 *	16	12	INET: source, destination addresses, source, dest. ports
 *	16	36	INET6: the same with 16-byte addresses
 *	...		TLVs up to the length (skipped)
 */
#ifndef COMMON_PROXYPROTO_H
#define COMMON_PROXYPROTO_H

#include <sys/types.h>
#include <sys/socket.h>
#include "compat.h"

#define PROXYPROTO_V1MAX	107
#define PROXYPROTO_V2MAX	(16 + 65535)

int	proxyproto_parse(const char *, size_t, struct sockaddr_storage *,
	    size_t *, const char **);

/*
 * X-Forwarded-For, for a peer that is a trusted proxy: each proxy appends
 * the address it got the request from, so the client is the last address
 * that is not a trusted proxy's, read from the last element of the last
 * field back across every field (RFC 9110 5.3), or the first address when
 * all are trusted.  0 with <out> set; -1 when there is no field, or when
 * an element met before the client is not an address.
 */
/*
 * Write the PROXY header of <version> (1 or 2) for a connection from
 * <src> to <dst>: TCP4 when both are IPv4, else TCP6 with an IPv4 one
 * v4-mapped; UNKNOWN (version 1) or LOCAL (2) when one is not IP.
 */
struct buf;
void	proxyproto_write(struct buf *, int, const struct sockaddr *,
	    const struct sockaddr *);

struct http_msg;
struct net_trusted;
int	xff_client(const struct http_msg *, const char *,
	    const struct net_trusted *, struct sockaddr_storage *);

#endif
