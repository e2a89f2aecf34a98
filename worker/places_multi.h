/*
 * places_multi: libcurl's multi_socket interface on a libev loop (the
 * evhiperfifo.c pattern). Owns the process's libcurl set-up, one multi
 * handle with its connection cache, an ev_io per socket libcurl names and
 * its one ev_timer, and reports each finished transfer. Internal to places.
 */
#ifndef HERD_PLACES_MULTI_H
#define HERD_PLACES_MULTI_H

#include <curl/curl.h>
#include <ev.h>
#include <stddef.h>

struct places_multi;

/*
 * Called from the loop for each transfer that finished (CURLMSG_DONE), with
 * how it ended. The callback removes EASY (places_multi_remove) and may add
 * new transfers; it must not free the places_multi.
 */
typedef void (*places_multi_done_cb)(void *arg, CURL *easy, CURLcode rc);

/*
 * A multi handle on LOOP keeping at most MAX_CONNECTIONS connections (open
 * and idle, for keep-alive reuse). Initialises libcurl on first use and logs
 * its version and whether it resolves names asynchronously. NULL with the
 * reason in ERR on failure.
 */
struct places_multi *places_multi_new(struct ev_loop *loop, long max_connections,
                                      places_multi_done_cb done, void *arg, char *err,
                                      size_t errlen);

/* Starts EASY (it runs once the loop does). */
CURLMcode places_multi_add(struct places_multi *m, CURL *easy);

/* Takes EASY out (finished or not); the caller cleans it up. */
void places_multi_remove(struct places_multi *m, CURL *easy);

/* Closes every connection, then stops the watchers, then frees. Every easy
 * handle must have been removed. */
void places_multi_free(struct places_multi *m);

#endif
