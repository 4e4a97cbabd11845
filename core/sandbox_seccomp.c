// SPDX-License-Identifier: MIT
/*
 * sandbox_seccomp.c - the system calls the policy process may still make.
 *
 * Everything it needs is open before the filter is loaded; afterwards it
 * reads and writes descriptors it holds, waits, keeps time, manages its
 * own memory, and opens files for reading (its policy and modules on
 * reload; the unprivileged user's file permissions apply). It cannot open
 * a file for writing, create, rename or delete one, open a socket, fork,
 * exec, signal another process or map memory writable and executable at
 * once. docs/sandbox.md explains each group.
 */
#include "sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

/* One argument comparison (libseccomp's SCMP_An macros leave datum_b out,
 * which clang's -Wmissing-field-initializers rejects). */
static struct scmp_arg_cmp arg_cmp(unsigned arg, enum scmp_compare op, scmp_datum_t a,
				   scmp_datum_t b)
{
	return (struct scmp_arg_cmp){ .arg = arg, .op = op, .datum_a = a, .datum_b = b };
}

static struct scmp_arg_cmp arg_eq(unsigned arg, scmp_datum_t v)
{
	return arg_cmp(arg, SCMP_CMP_EQ, v, 0);
}

/* (argument & mask) == value */
static struct scmp_arg_cmp arg_masked(unsigned arg, scmp_datum_t mask, scmp_datum_t v)
{
	return arg_cmp(arg, SCMP_CMP_MASKED_EQ, mask, v);
}

/* Allowed whatever their arguments. */
static const char *const plain[] = {
	/* descriptors already open: the queue's netlink socket, the control
	 * socket (send/recv are sendto/recvfrom), raw sockets, timerfd, stdio */
	"read", "readv", "pread64", "write", "writev", "pwrite64", "close", "lseek",
	"recvmsg", "recvmmsg", "recvfrom", "sendmsg", "sendmmsg", "sendto", "getsockopt",
	"getsockname", "ftruncate", "fsync", "fdatasync",
	/* the event loop */
	"epoll_wait", "epoll_pwait", "epoll_pwait2", "epoll_ctl", "timerfd_settime",
	"timerfd_gettime", "poll", "ppoll",
	/* file metadata and reading directories (policy checks, module search) */
	"fstat", "newfstatat", "stat", "lstat", "statx", "fstatfs", "statfs", "access",
	"faccessat", "faccessat2", "readlink", "readlinkat", "getdents64", "getdents", "getcwd", "fcntl",
	/* memory: LuaJIT's heap and machine code, malloc, thread stacks (see mmap below) */
	"munmap", "mremap", "madvise", "brk",
	/* time */
	"clock_gettime", "clock_getres", "gettimeofday", "time", "nanosleep", "clock_nanosleep",
	/* signals of its own: the blocked set, returning from a handler, abort() */
	"rt_sigprocmask", "rt_sigreturn", "rt_sigaction", "sigaltstack", "restart_syscall",
	/* identity and limits, read only */
	"getpid", "gettid", "getppid", "getuid", "geteuid", "getgid", "getegid", "getresuid",
	"getresgid", "getgroups", "uname", "sysinfo", "getrusage", "times", "getrandom",
	"sched_yield", "sched_getaffinity", "futex", "set_robust_list", "rseq", "capget",
	/* ending (the worker has no children to wait for) */
	"exit", "exit_group",
};

/* LeakSanitizer's exit-time scan: a tracer thread that stops the process. */
static const char *const sanitizer[] = {
	"clone", "clone3", "ptrace", "prctl", "process_vm_readv", "sched_getparam",
	"sched_getscheduler", "kill", "tgkill", "tkill",
};

static int add_plain(scmp_filter_ctx ctx, const char *const *names, size_t n, char *err,
		     size_t errlen)
{
	for (size_t i = 0; i < n; i++) {
		int nr = seccomp_syscall_resolve_name(names[i]);
		int rc;

		if (nr == __NR_SCMP_ERROR)
			continue;   /* not a system call on this architecture */
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
		if (rc < 0 && rc != -EEXIST) {
			snprintf(err, errlen, "seccomp: allowing %s: %s", names[i], strerror(-rc));
			return -1;
		}
	}
	return 0;
}

/* Open for reading only: no write access, no create/truncate/append, no O_TMPFILE. */
static int add_open_readonly(scmp_filter_ctx ctx)
{
	/* __O_TMPFILE includes O_DIRECTORY: take only its own bit */
	const scmp_datum_t bad = O_ACCMODE | O_CREAT | O_TRUNC | O_APPEND |
				 (__O_TMPFILE & ~(scmp_datum_t)O_DIRECTORY);
	int rc;

	rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(openat), 1,
			      arg_masked(2, bad, O_RDONLY));
	if (rc == 0 && seccomp_syscall_resolve_name("open") != __NR_SCMP_ERROR)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, seccomp_syscall_resolve_name("open"), 1,
				      arg_masked(1, bad, O_RDONLY));
	return rc;
}

/* Memory may be writable or executable, never both at once (LuaJIT flips
 * its machine code pages between the two with mprotect). */
static int add_wx(scmp_filter_ctx ctx)
{
	const scmp_datum_t wx = PROT_WRITE | PROT_EXEC;
	const scmp_datum_t ok[] = { 0, PROT_WRITE, PROT_EXEC };
	int rc = 0;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]) && rc == 0; i++) {
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mmap), 1,
				      arg_masked(2, wx, ok[i]));
		if (rc == 0)
			rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mprotect), 1,
					      arg_masked(2, wx, ok[i]));
	}
	return rc;
}

/* Argument-checked calls: ioctl only asks (isatty, bytes pending, non-blocking,
 * an interface's name and MTU),
 * signals only to itself (abort, raise), limits only read. */
static int add_checked(scmp_filter_ctx ctx)
{
	const scmp_datum_t pid = (scmp_datum_t)getpid();
	/* terminal and socket queries; issue 17: a taken-over GSO copy is cut to
	 * its output device's MTU, read (never set) by ifindex on a socket
	 * opened before the sandbox */
	static const unsigned long ioctls[] = { TCGETS, FIONREAD, FIONBIO, SIOCGIFNAME,
						SIOCGIFMTU };
	int rc = 0;

	for (size_t i = 0; i < sizeof(ioctls) / sizeof(ioctls[0]) && rc == 0; i++)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
				      arg_eq(1, ioctls[i]));
#ifndef LD_SANITIZED   /* the sanitizer list allows them whole */
	if (rc == 0)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 1,
				      arg_eq(0, pid));
	if (rc == 0)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(kill), 1,
				      arg_eq(0, pid));
#else
	(void)pid;
#endif
	if (rc == 0)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(prlimit64), 2,
				      arg_eq(0, 0), arg_eq(2, 0));
	if (rc == 0)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(getrlimit), 0);
	return rc;
}

int ld_sandbox_seccomp(int deny, char *err, size_t errlen)
{
	uint32_t def = deny == LD_SANDBOX_DENY_KILL ? SCMP_ACT_KILL_PROCESS : SCMP_ACT_ERRNO(EPERM);
	scmp_filter_ctx ctx;
	int rc;

	/* debugging a missing call: allow it, and let the kernel log it (audit) */
	if (getenv("LUADIVERT_SECCOMP_LOG"))
		def = SCMP_ACT_LOG;
	ctx = seccomp_init(def);
	if (!ctx) {
		snprintf(err, errlen, "seccomp_init failed");
		return -1;
	}
	/* a binary tree instead of a linear list: the hot path's calls
	 * (recvmmsg, sendmsg, epoll_wait) need not wait behind the rest */
	rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
	if (rc < 0)
		goto fail;
	if (add_plain(ctx, plain, sizeof(plain) / sizeof(plain[0]), err, errlen) < 0)
		goto fail_quiet;
#ifdef LD_SANITIZED
	if (add_plain(ctx, sanitizer, sizeof(sanitizer) / sizeof(sanitizer[0]), err, errlen) < 0)
		goto fail_quiet;
#else
	(void)sanitizer;
#endif
	rc = add_open_readonly(ctx);
	if (rc == 0)
		rc = add_wx(ctx);
	if (rc == 0)
		rc = add_checked(ctx);
	if (rc < 0)
		goto fail;
	rc = seccomp_load(ctx);
	if (rc < 0)
		goto fail;
	seccomp_release(ctx);
	return 0;
fail:
	snprintf(err, errlen, "seccomp: %s", strerror(-rc));
fail_quiet:
	seccomp_release(ctx);
	return -1;
}
