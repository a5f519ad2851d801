/*
 * storeio.c - the store's system-call seam (see storeio.h).
 *
 * Fault injection: for each kind there is a countdown armed by a test.
 * When it reaches the armed call, that call fails with the armed errno
 * without touching the OS; in persistent mode every later call fails too.
 * Counters are atomics because the flush, dispatch and writer threads all
 * come through here.
 */
#include "store/storeio.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
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

int
sio_open(const char *path, int flags, mode_t mode)
{
    int rc = fault_check(SIO_OPEN), fd;

    if (rc != 0)
        return rc;
    do
        fd = open(path, flags | O_CLOEXEC, mode);
    while (fd == -1 && errno == EINTR);
    return fd == -1 ? -errno : fd;
}

int
sio_close(int fd)
{
    /* close() is not retried on EINTR: on Linux the fd is gone either way. */
    return close(fd) == -1 && errno != EINTR ? -errno : 0;
}

int
sio_pwrite(int fd, const void *buf, size_t len, uint64_t off)
{
    int rc = fault_check(SIO_PWRITE);
    const char *p = buf;

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
    return rc == -1 ? -errno : 0;
}

int
sio_fsync(int fd)
{
    int rc = fault_check(SIO_FSYNC);

    if (rc != 0)
        return rc;
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
    *out = p;
    return 0;
}

int
sio_munmap(void *addr, size_t len)
{
    return munmap(addr, len) == -1 ? -errno : 0;
}

int
sio_rename(const char *from, const char *to)
{
    int rc = fault_check(SIO_RENAME);

    if (rc != 0)
        return rc;
    return rename(from, to) == -1 ? -errno : 0;
}

int
sio_link(const char *from, const char *to)
{
    int rc = fault_check(SIO_RENAME);

    if (rc != 0)
        return rc;
    return link(from, to) == -1 ? -errno : 0;
}

int
sio_unlink(const char *path)
{
    int rc = fault_check(SIO_UNLINK);

    if (rc != 0)
        return rc;
    return unlink(path) == -1 ? -errno : 0;
}

int
sio_mkdir(const char *path)
{
    int rc = fault_check(SIO_MKDIR);

    if (rc != 0)
        return rc;
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
    do
        rc = fsync(fd);
    while (rc == -1 && errno == EINTR);
    rc = rc == -1 ? -errno : 0;
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
