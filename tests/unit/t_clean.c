/*
 * t_clean.c - clean-up of expired CommitLog segments (STORE.md 9) and the
 * rule that a pinned view outlives the deletion of its segment.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/errors.h"
#include "storetest.h"

#define CLOG_SIZE (ST_MAX_MESSAGE + 65536 + 8) /* the smallest segment allowed */
#define NMSG 400

static struct store *
fill(struct st_cfg *c, const char *dir, uint64_t *phys_of_first)
{
    struct store *s;
    uint8_t body[600];

    st_cfg_init(c, dir, CLOG_SIZE, STORE_ASYNC_FLUSH);
    cr_assert_eq(cfg_set(&c->t, 1, "fileReservedTime", "0", NULL, 0), 0);
    s = st_open(c, NULL);
    for (uint32_t i = 0; i < NMSG; i++) {
        struct store_put_result r;
        st_body_fill(i, body, sizeof(body));
        struct rec_msg m = st_msg("CleanT", 0, body, sizeof(body), NULL, 0);
        cr_assert_eq(store_put(s, &m, &r), 0);
        if (i == 0)
            *phys_of_first = r.phys_off;
    }
    cr_assert_eq(store_flush_all(s), 0);
    st_wait_dispatched(s);
    return s;
}

Test(clean, expired_segments_go_but_never_the_last)
{
    char *dir = st_tmpdir("clean");
    struct st_cfg c;
    uint64_t first;
    struct store *s = fill(&c, dir, &first);
    uint64_t min0, max0, min1, max1;

    cr_assert_eq(store_queue_bounds(s, "CleanT", 0, &min0, &max0), 0);
    cr_assert_eq(min0, 0);
    cr_assert_eq(max0, NMSG);
    uint64_t written = store_written(s);
    int deleted = store_clean_now(s, 1);
    /* 400 records of ~720 B over 73 KiB segments: several segments, all
     * but the last expire with fileReservedTime=0; at most
     * deleteFileBatchMax (10) go per round. */
    cr_assert_gt(deleted, 0, "nothing deleted");
    cr_assert_gt(store_min_offset(s), 0);
    cr_assert_lt(store_min_offset(s), written, "the last segment must stay");
    while (store_clean_now(s, 1) > 0)
        ;
    cr_assert_eq(store_min_offset(s), written - written % CLOG_SIZE,
                 "everything but the last segment is gone");

    /* The queue's min moved to the first message still in the log, and a
     * read below it says so. */
    cr_assert_eq(store_queue_bounds(s, "CleanT", 0, &min1, &max1), 0);
    cr_assert_gt(min1, 0);
    cr_assert_eq(max1, NMSG);
    static struct store_get_result g;
    cr_assert_eq(store_get(s, "CleanT", 0, 0, 32, 0, NULL, &g), 0);
    cr_assert_eq(g.status, STORE_OFFSET_TOO_SMALL);
    cr_assert_eq(g.next_begin_offset, min1);
    cr_assert_eq(store_get(s, "CleanT", 0, min1, 32, 0, NULL, &g), 0);
    cr_assert_eq(g.status, STORE_FOUND);
    cr_assert_geq(g.msgs[0].phys_off, store_min_offset(s));
    struct rec_view v;
    cr_assert_gt(rec_parse(g.msgs[0].data, g.msgs[0].len, g.msgs[0].phys_off, REC_CHECK_CRC,
                           &v, NULL), 0);
    cr_assert(st_body_ok((uint32_t)min1, v.body, v.body_len));
    store_get_release(&g);

    /* Deleted segment files are gone from disk. */
    char name[64];
    snprintf(name, sizeof(name), "commitlog/%020llu", (unsigned long long)first);
    char *p = st_path(dir, name);
    cr_assert_not(st_exists(p), "%s still exists", p);
    free(p);

    cr_assert_eq(store_close(s), 0);
    /* Reopen: the minimum survives and recovery is clean. */
    struct store_open_info info;
    s = st_open(&c, &info);
    cr_assert_eq(store_min_offset(s), written - written % CLOG_SIZE);
    cr_assert_eq(store_queue_bounds(s, "CleanT", 0, &min0, &max0), 0);
    cr_assert_eq(min0, min1);
    cr_assert_eq(max0, NMSG);
    cr_assert_eq(store_close(s), 0);
    st_cfg_free(&c);
    st_rmrf(dir);
    free(dir);
}

Test(clean, a_pinned_view_outlives_its_deleted_segment)
{
    char *dir = st_tmpdir("cleanpin");
    struct st_cfg c;
    uint64_t first;
    struct store *s = fill(&c, dir, &first);
    struct store_msg_view v;
    void *pin;
    uint8_t copy[2048];

    cr_assert_eq(store_get_by_offset(s, first, &v, &pin), 0);
    cr_assert_leq(v.len, sizeof(copy));
    memcpy(copy, v.data, v.len);
    cr_assert_gt(store_clean_now(s, 1), 0);
    cr_assert_gt(store_min_offset(s), first, "the first segment was deleted");
    /* The mapping is still there (ASan would catch a read of unmapped
     * memory as a SEGV), and the bytes are unchanged. */
    cr_assert_eq(memcmp(copy, v.data, v.len), 0);
    store_view_release(pin);
    cr_assert_eq(store_get_by_offset(s, first, &v, &pin), SPK_ENOTFOUND);
    cr_assert_eq(store_close(s), 0);
    st_cfg_free(&c);
    st_rmrf(dir);
    free(dir);
}

Test(clean, expired_segments_wait_for_delete_when)
{
    char *dir = st_tmpdir("cleanhour");
    struct st_cfg c;
    uint64_t first;
    struct store *s = fill(&c, dir, &first);
    char now_hour[8], other_hour[8];
    time_t t = time(NULL);
    struct tm tm;

    localtime_r(&t, &tm);
    snprintf(now_hour, sizeof(now_hour), "%02d", tm.tm_hour);
    snprintf(other_hour, sizeof(other_hour), "%02d", (tm.tm_hour + 12) % 24);
    cr_assert_eq(store_close(s), 0);

    /* Expired (fileReservedTime=0) but not the hour: nothing goes (the
     * disk is far below diskMaxUsedSpaceRatio). */
    cr_assert_eq(cfg_set(&c.t, 1, "deleteWhen", other_hour, NULL, 0), 0);
    s = st_open(&c, NULL);
    cr_assert_eq(store_clean_now(s, 0), 0);
    cr_assert_eq(store_min_offset(s), first);
    cr_assert_eq(store_close(s), 0);

    /* The hour listed (among others, RocketMQ's ';' form): they go. */
    char both[32];
    /* The next hour too, in case the clock turns over during the test. */
    snprintf(both, sizeof(both), "%s;%s;%02d", other_hour, now_hour, (tm.tm_hour + 1) % 24);
    cr_assert_eq(cfg_set(&c.t, 1, "deleteWhen", both, NULL, 0), 0);
    s = st_open(&c, NULL);
    cr_assert_gt(store_clean_now(s, 0), 0);
    cr_assert_gt(store_min_offset(s), first);
    cr_assert_eq(store_close(s), 0);
    st_cfg_free(&c);
    st_rmrf(dir);
    free(dir);
}

Test(clean, nothing_is_deleted_before_it_expires)
{
    char *dir = st_tmpdir("cleankeep");
    struct st_cfg c;
    uint64_t first;
    struct store *s = fill(&c, dir, &first);

    cr_assert_eq(store_close(s), 0);
    cr_assert_eq(cfg_set(&c.t, 1, "fileReservedTime", "72", NULL, 0), 0);
    s = st_open(&c, NULL);
    cr_assert_eq(store_clean_now(s, 1), 0);
    cr_assert_eq(store_min_offset(s), first);
    cr_assert_eq(store_close(s), 0);
    st_cfg_free(&c);
    st_rmrf(dir);
    free(dir);
}

/*
 * The disk-usage rules on a real 4 MiB tmpfs (run in a child process with
 * its own mount namespace): above diskSpaceCleanForciblyRatio, segments go
 * although they have not expired; above diskSpaceWarningLevelRatio, puts
 * are refused with SPK_EDISKFULL until space returns. Plain C, no Criterion
 * calls: returns 0, or 1 with a reason in <msg>.
 */
static int
disk_usage_scenario(const char *mnt, char *msg, size_t msglen)
{
    char root[512], filler[512], err[512];
    struct st_cfg c;
    struct store *s;
    struct store_put_result r;
    uint8_t body[600];
    int rc, n, fd;

    snprintf(root, sizeof(root), "%s/store", mnt);
    snprintf(filler, sizeof(filler), "%s/filler", mnt);
    st_cfg_init(&c, root, CLOG_SIZE, STORE_ASYNC_FLUSH);
    if (cfg_set(&c.t, 1, "fileReservedTime", "72", err, sizeof(err)) != 0 ||
        cfg_set(&c.t, 1, "diskSpaceCleanForciblyRatio", "30", err, sizeof(err)) != 0 ||
        cfg_set(&c.t, 1, "diskSpaceWarningLevelRatio", "35", err, sizeof(err)) != 0 ||
        cfg_set(&c.t, 1, "cleanFileForciblyEnable", "true", err, sizeof(err)) != 0 ||
        cfg_set(&c.t, 1, "diskMaxUsedSpaceRatio", "95", err, sizeof(err)) != 0 ||
        cfg_set(&c.t, 1, "deleteWhen", "25", err, sizeof(err)) != 0) {
        snprintf(msg, msglen, "config: %s", err);
        return 1;
    }
    rc = store_open(&c.cfg, &s, NULL, err, sizeof(err));
    if (rc != 0) {
        snprintf(msg, msglen, "store_open: %s", err);
        return 1;
    }
    memset(body, 'u', sizeof(body));
    for (int i = 0; i < 1500; i++) { /* ~1 MiB of log: about 14 segments */
        struct rec_msg m = st_msg("DiskT", 0, body, sizeof(body), NULL, 0);
        if ((rc = store_put(s, &m, &r)) != 0) {
            snprintf(msg, msglen, "put %d: %s", i, spk_strerror(rc));
            return 1;
        }
    }
    if ((rc = store_flush_all(s)) != 0) {
        snprintf(msg, msglen, "flush: %s", spk_strerror(rc));
        return 1;
    }
    /* A 2 MiB file of someone else's keeps usage above both ratios. */
    fd = open(filler, O_WRONLY | O_CREAT, 0644);
    if (fd < 0 || posix_fallocate(fd, 0, 2 << 20) != 0) {
        snprintf(msg, msglen, "cannot write the filler: %s", strerror(errno));
        return 1;
    }
    close(fd);
    uint64_t min0 = store_min_offset(s);
    n = store_clean_now(s, 0);
    if (n <= 0 || store_min_offset(s) <= min0) {
        snprintf(msg, msglen, "no segment was deleted above diskSpaceCleanForciblyRatio (%d)", n);
        return 1;
    }
    struct rec_msg m = st_msg("DiskT", 0, body, sizeof(body), NULL, 0);
    rc = store_put(s, &m, &r);
    if (rc != SPK_EDISKFULL) {
        snprintf(msg, msglen, "put above diskSpaceWarningLevelRatio: %s, want SPK_EDISKFULL",
                 rc == 0 ? "accepted" : spk_strerror(rc));
        return 1;
    }
    /* Space comes back: the next round lifts the refusal. */
    unlink(filler);
    store_clean_now(s, 0);
    rc = store_put(s, &m, &r);
    if (rc != 0) {
        snprintf(msg, msglen, "put after space returned: %s", spk_strerror(rc));
        return 1;
    }
    if ((rc = store_close(s)) != 0) {
        snprintf(msg, msglen, "close: %s", spk_strerror(rc));
        return 1;
    }
    st_cfg_free(&c);
    snprintf(msg, msglen, "%d segments deleted before expiry", n);
    return 0;
}

Test(clean, disk_usage_ratios_on_a_small_tmpfs, .timeout = 60)
{
    char *base = st_tmpdir("cleandisk");
    char *mnt = st_path(base, "mnt");
    char msg[600] = "";
    int pfd[2], status;
    pid_t pid;

    cr_assert_eq(mkdir(mnt, 0755), 0);
    cr_assert_eq(pipe(pfd), 0);
    pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        int code, rc;
        close(pfd[0]);
        rc = st_private_mounts();
        if (rc == 0 && mount("tmpfs", mnt, "tmpfs", 0, "size=4m") != 0)
            rc = -errno;
        if (rc != 0) {
            snprintf(msg, sizeof(msg), "cannot mount a tmpfs here: %s", strerror(-rc));
            code = 77;
        } else {
            code = disk_usage_scenario(mnt, msg, sizeof(msg));
        }
        (void)!write(pfd[1], msg, strlen(msg));
        close(pfd[1]);
        _exit(code);
    }
    close(pfd[1]);
    size_t got = 0;
    ssize_t k;
    while ((k = read(pfd[0], msg + got, sizeof(msg) - 1 - got)) > 0)
        got += (size_t)k;
    msg[got] = '\0';
    close(pfd[0]);
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    st_rmrf(base);
    free(mnt);
    free(base);
    cr_assert(WIFEXITED(status), "the child died: %s", msg);
    if (WEXITSTATUS(status) == 77)
        cr_skip("%s", msg);
    cr_assert_eq(WEXITSTATUS(status), 0, "%s", msg);
}
