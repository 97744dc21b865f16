/*
 * seeds.c: write the unit corpus (tests/unit/http/corpus.h) out as the
 * fuzzers' seed corpus: seeds DIR makes DIR/{fuzz_request,fuzz_response,
 * fuzz_chunked,fuzz_target}/NNNN, each with the harness's leading
 * configuration byte where it has one.
 */
#include <sys/types.h>
#include <sys/stat.h>

#include <err.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "http/corpus.h"

static void
put(const char *dir, const char *target, int n, int cfg, const char *p,
    size_t len)
{
	char	 path[1024];
	FILE	*f;

	snprintf(path, sizeof(path), "%s/%s", dir, target);
	if (mkdir(path, 0755) == -1 && errno != EEXIST)
		err(1, "mkdir %s", path);
	snprintf(path, sizeof(path), "%s/%s/%04d", dir, target, n);
	if ((f = fopen(path, "w")) == NULL)
		err(1, "%s", path);
	if (cfg >= 0)
		fputc(cfg, f);
	if (len > 0 && fwrite(p, len, 1, f) != 1)
		err(1, "%s", path);
	if (fclose(f) == EOF)
		err(1, "%s", path);
}

/* The target of a request, for fuzz_target. */
static void
put_target(const char *dir, int n, const char *p, size_t len)
{
	const char	*sp = memchr(p, ' ', len), *e;

	if (sp == NULL)
		return;
	sp++;
	if ((e = memchr(sp, ' ', len - (sp - p))) == NULL)
		return;
	put(dir, "fuzz_target", n, -1, sp, e - sp);
}

int
main(int argc, char *argv[])
{
	static const char	*more[] = { "Sun, 06 Nov 1994 08:49:37 GMT",
				    "Sunday, 06-Nov-94 08:49:37 GMT",
				    "Sun Nov  6 08:49:37 1994",
				    "example.com:8080", "[::1]:443",
				    "/a/./b/../../..", "/%2e%2e/%2E./x",
				    "/%c0%ae%c0%ae/", "/%e2%82%ac?q=1#f",
				    "http://[fe80::1]:80/x/../y" };
	size_t			 i, len;
	int			 nt = 0;
	char			*b;

	if (argc != 2)
		errx(1, "usage: seeds dir");
	if (mkdir(argv[1], 0755) == -1 && errno != EEXIST)
		err(1, "mkdir %s", argv[1]);
	for (i = 0; i < nitems(corpus_req); i++) {
		const struct hcase	*c = &corpus_req[i];

		if (c->nrep > 0)
			continue;	/* big ones: the fuzzer finds them */
		b = corpus_input(c->in, c->len, NULL, 0, &len);
		if (b == NULL)
			err(1, NULL);
		put(argv[1], "fuzz_request", (int)i, c->lim, b, len);
		put_target(argv[1], nt++, b, len);
		free(b);
	}
	for (i = 0; i < nitems(corpus_rsp); i++) {
		const struct hcase	*c = &corpus_rsp[i];
		int			 m;

		if (c->nrep > 0)
			continue;
		m = c->req_method == HTTP_M_HEAD ? 1 :
		    c->req_method == HTTP_M_CONNECT ? 2 : 0;
		put(argv[1], "fuzz_response", (int)i, c->lim | (m << 2), c->in,
		    c->len);
	}
	for (i = 0; i < nitems(corpus_chunked); i++) {
		const struct ccase	*c = &corpus_chunked[i];

		if (c->nrep > 0)
			continue;
		put(argv[1], "fuzz_chunked", (int)i, c->trailer_max ? 1 : 0,
		    c->in, c->len);
	}
	for (i = 0; i < nitems(more); i++)
		put(argv[1], "fuzz_target", nt++, -1, more[i],
		    strlen(more[i]));
	/* a path longer than HTTP_MAXPATH once decoded and normalized */
	if ((b = malloc(6000)) == NULL)
		err(1, NULL);
	for (i = 0; i < 6000; i++)
		b[i] = "/a./.b"[i % 6];
	put(argv[1], "fuzz_target", nt++, -1, b, 6000);
	free(b);
	return (0);
}
