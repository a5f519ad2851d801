/*
 * t_meta.c - unit tests for the metadata files the broker rewrites at run
 * time (consumerOffset.json, topics.json, subscriptionGroup.json,
 * delayOffset.json): the seal rule of config.h, single-bit flips, the
 * .bak fallback and refusal, and writes that fail part-way.
 *
 *   seal_*        the exact seal rule (an independent zlib CRC), forms
 *                 that cannot be sealed, files without a seal (written by
 *                 RocketMQ) loading unchecked;
 *   flip_*        every single-bit flip of each file, as the broker writes
 *                 it, is refused by its loader (INV-4); with a good .bak
 *                 the loader uses it, and the damaged file goes aside as
 *                 .corrupt so the next save keeps the good backup (INV-5);
 *   write_fails_* a persist that fails at its Nth fsync, link, rename,
 *                 directory sync or write (RELIABILITY.md T6 style), with
 *                 ENOSPC and with RLIMIT_FSIZE (EFBIG): the file on disk is
 *                 the complete old or new version, never missing or torn,
 *                 and the table stays dirty so the next persist retries.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "broker/groups.h"
#include "broker/offsets.h"
#include "broker/topics.h"
#include "common/config.h"
#include "common/errors.h"
#include "common/log.h"
#include "store/storeio.h"
#include "storetest.h"

#define CLUSTER "DefaultCluster"
#define BROKER "broker-a"

static char *g_dir;

static void
setup(void)
{
    g_dir = st_tmpdir_fast("meta");
    /* Thousands of refused loads below, each logged at WARN. */
    spk_log_set_level(SPK_LOG_ERROR);
}

static void
teardown(void)
{
    sio_fault_clear();
    st_rmrf(g_dir);
    free(g_dir);
    spk_log_set_level(SPK_LOG_INFO);
}

TestSuite(meta, .init = setup, .fini = teardown);

static char *
path_of(const char *name)
{
    return st_path(g_dir, name);
}

/* The whole file as a NUL-terminated string (NULL if missing); free(). */
static char *
slurp(const char *name, size_t *len)
{
    char *p = path_of(name);
    size_t n;
    uint8_t *buf = st_read_file(p, &n);
    char *s;

    free(p);
    if (!buf)
        return NULL;
    s = malloc(n + 1);
    memcpy(s, buf, n);
    s[n] = '\0';
    free(buf);
    if (len)
        *len = n;
    return s;
}

static void
put(const char *name, const void *buf, size_t len)
{
    char *p = path_of(name);

    st_write_file(p, buf, len);
    free(p);
}

static void
rm(const char *name)
{
    char *p = path_of(name);

    unlink(p);
    free(p);
}

/* ------------------------------------------------------------------ */
/* The rule                                                            */
/* ------------------------------------------------------------------ */

Test(meta, seal_rule_is_crc32_of_the_prefix)
{
    const char *in = "{\"offsetTable\":{\"T@g\":{0:12,1:3}}}";
    size_t len = strlen(in), plen = len - 1;
    char *text = strdup(in), want[64];
    uLong crc = crc32(0L, (const Bytef *)in, (uInt)plen);

    cr_assert_eq(cfg_json_seal(&text, &len), 0);
    snprintf(want, sizeof(want), ",\"crc32\":\"%08lx\"}", crc);
    cr_assert_eq(len, plen + CFG_SEAL_LEN);
    cr_assert_eq(memcmp(text, in, plen), 0, "the prefix is the text without its last brace");
    cr_assert_str_eq(text + plen, want);
    cr_assert_eq(cfg_json_check_seal(text, len, NULL, 0), 1);
    free(text);
}

Test(meta, seal_refuses_what_it_cannot_seal)
{
    const char *bad[] = {"", "}", "{}", "{ \n}", "[1,2]", "{\"a\":1} "};
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *t = strdup(bad[i]);
        size_t len = strlen(t);
        cr_assert_eq(cfg_json_seal(&t, &len), -EINVAL, "'%s'", bad[i]);
        cr_assert_eq(len, strlen(bad[i]));
        free(t);
    }
}

Test(meta, unsealed_files_load_unchecked)
{
    /* As Apache RocketMQ writes it: pretty-printed, no crc32 member. */
    const char *java = "{\n\t\"offsetTable\":{\n\t\t\"T@g\":{0:7,1:9\n\t\t}\n\t}\n}";
    struct offsets *o = NULL;
    char err[512] = "";
    int64_t off = 0;

    cr_assert_eq(cfg_json_check_seal(java, strlen(java), NULL, 0), 0);
    put("consumerOffset.json", java, strlen(java));
    cr_assert_eq(offsets_open(g_dir, &o, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(offsets_query(o, "g", "T", 1, &off), 0);
    cr_assert_eq(off, 9);
    /* The next write seals it. */
    cr_assert_eq(offsets_commit(o, "g", "T", 1, 10), 0);
    cr_assert_eq(offsets_persist(o), 0);
    offsets_close(o);
    {
        size_t len;
        char *t = slurp("consumerOffset.json", &len);
        cr_assert_eq(cfg_json_check_seal(t, len, NULL, 0), 1, "%s", t);
        free(t);
    }
}

Test(meta, every_flip_of_a_sealed_text_is_refused)
{
    const char *in = "{\"dataVersion\":{\"counter\":3},\"t\":{\"A\":{\"q\":8,\"n\":\"A\"}}}";
    size_t len = strlen(in), pos;
    char *text = strdup(in);
    unsigned bit;
    int rc;

    cr_assert_eq(cfg_json_seal(&text, &len), 0);
    for (pos = 0; pos < len; pos++) {
        for (bit = 0; bit < 8; bit++) {
            char why[256] = "";
            text[pos] ^= (char)(1u << bit);
            rc = cfg_json_check_seal(text, len, why, sizeof(why));
            text[pos] ^= (char)(1u << bit);
            cr_assert_eq(rc, SPK_ECORRUPT, "flip of bit %u at byte %zu of %zu not seen", bit, pos,
                         len);
            cr_assert(why[0] != '\0');
        }
    }
    free(text);
}

/* ------------------------------------------------------------------ */
/* Flips in the files the broker writes                                */
/* ------------------------------------------------------------------ */

/* The loaders under test, behind one signature: open <dir>, return the
 * open's result, close whatever was opened, and tell which value of the
 * file's marker setting was loaded (*marker). */
typedef int (*open_fn)(int64_t *marker, char *err, size_t errlen);

static int
open_offsets(int64_t *marker, char *err, size_t errlen)
{
    struct offsets *o = NULL;
    int rc = offsets_open(g_dir, &o, err, errlen);

    if (rc == 0) {
        if (offsets_query(o, "G1", "Topic1", 3, marker) != 0)
            *marker = -1;
        offsets_close(o);
    }
    return rc;
}

static int
open_topics(int64_t *marker, char *err, size_t errlen)
{
    struct topics *t = NULL;
    struct topic_config tc;
    int rc = topics_open(g_dir, CLUSTER, BROKER, 1, 8, &t, err, errlen);

    if (rc == 0) {
        *marker = topics_get(t, "Topic1", &tc) == 0 ? tc.write_queues : -1;
        /* topics_close() persists only when dirty: nothing changes here */
        topics_close(t);
    }
    return rc;
}

static int
open_groups(int64_t *marker, char *err, size_t errlen)
{
    struct groups *g = NULL;
    struct group_config gc;
    int rc = groups_open(g_dir, &g, err, errlen);

    if (rc == 0) {
        *marker = groups_get(g, "G1", &gc) == 0 ? gc.retry_max : -1;
        groups_close(g);
    }
    return rc;
}

/* Writes the file twice through its module: the marker is 5, then 6. */
static void
write_offsets_twice(void)
{
    struct offsets *o = NULL;
    char err[512] = "";

    cr_assert_eq(offsets_open(g_dir, &o, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(offsets_commit(o, "G1", "Topic1", 0, 1234567), 0);
    cr_assert_eq(offsets_commit(o, "G2", "%RETRY%G2", 0, -1), 0);
    cr_assert_eq(offsets_commit(o, "G1", "Topic1", 3, 5), 0);
    cr_assert_eq(offsets_persist(o), 0);
    cr_assert_eq(offsets_commit(o, "G1", "Topic1", 3, 6), 0);
    cr_assert_eq(offsets_persist(o), 0);
    offsets_close(o);
}

static void
write_topics_twice(void)
{
    struct topics *t = NULL;
    struct topic_config tc;
    char err[512] = "";

    cr_assert_eq(topics_open(g_dir, CLUSTER, BROKER, 1, 8, &t, err, sizeof(err)), 0, "%s", err);
    memset(&tc, 0, sizeof(tc));
    snprintf(tc.name, sizeof(tc.name), "Topic1");
    tc.read_queues = 5;
    tc.write_queues = 5;
    tc.perm = 6;
    cr_assert_eq(topics_put(t, &tc), 0);
    tc.write_queues = 6;
    cr_assert_eq(topics_put(t, &tc), 0);
    topics_close(t);
}

static void
write_groups_twice(void)
{
    struct groups *g = NULL;
    char err[512] = "", body[256];
    int v;

    cr_assert_eq(groups_open(g_dir, &g, err, sizeof(err)), 0, "%s", err);
    for (v = 5; v <= 6; v++) {
        snprintf(body, sizeof(body), "{\"groupName\":\"G1\",\"retryMaxTimes\":%d}", v);
        cr_assert_eq(groups_put_json(g, body, strlen(body), NULL, err, sizeof(err)), 0, "%s",
                     err);
    }
    groups_close(g);
}

/*
 * Flips every bit of <file> in turn (every <stride>th bit when a .bak is
 * present: each of those loads also renames and restores files). With no
 * .bak every load must be refused naming the file; with the .bak (marker
 * 5) every load must come from it, and the damaged file must go aside.
 */
static void
flip_all(const char *file, open_fn open_it, int with_bak, unsigned stride)
{
    char bak[256], corrupt[256], err[1024];
    char *good, *good_bak;
    size_t len, blen, pos, nflips = 0;
    unsigned bit;
    int64_t marker;
    int rc;

    snprintf(bak, sizeof(bak), "%s.bak", file);
    snprintf(corrupt, sizeof(corrupt), "%s.corrupt", file);
    good = slurp(file, &len);
    good_bak = slurp(bak, &blen);
    cr_assert_not_null(good);
    cr_assert_not_null(good_bak);
    cr_assert_eq(cfg_json_check_seal(good, len, NULL, 0), 1, "%s is not sealed: %s", file, good);
    marker = 0;
    cr_assert_eq(open_it(&marker, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(marker, 6, "%s: the untouched file reads %lld", file, (long long)marker);
    if (!with_bak)
        rm(bak);
    for (pos = 0; pos < len; pos++) {
        for (bit = 0; bit < 8; bit++) {
            if ((pos * 8 + bit) % stride != 0)
                continue;
            good[pos] ^= (char)(1u << bit);
            put(file, good, len);
            good[pos] ^= (char)(1u << bit);
            err[0] = '\0';
            marker = 0;
            rc = open_it(&marker, err, sizeof(err));
            if (!with_bak) {
                cr_assert_eq(rc, SPK_ECORRUPT,
                             "%s: flip of bit %u at byte %zu loaded (rc %d, marker %lld)", file,
                             bit, pos, rc, (long long)marker);
                cr_assert_not_null(strstr(err, file), "the refusal names the file: %s", err);
            } else {
                cr_assert_eq(rc, 0, "%s: bit %u at byte %zu: %s", file, bit, pos, err);
                cr_assert_eq(marker, 5, "%s: bit %u at byte %zu: marker %lld, not the .bak's",
                             file, bit, pos, (long long)marker);
                char *cp = path_of(corrupt);
                int aside = st_exists(cp);
                free(cp);
                cr_assert(aside, "%s: the damaged file was not put aside", file);
                rm(corrupt);
            }
            nflips++;
        }
    }
    cr_assert_gt(nflips, 100);
    put(file, good, len);
    put(bak, good_bak, blen);
    free(good);
    free(good_bak);
}

Test(meta, flip_consumer_offsets_every_bit_is_refused, .timeout = 120)
{
    write_offsets_twice();
    flip_all("consumerOffset.json", open_offsets, 0, 1);
}

Test(meta, flip_consumer_offsets_falls_back_to_bak, .timeout = 120)
{
    write_offsets_twice();
    flip_all("consumerOffset.json", open_offsets, 1, 3);
}

Test(meta, flip_topics_every_bit_is_refused, .timeout = 300)
{
    write_topics_twice();
    flip_all("topics.json", open_topics, 0, 1);
}

Test(meta, flip_topics_falls_back_to_bak, .timeout = 120)
{
    write_topics_twice();
    flip_all("topics.json", open_topics, 1, 17);
}

Test(meta, flip_groups_every_bit_is_refused, .timeout = 120)
{
    write_groups_twice();
    flip_all("subscriptionGroup.json", open_groups, 0, 1);
}

Test(meta, flip_groups_falls_back_to_bak, .timeout = 120)
{
    write_groups_twice();
    flip_all("subscriptionGroup.json", open_groups, 1, 5);
}

/* delayOffset.json is written by the broker's send.c; its loader is
 * cfg_json_load() with a decoder: check the text form it writes. */
static int
count_members(void *arg, const cJSON *root, char *err, size_t errlen)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "offsetTable");

    if (!cJSON_IsObject(t)) {
        snprintf(err, errlen, "no offsetTable");
        return SPK_ECORRUPT;
    }
    *(int *)arg = cJSON_GetArraySize(t);
    return 0;
}

Test(meta, flip_delay_offsets_every_bit_is_refused)
{
    char *text = strdup("{\"offsetTable\":{1:5,2:0,3:17,18:1234567890}}");
    char *p = path_of("delayOffset.json"), err[512];
    size_t len = strlen(text), pos;
    unsigned bit;
    int n = 0;

    cr_assert_eq(cfg_json_seal(&text, &len), 0);
    put("delayOffset.json", text, len);
    cr_assert_eq(cfg_json_load(p, count_members, &n, NULL, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(n, 4);
    for (pos = 0; pos < len; pos++) {
        for (bit = 0; bit < 8; bit++) {
            text[pos] ^= (char)(1u << bit);
            put("delayOffset.json", text, len);
            text[pos] ^= (char)(1u << bit);
            cr_assert_eq(cfg_json_load(p, count_members, &n, NULL, err, sizeof(err)),
                         SPK_ECORRUPT, "bit %u at byte %zu", bit, pos);
        }
    }
    free(text);
    free(p);
}

/* ------------------------------------------------------------------ */
/* Writes that fail part-way                                           */
/* ------------------------------------------------------------------ */

/* The committed value of G1/Topic1/3 in the file on disk now, or -1. */
static int64_t
offset_on_disk(void)
{
    int64_t m = -1;
    char err[512] = "";

    cr_assert_eq(open_offsets(&m, err, sizeof(err)), 0, "%s", err);
    return m;
}

/*
 * For each kind of call persist makes, fail its 1st, 2nd, ... call until
 * a persist goes through untouched. After each failure the file must hold
 * the old or the new value (never missing, never torn), and a retry with
 * no fault must write the new one (the table stayed dirty).
 */
Test(meta, write_fails_at_every_step_keeps_old_or_new, .timeout = 60)
{
    static const enum sio_kind kinds[] = {SIO_OPEN, SIO_PWRITE, SIO_FSYNC, SIO_UNLINK,
                                          SIO_RENAME, SIO_DIRSYNC};
    struct offsets *o = NULL;
    char err[512] = "";
    int64_t v = 100, on_disk;
    size_t k;
    unsigned long nth;
    int rc, failures = 0;

    cr_assert_eq(offsets_open(g_dir, &o, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(offsets_commit(o, "G1", "Topic1", 3, v), 0);
    cr_assert_eq(offsets_persist(o), 0);
    for (k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
        for (nth = 1;; nth++) {
            v++;
            cr_assert_eq(offsets_commit(o, "G1", "Topic1", 3, v), 0);
            sio_fault_arm(kinds[k], nth, SIO_FAULT_ONCE, EIO);
            rc = offsets_persist(o);
            sio_fault_clear();
            on_disk = offset_on_disk();
            if (rc == 0) {
                cr_assert_eq(on_disk, v);
                break;
            }
            failures++;
            cr_assert(on_disk == v - 1 || on_disk == v,
                      "kind %zu, call %lu: %lld on disk, expected %lld or %lld", k, nth,
                      (long long)on_disk, (long long)(v - 1), (long long)v);
            cr_assert_eq(offsets_persist(o), 0, "the retry must write");
            cr_assert_eq(offset_on_disk(), v);
        }
    }
    cr_assert_geq(failures, 5, "the faults never fired");
    offsets_close(o);
}

Test(meta, write_fails_with_enospc_keeps_old_file)
{
    struct offsets *o = NULL;
    char err[512] = "", *before, *after;
    int rc;

    cr_assert_eq(offsets_open(g_dir, &o, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(offsets_commit(o, "G1", "Topic1", 3, 41), 0);
    cr_assert_eq(offsets_persist(o), 0);
    before = slurp("consumerOffset.json", NULL);
    cr_assert_eq(offsets_commit(o, "G1", "Topic1", 3, 42), 0);
    sio_fault_arm(SIO_PWRITE, 1, SIO_FAULT_PERSISTENT, ENOSPC);
    rc = offsets_persist(o);
    cr_assert_eq(rc, -ENOSPC);
    cr_assert_eq(offsets_persist(o), -ENOSPC, "still full: still refused");
    after = slurp("consumerOffset.json", NULL);
    cr_assert_str_eq(after, before, "a failed write changed the file");
    cr_assert(st_exists(g_dir) == 1);
    free(after);
    /* Space is back: the commit reaches the disk without anything else. */
    sio_fault_clear();
    cr_assert_eq(offsets_persist(o), 0);
    cr_assert_eq(offset_on_disk(), 42);
    free(before);
    offsets_close(o);
}

/*
 * RLIMIT_FSIZE (what `prlimit --fsize` sets): a write past the limit
 * fails with EFBIG (SIGXFSZ ignored, as a daemon should). In a child, so
 * the limit does not leak into other tests.
 */
Test(meta, write_fails_with_efbig_keeps_old_file)
{
    struct offsets *o = NULL;
    char err[512] = "", *before, *after;
    pid_t pid;
    int st;

    cr_assert_eq(offsets_open(g_dir, &o, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(offsets_commit(o, "G1", "Topic1", 3, 7), 0);
    cr_assert_eq(offsets_persist(o), 0);
    before = slurp("consumerOffset.json", NULL);
    pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        struct rlimit rl;
        char name[48];
        int i, rc;

        signal(SIGXFSZ, SIG_IGN);
        getrlimit(RLIMIT_FSIZE, &rl);
        rl.rlim_cur = 256; /* the file grows past this */
        if (setrlimit(RLIMIT_FSIZE, &rl) != 0)
            _exit(3);
        for (i = 0; i < 40; i++) {
            snprintf(name, sizeof(name), "SomeTopicWithALongName%02d", i);
            offsets_commit(o, "G1", name, 0, 1000000 + i);
        }
        rc = offsets_persist(o);
        _exit(rc == -EFBIG ? 0 : 4);
    }
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %d", st);
    after = slurp("consumerOffset.json", NULL);
    cr_assert_str_eq(after, before, "a write refused by RLIMIT_FSIZE changed the file");
    cr_assert_eq(offset_on_disk(), 7);
    free(after);
    free(before);
    offsets_close(o);
}
