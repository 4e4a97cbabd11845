/* SPDX-License-Identifier: MIT */
/*
 * sandbox.h - what the process that runs policy code gives up before it
 * touches a packet: root (an unprivileged user), every capability but
 * CAP_NET_ADMIN (verdicts) and CAP_NET_RAW (duplicates), the right to gain
 * privileges again (NoNewPrivs), and every system call outside an
 * allow-list (seccomp). docs/sandbox.md says what is left and why.
 *
 * The descriptors it needs (the queue's netlink socket, the raw sockets,
 * epoll, timerfd, signalfd, inotify, the reload status file) must be open
 * before: afterwards it can open files for reading only and no sockets.
 */
#ifndef LD_SANDBOX_H
#define LD_SANDBOX_H

#include <stddef.h>
#include <sys/types.h>

/*
 * LD_SANITIZED: an ASan build. LeakSanitizer reads /proc/self and ptraces
 * the process at exit, which a non-dumpable process (any setuid'd one)
 * forbids, and needs system calls the allow-list does not otherwise give.
 */
#if defined(__SANITIZE_ADDRESS__)
#define LD_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LD_SANITIZED 1
#endif
#endif

/* What a system call outside the allow-list gets. */
enum ld_sandbox_deny {
	LD_SANDBOX_DENY_ERRNO = 0,  /* fails with EPERM: the caller sees an error */
	LD_SANDBOX_DENY_KILL = 1,   /* the kernel kills the process (SIGSYS) */
};

#define LD_SANDBOX_USER_DEFAULT  "luadivert"  /* used when it exists, */
#define LD_SANDBOX_USER_FALLBACK "nobody"     /* else this one */

struct ld_sandbox_cfg {
	const char *user;   /* run as this user; NULL: luadivert if it exists, else nobody */
	int deny;           /* enum ld_sandbox_deny */
	int disabled;       /* 1: apply nothing (--no-sandbox; for debugging only) */
};

/**
 * ld_sandbox_user() - resolve the user the sandbox switches to
 * @cfg: sandbox configuration
 * @uid: receives the user id
 * @gid: receives its primary group
 * @name: receives the name actually used (the default resolved)
 * @namelen: size of @name
 * @err: receives the reason on failure
 * @errlen: size of @err
 *
 * Return: 0, or -1 when the user does not exist or is root.
 */
int ld_sandbox_user(const struct ld_sandbox_cfg *cfg, uid_t *uid, gid_t *gid, char *name,
		    size_t namelen, char *err, size_t errlen);

/**
 * ld_sandbox_apply() - drop to the unprivileged user, keep CAP_NET_ADMIN and
 * CAP_NET_RAW only, set NoNewPrivs and load the seccomp allow-list
 * @cfg: sandbox configuration
 * @err: receives the reason on failure
 * @errlen: size of @err
 *
 * Irreversible. On failure the process may be half-way (e.g. already not
 * root): the caller must stop, not run the policy. A parent-death signal
 * (PR_SET_PDEATHSIG) survives it (the kernel would clear it on the user
 * switch); the caller checks getppid() afterwards for a parent that died
 * in between.
 * Return: 0, or -1.
 */
int ld_sandbox_apply(const struct ld_sandbox_cfg *cfg, char *err, size_t errlen);

/**
 * ld_sandbox_seccomp() - load the seccomp allow-list (part of ld_sandbox_apply)
 * @deny: enum ld_sandbox_deny, for calls outside the list
 * @err: receives the reason on failure
 * @errlen: size of @err
 *
 * Return: 0, or -1.
 */
int ld_sandbox_seccomp(int deny, char *err, size_t errlen);

#endif /* LD_SANDBOX_H */
