/*
 * storetest.c - helpers shared by the store tests (see storetest.h).
 */
#include "storetest.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/errors.h"

char *
st_tmpdir(const char *tag)
{
    const char *base = getenv("TMPDIR");
    char *path;

    if (base == NULL || base[0] == '\0')
        base = "/tmp";
    cr_assert(lt(int, 0, asprintf(&path, "%s/spk-%s-XXXXXX", base, tag)));
    cr_assert(ne(ptr, mkdtemp(path), NULL), "mkdtemp %s: %s", path, strerror(errno));
    return path;
}

void
st_rmrf(const char *path)
{
    struct stat st;
    DIR *d;
    struct dirent *e;

    if (lstat(path, &st) != 0) {
        cr_assert(eq(int, errno, ENOENT), "lstat %s: %s", path, strerror(errno));
        return;
    }
    if (!S_ISDIR(st.st_mode)) {
        cr_assert(eq(int, unlink(path), 0), "unlink %s: %s", path, strerror(errno));
        return;
    }
    d = opendir(path);
    cr_assert(ne(ptr, d, NULL), "opendir %s: %s", path, strerror(errno));
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char *sub = st_path(path, e->d_name);
        st_rmrf(sub);
        free(sub);
    }
    closedir(d);
    cr_assert(eq(int, rmdir(path), 0), "rmdir %s: %s", path, strerror(errno));
}

char *
st_tmpdir_fast(const char *tag)
{
    const char *base = getenv("SPK_TEST_FASTDIR");
    struct stat st;
    char *path;

    if (base == NULL || base[0] == '\0') {
        base = "/dev/shm";
        if (stat(base, &st) != 0 || !S_ISDIR(st.st_mode) || access(base, W_OK) != 0)
            return st_tmpdir(tag);
    }
    cr_assert(lt(int, 0, asprintf(&path, "%s/spk-%s-XXXXXX", base, tag)));
    cr_assert(ne(ptr, mkdtemp(path), NULL), "mkdtemp %s: %s", path, strerror(errno));
    return path;
}

char *
st_path(const char *dir, const char *name)
{
    char *p;

    cr_assert(lt(int, 0, asprintf(&p, "%s/%s", dir, name)));
    return p;
}

void
st_copytree(const char *src, const char *dst)
{
    struct stat st;
    DIR *d;
    struct dirent *e;

    cr_assert(eq(int, lstat(src, &st), 0), "lstat %s: %s", src, strerror(errno));
    if (!S_ISDIR(st.st_mode)) {
        size_t len;
        uint8_t *buf = st_read_file(src, &len);
        st_write_file(dst, buf, len);
        free(buf);
        return;
    }
    cr_assert(eq(int, mkdir(dst, 0755), 0), "mkdir %s: %s", dst, strerror(errno));
    d = opendir(src);
    cr_assert(ne(ptr, d, NULL), "opendir %s: %s", src, strerror(errno));
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char *s = st_path(src, e->d_name), *t = st_path(dst, e->d_name);
        st_copytree(s, t);
        free(s);
        free(t);
    }
    closedir(d);
}

uint8_t *
st_read_file(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    uint8_t *buf;
    size_t got = 0;

    *len = 0;
    if (fd == -1) {
        cr_assert(eq(int, errno, ENOENT), "open %s: %s", path, strerror(errno));
        return NULL;
    }
    cr_assert(eq(int, fstat(fd, &st), 0));
    buf = malloc((size_t)st.st_size + 1);
    cr_assert(ne(ptr, buf, NULL));
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        cr_assert(lt(sz, 0, (size_t)(n > 0 ? n : 0)), "read %s: %s", path, strerror(errno));
        got += (size_t)n;
    }
    close(fd);
    *len = got;
    return buf;
}

void
st_write_file(const char *path, const void *buf, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

    cr_assert(ne(int, fd, -1), "create %s: %s", path, strerror(errno));
    if (len > 0)
        cr_assert(eq(int, (int)write(fd, buf, len), (int)len), "write %s", path);
    cr_assert(eq(int, close(fd), 0));
}

void
st_pwrite_file(const char *path, const void *buf, size_t len, uint64_t off)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);

    cr_assert(ne(int, fd, -1), "open %s: %s", path, strerror(errno));
    cr_assert(eq(int, (int)pwrite(fd, buf, len, (off_t)off), (int)len), "pwrite %s", path);
    cr_assert(eq(int, close(fd), 0));
}

int
st_exists(const char *path)
{
    struct stat st;

    return lstat(path, &st) == 0;
}

void
st_cfg_init(struct st_cfg *c, const char *dir, int64_t clog_size, int flush)
{
    size_t n;
    char err[CFG_ERR_MAX];
    int rc;

    memset(c, 0, sizeof(*c));
    c->t.defs = store_config_table(&n);
    c->t.n = n;
    c->t.obj = &c->cfg;
    cr_assert(eq(int, cfg_set_defaults(&c->t), 0));
    rc = cfg_set(&c->t, 1, "storePathRootDir", dir, err, sizeof(err));
    cr_assert(eq(int, rc, 0), "storePathRootDir: %s", err);
    c->cfg.flushDiskType = flush;
    c->cfg.mappedFileSizeCommitLog = clog_size;
    c->cfg.mappedFileSizeConsumeQueue = 1000 * 20;
    /* A segment must hold maxMessageSize + 64 KiB: small messages make
     * small segments (and frequent roll-overs) possible. */
    c->cfg.maxMessageSize = ST_MAX_MESSAGE;
    c->cfg.maxHashSlotNum = 64;
    c->cfg.maxIndexNum = 256;
    c->cfg.syncFlushTimeout = 5000;
    c->cfg.maxTransferCountOnMessageInMemory = STORE_MAX_BATCH;
    c->cfg.maxTransferBytesOnMessageInMemory = 4 << 20;
    /* Nothing may be deleted behind the tests' back: no expiry, no forced
     * clean-up, and the largest ratios the table accepts. */
    c->cfg.fileReservedTime = 100000;
    c->cfg.cleanFileForciblyEnable = 0;
    c->cfg.diskMaxUsedSpaceRatio = 95;
    c->cfg.diskSpaceCleanForciblyRatio = 85;
    c->cfg.diskSpaceWarningLevelRatio = 90;
}

void
st_cfg_free(struct st_cfg *c)
{
    cfg_free(&c->t);
}

struct store *
st_open(const struct st_cfg *c, struct store_open_info *info)
{
    struct store *s = NULL;
    struct store_open_info dummy;
    char err[512] = "";
    int rc = store_open(&c->cfg, &s, info ? info : &dummy, err, sizeof(err));

    cr_assert(eq(int, rc, 0), "store_open(%s): %s: %s", c->cfg.storePathRootDir, spk_strerror(rc),
              err);
    cr_assert(ne(ptr, s, NULL));
    return s;
}

void
st_wait_dispatched(struct store *s)
{
    struct timespec ts = {0, 1000000};

    for (int i = 0; i < 10000; i++) {
        if (store_dispatched(s) >= store_written(s))
            return;
        nanosleep(&ts, NULL);
    }
    cr_assert(ge(u64, store_dispatched(s), store_written(s)), "dispatch did not catch up");
}

size_t
st_body_len(uint32_t seq, size_t base, size_t spread)
{
    return base + (spread ? ((size_t)seq * 7919u) % spread : 0);
}

void
st_body_fill(uint32_t seq, uint8_t *buf, size_t len)
{
    char head[32];
    int n = snprintf(head, sizeof(head), "seq=%u;", seq);
    uint32_t x = seq * 2654435761u + 1;

    for (size_t i = 0; i < len; i++) {
        x = x * 1103515245u + 12345u;
        buf[i] = i < (size_t)n ? (uint8_t)head[i] : (uint8_t)(x >> 16);
    }
}

int
st_body_ok(uint32_t seq, const uint8_t *buf, size_t len)
{
    uint8_t *want = malloc(len ? len : 1);
    int ok;

    st_body_fill(seq, want, len);
    ok = memcmp(want, buf, len) == 0;
    free(want);
    return ok;
}

struct rec_msg
st_msg(const char *topic, int32_t qid, const void *body, size_t body_len, const char *props,
       size_t props_len)
{
    struct rec_msg m;

    memset(&m, 0, sizeof(m));
    m.topic = topic;
    m.topic_len = strlen(topic);
    m.queue_id = qid;
    m.body = body;
    m.body_len = body_len;
    m.props = props;
    m.props_len = props_len;
    m.born_ts = 1700000000000;
    memcpy(m.born_host, (const uint8_t[]){127, 0, 0, 1}, 4);
    m.born_host_len = 4;
    m.born_port = 40000;
    memcpy(m.store_host, (const uint8_t[]){127, 0, 0, 1}, 4);
    m.store_host_len = 4;
    m.store_port = 10911;
    return m;
}

int
st_get_one(struct store *s, const char *topic, int32_t qid, uint64_t qoff, uint8_t *buf,
           size_t buflen, struct rec_view *v, uint64_t *phys)
{
    static struct store_get_result res; /* large: keep it off the stack */
    const char *why = NULL;
    int rc, found = 0;

    memset(&res, 0, sizeof(res));
    rc = store_get(s, topic, qid, qoff, 1, 1 << 20, NULL, &res);
    if (rc == 0 && res.status == STORE_FOUND && res.count >= 1) {
        cr_assert(le(sz, (size_t)res.msgs[0].len, buflen));
        memcpy(buf, res.msgs[0].data, res.msgs[0].len);
        if (phys)
            *phys = res.msgs[0].phys_off;
        int prc = rec_parse(buf, res.msgs[0].len, res.msgs[0].phys_off, REC_CHECK_CRC, v, &why);
        cr_assert(eq(int, prc, (int)res.msgs[0].len),
                  "store_get returned an invalid record at %s-%d@%llu: %s", topic, qid,
                  (unsigned long long)qoff, why ? why : "");
        cr_assert(eq(u64, res.msgs[0].queue_off, qoff));
        cr_assert(eq(u64, v->queue_off, qoff));
        found = 1;
    }
    if (rc == 0)
        store_get_release(&res);
    return found;
}

/* Becomes root of a private mount namespace (or of a user namespace when
 * that is all we may do); returns 0 or -errno. */
int
st_private_mounts(void)
{
    uid_t uid = getuid();
    gid_t gid = getgid();

    if (unshare(CLONE_NEWNS) != 0) {
        char map[64];
        int fd;

        if (unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0)
            return -errno;
        fd = open("/proc/self/setgroups", O_WRONLY);
        if (fd >= 0) {
            (void)!write(fd, "deny", 4);
            close(fd);
        }
        snprintf(map, sizeof(map), "0 %u 1", (unsigned)uid);
        fd = open("/proc/self/uid_map", O_WRONLY);
        if (fd < 0 || write(fd, map, strlen(map)) < 0)
            return -errno;
        close(fd);
        snprintf(map, sizeof(map), "0 %u 1", (unsigned)gid);
        fd = open("/proc/self/gid_map", O_WRONLY);
        if (fd < 0 || write(fd, map, strlen(map)) < 0)
            return -errno;
        close(fd);
    }
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
        return -errno;
    return 0;
}

