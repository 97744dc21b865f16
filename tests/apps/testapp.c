/*
 * testapp: an appd module for the integration tests.  Its routes, below
 * whatever prefix the conf gives it:
 *
 *	/hello		"hello, world"
 *	/echo		the request as JSON (method, paths, query, some
 *			fields, a cookie, the body, form and JSON fields,
 *			the client address)
 *	/json		{"s": <the body>} through the JSON writer
 *	/sleep?ms=N	answers after N ms
 *	/spin?ms=N	busy for N ms (no sleep: signals find it running)
 *	/watch?ms=N	works N ms in steps of 10 ms, and stops with 499
 *			(logged: "testapp: client gone after N ms") when
 *			app_client_gone() says its client left
 *	/crash		abort(): the worker dies in the middle
 *	/deaf?ms=N	sleeps N ms with SIGTERM blocked (only SIGKILL stops it)
 *	/alloc?mb=N	allocates and touches N MiB, kept for good
 *	/pid		the worker's pid
 *	/status?code=N	answers status N, built by appd when N is returned
 *	/headers	sets a field, and tries forbidden ones
 *	/stream		a response of ?kb=N KiB
 *	/init		what init saw of the settings
 *	/count?n=N	N counted by the database (a recursive query: about
 *			80 ms for 400,000 on the project's VM, 30 for 90,000),
 *			or the database's error
 */
#include <sys/types.h>

#include <signal.h>
#include <syslog.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "app.h"

static char	**kept;
static size_t	  nkept;
static char	  greeting[128] = "hello, world";
static long long  inits;
static const struct app_conf *conf;

static int
t_init(const struct app_conf *c)
{
	const char	*g = app_conf_get(c, "greeting");

	conf = c;
	if (g != NULL)
		snprintf(greeting, sizeof(greeting), "%s", g);
	inits++;
	if (app_conf_int(c, "fail-init", 0))
		return (-1);
	return (0);
}

static long long
qnum(struct app_req *req, const char *name, long long def)
{
	const char	*v = app_query(req, name);

	return (v != NULL ? strtoll(v, NULL, 10) : def);
}

static void
jstr(struct app_resp *r, const char *k, const char *v)
{
	app_json_key(r, k);
	app_json_string(r, v);
}

static int
t_handle(struct app_req *req, struct app_resp *r)
{
	const char	*p = app_subpath(req), *b;
	size_t		 len;

	if (strcmp(p, "/hello") == 0) {
		app_printf(r, "%s\n", greeting);
		return (0);
	}
	if (strcmp(p, "/echo") == 0) {
		app_json_object(r);
		jstr(r, "method", app_method(req));
		jstr(r, "path", app_path(req));
		jstr(r, "subpath", app_subpath(req));
		jstr(r, "query", app_query_string(req));
		jstr(r, "a", app_query(req, "a"));
		jstr(r, "x_test", app_header(req, "X-Test"));
		jstr(r, "content_type", app_header(req, "content-type"));
		jstr(r, "cookie", app_cookie(req, "c"));
		b = app_body(req, &len);
		app_json_key(r, "body");
		app_json_stringn(r, b, len);
		b = app_form(req, "f", &len);
		app_json_key(r, "form");
		app_json_stringn(r, b, len);
		app_json_key(r, "json_body");
		app_json_bool(r, app_json_body(req));
		b = app_json_field(req, "j", &len);
		app_json_key(r, "json");
		app_json_stringn(r, b, len);
		jstr(r, "client", app_client_addr(req));
		jstr(r, "instance", app_instance());
		app_json_end(r);
		return (0);
	}
	if (strcmp(p, "/json") == 0) {
		b = app_body(req, &len);
		app_json_object(r);
		app_json_key(r, "s");
		app_json_stringn(r, b, len);
		app_json_key(r, "n");
		app_json_int(r, -42);
		app_json_key(r, "x");
		app_json_real(r, 0.5);
		app_json_key(r, "t");
		app_json_array(r);
		app_json_bool(r, 1);
		app_json_null(r);
		app_json_end(r);
		app_json_end(r);
		return (0);
	}
	if (strcmp(p, "/sleep") == 0) {
		long long	ms = qnum(req, "ms", 100);
		struct timespec	ts = { ms / 1000, (ms % 1000) * 1000000 };

		while (nanosleep(&ts, &ts) == -1)
			;
		app_printf(r, "slept %lld\n", ms);
		return (0);
	}
	if (strcmp(p, "/spin") == 0) {
		long long	ms = qnum(req, "ms", 100);
		struct timespec	t0, t1;

		clock_gettime(CLOCK_MONOTONIC, &t0);
		do
			clock_gettime(CLOCK_MONOTONIC, &t1);
		while ((t1.tv_sec - t0.tv_sec) * 1000 +
		    (t1.tv_nsec - t0.tv_nsec) / 1000000 < ms);
		app_printf(r, "spun %lld\n", ms);
		return (0);
	}
	if (strcmp(p, "/watch") == 0) {
		long long	ms = qnum(req, "ms", 100), done;
		struct timespec	ts = { 0, 10000000 };

		for (done = 0; done < ms; done += 10) {
			if (app_client_gone(req)) {
				app_log(LOG_INFO, "testapp: client gone after "
				    "%lld ms", done);
				return (499);
			}
			nanosleep(&ts, NULL);
		}
		app_printf(r, "watched %lld\n", ms);
		return (0);
	}
	if (strcmp(p, "/crash") == 0)
		abort();
	if (strcmp(p, "/deaf") == 0) {
		long long	ms = qnum(req, "ms", 100);
		struct timespec	ts = { ms / 1000, (ms % 1000) * 1000000 };
		sigset_t	set, old;

		sigemptyset(&set);
		sigaddset(&set, SIGTERM);
		sigprocmask(SIG_BLOCK, &set, &old);
		while (nanosleep(&ts, &ts) == -1)
			;
		sigprocmask(SIG_SETMASK, &old, NULL);
		app_printf(r, "slept %lld\n", ms);
		return (0);
	}
	if (strcmp(p, "/alloc") == 0) {
		long long	 mb = qnum(req, "mb", 1);
		char		*m, **k;

		if (mb < 0 || mb > 4096)
			return (400);
		if ((m = malloc(mb * 1024 * 1024)) == NULL)
			return (503);
		memset(m, 1, mb * 1024 * 1024);
		if ((k = realloc(kept, (nkept + 1) * sizeof(*k))) == NULL) {
			free(m);
			return (503);
		}
		kept = k;
		kept[nkept++] = m;
		app_printf(r, "allocated %lld MiB (pid %d)\n", mb,
		    (int)getpid());
		return (0);
	}
	if (strcmp(p, "/pid") == 0) {
		app_printf(r, "%d\n", (int)getpid());
		return (0);
	}
	if (strcmp(p, "/status") == 0)
		return ((int)qnum(req, "code", 200) == 200 ? 0 :
		    (int)qnum(req, "code", 200));
	if (strcmp(p, "/headers") == 0) {
		app_json_object(r);
		app_json_key(r, "good");
		app_json_int(r, app_header_add(r, "X-Good", "yes"));
		app_json_key(r, "crlf");
		app_json_int(r, app_header_add(r, "X-Bad", "a\r\nInjected: 1"));
		app_json_key(r, "length");
		app_json_int(r, app_header_add(r, "Content-Length", "1"));
		app_json_key(r, "name");
		app_json_int(r, app_header_add(r, "Bad Name", "x"));
		app_json_key(r, "cookie");
		app_json_int(r, app_cookie_set(r, "k", "v", "Path=/"));
		app_json_end(r);
		app_status(r, 203);
		return (0);
	}
	if (strcmp(p, "/stream") == 0) {
		long long	kb = qnum(req, "kb", 64), i;
		char		line[1024];

		memset(line, 'x', sizeof(line) - 1);
		line[sizeof(line) - 1] = '\n';
		for (i = 0; i < kb; i++)
			app_write(r, line, sizeof(line));
		return (0);
	}
	if (strcmp(p, "/count") == 0) {
		struct app_rows	*rows;

		if (app_db_query(app_conf_db(conf), req, APP_DB_READ, &rows,
		    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 "
		    "FROM c WHERE x < ?) SELECT count(*) FROM c", "I",
		    (int64_t)qnum(req, "n", 1)) == -1) {
			app_printf(r, "%s\n", app_db_error(app_conf_db(conf)));
			return (0);
		}
		app_printf(r, "%lld\n", app_rows_int(rows, 0, 0));
		return (0);
	}
	if (strcmp(p, "/init") == 0) {
		app_printf(r, "%s %lld %lld %s\n", greeting, inits,
		    app_conf_int(conf, "number", -1), app_conf_name(conf));
		return (0);
	}
	return (404);
}

const struct app_module app_module = {
	"testapp", t_init, t_handle, NULL, APP_ABI
};
