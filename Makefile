# luadivert - divert sockets for Linux, scripted in Lua.
#
#   make          build ./luadivert and the test/bench helpers
#   make demo     (root) show a policy acting on real traffic, in a namespace
#   make test     (root) every test: Lua unit tests, integration tests, ASan+UBSan build
#   make bench    (root) benchmarks against a bare-C NFQUEUE loop
#   make fuzz     libFuzzer targets (clang), FUZZ_TIME seconds each (default 300)
#   make install  PREFIX=/usr/local DESTDIR=
#
# `demo`, `test` and `bench` first install missing Debian packages (target `deps`).

VERSION    := 0.1.0
PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
LUADIR     ?= $(PREFIX)/share/lua/5.1
MANDIR     ?= $(PREFIX)/share/man
EXAMPLEDIR ?= $(PREFIX)/share/luadivert/examples
LIBDIR     ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig

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
        libmnl-dev libpcap-dev libseccomp-dev iptables iproute2 iputils-ping luarocks iperf3 python3 procps \
        prometheus tcpdump chromium curl libclang-rt-14-dev

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
# Fuzz targets (fuzz/*.c): clang's libFuzzer with ASan+UBSan. Corpora are
# seeded from ../shared/pcaps (tools/fuzz_seeds.lua) when it is there.
FUZZ_SRC   := $(sort $(wildcard fuzz/*.c))
FUZZERS    := $(FUZZ_SRC:fuzz/%.c=build/fuzz/%)
FUZZ_FLAGS := -fsanitize=fuzzer,address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
FUZZ_TIME  ?= 300
PCAPS      ?= ../shared/pcaps

# libluadivert-divert: FreeBSD divert(4) sockets for C programs (core/divert/),
# with the core's NFQUEUE and inject code compiled in (position-independent).
DIVERT_SONAME := libluadivert-divert.so.0
DIVERT_LIB  := build/lib/libluadivert-divert.so
DIVERT_SRC  := $(sort $(wildcard core/divert/*.c)) core/nfq.c core/nfq_recv.c core/nfq_verdict.c core/counters.c core/log.c core/inject.c
DIVERT_PIC  := $(DIVERT_SRC:core/%.c=build/pic/%.o)
DIVERT_ASAN := $(DIVERT_SRC:core/%.c=build/asan-pic/%.o)
DIVERT_HDR  := include/luadivert/divert.h core/divert/divert_int.h $(wildcard core/*.h)
DIVERT_LIBS := $(shell pkg-config --libs libnetfilter_queue libmnl 2>/dev/null) -ldl -lpthread
DIVERT_CFLAGS = $(CFLAGS) -fPIC -fvisibility=hidden -Iinclude -DLUADIVERT_NO_SIN_LEN
# C divert programs written the FreeBSD way (scripts/examples/c/); the
# -asan variants compile the library in, sanitized, for the tests.
EXC_SRC     := $(sort $(wildcard scripts/examples/c/*.c))
DIVERT_EXAMPLES := $(EXC_SRC:scripts/examples/c/%.c=build/examples/%) \
                   $(EXC_SRC:scripts/examples/c/%.c=build/examples/%-asan)
EXCFLAGS    := -O2 -g -Wall -Wextra -Werror -Iinclude
# Test programs of the library (tests/divert/), built the same two ways.
DCHK_SRC    := $(sort $(wildcard tests/divert/*.c))
DIVERT_EXAMPLES += $(DCHK_SRC:tests/divert/%.c=build/examples/%) \
                   $(DCHK_SRC:tests/divert/%.c=build/examples/%-asan)

.PHONY: all deps bench-deps demo test bench install clean abi-check clang-check fuzz fuzzers

all: luadivert $(TOOLS) $(BENCHES) $(UNITS) lua/divert/abi.lua $(DIVERT_LIB) $(DIVERT_EXAMPLES)

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

build/obj build/asan build/tools build/bench build/unit build/fuzz:
	mkdir -p $@

build/pic/%.o: core/%.c $(DIVERT_HDR)
	@mkdir -p $(dir $@)
	$(CC) $(DIVERT_CFLAGS) -c -o $@ $<

build/asan-pic/%.o: core/%.c $(DIVERT_HDR)
	@mkdir -p $(dir $@)
	$(CC) $(DIVERT_CFLAGS) -O1 $(ASAN_FLAGS) -c -o $@ $<

$(DIVERT_LIB): $(DIVERT_PIC)
	@mkdir -p $(dir $@)
	$(CC) -shared -Wl,-soname,$(DIVERT_SONAME) -o $@.0 $^ $(DIVERT_LIBS)
	ln -sf $(DIVERT_SONAME) $@

build/examples/%: scripts/examples/c/%.c $(DIVERT_LIB) include/luadivert/divert.h
	@mkdir -p $(dir $@)
	$(CC) $(EXCFLAGS) -o $@ $< -Lbuild/lib -lluadivert-divert -Wl,-rpath,'$$ORIGIN/../lib'

# named only by pattern rules: keep make from deleting them as intermediate
.SECONDARY: $(DIVERT_ASAN)

build/examples/%-asan: scripts/examples/c/%.c $(DIVERT_ASAN) include/luadivert/divert.h
	@mkdir -p $(dir $@)
	$(CC) $(EXCFLAGS) -O1 $(ASAN_FLAGS) -Wl,-E -o $@ $< $(DIVERT_ASAN) $(DIVERT_LIBS)

build/examples/%: tests/divert/%.c $(DIVERT_LIB) include/luadivert/divert.h
	@mkdir -p $(dir $@)
	$(CC) $(EXCFLAGS) -o $@ $< -Lbuild/lib -lluadivert-divert -Wl,-rpath,'$$ORIGIN/../lib'

build/examples/%-asan: tests/divert/%.c $(DIVERT_ASAN) include/luadivert/divert.h
	@mkdir -p $(dir $@)
	$(CC) $(EXCFLAGS) -O1 $(ASAN_FLAGS) -Wl,-E -o $@ $< $(DIVERT_ASAN) $(DIVERT_LIBS)

build/luadivert-divert.pc: tools/luadivert-divert.pc.in Makefile
	sed -e 's|@PREFIX@|$(PREFIX)|; s|@LIBDIR@|$(LIBDIR)|; s|@INCLUDEDIR@|$(INCLUDEDIR)|; s|@VERSION@|$(VERSION)|' $< >$@

fuzzers: $(FUZZERS)

# replay_fuzz runs the whole `luadivert replay`: every core file but main.c.
build/fuzz/replay_fuzz: fuzz/replay_fuzz.c $(CORE_SRC) $(wildcard core/*.h) | build/fuzz
	clang $(filter-out -O2,$(CFLAGS)) -O1 $(FUZZ_FLAGS) -Icore -o $@ $< \
	  $(filter-out core/main.c,$(CORE_SRC)) $(LDLIBS)

build/fuzz/%: fuzz/%.c $(wildcard core/*.[ch]) | build/fuzz
	clang $(filter-out -O2,$(CFLAGS)) -O1 $(FUZZ_FLAGS) -Icore -o $@ $< $(LDLIBS)

build/fuzz/seeds: tools/fuzz_seeds.lua | build/fuzz
	rm -rf $@ && mkdir -p $@
	if [ -d "$(PCAPS)" ]; then luajit tools/fuzz_seeds.lua $@ $(PCAPS); fi

# Each target FUZZ_TIME seconds; findings land in build/fuzz/crash-*.
fuzz: fuzzers build/fuzz/seeds
	@for f in $(FUZZERS); do n=$$(basename $$f); \
	  mkdir -p build/fuzz/corpus-$$n; \
	  seeds=build/fuzz/seeds/$$(echo $$n | sed 's/_fuzz$$//; s/_parse$$//'); \
	  echo "== $$n ($(FUZZ_TIME) s)"; \
	  LUADIVERT_FUZZ_DIR=$$PWD/fuzz $$f -max_total_time=$(FUZZ_TIME) -close_fd_mask=2 \
	    -artifact_prefix=build/fuzz/crash-$$n- build/fuzz/corpus-$$n $$seeds \
	    $$(ls -d fuzz/regress/$$n 2>/dev/null) || exit 1; \
	done

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
	@for f in $(DIVERT_SRC); do clang $(filter-out -O2,$(DIVERT_CFLAGS)) -fsyntax-only $$f || exit 1; done
	@for f in $(EXC_SRC) $(DCHK_SRC); do clang $(EXCFLAGS) -fsyntax-only $$f || exit 1; done
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

test: deps all build/luadivert-asan fuzzers build/fuzz/seeds
	bash tests/run.sh

bench: deps bench-deps all
	sh bench/run.sh

install: luadivert $(DIVERT_LIB) build/luadivert-divert.pc
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LUADIR)/divert $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(EXAMPLEDIR)
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR)/luadivert $(DESTDIR)$(PKGCONFIGDIR) \
	  $(DESTDIR)$(MANDIR)/man4 $(DESTDIR)$(EXAMPLEDIR)/c
	install -m 755 $(DIVERT_LIB).0 $(DESTDIR)$(LIBDIR)/$(DIVERT_SONAME)
	ln -sf $(DIVERT_SONAME) $(DESTDIR)$(LIBDIR)/libluadivert-divert.so
	install -m 644 include/luadivert/divert.h $(DESTDIR)$(INCLUDEDIR)/luadivert/divert.h
	install -m 644 build/luadivert-divert.pc $(DESTDIR)$(PKGCONFIGDIR)/luadivert-divert.pc
	install -m 644 docs/divert.4 $(DESTDIR)$(MANDIR)/man4/divert.4
	install -m 644 scripts/examples/c/*.c $(DESTDIR)$(EXAMPLEDIR)/c/
	install -m 755 luadivert $(DESTDIR)$(BINDIR)/luadivert
	install -m 644 lua/divert/*.lua $(DESTDIR)$(LUADIR)/divert/
	install -D -m 644 -t $(DESTDIR)$(LUADIR)/divert/shape lua/divert/shape/*.lua
	install -m 644 docs/luadivert.1 $(DESTDIR)$(MANDIR)/man1/luadivert.1
	install -m 644 scripts/examples/*.lua $(DESTDIR)$(EXAMPLEDIR)/

clean:
	rm -rf build luadivert
