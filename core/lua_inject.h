/* SPDX-License-Identifier: MIT */
/*
 * lua_inject.h - divert.inject(): packets a policy builds itself.
 *
 *   policy: divert.inject(bytes, {direction = "out"|"in", ifindex = n})
 *     └─ lua/divert/inject.lua ─ FFI ─► ld_lua_inject(sink, ...)
 *          ├─ live (worker.c):   raw socket with the skip mark (inject.c)
 *          └─ replay (replay.c): written to the output at the current
 *                                virtual time (the handled packet's)
 *
 * The engine hands its sink to the Lua state at start (ld_lua_cfg.sink);
 * outside an engine there is none and divert.inject says so.
 */
#ifndef LD_LUA_INJECT_H
#define LD_LUA_INJECT_H

#include <stdint.h>

/* Where a policy's new packets go. */
struct ld_inject_sink {
	/* Return 0, or a negative errno. @pkt is a checked IPv4/IPv6 packet of @len bytes. */
	int (*send)(void *ctx, const uint8_t *pkt, uint32_t len, int inbound, uint32_t ifindex);
	void *ctx;
};

/**
 * ld_lua_inject() - send one new packet through the engine's sink (for the FFI)
 * @sink: the engine's sink (a light userdata in Lua), or NULL
 * @pkt: packet bytes, starting at the IPv4 or IPv6 header
 * @len: bytes at @pkt; bytes beyond the IP length are not sent
 * @inbound: 1 to send it in (routed by destination: a local one arrives
 *           through loopback), 0 to send it out
 * @ifindex: output interface for an outbound packet, 0 to route normally
 *
 * Return: 0, or a negative errno: -EINVAL for anything that is not a whole
 * IPv4/IPv6 packet, -ENOTCONN without a sink, or what sending failed with.
 */
int ld_lua_inject(struct ld_inject_sink *sink, const uint8_t *pkt, uint32_t len, int inbound,
		  uint32_t ifindex);

#endif /* LD_LUA_INJECT_H */
