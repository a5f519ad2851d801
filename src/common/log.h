/*
 * log.h - leveled, line-oriented logging shared by every process.
 *
 * A line reads
 *
 *     pid:role yyyy-mm-dd hh:mm:ss.mmm L module: message
 *
 * with the local time, L one of D I W E, and role the process's role
 * ('M' master, 'S' slave, 'N' name server, 'T' tool or test).
 *
 * Invariants:
 *   INV-1  A line is written with a single write(2) of at most
 *          SPK_LOG_LINE_MAX bytes (== PIPE_BUF on Linux), so lines from
 *          different threads, and from processes sharing a pipe, never
 *          interleave.
 *   INV-2  spk_log() tests the level before any argument is evaluated:
 *          a disabled debug line costs one relaxed atomic load.
 *   INV-3  Every line ends in exactly one '\n'; newlines inside a message
 *          are written as spaces, so one record is always one line for
 *          the tools that scan logs.
 *   INV-4  Logging never changes errno.
 *
 * store/ and proto/ do not log (STYLE.md 7.8): they return codes and
 * their callers log with context.
 */
#ifndef SPK_COMMON_LOG_H
#define SPK_COMMON_LOG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* Longest line written, newline included; longer messages are cut. */
#define SPK_LOG_LINE_MAX 4096

enum spk_log_level { SPK_LOG_DEBUG, SPK_LOG_INFO, SPK_LOG_WARN, SPK_LOG_ERROR };

/*
 * State for spk_log_ratelimited(), one per call site, kept by the caller
 * and zero-initialised. It is not synchronised: a call site reached from
 * several threads needs one state per thread, or the caller's lock.
 */
struct spk_log_rl {
    int64_t last_ms;          /* monotonic ms of the last line; 0 = never */
    unsigned long suppressed; /* lines dropped since then */
};

/*
 * Sets the process role letter, the threshold and the descriptor lines
 * go to (borrowed: never closed here). Until it is called, lines go to
 * fd 2 with role '-' at level INFO. Call it before starting threads.
 */
void spk_log_init(char role, enum spk_log_level level, int fd);

/* Any thread may change or read the threshold at any time. */
void spk_log_set_level(enum spk_log_level level);
enum spk_log_level spk_log_get_level(void);

/*
 * Parses "debug", "info", "warn" or "error" (any case). Returns 0 and
 * stores the level in *out, or -EINVAL (and leaves *out alone).
 */
int spk_log_parse_level(const char *name, enum spk_log_level *out);

/* Not for direct use: the threshold, read by spk_log_enabled(). */
extern _Atomic int spk_log__level;

static inline bool
spk_log_enabled(enum spk_log_level level)
{
    return (int)level >= atomic_load_explicit(&spk_log__level, memory_order_relaxed);
}

/*
 * Formats and writes one line unconditionally; use spk_log(), which
 * skips the formatting for disabled levels. <module> is a short name
 * ("store", "config"). Thread-safe.
 */
void spk_log_write(enum spk_log_level level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * spk_log(level, module, fmt, ...): logs one line if <level> is enabled.
 * <level> is evaluated twice; the format arguments only when enabled.
 */
#define spk_log(level, module, ...)                                                                \
    do {                                                                                           \
        if (spk_log_enabled(level))                                                                \
            spk_log_write((level), (module), __VA_ARGS__);                                         \
    } while (0)

/*
 * Not for direct use (see spk_log_ratelimited). spk_log__rl_admit() counts
 * a suppressed line and returns false while the interval since the last
 * emitted line has not elapsed; spk_log__rl_write() writes the line,
 * appends " (N similar lines suppressed)" when N > 0, and resets N.
 */
bool spk_log__rl_admit(struct spk_log_rl *rl, int64_t interval_ms);
void spk_log__rl_write(struct spk_log_rl *rl, enum spk_log_level level, const char *module,
                       const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/*
 * spk_log_ratelimited(rl, interval_ms, level, module, fmt, ...): like
 * spk_log(), but emits at most one line per <interval_ms> for the state
 * <rl>; the next emitted line reports how many were dropped. A line below
 * the threshold is neither emitted nor counted, and its arguments are not
 * evaluated. Meant for errors that repeat on every retry (a failing disk).
 */
#define spk_log_ratelimited(rl, interval_ms, level, module, ...)                                   \
    do {                                                                                           \
        if (spk_log_enabled(level) && spk_log__rl_admit((rl), (interval_ms)))                      \
            spk_log__rl_write((rl), (level), (module), __VA_ARGS__);                               \
    } while (0)

#endif /* SPK_COMMON_LOG_H */
