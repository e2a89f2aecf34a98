/*
 * sup_roll: jobs, the reloads and restarts that return only once their
 * effect is visible. A job has two phases. First the live phase: running
 * workers whose live settings changed get the new generation over their
 * channel and answer "applied" (or why not), and servers added by a reload
 * must say ready. Then the roll: the workers to restart go one at a time,
 * the next only once the previous is ready again and its heartbeat shows
 * every link to a running neighbour up and resynced (links_syncing 0), each
 * within SUP_ROLL_WAIT. A worker with no running neighbour to resync from is
 * not restarted without --force (its records would be lost), and a step that
 * fails stops the roll: the reply names it and the ones left untouched.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "mono.h"
#include "sup.h"

#define SUP_LIVE_WAIT 10.0 /* seconds for every live answer and added server */
#define SUP_ROLL_WAIT 60.0 /* seconds for one worker to be ready and resynced */

enum job_phase { JOB_IDLE, JOB_LIVE, JOB_ROLL };

struct sup_job {
    struct sup *sup;
    unsigned id;
    int force, no_wait;
    const char *cause; /* "reload" or "restart" */
    enum job_phase phase;
    char **names; /* owned; to restart, in order */
    size_t n, next;
    char *cur; /* borrowed from names: restarting now */
    pid_t cur_old;
    int cur_moved; /* its address changes with this restart */
    ev_tstamp began, cur_began;
    ev_timer timer; /* starts the job, then bounds each phase or step */
    json_object *reply, *live, *restarted, *failed, *left;
};

struct sup_job *sup_job_new(struct sup *s, int force, int no_wait, const char *cause)
{
    struct sup_job *j = calloc(1, sizeof(*j));

    if (j == NULL)
        return NULL;
    j->sup = s;
    j->force = force;
    j->no_wait = no_wait;
    j->cause = cause;
    j->live = json_object_new_object();
    j->restarted = json_object_new_array();
    j->failed = json_object_new_array();
    j->left = json_object_new_array();
    return j;
}

void sup_job_add_restart(struct sup_job *j, struct sup_proc *p)
{
    char **v = realloc(j->names, (j->n + 1) * sizeof(*v));

    if (v == NULL)
        return;
    j->names = v;
    if ((v[j->n] = strdup(p->name)) != NULL)
        j->n++;
}

static void fail(struct sup_job *j, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail(struct sup_job *j, const char *name, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    json_object *o = json_object_new_object();

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap); // NOLINT(clang-analyzer-valist.Uninitialized)
    va_end(ap);
    log_warn("%s %s: %s", j->cause, name, msg);
    json_object_object_add(o, "name", json_object_new_string(name));
    json_object_object_add(o, "error", json_object_new_string(msg));
    json_object_array_add(j->failed, o);
}

static void finish(struct sup_job *j)
{
    struct sup *s = j->sup;
    json_object *r = j->reply;
    size_t nfail = json_object_array_length(j->failed);
    char msg[640];

    ev_timer_stop(s->loop, &j->timer);
    while (j->next < j->n)
        json_object_array_add(j->left, json_object_new_string(j->names[j->next++]));
    if (nfail > 0) {
        json_object *f = json_object_array_get_idx(j->failed, 0);
        json_object *name, *err;

        json_object_object_get_ex(f, "name", &name);
        json_object_object_get_ex(f, "error", &err);
        snprintf(msg, sizeof(msg), "%s: %s%s", json_object_get_string(name),
                 json_object_get_string(err),
                 json_object_array_length(j->left) > 0 ? " (the roll stopped there)" : "");
        json_object_object_add(r, "ok", json_object_new_boolean(0));
        json_object_object_add(r, "error", json_object_new_string(msg));
    }
    json_object_object_add(r, "live", j->live);
    json_object_object_add(r, "restarted", j->restarted);
    json_object_object_add(r, "failed", j->failed);
    json_object_object_add(r, "not_restarted", j->left);
    json_object_object_add(r, "generation", json_object_new_int64(s->gen.no));
    json_object_object_add(r, "seconds", json_object_new_double(mono_now() - j->began));
    log_info("%s done in %.3f s: %zu restarted, %zu failed", j->cause, mono_now() - j->began,
             json_object_array_length(j->restarted), nfail);
    s->job = NULL;
    sup_ctl_job_done(s, j->id, r);
    json_object_put(r);
    for (size_t i = 0; i < j->n; i++)
        free(j->names[i]);
    free(j->names);
    free(j);
}

static void arm(struct sup_job *j, double secs)
{
    ev_timer_stop(j->sup->loop, &j->timer);
    ev_timer_set(&j->timer, secs, 0.);
    ev_timer_start(j->sup->loop, &j->timer);
}

/* Q listens where the running generation says. */
static int at_address(const struct sup *s, const struct sup_proc *q)
{
    const struct cfg_server *srv = cfg_find(s->cfg, q->name);

    return srv != NULL && srv->port == q->port && strcmp(srv->host, q->host) == 0;
}

static int pending(const struct sup_job *j, const char *name)
{
    for (size_t i = j->next; i < j->n; i++)
        if (strcmp(j->names[i], name) == 0)
            return 1;
    return 0;
}

/*
 * Neighbours of P (by the running file) that P can link to once restarted:
 * up in this supervisor, at their new address, and, when P moves, already
 * running the new generation (one still to restart dials P's old address).
 */
static size_t reachable_peers(const struct sup_job *j, const struct sup_proc *p, int moved)
{
    const struct sup *s = j->sup;
    const struct cfg_server *srv = cfg_find(s->cfg, p->name);
    size_t n = 0;

    for (size_t i = 0; srv != NULL && i < srv->npeers; i++) {
        const char *name = s->cfg->servers[srv->peers[i]].name;
        const struct sup_proc *q = sup_proc_find((struct sup *)s, name);

        n += q != NULL && q->pid > 0 && q->state == SUP_RUNNING && q->want != SUP_WANT_REMOVE &&
             at_address(s, q) && !(moved && pending(j, name));
    }
    return n;
}

static long stat_of(const struct sup_proc *p, const char *key)
{
    json_object *v;

    if (p->stats == NULL || !json_object_object_get_ex(p->stats, key, &v))
        return -1;
    return (long)json_object_get_int64(v);
}

/* P runs again, and (unless --no-wait) has every neighbour's resync. */
static int step_done(const struct sup_job *j, const struct sup_proc *p)
{
    if (p->pid <= 0 || p->pid == j->cur_old || p->state != SUP_RUNNING)
        return 0;
    if (j->no_wait)
        return 1;
    return p->hb_after_ready > 0 && stat_of(p, "links_syncing") == 0 &&
           stat_of(p, "links_up") >= (long)reachable_peers(j, p, j->cur_moved);
}

static void next_step(struct sup_job *j)
{
    struct sup *s = j->sup;

    j->cur = NULL;
    while (j->next < j->n) {
        struct sup_proc *p = sup_proc_find(s, j->names[j->next]);

        if (p == NULL || p->held || p->want == SUP_WANT_REMOVE) {
            j->next++;
            continue;
        }
        int moved = !at_address(s, p);

        if (!j->force && s->cfg->state_dir == NULL && p->pid > 0 && stat_of(p, "clients") > 0 &&
            reachable_peers(j, p, moved) == 0) {
            fail(j, p->name,
                 "no running neighbour to resync from: restarting it would lose its %ld records; "
                 "use --force to restart it anyway",
                 stat_of(p, "clients"));
            break;
        }
        j->cur = j->names[j->next++];
        j->cur_old = p->pid;
        j->cur_moved = moved;
        j->cur_began = mono_now();
        log_info("%s: rolling restart of %s (%zu of %zu)", j->cause, p->name, j->next, j->n);
        arm(j, SUP_ROLL_WAIT);
        sup_proc_restart(p, j->cause);
        sup_job_poke(s);
        return;
    }
    finish(j);
}

static int live_pending(const struct sup *s)
{
    for (const struct sup_proc *p = s->procs; p != NULL; p = p->next)
        if (p->live_wait != 0 || (p->job_added && p->state != SUP_RUNNING && !p->held))
            return 1;
    return 0;
}

static void live_timeout(struct sup_job *j)
{
    for (struct sup_proc *p = j->sup->procs; p != NULL; p = p->next) {
        if (p->live_wait != 0) {
            json_object_object_add(j->live, p->name, json_object_new_string("no answer"));
            fail(j, p->name, "no answer to the live configuration within %.0f s", SUP_LIVE_WAIT);
            p->live_wait = 0;
        }
        if (p->job_added && p->state != SUP_RUNNING && !p->held)
            fail(j, p->name, "added, but not ready within %.0f s (%s)", SUP_LIVE_WAIT,
                 sup_state_name(p->state));
        p->job_added = 0;
    }
}

static void begin_roll(struct sup_job *j)
{
    for (struct sup_proc *p = j->sup->procs; p != NULL; p = p->next)
        p->job_added = 0;
    j->phase = JOB_ROLL;
    next_step(j);
}

static void begin_live(struct sup_job *j)
{
    struct sup *s = j->sup;

    j->phase = JOB_LIVE;
    for (struct sup_proc *p = s->procs; p != NULL; p = p->next) {
        if (p->live_wait != 0 && sup_chan_send_config(p) != 0) {
            json_object_object_add(j->live, p->name, json_object_new_string("no channel"));
            p->live_wait = 0;
        }
    }
    arm(j, SUP_LIVE_WAIT);
    sup_job_poke(s);
}

static void timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct sup_job *j = t->data;
    struct sup_proc *p;

    (void)loop;
    (void)revents;
    if (j->phase == JOB_IDLE) {
        begin_live(j);
    } else if (j->phase == JOB_LIVE) {
        live_timeout(j);
        begin_roll(j);
    } else {
        p = j->cur ? sup_proc_find(j->sup, j->cur) : NULL;
        fail(j, j->cur ? j->cur : "?",
             "not ready and resynced within %.0f s (state %s, links up %ld of %ld, syncing %ld)",
             SUP_ROLL_WAIT, p ? sup_state_name(p->state) : "gone", p ? stat_of(p, "links_up") : -1,
             p ? stat_of(p, "links_total") : -1, p ? stat_of(p, "links_syncing") : -1);
        finish(j);
    }
}

unsigned sup_job_start(struct sup_job *j, json_object *reply)
{
    struct sup *s = j->sup;

    j->id = ++s->job_ids;
    j->reply = json_object_get(reply);
    j->began = mono_now();
    s->job = j;
    /* Begins on the next loop turn, once the caller waits for it. */
    ev_timer_init(&j->timer, timer_cb, 0., 0.);
    j->timer.data = j;
    ev_timer_start(s->loop, &j->timer);
    return j->id;
}

void sup_job_poke(struct sup *s)
{
    struct sup_job *j = s->job;
    struct sup_proc *p;

    if (j == NULL || j->phase == JOB_IDLE)
        return;
    if (s->stopping) {
        fail(j, "herd", "the supervisor is stopping");
        finish(j);
        return;
    }
    if (j->phase == JOB_LIVE) {
        if (!live_pending(s))
            begin_roll(j);
        return;
    }
    p = j->cur ? sup_proc_find(s, j->cur) : NULL;
    if (p == NULL || p->held) {
        next_step(j);
        return;
    }
    if (step_done(j, p)) {
        log_info("%s: %s back in %.3f s (pid %d)", j->cause, p->name, mono_now() - j->cur_began,
                 (int)p->pid);
        json_object_array_add(j->restarted, json_object_new_string(p->name));
        next_step(j);
    }
}

void sup_job_applied(struct sup_proc *p, json_object *msg)
{
    json_object *v;
    unsigned gen = 0;
    const char *status = "failed", *err = NULL;

    if (json_object_object_get_ex(msg, "gen", &v))
        gen = (unsigned)json_object_get_int64(v);
    if (json_object_object_get_ex(msg, "status", &v))
        status = json_object_get_string(v);
    if (json_object_object_get_ex(msg, "error", &v))
        err = json_object_get_string(v);
    if (gen == 0 || gen != p->live_wait)
        return;
    p->live_wait = 0;
    if (strcmp(status, "applied") == 0)
        p->gen = gen;
    log_info("%s: live configuration %u %s%s%s", p->name, gen, status, err ? ": " : "",
             err ? err : "");
    if (p->sup->job != NULL) {
        int to_restart = pending(p->sup->job, p->name);

        json_object_object_add(p->sup->job->live, p->name,
                               json_object_new_string(to_restart && strcmp(status, "ignored") == 0
                                                          ? "restart pending"
                                                          : status));
        if (strcmp(status, "applied") != 0 && !(to_restart && strcmp(status, "ignored") == 0))
            fail(p->sup->job, p->name, "live configuration %s: %s", status, err ? err : "?");
    }
}
