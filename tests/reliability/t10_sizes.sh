#!/bin/sh
# t10_sizes.sh - RELIABILITY.md T10: boundary-sized messages.
#
#   sh tests/reliability/t10_sizes.sh [BUILD_DIR]      (default build)
#
# A standalone broker with maxMessageSize 131072 and 1 MiB CommitLog
# segments; raw SEND_MESSAGE_V2 / SEND_BATCH_MESSAGE requests from
# `netload send` (tests/crash/netload.c). Checks, one cycle:
#   - a body of exactly maxMessageSize is stored (0), one byte more is
#     refused with MESSAGE_ILLEGAL (13);
#   - a property string of 32,768 bytes is refused with 13; one of
#     exactly 32,767 bytes is refused with 13 as well, because the broker
#     adds its own properties (CLUSTER, the record CRC) before the 32,767
#     limit of the stored record applies, as RocketMQ does; the largest
#     client string that fits (32,767 minus those) is stored;
#   - a topic name of 127 characters (auto-created) is stored, 128 refused;
#   - a batch of 1,024 messages is stored, 1,025 refused with 13; a batch
#     whose total is at maxMessageSize is stored, one message over it
#     refused with 13;
#   - ten 100,000-byte messages fill segment 0 to within less than one
#     more; the eleventh gets a blank end-of-file record at the end of
#     segment 0 (its 8 bytes read with od: size = the rest of the segment,
#     magic code 0xcbd43194) and is written at the start of segment 1
#     (offset 1048576), as `sprocket store dump --records` shows after a
#     clean stop; `sprocket store check` passes.
# Environment: T10_CYCLES (default 1; each cycle uses a fresh broker).
set -u
TID=t10
LABEL="T10 size limits"
# shellcheck source=SCRIPTDIR/t8_t11_lib.sh
. "$(dirname "$0")/t8_t11_lib.sh"
lib_init "$@"
cycles=${T10_CYCLES:-1}
maxmsg=131072
seg=1048576

# expect CODE TOPIC BODY PROPS [BATCH]: one send; the reply code must be CODE.
expect() {
    want=$1
    shift
    out=$("$netload" send "$baddr" "$@" 2>&1)
    got=$(printf '%s\n' "$out" | sed -n 's/.*reply code \(-*[0-9]*\)$/\1/p')
    [ "$got" = "$want" ]
    check $? "$(printf '%s' "$out" | sed 's/topic \(.\{20\}\)[^,]*,/topic \1...,/;s/^netload: send: //') (want $want)"
}

c=0
while [ $c -lt "$cycles" ]; do
    c=$((c + 1))
    work_c=$work/c$c
    mkdir -p "$work_c"
    start_broker --maxMessageSize=$maxmsg --mappedFileSizeCommitLog=$seg
    store=$work/store
    "$sprocket" updateTopic -b "$baddr" -t SizeTopic -r 1 -w 1 >/dev/null 2>&1

    expect 0 SizeTopic $maxmsg 0
    expect 13 SizeTopic $((maxmsg + 1)) 0
    expect 13 SizeTopic 16 32768
    expect 13 SizeTopic 16 32767
    expect 0 SizeTopic 16 32700
    t127=$(printf '%127s' '' | tr ' ' T)
    expect 0 "$t127" 16 0
    expect 29 "${t127}T" 16 0
    expect 0 SizeTopic 10 10 1024
    expect 13 SizeTopic 10 10 1025
    expect 0 SizeTopic $((maxmsg / 2 - 64)) 0 2
    expect 13 SizeTopic $((maxmsg + 1)) 0 1

    # Segment roll-over: start from a fresh segment position count.
    used=$("$sprocket" brokerStatus -b "$baddr" | sed -n 's/^commitLogMaxOffset *: *//p')
    say "cycle $c: CommitLog at offset $used before the roll-over test"
    # Fill with 100,000-byte bodies until less than one more record fits:
    # the first one tells the record size, the rest is arithmetic.
    "$netload" send "$baddr" SizeTopic 100000 0 >/dev/null 2>&1
    now=$("$sprocket" brokerStatus -b "$baddr" | sed -n 's/^commitLogMaxOffset *: *//p')
    rec=$((now - used))
    used=$now
    n=$(((seg - used % seg) / rec))
    if [ "$n" -gt 0 ]; then
        "$netload" send "$baddr" SizeTopic 100000 0 0 "$n" >/dev/null 2>&1
        used=$((used + n * rec))
    fi
    room=$((seg - used % seg))
    before=$used
    expect 0 SizeTopic 100000 0
    now=$("$sprocket" brokerStatus -b "$baddr" | sed -n 's/^commitLogMaxOffset *: *//p')
    [ "$now" = "$((used + rec + room))" ]
    check $? "cycle $c: filled segment 0 to $used with $rec-byte records ($room bytes left)"
    after=$("$sprocket" brokerStatus -b "$baddr" | sed -n 's/^commitLogMaxOffset *: *//p')
    seg1=$(((before / seg + 1) * seg))
    [ "$after" -gt "$seg1" ] && [ "$after" -lt $((seg1 + 100300)) ]
    check $? "cycle $c: the record that did not fit ($room bytes left at $before) went to the next segment: max offset now $after (segment starts at $seg1)"
    stop_broker
    "$sprocket" store dump "$store" --records 2>&1 | cut -c1-160 >"$work_c/dump.txt"
    grep -q "^record $seg1 " "$work_c/dump.txt"
    check $? "cycle $c: store dump shows a record at offset $seg1, the start of the next segment: $(grep "^record $seg1 " "$work_c/dump.txt" | cut -c1-70)"
    # The blank end-of-file record sits where the last record of segment 0
    # ended: its size field is the rest of the segment, then the BLANK magic
    # code (FORMAT.md). `store dump` does not list it, so read the bytes.
    seg0=$(printf '%020d' $((seg1 - seg)))
    pos=$((before - (seg1 - seg)))
    blank=$(od -A n -t x1 -j "$pos" -N 8 "$store/commitlog/$seg0" | tr -d ' \n')
    want=$(printf '%08xcbd43194' $((seg1 - before)))
    [ "$blank" = "$want" ]
    check $? "cycle $c: blank end-of-file record at $before (segment $seg0 + $pos): bytes $blank (size $((seg1 - before)), magic cbd43194)"
    "$sprocket" store check "$store" >"$work_c/check.txt" 2>&1
    check $? "cycle $c: sprocket store check: $(tail -n 1 "$work_c/check.txt")"
    san_check "$blog"
done
lib_finish "$cycles"
