/*
 * stats.h: counters, gauges and histograms in shared memory, rendered in
 * the Prometheus text format 0.0.4.
 *
 * The master maps one segment (MAP_SHARED) before it forks, so every
 * worker, checker and helper of the daemon updates the same numbers with
 * atomic operations, and the numbers live as long as the master: a
 * reload's new workers find the same metrics by name and labels.
 *
 * Counters only go up.  Gauges are kept per process slot and summed when
 * read: when a worker dies the master zeroes its slot (stats_slot_reset),
 * so a killed worker's open connections do not stay counted forever.
 * Histograms have fixed bucket bounds, in base units (seconds, bytes):
 * finite and increasing, at most STATS_MAXBUCKETS, +Inf implied.  Label
 * names are metric names without ':', and "le" is a histogram's own.
 */
#ifndef COMMON_STATS_H
#define COMMON_STATS_H

#include <sys/types.h>
#include <stdint.h>
#include "buf.h"

/*
 * The default segment size.  Mapped, not taken: a page is real once a
 * record is on it.  A server of lbd's has some 2.2 KiB of records (four
 * histograms), so 32 MiB holds about 15000, those of the confs still
 * running (a reload that renames them all needs room for both).
 */
#define STATS_SIZE		(32 * 1024 * 1024)
#define STATS_MAXFAMILIES	256
#define STATS_NAMELEN		96
#define STATS_HELPLEN		160
#define STATS_LABELLEN		256
#define STATS_MAXBUCKETS	20
#define STATS_SLOTS		128		/* processes that set gauges */

enum stats_type {
	STATS_COUNTER,
	STATS_GAUGE,
	STATS_HISTOGRAM
};

struct stats_metric;

int	 stats_init(size_t);
void	 stats_set_slot(int);
void	 stats_set_generation(uint32_t);
void	 stats_collect(uint32_t);
int	 stats_get_slot(void);
void	 stats_slot_reset(int);

struct stats_metric *stats_counter(const char *, const char *, ...);
struct stats_metric *stats_gauge(const char *, const char *, ...);
struct stats_metric *stats_histogram(const char *, const char *,
	    const double *, int, ...);

void	 stats_add(struct stats_metric *, uint64_t);
void	 stats_inc(struct stats_metric *);
void	 stats_gauge_add(struct stats_metric *, int64_t);
void	 stats_gauge_set(struct stats_metric *, int64_t);
void	 stats_observe(struct stats_metric *, double);
uint64_t stats_counter_value(const struct stats_metric *);
int64_t	 stats_gauge_value(const struct stats_metric *);
uint64_t stats_histogram_count(const struct stats_metric *);

int	 stats_render(struct buf *, const char *);

extern const double stats_latency_buckets[];	/* seconds */
extern const int stats_nlatency_buckets;

#endif
