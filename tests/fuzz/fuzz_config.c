/*
 * libFuzzer target for the INI loader: feeds arbitrary text to
 * cfg_load_string() and, when it is accepted, checks what config.h promises
 * (peers sorted, unique, symmetric, never the server itself; ports set;
 * absolute paths) and exercises every lookup. A refusal must carry a message.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int has_peer(const struct cfg_server *s, size_t i)
{
    for (size_t k = 0; k < s->npeers; k++) {
        if (s->peers[k] == i)
            return 1;
    }
    return 0;
}

static void check_herd(const struct cfg_herd *h)
{
    if (h->nservers == 0 || h->log_dir[0] != '/' || h->run_dir[0] != '/' || h->dir[0] != '/')
        abort();
    if (h->places_key_file && h->places_key_file[0] != '/')
        abort();
    if (h->link_backoff_min > h->link_backoff_max || h->max_line < 16)
        abort();
    for (size_t i = 0; i < h->nservers; i++) {
        const struct cfg_server *s = &h->servers[i];
        if (s->port == 0 || !s->host || cfg_index(h, s->name) != (long)i ||
            cfg_find(h, s->name) != s)
            abort();
        for (size_t k = 0; k < s->npeers; k++) {
            size_t j = s->peers[k];
            if (j >= h->nservers || j == i || (k > 0 && s->peers[k - 1] >= j) ||
                !has_peer(&h->servers[j], i))
                abort();
        }
        if (cfg_server_changed(h, s, h, s))
            abort();
    }
    (void)cfg_level_name(h->log_level);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    struct cfg_herd *h = NULL;
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    if (cfg_load_string(text, "fuzz/herd.ini", &h, err, sizeof err) == 0)
        check_herd(h);
    else if (h || strncmp(err, "fuzz/herd.ini", 13) != 0)
        abort();
    cfg_free(h);
    free(text);
    return 0;
}
