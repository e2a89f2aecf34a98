/*
 * sup_reload: re-reads the configuration file the supervisor was started
 * with and converges on it: added servers start, removed ones stop, changed
 * ones (cfg_server_changed) restart, the rest keep running untouched. A file
 * that does not load changes nothing; the reply carries its FILE:LINE error.
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

static void take_address(struct sup_proc *p, const struct cfg_server *srv)
{
    char *host = strdup(srv->host);

    if (host != NULL) {
        free(p->host);
        p->host = host;
    }
    p->port = srv->port;
}

/* Existing workers against the new herd (already in s->cfg). */
static void reload_existing(struct sup *s, const struct cfg_herd *old, struct diff *d)
{
    struct sup_proc *p = s->procs, *next;

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
            take_address(p, ns);
            sup_proc_restart(p);
        } else {
            note(d->unchanged, p->name);
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

static size_t count_selected(const struct cfg_herd *h, const char *node)
{
    size_t n = 0;

    for (size_t i = 0; i < h->nservers; i++)
        n += sup_selected(node, &h->servers[i]) != 0;
    return n;
}

int sup_reload(struct sup *s, json_object *reply)
{
    struct cfg_herd *old = s->cfg, *neu = NULL;
    char err[1024];
    struct diff d;
    const char *node;

    log_info("control: reload %s", old->path);
    if (s->stopping || cfg_load(old->path, &neu, err, sizeof(err)) != 0) {
        if (s->stopping)
            snprintf(err, sizeof(err), "the supervisor is stopping");
        else
            log_error("reload refused, nothing changed: %s", err);
        json_object_object_add(reply, "ok", json_object_new_boolean(0));
        json_object_object_add(reply, "error", json_object_new_string(err));
        json_object_object_add(reply, "config_error", json_object_new_boolean(!s->stopping));
        return -1;
    }
    node = s->node_arg != NULL ? s->node_arg : neu->node;
    if (count_selected(neu, node) == 0) {
        snprintf(err, sizeof(err), "%s: no server for node \"%s\"", neu->path, node);
        log_error("reload refused, nothing changed: %s", err);
        cfg_free(neu);
        json_object_object_add(reply, "ok", json_object_new_boolean(0));
        json_object_object_add(reply, "error", json_object_new_string(err));
        json_object_object_add(reply, "config_error", json_object_new_boolean(1));
        return -1;
    }
    d.added = json_object_new_array();
    d.removed = json_object_new_array();
    d.changed = json_object_new_array();
    d.unchanged = json_object_new_array();
    d.warnings = json_object_new_array();
    s->cfg = neu;
    s->node = node;
    herd_wide(s, old, &d);
    reload_existing(s, old, &d);
    reload_added(s, &d);
    cfg_free(old);
    log_info("reload: %zu added, %zu removed, %zu restarted, %zu untouched",
             json_object_array_length(d.added), json_object_array_length(d.removed),
             json_object_array_length(d.changed), json_object_array_length(d.unchanged));
    json_object_object_add(reply, "added", d.added);
    json_object_object_add(reply, "removed", d.removed);
    json_object_object_add(reply, "changed", d.changed);
    json_object_object_add(reply, "unchanged", d.unchanged);
    json_object_object_add(reply, "warnings", d.warnings);
    return 0;
}
