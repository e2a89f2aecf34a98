/*
 * server: the worker's listener and the set of its connections. Accepts
 * clients within max_connections, dials neighbours, flushes queued output and
 * frees closed connections once per loop iteration (an ev_prepare), which is
 * also where the log buffer is written out.
 */
#ifndef HERD_SERVER_H
#define HERD_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "conn.h"

struct worker;
struct server;

/* Listens on the worker's host:port. NULL with the reason in err. */
struct server *server_new(struct worker *w, const struct conn_ops *client_ops, char *err,
                          size_t errlen);

/* Closes every connection and the listener, frees. */
void server_free(struct server *srv);

/* Stops accepting (graceful stop). */
void server_stop_listening(struct server *srv);

/* Writes whatever is queued on every connection, as far as sockets take it. */
void server_flush(struct server *srv);

/* Open client connections (links not counted). */
size_t server_clients(const struct server *srv);

/* Bytes queued for output on every connection. */
size_t server_queued(const struct server *srv);

/*
 * Starts a non-blocking dial. ops->on_connect runs when it is up,
 * ops->on_close when it fails. NULL with the reason in err when it could not
 * even start.
 */
struct conn *server_dial(struct server *srv, const char *host, uint16_t port,
                         const struct conn_ops *ops, void *ud, char *err, size_t errlen);

#endif
