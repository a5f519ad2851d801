#!/bin/sh
# shellcheck disable=SC2154 # NAME_addr, NAME_ns are set by lib.sh (eval)
# trans.sh - transactional messages and orderly consumers' queue locks
# over raw sockets (tests/clients/trans.js, tests/clients/locks.js)
# against a standalone daemon with short transaction and lock timers:
#
#   1. transactionCheckInterval=500 transactionTimeOut=1500
#      transactionCheckMax=3 rebalanceLockMaxLiveTime=2000: every
#      transaction case of trans.js (commit, rollback, checks answered
#      commit / rollback / never, no producer, repeated ENDs, refusals)
#      and every lock case of locks.js; a clean stop, after which
#      consumerOffset.json holds the CID_RMQ_SYS_TRANS offsets.
#   2. restarted with transactionCheckInterval=2000 transactionTimeOut=1000
#      transactionCheckMax=5: a transaction left pending after its first
#      check, then kill -9 and a restart: it is checked again (count
#      carried on) and committed; finished ones are not touched again.
#   3. restarted with rejectTransactionMessage=true: halves refused.
# Each stop must be clean, and the logs free of errors.
set -u
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$0")/lib.sh"
t_init trans

# run_js NAME TIMEOUT_S SCRIPT: a raw-protocol client whose PASS/FAIL lines
# count for this test (environment passed by the caller).
run_js() {
    rj_name=$1
    timeout -k 5 "$2" "$NODE" "$CLIENTS/$3" >"$T_WORK/$rj_name.out" 2>&1
    rj_rc=$?
    while IFS= read -r line; do
        case $line in
        PASS*) echo "PASS $T_NAME: ${line#PASS }" ;;
        FAIL*) fail "${line#FAIL }" ;;
        *) echo "[$T_NAME] $line" ;;
        esac
    done <"$T_WORK/$rj_name.out"
    [ "$rj_rc" -eq 0 ] || grep -q '^FAIL' "$T_WORK/$rj_name.out" || fail "$3 ($rj_name) exited with status $rj_rc"
}

for k in transactionCheckInterval transactionTimeOut transactionCheckMax rejectTransactionMessage \
    rebalanceLockMaxLiveTime; do
    if "$SPROCKETD" --help-config 2>&1 | grep -q "^$k "; then
        pass "--help-config lists $k"
    else
        fail "--help-config does not list $k"
    fi
done

# 1 ------------------------------------------------------------------------
start_standalone sd --transactionCheckInterval=500 --transactionTimeOut=1500 \
    --transactionCheckMax=3 --rebalanceLockMaxLiveTime=2000
BROKER=$sd_addr MODE=main CHECK_INTERVAL_MS=500 TIMEOUT_MS=1500 CHECK_MAX=3 \
    run_js trans-main 60 trans.js
BROKER=$sd_addr LOCK_LIVE_MS=2000 run_js locks 40 locks.js
daemon_alive sd || die "daemon died during the transaction and lock checks"
daemon_stop sd
if grep -q 'RMQ_SYS_TRANS_HALF_TOPIC@CID_RMQ_SYS_TRANS' "$T_WORK/sd/config/consumerOffset.json" &&
    grep -q 'RMQ_SYS_TRANS_OP_HALF_TOPIC@CID_RMQ_SYS_TRANS' "$T_WORK/sd/config/consumerOffset.json"; then
    pass "consumerOffset.json holds the CID_RMQ_SYS_TRANS offsets of the half and op queues"
else
    fail "consumerOffset.json lacks the CID_RMQ_SYS_TRANS offsets: $(cat "$T_WORK/sd/config/consumerOffset.json")"
fi

# 2 ------------------------------------------------------------------------
TX2="--transactionCheckInterval=2000 --transactionTimeOut=1000 --transactionCheckMax=5"
# shellcheck disable=SC2086 # TX2 is a list of arguments
start_standalone sd $TX2
BROKER=$sd_addr MODE=before-restart STATE=$T_WORK/trans.state CHECK_INTERVAL_MS=2000 \
    TIMEOUT_MS=1000 CHECK_MAX=5 run_js trans-before 30 trans.js
daemon_kill9 sd
# shellcheck disable=SC2086
start_standalone sd $TX2
BROKER=$sd_addr MODE=after-restart STATE=$T_WORK/trans.state CHECK_INTERVAL_MS=2000 \
    TIMEOUT_MS=1000 CHECK_MAX=5 run_js trans-after 40 trans.js
daemon_stop sd

# 3 ------------------------------------------------------------------------
start_standalone sd --rejectTransactionMessage=true
BROKER=$sd_addr MODE=reject run_js trans-reject 20 trans.js
daemon_stop sd
t_finish
