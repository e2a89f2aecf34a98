/*
 * mono: seconds on CLOCK_MONOTONIC, for every duration and deadline. libev's
 * ev_now() is wall-clock time, which an NTP step moves; its ev_timer
 * watchers are monotonic already. The IAMAT diff stays on CLOCK_REALTIME.
 */
#ifndef HERD_MONO_H
#define HERD_MONO_H

#include <time.h>

static inline double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

#endif
