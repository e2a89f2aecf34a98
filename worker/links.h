/*
 * links: the worker's TCP links to its neighbours (SPEC §5). Dials, accepts
 * the handshake, authenticates with the herd secret, floods stored updates to
 * every neighbour but the one they came from, resyncs on link up, redials with
 * backoff, and bounds each link's output queue.
 */
#ifndef HERD_LINKS_H
#define HERD_LINKS_H

#include <ev.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "log.h"

struct conn;
struct conn_pool;
struct links;
struct store;
struct store_rec;

/* Events for the layer above: a link came up, went down, or finished
 * receiving its neighbour's resync. Never called from links_free. */
struct links_hooks {
    void (*on_change)(void *arg);
    void *arg;
};

struct links_stats {
    uint64_t floods_in;  /* AT lines received on links */
    uint64_t floods_out; /* AT lines sent on links */
};

/* The links of server number SELF of CFG (borrowed, like every pointer
 * here), dialled through POOL, storing into STORE. */
struct links *links_new(struct ev_loop *loop, struct conn_pool *pool, struct store *store,
                        const struct cfg_herd *cfg, size_t self, const struct links_hooks *hooks,
                        char *err, size_t errlen);
void links_free(struct links *ls);

/* Graceful stop, first step: no more dials, knocks or handshakes. */
void links_stop(struct links *ls);

/* Graceful stop, second step (no client will send more): writes what is
 * staged and queued to every live link, then closes them. */
void links_drain(struct links *ls);

void links_get_stats(const struct links *ls, struct links_stats *st);

/* A live reload changed the cfg: live links take link_queue_max,
 * link_timeout and link_ping_interval from it now. */
void links_reconfigure(struct links *ls);

/* Starts dialling the neighbours this worker dials (after it listens). */
void links_start(struct links *ls);

/* Nonzero when LINE (a client conn's first line) opens a neighbour handshake. */
int links_is_hello(const char *line, size_t len);

/* A client conn turned out to be a neighbour: LINE is its hello. Takes the
 * conn over (its ops change) or closes it. */
void links_adopt(struct links *ls, struct conn *c, const char *line, size_t len);

/* Sends REC to every live link except FROM (the conn it came on, or NULL). */
void links_flood(struct links *ls, const struct store_rec *rec, const struct conn *from);

void links_count(const struct links *ls, uint64_t *up, uint64_t *total);

/* Live links whose neighbour's resync dump has not all arrived yet. */
uint64_t links_syncing(const struct links *ls);

#endif
