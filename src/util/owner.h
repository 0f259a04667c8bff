/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Who owns a sandbox, and is that owner still alive?  A pid alone is not an
 * identity: pids are reused, and a reboot reuses all of them.  So an owner
 * is the pid, that process's start time (field 22 of /proc/<pid>/stat,
 * clock ticks since boot), the boot id, and the pid namespace the pid is
 * valid in.  `toolruntime gc` collects at once whatever belongs to an owner
 * that is no longer alive under all four.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct tr__owner {
        pid_t pid;
        uint64_t start;   /* start time of pid, in clock ticks since boot */
        char boot_id[40]; /* /proc/sys/kernel/random/boot_id, no newline */
        uint64_t pidns;   /* inode of the pid namespace `pid` is valid in; 0 unknown */
} tr__owner;

typedef enum tr__owner_state {
        TR_OWNER_ALIVE,
        TR_OWNER_DEAD,
        /* Recorded in another pid namespace (or the record is incomplete):
         * this process cannot tell; only the expiry applies. */
        TR_OWNER_UNKNOWN,
} tr__owner_state;

/* The calling process as an owner.  -errno when /proc cannot say. */
int tr__owner_self(tr__owner *ret);
/* The start time of `pid` (/proc/<pid>/stat field 22); *ret_zombie when it
 * has exited and only waits to be reaped.  -ENOENT when there is no such
 * process. */
int tr__proc_start_time(pid_t pid, uint64_t *ret_start, bool *ret_zombie);
tr__owner_state tr__owner_check(const tr__owner *o);

/* Text forms, for labels and state records: decimal numbers, and the boot
 * id as read.  Parsing fails (-EINVAL) on anything else. */
int tr__owner_parse(const char *pid, const char *start, const char *boot_id, const char *pidns, tr__owner *ret);
