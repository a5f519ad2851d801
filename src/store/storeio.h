/*
 * storeio.h - the one seam between the store and the operating system.
 *
 * Every system call the store makes on its files goes through these
 * wrappers (SQLite's VFS idea), so that tests can make the Nth call of
 * each kind fail, transiently or for good, and so that the crash tests
 * can see which ranges were made durable.
 *
 * Invariants:
 *   INV-1  EINTR is retried here and nowhere else.
 *   INV-2  A short pwrite is reported as an error (-EIO), never as success.
 *   INV-3  Every function returns 0 (or a non-negative count/fd) on success
 *          and a negative errno on failure; errno itself is not relied on.
 *
 * Fault injection is always compiled in: it costs one relaxed atomic load
 * per call, and it lets the same library serve the tools and the tests.
 */
#ifndef SPK_STORE_STOREIO_H
#define SPK_STORE_STOREIO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum sio_kind {
    SIO_OPEN,
    SIO_PWRITE,
    SIO_PREAD,
    SIO_FALLOCATE,
    SIO_FTRUNCATE,
    SIO_FSYNC,     /* fsync and fdatasync of files */
    SIO_MSYNC,
    SIO_MMAP,
    SIO_RENAME, /* rename and link */
    SIO_UNLINK,
    SIO_DIRSYNC,
    SIO_MKDIR,
    SIO_NKINDS
};

enum sio_fault_mode {
    SIO_FAULT_ONCE,       /* only the Nth call fails */
    SIO_FAULT_PERSISTENT  /* the Nth call and every later one fail */
};

/* Opens <path> with <flags> (O_CLOEXEC is added). Returns an fd or -errno. */
int sio_open(const char *path, int flags, mode_t mode);
int sio_close(int fd);

/* Writes all <len> bytes at <off>; a short write is -EIO (INV-2). */
int sio_pwrite(int fd, const void *buf, size_t len, uint64_t off);

/* Reads up to <len> bytes at <off>; returns the count read or -errno. */
ssize_t sio_pread(int fd, void *buf, size_t len, uint64_t off);

/* Reserves [0, len) on disk (posix_fallocate): never a sparse file. */
int sio_fallocate(int fd, uint64_t len);

/* Reserves [off, off + len) on disk, extending the file if needed. */
int sio_fallocate_range(int fd, uint64_t off, uint64_t len);
int sio_ftruncate(int fd, uint64_t len);
int sio_fsync(int fd);
int sio_fdatasync(int fd);

/*
 * Makes [addr, addr+len) of a shared mapping durable (MS_SYNC). <addr> is
 * rounded down to a page boundary here.
 */
int sio_msync(void *addr, size_t len);

/* Maps <len> bytes of <fd> shared; *out is set only on success. */
int sio_mmap(int fd, size_t len, int writable, void **out);
int sio_munmap(void *addr, size_t len);

int sio_rename(const char *from, const char *to);
int sio_link(const char *from, const char *to);
int sio_unlink(const char *path);
int sio_mkdir(const char *path);

/* mkdir -p: creates every missing component, syncing each parent. */
int sio_mkdirs(const char *path);

/* fsync of a directory, after a create, rename or delete inside it. */
int sio_dirsync(const char *dir);

/* fsync of the directory that holds <path>. */
int sio_dirsync_parent(const char *path);

/*
 * Replaces <path> with <len> bytes atomically: write <path>.tmp, fsync it,
 * keep the old file as <path>.bak (a hard link, so <path> never goes
 * missing), rename .tmp over <path>, fsync the directory.
 */
int sio_write_file_atomic(const char *path, const void *buf, size_t len);

/* Test hooks: make the <nth> call (1-based, counted from now) of <kind>
 * fail with <err> (a positive errno). */
void sio_fault_arm(enum sio_kind kind, unsigned long nth, enum sio_fault_mode mode, int err);
void sio_fault_clear(void);

/* Test hook: every later call of <kind> first sleeps <ms> milliseconds (a
 * slow disk); 0 turns it off. sio_fault_clear() also turns it off. */
void sio_delay_arm(enum sio_kind kind, unsigned ms);

/* Calls of <kind> made since the last sio_fault_clear() (or start). */
unsigned long sio_calls(enum sio_kind kind);

/*
 * Power-cut simulation (RELIABILITY.md T2; tests/crash/powercut.c).
 *
 * A kill -9 keeps the page cache; a power cut keeps only what a completed
 * sync covered. While the simulation runs, this seam keeps on disk, beside
 * the store, the *durable image* of every file under <root>, so that it
 * survives a SIGKILL of the process and a test can rebuild what a disk
 * would hold after the cut.
 *
 * sio_crashsim_start(root, shadow) creates <shadow>/journal and
 * <shadow>/d/, and counts every file and directory under <root> as fully
 * durable (a copy of each file's content); the journal gets its name only
 * when that copy is complete, so a process killed before has changed
 * nothing. From then on:
 *   - sio_pwrite widens the file's dirty interval; stores into a writable
 *     mapping are invisible here, so a file with a writable mapping is
 *     copied whole at fsync/fdatasync;
 *   - sio_fsync/sio_fdatasync copy the bytes that were in the page cache
 *     BEFORE the sync was issued (the dirty interval, or the whole file)
 *     into <shadow>/d/<fid> once the sync has returned 0, then journal
 *     "S"; sio_msync does the same for the page-rounded range it covers;
 *   - creates, mkdir, renames, links, unlinks and size changes are
 *     journaled in order; sio_dirsync journals "D" once it has returned 0.
 *
 * Journal: one line per event, appended with one write(2), so a kill
 * leaves at most one cut line at the end (the reader ignores it). Paths
 * are relative to <root> ("." is <root> itself); fids are small integers.
 *   C fid ino path    a new file was created at path (size 0)
 *   M path            a directory was created
 *   R from to         rename          L from to   hard link
 *   U path            unlink
 *   Z fid size        the file's size changed (ftruncate, fallocate, O_TRUNC)
 *   S fid size        a sync of the file completed; its durable content is
 *                     <shadow>/d/<fid> (zeros beyond its end) and size
 *   D path            a sync of directory <path> completed
 * An operation not yet covered by a later S (sizes) or D (names, in its
 * parent directory) may or may not have reached the disk.
 *
 * Only the calling process is affected (the state is not inherited
 * meaningfully across exec); call it in the child that will be killed,
 * before store_open. Returns 0 or a negative errno. There is no stop: the
 * process is expected to die.
 */
int sio_crashsim_start(const char *root, const char *shadow);

#endif /* SPK_STORE_STOREIO_H */
