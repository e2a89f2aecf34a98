/*
 * loadgen's command line: what to drive (mode, ports, connections, depth or
 * rate, how long) and the probe's identity. Parsing checks every number's
 * range; nothing here touches the network.
 */
#ifndef LOADGEN_OPTS_H
#define LOADGEN_OPTS_H

#include <stdint.h>
#include <stdio.h>

#define LG_MAX_PORTS 16

enum lg_mode { MODE_IAMAT, MODE_WHATSAT, MODE_IDLE, MODE_PROBE };

struct lg_opts {
    enum lg_mode mode;
    uint16_t     ports[LG_MAX_PORTS];
    size_t       nports;
    unsigned     conns;
    unsigned     depth;
    double       duration;
    double       warmup;
    double       linger;
    double       rate;     /* 0: closed loop */
    uint64_t     requests; /* 0: until duration */
    unsigned     idle;
    uint64_t     samples;
    const char  *prefix;
    const char  *label;
    const char  *probe_name;   /* probe: this fake server's name */
    uint16_t     probe_listen; /* probe: port to accept the worker's dial on */
};

void lg_opts_usage(FILE *f);

/* Fills O from ARGV: 0, or -1 on a bad or missing option (after a line on
 * stderr for a bad value). --help prints the usage and exits 0. */
int lg_opts_parse(struct lg_opts *o, int argc, char **argv);

#endif
