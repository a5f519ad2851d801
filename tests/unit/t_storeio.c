/*
 * t_storeio.c - the I/O seam (store/storeio.h): fault injection (once,
 * persistent, counted from the arming), short writes reported as errors,
 * and sio_write_file_atomic() keeping the old file through every failure.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/storeio.h"
#include "storetest.h"

static char *dir;

static void
setup(void)
{
    sio_fault_clear();
    dir = st_tmpdir("sio");
}

static void
teardown(void)
{
    sio_fault_clear();
    st_rmrf(dir);
    free(dir);
}

TestSuite(storeio, .init = setup, .fini = teardown, .timeout = 30);

static char *
file_text(const char *path)
{
    size_t len;
    uint8_t *buf = st_read_file(path, &len);

    if (buf != NULL)
        buf[len] = '\0';
    return (char *)buf;
}

Test(storeio, fault_once_fails_only_the_nth_call)
{
    char *p = st_path(dir, "f");
    int fds[4];

    sio_fault_arm(SIO_OPEN, 2, SIO_FAULT_ONCE, EIO);
    for (int i = 0; i < 4; i++)
        fds[i] = sio_open(p, O_RDWR | O_CREAT, 0644);
    cr_expect(ge(int, fds[0], 0));
    cr_expect(eq(int, fds[1], -EIO));
    cr_expect(ge(int, fds[2], 0));
    cr_expect(ge(int, fds[3], 0));
    cr_expect(eq(ulong, sio_calls(SIO_OPEN), 4));
    for (int i = 0; i < 4; i++)
        if (fds[i] >= 0)
            cr_expect(eq(int, sio_close(fds[i]), 0));

    /* Other kinds are not affected. */
    cr_expect(eq(ulong, sio_calls(SIO_PWRITE), 0));
    free(p);
}

Test(storeio, fault_persistent_fails_every_later_call)
{
    char *p = st_path(dir, "f");
    int fd = sio_open(p, O_RDWR | O_CREAT, 0644);

    cr_assert(ge(int, fd, 0));
    sio_fault_arm(SIO_FSYNC, 3, SIO_FAULT_PERSISTENT, ENOSPC);
    cr_expect(eq(int, sio_fsync(fd), 0));
    cr_expect(eq(int, sio_fdatasync(fd), 0)); /* fdatasync counts as SIO_FSYNC */
    for (int i = 0; i < 5; i++)
        cr_expect(eq(int, sio_fsync(fd), -ENOSPC), "call %d after the armed one", i);
    cr_expect(eq(int, sio_fdatasync(fd), -ENOSPC));
    cr_expect(eq(ulong, sio_calls(SIO_FSYNC), 8));

    /* Clearing disarms and restarts the count. */
    sio_fault_clear();
    cr_expect(eq(ulong, sio_calls(SIO_FSYNC), 0));
    cr_expect(eq(int, sio_fsync(fd), 0));
    cr_expect(eq(ulong, sio_calls(SIO_FSYNC), 1));
    sio_close(fd);
    free(p);
}

Test(storeio, nth_counts_from_the_arming)
{
    char *p = st_path(dir, "f");
    int fd = sio_open(p, O_RDWR | O_CREAT, 0644);

    cr_assert(ge(int, fd, 0));
    for (int i = 0; i < 5; i++)
        cr_expect(eq(int, sio_pwrite(fd, "x", 1, (uint64_t)i), 0));
    sio_fault_arm(SIO_PWRITE, 1, SIO_FAULT_ONCE, EIO);
    cr_expect(eq(int, sio_pwrite(fd, "y", 1, 0), -EIO));
    cr_expect(eq(int, sio_pwrite(fd, "z", 1, 1), 0));
    sio_fault_arm(SIO_PWRITE, 3, SIO_FAULT_ONCE, EINTR);
    cr_expect(eq(int, sio_pwrite(fd, "a", 1, 2), 0));
    cr_expect(eq(int, sio_pwrite(fd, "b", 1, 3), 0));
    cr_expect(eq(int, sio_pwrite(fd, "c", 1, 4), -EINTR));
    sio_close(fd);

    /* The failed calls never reached the file. */
    char *t = file_text(p);
    cr_expect(eq(str, t, "xzabx"));
    free(t);
    free(p);
}

Test(storeio, an_injected_failure_does_not_touch_the_os)
{
    char *a = st_path(dir, "a"), *b = st_path(dir, "b"), *c = st_path(dir, "c");
    void *map = (void *)0x1;
    int fd;

    sio_fault_arm(SIO_OPEN, 1, SIO_FAULT_ONCE, EACCES);
    cr_expect(eq(int, sio_open(c, O_RDWR | O_CREAT, 0644), -EACCES));
    cr_expect(eq(int, st_exists(c), 0), "a failed open created the file");

    st_write_file(a, "old", 3);
    sio_fault_arm(SIO_RENAME, 1, SIO_FAULT_ONCE, EIO);
    cr_expect(eq(int, sio_rename(a, b), -EIO));
    cr_expect(eq(int, st_exists(a), 1));
    cr_expect(eq(int, st_exists(b), 0));

    sio_fault_arm(SIO_UNLINK, 1, SIO_FAULT_ONCE, EIO);
    cr_expect(eq(int, sio_unlink(a), -EIO));
    cr_expect(eq(int, st_exists(a), 1));

    fd = sio_open(a, O_RDWR, 0);
    cr_assert(ge(int, fd, 0));
    sio_fault_arm(SIO_MMAP, 1, SIO_FAULT_ONCE, ENOMEM);
    cr_expect(eq(int, sio_mmap(fd, 4096, 1, &map), -ENOMEM));
    cr_expect(eq(ptr, map, (void *)0x1), "*out must be set only on success");

    sio_fault_arm(SIO_FALLOCATE, 1, SIO_FAULT_ONCE, ENOSPC);
    cr_expect(eq(int, sio_fallocate(fd, 1 << 20), -ENOSPC));
    struct stat st;
    cr_assert(eq(int, fstat(fd, &st), 0));
    cr_expect(eq(i64, (int64_t)st.st_size, 3), "a failed fallocate changed the size");

    sio_fault_arm(SIO_FTRUNCATE, 1, SIO_FAULT_ONCE, EIO);
    cr_expect(eq(int, sio_ftruncate(fd, 0), -EIO));
    cr_assert(eq(int, fstat(fd, &st), 0));
    cr_expect(eq(i64, (int64_t)st.st_size, 3));

    char buf[8];
    sio_fault_arm(SIO_PREAD, 1, SIO_FAULT_ONCE, EIO);
    cr_expect(eq(i64, (int64_t)sio_pread(fd, buf, sizeof(buf), 0), -EIO));
    cr_expect(eq(i64, (int64_t)sio_pread(fd, buf, sizeof(buf), 0), 3), "short read at EOF");
    cr_expect(eq(int, memcmp(buf, "old", 3), 0));

    sio_fault_arm(SIO_MKDIR, 1, SIO_FAULT_ONCE, EROFS);
    char *d = st_path(dir, "sub");
    cr_expect(eq(int, sio_mkdir(d), -EROFS));
    cr_expect(eq(int, st_exists(d), 0));
    sio_fault_arm(SIO_DIRSYNC, 1, SIO_FAULT_ONCE, EIO);
    cr_expect(eq(int, sio_dirsync(dir), -EIO));
    cr_expect(eq(int, sio_dirsync(dir), 0));

    sio_close(fd);
    free(a);
    free(b);
    free(c);
    free(d);
}

Test(storeio, msync_fault_and_unaligned_range)
{
    char *p = st_path(dir, "m");
    int fd = sio_open(p, O_RDWR | O_CREAT, 0644);
    void *map = NULL;

    cr_assert(ge(int, fd, 0));
    cr_assert(eq(int, sio_fallocate(fd, 3 * 4096), 0));
    cr_assert(eq(int, sio_mmap(fd, 3 * 4096, 1, &map), 0));
    cr_assert(ne(ptr, map, NULL));
    memcpy((char *)map + 5000, "hello", 5);
    /* An address inside a page is rounded down by the wrapper. */
    cr_expect(eq(int, sio_msync((char *)map + 5000, 5), 0));
    cr_expect(eq(int, sio_msync((char *)map + 4095, 2), 0));
    sio_fault_arm(SIO_MSYNC, 1, SIO_FAULT_PERSISTENT, EIO);
    cr_expect(eq(int, sio_msync(map, 4096), -EIO));
    cr_expect(eq(int, sio_msync(map, 4096), -EIO));
    sio_fault_clear();
    cr_expect(eq(int, sio_munmap(map, 3 * 4096), 0));
    char buf[5];
    cr_expect(eq(i64, (int64_t)sio_pread(fd, buf, 5, 5000), 5));
    cr_expect(eq(int, memcmp(buf, "hello", 5), 0));
    sio_close(fd);
    free(p);
}

Test(storeio, fallocate_reserves_blocks)
{
    char *p = st_path(dir, "pre");
    int fd = sio_open(p, O_RDWR | O_CREAT, 0644);
    struct stat st;

    cr_assert(ge(int, fd, 0));
    cr_assert(eq(int, sio_fallocate(fd, 256 * 1024), 0));
    cr_assert(eq(int, fstat(fd, &st), 0));
    cr_expect(eq(i64, (int64_t)st.st_size, 256 * 1024));
    cr_expect(ge(i64, (int64_t)st.st_blocks * 512, 256 * 1024), "the file is sparse");
    sio_close(fd);
    free(p);
}

Test(storeio, short_write_is_an_error)
{
    char *p = st_path(dir, "limited");
    int fd = sio_open(p, O_RDWR | O_CREAT, 0644);
    struct rlimit old, lim;
    static char buf[8192];
    int rc;

    cr_assert(ge(int, fd, 0));
    memset(buf, 'w', sizeof(buf));
    /* RLIMIT_FSIZE makes the kernel write only up to the limit: the first
     * pwrite(2) is short, the next one fails with EFBIG. */
    cr_assert(eq(int, getrlimit(RLIMIT_FSIZE, &old), 0));
    signal(SIGXFSZ, SIG_IGN);
    lim = old;
    lim.rlim_cur = 4096;
    cr_assert(eq(int, setrlimit(RLIMIT_FSIZE, &lim), 0));
    rc = sio_pwrite(fd, buf, sizeof(buf), 0);
    cr_expect(lt(int, rc, 0), "a short write was reported as success");
    cr_expect(rc == -EFBIG || rc == -EIO, "rc %d", rc);
    /* Entirely past the limit. */
    rc = sio_pwrite(fd, buf, 10, 5000);
    cr_expect(eq(int, rc, -EFBIG));
    cr_assert(eq(int, setrlimit(RLIMIT_FSIZE, &old), 0));
    signal(SIGXFSZ, SIG_DFL);

    /* /dev/full: every write fails with ENOSPC. */
    int full = sio_open("/dev/full", O_WRONLY, 0);
    if (full >= 0) {
        cr_expect(eq(int, sio_pwrite(full, buf, 100, 0), -ENOSPC));
        sio_close(full);
    }
    cr_expect(eq(int, sio_pwrite(fd, buf, 0, 0), 0), "an empty write succeeds");
    sio_close(fd);
    free(p);
}

Test(storeio, atomic_write_keeps_bak)
{
    char *p = st_path(dir, "topics.json"), *bak = st_path(dir, "topics.json.bak"),
         *tmp = st_path(dir, "topics.json.tmp");
    char *t;

    cr_assert(eq(int, sio_write_file_atomic(p, "v1", 2), 0));
    t = file_text(p);
    cr_expect(eq(str, t, "v1"));
    free(t);
    cr_expect(eq(int, st_exists(tmp), 0));

    cr_assert(eq(int, sio_write_file_atomic(p, "v2-longer", 9), 0));
    t = file_text(p);
    cr_expect(eq(str, t, "v2-longer"));
    free(t);
    t = file_text(bak);
    cr_expect(eq(str, t, "v1"), "the previous version must be kept as .bak");
    free(t);

    /* A shorter new version is not padded with the old one's tail. */
    cr_assert(eq(int, sio_write_file_atomic(p, "v3", 2), 0));
    t = file_text(p);
    cr_expect(eq(str, t, "v3"));
    free(t);
    t = file_text(bak);
    cr_expect(eq(str, t, "v2-longer"));
    free(t);
    cr_expect(eq(int, st_exists(tmp), 0));
    free(p);
    free(bak);
    free(tmp);
}

/*
 * Fails the <nth> call of <kind> during one atomic replace of "old" by
 * "new", and checks that <path> still holds "old" and no .tmp is left.
 */
static void
atomic_write_fault(enum sio_kind kind, unsigned long nth, const char *what)
{
    char *p = st_path(dir, "meta"), *tmp = st_path(dir, "meta.tmp");
    char *t;
    int rc;

    sio_fault_clear();
    cr_assert(eq(int, sio_write_file_atomic(p, "old", 3), 0));
    sio_fault_clear();
    sio_fault_arm(kind, nth, SIO_FAULT_ONCE, EIO);
    rc = sio_write_file_atomic(p, "new", 3);
    cr_expect(eq(int, rc, -EIO), "%s: the failure must be reported", what);
    t = file_text(p);
    cr_expect(ne(ptr, t, NULL), "%s: the file vanished", what);
    if (t != NULL)
        cr_expect(eq(str, t, "old"), "%s: the old content must survive", what);
    free(t);
    cr_expect(eq(int, st_exists(tmp), 0), "%s: the .tmp file was left behind", what);

    /* The next attempt without a fault succeeds. */
    sio_fault_clear();
    cr_expect(eq(int, sio_write_file_atomic(p, "new", 3), 0));
    t = file_text(p);
    cr_expect(eq(str, t, "new"));
    free(t);
    free(p);
    free(tmp);
}

Test(storeio, atomic_write_survives_failed_open)
{
    atomic_write_fault(SIO_OPEN, 1, "open of .tmp");
}

Test(storeio, atomic_write_survives_failed_write)
{
    atomic_write_fault(SIO_PWRITE, 1, "write of .tmp");
}

Test(storeio, atomic_write_survives_failed_fsync)
{
    atomic_write_fault(SIO_FSYNC, 1, "fsync of .tmp");
}

Test(storeio, atomic_write_survives_failed_first_rename)
{
    atomic_write_fault(SIO_RENAME, 1, "first rename");
}

Test(storeio, atomic_write_survives_failed_second_rename)
{
    /* Whatever the sequence of renames, there must be no moment at which
     * <path> does not exist: a crash there would lose the metadata. */
    atomic_write_fault(SIO_RENAME, 2, "second rename");
}

Test(storeio, mkdirs_and_dirsync_parent)
{
    char *deep = st_path(dir, "a/b/c/d"), *file = st_path(dir, "a/b/file");

    cr_expect(eq(int, sio_mkdirs(deep), 0));
    cr_expect(eq(int, st_exists(deep), 1));
    cr_expect(eq(int, sio_mkdirs(deep), 0), "existing directories are fine");
    st_write_file(file, "x", 1);
    char *below = st_path(file, "sub");
    cr_expect(eq(int, sio_mkdirs(below), -ENOTDIR));
    cr_expect(eq(int, sio_mkdirs(file), -ENOTDIR));
    cr_expect(eq(int, sio_dirsync_parent(file), 0));
    cr_expect(eq(int, sio_dirsync_parent("/"), 0));
    char *missing = st_path(dir, "nope/x");
    cr_expect(eq(int, sio_dirsync_parent(missing), -ENOENT));

    /* A failing mkdir in the middle stops the walk with its error. */
    char *other = st_path(dir, "p/q/r");
    sio_fault_arm(SIO_MKDIR, 2, SIO_FAULT_ONCE, ENOSPC);
    cr_expect(eq(int, sio_mkdirs(other), -ENOSPC));
    free(deep);
    free(file);
    free(below);
    free(missing);
    free(other);
}
