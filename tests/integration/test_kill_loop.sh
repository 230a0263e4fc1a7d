#!/bin/sh
# The kill loop of issue 9 §7, short: a producer rotating keys is killed at
# 60 random instants; no corrupt file, no temporary file surviving the next
# open, no (root, key index) handed out twice, every handed-out key still
# in oldkeys (see kill_loop.sh; `make soak` runs 500).
. "$(dirname "$0")/lib.sh"
KILLS=${KILLS:-60}
. "$HERE/kill_loop.sh"
pass "kill loop: $KILLED kills, no corruption, no reuse, no key lost, no leftover"
