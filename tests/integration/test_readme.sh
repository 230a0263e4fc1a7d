#!/bin/sh
# The README's examples run as printed: every ```lua block whose first line
# is "-- example: NAME.lua" is extracted and run against nodes provisioned
# the way the README says (kafkacrypto simple-provision).
. "$(dirname "$0")/lib.sh"
README="$HERE/../../README.md"

awk -v dir="$WORK" '
  /^```lua$/ { inblock = 1; first = 1; next }
  /^```$/    { inblock = 0; out = ""; next }
  inblock && first { first = 0; if ($0 ~ /^-- example: /) { out = dir "/" $3 } }
  inblock && out != "" { print > out }
' "$README"
for name in quickstart.lua stacking.lua universal.lua; do
    [ -s "$WORK/$name" ] || fail "README has no example $name"
done

cd "$WORK"
printf 'correct horse battery\n' >rot.pw
printf 'staple\n' >prov.pw
"$KC_BIN" simple-provision --node-id my-node-ID --role prodcon --all-topics \
    --rot-password-file rot.pw --password-file prov.pw --yes >provision.out 2>&1 \
    || fail "simple-provision: $(cat provision.out)"

"$KC_BIN" run quickstart.lua >out 2>err || fail "quickstart.lua: $(cat err)"
[ "$(cat out)" = "a key	a secret value" ] || fail "quickstart.lua printed: $(cat out)"
pass "README quick start: provision, then encrypt and decrypt"

"$KC_BIN" run stacking.lua >out 2>err || fail "stacking.lua: $(cat err)"
[ "$(cat out)" = "kitchen	21.5" ] || fail "stacking.lua printed: $(cat out)"
pass "README stacking: JSON with encryption"

"$KC_BIN" run universal.lua my-node-ID.config >out 2>err || fail "universal.lua: $(cat err)"
grep -q '^value1 : value-of-value1$' my-node-ID.config || fail "universal.lua did not store value1"
pass "README universal configuration file"

# The policy shown in the README is the tested file, verbatim.
awk '/^```lua$/ { inblock = 1; first = 1; next }
     /^```$/ { inblock = 0; keep = 0; next }
     inblock && first { first = 0; keep = ($0 ~ /^-- policies\/allow-fingerprints.lua/) }
     inblock && keep' "$README" >shown.lua
cmp -s shown.lua "$HERE/../../policies/allow-fingerprints.lua" \
    || fail "README's policy differs from policies/allow-fingerprints.lua"
pass "README policy example is policies/allow-fingerprints.lua"

# The command-line example, as printed, with `kafkacrypto` on the PATH.
mkdir cli bin
ln -s "$KC_BIN" bin/kafkacrypto
awk '/^```sh$/ { inblock = 1; first = 1; next }
     /^```$/ { inblock = 0; keep = 0; next }
     inblock && first { first = 0; keep = ($0 ~ /^export KAFKACRYPTO_ROT_PASSWORD/) }
     inblock && keep' "$README" >cli/example.sh
[ -s cli/example.sh ] || fail "README has no command-line example"
cd cli
PATH="$WORK/bin:$PATH" setsid sh example.sh >out 2>err &
EXAMPLE=$!   # setsid: the example's broker and producer share this process group
PIDS="$PIDS $EXAMPLE"
cd ..
wait "$EXAMPLE" || fail "the command-line example failed: $(cat cli/err)"
# the serving producer first, while its broker is still up, then the broker
pkill -TERM -g "$EXAMPLE" -f "kafkacrypto produce" || true
wait_for 20 sh -c "! pgrep -g $EXAMPLE -f 'kafkacrypto produce' >/dev/null" \
    || fail "the example's producer did not stop on SIGTERM"
kill -TERM "-$EXAMPLE" 2>/dev/null || true
for reading in '"key":"kitchen","payload":"21.5 C"}' '"key":"garage","payload":"14.0 C"}'; do
    grep -qF "\"headers\":[\"unit\",\"celsius\"],$reading" cli/readings.json \
        || fail "the command-line example wrote: $(cat cli/readings.json) $(cat cli/err)"
done
[ "$(wc -l <cli/readings.json)" = 2 ] || fail "two readings expected: $(cat cli/readings.json)"
pass "README command-line producer and consumer"
