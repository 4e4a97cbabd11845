// SPDX-License-Identifier: MIT
/*
 * rules_lock.c - one luadivert per queue and network namespace.
 *
 * A second instance on the same queue must refuse to start before it
 * touches anything: otherwise its error path would remove the first
 * instance's rules. The lock is an open-file-description lock
 * (F_OFD_SETLK): the kernel drops it when the process dies, even by
 * kill -9, and, unlike flock(), another process can test it without
 * taking it (F_OFD_GETLK), which `rules list` and `rules cleanup` do.
 *
 * The file is deleted on release. To stay correct with that, the locker
 * checks after locking that the path still names the file it locked
 * (else someone released and deleted it in between: try again).
 */
#include "rules.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum {
	LOCK_RETRIES = 8,     /* lost races with a releasing holder before giving up */
	PID_TEXT_MAX = 24,
};

/* This network namespace's inode number: queue numbers are per namespace. */
static int netns_id(unsigned long long *ino)
{
	struct stat st;

	if (stat("/proc/self/ns/net", &st) < 0)
		return -1;
	*ino = (unsigned long long)st.st_ino;
	return 0;
}

/*
 * Is @dir a directory we can use (or create, when it does not exist)?
 * @private_dir: it must then be ours and closed to others (a /tmp fallback).
 */
static int dir_usable(const char *dir, int create, int private_dir)
{
	struct stat st;

	if (lstat(dir, &st) == 0) {
		if (!S_ISDIR(st.st_mode))
			return 0;
		if (private_dir && (st.st_uid != geteuid() || (st.st_mode & 022)))
			return 0;
		return access(dir, W_OK | X_OK) == 0;
	}
	if (errno != ENOENT)
		return 0;
	if (!create) {
		/* would the locker be able to make it? then it chose this one */
		char parent[4096];
		char *slash;

		snprintf(parent, sizeof parent, "%s", dir);
		slash = strrchr(parent, '/');
		if (!slash)
			return 0;
		if (slash == parent)
			slash[1] = '\0';
		else
			*slash = '\0';
		return access(parent, W_OK | X_OK) == 0;
	}
	/* 0700: pid, status and lock files are nobody else's business */
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return 0;
	return dir_usable(dir, 0, private_dir);
}

int ld_run_dir(char *buf, size_t len, int create)
{
	const char *env = getenv("LUADIVERT_RUN_DIR");
	const char *xdg = getenv("XDG_RUNTIME_DIR");

	if (env && env[0]) {
		snprintf(buf, len, "%s", env);
		if (dir_usable(buf, create, 0))
			return 0;
		errno = EACCES;
		return -1;
	}
	snprintf(buf, len, "%s", LD_RULES_RUN_DIR);
	if (dir_usable(buf, create, 0))
		return 0;
	if (xdg && xdg[0] == '/') {
		snprintf(buf, len, "%s/luadivert", xdg);
		if (dir_usable(buf, create, 0))
			return 0;
	}
	snprintf(buf, len, "/tmp/luadivert-%lu", (unsigned long)geteuid());
	if (dir_usable(buf, create, 1))
		return 0;
	errno = EACCES;
	return -1;
}

int ld_rules_lock_path(uint16_t queue, char *buf, size_t len, int create_dir)
{
	char dir[4096];
	unsigned long long ino;
	int n;

	if (netns_id(&ino) < 0 || ld_run_dir(dir, sizeof dir, create_dir) < 0)
		return -1;
	n = snprintf(buf, len, "%s/net%llu-queue-%u.lock", dir, ino, (unsigned)queue);
	if (n < 0 || (size_t)n >= len) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

static pid_t read_pid(int fd)
{
	char text[PID_TEXT_MAX];
	ssize_t r;
	long v;
	char *end;

	r = pread(fd, text, sizeof text - 1, 0);
	if (r <= 0)
		return -1;
	text[r] = '\0';
	v = strtol(text, &end, 10);
	if (end == text || v <= 0)
		return -1;
	return (pid_t)v;
}

/* Is the lock on @fd's file taken by someone else? 1 yes, 0 no, -1 error. */
static int lock_taken(int fd)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0 };

	if (fcntl(fd, F_OFD_GETLK, &fl) < 0)
		return -1;
	return fl.l_type != F_UNLCK;
}

int ld_rules_lock(uint16_t queue, char *err, size_t errlen)
{
	char path[4200];
	int attempt;

	if (ld_rules_lock_path(queue, path, sizeof path, 1) < 0) {
		snprintf(err, errlen, "queue %u: no usable lock directory (tried $LUADIVERT_RUN_DIR, "
			 LD_RULES_RUN_DIR ", $XDG_RUNTIME_DIR/luadivert, /tmp/luadivert-UID): %s",
			 (unsigned)queue, strerror(errno));
		return -1;
	}
	for (attempt = 0; attempt < LOCK_RETRIES; attempt++) {
		struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0 };
		struct stat fst, pst;
		char text[PID_TEXT_MAX];
		int fd, n;

		fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
		if (fd < 0) {
			snprintf(err, errlen, "queue %u: cannot open lock %s: %s", (unsigned)queue,
				 path, strerror(errno));
			return -1;
		}
		if (fcntl(fd, F_OFD_SETLK, &fl) < 0) {
			int e = errno;
			pid_t pid = read_pid(fd);

			close(fd);
			if (e != EAGAIN && e != EACCES) {
				snprintf(err, errlen, "queue %u: cannot lock %s: %s", (unsigned)queue,
					 path, strerror(e));
				return -1;
			}
			if (pid > 0)
				snprintf(err, errlen, "queue %u is already in use by luadivert pid %ld in "
					 "this network namespace (lock %s); stop it first, or use "
					 "another --queue", (unsigned)queue, (long)pid, path);
			else
				snprintf(err, errlen, "queue %u is already in use by another luadivert in "
					 "this network namespace (lock %s)", (unsigned)queue, path);
			return -1;
		}
		if (fstat(fd, &fst) < 0) {
			snprintf(err, errlen, "fstat %s: %s", path, strerror(errno));
			close(fd);
			return -1;
		}
		if (stat(path, &pst) < 0 || pst.st_dev != fst.st_dev || pst.st_ino != fst.st_ino) {
			/* the previous holder deleted it between our open and lock */
			close(fd);
			continue;
		}
		n = snprintf(text, sizeof text, "%ld\n", (long)getpid());
		if (ftruncate(fd, 0) < 0 || pwrite(fd, text, (size_t)n, 0) != (ssize_t)n) {
			snprintf(err, errlen, "writing lock %s: %s", path, strerror(errno));
			unlink(path);
			close(fd);
			return -1;
		}
		return fd;
	}
	snprintf(err, errlen, "queue %u: lock %s keeps changing under us", (unsigned)queue, path);
	return -1;
}

void ld_rules_unlock(int fd, uint16_t queue)
{
	char path[4200];
	struct stat fst, pst;

	if (fd < 0)
		return;
	/* delete only the file we hold: never a newer holder's */
	if (ld_rules_lock_path(queue, path, sizeof path, 0) == 0 && fstat(fd, &fst) == 0 &&
	    stat(path, &pst) == 0 && pst.st_dev == fst.st_dev && pst.st_ino == fst.st_ino)
		(void)unlink(path);
	close(fd);
}

pid_t ld_rules_lock_holder(uint16_t queue)
{
	char path[4200];
	pid_t pid;
	int fd, taken;

	if (ld_rules_lock_path(queue, path, sizeof path, 0) < 0)
		return 0;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return 0;
	taken = lock_taken(fd);
	pid = taken > 0 ? read_pid(fd) : 0;
	close(fd);
	if (taken < 0)
		return -1;
	return taken ? (pid > 0 ? pid : -1) : 0;
}
