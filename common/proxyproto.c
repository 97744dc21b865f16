/*
 * proxyproto.c: read a PROXY protocol header or X-Forwarded-For (see
 * proxyproto.h).
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "http.h"
#include "net.h"
#include "proxyproto.h"

static const char	v2sig[12] = "\r\n\r\n\0\r\nQUIT\n";

static int
v1_port(const char *s, uint16_t *port)
{
	const char	*errstr;
	long long	 v;

	if (*s == '\0' || (s[0] == '0' && s[1] != '\0'))
		return (-1);
	for (const char *p = s; *p; p++)
		if (*p < '0' || *p > '9')
			return (-1);
	v = strtonum(s, 0, 65535, &errstr);
	if (errstr != NULL)
		return (-1);
	*port = htons((uint16_t)v);
	return (0);
}

static int
parse_v1(const char *buf, size_t len, struct sockaddr_storage *ss,
    size_t *used, const char **why)
{
	char		 line[PROXYPROTO_V1MAX + 1], *f[7], *p;
	const char	*crlf = NULL;
	size_t		 i, n;
	int		 nf = 0;

	for (i = 0; i + 1 < len && i < PROXYPROTO_V1MAX; i++)
		if (buf[i] == '\r' && buf[i + 1] == '\n') {
			crlf = buf + i;
			break;
		}
	if (crlf == NULL) {
		if (len >= PROXYPROTO_V1MAX) {
			*why = "PROXY v1 line too long";
			return (-1);
		}
		for (i = 0; i < len; i++)
			if (buf[i] == '\n' || buf[i] == '\0') {
				*why = "malformed PROXY v1 line";
				return (-1);
			}
		return (0);
	}
	n = crlf - buf;
	memcpy(line, buf, n);
	line[n] = '\0';
	*used = n + 2;
	p = line;
	while (nf < 7 && (f[nf] = strsep(&p, " ")) != NULL)
		nf++;
	if (nf >= 2 && strcmp(f[1], "UNKNOWN") == 0) {
		ss->ss_family = AF_UNSPEC;
		return (1);
	}
	if (nf != 6 || p != NULL) {
		*why = "malformed PROXY v1 line";
		return (-1);
	}
	memset(ss, 0, sizeof(*ss));
	if (strcmp(f[1], "TCP4") == 0) {
		struct sockaddr_in	*sin = (struct sockaddr_in *)ss;
		struct in_addr		 dst;

		sin->sin_family = AF_INET;
		if (inet_pton(AF_INET, f[2], &sin->sin_addr) != 1 ||
		    inet_pton(AF_INET, f[3], &dst) != 1 ||
		    v1_port(f[4], &sin->sin_port) == -1 ||
		    v1_port(f[5], &(uint16_t){ 0 }) == -1) {
			*why = "bad address in PROXY v1 line";
			return (-1);
		}
		return (1);
	}
	if (strcmp(f[1], "TCP6") == 0) {
		struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)ss;
		struct in6_addr		 dst;

		sin6->sin6_family = AF_INET6;
		if (inet_pton(AF_INET6, f[2], &sin6->sin6_addr) != 1 ||
		    inet_pton(AF_INET6, f[3], &dst) != 1 ||
		    v1_port(f[4], &sin6->sin6_port) == -1 ||
		    v1_port(f[5], &(uint16_t){ 0 }) == -1) {
			*why = "bad address in PROXY v1 line";
			return (-1);
		}
		return (1);
	}
	*why = "unknown protocol in PROXY v1 line";
	return (-1);
}

static int
parse_v2(const unsigned char *b, size_t len, struct sockaddr_storage *ss,
    size_t *used, const char **why)
{
	size_t	hl;

	if (len < 16)
		return (0);
	if ((b[12] & 0xf0) != 0x20) {
		*why = "unsupported PROXY version";
		return (-1);
	}
	hl = 16 + ((size_t)b[14] << 8 | b[15]);
	if (len < hl)
		return (0);
	*used = hl;
	memset(ss, 0, sizeof(*ss));
	switch (b[12] & 0x0f) {
	case 0:		/* LOCAL: the proxy itself, e.g. a health check */
		ss->ss_family = AF_UNSPEC;
		return (1);
	case 1:
		break;
	default:
		*why = "unknown PROXY v2 command";
		return (-1);
	}
	switch (b[13]) {
	case 0x11: {
		struct sockaddr_in	*sin = (struct sockaddr_in *)ss;

		if (hl < 16 + 12) {
			*why = "short PROXY v2 address block";
			return (-1);
		}
		sin->sin_family = AF_INET;
		memcpy(&sin->sin_addr, b + 16, 4);
		memcpy(&sin->sin_port, b + 24, 2);
		return (1);
	}
	case 0x21: {
		struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)ss;

		if (hl < 16 + 36) {
			*why = "short PROXY v2 address block";
			return (-1);
		}
		sin6->sin6_family = AF_INET6;
		memcpy(&sin6->sin6_addr, b + 16, 16);
		memcpy(&sin6->sin6_port, b + 48, 2);
		return (1);
	}
	default:
		/* UNSPEC, UNIX, UDP: no usable client address */
		ss->ss_family = AF_UNSPEC;
		return (1);
	}
}

/*
 * Parse the header at the start of buf[0..len).  Returns 1 with the
 * client's address in <ss> (family AF_UNSPEC: keep the peer's, as for
 * LOCAL or UNKNOWN) and the header's length in <used>; 0 when more bytes
 * are needed; -1 when this is no valid header (<why> says why).
 */
int
proxyproto_parse(const char *buf, size_t len, struct sockaddr_storage *ss,
    size_t *used, const char **why)
{
	size_t	n = len < sizeof(v2sig) ? len : sizeof(v2sig);

	*why = NULL;
	if (len == 0)
		return (0);
	if (memcmp(buf, v2sig, n) == 0) {
		if (len < sizeof(v2sig))
			return (0);
		return (parse_v2((const unsigned char *)buf, len, ss, used,
		    why));
	}
	n = len < 6 ? len : 6;
	if (memcmp(buf, "PROXY ", n) == 0) {
		if (len < 6)
			return (0);
		return (parse_v1(buf, len, ss, used, why));
	}
	*why = "no PROXY header from a peer that must send one";
	return (-1);
}

/* One element of X-Forwarded-For, [p, e), as an address; -1 if not one. */
static int
xff_addr(const char *p, const char *e, struct sockaddr_storage *ss)
{
	char			 a[INET6_ADDRSTRLEN + 1];
	struct sockaddr_in	*sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)ss;

	while (p < e && (*p == ' ' || *p == '\t'))
		p++;
	while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	if (e == p || (size_t)(e - p) >= sizeof(a))
		return (-1);
	memcpy(a, p, e - p);
	a[e - p] = '\0';
	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, a, &sin->sin_addr) == 1)
		sin->sin_family = AF_INET;
	else if (inet_pton(AF_INET6, a, &sin6->sin6_addr) == 1)
		sin6->sin6_family = AF_INET6;
	else
		return (-1);
	return (0);
}

int
xff_client(const struct http_msg *m, const char *head,
    const struct net_trusted *t, struct sockaddr_storage *out)
{
	struct sockaddr_storage	 ss;
	struct slice		 v;
	const char		*p, *end;
	int			 h, found = 0;

	for (h = m->nhdrs - 1; h >= 0; h--) {
		if (m->hdrs[h].namelen != 15 || !http_token_eq(head +
		    m->hdrs[h].name, 15, "x-forwarded-for"))
			continue;
		v = http_hdr_value(head, &m->hdrs[h]);
		end = v.p + v.len;
		for (;;) {
			for (p = end; p > v.p && p[-1] != ','; p--)
				;
			if (xff_addr(p, end, &ss) == -1)
				return (-1);	/* the client is unknown */
			*out = ss;
			found = 1;
			if (!net_acl_match(&t->acl, (struct sockaddr *)&ss))
				return (0);
			if (p == v.p)
				break;
			end = p - 1;
		}
	}
	return (found ? 0 : -1);
}

/* <sa> (IPv4 or IPv6) as IPv6, an IPv4 address v4-mapped. */
static void
as_ipv6(const struct sockaddr *sa, struct sockaddr_in6 *out)
{
	const struct sockaddr_in	*s = (const void *)sa;

	if (sa->sa_family == AF_INET6) {
		memcpy(out, sa, sizeof(*out));
		return;
	}
	memset(out, 0, sizeof(*out));
	out->sin6_family = AF_INET6;
	out->sin6_port = s->sin_port;
	out->sin6_addr.s6_addr[10] = 0xff;
	out->sin6_addr.s6_addr[11] = 0xff;
	memcpy(&out->sin6_addr.s6_addr[12], &s->sin_addr, 4);
}

void
proxyproto_write(struct buf *b, int version, const struct sockaddr *src,
    const struct sockaddr *dst)
{
	struct sockaddr_in6	 s6, d6;
	char			 a[INET6_ADDRSTRLEN], d[INET6_ADDRSTRLEN];
	uint16_t		 len;

	if ((src->sa_family != AF_INET && src->sa_family != AF_INET6) ||
	    (dst->sa_family != AF_INET && dst->sa_family != AF_INET6)) {
		if (version == 1)
			buf_append(b, "PROXY UNKNOWN\r\n", 15);
		else {
			buf_append(b, v2sig, sizeof(v2sig));
			buf_append(b, "\x20\x00\x00\x00", 4);	/* LOCAL */
		}
		return;
	}
	if (src->sa_family == AF_INET && dst->sa_family == AF_INET) {
		const struct sockaddr_in *s = (const void *)src;
		const struct sockaddr_in *t = (const void *)dst;

		if (version == 1) {
			inet_ntop(AF_INET, &s->sin_addr, a, sizeof(a));
			inet_ntop(AF_INET, &t->sin_addr, d, sizeof(d));
			buf_printf(b, "PROXY TCP4 %s %s %u %u\r\n", a, d,
			    ntohs(s->sin_port), ntohs(t->sin_port));
			return;
		}
		len = htons(12);
		buf_append(b, v2sig, sizeof(v2sig));
		buf_append(b, "\x21\x11", 2);
		buf_append(b, &len, 2);
		buf_append(b, &s->sin_addr, 4);
		buf_append(b, &t->sin_addr, 4);
		buf_append(b, &s->sin_port, 2);
		buf_append(b, &t->sin_port, 2);
		return;
	}
	/* IPv6, or one of each: the IPv4 one v4-mapped, as HAProxy does */
	as_ipv6(src, &s6);
	as_ipv6(dst, &d6);
	if (version == 1) {
		inet_ntop(AF_INET6, &s6.sin6_addr, a, sizeof(a));
		inet_ntop(AF_INET6, &d6.sin6_addr, d, sizeof(d));
		buf_printf(b, "PROXY TCP6 %s %s %u %u\r\n", a, d,
		    ntohs(s6.sin6_port), ntohs(d6.sin6_port));
		return;
	}
	len = htons(36);
	buf_append(b, v2sig, sizeof(v2sig));
	buf_append(b, "\x21\x21", 2);
	buf_append(b, &len, 2);
	buf_append(b, &s6.sin6_addr, 16);
	buf_append(b, &d6.sin6_addr, 16);
	buf_append(b, &s6.sin6_port, 2);
	buf_append(b, &d6.sin6_port, 2);
}
