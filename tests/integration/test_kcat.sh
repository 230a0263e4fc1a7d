#!/bin/sh
# `kafkacrypto produce` / `consume` next to kcat on one standalone broker:
# the same plaintext is written by kcat unencrypted to one topic and by us
# encrypted to another; what kcat prints for the first (-J and -f) equals,
# field for field, what we print for the decrypted second (topic names and
# timestamps aside). Also -o, -p, -c, -e, -G, -T, -k, -l, FILE input, -L,
# -X list, the text escapes and message.max.bytes.
. "$(dirname "$0")/lib.sh"

command -v kcat >/dev/null || fail "kcat is not installed (Makefile DEB_PACKAGES)"

start_broker "$WORK/bootstrap" --topic kc.reqs:1 --topic kc.keys:1 --topic kc.subs:1 \
    --topic kc.plain:1 --topic kc.enc:1 --topic kc.bin:1 --topic kc.two:2 --topic kc.stream:1
B=$(cat "$WORK/bootstrap")
X="-X security.protocol=PLAINTEXT"
kc() { "$KC_BIN" --set tunables.crypto_sub_interval=1 "$@"; }
produce() { kc --log-level ERROR produce --node "$WORK/prod.config" -b "$B" $X "$@"; }
consume() { kc --log-level ERROR consume --node "$WORK/cons.config" -b "$B" $X "$@"; }

provision_nodes "$WORK" prod:producer cons:consumer

# The same input both ways: headers (repeated names, a null value), an empty
# key, an empty value, a line without the key delimiter (null key), JSON
# specials, UTF-8; then with -Z an empty value (tombstone).
printf 'k1:v1\n:empty key\nk3:\nno delimiter\nq:"quo\\ted"/\tx\nu:\303\251t\303\251\n' >"$WORK/a.in"
printf 'k4:\n' >"$WORK/z.in"
kcat -b "$B" -P -t kc.plain -p 0 -K: -H h1=a -H h1=b -H h2 <"$WORK/a.in" || fail "kcat -P"
kcat -b "$B" -P -t kc.plain -p 0 -K: -Z <"$WORK/z.in" || fail "kcat -P -Z"
produce -t kc.enc -p 0 -K: -H h1=a -H h1=b -H h2 -q <"$WORK/a.in" 2>"$WORK/p1.err" ||
    fail "produce: $(cat "$WORK/p1.err")"
# More messages from the same node, before it serves the keys of all of them
# (a node's files are open in one process at a time).
printf 'b1\001line one\nline two\000nul#' | produce -t kc.bin -p 0 -K'\x01' -D'#' -q ||
    fail "produce -D -K"
printf '\377\376#' | produce -t kc.bin -p 0 -D'#' -q -k bin || fail "produce -k"
printf 'one\ntwo\n' >"$WORK/l.in"
printf 'whole\nfile' >"$WORK/w.in"
produce -t kc.two -p 1 -k K -T -q <"$WORK/l.in" >"$WORK/tee.out" || fail "produce -T"
cmp -s "$WORK/tee.out" "$WORK/l.in" || fail "-T echo: $(cat "$WORK/tee.out")"
produce -t kc.two -p 1 --no-key -q "$WORK/w.in" || fail "produce FILE"
produce -t kc.two -p 1 --no-key -q -l "$WORK/l.in" || fail "produce -l FILE"
# A value over message.max.bytes: named, with the encryption overhead.
awk 'BEGIN { s = "k\t"; for (i = 0; i < 1100; i++) s = s "x"; print s }' >"$WORK/big.in"
status=0
produce -t kc.two -X message.max.bytes=1000 <"$WORK/big.in" >/dev/null 2>"$WORK/big.err" || status=$?
[ "$status" = 1 ] || fail "big message: status $status"
grep -qF "message.max.bytes=1000" "$WORK/big.err" && grep -qF "75 bytes" "$WORK/big.err" ||
    fail "big message: $(cat "$WORK/big.err")"
pass "a message over message.max.bytes: fails naming the setting and the 75-byte overhead"

# the binary itself in the background (not the produce function), so that
# $! is its pid and the kill below reaches it
"$KC_BIN" --set tunables.crypto_sub_interval=1 --log-level ERROR produce --node "$WORK/prod.config" \
    -b "$B" $X -t kc.enc -p 0 -K: -Z --serve forever <"$WORK/z.in" >"$WORK/serve.out" \
    2>"$WORK/serve.err" &
SERVER=$!
PIDS="$PIDS $SERVER"
wait_for 20 grep -qs "serving keys" "$WORK/serve.err" || fail "serve: $(cat "$WORK/serve.err")"

# normalize FILE: topic names and timestamps aside
normalize() { sed -e 's/kc\.plain/TOPIC/g; s/kc\.enc/TOPIC/g' -e 's/"ts":[0-9]*/"ts":TS/' \
                  -e 's/^\(TOPIC|[0-9]*|[0-9]*|\)[0-9]*|/\1TS|/' "$1"; }
# compare NAME KCAT-ARGS -- OUR-ARGS: kcat on kc.plain and us on kc.enc print the same.
compare() {
    name=$1; shift
    kargs=""
    while [ "$1" != -- ]; do kargs="$kargs $1"; shift; done
    shift
    # shellcheck disable=SC2086
    kcat -b "$B" -C -t kc.plain -q $kargs >"$WORK/$name.kcat" 2>"$WORK/$name.kcat.err" ||
        fail "kcat $kargs: $(cat "$WORK/$name.kcat.err")"
    consume -t kc.enc -q "$@" >"$WORK/$name.ours" 2>"$WORK/$name.err" ||
        fail "consume $*: $(cat "$WORK/$name.err")"
    normalize "$WORK/$name.kcat" >"$WORK/$name.kcat.n"
    normalize "$WORK/$name.ours" >"$WORK/$name.ours.n"
    cmp -s "$WORK/$name.kcat.n" "$WORK/$name.ours.n" ||
        fail "$name: kcat printed
$(cat "$WORK/$name.kcat.n")
we printed
$(cat "$WORK/$name.ours.n")"
    [ -s "$WORK/$name.ours" ] || [ "${name%2}" = end ] || fail "$name: nothing printed"
}

compare json -J -o beginning -e -- -J -o beginning -e
[ "$(wc -l <"$WORK/json.ours")" = 7 ] || fail "-J: 7 lines expected"
grep -qF '"headers":["h1","a","h1","b","h2",null],"key":"k1","payload":"v1"}' "$WORK/json.ours" ||
    fail "-J headers: $(cat "$WORK/json.ours")"
grep -qF '"key":"k4","payload":null}' "$WORK/json.ours" || fail "-J tombstone"
grep -qF '"key":null,"payload":"no delimiter"}' "$WORK/json.ours" || fail "-J null key"
grep -qF '"key":"k3","payload":""}' "$WORK/json.ours" || fail "-J empty value"
pass "-J: kcat's envelope, field for field (headers, null key, empty value, tombstone, escapes)"

F='%t|%p|%o|%T|%k|%s|%S|%K|%h|%%\n'
compare fmt -f "$F" -o beginning -e -- -f "$F" -o beginning -e --raw
compare fmt2 -f '%k=%s\n' -o beginning -e -- -f '%k=%s\n' -o beginning -e --raw
pass "-f with every code (--raw): as kcat prints"

compare rel -J -o -2 -e -- -J -o -2 -e
compare abs -J -o 4 -c 2 -- -J -o 4 -c 2
compare part -J -p 0 -o 1 -c 1 -- -J -p 0 -o 1 -c 1
compare end -J -o end -e -- -J -o end -e
[ ! -s "$WORK/end.ours" ] || fail "-o end -e printed old messages"
compare stamp -J -o s@0 -e -- -J -o s@0 -e
# the mock broker answers every other time lookup with the end: only a time
# after the last message can be compared
compare end2 -J -o s@4000000000000 -e -- -J -o s@4000000000000 -e
pass "-o -N, -o N with -c, -p, -o end and -o s@MS with -e: as kcat"

# Our text output: one message per line whatever the bytes, null as \N.
consume -t kc.enc -o beginning -e -f '%k|%s\n' >"$WORK/esc.out" 2>"$WORK/esc.err" ||
    fail "consume -f: $(cat "$WORK/esc.err")"
printf '%s\n' 'k1|v1' '|empty key' 'k3|' '\N|no delimiter' 'q|"quo\\ted"/	x' \
    "u|$(printf '\303\251t\303\251')" 'k4|\N' >"$WORK/esc.expected"
cmp -s "$WORK/esc.out" "$WORK/esc.expected" || fail "escaped -f: $(cat "$WORK/esc.out")"
grep -qF "% Reached end of topic kc.enc [0] at offset 7" "$WORK/esc.err" || fail "-e message: $(cat "$WORK/esc.err")"
consume -t kc.bin -o beginning -e -q >"$WORK/bin.out" 2>"$WORK/bin.err" || fail "$(cat "$WORK/bin.err")"
{ printf '%s\n' 'b1	line one\nline two\0nul'; printf 'bin\t\377\376\n'; } >"$WORK/bin.expected"
cmp -s "$WORK/bin.out" "$WORK/bin.expected" || fail "escaped default: $(od -c "$WORK/bin.out" "$WORK/bin.expected")"
consume -t kc.bin -o beginning -e -q -J >"$WORK/bin.json" 2>"$WORK/bin.err" || fail "$(cat "$WORK/bin.err")"
grep -qF '"key":"b1","payload":"line one\nline two\u0000nul"}' "$WORK/bin.json" ||
    fail "-J control bytes: $(cat "$WORK/bin.json")"
grep -qF '"key":"bin","payload_encoding":"base64","payload":"//4="}' "$WORK/bin.json" ||
    fail "-J non-UTF-8: $(cat "$WORK/bin.json")"
python3 -c 'import json,sys; [json.loads(l) for l in open(sys.argv[1], "rb")]' "$WORK/bin.json" ||
    fail "-J is not valid JSON"
pass "text output: escapes keep one message per line, \\N for null; -J valid JSON (base64 for non-UTF-8)"

# produce: -T echo, FILE per message, -l, -k
consume -t kc.two -p 1 -o beginning -e -q -f '%p %k %s\n' >"$WORK/two.out" 2>"$WORK/two.err" ||
    fail "$(cat "$WORK/two.err")"
printf '%s\n' '1 K one' '1 K two' '1 \N whole\nfile' '1 \N one' '1 \N two' >"$WORK/two.expected"
cmp -s "$WORK/two.out" "$WORK/two.expected" || fail "produce inputs: $(cat "$WORK/two.out")"
pass "produce -T, -k, -p, FILE (one message each), -l FILE (split)"

# -G: a balanced group commits what it printed; a second run reads on from there.
# (the mock broker holds a left member's partitions for session.timeout.ms)
consume -G grp kc.enc -o beginning -c 3 -X session.timeout.ms=6000 >"$WORK/g1.out" 2>"$WORK/g1.err" || fail "-G: $(cat "$WORK/g1.err")"
consume -G grp kc.enc -e -q -X session.timeout.ms=6000 >"$WORK/g2.out" 2>"$WORK/g2.err" || fail "-G again: $(cat "$WORK/g2.err")"
[ "$(wc -l <"$WORK/g1.out")" = 3 ] && [ "$(wc -l <"$WORK/g2.out")" = 4 ] ||
    fail "-G: $(cat "$WORK/g1.out") / $(cat "$WORK/g2.out") / $(cat "$WORK/g1.err" "$WORK/g2.err")"
sort "$WORK/g1.out" "$WORK/g2.out" >"$WORK/g.all"
consume -t kc.enc -o beginning -e -q | sort | cmp -s - "$WORK/g.all" || fail "-G: not every message once"
pass "-G GROUP TOPIC: commits, a second member run reads on"

# -L and -X list, as kcat's
consume -L -t kc.enc >"$WORK/L.ours" 2>"$WORK/L.err" || fail "-L: $(cat "$WORK/L.err")"
kcat -b "$B" -L -t kc.enc >"$WORK/L.kcat"
cmp -s "$WORK/L.ours" "$WORK/L.kcat" || fail "-L: $(cat "$WORK/L.ours") vs $(cat "$WORK/L.kcat")"
kc produce -X list | head -3 >"$WORK/X.ours"
kcat -X list | head -3 >"$WORK/X.kcat"
cmp -s "$WORK/X.ours" "$WORK/X.kcat" || fail "-X list: $(cat "$WORK/X.ours")"
kc topics --list kc.enc --broker "$B" | cmp -s - "$WORK/L.kcat" || fail "topics --list"
pass "-L, -X list and topics --list: as kcat's"

# The mock broker has no controller, so CreateTopics is refused before it is
# sent: the error path is all that can be tested here.
status=0
kc topics --create newroot --broker "$B" --timeout 1 >"$WORK/create.out" 2>"$WORK/create.err" || status=$?
[ "$status" = 1 ] || fail "topics --create on the mock: status $status"
grep -q "^kafkacrypto topics: create topics: " "$WORK/create.err" || fail "$(cat "$WORK/create.err")"
pass "topics --create: the Admin API's refusal is reported (status 1)"

kill -TERM "$SERVER"
wait "$SERVER" || true
PIDS=$(echo "$PIDS" | sed "s/ $SERVER//")

# Lines from a pipe are sent as they arrive, as kcat -P does: not held back
# until 64 KiB gather (`tail -f log | kafkacrypto produce ...`).
mkfifo "$WORK/stream"
("$KC_BIN" --log-level ERROR produce --node "$WORK/prod.config" -b "$B" $X -t kc.stream --no-key \
    <"$WORK/stream" 2>"$WORK/stream.err") &
STREAM=$!
PIDS="$PIDS $STREAM"
exec 4>"$WORK/stream"
echo "first line" >&4
timeout 30 kcat -b "$B" -C -t kc.stream -o beginning -c 1 -q >"$WORK/stream.out" ||
    fail "the first line was not sent while the pipe stayed open: $(cat "$WORK/stream.err")"
exec 4>&-
wait $STREAM || fail "produce from a pipe: $(cat "$WORK/stream.err")"
PIDS=$(echo "$PIDS" | sed "s/ $STREAM//")
[ -s "$WORK/stream.out" ] || fail "nothing read from kc.stream"
pass "produce sends lines from a pipe as they arrive"
