/*
 * client.c: the client library (dbrep.h), over the client protocol of
 * frame.c.
 *
 * A handle keeps one connection per node, opened on first use and kept
 * for the next requests; before it reuses one it checks that the node
 * has not closed it meanwhile.  I/O blocks, bounded by the handle's
 * timeout; connecting (up to the HELLO and the authentication) by the
 * shorter connect timeout, so that a node that accepts but does not
 * answer (stopped, cut off) does not hold the request: the node is then
 * tried last for a while.  A request that fails before it was sent moves
 * on to the next node of its route; once a write was sent, a lost
 * connection is reported (DBREP_ELOST), never retried; a read is sent
 * once more on a new connection to the same node, then to the next node.
 *
 * Finding the primary after a failover: a replica's SQLITE_READONLY
 * names its primary, which is tried next; the handle keeps the latest
 * epoch it saw a writable primary at (HELLO) and tries that node first
 * for writes, and sends the epoch with every request, so that an old
 * primary still taking writes learns of its successor and stops.  After
 * a write failed without an answer that settles it (indeterminate, lost,
 * timed out, no node), the next one first reconnects to every node, to
 * read their HELLOs afresh.
 *
 * A node written "tls://address?ca=...&name=...&verify=no" speaks TLS
 * (link.c): the handshake, with the certificate checked, is part of
 * connecting, and the secret's challenge-response follows inside it.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <arpa/inet.h>

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "event.h"
#include "tls.h"
#include "dbrepd.h"

#define CL_MAXNODES	16
#define CL_INMAX	(DBREP_MAXFRAME + 64)

struct node {
	int		 role;		/* DBREP_PRIMARY, _REPLICA, _ANY */
	struct net_addr	 addr;
	struct sock	 sk;		/* fd -1: not connected */
	struct tls_ctx	*tls;		/* NULL: plain */
	int		 tls_own;	/* tls is this node's to free */
	char		*tls_name;	/* the certificate's name, NULL */
	int		 tls_named;	/* given by name= */
	struct buf	 in;
	struct hello	 hello;		/* its last, or zeros */
	uint64_t	 down_until;	/* mono ms: try it last */
};

struct dbrep {
	struct node	 nodes[CL_MAXNODES];
	int		 nnodes;
	char		*secret;
	size_t		 secretlen;
	int		 timeout;
	int		 ctimeout;	/* connect, HELLO, AUTH */
	int		 lsnwait;
	unsigned	 busy_us;	/* dbrep_set_busy_poll() */
	uint64_t	 lsn;
	uint64_t	 wepoch;	/* latest of a writable primary */
	int		 rediscover;	/* read every HELLO again */
	uint64_t	 rediscovered;	/* mono ms, the last time */
	struct buf	 out;
};

struct dbrep_req {
	struct buf	 b;
	uint32_t	 nstmts;
	size_t		 np_off;	/* the current statement's count */
	uint32_t	 np;
	int		 err;
};

struct dbrep_set {
	int			 ncols;
	char			**names;
	size_t			 nrows;
	struct dbrep_value	*vals;
};

struct dbrep_result {
	uint64_t		 lsn;
	int64_t			 changes;
	int64_t			 rowid;
	char			 node[DBREP_NAMELEN];
	int			 nsets;
	struct dbrep_set	*sets;
	char			*arena;
};

static void
seterr(struct dbrep_error *e, int code, const char *fmt, ...)
    __printflike(3, 4);

static void
seterr(struct dbrep_error *e, int code, const char *fmt, ...)
{
	va_list	ap;

	if (e == NULL)
		return;
	memset(e, 0, sizeof(*e));
	e->code = e->extended = code;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
}

const char *
dbrep_strerror(int code)
{
	switch (code) {
	case DBREP_OK:
		return ("no error");
	case DBREP_ECONNECT:
		return ("no node could be reached");
	case DBREP_EPROTO:
		return ("protocol error");
	case DBREP_EAUTH:
		return ("authentication failed");
	case DBREP_ETIMEOUT:
		return ("timed out");
	case DBREP_EINDETERMINATE:
		return ("committed on the primary, not confirmed by the "
		    "quorum");
	case DBREP_ELSNWAIT:
		return ("minimum LSN not reached");
	case DBREP_ENOTREPLICABLE:
		return ("not replicable");
	case DBREP_ETOOBIG:
		return ("too large");
	case DBREP_EUNAVAIL:
		return ("node unavailable");
	case DBREP_EUSAGE:
		return ("bad usage");
	case DBREP_ELOST:
		return ("connection lost; outcome unknown");
	default:
		return (code < 1000 ? sqlite3_errstr(code) : "unknown error");
	}
}

/*
 * A node's TLS settings, from "tls://address?ca=PATH&name=NAME&verify=no"
 * (the part after the '?', modified in place).  Without a name, a host
 * name in the address is the name; an IP address must be in the
 * certificate.  Returns 0, or -1 with <e> filled.
 */
static int
node_tls(struct node *n, const char *text, const char *host, char *opts,
    struct dbrep_error *e)
{
	const char	*ca = NULL, *name = NULL;
	char		*o, *v, err[512];
	int		 verify = 1;
	struct in6_addr	 ip;

	while (opts != NULL && (o = strsep(&opts, "&")) != NULL) {
		if (*o == '\0')
			continue;
		if ((v = strchr(o, '=')) == NULL) {
			seterr(e, DBREP_EUSAGE, "%s: %s: expected ca=, name= "
			    "or verify=", text, o);
			return (-1);
		}
		*v++ = '\0';
		if (strcmp(o, "ca") == 0)
			ca = v;
		else if (strcmp(o, "name") == 0)
			name = v;
		else if (strcmp(o, "verify") == 0 && (strcmp(v, "yes") == 0 ||
		    strcmp(v, "no") == 0))
			verify = strcmp(v, "yes") == 0;
		else {
			seterr(e, DBREP_EUSAGE, "%s: %s=%s: expected ca=, "
			    "name= or verify=yes|no", text, o, v);
			return (-1);
		}
	}
	if (name == NULL && inet_pton(AF_INET, host, &ip) != 1 &&
	    inet_pton(AF_INET6, host, &ip) != 1)
		name = host;
	if ((n->tls = tls_client_new(ca, verify, err, sizeof(err))) == NULL) {
		seterr(e, DBREP_EUSAGE, "%s: %s", text, err);
		return (-1);
	}
	n->tls_own = 1;
	n->tls_named = name != NULL && name != host;
	if (name != NULL && (n->tls_name = strdup(name)) == NULL) {
		seterr(e, SQLITE_NOMEM, "out of memory");
		return (-1);
	}
	return (0);
}

static void
node_free(struct node *n)
{
	if (n->tls_own)
		tls_free(n->tls);
	n->tls = NULL;
	n->tls_own = 0;
	free(n->tls_name);
	n->tls_name = NULL;
	buf_free(&n->in);
}

/*
 * Add the node <text>: an address, or "tls://address[?options]" (see
 * node_tls()).  Returns its index, or -1 with <e> filled.
 */
static int
node_add(struct dbrep *db, int role, const char *text, struct dbrep_error *e)
{
	struct node	*n;
	char		 err[256], a[DBREP_ADDRLEN + PATH_MAX + 256];
	char		 host[256], *q, *c;
	int		 tls = 0;

	if (db->nnodes >= CL_MAXNODES) {
		seterr(e, DBREP_EUSAGE, "too many nodes (max %d)",
		    CL_MAXNODES);
		return (-1);
	}
	if (strncmp(text, "tls://", 6) == 0) {
		tls = 1;
		text += 6;
	}
	if (strlcpy(a, text, sizeof(a)) >= sizeof(a)) {
		seterr(e, DBREP_EUSAGE, "%s: too long", text);
		return (-1);
	}
	if ((q = strchr(a, '?')) != NULL) {
		if (!tls) {
			seterr(e, DBREP_EUSAGE, "%s: options are for "
			    "tls://address?...", text);
			return (-1);
		}
		*q++ = '\0';
	}
	n = &db->nodes[db->nnodes];
	memset(n, 0, sizeof(*n));
	sock_init(&n->sk, -1);
	if (net_addr_parse(a, &n->addr, err, sizeof(err)) == -1) {
		seterr(e, DBREP_EUSAGE, "%s: %s", a, err);
		return (-1);
	}
	if (tls && n->addr.family == AF_UNIX) {
		seterr(e, DBREP_EUSAGE, "%s: TLS is for TCP", a);
		return (-1);
	}
	/* the host as written: a name to check in the certificate */
	strlcpy(host, a[0] == '[' ? a + 1 : a, sizeof(host));
	if ((c = strrchr(host, a[0] == '[' ? ']' : ':')) != NULL)
		*c = '\0';
	if (tls && node_tls(n, text, host, q, e) == -1) {
		node_free(n);
		return (-1);
	}
	n->role = role;
	buf_init(&n->in, CL_INMAX);
	return (db->nnodes++);
}

struct dbrep *
dbrep_open(const char *nodes, const char *secret, struct dbrep_error *e)
{
	struct dbrep	*db;
	char		*list, *w, *p, *eq;
	int		 role;

	if (nodes == NULL) {
		seterr(e, DBREP_EUSAGE, "no nodes");
		return (NULL);
	}
	if ((db = calloc(1, sizeof(*db))) == NULL ||
	    (list = strdup(nodes)) == NULL) {
		free(db);
		seterr(e, SQLITE_NOMEM, "out of memory");
		return (NULL);
	}
	db->timeout = 30000;
	db->ctimeout = DBREP_CONNECT_TIMEOUT;
	db->lsnwait = 5000;
	buf_init(&db->out, 1U << 30);
	for (p = list; (w = strsep(&p, " ,\t\n")) != NULL;) {
		if (*w == '\0')
			continue;
		role = DBREP_ANY;
		/* a role before the address (not an option after it) */
		if ((eq = strchr(w, '=')) != NULL && strncmp(w, "unix:", 5) &&
		    (strpbrk(w, ":?") == NULL || eq < strpbrk(w, ":?"))) {
			*eq = '\0';
			if (strcmp(w, "primary") == 0)
				role = DBREP_PRIMARY;
			else if (strcmp(w, "replica") == 0)
				role = DBREP_REPLICA;
			else if (strcmp(w, "any") != 0) {
				seterr(e, DBREP_EUSAGE, "%s: unknown role "
				    "(primary, replica, any)", w);
				goto fail;
			}
			w = eq + 1;
		}
		if (node_add(db, role, w, e) == -1)
			goto fail;
	}
	if (db->nnodes == 0) {
		seterr(e, DBREP_EUSAGE, "no nodes");
		goto fail;
	}
	if (secret != NULL) {
		if ((db->secret = strdup(secret)) == NULL) {
			seterr(e, SQLITE_NOMEM, "out of memory");
			goto fail;
		}
		db->secretlen = strlen(secret);
	}
	free(list);
	return (db);
 fail:
	free(list);
	dbrep_close(db);
	return (NULL);
}

static void
node_disconnect(struct node *n)
{
	/*
	 * No close_notify: writing to a node that closed first would raise
	 * SIGPIPE in a caller that does not ignore it.
	 */
	n->sk.flags |= SOCK_EOF;
	link_free(&n->sk);
	if (n->sk.fd != -1)
		close(n->sk.fd);
	n->sk.fd = -1;
	buf_reset(&n->in);
}

void
dbrep_close(struct dbrep *db)
{
	int	i;

	if (db == NULL)
		return;
	for (i = 0; i < db->nnodes; i++) {
		node_disconnect(&db->nodes[i]);
		node_free(&db->nodes[i]);
	}
	if (db->secret != NULL) {
		explicit_bzero(db->secret, db->secretlen);
		free(db->secret);
	}
	buf_free(&db->out);
	free(db);
}

void
dbrep_set_timeout(struct dbrep *db, int ms)
{
	db->timeout = ms > 0 ? ms : 30000;
}

void
dbrep_set_connect_timeout(struct dbrep *db, int ms)
{
	db->ctimeout = ms > 0 ? ms : DBREP_CONNECT_TIMEOUT;
}

void
dbrep_set_lsn_wait(struct dbrep *db, int ms)
{
	db->lsnwait = ms >= 0 ? ms : 0;
}

void
dbrep_set_busy_poll(struct dbrep *db, unsigned us)
{
	db->busy_us = us < DBREP_BUSY_POLL_MAX ? us : DBREP_BUSY_POLL_MAX;
}

uint64_t
dbrep_lsn(const struct dbrep *db)
{
	return (db->lsn);
}

/* Requests */

struct dbrep_req *
dbrep_req_new(void)
{
	struct dbrep_req	*r;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return (NULL);
	buf_init(&r->b, 1U << 30);
	return (r);
}

void
dbrep_req_free(struct dbrep_req *r)
{
	if (r == NULL)
		return;
	buf_free(&r->b);
	free(r);
}

void
dbrep_req_reset(struct dbrep_req *r)
{
	buf_reset(&r->b);
	r->nstmts = 0;
	r->np = 0;
	r->err = 0;
}

static void
req_raw(struct dbrep_req *r, const void *p, size_t n)
{
	if (!r->err && n > 0 && buf_append(&r->b, p, n) == -1)
		r->err = 1;
}

static void
req_u32(struct dbrep_req *r, uint32_t v)
{
	uint8_t	b[4];

	put_be32(b, v);
	req_raw(r, b, 4);
}

int
dbrep_req_sql(struct dbrep_req *r, const char *sql)
{
	size_t	n = strlen(sql);

	req_u32(r, (uint32_t)n);
	req_raw(r, sql, n);
	r->np_off = r->b.len;
	r->np = 0;
	req_u32(r, 0);
	r->nstmts++;
	return (r->err ? -1 : 0);
}

int
dbrep_req_value(struct dbrep_req *r, const struct dbrep_value *v)
{
	uint8_t	b[9];

	if (r->nstmts == 0)
		r->err = 1;
	if (r->err)
		return (-1);
	b[0] = (uint8_t)v->type;
	switch (v->type) {
	case DBREP_NULL:
		req_raw(r, b, 1);
		break;
	case DBREP_INTEGER:
		put_be64(b + 1, (uint64_t)v->i);
		req_raw(r, b, 9);
		break;
	case DBREP_REAL: {
		uint64_t	bits;

		memcpy(&bits, &v->r, 8);
		put_be64(b + 1, bits);
		req_raw(r, b, 9);
		break;
	}
	case DBREP_TEXT:
	case DBREP_BLOB:
		req_raw(r, b, 1);
		req_u32(r, (uint32_t)v->len);
		req_raw(r, v->p, v->len);
		break;
	default:
		r->err = 1;
	}
	if (r->err)
		return (-1);
	r->np++;
	put_be32((uint8_t *)r->b.data + r->np_off, r->np);
	return (0);
}

int
dbrep_req_null(struct dbrep_req *r)
{
	struct dbrep_value	v = { .type = DBREP_NULL };

	return (dbrep_req_value(r, &v));
}

int
dbrep_req_int(struct dbrep_req *r, int64_t i)
{
	struct dbrep_value	v = { .type = DBREP_INTEGER, .i = i };

	return (dbrep_req_value(r, &v));
}

int
dbrep_req_real(struct dbrep_req *r, double d)
{
	struct dbrep_value	v = { .type = DBREP_REAL, .r = d };

	return (dbrep_req_value(r, &v));
}

int
dbrep_req_text(struct dbrep_req *r, const char *s, ssize_t len)
{
	struct dbrep_value	v = { .type = DBREP_TEXT, .p = s };

	v.len = len < 0 ? strlen(s) : (size_t)len;
	return (dbrep_req_value(r, &v));
}

int
dbrep_req_blob(struct dbrep_req *r, const void *p, size_t len)
{
	struct dbrep_value	v = { .type = DBREP_BLOB };

	v.p = p;
	v.len = len;

	return (dbrep_req_value(r, &v));
}

/* Connections */

static uint64_t
deadline_of(const struct dbrep *db)
{
	return (ev_monotonic_ms() + db->timeout);
}

/*
 * Did the node close an idle connection?  Over TLS, what is there may
 * be records that are no data (a TLS 1.3 session ticket): read it.
 */
static int
node_stale(struct node *n)
{
	struct pollfd	pfd = { n->sk.fd, POLLIN, 0 };

	if (buf_used(&n->in) > 0)
		return (1);
	if (poll(&pfd, 1, 0) == 0)
		return (0);
	if (n->sk.ssl == NULL || (pfd.revents & ~POLLIN) != 0)
		return (1);
	return (link_read(&n->sk, &n->in) != -1 || errno != EAGAIN ||
	    buf_used(&n->in) > 0);
}

static int
node_connect(struct dbrep *db, struct node *n, uint64_t deadline,
    struct dbrep_error *e)
{
	const uint8_t	*p;
	uint8_t		 cnonce[DBREP_NONCELEN], mac[DBREP_MACLEN];
	struct buf	 ab;
	struct fw	 w;
	struct fr	 r;
	size_t		 len, size;
	int		 type, ms, rc, fd, ours = 0;
	char		 err[256];

	if (n->sk.fd != -1 && !node_stale(n))
		return (0);
	node_disconnect(n);
	/* <ours>: the connect timeout, not the request's, bounds it */
	if (deadline > ev_monotonic_ms() + db->ctimeout) {
		deadline = ev_monotonic_ms() + db->ctimeout;
		ours = 1;
	}
	ms = (int)(deadline - ev_monotonic_ms());
	if (ms <= 0)
		ms = 1;
	if ((fd = net_connect_wait(&n->addr, ms)) == -1) {
		seterr(e, DBREP_ECONNECT, "%s: %s", n->addr.text,
		    strerror(errno));
		return (-1);
	}
	sock_init(&n->sk, fd);
	if (n->tls != NULL) {
		if (link_tls_client(&n->sk, n->tls, n->tls_name,
		    &n->addr) == -1) {
			seterr(e, SQLITE_NOMEM, "%s: TLS: out of memory",
			    n->addr.text);
			goto fail;
		}
		if (io_handshake(&n->sk, deadline) == -1) {
			/* a certificate that does not verify: no secret */
			seterr(e, SSL_get_verify_result(n->sk.ssl) !=
			    X509_V_OK ? DBREP_EAUTH : DBREP_ECONNECT, "%s: %s",
			    n->addr.text, errno == ETIMEDOUT ? "TLS "
			    "handshake timed out" : link_error(&n->sk, errno,
			    err, sizeof(err)));
			goto fail;
		}
	}
	rc = io_frame(&n->sk, &n->in, 64 * 1024, deadline, 0, &type, &p,
	    &len, &size);
	if (rc != 1 || type != MSG_HELLO || hello_parse(p, len,
	    &n->hello) == -1) {
		/* a TLS port waits for the client's hello: silence */
		if (rc == -1 && errno == ETIMEDOUT && n->sk.ssl == NULL &&
		    n->addr.family != AF_UNIX)
			seterr(e, DBREP_ECONNECT, "%s: no greeting in time "
			    "(a TLS port? then tls://%s)", n->addr.text,
			    n->addr.text);
		else
			seterr(e, rc == 1 ? DBREP_EPROTO : DBREP_ECONNECT,
			    "%s: %s", n->addr.text, rc == 1 ?
			    "not a dbrepd client port" : rc == 0 ? "closed" :
			    strerror(errno));
		goto fail;
	}
	buf_consume(&n->in, size);
	if (n->hello.flags & HELLO_REPL) {
		seterr(e, DBREP_EUSAGE, "%s is a replication port",
		    n->addr.text);
		goto fail;
	}
	if (n->hello.role == ROLE_PRIMARY && (n->hello.flags &
	    HELLO_WRITABLE) && n->hello.epoch > db->wepoch)
		db->wepoch = n->hello.epoch;
	n->down_until = 0;
	if (!(n->hello.flags & HELLO_AUTH))
		return (0);
	if (db->secret == NULL) {
		seterr(e, DBREP_EAUTH, "%s needs the shared secret",
		    n->addr.text);
		goto fail;
	}
	if (auth_nonce(cnonce) == -1) {
		seterr(e, DBREP_EAUTH, "no random numbers");
		goto fail;
	}
	auth_mac(db->secret, db->secretlen, "dbrep client", n->hello.nonce,
	    cnonce, mac);
	/* not db->out: it may hold the request already */
	buf_init(&ab, 256);
	fw_begin(&w, &ab, MSG_AUTH);
	fw_bytes(&w, cnonce, sizeof(cnonce));
	fw_bytes(&w, mac, sizeof(mac));
	rc = fw_end(&w) == -1 || io_send(&n->sk, buf_head(&ab), buf_used(&ab),
	    deadline) == -1;
	buf_free(&ab);
	if (rc) {
		seterr(e, DBREP_ECONNECT, "%s: %s", n->addr.text,
		    strerror(errno));
		goto fail;
	}
	rc = io_frame(&n->sk, &n->in, 64 * 1024, deadline, 0, &type, &p,
	    &len, &size);
	if (rc == -1 && errno == ETIMEDOUT) {
		seterr(e, DBREP_ECONNECT, "%s: authentication timed out",
		    n->addr.text);
		goto fail;
	}
	if (rc != 1 || type != MSG_AUTH_OK) {
		seterr(e, DBREP_EAUTH, "%s: authentication failed",
		    n->addr.text);
		goto fail;
	}
	fr_init(&r, p, len);
	if (fr_fixed(&r, mac, sizeof(mac)) == -1 || !fr_done(&r) ||
	    !auth_check(db->secret, db->secretlen, "dbrep server", cnonce,
	    n->hello.nonce, mac)) {
		seterr(e, DBREP_EAUTH, "%s: the node does not know the "
		    "secret", n->addr.text);
		goto fail;
	}
	buf_consume(&n->in, size);
	return (0);
 fail:
	node_disconnect(n);
	if (e->code == DBREP_ECONNECT) {
		/* tried last for a while, whoever's time ran out */
		n->down_until = ev_monotonic_ms() + DBREP_DOWN_TIME;
		/* the request's time ran out: the caller tries no other */
		if (!ours && ev_monotonic_ms() >= deadline)
			seterr(e, DBREP_ETIMEOUT, "%s: the request's time ran "
			    "out while connecting", n->addr.text);
	}
	return (-1);
}

static void
parse_error(const uint8_t *p, size_t len, struct node *n,
    struct dbrep_error *e)
{
	struct fr	r;

	memset(e, 0, sizeof(*e));
	fr_init(&r, p, len);
	e->code = (int)fr_u32(&r);
	e->extended = (int)fr_u32(&r);
	fr_strcpy(&r, e->msg, sizeof(e->msg));
	fr_strcpy(&r, e->primary, sizeof(e->primary));
	e->lsn = fr_u64(&r);
	if (!fr_done(&r)) {
		e->code = e->extended = DBREP_EPROTO;
		snprintf(e->msg, sizeof(e->msg), "malformed error");
	}
	strlcpy(e->node, n->hello.node, sizeof(e->node));
}

/*
 * Send <out> to node <n> and read its answer of type <want> (or ERROR).
 * Returns 1 with the payload (consume <size> bytes of n->in after
 * use), 0 when the node answered ERROR (<e> filled), -1 on a transport
 * failure (*<sent> says whether the request left).  A query's answer is
 * busy-polled for (dbrep_set_busy_poll()); the slower admin commands'
 * are not.
 */
static int
roundtrip(struct dbrep *db, struct node *n, int want, uint64_t deadline,
    const uint8_t **p, size_t *len, size_t *size, int *sent,
    struct dbrep_error *e)
{
	int	type, rc;

	*sent = 0;
	if (io_send(&n->sk, buf_head(&db->out), buf_used(&db->out),
	    deadline) == -1) {
		seterr(e, DBREP_ECONNECT, "%s: %s", n->addr.text,
		    strerror(errno));
		node_disconnect(n);
		return (-1);
	}
	*sent = 1;
	rc = io_frame(&n->sk, &n->in, CL_INMAX, deadline, want == MSG_RESULT ?
	    db->busy_us : 0, &type, p, len, size);
	if (rc != 1) {
		seterr(e, rc == 0 || errno != ETIMEDOUT ? DBREP_ELOST :
		    DBREP_ETIMEOUT, "%s: %s", n->addr.text, rc == 0 ?
		    "connection closed" : strerror(errno));
		node_disconnect(n);
		return (-1);
	}
	if (type == MSG_ERROR) {
		parse_error(*p, *len, n, e);
		buf_consume(&n->in, *size);
		return (0);
	}
	if (type != want) {
		seterr(e, DBREP_EPROTO, "%s: unexpected frame %d",
		    n->addr.text, type);
		node_disconnect(n);
		return (-1);
	}
	return (1);
}

/* Results */

void
dbrep_result_free(struct dbrep_result *res)
{
	int	i;

	if (res == NULL)
		return;
	for (i = 0; i < res->nsets; i++) {
		free(res->sets[i].names);
		free(res->sets[i].vals);
	}
	free(res->sets);
	free(res->arena);
	free(res);
}

static struct dbrep_result *
parse_result(const uint8_t *p, size_t len, struct node *n,
    struct dbrep_error *e)
{
	struct dbrep_result	*res;
	struct dbrep_set	*s;
	struct dbrep_value	*v;
	struct fr		 r;
	char			*a;
	const uint8_t		*b;
	size_t			 i, bl, nv;
	uint32_t		 nsets;
	int			 k;

	if ((res = calloc(1, sizeof(*res))) == NULL ||
	    (res->arena = malloc(len + 1)) == NULL) {
		free(res);
		seterr(e, SQLITE_NOMEM, "out of memory");
		return (NULL);
	}
	a = res->arena;
	strlcpy(res->node, n->hello.node, sizeof(res->node));
	fr_init(&r, p, len);
	res->lsn = fr_u64(&r);
	res->changes = fr_i64(&r);
	res->rowid = fr_i64(&r);
	nsets = fr_u32(&r);
	if (r.err || nsets > len)
		goto bad;
	if (nsets > 0 && (res->sets = calloc(nsets, sizeof(*s))) == NULL)
		goto nomem;
	for (k = 0; k < (int)nsets; k++) {
		s = &res->sets[k];
		res->nsets++;
		s->ncols = (int)fr_u32(&r);
		if (r.err || s->ncols <= 0 || (size_t)s->ncols > len)
			goto bad;
		if ((s->names = calloc(s->ncols, sizeof(char *))) == NULL)
			goto nomem;
		for (i = 0; i < (size_t)s->ncols; i++) {
			if ((b = fr_bytes(&r, &bl)) == NULL && r.err)
				goto bad;
			/* each copy takes fewer bytes than its encoding */
			if (bl > 0)
				memcpy(a, b, bl);
			a[bl] = '\0';
			s->names[i] = a;
			a += bl + 1;
		}
		s->nrows = fr_u64(&r);
		if (r.err || s->nrows > len)
			goto bad;
		nv = s->nrows * s->ncols;
		if (nv > len)
			goto bad;
		if (nv > 0 && (s->vals = calloc(nv, sizeof(*v))) == NULL)
			goto nomem;
		for (i = 0; i < nv; i++) {
			v = &s->vals[i];
			if (fr_value(&r, v) == -1)
				goto bad;
			if (v->type == DBREP_TEXT || v->type == DBREP_BLOB) {
				if (v->len > 0)
					memcpy(a, v->p, v->len);
				a[v->len] = '\0';
				v->p = a;
				a += v->len + 1;
			}
		}
	}
	if (!fr_done(&r))
		goto bad;
	return (res);
 nomem:
	dbrep_result_free(res);
	seterr(e, SQLITE_NOMEM, "out of memory");
	return (NULL);
 bad:
	dbrep_result_free(res);
	seterr(e, DBREP_EPROTO, "%s: malformed result", n->addr.text);
	return (NULL);
}

uint64_t
dbrep_result_lsn(const struct dbrep_result *r)
{
	return (r->lsn);
}

int64_t
dbrep_result_changes(const struct dbrep_result *r)
{
	return (r->changes);
}

int64_t
dbrep_result_rowid(const struct dbrep_result *r)
{
	return (r->rowid);
}

const char *
dbrep_result_node(const struct dbrep_result *r)
{
	return (r->node);
}

int
dbrep_result_sets(const struct dbrep_result *r)
{
	return (r->nsets);
}

int
dbrep_result_columns(const struct dbrep_result *r, int set)
{
	return (set >= 0 && set < r->nsets ? r->sets[set].ncols : 0);
}

const char *
dbrep_result_column_name(const struct dbrep_result *r, int set, int col)
{
	if (set < 0 || set >= r->nsets || col < 0 ||
	    col >= r->sets[set].ncols)
		return (NULL);
	return (r->sets[set].names[col]);
}

size_t
dbrep_result_rows(const struct dbrep_result *r, int set)
{
	return (set >= 0 && set < r->nsets ? r->sets[set].nrows : 0);
}

const struct dbrep_value *
dbrep_result_value(const struct dbrep_result *r, int set, size_t row,
    int col)
{
	const struct dbrep_set	*s;

	if (set < 0 || set >= r->nsets)
		return (NULL);
	s = &r->sets[set];
	if (row >= s->nrows || col < 0 || col >= s->ncols)
		return (NULL);
	return (&s->vals[row * s->ncols + col]);
}

/* Routing */

static int
node_find(struct dbrep *db, const char *text)
{
	struct net_addr	a;
	char		err[128];
	int		i;

	if (net_addr_parse(text, &a, err, sizeof(err)) == -1)
		return (-1);
	for (i = 0; i < db->nnodes; i++)
		if (net_addr_eq(&db->nodes[i].addr, &a))
			return (i);
	return (-1);
}

static int	candidates_roles(struct dbrep *, int, int *);

/*
 * A node the handle learnt of from <from> (a replica named its primary)
 * speaks TLS as <from> does, with its CA and, if one was given, the
 * name to check.
 */
static void
node_inherit(struct node *n, const struct node *from)
{
	if (from->tls == NULL || n->tls != NULL)
		return;
	n->tls = from->tls;
	n->tls_own = 0;
	if (from->tls_named && (n->tls_name = strdup(from->tls_name)) != NULL)
		n->tls_named = 1;
}

/*
 * Move the entries of <order> for which <pick> holds to the front
 * (<front>) or to the back, keeping their order.
 */
static void
reorder(struct dbrep *db, int *order, int n, int front,
    int (*pick)(struct dbrep *, struct node *))
{
	int	tmp[CL_MAXNODES * 2], k = 0, i, pass, hit;

	for (pass = 0; pass < 2; pass++)
		for (i = 0; i < n; i++) {
			hit = pick(db, &db->nodes[order[i]]) != 0;
			/* front: those picked in the first pass; else last */
			if (hit == (front ? pass == 0 : pass == 1))
				tmp[k++] = order[i];
		}
	memcpy(order, tmp, n * sizeof(int));
}

static int
is_down(struct dbrep *db, struct node *n)
{
	return (n->down_until > ev_monotonic_ms());
}

/* Its last HELLO: the writable primary of the latest epoch known. */
static int
is_latest(struct dbrep *db, struct node *n)
{
	return (db->wepoch > 0 && n->hello.role == ROLE_PRIMARY &&
	    (n->hello.flags & HELLO_WRITABLE) && n->hello.epoch == db->wepoch);
}

/* The nodes to try for <route>, in order. */
static int
candidates(struct dbrep *db, int route, int *order)
{
	int	n;

	n = candidates_roles(db, route, order);
	if (route == DBREP_PRIMARY)
		reorder(db, order, n, 1, is_latest);
	reorder(db, order, n, 0, is_down);
	return (n);
}

/* Reconnect to every node that is not down: fresh HELLOs. */
static void
rediscover(struct dbrep *db, uint64_t deadline)
{
	struct dbrep_error	e;
	int			i;

	/* at most 10 times a second (the flag stays for a later request) */
	if (ev_monotonic_ms() - db->rediscovered < 100)
		return;
	db->rediscovered = ev_monotonic_ms();
	db->rediscover = 0;
	for (i = 0; i < db->nnodes; i++) {
		if (is_down(db, &db->nodes[i]))
			continue;
		node_disconnect(&db->nodes[i]);
		memset(&db->nodes[i].hello, 0, sizeof(db->nodes[i].hello));
		(void)node_connect(db, &db->nodes[i], deadline, &e);
	}
}

/* The nodes to try for <route> by their roles in the list. */
static int
candidates_roles(struct dbrep *db, int route, int *order)
{
	int	n = 0, i, pass;
	int	prefs[3];

	if (route == DBREP_PRIMARY) {
		prefs[0] = DBREP_PRIMARY;
		prefs[1] = DBREP_ANY;
		prefs[2] = DBREP_REPLICA;
	} else if (route == DBREP_REPLICA) {
		prefs[0] = DBREP_REPLICA;
		prefs[1] = DBREP_ANY;
		prefs[2] = DBREP_PRIMARY;
	} else {
		for (i = 0; i < db->nnodes; i++)
			order[n++] = i;
		return (n);
	}
	for (pass = 0; pass < 3; pass++)
		for (i = 0; i < db->nnodes; i++)
			if (db->nodes[i].role == prefs[pass])
				order[n++] = i;
	return (n);
}

static int
query_frame(struct dbrep *db, uint64_t min_lsn, const struct dbrep_req *req)
{
	struct fw	w;

	buf_reset(&db->out);
	fw_begin(&w, &db->out, MSG_QUERY);
	fw_u32(&w, db->wepoch > 0 ? QUERY_EPOCH : 0);
	fw_u64(&w, min_lsn);
	fw_u32(&w, min_lsn ? (uint32_t)db->lsnwait : 0);
	if (db->wepoch > 0)
		fw_u64(&w, db->wepoch);
	fw_u32(&w, req->nstmts);
	if (!w.err && buf_append(&db->out, buf_head(&req->b),
	    buf_used(&req->b)) == -1)
		w.err = 1;
	return (fw_end(&w));
}

int
dbrep_exec(struct dbrep *db, int route, uint64_t min_lsn,
    const struct dbrep_req *req, struct dbrep_result **res,
    struct dbrep_error *e)
{
	struct dbrep_error	 tmp, ro;
	struct node		*n;
	const uint8_t		*p;
	size_t			 len, size;
	uint64_t		 deadline = deadline_of(db), built, want;
	int			 order[CL_MAXNODES * 2], norder, i, k, rc, sent;
	int			 followed = 0, fresh = 0, writes;

	*res = NULL;
	if (e == NULL)
		e = &tmp;
	memset(e, 0, sizeof(*e));
	ro.code = DBREP_OK;
	if (req == NULL || req->err || req->nstmts == 0) {
		seterr(e, DBREP_EUSAGE, "empty or broken request");
		return (-1);
	}
	/* a request that may write: where is the primary now? */
	writes = route != DBREP_REPLICA;
	if (writes && db->rediscover)
		rediscover(db, deadline);
	if (query_frame(db, min_lsn, req) == -1) {
		seterr(e, DBREP_ETOOBIG, "request too large");
		return (-1);
	}
	built = min_lsn;
	norder = candidates(db, route, order);
	seterr(e, DBREP_ECONNECT, "no node to send it to");
	for (i = 0; i < norder; i++) {
		/* no time left for another node: say why the last failed */
		if (i > 0 && ev_monotonic_ms() >= deadline)
			break;
		n = &db->nodes[order[i]];
		if (node_connect(db, n, deadline, e) == -1) {
			if (e->code == DBREP_ETIMEOUT)
				break;
			continue;
		}
		/*
		 * A request for the primary that lands on another node (the
		 * primary unreachable, or the list's roles out of date): if
		 * it only reads, that node must first have every write this
		 * handle saw, or the caller would miss its own writes.  (A
		 * write ignores the minimum LSN: a replica refuses it.)
		 */
		want = min_lsn;
		if (route == DBREP_PRIMARY && db->lsn > want &&
		    !(n->hello.role == ROLE_PRIMARY &&
		    (n->hello.flags & HELLO_WRITABLE)))
			want = db->lsn;
		if (want != built) {
			if (query_frame(db, want, req) == -1) {
				seterr(e, DBREP_ETOOBIG, "request too large");
				return (-1);
			}
			built = want;
		}
		rc = roundtrip(db, n, MSG_RESULT, deadline, &p, &len, &size,
		    &sent, e);
		if (rc == -1) {
			if (sent && writes) {
				if (e->code == DBREP_ELOST ||
				    e->code == DBREP_ETIMEOUT)
					snprintf(e->msg, sizeof(e->msg), "%s: "
					    "%s after the request was sent: "
					    "its outcome is unknown",
					    n->addr.text, e->code ==
					    DBREP_ELOST ? "connection lost" :
					    "no answer in time");
				db->rediscover = 1;
				return (-1);
			}
			/* the request's time is spent: say so */
			if (e->code == DBREP_ETIMEOUT)
				return (-1);
			/*
			 * A read on a kept connection the node was closing
			 * (a worker leaving after a reload): once more, on a
			 * new connection to the same node.
			 */
			if (sent && !fresh) {
				fresh = 1;
				node_disconnect(n);
				i--;
			}
			continue;
		}
		if (rc == 0) {
			if (e->code == SQLITE_READONLY && writes) {
				/* not the primary (any more): the next one */
				n->hello.flags &= ~HELLO_WRITABLE;
				ro = *e;
				if (followed || e->primary[0] == '\0')
					continue;
				/* a replica named the primary: go there */
				followed = 1;
				if ((k = node_find(db, e->primary)) == -1 &&
				    (k = node_add(db, DBREP_PRIMARY,
				    e->primary, &tmp)) >= 0)
					node_inherit(&db->nodes[k], n);
				if (k >= 0 && k != order[i] &&
				    !is_down(db, &db->nodes[k]) &&
				    norder < (int)nitems(order)) {
					/* try it next */
					memmove(&order[i + 2], &order[i + 1],
					    (norder - i - 1) * sizeof(int));
					order[i + 1] = k;
					norder++;
				}
				continue;
			}
			/*
			 * Not run (a worker leaving, a node starting or
			 * stopping): once more on a new connection to the
			 * same node, which a new worker takes, then the next.
			 */
			if (e->code == DBREP_EUNAVAIL) {
				if (!fresh) {
					fresh = 1;
					node_disconnect(n);
					i--;
				}
				continue;
			}
			if (e->code == DBREP_EINDETERMINATE)
				db->rediscover = 1;
			return (-1);
		}
		*res = parse_result(p, len, n, e);
		buf_consume(&n->in, size);
		if (*res == NULL) {
			node_disconnect(n);
			return (-1);
		}
		if ((*res)->lsn > db->lsn)
			db->lsn = (*res)->lsn;
		memset(e, 0, sizeof(*e));
		return (0);
	}
	if (writes) {
		db->rediscover = 1;
		/* no primary answered: a replica's answer says the most */
		if (ro.code != DBREP_OK)
			*e = ro;
	}
	return (-1);
}

int
dbrep_query(struct dbrep *db, int route, uint64_t min_lsn,
    struct dbrep_result **res, struct dbrep_error *e, const char *sql,
    const char *types, ...)
{
	struct dbrep_req	*req;
	const char		*t, *s;
	const void		*b;
	size_t			 l;
	va_list			 ap;
	int			 rc;

	*res = NULL;
	if ((req = dbrep_req_new()) == NULL) {
		seterr(e, SQLITE_NOMEM, "out of memory");
		return (-1);
	}
	dbrep_req_sql(req, sql);
	va_start(ap, types);
	for (t = types; t != NULL && *t != '\0'; t++) {
		switch (*t) {
		case 'i':
			dbrep_req_int(req, va_arg(ap, int));
			break;
		case 'I':
			dbrep_req_int(req, va_arg(ap, int64_t));
			break;
		case 'r':
			dbrep_req_real(req, va_arg(ap, double));
			break;
		case 't':
			s = va_arg(ap, const char *);
			if (s == NULL)
				dbrep_req_null(req);
			else
				dbrep_req_text(req, s, -1);
			break;
		case 'T':
			s = va_arg(ap, const char *);
			l = va_arg(ap, size_t);
			dbrep_req_text(req, s, (ssize_t)l);
			break;
		case 'b':
			b = va_arg(ap, const void *);
			l = va_arg(ap, size_t);
			dbrep_req_blob(req, b, l);
			break;
		case 'n':
			dbrep_req_null(req);
			break;
		default:
			va_end(ap);
			dbrep_req_free(req);
			seterr(e, DBREP_EUSAGE, "unknown parameter type '%c'",
			    *t);
			return (-1);
		}
	}
	va_end(ap);
	rc = dbrep_exec(db, route, min_lsn, req, res, e);
	dbrep_req_free(req);
	return (rc);
}

/* Administration */

static struct node *
admin_node(struct dbrep *db, const char *text, struct dbrep_error *e)
{
	int	k = 0;

	if (text != NULL && (k = node_find(db, text)) == -1 &&
	    (k = node_add(db, DBREP_ANY, text, e)) == -1)
		return (NULL);
	return (&db->nodes[k]);
}

int
dbrep_admin(struct dbrep *db, const char *node, const char *cmd,
    const char *arg, char **reply, struct dbrep_error *e)
{
	struct dbrep_error	 tmp;
	struct node		*n;
	struct fw		 w;
	struct fr		 r;
	const uint8_t		*p;
	size_t			 len, size;
	uint64_t		 deadline = deadline_of(db);
	int			 type, rc, sent;

	*reply = NULL;
	if (e == NULL)
		e = &tmp;
	if (strcmp(cmd, "status") == 0)
		type = MSG_STATUS;
	else if (strcmp(cmd, "promote") == 0)
		type = MSG_PROMOTE;
	else if (strcmp(cmd, "repoint") == 0 && arg != NULL)
		type = MSG_REPOINT;
	else {
		seterr(e, DBREP_EUSAGE, "unknown command %s", cmd);
		return (-1);
	}
	if ((n = admin_node(db, node, e)) == NULL ||
	    node_connect(db, n, deadline, e) == -1)
		return (-1);
	buf_reset(&db->out);
	fw_begin(&w, &db->out, type);
	if (type == MSG_REPOINT)
		fw_str(&w, arg);
	if (fw_end(&w) == -1) {
		seterr(e, DBREP_EUSAGE, "argument too long");
		return (-1);
	}
	if ((rc = roundtrip(db, n, MSG_ADMIN_OK, deadline, &p, &len, &size,
	    &sent, e)) != 1)
		return (-1);
	fr_init(&r, p, len);
	*reply = fr_strdup(&r);
	buf_consume(&n->in, size);
	if (*reply == NULL) {
		seterr(e, DBREP_EPROTO, "malformed answer");
		return (-1);
	}
	memset(e, 0, sizeof(*e));
	return (0);
}

int
dbrep_snapshot(struct dbrep *db, const char *node, int fd, uint64_t *lsn,
    uint64_t *size, struct dbrep_error *e)
{
	struct dbrep_error	 tmp;
	struct node		*n;
	struct fw		 w;
	struct fr		 r;
	EVP_MD_CTX		*md = NULL;
	const uint8_t		*p, *d;
	uint8_t			 want[DBREP_HASHLEN], got[DBREP_HASHLEN];
	unsigned int		 gl = DBREP_HASHLEN;
	uint64_t		 total, recvd = 0, deadline;
	size_t			 len, fsize, dl, off;
	ssize_t			 wr;
	int			 type, rc, sent;

	if (e == NULL)
		e = &tmp;
	/* a large database takes long to copy: a longer deadline */
	deadline = ev_monotonic_ms() + (uint64_t)db->timeout * 20;
	if ((n = admin_node(db, node, e)) == NULL ||
	    node_connect(db, n, deadline, e) == -1)
		return (-1);
	buf_reset(&db->out);
	fw_begin(&w, &db->out, MSG_SNAPSHOT);
	fw_end(&w);
	if ((rc = roundtrip(db, n, MSG_SNAP_BEGIN, deadline, &p, &len, &fsize,
	    &sent, e)) != 1)
		return (-1);
	fr_init(&r, p, len);
	*lsn = fr_u64(&r);
	(void)fr_u64(&r);
	fr_fixed(&r, got, sizeof(got));
	total = fr_u64(&r);
	buf_consume(&n->in, fsize);
	if (r.err) {
		seterr(e, DBREP_EPROTO, "malformed snapshot");
		goto fail;
	}
	if ((md = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
		seterr(e, SQLITE_NOMEM, "out of memory");
		goto fail;
	}
	for (;;) {
		rc = io_frame(&n->sk, &n->in, CL_INMAX, deadline, 0, &type,
		    &p, &len, &fsize);
		if (rc != 1) {
			seterr(e, DBREP_ELOST, "%s: snapshot interrupted",
			    n->addr.text);
			goto fail;
		}
		fr_init(&r, p, len);
		if (type == MSG_SNAP_END) {
			fr_fixed(&r, want, sizeof(want));
			buf_consume(&n->in, fsize);
			break;
		}
		if (type != MSG_SNAP_DATA) {
			seterr(e, DBREP_EPROTO, "unexpected frame %d", type);
			goto fail;
		}
		d = fr_bytes(&r, &dl);
		for (off = 0; off < dl; off += wr)
			if ((wr = write(fd, d + off, dl - off)) <= 0) {
				seterr(e, DBREP_EUSAGE, "write: %s",
				    strerror(errno));
				goto fail;
			}
		EVP_DigestUpdate(md, d, dl);
		recvd += dl;
		buf_consume(&n->in, fsize);
	}
	EVP_DigestFinal_ex(md, got, &gl);
	EVP_MD_CTX_free(md);
	if (recvd != total || memcmp(want, got, DBREP_HASHLEN) != 0) {
		seterr(e, DBREP_EPROTO, "snapshot damaged in transfer");
		return (-1);
	}
	*size = recvd;
	memset(e, 0, sizeof(*e));
	return (0);
 fail:
	EVP_MD_CTX_free(md);
	node_disconnect(n);
	return (-1);
}
