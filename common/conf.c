/*
 * conf.c: lexer and checking parser for the configuration language of
 * conf.h.  A hand-written recursive-descent parser (no yacc on the build
 * machine): statements are read as lists of words, looked up in the
 * daemon's grammar table, and checked argument by argument.  Errors are
 * collected, logged as "file:line: message", and parsing goes on at the
 * next statement so that one run reports them all.
 */
#include <sys/types.h>
#include <sys/stat.h>

#include <ctype.h>
#include <errno.h>
#include <glob.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "log.h"
#include "net.h"

#define CONF_MAXFILESIZE	(16 * 1024 * 1024)

enum tok {
	T_EOF, T_NL, T_LBRACE, T_RBRACE, T_WORD
};

struct word {
	char	*text;
	int	 quoted;
	int	 line;
};

struct lexfile {
	struct conf	*conf;
	const char	*name;		/* interned in conf->files */
	char		*data;
	size_t		 len;
	size_t		 pos;
	int		 line;
	dev_t		 dev;
	ino_t		 ino;
	struct lexfile	*up;		/* the file that included this one */
	int		 depth;		/* include depth */
	/* one token of look-ahead */
	int		 peeked;
	enum tok	 ptok;
	struct word	 pword;
};

static int	parse_block(struct lexfile *, struct conf_node *, int);
static int	parse_file_at(struct conf *, struct lexfile *, const char *,
		    struct conf_node *, int);

static const char *
intern_file(struct conf *conf, const char *name)
{
	char	**f;
	int	  i;

	for (i = 0; i < conf->nfiles; i++)
		if (strcmp(conf->files[i], name) == 0)
			return (conf->files[i]);
	if ((f = reallocarray(conf->files, conf->nfiles + 1,
	    sizeof(*f))) == NULL)
		fatal("%s", __func__);
	conf->files = f;
	if ((conf->files[conf->nfiles] = strdup(name)) == NULL)
		fatal("%s", __func__);
	return (conf->files[conf->nfiles++]);
}

static void __printflike(4, 0)
verror_at(struct conf *conf, const char *file, int line, const char *fmt,
    va_list ap)
{
	char	 msg[1024], *full;
	char	**e;

	conf->nerrors++;
	if (conf->nerrors > CONF_MAXERRORS)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (file != NULL) {
		if (asprintf(&full, "%s:%d: %s", file, line, msg) == -1)
			fatal("%s", __func__);
	} else if ((full = strdup(msg)) == NULL)
		fatal("%s", __func__);
	if ((e = reallocarray(conf->errors, conf->nerrors + 1,
	    sizeof(*e))) == NULL)
		fatal("%s", __func__);
	conf->errors = e;
	conf->errors[conf->nerrors - 1] = full;
	conf->errors[conf->nerrors] = NULL;
	if (!conf->quiet)
		log_warnx("%s", full);
}

static void __printflike(4, 5)
error_at(struct conf *conf, const char *file, int line, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	verror_at(conf, file, line, fmt, ap);
	va_end(ap);
}

/* For the daemons' own checks between settings, after parsing. */
void
conf_error(struct conf *conf, const struct conf_node *n, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	if (n != NULL && n->file != NULL)
		verror_at(conf, n->file, n->line, fmt, ap);
	else
		verror_at(conf, NULL, 0, fmt, ap);
	va_end(ap);
}

struct conf *
conf_new(const struct conf_kw *grammar)
{
	struct conf	*conf;

	if ((conf = calloc(1, sizeof(*conf))) == NULL)
		fatal("%s", __func__);
	conf->grammar = grammar;
	TAILQ_INIT(&conf->root.children);
	TAILQ_INIT(&conf->macros);
	return (conf);
}

static void
node_free(struct conf_node *n)
{
	struct conf_node	*c, *t;
	int			 i;

	TAILQ_FOREACH_SAFE(c, &n->children, entry, t) {
		TAILQ_REMOVE(&n->children, c, entry);
		node_free(c);
	}
	for (i = 0; i < n->nargs; i++)
		free(n->args[i].str);
	free(n->args);
	for (i = 0; i < n->nopts; i++)
		free(n->opts[i].val.str);
	free(n->opts);
	if (n->kw != NULL)
		free(n);
}

void
conf_free(struct conf *conf)
{
	struct conf_macro	*m;
	int			 i;

	if (conf == NULL)
		return;
	node_free(&conf->root);
	while ((m = TAILQ_FIRST(&conf->macros)) != NULL) {
		TAILQ_REMOVE(&conf->macros, m, entry);
		free(m->name);
		free(m->value);
		free(m);
	}
	for (i = 0; i < conf->nerrors && i < CONF_MAXERRORS; i++)
		free(conf->errors[i]);
	free(conf->errors);
	for (i = 0; i < conf->nfiles; i++)
		free(conf->files[i]);
	free(conf->files);
	free(conf);
}

/* Macros */

static int
macro_name_ok(const char *s, size_t len)
{
	size_t	i;

	if (len == 0 || len > 64 || !(isalpha((unsigned char)s[0]) ||
	    s[0] == '_'))
		return (0);
	for (i = 1; i < len; i++)
		if (!(isalnum((unsigned char)s[i]) || s[i] == '_'))
			return (0);
	return (1);
}

static struct conf_macro *
macro_find(struct conf *conf, const char *name, size_t len)
{
	struct conf_macro	*m;

	TAILQ_FOREACH(m, &conf->macros, entry)
		if (strlen(m->name) == len && strncmp(m->name, name, len) == 0)
			return (m);
	return (NULL);
}

static int
macro_set(struct conf *conf, const char *name, const char *value,
    int cmdline)
{
	struct conf_macro	*m;

	if ((m = macro_find(conf, name, strlen(name))) != NULL) {
		if (m->cmdline && !cmdline)
			return (0);	/* -D wins over the file */
		free(m->value);
		if ((m->value = strdup(value)) == NULL)
			fatal("%s", __func__);
		m->cmdline = cmdline;
		return (0);
	}
	if ((m = calloc(1, sizeof(*m))) == NULL ||
	    (m->name = strdup(name)) == NULL ||
	    (m->value = strdup(value)) == NULL)
		fatal("%s", __func__);
	m->cmdline = cmdline;
	TAILQ_INSERT_TAIL(&conf->macros, m, entry);
	return (0);
}

/* -D name=value.  Returns 0, or -1 when the argument is malformed. */
int
conf_define(struct conf *conf, const char *arg)
{
	const char	*eq;
	char		*name;
	int		 rv;

	if ((eq = strchr(arg, '=')) == NULL ||
	    !macro_name_ok(arg, eq - arg))
		return (-1);
	if ((name = strndup(arg, eq - arg)) == NULL)
		fatal("%s", __func__);
	rv = macro_set(conf, name, eq + 1, 1);
	free(name);
	return (rv);
}

/* Lexer */

static void
lex_error(struct lexfile *lf, const char *fmt, ...) __printflike(2, 3);

static void
lex_error(struct lexfile *lf, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	verror_at(lf->conf, lf->name, lf->line, fmt, ap);
	va_end(ap);
}

static int
lex_getc(struct lexfile *lf)
{
	if (lf->pos >= lf->len)
		return (EOF);
	return ((unsigned char)lf->data[lf->pos++]);
}

static int
lex_peekc(struct lexfile *lf)
{
	if (lf->pos >= lf->len)
		return (EOF);
	return ((unsigned char)lf->data[lf->pos]);
}

static int
tok_append(struct lexfile *lf, char *buf, size_t *n, int c, int *toolong)
{
	if (*n + 1 >= CONF_MAXTOKEN) {
		if (!*toolong)
			lex_error(lf, "word too long (max %d bytes)",
			    CONF_MAXTOKEN - 1);
		*toolong = 1;
		return (-1);
	}
	buf[(*n)++] = c;
	return (0);
}

/*
 * After a backslash: when a newline (or CR LF) follows, consume it and
 * return 1, the line goes on.
 */
static int
lex_continues(struct lexfile *lf)
{
	if (lf->pos < lf->len && lf->data[lf->pos] == '\n') {
		lf->pos++;
		lf->line++;
		return (1);
	}
	if (lf->pos + 1 < lf->len && lf->data[lf->pos] == '\r' &&
	    lf->data[lf->pos + 1] == '\n') {
		lf->pos += 2;
		lf->line++;
		return (1);
	}
	return (0);
}

/* Expand $name and ${name} in an unquoted word.  NULL on error. */
static char *
expand_macros(struct lexfile *lf, const char *w)
{
	struct conf_macro	*m;
	char			*out;
	size_t			 olen = 0, cap, nlen, vlen;
	const char		*p = w, *name;
	int			 brace;

	cap = strlen(w) + 1;
	if ((out = malloc(cap)) == NULL)
		fatal("%s", __func__);
	while (*p != '\0') {
		if (*p != '$') {
			if (olen + 2 > cap && (out = realloc(out,
			    cap *= 2)) == NULL)
				fatal("%s", __func__);
			out[olen++] = *p++;
			continue;
		}
		brace = (p[1] == '{');
		name = p + 1 + brace;
		nlen = 0;
		while (isalnum((unsigned char)name[nlen]) || name[nlen] == '_')
			nlen++;
		if (nlen == 0 || (brace && name[nlen] != '}')) {
			lex_error(lf, "invalid macro reference in \"%s\"", w);
			free(out);
			return (NULL);
		}
		if ((m = macro_find(lf->conf, name, nlen)) == NULL) {
			lex_error(lf, "undefined macro \"$%.*s\"", (int)nlen,
			    name);
			free(out);
			return (NULL);
		}
		vlen = strlen(m->value);
		while (olen + vlen + 1 > cap)
			if ((out = realloc(out, cap *= 2)) == NULL)
				fatal("%s", __func__);
		memcpy(out + olen, m->value, vlen);
		olen += vlen;
		p = name + nlen + brace;
	}
	out[olen] = '\0';
	if (olen >= CONF_MAXTOKEN) {
		lex_error(lf, "word too long after macro expansion");
		free(out);
		return (NULL);
	}
	return (out);
}

/*
 * Returns the next token.  For T_WORD, w->text is allocated (NULL when
 * the word was malformed: the error is reported and the word dropped).
 */
static enum tok
lex(struct lexfile *lf, struct word *w)
{
	char	buf[CONF_MAXTOKEN];
	size_t	n = 0;
	int	c, q, toolong = 0;

	if (lf->peeked) {
		lf->peeked = 0;
		*w = lf->pword;
		return (lf->ptok);
	}
	memset(w, 0, sizeof(*w));
 again:
	do {
		c = lex_getc(lf);
	} while (c == ' ' || c == '\t' || c == '\r' || c == '\f' ||
	    c == '\v');
	w->line = lf->line;
	switch (c) {
	case EOF:
		return (T_EOF);
	case '\n':
		lf->line++;
		return (T_NL);
	case '\\':
		if (lex_continues(lf))
			goto again;
		break;
	case '#':
		while ((c = lex_peekc(lf)) != EOF && c != '\n')
			lex_getc(lf);
		goto again;
	case '{':
		return (T_LBRACE);
	case '}':
		return (T_RBRACE);
	case '\0':
		lex_error(lf, "NUL byte in file");
		goto again;
	case '"':
	case '\'':
		q = c;
		w->quoted = 1;
		for (;;) {
			c = lex_getc(lf);
			if (c == EOF || c == '\n')
				goto unterminated;
			if (c == q)
				break;
			if (c == '\0') {
				lex_error(lf, "NUL byte in quoted string");
				continue;
			}
			if (c == '\\' && q == '"') {
				c = lex_getc(lf);
				switch (c) {
				case 'n':
					c = '\n';
					break;
				case 't':
					c = '\t';
					break;
				case '"':
				case '\\':
				case '$':
					break;
				case '\n':
					lf->line++;
					continue;
				case EOF:
					goto unterminated;
				default:
					lex_error(lf, "invalid escape \"\\%c\" "
					    "in quoted string", c);
					continue;
				}
			}
			tok_append(lf, buf, &n, c, &toolong);
		}
		buf[n] = '\0';
		if (toolong)
			return (T_WORD);	/* text NULL: dropped */
		if ((w->text = strdup(buf)) == NULL)
			fatal("%s", __func__);
		return (T_WORD);
 unterminated:
		/*
		 * Drop the whole statement rather than check what is left
		 * of it; the newline still ends it.
		 */
		lex_error(lf, "unterminated quoted string");
		if (c == '\n')
			lf->pos--;
		return (T_WORD);	/* text NULL: dropped */
	}
	/* an unquoted word */
	tok_append(lf, buf, &n, c, &toolong);
	for (;;) {
		c = lex_peekc(lf);
		if (c == '{' && buf[n - 1] == '$') {
			/* ${name}: these braces belong to the word */
			tok_append(lf, buf, &n, lex_getc(lf), &toolong);
			while ((c = lex_peekc(lf)) != EOF &&
			    (isalnum(c) || c == '_')) {
				lex_getc(lf);
				tok_append(lf, buf, &n, c, &toolong);
			}
			if (c == '}')
				tok_append(lf, buf, &n, lex_getc(lf),
				    &toolong);
			continue;
		}
		if (c == EOF || c == ' ' || c == '\t' || c == '\n' ||
		    c == '\r' || c == '{' || c == '}')
			break;
		if (c == '\0') {
			lex_getc(lf);
			lex_error(lf, "NUL byte in file");
			continue;
		}
		lex_getc(lf);
		if (c == '\\' && lex_continues(lf))
			continue;
		tok_append(lf, buf, &n, c, &toolong);
	}
	buf[n] = '\0';
	if (toolong)
		return (T_WORD);
	if (n == 1 && buf[0] == ';') {
		lex_error(lf, "statements end at the end of the line: "
		    "remove the \";\"");
		n = 0;
		goto again;
	}
	if (n > 1 && buf[n - 1] == ';') {
		lex_error(lf, "statements end at the end of the line: "
		    "remove the \";\" after \"%.*s\"", (int)(n - 1), buf);
		buf[--n] = '\0';
	}
	if (strchr(buf, '$') != NULL)
		w->text = expand_macros(lf, buf);
	else if ((w->text = strdup(buf)) == NULL)
		fatal("%s", __func__);
	return (T_WORD);
}

static void
lex_unget(struct lexfile *lf, enum tok t, struct word *w)
{
	lf->peeked = 1;
	lf->ptok = t;
	lf->pword = *w;
}

/* Skip a block whose "{" was just read; reports a missing "}". */
static void
skip_block(struct lexfile *lf, int openline)
{
	struct word	w;
	enum tok	t;
	int		depth = 1;

	while (depth > 0) {
		t = lex(lf, &w);
		free(w.text);
		if (t == T_EOF) {
			lex_error(lf, "missing \"}\" for the block opened at "
			    "line %d", openline);
			return;
		}
		if (t == T_LBRACE)
			depth++;
		else if (t == T_RBRACE)
			depth--;
	}
}

/* Value checking */

static const char *
find_suffix(const char *s, long long *v)
{
	long long	n = 0;
	const char	*p = s;

	if (!isdigit((unsigned char)*p))
		return (NULL);
	while (isdigit((unsigned char)*p)) {
		if (n > (LLONG_MAX - (*p - '0')) / 10)
			return (NULL);
		n = n * 10 + (*p - '0');
		p++;
	}
	*v = n;
	return (p);
}

static int
mul_ok(long long *v, long long m)
{
	if (*v > LLONG_MAX / m)
		return (0);
	*v *= m;
	return (1);
}

static int
levenshtein(const char *a, const char *b)
{
	size_t	la = strlen(a), lb = strlen(b), i, j;
	int	prev[64], cur[64];

	if (la >= 63 || lb >= 63)
		return (99);
	for (j = 0; j <= lb; j++)
		prev[j] = j;
	for (i = 1; i <= la; i++) {
		cur[0] = i;
		for (j = 1; j <= lb; j++) {
			int	d = prev[j - 1] + (a[i - 1] != b[j - 1]);

			if (prev[j] + 1 < d)
				d = prev[j] + 1;
			if (cur[j - 1] + 1 < d)
				d = cur[j - 1] + 1;
			cur[j] = d;
		}
		memcpy(prev, cur, sizeof(int) * (lb + 1));
	}
	return (prev[lb]);
}

static int
close_enough(const char *typed, const char *cand)
{
	int	d = levenshtein(typed, cand);
	int	lim = strlen(cand) <= 4 ? 1 : 2;

	return (d <= lim);
}

/* Units of durations: CONF_TIME counts milliseconds, CONF_USEC microseconds. */
static const struct {
	const char	*unit;
	long long	 ms, us;		/* 0: not for that type */
} time_units[] = {
	{ "us",	0,		1 },
	{ "ms",	1,		1000 },
	{ "s",	1000,		1000000 },
	{ "m",	60000,		0 },
	{ "h",	3600000,	0 },
	{ "d",	86400000,	0 },
};

/*
 * Checks <text> against <a>.  Returns 0 with the number in <num>, or -1
 * with a message (without file:line) in <err>.
 */
int
conf_parse_value(const struct conf_arg *a, const char *text, long long *num,
    char *err, size_t errlen)
{
	const char	*name = a->name ? a->name : "value";
	const char	*p, *units;
	long long	 v = 0, m;
	char		 aerr[128];
	size_t		 u;

	*num = 0;
	switch (a->type) {
	case CONF_NONE:
	case CONF_STR:
		return (0);
	case CONF_NAME:
		if (*text == '\0' || strlen(text) > 63) {
			snprintf(err, errlen, "invalid %s \"%s\": 1 to 63 "
			    "characters", name, text);
			return (-1);
		}
		for (p = text; *p; p++)
			if (!isalnum((unsigned char)*p) && *p != '_' &&
			    *p != '-' && *p != '.') {
				snprintf(err, errlen, "invalid %s \"%s\": "
				    "letters, digits, \"_\", \"-\" and \".\" "
				    "only", name, text);
				return (-1);
			}
		return (0);
	case CONF_PATH:
		if (text[0] != '/') {
			snprintf(err, errlen, "invalid %s \"%s\": not an "
			    "absolute path", name, text);
			return (-1);
		}
		return (0);
	case CONF_INT:
		if (*text == '-' && text[1] != '\0') {
			if ((p = find_suffix(text + 1, &v)) != NULL)
				v = -v;
		} else
			p = find_suffix(text, &v);
		if (p == NULL || *p != '\0') {
			snprintf(err, errlen, "invalid %s \"%s\": not a "
			    "number", name, text);
			return (-1);
		}
		break;
	case CONF_SIZE:
		if ((p = find_suffix(text, &v)) == NULL)
			goto badsize;
		switch (tolower((unsigned char)*p)) {
		case '\0':
			break;
		case 'k':
			if (!mul_ok(&v, 1024))
				goto badsize;
			p++;
			break;
		case 'm':
			if (!mul_ok(&v, 1024 * 1024))
				goto badsize;
			p++;
			break;
		case 'g':
			if (!mul_ok(&v, 1024 * 1024 * 1024))
				goto badsize;
			p++;
			break;
		default:
			goto badsize;
		}
		if (*p != '\0')
			goto badsize;
		break;
 badsize:
		snprintf(err, errlen, "invalid %s \"%s\": a size is a number "
		    "with an optional k, m or g", name, text);
		return (-1);
	case CONF_TIME:
	case CONF_USEC:
		units = a->type == CONF_TIME ? "ms, s, m, h, d" : "us, ms, s";
		if ((p = find_suffix(text, &v)) == NULL)
			goto badtime;
		if (*p == '\0') {
			if (v != 0) {
				snprintf(err, errlen, "invalid %s \"%s\": a "
				    "duration needs a unit (%s)", name, text,
				    units);
				return (-1);
			}
			break;
		}
		for (u = 0; u < nitems(time_units); u++)
			if (strcmp(p, time_units[u].unit) == 0)
				break;
		if (u == nitems(time_units))
			goto badtime;
		m = a->type == CONF_TIME ? time_units[u].ms : time_units[u].us;
		if (m == 0 || !mul_ok(&v, m))
			goto badtime;
		break;
 badtime:
		snprintf(err, errlen, "invalid %s \"%s\": a duration is a "
		    "number with a unit (%s)", name, text, units);
		return (-1);
	case CONF_BOOL:
		if (strcmp(text, "yes") == 0 || strcmp(text, "on") == 0 ||
		    strcmp(text, "true") == 0)
			v = 1;
		else if (strcmp(text, "no") == 0 || strcmp(text, "off") == 0 ||
		    strcmp(text, "false") == 0)
			v = 0;
		else {
			snprintf(err, errlen, "invalid %s \"%s\": yes or no",
			    name, text);
			return (-1);
		}
		*num = v;
		return (0);
	case CONF_ENUM: {
		const char	*e = a->enums, *end;
		char		 list[256], hint[96] = "";
		size_t		 l = 0;
		int		 i = 0;

		list[0] = '\0';
		while (e != NULL && *e != '\0') {
			char	cand[64];
			size_t	clen;

			end = strchr(e, '|');
			clen = end ? (size_t)(end - e) : strlen(e);
			if (clen >= sizeof(cand))
				clen = sizeof(cand) - 1;
			memcpy(cand, e, clen);
			cand[clen] = '\0';
			if (strcmp(cand, text) == 0) {
				*num = i;
				return (0);
			}
			if (hint[0] == '\0' && close_enough(text, cand))
				snprintf(hint, sizeof(hint),
				    ", did you mean \"%s\"?", cand);
			l += snprintf(list + l, l < sizeof(list) ?
			    sizeof(list) - l : 0, "%s%s", i ? ", " : "", cand);
			if (l >= sizeof(list))
				l = sizeof(list) - 1;
			i++;
			e = end ? end + 1 : NULL;
		}
		snprintf(err, errlen, "invalid %s \"%s\" (one of: %s)%s",
		    name, text, list, hint);
		return (-1);
	}
	case CONF_ADDR: {
		struct net_addr	na;

		if (net_addr_parse(text, &na, aerr, sizeof(aerr)) == -1) {
			snprintf(err, errlen, "invalid %s \"%s\": %s", name,
			    text, aerr);
			return (-1);
		}
		return (0);
	}
	case CONF_CIDR: {
		struct net_cidr	nc;

		if (net_cidr_parse(text, &nc) == -1) {
			snprintf(err, errlen, "invalid %s \"%s\": not an "
			    "address or address/prefix", name, text);
			return (-1);
		}
		return (0);
	}
	case CONF_MODE:
		for (p = text; *p; p++) {
			if (*p < '0' || *p > '7' || v > 07777) {
				snprintf(err, errlen, "invalid %s \"%s\": an "
				    "octal mode such as 0660", name, text);
				return (-1);
			}
			v = v * 8 + (*p - '0');
		}
		if (p == text || v > 07777) {
			snprintf(err, errlen, "invalid %s \"%s\": an octal "
			    "mode such as 0660", name, text);
			return (-1);
		}
		*num = v;
		return (0);
	}
	if ((a->min != 0 || a->max != 0) && (v < a->min || v > a->max)) {
		if (a->type == CONF_TIME || a->type == CONF_USEC) {
			units = a->type == CONF_TIME ? "ms" : "us";
			snprintf(err, errlen, "invalid %s %s (%lld%s-%lld%s)",
			    name, text, a->min, units, a->max, units);
		} else
			snprintf(err, errlen, "invalid %s %s (%lld-%lld)",
			    name, text, a->min, a->max);
		return (-1);
	}
	*num = v;
	return (0);
}

/* Grammar lookups */

static int
parent_matches(const char *parents, const char *block)
{
	size_t	bl;

	if (parents == NULL || block == NULL)
		return (parents == NULL && block == NULL);
	bl = strlen(block);
	while (*parents != '\0') {
		const char	*end = strchr(parents, '|');
		size_t		 l = end ? (size_t)(end - parents) :
				    strlen(parents);

		if (l == bl && strncmp(parents, block, l) == 0)
			return (1);
		if (end == NULL)
			break;
		parents = end + 1;
	}
	return (0);
}

const struct conf_kw *
conf_kw_find(const struct conf_kw *g, const char *name, const char *block)
{
	for (; g->name != NULL; g++)
		if (strcmp(g->name, name) == 0 &&
		    parent_matches(g->parent, block))
			return (g);
	return (NULL);
}

static const struct conf_kw *
kw_find_any(const struct conf_kw *g, const char *name)
{
	for (; g->name != NULL; g++)
		if (strcmp(g->name, name) == 0)
			return (g);
	return (NULL);
}

static const char *
kw_suggest(const struct conf_kw *g, const char *typed, const char *block)
{
	const struct conf_kw	*k;
	const char		*best = NULL;
	int			 bestd = 99, d;

	for (k = g; k->name != NULL; k++) {
		if (!parent_matches(k->parent, block))
			continue;
		d = levenshtein(typed, k->name);
		if (d < bestd && close_enough(typed, k->name)) {
			best = k->name;
			bestd = d;
		}
	}
	return (best);
}

static const struct conf_opt *
opt_find(const struct conf_kw *kw, const char *name)
{
	const struct conf_opt	*o;

	if (kw->opts == NULL)
		return (NULL);
	for (o = kw->opts; o->name != NULL; o++)
		if (strcmp(o->name, name) == 0)
			return (o);
	return (NULL);
}

static int
kw_npos(const struct conf_kw *kw)
{
	int	n = 0;

	while (n < CONF_MAXARGS && kw->args[n].type != CONF_NONE)
		n++;
	return (n);
}

/* Statements */

static const char *
block_desc(const struct conf_node *n, char *buf, size_t len)
{
	if (n->kw == NULL)
		snprintf(buf, len, "at the top level");
	else if (n->nargs > 0)
		snprintf(buf, len, "inside \"%s %s\"", n->kw->name,
		    n->args[0].str);
	else
		snprintf(buf, len, "inside \"%s\"", n->kw->name);
	return (buf);
}

static void
words_free(struct word *w, int n)
{
	int	i;

	for (i = 0; i < n; i++)
		free(w[i].text);
}

static int
macro_statement(struct lexfile *lf, struct conf_node *block, struct word *w,
    int nw)
{
	char	*eq, *name = NULL;
	const char *value = NULL;
	int	 extra = 0;

	if (!w[0].quoted && (eq = strchr(w[0].text, '=')) != NULL &&
	    eq != w[0].text) {
		if ((name = strndup(w[0].text, eq - w[0].text)) == NULL)
			fatal("%s", __func__);
		if (eq[1] != '\0') {
			value = eq + 1;
			extra = nw - 1;
		} else if (nw >= 2) {
			value = w[1].text;
			extra = nw - 2;
		}
	} else if (nw >= 2 && !w[1].quoted && w[1].text[0] == '=') {
		if ((name = strdup(w[0].text)) == NULL)
			fatal("%s", __func__);
		if (w[1].text[1] != '\0') {
			value = w[1].text + 1;
			extra = nw - 2;
		} else if (nw >= 3) {
			value = w[2].text;
			extra = nw - 3;
		}
	} else
		return (0);

	if (block->kw != NULL)
		error_at(lf->conf, lf->name, w[0].line, "macro \"%s\" defined "
		    "inside a block: macros are defined at the top level",
		    name);
	else if (!macro_name_ok(name, strlen(name)))
		error_at(lf->conf, lf->name, w[0].line, "invalid macro name "
		    "\"%s\"", name);
	else if (value == NULL)
		error_at(lf->conf, lf->name, w[0].line, "macro \"%s\" has no "
		    "value", name);
	else if (extra > 0)
		error_at(lf->conf, lf->name, w[0].line, "macro \"%s\": the "
		    "value must be one word; quote it", name);
	else
		macro_set(lf->conf, name, value, 0);
	free(name);
	return (1);
}

static int
has_glob(const char *s)
{
	return (strpbrk(s, "*?[") != NULL);
}

static void
include_statement(struct lexfile *lf, struct conf_node *block, struct word *w,
    int nw)
{
	char	 path[PATH_MAX];
	glob_t	 g;
	size_t	 i;
	int	 rv;

	if (nw != 2) {
		error_at(lf->conf, lf->name, w[0].line, "include needs one "
		    "file name");
		return;
	}
	if (w[1].text[0] == '/' || strrchr(lf->name, '/') == NULL)
		rv = snprintf(path, sizeof(path), "%s", w[1].text);
	else
		rv = snprintf(path, sizeof(path), "%.*s/%s",
		    (int)(strrchr(lf->name, '/') - lf->name), lf->name,
		    w[1].text);
	if (rv < 0 || (size_t)rv >= sizeof(path)) {
		error_at(lf->conf, lf->name, w[0].line, "include \"%s\": path "
		    "too long", w[1].text);
		return;
	}
	memset(&g, 0, sizeof(g));
	rv = glob(path, GLOB_ERR, NULL, &g);
	if (rv == GLOB_NOMATCH) {
		if (!has_glob(path))
			error_at(lf->conf, lf->name, w[0].line, "include "
			    "\"%s\": %s", w[1].text, strerror(ENOENT));
		globfree(&g);
		return;
	}
	if (rv != 0) {
		error_at(lf->conf, lf->name, w[0].line, "include \"%s\": "
		    "cannot read", w[1].text);
		globfree(&g);
		return;
	}
	for (i = 0; i < g.gl_pathc; i++)
		parse_file_at(lf->conf, lf, g.gl_pathv[i], block, w[0].line);
	globfree(&g);
}

static struct conf_node *
node_new(struct lexfile *lf, const struct conf_kw *kw, int line,
    struct conf_node *parent)
{
	struct conf_node	*n;

	if ((n = calloc(1, sizeof(*n))) == NULL)
		fatal("%s", __func__);
	n->kw = kw;
	n->file = lf->name;
	n->line = line;
	n->parent = parent;
	TAILQ_INIT(&n->children);
	return (n);
}

static int
node_add_arg(struct conf_node *n, const struct conf_arg *a, const char *text,
    long long num)
{
	struct conf_val	*v;

	if ((v = reallocarray(n->args, n->nargs + 1, sizeof(*v))) == NULL)
		fatal("%s", __func__);
	n->args = v;
	v = &n->args[n->nargs++];
	v->type = a->type;
	v->num = num;
	if ((v->str = strdup(text)) == NULL)
		fatal("%s", __func__);
	return (0);
}

static void
node_add_opt(struct conf_node *n, const struct conf_opt *o, const char *text,
    long long num)
{
	struct conf_optval	*v;

	if ((v = reallocarray(n->opts, n->nopts + 1, sizeof(*v))) == NULL)
		fatal("%s", __func__);
	n->opts = v;
	v = &n->opts[n->nopts++];
	v->opt = o;
	v->val.type = o->arg.type;
	v->val.num = num;
	if ((v->val.str = strdup(text ? text : "")) == NULL)
		fatal("%s", __func__);
}

static void
required_check(struct conf *conf, struct conf_node *block)
{
	const struct conf_kw	*k;
	const char		*bname = block->kw ? block->kw->name : NULL;

	for (k = conf->grammar; k->name != NULL; k++) {
		if (!(k->flags & CONF_REQUIRED) ||
		    !parent_matches(k->parent, bname) ||
		    conf_get(block, k->name) != NULL)
			continue;
		if (block->kw == NULL)
			error_at(conf, NULL, 0, "%s: missing \"%s\"",
			    conf->nfiles > 0 ? conf->files[0] : "configuration",
			    k->name);
		else if (block->nargs > 0)
			error_at(conf, block->file, block->line, "\"%s %s\" "
			    "needs \"%s\"", block->kw->name,
			    block->args[0].str, k->name);
		else
			error_at(conf, block->file, block->line, "\"%s\" needs "
			    "\"%s\"", block->kw->name, k->name);
	}
}

/*
 * Check one statement against the grammar and add it to <block>.
 * <opens> is set when the statement is followed by "{".  Returns the new
 * node (to parse its block into), or NULL when the statement was wrong.
 */
static struct conf_node *
statement(struct lexfile *lf, struct conf_node *block, struct word *w, int nw,
    int opens)
{
	struct conf		*conf = lf->conf;
	const struct conf_kw	*kw, *other;
	const struct conf_opt	*o;
	struct conf_node	*n, *prev;
	const char		*bname = block->kw ? block->kw->name : NULL;
	const char		*hint;
	char			 err[512], where[256];
	long long		 num;
	int			 line = w[0].line, i, npos, bad = 0, j;

	if ((kw = conf_kw_find(conf->grammar, w[0].text, bname)) == NULL) {
		if ((other = kw_find_any(conf->grammar, w[0].text)) != NULL) {
			char	parents[256];
			size_t	pl = 0;

			parents[0] = '\0';
			for (const char *q = other->parent; q != NULL && *q &&
			    pl + 8 < sizeof(parents); q++) {
				if (*q == '|')
					pl += snprintf(parents + pl,
					    sizeof(parents) - pl, "\" or \"");
				else
					parents[pl++] = *q;
				parents[pl] = '\0';
			}
			error_at(conf, lf->name, line, "\"%s\" is not allowed "
			    "%s%s%s%s", w[0].text,
			    block_desc(block, where, sizeof(where)),
			    other->parent ? " (it goes inside \"" : "",
			    parents, other->parent ? "\")" : "");
		}
		else if ((hint = kw_suggest(conf->grammar, w[0].text,
		    bname)) != NULL)
			error_at(conf, lf->name, line, "unknown keyword "
			    "\"%s\", did you mean \"%s\"?", w[0].text, hint);
		else
			error_at(conf, lf->name, line, "unknown keyword "
			    "\"%s\"", w[0].text);
		return (NULL);
	}

	n = node_new(lf, kw, line, block);
	npos = kw_npos(kw);
	for (i = 1; i < nw; i++) {
		const struct conf_arg	*a;

		if (n->nargs >= kw->minargs && !w[i].quoted &&
		    (o = opt_find(kw, w[i].text)) != NULL) {
			const char	*val = NULL;

			for (j = 0; j < n->nopts; j++)
				if (n->opts[j].opt == o) {
					error_at(conf, lf->name, line, "\"%s\": "
					    "option \"%s\" given twice",
					    kw->name, o->name);
					bad = 1;
					break;
				}
			if (o->arg.type != CONF_NONE) {
				if (i + 1 >= nw) {
					error_at(conf, lf->name, line, "\"%s\": "
					    "option \"%s\" needs a value",
					    kw->name, o->name);
					bad = 1;
					break;
				}
				val = w[++i].text;
				if (conf_parse_value(&o->arg, val, &num, err,
				    sizeof(err)) == -1) {
					error_at(conf, lf->name, line, "%s",
					    err);
					bad = 1;
					continue;
				}
			} else
				num = 1;
			node_add_opt(n, o, val, num);
			continue;
		}
		if (n->nargs < npos)
			a = &kw->args[n->nargs];
		else if ((kw->flags & CONF_VARIADIC) && npos > 0)
			a = &kw->args[npos - 1];
		else {
			if (kw->opts != NULL && kw->opts[0].name != NULL) {
				char	list[256];
				size_t	l = 0;

				list[0] = '\0';
				for (o = kw->opts; o->name != NULL &&
				    l < sizeof(list); o++)
					l += snprintf(list + l, sizeof(list) -
					    l, "%s%s", l ? ", " : "", o->name);
				error_at(conf, lf->name, line, "\"%s\": "
				    "unexpected \"%s\" (options: %s)",
				    kw->name, w[i].text, list);
			} else
				error_at(conf, lf->name, line, "too many "
				    "arguments for \"%s\" (at most %d)",
				    kw->name, npos);
			bad = 1;
			break;
		}
		if (conf_parse_value(a, w[i].text, &num, err,
		    sizeof(err)) == -1) {
			error_at(conf, lf->name, line, "%s", err);
			bad = 1;
			/* keep the slot so later arguments are checked */
		}
		node_add_arg(n, a, w[i].text, num);
	}
	if (!bad && n->nargs < kw->minargs) {
		const char	*an = kw->args[n->nargs].name;

		if (an != NULL)
			error_at(conf, lf->name, line, "\"%s\": missing %s",
			    kw->name, an);
		else
			error_at(conf, lf->name, line, "\"%s\" needs %d "
			    "argument%s", kw->name, kw->minargs,
			    kw->minargs > 1 ? "s" : "");
		bad = 1;
	}
	if (!bad && !(kw->flags & CONF_MULTI) &&
	    (prev = conf_get(block, kw->name)) != NULL) {
		if (prev->file == lf->name)
			error_at(conf, lf->name, line, "\"%s\" given twice "
			    "(first at line %d)", kw->name, prev->line);
		else
			error_at(conf, lf->name, line, "\"%s\" given twice "
			    "(first at %s:%d)", kw->name, prev->file,
			    prev->line);
		bad = 1;
	}
	if (!bad && (kw->flags & CONF_UNIQUE) && n->nargs > 0) {
		CONF_FOREACH(prev, block, kw->name)
			if (prev->nargs > 0 &&
			    strcmp(prev->args[0].str, n->args[0].str) == 0) {
				if (prev->file == lf->name)
					error_at(conf, lf->name, line, "%s "
					    "\"%s\" defined twice (first at "
					    "line %d)", kw->name,
					    n->args[0].str, prev->line);
				else
					error_at(conf, lf->name, line, "%s "
					    "\"%s\" defined twice (first at "
					    "%s:%d)", kw->name, n->args[0].str,
					    prev->file, prev->line);
				bad = 1;
				break;
			}
	}
	if (opens && !(kw->flags & (CONF_BLOCK | CONF_BLOCKOPT))) {
		error_at(conf, lf->name, line, "\"%s\" does not take a "
		    "{ } block", kw->name);
		bad = 1;
	} else if (!opens && (kw->flags & CONF_BLOCK)) {
		error_at(conf, lf->name, line, "\"%s\" needs a { } block",
		    kw->name);
		bad = 1;
	}
	/*
	 * A wrong statement stays in the tree, so that it counts as given
	 * (no cascade of "needs" errors); a daemon never reads a tree that
	 * has errors.
	 */
	n->bad = bad;
	TAILQ_INSERT_TAIL(&block->children, n, entry);
	return (n);
}

/*
 * Parse statements into <block> until its "}" (level > 0) or the end of
 * the file (level 0).  Returns 0 at "}", -1 at EOF.
 */
static int
parse_block(struct lexfile *lf, struct conf_node *block, int level)
{
	struct word		 w[CONF_MAXWORDS], tw;
	struct conf_node	*n;
	enum tok		 t;
	int			 nw, toomany, opens, discard;

	for (;;) {
		t = lex(lf, &tw);
		switch (t) {
		case T_EOF:
			if (level > 0)
				error_at(lf->conf, lf->name, lf->line,
				    "missing \"}\" for the block opened at "
				    "line %d", block->line);
			return (-1);
		case T_NL:
			continue;
		case T_RBRACE:
			if (level == 0) {
				error_at(lf->conf, lf->name, tw.line,
				    "unexpected \"}\"");
				continue;
			}
			return (0);
		case T_LBRACE:
			error_at(lf->conf, lf->name, tw.line, "unexpected "
			    "\"{\" (a block follows a keyword on the same "
			    "line)");
			skip_block(lf, tw.line);
			continue;
		case T_WORD:
			break;
		}

		/* collect the words of one statement */
		nw = 0;
		toomany = 0;
		w[nw++] = tw;
		for (;;) {
			t = lex(lf, &tw);
			if (t != T_WORD)
				break;
			if (nw >= CONF_MAXWORDS) {
				free(tw.text);
				toomany = 1;
				continue;
			}
			w[nw++] = tw;
		}
		opens = (t == T_LBRACE);
		if (t == T_RBRACE || t == T_EOF)
			lex_unget(lf, t, &tw);

		/* a word dropped by the lexer: the error is reported */
		discard = 0;
		for (int i = 0; i < nw; i++)
			if (w[i].text == NULL)
				discard = 1;
		if (toomany) {
			error_at(lf->conf, lf->name, w[0].line, "too many words "
			    "in one statement (max %d)", CONF_MAXWORDS);
			discard = 1;
		}
		if (discard) {
			if (opens)
				skip_block(lf, w[0].line);
			words_free(w, nw);
			continue;
		}

		if (!w[0].quoted && macro_statement(lf, block, w, nw)) {
			if (opens) {
				error_at(lf->conf, lf->name, w[0].line,
				    "unexpected \"{\" after a macro");
				skip_block(lf, w[0].line);
			}
			words_free(w, nw);
			continue;
		}
		if (!w[0].quoted && strcmp(w[0].text, "include") == 0) {
			if (opens) {
				error_at(lf->conf, lf->name, w[0].line,
				    "\"include\" does not take a { } block");
				skip_block(lf, w[0].line);
			} else
				include_statement(lf, block, w, nw);
			words_free(w, nw);
			continue;
		}
		n = statement(lf, block, w, nw, opens);
		if (opens) {
			/* a keyword that takes no block: skip what it holds */
			if (n == NULL || !(n->kw->flags &
			    (CONF_BLOCK | CONF_BLOCKOPT)))
				skip_block(lf, w[0].line);
			else if (level + 1 > CONF_MAXDEPTH) {
				error_at(lf->conf, lf->name, w[0].line,
				    "blocks nested too deep (max %d)",
				    CONF_MAXDEPTH);
				skip_block(lf, w[0].line);
			} else if (parse_block(lf, n, level + 1) == -1) {
				words_free(w, nw);
				return (-1);
			}
			if (n != NULL && !n->bad)
				required_check(lf->conf, n);
		}
		words_free(w, nw);
	}
}

static int
read_file(struct conf *conf, struct lexfile *up, int upline, const char *path,
    struct lexfile *lf)
{
	struct stat	 st;
	FILE		*fp;
	const char	*ufile = up ? up->name : NULL;

	if ((fp = fopen(path, "r")) == NULL) {
		error_at(conf, ufile, upline, "%s: %s", path, strerror(errno));
		return (-1);
	}
	if (fstat(fileno(fp), &st) == -1) {
		error_at(conf, ufile, upline, "%s: %s", path, strerror(errno));
		fclose(fp);
		return (-1);
	}
	if (!S_ISREG(st.st_mode)) {
		error_at(conf, ufile, upline, "%s: not a regular file", path);
		fclose(fp);
		return (-1);
	}
	if (st.st_size > CONF_MAXFILESIZE) {
		error_at(conf, ufile, upline, "%s: larger than %d bytes", path,
		    CONF_MAXFILESIZE);
		fclose(fp);
		return (-1);
	}
	lf->dev = st.st_dev;
	lf->ino = st.st_ino;
	if ((lf->data = malloc(st.st_size + 1)) == NULL)
		fatal("%s", __func__);
	lf->len = fread(lf->data, 1, st.st_size, fp);
	if (ferror(fp)) {
		error_at(conf, ufile, upline, "%s: %s", path, strerror(errno));
		fclose(fp);
		free(lf->data);
		return (-1);
	}
	fclose(fp);
	return (0);
}

/* Parses <path> into <block>.  Returns -1 when it could not be read. */
static int
parse_file_at(struct conf *conf, struct lexfile *up, const char *path,
    struct conf_node *block, int upline)
{
	struct lexfile	 lf, *p;

	memset(&lf, 0, sizeof(lf));
	if (read_file(conf, up, upline, path, &lf) == -1)
		return (-1);
	for (p = up; p != NULL; p = p->up)
		if (p->dev == lf.dev && p->ino == lf.ino) {
			error_at(conf, up->name, upline, "include loop: \"%s\" "
			    "is already being read", path);
			free(lf.data);
			return (-1);
		}
	if (up != NULL && up->depth + 1 > CONF_MAXINCLUDE) {
		error_at(conf, up->name, upline, "includes nested too deep "
		    "(max %d)", CONF_MAXINCLUDE);
		free(lf.data);
		return (-1);
	}
	lf.conf = conf;
	lf.name = intern_file(conf, path);
	lf.line = 1;
	lf.up = up;
	lf.depth = up ? up->depth + 1 : 0;
	parse_block(&lf, block, 0);
	if (lf.peeked)
		free(lf.pword.text);
	free(lf.data);
	return (0);
}

/* Returns the number of errors so far (0: the file is good). */
int
conf_parse_file(struct conf *conf, const char *path)
{
	/* an unreadable file is one error, not a list of what it lacks */
	if (parse_file_at(conf, NULL, path, &conf->root, 0) == 0)
		required_check(conf, &conf->root);
	return (conf->nerrors);
}

/* Parse <text> as if it were the file <name>; for tests and -e. */
int
conf_parse_string(struct conf *conf, const char *name, const char *text)
{
	struct lexfile	lf;

	memset(&lf, 0, sizeof(lf));
	lf.conf = conf;
	lf.name = intern_file(conf, name);
	lf.line = 1;
	if ((lf.data = strdup(text)) == NULL)
		fatal("%s", __func__);
	lf.len = strlen(text);
	lf.dev = (dev_t)-1;
	lf.ino = (ino_t)-1;
	parse_block(&lf, &conf->root, 0);
	if (lf.peeked)
		free(lf.pword.text);
	free(lf.data);
	required_check(conf, &conf->root);
	return (conf->nerrors);
}

/* Reading the tree */

struct conf_node *
conf_get(const struct conf_node *block, const char *name)
{
	struct conf_node	*n;

	TAILQ_FOREACH(n, &block->children, entry)
		if (strcmp(n->kw->name, name) == 0)
			return (n);
	return (NULL);
}

struct conf_node *
conf_next(const struct conf_node *prev)
{
	struct conf_node	*n;

	for (n = TAILQ_NEXT(prev, entry); n != NULL;
	    n = TAILQ_NEXT(n, entry))
		if (strcmp(n->kw->name, prev->kw->name) == 0)
			return (n);
	return (NULL);
}

static const struct conf_kw *
kw_for(const struct conf *conf, const struct conf_node *block,
    const char *name)
{
	const struct conf_kw	*kw;

	kw = conf_kw_find(conf->grammar, name,
	    block->kw ? block->kw->name : NULL);
	if (kw == NULL)
		fatalx("%s: \"%s\" is not in the grammar under \"%s\"",
		    __func__, name, block->kw ? block->kw->name : "top");
	return (kw);
}

/* The first argument of <name> in <block>, or its default (or NULL). */
const char *
conf_str(const struct conf *conf, const struct conf_node *block,
    const char *name)
{
	const struct conf_kw	*kw = kw_for(conf, block, name);
	struct conf_node	*n;

	if ((n = conf_get(block, name)) != NULL && n->nargs > 0)
		return (n->args[0].str);
	return (kw->def);
}

long long
conf_num(const struct conf *conf, const struct conf_node *block,
    const char *name)
{
	const struct conf_kw	*kw = kw_for(conf, block, name);
	struct conf_node	*n;
	long long		 v;
	char			 err[256];

	if ((n = conf_get(block, name)) != NULL && n->nargs > 0)
		return (n->args[0].num);
	if (kw->def == NULL)
		return (0);
	if (conf_parse_value(&kw->args[0], kw->def, &v, err,
	    sizeof(err)) == -1)
		fatalx("%s: default of \"%s\": %s", __func__, name, err);
	return (v);
}

const struct conf_val *
conf_opt(const struct conf_node *n, const char *name)
{
	int	i;

	for (i = 0; i < n->nopts; i++)
		if (strcmp(n->opts[i].opt->name, name) == 0)
			return (&n->opts[i].val);
	return (NULL);
}

long long
conf_optnum(const struct conf_node *n, const char *name, long long def)
{
	const struct conf_val	*v = conf_opt(n, name);

	return (v ? v->num : def);
}

const char *
conf_optstr(const struct conf_node *n, const char *name, const char *def)
{
	const struct conf_val	*v = conf_opt(n, name);

	return (v ? v->str : def);
}

/*
 * Every <kw> at the top level ("trusted-proxy"), CONF_STR arguments:
 * addresses, networks, or "unix" for the peers of unix sockets.
 */
void
conf_trusted(struct conf *c, const char *kw, struct net_trusted *t)
{
	struct conf_node	*n;
	struct net_cidr		 cidr;
	int			 i;

	CONF_FOREACH(n, &c->root, kw)
		for (i = 0; i < n->nargs; i++) {
			if (strcmp(n->args[i].str, "unix") == 0)
				t->unixpeers = 1;
			else if (net_cidr_parse(n->args[i].str, &cidr) == -1)
				conf_error(c, n, "%s: invalid address \"%s\": "
				    "not an address, address/prefix or unix",
				    kw, n->args[i].str);
			else
				net_acl_add(&t->acl, 1, &cidr);
		}
}
