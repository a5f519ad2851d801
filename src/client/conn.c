/*
 * conn.c - a client connection: blocking writes, a reader thread, and the
 * table of requests waiting for replies (see conn.h for the invariants).
 *
 * Why a thread per connection rather than an event loop: a client talks
 * to a handful of brokers, and blocking sockets keep the request path a
 * plain write() from the caller's thread, with no hand-off and no wakeup.
 */
#include "client/conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/errors.h"
#include "net/client.h"

#define NBUCKETS 256u
#define READ_CHUNK 65536u

enum pend_kind { PEND_SYNC, PEND_ASYNC };

struct pending {
    struct pending *next;
    int32_t opaque;
    enum pend_kind kind;
    int64_t deadline_ms;
    /* sync: the waiter's slot */
    int done;
    int err;
    uint8_t *frame;
    size_t frame_len;
    /* async */
    cl_reply_fn fn;
    void *ud;
};

struct cl_conn {
    char addr[64];
    int fd;
    pthread_t reader;
    int reader_started;
    atomic_int dead;
    pthread_mutex_t wlock; /* writes */
    pthread_mutex_t plock; /* the pending table */
    pthread_cond_t pcond;  /* sync waiters */
    struct pending *buckets[NBUCKETS];
    size_t npending;
    cl_request_fn on_request;
    void *owner;
};

static _Thread_local int tl_reader;
static atomic_int next_opaque = 1;

int
cl_on_reader_thread(void)
{
    return tl_reader;
}

int32_t
cl_next_opaque(void)
{
    int v = atomic_fetch_add(&next_opaque, 1);

    if (v >= INT32_MAX - 16) { /* wrap to 1, as Java's AtomicInteger users do */
        atomic_store(&next_opaque, 2);
        v = 1;
    }
    return v;
}

const char *
cl_conn_addr(const struct cl_conn *c)
{
    return c->addr;
}

int
cl_conn_dead(const struct cl_conn *c)
{
    return atomic_load(&((struct cl_conn *)c)->dead);
}

/* Removes and returns the pending entry for <opaque>; plock held. */
static struct pending *
take(struct cl_conn *c, int32_t opaque)
{
    struct pending **pp = &c->buckets[(uint32_t)opaque % NBUCKETS];

    for (; *pp; pp = &(*pp)->next) {
        if ((*pp)->opaque == opaque) {
            struct pending *p = *pp;
            *pp = p->next;
            c->npending--;
            return p;
        }
    }
    return NULL;
}

/*
 * Completes a synchronous waiter; plock held, and held since <p> was taken
 * from the table: the waiter's entry lives on its stack, and it may only
 * return once it has seen done or found its entry gone under that lock.
 */
static void
complete_sync(struct cl_conn *c, struct pending *p, int err, const uint8_t *frame, size_t len)
{
    p->err = err;
    if (!err) {
        p->frame = malloc(len);
        if (p->frame) {
            memcpy(p->frame, frame, len);
            p->frame_len = len;
        } else {
            p->err = -ENOMEM;
        }
    }
    p->done = 1;
    pthread_cond_broadcast(&c->pcond);
}

/* Fails every pending request (the connection died). */
static void
fail_all(struct cl_conn *c, int err)
{
    for (;;) {
        struct pending *p = NULL;
        size_t i;

        pthread_mutex_lock(&c->plock);
        for (i = 0; i < NBUCKETS && !p; i++) {
            if (c->buckets[i]) {
                p = c->buckets[i];
                c->buckets[i] = p->next;
                c->npending--;
            }
        }
        if (p && p->kind == PEND_SYNC) {
            complete_sync(c, p, err, NULL, 0);
            p = NULL;
            pthread_mutex_unlock(&c->plock);
            continue;
        }
        pthread_mutex_unlock(&c->plock);
        if (!p)
            return;
        p->fn(p->ud, err, NULL, NULL, 0);
        free(p);
    }
}

static void
handle_frame(struct cl_conn *c, const uint8_t *frame, size_t len)
{
    struct proto_cmd cmd;
    struct pending *p;

    if (proto_decode(frame, len, &cmd) != 0) {
        cl_conn_shutdown(c); /* the stream cannot be trusted any more */
        return;
    }
    if (cmd.flag & PROTO_FLAG_RESPONSE) {
        pthread_mutex_lock(&c->plock);
        p = take(c, cmd.opaque);
        if (p && p->kind == PEND_SYNC) {
            complete_sync(c, p, 0, frame, len);
            p = NULL;
        }
        pthread_mutex_unlock(&c->plock);
        if (p) { /* (none: a reply after its request timed out) */
            p->fn(p->ud, 0, &cmd, frame, len);
            free(p);
        }
    } else if (c->on_request) {
        c->on_request(c->owner, c, &cmd, frame, len);
    }
    proto_cmd_free(&cmd);
}

static void *
reader_main(void *arg)
{
    struct cl_conn *c = arg;
    uint8_t *buf = NULL;
    size_t cap = 0, have = 0;

    tl_reader = 1;
    while (!atomic_load(&c->dead)) {
        size_t flen = 0, want = READ_CHUNK;
        int rc = -EAGAIN;
        ssize_t n;

        while (have >= 4 && (rc = proto_frame_split(buf, have, &flen)) == 0) {
            handle_frame(c, buf, flen);
            memmove(buf, buf + flen, have - flen);
            have -= flen;
        }
        if (have >= 4 && rc != -EAGAIN)
            break; /* a frame length no server sends */
        if (have >= 4) { /* make room for the whole frame being read */
            size_t fl = (((size_t)buf[0] << 24) | ((size_t)buf[1] << 16) |
                         ((size_t)buf[2] << 8) | buf[3]) + 4;
            if (fl > want)
                want = fl;
        }
        if (cap < want || cap - have < 4096) {
            size_t ncap = want > have + READ_CHUNK ? want : have + READ_CHUNK;
            uint8_t *nb = realloc(buf, ncap);

            if (!nb)
                break;
            buf = nb;
            cap = ncap;
        }
        n = recv(c->fd, buf + have, cap - have, 0);
        if (n == 0)
            break;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        have += (size_t)n;
    }
    atomic_store(&c->dead, 1);
    shutdown(c->fd, SHUT_RDWR);
    free(buf);
    fail_all(c, -ECONNRESET);
    return NULL;
}

int
cl_conn_open(const char *addr, int timeout_ms, cl_request_fn on_request, void *owner,
             struct cl_conn **out)
{
    struct sockaddr_in sa;
    struct cl_conn *c;
    int fd, rc, one = 1;
    struct timeval tv;

    if (net_parse_addr(addr, &sa) != 0)
        return -EINVAL;
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        int soerr = 0;
        socklen_t sl = sizeof(soerr);

        if (errno != EINPROGRESS) {
            rc = -errno;
            goto fail;
        }
        rc = poll(&pfd, 1, timeout_ms);
        if (rc == 0) {
            rc = -ETIMEDOUT;
            goto fail;
        }
        if (rc < 0) {
            rc = -errno;
            goto fail;
        }
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
        if (soerr) {
            rc = -soerr;
            goto fail;
        }
    }
    /* Back to blocking, with a send timeout so that a broker that stopped
     * reading cannot hold a writer forever. */
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0) {
        rc = -errno;
        goto fail;
    }
    tv.tv_sec = 10;
    tv.tv_usec = 0;
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c = calloc(1, sizeof(*c));
    if (!c) {
        rc = -ENOMEM;
        goto fail;
    }
    snprintf(c->addr, sizeof(c->addr), "%s", addr);
    c->fd = fd;
    c->on_request = on_request;
    c->owner = owner;
    pthread_mutex_init(&c->wlock, NULL);
    pthread_mutex_init(&c->plock, NULL);
    pthread_cond_init(&c->pcond, NULL);
    rc = pthread_create(&c->reader, NULL, reader_main, c);
    if (rc) {
        pthread_mutex_destroy(&c->wlock);
        pthread_mutex_destroy(&c->plock);
        pthread_cond_destroy(&c->pcond);
        free(c);
        rc = -rc;
        goto fail;
    }
    c->reader_started = 1;
    *out = c;
    return 0;
fail:
    close(fd);
    return rc;
}

void
cl_conn_shutdown(struct cl_conn *c)
{
    atomic_store(&c->dead, 1);
    shutdown(c->fd, SHUT_RDWR);
}

void
cl_conn_free(struct cl_conn *c)
{
    if (!c)
        return;
    cl_conn_shutdown(c);
    if (c->reader_started)
        pthread_join(c->reader, NULL);
    fail_all(c, -ECONNRESET); /* requests added after the reader's last sweep */
    close(c->fd);
    pthread_mutex_destroy(&c->wlock);
    pthread_mutex_destroy(&c->plock);
    pthread_cond_destroy(&c->pcond);
    free(c);
}

static int
write_all(struct cl_conn *c, const uint8_t *p, size_t len)
{
    int rc = 0;

    pthread_mutex_lock(&c->wlock);
    while (len > 0) {
        ssize_t n;

        if (atomic_load(&c->dead)) {
            rc = -ECONNRESET;
            break;
        }
        n = send(c->fd, p, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = errno == EAGAIN ? -ETIMEDOUT : -errno;
            break;
        }
        p += n;
        len -= (size_t)n;
    }
    pthread_mutex_unlock(&c->wlock);
    if (rc)
        cl_conn_shutdown(c); /* a partial frame poisons the stream */
    return rc;
}

int
cl_conn_send_frame(struct cl_conn *c, const uint8_t *frame, size_t len)
{
    return write_all(c, frame, len);
}

static void
add_pending(struct cl_conn *c, struct pending *p)
{
    struct pending **b = &c->buckets[(uint32_t)p->opaque % NBUCKETS];

    p->next = *b;
    *b = p;
    c->npending++;
}

int
cl_conn_call(struct cl_conn *c, const struct proto_reply *req, int timeout_ms,
             struct proto_cmd *reply, uint8_t **frame)
{
    struct pending p;
    struct timespec ts;
    uint8_t *buf;
    size_t len;
    int rc;

    if (tl_reader)
        return -EDEADLK;
    if (atomic_load(&c->dead))
        return -ECONNRESET;
    memset(&p, 0, sizeof(p));
    p.opaque = cl_next_opaque();
    p.kind = PEND_SYNC;
    rc = proto_request_encode(req, p.opaque, 0, &buf, &len);
    if (rc)
        return rc;
    pthread_mutex_lock(&c->plock);
    add_pending(c, &p);
    pthread_mutex_unlock(&c->plock);
    rc = write_all(c, buf, len);
    free(buf);
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&c->plock);
    while (!rc && !p.done) {
        if (pthread_cond_timedwait(&c->pcond, &c->plock, &ts) == ETIMEDOUT && !p.done)
            rc = -ETIMEDOUT;
    }
    if (!p.done) /* still in the table: nobody else will complete it */
        take(c, p.opaque);
    pthread_mutex_unlock(&c->plock);
    if (rc) {
        free(p.frame);
        return rc;
    }
    if (p.err)
        return p.err;
    rc = proto_decode(p.frame, p.frame_len, reply);
    if (rc) {
        free(p.frame);
        return rc;
    }
    *frame = p.frame;
    return 0;
}

int
cl_conn_call_async(struct cl_conn *c, const struct proto_reply *req, int timeout_ms,
                   cl_reply_fn fn, void *ud)
{
    struct pending *p;
    uint8_t *buf;
    size_t len;
    int rc;

    if (atomic_load(&c->dead))
        return -ECONNRESET;
    p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->opaque = cl_next_opaque();
    p->kind = PEND_ASYNC;
    p->deadline_ms = spk_mono_ms() + timeout_ms;
    p->fn = fn;
    p->ud = ud;
    rc = proto_request_encode(req, p->opaque, 0, &buf, &len);
    if (rc) {
        free(p);
        return rc;
    }
    pthread_mutex_lock(&c->plock);
    add_pending(c, p);
    pthread_mutex_unlock(&c->plock);
    rc = write_all(c, buf, len);
    free(buf);
    if (rc) {
        /* Whoever takes it from the table completes it: if the reader's
         * sweep already did, fn has run and this call must report success
         * (INV-1: exactly once). */
        struct pending *mine;

        pthread_mutex_lock(&c->plock);
        mine = take(c, p->opaque);
        pthread_mutex_unlock(&c->plock);
        if (!mine)
            return 0;
        free(mine);
        return rc;
    }
    return 0;
}

int
cl_conn_oneway(struct cl_conn *c, const struct proto_reply *req)
{
    uint8_t *buf;
    size_t len;
    int rc;

    if (atomic_load(&c->dead))
        return -ECONNRESET;
    rc = proto_request_encode(req, cl_next_opaque(), 1, &buf, &len);
    if (rc)
        return rc;
    rc = write_all(c, buf, len);
    free(buf);
    return rc;
}

void
cl_conn_expire(struct cl_conn *c, int64_t now_ms)
{
    for (;;) {
        struct pending *p = NULL, **pp;
        size_t i;

        pthread_mutex_lock(&c->plock);
        for (i = 0; i < NBUCKETS && !p; i++) {
            for (pp = &c->buckets[i]; *pp; pp = &(*pp)->next) {
                if ((*pp)->kind == PEND_ASYNC && (*pp)->deadline_ms <= now_ms) {
                    p = *pp;
                    *pp = p->next;
                    c->npending--;
                    break;
                }
            }
        }
        pthread_mutex_unlock(&c->plock);
        if (!p)
            return;
        p->fn(p->ud, -ETIMEDOUT, NULL, NULL, 0);
        free(p);
    }
}

size_t
cl_conn_inflight(struct cl_conn *c)
{
    size_t n;

    pthread_mutex_lock(&c->plock);
    n = c->npending;
    pthread_mutex_unlock(&c->plock);
    return n;
}
