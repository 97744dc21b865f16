/*
 * stats.c: the shared-memory statistics segment.
 *
 * Layout: a header, the family table, then metric records allocated by
 * bumping <used>.  A record's values follow its header: one counter, or
 * STATS_SLOTS gauge cells, or nbuckets + 3 histogram cells (buckets,
 * +Inf, count, sum as the bits of a double).  Records of one family are
 * chained by offset, in creation order, which is the rendering order.
 * Creation takes a spin lock in the segment; updates are lock-free.
 */
#include <sys/types.h>
#include <sys/mman.h>

#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "shm.h"
#include "stats.h"

#define STATS_MAGIC	0x53544154u

struct stats_family {
	char		name[STATS_NAMELEN];
	char		help[STATS_HELPLEN];
	int		type;
	int		nbuckets;
	double		bounds[STATS_MAXBUCKETS];
	uint32_t	first;		/* offset of the first record */
	uint32_t	last;
	uint32_t	freelist;	/* records to reuse (stats_collect) */
};

struct stats_metric {
	uint32_t		family;
	uint32_t		next;	/* offset of the next record, 0 */
	_Atomic uint32_t	gen;	/* the last conf generation asking */
	uint32_t		isfree;	/* on its family's free list */
	uint32_t		nextfree;
	char			labels[STATS_LABELLEN];
	_Atomic uint64_t	v[];
};

struct stats_hdr {
	uint32_t		magic;
	uint32_t		size;
	_Atomic uint32_t	used;
	shm_lock_t		lock;	/* taken over from a dead owner */
	uint32_t		oldest;	/* generation still run (stats_collect) */
	/*
	 * The index: (family, labels) to a record's offset, open addressing
	 * in <nslots> (a power of two, twice the records there is room for)
	 * from <index>.  Only ever added to under the lock; rebuilt when
	 * records go to the free lists.
	 */
	uint32_t		index;
	uint32_t		nslots;
	uint32_t		nfamilies;
	struct stats_family	families[STATS_MAXFAMILIES];
};

static struct stats_hdr	*shm;
static int		 myslot;
static uint32_t		 mygen;	/* the conf generation this process runs */

const double stats_latency_buckets[] = {
	0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
	1, 2.5, 5, 10, 30
};
const int stats_nlatency_buckets = nitems(stats_latency_buckets);

int
stats_init(size_t size)
{
	void	*p;
	size_t	 maxrec, nslots;

	if (shm != NULL)
		return (0);
	if (size == 0)
		size = STATS_SIZE;
	if (size < sizeof(struct stats_hdr) + 4096)
		size = sizeof(struct stats_hdr) + 4096;
	/* a record is at least the struct and one value */
	maxrec = (size - sizeof(struct stats_hdr)) /
	    (sizeof(struct stats_metric) + sizeof(uint64_t));
	for (nslots = 16; nslots < 2 * maxrec; nslots *= 2)
		;
	size += nslots * sizeof(uint32_t);
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
	    -1, 0);
	if (p == MAP_FAILED)
		return (-1);
	shm = p;
	shm->magic = STATS_MAGIC;
	shm->size = size;
	shm->index = (sizeof(struct stats_hdr) + 7) & ~7u;
	shm->nslots = nslots;
	atomic_store(&shm->used, shm->index + nslots * sizeof(uint32_t));
	atomic_init(&shm->lock.owner, 0);
	return (0);
}

/*
 * The conf generation of this process: records asked for from now on are
 * its, and it renders only those asked for by it or a later one.
 */
void
stats_set_generation(uint32_t gen)
{
	mygen = gen;
}

void
stats_set_slot(int slot)
{
	myslot = slot >= 0 && slot < STATS_SLOTS ? slot : 0;
}

int
stats_get_slot(void)
{
	return (myslot);
}

/*
 * The shared memory lock: a process killed inside (the master kills a
 * stuck generation, then takes the lock in stats_collect) does not stop
 * the others for good.
 */
static void
lock(void)
{
	shm_lock(&shm->lock);
}

static void
unlock(void)
{
	shm_unlock(&shm->lock);
}

static int
ncells(const struct stats_family *f)
{
	switch (f->type) {
	case STATS_COUNTER:
		return (1);
	case STATS_GAUGE:
		return (STATS_SLOTS);
	default:
		return (f->nbuckets + 3);
	}
}

static struct stats_metric *
rec_at(uint32_t off)
{
	return ((struct stats_metric *)((char *)shm + off));
}

static uint32_t *
slots(void)
{
	return ((uint32_t *)((char *)shm + shm->index));
}

static uint64_t
hash_of(uint32_t family, const char *labels)
{
	return (hash_bytes(labels, strlen(labels), family));
}

struct series_key {
	uint32_t	 family;
	const char	*labels;
};

static int
series_is(uint32_t off, const void *p)
{
	const struct series_key	*k = p;
	struct stats_metric	*m = rec_at(off);

	return (m->family == k->family && strcmp(m->labels, k->labels) == 0);
}

/* Under the lock: the record of <family> with <labels>, or NULL. */
static struct stats_metric *
index_find(uint32_t family, const char *labels)
{
	struct series_key	k = { family, labels };
	uint32_t		off;

	off = index_lookup(slots(), shm->nslots, hash_of(family, labels),
	    series_is, &k);
	return (off != 0 ? rec_at(off) : NULL);
}

/* Under the lock; never full: twice the slots there can be records. */
static void
index_add(uint32_t off)
{
	struct stats_metric	*m = rec_at(off);

	index_insert(slots(), shm->nslots, hash_of(m->family, m->labels), off);
}

/*
 * Master: no process runs a generation older than <oldest>.  Records that
 * only older ones asked for (the series of removed servers, no process
 * shows them) may be taken for new series of their family.
 */
void
stats_collect(uint32_t oldest)
{
	struct stats_family	*f;
	struct stats_metric	*m;
	uint32_t		 i, off, g;

	if (shm == NULL || oldest <= shm->oldest)
		return;
	lock();
	shm->oldest = oldest;
	memset(slots(), 0, shm->nslots * sizeof(uint32_t));
	for (i = 0; i < shm->nfamilies; i++) {
		f = &shm->families[i];
		for (off = f->first; off != 0; off = m->next) {
			m = rec_at(off);
			g = atomic_load(&m->gen);
			if (!m->isfree && g != 0 && g < oldest) {
				m->isfree = 1;
				m->nextfree = f->freelist;
				f->freelist = off;
			}
			if (!m->isfree)
				index_add(off);
		}
	}
	unlock();
}

static int
name_ok(const char *n)
{
	const char	*p;

	if (*n == '\0' || strlen(n) >= STATS_NAMELEN ||
	    !((*n >= 'a' && *n <= 'z') || (*n >= 'A' && *n <= 'Z') ||
	    *n == '_' || *n == ':'))
		return (0);
	for (p = n; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '_' || *p == ':'))
			return (0);
	return (1);
}

/* Bucket bounds: finite and increasing; +Inf is implied. */
static int
bounds_ok(const double *b, int nb)
{
	int	i;

	if (nb < 0 || nb > STATS_MAXBUCKETS || (nb > 0 && b == NULL))
		return (0);
	for (i = 0; i < nb; i++)
		if (!isfinite(b[i]) || (i > 0 && b[i] <= b[i - 1]))
			return (0);
	return (1);
}

/*
 * Render "k1="v1",k2="v2"" from NULL-terminated name/value pairs.  Label
 * names are metric names without ':'; a histogram's "le" is its own.
 */
static int
labels_fmt(char *out, size_t size, int type, va_list ap)
{
	const char	*k, *v;
	size_t		 n = 0;

	out[0] = '\0';
	while ((k = va_arg(ap, const char *)) != NULL) {
		if ((v = va_arg(ap, const char *)) == NULL)
			return (-1);
		if (!name_ok(k) || strchr(k, ':') != NULL ||
		    (type == STATS_HISTOGRAM && strcmp(k, "le") == 0))
			return (-1);
		/* [,]k=" now, at least the closing quote and the NUL later */
		if (n + (n ? 1 : 0) + strlen(k) + 4 > size)
			return (-1);
		n += snprintf(out + n, size - n, "%s%s=\"", n ? "," : "", k);
		for (; *v; v++) {
			const char	*esc = NULL;

			if (*v == '\\')
				esc = "\\\\";
			else if (*v == '"')
				esc = "\\\"";
			else if (*v == '\n')
				esc = "\\n";
			/* the byte(s), then the closing quote and the NUL */
			if (n + (esc != NULL ? 2 : 1) + 2 > size)
				return (-1);
			if (esc != NULL) {
				memcpy(out + n, esc, 2);
				n += 2;
			} else
				out[n++] = *v;
		}
		if (n + 2 > size)
			return (-1);
		out[n++] = '"';
		out[n] = '\0';
	}
	return (0);
}

static struct stats_metric *
metric_get(const char *name, const char *help, int type, const double *b,
    int nb, va_list ap)
{
	struct stats_family	*f = NULL;
	struct stats_metric	*m;
	char			 labels[STATS_LABELLEN];
	uint32_t		 i, off, need;

	if (shm == NULL)
		return (NULL);
	if (!name_ok(name) || !bounds_ok(b, nb) ||
	    labels_fmt(labels, sizeof(labels), type, ap) == -1) {
		log_warnx("%s: bad metric %s", __func__, name);
		return (NULL);
	}
	lock();
	for (i = 0; i < shm->nfamilies; i++)
		if (strcmp(shm->families[i].name, name) == 0) {
			f = &shm->families[i];
			break;
		}
	if (f != NULL && f->type != type) {
		unlock();
		log_warnx("%s: %s registered with another type", __func__,
		    name);
		return (NULL);
	}
	if (f == NULL) {
		if (shm->nfamilies >= STATS_MAXFAMILIES) {
			unlock();
			log_warnx("%s: too many metric families", __func__);
			return (NULL);
		}
		f = &shm->families[shm->nfamilies++];
		strlcpy(f->name, name, sizeof(f->name));
		strlcpy(f->help, help ? help : "", sizeof(f->help));
		f->type = type;
		f->nbuckets = nb;
		if (nb > 0)
			memcpy(f->bounds, b, nb * sizeof(double));
	}
	if ((m = index_find(f - shm->families, labels)) != NULL) {
		if (atomic_load(&m->gen) < mygen)
			atomic_store(&m->gen, mygen);
		unlock();
		return (m);
	}
	need = sizeof(struct stats_metric) + ncells(f) * sizeof(uint64_t);
	need = (need + 7) & ~7u;
	/*
	 * A record of the family no running process asked for: no one
	 * shows it (renderers skip older generations' records) or counts
	 * in it.  It is cleared and named before it becomes ours.
	 */
	if ((off = f->freelist) != 0) {
		m = rec_at(off);
		f->freelist = m->nextfree;
		m->isfree = 0;
		memset(m->v, 0, need - sizeof(*m));
		strlcpy(m->labels, labels, sizeof(m->labels));
		index_add(off);
		atomic_store_explicit(&m->gen, mygen, memory_order_release);
		unlock();
		return (m);
	}
	off = atomic_load(&shm->used);
	if (off + need > shm->size) {
		static uint32_t	warned;	/* generation + 1 */

		unlock();
		/* once per process and conf: thousands of lines would
		 * hold up the workers' start */
		if (warned != mygen + 1) {
			warned = mygen + 1;
			log_warnx("statistics segment full (%u bytes): series "
			    "from %s{%s} on are not kept", shm->size, name,
			    labels);
		}
		return (NULL);
	}
	atomic_store(&shm->used, off + need);
	m = rec_at(off);
	memset(m, 0, need);
	m->family = f - shm->families;
	atomic_store(&m->gen, mygen);
	strlcpy(m->labels, labels, sizeof(m->labels));
	index_add(off);
	if (f->last != 0)
		rec_at(f->last)->next = off;
	else
		f->first = off;
	f->last = off;
	unlock();
	return (m);
}

/*
 * stats_counter("lbd_requests_total", "Requests.", "backend", "webs",
 *     NULL): get or create.  Returns NULL when statistics are off.
 */
struct stats_metric *
stats_counter(const char *name, const char *help, ...)
{
	struct stats_metric	*m;
	va_list			 ap;

	va_start(ap, help);
	m = metric_get(name, help, STATS_COUNTER, NULL, 0, ap);
	va_end(ap);
	return (m);
}

struct stats_metric *
stats_gauge(const char *name, const char *help, ...)
{
	struct stats_metric	*m;
	va_list			 ap;

	va_start(ap, help);
	m = metric_get(name, help, STATS_GAUGE, NULL, 0, ap);
	va_end(ap);
	return (m);
}

struct stats_metric *
stats_histogram(const char *name, const char *help, const double *bounds,
    int nbounds, ...)
{
	struct stats_metric	*m;
	va_list			 ap;

	va_start(ap, nbounds);
	m = metric_get(name, help, STATS_HISTOGRAM, bounds, nbounds, ap);
	va_end(ap);
	return (m);
}

void
stats_add(struct stats_metric *m, uint64_t n)
{
	if (m != NULL)
		atomic_fetch_add_explicit(&m->v[0], n, memory_order_relaxed);
}

void
stats_inc(struct stats_metric *m)
{
	stats_add(m, 1);
}

void
stats_gauge_add(struct stats_metric *m, int64_t n)
{
	if (m != NULL)
		atomic_fetch_add_explicit(&m->v[myslot], (uint64_t)n,
		    memory_order_relaxed);
}

void
stats_gauge_set(struct stats_metric *m, int64_t n)
{
	if (m != NULL)
		atomic_store_explicit(&m->v[myslot], (uint64_t)n,
		    memory_order_relaxed);
}

void
stats_observe(struct stats_metric *m, double v)
{
	const struct stats_family	*f;
	uint64_t			 old, new;
	double				 d;
	int				 i;

	if (m == NULL)
		return;
	f = &shm->families[m->family];
	for (i = 0; i < f->nbuckets; i++)
		if (v <= f->bounds[i])
			break;
	/* cell i counts values in (bounds[i-1], bounds[i]]; nbuckets: +Inf */
	atomic_fetch_add_explicit(&m->v[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&m->v[f->nbuckets + 1], 1,
	    memory_order_relaxed);
	old = atomic_load_explicit(&m->v[f->nbuckets + 2],
	    memory_order_relaxed);
	do {
		memcpy(&d, &old, sizeof(d));
		d += v;
		memcpy(&new, &d, sizeof(new));
	} while (!atomic_compare_exchange_weak(&m->v[f->nbuckets + 2], &old,
	    new));
}

uint64_t
stats_counter_value(const struct stats_metric *m)
{
	return (m ? atomic_load(&((struct stats_metric *)m)->v[0]) : 0);
}

int64_t
stats_gauge_value(const struct stats_metric *m)
{
	int64_t	sum = 0;
	int	i;

	if (m == NULL)
		return (0);
	for (i = 0; i < STATS_SLOTS; i++)
		sum += (int64_t)atomic_load(&((struct stats_metric *)m)->v[i]);
	return (sum);
}

uint64_t
stats_histogram_count(const struct stats_metric *m)
{
	if (m == NULL)
		return (0);
	return (atomic_load(&((struct stats_metric *)m)->v[
	    shm->families[m->family].nbuckets + 1]));
}

/* A dead process's gauges no longer count. */
void
stats_slot_reset(int slot)
{
	uint32_t	i, off;

	if (shm == NULL || slot < 0 || slot >= STATS_SLOTS)
		return;
	for (i = 0; i < shm->nfamilies; i++) {
		if (shm->families[i].type != STATS_GAUGE)
			continue;
		for (off = shm->families[i].first; off != 0;
		    off = rec_at(off)->next)
			atomic_store(&rec_at(off)->v[slot], 0);
	}
}

static int
help_fmt(struct buf *b, const char *help)
{
	for (; *help; help++) {
		if (*help == '\\' && buf_append(b, "\\\\", 2) == -1)
			return (-1);
		else if (*help == '\n' && buf_append(b, "\\n", 2) == -1)
			return (-1);
		else if (*help != '\\' && *help != '\n' &&
		    buf_putc(b, *help) == -1)
			return (-1);
	}
	return (0);
}

static int
sample(struct buf *b, const char *name, const char *suffix,
    const char *labels, const char *extra, const char *value)
{
	int	hasl = labels[0] != '\0', hase = extra != NULL;

	return (buf_printf(b, "%s%s%s%s%s%s%s %s\n", name, suffix,
	    hasl || hase ? "{" : "", labels, hasl && hase ? "," : "",
	    hase ? extra : "", hasl || hase ? "}" : "", value));
}

/*
 * Append every family whose name starts with <prefix> (NULL: all) in the
 * text exposition format 0.0.4.
 */
int
stats_render(struct buf *b, const char *prefix)
{
	static const char	*types[] = { "counter", "gauge", "histogram" };
	struct stats_family	*f;
	struct stats_metric	*m;
	uint32_t		 i, off;
	char			 val[64], le[64];
	int			 j;

	if (shm == NULL)
		return (0);
	for (i = 0; i < shm->nfamilies; i++) {
		f = &shm->families[i];
		if (prefix != NULL && strncmp(f->name, prefix,
		    strlen(prefix)) != 0)
			continue;
		if (f->first == 0)
			continue;
		if (buf_printf(b, "# HELP %s ", f->name) == -1 ||
		    help_fmt(b, f->help) == -1 ||
		    buf_printf(b, "\n# TYPE %s %s\n", f->name,
		    types[f->type]) == -1)
			return (-1);
		for (off = f->first; off != 0; off = m->next) {
			m = rec_at(off);
			/* what no conf since ours asked for (a server since
			 * removed) is not shown; older processes still show
			 * their own */
			if (atomic_load_explicit(&m->gen,
			    memory_order_acquire) < mygen)
				continue;
			switch (f->type) {
			case STATS_COUNTER:
				snprintf(val, sizeof(val), "%llu",
				    (unsigned long long)stats_counter_value(m));
				if (sample(b, f->name, "", m->labels, NULL,
				    val) == -1)
					return (-1);
				break;
			case STATS_GAUGE:
				snprintf(val, sizeof(val), "%lld",
				    (long long)stats_gauge_value(m));
				if (sample(b, f->name, "", m->labels, NULL,
				    val) == -1)
					return (-1);
				break;
			case STATS_HISTOGRAM: {
				uint64_t	cum = 0, bits;
				double		sum;

				for (j = 0; j <= f->nbuckets; j++) {
					cum += atomic_load(&m->v[j]);
					if (j < f->nbuckets)
						snprintf(le, sizeof(le),
						    "le=\"%.9g\"", f->bounds[j]);
					else
						snprintf(le, sizeof(le),
						    "le=\"+Inf\"");
					snprintf(val, sizeof(val), "%llu",
					    (unsigned long long)cum);
					if (sample(b, f->name, "_bucket",
					    m->labels, le, val) == -1)
						return (-1);
				}
				bits = atomic_load(&m->v[f->nbuckets + 2]);
				memcpy(&sum, &bits, sizeof(sum));
				snprintf(val, sizeof(val), "%.9g", sum);
				if (sample(b, f->name, "_sum", m->labels, NULL,
				    val) == -1)
					return (-1);
				/* count: read after the buckets, never less */
				snprintf(val, sizeof(val), "%llu",
				    (unsigned long long)cum);
				if (sample(b, f->name, "_count", m->labels,
				    NULL, val) == -1)
					return (-1);
				break;
			}
			}
		}
	}
	return (0);
}
