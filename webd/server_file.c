/*
 * server_file.c: static files.
 *
 * Safety: the target reaches us decoded and normalized by common/ (no
 * "..", no "%2F", no NUL, valid UTF-8), and every file is opened with
 * openat2(2) beneath the location's root directory descriptor, which
 * the master opened: RESOLVE_BENEATH refuses any path -- a symlink
 * included -- that would resolve outside it, unless "symlinks yes"
 * allows links out.  So a request can never leave the root, also when
 * the workers do not run chrooted (with a chroot, the root descriptors
 * still work from inside it).  Names starting with "." are hidden unless
 * "dotfiles yes" (/.well-known/ always shows).
 *
 * Conditional requests follow RFC 9110 section 13.2.2: If-Match, then
 * If-Unmodified-Since, then If-None-Match, then If-Modified-Since, then
 * If-Range.  Ranges: one range gives 206; several give
 * multipart/byteranges, unless there are more than WEBD_MAXRANGES or they
 * overlap (then the whole file, 200); none satisfiable gives 416.
 */
#include <sys/types.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include <linux/openat2.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "webd.h"

struct range {
	uint64_t	start;
	uint64_t	end;		/* inclusive */
};

/* A multipart/byteranges body in progress, written as room allows. */
struct multipart {
	int		 fd;
	struct range	 r[WEBD_MAXRANGES];
	int		 nr;
	int		 cur;		/* part being written */
	int		 phase;		/* 0 part head, 1 data, 2 closing */
	uint64_t	 off;		/* in the current part's data */
	char		 boundary[40];
	char		 type[160];
	uint64_t	 size;
	struct buf	 pend;		/* bytes not yet taken */
};

/*
 * Open <rel> (relative, no leading "/") beneath <l>'s root.  Returns the
 * descriptor or -1 with errno (EXDEV for a path that would leave it).
 */
int
file_open_beneath(struct webd_loc *l, const char *rel, int flags)
{
	struct open_how	how;
	long		fd;

	if (l->rootfd == -1) {
		errno = ENOENT;
		return (-1);
	}
	if (*rel == '\0')
		rel = ".";
	memset(&how, 0, sizeof(how));
	/* O_NONBLOCK: opening a FIFO must not wait for its writer */
	how.flags = flags | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
	how.resolve = RESOLVE_NO_MAGICLINKS;
	if (!l->symlinks)
		how.resolve |= RESOLVE_BENEATH;
	do {
		fd = syscall(SYS_openat2, l->rootfd, rel, &how, sizeof(how));
	} while (fd == -1 && errno == EINTR);
	return ((int)fd);
}

static int
open_error(struct http_req *req, struct webd_server *s, struct webd_loc *l,
    const char *rel)
{
	switch (errno) {
	case ENOENT:
	case ENOTDIR:
	case ENAMETOOLONG:
		return (server_error(req, s, l, 404));
	case EXDEV:
	case ELOOP:
		log_info("%s: refused %s: it leads out of the root",
		    s->name, rel);
		return (server_error(req, s, l, 404));
	case EACCES:
	case EPERM:
		return (server_error(req, s, l, 403));
	default:
		log_warn("%s: open %s", s->name, rel);
		return (server_error(req, s, l, 500));
	}
}

static int
hidden(const char *path)
{
	const char	*p = path;

	while ((p = strstr(p, "/.")) != NULL) {
		if (strncmp(p, "/.well-known/", 13) != 0 &&
		    strcmp(p, "/.well-known") != 0)
			return (1);
		p += 2;
	}
	return (0);
}

static void
make_etag(const struct stat *st, char *buf, size_t size)
{
	snprintf(buf, size, "\"%llx-%llx-%llx\"",
	    (unsigned long long)st->st_ino, (unsigned long long)st->st_size,
	    (unsigned long long)st->st_mtim.tv_sec * 1000 +
	    st->st_mtim.tv_nsec / 1000000);
}

/*
 * Does the If-Match / If-None-Match list <v> match <etag>?  Strong
 * comparison for If-Match, weak for If-None-Match; "*" matches.
 */
static int
etag_match(struct slice v, const char *etag, int weak)
{
	const char	*p = v.p, *end = v.p + v.len;
	size_t		 el = strlen(etag);

	while (p < end) {
		const char	*q;
		int		 isweak = 0;

		while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
			p++;
		if (p >= end)
			break;
		if (*p == '*')
			return (1);
		if (end - p > 2 && p[0] == 'W' && p[1] == '/') {
			isweak = 1;
			p += 2;
		}
		if (*p != '"')
			return (0);	/* malformed: no match */
		q = memchr(p + 1, '"', end - p - 1);
		if (q == NULL)
			return (0);
		if ((size_t)(q - p + 1) == el && memcmp(p, etag, el) == 0 &&
		    (weak || !isweak))
			return (1);
		p = q + 1;
	}
	return (0);
}

/* etag_match() over every line of the field <name>. */
static int
etag_fields_match(struct http_req *req, const char *name, const char *etag,
    int weak)
{
	struct slice	v;
	int		i = -1;

	while ((v = http_req_header_next(req, name, &i)).p != NULL)
		if (etag_match(v, etag, weak))
			return (1);
	return (0);
}

/* Whether what follows a coding in Accept-Encoding is a weight of 0. */
static int
weight_zero(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	if (p == end || *p++ != ';')
		return (0);
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	if (end - p < 3 || (*p != 'q' && *p != 'Q') || p[1] != '=' ||
	    p[2] != '0')
		return (0);
	for (p += 3; p < end; p++)
		if (*p != '.' && *p != '0')
			return (0);
	return (1);
}

/*
 * Does the client take gzip (RFC 9110 12.5.3)?  Named with a weight
 * above 0 on any Accept-Encoding line, or else taken by a "*" of such a
 * weight; "gzip;q=0" refuses it whatever "*" says.
 */
static int
accepts_gzip(struct http_req *req)
{
	struct slice	ae, v, el;
	int		i = -1, star = 0;

	while ((ae = http_req_header_next(req, "accept-encoding", &i)).p !=
	    NULL) {
		v = ae;
		while (v.len > 0) {
			const char	*c = memchr(v.p, ',', v.len);
			size_t		 n = c != NULL ? (size_t)(c - v.p) :
					    v.len, name;

			el = slice_trim(slice_make(v.p, n));
			v.p += c != NULL ? n + 1 : n;
			v.len -= c != NULL ? n + 1 : n;
			for (name = 0; name < el.len && el.p[name] != ';' &&
			    el.p[name] != ' ' && el.p[name] != '\t'; name++)
				;
			if (name == 4 && strncasecmp(el.p, "gzip", 4) == 0)
				return (!weight_zero(el.p + 4,
				    el.p + el.len));
			if (name == 1 && el.p[0] == '*')
				star = weight_zero(el.p + 1, el.p + el.len) ?
				    -1 : 1;
		}
	}
	return (star == 1);
}

/*
 * Parse "bytes=..." against <size>.  Returns the number of satisfiable
 * ranges (0: none, 416), -1 to ignore the field (malformed), -2 when
 * there are too many or they overlap (serve the whole file).
 */
static int
range_parse(struct slice v, uint64_t size, struct range *r)
{
	const char	*p = v.p, *end = v.p + v.len;
	int		 n = 0, total = 0, i, j;

	if (v.len < 6 || strncasecmp(p, "bytes=", 6) != 0)
		return (-1);
	p += 6;
	while (p < end) {
		uint64_t	a = 0, b = 0;
		int		ha = 0, hb = 0;

		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		if (p < end && *p == ',') {
			p++;		/* an empty element (RFC 9110 5.6.1) */
			continue;
		}
		if (p == end)
			break;
		while (p < end && isdigit((unsigned char)*p)) {
			/* past any file's size: as large as can be */
			a = a > (UINT64_MAX - 9) / 10 ? UINT64_MAX :
			    a * 10 + (*p - '0');
			p++;
			ha = 1;
		}
		if (p >= end || *p != '-')
			return (-1);
		p++;
		while (p < end && isdigit((unsigned char)*p)) {
			/* past any file's size: as large as can be */
			b = b > (UINT64_MAX - 9) / 10 ? UINT64_MAX :
			    b * 10 + (*p - '0');
			p++;
			hb = 1;
		}
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		if (p < end && *p != ',')
			return (-1);
		if (p < end)
			p++;
		if (!ha && !hb)
			return (-1);
		if (ha && hb && b < a)
			return (-1);
		if (++total > WEBD_MAXRANGES)
			return (-2);
		if (!ha) {
			/* suffix: the last b bytes */
			if (b == 0 || size == 0)
				continue;
			r[n].start = b >= size ? 0 : size - b;
			r[n].end = size - 1;
		} else {
			if (a >= size)
				continue;	/* not satisfiable */
			r[n].start = a;
			r[n].end = (!hb || b >= size) ? size - 1 : b;
		}
		n++;
	}
	if (total == 0)
		return (-1);
	for (i = 0; i < n; i++)
		for (j = i + 1; j < n; j++)
			if (r[i].start <= r[j].end && r[j].start <= r[i].end)
				return (-2);
	return (n);
}

/* The Content-Type of <name> in <l>: its type, and charset for text. */
void
file_content_type(struct webd_loc *l, const char *name, char *buf,
    size_t size)
{
	const char	*t = mime_type(l->srv->wc->mime, name);

	if (strncmp(t, "text/", 5) == 0 && l->charset != NULL &&
	    l->charset[0] != '\0')
		snprintf(buf, size, "%s; charset=%s", t, l->charset);
	else
		snprintf(buf, size, "%s", t);
}

/* Validators and caching fields shared by 200, 206 and 304. */
static void
validators(struct http_req *req, struct webd_server *s, struct webd_loc *l,
    const char *etag, const char *lm, int vary)
{
	http_resp_header(req, "Last-Modified", lm);
	http_resp_header(req, "ETag", etag);
	if (vary)
		http_resp_header(req, "Vary", "Accept-Encoding");
	server_cache_headers(req, l);
	server_headers(req, s, l);
}

static void
mp_free(struct multipart *mp)
{
	if (mp == NULL)
		return;
	if (mp->fd != -1)
		close(mp->fd);
	buf_free(&mp->pend);
	free(mp);
}

/* Write as much of a multipart body as the engine takes. */
static void
mp_run(struct http_req *req)
{
	struct multipart	*mp = ((struct wreq *)req->ud)->mp;
	char			 data[16384];

	for (;;) {
		size_t	n;

		while (buf_used(&mp->pend) > 0) {
			n = http_resp_write(req, buf_head(&mp->pend),
			    buf_used(&mp->pend));
			if (n == 0)
				return;
			buf_consume(&mp->pend, n);
		}
		if (mp->cur >= mp->nr) {
			if (mp->phase != 3) {
				buf_printf(&mp->pend, "--%s--\r\n",
				    mp->boundary);
				mp->phase = 3;
				continue;
			}
			http_resp_end(req);
			return;
		}
		if (mp->phase == 0) {
			buf_printf(&mp->pend, "--%s\r\nContent-Type: %s\r\n"
			    "Content-Range: bytes %llu-%llu/%llu\r\n\r\n",
			    mp->boundary, mp->type,
			    (unsigned long long)mp->r[mp->cur].start,
			    (unsigned long long)mp->r[mp->cur].end,
			    (unsigned long long)mp->size);
			mp->phase = 1;
			mp->off = 0;
			continue;
		}
		if (mp->phase == 1) {
			uint64_t	left = mp->r[mp->cur].end -
				    mp->r[mp->cur].start + 1 - mp->off;
			ssize_t		r;

			if (left == 0) {
				buf_append(&mp->pend, "\r\n", 2);
				mp->phase = 0;
				mp->cur++;
				continue;
			}
			r = pread(mp->fd, data, left < sizeof(data) ? left :
			    sizeof(data), mp->r[mp->cur].start + mp->off);
			if (r <= 0) {
				http_resp_error(req, 500);
				return;
			}
			mp->off += r;
			buf_append(&mp->pend, data, r);
		}
	}
}

static uint64_t
mp_length(struct multipart *mp)
{
	uint64_t	len = 0;
	char		tmp[512];
	int		i;

	for (i = 0; i < mp->nr; i++) {
		len += snprintf(tmp, sizeof(tmp), "--%s\r\nContent-Type: %s\r\n"
		    "Content-Range: bytes %llu-%llu/%llu\r\n\r\n",
		    mp->boundary, mp->type, (unsigned long long)mp->r[i].start,
		    (unsigned long long)mp->r[i].end,
		    (unsigned long long)mp->size);
		len += mp->r[i].end - mp->r[i].start + 1 + 2;
	}
	return (len + strlen(mp->boundary) + 6);
}

/* Continue a multipart body (from webd's drain). */
void
file_drain(struct http_req *req)
{
	struct wreq	*w = req->ud;

	if (w->mp != NULL)
		mp_run(req);
}

void
file_free(struct wreq *w)
{
	mp_free(w->mp);
	w->mp = NULL;
}

/*
 * Answer with the regular file <fd> (<name> gives its type).  Takes the
 * descriptor.
 */
static void
serve(struct http_req *req, struct webd_server *s, struct webd_loc *l,
    int fd, struct stat *st, const char *name, const char *rel)
{
	char		 etag[80], lm[40], type[160], crange[96];
	struct slice	 v;
	struct range	 r[WEBD_MAXRANGES];
	time_t		 t;
	int		 nr = -1, vary = 0, gz = 0, get = 1;
	uint64_t	 size;

	if (req->msg.method == HTTP_M_HEAD)
		get = 0;
	file_content_type(l, name, type, sizeof(type));
	/* a precompressed sibling for clients that take gzip */
	if (l->gzip_static) {
		char		 gzrel[HTTP_MAXPATH + 4];
		struct stat	 gst;
		int		 gfd;

		snprintf(gzrel, sizeof(gzrel), "%s.gz", *rel ? rel : ".");
		vary = 1;
		if (accepts_gzip(req) &&
		    (gfd = file_open_beneath(l, gzrel, O_RDONLY)) != -1) {
			if (fstat(gfd, &gst) == 0 && S_ISREG(gst.st_mode)) {
				close(fd);
				fd = gfd;
				*st = gst;
				gz = 1;
			} else
				close(gfd);
		}
	}
	size = st->st_size;
	make_etag(st, etag, sizeof(etag));
	http_date_fmt(st->st_mtim.tv_sec, lm, sizeof(lm));

	/* RFC 9110 section 13.2.2: the order of preconditions */
	if (http_req_header(req, "if-match").p != NULL) {
		if (!etag_fields_match(req, "if-match", etag, 0))
			goto precondition_failed;
	} else if ((v = http_req_header(req, "if-unmodified-since")).p !=
	    NULL && (t = http_date_parse(v.p, v.len)) != -1) {
		if (st->st_mtim.tv_sec > t)
			goto precondition_failed;
	}
	if (http_req_header(req, "if-none-match").p != NULL) {
		if (etag_fields_match(req, "if-none-match", etag, 1))
			goto not_modified;
	} else if ((v = http_req_header(req, "if-modified-since")).p != NULL &&
	    (t = http_date_parse(v.p, v.len)) != -1) {
		if (st->st_mtim.tv_sec <= t)
			goto not_modified;
	}
	if (get && (v = http_req_header(req, "range")).p != NULL) {
		struct slice	ir = http_req_header(req, "if-range");
		int		use = 1;

		if (ir.p != NULL) {
			if (ir.len > 0 && (ir.p[0] == '"' ||
			    (ir.len > 2 && ir.p[0] == 'W' && ir.p[1] == '/')))
				use = ir.p[0] == '"' && etag_match(ir, etag, 0);
			else
				/*
				 * A date validates only when it is strong:
				 * the file changed at least a second before
				 * now (RFC 9110 8.8.2.2, 13.1.5).
				 */
				use = (t = http_date_parse(ir.p, ir.len)) !=
				    -1 && t == st->st_mtim.tv_sec &&
				    st->st_mtim.tv_sec < time(NULL);
		}
		if (use)
			nr = range_parse(v, size, r);
	}
	if (nr == 0) {
		close(fd);
		http_resp_begin(req, 416);
		snprintf(crange, sizeof(crange), "bytes */%llu",
		    (unsigned long long)size);
		http_resp_header(req, "Content-Range", crange);
		server_headers(req, s, l);
		http_resp_body(req, 0);
		http_resp_end(req);
		return;
	}
	if (nr == 1) {
		uint64_t	len = r[0].end - r[0].start + 1;

		http_resp_begin(req, 206);
		http_resp_header(req, "Content-Type", type);
		if (gz)
			http_resp_header(req, "Content-Encoding", "gzip");
		snprintf(crange, sizeof(crange), "bytes %llu-%llu/%llu",
		    (unsigned long long)r[0].start,
		    (unsigned long long)r[0].end, (unsigned long long)size);
		http_resp_header(req, "Content-Range", crange);
		validators(req, s, l, etag, lm, vary);
		http_resp_body(req, len);
		http_resp_file(req, fd, r[0].start, len);
		http_resp_end(req);
		return;
	}
	if (nr > 1) {
		struct wreq		*w = req->ud;
		struct multipart	*mp;
		uint32_t		 rnd[2];

		if ((mp = calloc(1, sizeof(*mp))) == NULL) {
			close(fd);
			server_error(req, s, l, 500);
			return;
		}
		mp->fd = fd;
		memcpy(mp->r, r, nr * sizeof(*r));
		mp->nr = nr;
		mp->size = size;
		arc4random_buf(rnd, sizeof(rnd));
		snprintf(mp->boundary, sizeof(mp->boundary), "webd%08x%08x",
		    rnd[0], rnd[1]);
		snprintf(mp->type, sizeof(mp->type), "%s", type);
		buf_init(&mp->pend, 64 * 1024);
		w->mp = mp;
		http_resp_begin(req, 206);
		http_resp_headerf(req, "Content-Type",
		    "multipart/byteranges; boundary=%s", mp->boundary);
		if (gz)
			http_resp_header(req, "Content-Encoding", "gzip");
		validators(req, s, l, etag, lm, vary);
		http_resp_body(req, mp_length(mp));
		mp_run(req);
		return;
	}

	/* the whole file */
	http_resp_begin(req, 200);
	http_resp_header(req, "Content-Type", type);
	if (gz)
		http_resp_header(req, "Content-Encoding", "gzip");
	http_resp_header(req, "Accept-Ranges", "bytes");
	validators(req, s, l, etag, lm, vary);
	http_resp_body(req, size);
	if (!get || size == 0) {
		close(fd);
	} else if (size <= WEBD_INLINE_MAX) {
		/* small: into the output with the head, one write */
		char	data[WEBD_INLINE_MAX];
		ssize_t	n = pread(fd, data, size, 0);

		close(fd);
		if (n != (ssize_t)size) {
			http_resp_error(req, 500);
			return;
		}
		http_resp_write(req, data, n);
	} else
		http_resp_file(req, fd, 0, size);
	http_resp_end(req);
	return;

 not_modified:
	close(fd);
	http_resp_begin(req, 304);
	validators(req, s, l, etag, lm, vary);
	http_resp_body(req, 0);
	http_resp_end(req);
	return;
 precondition_failed:
	close(fd);
	server_error(req, s, l, 412);
}

static void
redirect_slash(struct http_req *req, struct webd_server *s,
    struct webd_loc *l, struct http_target *t)
{
	static const char	msg[] = "moved\n";
	char			loc[3 * HTTP_MAXPATH + 1];
	size_t			i, o = 0;

	/* re-encode what must be in a URL path (room for all of it) */
	for (i = 0; i < t->pathlen && o + 4 <= sizeof(loc); i++) {
		unsigned char	c = t->path[i];

		if (c <= 0x20 || c >= 0x7f || c == '"' || c == '%' ||
		    c == '?' || c == '#' || c == '<' || c == '>' ||
		    c == '\\') {
			o += snprintf(loc + o, sizeof(loc) - o, "%%%02X", c);
			continue;
		}
		loc[o++] = c;
	}
	loc[o] = '\0';
	http_resp_begin(req, 301);
	if (t->had_query)
		http_resp_headerf(req, "Location", "%s/?%.*s", loc,
		    (int)t->querylen, t->query);
	else
		http_resp_headerf(req, "Location", "%s/", loc);
	http_resp_header(req, "Content-Type", "text/plain");
	server_headers(req, s, l);
	http_resp_body(req, sizeof(msg) - 1);
	http_resp_write(req, msg, sizeof(msg) - 1);
	http_resp_end(req);
}

/*
 * The path of the request relative to <l>'s root descriptor; NULL when
 * it names nothing there: with location "/static" and an alias, the path
 * "/static.git/config" or "/static../x" continues the location's name,
 * not its folder (nginx's "off-by-slash" leak: beside the folder, or
 * above it).
 */
static const char *
relpath(struct webd_loc *l, const char *path, char *buf, size_t size)
{
	if (l->alias != NULL) {
		const char	*rest = path + l->pathlen;

		if (l->pathlen > 0 && l->path[l->pathlen - 1] != '/' &&
		    *rest != '\0' && *rest != '/')
			return (NULL);
		while (*rest == '/')
			rest++;
		snprintf(buf, size, "%s", rest);
	} else {
		while (*path == '/')
			path++;
		snprintf(buf, size, "%s", path);
	}
	return (buf);
}

/* Open <rel> as a regular file, or a directory with an index. */
static int
try_open(struct webd_loc *l, const char *rel, struct stat *st, int *isdir)
{
	int	fd;

	*isdir = 0;
	if ((fd = file_open_beneath(l, rel, O_RDONLY)) == -1)
		return (-1);
	if (fstat(fd, st) == -1) {
		close(fd);
		return (-1);
	}
	if (S_ISDIR(st->st_mode))
		*isdir = 1;
	else if (!S_ISREG(st->st_mode)) {
		close(fd);
		errno = EACCES;
		return (-1);
	}
	return (fd);
}

/*
 * A file found in <l> for another path than the request's (a try-files
 * candidate, an index file), <path> then <suffix>: that path's own
 * location must let the request through too, or location "/" with
 * "$uri/index.html" would hand out /admin/index.html for "/admin", past
 * location "/admin/"'s guards.  A path whose location does not serve
 * files (a proxy, a return) is not served as a file here: index.php
 * under "*.php" is the app's, not a text to send.  Returns 0 to serve
 * it, 1 to pass it over, -1 when it answered (403, 401, 414).
 */
static int
try_guard(struct http_req *req, struct webd_server *s, struct webd_loc *l,
    const char *path, const char *suffix)
{
	char		 p[HTTP_MAXPATH + 128];
	struct webd_loc	*cl;
	int		 len;

	len = snprintf(p, sizeof(p), "%s%s", path, suffix);
	if (len < 0 || (size_t)len >= sizeof(p)) {
		server_error(req, s, l, 414);
		return (-1);
	}
	cl = location_find(s, p, len);
	if (cl == l && !l->glob)
		return (0);
	if (cl != l && (cl->proxy != NULL || cl->ret_status != 0))
		return (1);
	return (server_guard(req, s, cl, p, len));
}

/*
 * The path a try-files entry from the root names: under an alias, the
 * alias folder stands for the location's path.
 */
static int
try_guard_root(struct http_req *req, struct webd_server *s,
    struct webd_loc *l, const char *e)
{
	if (l->alias == NULL)
		return (try_guard(req, s, l, e, ""));
	if (l->pathlen > 0 && l->path[l->pathlen - 1] == '/')
		return (try_guard(req, s, l, l->path, e + 1));
	return (try_guard(req, s, l, l->path, e));
}

void
server_file(struct http_req *req, struct webd_server *s, struct webd_loc *l,
    struct http_target *t)
{
	struct stat	 st;
	char		 rel[HTTP_MAXPATH + 128], irel[HTTP_MAXPATH + 128];
	const char	*name;
	int		 fd, isdir, i, g;

	/*
	 * try-files ending in "@upstream": what no file answers goes to the
	 * app, also what files never answer (other methods, hidden names)
	 */
	if (l->try_proxy != NULL && ((req->msg.method != HTTP_M_GET &&
	    req->msg.method != HTTP_M_HEAD) || (!l->dotfiles &&
	    hidden(t->path)) || l->rootfd == -1)) {
		server_proxy(req, s, l, l->try_proxy, t);
		return;
	}
	if (req->msg.method != HTTP_M_GET && req->msg.method != HTTP_M_HEAD) {
		http_resp_begin(req, 405);
		http_resp_header(req, "Allow", "GET, HEAD");
		http_resp_header(req, "Content-Type", "text/plain");
		server_headers(req, s, l);
		http_resp_body(req, 23);
		http_resp_write(req, "405 Method Not Allowed\n", 23);
		http_resp_end(req);
		return;
	}
	if (!l->dotfiles && hidden(t->path)) {
		server_error(req, s, l, 404);
		return;
	}
	if (l->rootfd == -1) {
		server_error(req, s, l, 404);
		return;
	}
	if (relpath(l, t->path, rel, sizeof(rel)) == NULL) {
		server_error(req, s, l, 404);
		return;
	}

	if (l->ntry > 0) {
		/* try-files: the first that exists answers */
		for (i = 0; i < l->ntry; i++) {
			const char	*e = l->try[i];

			if (e[0] == '=') {	/* checked by the parser */
				server_error(req, s, l, atoi(e + 1));
				return;
			}
			if (e[0] == '@') {
				server_proxy(req, s, l, l->try_proxy, t);
				return;
			}
			if (strcmp(e, "$uri") == 0) {
				fd = try_open(l, rel, &st, &isdir);
				if (fd != -1 && !isdir) {
					name = t->path;
					goto regular;
				}
				if (fd != -1)
					close(fd);
				continue;
			}
			if (strcmp(e, "$uri/") == 0) {
				fd = try_open(l, rel, &st, &isdir);
				if (fd != -1 && isdir)
					goto directory;
				if (fd != -1)
					close(fd);
				continue;
			}
			if (strncmp(e, "$uri", 4) == 0) {
				/* "$uri.html", "$uri/index.html": a file */
				if ((size_t)snprintf(irel, sizeof(irel), "%s%s",
				    t->path, e + 4) >= sizeof(irel))
					continue;
				/* "/" and ".html" make a dotfile: as hidden */
				if (!l->dotfiles && hidden(irel))
					continue;
				if ((size_t)snprintf(irel, sizeof(irel), "%s%s",
				    rel, e + 4) >= sizeof(irel))
					continue;
				fd = try_open(l, irel, &st, &isdir);
				if (fd != -1 && !isdir &&
				    (g = try_guard(req, s, l, t->path,
				    e + 4)) != 1) {
					if (g == -1) {
						close(fd);
						return;
					}
					snprintf(rel, sizeof(rel), "%s", irel);
					name = rel;
					goto regular;
				}
				if (fd != -1)
					close(fd);
				continue;
			}
			/* a path from the root */
			fd = try_open(l, e + 1, &st, &isdir);
			if (fd != -1 && !isdir &&
			    (g = try_guard_root(req, s, l, e)) != 1) {
				if (g == -1) {
					close(fd);
					return;
				}
				name = e;
				snprintf(rel, sizeof(rel), "%s", e + 1);
				goto regular;
			}
			if (fd != -1)
				close(fd);
		}
		server_error(req, s, l, 404);
		return;
	}
	if ((fd = try_open(l, rel, &st, &isdir)) == -1) {
		open_error(req, s, l, rel);
		return;
	}
	name = t->path;
	if (!isdir)
		goto regular;
 directory:
	if (t->pathlen == 0 || t->path[t->pathlen - 1] != '/') {
		close(fd);
		redirect_slash(req, s, l, t);
		return;
	}
	for (i = 0; i < l->nindex; i++) {
		int	ifd;

		if ((size_t)snprintf(irel, sizeof(irel), "%s%s%s", rel,
		    *rel && rel[strlen(rel) - 1] != '/' ? "/" : "",
		    l->index[i]) >= sizeof(irel))
			continue;
		ifd = try_open(l, irel, &st, &isdir);
		if (ifd == -1)
			continue;
		if (isdir || (g = try_guard(req, s, l, t->path,
		    l->index[i])) == 1) {
			close(ifd);
			continue;
		}
		if (g == -1) {
			close(ifd);
			close(fd);
			return;
		}
		close(fd);
		if (strlcpy(rel, irel, sizeof(rel)) >= sizeof(rel)) {
			close(ifd);
			server_error(req, s, l, 414);
			return;
		}
		serve(req, s, l, ifd, &st, l->index[i], rel);
		return;
	}
	if (l->autoindex) {
		server_autoindex(req, s, l, fd, t->path);
		return;
	}
	close(fd);
	server_error(req, s, l, 403);
	return;
 regular:
	serve(req, s, l, fd, &st, name, rel);
}
