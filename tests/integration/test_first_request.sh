#!/bin/sh
# Issue 10 §2: a consumer's first key request for a root goes out as soon as
# the root's first ciphertext arrives, also when the root's key topics were
# made by someone else with many partitions (a broker's auto-creation: the
# Python package does not create them; an administrator). The node used to
# count their partitions and look up the end of each through its own
# consumer, where a broker answers each look-up only after that consumer's
# fetch in progress (fetch.wait.max.ms, 500 ms by default): 2.5 s for the 4
# partitions of an auto-created sensor.keys, 12 s for the 24 here. It now
# asks through its producer, whose connection has no fetch waiting.
. "$(dirname "$0")/lib.sh"

broker_up --topic sensor.keys:24 --topic sensor.temp:1
provision_nodes "$WORK" thermo:producer reader:consumer
X="-X security.protocol=PLAINTEXT"

first_message_reader reader sensor.temp
sleep 1 # its node is idle now: a fetch of the management topics always waits at the broker

printf 'kitchen\t21.5 C\n' >"$WORK/in"
"$KC_BIN" --log-level INFO produce --node "$WORK/thermo.config" -b "$B" $X -t sensor.temp \
    --serve 60 <"$WORK/in" >"$WORK/thermo.out" 2>"$WORK/thermo.err" &
THERMO=$!
PIDS="$PIDS $THERMO"
wait_for 30 grep -qs "serving keys" "$WORK/thermo.err" ||
    fail "producer did not start: $(cat "$WORK/thermo.err")"
start=$(date +%s%N) # the message is in sensor.temp now
wait_for 40 test -s "$WORK/reader.out" ||
    fail "nothing decrypted within 40 s: $(cat "$WORK/reader.err")"
ms=$(( ($(date +%s%N) - start) / 1000000 ))
printf 'kitchen\t21.5 C\n' | cmp -s - "$WORK/reader.out" ||
    fail "consumer printed: $(cat "$WORK/reader.out")"
contains reader.err "Sending new subscribe request(s) for root=sensor"
# Now about 1.5 s, the test broker's fetch waits mostly; 13 s and more
# before. The bound leaves room for a loaded machine.
[ "$ms" -lt 6000 ] || fail "first message decrypted $ms ms after it was sent (limit 6000)"
pass "first message of a root whose key topics have 24 partitions decrypted $ms ms after it was sent"

# stopped while the broker is up: closing against a gone broker is slow
wait "$READER" || fail "consumer exited $?: $(tail -3 "$WORK/reader.err")"
kill -TERM "$THERMO"
wait "$THERMO" || fail "producer exited $? on SIGTERM: $(tail -3 "$WORK/thermo.err")"
PIDS=$(echo "$PIDS" | sed "s/ $READER//; s/ $THERMO//")
