/*
 * Unit tests for common/protocol.c's parser: the SPEC §4 line grammar, white
 * space, exact range checks on coordinates, times, radius and bound. The
 * formatters are test_protocol_format.c's. Needs only protocol.c and cmocka.
 */
#include "protocol_test.h"

/* --- whole lines -------------------------------------------------------- */

static void test_iamat_spec_example(void **state)
{
    (void)state;
    const char      *line = "IAMAT kiwi.cs.ucla.edu +34.068930-118.445127 "
                            "1621464827.959498503";
    struct proto_msg m;

    assert_int_equal(proto_parse(line, strlen(line), &m), PROTO_IAMAT);
    assert_int_equal(m.kind, PROTO_IAMAT);
    assert_field(m.id, "kiwi.cs.ucla.edu");
    assert_field(m.loc, "+34.068930-118.445127");
    assert_field(m.time, "1621464827.959498503");
    assert_ptr_equal(m.id.p, line + 6);
    assert_int_equal(m.t.sec, 1621464827);
    assert_int_equal(m.t.nsec, 959498503);
}

static void test_whatsat_spec_example(void **state)
{
    (void)state;
    struct proto_msg m;

    assert_int_equal(parse("WHATSAT kiwi.cs.ucla.edu 10 5", &m), PROTO_WHATSAT);
    assert_field(m.id, "kiwi.cs.ucla.edu");
    assert_field(m.radius, "10");
    assert_int_equal(m.radius_m_milli, 10000000);
    assert_int_equal(m.bound, 5);
}

static void test_at_spec_example(void **state)
{
    (void)state;
    struct proto_msg m;

    assert_int_equal(parse("AT Riley +0.263873386 kiwi.cs.ucla.edu "
                           "+34.068930-118.445127 1621464827.959498503",
                           &m),
                     PROTO_AT);
    assert_field(m.server, "Riley");
    assert_field(m.diff, "+0.263873386");
    assert_field(m.id, "kiwi.cs.ucla.edu");
    assert_field(m.loc, "+34.068930-118.445127");
    assert_field(m.time, "1621464827.959498503");
    assert_int_equal(m.t.sec, 1621464827);
    assert_int_equal(m.t.nsec, 959498503);
}

static void test_at_diff_forms(void **state)
{
    (void)state;
    assert_int_equal(kind_of("AT s -12.000000000 c +1+1 1"), PROTO_AT);
    assert_int_equal(kind_of("AT s +0007.123456789 c +1+1 1"), PROTO_AT);
    assert_int_equal(kind_of("AT s 0.263873386 c +1+1 1"), PROTO_INVALID);
    assert_int_equal(kind_of("AT s +.263873386 c +1+1 1"), PROTO_INVALID);
    assert_int_equal(kind_of("AT s +0.26387338 c +1+1 1"), PROTO_INVALID);
    assert_int_equal(kind_of("AT s +0.2638733860 c +1+1 1"), PROTO_INVALID);
    assert_int_equal(kind_of("AT s +0263873386 c +1+1 1"), PROTO_INVALID);
    assert_int_equal(kind_of("AT s +1.000000000x c +1+1 1"), PROTO_INVALID);
    assert_int_equal(kind_of("AT s ++1.000000000 c +1+1 1"), PROTO_INVALID);
    assert_int_equal(kind_of("AT s + c +1+1 1"), PROTO_INVALID);
}

static void test_at_bad_location_or_time(void **state)
{
    (void)state;
    assert_int_equal(kind_of("AT s +0.000000000 c +91+1 1"), PROTO_INVALID);
    assert_int_equal(kind_of("AT s +0.000000000 c +1+1 1.1234567890"),
                     PROTO_INVALID);
    assert_int_equal(kind_of("AT s +0.000000000 c 1+1 1"), PROTO_INVALID);
}

static void test_wrong_field_counts(void **state)
{
    (void)state;
    assert_int_equal(kind_of("IAMAT"), PROTO_INVALID);
    assert_int_equal(kind_of("IAMAT c +1+1"), PROTO_INVALID);
    assert_int_equal(kind_of("IAMAT c +1+1 1 extra"), PROTO_INVALID);
    assert_int_equal(kind_of("WHATSAT c 10"), PROTO_INVALID);
    assert_int_equal(kind_of("WHATSAT c 10 5 extra"), PROTO_INVALID);
    assert_int_equal(kind_of("AT s +0.000000000 c +1+1"), PROTO_INVALID);
    assert_int_equal(kind_of("AT s +0.000000000 c +1+1 1 extra"), PROTO_INVALID);
    assert_int_equal(kind_of("AT s +0.000000000 c +1+1 1 a b c d e f"),
                     PROTO_INVALID);
    /* The counts must not be mixed up between commands. */
    assert_int_equal(kind_of("IAMAT s +0.000000000 c +1+1 1"), PROTO_INVALID);
    assert_int_equal(kind_of("AT c +1+1 1"), PROTO_INVALID);
}

static void test_lowercase_command(void **state)
{
    (void)state;
    assert_int_equal(kind_of("iamat c +1+1 1"), PROTO_INVALID);
    assert_int_equal(kind_of("Iamat c +1+1 1"), PROTO_INVALID);
    assert_int_equal(kind_of("whatsat c 10 5"), PROTO_INVALID);
    assert_int_equal(kind_of("at s +0.000000000 c +1+1 1"), PROTO_INVALID);
}

static void test_unknown_command(void **state)
{
    (void)state;
    assert_int_equal(kind_of("HELLO c +1+1 1"), PROTO_INVALID);
    assert_int_equal(kind_of("IAMATX c +1+1 1"), PROTO_INVALID);
    assert_int_equal(kind_of("IAMA c +1+1 1"), PROTO_INVALID);
    assert_int_equal(kind_of("x"), PROTO_INVALID);
}

/* --- white space ---------------------------------------------------------- */

static void test_empty_lines(void **state)
{
    (void)state;
    struct proto_msg m;

    assert_int_equal(kind_of(""), PROTO_EMPTY);
    assert_int_equal(kind_of(" "), PROTO_EMPTY);
    assert_int_equal(kind_of(" \t\r\f\v  "), PROTO_EMPTY);
    assert_int_equal(kind_of("\r"), PROTO_EMPTY);
    assert_int_equal(proto_parse(NULL, 0, &m), PROTO_EMPTY);
}

static void test_other_separators(void **state)
{
    (void)state;
    struct proto_msg m;

    assert_int_equal(parse("IAMAT\tc\t+1+1\t1", &m), PROTO_IAMAT);
    assert_int_equal(parse("IAMAT\vc\f+1+1\r1", &m), PROTO_IAMAT);
    assert_field(m.id, "c");
    assert_field(m.loc, "+1+1");
    assert_field(m.time, "1");
    assert_int_equal(parse("WHATSAT \t\r\f\vc \t10\v\f5", &m), PROTO_WHATSAT);
    assert_field(m.id, "c");
    assert_int_equal(m.bound, 5);
}

static void test_crlf(void **state)
{
    (void)state;
    struct proto_msg m;

    assert_int_equal(parse("IAMAT c +1+1 1.5\r", &m), PROTO_IAMAT);
    assert_field(m.time, "1.5");
    assert_int_equal(parse("WHATSAT c 10 5\r", &m), PROTO_WHATSAT);
    assert_int_equal(m.bound, 5);
}

static void test_multiple_spaces(void **state)
{
    (void)state;
    struct proto_msg m;

    assert_int_equal(parse("IAMAT    c     +1+1      1", &m), PROTO_IAMAT);
    assert_field(m.id, "c");
    assert_field(m.loc, "+1+1");
    assert_field(m.time, "1");
}

static void test_leading_trailing_white(void **state)
{
    (void)state;
    struct proto_msg m;

    assert_int_equal(parse("  \t IAMAT c +1+1 1 \t \r", &m), PROTO_IAMAT);
    assert_field(m.time, "1");
    assert_int_equal(parse("\v\fWHATSAT c 10 5\f\v", &m), PROTO_WHATSAT);
}

/* "\n" ends a line for the caller; inside one it is an ordinary character. */
static void test_newline_is_not_white(void **state)
{
    (void)state;
    struct proto_msg m;

    assert_int_equal(parse("IAMAT a\nb +1+1 1", &m), PROTO_IAMAT);
    assert_field(m.id, "a\nb");
    assert_int_equal(kind_of("IAMAT c +1+1 1\n"), PROTO_INVALID);
}

/* A missing field between separators just shifts the rest along. */
static void test_empty_fields(void **state)
{
    (void)state;
    struct proto_time t;

    assert_int_equal(kind_of("IAMAT  +1+1 1"), PROTO_INVALID);
    assert_int_equal(kind_of("WHATSAT c  5"), PROTO_INVALID);
    assert_int_equal(proto_parse_location("", 0, NULL, NULL), -1);
    assert_int_equal(proto_parse_time("", 0, &t), -1);
}

static void test_field_too_long(void **state)
{
    (void)state;
    char             line[1024];
    char             id[PROTO_FIELD_MAX + 2];
    struct proto_msg m;

    memset(id, 'x', sizeof id - 1);
    id[PROTO_FIELD_MAX] = '\0';
    snprintf(line, sizeof line, "IAMAT %s +1+1 1", id);
    assert_int_equal(parse(line, &m), PROTO_IAMAT);
    assert_int_equal(m.id.len, PROTO_FIELD_MAX);

    id[PROTO_FIELD_MAX] = 'x';
    id[PROTO_FIELD_MAX + 1] = '\0';
    snprintf(line, sizeof line, "IAMAT %s +1+1 1", id);
    assert_int_equal(parse(line, &m), PROTO_INVALID);
    snprintf(line, sizeof line, "WHATSAT %s 10 5", id);
    assert_int_equal(parse(line, &m), PROTO_INVALID);
    snprintf(line, sizeof line, "AT %s +0.000000000 c +1+1 1", id);
    assert_int_equal(parse(line, &m), PROTO_INVALID);
}

/* A location that is valid by value is still refused when it is too long. */
static void test_field_too_long_location(void **state)
{
    (void)state;
    char line[1024];
    char loc[PROTO_FIELD_MAX + 2];

    memset(loc, '0', sizeof loc);
    loc[0] = '+';
    loc[PROTO_FIELD_MAX - 2] = '-';
    loc[PROTO_FIELD_MAX - 1] = '1';
    loc[PROTO_FIELD_MAX] = '\0';
    snprintf(line, sizeof line, "IAMAT c %s 1", loc);
    assert_int_equal(kind_of(line), PROTO_IAMAT);

    loc[PROTO_FIELD_MAX - 2] = '0';
    loc[PROTO_FIELD_MAX - 1] = '-';
    loc[PROTO_FIELD_MAX] = '1';
    loc[PROTO_FIELD_MAX + 1] = '\0';
    snprintf(line, sizeof line, "IAMAT c %s 1", loc);
    assert_int_equal(kind_of(line), PROTO_INVALID);
}

static void test_nul_bytes(void **state)
{
    (void)state;
    struct proto_msg m;
    static const char cmd[] = "IAMAT\0 c +1+1 1";
    static const char tim[] = "IAMAT c +1+1 1\0";
    static const char id[] = "IAMAT a\0b +1+1 1";
    static const char nul[] = "\0";

    assert_int_equal(proto_parse(cmd, sizeof cmd - 1, &m), PROTO_INVALID);
    assert_int_equal(proto_parse(tim, sizeof tim - 1, &m), PROTO_INVALID);
    assert_int_equal(proto_parse(nul, 1, &m), PROTO_INVALID);
    /* SPEC §4: a client ID is any non-white characters, NUL included. */
    assert_int_equal(proto_parse(id, sizeof id - 1, &m), PROTO_IAMAT);
    assert_int_equal(m.id.len, 3);
    assert_memory_equal(m.id.p, "a\0b", 3);
}

/* Only LEN bytes are read: the fields of a line are not NUL-terminated. */
static void test_reads_only_len(void **state)
{
    (void)state;
    struct proto_msg  m;
    struct proto_time t;

    assert_int_equal(proto_parse("IAMAT c +1+1 12345", 15, &m), PROTO_IAMAT);
    assert_int_equal(m.t.sec, 12);
    assert_int_equal(proto_parse_location("+34-118.5x", 9, NULL, NULL), 0);
    assert_int_equal(proto_parse_time("1.59", 3, &t), 0);
    assert_int_equal(t.nsec, 500000000);
}

static void test_invalid_clears_msg(void **state)
{
    (void)state;
    struct proto_msg m;

    assert_int_equal(parse("IAMAT c +1+1 x", &m), PROTO_INVALID);
    assert_int_equal(m.loc.len, 0);
    assert_null(m.loc.p);
    assert_int_equal(m.t.sec, 0);
    assert_int_equal(parse("WHATSAT c 10 21", &m), PROTO_INVALID);
    assert_int_equal(m.radius_m_milli, 0);
}

/* --- location ----------------------------------------------------------- */

static void test_location_latitude_bounds(void **state)
{
    (void)state;
    assert_true(loc_ok("+90+0"));
    assert_true(loc_ok("-90+0"));
    assert_true(loc_ok("+90.000000-0"));
    assert_true(loc_ok("-90.0+0"));
    assert_true(loc_ok("+89.999999999999+0"));
    assert_false(loc_ok("+90.0000001+0"));
    assert_false(loc_ok("-90.0000001+0"));
    assert_false(loc_ok("+91+0"));
    assert_false(loc_ok("-100+0"));
}

static void test_location_longitude_bounds(void **state)
{
    (void)state;
    assert_true(loc_ok("+0+180"));
    assert_true(loc_ok("+0-180"));
    assert_true(loc_ok("+90-180"));
    assert_true(loc_ok("-90+180.000000000"));
    assert_true(loc_ok("+0+179.999999999"));
    assert_false(loc_ok("+0+180.0001"));
    assert_false(loc_ok("+0-180.000000001"));
    assert_false(loc_ok("+0-181"));
    assert_false(loc_ok("+180-180"));
}

static void test_location_missing_signs(void **state)
{
    (void)state;
    assert_false(loc_ok("34.068930-118.445127"));
    assert_false(loc_ok("+34.068930118.445127"));
    assert_false(loc_ok("+34118"));
    assert_false(loc_ok("++34-118"));
    assert_false(loc_ok("+-34-118"));
    assert_false(loc_ok("+34+-118"));
    assert_false(loc_ok("+34-"));
    assert_false(loc_ok("+-"));
    assert_false(loc_ok("+"));
}

static void test_location_decimal_forms(void **state)
{
    (void)state;
    assert_true(loc_ok("+34-118"));
    assert_true(loc_ok("+34.5-118"));
    assert_true(loc_ok("+34-118.5"));
    assert_false(loc_ok("+34.-118"));
    assert_false(loc_ok("+.5-118"));
    assert_false(loc_ok("+34.5-.5"));
    assert_false(loc_ok("+34.5-118."));
    assert_false(loc_ok("+34.5.6-118"));
    assert_false(loc_ok("+34e1-118"));
    assert_false(loc_ok("+34,5-118"));
    assert_false(loc_ok("+34-118 "));
}

static void test_location_leading_zeros(void **state)
{
    (void)state;
    assert_true(loc_ok("+034.5-0118.25"));
    assert_true(loc_ok("+00000000000000000000090-000000000000000000000180"));
    assert_false(loc_ok("+0000091-0"));
    assert_false(loc_ok("+0-000000000000000181"));
}

static void test_location_huge_numbers(void **state)
{
    (void)state;
    assert_false(loc_ok("+99999999999999999999.0-0"));
    assert_false(loc_ok("+0-99999999999999999999999999"));
    assert_false(loc_ok("+18446744073709551706+0"));
    assert_true(loc_ok("+0.99999999999999999999999-179.99999999999999999"));
}

static void test_location_negative_zero(void **state)
{
    (void)state;
    assert_true(loc_ok("-0-0"));
    assert_true(loc_ok("-0.000+0.0"));
}

static void test_location_split(void **state)
{
    (void)state;
    const char      *s = "+34.068930-118.445127";
    struct proto_str lat, lng;

    assert_int_equal(proto_parse_location(s, strlen(s), &lat, &lng), 0);
    assert_field(lat, "+34.068930");
    assert_field(lng, "-118.445127");
    assert_ptr_equal(lat.p, s);
}

/* --- time --------------------------------------------------------------- */

static void test_time_fraction_digits(void **state)
{
    (void)state;
    struct proto_time t;

    assert_int_equal(proto_parse_time("7", 1, &t), 0);
    assert_int_equal(t.sec, 7);
    assert_int_equal(t.nsec, 0);
    assert_int_equal(proto_parse_time("7.5", 3, &t), 0);
    assert_int_equal(t.nsec, 500000000);
    assert_int_equal(proto_parse_time("7.000000001", 11, &t), 0);
    assert_int_equal(t.nsec, 1);
    assert_int_equal(proto_parse_time("7.123456789", 11, &t), 0);
    assert_int_equal(t.nsec, 123456789);
    assert_false(time_ok("7.1234567890"));
    assert_false(time_ok("7.0000000000"));
}

static void test_time_malformed(void **state)
{
    (void)state;
    assert_false(time_ok("1."));
    assert_false(time_ok("."));
    assert_false(time_ok(".5"));
    assert_false(time_ok("1.2.3"));
    assert_false(time_ok("1e9"));
    assert_false(time_ok("0x10"));
    assert_false(time_ok(" 1"));
    assert_false(time_ok("1 "));
}

static void test_time_sign_rejected(void **state)
{
    (void)state;
    assert_false(time_ok("+1"));
    assert_false(time_ok("-1"));
    assert_false(time_ok("-0.5"));
}

static void test_time_integer_digits(void **state)
{
    (void)state;
    struct proto_time t;

    assert_int_equal(proto_parse_time("999999999999999999.999999999", 28, &t), 0);
    assert_int_equal(t.sec, INT64_C(999999999999999999));
    assert_int_equal(t.nsec, 999999999);
    assert_false(time_ok("1000000000000000000"));
    assert_false(time_ok("99999999999999999999999999999999"));
    /* The 18-digit cap counts leading zeros too. */
    assert_int_equal(proto_parse_time("000123", 6, &t), 0);
    assert_int_equal(t.sec, 123);
    assert_false(time_ok("0000000000000000001"));
    assert_true(time_ok("0"));
}

static void test_time_cmp(void **state)
{
    (void)state;
    assert_int_equal(proto_time_cmp(mk(1, 0), mk(1, 0)), 0);
    assert_int_equal(proto_time_cmp(mk(1, 0), mk(1, 1)), -1);
    assert_int_equal(proto_time_cmp(mk(1, 1), mk(1, 0)), 1);
    assert_int_equal(proto_time_cmp(mk(1, 999999999), mk(2, 0)), -1);
    assert_int_equal(proto_time_cmp(mk(3, 0), mk(2, 999999999)), 1);
}

/* --- WHATSAT radius and bound -------------------------------------------- */

static void test_whatsat_radius_bounds(void **state)
{
    (void)state;
    assert_int_equal(radius_of("50"), 50000000);
    assert_int_equal(radius_of("50.000"), 50000000);
    assert_int_equal(radius_of("050"), 50000000);
    assert_int_equal(radius_of("0000000000000000000000049.5"), 49500000);
    assert_int_equal(radius_of("49.999999999"), 49999999);
    assert_int_equal(radius_of("0.5"), 500000);
    assert_int_equal(radius_of("1.5005"), 1500500);
    assert_int_equal(whatsat_kind("50.0001", "5"), PROTO_INVALID);
    assert_int_equal(whatsat_kind("50.0000000000000001", "5"), PROTO_INVALID);
    assert_int_equal(whatsat_kind("51", "5"), PROTO_INVALID);
    assert_int_equal(whatsat_kind("99999999999999999999999", "5"), PROTO_INVALID);
    assert_int_equal(whatsat_kind("0", "5"), PROTO_INVALID);
    assert_int_equal(whatsat_kind("0.000", "5"), PROTO_INVALID);
    assert_int_equal(whatsat_kind("000", "5"), PROTO_INVALID);
}

static void test_whatsat_radius_tiny(void **state)
{
    (void)state;
    assert_int_equal(radius_of("0.000001"), 1);
    assert_int_equal(radius_of("0.0000019"), 1);
    assert_int_equal(radius_of("0.0000001"), 1);
    assert_int_equal(radius_of("0.00000000000000000001"), 1);
    assert_int_equal(radius_of("0.000002"), 2);
}

static void test_whatsat_radius_malformed(void **state)
{
    (void)state;
    assert_int_equal(whatsat_kind("+10", "5"), PROTO_INVALID);
    assert_int_equal(whatsat_kind("-10", "5"), PROTO_INVALID);
    assert_int_equal(whatsat_kind("10.", "5"), PROTO_INVALID);
    assert_int_equal(whatsat_kind(".5", "5"), PROTO_INVALID);
    assert_int_equal(whatsat_kind("1e1", "5"), PROTO_INVALID);
    assert_int_equal(whatsat_kind("ten", "5"), PROTO_INVALID);
}

static void test_whatsat_bound_bounds(void **state)
{
    (void)state;
    struct proto_msg m;

    assert_int_equal(parse("WHATSAT c 10 0", &m), PROTO_WHATSAT);
    assert_int_equal(m.bound, 0);
    assert_int_equal(parse("WHATSAT c 10 20", &m), PROTO_WHATSAT);
    assert_int_equal(m.bound, 20);
    assert_int_equal(parse("WHATSAT c 10 020", &m), PROTO_WHATSAT);
    assert_int_equal(m.bound, 20);
    assert_int_equal(parse("WHATSAT c 10 00000000000000000000000000019", &m),
                     PROTO_WHATSAT);
    assert_int_equal(m.bound, 19);
    assert_int_equal(whatsat_kind("10", "21"), PROTO_INVALID);
    assert_int_equal(whatsat_kind("10", "100"), PROTO_INVALID);
    assert_int_equal(whatsat_kind("10", "18446744073709551636"), PROTO_INVALID);
}

static void test_whatsat_bound_malformed(void **state)
{
    (void)state;
    assert_int_equal(whatsat_kind("10", "-1"), PROTO_INVALID);
    assert_int_equal(whatsat_kind("10", "+5"), PROTO_INVALID);
    assert_int_equal(whatsat_kind("10", "5.0"), PROTO_INVALID);
    assert_int_equal(whatsat_kind("10", "5."), PROTO_INVALID);
    assert_int_equal(whatsat_kind("10", "1e1"), PROTO_INVALID);
    assert_int_equal(whatsat_kind("10", "five"), PROTO_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_iamat_spec_example),
        cmocka_unit_test(test_whatsat_spec_example),
        cmocka_unit_test(test_at_spec_example),
        cmocka_unit_test(test_at_diff_forms),
        cmocka_unit_test(test_at_bad_location_or_time),
        cmocka_unit_test(test_wrong_field_counts),
        cmocka_unit_test(test_lowercase_command),
        cmocka_unit_test(test_unknown_command),
        cmocka_unit_test(test_empty_lines),
        cmocka_unit_test(test_other_separators),
        cmocka_unit_test(test_crlf),
        cmocka_unit_test(test_multiple_spaces),
        cmocka_unit_test(test_leading_trailing_white),
        cmocka_unit_test(test_newline_is_not_white),
        cmocka_unit_test(test_empty_fields),
        cmocka_unit_test(test_field_too_long),
        cmocka_unit_test(test_field_too_long_location),
        cmocka_unit_test(test_nul_bytes),
        cmocka_unit_test(test_reads_only_len),
        cmocka_unit_test(test_invalid_clears_msg),
        cmocka_unit_test(test_location_latitude_bounds),
        cmocka_unit_test(test_location_longitude_bounds),
        cmocka_unit_test(test_location_missing_signs),
        cmocka_unit_test(test_location_decimal_forms),
        cmocka_unit_test(test_location_leading_zeros),
        cmocka_unit_test(test_location_huge_numbers),
        cmocka_unit_test(test_location_negative_zero),
        cmocka_unit_test(test_location_split),
        cmocka_unit_test(test_time_fraction_digits),
        cmocka_unit_test(test_time_malformed),
        cmocka_unit_test(test_time_sign_rejected),
        cmocka_unit_test(test_time_integer_digits),
        cmocka_unit_test(test_time_cmp),
        cmocka_unit_test(test_whatsat_radius_bounds),
        cmocka_unit_test(test_whatsat_radius_tiny),
        cmocka_unit_test(test_whatsat_radius_malformed),
        cmocka_unit_test(test_whatsat_bound_bounds),
        cmocka_unit_test(test_whatsat_bound_malformed),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
