/*
 * ctl_table: the status table herdctl prints, one aligned row per server:
 * NAME [HOST] PID PORT STATE UPTIME RESTARTS CLIENTS LINKS SNAPSHOT (age/
 * size/duration of the last one, with state_dir) and a last column that
 * says why a worker is not running (its last exit, when the next try
 * comes), then a summary line; and status NAME's filtering of the reply.
 */
#include <stdio.h>
#include <string.h>

#include "ctl.h"

#define NCOLS    11
#define COL_HOST 1
#define CELL     96

static const char *const heads[NCOLS] = {"NAME",
                                         "HOST",
                                         "PID",
                                         "PORT",
                                         "STATE",
                                         "UPTIME",
                                         "RESTARTS",
                                         "CLIENTS",
                                         "LINKS",
                                         "SNAPSHOT",
                                         "LAST EXIT / NEXT TRY"};

const char *ctl_shown_state(json_object *srv)
{
    const char *state = ctl_str(srv, "state", "?");

    if (strcmp(state, "running") == 0 && ctl_bool(srv, "heartbeat_late"))
        return "unresponsive";
    return state;
}

void ctl_format_duration(double secs, char *buf, size_t len)
{
    long s = (long)secs;

    if (secs < 0)
        snprintf(buf, len, "-");
    else if (secs < 10)
        snprintf(buf, len, "%.1fs", secs);
    else if (s < 60)
        snprintf(buf, len, "%lds", s);
    else if (s < 3600)
        snprintf(buf, len, "%ldm%02lds", s / 60, s % 60);
    else if (s < 86400)
        snprintf(buf, len, "%ldh%02ldm", s / 3600, s % 3600 / 60);
    else
        snprintf(buf, len, "%ldd%02ldh", s / 86400, s % 86400 / 3600);
}

static double get_double(json_object *obj, const char *key)
{
    json_object *v;

    if (!json_object_object_get_ex(obj, key, &v) || v == NULL)
        return -1;
    return json_object_get_double(v);
}

static void num_or_dash(char *buf, json_object *srv, const char *key)
{
    long v = ctl_int(srv, key, -1);

    if (v < 0)
        snprintf(buf, CELL, "-");
    else
        snprintf(buf, CELL, "%ld", v);
}

/* The last column: why it is not running, or how it last ended. */
static void why_cell(char *buf, json_object *srv)
{
    const char *last = ctl_str(srv, "last_exit", NULL);
    const char *state = ctl_str(srv, "state", "");
    double next = get_double(srv, "next_try");
    char d[32];

    if (strcmp(state, "backoff") == 0) {
        ctl_format_duration(next, d, sizeof(d));
        snprintf(buf, CELL, "%s%s, next try in %s", last ? last : "?",
                 ctl_bool(srv, "config_error") ? " (config error)" : "", d);
    } else {
        snprintf(buf, CELL, "%s", last ? last : "-");
    }
}

static void format_bytes(double b, char *buf, size_t len)
{
    if (b < 1e3)
        snprintf(buf, len, "%.0fB", b);
    else if (b < 1e6)
        snprintf(buf, len, "%.1fkB", b / 1e3);
    else
        snprintf(buf, len, "%.1fMB", b / 1e6);
}

/* "12s/4.1MB/35ms": age, size and duration of the last snapshot. */
static void snap_cell(char *buf, json_object *srv)
{
    json_object *sn;
    char age[16], size[16], took[24] = ""; /* with "/failing": fits a CELL */
    double secs, ms;

    if (!json_object_object_get_ex(srv, "snapshot", &sn) || sn == NULL ||
        (secs = get_double(sn, "age")) < 0) {
        snprintf(buf, CELL, "-");
        return;
    }
    ctl_format_duration(secs, age, sizeof(age));
    format_bytes(get_double(sn, "bytes"), size, sizeof(size));
    if ((ms = get_double(sn, "duration")) >= 0)
        snprintf(took, sizeof(took), "/%.0fms", ms * 1e3);
    snprintf(buf, CELL, "%s/%s%s%s", age, size, took, ctl_str(sn, "error", NULL) ? "/failing" : "");
}

static void row_cells(char cells[NCOLS][CELL], json_object *srv)
{
    char d[32];
    long up = ctl_int(srv, "links_up", -1), total = ctl_int(srv, "links_total", -1);
    long syncing = ctl_int(srv, "links_syncing", 0);

    snprintf(cells[0], CELL, "%s", ctl_str(srv, "name", "?"));
    snprintf(cells[1], CELL, "%s", ctl_str(srv, "host", "-"));
    num_or_dash(cells[2], srv, "pid");
    num_or_dash(cells[3], srv, "port");
    snprintf(cells[4], CELL, "%s", ctl_shown_state(srv));
    ctl_format_duration(get_double(srv, "uptime"), d, sizeof(d));
    snprintf(cells[5], CELL, "%s", d);
    num_or_dash(cells[6], srv, "restarts");
    num_or_dash(cells[7], srv, "clients");
    if (up < 0 || total < 0)
        snprintf(cells[8], CELL, "-");
    else if (syncing > 0) /* still learning the herd: wait before the next restart */
        snprintf(cells[8], CELL, "%ld/%ld (%ld syncing)", up, total, syncing);
    else
        snprintf(cells[8], CELL, "%ld/%ld", up, total);
    snap_cell(cells[9], srv);
    why_cell(cells[10], srv);
}

static void print_row(FILE *f, char cells[NCOLS][CELL], const size_t *width, int host)
{
    for (int i = 0; i < NCOLS; i++) {
        if (i == COL_HOST && !host)
            continue;
        if (i == NCOLS - 1)
            fprintf(f, "%s\n", cells[i]);
        else
            fprintf(f, "%-*s  ", (int)width[i], cells[i]);
    }
}

/* 1 when the servers do not all listen on the same host. */
static int hosts_differ(json_object *servers)
{
    size_t n = json_object_array_length(servers);
    const char *first = n > 0 ? ctl_str(json_object_array_get_idx(servers, 0), "host", "") : "";

    for (size_t i = 1; i < n; i++)
        if (strcmp(ctl_str(json_object_array_get_idx(servers, i), "host", ""), first) != 0)
            return 1;
    return 0;
}

/* "5 running, 0 waiting", plus any other state that has servers. */
static void print_summary(FILE *f, json_object *servers)
{
    static const char *const states[] = {"running",  "waiting", "starting",
                                         "stopping", "stopped", "unresponsive"};
    size_t count[sizeof(states) / sizeof(states[0])] = {0};
    size_t n = json_object_array_length(servers);

    for (size_t r = 0; r < n; r++) {
        const char *st = ctl_shown_state(json_object_array_get_idx(servers, r));

        if (strcmp(st, "backoff") == 0)
            st = "waiting";
        for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++)
            if (strcmp(st, states[i]) == 0)
                count[i]++;
    }
    fprintf(f, "%zu running, %zu waiting", count[0], count[1]);
    for (size_t i = 2; i < sizeof(states) / sizeof(states[0]); i++)
        if (count[i] > 0)
            fprintf(f, ", %zu %s", count[i], states[i]);
    fprintf(f, "\n");
}

void ctl_print_status(FILE *f, json_object *reply)
{
    json_object *servers, *sup;
    size_t n, width[NCOLS];
    char cells[NCOLS][CELL], d[32];
    int host;

    if (json_object_object_get_ex(reply, "supervisor", &sup) && sup != NULL) {
        ctl_format_duration(get_double(sup, "uptime"), d, sizeof(d));
        fprintf(f, "herd-supervisor pid %ld, %s, up %s, %s\n", ctl_int(sup, "pid", 0),
                ctl_str(sup, "state", "?"), d, ctl_str(sup, "config", "?"));
        if (strcmp(ctl_str(sup, "config_on_disk", "same"), "same") != 0)
            fprintf(f,
                    "note: the file on disk is %s since generation %ld, which the herd runs "
                    "(herdctl reload applies it)\n",
                    ctl_str(sup, "config_on_disk", "?"), ctl_int(sup, "generation", 0));
    }
    if (!json_object_object_get_ex(reply, "servers", &servers) ||
        !json_object_is_type(servers, json_type_array))
        return;
    n = json_object_array_length(servers);
    host = hosts_differ(servers);
    for (int i = 0; i < NCOLS; i++)
        width[i] = strlen(heads[i]);
    for (size_t r = 0; r < n; r++) {
        row_cells(cells, json_object_array_get_idx(servers, r));
        for (int i = 0; i < NCOLS; i++)
            if (strlen(cells[i]) > width[i])
                width[i] = strlen(cells[i]);
    }
    for (int i = 0; i < NCOLS; i++)
        snprintf(cells[i], CELL, "%s", heads[i]);
    print_row(f, cells, width, host);
    for (size_t r = 0; r < n; r++) {
        row_cells(cells, json_object_array_get_idx(servers, r));
        print_row(f, cells, width, host);
    }
    print_summary(f, servers);
}

int ctl_filter_servers(json_object *reply, char **names, int n)
{
    json_object *servers, *kept;

    if (n == 0)
        return 0;
    if (!json_object_object_get_ex(reply, "servers", &servers) ||
        !json_object_is_type(servers, json_type_array))
        return -1;
    for (int i = 0; i < n; i++) {
        if (ctl_server(reply, names[i]) == NULL) {
            fprintf(stderr, "herdctl: no server \"%s\" in this herd\n", names[i]);
            return -1;
        }
    }
    kept = json_object_new_array();
    for (size_t r = 0; r < json_object_array_length(servers); r++) {
        json_object *srv = json_object_array_get_idx(servers, r);

        for (int i = 0; i < n; i++) {
            if (strcmp(ctl_str(srv, "name", ""), names[i]) == 0) {
                json_object_array_add(kept, json_object_get(srv));
                break;
            }
        }
    }
    json_object_object_add(reply, "servers", kept);
    return 0;
}

int ctl_all_running(json_object *reply)
{
    json_object *servers, *sup;

    if (json_object_object_get_ex(reply, "supervisor", &sup) &&
        strcmp(ctl_str(sup, "state", ""), "running") != 0)
        return 0;
    if (!json_object_object_get_ex(reply, "servers", &servers) ||
        !json_object_is_type(servers, json_type_array))
        return 0;
    for (size_t i = 0; i < json_object_array_length(servers); i++)
        if (strcmp(ctl_str(json_object_array_get_idx(servers, i), "state", ""), "running") != 0)
            return 0;
    return 1;
}

json_object *ctl_server(json_object *reply, const char *name)
{
    json_object *servers;

    if (!json_object_object_get_ex(reply, "servers", &servers) ||
        !json_object_is_type(servers, json_type_array))
        return NULL;
    for (size_t i = 0; i < json_object_array_length(servers); i++) {
        json_object *srv = json_object_array_get_idx(servers, i);

        if (strcmp(ctl_str(srv, "name", ""), name) == 0)
            return srv;
    }
    return NULL;
}
