#!/bin/sh
# `kafkacrypto controller` and `kafkacrypto chainserver` as operators run
# them, on a standalone broker: a limited consumer gets a key only while
# the controller runs with an allowing policy; a node adopts the chain the
# chain server pushes. Plus their usage errors.
. "$(dirname "$0")/lib.sh"
NODES="$HERE/authority_nodes.lua"
POLICIES="$KC_SOURCE_DIR/policies"

for tool in controller chainserver; do
    status=0
    "$KC_BIN" "$tool" --bogus >/dev/null 2>"$WORK/err" || status=$?
    [ "$status" = 2 ] || fail "$tool --bogus exited $status"
    grep -qF "usage: kafkacrypto $tool" "$WORK/err" || fail "$tool: no usage line"
    status=0
    "$KC_BIN" "$tool" --node "$WORK/missing.config" >/dev/null 2>"$WORK/err" || status=$?
    [ "$status" = 1 ] || fail "$tool with a missing node file exited $status"
done
pass "usage errors and a missing node file"

broker_up
mkdir "$WORK/nodes"
"$KC_BIN" --broker "$B" run "$NODES" setup "$WORK/nodes" "$B" >"$WORK/setup.out" 2>&1 ||
    fail "setup: $(cat "$WORK/setup.out")"

# a controller whose policy refuses everything: no key
cat >"$WORK/deny.lua" <<'LUA'
return { reencrypt = function(req) return false, "closed for maintenance" end }
LUA
"$KC_BIN" --broker "$B" --log-level INFO controller --node "$WORK/nodes/ctl.config" \
    --policy "$WORK/deny.lua" --group-id deny-group --seconds 12 2>"$WORK/ctl-deny.err" &
CTL=$!
PIDS="$PIDS $CTL"
got=$("$KC_BIN" --broker "$B" run "$NODES" exchange "$WORK/nodes" 6 2>/dev/null)
[ "$got" = "no key" ] || fail "refusing controller: consumer got '$got'"
wait "$CTL" || fail "controller exited $?: $(tail -5 "$WORK/ctl-deny.err")"
grep -qF "hook reencrypt: denied: closed for maintenance" "$WORK/ctl-deny.err" ||
    fail "no refusal logged: $(tail -5 "$WORK/ctl-deny.err")"
pass "a controller policy refusal: the limited consumer gets no key"

# offsets were committed: the same group reads only what came since
"$KC_BIN" --broker "$B" run "$NODES" poke >/dev/null 2>&1 || fail "poke"
"$KC_BIN" --broker "$B" --log-level INFO controller --node "$WORK/nodes/ctl.config" --policy "$WORK/deny.lua" \
    --group-id deny-group --seconds 12 2>"$WORK/ctl-again.err" || fail "controller exited $?"
grep -qF "forwarded 0, refused 1" "$WORK/ctl-again.err" ||
    fail "restarted controller: $(grep -v cryptokey "$WORK/ctl-again.err" | cut -c1-250 | tail -25)"
pass "a restarted controller resumes from the committed offsets"

"$KC_BIN" --broker "$B" --log-level INFO controller --node "$WORK/nodes/ctl.config" \
    --policy "$POLICIES/default.lua" --group-id allow-group --seconds 40 2>"$WORK/ctl.err" &
CTL=$!
PIDS="$PIDS $CTL"
got=$("$KC_BIN" --broker "$B" --log-level INFO run "$NODES" exchange "$WORK/nodes" 35 2>"$WORK/ex.err")
[ "$got" = "via the controller" ] || fail "consumer got $got: $(grep -v cryptokey "$WORK/ex.err" | cut -c1-200 | tail -30)"
kill -TERM "$CTL"
status=0
wait "$CTL" || status=$?
[ "$status" = 0 ] || fail "controller exited $status on SIGTERM"
grep -qF "Valid consumer key request on topic=itest.subs" "$WORK/ctl.err" ||
    fail "controller did not log the forwarded request"
grep -qE "forwarded [1-9][0-9]*, refused [0-9]+$" "$WORK/ctl.err" || fail "controller summary: $(grep -v "^INFO\|^WARNING" "$WORK/ctl.err" | tail -3)"
pass "a limited consumer gets its key through the controller, which stops cleanly on SIGTERM"

"$KC_BIN" --broker "$B" run "$NODES" adopt "$WORK/nodes" 30 >"$WORK/adopt.out" 2>/dev/null &
ADOPT=$!
PIDS="$PIDS $ADOPT"
wait_for 30 grep -qs listening "$WORK/adopt.out" || fail "node did not start"
sleep 1
"$KC_BIN" --broker "$B" --log-level INFO chainserver --node "$WORK/nodes/cs.config" \
    --policy "$POLICIES/short-chains.lua" --once 2>"$WORK/cs.err" ||
    fail "chainserver exited $?: $(tail -5 "$WORK/cs.err")"
grep -qF "renewed 1, refused 0" "$WORK/cs.err" || fail "chainserver: $(tail -5 "$WORK/cs.err")"
wait "$ADOPT" || true
grep -qx adopted "$WORK/adopt.out" || fail "node: $(cat "$WORK/adopt.out")"
pass "the chain server re-issues a chain and the node adopts it"
stop_broker "$WORK/bootstrap"
