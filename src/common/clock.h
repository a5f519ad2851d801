/*
 * clock.h - clocks.
 *
 * spk_wall_ms() is what RocketMQ stores (System.currentTimeMillis: store
 * and born timestamps, file ages); spk_mono_ms() measures intervals and
 * deadlines, which must not jump when the wall clock is set; spk_mono_ns()
 * times latencies (benchmarks).
 */
#ifndef SPK_COMMON_CLOCK_H
#define SPK_COMMON_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t
spk_wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline int64_t
spk_mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline uint64_t
spk_mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

#endif /* SPK_COMMON_CLOCK_H */
