/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One QEMU microVM of Runner 1 from prepare to destroy (qemu.c boots and
 * reaps it; vmloop.c is the host side of its channel: the frame loop).
 */
#pragma once

#include <stdbool.h>
#include <poll.h>
#include <stdint.h>
#include <sys/types.h>

#include "backend/kata/internal.h"
#include "gateway/session.h"
#include "util/frame.h"

/* Console bytes kept for error messages. */
#define TR_KATA_CONSOLE_KEEP 4096
/* Largest frame the guest may send us: output and gateway chunks carry at
 * most TR_VF_CHUNK bytes of data plus a stream id; HELLO and ERROR are
 * short texts. */
#define TR_KATA_GUEST_MAX_PAYLOAD (TR_VF_CHUNK + 4)
/* Gateway connections the guest may have open at once. */
#define TR_KATA_MAX_STREAMS 16

typedef struct tr__kata_stream {
        uint32_t id;
        int fd;        /* our end of the socketpair served by the gateway session */
        tr__vf_buf in; /* guest bytes not yet taken by the session */
} tr__kata_stream;

typedef enum tr__kata_vm_phase {
        TR_KATA_VM_BOOT, /* until the agent's STARTED: the interpreter waits for its code */
        TR_KATA_VM_RUN,  /* until its EXIT */
} tr__kata_vm_phase;

struct tr__kata_vm {
        tr__kata *k;
        tr_exec *ex;                      /* the current phase's */
        const tr_kata_sandbox_spec *spec; /* the backend's, alive from prepare to destroy */
        tr__kata_jail *jail;
        int64_t memory_cap; /* QEMU's host cgroup cap */
        bool kvm;
        pid_t pid;
        int pidfd;
        int chan;
        int con;
        tr__vf_reader rd;
        tr__vf_buf outq;
        char console[TR_KATA_CONSOLE_KEEP];
        size_t con_len;
        tr__gw_session *gw; /* the run's (tools are bound at run time) */
        tr__kata_stream streams[TR_KATA_MAX_STREAMS];
        bool hello, started, done, qemu_exited;
        bool host_memory_cap; /* QEMU runs in its capped host cgroup */
        int64_t boot_start, boot_deadline, boot_timeout_ms;
        int64_t started_ns;
        int64_t run_timeout_ms; /* the request's timeout, from the run's start */
        int64_t run_deadline;
        uint64_t exit_kind, exit_code;
        uint64_t applied; /* TR_VL_* bits of the agent's STARTED */
        int64_t idle_ms;  /* the agent's backstop for a VM nobody runs */
        char *guest_error;
        uint8_t *seccomp_bpf; /* the snippet's filter (NULL: dev, none) */
        size_t seccomp_len;
        char *state_path; /* the per-VM state record (state.c), removed once QEMU is reaped */
        /* A session's VM (vmsession.c): the channel is served by a thread
         * for the VM's whole life, the output goes to the core's pipes. */
        bool session;
        tr__vf_buf sess_out, sess_err; /* guest output not yet taken by the core */
        struct tr__kata_vm_session *sess;
        struct keeper *keeper; /* QEMU's parent thread (qemu.c) */
};

/* Run the frame loop until `phase` is over (STARTED, or EXIT), the phase's
 * deadline, the execution's cancel, a guest fault or QEMU's end; 0 or a
 * negative value with *ret_err set. */
int tr__kata_vm_loop(tr__kata_vm *v, tr__kata_vm_phase phase, tr_error **ret_err);
/* Queue the snippet's input (then EOF when `eof`) for the guest. */
int tr__kata_vm_queue_stdin(tr__kata_vm *v, const void *data, size_t len, bool eof, tr_error **ret_err);
/* Close the gateway streams and let go of the core's gateway session. */
void tr__kata_vm_end_gateway(tr__kata_vm *v);
/* Pieces of the loop the session thread shares (vmsession.c): read the
 * console; handle the frames the reader holds; move the gateway streams
 * (`pf`: their poll entries, TR_KATA_MAX_STREAMS of them). */
void tr__kata_vm_console_read(tr__kata_vm *v);
int tr__kata_vm_take_frames(tr__kata_vm *v, tr__kata_vm_phase phase, tr_error **ret_err);
int tr__kata_vm_pump_streams(tr__kata_vm *v, const struct pollfd *pf, tr_error **ret_err);
/* Report to the core what the agent (and QEMU's host cap) applied. */
void tr__kata_vm_report_applied(const tr__kata_vm *v, tr_exec *ex);
/* Queue a SIGNAL frame for the snippet's process. */
int tr__kata_vm_queue_signal(tr__kata_vm *v, int sig);

/* ---- vmsession.c: a session's VM ---- */
/* Start serving the channel in a thread and make the core's pipes. */
int tr__kata_vm_session_start(tr__kata_vm *v, tr_error **ret_err);
int tr__kata_vm_session_io(tr__kata_vm *v, int *ret_in, int *ret_out, int *ret_err_fd);
int tr__kata_vm_session_signal(tr__kata_vm *v, int sig, tr_error **ret_err);
/* Bind the execution's gateway (its tools) until session_end. */
int tr__kata_vm_session_begin(tr__kata_vm *v, tr_exec *ex, tr_error **ret_err);
void tr__kata_vm_session_end(tr__kata_vm *v);
bool tr__kata_vm_session_oom(tr__kata_vm *v);
/* Stop the thread (before QEMU is killed and reaped); NULL-safe. */
void tr__kata_vm_session_stop(tr__kata_vm *v);

/* The console's tail, printable (kept in `v`). */
const char *tr__kata_vm_console_tail(tr__kata_vm *v);
