#!/bin/sh
# shellcheck disable=SC2154 # NAME_addr, NAME_ns are set by lib.sh (eval)
# protocol.sh - request-by-request protocol checks over raw sockets
# (tests/clients/protocol.js) against a standalone daemon running with
# SYNC_FLUSH and the harness's 1 s delay levels: sends (10, 310, 320),
# auto-creation, pulls and long polling, offsets, heartbeats and
# NOTIFY_CONSUMER_IDS_CHANGED, send-back to %RETRY%/%DLQ%, delayed
# messages, message lookup, admin and name-server requests, and 2000
# pipelined sends. Then the daemon must exit cleanly.
#
# Environment: SECTIONS, PIPELINE (see protocol.js).
set -u
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$0")/lib.sh"
t_init protocol

start_standalone sd --flushDiskType=SYNC_FLUSH

BROKER=$sd_addr NAMESRV=$sd_ns \
    timeout -k 5 90 "$NODE" "$CLIENTS/protocol.js" >"$T_WORK/protocol.out" 2>&1
p_rc=$?
while IFS= read -r line; do
    case $line in
    PASS*) echo "PASS $T_NAME: ${line#PASS }" ;;
    FAIL*) fail "${line#FAIL }" ;;
    *) echo "[$T_NAME] $line" ;;
    esac
done <"$T_WORK/protocol.out"
[ "$p_rc" -eq 0 ] || grep -q '^FAIL' "$T_WORK/protocol.out" || fail "protocol.js exited with status $p_rc"

daemon_alive sd || die "daemon died during the protocol checks"
daemon_stop sd
t_finish
