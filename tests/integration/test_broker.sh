#!/bin/sh
# A standalone `kafkacrypto broker` on 127.0.0.1, and a producer and a
# consumer in separate processes exchanging plain messages through it.
. "$(dirname "$0")/lib.sh"

broker_up
addr=$B
case "$addr" in 127.0.0.1:[0-9]*) ;; *) fail "bootstrap file holds '$addr'";; esac
grep -q "listening on $addr" "$WORK/broker.out" || fail "address not printed"
pass "broker started on $addr"

# consumer first: it waits for the messages while the producer sends them
"$KC_BIN" --broker "$addr" run "$HERE/consume_plain.lua" it.plain 50 60 >"$WORK/consumed" &
CONSUMER=$!
PIDS="$PIDS $CONSUMER"
"$KC_BIN" --broker "$addr" run "$HERE/produce_plain.lua" it.plain 50 >"$WORK/produced" \
    || fail "producer failed"
grep -q "sent 50" "$WORK/produced" || fail "producer output"
wait "$CONSUMER" || fail "consumer did not get 50 messages: $(wc -l <"$WORK/consumed") lines"
[ "$(sort "$WORK/consumed" | uniq | wc -l)" = 50 ] || fail "duplicates or losses"
grep -q "^key-17	value-17\$" "$WORK/consumed" || fail "message 17 missing"
pass "50 messages from a producer process to a consumer process"

stop_broker "$WORK/bootstrap"
pass "broker stopped by SIGTERM, bootstrap file removed"

# A fixed bootstrap port (relayed to the mock broker's own port). Ports can
# be taken by others on this machine: try a few.
port=$(( 20000 + $$ % 20000 ))
tries=0
until start_broker "$WORK/fixed" --port "$port" --topic it.fixed:2; do
    grep -q "cannot listen" "$WORK/broker.err" || fail "broker --port: $(cat "$WORK/broker.err")"
    tries=$((tries + 1))
    [ "$tries" -lt 5 ] || fail "no free port found"
    port=$((port + 1))
done
[ "$(cat "$WORK/fixed")" = "127.0.0.1:$port" ] || fail "fixed port not used"
"$KC_BIN" --broker "127.0.0.1:$port" run "$HERE/produce_plain.lua" it.fixed 3 >/dev/null \
    || fail "producer via the fixed port"
"$KC_BIN" --broker "127.0.0.1:$port" run "$HERE/consume_plain.lua" it.fixed 3 60 \
    >"$WORK/consumed2" || fail "consumer via the fixed port"
[ "$(wc -l <"$WORK/consumed2")" = 3 ] || fail "3 messages via the fixed port"
pass "fixed bootstrap port $port"
stop_broker "$WORK/fixed"
