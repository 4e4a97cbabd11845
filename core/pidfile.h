/* SPDX-License-Identifier: MIT */
/*
 * pidfile.h - the pid file `luadivert reload` finds an instance by.
 *
 * "<pid>\nqueue <N>\n", written with O_NOFOLLOW (a symlink planted at the
 * path is refused, not followed), by default in a 0700 directory and named
 * after the network namespace: queue numbers are per namespace, so two
 * namespaces' instances on queue 0 must not share a file. A pid file is
 * only a hint: before signalling, reload checks that the pid holds the
 * queue's lock (rules_lock.c) in this namespace, so a stale file whose pid
 * was reused by another program is refused.
 */
#ifndef LD_PIDFILE_H
#define LD_PIDFILE_H

#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

/**
 * ld_default_pidfile() - the pid file of the instance on @queue in this
 * network namespace: <dir>/net<inode>-queue-<queue>.pid, in the directory
 * of the queue's lock (ld_run_dir(): $LUADIVERT_RUN_DIR, /run/luadivert, ...)
 * @queue: queue number
 * @out: receives the path
 * @outlen: size of @out
 */
void ld_default_pidfile(uint32_t queue, char *out, unsigned long outlen);

/**
 * ld_pidfile_write() - write our pid and queue to @path
 * @path: the pid file
 * @queue: our queue number
 *
 * A missing directory is created 0700. Return: 0, or -1 with errno set
 * (ELOOP when @path is a symlink).
 */
int ld_pidfile_write(const char *path, uint32_t queue);

/**
 * ld_pidfile_read() - read a pid file
 * @path: the pid file (a symlink is refused)
 * @pid: receives the pid
 * @queue: receives the queue, or keeps its value when the file has none
 *
 * Return: 0, or -1 with errno set (EINVAL: no pid in it).
 */
int ld_pidfile_read(const char *path, pid_t *pid, uint32_t *queue);

/**
 * ld_open_nofollow() - open a file for writing, refusing a symlink
 * @path: the file, created 0644 or truncated
 *
 * Return: a FILE, or NULL with errno set.
 */
FILE *ld_open_nofollow(const char *path);

#endif /* LD_PIDFILE_H */
