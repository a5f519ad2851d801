/*
 * log.c - line formatting and output for log.h.
 *
 * Each line is assembled in a stack buffer of SPK_LOG_LINE_MAX bytes and
 * handed to write(2) once (log.h INV-1). There is no lock: the kernel
 * serialises writes to one file description, and a write of at most
 * PIPE_BUF bytes to a pipe is atomic. The settings are atomics so that
 * threads may read them while another thread changes the level.
 */
#include "common/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"

_Atomic int spk_log__level = SPK_LOG_INFO;
static _Atomic char log_role = '-';
static _Atomic int log_fd = 2;

/*
 * Module names are short identifiers; the bound keeps the prefix far
 * below SPK_LOG_LINE_MAX, so the message always has room.
 */
#define MODULE_MAX 64
#define SUFFIX_MAX 64
#define ELLIPSIS "..."

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void
spk_log_init(char role, enum spk_log_level level, int fd)
{
    /* POSIX lets localtime_r() skip reading TZ; make sure it has been read. */
    tzset();
    atomic_store(&log_role, role);
    atomic_store(&log_fd, fd);
    atomic_store(&spk_log__level, (int)level);
}

void
spk_log_set_level(enum spk_log_level level)
{
    atomic_store(&spk_log__level, (int)level);
}

enum spk_log_level
spk_log_get_level(void)
{
    return (enum spk_log_level)atomic_load(&spk_log__level);
}

int
spk_log_parse_level(const char *name, enum spk_log_level *out)
{
    size_t i;

    for (i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcasecmp(name, level_names[i]) == 0) {
            *out = (enum spk_log_level)i;
            return 0;
        }
    }
    return -EINVAL;
}

/*
 * A short write only happens on a full disk or a signal; finishing the
 * line is then better than dropping it. Errors are ignored: there is
 * nowhere left to report them.
 */
static void
write_all(int fd, const char *p, size_t len)
{
    ssize_t n;

    while (len > 0) {
        n = write(fd, p, len);
        if (n == -1) {
            if (errno == EINTR)
                continue;
            return;
        }
        p += n;
        len -= (size_t)n;
    }
}

/*
 * Writes one line. <suffix> (at most SUFFIX_MAX bytes) follows the
 * message and survives truncation, so a cut line still says how many
 * lines were suppressed.
 */
static void
log_vwrite(enum spk_log_level level, const char *module, const char *suffix, const char *fmt,
           va_list ap)
{
    /* One spare byte: vsnprintf always stores a NUL we never write out. */
    char line[SPK_LOG_LINE_MAX + 1];
    int saved_errno = errno;
    struct timespec ts;
    struct tm tm;
    size_t pos, room, mlen, slen, i;
    char letter;
    int n;

    clock_gettime(CLOCK_REALTIME, &ts);
    localtime_r(&ts.tv_sec, &tm);
    letter = (unsigned)level < 4 ? "DIWE"[level] : '?';
    n = snprintf(line, sizeof(line),
                 "%ld:%c %04d-%02d-%02d %02d:%02d:%02d.%03ld %c %.*s: ", (long)getpid(),
                 atomic_load(&log_role), tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                 tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, letter, MODULE_MAX, module);
    if (n < 0)
        goto out;
    pos = (size_t)n;

    slen = strlen(suffix);
    room = SPK_LOG_LINE_MAX - pos - slen - 1; /* 1: the newline */
    /* localtime_r() may have set errno (no tz file); "%m" wants the caller's. */
    errno = saved_errno;
    n = vsnprintf(line + pos, room + 1, fmt, ap);
    if (n < 0)
        goto out;
    mlen = (size_t)n;
    if (mlen > room) {
        /*
         * Cut on a UTF-8 character boundary: byte <mlen> is the first one
         * dropped, so back up while it would be the middle of a character
         * (at most 3 steps for valid UTF-8; bounded for invalid input).
         */
        mlen = room - strlen(ELLIPSIS);
        for (i = 0; i < 3 && mlen > 0 && (line[pos + mlen] & 0xC0) == 0x80; i++)
            mlen--;
        memcpy(line + pos + mlen, ELLIPSIS, strlen(ELLIPSIS));
        mlen += strlen(ELLIPSIS);
    }
    for (i = pos; i < pos + mlen; i++) {
        if (line[i] == '\n' || line[i] == '\r')
            line[i] = ' ';
    }
    pos += mlen;
    memcpy(line + pos, suffix, slen);
    pos += slen;
    line[pos++] = '\n';
    write_all(atomic_load(&log_fd), line, pos);

out:
    errno = saved_errno;
}

void
spk_log_write(enum spk_log_level level, const char *module, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_vwrite(level, module, "", fmt, ap);
    va_end(ap);
}

bool
spk_log__rl_admit(struct spk_log_rl *rl, int64_t interval_ms)
{
    int64_t now = spk_mono_ms();

    if (rl->last_ms != 0 && now - rl->last_ms < interval_ms) {
        rl->suppressed++;
        return false;
    }
    /* 0 means "never emitted"; a clock reading of 0 must not look like it. */
    rl->last_ms = now != 0 ? now : 1;
    return true;
}

void
spk_log__rl_write(struct spk_log_rl *rl, enum spk_log_level level, const char *module,
                  const char *fmt, ...)
{
    char suffix[SUFFIX_MAX] = "";
    va_list ap;

    if (rl->suppressed > 0)
        snprintf(suffix, sizeof(suffix), " (%lu similar lines suppressed)", rl->suppressed);
    rl->suppressed = 0;
    va_start(ap, fmt);
    log_vwrite(level, module, suffix, fmt, ap);
    va_end(ap);
}
