/*
 * client: what a worker says to a client line (SPEC §4): IAMAT stored and
 * flooded, WHATSAT answered through the Places proxy, anything else "? ".
 * Replies leave in request order even while a WHATSAT waits on the network.
 */
#ifndef HERD_CLIENT_H
#define HERD_CLIENT_H

#include "conn.h"

/* The ops every accepted connection starts with. */
extern const struct conn_ops client_ops;

#endif
