/*
 * places_format: parses Places bodies and prints answers in Google's layout.
 *
 * Google's web services print JSON with JsonCpp's StyledWriter: 3-space
 * indent, "key" : value, empty containers as [] and {}, and an array of
 * scalars on one line ("[ a, b ]") when it is short. json-c's pretty printer
 * cannot produce that (2 spaces or tabs, "key": value, "[\n]" for an empty
 * array), so the tree json-c parsed is walked here and printed with the same
 * rules, which makes a Google body that is not cut come out byte for byte as
 * Google sent it. Numbers keep the text they were parsed from.
 */
#include "places_format.h"

#include <inttypes.h>
#include <json-c/json.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* JsonCpp StyledWriter's indentSize_ and rightMargin_. */
#define FMT_INDENT 3
#define FMT_MARGIN 74

/* A growable output buffer whose first allocation failure sticks, so the
 * printer can append without checking every call and test once at the end. */
struct fbuf {
    char *p;
    size_t len;
    size_t cap;
    int oom;
    /* Where the top-level "results" array lands (see places_text_new). */
    struct json_object *results;
    size_t *elem_end; /* after each of its entries, when multi-line */
    size_t arr_start, arr_end;
};

static void fb_put(struct fbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (n + 1 > b->cap - b->len) {
        size_t cap = b->cap ? b->cap : 4096;
        while (n + 1 > cap - b->len) {
            if (cap > SIZE_MAX / 2) {
                b->oom = 1;
                return;
            }
            cap *= 2;
        }
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void fb_puts(struct fbuf *b, const char *s)
{
    fb_put(b, s, strlen(s));
}

/* StyledWriter::writeIndent: a value that follows "key : " or an indent
 * stays on that line; anything else starts a new, indented one. */
static void fmt_indent(struct fbuf *b, unsigned depth)
{
    static const char spaces[] = "                                ";
    size_t n = (size_t)depth * FMT_INDENT;

    if (b->len > 0) {
        char last = b->p[b->len - 1];
        if (last == ' ')
            return;
        if (last != '\n')
            fb_put(b, "\n", 1);
    }
    while (n > 0) {
        size_t k = n < sizeof spaces - 1 ? n : sizeof spaces - 1;
        fb_put(b, spaces, k);
        n -= k;
    }
}

/* Google escapes <, > and & (as \u003c ...) besides what JSON requires, and
 * leaves '/' and non-ASCII UTF-8 as they are. */
static void fmt_string(struct fbuf *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t run = 0;

    fb_put(b, "\"", 1);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        char u[7];
        const char *esc = NULL;

        switch (c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        default:
            if (c < 0x20 || c == '<' || c == '>' || c == '&') {
                memcpy(u, "\\u00", 4);
                u[4] = hex[c >> 4];
                u[5] = hex[c & 15];
                u[6] = '\0';
                esc = u;
            }
        }
        if (!esc)
            continue;
        fb_put(b, s + run, i - run);
        fb_puts(b, esc);
        run = i + 1;
    }
    fb_put(b, s + run, len - run);
    fb_put(b, "\"", 1);
}

/* json-c keeps the text a double was parsed from (json_object_new_double_s
 * stores it as the userdata), so 34.0689 is not reprinted as
 * 34.068899999999999. JSON has no NaN or infinity: those print as null. */
static void fmt_double(struct fbuf *b, struct json_object *v)
{
    const char *text = json_object_get_userdata(v);
    char num[40];
    double d;

    if (text) {
        fb_puts(b, text);
        return;
    }
    d = json_object_get_double(v);
    if (!isfinite(d)) {
        fb_puts(b, "null");
        return;
    }
    snprintf(num, sizeof num, "%.17g", d);
    fb_puts(b, num);
}

static void fmt_scalar(struct fbuf *b, struct json_object *v)
{
    char num[32];

    switch (json_object_get_type(v)) {
    case json_type_boolean: fb_puts(b, json_object_get_boolean(v) ? "true" : "false"); break;
    case json_type_int: {
        /* json-c holds integers above INT64_MAX as uint64. */
        int64_t i = json_object_get_int64(v);
        if (i == INT64_MAX)
            snprintf(num, sizeof num, "%" PRIu64, json_object_get_uint64(v));
        else
            snprintf(num, sizeof num, "%" PRId64, i);
        fb_puts(b, num);
        break;
    }
    case json_type_double: fmt_double(b, v); break;
    case json_type_string:
        fmt_string(b, json_object_get_string(v), (size_t)json_object_get_string_len(v));
        break;
    default: fb_puts(b, "null");
    }
}

static void fmt_value(struct fbuf *b, struct json_object *v, unsigned depth, size_t limit);

static int fmt_is_filled_container(struct json_object *v)
{
    switch (json_object_get_type(v)) {
    case json_type_object: return json_object_object_length(v) > 0;
    case json_type_array: return json_object_array_length(v) > 0;
    default: return 0;
    }
}

/* StyledWriter::isMultilineArray: an array goes on one line when it holds
 * only scalars and empty containers and "[ a, b ]" is shorter than the
 * margin. Prints it and returns 1 then; otherwise prints nothing. */
static int fmt_array_inline(struct fbuf *b, struct json_object *v, size_t n)
{
    size_t start = b->len;

    if (n * 3 >= FMT_MARGIN)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (fmt_is_filled_container(json_object_array_get_idx(v, i)))
            return 0;
    fb_put(b, "[ ", 2);
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            fb_put(b, ", ", 2);
        fmt_value(b, json_object_array_get_idx(v, i), 0, SIZE_MAX);
    }
    fb_put(b, " ]", 2);
    if (!b->oom && b->len - start >= FMT_MARGIN) {
        b->len = start; /* too wide: take it back, go multi-line */
        b->p[start] = '\0';
        return 0;
    }
    return 1;
}

/* Prints the first LIMIT entries of array V. */
static void fmt_array(struct fbuf *b, struct json_object *v, unsigned depth, size_t limit)
{
    size_t n = json_object_array_length(v);

    if (n > limit)
        n = limit;
    if (n == 0) {
        fb_put(b, "[]", 2);
        return;
    }
    if (fmt_array_inline(b, v, n))
        return;
    fmt_indent(b, depth);
    fb_put(b, "[", 1);
    for (size_t i = 0; i < n; i++) {
        fmt_indent(b, depth + 1);
        fmt_value(b, json_object_array_get_idx(v, i), depth + 1, SIZE_MAX);
        if (v == b->results && b->elem_end)
            b->elem_end[i] = b->len;
        if (i + 1 < n)
            fb_put(b, ",", 1);
    }
    fmt_indent(b, depth);
    fb_put(b, "]", 1);
}

/* Prints object V; BOUND (top level only, else NULL) cuts its "results". */
static void fmt_object(struct fbuf *b, struct json_object *v, unsigned depth, const unsigned *bound)
{
    struct json_object_iterator it = json_object_iter_begin(v);
    struct json_object_iterator end = json_object_iter_end(v);

    if (json_object_iter_equal(&it, &end)) {
        fb_put(b, "{}", 2);
        return;
    }
    fmt_indent(b, depth);
    fb_put(b, "{", 1);
    while (!json_object_iter_equal(&it, &end)) {
        const char *key = json_object_iter_peek_name(&it);
        struct json_object *child = json_object_iter_peek_value(&it);
        size_t limit = SIZE_MAX;

        if (bound && strcmp(key, "results") == 0)
            limit = *bound;
        fmt_indent(b, depth + 1);
        fmt_string(b, key, strlen(key));
        fb_put(b, " : ", 3);
        if (child && child == b->results)
            b->arr_start = b->len;
        fmt_value(b, child, depth + 1, limit);
        if (child && child == b->results)
            b->arr_end = b->len;
        json_object_iter_next(&it);
        if (!json_object_iter_equal(&it, &end))
            fb_put(b, ",", 1);
    }
    fmt_indent(b, depth);
    fb_put(b, "}", 1);
}

static void fmt_value(struct fbuf *b, struct json_object *v, unsigned depth, size_t limit)
{
    switch (json_object_get_type(v)) {
    case json_type_object: fmt_object(b, v, depth, NULL); break;
    case json_type_array: fmt_array(b, v, depth, limit); break;
    default: fmt_scalar(b, v);
    }
}

size_t places_squeeze_newlines(char *s, size_t len)
{
    size_t o = 0;

    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\n' && o > 0 && s[o - 1] == '\n')
            continue;
        s[o++] = s[i];
    }
    while (o > 0 && s[o - 1] == '\n')
        o--;
    if (o < len)
        s[o] = '\0';
    return o;
}

int places_format(struct json_object *obj, unsigned bound, char **out, size_t *len)
{
    struct fbuf b = {0};

    if (json_object_get_type(obj) == json_type_object)
        fmt_object(&b, obj, 0, &bound);
    else
        fmt_value(&b, obj, 0, SIZE_MAX);
    if (b.oom || !b.p) {
        free(b.p);
        return -1;
    }
    /* The printer makes no blank line and no final newline; the squeeze is
     * what SPEC §4 asks of the text, kept as the last word on it. */
    *len = places_squeeze_newlines(b.p, b.len);
    *out = b.p;
    return 0;
}

/*
 * An answer printed once with every result, then cut to each waiter's bound
 * by slicing the text: printing is the costly part, and a json-c tree takes
 * about seven times the memory of its text, which matters in the cache.
 * When the first result is a filled object (Places' always is), every cut
 * keeps the array multi-line and each entry prints the same on its own, so
 * cutting at entry B's end and closing the array as the full text does is
 * exactly what printing with bound B gives. Anything else keeps its tree
 * and is printed per bound.
 */
struct places_text {
    unsigned refs;
    struct json_object *obj; /* only when slicing cannot cut it */
    char *text;              /* every result, no final newline */
    size_t len;
    size_t nres;      /* entries in the top-level "results" */
    size_t arr_start; /* offset of its '[' */
    size_t arr_end;   /* just after its ']' */
    size_t *elem_end; /* just after each entry (nres of them) */
};

/* The top-level "results" array of OBJ, or NULL. */
static struct json_object *places_results(struct json_object *obj)
{
    struct json_object *r;

    if (!json_object_is_type(obj, json_type_object) ||
        !json_object_object_get_ex(obj, "results", &r) || !json_object_is_type(r, json_type_array))
        return NULL;
    return r;
}

void places_text_unref(struct places_text *t)
{
    if (!t || --t->refs > 0)
        return;
    json_object_put(t->obj);
    free(t->text);
    free(t->elem_end);
    free(t);
}

struct places_text *places_text_ref(struct places_text *t)
{
    t->refs++;
    return t;
}

struct places_text *places_text_new(struct json_object *obj)
{
    struct places_text *t = calloc(1, sizeof *t);
    struct fbuf b = {0};
    unsigned all = UINT_MAX;

    if (!t)
        return NULL;
    t->refs = 1;
    b.results = places_results(obj);
    t->nres = b.results ? json_object_array_length(b.results) : 0;
    if (t->nres > 0 && !(b.elem_end = t->elem_end = calloc(t->nres, sizeof(size_t))))
        goto fail;
    if (json_object_is_type(obj, json_type_object))
        fmt_object(&b, obj, 0, &all);
    else
        fmt_value(&b, obj, 0, SIZE_MAX);
    if (b.oom || !b.p)
        goto fail;
    t->text = b.p;
    t->len = b.len;
    t->arr_start = b.arr_start;
    t->arr_end = b.arr_end;
    if (t->nres > 0 && !fmt_is_filled_container(json_object_array_get_idx(b.results, 0)))
        t->obj = json_object_get(obj);
    return t;
fail:
    free(b.p);
    places_text_unref(t);
    return NULL;
}

/* Joins S[0..A) + MID + S[C..LEN) into a new string. */
static char *places_splice(const struct places_text *t, size_t a, const char *mid, size_t c,
                           size_t *len)
{
    size_t m = strlen(mid), n = a + m + (t->len - c);
    char *out = malloc(n + 1);

    if (!out)
        return NULL;
    memcpy(out, t->text, a);
    memcpy(out + a, mid, m);
    memcpy(out + a + m, t->text + c, t->len - c);
    out[n] = '\0';
    *len = n;
    return out;
}

int places_text_cut(const struct places_text *t, unsigned bound, const char **out, size_t *len,
                    char **owned)
{
    *owned = NULL;
    if (bound >= t->nres) {
        *out = t->text;
        *len = t->len;
        return 0;
    }
    if (t->obj) {
        if (places_format(t->obj, bound, owned, len) < 0)
            return -1;
    } else if (bound == 0) {
        *owned = places_splice(t, t->arr_start, "[]", t->arr_end, len);
    } else {
        /* Up to the end of entry BOUND, then the full text's own closing. */
        *owned = places_splice(t, t->elem_end[bound - 1], "", t->elem_end[t->nres - 1], len);
    }
    *out = *owned;
    return *owned ? 0 : -1;
}

/* Only white space may follow the object (Google ends its body with "\n"). */
static int places_only_space(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
            return 0;
    return 1;
}

int places_parse(const char *body, size_t len, struct json_object **out, char *why, size_t whylen)
{
    struct json_tokener *tok = NULL;
    struct json_object *obj = NULL;
    enum json_tokener_error jerr;

    if (len > INT_MAX) {
        snprintf(why, whylen, "not JSON: body too long to parse");
        goto fail;
    }
    tok = json_tokener_new();
    if (!tok) {
        snprintf(why, whylen, "out of memory");
        goto fail;
    }
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    obj = json_tokener_parse_ex(tok, body, (int)len);
    jerr = json_tokener_get_error(tok);
    if (jerr == json_tokener_continue) {
        /* Input ended inside a value: a NUL says "that is all". */
        obj = json_tokener_parse_ex(tok, "", 1);
        jerr = json_tokener_get_error(tok);
    } else if (jerr == json_tokener_success) {
        size_t end = json_tokener_get_parse_end(tok);
        if (!places_only_space(body + end, len - end)) {
            snprintf(why, whylen, "not JSON: unexpected data after the value at byte %zu", end);
            goto fail;
        }
    }
    if (jerr != json_tokener_success) {
        snprintf(why, whylen, "not JSON: %s at byte %zu", json_tokener_error_desc(jerr),
                 json_tokener_get_parse_end(tok));
        goto fail;
    }
    if (json_object_get_type(obj) != json_type_object) {
        snprintf(why, whylen, "not a JSON object");
        goto fail;
    }
    json_tokener_free(tok);
    *out = obj;
    return 0;
fail:
    json_object_put(obj);
    if (tok)
        json_tokener_free(tok);
    return -1;
}

/* Adds KEY: VAL to OBJ, taking VAL's reference even on failure. */
static int places_add(struct json_object *obj, const char *key, struct json_object *val)
{
    if (!val)
        return -1;
    if (json_object_object_add(obj, key, val) != 0) {
        json_object_put(val);
        return -1;
    }
    return 0;
}

struct json_object *places_error_json(const char *status, const char *message)
{
    struct json_object *obj = json_object_new_object();

    if (!obj)
        return NULL;
    /* Google's member order: alphabetical. */
    if (places_add(obj, "error_message", json_object_new_string(message)) < 0 ||
        places_add(obj, "html_attributions", json_object_new_array()) < 0 ||
        places_add(obj, "results", json_object_new_array()) < 0 ||
        places_add(obj, "status", json_object_new_string(status)) < 0) {
        json_object_put(obj);
        return NULL;
    }
    return obj;
}

const char *places_status(struct json_object *obj)
{
    struct json_object *st;

    if (!json_object_object_get_ex(obj, "status", &st) ||
        json_object_get_type(st) != json_type_string)
        return NULL;
    return json_object_get_string(st);
}
