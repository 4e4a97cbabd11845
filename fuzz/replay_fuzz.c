// SPDX-License-Identifier: MIT
/*
 * replay_fuzz.c - libFuzzer target: `luadivert replay` on a fuzzed capture.
 *
 * The input is a capture file (pcap or pcapng, any link type). It goes
 * through the whole replay: our header peek (time stamp resolution,
 * pcapng blocks), libpcap's reader, the link-layer decapsulation, a policy
 * that reads every view and changes the packet, the refusal checks and the
 * pcap writer (to /dev/null). Slower than the other targets (a Lua state
 * per input, ~1 ms) but it is the path real captures take.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../core/commands.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char policy[4096];

static void init(void)
{
	const char *dir = getenv("LUADIVERT_FUZZ_DIR");
	char lua[4096];

	if (!dir || !*dir)
		dir = "fuzz";
	snprintf(policy, sizeof(policy), "%s/replay_fuzz.lua", dir);
	snprintf(lua, sizeof(lua), "%s/../lua", dir);
	setenv("LUADIVERT_LUA_DIR", lua, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char in[64];
	/* a small hold table: --max-held sizes an allocation per run */
	char *argv[] = { "replay", "-q", "--max-held", "256", policy, in, "-w", "/dev/null", NULL };
	int fd;

	if (!policy[0])
		init();
	fd = memfd_create("capture", MFD_CLOEXEC);
	if (fd < 0)
		return 0;
	if (write(fd, data, size) == (ssize_t)size) {
		snprintf(in, sizeof(in), "/proc/self/fd/%d", fd);
		ld_cmd_replay(8, argv);
	}
	close(fd);
	return 0;
}
