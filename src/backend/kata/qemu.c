/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Runner 1: one QEMU microVM per execution (the boot and the lifecycle; the
 * channel's frame loop is vmloop.c).
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
 * The lifecycle: prepare boots the VM (bounded by boot_timeout_ms,
 * vm_creation_failed) until the agent's STARTED: the interpreter is up and
 * reads its stdin, which stays open; the VM then waits, unattended, for
 * at most TR_KATA_IDLE_BACKSTOP_MS before its agent powers it off.  run
 * sends the code (and the snippet's input) as STDIN frames and drives the
 * frame loop (vmloop.c) until EXIT; the request's timeout counts from
 * there, not from the boot, because a TCG boot takes seconds the user did
 * not ask for (the execution's deadline, which the gateway's tool calls
 * obey, is set to the same instant).  On timeout or cancel the run fails
 * at once; destroy SIGKILLs QEMU, reaps it, and removes its per-VM
 * directory, cgroup and state record, whatever state the VM is in.
 * execute (tr__kata_qemu_run) is the three in a row.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
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

#include "backend/kata/vm.h"
#include "core/plan.h"
#include "util/frame.h"
#include "util/handles.h"
#include "util/macros.h"
#include "util/proc.h"
#include "util/strv.h"
#include "util/timeutil.h"

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

/* The state record `toolruntime gc` finds this VM by (state.c): QEMU's
 * pid and start time, us as its owner, and when it expires even if we
 * live: now + `ms` + a margin.  QEMU also dies with our thread by
 * PR_SET_PDEATHSIG; the record covers the cases that signal misses.  Not
 * fatal: a caller that may not write the state dir (not root) still has
 * the death signal, and is told.  Rewritten when the run moves the bound. */
static void record_vm(tr__kata_vm *v, int64_t ms) {
        int64_t expires = (int64_t) time(NULL) + ms / 1000 + 1 + TR_KATA_EXPIRY_MARGIN_SEC;
        char *old = TAKE_PTR(v->state_path);
        int r = tr__kata_state_write(TR_KATA_STATE_DIR, v->pid, expires, &v->state_path);
        tr__kata_state_remove(old);
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

static void keeper_stop(tr__kata_vm *v);

void tr__kata_qemu_destroy(tr__kata_vm *v) {
        if (!v)
                return;
        /* SIGKILL takes the whole VM at once; the guest has nothing to
         * save.  Reaped here, so nothing outlives the sandbox. */
        tr__kata_vm_session_stop(v);
        if (v->pid > 0) {
                kill(v->pid, SIGKILL);
                int st;
                while (waitpid(v->pid, &st, 0) < 0 && errno == EINTR)
                        ;
                v->pid = -1;
        }
        keeper_stop(v);
        tr__kata_state_remove(TAKE_PTR(v->state_path));
        tr__closep(&v->pidfd);
        tr__closep(&v->chan);
        tr__closep(&v->con);
        tr__kata_vm_end_gateway(v);
        /* QEMU is reaped: its cgroup and directories can go. */
        tr__kata_jail_free(v->jail);
        tr__vf_reader_done(&v->rd);
        tr__vf_buf_done(&v->outq);
        tr__vf_buf_done(&v->sess_out);
        tr__vf_buf_done(&v->sess_err);
        free(v->guest_error);
        free(v->seccomp_bpf);
        free(v);
}

/* QEMU's parent thread.  PR_SET_PDEATHSIG (jail.c: QEMU dies with its
 * parent) fires when the THREAD that forked QEMU exits, not the process:
 * a VM prepared by a short-lived thread (an HTTP connection's creating a
 * session, a caller's own thread) would die with it.  So every VM is
 * spawned by a keeper thread of its own that waits until destroy; a
 * killed caller still takes QEMU with it (the keeper dies with the
 * process).  Any thread may wait for QEMU: it is the process's child. */
typedef struct keeper {
        pthread_t thread;
        int stop[2]; /* destroy closes stop[1]: the keeper returns */
        tr__kata_vm *v;
        const tr__kata_jail_cfg *jc;
        char *const *argv;
        int chan, con;
        pid_t pid;
        int r;
        tr_error *err;
        sem_t spawned;
} keeper;

static void *keeper_main(void *arg) {
        keeper *kp = arg;
        kp->r = tr__kata_jail_spawn(kp->v->jail, kp->jc, kp->argv, kp->chan, kp->con, &kp->pid, &kp->err);
        int stop = kp->stop[0];
        bool wait = kp->r >= 0;
        sem_post(&kp->spawned); /* `kp`'s spawn fields are the caller's from here */
        if (wait) {
                struct pollfd pf = { stop, POLLIN, 0 };
                while (poll(&pf, 1, -1) < 0 && errno == EINTR)
                        ;
        }
        return NULL;
}

static void keeper_stop(tr__kata_vm *v) {
        keeper *kp = v->keeper;
        if (!kp)
                return;
        tr__closep(&kp->stop[1]);
        pthread_join(kp->thread, NULL);
        tr__closep(&kp->stop[0]);
        sem_destroy(&kp->spawned);
        free(kp);
        v->keeper = NULL;
}

static int spawn_kept(tr__kata_vm *v, const tr__kata_jail_cfg *jc, char *const *argv, int chan, int con, pid_t *ret_pid,
                      tr_error **ret_err) {
        keeper *kp = calloc(1, sizeof(*kp));
        if (!kp)
                return tr_error_set(ret_err, TR_E_INTERNAL, KATA_KIND, "vm.spawn", "out of memory");
        *kp = (keeper){ .stop = { -1, -1 }, .v = v, .jc = jc, .argv = argv, .chan = chan, .con = con, .pid = -1 };
        sem_init(&kp->spawned, 0, 0);
        if (pipe2(kp->stop, O_CLOEXEC) < 0 || pthread_create(&kp->thread, NULL, keeper_main, kp) != 0) {
                tr__closep(&kp->stop[0]);
                tr__closep(&kp->stop[1]);
                sem_destroy(&kp->spawned);
                free(kp);
                return tr_error_set(ret_err, TR_E_VM_CREATION_FAILED, KATA_KIND, "vm.spawn",
                                    "cannot start QEMU's keeper thread");
        }
        v->keeper = kp;
        while (sem_wait(&kp->spawned) < 0 && errno == EINTR)
                ;
        if (kp->r < 0) {
                int r = kp->r;
                if (ret_err)
                        *ret_err = TAKE_PTR(kp->err);
                tr_error_free(kp->err);
                keeper_stop(v);
                return r;
        }
        *ret_pid = kp->pid;
        return 0;
}

/* Spawn QEMU in its jail for `v` (its fields set up by prepare). */
static int boot(tr__kata_vm *v, const char *qemu, tr_error **ret_err) {
        const tr_kata_sandbox_spec *spec = v->spec;
        /* The host identity QEMU runs as: the one place it is chosen. */
        uid_t qemu_uid = spec->host_uid ? (uid_t) spec->host_uid : TR_KATA_QEMU_UID;
        int vcpus = tr__kata_vcpus(spec->resources.cpu_quota_ms, (int) sysconf(_SC_NPROCESSORS_ONLN));
        tr__kata_jail_cfg jc = { .qemu = qemu,
                                 .kernel = spec->kernel_path,
                                 .initrd = spec->initrd_path,
                                 .image = spec->image_path,
                                 .uid = qemu_uid,
                                 .gid = (gid_t) qemu_uid,
                                 .kvm = v->kvm,
                                 .memory_cap = v->memory_cap,
                                 /* Its vCPUs' worth plus half a core for its
                                  * main loop (the channel's I/O: an output
                                  * flood keeps both busy); the guest's own
                                  * cpu.max applies the request's fraction,
                                  * and a tighter host cap would only slow
                                  * the boot. */
                                 .cpu_quota_us = (int64_t) vcpus * 100000 + 50000 };
        int r = tr__kata_jail_new(&jc, &v->jail, ret_err);
        if (r < 0)
                return r;
        /* tr__kata_jail_new succeeded: the cap is set, and QEMU starts
         * inside the cgroup or not at all. */
        v->host_memory_cap = true;
        /* QEMU sees the kernel and initramfs at its root's paths. */
        tr_kata_sandbox_spec in_jail = *spec;
        in_jail.kernel_path = tr__kata_jail_kernel(v->jail);
        in_jail.initrd_path = tr__kata_jail_initrd(v->jail);
        _cleanup_strv_ char **argv = NULL;
        r = tr__kata_qemu_argv(qemu, &in_jail, v->kvm, TR_KATA_QEMU_CHAN_FD, TR_KATA_QEMU_IMAGE_FD, &argv, ret_err);
        if (r < 0)
                return r;
        int sp[2], cp[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
                return tr_error_set(ret_err, TR_E_VM_CREATION_FAILED, KATA_KIND, "vm.socketpair", "socketpair: %m");
        if (pipe2(cp, O_CLOEXEC) < 0) {
                close(sp[0]);
                close(sp[1]);
                return tr_error_set(ret_err, TR_E_VM_CREATION_FAILED, KATA_KIND, "vm.pipe", "pipe: %m");
        }
        v->chan = sp[0];
        v->con = cp[0];
        v->boot_start = tr__now_ns();
        v->boot_deadline = v->boot_start + v->boot_timeout_ms * TR_NSEC_PER_MSEC;
        pid_t pid = -1;
        r = spawn_kept(v, &jc, argv, sp[1], cp[1], &pid, ret_err);
        close(sp[1]);
        close(cp[1]);
        if (r < 0)
                return r;
        v->pid = pid;
        v->pidfd = (int) syscall(SYS_pidfd_open, pid, 0);
        if (v->pidfd < 0)
                return tr_error_set(ret_err, TR_E_VM_CREATION_FAILED, KATA_KIND, "vm.pidfd", "pidfd_open: %m");
        /* Until the run: the boot, the wait for code, the shape's timeout. */
        record_vm(v, v->boot_timeout_ms + v->idle_ms + v->run_timeout_ms);
        tr__fd_set_nonblock(v->chan, true);
        tr__fd_set_nonblock(v->con, true);
        return 0;
}

int tr__kata_qemu_prepare(tr__kata *k, const tr_kata_sandbox_spec *spec, tr_exec *ex, bool session,
                          tr__kata_vm **ret_vm, tr_error **ret_err) {
        *ret_vm = NULL;
        if (!spec->argv || !spec->argv[0])
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, KATA_KIND, "vm.spec", "no command");
        _cleanup_free_ char *qemu = NULL;
        const char *want = spec->runtime && *spec->runtime ? spec->runtime : "qemu-system-x86_64";
        if (tr__find_executable(want, &qemu) < 0)
                return tr_error_set(ret_err, TR_E_KATA_NOT_AVAILABLE, KATA_KIND, "vm.hypervisor",
                                    "the hypervisor %s is not installed (apt-get install qemu-system-x86)", want);
        int r = check_files(spec, ret_err);
        if (r < 0)
                return r;
        tr__kata_vm *v = calloc(1, sizeof(*v));
        if (!v)
                return tr_error_set(ret_err, TR_E_INTERNAL, KATA_KIND, "vm.prepare", "out of memory");
        *v = (tr__kata_vm){ .k = k,
                            .ex = ex,
                            .spec = spec,
                            .kvm = tr__kata_pick_accel(k, qemu, spec->accel) == TR_KATA_ACCEL_KVM,
                            .memory_cap = tr__kata_qemu_memory_cap(spec->resources.memory_bytes),
                            .pid = -1,
                            .pidfd = -1,
                            .chan = -1,
                            .con = -1,
                            .boot_timeout_ms =
                                    spec->boot_timeout_ms > 0 ? spec->boot_timeout_ms : TR_KATA_DEFAULT_BOOT_TIMEOUT_MS,
                            .run_timeout_ms = spec->timeout_ms > 0 ? spec->timeout_ms : TR_DEFAULT_TIMEOUT_MS,
                            .session = session,
                            .idle_ms = TR_KATA_IDLE_BACKSTOP_MS };
        /* A session's first execution may come much later: its backstop is
         * the session's own (the exec's deadline, its TTL), plus a margin. */
        if (session)
                v->idle_ms = tr_exec_remaining_ms(ex) + 60 * 1000;
        for (int i = 0; i < TR_KATA_MAX_STREAMS; i++)
                v->streams[i].fd = -1;
        tr__vf_reader_init(&v->rd, TR_KATA_GUEST_MAX_PAYLOAD);
        /* Before the boot: a custom profile libseccomp refuses fails here,
         * not after seconds of QEMU. */
        r = tr__kata_seccomp_bpf(spec, &v->seccomp_bpf, &v->seccomp_len, ret_err);
        if (r >= 0)
                r = boot(v, qemu, ret_err);
        if (r >= 0) {
                tr_exec_log(ex, TR_LOG_INFO, "kata: VM starting", "accel", v->kvm ? "kvm" : "tcg", NULL);
                /* Up to the agent's STARTED: the interpreter runs, waiting
                 * for its code on stdin. */
                r = tr__kata_vm_loop(v, TR_KATA_VM_BOOT, ret_err);
        }
        /* A session's channel is served by its thread from here on. */
        if (r >= 0 && session)
                r = tr__kata_vm_session_start(v, ret_err);
        tr_result *res = tr_exec_result(ex);
        char num[32];
        snprintf(num, sizeof(num), "%" PRId64,
                 (int64_t) (((v->started ? v->started_ns : tr__now_ns()) - v->boot_start) / TR_NSEC_PER_MSEC));
        if (v->boot_start)
                (void) tr_result_set_backend_detail(res, "boot_ms", num, NULL);
        (void) tr_result_set_backend_detail(res, "accel", v->kvm ? "kvm" : "tcg", NULL);
        (void) tr_result_set_backend_detail(res, "machine", "microvm", NULL);
        if (r < 0) {
                tr__kata_qemu_destroy(v);
                return r;
        }
        *ret_vm = v;
        return 0;
}

int tr__kata_qemu_exec(tr__kata_vm *v, const tr_kata_sandbox_spec *spec, tr_exec *ex, tr_error **ret_err) {
        tr_result *res = tr_exec_result(ex);
        tr_result_set_exit_code(res, -1);
        if (!v->started || v->done || v->session)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, KATA_KIND, "vm.run",
                                    "the VM is not waiting for code");
        v->ex = ex;
        v->spec = spec;
        /* The request's timeout counts from here, for the gateway session's
         * tool calls as for us: the boot (seconds under TCG) happened
         * before, in prepare, and is not the snippet's time. */
        v->run_timeout_ms = spec->timeout_ms > 0 ? spec->timeout_ms : TR_DEFAULT_TIMEOUT_MS;
        v->run_deadline = tr__now_ns() + v->run_timeout_ms * TR_NSEC_PER_MSEC;
        tr_exec_set_deadline_ns(ex, v->run_deadline);
        record_vm(v, v->run_timeout_ms);
        /* Tools are bound now: the core's session serves this run only. */
        v->gw = tr__exec_gateway(ex);
        int r = tr__kata_vm_queue_stdin(v, spec->code, spec->code_len, true, ret_err);
        if (r >= 0)
                r = tr__kata_vm_loop(v, TR_KATA_VM_RUN, ret_err);
        if (r >= 0 && v->done) {
                switch (v->exit_kind) {
                case TR_VF_EXITED: tr_result_set_exit_code(res, (int) v->exit_code); break;
                case TR_VF_SIGNALED: tr_result_set_signal(res, (int) v->exit_code); break;
                case TR_VF_OOM:
                        /* Killed by the OOM killer: SIGKILL, as containerd
                         * reports it, and resource_limit. */
                        tr_result_set_signal(res, (int) v->exit_code);
                        r = tr_error_set(ret_err, TR_E_RESOURCE_LIMIT, KATA_KIND, "vm.run",
                                         "the snippet exceeded its memory limit of %" PRId64 " bytes",
                                         spec->resources.memory_bytes);
                        break;
                }
        }
        /* The gateway streams end with the run (the VM itself goes at
         * destroy); the core then closes the session. */
        tr__kata_vm_end_gateway(v);
        return r;
}

int tr__kata_qemu_run(void *self, const tr_kata_sandbox_spec *spec, tr_exec *ex, tr_error **ret_err) {
        tr__kata_vm *v = NULL;
        int r = tr__kata_qemu_prepare(self, spec, ex, false, &v, ret_err);
        if (r < 0) {
                tr_result_set_exit_code(tr_exec_result(ex), -1);
                return r;
        }
        r = tr__kata_qemu_exec(v, spec, ex, ret_err);
        tr__kata_qemu_destroy(v);
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
