/*
 * sup_chan: the supervisor's end of each worker channel: reads the worker's
 * newline-terminated JSON messages ("ready", "heartbeat", "applied"), keeps
 * the last heartbeat for status, sends live configurations ("config"), and
 * SIGKILLs a worker that stays silent for heartbeat_timeout (hung, or stopped
 * with SIGSTOP); sup_proc restarts it. Every message wakes the running job.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ctlproto.h"
#include "mono.h"
#include "log.h"
#include "net.h"
#include "sup.h"

static void on_ready(struct sup_proc *p, json_object *msg)
{
    json_object *port;

    if (p->state != SUP_STARTING)
        return;
    p->state = SUP_RUNNING;
    if (json_object_object_get_ex(msg, "port", &port))
        log_info("%s: pid %d ready on port %d after %.3f s", p->name, (int)p->pid,
                 json_object_get_int(port), mono_now() - p->started);
    if (p->reopen_pending) {
        p->reopen_pending = 0;
        kill(p->pid, SIGUSR1);
    }
}

static void on_line(struct sup_proc *p, char *line)
{
    json_object *msg = json_tokener_parse(line);
    json_object *type;
    const char *t;

    if (msg == NULL || !json_object_is_type(msg, json_type_object) ||
        !json_object_object_get_ex(msg, "type", &type)) {
        log_warn("%s: bad channel message ignored", p->name);
        json_object_put(msg);
        return;
    }
    /* Any well-formed message proves the worker's loop turns. */
    p->last_msg = mono_now();
    p->hb_timer.repeat = p->sup->cfg->heartbeat_timeout;
    if (p->state == SUP_STARTING || p->state == SUP_RUNNING)
        ev_timer_again(p->sup->loop, &p->hb_timer);
    t = json_object_get_string(type);
    if (strcmp(t, "ready") == 0) {
        on_ready(p, msg);
    } else if (strcmp(t, "heartbeat") == 0) {
        json_object_object_del(msg, "type");
        json_object_put(p->stats);
        p->stats = msg;
        if (p->state == SUP_RUNNING)
            p->hb_after_ready++;
        sup_job_poke(p->sup);
        return; /* kept */
    } else if (strcmp(t, "applied") == 0) {
        sup_job_applied(p, msg);
    }
    json_object_put(msg);
    sup_job_poke(p->sup);
}

/* Hands every complete line of rbuf to on_line and keeps the rest. */
static void take_lines(struct sup_proc *p)
{
    size_t start = 0;

    for (size_t i = 0; i < p->rlen; i++) {
        if (p->rbuf[i] != '\n')
            continue;
        p->rbuf[i] = '\0';
        on_line(p, p->rbuf + start);
        start = i + 1;
    }
    memmove(p->rbuf, p->rbuf + start, p->rlen - start);
    p->rlen -= start;
    if (p->rlen == sizeof(p->rbuf)) {
        log_warn("%s: channel line over %zu bytes dropped", p->name, sizeof(p->rbuf));
        p->rlen = 0;
    }
}

static void chan_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    struct sup_proc *p = io->data;

    (void)revents;
    for (;;) {
        ssize_t n = read(p->chan_fd, p->rbuf + p->rlen, sizeof(p->rbuf) - p->rlen);

        if (n > 0) {
            p->rlen += (size_t)n;
            take_lines(p);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        /* EOF: the worker is exiting; ev_child reports the exit. A worker
         * that lives on without its channel falls to the heartbeat check. */
        ev_io_stop(loop, io);
        ev_io_stop(loop, &p->chan_wio);
        close(p->chan_fd);
        p->chan_fd = -1;
        return;
    }
}

static void hb_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct sup_proc *p = t->data;

    (void)revents;
    ev_timer_stop(loop, t);
    if (p->pid <= 0 || (p->state != SUP_STARTING && p->state != SUP_RUNNING))
        return;
    log_warn("%s: pid %d silent for %.1f s: SIGKILL", p->name, (int)p->pid, t->repeat);
    p->hb_killed = 1;
    kill(p->pid, SIGKILL);
}

static void chan_flush(struct sup_proc *p)
{
    struct ev_loop *loop = p->sup->loop;
    size_t off = 0;

    while (p->chan_fd >= 0 && off < p->outlen) {
        ssize_t n = send(p->chan_fd, p->out + off, p->outlen - off, MSG_NOSIGNAL | MSG_DONTWAIT);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n < 0) { /* the worker is going; ev_child will tell */
            off = p->outlen;
            break;
        }
        off += (size_t)n;
    }
    memmove(p->out, p->out + off, p->outlen - off);
    p->outlen -= off;
    if (p->outlen > 0 && p->chan_fd >= 0)
        ev_io_start(loop, &p->chan_wio);
    else
        ev_io_stop(loop, &p->chan_wio);
}

static void chan_wcb(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)loop;
    (void)revents;
    chan_flush(io->data);
}

int sup_chan_send_config(struct sup_proc *p)
{
    json_object *o;

    if (p->chan_fd < 0 || p->pid <= 0)
        return -1;
    o = json_object_new_object();
    json_object_object_add(o, "type", json_object_new_string("config"));
    json_object_object_add(o, "gen", json_object_new_int64(p->sup->gen.no));
    json_object_object_add(o, "text",
                           json_object_new_string_len(p->sup->gen.text, (int)p->sup->gen.len));
    return sup_chan_send(p, o);
}

int sup_chan_send(struct sup_proc *p, json_object *o)
{
    const char *text;
    size_t len = 0;
    char *out;

    if (p->chan_fd < 0 || p->pid <= 0) {
        json_object_put(o);
        return -1;
    }
    text = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN, &len);
    out = len + 1 <= CTLPROTO_CHAN_MAX ? realloc(p->out, p->outlen + len + 1) : NULL;
    if (out == NULL) {
        json_object_put(o);
        return -1;
    }
    memcpy(out + p->outlen, text, len);
    out[p->outlen + len] = '\n';
    p->out = out;
    p->outlen += len + 1;
    json_object_put(o);
    chan_flush(p);
    return 0;
}

void sup_chan_start(struct sup_proc *p, int fd)
{
    struct ev_loop *loop = p->sup->loop;

    if (net_set_nonblock(fd) != 0)
        log_warn("%s: channel: %s", p->name, strerror(errno));
    p->chan_fd = fd;
    p->rlen = 0;
    p->last_msg = 0;
    ev_io_init(&p->chan_w, chan_cb, fd, EV_READ);
    ev_io_init(&p->chan_wio, chan_wcb, fd, EV_WRITE);
    p->chan_w.data = p->chan_wio.data = p;
    ev_io_start(loop, &p->chan_w);
    p->outlen = 0;
    /* Start-up counts against the same timeout: a worker stuck before its
     * first message is as useless as one stuck later. */
    ev_timer_init(&p->hb_timer, hb_cb, 0., p->sup->cfg->heartbeat_timeout);
    p->hb_timer.data = p;
    ev_timer_again(loop, &p->hb_timer);
}

void sup_chan_close(struct sup_proc *p)
{
    struct ev_loop *loop = p->sup->loop;

    ev_timer_stop(loop, &p->hb_timer);
    ev_io_stop(loop, &p->chan_wio);
    free(p->out);
    p->out = NULL;
    p->outlen = 0;
    if (p->chan_fd >= 0) {
        ev_io_stop(loop, &p->chan_w);
        close(p->chan_fd);
        p->chan_fd = -1;
    }
    p->rlen = 0;
}
