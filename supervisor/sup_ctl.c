/*
 * sup_ctl: the control socket run_dir/herd.sock (mode 0600, own uid and
 * root only, by SO_PEERCRED). Each connection carries one request line and gets one JSON
 * reply, then is closed. Clients are non-blocking with a bounded request and
 * a deadline, so a stuck client never holds up the loop. A request whose
 * effect takes time (kill, restart, reload) parks its client as WAITING
 * until the supervisor sees the effect (sup_ctl_proc_event, sup_ctl_job_done)
 * or the wait's own deadline passes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ctlproto.h"
#include "log.h"
#include "net.h"
#include "sup.h"

#define CLIENT_DEADLINE 5.0 /* seconds to send a request and read the reply */
#define DRAIN_DEADLINE  1.0 /* seconds to wait for the client's close */
#define CLIENT_MAX      32  /* concurrent control connections */

enum client_state {
    CL_READING,  /* waiting for the request line */
    CL_WAITING,  /* request taken, its reply waits for an event (wait) */
    CL_WRITING,  /* sending the reply */
    CL_DRAINING, /* reply sent and our side shut: discard input until EOF, so
                  * that unread input never turns our close into an RST that
                  * destroys the reply before the client reads it */
};

struct sup_client {
    struct sup *sup;
    struct sup_client *next;
    enum client_state state;
    int fd;
    ev_io io;
    ev_timer deadline;
    struct sup_wait wait;
    json_object *pending; /* owned: the reply being completed while WAITING */
    char *out;            /* owned: the reply, once made */
    size_t outlen, outpos;
    size_t inlen;
    char in[CTLPROTO_REQ_MAX];
};

static ev_timer accept_pause; /* accept stops for a moment when out of fds */

static size_t client_count(const struct sup *s)
{
    size_t n = 0;

    for (const struct sup_client *c = s->clients; c != NULL; c = c->next)
        n++;
    return n;
}

static void client_destroy(struct sup_client *c)
{
    ev_io_stop(c->sup->loop, &c->io);
    ev_timer_stop(c->sup->loop, &c->deadline);
    close(c->fd);
    json_object_put(c->pending);
    free(c->out);
    free(c);
}

/* Unlinks and frees C; callers return right after, so nothing touches it. */
static void client_free(struct sup_client *c)
{
    struct sup_client **pp = &c->sup->clients;

    while (*pp != NULL && *pp != c)
        pp = &(*pp)->next;
    if (*pp == c)
        *pp = c->next;
    client_destroy(c);
}

/* Writes what it can; 1 when the whole reply is out (or the peer left). */
static int client_write(struct sup_client *c)
{
    while (c->outpos < c->outlen) {
        ssize_t n =
            send(c->fd, c->out + c->outpos, c->outlen - c->outpos, MSG_NOSIGNAL | MSG_DONTWAIT);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (n < 0)
            return 1;
        c->outpos += (size_t)n;
    }
    return 1;
}

static void client_drain(struct sup_client *c)
{
    struct ev_loop *loop = c->sup->loop;

    c->state = CL_DRAINING;
    shutdown(c->fd, SHUT_WR);
    ev_io_stop(loop, &c->io);
    ev_io_set(&c->io, c->fd, EV_READ);
    ev_io_start(loop, &c->io);
    ev_timer_stop(loop, &c->deadline);
    ev_timer_set(&c->deadline, DRAIN_DEADLINE, 0.);
    ev_timer_start(loop, &c->deadline);
}

/* Discards input; 1 at EOF or on an error. */
static int client_discard(struct sup_client *c)
{
    char buf[512];

    for (;;) {
        ssize_t n = read(c->fd, buf, sizeof(buf));

        if (n > 0)
            continue;
        if (n < 0 && errno == EINTR)
            continue;
        return !(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
    }
}

/* Sets REPLY (consumed) as C's answer and starts sending it. */
static void client_reply(struct sup_client *c, json_object *reply)
{
    size_t len = 0;
    const char *s = json_object_to_json_string_length(
        reply, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);

    c->out = malloc(len + 1);
    if (c->out != NULL) {
        memcpy(c->out, s, len);
        c->out[len] = '\n';
        c->outlen = len + 1;
    }
    json_object_put(reply);
    ev_io_stop(c->sup->loop, &c->io);
    ev_timer_stop(c->sup->loop, &c->deadline);
    ev_timer_set(&c->deadline, CLIENT_DEADLINE, 0.);
    ev_timer_start(c->sup->loop, &c->deadline);
    if (client_write(c)) {
        client_drain(c);
        return;
    }
    c->state = CL_WRITING;
    ev_io_set(&c->io, c->fd, EV_WRITE);
    ev_io_start(c->sup->loop, &c->io);
}

static json_object *error_reply(const char *msg)
{
    json_object *o = json_object_new_object();

    json_object_object_add(o, "ok", json_object_new_boolean(0));
    json_object_object_add(o, "error", json_object_new_string(msg));
    return o;
}

/* Reads the request; 1 when C is complete (a line, EOF or an error). */
static int client_read(struct sup_client *c, int *failed)
{
    for (;;) {
        ssize_t n = read(c->fd, c->in + c->inlen, sizeof(c->in) - 1 - c->inlen);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (n < 0) {
            *failed = 1;
            return 1;
        }
        if (n == 0)
            return 1; /* EOF: the request is what came, newline or not */
        c->inlen += (size_t)n;
        c->in[c->inlen] = '\0';
        if (memchr(c->in, '\n', c->inlen) != NULL)
            return 1;
        if (c->inlen == sizeof(c->in) - 1) {
            *failed = 2;
            return 1;
        }
    }
}

static void client_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    struct sup_client *c = io->data;
    int failed = 0;

    (void)loop;
    (void)revents;
    if (c->state == CL_WRITING) {
        if (client_write(c))
            client_drain(c);
        return;
    }
    if (c->state == CL_DRAINING) {
        if (client_discard(c))
            client_free(c);
        return;
    }
    if (!client_read(c, &failed))
        return;
    if (failed == 1 || (failed == 0 && c->inlen == 0)) {
        client_free(c);
        return;
    }
    if (failed == 2) {
        client_reply(c, error_reply("request too long"));
        return;
    }
    c->in[strcspn(c->in, "\r\n")] = '\0';
    {
        json_object *r = sup_req_handle(c->sup, c->in, &c->wait);

        if (c->wait.kind == SUP_WAIT_NONE) {
            client_reply(c, r);
            return;
        }
        c->pending = r;
        c->state = CL_WAITING;
        ev_io_stop(loop, &c->io);
        ev_timer_stop(loop, &c->deadline);
        ev_timer_set(&c->deadline, c->wait.deadline, 0.);
        ev_timer_start(loop, &c->deadline);
    }
}

/* Completes a DEATH wait: what the supervisor did after the exit. */
static void death_seen(struct sup_client *c, const struct sup_proc *p, int exited)
{
    json_object *o = c->pending;

    c->pending = NULL;
    c->state = CL_WRITING;
    json_object_object_add(o, "exited", json_object_new_boolean(exited));
    if (p != NULL) {
        json_object_object_add(
            o, "new_pid", p->pid > 0 && p->pid != c->wait.pid ? json_object_new_int(p->pid) : NULL);
        json_object_object_add(o, "state", json_object_new_string(sup_state_name(p->state)));
    }
    client_reply(c, o);
}

void sup_ctl_proc_event(struct sup *s)
{
    for (struct sup_client *c = s->clients; c != NULL; c = c->next) {
        struct sup_proc *p;

        if (c->state != CL_WAITING || c->wait.kind != SUP_WAIT_DEATH)
            continue;
        p = sup_proc_find(s, c->wait.name);
        if (p == NULL || p->pid != c->wait.pid)
            death_seen(c, p, 1);
    }
}

void sup_ctl_job_done(struct sup *s, unsigned id, json_object *reply)
{
    for (struct sup_client *c = s->clients; c != NULL; c = c->next) {
        if (c->state == CL_WAITING && c->wait.kind == SUP_WAIT_JOB && c->wait.job == id) {
            c->state = CL_WRITING;
            client_reply(c, json_object_get(reply));
        }
    }
}

static void deadline_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct sup_client *c = t->data;

    (void)loop;
    (void)revents;
    if (c->state == CL_WAITING && c->wait.kind == SUP_WAIT_DEATH) {
        death_seen(c, sup_proc_find(c->sup, c->wait.name), 0);
        return;
    }
    if (c->state == CL_WAITING) {
        c->state = CL_WRITING;
        client_reply(c, error_reply("still running; see status"));
        return;
    }
    if (c->state != CL_DRAINING)
        log_warn("control: client timed out");
    client_free(c);
}

/* Refuses anyone but our own uid, whatever the socket's mode says. */
static int peer_allowed(int fd)
{
    unsigned uid;

    if (net_peer_uid(fd, &uid) != 0) {
        log_warn("control: peer credentials: %s", strerror(errno));
        return 0;
    }
    /* root may anyway signal or trace us; logrotate's reopen-logs runs as it. */
    if (uid != (unsigned)geteuid() && uid != 0) {
        log_warn("control: refused a connection from uid %u", uid);
        return 0;
    }
    return 1;
}

static void client_new(struct sup *s, int fd)
{
    struct sup_client *c;

    if (client_count(s) >= CLIENT_MAX || (c = calloc(1, sizeof(*c))) == NULL) {
        log_warn("control: too many clients, connection dropped");
        close(fd);
        return;
    }
    c->sup = s;
    c->fd = fd;
    c->next = s->clients;
    s->clients = c;
    ev_io_init(&c->io, client_cb, fd, EV_READ);
    ev_timer_init(&c->deadline, deadline_cb, CLIENT_DEADLINE, 0.);
    c->io.data = c->deadline.data = c;
    ev_io_start(s->loop, &c->io);
    ev_timer_start(s->loop, &c->deadline);
    if (!peer_allowed(fd))
        client_reply(c, error_reply("permission denied"));
}

static void pause_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct sup *s = t->data;

    (void)revents;
    ev_io_start(loop, &s->ctl_w);
}

static void accept_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    struct sup *s = io->data;

    (void)revents;
    for (;;) {
        int fd = accept4(s->ctl_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd >= 0) {
            client_new(s, fd);
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
            /* The connection stays queued and the io watcher would spin. */
            log_error("control: accept: %s; pausing 1 s", strerror(errno));
            ev_io_stop(loop, io);
            ev_timer_start(loop, &accept_pause);
        }
        return;
    }
}

int sup_ctl_open(struct sup *s, char *err, size_t errlen)
{
    /* We hold the pid file's lock, so a socket file here is a crash's
     * leftover: nobody can be listening on it. */
    if (unlink(s->sock_path) != 0 && errno != ENOENT) {
        snprintf(err, errlen, "%s: %s", s->sock_path, strerror(errno));
        return -1;
    }
    s->ctl_fd = net_unix_listen(s->sock_path, 0600, err, errlen);
    if (s->ctl_fd < 0)
        return -1;
    ev_io_init(&s->ctl_w, accept_cb, s->ctl_fd, EV_READ);
    s->ctl_w.data = s;
    ev_io_start(s->loop, &s->ctl_w);
    ev_timer_init(&accept_pause, pause_cb, 1., 0.);
    accept_pause.data = s;
    return 0;
}

void sup_ctl_close(struct sup *s)
{
    struct sup_client *c = s->clients, *next;

    s->clients = NULL;
    for (; c != NULL; c = next) {
        next = c->next;
        /* A reply still queued (the answer to "stop") gets a last chance. */
        client_write(c);
        client_destroy(c);
    }
    if (s->ctl_fd >= 0) {
        ev_io_stop(s->loop, &s->ctl_w);
        ev_timer_stop(s->loop, &accept_pause);
        close(s->ctl_fd);
        s->ctl_fd = -1;
        unlink(s->sock_path);
    }
}
