/*
 * ctl_conf: how herdctl reads the herd file. Commands that talk to a running
 * supervisor need only [herd] (run_dir, log_dir, stop_timeout), so when an
 * edit broke a [server] section, stop, status and reload still find the
 * supervisor: the [herd] sections are loaded on their own, with a stand-in
 * server, and the supervisor's own reading decides the rest. Also where the
 * file is looked for, and check-config's warnings about a readable secret
 * and unreadable TLS files.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl.h"
#include "version.h"

#define CONF_MAX     (4 << 20) /* a herd file is far smaller */
#define STAND_IN     "\n[server _herdctl]\nport = 1\n"
#define LOCAL_CONFIG "etc/herd.ini"

const char *ctl_default_config(void)
{
    static char installed[PATH_MAX];
    const char *env = getenv("HERD_CONFIG");

    if (env != NULL && *env != '\0')
        return env;
    if (access(LOCAL_CONFIG, F_OK) == 0)
        return LOCAL_CONFIG;
    snprintf(installed, sizeof(installed), "%s/herd/herd.ini", herd_sysconfdir);
    return installed;
}

void ctl_check_secret_mode(const struct ctl *c)
{
    struct stat st;

    if (c->cfg->secret == NULL || stat(c->cfg->path, &st) != 0)
        return;
    if (st.st_mode & (S_IRGRP | S_IROTH))
        fprintf(stderr,
                "herdctl: warning: %s holds the link secret and is readable by %s "
                "(mode %04o): chmod 600 it\n",
                c->cfg->path, st.st_mode & S_IROTH ? "others" : "its group",
                (unsigned)(st.st_mode & 07777));
}

/* One TLS file of SRV: there and readable, and a key not readable by others. */
static void check_tls_file(const char *srv, const char *key, const char *path)
{
    struct stat st;

    if (stat(path, &st) != 0 || access(path, R_OK) != 0) {
        fprintf(stderr, "herdctl: warning: [server %s]: %s %s: %s (needed where %s runs)\n", srv,
                key, path, strerror(errno), srv);
        return;
    }
    if (strcmp(key, "tls_key") == 0 && (st.st_mode & (S_IRGRP | S_IROTH)))
        fprintf(stderr,
                "herdctl: warning: [server %s]: tls_key %s is readable by %s (mode %04o): "
                "chmod 600 it\n",
                srv, path, st.st_mode & S_IROTH ? "others" : "its group",
                (unsigned)(st.st_mode & 07777));
}

void ctl_check_tls(const struct ctl *c)
{
    const struct cfg_server *open_link = cfg_plaintext_across_machines(c->cfg);
    if (open_link != NULL)
        fprintf(stderr,
                "herdctl: warning: links may cross machines in plaintext ([server %s] host "
                "%s): anyone on the path can read and alter them; set link_tls = psk\n",
                open_link->name, open_link->host);
    if (c->cfg->link_tls != CFG_TLS_CERT)
        return;
    for (size_t i = 0; i < c->cfg->nservers; i++) {
        const struct cfg_server *s = &c->cfg->servers[i];
        const char *keys[] = {"tls_ca", "tls_cert", "tls_key"};
        const char *paths[] = {s->tls_ca, s->tls_cert, s->tls_key};
        for (size_t k = 0; k < 3; k++) {
            int seen = 0; /* the [herd] defaults are shared: one warning per file */
            for (size_t j = 0; j < i && !seen; j++) {
                const struct cfg_server *o = &c->cfg->servers[j];
                const char *op[] = {o->tls_ca, o->tls_cert, o->tls_key};
                seen = op[k] != NULL && paths[k] != NULL && strcmp(op[k], paths[k]) == 0;
            }
            if (!seen && paths[k] != NULL)
                check_tls_file(s->name, keys[k], paths[k]);
        }
    }
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf = NULL;
    size_t len = 0, n;

    if (f == NULL)
        return NULL;
    buf = malloc(CONF_MAX + sizeof(STAND_IN));
    if (buf != NULL) {
        while (len < CONF_MAX && (n = fread(buf + len, 1, CONF_MAX - len, f)) > 0)
            len += n;
        buf[len] = '\0';
    }
    fclose(f);
    return buf;
}

/* 1 for a section header line naming [herd], 0 for another one, -1 if none. */
static int herd_header(const char *line, size_t len)
{
    size_t i = 0;

    while (i < len && isspace((unsigned char)line[i]))
        i++;
    if (i == len || line[i] != '[')
        return -1;
    i++;
    while (i < len && isspace((unsigned char)line[i]))
        i++;
    return len - i >= 4 && strncmp(line + i, "herd", 4) == 0 &&
           (len - i == 4 || line[i + 4] == ']' || isspace((unsigned char)line[i + 4]));
}

/* Keeps the [herd] sections of TEXT in place; other lines become empty, so
 * line numbers in messages still point into the real file. */
static void keep_herd(char *text)
{
    int in_herd = 0;
    char *out = text;

    for (char *line = text; *line != '\0';) {
        char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        int h = herd_header(line, len);

        if (h >= 0)
            in_herd = h;
        if (in_herd) {
            memmove(out, line, len);
            out += len;
        }
        if (nl == NULL)
            break;
        *out++ = '\n';
        line = nl + 1;
    }
    *out = '\0';
}

int ctl_load_config(struct ctl *c, int lenient, char *err, size_t errlen)
{
    char *text;
    char lerr[64];

    if (cfg_load(c->config, &c->cfg, err, errlen) == 0)
        return 0;
    if (!lenient || (text = read_file(c->config)) == NULL)
        return -1;
    keep_herd(text);
    memcpy(text + strlen(text), STAND_IN, sizeof(STAND_IN)); /* read_file left room */
    if (cfg_load_string(text, c->config, &c->cfg, lerr, sizeof(lerr)) != 0) {
        free(text);
        return -1;
    }
    free(text);
    c->degraded = 1;
    return 0;
}
