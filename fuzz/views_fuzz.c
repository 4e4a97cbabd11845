// SPDX-License-Identifier: MIT
/*
 * views_fuzz.c - libFuzzer target: the Lua views (divert.packet, ipv4,
 * ipv6, tcp, udp, icmp) on fuzzed packet bytes.
 *
 * ASan does not see the loads and stores LuaJIT compiles, so the bytes are
 * placed right against a PROT_NONE page (and one before them): a view that
 * reads or writes past the packet faults, and libFuzzer reports the input.
 * The Lua side (fuzz/views_fuzz.lua) calls every accessor, then writes.
 * One Lua state for the whole run.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "../core/ld_abi.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { AREA = 128 * 1024 };

static lua_State *L;
static int run_ref;
static uint8_t *hi;            /* first byte of the guard page after the data */
static struct ld_packet desc;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *dir = getenv("LUADIVERT_FUZZ_DIR");
	long page = sysconf(_SC_PAGESIZE);
	uint8_t *base;
	char path[4096];

	(void)argc;
	(void)argv;
	base = mmap(NULL, AREA + 2 * (size_t)page, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (base == MAP_FAILED || mprotect(base, (size_t)page, PROT_NONE) ||
	    mprotect(base + page + AREA, (size_t)page, PROT_NONE))
		abort();
	hi = base + page + AREA;
	L = luaL_newstate();
	luaL_openlibs(L);
	snprintf(path, sizeof(path), "%s/views_fuzz.lua", dir && *dir ? dir : "fuzz");
	if (luaL_dofile(L, path) || !lua_isfunction(L, -1)) {
		fprintf(stderr, "views_fuzz: %s: %s\n", path, lua_tostring(L, -1));
		abort();
	}
	run_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *p;

	if (size > LD_PACKET_MAX)
		return 0;
	/* the packet ends at the guard page; room to grow is none: cap = len */
	p = hi - size;
	memcpy(p, data, size);
	memset(&desc, 0, sizeof(desc));
	desc.data = p;
	desc.len = desc.cap = desc.orig_len = (uint32_t)size;
	desc.flags = size && (data[0] & 1) ? LD_PKT_CSUM_NOTREADY : 0;
	lua_rawgeti(L, LUA_REGISTRYINDEX, run_ref);
	lua_pushlightuserdata(L, &desc);
	if (lua_pcall(L, 1, 0, 0)) {
		/* a Lua error from bad input is fine; one that says a range is
		 * wrong is a bug */
		const char *msg = lua_tostring(L, -1);

		if (msg && strstr(msg, "out of range")) {
			fprintf(stderr, "views_fuzz: %s\n", msg);
			abort();
		}
		lua_pop(L, 1);
	}
	return 0;
}
