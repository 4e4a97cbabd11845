// SPDX-License-Identifier: MIT
/*
 * reload_watch.c - which file changes --watch reloads for.
 *
 * Editors replace a file by writing a temporary one next to it and renaming
 * it over the original, so the watches are on directories (inotify follows
 * inodes, a watch on the file would go with the old one). An event counts
 * only when it names the policy or a module the policy required: a swap
 * file, a backup~, "4913" (vim's probe) or an unrelated script does not.
 */
#include "reload.h"

#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>

#include "log.h"

enum { WATCH_MASK = IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE };

static void watch_one(struct ld_reload *r, const char *path)
{
	char dir[PATH_MAX], base[PATH_MAX];
	struct ld_watch_file *f;
	int wd;

	if (r->nfiles == LD_WATCH_FILES) {
		ld_log("--watch: more than %d files, %s is not watched", LD_WATCH_FILES, path);
		return;
	}
	snprintf(dir, sizeof(dir), "%s", path);
	snprintf(base, sizeof(base), "%s", path);
	/* the same directory gives the same watch descriptor */
	wd = inotify_add_watch(r->watch_fd, dirname(dir), WATCH_MASK);
	if (wd < 0) {
		ld_log("--watch: cannot watch %s: %m", path);
		return;
	}
	f = &r->files[r->nfiles++];
	f->wd = wd;
	snprintf(f->name, sizeof(f->name), "%s", basename(base));
}

void ld_reload_watch_modules(struct ld_reload *r, struct ld_lua *lua)
{
	char list[LD_WATCH_FILES * 256];

	if (!lua || ld_lua_watch_files(lua, list, sizeof(list)) < 0)
		list[0] = '\0';
	ld_reload_watch_list(r, list);
}

void ld_reload_watch_list(struct ld_reload *r, const char *text)
{
	char list[LD_WATCH_FILES * 256];

	if (r->watch_fd < 0)
		return;
	r->nfiles = 0;
	watch_one(r, r->policy);
	snprintf(list, sizeof(list), "%s", text ? text : "");
	for (char *save = NULL, *p = strtok_r(list, "\n", &save); p;
	     p = strtok_r(NULL, "\n", &save))
		if (strcmp(p, r->policy) != 0)
			watch_one(r, p);
}

int ld_reload_watch_matches(const struct ld_reload *r, int wd, const char *name)
{
	for (int i = 0; i < r->nfiles; i++)
		if (r->files[i].wd == wd && strcmp(r->files[i].name, name) == 0)
			return 1;
	return 0;
}
