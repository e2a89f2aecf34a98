/*
 * config_check: what can only be checked once the whole file is read (every
 * server has a port, no two share one, every peer exists), the undirected
 * link table, and cfg_server_changed(), which decides what a reload restarts:
 * the server's own keys, its neighbours' addresses and the CFG_K_RESTART
 * herd-wide keys of config_keys.c's table.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config_internal.h"

#define PEER_SEPS ", \t\r\n\v\f"

struct edge {
    size_t a, b;
};

struct edges {
    struct edge *v;
    size_t n, cap;
};

/* Same port on these two hosts cannot both listen. */
static int hosts_clash(const char *a, const char *b)
{
    static const char *const any[] = {"0.0.0.0", "::", "*"};
    for (size_t i = 0; i < sizeof any / sizeof any[0]; i++) {
        if (strcmp(a, any[i]) == 0 || strcmp(b, any[i]) == 0)
            return 1;
    }
    return strcasecmp(a, b) == 0;
}

/* S's TLS files: its own section's, else [herd]'s; cert mode needs all three. */
static int tls_paths(struct cfgi_state *st, struct cfg_server *s)
{
    const struct cfg_herd *h = st->h;
    if ((!s->tls_ca && h->tls_ca && !(s->tls_ca = strdup(h->tls_ca))) ||
        (!s->tls_cert && h->tls_cert && !(s->tls_cert = strdup(h->tls_cert))) ||
        (!s->tls_key && h->tls_key && !(s->tls_key = strdup(h->tls_key)))) {
        cfgi_fail(st, 0, "out of memory");
        return -1;
    }
    if (h->link_tls == CFG_TLS_CERT && (!s->tls_ca || !s->tls_cert || !s->tls_key))
        cfgi_fail(st, s->line,
                  "[server %s]: link_tls = cert needs tls_ca, tls_cert and tls_key (in [herd] "
                  "or in [server %s])",
                  s->name, s->name);
    return 0;
}

static void check_servers(struct cfgi_state *st)
{
    struct cfg_herd *h = st->h;

    if (h->nservers == 0) {
        cfgi_fail(st, 0, "no [server NAME] section");
        return;
    }
    for (size_t i = 0; i < h->nservers; i++) {
        struct cfg_server *s = &h->servers[i];
        if (s->port == 0)
            cfgi_fail(st, s->line, "[server %s] has no port", s->name);
        if (!s->host && !(s->host = strdup("127.0.0.1"))) {
            cfgi_fail(st, 0, "out of memory");
            return;
        }
        if (tls_paths(st, s) < 0)
            return;
    }
    for (size_t j = 1; j < h->nservers; j++) {
        const struct cfg_server *b = &h->servers[j];
        for (size_t i = 0; i < j && b->port; i++) {
            const struct cfg_server *a = &h->servers[i];
            if (a->port == b->port && hosts_clash(a->host, b->host)) {
                cfgi_fail(st, st->tmp[j].line_port,
                          "duplicate port %u on %s: server %s (line %d) has it already",
                          (unsigned)b->port, b->host, a->name, st->tmp[i].line_port);
                break;
            }
        }
    }
}

static int edge_push(struct edges *e, size_t a, size_t b)
{
    if (e->n + 2 > e->cap) {
        size_t cap = e->cap ? e->cap * 2 : 32;
        struct edge *v = realloc(e->v, cap * sizeof *v);
        if (!v)
            return -1;
        e->v = v;
        e->cap = cap;
    }
    e->v[e->n++] = (struct edge){a, b};
    e->v[e->n++] = (struct edge){b, a};
    return 0;
}

static int edge_cmp(const void *x, const void *y)
{
    const struct edge *p = x, *q = y;
    if (p->a != q->a)
        return p->a < q->a ? -1 : 1;
    return (p->b > q->b) - (p->b < q->b);
}

/* Both directions of every link named in server I's peers=. Returns -1 on error. */
static int collect_peers(struct cfgi_state *st, size_t i, struct edges *e)
{
    const struct cfg_server *s = &st->h->servers[i];
    int line = st->tmp[i].line_peers;
    char *p = st->tmp[i].peers;

    while (p && *(p += strspn(p, PEER_SEPS)) != '\0') {
        size_t len = strcspn(p, PEER_SEPS);
        char *next = p[len] ? p + len + 1 : p + len;
        p[len] = '\0';
        long j = cfg_index(st->h, p);
        if (j < 0) {
            cfgi_fail(st, line, "unknown peer %s in [server %s]", p, s->name);
            return -1;
        }
        if ((size_t)j == i) {
            cfgi_fail(st, line, "link to itself: [server %s] names itself in peers", s->name);
            return -1;
        }
        if (edge_push(e, i, (size_t)j) != 0) {
            cfgi_fail(st, 0, "out of memory");
            return -1;
        }
        p = next;
    }
    return 0;
}

/* Sorted, unique, symmetric peers arrays from every server's peers=. */
static void link_servers(struct cfgi_state *st)
{
    struct cfg_herd *h = st->h;
    struct edges e = {NULL, 0, 0};
    size_t k = 0;

    for (size_t i = 0; i < h->nservers; i++) {
        if (collect_peers(st, i, &e) != 0)
            goto done;
    }
    if (e.n)
        qsort(e.v, e.n, sizeof e.v[0], edge_cmp);
    while (k < e.n) {
        struct cfg_server *s = &h->servers[e.v[k].a];
        size_t end = k;
        while (end < e.n && e.v[end].a == e.v[k].a)
            end++;
        if (!(s->peers = malloc((end - k) * sizeof *s->peers))) {
            cfgi_fail(st, 0, "out of memory");
            goto done;
        }
        for (; k < end; k++) {
            if (s->npeers == 0 || s->peers[s->npeers - 1] != e.v[k].b)
                s->peers[s->npeers++] = e.v[k].b;
        }
    }
done:
    free(e.v);
}

void cfgi_finish(struct cfgi_state *st)
{
    cfgi_finish_herd(st);
    check_servers(st);
    link_servers(st); /* even after an error: an earlier line may be wrong here */
}

static int str_eq(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

/* The same neighbours, by name, at the same addresses. */
static int same_peers(const struct cfg_herd *ha, const struct cfg_server *a,
                      const struct cfg_herd *hb, const struct cfg_server *b)
{
    if (a->npeers != b->npeers)
        return 0;
    for (size_t i = 0; i < a->npeers; i++) {
        const struct cfg_server *pa = &ha->servers[a->peers[i]];
        const struct cfg_server *pb = NULL;
        for (size_t j = 0; j < b->npeers && !pb; j++) {
            if (strcmp(hb->servers[b->peers[j]].name, pa->name) == 0)
                pb = &hb->servers[b->peers[j]];
        }
        if (!pb || pa->port != pb->port || !str_eq(pa->host, pb->host))
            return 0;
    }
    return 1;
}

int cfg_server_changed(const struct cfg_herd *ha, const struct cfg_server *a,
                       const struct cfg_herd *hb, const struct cfg_server *b)
{
    if (!str_eq(a->name, b->name) || !str_eq(a->host, b->host) || a->port != b->port ||
        !str_eq(a->node, b->node) || !str_eq(a->tls_ca, b->tls_ca) ||
        !str_eq(a->tls_cert, b->tls_cert) || !str_eq(a->tls_key, b->tls_key))
        return 1;
    return !same_peers(ha, a, hb, b) || cfg_herd_differs(ha, hb, CFG_K_RESTART);
}

static int host_is_loopback(const char *host)
{
    struct in_addr a4;
    struct in6_addr a6;
    if (strcmp(host, "localhost") == 0)
        return 1;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    return inet_pton(AF_INET6, host, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}

const struct cfg_server *cfg_plaintext_across_machines(const struct cfg_herd *h)
{
    if (h->link_tls != CFG_TLS_OFF)
        return NULL;
    for (size_t i = 0; i < h->nservers; i++)
        if (h->servers[i].npeers > 0 && !host_is_loopback(h->servers[i].host))
            return &h->servers[i];
    return NULL;
}
