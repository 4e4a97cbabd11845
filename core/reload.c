// SPDX-License-Identifier: MIT
/* reload.c - policy reloads between batches, and the --watch file watcher. */
#include "reload.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "log.h"


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
	r->status_fd = -1;
	snprintf(r->policy, sizeof(r->policy), "%s", policy);
	if (!watch)
		return 0;
	r->watch_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (r->watch_fd < 0) {
		snprintf(err, errlen, "inotify: %s", strerror(errno));
		return -1;
	}
	/* Watch the directory: editors replace a file by renaming a new one over it. */
	snprintf(dir, sizeof(dir), "%s", policy);
	if (inotify_add_watch(r->watch_fd, dirname(dir),
			      IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE) < 0) {
		snprintf(err, errlen, "watching %s: %s", policy, strerror(errno));
		close(r->watch_fd);
		r->watch_fd = -1;
		return -1;
	}
	return 0;
}

void ld_reload_set_status_file(struct ld_reload *r, const char *path)
{
	snprintf(r->status_path, sizeof(r->status_path), "%s", path ? path : "");
	if (r->status_fd >= 0)
		close(r->status_fd);
	/* Kept open: once sandboxed (core/sandbox.c) the daemon may no longer
	 * create files in the pid file's directory, only write this one. */
	r->status_fd = path ? open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644)
			    : -1;
}

void ld_reload_watch_event(struct ld_reload *r)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	char base_buf[PATH_MAX];
	const char *base;
	ssize_t n;

	snprintf(base_buf, sizeof(base_buf), "%s", r->policy);
	base = basename(base_buf);
	while ((n = read(r->watch_fd, buf, sizeof(buf))) > 0) {
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *ev = (const void *)p;

			/* Any .lua file next to the policy: it may be a module it requires. */
			if (ev->len && (strcmp(ev->name, base) == 0 ||
					(strlen(ev->name) > 4 &&
					 strcmp(ev->name + strlen(ev->name) - 4, ".lua") == 0)))
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
	if (r->status_fd >= 0) {
		/* in place: the reader takes the first line, which one pwrite replaces */
		char line[PATH_MAX + 1300];
		int n = snprintf(line, sizeof(line), "%" PRIu64 " %s %s\n", r->generation,
				 ok ? "ok" : "error", msg);

		if (n >= (int)sizeof(line))
			n = (int)sizeof(line) - 1;
		if (pwrite(r->status_fd, line, (size_t)n, 0) != n ||
		    ftruncate(r->status_fd, n) < 0)
			ld_log("reload status %s: %s", r->status_path, strerror(errno));
		return;
	}
	snprintf(tmp, sizeof(tmp), "%s.tmp", r->status_path);
	f = fopen(tmp, "we");
	if (!f) {
		ld_log("reload status %s: %s", tmp, strerror(errno));
		return;
	}
	fprintf(f, "%" PRIu64 " %s %s\n", r->generation, ok ? "ok" : "error", msg);
	if (fclose(f) != 0 || rename(tmp, r->status_path) != 0)
		ld_log("reload status %s: %s", r->status_path, strerror(errno));
}

int ld_reload_run(struct ld_reload *r, struct ld_lua *lua, struct ld_counters *c)
{
	char err[1024], msg[PATH_MAX + 1200];
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
		rc = ld_lua_reload(lua, err, sizeof(err));
		if (rc < 0)
			snprintf(msg, sizeof(msg), "%s", err);
		else
			snprintf(msg, sizeof(msg), "reloaded %s (fnv64 %016" PRIx64 ") in %.2f ms",
				 r->policy, hash, (double)(ld_now_ns() - t0) / 1e6);
	}
	ld_log("%s", msg);
	if (rc < 0)
		c->reload_errors++;
	else
		c->reloads++;
	write_status(r, rc == 0, msg);
	return rc;
}

void ld_reload_free(struct ld_reload *r)
{
	if (r->watch_fd >= 0)
		close(r->watch_fd);
	r->watch_fd = -1;
	if (r->status_fd >= 0)
		close(r->status_fd);
	r->status_fd = -1;
}
