/*
 * loop.c - epoll event loop for remoting connections (see loop.h).
 *
 * Level-triggered epoll. Output is not written from net_conn_send():
 * connections with new output go on a "dirty" list that is flushed once
 * per iteration, after every ready socket has been read, so many replies
 * to pipelined requests leave in one writev.
 *
 * Invariants (in addition to loop.h):
 *   INV-7  A connection is on the dirty list at most once (c->dirty).
 *   INV-8  c->events mirrors what epoll was told for c->fd.
 *   INV-9  rbuf[0..rlen) holds bytes read but not yet consumed as frames;
 *          rcap never exceeds frame_max + READ_CHUNK. rbuf is NULL whenever
 *          rlen is 0 after a read (loop.h INV-5): ten thousand idle
 *          clients must not cost 16 KiB each.
 *   INV-10 c->frame_start is the loop time at which the partial frame now
 *          at the head of rbuf began to arrive (valid while rlen > 0);
 *          c->wprog is the last time queued output made progress (or
 *          became non-empty). The idle scan, once a second, closes on both.
 *   INV-11 l->reserve_fd is an open descriptor except for the moment it
 *          is spent on accepting a connection that must be shed; the
 *          listeners are disarmed (not polled) only while accept_paused.
 */
#include "net/loop.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/bytes.h"
#include "common/clock.h"
#include "common/errors.h"
#include "common/log.h"
#include "proto/remoting.h"

#define READ_CHUNK  (64u * 1024)
#define RBUF_MIN    (16u * 1024)  /* first read buffer of a connection */
#define RBUF_BULK   (256u * 1024) /* reads that fill the buffer grow it to this */
#define READ_BUDGET (256u * 1024) /* bytes read from one connection per iteration */
#define MAX_IOV     64
#define MAX_EVENTS  128
#define BAD_LOG_MS  5000          /* at most one WARN line per interval for bad peers */
#define SHED_LOG_MS 60000         /* ... and for connections refused for lack of fds */
#define ACCEPT_PAUSE_MS 100       /* listeners rest this long when accept cannot proceed */
#define ACCEPT_BATCH 256          /* connections accepted per listener event */
#define SLOW_ITER_US 200000       /* iterations this long are logged ... */
#define SLOW_LOG_MS 10000         /* ... at most once per interval */
#define TRIM_AFTER  (8u << 20)    /* give freed heap back after this much output ... */
#define TRIM_QUIET  (64u << 10)   /* ... once a second passes with less than this */

enum ev_kind { EV_LISTENER = 1, EV_CONN, EV_WAKE };

struct ev_tag {
    enum ev_kind kind;
};

struct chunk {
    struct chunk *next;
    const uint8_t *p;
    size_t len, off;
    void *own;                   /* malloc'd, freed when written */
    void (*release)(void *arg);  /* borrowed bytes */
    void *arg;
};

struct listener {
    struct ev_tag tag;
    struct listener *next;
    int fd;
    struct net_handler h;
    void *ud;
};

struct net_conn {
    struct ev_tag tag;
    struct net_loop *loop;
    struct net_conn *next, *prev;  /* all connections */
    struct net_conn *dnext;        /* dirty list */
    int fd;
    int refs;
    bool closed, dirty, paused;
    uint32_t events;
    uint64_t id;
    char peer[64];
    uint8_t peer_ip[4];
    int peer_port;
    struct net_handler h; /* copied from the listener, which may close first */
    void *hud;
    void *udata;
    uint8_t *rbuf;
    size_t rlen, rcap;
    struct chunk *qhead, *qtail;
    size_t qbytes;
    int64_t last_io;
    int64_t frame_start; /* INV-10 */
    int64_t wprog;       /* INV-10 */
};

struct net_timer {
    struct net_timer *next;
    int64_t due, period;
    void (*fn)(void *arg);
    void *arg;
    bool cancelled;
};

struct net_wakeup {
    struct net_wakeup *next;
    struct net_loop *loop;
    void (*fn)(void *arg);
    void *arg;
    int pending; /* atomic */
};

struct net_loop {
    int epfd;
    struct {
        struct ev_tag tag;
        int fd;
    } wake;
    int stop; /* atomic */
    struct listener *listeners;
    struct listener *closed_listeners; /* freed with the loop: events may still name them */
    struct net_conn *conns;
    struct net_conn *dirty;
    struct net_timer *timers;
    struct net_wakeup *wakeups;
    struct net_limits lim;
    int64_t now;
    int64_t last_idle_scan;
    uint64_t next_id;
    struct net_stats st;
    struct net_iter_hist ih;
    int reserve_fd;      /* INV-11 */
    int fd_ceiling;      /* accepted descriptors at or above this are shed */
    bool accept_paused;
    struct spk_log_rl rl_bad, rl_shed, rl_slow;
    size_t npaused; /* open connections with c->paused set */
    uint64_t trim_mark; /* st.bytes_out at the last malloc_trim */
    uint64_t scan_out;  /* st.bytes_out at the last idle scan */
};

static void conn_close(struct net_conn *c, const char *why);

static void
iter_record(struct net_loop *l, uint64_t us, int nevents)
{
    l->ih.count[net_iter_bucket(us)]++;
    l->ih.n++;
    if (us > l->ih.max_us)
        l->ih.max_us = us;
    /* Every client waits while the loop is busy: say so (rarely). */
    if (us >= SLOW_ITER_US)
        spk_log_ratelimited(&l->rl_slow, SLOW_LOG_MS, SPK_LOG_WARN, "net",
                            "an event-loop iteration took %llu ms (%d events)",
                            (unsigned long long)(us / 1000), nevents);
}

/*
 * Accepted descriptors must leave NET_FD_HEADROOM below RLIMIT_NOFILE for
 * the rest of the process (segments, index files, the name-server
 * client): a flood of clients must cost them connections, not the store
 * its ability to open its next file. Read again at each net_listen, so a
 * limit raised at start-up counts.
 */
static void
update_fd_ceiling(struct net_loop *l)
{
    struct rlimit rl;
    rlim_t cur = 1024;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        cur = rl.rlim_cur;
    if (cur > (1u << 24)) /* RLIM_INFINITY included */
        cur = 1u << 24;
    /* A tiny limit (a test's) keeps a quarter in reserve instead. */
    l->fd_ceiling = cur > 4 * NET_FD_HEADROOM ? (int)(cur - NET_FD_HEADROOM) : (int)(cur * 3 / 4);
}

int
net_loop_create(struct net_loop **out)
{
    struct net_loop *l = calloc(1, sizeof(*l));
    struct epoll_event ev;

    if (!l)
        return -ENOMEM;
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    l->wake.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    l->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (l->epfd < 0 || l->wake.fd < 0 || l->reserve_fd < 0)
        goto fail;
    l->wake.tag.kind = EV_WAKE;
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    ev.data.ptr = &l->wake.tag;
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->wake.fd, &ev) < 0)
        goto fail;
    l->lim.out_soft = 32u << 20;
    l->lim.out_hard = 512u << 20;
    l->lim.idle_ms = 120000;
    l->lim.frame_max = PROTO_FRAME_MAX;
    l->lim.read_timeout_ms = NET_READ_TIMEOUT_MS;
    l->lim.stall_ms = NET_STALL_TIMEOUT_MS;
    update_fd_ceiling(l);
    l->now = spk_mono_ms();
    l->last_idle_scan = l->now;
    l->next_id = 1;
    *out = l;
    return 0;
fail: {
        int rc = -errno;
        if (l->epfd >= 0)
            close(l->epfd);
        if (l->wake.fd >= 0)
            close(l->wake.fd);
        if (l->reserve_fd >= 0)
            close(l->reserve_fd);
        free(l);
        return rc;
    }
}

void
net_loop_set_limits(struct net_loop *l, const struct net_limits *lim)
{
    l->lim = *lim;
    if (l->lim.frame_max == 0 || l->lim.frame_max > PROTO_FRAME_MAX)
        l->lim.frame_max = PROTO_FRAME_MAX;
}

int64_t
net_loop_now(struct net_loop *l)
{
    return l->now;
}

void
net_loop_close_listeners(struct net_loop *l)
{
    struct listener *ls;

    while ((ls = l->listeners) != NULL) {
        l->listeners = ls->next;
        epoll_ctl(l->epfd, EPOLL_CTL_DEL, ls->fd, NULL);
        close(ls->fd);
        ls->fd = -1;
        ls->next = l->closed_listeners;
        l->closed_listeners = ls;
    }
}

void
net_loop_destroy(struct net_loop *l)
{
    struct listener *ls;
    struct net_timer *t;
    struct net_wakeup *w;

    if (!l)
        return;
    while (l->conns)
        conn_close(l->conns, NULL);
    net_loop_close_listeners(l);
    while ((ls = l->closed_listeners) != NULL) {
        l->closed_listeners = ls->next;
        free(ls);
    }
    while ((t = l->timers) != NULL) {
        l->timers = t->next;
        free(t);
    }
    while ((w = l->wakeups) != NULL) {
        l->wakeups = w->next;
        free(w);
    }
    close(l->epfd);
    close(l->wake.fd);
    if (l->reserve_fd >= 0)
        close(l->reserve_fd);
    free(l);
}

int
net_listen(struct net_loop *l, const char *host, int port, const struct net_handler *h, void *ud,
           char *err, size_t errlen)
{
    struct sockaddr_in sa;
    struct listener *ls;
    struct epoll_event ev;
    int fd, one = 1, rc;

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    if (port <= 0 || port > 65535 || inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        snprintf(err, errlen, "cannot listen on %s:%d: not an IPv4 address and port", host, port);
        return -EINVAL;
    }
    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        rc = -errno;
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return rc;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 1024) < 0) {
        rc = -errno;
        snprintf(err, errlen, "cannot listen on %s:%d: %s%s", host, port, strerror(errno),
                 errno == EADDRINUSE ? " (another process is using the port; pick another with "
                                       "--listenPort)" : "");
        close(fd);
        return rc;
    }
    ls = calloc(1, sizeof(*ls));
    if (!ls) {
        close(fd);
        return -ENOMEM;
    }
    ls->tag.kind = EV_LISTENER;
    ls->fd = fd;
    ls->h = *h;
    ls->ud = ud;
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    ev.data.ptr = &ls->tag;
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        rc = -errno;
        snprintf(err, errlen, "epoll_ctl: %s", strerror(errno));
        close(fd);
        free(ls);
        return rc;
    }
    ls->next = l->listeners;
    l->listeners = ls;
    update_fd_ceiling(l);
    return 0;
}

/* Timers and wakeups ---------------------------------------------------- */

struct net_timer *
net_timer_add(struct net_loop *l, int64_t delay_ms, int64_t period_ms, void (*fn)(void *arg),
              void *arg)
{
    struct net_timer *t = calloc(1, sizeof(*t));

    if (!t)
        return NULL;
    t->due = spk_mono_ms() + (delay_ms > 0 ? delay_ms : 0);
    t->period = period_ms > 0 ? period_ms : 0;
    t->fn = fn;
    t->arg = arg;
    t->next = l->timers;
    l->timers = t;
    return t;
}

void
net_timer_cancel(struct net_loop *l, struct net_timer *t)
{
    (void)l;
    if (t)
        t->cancelled = true; /* freed by the next run_timers() */
}

static int64_t
run_timers(struct net_loop *l)
{
    /* Run from a detached list: a callback may add timers (they land on
     * l->timers and are merged back below) or cancel any timer. */
    struct net_timer *list = l->timers, **pp = &list, *t;
    int64_t next = -1;

    l->timers = NULL;
    while ((t = *pp) != NULL) {
        if (!t->cancelled && t->due <= l->now) {
            t->fn(t->arg);
            if (t->period > 0 && !t->cancelled)
                t->due = l->now + t->period;
            else
                t->cancelled = true;
        }
        if (t->cancelled) {
            *pp = t->next;
            free(t);
            continue;
        }
        if (next < 0 || t->due < next)
            next = t->due;
        pp = &t->next;
    }
    /* timers added by callbacks: they count for the next wake-up too */
    for (t = l->timers; t; t = t->next)
        if (!t->cancelled && (next < 0 || t->due < next))
            next = t->due;
    *pp = l->timers;
    l->timers = list;
    return next;
}

struct net_wakeup *
net_wakeup_add(struct net_loop *l, void (*fn)(void *arg), void *arg)
{
    struct net_wakeup *w = calloc(1, sizeof(*w));

    if (!w)
        return NULL;
    w->fn = fn;
    w->arg = arg;
    w->loop = l;
    w->next = l->wakeups;
    l->wakeups = w;
    return w;
}

void
net_wakeup_signal(struct net_wakeup *w)
{
    uint64_t one = 1;

    if (__atomic_exchange_n(&w->pending, 1, __ATOMIC_ACQ_REL) == 0) {
        /* One eventfd serves every wakeup of the loop. */
        if (write(w->loop->wake.fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
            spk_log(SPK_LOG_WARN, "net", "eventfd write: %s", strerror(errno));
    }
}

void
net_loop_stop(struct net_loop *l)
{
    uint64_t one = 1;

    __atomic_store_n(&l->stop, 1, __ATOMIC_RELEASE);
    if (write(l->wake.fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        spk_log(SPK_LOG_WARN, "net", "eventfd write: %s", strerror(errno));
}

static void
run_wakeups(struct net_loop *l)
{
    uint64_t v;
    struct net_wakeup *w;

    if (read(l->wake.fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
        spk_log(SPK_LOG_WARN, "net", "eventfd read: %s", strerror(errno));
    for (w = l->wakeups; w; w = w->next)
        if (__atomic_exchange_n(&w->pending, 0, __ATOMIC_ACQ_REL))
            w->fn(w->arg);
}

/* Connections ------------------------------------------------------------ */

static void
conn_set_events(struct net_conn *c, uint32_t events)
{
    struct epoll_event ev;

    if (c->closed || events == c->events)
        return;
    memset(&ev, 0, sizeof(ev));
    ev.events = events;
    ev.data.ptr = &c->tag;
    if (epoll_ctl(c->loop->epfd, EPOLL_CTL_MOD, c->fd, &ev) == 0)
        c->events = events;
}

static void
chunk_free(struct chunk *k)
{
    if (k->own)
        free(k->own);
    else if (k->release)
        k->release(k->arg);
    free(k);
}

static void
conn_pause(struct net_conn *c)
{
    if (!c->paused) {
        c->paused = true;
        c->loop->npaused++;
    }
}

static void
rbuf_release(struct net_conn *c)
{
    c->loop->st.rbuf_bytes -= c->rcap;
    free(c->rbuf);
    c->rbuf = NULL;
    c->rcap = c->rlen = 0;
}

static void
conn_free(struct net_conn *c)
{
    free(c);
}

void
net_conn_hold(struct net_conn *c)
{
    c->refs++;
}

void
net_conn_put(struct net_conn *c)
{
    if (--c->refs == 0)
        conn_free(c);
}

static void
conn_close(struct net_conn *c, const char *why)
{
    struct net_loop *l = c->loop;
    struct chunk *k;

    if (c->closed)
        return;
    if (why)
        spk_log(SPK_LOG_INFO, "net", "closing %s (conn %llu): %s", c->peer, (unsigned long long)c->id,
                why);
    c->closed = true;
    if (c->paused)
        l->npaused--; /* c->paused stays set: nothing is read after close */
    epoll_ctl(l->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    /* Nothing reads rbuf after close; freed here, while the loop (and its
     * byte count) surely exists, not when the last reference goes. */
    if (c->rbuf)
        rbuf_release(c);
    while ((k = c->qhead) != NULL) {
        c->qhead = k->next;
        chunk_free(k);
    }
    c->qtail = NULL;
    c->qbytes = 0;
    if (c->prev)
        c->prev->next = c->next;
    else
        l->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->next = c->prev = NULL;
    l->st.closed++;
    l->st.conns--;
    if (c->h.on_close)
        c->h.on_close(c->hud, c);
    net_conn_put(c); /* the loop's reference */
}

void
net_conn_close(struct net_conn *c)
{
    conn_close(c, NULL);
}

/* Closes <c> for misbehaving, with a WARN line rate-limited across the loop. */
static void
conn_close_warn(struct net_conn *c, const char *why)
{
    struct net_loop *l = c->loop;

    if (c->closed)
        return;
    spk_log_ratelimited(&l->rl_bad, BAD_LOG_MS, SPK_LOG_WARN, "net", "closing %s (conn %llu): %s",
                        c->peer, (unsigned long long)c->id, why);
    conn_close(c, NULL);
}

void
net_conn_close_bad(struct net_conn *c, const char *why)
{
    if (c->closed)
        return;
    c->loop->st.bad_frames++;
    conn_close_warn(c, why);
}

int
net_conn_is_closed(const struct net_conn *c)
{
    return c->closed;
}

uint64_t
net_conn_id(const struct net_conn *c)
{
    return c->id;
}

const char *
net_conn_peer(const struct net_conn *c)
{
    return c->peer;
}

void
net_conn_peer_addr(const struct net_conn *c, uint8_t ip[4], int *port)
{
    memcpy(ip, c->peer_ip, 4);
    *port = c->peer_port;
}

void *
net_conn_udata(const struct net_conn *c)
{
    return c->udata;
}

void
net_conn_set_udata(struct net_conn *c, void *ud)
{
    c->udata = ud;
}

size_t
net_conn_outq(const struct net_conn *c)
{
    return c->qbytes;
}

struct net_loop *
net_conn_loop(const struct net_conn *c)
{
    return c->loop;
}

static int
queue_chunk(struct net_conn *c, struct chunk *k)
{
    struct net_loop *l = c->loop;

    if (c->closed) {
        chunk_free(k);
        return SPK_ESHUTDOWN;
    }
    k->next = NULL;
    if (c->qtail) {
        c->qtail->next = k;
    } else {
        c->qhead = k;
        c->wprog = l->now; /* a stall is measured from here */
    }
    c->qtail = k;
    c->qbytes += k->len;
    if (!c->dirty) {
        c->dirty = true;
        net_conn_hold(c);
        c->dnext = l->dirty;
        l->dirty = c;
    }
    if (c->qbytes > l->lim.out_hard) {
        l->st.limit_closed++;
        conn_close_warn(c, "output queue over the hard limit (the peer does not read its replies)");
        return SPK_ETOOBIG;
    }
    return 0;
}

int
net_conn_send(struct net_conn *c, void *buf, size_t len)
{
    struct chunk *k = calloc(1, sizeof(*k));

    if (!k) {
        free(buf);
        return -ENOMEM;
    }
    k->p = buf;
    k->len = len;
    k->own = buf;
    return queue_chunk(c, k);
}

int
net_conn_send_ref(struct net_conn *c, const void *p, size_t len, void (*release)(void *arg),
                  void *arg)
{
    struct chunk *k = calloc(1, sizeof(*k));

    if (!k) {
        if (release)
            release(arg);
        return -ENOMEM;
    }
    k->p = p;
    k->len = len;
    k->release = release;
    k->arg = arg;
    return queue_chunk(c, k);
}

/* Writes as much queued output as the socket takes. */
static void
conn_flush(struct net_conn *c)
{
    struct net_loop *l = c->loop;
    struct iovec iov[MAX_IOV];

    while (!c->closed && c->qhead) {
        struct chunk *k = c->qhead;
        int n = 0;
        ssize_t w;

        for (; k && n < MAX_IOV; k = k->next, n++) {
            iov[n].iov_base = (void *)(k->p + k->off);
            iov[n].iov_len = k->len - k->off;
        }
        w = writev(c->fd, iov, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            conn_close(c, strerror(errno));
            return;
        }
        l->st.bytes_out += (uint64_t)w;
        c->last_io = l->now;
        c->wprog = l->now;
        c->qbytes -= (size_t)w;
        while (w > 0) {
            k = c->qhead;
            size_t left = k->len - k->off;
            if ((size_t)w < left) {
                k->off += (size_t)w;
                w = 0;
                break;
            }
            w -= (ssize_t)left;
            c->qhead = k->next;
            if (!c->qhead)
                c->qtail = NULL;
            chunk_free(k);
        }
        /* drop zero-length chunks at the head */
        while ((k = c->qhead) != NULL && k->off == k->len) {
            c->qhead = k->next;
            if (!c->qhead)
                c->qtail = NULL;
            chunk_free(k);
        }
    }
    if (c->closed)
        return;
    {
        /* Pausing happens here or in conn_frames; resuming only in
         * resume_paused(), which also delivers frames already buffered. */
        uint32_t ev = 0;
        if (c->qbytes > l->lim.out_soft)
            conn_pause(c);
        if (!c->paused)
            ev |= EPOLLIN;
        if (c->qhead)
            ev |= EPOLLOUT;
        conn_set_events(c, ev);
    }
}

static void
flush_dirty(struct net_loop *l)
{
    struct net_conn *c;

    while ((c = l->dirty) != NULL) {
        l->dirty = c->dnext;
        c->dirty = false;
        if (!c->closed)
            conn_flush(c);
        net_conn_put(c);
    }
}

/* Listeners stop being polled (accept_paused) and are re-armed by a timer. */
static void
listeners_arm(struct net_loop *l, bool on)
{
    for (struct listener *ls = l->listeners; ls; ls = ls->next) {
        struct epoll_event ev;

        memset(&ev, 0, sizeof(ev));
        ev.events = on ? EPOLLIN : 0;
        ev.data.ptr = &ls->tag;
        (void)epoll_ctl(l->epfd, EPOLL_CTL_MOD, ls->fd, &ev);
    }
    l->accept_paused = !on;
}

static void
accept_resume(void *arg)
{
    struct net_loop *l = arg;

    if (l->accept_paused)
        listeners_arm(l, true);
}

/*
 * accept4 failed with <err> other than EAGAIN/EINTR. Returns true if the
 * caller may try to accept again, false if it must stop for this event.
 *
 * EMFILE/ENFILE leave the pending connection in the backlog, so a
 * level-triggered listener would wake the loop at once, forever: the
 * reserve descriptor is given up to accept that connection and close it
 * (the peer sees a clean close rather than a hang), then taken back.
 * When even that fails, or for ENOBUFS/ENOMEM, the listeners rest for
 * ACCEPT_PAUSE_MS. Either way the log gets one line per SHED_LOG_MS.
 */
static bool
accept_failed(struct net_loop *l, struct listener *ls, int err)
{
    if (err == ECONNABORTED || err == EPROTO)
        return true; /* that peer gave up; the next may be fine */
    if ((err == EMFILE || err == ENFILE) && l->reserve_fd >= 0) {
        int fd;

        close(l->reserve_fd);
        fd = accept4(ls->fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd >= 0) {
            close(fd);
            l->st.shed++;
        }
        l->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        spk_log_ratelimited(&l->rl_shed, SHED_LOG_MS, SPK_LOG_WARN, "net",
                            "accept: %s: closing new connections until descriptors are free "
                            "(%llu so far; raise ulimit -n)",
                            strerror(err), (unsigned long long)l->st.shed);
        if (fd >= 0 && l->reserve_fd >= 0)
            return true;
    } else {
        spk_log_ratelimited(&l->rl_shed, SHED_LOG_MS, SPK_LOG_WARN, "net",
                            "accept: %s: not accepting for %d ms", strerror(err),
                            ACCEPT_PAUSE_MS);
    }
    if (!l->accept_paused) {
        listeners_arm(l, false);
        if (!net_timer_add(l, ACCEPT_PAUSE_MS, 0, accept_resume, l))
            listeners_arm(l, true); /* no timer: better to spin than to stop listening */
    }
    return false;
}

static void
conn_accept(struct net_loop *l, struct listener *ls)
{
    if (ls->fd < 0 || l->accept_paused)
        return; /* closed by a callback earlier in this batch, or resting */
    /* A bounded batch per event: an accept storm must not stretch one
     * iteration (the listener stays ready, so the rest come next turn). */
    for (int batch = 0; batch < ACCEPT_BATCH; batch++) {
        struct sockaddr_in sa;
        socklen_t salen = sizeof(sa);
        struct net_conn *c;
        struct epoll_event ev;
        char ip[INET_ADDRSTRLEN];
        int one = 1;
        int fd = accept4(ls->fd, (struct sockaddr *)&sa, &salen, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK || !accept_failed(l, ls, errno))
                return;
            continue;
        }
        if (fd >= l->fd_ceiling) {
            close(fd);
            l->st.shed++;
            spk_log_ratelimited(&l->rl_shed, SHED_LOG_MS, SPK_LOG_WARN, "net",
                                "closing new connections: fewer than %d descriptors left below "
                                "the limit (%llu so far; raise ulimit -n)",
                                NET_FD_HEADROOM, (unsigned long long)l->st.shed);
            continue;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        c = calloc(1, sizeof(*c));
        if (!c) {
            close(fd);
            continue;
        }
        c->tag.kind = EV_CONN;
        c->loop = l;
        c->fd = fd;
        c->refs = 1;
        c->id = l->next_id++;
        c->h = ls->h;
        c->hud = ls->ud;
        c->last_io = l->now;
        if (!inet_ntop(AF_INET, &sa.sin_addr, ip, sizeof(ip)))
            strcpy(ip, "?");
        snprintf(c->peer, sizeof(c->peer), "%s:%u", ip, ntohs(sa.sin_port));
        memcpy(c->peer_ip, &sa.sin_addr.s_addr, 4);
        c->peer_port = ntohs(sa.sin_port);
        memset(&ev, 0, sizeof(ev));
        ev.events = EPOLLIN;
        ev.data.ptr = &c->tag;
        if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
            close(fd);
            free(c);
            continue;
        }
        c->events = EPOLLIN;
        c->next = l->conns;
        if (l->conns)
            l->conns->prev = c;
        l->conns = c;
        l->st.accepted++;
        l->st.conns++;
    }
}

/* Splits and delivers the frames in rbuf. Returns false if c closed. */
static bool
conn_frames(struct net_conn *c)
{
    struct net_loop *l = c->loop;
    size_t pos = 0;

    while (!c->closed && !c->paused) {
        size_t flen;
        int rc;

        /* Output already over the soft limit: deliver nothing more until
         * it drains (INV-2), even within one read's burst of frames. */
        if (c->qbytes > l->lim.out_soft) {
            conn_pause(c);
            break;
        }
        rc = proto_frame_split(c->rbuf + pos, c->rlen - pos, &flen);

        /* A length word over the limit is refused as soon as it arrives,
         * not after the peer has made us buffer that much. */
        if (rc == -EAGAIN && c->rlen - pos >= 4 &&
            (size_t)be_get32(c->rbuf + pos) + 4 > l->lim.frame_max)
            rc = SPK_ETOOBIG;
        if (rc == -EAGAIN)
            break;
        if (rc < 0 || flen > l->lim.frame_max) {
            char why[96];
            snprintf(why, sizeof(why), "%s (length field %u)",
                     rc == SPK_EFORMAT ? "malformed frame length" : "frame longer than the limit",
                     c->rlen - pos >= 4 ? be_get32(c->rbuf + pos) : 0);
            net_conn_close_bad(c, why);
            return false;
        }
        l->st.frames_in++;
        c->h.on_frame(c->hud, c, c->rbuf + pos, flen);
        pos += flen;
    }
    if (c->closed)
        return false;
    if (pos > 0) {
        memmove(c->rbuf, c->rbuf + pos, c->rlen - pos);
        c->rlen -= pos;
    }
    /* The read timeout counts from the first byte of the frame now at
     * the head (INV-10): a new one began if any frame was consumed. */
    if (c->rlen > 0 && (pos > 0 || c->frame_start == 0))
        c->frame_start = l->now;
    else if (c->rlen == 0)
        c->frame_start = 0;
    return true;
}

static void
conn_read(struct net_conn *c)
{
    struct net_loop *l = c->loop;
    int grow = 0;
    size_t budget = READ_BUDGET;

    net_conn_hold(c);
    /* One connection gets at most READ_BUDGET bytes per iteration: 100k
     * tiny pipelined frames must not hold every other client up. What is
     * left stays in the socket, and level-triggered epoll reports it. */
    while (!c->closed && !c->paused && budget > 0) {
        size_t want;
        ssize_t r;

        /*
         * The buffer starts small (thousands of idle clients must not
         * cost 64 KiB each), doubles while reads fill it (a busy pipelined
         * connection reads RBUF_BULK at a time) or a frame needs more, and
         * is dropped when it is empty and big (below).
         */
        if (c->rcap - c->rlen < RBUF_MIN / 4 || (grow && c->rcap < RBUF_BULK)) {
            size_t need = c->rcap ? c->rcap * 2 : RBUF_MIN;
            uint8_t *nb;
            if (need > l->lim.frame_max + READ_CHUNK)
                need = l->lim.frame_max + READ_CHUNK;
            if (need <= c->rcap) {
                /* a frame this big must have been rejected by the splitter */
                conn_close(c, "read buffer full");
                break;
            }
            nb = realloc(c->rbuf, need);
            if (!nb) {
                conn_close(c, "out of memory");
                break;
            }
            l->st.rbuf_bytes += need - c->rcap;
            c->rbuf = nb;
            c->rcap = need;
        }
        want = c->rcap - c->rlen;
        r = read(c->fd, c->rbuf + c->rlen, want);
        if (r == 0) {
            conn_close(c, NULL);
            break;
        }
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                conn_close(c, strerror(errno));
            break;
        }
        grow = (size_t)r == want;
        budget = (size_t)r < budget ? budget - (size_t)r : 0;
        l->st.bytes_in += (uint64_t)r;
        c->last_io = l->now;
        c->rlen += (size_t)r;
        if (!conn_frames(c))
            break;
        if (!grow)
            break; /* the socket is drained */
    }
    /* Nothing buffered: give the buffer back (INV-9). An idle connection
     * then costs its struct only; a busy one pays a malloc per read that
     * ends on a frame boundary, which is cheap beside the read itself. */
    if (!c->closed && c->rlen == 0 && c->rbuf)
        rbuf_release(c);
    /* Paused with frames still buffered: they are delivered on resume. */
    if (!c->closed && c->paused)
        conn_set_events(c, c->qhead ? EPOLLOUT : 0);
    net_conn_put(c);
}

static void
idle_scan(struct net_loop *l)
{
    struct net_conn *c = l->conns, *n;

    l->last_idle_scan = l->now;
    /*
     * A burst of replies (100k pipelined requests) leaves the heap full of
     * freed holes that malloc keeps. When the burst is over (a quiet
     * second after a lot of output), hand them back, so that the resident
     * size returns to where it was (T8); steady traffic is never slowed
     * by it, since it reuses the holes anyway.
     */
    if (l->st.bytes_out - l->trim_mark > TRIM_AFTER &&
        l->st.bytes_out - l->scan_out < TRIM_QUIET) {
        l->trim_mark = l->st.bytes_out;
        (void)malloc_trim(0);
    }
    l->scan_out = l->st.bytes_out;
    for (; c; c = n) {
        char why[128];

        n = c->next; /* conn_close unlinks c only, and runs no frame callback */
        if (l->lim.read_timeout_ms > 0 && c->rlen > 0 && !c->paused &&
            l->now - c->frame_start > l->lim.read_timeout_ms) {
            l->st.read_timeouts++;
            snprintf(why, sizeof(why), "frame not completed within %lld ms (%zu bytes so far)",
                     (long long)l->lim.read_timeout_ms, c->rlen);
            conn_close_warn(c, why);
        } else if (l->lim.stall_ms > 0 && c->qhead && l->now - c->wprog > l->lim.stall_ms) {
            l->st.stall_closed++;
            snprintf(why, sizeof(why),
                     "the peer has not read its replies for %lld ms (%zu bytes queued)",
                     (long long)(l->now - c->wprog), c->qbytes);
            conn_close_warn(c, why);
        } else if (l->lim.idle_ms > 0 && !c->qhead && l->now - c->last_io > l->lim.idle_ms) {
            /* A connection with output waiting is not idle: the peer is slow. */
            l->st.idle_closed++;
            conn_close(c, "idle");
        }
    }
}

/*
 * Connections that were paused and whose output drained resume here: the
 * frames already buffered are delivered and reading starts again. Returns
 * true if any frames were delivered (they may have queued output).
 */
static bool
resume_paused(struct net_loop *l)
{
    bool delivered = false;

    if (l->npaused == 0)
        return false; /* the common case: no walk over every connection */
    /* conn_frames runs callbacks that may close any connection, so the
     * scan restarts after each delivery rather than trusting c->next. */
restart:
    for (struct net_conn *c = l->conns; c; c = c->next) {
        if (c->paused && c->qbytes <= l->lim.out_soft / 2) {
            c->paused = false;
            l->npaused--;
            conn_set_events(c, EPOLLIN | (c->qhead ? EPOLLOUT : 0));
            if (c->rlen) {
                net_conn_hold(c);
                conn_frames(c);
                net_conn_put(c);
                delivered = true;
                goto restart;
            }
        }
    }
    return delivered;
}

int
net_loop_run(struct net_loop *l)
{
    struct epoll_event evs[MAX_EVENTS];
    uint64_t woke_ns = 0; /* when the last epoll_wait returned; 0 before the first */
    int nev = 0;

    while (!__atomic_load_n(&l->stop, __ATOMIC_ACQUIRE)) {
        int64_t next, start;
        int timeout, n, i;

        l->now = spk_mono_ms();
        next = run_timers(l);
        /* A paused connection whose output the kernel took at once has no
         * event to wait for: resume it now, and flush what that queues. */
        do {
            flush_dirty(l);
        } while (resume_paused(l));
        timeout = 1000;
        if (next >= 0) {
            int64_t d = next - spk_mono_ms();
            if (d < timeout)
                timeout = d < 0 ? 0 : (int)d;
        }
        if (woke_ns)
            iter_record(l, (spk_mono_ns() - woke_ns) / 1000, nev);
        n = epoll_wait(l->epfd, evs, MAX_EVENTS, timeout);
        woke_ns = spk_mono_ns();
        nev = n;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        l->now = start = spk_mono_ms();
        /* A callback may close any connection: every connection of this
         * batch is held until the batch is done, so none is freed while an
         * event for it is still to be looked at. */
        for (i = 0; i < n; i++) {
            struct ev_tag *tag = evs[i].data.ptr;
            if (tag->kind == EV_CONN)
                net_conn_hold((struct net_conn *)tag);
        }
        for (i = 0; i < n; i++) {
            struct ev_tag *tag = evs[i].data.ptr;
            if (tag->kind == EV_WAKE) {
                run_wakeups(l);
            } else if (tag->kind == EV_LISTENER) {
                conn_accept(l, (struct listener *)tag);
            } else {
                struct net_conn *c = (struct net_conn *)tag;
                if (c->closed)
                    continue;
                if (evs[i].events & (EPOLLERR | EPOLLHUP)) {
                    if (!(evs[i].events & EPOLLIN)) {
                        conn_close(c, NULL);
                        continue;
                    }
                }
                if (evs[i].events & EPOLLOUT)
                    conn_flush(c);
                if (!c->closed && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                    conn_read(c);
            }
        }
        for (i = 0; i < n; i++) {
            struct ev_tag *tag = evs[i].data.ptr;
            if (tag->kind == EV_CONN)
                net_conn_put((struct net_conn *)tag);
        }
        flush_dirty(l);
        l->now = spk_mono_ms();
        if (l->now - l->last_idle_scan >= 1000)
            idle_scan(l);
        if (l->now - start > l->st.max_iter_ms)
            l->st.max_iter_ms = l->now - start;
    }
    flush_dirty(l);
    return 0;
}

void
net_loop_close_all(struct net_loop *l)
{
    flush_dirty(l);
    while (l->conns)
        conn_close(l->conns, NULL);
}

void
net_loop_drain(struct net_loop *l, int timeout_ms)
{
    int64_t deadline = spk_mono_ms() + timeout_ms;

    for (;;) {
        bool pending = false;
        flush_dirty(l);
        for (struct net_conn *c = l->conns, *n; c; c = n) {
            n = c->next; /* conn_flush may close (unlink) c, never another */
            if (c->qhead) {
                net_conn_hold(c);
                conn_flush(c);
                if (!c->closed && c->qhead)
                    pending = true;
                net_conn_put(c);
            }
        }
        if (!pending || spk_mono_ms() >= deadline)
            return;
        {
            struct epoll_event evs[MAX_EVENTS];
            (void)epoll_wait(l->epfd, evs, MAX_EVENTS, 10);
        }
    }
}

void
net_loop_stats(struct net_loop *l, struct net_stats *st, int reset_max)
{
    *st = l->st;
    if (reset_max)
        l->st.max_iter_ms = 0;
}

/* Iteration histogram ------------------------------------------------------ */

int
net_iter_bucket(uint64_t us)
{
    int e, b;

    if (us < 4)
        return (int)us;
    e = 63 - __builtin_clzll(us); /* 2^e <= us < 2^(e+1), e >= 2 */
    b = 4 + (e - 2) * 4 + (int)((us >> (e - 2)) & 3);
    return b < NET_ITER_BUCKETS ? b : NET_ITER_BUCKETS - 1;
}

uint64_t
net_iter_bucket_low(int i)
{
    int e;

    if (i < 4)
        return (uint64_t)(i < 0 ? 0 : i);
    e = (i - 4) / 4 + 2;
    return (uint64_t)(4 + (i - 4) % 4) << (e - 2);
}

uint64_t
net_iter_bucket_high(int i)
{
    if (i >= NET_ITER_BUCKETS - 1)
        return UINT64_MAX;
    return net_iter_bucket_low(i + 1) - 1;
}

uint64_t
net_iter_quantile(const struct net_iter_hist *h, double q)
{
    uint64_t want, seen = 0;

    if (h->n == 0)
        return 0;
    want = (uint64_t)(q * (double)h->n + 0.999999);
    if (want < 1)
        want = 1;
    for (int i = 0; i < NET_ITER_BUCKETS; i++) {
        seen += h->count[i];
        if (seen >= want) {
            uint64_t hi = net_iter_bucket_high(i);
            return hi < h->max_us ? hi : h->max_us;
        }
    }
    return h->max_us;
}

void
net_loop_iter_hist(const struct net_loop *l, struct net_iter_hist *out)
{
    *out = l->ih;
}
