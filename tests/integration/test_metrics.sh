#!/bin/sh
# A node's metrics page (issue 10 §5) scraped with curl: turned on by the
# node option metrics_listen or kafkacrypto.cfg's setting; 404 and 405
# elsewhere; gone once the node closes; a bad address is an error.
. "$(dirname "$0")/lib.sh"

start_broker "$WORK/bootstrap"
B=$(cat "$WORK/bootstrap")
kc() { "$KC_BIN" --log-level ERROR "$@"; }
kc run /dev/stdin "$WORK" <<'LUA' 2>"$WORK/provision.err" || fail "provisioning: $(cat "$WORK/provision.err")"
require("kafkacrypto").provision{ node_id = "watched", role = "producer", dir = arg[1],
                                  rot_password = "rot password", provisioning_password = "provisioning password" }
LUA

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
