/*
 * autoindex.c: an HTML listing of a directory without an index file
 * ("autoindex yes").  Names are HTML-escaped in the text and
 * percent-encoded in the links; hidden names stay hidden unless
 * "dotfiles yes"; at most WEBD_AUTOINDEX_MAX entries (the first the
 * directory gives, then sorted) and AUTOINDEX_BYTES are listed.
 */
#include <sys/types.h>
#include <sys/stat.h>

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "webd.h"

/* a listing's most bytes: rows that would not fit are left out */
#define AUTOINDEX_BYTES		(16 * 1024 * 1024)

struct entry {
	char		*name;
	int		 dir;
	off_t		 size;
	time_t		 mtime;
};

static int
entcmp(const void *a, const void *b)
{
	const struct entry	*x = a, *y = b;

	if (x->dir != y->dir)
		return (y->dir - x->dir);
	return (strcmp(x->name, y->name));
}

static void
html(struct buf *b, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '&':
			buf_append(b, "&amp;", 5);
			break;
		case '<':
			buf_append(b, "&lt;", 4);
			break;
		case '>':
			buf_append(b, "&gt;", 4);
			break;
		case '"':
			buf_append(b, "&quot;", 6);
			break;
		case '\'':
			buf_append(b, "&#39;", 5);
			break;
		default:
			buf_putc(b, *s);
		}
	}
}

/*
 * A name as a relative reference.  ':' is encoded: a first segment with
 * a colon reads as a scheme (RFC 3986 4.2), and a file named
 * "javascript:alert(1)" would be a link that runs script.
 */
static void
url(struct buf *b, const char *s)
{
	for (; *s; s++) {
		unsigned char	c = *s;

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || strchr("-._~!$()*,;=@", c))
			buf_putc(b, c);
		else
			buf_printf(b, "%%%02X", c);
	}
}

/* Takes <fd>, the directory. */
void
server_autoindex(struct http_req *req, struct webd_server *s,
    struct webd_loc *l, int fd, const char *path)
{
	struct entry	*ents = NULL;
	struct dirent	*de;
	struct buf	*b;
	DIR		*d;
	size_t		 n = 0, cap = 0, i;
	int		 truncated = 0;

	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		server_error(req, s, l, 500);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		struct stat	st;

		if (de->d_name[0] == '.' && (!l->dotfiles ||
		    strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0))
			continue;
		if (n >= WEBD_AUTOINDEX_MAX) {
			truncated = 1;
			break;
		}
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) ==
		    -1)
			continue;
		if (n == cap) {
			struct entry	*ne;

			cap = cap ? cap * 2 : 64;
			if ((ne = reallocarray(ents, cap, sizeof(*ne))) ==
			    NULL)
				break;
			ents = ne;
		}
		if ((ents[n].name = strdup(de->d_name)) == NULL)
			break;
		ents[n].dir = S_ISDIR(st.st_mode);
		ents[n].size = st.st_size;
		ents[n].mtime = st.st_mtime;
		n++;
	}
	closedir(d);
	qsort(ents, n, sizeof(*ents), entcmp);
	if ((b = calloc(1, sizeof(*b))) == NULL) {
		for (i = 0; i < n; i++)
			free(ents[i].name);
		free(ents);
		server_error(req, s, l, 500);
		return;
	}
	buf_init(b, AUTOINDEX_BYTES);
	buf_printf(b, "<!doctype html>\n<html><head><meta charset=\"utf-8\">"
	    "<title>Index of ");
	html(b, path);
	buf_printf(b, "</title></head>\n<body><h1>Index of ");
	html(b, path);
	buf_printf(b, "</h1><hr><pre>\n<a href=\"../\">../</a>\n");
	for (i = 0; i < n; i++) {
		char		date[32];
		struct tm	tm;
		size_t		nl = strlen(ents[i].name);

		/* the most a row can take (every byte escaped), and the end */
		if (buf_used(b) + 9 * nl + 160 + 512 > AUTOINDEX_BYTES) {
			truncated = 1;
			for (; i < n; i++)
				free(ents[i].name);
			break;
		}
		gmtime_r(&ents[i].mtime, &tm);
		strftime(date, sizeof(date), "%d-%b-%Y %H:%M", &tm);
		buf_printf(b, "<a href=\"");
		url(b, ents[i].name);
		if (ents[i].dir)
			buf_putc(b, '/');
		buf_printf(b, "\">");
		html(b, ents[i].name);
		if (ents[i].dir)
			buf_putc(b, '/');
		buf_printf(b, "</a>  %s  ", date);
		if (ents[i].dir)
			buf_printf(b, "-\n");
		else
			buf_printf(b, "%lld\n", (long long)ents[i].size);
		free(ents[i].name);
	}
	free(ents);
	if (truncated)
		buf_printf(b, "(too many entries: only some of them are "
		    "shown)\n");
	buf_printf(b, "</pre><hr></body></html>\n");
	server_send(req, l, 200, "text/html; charset=utf-8", b);
}
