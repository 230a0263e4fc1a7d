#!/bin/sh
# Node files under crashes and operator mistakes (issue 9 §3, §5):
# - a kill injected at each write, fsync, rename, link and pwrite of the
#   runtime writing config, .crypto and .seed (and of simple-provision at
#   each rename and link) leaves every file parseable (old or new content),
#   and the next open removes every temporary file (which may hold the key
#   or the seed); new secret files are 0600;
# - a FIFO in place of NODE.config, NODE.crypto or NODE.seed is a clear
#   "not a regular file" from keyinfo and a node open, at once.
. "$(dirname "$0")/lib.sh"
command -v strace >/dev/null 2>&1 || fail "strace is required (in DEB_PACKAGES)"
cd "$WORK"
K=$KC_BIN
WRITE="$HERE/files_write.lua"
CHECK="$HERE/files_check.lua"

leftovers() {
    ls -A "$1" | grep -E '\.(tmp[[:alnum:]]{6}|new\.[[:alnum:]]{6})$' || true
}

# crash_at CALL N CMD...: CMD with SIGKILL injected at its Nth CALL.
# Status 0: CMD finished (it makes fewer than N such calls); 1: killed.
crash_at() {
    call=$1 n=$2; shift 2
    status=0
    strace -f -qq -o /dev/null -e trace="$call" -e inject="$call":signal=KILL:when="$n" \
        "$@" >crash.out 2>&1 || status=$?
    [ "$status" = 0 ] && return 0
    [ "$status" -gt 128 ] || fail "$call #$n: exited $status, not killed: $(tail -3 crash.out)"
    return 1
}

# after_crash DIR NODE WHAT: the next open finds parseable files and clears
# every leftover; secret files are private.
after_crash() {
    "$K" run "$CHECK" "$1" "$2" >check.out 2>&1 || fail "$3: $(cat check.out)"
    [ -z "$(leftovers "$1")" ] || fail "$3: left after the next open: $(leftovers "$1")"
    for f in "$1/$2.crypto" "$1/$2.seed"; do
        [ ! -e "$f" ] || [ "$(stat -c %a "$f")" = 600 ] || fail "$3: $f is not 0600"
    done
}

KILLS=0
for state in empty existing; do
    for call in write fsync rename link pwrite64; do
        n=1
        while :; do
            rm -rf d && mkdir d
            [ "$state" = empty ] || "$K" run "$WRITE" d >/dev/null || fail "files_write.lua"
            if crash_at "$call" "$n" "$K" run "$WRITE" d; then break; fi
            KILLS=$((KILLS + 1))
            after_crash d n1 "$state files, kill at $call #$n"
            n=$((n + 1))
        done
        case "$state.$call" in
            empty.link|*.rename|*.fsync|*.write|existing.pwrite64)
                [ "$n" -gt 1 ] || fail "$state files: no $call to kill at (the test lost its teeth)" ;;
        esac
    done
done
pass "runtime writes: $KILLS kills at every write/fsync/rename/link/pwrite, files old or new, no leftover after the next open"

# simple-provision, killed at each rename and link (it writes all three files)
printf 'crash root password\n' >rot.pw
printf 'crash prov pw\n' >prov.pw
PKILLS=0
for call in rename link; do
    n=1
    while :; do
        rm -rf p && mkdir p
        if crash_at "$call" "$n" "$K" simple-provision --dir p --node-id p1 --role producer \
            --topics t --rot-password-file rot.pw --password-file prov.pw --yes; then
            break
        fi
        PKILLS=$((PKILLS + 1))
        after_crash p p1 "simple-provision, kill at $call #$n"
        n=$((n + 1))
    done
    [ "$n" -gt 1 ] || fail "simple-provision made no $call"
done
pass "simple-provision: $PKILLS kills at every rename/link, no secret left in a temporary file"

# ---- not a regular file ---------------------------------------------------------------
# (provisioned from inside its directory: the file# references are then
# right wherever they resolve from)
rm -rf p && mkdir p
(cd p && "$K" simple-provision --node-id p1 --role producer --topics t \
    --rot-password-file ../rot.pw --password-file ../prov.pw --yes >/dev/null 2>&1) ||
    fail "simple-provision"
for f in config crypto seed; do
    rm -rf q && cp -a p q && rm "q/p1.$f" && mkfifo "q/p1.$f"
    (cd q && echo x | timeout 10 "$K" produce --node p1.config --topic t \
        --broker 127.0.0.1:1 -X security.protocol=PLAINTEXT) >fifo.out 2>&1 && fail "$f: opened"
    grep -q "file p1.$f: not a regular file" fifo.out || fail "node open, FIFO .$f: $(tail -2 fifo.out)"
    (cd q && timeout 10 "$K" keyinfo p1.config) >fifo.out 2>&1 || true
    case $f in
        config|crypto) grep -q "file p1.$f: not a regular file" fifo.out ||
                           fail "keyinfo, FIFO .$f: $(tail -2 fifo.out)" ;;
    esac
done
pass "a FIFO as .config, .crypto or .seed: 'not a regular file' from a node open and keyinfo"
