/*
 * loop.h - the event loop: listeners, connections, frames, timers, wakeups.
 *
 * One thread runs net_loop_run(); every callback runs on that thread and
 * must not block (DESIGN.md "Threads"). Other threads talk to the loop
 * only through net_wakeup_signal() and net_loop_stop().
 *
 * Connections carry RocketMQ remoting frames: the loop reads into a
 * per-connection buffer, splits complete frames (proto_frame_split) and
 * hands each to the listener's on_frame callback as a borrowed view that
 * is valid only during the call. A length field over the frame limit or
 * below 4 closes the connection (there is no way to resynchronise).
 *
 * Output is a queue of chunks, owned (malloc'd, freed when written) or
 * borrowed (a release callback runs when the bytes have left or the
 * connection dies: the zero-copy pull path sends record bytes straight
 * from the mapped CommitLog this way). Chunks are written with writev in
 * order, so replies to pipelined requests may be queued in any order.
 *
 * Invariants:
 *   INV-1  A connection's memory lives until its last reference is
 *          dropped (net_conn_put); after close, sends are refused and
 *          queued chunks have been released, so a parked request may keep
 *          a reference and reply later without checking anything else.
 *   INV-2  A connection whose queued output exceeds the soft limit is not
 *          read from until it drains (a slow reader slows only itself);
 *          one over the hard limit is closed.
 *   INV-3  Connections with no traffic in either direction for the idle
 *          timeout are closed.
 *   INV-4  Every callback for a connection happens on the loop thread,
 *          and on_close exactly once.
 *   INV-5  A peer cannot hold the loop's resources by going slow: a frame
 *          begun and not completed within the read timeout, and queued
 *          output that makes no progress for the write-stall timeout,
 *          close the connection. A connection with no partial frame
 *          buffered holds no read buffer at all, so an idle connection
 *          costs its struct only.
 *   INV-6  Running out of file descriptors never makes the loop spin: it
 *          keeps a reserve descriptor to accept and close the connection
 *          it cannot serve, refuses connections once fewer than
 *          NET_FD_HEADROOM descriptors are left (they belong to the store
 *          and the name-server client), and logs that at most once per
 *          interval.
 */
#ifndef SPK_NET_LOOP_H
#define SPK_NET_LOOP_H

#include <stddef.h>
#include <stdint.h>

struct net_loop;
struct net_conn;
struct net_timer;
struct net_wakeup;

struct net_handler {
    /* One complete frame (length field included). */
    void (*on_frame)(void *ud, struct net_conn *c, const uint8_t *frame, size_t len);
    /* The connection closed (peer, error, idle, or net_conn_close). */
    void (*on_close)(void *ud, struct net_conn *c);
};

struct net_limits {
    size_t out_soft;        /* stop reading above this many queued bytes */
    size_t out_hard;        /* close above this */
    int64_t idle_ms;        /* 0 = never */
    size_t frame_max;       /* largest frame accepted */
    int64_t read_timeout_ms; /* first byte to last byte of a frame; 0 = no limit */
    int64_t stall_ms;       /* queued output with no write progress; 0 = no limit */
};

/* Default read timeout and write-stall timeout of a new loop. */
#define NET_READ_TIMEOUT_MS 30000
#define NET_STALL_TIMEOUT_MS 60000
/* Descriptors below RLIMIT_NOFILE that accepted connections may not take. */
#define NET_FD_HEADROOM 64

int net_loop_create(struct net_loop **out);
/* Closes every connection and listener, frees timers; not while running. */
void net_loop_destroy(struct net_loop *l);
void net_loop_set_limits(struct net_loop *l, const struct net_limits *lim);

/*
 * Listens on host:port (IPv4 text or "0.0.0.0"). Returns 0 and fills err
 * with a sentence on failure (address in use, permission).
 */
int net_listen(struct net_loop *l, const char *host, int port, const struct net_handler *h,
               void *ud, char *err, size_t errlen);

/* Runs until net_loop_stop(). Returns 0 or a negative errno of epoll. */
int net_loop_run(struct net_loop *l);
/* Thread-safe. Makes net_loop_run() return after the current iteration. */
void net_loop_stop(struct net_loop *l);
/* Closes the listeners (stop accepting) without stopping the loop. */
void net_loop_close_listeners(struct net_loop *l);

/* Closes every connection (on_close runs for each). */
void net_loop_close_all(struct net_loop *l);
/*
 * Writes queued output for up to <timeout_ms> without running callbacks:
 * a stopping server sends its last replies before closing.
 */
void net_loop_drain(struct net_loop *l, int timeout_ms);

/* Milliseconds of the monotonic clock as of this loop iteration. */
int64_t net_loop_now(struct net_loop *l);

/*
 * Timers run on the loop thread <delay_ms> from now and then every
 * <period_ms> (0 = once; a one-shot timer frees itself after firing).
 */
struct net_timer *net_timer_add(struct net_loop *l, int64_t delay_ms, int64_t period_ms,
                                void (*fn)(void *arg), void *arg);
void net_timer_cancel(struct net_loop *l, struct net_timer *t);

/*
 * A wakeup: net_wakeup_signal() from any thread makes <fn> run once on the
 * loop thread soon after (signals coalesce). Freed with the loop.
 */
struct net_wakeup *net_wakeup_add(struct net_loop *l, void (*fn)(void *arg), void *arg);
void net_wakeup_signal(struct net_wakeup *w);

/* Connections --------------------------------------------------------- */

/* Queues malloc'd <buf>, taking ownership (freed even on error). */
int net_conn_send(struct net_conn *c, void *buf, size_t len);
/*
 * Queues borrowed bytes; release(arg) runs once when they have been
 * written or the connection died.
 */
int net_conn_send_ref(struct net_conn *c, const void *p, size_t len, void (*release)(void *arg),
                      void *arg);
/* Closes now, dropping unsent output; on_close runs. Idempotent. */
void net_conn_close(struct net_conn *c);
/*
 * As net_conn_close, for a peer that broke the protocol: counts it in
 * bad_frames and logs "<peer>: <why>" at WARN, at most one line per few
 * seconds for the whole loop (a hostile client must not flood the log).
 */
void net_conn_close_bad(struct net_conn *c, const char *why);
void net_conn_hold(struct net_conn *c);
void net_conn_put(struct net_conn *c);
int net_conn_is_closed(const struct net_conn *c);
uint64_t net_conn_id(const struct net_conn *c);
const char *net_conn_peer(const struct net_conn *c); /* "ip:port" */
/* The peer's IPv4 address (network order bytes) and port. */
void net_conn_peer_addr(const struct net_conn *c, uint8_t ip[4], int *port);
void *net_conn_udata(const struct net_conn *c);
void net_conn_set_udata(struct net_conn *c, void *ud);
size_t net_conn_outq(const struct net_conn *c);
struct net_loop *net_conn_loop(const struct net_conn *c);

struct net_stats {
    uint64_t accepted, closed, frames_in, bytes_in, bytes_out, idle_closed, limit_closed,
        bad_frames;
    uint64_t read_timeouts; /* frames not completed within the read timeout */
    uint64_t stall_closed;  /* output stalled for the write-stall timeout */
    uint64_t shed;          /* connections accepted and closed at once: no descriptors */
    uint64_t rbuf_bytes;    /* read buffers held now (partial frames only, INV-5) */
    unsigned conns;
    int64_t max_iter_ms; /* longest loop iteration since the last call */
};
void net_loop_stats(struct net_loop *l, struct net_stats *st, int reset_max);

/*
 * Loop iteration times: the time from epoll_wait returning to the next
 * call of epoll_wait (callbacks, timers, writes), in microseconds, since
 * the loop was created. Bucket i counts iterations whose time lies in
 * [net_iter_bucket_low(i), net_iter_bucket_high(i)]: exact below 4 us,
 * then four buckets per power of two (at most 25% wide). Recording costs
 * two clock reads and an increment per iteration.
 */
#define NET_ITER_BUCKETS 112
struct net_iter_hist {
    uint64_t count[NET_ITER_BUCKETS];
    uint64_t n;      /* iterations recorded */
    uint64_t max_us; /* longest */
};
/* Copies the histogram; on the loop thread (or while it is not running). */
void net_loop_iter_hist(const struct net_loop *l, struct net_iter_hist *out);
uint64_t net_iter_bucket_low(int i);
uint64_t net_iter_bucket_high(int i);
int net_iter_bucket(uint64_t us);
/*
 * The upper bound of the bucket holding the <q> quantile (0 < q <= 1) of
 * <h>, capped at h->max_us; 0 when h is empty.
 */
uint64_t net_iter_quantile(const struct net_iter_hist *h, double q);

#endif /* SPK_NET_LOOP_H */
