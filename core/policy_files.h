/* SPDX-License-Identifier: MIT */
/*
 * policy_files.h - refuse policy code that someone else could have written.
 *
 * A policy runs with the host's traffic in its hands. Its file, and every
 * directory `require` searches (the policy's own directory and the divert
 * library's), must be writable by nobody but the daemon's user and root:
 * owned by one of them, not group- or world-writable. Each directory above
 * them must be owned by one of them too and either closed to others'
 * writes or sticky (/tmp: others cannot rename what is ours in it).
 */
#ifndef LD_POLICY_FILES_H
#define LD_POLICY_FILES_H

#include <stddef.h>
#include <sys/types.h>

/**
 * ld_policy_file_check() - may @path be loaded as policy code?
 * @path: a file (the policy) or a directory (a module directory)
 * @is_dir: 1 when @path names a module directory
 * @owner: the daemon's user (its euid before the sandbox): it and root may own it
 * @err: receives "PATH: why" when it may not
 * @errlen: size of @err
 *
 * A directory that does not exist is fine (nothing can be loaded from it
 * until someone who may create it does).
 * Return: 0 when it may, -1 when not (or when it cannot be inspected).
 */
int ld_policy_file_check(const char *path, int is_dir, uid_t owner, char *err, size_t errlen);

#endif /* LD_POLICY_FILES_H */
