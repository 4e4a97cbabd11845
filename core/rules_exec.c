// SPDX-License-Identifier: MIT
/*
 * rules_exec.c - run iptables-save/-restore without a shell.
 *
 * The program gets an argument vector (posix_spawn), so nothing in a filter
 * expression or a chain name is ever parsed by /bin/sh. Its stdin, stdout
 * and stderr are memfds: we write the whole input before starting it and
 * read both outputs after it exits, so no pipe can fill up and deadlock,
 * and no poll loop is needed.
 */
#include "rules.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

enum {
	OUT_MAX = 64 << 20,          /* refuse absurd outputs (a huge ruleset is a few MB) */
	POLL_START_US = 200,         /* first wait for the child, doubled up to POLL_MAX_US */
	POLL_MAX_US = 20000,
};

/* Where root's tools live when $PATH (e.g. a minimal service PATH) lacks them. */
static const char *const sbin_dirs[] = { "/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin" };

static int try_dir(const char *dir, size_t dlen, const char *name, char *buf, size_t len)
{
	struct stat st;
	int n;

	if (dlen == 0)
		return -1;
	n = snprintf(buf, len, "%.*s/%s", (int)dlen, dir, name);
	if (n < 0 || (size_t)n >= len)
		return -1;
	if (stat(buf, &st) < 0 || !S_ISREG(st.st_mode) || access(buf, X_OK) < 0)
		return -1;
	return 0;
}

int ld_rules_find_program(const char *name, char *buf, size_t len)
{
	const char *path = getenv("PATH");
	size_t i;

	if (strchr(name, '/'))
		return -1;
	while (path && *path) {
		const char *end = strchr(path, ':');
		size_t dlen = end ? (size_t)(end - path) : strlen(path);

		if (path[0] == '/' && try_dir(path, dlen, name, buf, len) == 0)
			return 0;
		path = end ? end + 1 : NULL;
	}
	for (i = 0; i < sizeof sbin_dirs / sizeof sbin_dirs[0]; i++)
		if (try_dir(sbin_dirs[i], strlen(sbin_dirs[i]), name, buf, len) == 0)
			return 0;
	return -1;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Read a whole memfd from the start into a NUL-terminated malloc'd string. */
static char *slurp(int fd, size_t *lenp)
{
	struct stat st;
	size_t size, got = 0;
	char *buf;

	if (fstat(fd, &st) < 0)
		return NULL;
	if (st.st_size < 0 || (unsigned long long)st.st_size > OUT_MAX) {
		errno = EFBIG;
		return NULL;
	}
	size = (size_t)st.st_size;
	buf = malloc(size + 1);
	if (!buf)
		return NULL;
	while (got < size) {
		ssize_t r = pread(fd, buf + got, size - got, (off_t)got);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			free(buf);
			return NULL;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	buf[got] = '\0';
	if (lenp)
		*lenp = got;
	return buf;
}

static void sleep_us(long us)
{
	struct timespec ts = { .tv_sec = us / 1000000, .tv_nsec = (us % 1000000) * 1000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Wait for @pid, killing it after LD_RULES_TIMEOUT_MS. Return 0 and its status, or -1. */
static int wait_child(pid_t pid, int *status, int *timed_out)
{
	long waited_us = 0, step = POLL_START_US;

	*timed_out = 0;
	for (;;) {
		pid_t r = waitpid(pid, status, WNOHANG);

		if (r == pid)
			return 0;
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (waited_us >= (long)LD_RULES_TIMEOUT_MS * 1000) {
			*timed_out = 1;
			if (kill(pid, SIGKILL) < 0 && errno != ESRCH)
				return -1;
			while (waitpid(pid, status, 0) < 0)
				if (errno != EINTR)
					return -1;
			return 0;
		}
		sleep_us(step);
		waited_us += step;
		if (step < POLL_MAX_US)
			step *= 2;
	}
}

static void close_fds(int *fds, int n)
{
	int i;

	for (i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

static void chomp(char *s)
{
	size_t n = strlen(s);

	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' '))
		s[--n] = '\0';
}

int ld_rules_exec(const char *path, char *const argv[], const char *in, size_t in_len,
		  struct ld_rules_out *res, char *err, size_t errlen)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, all;
	int fds[3] = { -1, -1, -1 };   /* stdin, stdout, stderr */
	static const char *const names[3] = { "ld-stdin", "ld-stdout", "ld-stderr" };
	int i, rc, status = 0, timed_out = 0;
	pid_t pid;

	memset(res, 0, sizeof *res);
	for (i = 0; i < 3; i++) {
		fds[i] = memfd_create(names[i], MFD_CLOEXEC);
		if (fds[i] < 0) {
			snprintf(err, errlen, "memfd_create: %s", strerror(errno));
			close_fds(fds, 3);
			return -1;
		}
	}
	if (in && in_len && (write_all(fds[0], in, in_len) < 0 || lseek(fds[0], 0, SEEK_SET) < 0)) {
		snprintf(err, errlen, "writing the input of %s: %s", path, strerror(errno));
		close_fds(fds, 3);
		return -1;
	}

	rc = posix_spawn_file_actions_init(&fa);
	if (rc) {
		snprintf(err, errlen, "posix_spawn_file_actions_init: %s", strerror(rc));
		close_fds(fds, 3);
		return -1;
	}
	rc = posix_spawnattr_init(&attr);
	if (rc) {
		posix_spawn_file_actions_destroy(&fa);
		snprintf(err, errlen, "posix_spawnattr_init: %s", strerror(rc));
		close_fds(fds, 3);
		return -1;
	}
	/* dup2 clears close-on-exec on the copy, so only fds 0-2 reach the child */
	for (i = 0; i < 3 && rc == 0; i++)
		rc = posix_spawn_file_actions_adddup2(&fa, fds[i], i);
	/* the caller may block SIGTERM or catch signals: the child must not inherit that */
	sigemptyset(&none);
	sigfillset(&all);
	if (rc == 0)
		rc = posix_spawnattr_setsigmask(&attr, &none);
	if (rc == 0)
		rc = posix_spawnattr_setsigdefault(&attr, &all);
	if (rc == 0)
		rc = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	if (rc == 0)
		rc = posix_spawn(&pid, path, &fa, &attr, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	if (rc) {
		snprintf(err, errlen, "cannot run %s: %s", path, strerror(rc));
		close_fds(fds, 3);
		return -1;
	}

	if (wait_child(pid, &status, &timed_out) < 0) {
		snprintf(err, errlen, "waiting for %s: %s%s", path, strerror(errno),
			 errno == ECHILD ? " (is SIGCHLD ignored?)" : "");
		close_fds(fds, 3);
		return -1;
	}
	if (timed_out) {
		snprintf(err, errlen, "%s did not finish within %d ms, killed", path,
			 LD_RULES_TIMEOUT_MS);
		close_fds(fds, 3);
		return -1;
	}
	res->out = slurp(fds[1], &res->out_len);
	res->err = res->out ? slurp(fds[2], NULL) : NULL;
	if (!res->out || !res->err) {
		snprintf(err, errlen, "reading the output of %s: %s", path, strerror(errno));
		ld_rules_out_free(res);
		close_fds(fds, 3);
		return -1;
	}
	chomp(res->err);
	close_fds(fds, 3);
	if (WIFEXITED(status))
		res->status = WEXITSTATUS(status);
	else if (WIFSIGNALED(status))
		res->status = 128 + WTERMSIG(status);
	else
		res->status = 255;
	return 0;
}

void ld_rules_out_free(struct ld_rules_out *res)
{
	free(res->out);
	free(res->err);
	res->out = NULL;
	res->err = NULL;
	res->out_len = 0;
}
