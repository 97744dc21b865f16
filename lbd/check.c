/*
 * check.c: the checker process (stub until the checks land).
 */
#include <sys/types.h>

#include "event.h"
#include "log.h"
#include "lbd.h"

int
checker_count(void *p)
{
	return (1);
}

static void
drain(struct proc_worker *w)
{
	ev_break(w->loop);
}

int
checker_main(struct proc_worker *w)
{
	struct ev_loop	loop;

	lconf = w->conf;
	if (ev_init(&loop) == -1)
		fatal("epoll");
	w->drain = drain;
	if (proc_worker_watch(w, &loop) == -1)
		fatal("proc_worker_watch");
	ev_run(&loop);
	return (0);
}
