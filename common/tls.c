/*
 * tls.c: OpenSSL 3 contexts for servers and clients (see tls.h).
 */
#include <sys/types.h>
#include <sys/stat.h>
#include <netinet/in.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "conf.h"
#include "log.h"
#include "net.h"
#include "tls.h"

/* TLS 1.2: ECDHE key exchange and AEAD only.  TLS 1.3 suites all are. */
#define TLS12_CIPHERS							\
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"	\
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"	\
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define TLS_GROUPS	"X25519:P-256:P-384"

const struct conf_opt tls_cert_opts[] = {
	{ "key", { CONF_PATH, "key file" } },
	{ NULL }
};

struct tls_cert {
	SSL_CTX		*ctx;
	char		*names[TLS_MAXNAMES];
	int		 nnames;
};

struct tls_ctx {
	int		 server;
	struct tls_cert	 certs[TLS_MAXCERTS];
	int		 ncerts;
	int		 def;			/* the default certificate */
	SSL_CTX		*client;
	uint64_t	 rotation;		/* seconds */
	unsigned char	 secret[TLS_SECRETLEN];
	/* keys of the last two periods, derived on demand */
	struct {
		int64_t		period;
		unsigned char	name[16];
		unsigned char	aes[32];
		unsigned char	mac[32];
	}		 keys[2];
};

static int	 ex_index = -1;
static unsigned char master_secret[TLS_SECRETLEN];
static int	 have_master_secret;

static const char *
ssl_err(void)
{
	static char	b[256];
	unsigned long	e = ERR_get_error();

	if (e == 0)
		return ("unknown error");
	ERR_error_string_n(e, b, sizeof(b));
	ERR_clear_error();
	return (b);
}

static void
derive(struct tls_ctx *t, int64_t period, int slot)
{
	unsigned char	in[16], out[EVP_MAX_MD_SIZE];
	unsigned int	olen;
	const char	*labels[3] = { "name", "aes", "mac" };
	int		i;

	t->keys[slot].period = period;
	for (i = 0; i < 3; i++) {
		memset(in, 0, sizeof(in));
		memcpy(in, labels[i], strlen(labels[i]));
		memcpy(in + 8, &period, sizeof(period));
		HMAC(EVP_sha256(), t->secret, sizeof(t->secret), in,
		    sizeof(in), out, &olen);
		if (i == 0)
			memcpy(t->keys[slot].name, out, 16);
		else if (i == 1)
			memcpy(t->keys[slot].aes, out, 32);
		else
			memcpy(t->keys[slot].mac, out, 32);
	}
	explicit_bzero(out, sizeof(out));
}

/* The keys of <period>, derived once and kept for the next calls. */
static int
period_keys(struct tls_ctx *t, int64_t period)
{
	int	i;

	for (i = 0; i < 2; i++)
		if (t->keys[i].period == period)
			return (i);
	i = t->keys[0].period < t->keys[1].period ? 0 : 1;
	derive(t, period, i);
	return (i);
}

/*
 * The ticket key callback: encrypt with the current period's key;
 * decrypt with the key whose name the ticket carries, if it is of the
 * current or the previous period.
 */
static int
ticket_cb(SSL *ssl, unsigned char name[16], unsigned char *iv,
    EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, int enc)
{
	struct tls_ctx	*t = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl),
			    ex_index);
	int64_t		 now, period;
	OSSL_PARAM	 params[3];
	int		 i, k;

	if (t == NULL)
		return (-1);
	now = time(NULL);
	period = now / (int64_t)t->rotation;
	if (enc) {
		k = period_keys(t, period);
		if (RAND_bytes(iv, EVP_MAX_IV_LENGTH) != 1)
			return (-1);
		memcpy(name, t->keys[k].name, 16);
		if (EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), NULL,
		    t->keys[k].aes, iv) != 1)
			return (-1);
		params[0] = OSSL_PARAM_construct_octet_string(
		    OSSL_MAC_PARAM_KEY, t->keys[k].mac, 32);
		params[1] = OSSL_PARAM_construct_utf8_string(
		    OSSL_MAC_PARAM_DIGEST, "SHA256", 0);
		params[2] = OSSL_PARAM_construct_end();
		if (EVP_MAC_CTX_set_params(hctx, params) != 1)
			return (-1);
		return (1);
	}
	for (i = 0; i < 2; i++) {
		k = period_keys(t, period - i);
		if (memcmp(name, t->keys[k].name, 16) != 0)
			continue;
		params[0] = OSSL_PARAM_construct_octet_string(
		    OSSL_MAC_PARAM_KEY, t->keys[k].mac, 32);
		params[1] = OSSL_PARAM_construct_utf8_string(
		    OSSL_MAC_PARAM_DIGEST, "SHA256", 0);
		params[2] = OSSL_PARAM_construct_end();
		if (EVP_MAC_CTX_set_params(hctx, params) != 1 ||
		    EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), NULL,
		    t->keys[k].aes, iv) != 1)
			return (-1);
		/* 2: valid, but issue a fresh ticket with the new key */
		return (i == 0 ? 1 : 2);
	}
	return (0);	/* unknown key: full handshake */
}

static int
alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
    const unsigned char *in, unsigned int inlen, void *arg)
{
	static const unsigned char	h11[] = "\x08http/1.1";
	unsigned char			*sel;

	if (SSL_select_next_proto(&sel, outlen, h11, sizeof(h11) - 1, in,
	    inlen) != OPENSSL_NPN_NEGOTIATED)
		return (SSL_TLSEXT_ERR_NOACK);
	*out = sel;
	return (SSL_TLSEXT_ERR_OK);
}

static int
name_match(const char *pattern, const char *host)
{
	if (strcasecmp(pattern, host) == 0)
		return (1);
	if (pattern[0] == '*' && pattern[1] == '.') {
		const char	*dot = strchr(host, '.');

		return (dot != NULL && dot != host &&
		    strcasecmp(pattern + 1, dot) == 0);
	}
	return (0);
}

/*
 * The certificate for <host>: an exact name first, then a wildcard, each
 * in the order of the conf; else the default one.
 */
static int
cert_for(const struct tls_ctx *t, const char *host)
{
	int	i, j, wild;

	for (wild = 0; wild < 2; wild++)
		for (i = 0; i < t->ncerts; i++)
			for (j = 0; j < t->certs[i].nnames; j++) {
				const char	*n = t->certs[i].names[j];

				if ((n[0] == '*') == wild && name_match(n, host))
					return (i);
			}
	return (t->def);
}

/*
 * The certificate is chosen from the ClientHello's server_name before
 * OpenSSL looks at a session to resume: each certificate's context has
 * its own session id context, so that a session (ticket) made under one
 * name resumes under that certificate only, never under another name's
 * (RFC 6066 3), nor on another listener with other certificates.
 */
static int
hello_cb(SSL *ssl, int *al, void *arg)
{
	struct tls_ctx		*t = arg;
	const unsigned char	*p;
	size_t			 len, n;
	char			 host[256];
	int			 i = t->def;

	/* server_name: a list of (type, length, name); host_name is 0 */
	if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &p,
	    &len) == 1 && len >= 5 && (size_t)(p[0] << 8 | p[1]) == len - 2 &&
	    p[2] == TLSEXT_NAMETYPE_host_name &&
	    (n = (size_t)(p[3] << 8 | p[4])) > 0 && n <= len - 5 &&
	    n < sizeof(host) && memchr(p + 5, '\0', n) == NULL) {
		memcpy(host, p + 5, n);
		host[n] = '\0';
		i = cert_for(t, host);
	}
	if (SSL_get_SSL_CTX(ssl) != t->certs[i].ctx)
		SSL_set_SSL_CTX(ssl, t->certs[i].ctx);
	return (SSL_CLIENT_HELLO_SUCCESS);
}

/* The name was looked at already (hello_cb): acknowledge it. */
static int
sni_cb(SSL *ssl, int *ad, void *arg)
{
	return (SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name) == NULL ?
	    SSL_TLSEXT_ERR_NOACK : SSL_TLSEXT_ERR_OK);
}

/* The DNS names (and the CN when there are none) of a certificate. */
static void
cert_names(struct tls_cert *c, X509 *x)
{
	GENERAL_NAMES	*gens;
	int		 i;

	gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	for (i = 0; gens != NULL && i < sk_GENERAL_NAME_num(gens); i++) {
		GENERAL_NAME	*g = sk_GENERAL_NAME_value(gens, i);

		if (g->type != GEN_DNS || c->nnames >= TLS_MAXNAMES)
			continue;
		c->names[c->nnames] = strndup((const char *)
		    ASN1_STRING_get0_data(g->d.dNSName),
		    ASN1_STRING_length(g->d.dNSName));
		if (c->names[c->nnames] != NULL)
			c->nnames++;
	}
	GENERAL_NAMES_free(gens);
	if (c->nnames == 0) {
		char	cn[256];

		if (X509_NAME_get_text_by_NID(X509_get_subject_name(x),
		    NID_commonName, cn, sizeof(cn)) > 0 &&
		    (c->names[0] = strdup(cn)) != NULL)
			c->nnames = 1;
	}
}

/* Whether two certificates have the same names, in any order. */
static int
same_names(const struct tls_cert *a, const struct tls_cert *b)
{
	int	i, j;

	if (a->nnames != b->nnames || a->nnames == 0)
		return (0);
	for (i = 0; i < a->nnames; i++) {
		for (j = 0; j < b->nnames; j++)
			if (strcasecmp(a->names[i], b->names[j]) == 0)
				break;
		if (j == b->nnames)
			return (0);
	}
	return (1);
}

/*
 * The last certificate loaded, <c> (<x>, from <path> and <key>), names
 * what an earlier one names with another kind of key (RSA beside
 * ECDSA): the earlier context takes it too, and OpenSSL gives each
 * client the one its signature algorithms allow; <c> goes.  Else
 * nothing changes.  -1 on an OpenSSL error.
 */
static int
pair_up(struct tls_ctx *t, struct tls_cert *c, X509 *x, const char *path,
    const char *key)
{
	struct tls_cert	*p;
	X509		*px;
	int		 i, type = EVP_PKEY_base_id(X509_get0_pubkey(x));

	for (i = 0; i < t->ncerts - 1; i++) {
		p = &t->certs[i];
		if (!same_names(p, c) ||
		    (px = SSL_CTX_get0_certificate(p->ctx)) == NULL ||
		    EVP_PKEY_base_id(X509_get0_pubkey(px)) == type)
			continue;
		if (SSL_CTX_use_certificate_chain_file(p->ctx, path) != 1 ||
		    SSL_CTX_use_PrivateKey_file(p->ctx, key,
		    SSL_FILETYPE_PEM) != 1)
			return (-1);
		SSL_CTX_free(c->ctx);
		while (c->nnames > 0)
			free(c->names[--c->nnames]);
		memset(c, 0, sizeof(*c));
		t->ncerts--;
		return (0);
	}
	return (0);
}

static SSL_CTX *
server_ctx(struct tls_ctx *t, int tickets)
{
	SSL_CTX	*ctx;

	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL)
		return (NULL);
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION |
	    SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION |
	    (tickets ? 0 : SSL_OP_NO_TICKET));
	/* idle connections give their record buffers back */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS |
	    SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS) != 1 ||
	    SSL_CTX_set1_groups_list(ctx, TLS_GROUPS) != 1) {
		SSL_CTX_free(ctx);
		return (NULL);
	}
	/*
	 * A peer that closes without close_notify (most browsers) ends
	 * its stream: SSL_ERROR_ZERO_RETURN, as sock.c expects, not an
	 * error that drops what is still to be relayed.  HTTP's framing
	 * tells a cut body.
	 */
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	/* stateless tickets only: no session cache to share */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_num_tickets(ctx, tickets ? 1 : 0);
	SSL_CTX_set_alpn_select_cb(ctx, alpn_cb, NULL);
	SSL_CTX_set_ex_data(ctx, ex_index, t);
	if (tickets)
		SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_cb);
	SSL_CTX_set_client_hello_cb(ctx, hello_cb, t);
	SSL_CTX_set_tlsext_servername_callback(ctx, sni_cb);
	SSL_CTX_set_tlsext_servername_arg(ctx, t);
	return (ctx);
}

/*
 * A secret shared by hosts: a file of at least TLS_SECRETLEN random
 * bytes, not readable by group or others, condensed into TLS_SECRETLEN
 * bytes at <out>.  -1 with <err> set when it cannot be used.
 */
int
tls_read_secret(const char *path, unsigned char *out, char *err,
    size_t errlen)
{
	unsigned char	buf[512];
	struct stat	st;
	ssize_t		n;
	int		fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return (-1);
	}
	if (fstat(fd, &st) == -1 || (st.st_mode & 077) != 0) {
		snprintf(err, errlen, "%s: must not be readable by group or "
		    "others (chmod 600)", path);
		close(fd);
		return (-1);
	}
	n = read(fd, buf, sizeof(buf));
	close(fd);
	if (n < TLS_SECRETLEN) {
		snprintf(err, errlen, "%s: needs at least %d bytes of random "
		    "data (head -c %d /dev/urandom > %s)", path, TLS_SECRETLEN,
		    TLS_SECRETLEN, path);
		explicit_bzero(buf, sizeof(buf));
		return (-1);
	}
	/* condense whatever is there into the secret */
	{
		unsigned char	md[EVP_MAX_MD_SIZE];
		unsigned int	mdlen;

		EVP_Digest(buf, n, md, &mdlen, EVP_sha384(), NULL);
		memcpy(out, md, TLS_SECRETLEN);
		explicit_bzero(md, sizeof(md));
	}
	explicit_bzero(buf, sizeof(buf));
	return (0);
}

/* Load the certificates of <block> into <t>.  Returns 0 or -1. */
static int
certs_load(struct tls_ctx *t, struct conf *conf, const struct conf_node *block,
    int tickets)
{
	struct conf_node	*n;

	CONF_FOREACH(n, block, "certificate") {
		struct tls_cert	*c;
		const char	*key = conf_optstr(n, "key", NULL);
		X509		*x;

		/* the master lives long: no error of an earlier load shows */
		ERR_clear_error();

		if (t->ncerts >= TLS_MAXCERTS) {
			conf_error(conf, n, "too many certificates (max %d)",
			    TLS_MAXCERTS);
			return (-1);
		}
		c = &t->certs[t->ncerts];
		if ((c->ctx = server_ctx(t, tickets)) == NULL) {
			conf_error(conf, n, "TLS context: %s", ssl_err());
			return (-1);
		}
		t->ncerts++;
		if (SSL_CTX_use_certificate_chain_file(c->ctx,
		    n->args[0].str) != 1) {
			conf_error(conf, n, "certificate %s: %s",
			    n->args[0].str, ssl_err());
			return (-1);
		}
		if (SSL_CTX_use_PrivateKey_file(c->ctx, key ? key :
		    n->args[0].str, SSL_FILETYPE_PEM) != 1) {
			conf_error(conf, n, "key %s: %s", key ? key :
			    n->args[0].str, ssl_err());
			return (-1);
		}
		if (SSL_CTX_check_private_key(c->ctx) != 1) {
			conf_error(conf, n, "key %s does not match the "
			    "certificate %s", key ? key : n->args[0].str,
			    n->args[0].str);
			return (-1);
		}
		if ((x = SSL_CTX_get0_certificate(c->ctx)) != NULL) {
			unsigned char	md[EVP_MAX_MD_SIZE];
			unsigned int	mdlen = 0;

			cert_names(c, x);
			/* sessions resume under this certificate only (and
			 * on every host that has it: tickets are shared) */
			if (X509_digest(x, EVP_sha256(), md, &mdlen) != 1 ||
			    SSL_CTX_set_session_id_context(c->ctx, md,
			    mdlen > SSL_MAX_SID_CTX_LENGTH ?
			    SSL_MAX_SID_CTX_LENGTH : mdlen) != 1) {
				conf_error(conf, n, "certificate %s: %s",
				    n->args[0].str, ssl_err());
				return (-1);
			}
		}
		if (x != NULL && pair_up(t, c, x, n->args[0].str, key ? key :
		    n->args[0].str) == -1) {
			conf_error(conf, n, "certificate %s: %s",
			    n->args[0].str, ssl_err());
			return (-1);
		}
	}
	return (0);
}

/*
 * Build a server context from a "tls { }" block (TLS_GRAMMAR).  Errors
 * are reported against the block's statements; NULL when any.
 */
struct tls_ctx *
tls_server_load(struct conf *conf, const struct conf_node *block)
{
	struct tls_ctx		*t;
	const char		*s;
	char			 err[512];
	int			 tickets;

	if (ex_index == -1)
		ex_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL,
		    NULL);
	if ((t = calloc(1, sizeof(*t))) == NULL)
		fatal("%s", __func__);
	t->server = 1;
	t->keys[0].period = t->keys[1].period = -1;
	t->rotation = conf_num(conf, block, "ticket-rotation") / 1000;
	if (t->rotation == 0)
		t->rotation = 1;
	tickets = conf_num(conf, block, "tickets");
	if ((s = conf_str(conf, block, "ticket-key-file")) != NULL) {
		if (tls_read_secret(s, t->secret, err, sizeof(err)) == -1) {
			conf_error(conf, conf_get(block, "ticket-key-file"),
			    "%s", err);
			goto fail;
		}
	} else {
		/* one secret for the master's life: reloads keep tickets */
		if (!have_master_secret) {
			if (RAND_bytes(master_secret,
			    sizeof(master_secret)) != 1)
				fatalx("%s: RAND_bytes", __func__);
			have_master_secret = 1;
		}
		memcpy(t->secret, master_secret, sizeof(t->secret));
	}
	if (certs_load(t, conf, block, tickets) == -1)
		goto fail;
	return (t);
 fail:
	tls_free(t);
	return (NULL);
}

/*
 * Add the certificates of another "tls { }" block to <t>: several
 * servers sharing one listener, each with its certificates, chosen by
 * SNI.  The first block's ticket settings hold for all.
 */
int
tls_server_add(struct tls_ctx *t, struct conf *conf,
    const struct conf_node *block)
{
	if (t == NULL)
		return (-1);
	return (certs_load(t, conf, block, conf_num(conf, block, "tickets")));
}

/* The number of certificates of a server context. */
int
tls_server_ncerts(const struct tls_ctx *t)
{
	return (t == NULL ? 0 : t->ncerts);
}

/*
 * Make certificate <i> the default one (for clients that name no host,
 * or one no certificate has), the others keeping their order.
 */
void
tls_server_default(struct tls_ctx *t, int i)
{
	if (t == NULL || i < 0 || i >= t->ncerts)
		return;
	t->def = i;
}

struct tls_ctx *
tls_client_new(const char *cafile, int verify, char *err, size_t errlen)
{
	struct tls_ctx	*t;

	if ((t = calloc(1, sizeof(*t))) == NULL)
		fatal("%s", __func__);
	if ((t->client = SSL_CTX_new(TLS_client_method())) == NULL) {
		snprintf(err, errlen, "TLS context: %s", ssl_err());
		goto fail;
	}
	SSL_CTX_set_min_proto_version(t->client, TLS1_2_VERSION);
	SSL_CTX_set_options(t->client, SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_set_mode(t->client, SSL_MODE_RELEASE_BUFFERS |
	    SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (verify) {
		if (cafile != NULL) {
			if (SSL_CTX_load_verify_locations(t->client, cafile,
			    NULL) != 1) {
				snprintf(err, errlen, "CA file %s: %s", cafile,
				    ssl_err());
				goto fail;
			}
		} else
			SSL_CTX_set_default_verify_paths(t->client);
		SSL_CTX_set_verify(t->client, SSL_VERIFY_PEER, NULL);
	} else
		SSL_CTX_set_verify(t->client, SSL_VERIFY_NONE, NULL);
	return (t);
 fail:
	tls_free(t);
	return (NULL);
}

void
tls_free(struct tls_ctx *t)
{
	int	i, j;

	if (t == NULL)
		return;
	for (i = 0; i < t->ncerts; i++) {
		SSL_CTX_free(t->certs[i].ctx);
		for (j = 0; j < t->certs[i].nnames; j++)
			free(t->certs[i].names[j]);
	}
	SSL_CTX_free(t->client);
	explicit_bzero(t, sizeof(*t));
	free(t);
}

SSL *
tls_server_ssl(struct tls_ctx *t, int fd)
{
	SSL	*ssl;

	if (t == NULL || t->ncerts == 0)
		return (NULL);
	if ((ssl = SSL_new(t->certs[t->def].ctx)) == NULL)
		return (NULL);
	if (SSL_set_fd(ssl, fd) != 1) {
		SSL_free(ssl);
		return (NULL);
	}
	sock_tls_setup(ssl);
	SSL_set_accept_state(ssl);
	return (ssl);
}

/*
 * A client connection on <fd>.  When the context verifies the peer, its
 * certificate must name <sni>, or when there is none, the address <ip>
 * the connection goes to (an IP in the certificate's subjectAltName):
 * a certificate from the right CA for another host is refused.
 */
SSL *
tls_client_ssl(struct tls_ctx *t, int fd, const char *sni,
    const struct net_addr *ip)
{
	SSL				*ssl;
	const struct sockaddr_in	*sin;
	const struct sockaddr_in6	*sin6;
	int				 verify;

	if ((ssl = SSL_new(t->client)) == NULL)
		return (NULL);
	if (SSL_set_fd(ssl, fd) != 1)
		goto fail;
	sock_tls_setup(ssl);
	verify = (SSL_get_verify_mode(ssl) & SSL_VERIFY_PEER) != 0;
	if (sni != NULL) {
		SSL_set_tlsext_host_name(ssl, sni);
		if (verify && SSL_set1_host(ssl, sni) != 1)
			goto fail;
	} else if (verify && ip != NULL && ip->family == AF_INET) {
		sin = (const struct sockaddr_in *)&ip->ss;
		if (X509_VERIFY_PARAM_set1_ip(SSL_get0_param(ssl),
		    (const unsigned char *)&sin->sin_addr, 4) != 1)
			goto fail;
	} else if (verify && ip != NULL && ip->family == AF_INET6) {
		sin6 = (const struct sockaddr_in6 *)&ip->ss;
		if (X509_VERIFY_PARAM_set1_ip(SSL_get0_param(ssl),
		    (const unsigned char *)&sin6->sin6_addr, 16) != 1)
			goto fail;
	}
	SSL_set_connect_state(ssl);
	return (ssl);
 fail:
	SSL_free(ssl);
	return (NULL);
}

const char *
tls_version(SSL *ssl)
{
	return (SSL_get_version(ssl));
}

int
tls_resumed(SSL *ssl)
{
	return (SSL_session_reused(ssl));
}
