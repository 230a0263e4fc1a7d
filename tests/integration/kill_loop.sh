# The kill loop (issue 9 §7), sourced after lib.sh by test_kill_loop.sh
# (make test) and tests/soak/soak_kill.sh (make soak) with KILLS set.
#
# A producer node (kill_producer.lua) that rotates keys fast and encrypts
# for two roots is started again and again and killed with SIGKILL at a
# random instant (also while it opens, creates or rewrites its files).
# After each kill, the next run must:
#   - open the node: config, .crypto and .seed parse (no corrupt file);
#   - have removed every temporary file the killed runs left;
#   - hold (from oldkeys) every key index any earlier run handed out;
#   - hand out no (root, key index) an earlier run handed out.
# KILL_SEED picks the instants (printed, to replay a failure).
: "${KILLS:?set KILLS}"
KILL_SEED=${KILL_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
KILL_MAX_DELAY=${KILL_MAX_DELAY:-1.0}
cd "$WORK"
K=$KC_BIN
PRODUCER="$HERE/kill_producer.lua"
[ -e "$PRODUCER" ] || PRODUCER="$KC_SOURCE_DIR/tests/integration/kill_producer.lua"
broker_up

printf 'kill loop root password\n' >rot.pw
printf 'kill loop prov\n' >prov.pw
# Everything runs inside the node's directory, so that its file#
# references are right wherever they resolve from.
mkdir node && cd node
"$K" simple-provision --node-id kl --role producer --topics "ka kb" \
    --rot-password-file ../rot.pw --password-file ../prov.pw --yes >/dev/null 2>&1 ||
    fail "simple-provision"

leftovers() {
    ls -A | grep -E '\.(tmp[[:alnum:]]{6}|new\.[[:alnum:]]{6})$' || true
}

: >handed.txt  # "ROOT KEYINDEX" of every key handed out so far
: >pending.txt # temporary files left by kills since the last open that got through
# a third of the kills in the first 0.15 s: while the node opens, advances
# its seed and writes its first keys
awk -v n="$KILLS" -v seed="$KILL_SEED" -v max="$KILL_MAX_DELAY" 'BEGIN { srand(seed)
    for (i = 0; i < n; i++) printf "%.3f\n", rand() * (rand() < 0.33 ? 0.15 : max) }' >delays
echo "kill loop: $KILLS kills, seed $KILL_SEED (KILL_SEED=$KILL_SEED to replay)"

KILLED=0 OPENS=0 REUSED=0 CORRUPT=0 LEFT=0 LOST=0 LEFTOVERS_SEEN=0
# check_run: what the run in run.out shows about the runs before it.
check_run() {
    grep -q '^open$' run.out || return 0 # killed while opening: nothing to check yet
    OPENS=$((OPENS + 1))
    sed -n 's/^held //p' run.out | sort -u >held.txt
    lost=$(sort -u handed.txt | comm -23 - held.txt | head -3)
    [ -z "$lost" ] || { LOST=$((LOST + 1)); echo "kill $KILLED: not in oldkeys: $lost" >&2; }
    for t in $(cat pending.txt); do
        [ ! -e "$t" ] || { LEFT=$((LEFT + 1)); echo "kill $KILLED: $t survived the open" >&2; }
    done
    : >pending.txt
}

for delay in $(cat delays); do
    # emptied here, not by the child's redirection: a kill can come before
    # the child opens it, and the last run's lines must not count twice
    : >run.out
    "$K" --set tunables.crypto_ratchet_interval=0.1 --set tunables.mgmt_poll_interval=20 \
        --set tunables.mgmt_flush_time=0.02 run "$PRODUCER" kl.config "$B" \
        >>run.out 2>run.err &
    pid=$!
    sleep "$delay"
    kill -KILL "$pid" 2>/dev/null || true
    status=0
    wait "$pid" 2>/dev/null || status=$?
    if [ "$status" != 137 ]; then
        CORRUPT=$((CORRUPT + 1))
        echo "run $((KILLED + 1)) ended by itself ($status): $(tail -3 run.err)" >&2
    fi
    KILLED=$((KILLED + 1))
    check_run
    # keys this run handed out: none may have been handed out before
    sed -n 's/^new //p' run.out | sort -u >new.txt
    reused=$(sort -u handed.txt | comm -12 - new.txt | head -3)
    [ -z "$reused" ] || { REUSED=$((REUSED + 1)); echo "kill $KILLED: reused: $reused" >&2; }
    cat new.txt >>handed.txt
    leftovers >>pending.txt
    LEFTOVERS_SEEN=$((LEFTOVERS_SEEN + $(leftovers | wc -l)))
    [ -z "${KC_KEEP:-}" ] || cp run.out "run$KILLED.out"
    [ "$CORRUPT$REUSED$LOST$LEFT" = 0000 ] || break
done
# KC_KEEP=DIR: a failed loop's node directory and runs, for a post-mortem
[ -z "${KC_KEEP:-}" ] || [ "$CORRUPT$REUSED$LOST$LEFT" = 0000 ] || cp -a . "$KC_KEEP"

# a last open, left to finish opening: it sees everything
: >run.out
"$K" run "$PRODUCER" kl.config "$B" >>run.out 2>run.err &
pid=$!
wait_for 30 grep -q '^open$' run.out || { CORRUPT=$((CORRUPT + 1)); echo "final open: $(tail -3 run.err)" >&2; }
kill -KILL "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
check_run
KEYS=$(sort -u handed.txt | wc -l)
echo "kill loop: $KILLED kills ($OPENS runs got through opening), $KEYS keys handed out," \
    "$LEFTOVERS_SEEN temporary files left by kills; corrupt: $CORRUPT, reused: $REUSED," \
    "missing from oldkeys: $LOST, temporary files surviving an open: $LEFT"
[ "$CORRUPT" = 0 ] || fail "a node file was corrupt (the node did not open) after a kill"
[ "$REUSED" = 0 ] || fail "a (root, key index) was handed out again after a kill"
[ "$LOST" = 0 ] || fail "a handed-out key was missing from oldkeys after a kill"
[ "$LEFT" = 0 ] || fail "a temporary file survived the next open"
# (a loose floor, for loaded machines: most runs hand out two or more)
[ "$((KEYS * 5))" -ge "$KILLS" ] || fail "only $KEYS keys handed out in $KILLS runs: the loop did not rotate keys"
