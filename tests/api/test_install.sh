#!/bin/sh
# make install into a scratch DESTDIR, then use only the installed copy: a C
# program built with pkg-config against it runs, and the installed binary
# runs the demo from another directory. Usage: test_install.sh BUILD_DIR
set -eu
build=${1:-build}
top=$(pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM
prefix=/opt/kafkacrypto
make --no-print-directory -s BUILD="$build" install DESTDIR="$work/root" PREFIX="$prefix" >/dev/null
root=$work/root$prefix
for f in bin/kafkacrypto include/kafkacrypto.h lib/libkafkacrypto.so lib/libkafkacrypto.a \
         lib/pkgconfig/kafkacrypto.pc share/kafkacrypto/lua/kafkacrypto/init.lua \
         share/kafkacrypto/lua/kafkacrypto/tools/cli.lua \
         share/kafkacrypto/lua/kafkacrypto/authorities/controller.lua \
         share/kafkacrypto/scripts/demo.lua share/kafkacrypto/policies/default.lua; do
    [ -e "$root/$f" ] || { echo "install: $prefix/$f missing"; exit 1; }
done
export PKG_CONFIG_PATH="$root/lib/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$work/root"
[ "$(pkg-config --modversion kafkacrypto)" = "$(sed -n 's/^#define KC_VERSION_STRING "\(.*\)"/\1/p' runtime/include/kafkacrypto.h)" ] ||
    { echo "install: kafkacrypto.pc has the wrong version"; exit 1; }
# shellcheck disable=SC2046
cc -o "$work/probe" tests/api/install_probe.c $(pkg-config --cflags --libs kafkacrypto)
out=$(LD_LIBRARY_PATH="$root/lib" "$work/probe" "$work" 2>"$work/probe.err") ||
    { cat "$work/probe.err"; echo "install: the probe failed"; exit 1; }
mkdir "$work/run"
cd "$work/run"
if ! "$root/bin/kafkacrypto" demo >"$work/demo.log" 2>&1; then
    tail -n 20 "$work/demo.log"; echo "install: the installed demo failed"; exit 1
fi
cd "$top"
echo "install: the installed library, header, pkg-config file and demo work ($out)"
