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
struct ld_inject_sink;

enum { LD_LUA_MEMORY_MAX_DEFAULT = 256 << 20 };  /* --memory-max: 256 MiB of Lua heap */

struct ld_lua_cfg {
	const char *policy;      /* path of the policy file */
	const char *lua_dir;     /* directory holding divert/ (NULL: the default search) */
	struct ld_log_limit *log_limit; /* rate limit for handler errors, may be NULL */
	struct ld_inject_sink *sink;    /* where divert.inject() sends, NULL: nowhere */
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

/*
 * A reload in steps, so that the divert rules can be swapped with the code
 * (core/reload.c): load -> (C compiles the declared filter) -> prepare ->
 * (C swaps the rules) -> commit; abort after any failure. Until commit the
 * running policy handles every packet. ld_lua_reload() is all of them.
 */

/**
 * ld_lua_reload_load() - load the new version of the policy, call nothing of it
 * @L: host
 * @err: receives "file has errors, not reloading: file:line: message"
 * @errlen: size of @err
 *
 * Return: 0, or -1 (nothing pending then).
 */
int ld_lua_reload_load(struct ld_lua *L, char *err, size_t errlen);

/**
 * ld_lua_reload_prepare() - save() the running policy, init and on_reload the new
 * @L: host with a loaded reload
 * @err: receives the error
 * @errlen: size of @err
 *
 * Return: 0, or -1 (the pending policy is dropped).
 */
int ld_lua_reload_prepare(struct ld_lua *L, char *err, size_t errlen);

/**
 * ld_lua_reload_commit() - switch to the prepared policy
 * @L: host
 * @keep_old: keep the old dispatch function for ld_lua_dispatch_span() until
 *            ld_lua_drop_old() (packets the old rules queued before a swap)
 * @err: receives the error
 * @errlen: size of @err
 *
 * Return: 0, or -1 (the old policy stays).
 */
int ld_lua_reload_commit(struct ld_lua *L, int keep_old, char *err, size_t errlen);

/**
 * ld_lua_dispatch_span() - run one version of the policy over part of the batch
 * @L: host
 * @old: 1 for the version before the last reload (kept by ld_lua_reload_commit),
 *       0 for the running one
 * @from: first packet
 * @to: one past the last packet (<= batch->n)
 *
 * As ld_lua_dispatch(), for batch->pkts[from..to).
 * Return: the number of packets whose handler failed.
 */
uint32_t ld_lua_dispatch_span(struct ld_lua *L, int old, uint32_t from, uint32_t to);

/**
 * ld_lua_drop_old() - forget the version kept by ld_lua_reload_commit()
 * @L: host
 */
void ld_lua_drop_old(struct ld_lua *L);

/**
 * ld_lua_reload_abort() - forget a loaded or prepared reload
 * @L: host
 */
void ld_lua_reload_abort(struct ld_lua *L);

struct ld_policy_rules;

/**
 * ld_lua_declared() - the divert rules the policy declares, as plain data
 * @L: host (during a reload: the loaded new version, else the running one)
 * @out: receives them (out->declared == 0: nothing declared)
 * @err: receives "file:line: hook "x": ..." for an unknown hook name
 * @errlen: size of @err
 *
 * Return: 0, or -1.
 */
int ld_lua_declared(struct ld_lua *L, struct ld_policy_rules *out, char *err, size_t errlen);

/**
 * ld_lua_watch_files() - the policy file and the modules it required
 * @L: host
 * @buf: receives the paths, one per line
 * @len: size of @buf
 *
 * Return: 0, or -1 (@buf empty) when the list cannot be had.
 */
int ld_lua_watch_files(struct ld_lua *L, char *buf, size_t len);

/**
 * ld_lua_stop() - call the policy's on_stop (if any), once
 * @L: host, may be NULL
 *
 * Call it while the packet buffers are still mapped: a policy may have kept
 * a packet or a view. Afterwards the host's packet objects read as empty
 * packets and views kept by the policy raise an error when used.
 * Return: 0, or -1 when on_stop raised (the error is logged).
 */
int ld_lua_stop(struct ld_lua *L);

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
 * ld_lua_free() - ld_lua_stop() unless done already, then close the state
 * @L: host, may be NULL
 */
void ld_lua_free(struct ld_lua *L);

/**
 * ld_lua_discard() - close the state without calling on_stop
 * (`luadivert check`: the policy never ran)
 * @L: host, may be NULL
 */
void ld_lua_discard(struct ld_lua *L);

#endif /* LD_LUA_HOST_H */
