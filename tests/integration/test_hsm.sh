#!/bin/sh
# Keys in an HSM (SoftHSM2 in $WORK, a fresh token): simple-provision and
# provision with --pkcs11 put the node key in the token; a producer whose key
# is there exchanges keys with a consumer whose key is in a file; no node
# file holds more than the public key; token errors name the URI, not the
# PIN, and leave nothing on disk.
. "$(dirname "$0")/lib.sh"
K=$KC_BIN
cd "$WORK"
MODULE=/usr/lib/softhsm/libsofthsm2.so
[ -r "$MODULE" ] || fail "$MODULE missing: install softhsm2 (make deps)"

mkdir tokens
printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' "$WORK" >softhsm2.conf
SOFTHSM2_CONF=$WORK/softhsm2.conf
export SOFTHSM2_CONF
PIN=kc-it-4711
softhsm2-util --init-token --free --label kc-it --so-pin 12345678 --pin "$PIN" >/dev/null ||
    fail "softhsm2-util --init-token"
printf '%s\n' "$PIN" >pin
printf 'not-the-pin\n' >badpin
uri() { echo "pkcs11:token=kc-it;object=$1?module-path=$2&pin-source=file:$WORK/$3"; }
P1=$(uri prod1 "$MODULE" pin)

printf 'correct horse battery\n' >rot.pw
printf 'provisioning password\n' >prov.pw
unset KAFKACRYPTO_ROT_PASSWORD KAFKACRYPTO_PASSWORD KAFKACRYPTO_PKCS11_PIN
SP="simple-provision --rot-password-file $WORK/rot.pw --password-file $WORK/prov.pw --yes"

# ---- token errors: a clear message naming the URI, never the PIN; no file ---------------
mkdir bad && cd bad
# shellcheck disable=SC2086
try() { # try NEEDLE URI [--pkcs11-create]: fails, says NEEDLE and the URI, writes nothing
    needle=$1 u=$2; shift 2
    expect 1 "$K" $SP --node-id p --role producer --topics exh --pkcs11 "$u" "$@"
    contains err "$needle"
    contains err "pkcs11:token="
    lacks err "$PIN"
    lacks err "not-the-pin"
    [ -z "$(ls)" ] || fail "files written after '$needle': $(ls)"
}
try "module /nonexistent/libnone.so: No such file" "$(uri prod1 /nonexistent/libnone.so pin)"
try "no Ed25519 private key" "$P1"
try "the token refused the PIN" "$(uri prod1 "$MODULE" badpin)" --pkcs11-create
try "the token needs a PIN" "pkcs11:token=kc-it;object=prod1?module-path=$MODULE" --pkcs11-create
try "pin-value in the URI is refused" "pkcs11:token=kc-it;object=prod1?module-path=$MODULE&pin-value=$PIN"
try "no token present matches" "pkcs11:token=absent;object=prod1?module-path=$MODULE&pin-source=file:$WORK/pin"
cd "$WORK"
pass "token errors name the URI without the PIN and write nothing"

# ---- provisioning: a producer key in the token, a consumer key in a file ------------------
expect 0 "$K" $SP --node-id prod1 --role producer --topics exh --pkcs11 "$(echo "$P1" | sed 's/object=prod1/object=pro%641/')" --pkcs11-create
contains err "Created an Ed25519 key in the token"
PK=$(sed -n 's/^prod1 Public Key: //p' out)
[ ${#PK} = 64 ] || fail "no public key printed: $(cat out)"
expect 0 "$K" $SP --node-id cons1 --role consumer --topics exh
[ ! -e prod1.crypto ] || fail "prod1.crypto written for a token key"
grep -qxF "cryptokey : $(echo "$P1" | sed 's/object=prod1/object=pro%%641/')" prod1.config ||
    fail "cryptokey is not the URI: $(grep cryptokey prod1.config)"
# creating it again would make the URI ambiguous; using it is fine
expect 1 "$K" $SP --node-id prod1 --role producer --topics exh --pkcs11 "$P1" --pkcs11-create
contains err "already holds such a key"
expect 0 "$K" keyinfo prod1.config
contains out "key 0: (Ed25519, $PK)"
contains out "chain0: valid, for signing key 0"
# the Lua API: the token's key signs through a handle, and the signature checks
cat >sign.lua <<'LUA'
local crypto = require "kafkacrypto.crypto"
local keys = crypto.signing_keys(arg[1])
local signed = keys[1]:sign("through a handle")
local hex = keys[1]:public():gsub(".", function(c) return ("%02x"):format(c:byte()) end)
print(#keys, crypto.verify(keys[1]:public(), signed), hex == arg[2])
LUA
expect 0 "$K" run sign.lua "$P1" "$PK"
[ "$(cat out)" = "1	through a handle	true" ] || fail "signing through the Lua API: $(cat out err)"
pass "simple-provision --pkcs11: the chain certifies the token's key; the Lua API signs with it"

# ---- the key cannot leave the token ---------------------------------------------------------
# (test_cryptokey_pkcs11 asks the token for CKA_VALUE and is refused; here
# the attributes of the key the tool created, as the token reports them)
pkcs11-tool --module "$MODULE" --token-label kc-it --login --pin "$PIN" --list-objects --type privkey >out 2>&1
contains out "never extractable"
contains out "always sensitive"
pass "the key the tool created is sensitive and never extractable"

# ---- key exchange over the broker -------------------------------------------------------------
broker_up
exchanged "$WORK" prod1 cons1 exh.data
pass "a producer with its key in the token and a file-key consumer exchange keys"

# ---- a token pulled while the node runs: it stops signing, says so, and resumes -------------------
SHIM=${KC_P11_SHIM:-$KC_SOURCE_DIR/build/tests/libkc_p11_shim.so}
[ -r "$SHIM" ] || fail "$SHIM missing: make $SHIM"
mkdir faults
KC_P11_SHIM_TARGET=$MODULE KC_P11_SHIM_DIR=$WORK/faults
export KC_P11_SHIM_TARGET KC_P11_SHIM_DIR
expect 0 "$K" $SP --node-id cons2 --role consumer --topics exh --pkcs11 "$(uri cons2 "$SHIM" pin)" --pkcs11-create
# the token comes back once the node has said it is gone
( wait_for 60 grep -q "Token gone" ex.err; rm -f faults/removed ) &
PIDS="$PIDS $!"
exchanged "$WORK" prod1 cons2 exh.resume "$WORK/faults"
[ ! -e faults/removed ] || fail "decrypted while the token was out"
[ "$(grep -c "ERROR:kafkacrypto.cryptokey:Token gone, not signing until it returns: pkcs11 URI pkcs11:token=kc-it;object=cons2" ex.err)" = 1 ] ||
    fail "the loss is not logged once: $(grep -i token ex.err | head -5)"
grep -q "WARNING:kafkacrypto.cryptokey:Token back, signing again: pkcs11:token=kc-it;object=cons2" ex.err ||
    fail "the return is not logged: $(grep -i token ex.err | head -5)"
pass "a node whose token is pulled stops signing, logs it once, and resumes when it returns"

# ---- what the node wrote holds the public key only ------------------------------------------
# The private key never left the token, so nothing can be compared with it;
# what can be checked: the node's files are the config and the seed, the
# only key material in the config is the public key (in the chain), and the
# seed holds no form of the key.
[ "$(ls prod1.*)" = "prod1.config
prod1.seed" ] || fail "unexpected node files: $(ls prod1.*)"
grep -q "^chain0 : base64#" prod1.config || fail "no chain"
sed -n 's/^chain0 : base64#//p' prod1.config | base64 -d | xxd -p | tr -d '\n' | grep -q "$PK" ||
    fail "the chain does not hold the public key"
! xxd -p prod1.seed | tr -d '\n' | grep -q "$PK" || fail "the seed holds the public key"
grep -v '^chain0 : ' prod1.config | grep -q base64 && {
    for v in $(grep -v '^chain0 : ' prod1.config | sed -n 's/^.* : base64#//p'); do
        ! printf '%s' "$v" | base64 -d | xxd -p | tr -d '\n' | grep -q "$PK" || fail "a config value other than the chain holds the key"
    done
}
pass "node files: config (public key in the chain only) and seed, no .crypto"

# ---- provision (setup file) with --pkcs11: the key is opened before the seed is written ------
expect 0 "$K" rot-sign --show-rot --rot-password-file rot.pw
ROT=$(sed -n 's/^ROT public key: //p' out)
expect 0 "$K" generate-chains --keytype 1 --rot "$ROT" --password-file prov.pw --no-secret-keys
cp out gc.txt
U=$(sed -n "s/^producer ( [0-9a-f]* ): \([0-9a-f]*\).*/\1/p" gc.txt)
"$K" rot-sign --rot-password-file rot.pw "$U" >signed.txt || fail "rot-sign"
printf 'rot : %s\nproducer : %s\n' "$ROT" "$(sed -n 's/^ROT Signed Value: //p' signed.txt)" >prov.setup
PROV="provision --setup prov.setup --password-file prov.pw --yes --node-id prov1 --role producer --topics exh"
# shellcheck disable=SC2086
expect 1 "$K" $PROV --pkcs11 "$(uri prov1 "$MODULE" badpin)" --pkcs11-create
contains err "the token refused the PIN"
[ ! -e prov1.seed ] && [ ! -e prov1.config ] || fail "provision wrote files after a token error"
# shellcheck disable=SC2086
# a percent-encoded URI ("%2D" is "-") survives the config file's '%' interpolation
P2=$(uri prov1 "$MODULE" pin | sed 's/token=kc-it/token=kc%2Dit/')
expect 0 "$K" $PROV --pkcs11 "$P2" --pkcs11-create
[ ! -e prov1.crypto ] || fail "prov1.crypto written for a token key"
grep -qF "token=kc%%2Dit" prov1.config || fail "the URI's '%' is not written as '%%': $(grep cryptokey prov1.config)"
expect 0 "$K" keyinfo prov1.config
contains out "chain0: valid, for signing key 0"
pass "provision --pkcs11: the chain certifies the token's key; token errors write nothing"

# ---- a node whose token is unusable does not start, and changes nothing ---------------------------
mkdir wrongpin
cp prod1.config prod1.seed cons1.config cons1.crypto cons1.seed wrongpin/
BAD=$(uri prod1 "$MODULE" badpin | sed 's/[&|]/\\&/g')
sed -i "s|^cryptokey : .*|cryptokey : $BAD|" wrongpin/prod1.config
grep -qF "pin-source=file:$WORK/badpin" wrongpin/prod1.config || fail "test set-up: $(grep cryptokey wrongpin/prod1.config)"
sum=$(cat wrongpin/prod1.config wrongpin/prod1.seed | md5sum)
expect 0 "$K" keyinfo wrongpin/prod1.config
contains out "cannot read: "
contains out "the token refused the PIN"
lacks out "not-the-pin"
status=0
"$K" --broker "$B" run "$HERE/tools_exchange.lua" "$WORK/wrongpin" prod1 cons1 exh.data >ex.out 2>ex.err || status=$?
[ "$status" != 0 ] || fail "a node opened with a wrong PIN"
grep -q "pkcs11:token=kc-it;object=prod1?.*: the token refused the PIN" ex.err || fail "no PIN error: $(tail -3 ex.err)"
[ "$(cat wrongpin/prod1.config wrongpin/prod1.seed | md5sum)" = "$sum" ] || fail "node files changed after a token error"
pass "a node with a refused PIN does not open, says why, and changes nothing on disk"
