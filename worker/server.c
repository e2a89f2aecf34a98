/*
 * server: the listener and the once-per-iteration hook. Accepting is bounded
 * per wake-up, backs off on EMFILE (a queued connection would otherwise wake
 * the loop forever) and refuses clients past max_connections; links do not
 * count, so a herd full of clients still links up.
 */
#include "server.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "mono.h"
#include "net.h"
#include "resolve.h"

/* The log is written at most every LOG_DELAY seconds, or when LOG_BATCH bytes
 * wait: a write(2) to a file may stall on the disk, and one per loop
 * iteration put those stalls on the flood path (docs/bench.md, S3). */
#define LOG_DELAY 0.02
#define LOG_BATCH ((size_t)32 * 1024)

/* How long a worker waits at start for its listen address's name; past it
 * the worker exits 1 and the supervisor starts it again later. */
#define SERVER_RESOLVE_WAIT 5.0

struct server {
    struct ev_loop *loop;
    struct conn_pool *pool;
    const struct cfg_herd *cfg;
    const struct conn_ops *client_ops;
    void *client_ctx;
    int lfd;
    ev_io lio;
    ev_timer accept_pause; /* after EMFILE: retry accepting later */
    ev_prepare prep;
    ev_timer log_timer; /* writes the log within LOG_DELAY when idle */
    double log_written; /* monotonic: when the log was last written */
    struct log_limit accept_warn, refuse_warn;
};

static void accept_one(struct server *srv, int fd, const char *peer)
{
    struct conn *c = conn_accept(srv->pool, fd, peer, srv->client_ops, srv->client_ctx);
    if (c == NULL) {
        log_error("client %s: out of memory, dropped", peer);
        return;
    }
    conn_set_idle(c, srv->cfg->idle_timeout);
    log_debug("client %s: connected", c->peer);
}

/* accept() failed with ERR. Out of descriptors or memory, the queued
 * connection would wake the loop forever: accepting pauses for a moment. */
static void accept_failed(struct server *srv, int err)
{
    uint64_t quiet;
    int scarce = err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
    if (err == EAGAIN || err == EINTR || err == ECONNABORTED)
        return;
    if (scarce) {
        ev_io_stop(srv->loop, &srv->lio);
        ev_timer_start(srv->loop, &srv->accept_pause);
    }
    if (log_limit(&srv->accept_warn, 1.0, &quiet))
        log_warn("accept: %s%s (%llu more since the last warning)", strerror(err),
                 scarce ? "; pausing accepts for 100 ms" : "", (unsigned long long)quiet);
}

static void on_accept(struct ev_loop *loop, ev_io *io, int revents)
{
    struct server *srv = io->data;
    (void)loop;
    (void)revents;
    for (int i = 0; i < 64; i++) { /* bounded: other watchers get their turn */
        char peer[64];
        int fd = net_accept(srv->lfd, peer, sizeof peer);
        uint64_t quiet;
        if (fd < 0) {
            accept_failed(srv, errno);
            return;
        }
        size_t n = conn_pool_clients(srv->pool);
        if (n >= srv->cfg->max_connections) {
            if (log_limit(&srv->refuse_warn, 1.0, &quiet))
                log_warn("client %s: refused, %zu clients connected (max_connections; %llu "
                         "more refused since the last warning)",
                         peer, n, (unsigned long long)quiet);
            close(fd);
            continue;
        }
        accept_one(srv, fd, peer);
    }
}

static void on_accept_pause(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct server *srv = t->data;
    (void)revents;
    if (srv->lfd >= 0)
        ev_io_start(loop, &srv->lio);
}

static void on_log_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct server *srv = t->data;
    (void)loop;
    (void)revents;
    log_flush();
    srv->log_written = mono_now();
}

/* Writes the log when enough waits or it has waited LOG_DELAY; otherwise
 * makes sure a timer will, so an idle worker's lines still reach the file. */
static void flush_log(struct server *srv)
{
    size_t n = log_buffered();
    if (n == 0)
        return;
    double now = mono_now();
    if (n >= LOG_BATCH || now - srv->log_written >= LOG_DELAY) {
        ev_timer_stop(srv->loop, &srv->log_timer);
        log_flush();
        srv->log_written = now;
    } else if (!ev_is_active(&srv->log_timer)) {
        ev_timer_set(&srv->log_timer, LOG_DELAY, 0.);
        ev_timer_start(srv->loop, &srv->log_timer);
    }
}

/* Once per iteration, before the loop blocks: write out, then free. */
static void on_prepare(struct ev_loop *loop, ev_prepare *p, int revents)
{
    struct server *srv = p->data;
    (void)loop;
    (void)revents;
    conn_pool_flush(srv->pool);
    conn_pool_reap(srv->pool);
    flush_log(srv);
}

struct server *server_new(struct ev_loop *loop, struct conn_pool *pool, const struct cfg_herd *cfg,
                          const char *host, uint16_t port, const struct conn_ops *client_ops,
                          void *client_ctx, char *err, size_t errlen)
{
    struct server *srv = calloc(1, sizeof *srv);
    if (srv == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    *srv = (struct server){
        .loop = loop, .pool = pool, .cfg = cfg, .client_ops = client_ops, .client_ctx = client_ctx};
    /* A name is resolved once, here, by the resolver links use (resolve.c),
     * before the loop runs: the same answer check-config and the
     * neighbours get, from the same hosts file and resolv.conf. */
    char addr[RES_ADDR_MAX];
    if (!res_host_is_numeric(host)) {
        if (res_resolve_now(host, SERVER_RESOLVE_WAIT, addr, err, errlen) < 0) {
            free(srv);
            return NULL;
        }
        log_info("listen address %s is %s", host, addr);
        host = addr;
    }
    srv->lfd = net_tcp_listen(host, port, 1024, err, errlen);
    if (srv->lfd < 0) {
        free(srv);
        return NULL;
    }
    ev_io_init(&srv->lio, on_accept, srv->lfd, EV_READ);
    srv->lio.data = srv;
    ev_io_start(loop, &srv->lio);
    ev_timer_init(&srv->accept_pause, on_accept_pause, 0.1, 0.);
    srv->accept_pause.data = srv;
    ev_init(&srv->log_timer, on_log_timer);
    srv->log_timer.data = srv;
    ev_prepare_init(&srv->prep, on_prepare);
    srv->prep.data = srv;
    ev_prepare_start(loop, &srv->prep);
    return srv;
}

void server_stop_listening(struct server *srv)
{
    if (srv->lfd < 0)
        return;
    ev_io_stop(srv->loop, &srv->lio);
    ev_timer_stop(srv->loop, &srv->accept_pause);
    close(srv->lfd);
    srv->lfd = -1;
}

void server_free(struct server *srv)
{
    if (srv == NULL)
        return;
    server_stop_listening(srv);
    ev_prepare_stop(srv->loop, &srv->prep);
    ev_timer_stop(srv->loop, &srv->log_timer);
    log_flush();
    free(srv);
}
