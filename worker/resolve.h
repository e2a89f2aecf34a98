/*
 * resolve: DNS names for neighbour hosts, looked up with c-ares on the
 * worker's libev loop (one ev_io per resolver socket, one ev_timer for
 * ares_timeout), so a lookup never blocks the loop. A lookup's callback runs
 * once, from the loop; after res_free it runs with ok = 0 and RES_GONE set,
 * and must touch nothing then. Names come from /etc/hosts (or the file
 * $CARES_HOSTS names), then DNS per resolv.conf (or $HERD_RESOLV_CONF).
 */
#ifndef HERD_RESOLVE_H
#define HERD_RESOLVE_H

#include <ev.h>
#include <stddef.h>

#define RES_ADDR_MAX  46 /* INET6_ADDRSTRLEN */
#define RES_MAX_ADDRS 4

struct res;

struct res_result {
    int ok;   /* 1: n numeric addresses, in the resolver's order */
    int gone; /* the resolver is being freed: do nothing */
    size_t n;
    char addr[RES_MAX_ADDRS][RES_ADDR_MAX];
    const char *err; /* when !ok */
};

typedef void (*res_cb)(void *arg, const struct res_result *r);

/* A resolver on LOOP (reads /etc/hosts and resolv.conf). NULL with err. */
struct res *res_new(struct ev_loop *loop, char *err, size_t errlen);
/* Cancels every lookup (their callbacks run with gone = 1) and frees. */
void res_free(struct res *r);
/* Starts looking HOST up (TCP addresses, IPv4 and IPv6). */
void res_lookup(struct res *r, const char *host, res_cb cb, void *arg);

/* Looks HOST up at once, for a caller with no loop running yet (the
 * worker's listen address, resolved once at start): blocks up to WAIT
 * seconds on a private loop. 0 with the first address in ADDR, or -1 with
 * the reason in ERR. */
int res_resolve_now(const char *host, double wait, char addr[RES_ADDR_MAX], char *err,
                    size_t errlen);

/* 1 when HOST needs no lookup: a numeric address, or localhost (which
 * common/net.c maps to 127.0.0.1 itself). */
int res_host_is_numeric(const char *host);

#endif
