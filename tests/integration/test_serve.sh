#!/bin/sh
# Spec D2 and D3 on a standalone broker: a node serves every key it holds
# from open (`kafkacrypto serve` after the producer exited; a producer now
# sending to another root still serves its old root), and each key reply is
# sent a second time about a second later.
. "$(dirname "$0")/lib.sh"

start_broker "$WORK/bootstrap"
B=$(cat "$WORK/bootstrap")
X="-X security.protocol=PLAINTEXT"
# tool CMD NODE ARGS...: consumers ask again for a missing key after 1 s.
# In a subshell, `(tool ...) &`: $! is then the tool itself.
tool() {
    cmd=$1 node=$2; shift 2
    exec "$KC_BIN" --set tunables.crypto_sub_interval=1 --log-level "${LEVEL:-INFO}" \
        $cmd --node "$WORK/$node.config" --broker "$B" $X "$@"
}

# stop_tool PID SIGNAL NAME: the tool ends cleanly (status 0, says so in $WORK/NAME.err).
stop_tool() {
    kill -"$2" "$1"
    status=0
    wait "$1" || status=$?
    PIDS=$(echo "$PIDS" | sed "s/ $1//")
    [ "$status" = 0 ] || fail "$3 exited $status on SIG$2: $(cat "$WORK/$3.err")"
    grep -q "SIG$2: stopping" "$WORK/$3.err" || fail "$3: no stop message"
}

provision_nodes "$WORK" thermo:producer first:consumer second:consumer narrow:consumer:lab

# 1. A producer run that exits; nothing serves its key, so no consumer yet.
printf 'kitchen\t21.5 C\nhall\t19.0 C\n' | (LEVEL=WARNING tool produce thermo --topic sensor.temp) \
    2>"$WORK/run1.err" || fail "producer run: $(cat "$WORK/run1.err")"

# 2. `kafkacrypto serve` on its node, later: a new consumer decrypts.
(tool serve thermo --for forever >"$WORK/serve.out" 2>"$WORK/serve.err") &
SERVE=$!
PIDS="$PIDS $SERVE"
wait_for 20 grep -qs "serving keys of sensor (1 key(s)) until SIGINT/SIGTERM" "$WORK/serve.err" ||
    fail "serve did not start: $(cat "$WORK/serve.err")"
(LEVEL=WARNING tool consume first --topic sensor.temp --from-beginning --count 2 --timeout 30) \
    >"$WORK/first.out" 2>"$WORK/first.err" || fail "first consumer: $(cat "$WORK/first.err")"
sort "$WORK/first.out" >"$WORK/first.sorted"
printf 'hall\t19.0 C\nkitchen\t21.5 C\n' | cmp -s - "$WORK/first.sorted" ||
    fail "first consumer printed: $(cat "$WORK/first.out")"
pass "kafkacrypto serve answers for the key of a producer run that has exited"
# Issue 10 §3: a healthy producer run and consumer say nothing at WARNING.
! grep -h "WARNING" "$WORK/run1.err" "$WORK/first.err" || fail "a healthy run logged warnings"
pass "a healthy producer run and consumer print no WARNING"

# 3. D3: the reply went out twice, byte for byte, about a second apart (the
# second copy is what a reader that started on sensor.keys just after the
# first one reads).
"$KC_BIN" --broker "$B" run "$HERE/keys_copies.lua" sensor.keys 2 20 >/dev/null ||
    fail "sensor.keys holds fewer than two replies"
sleep 1.5 # the second copy of a later reply, if a request was asked again
"$KC_BIN" --broker "$B" run "$HERE/keys_copies.lua" sensor.keys 100 2 >"$WORK/copies" || true
# per distinct reply: how many copies, and the ms between the first and the last
awk '{ n[$3]++; if (!($3 in t)) t[$3] = $2; last[$3] = $2 }
     END { for (v in n) print n[v], last[v] - t[v] }' "$WORK/copies" >"$WORK/pairs"
[ -s "$WORK/pairs" ] || fail "no reply on sensor.keys"
! grep -qv '^2 ' "$WORK/pairs" || fail "a reply not sent exactly twice: $(cat "$WORK/pairs")"
gap=$(awk '{ print $2; exit }' "$WORK/pairs")
! awk '$2 < 700 { bad = 1 } END { exit !bad }' "$WORK/pairs" ||
    fail "copies less than 0.7 s apart: $(cat "$WORK/pairs")"
pass "each key reply is sent again once, byte for byte, ${gap} ms after the first (D3)"

stop_tool "$SERVE" TERM serve
grep -q "root sensor: [1-9][0-9]* request(s) answered ([1-9][0-9]* repl[a-z]*), 0 refused, 0 for keys not held" \
    "$WORK/serve.err" || fail "serve did not say what it served: $(cat "$WORK/serve.err")"
pass "serve stops on SIGTERM and says what it served per root"

# 4. The producer now sends only to root lab and serves: root sensor's old
# key, from oldkeys, is still served to a new consumer.
printf 'bench\t42\n' >"$WORK/run2.in"
(tool produce thermo --topic lab.bench --serve forever <"$WORK/run2.in" \
    >"$WORK/run2.out" 2>"$WORK/run2.err") &
RUN2=$!
PIDS="$PIDS $RUN2"
wait_for 20 grep -qs "serving keys" "$WORK/run2.err" || fail "run 2: $(cat "$WORK/run2.err")"
(tool consume second --topic sensor.temp --from-beginning --count 2 --timeout 30) \
    >"$WORK/second.out" 2>"$WORK/second.err" || fail "second consumer: $(cat "$WORK/second.err")"
sort "$WORK/second.out" >"$WORK/second.sorted"
printf 'hall\t19.0 C\nkitchen\t21.5 C\n' | cmp -s - "$WORK/second.sorted" ||
    fail "second consumer printed: $(cat "$WORK/second.out")"
# 5. Issue 10 §3: a consumer whose chain allows only topic lab asks for
# root sensor. The producer says why at WARNING, once, naming the
# requester by the fingerprint keyinfo shows and the chain item's list; the
# consumer says, once, what it did and what to check.
(LEVEL=WARNING tool consume narrow --topic sensor.temp --from-beginning --timeout 30) \
    >"$WORK/narrow.out" 2>"$WORK/narrow.err" &
NARROW=$!
PIDS="$PIDS $NARROW"
wait_for 25 grep -q "No key for root=sensor after" "$WORK/narrow.err" ||
    fail "the consumer did not say that it got no key: $(cat "$WORK/narrow.err")"
sleep 2 # said once: not again
kill -TERM "$NARROW"
wait "$NARROW" || true
PIDS=$(echo "$PIDS" | sed "s/ $NARROW//")
[ ! -s "$WORK/narrow.out" ] || fail "narrow consumer decrypted: $(cat "$WORK/narrow.out")"
"$KC_BIN" keyinfo "$WORK/narrow.config" >"$WORK/narrow.info" 2>&1 || fail "keyinfo: $(cat "$WORK/narrow.info")"
fpr=$(awk '$1 == "fpr" { print $2; exit }' "$WORK/narrow.info")
[ ${#fpr} = 64 ] || fail "no fingerprint in keyinfo: $(cat "$WORK/narrow.info")"
refusal="WARNING:kafkacrypto.crypto:Refused key request for root=sensor from requester $fpr: "
[ "$(grep -cF "$refusal" "$WORK/run2.err")" = 1 ] ||
    fail "refusal not said once at WARNING with $fpr: $(grep 'Refused' "$WORK/run2.err")"
grep -F "$refusal" "$WORK/run2.err" | grep -qF "topic 'sensor' not in allowed topics ['lab'] of chain item" ||
    fail "refusal lacks the chain item's list: $(grep -F "$refusal" "$WORK/run2.err")"
[ "$(grep -c "WARNING:kafkacrypto.crypto:No key for root=sensor after" "$WORK/narrow.err")" = 1 ] ||
    fail "the consumer did not say once that it got no key: $(cat "$WORK/narrow.err")"
grep -q "round(s) sent, none answered.*kafkacrypto keyinfo" "$WORK/narrow.err" ||
    fail "the consumer's report lacks what it did or what to check: $(cat "$WORK/narrow.err")"
pass "a refusal is said once at WARNING by the producer (requester, root, chain item); the consumer says once what it did"

stop_tool "$RUN2" INT run2
grep -q "root sensor: [1-9][0-9]* request(s) answered" "$WORK/run2.err" ||
    fail "run 2 did not serve root sensor: $(cat "$WORK/run2.err")"
grep -q "root sensor: .*, [1-9][0-9]* refused (chain: [1-9][0-9]*), " "$WORK/run2.err" ||
    fail "run 2 did not count the narrow consumer's refusal by reason: $(grep 'root sensor' "$WORK/run2.err")"
pass "a producer sending only to root lab still serves root sensor's old key"

# 5. A node without producer keys has nothing to serve: it says so.
serve_only() { (tool serve "$@"); }
expect 1 serve_only first --for 1
contains err "holds no producer key"
lacks err ".lua:"
pass "serve on a node without producer keys fails with a message"

# 7. Issue 10 §3: no broker answers: produce, consume and serve give up after
# --connect-timeout (default 30 s) with what to check, and no script path.
dead=127.0.0.1:9
for cmd in produce consume serve; do
    case $cmd in
        produce) args="--topic sensor.temp" ;;
        consume) args="--topic sensor.temp" ;;
        serve) args="" ;;
    esac
    start=$(date +%s)
    status=0
    printf 'k\tv\n' | "$KC_BIN" $cmd --node "$WORK/thermo.config" --broker $dead $X $args \
        --connect-timeout 2 >"$WORK/dead.out" 2>"$WORK/dead.err" || status=$?
    took=$(( $(date +%s) - start ))
    [ "$status" = 1 ] || fail "$cmd against no broker exited $status: $(cat "$WORK/dead.err")"
    [ "$took" -le 20 ] || fail "$cmd against no broker took $took s"
    echo "# $cmd gave up after $took s" >&2
    grep -q "^kafkacrypto $cmd: no Kafka broker answered at $dead within 2 s" "$WORK/dead.err" ||
        fail "$cmd: $(cat "$WORK/dead.err")"
    ! grep -q '\.lua:[0-9]' "$WORK/dead.err" || fail "$cmd shows a script path: $(cat "$WORK/dead.err")"
done
pass "produce, consume and serve give up on an unreachable broker after --connect-timeout, saying what to check"
