/*
 * ctl_metrics: herdctl metrics: the supervisor's status reply (its own
 * figures and each worker's last heartbeat) in the Prometheus text
 * exposition format 0.0.4: one "# HELP" and "# TYPE" per family, herd_
 * names, a server label on every per-worker sample. A worker without a
 * process has no heartbeat, so its heartbeat families have no sample for it
 * (herd_up says 0). RSS is read from /proc/PID/status here.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

/* Where a family's value lives in a server of the status reply. */
enum where {
    W_SERVER, /* the server object itself */
    W_STATS,  /* its "stats": the last heartbeat */
    W_PLACES, /* stats.places */
};

struct family {
    const char *name;
    const char *type;
    const char *help;
    enum where where;
    const char *key;
    const char *label; /* an extra label, or NULL */
    const char *value; /* its value */
};

/* Families of one name are adjacent: HELP and TYPE come once. */
static const struct family families[] = {
    {"herd_restarts_total", "counter", "Worker processes started after the first.", W_SERVER,
     "restarts", NULL, NULL},
    {"herd_worker_uptime_seconds", "gauge", "Age of the worker process.", W_SERVER, "uptime", NULL,
     NULL},
    {"herd_heartbeat_age_seconds", "gauge", "Seconds since the worker's last channel message.",
     W_SERVER, "heartbeat_age", NULL, NULL},
    {"herd_clients", "gauge", "Client records the worker stores.", W_STATS, "clients", NULL, NULL},
    {"herd_connections", "gauge", "Open client connections.", W_STATS, "connections", NULL, NULL},
    {"herd_links_up", "gauge", "Neighbours with a live link.", W_STATS, "links_up", NULL, NULL},
    {"herd_links", "gauge", "Neighbours configured.", W_STATS, "links_total", NULL, NULL},
    {"herd_links_syncing", "gauge", "Live links whose resync dump is still arriving.", W_STATS,
     "links_syncing", NULL, NULL},
    {"herd_requests_total", "counter", "Client lines answered, by kind.", W_STATS, "iamat", "kind",
     "iamat"},
    {"herd_requests_total", NULL, NULL, W_STATS, "whatsat", "kind", "whatsat"},
    {"herd_requests_total", NULL, NULL, W_STATS, "invalid", "kind", "invalid"},
    {"herd_floods_total", "counter", "AT lines received from and sent to neighbours.", W_STATS,
     "floods_in", "direction", "in"},
    {"herd_floods_total", NULL, NULL, W_STATS, "floods_out", "direction", "out"},
    {"herd_channel_dropped_total", "counter", "Heartbeats the worker could not queue.", W_STATS,
     "dropped", NULL, NULL},
    {"herd_places_requests_total", "counter",
     "Places questions of WHATSAT, by how they were served.", W_PLACES, "upstream", "status",
     "upstream"},
    {"herd_places_requests_total", NULL, NULL, W_PLACES, "hits", "status", "cache_hit"},
    {"herd_places_requests_total", NULL, NULL, W_PLACES, "coalesced", "status", "coalesced"},
    {"herd_places_upstream_errors_total", "counter", "Places requests that failed upstream.",
     W_PLACES, "errors", NULL, NULL},
    {"herd_places_in_flight", "gauge", "Places requests in flight.", W_PLACES, "in_flight", NULL,
     NULL},
    {"herd_places_cache_entries", "gauge", "Places answers cached.", W_PLACES, "cached", NULL,
     NULL},
    /* Only with persistence, once heartbeats carry it. */
    {"herd_snapshot_age_seconds", "gauge", "Seconds since the worker last saved its records.",
     W_STATS, "snapshot_age", NULL, NULL},
};

/* A label value with \, " and newline escaped, as the format wants. */
static void put_label(FILE *f, const char *name, const char *value, int first)
{
    fprintf(f, "%s%s=\"", first ? "" : ",", name);
    for (const char *p = value; *p != '\0'; p++) {
        if (*p == '\\' || *p == '"')
            fprintf(f, "\\%c", *p);
        else if (*p == '\n')
            fputs("\\n", f);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

static void head(FILE *f, const char *name, const char *type, const char *help)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void put_number(FILE *f, json_object *v)
{
    if (json_object_is_type(v, json_type_double))
        fprintf(f, " %.3f\n", json_object_get_double(v));
    else
        fprintf(f, " %lld\n", (long long)json_object_get_int64(v));
}

/* The JSON value a family reads from SRV, or NULL when there is none. */
static json_object *lookup(json_object *srv, const struct family *fam)
{
    json_object *obj = srv, *v;

    if (fam->where != W_SERVER && (!json_object_object_get_ex(srv, "stats", &obj) || obj == NULL))
        return NULL;
    if (fam->where == W_PLACES && (!json_object_object_get_ex(obj, "places", &obj) || obj == NULL))
        return NULL;
    if (!json_object_object_get_ex(obj, fam->key, &v) || v == NULL)
        return NULL;
    return json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double) ? v
                                                                                             : NULL;
}

/* VmRSS of PID in bytes, or -1. */
static long long rss_bytes(long pid)
{
    char path[64], line[256];
    long long kb = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%ld/status", pid);
    if (pid <= 0 || (f = fopen(path, "r")) == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL) {
        char *end;

        if (strncmp(line, "VmRSS:", 6) != 0)
            continue;
        errno = 0;
        kb = strtoll(line + 6, &end, 10);
        if (errno != 0 || end == line + 6)
            kb = -1;
        break;
    }
    fclose(f);
    return kb < 0 ? -1 : kb * 1024;
}

static void supervisor_metrics(FILE *f, json_object *reply)
{
    json_object *sup, *v;
    long long rss;

    if (!json_object_object_get_ex(reply, "supervisor", &sup) || sup == NULL)
        return;
    head(f, "herd_supervisor_info", "gauge", "The supervisor's version (always 1).");
    fprintf(f, "herd_supervisor_info{");
    put_label(f, "version", ctl_str(sup, "version", "unknown"), 1);
    fprintf(f, "} 1\n");
    if (json_object_object_get_ex(sup, "uptime", &v) && v != NULL) {
        head(f, "herd_supervisor_uptime_seconds", "gauge", "Age of the supervisor process.");
        fprintf(f, "herd_supervisor_uptime_seconds");
        put_number(f, v);
    }
    if ((rss = rss_bytes(ctl_int(sup, "pid", 0))) >= 0) {
        head(f, "herd_supervisor_resident_memory_bytes", "gauge", "The supervisor's VmRSS.");
        fprintf(f, "herd_supervisor_resident_memory_bytes %lld\n", rss);
    }
}

/* herd_up, herd_unresponsive, herd_worker_info and RSS, from the server
 * object and /proc rather than the table. */
static void state_metrics(FILE *f, json_object *servers)
{
    size_t n = json_object_array_length(servers);

    head(f, "herd_up", "gauge", "1 when the server's worker is running, else 0.");
    for (size_t i = 0; i < n; i++) {
        json_object *srv = json_object_array_get_idx(servers, i);

        fprintf(f, "herd_up{");
        put_label(f, "server", ctl_str(srv, "name", "?"), 1);
        fprintf(f, "} %d\n", strcmp(ctl_str(srv, "state", ""), "running") == 0);
    }
    head(f, "herd_unresponsive", "gauge", "1 when a running worker's heartbeat is late.");
    for (size_t i = 0; i < n; i++) {
        json_object *srv = json_object_array_get_idx(servers, i);

        fprintf(f, "herd_unresponsive{");
        put_label(f, "server", ctl_str(srv, "name", "?"), 1);
        fprintf(f, "} %d\n", strcmp(ctl_shown_state(srv), "unresponsive") == 0);
    }
    head(f, "herd_worker_info", "gauge", "The version each running worker reports (always 1).");
    for (size_t i = 0; i < n; i++) {
        json_object *srv = json_object_array_get_idx(servers, i);

        if (ctl_str(srv, "version", NULL) == NULL)
            continue;
        fprintf(f, "herd_worker_info{");
        put_label(f, "server", ctl_str(srv, "name", "?"), 1);
        put_label(f, "version", ctl_str(srv, "version", "?"), 0);
        fprintf(f, "} 1\n");
    }
    head(f, "herd_worker_resident_memory_bytes", "gauge", "Each worker's VmRSS.");
    for (size_t i = 0; i < n; i++) {
        json_object *srv = json_object_array_get_idx(servers, i);
        long long rss = rss_bytes(ctl_int(srv, "pid", 0));

        if (rss < 0)
            continue;
        fprintf(f, "herd_worker_resident_memory_bytes{");
        put_label(f, "server", ctl_str(srv, "name", "?"), 1);
        fprintf(f, "} %lld\n", rss);
    }
}

/* FIRST is the entry of FAM's name that carries HELP and TYPE; they are
 * printed before the family's first sample, so a family no worker reports
 * (snapshot age without persistence) does not show at all. */
static void family_samples(FILE *f, json_object *servers, const struct family *fam,
                           const struct family *first, int *headed)
{
    for (size_t i = 0; i < json_object_array_length(servers); i++) {
        json_object *srv = json_object_array_get_idx(servers, i);
        json_object *v = lookup(srv, fam);

        if (v == NULL)
            continue;
        if (!*headed) {
            head(f, first->name, first->type, first->help);
            *headed = 1;
        }
        fprintf(f, "%s{", fam->name);
        put_label(f, "server", ctl_str(srv, "name", "?"), 1);
        if (fam->label != NULL)
            put_label(f, fam->label, fam->value, 0);
        fputc('}', f);
        put_number(f, v);
    }
}

void ctl_print_metrics(FILE *f, json_object *reply)
{
    const struct family *first = &families[0];
    json_object *servers;
    int headed = 0;

    supervisor_metrics(f, reply);
    if (!json_object_object_get_ex(reply, "servers", &servers) ||
        !json_object_is_type(servers, json_type_array))
        return;
    state_metrics(f, servers);
    for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++) {
        if (families[i].type != NULL) {
            first = &families[i];
            headed = 0;
        }
        family_samples(f, servers, &families[i], first, &headed);
    }
}
