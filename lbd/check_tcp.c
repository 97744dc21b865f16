/*
 * check_tcp.c: the TCP check.  A server passes when it accepts the
 * connection within the timeout; nothing is sent.
 */
#include <sys/types.h>

#include "lbd.h"

static enum check_verdict
tcp_connected(struct check_run *run)
{
	return (check_verdict(run, CHECK_OK, 0, "connected"));
}

int
check_tcp_start(struct check_run *run)
{
	run->connected = tcp_connected;
	return (0);
}
