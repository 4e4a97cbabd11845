// SPDX-License-Identifier: MIT
/* reload.c - policy reloads between batches, and the --watch file watcher. */
#include "reload.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "log.h"
#include "policy_rules.h"
#include "reload_grace.h"
#include "pidfile.h"


int ld_file_hash(const char *path, uint64_t *out)
{
	uint8_t buf[4096];
	uint64_t h = 0xcbf29ce484222325ull;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		for (ssize_t i = 0; i < n; i++)
			h = (h ^ buf[i]) * 0x100000001b3ull;
	close(fd);
	if (n < 0)
		return -1;
	*out = h;
	return 0;
}

int ld_reload_init(struct ld_reload *r, const char *policy, int watch, char *err, size_t errlen)
{
	char dir[PATH_MAX];

	memset(r, 0, sizeof(*r));
	r->watch_fd = -1;
	r->grace = calloc(1, sizeof(*r->grace));
	if (!r->grace) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	snprintf(r->policy, sizeof(r->policy), "%s", policy);
	if (!watch)
		return 0;
	r->watch_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (r->watch_fd < 0) {
		snprintf(err, errlen, "inotify: %s", strerror(errno));
		ld_reload_free(r);
		return -1;
	}
	/* Watch the directory: editors replace a file by renaming a new one over it. */
	snprintf(dir, sizeof(dir), "%s", policy);
	if (inotify_add_watch(r->watch_fd, dirname(dir),
			      IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE) < 0) {
		snprintf(err, errlen, "watching %s: %s", policy, strerror(errno));
		ld_reload_free(r);
		return -1;
	}
	/* the policy alone until ld_reload_watch_modules() learns its modules */
	ld_reload_watch_modules(r, NULL);
	return 0;
}

void ld_reload_set_status_file(struct ld_reload *r, const char *path)
{
	snprintf(r->status_path, sizeof(r->status_path), "%s", path ? path : "");
}

void ld_reload_watch_event(struct ld_reload *r)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	ssize_t n;

	while ((n = read(r->watch_fd, buf, sizeof(buf))) > 0) {
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *ev = (const void *)p;

			/* the policy or a module it required, nothing else */
			if (ev->len && ld_reload_watch_matches(r, ev->wd, ev->name))
				r->pending = 1;
			p += sizeof(*ev) + ev->len;
		}
	}
}

static void write_status(struct ld_reload *r, int ok, const char *msg)
{
	char tmp[PATH_MAX + 8];
	FILE *f;

	if (!r->status_path[0])
		return;
	snprintf(tmp, sizeof(tmp), "%s.tmp", r->status_path);
	f = ld_open_nofollow(tmp);
	if (!f) {
		ld_log("reload status %s: %s", tmp, strerror(errno));
		return;
	}
	fprintf(f, "%" PRIu64 " %s %s\n", r->generation, ok ? "ok" : "error", msg);
	if (fclose(f) != 0 || rename(tmp, r->status_path) != 0)
		ld_log("reload status %s: %s", r->status_path, strerror(errno));
}

/*
 * Issue 18: the code and the divert rules it declares change together.
 * load -> compile the declared filter -> save/init/on_reload -> swap the
 * rules -> switch the code. The worker reads no packet in between; the
 * packets the old rules queued are then judged by the old code
 * (reload_grace.h, ld_reload_dispatch()).
 * With a supervisor, it would run plan and swap on the worker's report.
 */
static int reload_code_and_rules(struct ld_reload *r, struct ld_lua *lua, char *err,
				 size_t errlen, char *note, size_t notelen)
{
	struct ld_policy_rules decl;
	struct ld_rules_set *next = NULL;
	struct ld_kernel_counters k0, k1;
	char e[1200], what[LD_RULES_FILTER_MAX + 128];
	int changed = 0, before_ok, after_ok;

	note[0] = '\0';
	/* a reload during the last one's grace: its old version is gone now */
	if (r->grace->active) {
		r->grace->active = 0;
		r->grace_old = 0;
		ld_lua_drop_old(lua);
	}
	if (ld_lua_reload_load(lua, err, errlen) < 0)
		return -1;
	if (ld_lua_declared(lua, &decl, e, sizeof(e)) < 0 ||
	    (r->divert && ld_divert_plan(r->divert, &decl, &next, e, sizeof(e)) < 0)) {
		ld_lua_reload_abort(lua);
		if (snprintf(err, errlen, "%s has errors, not reloading: %s", r->policy, e) >=
		    (int)errlen)
			err[errlen - 1] = '\0';   /* a long message is cut, no more */
		return -1;
	}
	if (ld_lua_reload_prepare(lua, err, errlen) < 0) {
		free(next);
		return -1;
	}
	/* packets queued up to here are the old rules' (reload_grace.h) */
	before_ok = next && ld_kernel_counters_read(next->cfg.queue, &k0) == 0 && k0.valid;
	if (next && ld_divert_swap(r->divert, next, &changed, e, sizeof(e)) < 0) {
		ld_lua_reload_abort(lua);
		free(next);
		if (snprintf(err, errlen, "%s: not reloading, the divert rules could not be "
			     "swapped (the old policy and rules stay): %s", r->policy, e) >= (int)errlen)
			err[errlen - 1] = '\0';
		return -1;
	}
	after_ok = changed && ld_kernel_counters_read(r->divert->cur->cfg.queue, &k1) == 0 &&
		   k1.valid;
	/* only out of memory fails here; the new rules then run with the old code */
	if (ld_lua_reload_commit(lua, changed, err, errlen) < 0)
		return -1;
	if (changed && (!before_ok || !after_ok ||
			ld_grace_begin(r->grace, r->divert->cur, k0.id_sequence, k1.id_sequence) < 0)) {
		/* cannot tell old from new: the new code judges all (docs/reload.md) */
		ld_log("queue %u: packet ids unknown around the swap: the new code judges the "
		       "packets the old rules queued", r->divert->cur->cfg.queue);
		ld_lua_drop_old(lua);
	}
	if (changed)
		snprintf(note, notelen, "; now diverting %s",
			 ld_rules_set_describe(r->divert->cur, what, sizeof(what)));
	return 0;
}

int ld_reload_run(struct ld_reload *r, struct ld_lua *lua, struct ld_counters *c)
{
	char err[2048], msg[PATH_MAX + LD_RULES_FILTER_MAX + 1400], note[LD_RULES_FILTER_MAX + 200];
	uint64_t t0 = ld_now_ns(), hash = 0;
	int rc;

	/* Requests made while this one runs start another one afterwards. */
	r->pending = 0;
	r->generation++;
	if (ld_file_hash(r->policy, &hash) < 0) {
		snprintf(msg, sizeof(msg), "%s has errors, not reloading: %s", r->policy,
			 strerror(errno));
		rc = -1;
	} else {
		rc = reload_code_and_rules(r, lua, err, sizeof(err), note, sizeof(note));
		if (rc < 0)
			snprintf(msg, sizeof(msg), "%s", err);
		else
			snprintf(msg, sizeof(msg), "reloaded %s (fnv64 %016" PRIx64 ") in %.2f ms%s",
				 r->policy, hash, (double)(ld_now_ns() - t0) / 1e6, note);
	}
	ld_log("%s", msg);
	if (rc == 0)
		ld_reload_watch_modules(r, lua);   /* the new version may require others */
	if (rc < 0)
		c->reload_errors++;
	else
		c->reloads++;
	write_status(r, rc == 0, msg);
	return rc;
}

uint32_t ld_reload_dispatch(struct ld_reload *r, struct ld_lua *lua, struct ld_batch *b)
{
	uint32_t errors = 0, i = 0, n = b->n;

	if (!r->grace->active || n == 0)
		return ld_lua_dispatch(lua);
	/* runs of packets for the same version, each in one call */
	while (i < n) {
		int fresh = ld_grace_new_code(r->grace, &b->pkts[i]);
		uint32_t j = i + 1;

		while (j < n && ld_grace_new_code(r->grace, &b->pkts[j]) == fresh)
			j++;
		if (!fresh)
			r->grace_old += j - i;
		errors += ld_lua_dispatch_span(lua, !fresh, i, j);
		i = j;
	}
	b->next = n;
	if (ld_grace_over(r->grace, b->pkts[n - 1].id)) {
		if (r->grace_old)
			ld_log("reload %" PRIu64 ": %" PRIu64 " packet%s queued by the old rules "
			       "before the swap judged by the old code", r->generation,
			       r->grace_old, r->grace_old == 1 ? "" : "s");
		r->grace->active = 0;
		r->grace_old = 0;
		ld_lua_drop_old(lua);
	}
	return errors;
}

void ld_reload_free(struct ld_reload *r)
{
	free(r->grace);
	r->grace = NULL;
	if (r->watch_fd >= 0)
		close(r->watch_fd);
	r->watch_fd = -1;
}
