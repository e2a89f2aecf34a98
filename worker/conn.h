/*
 * conn: one non-blocking TCP connection of a worker, client or neighbour
 * link, split into lines. Owns the fd, its watchers and its bounded input and
 * output buffers. Output is queued and written once per loop iteration (or
 * when the socket turns writable), so pipelined replies and flooded updates
 * share write(2) calls. A conn is never freed inside its own callbacks:
 * conn_close() marks it and the server frees it at a safe point.
 */
#ifndef HERD_CONN_H
#define HERD_CONN_H

#include <ev.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct conn;
struct places_req;

enum conn_state {
    CONN_OPEN = 0, /* reading lines, writing replies */
    CONN_DRAINING, /* no more reading: write what is queued, then close */
    CONN_CLOSED,   /* fd closed, waiting to be freed by the server */
};

struct conn_ops {
    /* A dialled connection is established (links only). */
    void (*on_connect)(struct conn *c);
    /* One complete line, without its '\n' (a '\r' before it is kept). */
    void (*on_line)(struct conn *c, char *line, size_t len);
    /* A line grew past the limit; FIRST holds its first LIMIT bytes. */
    void (*on_overlong)(struct conn *c, const char *first, size_t limit);
    /* The conn is closing (its fd is already gone); release what hangs off it. */
    void (*on_close)(struct conn *c, const char *why);
    /* Output fell back under the low-water mark (links refill a resync). */
    void (*on_drain)(struct conn *c);
};

/* A reply waiting for its turn behind a WHATSAT that waits on Places. */
struct conn_slot {
    struct conn_slot *next;
    struct conn *conn;
    struct places_req *req; /* non-NULL while Places has not answered */
    char *data;             /* owned; the reply once known */
    size_t len;
};

struct conn {
    int fd;
    enum conn_state state;
    const struct conn_ops *ops;
    void *ud; /* link state for neighbour links */
    ev_io rio, wio;
    ev_timer idle;
    double idle_timeout; /* 0: none */
    struct buf in, out;
    size_t max_line;
    size_t out_max;
    size_t low_water; /* on_drain fires below this (0: never) */
    char peer[64];    /* "ip:port" */
    /* client reply order (client.c) */
    struct conn_slot *slot_head, *slot_tail;
    unsigned nslots;
    unsigned reading_paused : 1;
    unsigned dirty : 1; /* on the server's flush list */
    unsigned is_link : 1;
    unsigned dialing : 1; /* connect in progress */
    unsigned resume : 1;  /* buffered lines wait for processing */
    /* server bookkeeping */
    struct conn *prev, *next; /* all conns */
    struct conn *next_dirty;
    uint64_t id;
};

/* Queues LEN bytes for the peer. Past out_max the conn closes ("output over
 * limit") and -1 is returned. */
int conn_send(struct conn *c, const void *data, size_t len);

/* Stops reading; what is queued is still written, then the conn closes. */
void conn_drain(struct conn *c, const char *why);

/* Closes now (queued output is dropped). Safe to call more than once and from
 * any callback; the memory is freed later by the server. */
void conn_close(struct conn *c, const char *why);

/* Pauses or resumes reading (back-pressure). */
void conn_pause(struct conn *c, int paused);

/* Restarts the idle timer with a new timeout (0 disables it). */
void conn_set_idle(struct conn *c, double seconds);

/* Gives a conn new ops (a client that turned out to be a neighbour). */
void conn_set_ops(struct conn *c, const struct conn_ops *ops, void *ud);

#endif
