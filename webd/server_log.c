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

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "webd.h"

static int	logfd = -1;

static size_t
esc(char *out, size_t size, const char *p, size_t len)
{
	static const char	hex[] = "0123456789abcdef";
	size_t			o = 0, i;

	for (i = 0; i < len && o + 5 < size; i++) {
		unsigned char	c = p[i];

		if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') {
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

static void
field(struct http_req *req, const char *name, char *out, size_t size)
{
	struct slice	v = http_req_header(req, name);

	if (v.p == NULL) {
		snprintf(out, size, "-");
		return;
	}
	esc(out, size, v.p, v.len);
}

void
access_log(struct http_req *req, struct webd_server *s, int status,
    uint64_t bytes)
{
	struct webd_conf	*wc = ((struct webd_listener *)
				    req->conn->srv)->wc;
	static char		 tbuf[64];
	static time_t		 tlast;
	char			 line[4096], rl[2048], ref[512], ua[512];
	char			 xff[512], ip[INET6_ADDRSTRLEN];
	struct slice		 m, t;
	time_t			 now;
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
	now = time(NULL);
	if (now != tlast) {
		struct tm	tm;

		localtime_r(&now, &tm);
		strftime(tbuf, sizeof(tbuf), "%d/%b/%Y:%H:%M:%S %z", &tm);
		tlast = now;
	}
	net_sockaddr_ip(server_client(req), ip, sizeof(ip));
	m = http_req_method(req);
	t = http_req_target(req);
	n = esc(rl, sizeof(rl), m.p, m.len);
	rl[n++] = ' ';
	n += esc(rl + n, sizeof(rl) - n, t.p, t.len);
	snprintf(rl + n, sizeof(rl) - n, " HTTP/1.%d", req->msg.minor);
	n = snprintf(line, sizeof(line), "%s - - [%s] \"%s\" %d %llu", ip,
	    tbuf, rl, status, (unsigned long long)bytes);
	if (wc->logfmt >= LOG_COMBINED) {
		field(req, "referer", ref, sizeof(ref));
		field(req, "user-agent", ua, sizeof(ua));
		n += snprintf(line + n, sizeof(line) - n, " \"%s\" \"%s\"",
		    ref, ua);
	}
	if (wc->logfmt == LOG_FORWARDED) {
		field(req, "x-forwarded-for", xff, sizeof(xff));
		n += snprintf(line + n, sizeof(line) - n, " \"%s\"", xff);
	}
	if (n >= (int)sizeof(line) - 1)
		n = sizeof(line) - 2;
	if (wc->logfile != NULL && logfd != -1) {
		line[n++] = '\n';
		(void)write(logfd, line, n);
		return;
	}
	if (wc->logfacility != -1)
		syslog(LOG_INFO | wc->logfacility, "%s %s", s ? s->name : "-",
		    line);
	else
		syslog(LOG_INFO, "%s %s", s ? s->name : "-", line);
}

/* Master: open (create) the log file, owned by the workers' user. */
int
access_log_open(struct webd_conf *wc)
{
	int	fd;

	if (wc->logfile == NULL)
		return (0);
	if ((fd = open(wc->logfile, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
	    0640)) == -1) {
		log_warn("access log %s", wc->logfile);
		return (-1);
	}
	if (geteuid() == 0 && wc->uid != (uid_t)-1)
		(void)fchown(fd, wc->uid, (gid_t)-1);
	if (logfd != -1)
		close(logfd);
	logfd = fd;
	return (0);
}

/*
 * SIGUSR1: the master opens the file anew (after a rotation) and the
 * workers, told next, take the new file by the same path.  The master
 * creates it, so workers need no right to create files in the folder.
 */
void
access_log_reopen(void *p)
{
	struct webd_conf	*wc = p;
	int			 fd;

	if (wc == NULL || wc->logfile == NULL)
		return;
	if ((fd = open(wc->logfile, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
	    0640)) == -1) {
		log_warn("reopen access log %s", wc->logfile);
		return;
	}
	if (geteuid() == 0 && wc->uid != (uid_t)-1)
		(void)fchown(fd, wc->uid, (gid_t)-1);
	if (logfd != -1)
		close(logfd);
	logfd = fd;
}
