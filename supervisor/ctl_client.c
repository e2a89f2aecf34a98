/*
 * ctl_client: herdctl's side of the control socket: connect, send one
 * request line, read the one JSON reply until the supervisor closes, with a
 * deadline so a hung supervisor cannot hang herdctl. Plus small helpers for
 * reading replies and waiting.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "ctlproto.h"
#include "net.h"

#define REPLY_TIMEOUT_MS 5000

double ctl_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void ctl_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

int ctl_pid_alive(pid_t pid)
{
    char path[64], buf[256];
    FILE *f;
    char *paren;

    if (pid <= 0 || (kill(pid, 0) != 0 && errno == ESRCH))
        return 0;
    /* Orphans are reaped by pid 1, which may be slow or never do it: a
     * zombie has exited and freed everything, so it counts as gone. */
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    f = fopen(path, "r");
    if (f == NULL)
        return errno != ENOENT;
    paren = fgets(buf, sizeof(buf), f) ? strrchr(buf, ')') : NULL;
    fclose(f);
    return !(paren != NULL && paren[1] == ' ' && paren[2] == 'Z');
}

static int send_all(int fd, const char *s, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, s, len, MSG_NOSIGNAL);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        s += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Reads until EOF into a new string (*out, caller frees). */
static int read_reply(int fd, double wait, char **out, char *err, size_t errlen)
{
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    double deadline = ctl_now() + (wait > 0 ? wait : REPLY_TIMEOUT_MS / 1000.0);

    while (buf != NULL) {
        struct pollfd pfd = {fd, POLLIN, 0};
        int left = (int)((deadline - ctl_now()) * 1000);
        ssize_t n;

        if (left <= 0 || poll(&pfd, 1, left) == 0) {
            snprintf(err, errlen, "no reply within %.0f s",
                     wait > 0 ? wait : REPLY_TIMEOUT_MS / 1000.0);
            goto fail;
        }
        if (len + 1 == cap) {
            char *bigger = cap >= CTLPROTO_REPLY_MAX ? NULL : realloc(buf, cap * 2);

            if (bigger == NULL) {
                snprintf(err, errlen, "reply too long");
                goto fail;
            }
            buf = bigger;
            cap *= 2;
        }
        n = read(fd, buf + len, cap - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(err, errlen, "read: %s", strerror(errno));
            goto fail;
        }
        if (n == 0) {
            buf[len] = '\0';
            *out = buf;
            return 0;
        }
        len += (size_t)n;
    }
    snprintf(err, errlen, "out of memory");
    return -1;
fail:
    free(buf);
    return -1;
}

/* Whether the socket is ours to use: another user's supervisor would refuse
 * us anyway (SO_PEERCRED), so say whose it is before trying. */
static int socket_owner_check(const struct ctl *c, char *err, size_t errlen)
{
    struct stat st;
    struct passwd *pw;

    if (stat(c->sock_path, &st) != 0) {
        snprintf(err, errlen, "%s", strerror(errno));
        if (errno == EACCES || errno == EPERM)
            return CTL_NOT_ALLOWED;
        return errno == ENOENT || errno == ENOTDIR ? CTL_NOT_RUNNING : CTL_ERR;
    }
    if (st.st_uid != geteuid() && geteuid() != 0) { /* root is answered too */
        pw = getpwuid(st.st_uid);
        snprintf(err, errlen, "the supervisor belongs to %s (uid %u)", pw ? pw->pw_name : "?",
                 (unsigned)st.st_uid);
        return CTL_NOT_ALLOWED;
    }
    return 0;
}

static int connect_error(void)
{
    if (errno == EACCES || errno == EPERM)
        return CTL_NOT_ALLOWED;
    return errno == ENOENT || errno == ECONNREFUSED ? CTL_NOT_RUNNING : CTL_ERR;
}

int ctl_request(const struct ctl *c, const char *line, json_object **reply, char *err,
                size_t errlen)
{
    char req[CTLPROTO_REQ_MAX], *text = NULL;
    int n = snprintf(req, sizeof(req), "%s\n", line);
    int fd = socket_owner_check(c, err, errlen);

    *reply = NULL;
    if (fd < 0)
        return fd;
    fd = net_unix_connect(c->sock_path, err, errlen);
    if (fd < 0)
        return connect_error();
    if (n < 0 || (size_t)n >= sizeof(req)) {
        snprintf(err, errlen, "request too long");
        goto fail;
    }
    if (send_all(fd, req, (size_t)n) != 0) {
        snprintf(err, errlen, "send: %s", strerror(errno));
        goto fail;
    }
    if (read_reply(fd, c->reply_wait, &text, err, errlen) != 0)
        goto fail;
    close(fd);
    *reply = json_tokener_parse(text);
    if (*reply == NULL || !json_object_is_type(*reply, json_type_object)) {
        snprintf(err, errlen, "not a JSON reply: \"%.80s\"", text);
        json_object_put(*reply);
        *reply = NULL;
        free(text);
        return CTL_ERR;
    }
    free(text);
    if (!ctl_bool(*reply, "ok") && strcmp(ctl_str(*reply, "error", ""), "permission denied") == 0) {
        snprintf(err, errlen, "the supervisor refused our uid");
        json_object_put(*reply);
        *reply = NULL;
        return CTL_NOT_ALLOWED;
    }
    return 0;
fail:
    close(fd);
    return CTL_ERR;
}

const char *ctl_str(json_object *obj, const char *key, const char *def)
{
    json_object *v;

    if (!json_object_object_get_ex(obj, key, &v) || v == NULL)
        return def;
    return json_object_get_string(v);
}

long ctl_int(json_object *obj, const char *key, long def)
{
    json_object *v;

    if (!json_object_object_get_ex(obj, key, &v) || v == NULL)
        return def;
    return (long)json_object_get_int64(v);
}

int ctl_bool(json_object *obj, const char *key)
{
    json_object *v;

    return json_object_object_get_ex(obj, key, &v) && v != NULL && json_object_get_boolean(v);
}
