/*
 * snapshot: the worker's records on disk, STATE_DIR/NAME.snap (SPEC §5
 * client records). Loads them at start; saves every snapshot_interval when
 * the store changed, on request (herdctl save) and at a graceful stop. A
 * save forks a child that writes the copy-on-write image (Redis BGSAVE), so
 * the loop pauses only for the fork. The file format is snap_format.c's.
 */
#ifndef HERD_SNAPSHOT_H
#define HERD_SNAPSHOT_H

#include <ev.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

struct store;
struct snap;

/* The worker's side, all called on the loop; ARG is handed back. */
struct snap_hooks {
    /* A counter that moves whenever the store may have changed. */
    uint64_t (*changes)(void *arg);
    /* A save ended (written or failed): snap_get_stats tells. */
    void (*saved)(void *arg);
    /* A new empty store set up as the worker's (limits...), to load into;
     * NULL: store_new(). */
    struct store *(*make_store)(void *arg);
    void *arg;
};

struct snap_stats {
    double age;         /* seconds since the file on disk was written; -1: none */
    double duration;    /* seconds the last save took, fork to reap */
    double fork_ms;     /* the loop's pause for the last fork */
    double fork_ms_max; /* the longest such pause */
    uint64_t bytes;     /* size of the file on disk */
    uint64_t records;   /* records in it */
    uint64_t saves;     /* saves written since start */
    uint64_t failures;  /* saves that failed */
    uint64_t save_id;   /* the last requested save (snap_force) that ended */
    int running;        /* a child is writing now */
    const char *error;  /* why the last save failed; NULL after a success */
};

/*
 * Prepares snapshots of ST (borrowed) for server NAME in cfg->state_dir
 * (made 0700 when missing), with the worker's HOOKS (copied). Returns NULL
 * with the reason in ERR. The caller owns the result.
 */
struct snap *snap_new(struct ev_loop *loop, const struct cfg_herd *cfg, const char *name,
                      struct store *st, const struct snap_hooks *hooks, char *err, size_t errlen);

/*
 * Loads NAME.snap into a fresh store (hooks.make_store) and, only when the
 * whole file was sound, swaps it in: frees *STP (the worker's empty store)
 * and sets *STP and the store saved from then on to it. A missing file is
 * an empty start; a damaged, foreign or future-version one is renamed
 * NAME.snap.bad-TIMESTAMP with a warning, and *STP is left as it was.
 * Returns the records loaded.
 */
uint64_t snap_load(struct snap *s, struct store **stp);

/* A live reload changed CFG: client_ttl and snapshot_interval from now on. */
void snap_reconfigure(struct snap *s, const struct cfg_herd *cfg);

/* Starts the snapshot_interval timer. */
void snap_start(struct snap *s);

/* Saves now, changed or not (after the running save, if one runs); ID is
 * reported as save_id once that save has ended. */
void snap_force(struct snap *s, uint64_t id);

/* The loop has stopped: abandons a running child and writes the store
 * synchronously when it changed since the last save. */
void snap_stop_save(struct snap *s);

void snap_get_stats(const struct snap *s, struct snap_stats *out);

/* Stops its watchers (a child still running is killed). NULL is fine. */
void snap_free(struct snap *s);

#endif
