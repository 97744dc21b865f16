/*
 * cgi.c: CGI/1.1 (RFC 3875) programs, run by the worker that has the
 * request.
 *
 * A route "route /cgi-bin/ cgi /var/www/cgi-bin" maps the path below
 * its prefix onto the directory: the first path segment that names a
 * regular file is the program (SCRIPT_NAME), what follows is PATH_INFO.
 * Names starting with "." are never run.  The program gets the
 * meta-variables of RFC 3875 section 4.1 (and the usual extras:
 * REQUEST_URI, SCRIPT_FILENAME, DOCUMENT_ROOT, REMOTE_PORT, HTTPS), the
 * request body on its standard input, a clean signal state (default
 * dispositions, nothing blocked: a worker ignores SIGPIPE, and ignored
 * signals survive execve), its own process group, and the program's
 * directory as its working directory.  Its standard error is logged line
 * by line.  Past the route's timeout the whole process group is killed
 * and the client gets 504.
 *
 * The response (section 6): header lines up to a blank line, LF or CRLF.
 * "Status" sets the status; "Location" with a local path and nothing
 * else is a local redirect, served here as a GET of that path (at most
 * APPD_MAXREDIRECTS times); with an absolute URI it is a client redirect
 * (302 unless Status says otherwise).  A response with neither
 * Content-Type nor Location is refused (502), unless it has no body.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <netinet/in.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "appd.h"
#include "log.h"

extern char	**environ;

struct cgi_env {
	char	**v;
	int	  n;
	struct arena *a;
};

static int
env_add(struct cgi_env *e, const char *name, const char *value)
{
	size_t	nl = strlen(name), vl = strlen(value);
	char	*s;

	if (e->n >= APPD_CGI_MAXENV - 1)
		return (-1);
	if ((s = arena_alloc(e->a, nl + vl + 2)) == NULL)
		return (-1);
	memcpy(s, name, nl);
	s[nl] = '=';
	memcpy(s + nl + 1, value, vl + 1);
	e->v[e->n++] = s;
	e->v[e->n] = NULL;
	return (0);
}

/* HTTP_* for a field: joined with an earlier one of the same name. */
static int
env_add_field(struct cgi_env *e, const char *name, size_t nlen,
    const char *value, size_t vlen)
{
	char	var[256], *s;
	size_t	i, l;
	int	k;

	if (nlen + 6 >= sizeof(var))
		return (0);
	memcpy(var, "HTTP_", 5);
	for (i = 0; i < nlen; i++)
		var[5 + i] = name[i] == '-' ? '_' :
		    toupper((unsigned char)name[i]);
	var[5 + nlen] = '=';
	l = 6 + nlen;
	for (k = 0; k < e->n; k++)
		if (strncmp(e->v[k], var, l) == 0) {
			size_t	old = strlen(e->v[k]);
			int	cookie = l == 12 &&
				    memcmp(var, "HTTP_COOKIE=", 12) == 0;

			if ((s = arena_alloc(e->a, old + vlen + 3)) == NULL)
				return (-1);
			memcpy(s, e->v[k], old);
			memcpy(s + old, cookie ? "; " : ", ", 2);
			memcpy(s + old + 2, value, vlen);
			s[old + 2 + vlen] = '\0';
			e->v[k] = s;
			return (0);
		}
	if (e->n >= APPD_CGI_MAXENV - 1)
		return (-1);
	if ((s = arena_alloc(e->a, l + vlen + 1)) == NULL)
		return (-1);
	memcpy(s, var, l);
	memcpy(s + l, value, vlen);
	s[l + vlen] = '\0';
	e->v[e->n++] = s;
	e->v[e->n] = NULL;
	return (0);
}

static void
env_build(struct app_req *req, struct cgi_env *e, const char *script,
    const char *scriptname, const char *pathinfo)
{
	const struct http_msg	*m = req->msg;
	const struct appd_route	*rt = req->route;
	union {
		struct sockaddr		sa;
		struct sockaddr_in	sin;
		struct sockaddr_in6	sin6;
		struct sockaddr_storage	ss;
	}			 local;
	socklen_t		 sl = sizeof(local);
	struct slice		 host;
	char			 buf[PATH_MAX + 64], port[16];
	const char		*v;
	int			 i;
	static const char	*skip[] = { "content-length", "content-type",
				    "authorization", "proxy-authorization",
				    "proxy", "connection", "keep-alive", "te",
				    "transfer-encoding", "upgrade" };

	e->v[0] = NULL;
	env_add(e, "GATEWAY_INTERFACE", "CGI/1.1");
	env_add(e, "SERVER_SOFTWARE", "appd");
	snprintf(buf, sizeof(buf), "HTTP/1.%d", m->minor);
	env_add(e, "SERVER_PROTOCOL", buf);
	env_add(e, "REQUEST_METHOD", req->method);
	env_add(e, "SCRIPT_NAME", scriptname);
	env_add(e, "SCRIPT_FILENAME", script);
	env_add(e, "DOCUMENT_ROOT", rt->root);
	if (*pathinfo != '\0') {
		env_add(e, "PATH_INFO", pathinfo);
		snprintf(buf, sizeof(buf), "%s%s", rt->root, pathinfo);
		env_add(e, "PATH_TRANSLATED", buf);
	}
	env_add(e, "QUERY_STRING", req->query);
	v = arena_strndup(req->arena, req->head + m->target_off,
	    m->target_len);
	env_add(e, "REQUEST_URI", v ? v : "");
	v = app_client_addr(req);
	env_add(e, "REMOTE_ADDR", v);
	env_add(e, "REMOTE_HOST", v);
	if (req->peer->sa_family == AF_INET ||
	    req->peer->sa_family == AF_INET6) {
		snprintf(port, sizeof(port), "%u",
		    ntohs(req->peer->sa_family == AF_INET ?
		    ((const struct sockaddr_in *)req->peer)->sin_port :
		    ((const struct sockaddr_in6 *)req->peer)->sin6_port));
		env_add(e, "REMOTE_PORT", port);
	}
	if (req->bodylen > 0 || m->framing != HTTP_BODY_NONE) {
		snprintf(buf, sizeof(buf), "%zu", req->bodylen);
		env_add(e, "CONTENT_LENGTH", buf);
	}
	if ((v = app_header(req, "content-type")) != NULL)
		env_add(e, "CONTENT_TYPE", v);
	/* SERVER_NAME and SERVER_PORT: from Host, else the socket */
	port[0] = '\0';
	buf[0] = '\0';
	if (m->host >= 0) {
		int	p = 0;

		if (http_authority_parse(req->head + m->hdrs[m->host].value,
		    m->hdrs[m->host].valuelen, &host, &p) == 0 &&
		    host.len < sizeof(buf)) {
			memcpy(buf, host.p, host.len);
			buf[host.len] = '\0';
			if (p > 0)
				snprintf(port, sizeof(port), "%d", p);
		}
	}
	if (getsockname(req->fd, &local.sa, &sl) == 0 &&
	    (local.sa.sa_family == AF_INET ||
	    local.sa.sa_family == AF_INET6)) {
		char	ip[64];

		if (buf[0] == '\0')
			strlcpy(buf, net_sockaddr_ip(&local.sa, ip,
			    sizeof(ip)), sizeof(buf));
		if (port[0] == '\0')
			snprintf(port, sizeof(port), "%u",
			    ntohs(local.sa.sa_family == AF_INET ?
			    local.sin.sin_port : local.sin6.sin6_port));
	}
	env_add(e, "SERVER_NAME", buf[0] ? buf : "localhost");
	env_add(e, "SERVER_PORT", port[0] ? port : "80");
	if (req_peer_trusted(req) &&
	    (v = app_header(req, "x-forwarded-proto")) != NULL &&
	    strcasecmp(v, "https") == 0)
		env_add(e, "HTTPS", "on");
	env_add(e, "PATH", "/usr/local/bin:/usr/bin:/bin");
	for (i = 0; i < m->nhdrs; i++) {
		const struct http_hdr	*hd = &m->hdrs[i];
		size_t			 k;

		for (k = 0; k < nitems(skip); k++)
			if (http_hdr_is(req->head, hd, skip[k]))
				break;
		if (k < nitems(skip))
			continue;
		env_add_field(e, req->head + hd->name, hd->namelen,
		    req->head + hd->value, hd->valuelen);
	}
}

/*
 * Find the program for <sub> (the path below the route) in the route's
 * directory.  Returns 0 with <script> (file name), <scriptlen> (how much
 * of <sub> names it), or an HTTP status.
 */
static int
cgi_find(const struct appd_route *rt, const char *sub, char *script,
    size_t scriptlen, size_t *consumed)
{
	struct stat	 st;
	const char	*p = sub, *seg, *end;
	size_t		 len;

	if (strlcpy(script, rt->dir, scriptlen) >= scriptlen)
		return (414);
	len = strlen(script);
	while (*p == '/') {
		seg = p + 1;
		if ((end = strchr(seg, '/')) == NULL)
			end = seg + strlen(seg);
		if (end == seg)
			return (404);		/* a directory */
		if (*seg == '.')
			return (404);		/* dot files, "..": never */
		if (len + 1 + (end - seg) >= scriptlen)
			return (414);
		script[len++] = '/';
		memcpy(script + len, seg, end - seg);
		len += end - seg;
		script[len] = '\0';
		if (stat(script, &st) == -1)
			return (errno == ENOENT || errno == ENOTDIR ? 404 :
			    403);
		if (S_ISREG(st.st_mode)) {
			if (access(script, X_OK) == -1)
				return (403);
			*consumed = end - sub;
			return (0);
		}
		if (!S_ISDIR(st.st_mode))
			return (403);
		p = end;
	}
	return (404);
}

/* Log the complete lines of <b> (the program's stderr); keep the rest. */
static void
log_lines(const char *script, struct buf *b, int flush)
{
	const char	*p, *nl;
	size_t		 n;

	while (buf_used(b) > 0) {
		p = buf_head(b);
		nl = memchr(p, '\n', buf_used(b));
		if (nl == NULL && !flush && buf_used(b) < APPD_CGI_LOGLINE)
			break;
		n = nl ? (size_t)(nl - p) : buf_used(b);
		if (n > APPD_CGI_LOGLINE)
			n = APPD_CGI_LOGLINE;
		log_warnx("cgi %s: %.*s", script, (int)(n > 0 &&
		    p[n - 1] == '\r' ? n - 1 : n), p);
		buf_consume(b, nl && (size_t)(nl - p) == n ? n + 1 : n);
	}
}

/*
 * Put <sig> back to its default action, in a child about to exec.  The C
 * library refuses sigaction() on the two signals it keeps for itself (32
 * and 33), yet an ignored one survives execve and may have been ignored
 * by whoever started appd; the kernel call takes them.  An all-zero
 * kernel sigaction means SIG_DFL, no flags, empty mask on every Linux
 * architecture, whatever the order of its fields.
 */
static void
sig_default(int sig)
{
	unsigned long	 ksa[8];

	if (signal(sig, SIG_DFL) != SIG_ERR)
		return;
	memset(ksa, 0, sizeof(ksa));
	(void)syscall(SYS_rt_sigaction, sig, ksa, NULL, (NSIG - 1) / 8);
}

/*
 * Run <script>: the body in, its output into <out>.  Returns 0, 504 on
 * timeout, 502 when it failed (output too large, could not start), 499
 * when the client closed its connection meanwhile (webd lets go of a
 * request whose client left): the program is killed, as at a timeout.
 */
static int
cgi_exec(struct app_req *req, const char *script, char **env,
    uint64_t timeout, struct buf *out)
{
	struct pollfd	 pfd[4];
	struct buf	 err;
	char		 dir[PATH_MAX], *slash, rb[16384];
	int		 in[2] = { -1, -1 }, op[2] = { -1, -1 },
			 ep[2] = { -1, -1 };
	int		 status, rv = 0, n, sig, i, timedout = 0, gone = 0;
	size_t		 off = 0;
	uint64_t	 deadline = ev_monotonic_ms() + timeout, left;
	pid_t		 pid;
	ssize_t		 r;
	char		*argv[2];
	sigset_t	 none;

	if (pipe2(in, O_CLOEXEC) == -1 || pipe2(op, O_CLOEXEC) == -1 ||
	    pipe2(ep, O_CLOEXEC) == -1) {
		log_warn("cgi %s: pipe", script);
		rv = 502;
		goto done;
	}
	strlcpy(dir, script, sizeof(dir));
	if ((slash = strrchr(dir, '/')) != NULL)
		*slash = '\0';
	argv[0] = (char *)script;
	argv[1] = NULL;
	switch ((pid = fork())) {
	case -1:
		log_warn("cgi %s: fork", script);
		rv = 502;
		goto done;
	case 0:
		setpgid(0, 0);
		if (dup2(in[0], 0) == -1 || dup2(op[1], 1) == -1 ||
		    dup2(ep[1], 2) == -1)
			_exit(127);
		closefrom(3);
		/* workers ignore SIGPIPE; execve keeps what is ignored */
		for (sig = 1; sig < NSIG; sig++)
			if (sig != SIGKILL && sig != SIGSTOP)
				sig_default(sig);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		if (chdir(dir) == -1) {
			dprintf(2, "chdir %s: %s\n", dir, strerror(errno));
			_exit(127);
		}
		execve(script, argv, env);
		dprintf(2, "cannot run: %s\n", strerror(errno));
		_exit(127);
	}
	setpgid(pid, pid);
	worker_cgi_pid(pid);
	close(in[0]);
	close(op[1]);
	close(ep[1]);
	in[0] = op[1] = ep[1] = -1;
	fcntl(in[1], F_SETFL, O_NONBLOCK);
	fcntl(op[0], F_SETFL, O_NONBLOCK);
	fcntl(ep[0], F_SETFL, O_NONBLOCK);
	if (req->bodylen == 0) {
		close(in[1]);
		in[1] = -1;
	}
	buf_init(&err, APPD_CGI_LOGLINE * 2);
	while (op[0] != -1 || ep[0] != -1) {
		pfd[0].fd = in[1];
		pfd[0].events = POLLOUT;
		pfd[1].fd = op[0];
		pfd[1].events = POLLIN;
		pfd[2].fd = ep[0];
		pfd[2].events = POLLIN;
		/* the client's end: its FIN (never its next request) */
		pfd[3].fd = req->fd;
		pfd[3].events = POLLRDHUP;
		for (i = 0; i < 4; i++)
			pfd[i].revents = 0;
		left = deadline > ev_monotonic_ms() ? deadline -
		    ev_monotonic_ms() : 0;
		if (left == 0) {
			timedout = 1;
			break;
		}
		n = poll(pfd, 4, (int)left);
		if (n == -1 && errno != EINTR)
			break;
		if (n <= 0)
			continue;
		if (pfd[3].revents & (POLLRDHUP | POLLHUP | POLLERR)) {
			gone = 1;
			break;
		}
		if (pfd[0].revents) {
			r = write(in[1], req->body + off, req->bodylen - off);
			if (r > 0)
				off += r;
			if ((r == -1 && errno != EAGAIN && errno != EINTR) ||
			    off == req->bodylen) {
				close(in[1]);
				in[1] = -1;
			}
		}
		if (pfd[1].revents) {
			r = read(op[0], rb, sizeof(rb));
			if (r > 0 && buf_append(out, rb, r) == -1) {
				log_warnx("cgi %s: more than %d bytes of "
				    "output", script, APPD_CGI_MAXOUT);
				rv = 502;
				break;
			}
			if (r == 0 || (r == -1 && errno != EAGAIN &&
			    errno != EINTR)) {
				close(op[0]);
				op[0] = -1;
			}
		}
		if (pfd[2].revents) {
			r = read(ep[0], rb, sizeof(rb));
			if (r > 0) {
				if (buf_room(&err) < (size_t)r)
					log_lines(script, &err, 1);
				buf_append(&err, rb, r);
				log_lines(script, &err, 0);
			}
			if (r == 0 || (r == -1 && errno != EAGAIN &&
			    errno != EINTR)) {
				close(ep[0]);
				ep[0] = -1;
			}
		}
	}
	log_lines(script, &err, 1);
	buf_free(&err);
	/* the program has closed its output: let it exit, within the time */
	if (!timedout && !gone && rv == 0) {
		for (i = 0;; i++) {
			if (waitpid(pid, &status, WNOHANG) == pid)
				goto reaped;
			if (ev_monotonic_ms() >= deadline) {
				timedout = 1;
				break;
			}
			usleep(i < 10 ? 200 : 2000);
		}
	}
	kill(-pid, SIGKILL);
	kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) == -1 && errno == EINTR)
		;
	if (timedout) {
		log_warnx("cgi %s: killed after %llu ms (timeout)", script,
		    (unsigned long long)timeout);
		stats_inc(aconf->m_cgi_timeouts);
		rv = 504;
	} else if (gone) {
		log_info("cgi %s: killed, the client closed its connection",
		    script);
		rv = 499;
	}
	goto out;
 reaped:
	if (WIFSIGNALED(status))
		log_warnx("cgi %s: killed by signal %d", script,
		    WTERMSIG(status));
	else if (WEXITSTATUS(status) != 0)
		log_info("cgi %s: exited with status %d", script,
		    WEXITSTATUS(status));
	/* what it left behind in its group */
	kill(-pid, SIGKILL);
 out:
	worker_cgi_pid(0);
 done:
	for (i = 0; i < 2; i++) {
		if (in[i] != -1)
			close(in[i]);
		if (op[i] != -1)
			close(op[i]);
		if (ep[i] != -1)
			close(ep[i]);
	}
	return (rv);
}

/*
 * Turn the program's output into the response; *<redirect> gets a local
 * redirect's target.  Returns 0, or 502 for a malformed response.
 */
static int
cgi_response(const char *script, struct buf *o, struct app_resp *r,
    char **redirect, struct arena *a)
{
	const char	*p = buf_head(o), *end = p + buf_used(o), *nl;
	const char	*location = NULL, *colon, *v, *ve;
	char		 name[128], *val;
	int		 status = 0, has_type = 0, nfields = 0;
	size_t		 nlen;

	*redirect = NULL;
	for (;;) {
		if (p >= end || (nl = memchr(p, '\n', end - p)) == NULL ||
		    nl - p > APPD_CGI_MAXHEAD) {
			log_warnx("cgi %s: no end of header in its output",
			    script);
			return (502);
		}
		ve = nl;
		if (ve > p && ve[-1] == '\r')
			ve--;
		if (ve == p) {
			p = nl + 1;
			break;
		}
		if ((colon = memchr(p, ':', ve - p)) == NULL ||
		    (nlen = colon - p) == 0 || nlen >= sizeof(name)) {
			log_warnx("cgi %s: malformed header line", script);
			return (502);
		}
		memcpy(name, p, nlen);
		name[nlen] = '\0';
		for (v = colon + 1; v < ve && (*v == ' ' || *v == '\t'); v++)
			;
		while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
			ve--;
		if ((val = arena_strndup(a, v, ve - v)) == NULL)
			return (502);
		p = nl + 1;
		nfields++;
		if (strcasecmp(name, "Status") == 0) {
			const char	*errstr;
			char		 code[4];

			if (strlen(val) < 3) {
				log_warnx("cgi %s: bad Status", script);
				return (502);
			}
			memcpy(code, val, 3);
			code[3] = '\0';
			status = strtonum(code, 100, 999, &errstr);
			if (errstr != NULL || (val[3] != '\0' &&
			    val[3] != ' ')) {
				log_warnx("cgi %s: bad Status \"%s\"", script,
				    val);
				return (502);
			}
			continue;
		}
		if (strcasecmp(name, "Location") == 0)
			location = val;
		else if (strcasecmp(name, "Content-Type") == 0)
			has_type = 1;
		else if (strcasecmp(name, "Content-Length") == 0 ||
		    strcasecmp(name, "Transfer-Encoding") == 0)
			continue;	/* ours to set */
		if (!resp_header_ok(name, val)) {
			log_warnx("cgi %s: dropped header \"%s\"", script,
			    name);
			continue;
		}
		if (resp_header_raw(r, name, val) == -1)
			return (502);
	}
	if (location != NULL && location[0] == '/' && status == 0 &&
	    nfields == 1 && p == end) {
		*redirect = (char *)location;
		return (0);
	}
	if (location != NULL && location[0] != '/' && status == 0)
		status = 302;
	if (!has_type && location == NULL && p < end) {
		log_warnx("cgi %s: a body without Content-Type", script);
		return (502);
	}
	r->status = status ? status : 200;
	if (app_write(r, p, end - p) == -1)
		return (502);
	return (0);
}

int
cgi_run(struct app_req *req, struct app_resp *r)
{
	const struct appd_route	*rt = req->route;
	struct cgi_env		 env;
	struct buf		 o;
	char			 script[PATH_MAX], *redirect;
	const char		*scriptname, *pathinfo;
	size_t			 consumed = 0, pl = strlen(req->path);
	size_t			 sl = strlen(req->subpath);
	int			 rv;

	rv = cgi_find(rt, req->subpath, script, sizeof(script), &consumed);
	if (rv != 0) {
		app_error(r, rv, "%s", rv == 404 ? "not found" :
		    http_reason(rv));
		return (0);
	}
	pathinfo = req->subpath + consumed;
	/* the path is the route's prefix then the subpath */
	scriptname = arena_strndup(req->arena, req->path, pl - (sl -
	    consumed));
	env.a = req->arena;
	env.n = 0;
	if ((env.v = arena_alloc(req->arena, APPD_CGI_MAXENV *
	    sizeof(char *))) == NULL || scriptname == NULL)
		return (-1);
	env_build(req, &env, script, scriptname, pathinfo);
	buf_init(&o, APPD_CGI_MAXOUT);
	rv = cgi_exec(req, script, env.v, rt->timeout, &o);
	if (rv != 0) {
		buf_free(&o);
		app_error(r, rv, "%s", rv == 504 ? "the program took too "
		    "long" : rv == 499 ? "the client left" :
		    "the program failed");
		return (0);
	}
	rv = cgi_response(script, &o, r, &redirect, req->arena);
	buf_free(&o);
	if (rv != 0) {
		resp_reset(r);
		app_error(r, rv, "the program's response was malformed");
		return (0);
	}
	if (redirect == NULL)
		return (0);
	/* a local redirect: the server answers for the new path */
	if (++req->redirects > APPD_MAXREDIRECTS) {
		resp_reset(r);
		app_error(r, 500, "too many local redirects");
		return (0);
	}
	{
		struct http_target	*t;
		const struct appd_route	*nrt;
		const char		*why = NULL;

		resp_reset(r);
		if ((t = arena_alloc(req->arena, sizeof(*t))) == NULL ||
		    http_target_parse(redirect, strlen(redirect), t,
		    &why) == -1) {
			app_error(r, 500, "bad local redirect");
			return (0);
		}
		req->path = t->path;
		req->query = arena_strndup(req->arena, t->query ? t->query :
		    "", t->querylen);
		req->method = "GET";
		req->body = "";
		req->bodylen = 0;
		if ((nrt = route_find(req->ac, req->path, &req->subpath)) ==
		    NULL) {
			app_error(r, 404, "no route for %s", req->path);
			return (0);
		}
		req->route = nrt;
		if (nrt->kind == ROUTE_CGI)
			return (cgi_run(req, r));
		req->app = nrt->app;
		return (app_run(req, r));
	}
}
