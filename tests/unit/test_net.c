/*
 * test_net.c: address parsing, CIDR parsing and matching, allow/deny
 * lists, listening and connecting on loopback and unix sockets.
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
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "http.h"
#include "net.h"
#include "proxyproto.h"

/* Address parsing */

static const struct {
	char	in[160];
	int	family;
	char	text[NET_ADDRSTRLEN];
	int	port;
} addr_good[] = {
	{ "127.0.0.1:80", AF_INET, "127.0.0.1:80", 80 },
	{ "10.1.2.3:1", AF_INET, "10.1.2.3:1", 1 },
	{ "1.2.3.4:65535", AF_INET, "1.2.3.4:65535", 65535 },
	{ "*:8080", AF_INET, "0.0.0.0:8080", 8080 },
	{ "0.0.0.0:443", AF_INET, "0.0.0.0:443", 443 },
	{ "[::1]:443", AF_INET6, "[::1]:443", 443 },
	{ "[::]:80", AF_INET6, "[::]:80", 80 },
	{ "[fd00::1:2]:9000", AF_INET6, "[fd00::1:2]:9000", 9000 },
	{ "[::ffff:1.2.3.4]:80", AF_INET6, "[::ffff:1.2.3.4]:80", 80 },
	{ "[2001:DB8::A]:80", AF_INET6, "[2001:db8::a]:80", 80 },
	{ "unix:/run/webd.sock", AF_UNIX, "unix:/run/webd.sock", 0 },
	{ "unix:/", AF_UNIX, "unix:/", 0 },
};

static const char addr_bad[][160] = {
	"",
	"127.0.0.1",
	"127.0.0.1:",
	"127.0.0.1:0",
	"127.0.0.1:65536",
	"127.0.0.1:99999999999999999999",
	"127.0.0.1:-1",
	"127.0.0.1:-0",
	"127.0.0.1:+80",
	"127.0.0.1: 80",
	"127.0.0.1:80 ",
	"127.0.0.1:80x",
	"127.0.0.1:0x50",
	"127.0.0.1:http",
	":80",
	"::1:80",
	"fd00::1:80",
	"[::1]",
	"[::1]80",
	"[::1]:",
	"[::1:80",
	"[::1]:0",
	"[::1]:+443",
	"[::1]:443]",
	"*:",
	"*:0",
	"*:65536",
	"unix:",
	"unix:relative.sock",
	"unix:./x.sock",
	"unix:/" "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
};

Test(net, addr_parse_good)
{
	size_t	i;

	for (i = 0; i < nitems(addr_good); i++) {
		struct net_addr	a;
		char		err[256] = "";

		memset(&a, 0xa5, sizeof(a));
		cr_assert_eq(net_addr_parse(addr_good[i].in, &a, err,
		    sizeof(err)), 0, "\"%s\": %s", addr_good[i].in, err);
		cr_expect_eq(a.family, addr_good[i].family, "\"%s\"",
		    addr_good[i].in);
		cr_expect_eq(a.ss.ss_family, addr_good[i].family);
		cr_expect_str_eq(a.text, addr_good[i].text);
		switch (a.family) {
		case AF_INET:
			cr_expect_eq(a.len, sizeof(struct sockaddr_in));
			cr_expect_eq(ntohs(((struct sockaddr_in *)&a.ss)->
			    sin_port), addr_good[i].port, "%s", a.text);
			break;
		case AF_INET6:
			cr_expect_eq(a.len, sizeof(struct sockaddr_in6));
			cr_expect_eq(ntohs(((struct sockaddr_in6 *)&a.ss)->
			    sin6_port), addr_good[i].port, "%s", a.text);
			break;
		case AF_UNIX:
			cr_expect_str_eq(((struct sockaddr_un *)&a.ss)->
			    sun_path, addr_good[i].in + 5);
			break;
		}
	}
}

Test(net, addr_parse_bad)
{
	size_t	i;

	for (i = 0; i < nitems(addr_bad); i++) {
		struct net_addr	a;
		char		err[256] = "";

		cr_expect_eq(net_addr_parse(addr_bad[i], &a, err, sizeof(err)),
		    -1, "\"%s\" accepted as %s", addr_bad[i], a.text);
		cr_expect_neq(err[0], '\0', "\"%s\": no reason given",
		    addr_bad[i]);
	}
}

/* The longest unix path that fits, and one byte more. */
Test(net, addr_parse_unix_length)
{
	struct sockaddr_un	sun;
	struct net_addr		a;
	char			in[sizeof(sun.sun_path) + 16], err[128];
	size_t			max = sizeof(sun.sun_path) - 1;

	strlcpy(in, "unix:/", sizeof(in));
	memset(in + 6, 'p', max - 1);
	in[5 + max] = '\0';
	cr_assert_eq(strlen(in + 5), max);
	cr_assert_eq(net_addr_parse(in, &a, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(strlen(((struct sockaddr_un *)&a.ss)->sun_path), max);
	strlcat(in, "p", sizeof(in));
	cr_assert_eq(net_addr_parse(in, &a, err, sizeof(err)), -1);
	cr_assert(strstr(err, "too long") != NULL, "%s", err);
}

/* The error text fits what the caller gives, however small. */
Test(net, addr_parse_small_errbuf)
{
	struct net_addr	a;
	char		err[8];

	memset(err, 'x', sizeof(err));
	cr_assert_eq(net_addr_parse("nonsense", &a, err, sizeof(err)), -1);
	cr_assert_eq(err[sizeof(err) - 1], '\0');
}

/* A name is resolved once; localhost is in /etc/hosts everywhere. */
Test(net, addr_parse_name)
{
	struct net_addr	a;
	char		err[128];

	cr_assert_eq(net_addr_parse("localhost:25", &a, err, sizeof(err)), 0,
	    "%s", err);
	cr_assert(strcmp(a.text, "127.0.0.1:25") == 0 ||
	    strcmp(a.text, "[::1]:25") == 0, "localhost is %s", a.text);
}

Test(net, addr_eq)
{
	struct net_addr	a, b, c, d;
	char		err[128];

	cr_assert_eq(net_addr_parse("127.0.0.1:80", &a, err, sizeof(err)), 0);
	cr_assert_eq(net_addr_parse("*:80", &b, err, sizeof(err)), 0);
	cr_assert(!net_addr_eq(&a, &b));
	cr_assert_eq(net_addr_parse("127.0.0.1:80", &b, err, sizeof(err)), 0);
	cr_assert_eq(net_addr_parse("127.0.0.1:81", &c, err, sizeof(err)), 0);
	cr_assert_eq(net_addr_parse("[::ffff:127.0.0.1]:80", &d, err,
	    sizeof(err)), 0);
	cr_assert(net_addr_eq(&a, &b));
	cr_assert(!net_addr_eq(&a, &c));
	cr_assert(!net_addr_eq(&a, &d));
}

static void
mk_sin(struct sockaddr_storage *ss, const char *ip, int port)
{
	memset(ss, 0, sizeof(*ss));
	if (strchr(ip, ':') == NULL) {
		struct sockaddr_in	*sin = (struct sockaddr_in *)ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		cr_assert_eq(inet_pton(AF_INET, ip, &sin->sin_addr), 1, "%s",
		    ip);
	} else {
		struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		cr_assert_eq(inet_pton(AF_INET6, ip, &sin6->sin6_addr), 1,
		    "%s", ip);
	}
}

Test(net, sockaddr_str_and_ip)
{
	struct sockaddr_storage	 ss;
	struct sockaddr_un	 sun;
	char			 buf[NET_ADDRSTRLEN];

	mk_sin(&ss, "192.0.2.1", 8080);
	cr_expect_str_eq(net_sockaddr_str((struct sockaddr *)&ss,
	    sizeof(struct sockaddr_in), buf, sizeof(buf)), "192.0.2.1:8080");
	cr_expect_str_eq(net_sockaddr_ip((struct sockaddr *)&ss, buf,
	    sizeof(buf)), "192.0.2.1");
	mk_sin(&ss, "2001:db8::1", 443);
	cr_expect_str_eq(net_sockaddr_str((struct sockaddr *)&ss,
	    sizeof(struct sockaddr_in6), buf, sizeof(buf)),
	    "[2001:db8::1]:443");
	cr_expect_str_eq(net_sockaddr_ip((struct sockaddr *)&ss, buf,
	    sizeof(buf)), "2001:db8::1");
	mk_sin(&ss, "::ffff:10.9.8.7", 1);
	cr_expect_str_eq(net_sockaddr_str((struct sockaddr *)&ss,
	    sizeof(struct sockaddr_in6), buf, sizeof(buf)),
	    "[::ffff:10.9.8.7]:1");
	cr_expect_str_eq(net_sockaddr_ip((struct sockaddr *)&ss, buf,
	    sizeof(buf)), "10.9.8.7", "v4-mapped shown as v4");

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	strlcpy(sun.sun_path, "/tmp/x.sock", sizeof(sun.sun_path));
	cr_expect_str_eq(net_sockaddr_str((struct sockaddr *)&sun,
	    sizeof(sun), buf, sizeof(buf)), "unix:/tmp/x.sock");
	/* getsockname() may give the path without its NUL */
	cr_expect_str_eq(net_sockaddr_str((struct sockaddr *)&sun,
	    offsetof(struct sockaddr_un, sun_path) + 11, buf, sizeof(buf)),
	    "unix:/tmp/x.sock");
	/* an unnamed peer */
	cr_expect_str_eq(net_sockaddr_str((struct sockaddr *)&sun,
	    offsetof(struct sockaddr_un, sun_path), buf, sizeof(buf)),
	    "unix:");
	cr_expect_str_eq(net_sockaddr_ip((struct sockaddr *)&sun, buf,
	    sizeof(buf)), "unix");
	sun.sun_family = AF_APPLETALK;
	cr_expect_str_eq(net_sockaddr_str((struct sockaddr *)&sun,
	    sizeof(sun), buf, sizeof(buf)), "unknown");

	/* truncation stays inside the buffer */
	mk_sin(&ss, "2001:db8::1", 443);
	memset(buf, 'x', sizeof(buf));
	net_sockaddr_str((struct sockaddr *)&ss, sizeof(struct sockaddr_in6),
	    buf, 6);
	cr_expect_str_eq(buf, "[2001");
	cr_expect_eq(buf[6], 'x');
}

/* CIDR parsing */

static const struct {
	char	in[64];
	int	family;
	char	addr[INET6_ADDRSTRLEN];	/* after clearing the host bits */
	int	bits;
} cidr_good[] = {
	{ "10.0.0.0/8", AF_INET, "10.0.0.0", 8 },
	{ "10.1.2.3/8", AF_INET, "10.0.0.0", 8 },
	{ "10.1.2.3", AF_INET, "10.1.2.3", 32 },
	{ "10.1.2.3/32", AF_INET, "10.1.2.3", 32 },
	{ "1.2.3.4/0", AF_INET, "0.0.0.0", 0 },
	{ "0.0.0.0/0", AF_INET, "0.0.0.0", 0 },
	{ "255.255.255.255/31", AF_INET, "255.255.255.254", 31 },
	{ "255.255.255.255/1", AF_INET, "128.0.0.0", 1 },
	{ "192.168.1.255/23", AF_INET, "192.168.0.0", 23 },
	{ "172.31.255.255/12", AF_INET, "172.16.0.0", 12 },
	{ "10.0.0.0/08", AF_INET, "10.0.0.0", 8 },
	{ "::1", AF_INET6, "::1", 128 },
	{ "::1/128", AF_INET6, "::1", 128 },
	{ "::/0", AF_INET6, "::", 0 },
	{ "ffff::1/0", AF_INET6, "::", 0 },
	{ "fd00::1/8", AF_INET6, "fd00::", 8 },
	{ "fe80::1:2:3:4/64", AF_INET6, "fe80::", 64 },
	{ "2001:db8::ff/127", AF_INET6, "2001:db8::fe", 127 },
	{ "2001:db8:abcd:1234::/33", AF_INET6, "2001:db8:8000::", 33 },
	{ "2001:DB8::/32", AF_INET6, "2001:db8::", 32 },
	{ "::ffff:10.1.2.3/104", AF_INET6, "::ffff:10.0.0.0", 104 },
	{ "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/65", AF_INET6,
	    "ffff:ffff:ffff:ffff:8000::", 65 },
};

static const char cidr_bad[][80] = {
	"10.0.0.0/33",
	"1.2.3",
	"::1/129",
	"",
	"10.0.0.0/",
	"a.b.c.d",
	"/8",
	"/",
	"10.0.0.0/-1",
	"10.0.0.0/-0",
	"10.0.0.0/+8",
	"10.0.0.0/ 8",
	"10.0.0.0/8 ",
	"10.0.0.0 /8",
	" 10.0.0.0/8",
	"10.0.0.0/8/8",
	"10.0.0.0/8x",
	"10.0.0.0/0x8",
	"10.0.0.0/1e1",
	"10.0.0.0/4294967304",
	"1.2.3.4.5",
	"256.0.0.0/8",
	"01.2.3.4",
	"::1::2",
	":::",
	"fe80::1%lo",
	"fe80::1%lo/64",
	"::1/-128",
	"::1/1280",
	"localhost",
	"10.0.0.0/8,11.0.0.0/8",
	"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/8",
	"ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255/128////////////////",
};

Test(net, cidr_parse_good)
{
	size_t	i;

	for (i = 0; i < nitems(cidr_good); i++) {
		struct net_cidr	c;
		char		buf[INET6_ADDRSTRLEN];

		memset(&c, 0xa5, sizeof(c));
		cr_assert_eq(net_cidr_parse(cidr_good[i].in, &c), 0,
		    "\"%s\" refused", cidr_good[i].in);
		cr_expect_eq(c.family, cidr_good[i].family, "%s",
		    cidr_good[i].in);
		cr_expect_eq(c.bits, cidr_good[i].bits, "%s", cidr_good[i].in);
		cr_assert_not_null(inet_ntop(c.family, c.addr, buf,
		    sizeof(buf)));
		cr_expect_str_eq(buf, cidr_good[i].addr, "%s: host bits",
		    cidr_good[i].in);
		if (c.family == AF_INET) {
			size_t	j;

			for (j = 4; j < sizeof(c.addr); j++)
				cr_expect_eq(c.addr[j], 0, "%s: junk after v4",
				    cidr_good[i].in);
		}
	}
}

Test(net, cidr_parse_bad)
{
	size_t	i;

	for (i = 0; i < nitems(cidr_bad); i++) {
		struct net_cidr	c;

		cr_expect_eq(net_cidr_parse(cidr_bad[i], &c), -1,
		    "\"%s\" accepted (bits %d)", cidr_bad[i], c.bits);
	}
}

/* A string longer than any address must be refused, not truncated. */
Test(net, cidr_parse_long)
{
	struct net_cidr	c;
	char		in[512];

	memset(in, '1', sizeof(in) - 1);
	in[sizeof(in) - 1] = '\0';
	cr_assert_eq(net_cidr_parse(in, &c), -1);
	snprintf(in, sizeof(in), "10.0.0.0/%0100d", 8);
	cr_assert_eq(net_cidr_parse(in, &c), -1);
}

/* CIDR matching */

static const struct {
	char	rule[64];
	char	peer[INET6_ADDRSTRLEN];
	int	match;
} cidr_match[] = {
	{ "10.0.0.0/8", "10.0.0.0", 1 },
	{ "10.0.0.0/8", "10.255.255.255", 1 },
	{ "10.0.0.0/8", "11.0.0.0", 0 },
	{ "10.0.0.0/8", "9.255.255.255", 0 },
	{ "10.9.9.9/8", "10.1.1.1", 1 },	/* rule's host bits ignored */
	{ "0.0.0.0/0", "1.2.3.4", 1 },
	{ "0.0.0.0/0", "255.255.255.255", 1 },
	{ "0.0.0.0/0", "::1", 0 },
	{ "0.0.0.0/0", "::ffff:1.2.3.4", 1 },
	{ "1.2.3.4/32", "1.2.3.4", 1 },
	{ "1.2.3.4/32", "1.2.3.5", 0 },
	{ "1.2.3.4", "1.2.3.4", 1 },
	{ "1.2.3.4", "1.2.3.3", 0 },
	{ "192.168.0.0/23", "192.168.1.77", 1 },
	{ "192.168.0.0/23", "192.168.2.0", 0 },
	{ "192.168.0.0/23", "192.167.255.255", 0 },
	{ "128.0.0.0/1", "127.255.255.255", 0 },
	{ "128.0.0.0/1", "128.0.0.0", 1 },
	{ "255.255.255.254/31", "255.255.255.255", 1 },
	{ "255.255.255.254/31", "255.255.255.253", 0 },
	/* v4-mapped IPv6 peers are matched by v4 rules */
	{ "10.0.0.0/8", "::ffff:10.1.2.3", 1 },
	{ "10.0.0.0/8", "::ffff:11.1.2.3", 0 },
	{ "127.0.0.1", "::ffff:127.0.0.1", 1 },
	{ "127.0.0.1/32", "::ffff:127.0.0.2", 0 },
	{ "10.0.0.0/8", "::10.1.2.3", 0 },	/* v4-compatible, not mapped */
	{ "10.0.0.0/8", "64:ff9b::10.1.2.3", 0 },
	{ "10.0.0.0/8", "::ffff:0:10.1.2.3", 0 },
	{ "10.0.0.0/8", "0:0:0:0:0:fffe:10.1.2.3", 0 },
	{ "0.0.0.0/0", "::", 0 },
	/* v6 rules */
	{ "::/0", "::1", 1 },
	{ "::/0", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 1 },
	{ "::/0", "::ffff:1.2.3.4", 1 },
	{ "::/0", "1.2.3.4", 0 },		/* v4 peers want v4 rules */
	{ "::1/128", "::1", 1 },
	{ "::1/128", "::2", 0 },
	{ "::1", "::1", 1 },
	{ "::1", "::", 0 },
	{ "fd00::/8", "fdff::1", 1 },
	{ "fd00::/8", "fe00::", 0 },
	{ "fd00::/8", "fc00::", 0 },
	{ "2001:db8::/33", "2001:db8:7fff:ffff::1", 1 },
	{ "2001:db8::/33", "2001:db8:8000::", 0 },
	{ "2001:db8::/127", "2001:db8::1", 1 },
	{ "2001:db8::/127", "2001:db8::2", 0 },
	{ "::ffff:0:0/96", "::ffff:1.2.3.4", 1 },
	{ "::ffff:0:0/96", "::fffe:1.2.3.4", 0 },
	{ "::ffff:10.0.0.0/104", "::ffff:10.200.0.1", 1 },
	{ "::ffff:10.0.0.0/104", "10.200.0.1", 0 },
};

Test(net, cidr_match_table)
{
	size_t	i;

	for (i = 0; i < nitems(cidr_match); i++) {
		struct sockaddr_storage	ss;
		struct net_cidr		c;

		cr_assert_eq(net_cidr_parse(cidr_match[i].rule, &c), 0, "%s",
		    cidr_match[i].rule);
		mk_sin(&ss, cidr_match[i].peer, 1234);
		cr_expect_eq(net_cidr_match(&c, (struct sockaddr *)&ss),
		    cidr_match[i].match, "%s vs %s", cidr_match[i].rule,
		    cidr_match[i].peer);
	}
}

Test(net, cidr_match_unix)
{
	struct sockaddr_un	sun;
	struct net_cidr		c;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	cr_assert_eq(net_cidr_parse("0.0.0.0/0", &c), 0);
	cr_assert_eq(net_cidr_match(&c, (struct sockaddr *)&sun), 0);
	cr_assert_eq(net_cidr_parse("::/0", &c), 0);
	cr_assert_eq(net_cidr_match(&c, (struct sockaddr *)&sun), 0);
}

/* Every prefix length of both families, against the first address out. */
Test(net, cidr_every_length)
{
	int	fam, bits;

	for (fam = 0; fam < 2; fam++) {
		int	max = fam ? 128 : 32;

		for (bits = 0; bits <= max; bits++) {
			struct sockaddr_storage	 ss;
			struct net_cidr		 c;
			char			 rule[80];
			uint8_t			*p;
			int			 k;

			snprintf(rule, sizeof(rule), "%s/%d", fam ?
			    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff" :
			    "255.255.255.255", bits);
			cr_assert_eq(net_cidr_parse(rule, &c), 0, "%s", rule);
			for (k = 0; k < max; k++)
				cr_assert_eq(!!(c.addr[k / 8] &
				    (0x80 >> (k % 8))), k < bits,
				    "%s: bit %d", rule, k);
			/* all ones matches; clearing any prefix bit does not */
			mk_sin(&ss, fam ? "ffff:ffff:ffff:ffff:ffff:ffff:ffff:"
			    "ffff" : "255.255.255.255", 1);
			if (fam)
				p = ((struct sockaddr_in6 *)&ss)->
				    sin6_addr.s6_addr;
			else
				p = (uint8_t *)&((struct sockaddr_in *)&ss)->
				    sin_addr;
			cr_assert(net_cidr_match(&c, (struct sockaddr *)&ss),
			    "%s", rule);
			if (bits > 0) {
				p[(bits - 1) / 8] ^= 0x80 >> ((bits - 1) % 8);
				cr_assert(!net_cidr_match(&c,
				    (struct sockaddr *)&ss), "%s: last bit",
				    rule);
				p[(bits - 1) / 8] ^= 0x80 >> ((bits - 1) % 8);
			}
			if (bits < max) {
				p[bits / 8] ^= 0x80 >> (bits % 8);
				cr_assert(net_cidr_match(&c,
				    (struct sockaddr *)&ss), "%s: host bit",
				    rule);
			}
		}
	}
}

/* Allow/deny lists: first match wins; no match denies if any rule allows. */

struct acl_case {
	char	rules[4][48];	/* "allow 10.0.0.0/8", "deny ::1" */
	char	peer[INET6_ADDRSTRLEN];
	int	allowed;
};

static const struct acl_case acl_cases[] = {
	/* an empty list allows everything */
	{ { "" }, "10.1.2.3", 1 },
	{ { "" }, "::1", 1 },
	{ { "" }, "unix", 1 },
	/* deny rules alone: what they do not match is allowed */
	{ { "deny 10.0.0.0/8" }, "10.1.1.1", 0 },
	{ { "deny 10.0.0.0/8" }, "11.1.1.1", 1 },
	{ { "deny 10.0.0.0/8" }, "::1", 1 },
	{ { "deny 10.0.0.0/8", "deny ::1" }, "::1", 0 },
	{ { "deny 0.0.0.0/0" }, "::1", 1 },
	{ { "deny 0.0.0.0/0" }, "::ffff:1.1.1.1", 0 },
	/* an allow rule anywhere denies what no rule matches */
	{ { "allow 10.0.0.0/8" }, "10.1.1.1", 1 },
	{ { "allow 10.0.0.0/8" }, "11.1.1.1", 0 },
	{ { "allow 10.0.0.0/8" }, "::1", 0 },
	{ { "deny 10.1.0.0/16", "allow 10.0.0.0/8" }, "11.0.0.1", 0 },
	{ { "deny 1.1.1.1", "deny 2.2.2.2", "allow 3.3.3.3" }, "4.4.4.4", 0 },
	{ { "deny 1.1.1.1", "deny 2.2.2.2", "allow 3.3.3.3" }, "3.3.3.3", 1 },
	{ { "deny 1.1.1.1", "deny 2.2.2.2", "allow 3.3.3.3" }, "2.2.2.2", 0 },
	/* the first match wins */
	{ { "deny 10.1.0.0/16", "allow 10.0.0.0/8" }, "10.1.2.3", 0 },
	{ { "deny 10.1.0.0/16", "allow 10.0.0.0/8" }, "10.2.3.4", 1 },
	{ { "allow 10.0.0.0/8", "deny 10.1.0.0/16" }, "10.1.2.3", 1 },
	{ { "allow 10.1.2.3", "deny 0.0.0.0/0" }, "10.1.2.3", 1 },
	{ { "allow 10.1.2.3", "deny 0.0.0.0/0" }, "10.1.2.4", 0 },
	{ { "deny 0.0.0.0/0", "allow 10.1.2.3" }, "10.1.2.3", 0 },
	{ { "allow 0.0.0.0/0", "allow ::/0" }, "8.8.8.8", 1 },
	{ { "allow 0.0.0.0/0", "allow ::/0" }, "2001:db8::1", 1 },
	/* v4-mapped peers follow the v4 rules */
	{ { "allow 127.0.0.1" }, "::ffff:127.0.0.1", 1 },
	{ { "allow 127.0.0.1" }, "::1", 0 },
	{ { "deny 127.0.0.0/8", "allow ::/0" }, "::ffff:127.0.0.1", 0 },
	{ { "allow ::1", "deny 0.0.0.0/0" }, "::1", 1 },
	{ { "allow ::1", "deny 0.0.0.0/0" }, "::2", 0 },
	{ { "allow ::1", "deny 0.0.0.0/0" }, "127.0.0.1", 0 },
	/* unix peers are guarded by file permissions, not by the list */
	{ { "allow 10.0.0.0/8" }, "unix", 1 },
	{ { "deny 0.0.0.0/0", "deny ::/0" }, "unix", 1 },
};

Test(net, acl_table)
{
	size_t	i;

	for (i = 0; i < nitems(acl_cases); i++) {
		const struct acl_case	*t = &acl_cases[i];
		struct net_acl		 acl = { NULL, 0 };
		struct sockaddr_storage	 ss;
		size_t			 j;

		for (j = 0; j < nitems(t->rules) && t->rules[j][0]; j++) {
			struct net_cidr	c;
			const char	*sp = strchr(t->rules[j], ' ');

			cr_assert_not_null(sp);
			cr_assert_eq(net_cidr_parse(sp + 1, &c), 0, "%s",
			    t->rules[j]);
			net_acl_add(&acl, strncmp(t->rules[j], "allow", 5) == 0,
			    &c);
		}
		cr_assert_eq(acl.nrules, (int)j);
		if (strcmp(t->peer, "unix") == 0) {
			memset(&ss, 0, sizeof(ss));
			ss.ss_family = AF_UNIX;
		} else
			mk_sin(&ss, t->peer, 5555);
		cr_expect_eq(net_acl_allows(&acl, (struct sockaddr *)&ss),
		    t->allowed, "case %zu: %s %s", i, t->peer,
		    t->allowed ? "denied" : "allowed");
		net_acl_free(&acl);
		cr_assert_null(acl.rules);
		cr_assert_eq(acl.nrules, 0);
	}
}

/* A long list keeps its order. */
Test(net, acl_many_rules)
{
	struct net_acl		acl = { NULL, 0 };
	struct sockaddr_storage	ss;
	struct net_cidr		c;
	char			rule[32];
	int			i;

	for (i = 0; i < 1000; i++) {
		snprintf(rule, sizeof(rule), "10.%d.%d.0/24", i / 256, i % 256);
		cr_assert_eq(net_cidr_parse(rule, &c), 0);
		net_acl_add(&acl, i % 2, &c);
	}
	for (i = 0; i < 1000; i++) {
		char	peer[32];

		snprintf(peer, sizeof(peer), "10.%d.%d.9", i / 256, i % 256);
		mk_sin(&ss, peer, 1);
		cr_assert_eq(net_acl_allows(&acl, (struct sockaddr *)&ss),
		    i % 2, "%s", peer);
	}
	mk_sin(&ss, "10.200.0.1", 1);
	cr_assert_eq(net_acl_allows(&acl, (struct sockaddr *)&ss), 0);
	net_acl_free(&acl);
	net_acl_free(&acl);
}

/* Listening and connecting */

/* An address on loopback with port 0: the kernel picks a free port. */
static void
loopback(struct net_addr *a, int family)
{
	char	err[128];

	cr_assert_eq(net_addr_parse(family == AF_INET ? "127.0.0.1:1" :
	    "[::1]:1", a, err, sizeof(err)), 0, "%s", err);
	if (family == AF_INET)
		((struct sockaddr_in *)&a->ss)->sin_port = 0;
	else
		((struct sockaddr_in6 *)&a->ss)->sin6_port = 0;
}

/* The bound address of <fd>, as a net_addr to connect to. */
static void
bound(int fd, struct net_addr *a)
{
	memset(a, 0, sizeof(*a));
	a->len = sizeof(a->ss);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&a->ss, &a->len), 0);
	a->family = a->ss.ss_family;
	net_sockaddr_str((struct sockaddr *)&a->ss, a->len, a->text,
	    sizeof(a->text));
}

static int
port_of(const struct net_addr *a)
{
	if (a->family == AF_INET)
		return (ntohs(((const struct sockaddr_in *)&a->ss)->sin_port));
	return (ntohs(((const struct sockaddr_in6 *)&a->ss)->sin6_port));
}

static int
accept_wait(int lfd)
{
	struct pollfd	pfd = { lfd, POLLIN, 0 };
	int		fd;

	cr_assert_eq(poll(&pfd, 1, 5000), 1, "nothing to accept");
	cr_assert_geq(fd = accept(lfd, NULL, NULL), 0, "accept: %s",
	    strerror(errno));
	return (fd);
}

static void
wait_fd(int fd, short ev)
{
	struct pollfd	pfd = { fd, ev, 0 };

	cr_assert_eq(poll(&pfd, 1, 5000), 1, "fd %d never ready", fd);
}

/* Data both ways between a connected pair. */
static void
exchange(int a, int b)
{
	char	buf[16];

	cr_assert_eq(write(a, "ping", 4), 4);
	wait_fd(b, POLLIN);
	cr_assert_eq(read(b, buf, sizeof(buf)), 4);
	cr_assert(memcmp(buf, "ping", 4) == 0);
	cr_assert_eq(write(b, "pong", 4), 4);
	wait_fd(a, POLLIN);
	cr_assert_eq(read(a, buf, sizeof(buf)), 4);
	cr_assert(memcmp(buf, "pong", 4) == 0);
}

static void
check_flags(int fd)
{
	cr_assert(fcntl(fd, F_GETFL) & O_NONBLOCK, "fd %d blocks", fd);
	cr_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC, "fd %d not close-on-exec",
	    fd);
}

static void
tcp_round_trip(int family)
{
	struct net_addr	a, b;
	socklen_t	sl = sizeof(int);
	int		lfd, cfd, sfd, clamped = -1, v = 0;

	loopback(&a, family);
	lfd = net_listen(&a, 0, &clamped);
	if (lfd == -1 && family == AF_INET6 && (errno == EAFNOSUPPORT ||
	    errno == EADDRNOTAVAIL))
		cr_skip_test("no IPv6 loopback");
	cr_assert_geq(lfd, 0, "net_listen %s: %s", a.text, strerror(errno));
	cr_assert_eq(clamped, 0, "the default backlog fits");
	check_flags(lfd);
	bound(lfd, &b);
	cr_assert_neq(port_of(&b), 0);
	cr_assert_eq(getsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &v, &sl), 0);
	cr_assert_eq(v, 1, "SO_REUSEADDR");
	if (family == AF_INET6) {
		cr_assert_eq(getsockopt(lfd, IPPROTO_IPV6, IPV6_V6ONLY, &v,
		    &sl), 0);
		cr_assert_eq(v, 1, "IPV6_V6ONLY");
	}

	/* non-blocking connect, completed by poll */
	cr_assert_geq(cfd = net_connect(&b), 0, "%s", strerror(errno));
	check_flags(cfd);
	cr_assert_eq(getsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &v, &sl), 0);
	cr_assert_eq(v, 1, "TCP_NODELAY");
	sfd = accept_wait(lfd);
	wait_fd(cfd, POLLOUT);
	cr_assert_eq(getsockopt(cfd, SOL_SOCKET, SO_ERROR, &v, &sl), 0);
	cr_assert_eq(v, 0);
	exchange(cfd, sfd);
	close(cfd);
	close(sfd);

	/* connect within a deadline */
	cr_assert_geq(cfd = net_connect_wait(&b, 5000), 0, "%s",
	    strerror(errno));
	check_flags(cfd);
	sfd = accept_wait(lfd);
	exchange(sfd, cfd);
	close(cfd);
	close(sfd);

	/* the same port again is refused */
	errno = 0;
	cr_assert_eq(net_listen(&b, 0, NULL), -1);
	cr_assert_eq(errno, EADDRINUSE, "errno %d", errno);
	close(lfd);
}

Test(net, listen_connect_v4)
{
	tcp_round_trip(AF_INET);
}

Test(net, listen_connect_v6)
{
	tcp_round_trip(AF_INET6);
}

/* "*:P" and "[::]:P" may both be listed: the v6 socket is v6 only. */
Test(net, listen_v4_and_v6_same_port)
{
	struct net_addr	a, b;
	char		err[128];
	int		fd4, fd6;

	cr_assert_eq(net_addr_parse("*:1", &a, err, sizeof(err)), 0);
	((struct sockaddr_in *)&a.ss)->sin_port = 0;
	cr_assert_geq(fd4 = net_listen(&a, 0, NULL), 0, "%s", strerror(errno));
	bound(fd4, &b);
	snprintf(err, sizeof(err), "[::]:%d", port_of(&b));
	cr_assert_eq(net_addr_parse(err, &a, err, sizeof(err)), 0);
	fd6 = net_listen(&a, 0, NULL);
	if (fd6 == -1 && errno == EAFNOSUPPORT)
		cr_skip_test("no IPv6");
	cr_assert_geq(fd6, 0, "%s: %s", a.text, strerror(errno));
	close(fd4);
	close(fd6);
}

Test(net, connect_refused)
{
	struct net_addr	a, b;
	int		fd;

	/* a port nobody listens on: bound, then closed */
	loopback(&a, AF_INET);
	cr_assert_geq(fd = net_listen(&a, 0, NULL), 0);
	bound(fd, &b);
	close(fd);
	errno = 0;
	cr_assert_eq(net_connect_wait(&b, 5000), -1);
	cr_assert_eq(errno, ECONNREFUSED, "errno %d", errno);
}

Test(net, backlog_clamped)
{
	struct net_addr	a;
	int		fd, clamped = -1, max;

	max = net_somaxconn();
	cr_assert_gt(max, 0, "somaxconn unreadable");
	loopback(&a, AF_INET);
	cr_assert_geq(fd = net_listen(&a, max + 1000, &clamped), 0);
	cr_assert_eq(clamped, max);
	close(fd);
	cr_assert_geq(fd = net_listen(&a, 5, &clamped), 0);
	cr_assert_eq(clamped, 0);
	close(fd);
	cr_assert_geq(fd = net_listen(&a, -3, &clamped), 0);
	cr_assert_eq(clamped, max < NET_BACKLOG ? max : 0);
	close(fd);
}

Test(net, nonblock)
{
	int	p[2];

	cr_assert_eq(pipe(p), 0);
	cr_assert_eq(fcntl(p[0], F_GETFL) & O_NONBLOCK, 0);
	cr_assert_eq(net_nonblock(p[0]), 0);
	cr_assert(fcntl(p[0], F_GETFL) & O_NONBLOCK);
	close(p[0]);
	close(p[1]);
	cr_assert_eq(net_nonblock(p[0]), -1);
	cr_assert_eq(errno, EBADF);
}

/* Unix sockets, in a directory of their own */

static char	tmpdir[64];

static void
mktmp(void)
{
	strlcpy(tmpdir, "/tmp/test_net.XXXXXX", sizeof(tmpdir));
	cr_assert_not_null(mkdtemp(tmpdir), "mkdtemp: %s", strerror(errno));
}

static void
rmtmp(void)
{
	char	cmd[128];

	if (tmpdir[0] == '\0')
		return;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	(void)system(cmd);
}

static void
unix_addr(struct net_addr *a, const char *name)
{
	char	in[160], err[128];

	snprintf(in, sizeof(in), "unix:%s/%s", tmpdir, name);
	cr_assert_eq(net_addr_parse(in, a, err, sizeof(err)), 0, "%s", err);
}

static const char *
sun_path(const struct net_addr *a)
{
	return (((const struct sockaddr_un *)&a->ss)->sun_path);
}

static int
is_socket(const char *path)
{
	struct stat	st;

	return (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode));
}

static void
unix_round_trip(const struct net_addr *a, int lfd)
{
	int	cfd, sfd;

	cr_assert_geq(cfd = net_connect_wait(a, 5000), 0, "%s: %s", a->text,
	    strerror(errno));
	sfd = accept_wait(lfd);
	exchange(cfd, sfd);
	close(cfd);
	close(sfd);
}

Test(net, unix_listen, .init = mktmp, .fini = rmtmp)
{
	struct net_addr	a;
	int		lfd;

	unix_addr(&a, "s.sock");
	cr_assert_geq(lfd = net_listen(&a, 0, NULL), 0, "%s", strerror(errno));
	check_flags(lfd);
	cr_assert(is_socket(sun_path(&a)));
	unix_round_trip(&a, lfd);
	{
		int	fd = net_connect(&a);

		cr_assert_geq(fd, 0, "%s", strerror(errno));
		close(accept_wait(lfd));
		close(fd);
	}
	close(lfd);
}

/* A socket file left by a dead process is removed and listened on again. */
Test(net, unix_stale_removed, .init = mktmp, .fini = rmtmp)
{
	struct net_addr	a;
	int		lfd;

	unix_addr(&a, "stale.sock");
	cr_assert_geq(lfd = net_listen(&a, 0, NULL), 0);
	close(lfd);
	cr_assert(is_socket(sun_path(&a)), "the file stays after close");
	errno = 0;
	cr_assert_eq(net_connect_wait(&a, 1000), -1);
	cr_assert_eq(errno, ECONNREFUSED);
	cr_assert_geq(lfd = net_listen(&a, 0, NULL), 0, "stale: %s",
	    strerror(errno));
	unix_round_trip(&a, lfd);
	close(lfd);
}

/* A socket somebody still listens on is refused and left alone. */
Test(net, unix_live_refused, .init = mktmp, .fini = rmtmp)
{
	struct net_addr	a;
	struct stat	st1, st2;
	int		lfd;

	unix_addr(&a, "live.sock");
	cr_assert_geq(lfd = net_listen(&a, 0, NULL), 0);
	cr_assert_eq(lstat(sun_path(&a), &st1), 0);
	errno = 0;
	cr_assert_eq(net_listen(&a, 0, NULL), -1);
	cr_assert_eq(errno, EADDRINUSE, "errno %d", errno);
	cr_assert_eq(lstat(sun_path(&a), &st2), 0);
	cr_assert_eq(st1.st_ino, st2.st_ino, "the live socket was replaced");
	/* the probe's connection is pending; drain it, then use the socket */
	close(accept_wait(lfd));
	unix_round_trip(&a, lfd);
	close(lfd);
}

/* A live socket of another type is not stale either. */
Test(net, unix_live_dgram_refused, .init = mktmp, .fini = rmtmp)
{
	struct net_addr	a;
	int		dfd, cfd;

	unix_addr(&a, "dgram.sock");
	cr_assert_geq(dfd = socket(AF_UNIX, SOCK_DGRAM, 0), 0);
	cr_assert_eq(bind(dfd, (struct sockaddr *)&a.ss, a.len), 0);
	errno = 0;
	cr_assert_eq(net_listen(&a, 0, NULL), -1);
	cr_assert_eq(errno, EADDRINUSE, "errno %d", errno);
	cr_assert(is_socket(sun_path(&a)), "a live socket was removed");
	/* still reachable by its owner's peers */
	cr_assert_geq(cfd = socket(AF_UNIX, SOCK_DGRAM, 0), 0);
	cr_assert_eq(sendto(cfd, "x", 1, 0, (struct sockaddr *)&a.ss, a.len),
	    1, "%s", strerror(errno));
	close(cfd);
	close(dfd);
}

/* What is not a socket is never removed. */
Test(net, unix_not_a_socket, .init = mktmp, .fini = rmtmp)
{
	struct net_addr	a;
	char		target[160];
	int		fd;

	unix_addr(&a, "file");
	cr_assert_geq(fd = open(sun_path(&a), O_CREAT | O_WRONLY, 0644), 0);
	cr_assert_eq(write(fd, "keep", 4), 4);
	close(fd);
	errno = 0;
	cr_assert_eq(net_listen(&a, 0, NULL), -1);
	cr_assert_eq(errno, EEXIST);
	cr_assert_eq(access(sun_path(&a), F_OK), 0, "a file was removed");

	unix_addr(&a, "dir");
	cr_assert_eq(mkdir(sun_path(&a), 0755), 0);
	cr_assert_eq(net_listen(&a, 0, NULL), -1);
	cr_assert_eq(errno, EEXIST);

	/* a symlink, even to a stale socket, is not followed */
	unix_addr(&a, "old.sock");
	cr_assert_geq(fd = net_listen(&a, 0, NULL), 0);
	close(fd);
	strlcpy(target, sun_path(&a), sizeof(target));
	unix_addr(&a, "link.sock");
	cr_assert_eq(symlink(target, sun_path(&a)), 0);
	cr_assert_eq(net_listen(&a, 0, NULL), -1);
	cr_assert_eq(errno, EEXIST);
	cr_assert(is_socket(target));
}

Test(net, unix_missing_dir, .init = mktmp, .fini = rmtmp)
{
	struct net_addr	a;

	unix_addr(&a, "nodir/s.sock");
	errno = 0;
	cr_assert_eq(net_listen(&a, 0, NULL), -1);
	cr_assert_eq(errno, ENOENT, "errno %d", errno);
	errno = 0;
	cr_assert_eq(net_connect(&a), -1);
	cr_assert_eq(errno, ENOENT, "errno %d", errno);
}

Test(net, unix_perms, .init = mktmp, .fini = rmtmp)
{
	struct net_addr	a;
	struct stat	st;
	int		lfd;

	unix_addr(&a, "perm.sock");
	cr_assert_geq(lfd = net_listen(&a, 0, NULL), 0);
	cr_assert_eq(net_unix_perms(sun_path(&a), 0600, (uid_t)-1,
	    (gid_t)-1), 0);
	cr_assert_eq(stat(sun_path(&a), &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0600);
	cr_assert_eq(net_unix_perms(sun_path(&a), 0660, getuid(), getgid()),
	    0);
	cr_assert_eq(stat(sun_path(&a), &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0660);
	cr_assert_eq(st.st_uid, getuid());
	/* mode -1 keeps the mode */
	cr_assert_eq(net_unix_perms(sun_path(&a), -1, (uid_t)-1, (gid_t)-1),
	    0);
	cr_assert_eq(stat(sun_path(&a), &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0660);
	cr_assert_eq(net_unix_perms("/nonexistent/x.sock", 0600, (uid_t)-1,
	    (gid_t)-1), -1);
	close(lfd);
}

/* A live socket whose backlog is full is refused, without blocking. */
Test(net, unix_live_full_backlog, .init = mktmp, .fini = rmtmp,
    .timeout = 20)
{
	struct net_addr	a;
	int		lfd, fds[64], n, i;

	unix_addr(&a, "busy.sock");
	cr_assert_geq(lfd = net_listen(&a, 1, NULL), 0);
	for (n = 0; n < (int)nitems(fds); n++) {
		if ((fds[n] = net_connect(&a)) == -1)
			break;
	}
	if (n == (int)nitems(fds))
		cr_skip_test("the backlog never filled");
	cr_assert_eq(errno, EAGAIN, "errno %d", errno);
	errno = 0;
	cr_assert_eq(net_listen(&a, 0, NULL), -1);
	cr_assert_eq(errno, EADDRINUSE, "errno %d", errno);
	cr_assert(is_socket(sun_path(&a)), "a live socket was removed");
	for (i = 0; i < n; i++)
		close(fds[i]);
	close(lfd);
}

/* net_sockaddr_ip formats IPv4 by hand: every digit count, both ends. */
Test(net, sockaddr_ip_v4_by_hand)
{
	static const char *ips[] = { "0.0.0.0", "255.255.255.255", "10.0.0.1",
	    "127.0.0.1", "1.20.100.9", "99.199.209.0", "200.2.30.255" };
	size_t	i;

	for (i = 0; i < sizeof(ips) / sizeof(ips[0]); i++) {
		struct sockaddr_in	sin;
		char			b[INET6_ADDRSTRLEN];

		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		cr_assert_eq(inet_pton(AF_INET, ips[i], &sin.sin_addr), 1);
		net_sockaddr_ip((struct sockaddr *)&sin, b, sizeof(b));
		cr_expect_str_eq(b, ips[i]);
	}
}

/* X-Forwarded-For from a trusted proxy (proxyproto.c) */

static int
xff_of(const char *req, const char *trusted, char *out, size_t outlen)
{
	struct http_msg		 m;
	struct http_hdr		 hdrs[32];
	struct net_trusted	 t;
	struct sockaddr_storage	 ss;
	struct net_cidr		 c;
	char			 tr[128], *p, *last = NULL;
	int			 rc;

	memset(&t, 0, sizeof(t));
	strlcpy(tr, trusted, sizeof(tr));
	for (p = strtok_r(tr, " ", &last); p; p = strtok_r(NULL, " ", &last)) {
		cr_assert_eq(net_cidr_parse(p, &c), 0, "%s", p);
		net_acl_add(&t.acl, 1, &c);
	}
	http_msg_init(&m, 0, &http_default_limits, hdrs);
	cr_assert_eq(http_parse(&m, req, strlen(req)), HTTP_DONE, "%s", req);
	rc = xff_client(&m, req, &t, &ss);
	if (rc == 0)
		net_sockaddr_ip((struct sockaddr *)&ss, out, outlen);
	net_acl_free(&t.acl);
	return (rc);
}

Test(net, xff_client)
{
	static const struct {
		const char	*fields;	/* lines of the head */
		const char	*trusted;
		const char	*client;	/* NULL: none (the peer) */
	} cases[] = {
		{ "", "10.0.0.0/8", NULL },
		{ "X-Forwarded-For: 1.2.3.4\r\n", "10.0.0.0/8", "1.2.3.4" },
		{ "X-Forwarded-For: 1.2.3.4, 5.6.7.8\r\n", "10.0.0.0/8",
		    "5.6.7.8" },
		{ "X-Forwarded-For: 1.2.3.4, 10.1.1.1\r\n", "10.0.0.0/8",
		    "1.2.3.4" },
		/* every line, the last first (RFC 9110 5.3) */
		{ "x-forwarded-for: 10.1.1.1\r\nX-Forwarded-For: 9.9.9.9\r\n",
		    "10.0.0.0/8", "9.9.9.9" },
		{ "X-Forwarded-For: 9.9.9.9\r\nX-Forwarded-For: 10.1.1.1, "
		    "10.2.2.2\r\n", "10.0.0.0/8", "9.9.9.9" },
		/* all trusted: the first */
		{ "X-Forwarded-For: 10.3.3.3,10.1.1.1\r\n", "10.0.0.0/8",
		    "10.3.3.3" },
		/* not an address before the client: unknown */
		{ "X-Forwarded-For: 1.2.3.4, junk, 10.1.1.1\r\n", "10.0.0.0/8",
		    NULL },
		{ "X-Forwarded-For: 1.2.3.4,, 10.1.1.1\r\n", "10.0.0.0/8",
		    NULL },
		/* garbage left of the client is the client's own business */
		{ "X-Forwarded-For: junk, 1.2.3.4\r\n", "10.0.0.0/8",
		    "1.2.3.4" },
		{ "X-Forwarded-For:  2001:db8::1 ,\t::ffff:10.1.1.1\r\n",
		    "10.0.0.0/8", "2001:db8::1" },
		{ "X-Forwarded-For:\r\n", "10.0.0.0/8", NULL },
	};
	char	req[512], got[64];
	size_t	i;
	int	rc;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nHost: a\r\n%s"
		    "\r\n", cases[i].fields);
		rc = xff_of(req, cases[i].trusted, got, sizeof(got));
		if (cases[i].client == NULL)
			cr_expect_eq(rc, -1, "case %zu: got %s", i,
			    rc == 0 ? got : "-");
		else {
			cr_expect_eq(rc, 0, "case %zu", i);
			if (rc == 0)
				cr_expect_str_eq(got, cases[i].client,
				    "case %zu", i);
		}
	}
}
