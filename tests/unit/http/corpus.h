/*
 * corpus.h: the HTTP/1.1 parser's corpus of good and hostile messages,
 * with the outcome each must have.  Shared by tests/unit/test_http_parse.c
 * (which checks every case whole, split at every byte and byte by byte),
 * tests/unit/test_http_diff.c (against libhttp-parser) and the fuzzers'
 * seed writer (tests/fuzz/seeds.c).
 *
 * A case's input is .in, .len bytes (NULs allowed).  When .nrep is set,
 * the first "{REP}" in it stands for .nrep copies of .rep (long targets,
 * big header blocks, many fields); corpus_input() expands it.
 *
 * Accepted cases (.rc = HTTP_DONE) state every field the parser sets:
 * method, target, minor, status, nhdrs, framing, content_length and the
 * flags; head_len is where the first empty line ends unless .head_len
 * says otherwise; .hv names up to four fields (lower case) and the value
 * the first of each must have.  Refused cases state msg->error.
 */
#ifndef TESTS_HTTP_CORPUS_H
#define TESTS_HTTP_CORPUS_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

#define CORPUS_UNUSED	__attribute__((__unused__))

/* .lim */
#define L_DEFAULT	0
#define L_SMALL		1	/* line 64, head 256, 5 fields, body 10 */
#define L_NOBODYMAX	2	/* max_body 0: no limit */

static const struct http_limits corpus_limits[] CORPUS_UNUSED = {
	{ HTTP_MAXREQLINE, HTTP_MAXHEAD, HTTP_MAXHEADERS, HTTP_MAXBODY,
	    HTTP_HEADER_TIMEOUT, HTTP_BODY_TIMEOUT, HTTP_IDLE_TIMEOUT,
	    HTTP_SEND_TIMEOUT },
	{ 64, 256, 5, 10, HTTP_HEADER_TIMEOUT, HTTP_BODY_TIMEOUT,
	    HTTP_IDLE_TIMEOUT, HTTP_SEND_TIMEOUT },
	{ HTTP_MAXREQLINE, HTTP_MAXHEAD, HTTP_MAXHEADERS, 0,
	    HTTP_HEADER_TIMEOUT, HTTP_BODY_TIMEOUT, HTTP_IDLE_TIMEOUT,
	    HTTP_SEND_TIMEOUT }
};

struct hcase {
	const char		*name;
	const char		*in;
	size_t			 len;
	const char		*rep;		/* what "{REP}" stands for */
	int			 nrep;
	int			 lim;		/* L_* */
	enum http_method	 req_method;	/* responses */
	int			 rc;		/* HTTP_DONE, ... */
	int			 error;
	enum http_method	 method;
	const char		*target;
	int			 form;		/* 0: not checked */
	int			 minor;
	int			 status;
	int			 nhdrs;
	int			 framing;
	uint64_t		 cl;
	uint32_t		 flags;
	uint32_t		 head_len;	/* 0: first empty line */
	const char		*hv[8];
};

#define IN(s)		.in = (s), .len = sizeof(s) - 1
#define ERR(e)		.rc = HTTP_ERROR, .error = (e)
#define AGAIN		.rc = HTTP_AGAIN
#define REQ(m, t, v)	.rc = HTTP_DONE, .method = HTTP_M_##m, \
			.target = (t), .minor = (v)
#define RSP(s, v)	.rc = HTTP_DONE, .status = (s), .minor = (v)
#define NH(n)		.nhdrs = (n)
#define LEN(n)		.framing = HTTP_BODY_LENGTH, .cl = (n), \
			.flags = HTTP_F_CL
#define CHUNKED		.framing = HTTP_BODY_CHUNKED, .flags = HTTP_F_TE
#define H		"Host: example.com\r\n"
#define GET		"GET / HTTP/1.1\r\n" H
#define POST		"POST /form HTTP/1.1\r\n" H
#define X31		"XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"	/* 31 */

static const struct hcase corpus_req[] CORPUS_UNUSED = {
	/* --- accepted --- */
	{ "minimal 1.1", IN(GET "\r\n"), REQ(GET, "/", 1), NH(1),
	    .form = HTTP_T_ORIGIN, .hv = { "host", "example.com" } },
	{ "1.0 without Host", IN("GET / HTTP/1.0\r\n\r\n"), REQ(GET, "/", 0) },
	{ "1.0 with Host", IN("GET /x HTTP/1.0\r\n" H "\r\n"),
	    REQ(GET, "/x", 0), NH(1) },
	{ "HEAD", IN("HEAD /i HTTP/1.1\r\n" H "\r\n"), REQ(HEAD, "/i", 1),
	    NH(1) },
	{ "POST with body", IN(POST "Content-Length: 5\r\n\r\nhello"),
	    REQ(POST, "/form", 1), NH(2), LEN(5),
	    .hv = { "content-length", "5" } },
	{ "POST and pipelined request", IN(POST "Content-Length: 2\r\n\r\n"
	    "okGET / HTTP/1.1\r\n" H "\r\n"), REQ(POST, "/form", 1), NH(2),
	    LEN(2) },
	{ "PUT length 0", IN("PUT /f HTTP/1.1\r\n" H "Content-Length: 0\r\n"
	    "\r\n"), REQ(PUT, "/f", 1), NH(2), .flags = HTTP_F_CL },
	{ "DELETE", IN("DELETE /r/1 HTTP/1.1\r\n" H "\r\n"),
	    REQ(DELETE, "/r/1", 1), NH(1) },
	{ "OPTIONS *", IN("OPTIONS * HTTP/1.1\r\n" H "\r\n"),
	    REQ(OPTIONS, "*", 1), NH(1), .form = HTTP_T_ASTERISK },
	{ "OPTIONS /", IN("OPTIONS / HTTP/1.1\r\n" H "\r\n"),
	    REQ(OPTIONS, "/", 1), NH(1) },
	{ "TRACE", IN("TRACE /t HTTP/1.1\r\n" H "\r\n"), REQ(TRACE, "/t", 1),
	    NH(1) },
	{ "PATCH", IN("PATCH /p HTTP/1.1\r\n" H "Content-Length: 2\r\n\r\n{}"),
	    REQ(PATCH, "/p", 1), NH(2), LEN(2) },
	{ "CONNECT host:port", IN("CONNECT example.com:443 HTTP/1.1\r\n"
	    "Host: example.com:443\r\n\r\n"),
	    REQ(CONNECT, "example.com:443", 1), NH(1),
	    .form = HTTP_T_AUTHORITY },
	{ "CONNECT [v6]:port", IN("CONNECT [2001:db8::1]:8443 HTTP/1.1\r\n"
	    "Host: [2001:db8::1]:8443\r\n\r\n"),
	    REQ(CONNECT, "[2001:db8::1]:8443", 1), NH(1),
	    .form = HTTP_T_AUTHORITY },
	{ "unknown method", IN("PURGE /c HTTP/1.1\r\n" H "\r\n"),
	    REQ(OTHER, "/c", 1), NH(1) },
	{ "method with dash", IN("M-SEARCH / HTTP/1.1\r\n" H "\r\n"),
	    REQ(OTHER, "/", 1), NH(1) },
	{ "* with another method", IN("M-SEARCH * HTTP/1.1\r\n" H "\r\n"),
	    ERR(400) },
	{ "lower-case method is another method", IN("get / HTTP/1.1\r\n" H
	    "\r\n"), REQ(OTHER, "/", 1), NH(1) },
	{ "method of 32 bytes", IN(X31 "Y / HTTP/1.1\r\n" H "\r\n"),
	    REQ(OTHER, "/", 1), NH(1) },
	{ "method of tchars", IN("!#$%&'*+-.^_`|~09 / HTTP/1.1\r\n" H "\r\n"),
	    REQ(OTHER, "/", 1), NH(1) },
	{ "query", IN("GET /a?b=c&d=%20e HTTP/1.1\r\n" H "\r\n"),
	    REQ(GET, "/a?b=c&d=%20e", 1), NH(1) },
	{ "target with every VCHAR but #", IN("GET /!\"$%&'()*+,-./09:;<=>?@AZ"
	    "[\\]^_`az{|}~ HTTP/1.1\r\n" H "\r\n"),
	    REQ(GET, "/!\"$%&'()*+,-./09:;<=>?@AZ[\\]^_`az{|}~", 1), NH(1) },
	/* a fragment is never sent, and would be read two ways */
	{ "fragment in target", IN("GET http://x#/secret HTTP/1.1\r\n"
	    "Host: admin.internal\r\n\r\n"), ERR(400) },
	{ "fragment in origin-form target", IN("GET /a#b HTTP/1.1\r\n" H
	    "\r\n"), ERR(400) },
	{ "absolute-form", IN("GET http://example.com/x?y HTTP/1.1\r\n" H
	    "\r\n"), REQ(GET, "http://example.com/x?y", 1), NH(1),
	    .form = HTTP_T_ABSOLUTE },
	{ "absolute-form without path", IN("GET http://example.com HTTP/1.1\r\n"
	    H "\r\n"), REQ(GET, "http://example.com", 1), NH(1),
	    .form = HTTP_T_ABSOLUTE },
	{ "absolute-form https with port", IN("GET https://example.com:8443/a "
	    "HTTP/1.1\r\n" H "\r\n"), REQ(GET, "https://example.com:8443/a", 1),
	    NH(1), .form = HTTP_T_ABSOLUTE },
	{ "absolute-form v6", IN("GET http://[::1]:8080/ HTTP/1.1\r\n"
	    "Host: [::1]:8080\r\n\r\n"), REQ(GET, "http://[::1]:8080/", 1),
	    NH(1), .form = HTTP_T_ABSOLUTE },
	{ "absolute-form with query only", IN("GET http://a?q HTTP/1.1\r\n"
	    "Host: a\r\n\r\n"), REQ(GET, "http://a?q", 1), NH(1),
	    .form = HTTP_T_ABSOLUTE },
	{ "absolute-form, Host differs", IN("GET http://a/ HTTP/1.1\r\n"
	    "Host: b\r\n\r\n"), REQ(GET, "http://a/", 1), NH(1) },
	{ "absolute-form 1.0", IN("GET http://a/ HTTP/1.0\r\n\r\n"),
	    REQ(GET, "http://a/", 0) },
	{ "Expect 100-continue", IN(POST "Content-Length: 3\r\n"
	    "Expect: 100-continue\r\n\r\n"), REQ(POST, "/form", 1), NH(3),
	    .framing = HTTP_BODY_LENGTH, .cl = 3,
	    .flags = HTTP_F_CL | HTTP_F_CONTINUE },
	{ "Expect case-insensitive", IN(POST "Content-Length: 3\r\n"
	    "Expect: 100-Continue\r\n\r\n"), REQ(POST, "/form", 1), NH(3),
	    .framing = HTTP_BODY_LENGTH, .cl = 3,
	    .flags = HTTP_F_CL | HTTP_F_CONTINUE },
	{ "Expect 100-continue ignored in 1.0", IN("POST / HTTP/1.0\r\n"
	    "Content-Length: 3\r\nExpect: 100-continue\r\n\r\n"),
	    REQ(POST, "/", 0), NH(2), LEN(3) },
	{ "Connection close", IN(GET "Connection: close\r\n\r\n"),
	    REQ(GET, "/", 1), NH(2), .flags = HTTP_F_CLOSE },
	{ "Connection keep-alive 1.0", IN("GET / HTTP/1.0\r\n"
	    "Connection: Keep-Alive\r\n\r\n"), REQ(GET, "/", 0), NH(1),
	    .flags = HTTP_F_KEEPALIVE },
	{ "Connection list", IN(GET "Connection: keep-alive, Upgrade\r\n"
	    "Upgrade: websocket\r\n\r\n"), REQ(GET, "/", 1), NH(3),
	    .flags = HTTP_F_KEEPALIVE | HTTP_F_UPGRADE,
	    .hv = { "upgrade", "websocket" } },
	{ "Connection upgrade without Upgrade", IN(GET "Connection: upgrade\r\n"
	    "\r\n"), REQ(GET, "/", 1), NH(2) },
	{ "Connection names a field", IN(GET "Connection: close, X-Foo\r\n"
	    "X-Foo: 1\r\n\r\n"), REQ(GET, "/", 1), NH(3),
	    .flags = HTTP_F_CLOSE | HTTP_F_CONN_OTHER },
	{ "Connection empty elements", IN(GET "Connection: ,close,,\r\n\r\n"),
	    REQ(GET, "/", 1), NH(2), .flags = HTTP_F_CLOSE },
	{ "Connection empty", IN(GET "Connection:\r\n\r\n"), REQ(GET, "/", 1),
	    NH(2) },
	{ "chunked", IN(POST "Transfer-Encoding: chunked\r\n\r\n"
	    "5\r\nhello\r\n0\r\n\r\n"), REQ(POST, "/form", 1), NH(2), CHUNKED,
	    .hv = { "transfer-encoding", "chunked" } },
	{ "TE Chunked (names are case-insensitive)", IN(POST
	    "Transfer-Encoding: Chunked\r\n\r\n"), REQ(POST, "/form", 1), NH(2),
	    CHUNKED },
	{ "TE CHUNKED", IN(POST "Transfer-Encoding: CHUNKED\r\n\r\n"),
	    REQ(POST, "/form", 1), NH(2), CHUNKED },
	{ "TE \" chunked\" (OWS)", IN(POST "Transfer-Encoding:  chunked\r\n"
	    "\r\n"), REQ(POST, "/form", 1), NH(2), CHUNKED,
	    .hv = { "transfer-encoding", "chunked" } },
	{ "TE \"chunked \" (trailing OWS)", IN(POST
	    "Transfer-Encoding: chunked \r\n\r\n"), REQ(POST, "/form", 1),
	    NH(2), CHUNKED, .hv = { "transfer-encoding", "chunked" } },
	{ "TE \"\\tchunked\"", IN(POST "Transfer-Encoding:\tchunked\r\n\r\n"),
	    REQ(POST, "/form", 1), NH(2), CHUNKED },
	{ "TE \"chunked,\" (empty element)", IN(POST
	    "Transfer-Encoding: chunked,\r\n\r\n"), REQ(POST, "/form", 1),
	    NH(2), CHUNKED },
	{ "TE \", chunked\"", IN(POST "Transfer-Encoding: , chunked\r\n\r\n"),
	    REQ(POST, "/form", 1), NH(2), CHUNKED },
	{ "Transfer_Encoding is another field", IN(POST
	    "Transfer_Encoding: chunked\r\n\r\n"), REQ(POST, "/form", 1),
	    NH(2) },
	{ "Content_Length is another field", IN(POST
	    "Content_Length: 5\r\n\r\n"), REQ(POST, "/form", 1), NH(2) },
	{ "CL \"5, 5\"", IN(POST "Content-Length: 5, 5\r\n\r\nhello"),
	    REQ(POST, "/form", 1), NH(2), LEN(5) },
	{ "CL \"5,5\"", IN(POST "Content-Length: 5,5\r\n\r\nhello"),
	    REQ(POST, "/form", 1), NH(2), LEN(5) },
	{ "CL \"5,\"", IN(POST "Content-Length: 5,\r\n\r\nhello"),
	    REQ(POST, "/form", 1), NH(2), LEN(5) },
	{ "CL twice, same value", IN(POST "Content-Length: 5\r\n"
	    "Content-Length: 5\r\n\r\nhello"), REQ(POST, "/form", 1), NH(3),
	    LEN(5) },
	{ "CL leading zeros", IN(POST "Content-Length: 005\r\n\r\nhello"),
	    REQ(POST, "/form", 1), NH(2), LEN(5) },
	{ "CL 19 digits without a limit", IN(POST
	    "Content-Length: 9999999999999999999\r\n\r\n"), .lim = L_NOBODYMAX,
	    REQ(POST, "/form", 1), NH(2), LEN(9999999999999999999ULL) },
	{ "CL at max_body", IN(POST "Content-Length: 10\r\n\r\n"),
	    .lim = L_SMALL, REQ(POST, "/form", 1), NH(2), LEN(10) },
	{ "CL case-insensitive name", IN(POST "content-LENGTH: 1\r\n\r\nx"),
	    REQ(POST, "/form", 1), NH(2), LEN(1) },
	{ "value trimmed", IN(GET "X-A: \t a b \t \r\n\r\n"), REQ(GET, "/", 1),
	    NH(2), .hv = { "x-a", "a b" } },
	{ "no space after colon", IN(GET "X-A:b\r\n\r\n"), REQ(GET, "/", 1),
	    NH(2), .hv = { "x-a", "b" } },
	{ "empty value", IN(GET "X-A:\r\n\r\n"), REQ(GET, "/", 1), NH(2),
	    .hv = { "x-a", "" } },
	{ "only OWS value", IN(GET "X-A:   \r\n\r\n"), REQ(GET, "/", 1), NH(2),
	    .hv = { "x-a", "" } },
	{ "obs-text value", IN(GET "X-A: caf\xc3\xa9 \xff\r\n\r\n"),
	    REQ(GET, "/", 1), NH(2), .hv = { "x-a", "caf\xc3\xa9 \xff" } },
	{ "value with inner tab", IN(GET "X-A: a\tb\r\n\r\n"), REQ(GET, "/", 1),
	    NH(2), .hv = { "x-a", "a\tb" } },
	{ "value with colons", IN(GET "X-A: b: c:d\r\n\r\n"), REQ(GET, "/", 1),
	    NH(2), .hv = { "x-a", "b: c:d" } },
	{ "name of tchars", IN(GET "!#$%&'*+-.^_`|~09azAZ: v\r\n\r\n"),
	    REQ(GET, "/", 1), NH(2), .hv = { "!#$%&'*+-.^_`|~09azaz", "v" } },
	{ "Host case-insensitive", IN("GET / HTTP/1.1\r\nhOST: a\r\n\r\n"),
	    REQ(GET, "/", 1), NH(1), .hv = { "host", "a" } },
	{ "Host with port", IN("GET / HTTP/1.1\r\nHost: example.com:8080\r\n"
	    "\r\n"), REQ(GET, "/", 1), NH(1) },
	{ "Host v6", IN("GET / HTTP/1.1\r\nHost: [::1]\r\n\r\n"),
	    REQ(GET, "/", 1), NH(1) },
	{ "Host v6 with port", IN("GET / HTTP/1.1\r\nHost: [fe80::1:2]:80\r\n"
	    "\r\n"), REQ(GET, "/", 1), NH(1) },
	{ "Host v4-mapped v6", IN("GET / HTTP/1.1\r\nHost: [::ffff:1.2.3.4]\r\n"
	    "\r\n"), REQ(GET, "/", 1), NH(1) },
	{ "Host empty", IN("GET / HTTP/1.1\r\nHost:\r\n\r\n"), REQ(GET, "/", 1),
	    NH(1), .hv = { "host", "" } },
	{ "Host IPv4", IN("GET / HTTP/1.1\r\nHost: 127.0.0.1:80\r\n\r\n"),
	    REQ(GET, "/", 1), NH(1) },
	{ "Host with empty port", IN("GET / HTTP/1.1\r\nHost: a:\r\n\r\n"),
	    REQ(GET, "/", 1), NH(1) },
	{ "Host with pct-encoding", IN("GET / HTTP/1.1\r\nHost: a%2Db\r\n\r\n"),
	    REQ(GET, "/", 1), NH(1) },
	{ "Host with sub-delims", IN("GET / HTTP/1.1\r\nHost: a_b~c!d$e\r\n"
	    "\r\n"), REQ(GET, "/", 1), NH(1) },
	{ "Host punycode, trailing dot", IN("GET / HTTP/1.1\r\n"
	    "Host: xn--bcher-kva.example.\r\n\r\n"), REQ(GET, "/", 1), NH(1) },
	{ "hop-by-hop fields", IN(GET "Keep-Alive: 300\r\n"
	    "Proxy-Connection: keep-alive\r\nTE: trailers\r\n"
	    "Trailer: X-T\r\n\r\n"), REQ(GET, "/", 1), NH(5),
	    .hv = { "te", "trailers", "trailer", "X-T" } },
	{ "one leading empty line", IN("\r\n" GET "\r\n"), REQ(GET, "/", 1),
	    NH(1), .head_len = 2 + 16 + 19 + 2 },
	{ "eight leading empty lines", IN("\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n" GET
	    "\r\n"), REQ(GET, "/", 1), NH(1), .head_len = 16 + 16 + 19 + 2 },
	{ "pipelined", IN(GET "\r\n" GET "\r\n"), REQ(GET, "/", 1), NH(1) },
	{ "GET with body length", IN(GET "Content-Length: 1\r\n\r\nx"),
	    REQ(GET, "/", 1), NH(2), LEN(1) },
	{ "100 fields", IN("GET / HTTP/1.1\r\n{REP}" H "\r\n"),
	    .rep = "X-F: 1\r\n", .nrep = 99, REQ(GET, "/", 1), NH(100) },
	{ "request line at the limit", IN("GET /{REP} HTTP/1.1\r\n" H "\r\n"),
	    .rep = "a", .nrep = 8192 - 5 - 9, REQ(GET, NULL, 1), NH(1) },
	{ "request line at the small limit", IN("GET /{REP} HTTP/1.1\r\n"
	    "Host: a\r\n\r\n"), .rep = "a", .nrep = 64 - 5 - 9, .lim = L_SMALL,
	    REQ(GET, NULL, 1), NH(1) },
	{ "5 fields at the small limit", IN("GET / HTTP/1.1\r\nHost: a\r\n{REP}"
	    "\r\n"), .rep = "X: 1\r\n", .nrep = 4, .lim = L_SMALL,
	    REQ(GET, "/", 1), NH(5) },
	/* an empty line before the request moves the head's limit */
	{ "head at the small limit after an empty line", IN("\r\n"
	    "GET / HTTP/1.1\r\nHost: a\r\nX: {REP}\r\n\r\n"), .rep = "v",
	    .nrep = 258 - 2 - 16 - 9 - 3 - 4, .lim = L_SMALL,
	    REQ(GET, "/", 1), NH(2), .head_len = 258 },
	{ "long value", IN(GET "X-Big: {REP}\r\n\r\n"), .rep = "v",
	    .nrep = 30000, REQ(GET, "/", 1), NH(2) },
	{ "percent-encoded target kept raw", IN("GET /%2e%2e/%2F HTTP/1.1\r\n"
	    H "\r\n"), REQ(GET, "/%2e%2e/%2F", 1), NH(1) },
	{ "Upgrade h2c", IN(GET "Connection: Upgrade, HTTP2-Settings\r\n"
	    "Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n"),
	    REQ(GET, "/", 1), NH(4),
	    .flags = HTTP_F_CONN_OTHER },	/* never a tunnel */
	{ "Upgrade websocket, h2c/1", IN(GET "Connection: Upgrade\r\n"
	    "Upgrade: websocket\r\nUpgrade: h2c/1\r\n\r\n"),
	    REQ(GET, "/", 1), NH(4) },
	{ "Upgrade websocket", IN(GET "Connection: Upgrade\r\n"
	    "Upgrade: websocket\r\n\r\n"), REQ(GET, "/", 1), NH(3),
	    .flags = HTTP_F_UPGRADE },
	{ "Expect with chunked", IN(POST "Transfer-Encoding: chunked\r\n"
	    "Expect: 100-continue\r\n\r\n"), REQ(POST, "/form", 1), NH(3),
	    .framing = HTTP_BODY_CHUNKED,
	    .flags = HTTP_F_TE | HTTP_F_CONTINUE },
	{ "browser request", IN("GET /index.html?lang=en HTTP/1.1\r\n"
	    "Host: www.example.com\r\n"
	    "Connection: keep-alive\r\n"
	    "sec-ch-ua: \"Chromium\";v=\"124\", \"Not-A.Brand\";v=\"99\"\r\n"
	    "sec-ch-ua-mobile: ?0\r\n"
	    "Upgrade-Insecure-Requests: 1\r\n"
	    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 "
	    "(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36\r\n"
	    "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,"
	    "image/avif,image/webp,*/*;q=0.8\r\n"
	    "Sec-Fetch-Site: none\r\n"
	    "Accept-Encoding: gzip, deflate, br\r\n"
	    "Accept-Language: en-US,en;q=0.9\r\n"
	    "Cookie: a=1; b=2\r\n\r\n"), REQ(GET, "/index.html?lang=en", 1),
	    NH(11), .flags = HTTP_F_KEEPALIVE,
	    .hv = { "cookie", "a=1; b=2", "sec-ch-ua-mobile", "?0" } },

	/* --- incomplete --- */
	{ "empty input", IN(""), AGAIN },
	{ "only CRLF", IN("\r\n"), AGAIN },
	{ "half a method", IN("GE"), AGAIN },
	{ "half a version", IN("GET / HT"), AGAIN },
	{ "no end of head", IN(GET), AGAIN },
	{ "head ends in CR", IN(GET "\r"), AGAIN },
	{ "half a field", IN("GET / HTTP/1.1\r\nHo"), AGAIN },
	{ "value without CRLF", IN("GET / HTTP/1.1\r\nHost: a"), AGAIN },

	/* --- request smuggling: CL and TE together --- */
	{ "CL.TE", IN(POST "Content-Length: 6\r\nTransfer-Encoding: chunked\r\n"
	    "\r\n0\r\n\r\nX"), ERR(400) },
	{ "TE.CL", IN(POST "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n"
	    "\r\n8\r\nSMUGGLED\r\n0\r\n\r\n"), ERR(400) },
	{ "TE.CL with CL 0", IN(POST "Transfer-Encoding: chunked\r\n"
	    "Content-Length: 0\r\n\r\n"), ERR(400) },
	{ "TE in 1.0", IN("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n"
	    "\r\n"), ERR(400) },
	{ "TE in 1.0 with CL", IN("POST / HTTP/1.0\r\nContent-Length: 5\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n"), ERR(400) },
	/* --- TE.TE: obfuscated Transfer-Encoding --- */
	{ "TE \"chunked, identity\"", IN(POST
	    "Transfer-Encoding: chunked, identity\r\n\r\n"), ERR(400) },
	{ "TE \"identity, chunked\"", IN(POST
	    "Transfer-Encoding: identity, chunked\r\n\r\n"), ERR(501) },
	{ "TE \"gzip, chunked\"", IN(POST
	    "Transfer-Encoding: gzip, chunked\r\n\r\n"), ERR(501) },
	{ "TE \"xchunked\"", IN(POST "Transfer-Encoding: xchunked\r\n\r\n"),
	    ERR(400) },
	{ "TE \"chunkedx\"", IN(POST "Transfer-Encoding: chunkedx\r\n\r\n"),
	    ERR(400) },
	{ "TE \"chunked;x=1\"", IN(POST "Transfer-Encoding: chunked;x=1\r\n"
	    "\r\n"), ERR(400) },
	{ "TE \"chunked ;x=1\"", IN(POST "Transfer-Encoding: chunked ;x=1\r\n"
	    "\r\n"), ERR(400) },
	{ "TE \"chunked, chunked\"", IN(POST
	    "Transfer-Encoding: chunked, chunked\r\n\r\n"), ERR(400) },
	{ "TE twice", IN(POST "Transfer-Encoding: chunked\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n"), ERR(400) },
	{ "TE twice, gzip then chunked", IN(POST "Transfer-Encoding: gzip\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n"), ERR(501) },
	{ "TE twice, chunked then identity", IN(POST
	    "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n"
	    "\r\n"), ERR(400) },
	{ "TE identity", IN(POST "Transfer-Encoding: identity\r\n\r\n"),
	    ERR(400) },
	{ "TE gzip", IN(POST "Transfer-Encoding: gzip\r\n\r\n"), ERR(400) },
	{ "TE empty", IN(POST "Transfer-Encoding:\r\n\r\n"), ERR(400) },
	{ "TE \"chunked chunked\"", IN(POST
	    "Transfer-Encoding: chunked chunked\r\n\r\n"), ERR(400) },
	{ "TE quoted", IN(POST "Transfer-Encoding: \"chunked\"\r\n\r\n"),
	    ERR(400) },
	{ "TE \"chu nked\"", IN(POST "Transfer-Encoding: chu nked\r\n\r\n"),
	    ERR(400) },
	{ "TE with VT", IN(POST "Transfer-Encoding: \x0b" "chunked\r\n\r\n"),
	    ERR(400) },
	{ "TE with FF", IN(POST "Transfer-Encoding: chunked\x0c\r\n\r\n"),
	    ERR(400) },
	{ "TE with NUL", IN(POST "Transfer-Encoding: chunked\0\r\n\r\n"),
	    ERR(400) },
	{ "TE with CR", IN(POST "Transfer-Encoding: chunked\r\r\n\r\n"),
	    ERR(400) },
	{ "TE obs-fold", IN(POST "Transfer-Encoding:\r\n chunked\r\n\r\n"),
	    ERR(400) },
	{ "TE obs-fold after chunked", IN(POST "Transfer-Encoding: chunked\r\n"
	    " , identity\r\n\r\n"), ERR(400) },
	{ "TE space before colon", IN(POST "Transfer-Encoding : chunked\r\n"
	    "\r\n"), ERR(400) },
	{ "TE tab before colon", IN(POST "Transfer-Encoding\t: chunked\r\n"
	    "\r\n"), ERR(400) },
	{ "TE leading space in name", IN(POST " Transfer-Encoding: chunked\r\n"
	    "\r\n"), ERR(400) },
	{ "TE bare LF", IN(POST "Transfer-Encoding: chunked\n\r\n"), ERR(400) },
	{ "TE with CL after obs-fold", IN(POST "X: y\r\n"
	    " Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"),
	    ERR(400) },
	/* --- Content-Length --- */
	{ "CL differing fields", IN(POST "Content-Length: 5\r\n"
	    "Content-Length: 6\r\n\r\nhello!"), ERR(400) },
	{ "CL \"5, 6\"", IN(POST "Content-Length: 5, 6\r\n\r\n"), ERR(400) },
	{ "CL \"5 5\"", IN(POST "Content-Length: 5 5\r\n\r\n"), ERR(400) },
	{ "CL \"5\\t5\"", IN(POST "Content-Length: 5\t5\r\n\r\n"), ERR(400) },
	{ "CL +5", IN(POST "Content-Length: +5\r\n\r\n"), ERR(400) },
	{ "CL -5", IN(POST "Content-Length: -5\r\n\r\n"), ERR(400) },
	{ "CL -0", IN(POST "Content-Length: -0\r\n\r\n"), ERR(400) },
	{ "CL 0x5", IN(POST "Content-Length: 0x5\r\n\r\n"), ERR(400) },
	{ "CL 5.0", IN(POST "Content-Length: 5.0\r\n\r\n"), ERR(400) },
	{ "CL 1e3", IN(POST "Content-Length: 1e3\r\n\r\n"), ERR(400) },
	{ "CL empty", IN(POST "Content-Length:\r\n\r\n"), ERR(400) },
	{ "CL only OWS", IN(POST "Content-Length:   \r\n\r\n"), ERR(400) },
	{ "CL only a comma", IN(POST "Content-Length: ,\r\n\r\n"), ERR(400) },
	{ "CL comma after a good one", IN(POST "Content-Length: 5\r\n"
	    "Content-Length: ,\r\n\r\n"), ERR(400) },
	{ "CL 20 digits", IN(POST "Content-Length: 18446744073709551616\r\n"
	    "\r\n"), ERR(400) },
	{ "CL 20 digits with leading zero", IN(POST
	    "Content-Length: 00000000000000000005\r\n\r\n"), ERR(400) },
	{ "CL 30 digits", IN(POST
	    "Content-Length: 999999999999999999999999999999\r\n\r\n"),
	    ERR(400) },
	{ "CL 19 digits above max_body", IN(POST
	    "Content-Length: 9999999999999999999\r\n\r\n"), ERR(413) },
	{ "CL above small max_body", IN(POST "Content-Length: 11\r\n\r\n"),
	    .lim = L_SMALL, ERR(413) },
	{ "CL above max_body", IN(POST "Content-Length: 1048577\r\n\r\n"),
	    ERR(413) },
	{ "CL with letters", IN(POST "Content-Length: five\r\n\r\n"),
	    ERR(400) },
	{ "CL quoted", IN(POST "Content-Length: \"5\"\r\n\r\n"), ERR(400) },
	{ "CL obs-fold", IN(POST "Content-Length:\r\n 5\r\n\r\n"), ERR(400) },
	{ "CL space before colon", IN(POST "Content-Length : 5\r\n\r\n"),
	    ERR(400) },
	{ "CL with NUL", IN(POST "Content-Length: 5\0\r\n\r\n"), ERR(400) },
	/* --- line ends --- */
	{ "LF only everywhere", IN("GET / HTTP/1.1\nHost: a\n\n"), ERR(400) },
	{ "LF after request line", IN("GET / HTTP/1.1\nHost: a\r\n\r\n"),
	    ERR(400) },
	{ "LF after a field", IN("GET / HTTP/1.1\r\nHost: a\n\r\n"), ERR(400) },
	{ "LF as the last line", IN("GET / HTTP/1.1\r\nHost: a\r\n\n"),
	    ERR(400) },
	{ "leading LF", IN("\n" GET "\r\n"), ERR(400) },
	{ "leading CRLF then LF", IN("\r\n\n" GET "\r\n"), ERR(400) },
	{ "LF in the target", IN("GET /\n HTTP/1.1\r\n" H "\r\n"), ERR(400) },
	{ "LF in a value", IN(GET "X: a\nb\r\n\r\n"), ERR(400) },
	{ "bare CR after request line", IN("GET / HTTP/1.1\rHost: a\r\n\r\n"),
	    ERR(400) },
	{ "bare CR in a value", IN(GET "X: a\rb\r\n\r\n"), ERR(400) },
	{ "bare CR ending the head", IN(GET "\rX"), ERR(400) },
	{ "leading bare CR", IN("\rGET / HTTP/1.1\r\n" H "\r\n"), ERR(400) },
	{ "bare CR in the target", IN("GET /\r HTTP/1.1\r\n" H "\r\n"),
	    ERR(400) },
	{ "CR CR LF", IN("GET / HTTP/1.1\r\r\n" H "\r\n"), ERR(400) },
	{ "nine leading empty lines", IN("\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n"
	    GET "\r\n"), ERR(400) },
	{ "many leading empty lines", IN("{REP}" GET "\r\n"), .rep = "\r\n",
	    .nrep = 5000, ERR(400) },
	/* --- NUL and control bytes --- */
	{ "NUL in the method", IN("G\0T / HTTP/1.1\r\n" H "\r\n"), ERR(400) },
	{ "NUL in the target", IN("GET /a\0b HTTP/1.1\r\n" H "\r\n"),
	    ERR(400) },
	{ "NUL in the version", IN("GET / HTTP/1.1\0\r\n" H "\r\n"), ERR(400) },
	{ "NUL in a name", IN(GET "X\0Y: 1\r\n\r\n"), ERR(400) },
	{ "NUL starting a name", IN(GET "\0X: 1\r\n\r\n"), ERR(400) },
	{ "NUL in a value", IN(GET "X: a\0b\r\n\r\n"), ERR(400) },
	{ "NUL in Host", IN("GET / HTTP/1.1\r\nHost: a\0b\r\n\r\n"), ERR(400) },
	{ "DEL in a value", IN(GET "X: a\x7f" "b\r\n\r\n"), ERR(400) },
	{ "SOH in a value", IN(GET "X: a\x01" "b\r\n\r\n"), ERR(400) },
	{ "ESC in a value", IN(GET "X: \x1b[31m\r\n\r\n"), ERR(400) },
	{ "DEL in the target", IN("GET /\x7f HTTP/1.1\r\n" H "\r\n"),
	    ERR(400) },
	{ "tab in the target", IN("GET /a\tb HTTP/1.1\r\n" H "\r\n"),
	    ERR(400) },
	{ "obs-text in the target", IN("GET /caf\xc3\xa9 HTTP/1.1\r\n" H
	    "\r\n"), ERR(400) },
	{ "obs-text in a name", IN(GET "X\xe9: 1\r\n\r\n"), ERR(400) },
	/* --- request line --- */
	{ "request line too long", IN("GET /{REP} HTTP/1.1\r\n" H "\r\n"),
	    .rep = "a", .nrep = 8192, ERR(414) },
	{ "target too long, no end", IN("GET /{REP}"), .rep = "a",
	    .nrep = 9000, ERR(414) },
	{ "request line too long, small limit", IN("GET /{REP} HTTP/1.1\r\n"
	    "Host: a\r\n\r\n"), .rep = "a", .nrep = 64 - 5 - 8, .lim = L_SMALL,
	    ERR(414) },
	{ "method too long", IN(X31 "YZ / HTTP/1.1\r\n" H "\r\n"), ERR(501) },
	{ "method too long, no end", IN(X31 X31 X31), ERR(501) },
	{ "method too long, bad byte", IN(X31 X31 "@ / HTTP/1.1\r\n"),
	    ERR(501) },
	{ "method with (", IN("GE(T / HTTP/1.1\r\n" H "\r\n"), ERR(400) },
	{ "method with @", IN("GET@ / HTTP/1.1\r\n" H "\r\n"), ERR(400) },
	{ "method with :", IN("GET: / HTTP/1.1\r\n" H "\r\n"), ERR(400) },
	{ "method with obs-text", IN("G\xc9T / HTTP/1.1\r\n" H "\r\n"),
	    ERR(400) },
	{ "tab after the method", IN("GET\t/ HTTP/1.1\r\n" H "\r\n"),
	    ERR(400) },
	{ "leading space", IN(" GET / HTTP/1.1\r\n" H "\r\n"), ERR(400) },
	{ "two spaces after the method", IN("GET  / HTTP/1.1\r\n" H "\r\n"),
	    ERR(400) },
	{ "two spaces before the version", IN("GET /  HTTP/1.1\r\n" H "\r\n"),
	    ERR(400) },
	{ "space after the version", IN("GET / HTTP/1.1 \r\n" H "\r\n"),
	    ERR(400) },
	{ "space inside the target", IN("GET /a b HTTP/1.1\r\n" H "\r\n"),
	    ERR(400) },
	{ "no version (HTTP/0.9)", IN("GET /\r\n\r\n"), ERR(400) },
	{ "empty version", IN("GET / \r\n\r\n"), ERR(400) },
	{ "no target", IN("GET HTTP/1.1\r\n" H "\r\n"), ERR(400) },
	{ "only a method", IN("GET\r\n\r\n"), ERR(400) },
	{ "HTTP/2.0", IN("GET / HTTP/2.0\r\n" H "\r\n"), ERR(505) },
	/* a higher minor is read as 1.1 (RFC 9112 2.3) */
	{ "HTTP/1.2", IN("GET / HTTP/1.2\r\n" H "\r\n"), REQ(GET, "/", 1),
	    NH(1) },
	{ "HTTP/1.9", IN("GET / HTTP/1.9\r\n" H "\r\n"), REQ(GET, "/", 1),
	    NH(1) },
	{ "HTTP/0.9", IN("GET / HTTP/0.9\r\n\r\n"), ERR(505) },
	{ "HTTP/3.0", IN("GET / HTTP/3.0\r\n" H "\r\n"), ERR(505) },
	{ "HTTP/9.9", IN("GET / HTTP/9.9\r\n" H "\r\n"), ERR(505) },
	{ "HTTP/1.1x", IN("GET / HTTP/1.1x\r\n" H "\r\n"), ERR(400) },
	{ "HTTPS/1.1", IN("GET / HTTPS/1.1\r\n" H "\r\n"), ERR(400) },
	{ "http/1.1", IN("GET / http/1.1\r\n" H "\r\n"), ERR(400) },
	{ "HTTP/1", IN("GET / HTTP/1\r\n" H "\r\n"), ERR(400) },
	{ "HTTP/2", IN("GET / HTTP/2\r\n" H "\r\n"), ERR(400) },
	{ "HTTP/1.10", IN("GET / HTTP/1.10\r\n" H "\r\n"), ERR(400) },
	{ "HTTP/01.1", IN("GET / HTTP/01.1\r\n" H "\r\n"), ERR(400) },
	{ "HTTP/1,1", IN("GET / HTTP/1,1\r\n" H "\r\n"), ERR(400) },
	{ "HTTP/a.b", IN("GET / HTTP/a.b\r\n" H "\r\n"), ERR(400) },
	{ "version garbage", IN("GET / XYZZY\r\n" H "\r\n"), ERR(400) },
	{ "long version garbage", IN("GET / HTTP/1.1HTTP/1.1\r\n" H "\r\n"),
	    ERR(400) },
	/* --- header block --- */
	{ "header block too large", IN(GET "X-Big: {REP}\r\n\r\n"),
	    .rep = "v", .nrep = 33000, ERR(431) },
	{ "header block too large, no end", IN(GET "X-Big: {REP}"), .rep = "v",
	    .nrep = 40000, ERR(431) },
	{ "header block too large, small limit", IN("GET / HTTP/1.1\r\n"
	    "Host: a\r\nX: {REP}\r\n\r\n"), .rep = "v", .nrep = 250,
	    .lim = L_SMALL, ERR(431) },
	{ "too many fields", IN("GET / HTTP/1.1\r\n{REP}" H "\r\n"),
	    .rep = "X-F: 1\r\n", .nrep = 100, ERR(431) },
	{ "too many fields, small limit", IN("GET / HTTP/1.1\r\n"
	    "Host: a\r\n{REP}\r\n"), .rep = "X: 1\r\n", .nrep = 5,
	    .lim = L_SMALL, ERR(431) },
	{ "bad byte at the small limit after an empty line", IN("\r\n"
	    "GET / HTTP/1.1\r\nHost: a\r\nX: {REP}\x01\r\n\r\n"),
	    .rep = "v", .nrep = 257 - 2 - 16 - 9 - 3, .lim = L_SMALL,
	    ERR(400) },
	{ "too many empty fields", IN("GET / HTTP/1.1\r\n{REP}\r\n"),
	    .rep = "X:\r\n", .nrep = 200, ERR(431) },
	{ "whitespace before colon", IN(GET "X-A : b\r\n\r\n"), ERR(400) },
	{ "tab before colon", IN(GET "X-A\t: b\r\n\r\n"), ERR(400) },
	{ "Host space before colon", IN("GET / HTTP/1.1\r\nHost : a\r\n\r\n"),
	    ERR(400) },
	{ "empty name", IN(GET ": b\r\n\r\n"), ERR(400) },
	{ "name without colon", IN(GET "X-A\r\n\r\n"), ERR(400) },
	{ "name with (", IN(GET "X(A): b\r\n\r\n"), ERR(400) },
	{ "name with @", IN(GET "X@A: b\r\n\r\n"), ERR(400) },
	{ "name with /", IN(GET "X/A: b\r\n\r\n"), ERR(400) },
	{ "name with quote", IN(GET "X\"A: b\r\n\r\n"), ERR(400) },
	{ "name with space", IN(GET "X A: b\r\n\r\n"), ERR(400) },
	{ "obs-fold", IN(GET "X-A: b\r\n c\r\n\r\n"), ERR(400) },
	{ "obs-fold with tab", IN(GET "X-A: b\r\n\tc\r\n\r\n"), ERR(400) },
	{ "obs-fold of Host", IN("GET / HTTP/1.1\r\nHost:\r\n example.com\r\n"
	    "\r\n"), ERR(400) },
	{ "obs-fold as first field", IN("GET / HTTP/1.1\r\n Host: a\r\n\r\n"),
	    ERR(400) },
	{ "invalid Connection element", IN(GET "Connection: clo se\r\n\r\n"),
	    ERR(400) },
	{ "Connection with a slash", IN(GET "Connection: a/b\r\n\r\n"),
	    ERR(400) },
	/* --- Host --- */
	{ "missing Host in 1.1", IN("GET / HTTP/1.1\r\n\r\n"), ERR(400) },
	{ "missing Host, absolute-form", IN("GET http://a/ HTTP/1.1\r\n\r\n"),
	    ERR(400) },
	{ "two Host fields", IN("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n"
	    "\r\n"), ERR(400) },
	{ "two Host fields, 1.0", IN("GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n"
	    "\r\n"), ERR(400) },
	{ "two Host fields, one empty", IN("GET / HTTP/1.1\r\nHost:\r\n"
	    "Host: a\r\n\r\n"), ERR(400) },
	{ "Host list", IN("GET / HTTP/1.1\r\nHost: a, b\r\n\r\n"), ERR(400) },
	{ "two Authorization fields", IN("GET / HTTP/1.1\r\nHost: a\r\n"
	    "Authorization: Basic YTpi\r\nauthorization: Basic Yzpk\r\n\r\n"),
	    ERR(400) },
	{ "Host with a comma", IN("GET / HTTP/1.1\r\nHost: a,b\r\n\r\n"),
	    ERR(400) },
	{ "Host with a space", IN("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"),
	    ERR(400) },
	{ "Host with userinfo", IN("GET / HTTP/1.1\r\nHost: u@a\r\n\r\n"),
	    ERR(400) },
	{ "Host with a path", IN("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"),
	    ERR(400) },
	{ "Host with a scheme", IN("GET / HTTP/1.1\r\nHost: http://a\r\n\r\n"),
	    ERR(400) },
	{ "Host port too big", IN("GET / HTTP/1.1\r\nHost: a:65536\r\n\r\n"),
	    ERR(400) },
	{ "Host port of six digits", IN("GET / HTTP/1.1\r\nHost: a:000080\r\n"
	    "\r\n"), ERR(400) },
	{ "Host port not a number", IN("GET / HTTP/1.1\r\nHost: a:b\r\n\r\n"),
	    ERR(400) },
	{ "Host two ports", IN("GET / HTTP/1.1\r\nHost: a:80:80\r\n\r\n"),
	    ERR(400) },
	{ "Host only a port", IN("GET / HTTP/1.1\r\nHost: :80\r\n\r\n"),
	    ERR(400) },
	{ "Host v6 unclosed", IN("GET / HTTP/1.1\r\nHost: [::1\r\n\r\n"),
	    ERR(400) },
	{ "Host v6 invalid", IN("GET / HTTP/1.1\r\nHost: [zz::1]\r\n\r\n"),
	    ERR(400) },
	{ "Host v6 not an address", IN("GET / HTTP/1.1\r\nHost: [1]\r\n\r\n"),
	    ERR(400) },
	{ "Host v6 empty", IN("GET / HTTP/1.1\r\nHost: []\r\n\r\n"), ERR(400) },
	{ "Host v6 then garbage", IN("GET / HTTP/1.1\r\nHost: [::1]x\r\n\r\n"),
	    ERR(400) },
	{ "Host bad escape", IN("GET / HTTP/1.1\r\nHost: a%4\r\n\r\n"),
	    ERR(400) },
	{ "Host bad escape 2", IN("GET / HTTP/1.1\r\nHost: a%zz\r\n\r\n"),
	    ERR(400) },
	{ "Host obs-text", IN("GET / HTTP/1.1\r\nHost: caf\xc3\xa9\r\n\r\n"),
	    ERR(400) },
	{ "Host with a backslash", IN("GET / HTTP/1.1\r\nHost: a\\b\r\n\r\n"),
	    ERR(400) },
	/* --- target forms --- */
	{ "authority-form without CONNECT", IN("GET example.com:80 HTTP/1.1\r\n"
	    H "\r\n"), ERR(400) },
	{ "* without OPTIONS", IN("GET * HTTP/1.1\r\n" H "\r\n"), ERR(400) },
	{ "*x with OPTIONS", IN("OPTIONS *x HTTP/1.1\r\n" H "\r\n"), ERR(400) },
	{ "CONNECT with origin-form", IN("CONNECT / HTTP/1.1\r\n" H "\r\n"),
	    ERR(400) },
	{ "CONNECT with *", IN("CONNECT * HTTP/1.1\r\n" H "\r\n"), ERR(400) },
	{ "CONNECT without a port", IN("CONNECT example.com HTTP/1.1\r\n" H
	    "\r\n"), ERR(400) },
	{ "CONNECT with an empty port", IN("CONNECT example.com: HTTP/1.1\r\n"
	    H "\r\n"), ERR(400) },
	{ "CONNECT with port 0", IN("CONNECT example.com:0 HTTP/1.1\r\n" H
	    "\r\n"), ERR(400) },
	{ "CONNECT without a host", IN("CONNECT :443 HTTP/1.1\r\n" H "\r\n"),
	    ERR(400) },
	{ "CONNECT with userinfo", IN("CONNECT u@example.com:443 HTTP/1.1\r\n"
	    H "\r\n"), ERR(400) },
	{ "CONNECT absolute-form", IN("CONNECT http://example.com:443/ "
	    "HTTP/1.1\r\n" H "\r\n"), ERR(400) },
	{ "absolute-form one slash", IN("GET http:/x HTTP/1.1\r\n" H "\r\n"),
	    ERR(400) },
	{ "absolute-form empty host", IN("GET http:// HTTP/1.1\r\n" H "\r\n"),
	    ERR(400) },
	{ "absolute-form empty host, path", IN("GET http:///etc/passwd "
	    "HTTP/1.1\r\n" H "\r\n"), ERR(400) },
	{ "absolute-form userinfo", IN("GET http://u:p@example.com/ "
	    "HTTP/1.1\r\n" H "\r\n"), ERR(400) },
	{ "absolute-form bad port", IN("GET http://a:99999/ HTTP/1.1\r\n" H
	    "\r\n"), ERR(400) },
	{ "absolute-form scheme with digit first", IN("GET 1http://a/ "
	    "HTTP/1.1\r\n" H "\r\n"), ERR(400) },
	{ "absolute-form scheme with _", IN("GET ht_tp://a/ HTTP/1.1\r\n" H
	    "\r\n"), ERR(400) },
	{ "relative target", IN("GET index.html HTTP/1.1\r\n" H "\r\n"),
	    ERR(400) },
	{ "target ?q", IN("GET ?q HTTP/1.1\r\n" H "\r\n"), ERR(400) },
	/* --- Expect --- */
	{ "Expect other", IN(POST "Expect: something\r\n\r\n"), ERR(417) },
	{ "Expect empty", IN(POST "Expect:\r\n\r\n"), ERR(417) },
	{ "Expect list", IN(POST "Expect: 100-continue, x\r\n\r\n"), ERR(417) },
	{ "Expect 100-continue=1", IN(POST "Expect: 100-continue=1\r\n\r\n"),
	    ERR(417) },
	{ "Expect other in 1.0", IN("GET / HTTP/1.0\r\nExpect: x\r\n\r\n"),
	    ERR(417) },
	{ "Expect twice, second bad", IN(POST "Expect: 100-continue\r\n"
	    "Expect: 200-ok\r\n\r\n"), ERR(417) },
};

#define OKH		"HTTP/1.1 200 OK\r\n"

static const struct hcase corpus_rsp[] CORPUS_UNUSED = {
	/* --- accepted --- */
	{ "200 with length", IN(OKH "Content-Length: 5\r\n\r\nhello"),
	    RSP(200, 1), NH(1), LEN(5), .hv = { "content-length", "5" } },
	{ "200 until close", IN(OKH "\r\nbody"), RSP(200, 1),
	    .framing = HTTP_BODY_CLOSE },
	{ "1.0 200 until close", IN("HTTP/1.0 200 OK\r\n\r\n"), RSP(200, 0),
	    .framing = HTTP_BODY_CLOSE },
	{ "no reason phrase", IN("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n"),
	    RSP(200, 1), NH(1), LEN(0) },
	{ "empty reason phrase", IN("HTTP/1.1 200 \r\nContent-Length: 0\r\n"
	    "\r\n"), RSP(200, 1), NH(1), LEN(0) },
	{ "reason with spaces", IN("HTTP/1.1 404 Not Found\r\n"
	    "Content-Length: 0\r\n\r\n"), RSP(404, 1), NH(1), LEN(0) },
	{ "reason with tab and obs-text", IN("HTTP/1.1 200 \xc3\x9c" "ber\tOK "
	    "\r\nContent-Length: 0\r\n\r\n"), RSP(200, 1), NH(1), LEN(0) },
	{ "reason with digits and colon", IN("HTTP/1.1 500 Error: 42\r\n"
	    "Content-Length: 0\r\n\r\n"), RSP(500, 1), NH(1), LEN(0) },
	{ "100 Continue", IN("HTTP/1.1 100 Continue\r\n\r\n"), RSP(100, 1) },
	{ "102 Processing", IN("HTTP/1.1 102 Processing\r\n\r\n"),
	    RSP(102, 1) },
	{ "103 Early Hints", IN("HTTP/1.1 103 Early Hints\r\n"
	    "Link: </s.css>; rel=preload\r\n\r\n"), RSP(103, 1), NH(1) },
	{ "1xx with length has no body", IN("HTTP/1.1 100 Continue\r\n"
	    "Content-Length: 5\r\n\r\n"), RSP(100, 1), NH(1), .cl = 5,
	    .flags = HTTP_F_CL },
	{ "1xx with chunked has no body", IN("HTTP/1.1 199 X\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n"), RSP(199, 1), NH(1),
	    .flags = HTTP_F_TE },
	{ "101 Switching Protocols", IN("HTTP/1.1 101 Switching Protocols\r\n"
	    "Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n"), RSP(101, 1),
	    NH(2), .framing = HTTP_BODY_TUNNEL, .flags = HTTP_F_UPGRADE },
	{ "101 with length", IN("HTTP/1.1 101 Switching Protocols\r\n"
	    "Content-Length: 5\r\n\r\n"), RSP(101, 1), NH(1),
	    .framing = HTTP_BODY_TUNNEL, .cl = 5, .flags = HTTP_F_CL },
	{ "204 with length", IN("HTTP/1.1 204 No Content\r\n"
	    "Content-Length: 5\r\n\r\n"), RSP(204, 1), NH(1), .cl = 5,
	    .flags = HTTP_F_CL },
	{ "204 with chunked", IN("HTTP/1.1 204 No Content\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n"), RSP(204, 1), NH(1),
	    .flags = HTTP_F_TE },
	{ "304 with length", IN("HTTP/1.1 304 Not Modified\r\n"
	    "Content-Length: 100\r\nETag: \"x\"\r\n\r\n"), RSP(304, 1), NH(2),
	    .cl = 100, .flags = HTTP_F_CL, .hv = { "etag", "\"x\"" } },
	{ "HEAD with length", IN(OKH "Content-Length: 100\r\n\r\n"),
	    .req_method = HTTP_M_HEAD, RSP(200, 1), NH(1), .cl = 100,
	    .flags = HTTP_F_CL },
	{ "HEAD with chunked", IN(OKH "Transfer-Encoding: chunked\r\n\r\n"),
	    .req_method = HTTP_M_HEAD, RSP(200, 1), NH(1), .flags = HTTP_F_TE },
	{ "HEAD 404 with length", IN("HTTP/1.1 404 Not Found\r\n"
	    "Content-Length: 9\r\n\r\n"), .req_method = HTTP_M_HEAD,
	    RSP(404, 1), NH(1), .cl = 9, .flags = HTTP_F_CL },
	{ "CONNECT 200", IN("HTTP/1.1 200 Connection established\r\n\r\n"),
	    .req_method = HTTP_M_CONNECT, RSP(200, 1),
	    .framing = HTTP_BODY_TUNNEL },
	{ "CONNECT 200 with length", IN(OKH "Content-Length: 5\r\n\r\n"),
	    .req_method = HTTP_M_CONNECT, RSP(200, 1), NH(1),
	    .framing = HTTP_BODY_TUNNEL, .cl = 5, .flags = HTTP_F_CL },
	{ "CONNECT 299", IN("HTTP/1.1 299 X\r\n\r\n"),
	    .req_method = HTTP_M_CONNECT, RSP(299, 1),
	    .framing = HTTP_BODY_TUNNEL },
	{ "CONNECT 407 with length", IN("HTTP/1.1 407 Proxy Auth\r\n"
	    "Content-Length: 2\r\n\r\nno"), .req_method = HTTP_M_CONNECT,
	    RSP(407, 1), NH(1), LEN(2) },
	{ "CONNECT 302 until close", IN("HTTP/1.1 302 Found\r\n\r\n"),
	    .req_method = HTTP_M_CONNECT, RSP(302, 1),
	    .framing = HTTP_BODY_CLOSE },
	{ "chunked", IN(OKH "Transfer-Encoding: chunked\r\n\r\n"
	    "5\r\nhello\r\n0\r\n\r\n"), RSP(200, 1), NH(1), CHUNKED },
	{ "TE and CL: chunked wins", IN(OKH "Content-Length: 5\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n"), RSP(200, 1), NH(2),
	    .framing = HTTP_BODY_CHUNKED, .cl = 5,
	    .flags = HTTP_F_TE | HTTP_F_CL | HTTP_F_BADFRAMING },
	{ "CL and TE: chunked wins", IN(OKH "Transfer-Encoding: chunked\r\n"
	    "Content-Length: 5\r\n\r\n"), RSP(200, 1), NH(2),
	    .framing = HTTP_BODY_CHUNKED, .cl = 5,
	    .flags = HTTP_F_TE | HTTP_F_CL | HTTP_F_BADFRAMING },
	{ "TE in 1.0", IN("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n"
	    "\r\n"), RSP(200, 0), NH(1), .framing = HTTP_BODY_CHUNKED,
	    .flags = HTTP_F_TE | HTTP_F_BADFRAMING },
	/* only chunked: another coding would reach the client undone */
	{ "TE gzip, chunked", IN(OKH "Transfer-Encoding: gzip, chunked\r\n"
	    "\r\n"), ERR(502) },
	{ "TE gzip", IN(OKH "Transfer-Encoding: gzip\r\n\r\n"), ERR(502) },
	{ "TE chunked, gzip", IN(OKH "Transfer-Encoding: chunked, gzip\r\n"
	    "\r\n"), ERR(502) },
	{ "TE chunked twice", IN(OKH "Transfer-Encoding: chunked\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n"), ERR(502) },
	{ "TE empty", IN(OKH "Transfer-Encoding:\r\n\r\n"), ERR(502) },
	{ "TE xchunked", IN(OKH "Transfer-Encoding: xchunked\r\n\r\n"),
	    ERR(502) },
	{ "TE chunked;x=1", IN(OKH "Transfer-Encoding: chunked;x=1\r\n"
	    "\r\n"), ERR(502) },
	{ "TE quoted", IN(OKH "Transfer-Encoding: \"chunked\"\r\n\r\n"),
	    ERR(502) },
	{ "TE gzip and CL", IN(OKH "Transfer-Encoding: gzip\r\n"
	    "Content-Length: 5\r\n\r\n"), ERR(502) },
	{ "TE Chunked", IN(OKH "Transfer-Encoding: Chunked\r\n\r\n"),
	    RSP(200, 1), NH(1), CHUNKED },
	{ "TE \\tchunked ", IN(OKH "Transfer-Encoding:\tchunked \r\n\r\n"),
	    RSP(200, 1), NH(1), CHUNKED },
	{ "length 0", IN(OKH "Content-Length: 0\r\n\r\n"), RSP(200, 1), NH(1),
	    LEN(0) },
	{ "CL \"5, 5\"", IN(OKH "Content-Length: 5, 5\r\n\r\nhello"),
	    RSP(200, 1), NH(1), LEN(5) },
	{ "CL twice, same", IN(OKH "Content-Length: 5\r\nContent-Length: 5\r\n"
	    "\r\nhello"), RSP(200, 1), NH(2), LEN(5) },
	{ "CL 19 digits", IN(OKH "Content-Length: 9999999999999999999\r\n"
	    "\r\n"), RSP(200, 1), NH(1), LEN(9999999999999999999ULL) },
	{ "599", IN("HTTP/1.1 599 X\r\n\r\n"), RSP(599, 1),
	    .framing = HTTP_BODY_CLOSE },
	{ "Connection close", IN(OKH "Connection: close\r\n"
	    "Content-Length: 0\r\n\r\n"), RSP(200, 1), NH(2),
	    .framing = HTTP_BODY_LENGTH, .flags = HTTP_F_CL | HTTP_F_CLOSE },
	{ "Connection keep-alive", IN("HTTP/1.0 200 OK\r\n"
	    "Connection: keep-alive\r\nContent-Length: 0\r\n\r\n"), RSP(200, 0),
	    NH(2), .framing = HTTP_BODY_LENGTH,
	    .flags = HTTP_F_CL | HTTP_F_KEEPALIVE },
	{ "Set-Cookie twice", IN(OKH "Set-Cookie: a=1\r\nSet-Cookie: b=2\r\n"
	    "Content-Length: 0\r\n\r\n"), RSP(200, 1), NH(3), LEN(0),
	    .hv = { "set-cookie", "a=1" } },
	{ "Host is not checked in responses", IN(OKH "Host: a b, c\r\n"
	    "Host: d\r\n\r\n"), RSP(200, 1), NH(2),
	    .framing = HTTP_BODY_CLOSE },
	{ "Expect is not checked in responses", IN(OKH "Expect: x\r\n\r\n"),
	    RSP(200, 1), NH(1), .framing = HTTP_BODY_CLOSE },
	{ "obs-text value", IN(OKH "X: \x80\xff\r\n\r\n"), RSP(200, 1), NH(1),
	    .framing = HTTP_BODY_CLOSE, .hv = { "x", "\x80\xff" } },
	{ "value trimmed", IN(OKH "X:  a  \r\n\r\n"), RSP(200, 1), NH(1),
	    .framing = HTTP_BODY_CLOSE, .hv = { "x", "a" } },
	{ "20 fields", IN("HTTP/1.1 200 OK\r\n"
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
	    "Connection: keep-alive\r\n\r\n"
	    "<html><body><h1>It works!</h1></body></html>\r\n\r\n\r\n"),
	    RSP(200, 1), NH(20), .framing = HTTP_BODY_LENGTH, .cl = 51,
	    .flags = HTTP_F_CL | HTTP_F_KEEPALIVE,
	    .hv = { "server", "Apache/2.4.1 (Unix)", "age", "12" } },
	{ "long reason at the limit", IN("HTTP/1.1 200 {REP}\r\n\r\n"),
	    .rep = "r", .nrep = 8192 - 13, RSP(200, 1),
	    .framing = HTTP_BODY_CLOSE },
	{ "incomplete", IN(OKH "Content-Length: 5\r\n"), AGAIN },
	{ "incomplete status", IN("HTTP/1.1 20"), AGAIN },
	{ "incomplete version", IN("HTTP/1."), AGAIN },

	/* --- refused: 502 --- */
	{ "two-digit status", IN("HTTP/1.1 20 OK\r\n\r\n"), ERR(502) },
	{ "four-digit status", IN("HTTP/1.1 2000 OK\r\n\r\n"), ERR(502) },
	{ "status not a number", IN("HTTP/1.1 abc OK\r\n\r\n"), ERR(502) },
	{ "status 099", IN("HTTP/1.1 099 X\r\n\r\n"), ERR(502) },
	{ "status 000", IN("HTTP/1.1 000 X\r\n\r\n"), ERR(502) },
	{ "status 600", IN("HTTP/1.1 600 X\r\n\r\n"), ERR(502) },
	{ "status 999", IN("HTTP/1.1 999\r\n\r\n"), ERR(502) },
	{ "status with sign", IN("HTTP/1.1 +20 OK\r\n\r\n"), ERR(502) },
	{ "status 2x0", IN("HTTP/1.1 2x0 OK\r\n\r\n"), ERR(502) },
	{ "no space before status", IN("HTTP/1.1200 OK\r\n\r\n"), ERR(502) },
	{ "two spaces before status", IN("HTTP/1.1  200 OK\r\n\r\n"),
	    ERR(502) },
	{ "no space after status", IN("HTTP/1.1 200OK\r\n\r\n"), ERR(502) },
	{ "tab after status", IN("HTTP/1.1 200\tOK\r\n\r\n"), ERR(502) },
	{ "no status", IN("HTTP/1.1\r\n\r\n"), ERR(502) },
	{ "HTTP/2.0", IN("HTTP/2.0 200 OK\r\n\r\n"), ERR(502) },
	{ "HTTP/1.2", IN("HTTP/1.2 200 OK\r\n\r\n"), RSP(200, 1),
	    .framing = HTTP_BODY_CLOSE },
	{ "HTTP/0.9", IN("HTTP/0.9 200 OK\r\n\r\n"), ERR(502) },
	{ "HTTP/1.1x", IN("HTTP/1.1x 200 OK\r\n\r\n"), ERR(502) },
	{ "HTTPS/1.1", IN("HTTPS/1.1 200 OK\r\n\r\n"), ERR(502) },
	{ "http/1.1", IN("http/1.1 200 OK\r\n\r\n"), ERR(502) },
	{ "HTTP/1", IN("HTTP/1 200 OK\r\n\r\n"), ERR(502) },
	{ "ICY", IN("ICY 200 OK\r\n\r\n"), ERR(502) },
	{ "leading CRLF", IN("\r\nHTTP/1.1 200 OK\r\n\r\n"), ERR(502) },
	{ "leading space", IN(" HTTP/1.1 200 OK\r\n\r\n"), ERR(502) },
	{ "bare LF after status line", IN("HTTP/1.1 200 OK\n\r\n"), ERR(502) },
	{ "bare LF everywhere", IN("HTTP/1.1 200 OK\nContent-Length: 0\n\n"),
	    ERR(502) },
	{ "bare LF after a field", IN(OKH "Content-Length: 0\n\r\n"),
	    ERR(502) },
	{ "bare CR in the reason", IN("HTTP/1.1 200 O\rK\r\n\r\n"), ERR(502) },
	{ "NUL in the reason", IN("HTTP/1.1 200 O\0K\r\n\r\n"), ERR(502) },
	{ "SOH in the reason", IN("HTTP/1.1 200 O\x01K\r\n\r\n"), ERR(502) },
	{ "DEL in the reason", IN("HTTP/1.1 200 O\x7fK\r\n\r\n"), ERR(502) },
	{ "reason too long", IN("HTTP/1.1 200 {REP}\r\n\r\n"), .rep = "r",
	    .nrep = 8192, ERR(502) },
	{ "CL differing", IN(OKH "Content-Length: 5\r\nContent-Length: 6\r\n"
	    "\r\n"), ERR(502) },
	{ "CL \"5, 6\"", IN(OKH "Content-Length: 5, 6\r\n\r\n"), ERR(502) },
	{ "CL +5", IN(OKH "Content-Length: +5\r\n\r\n"), ERR(502) },
	{ "CL -1", IN(OKH "Content-Length: -1\r\n\r\n"), ERR(502) },
	{ "CL empty", IN(OKH "Content-Length:\r\n\r\n"), ERR(502) },
	{ "CL \"5 5\"", IN(OKH "Content-Length: 5 5\r\n\r\n"), ERR(502) },
	{ "CL 20 digits", IN(OKH "Content-Length: 18446744073709551616\r\n"
	    "\r\n"), ERR(502) },
	{ "CL on a 204 still checked", IN("HTTP/1.1 204 No Content\r\n"
	    "Content-Length: x\r\n\r\n"), ERR(502) },
	{ "CL on a HEAD response still checked", IN(OKH
	    "Content-Length: 1, 2\r\n\r\n"), .req_method = HTTP_M_HEAD,
	    ERR(502) },
	{ "obs-fold", IN(OKH "X: a\r\n b\r\n\r\n"), ERR(502) },
	{ "obs-fold in TE", IN(OKH "Transfer-Encoding:\r\n chunked\r\n\r\n"),
	    ERR(502) },
	{ "space before colon", IN(OKH "Content-Length : 5\r\n\r\n"),
	    ERR(502) },
	{ "empty name", IN(OKH ": x\r\n\r\n"), ERR(502) },
	{ "NUL in a name", IN(OKH "X\0: x\r\n\r\n"), ERR(502) },
	{ "NUL in a value", IN(OKH "X: a\0\r\n\r\n"), ERR(502) },
	{ "bare CR in a value", IN(OKH "X: a\rb\r\n\r\n"), ERR(502) },
	{ "DEL in a value", IN(OKH "X: \x7f\r\n\r\n"), ERR(502) },
	{ "invalid Connection", IN(OKH "Connection: a b\r\n\r\n"), ERR(502) },
	{ "too many fields", IN(OKH "{REP}\r\n"), .rep = "X: 1\r\n",
	    .nrep = 101, ERR(502) },
	{ "header block too large", IN(OKH "X: {REP}\r\n\r\n"), .rep = "v",
	    .nrep = 33000, ERR(502) },
	{ "header block too large, small limit", IN(OKH "X: {REP}\r\n\r\n"),
	    .rep = "v", .nrep = 300, .lim = L_SMALL, ERR(502) },
	{ "too many fields, small limit", IN(OKH "{REP}\r\n"),
	    .rep = "X: 1\r\n", .nrep = 6, .lim = L_SMALL, ERR(502) },
	{ "request line as a response", IN("GET / HTTP/1.1\r\n\r\n"),
	    ERR(502) },
	{ "status line only LF", IN("HTTP/1.1 200 OK\n\n"), ERR(502) },
};

/* Chunked bodies */
struct ccase {
	const char	*name;
	const char	*in;
	size_t		 len;
	const char	*rep;
	int		 nrep;
	int		 rc;		/* 1 done, 0 more, -1 error */
	const char	*data;		/* decoded */
	size_t		 datalen;
	size_t		 left;		/* bytes after the end */
	uint32_t	 trailer_max;	/* 0: default */
	int		 ntrailers;
};

#define DATA(s)		.data = (s), .datalen = sizeof(s) - 1
#define CDONE		.rc = 1
#define CMORE		.rc = 0
#define CERR		.rc = -1

static const struct ccase corpus_chunked[] CORPUS_UNUSED = {
	{ "one chunk", IN("5\r\nhello\r\n0\r\n\r\n"), CDONE, DATA("hello") },
	{ "no data", IN("0\r\n\r\n"), CDONE, DATA("") },
	{ "two chunks", IN("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"), CDONE,
	    DATA("hello world") },
	{ "hex lower", IN("a\r\n0123456789\r\n0\r\n\r\n"), CDONE,
	    DATA("0123456789") },
	{ "hex upper", IN("A\r\n0123456789\r\n0\r\n\r\n"), CDONE,
	    DATA("0123456789") },
	{ "hex 1f", IN("1f\r\n0123456789012345678901234567890\r\n0\r\n\r\n"),
	    CDONE, DATA("0123456789012345678901234567890") },
	{ "leading zeros", IN("005\r\nhello\r\n000\r\n\r\n"), CDONE,
	    DATA("hello") },
	{ "15 digits", IN("000000000000005\r\nhello\r\n0\r\n\r\n"), CDONE,
	    DATA("hello") },
	{ "data with CRLF inside", IN("4\r\n\r\n\r\n\r\n0\r\n\r\n"), CDONE,
	    DATA("\r\n\r\n") },
	{ "data with NUL", IN("3\r\na\0b\r\n0\r\n\r\n"), CDONE, DATA("a\0b") },
	{ "extension", IN("5;a=b\r\nhello\r\n0\r\n\r\n"), CDONE,
	    DATA("hello") },
	{ "extension without value", IN("5;a\r\nhello\r\n0;z\r\n\r\n"), CDONE,
	    DATA("hello") },
	{ "extensions, BWS", IN("5 ; a = b ;c\t;d=\"e\"\r\nhello\r\n0\r\n\r\n"),
	    CDONE, DATA("hello") },
	{ "extension quoted", IN("5;a=\"q s;\\\"\\\\\"\r\nhello\r\n0\r\n\r\n"),
	    CDONE, DATA("hello") },
	{ "extension quoted obs-text", IN("5;a=\"\xc3\xa9\"\r\nhello\r\n"
	    "0\r\n\r\n"), CDONE, DATA("hello") },
	{ "trailer", IN("5\r\nhello\r\n0\r\nX-T: v\r\n\r\n"), CDONE,
	    DATA("hello"), .ntrailers = 1 },
	{ "two trailers", IN("0\r\nA: 1\r\nB:\r\n\r\n"), CDONE, DATA(""),
	    .ntrailers = 2 },
	{ "next message after", IN("1\r\nx\r\n0\r\n\r\nGET / HTTP/1.1\r\n"),
	    CDONE, DATA("x"), .left = 16 },
	{ "next message after trailer", IN("0\r\nA: b\r\n\r\nHTTP"), CDONE,
	    DATA(""), .left = 4, .ntrailers = 1 },
	{ "CRLF after the end is the next message's", IN("0\r\n\r\n\r\n"),
	    CDONE, DATA(""), .left = 2 },
	{ "trailer at the limit", IN("0\r\nAB: cd\r\n\r\n"), CDONE, DATA(""),
	    .trailer_max = 5, .ntrailers = 1 },
	{ "incomplete size", IN("5"), CMORE, DATA("") },
	{ "incomplete data", IN("5\r\nhel"), CMORE, DATA("hel") },
	{ "incomplete after data", IN("5\r\nhello\r"), CMORE, DATA("hello") },
	{ "incomplete last chunk", IN("5\r\nhello\r\n0\r\n"), CMORE,
	    DATA("hello") },
	{ "incomplete end", IN("0\r\n\r"), CMORE, DATA("") },
	{ "incomplete trailer", IN("0\r\nX: y"), CMORE, DATA("") },
	{ "huge size wants more", IN("fffffffffffffff\r\nabc"), CMORE,
	    DATA("abc") },
	{ "empty", IN(""), CMORE, DATA("") },

	{ "missing size", IN("\r\nhello\r\n0\r\n\r\n"), CERR },
	{ "non-hex size", IN("g\r\n"), CERR },
	{ "0x prefix", IN("0x5\r\nhello\r\n0\r\n\r\n"), CERR },
	{ "negative size", IN("-5\r\nhello\r\n"), CERR },
	{ "plus size", IN("+5\r\nhello\r\n"), CERR },
	{ "leading space", IN(" 5\r\nhello\r\n"), CERR },
	{ "space after size", IN("5 \r\nhello\r\n0\r\n\r\n"), CERR },
	{ "tab after size", IN("5\t\r\nhello\r\n0\r\n\r\n"), CERR },
	{ "space inside size", IN("1 0\r\n"), CERR },
	{ "16 digits", IN("0000000000000005\r\nhello\r\n"), CERR },
	{ "size overflow", IN("10000000000000000\r\n"), CERR },
	{ "size overflow 2^64", IN("ffffffffffffffffff\r\n"), CERR },
	{ "bare LF after size", IN("5\nhello\r\n0\r\n\r\n"), CERR },
	{ "bare CR after size", IN("5\rhello\r\n0\r\n\r\n"), CERR },
	{ "extension with CTL", IN("5;a\x01\r\nhello\r\n"), CERR },
	{ "extension with NUL", IN("5;a=\0\r\nhello\r\n"), CERR },
	{ "extension with bare LF", IN("5;a\nhello\r\n0\r\n\r\n"), CERR },
	{ "extension LF in quotes", IN("5;a=\"\n\"\r\nhello\r\n"), CERR },
	{ "extension unterminated quote", IN("5;a=\"x\r\nhello\r\n0\r\n\r\n"),
	    CERR },
	{ "extension without name", IN("5;=b\r\nhello\r\n"), CERR },
	{ "extension empty", IN("5;\r\nhello\r\n"), CERR },
	{ "extension name with space", IN("5;a b\r\nhello\r\n"), CERR },
	{ "extension value with space", IN("5;a=b c\r\nhello\r\n"), CERR },
	{ "extension value empty", IN("5;a=\r\nhello\r\n"), CERR },
	{ "extension trailing space", IN("5;a=b \r\nhello\r\n"), CERR },
	{ "extension two =", IN("5;a==b\r\nhello\r\n"), CERR },
	{ "extension with @", IN("5;a=b@c\r\nhello\r\n"), CERR },
	{ "extension too long", IN("5;a={REP}\r\nhello\r\n0\r\n\r\n"),
	    .rep = "x", .nrep = 5000, CERR },
	{ "missing CRLF after data", IN("5\r\nhelloX\r\n0\r\n\r\n"), CERR },
	{ "data longer than size", IN("3\r\nhello\r\n0\r\n\r\n"), CERR },
	{ "data shorter than size", IN("6\r\nhello\r\n0\r\n\r\n"), CERR },
	{ "LF after data", IN("5\r\nhello\n0\r\n\r\n"), CERR },
	{ "CR without LF after data", IN("5\r\nhello\rX0\r\n\r\n"), CERR },
	{ "bare LF after last chunk", IN("0\n\r\n"), CERR },
	{ "bare LF at the end", IN("0\r\n\n"), CERR },
	{ "bare CR at the end", IN("0\r\n\rX"), CERR },
	{ "trailer obs-fold", IN("0\r\nA: b\r\n c\r\n\r\n"), CERR },
	{ "trailer space before colon", IN("0\r\nA : b\r\n\r\n"), CERR },
	{ "trailer empty name", IN("0\r\n: b\r\n\r\n"), CERR },
	{ "trailer without colon", IN("0\r\nAB\r\n\r\n"), CERR },
	{ "trailer NUL", IN("0\r\nA: \0\r\n\r\n"), CERR },
	{ "trailer bare LF", IN("0\r\nA: b\n\r\n"), CERR },
	{ "trailer bare CR", IN("0\r\nA: b\rc\r\n\r\n"), CERR },
	{ "trailer too large", IN("0\r\nAB: cde\r\n\r\n"), .trailer_max = 5,
	    CERR },
	{ "too many trailers", IN("0\r\n{REP}\r\n"), .rep = "A: b\r\n",
	    .nrep = 101, CERR },
	{ "LF only", IN("5\nhello\n0\n\n"), CERR },
	{ "chunk-size in decimal words", IN("five\r\nhello\r\n"), CERR },
};

/*
 * The bytes of a case (a "{REP}" expanded), malloc'd, exactly *lenp long.
 * NULL on allocation failure.
 */
static char * CORPUS_UNUSED
corpus_input(const char *in, size_t len, const char *rep, int nrep,
    size_t *lenp)
{
	const char	*at = NULL;
	char		*out, *w;
	size_t		 rl = 0, n, i;

	if (nrep > 0) {
		rl = strlen(rep);
		for (i = 0; i + 5 <= len; i++)
			if (memcmp(in + i, "{REP}", 5) == 0) {
				at = in + i;
				break;
			}
	}
	if (at == NULL) {
		if ((out = malloc(len ? len : 1)) == NULL)
			return (NULL);
		memcpy(out, in, len);
		*lenp = len;
		return (out);
	}
	n = len - 5 + rl * nrep;
	if ((out = malloc(n)) == NULL)
		return (NULL);
	w = out;
	memcpy(w, in, at - in);
	w += at - in;
	for (i = 0; i < (size_t)nrep; i++, w += rl)
		memcpy(w, rep, rl);
	memcpy(w, at + 5, len - (at - in) - 5);
	*lenp = n;
	return (out);
}

#endif
