/* SPDX-License-Identifier: MIT */
/*
 * keeper.h - a small privileged child that does, at exit, what the
 * sandboxed daemon no longer may: remove the firewall rules (iptables as
 * root) and delete the pid, status and lock files in a root-owned
 * directory.
 *
 * Interim: until the supervisor/worker split lands, the policy runs in the
 * main process, which sandboxes itself (core/sandbox.c) just before its
 * event loop. The supervisor will own these jobs and replace the keeper.
 *
 * The keeper does only what it is asked. When the daemon dies without
 * asking (kill -9, a crash) the keeper exits too and leaves everything as
 * today's kill -9 does: rules stay (the queue's bypass lets traffic
 * through) and `luadivert rules cleanup` removes them.
 */
#ifndef LD_KEEPER_H
#define LD_KEEPER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "rules.h"

struct ld_keeper {
	pid_t pid;       /* 0: not started */
	int cmd_fd;      /* daemon -> keeper: one command byte */
	int reply_fd;    /* keeper -> daemon: status byte + message */
};

/**
 * ld_keeper_start() - fork the keeper
 * @k: keeper (filled)
 * @rules: the rules to remove on request, or NULL (--no-rules)
 * @pidfile: pid file to delete at finish
 * @status: reload status file to delete at finish
 * @lock_fd: the queue's lock (ld_rules_lock()): released and deleted at finish
 * @queue: queue number (for the lock)
 * @err: receives the reason on failure
 * @errlen: size of @err
 *
 * Call it while still root, after the rules are installed and the files
 * written. The child closes every other descriptor (the queue's socket
 * among them: the queue must unbind when the daemon dies).
 * Return: 0, or -1.
 */
int ld_keeper_start(struct ld_keeper *k, const struct ld_rules_cfg *rules, const char *pidfile,
		    const char *status, int lock_fd, uint16_t queue, char *err, size_t errlen);

/**
 * ld_keeper_remove_rules() - have the keeper remove the rules, and wait
 * @k: keeper
 * @err: receives the reason on failure
 * @errlen: size of @err
 *
 * Return: 0, or -1 (rules may be left: `luadivert rules cleanup` removes them).
 */
int ld_keeper_remove_rules(struct ld_keeper *k, char *err, size_t errlen);

/**
 * ld_keeper_finish() - have the keeper delete the pid, status and lock
 * files, then reap it
 * @k: keeper
 */
void ld_keeper_finish(struct ld_keeper *k);

#endif /* LD_KEEPER_H */
