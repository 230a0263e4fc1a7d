#!/bin/sh
# A reader never freezes on one root and never loses a message to a full
# hold (issue 10 §2): `consume` over 20 000 messages whose key comes after
# they are read pauses instead of giving messages up; a Lua consumer's poll
# waits for keys at most poll_key_wait in all, root after root.
. "$(dirname "$0")/lib.sh"

N=${HOLD_MESSAGES:-20000}   # tests/soak/soak_consume_hold.sh: 1 000 000
# the test (mock) broker keeps about 5 MiB per partition, dropping the
# oldest beyond: about 30 000 of these keyed messages; 20 000 per partition
PARTS=$((N / 20000 + 1))
start_broker "$WORK/bootstrap" --topic bulk.data:$PARTS --topic ra.t:1 --topic rb.t:1 --topic rc.t:1
B=$(cat "$WORK/bootstrap")
X="-X security.protocol=PLAINTEXT"
kc() { "$KC_BIN" --set tunables.crypto_sub_interval=1 --log-level WARNING "$@"; }

provision_nodes "$WORK" bulk:producer gone:producer reader:consumer poller:consumer

# 1. N messages written first; the producer then serves keys. The consumer
#    reads them all before its key can come (its hold fills at 10 000).
#    Keyed, so that they spread evenly over the partitions: without a key
#    the producer may put them all in one, which then loses its oldest.
seq 1 $N >"$WORK/bulk.in"
awk '{ print $1 "\t" $1 }' "$WORK/bulk.in" >"$WORK/bulk.lines"
(exec "$KC_BIN" --set tunables.crypto_sub_interval=1 produce --node "$WORK/bulk.config" --broker "$B" $X --topic bulk.data --serve forever) \
    <"$WORK/bulk.lines" >"$WORK/bulk.out" 2>"$WORK/bulk.err" &
BULK=$!
PIDS="$PIDS $BULK"
wait_for $((60 + N / 500)) grep -qs "serving keys" "$WORK/bulk.err" || fail "bulk: $(cat "$WORK/bulk.err")"
kc consume --node "$WORK/reader.config" --broker "$B" $X --topic bulk.data --from-beginning \
    --count $N --timeout $((120 + N / 1000)) -f '%s\n' >"$WORK/reader.out" 2>"$WORK/reader.err" ||
    fail "reader: $(tail -3 "$WORK/reader.err")"
[ "$(wc -l <"$WORK/reader.out")" = $N ] || fail "reader printed $(wc -l <"$WORK/reader.out") of $N"
sort -n "$WORK/reader.out" | cmp -s - "$WORK/bulk.in" || fail "reader: not every message once"
lacks reader.err "undecryptable"
# stopped while its broker is up (a producer whose broker is gone takes long to stop)
kill -TERM $BULK
wait $BULK || fail "bulk: exit status $? on SIGTERM: $(tail -3 "$WORK/bulk.err")"
PIDS=$(echo "$PIDS" | sed "s/ $BULK//")
pass "consume: $N messages read before their key came, all printed (the hold paused, dropped none)"

# 2. Three roots whose producer is gone: nobody answers. Without the bound
#    each root's first message held poll for 9 s (27 s here).
printf 'a\n' | kc produce --node "$WORK/gone.config" --broker "$B" $X --no-key --topic ra.t >/dev/null 2>&1 ||
    fail "gone: ra.t"
printf 'b\n' | kc produce --node "$WORK/gone.config" --broker "$B" $X --no-key --topic rb.t >/dev/null 2>&1 ||
    fail "gone: rb.t"
printf 'c\n' | kc produce --node "$WORK/gone.config" --broker "$B" $X --no-key --topic rc.t >/dev/null 2>&1 ||
    fail "gone: rc.t"
cat >"$WORK/poller.lua" <<'LUA'
local kafkacrypto = require "kafkacrypto"
local kcs = kafkacrypto.store(arg[1])
local function kafka_config(what, crypto)
  local c = kcs:get_kafka_config(what, crypto)
  c.bootstrap_servers, c["security.protocol"] = arg[2], "PLAINTEXT"
  return c
end
local kc = kafkacrypto.new(nil, kafka_config("producer", "crypto"),
                           kafka_config("consumer", "crypto"), { config = kcs })
local config = kafka_config("consumer")
config.value_deserializer = kc:value_deserializer()
config.poll_key_wait = tonumber(arg[3])
local consumer = kafkacrypto.consumer(config)
consumer:assign{ { topic = "ra.t", partition = 0, offset = "beginning" },
                 { topic = "rb.t", partition = 0, offset = "beginning" },
                 { topic = "rc.t", partition = 0, offset = "beginning" } }
local got, longest, t_end = 0, 0, kafkacrypto.clock() + 60
while got < 3 and kafkacrypto.clock() < t_end do
  local t0 = kafkacrypto.clock()
  local msg = consumer:poll(0.1)
  longest = math.max(longest, kafkacrypto.clock() - t0)
  if msg then
    assert(not msg.value:is_cleartext(), "decrypted without a key")
    got = got + 1
      end
end
print(("%d %.2f"):format(got, longest))
consumer:close()
kc:close()
kcs:close()
LUA
T0=$(date +%s)
kc run "$WORK/poller.lua" "$WORK/poller.config" "$B" 0.5 >"$WORK/poller.out" 2>"$WORK/poller.err" ||
    fail "poller: $(tail -3 "$WORK/poller.err")"
read -r got longest <"$WORK/poller.out"
[ "$got" = 3 ] || fail "poller got $got of 3 messages"
# 0.5 s of key waits; generous for a loaded machine
awk "BEGIN { exit !($longest < 1.5) }" || fail "one poll took $longest s (bound 0.5 s)"
pass "three roots without keys: the longest poll took $longest s (poll_key_wait 0.5); $(($(date +%s) - T0)) s in all"
