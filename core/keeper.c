// SPDX-License-Identifier: MIT
/*
 * keeper.c - the privileged child that removes rules and files at exit
 * for a sandboxed daemon (see keeper.h for why it exists and until when).
 *
 *   daemon ──'R'──► keeper: ld_rules_remove()  ──► status byte + message
 *   daemon ──'F'──► keeper: unlink pid, status, lock ──► status byte, exit
 *   EOF (the daemon died without 'F'): exit, touch nothing
 */
#include "keeper.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"

enum { KEEPER_MSG_MAX = 1024 };

/* Close every descriptor above stderr except the @n in @keep (sorted). */
static void close_others(const int *keep, int n)
{
	unsigned lo = 3;

	for (int i = 0; i < n; i++) {
		if ((unsigned)keep[i] > lo)
			close_range(lo, (unsigned)keep[i] - 1, 0);
		if ((unsigned)keep[i] + 1 > lo)
			lo = (unsigned)keep[i] + 1;
	}
	close_range(lo, ~0U, 0);
}

static void sort3(int *a)
{
	for (int i = 0; i < 3; i++)
		for (int j = i + 1; j < 3; j++)
			if (a[j] < a[i]) {
				int t = a[i];

				a[i] = a[j];
				a[j] = t;
			}
}

static void reply(int fd, int ok, const char *msg)
{
	char buf[KEEPER_MSG_MAX + 1];
	size_t n = strlen(msg);

	if (n > KEEPER_MSG_MAX - 1)
		n = KEEPER_MSG_MAX - 1;
	buf[0] = ok ? '0' : '1';
	memcpy(buf + 1, msg, n);
	if (write(fd, buf, n + 1) < 0)
		_exit(1);   /* the daemon is gone */
}

static void __attribute__((noreturn))
keeper_main(int cmd, int rep, const struct ld_rules_cfg *rules, const char *pidfile,
	    const char *status, int lock_fd, uint16_t queue)
{
	char err[KEEPER_MSG_MAX], c;
	ssize_t n;

	prctl(PR_SET_NAME, (unsigned long)"luadivert-keep", 0UL, 0UL, 0UL);
	for (;;) {
		n = read(cmd, &c, 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			_exit(0);
		if (c == 'R') {
			err[0] = '\0';
			if (rules && ld_rules_remove(rules, err, sizeof(err)) < 0)
				reply(rep, 0, err);
			else
				reply(rep, 1, "");
		} else if (c == 'F') {
			unlink(pidfile);
			unlink(status);
			ld_rules_unlock(lock_fd, queue);
			reply(rep, 1, "");
			_exit(0);
		}
	}
}

int ld_keeper_start(struct ld_keeper *k, const struct ld_rules_cfg *rules, const char *pidfile,
		    const char *status, int lock_fd, uint16_t queue, char *err, size_t errlen)
{
	int to_keeper[2], from_keeper[2];

	memset(k, 0, sizeof(*k));
	k->cmd_fd = k->reply_fd = -1;
	if (pipe2(to_keeper, O_CLOEXEC) < 0) {
		snprintf(err, errlen, "keeper pipe: %s", strerror(errno));
		return -1;
	}
	if (pipe2(from_keeper, O_CLOEXEC) < 0) {
		snprintf(err, errlen, "keeper pipe: %s", strerror(errno));
		close(to_keeper[0]);
		close(to_keeper[1]);
		return -1;
	}
	fflush(NULL);
	k->pid = fork();
	if (k->pid < 0) {
		snprintf(err, errlen, "fork: %s", strerror(errno));
		for (int i = 0; i < 2; i++) {
			close(to_keeper[i]);
			close(from_keeper[i]);
		}
		k->pid = 0;
		return -1;
	}
	if (k->pid == 0) {
		int keep[3] = { to_keeper[0], from_keeper[1], lock_fd };

		sort3(keep);
		close_others(keep, 3);
		keeper_main(to_keeper[0], from_keeper[1], rules, pidfile, status, lock_fd, queue);
	}
	close(to_keeper[0]);
	close(from_keeper[1]);
	k->cmd_fd = to_keeper[1];
	k->reply_fd = from_keeper[0];
	return 0;
}

/* Send @c, read the reply; 0 ok, -1 with @err set. */
static int ask(struct ld_keeper *k, char c, char *err, size_t errlen)
{
	char buf[KEEPER_MSG_MAX + 1];
	ssize_t n;

	if (!k->pid || write(k->cmd_fd, &c, 1) != 1) {
		snprintf(err, errlen, "the privileged keeper process is gone");
		return -1;
	}
	do
		n = read(k->reply_fd, buf, sizeof(buf) - 1);
	while (n < 0 && errno == EINTR);
	if (n <= 0) {
		snprintf(err, errlen, "the privileged keeper process did not answer");
		return -1;
	}
	buf[n] = '\0';
	if (buf[0] == '0')
		return 0;
	snprintf(err, errlen, "%s", buf + 1);
	return -1;
}

int ld_keeper_remove_rules(struct ld_keeper *k, char *err, size_t errlen)
{
	return ask(k, 'R', err, errlen);
}

void ld_keeper_finish(struct ld_keeper *k)
{
	char err[KEEPER_MSG_MAX];

	if (!k->pid)
		return;
	if (ask(k, 'F', err, sizeof(err)) < 0)
		ld_log("%s: pid and lock files may be left behind", err);
	close(k->cmd_fd);
	close(k->reply_fd);
	while (waitpid(k->pid, NULL, 0) < 0 && errno == EINTR)
		;
	k->pid = 0;
}
