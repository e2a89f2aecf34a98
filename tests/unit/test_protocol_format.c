/*
 * Unit tests for common/protocol.c's arithmetic and formatters: exact
 * nanosecond time diffs, the AT line, the radius in metres, the origin
 * instant. Needs only protocol.c and cmocka.
 */
#include "protocol_test.h"

/* --- time diff ---------------------------------------------------------- */

static void test_diff_spec_example(void **state)
{
    (void)state;
    assert_diff(mk(1621464828, 223371889), mk(1621464827, 959498503),
                "+0.263873386");
}

static void test_diff_zero(void **state)
{
    (void)state;
    assert_diff(mk(0, 0), mk(0, 0), "+0.000000000");
    assert_diff(mk(1621464827, 959498503), mk(1621464827, 959498503),
                "+0.000000000");
}

static void test_diff_borrow(void **state)
{
    (void)state;
    assert_diff(mk(5, 0), mk(3, 999999999), "+1.000000001");
    assert_diff(mk(11, 200000000), mk(10, 700000000), "+0.500000000");
    assert_diff(mk(100, 0), mk(0, 1), "+99.999999999");
}

static void test_diff_negative(void **state)
{
    (void)state;
    assert_diff(mk(10, 200000000), mk(10, 700000000), "-0.500000000");
    assert_diff(mk(10, 700000000), mk(11, 200000000), "-0.500000000");
    assert_diff(mk(3, 999999999), mk(5, 0), "-1.000000001");
    assert_diff(mk(0, 0), mk(1, 1), "-1.000000001");
    assert_diff(mk(0, 0), mk(7, 0), "-7.000000000");
}

static void test_diff_nanosecond(void **state)
{
    (void)state;
    assert_diff(mk(1621464827, 959498504), mk(1621464827, 959498503),
                "+0.000000001");
    assert_diff(mk(1621464827, 959498502), mk(1621464827, 959498503),
                "-0.000000001");
    assert_diff(mk(1621464828, 0), mk(1621464827, 999999999), "+0.000000001");
    assert_diff(mk(1621464827, 999999999), mk(1621464828, 0), "-0.000000001");
}

static void test_diff_extremes(void **state)
{
    (void)state;
    assert_diff(mk(INT64_C(999999999999999999), 999999999), mk(0, 0),
                "+999999999999999999.999999999");
    assert_diff(mk(0, 0), mk(INT64_C(999999999999999999), 999999999),
                "-999999999999999999.999999999");
    assert_diff(mk(INT64_MAX, 0), mk(0, 0), "+9223372036854775807.000000000");
    assert_diff(mk(0, 0), mk(INT64_MAX, 999999999),
                "-9223372036854775807.999999999");
}

static void test_diff_buffer_size(void **state)
{
    (void)state;
    char buf[16];

    assert_int_equal(proto_format_diff(mk(1, 0), mk(0, 0), buf, 13), 12);
    assert_string_equal(buf, "+1.000000000");
    assert_int_equal(proto_format_diff(mk(1, 0), mk(0, 0), buf, 12), -1);
    assert_int_equal(proto_format_diff(mk(1, 0), mk(0, 0), buf, 0), -1);
}

static void test_diff_rejects_bad_times(void **state)
{
    (void)state;
    char buf[64];

    assert_int_equal(proto_format_diff(mk(1, 1000000000), mk(0, 0), buf, 64), -1);
    assert_int_equal(proto_format_diff(mk(1, 0), mk(0, -1), buf, 64), -1);
    assert_int_equal(proto_format_diff(mk(-1, 0), mk(0, 0), buf, 64), -1);
}

/* --- AT line ------------------------------------------------------------ */

static void test_format_at_spec_example(void **state)
{
    (void)state;
    const char *line = "IAMAT kiwi.cs.ucla.edu +34.068930-118.445127 "
                       "1621464827.959498503";
    const char *want = "AT Riley +0.263873386 kiwi.cs.ucla.edu "
                       "+34.068930-118.445127 1621464827.959498503";
    struct proto_msg m;
    char             buf[PROTO_AT_MAX];

    assert_int_equal(parse(line, &m), PROTO_IAMAT);
    assert_int_equal(proto_format_at("Riley", &m, mk(1621464828, 223371889), buf,
                                     sizeof buf),
                     (int)strlen(want));
    assert_string_equal(buf, want);
    /* The server's own line must parse back as an AT with the same fields. */
    assert_int_equal(parse(buf, &m), PROTO_AT);
    assert_field(m.diff, "+0.263873386");
}

static void test_format_at_verbatim(void **state)
{
    (void)state;
    struct proto_msg m;
    char             buf[PROTO_AT_MAX];

    assert_int_equal(parse("\tIAMAT  c  +034.50-0118  0001.50\r", &m), PROTO_IAMAT);
    assert_true(proto_format_at("S", &m, mk(2, 0), buf, sizeof buf) > 0);
    assert_string_equal(buf, "AT S +0.500000000 c +034.50-0118 0001.50");
}

static void test_format_at_too_small(void **state)
{
    (void)state;
    struct proto_msg m;
    char             buf[64];
    const char      *want = "AT S +1.000000000 c +1+1 1";
    size_t           need = strlen(want) + 1;

    assert_int_equal(parse("IAMAT c +1+1 1", &m), PROTO_IAMAT);
    for (size_t size = 1; size < need; size++) {
        memset(buf, 'z', sizeof buf);
        assert_int_equal(proto_format_at("S", &m, mk(2, 0), buf, size), -1);
        assert_int_equal(buf[0], '\0');
        assert_int_equal(buf[size], 'z'); /* nothing written past SIZE */
    }
    assert_int_equal(proto_format_at("S", &m, mk(2, 0), buf, need),
                     (int)need - 1);
    assert_string_equal(buf, want);
    assert_int_equal(proto_format_at("S", &m, mk(2, 0), buf, 0), -1);
}

static void test_format_at_max_fields(void **state)
{
    (void)state;
    char             field[PROTO_FIELD_MAX + 1];
    char             loc[PROTO_FIELD_MAX + 1];
    char             line[2048];
    char             buf[PROTO_AT_MAX];
    struct proto_msg m;

    memset(field, 'i', PROTO_FIELD_MAX);
    field[PROTO_FIELD_MAX] = '\0';
    memset(loc, '0', PROTO_FIELD_MAX);
    loc[0] = '+';
    loc[PROTO_FIELD_MAX / 2] = '-';
    loc[PROTO_FIELD_MAX] = '\0';
    snprintf(line, sizeof line, "IAMAT %s %s 999999999999999999.999999999", field,
             loc);
    assert_int_equal(parse(line, &m), PROTO_IAMAT);
    int n = proto_format_at(field, &m, mk(0, 0), buf, sizeof buf);
    assert_true(n > 0);
    assert_int_equal(parse(buf, &m), PROTO_AT);
}

static void test_format_at_needs_iamat(void **state)
{
    (void)state;
    struct proto_msg m;
    char             buf[PROTO_AT_MAX];

    assert_int_equal(parse("WHATSAT c 10 5", &m), PROTO_WHATSAT);
    assert_int_equal(proto_format_at("S", &m, mk(2, 0), buf, sizeof buf), -1);
    assert_int_equal(parse("IAMAT c +1+1 1", &m), PROTO_IAMAT);
    assert_int_equal(proto_format_at(NULL, &m, mk(2, 0), buf, sizeof buf), -1);
    assert_int_equal(proto_format_at("S", NULL, mk(2, 0), buf, sizeof buf), -1);
    /* A hand-made IAMAT with an empty field would give an unparsable AT. */
    m.id.len = 0;
    assert_int_equal(proto_format_at("S", &m, mk(2, 0), buf, sizeof buf), -1);
    assert_int_equal(parse("IAMAT c +1+1 1", &m), PROTO_IAMAT);
    assert_int_equal(proto_format_at("", &m, mk(2, 0), buf, sizeof buf), -1);
    assert_int_equal(proto_format_at("Ri ley", &m, mk(2, 0), buf, sizeof buf), -1);
    assert_int_equal(proto_format_at("Riley\r", &m, mk(2, 0), buf, sizeof buf), -1);
}

static void test_format_at_nul_in_id(void **state)
{
    (void)state;
    static const char line[] = "IAMAT a\0b +1+1 1";
    static const char want[] = "AT S +1.000000000 a\0b +1+1 1";
    struct proto_msg  m;
    char              buf[PROTO_AT_MAX];

    assert_int_equal(proto_parse(line, sizeof line - 1, &m), PROTO_IAMAT);
    assert_int_equal(proto_format_at("S", &m, mk(2, 0), buf, sizeof buf),
                     (int)sizeof want - 1);
    assert_memory_equal(buf, want, sizeof want);
}

static void test_format_radius_m(void **state)
{
    (void)state;
    assert_radius_fmt(10000000, "10000");
    assert_radius_fmt(1500500, "1500.5");
    assert_radius_fmt(1, "0.001");
    assert_radius_fmt(10, "0.01");
    assert_radius_fmt(1230, "1.23");
    assert_radius_fmt(0, "0");
    assert_radius_fmt(50000000, "50000");
    assert_radius_fmt(UINT32_MAX, "4294967.295");
}

static void test_format_radius_m_too_small(void **state)
{
    (void)state;
    char buf[8];

    assert_int_equal(proto_format_radius_m(1500500, buf, 7), 6);
    assert_int_equal(proto_format_radius_m(1500500, buf, 6), -1);
    assert_int_equal(proto_format_radius_m(10000000, buf, 5), -1);
    assert_int_equal(proto_format_radius_m(10000000, buf, 0), -1);
}

static void test_at_origin(void **state)
{
    (void)state;
    struct proto_msg m;
    struct proto_time o;
    const char *a = "AT Riley +0.263873386 kiwi +34.068930-118.445127 1621464827.959498503";
    assert_int_equal(proto_parse(a, strlen(a), &m), PROTO_AT);
    assert_int_equal(proto_at_origin(&m, &o), 0);
    assert_true(o.sec == 1621464828 && o.nsec == 223371889);
    const char *b = "AT Riley -5.500000000 kiwi +34.068930-118.445127 100.25";
    assert_int_equal(proto_parse(b, strlen(b), &m), PROTO_AT);
    assert_int_equal(proto_at_origin(&m, &o), 0);
    assert_true(o.sec == 94 && o.nsec == 750000000);
    const char *c = "AT Riley -200.000000000 kiwi +34.068930-118.445127 100";
    assert_int_equal(proto_parse(c, strlen(c), &m), PROTO_AT);
    assert_int_equal(proto_at_origin(&m, &o), -1); /* before the epoch */
    /* A client whose clock is far ahead: the origin is still the receive time. */
    const char *d = "AT Riley -999999998378535172.040501497 kiwi +34.068930-118.445127 "
                    "999999999999999999.999999999";
    assert_int_equal(proto_parse(d, strlen(d), &m), PROTO_AT);
    assert_int_equal(proto_at_origin(&m, &o), 0);
    assert_true(o.sec == 1621464827 && o.nsec == 959498502);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_diff_spec_example),
        cmocka_unit_test(test_diff_zero),
        cmocka_unit_test(test_diff_borrow),
        cmocka_unit_test(test_diff_negative),
        cmocka_unit_test(test_diff_nanosecond),
        cmocka_unit_test(test_diff_extremes),
        cmocka_unit_test(test_diff_buffer_size),
        cmocka_unit_test(test_diff_rejects_bad_times),
        cmocka_unit_test(test_format_at_spec_example),
        cmocka_unit_test(test_format_at_verbatim),
        cmocka_unit_test(test_format_at_too_small),
        cmocka_unit_test(test_format_at_max_fields),
        cmocka_unit_test(test_format_at_needs_iamat),
        cmocka_unit_test(test_format_at_nul_in_id),
        cmocka_unit_test(test_format_radius_m),
        cmocka_unit_test(test_format_radius_m_too_small),
        cmocka_unit_test(test_at_origin),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
