#include "kc_clock.h"

#include <time.h>

static double seconds(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double kc_clock_wall(void)
{
    return seconds(CLOCK_REALTIME);
}

double kc_clock_mono(void)
{
    return seconds(CLOCK_MONOTONIC);
}

double kc_clock_wall_fn(void *ctx)
{
    (void)ctx;
    return kc_clock_wall();
}
