#!/bin/sh
# The core does not know Lua: every C file that includes a Lua header, or a
# header of the Lua side, lives in runtime/src/lua/ (DESIGN: the seam is
# one-way). Prints each offender and exits 1.
set -eu
lua_side=$(cd runtime/src/lua && ls -- *.h | sed 's/\./\\./g' | paste -sd'|' -)
bad=$(grep -lE "^#include [<\"]((lua|lauxlib|lualib|luajit)\\.h|$lua_side)" \
      runtime/src/*.c runtime/src/*.h runtime/include/*.h 2>/dev/null || true)
if [ -n "$bad" ]; then
    for f in $bad; do echo "layout: $f includes Lua or the Lua side: move it to runtime/src/lua/ or use a C interface"; done
    exit 1
fi
echo "layout: the core (runtime/src, runtime/include) includes no Lua header"
