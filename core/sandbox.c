// SPDX-License-Identifier: MIT
/*
 * sandbox.c - user switch, capabilities and NoNewPrivs for the process that
 * runs policy code (the seccomp list is in sandbox_seccomp.c).
 *
 * Order matters:
 *   1. drop every capability but NET_ADMIN/NET_RAW from the bounding set
 *      (needs CAP_SETPCAP, so before anything else is dropped);
 *   2. PR_SET_KEEPCAPS, then groups, gid, uid: the permitted set survives
 *      the uid change, the effective set is cleared by it;
 *   3. capset: permitted = effective = {NET_ADMIN, NET_RAW}, nothing
 *      inheritable, no ambient;
 *   4. NoNewPrivs, then seccomp (libseccomp would set NoNewPrivs too).
 * Raw capset(2) rather than libcap: two 32-bit words, no dependency.
 */
#include "sandbox.h"

#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "log.h"

#define KEEP_CAPS ((1ull << CAP_NET_ADMIN) | (1ull << CAP_NET_RAW))

int ld_sandbox_user(const struct ld_sandbox_cfg *cfg, uid_t *uid, gid_t *gid, char *name,
		    size_t namelen, char *err, size_t errlen)
{
	const char *want = cfg->user;
	struct passwd *pw;

	errno = 0;
	if (want) {
		pw = getpwnam(want);
	} else {
		want = LD_SANDBOX_USER_DEFAULT;
		pw = getpwnam(want);
		if (!pw) {
			want = LD_SANDBOX_USER_FALLBACK;
			pw = getpwnam(want);
		}
	}
	if (!pw) {
		snprintf(err, errlen, "--user %s: %s", want,
			 errno ? strerror(errno) : "no such user");
		return -1;
	}
	if (pw->pw_uid == 0) {
		snprintf(err, errlen, "--user %s: the policy must not run as root", want);
		return -1;
	}
	*uid = pw->pw_uid;
	*gid = pw->pw_gid;
	snprintf(name, namelen, "%s", want);
	return 0;
}

static int capset_keep(void)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[2];

	memset(data, 0, sizeof(data));
	data[0].effective = data[0].permitted = (uint32_t)KEEP_CAPS;
	data[1].effective = data[1].permitted = (uint32_t)(KEEP_CAPS >> 32);
	return (int)syscall(SYS_capset, &hdr, data);
}

/* Read back what we hold: exactly KEEP_CAPS, permitted and effective. */
static int caps_are_kept(void)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[2];
	uint64_t eff, prm, inh;

	if (syscall(SYS_capget, &hdr, data) < 0)
		return 0;
	eff = data[0].effective | (uint64_t)data[1].effective << 32;
	prm = data[0].permitted | (uint64_t)data[1].permitted << 32;
	inh = data[0].inheritable | (uint64_t)data[1].inheritable << 32;
	return eff == KEEP_CAPS && prm == KEEP_CAPS && inh == 0;
}

static int drop_bounding_set(char *err, size_t errlen)
{
	for (int cap = 0; cap < 64; cap++) {
		if (KEEP_CAPS & (1ull << cap))
			continue;
		if (prctl(PR_CAPBSET_DROP, (unsigned long)cap, 0UL, 0UL, 0UL) < 0) {
			if (errno == EINVAL)   /* past the kernel's last capability */
				break;
			/* not root and no CAP_SETPCAP (--user as ourselves): the bounding
			 * set only limits execve, which NoNewPrivs and seccomp close */
			if (errno == EPERM && geteuid() != 0)
				break;
			snprintf(err, errlen, "dropping capability %d from the bounding set: %s", cap,
				 strerror(errno));
			return -1;
		}
	}
	return 0;
}

static int switch_user(uid_t uid, gid_t gid, const char *name, char *err, size_t errlen)
{
	if (prctl(PR_SET_KEEPCAPS, 1UL, 0UL, 0UL, 0UL) < 0) {
		snprintf(err, errlen, "PR_SET_KEEPCAPS: %s", strerror(errno));
		return -1;
	}
	if (setgroups(0, NULL) < 0 || setresgid(gid, gid, gid) < 0) {
		snprintf(err, errlen, "switching to the group of %s: %s", name, strerror(errno));
		return -1;
	}
	if (setresuid(uid, uid, uid) < 0) {
		snprintf(err, errlen, "switching to user %s: %s", name, strerror(errno));
		return -1;
	}
	if (prctl(PR_SET_KEEPCAPS, 0UL, 0UL, 0UL, 0UL) < 0) {
		snprintf(err, errlen, "PR_SET_KEEPCAPS: %s", strerror(errno));
		return -1;
	}
	return 0;
}

int ld_sandbox_apply(const struct ld_sandbox_cfg *cfg, char *err, size_t errlen)
{
	char name[64];
	int pdeathsig = 0;
	uid_t uid;
	gid_t gid;

	if (cfg->disabled)
		return 0;
	if (ld_sandbox_user(cfg, &uid, &gid, name, sizeof(name), err, errlen) < 0)
		return -1;
	if (geteuid() != 0 && geteuid() != uid) {
		snprintf(err, errlen, "switching to user %s needs root (running as uid %ld)", name,
			 (long)geteuid());
		return -1;
	}
	/* the kernel clears the parent-death signal when the euid changes:
	 * read it now, set it again after the switch (before seccomp, which
	 * refuses prctl) */
	if (prctl(PR_GET_PDEATHSIG, &pdeathsig, 0UL, 0UL, 0UL) < 0) {
		snprintf(err, errlen, "PR_GET_PDEATHSIG: %s", strerror(errno));
		return -1;
	}
	if (drop_bounding_set(err, errlen) < 0)
		return -1;
	if (geteuid() != uid && switch_user(uid, gid, name, err, errlen) < 0)
		return -1;
	if (pdeathsig && prctl(PR_SET_PDEATHSIG, (unsigned long)pdeathsig, 0UL, 0UL, 0UL) < 0) {
		snprintf(err, errlen, "PR_SET_PDEATHSIG: %s", strerror(errno));
		return -1;
	}
	if (capset_keep() < 0) {
		snprintf(err, errlen, "keeping CAP_NET_ADMIN and CAP_NET_RAW: %s", strerror(errno));
		return -1;
	}
	/* ambient capabilities would survive an execve; there is none, but be sure */
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0UL, 0UL, 0UL) < 0 && errno != EINVAL) {
		snprintf(err, errlen, "clearing ambient capabilities: %s", strerror(errno));
		return -1;
	}
	if (!caps_are_kept() || getuid() != uid || geteuid() != uid) {
		snprintf(err, errlen, "the capability or user switch did not take effect");
		return -1;
	}
#ifdef LD_SANITIZED
	if (prctl(PR_SET_DUMPABLE, 1UL, 0UL, 0UL, 0UL) < 0)
		ld_log("sandbox: PR_SET_DUMPABLE: %s (leak checks at exit may fail)",
		       strerror(errno));
#endif
	if (prctl(PR_SET_NO_NEW_PRIVS, 1UL, 0UL, 0UL, 0UL) < 0) {
		snprintf(err, errlen, "PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
		return -1;
	}
	return ld_sandbox_seccomp(cfg->deny, err, errlen);
}
