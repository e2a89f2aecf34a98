/*
 * chan: the worker's end of its supervisor channel (docs/control-protocol.md).
 * Sends {"type":"ready"} once the worker listens and a heartbeat with its
 * counters every heartbeat_interval; EOF on the channel means the supervisor
 * is gone, and the worker stops.
 */
#ifndef HERD_CHAN_H
#define HERD_CHAN_H

#include <stddef.h>

struct worker;
struct chan;

/*
 * Takes over FD (the supervisor passes 3): makes it non-blocking, watches it
 * for EOF and starts the heartbeat timer on w->loop. Heartbeats begin when the
 * loop runs, so W's modules must be set up by then. Returns NULL and the
 * reason in ERR when FD is not a usable socket. The caller owns the result.
 */
struct chan *chan_open(struct worker *w, int fd, char *err, size_t errlen);

/* The worker listens now: tells the supervisor, with a first heartbeat. */
void chan_ready(struct chan *c);

/* Sends a heartbeat now (also sent every heartbeat_interval). */
void chan_heartbeat(struct chan *c);

/* A snapshot ended: {"type":"saved"} and a heartbeat carrying it. */
void chan_saved(struct chan *c);

/* Stops the watchers and closes the channel. NULL is fine. */
void chan_free(struct chan *c);

#endif
