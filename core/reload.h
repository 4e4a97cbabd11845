/* SPDX-License-Identifier: MIT */
/*
 * reload.h - replacing the running policy between two batches.
 *
 * SIGHUP (or `luadivert reload`, or a change of the policy file with
 * --watch) only marks a reload as pending; the worker runs it between
 * batches. Several requests before it runs coalesce into one. The outcome
 * is written to a status file so that `luadivert reload` can report it.
 */
#ifndef LD_RELOAD_H
#define LD_RELOAD_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "counters.h"
#include "lua_host.h"

struct ld_reload {
	volatile int pending;
	int watch_fd;                 /* inotify fd with --watch, else -1 */
	uint64_t generation;          /* reload attempts so far */
	char policy[PATH_MAX];
	char status_path[PATH_MAX];   /* "" when no status file is kept */
	int status_fd;                /* the status file, opened while still root; -1 */
};

/**
 * ld_reload_init() - prepare reloads of @policy
 * @r: state to fill in
 * @policy: policy path
 * @watch: also watch the file with inotify
 * @err: receives the reason on failure
 * @errlen: size of @err
 *
 * Return: 0, or -1.
 */
int ld_reload_init(struct ld_reload *r, const char *policy, int watch, char *err, size_t errlen);

/**
 * ld_reload_set_status_file() - write reload outcomes to @path
 * @r: reload state
 * @path: status file ("<generation> ok|error <message>"), NULL for none
 */
void ld_reload_set_status_file(struct ld_reload *r, const char *path);

/**
 * ld_reload_watch_event() - read inotify events; mark a reload pending when
 * the policy file was written or replaced
 * @r: reload state
 */
void ld_reload_watch_event(struct ld_reload *r);

/**
 * ld_reload_run() - load the policy anew and swap it in; on any error keep
 * the running one. Logs the file, a content hash and how long it took.
 * @r: reload state
 * @lua: the worker's Lua host
 * @c: counters (reloads, reload_errors)
 *
 * Return: 0 when the new policy runs, -1 when the old one stays.
 */
int ld_reload_run(struct ld_reload *r, struct ld_lua *lua, struct ld_counters *c);

/**
 * ld_reload_free() - close the inotify fd
 * @r: reload state
 */
void ld_reload_free(struct ld_reload *r);

/**
 * ld_file_hash() - FNV-1a 64 of a file's contents, for log lines
 * @path: file
 * @out: receives the hash
 *
 * Return: 0, or -1 with errno set.
 */
int ld_file_hash(const char *path, uint64_t *out);

#endif /* LD_RELOAD_H */
