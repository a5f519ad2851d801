/*
 * conn.h - one remoting connection of the client library.
 *
 * A connection is a blocking TCP socket with a reader thread. Requests are
 * written by the calling thread under the connection's write lock; the
 * reader thread matches replies to waiting requests by opaque and hands
 * requests started by the server (NOTIFY_CONSUMER_IDS_CHANGED,
 * CHECK_TRANSACTION_STATE, ...) to the owner's callback.
 *
 * Invariants:
 *   INV-1  Every request registered with cl_conn_call or cl_conn_call_async
 *          ends exactly once: with its reply, with its deadline
 *          (cl_conn_expire), or with the connection's death; an
 *          asynchronous callback runs exactly once, never under the
 *          connection's locks.
 *   INV-2  Once dead (peer closed, I/O error, cl_conn_shutdown), a
 *          connection stays dead: new requests fail with -ECONNRESET and
 *          the owner opens a new connection. cl_conn_free joins the reader
 *          and is never called from the reader thread itself.
 *   INV-3  Callbacks (async replies, server requests) run on the reader
 *          thread; cl_on_reader_thread() says so, and blocking calls from
 *          there fail with -EDEADLK instead of waiting for a reply that
 *          only this thread could read.
 */
#ifndef SPK_CLIENT_CONN_H
#define SPK_CLIENT_CONN_H

#include <stddef.h>
#include <stdint.h>

#include "proto/remoting.h"
#include "proto/reply.h"

struct cl_conn;

/*
 * A reply (err == 0, <cmd> decoded, <frame> the whole frame; both borrowed
 * for the call) or a failure (err < 0, cmd and frame NULL).
 */
typedef void (*cl_reply_fn)(void *ud, int err, const struct proto_cmd *cmd, const uint8_t *frame,
                            size_t len);

/* A request from the server; borrowed for the call. */
typedef void (*cl_request_fn)(void *owner, struct cl_conn *c, const struct proto_cmd *cmd,
                              const uint8_t *frame, size_t len);

/*
 * Connects to <addr> ("ip:port") within <timeout_ms> and starts the reader.
 * Returns 0, -EINVAL (bad address), -ECONNREFUSED, -ETIMEDOUT, ...
 */
int cl_conn_open(const char *addr, int timeout_ms, cl_request_fn on_request, void *owner,
                 struct cl_conn **out);
/* Makes the connection dead (INV-2) without freeing it; any thread. */
void cl_conn_shutdown(struct cl_conn *c);
/* Shuts down, joins the reader, frees. Not from the reader thread. */
void cl_conn_free(struct cl_conn *c);
int cl_conn_dead(const struct cl_conn *c);
const char *cl_conn_addr(const struct cl_conn *c);

/* A fresh opaque, unique in the process. */
int32_t cl_next_opaque(void);

/*
 * Sends the request built in <req> and waits up to <timeout_ms> for the
 * reply. On 0, *reply (caller frees with proto_cmd_free) and *frame
 * (caller frees; the reply's body points into it) are set.
 * Returns 0, -ETIMEDOUT, -ECONNRESET, -EDEADLK (INV-3), SPK_EFORMAT.
 */
int cl_conn_call(struct cl_conn *c, const struct proto_reply *req, int timeout_ms,
                 struct proto_cmd *reply, uint8_t **frame);
/* As cl_conn_call, but the outcome goes to <fn> (INV-1). Returns 0 or
 * an error (then fn is not called). */
int cl_conn_call_async(struct cl_conn *c, const struct proto_reply *req, int timeout_ms,
                       cl_reply_fn fn, void *ud);
/* A oneway request (no reply is asked for). */
int cl_conn_oneway(struct cl_conn *c, const struct proto_reply *req);
/* Sends an encoded frame as is (replies to server requests). */
int cl_conn_send_frame(struct cl_conn *c, const uint8_t *frame, size_t len);
/* Fails the asynchronous requests whose deadline has passed. */
void cl_conn_expire(struct cl_conn *c, int64_t now_ms);
/* Requests waiting for a reply. */
size_t cl_conn_inflight(struct cl_conn *c);

int cl_on_reader_thread(void);

#endif /* SPK_CLIENT_CONN_H */
