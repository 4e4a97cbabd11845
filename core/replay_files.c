// SPDX-License-Identifier: MIT
/*
 * replay_files.c - the files of `luadivert replay` (replay_priv.h): the
 * input capture, whose first bytes tell whether the output needs
 * nanoseconds (a pipe's are served again through a stdio cookie), and the
 * output capture and --verdicts file.
 */
#include "replay_priv.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

static uint32_t rd32(const uint8_t *p, int swap)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return swap ? __builtin_bswap32(v) : v;
}

static uint16_t rd16(const uint8_t *p, int swap)
{
	uint16_t v;

	memcpy(&v, p, sizeof(v));
	return swap ? __builtin_bswap16(v) : v;
}

/*
 * pcapng: does the first interface record (IDB) ask for a resolution finer
 * than a microsecond? Blocks: type(4) length(4) body length(4); the SHB body
 * starts with the byte-order magic, the IDB body with linktype(2)
 * reserved(2) snaplen(4) and then options code(2) len(2) value (padded to 4).
 */
static int rp_pcapng_nano(const uint8_t *b, size_t n)
{
	uint32_t shb_len, idb_len, off, end;
	int swap;

	if (n < 12)
		return 1;
	swap = rd32(b + 8, 0) != PCAPNG_BOM;
	shb_len = rd32(b + 4, swap);
	if (shb_len < 28 || (size_t)shb_len + 16 > n || rd32(b + shb_len, swap) != PCAPNG_IDB)
		return 1;  /* cannot tell: keep nanoseconds, which lose nothing */
	idb_len = rd32(b + shb_len + 4, swap);
	if ((size_t)shb_len + idb_len > n || idb_len < 20)
		return 1;
	off = shb_len + 16;
	end = shb_len + idb_len - 4;
	while (off + 4 <= end) {
		uint16_t code = rd16(b + off, swap), len = rd16(b + off + 2, swap);

		if (code == 0 || off + 4 + len > end)
			break;
		if (code == PCAPNG_TSRESOL && len >= 1) {
			uint8_t res = b[off + 4];

			/* high bit: a power of two, else a power of ten, negative */
			return res & 0x80 ? (res & 0x7f) > 20 : res > 6;
		}
		off += 4 + ((len + 3u) & ~3u);
	}
	return 0;  /* the default resolution is 10^-6 */
}

/*
 * A pipe cannot be rewound: the bytes read to look at its header are served
 * again through a stdio cookie, then the rest of the pipe.
 */
static ssize_t rp_peek_read(void *cookie, char *buf, size_t size)
{
	struct rp_peek *pk = cookie;
	size_t k;

	if (pk->pos < pk->n) {
		k = pk->n - pk->pos < size ? pk->n - pk->pos : size;
		memcpy(buf, pk->b + pk->pos, k);
		pk->pos += k;
		return (ssize_t)k;
	}
	k = fread(buf, 1, size, pk->src);
	return k == 0 && ferror(pk->src) ? -1 : (ssize_t)k;
}

static int rp_peek_close(void *cookie)
{
	struct rp_peek *pk = cookie;

	return pk->src == stdin ? 0 : fclose(pk->src);
}

/*
 * Should the output carry nanoseconds? Yes when the input does: a
 * nanosecond pcap, or a pcapng whose first interface has a finer
 * if_tsresol. *fp is rewound, or replaced by a cookie stream for a pipe.
 * Return: 1 or 0, or -1 on a read error (errno set).
 */
static int rp_input_nano(struct rp *r, FILE **fp)
{
	static const cookie_io_functions_t io = { .read = rp_peek_read, .close = rp_peek_close };
	struct rp_peek *pk = &r->peek;
	FILE *f = *fp, *c;
	uint32_t magic;
	int seekable = !fseeko(f, 0, SEEK_CUR);

	pk->n = fread(pk->b, 1, sizeof(pk->b), f);
	if (ferror(f) || (seekable && fseeko(f, 0, SEEK_SET)))
		return -1;
	if (!seekable) {
		pk->src = f;
		pk->pos = 0;
		c = fopencookie(pk, "rb", io);
		if (!c)
			return -1;
		*fp = c;
	}
	if (pk->n < 4)
		return 0;
	memcpy(&magic, pk->b, sizeof(magic));
	if (magic == PCAP_MAGIC_NS || magic == __builtin_bswap32(PCAP_MAGIC_NS))
		return 1;
	if (magic == PCAPNG_SHB) {
		r->pcapng = 1;
		return rp_pcapng_nano(pk->b, pk->n);
	}
	return 0;
}

int rp_open_input(struct rp *r)
{
	char errbuf[PCAP_ERRBUF_SIZE];
	struct stat sb;
	const char *name;
	int snap;

	r->in_file = strcmp(r->in_path, "-") ? fopen(r->in_path, "rb") : stdin;
	if (!r->in_file) {
		fprintf(stderr, "luadivert replay: %s: %s\n", r->in_path, strerror(errno));
		return -1;
	}
	if (!fstat(fileno(r->in_file), &sb) && S_ISREG(sb.st_mode))
		r->in_size = sb.st_size;
	r->nano = rp_input_nano(r, &r->in_file);
	if (r->nano < 0) {
		fprintf(stderr, "luadivert replay: %s: %s\n", r->in_path, strerror(errno));
		if (r->in_file != stdin && fclose(r->in_file))
			fprintf(stderr, "luadivert replay: %s: %s\n", r->in_path, strerror(errno));
		r->in_file = NULL;
		return -1;
	}
	errbuf[0] = 0;
	r->in = pcap_fopen_offline_with_tstamp_precision(r->in_file, PCAP_TSTAMP_PRECISION_NANO,
							  errbuf);
	if (!r->in) {
		fprintf(stderr, "luadivert replay: %s: not a readable capture: %s\n", r->in_path,
			errbuf);
		if (r->in_file != stdin && fclose(r->in_file))
			fprintf(stderr, "luadivert replay: %s: %s\n", r->in_path, strerror(errno));
		r->in_file = NULL;
		return -1;
	}
	r->in_file = NULL;  /* libpcap owns it now */
	r->dlt = pcap_datalink(r->in);
	if (!ld_link_supported(r->dlt)) {
		name = pcap_datalink_val_to_name(r->dlt);
		fprintf(stderr, "luadivert replay: %s: link type %d (%s) is not supported; replay reads "
			"Ethernet (with VLAN tags), raw IP, Linux cooked (SLL, SLL2), BSD loopback, "
			"PPP, NFLOG and Cisco HDLC captures\n", r->in_path, r->dlt, name ? name : "unknown");
		return -1;
	}
	snap = pcap_snapshot(r->in);
	r->snap_out = r->snaplen > 0 ? (uint32_t)r->snaplen : snap > 0 ? (uint32_t)snap : LD_PACKET_MAX;
	return 0;
}

/* Refuse to truncate the file we are about to read. */
static int rp_same_file(const char *a, const char *b)
{
	struct stat sa, sb;

	if (!strcmp(a, "-") || !strcmp(b, "-"))
		return 0;
	if (stat(a, &sa) || stat(b, &sb))
		return 0;
	return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

int rp_open_output(struct rp *r)
{
	if (rp_same_file(r->in_path, r->out_path)) {
		fprintf(stderr, "luadivert replay: %s: the output would overwrite the input\n",
			r->out_path);
		return -1;
	}
	char err[4200];

	/* the input's link-type FCS/flag bits go to the output too */
	if (ld_pcap_out_open(&r->out, r->out_path, r->dlt, (uint32_t)pcap_datalink_ext(r->in),
			     r->snap_out, r->nano, err, sizeof(err)) < 0) {
		fprintf(stderr, "luadivert replay: %s\n", err);
		return -1;
	}
	if (r->verdicts_path) {
		r->vf = strcmp(r->verdicts_path, "-") ? fopen(r->verdicts_path, "w") : stdout;
		if (!r->vf) {
			fprintf(stderr, "luadivert replay: %s: %s\n", r->verdicts_path, strerror(errno));
			return -1;
		}
		fputs("# record verdict mark len new_len hold_ns dup\n", r->vf);
	}
	return 0;
}
