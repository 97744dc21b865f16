/*
 * auth.c: the challenge-response that opens a TCP connection.
 *
 * Both sides know a shared secret.  The server's HELLO carries a random
 * 32-byte nonce; the client answers with its own nonce and
 * HMAC-SHA256(secret, "dbrep client" || server nonce || client nonce);
 * the server checks it in constant time and proves it knows the secret
 * too with HMAC-SHA256(secret, "dbrep server" || client nonce || server
 * nonce).  Nonces never repeat (RAND_bytes), so a recorded exchange
 * cannot be replayed.  The secret itself never crosses the wire.
 */
#include <sys/types.h>

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "dbrepd.h"

int
auth_nonce(uint8_t *nonce)
{
	return (RAND_bytes(nonce, DBREP_NONCELEN) == 1 ? 0 : -1);
}

/* mac = HMAC-SHA256(secret, label || n1 || n2) */
void
auth_mac(const char *secret, size_t slen, const char *label,
    const uint8_t *n1, const uint8_t *n2, uint8_t *mac)
{
	uint8_t		msg[64 + 2 * DBREP_NONCELEN];
	size_t		ll = strlen(label);
	unsigned int	maclen = DBREP_MACLEN;

	if (ll > 64)
		ll = 64;
	memcpy(msg, label, ll);
	memcpy(msg + ll, n1, DBREP_NONCELEN);
	memcpy(msg + ll + DBREP_NONCELEN, n2, DBREP_NONCELEN);
	if (HMAC(EVP_sha256(), secret, (int)slen, msg,
	    ll + 2 * DBREP_NONCELEN, mac, &maclen) == NULL)
		memset(mac, 0, DBREP_MACLEN);
	OPENSSL_cleanse(msg, sizeof(msg));
}

/* Returns 1 when <mac> is right, in constant time. */
int
auth_check(const char *secret, size_t slen, const char *label,
    const uint8_t *n1, const uint8_t *n2, const uint8_t *mac)
{
	uint8_t	want[DBREP_MACLEN];
	int	ok;

	auth_mac(secret, slen, label, n1, n2, want);
	ok = CRYPTO_memcmp(want, mac, DBREP_MACLEN) == 0;
	OPENSSL_cleanse(want, sizeof(want));
	return (ok);
}
