/*
 * proxy_conf.c: read an upstream block into a proxy_conf and its pool.
 */
#include <sys/types.h>

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "proxy_conf.h"
#include "tls.h"

const struct conf_opt proxy_server_opts[] = {
	{ "weight", { CONF_INT, "weight", 0, UP_MAXWEIGHT } },
	{ "maxconn", { CONF_INT, "maxconn", 0, 1000000 } },
	{ "backup", { CONF_NONE } },
	{ NULL }
};

/*
 * Build <pc> from <block>: a pool named <name> whose shared state is kept
 * under <key>.  Returns 0, or -1 with the errors reported.
 */
int
proxy_conf_load(struct conf *conf, const struct conf_node *block,
    const char *name, const char *key, struct proxy_conf *pc)
{
	struct conf_node	*n;
	const struct lb_ops	*lb;
	const char		*why;
	char			*p;
	int			 errors = conf->nerrors;

	proxy_conf_defaults(pc);
	lb = lb_find(conf_str(conf, block, "balance"));
	pc->pool = up_pool_new(name, key, lb);
	/* balance hdr NAME, balance url-param NAME; the others take none */
	if ((n = conf_get(block, "balance")) != NULL) {
		int	named = lb == &lb_hdr || lb == &lb_url_param;

		if (named && n->nargs < 2)
			conf_error(conf, n, "balance %s needs a name", lb->name);
		else if (!named && n->nargs > 1)
			conf_error(conf, n, "balance %s takes no name",
			    lb->name);
		else if (named && ((pc->hash_name = strdup(n->args[1].str)) ==
		    NULL))
			fatal("%s", __func__);
		else if (lb == &lb_hdr && (why = http_conf_field_check(
		    pc->hash_name, NULL)) != NULL)
			conf_error(conf, n, "balance hdr \"%s\": %s",
			    pc->hash_name, why);
		else if (named && (pc->hash_name[0] == '\0' ||
		    pc->hash_name[strcspn(pc->hash_name, "&=#? \t")] != '\0'))
			conf_error(conf, n, "balance url-param: \"%s\" is "
			    "not a parameter name", pc->hash_name);
		/* http_req_header() takes the name in lower case */
		if (lb == &lb_hdr && pc->hash_name != NULL)
			for (p = pc->hash_name; *p != '\0'; p++)
				if (*p >= 'A' && *p <= 'Z')
					*p += 'a' - 'A';
	}
	CONF_FOREACH(n, block, "server") {
		struct net_addr	a;
		char		err[256];

		if (net_addr_parse(n->args[1].str, &a, err,
		    sizeof(err)) == -1) {
			conf_error(conf, n, "server %s: %s", n->args[0].str,
			    err);
			continue;
		}
		if (up_server_add(pc->pool, n->args[0].str, &a,
		    conf_optnum(n, "weight", 1), conf_optnum(n, "maxconn", 0),
		    conf_opt(n, "backup") != NULL) == NULL)
			conf_error(conf, n, "too many servers (max %d)",
			    UP_MAXSERVERS);
	}
	if (up_pool_shm_full(pc->pool))
		conf_error(conf, block, "%s: no room left in shared memory for "
		    "its servers' state (%d blocks in all, the names of "
		    "configurations still running keep theirs)", name,
		    SHM_MAXBLOCKS);
	if ((n = conf_get(block, "connect-timeout")) != NULL)
		pc->connect_timeout = n->args[0].num;
	if ((n = conf_get(block, "response-timeout")) != NULL)
		pc->response_timeout = n->args[0].num;
	if ((n = conf_get(block, "max-queue")) != NULL)
		pc->max_queue = n->args[0].num;
	if ((n = conf_get(block, "queue-timeout")) != NULL)
		pc->queue_timeout = n->args[0].num;
	if ((n = conf_get(block, "tunnel-timeout")) != NULL)
		pc->tunnel_timeout = n->args[0].num;
	if ((n = conf_get(block, "keepalive")) != NULL)
		pc->max_idle = n->args[0].num;
	if ((n = conf_get(block, "keepalive-timeout")) != NULL)
		pc->idle_timeout = n->args[0].num;
	if ((n = conf_get(block, "retries")) != NULL)
		pc->retries = n->args[0].num;
	if ((n = conf_get(block, "fail-max")) != NULL)
		pc->pool->fail_max = n->args[0].num;
	if ((n = conf_get(block, "fail-timeout")) != NULL)
		pc->pool->fail_timeout = n->args[0].num;
	if ((n = conf_get(block, "x-forwarded-for")) != NULL)
		pc->xff = n->args[0].num;
	if ((n = conf_get(block, "x-forwarded-proto")) != NULL)
		pc->xfp = n->args[0].num;
	if ((n = conf_get(block, "forwarded")) != NULL)
		pc->forwarded = n->args[0].num;
	if ((n = conf_get(block, "via")) != NULL &&
	    (pc->via = strdup(n->args[0].str)) == NULL)
		fatal("%s", __func__);
	if ((n = conf_get(block, "buffer-request")) != NULL)
		pc->buffer_request = n->args[0].num;
	if ((n = conf_get(block, "buffer-response")) != NULL)
		pc->buffer_response = n->args[0].num;
	if ((n = conf_get(block, "proxy-protocol")) != NULL)
		pc->proxy_protocol = n->args[0].num;
	if ((n = conf_get(block, "tls")) != NULL && n->args[0].num) {
		char		 err[512];
		const char	*ca = conf_str(conf, block, "tls-ca");
		struct conf_node *v = conf_get(block, "tls-verify");

		pc->tls = tls_client_new(ca, v ? v->args[0].num : 1, err,
		    sizeof(err));
		if (pc->tls == NULL)
			conf_error(conf, n, "%s", err);
		if ((v = conf_get(block, "tls-name")) != NULL &&
		    (pc->sni = strdup(v->args[0].str)) == NULL)
			fatal("%s", __func__);
	}
	return (conf->nerrors > errors ? -1 : 0);
}

void
proxy_conf_free(struct proxy_conf *pc)
{
	up_pool_free(pc->pool);
	tls_free(pc->tls);
	free((char *)pc->via);
	free((char *)pc->sni);
	free(pc->hash_name);
	pc->pool = NULL;
	pc->tls = NULL;
}
