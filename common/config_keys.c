/*
 * config_keys: every key herd understands, with its default, its range and
 * its reload class, and the section headers. Herd-wide keys are one table, so
 * a new tunable is one line here plus its field in config.h and its line in
 * etc/herd.ini. The class says what a reload does when the key changes: LIVE
 * keys are copied into running workers (cfg_apply_live), RESTART keys restart
 * every worker (one at a time), SUP keys only the supervisor reads. The
 * per-server keys (port, host, peers, node) are all RESTART class.
 */
#include <assert.h>
#include <ctype.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "config_internal.h"

#define DEFAULT_PLACES_URL_LEGACY "https://maps.googleapis.com/maps/api/place/nearbysearch/json"
#define DEFAULT_PLACES_URL_NEW    "https://places.googleapis.com/v1/places:searchNearby"
/* The fields the legacy reply shape needs, all in the Nearby Search Pro SKU. */
#define DEFAULT_PLACES_FIELDS                                                                      \
    "places.id,places.displayName,places.location,places.viewport,"                                \
    "places.shortFormattedAddress,places.types,places.businessStatus,places.plusCode,"             \
    "places.iconMaskBaseUri,places.iconBackgroundColor"

enum ktype {
    K_PATH,
    K_NAME,
    K_SECRET,
    K_URL,
    K_TEXT,
    K_LEVEL,
    K_API,
    K_TLS,
    K_DUR,
    K_SIZE,
    K_COUNT
};

struct hkey {
    const char *name;
    enum ktype type;
    enum cfg_kclass kclass; /* what a reload does when it changes */
    size_t off;             /* of its field in struct cfg_herd */
    double def;             /* numeric default; strings default in finish_herd() */
    double min, max;
};

#define OFF(f) offsetof(struct cfg_herd, f)
#define KIB    1024.0
#define MIB    (1024.0 * 1024.0)
#define HOUR   3600.0
#define DAY    86400.0
#define MS     0.001

static const struct hkey hkeys[] = {
    {"log_dir", K_PATH, CFG_K_RESTART, OFF(log_dir), 0, 0, 0},
    {"run_dir", K_PATH, CFG_K_SUP, OFF(run_dir), 0, 0, 0},
    {"node", K_NAME, CFG_K_SUP, OFF(node), 0, 0, 0},
    {"log_level", K_LEVEL, CFG_K_LIVE, OFF(log_level), 0, 0, 0},
    {"secret", K_SECRET, CFG_K_RESTART, OFF(secret), 0, 0, 0},
    {"secret_previous", K_SECRET, CFG_K_LIVE, OFF(secret_previous), 0, 0, 0},
    {"places_api", K_API, CFG_K_LIVE, OFF(places_api), 0, 0, 0},
    {"places_url", K_URL, CFG_K_LIVE, OFF(places_url), 0, 0, 0},
    {"places_fields", K_TEXT, CFG_K_LIVE, OFF(places_fields), 0, 0, 0},
    {"places_max_rate", K_COUNT, CFG_K_LIVE, OFF(places_max_rate), 2, 0, 100000},
    {"places_max_per_day", K_COUNT, CFG_K_LIVE, OFF(places_max_per_day), 1000, 0, 1000000000},
    {"places_key_file", K_PATH, CFG_K_LIVE, OFF(places_key_file), 0, 0, 0},
    {"places_timeout", K_DUR, CFG_K_LIVE, OFF(places_timeout), 5, MS, HOUR},
    {"places_cache_ttl", K_DUR, CFG_K_LIVE, OFF(places_cache_ttl), 60, 0, 30 * DAY},
    {"places_cache_entries", K_COUNT, CFG_K_LIVE, OFF(places_cache_entries), 10000, 0, 10000000},
    {"places_max_connections", K_COUNT, CFG_K_LIVE, OFF(places_max_connections), 8, 1, 1024},
    {"places_max_pending", K_COUNT, CFG_K_LIVE, OFF(places_max_pending), 256, 1, 100000},
    {"places_max_body", K_SIZE, CFG_K_LIVE, OFF(places_max_body), 4 * MIB, KIB, 256 * MIB},
    {"max_line_length", K_SIZE, CFG_K_LIVE, OFF(max_line), 4096, 256, 1048576},
    {"max_connections", K_COUNT, CFG_K_LIVE, OFF(max_connections), 10000, 1, 1000000},
    {"max_clients", K_COUNT, CFG_K_LIVE, OFF(max_clients), 10000000, 1, 1000000000},
    {"client_ttl", K_DUR, CFG_K_LIVE, OFF(client_ttl), DAY, 0, 3650 * DAY},
    {"max_store_memory", K_SIZE, CFG_K_LIVE, OFF(max_store_memory), 1024 * MIB, MIB,
     1024 * 1024 * MIB},
    {"stop_drain", K_DUR, CFG_K_LIVE, OFF(stop_drain), 1, 0, HOUR},
    {"state_dir", K_PATH, CFG_K_RESTART, OFF(state_dir), 0, 0, 0},
    {"snapshot_interval", K_DUR, CFG_K_LIVE, OFF(snapshot_interval), 10, 100 * MS, DAY},
    {"log_link_summary", K_DUR, CFG_K_LIVE, OFF(log_link_summary), 10, 100 * MS, DAY},
    {"client_output_max", K_SIZE, CFG_K_LIVE, OFF(client_output_max), MIB, KIB, 1024 * MIB},
    {"idle_timeout", K_DUR, CFG_K_LIVE, OFF(idle_timeout), 300, MS, 30 * DAY},
    {"link_queue_max", K_SIZE, CFG_K_LIVE, OFF(link_queue_max), 64 * MIB, 4 * KIB, 1024 * MIB},
    {"link_backoff_min", K_DUR, CFG_K_LIVE, OFF(link_backoff_min), 0.05, MS, HOUR},
    {"link_backoff_max", K_DUR, CFG_K_LIVE, OFF(link_backoff_max), 2, MS, HOUR},
    {"link_ping_interval", K_DUR, CFG_K_LIVE, OFF(link_ping_interval), 1, MS, HOUR},
    {"link_timeout", K_DUR, CFG_K_LIVE, OFF(link_timeout), 5, MS, HOUR},
    {"link_tls", K_TLS, CFG_K_RESTART, OFF(link_tls), 0, 0, 0},
    {"tls_ca", K_PATH, CFG_K_RESTART, OFF(tls_ca), 0, 0, 0},
    {"tls_cert", K_PATH, CFG_K_RESTART, OFF(tls_cert), 0, 0, 0},
    {"tls_key", K_PATH, CFG_K_RESTART, OFF(tls_key), 0, 0, 0},
    {"heartbeat_interval", K_DUR, CFG_K_LIVE, OFF(heartbeat_interval), 1, MS, HOUR},
    {"heartbeat_timeout", K_DUR, CFG_K_SUP, OFF(heartbeat_timeout), 5, MS, HOUR},
    {"restart_backoff_min", K_DUR, CFG_K_SUP, OFF(restart_backoff_min), 0.1, MS, DAY},
    {"restart_backoff_max", K_DUR, CFG_K_SUP, OFF(restart_backoff_max), 30, MS, DAY},
    {"restart_reset_after", K_DUR, CFG_K_SUP, OFF(restart_reset_after), 10, MS, 30 * DAY},
    {"stop_timeout", K_DUR, CFG_K_SUP, OFF(stop_timeout), 5, MS, HOUR},
};
static_assert(sizeof hkeys / sizeof hkeys[0] == CFGI_NKEYS, "CFGI_NKEYS");

/* Pairs that must stay ordered: lo <= hi, or lo < hi when strict. */
static const struct {
    const char *lo, *hi;
    int strict;
} order_rules[] = {
    {"link_backoff_min", "link_backoff_max", 0}, {"restart_backoff_min", "restart_backoff_max", 0},
    {"link_ping_interval", "link_timeout", 1},   {"heartbeat_interval", "heartbeat_timeout", 1},
    {"max_line_length", "client_output_max", 0}, {"max_line_length", "link_queue_max", 0},
};

static void *field(struct cfg_herd *h, const struct hkey *k)
{
    return (char *)h + k->off;
}

static size_t key_index(const char *name)
{
    size_t i = 0;
    while (i < CFGI_NKEYS && strcmp(hkeys[i].name, name) != 0)
        i++;
    return i;
}

void cfgi_set_defaults(struct cfg_herd *h)
{
    h->log_level = LOG_INFO;
    for (size_t i = 0; i < CFGI_NKEYS; i++) {
        const struct hkey *k = &hkeys[i];
        if (k->type == K_DUR)
            *(double *)field(h, k) = k->def;
        else if (k->type == K_SIZE || k->type == K_COUNT)
            *(size_t *)field(h, k) = (size_t)k->def;
    }
}

static double number(struct cfg_herd *h, const struct hkey *k)
{
    return k->type == K_DUR ? *(double *)field(h, k) : (double)*(size_t *)field(h, k);
}

static const char *unit_name(const struct hkey *k)
{
    return k->type == K_DUR ? " seconds" : k->type == K_SIZE ? " bytes" : "";
}

static void bad_value(struct cfgi_state *st, const char *key, const char *v, const char *why)
{
    cfgi_fail(st, st->lineno, "bad value for %s: %s (%s)", key, *v ? v : "\"\"", why);
}

/* Parses a number-valued key into its field, checking its range. */
static const char *set_number(struct cfg_herd *h, const struct hkey *k, const char *v, char *why,
                              size_t whylen)
{
    double d = 0;
    size_t z = 0;
    const char *bad = k->type == K_DUR    ? cfgv_duration(v, &d)
                      : k->type == K_SIZE ? cfgv_size(v, &z)
                                          : cfgv_count(v, &z);
    if (bad)
        return bad;
    if (k->type != K_DUR)
        d = (double)z;
    if (d < k->min || d > k->max) {
        snprintf(why, whylen, "must be from %.10g to %.10g%s", k->min, k->max, unit_name(k));
        return why;
    }
    if (k->type == K_DUR)
        *(double *)field(h, k) = d;
    else
        *(size_t *)field(h, k) = z;
    return NULL;
}

/* Checks a string-valued key; returns its new value in *out. */
static const char *string_value(struct cfgi_state *st, const struct hkey *k, const char *v,
                                char **out)
{
    if (*v == '\0')
        return "empty";
    if (k->type == K_NAME && !cfgv_name_ok(v))
        return "1 to 64 of A-Z a-z 0-9 _ . -";
    if (k->type == K_URL && !cfgv_url_ok(v))
        return "must be an http:// or https:// URL without white space";
    if (k->type == K_TEXT && !cfgv_text_ok(v))
        return "printable characters only";
    *out = k->type == K_PATH ? cfgv_resolve(st->h->dir, v) : strdup(v);
    return NULL;
}

static void set_herd_value(struct cfgi_state *st, const struct hkey *k, const char *v)
{
    char why[96];
    char *s = NULL;
    const char *bad;

    if (k->type == K_LEVEL)
        bad = cfgv_level(v, &st->h->log_level);
    else if (k->type == K_API)
        bad = cfgv_places_api(v, &st->h->places_api);
    else if (k->type == K_TLS)
        bad = cfgv_link_tls(v, &st->h->link_tls);
    else if (k->type == K_DUR || k->type == K_SIZE || k->type == K_COUNT)
        bad = set_number(st->h, k, v, why, sizeof why);
    else
        bad = string_value(st, k, v, &s);
    if (bad) {
        bad_value(st, k->name, v, bad);
        return;
    }
    if (k->type == K_LEVEL || k->type == K_API || k->type == K_TLS || k->type == K_DUR ||
        k->type == K_SIZE || k->type == K_COUNT)
        return;
    if (!s) {
        cfgi_fail(st, 0, "out of memory");
        return;
    }
    char **dst = field(st->h, k);
    free(*dst);
    *dst = s;
}

void cfgi_herd_key(struct cfgi_state *st, const char *name, const char *value)
{
    size_t i = key_index(name);
    if (i == CFGI_NKEYS) {
        cfgi_fail(st, st->lineno, "unknown key %s in [herd]", name);
        return;
    }
    if (st->key_line[i]) {
        cfgi_fail(st, st->lineno, "duplicate key %s in [herd] (first at line %d)", name,
                  st->key_line[i]);
        return;
    }
    st->key_line[i] = st->lineno;
    snprintf(st->key_raw[i], sizeof st->key_raw[i], "%s", value);
    set_herd_value(st, &hkeys[i], value);
}

static int *server_key_line(struct cfgi_srv *t, const char *name)
{
    if (strcmp(name, "port") == 0)
        return &t->line_port;
    if (strcmp(name, "peers") == 0)
        return &t->line_peers;
    if (strcmp(name, "host") == 0)
        return &t->line_host;
    if (strcmp(name, "node") == 0)
        return &t->line_node;
    if (strcmp(name, "tls_ca") == 0)
        return &t->line_ca;
    if (strcmp(name, "tls_cert") == 0)
        return &t->line_cert;
    if (strcmp(name, "tls_key") == 0)
        return &t->line_key;
    return NULL;
}

void cfgi_server_key(struct cfgi_state *st, const char *name, const char *v)
{
    struct cfg_server *s = &st->h->servers[st->cur];
    struct cfgi_srv *t = &st->tmp[st->cur];
    int *line = server_key_line(t, name);
    char **dst = NULL;

    if (!line) {
        cfgi_fail(st, st->lineno, "unknown key %s in [server %s]", name, s->name);
        return;
    }
    if (*line) {
        cfgi_fail(st, st->lineno, "duplicate key %s in [server %s] (first at line %d)", name,
                  s->name, *line);
        return;
    }
    *line = st->lineno;
    if (line == &t->line_port) {
        const char *bad = cfgv_port(v, &s->port);
        if (bad)
            bad_value(st, name, v, bad);
        return;
    }
    if (line == &t->line_host && !cfgv_host_ok(v)) {
        bad_value(st, name, v, "a numeric IPv4 or IPv6 address, or a DNS name");
        return;
    }
    if (line == &t->line_node && !cfgv_name_ok(v)) {
        bad_value(st, name, v, "1 to 64 of A-Z a-z 0-9 _ . -");
        return;
    }
    const int tls_file = line == &t->line_ca || line == &t->line_cert || line == &t->line_key;
    if (tls_file && *v == '\0') {
        bad_value(st, name, v, "empty");
        return;
    }
    dst = line == &t->line_peers  ? &t->peers
          : line == &t->line_host ? &s->host
          : line == &t->line_node ? &s->node
          : line == &t->line_ca   ? &s->tls_ca
          : line == &t->line_cert ? &s->tls_cert
                                  : &s->tls_key;
    *dst = tls_file ? cfgv_resolve(st->h->dir, v) : strdup(v);
    if (!*dst)
        cfgi_fail(st, 0, "out of memory");
}

/* Appends a server called NAME, whose header is on the current line. */
static void add_server(struct cfgi_state *st, const char *name)
{
    struct cfg_herd *h = st->h;

    if (!cfgv_name_ok(name)) {
        cfgi_fail(st, st->lineno, "bad server name '%s' (1 to 64 of A-Z a-z 0-9 _ . -)", name);
        return;
    }
    for (size_t i = 0; i < h->nservers; i++) {
        if (strcmp(h->servers[i].name, name) == 0) {
            cfgi_fail(st, st->lineno, "duplicate server name %s (first at line %d)", name,
                      h->servers[i].line);
            return;
        }
    }
    if (h->nservers == st->cap) {
        size_t cap = st->cap ? st->cap * 2 : 8;
        struct cfg_server *s = realloc(h->servers, cap * sizeof *s);
        if (s)
            h->servers = s;
        struct cfgi_srv *t = s ? realloc(st->tmp, cap * sizeof *t) : NULL;
        if (!t) {
            cfgi_fail(st, 0, "out of memory");
            return;
        }
        st->tmp = t;
        st->cap = cap;
    }
    struct cfg_server *s = &h->servers[h->nservers];
    memset(s, 0, sizeof *s);
    memset(&st->tmp[h->nservers], 0, sizeof st->tmp[0]);
    s->line = st->lineno;
    if (!(s->name = strdup(name))) {
        cfgi_fail(st, 0, "out of memory");
        return;
    }
    st->cur = h->nservers++;
    st->sec = CFGI_SEC_SERVER;
}

/* LINE starts with '['; "[herd]" or "[server NAME]", then only a comment. */
void cfgi_section(struct cfgi_state *st, char *line)
{
    char *end = strchr(line, ']');
    if (!end) {
        cfgi_fail(st, st->lineno, "syntax error (no ']' after '[')");
        return;
    }
    char *rest = end + 1;
    while (isspace((unsigned char)*rest))
        rest++;
    if (*rest != '\0' && *rest != ';' && *rest != '#') {
        cfgi_fail(st, st->lineno, "syntax error (text after ']')");
        return;
    }
    char *body = line + 1;
    while (end > body && isspace((unsigned char)end[-1]))
        end--;
    *end = '\0';
    while (isspace((unsigned char)*body))
        body++;
    if (strcmp(body, "herd") == 0) {
        if (st->herd_line)
            cfgi_fail(st, st->lineno, "duplicate [herd] section (first at line %d)", st->herd_line);
        st->herd_line = st->lineno;
        st->sec = CFGI_SEC_HERD;
    } else if (strncmp(body, "server", 6) == 0 &&
               (body[6] == '\0' || isspace((unsigned char)body[6]))) {
        body += 6;
        while (isspace((unsigned char)*body))
            body++;
        add_server(st, body);
    } else
        cfgi_fail(st, st->lineno, "unknown section [%s]", body);
}

/* One pair of order_rules, reported on the later of the two keys' lines. */
static void check_order(struct cfgi_state *st, size_t lo, size_t hi, int strict)
{
    double a = number(st->h, &hkeys[lo]), b = number(st->h, &hkeys[hi]);
    if (strict ? a < b : a <= b)
        return;
    int at_hi = st->key_line[hi] > st->key_line[lo];
    size_t k = at_hi ? hi : lo, other = at_hi ? lo : hi;
    const char *rel = at_hi ? (strict ? "above" : "at least") : (strict ? "below" : "at most");
    cfgi_fail(st, st->key_line[k], "bad value for %s: %s (must be %s %s, which is %.10g%s)",
              hkeys[k].name, st->key_raw[k], rel, hkeys[other].name, at_hi ? a : b,
              unit_name(&hkeys[other]));
}

/* After parsing: string defaults and the rules that tie keys together. */
void cfgi_finish_herd(struct cfgi_state *st)
{
    struct cfg_herd *h = st->h;
    if (!h->log_dir)
        h->log_dir = cfgv_resolve(h->dir, "log");
    if (!h->run_dir)
        h->run_dir = cfgv_resolve(h->dir, "run");
    if (!h->places_url)
        h->places_url = strdup(h->places_api == CFG_PLACES_LEGACY ? DEFAULT_PLACES_URL_LEGACY
                                                                  : DEFAULT_PLACES_URL_NEW);
    if (!h->places_fields)
        h->places_fields = strdup(DEFAULT_PLACES_FIELDS);
    if (!h->log_dir || !h->run_dir || !h->places_url || !h->places_fields) {
        cfgi_fail(st, 0, "out of memory");
        return;
    }
    if (h->secret_previous && !h->secret)
        cfgi_fail(st, st->key_line[key_index("secret_previous")],
                  "secret_previous without secret: it is the secret being replaced");
    if (h->link_tls == CFG_TLS_PSK && !h->secret)
        cfgi_fail(st, st->key_line[key_index("link_tls")],
                  "link_tls = psk without secret: the pre-shared key is derived from it");
    for (size_t i = 0; i < sizeof order_rules / sizeof order_rules[0]; i++)
        check_order(st, key_index(order_rules[i].lo), key_index(order_rules[i].hi),
                    order_rules[i].strict);
}

size_t cfg_nkeys(void)
{
    return CFGI_NKEYS;
}

const char *cfg_key_name(size_t i)
{
    return i < CFGI_NKEYS ? hkeys[i].name : NULL;
}

enum cfg_kclass cfg_key_class(size_t i)
{
    return i < CFGI_NKEYS ? hkeys[i].kclass : CFG_K_SUP;
}

static int is_string(const struct hkey *k)
{
    return k->type == K_PATH || k->type == K_NAME || k->type == K_SECRET || k->type == K_URL ||
           k->type == K_TEXT;
}

int cfg_key_differs(const struct cfg_herd *x, const struct cfg_herd *y, size_t i)
{
    if (i >= CFGI_NKEYS)
        return 0;
    const struct hkey *k = &hkeys[i];
    const char *px = (const char *)x + k->off, *py = (const char *)y + k->off;
    if (is_string(k)) {
        const char *a = *(char *const *)(const void *)px, *b = *(char *const *)(const void *)py;
        return !(a == b || (a && b && strcmp(a, b) == 0));
    }
    if (k->type == K_LEVEL)
        return x->log_level != y->log_level;
    if (k->type == K_API)
        return x->places_api != y->places_api;
    if (k->type == K_TLS)
        return x->link_tls != y->link_tls;
    if (k->type == K_DUR)
        return *(const double *)(const void *)px != *(const double *)(const void *)py;
    return *(const size_t *)(const void *)px != *(const size_t *)(const void *)py;
}

int cfg_herd_differs(const struct cfg_herd *x, const struct cfg_herd *y, unsigned classes)
{
    for (size_t i = 0; i < CFGI_NKEYS; i++) {
        if ((hkeys[i].kclass & classes) && cfg_key_differs(x, y, i))
            return 1;
    }
    return 0;
}

int cfg_apply_live(struct cfg_herd *cur, const struct cfg_herd *next)
{
    char *dup[CFGI_NKEYS] = {0};

    /* Every string first, so that running out of memory changes nothing. */
    for (size_t i = 0; i < CFGI_NKEYS; i++) {
        const struct hkey *k = &hkeys[i];
        const char *v = *(char *const *)(const void *)((const char *)next + k->off);
        if (k->kclass != CFG_K_LIVE || !is_string(k) || !v)
            continue;
        if (!(dup[i] = strdup(v))) {
            for (size_t j = 0; j < i; j++)
                free(dup[j]);
            return -1;
        }
    }
    for (size_t i = 0; i < CFGI_NKEYS; i++) {
        const struct hkey *k = &hkeys[i];
        void *dst = field(cur, k);
        const void *src = (const char *)next + k->off;
        if (k->kclass != CFG_K_LIVE)
            continue;
        if (is_string(k)) {
            free(*(char **)dst);
            *(char **)dst = dup[i];
        } else if (k->type == K_LEVEL) {
            cur->log_level = next->log_level;
        } else if (k->type == K_API) {
            cur->places_api = next->places_api;
        } else if (k->type == K_DUR) {
            *(double *)dst = *(const double *)src;
        } else {
            *(size_t *)dst = *(const size_t *)src;
        }
    }
    return 0;
}
