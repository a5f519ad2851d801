/*
 * storeio.c - the store's system-call seam (see storeio.h).
 *
 * Fault injection: for each kind there is a countdown armed by a test.
 * When it reaches the armed call, that call fails with the armed errno
 * without touching the OS; in persistent mode every later call fails too.
 * Counters are atomics because the flush, dispatch and writer threads all
 * come through here.
 *
 * Power-cut simulation (storeio.h, sio_crashsim_start): off unless a test
 * turns it on, and then one relaxed load per call decides. When on, every
 * wrapper that changes a file, a name or durability also records it under
 * cs.lock, so the journal order is the order in which the calls completed.
 * Invariants:
 *   CS-1  A sync is journaled only after the real sync returned 0, and what
 *         it records as durable is content captured BEFORE the real call
 *         was issued: bytes written concurrently are never promoted.
 *   CS-2  Name operations are journaled after they succeeded, under the
 *         lock, so no later D line can precede the operation it covers.
 *   CS-3  Tracked files opened write-only are opened read-write instead, so
 *         their content can be captured with pread.
 */
#include "store/storeio.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct fault {
    atomic_uint delay_ms;    /* sleep before each call (sio_delay_arm) */
    atomic_ulong calls;      /* calls seen since the last clear */
    atomic_ulong fail_at;    /* 0 = not armed */
    atomic_int persistent;
    atomic_int err;
};

static struct fault faults[SIO_NKINDS];
static atomic_int any_armed;

void
sio_fault_arm(enum sio_kind kind, unsigned long nth, enum sio_fault_mode mode, int err)
{
    struct fault *f = &faults[kind];

    atomic_store(&f->err, err);
    atomic_store(&f->persistent, mode == SIO_FAULT_PERSISTENT);
    atomic_store(&f->fail_at, atomic_load(&f->calls) + nth);
    atomic_store(&any_armed, 1);
}

void
sio_fault_clear(void)
{
    for (int i = 0; i < SIO_NKINDS; i++) {
        atomic_store(&faults[i].fail_at, 0);
        atomic_store(&faults[i].persistent, 0);
        atomic_store(&faults[i].calls, 0);
        atomic_store(&faults[i].delay_ms, 0);
    }
    atomic_store(&any_armed, 0);
}

void
sio_delay_arm(enum sio_kind kind, unsigned ms)
{
    atomic_store(&faults[kind].delay_ms, ms);
    atomic_store(&any_armed, 1);
}

unsigned long
sio_calls(enum sio_kind kind)
{
    return atomic_load(&faults[kind].calls);
}

/* Counts a call of <kind>; returns a negative errno if it must fail. */
static int
fault_check(enum sio_kind kind)
{
    struct fault *f = &faults[kind];
    unsigned long n = atomic_fetch_add_explicit(&f->calls, 1, memory_order_relaxed) + 1;

    if (!atomic_load_explicit(&any_armed, memory_order_relaxed))
        return 0;
    unsigned delay = atomic_load(&f->delay_ms);
    if (delay > 0) {
        struct timespec ts = {delay / 1000, (long)(delay % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
            ;
    }
    unsigned long at = atomic_load(&f->fail_at);
    if (at == 0 || n < at)
        return 0;
    if (n == at || atomic_load(&f->persistent))
        return -atomic_load(&f->err);
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Power-cut simulation                                                   */

struct cs_file {
    uint64_t ino;
    uint64_t size;               /* current size as this seam knows it */
    uint64_t dirty_lo, dirty_hi; /* written with pwrite since the last sync */
    unsigned wmaps;              /* writable mappings alive */
    int shadow_fd;               /* <shadow>/d/<fid>, opened on first use */
};

struct cs_map {
    uint8_t *addr;
    size_t len;
    unsigned fid;
    int writable;
};

static atomic_int cs_on;
static struct {
    pthread_mutex_t lock;
    char root[PATH_MAX];
    size_t rootlen;
    char shadow[PATH_MAX];
    int jfd;
    struct cs_file *files; /* indexed by fid; 0 is unused */
    unsigned nfiles, filecap;
    unsigned *fd_fid; /* indexed by fd; 0 = not tracked */
    size_t fdcap;
    struct cs_map *maps;
    size_t nmaps, mapcap;
} cs = {.lock = PTHREAD_MUTEX_INITIALIZER, .jfd = -1};

static inline int
cs_active(void)
{
    return atomic_load_explicit(&cs_on, memory_order_relaxed);
}

/* Path of <path> relative to the root, with doubled and trailing slashes
 * removed ("." for the root); 0 when <path> is outside the root. */
static int
cs_rel(const char *path, char *out, size_t outlen)
{
    size_t k = 0;
    const char *p;

    if (strncmp(path, cs.root, cs.rootlen) != 0 ||
        (path[cs.rootlen] != '/' && path[cs.rootlen] != '\0'))
        return 0;
    for (p = path + cs.rootlen; *p != '\0'; p++) {
        if (*p == '/' && (k == 0 || out[k - 1] == '/'))
            continue;
        if (k + 1 >= outlen)
            return 0;
        out[k++] = *p;
    }
    while (k > 0 && out[k - 1] == '/')
        k--;
    if (k == 0)
        out[k++] = '.';
    out[k] = '\0';
    return 1;
}

/* Appends one journal line with one write(2); the caller holds cs.lock. */
__attribute__((format(printf, 1, 2))) static void
cs_log(const char *fmt, ...)
{
    char line[2 * PATH_MAX + 64];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(line) - 1)
        return;
    line[n++] = '\n';
    /* A journal that cannot be written makes the whole run meaningless:
     * stop here rather than let a test pass on a partial record. */
    if (write(cs.jfd, line, (size_t)n) != n)
        abort();
}

static unsigned
cs_new_file(uint64_t ino, uint64_t size)
{
    if (cs.nfiles + 1 >= cs.filecap) {
        unsigned cap = cs.filecap ? cs.filecap * 2 : 64;
        struct cs_file *n = realloc(cs.files, cap * sizeof(*n));
        if (n == NULL)
            abort();
        cs.files = n;
        cs.filecap = cap;
    }
    if (cs.nfiles == 0)
        cs.nfiles = 1;
    unsigned fid = cs.nfiles++;
    cs.files[fid] = (struct cs_file){.ino = ino, .size = size, .shadow_fd = -1};
    return fid;
}

/* The newest fid of inode <ino> (inode numbers are reused), or 0. */
static unsigned
cs_find_ino(uint64_t ino)
{
    for (unsigned fid = cs.nfiles; fid-- > 1;)
        if (cs.files[fid].ino == ino)
            return fid;
    return 0;
}

static void
cs_set_fd(int fd, unsigned fid)
{
    if (fd < 0)
        return;
    if ((size_t)fd >= cs.fdcap) {
        size_t cap = (size_t)fd * 2 + 64;
        unsigned *n = realloc(cs.fd_fid, cap * sizeof(*n));
        if (n == NULL)
            abort();
        memset(n + cs.fdcap, 0, (cap - cs.fdcap) * sizeof(*n));
        cs.fd_fid = n;
        cs.fdcap = cap;
    }
    cs.fd_fid[fd] = fid;
}

static unsigned
cs_fid_of_fd(int fd)
{
    return fd >= 0 && (size_t)fd < cs.fdcap ? cs.fd_fid[fd] : 0;
}

/* Writes <len> bytes of durable content at <off> into the file's shadow. */
static void
cs_shadow_write(unsigned fid, const void *buf, size_t len, uint64_t off)
{
    struct cs_file *f = &cs.files[fid];
    const char *p = buf;

    if (f->shadow_fd < 0) {
        char path[PATH_MAX + 32];
        snprintf(path, sizeof(path), "%s/d/%u", cs.shadow, fid);
        f->shadow_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (f->shadow_fd < 0)
            abort();
    }
    while (len > 0) {
        ssize_t n = pwrite(f->shadow_fd, p, len, (off_t)off);
        if (n <= 0) {
            if (n == -1 && errno == EINTR)
                continue;
            abort();
        }
        p += n;
        off += (uint64_t)n;
        len -= (size_t)n;
    }
}

/* Reads [off, off+len) of <fd> into a new buffer (page cache content). */
static uint8_t *
cs_read_range(int fd, uint64_t off, size_t len)
{
    uint8_t *buf = malloc(len ? len : 1);
    size_t got = 0;

    if (buf == NULL)
        abort();
    while (got < len) {
        ssize_t n = pread(fd, buf + got, len - got, (off_t)(off + got));
        if (n == -1 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    memset(buf + got, 0, len - got); /* beyond EOF: nothing to keep */
    return buf;
}

/* Records the size change of <fid> to <size>; caller holds cs.lock. */
static void
cs_resize(unsigned fid, uint64_t size)
{
    struct cs_file *f = &cs.files[fid];

    if (f->size == size)
        return;
    f->size = size;
    if (f->dirty_hi > size)
        f->dirty_hi = size;
    cs_log("Z %u %" PRIu64, fid, size);
}

/* Copies a whole existing file into its shadow and journals it durable. */
static unsigned
cs_adopt(int fd, const char *rel, uint64_t ino, uint64_t size)
{
    unsigned fid = cs_new_file(ino, size);
    uint8_t *buf = cs_read_range(fd, 0, (size_t)size);

    cs_shadow_write(fid, buf, (size_t)size, 0);
    free(buf);
    cs_log("C %u %" PRIu64 " %s", fid, ino, rel);
    cs_log("Z %u %" PRIu64, fid, size);
    cs_log("S %u %" PRIu64, fid, size);
    return fid;
}

/* Counts everything under <abs> (whose relative path is <rel>) as durable. */
static int
cs_adopt_tree(const char *abs, const char *rel)
{
    DIR *d = opendir(abs);
    struct dirent *de;
    int rc = 0;

    if (d == NULL)
        return -errno;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        char a[PATH_MAX], r[PATH_MAX];
        struct stat st;
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (snprintf(a, sizeof(a), "%s/%s", abs, de->d_name) >= (int)sizeof(a) ||
            snprintf(r, sizeof(r), "%s/%s", rel, de->d_name) >= (int)sizeof(r)) {
            rc = -ENAMETOOLONG;
            break;
        }
        const char *rr = strcmp(rel, ".") == 0 ? r + 2 : r;
        if (lstat(a, &st) != 0) {
            rc = -errno;
        } else if (S_ISDIR(st.st_mode)) {
            cs_log("M %s", rr);
            rc = cs_adopt_tree(a, rr);
        } else if (S_ISREG(st.st_mode)) {
            int fd = open(a, O_RDONLY | O_CLOEXEC);
            if (fd < 0) {
                rc = -errno;
            } else {
                cs_adopt(fd, rr, st.st_ino, (uint64_t)st.st_size);
                close(fd);
            }
        }
    }
    closedir(d);
    if (rc == 0)
        cs_log("D %s", rel);
    return rc;
}

int
sio_crashsim_start(const char *root, const char *shadow)
{
    char path[PATH_MAX + 16];
    int rc;

    pthread_mutex_lock(&cs.lock);
    if (strlen(root) >= sizeof(cs.root) || strlen(shadow) >= sizeof(cs.shadow) - 16) {
        rc = -ENAMETOOLONG;
        goto out;
    }
    snprintf(cs.root, sizeof(cs.root), "%s", root);
    cs.rootlen = strlen(cs.root);
    while (cs.rootlen > 1 && cs.root[cs.rootlen - 1] == '/')
        cs.root[--cs.rootlen] = '\0';
    snprintf(cs.shadow, sizeof(cs.shadow), "%s", shadow);
    snprintf(path, sizeof(path), "%s/d", shadow);
    if ((mkdir(shadow, 0755) == -1 && errno != EEXIST) ||
        (mkdir(path, 0755) == -1 && errno != EEXIST)) {
        rc = -errno;
        goto out;
    }
    snprintf(path, sizeof(path), "%s/journal.tmp", shadow);
    cs.jfd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
    if (cs.jfd < 0) {
        rc = -errno;
        goto out;
    }
    rc = cs_adopt_tree(cs.root, ".");
    if (rc == 0) {
        /* The journal appears under its name only once the durable image
         * is complete: without it, nothing under <root> was touched. */
        char to[PATH_MAX + 16];
        snprintf(to, sizeof(to), "%s/journal", shadow);
        rc = rename(path, to) == 0 ? 0 : -errno;
    }
    if (rc == 0)
        atomic_store(&cs_on, 1);
out:
    pthread_mutex_unlock(&cs.lock);
    return rc;
}

/* Called after an open of <path> returned <fd>; <existed> and <old_size>
 * describe the path before the call. Caller holds cs.lock. */
static void
cs_opened(int fd, const char *rel, int existed, int truncated)
{
    struct stat st;
    unsigned fid;

    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        return;
    if (!existed) {
        fid = cs_new_file(st.st_ino, 0);
        cs_log("C %u %" PRIu64 " %s", fid, (uint64_t)st.st_ino, rel);
    } else {
        fid = cs_find_ino(st.st_ino);
        if (fid == 0) /* made behind the seam's back: count it as durable */
            fid = cs_adopt(fd, rel, st.st_ino, (uint64_t)st.st_size);
        else if (truncated)
            cs_resize(fid, 0);
    }
    cs_set_fd(fd, fid);
}

/* After a successful sync of <fid>: <buf> (captured before it) is durable
 * at <off>, and so is <size>. Caller holds cs.lock. */
static void
cs_synced(unsigned fid, const uint8_t *buf, size_t len, uint64_t off, uint64_t size)
{
    if (len > 0)
        cs_shadow_write(fid, buf, len, off);
    cs_log("S %u %" PRIu64, fid, size);
}

/* fsync/fdatasync of <fd> under the simulation: capture, sync, record. */
static int
cs_fsync(int fd, int datasync)
{
    uint64_t lo = 0, hi = 0, size = 0;
    uint8_t *buf = NULL;
    unsigned fid;
    int rc;

    pthread_mutex_lock(&cs.lock);
    fid = cs_fid_of_fd(fd);
    if (fid != 0) {
        struct cs_file *f = &cs.files[fid];
        size = f->size;
        /* Stores into a writable mapping leave no trace here, and a file
         * sync writes them out as well: capture the whole file then. */
        lo = f->wmaps ? 0 : f->dirty_lo;
        hi = f->wmaps ? size : (f->dirty_hi < size ? f->dirty_hi : size);
        if (lo >= hi)
            lo = hi = 0;
        buf = cs_read_range(fd, lo, (size_t)(hi - lo));
        f->dirty_lo = f->dirty_hi = 0;
    }
    pthread_mutex_unlock(&cs.lock);
    do
        rc = datasync ? fdatasync(fd) : fsync(fd);
    while (rc == -1 && errno == EINTR);
    rc = rc == -1 ? -errno : 0;
    if (fid != 0) {
        pthread_mutex_lock(&cs.lock);
        if (rc == 0) {
            cs_synced(fid, buf, (size_t)(hi - lo), lo, size);
        } else if (lo < hi) {
            struct cs_file *f = &cs.files[fid];
            f->dirty_lo = f->dirty_lo < f->dirty_hi && f->dirty_lo < lo ? f->dirty_lo : lo;
            f->dirty_hi = f->dirty_hi > hi ? f->dirty_hi : hi;
        }
        pthread_mutex_unlock(&cs.lock);
    }
    free(buf);
    return rc;
}

/* Records a name operation on success (CS-2); caller holds cs.lock. */
static void
cs_name_op(char op, const char *a, const char *b)
{
    char ra[PATH_MAX], rb[PATH_MAX];

    if (!cs_rel(a, ra, sizeof(ra)))
        return;
    if (b == NULL)
        cs_log("%c %s", op, ra);
    else if (cs_rel(b, rb, sizeof(rb)))
        cs_log("%c %s %s", op, ra, rb);
}

/* A shared mapping of <fd> was made at <p>. */
static void
cs_mapped(int fd, void *p, size_t len, int writable)
{
    pthread_mutex_lock(&cs.lock);
    unsigned fid = cs_fid_of_fd(fd);
    if (fid != 0) {
        if (cs.nmaps == cs.mapcap) {
            size_t cap = cs.mapcap ? cs.mapcap * 2 : 64;
            struct cs_map *n = realloc(cs.maps, cap * sizeof(*n));
            if (n == NULL)
                abort();
            cs.maps = n;
            cs.mapcap = cap;
        }
        cs.maps[cs.nmaps++] = (struct cs_map){p, len, fid, writable};
        if (writable)
            cs.files[fid].wmaps++;
    }
    pthread_mutex_unlock(&cs.lock);
}

static void
cs_unmapped(void *p)
{
    pthread_mutex_lock(&cs.lock);
    for (size_t i = 0; i < cs.nmaps; i++) {
        if (cs.maps[i].addr != p)
            continue;
        if (cs.maps[i].writable)
            cs.files[cs.maps[i].fid].wmaps--;
        cs.maps[i] = cs.maps[--cs.nmaps];
        break;
    }
    pthread_mutex_unlock(&cs.lock);
}

/* msync(MS_SYNC) of [p, p+len) (page-aligned <p>) under the simulation:
 * the kernel writes whole pages, so whole pages are captured. */
static int
cs_msync(uint8_t *p, size_t len, size_t pagesz)
{
    struct cs_map *m = NULL;
    uint8_t *buf = NULL;
    uint64_t off = 0, size = 0;
    size_t n = 0;
    unsigned fid = 0;
    int rc;

    pthread_mutex_lock(&cs.lock);
    for (size_t i = 0; i < cs.nmaps; i++)
        if (p >= cs.maps[i].addr && p < cs.maps[i].addr + cs.maps[i].len)
            m = &cs.maps[i];
    if (m != NULL) {
        fid = m->fid;
        off = (uint64_t)(p - m->addr);
        n = (len + pagesz - 1) / pagesz * pagesz;
        if (off + n > m->len)
            n = (size_t)(m->len - off);
        size = cs.files[fid].size;
        if (off + n > size)
            n = off < size ? (size_t)(size - off) : 0;
        buf = malloc(n ? n : 1);
        if (buf == NULL)
            abort();
        memcpy(buf, p, n); /* CS-1: what is there before the sync starts */
    }
    pthread_mutex_unlock(&cs.lock);
    do
        rc = msync(p, len, MS_SYNC);
    while (rc == -1 && errno == EINTR);
    rc = rc == -1 ? -errno : 0;
    if (fid != 0 && rc == 0) {
        pthread_mutex_lock(&cs.lock);
        cs_synced(fid, buf, n, off, size);
        pthread_mutex_unlock(&cs.lock);
    }
    free(buf);
    return rc;
}

/* Bytes [from, to) of <fd> were written with pwrite. */
static void
cs_written(int fd, uint64_t from, uint64_t to)
{
    pthread_mutex_lock(&cs.lock);
    unsigned fid = cs_fid_of_fd(fd);
    if (fid != 0 && from < to) {
        struct cs_file *f = &cs.files[fid];
        if (to > f->size)
            cs_resize(fid, to);
        if (f->dirty_lo >= f->dirty_hi) {
            f->dirty_lo = from;
            f->dirty_hi = to;
        } else {
            f->dirty_lo = from < f->dirty_lo ? from : f->dirty_lo;
            f->dirty_hi = to > f->dirty_hi ? to : f->dirty_hi;
        }
    }
    pthread_mutex_unlock(&cs.lock);
}

/* The size of <fd> became <size> (grow_only: at least <size>). */
static void
cs_sized(int fd, uint64_t size, int grow_only)
{
    pthread_mutex_lock(&cs.lock);
    unsigned fid = cs_fid_of_fd(fd);
    if (fid != 0 && (!grow_only || size > cs.files[fid].size))
        cs_resize(fid, size);
    pthread_mutex_unlock(&cs.lock);
}

/* ---------------------------------------------------------------------- */

int
sio_open(const char *path, int flags, mode_t mode)
{
    int rc = fault_check(SIO_OPEN), fd, existed = 1;
    char rel[PATH_MAX];
    struct stat st;

    if (rc != 0)
        return rc;
    if (cs_active() && cs_rel(path, rel, sizeof(rel))) {
        pthread_mutex_lock(&cs.lock);
        int have = lstat(path, &st) == 0;
        if ((flags & O_CREAT) && !have)
            existed = 0;
        if ((flags & O_ACCMODE) == O_WRONLY) /* CS-3 */
            flags = (flags & ~O_ACCMODE) | O_RDWR;
        do
            fd = open(path, flags | O_CLOEXEC, mode);
        while (fd == -1 && errno == EINTR);
        rc = fd == -1 ? -errno : fd;
        if (fd >= 0)
            cs_opened(fd, rel, existed, have && (flags & O_TRUNC) && st.st_size > 0);
        pthread_mutex_unlock(&cs.lock);
        return rc;
    }
    do
        fd = open(path, flags | O_CLOEXEC, mode);
    while (fd == -1 && errno == EINTR);
    return fd == -1 ? -errno : fd;
}

int
sio_close(int fd)
{
    if (cs_active()) {
        pthread_mutex_lock(&cs.lock);
        if (cs_fid_of_fd(fd) != 0)
            cs.fd_fid[fd] = 0;
        pthread_mutex_unlock(&cs.lock);
    }
    /* close() is not retried on EINTR: on Linux the fd is gone either way. */
    return close(fd) == -1 && errno != EINTR ? -errno : 0;
}

int
sio_pwrite(int fd, const void *buf, size_t len, uint64_t off)
{
    int rc = fault_check(SIO_PWRITE);
    const char *p = buf;
    uint64_t start = off;

    if (rc != 0)
        return rc;
    while (len > 0) {
        ssize_t n = pwrite(fd, p, len, (off_t)off);
        if (n == -1) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            return -EIO;
        /* A short write usually means the disk filled up under us; the
         * loop asks again so the caller sees the real errno (ENOSPC). */
        p += n;
        off += (uint64_t)n;
        len -= (size_t)n;
    }
    if (cs_active())
        cs_written(fd, start, off);
    return 0;
}

ssize_t
sio_pread(int fd, void *buf, size_t len, uint64_t off)
{
    int rc = fault_check(SIO_PREAD);
    ssize_t n;

    if (rc != 0)
        return rc;
    do
        n = pread(fd, buf, len, (off_t)off);
    while (n == -1 && errno == EINTR);
    return n == -1 ? -errno : n;
}

int
sio_fallocate_range(int fd, uint64_t off, uint64_t len)
{
    int rc = fault_check(SIO_FALLOCATE);

    if (rc != 0)
        return rc;
    do
        rc = posix_fallocate(fd, (off_t)off, (off_t)len);
    while (rc == EINTR);
    if (rc == 0 && cs_active())
        cs_sized(fd, off + len, 1);
    return -rc;
}

int
sio_fallocate(int fd, uint64_t len)
{
    int rc = fault_check(SIO_FALLOCATE);

    if (rc != 0)
        return rc;
    do
        rc = posix_fallocate(fd, 0, (off_t)len);
    while (rc == EINTR);
    if (rc == 0 && cs_active())
        cs_sized(fd, len, 1);
    return -rc;
}

int
sio_ftruncate(int fd, uint64_t len)
{
    int rc = fault_check(SIO_FTRUNCATE);

    if (rc != 0)
        return rc;
    do
        rc = ftruncate(fd, (off_t)len);
    while (rc == -1 && errno == EINTR);
    if (rc == 0 && cs_active())
        cs_sized(fd, len, 0);
    return rc == -1 ? -errno : 0;
}

int
sio_fsync(int fd)
{
    int rc = fault_check(SIO_FSYNC);

    if (rc != 0)
        return rc;
    if (cs_active())
        return cs_fsync(fd, 0);
    do
        rc = fsync(fd);
    while (rc == -1 && errno == EINTR);
    return rc == -1 ? -errno : 0;
}

int
sio_fdatasync(int fd)
{
    int rc = fault_check(SIO_FSYNC);

    if (rc != 0)
        return rc;
    if (cs_active())
        return cs_fsync(fd, 1);
    do
        rc = fdatasync(fd);
    while (rc == -1 && errno == EINTR);
    return rc == -1 ? -errno : 0;
}

int
sio_msync(void *addr, size_t len)
{
    static long pagesz;
    int rc = fault_check(SIO_MSYNC);

    if (rc != 0)
        return rc;
    if (pagesz == 0)
        pagesz = sysconf(_SC_PAGESIZE);
    uintptr_t a = (uintptr_t)addr, start = a & ~((uintptr_t)pagesz - 1);
    if (len == 0)
        return 0;
    if (cs_active())
        return cs_msync((uint8_t *)start, len + (a - start), (size_t)pagesz);
    do
        rc = msync((void *)start, len + (a - start), MS_SYNC);
    while (rc == -1 && errno == EINTR);
    return rc == -1 ? -errno : 0;
}

int
sio_mmap(int fd, size_t len, int writable, void **out)
{
    int rc = fault_check(SIO_MMAP);
    void *p;

    if (rc != 0)
        return rc;
    p = mmap(NULL, len, PROT_READ | (writable ? PROT_WRITE : 0), MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        return -errno;
    if (cs_active())
        cs_mapped(fd, p, len, writable);
    *out = p;
    return 0;
}

int
sio_munmap(void *addr, size_t len)
{
    if (cs_active())
        cs_unmapped(addr);
    return munmap(addr, len) == -1 ? -errno : 0;
}

int
sio_rename(const char *from, const char *to)
{
    int rc = fault_check(SIO_RENAME);

    if (rc != 0)
        return rc;
    if (cs_active()) {
        pthread_mutex_lock(&cs.lock);
        rc = rename(from, to) == -1 ? -errno : 0;
        if (rc == 0)
            cs_name_op('R', from, to);
        pthread_mutex_unlock(&cs.lock);
        return rc;
    }
    return rename(from, to) == -1 ? -errno : 0;
}

int
sio_link(const char *from, const char *to)
{
    int rc = fault_check(SIO_RENAME);

    if (rc != 0)
        return rc;
    if (cs_active()) {
        pthread_mutex_lock(&cs.lock);
        rc = link(from, to) == -1 ? -errno : 0;
        if (rc == 0)
            cs_name_op('L', from, to);
        pthread_mutex_unlock(&cs.lock);
        return rc;
    }
    return link(from, to) == -1 ? -errno : 0;
}

int
sio_unlink(const char *path)
{
    int rc = fault_check(SIO_UNLINK);

    if (rc != 0)
        return rc;
    if (cs_active()) {
        pthread_mutex_lock(&cs.lock);
        rc = unlink(path) == -1 ? -errno : 0;
        if (rc == 0)
            cs_name_op('U', path, NULL);
        pthread_mutex_unlock(&cs.lock);
        return rc;
    }
    return unlink(path) == -1 ? -errno : 0;
}

int
sio_mkdir(const char *path)
{
    int rc = fault_check(SIO_MKDIR);

    if (rc != 0)
        return rc;
    if (cs_active()) {
        pthread_mutex_lock(&cs.lock);
        rc = mkdir(path, 0755) == -1 ? -errno : 0;
        if (rc == 0)
            cs_name_op('M', path, NULL);
        pthread_mutex_unlock(&cs.lock);
        return rc == -EEXIST ? 0 : rc;
    }
    if (mkdir(path, 0755) == -1 && errno != EEXIST)
        return -errno;
    return 0;
}

int
sio_dirsync(const char *dir)
{
    int rc = fault_check(SIO_DIRSYNC), fd;

    if (rc != 0)
        return rc;
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd == -1)
        return -errno;
    if (cs_active())
        pthread_mutex_lock(&cs.lock); /* CS-2: no name op slips in between */
    do
        rc = fsync(fd);
    while (rc == -1 && errno == EINTR);
    rc = rc == -1 ? -errno : 0;
    if (cs_active()) {
        if (rc == 0)
            cs_name_op('D', dir, NULL);
        pthread_mutex_unlock(&cs.lock);
    }
    close(fd);
    return rc;
}

int
sio_dirsync_parent(const char *path)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');

    if (slash == NULL)
        return sio_dirsync(".");
    if ((size_t)(slash - path) >= sizeof(dir))
        return -ENAMETOOLONG;
    if (slash == path)
        return sio_dirsync("/");
    memcpy(dir, path, (size_t)(slash - path));
    dir[slash - path] = '\0';
    return sio_dirsync(dir);
}

int
sio_mkdirs(const char *path)
{
    char buf[PATH_MAX];
    size_t len = strlen(path);
    struct stat st;
    int rc;

    if (len == 0 || len >= sizeof(buf))
        return -ENAMETOOLONG;
    if (stat(path, &st) == 0)
        return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
    memcpy(buf, path, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        char c = buf[i];
        buf[i] = '\0';
        if (stat(buf, &st) != 0) {
            rc = sio_mkdir(buf);
            if (rc != 0)
                return rc;
            /* The new entry must survive a crash before anything inside
             * it is trusted. */
            rc = sio_dirsync_parent(buf);
            if (rc != 0)
                return rc;
        } else if (!S_ISDIR(st.st_mode)) {
            return -ENOTDIR;
        }
        buf[i] = c;
    }
    return 0;
}

int
sio_write_file_atomic(const char *path, const void *buf, size_t len)
{
    char tmp[PATH_MAX], bak[PATH_MAX];
    int fd = -1, rc;

    if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp) ||
        snprintf(bak, sizeof(bak), "%s.bak", path) >= (int)sizeof(bak))
        return -ENAMETOOLONG;

    fd = sio_open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return fd;
    rc = sio_pwrite(fd, buf, len, 0);
    if (rc == 0)
        rc = sio_fsync(fd);
    if (rc != 0)
        goto fail;
    rc = sio_close(fd);
    fd = -1;
    if (rc != 0)
        goto fail;

    /* Keep the previous version as .bak: a reader that finds the main
     * file damaged falls back to it (RocketMQ's loader does the same). A
     * hard link rather than a rename, so that <path> exists at every
     * instant, even if the rename below fails. */
    if (access(path, F_OK) == 0) {
        rc = sio_unlink(bak);
        if (rc == 0 || rc == -ENOENT)
            rc = sio_link(path, bak);
        if (rc != 0)
            goto fail;
    }
    rc = sio_rename(tmp, path);
    if (rc != 0)
        goto fail;
    return sio_dirsync_parent(path);

fail:
    if (fd >= 0)
        sio_close(fd);
    unlink(tmp);
    return rc;
}
