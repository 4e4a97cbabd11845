// SPDX-License-Identifier: MIT
/* policy_files.c - ownership and permission checks on policy code (see policy_files.h). */
#include "policy_files.h"

#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *owner_name(uid_t uid, char *buf, size_t len)
{
	struct passwd *pw = getpwuid(uid);

	if (pw)
		snprintf(buf, len, "%s", pw->pw_name);
	else
		snprintf(buf, len, "uid %ld", (long)uid);
	return buf;
}

/* Why @st may be changed by someone else, or NULL. @parent: a directory
 * above the checked one, where the sticky bit is enough. */
static const char *why_unsafe(const struct stat *st, int parent, uid_t owner, char *buf,
			      size_t len)
{
	char who[64];

	if (st->st_uid != 0 && st->st_uid != owner) {
		snprintf(buf, len, "it is owned by %s, not by root or the daemon's user",
			 owner_name(st->st_uid, who, sizeof(who)));
		return buf;
	}
	if (parent && S_ISDIR(st->st_mode) && (st->st_mode & S_ISVTX))
		return NULL;
	if (st->st_mode & S_IWOTH)
		return "it is world-writable";
	if (st->st_mode & S_IWGRP)
		return "it is group-writable";
	return NULL;
}

int ld_policy_file_check(const char *path, int is_dir, uid_t owner, char *err, size_t errlen)
{
	char real[PATH_MAX], why[128];
	const char *bad;
	struct stat st;

	if (!realpath(path, real)) {
		if (is_dir && errno == ENOENT)
			return 0;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (stat(real, &st) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	bad = why_unsafe(&st, 0, owner, why, sizeof(why));
	if (bad) {
		snprintf(err, errlen, "%s: refusing to load policy code from %s%s: %s "
			 "(fix its owner or mode, or pass --allow-insecure-policy)",
			 path, is_dir ? "module directory " : "", real, bad);
		return -1;
	}
	/* every directory above: renaming or replacing one swaps what we load */
	for (char *slash = strrchr(real, '/'); slash; slash = strrchr(real, '/')) {
		if (slash == real)
			slash[1] = '\0';
		else
			*slash = '\0';
		if (stat(real, &st) < 0) {
			snprintf(err, errlen, "%s: %s", real, strerror(errno));
			return -1;
		}
		bad = why_unsafe(&st, 1, owner, why, sizeof(why));
		if (bad) {
			snprintf(err, errlen, "%s: refusing to load policy code: the directory %s "
				 "above it may be changed by others: %s (fix it, or pass "
				 "--allow-insecure-policy)", path, real, bad);
			return -1;
		}
		if (slash == real)
			break;
	}
	return 0;
}
