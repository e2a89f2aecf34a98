/*
 * protocol_test: helpers shared by the unit tests of common/protocol.c
 * (test_protocol.c: the line grammar; test_protocol_format.c: time diffs
 * and the AT and radius formatters).
 */
#ifndef HERD_PROTOCOL_TEST_H
#define HERD_PROTOCOL_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "protocol.h"

static inline enum proto_kind parse(const char *s, struct proto_msg *m)
{
    return proto_parse(s, strlen(s), m);
}

static inline enum proto_kind kind_of(const char *s)
{
    struct proto_msg m;

    return parse(s, &m);
}

static inline int loc_ok(const char *s)
{
    return proto_parse_location(s, strlen(s), NULL, NULL) == 0;
}

static inline int time_ok(const char *s)
{
    struct proto_time t;

    return proto_parse_time(s, strlen(s), &t) == 0;
}

static inline void assert_field(struct proto_str f, const char *want)
{
    assert_int_equal(f.len, strlen(want));
    assert_memory_equal(f.p, want, f.len);
}

static inline struct proto_time mk(int64_t sec, int32_t nsec)
{
    struct proto_time t = {sec, nsec};

    return t;
}

static inline void assert_diff(struct proto_time now, struct proto_time client,
                        const char *want)
{
    char buf[64];
    int  n = proto_format_diff(now, client, buf, sizeof buf);

    assert_int_equal(n, (int)strlen(want));
    assert_string_equal(buf, want);
}

static inline void assert_radius_fmt(uint32_t milli, const char *want)
{
    char buf[32];
    int  n = proto_format_radius_m(milli, buf, sizeof buf);

    assert_int_equal(n, (int)strlen(want));
    assert_string_equal(buf, want);
}

static inline uint32_t radius_of(const char *r)
{
    char             line[512];
    struct proto_msg m;

    assert_true(snprintf(line, sizeof line, "WHATSAT c %s 5", r) < (int)sizeof line);
    assert_int_equal(parse(line, &m), PROTO_WHATSAT);
    return m.radius_m_milli;
}

static inline enum proto_kind whatsat_kind(const char *radius, const char *bound)
{
    char line[512];

    assert_true(snprintf(line, sizeof line, "WHATSAT c %s %s", radius, bound) <
                (int)sizeof line);
    return kind_of(line);
}

#endif
