/*
 * log.c: stderr in the foreground, syslog(3) otherwise.
 */
#include <sys/types.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static int		 log_foreground = 1;
static int		 log_verbose;
static const char	*log_procname;

static const struct {
	const char	*name;
	int		 fac;
} facilities[] = {
	{ "auth", LOG_AUTH }, { "authpriv", LOG_AUTHPRIV },
	{ "cron", LOG_CRON }, { "daemon", LOG_DAEMON }, { "ftp", LOG_FTP },
	{ "lpr", LOG_LPR }, { "mail", LOG_MAIL }, { "news", LOG_NEWS },
	{ "syslog", LOG_SYSLOG }, { "user", LOG_USER }, { "uucp", LOG_UUCP },
	{ "local0", LOG_LOCAL0 }, { "local1", LOG_LOCAL1 },
	{ "local2", LOG_LOCAL2 }, { "local3", LOG_LOCAL3 },
	{ "local4", LOG_LOCAL4 }, { "local5", LOG_LOCAL5 },
	{ "local6", LOG_LOCAL6 }, { "local7", LOG_LOCAL7 },
};

int
timingsafe_memeq(const void *a, const void *b, size_t len)
{
	const volatile unsigned char	*p = a, *q = b;
	unsigned char			 r = 0;
	size_t				 i;

	for (i = 0; i < len; i++)
		r |= p[i] ^ q[i];
	return (r == 0);
}

int
log_facility(const char *name)
{
	size_t	i;

	for (i = 0; i < nitems(facilities); i++)
		if (strcmp(facilities[i].name, name) == 0)
			return (facilities[i].fac);
	return (-1);
}

/*
 * Call with foreground = 1 before daemonizing (or with -d), 0 after.
 * The ident is the program name, so lines read "webd[123]: ...".
 */
void
log_init(int foreground, int facility)
{
	log_foreground = foreground;
	if (!foreground) {
		closelog();
		openlog(getprogname(), LOG_PID | LOG_NDELAY, facility);
	}
	tzset();
}

void
log_setverbose(int v)
{
	log_verbose = v;
}

int
log_getverbose(void)
{
	return (log_verbose);
}

void
log_procinit(const char *name)
{
	log_procname = name;
}

void
vlog(int pri, const char *fmt, va_list ap)
{
	char	msg[2048];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (log_foreground) {
		if (log_procname != NULL)
			fprintf(stderr, "%s: %s: %s\n", getprogname(),
			    log_procname, msg);
		else
			fprintf(stderr, "%s: %s\n", getprogname(), msg);
		fflush(stderr);
	} else if (log_procname != NULL)
		syslog(pri, "%s: %s", log_procname, msg);
	else
		syslog(pri, "%s", msg);
}

void
logit(int pri, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	vlog(pri, fmt, ap);
	va_end(ap);
}

static void
vlog_errno(int pri, int saved, const char *fmt, va_list ap)
{
	char	buf[1800];

	if (fmt == NULL) {
		logit(pri, "%s", strerror(saved));
		return;
	}
	vsnprintf(buf, sizeof(buf), fmt, ap);
	logit(pri, "%s: %s", buf, strerror(saved));
}

void
log_warn(const char *fmt, ...)
{
	va_list	ap;
	int	saved = errno;

	va_start(ap, fmt);
	vlog_errno(LOG_ERR, saved, fmt, ap);
	va_end(ap);
	errno = saved;
}

void
log_warnx(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	vlog(LOG_ERR, fmt, ap);
	va_end(ap);
}

void
log_info(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	vlog(LOG_INFO, fmt, ap);
	va_end(ap);
}

void
log_debug(const char *fmt, ...)
{
	va_list	ap;

	if (log_verbose < 1)
		return;
	va_start(ap, fmt);
	vlog(LOG_DEBUG, fmt, ap);
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	va_list	ap;
	int	saved = errno;

	va_start(ap, fmt);
	vlog_errno(LOG_CRIT, saved, fmt, ap);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	vlog(LOG_CRIT, fmt, ap);
	va_end(ap);
	exit(1);
}

/* strdup(3), or die: out of memory at configuration time.  NULL stays. */
char *
xstrdup(const char *s)
{
	char	*p;

	if (s == NULL)
		return (NULL);
	if ((p = strdup(s)) == NULL)
		fatal("%s", __func__);
	return (p);
}
