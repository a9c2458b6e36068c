/* Monotonic time, for durations (phase timings, deadlines). */
#ifndef VAB_COMMON_CLOCK_H
#define VAB_COMMON_CLOCK_H

/* Seconds on CLOCK_MONOTONIC: only differences mean anything. */
double now_seconds(void);

#endif
