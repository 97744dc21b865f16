/*
 * http.h: the HTTP/1.1 message parser and its helpers (RFC 9110, 9112).
 *
 * The parser is a resumable state machine over the bytes of one message
 * head: call http_parse() again with the same message start and more
 * bytes, and it goes on where it stopped.  It never reads past the
 * length it is given and copies nothing: the request line and the header
 * fields are recorded as offsets from the start of the message, so the
 * caller may move its buffer between calls.
 *
 * It is strict, because the security of every proxy behind it rests on
 * framing being read one way only: bare LF, bare CR, obs-fold, whitespace
 * before a colon, control bytes in values, a Transfer-Encoding that does
 * not end in chunked, Transfer-Encoding with Content-Length, differing or
 * malformed Content-Length, a missing or repeated Host are all refused,
 * with the status to answer in msg->error and the reason in msg->errmsg.
 */
#ifndef COMMON_HTTP_H
#define COMMON_HTTP_H

#include <sys/types.h>
#include <stdint.h>
#include "buf.h"
#include "compat.h"

/* Defaults of the limits; each has a conf setting (see http_limits). */
#define HTTP_MAXREQLINE		8192		/* request line, 414 above */
#define HTTP_MAXHEAD		(32 * 1024)	/* header block, 431 above */
#define HTTP_MAXHEADERS		100		/* fields, 431 above */
#define HTTP_MAXHEADERS_HARD	1000		/* highest accepted setting */
#define HTTP_MAXBODY		(1024 * 1024)	/* request body, 413 above */
#define HTTP_MAXCHUNKLINE	4096		/* chunk size + extensions */
#define HTTP_MAXMETHOD		32		/* method name, 501 above */
#define HTTP_HEADER_TIMEOUT	10000		/* ms to receive a head, 408 */
#define HTTP_BODY_TIMEOUT	30000		/* ms between body reads */
#define HTTP_IDLE_TIMEOUT	60000		/* ms keep-alive idle */
#define HTTP_SEND_TIMEOUT	60000		/* ms without write progress */

struct http_limits {
	uint32_t	max_reqline;
	uint32_t	max_head;
	uint32_t	max_headers;
	uint64_t	max_body;		/* 0: no limit */
	uint32_t	header_timeout;		/* ms */
	uint32_t	body_timeout;
	uint32_t	idle_timeout;
	uint32_t	send_timeout;
};

extern const struct http_limits http_default_limits;

enum http_method {
	HTTP_M_OTHER = 0,
	HTTP_M_GET,
	HTTP_M_HEAD,
	HTTP_M_POST,
	HTTP_M_PUT,
	HTTP_M_DELETE,
	HTTP_M_CONNECT,
	HTTP_M_OPTIONS,
	HTTP_M_TRACE,
	HTTP_M_PATCH
};

enum http_target_form {
	HTTP_T_ORIGIN = 1,	/* /path?query */
	HTTP_T_ABSOLUTE,	/* http://host/path */
	HTTP_T_AUTHORITY,	/* host:port, CONNECT only */
	HTTP_T_ASTERISK		/* *, OPTIONS only */
};

/* How the body of a message is delimited (RFC 9112 section 6.3). */
enum http_framing {
	HTTP_BODY_NONE = 0,
	HTTP_BODY_LENGTH,	/* Content-Length */
	HTTP_BODY_CHUNKED,
	HTTP_BODY_CLOSE,	/* responses: until the connection closes */
	HTTP_BODY_TUNNEL	/* 2xx to CONNECT, 101: raw bytes */
};

/* http_msg.flags */
#define HTTP_F_CLOSE		0x0001	/* Connection: close */
#define HTTP_F_KEEPALIVE	0x0002	/* Connection: keep-alive */
#define HTTP_F_UPGRADE		0x0004	/* Connection: upgrade + Upgrade */
#define HTTP_F_CONTINUE		0x0008	/* Expect: 100-continue */
#define HTTP_F_TE		0x0010	/* Transfer-Encoding present */
#define HTTP_F_CL		0x0020	/* Content-Length present */
#define HTTP_F_CONN_OTHER	0x0040	/* Connection names other fields */
#define HTTP_F_BADFRAMING	0x0080	/* response: TE + CL; close after */
#define HTTP_F_AUTH		0x0100	/* request: Authorization present */

/* A field: offsets from the start of the message. */
struct http_hdr {
	uint32_t	name;
	uint16_t	namelen;
	uint16_t	flags;		/* HTTP_H_* */
	uint32_t	value;
	uint32_t	valuelen;
};

/* http_hdr.flags: fields the parser recognised */
#define HTTP_H_HOST		0x0001
#define HTTP_H_CL		0x0002
#define HTTP_H_TE		0x0004
#define HTTP_H_CONNECTION	0x0008
#define HTTP_H_UPGRADE		0x0010
#define HTTP_H_EXPECT		0x0020
#define HTTP_H_KEEPALIVE	0x0040
#define HTTP_H_HOPBYHOP		0x0080	/* also named by Connection */
#define HTTP_H_TRAILER		0x0100
#define HTTP_H_PROXYCONN	0x0200
#define HTTP_H_TEHDR		0x0400	/* the TE request field */

struct http_msg {
	/* set before the first call */
	int			 response;	/* parse a status line */
	enum http_method	 req_method;	/* responses: of the request */
	const struct http_limits *lim;
	struct http_hdr		*hdrs;		/* room for lim->max_headers */

	/* parser state */
	int			 state;
	uint32_t		 pos;		/* next byte to look at */
	uint32_t		 mark;		/* start of the current token */
	uint32_t		 mark2;

	/* results */
	enum http_method	 method;
	uint32_t		 method_off, method_len;
	uint32_t		 target_off, target_len;
	enum http_target_form	 form;
	int			 minor;		/* HTTP/1.<minor> */
	int			 status;
	uint32_t		 reason_off, reason_len;
	int			 nhdrs;
	int			 host;		/* index of Host, -1 */
	uint32_t		 flags;
	enum http_framing	 framing;
	uint64_t		 content_length;
	uint32_t		 head_len;	/* bytes of the head, CRLFs included */
	uint32_t		 skipped;	/* leading empty lines */
	int			 error;		/* status to answer, 0 */
	const char		*errmsg;
};

enum http_parse_rc {
	HTTP_AGAIN = 0,		/* need more bytes */
	HTTP_DONE = 1,		/* head complete: msg->head_len */
	HTTP_ERROR = -1		/* msg->error, msg->errmsg */
};

void	 http_msg_init(struct http_msg *, int, const struct http_limits *,
	    struct http_hdr *);
int	 http_parse(struct http_msg *, const char *, size_t);

/* Chunked transfer coding, decoded incrementally. */
struct http_chunked {
	int		state;
	uint64_t	size;		/* bytes left in the current chunk */
	uint32_t	linelen;	/* bytes of the current size line */
	uint32_t	trailer;	/* bytes of trailer fields so far */
	uint32_t	trailer_max;
	int		ntrailers;
	uint64_t	total;		/* data bytes so far */
	int		done;
	int		error;
	const char	*errmsg;
};

void	 http_chunked_init(struct http_chunked *, uint32_t);
ssize_t	 http_chunked_next(struct http_chunked *, const char *, size_t,
	    size_t *, size_t *);
void	 http_chunked_unget(struct http_chunked *, size_t);

/* Helpers on parsed messages */
struct slice http_msg_slice(const char *, uint32_t, uint32_t);
int	 http_hdr_is(const char *, const struct http_hdr *, const char *);
int	 http_find(const struct http_msg *, const char *, const char *, int);
struct slice http_hdr_value(const char *, const struct http_hdr *);
int	 http_list_has(struct slice, const char *);
const char *http_conf_field_check(const char *, const char *);
const char *http_method_name(enum http_method);
const char *http_reason(int);
int	 http_token_eq(const char *, size_t, const char *);

/* Request targets */

#define HTTP_MAXPATH	4096		/* decoded, normalized path */

struct http_target {
	char		 path[HTTP_MAXPATH];	/* decoded and normalized */
	size_t		 pathlen;
	const char	*query;		/* raw, after '?', in the message */
	size_t		 querylen;
	int		 had_query;
	int		 dotseg;	/* the path had "." or ".." segments */
};

int	 http_pct_decode(const char *, size_t, char *, size_t, size_t *, int);
size_t	 http_path_normalize(char *, size_t);
int	 http_host_ok(const char *);
int	 http_target_parse(const char *, size_t, struct http_target *,
	    const char **);
void	 http_absolute_split(const char *, size_t, struct slice *,
	    struct slice *);
int	 http_authority_parse(const char *, size_t, struct slice *,
	    int *);
int	 http_host_valid(const char *, size_t);

/* Dates */
const char *http_date_now(void);
void	 http_date_fmt(time_t, char *, size_t);
time_t	 http_date_parse(const char *, size_t);

#endif
