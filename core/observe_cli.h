/* SPDX-License-Identifier: MIT */
/* observe_cli.h - option helpers of --metrics/--record/--report (issue 13). */
#ifndef LD_OBSERVE_CLI_H
#define LD_OBSERVE_CLI_H

#include <stdint.h>

/**
 * ld_parse_size() - parse "1048576", "64k", "10M", "1G" (powers of 1024)
 * @s: text
 * @min: smallest value allowed
 * @out: receives bytes
 *
 * Return: 0, or -1 when @s is not such a size.
 */
int ld_parse_size(const char *s, uint64_t min, uint64_t *out);

/**
 * ld_write_text_file() - write @text and a newline to @path (replaced atomically)
 * @path: file
 * @text: one line
 *
 * Return: 0, or -1 with errno set.
 */
int ld_write_text_file(const char *path, const char *text);

#endif /* LD_OBSERVE_CLI_H */
