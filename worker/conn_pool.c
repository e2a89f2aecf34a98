/*
 * conn_pool: the set of a worker's conns: made and freed together, flushed
 * once per loop iteration (links before clients), reaped at a safe point,
 * and counted for status. The conns themselves are conn.c's.
 */
#include <stdlib.h>

#include "buf.h"
#include "conn_int.h"

void conn_pool_set_tls(struct conn_pool *pool, struct tls_ctx *ctx)
{
    pool->tls = ctx;
}

struct conn_pool *conn_pool_new(struct ev_loop *loop, const struct cfg_herd *cfg)
{
    struct conn_pool *pool = calloc(1, sizeof *pool);
    if (pool == NULL)
        return NULL;
    pool->loop = loop;
    pool->cfg = cfg;
    return pool;
}

void conn_pool_flush(struct conn_pool *pool)
{
    while (pool->dirty_links || pool->dirty) {
        struct conn **list = pool->dirty_links ? &pool->dirty_links : &pool->dirty;
        struct conn *c = *list;
        *list = c->next_dirty;
        c->dirty = 0;
        if (c->state != CONN_CLOSED)
            conn_flush_one(c);
    }
}

void conn_pool_reap(struct conn_pool *pool)
{
    while (pool->dead) {
        struct conn *c = pool->dead;
        pool->dead = c->next;
        buf_free(&c->in);
        buf_free(&c->out);
        free(c);
    }
}

void conn_pool_stop_reading(struct conn_pool *pool)
{
    for (struct conn *c = pool->conns; c; c = c->next)
        conn_stop_reading(c); /* never closes c: the list stays intact */
}

void conn_pool_free(struct conn_pool *pool)
{
    if (pool == NULL)
        return;
    while (pool->conns)
        conn_close(pool->conns, "worker stopping");
    pool->dirty = pool->dirty_links = NULL;
    conn_pool_reap(pool);
    free(pool);
}

void conn_pool_reconfigure(struct conn_pool *pool)
{
    for (struct conn *c = pool->conns; c; c = c->next) {
        if (c->is_link || c->state != CONN_OPEN)
            continue;
        c->max_line = pool->cfg->max_line;
        c->out_max = pool->cfg->client_output_max;
        if (c->idle_timeout != pool->cfg->idle_timeout)
            conn_set_idle(c, pool->cfg->idle_timeout);
    }
}

size_t conn_pool_clients(const struct conn_pool *pool)
{
    return pool->nclients;
}

size_t conn_pool_links(const struct conn_pool *pool)
{
    return pool->nlinks;
}

size_t conn_pool_queued(const struct conn_pool *pool)
{
    size_t n = 0;
    for (const struct conn *c = pool->conns; c; c = c->next)
        n += buf_len(&c->out);
    return n;
}
