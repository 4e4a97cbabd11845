// SPDX-License-Identifier: MIT
/*
 * divert_ifaddr.c - interface name and first IPv4 address by ifindex, for
 * the sockaddr_in a divert read fills in. Looked up with two ioctls and
 * cached for LD_IFINFO_TTL_NS, so the per-packet cost is a table look-up.
 */
#include "divert_int.h"

#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <pthread.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

enum {
	LD_IFINFO_SLOTS  = 64,                 /* interfaces remembered at once */
};

struct ifinfo {
	uint32_t ifindex;       /* 0: free */
	uint64_t when_ns;
	char     name[8];       /* truncated to 7 characters, as FreeBSD's sin_zero */
	struct in_addr addr;    /* INADDR_ANY when the interface has no IPv4 address */
};

static struct ifinfo cache[LD_IFINFO_SLOTS];
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;

static int ioctl_socket(void)
{
	static int fd = -1;

	if (fd < 0)
		fd = ld_divert_real.socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	return fd;
}

static void lookup(struct ifinfo *e, uint32_t ifindex)
{
	struct ifreq ifr;
	int fd = ioctl_socket();

	memset(e, 0, sizeof(*e));
	e->ifindex = ifindex;
	e->when_ns = ld_now_ns();
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_ifindex = (int)ifindex;
	if (fd < 0 || ioctl(fd, SIOCGIFNAME, &ifr) < 0)
		return;
	memcpy(e->name, ifr.ifr_name, sizeof(e->name) - 1);
	ifr.ifr_addr.sa_family = AF_INET;
	/* SIOCGIFADDR: the interface's primary IPv4 address (EADDRNOTAVAIL: none). */
	if (ioctl(fd, SIOCGIFADDR, &ifr) == 0)
		e->addr = ((struct sockaddr_in *)(void *)&ifr.ifr_addr)->sin_addr;
}

void ld_divert_ifinfo(uint32_t ifindex, char name[8], struct in_addr *addr)
{
	struct ifinfo *e = &cache[ifindex % LD_IFINFO_SLOTS];
	uint64_t now = ld_now_ns();

	memset(name, 0, 8);
	addr->s_addr = INADDR_ANY;
	if (!ifindex)
		return;
	pthread_mutex_lock(&cache_lock);
	if (e->ifindex != ifindex || now - e->when_ns > LD_IFINFO_TTL_NS)
		lookup(e, ifindex);
	memcpy(name, e->name, 8);
	*addr = e->addr;
	pthread_mutex_unlock(&cache_lock);
}
