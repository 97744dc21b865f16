/*
 * sticky.c: sticky sessions by an inserted cookie.
 *
 * The cookie is "<name>=<server>.<mac>": the server's name and the first
 * LBD_COOKIE_MACLEN hex digits of HMAC-SHA256(key, backend "/" server).
 * A client cannot forge it to pick a server of its choice, and a cookie
 * naming a server that is gone, down or full is ignored (the balancer
 * picks, and the response sets a new cookie).  The key is drawn by the
 * master when it starts and kept across reloads (parse.c); it is the
 * same in every worker.
 */
#include <sys/types.h>

#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "lbd.h"
#include "log.h"

static void
mac(struct lbd_backend *be, const char *srv, size_t len, char *out)
{
	unsigned char	md[EVP_MAX_MD_SIZE], in[256];
	unsigned int	mdlen;
	size_t		bl = strlen(be->name), i;
	static const char hex[] = "0123456789abcdef";

	if (bl + 1 + len > sizeof(in))
		len = sizeof(in) - bl - 1;
	memcpy(in, be->name, bl);
	in[bl] = '/';
	memcpy(in + bl + 1, srv, len);
	HMAC(EVP_sha256(), be->lc->cookie_key, sizeof(be->lc->cookie_key), in,
	    bl + 1 + len, md, &mdlen);
	for (i = 0; i < LBD_COOKIE_MACLEN / 2; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[LBD_COOKIE_MACLEN] = '\0';
}

/* The server the request's cookie names, if it is valid and usable. */
struct up_server *
sticky_find(struct lbd_backend *be, struct http_req *req)
{
	const char	*b = http_req_buf(req);
	size_t		 nl = strlen(be->cookie);
	int		 i = -1, k;

	while ((i = http_find(&req->msg, b, "cookie", i + 1)) != -1) {
		struct slice	v = http_hdr_value(b, &req->msg.hdrs[i]);
		const char	*p = v.p, *end = v.p + v.len;

		while (p < end) {
			const char	*semi = memchr(p, ';', end - p);
			const char	*e = semi ? semi : end;
			const char	*eq, *dot;
			char		 m[LBD_COOKIE_MACLEN + 1];

			while (p < e && *p == ' ')
				p++;
			eq = memchr(p, '=', e - p);
			if (eq != NULL && (size_t)(eq - p) == nl &&
			    memcmp(p, be->cookie, nl) == 0) {
				const char	*val = eq + 1;

				dot = memrchr(val, '.', e - val);
				if (dot == NULL || e - dot - 1 !=
				    LBD_COOKIE_MACLEN)
					return (NULL);
				mac(be, val, dot - val, m);
				if (CRYPTO_memcmp(m, dot + 1,
				    LBD_COOKIE_MACLEN) != 0)
					return (NULL);
				for (k = 0; k < be->pc.pool->nservers; k++) {
					struct up_server *s =
					    be->pc.pool->servers[k];

					if (strlen(s->name) == (size_t)(dot -
					    val) && memcmp(s->name, val,
					    dot - val) == 0)
						return (up_usable(s, 0) ? s :
						    NULL);
				}
				return (NULL);
			}
			p = semi ? semi + 1 : end;
		}
	}
	return (NULL);
}

/* Set the cookie for <srv> unless the request already carries it. */
void
sticky_set(struct lbd_backend *be, struct http_req *req, struct up_server *srv)
{
	char	m[LBD_COOKIE_MACLEN + 1];

	if (sticky_find(be, req) == srv)
		return;
	mac(be, srv->name, strlen(srv->name), m);
	http_resp_headerf(req, "Set-Cookie", "%s=%s.%s; Path=/; HttpOnly%s",
	    be->cookie, srv->name, m, req->conn->srv->scheme_https ?
	    "; Secure" : "");
}
