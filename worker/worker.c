/*
 * worker: the process-wide state of a herd-worker and its start/stop order.
 * Start: configuration, log, loop and signals, store, Places, channel, conn
 * pool, listener, links; then links dial and the supervisor hears "ready".
 * Graceful stop (SIGTERM, SIGINT, channel EOF): stop accepting and reading,
 * answer what was read, and once no client is left write what the links are
 * owed; exit when every conn is closed or after stop_drain. The modules never
 * call back into this file except through the hooks it registers.
 */
#include "worker.h"

#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "chan.h"
#include "client.h"
#include "config.h"
#include "conn.h"
#include "fsutil.h"
#include "links.h"
#include "live.h"
#include "log.h"
#include "mono.h"
#include "places.h"
#include "server.h"
#include "snapshot.h"
#include "store.h"
#include "tls.h"

struct worker {
    struct ev_loop *loop;
    struct cfg_herd *cfg;          /* owned */
    const struct cfg_server *self; /* borrowed from cfg */
    size_t self_index;
    struct store *store;      /* owned */
    struct places *places;    /* owned */
    struct conn_pool *pool;   /* owned: every connection */
    struct tls_ctx *tls;      /* owned: the links' TLS; NULL with link_tls = off */
    struct server *server;    /* owned: the listener and loop hooks */
    struct links *links;      /* owned */
    struct chan *chan;        /* owned; NULL standalone */
    struct snap *snap;        /* owned; NULL without state_dir */
    struct client_ctx client; /* what client conns work with */
    ev_signal sterm, sint, susr1;
    ev_timer expire_timer;   /* store_expire_step in small steps */
    struct store_stats told; /* expiry and eviction counts last logged */
    double told_at;          /* monotonic: when they were */
    ev_timer drain_timer;    /* stop_drain */
    ev_prepare stop_check;   /* while stopping: is everything written? */
    int stopping;
    int links_drained;
};

static void fill_stats(void *arg, struct chan_stats *st)
{
    struct worker *w = arg;
    struct links_stats ls;
    struct places_stats ps;
    st->clients = store_count(w->store);
    st->connections = conn_pool_clients(w->pool);
    links_count(w->links, &st->links_up, &st->links_total);
    st->links_syncing = links_syncing(w->links);
    st->requests = w->client.stats.requests;
    st->iamat = w->client.stats.iamat;
    st->whatsat = w->client.stats.whatsat;
    st->invalid = w->client.stats.invalid;
    struct store_stats ss;
    store_get_stats(w->store, &ss);
    st->expired = ss.expired;
    st->evicted = ss.evicted;
    st->expired_arrival = ss.expired_arrival;
    links_get_stats(w->links, &ls);
    st->floods_in = ls.floods_in;
    st->floods_out = ls.floods_out;
    if (w->snap) {
        struct snap_stats sn;
        snap_get_stats(w->snap, &sn);
        st->snap.on = 1;
        st->snap.running = sn.running;
        st->snap.age = sn.age;
        st->snap.duration = sn.duration;
        st->snap.fork_ms = sn.fork_ms;
        st->snap.fork_ms_max = sn.fork_ms_max;
        st->snap.bytes = sn.bytes;
        st->snap.records = sn.records;
        st->snap.saves = sn.saves;
        st->snap.failures = sn.failures;
        st->snap.save_id = sn.save_id;
        st->snap.error = sn.error;
    }
    places_get_stats(w->places, &ps);
    st->places.upstream = ps.upstream;
    st->places.hits = ps.hits;
    st->places.coalesced = ps.coalesced;
    st->places.errors = ps.errors;
    st->places.capped = ps.capped;
    st->places.in_flight = ps.in_flight;
    st->places.cached = ps.cached;
}

/* Records a step looks at: ~100 us of work (250 deletions) at most; at one
 * step a millisecond while records are due, 1 M expired records go in ~4 s. */
#define EXPIRE_BUDGET 1000
/* Between steps while expired records remain, and while none is due. */
#define EXPIRE_BUSY 0.001
#define EXPIRE_IDLE 0.1
/* The expiry and eviction summary is logged at most this often. */
#define EXPIRE_LOG_EVERY 10.0

/* Logs what expiry and eviction did since the last summary, if anything. */
static void expire_summary(struct worker *w)
{
    double now = mono_now();
    struct store_stats ss;
    if (now - w->told_at < EXPIRE_LOG_EVERY)
        return;
    store_get_stats(w->store, &ss);
    if (ss.expired != w->told.expired || ss.evicted != w->told.evicted ||
        ss.expired_arrival != w->told.expired_arrival)
        log_info("store: %llu expired, %llu evicted, %llu dropped as expired on arrival in "
                 "%.0f s; %zu records, %zu bytes",
                 (unsigned long long)(ss.expired - w->told.expired),
                 (unsigned long long)(ss.evicted - w->told.evicted),
                 (unsigned long long)(ss.expired_arrival - w->told.expired_arrival),
                 w->told_at > 0 ? now - w->told_at : EXPIRE_LOG_EVERY, store_count(w->store),
                 store_bytes(w->store));
    w->told = ss;
    w->told_at = now;
}

static void on_expire_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct worker *w = t->data;
    (void)revents;
    int more = store_expire_step(w->store, (int64_t)(ev_now(loop) * 1e9), EXPIRE_BUDGET);
    t->repeat = more ? EXPIRE_BUSY : EXPIRE_IDLE;
    ev_timer_again(loop, t);
    expire_summary(w);
}

/* A link came up, went down or synced: the supervisor hears it now. */
static void on_links_change(void *arg)
{
    struct worker *w = arg;
    chan_heartbeat(w->chan);
}

/* Every conn is closed: nothing more is owed. */
static void on_stop_check(struct ev_loop *loop, ev_prepare *p, int revents)
{
    struct worker *w = p->data;
    (void)revents;
    if (!w->links_drained && conn_pool_clients(w->pool) == 0) {
        w->links_drained = 1; /* no client can make us flood any more */
        links_drain(w->links);
    }
    if (conn_pool_clients(w->pool) == 0 && conn_pool_links(w->pool) == 0)
        ev_break(loop, EVBREAK_ALL);
}

static void on_drain_timeout(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct worker *w = t->data;
    (void)revents;
    log_warn("stop_drain reached: %zu clients and %zu links still open, %zu bytes unwritten",
             conn_pool_clients(w->pool), conn_pool_links(w->pool), conn_pool_queued(w->pool));
    ev_break(loop, EVBREAK_ALL);
}

/* Starts a graceful stop; a second request stops at once. */
static void worker_stop(struct worker *w, const char *why)
{
    if (w->stopping) {
        log_info("stopping now: %s", why);
        ev_break(w->loop, EVBREAK_ALL);
        return;
    }
    w->stopping = 1;
    /* Within the supervisor's stop_timeout, whatever stop_drain says. */
    double drain = w->cfg->stop_drain;
    if (drain > w->cfg->stop_timeout / 2)
        drain = w->cfg->stop_timeout / 2;
    log_info("stopping: %s (draining for at most %.1f s)", why, drain);
    server_stop_listening(w->server);
    links_stop(w->links);
    conn_pool_stop_reading(w->pool);
    ev_timer_init(&w->drain_timer, on_drain_timeout, drain, 0.);
    w->drain_timer.data = w;
    ev_timer_start(w->loop, &w->drain_timer);
    ev_prepare_init(&w->stop_check, on_stop_check);
    w->stop_check.data = w;
    ev_prepare_start(w->loop, &w->stop_check);
}

/* Every store_put follows one of these: a change counter for snapshots. */
static uint64_t count_changes(void *arg)
{
    const struct worker *w = arg;
    struct links_stats ls = {0};
    if (w->links) /* NULL while the snapshot is being loaded */
        links_get_stats(w->links, &ls);
    return w->client.stats.iamat + ls.floods_in;
}

static void on_saved(void *arg)
{
    const struct worker *w = arg;
    chan_saved(w->chan);
}

static void on_chan_save(void *arg, uint64_t id)
{
    struct worker *w = arg;
    if (w->snap)
        snap_force(w->snap, id);
}

/* The worker's store, empty, with its limits: made at start and by a load. */
static struct store *make_store(void *arg)
{
    const struct worker *w = arg;
    struct store *st = store_new();
    if (st != NULL) {
        store_set_max(st, w->cfg->max_clients);
        store_set_max_memory(st, w->cfg->max_store_memory);
        store_set_ttl(st, w->cfg->client_ttl);
    }
    return st;
}

/* With state_dir: the snapshot is loaded before anything holds the store
 * (the load may replace it) and before the worker listens. */
static int setup_snap(struct worker *w)
{
    char err[256];
    const struct snap_hooks hooks = {count_changes, on_saved, make_store, w};
    if (w->cfg->state_dir == NULL)
        return 0;
    w->snap = snap_new(w->loop, w->cfg, w->self->name, w->store, &hooks, err, sizeof err);
    if (w->snap == NULL) {
        log_error("snapshot: %s", err);
        return -1;
    }
    snap_load(w->snap, &w->store);
    return 0;
}

/* A new generation from the supervisor: its live values into our cfg, then
 * every module that copied one is told. */
static int on_chan_config(void *arg, const char *text, size_t len, char *err, size_t errlen)
{
    struct worker *w = arg;
    enum live_result r = live_apply(w->cfg, w->self, text, len, err, errlen);
    if (r != LIVE_APPLIED)
        return r == LIVE_IGNORED ? 1 : -1;
    log_set_level(w->cfg->log_level);
    store_set_max(w->store, w->cfg->max_clients);
    store_set_max_memory(w->store, w->cfg->max_store_memory);
    store_set_ttl(w->store, w->cfg->client_ttl);
    chan_set_interval(w->chan, w->cfg->heartbeat_interval);
    snap_reconfigure(w->snap, w->cfg);
    conn_pool_reconfigure(w->pool);
    links_reconfigure(w->links);
    char why[256];
    if (places_reconfigure(w->places, w->cfg, why, sizeof why) < 0)
        log_error("live configuration: places settings not applied: %s", why);
    log_info("live configuration applied (log_level %s)", cfg_level_name(w->cfg->log_level));
    return 0;
}

static void on_chan_eof(void *arg)
{
    worker_stop(arg, "supervisor channel closed");
}

static void on_stop_signal(struct ev_loop *loop, ev_signal *sig, int revents)
{
    (void)loop;
    (void)revents;
    worker_stop(sig->data, strsignal(sig->signum));
}

static void on_reopen_signal(struct ev_loop *loop, ev_signal *sig, int revents)
{
    (void)loop;
    (void)sig;
    (void)revents;
    if (log_reopen() < 0)
        fprintf(stderr, "herd-worker: cannot reopen log: %s\n", strerror(errno));
    else
        log_info("log reopened");
}

static int open_log(const struct cfg_herd *cfg, const char *name, int also_stderr)
{
    char path[PATH_MAX];
    if (fs_mkdir_p(cfg->log_dir, 0755) < 0 ||
        fs_join(path, sizeof path, cfg->log_dir, name, ".log") < 0 ||
        log_open(path, name, cfg->log_level, also_stderr) < 0) {
        fprintf(stderr, "herd-worker: %s: log in %s: %s\n", name, cfg->log_dir, strerror(errno));
        return -1;
    }
    return 0;
}

static void start_signals(struct worker *w)
{
    ev_signal_init(&w->sterm, on_stop_signal, SIGTERM);
    ev_signal_init(&w->sint, on_stop_signal, SIGINT);
    ev_signal_init(&w->susr1, on_reopen_signal, SIGUSR1);
    w->sterm.data = w->sint.data = w->susr1.data = w;
    ev_signal_start(w->loop, &w->sterm);
    ev_signal_start(w->loop, &w->sint);
    ev_signal_start(w->loop, &w->susr1);
}

/* The modules below the listener; returns the exit status on failure, or 0. */
static int setup_core(struct worker *w, const struct worker_opts *o)
{
    char err[256];
    w->store = make_store(w);
    w->pool = conn_pool_new(w->loop, w->cfg);
    if (w->store == NULL || w->pool == NULL) {
        log_error("out of memory");
        return 1;
    }
    if (w->cfg->link_tls != CFG_TLS_OFF) {
        w->tls = tls_ctx_new(w->cfg, w->self, err, sizeof err);
        if (w->tls == NULL) {
            log_error("link_tls: %s", err);
            return 1;
        }
        conn_pool_set_tls(w->pool, w->tls);
    }
    if (setup_snap(w) < 0)
        return 1;
    ev_timer_init(&w->expire_timer, on_expire_timer, 0., EXPIRE_IDLE);
    w->expire_timer.data = w;
    ev_timer_again(w->loop, &w->expire_timer);
    w->places = places_new(w->loop, w->cfg, err, sizeof err);
    if (w->places == NULL) {
        log_error("places: %s", err);
        return 1;
    }
    if (o->channel_fd >= 0) {
        const struct chan_hooks hooks = {.stats = fill_stats,
                                         .on_eof = on_chan_eof,
                                         .on_save = on_chan_save,
                                         .on_config = on_chan_config,
                                         .arg = w};
        w->chan =
            chan_open(w->loop, o->channel_fd, w->cfg->heartbeat_interval, &hooks, err, sizeof err);
        if (w->chan == NULL) {
            log_error("channel: %s", err);
            return 2;
        }
    }
    return 0;
}

/* Builds every module in order; returns the exit status on failure, or 0. */
static int worker_setup(struct worker *w, const struct worker_opts *o)
{
    char err[256];
    int rc = setup_core(w, o);
    if (rc != 0)
        return rc;
    const struct links_hooks lh = {.on_change = on_links_change, .arg = w};
    w->links = links_new(w->loop, w->pool, w->store, w->cfg, w->self_index, &lh, err, sizeof err);
    if (w->links == NULL) {
        log_error("links: %s", err);
        return 1;
    }
    w->client = (struct client_ctx){
        .self = w->self->name, .store = w->store, .links = w->links, .places = w->places};
    w->server = server_new(w->loop, w->pool, w->cfg, w->self->host, w->self->port, &client_ops,
                           &w->client, err, sizeof err);
    if (w->server == NULL) {
        log_error("cannot listen on %s:%u: %s", w->self->host, (unsigned)w->self->port, err);
        return 1;
    }
    log_info("listening on %s:%u (pid %ld, %zu neighbours)", w->self->host, (unsigned)w->self->port,
             (long)getpid(), w->self->npeers);
    links_start(w->links);
    if (w->snap)
        snap_start(w->snap);
    chan_ready(w->chan, w->self->name, w->self->port);
    return 0;
}

/* Links first (their conns' callbacks need them), then the pool (client
 * conns cancel their Places questions), then the listener and its hook. */
static void worker_teardown(struct worker *w)
{
    if (w->stopping) {
        ev_timer_stop(w->loop, &w->drain_timer);
        ev_prepare_stop(w->loop, &w->stop_check);
    }
    ev_timer_stop(w->loop, &w->expire_timer);
    snap_free(w->snap);
    links_free(w->links);
    conn_pool_free(w->pool);
    tls_ctx_free(w->tls);
    server_free(w->server);
    chan_free(w->chan);
    places_free(w->places);
    store_free(w->store);
    log_info("stopped");
    log_close();
    cfg_free(w->cfg);
}

/* The supervisor's generation: the bytes it validated, named by FILE. */
static int load_fd(const struct worker_opts *o, struct worker *w, char *err, size_t errlen)
{
    size_t len = 0;
    char *text = fs_read_fd(o->config_fd, 16 << 20, &len);
    if (text == NULL) {
        snprintf(err, errlen, "herd-worker: --config-fd %d: %s", o->config_fd, strerror(errno));
        return -1;
    }
    close(o->config_fd);
    int rc = cfg_load_string(text, o->config, &w->cfg, err, errlen);
    free(text);
    return rc;
}

static int load(const struct worker_opts *o, struct worker *w)
{
    char err[512];
    if ((o->config_fd >= 0 ? load_fd(o, w, err, sizeof err)
                           : cfg_load(o->config, &w->cfg, err, sizeof err)) < 0) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    long idx = cfg_index(w->cfg, o->name);
    if (idx < 0) {
        fprintf(stderr, "herd-worker: %s: no [server %s] in %s\n", o->name, o->name, o->config);
        cfg_free(w->cfg);
        return -1;
    }
    w->self_index = (size_t)idx;
    w->self = &w->cfg->servers[idx];
    return 0;
}

int worker_run(const struct worker_opts *o)
{
    static struct worker w; /* large, and lives as long as the process */
    if (load(o, &w) < 0)
        return 2;
    char comm[16];
    snprintf(comm, sizeof comm, "herd-%s", w.self->name);
    prctl(PR_SET_NAME, comm, 0, 0, 0); /* ps -e and top show the server */
    signal(SIGPIPE, SIG_IGN);
    /* Output buffers of a few hundred KiB come and go with every pipelined
     * WHATSAT burst: serve them from the heap, not fresh mmaps that fault
     * their pages in again each time (a third of the time in the cache
     * benchmark). Memory stays bounded by client_output_max per client. */
    mallopt(M_MMAP_THRESHOLD, 4 << 20);
    mallopt(M_TRIM_THRESHOLD, 16 << 20);
    if (open_log(w.cfg, w.self->name, o->log_stderr) < 0) {
        cfg_free(w.cfg);
        return 1;
    }
    if (o->channel_fd >= 0 && !isatty(STDERR_FILENO))
        log_own_stderr(); /* detached: stderr is our log, keep it so after rotation */
    w.loop = ev_default_loop(EVFLAG_AUTO);
    start_signals(&w);
    int rc = worker_setup(&w, o);
    if (rc == 0) {
        ev_run(w.loop, 0);
        snap_stop_save(w.snap); /* a graceful stop: the store as it is now */
    }
    worker_teardown(&w);
    return rc;
}
