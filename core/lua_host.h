/* SPDX-License-Identifier: MIT */
/*
 * lua_host.h - one lua_State running one policy for one worker.
 *
 * C calls Lua once per batch (ld_lua_dispatch); the Lua side (lua/divert/host.lua)
 * loops over the batch, calls the policy's handler per packet and writes each
 * verdict into the descriptor. A Lua error gives the packet being handled the
 * default verdict; the rest of the batch is still handled.
 */
#ifndef LD_LUA_HOST_H
#define LD_LUA_HOST_H

#include <stddef.h>
#include <stdint.h>

#include "ld_abi.h"

struct ld_lua;
struct ld_log_limit;

enum { LD_LUA_MEMORY_MAX_DEFAULT = 256 << 20 };  /* --memory-max: 256 MiB of Lua heap */

struct ld_lua_cfg {
	const char *policy;      /* path of the policy file */
	const char *lua_dir;     /* directory holding divert/ (NULL: the default search) */
	struct ld_log_limit *log_limit; /* rate limit for handler errors, may be NULL */
	size_t memory_max;       /* cap on the Lua heap in bytes, 0: none (--memory-max) */
	int allow_insecure;      /* load files others can write (--allow-insecure-policy) */
};

/**
 * ld_lua_new() - create a Lua state, load the policy, run its init
 * @cfg: what to load
 * @batch: the worker's batch; the policy's dispatch reads it on every call
 * @err: receives "file:line: message" on failure
 * @errlen: size of @err
 *
 * Return: the host, or NULL with @err filled in.
 */
struct ld_lua *ld_lua_new(const struct ld_lua_cfg *cfg, struct ld_batch *batch,
			  char *err, size_t errlen);

/**
 * ld_lua_dispatch() - run the policy over batch->pkts[0..batch->n)
 * @L: host
 *
 * Every descriptor must have verdict preset to the default verdict and set=0.
 * Return: the number of packets whose handler raised an error or returned a
 * non-verdict (each of those keeps the default verdict).
 */
uint32_t ld_lua_dispatch(struct ld_lua *L);

/**
 * ld_lua_reload() - load @policy into a new state and swap it in on success
 * @L: host; unchanged when the new policy fails to load
 * @err: receives "file:line: message" on failure
 * @errlen: size of @err
 *
 * Return: 0 on success, -1 when the old policy stays in place.
 */
int ld_lua_reload(struct ld_lua *L, char *err, size_t errlen);

/**
 * ld_lua_free() - call the policy's on_stop (if any) and close the state
 * @L: host, may be NULL
 */
void ld_lua_free(struct ld_lua *L);

#endif /* LD_LUA_HOST_H */
