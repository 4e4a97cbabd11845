// SPDX-License-Identifier: MIT
/*
 * lua_host.c - the C half of the Lua boundary.
 *
 * The Lua half is lua/divert/host.lua: it loads the policy and returns a
 * dispatch function that loops over the batch. C calls that function with
 * lua_pcall once per batch. When it raises, batch->next names the packet
 * that was being handled: it gets the default verdict, the error is logged
 * (rate-limited) and dispatch is called again from the packet after it.
 */
#include "lua_host.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "log.h"
#include "policy_rules.h"
#include "policy_files.h"

#ifndef LD_LUADIR
#define LD_LUADIR "/usr/local/share/lua/5.1"
#endif

/* The Lua heap's allocator counts what it hands out and refuses past the cap:
 * LuaJIT turns the refusal into a "not enough memory" error (GC64 builds
 * accept a custom allocator; Debian's LuaJIT 2.1 on amd64 is one). */
struct ld_lua_mem {
	size_t used;
	size_t max;        /* 0: no cap */
	size_t refused;    /* allocations refused so far */
};

struct ld_lua {
	lua_State *L;
	struct ld_lua_mem mem;
	int allow_insecure;        /* --allow-insecure-policy */
	uid_t owner;               /* the daemon's user before any sandbox: may own policy files */
	char lua_dir[PATH_MAX];
	int dispatch_ref;          /* registry ref of the current dispatch function */
	int old_ref;               /* the previous one, kept after a reload swapped rules */
	struct ld_batch *batch;
	struct ld_log_limit *lim;
	struct ld_log_limit own_lim;
	int stopped;               /* on_stop has run (or must not) */
	char policy[PATH_MAX];
};

static int is_dir(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/*
 * Where the divert modules live: --lua-dir, then $LUADIVERT_LUA_DIR, then lua/
 * next to the executable (a build tree), then ../share/lua/5.1 next to it (an
 * installed tree, wherever it was moved), then the install directory.
 */
static void find_lua_dir(const char *given, char *out, size_t outlen)
{
	char exe[PATH_MAX - 32], probe[PATH_MAX + 32];
	const char *env = getenv("LUADIVERT_LUA_DIR");
	ssize_t n;

	if (given) {
		snprintf(out, outlen, "%s", given);
		return;
	}
	if (env && *env) {
		snprintf(out, outlen, "%s", env);
		return;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = '\0';
		snprintf(probe, sizeof(probe), "%s/lua/divert", dirname(exe));
		if (is_dir(probe)) {
			snprintf(out, outlen, "%s/lua", exe);
			return;
		}
		/* build/luadivert-asan sits one level further down */
		snprintf(probe, sizeof(probe), "%s/../lua/divert", exe);
		if (is_dir(probe)) {
			snprintf(out, outlen, "%s/../lua", exe);
			return;
		}
		/* an installed tree moved elsewhere (DESTDIR, relocated prefix) */
		snprintf(probe, sizeof(probe), "%s/../share/lua/5.1/divert", exe);
		if (is_dir(probe)) {
			snprintf(out, outlen, "%s/../share/lua/5.1", exe);
			return;
		}
	}
	snprintf(out, outlen, "%s", LD_LUADIR);
}

static void *mem_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
	struct ld_lua_mem *m = ud;
	void *p;

	if (nsize == 0) {
		free(ptr);
		m->used -= osize;
		return NULL;
	}
	/* never refuse a shrink: Lua assumes it cannot fail */
	if (m->max && nsize > osize && m->used + (nsize - osize) > m->max) {
		m->refused++;
		return NULL;
	}
	p = realloc(ptr, nsize);
	if (!p && nsize > osize)
		return NULL;
	m->used = m->used - osize + nsize;
	return p ? p : ptr;   /* a failed shrink keeps the larger block */
}

/*
 * require searches the library directory, then the policy's directory, and
 * nothing else: never ./ (the daemon's working directory) nor $LUA_PATH.
 * No C modules (package.cpath is empty): native code comes through the FFI.
 */
static void set_package_path(lua_State *L, const char *lua_dir, const char *policy)
{
	char pol[PATH_MAX];

	snprintf(pol, sizeof(pol), "%s", policy);
	lua_getglobal(L, "package");
	lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;%s/?.lua", lua_dir, lua_dir, dirname(pol));
	lua_setfield(L, -2, "path");
	lua_pushliteral(L, "");
	lua_setfield(L, -2, "cpath");
	lua_pop(L, 1);
}

/* The policy file and every directory require searches: refuse what others can write. */
static int check_files(const char *policy, const char *lua_dir, uid_t owner, char *err,
		       size_t errlen)
{
	char dir[PATH_MAX];

	snprintf(dir, sizeof(dir), "%s", policy);
	if (ld_policy_file_check(dirname(dir), 1, owner, err, errlen) < 0 ||
	    ld_policy_file_check(lua_dir, 1, owner, err, errlen) < 0 ||
	    ld_policy_file_check(policy, 0, owner, err, errlen) < 0)
		return -1;
	return 0;
}

int ld_lua_check_files(const struct ld_lua_cfg *cfg, uid_t owner, char *err, size_t errlen)
{
	char lua_dir[PATH_MAX];

	if (cfg->allow_insecure)
		return 0;
	find_lua_dir(cfg->lua_dir, lua_dir, sizeof(lua_dir));
	return check_files(cfg->policy, lua_dir, owner, err, errlen);
}

/*
 * Text of the error object at @idx: a string as is; anything else through
 * its __tostring, else a table's first fields ("{code=3, msg=...}"), else
 * its type. Never "(null)".
 */
static const char *error_text(lua_State *L, int idx, char *buf, size_t len)
{
	const char *s = lua_type(L, idx) == LUA_TSTRING ? lua_tostring(L, idx) : NULL;
	size_t used;
	int n = 0;

	if (s)
		return s;
	idx = idx < 0 ? lua_gettop(L) + idx + 1 : idx;
	if (luaL_getmetafield(L, idx, "__tostring")) {
		/* protected: we are outside any pcall, and __tostring may raise */
		lua_pushvalue(L, idx);
		s = lua_pcall(L, 1, 1, 0) == 0 ? lua_tostring(L, -1) : NULL;
		snprintf(buf, len, "%s", s ? s : "(error object whose __tostring failed)");
		lua_pop(L, 1);
		return buf;
	}
	if (lua_type(L, idx) != LUA_TTABLE) {
		snprintf(buf, len, "(error object is a %s)", luaL_typename(L, idx));
		return buf;
	}
	used = (size_t)snprintf(buf, len, "(error object is a table) {");
	lua_pushnil(L);
	while (lua_next(L, idx)) {   /* key at -2, value at -1 */
		int kt = lua_type(L, -2), vt = lua_type(L, -1);

		if (n++ == 8 || used >= len) {
			if (used < len)
				used += (size_t)snprintf(buf + used, len - used, ", ...");
			lua_pop(L, 2);
			break;
		}
		/* lua_tostring would turn a number key into a string under lua_next */
		lua_pushvalue(L, -2);
		used += (size_t)snprintf(buf + used, len - used, "%s%s=", n > 1 ? ", " : "",
					 kt == LUA_TSTRING || kt == LUA_TNUMBER ?
					 lua_tostring(L, -1) : luaL_typename(L, -3));
		lua_pop(L, 1);
		if (used < len)
			used += (size_t)snprintf(buf + used, len - used, "%s",
						 vt == LUA_TSTRING || vt == LUA_TNUMBER ?
						 lua_tostring(L, -1) : luaL_typename(L, -1));
		lua_pop(L, 1);   /* the value; the key stays for lua_next */
	}
	if (used < len)
		snprintf(buf + used, len - used, "}");
	return buf;
}

/* Call host.<fn>(args already pushed) and keep the returned dispatch function. */
static int call_host(struct ld_lua *h, const char *fn, int nargs, char *err, size_t errlen)
{
	lua_State *L = h->L;

	lua_getglobal(L, "require");
	lua_pushliteral(L, "divert.host");
	if (lua_pcall(L, 1, 1, 0) != 0) {
		snprintf(err, errlen, "loading the divert library: %s", lua_tostring(L, -1));
		lua_pop(L, 1 + nargs);
		return -1;
	}
	lua_getfield(L, -1, fn);
	lua_remove(L, -2);
	lua_insert(L, -1 - nargs);
	if (lua_pcall(L, nargs, 1, 0) != 0) {
		char buf[512];

		snprintf(err, errlen, "%s", error_text(L, -1, buf, sizeof(buf)));
		lua_pop(L, 1);
		return -1;
	}
	if (!lua_isfunction(L, -1)) {
		snprintf(err, errlen, "divert.host.%s returned no dispatch function", fn);
		lua_pop(L, 1);
		return -1;
	}
	if (h->dispatch_ref != LUA_NOREF)
		luaL_unref(L, LUA_REGISTRYINDEX, h->dispatch_ref);
	h->dispatch_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	return 0;
}

struct ld_lua *ld_lua_new(const struct ld_lua_cfg *cfg, struct ld_batch *batch,
			  char *err, size_t errlen)
{
	struct ld_lua *h;

	if (access(cfg->policy, R_OK) != 0) {
		snprintf(err, errlen, "%s: %s", cfg->policy, strerror(errno));
		return NULL;
	}
	h = calloc(1, sizeof(*h));
	if (!h) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	h->dispatch_ref = LUA_NOREF;
	h->old_ref = LUA_NOREF;
	h->batch = batch;
	h->lim = cfg->log_limit ? cfg->log_limit : &h->own_lim;
	snprintf(h->policy, sizeof(h->policy), "%s", cfg->policy);
	h->allow_insecure = cfg->allow_insecure;
	h->owner = geteuid();
	find_lua_dir(cfg->lua_dir, h->lua_dir, sizeof(h->lua_dir));
	if (!h->allow_insecure &&
	    check_files(h->policy, h->lua_dir, h->owner, err, errlen) < 0) {
		free(h);
		return NULL;
	}
	h->mem.max = cfg->memory_max;
	h->L = lua_newstate(mem_alloc, &h->mem);
	if (!h->L && cfg->memory_max) {
		/* a LuaJIT without GC64 takes no custom allocator on 64-bit */
		ld_log("warning: this LuaJIT takes no custom allocator: --memory-max is not enforced");
		h->L = luaL_newstate();
	}
	if (!h->L) {
		snprintf(err, errlen, "cannot create a Lua state (out of memory)");
		free(h);
		return NULL;
	}
	luaL_openlibs(h->L);
	set_package_path(h->L, h->lua_dir, cfg->policy);

	lua_pushstring(h->L, cfg->policy);
	lua_pushlightuserdata(h->L, batch);
	if (cfg->sink)
		lua_pushlightuserdata(h->L, cfg->sink);
	else
		lua_pushnil(h->L);
	lua_pushboolean(h->L, 1);   /* os.exit, os.execute, io.popen raise */
	if (call_host(h, "start", 4, err, errlen) < 0) {
		lua_close(h->L);
		free(h);
		return NULL;
	}
	return h;
}

/* Run the dispatch function @ref over batch->pkts[from..to). */
static uint32_t dispatch_span(struct ld_lua *h, int ref, uint32_t from, uint32_t to)
{
	struct ld_batch *b = h->batch;
	lua_State *L = h->L;
	uint32_t errors = 0, n = b->n;

	b->n = to;
	b->next = from;
	while (b->next < b->n) {
		char buf[512];
		int rc;

		lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
		rc = lua_pcall(L, 0, 0, 0);
		if (rc == 0)
			break;

		struct ld_packet *p = &b->pkts[b->next];

		ld_log_limited(h->lim, "policy error, packet id %u gets the default verdict: %s%s",
			       p->id, error_text(L, -1, buf, sizeof(buf)),
			       rc == LUA_ERRMEM && h->mem.max ? " (the policy's memory is at "
			       "--memory-max)" : "");
		lua_pop(L, 1);
		/* Whatever the handler had set on this packet is void. */
		p->verdict = b->default_verdict;
		p->set = 0;
		p->hold_ns = 0;
		p->dup = 0;
		errors++;
		b->next++;
	}
	b->n = n;
	return errors;
}

uint32_t ld_lua_dispatch(struct ld_lua *h)
{
	return dispatch_span(h, h->dispatch_ref, 0, h->batch->n);
}

uint32_t ld_lua_dispatch_span(struct ld_lua *h, int old, uint32_t from, uint32_t to)
{
	int ref = old && h->old_ref != LUA_NOREF ? h->old_ref : h->dispatch_ref;

	return dispatch_span(h, ref, from, to);
}

void ld_lua_drop_old(struct ld_lua *h)
{
	if (h->old_ref != LUA_NOREF)
		luaL_unref(h->L, LUA_REGISTRYINDEX, h->old_ref);
	h->old_ref = LUA_NOREF;
}

int ld_lua_reload(struct ld_lua *h, char *err, size_t errlen)
{
	if (!h->allow_insecure &&
	    check_files(h->policy, h->lua_dir, h->owner, err, errlen) < 0)
		return -1;
	lua_pushstring(h->L, h->policy);
	return call_host(h, "reload", 1, err, errlen);
}

/* Call host.<fn>(args already pushed), leaving @nres results; -1 with @err set. */
static int host_fn(struct ld_lua *h, const char *fn, int nargs, int nres, char *err,
		   size_t errlen)
{
	lua_State *L = h->L;
	const char *msg;

	lua_getglobal(L, "require");
	lua_pushliteral(L, "divert.host");
	if (lua_pcall(L, 1, 1, 0) == 0) {
		lua_getfield(L, -1, fn);
		lua_remove(L, -2);
		lua_insert(L, -1 - nargs);
		if (lua_pcall(L, nargs, nres, 0) == 0)
			return 0;
	} else {
		lua_insert(L, -1 - nargs);   /* the message below the arguments */
		lua_pop(L, nargs);
	}
	msg = lua_tostring(L, -1);
	snprintf(err, errlen, "%s", msg ? msg : "(error object is not a string)");
	lua_pop(L, 1);
	return -1;
}

int ld_lua_reload_load(struct ld_lua *h, char *err, size_t errlen)
{
	lua_pushstring(h->L, h->policy);
	return host_fn(h, "reload_load", 1, 0, err, errlen);
}

int ld_lua_reload_prepare(struct ld_lua *h, char *err, size_t errlen)
{
	return host_fn(h, "reload_prepare", 0, 0, err, errlen);
}

int ld_lua_reload_commit(struct ld_lua *h, int keep_old, char *err, size_t errlen)
{
	int old = h->dispatch_ref;

	h->dispatch_ref = LUA_NOREF;   /* so that call_host does not free it */
	if (call_host(h, "reload_commit", 0, err, errlen) < 0) {
		h->dispatch_ref = old;
		return -1;
	}
	ld_lua_drop_old(h);
	h->old_ref = old;
	if (!keep_old)
		ld_lua_drop_old(h);
	return 0;
}

void ld_lua_reload_abort(struct ld_lua *h)
{
	char err[256];

	if (host_fn(h, "reload_abort", 0, 0, err, sizeof(err)) < 0)
		ld_log("reload abort: %s", err);
}

/* A string field of the table on top, or NULL (valid while the table is). */
static const char *str_field(lua_State *L, const char *k)
{
	const char *v;

	lua_getfield(L, -1, k);
	v = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
	lua_pop(L, 1);
	return v;
}

int ld_lua_declared(struct ld_lua *h, struct ld_policy_rules *out, char *err, size_t errlen)
{
	lua_State *L = h->L;
	int family = -1, rc;

	if (host_fn(h, "declared", 0, 1, err, errlen) < 0)
		return -1;
	if (!lua_istable(L, -1)) {
		lua_pop(L, 1);
		return ld_policy_rules_set(out, NULL, NULL, NULL, NULL, -1, err, errlen);
	}
	lua_getfield(L, -1, "family");
	if (lua_isnumber(L, -1))
		family = (int)lua_tointeger(L, -1);
	lua_pop(L, 1);
	rc = ld_policy_rules_set(out, str_field(L, "filter"), str_field(L, "filter_at"),
				 str_field(L, "hook"), str_field(L, "hook_at"), family, err, errlen);
	lua_pop(L, 1);
	return rc;
}

int ld_lua_watch_files(struct ld_lua *h, char *buf, size_t len)
{
	lua_State *L = h->L;
	int rc = -1;

	buf[0] = '\0';
	lua_getglobal(L, "require");
	lua_pushliteral(L, "divert.host");
	if (lua_pcall(L, 1, 1, 0) == 0) {
		lua_getfield(L, -1, "watch_files");
		if (lua_pcall(L, 0, 1, 0) == 0 && lua_isstring(L, -1)) {
			snprintf(buf, len, "%s", lua_tostring(L, -1));
			rc = 0;
		}
	}
	lua_settop(L, 0);
	return rc;
}

int ld_lua_stop(struct ld_lua *h)
{
	int rc = 0;

	if (!h || h->stopped)
		return 0;
	h->stopped = 1;
	lua_getglobal(h->L, "require");
	lua_pushliteral(h->L, "divert.host");
	if (lua_pcall(h->L, 1, 1, 0) != 0 || (lua_getfield(h->L, -1, "stop"),
					     lua_pcall(h->L, 0, 0, 0) != 0)) {
		char buf[512];

		ld_log("policy on_stop: %s", error_text(h->L, -1, buf, sizeof(buf)));
		rc = -1;
	}
	lua_settop(h->L, 0);
	/* what on_stop logged through the limiter, and what it held back */
	ld_log_limit_flush(h->lim);
	return rc;
}

/* Push divert.host.<fn>; return -1 with @err set when the library fails. */
static int push_host_fn(struct ld_lua *h, const char *fn, char *err, size_t errlen)
{
	lua_getglobal(h->L, "require");
	lua_pushliteral(h->L, "divert.host");
	if (lua_pcall(h->L, 1, 1, 0) != 0) {
		snprintf(err, errlen, "loading the divert library: %s", lua_tostring(h->L, -1));
		lua_settop(h->L, 0);
		return -1;
	}
	lua_getfield(h->L, -1, fn);
	lua_remove(h->L, -2);
	return 0;
}

static void pcall_error(struct ld_lua *h, char *err, size_t errlen)
{
	const char *msg = lua_tostring(h->L, -1);

	snprintf(err, errlen, "%s", msg ? msg : "(error object is not a string)");
	lua_settop(h->L, 0);
}

int ld_lua_save(struct ld_lua *h, uint8_t *buf, size_t cap, size_t *len, char *err,
		size_t errlen)
{
	const char *s;
	size_t n;

	*len = 0;
	if (push_host_fn(h, "save_state", err, errlen) < 0)
		return -1;
	if (lua_pcall(h->L, 0, 1, 0) != 0) {
		pcall_error(h, err, errlen);
		return -1;
	}
	s = lua_tolstring(h->L, -1, &n);
	if (s && n > cap) {
		snprintf(err, errlen, "save() of the running policy: its state takes %zu bytes, "
			 "more than the %zu that can be carried", n, cap);
		lua_settop(h->L, 0);
		return -1;
	}
	if (s) {
		memcpy(buf, s, n);
		*len = n;
	}
	lua_settop(h->L, 0);
	return 0;
}

int ld_lua_restore(struct ld_lua *h, const uint8_t *buf, size_t len, char *err, size_t errlen)
{
	if (push_host_fn(h, "restore_state", err, errlen) < 0)
		return -1;
	if (len)
		lua_pushlstring(h->L, (const char *)buf, len);
	else
		lua_pushnil(h->L);
	if (lua_pcall(h->L, 1, 0, 0) != 0) {
		pcall_error(h, err, errlen);
		return -1;
	}
	return 0;
}

void ld_lua_discard(struct ld_lua *h)
{
	if (!h)
		return;
	lua_close(h->L);
	free(h);
}

void ld_lua_free(struct ld_lua *h)
{
	ld_lua_stop(h);
	ld_lua_discard(h);
}
