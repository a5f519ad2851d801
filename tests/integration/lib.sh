# shellcheck shell=sh disable=SC2154 # NAME_pid variables are set with eval
# lib.sh - shared harness for the integration tests (sourced, POSIX sh).
#
# A test calls t_init NAME, starts daemons with start_standalone /
# start_namesrv / start_broker, runs the node clients in tests/clients,
# reports with pass/fail, and ends with t_finish (which also fails the
# test on sanitizer reports or unexpected error lines in daemon logs).
#
# Environment:
#   SPROCKETD      the daemon (default build/sprocketd)
#   NODE           node binary (default node)
#   KEEP=1         keep the work directory even when the test passes
#   DAEMON_ARGS    extra --key=value arguments for every daemon
#   SEGMENT_SIZE   brokers' CommitLog segment size (64 MiB: tests must not
#                  need gigabytes of disk)
#   ALLOW_LOG_ERRORS  extended regex of daemon "E" lines the test accepts
#                  (tests add their own with allow_log_errors)
#
# Everything a test starts is recorded and killed, by pid, on exit.

T_ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CLIENTS=$T_ROOT/tests/clients
SPROCKETD=${SPROCKETD:-$T_ROOT/build/sprocketd}
NODE=${NODE:-node}
T_FAILS=0
T_PIDS=""
T_DAEMONS=""
T_ALLOW_ERR=${ALLOW_LOG_ERRORS:-}

t_log() {
    printf '%s [%s] %s\n' "$(date +%H:%M:%S)" "$T_NAME" "$*"
}

pass() {
    echo "PASS $T_NAME: $*"
}

fail() {
    echo "FAIL $T_NAME: $*"
    T_FAILS=$((T_FAILS + 1))
}

# die MSG: fail and stop the test now (the EXIT trap cleans up).
die() {
    fail "$*"
    t_dump_logs
    exit 1
}

# t_init NAME: work directory, traps, prerequisites.
t_init() {
    T_NAME=$1
    if [ ! -x "$SPROCKETD" ]; then
        echo "SKIP $T_NAME: $SPROCKETD not built"
        exit 77
    fi
    if [ ! -d "$CLIENTS/node_modules/ali-ons" ]; then
        sh "$T_ROOT/scripts/bootstrap_node.sh" >&2 || {
            echo "FAIL $T_NAME: node clients not installed (scripts/bootstrap_node.sh)"
            exit 1
        }
    fi
    T_WORK=$(mktemp -d "${TMPDIR:-/tmp}/spk-it-$T_NAME-XXXXXX") || exit 2
    T_START=$(date +%s)
    trap t_cleanup EXIT
    trap 'exit 130' INT TERM
    t_log "work directory $T_WORK"
}

# Kills whatever is still running (by recorded pid), keeps the work
# directory when the test failed or KEEP=1.
t_cleanup() {
    t_rc=$?
    for p in $T_PIDS; do
        if kill -0 "$p" 2>/dev/null; then
            kill -TERM "$p" 2>/dev/null
        fi
    done
    sleep 0.2 2>/dev/null || sleep 1
    for p in $T_PIDS; do
        if kill -0 "$p" 2>/dev/null; then
            kill -KILL "$p" 2>/dev/null
        fi
    done
    if [ "$t_rc" -ne 0 ] || [ "$T_FAILS" -ne 0 ] || [ "${KEEP:-0}" = 1 ]; then
        echo "[$T_NAME] logs kept in $T_WORK"
    else
        rm -rf "$T_WORK"
    fi
}

t_track() {
    T_PIDS="$T_PIDS $1"
}

# ports N: N free ports in [20000, 60000), space separated.
ports() {
    "$NODE" "$CLIENTS/ports.js" "$1"
}

# now_ms: wall-clock milliseconds (the clients log Date.now()).
now_ms() {
    "$NODE" -e 'process.stdout.write(String(Date.now()))'
}

# ---------------------------------------------------------------- daemons

# daemon_start NAME ROLE ARGS...: starts $SPROCKETD in the background,
# output in $T_WORK/NAME.log (appended across restarts), pid in
# $T_WORK/NAME.pid and in the variable NAME_pid.
daemon_start() {
    d_name=$1
    shift
    # shellcheck disable=SC2086 # DAEMON_ARGS is a list of words
    "$SPROCKETD" "$@" ${DAEMON_ARGS:-} >>"$T_WORK/$d_name.log" 2>&1 &
    d_pid=$!
    echo "$d_pid" >"$T_WORK/$d_name.pid"
    eval "${d_name}_pid=$d_pid"
    t_track "$d_pid"
    case " $T_DAEMONS " in
    *" $d_name "*) ;;
    *) T_DAEMONS="$T_DAEMONS $d_name" ;;
    esac
    echo "$(date +%H:%M:%S) --- started: $SPROCKETD $* (pid $d_pid)" >>"$T_WORK/$d_name.cmd"
}

daemon_pid() {
    cat "$T_WORK/$1.pid"
}

daemon_alive() {
    kill -0 "$(daemon_pid "$1")" 2>/dev/null
}

# daemon_stop NAME: SIGTERM, wait up to 15 s (then SIGKILL); fails the
# test unless the daemon exited with status 0.
daemon_stop() {
    s_pid=$(daemon_pid "$1")
    if ! kill -0 "$s_pid" 2>/dev/null; then
        fail "$1 (pid $s_pid) was not running at shutdown"
        return 1
    fi
    kill -TERM "$s_pid"
    s_i=0
    while kill -0 "$s_pid" 2>/dev/null && [ "$s_i" -lt 150 ]; do
        sleep 0.1
        s_i=$((s_i + 1))
    done
    if kill -0 "$s_pid" 2>/dev/null; then
        kill -KILL "$s_pid" 2>/dev/null
        wait "$s_pid" 2>/dev/null
        fail "$1 did not exit within 15 s of SIGTERM"
        return 1
    fi
    wait "$s_pid"
    s_rc=$?
    if [ "$s_rc" -eq 0 ]; then
        pass "$1 exited cleanly on SIGTERM"
    else
        fail "$1 exited with status $s_rc on SIGTERM"
        return 1
    fi
}

# daemon_kill9 NAME
daemon_kill9() {
    k_pid=$(daemon_pid "$1")
    kill -KILL "$k_pid" 2>/dev/null
    wait "$k_pid" 2>/dev/null
    echo "$(date +%H:%M:%S) --- killed with SIGKILL (pid $k_pid)" >>"$T_WORK/$1.log"
}

# wait_tcp NAME ADDR [MS]: waits for ADDR to accept, failing early if the
# daemon NAME died.
wait_tcp() {
    w_end=$(($(date +%s) + ${3:-15000} / 1000))
    while :; do
        if "$NODE" "$CLIENTS/admin.js" wait-tcp "$2" 1000 2>/dev/null; then
            return 0
        fi
        if ! daemon_alive "$1"; then
            return 1
        fi
        if [ "$(date +%s)" -ge "$w_end" ]; then
            return 1
        fi
    done
}

# The message delay levels every test daemon uses: 18 levels of 1 s, so
# retries (level 3 + reconsumeTimes) come back after a second.
DELAY_LEVELS="1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s"

# start_standalone NAME [ARGS...]: name server + broker in one process on
# fresh ports and a fresh store under $T_WORK/NAME. Sets NAME_ns
# (name server address) and NAME_addr (broker address); reuses the ports
# and the store when called again for the same NAME (a restart). Retries
# with other ports if the daemon dies at start-up.
start_standalone() {
    ss_name=$1
    shift
    eval "ss_ns=\${${ss_name}_ns:-}"
    ss_try=0
    while :; do
        ss_try=$((ss_try + 1))
        if [ -z "$ss_ns" ]; then
            # shellcheck disable=SC2046
            set -- $(ports 2) "$@"
            ss_np=$1
            ss_bp=$2
            shift 2
            eval "${ss_name}_ns=127.0.0.1:$ss_np ${ss_name}_addr=127.0.0.1:$ss_bp"
            eval "${ss_name}_np=$ss_np ${ss_name}_bp=$ss_bp"
        fi
        eval "ss_np=\$${ss_name}_np ss_bp=\$${ss_name}_bp"
        mkdir -p "$T_WORK/$ss_name"
        daemon_start "$ss_name" standalone \
            --listenPort="$ss_bp" --namesrvListenPort="$ss_np" \
            --namesrvAddr="127.0.0.1:$ss_np" --brokerIP1=127.0.0.1 \
            --storePathRootDir="$T_WORK/$ss_name" \
            --brokerName=broker-a --brokerClusterName=DefaultCluster \
            --messageDelayLevel="$DELAY_LEVELS" \
            --mappedFileSizeCommitLog="${SEGMENT_SIZE:-67108864}" "$@"
        if wait_tcp "$ss_name" "127.0.0.1:$ss_bp" 15000 &&
            wait_tcp "$ss_name" "127.0.0.1:$ss_np" 5000 &&
            "$NODE" "$CLIENTS/admin.js" wait-namesrv "127.0.0.1:$ss_np" 10000; then
            t_log "$ss_name up: name server 127.0.0.1:$ss_np, broker 127.0.0.1:$ss_bp (pid $(daemon_pid "$ss_name"))"
            return 0
        fi
        if daemon_alive "$ss_name" || [ "$ss_try" -ge 3 ] || [ -n "$ss_ns" ]; then
            t_dump_logs
            die "$ss_name did not come up"
        fi
        t_log "$ss_name exited at start-up; retrying on other ports"
        eval "${ss_name}_ns="
        ss_ns=""
    done
}

# start_namesrv NAME: sets NAME_addr.
start_namesrv() {
    # shellcheck disable=SC2046
    set -- "$1" $(ports 1)
    eval "$1_addr=127.0.0.1:$2"
    daemon_start "$1" namesrv --listenPort="$2"
    wait_tcp "$1" "127.0.0.1:$2" 15000 || die "$1 did not come up"
    "$NODE" "$CLIENTS/admin.js" wait-namesrv "127.0.0.1:$2" 10000 || die "$1 does not answer"
    t_log "$1 up: 127.0.0.1:$2"
}

# start_broker NAME NAMESRV BROKERNAME [ARGS...]: sets NAME_addr.
start_broker() {
    sb_name=$1
    sb_ns=$2
    sb_bn=$3
    shift 3
    # shellcheck disable=SC2046
    set -- $(ports 1) "$@"
    sb_port=$1
    shift
    eval "${sb_name}_addr=127.0.0.1:$sb_port"
    mkdir -p "$T_WORK/$sb_name"
    daemon_start "$sb_name" broker --listenPort="$sb_port" --namesrvAddr="$sb_ns" \
        --brokerIP1=127.0.0.1 --brokerName="$sb_bn" --brokerClusterName=DefaultCluster \
        --brokerId=0 --storePathRootDir="$T_WORK/$sb_name" \
        --messageDelayLevel="$DELAY_LEVELS" \
        --mappedFileSizeCommitLog="${SEGMENT_SIZE:-67108864}" "$@"
    wait_tcp "$sb_name" "127.0.0.1:$sb_port" 15000 || die "$sb_name did not come up"
    t_log "$sb_name ($sb_bn) up: 127.0.0.1:$sb_port"
}

# create_topic BROKER_ADDR TOPIC [QUEUES]
create_topic() {
    "$NODE" "$CLIENTS/admin.js" create-topic "$1" "$2" "${3:-4}" 6 15000 ||
        die "could not create topic $2 on $1"
}

# wait_route NAMESRV TOPIC BROKERNAMES
wait_route() {
    "$NODE" "$CLIENTS/admin.js" wait-route "$1" "$2" "$3" 20000 ||
        die "no route for $2 with $3 on $1"
}

# ---------------------------------------------------------------- clients

# run_client NAME TIMEOUT_S SCRIPT: runs a node script in the foreground,
# output in $T_WORK/NAME.out; returns its status. Environment for the
# script is passed by the caller as usual (VAR=... run_client ...).
run_client() {
    rc_name=$1
    rc_to=$2
    shift 2
    timeout -k 5 "$rc_to" "$NODE" "$CLIENTS/$1" >"$T_WORK/$rc_name.out" 2>&1
    rc_rc=$?
    tail -n 1 "$T_WORK/$rc_name.out" | sed "s/^/[$T_NAME] $rc_name: /"
    return $rc_rc
}

# bg_client NAME TIMEOUT_S SCRIPT: same in the background; NAME_pid is
# node's own pid (no timeout(1) in between, so that kill9_client hits
# node): the scripts stop themselves at MAX_MS, and TIMEOUT_S is only
# documentation here; the EXIT trap kills whatever is left.
bg_client() {
    bc_name=$1
    shift 2
    "$NODE" "$CLIENTS/$1" >"$T_WORK/$bc_name.out" 2>&1 &
    bc_pid=$!
    eval "${bc_name}_pid=$bc_pid"
    t_track "$bc_pid"
}

# wait_client NAME: waits for a background client; returns its status.
wait_client() {
    eval "wc_pid=\$${1}_pid"
    wait "$wc_pid"
    wc_rc=$?
    tail -n 1 "$T_WORK/$1.out" | sed "s/^/[$T_NAME] $1: /"
    return $wc_rc
}

# stop_client NAME: SIGTERM (consume.js closes cleanly) and wait.
stop_client() {
    eval "st_pid=\$${1}_pid"
    kill -TERM "$st_pid" 2>/dev/null
    wait "$st_pid"
    st_rc=$?
    tail -n 1 "$T_WORK/$1.out" | sed "s/^/[$T_NAME] $1: /"
    return $st_rc
}

# kill9_client NAME
kill9_client() {
    eval "kc_pid=\$${1}_pid"
    kill -KILL "$kc_pid" 2>/dev/null
    wait "$kc_pid" 2>/dev/null
}

# distinct_keys FILE[,FILE...]: distinct keys delivered so far.
distinct_keys() {
    "$NODE" "$CLIENTS/check.js" count "$1"
}

# wait_keys FILES N TIMEOUT_S: until FILES hold N distinct keys.
wait_keys() {
    wk_end=$(($(date +%s) + $3))
    while :; do
        wk_n=$(distinct_keys "$1")
        [ "$wk_n" -ge "$2" ] && return 0
        if [ "$(date +%s)" -ge "$wk_end" ]; then
            t_log "only $wk_n/$2 distinct keys after $3 s"
            return 1
        fi
        sleep 0.5
    done
}

# wait_delivered ACKS FILES TIMEOUT_S: until every acknowledged key in
# ACKS appears in FILES.
wait_delivered() {
    wd_end=$(($(date +%s) + $3))
    while :; do
        wd_n=$("$NODE" "$CLIENTS/check.js" missing --acks "$1" --deliveries "$2")
        [ "$wd_n" -eq 0 ] && return 0
        if [ "$(date +%s)" -ge "$wd_end" ]; then
            t_log "$wd_n acknowledged keys still not delivered after $3 s"
            return 1
        fi
        sleep 0.5
    done
}

# check ARGS...: node check.js ARGS, its PASS/FAIL lines prefixed with the
# test name; a FAIL line counts as a failure of the test.
check() {
    "$NODE" "$CLIENTS/check.js" "$@" >"$T_WORK/check.tmp" 2>&1
    ck_rc=$?
    while IFS= read -r ck_line; do
        case $ck_line in
        PASS*) echo "PASS $T_NAME: ${ck_line#PASS }" ;;
        FAIL*) fail "${ck_line#FAIL }" ;;
        *) echo "[$T_NAME] $ck_line" ;;
        esac
    done <"$T_WORK/check.tmp"
    cat "$T_WORK/check.tmp" >>"$T_WORK/check.log"
    if [ "$ck_rc" -ne 0 ] && ! grep -q '^FAIL' "$T_WORK/check.tmp"; then
        fail "check.js $1 exited with status $ck_rc"
    fi
    return $ck_rc
}

# ---------------------------------------------------------------- logs

# allow_log_errors REGEX: daemon "E" lines matching REGEX are expected.
allow_log_errors() {
    if [ -n "$T_ALLOW_ERR" ]; then
        T_ALLOW_ERR="$T_ALLOW_ERR|$1"
    else
        T_ALLOW_ERR=$1
    fi
}

# Daemon log lines read "pid:role yyyy-mm-dd hh:mm:ss.mmm L module: msg".
T_ERR_RE='^[0-9]+:[A-Za-z-] [0-9]{4}-[0-9]{2}-[0-9]{2} [0-9:.]+ E '
T_SAN_RE='ERROR: (AddressSanitizer|LeakSanitizer|ThreadSanitizer)|WARNING: ThreadSanitizer|runtime error:'

# t_check_logs: sanitizer reports and unexpected error lines fail the test.
t_check_logs() {
    for d in $T_DAEMONS; do
        f=$T_WORK/$d.log
        [ -f "$f" ] || continue
        if grep -Eq "$T_SAN_RE" "$f"; then
            fail "sanitizer report in $d.log"
            grep -E -m 5 "$T_SAN_RE" "$f"
        fi
        if [ -n "$T_ALLOW_ERR" ]; then
            grep -E "$T_ERR_RE" "$f" | grep -Ev "$T_ALLOW_ERR" >"$T_WORK/errlines" || true
        else
            grep -E "$T_ERR_RE" "$f" >"$T_WORK/errlines" || true
        fi
        if [ -s "$T_WORK/errlines" ]; then
            fail "$d logged $(wc -l <"$T_WORK/errlines") unexpected error line(s)"
            head -n 5 "$T_WORK/errlines"
        fi
    done
}

t_dump_logs() {
    for d in $T_DAEMONS; do
        [ -f "$T_WORK/$d.log" ] || continue
        echo "---- last lines of $d.log"
        tail -n 15 "$T_WORK/$d.log"
    done
}

# t_finish: log checks, the verdict line, the exit status.
t_finish() {
    t_check_logs
    t_secs=$(($(date +%s) - T_START))
    if [ "$T_FAILS" -eq 0 ]; then
        echo "PASS $T_NAME (${t_secs} s)"
        exit 0
    fi
    t_dump_logs
    echo "FAIL $T_NAME: $T_FAILS failure(s) (${t_secs} s)"
    exit 1
}
