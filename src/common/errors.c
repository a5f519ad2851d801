/*
 * errors.c - names for the project's return codes (see errors.h).
 *
 * Invariants:
 *   INV-1  spk_strerror() never returns NULL and never returns a pointer
 *          into a buffer that a later call (from any thread) may rewrite:
 *          every result is a string literal or glibc's static message
 *          table, so callers may keep the pointer and log it later.
 *   INV-2  Only -1..-999 are read as errno values. Linux errnos stay far
 *          below 999, and the bound keeps -INT_MIN (undefined) and our own
 *          -1000..-1999 range out of strerrordesc_np().
 */
#include "common/errors.h"

#include <string.h>

/*
 * strerrordesc_np() (glibc 2.32) returns the static message table entry,
 * which is what makes INV-1 hold without a thread-local buffer. The
 * alternative, strerror_r(), has two incompatible signatures depending on
 * feature macros; since the project targets glibc (Debian 12), require
 * the simpler function instead of carrying both variants.
 */
#if !defined(__GLIBC__) || !__GLIBC_PREREQ(2, 32)
#error "spk_strerror needs strerrordesc_np (glibc 2.32 or later)"
#endif

#define ERRNO_MAX 999

static const char *
spk_message(int rc)
{
    switch (rc) {
    case SPK_ECORRUPT:
        return "stored data failed validation (corrupt)";
    case SPK_ETOOBIG:
        return "a size limit was exceeded";
    case SPK_ESTORE_FAILED:
        return "the store failed to flush and refuses writes until restarted";
    case SPK_EFORMAT:
        return "malformed input";
    case SPK_EDISKFULL:
        return "disk usage is above the allowed level";
    case SPK_ECONFIG:
        return "invalid configuration";
    case SPK_ESHUTDOWN:
        return "shutting down";
    case SPK_ELOCKED:
        return "the store is locked by another process";
    case SPK_ENOTFOUND:
        return "not found";
    case SPK_ETIMEOUT:
        return "a flush did not finish before its deadline";
    case SPK_ENOROUTE:
        return "no route: no name server knows the topic, or no broker serves it";
    case SPK_EBROKER:
        return "the broker refused the request";
    case SPK_ESTATE:
        return "wrong state (not started, or already started)";
    default:
        return NULL;
    }
}

const char *
spk_strerror(int rc)
{
    const char *msg = NULL;

    if (rc == 0)
        return "success";
    if (rc < 0 && rc >= -ERRNO_MAX)
        msg = strerrordesc_np(-rc);
    else
        msg = spk_message(rc);
    return msg != NULL ? msg : "unknown error";
}
