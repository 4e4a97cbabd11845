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

void ld_reload_begin(struct ld_reload *r)
{
	r->pending = 0;
	r->generation++;
}

void ld_reload_report(struct ld_reload *r, int ok, const char *msg, struct ld_counters *c)
{
	ld_log("%s", msg);
	if (ok)
		c->reloads++;
	else
		c->reload_errors++;
	write_status(r, ok, msg);
}

void ld_reload_free(struct ld_reload *r)
{
	if (r->watch_fd >= 0)
		close(r->watch_fd);
	r->watch_fd = -1;
}
