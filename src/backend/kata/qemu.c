/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Runner 1: one QEMU microVM per execution.
 *
 * The VM: qemu-system-x86_64 -M microvm (no PCI, no firmware, no emulated
 * legacy devices beyond a serial console: the fastest machine to boot under
 * TCG), the guest kernel, an initramfs whose /init is the guest agent, the
 * root image as a read-only virtio-blk disk, and one virtio-serial port
 * whose host end is one half of a socketpair (chardev socket,fd=N: no
 * socket file on disk to leave behind or to race on).  No network device
 * at all.  No monitor.  -sandbox on (QEMU's own seccomp filter).  QEMU
 * itself runs as the VM's own host uid/gid (spec->host_uid, leased by the
 * backend; 65534 when none was) when we are root and use TCG (it needs no
 * privilege then); with KVM it keeps the caller's uid to open /dev/kvm and
 * then drops to that uid with -runas.
 *
 * The host side of the channel trusts nothing the guest sends: every frame
 * is bounded by the reader (a whole frame at most TR_VF_MAX_PAYLOAD for the
 * request direction, TR_VF_CHUNK + 4 for ours), the frame order is checked
 * (HELLO, then STARTED, then output / gateway / EXIT), and anything else
 * ends the execution with vm_execution_failed.  Nothing the guest does
 * makes the host loop wait: gateway data is buffered per stream (capped,
 * written on POLLOUT) and the queue towards the guest is capped too; a
 * guest past either cap is failed.  The console (and QEMU's own
 * stderr) goes to a pipe of which only the last few KiB are kept, for error
 * messages.
 *
 * Time: the boot is bounded by boot_timeout_ms (vm_creation_failed); the
 * request's timeout counts from the moment the agent has started the
 * snippet, because a TCG boot takes seconds the user did not ask for (and
 * the execution's deadline, which the gateway's tool calls obey, is moved
 * to the same instant then: tr_exec_set_deadline_ns).  On
 * timeout or cancel QEMU is SIGKILLed: the VM, with everything in it, is
 * gone at once.  QEMU is always reaped before returning.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backend/kata/internal.h"
#include "gateway/session.h"
#include "util/frame.h"
#include "util/handles.h"
#include "util/macros.h"
#include "util/proc.h"
#include "util/strv.h"
#include "util/timeutil.h"

/* Console bytes kept for error messages. */
#define CONSOLE_KEEP 4096
/* Gateway connections the guest may have open at once. */
#define MAX_STREAMS 16
/* Host -> guest bytes queued before we stop reading the gateway. */
#define OUTQ_HIGH (4u * 1024 * 1024)
/* Hard cap of that queue (the request apart, queued before the guest can
 * send anything else): past OUTQ_HIGH only the last gateway chunk read and
 * the CLOSE frames the guest provokes can be added, and a guest that
 * provokes more than this while not reading its channel is failed. */
#define OUTQ_CAP (OUTQ_HIGH + 64u * 1024)
/* Guest -> gateway bytes buffered per stream while the session is not
 * reading; a guest that sends more is failed (the host never blocks on a
 * stream). */
#define STREAM_CAP (1u * 1024 * 1024)
/* Largest frame the guest may send us: output and gateway chunks carry at
 * most TR_VF_CHUNK bytes of data plus a stream id; HELLO and ERROR are
 * short texts. */
#define GUEST_MAX_PAYLOAD (TR_VF_CHUNK + 4)

static const char *const kernel_cmdline =
        /* quiet: every console byte is an emulated I/O exit under TCG.
         * tsc_early_khz: microvm has no HPET/PM timer, and under TCG the
         * kernel's PIT calibration of the TSC sometimes fails, which then
         * hangs the boot; a fixed value makes every boot deterministic.
         * pci=off: microvm has no PCI bus, skip the probe.
         * panic=-1 + -no-reboot: a guest panic ends QEMU at once. */
        "console=ttyS0 quiet loglevel=3 panic=-1 tsc_early_khz=2000000 pci=off "
        "rdinit=/init nomodeset random.trust_cpu=on";

int64_t tr__kata_guest_mem_mib(int64_t memory_bytes) {
        int64_t b = memory_bytes > 0 ? memory_bytes + TR_KATA_GUEST_OVERHEAD : TR_KATA_DEFAULT_GUEST_MEMORY;
        int64_t mib = (b + (1 << 20) - 1) >> 20;
        return mib < 128 ? 128 : mib;
}

int tr__kata_vcpus(int64_t cpu_quota_ms, int ncpu) {
        if (ncpu < 1)
                ncpu = 1;
        if (cpu_quota_ms <= 0)
                return 1;
        int64_t n = (cpu_quota_ms + 99) / 100;
        if (n < 1)
                n = 1;
        return n > ncpu ? ncpu : (int) n;
}

int64_t tr__kata_qemu_memory_cap(int64_t memory_bytes) {
        return (tr__kata_guest_mem_mib(memory_bytes) << 20) + TR_KATA_QEMU_OVERHEAD;
}

int tr__kata_qemu_argv(const char *qemu, const tr_kata_sandbox_spec *spec, bool kvm, int chan_fd, int image_fd,
                       char ***ret_argv, tr_error **ret_err) {
        _cleanup_strv_ char **a = NULL;
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        int r = 0;
#define P(s)    (r = r < 0 ? r : tr__strv_push(&a, (s)))
#define PF(...) (r = r < 0 ? r : tr__strv_pushf(&a, __VA_ARGS__))
        P(qemu);
        /* microvm: no PCI, no firmware beyond qboot, ACPI only to list the
         * virtio-mmio devices.  Its defaults are kept on purpose: with
         * rtc=off the guest kernel boots ~1.5 s slower under TCG. */
        P("-M");
        P("microvm");
        P("-accel");
        /* A bounded translation cache: QEMU's default (1 GiB) lets a
         * snippet that keeps writing new code grow QEMU far past the
         * guest's RAM; TCG flushes the cache when it is full.  One TCG
         * thread: with multi-threaded TCG, QEMU 7.2 guests here stalled
         * after such flushes under self-modifying code (the snippet's
         * exit never came); single-threaded they did not, and with one
         * vCPU (every request up to one core) it costs nothing. */
        if (kvm)
                P("kvm");
        else
                PF("tcg,tb-size=%d,thread=single", TR_KATA_TB_SIZE_MIB);
        P("-cpu");
        P(kvm ? "host" : "max");
        P("-m");
        PF("%" PRId64, tr__kata_guest_mem_mib(spec->resources.memory_bytes));
        P("-smp");
        PF("%d", tr__kata_vcpus(spec->resources.cpu_quota_ms, (int) ncpu));
        /* Nothing by default: no NIC, no VGA, no monitor, no config file. */
        P("-nodefaults");
        P("-no-user-config");
        P("-display");
        P("none");
        P("-monitor");
        P("none");
        P("-no-reboot");
        /* QEMU's seccomp filter with every deny option QEMU 7.2 has: no
         * obsolete syscalls, no set*id (it starts with its final identity:
         * jail.c), no fork/exec, no scheduler or affinity changes. */
        P("-sandbox");
        P("on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny");
        /* The console: QEMU's stdout, a pipe we keep the tail of. */
        P("-chardev");
        P("stdio,id=con,signal=off");
        P("-serial");
        P("chardev:con");
        P("-kernel");
        P(spec->kernel_path);
        P("-initrd");
        P(spec->initrd_path);
        P("-append");
        P(kernel_cmdline);
        /* The root image: read-only at the block layer, so even a guest
         * kernel compromise cannot write to it. */
        if (image_fd >= 0) {
                /* An fd we opened: the image need not exist in QEMU's
                 * root at all. */
                P("-add-fd");
                PF("fd=%d,set=1", image_fd);
        }
        P("-drive");
        PF("if=none,id=root,file=%s,format=raw,readonly=on,cache=unsafe",
           image_fd >= 0 ? "/dev/fdset/1" : spec->image_path);
        P("-device");
        P("virtio-blk-device,drive=root");
        /* The channel: one socketpair half, already open in QEMU. */
        P("-chardev");
        PF("socket,id=chan,fd=%d", chan_fd);
        P("-device");
        P("virtio-serial-device,max_ports=2");
        P("-device");
        PF("virtserialport,chardev=chan,name=%s", TR_VF_PORT_NAME);
#undef P
#undef PF
        if (r < 0)
                return tr_error_set(ret_err, TR_E_INTERNAL, KATA_KIND, "qemu.argv", "out of memory");
        *ret_argv = TAKE_PTR(a);
        return 0;
}

typedef struct stream {
        uint32_t id;
        int fd;        /* our end of the socketpair served by the gateway session */
        tr__vf_buf in; /* guest bytes not yet taken by the session */
} stream;

typedef struct vm {
        tr_exec *ex;
        const tr_kata_sandbox_spec *spec;
        pid_t pid;
        int pidfd;
        int chan;
        int con;
        tr__vf_reader rd;
        tr__vf_buf outq;
        char console[CONSOLE_KEEP];
        size_t con_len;
        tr__gw_session *gw;
        stream streams[MAX_STREAMS];
        bool hello, started, done;
        bool host_memory_cap; /* QEMU runs in its capped host cgroup */
        int64_t started_ns;
        int64_t run_timeout_ms; /* the request's timeout, from STARTED on */
        int64_t run_deadline;   /* started_ns + run_timeout_ms */
        uint64_t exit_kind, exit_code;
        char *guest_error;
        uint8_t *seccomp_bpf; /* the snippet's filter (NULL: dev, none) */
        size_t seccomp_len;
        char *state_path; /* the per-VM state record (state.c), removed once QEMU is reaped */
} vm;

static void vm_kill(vm *v) {
        if (v->pid > 0) {
                kill(v->pid, SIGKILL);
                int st;
                while (waitpid(v->pid, &st, 0) < 0 && errno == EINTR)
                        ;
                v->pid = -1;
        }
}

static void vm_done(vm *v) {
        vm_kill(v);
        tr__kata_state_remove(TAKE_PTR(v->state_path));
        if (v->pidfd >= 0)
                close(v->pidfd);
        if (v->chan >= 0)
                close(v->chan);
        if (v->con >= 0)
                close(v->con);
        for (int i = 0; i < MAX_STREAMS; i++) {
                if (v->streams[i].fd >= 0)
                        close(v->streams[i].fd);
                tr__vf_buf_done(&v->streams[i].in);
        }
        /* After the streams: the session's threads see EOF and end. */
        tr__gw_session_free(v->gw);
        tr__vf_reader_done(&v->rd);
        tr__vf_buf_done(&v->outq);
        free(v->guest_error);
        free(v->seccomp_bpf);
}

/* The console tail, printable, for error messages (static buffer in `v`). */
static const char *console_tail(vm *v) {
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

static void console_read(vm *v) {
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

static stream *stream_find(vm *v, uint32_t id) {
        for (int i = 0; i < MAX_STREAMS; i++)
                if (v->streams[i].fd >= 0 && v->streams[i].id == id)
                        return &v->streams[i];
        return NULL;
}

static void stream_close(stream *s) {
        close(s->fd);
        s->fd = -1;
        tr__vf_buf_done(&s->in);
}

/* Queue a frame for the guest.  -ENOBUFS when the queue would pass
 * OUTQ_CAP (a guest provoking frames faster than it reads them), -ENOMEM. */
static int queue(vm *v, uint8_t type, uint32_t id, const void *data, size_t len) {
        if (v->outq.len + TR_VF_HEADER + 4 + len > OUTQ_CAP)
                return -ENOBUFS;
        uint8_t idb[4];
        tr__vf_put_u32(idb, id);
        return tr__vf_buf_frame(&v->outq, type, idb, 4, data, len);
}

/* Hand what a stream has buffered to the gateway session, without ever
 * waiting: 0 (possibly with bytes left for the next POLLOUT) or -errno when
 * the session end is gone. */
static int stream_flush(stream *s) {
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
static int queue_close(vm *v, uint32_t id, tr_error **ret_err) {
        int r = queue(v, TR_VF_GW_CLOSE, id, NULL, 0);
        if (r == -ENOBUFS)
                return fail_guest(ret_err, "more gateway frames than it reads back");
        if (r < 0)
                return tr_error_set(ret_err, TR_E_INTERNAL, KATA_KIND, "vm.gateway", "out of memory");
        return 0;
}

/* limits_enforced for this runner, decided here only: what is in force,
 * not what was asked for.  Timeout always (the host's deadline); the
 * others when the request sets them and the agent reports them applied
 * (`bits`); memory also needs QEMU's host cgroup cap (guest RAM +
 * overhead), without which the guest's memory.max alone would not bound
 * what the snippet costs the host (issue 15: the translation cache). */
static void set_enforced(vm *v, uint64_t bits) {
        const tr_kata_resources *rs = &v->spec->resources;
        tr_limits_enforced *le = tr_result_limits_enforced_mut(tr_exec_result(v->ex));
        le->timeout = true;
        le->memory = rs->memory_bytes > 0 && (bits & TR_VL_MEMORY) && v->host_memory_cap;
        le->pids = rs->pids_max > 0 && (bits & TR_VL_PIDS);
        le->cpu = rs->cpu_quota_ms > 0 && (bits & TR_VL_CPU);
        le->disk = rs->disk_bytes > 0 && (bits & TR_VL_DISK);
}

/* Handle one frame from the guest.  Returns 0, or a negative value with
 * *ret_err set when the frame is invalid here. */
static int guest_frame(vm *v, const tr__vf_frame *fr, tr_error **ret_err) {
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
                if (r >= 0)
                        r = tr__vf_tlv_add(&req, TR_VT_CODE, s->code, s->code_len);
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
                set_enforced(v, bits);
                v->started = true;
                v->started_ns = tr__now_ns();
                v->run_deadline = v->started_ns + v->run_timeout_ms * TR_NSEC_PER_MSEC;
                /* The request's timeout counts from here, for the gateway
                 * session's tool calls as for us: without this, a boot of a
                 * few seconds would eat the tool calls' time. */
                tr_exec_set_deadline_ns(v->ex, v->run_deadline);
                return 0;
        }
        case TR_VF_STDOUT:
        case TR_VF_STDERR:
                if (!v->started)
                        return fail_guest(ret_err, "output before the snippet started");
                if (fr->type == TR_VF_STDOUT)
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
                stream *slot = NULL;
                for (int i = 0; i < MAX_STREAMS && !slot; i++)
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
                stream *s = stream_find(v, tr__vf_get_u32(fr->payload));
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
                stream *s = stream_find(v, tr__vf_get_u32(fr->payload));
                if (s)
                        stream_close(s);
                return 0;
        }
        default: return fail_guest(ret_err, "a frame of an unexpected type");
        }
}

/* The state record `toolruntime gc` finds this VM by (state.c): QEMU's
 * pid and start time, and us as its owner.  QEMU also dies with us by
 * PR_SET_PDEATHSIG; the record covers the cases that signal misses.  Not
 * fatal: a caller that may not write the state dir (not root) still has
 * the death signal, and is told. */
static void record_vm(vm *v, const tr_kata_sandbox_spec *spec) {
        int64_t boot_ms = spec->boot_timeout_ms > 0 ? spec->boot_timeout_ms : TR_KATA_DEFAULT_BOOT_TIMEOUT_MS;
        int64_t expires = (int64_t) time(NULL) + (boot_ms + v->run_timeout_ms) / 1000 + 1 + TR_KATA_EXPIRY_MARGIN_SEC;
        int r = tr__kata_state_write(TR_KATA_STATE_DIR, v->pid, expires, &v->state_path);
        if (r < 0)
                tr_exec_log(v->ex, TR_LOG_WARN, "kata: no state record for gc", "dir", TR_KATA_STATE_DIR, "error",
                            strerror(-r), NULL);
}

static int check_files(const tr_kata_sandbox_spec *spec, tr_error **ret_err) {
        const char *files[] = { spec->kernel_path, spec->initrd_path, spec->image_path };
        const char *what[] = { "kernel", "initramfs", "root image" };
        for (size_t i = 0; i < ARRAY_SIZE(files); i++)
                if (!files[i] || access(files[i], R_OK) < 0)
                        return tr_error_set(ret_err, TR_E_KATA_NOT_AVAILABLE, KATA_KIND, "vm.files",
                                            "the guest %s %s is missing (build it with `toolruntime image "
                                            "build --vm`)",
                                            what[i], files[i] ? files[i] : "(unset)");
        return 0;
}

int tr__kata_qemu_run(void *self, const tr_kata_sandbox_spec *spec, tr_exec *ex, tr_error **ret_err) {
        tr__kata *k = self;
        int r;
        if (!spec->argv || !spec->argv[0])
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, KATA_KIND, "vm.spec", "no command");
        _cleanup_free_ char *qemu = NULL;
        const char *want = spec->runtime && *spec->runtime ? spec->runtime : "qemu-system-x86_64";
        if (tr__find_executable(want, &qemu) < 0)
                return tr_error_set(ret_err, TR_E_KATA_NOT_AVAILABLE, KATA_KIND, "vm.hypervisor",
                                    "the hypervisor %s is not installed (apt-get install qemu-system-x86)", want);
        r = check_files(spec, ret_err);
        if (r < 0)
                return r;
        tr_kata_accel accel = tr__kata_pick_accel(k, qemu, spec->accel);
        bool kvm = accel == TR_KATA_ACCEL_KVM;
        /* The host identity QEMU runs as: the one place it is chosen. */
        uid_t qemu_uid = spec->host_uid ? (uid_t) spec->host_uid : TR_KATA_QEMU_UID;
        int vcpus = tr__kata_vcpus(spec->resources.cpu_quota_ms, (int) sysconf(_SC_NPROCESSORS_ONLN));
        tr__kata_jail_cfg jc = { .qemu = qemu,
                                 .kernel = spec->kernel_path,
                                 .initrd = spec->initrd_path,
                                 .image = spec->image_path,
                                 .uid = qemu_uid,
                                 .gid = (gid_t) qemu_uid,
                                 .kvm = kvm,
                                 .memory_cap = tr__kata_qemu_memory_cap(spec->resources.memory_bytes),
                                 /* Its vCPUs' worth plus half a core for its
                                  * main loop (the channel's I/O: an output
                                  * flood keeps both busy); the guest's own
                                  * cpu.max applies the request's fraction,
                                  * and a tighter host cap would only slow
                                  * the boot. */
                                 .cpu_quota_us = (int64_t) vcpus * 100000 + 50000 };
        _cleanup_(tr__kata_jail_freep) tr__kata_jail *jail = NULL;
        r = tr__kata_jail_new(&jc, &jail, ret_err);
        if (r < 0)
                return r;
        /* QEMU sees the kernel and initramfs at its root's paths. */
        tr_kata_sandbox_spec in_jail = *spec;
        in_jail.kernel_path = tr__kata_jail_kernel(jail);
        in_jail.initrd_path = tr__kata_jail_initrd(jail);
        _cleanup_strv_ char **argv = NULL;
        r = tr__kata_qemu_argv(qemu, &in_jail, kvm, TR_KATA_QEMU_CHAN_FD, TR_KATA_QEMU_IMAGE_FD, &argv, ret_err);
        if (r < 0)
                return r;

        vm v = { .ex = ex,
                 .spec = spec,
                 .pid = -1,
                 .pidfd = -1,
                 .chan = -1,
                 .con = -1,
                 .run_timeout_ms = spec->timeout_ms > 0 ? spec->timeout_ms : TR_DEFAULT_TIMEOUT_MS,
                 /* tr__kata_jail_new succeeded: the cap is set, and QEMU
                  * starts inside the cgroup or not at all. */
                 .host_memory_cap = true };
        for (int i = 0; i < MAX_STREAMS; i++)
                v.streams[i].fd = -1;
        tr__vf_reader_init(&v.rd, GUEST_MAX_PAYLOAD);
        /* Before the boot: a custom profile libseccomp refuses fails here,
         * not after seconds of QEMU. */
        r = tr__kata_seccomp_bpf(spec, &v.seccomp_bpf, &v.seccomp_len, ret_err);
        if (r < 0)
                goto out;

        int sp[2], cp[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0) {
                r = tr_error_set(ret_err, TR_E_VM_CREATION_FAILED, KATA_KIND, "vm.socketpair", "socketpair: %m");
                goto out;
        }
        if (pipe2(cp, O_CLOEXEC) < 0) {
                close(sp[0]);
                close(sp[1]);
                r = tr_error_set(ret_err, TR_E_VM_CREATION_FAILED, KATA_KIND, "vm.pipe", "pipe: %m");
                goto out;
        }
        v.chan = sp[0];
        v.con = cp[0];
        r = tr__gw_session_new(ex, &v.gw, ret_err);
        if (r < 0) {
                close(sp[1]);
                close(cp[1]);
                goto out;
        }

        int64_t boot_start = tr__now_ns();
        pid_t pid = -1;
        r = tr__kata_jail_spawn(jail, &jc, argv, sp[1], cp[1], &pid, ret_err);
        close(sp[1]);
        close(cp[1]);
        if (r < 0)
                goto out;
        v.pid = pid;
        v.pidfd = (int) syscall(SYS_pidfd_open, pid, 0);
        if (v.pidfd < 0) {
                r = tr_error_set(ret_err, TR_E_VM_CREATION_FAILED, KATA_KIND, "vm.pidfd", "pidfd_open: %m");
                goto out;
        }
        record_vm(&v, spec);
        tr__fd_set_nonblock(v.chan, true);
        tr__fd_set_nonblock(v.con, true);
        tr_exec_log(ex, TR_LOG_INFO, "kata: VM starting", "accel", kvm ? "kvm" : "tcg", NULL);

        int64_t boot_timeout = spec->boot_timeout_ms > 0 ? spec->boot_timeout_ms : TR_KATA_DEFAULT_BOOT_TIMEOUT_MS;
        int64_t boot_deadline = boot_start + boot_timeout * TR_NSEC_PER_MSEC;
        int64_t run_timeout = v.run_timeout_ms;
        int cancel_fd = tr_exec_cancel_fd(ex);
        bool qemu_exited = false;
        r = 0;
        while (!v.done) {
                struct pollfd pf[4 + MAX_STREAMS];
                int n = 0;
                pf[n++] = (struct pollfd){ v.chan, (short) (POLLIN | (v.outq.len ? POLLOUT : 0)), 0 };
                pf[n++] = (struct pollfd){ v.con, POLLIN, 0 };
                pf[n++] = (struct pollfd){ qemu_exited ? -1 : v.pidfd, POLLIN, 0 };
                pf[n++] = (struct pollfd){ cancel_fd, POLLIN, 0 };
                bool backpressure = v.outq.len > OUTQ_HIGH;
                for (int i = 0; i < MAX_STREAMS; i++) {
                        short ev = (short) ((backpressure ? 0 : POLLIN) | (v.streams[i].in.len ? POLLOUT : 0));
                        pf[n++] = (struct pollfd){ ev ? v.streams[i].fd : -1, ev, 0 };
                }

                int64_t deadline = v.started ? v.run_deadline : boot_deadline;
                int k2 = poll(pf, (nfds_t) n, tr__poll_timeout_ms(deadline));
                if (k2 < 0 && errno != EINTR) {
                        r = tr_error_set(ret_err, TR_E_INTERNAL, KATA_KIND, "vm.poll", "poll: %m");
                        break;
                }
                if (cancel_fd >= 0 && (pf[3].revents & POLLIN)) {
                        r = tr_error_set(ret_err, TR_E_CANCELLED, KATA_KIND, "vm.run", "execution cancelled");
                        break;
                }
                if (tr__now_ns() >= deadline) {
                        if (v.started)
                                r = tr_error_set(ret_err, TR_E_TIMEOUT, KATA_KIND, "vm.run",
                                                 "the snippet did not finish within %" PRId64 " ms", run_timeout);
                        else {
                                r = tr_error_set(ret_err, TR_E_VM_CREATION_FAILED, KATA_KIND, "vm.boot",
                                                 "the VM did not boot within %" PRId64 " ms (%s); console: %s",
                                                 boot_timeout, kvm ? "kvm" : "tcg", console_tail(&v));
                                /* A KVM that stopped running guests since
                                 * it was probed: probe again next time. */
                                if (kvm && spec->accel == TR_KATA_ACCEL_AUTO)
                                        tr__kata_kvm_forget(k);
                        }
                        break;
                }
                if (pf[1].revents & (POLLIN | POLLHUP | POLLERR))
                        console_read(&v);
                if (pf[0].revents & POLLOUT) {
                        /* send(MSG_NOSIGNAL): a QEMU that died must not
                         * SIGPIPE the caller's process. */
                        ssize_t w = send(v.chan, v.outq.data, v.outq.len, MSG_NOSIGNAL);
                        if (w > 0)
                                tr__vf_buf_consume(&v.outq, (size_t) w);
                }
                if (pf[0].revents & (POLLIN | POLLHUP | POLLERR)) {
                        ssize_t got = tr__vf_reader_read_fd(&v.rd, v.chan);
                        tr__vf_frame fr;
                        int m;
                        while (r == 0 && !v.done && (m = tr__vf_reader_next(&v.rd, &fr)) != 0) {
                                if (m < 0)
                                        r = fail_guest(ret_err,
                                                       m == -EMSGSIZE ? "an oversized frame" : "a malformed frame");
                                else
                                        r = guest_frame(&v, &fr, ret_err);
                        }
                        if (r < 0)
                                break;
                        if (got == 0 && !v.done) {
                                /* The channel closed: QEMU is gone or going. */
                                qemu_exited = true;
                        } else if (got < 0 && got != -EAGAIN) {
                                r = fail_guest(ret_err, "an unreadable stream");
                                break;
                        }
                }
                for (int i = 0; i < MAX_STREAMS && r == 0; i++) {
                        stream *s = &v.streams[i];
                        /* A stream closed (or a slot reused) while handling
                         * the guest's frames above: its revents are stale. */
                        if (s->fd < 0 || s->fd != pf[4 + i].fd)
                                continue;
                        if (s->in.len && (pf[4 + i].revents & (POLLOUT | POLLERR | POLLHUP)) && stream_flush(s) < 0) {
                                uint32_t id = s->id;
                                stream_close(s);
                                r = queue_close(&v, id, ret_err);
                                continue;
                        }
                        /* Stop reading once the guest has enough queued. */
                        if (v.outq.len > OUTQ_HIGH || !(pf[4 + i].revents & (POLLIN | POLLHUP | POLLERR)))
                                continue;
                        uint8_t buf[TR_VF_CHUNK];
                        ssize_t got = read(s->fd, buf, sizeof(buf));
                        if (got > 0) {
                                int q = queue(&v, TR_VF_GW_DATA, s->id, buf, (size_t) got);
                                if (q == -ENOBUFS)
                                        r = fail_guest(ret_err, "more gateway frames than it reads back");
                                else if (q < 0)
                                        r = tr_error_set(ret_err, TR_E_INTERNAL, KATA_KIND, "vm.gateway",
                                                         "out of memory");
                        } else if (got == 0 || (errno != EAGAIN && errno != EINTR)) {
                                uint32_t id = s->id;
                                stream_close(s);
                                r = queue_close(&v, id, ret_err);
                        }
                }
                if (r < 0)
                        break;
                if (!v.done && (qemu_exited || (pf[2].revents & POLLIN))) {
                        /* Drain what the console still holds, for the
                         * message. */
                        while (v.con >= 0) {
                                struct pollfd cpf = { v.con, POLLIN, 0 };
                                if (poll(&cpf, 1, 50) <= 0)
                                        break;
                                console_read(&v);
                        }
                        if (tr__kata_jail_oom_killed(jail))
                                r = tr_error_set(ret_err, TR_E_RESOURCE_LIMIT, KATA_KIND, "vm.run",
                                                 "QEMU reached its host memory cap of %" PRId64
                                                 " bytes (guest RAM + %lld MiB) and was killed",
                                                 jc.memory_cap, TR_KATA_QEMU_OVERHEAD >> 20);
                        else if (!v.hello)
                                r = tr_error_set(ret_err, TR_E_VM_CREATION_FAILED, KATA_KIND, "vm.boot",
                                                 "the VM stopped before its agent started; console: %s",
                                                 console_tail(&v));
                        else
                                r = tr_error_set(ret_err, TR_E_VM_EXECUTION_FAILED, KATA_KIND, "vm.run",
                                                 "the VM stopped before the snippet finished; console: %s",
                                                 console_tail(&v));
                        break;
                }
        }
        int64_t end_ns = tr__now_ns();

        tr_result *res = tr_exec_result(ex);
        char num[32];
        snprintf(num, sizeof(num), "%" PRId64,
                 (int64_t) (((v.started ? v.started_ns : end_ns) - boot_start) / TR_NSEC_PER_MSEC));
        (void) tr_result_set_backend_detail(res, "boot_ms", num, NULL);
        (void) tr_result_set_backend_detail(res, "accel", kvm ? "kvm" : "tcg", NULL);
        (void) tr_result_set_backend_detail(res, "machine", "microvm", NULL);
        if (r == 0 && v.done) {
                switch (v.exit_kind) {
                case TR_VF_EXITED: tr_result_set_exit_code(res, (int) v.exit_code); break;
                case TR_VF_SIGNALED: tr_result_set_signal(res, (int) v.exit_code); break;
                case TR_VF_OOM:
                        /* Killed by the OOM killer: SIGKILL, as containerd
                         * reports it, and resource_limit. */
                        tr_result_set_exit_code(res, -1);
                        tr_result_set_signal(res, (int) v.exit_code);
                        r = tr_error_set(ret_err, TR_E_RESOURCE_LIMIT, KATA_KIND, "vm.run",
                                         "the snippet exceeded its memory limit of %" PRId64 " bytes",
                                         spec->resources.memory_bytes);
                        break;
                }
        } else {
                tr_result_set_exit_code(res, -1);
        }
out:
        /* SIGKILL takes the whole VM at once; the guest has nothing to save.
         * Reaped here, so nothing outlives the call. */
        vm_done(&v);
        return r;
}

int tr__kata_qemu_check(tr__kata *k, char **ret_detail, tr_error **ret_err) {
        _cleanup_free_ char *qemu = NULL;
        const char *want = k->runtime_path ? k->runtime_path : "qemu-system-x86_64";
        if (tr__find_executable(want, &qemu) < 0)
                return tr_error_set(ret_err, TR_E_KATA_NOT_AVAILABLE, KATA_KIND, "check",
                                    "the hypervisor %s is not installed (apt-get install qemu-system-x86)", want);
        tr_kata_sandbox_spec s = { .kernel_path = k->kernel_path,
                                   .initrd_path = k->initrd_path,
                                   .image_path = k->image_path };
        int r = check_files(&s, ret_err);
        if (r < 0)
                return r;
        tr_kata_accel a = tr__kata_pick_accel(k, qemu, k->accel);
        if (ret_detail) {
                char *d = NULL;
                if (asprintf(&d, "qemu %s, accel %s%s, kernel %s, initrd %s, image %s", qemu,
                             a == TR_KATA_ACCEL_KVM ? "kvm" : "tcg",
                             a == TR_KATA_ACCEL_KVM ? "" : " (no usable /dev/kvm: boots take seconds)", k->kernel_path,
                             k->initrd_path, k->image_path) < 0)
                        return tr_error_set(ret_err, TR_E_INTERNAL, KATA_KIND, "check", "out of memory");
                *ret_detail = d;
        }
        return 0;
}
