/*
 * fuzz_target.c: http_target.c.  The input is one request target, Host
 * value or date at once.  Checks: no read past the length given; a
 * decoded path is valid UTF-8 without NUL or control bytes; a normalized
 * path starts with "/" and has no "//", "/./" or "/../" segment, and
 * normalizing it again changes nothing; a valid Host has a host and a
 * port below 65536; a date that parses formats and parses back to the
 * same time.
 */
#include <sys/types.h>

#include <time.h>

#include "fuzz.h"

static void
check_path(const char *p, size_t len)
{
	char	*again;
	size_t	 i, n;

	CHECK(len > 0 && p[0] == '/' && strlen(p) == len);
	for (i = 0; i < len; i++)
		CHECK((unsigned char)p[i] >= 0x20 && p[i] != 0x7f &&
		    p[i] != '\\');
	for (i = 0; i + 1 < len; i++) {
		CHECK(!(p[i] == '/' && p[i + 1] == '/'));
		if (p[i] == '/' && p[i + 1] == '.')
			CHECK(!(i + 2 == len || p[i + 2] == '/' ||
			    (p[i + 2] == '.' && (i + 3 == len ||
			    p[i + 3] == '/'))));
	}
	/*
	 * On the heap, sized to the path: a path decoded from the raw
	 * input (not through http_target_parse) may exceed HTTP_MAXPATH
	 * (a fixed buffer here overflowed on one, fuzzing, 2026-11-26).
	 */
	again = malloc(len + 1);
	CHECK(again != NULL);
	memcpy(again, p, len + 1);
	n = http_path_normalize(again, len);
	CHECK(n == len && memcmp(again, p, len + 1) == 0);
	free(again);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct http_target	 t;
	struct slice		 h;
	const char		*why;
	char			*c, *out, date[64];
	size_t			 olen;
	time_t			 tm;
	int			 port, rv;

	/* a request target */
	c = fuzz_copy(data, size);
	if (http_target_parse(c, size, &t, &why) == 0) {
		check_path(t.path, t.pathlen);
		if (t.had_query)
			CHECK(t.query >= c && t.query + t.querylen <= c + size);
	} else
		CHECK(why != NULL);

	/* percent-decoding on its own, exactly sized output */
	out = malloc(size + 1);
	CHECK(out != NULL);
	if (http_pct_decode(c, size, out, size + 1, &olen, 1) == 0) {
		CHECK(olen <= size && out[olen] == '\0' && strlen(out) == olen);
		/* and a normalization in place, never longer */
		if (olen > 0 && out[0] == '/') {
			size_t	n = http_path_normalize(out, olen);

			CHECK(n <= olen);
			check_path(out, n);
		}
	}
	free(out);

	/* an authority, a Host value */
	rv = http_authority_parse(c, size, &h, &port);
	if (rv == 0) {
		CHECK(h.p == c && h.len <= size);
		CHECK(port >= 0 && port <= 65535);
	}
	if (http_host_valid(c, size) && size > 0) {
		CHECK(rv == 0 && h.len > 0);
		CHECK(memchr(c, ',', size) == NULL);
	}

	/* a date */
	tm = http_date_parse(c, size);
	if (tm != -1) {
		CHECK(tm >= 0);
		http_date_fmt(tm, date, sizeof(date));
		CHECK(strlen(date) == 29);
		CHECK(http_date_parse(date, 29) == tm);
	}
	free(c);
	return (0);
}
