/*
 * loadgen's options: getopt_long over the table below, every number checked
 * against its range (strtod, no atoi), defaults in one place.
 */
#include "opts.h"
#include "wire.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

void lg_opts_usage(FILE *f)
{
    fprintf(f,
        "usage: loadgen [OPTIONS] --port P [--port P2 ...]\n"
        "Drives herd workers (or the ceiling server) on 127.0.0.1; prints one JSON line.\n\n"
        "  -m, --mode M          iamat (default): IAMAT lines, a new client ID each\n"
        "                        whatsat: one IAMAT, then WHATSAT for that client\n"
        "                        idle: hold --idle K connections, then time a fresh\n"
        "                          client's --samples requests, one at a time\n"
        "                        probe: a fake neighbour named --probe-name accepting\n"
        "                          its link on --probe-port; times AT lines whose ID\n"
        "                          starts with --prefix (client time = send time)\n"
        "  -p, --port P          worker port (repeat: connections go round-robin)\n"
        "  -c, --connections N   connections (default 8)\n"
        "  -d, --depth D         requests in flight per connection, closed loop (16)\n"
        "  -r, --rate R          open loop: R requests/s in all (default: closed loop)\n"
        "  -t, --duration S      measure for S seconds (default 5); with --requests,\n"
        "                        the most it may take\n"
        "  -n, --requests N      stop after N replies\n"
        "  -w, --warmup S        seconds before measuring starts (default 0)\n"
        "  -k, --idle K          idle mode: connections held (default 1000)\n"
        "  -s, --samples M       idle mode: fresh-client requests (default 1000)\n"
        "  -l, --linger S        keep connections open S seconds after the report\n"
        "  -P, --prefix STR      client ID prefix (default \"c\")\n"
        "  -L, --label STR       copied into the JSON line\n"
        "      --probe-name NAME, --probe-port P   probe mode\n"
        "  -h, --help            this text\n");
}

static int num(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !(v >= lo && v <= hi))
        return -1;
    *out = v;
    return 0;
}

static int set_opt(struct lg_opts *o, int ch, const char *arg)
{
    double v = 0;
    switch (ch) {
    case 'm': {
        static const char *const modes[] = { "iamat", "whatsat", "idle", "probe" };
        for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++)
            if (strcmp(arg, modes[i]) == 0) {
                o->mode = (enum lg_mode)i;
                return 0;
            }
        return -1;
    }
    case 'p':
        if (o->nports == LG_MAX_PORTS || num(arg, 1, 65535, &v) < 0)
            return -1;
        o->ports[o->nports++] = (uint16_t)v;
        return 0;
    case 'c': if (num(arg, 1, 100000, &v) < 0) return -1; o->conns = (unsigned)v; return 0;
    case 'd': if (num(arg, 1, 1 << 20, &v) < 0) return -1; o->depth = (unsigned)v; return 0;
    case 'r': return num(arg, 0, 1e8, &o->rate);
    case 't': return num(arg, 0.001, 3600, &o->duration);
    case 'w': return num(arg, 0, 3600, &o->warmup);
    case 'l': return num(arg, 0, 3600, &o->linger);
    case 'n': if (num(arg, 1, 1e12, &v) < 0) return -1; o->requests = (uint64_t)v; return 0;
    case 'k': if (num(arg, 1, 1e6, &v) < 0) return -1; o->idle = (unsigned)v; return 0;
    case 's': if (num(arg, 1, 1e9, &v) < 0) return -1; o->samples = (uint64_t)v; return 0;
    case 'P': o->prefix = arg; return strlen(arg) <= LG_PREFIX_MAX && strchr(arg, ' ') == NULL ? 0 : -1;
    case 'L': o->label = arg; return strchr(arg, '"') || strchr(arg, '\\') ? -1 : 0;
    case 'N': o->probe_name = arg; return strlen(arg) < 64 ? 0 : -1;
    case 'Q': if (num(arg, 1, 65535, &v) < 0) return -1; o->probe_listen = (uint16_t)v; return 0;
    default: return -1;
    }
}

int lg_opts_parse(struct lg_opts *o, int argc, char **argv)
{
    static const struct option longopts[] = {
        { "mode", required_argument, NULL, 'm' },     { "port", required_argument, NULL, 'p' },
        { "connections", required_argument, NULL, 'c' },
        { "depth", required_argument, NULL, 'd' },    { "rate", required_argument, NULL, 'r' },
        { "duration", required_argument, NULL, 't' }, { "requests", required_argument, NULL, 'n' },
        { "warmup", required_argument, NULL, 'w' },   { "idle", required_argument, NULL, 'k' },
        { "samples", required_argument, NULL, 's' },  { "linger", required_argument, NULL, 'l' },
        { "prefix", required_argument, NULL, 'P' },   { "label", required_argument, NULL, 'L' },
        { "probe-name", required_argument, NULL, 'N' },
        { "probe-port", required_argument, NULL, 'Q' },
        { "help", no_argument, NULL, 'h' },           { NULL, 0, NULL, 0 },
    };
    *o = (struct lg_opts){ .conns = 8, .depth = 16, .duration = 5, .idle = 1000,
                           .samples = 1000, .prefix = "c", .label = "",
                           .probe_name = "Probe" };
    int ch;
    while ((ch = getopt_long(argc, argv, "m:p:c:d:r:t:n:w:k:s:l:P:L:h", longopts, NULL)) != -1) {
        if (ch == 'h') {
            lg_opts_usage(stdout);
            exit(0);
        }
        if (set_opt(o, ch, optarg) < 0) {
            fprintf(stderr, "loadgen: bad option -%c %s\n", ch, optarg ? optarg : "");
            return -1;
        }
    }
    if (optind != argc || (o->mode == MODE_PROBE ? o->probe_listen == 0 : o->nports == 0))
        return -1;
    if (o->mode == MODE_IDLE)
        o->depth = o->conns = 1;
    return 0;
}
