/*
 * client.h - blocking request/response calls, off the event loop.
 *
 * For traffic that is rare: a broker's registration with its name servers
 * (every 30 s, from its own thread). A net_client keeps its connection
 * open between calls, because a name server forgets a broker the moment
 * the connection it registered over closes (as RocketMQ's does); any
 * error closes it and the next call reconnects.
 *
 * A net_client is used by one thread at a time.
 */
#ifndef SPK_NET_CLIENT_H
#define SPK_NET_CLIENT_H

#include <stddef.h>
#include <stdint.h>

/*
 * Connects to <addr> ("ip:port"), sends the request frame req[0..len)
 * whose opaque is <opaque>, and reads frames until the response with that
 * opaque arrives, all within <timeout_ms>. *resp (malloc'd, caller frees)
 * holds the whole response frame. Returns 0, -ETIMEDOUT, -ECONNREFUSED,
 * SPK_EFORMAT (bad address or a malformed reply) or another -errno.
 */
int net_call(const char *addr, const uint8_t *req, size_t len, int32_t opaque, int timeout_ms,
             uint8_t **resp, size_t *resp_len);

struct sockaddr_in;

/*
 * Parses "ip:port" (IPv4, or "localhost") into *sa. Returns 0 or
 * SPK_EFORMAT.
 */
int net_parse_addr(const char *addr, struct sockaddr_in *sa);

struct net_client;

/* A client for <addr> ("ip:port"); no connection is made yet. */
int net_client_create(const char *addr, struct net_client **out);
void net_client_destroy(struct net_client *cl);
const char *net_client_addr(const struct net_client *cl);
/* As net_call, over the client's connection (made or remade as needed). */
int net_client_call(struct net_client *cl, const uint8_t *req, size_t len, int32_t opaque,
                    int timeout_ms, uint8_t **resp, size_t *resp_len);

#endif /* SPK_NET_CLIENT_H */
