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
