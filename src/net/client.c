/*
 * client.c - blocking request/response (see client.h).
 *
 * Invariant: every wait is bounded by the one deadline computed at the
 * start, so a name server that accepts and never answers costs the caller
 * at most <timeout_ms>.
 */
#include "net/client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/bytes.h"
#include "common/clock.h"
#include "common/errors.h"
#include "proto/remoting.h"

int
net_parse_addr(const char *addr, struct sockaddr_in *sa)
{
    char host[64];
    const char *colon = strrchr(addr, ':');
    char *end;
    long port;
    size_t hl;

    if (!colon)
        return SPK_EFORMAT;
    hl = (size_t)(colon - addr);
    if (hl == 0 || hl >= sizeof(host))
        return SPK_EFORMAT;
    memcpy(host, addr, hl);
    host[hl] = '\0';
    errno = 0;
    port = strtol(colon + 1, &end, 10);
    if (errno || *end || port <= 0 || port > 65535)
        return SPK_EFORMAT;
    memset(sa, 0, sizeof(*sa));
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    if (strcmp(host, "localhost") == 0)
        strcpy(host, "127.0.0.1");
    if (inet_pton(AF_INET, host, &sa->sin_addr) != 1)
        return SPK_EFORMAT;
    return 0;
}

static int
wait_fd(int fd, short ev, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - spk_mono_ms();
        struct pollfd p = {fd, ev, 0};
        int n;

        if (left <= 0)
            return -ETIMEDOUT;
        n = poll(&p, 1, (int)left);
        if (n > 0)
            return 0;
        if (n < 0 && errno != EINTR)
            return -errno;
    }
}

static int
do_connect(const char *addr, int64_t deadline, int *out)
{
    struct sockaddr_in sa;
    int fd, rc, one = 1;

    rc = net_parse_addr(addr, &sa);
    if (rc)
        return rc;
    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        if (errno != EINPROGRESS) {
            rc = -errno;
            close(fd);
            return rc;
        }
        rc = wait_fd(fd, POLLOUT, deadline);
        if (!rc) {
            int soerr = 0;
            socklen_t sl = sizeof(soerr);
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
            rc = -soerr;
        }
        if (rc) {
            close(fd);
            return rc;
        }
    }
    *out = fd;
    return 0;
}

/* Sends <req> on <fd> and reads until the reply to <opaque>. */
static int
exchange(int fd, const uint8_t *req, size_t len, int32_t opaque, int64_t deadline,
         uint8_t **resp, size_t *resp_len)
{
    uint8_t *buf = NULL;
    size_t have = 0, cap = 0, sent = 0;
    int rc;

    while (sent < len) {
        ssize_t w = write(fd, req + sent, len - sent);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN) {
                rc = -errno;
                goto out;
            }
            rc = wait_fd(fd, POLLOUT, deadline);
            if (rc)
                goto out;
            continue;
        }
        sent += (size_t)w;
    }
    for (;;) {
        size_t flen;
        ssize_t r;

        rc = proto_frame_split(buf, have, &flen);
        if (rc == 0) {
            struct proto_cmd c;
            if (proto_decode(buf, flen, &c) != 0) {
                rc = SPK_EFORMAT;
                goto out;
            }
            if (c.opaque == opaque && (c.flag & PROTO_FLAG_RESPONSE)) {
                proto_cmd_free(&c);
                *resp = buf;
                *resp_len = flen;
                buf = NULL;
                rc = 0;
                goto out;
            }
            proto_cmd_free(&c);
            memmove(buf, buf + flen, have - flen);
            have -= flen;
            continue;
        }
        if (rc != -EAGAIN)
            goto out;
        if (cap - have < 4096) {
            size_t ncap = cap ? cap * 2 : 65536;
            uint8_t *nb = realloc(buf, ncap);
            if (!nb) {
                rc = -ENOMEM;
                goto out;
            }
            buf = nb;
            cap = ncap;
        }
        r = read(fd, buf + have, cap - have);
        if (r == 0) {
            rc = -ECONNRESET;
            goto out;
        }
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN) {
                rc = -errno;
                goto out;
            }
            rc = wait_fd(fd, POLLIN, deadline);
            if (rc)
                goto out;
            continue;
        }
        have += (size_t)r;
    }
out:
    free(buf);
    return rc;
}

int
net_call(const char *addr, const uint8_t *req, size_t len, int32_t opaque, int timeout_ms,
         uint8_t **resp, size_t *resp_len)
{
    int64_t deadline = spk_mono_ms() + timeout_ms;
    int fd, rc = do_connect(addr, deadline, &fd);

    if (rc)
        return rc;
    rc = exchange(fd, req, len, opaque, deadline, resp, resp_len);
    close(fd);
    return rc;
}

struct net_client {
    char addr[128];
    int fd;
};

int
net_client_create(const char *addr, struct net_client **out)
{
    struct net_client *cl;
    struct sockaddr_in sa;

    if (strlen(addr) >= sizeof(cl->addr) || net_parse_addr(addr, &sa) != 0)
        return SPK_EFORMAT;
    cl = calloc(1, sizeof(*cl));
    if (!cl)
        return -ENOMEM;
    snprintf(cl->addr, sizeof(cl->addr), "%s", addr);
    cl->fd = -1;
    *out = cl;
    return 0;
}

void
net_client_destroy(struct net_client *cl)
{
    if (!cl)
        return;
    if (cl->fd >= 0)
        close(cl->fd);
    free(cl);
}

const char *
net_client_addr(const struct net_client *cl)
{
    return cl->addr;
}

int
net_client_call(struct net_client *cl, const uint8_t *req, size_t len, int32_t opaque,
                int timeout_ms, uint8_t **resp, size_t *resp_len)
{
    int64_t deadline = spk_mono_ms() + timeout_ms;
    int rc;

    if (cl->fd < 0) {
        rc = do_connect(cl->addr, deadline, &cl->fd);
        if (rc) {
            cl->fd = -1;
            return rc;
        }
    }
    rc = exchange(cl->fd, req, len, opaque, deadline, resp, resp_len);
    if (rc) {
        /* The stream may be mid-frame: start over on the next call. */
        close(cl->fd);
        cl->fd = -1;
    }
    return rc;
}
