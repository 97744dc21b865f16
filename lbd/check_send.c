/*
 * check_send.c: send/expect, for protocols that are not HTTP (a
 * database, an SMTP or Redis server, a line protocol): send the check's
 * bytes, then pass when the answer holds the expected bytes within the
 * timeout.  Without "expect" the server passes once it took the bytes.
 * "tls" runs it over TLS.
 */
#include <sys/types.h>

#include <string.h>

#include "lbd.h"

static enum check_verdict
send_judge(struct check_run *run, int eof)
{
	const char	*exp = run->ck->expect;
	char		 p[48];

	if (buf_used(&run->in) > 0 && memmem(buf_head(&run->in),
	    buf_used(&run->in), exp, run->ck->expectlen) != NULL)
		return (check_verdict(run, CHECK_OK, 0, "got \"%s\"",
		    check_printable(exp, p, sizeof(p))));
	if (!eof)
		return (CHECK_MORE);
	return (check_verdict(run, CHECK_FAIL, 0, "no \"%s\" in %zu bytes "
	    "of answer", check_printable(exp, p, sizeof(p)),
	    buf_used(&run->in)));
}

int
check_send_start(struct check_run *run)
{
	const struct lbd_check	*ck = run->ck;

	if (buf_append(&run->out, ck->send, ck->sendlen) == -1) {
		check_verdict(run, CHECK_FAIL, 0, "send string too long");
		return (-1);
	}
	if (ck->expect != NULL && ck->expectlen > 0)
		run->judge = send_judge;
	if (ck->tls)
		return (check_tls_wrap(run, ck->host));
	return (0);
}
