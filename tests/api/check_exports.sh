#!/bin/sh
# The shared library's ABI is exactly what the headers mark KC_EXPORT:
# compares the dynamic symbols libkafkacrypto.so defines with the names of
# the KC_EXPORT declarations. Usage: check_exports.sh LIB.so HEADER...
set -eu
lib=$1; shift
want=$(cat "$@" | tr '\n' ' ' | sed 's/;/;\n/g' | grep 'KC_EXPORT' |
       sed -n 's/.*[^a-zA-Z0-9_]\([a-zA-Z_][a-zA-Z0-9_]*\)[[:space:]]*(.*/\1/p' | sort -u)
got=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRVWi]$/ {print $3}' |
      grep -v '^_' | sort -u)
extra=$(printf '%s\n' "$got" | grep -vxF "$want" || true)
missing=$(printf '%s\n' "$want" | grep -vxF "$got" || true)
[ -z "$extra" ] || { echo "exported but not declared KC_EXPORT: $extra" | tr '\n' ' '; echo; }
[ -z "$missing" ] || { echo "declared KC_EXPORT but not exported: $missing" | tr '\n' ' '; echo; }
[ -z "$extra$missing" ] || exit 1
echo "exports: $(printf '%s\n' "$got" | wc -l) symbols, all declared KC_EXPORT"
