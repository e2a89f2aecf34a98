/*
 * conn_int: what conn.c and conn_pool.c share: the pool's lists and the
 * one-conn steps the pool drives. Only these two files include it.
 */
#ifndef HERD_CONN_INT_H
#define HERD_CONN_INT_H

#include "conn.h"
#include "log.h"

#define READ_CHUNK ((size_t)64 * 1024)

struct conn_pool {
    struct ev_loop *loop;
    const struct cfg_herd *cfg;
    struct conn *conns;       /* every conn not closed yet */
    struct conn *dirty;       /* client conns with output or input to process */
    struct conn *dirty_links; /* the same for links, written first */
    struct conn *dead;        /* closed, to free in conn_pool_reap */
    size_t nclients, nlinks;
    uint64_t next_id;
    struct log_limit over_warn; /* conns closed for output over their limit */
    struct tls_ctx *tls;        /* borrowed: links' TLS, NULL when link_tls = off */
    struct log_limit tls_warn;  /* TLS handshakes that failed or were refused */
    char scratch[READ_CHUNK];
};

/* One conn off a dirty list: input that waited for a resume, then output. */
void conn_flush_one(struct conn *c);

#endif
