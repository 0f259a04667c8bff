/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The host side of a VM's channel (Runner 1): the frame loop of a
 * tr__kata_vm, in two phases, boot (until the agent's STARTED: the
 * interpreter is up and waits for its code) and run (the code as STDIN
 * frames, then output, gateway relay, until EXIT).
 *
 * It trusts nothing the guest sends: every frame is bounded by the reader
 * (TR_VF_CHUNK + 4 from the guest), the frame order is checked (HELLO,
 * then STARTED, then output / gateway / EXIT), and anything else ends the
 * execution with vm_execution_failed.  Nothing the guest does makes the
 * host loop wait: gateway data is buffered per stream (capped, written on
 * POLLOUT) and the queue towards the guest is capped too; a guest past
 * either cap is failed.  The console (and QEMU's own stderr) goes to a
 * pipe of which only the last few KiB are kept, for error messages.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "backend/kata/vm.h"
#include "core/plan.h"
#include "util/handles.h"
#include "util/macros.h"
#include "util/proc.h"
#include "util/timeutil.h"

/* Host -> guest bytes queued before we stop reading the gateway. */
#define OUTQ_HIGH (4u * 1024 * 1024)
/* Hard cap of that queue (the request and the snippet's input apart,
 * queued before the guest can send anything else): past OUTQ_HIGH only the
 * last gateway chunk read and the CLOSE frames the guest provokes can be
 * added, and a guest that provokes more than this while not reading its
 * channel is failed. */
#define OUTQ_CAP (OUTQ_HIGH + 64u * 1024)
/* Guest -> gateway bytes buffered per stream while the session is not
 * reading; a guest that sends more is failed (the host never blocks on a
 * stream). */
#define STREAM_CAP (1u * 1024 * 1024)

/* The console tail, printable, for error messages (static buffer in `v`). */
const char *tr__kata_vm_console_tail(tr__kata_vm *v) {
        size_t n = v->con_len < sizeof(v->console) ? v->con_len : sizeof(v->console) - 1;
        /* Keep the last ~600 bytes: enough for a panic's headline. */
        size_t from = n > 600 ? n - 600 : 0;
        char *s = v->console + from;
        v->console[n] = 0;
        for (char *p = s; *p; p++)
                if ((unsigned char) *p < 0x20 && *p != '\n')
                        *p = ' ';
        while (*s == '\n' || *s == ' ')
                s++;
        return *s ? s : "(no console output)";
}

void tr__kata_vm_console_read(tr__kata_vm *v) {
        char buf[4096];
        ssize_t n = read(v->con, buf, sizeof(buf));
        if (n <= 0) {
                if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
                        close(v->con);
                        v->con = -1;
                }
                return;
        }
        /* Keep only the end. */
        size_t cap = sizeof(v->console) - 1;
        if ((size_t) n >= cap) {
                memcpy(v->console, buf + n - cap, cap);
                v->con_len = cap;
        } else {
                if (v->con_len + (size_t) n > cap) {
                        size_t drop = v->con_len + (size_t) n - cap;
                        memmove(v->console, v->console + drop, v->con_len - drop);
                        v->con_len -= drop;
                }
                memcpy(v->console + v->con_len, buf, (size_t) n);
                v->con_len += (size_t) n;
        }
}

static tr__kata_stream *stream_find(tr__kata_vm *v, uint32_t id) {
        for (int i = 0; i < TR_KATA_MAX_STREAMS; i++)
                if (v->streams[i].fd >= 0 && v->streams[i].id == id)
                        return &v->streams[i];
        return NULL;
}

static void stream_close(tr__kata_stream *s) {
        close(s->fd);
        s->fd = -1;
        tr__vf_buf_done(&s->in);
}

/* Queue a frame for the guest.  -ENOBUFS when the queue would pass
 * OUTQ_CAP (a guest provoking frames faster than it reads them), -ENOMEM. */
static int queue(tr__kata_vm *v, uint8_t type, uint32_t id, const void *data, size_t len) {
        if (v->outq.len + TR_VF_HEADER + 4 + len > OUTQ_CAP)
                return -ENOBUFS;
        uint8_t idb[4];
        tr__vf_put_u32(idb, id);
        return tr__vf_buf_frame(&v->outq, type, idb, 4, data, len);
}

/* Hand what a stream has buffered to the gateway session, without ever
 * waiting: 0 (possibly with bytes left for the next POLLOUT) or -errno when
 * the session end is gone. */
static int stream_flush(tr__kata_stream *s) {
        while (s->in.len > 0) {
                ssize_t w = send(s->fd, s->in.data, s->in.len, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (w < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                return 0;
                        return -errno;
                }
                tr__vf_buf_consume(&s->in, (size_t) w);
        }
        return 0;
}

static int fail_guest(tr_error **ret_err, const char *what) {
        return tr_error_set(ret_err, TR_E_VM_EXECUTION_FAILED, KATA_KIND, "vm.channel",
                            "the guest sent %s; execution aborted", what);
}

/* Queue a CLOSE for stream `id`; a guest that provokes more of them than
 * it reads is failed. */
static int queue_close(tr__kata_vm *v, uint32_t id, tr_error **ret_err) {
        int r = queue(v, TR_VF_GW_CLOSE, id, NULL, 0);
        if (r == -ENOBUFS)
                return fail_guest(ret_err, "more gateway frames than it reads back");
        if (r < 0)
                return tr_error_set(ret_err, TR_E_INTERNAL, KATA_KIND, "vm.gateway", "out of memory");
        return 0;
}

/* What this runner applied, for the core's limits_enforced: the limits the
 * agent reports applied (`bits`); memory also needs QEMU's host cgroup cap
 * (guest RAM + overhead), without which the guest's memory.max alone would
 * not bound what the snippet costs the host (issue 15: the translation
 * cache). */
void tr__kata_vm_report_applied(const tr__kata_vm *v, tr_exec *ex) {
        uint64_t bits = v->applied;
        unsigned a = 0;
        if ((bits & TR_VL_MEMORY) && v->host_memory_cap)
                a |= TR_APPLIED_MEMORY;
        if (bits & TR_VL_PIDS)
                a |= TR_APPLIED_PIDS;
        if (bits & TR_VL_CPU)
                a |= TR_APPLIED_CPU;
        if (bits & TR_VL_DISK)
                a |= TR_APPLIED_DISK;
        tr_exec_report_applied(ex, a);
}

/* Handle one frame from the guest.  Returns 0, or a negative value with
 * *ret_err set when the frame is invalid here. */
static int guest_frame(tr__kata_vm *v, const tr__vf_frame *fr, tr_error **ret_err) {
        switch (fr->type) {
        case TR_VF_HELLO: {
                if (v->hello)
                        return fail_guest(ret_err, "a second HELLO");
                v->hello = true;
                /* Now the request: the agent is up and reading. */
                tr__vf_buf req = { 0 };
                const tr_kata_sandbox_spec *s = v->spec;
                int r = 0;
                for (size_t i = 0; s->argv[i] && r >= 0; i++)
                        r = tr__vf_tlv_add_str(&req, TR_VT_ARG, s->argv[i]);
                for (size_t i = 0; s->env && s->env[i] && r >= 0; i++)
                        r = tr__vf_tlv_add_str(&req, TR_VT_ENV, s->env[i]);
                /* The snippet starts now, its code comes later (STDIN
                 * frames at run time); the agent ends a VM nobody runs. */
                if (r >= 0)
                        r = tr__vf_tlv_add_u64(&req, TR_VT_STDIN_LIVE, 1);
                if (r >= 0)
                        r = tr__vf_tlv_add_u64(&req, TR_VT_IDLE_MS, (uint64_t) v->idle_ms);
                if (r >= 0)
                        r = tr__vf_tlv_add_u64(&req, TR_VT_MEMORY, (uint64_t) s->resources.memory_bytes);
                if (r >= 0)
                        r = tr__vf_tlv_add_u64(&req, TR_VT_PIDS, (uint64_t) s->resources.pids_max);
                if (r >= 0)
                        r = tr__vf_tlv_add_u64(&req, TR_VT_DISK, (uint64_t) s->resources.disk_bytes);
                if (r >= 0)
                        r = tr__vf_tlv_add_u64(&req, TR_VT_CPU_QUOTA_MS, (uint64_t) s->resources.cpu_quota_ms);
                if (r >= 0 && v->seccomp_bpf)
                        r = tr__vf_tlv_add(&req, TR_VT_SECCOMP_BPF, v->seccomp_bpf, v->seccomp_len);
                if (r >= 0)
                        r = tr__vf_buf_frame(&v->outq, TR_VF_REQUEST, NULL, 0, req.data, req.len);
                tr__vf_buf_done(&req);
                if (r == -EMSGSIZE)
                        return tr_error_set(ret_err, TR_E_INVALID_REQUEST, KATA_KIND, "vm.request",
                                            "the request is larger than %u bytes", TR_VF_MAX_PAYLOAD);
                if (r < 0)
                        return tr_error_set(ret_err, TR_E_INTERNAL, KATA_KIND, "vm.request", "out of memory");
                return 0;
        }
        case TR_VF_STARTED: {
                if (!v->hello || v->started)
                        return fail_guest(ret_err, "STARTED out of order");
                bool seccomp_applied = false;
                uint64_t bits = TR_VL_MEMORY | TR_VL_PIDS | TR_VL_CPU | TR_VL_DISK;
                if (fr->len > 0) {
                        /* The limits the agent applied.  (An empty payload:
                         * an older agent, which fails rather than run
                         * without memory.max / pids.max.) */
                        tr__vf_tlv_iter it;
                        tr__vf_tlv_iter_init(&it, fr->payload, fr->len);
                        uint16_t tag;
                        const uint8_t *val;
                        size_t n;
                        int k;
                        while ((k = tr__vf_tlv_next(&it, &tag, &val, &n)) > 0)
                                if (tag == TR_VT_LIMITS_APPLIED && tr__vf_tlv_u64(val, n, &bits) < 0)
                                        return fail_guest(ret_err, "a malformed STARTED");
                        if (k < 0)
                                return fail_guest(ret_err, "a malformed STARTED");
                        seccomp_applied = bits & TR_VL_SECCOMP;
                }
                /* The profile's seccomp filter is part of the sandbox: an
                 * agent that did not install it (an image older than the
                 * filter) has started code the profile does not allow.
                 * (The guest cannot hurt the host with it: this is about the
                 * profile's promise, QEMU stays the boundary.) */
                if (v->seccomp_bpf && !seccomp_applied)
                        return tr_error_set(ret_err, TR_E_VM_EXECUTION_FAILED, KATA_KIND, "vm.seccomp",
                                            "the guest agent did not apply the seccomp filter (rebuild the VM "
                                            "image with `toolruntime image build --vm`)");
                /* An agent without live stdin would have run the snippet
                 * with no code at all. */
                if (!(bits & TR_VL_STDIN_LIVE) || fr->len == 0)
                        return tr_error_set(ret_err, TR_E_VM_EXECUTION_FAILED, KATA_KIND, "vm.agent",
                                            "the guest agent cannot wait for its code (rebuild the VM image with "
                                            "`toolruntime image build --vm`)");
                v->applied = bits;
                tr__kata_vm_report_applied(v, v->ex);
                v->started = true;
                v->started_ns = tr__now_ns();
                return 0;
        }
        case TR_VF_STDOUT:
        case TR_VF_STDERR:
                if (!v->started)
                        return fail_guest(ret_err, "output before the snippet started");
                if (v->session) {
                        /* For the core's pipes (vmsession.c). */
                        tr__vf_buf *b = fr->type == TR_VF_STDOUT ? &v->sess_out : &v->sess_err;
                        if (tr__vf_buf_append(b, fr->payload, fr->len) < 0)
                                return tr_error_set(ret_err, TR_E_INTERNAL, KATA_KIND, "vm.session", "out of memory");
                } else if (fr->type == TR_VF_STDOUT)
                        tr_exec_append_stdout(v->ex, fr->payload, fr->len);
                else
                        tr_exec_append_stderr(v->ex, fr->payload, fr->len);
                return 0;
        case TR_VF_EXIT: {
                if (!v->started)
                        return fail_guest(ret_err, "EXIT before the snippet started");
                tr__vf_tlv_iter it;
                tr__vf_tlv_iter_init(&it, fr->payload, fr->len);
                uint16_t tag;
                const uint8_t *val;
                size_t n;
                int k;
                bool have_kind = false;
                while ((k = tr__vf_tlv_next(&it, &tag, &val, &n)) > 0) {
                        if (tag == TR_VT_EXIT_KIND && tr__vf_tlv_u64(val, n, &v->exit_kind) == 0)
                                have_kind = true;
                        else if (tag == TR_VT_EXIT_CODE && tr__vf_tlv_u64(val, n, &v->exit_code) < 0)
                                return fail_guest(ret_err, "a malformed exit status");
                }
                /* A signal death carries the signal's number (1..64), an
                 * OOM kill the signal or 0. */
                if (k < 0 || !have_kind || v->exit_kind < TR_VF_EXITED || v->exit_kind > TR_VF_OOM ||
                    v->exit_code > 255 || (v->exit_kind == TR_VF_SIGNALED && (v->exit_code < 1 || v->exit_code > 64)))
                        return fail_guest(ret_err, "a malformed exit status");
                v->done = true;
                return 0;
        }
        case TR_VF_ERROR: {
                /* The agent's own words, bounded and made printable. */
                size_t n = fr->len > 512 ? 512 : fr->len;
                char *m = malloc(n + 1);
                if (!m)
                        return tr_error_set(ret_err, TR_E_INTERNAL, KATA_KIND, "vm.channel", "out of memory");
                for (size_t i = 0; i < n; i++)
                        m[i] = (fr->payload[i] >= 0x20 && fr->payload[i] < 0x7f) ? (char) fr->payload[i] : '?';
                m[n] = 0;
                free(v->guest_error);
                v->guest_error = m;
                return tr_error_set(ret_err, TR_E_VM_EXECUTION_FAILED, KATA_KIND, "vm.agent",
                                    "the guest agent failed: %s", m);
        }
        case TR_VF_GW_OPEN: {
                if (!v->started || fr->len != 4)
                        return fail_guest(ret_err, "a malformed gateway open");
                uint32_t id = tr__vf_get_u32(fr->payload);
                /* A CLOSE for it would end the live stream: refuse. */
                if (stream_find(v, id))
                        return fail_guest(ret_err, "a gateway open for a stream already open");
                tr__kata_stream *slot = NULL;
                for (int i = 0; i < TR_KATA_MAX_STREAMS && !slot; i++)
                        if (v->streams[i].fd < 0)
                                slot = &v->streams[i];
                int sp[2];
                if (!slot || !v->gw || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
                        return queue_close(v, id, ret_err);
                _cleanup_(tr_error_freep) tr_error *e = NULL;
                if (tr__gw_session_serve_fd(v->gw, sp[1], &e) < 0) {
                        close(sp[0]);
                        return queue_close(v, id, ret_err);
                }
                tr__fd_set_nonblock(sp[0], true);
                slot->id = id;
                slot->fd = sp[0];
                return 0;
        }
        case TR_VF_GW_DATA: {
                if (!v->started || fr->len < 4)
                        return fail_guest(ret_err, "a malformed gateway frame");
                tr__kata_stream *s = stream_find(v, tr__vf_get_u32(fr->payload));
                if (!s)
                        return 0; /* closed on our side meanwhile */
                /* Never wait on the session here: buffer, bounded, and let
                 * the main loop write on POLLOUT. */
                if (s->in.len + (fr->len - 4) > STREAM_CAP)
                        return tr_error_set(ret_err, TR_E_VM_EXECUTION_FAILED, KATA_KIND, "vm.gateway",
                                            "the guest sent more than %u bytes on gateway stream %" PRIu32
                                            " that the gateway did not take; execution aborted",
                                            STREAM_CAP, s->id);
                if (tr__vf_buf_append(&s->in, fr->payload + 4, fr->len - 4) < 0)
                        return tr_error_set(ret_err, TR_E_INTERNAL, KATA_KIND, "vm.gateway", "out of memory");
                if (stream_flush(s) < 0) {
                        uint32_t id = s->id;
                        stream_close(s);
                        return queue_close(v, id, ret_err);
                }
                return 0;
        }
        case TR_VF_GW_CLOSE: {
                if (fr->len != 4)
                        return fail_guest(ret_err, "a malformed gateway close");
                tr__kata_stream *s = stream_find(v, tr__vf_get_u32(fr->payload));
                if (s)
                        stream_close(s);
                return 0;
        }
        default: return fail_guest(ret_err, "a frame of an unexpected type");
        }
}

/* Between the guest and the gateway session: what a stream buffered goes to
 * the session on POLLOUT, what the session writes becomes GW_DATA (unless
 * the guest has enough queued).  `pf` holds the streams' entries. */
int tr__kata_vm_pump_streams(tr__kata_vm *v, const struct pollfd *pf, tr_error **ret_err) {
        int r = 0;
        for (int i = 0; i < TR_KATA_MAX_STREAMS && r == 0; i++) {
                tr__kata_stream *s = &v->streams[i];
                /* A stream closed (or a slot reused) while handling
                 * the guest's frames above: its revents are stale. */
                if (s->fd < 0 || s->fd != pf[i].fd)
                        continue;
                if (s->in.len && (pf[i].revents & (POLLOUT | POLLERR | POLLHUP)) && stream_flush(s) < 0) {
                        uint32_t id = s->id;
                        stream_close(s);
                        r = queue_close(v, id, ret_err);
                        continue;
                }
                /* Stop reading once the guest has enough queued. */
                if (v->outq.len > OUTQ_HIGH || !(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
                        continue;
                uint8_t buf[TR_VF_CHUNK];
                ssize_t got = read(s->fd, buf, sizeof(buf));
                if (got > 0) {
                        int q = queue(v, TR_VF_GW_DATA, s->id, buf, (size_t) got);
                        if (q == -ENOBUFS)
                                r = fail_guest(ret_err, "more gateway frames than it reads back");
                        else if (q < 0)
                                r = tr_error_set(ret_err, TR_E_INTERNAL, KATA_KIND, "vm.gateway", "out of memory");
                } else if (got == 0 || (errno != EAGAIN && errno != EINTR)) {
                        uint32_t id = s->id;
                        stream_close(s);
                        r = queue_close(v, id, ret_err);
                }
        }
        return r;
}

/* QEMU ended (or closed the channel) before the phase did: why. */
static int qemu_gone(tr__kata_vm *v, tr_error **ret_err) {
        /* Drain what the console still holds, for the
         * message. */
        while (v->con >= 0) {
                struct pollfd cpf = { v->con, POLLIN, 0 };
                if (poll(&cpf, 1, 50) <= 0)
                        break;
                tr__kata_vm_console_read(v);
        }
        if (tr__kata_jail_oom_killed(v->jail))
                return tr_error_set(ret_err, TR_E_RESOURCE_LIMIT, KATA_KIND, "vm.run",
                                    "QEMU reached its host memory cap of %" PRId64
                                    " bytes (guest RAM + %lld MiB) and was killed",
                                    v->memory_cap, TR_KATA_QEMU_OVERHEAD >> 20);
        else if (!v->hello)
                return tr_error_set(ret_err, TR_E_VM_CREATION_FAILED, KATA_KIND, "vm.boot",
                                    "the VM stopped before its agent started; console: %s",
                                    tr__kata_vm_console_tail(v));
        else
                return tr_error_set(ret_err, TR_E_VM_EXECUTION_FAILED, KATA_KIND, "vm.run",
                                    "the VM stopped before the snippet finished; console: %s",
                                    tr__kata_vm_console_tail(v));
}

static int deadline_error(tr__kata_vm *v, tr__kata_vm_phase phase, tr_error **ret_err) {
        if (phase == TR_KATA_VM_RUN)
                return tr_error_set(ret_err, TR_E_TIMEOUT, KATA_KIND, "vm.run",
                                    "the snippet did not finish within %" PRId64 " ms", v->run_timeout_ms);
        /* A KVM that stopped running guests since it was probed: probe
         * again next time. */
        if (v->kvm && v->spec->accel == TR_KATA_ACCEL_AUTO)
                tr__kata_kvm_forget(v->k);
        return tr_error_set(ret_err, TR_E_VM_CREATION_FAILED, KATA_KIND, "vm.boot",
                            "the VM did not boot within %" PRId64 " ms (%s); console: %s", v->boot_timeout_ms,
                            v->kvm ? "kvm" : "tcg", tr__kata_vm_console_tail(v));
}

/* Handle the frames the reader holds; in the boot phase, those after
 * STARTED wait in the reader for the run. */
int tr__kata_vm_take_frames(tr__kata_vm *v, tr__kata_vm_phase phase, tr_error **ret_err) {
        tr__vf_frame fr;
        int m, r = 0;
        while (r == 0 && !v->done && (phase == TR_KATA_VM_RUN || !v->started) &&
               (m = tr__vf_reader_next(&v->rd, &fr)) != 0) {
                if (m < 0)
                        r = fail_guest(ret_err, m == -EMSGSIZE ? "an oversized frame" : "a malformed frame");
                else
                        r = guest_frame(v, &fr, ret_err);
        }
        return r;
}

int tr__kata_vm_queue_signal(tr__kata_vm *v, int sig) {
        uint8_t b[4];
        tr__vf_put_u32(b, (uint32_t) sig);
        return tr__vf_buf_frame(&v->outq, TR_VF_SIGNAL, NULL, 0, b, 4);
}

int tr__kata_vm_queue_stdin(tr__kata_vm *v, const void *data, size_t len, bool eof, tr_error **ret_err) {
        /* Not bounded by OUTQ_CAP: the caller's input, bounded by the
         * request's own caps, and sent before the guest can add to it. */
        const uint8_t *p = data;
        int r = 0;
        while (len > 0 && r >= 0) {
                size_t n = len > TR_VF_CHUNK ? TR_VF_CHUNK : len;
                r = tr__vf_buf_frame(&v->outq, TR_VF_STDIN, NULL, 0, p, n);
                p += n;
                len -= n;
        }
        if (r >= 0 && eof)
                r = tr__vf_buf_frame(&v->outq, TR_VF_STDIN, NULL, 0, NULL, 0);
        if (r < 0)
                return tr_error_set(ret_err, TR_E_INTERNAL, KATA_KIND, "vm.stdin", "out of memory");
        return 0;
}

void tr__kata_vm_end_gateway(tr__kata_vm *v) {
        for (int i = 0; i < TR_KATA_MAX_STREAMS; i++) {
                if (v->streams[i].fd >= 0)
                        close(v->streams[i].fd);
                v->streams[i].fd = -1;
                tr__vf_buf_done(&v->streams[i].in);
        }
        /* The session is the core's, which closes it after the run: its
         * threads see EOF on our ends now. */
        v->gw = NULL;
}

int tr__kata_vm_loop(tr__kata_vm *v, tr__kata_vm_phase phase, tr_error **ret_err) {
        int cancel_fd = tr_exec_cancel_fd(v->ex);
        int64_t deadline = phase == TR_KATA_VM_RUN ? v->run_deadline : v->boot_deadline;
        /* What the boot phase left in the reader. */
        int r = tr__kata_vm_take_frames(v, phase, ret_err);
        if (r < 0)
                return r;
        while (phase == TR_KATA_VM_RUN ? !v->done : !v->started) {
                struct pollfd pf[4 + TR_KATA_MAX_STREAMS];
                int n = 0;
                pf[n++] = (struct pollfd){ v->chan, (short) (POLLIN | (v->outq.len ? POLLOUT : 0)), 0 };
                pf[n++] = (struct pollfd){ v->con, POLLIN, 0 };
                pf[n++] = (struct pollfd){ v->qemu_exited ? -1 : v->pidfd, POLLIN, 0 };
                pf[n++] = (struct pollfd){ cancel_fd, POLLIN, 0 };
                bool backpressure = v->outq.len > OUTQ_HIGH;
                for (int i = 0; i < TR_KATA_MAX_STREAMS; i++) {
                        short ev = (short) ((backpressure ? 0 : POLLIN) | (v->streams[i].in.len ? POLLOUT : 0));
                        pf[n++] = (struct pollfd){ ev ? v->streams[i].fd : -1, ev, 0 };
                }
                int k = poll(pf, (nfds_t) n, tr__poll_timeout_ms(deadline));
                if (k < 0 && errno != EINTR)
                        return tr_error_set(ret_err, TR_E_INTERNAL, KATA_KIND, "vm.poll", "poll: %m");
                if (cancel_fd >= 0 && (pf[3].revents & POLLIN))
                        return tr_error_set(ret_err, TR_E_CANCELLED, KATA_KIND,
                                            phase == TR_KATA_VM_RUN ? "vm.run" : "vm.boot", "execution cancelled");
                if (tr__now_ns() >= deadline)
                        return deadline_error(v, phase, ret_err);
                if (pf[1].revents & (POLLIN | POLLHUP | POLLERR))
                        tr__kata_vm_console_read(v);
                if (pf[0].revents & POLLOUT) {
                        /* send(MSG_NOSIGNAL): a QEMU that died must not
                         * SIGPIPE the caller's process. */
                        ssize_t w = send(v->chan, v->outq.data, v->outq.len, MSG_NOSIGNAL);
                        if (w > 0)
                                tr__vf_buf_consume(&v->outq, (size_t) w);
                }
                if (pf[0].revents & (POLLIN | POLLHUP | POLLERR)) {
                        ssize_t got = tr__vf_reader_read_fd(&v->rd, v->chan);
                        if ((r = tr__kata_vm_take_frames(v, phase, ret_err)) < 0)
                                return r;
                        /* The runner's done lines (plan.h) came through the
                         * frames just taken: every byte of output is in, so
                         * the run ends here, without Python's exit and the
                         * agent's EXIT (tens of ms under TCG); destroy stops
                         * the VM. */
                        int st = 0;
                        if (phase == TR_KATA_VM_RUN && !v->done && tr__exec_done(v->ex, &st)) {
                                v->exit_kind = TR_VF_EXITED;
                                v->exit_code = (uint64_t) st;
                                v->done = true;
                        }
                        if (got == 0 && !v->done)
                                v->qemu_exited = true; /* the channel closed: QEMU is gone or going */
                        else if (got < 0 && got != -EAGAIN)
                                return fail_guest(ret_err, "an unreadable stream");
                }
                if ((r = tr__kata_vm_pump_streams(v, pf + 4, ret_err)) < 0)
                        return r;
                bool over = phase == TR_KATA_VM_RUN ? v->done : v->started;
                if (!over && (v->qemu_exited || (pf[2].revents & POLLIN)))
                        return qemu_gone(v, ret_err);
        }
        return 0;
}
