#!/bin/sh
# Soak (`make soak`): tests/integration/test_consume_hold.sh with
# SOAK_MESSAGES (default 1 000 000, over 26 partitions) messages read before their key comes:
# `consume` must print every one, pausing at 10 000 waiting.
set -eu
ROOT_DIR=$(cd "$(dirname "$0")/../.." && pwd)
KC_BIN=${KC_BIN:-$ROOT_DIR/build/kafkacrypto}
export KC_BIN
HOLD_MESSAGES=${SOAK_MESSAGES:-1000000} exec sh "$ROOT_DIR/tests/integration/test_consume_hold.sh"
