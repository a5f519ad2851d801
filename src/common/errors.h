/*
 * errors.h - the project's error codes.
 *
 * Functions return 0 on success and a negative number on failure: a
 * negative errno for operating-system failures (-ENOSPC, -EIO), or one of
 * the codes below, which live in -1000..-1999 so they can never collide
 * with an errno. spk_strerror() names both kinds.
 */
#ifndef SPK_COMMON_ERRORS_H
#define SPK_COMMON_ERRORS_H

#define SPK_ECORRUPT      (-1001) /* on-disk data failed validation */
#define SPK_ETOOBIG       (-1002) /* a size limit was exceeded */
#define SPK_ESTORE_FAILED (-1003) /* sticky: a flush failed; restart to recover */
#define SPK_EFORMAT       (-1004) /* malformed input (frame, record, config) */
#define SPK_EDISKFULL     (-1005) /* disk usage above the warning level */
#define SPK_ECONFIG       (-1006) /* invalid configuration */
#define SPK_ESHUTDOWN     (-1007) /* the object is shutting down */
#define SPK_ELOCKED       (-1008) /* another process holds the store lock */
#define SPK_ENOTFOUND     (-1009) /* no such message, queue or key */
#define SPK_ETIMEOUT      (-1010) /* a flush did not finish before its deadline */
#define SPK_ENOROUTE      (-1011) /* client: no route (name server) for the topic */
#define SPK_EBROKER       (-1012) /* client: the broker refused the request */
#define SPK_ESTATE        (-1013) /* client: wrong state (not started, started) */

/* A static string for <rc> (negative errno or SPK_E*); never NULL. */
const char *spk_strerror(int rc);

#endif /* SPK_COMMON_ERRORS_H */
