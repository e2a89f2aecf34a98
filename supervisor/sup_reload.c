/*
 * sup_reload: re-reads the configuration file the supervisor was started
 * with into a new generation and converges on it: added servers start,
 * removed ones stop, changed ones (cfg_server_changed: their own keys, a
 * neighbour's address, a restart-class [herd] key) restart one at a time
 * (sup_roll.c), and the rest get the new live settings over their channel
 * when any changed. A file that does not load changes nothing; the reply
 * carries its FILE:LINE error. A change that would cut restarted workers off
 * from the others (a new secret without secret_previous) needs --force.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "sup.h"

struct diff {
    json_object *added, *removed, *changed, *unchanged, *warnings;
};

static void note(json_object *arr, const char *name)
{
    json_object_array_add(arr, json_object_new_string(name));
}

/* The selected server NAME of the new herd, as sup_selected sees it. */
static const struct cfg_server *selected(const struct sup *s, const char *name)
{
    const struct cfg_server *srv = cfg_find(s->cfg, name);

    return srv != NULL && sup_selected(s->node, srv) ? srv : NULL;
}

/* Existing workers against the new herd (already in s->cfg). */
static void reload_existing(struct sup *s, const struct cfg_herd *old, struct diff *d,
                            struct sup_job *j)
{
    struct sup_proc *p = s->procs, *next;
    int live = cfg_herd_differs(old, s->cfg, CFG_K_LIVE);

    for (; p != NULL; p = next) {
        const struct cfg_server *ns = selected(s, p->name);
        const struct cfg_server *os = cfg_find(old, p->name);

        next = p->next;
        if (ns == NULL) {
            if (p->want != SUP_WANT_REMOVE)
                note(d->removed, p->name);
            sup_proc_stop(p, SUP_WANT_REMOVE); /* may free p */
        } else if (p->want == SUP_WANT_REMOVE || os == NULL ||
                   cfg_server_changed(old, os, s->cfg, ns)) {
            note(d->changed, p->name);
            if (p->pid > 0 && !p->held) {
                sup_job_add_restart(j, p);
                /* It answers "ignored", but learns a rotated secret before the roll. */
                if (cfg_herd_differs(old, s->cfg, CFG_K_RESTART))
                    p->live_wait = s->gen.no;
            } else if (!p->held)
                sup_proc_restart(p, "reload"); /* in backoff: start it now, on the new file */
        } else {
            note(d->unchanged, p->name);
            if (live && p->pid > 0)
                p->live_wait = s->gen.no; /* the job sends it the new generation */
            else
                p->gen = s->gen.no;
        }
    }
}

/* New servers start; the list then follows the file's order. */
static void reload_added(struct sup *s, struct diff *d)
{
    struct sup_proc *ordered = NULL, **tail = &ordered;

    for (size_t i = 0; i < s->cfg->nservers; i++) {
        const struct cfg_server *srv = &s->cfg->servers[i];
        struct sup_proc *p;

        if (!sup_selected(s->node, srv) || sup_proc_find(s, srv->name) != NULL)
            continue;
        p = sup_proc_new(s, srv);
        if (p == NULL) {
            log_error("reload: %s: out of memory", srv->name);
            continue;
        }
        note(d->added, srv->name);
        p->job_added = 1;
        sup_proc_spawn(p);
    }
    for (size_t i = 0; i < s->cfg->nservers; i++) {
        struct sup_proc **pp = &s->procs;

        while (*pp != NULL && strcmp((*pp)->name, s->cfg->servers[i].name) != 0)
            pp = &(*pp)->next;
        if (*pp != NULL) {
            struct sup_proc *p = *pp;

            *pp = p->next;
            p->next = NULL;
            *tail = p;
            tail = &p->next;
        }
    }
    *tail = s->procs; /* workers on their way out go last */
    s->procs = ordered;
}

static void herd_wide(struct sup *s, const struct cfg_herd *old, struct diff *d)
{
    log_set_level(s->cfg->log_level);
    if (strcmp(old->run_dir, s->cfg->run_dir) != 0)
        note(d->warnings, "run_dir changes when the supervisor restarts");
    if (strcmp(old->log_dir, s->cfg->log_dir) != 0)
        note(d->warnings, "the supervisor's own log moves when it restarts");
}

static int str_eq(const char *a, const char *b)
{
    return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* Why NEU cannot be rolled without losing records, or NULL. */
static const char *unsafe(const struct cfg_herd *old, const struct cfg_herd *neu)
{
    if (old->link_tls != neu->link_tls)
        return "link_tls changes: each restarted worker could link to no neighbour still "
               "running the old mode, and would come back with none of the herd's records; "
               "stop the herd, then start it (state_dir keeps the records), or reload --force";
    if (str_eq(old->secret, neu->secret))
        return NULL;
    if (old->secret != NULL && neu->secret != NULL && str_eq(neu->secret_previous, old->secret))
        return NULL;
    return "secret changes without secret_previous set to the running secret: each restarted "
           "worker could link to no neighbour still running the old one, and would come back "
           "with none of the herd's records; set secret_previous, or reload --force";
}

static size_t count_selected(const struct cfg_herd *h, const char *node)
{
    size_t n = 0;

    for (size_t i = 0; i < h->nservers; i++)
        n += sup_selected(node, &h->servers[i]) != 0;
    return n;
}

static int refuse(json_object *reply, const char *err, int config_error)
{
    log_error("reload refused, nothing changed: %s", err);
    json_object_object_add(reply, "ok", json_object_new_boolean(0));
    json_object_object_add(reply, "error", json_object_new_string(err));
    json_object_object_add(reply, "config_error", json_object_new_boolean(config_error));
    return -1;
}

/* Loads the file into a new generation; 0, or -1 with the refusal in REPLY. */
static int load_new(struct sup *s, int force, struct sup_gen *g, struct cfg_herd **neu,
                    json_object *reply)
{
    char err[1024];
    const char *node, *why;

    if (s->stopping)
        return refuse(reply, "the supervisor is stopping", 0);
    if (s->job != NULL)
        return refuse(reply, "a reload or rolling restart is already running", 0);
    if (sup_gen_load(s->cfg->path, g, neu, err, sizeof(err)) != 0)
        return refuse(reply, err, 1);
    node = s->node_arg != NULL ? s->node_arg : (*neu)->node;
    why = force ? NULL : unsafe(s->cfg, *neu);
    if (count_selected(*neu, node) == 0 || why != NULL) {
        if (why == NULL)
            snprintf(err, sizeof(err), "%s: no server for node \"%s\"", (*neu)->path, node);
        else
            snprintf(err, sizeof(err), "%s", why);
        cfg_free(*neu);
        sup_gen_free(g);
        return refuse(reply, err, why == NULL);
    }
    return 0;
}

int sup_reload(struct sup *s, int force, json_object *reply, unsigned *job)
{
    struct cfg_herd *old = s->cfg, *neu = NULL;
    struct sup_gen g = {0, -1, NULL, 0};
    struct sup_job *j;
    struct diff d;

    log_info("control: reload %s%s", old->path, force ? " --force" : "");
    if (load_new(s, force, &g, &neu, reply) != 0)
        return -1;
    j = sup_job_new(s, force, 0, "reload");
    if (j == NULL) {
        cfg_free(neu);
        sup_gen_free(&g);
        return refuse(reply, "out of memory", 0);
    }
    d.added = json_object_new_array();
    d.removed = json_object_new_array();
    d.changed = json_object_new_array();
    d.unchanged = json_object_new_array();
    d.warnings = json_object_new_array();
    g.no = s->gen.no + 1;
    sup_gen_free(&s->gen);
    s->gen = g;
    s->cfg = neu;
    s->node = s->node_arg != NULL ? s->node_arg : neu->node;
    herd_wide(s, old, &d);
    reload_existing(s, old, &d, j);
    reload_added(s, &d);
    cfg_free(old);
    log_info("reload: generation %u: %zu added, %zu removed, %zu to restart, %zu untouched", g.no,
             json_object_array_length(d.added), json_object_array_length(d.removed),
             json_object_array_length(d.changed), json_object_array_length(d.unchanged));
    json_object_object_add(reply, "added", d.added);
    json_object_object_add(reply, "removed", d.removed);
    json_object_object_add(reply, "changed", d.changed);
    json_object_object_add(reply, "unchanged", d.unchanged);
    json_object_object_add(reply, "warnings", d.warnings);
    *job = sup_job_start(j, reply);
    return 0;
}
