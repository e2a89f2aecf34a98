/*
 * places_multi: libcurl multi_socket on libev.
 *
 * libcurl says which sockets to watch (socket callback) and when to wake it
 * (timer callback); the loop tells it what happened (socket_action). Only
 * curl_multi_info_read says which transfer finished. Facts that shaped this
 * file (see /work/shared/LIBS.md): the timer is in seconds as a double (the
 * official example's integer division spins the loop), libcurl is never
 * called from its own callbacks, REMOVE may mean "not now", and the socket
 * callback can run during curl_multi_cleanup.
 */
#include "places_multi.h"

#include <stdio.h>
#include <stdlib.h>

#include "log.h"

/* One socket libcurl asked us to watch; hangs off the socket (curl_multi_assign). */
struct places_sock {
    ev_io io; /* first: the watcher is the sock */
    struct places_multi *m;
    struct places_sock *prev, *next; /* every sock, so none can leak */
};

struct places_multi {
    struct ev_loop *loop;
    CURLM *multi;
    ev_timer timer; /* libcurl's one timeout */
    struct places_sock *socks;
    places_multi_done_cb done;
    void *arg;
    int curl_ready; /* counts in places_multi_users */
};

/* curl_global_init is not thread-safe and must come before anything else of
 * libcurl's; the last places_multi_free undoes it, for leak checkers. */
static int places_multi_users;

/* Only CURLMSG_DONE says which transfer finished. */
static void places_multi_check_done(struct places_multi *m)
{
    CURLMsg *msg;
    int left;

    while ((msg = curl_multi_info_read(m->multi, &left)) != NULL) {
        if (msg->msg == CURLMSG_DONE)
            m->done(m->arg, msg->easy_handle, msg->data.result);
    }
}

static void places_multi_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct places_sock *s = (struct places_sock *)w;
    struct places_multi *m = s->m;
    int fd = w->fd; /* s may be freed inside socket_action */
    int action = 0, running;

    (void)loop;
    if (revents & EV_READ)
        action |= CURL_CSELECT_IN;
    if (revents & EV_WRITE)
        action |= CURL_CSELECT_OUT;
    if (revents & EV_ERROR)
        action |= CURL_CSELECT_ERR;
    curl_multi_socket_action(m->multi, fd, action, &running);
    places_multi_check_done(m);
}

static void places_multi_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct places_multi *m = w->data;
    int running;

    (void)loop;
    (void)revents;
    curl_multi_socket_action(m->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    places_multi_check_done(m);
}

/* CURLMOPT_TIMERFUNCTION: only (re)arms the timer. Calling libcurl from here
 * would re-enter it; a timeout of 0 means "soon" and becomes a 0 s timer
 * that calls it from the loop. -1 means no timeout. */
static int places_multi_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    struct places_multi *m = userp;

    (void)multi;
    ev_timer_stop(m->loop, &m->timer);
    if (timeout_ms >= 0) {
        ev_timer_set(&m->timer, (double)timeout_ms / 1000.0, 0.0);
        ev_timer_start(m->loop, &m->timer);
    }
    return 0;
}

static void places_sock_free(struct places_multi *m, struct places_sock *s)
{
    ev_io_stop(m->loop, &s->io);
    if (s->prev)
        s->prev->next = s->next;
    else
        m->socks = s->next;
    if (s->next)
        s->next->prev = s->prev;
    free(s);
}

static struct places_sock *places_sock_new(struct places_multi *m, curl_socket_t fd)
{
    struct places_sock *s = calloc(1, sizeof *s);

    if (!s)
        return NULL;
    s->m = m;
    s->next = m->socks;
    if (m->socks)
        m->socks->prev = s;
    m->socks = s;
    ev_io_init(&s->io, places_multi_io_cb, fd, 0);
    curl_multi_assign(m->multi, fd, s);
    return s;
}

/* CURLMOPT_SOCKETFUNCTION: mirrors what libcurl wants to hear about FD in
 * an ev_io. REMOVE may mean "not now": the socket can come back later, and
 * then gets a new watcher (its fd number may be reused by then). */
static int places_multi_sock_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    struct places_multi *m = userp;
    struct places_sock *s = socketp;
    int events = 0;

    (void)easy;
    if (what == CURL_POLL_REMOVE) {
        if (s)
            places_sock_free(m, s);
        return 0;
    }
    if (what & CURL_POLL_IN)
        events |= EV_READ;
    if (what & CURL_POLL_OUT)
        events |= EV_WRITE;
    if (!s && !(s = places_sock_new(m, fd)))
        return -1; /* libcurl fails the transfers; each still gets its answer */
    ev_io_stop(m->loop, &s->io);
    ev_io_set(&s->io, fd, events);
    if (events)
        ev_io_start(m->loop, &s->io);
    return 0;
}

static int places_multi_global_init(struct places_multi *m, char *err, size_t errlen)
{
    const curl_version_info_data *vi;
    CURLcode rc;

    if (places_multi_users == 0) {
        rc = curl_global_init(CURL_GLOBAL_DEFAULT);
        if (rc != CURLE_OK) {
            snprintf(err, errlen, "libcurl: %s", curl_easy_strerror(rc));
            return -1;
        }
        vi = curl_version_info(CURLVERSION_NOW);
        if (vi->features & CURL_VERSION_ASYNCHDNS)
            log_info("places: libcurl %s (%s), asynchronous DNS", vi->version,
                     vi->ssl_version ? vi->ssl_version : "no TLS");
        else
            log_warn("places: libcurl %s resolves names synchronously: a slow DNS "
                     "lookup of the Places host blocks this worker",
                     vi->version);
    }
    places_multi_users++;
    m->curl_ready = 1;
    return 0;
}

struct places_multi *places_multi_new(struct ev_loop *loop, long max_connections,
                                      places_multi_done_cb done, void *arg, char *err,
                                      size_t errlen)
{
    struct places_multi *m = calloc(1, sizeof *m);

    if (!m) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    m->loop = loop;
    m->done = done;
    m->arg = arg;
    ev_timer_init(&m->timer, places_multi_timeout_cb, 0.0, 0.0);
    m->timer.data = m;
    if (places_multi_global_init(m, err, errlen) < 0)
        goto fail;
    m->multi = curl_multi_init();
    /* The multi handle's connection cache gives keep-alive reuse (and
     * HTTP/2 multiplexing); transfers beyond the bound wait their turn. */
    if (!m->multi ||
        curl_multi_setopt(m->multi, CURLMOPT_SOCKETFUNCTION, places_multi_sock_cb) != CURLM_OK ||
        curl_multi_setopt(m->multi, CURLMOPT_SOCKETDATA, (void *)m) != CURLM_OK ||
        curl_multi_setopt(m->multi, CURLMOPT_TIMERFUNCTION, places_multi_timer_cb) != CURLM_OK ||
        curl_multi_setopt(m->multi, CURLMOPT_TIMERDATA, (void *)m) != CURLM_OK ||
        curl_multi_setopt(m->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, max_connections) != CURLM_OK ||
        curl_multi_setopt(m->multi, CURLMOPT_MAX_HOST_CONNECTIONS, max_connections) != CURLM_OK ||
        curl_multi_setopt(m->multi, CURLMOPT_MAXCONNECTS, max_connections) != CURLM_OK) {
        snprintf(err, errlen, "cannot set up a libcurl multi handle");
        goto fail;
    }
    return m;
fail:
    places_multi_free(m);
    return NULL;
}

CURLMcode places_multi_add(struct places_multi *m, CURL *easy)
{
    return curl_multi_add_handle(m->multi, easy);
}

void places_multi_remove(struct places_multi *m, CURL *easy)
{
    curl_multi_remove_handle(m->multi, easy);
}

void places_multi_free(struct places_multi *m)
{
    if (!m)
        return;
    /* First the multi handle: closing its cached connections can still call
     * the socket and timer callbacks, which need the watchers alive. */
    if (m->multi)
        curl_multi_cleanup(m->multi);
    for (struct places_sock *s = m->socks, *next; s; s = next) {
        next = s->next;
        ev_io_stop(m->loop, &s->io);
        free(s);
    }
    m->socks = NULL;
    ev_timer_stop(m->loop, &m->timer);
    if (m->curl_ready && --places_multi_users == 0)
        curl_global_cleanup();
    free(m);
}
