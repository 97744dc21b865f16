/*
 * test_conf.c: unit tests of the configuration parser, common/conf.c.
 *
 * The grammar below is that of an imaginary daemon, testd, and uses
 * every feature of struct conf_kw: each value type, options with and
 * without a value, blocks that must or may open, repeated, required
 * and unique keywords, variadic arguments, "a|b" parents, defaults.
 *
 * The corpus, tests/unit/conf/, holds good and broken files; the tables
 * good_cases[] and bad_cases[] name each one (a test checks that no file
 * is left out) with what it must give: values read back through probes
 * for a good file, the exact list of messages for a bad one.  The other
 * tests parse strings, call the accessors and conf_parse_value().
 *
 * The tests open the corpus as "tests/unit/conf/...", from the top of
 * the source tree: tests/run.sh starts them there, and suite_init()
 * goes there when they are started from elsewhere.
 */
#include <sys/types.h>
#include <sys/stat.h>

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <criterion/redirect.h>

#include <ctype.h>
#include <errno.h>
#include <glob.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"

#define CORPUS		"tests/unit/conf/"
#define MAXPROBES	48		/* probes of a good file */
#define MAXERRS		16		/* messages of a bad file */
#define ERRLEN		192		/* bytes of one message */
#define MISSING		"(missing)"	/* a probe found no node */

static const struct conf_opt listen_opts[] = {
	{ "backlog",	{ CONF_INT, "backlog", 1, 65535 } },
	{ "mode",	{ CONF_MODE, "mode" } },
	{ "tls",	{ CONF_NONE } },
	{ NULL }
};

static const struct conf_opt log_opts[] = {
	{ "facility",	{ CONF_ENUM, "facility", 0, 0,
	    "daemon|local0|local1" } },
	{ NULL }
};

static const struct conf_opt server_opts[] = {
	{ "weight",	{ CONF_INT, "weight", 1, 100 } },
	{ "backup",	{ CONF_NONE } },
	{ "timeout",	{ CONF_TIME, "timeout", 1, 3600000 } },
	{ "check",	{ CONF_BOOL, "check" } },
	{ NULL }
};

static const struct conf_kw grammar[] = {
	/* the top level */
	{ "user", NULL, CONF_REQUIRED, 1, { { CONF_NAME, "user name" } } },
	{ "chroot", NULL, 0, 1, { { CONF_PATH, "chroot directory" } }, NULL,
	    "/var/empty" },
	{ "workers", NULL, 0, 1, { { CONF_INT, "workers", 1, 64 } }, NULL,
	    "4" },
	{ "port", NULL, 0, 1, { { CONF_INT, "port", 1, 65535 } }, NULL,
	    "8000" },
	{ "offset", NULL, 0, 1, { { CONF_INT, "offset" } } },
	{ "max-body", NULL, 0, 1, { { CONF_SIZE, "max-body", 0,
	    1024 * 1024 * 1024 } }, NULL, "1m" },
	{ "cache-size", NULL, 0, 1, { { CONF_SIZE, "cache size" } } },
	{ "idle-timeout", NULL, 0, 1, { { CONF_TIME, "idle-timeout", 100,
	    86400000 } }, NULL, "60s" },
	{ "grace", NULL, 0, 1, { { CONF_TIME, "grace" } }, NULL, "0" },
	{ "log-requests", NULL, 0, 1, { { CONF_BOOL, "log-requests" } }, NULL,
	    "no" },
	{ "log-level", NULL, 0, 1, { { CONF_ENUM, "log level", 0, 0,
	    "debug|info|notice|warning|error" } }, log_opts, "info" },
	{ "socket-mode", NULL, 0, 1, { { CONF_MODE, "socket mode" } }, NULL,
	    "0660" },
	{ "banner", NULL, 0, 1, { { CONF_STR, "banner" } }, NULL, "hello" },
	{ "tag", NULL, CONF_MULTI, 2, { { CONF_STR }, { CONF_STR } } },
	{ "listen", NULL, CONF_MULTI, 1, { { CONF_ADDR, "address" } },
	    listen_opts },
	{ "allow", NULL, CONF_MULTI | CONF_VARIADIC, 1,
	    { { CONF_CIDR, "network" } } },
	{ "stats", NULL, CONF_BLOCKOPT, 0, { { CONF_ADDR, "stats address" } } },
	{ "backend", NULL, CONF_BLOCK | CONF_MULTI | CONF_UNIQUE, 1,
	    { { CONF_NAME, "backend name" } } },
	{ "frontend", NULL, CONF_BLOCK | CONF_MULTI | CONF_UNIQUE, 1,
	    { { CONF_NAME, "frontend name" } } },
	{ "nest", NULL, CONF_BLOCK | CONF_MULTI, 0,
	    { { CONF_NAME, "nest name" } } },

	/* stats { } */
	{ "path", "stats", CONF_REQUIRED, 1, { { CONF_PATH, "stats path" } } },

	/* backend { } */
	{ "balance", "backend", 0, 1, { { CONF_ENUM, "algorithm", 0, 0,
	    "roundrobin|leastconn|hash" } }, NULL, "roundrobin" },
	{ "server", "backend", CONF_MULTI | CONF_UNIQUE | CONF_REQUIRED, 2,
	    { { CONF_NAME, "server name" }, { CONF_ADDR, "address" } },
	    server_opts },
	{ "health", "backend", CONF_BLOCKOPT, 0,
	    { { CONF_PATH, "check path" } } },

	/* backend { health { } } */
	{ "interval", "health", 0, 1, { { CONF_TIME, "interval" } }, NULL,
	    "5s" },
	{ "expect", "health", CONF_MULTI | CONF_VARIADIC, 1,
	    { { CONF_INT, "status", 100, 599 } } },

	/* backend { } and frontend { } */
	{ "timeout", "backend|frontend", 0, 1, { { CONF_TIME, "timeout" } },
	    NULL, "30s" },

	/* frontend { } */
	{ "use", "frontend", CONF_REQUIRED, 1, { { CONF_NAME, "backend" } } },
	{ "root", "frontend", 0, 1, { { CONF_PATH, "document root" } } },
	{ "header", "frontend", CONF_MULTI, 2, { { CONF_STR, "header name" },
	    { CONF_STR, "header value" } } },

	/* nest { nest { ... } }, to any depth */
	{ "nest", "nest", CONF_BLOCKOPT | CONF_MULTI, 0,
	    { { CONF_NAME, "nest name" } } },
	{ "leaf", "nest", CONF_MULTI, 1, { { CONF_STR, "leaf" } } },
	{ NULL }
};

/*
 * A probe reads one value of a parsed tree and gives it as text.
 * "backend[web]/server[1].1" is argument 1 of the second "server" of the
 * "backend" whose first argument is "web".  Each step is a keyword with
 * an optional [index] (0: the first) or [name] (the first argument);
 * without one it is the first of its kind.  The last step may end in:
 *	.N	argument N (without it: argument 0)
 *	#	the number instead of the text: "#", ".1#"
 *	:opt	option <opt> with conf_optstr(), "-" when absent;
 *		":opt#" with conf_optnum(), -1 when absent
 *	?what	count (of the keyword in its block), nargs, nopts, line,
 *		file, bad, children
 * A leading "~" reads with conf_str(), or conf_num() with "#", so that
 * defaults show: "~backend[web]/balance", "~workers#".
 */
struct probe {
	char	path[64];
	char	want[64];
};

struct good_case {
	char		file[40];
	char		define[24];	/* for conf_define(), or "" */
	struct probe	probes[MAXPROBES];
};

/*
 * The messages of a bad file, in order.  One that starts with a digit is
 * "line: message" in the file itself and gets "tests/unit/conf/<file>:"
 * in front; any other is compared as is (another file, or no location).
 */
struct bad_case {
	char	file[40];
	char	errors[MAXERRS][ERRLEN];
};

static struct good_case good_cases[] = {
	{ "good-minimal.conf", "", {
	    { "user", "www" },
	    { "user?line", "2" },
	    { "user?nargs", "1" },
	    { "user?bad", "0" },
	    { "~user", "www" },
	    { "~chroot", "/var/empty" },
	    { "~workers#", "4" },
	    { "~port#", "8000" },
	    { "~offset", "(null)" },
	    { "~offset#", "0" },
	    { "~max-body#", "1048576" },
	    { "~idle-timeout#", "60000" },
	    { "~grace#", "0" },
	    { "~log-requests#", "0" },
	    { "~log-level", "info" },
	    { "~log-level#", "1" },
	    { "~socket-mode#", "432" },
	    { "~banner", "hello" },
	    { "listen?count", "0" },
	    { "backend?count", "0" },
	    { "workers", MISSING } } },
	{ "good-full.conf", "", {
	    { "user", "_testd" },
	    { "chroot", "/var/empty/testd" },
	    { "workers#", "8" },
	    { "port#", "443" },
	    { "offset#", "-12" },
	    { "max-body#", "65536" },
	    { "cache-size#", "2147483648" },
	    { "idle-timeout#", "90000" },
	    { "grace#", "250" },
	    { "log-requests#", "1" },
	    { "log-level", "notice" },
	    { "log-level#", "2" },
	    { "log-level:facility", "local1" },
	    { "log-level:facility#", "2" },
	    { "socket-mode#", "416" },
	    { "banner", "Welcome to testd" },
	    { "tag?count", "2" },
	    { "tag[1].1", "round" },
	    { "listen?count", "4" },
	    { "listen[0]", "10.0.0.1:80" },
	    { "listen[0]?nopts", "0" },
	    { "listen[0]:tls#", "-1" },
	    { "listen[1]:backlog#", "128" },
	    { "listen[1]:tls#", "1" },
	    { "listen[1]:mode", "-" },
	    { "listen[2]", "unix:/run/testd.sock" },
	    { "listen[2]:mode#", "384" },
	    { "listen[3]:backlog", "512" },
	    { "allow[0]?nargs", "3" },
	    { "allow[0].2", "fd00::/8" },
	    { "allow[1]", "::1" },
	    { "stats", "127.0.0.1:9000" },
	    { "stats/path", "/stats" },
	    { "backend?count", "2" },
	    { "backend[web]/balance#", "1" },
	    { "backend[web]/timeout#", "5000" },
	    { "backend[web]/server?count", "3" },
	    { "backend[web]/server[web2].1", "10.0.0.12:80" },
	    { "backend[web]/server[web2]:weight#", "1" },
	    { "backend[web]/server[web2]:backup#", "1" },
	    { "backend[web]/server[web2]:timeout#", "500" },
	    { "backend[web]/server[web1]:backup#", "-1" },
	    { "backend[web]/server[2]:check#", "0" },
	    { "backend[web]/server[2]?line", "35" },
	    { "backend[web]/health/interval#", "2000" },
	    { "backend[web]/health/expect.1#", "204" },
	    { "~backend[api]/balance", "roundrobin" },
	    { "frontend[www]/header[1].1", "testd 1.0" } } },
	{ "good-comments.conf", "", {
	    { "user", "www" },
	    { "banner", "a # inside quotes is text" },
	    { "tag", "a#b" },
	    { "tag.1", "c # d" },
	    { "tag?nargs", "2" },
	    { "backend[web]/server.1", "10.0.0.1:80" },
	    { "backend[web]?line", "10" },
	    { "backend?count", "1" },
	    { "?children", "4" } } },
	{ "good-quoting.conf", "", {
	    { "user", "www" },
	    { "banner", "say \"hi\"\t\\ and\nbye" },
	    { "tag[0]", "single \\n $x \"kept\"" },
	    { "tag[0].1", "dollar $x and $x" },
	    { "tag[1]", "" },
	    { "tag[1].1", "" },
	    { "tag[2]", "two words" },
	    { "tag[2].1", "three" },
	    { "backend[web]/server", "app1" },
	    { "backend[web]/server.1", "10.0.0.1:80" } } },
	{ "good-continuation.conf", "", {
	    { "user", "www" },
	    { "listen?line", "3" },
	    { "listen:backlog#", "64" },
	    { "listen:tls#", "1" },
	    { "tag", "joined" },
	    { "tag.1", "quoted text" },
	    { "tag?line", "6" },
	    { "banner", "after" },
	    { "banner?line", "9" } } },
	{ "good-crlf.conf", "", {
	    { "user", "www" },
	    { "banner", "crlf" },
	    { "listen", "10.0.0.1:80" },
	    { "listen:backlog#", "16" },
	    { "backend[web]/server.1", "10.0.0.2:80" },
	    { "workers#", "3" },
	    { "workers?line", "9" } } },
	{ "good-macros.conf", "", {
	    { "user", "www" },
	    { "listen[0]", "10.0.0.1:8080" },
	    { "listen[1]", "10.0.0.2:8080" },
	    { "listen[2]", "10.0.0.1:9090" },
	    { "banner", "$host is not expanded" },
	    { "tag", "${net}" },
	    { "tag.1", "pre10.0.0post" },
	    { "~port#", "8000" } } },
	{ "good-macros.conf", "net=192.168.1", {
	    { "listen[0]", "192.168.1.1:8080" },
	    { "listen[1]", "192.168.1.2:8080" },
	    { "listen[2]", "192.168.1.1:9090" },
	    { "tag.1", "pre192.168.1post" } } },
	{ "good-macros.conf", "port=7", {
	    { "listen[0]", "10.0.0.1:7" },
	    { "listen[1]", "10.0.0.2:7" },
	    { "listen[2]", "10.0.0.1:7" } } },
	{ "good-include.conf", "", {
	    { "user", "www" },
	    { "workers#", "7" },
	    { "workers?file", CORPUS "inc/common.conf" },
	    { "workers?line", "3" },
	    { "banner", "nested" },
	    { "banner?file", CORPUS "inc/sub/nested.conf" },
	    { "backend[web]/server?count", "2" },
	    { "backend[web]/server[s2]:weight#", "5" },
	    { "backend[web]/server[s2]?file", CORPUS "inc/servers.conf" },
	    { "backend[web]?file", CORPUS "good-include.conf" },
	    { "tag?count", "2" },
	    { "tag[0].1", "one" },
	    { "tag[1].1", "two" },
	    { "tag[1]?file", CORPUS "inc/glob/20-two.conf" },
	    { "listen", "10.9.9.9:99" },
	    { "listen?line", "12" } } },
	{ "good-include-deep.conf", "", {
	    { "tag?count", "16" },
	    { "tag[0].1", "02" },
	    { "tag[15].1", "17" },
	    { "tag[15]?file", CORPUS "deep/d17.conf" } } },
	{ "good-nesting.conf", "", {
	    { "nest?count", "2" },
	    { "nest[l1]/nest[l2]/nest/nest/nest/nest/nest/nest[l8]/leaf",
		"deepest" },
	    { "nest/nest/nest/nest/nest/nest/nest/nest/leaf?line", "11" },
	    { "nest[second]?children", "4" },
	    { "nest[second]/nest?count", "2" },
	    { "nest[second]/nest[0]?children", "0" },
	    { "nest[second]/nest[1]?nargs", "0" },
	    { "nest[second]/nest[1]/leaf", "anonymous" },
	    { "nest[second]/leaf[1]", "two" } } },
	{ "good-oneline.conf", "", {
	    { "backend[web]/server", "a" },
	    { "frontend[www]/use", "web" },
	    { "stats?nargs", "0" },
	    { "stats?children", "0" },
	    { "backend[api]/server.1", "10.0.0.2:80" },
	    { "frontend[x]/use", "api" },
	    { "frontend[x]/use?line", "8" } } },
	{ "good-values.conf", "", {
	    { "user", "a.b_c-9" },
	    { "port#", "1" },
	    { "workers#", "64" },
	    { "offset#", "-9223372036854775807" },
	    { "max-body#", "1073741824" },
	    { "cache-size#", "65536" },
	    { "idle-timeout#", "86400000" },
	    { "grace#", "0" },
	    { "log-requests#", "1" },
	    { "log-level#", "4" },
	    { "socket-mode#", "4095" },
	    { "chroot", "/" },
	    { "allow?nargs", "5" },
	    { "allow.4", "2001:db8::/32" },
	    { "backend/balance#", "2" },
	    { "backend/timeout#", "0" },
	    { "backend/server[x].1", "10.0.0.1:65535" },
	    { "backend/server[x]:weight#", "100" },
	    { "backend/server[x]:timeout#", "1" },
	    { "backend/server[x]:check#", "1" },
	    { "backend/server[y]:check#", "0" },
	    { "backend/server[y]:check", "false" },
	    { "backend/health?nargs", "0" },
	    { "backend/health/interval#", "100" },
	    { "backend/health/expect#", "599" },
	    { "backend/health/expect.1#", "100" },
	    { "frontend/timeout#", "3600000" } } },
	{ "good-variadic.conf", "", {
	    { "allow?count", "2" },
	    { "allow[0]?nargs", "10" },
	    { "allow[0].9", "10.9.0.0/16" },
	    { "allow[1]?nargs", "1" },
	    { "backend/health/expect?count", "2" },
	    { "backend/health/expect[1]?nargs", "3" },
	    { "backend/health/expect[1].2#", "303" },
	    { "~backend/health/interval#", "5000" } } },
};

static struct bad_case bad_cases[] = {
	{ "bad-empty.conf", {
	    "tests/unit/conf/bad-empty.conf: missing \"user\"" } },
	{ "bad-unterminated.conf", {
	    "2: unterminated quoted string",
	    "3: invalid workers 0 (1-64)",
	    "4: unterminated quoted string" } },
	{ "bad-unterminated-eof.conf", {
	    "2: unterminated quoted string" } },
	{ "bad-escape.conf", {
	    "2: invalid escape \"\\q\" in quoted string",
	    "3: invalid escape \"\\x\" in quoted string",
	    "4: invalid workers 99 (1-64)" } },
	{ "bad-nul.conf", {
	    "2: NUL byte in quoted string",
	    "3: NUL byte in file",
	    "4: NUL byte in file",
	    "5: \"workers\" given twice (first at line 4)" } },
	{ "bad-toolong.conf", {
	    "2: word too long (max 4095 bytes)",
	    "3: word too long (max 4095 bytes)",
	    "4: invalid workers 0 (1-64)",
	    "6: word too long (max 4095 bytes)",
	    "7: invalid port 0 (1-65535)" } },
	{ "bad-words.conf", {
	    "2: too many words in one statement (max 64)",
	    "4: invalid workers 0 (1-64)" } },
	{ "bad-semicolon.conf", {
	    "1: statements end at the end of the line: remove the \";\" "
	    "after \"www\"",
	    "2: statements end at the end of the line: remove the \";\"",
	    "4: statements end at the end of the line: remove the \";\" "
	    "after \"2\"" } },
	{ "bad-crlf.conf", {
	    "2: invalid workers 0 (1-64)",
	    "3: invalid backlog 0 (1-65535)",
	    "5: unterminated quoted string",
	    "6: invalid port 0 (1-65535)" } },
	{ "bad-continuation.conf", {
	    "2: invalid mode \"999\": an octal mode such as 0660",
	    "6: invalid workers 0 (1-64)",
	    "8: \"port\": missing port" } },
	{ "bad-braces.conf", {
	    "2: unexpected \"}\"",
	    "3: unexpected \"{\" (a block follows a keyword on the same "
	    "line)",
	    "9: unexpected \"}\"",
	    "10: unexpected \"{\" after a macro",
	    "13: \"include\" does not take a { } block",
	    "15: invalid workers 0 (1-64)" } },
	{ "bad-missing-brace.conf", {
	    "4: \"frontend\" is not allowed inside \"backend web\"",
	    "7: missing \"}\" for the block opened at line 2" } },
	{ "bad-missing-brace-nested.conf", {
	    "8: missing \"}\" for the block opened at line 2" } },
	{ "bad-comment-brace.conf", {
	    "4: missing \"}\" for the block opened at line 2" } },
	{ "bad-depth.conf", {
	    "10: blocks nested too deep (max 8)",
	    "16: invalid escape \"\\q\" in quoted string",
	    "25: invalid workers 0 (1-64)" } },
	{ "bad-unknown.conf", {
	    "2: unknown keyword \"lisen\", did you mean \"listen\"?",
	    "3: unknown keyword \"wrokers\", did you mean \"workers\"?",
	    "4: unknown keyword \"frobnicate\"",
	    "6: unknown keyword \"balanse\", did you mean \"balance\"?",
	    "7: unknown keyword \"sever\", did you mean \"server\"?",
	    "8: \"listen\" is not allowed inside \"backend web\"",
	    "9: unknown keyword \"timeot\", did you mean \"timeout\"?",
	    "5: \"backend web\" needs \"server\"",
	    "11: unknown keyword \"Workers\", did you mean \"workers\"?",
	    "12: unknown keyword \"a-keyword-much-longer-than-sixty-three-"
	    "characters-is-never-close-to-any-keyword\"" } },
	{ "bad-placement.conf", {
	    "2: \"server\" is not allowed at the top level (it goes inside "
	    "\"backend\")",
	    "3: \"timeout\" is not allowed at the top level (it goes inside "
	    "\"backend\" or \"frontend\")",
	    "4: \"leaf\" is not allowed at the top level (it goes inside "
	    "\"nest\")",
	    "7: \"user\" is not allowed inside \"backend web\"",
	    "8: \"interval\" is not allowed inside \"backend web\" (it goes "
	    "inside \"health\")",
	    "9: \"use\" is not allowed inside \"backend web\" (it goes inside "
	    "\"frontend\")",
	    "10: \"stats\" is not allowed inside \"backend web\"",
	    "14: \"balance\" is not allowed inside \"frontend www\" (it goes "
	    "inside \"backend\")" } },
	{ "bad-args.conf", {
	    "1: \"user\": missing user name",
	    "2: too many arguments for \"user\" (at most 1)",
	    "3: \"listen\": missing address",
	    "4: \"tag\" needs 2 arguments",
	    "5: \"tag\" needs 2 arguments",
	    "7: \"server\": missing address",
	    "8: \"server\": unexpected \"extra\" (options: weight, backup, "
	    "timeout, check)",
	    "9: \"server\": unexpected \"extra\" (options: weight, backup, "
	    "timeout, check)",
	    "13: \"header\": missing header value",
	    "14: too many arguments for \"header\" (at most 2)",
	    "16: too many arguments for \"workers\" (at most 1)" } },
	{ "bad-options.conf", {
	    "2: \"listen\": option \"tls\" given twice",
	    "3: \"listen\": option \"backlog\" needs a value",
	    "4: invalid backlog 0 (1-65535)",
	    "4: invalid mode \"999\": an octal mode such as 0660",
	    "5: \"listen\": option \"backlog\" given twice",
	    "5: \"listen\": option \"backlog\" given twice",
	    "6: \"listen\": unexpected \"tls\" (options: backlog, mode, tls)",
	    "8: invalid weight 0 (1-100)",
	    "9: invalid weight \"abc\": not a number",
	    "9: invalid timeout \"5\": a duration needs a unit (ms, s, m, h, "
	    "d)",
	    "9: invalid check \"maybe\": yes or no",
	    "10: \"server\": option \"weight\" needs a value",
	    "12: invalid facility \"local7\" (one of: daemon, local0, "
	    "local1), did you mean \"local0\"?" } },
	{ "bad-twice.conf", {
	    "3: \"user\" given twice (first at line 1)",
	    "7: \"balance\" given twice (first at line 5)",
	    "9: \"timeout\" given twice (first at line 8)",
	    "10: \"timeout\" given twice (first at line 8)",
	    "12: \"workers\" given twice (first at line 2)",
	    "14: \"stats\" given twice (first at line 13)" } },
	{ "bad-unique.conf", {
	    "5: server \"a\" defined twice (first at line 3)",
	    "10: backend \"web\" defined twice (first at line 2)",
	    "16: frontend \"www\" defined twice (first at line 13)",
	    "19: \"backend\": missing backend name",
	    "19: \"backend\" needs a { } block",
	    "21: \"server\": missing server name" } },
	{ "bad-blocks.conf", {
	    "2: \"backend\" needs a { } block",
	    "3: \"user\" given twice (first at line 1)",
	    "3: \"user\" does not take a { } block",
	    "7: \"nest\" needs a { } block",
	    "10: \"root\" does not take a { } block",
	    "13: invalid workers 0 (1-64)" } },
	{ "bad-required.conf", {
	    "1: \"backend web\" needs \"server\"",
	    "4: \"frontend www\" needs \"use\"",
	    "7: \"stats 10.0.0.1:90\" needs \"path\"",
	    "9: invalid backend name \"bad name\": letters, digits, \"_\", "
	    "\"-\" and \".\" only",
	    "tests/unit/conf/bad-required.conf: missing \"user\"" } },
	{ "bad-int.conf", {
	    "2: invalid port 70000 (1-65535)",
	    "3: invalid port 0 (1-65535)",
	    "4: invalid port \"abc\": not a number",
	    "5: invalid port -1 (1-65535)",
	    "6: invalid workers 65 (1-64)",
	    "7: invalid offset \"99999999999999999999\": not a number",
	    "8: invalid offset \"-\": not a number",
	    "9: invalid offset \"+5\": not a number",
	    "10: invalid offset \"1e3\": not a number",
	    "11: invalid offset \"0x10\": not a number",
	    "12: invalid offset \"-9223372036854775808\": not a number" } },
	{ "bad-size.conf", {
	    "2: invalid max-body 2g (0-1073741824)",
	    "3: invalid max-body 1073741825 (0-1073741824)",
	    "4: invalid cache size \"10x\": a size is a number with an "
	    "optional k, m or g",
	    "5: invalid cache size \"10kb\": a size is a number with an "
	    "optional k, m or g",
	    "6: invalid cache size \"9999999999g\": a size is a number with "
	    "an optional k, m or g",
	    "7: invalid cache size \"-1\": a size is a number with an "
	    "optional k, m or g",
	    "8: invalid cache size \"k\": a size is a number with an "
	    "optional k, m or g",
	    "9: invalid cache size \"1.5m\": a size is a number with an "
	    "optional k, m or g",
	    "10: invalid cache size \"8589934592g\": a size is a number with "
	    "an optional k, m or g" } },
	{ "bad-time.conf", {
	    "2: invalid idle-timeout \"30\": a duration needs a unit (ms, s, "
	    "m, h, d)",
	    "3: invalid idle-timeout 50ms (100ms-86400000ms)",
	    "4: invalid idle-timeout 2d (100ms-86400000ms)",
	    "5: invalid grace \"5\": a duration needs a unit (ms, s, m, h, d)",
	    "6: invalid grace \"1.5s\": a duration is a number with a unit "
	    "(ms, s, m, h, d)",
	    "7: invalid grace \"10S\": a duration is a number with a unit "
	    "(ms, s, m, h, d)",
	    "8: invalid grace \"10sec\": a duration is a number with a unit "
	    "(ms, s, m, h, d)",
	    "9: invalid grace \"ms\": a duration is a number with a unit "
	    "(ms, s, m, h, d)",
	    "10: invalid grace \"106751991168d\": a duration is a number "
	    "with a unit (ms, s, m, h, d)",
	    "11: invalid grace \"-1s\": a duration is a number with a unit "
	    "(ms, s, m, h, d)" } },
	{ "bad-bool.conf", {
	    "2: invalid log-requests \"maybe\": yes or no",
	    "3: invalid log-requests \"Yes\": yes or no",
	    "4: invalid log-requests \"1\": yes or no",
	    "6: invalid check \"enabled\": yes or no" } },
	{ "bad-enum.conf", {
	    "2: invalid log level \"warn\" (one of: debug, info, notice, "
	    "warning, error)",
	    "3: invalid log level \"debg\" (one of: debug, info, notice, "
	    "warning, error), did you mean \"debug\"?",
	    "4: invalid log level \"critical\" (one of: debug, info, notice, "
	    "warning, error)",
	    "5: invalid log level \"INFO\" (one of: debug, info, notice, "
	    "warning, error)",
	    "7: invalid algorithm \"leastcon\" (one of: roundrobin, "
	    "leastconn, hash), did you mean \"leastconn\"?",
	    "8: invalid algorithm \"RoundRobin\" (one of: roundrobin, "
	    "leastconn, hash), did you mean \"roundrobin\"?",
	    "9: invalid algorithm \"random\" (one of: roundrobin, leastconn, "
	    "hash)",
	    "12: invalid facility \"local3\" (one of: daemon, local0, "
	    "local1), did you mean \"local0\"?" } },
	{ "bad-addr.conf", {
	    "2: invalid address \"10.0.0.1\": expected host:port",
	    "3: invalid address \"10.0.0.1:0\": invalid port \"0\" (1-65535)",
	    "4: invalid address \"10.0.0.1:70000\": invalid port \"70000\" "
	    "(1-65535)",
	    "5: invalid address \"10.0.0.1:http\": invalid port \"http\" "
	    "(1-65535)",
	    "6: invalid address \"::1:80\": an IPv6 address goes in "
	    "brackets: [address]:port",
	    "7: invalid address \"[::1]80\": expected [address]:port",
	    "8: invalid address \"[::1\": expected [address]:port",
	    "9: invalid address \"unix:run/testd.sock\": a unix socket needs "
	    "an absolute path",
	    "10: invalid address \":80\": missing or too long host",
	    "11: invalid stats address \"10.0.0.1:\": invalid port \"\" "
	    "(1-65535)",
	    "13: invalid address \"10.0.0.1\": expected host:port" } },
	{ "bad-cidr.conf", {
	    "2: invalid network \"10.0.0.0/33\": not an address or "
	    "address/prefix",
	    "3: invalid network \"10.0.0/8\": not an address or "
	    "address/prefix",
	    "4: invalid network \"fd00::/129\": not an address or "
	    "address/prefix",
	    "5: invalid network \"10.0.0.0/\": not an address or "
	    "address/prefix",
	    "6: invalid network \"10.0.0.0/abc\": not an address or "
	    "address/prefix",
	    "7: invalid network \"example.com\": not an address or "
	    "address/prefix",
	    "8: invalid network \"10.0.0.0/-1\": not an address or "
	    "address/prefix",
	    "8: invalid network \"::1/200\": not an address or "
	    "address/prefix" } },
	{ "bad-mode.conf", {
	    "2: invalid socket mode \"0888\": an octal mode such as 0660",
	    "3: invalid socket mode \"17777\": an octal mode such as 0660",
	    "4: invalid socket mode \"0o644\": an octal mode such as 0660",
	    "5: invalid socket mode \"\": an octal mode such as 0660",
	    "6: invalid socket mode \"-644\": an octal mode such as 0660",
	    "7: invalid mode \"rwx\": an octal mode such as 0660" } },
	{ "bad-path.conf", {
	    "2: invalid chroot directory \"var/empty\": not an absolute path",
	    "3: invalid chroot directory \"\": not an absolute path",
	    "4: invalid chroot directory \"./here\": not an absolute path",
	    "7: invalid document root \"srv/www\": not an absolute path",
	    "11: invalid check path \"ping\": not an absolute path" } },
	{ "bad-name.conf", {
	    "1: invalid user name \"a b\": letters, digits, \"_\", \"-\" and "
	    "\".\" only",
	    "2: invalid user name \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaa\": 1 to 63 characters",
	    "3: invalid user name \"\": 1 to 63 characters",
	    "4: invalid backend name \"web/1\": letters, digits, \"_\", \"-\" "
	    "and \".\" only",
	    "5: invalid server name \"\": 1 to 63 characters",
	    "7: invalid nest name \"\xc3\xa9\": letters, digits, \"_\", \"-\" "
	    "and \".\" only" } },
	{ "bad-macros.conf", {
	    "2: undefined macro \"$nope\"",
	    "3: undefined macro \"$nope\"",
	    "4: invalid macro reference in \"cost$\"",
	    "5: invalid macro reference in \"${open\"",
	    "6: invalid macro reference in \"$-x\"",
	    "7: invalid macro reference in \"${}\"",
	    "8: invalid macro name \"1a\"",
	    "9: macro \"a\" has no value",
	    "10: macro \"b\" has no value",
	    "11: macro \"c\": the value must be one word; quote it",
	    "12: unexpected \"{\" after a macro",
	    "15: macro \"e\" defined inside a block: macros are defined at "
	    "the top level",
	    "18: unknown keyword \"f\"" } },
	{ "bad-include-missing.conf", {
	    "2: include \"inc/nothere.conf\": No such file or directory",
	    "3: include needs one file name",
	    "4: include needs one file name",
	    "5: " CORPUS "inc: not a regular file",
	    "6: invalid workers 0 (1-64)" } },
	{ "bad-loop.conf", {
	    CORPUS "inc/loop-b.conf:2: include loop: \"" CORPUS
	    "inc/../bad-loop.conf\" is already being read",
	    "3: invalid workers 0 (1-64)" } },
	{ "bad-self-include.conf", {
	    "2: include loop: \"" CORPUS "bad-self-include.conf\" is already "
	    "being read" } },
	{ "bad-include-deep.conf", {
	    CORPUS "deep/d16.conf:2: includes nested too deep (max 16)",
	    "3: invalid workers 0 (1-64)" } },
	{ "bad-include-errors.conf", {
	    CORPUS "inc/errors-block.conf:2: server \"a\" defined twice "
	    "(first at line 1)",
	    CORPUS "inc/errors-block.conf:3: \"user\" is not allowed inside "
	    "\"backend web\"",
	    CORPUS "inc/errors-block.conf:4: macro \"x\" defined inside a "
	    "block: macros are defined at the top level",
	    CORPUS "inc/errors.conf:2: \"workers\" given twice (first at "
	    CORPUS "bad-include-errors.conf:2)",
	    CORPUS "inc/errors.conf:3: invalid port 70000 (1-65535)",
	    CORPUS "inc/errors.conf:4: unexpected \"}\"",
	    CORPUS "inc/errors.conf:7: missing \"}\" for the block opened at "
	    "line 5",
	    "7: invalid port 0 (1-65535)" } },
	{ "bad-mixed.conf", {
	    "3: invalid workers 0 (1-64)",
	    "4: unknown keyword \"lisen\", did you mean \"listen\"?",
	    "6: invalid algorithm \"random\" (one of: roundrobin, leastconn, "
	    "hash)",
	    "7: invalid weight 0 (1-100)",
	    "8: server \"a\" defined twice (first at line 7)",
	    "11: invalid document root \"relative\": not an absolute path",
	    "10: \"frontend www\" needs \"use\"",
	    "13: invalid grace \"5\": a duration needs a unit (ms, s, m, h, "
	    "d)",
	    "14: unterminated quoted string",
	    "15: invalid log-requests \"perhaps\": yes or no" } },
};

/* The tests open the corpus from the top of the source tree. */
static void
suite_init(void)
{
	char		 exe[PATH_MAX], *p;
	const char	*top;
	ssize_t		 len;
	int		 i;

	if (access(CORPUS "good-minimal.conf", R_OK) == 0)
		return;
	if ((top = getenv("TOP")) != NULL && chdir(top) == 0 &&
	    access(CORPUS "good-minimal.conf", R_OK) == 0)
		return;
	/* <top>/<build>/tests/unit/test_conf */
	len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	cr_assert(len > 0, "readlink /proc/self/exe: %s", strerror(errno));
	exe[len] = '\0';
	for (i = 0; i < 4 && (p = strrchr(exe, '/')) != NULL; i++)
		*p = '\0';
	cr_assert(chdir(exe) == 0 &&
	    access(CORPUS "good-minimal.conf", R_OK) == 0,
	    "cannot find " CORPUS " from %s", exe);
}

TestSuite(conf, .init = suite_init);

static struct conf *
new_conf(void)
{
	struct conf	*c;

	c = conf_new(grammar);
	c->quiet = 1;
	return (c);
}

static struct conf *
parse_file(const char *path, const char *define)
{
	struct conf	*c = new_conf();

	if (define != NULL && *define != '\0')
		cr_assert_eq(conf_define(c, define), 0, "-D %s", define);
	conf_parse_file(c, path);
	return (c);
}

static struct conf *
parse_string(const char *text)
{
	struct conf	*c = new_conf();

	conf_parse_string(c, "inline", text);
	return (c);
}

/* All the messages of <c>, one a line, for the failure reports. */
static const char *
all_errors(const struct conf *c)
{
	static char	buf[8192];
	size_t		l = 0;
	int		i;

	buf[0] = '\0';
	for (i = 0; i < c->nerrors && i < CONF_MAXERRORS; i++) {
		l += snprintf(buf + l, l < sizeof(buf) ? sizeof(buf) - l : 0,
		    "\n\t%s", c->errors[i]);
		if (l >= sizeof(buf))
			break;
	}
	return (buf);
}

/* Checks that <c> holds exactly the messages of <want>, NULL-ended. */
static void
expect_errors(const struct conf *c, const char *what, const char **want)
{
	int	i, n;

	for (n = 0; want[n] != NULL; n++)
		;
	cr_expect_eq(c->nerrors, n, "%s: %d errors instead of %d:%s", what,
	    c->nerrors, n, all_errors(c));
	for (i = 0; i < n && i < c->nerrors; i++)
		cr_expect_str_eq(c->errors[i], want[i],
		    "%s: message %d is\n\t%s\ninstead of\n\t%s", what, i + 1,
		    c->errors[i], want[i]);
	if (c->nerrors <= CONF_MAXERRORS)
		cr_expect_null(c->errors == NULL ? NULL :
		    c->errors[c->nerrors], "%s: errors[] not NULL-ended", what);
}

static void
expect_no_errors(const struct conf *c, const char *what)
{
	const char	*none[] = { NULL };

	expect_errors(c, what, none);
}

static struct conf_node *
probe_find(const struct conf_node *block, char *step)
{
	struct conf_node	*n;
	char			*sel, *end;
	int			 i = 0;

	if ((sel = strchr(step, '[')) != NULL) {
		*sel++ = '\0';
		if ((end = strchr(sel, ']')) != NULL)
			*end = '\0';
	}
	CONF_FOREACH(n, block, step) {
		if (sel == NULL)
			return (n);
		if (isdigit((unsigned char)sel[0]) ? i++ == atoi(sel) :
		    (n->nargs > 0 && strcmp(n->args[0].str, sel) == 0))
			return (n);
	}
	return (NULL);
}

/* Reads the value <path> names (see struct probe) into <out>. */
static void
probe(const struct conf *c, const char *path, char *out, size_t len)
{
	const struct conf_node	*block = &c->root, *n;
	const char		*str;
	char			 buf[128], sfx[64], *p, *step, *s;
	int			 def = 0, num, idx = 0, count;

	snprintf(buf, sizeof(buf), "%s", path);
	p = buf;
	if (*p == '~') {
		def = 1;
		p++;
	}
	/* every step but the last names a block */
	while ((step = strsep(&p, "/")) != NULL && p != NULL) {
		if ((block = probe_find(block, step)) == NULL) {
			snprintf(out, len, MISSING);
			return;
		}
	}
	/* the suffix starts after the selector, if any */
	if ((s = strchr(step, '[')) == NULL || (s = strchr(s, ']')) == NULL)
		s = step;
	s += strcspn(s, ".#:?");
	snprintf(sfx, sizeof(sfx), "%s", s);
	*s = '\0';
	num = sfx[0] != '\0' && sfx[strlen(sfx) - 1] == '#';
	if (num)
		sfx[strlen(sfx) - 1] = '\0';

	if (def) {
		if (num)
			snprintf(out, len, "%lld", conf_num(c, block, step));
		else if ((str = conf_str(c, block, step)) == NULL)
			snprintf(out, len, "(null)");
		else
			snprintf(out, len, "%s", str);
		return;
	}
	if (strcmp(sfx, "?count") == 0) {
		count = 0;
		step[strcspn(step, "[")] = '\0';
		CONF_FOREACH(n, block, step)
			count++;
		snprintf(out, len, "%d", count);
		return;
	}
	if (*step == '\0')
		n = block;		/* "?children" of the root */
	else if ((n = probe_find(block, step)) == NULL) {
		snprintf(out, len, MISSING);
		return;
	}
	if (sfx[0] == '?') {
		if (strcmp(sfx, "?nargs") == 0)
			snprintf(out, len, "%d", n->nargs);
		else if (strcmp(sfx, "?nopts") == 0)
			snprintf(out, len, "%d", n->nopts);
		else if (strcmp(sfx, "?line") == 0)
			snprintf(out, len, "%d", n->line);
		else if (strcmp(sfx, "?file") == 0)
			snprintf(out, len, "%s", n->file);
		else if (strcmp(sfx, "?bad") == 0)
			snprintf(out, len, "%d", n->bad);
		else if (strcmp(sfx, "?children") == 0) {
			const struct conf_node	*ch;

			count = 0;
			TAILQ_FOREACH(ch, &n->children, entry)
				count++;
			snprintf(out, len, "%d", count);
		} else
			cr_assert_fail("probe \"%s\": unknown %s", path, sfx);
		return;
	}
	if (sfx[0] == ':') {
		if (num)
			snprintf(out, len, "%lld", conf_optnum(n, sfx + 1, -1));
		else
			snprintf(out, len, "%s", conf_optstr(n, sfx + 1, "-"));
		return;
	}
	if (sfx[0] == '.')
		idx = atoi(sfx + 1);
	if (idx >= n->nargs)
		snprintf(out, len, MISSING);
	else if (num)
		snprintf(out, len, "%lld", n->args[idx].num);
	else
		snprintf(out, len, "%s", n->args[idx].str);
}

static void
expect_probe(const struct conf *c, const char *what, const char *path,
    const char *want)
{
	char	got[CONF_MAXTOKEN];

	probe(c, path, got, sizeof(got));
	cr_expect_str_eq(got, want, "%s: %s is \"%s\", not \"%s\"", what, path,
	    got, want);
}

/* The corpus */

ParameterizedTestParameters(conf, good_files)
{
	return (cr_make_param_array(struct good_case, good_cases,
	    nitems(good_cases)));
}

ParameterizedTest(struct good_case *g, conf, good_files)
{
	struct conf	*c;
	char		 path[PATH_MAX], what[128];
	int		 i;

	snprintf(path, sizeof(path), "%s%s", CORPUS, g->file);
	snprintf(what, sizeof(what), "%s%s%s", g->file,
	    g->define[0] ? " -D " : "", g->define);
	c = parse_file(path, g->define);
	expect_no_errors(c, what);
	for (i = 0; i < MAXPROBES && g->probes[i].path[0] != '\0'; i++)
		expect_probe(c, what, g->probes[i].path, g->probes[i].want);
	conf_free(c);
}

ParameterizedTestParameters(conf, bad_files)
{
	return (cr_make_param_array(struct bad_case, bad_cases,
	    nitems(bad_cases)));
}

ParameterizedTest(struct bad_case *b, conf, bad_files)
{
	static char	 full[MAXERRS][ERRLEN + 64];
	const char	*want[MAXERRS + 1];
	struct conf	*c;
	char		 path[PATH_MAX];
	int		 i, rv;

	for (i = 0; i < MAXERRS && b->errors[i][0] != '\0'; i++) {
		if (isdigit((unsigned char)b->errors[i][0]))
			snprintf(full[i], sizeof(full[i]), "%s%s:%s", CORPUS,
			    b->file, b->errors[i]);
		else
			snprintf(full[i], sizeof(full[i]), "%s",
			    b->errors[i]);
		want[i] = full[i];
	}
	want[i] = NULL;
	cr_assert_gt(i, 0, "%s: no message expected", b->file);

	snprintf(path, sizeof(path), "%s%s", CORPUS, b->file);
	c = new_conf();
	rv = conf_parse_file(c, path);
	cr_expect_eq(rv, c->nerrors, "%s: returned %d, %d errors", b->file,
	    rv, c->nerrors);
	expect_errors(c, b->file, want);
	conf_free(c);
}

static int
access_corpus(const char *file)
{
	char	path[PATH_MAX];

	snprintf(path, sizeof(path), "%s%s", CORPUS, file);
	return (access(path, R_OK) == 0);
}

/* Every file at the top of the corpus is in a table, and exists. */
Test(conf, corpus_complete)
{
	glob_t		 g;
	const char	*name;
	size_t		 i, j;
	int		 found;

	cr_assert_eq(glob(CORPUS "*.conf", 0, NULL, &g), 0);
	cr_expect_geq(g.gl_pathc, 40, "only %zu files", g.gl_pathc);
	for (i = 0; i < g.gl_pathc; i++) {
		name = g.gl_pathv[i] + strlen(CORPUS);
		found = 0;
		for (j = 0; j < nitems(good_cases); j++)
			if (strcmp(good_cases[j].file, name) == 0)
				found = 1;
		for (j = 0; j < nitems(bad_cases); j++)
			if (strcmp(bad_cases[j].file, name) == 0)
				found = 1;
		cr_expect(found, "%s is in no table", g.gl_pathv[i]);
	}
	globfree(&g);
	for (j = 0; j < nitems(good_cases); j++)
		cr_expect(strncmp(good_cases[j].file, "good-", 5) == 0 &&
		    access_corpus(good_cases[j].file),
		    "%s in the table of good files", good_cases[j].file);
	for (j = 0; j < nitems(bad_cases); j++)
		cr_expect(strncmp(bad_cases[j].file, "bad-", 4) == 0 &&
		    access_corpus(bad_cases[j].file),
		    "%s in the table of bad files", bad_cases[j].file);
}

/* The grammar uses every type and flag, and its defaults parse. */
Test(conf, grammar_complete)
{
	const struct conf_kw	*k, *blk;
	const struct conf_opt	*o;
	const char		*pp;
	char			 err[256], parent[64];
	long long		 num;
	unsigned		 types = 0;
	int			 flags = 0, i, parents = 0;

	for (k = grammar; k->name != NULL; k++) {
		flags |= k->flags;
		for (i = 0; i < CONF_MAXARGS; i++)
			types |= 1U << k->args[i].type;
		for (o = k->opts; o != NULL && o->name != NULL; o++)
			types |= 1U << o->arg.type;
		if (k->def != NULL)
			cr_expect_eq(conf_parse_value(&k->args[0], k->def,
			    &num, err, sizeof(err)), 0, "default of %s: %s",
			    k->name, err);
		if (k->parent == NULL)
			continue;
		if (strchr(k->parent, '|') != NULL)
			parents++;
		/* each parent is a keyword that opens a block */
		for (pp = k->parent; *pp != '\0'; pp += strcspn(pp, "|")) {
			if (*pp == '|')
				pp++;
			snprintf(parent, sizeof(parent), "%.*s",
			    (int)strcspn(pp, "|"), pp);
			for (blk = grammar; blk->name != NULL; blk++)
				if (strcmp(blk->name, parent) == 0 &&
				    (blk->flags & (CONF_BLOCK | CONF_BLOCKOPT)))
					break;
			cr_expect_not_null(blk->name, "%s: parent %s", k->name,
			    parent);
		}
	}
	cr_expect_eq(types, (1U << (CONF_PATH + 1)) - 1, "types %#x", types);
	cr_expect_eq(flags, CONF_BLOCK | CONF_BLOCKOPT | CONF_MULTI |
	    CONF_REQUIRED | CONF_UNIQUE | CONF_VARIADIC, "flags %#x", flags);
	cr_expect_gt(parents, 0);
}

Test(conf, parse_string)
{
	struct conf	*c = new_conf();
	const char	*want[] = {
		"one:2: invalid workers 0 (1-64)",
		"two:1: \"user\" given twice (first at one:1)",
		"two:2: missing \"}\" for the block opened at line 2",
		NULL
	};

	cr_expect_eq(conf_parse_string(c, "one", "user www\nworkers 0\n"), 1);
	/* a second string goes on in the same tree */
	cr_expect_eq(conf_parse_string(c, "two", "user root\nbackend x {"),
	    3);
	expect_errors(c, "two strings", want);
	cr_expect_eq(c->nfiles, 2);
	cr_expect_str_eq(conf_get(&c->root, "user")->file, "one");
	conf_free(c);

	/* no newline at the end, empty text, blanks only */
	c = parse_string("user www");
	expect_no_errors(c, "no newline");
	conf_free(c);
	c = parse_string(" \t\n\n");
	cr_expect_eq(c->nerrors, 1);
	cr_expect_str_eq(c->errors[0], "inline: missing \"user\"");
	conf_free(c);
}

Test(conf, lexer)
{
	struct conf	*c;
	char		 text[CONF_MAXTOKEN + 64];

	/* blocks and words: braces end a word, even with no blank */
	c = parse_string("user www\nbackend web{server a 10.0.0.1:80}\n"
	    "frontend f{\nuse web}");
	expect_no_errors(c, "braces");
	expect_probe(c, "braces", "backend[web]/server", "a");
	expect_probe(c, "braces", "frontend[f]/use?line", "4");
	conf_free(c);

	/* a quoted word ends at its quote */
	c = parse_string("user www\ntag \"a\"'b'\n");
	expect_no_errors(c, "quotes");
	expect_probe(c, "quotes", "tag", "a");
	expect_probe(c, "quotes", "tag.1", "b");
	conf_free(c);

	/* a quoted keyword is a keyword; a quoted "include" is not */
	c = parse_string("\"user\" www\n\"include\" x\n");
	cr_expect_eq(c->nerrors, 1, "%s", all_errors(c));
	cr_expect_str_eq(c->errors[0], "inline:2: unknown keyword "
	    "\"include\"");
	conf_free(c);

	/* the longest word, and one byte more */
	memset(text, 0, sizeof(text));
	strlcpy(text, "user www\nbanner ", sizeof(text));
	memset(text + strlen(text), 'x', CONF_MAXTOKEN - 1);
	c = parse_string(text);
	expect_no_errors(c, "4095 bytes");
	cr_expect_eq(strlen(conf_str(c, &c->root, "banner")),
	    CONF_MAXTOKEN - 1);
	conf_free(c);
	strlcat(text, "x", sizeof(text));
	c = parse_string(text);
	cr_expect_eq(c->nerrors, 1, "%s", all_errors(c));
	cr_expect_str_eq(c->errors[0], "inline:2: word too long (max 4095 "
	    "bytes)");
	conf_free(c);

	/* a backslash elsewhere than before a newline is kept */
	c = parse_string("user www\ntag a\\b \\c\n");
	expect_no_errors(c, "backslash");
	expect_probe(c, "backslash", "tag", "a\\b");
	expect_probe(c, "backslash", "tag.1", "\\c");
	conf_free(c);

	/* an escaped newline in a quoted string counts as a line */
	c = parse_string("user www\nbanner \"a\\\nb\"\nworkers 0\n");
	expect_probe(c, "escaped newline", "banner", "ab");
	cr_expect_eq(c->nerrors, 1);
	cr_expect_str_eq(c->errors[0], "inline:4: invalid workers 0 (1-64)");
	conf_free(c);
}

Test(conf, macros)
{
	struct conf	*c;
	char		 text[2 * CONF_MAXTOKEN];

	/* adjacent references, an empty value, a value made of macros */
	c = parse_string("a=x\nb=y\nempty = \"\"\nab=$a$b\nuser www\n"
	    "tag $a$b${a}$empty ${ab}.$ab\n");
	expect_no_errors(c, "adjacent");
	expect_probe(c, "adjacent", "tag", "xyx");
	expect_probe(c, "adjacent", "tag.1", "xy.xy");
	conf_free(c);

	/* a quote inside an unquoted word is only a character */
	c = parse_string("q=\"\"\nuser www\nbanner a'b'$q\n");
	expect_no_errors(c, "inner quotes");
	expect_probe(c, "inner quotes", "banner", "a'b'\"\"");
	conf_free(c);

	/* a keyword from a macro; defined after use is undefined */
	c = parse_string("kw=user\n$kw www\nbanner $late\nlate=1\n");
	cr_expect_eq(c->nerrors, 1, "%s", all_errors(c));
	cr_expect_str_eq(c->errors[0], "inline:3: undefined macro \"$late\"");
	expect_probe(c, "keyword macro", "user", "www");
	conf_free(c);

	/* a macro cannot make a word longer than the limit */
	memset(text, 0, sizeof(text));
	strlcpy(text, "big=", sizeof(text));
	memset(text + 4, 'x', CONF_MAXTOKEN / 2 + 1);
	strlcat(text, "\nuser www\nbanner $big$big\n", sizeof(text));
	c = parse_string(text);
	cr_expect_eq(c->nerrors, 1, "%s", all_errors(c));
	cr_expect_str_eq(c->errors[0], "inline:3: word too long after macro "
	    "expansion");
	conf_free(c);
}

Test(conf, define)
{
	struct conf		*c = new_conf();
	struct conf_macro	*m;
	int			 n = 0;

	cr_expect_eq(conf_define(c, "a=1"), 0);
	cr_expect_eq(conf_define(c, "_b2=two words"), 0);
	cr_expect_eq(conf_define(c, "empty="), 0);
	cr_expect_eq(conf_define(c, "a=2"), 0);	/* the last wins */
	cr_expect_eq(conf_define(c, "noequal"), -1);
	cr_expect_eq(conf_define(c, "=value"), -1);
	cr_expect_eq(conf_define(c, "1a=b"), -1);
	cr_expect_eq(conf_define(c, "a-b=c"), -1);
	TAILQ_FOREACH(m, &c->macros, entry) {
		cr_expect(m->cmdline, "%s not from the command line", m->name);
		n++;
	}
	cr_expect_eq(n, 3);

	/* the file cannot override a -D, and the value is one word */
	conf_parse_string(c, "inline", "a = 3\nuser www\ntag $a $_b2\n"
	    "banner x$empty\n");
	expect_no_errors(c, "-D");
	expect_probe(c, "-D", "tag", "2");
	expect_probe(c, "-D", "tag.1", "two words");
	expect_probe(c, "-D", "banner", "x");
	conf_free(c);
}

Test(conf, maxerrors)
{
	struct conf	*c;
	char		*text, *p;
	int		 i;

	/* 150 errors: all counted, the first 100 kept */
	if ((text = malloc(150 * 16 + 16)) == NULL)
		cr_assert_fail("malloc");
	p = text + sprintf(text, "user www\n");
	for (i = 0; i < 150; i++)
		p += sprintf(p, "nosuch%d\n", i);
	c = parse_string(text);
	free(text);
	cr_expect_eq(c->nerrors, 150);
	cr_expect_str_eq(c->errors[0], "inline:2: unknown keyword \"nosuch0\"");
	cr_expect_str_eq(c->errors[CONF_MAXERRORS - 1],
	    "inline:101: unknown keyword \"nosuch99\"");
	cr_expect_null(c->errors[CONF_MAXERRORS]);
	/* conf_error() past the cap counts but keeps nothing */
	conf_error(c, NULL, "one more");
	cr_expect_eq(c->nerrors, 151);
	cr_expect_null(c->errors[CONF_MAXERRORS]);
	conf_free(c);
}

/* conf_error(): the daemons' own checks, after parsing */
Test(conf, conf_error)
{
	struct conf		*c;
	struct conf_node	*b, *s;
	const char		*want[] = {
		"inline:3: server \"a\": port 80 is used twice",
		"inline:2: backend \"web\" is not used",
		"no frontend at all",
		NULL
	};

	c = parse_string("user www\nbackend web {\n\tserver a 10.0.0.1:80\n"
	    "}\n");
	cr_assert_eq(c->nerrors, 0, "%s", all_errors(c));
	b = conf_get(&c->root, "backend");
	s = conf_get(b, "server");
	conf_error(c, s, "server \"%s\": port %d is used twice",
	    s->args[0].str, 80);
	conf_error(c, b, "backend \"%s\" is not used", b->args[0].str);
	conf_error(c, NULL, "no frontend at all");
	expect_errors(c, "conf_error", want);
	conf_free(c);
}

Test(conf, accessors)
{
	struct conf		*c;
	struct conf_node	*n, *web, *s;
	const struct conf_val	*v;
	const struct conf_kw	*k;
	const char		*addrs[] = { "10.0.0.1:80", "[::1]:8080",
				    "unix:/run/testd.sock", "*:443" };
	int			 i;

	c = parse_file(CORPUS "good-full.conf", NULL);
	cr_assert_eq(c->nerrors, 0, "%s", all_errors(c));

	/* conf_get, conf_next, CONF_FOREACH: in file order */
	i = 0;
	CONF_FOREACH(n, &c->root, "listen") {
		cr_assert_lt(i, 4);
		cr_expect_str_eq(n->args[0].str, addrs[i]);
		cr_expect_eq(n->args[0].type, CONF_ADDR);
		cr_expect_eq(n->parent, &c->root);
		i++;
	}
	cr_expect_eq(i, 4);
	n = conf_get(&c->root, "tag");
	cr_expect_str_eq(conf_next(n)->args[1].str, "round");
	cr_expect_null(conf_next(conf_next(n)));
	cr_expect_null(conf_get(&c->root, "nest"));
	cr_expect_null(conf_get(&c->root, "server"));	/* in a block */
	cr_expect_null(conf_get(n, "user"));		/* not a block */

	/* a block's children, its parent, its file and line */
	web = conf_get(&c->root, "backend");
	cr_expect_str_eq(web->args[0].str, "web");
	cr_expect_str_eq(web->file, CORPUS "good-full.conf");
	cr_expect_eq(web->line, 30);
	s = conf_get(web, "server");
	cr_expect_eq(s->parent, web);
	cr_expect_str_eq(conf_next(conf_next(s))->args[0].str, "web3");
	cr_expect_str_eq(conf_next(web)->args[0].str, "api");

	/* conf_str and conf_num: the value, else the default, else none */
	cr_expect_str_eq(conf_str(c, &c->root, "workers"), "8");
	cr_expect_eq(conf_num(c, &c->root, "workers"), 8);
	cr_expect_str_eq(conf_str(c, web, "balance"), "leastconn");
	cr_expect_eq(conf_num(c, web, "balance"), 1);
	cr_expect_str_eq(conf_str(c, web, "server"), "web1");
	cr_expect_eq(conf_num(c, conf_next(web), "timeout"), 30000);
	cr_expect_str_eq(conf_str(c, conf_next(web), "timeout"), "30s");
	cr_expect_null(conf_str(c, &c->root, "nest"));
	cr_expect_eq(conf_num(c, &c->root, "nest"), 0);
	n = conf_get(&c->root, "stats");
	cr_expect_str_eq(conf_str(c, &c->root, "stats"), "127.0.0.1:9000");
	cr_expect_str_eq(conf_str(c, n, "path"), "/stats");

	/* options */
	n = conf_next(conf_get(&c->root, "listen"));
	v = conf_opt(n, "backlog");
	cr_assert_not_null(v);
	cr_expect_eq(v->type, CONF_INT);
	cr_expect_eq(v->num, 128);
	cr_expect_str_eq(v->str, "128");
	v = conf_opt(n, "tls");
	cr_assert_not_null(v);
	cr_expect_eq(v->type, CONF_NONE);
	cr_expect_eq(v->num, 1);
	cr_expect_str_eq(v->str, "");
	cr_expect_null(conf_opt(n, "mode"));
	cr_expect_null(conf_opt(n, "nosuch"));
	cr_expect_eq(conf_optnum(n, "mode", 0644), 0644);
	cr_expect_str_eq(conf_optstr(n, "mode", "def"), "def");
	cr_expect_null(conf_optstr(n, "mode", NULL));
	cr_expect_str_eq(conf_optstr(n, "backlog", NULL), "128");
	s = conf_next(s);
	cr_expect_eq(s->nopts, 3);
	cr_expect_str_eq(s->opts[2].opt->name, "timeout");
	cr_expect_eq(s->opts[2].val.type, CONF_TIME);
	cr_expect_eq(conf_optnum(s, "timeout", 0), 500);

	/* conf_kw_find: parents, "a|b" */
	k = conf_kw_find(grammar, "timeout", "backend");
	cr_expect_not_null(k);
	cr_expect_eq(conf_kw_find(grammar, "timeout", "frontend"), k);
	cr_expect_null(conf_kw_find(grammar, "timeout", NULL));
	cr_expect_null(conf_kw_find(grammar, "timeout", "back"));
	cr_expect_null(conf_kw_find(grammar, "timeout", "backend|frontend"));
	cr_expect_null(conf_kw_find(grammar, "user", "backend"));
	cr_expect_eq(conf_kw_find(grammar, "user", NULL), &grammar[0]);
	k = conf_kw_find(grammar, "nest", NULL);
	cr_expect_not_null(k);
	cr_expect_null(k->parent);
	cr_expect_str_eq(conf_kw_find(grammar, "nest", "nest")->parent,
	    "nest");
	conf_free(c);
}

/* A keyword that the grammar does not have there is a daemon's bug. */
static struct conf	*fatal_conf;

Test(conf, str_not_in_grammar, .exit_code = 1,
    .init = cr_redirect_stderr)
{
	fatal_conf = parse_string("user www\n");
	conf_str(fatal_conf, &fatal_conf->root, "balance");
	cr_assert_fail("conf_str did not exit");
}

Test(conf, unreadable)
{
	struct conf	*c;

	/* one error, without the "missing" ones that would follow */
	c = parse_file(CORPUS "nosuch.conf", NULL);
	cr_expect_eq(c->nerrors, 1, "%s", all_errors(c));
	cr_expect_str_eq(c->errors[0], CORPUS "nosuch.conf: No such file or "
	    "directory");
	conf_free(c);
	c = parse_file(CORPUS "inc", NULL);
	cr_expect_eq(c->nerrors, 1, "%s", all_errors(c));
	cr_expect_str_eq(c->errors[0], CORPUS "inc: not a regular file");
	conf_free(c);
}

/* A wrong statement stays in the tree, marked bad. */
Test(conf, tree_after_errors)
{
	struct conf		*c;
	struct conf_node	*n;

	c = parse_string("user www\nworkers 0\nbackend web {\n"
	    "\tserver a 10.0.0.1:80 weight 0\n\tserver b 10.0.0.2:80\n}\n"
	    "frontend f {\n}\n");
	cr_expect_eq(c->nerrors, 3, "%s", all_errors(c));
	n = conf_get(&c->root, "workers");
	cr_assert_not_null(n);
	cr_expect(n->bad);
	cr_expect_eq(n->nargs, 1);
	cr_expect_str_eq(n->args[0].str, "0");
	n = conf_get(&c->root, "backend");
	cr_expect_not(n->bad);
	n = conf_get(n, "server");
	cr_expect(n->bad);
	cr_expect_eq(n->nopts, 0);	/* the bad option is not kept */
	cr_expect_not(conf_next(n)->bad);
	n = conf_get(&c->root, "frontend");
	cr_expect_not(n->bad);		/* lacks "use", but is fine */
	cr_expect_not(conf_get(&c->root, "user")->bad);
	conf_free(c);
}

/* include from a string: relative to the name given, or absolute */
Test(conf, include_from_string)
{
	struct conf	*c;
	char		 cwd[PATH_MAX], text[PATH_MAX + 64];

	c = new_conf();
	conf_parse_string(c, CORPUS "inline", "user www\nbackend web {\n"
	    "include \"inc/servers.conf\"\n}\n");
	expect_no_errors(c, "relative");
	expect_probe(c, "relative", "backend/server?count", "2");
	expect_probe(c, "relative", "backend/server?file",
	    CORPUS "inc/servers.conf");
	conf_free(c);

	cr_assert_not_null(getcwd(cwd, sizeof(cwd)));
	snprintf(text, sizeof(text), "user www\ninclude \"%s/%s\"\n", cwd,
	    CORPUS "inc/common.conf");
	c = parse_string(text);
	expect_no_errors(c, "absolute");
	expect_probe(c, "absolute", "banner", "nested");
	conf_free(c);

	/* "inline" has no directory: from the current one */
	c = parse_string("user www\ninclude \"" CORPUS "inc/nothere\"\n");
	cr_expect_eq(c->nerrors, 1);
	cr_expect_str_eq(c->errors[0], "inline:2: include \"" CORPUS
	    "inc/nothere\": No such file or directory");
	conf_free(c);
}

struct value_case {
	struct conf_arg	 arg;
	const char	*text;
	int		 rv;
	long long	 num;
	const char	*err;
};

/* conf_parse_value, alone: the message has no file:line */
Test(conf, parse_value)
{
	static const struct value_case	cases[] = {
		{ { CONF_STR, "s" }, "", 0, 0, NULL },
		{ { CONF_NONE }, "x", 0, 0, NULL },
		{ { CONF_NAME, "n" }, "a-b_c.D9", 0, 0, NULL },
		{ { CONF_NAME }, "a:b", -1, 0, "invalid value \"a:b\": "
		    "letters, digits, \"_\", \"-\" and \".\" only" },
		{ { CONF_INT, "i" }, "9223372036854775807", 0, LLONG_MAX,
		    NULL },
		{ { CONF_INT, "i" }, "-9223372036854775807", 0, -LLONG_MAX,
		    NULL },
		{ { CONF_INT, "i" }, "9223372036854775808", -1, 0,
		    "invalid i \"9223372036854775808\": not a number" },
		{ { CONF_INT, "i", -5, 5 }, "-5", 0, -5, NULL },
		{ { CONF_INT, "i", -5, 5 }, "-6", -1, 0,
		    "invalid i -6 (-5-5)" },
		{ { CONF_INT, "i" }, "007", 0, 7, NULL },
		{ { CONF_INT, "i" }, " 7", -1, 0,
		    "invalid i \" 7\": not a number" },
		{ { CONF_SIZE, "z" }, "0", 0, 0, NULL },
		{ { CONF_SIZE, "z" }, "512", 0, 512, NULL },
		{ { CONF_SIZE, "z" }, "1M", 0, 1048576, NULL },
		{ { CONF_SIZE, "z" }, "3G", 0, 3221225472LL, NULL },
		{ { CONF_SIZE, "z" }, "8589934591g", 0, 8589934591LL << 30,
		    NULL },
		{ { CONF_SIZE, "z" }, "9007199254740992k", -1, 0,
		    "invalid z \"9007199254740992k\": a size is a number with "
		    "an optional k, m or g" },
		{ { CONF_SIZE, "z", 1, 1024 }, "2k", -1, 0,
		    "invalid z 2k (1-1024)" },
		{ { CONF_TIME, "t" }, "0", 0, 0, NULL },
		{ { CONF_TIME, "t" }, "0ms", 0, 0, NULL },
		{ { CONF_TIME, "t" }, "5m", 0, 300000, NULL },
		{ { CONF_TIME, "t" }, "2h", 0, 7200000, NULL },
		{ { CONF_TIME, "t" }, "106751991167d", 0,
		    106751991167LL * 86400000, NULL },
		{ { CONF_TIME, "t" }, "1", -1, 0, "invalid t \"1\": a "
		    "duration needs a unit (ms, s, m, h, d)" },
		{ { CONF_TIME, "t" }, "1 s", -1, 0, "invalid t \"1 s\": a "
		    "duration is a number with a unit (ms, s, m, h, d)" },
		{ { CONF_USEC, "u" }, "0", 0, 0, NULL },
		{ { CONF_USEC, "u" }, "50us", 0, 50, NULL },
		{ { CONF_USEC, "u" }, "2ms", 0, 2000, NULL },
		{ { CONF_USEC, "u" }, "1s", 0, 1000000, NULL },
		{ { CONF_USEC, "u" }, "50", -1, 0, "invalid u \"50\": a "
		    "duration needs a unit (us, ms, s)" },
		{ { CONF_USEC, "u" }, "1m", -1, 0, "invalid u \"1m\": a "
		    "duration is a number with a unit (us, ms, s)" },
		{ { CONF_USEC, "u", 0, 10000 }, "11ms", -1, 0,
		    "invalid u 11ms (0us-10000us)" },
		{ { CONF_TIME, "t" }, "50us", -1, 0, "invalid t \"50us\": a "
		    "duration is a number with a unit (ms, s, m, h, d)" },
		{ { CONF_BOOL, "b" }, "true", 0, 1, NULL },
		{ { CONF_BOOL, "b" }, "off", 0, 0, NULL },
		{ { CONF_BOOL, "b" }, "", -1, 0, "invalid b \"\": yes or no" },
		{ { CONF_ENUM, "e", 0, 0, "a|bb|ccc" }, "ccc", 0, 2, NULL },
		{ { CONF_ENUM, "e", 0, 0, "a|bb|ccc" }, "b", -1, 0,
		    "invalid e \"b\" (one of: a, bb, ccc), did you mean "
		    "\"a\"?" },
		{ { CONF_ENUM, "e", 0, 0, "solo" }, "", -1, 0,
		    "invalid e \"\" (one of: solo)" },
		{ { CONF_ADDR, "a" }, "127.0.0.1:1", 0, 0, NULL },
		{ { CONF_ADDR, "a" }, "[::]:65535", 0, 0, NULL },
		{ { CONF_ADDR, "a" }, "unix:/x", 0, 0, NULL },
		{ { CONF_CIDR, "c" }, "::", 0, 0, NULL },
		{ { CONF_CIDR, "c" }, "10.0.0.0/0", 0, 0, NULL },
		{ { CONF_CIDR, "c" }, "::ffff:10.0.0.1/128", 0, 0, NULL },
		{ { CONF_CIDR, "c" }, "10.0.0.1/08x", -1, 0, "invalid c "
		    "\"10.0.0.1/08x\": not an address or address/prefix" },
		{ { CONF_MODE, "m" }, "0", 0, 0, NULL },
		{ { CONF_MODE, "m" }, "07777", 0, 07777, NULL },
		{ { CONF_MODE, "m" }, "755", 0, 0755, NULL },
		{ { CONF_MODE, "m" }, "0000000644", 0, 0644, NULL },
		{ { CONF_MODE, "m" }, "10000", -1, 0, "invalid m \"10000\": "
		    "an octal mode such as 0660" },
		{ { CONF_PATH, "p" }, "/", 0, 0, NULL },
		{ { CONF_PATH, "p" }, "~/x", -1, 0, "invalid p \"~/x\": not "
		    "an absolute path" },
	};
	const struct value_case	*vc;
	char			 err[256];
	long long		 num;
	size_t			 i;
	int			 rv;

	for (i = 0; i < nitems(cases); i++) {
		vc = &cases[i];
		err[0] = '\0';
		num = -42;
		rv = conf_parse_value(&vc->arg, vc->text, &num, err,
		    sizeof(err));
		cr_expect_eq(rv, vc->rv, "type %d \"%s\": returned %d (%s)",
		    vc->arg.type, vc->text, rv, err);
		if (rv == 0 && vc->rv == 0)
			cr_expect_eq(num, vc->num, "type %d \"%s\": %lld, not "
			    "%lld", vc->arg.type, vc->text, num, vc->num);
		if (rv == -1 && vc->err != NULL)
			cr_expect_str_eq(err, vc->err, "type %d \"%s\": \"%s\"",
			    vc->arg.type, vc->text, err);
	}
}
