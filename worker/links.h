/*
 * links: the worker's TCP links to its neighbours (SPEC §5). Dials, accepts
 * the handshake, authenticates with the herd secret, floods stored updates to
 * every neighbour but the one they came from, resyncs on link up, redials with
 * backoff, and bounds each link's output queue.
 */
#ifndef HERD_LINKS_H
#define HERD_LINKS_H

#include <stddef.h>
#include <stdint.h>

struct worker;
struct conn;
struct links;
struct store_rec;

struct links *links_new(struct worker *w, char *err, size_t errlen);
void links_free(struct links *ls);

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
