/* SPDX-License-Identifier: Apache-2.0 */
/* Small process and file-descriptor helpers shared by backends. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Resolve `name` against $PATH (or take it as is when it has a '/').
 * *ret_path is malloc()ed.  -ENOENT when not found or not executable. */
int tr__find_executable(const char *name, char **ret_path);
int tr__fd_set_nonblock(int fd, bool on);
/* Write everything, retrying on EINTR; -errno on failure. */
int tr__write_all(int fd, const void *p, size_t n);
/* Read up to `max` bytes from `fd` (until EOF), NUL-terminated.  Callers
 * that must reject larger input ask for max + 1 and check the length. */
int tr__read_fd(int fd, size_t max, char **ret_data, size_t *ret_len);
/* The same for a file (e.g. under /proc or /sys). */
int tr__read_file(const char *path, size_t max, char **ret_data, size_t *ret_len);
/* Remove a directory tree we created, walking with directory fds
 * (openat O_NOFOLLOW, unlinkat): a symlink is removed, never followed, even
 * one swapped in for a directory mid-walk; directories a snippet locked
 * (mode 000) are opened up first; other file systems are not entered. */
int tr__rm_rf(const char *path);
