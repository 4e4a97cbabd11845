// SPDX-License-Identifier: MIT
/* pidfile.c - pid files written and read safely (see pidfile.h). */
#include "pidfile.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rules.h"

FILE *ld_open_nofollow(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
	FILE *f;

	if (fd < 0)
		return NULL;
	f = fdopen(fd, "w");
	if (!f) {
		int e = errno;

		close(fd);
		errno = e;
	}
	return f;
}

int ld_pidfile_write(const char *path, uint32_t queue)
{
	char dir[PATH_MAX];
	FILE *f;

	snprintf(dir, sizeof(dir), "%s", path);
	if (mkdir(dirname(dir), 0700) < 0 && errno != EEXIST)
		return -1;
	f = ld_open_nofollow(path);
	if (!f)
		return -1;
	fprintf(f, "%ld\nqueue %u\n", (long)getpid(), queue);
	return fclose(f);
}

int ld_pidfile_read(const char *path, pid_t *pid, uint32_t *queue)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	char text[64];
	ssize_t n;
	long v;
	unsigned q;
	char *end;

	if (fd < 0)
		return -1;
	n = read(fd, text, sizeof(text) - 1);
	close(fd);
	if (n < 0)
		return -1;
	text[n] = '\0';
	v = strtol(text, &end, 10);
	if (end == text || v <= 1 || v > INT_MAX) {
		errno = EINVAL;
		return -1;
	}
	*pid = (pid_t)v;
	if (sscanf(end, " queue %u", &q) == 1 && q <= 65535)
		*queue = q;
	return 0;
}

void ld_default_pidfile(uint32_t queue, char *out, unsigned long outlen)
{
	char dir[4096];
	struct stat st;

	/* the lock's directory: one place, one variable, for all run files */
	if (ld_run_dir(dir, sizeof(dir), 0) < 0)
		snprintf(dir, sizeof(dir), "%s", LD_RULES_RUN_DIR);
	/* queue numbers are per network namespace, and so is the file */
	if (stat("/proc/self/ns/net", &st) < 0)
		st.st_ino = 0;
	snprintf(out, outlen, "%s/net%llu-queue-%u.pid", dir, (unsigned long long)st.st_ino, queue);
}
