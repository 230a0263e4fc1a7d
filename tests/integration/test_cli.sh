#!/bin/sh
# The command line of `kafkacrypto`: help, version, errors and exit statuses,
# settings files, running scripts and tools.
. "$(dirname "$0")/lib.sh"

expect 0 "$KC_BIN" --help
contains out "usage: kafkacrypto"
contains out "broker [--port N]"
expect 0 "$KC_BIN" --version
grep -qE '^kafkacrypto [0-9]+\.[0-9]+\.[0-9]+$' "$WORK/out" || fail "--version: $(cat "$WORK/out")"
pass "--help and --version"

for bad in "frobnicate" "../scripts/x" "-x" "--set" "run" "broker --port 0" \
           "broker --port" "broker --bogus" "--set nonsense=1 run x.lua" \
           "--set log_level run x.lua" "--log-level LOUD run x.lua" "-c"; do
    # shellcheck disable=SC2086
    expect 2 "$KC_BIN" $bad
    [ "$(grep -c '^kafkacrypto: ' "$WORK/err")" = 1 ] || fail "'$bad': one error line expected"
    contains err "usage: kafkacrypto"
    [ ! -s "$WORK/out" ] || fail "'$bad' wrote to stdout"
done
expect 2 "$KC_BIN"
contains err "no command given"
expect 2 "$KC_BIN" frobnicate
contains err "unknown command 'frobnicate'"
expect 2 "$KC_BIN" run "$WORK/missing.lua"
contains err "cannot read script"
pass "unknown commands and bad arguments: one line, usage, status 2"

expect 0 "$KC_BIN" broker --help
contains out "mock cluster"
# Every command's --help: its full usage on stdout, status 0, and nothing
# else done (the demo's first step prints "Provisioning"; a tool that ran
# would need --node and fail with status 2).
for t in run demo $(cd "$KC_SOURCE_DIR/scripts" && ls ./*.lua | sed 's|^\./||; s|\.lua$||'); do
    for h in --help -h; do
        expect 0 "$KC_BIN" "$t" "$h"
        contains out "usage: kafkacrypto"
        [ ! -s "$WORK/err" ] || fail "$t $h wrote to stderr: $(cat "$WORK/err")"
        ! grep -q "Provisioning" "$WORK/out" || fail "$t $h ran the demo"
        [ "$(wc -l <"$WORK/out")" -ge 5 ] || fail "$t $h: one-line help: $(cat "$WORK/out")"
        ! grep -q "§" "$WORK/out" || fail "$t $h cites spec sections: $(cat "$WORK/out")"
    done
done
pass "broker --help; --help of run, demo and every tool: full usage, nothing done"

# Scripts: arguments, errors with file and line, os.exit, module from any cwd
cat >"$WORK/args.lua" <<'LUA'
local kafkacrypto = require "kafkacrypto"
local a, b = ...
print(arg[0]:match("[^/]+$"), #arg, arg[1], arg[2], a, b, kafkacrypto.get_root("x.y"))
LUA
(cd / && expect 0 "$KC_BIN" run "$WORK/args.lua" one "two words")
[ "$(cat "$WORK/out")" = "args.lua	2	one	two words	one	two words	x" ] \
    || fail "args: $(cat "$WORK/out")"
printf 'local x = 1\nerror("boom")\n' >"$WORK/fails.lua"
expect 1 "$KC_BIN" run "$WORK/fails.lua"
contains err "fails.lua:2: boom"
contains err "stack traceback"
printf 'local x = = 1\n' >"$WORK/syntax.lua"
expect 1 "$KC_BIN" run "$WORK/syntax.lua"
contains err "syntax.lua:1:"
printf 'os.exit(7)\n' >"$WORK/exit.lua"
expect 7 "$KC_BIN" run "$WORK/exit.lua"
printf 'require "kafkacrypto".producer{}:send("a b", nil, "v")\n' >"$WORK/caller.lua"
expect 1 "$KC_BIN" run "$WORK/caller.lua"
contains err "caller.lua:1: send: 'a b' is not a valid Kafka topic name"
pass "run: arguments, errors with script and line, os.exit"

# A message produced then os.exit: the producer is flushed before exiting.
cat >"$WORK/flush_on_exit.lua" <<'LUA'
local kafkacrypto = require "kafkacrypto"
local producer = kafkacrypto.producer{}
producer:send("exit", "k", "v", 0)
local cap = kafkacrypto.log.capture()
os.exit(0)
LUA
expect 0 "$KC_BIN" run "$WORK/flush_on_exit.lua"
[ ! -s "$WORK/err" ] || fail "os.exit with an open producer: $(cat "$WORK/err")"
pass "os.exit closes open clients"

# Settings: file, errors with file:line:setting, command line over file
cat >"$WORK/good.cfg" <<'CFG'
log_level = "INFO";
tunables = { crypto_sub_interval = 30; };
CFG
cat >"$WORK/settings.lua" <<'LUA'
local k = require "kafkacrypto"
print(k.settings().log_level, k.tunables().crypto_sub_interval, k.log.get_level(),
      k.settings().broker)
LUA
expect 0 "$KC_BIN" -c "$WORK/good.cfg" run "$WORK/settings.lua"
[ "$(cat "$WORK/out")" = "INFO	30	INFO	nil" ] || fail "settings: $(cat "$WORK/out")"
expect 0 "$KC_BIN" -c "$WORK/good.cfg" --log-level ERROR --broker 127.0.0.1:1 \
    --set tunables.crypto_sub_interval=5 run "$WORK/settings.lua"
[ "$(cat "$WORK/out")" = "ERROR	5	ERROR	127.0.0.1:1" ] || fail "command line: $(cat "$WORK/out")"
# ./kafkacrypto.cfg is read from the current directory when present
mkdir "$WORK/cwd"
cp "$WORK/good.cfg" "$WORK/cwd/kafkacrypto.cfg"
(cd "$WORK/cwd" && expect 0 "$KC_BIN" run "$WORK/settings.lua")
[ "$(cat "$WORK/out")" = "INFO	30	INFO	nil" ] || fail "./kafkacrypto.cfg: $(cat "$WORK/out")"
printf 'log_level = "INFO";\n\ntunables = { crypto_sub_intervall = 30; };\n' >"$WORK/bad.cfg"
expect 1 "$KC_BIN" -c "$WORK/bad.cfg" run "$WORK/settings.lua"
contains err "bad.cfg:3: unknown setting 'tunables.crypto_sub_intervall'"
expect 1 "$KC_BIN" -c "$WORK/missing.cfg" --version
contains err "missing.cfg"
expect 0 "$KC_BIN" -c "$KC_SOURCE_DIR/kafkacrypto.cfg" run "$WORK/settings.lua"
pass "settings file and command line"

# Tools: scripts/TOOL.lua (here from a scripts_dir setting), listed by --help
mkdir "$WORK/tools"
printf -- '-- says hello\nprint("hello " .. (arg[1] or "?"))\n' >"$WORK/tools/hello.lua"
expect 0 "$KC_BIN" --set scripts_dir="$WORK/tools" hello world
[ "$(cat "$WORK/out")" = "hello world" ] || fail "tool: $(cat "$WORK/out")"
expect 0 "$KC_BIN" --set scripts_dir="$WORK/tools" --help
contains out "hello"
contains out "says hello"
expect 2 "$KC_BIN" --set scripts_dir="$WORK/tools" goodbye
pass "tools from the scripts directory"

# KC_LUA_PATH comes first in the search path
mkdir "$WORK/lib"
printf 'return { where = "KC_LUA_PATH" }\n' >"$WORK/lib/mymod.lua"
printf 'print(require("mymod").where)\n' >"$WORK/usemod.lua"
KC_LUA_PATH="$WORK/lib" expect 0 "$KC_BIN" run "$WORK/usemod.lua"
[ "$(cat "$WORK/out")" = "KC_LUA_PATH" ] || fail "KC_LUA_PATH: $(cat "$WORK/out")"
pass "KC_LUA_PATH"
