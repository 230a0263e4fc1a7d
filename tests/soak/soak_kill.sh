#!/bin/sh
# make soak: the kill loop of issue 9 §7 at length (500 kills; see
# tests/integration/kill_loop.sh).
. "$KC_SOURCE_DIR/tests/integration/lib.sh"
HERE=$KC_SOURCE_DIR/tests/integration
KILLS=${KILLS:-500}
. "$HERE/kill_loop.sh"
pass "soak kill loop: $KILLED kills, no corruption, no reuse, no key lost, no leftover"
