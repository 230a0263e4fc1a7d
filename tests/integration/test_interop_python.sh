#!/bin/sh
# Live interop with the Python package (optional: skipped unless
# KAFKACRYPTO_SRC names its source tree and python3 has its dependencies;
# PYTHON picks the interpreter, default /usr/bin/python3). Issue 10 §2, a
# Python producer and our consumer:
# 1. our consumer reads first; the producer starts and sends. Our request
#    goes out as the ciphertext arrives, before the Python producer reads
#    sensor.reqs: it starts there at "latest", looked up only after its
#    first message, and skips the request. The copy of D5 a second later
#    is answered (before: the next request round, 60 s later).
# 2. the producer has sent; our consumer starts: its first request goes out
#    when the first ciphertext arrives (before: 2.5-3.5 s later, the key
#    topics having 4 partitions), the message decrypts in about 2 s.
# (Python producer -> Python consumer, for reference: about 6.7 s with 1-partition
# key topics, 3 s of it the test broker's first group join; with 4 partitions
# the Python consumer, reading partition 0 only, mostly gets no key.)
. "$(dirname "$0")/lib.sh"

PYTHON=${PYTHON:-/usr/bin/python3}
if [ -z "${KAFKACRYPTO_SRC:-}" ] || [ ! -f "$KAFKACRYPTO_SRC/kafkacrypto/__init__.py" ] ||
   ! PYTHONPATH=$KAFKACRYPTO_SRC "$PYTHON" -c 'import kafkacrypto' 2>/dev/null; then
    echo "skip - live interop with the Python package: set KAFKACRYPTO_SRC to its source tree"
    exit 0
fi
# upstream_producer NODE TOPIC SECONDS: in $WORK, where upstream resolves
# the node's file# references
upstream_producer() {
    cd "$WORK" && PYTHONPATH=$KAFKACRYPTO_SRC exec "$PYTHON" "$HERE/upstream_node.py" \
        "$1.config" "$B" "$2" "$3"
}
# The key topics exist, with 4 partitions as the test broker's auto-creation
# makes them (our nodes make 1 on the embedded broker). Were they missing,
# the Python producer's key-exchange consumer, which does not create topics,
# would see sensor.reqs only at its next metadata refresh, 5 min later:
# upstream's README asks for them to exist.
broker_up --topic sensor.keys:4 --topic sensor.reqs:4 --topic sensor.subs:4
provision_nodes "$WORK" pyprod:producer reader:consumer early:consumer
X="-X security.protocol=PLAINTEXT"
ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }

# 1.
first_message_reader early sensor.py
EARLY=$READER
(upstream_producer pyprod sensor.py 120 >"$WORK/pyprod.out" 2>"$WORK/pyprod.err") &
PYPROD=$!
PIDS="$PIDS $PYPROD"
wait_for 60 grep -qs "^sent" "$WORK/pyprod.out" ||
    fail "Python producer: $(tail -5 "$WORK/pyprod.err")"
sent=$(date +%s%N)
wait_for 50 test -s "$WORK/early.out" || fail "no key within 50 s: $(cat "$WORK/early.err")"
ms=$(ms_since "$sent")
wait "$EARLY" || fail "early consumer exited $?"
PIDS=$(echo "$PIDS" | sed "s/ $EARLY//")
printf 'upstream\tfrom upstream\n' | cmp -s - "$WORK/early.out" ||
    fail "early consumer printed: $(cat "$WORK/early.out")"
[ "$ms" -lt 15000 ] || fail "decrypted $ms ms after the Python producer sent (limit 15000)"
pass "our consumer reading first: decrypted $ms ms after the Python producer sent"

# 2.
start=$(date +%s%N)
"$KC_BIN" --log-level INFO consume --node "$WORK/reader.config" -b "$B" $X -t sensor.py \
    -o beginning -c 1 --timeout 60 >"$WORK/reader.out" 2>"$WORK/reader.err" ||
    fail "our consumer: $(tail -3 "$WORK/reader.err")"
ms=$(ms_since "$start")
printf 'upstream\tfrom upstream\n' | cmp -s - "$WORK/reader.out" ||
    fail "our consumer printed: $(cat "$WORK/reader.out")"
contains reader.err "Sending new subscribe request(s) for root=sensor"
# about 2 s now (the Python producer answers in about 0.5 s; the rest is
# the test broker's fetch waits); a loaded machine gets room
[ "$ms" -lt 10000 ] || fail "our consumer decrypted after $ms ms (limit 10000)"
pass "our consumer started after the Python producer sent: decrypted $ms ms after its start"

kill -TERM "$PYPROD"
wait "$PYPROD" 2>/dev/null || true
PIDS=$(echo "$PIDS" | sed "s/ $PYPROD//")
