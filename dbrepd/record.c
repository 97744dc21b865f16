/*
 * record.c: log records, as stored in _dbrep_log and shipped in RECORD
 * frames.
 *
 * A record is one committed transaction of the primary:
 *
 *	lsn	the log sequence number, 1, 2, 3... without gaps
 *	epoch	the primary's epoch when it committed (fencing)
 *	ts	the commit time, ms since 1970 (lag figures)
 *	hash	SHA-256(previous record's hash || lsn || epoch || ts ||
 *		body), the numbers as 8 bytes big-endian; the hash before
 *		LSN 1 is 32 zero bytes.  Two nodes with the same hash at
 *		the same LSN hold the same history.
 *	body	segments, in execution order:
 *
 *	offset	size	field
 *	0	1	kind
 *	1	4	length n, big-endian
 *	5	n	data
 *
 * Kinds:
 *	1 CHANGESET	an SQLite changeset (rowcap.c) of the row
 *			changes made since the previous DDL segment
 *	2 SQL		the text of a statement the session cannot capture
 *			(CREATE, ALTER, DROP, ANALYZE, PRAGMA user_version
 *			and application_id), replayed as is
 *	3 SEQUENCE	the whole of sqlite_sequence after the transaction
 *			(AUTOINCREMENT): u32 count, then count times
 *			str table name, i64 seq
 *	4 EPOCH		a new epoch starts at this record's LSN: u64
 *			epoch, str name of the node that became primary
 */
#include <sys/types.h>

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "dbrepd.h"

/* The wall clock in ms since 1970: commit times, lag. */
uint64_t
now_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ((uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

int
seg_add(struct buf *b, int kind, const void *p, size_t n)
{
	uint8_t	hdr[5];

	if (n > UINT32_MAX || buf_reserve(b, n + sizeof(hdr)) == -1)
		return (-1);
	hdr[0] = (uint8_t)kind;
	put_be32(hdr + 1, (uint32_t)n);
	buf_append(b, hdr, sizeof(hdr));
	if (n > 0)
		buf_append(b, p, n);
	return (0);
}

/*
 * The next segment of a body being read with <r>: 1 with its kind and
 * data, 0 at the end, -1 when the body is malformed.
 */
int
seg_next(struct fr *r, int *kind, const uint8_t **p, size_t *n)
{
	if (r->err)
		return (-1);
	if (r->off == r->len)
		return (0);
	*kind = fr_u8(r);
	*p = fr_bytes(r, n);
	if (r->err)
		return (-1);
	if (*p == NULL)
		*p = (const uint8_t *)"";
	return (1);
}

/*
 * The digest and its context are fetched once per process: looking
 * SHA-256 up in OpenSSL's providers at every record was most of the
 * hash's cost.
 */
void
chain_hash(const uint8_t *prev, uint64_t lsn, uint64_t epoch, uint64_t ts,
    const void *body, size_t len, uint8_t *out)
{
	static EVP_MD	*md;
	static EVP_MD_CTX *ctx;
	uint8_t		 nums[24];
	unsigned int	 n = DBREP_HASHLEN;

	put_be64(nums, lsn);
	put_be64(nums + 8, epoch);
	put_be64(nums + 16, ts);
	if (md == NULL)
		md = EVP_MD_fetch(NULL, "SHA256", NULL);
	if (ctx == NULL)
		ctx = EVP_MD_CTX_new();
	if (md == NULL || ctx == NULL ||
	    EVP_DigestInit_ex(ctx, md, NULL) != 1 ||
	    EVP_DigestUpdate(ctx, prev, DBREP_HASHLEN) != 1 ||
	    EVP_DigestUpdate(ctx, nums, sizeof(nums)) != 1 ||
	    EVP_DigestUpdate(ctx, body, len) != 1 ||
	    EVP_DigestFinal_ex(ctx, out, &n) != 1)
		memset(out, 0xff, DBREP_HASHLEN);	/* matches nothing */
}

/* Does <rec> follow <prev> (the hash of the record before it)? */
int
record_verify(const struct record *rec, const uint8_t *prev)
{
	uint8_t	h[DBREP_HASHLEN];

	chain_hash(prev, rec->lsn, rec->epoch, rec->ts, rec->body, rec->len,
	    h);
	return (memcmp(h, rec->hash, DBREP_HASHLEN) == 0);
}
