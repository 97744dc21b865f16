/*
 * auth.c: HTTP basic authentication (RFC 7617) against a file of
 * "user:hash" lines whose hashes crypt(3) checks:
 * bcrypt ($2b$, $2y$, $2a$: htpasswd -B), SHA-crypt ($5$, $6$: mkpasswd,
 * openssl passwd -6), yescrypt ($y$: mkpasswd's default, $gy$) and
 * scrypt ($7$).
 *
 * webd's servers and locations and lbd's statistics listener use it.
 * The master reads the file with the configuration (before workers
 * drop privileges, so that it may be readable by root only); a reload
 * reads it again.  A hash costs milliseconds by design, in the worker's
 * loop: each worker remembers the last AUTH_CACHE credentials that
 * passed, by a digest of the user, the password and the stored hash,
 * for AUTH_CACHE_MS, so that a signed-in browser's requests cost one
 * check a minute, not one each.  Wrong passwords are checked each time.
 */
#include <sys/types.h>

#include <crypt.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "auth.h"
#include "compat.h"
#include "event.h"
#include "http_server.h"
#include "log.h"

#define AUTH_CACHE	64
#define AUTH_CACHE_MS	60000
#define AUTH_MAXLINE	1024

struct auth_user {
	char			*name;
	char			*hash;
};

struct http_auth {
	char			*realm;
	struct auth_user	*users;
	int			 nusers;
	int			 dummy;		/* the costliest hash */
};

/* crypt_r()'s room, some 32 KiB: one per process, wiped after each use */
static struct crypt_data	 cd;

static struct {
	unsigned char		 key[32];
	uint64_t		 until;
} cache[AUTH_CACHE];

/* Why crypt(3) cannot check <hash> here, or NULL when it can. */
static const char *
hash_unusable(const char *hash)
{
	static const char *const strong[] = { "$2a$", "$2b$", "$2y$", "$5$",
	    "$6$", "$y$", "$gy$", "$7$" };
	size_t	i;
	int	known;

	if (strncmp(hash, "$apr1$", 6) == 0)
		return ("Apache's own MD5 ($apr1$), which crypt(3) does not "
		    "check: make it again with htpasswd -B (bcrypt)");
	if (hash[0] == '{')
		return ("an unsalted digest ({SHA}...), too weak: make it "
		    "again with htpasswd -B (bcrypt)");
	/* libxcrypt calls SHA-crypt "legacy" too: only its weak ones are */
	i = crypt_checksalt(hash);
	known = i == CRYPT_SALT_OK || i == CRYPT_SALT_METHOD_LEGACY;
	for (i = 0; i < nitems(strong); i++)
		if (strncmp(hash, strong[i], strlen(strong[i])) == 0)
			return (known ? NULL : "a malformed hash");
	/* DES's is 13 characters: a shorter one is no hash (in clear?) */
	if (known && (hash[0] == '$' || hash[0] == '_' || strlen(hash) == 13))
		return ("a legacy hash (DES or MD5 crypt), too weak: make it "
		    "again with htpasswd -B or mkpasswd");
	return ("not a hash crypt(3) knows (bcrypt $2b$, $2y$ or $2a$, "
	    "SHA-crypt $5$ or $6$, yescrypt $y$ or $gy$, scrypt $7$)");
}

/* Cut the blanks at the end of <s>: no hash ends in one. */
static void
trim(char *s)
{
	char	*end = s + strlen(s);

	while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	*end = '\0';
}

/*
 * What sets a hash's cost, written in it: the kind and its cost or
 * rounds ("$2b$12$", "$6$rounds=9000$", "$y$j9T$", scrypt's N, r and p),
 * without the salt.
 */
static void
hash_params(const char *h, char *key, size_t size)
{
	const char	*p = h;
	int		 fields = 3;

	if ((strncmp(h, "$5$", 3) == 0 || strncmp(h, "$6$", 3) == 0) &&
	    strncmp(h + 3, "rounds=", 7) != 0)
		fields = 2;
	if (strncmp(h, "$7$", 3) == 0) {
		snprintf(key, size, "%.14s", h);
		return;
	}
	while (*p != '\0' && fields > 0)
		if (*p++ == '$')
			fields--;
	snprintf(key, size, "%.*s", (int)(p - h), h);
}

/*
 * The user whose hash costs most, measured once for each kind and cost
 * the file holds: an unknown user is checked against it, so that no
 * answer comes sooner for a name the file lacks.
 */
static int
slowest(const struct http_auth *a)
{
	char		 key[64], seen[8][64];
	uint64_t	 t, best = 0;
	int		 i, j, nseen = 0, slow = 0;

	for (i = 0; i < a->nusers; i++) {
		hash_params(a->users[i].hash, key, sizeof(key));
		for (j = 0; j < nseen; j++)
			if (strcmp(seen[j], key) == 0)
				break;
		if (j < nseen || nseen == (int)nitems(seen))
			continue;
		strlcpy(seen[nseen++], key, sizeof(seen[0]));
		t = ev_monotonic_us();
		(void)crypt_r("", a->users[i].hash, &cd);
		t = ev_monotonic_us() - t;
		if (t > best) {
			best = t;
			slow = i;
		}
	}
	explicit_bzero(&cd, sizeof(cd));
	return (slow);
}

/* The realm is sent in a quoted string: no quote, backslash or control. */
static int
realm_ok(const char *s)
{
	for (; *s != '\0'; s++)
		if (*s == '"' || *s == '\\' || iscntrl((unsigned char)*s))
			return (0);
	return (1);
}

/*
 * auth-basic REALM FILE: the users of FILE.  Errors name the
 * configuration line, and the file's line for what is wrong in it.
 */
struct http_auth *
auth_load(struct conf *c, struct conf_node *n)
{
	struct http_auth	*a;
	const char		*realm = n->args[0].str, *path;
	char			*line = NULL, *colon;
	size_t			 cap = 0;
	ssize_t			 len;
	const char		*why;
	FILE			*f;
	int			 lineno = 0, i, bad = 0;

	if (n->nargs < 2) {
		conf_error(c, n, "auth-basic needs a realm and a user file, "
		    "or off");
		return (NULL);
	}
	if (!realm_ok(realm) || realm[0] == '\0') {
		conf_error(c, n, "auth-basic realm \"%s\": text without "
		    "quotes, backslashes or control characters", realm);
		return (NULL);
	}
	path = n->args[1].str;
	if ((f = fopen(path, "r")) == NULL) {
		conf_error(c, n, "auth-basic user file %s: %s", path,
		    strerror(errno));
		return (NULL);
	}
	if ((a = calloc(1, sizeof(*a))) == NULL)
		fatal("%s", __func__);
	a->realm = xstrdup(realm);
	while ((len = getline(&line, &cap, f)) != -1) {
		lineno++;
		if (len > 0 && line[len - 1] == '\n')
			line[--len] = '\0';
		if (len > 0 && line[len - 1] == '\r')
			line[--len] = '\0';
		if (len >= AUTH_MAXLINE) {
			conf_error(c, n, "%s:%d: line too long", path, lineno);
			bad = 1;
			break;
		}
		if (strlen(line) != (size_t)len) {
			conf_error(c, n, "%s:%d: a NUL byte", path, lineno);
			bad = 1;
			continue;
		}
		trim(line);
		if (line[0] == '\0' || line[0] == '#')
			continue;
		if ((colon = strchr(line, ':')) == NULL || colon == line) {
			conf_error(c, n, "%s:%d: not \"user:hash\"", path,
			    lineno);
			bad = 1;
			continue;
		}
		*colon = '\0';
		/* htpasswd writes nothing after the hash; others may */
		colon[strcspn(colon + 1, ":") + 1] = '\0';
		trim(colon + 1);
		if ((why = hash_unusable(colon + 1)) != NULL) {
			conf_error(c, n, "%s:%d: user %s: %s", path, lineno,
			    line, why);
			bad = 1;
			continue;
		}
		for (i = 0; i < a->nusers; i++)
			if (strcmp(a->users[i].name, line) == 0)
				break;
		if (i < a->nusers) {
			conf_error(c, n, "%s:%d: user %s twice", path, lineno,
			    line);
			bad = 1;
			continue;
		}
		if ((a->users = reallocarray(a->users, a->nusers + 1,
		    sizeof(*a->users))) == NULL)
			fatal("%s", __func__);
		a->users[a->nusers].name = xstrdup(line);
		a->users[a->nusers].hash = xstrdup(colon + 1);
		a->nusers++;
	}
	if (line != NULL) {
		explicit_bzero(line, cap);
		free(line);
	}
	if (ferror(f)) {
		conf_error(c, n, "auth-basic user file %s: %s", path,
		    strerror(errno));
		bad = 1;
	}
	fclose(f);
	if (!bad && a->nusers == 0)
		conf_error(c, n, "auth-basic user file %s has no users", path);
	if (!bad && a->nusers > 0)
		a->dummy = slowest(a);
	return (a);
}

void
auth_free(struct http_auth *a)
{
	int	i;

	if (a == NULL)
		return;
	for (i = 0; i < a->nusers; i++) {
		free(a->users[i].name);
		freezero(a->users[i].hash, strlen(a->users[i].hash));
	}
	free(a->users);
	free(a->realm);
	free(a);
}

/* A 401's challenge (RFC 7617 2): the realm, credentials in UTF-8. */
void
auth_challenge(struct http_req *req, const struct http_auth *a)
{
	http_resp_headerf(req, "WWW-Authenticate", "Basic realm=\"%s\", "
	    "charset=\"UTF-8\"", a->realm);
}

/*
 * A whole 401 with <a>'s challenge: <page> (HTML, <len> bytes) if there
 * is one, else a line of text.
 */
int
auth_refuse(struct http_req *req, const struct http_auth *a,
    const char *page, size_t len)
{
	static const char	 text[] = "401 Unauthorized\n";

	http_resp_begin(req, 401);
	auth_challenge(req, a);
	http_resp_header(req, "Content-Type", page != NULL ? "text/html" :
	    "text/plain");
	http_resp_header(req, "Cache-Control", "no-store");
	if (page == NULL) {
		page = text;
		len = sizeof(text) - 1;
	}
	http_resp_body(req, len);
	http_resp_write(req, page, len);
	return (http_resp_end(req));
}

/* A digest of what passed: the user, the password and its hash. */
static void
cache_key(const char *user, const char *pass, const char *hash,
    unsigned char key[32])
{
	EVP_MD_CTX	*ctx;
	unsigned int	 len = 32;

	if ((ctx = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(ctx, user, strlen(user) + 1) != 1 ||
	    EVP_DigestUpdate(ctx, pass, strlen(pass) + 1) != 1 ||
	    EVP_DigestUpdate(ctx, hash, strlen(hash)) != 1 ||
	    EVP_DigestFinal_ex(ctx, key, &len) != 1)
		fatalx("%s: sha256", __func__);
	EVP_MD_CTX_free(ctx);
}

static int
cache_has(const unsigned char key[32], uint64_t now)
{
	int	i;

	for (i = 0; i < AUTH_CACHE; i++)
		if (cache[i].until > now &&
		    CRYPTO_memcmp(cache[i].key, key, 32) == 0)
			return (1);
	return (0);
}

static void
cache_put(const unsigned char key[32], uint64_t now)
{
	int	i, old = 0;

	for (i = 0; i < AUTH_CACHE; i++) {
		if (cache[i].until <= now) {
			old = i;
			break;
		}
		if (cache[i].until < cache[old].until)
			old = i;
	}
	memcpy(cache[old].key, key, 32);
	cache[old].until = now + AUTH_CACHE_MS;
}

/*
 * The request's Basic credentials (RFC 7617 2), decoded into <dec>:
 * the user, a NUL, the password; NULL when there are none or they are
 * malformed (not base64, a NUL in them, no colon).
 */
static const char *
credentials(struct http_req *req, unsigned char dec[AUTH_MAXLINE])
{
	struct slice	 v = http_req_header(req, "authorization");
	char		*colon;
	size_t		 i, len;
	int		 n;

	/* "Basic" (any case), one or more spaces, base64 */
	if (v.p == NULL || v.len < 6 || strncasecmp(v.p, "basic ", 6) != 0)
		return (NULL);
	for (i = 6; i < v.len && v.p[i] == ' '; i++)
		;
	len = v.len - i;
	if (len == 0 || len % 4 != 0 || len / 4 * 3 >= AUTH_MAXLINE)
		return (NULL);
	if ((n = EVP_DecodeBlock(dec, (const unsigned char *)v.p + i,
	    (int)len)) < 0)
		return (NULL);
	/* the padding decodes to zero bytes, which the length counts */
	if (v.p[v.len - 1] == '=')
		n -= v.p[v.len - 2] == '=' ? 2 : 1;
	dec[n] = '\0';
	if (memchr(dec, '\0', n) != NULL ||
	    (colon = strchr((char *)dec, ':')) == NULL)
		return (NULL);
	*colon = '\0';
	return (colon + 1);
}

/*
 * The user name the request's credentials give, checked or not (nginx's
 * $remote_user), for the access log; 0 when there is none.
 */
int
auth_user(struct http_req *req, char *user, size_t usize)
{
	unsigned char	 dec[AUTH_MAXLINE];
	int		 ok = 0;

	/* every request's log line asks: nothing to wipe without them */
	if (!(req->msg.flags & HTTP_F_AUTH))
		return (0);
	if (credentials(req, dec) != NULL && dec[0] != '\0') {
		strlcpy(user, (char *)dec, usize);
		ok = 1;
	}
	explicit_bzero(dec, sizeof(dec));
	return (ok);
}

/* Whether the request's credentials are those of one of <a>'s users. */
int
auth_check(struct http_req *req, const struct http_auth *a)
{
	unsigned char	 dec[AUTH_MAXLINE], key[32];
	const char	*pass, *out, *user = (const char *)dec, *hash;
	uint64_t	 now = ev_monotonic_ms();
	int		 i, ok = 0;

	if ((pass = credentials(req, dec)) == NULL)
		goto done;
	for (i = 0; i < a->nusers; i++)
		if (strcmp(a->users[i].name, user) == 0)
			break;
	if (i == a->nusers) {
		/*
		 * An unknown user costs a hash too, or the time of the answer
		 * would tell which users exist
		 */
		if (a->nusers > 0)
			(void)crypt_r(pass, a->users[a->dummy].hash, &cd);
		explicit_bzero(&cd, sizeof(cd));
		goto done;
	}
	hash = a->users[i].hash;
	cache_key(user, pass, hash, key);
	if (cache_has(key, now))
		ok = 1;
	else {
		out = crypt_r(pass, hash, &cd);
		ok = out != NULL && out[0] != '*' &&
		    strlen(out) == strlen(hash) &&
		    CRYPTO_memcmp(out, hash, strlen(out)) == 0;
		explicit_bzero(&cd, sizeof(cd));
		if (ok)
			cache_put(key, now);
	}
done:
	explicit_bzero(dec, sizeof(dec));
	return (ok);
}
