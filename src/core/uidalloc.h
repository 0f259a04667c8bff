/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One host identity per sandbox: leases on host uids (each also used as the
 * gid) from a configurable range, so that no two live sandboxes -- containers
 * or VMs -- share a uid, and one sandbox's escapee cannot reach another's
 * /proc/<pid>/root, gateway socket or per-uid kernel counters.
 *
 * Owns the lease directory (TR_UID_LEASE_DIR): one lock file per uid in use,
 * held with flock(LOCK_EX) for the sandbox's life.  flock works between
 * threads (each acquire opens its own file description) and between
 * processes, and the kernel drops it when its holder dies, so a killed
 * caller never leaks a slot (isolate's box ids work the same way).  Shared by
 * the containerd and kata backends.
 */
#pragma once

#include <stdint.h>

#include "toolruntime.h"

/* Root-owned, mode 0700: only root takes leases, and nobody else can
 * pre-create a lock file to deny (or share) a slot. */
#define TR_UID_LEASE_DIR "/run/toolruntime/uids"

typedef tr_uid_range tr__uid_range;
typedef struct tr__uid_lease tr__uid_lease;

/* Whether `range` is acceptable (see tr_uid_range); a zero range is the
 * default and always is.  On failure, TR_E_INVALID_REQUEST naming why. */
int tr__uid_range_check(const tr_uid_range *range, tr_backend_kind backend, tr_error **ret_err);

/* Lease a uid from `range` (NULL or zero count: the default range) for as
 * long as the lease lives.  Fails TR_E_RUNTIME_UNAVAILABLE (retryable) when
 * every uid of the range is taken, TR_E_INTERNAL when the lease directory
 * cannot be used (not root, or someone else owns it). */
int tr__uid_lease_acquire(const tr_uid_range *range, tr__uid_lease **ret_lease, tr_error **ret_err);

/* The same, with the lease directory given (unit tests). */
int tr__uid_lease_acquire_in(const char *dir, const tr_uid_range *range, tr__uid_lease **ret_lease, tr_error **ret_err);

uint32_t tr__uid_lease_uid(const tr__uid_lease *lease);

/* Give the uid back.  Only once nothing runs as it any more (the sandbox is
 * destroyed); NULL is fine. */
void tr__uid_lease_free(tr__uid_lease *lease);

static inline void tr__uid_lease_freep(tr__uid_lease **p) {
        if (*p)
                tr__uid_lease_free(*p);
}

/* Remove the lock files of dead holders (a SIGKILLed caller cannot unlink
 * its own) from `dir` (NULL: TR_UID_LEASE_DIR): each file whose lock can be
 * taken.  Live leases are untouched.  For gc; returns how many were
 * removed, or a negative errno. */
int tr__uid_lease_sweep(const char *dir);

/* Whether any process on the host runs with `uid` as one of its user or
 * group ids (real, effective, saved or filesystem).  Exposed for tests. */
bool tr__uid_in_use(uint32_t uid);
