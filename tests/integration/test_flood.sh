#!/bin/sh
# Made-up key indices (spec D4) on a standalone broker: `kafkacrypto consume`
# reads 10 000 messages whose key indices nobody holds, then a producer it
# has never seen sends one message, which must come out decrypted within
# about one request interval (upstream, and we before D4: never, once 256
# made-up indices wait). tests/soak/soak_flood.sh runs the same for longer
# (FLOOD_SECONDS: rounds of flood and new producer until that many seconds).
. "$(dirname "$0")/lib.sh"

S=2                               # request interval (tunables.crypto_sub_interval), s
MAX_DELAY=$((S + 6))              # one interval, plus a key exchange on a loaded machine
start_broker "$WORK/bootstrap" --topic flood.data:1
B=$(cat "$WORK/bootstrap")
kc() { "$KC_BIN" --set tunables.crypto_sub_interval=$S --broker "$B" "$@"; }

kc run "$HERE/flood.lua" provision "$WORK" 2>"$WORK/provision.err" ||
    fail "provisioning: $(cat "$WORK/provision.err")"
# Past 10 000 messages waiting, the consumer reports each one it gives up
# on: leave those lines out (a soak would write a megabyte a round).
mkfifo "$WORK/cons.fifo"
grep --line-buffered -v "no key received" <"$WORK/cons.fifo" >"$WORK/cons.err" &
PIDS="$PIDS $!"
"$KC_BIN" --set tunables.crypto_sub_interval=$S --broker "$B" consume --node "$WORK/cons.config" \
    --topic flood.data --from-beginning -X security.protocol=PLAINTEXT \
    >"$WORK/cons.out" 2>"$WORK/cons.fifo" &
CONS=$!
PIDS="$PIDS $CONS"
kc run "$HERE/flood.lua" run "$WORK" "${FLOOD_SECONDS:-0}" 10000 "$MAX_DELAY" "$CONS" \
    >"$WORK/flood.out" 2>"$WORK/flood.err" ||
    fail "$(cat "$WORK/flood.out" "$WORK/flood.err"; tail -5 "$WORK/cons.err")"
cat "$WORK/flood.out"
kill -0 "$CONS" 2>/dev/null || fail "the consumer died: $(tail -5 "$WORK/cons.err")"
pass "a new producer's key under a flood of 10000 made-up key indices: within ${MAX_DELAY} s"
