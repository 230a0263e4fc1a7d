#!/bin/sh
# The command lines of `kafkacrypto produce` and `kafkacrypto consume`:
# help, bad arguments (status 2), the broker rule, bad -X properties and
# node files (status 1). No broker is needed: these fail before connecting.
. "$(dirname "$0")/lib.sh"

provision_nodes "$WORK" n1:prodcon
NODE="$WORK/n1.config"

for tool in produce consume; do
    expect 0 "$KC_BIN" $tool --help
    contains out "usage: kafkacrypto $tool --node NODE.config"
    contains out "Exit status:"
    [ ! -s "$WORK/err" ] || fail "$tool --help wrote to stderr"
done
expect 0 "$KC_BIN" --help
contains out "sends lines of stdin to a topic, encrypted by a node"
contains out "prints the messages of topics, decrypted by a node"
pass "--help of produce and consume, and their line in kafkacrypto --help"

# bad TOOL MESSAGE ARGS...: status 2, one error line naming the problem, usage.
bad() {
    tool=$1 message=$2; shift 2
    expect 2 "$KC_BIN" $tool "$@"
    grep -qxF -- "kafkacrypto $tool: $message" "$WORK/err" ||
        fail "$tool $*: expected the line 'kafkacrypto $tool: $message' in: $(cat "$WORK/err")"
    [ "$(grep -c "^kafkacrypto $tool: " "$WORK/err")" = 1 ] || fail "$tool $*: one error line expected"
    contains err "usage: kafkacrypto $tool"
    [ ! -s "$WORK/out" ] || fail "$tool $* wrote to stdout"
}
bad produce "--node is required" --topic t
bad produce "--topic is required" --node "$NODE"
bad produce "unknown argument '--bogus'" --node "$NODE" --bogus
bad produce "--node needs a value" --topic t --node
bad produce "--broker : expected HOST:PORT[,HOST:PORT...]" --node "$NODE" --topic t --broker ""
bad produce "--topic given twice" --node "$NODE" --topic a --topic b
bad produce "--no-key takes no value" --node "$NODE" --topic t --no-key=yes
bad produce "--serve soon: expected seconds >= 0 or \"forever\"" --node "$NODE" --topic t --serve soon
bad produce "--serve -1: expected seconds >= 0 or \"forever\"" --node "$NODE" --topic t --serve=-1
bad produce "-X novalue: expected NAME=VALUE (a librdkafka property)" --node "$NODE" --topic t -X novalue
bad consume "--topic is required" --node "$NODE"
bad consume "--count 0: expected a whole number >= 1" --node "$NODE" --topic t --count 0
bad consume "--count 1.5: expected a whole number >= 1" --node "$NODE" --topic t --count 1.5
bad consume "--timeout x: expected seconds >= 0" --node "$NODE" --topic t --timeout x
bad consume "--from-beginning takes no value" --node "$NODE" --topic t --from-beginning=1
bad consume "-X =1: expected NAME=VALUE (a librdkafka property)" --node "$NODE" --topic t -X =1
pass "bad arguments: one line naming the problem, usage, status 2"

# A node config from simple-provision names no broker: one must be given.
for tool in produce consume; do
    bad $tool "no Kafka broker: give --broker HOST:PORT (the node config $NODE names none; \`kafkacrypto broker\` runs one for tests)" \
        --node "$NODE" --topic t
done
pass "without --broker, kafkacrypto --broker or a broker in the node config: status 2"

# -X reaches librdkafka: a property it does not know is named (status 1).
for tool in produce consume; do
    expect 1 "$KC_BIN" $tool --node "$NODE" --topic t --broker 127.0.0.1:1 -X no.such.property=1
    contains err "kafkacrypto $tool: "
    contains err 'No such configuration property: "no.such.property"'
    ! grep -q '\.lua:[0-9]' "$WORK/err" || fail "script location in: $(cat "$WORK/err")"
    expect 1 "$KC_BIN" $tool --node "$NODE" --topic t --broker 127.0.0.1:1 -X security.protocol=bogus
    contains err 'Invalid value "bogus" for configuration property "security.protocol"'
done
pass "a bad -X property: a clear error, status 1"

expect 1 "$KC_BIN" consume --node "$WORK/missing.config" --topic t --broker 127.0.0.1:1
contains err "kafkacrypto consume: "
contains err "$WORK/missing.config"
[ ! -e "$WORK/missing.config" ] || fail "a missing node config was created"
pass "a missing node config: named, status 1, not created"
