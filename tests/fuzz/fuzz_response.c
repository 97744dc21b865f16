/*
 * fuzz_response.c: response heads.  The first byte picks the limits and
 * the method of the request (GET, HEAD or CONNECT); the rest is the
 * message.  Checks: no read past the length given; a parse split at a
 * point that depends on the data ends as the whole one does; every
 * refusal is a 502; accepted heads hold together and their framing
 * follows RFC 9112 section 6.3.
 */
#include <sys/types.h>

#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum http_method	 meth[] = { HTTP_M_GET,
					    HTTP_M_HEAD, HTTP_M_CONNECT };
	struct http_hdr			 h1[HTTP_MAXHEADERS];
	struct http_hdr			 h2[HTTP_MAXHEADERS];
	struct http_msg			 a, b;
	const struct http_limits	*lim;
	enum http_method		 rm;
	size_t				 k;
	int				 ra, rb, s;

	if (size == 0)
		return (0);
	lim = &fuzz_limits[data[0] % nitems(fuzz_limits)];
	rm = meth[(data[0] >> 2) % nitems(meth)];
	data++;
	size--;

	http_msg_init(&a, 1, lim, h1);
	a.req_method = rm;
	ra = fuzz_parse(&a, data, size);
	k = fuzz_split(data, size);
	http_msg_init(&b, 1, lim, h2);
	b.req_method = rm;
	rb = fuzz_parse(&b, data, k);
	if (rb == HTTP_AGAIN)
		rb = fuzz_parse(&b, data, size);
	fuzz_same_msg(&a, ra, &b, rb);

	if (ra == HTTP_ERROR) {
		CHECK(a.error == 502 && a.errmsg != NULL);
		return (0);
	}
	if (ra == HTTP_AGAIN)
		return (0);
	fuzz_check_done(&a, size);
	s = a.status;
	CHECK(s >= 100 && s <= 599);
	CHECK(a.reason_off >= 12 && a.reason_off + a.reason_len < a.head_len);
	if (s < 200 && s != 101)
		CHECK(a.framing == HTTP_BODY_NONE);
	else if (s == 101 || (rm == HTTP_M_CONNECT && s < 300))
		CHECK(a.framing == HTTP_BODY_TUNNEL);
	else if (rm == HTTP_M_HEAD || s == 204 || s == 304)
		CHECK(a.framing == HTTP_BODY_NONE);
	else if (a.flags & HTTP_F_TE)
		CHECK(a.framing == HTTP_BODY_CHUNKED ||
		    a.framing == HTTP_BODY_CLOSE);
	else if (a.flags & HTTP_F_CL)
		CHECK(a.framing == HTTP_BODY_LENGTH);
	else
		CHECK(a.framing == HTTP_BODY_CLOSE);
	if ((a.flags & HTTP_F_BADFRAMING))
		CHECK(a.flags & HTTP_F_TE);
	return (0);
}
