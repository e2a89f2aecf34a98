/*
 * worker: the one process-wide state of a herd-worker (its loop, its part of
 * the configuration, the client store, the Places proxy, the neighbour links)
 * and the counters it reports to the supervisor. One per process.
 */
#ifndef HERD_WORKER_H
#define HERD_WORKER_H

#include <ev.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

struct store;
struct places;
struct links;
struct server;
struct chan;
struct snap;

struct worker_stats {
    uint64_t clients;       /* client records stored */
    uint64_t connections;   /* open client connections */
    uint64_t links_up;      /* neighbours with a live link */
    uint64_t links_total;   /* neighbours configured */
    uint64_t links_syncing; /* live links still receiving the neighbour's resync */
    uint64_t requests;      /* client lines answered */
    uint64_t iamat;
    uint64_t whatsat;
    uint64_t invalid;    /* lines answered "? " */
    uint64_t floods_in;  /* AT lines received on links */
    uint64_t floods_out; /* AT lines sent on links */
};

struct worker {
    struct ev_loop *loop;
    struct cfg_herd *cfg;          /* owned */
    const struct cfg_server *self; /* borrowed from cfg */
    size_t self_index;
    struct store *store;   /* owned */
    struct places *places; /* owned */
    struct links *links;   /* owned */
    struct server *server; /* owned: listener and connections */
    struct chan *chan;     /* owned: supervisor channel, NULL standalone */
    struct snap *snap;     /* owned: snapshots, NULL without state_dir */
    struct worker_stats stats;
    int stopping;
};

/* The process's worker; set once by main. */
extern struct worker *worker_self;

/* Refreshes the gauges of stats (clients, connections, links) and returns it. */
const struct worker_stats *worker_stats(struct worker *w);

/* Logs that an update of client ID could not be stored (errno says why),
 * at most once a second with a count of the ones not logged. */
void worker_store_failed(struct worker *w, const char *id, size_t len);

/* Starts a graceful stop: close the listener, flush, leave the loop. */
void worker_stop(struct worker *w, const char *why);

#endif
