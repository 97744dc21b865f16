/*
 * bench_parser.c: HTTP/1.1 head parsing throughput, ours (common/
 * http_parse.c) against libhttp-parser 2.9 on the same bytes in the same
 * run: a typical browser request (Chrome's headers, about 500 bytes) and
 * a response with 20 fields.  Each parser parses the same message N times
 * per round; the median of the rounds is reported in messages per second,
 * with the ratio ours/theirs.  The process is pinned to one CPU when it
 * can be.
 *
 * usage: bench_parser [-n parses per round] [-r rounds]
 */
#include <sys/types.h>

#include <err.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* both define enum http_method */
#define http_method	hp_method
#include <http_parser.h>
#undef http_method

#include "http.h"

#define DEF_N		200000
#define DEF_ROUNDS	9
#define MAXROUNDS	101

static const char req[] =
    "GET /assets/app.js?v=3f9a1c HTTP/1.1\r\n"
    "Host: www.example.com\r\n"
    "Connection: keep-alive\r\n"
    "sec-ch-ua: \"Chromium\";v=\"124\", \"Google Chrome\";v=\"124\", "
    "\"Not-A.Brand\";v=\"99\"\r\n"
    "sec-ch-ua-mobile: ?0\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36\r\n"
    "sec-ch-ua-platform: \"Linux\"\r\n"
    "Accept: */*\r\n"
    "Sec-Fetch-Site: same-origin\r\n"
    "Sec-Fetch-Mode: no-cors\r\n"
    "Sec-Fetch-Dest: script\r\n"
    "Referer: https://www.example.com/\r\n"
    "Accept-Encoding: gzip, deflate, br, zstd\r\n"
    "Accept-Language: en-US,en;q=0.9\r\n"
    "Cookie: sid=31d4d96e407aad42; theme=dark\r\n"
    "\r\n";

static const char rsp[] =
    "HTTP/1.1 200 OK\r\n"
    "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
    "Server: Apache/2.4.1 (Unix)\r\n"
    "Last-Modified: Sat, 05 Nov 1994 08:49:37 GMT\r\n"
    "ETag: \"34aa387-d-1568eb00\"\r\n"
    "Accept-Ranges: bytes\r\n"
    "Content-Length: 51\r\n"
    "Vary: Accept-Encoding\r\n"
    "Content-Type: text/html; charset=utf-8\r\n"
    "Cache-Control: max-age=3600, public\r\n"
    "Expires: Sun, 06 Nov 1994 09:49:37 GMT\r\n"
    "X-Frame-Options: SAMEORIGIN\r\n"
    "X-Content-Type-Options: nosniff\r\n"
    "Strict-Transport-Security: max-age=31536000\r\n"
    "Referrer-Policy: no-referrer\r\n"
    "Content-Security-Policy: default-src 'self'\r\n"
    "Set-Cookie: sid=abc123; Path=/; HttpOnly\r\n"
    "Access-Control-Allow-Origin: *\r\n"
    "X-Request-Id: 7f9c2ba4e88f827d616045507605853e\r\n"
    "Age: 12\r\n"
    "Connection: keep-alive\r\n"
    "\r\n";

static volatile uint64_t	sink;

/* libhttp-parser's side does what ours does: note where each piece is. */
struct hp_fields {
	const char	*url;
	size_t		 urllen;
	const char	*name[HTTP_MAXHEADERS], *value[HTTP_MAXHEADERS];
	size_t		 namelen[HTTP_MAXHEADERS];
	size_t		 valuelen[HTTP_MAXHEADERS];
	int		 n;
	int		 done;
};

static int
hp_url(http_parser *p, const char *at, size_t len)
{
	struct hp_fields	*f = p->data;

	f->url = at;
	f->urllen = len;
	return (0);
}

static int
hp_field(http_parser *p, const char *at, size_t len)
{
	struct hp_fields	*f = p->data;

	if (f->n < HTTP_MAXHEADERS) {
		f->name[f->n] = at;
		f->namelen[f->n] = len;
	}
	return (0);
}

static int
hp_value(http_parser *p, const char *at, size_t len)
{
	struct hp_fields	*f = p->data;

	if (f->n < HTTP_MAXHEADERS) {
		f->value[f->n] = at;
		f->valuelen[f->n] = len;
		f->n++;
	}
	return (0);
}

static int
hp_headers_complete(http_parser *p)
{
	struct hp_fields	*f = p->data;

	f->done = 1;
	return (1);		/* no body to look for */
}

static double
now(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (ts.tv_sec + ts.tv_nsec / 1e9);
}

/* Parses per second of one round. */
static double
round_ours(const char *msg, size_t len, int response, long n)
{
	struct http_hdr	hdrs[HTTP_MAXHEADERS];
	struct http_msg	m;
	double		t0;
	long		i;

	t0 = now();
	for (i = 0; i < n; i++) {
		http_msg_init(&m, response, NULL, hdrs);
		if (http_parse(&m, msg, len) != HTTP_DONE)
			errx(1, "ours: %s", m.errmsg);
		sink += m.nhdrs + m.head_len;
	}
	return (n / (now() - t0));
}

static double
round_theirs(const char *msg, size_t len, int response, long n)
{
	http_parser_settings	s;
	http_parser		p;
	struct hp_fields	f;
	double			t0;
	long			i;

	http_parser_settings_init(&s);
	s.on_url = hp_url;
	s.on_header_field = hp_field;
	s.on_header_value = hp_value;
	s.on_headers_complete = hp_headers_complete;
	t0 = now();
	for (i = 0; i < n; i++) {
		f.n = 0;
		f.done = 0;
		http_parser_init(&p, response ? HTTP_RESPONSE : HTTP_REQUEST);
		p.data = &f;
		http_parser_execute(&p, &s, msg, len);
		if (!f.done)
			errx(1, "libhttp-parser: %s",
			    http_errno_name(HTTP_PARSER_ERRNO(&p)));
		sink += f.n + f.urllen;
	}
	return (n / (now() - t0));
}

static int
cmpd(const void *a, const void *b)
{
	double	x = *(const double *)a, y = *(const double *)b;

	return ((x > y) - (x < y));
}

static double
median(double *v, int n)
{
	qsort(v, n, sizeof(*v), cmpd);
	return (n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2);
}

static void
bench(const char *what, const char *msg, int response, long n, int rounds)
{
	double	ours[MAXROUNDS], theirs[MAXROUNDS], mo, mt;
	size_t	len = strlen(msg);
	int	r;

	/* warm up, then alternate so that both see the same machine */
	round_ours(msg, len, response, n / 10);
	round_theirs(msg, len, response, n / 10);
	for (r = 0; r < rounds; r++) {
		ours[r] = round_ours(msg, len, response, n);
		theirs[r] = round_theirs(msg, len, response, n);
	}
	mo = median(ours, rounds);
	mt = median(theirs, rounds);
	printf("%-9s %4zu bytes  ours %8.0f/s (%6.1f MB/s)  libhttp-parser "
	    "%8.0f/s (%6.1f MB/s)  ours/theirs %.2f\n", what, len, mo,
	    mo * len / 1e6, mt, mt * len / 1e6, mo / mt);
}

int
main(int argc, char *argv[])
{
	cpu_set_t	set;
	long		n = DEF_N;
	int		rounds = DEF_ROUNDS, ch, cpu;
	const char	*pin = "not pinned";

	while ((ch = getopt(argc, argv, "n:r:")) != -1) {
		switch (ch) {
		case 'n':
			n = strtol(optarg, NULL, 10);
			break;
		case 'r':
			rounds = (int)strtol(optarg, NULL, 10);
			break;
		default:
			fprintf(stderr, "usage: bench_parser [-n parses] "
			    "[-r rounds]\n");
			return (1);
		}
	}
	if (n < 10 || rounds < 1 || rounds > MAXROUNDS)
		errx(1, "bad -n or -r");
	if ((cpu = sched_getcpu()) != -1) {
		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		if (sched_setaffinity(0, sizeof(set), &set) == 0)
			pin = "pinned";
	}
	printf("bench_parser: %ld parses per round, median of %d rounds, %s "
	    "to one CPU\n", n, rounds, pin);
	bench("request", req, 0, n, rounds);
	bench("response", rsp, 1, n, rounds);
	return (0);
}
