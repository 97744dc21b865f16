/*
 * log.h: logging in the OpenBSD manner.
 *
 * Before log_init(0) and with -d everything goes to stderr; afterwards to
 * syslog(3) with the daemon's name as ident, LOG_PID and the facility given
 * to log_init().  log_warn() appends strerror(errno); fatal()/fatalx() log
 * and exit(1).  log_debug() prints only when the verbosity is at least 1.
 */
#ifndef COMMON_LOG_H
#define COMMON_LOG_H

#include <stdarg.h>
#include "compat.h"

void	log_init(int foreground, int facility);
void	log_setverbose(int);
int	log_getverbose(void);
void	log_procinit(const char *);
int	log_facility(const char *);	/* "daemon", "local0".. -> LOG_*, -1 */

void	log_warn(const char *, ...) __printflike(1, 2);
void	log_warnx(const char *, ...) __printflike(1, 2);
void	log_info(const char *, ...) __printflike(1, 2);
void	log_debug(const char *, ...) __printflike(1, 2);
void	logit(int, const char *, ...) __printflike(2, 3);
void	vlog(int, const char *, va_list) __printflike(2, 0);
__dead void fatal(const char *, ...) __printflike(1, 2);
__dead void fatalx(const char *, ...) __printflike(1, 2);
char	*xstrdup(const char *);

#endif
