/*
 * compat.h: the few BSD idioms neither glibc nor libbsd 0.11 provide.
 * Included first by every file of the project (after <sys/types.h>).
 */
#ifndef COMMON_COMPAT_H
#define COMMON_COMPAT_H

#include <stddef.h>

#ifndef nitems
#define nitems(a)	(sizeof(a) / sizeof((a)[0]))
#endif

#ifndef __dead
#define __dead		__attribute__((__noreturn__))
#endif

#ifndef __unused
#define __unused	__attribute__((__unused__))
#endif

#ifndef __printflike
#define __printflike(f, a)	__attribute__((__format__(__printf__, f, a)))
#endif

/* Constant-time comparison; libbsd 0.11.7 does not export timingsafe_bcmp. */
int	timingsafe_memeq(const void *, const void *, size_t);

#endif
