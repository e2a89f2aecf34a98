/*
 * client: what a worker says to a client line (SPEC §4): IAMAT stored and
 * flooded, WHATSAT answered through the Places proxy, anything else "? ".
 * Owns each client conn's reply queue, so replies leave in request order even
 * while a WHATSAT waits on the network, and every reply owed is written
 * before a conn whose input ended is closed.
 */
#ifndef HERD_CLIENT_H
#define HERD_CLIENT_H

#include <stdint.h>

#include "conn.h"
#include "log.h"

struct store;
struct links;
struct places;

struct client_stats {
    uint64_t requests; /* client lines answered */
    uint64_t iamat;
    uint64_t whatsat;
    uint64_t invalid; /* lines answered "? " */
};

/* What the client protocol works with; the worker owns it and everything it
 * points to, and passes it as the ctx of client conns. */
struct client_ctx {
    const char *self; /* this server's name, for AT lines */
    struct store *store;
    struct links *links;
    struct places *places;
    struct client_stats stats;
    struct log_limit store_warn;    /* updates the store could not keep */
    struct log_limit overlong_warn; /* lines past max_line_length */
};

/* The ops every accepted connection starts with (ctx: a struct client_ctx). */
extern const struct conn_ops client_ops;

#endif
