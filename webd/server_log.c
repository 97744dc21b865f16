/*
 * server_log.c: access log lines, to syslog or a file, and the request
 * metrics.
 *
 *	common	 client - - [time] "request" status bytes
 *	combined common "referer" "user-agent"
 *	forwarded combined "x-forwarded-for"
 *
 * Every field taken from the request is escaped: bytes outside printable
 * ASCII, the double quote and the backslash become \xHH.
 */
#include <sys/types.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "webd.h"


/*
 * <p> for a log line: control bytes, non-ASCII, quotes and backslashes
 * as \xHH, and spaces too with <word> (a field outside quotes).
 */
static size_t
esc(char *out, size_t size, const char *p, size_t len, int word)
{
	static const char	hex[] = "0123456789abcdef";
	size_t			o = 0, i;

	for (i = 0; i < len && o + 5 < size; i++) {
		unsigned char	c = p[i];

		if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\' ||
		    (word && c == ' ')) {
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		} else
			out[o++] = c;
	}
	out[o] = '\0';
	return (o);
}

/* A field's lines, escaped and joined with ", " (RFC 9110 5.3), or "-". */
static void
field(struct http_req *req, const char *name, char *out, size_t size)
{
	struct slice	v;
	size_t		o = 0;
	int		i = -1;

	while ((v = http_req_header_next(req, name, &i)).p != NULL &&
	    o + 3 < size) {
		if (o > 0) {
			memcpy(out + o, ", ", 2);
			o += 2;
		}
		o += esc(out + o, size - o, v.p, v.len, 0);
	}
	if (o == 0)
		snprintf(out, size, "-");
}

/* The time field, formatted once a second. */
static const char *
log_time(void)
{
	static char	tbuf[64];
	static time_t	tlast;
	time_t		now = time(NULL);

	if (now != tlast) {
		struct tm	tm;

		localtime_r(&now, &tm);
		strftime(tbuf, sizeof(tbuf), "%d/%b/%Y:%H:%M:%S %z", &tm);
		tlast = now;
	}
	return (tbuf);
}

/* Write one line of <n> bytes (room for a newline after it). */
static void
emit(struct webd_conf *wc, const char *site, char *line, int n)
{
	if (n >= WEBD_LOGLINE - 1)
		n = WEBD_LOGLINE - 2;
	if (wc->logfile != NULL && wc->logfd != -1) {
		line[n++] = '\n';
		(void)write(wc->logfd, line, n);
		return;
	}
	line[n] = '\0';
	if (wc->logfacility != -1)
		syslog(LOG_INFO | wc->logfacility, "%s %s", site, line);
	else
		syslog(LOG_INFO, "%s %s", site, line);
}

/*
 * The timed format's end: the seconds from the request head to the end
 * of the answer (nginx's $request_time) and from choosing an app server
 * to its response head (its $upstream_header_time), "-" without one.
 */
static int
timed(char *p, size_t len, uint64_t ms, int64_t up_ms)
{
	if (up_ms < 0)
		return (snprintf(p, len, " rt=%llu.%03llu urt=-",
		    (unsigned long long)ms / 1000,
		    (unsigned long long)ms % 1000));
	return (snprintf(p, len, " rt=%llu.%03llu urt=%lld.%03lld",
	    (unsigned long long)ms / 1000, (unsigned long long)ms % 1000,
	    (long long)up_ms / 1000, (long long)up_ms % 1000));
}

/* <up_ms>: ms to the app's response head, -1 when none came. */
void
access_log(struct http_req *req, struct webd_server *s, int status,
    uint64_t bytes, int64_t up_ms)
{
	struct webd_conf	*wc = ((struct webd_listener *)
				    req->conn->srv)->wc;
	char			 line[WEBD_LOGLINE], rl[2048], ref[512];
	char			 ua[512], xff[512], ip[INET6_ADDRSTRLEN];
	char			 user[256], name[64];
	struct slice		 m, t;
	int			 n, cls;

	if (s != NULL) {
		cls = status / 100;
		if (cls >= 1 && cls <= 5)
			stats_inc(s->m_req[cls]);
		stats_add(s->m_bytes, bytes);
		stats_observe(s->m_dur, (ev_monotonic_ms() - req->t_start) /
		    1000.0);
	}
	if (wc->logfmt == LOG_OFF)
		return;
	net_sockaddr_ip(server_client(req), ip, sizeof(ip));
	m = http_req_method(req);
	t = http_req_target(req);
	n = esc(rl, sizeof(rl), m.p, m.len, 0);
	rl[n++] = ' ';
	n += esc(rl + n, sizeof(rl) - n, t.p, t.len, 0);
	snprintf(rl + n, sizeof(rl) - n, " HTTP/1.%d", req->msg.minor);
	if (auth_user(req, name, sizeof(name)))
		esc(user, sizeof(user), name, strlen(name), 1);
	else
		strlcpy(user, "-", sizeof(user));
	n = snprintf(line, sizeof(line), "%s - %s [%s] \"%s\" %d %llu", ip,
	    user, log_time(), rl, status, (unsigned long long)bytes);
	if (wc->logfmt >= LOG_COMBINED) {
		field(req, "referer", ref, sizeof(ref));
		field(req, "user-agent", ua, sizeof(ua));
		n += snprintf(line + n, sizeof(line) - n, " \"%s\" \"%s\"",
		    ref, ua);
	}
	if (wc->logfmt >= LOG_FORWARDED) {
		field(req, "x-forwarded-for", xff, sizeof(xff));
		n += snprintf(line + n, sizeof(line) - n, " \"%s\"", xff);
	}
	if (wc->logfmt == LOG_TIMED)
		n += timed(line + n, sizeof(line) - n, ev_monotonic_ms() -
		    req->t_start, up_ms);
	emit(wc, s ? s->name : "-", line, n);
}

/*
 * A request the engine refused before webd saw it (malformed, too large,
 * 408): logged and counted under "-" for the site, which is not known,
 * with what came of its request line ("-" if nothing did), as nginx logs
 * its 400s.
 */
void
access_log_refused(struct http_conn *c, int status, const char *why)
{
	struct webd_conf	*wc = ((struct webd_listener *)c->srv)->wc;
	char			 line[WEBD_LOGLINE], ip[INET6_ADDRSTRLEN];
	char			 rl[2048];
	struct slice		 l = http_conn_first_line(c);
	size_t			 bytes = http_error_body_len(status);
	int			 n, cls = status / 100;

	if (cls >= 1 && cls <= 5)
		stats_inc(wc->m_refused[cls]);
	stats_add(wc->m_refused_bytes, bytes);
	if (wc->logfmt == LOG_OFF)
		return;
	net_sockaddr_ip(&c->peer.sa, ip, sizeof(ip));
	if (l.len > 0)
		esc(rl, sizeof(rl), l.p, l.len, 0);
	else
		strlcpy(rl, "-", sizeof(rl));
	n = snprintf(line, sizeof(line), "%s - - [%s] \"%s\" %d %zu", ip,
	    log_time(), rl, status, bytes);
	if (wc->logfmt >= LOG_COMBINED)
		n += snprintf(line + n, sizeof(line) - n, " \"-\" \"-\"");
	if (wc->logfmt >= LOG_FORWARDED)
		n += snprintf(line + n, sizeof(line) - n, " \"-\"");
	if (wc->logfmt == LOG_TIMED)
		n += timed(line + n, sizeof(line) - n, 0, -1);
	emit(wc, "-", line, n);
}

/*
 * Open the log file beneath its folder's descriptor, the master creating
 * it (<create>: O_CREAT).  The folder may be the workers' to write in:
 * the master, root, follows no symlink, opens nothing but a regular file
 * (a FIFO would hang it), and gives the workers only a file that root
 * owns alone, such as the one it created.
 */
static int
log_openat(struct webd_conf *wc, const char *what, int create)
{
	struct stat	st;
	int		fd;

	if ((fd = openat(wc->logdir, wc->logname, O_WRONLY | O_APPEND |
	    create | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0640)) == -1) {
		log_warn("%s %s", what, wc->logfile);
		return (-1);
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		log_warnx("%s %s: not a regular file", what, wc->logfile);
		close(fd);
		return (-1);
	}
	if (geteuid() == 0 && wc->uid != (uid_t)-1 && st.st_uid == 0 &&
	    st.st_nlink == 1)
		(void)fchown(fd, wc->uid, (gid_t)-1);
	if (wc->logfd != -1)
		close(wc->logfd);
	wc->logfd = fd;
	return (0);
}

/*
 * Master: open the log's folder, then the file in it (created, owned by
 * the workers' user).  The folder's descriptor goes to the workers with
 * the rest, so that they find the file again after a rotation also when
 * they run chrooted, where its path means nothing.
 */
int
access_log_open(struct webd_conf *wc)
{
	char	dir[PATH_MAX];
	char	*slash;

	if (wc->logfile == NULL)
		return (0);
	if (wc->logdir == -1) {
		if (strlcpy(dir, wc->logfile, sizeof(dir)) >= sizeof(dir) ||
		    (slash = strrchr(dir, '/')) == NULL) {
			log_warnx("access log %s: bad path", wc->logfile);
			return (-1);
		}
		wc->logname = strrchr(wc->logfile, '/') + 1;
		if (slash == dir)
			slash++;
		*slash = '\0';
		if ((wc->logdir = open(dir, O_PATH | O_DIRECTORY |
		    O_CLOEXEC)) == -1) {
			log_warn("access log folder %s", dir);
			return (-1);
		}
	}
	return (log_openat(wc, "access log", O_CREAT));
}

/*
 * SIGUSR1: the master opens the file anew (after a rotation), creating
 * it, and the workers, told next, open the new file by its name in the
 * folder's descriptor.  They never create it: a worker told late, once
 * the file was moved again, would make one of its own there.
 */
static void
reopen(struct webd_conf *wc, int create)
{
	if (wc == NULL || wc->logfile == NULL || wc->logdir == -1)
		return;
	(void)log_openat(wc, "reopen access log", create);
}

void
access_log_reopen(void *p)
{
	reopen(p, O_CREAT);
}

void
access_log_reopen_worker(void *p)
{
	reopen(p, 0);
}
