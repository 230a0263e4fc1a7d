#!/bin/sh
# The tools (scripts/*.lua): help, argument errors, every provisioning flow
# with its bad inputs, keyinfo, and key-monitor watching a key exchange
# between nodes the tools provisioned.
. "$(dirname "$0")/lib.sh"
K=$KC_BIN
cd "$WORK"

# usage_error TOOL ARGS...: exit 2, one error line naming the tool, the usage
usage_error() {
    tool=$1
    expect 2 "$K" "$@"
    [ "$(grep -c "^kafkacrypto $tool: " "$WORK/err")" = 1 ] || fail "'$*': one error line expected: $(cat "$WORK/err")"
    contains err "usage: kafkacrypto $tool"
}

ROTPW="correct horse battery"
PROVPW="provisioning password"
printf '%s\n' "$ROTPW" >rot.pw
printf '%s\n' "$PROVPW" >prov.pw
printf 'another root password\n' >other.pw
unset KAFKACRYPTO_ROT_PASSWORD KAFKACRYPTO_PASSWORD

# ---- help and argument errors ---------------------------------------------------
TOOLS="simple-provision provision controller-provision chain-server-provision generate-chains keyinfo key-monitor rot-sign"
for tool in $TOOLS; do
    expect 0 "$K" "$tool" --help
    contains out "usage: kafkacrypto $tool"
    usage_error "$tool" --bogus
done
expect 0 "$K" --help
for tool in $TOOLS; do contains out "  $tool "; done
pass "every tool has --help, a description in kafkacrypto --help, and rejects unknown options"

usage_error simple-provision --keytype 1 --role bogus --node-id n --rot-password-file rot.pw --password-file prov.pw
contains err "role 'bogus'"
usage_error simple-provision --keytype 3
usage_error simple-provision --keytype 1 --pathlen x --node-id n --role producer --rot-password-file rot.pw --password-file prov.pw --topics t
usage_error simple-provision stray
usage_error simple-provision --node-id
usage_error simple-provision --keytype 1 --rot-password-file missing.pw
printf 'short\n' >short.pw
usage_error simple-provision --keytype 1 --rot-password-file short.pw
contains err "12 or more characters"
KAFKACRYPTO_ROT_PASSWORD="$ROTPW" KAFKACRYPTO_PASSWORD="five5" usage_error simple-provision --keytype 1
contains err "6 or more characters"
usage_error provision
contains err "--setup FILE is required"
usage_error provision --setup missing.setup
printf 'rot : zz\n' >bad.setup
usage_error provision --setup bad.setup
contains err "bad.setup:1: rot: not hex"
printf 'root : 00\n' >bad.setup
usage_error provision --setup bad.setup
contains err "unknown name 'root'"
printf 'rot : 0011\n' >bad.setup
usage_error provision --setup bad.setup
contains err "not an Ed25519 public key"
usage_error key-monitor
usage_error key-monitor --node missing.config
usage_error key-monitor --node rot.pw --count 0
usage_error keyinfo missing.config
usage_error keyinfo --rot kwDEAZA --chain kwDEAZA=
contains err "truncated base64"
usage_error generate-chains --keytype 1 --rot zz
usage_error controller-provision --keytype 1 --rot 0011
usage_error rot-sign 123
contains err "odd number of hex digits"
pass "argument errors: one line, the usage, exit 2"

# ---- simple-provision ------------------------------------------------------------------
# interactive (answers piped): a short password is asked again, a bad menu
# choice too; passwords never appear in the output
# keytype, ROT password, short + good provisioning password, node, bad + good
# menu choice, limited, topics, pathlen, confirmation
printf '\n%s\nshort\n%s\nnode1\n9\n3\n\nex1.a ex2\n\nyes\n' "$ROTPW" "$PROVPW" >in
expect 0 "$K" simple-provision
contains out "ROT Password (12+ chars): "
contains out "Provisioning Password (6+ chars): "
contains out "Limit the consumer to only functioning with controllers (y/N)? "
contains out "['ex1', 'ex2']"
contains out "Congratulations! Provisioning is complete."
lacks out "$ROTPW"
lacks out "$PROVPW"
lacks err "$PROVPW"
for f in node1.config node1.crypto node1.seed; do [ -s "$f" ] || fail "$f not written"; done
grep -q '^chain0 : base64#' node1.config || fail "no chain0"
grep -q '^rot0 : base64#kwDEAZDEI' node1.config || fail "no rot0"
grep -q '^temporary' node1.config && fail "temporary root kept"
[ "$(stat -c %a node1.seed)" = 600 ] || fail "node1.seed is not private"
pass "simple-provision: interactive, re-asks short passwords and bad choices"

# on a terminal (script(1) gives one): passwords are not echoed, the node ID is
if command -v script >/dev/null 2>&1; then
    { sleep 2; printf '\n'; sleep 2; printf 'terminal root password\n'; sleep 2
      printf 'terminal pw\n'; sleep 2; printf 'ttynode\n2\nex1\n\nyes\n'; sleep 4; } |
        script -qec "'$K' simple-provision" /dev/null >tty.out 2>&1 || fail "on a terminal: $(tail -3 tty.out)"
    grep -q "Congratulations! Provisioning is complete." tty.out || fail "on a terminal: $(tail -3 tty.out)"
    grep -q "Node ID: ttynode" tty.out || fail "the node ID was not echoed"
    ! grep -q "terminal root password\|terminal pw" tty.out || fail "a password was echoed"
    pass "simple-provision on a terminal: passwords are read without echo"
fi

# end of input, "no" at the confirmation
printf '\n%s\n' "$ROTPW" >in
expect 1 "$K" simple-provision
contains err "end of input"
printf '\n%s\n%s\nnode2\n2\nex1\n\nno\n' "$ROTPW" "$PROVPW" >in
expect 1 "$K" simple-provision
contains err "Aborting per user request."
[ ! -e node2.config ] || fail "files written after 'no'"
pass "simple-provision: end of input and 'no' abort without files"

# automation, the same root: flags and password files (and the environment)
: >in
expect 0 "$K" simple-provision --node-id prod1 --role producer --topics "exr.data" \
    --rot-password-file rot.pw --password-file prov.pw --yes
KAFKACRYPTO_ROT_PASSWORD="$ROTPW" KAFKACRYPTO_PASSWORD="$PROVPW" \
    expect 0 "$K" simple-provision --keytype 1 --node-id cons1 --role consumer --topics "exr" \
    --pathlen -1 --yes
contains out "cons1 Public Key: "
grep -q 'mgmt_long_keyindex : True' prod1.config || fail "producer without mgmt_long_keyindex"
pass "simple-provision: non-interactive with password files and environment"

# ---- keyinfo -------------------------------------------------------------------------------
expect 0 "$K" keyinfo cons1.config
contains out "chain0: valid, for signing key 0"
contains out "usages:   key-encrypt-request, key-encrypt-subscribe"
contains out "topics:   exr"
contains out "pathlen:  unlimited"
contains out "direct:   yes"
contains out "rot0: [Key: (Ed25519, "
lacks out "$ROTPW"
R=$(sed -n 's/^rot0 : base64#//p' cons1.config)
C=$(sed -n 's/^chain0 : base64#//p' cons1.config)
expect 0 "$K" keyinfo --rot "$R" --chain "$C"
contains out "Valid against this root of trust"
# the chain against another root: invalid, and which item failed
expect 0 "$K" rot-sign --show-rot --rot-password-file other.pw
OTHER=$(sed -n 's/^ROT allowlist entry: //p' out)
OTHERB64=$(printf '%s' "$OTHER" | xxd -r -p | base64 -w0)
expect 1 "$K" keyinfo --rot "$OTHERB64" --chain "$C"
contains out "INVALID against this root of trust"
contains out "chain item 1"
printf '%s\n%s\n' "$R" "$(printf '%s' "$C" | cut -c1-40)" >in
expect 1 "$K" keyinfo
contains err "chain"
: >in
pass "keyinfo: a node in words, and upstream's root + chain mode"

# ---- offline root: generate-chains, rot-sign, provision -------------------------------------
expect 0 "$K" rot-sign --show-rot --rot-password-file rot.pw
ROT=$(sed -n 's/^ROT public key: //p' out)
expect 0 "$K" generate-chains --keytype 1 --rot "$ROT" --password-file prov.pw --no-secret-keys
lacks out "(sk:"
expect 0 "$K" generate-chains --keytype 1 --rot "$ROT" --password-file prov.pw
contains out "Self-Signed Revocation: "
contains out "(sk: "   # upstream prints provisioner secret keys on purpose
cp out gc.txt
{
    echo "; test setup"
    echo "rot : $ROT"
    for r in producer consumer prodcon; do
        U=$(sed -n "s/^$r ( [0-9a-f]* ): \([0-9a-f]*\) .*/\1/p" gc.txt)
        "$K" rot-sign --rot-password-file rot.pw "$U" >signed.txt || fail "rot-sign $r"
        echo "$r : $(sed -n 's/^ROT Signed Value: //p' signed.txt)"
    done
} >prov.setup
# menu: prodcon, limited by default (Y/n), all topics refused by default (y/N) then given
printf '\nprov1\n4\n\n\n\nex9\n\nyes\n' >in
expect 0 "$K" provision --setup prov.setup --password-file prov.pw
contains out "Limit the consumer to only functioning with controllers (Y/n)? "
contains out "Are you sure you want to allow all topics (y/N)?"
contains out "Lifetime of initial crypto configuration will be 7.0 days."
contains out "usages key-encrypt,key-encrypt-subscribe"
contains out "it is not printed"
: >in
expect 0 "$K" keyinfo prov1.config
contains out "chain0: valid, for signing key 0"
# with an escrow key: the seed sealed to it
echo "escrow : $ROT" >>prov.setup
expect 0 "$K" provision --setup prov.setup --password-file prov.pw --node-id prov2 \
    --role consumer-limited --topics ex9 --yes
contains out "prov2 escrow value: 00200018"
# wrong provisioning password: the provisioner does not match the signed cert
printf 'a wrong provisioning pw\n' >wrong.pw
expect 1 "$K" provision --setup prov.setup --password-file wrong.pw --node-id prov3 --role producer --topics x --yes
contains err "Malformed chain for producer"
# a setup without the role's provisioner
grep -v '^prodcon' prov.setup >noprodcon.setup
expect 1 "$K" provision --setup noprodcon.setup --password-file prov.pw --node-id prov4 --role prodcon --topics x --yes
contains err "A trusted chain for prodcon is missing"
pass "generate-chains, rot-sign and provision: setup file, escrow, wrong password, missing provisioner"

# ---- controller-provision and chain-server-provision ---------------------------------------
offline() {   # offline TOOL NAME NODE: two steps, as an operator would
    expect 1 "$K" "$1" --rot "$ROT" --node-id "$3" --all-topics --lifetime -1 --yes
    contains out "ROT Signed Value (hex):"
    U=$(sed -n "s/^New $2 ( [0-9a-f]* ): //p" out)
    [ -n "$U" ] || fail "$1 printed no certificate"
    expect 0 "$K" rot-sign --rot-password-file rot.pw "$U"
    sed -n 's/^ROT Signed Value: //p' out >"$3.signed"
    expect 0 "$K" "$1" --setup prov.setup --node-id "$3" --all-topics --lifetime -1 --yes --signed-file "$3.signed"
    contains out "Congratulations! $2 provisioning is complete."
}
offline controller-provision Controller ctl1
grep -q '^maxage : -1' ctl1.config && fail "controller stored maxage -1"
offline chain-server-provision "Chain Server" cs1
grep -q '^\[cs1-chainkeys\]' cs1.config || fail "chain server without chainkeys section"
expect 0 "$K" keyinfo cs1.config
contains out "usages:   key-encrypt, key-encrypt-subscribe"
contains out "pathlen:  2"
contains out "expires:  never"
# bad signed values: not hex, truncated, signed by another root, another key
for bad in "zz" "$(cut -c1-100 ctl1.signed)" "$(cut -c1-101 ctl1.signed)"; do
    printf '%s\n' "$bad" >bad.signed
    expect 1 "$K" controller-provision --rot "$ROT" --node-id ctl2 --all-topics --yes --signed-file bad.signed
    grep -q "ROT Signed Value" err || fail "bad value: $(cat err)"
done
expect 1 "$K" controller-provision --rot "$ROT" --node-id ctl2 --all-topics --yes
U=$(sed -n 's/^New Controller ( [0-9a-f]* ): //p' out)
expect 0 "$K" rot-sign --rot-password-file other.pw "$U"
sed -n 's/^ROT Signed Value: //p' out >other.signed
expect 1 "$K" controller-provision --rot "$ROT" --node-id ctl2 --all-topics --yes --signed-file other.signed
contains err "Malformed ROT Signed Value"
expect 1 "$K" controller-provision --rot "$ROT" --node-id ctl2 --all-topics --yes --signed-file cs1.signed
contains err "the chain certifies key"
[ ! -e ctl2.config ] || fail "ctl2.config written from a bad value"
pass "controller-provision and chain-server-provision: two-step flow and bad signed values"

# ---- node directories: relative file# references (spec D1) ----------------------------------
# every tool writes file# paths relative to the config, as upstream's do, so
# the directory can be moved and used from anywhere
mkdir nd cwd2
expect 0 "$K" simple-provision --node-id sp --role producer --topics exr --rot-password-file rot.pw \
    --password-file prov.pw --yes --dir "$WORK/nd"
expect 0 "$K" provision --setup prov.setup --password-file prov.pw --node-id pv --role consumer \
    --topics exr --yes --dir "$WORK/nd"
for t in controller-provision:ctl1 chain-server-provision:cs1; do
    cp "${t#*:}.crypto" nd/
    expect 0 "$K" "${t%:*}" --setup prov.setup --node-id "${t#*:}" --all-topics --lifetime -1 --yes \
        --signed-file "${t#*:}.signed" --dir "$WORK/nd"
done
for n in sp pv ctl1 cs1; do
    grep -qx "cryptokey : file#$n.crypto" "nd/$n.config" || fail "$n: $(grep file# "nd/$n.config")"
done
for n in sp pv; do
    grep -qx "ratchet : file#$n.seed" "nd/$n.config" || fail "$n: $(grep file# "nd/$n.config")"
done
mv nd nd2
(cd cwd2 && "$K" keyinfo "$WORK/nd2/sp.config") >out 2>err || fail "keyinfo: $(cat err)"
contains out "Signing keys ($WORK/nd2/sp.crypto):"
contains out "chain0: valid, for signing key 0"
[ -z "$(ls -A cwd2)" ] || fail "keyinfo created files in the working directory: $(ls -A cwd2)"
pass "provisioning tools write relative file# paths; a moved node directory is read from anywhere"

# ---- key exchange between tool-provisioned nodes, watched by key-monitor -------------------
broker_up
exchanged "$WORK" prod1 cons1 exr.data
expect 0 "$K" key-monitor --node cons1.config --broker "$B" --from-beginning --count 3 --timeout 60 --refresh 1
contains out "exr.subs: subscription for root exr requested by"
contains out "exr.reqs: request for root exr requested by"
contains out "exr.keys: reply for root exr answered by"
contains out ": valid (usages key-encrypt;"
contains err "key-monitor: root exr: "
# the counts per root, served for Prometheus while it watches (scraped with curl)
"$K" key-monitor --node prod1.config --broker "$B" --from-beginning --timeout 120 --refresh 1 \
    --metrics-listen 127.0.0.1:0 >monitor.out 2>monitor.err &
MON=$!
PIDS="$PIDS $MON"
wait_for 20 grep -q "metrics at http://127.0.0.1:[0-9]*/metrics" monitor.err || fail "no metrics: $(cat monitor.err)"
url=$(sed -n 's/^key-monitor: metrics at //p' monitor.err)
wait_for 90 sh -c "curl -sf $url | grep -q 'kafkacrypto_monitor_messages_total{root=\"exr\",kind=\"reply\",valid=\"true\"} [1-9]'" ||
    fail "no valid reply counted: $(curl -s "$url") $(cat monitor.err monitor.out)"
curl -sf "$url" >monitor.page || fail "scrape failed"
contains monitor.page '# TYPE kafkacrypto_monitor_messages_total counter'
grep -Eq '^kafkacrypto_monitor_messages_total\{root="exr",kind="request",valid="true"\} [1-9]' monitor.page ||
    fail "no request counted: $(cat monitor.page)"
contains monitor.page 'kafkacrypto_monitor_messages_total{root="exr",kind="reply",valid="false"} 0'
contains monitor.page 'kafkacrypto_monitor_unanswered_seconds{root="exr"} 0'
kill $MON
wait $MON 2>/dev/null || true
PIDS=$(echo "$PIDS" | sed "s/ $MON//")
usage_error key-monitor --node cons1.config --broker "$B" --metrics-listen nonsense
contains err "metrics_listen: 'nonsense': expected HOST:PORT"
# a node of another root sees the same messages as invalid
expect 0 "$K" simple-provision --keytype 1 --node-id stranger --role consumer --topics exr \
    --rot-password-file other.pw --password-file prov.pw --yes
expect 0 "$K" key-monitor --node stranger.config --broker "$B" --from-beginning --count 3 --timeout 60 --refresh 1
contains out "exr.keys (INVALID): reply for root exr: chain not trusted"
contains out "items: [Key: (Ed25519, "
expect 0 "$K" key-monitor --node cons1.config --broker "$B" --timeout 2 --refresh 1
contains err "key-monitor: 0 message(s)"
stop_broker "$WORK/bootstrap"
pass "tool-provisioned nodes exchange keys; key-monitor names requester, answerer and validity, counts per root and serves the counts (curl)"
