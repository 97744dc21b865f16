/*
 * appd: the application server.  A master and a pool of workers that
 * run the site's code (C modules, CGI programs) one request at a time,
 * behind webd, on common/'s pre-fork master; and a status process.
 */
#include <sys/types.h>

#include "appd.h"
#include "proc.h"

struct appd_conf	*aconf;

static const struct proc_ops appd_ops = {
	.name = "appd",
	.conffile = APPD_CONF,
	.grammar = appd_grammar,
	.load = appd_load,
	.unload = appd_unload,
	.setup = appd_setup,
	.child_init = worker_child_init,
	.worker = worker_main,
	.roles = {
		{ "status", status_count, status_main },
		{ NULL }
	},
	.tick = pool_tick,
};

int
main(int argc, char *argv[])
{
	return (proc_main(argc, argv, &appd_ops));
}
