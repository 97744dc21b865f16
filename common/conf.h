/*
 * conf.h: the configuration language shared by all four daemons.
 *
 * Lexical rules: statements end at the newline; a backslash before the
 * newline continues the line; "{" and "}" open and close blocks; "#" at
 * the start of a word comments out the rest of the line; words are
 * unquoted, "double-quoted" (escapes \" \\ \n \t) or 'single-quoted'
 * (taken as is).  "name = value" at the top level defines a macro, used
 * as $name or ${name} in unquoted words; -D name=value on the command line defines
 * one that the file cannot override.  include "file" (relative to the
 * including file, glob patterns allowed) inserts a file; loops are
 * refused.  Sizes take k, m, g (64k, 1m); durations need a unit: ms, s,
 * m, h, d (250ms, 30s); 0 is allowed without one.
 *
 * Each daemon declares its grammar as a table of struct conf_kw: where a
 * keyword may appear, its positional arguments and their types, the
 * options that may follow them ("server web1 10.0.0.1:80 weight 2
 * backup"), whether it opens a block, whether it may repeat, its
 * default.  The parser checks all of it and reports every error as
 * "file:line: message", going on to find the next one.
 */
#ifndef COMMON_CONF_H
#define COMMON_CONF_H

#include <sys/queue.h>
#include <stdint.h>
#include "compat.h"

#define CONF_MAXARGS	8		/* positional arguments per keyword */
#define CONF_MAXWORDS	64		/* words in one statement */
#define CONF_MAXINCLUDE	16		/* include depth */
#define CONF_MAXDEPTH	8		/* block nesting */
#define CONF_MAXTOKEN	4096		/* bytes in one word */
#define CONF_MAXERRORS	100		/* stop reporting after this many */

enum conf_type {
	CONF_NONE = 0,	/* option without a value: a flag */
	CONF_STR,	/* any word */
	CONF_NAME,	/* [A-Za-z0-9_.-]+, for block names */
	CONF_INT,	/* decimal integer in [min, max] */
	CONF_SIZE,	/* bytes: 512, 64k, 1m, 2g */
	CONF_TIME,	/* milliseconds: 250ms, 30s, 5m, 1h, 1d */
	CONF_BOOL,	/* yes/no, on/off, true/false */
	CONF_ENUM,	/* one of the words of .enums, "a|b|c"; num = index */
	CONF_ADDR,	/* host:port, [v6]:port, *:port, unix:/path */
	CONF_CIDR,	/* 10.0.0.0/8, ::1, fd00::/8 */
	CONF_MODE,	/* octal file mode, 0 to 07777 */
	CONF_PATH,	/* an absolute path */
	CONF_USEC	/* microseconds: 50us, 2ms, 1s */
};

struct conf_arg {
	enum conf_type	 type;
	const char	*name;		/* in messages: "invalid port 0" */
	long long	 min, max;	/* numbers; both 0: no range */
	const char	*enums;		/* CONF_ENUM: "roundrobin|leastconn" */
};

struct conf_opt {
	const char	*name;
	struct conf_arg	 arg;		/* type CONF_NONE: a flag */
};

/* conf_kw.flags */
#define CONF_BLOCK	0x01		/* must open a { } block */
#define CONF_BLOCKOPT	0x02		/* may open a block */
#define CONF_MULTI	0x04		/* may repeat in one block */
#define CONF_REQUIRED	0x08		/* the enclosing block needs it */
#define CONF_UNIQUE	0x10		/* with MULTI: first argument unique */
#define CONF_VARIADIC	0x20		/* last positional type repeats */

struct conf_kw {
	const char		*name;
	const char		*parent;	/* block keyword(s), "a|b"; NULL: top */
	int			 flags;
	int			 minargs;
	struct conf_arg		 args[CONF_MAXARGS];
	const struct conf_opt	*opts;		/* { NULL } terminated, or NULL */
	const char		*def;		/* default of args[0], as text */
};

struct conf_val {
	enum conf_type	 type;
	char		*str;		/* the text, after macro expansion */
	long long	 num;		/* INT SIZE TIME(ms) BOOL ENUM MODE */
};

struct conf_optval {
	const struct conf_opt	*opt;
	struct conf_val		 val;
};

struct conf_node {
	const struct conf_kw		*kw;	/* NULL for the root */
	const char			*file;
	int				 line;
	int				 bad;	/* had an error */
	int				 nargs;
	struct conf_val			*args;
	int				 nopts;
	struct conf_optval		*opts;
	struct conf_node		*parent;
	TAILQ_HEAD(, conf_node)		 children;
	TAILQ_ENTRY(conf_node)		 entry;
};

struct conf_macro {
	char			*name;
	char			*value;
	int			 cmdline;	/* -D: the file cannot override */
	TAILQ_ENTRY(conf_macro)	 entry;
};

struct conf {
	const struct conf_kw		*grammar;
	struct conf_node		 root;
	int				 nerrors;
	char				**errors;	/* every message, in order */
	int				 quiet;		/* do not log errors */
	char				**files;	/* names, owned */
	int				 nfiles;
	TAILQ_HEAD(, conf_macro)	 macros;
};

struct conf	*conf_new(const struct conf_kw *);
void		 conf_free(struct conf *);
int		 conf_define(struct conf *, const char *);	/* -D a=b */
int		 conf_parse_file(struct conf *, const char *);
int		 conf_parse_string(struct conf *, const char *, const char *);
void		 conf_error(struct conf *, const struct conf_node *,
		    const char *, ...) __printflike(3, 4);

/* Reading the tree.  <block> is &conf->root or a block node. */
struct conf_node	*conf_get(const struct conf_node *, const char *);
struct conf_node	*conf_next(const struct conf_node *);
const struct conf_kw	*conf_kw_find(const struct conf_kw *,
			    const char *, const char *);
const char		*conf_str(const struct conf *,
			    const struct conf_node *, const char *);
long long		 conf_num(const struct conf *,
			    const struct conf_node *, const char *);
const struct conf_val	*conf_opt(const struct conf_node *, const char *);
long long		 conf_optnum(const struct conf_node *, const char *,
			    long long);
const char		*conf_optstr(const struct conf_node *, const char *,
			    const char *);
int			 conf_parse_value(const struct conf_arg *,
			    const char *, long long *, char *, size_t);
struct net_trusted;
void			 conf_trusted(struct conf *, const char *,
			    struct net_trusted *);

#define CONF_FOREACH(n, block, name)					\
	for ((n) = conf_get((block), (name)); (n) != NULL;		\
	    (n) = conf_next(n))

#endif
