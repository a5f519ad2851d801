/*
 * fuzz_remoting.c - libFuzzer target for the RemotingCommand codec: frame
 * splitting, header decoding (JSON and ROCKETMQ binary) and re-encoding of
 * whatever decoded. Input is hostile; the only acceptable outcomes are a
 * clean decode or an error return.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/remoting.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t off = 0, flen;

    /* A stream of frames: split, decode each, encode it back and decode
     * the result again (it must round-trip). */
    while (off < size && proto_frame_split(data + off, size - off, &flen) == 0) {
        struct proto_cmd cmd, again;
        if (proto_decode(data + off, flen, &cmd) == 0) {
            uint8_t *hdr;
            size_t hlen;
            (void)proto_ext_get(&cmd, "topic");
            if (proto_encode_header(&cmd, &hdr, &hlen) == 0) {
                /* Re-frame header + body into one buffer and decode it. */
                uint8_t *frame = malloc(hlen + cmd.body_len + 1);
                if (frame != NULL) {
                    memcpy(frame, hdr, hlen);
                    if (cmd.body_len > 0)
                        memcpy(frame + hlen, cmd.body, cmd.body_len);
                    if (proto_decode(frame, hlen + cmd.body_len, &again) == 0) {
                        if (again.code != cmd.code || again.opaque != cmd.opaque ||
                            again.flag != cmd.flag || again.next != cmd.next)
                            abort(); /* the encoder lost something */
                        proto_cmd_free(&again);
                    } else {
                        abort(); /* our own output must decode */
                    }
                    free(frame);
                }
                free(hdr);
            }
            proto_cmd_free(&cmd);
        }
        off += flen;
    }
    return 0;
}
