#!/bin/sh
# A node's metrics page (issue 10 §5) scraped with curl: turned on by the
# node option metrics_listen or kafkacrypto.cfg's setting; 404 and 405
# elsewhere; gone once the node closes; a bad address is an error.
. "$(dirname "$0")/lib.sh"

start_broker "$WORK/bootstrap"
B=$(cat "$WORK/bootstrap")
kc() { "$KC_BIN" --log-level ERROR "$@"; }
provision_nodes "$WORK" watched:producer reader:consumer

# metrics.lua CONFIG BROKER LISTEN|- PORTFILE: opens the node, writes the
# metrics port to PORTFILE, serves until SIGTERM.
cat >"$WORK/metrics.lua" <<'LUA'
local kafkacrypto = require "kafkacrypto"
local kcs = kafkacrypto.store(arg[1])
local function kafka_config(what)
  local c = kcs:get_kafka_config(what, "crypto")
  c.bootstrap_servers, c["security.protocol"] = arg[2], "PLAINTEXT"
  return c
end
local options = { config = kcs }
if arg[3] ~= "-" then options.metrics_listen = arg[3] end
local ok, kc = pcall(kafkacrypto.new, nil, kafka_config("producer"), kafka_config("consumer"), options)
if not ok then io.stderr:write(tostring(kc), "\n") os.exit(3) end
local f = assert(io.open(arg[4], "w"))
f:write(tostring(kc:metrics_port()), "\n")
f:close()
kafkacrypto.wait_for_signal()
kc:close()
kcs:close()
LUA
start_node() {
    rm -f "$WORK/port"
    "$KC_BIN" --log-level ERROR "$@" run "$WORK/metrics.lua" "$WORK/watched.config" "$B" "$LISTEN" "$WORK/port" \
        2>"$WORK/node.err" &
    NODE=$!
    PIDS="$PIDS $NODE"
    wait_for 30 test -s "$WORK/port" || fail "node did not start: $(cat "$WORK/node.err")"
    PORT=$(cat "$WORK/port")
}
stop_node() {
    kill -TERM $NODE
    wait $NODE || fail "node: exit status $?: $(cat "$WORK/node.err")"
    PIDS=$(echo "$PIDS" | sed "s/ $NODE//")
}
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }

LISTEN=127.0.0.1:0 start_node
[ "$PORT" -gt 0 ] || fail "no port: $PORT"
curl -sf "http://127.0.0.1:$PORT/metrics" >"$WORK/page" || fail "scrape failed"
contains page '# TYPE kafkacrypto_key_requests_sent_total counter'
contains page 'kafkacrypto_key_replies_sent_total{node="watched"} '
contains page 'kafkacrypto_keys_received_total{node="watched"} 0'
contains page '# TYPE kafkacrypto_chain_expires_in_seconds gauge'
contains page 'kafkacrypto_chain_expires_soon{node="watched"} 0'
grep -Eq '^kafkacrypto_chain_expires_in_seconds\{node="watched"\} ([0-9.e+]+|\+Inf)$' "$WORK/page" ||
    fail "chain expiry: $(grep chain_expires_in "$WORK/page")"
# every sample line is NAME{node="watched"} NUMBER
! grep -v '^#' "$WORK/page" | grep -Ev '^kafkacrypto_[a-z_]+\{node="watched"\} ([-+0-9.e]+|\+Inf)$' ||
    fail "malformed sample lines"
curl -sI "http://127.0.0.1:$PORT/metrics" | grep -qi '^content-type: text/plain; version=0.0.4' ||
    fail "content type"
[ "$(code "http://127.0.0.1:$PORT/other")" = 404 ] || fail "not 404 on /other"
[ "$(code -X POST "http://127.0.0.1:$PORT/metrics")" = 405 ] || fail "not 405 on POST"
stop_node
[ "$(code "http://127.0.0.1:$PORT/metrics")" = 000 ] || fail "still served after close"
pass "the node option: scraped with curl, 404/405 elsewhere, gone after close"

# kafkacrypto.cfg's setting (here by --set): every node opened serves it
LISTEN=- start_node --set metrics_listen=127.0.0.1:0
[ "$PORT" -gt 0 ] || fail "setting: no port: $PORT"
curl -sf "http://127.0.0.1:$PORT/metrics" | grep -q '^kafkacrypto_key_requests_sent_total{node="watched"}' ||
    fail "setting: scrape failed"
stop_node
pass "the metrics_listen setting"

status=0
kc run "$WORK/metrics.lua" "$WORK/watched.config" "$B" "nonsense" "$WORK/port" 2>"$WORK/bad.err" ||
    status=$?
[ "$status" = 3 ] || fail "a bad address: status $status"
contains bad.err "metrics_listen: 'nonsense': expected HOST:PORT"
pass "a bad address is an error naming the setting"

# Per root, after a key exchange between two nodes of one process: the
# producer counts what it encrypted and served, the consumer what it
# decrypted, asked for and how long the key took.
cat >"$WORK/exchange.lua" <<'LUA'
local kafkacrypto = require "kafkacrypto"
local B = arg[3]
local function node(path)
  local kcs = kafkacrypto.store(path)
  local function kafka_config(what)
    local c = kcs:get_kafka_config(what, "crypto")
    c.bootstrap_servers, c["security.protocol"] = B, "PLAINTEXT"
    return c
  end
  return kafkacrypto.new(nil, kafka_config("producer"), kafka_config("consumer"),
                         { config = kcs, metrics_listen = "127.0.0.1:0" })
end
local p, c = node(arg[1]), node(arg[2])
local producer = kafkacrypto.producer{ bootstrap_servers = B, value_serializer = p:value_serializer() }
for i = 1, 3 do producer:send("metered.t", nil, "m" .. i, 0) end
assert(producer:flush(30) == 0, "not delivered")
local consumer = kafkacrypto.consumer{ bootstrap_servers = B, value_deserializer = c:value_deserializer(),
                                       hold_undecryptable = 60 }
consumer:assign{ { topic = "metered.t", partition = 0, offset = "beginning" } }
local got, deadline = 0, kafkacrypto.clock() + 60
while got < 3 and kafkacrypto.clock() < deadline do
  local msg = consumer:poll(0.5)
  if msg then
    assert(msg.value:is_cleartext(), "delivered undecrypted")
    got = got + 1
  end
end
local hs = consumer:hold_stats() or {}
assert(got == 3, ("decrypted %d of 3 (held %s waiting %s)"):format(got, tostring(hs.held), tostring(hs.waiting)))
local r = c:stats().roots.metered
assert(r.decrypted == 3 and r.held >= 1 and r.released == r.held and r.consumer_keys == 1,
       "consumer stats")
assert(r.latency.count == 1 and r.latency.buckets[#r.latency.buckets].count == 1, "latency")
assert(p:stats().roots.metered.encrypted == 3, "producer stats")
local f = assert(io.open(arg[4], "w"))
f:write(p:metrics_port(), " ", c:metrics_port(), "\n")
f:close()
kafkacrypto.wait_for_signal()
consumer:close()
producer:close()
c:close()
p:close()
LUA
rm -f "$WORK/ports"
"$KC_BIN" --log-level ERROR run "$WORK/exchange.lua" "$WORK/watched.config" "$WORK/reader.config" "$B" \
    "$WORK/ports" 2>"$WORK/exchange.err" &
NODE=$!
PIDS="$PIDS $NODE"
wait_for 90 test -s "$WORK/ports" || fail "exchange: $(cat "$WORK/exchange.err")"
read -r PPORT CPORT <"$WORK/ports"
curl -sf "http://127.0.0.1:$PPORT/metrics" >"$WORK/producer.page" || fail "producer scrape failed"
curl -sf "http://127.0.0.1:$CPORT/metrics" >"$WORK/consumer.page" || fail "consumer scrape failed"
stop_node
contains producer.page 'kafkacrypto_messages_encrypted_total{node="watched",root="metered"} 3'
contains producer.page 'kafkacrypto_keys_held{node="watched",root="metered",side="producer"} 1'
grep -Eq '^kafkacrypto_root_key_requests_answered_total\{node="watched",root="metered"\} [1-9]' \
    "$WORK/producer.page" || fail "producer: no request answered: $(grep answered "$WORK/producer.page")"
contains producer.page 'kafkacrypto_root_key_requests_refused_total{node="watched",root="metered",reason="chain"} 0'
contains consumer.page 'kafkacrypto_messages_decrypted_total{node="reader",root="metered"} 3'
contains consumer.page 'kafkacrypto_messages_undecryptable_total{node="reader",root="metered",reason="invalid"} 0'
contains consumer.page 'kafkacrypto_keys_held{node="reader",root="metered",side="consumer"} 1'
contains consumer.page 'kafkacrypto_root_keys_received_total{node="reader",root="metered"} 1'
contains consumer.page '# TYPE kafkacrypto_key_exchange_seconds histogram'
contains consumer.page 'kafkacrypto_key_exchange_seconds_bucket{node="reader",root="metered",le="+Inf"} 1'
contains consumer.page 'kafkacrypto_key_exchange_seconds_count{node="reader",root="metered"} 1'
contains consumer.page 'kafkacrypto_root_unanswered_seconds{node="reader",root="metered"} 0'
grep -Eq '^kafkacrypto_messages_held_total\{node="reader",root="metered"\} [1-3]$' "$WORK/consumer.page" ||
    fail "consumer: held: $(grep held_total "$WORK/consumer.page")"
# histogram buckets are cumulative: never decreasing
grep '^kafkacrypto_key_exchange_seconds_bucket' "$WORK/consumer.page" | awk '$2 < last { exit 1 } { last = $2 }' ||
    fail "buckets not cumulative"
for page in producer.page consumer.page; do
    ! grep -v '^#' "$WORK/$page" | grep -Ev '^kafkacrypto_[a-z_]+\{node="[a-z]+"(,[a-z]+="[^"]*")*\} ([-+0-9.e]+|\+Inf)$' ||
        fail "$page: malformed sample lines"
done
pass "per root: encrypted, decrypted, held/released, keys held, requests, refusals by reason, key exchange histogram"

# A chain that expires within 30 days: said at WARNING when the node opens
# (and daily after), and chain_expires_soon is 1.
"$KC_BIN" --log-level ERROR run /dev/stdin "$WORK" <<'LUA' 2>"$WORK/short.err" || fail "provisioning: $(cat "$WORK/short.err")"
require("kafkacrypto").provision{ node_id = "shortlived", role = "consumer", dir = arg[1], lifetime = 10 * 86400,
                                  rot_password = "rot password", provisioning_password = "provisioning password" }
LUA
"$KC_BIN" --log-level WARNING run /dev/stdin "$WORK/shortlived.config" "$B" >"$WORK/short.out" 2>"$WORK/short.err" <<'LUA' ||
local kafkacrypto = require "kafkacrypto"
local kcs = kafkacrypto.store(arg[1])
local c = kcs:get_kafka_config("consumer", "crypto")
c.bootstrap_servers, c["security.protocol"] = arg[2], "PLAINTEXT"
local node = kafkacrypto.new(nil, c, c, { config = kcs })
local deadline = kafkacrypto.clock() + 20
repeat kafkacrypto.wait_for_signal(0.2) until node:stats().chain_expires_in_seconds < math.huge or kafkacrypto.clock() > deadline
print(math.floor(node:stats().chain_expires_in_seconds / 86400))
io.write(node:metrics_page())
kafkacrypto.wait_for_signal(1.5)   -- the management loop's first turn says it
node:close()
kcs:close()
LUA
    fail "short-lived node: $(cat "$WORK/short.err")"
case $(head -1 "$WORK/short.out") in 9|10) ;; *) fail "expiry in days: $(head -1 "$WORK/short.out")" ;; esac
contains short.out 'kafkacrypto_chain_expires_soon{node="shortlived"} 1'
grep -q "WARNING:kafkacrypto.crypto:The chain of node shortlived expires in [0-9.]* days (said daily)" "$WORK/short.err" ||
    fail "no expiry warning: $(cat "$WORK/short.err")"
pass "a chain expiring within 30 days: a WARNING at start (daily after) and chain_expires_soon 1"
