# Shared by the integration tests: sourced with KC_BIN set by the Makefile.
set -eu
: "${KC_BIN:?set KC_BIN to the kafkacrypto binary}"
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/kc-it.XXXXXX")
PIDS=""

cleanup() {
    for p in $PIDS; do kill "$p" 2>/dev/null || true; done
    for p in $PIDS; do wait "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok - $*"; }

# expect STATUS COMMAND...: runs COMMAND with stdin from $WORK/in (empty
# unless a test writes it); output in $WORK/out and $WORK/err.
: >"$WORK/in"
expect() {
    want=$1; shift
    status=0
    "$@" >"$WORK/out" 2>"$WORK/err" <"$WORK/in" || status=$?
    [ "$status" = "$want" ] || fail "'$*' exited $status, expected $want: $(tail -3 "$WORK/err")"
}
# contains FILE TEXT / lacks FILE TEXT: about $WORK/FILE
contains() { grep -qF -- "$2" "$WORK/$1" || fail "$1 lacks '$2': $(tail -5 "$WORK/$1")"; }
lacks() { ! grep -qF -- "$2" "$WORK/$1" || fail "$1 has '$2'"; }

# wait_for SECONDS COMMAND...: polls COMMAND every 0.1 s.
wait_for() {
    limit=$(( $1 * 10 )); shift
    i=0
    until "$@"; do
        i=$((i + 1))
        [ "$i" -le "$limit" ] || return 1
        sleep 0.1
    done
}

# start_broker FILE [ARGS...]: a standalone broker writing its address to
# FILE. Returns 1 if the broker exited instead (see $WORK/broker.err).
start_broker() {
    BROKER_FILE=$1; shift
    "$KC_BIN" broker --bootstrap-file "$BROKER_FILE" "$@" >"$WORK/broker.out" 2>"$WORK/broker.err" &
    BROKER_PID=$!
    PIDS="$PIDS $BROKER_PID"
    wait_for 30 broker_up_or_gone || fail "broker did not start: $(cat "$WORK/broker.err")"
    [ -s "$BROKER_FILE" ] || { wait "$BROKER_PID" || true; return 1; }
}
broker_up_or_gone() {
    [ -s "$BROKER_FILE" ] || ! kill -0 "$BROKER_PID" 2>/dev/null
}

# broker_up [ARGS...]: start_broker on $WORK/bootstrap; fails the test if
# the broker exits instead. Its address in $B.
broker_up() {
    start_broker "$WORK/bootstrap" "$@" || fail "no broker: $(cat "$WORK/broker.err")"
    B=$(cat "$WORK/bootstrap")
}

# exchanged DIR PRODUCER CONSUMER TOPIC [FAULTS]: tools_exchange.lua between
# the nodes in DIR over the broker at $B (output in $WORK/ex.out, ex.err);
# fails the test unless the consumer decrypted.
exchanged() {
    "$KC_BIN" --broker "$B" run "$HERE/tools_exchange.lua" "$@" >"$WORK/ex.out" 2>"$WORK/ex.err" ||
        fail "exchange script failed ($*): $(tail -3 "$WORK/ex.err")"
    grep -q '^decrypted: tools exchange works$' "$WORK/ex.out" ||
        fail "no decryption ($*): $(cat "$WORK/ex.out") $(tail -5 "$WORK/ex.err")"
}

# stop_broker FILE: SIGTERM, then expect exit 0 and the file removed.
stop_broker() {
    kill -TERM "$BROKER_PID"
    status=0
    wait "$BROKER_PID" || status=$?
    PIDS=$(echo "$PIDS" | sed "s/ $BROKER_PID//")
    [ "$status" = 0 ] || fail "broker exited with $status"
    [ ! -e "$1" ] || fail "bootstrap file left behind"
}

# provision_nodes DIR NODE:ROLE[:TOPICS]...: nodes sharing one test root of
# trust (kafkacrypto.provision, node files as upstream's simple-provision
# writes them), files in DIR; TOPICS default to all.
provision_nodes() {
    cat >"$WORK/provision_nodes.lua" <<'LUA'
local kafkacrypto = require "kafkacrypto"
for i = 2, #arg do
  local node, role, topics = arg[i]:match("^([^:]*):([^:]*):?(.*)$")
  kafkacrypto.provision{ node_id = node, role = role, dir = arg[1], rot_password = "rot password",
                         provisioning_password = "provisioning password",
                         topics = topics ~= "" and { topics } or nil }
end
LUA
    "$KC_BIN" run "$WORK/provision_nodes.lua" "$@" 2>"$WORK/provision.err" ||
        fail "provisioning $*: $(cat "$WORK/provision.err")"
}

# first_message_reader NODE TOPIC: `consume --node $WORK/NODE.config` of the
# first message of TOPIC (from the beginning, over the plaintext broker at
# $B, INFO log) in the background, output in $WORK/NODE.out and .err, once
# it reads; its pid in $READER.
first_message_reader() {
    "$KC_BIN" --log-level INFO consume --node "$WORK/$1.config" -b "$B" \
        -X security.protocol=PLAINTEXT -t "$2" -o beginning -c 1 -u --timeout 60 \
        >"$WORK/$1.out" 2>"$WORK/$1.err" &
    READER=$!
    PIDS="$PIDS $READER"
    wait_for 30 grep -qs "reading $2" "$WORK/$1.err" ||
        fail "consumer $1 did not start: $(cat "$WORK/$1.err")"
}
