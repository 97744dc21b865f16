/*
 * frame.c: the wire format of dbrepd's two protocols, the client protocol
 * (queries, administration) and the replication protocol.
 *
 * Every exchange is a sequence of frames on a stream socket (Unix, TCP).
 * TLS, when on (dbrepd.conf(5) "tls"), wraps the same frames (link.c).
 * A frame:
 *
 *	offset	size	field
 *	0	4	length L of what follows (type + payload), big-endian,
 *			1 <= L <= the receiver's limit (at most 1 GiB)
 *	4	1	type (enum dbrep_msg in dbrepd.h)
 *	5	L-1	payload
 *
 * There is no checksum in the frame: TCP's covers the link, and every log
 * record carries a SHA-256 chained over the whole history, which the
 * replica recomputes before it applies the record.
 *
 * Payload fields, in the order listed, all integers big-endian:
 *	u8 u32 u64	unsigned
 *	i64		two's complement
 *	f64		IEEE 754 binary64, its bits as a u64
 *	str, bytes	u32 length, then that many bytes (no NUL)
 *	value		u8 tag, then: 0 NULL (nothing), 1 INTEGER i64,
 *			2 REAL f64, 3 TEXT str (UTF-8), 4 BLOB bytes
 * A payload with bytes left over, or shorter than its fields, is a
 * protocol error; the connection is closed.
 *
 * Connection start, both ports.  The server speaks first:
 *	HELLO	 1  u32 version (1), u8 role (1 primary, 2 replica),
 *		    u8 flags (0x01 AUTH needed, 0x02 writable, 0x04 this is
 *		    the replication port), u64 epoch, u64 lsn, str node
 *		    name, str primary's client address, str primary's
 *		    replication address ("" when unknown or self),
 *		    bytes nonce (32)
 *	AUTH	 2  bytes client nonce (32), bytes mac (32) =
 *		    HMAC-SHA256(secret, "dbrep client" || server nonce ||
 *		    client nonce)
 *	AUTH_OK	 3  bytes mac (32) = HMAC-SHA256(secret, "dbrep server" ||
 *		    client nonce || server nonce): the server knows the
 *		    secret too
 * AUTH is required on TCP, refused on Unix sockets (file permissions
 * guard them).  Any other frame before a needed AUTH closes the link.
 *
 *	ERROR	 4  i32 code (as u32), i32 extended code, str message,
 *		    str primary's client address (READONLY), u64 lsn
 *		    (INDETERMINATE: committed locally at this LSN)
 *
 * Client protocol (after HELLO and AUTH), one answer per request:
 *	QUERY	10  u32 flags (0x02: an epoch follows the wait), u64
 *		    minimum LSN (0: none), u32 wait in ms for it, [u64 the
 *		    latest epoch the client saw a writable primary at: an
 *		    older primary stops taking writes,] u32 n statements,
 *		    then n times: str sql, u32 p parameters, p values
 *	RESULT	11  u64 lsn (a write's commit LSN, or the LSN of the
 *		    state a read saw), i64 changes, i64 last insert rowid,
 *		    u32 s sets, then s times: u32 c columns, c str names,
 *		    u64 r rows, r*c values (row by row)
 *	STATUS	20  (empty)			-> ADMIN_OK
 *	PROMOTE	21  (empty)			-> ADMIN_OK
 *	REPOINT	22  str new primary's replication address -> ADMIN_OK
 *	ADMIN_OK 23 str text, "key value" lines
 *	SNAPSHOT 24 (empty)			-> SNAP_BEGIN, SNAP_DATA*,
 *						   SNAP_END
 * or ERROR instead of the answer.
 *
 * Replication protocol (replication port, after HELLO and AUTH):
 *	START	40  r->p: str node name, u64 the latest epoch it knows
 *		    of (fencing), u64 epoch of its last record, u64 its
 *		    lsn, bytes hash (32) of that record, u32 SQLite version
 *		    number, u32 flags (0x01 send a snapshot)
 *	STREAM	41  p->r: u64 first LSN that follows (records come next)
 *	RECORD	42  p->r: u64 lsn, u64 epoch, u64 commit time (ms since
 *		    1970), bytes hash (32), bytes body (record.c)
 *	HEARTBEAT 43 p->r: u64 primary's lsn, u64 epoch, u64 now (ms),
 *		    u64 commit time of that lsn, u32 quorum (0: async),
 *		    u32 peers counted for it (0: any replica), u32 flags
 *		    (0x01 failover auto, 0x02 this replica counts and may
 *		    take over)
 *	ACK	44  r->p: u64 applied lsn (durable and visible), u64 now
 *	SNAP_BEGIN 45 p->r: u64 lsn, u64 epoch, bytes hash (32), u64 size,
 *		    u64 fork lsn (the replica's records after it are not in
 *		    the primary's history; all ones: none), str reason
 *	SNAP_DATA 46 bytes chunk (at most 256 KiB)
 *	SNAP_END 47 bytes SHA-256 (32) of the whole file
 * Records follow a snapshot from its LSN + 1.  A HEARTBEAT goes out every
 * heartbeat interval and the replica answers it with an ACK, so either
 * side finds a dead link within the replication timeout.  A primary that
 * finds a peer still a writable primary of an earlier epoch sends it a
 * START carrying its own epoch, as a replica would: the peer fences
 * itself and answers ERROR.
 *
 * Elections (failover auto), on the replication port after AUTH, one
 * question per connection:
 *	VOTE	48  c->v: u32 flags (0x01 pre-vote: would you, nothing
 *		    promised), str candidate's name, u64 epoch asked for,
 *		    u64 latest epoch it knows, u64 epoch of its last record,
 *		    u64 its lsn, str its replication address
 *	VOTE_REPLY 49 v->c: u32 granted (1) or not (0), u64 latest epoch
 *		    the voter knows, u64 its lsn, str its name, str why not
 */
#include <sys/types.h>

#include <sys/socket.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "dbrepd.h"

void
put_be32(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

uint32_t
get_be32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3]);
}

void
put_be64(uint8_t *p, uint64_t v)
{
	put_be32(p, v >> 32);
	put_be32(p + 4, (uint32_t)v);
}

uint64_t
get_be64(const uint8_t *p)
{
	return ((uint64_t)get_be32(p) << 32 | get_be32(p + 4));
}

/* Writing */

void
fw_begin(struct fw *w, struct buf *b, int type)
{
	uint8_t	hdr[DBREP_HDRLEN] = { 0, 0, 0, 0, (uint8_t)type };

	/*
	 * The frame's place is kept relative to the first unread byte:
	 * appending may move the unread bytes to the front of the buffer.
	 */
	w->b = b;
	w->start = buf_used(b);
	w->err = buf_append(b, hdr, sizeof(hdr)) == -1;
}

static void
fw_raw(struct fw *w, const void *p, size_t n)
{
	if (w->err || n == 0)
		return;
	if (buf_append(w->b, p, n) == -1)
		w->err = 1;
}

void
fw_u8(struct fw *w, uint8_t v)
{
	fw_raw(w, &v, 1);
}

void
fw_u32(struct fw *w, uint32_t v)
{
	uint8_t	p[4];

	put_be32(p, v);
	fw_raw(w, p, 4);
}

void
fw_u64(struct fw *w, uint64_t v)
{
	uint8_t	p[8];

	put_be64(p, v);
	fw_raw(w, p, 8);
}

void
fw_i64(struct fw *w, int64_t v)
{
	fw_u64(w, (uint64_t)v);
}

void
fw_f64(struct fw *w, double d)
{
	uint64_t	v;

	memcpy(&v, &d, sizeof(v));
	fw_u64(w, v);
}

void
fw_bytes(struct fw *w, const void *p, size_t n)
{
	if (n > UINT32_MAX) {
		w->err = 1;
		return;
	}
	fw_u32(w, (uint32_t)n);
	fw_raw(w, p, n);
}

void
fw_str(struct fw *w, const char *s)
{
	fw_bytes(w, s, s ? strlen(s) : 0);
}

void
fw_value(struct fw *w, const struct dbrep_value *v)
{
	fw_u8(w, (uint8_t)v->type);
	switch (v->type) {
	case DBREP_NULL:
		break;
	case DBREP_INTEGER:
		fw_i64(w, v->i);
		break;
	case DBREP_REAL:
		fw_f64(w, v->r);
		break;
	case DBREP_TEXT:
	case DBREP_BLOB:
		fw_bytes(w, v->p, v->len);
		break;
	default:
		w->err = 1;
	}
}

/*
 * Patch the frame's length.  Returns 0, or -1 (and the frame removed from
 * the buffer) when a write failed or the frame is too long.
 */
int
fw_end(struct fw *w)
{
	size_t	len;

	if (!w->err) {
		len = buf_used(w->b) - w->start - 4;
		if (len > DBREP_MAXFRAME)
			w->err = 1;
		else
			put_be32((uint8_t *)fw_at(w, 0), (uint32_t)len);
	}
	if (w->err) {
		fw_abort(w);
		return (-1);
	}
	return (0);
}

/* Take back a frame begun with fw_begin(). */
void
fw_abort(struct fw *w)
{
	if (buf_used(w->b) >= w->start)
		w->b->len = w->b->off + w->start;
	w->err = 1;
}

/* Where byte <off> of the frame being written is now. */
char *
fw_at(struct fw *w, size_t off)
{
	return (w->b->data + w->b->off + w->start + off);
}

/* The offset of the next byte to be written, for fw_at(). */
size_t
fw_pos(struct fw *w)
{
	return (buf_used(w->b) - w->start);
}

/*
 * Is a whole frame at the head of <p, len>?  Returns 1 with its type and
 * total size (header included), 0 when more bytes are needed, -1 when the
 * length is 0 or over <max> (the payload limit).  Reads only the first
 * DBREP_HDRLEN bytes of what it is given.
 */
int
frame_peek(const void *p, size_t len, size_t max, int *type, size_t *size)
{
	const uint8_t	*b = p;
	uint32_t	 l;

	if (len < 4)
		return (0);
	l = get_be32(b);
	if (l == 0 || l - 1 > max || l > DBREP_MAXFRAME)
		return (-1);
	if (len < DBREP_HDRLEN || len - 4 < l)
		return (0);
	*type = b[4];
	*size = (size_t)l + 4;
	return (1);
}

/* Reading a payload */

void
fr_init(struct fr *r, const void *p, size_t len)
{
	r->p = p;
	r->len = len;
	r->off = 0;
	r->err = 0;
}

static const uint8_t *
fr_take(struct fr *r, size_t n)
{
	const uint8_t	*p;

	if (r->err || n > r->len - r->off) {
		r->err = 1;
		return (NULL);
	}
	p = r->p + r->off;
	r->off += n;
	return (p);
}

uint8_t
fr_u8(struct fr *r)
{
	const uint8_t	*p = fr_take(r, 1);

	return (p ? p[0] : 0);
}

uint32_t
fr_u32(struct fr *r)
{
	const uint8_t	*p = fr_take(r, 4);

	return (p ? get_be32(p) : 0);
}

uint64_t
fr_u64(struct fr *r)
{
	const uint8_t	*p = fr_take(r, 8);

	return (p ? get_be64(p) : 0);
}

int64_t
fr_i64(struct fr *r)
{
	return ((int64_t)fr_u64(r));
}

double
fr_f64(struct fr *r)
{
	uint64_t	v = fr_u64(r);
	double		d;

	memcpy(&d, &v, sizeof(d));
	return (d);
}

/* A str or bytes field: a pointer into the payload and its length. */
const uint8_t *
fr_bytes(struct fr *r, size_t *n)
{
	uint32_t	l = fr_u32(r);
	const uint8_t	*p;

	*n = 0;
	if (r->err)
		return (NULL);
	if ((p = fr_take(r, l)) == NULL)
		return (NULL);
	*n = l;
	return (p);
}

/* A bytes field of exactly <n> bytes, copied. */
int
fr_fixed(struct fr *r, void *out, size_t n)
{
	const uint8_t	*p;
	size_t		 l;

	if ((p = fr_bytes(r, &l)) == NULL && r->err)
		return (-1);
	if (l != n) {
		r->err = 1;
		return (-1);
	}
	memcpy(out, p, n);
	return (0);
}

/* A str field into a fixed buffer: too long or with a NUL is an error. */
int
fr_strcpy(struct fr *r, char *out, size_t size)
{
	const uint8_t	*p;
	size_t		 l;

	out[0] = '\0';
	if ((p = fr_bytes(r, &l)) == NULL && r->err)
		return (-1);
	if (l >= size || (l > 0 && memchr(p, '\0', l) != NULL)) {
		r->err = 1;
		return (-1);
	}
	if (l > 0)
		memcpy(out, p, l);
	out[l] = '\0';
	return (0);
}

/* A str field, allocated and NUL-terminated; NULL on error. */
char *
fr_strdup(struct fr *r)
{
	const uint8_t	*p;
	size_t		 l;
	char		*s;

	if ((p = fr_bytes(r, &l)) == NULL && r->err)
		return (NULL);
	if (l > 0 && memchr(p, '\0', l) != NULL) {
		r->err = 1;
		return (NULL);
	}
	if ((s = malloc(l + 1)) == NULL) {
		r->err = 1;
		return (NULL);
	}
	if (l > 0)
		memcpy(s, p, l);
	s[l] = '\0';
	return (s);
}

/*
 * A value; TEXT and BLOB point into the payload (TEXT is not
 * NUL-terminated here).  Returns 0 or -1.
 */
int
fr_value(struct fr *r, struct dbrep_value *v)
{
	memset(v, 0, sizeof(*v));
	v->type = fr_u8(r);
	switch (v->type) {
	case DBREP_NULL:
		break;
	case DBREP_INTEGER:
		v->i = fr_i64(r);
		break;
	case DBREP_REAL:
		v->r = fr_f64(r);
		break;
	case DBREP_TEXT:
	case DBREP_BLOB:
		v->p = (const char *)fr_bytes(r, &v->len);
		if (v->p == NULL && !r->err)
			v->p = "";
		break;
	default:
		r->err = 1;
	}
	return (r->err ? -1 : 0);
}

/* The payload was read exactly: no error, nothing left. */
int
fr_done(const struct fr *r)
{
	return (!r->err && r->off == r->len);
}

/* Frames every side sends */

int
frame_error(struct buf *b, int code, int ext, const char *msg,
    const char *primary, uint64_t lsn)
{
	struct fw	w;

	fw_begin(&w, b, MSG_ERROR);
	fw_u32(&w, (uint32_t)code);
	fw_u32(&w, (uint32_t)ext);
	fw_str(&w, msg);
	fw_str(&w, primary ? primary : "");
	fw_u64(&w, lsn);
	return (fw_end(&w));
}

int
frame_hello(struct buf *b, int role, int flags, uint64_t epoch,
    uint64_t lsn, const char *name, const char *pclient, const char *prepl,
    const uint8_t *nonce)
{
	struct fw	w;

	fw_begin(&w, b, MSG_HELLO);
	fw_u32(&w, DBREP_VERSION);
	fw_u8(&w, (uint8_t)role);
	fw_u8(&w, (uint8_t)flags);
	fw_u64(&w, epoch);
	fw_u64(&w, lsn);
	fw_str(&w, name);
	fw_str(&w, pclient ? pclient : "");
	fw_str(&w, prepl ? prepl : "");
	fw_bytes(&w, nonce, DBREP_NONCELEN);
	return (fw_end(&w));
}

/* A HELLO's payload; returns 0 or -1. */
int
hello_parse(const uint8_t *p, size_t n, struct hello *h)
{
	struct fr	r;

	memset(h, 0, sizeof(*h));
	fr_init(&r, p, n);
	h->version = fr_u32(&r);
	h->role = fr_u8(&r);
	h->flags = fr_u8(&r);
	h->epoch = fr_u64(&r);
	h->lsn = fr_u64(&r);
	fr_strcpy(&r, h->node, sizeof(h->node));
	fr_strcpy(&r, h->pclient, sizeof(h->pclient));
	fr_strcpy(&r, h->prepl, sizeof(h->prepl));
	fr_fixed(&r, h->nonce, sizeof(h->nonce));
	if (!fr_done(&r) || h->version != DBREP_VERSION)
		return (-1);
	return (0);
}
