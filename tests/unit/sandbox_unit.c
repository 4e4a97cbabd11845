// SPDX-License-Identifier: MIT
/*
 * sandbox_unit.c - the policy-file checks, size parsing, and (as root) what
 * ld_sandbox_apply() leaves a process: a child applies it, then tries what
 * the seccomp list must refuse (a socket, opening for writing, memory both
 * writable and executable) and what it must allow (reading a file), and
 * reports through its exit status. Built with ASan+UBSan (Makefile:
 * build/unit/). Prints "N passed, N failed".
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../core/cli.c"
#include "../../core/log.c"
#include "../../core/policy_files.c"
#include "../../core/sandbox.c"
#include "../../core/sandbox_seccomp.c"

static int passed, failed;

#define CHECK(cond) do { \
	if (cond) { passed++; } \
	else { failed++; fprintf(stderr, "not ok %s:%d: %s\n", __FILE__, __LINE__, #cond); } \
} while (0)

static void test_policy_files(void)
{
	char dir[] = "/tmp/ld-sandbox-unit-XXXXXX", file[64], err[512];
	uid_t me = geteuid();
	int fd;

	if (!mkdtemp(dir)) {
		failed++;
		return;
	}
	chmod(dir, 0755);
	snprintf(file, sizeof(file), "%s/p.lua", dir);
	fd = open(file, O_WRONLY | O_CREAT, 0644);
	CHECK(fd >= 0);
	close(fd);
	chmod(file, 0644);
	CHECK(ld_policy_file_check(file, 0, me, err, sizeof(err)) == 0);
	CHECK(ld_policy_file_check(dir, 1, me, err, sizeof(err)) == 0);
	chmod(file, 0666);
	CHECK(ld_policy_file_check(file, 0, me, err, sizeof(err)) < 0 &&
	      strstr(err, "world-writable") && strstr(err, "p.lua"));
	chmod(file, 0664);
	CHECK(ld_policy_file_check(file, 0, me, err, sizeof(err)) < 0 &&
	      strstr(err, "group-writable"));
	chmod(file, 0644);
	chmod(dir, 0777);
	CHECK(ld_policy_file_check(dir, 1, me, err, sizeof(err)) < 0 &&
	      strstr(err, "module directory") && strstr(err, "world-writable"));
	/* the file itself is fine, but the directory above it is not */
	CHECK(ld_policy_file_check(file, 0, me, err, sizeof(err)) < 0 &&
	      strstr(err, "above it"));
	chmod(dir, 01777);   /* sticky: fine above a file, not as a module directory */
	CHECK(ld_policy_file_check(file, 0, me, err, sizeof(err)) == 0);
	CHECK(ld_policy_file_check(dir, 1, me, err, sizeof(err)) < 0);
	chmod(dir, 0755);
	if (me == 0) {
		CHECK(chown(file, 65534, 65534) == 0);
		CHECK(ld_policy_file_check(file, 0, me, err, sizeof(err)) < 0 &&
		      strstr(err, "owned by"));
		/* the daemon's user (not root) may own it */
		CHECK(ld_policy_file_check(file, 0, 65534, err, sizeof(err)) == 0);
	}
	/* a module directory that does not exist holds nothing */
	CHECK(ld_policy_file_check("/nonexistent-ld-dir", 1, me, err, sizeof(err)) == 0);
	CHECK(ld_policy_file_check("/nonexistent-ld-file.lua", 0, me, err, sizeof(err)) < 0);
	unlink(file);
	rmdir(dir);
}

enum { R_OK_ALL = 0, R_APPLY = 10, R_UID, R_SOCKET, R_WRITE, R_READ, R_WX, R_STATUS };

/* In a child: apply the sandbox and try things. Exit status: the first failure. */
static int __attribute__((noreturn)) sandboxed_child(void)
{
	struct ld_sandbox_cfg cfg = { .user = "nobody" };
	char err[512], status[4096];
	ssize_t n;
	void *p;
	int fd;

	if (ld_sandbox_apply(&cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "apply: %s\n", err);
		_exit(R_APPLY);
	}
	if (getuid() != 65534 || geteuid() != 65534)
		_exit(R_UID);
	if (socket(AF_INET, SOCK_DGRAM, 0) >= 0 || errno != EPERM)
		_exit(R_SOCKET);
	if (open("/tmp/ld-sandbox-unit-write", O_WRONLY | O_CREAT, 0644) >= 0 || errno != EPERM)
		_exit(R_WRITE);
	fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		_exit(R_READ);
	n = read(fd, status, sizeof(status) - 1);
	close(fd);
	if (n <= 0)
		_exit(R_READ);
	status[n] = '\0';
	if (!strstr(status, "NoNewPrivs:\t1") || !strstr(status, "Seccomp:\t2") ||
	    !strstr(status, "CapEff:\t0000000000003000") ||
	    !strstr(status, "CapPrm:\t0000000000003000"))
		_exit(R_STATUS);
	p = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p != MAP_FAILED || errno != EPERM)
		_exit(R_WX);
	_exit(R_OK_ALL);
}

static void test_apply(void)
{
	int st = -1;
	pid_t pid;

	if (geteuid() != 0) {
		printf("skip: ld_sandbox_apply needs root\n");
		return;
	}
	fflush(NULL);
	pid = fork();
	if (pid == 0)
		sandboxed_child();
	CHECK(pid > 0 && waitpid(pid, &st, 0) == pid);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != R_OK_ALL)
		fprintf(stderr, "sandboxed child: status %d (see the R_ codes)\n",
			WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == R_OK_ALL);
	CHECK(access("/tmp/ld-sandbox-unit-write", F_OK) < 0);
}

static void test_user(void)
{
	struct ld_sandbox_cfg cfg = { .user = "root" };
	char err[256], name[64];
	uid_t uid;
	gid_t gid;

	CHECK(ld_sandbox_user(&cfg, &uid, &gid, name, sizeof(name), err, sizeof(err)) < 0 &&
	      strstr(err, "must not run as root"));
	cfg.user = "no-such-user-ld";
	CHECK(ld_sandbox_user(&cfg, &uid, &gid, name, sizeof(name), err, sizeof(err)) < 0 &&
	      strstr(err, "no-such-user-ld"));
	cfg.user = NULL;   /* luadivert, else nobody */
	CHECK(ld_sandbox_user(&cfg, &uid, &gid, name, sizeof(name), err, sizeof(err)) == 0 &&
	      (strcmp(name, "luadivert") == 0 || strcmp(name, "nobody") == 0) && uid != 0);
}

int main(void)
{
	test_policy_files();
	test_user();
	test_apply();
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
