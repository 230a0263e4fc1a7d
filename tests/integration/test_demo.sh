#!/bin/sh
# `kafkacrypto demo` (what `make run` shows) works and tells what it claims.
. "$(dirname "$0")/lib.sh"

out="$WORK/demo.out"
timeout 60 "$KC_BIN" demo >"$out" 2>"$WORK/demo.err" || { cat "$WORK/demo.err" >&2; fail "demo exited non-zero"; }
pass "demo exits 0"
grep -q 'decrypted sensor.temperature kitchen  => 21.5 C' "$out" || fail "sensor message not decrypted"
grep -q 'decrypted metrics.cpu' "$out" || fail "metrics message not decrypted"
pass "messages on two roots decrypted"
grep -q 'producer refuses a request for "sensor"' "$out" || fail "refusal of the intruder not shown"
grep -q 'sensor.temperature: cannot decrypt' "$out" || fail "intruder decrypted?"
pass "the unauthorised consumer gets no key"
grep -q 'decoded table: room=kitchen celsius=21.5 ok=true' "$out" || fail "JSON stacking"
pass "JSON stacked with encryption"
! grep -q 'ERROR\|CRITICAL' "$WORK/demo.err" || { cat "$WORK/demo.err" >&2; fail "errors logged"; }
pass "no errors logged"
