#!/bin/sh
# Soak (`make soak`): rounds of 10 000 made-up key indices against a running
# `kafkacrypto consume`, each followed by a producer it has never seen, for
# SOAK_SECONDS (default 600); every round's new key must arrive within about
# one request interval (tests/integration/test_flood.sh, spec D4). Prints
# each round's delay and the consumer's memory.
set -eu
ROOT_DIR=$(cd "$(dirname "$0")/../.." && pwd)
KC_BIN=${KC_BIN:-$ROOT_DIR/build/kafkacrypto}
export KC_BIN
FLOOD_SECONDS=${SOAK_SECONDS:-600} exec sh "$ROOT_DIR/tests/integration/test_flood.sh"
