/*
 * t_common.c - unit tests for src/common: bytes, crc, jhash, errors, log,
 * config.
 *
 * Expected values come from outside the code under test: CRCs from
 * zlib's reference values (and Python's zlib.crc32), Java hashes from
 * OpenJDK 17 (`new String(bytes, UTF_8).hashCode()`), each also worked out
 * by hand in a comment. Criterion runs every test in its own process, so
 * the logger's global settings never leak from one test into another.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <regex.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define HAVE_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HAVE_LSAN 1
#endif
#endif
#ifdef HAVE_LSAN
#include <sanitizer/lsan_interface.h>
#endif

#include "common/bytes.h"
#include "common/config.h"
#include "common/crc.h"
#include "common/errors.h"
#include "common/jhash.h"
#include "common/log.h"

/* ------------------------------------------------------------------ */
/* bytes.h                                                             */
/* ------------------------------------------------------------------ */

Test(bytes, put_writes_big_endian_at_unaligned_offsets)
{
    uint8_t buf[12];
    static const uint8_t want16[] = {0xAA, 0xBE, 0xEF, 0xAA};
    static const uint8_t want32[] = {0xAA, 0x01, 0x02, 0x03, 0x04, 0xAA};
    static const uint8_t want64[] = {0xAA, 0xFE, 0xDC, 0xBA, 0x98, 0x76, 0x54, 0x32, 0x10, 0xAA};

    /* The 0xAA guards catch a store that spills past either end. */
    memset(buf, 0xAA, sizeof(buf));
    be_put16(buf + 1, 0xBEEF);
    cr_assert(eq(mem, ((struct cr_mem){buf, 4}), ((struct cr_mem){want16, 4})));

    memset(buf, 0xAA, sizeof(buf));
    be_put32(buf + 1, 0x01020304u);
    cr_assert(eq(mem, ((struct cr_mem){buf, 6}), ((struct cr_mem){want32, 6})));

    memset(buf, 0xAA, sizeof(buf));
    be_put64(buf + 1, 0xFEDCBA9876543210u);
    cr_assert(eq(mem, ((struct cr_mem){buf, 10}), ((struct cr_mem){want64, 10})));
}

Test(bytes, get_reads_big_endian_at_unaligned_offsets)
{
    static const uint8_t src[] = {0x00, 0x80, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0xFF};

    cr_assert(eq(u16, be_get16(src + 1), 0x8001));
    cr_assert(eq(u32, be_get32(src + 1), 0x80010203u));
    cr_assert(eq(u64, be_get64(src + 1), 0x8001020304050607u));
    cr_assert(eq(u64, be_get64(src + 2), 0x01020304050607FFu));
}

Test(bytes, round_trip_extremes)
{
    static const uint64_t vals[] = {
        0,         1,      0x7F,        0x80,        0xFF,
        0x8000,    0xFFFF, 0x80000000u, 0xFFFFFFFFu, 0x8000000000000000u,
        UINT64_MAX};
    uint8_t buf[9];
    size_t i;

    for (i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        be_put16(buf + 1, (uint16_t)vals[i]);
        cr_assert(eq(u16, be_get16(buf + 1), (uint16_t)vals[i]));
        be_put32(buf + 1, (uint32_t)vals[i]);
        cr_assert(eq(u32, be_get32(buf + 1), (uint32_t)vals[i]));
        be_put64(buf + 1, vals[i]);
        cr_assert(eq(u64, be_get64(buf + 1), vals[i]));
    }
}

/* ------------------------------------------------------------------ */
/* crc.h                                                               */
/* ------------------------------------------------------------------ */

Test(crc, standard_check_value)
{
    /* The CRC-32/IEEE catalogue check value. */
    cr_assert(eq(u32, spk_crc32("123456789", 9), 0xCBF43926u));
    /* Top bit cleared: 0xCBF43926 & 0x7FFFFFFF. */
    cr_assert(eq(u32, spk_crc32_masked("123456789", 9), 0x4BF43926u));
}

Test(crc, empty_input_is_zero)
{
    cr_assert(eq(u32, spk_crc32("", 0), 0));
    cr_assert(eq(u32, spk_crc32(NULL, 0), 0));
    cr_assert(eq(u32, spk_crc32_masked(NULL, 0), 0));
}

Test(crc, masking_clears_only_the_top_bit)
{
    static const char fox[] = "The quick brown fox jumps over the lazy dog";

    /* zlib.crc32(b"a") == 0xE8B7BE43: the top bit is set. */
    cr_assert(eq(u32, spk_crc32("a", 1), 0xE8B7BE43u));
    cr_assert(eq(u32, spk_crc32_masked("a", 1), 0x68B7BE43u));
    /* 0x414FA339 has the top bit clear: masking must not change it. */
    cr_assert(eq(u32, spk_crc32(fox, sizeof(fox) - 1), 0x414FA339u));
    cr_assert(eq(u32, spk_crc32_masked(fox, sizeof(fox) - 1), 0x414FA339u));
}

Test(crc, update_in_pieces_equals_one_pass)
{
    uint8_t buf[256];
    size_t i, cut;

    for (i = 0; i < sizeof(buf); i++)
        buf[i] = (uint8_t)i;
    /* zlib.crc32(bytes(range(256))) == 0x29058C73 */
    cr_assert(eq(u32, spk_crc32(buf, sizeof(buf)), 0x29058C73u));
    for (cut = 0; cut <= sizeof(buf); cut += 37) {
        uint32_t c = spk_crc32_update(0, buf, cut);

        c = spk_crc32_update(c, buf + cut, sizeof(buf) - cut);
        cr_assert(eq(u32, c, 0x29058C73u), "split at %zu", cut);
    }
}

/* ------------------------------------------------------------------ */
/* jhash.h: every expected value was checked with OpenJDK 17.          */
/* ------------------------------------------------------------------ */

static int32_t
jh(const char *s)
{
    return spk_java_hash(s, strlen(s));
}

Test(jhash, ascii)
{
    cr_assert(eq(i32, jh(""), 0));
    cr_assert(eq(i32, jh("a"), 97));
    cr_assert(eq(i32, jh("hello"), 99162322));
    /* T=84 a=97 g=103 A=65: ((84*31+97)*31+103)*31+65 = 2598919 */
    cr_assert(eq(i32, jh("TagA"), 2598919));
    /* "a\0b" is 97*961 + 0*31 + 98 = 93315: <len> counts, not the NUL. */
    cr_assert(eq(i32, spk_java_hash("a\0b", 3), 93315));
}

Test(jhash, bmp_characters)
{
    /* U+00E9 is one UTF-16 unit: 233. */
    cr_assert(eq(i32, jh("\xC3\xA9"), 233));
    /* U+4E2D U+6587: 20013*31 + 25991 = 646394 */
    cr_assert(eq(i32, jh("\xE4\xB8\xAD\xE6\x96\x87"), 646394));
}

Test(jhash, non_bmp_becomes_a_surrogate_pair)
{
    /* U+1F600 -> 0xD83D 0xDE00: 55357*31 + 56832 = 1772899 */
    cr_assert(eq(i32, jh("\xF0\x9F\x98\x80"), 1772899));
    /* U+10FFFF -> 0xDBFF 0xDFFF: 56319*31 + 57343 = 1803232 */
    cr_assert(eq(i32, jh("\xF4\x8F\xBF\xBF"), 1803232));
}

Test(jhash, int32_wraps_around)
{
    /* A well-known Java curiosity: this hashCode is Integer.MIN_VALUE. */
    cr_assert(eq(i32, jh("polygenelubricants"), INT32_MIN));
}

Test(jhash, malformed_utf8_decodes_like_the_jdk)
{
    /*
     * R = U+FFFD = 65533. Each row is what `new String(bytes, UTF_8)`
     * yields on OpenJDK 17, with the hash worked out by hand:
     *   R       = 65533
     *   R R     = 65533*32                  = 2097056
     *   R A     = 65533*31 + 65             = 2031588
     *   R R R   = 65533*993                 = 65074269
     *   R R A   = 65533*992 + 65            = 65008801
     *   R R R A = 65533*30783 + 65          = 2017302404
     *   R R R R = 65533*30784               = 2017367872
     */
    static const struct {
        const char *bytes;
        int32_t hash;
        size_t units;
    } cases[] = {
        {"\xFF", 65533, 1},                       /* never valid */
        {"\xC0\x80", 2097056, 2},                 /* overlong NUL: two errors */
        {"\xE0\x80\x80", 65074269, 3},            /* overlong 3-byte form */
        {"\xE0\x80\x41", 65008801, 3},            /* overlong lead, then bad b3 */
        {"\xED\xA0\x80", 65533, 1},               /* encoded surrogate: ONE R */
        {"\xED\xA0\x80\xED\xB0\x80", 2097056, 2}, /* CESU-8 pair: not a code point */
        {"\xED\xA0\x41", 2031588, 2},             /* 2 bytes consumed, then 'A' */
        {"\xF0\x80\x80\x41", 2017302404, 4},      /* overlong 4-byte lead */
        {"\xF5\x80\x80\x80", 2017367872, 4},      /* above U+10FFFF */
        {"\xE4\xB8", 65533, 1},                   /* truncated at the end */
        {"\xE0\x80", 2097056, 2},                 /* truncated and overlong */
        {"\xF0\x9F\x98", 65533, 1},               /* truncated 4-byte */
        {"\xF4\x90", 2097056, 2},                 /* truncated, above U+10FFFF */
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t len = strlen(cases[i].bytes);

        cr_assert(eq(i32, spk_java_hash(cases[i].bytes, len), cases[i].hash), "case %zu", i);
        cr_assert(eq(sz, spk_java_length(cases[i].bytes, len), cases[i].units), "case %zu", i);
    }
}

Test(jhash, length_counts_utf16_units)
{
    cr_assert(eq(sz, spk_java_length("", 0), 0));
    cr_assert(eq(sz, spk_java_length("hello", 5), 5));
    cr_assert(eq(sz, spk_java_length("\xE4\xB8\xAD\xE6\x96\x87", 6), 2));
    cr_assert(eq(sz, spk_java_length("\xF0\x9F\x98\x80", 4), 2));
    /* "a😀b"; the 'b' is written \x62 so that it does not extend the \x80 escape. */
    cr_assert(eq(sz, spk_java_length("a\xF0\x9F\x98\x80\x62", 6), 4));
}

/* ------------------------------------------------------------------ */
/* errors.h                                                            */
/* ------------------------------------------------------------------ */

static const int spk_codes[] = {SPK_ECORRUPT,  SPK_ETOOBIG, SPK_ESTORE_FAILED, SPK_EFORMAT,
                                SPK_EDISKFULL, SPK_ECONFIG, SPK_ESHUTDOWN,     SPK_ELOCKED,
                                SPK_ENOTFOUND, SPK_ETIMEOUT};

Test(strerror, success_and_errno)
{
    cr_assert(eq(str, (char *)spk_strerror(0), "success"));
    cr_assert(eq(str, (char *)spk_strerror(-ENOENT), "No such file or directory"));
    cr_assert(eq(str, (char *)spk_strerror(-ENOSPC), "No space left on device"));
    cr_assert(eq(str, (char *)spk_strerror(-EIO), "Input/output error"));
}

Test(strerror, project_codes_have_distinct_messages)
{
    size_t i, j, n = sizeof(spk_codes) / sizeof(spk_codes[0]);

    cr_assert(eq(str, (char *)spk_strerror(SPK_ECONFIG), "invalid configuration"));
    for (i = 0; i < n; i++) {
        const char *m = spk_strerror(spk_codes[i]);

        cr_assert(ne(str, (char *)m, "unknown error"), "code %d", spk_codes[i]);
        cr_assert(ne(str, (char *)m, ""), "code %d", spk_codes[i]);
        for (j = 0; j < i; j++)
            cr_assert(ne(str, (char *)m, (char *)spk_strerror(spk_codes[j])), "codes %d and %d",
                      spk_codes[i], spk_codes[j]);
    }
}

Test(strerror, unknown_codes)
{
    static const int unknown[] = {1, ENOENT, -999, -1000, -1099, -1999, -2000, INT_MIN, INT_MAX};
    size_t i;

    for (i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++)
        cr_assert(eq(str, (char *)spk_strerror(unknown[i]), "unknown error"), "rc %d", unknown[i]);
}

static void *
strerror_thread(void *arg)
{
    (void)arg;
    return (void *)spk_strerror(-EACCES);
}

Test(strerror, results_are_static_and_shared_between_threads)
{
    const char *mine = spk_strerror(-EACCES);
    pthread_t th;
    void *theirs;

    /* A thread-local or per-call buffer would give different pointers. */
    cr_assert(eq(int, pthread_create(&th, NULL, strerror_thread, NULL), 0));
    cr_assert(eq(int, pthread_join(th, &theirs), 0));
    cr_assert(eq(ptr, (void *)mine, theirs));
    cr_assert(eq(str, (char *)mine, "Permission denied"));
}

/* ------------------------------------------------------------------ */
/* log.h                                                               */
/* ------------------------------------------------------------------ */

static int log_rd = -1;

/* Sends this process's log lines into a pipe that read_log() drains. */
static void
capture_log(enum spk_log_level level)
{
    int p[2];

    cr_assert(eq(int, pipe(p), 0));
    cr_assert(eq(int, fcntl(p[0], F_SETFL, O_NONBLOCK), 0));
    log_rd = p[0];
    spk_log_init('T', level, p[1]);
}

/* Reads whatever the log wrote so far; always NUL-terminates. */
static size_t
read_log(char *buf, size_t len)
{
    size_t got = 0;
    ssize_t n;

    while (got + 1 < len && (n = read(log_rd, buf + got, len - 1 - got)) > 0)
        got += (size_t)n;
    buf[got] = '\0';
    return got;
}

static void
fmt_now(char *buf, size_t len)
{
    struct timespec ts;
    struct tm tm;

    clock_gettime(CLOCK_REALTIME, &ts);
    localtime_r(&ts.tv_sec, &tm);
    strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm);
}

Test(log, line_format)
{
    char buf[512], before[32], after[32], stamp[32], pid[32];
    regmatch_t m[3];
    regex_t re;

    /* An offset no machine runs at, so a UTC timestamp cannot pass. */
    setenv("TZ", "XXX-05:30", 1);
    capture_log(SPK_LOG_INFO);
    fmt_now(before, sizeof(before));
    spk_log(SPK_LOG_INFO, "store", "hello %d", 42);
    fmt_now(after, sizeof(after));
    read_log(buf, sizeof(buf));

    cr_assert(eq(int,
                 regcomp(&re,
                         "^([0-9]+):T ([0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2})"
                         "\\.[0-9]{3} I store: hello 42\n$",
                         REG_EXTENDED),
                 0));
    cr_assert(eq(int, regexec(&re, buf, 3, m, 0), 0), "line: %s", buf);
    regfree(&re);

    snprintf(pid, sizeof(pid), "%.*s", (int)(m[1].rm_eo - m[1].rm_so), buf + m[1].rm_so);
    cr_assert(eq(long, strtol(pid, NULL, 10), (long)getpid()));
    snprintf(stamp, sizeof(stamp), "%.*s", (int)(m[2].rm_eo - m[2].rm_so), buf + m[2].rm_so);
    cr_assert(le(int, strcmp(before, stamp), 0), "%s < %s", stamp, before);
    cr_assert(ge(int, strcmp(after, stamp), 0), "%s > %s", stamp, after);
}

Test(log, level_letters)
{
    char buf[1024];

    capture_log(SPK_LOG_DEBUG);
    spk_log(SPK_LOG_DEBUG, "m", "d");
    spk_log(SPK_LOG_INFO, "m", "i");
    spk_log(SPK_LOG_WARN, "m", "w");
    spk_log(SPK_LOG_ERROR, "m", "e");
    read_log(buf, sizeof(buf));
    cr_assert(ne(ptr, strstr(buf, " D m: d\n"), NULL), "%s", buf);
    cr_assert(ne(ptr, strstr(buf, " I m: i\n"), NULL), "%s", buf);
    cr_assert(ne(ptr, strstr(buf, " W m: w\n"), NULL), "%s", buf);
    cr_assert(ne(ptr, strstr(buf, " E m: e\n"), NULL), "%s", buf);
}

Test(log, below_threshold_writes_nothing_and_skips_arguments)
{
    struct spk_log_rl rl = {0, 0};
    char buf[512];
    int evaluated = 0;

    capture_log(SPK_LOG_WARN);
    spk_log(SPK_LOG_DEBUG, "m", "%d", ++evaluated);
    spk_log(SPK_LOG_INFO, "m", "%d", ++evaluated);
    spk_log_ratelimited(&rl, 1000, SPK_LOG_INFO, "m", "%d", ++evaluated);
    cr_assert(eq(int, evaluated, 0));
    cr_assert(eq(sz, read_log(buf, sizeof(buf)), 0), "%s", buf);
    /* A disabled line is not counted as suppressed either. */
    cr_assert(eq(i64, rl.last_ms, 0));
    cr_assert(eq(ulong, rl.suppressed, 0));

    spk_log(SPK_LOG_WARN, "m", "n=%d", ++evaluated);
    cr_assert(eq(int, evaluated, 1));
    read_log(buf, sizeof(buf));
    cr_assert(ne(ptr, strstr(buf, " W m: n=1\n"), NULL), "%s", buf);
}

Test(log, set_get_and_parse_level)
{
    enum spk_log_level lv = SPK_LOG_ERROR;

    spk_log_set_level(SPK_LOG_DEBUG);
    cr_assert(eq(int, spk_log_get_level(), SPK_LOG_DEBUG));
    cr_assert(spk_log_enabled(SPK_LOG_DEBUG));
    spk_log_set_level(SPK_LOG_ERROR);
    cr_assert(eq(int, spk_log_get_level(), SPK_LOG_ERROR));
    cr_assert(not(spk_log_enabled(SPK_LOG_WARN)));

    cr_assert(eq(int, spk_log_parse_level("debug", &lv), 0));
    cr_assert(eq(int, lv, SPK_LOG_DEBUG));
    cr_assert(eq(int, spk_log_parse_level("INFO", &lv), 0));
    cr_assert(eq(int, lv, SPK_LOG_INFO));
    cr_assert(eq(int, spk_log_parse_level("Warn", &lv), 0));
    cr_assert(eq(int, lv, SPK_LOG_WARN));
    cr_assert(eq(int, spk_log_parse_level("error", &lv), 0));
    cr_assert(eq(int, lv, SPK_LOG_ERROR));
    cr_assert(eq(int, spk_log_parse_level("verbose", &lv), -EINVAL));
    cr_assert(eq(int, spk_log_parse_level("", &lv), -EINVAL));
    cr_assert(eq(int, lv, SPK_LOG_ERROR), "*out changed on failure");
}

Test(log, long_lines_are_cut_to_the_limit)
{
    char *msg = malloc(10000 + 1);
    char buf[3 * SPK_LOG_LINE_MAX];
    size_t n;

    cr_assert(ne(ptr, msg, NULL));
    memset(msg, 'x', 10000);
    msg[10000] = '\0';
    capture_log(SPK_LOG_INFO);
    spk_log(SPK_LOG_INFO, "m", "%s", msg);
    n = read_log(buf, sizeof(buf));
    free(msg);

    cr_assert(eq(sz, n, SPK_LOG_LINE_MAX));
    cr_assert(eq(str, buf + n - 5, "x...\n"));
    cr_assert(eq(ptr, memchr(buf, '\n', n), buf + n - 1), "exactly one newline, at the end");
}

Test(log, cut_falls_on_a_utf8_boundary)
{
    char *msg = malloc(10000 + 2);
    char buf[2 * SPK_LOG_LINE_MAX];
    size_t n, i, shift;

    cr_assert(ne(ptr, msg, NULL));
    capture_log(SPK_LOG_INFO);
    /*
     * Two-byte characters, tried at both byte parities, so a cut that
     * ignores character boundaries splits one in one of the two runs.
     */
    for (shift = 0; shift < 2; shift++) {
        memset(msg, 'a', shift);
        for (i = shift; i + 1 < 10000; i += 2) {
            msg[i] = (char)0xC3; /* U+00E9 */
            msg[i + 1] = (char)0xA9;
        }
        msg[i] = '\0';
        spk_log(SPK_LOG_INFO, "m", "%s", msg);
        n = read_log(buf, sizeof(buf));
        cr_assert(ge(sz, n, 5));
        cr_assert(eq(str, buf + n - 4, "...\n"));
        cr_assert(eq(u8, (uint8_t)buf[n - 5], 0xA9), "shift %zu: cut inside a character", shift);
    }
    free(msg);
}

Test(log, embedded_newlines_become_spaces)
{
    char buf[512];

    capture_log(SPK_LOG_INFO);
    spk_log(SPK_LOG_INFO, "m", "topic %s", "evil\nfake 1:M line\r");
    read_log(buf, sizeof(buf));
    cr_assert(ne(ptr, strstr(buf, " I m: topic evil fake 1:M line \n"), NULL), "%s", buf);
    cr_assert(eq(ptr, strchr(buf, '\n'), buf + strlen(buf) - 1));
}

Test(log, errno_is_preserved_and_available_to_percent_m)
{
    char buf[512];
    int p[2], saved_stderr;

    /*
     * No spk_log_init(): the first localtime_r() then loads the time zone
     * itself, and a zone file that does not exist sets errno on the way.
     * The line goes to the default fd 2, borrowed for the test.
     */
    setenv("TZ", ":/nonexistent/zone", 1);
    cr_assert(eq(int, pipe(p), 0));
    cr_assert(eq(int, fcntl(p[0], F_SETFL, O_NONBLOCK), 0));
    saved_stderr = dup(2);
    cr_assert(ge(int, saved_stderr, 0));
    cr_assert(eq(int, dup2(p[1], 2), 2));
    log_rd = p[0];

    errno = EACCES;
    spk_log(SPK_LOG_ERROR, "m", "open: %m");
    cr_assert(eq(int, errno, EACCES));

    cr_assert(eq(int, dup2(saved_stderr, 2), 2));
    read_log(buf, sizeof(buf));
    cr_assert(ne(ptr, strstr(buf, " E m: open: Permission denied\n"), NULL), "%s", buf);
    cr_assert(eq(int, strncmp(buf + strcspn(buf, ":"), ":- ", 3), 0), "default role: %s", buf);
}

Test(log, ratelimited_reports_what_it_suppressed)
{
    struct spk_log_rl rl = {0, 0};
    const int64_t hour = 3600 * 1000;
    char buf[2048];
    int i;

    capture_log(SPK_LOG_INFO);
    for (i = 0; i < 6; i++)
        spk_log_ratelimited(&rl, hour, SPK_LOG_ERROR, "disk", "write failed %d", i);
    read_log(buf, sizeof(buf));
    cr_assert(ne(ptr, strstr(buf, " E disk: write failed 0\n"), NULL), "%s", buf);
    cr_assert(eq(ptr, strchr(buf, '\n'), buf + strlen(buf) - 1), "one line only: %s", buf);
    cr_assert(eq(ulong, rl.suppressed, 5));

    /* Pretend the hour has passed. */
    rl.last_ms -= hour;
    spk_log_ratelimited(&rl, hour, SPK_LOG_ERROR, "disk", "write failed %d", 6);
    read_log(buf, sizeof(buf));
    cr_assert(ne(ptr, strstr(buf, " E disk: write failed 6 (5 similar lines suppressed)\n"), NULL),
              "%s", buf);
    cr_assert(eq(ulong, rl.suppressed, 0));

    /* Inside the new interval again. */
    spk_log_ratelimited(&rl, hour, SPK_LOG_ERROR, "disk", "write failed %d", 7);
    cr_assert(eq(sz, read_log(buf, sizeof(buf)), 0), "%s", buf);
    cr_assert(eq(ulong, rl.suppressed, 1));
}

Test(log, ratelimit_suffix_survives_truncation)
{
    struct spk_log_rl rl = {0, 3};
    char *msg = malloc(10000 + 1);
    char buf[2 * SPK_LOG_LINE_MAX];
    size_t n;
    static const char tail[] = "... (3 similar lines suppressed)\n";

    cr_assert(ne(ptr, msg, NULL));
    memset(msg, 'x', 10000);
    msg[10000] = '\0';
    capture_log(SPK_LOG_INFO);
    spk_log_ratelimited(&rl, 1000, SPK_LOG_WARN, "m", "%s", msg);
    n = read_log(buf, sizeof(buf));
    free(msg);
    cr_assert(eq(sz, n, SPK_LOG_LINE_MAX));
    cr_assert(eq(str, buf + n - strlen(tail), (char *)tail));
}

/* Lines from concurrent writers must arrive whole. */
#define MT_THREADS 4
#define MT_LINES 300
#define MT_FILL 1000
#define MT_TOTAL (MT_THREADS * MT_LINES)

static int mt_wr = -1;

static void *
mt_writer(void *arg)
{
    int k = (int)(intptr_t)arg, i;
    char fill[MT_FILL + 1];

    memset(fill, 'a' + k, MT_FILL);
    fill[MT_FILL] = '\0';
    for (i = 0; i < MT_LINES; i++)
        spk_log(SPK_LOG_INFO, "mt", "w%d %d %s", k, i, fill);
    return NULL;
}

static void *
mt_closer(void *arg)
{
    pthread_t *writers = arg;
    int k;

    for (k = 0; k < MT_THREADS; k++)
        pthread_join(writers[k], NULL);
    close(mt_wr); /* EOF for the reader */
    return NULL;
}

Test(log, concurrent_lines_do_not_interleave)
{
    size_t cap = (size_t)MT_THREADS * MT_LINES * (MT_FILL + 100), got = 0;
    char *all = malloc(cap + 1), *line, *save = NULL;
    int next[MT_THREADS] = {0};
    pthread_t writers[MT_THREADS], closer;
    int p[2], k, seq, nlines = 0;
    regmatch_t m[4];
    regex_t re;
    ssize_t n;

    cr_assert(ne(ptr, all, NULL));
    cr_assert(eq(int, pipe(p), 0));
    mt_wr = p[1];
    spk_log_init('T', SPK_LOG_INFO, p[1]);
    for (k = 0; k < MT_THREADS; k++)
        cr_assert(eq(int, pthread_create(&writers[k], NULL, mt_writer, (void *)(intptr_t)k), 0));
    cr_assert(eq(int, pthread_create(&closer, NULL, mt_closer, writers), 0));
    while (got < cap && (n = read(p[0], all + got, cap - got)) > 0)
        got += (size_t)n;
    pthread_join(closer, NULL);
    all[got] = '\0';

    cr_assert(
        eq(int,
           regcomp(&re,
                   "^[0-9]+:T [0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}"
                   " I mt: w([0-9]) ([0-9]+) ([a-z]+)$",
                   REG_EXTENDED),
           0));
    for (line = strtok_r(all, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        char want[MT_FILL];
        size_t fill_len;

        /* Anchored at both ends: a torn line cannot hide inside another. */
        cr_assert(eq(int, regexec(&re, line, 4, m, 0), 0), "mangled line: %.120s", line);
        k = line[m[1].rm_so] - '0';
        seq = atoi(line + m[2].rm_so);
        cr_assert(lt(int, k, MT_THREADS));
        cr_assert(eq(int, seq, next[k]), "writer %d out of order", k);
        next[k]++;
        fill_len = (size_t)(m[3].rm_eo - m[3].rm_so);
        cr_assert(eq(sz, fill_len, MT_FILL), "writer %d line %d", k, seq);
        memset(want, 'a' + k, MT_FILL);
        cr_assert(eq(int, memcmp(line + m[3].rm_so, want, MT_FILL), 0), "writer %d line %d", k,
                  seq);
        nlines++;
    }
    regfree(&re);
    free(all);
    close(p[0]);
    cr_assert(eq(int, nlines, MT_TOTAL));
}

/* ------------------------------------------------------------------ */
/* config.h                                                            */
/* ------------------------------------------------------------------ */

struct broker_cfg {
    char *broker_name;
    int flush_disk_type;
    int broker_role;
    int max_message_size;
    int64_t commitlog_size;
    int auto_create_topic;
    char *namesrv_addr;
    int broker_id;
    int64_t busy_timeout_ms;
};

struct net_cfg {
    int listen_port;
    char *bind_addr;
};

static const char *const flush_names[] = {"ASYNC_FLUSH", "SYNC_FLUSH", NULL};
static const char *const role_names[] = {"ASYNC_MASTER", "SYNC_MASTER", "SLAVE", NULL};

#define B(f) offsetof(struct broker_cfg, f)
static const struct cfg_def broker_defs[] = {
    {"brokerName", CFG_STRING, B(broker_name), 0, 0, "broker-a", NULL, 0, "name"},
    {"flushDiskType", CFG_ENUM, B(flush_disk_type), 0, 0, "ASYNC_FLUSH", flush_names, 0, "flush"},
    {"brokerRole", CFG_ENUM, B(broker_role), 0, 0, "ASYNC_MASTER", role_names, 0, "role"},
    {"maxMessageSize", CFG_INT, B(max_message_size), 1024, 1073741824, "4194304", NULL, CFG_RUNTIME,
     "max body"},
    {"mappedFileSizeCommitLog", CFG_INT64, B(commitlog_size), 4096, INT64_MAX, "1073741824", NULL,
     0, "segment size"},
    {"autoCreateTopicEnable", CFG_BOOL, B(auto_create_topic), 0, 0, "true", NULL, CFG_RUNTIME,
     "auto create"},
    {"namesrvAddr", CFG_STRING, B(namesrv_addr), 0, 0, NULL, NULL, 0, "name servers"},
    {"brokerId", CFG_INT, B(broker_id), 0, 0, "0", NULL, 0, "id (unbounded)"},
    {"osPageCacheBusyTimeOutMills", CFG_INT64, B(busy_timeout_ms), 0, 0, "1000", NULL, 0,
     "busy (unbounded)"},
};
#undef B

static const struct cfg_def net_defs[] = {
    {"listenPort", CFG_INT, offsetof(struct net_cfg, listen_port), 1, 65535, "10911", NULL, 0,
     "port"},
    {"bindAddress", CFG_STRING, offsetof(struct net_cfg, bind_addr), 0, 0, "0.0.0.0", NULL, 0,
     "address"},
};

#define NDEFS(a) (sizeof(a) / sizeof((a)[0]))

static struct broker_cfg bc;
static struct net_cfg nc;
static struct cfg_target tg[2];
static char err[CFG_ERR_MAX];

static const char defaults_dump[] = "brokerName=broker-a\n"
                                    "flushDiskType=ASYNC_FLUSH\n"
                                    "brokerRole=ASYNC_MASTER\n"
                                    "maxMessageSize=4194304\n"
                                    "mappedFileSizeCommitLog=1073741824\n"
                                    "autoCreateTopicEnable=true\n"
                                    "namesrvAddr=\n"
                                    "brokerId=0\n"
                                    "osPageCacheBusyTimeOutMills=1000\n"
                                    "listenPort=10911\n"
                                    "bindAddress=0.0.0.0\n";

static void
cfg_setup(void)
{
    memset(&bc, 0, sizeof(bc));
    memset(&nc, 0, sizeof(nc));
    tg[0] = (struct cfg_target){broker_defs, NDEFS(broker_defs), &bc};
    tg[1] = (struct cfg_target){net_defs, NDEFS(net_defs), &nc};
    cr_assert(eq(int, cfg_set_defaults(&tg[0]), 0));
    cr_assert(eq(int, cfg_set_defaults(&tg[1]), 0));
    err[0] = '\0';
}

/*
 * LeakSanitizer's report at process exit does not fail a Criterion test
 * (the worker has already reported success), so leaks are checked here,
 * while the test can still fail.
 */
static void
assert_no_leaks(void)
{
#ifdef HAVE_LSAN
    cr_assert(eq(int, __lsan_do_recoverable_leak_check(), 0), "memory leaked (see report above)");
#endif
}

static void
cfg_teardown(void)
{
    cfg_free(&tg[0]);
    cfg_free(&tg[1]);
    assert_no_leaks();
}

static int
set(const char *key, const char *value)
{
    err[0] = '\0';
    return cfg_set(tg, 2, key, value, err, sizeof(err));
}

/* Writes <text> to a new temporary file and stores its name in <path>. */
static void
write_tmp(char *path, size_t pathlen, const void *text, size_t len)
{
    int fd;

    snprintf(path, pathlen, "/tmp/t_common_XXXXXX");
    fd = mkstemp(path);
    cr_assert(ge(int, fd, 0));
    cr_assert(eq(long, (long)write(fd, text, len), (long)len));
    cr_assert(eq(int, close(fd), 0));
}

static int
load_text(char *path, size_t pathlen, const char *text)
{
    write_tmp(path, pathlen, text, strlen(text));
    err[0] = '\0';
    return cfg_load_file(tg, 2, path, err, sizeof(err));
}

/*
 * Every config test ends with cfg_teardown() in its own body: Criterion
 * prints a failed assertion from a .fini hook but still passes the test,
 * which would let a leak through.
 */
#define CFG_TEST(name)                                                                             \
    static void name##_body(void);                                                                 \
    Test(config, name, .init = cfg_setup)                                                          \
    {                                                                                              \
        name##_body();                                                                             \
        cfg_teardown();                                                                            \
    }                                                                                              \
    static void name##_body(void)

CFG_TEST(defaults)
{
    cr_assert(eq(str, bc.broker_name, "broker-a"));
    cr_assert(eq(int, bc.flush_disk_type, 0));
    cr_assert(eq(int, bc.broker_role, 0));
    cr_assert(eq(int, bc.max_message_size, 4194304));
    cr_assert(eq(i64, bc.commitlog_size, 1073741824));
    cr_assert(eq(int, bc.auto_create_topic, 1));
    cr_assert(eq(ptr, bc.namesrv_addr, NULL));
    cr_assert(eq(int, bc.broker_id, 0));
    cr_assert(eq(i64, bc.busy_timeout_ms, 1000));
    cr_assert(eq(int, nc.listen_port, 10911));
    cr_assert(eq(str, nc.bind_addr, "0.0.0.0"));
}

CFG_TEST(set_each_type)
{
    cr_assert(eq(int, set("flushDiskType", "SYNC_FLUSH"), 0), "%s", err);
    cr_assert(eq(int, bc.flush_disk_type, 1));
    cr_assert(eq(int, set("brokerRole", "SLAVE"), 0), "%s", err);
    cr_assert(eq(int, bc.broker_role, 2));
    cr_assert(eq(int, set("maxMessageSize", "2048"), 0), "%s", err);
    cr_assert(eq(int, bc.max_message_size, 2048));
    cr_assert(eq(int, set("mappedFileSizeCommitLog", "10737418240"), 0), "%s", err);
    cr_assert(eq(i64, bc.commitlog_size, INT64_C(10737418240)));
    cr_assert(eq(int, set("autoCreateTopicEnable", "false"), 0), "%s", err);
    cr_assert(eq(int, bc.auto_create_topic, 0));
    cr_assert(eq(int, set("brokerName", "broker-b"), 0), "%s", err);
    cr_assert(eq(str, bc.broker_name, "broker-b"));
    cr_assert(eq(int, set("namesrvAddr", "127.0.0.1:9876"), 0), "%s", err);
    cr_assert(eq(str, bc.namesrv_addr, "127.0.0.1:9876"));
    /* A key of the second target. */
    cr_assert(eq(int, set("listenPort", "10921"), 0), "%s", err);
    cr_assert(eq(int, nc.listen_port, 10921));
}

CFG_TEST(string_values_are_copied_and_replaced)
{
    char value[] = "broker-c";

    cr_assert(eq(int, set("brokerName", value), 0));
    value[0] = 'X';
    cr_assert(eq(str, bc.broker_name, "broker-c"), "the field must own a copy");
    /* Replacing twice, then resetting, must free each old copy (LSan). */
    cr_assert(eq(int, set("brokerName", "broker-d"), 0));
    cr_assert(eq(int, set("brokerName", ""), 0));
    cr_assert(eq(str, bc.broker_name, ""));
    cr_assert(eq(int, cfg_set_defaults(&tg[0]), 0));
    cr_assert(eq(str, bc.broker_name, "broker-a"));
    cr_assert(eq(ptr, bc.namesrv_addr, NULL));
}

CFG_TEST(integer_syntax)
{
    static const char *const bad[] = {"",    "abc", " 2048", "2048 ",  "2048x", "0x800",
                                      "1e4", "+",   "-",     "+-2048", "2,048", "20 48"};
    size_t i;

    cr_assert(eq(int, set("maxMessageSize", "abc"), SPK_ECONFIG));
    cr_assert(eq(str, err, "maxMessageSize: 'abc' is not an integer"));
    for (i = 0; i < NDEFS(bad); i++) {
        cr_assert(eq(int, set("maxMessageSize", bad[i]), SPK_ECONFIG), "'%s'", bad[i]);
        cr_assert(ne(ptr, strstr(err, "is not an integer"), NULL), "'%s': %s", bad[i], err);
        cr_assert(eq(int, bc.max_message_size, 4194304), "'%s' changed the field", bad[i]);
    }
    cr_assert(eq(int, set("maxMessageSize", "+2048"), 0));
    cr_assert(eq(int, bc.max_message_size, 2048));
    cr_assert(eq(int, set("maxMessageSize", "0004096"), 0));
    cr_assert(eq(int, bc.max_message_size, 4096));
}

CFG_TEST(integer_bounds)
{
    cr_assert(eq(int, set("maxMessageSize", "1023"), SPK_ECONFIG));
    cr_assert(eq(str, err, "maxMessageSize: 1023 is below the minimum 1024"));
    cr_assert(eq(int, set("maxMessageSize", "-5"), SPK_ECONFIG));
    cr_assert(eq(str, err, "maxMessageSize: -5 is below the minimum 1024"));
    cr_assert(eq(int, set("maxMessageSize", "1073741825"), SPK_ECONFIG));
    cr_assert(eq(str, err, "maxMessageSize: 1073741825 is above the maximum 1073741824"));
    cr_assert(eq(int, bc.max_message_size, 4194304));

    cr_assert(eq(int, set("maxMessageSize", "1024"), 0));
    cr_assert(eq(int, bc.max_message_size, 1024));
    cr_assert(eq(int, set("maxMessageSize", "1073741824"), 0));
    cr_assert(eq(int, bc.max_message_size, 1073741824));

    cr_assert(eq(int, set("listenPort", "0"), SPK_ECONFIG));
    cr_assert(eq(str, err, "listenPort: 0 is below the minimum 1"));
    cr_assert(eq(int, set("mappedFileSizeCommitLog", "4095"), SPK_ECONFIG));
    cr_assert(eq(str, err, "mappedFileSizeCommitLog: 4095 is below the minimum 4096"));
}

CFG_TEST(unbounded_integers_still_fit_their_type)
{
    cr_assert(eq(int, set("brokerId", "2147483647"), 0));
    cr_assert(eq(int, bc.broker_id, INT_MAX));
    cr_assert(eq(int, set("brokerId", "-2147483648"), 0));
    cr_assert(eq(int, bc.broker_id, INT_MIN));
    cr_assert(eq(int, set("brokerId", "2147483648"), SPK_ECONFIG));
    cr_assert(eq(str, err, "brokerId: 2147483648 is above the maximum 2147483647"));
    cr_assert(eq(int, set("brokerId", "-2147483649"), SPK_ECONFIG));
    cr_assert(eq(str, err, "brokerId: -2147483649 is below the minimum -2147483648"));
    cr_assert(eq(int, bc.broker_id, INT_MIN));

    cr_assert(eq(int, set("osPageCacheBusyTimeOutMills", "9223372036854775807"), 0));
    cr_assert(eq(i64, bc.busy_timeout_ms, INT64_MAX));
    cr_assert(eq(int, set("osPageCacheBusyTimeOutMills", "-9223372036854775808"), 0));
    cr_assert(eq(i64, bc.busy_timeout_ms, INT64_MIN));
    cr_assert(eq(int, set("osPageCacheBusyTimeOutMills", "9223372036854775808"), SPK_ECONFIG));
    cr_assert(eq(str, err,
                 "osPageCacheBusyTimeOutMills: 9223372036854775808 is above the maximum "
                 "9223372036854775807"));
    cr_assert(eq(int, set("osPageCacheBusyTimeOutMills", "-99999999999999999999"), SPK_ECONFIG));
    cr_assert(ne(ptr, strstr(err, "is below the minimum -9223372036854775808"), NULL), "%s", err);
    cr_assert(eq(i64, bc.busy_timeout_ms, INT64_MIN));
}

CFG_TEST(booleans_follow_java)
{
    char buf[512];

    capture_log(SPK_LOG_INFO);
    cr_assert(eq(int, set("autoCreateTopicEnable", "FALSE"), 0));
    cr_assert(eq(int, bc.auto_create_topic, 0));
    cr_assert(eq(int, set("autoCreateTopicEnable", "True"), 0));
    cr_assert(eq(int, bc.auto_create_topic, 1));
    cr_assert(eq(sz, read_log(buf, sizeof(buf)), 0), "%s", buf);

    /* Boolean.parseBoolean("yes") is false: accepted, but warned about. */
    cr_assert(eq(int, set("autoCreateTopicEnable", "yes"), 0));
    cr_assert(eq(int, bc.auto_create_topic, 0));
    read_log(buf, sizeof(buf));
    cr_assert(
        ne(ptr, strstr(buf, " W config: autoCreateTopicEnable: 'yes' is not true or false"), NULL),
        "%s", buf);

    cr_assert(eq(int, set("autoCreateTopicEnable", "true"), 0));
    cr_assert(eq(int, set("autoCreateTopicEnable", ""), SPK_ECONFIG));
    cr_assert(eq(str, err, "autoCreateTopicEnable: '' is not a boolean (true or false)"));
    cr_assert(eq(int, bc.auto_create_topic, 1));
}

CFG_TEST(enum_names_are_case_sensitive)
{
    cr_assert(eq(int, set("flushDiskType", "sync_flush"), SPK_ECONFIG));
    cr_assert(eq(str, err, "flushDiskType: 'sync_flush' is not one of ASYNC_FLUSH, SYNC_FLUSH"));
    cr_assert(eq(int, set("brokerRole", ""), SPK_ECONFIG));
    cr_assert(eq(str, err, "brokerRole: '' is not one of ASYNC_MASTER, SYNC_MASTER, SLAVE"));
    cr_assert(eq(int, bc.flush_disk_type, 0));
    cr_assert(eq(int, bc.broker_role, 0));
}

CFG_TEST(unknown_keys)
{
    char before[1024], after[1024];

    cr_assert(cfg_dump(tg, 2, before, sizeof(before)) > 0, "cfg_dump returned nothing");
    cr_assert(eq(int, set("maxMessageSiz", "2048"), -ENOENT));
    cr_assert(eq(str, err, "maxMessageSiz: unknown key"));
    cr_assert(eq(int, set("", "1"), -ENOENT));
    /* Prefixes of a real key must not match it. */
    cr_assert(eq(int, set("broker", "x"), -ENOENT));
    cr_assert(cfg_dump(tg, 2, after, sizeof(after)) > 0, "cfg_dump returned nothing");
    cr_assert(eq(str, after, before));
    /* The error buffer is optional. */
    cr_assert(eq(int, cfg_set(tg, 2, "nope", "1", NULL, 0), -ENOENT));
    cr_assert(eq(int, cfg_set(tg, 2, "maxMessageSize", "x", NULL, 0), SPK_ECONFIG));
}

CFG_TEST(first_target_wins_and_find_reports_flags)
{
    static const struct cfg_def dup[] = {
        {"brokerName", CFG_STRING, offsetof(struct net_cfg, bind_addr), 0, 0, "dup", NULL, 0, ""},
    };
    struct net_cfg other = {0, NULL};
    struct cfg_target two[2] = {tg[0], {dup, 1, &other}};
    const struct cfg_def *d;

    cr_assert(eq(int, cfg_set_defaults(&two[1]), 0));
    cr_assert(eq(int, cfg_set(two, 2, "brokerName", "first", err, sizeof(err)), 0));
    cr_assert(eq(str, bc.broker_name, "first"));
    cr_assert(eq(str, other.bind_addr, "dup"));
    cfg_free(&two[1]);

    d = cfg_find(tg, 2, "maxMessageSize");
    cr_assert(ne(ptr, (void *)d, NULL));
    cr_assert(eq(uint, d->flags & CFG_RUNTIME, CFG_RUNTIME));
    d = cfg_find(tg, 2, "listenPort");
    cr_assert(ne(ptr, (void *)d, NULL));
    cr_assert(eq(uint, d->flags & CFG_RUNTIME, 0));
    cr_assert(eq(ptr, (void *)cfg_find(tg, 2, "nope"), NULL));
}

CFG_TEST(bad_defaults_are_reported)
{
    static const struct cfg_def bad_int[] = {
        {"x", CFG_INT, 0, 1, 10, "abc", NULL, 0, ""},
    };
    static const struct cfg_def out_of_bounds[] = {
        {"x", CFG_INT, 0, 1, 10, "11", NULL, 0, ""},
    };
    static const struct cfg_def bad_enum[] = {
        {"x", CFG_ENUM, 0, 0, 0, "NOPE", flush_names, 0, ""},
    };
    static const struct cfg_def missing[] = {
        {"x", CFG_INT, 0, 0, 0, NULL, NULL, 0, ""},
    };
    int obj = 0;
    struct cfg_target t;
    char buf[512];

    capture_log(SPK_LOG_INFO);
    t = (struct cfg_target){bad_int, 1, &obj};
    cr_assert(eq(int, cfg_set_defaults(&t), SPK_ECONFIG));
    t = (struct cfg_target){out_of_bounds, 1, &obj};
    cr_assert(eq(int, cfg_set_defaults(&t), SPK_ECONFIG));
    t = (struct cfg_target){bad_enum, 1, &obj};
    cr_assert(eq(int, cfg_set_defaults(&t), SPK_ECONFIG));
    t = (struct cfg_target){missing, 1, &obj};
    cr_assert(eq(int, cfg_set_defaults(&t), SPK_ECONFIG));
    cr_assert(eq(int, obj, 0));
    read_log(buf, sizeof(buf));
    cr_assert(ne(ptr, strstr(buf, " E config: bad default: x: 'abc' is not an integer\n"), NULL),
              "%s", buf);
}

CFG_TEST(free_is_idempotent)
{
    char buf[64];

    cfg_free(&tg[0]);
    cr_assert(eq(ptr, bc.broker_name, NULL));
    cfg_free(&tg[0]);
    cr_assert(eq(int, cfg_get(tg, 2, "brokerName", buf, sizeof(buf)), 0));
    cr_assert(eq(str, buf, ""));
}

CFG_TEST(file_parsing)
{
    char path[64], buf[1024];
    /* Line numbers matter: the unknown key is on line 9. */
    static const char text[] = "# broker.conf\n"
                               "\n"
                               "   ! a Java-properties comment\n"
                               "brokerName = my broker \n"
                               "\tflushDiskType=SYNC_FLUSH\r\n"
                               "maxMessageSize=1024\n"
                               "maxMessageSize=2048\n"
                               "namesrvAddr=\n"
                               "brokerClusterName=DefaultCluster\n"
                               "bindAddress=a=b # not a comment\n"
                               "   \t  \n"
                               "listenPort=10921";

    capture_log(SPK_LOG_INFO);
    cr_assert(eq(int, load_text(path, sizeof(path), text), 0), "%s", err);
    cr_assert(eq(str, bc.broker_name, "my broker"));
    cr_assert(eq(int, bc.flush_disk_type, 1));
    cr_assert(eq(int, bc.max_message_size, 2048), "later lines override earlier ones");
    cr_assert(eq(str, bc.namesrv_addr, ""));
    cr_assert(eq(str, nc.bind_addr, "a=b # not a comment"));
    cr_assert(eq(int, nc.listen_port, 10921), "a last line without a newline counts");
    read_log(buf, sizeof(buf));
    snprintf(err, sizeof(err), " W config: %s:9: unknown key 'brokerClusterName' ignored\n", path);
    cr_assert(ne(ptr, strstr(buf, err), NULL), "%s", buf);
    unlink(path);
}

CFG_TEST(file_with_byte_order_mark)
{
    char path[64];

    cr_assert(eq(int, load_text(path, sizeof(path), "\xEF\xBB\xBFlistenPort=1234\n"), 0), "%s",
              err);
    cr_assert(eq(int, nc.listen_port, 1234));
    unlink(path);
}

CFG_TEST(file_bad_value_names_file_line_and_key)
{
    char path[64], want[CFG_ERR_MAX];

    cr_assert(eq(
        int,
        load_text(path, sizeof(path), "# c\nlistenPort=2000\nmaxMessageSize = abc\nbrokerId=5\n"),
        SPK_ECONFIG));
    snprintf(want, sizeof(want), "%s:3: maxMessageSize: 'abc' is not an integer", path);
    cr_assert(eq(str, err, want));
    /* Documented: lines before the bad one were applied, later ones not. */
    cr_assert(eq(int, nc.listen_port, 2000));
    cr_assert(eq(int, bc.broker_id, 0));
    unlink(path);
}

CFG_TEST(file_malformed_lines)
{
    char path[64], want[CFG_ERR_MAX];

    cr_assert(eq(int, load_text(path, sizeof(path), "listenPort=2000\njunk line\n"), SPK_ECONFIG));
    snprintf(want, sizeof(want), "%s:2: expected key=value", path);
    cr_assert(eq(str, err, want));
    unlink(path);

    cr_assert(eq(int, load_text(path, sizeof(path), "  = 5\n"), SPK_ECONFIG));
    snprintf(want, sizeof(want), "%s:1: empty key", path);
    cr_assert(eq(str, err, want));
    unlink(path);

    write_tmp(path, sizeof(path), "brokerName=a\0b\n", 15);
    cr_assert(eq(int, cfg_load_file(tg, 2, path, err, sizeof(err)), SPK_ECONFIG));
    snprintf(want, sizeof(want), "%s:1: line contains a NUL byte", path);
    cr_assert(eq(str, err, want));
    unlink(path);
}

CFG_TEST(file_unreadable)
{
    cr_assert(eq(int, cfg_load_file(tg, 2, "/nonexistent/broker.conf", err, sizeof(err)), -ENOENT));
    cr_assert(eq(str, err, "/nonexistent/broker.conf: No such file or directory"));
    cr_assert(eq(int, cfg_load_file(tg, 2, "/tmp", err, sizeof(err)), -EISDIR));
    cr_assert(eq(str, err, "/tmp: Is a directory"));
}

CFG_TEST(file_lines_up_to_64k)
{
    const size_t limit = 64 * 1024, keylen = strlen("brokerName=");
    char *text = malloc(limit + 3), path[64], want[CFG_ERR_MAX];

    cr_assert(ne(ptr, text, NULL));
    /* Exactly 64 KiB before the newline: accepted whole. */
    memcpy(text, "brokerName=", keylen);
    memset(text + keylen, 'x', limit - keylen);
    memcpy(text + limit, "\n", 2);
    cr_assert(eq(int, load_text(path, sizeof(path), text), 0), "%s", err);
    cr_assert(eq(sz, strlen(bc.broker_name), limit - keylen));
    unlink(path);

    /* One byte more is refused rather than silently cut. */
    memset(text + keylen, 'y', limit + 1 - keylen);
    memcpy(text + limit + 1, "\n", 2);
    cr_assert(eq(int, load_text(path, sizeof(path), text), SPK_ECONFIG));
    snprintf(want, sizeof(want), "%s:1: line longer than 65536 bytes", path);
    cr_assert(eq(str, err, want));
    cr_assert(eq(chr, bc.broker_name[0], 'x'));
    unlink(path);
    free(text);
}

CFG_TEST(argv_overrides_are_consumed)
{
    char *argv[] = {"sprocket",
                    "--maxMessageSize=2048",
                    "pos1",
                    "--autoCreateTopicEnable=false",
                    "--unknownKey=1",
                    "-c",
                    "broker.conf",
                    "--brokerName=",
                    "--autoCreateTopicEnable",
                    "--",
                    "--brokerId=7",
                    NULL};
    static const char *const rest[] = {"sprocket",    "pos1", "--unknownKey=1", "-c",
                                       "broker.conf", "--",   "--brokerId=7"};
    int argc = 11, i;

    cr_assert(eq(int, cfg_parse_args(tg, 2, &argc, argv, err, sizeof(err)), 0), "%s", err);
    cr_assert(eq(int, argc, 7));
    for (i = 0; i < argc; i++)
        cr_assert(eq(str, argv[i], (char *)rest[i]), "argv[%d]", i);
    cr_assert(eq(ptr, argv[7], NULL));

    cr_assert(eq(int, bc.max_message_size, 2048));
    cr_assert(eq(int, bc.auto_create_topic, 1), "a bare --bool means true, and came last");
    cr_assert(eq(str, bc.broker_name, ""));
    cr_assert(eq(int, bc.broker_id, 0), "arguments after -- are not options");
}

CFG_TEST(argv_errors)
{
    char *argv[] = {"sprocket", "--listenPort=1", "a", "--listenPort=99999", "b", NULL};
    char *argv2[] = {"sprocket", "--maxMessageSize", "c", NULL};
    int argc = 5, argc2 = 3;

    cr_assert(eq(int, cfg_parse_args(tg, 2, &argc, argv, err, sizeof(err)), SPK_ECONFIG));
    cr_assert(eq(str, err, "listenPort: 99999 is above the maximum 65535"));
    cr_assert(eq(int, nc.listen_port, 1));
    /* argv stays a valid vector: the consumed argument is gone, the rest kept. */
    cr_assert(eq(int, argc, 4));
    cr_assert(eq(str, argv[1], "a"));
    cr_assert(eq(str, argv[2], "--listenPort=99999"));
    cr_assert(eq(str, argv[3], "b"));
    cr_assert(eq(ptr, argv[4], NULL));

    cr_assert(eq(int, cfg_parse_args(tg, 2, &argc2, argv2, err, sizeof(err)), SPK_ECONFIG));
    cr_assert(eq(str, err, "maxMessageSize: needs a value (--maxMessageSize=...)"));
    cr_assert(eq(int, argc2, 3));
}

CFG_TEST(get_formats_values)
{
    char buf[64];

    cr_assert(eq(int, set("flushDiskType", "SYNC_FLUSH"), 0));
    cr_assert(eq(int, set("osPageCacheBusyTimeOutMills", "-9223372036854775808"), 0));
    cr_assert(eq(int, cfg_get(tg, 2, "flushDiskType", buf, sizeof(buf)), 0));
    cr_assert(eq(str, buf, "SYNC_FLUSH"));
    cr_assert(eq(int, cfg_get(tg, 2, "autoCreateTopicEnable", buf, sizeof(buf)), 0));
    cr_assert(eq(str, buf, "true"));
    cr_assert(eq(int, cfg_get(tg, 2, "osPageCacheBusyTimeOutMills", buf, sizeof(buf)), 0));
    cr_assert(eq(str, buf, "-9223372036854775808"));
    cr_assert(eq(int, cfg_get(tg, 2, "listenPort", buf, sizeof(buf)), 0));
    cr_assert(eq(str, buf, "10911"));
    cr_assert(eq(int, cfg_get(tg, 2, "namesrvAddr", buf, sizeof(buf)), 0));
    cr_assert(eq(str, buf, ""));
    cr_assert(eq(int, cfg_get(tg, 2, "nope", buf, sizeof(buf)), -ENOENT));

    /* "4194304" needs 8 bytes with its NUL. */
    cr_assert(eq(int, cfg_get(tg, 2, "maxMessageSize", buf, 8), 0));
    cr_assert(eq(str, buf, "4194304"));
    cr_assert(eq(int, cfg_get(tg, 2, "maxMessageSize", buf, 7), -ERANGE));
    cr_assert(eq(int, cfg_get(tg, 2, "maxMessageSize", NULL, 0), -ERANGE));
}

CFG_TEST(dump_lists_every_key_in_table_order)
{
    char buf[1024];
    int n = (int)strlen(defaults_dump);

    cr_assert(eq(int, cfg_dump(tg, 2, buf, sizeof(buf)), n));
    cr_assert(eq(str, buf, (char *)defaults_dump));
    cr_assert(eq(int, cfg_dump(tg, 2, NULL, 0), n));
    cr_assert(eq(int, cfg_dump(tg, 2, buf, (size_t)n + 1), n));
    cr_assert(eq(int, cfg_dump(tg, 2, buf, (size_t)n), -ERANGE));
    cr_assert(eq(int, cfg_dump(tg, 0, buf, sizeof(buf)), 0));
    cr_assert(eq(str, buf, ""));
}

CFG_TEST(dump_output_loads_back)
{
    char path[64], first[1024], second[1024];

    cr_assert(eq(int, set("brokerRole", "SLAVE"), 0));
    cr_assert(eq(int, set("autoCreateTopicEnable", "false"), 0));
    cr_assert(eq(int, set("namesrvAddr", "10.0.0.1:9876;10.0.0.2:9876"), 0));
    cr_assert(cfg_dump(tg, 2, first, sizeof(first)) > 0, "cfg_dump returned nothing");

    cfg_teardown();
    cfg_setup();
    cr_assert(ne(str, (char *)defaults_dump, first), "the values above must differ from defaults");
    cr_assert(eq(int, load_text(path, sizeof(path), first), 0), "%s", err);
    cr_assert(cfg_dump(tg, 2, second, sizeof(second)) > 0, "cfg_dump returned nothing");
    cr_assert(eq(str, second, first));
    unlink(path);
}
