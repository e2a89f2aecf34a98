/*
 * config: loads the herd's INI file into a struct cfg_herd (see config.h).
 * inih splits KEY = VALUE lines; this file feeds it whole lines itself, so it
 * knows each line's number, refuses lines longer than inih's buffer instead of
 * letting them be split, and tracks sections on its own (inih r55 reports no
 * empty section). Then it checks the file as a whole: ports, peers, limits
 * that depend on each other, and builds the undirected link table.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>

#include "config_internal.h"

/* Whole lines from the source, as inih's fgets-style reader. */
static int src_getc(struct cfgi_state *st)
{
    if (st->fp) {
        int c = getc(st->fp);
        if (c == EOF && ferror(st->fp))
            st->read_errno = errno;
        return c;
    }
    if (st->text[st->pos] == '\0')
        return EOF;
    return (unsigned char)st->text[st->pos++];
}

/*
 * Reads the next line into BUF (NUM bytes, inih's buffer). Leading white
 * space is dropped so an indented line is an ordinary line and never one of
 * inih's continuation lines. Section headers are handled here and handed to
 * inih as blank lines. Returns NULL at the end or after the first error.
 */
static char *reader(char *buf, int num, void *arg)
{
    struct cfgi_state *st = arg;
    size_t max = num > 3 ? (size_t)num - 3 : 0; /* inih wants room for \r\n\0 */
    size_t len = 0;
    int c, any = 0, nul = 0, toolong = 0;

    if (st->failed)
        return NULL;
    while ((c = src_getc(st)) != EOF) {
        any = 1;
        if (c == '\n')
            break;
        nul |= c == '\0';
        if (len < max + 1)
            buf[len++] = (char)c;
        else
            toolong = 1;
    }
    if (!any) {
        if (st->read_errno)
            cfgi_fail(st, 0, "cannot read: %s", strerror(st->read_errno));
        return NULL;
    }
    st->lineno++;
    if (len > 0 && buf[len - 1] == '\r')
        len--;
    if (toolong || len > max) {
        cfgi_fail(st, st->lineno, "line too long (more than %zu bytes)", max);
        return NULL;
    }
    if (nul) {
        cfgi_fail(st, st->lineno, "syntax error (NUL byte)");
        return NULL;
    }
    buf[len] = '\0';
    char *p = buf;
    if (st->lineno == 1 && strncmp(p, "\xEF\xBB\xBF", 3) == 0)
        p += 3;
    while (isspace((unsigned char)*p))
        p++;
    if (*p == '[') {
        cfgi_section(st, p);
        p = buf + len; /* inih sees an empty line */
    }
    len -= (size_t)(p - buf);
    memmove(buf, p, len);
    buf[len] = '\n';
    buf[len + 1] = '\0';
    return st->failed ? NULL : buf;
}

/* inih's callback: one KEY = VALUE line; the section is ours, not inih's. */
static int handler(void *user, const char *section, const char *name, const char *value)
{
    struct cfgi_state *st = user;
    (void)section;
    if (st->failed)
        return 0;
    if (*name == '\0' || !value)
        cfgi_fail(st, st->lineno, "syntax error (expected KEY = VALUE)");
    else if (st->sec == CFGI_SEC_HERD)
        cfgi_herd_key(st, name, value);
    else if (st->sec == CFGI_SEC_SERVER)
        cfgi_server_key(st, name, value);
    else
        cfgi_fail(st, st->lineno, "key %s outside any section", name);
    return !st->failed;
}

void cfgi_fail(struct cfgi_state *st, int line, const char *fmt, ...)
{
    /* The earliest error wins; one without a line (I/O, memory) always does. */
    if (st->failed && (st->err_line == 0 || (line > 0 && line >= st->err_line)))
        return;
    st->failed = 1;
    st->err_line = line;
    if (!st->err || st->errlen == 0)
        return;
    int n = line > 0 ? snprintf(st->err, st->errlen, "%s:%d: ", st->file, line)
                     : snprintf(st->err, st->errlen, "%s: ", st->file);
    if (n < 0 || (size_t)n >= st->errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st->err + n, st->errlen - (size_t)n, fmt, ap);
    va_end(ap);
}

static void state_init(struct cfgi_state *st, const char *path, char *err, size_t errlen)
{
    memset(st, 0, sizeof *st);
    st->file = path;
    st->err = err;
    st->errlen = errlen;
    if (err && errlen)
        err[0] = '\0';
}

/* Parses the source in ST into a new herd; takes ABS and DIR. */
static int load(struct cfgi_state *st, char *abs, char *dir, struct cfg_herd **out)
{
    struct cfg_herd *h = calloc(1, sizeof *h);
    if (!h) {
        free(abs);
        free(dir);
        cfgi_fail(st, 0, "out of memory");
        return -1;
    }
    h->path = abs;
    h->dir = dir;
    st->h = h;
    cfgi_set_defaults(h);

    int rc = ini_parse_stream(reader, st, handler, st);
    if (rc > 0)
        cfgi_fail(st, rc, "syntax error (expected KEY = VALUE)");
    else if (rc < 0)
        cfgi_fail(st, 0, "out of memory");
    if (!st->failed)
        cfgi_finish(st);

    for (size_t i = 0; i < h->nservers; i++)
        free(st->tmp[i].peers);
    free(st->tmp);
    if (st->failed) {
        cfg_free(h);
        return -1;
    }
    *out = h;
    return 0;
}

int cfg_load(const char *path, struct cfg_herd **out, char *err, size_t errlen)
{
    struct cfgi_state st;
    char *dir = NULL, *abs = NULL;
    int rc = -1;

    state_init(&st, path, err, errlen);
    *out = NULL;
    st.fp = fopen(path, "r");
    if (!st.fp) {
        cfgi_fail(&st, 0, "cannot open: %s", strerror(errno));
        return -1;
    }
    if (cfgv_split_path(path, 1, &dir, &abs) != 0) {
        cfgi_fail(&st, 0, "cannot resolve its folder: %s", strerror(errno));
        goto done;
    }
    rc = load(&st, abs, dir, out);
done:
    fclose(st.fp);
    return rc;
}

int cfg_load_string(const char *text, const char *path, struct cfg_herd **out, char *err,
                    size_t errlen)
{
    struct cfgi_state st;
    char *dir = NULL, *abs = NULL;

    if (!path)
        path = "<string>";
    state_init(&st, path, err, errlen);
    *out = NULL;
    st.text = text ? text : "";
    if (cfgv_split_path(path, 0, &dir, &abs) != 0) {
        cfgi_fail(&st, 0, "cannot resolve its folder: %s", strerror(errno));
        return -1;
    }
    return load(&st, abs, dir, out);
}

void cfg_free(struct cfg_herd *h)
{
    if (!h)
        return;
    for (size_t i = 0; i < h->nservers; i++) {
        free(h->servers[i].name);
        free(h->servers[i].host);
        free(h->servers[i].node);
        free(h->servers[i].tls_ca);
        free(h->servers[i].tls_cert);
        free(h->servers[i].tls_key);
        free(h->servers[i].peers);
    }
    free(h->servers);
    free(h->path);
    free(h->dir);
    free(h->log_dir);
    free(h->run_dir);
    free(h->node);
    free(h->secret);
    free(h->secret_previous);
    free(h->tls_ca);
    free(h->tls_cert);
    free(h->tls_key);
    free(h->places_url);
    free(h->places_fields);
    free(h->state_dir);
    free(h->places_key_file);
    free(h);
}

const struct cfg_server *cfg_find(const struct cfg_herd *h, const char *name)
{
    long i = cfg_index(h, name);
    return i < 0 ? NULL : &h->servers[i];
}

long cfg_index(const struct cfg_herd *h, const char *name)
{
    if (!h || !name)
        return -1;
    for (size_t i = 0; i < h->nservers; i++) {
        if (strcmp(h->servers[i].name, name) == 0)
            return (long)i;
    }
    return -1;
}

const char *cfg_level_name(enum log_level level)
{
    switch (level) {
    case LOG_ERROR: return "error";
    case LOG_WARN: return "warn";
    case LOG_INFO: return "info";
    case LOG_DEBUG: return "debug";
    }
    return "unknown";
}
