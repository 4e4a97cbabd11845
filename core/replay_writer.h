/* SPDX-License-Identifier: MIT */
/*
 * replay_writer.h - the pcap file `luadivert replay` writes.
 *
 * libpcap's pcap_dump() cannot write what replay must keep of its input:
 * the link type's FCS/flag bits (pcap_open_dead() has no way to set them)
 * and time stamps from 2^31 s on (it stores the seconds as a signed
 * 32-bit number). This writer takes the file header from libpcap (which
 * knows how to turn a DLT_ into a LINKTYPE_ number), adds the bits, and
 * writes the records itself: seconds as the unsigned 32 bits the format
 * has, the wire length as given (0 included).
 */
#ifndef LD_REPLAY_WRITER_H
#define LD_REPLAY_WRITER_H

#include <stdint.h>
#include <stdio.h>

struct ld_pcap_out {
	FILE *f;
	int nano;          /* nanosecond time stamps */
	int own;           /* f is ours to close (not stdout) */
};

/**
 * ld_pcap_out_open() - create a pcap file and write its header
 * @o: writer to fill in
 * @path: file name, "-" for standard output
 * @dlt: the input's DLT_ link type (pcap_datalink())
 * @ext: its FCS/flag bits (pcap_datalink_ext())
 * @snaplen: snapshot length for the header
 * @nano: nanosecond time stamps
 * @err: receives a message on failure
 * @errlen: size of @err
 *
 * Return: 0, or -1.
 */
int ld_pcap_out_open(struct ld_pcap_out *o, const char *path, int dlt, uint32_t ext,
		     uint32_t snaplen, int nano, char *err, size_t errlen);

/**
 * ld_pcap_out_write() - append one record
 * @o: writer
 * @ts_ns: time stamp, ns since the epoch
 * @data: the bytes
 * @caplen: how many
 * @wirelen: length on the wire, written as given
 *
 * Return: 0, or -1 with errno EOVERFLOW when @ts_ns is 2^32 s or later
 * (2106-02-07: the format has 32 bits of seconds), nothing written.
 */
int ld_pcap_out_write(struct ld_pcap_out *o, uint64_t ts_ns, const uint8_t *data,
		      uint32_t caplen, uint32_t wirelen);

/**
 * ld_pcap_out_close() - flush and close
 * @o: writer (may be unopened)
 *
 * Return: 0, or -1 when something did not reach the file (errno set).
 */
int ld_pcap_out_close(struct ld_pcap_out *o);

#endif /* LD_REPLAY_WRITER_H */
