/*
 * libFuzzer target for common/protocol.c: every input is one client line.
 * Beyond "no crash", it checks the invariants the worker relies on: an AT
 * line built from any accepted IAMAT always fits PROTO_AT_MAX and parses back
 * to the same fields, and accepted WHATSAT values are within SPEC §4 bounds.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocol.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int same(struct proto_str a, struct proto_str b)
{
    return a.len == b.len && memcmp(a.p, b.p, a.len) == 0;
}

static void check_iamat(const struct proto_msg *m)
{
    static const struct proto_time now = {1621464828, 223371889};
    char                           buf[PROTO_AT_MAX];
    struct proto_msg               at;

    int n = proto_format_at("Riley", m, now, buf, sizeof buf);
    if (n <= 0)
        abort(); /* PROTO_AT_MAX is meant to hold any accepted IAMAT */
    if (proto_parse(buf, (size_t)n, &at) != PROTO_AT)
        abort();
    if (!same(at.id, m->id) || !same(at.loc, m->loc) || !same(at.time, m->time))
        abort();
    if (proto_time_cmp(at.t, m->t) != 0)
        abort();
}

static void check_whatsat(const struct proto_msg *m)
{
    char buf[32];

    if (m->radius_m_milli == 0 || m->radius_m_milli > 50000000 || m->bound > 20)
        abort();
    if (proto_format_radius_m(m->radius_m_milli, buf, sizeof buf) <= 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char       *line = (const char *)data;
    struct proto_msg  m;
    struct proto_str  lat, lng;
    struct proto_time t;

    switch (proto_parse(line, size, &m)) {
    case PROTO_IAMAT:
        check_iamat(&m);
        break;
    case PROTO_WHATSAT:
        check_whatsat(&m);
        break;
    default:
        break;
    }
    /* The sub-parsers are public too; give them the raw bytes as well. */
    (void)proto_parse_location(line, size, &lat, &lng);
    if (proto_parse_time(line, size, &t) == 0 && (t.nsec < 0 || t.nsec >= 1000000000))
        abort();
    return 0;
}
