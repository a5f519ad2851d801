#!/bin/sh
# store_tools.sh - `sprocket store check` and `store dump` on a real store.
#
#   sh tests/tools/store_tools.sh BUILD_DIR
#
# Builds a store with the crash writer (killed, then recovered and closed
# cleanly by its verifier), then checks that:
#   - `store check` passes it (exit 0, "OK");
#   - `store dump` prints its records, queue units and checkpoint;
#   - a flipped byte in a record body makes `store check` exit 1 with a
#     line naming the segment file and the byte offset;
#   - a damaged ConsumeQueue unit is reported with its file;
#   - bad usage exits 2.
set -u

build=${1:?usage: sh tests/tools/store_tools.sh BUILD_DIR}
spk=$build/sprocket
writer=$build/tests/crashwriter
dir=$(mktemp -d "${TMPDIR:-/tmp}/spk-tools-XXXXXX") || exit 2
trap 'rm -rf "$dir"' EXIT
store=$dir/store
failures=0

fail() {
    echo "store_tools: FAIL: $1"
    failures=$((failures + 1))
}

"$writer" write "$store" 1 >"$dir/acks" 2>"$dir/writer.err" &
pid=$!
sleep 0.4
kill -9 "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
"$writer" verify "$store" "$dir/acks" close >"$dir/verify.out" 2>&1 ||
    { cat "$dir/verify.out"; echo "store_tools: FAIL: could not build the store"; exit 1; }
acked=$(wc -l <"$dir/acks" | tr -d ' ')
[ "$acked" -gt 10 ] || { echo "store_tools: FAIL: only $acked messages written"; exit 1; }

# 1. A healthy store passes.
"$spk" store check "$store" >"$dir/check1.out" 2>&1
rc=$?
[ $rc -eq 0 ] || fail "check of a healthy store exited $rc: $(tail -n 3 "$dir/check1.out")"
grep -q ": OK" "$dir/check1.out" || fail "check did not say OK: $(tail -n 1 "$dir/check1.out")"

# 2. dump shows records, units and the checkpoint.
"$spk" store dump "$store" >"$dir/dump.out" 2>&1 || fail "dump exited non-zero"
grep -q "^record " "$dir/dump.out" || fail "dump printed no record lines"
records=$(grep -c "^record " "$dir/dump.out")
[ "$records" -ge "$acked" ] || fail "dump shows $records records, $acked were acked"
grep -qi "checkpoint" "$dir/dump.out" || fail "dump printed no checkpoint"

# 3. A flipped byte inside the body of the 5th record.
seg=$store/commitlog/00000000000000000000
pos=$(grep "^record " "$dir/dump.out" | sed -n 5p | awk '{print $2}')
flip=$((pos + 100))
old=$(od -An -tu1 -j "$flip" -N1 "$seg" | tr -d ' ')
new=$(((old + 1) % 256))
printf "$(printf '\\%03o' "$new")" | dd of="$seg" bs=1 seek="$flip" conv=notrunc 2>/dev/null
"$spk" store check "$store" >"$dir/check2.out" 2>&1
rc=$?
[ $rc -eq 1 ] || fail "check of a damaged record exited $rc, want 1"
grep -q "commitlog/00000000000000000000" "$dir/check2.out" ||
    fail "check did not name the segment file: $(head -n 3 "$dir/check2.out")"
grep -q "byte $pos" "$dir/check2.out" ||
    fail "check did not name byte $pos: $(head -n 3 "$dir/check2.out")"
# Put the byte back: the store is healthy again.
printf "$(printf '\\%03o' "$old")" | dd of="$seg" bs=1 seek="$flip" conv=notrunc 2>/dev/null
"$spk" store check "$store" >/dev/null 2>&1 || fail "check still fails after the repair"

# 4. A damaged ConsumeQueue unit (its size field).
cqf=$(find "$store/consumequeue" -type f | head -n 1)
printf '\377' | dd of="$cqf" bs=1 seek=11 conv=notrunc 2>/dev/null
"$spk" store check "$store" >"$dir/check3.out" 2>&1
rc=$?
[ $rc -eq 1 ] || fail "check of a damaged queue unit exited $rc, want 1"
grep -q "consumequeue/" "$dir/check3.out" ||
    fail "check did not name the queue file: $(head -n 3 "$dir/check3.out")"

# 5. Usage errors.
"$spk" store check >/dev/null 2>&1
[ $? -eq 2 ] || fail "check without DIR did not exit 2"
"$spk" store frobnicate "$store" >/dev/null 2>&1
[ $? -eq 2 ] || fail "an unknown subcommand did not exit 2"
"$spk" store check "$dir/nonexistent" >/dev/null 2>&1
[ $? -ne 0 ] || fail "check of a missing directory succeeded"

if [ "$failures" -eq 0 ]; then
    echo "store_tools: 5 checks passed ($acked messages)"
    exit 0
fi
echo "store_tools: $failures failed"
exit 1
