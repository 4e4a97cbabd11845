# luadivert - divert sockets for Linux, scripted in Lua.
#
#   make          build ./luadivert and the test/bench helpers
#   make demo     (root) show a policy acting on real traffic, in a namespace
#   make test     (root) every test: Lua unit tests, integration tests, ASan+UBSan build
#   make bench    (root) benchmarks against a bare-C NFQUEUE loop
#   make install  PREFIX=/usr/local DESTDIR=
#
# `demo`, `test` and `bench` first install missing Debian packages (target `deps`).

VERSION    := 0.1.0
PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
LUADIR     ?= $(PREFIX)/share/lua/5.1
MANDIR     ?= $(PREFIX)/share/man
EXAMPLEDIR ?= $(PREFIX)/share/luadivert/examples

CC      ?= cc
PKGS    := luajit libnetfilter_queue libmnl libpcap libseccomp
WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wformat=2
CFLAGS  ?= -O2 -g
CFLAGS  += -std=c11 -D_GNU_SOURCE $(WARN) $(shell pkg-config --cflags $(PKGS) 2>/dev/null) \
           -DLD_VERSION='"$(VERSION)"' -DLD_LUADIR='"$(LUADIR)"'
LDLIBS  += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lm
# LuaJIT needs its symbols exported for C modules loaded by policies.
LDFLAGS += -Wl,-E

# Debian packages the build, the tests, the demo and the benchmarks need.
DEPS := build-essential clang pkg-config luajit libluajit-5.1-dev libnetfilter-queue-dev \
        libmnl-dev libpcap-dev libseccomp-dev iptables iproute2 iputils-ping luarocks iperf3 python3 procps

CORE_SRC   := $(sort $(wildcard core/*.c))
CORE_OBJ   := $(CORE_SRC:core/%.c=build/obj/%.o)
ASAN_OBJ   := $(CORE_SRC:core/%.c=build/asan/%.o)
TOOL_SRC   := $(sort $(wildcard tests/tools/*.c))
TOOLS      := $(TOOL_SRC:tests/tools/%.c=build/tools/%)
BENCH_SRC  := $(sort $(wildcard bench/*.c))
BENCHES    := $(BENCH_SRC:bench/%.c=build/bench/%)
UNIT_SRC   := $(sort $(wildcard tests/unit/*.c))
UNITS      := $(UNIT_SRC:tests/unit/%.c=build/unit/%)
ASAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

.PHONY: all deps bench-deps demo test bench install clean abi-check clang-check

all: luadivert $(TOOLS) $(BENCHES) $(UNITS) lua/divert/abi.lua

luadivert: $(CORE_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

build/luadivert-asan: $(ASAN_OBJ)
	$(CC) $(LDFLAGS) $(ASAN_FLAGS) -o $@ $^ $(LDLIBS)

build/obj/%.o: core/%.c $(wildcard core/*.h) | build/obj
	$(CC) $(CFLAGS) -c -o $@ $<

build/asan/%.o: core/%.c $(wildcard core/*.h) | build/asan
	$(CC) $(CFLAGS) -O1 $(ASAN_FLAGS) -c -o $@ $<

# Some tools compile core files in: they depend on core/*.c too.
build/tools/%: tests/tools/%.c $(wildcard core/*.[ch] tests/tools/*.h) | build/tools
	$(CC) $(CFLAGS) -Icore $(LDFLAGS) -o $@ $< $(LDLIBS)

build/bench/%: bench/%.c $(wildcard core/*.h bench/*.h) | build/bench
	$(CC) $(CFLAGS) -Icore $(LDFLAGS) -o $@ $< $(LDLIBS)

# C unit tests include the core files they test, and always run sanitized.
build/unit/%: tests/unit/%.c $(wildcard core/*.[ch]) | build/unit
	$(CC) $(CFLAGS) -O1 $(ASAN_FLAGS) -Icore $(LDFLAGS) -o $@ $< $(LDLIBS)

build/obj build/asan build/tools build/bench build/unit:
	mkdir -p $@

# The Lua side of the shared ABI is generated, and committed so that the
# rockspec needs no build step; abi-check fails when it is stale.
lua/divert/abi.lua: core/ld_abi.h tools/gen_abi.sh
	sh tools/gen_abi.sh core/ld_abi.h > $@

abi-check:
	@sh tools/gen_abi.sh core/ld_abi.h | cmp -s - lua/divert/abi.lua || \
	  { echo "lua/divert/abi.lua is stale: run make" >&2; exit 1; }

# Every C file must also compile warning-free with clang (-Werror).
clang-check:
	@for f in $(CORE_SRC); do clang $(filter-out -O2,$(CFLAGS)) -fsyntax-only $$f || exit 1; done
	@for f in $(TOOL_SRC) $(BENCH_SRC) $(UNIT_SRC); do \
	  clang $(filter-out -O2,$(CFLAGS)) -Icore -fsyntax-only $$f || exit 1; done

# Only the benchmarks' profile (PROFILE=1) needs perf.
BENCH_DEPS := linux-perf

deps:
	@sh tools/install-deps.sh $(DEPS)

bench-deps:
	@sh tools/install-deps.sh $(BENCH_DEPS) || echo "perf not installed: PROFILE=1 will say so"

demo: deps all
	sh scripts/demo.sh

test: deps all build/luadivert-asan
	sh tests/run.sh

bench: deps bench-deps all
	sh bench/run.sh

install: luadivert
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LUADIR)/divert $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(EXAMPLEDIR)
	install -m 755 luadivert $(DESTDIR)$(BINDIR)/luadivert
	install -m 644 lua/divert/*.lua $(DESTDIR)$(LUADIR)/divert/
	install -m 644 docs/luadivert.1 $(DESTDIR)$(MANDIR)/man1/luadivert.1
	install -m 644 scripts/examples/*.lua $(DESTDIR)$(EXAMPLEDIR)/

clean:
	rm -rf build luadivert
