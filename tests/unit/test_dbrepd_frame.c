/*
 * test_dbrepd_frame.c: dbrepd's wire format (dbrepd/frame.c): frames,
 * fields, HELLO, record segments and the chained hash, with good and
 * hostile inputs.
 */
#include <sys/types.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "../../dbrepd/dbrepd.h"

/* frame_peek on raw bytes: a table of headers and what they mean */
struct peek_case {
	uint8_t		bytes[16];
	size_t		len;
	size_t		max;
	int		rc;
	int		type;
	size_t		size;
};

static const struct peek_case peek_cases[] = {
	/* complete frames */
	{ { 0, 0, 0, 1, 7 }, 5, 100, 1, 7, 5 },
	{ { 0, 0, 0, 3, 10, 'a', 'b' }, 7, 100, 1, 10, 7 },
	{ { 0, 0, 0, 3, 10, 'a', 'b', 'x', 'y' }, 9, 100, 1, 10, 7 },
	/* not yet whole: never a verdict on missing bytes */
	{ { 0 }, 0, 100, 0, 0, 0 },
	{ { 0, 0, 0 }, 3, 100, 0, 0, 0 },
	{ { 0, 0, 0, 1 }, 4, 100, 0, 0, 0 },
	{ { 0, 0, 0, 3, 10, 'a' }, 6, 100, 0, 0, 0 },
	{ { 0, 0, 1, 0, 10 }, 5, 1000, 0, 0, 0 },
	/* hostile: length 0, over the limit, over 1 GiB */
	{ { 0, 0, 0, 0, 10 }, 5, 100, -1, 0, 0 },
	{ { 0, 0, 0, 102, 10 }, 5, 100, -1, 0, 0 },
	{ { 0, 0, 0, 101, 10 }, 5, 100, 0, 0, 0 },
	{ { 0xff, 0xff, 0xff, 0xff, 10 }, 5, SIZE_MAX, -1, 0, 0 },
	{ { 0x40, 0, 0, 1, 10 }, 5, SIZE_MAX, -1, 0, 0 },
	{ { 0x80, 0, 0, 0 }, 4, 100, -1, 0, 0 },
};

Test(frame, peek_table)
{
	size_t	i, size;
	int	rc, type;

	for (i = 0; i < nitems(peek_cases); i++) {
		const struct peek_case *c = &peek_cases[i];

		type = -1;
		size = 0;
		rc = frame_peek(c->bytes, c->len, c->max, &type, &size);
		cr_expect_eq(rc, c->rc, "case %zu: rc %d, want %d", i, rc,
		    c->rc);
		if (c->rc == 1) {
			cr_expect_eq(type, c->type, "case %zu", i);
			cr_expect_eq(size, c->size, "case %zu", i);
		}
	}
}

Test(frame, round_trip_fields)
{
	struct dbrep_value	 v, in[5];
	struct buf		 b;
	struct fw		 w;
	struct fr		 r;
	uint8_t			 raw[3] = { 0, 1, 255 };
	size_t			 size, n;
	const uint8_t		*p;
	char			 s[16];
	int			 type, i;

	memset(in, 0, sizeof(in));
	in[0].type = DBREP_NULL;
	in[1].type = DBREP_INTEGER;
	in[1].i = INT64_MIN;
	in[2].type = DBREP_REAL;
	in[2].r = -0.5;
	in[3].type = DBREP_TEXT;
	in[3].p = "h\xc3\xa9";
	in[3].len = 3;
	in[4].type = DBREP_BLOB;
	in[4].p = (const char *)raw;
	in[4].len = 3;
	buf_init(&b, 4096);
	fw_begin(&w, &b, MSG_QUERY);
	fw_u8(&w, 200);
	fw_u32(&w, 0xdeadbeef);
	fw_u64(&w, UINT64_MAX - 1);
	fw_str(&w, "name");
	for (i = 0; i < 5; i++)
		fw_value(&w, &in[i]);
	cr_assert_eq(fw_end(&w), 0);
	cr_assert_eq(frame_peek(b.data, b.len, 4096, &type, &size), 1);
	cr_assert_eq(type, MSG_QUERY);
	cr_assert_eq(size, b.len);
	fr_init(&r, b.data + DBREP_HDRLEN, size - DBREP_HDRLEN);
	cr_expect_eq(fr_u8(&r), 200);
	cr_expect_eq(fr_u32(&r), 0xdeadbeef);
	cr_expect_eq(fr_u64(&r), UINT64_MAX - 1);
	cr_expect_eq(fr_strcpy(&r, s, sizeof(s)), 0);
	cr_expect_str_eq(s, "name");
	for (i = 0; i < 5; i++) {
		cr_assert_eq(fr_value(&r, &v), 0);
		cr_expect_eq(v.type, in[i].type);
		if (v.type == DBREP_INTEGER)
			cr_expect_eq(v.i, in[i].i);
		if (v.type == DBREP_REAL)
			cr_expect(v.r == in[i].r);
		if (v.type == DBREP_TEXT || v.type == DBREP_BLOB) {
			cr_expect_eq(v.len, in[i].len);
			cr_expect_eq(memcmp(v.p, in[i].p, v.len), 0);
		}
	}
	cr_expect(fr_done(&r));
	/* reading past the end fails, and stays failed */
	p = fr_bytes(&r, &n);
	cr_expect_null(p);
	cr_expect(r.err);
	cr_expect_eq(fr_u64(&r), 0);
	cr_expect(!fr_done(&r));
	buf_free(&b);
}

/* Truncate a good payload at every length: never a read past the end. */
Test(frame, truncated_payloads)
{
	struct dbrep_value	 v;
	struct buf		 b;
	struct fw		 w;
	struct fr		 r;
	size_t			 cut, full;
	uint8_t			*copy;
	char			 s[64];

	buf_init(&b, 4096);
	fw_begin(&w, &b, 0);
	fw_str(&w, "a string");
	fw_bytes(&w, "blob", 4);
	v.type = DBREP_TEXT;
	v.p = "text value";
	v.len = 10;
	fw_value(&w, &v);
	fw_u64(&w, 7);
	cr_assert_eq(fw_end(&w), 0);
	full = b.len - DBREP_HDRLEN;
	for (cut = 0; cut < full; cut++) {
		/* a copy of exactly <cut> bytes: ASan sees any overread */
		copy = malloc(cut ? cut : 1);
		memcpy(copy, b.data + DBREP_HDRLEN, cut);
		fr_init(&r, copy, cut);
		fr_strcpy(&r, s, sizeof(s));
		(void)fr_bytes(&r, &full);
		fr_value(&r, &v);
		(void)fr_u64(&r);
		cr_expect(!fr_done(&r), "cut %zu accepted", cut);
		full = b.len - DBREP_HDRLEN;
		free(copy);
	}
	buf_free(&b);
}

Test(frame, hostile_fields)
{
	struct dbrep_value	 v;
	struct fr		 r;
	char			 s[4];
	char			*d;
	size_t			 n;
	/* a str whose length runs past the payload */
	static const uint8_t	 long_len[] = { 0, 0, 0, 9, 'a', 'b' };
	/* a str with a NUL inside */
	static const uint8_t	 nul[] = { 0, 0, 0, 3, 'a', 0, 'b' };
	/* an unknown value tag */
	static const uint8_t	 tag[] = { 9, 0, 0, 0, 0 };
	/* a str too long for the buffer */
	static const uint8_t	 big[] = { 0, 0, 0, 4, 'a', 'b', 'c', 'd' };
	/* a length near 4 GiB */
	static const uint8_t	 huge[] = { 0xff, 0xff, 0xff, 0xff, 'x' };

	fr_init(&r, long_len, sizeof(long_len));
	cr_expect_eq(fr_strcpy(&r, s, sizeof(s)), -1);
	fr_init(&r, nul, sizeof(nul));
	cr_expect_null(fr_strdup(&r));
	fr_init(&r, tag, sizeof(tag));
	cr_expect_eq(fr_value(&r, &v), -1);
	fr_init(&r, big, sizeof(big));
	cr_expect_eq(fr_strcpy(&r, s, sizeof(s)), -1);
	fr_init(&r, big, sizeof(big));
	d = fr_strdup(&r);
	cr_expect_str_eq(d, "abcd");
	free(d);
	fr_init(&r, huge, sizeof(huge));
	cr_expect_null(fr_bytes(&r, &n));
	cr_expect(r.err);
}

Test(frame, hello)
{
	struct hello	 h;
	struct buf	 b;
	uint8_t		 nonce[DBREP_NONCELEN];
	size_t		 size, i;
	int		 type;

	memset(nonce, 7, sizeof(nonce));
	buf_init(&b, 4096);
	cr_assert_eq(frame_hello(&b, ROLE_REPLICA, HELLO_AUTH | HELLO_REPL, 3,
	    99, "db2", "10.0.0.1:5433", "10.0.0.1:5434", nonce), 0);
	cr_assert_eq(frame_peek(b.data, b.len, 4096, &type, &size), 1);
	cr_assert_eq(type, MSG_HELLO);
	cr_assert_eq(hello_parse((uint8_t *)b.data + DBREP_HDRLEN,
	    size - DBREP_HDRLEN, &h), 0);
	cr_expect_eq(h.role, ROLE_REPLICA);
	cr_expect_eq(h.flags, HELLO_AUTH | HELLO_REPL);
	cr_expect_eq(h.epoch, 3);
	cr_expect_eq(h.lsn, 99);
	cr_expect_str_eq(h.node, "db2");
	cr_expect_str_eq(h.pclient, "10.0.0.1:5433");
	cr_expect_str_eq(h.prepl, "10.0.0.1:5434");
	cr_expect_eq(memcmp(h.nonce, nonce, sizeof(nonce)), 0);
	/* every shorter payload is refused */
	for (i = 0; i < size - DBREP_HDRLEN; i++)
		cr_expect_eq(hello_parse((uint8_t *)b.data + DBREP_HDRLEN, i,
		    &h), -1, "length %zu", i);
	/* a wrong version is refused */
	((uint8_t *)b.data)[DBREP_HDRLEN + 3] = 2;
	cr_expect_eq(hello_parse((uint8_t *)b.data + DBREP_HDRLEN,
	    size - DBREP_HDRLEN, &h), -1);
	buf_free(&b);
}

Test(frame, error_frame)
{
	struct buf	b;
	struct fr	r;
	char		msg[64], prim[64];
	size_t		size;
	int		type;

	buf_init(&b, 4096);
	cr_assert_eq(frame_error(&b, SQLITE_READONLY, SQLITE_READONLY,
	    "read-only", "10.0.0.1:5433", 42), 0);
	cr_assert_eq(frame_peek(b.data, b.len, 4096, &type, &size), 1);
	cr_assert_eq(type, MSG_ERROR);
	fr_init(&r, b.data + DBREP_HDRLEN, size - DBREP_HDRLEN);
	cr_expect_eq(fr_u32(&r), SQLITE_READONLY);
	cr_expect_eq(fr_u32(&r), SQLITE_READONLY);
	fr_strcpy(&r, msg, sizeof(msg));
	fr_strcpy(&r, prim, sizeof(prim));
	cr_expect_eq(fr_u64(&r), 42);
	cr_expect(fr_done(&r));
	cr_expect_str_eq(msg, "read-only");
	cr_expect_str_eq(prim, "10.0.0.1:5433");
	buf_free(&b);
}

/* A buffer's hard limit makes fw_end() fail and take the frame back. */
Test(frame, writer_limit)
{
	struct buf	b;
	struct fw	w;
	char		big[200];

	memset(big, 'x', sizeof(big));
	buf_init(&b, 100);
	fw_begin(&w, &b, MSG_RESULT);
	fw_u32(&w, 1);
	cr_assert_eq(fw_end(&w), 0);
	cr_assert_eq(b.len, DBREP_HDRLEN + 4);
	fw_begin(&w, &b, MSG_RESULT);
	fw_bytes(&w, big, sizeof(big));
	cr_expect_eq(fw_end(&w), -1);
	cr_expect_eq(b.len, DBREP_HDRLEN + 4, "the failed frame stayed");
	buf_free(&b);
}

Test(record, segments_and_chain)
{
	struct record	 rec;
	struct buf	 body;
	struct fr	 r;
	const uint8_t	*p;
	uint8_t		 h0[DBREP_HASHLEN], h1[DBREP_HASHLEN];
	size_t		 n;
	int		 kind;

	buf_init(&body, 1 << 20);
	cr_assert_eq(seg_add(&body, SEG_SQL, "CREATE TABLE t(x)", 17), 0);
	cr_assert_eq(seg_add(&body, SEG_CHANGESET, "\x54\x01", 2), 0);
	cr_assert_eq(seg_add(&body, SEG_SEQUENCE, NULL, 0), 0);
	fr_init(&r, body.data, body.len);
	cr_assert_eq(seg_next(&r, &kind, &p, &n), 1);
	cr_expect_eq(kind, SEG_SQL);
	cr_expect_eq(n, 17);
	cr_assert_eq(seg_next(&r, &kind, &p, &n), 1);
	cr_expect_eq(kind, SEG_CHANGESET);
	cr_assert_eq(seg_next(&r, &kind, &p, &n), 1);
	cr_expect_eq(n, 0);
	cr_expect_eq(seg_next(&r, &kind, &p, &n), 0);
	/* a truncated body is malformed */
	fr_init(&r, body.data, body.len - 1);
	seg_next(&r, &kind, &p, &n);
	seg_next(&r, &kind, &p, &n);
	cr_expect_eq(seg_next(&r, &kind, &p, &n), -1);

	memset(h0, 0, sizeof(h0));
	rec.lsn = 1;
	rec.epoch = 1;
	rec.ts = 1000;
	rec.body = (uint8_t *)body.data;
	rec.len = body.len;
	chain_hash(h0, rec.lsn, rec.epoch, rec.ts, rec.body, rec.len,
	    rec.hash);
	cr_expect(record_verify(&rec, h0));
	memcpy(h1, rec.hash, sizeof(h1));
	/* any change of position, epoch, time, body or the previous hash
	 * breaks the chain */
	rec.epoch = 2;
	cr_expect(!record_verify(&rec, h0));
	rec.epoch = 1;
	rec.ts = 1001;
	cr_expect(!record_verify(&rec, h0));
	rec.ts = 1000;
	((char *)body.data)[6] ^= 1;
	cr_expect(!record_verify(&rec, h0));
	((char *)body.data)[6] ^= 1;
	h0[31] = 1;
	cr_expect(!record_verify(&rec, h0));
	h0[31] = 0;
	cr_expect(record_verify(&rec, h0));
	cr_expect_eq(memcmp(h1, rec.hash, sizeof(h1)), 0);
	buf_free(&body);
}

Test(auth, mac)
{
	uint8_t	n1[DBREP_NONCELEN], n2[DBREP_NONCELEN], mac[DBREP_MACLEN];

	cr_assert_eq(auth_nonce(n1), 0);
	cr_assert_eq(auth_nonce(n2), 0);
	cr_expect_neq(memcmp(n1, n2, sizeof(n1)), 0);
	auth_mac("secret", 6, "dbrep client", n1, n2, mac);
	cr_expect(auth_check("secret", 6, "dbrep client", n1, n2, mac));
	cr_expect(!auth_check("secreT", 6, "dbrep client", n1, n2, mac));
	cr_expect(!auth_check("secret", 6, "dbrep server", n1, n2, mac));
	cr_expect(!auth_check("secret", 6, "dbrep client", n2, n1, mac));
}

/*
 * A frame written after consumed bytes, large enough that the buffer
 * moves its unread bytes to the front while the frame is written: the
 * length must still land in the frame's own header.
 */
Test(frame, written_while_the_buffer_compacts)
{
	struct buf	 b;
	struct fw	 w;
	char		*big;
	size_t		 size, n = 300 * 1024;
	int		 type, i;

	big = calloc(1, n);
	buf_init(&b, 4 * n);
	for (i = 0; i < 3; i++) {
		fw_begin(&w, &b, MSG_SNAP_DATA);
		fw_bytes(&w, big, n / 2);
		cr_assert_eq(fw_end(&w), 0);
	}
	/* the first two are sent: the third stays unread */
	buf_consume(&b, 2 * (DBREP_HDRLEN + 4 + n / 2));
	fw_begin(&w, &b, MSG_SNAP_DATA);
	fw_u64(&w, 1);
	fw_bytes(&w, big, n);
	cr_assert_eq(fw_end(&w), 0);
	cr_assert_eq(frame_peek(buf_head(&b), buf_used(&b), 4 * n, &type,
	    &size), 1);
	cr_expect_eq(size, DBREP_HDRLEN + 4 + n / 2);
	buf_consume(&b, size);
	cr_assert_eq(frame_peek(buf_head(&b), buf_used(&b), 4 * n, &type,
	    &size), 1);
	cr_expect_eq(type, MSG_SNAP_DATA);
	cr_expect_eq(size, DBREP_HDRLEN + 8 + 4 + n);
	cr_expect_eq(size, buf_used(&b));
	buf_free(&b);
	free(big);
}
