#!/bin/sh
# limits.sh - the broker's answers when it cannot keep up, and registration
# with more than one name server:
#   - SYNC_FLUSH with maxParkedSends=1: pipelined sends beyond the parked
#     limit get SYSTEM_BUSY (2) with a remark, the rest succeed, and a
#     plain send afterwards works;
#   - SYNC_FLUSH with syncFlushTimeout=1 ms under load: sends get 0 or
#     FLUSH_DISK_TIMEOUT (10, how many depends on the disk), and every one
#     is stored all the same (a consumer reads back exactly what was sent);
#   - namesrvAddr with two name servers: the broker registers with both;
#   - a consumer that stops heartbeating (its connection still open) is
#     dropped after channelExpiredTimeout.
# Load comes from `sprocket bench produce|consume` (raw remoting).
# shellcheck disable=SC2154 # NAME_addr variables are set by the start_* helpers
. "$(dirname "$0")/lib.sh"
t_init limits
SPROCKET=${SPROCKET:-$(dirname "$SPROCKETD")/sprocket}
[ -x "$SPROCKET" ] || die "$SPROCKET not built"

# json_num FILE KEY: a number from the bench's last (JSON) line.
json_num() {
    tail -n 1 "$1" | sed -n "s/.*\"$2\":\\([0-9.]*\\).*/\\1/p"
}

# --- SYSTEM_BUSY
start_standalone busy --flushDiskType=SYNC_FLUSH --maxParkedSends=1
"$SPROCKET" bench produce --addr="$busy_addr" --topic=BusyTopic --create-topic --queues=4 \
    --conns=4 --inflight=64 --size=512 --messages=4000 >"$T_WORK/busy.out" 2>&1
if grep -q 'error code 2: .*system busy' "$T_WORK/busy.out"; then
    pass "SYSTEM_BUSY beyond maxParkedSends: $(grep 'error code 2' "$T_WORK/busy.out" | sed 's/^ *//')"
else
    fail "no SYSTEM_BUSY reply: $(tail -n 3 "$T_WORK/busy.out")"
fi
if "$SPROCKET" bench produce --addr="$busy_addr" --topic=BusyTopic --queues=4 --conns=1 \
    --inflight=1 --size=512 --messages=200 >"$T_WORK/busy2.out" 2>&1; then
    pass "one send at a time still succeeds after the overload (200 sends)"
else
    fail "sends after the overload failed: $(tail -n 3 "$T_WORK/busy2.out")"
fi
daemon_stop busy

# --- FLUSH_DISK_TIMEOUT: stored, durability unknown
start_standalone fto --flushDiskType=SYNC_FLUSH --syncFlushTimeout=1
"$SPROCKET" bench produce --addr="$fto_addr" --topic=FtoTopic --create-topic --queues=4 \
    --conns=8 --inflight=128 --size=512 --seconds=3 --messages=400000 >"$T_WORK/fto.out" 2>&1
sent=$(json_num "$T_WORK/fto.out" requests)
errs=$(json_num "$T_WORK/fto.out" errors)
ftos=$(json_num "$T_WORK/fto.out" flush_timeouts)
t_log "sent $sent, errors $errs, of which FLUSH_DISK_TIMEOUT $ftos"
# How many sends outlive 1 ms depends on this disk's fdatasync latency, so
# only "no error but FLUSH_DISK_TIMEOUT" is required; the count is logged.
if [ -n "$ftos" ] && [ "$ftos" = "$errs" ]; then
    pass "under a 1 ms syncFlushTimeout: $ftos FLUSH_DISK_TIMEOUT of $sent sends, no other error"
else
    fail "expected no error but FLUSH_DISK_TIMEOUT, got errors=$errs timeouts=$ftos"
fi
"$SPROCKET" bench consume --addr="$fto_addr" --topic=FtoTopic --queues=4 --batch=32 \
    >"$T_WORK/fto-consume.out" 2>&1
got=$(json_num "$T_WORK/fto-consume.out" messages)
if [ -n "$sent" ] && [ "$got" = "$sent" ]; then
    pass "every send answered 0 or FLUSH_DISK_TIMEOUT is stored ($got messages read back)"
else
    fail "read back $got messages, $sent were sent"
fi
daemon_stop fto

# --- two name servers
start_namesrv ns1
start_namesrv ns2
start_broker b2 "$ns1_addr;$ns2_addr" broker-two
create_topic "$b2_addr" TwoNsTopic 2
for ns in "$ns1_addr" "$ns2_addr"; do
    if "$NODE" "$CLIENTS/admin.js" wait-route "$ns" TwoNsTopic broker-two 15000; then
        pass "name server $ns has the route of TwoNsTopic"
    else
        fail "name server $ns has no route for TwoNsTopic"
    fi
done
daemon_stop b2
daemon_stop ns1
daemon_stop ns2

# --- expiry of a silent client (connection kept open, no heartbeats)
start_standalone exp --channelExpiredTimeout=2000
"$NODE" -e '
const { Conn } = require(process.argv[1] + "/lib/remoting");
const sleep = ms => new Promise(r => setTimeout(r, ms));
(async () => {
  const c = new Conn(process.argv[2]);
  await c.connect(3000);
  const hb = JSON.stringify({ clientID: "127.0.0.1@silent", producerDataSet: [],
    consumerDataSet: [{ groupName: "CG_SILENT", consumeType: "CONSUME_PASSIVELY",
      messageModel: "CLUSTERING", consumeFromWhere: "CONSUME_FROM_FIRST_OFFSET", unitMode: false,
      subscriptionDataSet: [{ topic: "SilentTopic", subString: "*", tagsSet: [], codeSet: [],
        classFilterMode: false, subVersion: 1 }] }] });
  let r = await c.request(34, {}, Buffer.from(hb), 5000);
  if (r.code !== 0) throw new Error("heartbeat answered " + r.code);
  r = await c.request(38, { consumerGroup: "CG_SILENT" }, null, 5000);
  if (r.code !== 0) throw new Error("member not listed after its heartbeat: " + r.code);
  for (let i = 0; i < 80; i++) {           /* up to 8 s: expiry 2 s, scans every 1 s */
    await sleep(100);
    r = await c.request(38, { consumerGroup: "CG_SILENT" }, null, 5000);
    if (r.code !== 0) { console.log("expired after " + (i + 1) * 100 + " ms: " + r.remark); c.close(); return; }
  }
  throw new Error("the silent consumer is still listed after 8 s");
})().catch(e => { console.log("ERROR " + e.message); process.exit(1); });
' "$CLIENTS" "$exp_addr" >"$T_WORK/expiry.out" 2>&1
if [ $? -eq 0 ]; then
    pass "silent consumer dropped: $(cat "$T_WORK/expiry.out")"
else
    fail "silent consumer: $(cat "$T_WORK/expiry.out")"
fi
daemon_stop exp
t_finish
