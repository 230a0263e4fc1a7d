#!/bin/sh
# `kafkacrypto produce` and `kafkacrypto consume`, each in its own process,
# on a standalone broker: key exchange in both directions, two roots, key
# topics with several partitions, a producer restart, an unauthorised
# consumer, retries, node files written by upstream's simple-provision, and
# stopping by signal.
. "$(dirname "$0")/lib.sh"

# Consumers ask again for a missing key after 1 s (upstream: 60 s).
kc() { "$KC_BIN" --set tunables.crypto_sub_interval=1 "$@"; }

broker_up --topic sensor.reqs:3 --topic sensor.keys:3 --topic sensor.subs:3 \
    --topic sensor.temp:1 --topic metrics.cpu:1
# Node configs are written for a TLS cluster, as upstream's simple-provision
# writes them; the test broker speaks plaintext.
X="-X security.protocol=PLAINTEXT"
# produce|consume NODE [--info] ARGS...: --info logs the key exchange (INFO).
# In the background, run `(tool produce ...) &`: $! is then the tool itself.
produce() { (tool produce "$@"); }
consume() { (tool consume "$@"); }
tool() {
    cmd=$1 node=$2 level=WARNING; shift 2
    [ "${1:-}" != --info ] || { level=INFO; shift; }
    exec "$KC_BIN" --set tunables.crypto_sub_interval=1 --log-level $level \
        $cmd --node "$WORK/$node.config" --broker "$B" $X "$@"
}

# serve NAME NODE TOPIC LINES [ARGS...]: a producer sending LINES and then
# serving keys in the background, until it says so on stderr.
serve() {
    name=$1 node=$2 topic=$3 lines=$4; shift 4
    printf "$lines" >"$WORK/$name.in"
    (tool produce $node --topic "$topic" --serve forever "$@") \
        <"$WORK/$name.in" >"$WORK/$name.out" 2>"$WORK/$name.err" &
    eval "PID_$name=$!"
    PIDS="$PIDS $!"
    wait_for 20 grep -qs "serving keys" "$WORK/$name.err" ||
        fail "$name did not start serving: $(cat "$WORK/$name.err")"
}
# stop NAME SIGNAL: the producer ends cleanly, status 0.
stop() {
    eval "pid=\$PID_$1"
    kill -"$2" "$pid"
    status=0
    wait "$pid" || status=$?
    PIDS=$(echo "$PIDS" | sed "s/ $pid//")
    [ "$status" = 0 ] || fail "$1 exited $status on SIG$2: $(cat "$WORK/$1.err")"
    grep -q "SIG$2: stopping" "$WORK/$1.err" || fail "$1: no stop message"
}
# same FILE EXPECTED: FILE holds the lines of EXPECTED (printf text) in any order.
same() {
    printf "$2" | sort >"$WORK/expected"
    sort "$1" | cmp -s - "$WORK/expected" || fail "$1: got '$(cat "$1")', expected '$(cat "$WORK/expected")'"
}
no_marks() { ! grep '^!' "$1" || fail "$1 has undecryptable messages"; }

cat >"$WORK/provision.lua" <<'LUA'
-- provision.lua DIR ROOT_PASSWORD NODE:ROLE...
local kafkacrypto = require "kafkacrypto"
local dir, password = arg[1], arg[2]
for i = 3, #arg do
  local node, role = arg[i]:match("^(.-):(.*)$")
  kafkacrypto.provision{ node_id = node, role = role, dir = dir, rot_password = password,
                         provisioning_password = "provisioning password" }
end
LUA
kc run "$WORK/provision.lua" "$WORK" "root of trust password" thermo:producer cpumon:producer \
    restarts:producer dash:consumer early:consumer late:consumer 2>"$WORK/provision.err" ||
    fail "provisioning: $(cat "$WORK/provision.err")"
kc run "$WORK/provision.lua" "$WORK" "ANOTHER root password" intruder:consumer \
    2>>"$WORK/provision.err" || fail "provisioning: $(cat "$WORK/provision.err")"

# 1. Producers first, then a consumer of both roots.
serve thermo "thermo --info" sensor.temp \
    'kitchen\t21.5 C\ngarage\t14.0 C\nhall\tsplit\tat the first tab\n'
serve cpumon cpumon metrics.cpu 'host-1\tload 0.42\nhost-2\tload 1.07\n'
grep -q "sent 3 messages to sensor.temp" "$WORK/thermo.err" || fail "thermo: $(cat "$WORK/thermo.err")"
consume dash --topic sensor.temp --topic metrics.cpu --from-beginning --count 5 --timeout 20 \
    >"$WORK/dash.out" 2>"$WORK/dash.err" || fail "dash: $(cat "$WORK/dash.err")"
same "$WORK/dash.out" 'kitchen\t21.5 C\ngarage\t14.0 C\nhall\tsplit\tat the first tab\nhost-1\tload 0.42\nhost-2\tload 1.07\n'
no_marks "$WORK/dash.err"
pass "producers in their own processes serve keys of two roots to a consumer (key topics with 3 partitions)"

# 2. A consumer provisioned under another root never gets a key: it runs
# until the producer has refused its request, then a little longer.
(tool consume intruder --topic sensor.temp --from-beginning --count 3 \
    >"$WORK/intruder.out" 2>"$WORK/intruder.err") &
intruder=$!
PIDS="$PIDS $intruder"
wait_for 20 grep -q "Refused key request for root=sensor" "$WORK/thermo.err" ||
    fail "no refusal logged: $(cat "$WORK/thermo.err")"
sleep 1
kill -TERM "$intruder"
status=0
wait "$intruder" || status=$?
[ "$status" = 1 ] || fail "intruder exited $status (--count not reached: 1): $(cat "$WORK/intruder.err")"
[ ! -s "$WORK/intruder.out" ] || fail "intruder printed: $(cat "$WORK/intruder.out")"
[ "$(grep -c '^! undecryptable sensor.temp partition 0 offset [012]: no key received$' \
    "$WORK/intruder.err")" = 3 ] || fail "intruder: $(cat "$WORK/intruder.err")"
pass "an unauthorised consumer is refused and prints only marked lines (stderr), status 1"

stop thermo TERM
stop cpumon INT
pass "a serving producer stops cleanly on SIGTERM and SIGINT"

# 3. A consumer first: messages of a producer that is not serving stay
# undecryptable and are retried; the producer restarts (new key), answers
# the request made before it ran and serves the old key too.
printf 'r1\tfirst run\nr2\tfirst run\n' | produce restarts --topic sensor.restart \
    2>"$WORK/run1.err" || fail "first run: $(cat "$WORK/run1.err")"
(tool consume early --info --topic sensor.restart --from-beginning --count 4 --timeout 25 \
    >"$WORK/early.out" 2>"$WORK/early.err") &
early=$!
PIDS="$PIDS $early"
wait_for 15 grep -q "Sending new subscribe request(s) for root=sensor" "$WORK/early.err" ||
    fail "early consumer asked for no key: $(cat "$WORK/early.err")"
[ ! -s "$WORK/early.out" ] || fail "decrypted without a serving producer: $(cat "$WORK/early.out")"
serve run2 restarts sensor.restart 'r3\tsecond run\nr4\tsecond run\n'
status=0
wait "$early" || status=$?
[ "$status" = 0 ] || fail "early consumer exited $status: $(cat "$WORK/early.err")"
same "$WORK/early.out" 'r1\tfirst run\nr2\tfirst run\nr3\tsecond run\nr4\tsecond run\n'
no_marks "$WORK/early.err"
[ "$(grep -o 'Received new encryption key for root=sensor, key index=[0-9a-f]*' "$WORK/early.err" |
    sort -u | wc -l)" = 2 ] || fail "expected two key indices: $(cat "$WORK/early.err")"
pass "a consumer started first retries undecryptable messages once a restarted producer serves"
consume late --topic sensor.restart --from-beginning --count 4 --timeout 20 \
    >"$WORK/late.out" 2>"$WORK/late.err" || fail "late: $(cat "$WORK/late.err")"
same "$WORK/late.out" 'r1\tfirst run\nr2\tfirst run\nr3\tsecond run\nr4\tsecond run\n'
pass "a late consumer gets the keys of both runs (old keys are kept and served)"
stop run2 TERM

# 4. A consumer without --from-beginning reads only what comes after it
# started (sensor.temp has older messages; sensor.nokey is created by the
# broker when the consumer asks for it). Keyless lines. A consumer without
# --count or --timeout runs until a signal. A bad line stops the producer.
(tool consume dash --info --topic sensor.temp --topic sensor.nokey >"$WORK/nokey.out" \
    2>"$WORK/nokey.err") &
reader=$!
PIDS="$PIDS $reader"
wait_for 20 grep -qs "reading sensor.nokey from the end" "$WORK/nokey.err" ||
    fail "consumer did not start reading: $(cat "$WORK/nokey.err")"
grep -qF "reading sensor.temp from the end (1 partition(s))" "$WORK/nokey.err" ||
    fail "sensor.temp: $(cat "$WORK/nokey.err")"
serve nokey thermo sensor.nokey 'just a value\nand\ta tab\n' --no-key
wait_for 20 grep -q "a tab" "$WORK/nokey.out" || fail "keyless: $(cat "$WORK/nokey.err")"
kill -INT "$reader"
status=0
wait "$reader" || status=$?
[ "$status" = 0 ] || fail "consume exited $status on SIGINT: $(cat "$WORK/nokey.err")"
grep -q "SIGINT: stopping" "$WORK/nokey.err" || fail "consume: no stop message"
same "$WORK/nokey.out" '\\N\tjust a value\n\\N\tand\ta tab\n'
stop nokey TERM
pass "consume without --from-beginning reads new messages only"
pass "--no-key: values with a null key (printed as \\N); consume runs until SIGINT, status 0"
status=0
printf 'k\tv\nno tab here\nk2\tv2\n' | produce thermo --topic sensor.temp \
    >"$WORK/badline.out" 2>"$WORK/badline.err" || status=$?
[ "$status" = 1 ] || fail "a bad line: status $status"
grep -qxF "kafkacrypto produce: message 2: expected KEY<TAB>VALUE (or use --no-key, -k or -K); 1 message(s) before it were sent" \
    "$WORK/badline.err" || fail "bad line: $(cat "$WORK/badline.err")"
pass "a line without a tab: named by its number, status 1"

# 5. Node files written by upstream's simple-provision (interop vectors),
# unchanged; their relative file# paths work from inside the node directory
# (upstream resolves them against the working directory) and from outside
# (we resolve them against the config's directory, spec D1).
VECTORS=${VECTORS:-$KC_SOURCE_DIR/tests/vectors/data}
if [ -r "$VECTORS/store.json" ]; then
    mkdir "$WORK/up"
    cat >"$WORK/upstream_files.lua" <<'LUA'
-- upstream_files.lua STORE.JSON DIR: writes the simple-provision nodes' files
local cjson = require "cjson"
local f = assert(io.open(arg[1]))
local doc = cjson.decode(f:read("*a"))
f:close()
local function unhex(s) return (s:gsub("%x%x", function(h) return string.char(tonumber(h, 16)) end)) end
local function write(name, bytes)
  local out = assert(io.open(arg[2] .. "/" .. name, "wb"))
  out:write(bytes)
  out:close()
end
for _, v in ipairs(doc.vectors) do
  if v.source == "simple-provision.py" then
    write(v.node_id .. ".config", v.config_text)
    write(v.node_id .. ".crypto", unhex(v.crypto_file))
    write(v.node_id .. ".seed", unhex(v.seed_file))
  end
end
LUA
    kc run "$WORK/upstream_files.lua" "$VECTORS/store.json" "$WORK/up" ||
        fail "cannot write upstream's node files"
    [ -s "$WORK/up/producer1.config" ] && [ -s "$WORK/up/consumer1.config" ] ||
        fail "store.json has no simple-provision producer1/consumer1"
    cd "$WORK/up"
    serve upstream up/producer1 sensor.upstream 'from\tupstream files\n'
    cd "$WORK"
    consume up/consumer1 --topic sensor.upstream --from-beginning --count 1 --timeout 20 \
        >"$WORK/consumer1.out" 2>"$WORK/consumer1.err" || fail "consumer1: $(cat "$WORK/consumer1.err")"
    same "$WORK/consumer1.out" 'from\tupstream files\n'
    stop upstream TERM
    [ ! -e "$WORK/consumer1.crypto" ] && [ ! -e "$WORK/consumer1.seed" ] ||
        fail "consumer1 run from outside its directory created files in the working directory"
    [ "$(ls "$WORK/up" | tr '\n' ' ')" = "consumer1.config consumer1.crypto consumer1.seed producer1.config producer1.crypto producer1.seed " ] ||
        fail "upstream node directory: $(ls "$WORK/up")"
    pass "nodes provisioned by upstream's simple-provision, run from inside and outside their directory"
else
    echo "skip - upstream node files: no $VECTORS/store.json"
fi

# 6. A node's files are found beside its config, whatever the working
# directory (spec D1): a run from elsewhere creates nothing there and uses
# the node's own key and oldkeys, and the node directory can be moved.
mkdir "$WORK/nd" "$WORK/elsewhere"
kc run "$WORK/provision.lua" "$WORK/nd" "root of trust password" mover:producer \
    2>>"$WORK/provision.err" || fail "provisioning: $(cat "$WORK/provision.err")"
grep -qx 'cryptokey : file#mover.crypto' "$WORK/nd/mover.config" &&
    grep -qx 'ratchet : file#mover.seed' "$WORK/nd/mover.config" ||
    fail "provisioning wrote no relative file# references: $(grep file# "$WORK/nd/mover.config")"
cd "$WORK/nd"
printf 'k\tfrom inside\n' | "$KC_BIN" produce --node mover.config --broker "$B" $X \
    --topic sensor.moves >/dev/null 2>"$WORK/mover1.err" || fail "mover from inside: $(cat "$WORK/mover1.err")"
cd "$WORK/elsewhere"
printf 'k\tfrom elsewhere\n' | "$KC_BIN" produce --node "$WORK/nd/mover.config" --broker "$B" $X \
    --topic sensor.moves >/dev/null 2>"$WORK/mover2.err" || fail "mover from elsewhere: $(cat "$WORK/mover2.err")"
mv "$WORK/nd" "$WORK/nd2"
# serving from the moved directory, the node still holds both earlier keys
# (oldkeys opened with its own .crypto): a new consumer decrypts all three
serve mover nd2/mover sensor.moves 'k\tfrom the moved directory\n'
consume dash --topic sensor.moves --from-beginning --count 3 --timeout 20 \
    >"$WORK/moves.out" 2>"$WORK/moves.err" || fail "moves: $(cat "$WORK/moves.err")"
same "$WORK/moves.out" 'k\tfrom inside\nk\tfrom elsewhere\nk\tfrom the moved directory\n'
stop mover TERM
[ -z "$(ls -A "$WORK/elsewhere")" ] || fail "files created in the working directory: $(ls -A "$WORK/elsewhere")"
[ "$(ls "$WORK/nd2" | tr '\n' ' ')" = "mover.config mover.crypto mover.seed " ] ||
    fail "node directory: $(ls "$WORK/nd2")"
pass "a node run from another directory and moved keeps its files, key and old keys"
