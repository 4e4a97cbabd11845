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
#include <sys/types.h>

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
 * ld_lua_check_files() - refuse a policy file or module directory that
 * someone other than @owner or root can write (core/policy_files.h)
 * @cfg: the policy and library directory; nothing is checked when
 *       cfg->allow_insecure is set
 * @owner: the daemon's user (the supervisor's euid, before any sandbox)
 * @err: receives "PATH: refusing ... (why)" on failure
 * @errlen: size of @err
 *
 * The supervisor calls it before it forks a worker for the policy; the
 * sandboxed worker then loads with allow_insecure set.
 * Return: 0, or -1.
 */
int ld_lua_check_files(const struct ld_lua_cfg *cfg, uid_t owner, char *err, size_t errlen);

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
 * ld_lua_save() - run the policy's save() and encode what it returned
 * (lua/divert/serial.lua) into @buf, for the next worker process
 * @L: host
 * @buf: where the bytes go
 * @cap: size of @buf
 * @len: receives the length (0: the policy has no save())
 * @err: receives the reason on failure
 * @errlen: size of @err
 *
 * Return: 0, or -1 (save() raised, the state holds what cannot be carried,
 * or it does not fit in @cap bytes).
 */
int ld_lua_save(struct ld_lua *L, uint8_t *buf, size_t cap, size_t *len, char *err,
		size_t errlen);

/**
 * ld_lua_restore() - decode state saved by ld_lua_save() in another
 * process and hand it to the policy's on_reload
 * @L: host
 * @buf: the bytes
 * @len: their length, 0 for none (on_reload gets nil)
 * @err: receives the reason on failure
 * @errlen: size of @err
 *
 * Return: 0, or -1.
 */
int ld_lua_restore(struct ld_lua *L, const uint8_t *buf, size_t len, char *err, size_t errlen);

/**
 * ld_lua_skip_on_stop() - ld_lua_free() will not call on_stop: this
 * worker hands its packets to a successor instead of stopping them
 * @L: host
 */
void ld_lua_skip_on_stop(struct ld_lua *L);

/**
 * ld_lua_free() - call the policy's on_stop (if any) and close the state
 * @L: host, may be NULL
 */
void ld_lua_free(struct ld_lua *L);

#endif /* LD_LUA_HOST_H */
