/*
 * chan: the worker's end of its supervisor channel (docs/control-protocol.md).
 * Sends {"type":"ready"} once the worker listens and a heartbeat with its
 * counters every heartbeat_interval; EOF on the channel means the supervisor
 * is gone, and the worker stops. Knows nothing of the worker's modules: the
 * counters come from a callback, the stop goes out through another.
 */
#ifndef HERD_CHAN_H
#define HERD_CHAN_H

#include <ev.h>
#include <stddef.h>
#include <stdint.h>

struct chan;

/* What a heartbeat carries. */
struct chan_stats {
    uint64_t clients;       /* client records stored */
    uint64_t connections;   /* open client connections */
    uint64_t links_up;      /* neighbours with a live link */
    uint64_t links_total;   /* neighbours configured */
    uint64_t links_syncing; /* live links still receiving the neighbour's resync */
    uint64_t requests;      /* client lines answered */
    uint64_t iamat;
    uint64_t whatsat;
    uint64_t invalid;         /* lines answered "? " */
    uint64_t floods_in;       /* AT lines received on links */
    uint64_t floods_out;      /* AT lines sent on links */
    uint64_t expired;         /* client records reaped after client_ttl */
    uint64_t evicted;         /* client records dropped to make room for new IDs */
    uint64_t expired_arrival; /* AT lines dropped: expired when they arrived */
    struct {
        uint64_t upstream, hits, coalesced, errors, capped, in_flight, cached;
    } places;
    struct { /* the last snapshot; on: 0 without state_dir */
        int on, running;
        double age, duration, fork_ms, fork_ms_max; /* < 0: none yet */
        uint64_t bytes, records, saves, failures, save_id;
        const char *error; /* NULL after a success; borrowed */
    } snap;
};

struct chan_hooks {
    void (*stats)(void *arg, struct chan_stats *st); /* fill ST now */
    void (*on_eof)(void *arg);                       /* the supervisor is gone: stop */
    /* {"type":"save","id":N}: snapshot now, then call chan_saved(). */
    void (*on_save)(void *arg, uint64_t id);
    /* {"type":"config"}: TEXT (LEN bytes, NUL-terminated) is the new
     * generation. 0 applied, 1 ignored (this server must restart for it),
     * -1 failed; ERR says why when not 0. */
    int (*on_config)(void *arg, const char *text, size_t len, char *err, size_t errlen);
    void *arg;
};

/*
 * Takes over FD (the supervisor passes 3): makes it non-blocking, watches it
 * for EOF and starts the heartbeat timer (every EVERY seconds) on LOOP.
 * Returns NULL and the reason in ERR when FD is not a usable socket. The
 * caller owns the result.
 */
struct chan *chan_open(struct ev_loop *loop, int fd, double every, const struct chan_hooks *hooks,
                       char *err, size_t errlen);

/* The worker NAME listens on PORT now: tells the supervisor, with a first
 * heartbeat. */
void chan_ready(struct chan *c, const char *name, unsigned port);

/* Heartbeats every EVERY seconds from now on (a live heartbeat_interval). */
void chan_set_interval(struct chan *c, double every);

/* Sends a heartbeat now (also sent every heartbeat_interval). NULL is fine. */
void chan_heartbeat(struct chan *c);

/* A snapshot ended: {"type":"saved"} and a heartbeat carrying it. */
void chan_saved(struct chan *c);

/* A snapshot ended: {"type":"saved"} and a heartbeat carrying it. */
void chan_saved(struct chan *c);

/* Stops the watchers and closes the channel. NULL is fine. */
void chan_free(struct chan *c);

#endif
