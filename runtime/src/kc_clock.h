/* kc_clock.h — the library's one clock. Wall time (seconds since the epoch)
 * is what the protocol compares (key ages, chain expiry); monotonic time
 * measures waits and budgets. */
#ifndef KC_CLOCK_H
#define KC_CLOCK_H

double kc_clock_wall(void);
double kc_clock_mono(void);
/* kc_clock_wall as the `now_fn(ctx)` callbacks tests replace (ctx unused). */
double kc_clock_wall_fn(void *ctx);

#endif
