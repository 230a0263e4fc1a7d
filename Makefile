# kafkacrypto — message-layer encryption for Apache Kafka.
#
#   make run      install missing Debian packages, build, run the demo
#   make test     the same set-up, then every test
#   make vectors  [VECTORS=DIR]  upstream interop vectors
#   make bench    throughput against the raw crypto bound; a node with 100 000 old keys
#   make bench-cli  [CLI_LINES=N]  the produce/consume tools against kcat (minutes)
#   make fuzz     longer libFuzzer runs (FUZZ_SECONDS per target)
#   make soak     long runs: tests/soak/soak_*.sh (500 kills, floods)
#
# Sources are discovered by directory, so adding a file needs no edit here:
#   runtime/src/*.c      the library          runtime/host/*.c   the binary
#   tests/unit/test_*.c  one cmocka program each
#   tests/vectors/*.c    the vector runner    tests/fuzz/fuzz_*.c  one target each
#   tests/common/*.c     helpers linked into every test program

ifeq ($(origin CC),default)
CC := gcc
endif
CLANG    ?= clang
BUILD    ?= build
VECTORS  ?= tests/vectors/data
FUZZ_SMOKE_SECONDS ?= 6
FUZZ_SECONDS ?= 300

DEB_PACKAGES := kcat gcc make pkg-config clang libclang-rt-14-dev \
    libsodium-dev librdkafka-dev libluajit-5.1-dev luajit libconfig-dev \
    libmsgpack-dev lua-cjson libpcre2-dev libcmocka-dev lua-unit \
    libjansson-dev valgrind libp11-kit-dev softhsm2 opensc strace bc libmicrohttpd-dev curl

# The core (runtime/src) never sees Lua; runtime/src/lua hosts it.
CORE_PKGS = libsodium rdkafka libconfig libpcre2-8 p11-kit-1 libmicrohttpd
PKGS = $(CORE_PKGS) luajit
# Recursive (=) so that pkg-config runs after `deps` has installed things.
CORE_CFLAGS = $(shell pkg-config --cflags $(CORE_PKGS))
DEP_CFLAGS = $(shell pkg-config --cflags $(PKGS))
CORE_LIBS  = $(shell pkg-config --libs $(CORE_PKGS)) -lmsgpackc -lpthread -lm -ldl
DEP_LIBS   = $(shell pkg-config --libs $(PKGS)) -lmsgpackc -lpthread -lm -ldl

WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wno-unused-parameter
CFLAGS  ?= -O2 -g
CORE_CFLAGS_ALL = -std=c11 -D_GNU_SOURCE -fPIC $(WARN) $(CFLAGS) \
    -Iruntime/include -Iruntime/src $(CORE_CFLAGS)
ALL_CFLAGS = $(CORE_CFLAGS_ALL) -Iruntime/src/lua $(DEP_CFLAGS)
# Every object records the headers it includes (-MMD -MP), so a header
# change rebuilds what uses it and nothing else.
DEPFLAGS = -MMD -MP
# Programs (host, tests, vectors) compile with these include paths.
PROG_INC = -Iruntime/host -Itests/common -Itests/vectors -DKC_SOURCE_DIR='"$(CURDIR)"'
SAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
TEST_LIBS = -lcmocka -ljansson

CORE_SRCS   := $(sort $(wildcard runtime/src/*.c))
LIB_SRCS    := $(CORE_SRCS) $(sort $(wildcard runtime/src/lua/*.c))
HOST_SRCS   := $(sort $(wildcard runtime/host/*.c))
COMMON_SRCS := $(sort $(wildcard tests/common/*.c))
UNIT_SRCS   := $(sort $(wildcard tests/unit/test_*.c))
VEC_SRCS    := $(sort $(wildcard tests/vectors/*.c))
FUZZ_SRCS   := $(sort $(wildcard tests/fuzz/fuzz_*.c))
BENCH_SRCS  := $(sort $(wildcard tests/bench/*.c))

UNIT_NAMES := $(patsubst tests/unit/%.c,%,$(UNIT_SRCS))
# Unit tests of the Lua side include its headers; the others link the core
# library without LuaJIT, which proves the core does not need it.
LUA_SIDE_HEADERS := $(subst $(eval) ,|,$(notdir $(basename $(wildcard runtime/src/lua/*.h))))
LUA_UNIT_NAMES := $(patsubst tests/unit/%.c,%,$(shell grep -lE \
    '^\#include [<"](lua|lauxlib|lualib|luajit|$(LUA_SIDE_HEADERS))\.h' $(UNIT_SRCS)))
CORE_UNIT_NAMES := $(filter-out $(LUA_UNIT_NAMES),$(UNIT_NAMES))
FUZZ_NAMES := $(patsubst tests/fuzz/%.c,%,$(FUZZ_SRCS))

.PHONY: all deps run test check unit unit-asan vectors vectors-asan bench bench-cli \
        fuzz fuzz-smoke lua-test integration api-test install soak clean help
.DEFAULT_GOAL := all
.SECONDARY:

all: $(BUILD)/libkafkacrypto.a $(BUILD)/libkafkacrypto.so $(BUILD)/kafkacrypto

help:
	@sed -n '3,9p' Makefile

# ---- Debian packages ---------------------------------------------------------
deps:
	@missing=$$(for p in $(DEB_PACKAGES); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; \
	  done | tr '\n' ' '); \
	[ -z "$${missing% }" ] && exit 0; \
	echo "kafkacrypto: installing missing Debian packages: $$missing"; \
	if [ "$$(id -u)" = 0 ]; then sudo=; \
	elif command -v sudo >/dev/null 2>&1; then sudo=sudo; \
	else echo "kafkacrypto: cannot install packages: run as root, or install sudo, or run:"; \
	     echo "  apt-get install $$missing"; exit 1; fi; \
	$$sudo apt-get update -qq && \
	DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends $$missing

# ---- the entry points of the README --------------------------------------------
run: deps
	@$(MAKE) --no-print-directory all
	$(BUILD)/kafkacrypto demo

test: deps
	@$(MAKE) --no-print-directory check

check: all api-test unit vectors unit-asan vectors-asan fuzz-smoke lua-test integration
	@echo "make test: all checks passed"

# ---- library and binary --------------------------------------------------------
# The library exports only what kafkacrypto.h marks KC_EXPORT.
# Core objects compile without Lua's headers in reach, so an include of one
# fails the build (tests/api/check_layout.sh says why).
LIB_OBJS := $(patsubst runtime/src/%.c,$(BUILD)/obj/%.o,$(LIB_SRCS))
CORE_OBJS := $(patsubst runtime/src/%.c,$(BUILD)/obj/%.o,$(CORE_SRCS))
objs = $(patsubst %.c,$(1)/prog/%.o,$(2))

$(BUILD)/obj/%.o: runtime/src/%.c
	@mkdir -p $(@D)
	$(CC) $(CORE_CFLAGS_ALL) $(DEPFLAGS) -fvisibility=hidden -c $< -o $@

$(BUILD)/obj/lua/%.o: runtime/src/lua/%.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(DEPFLAGS) -fvisibility=hidden -c $< -o $@

$(BUILD)/prog/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(DEPFLAGS) $(PROG_INC) -c $< -o $@

$(BUILD)/libkafkacrypto.a: $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/libkafkacrypto-core.a: $(CORE_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/libkafkacrypto.so: $(LIB_OBJS)
	$(CC) -shared -Wl,-soname,libkafkacrypto.so.$(SOVERSION) -o $@ $^ $(DEP_LIBS)

# ---- install (PREFIX, DESTDIR) -------------------------------------------------------
PREFIX  ?= /usr/local
LIBDIR  ?= $(PREFIX)/lib
VERSION := $(shell sed -n 's/^\#define KC_VERSION_STRING "\(.*\)"/\1/p' runtime/include/kafkacrypto.h)
SOVERSION := $(firstword $(subst ., ,$(VERSION)))
SHARE   := $(DESTDIR)$(PREFIX)/share/kafkacrypto

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(LIBDIR)/pkgconfig \
	    $(DESTDIR)$(PREFIX)/include $(SHARE)
	install -m 755 $(BUILD)/kafkacrypto $(DESTDIR)$(PREFIX)/bin/
	install -m 644 $(BUILD)/libkafkacrypto.a $(DESTDIR)$(LIBDIR)/
	install -m 755 $(BUILD)/libkafkacrypto.so $(DESTDIR)$(LIBDIR)/libkafkacrypto.so.$(VERSION)
	ln -sf libkafkacrypto.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libkafkacrypto.so.$(SOVERSION)
	ln -sf libkafkacrypto.so.$(SOVERSION) $(DESTDIR)$(LIBDIR)/libkafkacrypto.so
	install -m 644 runtime/include/kafkacrypto.h $(DESTDIR)$(PREFIX)/include/
	cp -R lua scripts policies $(SHARE)/
	install -m 644 kafkacrypto.cfg $(SHARE)/
	sed -e 's|@PREFIX@|$(PREFIX)|; s|@LIBDIR@|$(LIBDIR)|; s|@VERSION@|$(VERSION)|' \
	    runtime/kafkacrypto.pc.in >$(DESTDIR)$(LIBDIR)/pkgconfig/kafkacrypto.pc

# The exported symbols are exactly the KC_EXPORT declarations, and a program
# builds against an installed copy (tests/api/).
api-test: all
	sh tests/api/check_layout.sh
	sh tests/api/check_exports.sh $(BUILD)/libkafkacrypto.so runtime/include/kafkacrypto.h \
	    runtime/src/lua/kc_lua.h
	sh tests/api/test_install.sh $(BUILD)

$(BUILD)/kafkacrypto: $(call objs,$(BUILD),$(HOST_SRCS)) $(BUILD)/libkafkacrypto.a
	$(CC) -o $@ $^ $(DEP_LIBS) -Wl,-E

# ---- unit tests (cmocka) ---------------------------------------------------------
$(addprefix $(BUILD)/tests/,$(LUA_UNIT_NAMES)): $(BUILD)/tests/%: \
        $(BUILD)/prog/tests/unit/%.o $(call objs,$(BUILD),$(COMMON_SRCS)) $(BUILD)/libkafkacrypto.a
	@mkdir -p $(@D)
	$(CC) -o $@ $^ $(DEP_LIBS) $(TEST_LIBS)

$(addprefix $(BUILD)/tests/,$(CORE_UNIT_NAMES)): $(BUILD)/tests/%: \
        $(BUILD)/prog/tests/unit/%.o $(call objs,$(BUILD),$(COMMON_SRCS)) $(BUILD)/libkafkacrypto-core.a
	@mkdir -p $(@D)
	$(CC) -o $@ $^ $(CORE_LIBS) $(TEST_LIBS)

# A PKCS#11 module that fakes token faults over SoftHSM2 (tests/pkcs11/).
P11_SHIM := $(BUILD)/tests/libkc_p11_shim.so
$(P11_SHIM): tests/pkcs11/kc_p11_shim.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -shared -o $@ $< -ldl
TEST_ENV = KC_SOURCE_DIR=$(CURDIR) KC_P11_SHIM=$(CURDIR)/$(P11_SHIM)

unit: $(addprefix $(BUILD)/tests/,$(UNIT_NAMES)) | $(P11_SHIM)
	@set -e; for t in $^; do echo "== $$t"; $(TEST_ENV) $$t; done

# ---- interop vectors ---------------------------------------------------------------
$(BUILD)/kc-vectors: $(call objs,$(BUILD),$(VEC_SRCS) $(COMMON_SRCS)) $(BUILD)/libkafkacrypto-core.a
	$(CC) -o $@ $^ $(CORE_LIBS) $(TEST_LIBS)

vectors: $(BUILD)/kc-vectors
	$(BUILD)/kc-vectors $(VECTORS)

# ---- the same tests under AddressSanitizer + UBSan ----------------------------------
ASAN_DIR := $(BUILD)/asan
ASAN_ENV := ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
    LSAN_OPTIONS=suppressions=$(CURDIR)/tests/pkcs11/lsan.supp
ASAN_LIB_OBJS := $(patsubst runtime/src/%.c,$(ASAN_DIR)/obj/%.o,$(LIB_SRCS))

$(ASAN_DIR)/obj/%.o: runtime/src/%.c
	@mkdir -p $(@D)
	$(CC) $(CORE_CFLAGS_ALL) $(DEPFLAGS) $(SAN_FLAGS) -O1 -c $< -o $@

$(ASAN_DIR)/obj/lua/%.o: runtime/src/lua/%.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(DEPFLAGS) $(SAN_FLAGS) -O1 -c $< -o $@

$(ASAN_DIR)/prog/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(DEPFLAGS) $(PROG_INC) $(SAN_FLAGS) -O1 -c $< -o $@

$(ASAN_DIR)/libkafkacrypto.a: $(ASAN_LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(ASAN_DIR)/tests/%: $(ASAN_DIR)/prog/tests/unit/%.o $(call objs,$(ASAN_DIR),$(COMMON_SRCS)) \
                      $(ASAN_DIR)/libkafkacrypto.a
	@mkdir -p $(@D)
	$(CC) $(SAN_FLAGS) -o $@ $^ $(DEP_LIBS) $(TEST_LIBS)

$(ASAN_DIR)/kc-vectors: $(call objs,$(ASAN_DIR),$(VEC_SRCS) $(COMMON_SRCS)) \
                        $(ASAN_DIR)/libkafkacrypto.a
	$(CC) $(SAN_FLAGS) -o $@ $^ $(DEP_LIBS) $(TEST_LIBS)

unit-asan: $(addprefix $(ASAN_DIR)/tests/,$(UNIT_NAMES)) | $(P11_SHIM)
	@set -e; for t in $^; do echo "== $$t (asan+ubsan)"; $(TEST_ENV) $(ASAN_ENV) $$t; done

vectors-asan: $(ASAN_DIR)/kc-vectors
	$(ASAN_ENV) $(ASAN_DIR)/kc-vectors $(VECTORS) >/dev/null
	@echo "vectors under asan+ubsan: ok"

# ---- libFuzzer -------------------------------------------------------------------------
FUZZ_DIR := $(BUILD)/fuzz
FUZZ_FLAGS := -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
    -fno-sanitize-recover=undefined -Iruntime/include -Iruntime/src -Iruntime/src/lua
FUZZ_LIB_OBJS := $(patsubst runtime/src/%.c,$(FUZZ_DIR)/obj/%.o,$(LIB_SRCS))

$(FUZZ_DIR)/obj/%.o: runtime/src/%.c
	@mkdir -p $(@D)
	$(CLANG) $(subst fuzzer,fuzzer-no-link,$(FUZZ_FLAGS)) $(DEPFLAGS) $(WARN) $(DEP_CFLAGS) -c $< -o $@

$(FUZZ_DIR)/prog/%.o: tests/fuzz/%.c
	@mkdir -p $(@D)
	$(CLANG) $(subst fuzzer,fuzzer-no-link,$(FUZZ_FLAGS)) $(DEPFLAGS) $(WARN) $(DEP_CFLAGS) \
	    -Itests/fuzz -c $< -o $@

$(FUZZ_DIR)/%: $(FUZZ_DIR)/prog/%.o $(FUZZ_LIB_OBJS)
	@mkdir -p $(@D)
	$(CLANG) $(FUZZ_FLAGS) -o $@ $^ $(DEP_LIBS)

# Each target starts from its seeds in tests/fuzz/corpus/<target>/ and works in
# a scratch copy, so runs never rewrite the committed seeds.
define run_fuzzer
	@mkdir -p $(FUZZ_DIR)/work/$(1) tests/fuzz/corpus/$(1)
	@echo "== fuzz $(1) ($(2) s)"
	@cd $(FUZZ_DIR)/work && if ASAN_OPTIONS=detect_leaks=1 ../$(1) -max_total_time=$(2) \
	    -rss_limit_mb=2048 -malloc_limit_mb=512 -max_len=65536 \
	    $(1) ../../../tests/fuzz/corpus/$(1) >$(1).log 2>&1; \
	  then tail -n 1 $(1).log; else tail -n 40 $(1).log; \
	  echo "fuzz $(1) FAILED: reproducer in $(FUZZ_DIR)/work (see $(1).log)"; exit 1; fi

endef

fuzz-smoke: $(addprefix $(FUZZ_DIR)/,$(FUZZ_NAMES))
	$(foreach f,$(FUZZ_NAMES),$(call run_fuzzer,$(f),$(FUZZ_SMOKE_SECONDS)))

fuzz: deps
	@$(MAKE) --no-print-directory $(addprefix $(FUZZ_DIR)/,$(FUZZ_NAMES))
	$(foreach f,$(FUZZ_NAMES),$(call run_fuzzer,$(f),$(FUZZ_SECONDS)))

# ---- Lua and integration tests (need the host binary) ----------------------------------
lua-test: $(BUILD)/kafkacrypto
	@if ls tests/lua/test_*.lua >/dev/null 2>&1; then \
	    $(BUILD)/kafkacrypto run tests/lua/run.lua tests/lua/test_*.lua; \
	else echo "lua-test: no Lua tests yet"; fi

integration: $(BUILD)/kafkacrypto $(P11_SHIM)
	@set -e; found=0; for t in tests/integration/test_*.sh; do \
	    [ -e "$$t" ] || continue; found=1; echo "== $$t"; \
	    KC_BIN=$(CURDIR)/$(BUILD)/kafkacrypto $(TEST_ENV) sh "$$t"; done; \
	[ $$found = 1 ] || echo "integration: no integration tests yet"

# Long runs, not part of `make test`: every tests/soak/soak_*.sh (e.g. 500
# kills of a producer, floods of made-up key indices).
soak: $(BUILD)/kafkacrypto
	@set -e; found=0; for t in tests/soak/soak_*.sh; do \
	    [ -e "$$t" ] || continue; found=1; echo "== $$t"; \
	    KC_BIN=$(CURDIR)/$(BUILD)/kafkacrypto KC_SOURCE_DIR=$(CURDIR) sh "$$t"; done; \
	[ $$found = 1 ] || echo "soak: no soak tests"

# ---- benchmark --------------------------------------------------------------------------
$(BUILD)/bench/%.o: tests/bench/%.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(DEPFLAGS) -Itests/common -O3 -c $< -o $@

$(BUILD)/kc-bench: $(patsubst tests/bench/%.c,$(BUILD)/bench/%.o,$(BENCH_SRCS)) \
                   $(call objs,$(BUILD),$(COMMON_SRCS)) $(BUILD)/libkafkacrypto.a
	$(CC) -o $@ $^ $(DEP_LIBS)

bench: deps
	@$(MAKE) --no-print-directory $(BUILD)/kc-bench
	KC_SOURCE_DIR=$(CURDIR) $(BUILD)/kc-bench

# 200 000 lines each way by default (CLI_LINES): a minute or more with the
# set-up, hence not in `bench`.
bench-cli: deps all
	KC_BIN=$(CURDIR)/$(BUILD)/kafkacrypto sh tests/bench/bench_cli.sh

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
