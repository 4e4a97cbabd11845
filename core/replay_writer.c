// SPDX-License-Identifier: MIT
/* replay_writer.c - pcap output with unsigned seconds and link-type bits. */
#include "replay_writer.h"

#include <errno.h>
#include <pcap/pcap.h>
#include <stdlib.h>
#include <string.h>

enum {
	PCAP_HDR_LEN = 24,      /* magic, version, zone, sigfigs, snaplen, linktype */
	PCAP_LINKTYPE_AT = 20,
};

#define NS_PER_SEC 1000000000ull

/* The 24-byte file header libpcap would write for @dlt (host byte order). */
static int libpcap_header(int dlt, uint32_t snaplen, int nano, uint8_t hdr[PCAP_HDR_LEN])
{
	char *mem = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&mem, &len);
	pcap_t *dead;
	pcap_dumper_t *d;
	int rc = -1;

	if (!m)
		return -1;
	dead = pcap_open_dead_with_tstamp_precision(dlt, (int)snaplen,
			nano ? PCAP_TSTAMP_PRECISION_NANO : PCAP_TSTAMP_PRECISION_MICRO);
	d = dead ? pcap_dump_fopen(dead, m) : NULL;
	if (d) {
		pcap_dump_close(d);      /* closes m: mem/len are final */
		m = NULL;
		if (len >= PCAP_HDR_LEN) {
			memcpy(hdr, mem, PCAP_HDR_LEN);
			rc = 0;
		}
	}
	if (m)
		fclose(m);
	if (dead)
		pcap_close(dead);
	free(mem);
	return rc;
}

int ld_pcap_out_open(struct ld_pcap_out *o, const char *path, int dlt, uint32_t ext,
		     uint32_t snaplen, int nano, char *err, size_t errlen)
{
	uint8_t hdr[PCAP_HDR_LEN];
	uint32_t lt;

	memset(o, 0, sizeof(*o));
	o->nano = nano;
	if (libpcap_header(dlt, snaplen, nano, hdr) < 0) {
		snprintf(err, errlen, "cannot make a pcap header for link type %d", dlt);
		return -1;
	}
	memcpy(&lt, hdr + PCAP_LINKTYPE_AT, sizeof(lt));
	lt |= ext;
	memcpy(hdr + PCAP_LINKTYPE_AT, &lt, sizeof(lt));
	o->own = strcmp(path, "-") != 0;
	o->f = o->own ? fopen(path, "wbe") : stdout;
	if (!o->f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fwrite(hdr, sizeof(hdr), 1, o->f) != 1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

int ld_pcap_out_write(struct ld_pcap_out *o, uint64_t ts_ns, const uint8_t *data,
		      uint32_t caplen, uint32_t wirelen)
{
	uint64_t sec = ts_ns / NS_PER_SEC, frac = ts_ns % NS_PER_SEC;
	uint32_t rec[4];

	if (sec > UINT32_MAX) {
		errno = EOVERFLOW;
		return -1;
	}
	rec[0] = (uint32_t)sec;
	rec[1] = (uint32_t)(o->nano ? frac : frac / 1000);
	rec[2] = caplen;
	rec[3] = wirelen;
	if (fwrite(rec, sizeof(rec), 1, o->f) != 1 ||
	    (caplen && fwrite(data, caplen, 1, o->f) != 1))
		return -1;
	return 0;
}

int ld_pcap_out_close(struct ld_pcap_out *o)
{
	int bad;

	if (!o->f)
		return 0;
	/* a write error that a later flush hid still shows in ferror() */
	bad = ferror(o->f) != 0;
	if (o->own ? fclose(o->f) : fflush(o->f))
		bad = 1;
	o->f = NULL;
	return bad ? -1 : 0;
}
