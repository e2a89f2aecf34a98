/*
 * server: the worker's listener and its loop hooks. Accepts clients within
 * max_connections into the conn pool with the client ops, and once per loop
 * iteration (an ev_prepare) flushes the pool's output, frees closed conns at
 * that safe point and writes the log buffer out.
 */
#ifndef HERD_SERVER_H
#define HERD_SERVER_H

#include <ev.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "conn.h"

struct server;

/* Listens on HOST:PORT; accepted conns get CLIENT_OPS and CLIENT_CTX. CFG is
 * borrowed (max_connections, idle_timeout are read at each accept). NULL
 * with the reason in err. */
struct server *server_new(struct ev_loop *loop, struct conn_pool *pool, const struct cfg_herd *cfg,
                          const char *host, uint16_t port, const struct conn_ops *client_ops,
                          void *client_ctx, char *err, size_t errlen);

/* Stops listening and the loop hooks, writes the log out, frees. The pool
 * is not touched: free it first. */
void server_free(struct server *srv);

/* Stops accepting (graceful stop). */
void server_stop_listening(struct server *srv);

#endif
