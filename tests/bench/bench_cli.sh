#!/bin/sh
# make bench-cli [CLI_LINES=N]: `kafkacrypto produce` / `consume` against
# kcat (plaintext) on one standalone broker, same run: N lines of 100 bytes
# (default 200 000: with a million, the test broker dropped part of kcat's
# own stream before its consumer read it, 18-51 % of it in two runs) each
# way. Prints
#   bench cli size=100 lines=N ours_produce_s=.. kcat_produce_s=.. produce_ratio=..
#             ours_total_s=.. kcat_total_s=.. total_ratio=..
# ratio = kcat's time / ours (goal >= 0.5); total = until the consumer
# running alongside has every line.
. "$(dirname "$0")/../integration/lib.sh"
LINES=${CLI_LINES:-200000}
PARTS=256  # the test broker keeps a few MiB per partition: room for every line
command -v kcat >/dev/null || fail "kcat is not installed (make deps)"

now() { date +%s.%N; }
secs() { echo "$2 - $1" | bc -l; }

start_broker "$WORK/bootstrap" --topic bench.plain:$PARTS --topic bench.enc:$PARTS \
    --topic bench.reqs:1 --topic bench.keys:1 --topic bench.subs:1
B=$(cat "$WORK/bootstrap")
X="-X security.protocol=PLAINTEXT"
awk -v n="$LINES" 'BEGIN { s = sprintf("%0100d", 0); for (i = 0; i < n; i++) print s }' \
    >"$WORK/lines"

provision_nodes "$WORK" prod:producer cons:consumer

# Each tool: a consumer reading while the producer sends the N lines; the
# time runs from the first line sent to the consumer's last line (and to
# the producer's end of delivery). Ours starts with one line sent and
# decrypted first, so that the key exchange is done before the clock starts
# (the consume tool gives up on messages after 10 000 wait for a key).
kcat -C -b "$B" -t bench.plain -o beginning -c "$LINES" -q >"$WORK/kcat.out" &
KCAT=$!
PIDS="$PIDS $KCAT"
sleep 2   # its assignment
t0=$(now)
kcat -P -b "$B" -t bench.plain -l "$WORK/lines" || fail "kcat produce"
t1=$(now)
wait "$KCAT" || fail "kcat consume"
t2=$(now)
[ "$(wc -l <"$WORK/kcat.out")" = "$LINES" ] || fail "kcat consumed $(wc -l <"$WORK/kcat.out") lines"

mkfifo "$WORK/serve.in"
("$KC_BIN" produce --node "$WORK/prod.config" --broker "$B" $X --topic bench.enc --no-key \
    --serve forever <"$WORK/serve.in" >/dev/null 2>"$WORK/produce.err") &
PIDS="$PIDS $!"
exec 3>"$WORK/serve.in"
echo warm-up >&3
("$KC_BIN" --set tunables.crypto_sub_interval=1 consume --node "$WORK/cons.config" --broker "$B" \
    $X --topic bench.enc --from-beginning --count $((LINES + 1)) --timeout 900 \
    >"$WORK/consumed" 2>"$WORK/consume.err") &
CONS=$!
PIDS="$PIDS $CONS"
wait_for 120 grep -qs warm-up "$WORK/consumed" || fail "no key exchange: $(cat "$WORK/consume.err") $(cat "$WORK/produce.err")"
t3=$(now)
cat "$WORK/lines" >&3
exec 3>&-
wait_for 900 grep -qs "serving keys" "$WORK/produce.err" || fail "produce: $(cat "$WORK/produce.err")"
t4=$(now)
wait "$CONS" || fail "consume: $(tail -3 "$WORK/consume.err")"
t5=$(now)
got=$(wc -l <"$WORK/consumed")
[ "$got" = $((LINES + 1)) ] || fail "consume printed $got lines of $((LINES + 1))"

kp=$(secs "$t0" "$t1") kc=$(secs "$t0" "$t2") op=$(secs "$t3" "$t4") oc=$(secs "$t3" "$t5")
printf 'bench cli size=100 lines=%s ours_produce_s=%.2f kcat_produce_s=%.2f produce_ratio=%.2f ours_total_s=%.2f kcat_total_s=%.2f total_ratio=%.2f\n' \
    "$LINES" "$op" "$kp" "$(echo "$kp / $op" | bc -l)" "$oc" "$kc" "$(echo "$kc / $oc" | bc -l)"
