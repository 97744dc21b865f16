/*
 * app.c: loading application modules, their settings, and running their
 * handlers (app.h).
 *
 * The master never maps a module: when it reads the conf (at start, at
 * each reload, and for -n) it checks each one in a short-lived child
 * that loads it and looks at its app_module, so that a module that does
 * not load refuses the conf ("reload failed, keeping current
 * configuration") without application code ever running in the master.
 * Each worker loads the modules afresh before it drops privileges, and
 * calls their init() after: a reload's new workers run the new code.
 */
#include <sys/types.h>
#include <sys/wait.h>

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "appd.h"
#include "log.h"

#define APP_CHECK_TIMEOUT	10000	/* ms for a module to load */

/* Load <path> here; NULL with <err> set when it is not an appd module. */
static const struct app_module *
module_open(const char *path, void **dlp, char *err, size_t errlen)
{
	const struct app_module	*m;
	void			*dl;
	const char		*e;

	*dlp = NULL;
	if ((dl = dlopen(path, RTLD_NOW | RTLD_LOCAL)) == NULL) {
		e = dlerror();
		snprintf(err, errlen, "%s", e ? e : "cannot load");
		return (NULL);
	}
	if ((m = dlsym(dl, "app_module")) == NULL) {
		snprintf(err, errlen, "no app_module symbol: not an appd "
		    "module");
		dlclose(dl);
		return (NULL);
	}
	if (m->abi != 0 && m->abi != APP_ABI) {
		snprintf(err, errlen, "built for application ABI %d, appd "
		    "has %d", m->abi, APP_ABI);
		dlclose(dl);
		return (NULL);
	}
	if (m->name == NULL || m->handle == NULL) {
		snprintf(err, errlen, "app_module has no name or no handler");
		dlclose(dl);
		return (NULL);
	}
	*dlp = dl;
	return (m);
}

/*
 * In the master: does <path> load as a module?  Checked in a child, so
 * that its code never runs here.  Returns 0, or -1 with <err> set.
 */
int
app_load_check(const char *path, char *err, size_t errlen)
{
	struct pollfd	 pfd;
	int		 fds[2], status, n;
	pid_t		 pid;
	size_t		 got = 0;
	ssize_t		 r;
	void		*dl;

	if (pipe2(fds, O_CLOEXEC) == -1) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		return (-1);
	}
	switch ((pid = fork())) {
	case -1:
		snprintf(err, errlen, "fork: %s", strerror(errno));
		close(fds[0]);
		close(fds[1]);
		return (-1);
	case 0:
		close(fds[0]);
		if (module_open(path, &dl, err, errlen) == NULL) {
			(void)write(fds[1], err, strlen(err));
			_exit(1);
		}
		_exit(0);
	}
	close(fds[1]);
	err[0] = '\0';
	pfd.fd = fds[0];
	pfd.events = POLLIN;
	while (got < errlen - 1) {
		if ((n = poll(&pfd, 1, APP_CHECK_TIMEOUT)) <= 0) {
			if (n == -1 && errno == EINTR)
				continue;
			kill(pid, SIGKILL);
			snprintf(err, errlen, "did not load within %d ms",
			    APP_CHECK_TIMEOUT);
			break;
		}
		if ((r = read(fds[0], err + got, errlen - 1 - got)) <= 0) {
			if (r == -1 && errno == EINTR)
				continue;
			break;
		}
		got += r;
	}
	err[got] = '\0';
	close(fds[0]);
	while (waitpid(pid, &status, 0) == -1 && errno == EINTR)
		;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && err[0] == '\0')
		return (0);
	if (err[0] == '\0') {
		if (WIFSIGNALED(status))
			snprintf(err, errlen, "crashed while loading (signal "
			    "%d)", WTERMSIG(status));
		else
			snprintf(err, errlen, "failed to load");
	}
	return (-1);
}

/* In a worker, before privileges are dropped. */
int
app_load(struct app_conf *a, char *err, size_t errlen)
{
	if ((a->mod = module_open(a->module, &a->dl, err, errlen)) == NULL)
		return (-1);
	return (0);
}

/* In a worker, after privileges are dropped. */
int
app_init_all(struct appd_conf *ac)
{
	struct app_conf	*a;
	int		 i;

	for (i = 0; i < ac->napps; i++) {
		a = ac->apps[i];
		if (a->mod == NULL)
			continue;
		if (a->mod->init != NULL && a->mod->init(a) != 0) {
			log_warnx("app %s (%s): init failed", a->name,
			    a->mod->name);
			return (-1);
		}
		a->inited = 1;
	}
	return (0);
}

void
app_fini_all(struct appd_conf *ac)
{
	struct app_conf	*a;
	int		 i;

	for (i = 0; i < ac->napps; i++) {
		a = ac->apps[i];
		if (a->inited && a->mod->fini != NULL)
			a->mod->fini(a);
		a->inited = 0;
	}
	db_close_all(ac);
}

/*
 * Run the route's module on <req>.  Returns 0 with <resp> built (an
 * error status included).
 */
int
app_run(struct app_req *req, struct app_resp *resp)
{
	struct app_conf	*a = req->app;
	int		 rc;

	rc = a->mod->handle(req, resp);
	if (rc == 0 && (resp->depth != 0 || resp->err)) {
		log_warnx("app %s: %s %s: the response was not built "
		    "correctly (%s)", a->name, req->method, req->path,
		    resp->depth ? "unfinished JSON" : "a builder failed");
		rc = -1;
	}
	if (rc != 0) {
		int	status = rc >= 400 && rc <= 599 ? rc : 500;

		resp_reset(resp);
		if (app_error(resp, status, "%s", http_reason(status)) == -1)
			return (-1);
	}
	/* the session's LSN, for the next reads on any app server */
	if (req->write_lsn > 0 && a->lsn_cookie != NULL) {
		char	v[32];

		snprintf(v, sizeof(v), "%llu",
		    (unsigned long long)app_req_lsn(req));
		app_cookie_set(resp, a->lsn_cookie, v,
		    "Path=/; HttpOnly; SameSite=Lax");
	}
	return (0);
}

/* Settings */

const char *
app_conf_name(const struct app_conf *a)
{
	return (a->name);
}

const char *
app_conf_get(const struct app_conf *a, const char *name)
{
	int	i;

	for (i = 0; i < a->nsettings; i++)
		if (strcmp(a->settings[i].name, name) == 0)
			return (a->settings[i].value);
	return (NULL);
}

long long
app_conf_int(const struct app_conf *a, const char *name, long long def)
{
	const char	*v, *errstr;
	long long	 n;

	if ((v = app_conf_get(a, name)) == NULL)
		return (def);
	n = strtonum(v, LLONG_MIN, LLONG_MAX, &errstr);
	return (errstr == NULL ? n : def);
}

const char *
app_instance(void)
{
	return (aconf != NULL ? aconf->name : "appd");
}

void
app_log(int prio, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	vlog(prio, fmt, ap);
	va_end(ap);
}
