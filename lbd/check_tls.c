/*
 * check_tls.c: the TLS check, and TLS under the other checks.
 *
 * "check tls" passes when the server completes a TLS handshake within
 * the timeout.  "check http ... tls" and "check send ... tls" run over
 * TLS: check.c does the handshake before sending.  The certificate is
 * not verified (a health check asks whether the server works, not who
 * it is); the check's host, when it is a name, goes in the SNI.
 */
#include <sys/types.h>
#include <arpa/inet.h>

#include <stdio.h>
#include <string.h>

#include <openssl/ssl.h>

#include "log.h"
#include "lbd.h"
#include "tls.h"

static struct tls_ctx	*ctx;

/* The SNI for <host> ("name", "name:port"): NULL for an address. */
static const char *
sni_name(const char *host, char *out, size_t len)
{
	unsigned char	a[16];
	char		*colon;

	if (host == NULL || host[0] == '[')
		return (NULL);
	if (strlcpy(out, host, len) >= len)
		return (NULL);
	if ((colon = strchr(out, ':')) != NULL)
		*colon = '\0';
	if (out[0] == '\0' || inet_pton(AF_INET, out, a) == 1 ||
	    inet_pton(AF_INET6, out, a) == 1)
		return (NULL);
	return (out);
}

/* Put TLS on <run>'s socket; check.c does the handshake after connect. */
int
check_tls_wrap(struct check_run *run, const char *host)
{
	char	err[256], name[256];

	if (ctx == NULL &&
	    (ctx = tls_client_new(NULL, 0, err, sizeof(err))) == NULL) {
		log_warnx("%s: %s", __func__, err);
		check_verdict(run, CHECK_FAIL, 0, "no TLS context");
		return (-1);
	}
	if ((run->sock.ssl = tls_client_ssl(ctx, run->sock.fd,
	    sni_name(host, name, sizeof(name)), NULL)) == NULL) {
		check_verdict(run, CHECK_FAIL, 0, "no TLS session");
		return (-1);
	}
	return (0);
}

static enum check_verdict
tls_connected(struct check_run *run)
{
	return (check_verdict(run, CHECK_OK, 0, "TLS handshake, %s",
	    tls_version(run->sock.ssl)));
}

int
check_tls_start(struct check_run *run)
{
	run->connected = tls_connected;
	return (check_tls_wrap(run, run->ck->host));
}

void
check_tls_free(void)
{
	tls_free(ctx);
	ctx = NULL;
}
