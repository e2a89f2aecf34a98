/*
 * conn: one non-blocking TCP connection of a worker, client or neighbour
 * link, as a small state machine, split into lines; and the pool that owns
 * every conn of the worker. A conn owns its fd, its watchers and its bounded
 * input and output buffers. Output is queued and written once per loop
 * iteration (conn_pool_flush) or when the socket turns writable, so
 * pipelined replies and flooded updates share write(2) calls. A conn is
 * never freed inside its own callbacks: conn_close() moves it to the pool's
 * dead list and conn_pool_reap() frees it at a safe point of the loop.
 */
#ifndef HERD_CONN_H
#define HERD_CONN_H

#include <ev.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "config.h"

struct conn;
struct conn_pool;

enum conn_state {
    CONN_OPEN = 0,    /* reading lines, writing what is queued */
    CONN_HALF_CLOSED, /* no more input (the peer sent EOF, or the worker stopped
                         reading): lines already read are still handed over and
                         the owner still queues what it owes, then drains */
    CONN_DRAINING,    /* the owner is done: write what is queued, then shut down */
    CONN_LINGER,      /* our side is shut down: read and drop until the peer
                         closes (a close with unread input would send a reset
                         that can destroy the replies), at most CONN_LINGER_S */
    CONN_CLOSED,      /* fd closed, waiting to be freed by the pool */
};

/* How long a lingering conn waits for the peer's EOF. */
#define CONN_LINGER_S 2.0

struct tls_ctx;

struct conn_ops {
    /* A dialled connection is established (links only). */
    void (*on_connect)(struct conn *c);
    /* One line, without its '\n' (a '\r' before it is kept). After EOF a last
     * line without '\n' counts as a line too. */
    void (*on_line)(struct conn *c, char *line, size_t len);
    /* A line grew past the limit; FIRST holds its first LIMIT bytes. The rest
     * of the input read so far is dropped. */
    void (*on_overlong)(struct conn *c, const char *first, size_t limit);
    /* No more input will come and every line read has been handed over: the
     * owner calls conn_drain() once it has queued all it owes. NULL: the conn
     * drains at once. */
    void (*on_eof)(struct conn *c);
    /* The conn is closing (its fd is already gone); release what hangs off it. */
    void (*on_close)(struct conn *c, const char *why);
    /* Output fell back under the low-water mark (links refill a resync). */
    void (*on_drain)(struct conn *c);
};

struct conn {
    int fd;
    enum conn_state state;
    const struct conn_ops *ops;
    void *ctx; /* the owning module's context, set by whoever made the conn */
    void *ud;  /* the owner's per-conn state; the owner frees it in on_close */
    struct conn_pool *pool;
    ev_io rio, wio;
    ev_timer idle;
    double idle_timeout; /* 0: none */
    struct buf in, out;
    size_t max_line;
    size_t out_max;
    size_t low_water; /* on_drain fires below this (0: never) */
    char peer[64];    /* "ip:port" */
    unsigned reading_paused : 1;
    unsigned dirty : 1;       /* on the pool's flush list */
    unsigned is_link : 1;     /* counted as a link, not a client */
    unsigned dialing : 1;     /* connect in progress */
    unsigned resume : 1;      /* buffered lines wait for processing */
    unsigned peer_eof : 1;    /* the peer sent EOF: a last partial line counts */
    unsigned eof_told : 1;    /* on_eof has run */
    unsigned tls_hs : 1;      /* a TLS handshake is in progress: no lines yet */
    unsigned sniffed : 1;     /* the first input was looked at (TLS or not) */
    unsigned tls_rwant_w : 1; /* a TLS read waits for the socket to be writable */
    struct tls_conn *tls;     /* owned: the TLS session, NULL for plaintext */
    double idle_after_hs;     /* the idle timeout to restore after the handshake */
    struct conn *prev, *next; /* the pool's list of live conns */
    struct conn *next_dirty;
    uint64_t id;
};

/* A pool on LOOP whose conns take their limits from CFG when they are made
 * (CFG is borrowed; live changes to it apply to new conns). NULL: no memory. */
struct conn_pool *conn_pool_new(struct ev_loop *loop, const struct cfg_herd *cfg);

/* Links use TLS with CTX (borrowed, NULL: off): conns accepted from now on
 * whose first byte starts a TLS handshake get a TLS session, whose
 * handshake must be done within link_timeout of that byte. With NULL a
 * ClientHello is refused with a warning (link_tls = off here). */
void conn_pool_set_tls(struct conn_pool *pool, struct tls_ctx *ctx);

/* Closes every conn (without writing) and frees the pool. NULL is fine. */
void conn_pool_free(struct conn_pool *pool);

/* Writes what every conn has queued (links first) and processes input that
 * waited for a resume: once per loop iteration. */
void conn_pool_flush(struct conn_pool *pool);

/* Frees the conns closed since the last call: at a safe point of the loop. */
void conn_pool_reap(struct conn_pool *pool);

/* Stops reading on every conn (graceful stop); lines read are still answered. */
void conn_pool_stop_reading(struct conn_pool *pool);

/* A live reload changed the cfg: open client conns take max_line_length,
 * client_output_max and idle_timeout from it now (links are the links'). */
void conn_pool_reconfigure(struct conn_pool *pool);

/* Live (not closed) conns: clients, links. Bytes queued for output. */
size_t conn_pool_clients(const struct conn_pool *pool);
size_t conn_pool_links(const struct conn_pool *pool);
size_t conn_pool_queued(const struct conn_pool *pool);

/* Takes over an accepted FD from PEER ("ip:port") as a client conn. NULL
 * (FD closed) when out of memory. */
struct conn *conn_accept(struct conn_pool *pool, int fd, const char *peer,
                         const struct conn_ops *ops, void *ctx);

/*
 * Starts a non-blocking dial of a link conn. ops->on_connect runs when it is
 * up, ops->on_close when it fails. NULL with the reason in err when it could
 * not even start.
 */
struct conn *conn_dial(struct conn_pool *pool, const char *host, uint16_t port,
                       const struct conn_ops *ops, void *ctx, void *ud, char *err, size_t errlen);

/* Wraps a dialled conn (conn_dial, before it connects) in TLS with the
 * pool's context: on_connect runs once the handshake is done, on_close if
 * it fails or takes over link_timeout (from the dial). -1 (the conn is
 * closed): no context or no memory. */
int conn_start_tls(struct conn *c);

/* 1 when the conn runs TLS (its handshake done). */
int conn_is_tls(const struct conn *c);

/* After the handshake: the peer's certificate names NAME or HOST (always 1
 * in psk mode, 0 for a plaintext conn). See tls_peer_names(). */
int conn_tls_peer_names(const struct conn *c, const char *name, const char *host);

/* "TLSv1.3 TLS_AES_128_GCM_SHA256 psk", or "plaintext". */
void conn_tls_describe(const struct conn *c, char *out, size_t outlen);

/* Queues LEN bytes for the peer. Past out_max the conn closes ("output over
 * limit") and -1 is returned; -1 too once the conn is lingering or closed. */
int conn_send(struct conn *c, const void *data, size_t len);

/* The owner is done: what is queued is still written, then the conn shuts
 * down (and lingers for the peer's EOF) and closes. */
void conn_drain(struct conn *c, const char *why);

/* No more reading, as if the peer had sent EOF except that a partial line is
 * dropped: the lines read are handed over, then on_eof runs (not within this
 * call). */
void conn_stop_reading(struct conn *c);

/* Closes now (queued output is dropped). Safe to call more than once and from
 * any callback; the memory is freed later by the pool. */
void conn_close(struct conn *c, const char *why);

/* Pauses or resumes reading (back-pressure). */
void conn_pause(struct conn *c, int paused);

/* Restarts the idle timer with a new timeout (0 disables it). */
void conn_set_idle(struct conn *c, double seconds);

/* Hands a conn to another module (a client that turned out to be a
 * neighbour): new ops, context and per-conn state; AS_LINK counts it as a link. */
void conn_set_ops(struct conn *c, const struct conn_ops *ops, void *ctx, void *ud, int as_link);

#endif
