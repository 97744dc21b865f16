/*
 * mime.c: Content-Type by file name extension: a built-in table, and the
 * types of a mime.types file (Debian's /etc/mime.types format: a type,
 * then its extensions) when the conf names one; the file's entries win.
 */
#include <sys/types.h>

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "webd.h"

#define MIME_BUCKETS	4096

static const char *builtin[][2] = {
	{ "html", "text/html" }, { "htm", "text/html" },
	{ "css", "text/css" }, { "txt", "text/plain" },
	{ "csv", "text/csv" }, { "md", "text/markdown" },
	{ "xml", "text/xml" }, { "js", "text/javascript" },
	{ "mjs", "text/javascript" }, { "json", "application/json" },
	{ "map", "application/json" }, { "webmanifest",
	    "application/manifest+json" },
	{ "wasm", "application/wasm" }, { "pdf", "application/pdf" },
	{ "zip", "application/zip" }, { "gz", "application/gzip" },
	{ "tar", "application/x-tar" }, { "bz2", "application/x-bzip2" },
	{ "xz", "application/x-xz" }, { "7z", "application/x-7z-compressed" },
	{ "png", "image/png" }, { "jpg", "image/jpeg" },
	{ "jpeg", "image/jpeg" }, { "gif", "image/gif" },
	{ "webp", "image/webp" }, { "avif", "image/avif" },
	{ "svg", "image/svg+xml" }, { "ico", "image/vnd.microsoft.icon" },
	{ "bmp", "image/bmp" }, { "tif", "image/tiff" },
	{ "tiff", "image/tiff" }, { "woff", "font/woff" },
	{ "woff2", "font/woff2" }, { "ttf", "font/ttf" },
	{ "otf", "font/otf" }, { "mp3", "audio/mpeg" },
	{ "ogg", "audio/ogg" }, { "wav", "audio/wav" },
	{ "flac", "audio/flac" }, { "mp4", "video/mp4" },
	{ "webm", "video/webm" }, { "ogv", "video/ogg" },
	{ "m3u8", "application/vnd.apple.mpegurl" },
	{ "rss", "application/rss+xml" }, { "atom", "application/atom+xml" },
	{ "ics", "text/calendar" }, { "wav", "audio/wav" },
	{ "doc", "application/msword" }, { "rtf", "application/rtf" },
	{ "iso", "application/x-iso9660-image" },
	{ "bin", "application/octet-stream" },
	{ "exe", "application/octet-stream" },
};

struct mime {
	char		*ext;
	char		*type;
	struct mime	*next;
};

struct mime_table {
	struct mime	*b[MIME_BUCKETS];
};

static unsigned
hash(const char *s)
{
	unsigned	h = 5381;

	for (; *s; s++)
		h = h * 33 + tolower((unsigned char)*s);
	return (h % MIME_BUCKETS);
}

static void
add(struct mime_table *t, const char *ext, const char *type)
{
	struct mime	*m;
	unsigned	 h = hash(ext);

	for (m = t->b[h]; m != NULL; m = m->next)
		if (strcasecmp(m->ext, ext) == 0) {
			free(m->type);
			if ((m->type = strdup(type)) == NULL)
				fatal("%s", __func__);
			return;
		}
	if ((m = calloc(1, sizeof(*m))) == NULL ||
	    (m->ext = strdup(ext)) == NULL || (m->type = strdup(type)) == NULL)
		fatal("%s", __func__);
	m->next = t->b[h];
	t->b[h] = m;
}

void
mime_free(struct mime_table *t)
{
	struct mime	*m, *n;
	int		 i;

	if (t == NULL)
		return;
	for (i = 0; i < MIME_BUCKETS; i++)
		for (m = t->b[i]; m != NULL; m = n) {
			n = m->next;
			free(m->ext);
			free(m->type);
			free(m);
		}
	free(t);
}

/* A table: the built-in types, then <path>'s.  NULL with <err> on errors. */
struct mime_table *
mime_load(const char *path, char *err, size_t errlen)
{
	struct mime_table	*t;
	FILE			*fp;
	char			*line = NULL, *p, *type, *ext;
	size_t			 cap = 0, i;
	int			 lineno = 0;

	if ((t = calloc(1, sizeof(*t))) == NULL)
		fatal("%s", __func__);
	for (i = 0; i < nitems(builtin); i++)
		add(t, builtin[i][0], builtin[i][1]);
	if (path == NULL)
		return (t);
	if ((fp = fopen(path, "r")) == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		mime_free(t);
		return (NULL);
	}
	while (getline(&line, &cap, fp) != -1) {
		lineno++;
		if ((p = strchr(line, '#')) != NULL)
			*p = '\0';
		p = line;
		if ((type = strsep(&p, " \t\r\n")) == NULL || *type == '\0')
			continue;
		if (strchr(type, '/') == NULL) {
			snprintf(err, errlen, "%s:%d: \"%s\" is not a type",
			    path, lineno, type);
			free(line);
			fclose(fp);
			mime_free(t);
			return (NULL);
		}
		while ((ext = strsep(&p, " \t\r\n;")) != NULL)
			if (*ext != '\0')
				add(t, ext, type);
	}
	free(line);
	fclose(fp);
	return (t);
}

const char *
mime_type(const struct mime_table *t, const char *name)
{
	const char	*dot = strrchr(name, '.'), *slash = strrchr(name, '/');
	struct mime	*m;

	if (dot == NULL || (slash != NULL && dot < slash) || dot[1] == '\0')
		return (WEBD_MIME_DEFAULT);
	for (m = t->b[hash(dot + 1)]; m != NULL; m = m->next)
		if (strcasecmp(m->ext, dot + 1) == 0)
			return (m->type);
	return (WEBD_MIME_DEFAULT);
}
