/* SPDX-License-Identifier: MIT */
/*
 * rules_foreign.h - find firewall rules that are not luadivert's own but
 * send packets to a given queue.
 *
 * With such a rule in place, the rules luadivert installs divert the same
 * packets a second time: the policy runs twice per packet (a 100 ms lag
 * becomes 200 ms). `luadivert run` warns about each at start.
 */
#ifndef LD_RULES_FOREIGN_H
#define LD_RULES_FOREIGN_H

#include <stddef.h>
#include <stdint.h>

/**
 * ld_rules_line_queues() - does one iptables-save line send to @queue?
 * @line: a line of iptables-save output (NUL-terminated)
 * @queue: queue number
 *
 * True for "-A CHAIN ... -j NFQUEUE" with --queue-num @queue, a
 * --queue-balance range holding it, or no number at all (queue 0), in a
 * chain that is not luadivert's (LUADIVERT-Q<n>).
 * Return: 1 or 0.
 */
int ld_rules_line_queues(const char *line, uint16_t queue);

/**
 * ld_rules_warn_foreign() - log every foreign rule that sends to @queue
 * @queue: queue number
 * @backend: enum ld_rules_backend to read
 *
 * Reading the rules may fail (no iptables-save): then nothing is logged.
 * Return: the number of rules found.
 */
int ld_rules_warn_foreign(uint16_t queue, int backend);

#endif /* LD_RULES_FOREIGN_H */
