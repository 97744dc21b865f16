/*
 * test_stats.c: counters, gauges and histograms in shared memory, and
 * their rendering in the Prometheus text format 0.0.4, which this file
 * parses back line by line with a strict parser of its own.
 */
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "buf.h"
#include "shm.h"
#include "stats.h"

/*
 * The parser.  The exposition format 0.0.4, as far as we emit it:
 *
 *	# HELP <name> <docstring, \\ and \n escaped>
 *	# TYPE <name> counter|gauge|histogram
 *	<name>[{<label>="<value, \\ \" \n escaped>",...}] <value>
 *
 * Every line ends with \n.  A family's HELP and TYPE come once, before
 * its samples; its samples are contiguous.  A histogram's samples are
 * <name>_bucket with an le label, <name>_sum and <name>_count.
 */
/*
 * The parser reports the first deviation in perr and jumps back to
 * prom_try(): hostile texts can then be tried in the test's own process.
 */
static jmp_buf	pjmp;
static char	perr[1024];

static __dead void p_fail(int, const char *, const char *, ...)
	    __printflike(3, 4);

static void
p_fail(int line, const char *expr, const char *fmt, ...)
{
	va_list	ap;
	int	n;

	n = snprintf(perr, sizeof(perr), "(test_stats.c:%d: %s)", line, expr);
	va_start(ap, fmt);
	vsnprintf(perr + n, sizeof(perr) - n, fmt, ap);
	va_end(ap);
	longjmp(pjmp, 1);
}

#define P_CHECK(c, ...)	do {						\
	if (!(c))							\
		p_fail(__LINE__, #c, " " __VA_ARGS__);			\
} while (0)
#define P_FAIL(...)		p_fail(__LINE__, "", " " __VA_ARGS__)
#define P_EQ(a, b, ...)		P_CHECK((a) == (b), __VA_ARGS__)
#define P_NEQ(a, b, ...)	P_CHECK((a) != (b), __VA_ARGS__)
#define P_LT(a, b, ...)		P_CHECK((a) < (b), __VA_ARGS__)
#define P_GT(a, b, ...)		P_CHECK((a) > (b), __VA_ARGS__)
#define P_GEQ(a, b, ...)	P_CHECK((a) >= (b), __VA_ARGS__)
#define P_NULL(a, ...)		P_CHECK((a) == NULL, __VA_ARGS__)
#define P_NOTNULL(a, ...)	P_CHECK((a) != NULL, __VA_ARGS__)
#define P_STREQ(a, b, ...)	P_CHECK(strcmp((a), (b)) == 0, __VA_ARGS__)

#define P_MAXFAM	300
#define P_MAXSAMPLES	8192
#define P_KEYLEN	(STATS_LABELLEN * 2)

struct pfam {
	char	name[STATS_NAMELEN];
	char	help[STATS_HELPLEN * 2];
	char	type[16];
	int	nhelp, ntype, nsamples;
};

struct psample {
	int	fam;
	char	name[STATS_NAMELEN + 8];	/* with its suffix */
	char	key[P_KEYLEN];		/* unescaped labels, le left out */
	char	le[32];			/* "" when none */
	double	value;
	char	raw[64];		/* the value as written */
};

struct prom {
	struct pfam	fam[P_MAXFAM];
	int		nfam;
	struct psample	s[P_MAXSAMPLES];
	int		ns;
};

static int
metric_name_ok(const char *p, size_t n)
{
	size_t	i;

	if (n == 0)
		return (0);
	for (i = 0; i < n; i++) {
		char	c = p[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    c == '_' || c == ':' || (i > 0 && c >= '0' && c <= '9')))
			return (0);
	}
	return (1);
}

static int
label_name_ok(const char *p, size_t n)
{
	size_t	i;

	if (n == 0)
		return (0);
	for (i = 0; i < n; i++) {
		char	c = p[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    c == '_' || (i > 0 && c >= '0' && c <= '9')))
			return (0);
	}
	return (1);
}

static double
parse_value(const char *p, int line)
{
	char	*end;
	double	 v;

	if (strcmp(p, "+Inf") == 0)
		return (INFINITY);
	if (strcmp(p, "-Inf") == 0)
		return (-INFINITY);
	if (strcmp(p, "NaN") == 0)
		return (NAN);
	P_CHECK(*p != '\0', "line %d: no value", line);
	P_CHECK(*p == '-' || (*p >= '0' && *p <= '9'),
	    "line %d: bad value \"%s\"", line, p);
	errno = 0;
	v = strtod(p, &end);
	P_CHECK(*end == '\0' && errno == 0, "line %d: bad value \"%s\"",
	    line, p);
	return (v);
}

static int
find_fam(struct prom *pr, const char *name)
{
	int	i;

	for (i = 0; i < pr->nfam; i++)
		if (strcmp(pr->fam[i].name, name) == 0)
			return (i);
	return (-1);
}

/* "# HELP name text" or "# TYPE name type" */
static void
parse_comment(struct prom *pr, char *l, int line, int *cur)
{
	char	*name, *rest, *o;
	int	 help, f;

	if (strncmp(l, "# HELP ", 7) == 0)
		help = 1;
	else if (strncmp(l, "# TYPE ", 7) == 0)
		help = 0;
	else {
		P_FAIL("line %d: unknown comment \"%s\"", line, l);
		return;
	}
	name = l + 7;
	rest = strchr(name, ' ');
	P_NOTNULL(rest, "line %d: no text after the name", line);
	*rest++ = '\0';
	P_CHECK(metric_name_ok(name, strlen(name)), "line %d: name \"%s\"",
	    line, name);
	if ((f = find_fam(pr, name)) == -1) {
		P_LT(pr->nfam, P_MAXFAM);
		f = pr->nfam++;
		strlcpy(pr->fam[f].name, name, sizeof(pr->fam[f].name));
	} else
		P_EQ(f, *cur, "line %d: %s comes back after another "
		    "family", line, name);
	P_EQ(pr->fam[f].nsamples, 0, "line %d: %s after its samples",
	    line, help ? "HELP" : "TYPE");
	*cur = f;
	if (help) {
		P_EQ(pr->fam[f].nhelp++, 0, "line %d: second HELP",
		    line);
		P_EQ(pr->fam[f].ntype, 0, "line %d: HELP after TYPE",
		    line);
		for (o = pr->fam[f].help; *rest; rest++) {
			P_LT((size_t)(o - pr->fam[f].help),
			    sizeof(pr->fam[f].help) - 2);
			if (*rest != '\\') {
				*o++ = *rest;
				continue;
			}
			rest++;
			if (*rest == '\\')
				*o++ = '\\';
			else if (*rest == 'n')
				*o++ = '\n';
			else
				P_FAIL("line %d: bad escape \\%c in "
				    "HELP", line, *rest);
		}
		*o = '\0';
	} else {
		P_EQ(pr->fam[f].ntype++, 0, "line %d: second TYPE",
		    line);
		P_CHECK(strcmp(rest, "counter") == 0 ||
		    strcmp(rest, "gauge") == 0 ||
		    strcmp(rest, "histogram") == 0, "line %d: type \"%s\"",
		    line, rest);
		strlcpy(pr->fam[f].type, rest, sizeof(pr->fam[f].type));
	}
}

/* name{k="v",...} value */
static void
parse_sample(struct prom *pr, char *l, int line, int cur)
{
	struct psample	*s;
	struct pfam	*f;
	char		*p = l, *sp;
	size_t		 n, klen = 0;
	const char	*suffix;

	P_LT(pr->ns, P_MAXSAMPLES);
	s = &pr->s[pr->ns++];
	memset(s, 0, sizeof(*s));
	n = strcspn(p, "{ ");
	P_CHECK(metric_name_ok(p, n), "line %d: sample name in \"%s\"",
	    line, l);
	P_LT(n, sizeof(s->name));
	memcpy(s->name, p, n);
	p += n;
	P_GEQ(cur, 0, "line %d: sample before any TYPE", line);
	f = &pr->fam[cur];
	P_CHECK(f->nhelp == 1 && f->ntype == 1,
	    "line %d: %s: sample before HELP and TYPE", line, s->name);
	s->fam = cur;
	suffix = s->name + strlen(f->name);
	P_CHECK(strncmp(s->name, f->name, strlen(f->name)) == 0,
	    "line %d: %s among the samples of %s", line, s->name, f->name);
	if (strcmp(f->type, "histogram") == 0)
		P_CHECK(strcmp(suffix, "_bucket") == 0 ||
		    strcmp(suffix, "_sum") == 0 ||
		    strcmp(suffix, "_count") == 0,
		    "line %d: %s in histogram %s", line, s->name, f->name);
	else
		P_STREQ(suffix, "", "line %d: %s in %s %s", line,
		    s->name, f->type, f->name);

	if (*p == '{') {
		p++;
		P_NEQ(*p, '}', "line %d: empty braces", line);
		for (;;) {
			char	 lname[STATS_LABELLEN], val[STATS_LABELLEN];
			char	*o = val;

			n = strcspn(p, "=");
			P_CHECK(label_name_ok(p, n), "line %d: label name "
			    "in \"%s\"", line, p);
			P_LT(n, sizeof(lname));
			memcpy(lname, p, n);
			lname[n] = '\0';
			p += n;
			P_CHECK(p[0] == '=' && p[1] == '"',
			    "line %d: expected =\" at \"%s\"", line, p);
			for (p += 2; *p != '"'; p++) {
				P_NEQ(*p, '\0', "line %d: "
				    "unterminated value", line);
				P_LT((size_t)(o - val), sizeof(val) - 2);
				if (*p != '\\') {
					*o++ = *p;
					continue;
				}
				p++;
				if (*p == '\\' || *p == '"')
					*o++ = *p;
				else if (*p == 'n')
					*o++ = '\n';
				else
					P_FAIL("line %d: bad escape "
					    "\\%c", line, *p);
			}
			*o = '\0';
			p++;
			/* elsewhere "le" is a label like any other */
			if (strcmp(lname, "le") == 0 &&
			    strcmp(suffix, "_bucket") == 0) {
				P_EQ(s->le[0], '\0', "line %d: two le",
				    line);
				strlcpy(s->le, val, sizeof(s->le));
			} else {
				char	pair[P_KEYLEN];
				int	w;

				w = snprintf(pair, sizeof(pair), "%s%s=%s",
				    klen ? "," : "", lname, val);
				P_LT(klen + w, sizeof(s->key));
				memcpy(s->key + klen, pair, w + 1);
				klen += w;
			}
			if (*p == '}')
				break;
			P_EQ(*p, ',', "line %d: expected , or } at "
			    "\"%s\"", line, p);
			p++;
		}
		p++;
	}
	if (strcmp(suffix, "_bucket") == 0)
		P_NEQ(s->le[0], '\0', "line %d: bucket without le",
		    line);
	P_EQ(*p, ' ', "line %d: expected a space at \"%s\"", line, p);
	p++;
	sp = strchr(p, ' ');
	P_NULL(sp, "line %d: a timestamp or junk after the value",
	    line);
	strlcpy(s->raw, p, sizeof(s->raw));
	s->value = parse_value(p, line);
	f->nsamples++;
	if (strcmp(f->type, "counter") == 0 || strcmp(suffix, "_bucket") == 0 ||
	    strcmp(suffix, "_count") == 0)
		P_CHECK(strspn(p, "0123456789") == strlen(p),
		    "line %d: %s must be a whole count, is %s", line, s->name,
		    p);
}

/* Histogram series: le increasing up to +Inf, cumulative, _count = +Inf. */
static void
check_histograms(struct prom *pr)
{
	int	i, j;

	for (i = 0; i < pr->ns; i++) {
		struct psample	*s = &pr->s[i];
		const char	*suffix;
		double		 lastle = -INFINITY, lastv = 0, infv = -1;
		int		 nb = 0, nsum = 0, ncount = 0, first = 1;

		if (strcmp(pr->fam[s->fam].type, "histogram") != 0)
			continue;
		suffix = s->name + strlen(pr->fam[s->fam].name);
		if (strcmp(suffix, "_bucket") != 0)
			continue;
		/* only from the first bucket of each series */
		for (j = 0; j < i; j++)
			if (pr->s[j].fam == s->fam &&
			    strcmp(pr->s[j].key, s->key) == 0)
				first = 0;
		if (!first)
			continue;
		for (j = i; j < pr->ns; j++) {
			struct psample	*t = &pr->s[j];
			const char	*sfx;

			if (t->fam != s->fam || strcmp(t->key, s->key) != 0)
				continue;
			sfx = t->name + strlen(pr->fam[t->fam].name);
			if (strcmp(sfx, "_bucket") == 0) {
				double	le;

				P_EQ(nsum + ncount, 0, "%s{%s}: bucket "
				    "after _sum or _count", s->name, s->key);
				P_CHECK(infv < 0, "%s{%s}: bucket after +Inf",
				    s->name, s->key);
				le = parse_value(t->le, 0);
				P_CHECK(!isnan(le), "le NaN");
				P_GT(le, lastle, "%s{%s}: le %s after "
				    "%g", s->name, s->key, t->le, lastle);
				P_GEQ(t->value, lastv, "%s{%s}: bucket "
				    "le=%s not cumulative", s->name, s->key,
				    t->le);
				lastle = le;
				lastv = t->value;
				nb++;
				if (isinf(le))
					infv = t->value;
			} else if (strcmp(sfx, "_sum") == 0)
				nsum++;
			else {
				ncount++;
				P_CHECK(infv >= 0, "%s{%s}: no +Inf bucket",
				    s->name, s->key);
				P_EQ(t->value, infv, "%s{%s}: _count "
				    "%g, +Inf bucket %g", s->name, s->key,
				    t->value, infv);
			}
		}
		P_CHECK(isinf(lastle) && lastle > 0,
		    "%s{%s}: the last le is not +Inf", s->name, s->key);
		P_EQ(nsum, 1, "%s{%s}: %d _sum", s->name, s->key, nsum);
		P_EQ(ncount, 1, "%s{%s}: %d _count", s->name, s->key,
		    ncount);
		P_GEQ(nb, 1);
	}
}

/*
 * Parse <len> bytes of <text>.  Returns what was parsed, or NULL with the
 * first deviation from the format in perr.
 */
static struct prom	*try_pr;
static char		*try_copy;

static struct prom *
prom_do(const char *text, size_t len)
{
	struct prom	*pr;
	char		*copy, *l, *nl;
	int		 line = 0, cur = -1, i;

	P_NOTNULL(try_pr = pr = calloc(1, sizeof(*pr)));
	P_NOTNULL(try_copy = copy = malloc(len + 1));
	if (len > 0)
		memcpy(copy, text, len);
	copy[len] = '\0';
	P_EQ(strlen(copy), len, "a NUL in the output");
	if (len > 0)
		P_EQ(copy[len - 1], '\n', "the last line has no "
		    "newline");
	for (l = copy; *l != '\0'; l = nl + 1) {
		nl = strchr(l, '\n');
		*nl = '\0';
		line++;
		P_NEQ(*l, '\0', "line %d: empty", line);
		P_NULL(strchr(l, '\r'), "line %d: CR", line);
		if (*l == '#')
			parse_comment(pr, l, line, &cur);
		else
			parse_sample(pr, l, line, cur);
	}
	for (i = 0; i < pr->nfam; i++) {
		P_EQ(pr->fam[i].nhelp, 1, "%s: no HELP",
		    pr->fam[i].name);
		P_EQ(pr->fam[i].ntype, 1, "%s: no TYPE",
		    pr->fam[i].name);
		P_GT(pr->fam[i].nsamples, 0, "%s: no samples",
		    pr->fam[i].name);
	}
	/* one series appears once */
	for (i = 0; i < pr->ns; i++) {
		int	j;

		for (j = i + 1; j < pr->ns; j++)
			P_CHECK(strcmp(pr->s[i].name, pr->s[j].name) != 0 ||
			    strcmp(pr->s[i].key, pr->s[j].key) != 0 ||
			    strcmp(pr->s[i].le, pr->s[j].le) != 0,
			    "%s{%s} twice", pr->s[i].name, pr->s[i].key);
	}
	check_histograms(pr);
	free(copy);
	try_pr = NULL;
	try_copy = NULL;
	return (pr);
}

static struct prom *
prom_try(const char *text, size_t len)
{
	perr[0] = '\0';
	if (setjmp(pjmp) != 0) {
		free(try_pr);
		free(try_copy);
		try_pr = NULL;
		try_copy = NULL;
		return (NULL);
	}
	return (prom_do(text, len));
}

/* Parse, and fail the test on any deviation from the format. */
static struct prom *
prom_parse(const char *text, size_t len)
{
	struct prom	*pr;

	pr = prom_try(text, len);
	cr_assert_not_null(pr, "%s\n--- the text:\n%.*s", perr, (int)len,
	    text);
	return (pr);
}

/* Render everything (or <prefix>) and parse it. */
static struct prom *
render_parse(const char *prefix)
{
	struct prom	*pr;
	struct buf	 b;

	buf_init(&b, 16 * 1024 * 1024);
	cr_assert_eq(stats_render(&b, prefix), 0);
	pr = prom_parse(buf_head(&b), buf_used(&b));
	buf_free(&b);
	return (pr);
}

/* The sample <name>{<key>} (and le, for buckets), which must exist. */
static const struct psample *
sample_get(const struct prom *pr, const char *name, const char *key,
    const char *le)
{
	int	i;

	for (i = 0; i < pr->ns; i++)
		if (strcmp(pr->s[i].name, name) == 0 &&
		    strcmp(pr->s[i].key, key) == 0 &&
		    strcmp(pr->s[i].le, le ? le : "") == 0)
			return (&pr->s[i]);
	cr_assert_fail("no sample %s{%s%s%s}", name, key, le ? " le=" : "",
	    le ? le : "");
	return (NULL);
}

static double
value_of(const struct prom *pr, const char *name, const char *key)
{
	return (sample_get(pr, name, key, NULL)->value);
}

static const struct pfam *
fam_get(const struct prom *pr, const char *name)
{
	int	i;

	for (i = 0; i < pr->nfam; i++)
		if (strcmp(pr->fam[i].name, name) == 0)
			return (&pr->fam[i]);
	return (NULL);
}

static void
init(void)
{
	cr_assert_eq(stats_init(0), 0);
}

/* The parser itself: it must refuse what breaks the format. */
Test(stats_parser, refuses_bad_input)
{
	static const char bad[][160] = {
		"x 1\n",
		"# TYPE x counter\n# HELP x h\nx 1\n",
		"# HELP x h\nx 1\n",
		"# HELP x h\n# TYPE x counter\nx 1",
		"# HELP x h\n# TYPE x counter\nx{a=\"1\"} 1 2\n",
		"# HELP x h\n# TYPE x counter\nx{a=\"\\t\"} 1\n",
		"# HELP x h\n# TYPE x counter\nx{a:b=\"1\"} 1\n",
		"# HELP x h\n# TYPE x counter\ny 1\n",
		"# HELP x h\n# TYPE x counter\nx 1.5\n",
		"# HELP x h\n# TYPE x histogram\nx_bucket{le=\"1\"} 1\n"
		    "x_sum 1\nx_count 1\n",
		"# HELP x h\n# TYPE x histogram\nx_bucket{le=\"2\"} 1\n"
		    "x_bucket{le=\"1\"} 1\nx_bucket{le=\"+Inf\"} 1\n"
		    "x_sum 1\nx_count 1\n",
		"# HELP x h\n# TYPE x histogram\nx_bucket{le=\"1\"} 2\n"
		    "x_bucket{le=\"+Inf\"} 1\nx_sum 1\nx_count 1\n",
		"# HELP x h\n# TYPE x histogram\nx_bucket{le=\"+Inf\"} 2\n"
		    "x_sum 1\nx_count 1\n",
		"# HELP x a\\\"b\n# TYPE x counter\nx 1\n",
		"# HELP x h\n# TYPE x counter\nx 1\n# HELP x h\n",
		"# HELP x h\n# TYPE x counter\nx 1\n# HELP y h\n"
		    "# TYPE y gauge\ny 1\n# TYPE x counter\n",
		"# HELP x h\n# TYPE x counter\nx 1\nx 2\n",
		"# HELP x h\n# TYPE x counter\nx{} 1\n",
		"# HELP x h\n# TYPE x counter\nx{a=\"1} 1\n",
		"# HELP x h\n# TYPE x counter\nx{a=\"1\"}  1\n",
		"# HELP x h\n# TYPE x counter\n\nx 1\n",
		"# HELP x h\n# TYPE x summary\nx 1\n",
		"# HELP x h\n# TYPE x gauge\nx one\n",
		"# HELP x h\n# TYPE x histogram\nx_bucket{le=\"+Inf\"} 1\n"
		    "x_count 1\n",
		"# HELP x h\n# TYPE x histogram\nx_bucket{le=\"+Inf\"} 1\n"
		    "x_sum 1\nx_count 1\nx_bucket{le=\"+Inf\"} 1\n",
		"# HELP x h\n# TYPE x histogram\nx 1\n",
		"# HELP x h\n",
	};
	size_t	i;

	for (i = 0; i < nitems(bad); i++) {
		struct prom	*pr;

		pr = prom_try(bad[i], strlen(bad[i]));
		cr_expect_null(pr, "the parser took case %zu", i);
		free(pr);
	}
}

Test(stats_parser, takes_good_input)
{
	static const char good[] =
	    "# HELP a_total Lines\\nand \\\\ slashes\n"
	    "# TYPE a_total counter\n"
	    "a_total 0\n"
	    "a_total{k=\"v\\\\\\\"\\n\",k2=\"\"} 12\n"
	    "# HELP h \n"
	    "# TYPE h histogram\n"
	    "h_bucket{le=\"0.5\"} 1\n"
	    "h_bucket{le=\"+Inf\"} 3\n"
	    "h_sum 7.25\n"
	    "h_count 3\n"
	    "# HELP g Gauge.\n"
	    "# TYPE g gauge\n"
	    "g -3\n";
	struct prom	*pr;

	pr = prom_parse(good, strlen(good));
	cr_assert_eq(pr->nfam, 3);
	cr_assert_str_eq(fam_get(pr, "a_total")->help,
	    "Lines\nand \\ slashes");
	cr_assert_eq(value_of(pr, "a_total", "k=v\\\"\n,k2="), 12);
	cr_assert_eq(value_of(pr, "g", ""), -3);
	cr_assert_eq(value_of(pr, "h_sum", ""), 7.25);
	free(pr);
}

/* Before stats_init everything is a no-op. */
Test(stats, off)
{
	struct stats_metric	*m;
	struct buf		 b;

	cr_assert_null(m = stats_counter("x_total", "X.", NULL));
	stats_inc(m);
	stats_add(m, 5);
	stats_gauge_add(m, 1);
	stats_gauge_set(m, 1);
	stats_observe(m, 1.0);
	cr_assert_eq(stats_counter_value(m), 0);
	cr_assert_eq(stats_gauge_value(m), 0);
	cr_assert_eq(stats_histogram_count(m), 0);
	stats_slot_reset(1);
	buf_init(&b, 1024);
	cr_assert_eq(stats_render(&b, NULL), 0);
	cr_assert_eq(buf_used(&b), 0);
	buf_free(&b);
}

Test(stats, init_twice)
{
	struct stats_metric	*a, *b;

	cr_assert_eq(stats_init(0), 0);
	cr_assert_not_null(a = stats_counter("same_total", "", NULL));
	cr_assert_eq(stats_init(4096), 0, "a second call keeps the segment");
	cr_assert_not_null(b = stats_counter("same_total", "", NULL));
	cr_assert_eq(a, b);
}

Test(stats, counters, .init = init)
{
	struct stats_metric	*a, *b, *c, *d;
	struct prom		*pr;

	cr_assert_not_null(a = stats_counter("req_total", "Requests.",
	    "backend", "web", NULL));
	cr_assert_not_null(b = stats_counter("req_total", "ignored",
	    "backend", "api", NULL));
	cr_assert_not_null(c = stats_counter("req_total", NULL, NULL));
	cr_assert_not_null(d = stats_counter("req_total", "Requests.",
	    "backend", "web", "code", "200", NULL));
	cr_assert_neq(a, b);
	cr_assert_neq(a, c);
	cr_assert_neq(a, d);
	cr_assert_eq(stats_counter_value(a), 0);
	stats_inc(a);
	stats_inc(a);
	stats_add(b, 40);
	stats_add(b, 2);
	stats_add(c, UINT64_C(1) << 40);
	stats_add(a, 0);
	cr_assert_eq(stats_counter_value(a), 2);
	cr_assert_eq(stats_counter_value(b), 42);
	cr_assert_eq(stats_counter_value(c), UINT64_C(1) << 40);
	cr_assert_eq(stats_counter_value(d), 0);

	pr = render_parse(NULL);
	cr_assert_eq(pr->nfam, 1);
	cr_assert_str_eq(pr->fam[0].type, "counter");
	cr_assert_str_eq(pr->fam[0].help, "Requests.", "the first HELP stays");
	cr_assert_eq(pr->ns, 4);
	/* in creation order */
	cr_assert_str_eq(pr->s[0].key, "backend=web");
	cr_assert_str_eq(pr->s[1].key, "backend=api");
	cr_assert_str_eq(pr->s[2].key, "");
	cr_assert_str_eq(pr->s[3].key, "backend=web,code=200");
	cr_assert_str_eq(pr->s[0].raw, "2");
	cr_assert_str_eq(pr->s[1].raw, "42");
	cr_assert_str_eq(pr->s[2].raw, "1099511627776");
	cr_assert_str_eq(pr->s[3].raw, "0");
	free(pr);
}

/* The largest counter renders exactly. */
Test(stats, counter_max, .init = init)
{
	struct stats_metric	*m;
	struct prom		*pr;

	cr_assert_not_null(m = stats_counter("big_total", "", NULL));
	stats_add(m, UINT64_MAX);
	pr = render_parse(NULL);
	cr_assert_str_eq(pr->s[0].raw, "18446744073709551615");
	free(pr);
}

Test(stats, get_or_create, .init = init)
{
	struct stats_metric	*m[6];
	struct prom		*pr;
	int			 i, used;

	cr_assert_not_null(m[0] = stats_counter("g_total", "", "a", "1",
	    "b", "2", NULL));
	cr_assert_not_null(m[1] = stats_counter("g_total", "", "a", "1",
	    "b", "2", NULL));
	cr_assert_eq(m[0], m[1]);
	stats_inc(m[0]);
	cr_assert_eq(stats_counter_value(m[1]), 1);
	cr_assert_not_null(m[2] = stats_gauge("g_gauge", "", "a", "1", NULL));
	cr_assert_not_null(m[3] = stats_gauge("g_gauge", "", "a", "1", NULL));
	cr_assert_eq(m[2], m[3]);
	cr_assert_not_null(m[4] = stats_histogram("g_hist", "",
	    stats_latency_buckets, stats_nlatency_buckets, "a", "1", NULL));
	cr_assert_not_null(m[5] = stats_histogram("g_hist", "",
	    stats_latency_buckets, stats_nlatency_buckets, "a", "1", NULL));
	cr_assert_eq(m[4], m[5]);
	/* escaped values are compared escaped: still the same metric */
	cr_assert_eq(stats_counter("g_total", "", "q", "a\"b\\c\nd", NULL),
	    stats_counter("g_total", "", "q", "a\"b\\c\nd", NULL));
	cr_assert_neq(stats_counter("g_total", "", "q", "a\"b", NULL),
	    stats_counter("g_total", "", "q", "a\\\"b", NULL));

	/* asking again creates nothing */
	pr = render_parse(NULL);
	used = pr->ns;
	free(pr);
	for (i = 0; i < 1000; i++)
		cr_assert_eq(stats_counter("g_total", "", "a", "1", "b", "2",
		    NULL), m[0]);
	pr = render_parse(NULL);
	cr_assert_eq(pr->ns, used);
	free(pr);
}

Test(stats, type_clash, .init = init)
{
	struct stats_metric	*m;
	static const double	 b[] = { 1, 2 };
	struct prom		*pr;

	cr_assert_not_null(m = stats_counter("clash", "C.", NULL));
	cr_assert_null(stats_gauge("clash", "G.", NULL));
	cr_assert_null(stats_gauge("clash", "G.", "x", "y", NULL));
	cr_assert_null(stats_histogram("clash", "H.", b, 2, NULL));
	cr_assert_not_null(stats_counter("clash", "C.", "x", "y", NULL));
	cr_assert_not_null(stats_gauge("clash2", "G.", NULL));
	cr_assert_null(stats_counter("clash2", "G.", NULL));
	pr = render_parse(NULL);
	cr_assert_eq(pr->nfam, 2);
	cr_assert_str_eq(fam_get(pr, "clash")->type, "counter");
	cr_assert_str_eq(fam_get(pr, "clash2")->type, "gauge");
	free(pr);
}

Test(stats, names, .init = init)
{
	static const struct {
		char	name[128];
		int	ok;
	} t[] = {
		{ "a", 1 },
		{ "_a", 1 },
		{ "A_b:c9", 1 },
		{ ":x", 1 },
		{ "", 0 },
		{ "9a", 0 },
		{ "a-b", 0 },
		{ "a b", 0 },
		{ "a.b", 0 },
		{ "a\nb", 0 },
		{ "a\"b", 0 },
		{ "é", 0 },
		{ "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 1 },
		{ "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 0 },
	};
	size_t		 i;
	struct prom	*pr;

	cr_assert_eq(strlen(t[12].name), STATS_NAMELEN - 1);
	for (i = 0; i < nitems(t); i++) {
		struct stats_metric	*m;

		m = stats_counter(t[i].name, "", NULL);
		cr_expect_eq(m != NULL, t[i].ok, "name \"%s\"", t[i].name);
		stats_inc(m);
	}
	pr = render_parse(NULL);
	free(pr);
}

Test(stats, label_names, .init = init)
{
	static const struct {
		char	label[64];
		int	ok;
	} t[] = {
		{ "a", 1 },
		{ "_a", 1 },
		{ "code", 1 },
		{ "A9_z", 1 },
		{ "", 0 },
		{ "9a", 0 },
		{ "a:b", 0 },		/* ':' is for metric names only */
		{ "a-b", 0 },
		{ "a b", 0 },
		{ "a=b", 0 },
		{ "a\"b", 0 },
		{ "a,b", 0 },
		{ "a}", 0 },
	};
	size_t		 i;
	struct prom	*pr;

	for (i = 0; i < nitems(t); i++) {
		struct stats_metric	*m;

		m = stats_counter("labels_total", "", t[i].label, "v", NULL);
		cr_expect_eq(m != NULL, t[i].ok, "label \"%s\"", t[i].label);
		stats_inc(m);
		m = stats_gauge("labels_gauge", "", "ok", "1", t[i].label,
		    "v", NULL);
		cr_expect_eq(m != NULL, t[i].ok, "second label \"%s\"",
		    t[i].label);
		stats_gauge_set(m, 1);
	}
	/* a name without a value */
	cr_assert_null(stats_counter("labels_total", "", "a", NULL));
	cr_assert_null(stats_counter("labels_total", "", "a", "1", "b",
	    NULL));
	pr = render_parse(NULL);
	free(pr);
}

/* Label values: \, " and newline escaped; the rest as is. */
Test(stats, label_escaping, .init = init)
{
	static const struct {
		char	value[64];
		char	rendered[64];
	} t[] = {
		{ "plain", "plain" },
		{ "", "" },
		{ "back\\slash", "back\\\\slash" },
		{ "say \"hi\"", "say \\\"hi\\\"" },
		{ "two\nlines", "two\\nlines" },
		{ "\\\"\n", "\\\\\\\"\\n" },
		{ "\\n", "\\\\n" },
		{ "tab\there", "tab\there" },
		{ "comma,brace}", "comma,brace}" },
		{ "x=\"y\"", "x=\\\"y\\\"" },
		{ "ünïcode", "ünïcode" },
		{ "\n\n\n", "\\n\\n\\n" },
	};
	struct stats_metric	*m;
	struct prom		*pr;
	struct buf		 b;
	size_t			 i;

	for (i = 0; i < nitems(t); i++) {
		cr_assert_not_null(m = stats_counter("esc_total", "",
		    "v", t[i].value, "n", "1", NULL), "case %zu", i);
		stats_add(m, i + 1);
	}
	buf_init(&b, 1 << 20);
	cr_assert_eq(stats_render(&b, NULL), 0);
	for (i = 0; i < nitems(t); i++) {
		char	line[256];

		snprintf(line, sizeof(line), "\nesc_total{v=\"%s\",n=\"1\"} "
		    "%zu\n", t[i].rendered, i + 1);
		cr_expect_not_null(strstr(buf_cstr(&b), line),
		    "case %zu: no line %s", i, line);
	}
	pr = prom_parse(buf_head(&b), buf_used(&b));
	cr_assert_eq(pr->ns, (int)nitems(t));
	for (i = 0; i < nitems(t); i++) {
		char	key[128];

		snprintf(key, sizeof(key), "v=%s,n=1", t[i].value);
		cr_expect_eq(value_of(pr, "esc_total", key), i + 1,
		    "case %zu", i);
	}
	free(pr);
	buf_free(&b);
}

/* Labels that do not fit are refused, not cut. */
Test(stats, label_too_long, .init = init)
{
	char	v[STATS_LABELLEN + 8];
	size_t	n;

	/* k="<v>" in STATS_LABELLEN - 1 bytes: n + 4 */
	n = STATS_LABELLEN - 1 - 4;
	memset(v, 'v', n);
	v[n] = '\0';
	cr_assert_not_null(stats_counter("long_total", "", "k", v, NULL));
	/* the longest that fits, not one byte more */
	memset(v, 'v', sizeof(v));
	v[n + 1] = '\0';
	cr_assert_null(stats_counter("long_total", "", "k", v, NULL));
	/* escapes count */
	memset(v, '"', n / 2 + 1);
	v[n / 2 + 1] = '\0';
	cr_assert_null(stats_counter("long_total", "", "k", v, NULL));
	v[n / 2] = '\0';
	cr_assert_not_null(stats_counter("long_total", "", "k", v, NULL));
	free(render_parse(NULL));
}

/* HELP: \ and newline escaped, quotes not. */
Test(stats, help_escaping, .init = init)
{
	static const struct {
		char	help[64];
		char	rendered[64];
	} t[] = {
		{ "Plain text.", "Plain text." },
		{ "", "" },
		{ "C:\\path", "C:\\\\path" },
		{ "line\nbreak", "line\\nbreak" },
		{ "\"quoted\"", "\"quoted\"" },
		{ "\\n", "\\\\n" },
		{ "end\\", "end\\\\" },
	};
	struct prom	*pr;
	struct buf	 b;
	size_t		 i;

	for (i = 0; i < nitems(t); i++) {
		char	name[32];

		snprintf(name, sizeof(name), "help%zu_total", i);
		stats_inc(stats_counter(name, t[i].help, NULL));
	}
	buf_init(&b, 1 << 20);
	cr_assert_eq(stats_render(&b, NULL), 0);
	for (i = 0; i < nitems(t); i++) {
		char	line[128];

		snprintf(line, sizeof(line), "# HELP help%zu_total %s\n", i,
		    t[i].rendered);
		cr_expect_not_null(strstr(buf_cstr(&b), line), "case %zu: %s",
		    i, line);
	}
	pr = prom_parse(buf_head(&b), buf_used(&b));
	for (i = 0; i < nitems(t); i++)
		cr_expect_str_eq(pr->fam[i].help, t[i].help, "case %zu", i);
	free(pr);
	buf_free(&b);
}

Test(stats, gauges_per_slot, .init = init)
{
	struct stats_metric	*g, *h, *c;
	struct prom		*pr;

	cr_assert_not_null(g = stats_gauge("conns", "Open.", NULL));
	cr_assert_not_null(h = stats_gauge("conns", "Open.", "w", "x", NULL));
	cr_assert_not_null(c = stats_counter("conns_total", "All.", NULL));
	cr_assert_eq(stats_get_slot(), 0);
	stats_gauge_set(g, 100);
	stats_set_slot(3);
	cr_assert_eq(stats_get_slot(), 3);
	stats_gauge_add(g, 10);
	stats_gauge_add(g, -4);
	stats_gauge_add(h, -7);
	stats_inc(c);
	stats_set_slot(STATS_SLOTS - 1);
	stats_gauge_set(g, 5);
	stats_gauge_set(g, 2);			/* set replaces */
	cr_assert_eq(stats_gauge_value(g), 100 + 6 + 2);
	cr_assert_eq(stats_gauge_value(h), -7);

	pr = render_parse(NULL);
	cr_assert_str_eq(sample_get(pr, "conns", "", NULL)->raw, "108");
	cr_assert_str_eq(sample_get(pr, "conns", "w=x", NULL)->raw, "-7");
	free(pr);

	/* a dead process's gauges go; counters stay */
	stats_slot_reset(3);
	cr_assert_eq(stats_gauge_value(g), 102);
	cr_assert_eq(stats_gauge_value(h), 0);
	cr_assert_eq(stats_counter_value(c), 1);
	stats_slot_reset(0);
	cr_assert_eq(stats_gauge_value(g), 2);
	stats_slot_reset(-1);			/* out of range: ignored */
	stats_slot_reset(STATS_SLOTS);
	cr_assert_eq(stats_gauge_value(g), 2);
	stats_slot_reset(STATS_SLOTS - 1);
	cr_assert_eq(stats_gauge_value(g), 0);

	/* bad slots fall back to 0 */
	stats_set_slot(-5);
	cr_assert_eq(stats_get_slot(), 0);
	stats_set_slot(STATS_SLOTS);
	cr_assert_eq(stats_get_slot(), 0);
}

/* Histograms: cumulative buckets, le inclusive, sum and count. */
Test(stats, histogram, .init = init)
{
	static const double	 bounds[] = { 0.1, 0.5, 1 };
	static const double	 obs[] = { 0.05, 0.1, 0.3, 0.5, 0.7, 1, 2,
	    100, -3 };
	struct stats_metric	*m, *e;
	const struct psample	*s;
	struct prom		*pr;
	size_t			 i;
	double			 sum = 0;

	cr_assert_not_null(m = stats_histogram("lat_seconds", "Latency.",
	    bounds, 3, "route", "/a", NULL));
	cr_assert_not_null(e = stats_histogram("lat_seconds", "Latency.",
	    bounds, 3, "route", "/empty", NULL));
	for (i = 0; i < nitems(obs); i++) {
		stats_observe(m, obs[i]);
		sum += obs[i];
	}
	cr_assert_eq(stats_histogram_count(m), nitems(obs));
	cr_assert_eq(stats_histogram_count(e), 0);

	pr = render_parse(NULL);
	cr_assert_str_eq(fam_get(pr, "lat_seconds")->type, "histogram");
	cr_assert_str_eq(sample_get(pr, "lat_seconds_bucket", "route=/a",
	    "0.1")->raw, "3");		/* -3, 0.05, 0.1 */
	cr_assert_str_eq(sample_get(pr, "lat_seconds_bucket", "route=/a",
	    "0.5")->raw, "5");
	cr_assert_str_eq(sample_get(pr, "lat_seconds_bucket", "route=/a",
	    "1")->raw, "7");
	cr_assert_str_eq(sample_get(pr, "lat_seconds_bucket", "route=/a",
	    "+Inf")->raw, "9");
	cr_assert_str_eq(sample_get(pr, "lat_seconds_count", "route=/a",
	    NULL)->raw, "9");
	s = sample_get(pr, "lat_seconds_sum", "route=/a", NULL);
	cr_assert_float_eq(s->value, sum, 1e-9);
	cr_assert_str_eq(sample_get(pr, "lat_seconds_bucket", "route=/empty",
	    "+Inf")->raw, "0");
	cr_assert_str_eq(sample_get(pr, "lat_seconds_count", "route=/empty",
	    NULL)->raw, "0");
	cr_assert_eq(sample_get(pr, "lat_seconds_sum", "route=/empty",
	    NULL)->value, 0);
	/* 4 buckets, sum and count, twice */
	cr_assert_eq(pr->ns, 12);
	free(pr);
}

Test(stats, histogram_latency_buckets, .init = init)
{
	struct stats_metric	*m;
	struct prom		*pr;
	int			 i;

	cr_assert_not_null(m = stats_histogram("rt_seconds", "RT.",
	    stats_latency_buckets, stats_nlatency_buckets, NULL));
	for (i = 0; i < 10000; i++)
		stats_observe(m, (double)(i % 400) / 10.0);
	pr = render_parse(NULL);
	cr_assert_eq(pr->ns, stats_nlatency_buckets + 3);
	cr_assert_eq(value_of(pr, "rt_seconds_count", ""), 10000);
	free(pr);
}

/* No bounds at all: only the +Inf bucket. */
Test(stats, histogram_no_bounds, .init = init)
{
	struct stats_metric	*m;
	struct prom		*pr;

	cr_assert_not_null(m = stats_histogram("only_inf", "", NULL, 0,
	    NULL));
	stats_observe(m, 1);
	stats_observe(m, 2);
	pr = render_parse(NULL);
	cr_assert_eq(pr->ns, 3);
	cr_assert_str_eq(sample_get(pr, "only_inf_bucket", "", "+Inf")->raw,
	    "2");
	cr_assert_eq(value_of(pr, "only_inf_sum", ""), 3);
	free(pr);
}

/* Bounds that would break the format or the segment are refused. */
Test(stats, histogram_bad_bounds, .init = init)
{
	static const double	 inc[] = { 1, 2, 3 }, same[] = { 1, 1 },
	    down[] = { 2, 1 }, nan1[] = { 1, NAN }, inf1[] = { 1, INFINITY },
	    ninf[] = { -INFINITY, 1 }, neg[] = { -1, 0, 1 };
	double			 many[STATS_MAXBUCKETS + 1];
	struct stats_metric	*m;
	int			 i;

	for (i = 0; i < STATS_MAXBUCKETS + 1; i++)
		many[i] = i;
	cr_assert_null(stats_histogram("hb_a", "", inc, -1, NULL));
	cr_assert_null(stats_histogram("hb_b", "", same, 2, NULL));
	cr_assert_null(stats_histogram("hb_c", "", down, 2, NULL));
	cr_assert_null(stats_histogram("hb_d", "", nan1, 2, NULL));
	cr_assert_null(stats_histogram("hb_e", "", inf1, 2, NULL));
	cr_assert_null(stats_histogram("hb_f", "", ninf, 2, NULL));
	cr_assert_null(stats_histogram("hb_g", "", many,
	    STATS_MAXBUCKETS + 1, NULL));
	cr_assert_not_null(m = stats_histogram("hb_h", "", many,
	    STATS_MAXBUCKETS, NULL));
	stats_observe(m, 5);
	cr_assert_not_null(m = stats_histogram("hb_i", "", neg, 3, NULL));
	stats_observe(m, -0.5);
	/* "le" is the bucket's label */
	cr_assert_null(stats_histogram("hb_j", "", inc, 3, "le", "1", NULL));
	cr_assert_not_null(stats_counter("hb_k", "", "le", "1", NULL));
	free(render_parse(NULL));
}

Test(stats, render_prefix, .init = init)
{
	struct prom	*pr;

	stats_inc(stats_counter("webd_requests_total", "", NULL));
	stats_inc(stats_counter("lbd_requests_total", "", NULL));
	stats_gauge_set(stats_gauge("webd_open", "", NULL), 3);
	pr = render_parse("webd_");
	cr_assert_eq(pr->nfam, 2);
	cr_assert_not_null(fam_get(pr, "webd_requests_total"));
	cr_assert_not_null(fam_get(pr, "webd_open"));
	free(pr);
	pr = render_parse("nothing");
	cr_assert_eq(pr->nfam, 0);
	free(pr);
	pr = render_parse("");
	cr_assert_eq(pr->nfam, 3);
	free(pr);
}

/* Rendering into a full buffer fails and says so. */
Test(stats, render_buffer_full, .init = init)
{
	struct buf	b;
	int		i;

	for (i = 0; i < 50; i++)
		stats_inc(stats_counter("full_total", "Many.", "i",
		    (char []){ 'a' + i % 26, 'a' + i / 26, '\0' }, NULL));
	buf_init(&b, 256);
	cr_assert_eq(stats_render(&b, NULL), -1);
	cr_assert_eq(errno, ENOBUFS);
	cr_assert_leq(buf_used(&b), 256);
	buf_free(&b);
}

/* A full segment refuses new metrics and keeps serving the old ones. */
Test(stats, segment_full)
{
	struct stats_metric	*first, *m;
	struct prom		*pr;
	char			 v[16];
	int			 n;

	cr_assert_eq(stats_init(1), 0);		/* the smallest there is */
	cr_assert_not_null(first = stats_counter("seg_total", "", "n", "0",
	    NULL));
	for (n = 1; n < 100000; n++) {
		snprintf(v, sizeof(v), "%d", n);
		if ((m = stats_counter("seg_total", "", "n", v, NULL)) == NULL)
			break;
		stats_add(m, n);
	}
	cr_assert_lt(n, 100000, "never full");
	cr_assert_gt(n, 3);
	/* no room for a gauge either, nor a new family's first record */
	cr_assert_null(stats_gauge("seg_gauge", "", NULL));
	cr_assert_null(stats_counter("seg_other_total", "", NULL));
	/* what exists still works */
	cr_assert_eq(stats_counter("seg_total", "", "n", "0", NULL), first);
	stats_inc(first);
	cr_assert_eq(stats_counter_value(first), 1);
	pr = render_parse(NULL);
	cr_assert_eq(pr->nfam, 1, "a family without records is not shown");
	cr_assert_eq(pr->ns, n);
	cr_assert_eq(value_of(pr, "seg_total", "n=1"), 1);
	free(pr);
}

/*
 * A full segment takes new series again once the generations that asked
 * for old ones are gone: their records are cleared and reused, within
 * their family, and never shown under their old labels.
 */
Test(stats, records_of_gone_generations_reused)
{
	struct stats_metric	*m, *old = NULL, *h, *kept;
	struct prom		*pr;
	char			 v[16];
	int			 n;

	cr_assert_eq(stats_init(1), 0);
	stats_set_generation(1);
	cr_assert_not_null(h = stats_histogram("seg_seconds", "", NULL, 0,
	    "n", "old", NULL));
	stats_observe(h, 1.0);
	for (n = 0; n < 100000; n++) {
		snprintf(v, sizeof(v), "%d", n);
		if ((m = stats_counter("seg_total", "", "n", v, NULL)) == NULL)
			break;
		stats_add(m, 7);
		if (n == 0)
			old = m;
	}
	cr_assert_gt(n, 3);
	/* generation 2 keeps n=1 and asks for new names: no room */
	stats_set_generation(2);
	cr_assert_not_null(kept = stats_counter("seg_total", "", "n", "1",
	    NULL));
	cr_assert_null(stats_counter("seg_total", "", "n", "new0", NULL));
	/* generation 1 gone: its records are taken, cleared */
	stats_collect(2);
	cr_assert_not_null(m = stats_counter("seg_total", "", "n", "new0",
	    NULL));
	cr_assert(m != kept && (char *)m >= (char *)old);
	cr_assert_eq(stats_counter_value(m), 0);
	cr_assert_eq(stats_counter("seg_total", "", "n", "new0", NULL), m);
	stats_inc(m);
	cr_assert_not_null(stats_counter("seg_total", "", "n", "new1", NULL));
	/* a histogram's record goes to a histogram of its family only */
	cr_assert_null(stats_gauge("seg_gauge", "", NULL));
	cr_assert_eq(m = stats_histogram("seg_seconds", "", NULL, 0, "n",
	    "new", NULL), h);
	cr_assert_eq(stats_histogram_count(m), 0);
	pr = render_parse(NULL);
	cr_assert_eq(value_of(pr, "seg_total", "n=new0"), 1);
	cr_assert_eq(value_of(pr, "seg_total", "n=new1"), 0);
	cr_assert_eq(value_of(pr, "seg_total", "n=1"), 7);
	/* 3 counters; the histogram: +Inf, _sum, _count */
	cr_assert_eq(pr->ns, 3 + 3, "only what generation 2 asked for");
	free(pr);
}

Test(stats, too_many_families, .init = init)
{
	struct prom	*pr;
	char		 name[32];
	int		 i;

	for (i = 0; i < STATS_MAXFAMILIES; i++) {
		snprintf(name, sizeof(name), "fam%d_total", i);
		cr_assert_not_null(stats_counter(name, "", NULL), "%s", name);
	}
	cr_assert_null(stats_counter("one_more_total", "", NULL));
	cr_assert_not_null(stats_counter("fam0_total", "", "new", "label",
	    NULL), "a known family takes new labels");
	pr = render_parse(NULL);
	cr_assert_eq(pr->nfam, STATS_MAXFAMILIES);
	free(pr);
}

/*
 * Several processes update the segment mapped before they were forked;
 * the master reads the sums.  They also create metrics concurrently.
 */
#define NCHILD	4
#define NITER	20000

Test(stats, forked_processes, .init = init, .timeout = 60)
{
	static const double	 bounds[] = { 1, 10, 100 };
	struct stats_metric	*c, *g, *h;
	pid_t			 pids[NCHILD];
	struct prom		*pr;
	int			 i, status;

	cr_assert_not_null(c = stats_counter("fork_total", "", NULL));
	cr_assert_not_null(g = stats_gauge("fork_open", "", NULL));
	cr_assert_not_null(h = stats_histogram("fork_size", "", bounds, 3,
	    NULL));
	fflush(NULL);
	for (i = 0; i < NCHILD; i++) {
		if ((pids[i] = fork()) == 0) {
			struct stats_metric	*own, *shared;
			char			 id[16];
			int			 j;

			stats_set_slot(i + 1);
			snprintf(id, sizeof(id), "%d", i);
			for (j = 0; j < NITER; j++) {
				stats_inc(c);
				stats_observe(h, j % 200);
				if (j % 100 == 0) {
					/* get-or-create under contention */
					shared = stats_counter(
					    "fork_shared_total", "", NULL);
					own = stats_counter("fork_own_total",
					    "", "child", id, NULL);
					if (shared == NULL || own == NULL)
						_exit(2);
					stats_inc(shared);
					stats_inc(own);
				}
			}
			stats_gauge_add(g, i + 1);
			_exit(0);
		}
		cr_assert_gt(pids[i], 0);
	}
	for (i = 0; i < NCHILD; i++) {
		cr_assert_eq(waitpid(pids[i], &status, 0), pids[i]);
		cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		    "child %d: status %#x", i, status);
	}
	cr_assert_eq(stats_counter_value(c), NCHILD * NITER);
	cr_assert_eq(stats_histogram_count(h), NCHILD * NITER);
	cr_assert_eq(stats_gauge_value(g), 1 + 2 + 3 + 4);

	pr = render_parse(NULL);
	cr_assert_eq(value_of(pr, "fork_total", ""), NCHILD * NITER);
	cr_assert_eq(value_of(pr, "fork_shared_total", ""),
	    NCHILD * NITER / 100);
	for (i = 0; i < NCHILD; i++) {
		char	key[32];

		snprintf(key, sizeof(key), "child=%d", i);
		cr_assert_eq(value_of(pr, "fork_own_total", key), NITER / 100);
	}
	cr_assert_eq(fam_get(pr, "fork_own_total")->nsamples, NCHILD);
	cr_assert_eq(fam_get(pr, "fork_shared_total")->nsamples, 1);
	/* j % 200 over 0..19999: 100 rounds of 0..199 per child */
	cr_assert_eq(sample_get(pr, "fork_size_bucket", "", "1")->value,
	    NCHILD * 100 * 2);
	cr_assert_eq(sample_get(pr, "fork_size_bucket", "", "10")->value,
	    NCHILD * 100 * 11);
	cr_assert_eq(sample_get(pr, "fork_size_bucket", "", "100")->value,
	    NCHILD * 100 * 101);
	cr_assert_eq(value_of(pr, "fork_size_count", ""), NCHILD * NITER);
	cr_assert_float_eq(value_of(pr, "fork_size_sum", ""),
	    NCHILD * 100.0 * (199 * 200 / 2), 1e-3);
	free(pr);

	/* child 2 (slot 3) died: its open connections no longer count */
	stats_slot_reset(3);
	cr_assert_eq(stats_gauge_value(g), 1 + 2 + 4);
}

/* Everything at once, through the parser. */
Test(stats, render_everything, .init = init)
{
	static const double	 b[] = { 0.001, 0.01, 0.1, 1 };
	struct prom		*pr;
	int			 i;

	for (i = 0; i < 30; i++) {
		char	v[16];

		snprintf(v, sizeof(v), "%d", i);
		stats_add(stats_counter("all_requests_total", "All\nrequests.",
		    "backend", v, "q", "\"\\\n", NULL), i);
		stats_gauge_set(stats_gauge("all_open", "Open \\ now.",
		    "backend", v, NULL), i - 15);
		stats_observe(stats_histogram("all_latency_seconds",
		    "Latency.", b, 4, "backend", v, NULL), i / 10.0);
		stats_observe(stats_histogram("all_latency_seconds",
		    "Latency.", b, 4, "backend", v, NULL), 0.0005 * i);
	}
	pr = render_parse(NULL);
	cr_assert_eq(pr->nfam, 3);
	cr_assert_eq(pr->ns, 30 + 30 + 30 * (5 + 2));
	cr_assert_str_eq(fam_get(pr, "all_requests_total")->help,
	    "All\nrequests.");
	cr_assert_str_eq(fam_get(pr, "all_open")->help, "Open \\ now.");
	cr_assert_eq(value_of(pr, "all_requests_total",
	    "backend=7,q=\"\\\n"), 7);
	cr_assert_eq(value_of(pr, "all_open", "backend=3"), -12);
	cr_assert_eq(value_of(pr, "all_latency_seconds_count", "backend=29"),
	    2);
	free(pr);
}

/*
 * A shared count keeps each process's part by its stats slot: the part
 * of a process that died is taken back, the others' stay.
 */
Test(shm_count, parts_taken_back)
{
	struct shm_count	*c;
	pid_t			 pid;
	int			 st;

	cr_assert_eq(shm_init(0), 0);
	cr_assert_not_null(c = shm_get("count/test", sizeof(*c), NULL));
	stats_set_slot(1);
	shm_count_add(c, 2);
	if ((pid = fork()) == 0) {
		/* a worker of slot 3 takes 5 and dies holding them */
		stats_set_slot(3);
		shm_count_add(c, 5);
		shm_count_add(c, -1);
		_exit(0);
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert_eq(shm_count_get(c), 6);
	cr_assert_eq(shm_count_reap(c, 3), 4);
	cr_assert_eq(shm_count_get(c), 2);
	cr_assert_eq(shm_count_reap(c, 3), 0);
	cr_assert_eq(shm_count_reap(c, 200), 0);
	/* ours is ours until given back */
	shm_count_add(c, -2);
	cr_assert_eq(shm_count_get(c), 0);
	cr_assert_eq(shm_count_reap(c, 1), 0);
}

/*
 * Blocks belong to the conf generations that asked for them: once no
 * process runs a generation as old, the blocks only older ones had are
 * given back, zeroed, for new names of the same size; those asked for
 * outside a conf load stay.
 */
Test(shm, blocks_given_back_by_generation)
{
	const size_t	 big = 3 * 1024 * 1024 + 100;
	unsigned char	*keep, *a, *a2, *b, *c;
	size_t		 i;
	int		 created;

	cr_assert_eq(shm_init(0), 0);
	cr_assert_not_null(keep = shm_get("keep", 100, NULL));
	keep[0] = 7;
	shm_set_generation(1);
	cr_assert_not_null(a = shm_get("a", big, NULL));
	memset(a, 0xa5, big);
	cr_assert_not_null(b = shm_get("b", 64, NULL));
	b[0] = 1;
	shm_set_generation(2);
	cr_assert_eq(shm_get("b", 64, &created), b);	/* 2 still has it */
	cr_assert_eq(created, 0);
	cr_assert_not_null(c = shm_get("c", 64, NULL));
	cr_assert_eq(shm_collect(1), 0);
	cr_assert_eq(shm_collect(2), 1);		/* "a" only */
	shm_set_generation(3);
	cr_assert_eq(a2 = shm_get("a2", big, &created), a);
	cr_assert_eq(created, 1);
	for (i = 0; i < big; i++)
		if (a2[i] != 0)
			cr_assert_fail("byte %zu of a reused block not zero", i);
	cr_assert_eq(shm_get("b", 64, NULL), b);
	cr_assert_eq(b[0], 1);
	cr_assert_eq(shm_collect(3), 1);		/* "c" */
	cr_assert_eq(shm_collect(100), 2);		/* "a2", "b" */
	cr_assert_eq(shm_get("keep", 100, NULL), keep);
	cr_assert_eq(keep[0], 7);
	/* an old name asked for again is a new, zero block */
	cr_assert_not_null(b = shm_get("b", 64, &created));
	cr_assert_eq(created, 1);
	cr_assert_eq(b[0], 0);
}

/*
 * The shared spin lock: a process that dies holding it does not stop the
 * others for good; one that lives keeps it until it lets go.
 */
Test(shm_lock, taken_over_from_a_dead_owner_only, .timeout = 20)
{
	struct {
		shm_lock_t	lock;
		_Atomic int	done;
	}		*s;
	pid_t		 pid;
	int		 st;

	cr_assert_eq(shm_init(0), 0);
	cr_assert_not_null(s = shm_get("lock/test", sizeof(*s), NULL));
	shm_lock(&s->lock);		/* the pid known before the fork */
	shm_unlock(&s->lock);
	if ((pid = fork()) == 0) {
		shm_lock(&s->lock);
		/* the child's own pid, not its parent's */
		_exit(s->lock.owner == getpid() ? 0 : 1);	/* holding it */
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	cr_assert_eq(s->lock.owner, pid);
	shm_lock(&s->lock);
	cr_assert_eq(s->lock.owner, getpid());
	shm_unlock(&s->lock);

	/* a live owner keeps it: the waiter gets it after its section */
	if ((pid = fork()) == 0) {
		shm_lock(&s->lock);
		usleep(300000);
		s->done = 1;
		shm_unlock(&s->lock);
		_exit(0);
	}
	while (s->lock.owner != pid && !s->done)
		usleep(1000);
	shm_lock(&s->lock);
	cr_assert_eq(s->done, 1);
	shm_unlock(&s->lock);
	cr_assert_eq(waitpid(pid, &st, 0), pid);
}
