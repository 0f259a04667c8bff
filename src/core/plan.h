/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The sandbox plan as the built-in backends read it: what the core decided
 * for an execution beyond the public tr_exec accessors (profile, effective
 * limits, deadline, runner argv in runner.h).  The core decides; a backend
 * builds what the plan says and reports back what it applied
 * (tr_exec_report_applied), never its own policy:
 *
 *   - how a profile's sandbox is isolated (tr__profile_isolation), the same
 *     on every isolating backend;
 *   - the execution's gateway session (tr__exec_gateway): opened and closed
 *     by the core around each run, so tools are bound at run time and the
 *     call and chain limits are counted in one place; the backend only
 *     attaches the transport its sandbox can reach (a unix socket
 *     bind-mounted into the container, a socketpair, a virtio-serial
 *     stream).
 */
#pragma once

#include <stdbool.h>

#include "toolruntime.h"
#include "gateway/session.h"

/* A profile's isolation, decided in profile.c next to its limits. */
typedef struct tr__isolation {
        /* The image's files are read-only; a size-capped tmpfs /tmp is the one
         * writable place, so the disk limit holds (not dev's writable root). */
        bool read_only_rootfs;
        /* The sandbox may share the host's network namespace (dev only);
         * otherwise it gets one of its own with no interface but loopback. */
        bool host_network;
        /* The caller's own seccomp profile (--seccomp) replaces the built-in
         * one: only the hardened profile takes it, as a default-deny list. */
        bool custom_seccomp;
        /* Images are pulled by digest only (NAME@sha256:...). */
        bool pinned_images;
} tr__isolation;

/* Never NULL: DEFAULT reads as standard, an unknown profile as hardened. */
const tr__isolation *tr__profile_isolation(tr_profile profile);

/* The gateway session of the execution `ex` is running (between run's start
 * and end, or a session execution's begin and end); NULL otherwise. */
tr__gw_session *tr__exec_gateway(tr_exec *ex);

/* The sandbox's labels as key, value pairs (NULL-terminated strv; free with
 * tr__strv_free): its profile, then each request metadata pair as
 * "io.toolruntime.meta.KEY" (a pair longer than TR__LABEL_MAX is left out:
 * metadata describes, it must not fail a run; containerd refuses labels
 * over 4 KiB).  -ENOMEM on failure. */
#define TR__LABEL_MAX 1024
int tr__plan_labels(const tr_exec *ex, char ***ret_labels);

/* The one-shot runners end with done lines (runner.h) once the snippet,
 * its threads and atexit handlers are over and its output flushed: from
 * then on every byte of output is in and the exit status known, so a
 * backend's run may end without waiting for the process (or the VM's
 * agent) to exit; destroy stops what is left.  tr__exec_done_fd is
 * readable from that moment (-1 when there is none); tr__exec_done says
 * whether it came and with which status.  A snippet that dies by a signal
 * or calls os._exit writes none: the backend then waits for the exit as
 * before. */
int tr__exec_done_fd(const tr_exec *ex);
bool tr__exec_done(tr_exec *ex, int *ret_status);
