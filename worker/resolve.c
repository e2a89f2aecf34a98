/*
 * resolve: the c-ares channel of the worker and the libev watchers that
 * drive it. c-ares tells us which sockets it wants watched through its
 * socket-state callback; each gets an ev_io, and one ev_timer follows
 * ares_timeout so retries and timeouts happen without a blocking call.
 */
#include "resolve.h"

#include <ares.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RES_SOCKS 16

struct res_sock {
    ev_io io;
    int used;
    struct res *r;
};

struct res {
    struct ev_loop *loop;
    ares_channel ch;
    ev_timer timer;
    struct res_sock socks[RES_SOCKS];
};

struct res_query {
    res_cb cb;
    void *arg;
};

static void rearm_timer(struct res *r)
{
    struct timeval tv, *tp = ares_timeout(r->ch, NULL, &tv);
    ev_timer_stop(r->loop, &r->timer);
    if (tp == NULL)
        return;
    ev_timer_set(&r->timer, (double)tp->tv_sec + (double)tp->tv_usec / 1e6 + 0.001, 0.0);
    ev_timer_start(r->loop, &r->timer);
}

static void on_io(struct ev_loop *loop, ev_io *io, int revents)
{
    struct res_sock *s = io->data;
    struct res *r = s->r;
    (void)loop;
    int fd = io->fd;
    ares_process_fd(r->ch, (revents & EV_READ) ? fd : ARES_SOCKET_BAD,
                    (revents & EV_WRITE) ? fd : ARES_SOCKET_BAD);
    rearm_timer(r);
}

static void on_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct res *r = t->data;
    (void)loop;
    (void)revents;
    ares_process_fd(r->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    rearm_timer(r);
}

static void on_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
    struct res *r = data;
    struct res_sock *free_slot = NULL;
    for (size_t i = 0; i < RES_SOCKS; i++) {
        struct res_sock *s = &r->socks[i];
        if (s->used && s->io.fd == fd) {
            ev_io_stop(r->loop, &s->io);
            s->used = 0;
            free_slot = s;
            break;
        }
        if (!s->used && free_slot == NULL)
            free_slot = s;
    }
    if (!readable && !writable)
        return;
    if (free_slot == NULL)
        return; /* more sockets than slots: the timer still drives it */
    int ev = (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0);
    ev_io_init(&free_slot->io, on_io, fd, ev);
    free_slot->io.data = free_slot;
    free_slot->r = r;
    free_slot->used = 1;
    ev_io_start(r->loop, &free_slot->io);
}

struct res *res_new(struct ev_loop *loop, char *err, size_t errlen)
{
    static int lib_ok;
    if (!lib_ok && ares_library_init(ARES_LIB_INIT_ALL) != ARES_SUCCESS) {
        snprintf(err, errlen, "c-ares: library init failed");
        return NULL;
    }
    lib_ok = 1;
    struct res *r = calloc(1, sizeof *r);
    if (r == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    r->loop = loop;
    struct ares_options o = {.sock_state_cb = on_sock_state, .sock_state_cb_data = r};
    int mask = ARES_OPT_SOCK_STATE_CB;
    /* HERD_RESOLV_CONF names another resolv.conf: the test suite points it at
     * a loopback name server, so no test query leaves the machine. */
    char *conf = getenv("HERD_RESOLV_CONF");
    if (conf != NULL && *conf != '\0') {
        o.resolvconf_path = conf;
        mask |= ARES_OPT_RESOLVCONF;
    }
    int rc = ares_init_options(&r->ch, &o, mask);
    if (rc != ARES_SUCCESS) {
        snprintf(err, errlen, "c-ares: %s", ares_strerror(rc));
        free(r);
        return NULL;
    }
    ev_init(&r->timer, on_timer);
    r->timer.data = r;
    return r;
}

void res_free(struct res *r)
{
    if (r == NULL)
        return;
    ares_destroy(r->ch); /* runs the pending callbacks with ARES_EDESTRUCTION */
    for (size_t i = 0; i < RES_SOCKS; i++)
        if (r->socks[i].used)
            ev_io_stop(r->loop, &r->socks[i].io);
    ev_timer_stop(r->loop, &r->timer);
    free(r);
}

static void on_addrinfo(void *arg, int status, int timeouts, struct ares_addrinfo *ai)
{
    struct res_query *q = arg;
    struct res_result out = {0};
    (void)timeouts;
    if (status == ARES_EDESTRUCTION) {
        out.gone = 1;
    } else if (status != ARES_SUCCESS || ai == NULL) {
        out.err = ares_strerror(status);
    } else {
        for (struct ares_addrinfo_node *n = ai->nodes; n && out.n < RES_MAX_ADDRS; n = n->ai_next) {
            const void *a = NULL;
            if (n->ai_family == AF_INET)
                a = &((const struct sockaddr_in *)(const void *)n->ai_addr)->sin_addr;
            else if (n->ai_family == AF_INET6)
                a = &((const struct sockaddr_in6 *)(const void *)n->ai_addr)->sin6_addr;
            if (a && inet_ntop(n->ai_family, a, out.addr[out.n], RES_ADDR_MAX))
                out.n++;
        }
        out.ok = out.n > 0;
        if (!out.ok)
            out.err = "no address";
    }
    if (ai)
        ares_freeaddrinfo(ai);
    res_cb cb = q->cb;
    void *cbarg = q->arg;
    free(q);
    cb(cbarg, &out);
}

void res_lookup(struct res *r, const char *host, res_cb cb, void *arg)
{
    struct res_query *q = calloc(1, sizeof *q);
    if (q == NULL) {
        struct res_result out = {.err = "out of memory"};
        cb(arg, &out);
        return;
    }
    q->cb = cb;
    q->arg = arg;
    /* ARES_AI_ENVHOSTS: $CARES_HOSTS, when set, names the hosts file read
     * instead of /etc/hosts (the tests' names come from their own file). */
    struct ares_addrinfo_hints h = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = ARES_AI_ENVHOSTS};
    ares_getaddrinfo(r->ch, host, NULL, &h, on_addrinfo, q);
    rearm_timer(r);
}

int res_host_is_numeric(const char *host)
{
    unsigned char a[16];
    return strcmp(host, "localhost") == 0 || inet_pton(AF_INET, host, a) == 1 ||
           inet_pton(AF_INET6, host, a) == 1;
}

struct res_now {
    struct ev_loop *loop;
    int done;
    struct res_result r;
};

static void now_done(void *arg, const struct res_result *r)
{
    struct res_now *n = arg;
    if (r->gone)
        return;
    n->done = 1;
    n->r = *r;
    ev_break(n->loop, EVBREAK_ALL);
}

static void now_timeout(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)t;
    (void)revents;
    ev_break(loop, EVBREAK_ALL);
}

int res_resolve_now(const char *host, double wait, char addr[RES_ADDR_MAX], char *err,
                    size_t errlen)
{
    struct res_now n = {.loop = ev_loop_new(EVFLAG_AUTO)};
    if (n.loop == NULL) {
        snprintf(err, errlen, "cannot resolve %s: no event loop", host);
        return -1;
    }
    struct res *r = res_new(n.loop, err, errlen);
    if (r == NULL) {
        ev_loop_destroy(n.loop);
        return -1;
    }
    res_lookup(r, host, now_done, &n); /* may answer at once (hosts file) */
    if (!n.done) {
        ev_timer t;
        ev_timer_init(&t, now_timeout, wait, 0.0);
        ev_timer_start(n.loop, &t);
        ev_run(n.loop, 0);
        ev_timer_stop(n.loop, &t);
    }
    res_free(r);
    ev_loop_destroy(n.loop);
    if (!n.done) {
        snprintf(err, errlen, "cannot resolve %s: no answer within %.0f s", host, wait);
        return -1;
    }
    if (!n.r.ok) {
        snprintf(err, errlen, "cannot resolve %s: %s", host, n.r.err);
        return -1;
    }
    memcpy(addr, n.r.addr[0], RES_ADDR_MAX);
    return 0;
}
