/* SPDX-License-Identifier: MIT */
/*
 * reload.h - the supervisor's side of a reload: requests, --watch, the outcome.
 *
 * SIGHUP (or `luadivert reload`, or a change of the policy file with
 * --watch) only marks a reload as pending; the supervisor's tick then
 * starts a new worker that loads and validates the policy, and swaps it
 * for the running one between two batches (docs/process.md). Several
 * requests before it starts coalesce into one. The outcome is written to a
 * status file so that `luadivert reload` can report it.
 */
#ifndef LD_RELOAD_H
#define LD_RELOAD_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "counters.h"
#include "lua_host.h"


enum { LD_WATCH_FILES = 64 };   /* policy + modules watched by --watch */

/* A file --watch reloads for: its directory's watch and its name. */
struct ld_watch_file {
	int wd;
	char name[256];
};

struct ld_reload {
	int pending;   /* set and read in the supervisor's event loop only */
	int watch_fd;                 /* inotify fd with --watch, else -1 */
	struct ld_watch_file files[LD_WATCH_FILES];
	int nfiles;
	uint64_t generation;          /* reload attempts so far */
	char policy[PATH_MAX];
	char status_path[PATH_MAX];   /* "" when no status file is kept */
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
 * ld_reload_watch_modules() - (re)learn which files --watch reloads for:
 * the policy and the modules it required (not editor temp files or other
 * *.lua next to them)
 * @r: reload state (nothing happens without --watch)
 * @lua: the host, after a load
 */
void ld_reload_watch_modules(struct ld_reload *r, struct ld_lua *lua);

/**
 * ld_reload_watch_matches() - is (@wd, @name) a file --watch reloads for?
 * @r: reload state
 * @wd: the event's watch descriptor
 * @name: the event's file name
 *
 * Return: 1 or 0.
 */
int ld_reload_watch_matches(const struct ld_reload *r, int wd, const char *name);

/**
 * ld_reload_begin() - a reload attempt starts: clear the pending request
 * (requests made from now on start another one afterwards), count it
 * @r: reload state
 */
void ld_reload_begin(struct ld_reload *r);

/**
 * ld_reload_report() - log a reload's outcome, count it and write the
 * status file that `luadivert reload` waits for
 * @r: reload state
 * @ok: the new policy runs
 * @msg: "reloaded ..." or "POLICY has errors, not reloading: ..."
 * @c: counters (reloads, reload_errors)
 */
void ld_reload_report(struct ld_reload *r, int ok, const char *msg, struct ld_counters *c);

/**
 * ld_reload_watch_list() - as ld_reload_watch_modules(), from the list a
 * worker process reported (paths, one per line; the supervisor has no Lua)
 * @r: reload state (nothing happens without --watch)
 * @list: the paths
 */
void ld_reload_watch_list(struct ld_reload *r, const char *list);

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
