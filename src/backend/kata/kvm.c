/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Is /dev/kvm usable?  Opening it is not enough: some nested setups (this
 * project's own CI machines) let KVM_CREATE_VM succeed, even run a few
 * real-mode instructions, and then hang the Linux boot forever.  So the
 * probe has two steps, each in a child process killed at its deadline
 * (a hung KVM_RUN cannot be interrupted from another thread):
 *
 *   1. one page holding `hlt`, in real mode, must exit with KVM_EXIT_HLT
 *      (fails fast where KVM is absent or refused);
 *   2. QEMU must boot the guest kernel under KVM to its "no root" panic and
 *      exit (panic=-1, -no-reboot), which a working KVM does in well under
 *      a second.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend/kata/internal.h"
#include "util/macros.h"

#define PROBE_TIMEOUT_MS      1000
#define BOOT_PROBE_TIMEOUT_MS 2000

/* Child only: raw system calls, no allocation (the parent may have threads). */
static int probe_child(void) {
        int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
        if (kvm < 0)
                return 1;
        if (ioctl(kvm, KVM_GET_API_VERSION, 0) != KVM_API_VERSION)
                return 2;
        int vm = ioctl(kvm, KVM_CREATE_VM, 0);
        if (vm < 0)
                return 3;
        void *mem = mmap(NULL, 0x1000, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (mem == MAP_FAILED)
                return 4;
        ((unsigned char *) mem)[0] = 0xf4; /* hlt */
        struct kvm_userspace_memory_region region = {
                .slot = 0, .guest_phys_addr = 0x1000, .memory_size = 0x1000, .userspace_addr = (unsigned long) mem
        };
        if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0)
                return 5;
        int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
        if (vcpu < 0)
                return 6;
        int sz = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
        if (sz <= 0)
                return 7;
        struct kvm_run *run = mmap(NULL, (size_t) sz, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
        if (run == MAP_FAILED)
                return 8;
        struct kvm_sregs sregs;
        if (ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0)
                return 9;
        sregs.cs.base = 0;
        sregs.cs.selector = 0;
        if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0)
                return 10;
        struct kvm_regs regs;
        memset(&regs, 0, sizeof(regs));
        regs.rip = 0x1000;
        regs.rflags = 0x2;
        if (ioctl(vcpu, KVM_SET_REGS, &regs) < 0)
                return 11;
        if (ioctl(vcpu, KVM_RUN, 0) < 0)
                return 12;
        return run->exit_reason == KVM_EXIT_HLT ? 0 : 13;
}

/* Wait for `pid` at most `ms`, killing it then; true when it exited 0. */
static bool wait_ok(pid_t pid, int ms) {
        int pidfd = (int) syscall(SYS_pidfd_open, pid, 0), status = 0;
        if (pidfd >= 0) {
                struct pollfd pf = { pidfd, POLLIN, 0 };
                int k;
                do
                        k = poll(&pf, 1, ms);
                while (k < 0 && errno == EINTR);
                if (k <= 0)
                        kill(pid, SIGKILL);
                close(pidfd);
        } else {
                kill(pid, SIGKILL); /* cannot wait boundedly: assume no */
        }
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
        return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

int tr__kata_kvm_usable(const char *qemu, const char *kernel) {
        if (access("/dev/kvm", R_OK | W_OK) < 0)
                return 0;
        pid_t pid = fork();
        if (pid < 0)
                return 0;
        if (pid == 0)
                _exit(probe_child());
        if (!wait_ok(pid, PROBE_TIMEOUT_MS))
                return 0;
        if (!qemu || !kernel)
                return 1;
        char *const argv[] = {
                (char *) qemu, "-M",         "microvm",     "-accel",          "kvm",      "-cpu",           "host",
                "-m",          "128",        "-nodefaults", "-no-user-config", "-display", "none",           "-monitor",
                "none",        "-no-reboot", "-kernel",     (char *) kernel,   "-append",  "panic=-1 quiet", NULL
        };
        pid = fork();
        if (pid < 0)
                return 0;
        if (pid == 0) {
                int null = open("/dev/null", O_RDWR | O_CLOEXEC);
                if (null >= 0) {
                        dup2(null, 0);
                        dup2(null, 1);
                        dup2(null, 2);
                }
                execv(qemu, argv);
                _exit(127);
        }
        return wait_ok(pid, BOOT_PROBE_TIMEOUT_MS);
}

tr_kata_accel tr__kata_pick_accel(tr__kata *k, const char *qemu, tr_kata_accel want) {
        if (want != TR_KATA_ACCEL_AUTO)
                return want;
        pthread_mutex_lock(&k->lock);
        if (k->kvm_probe < 0)
                k->kvm_probe = tr__kata_kvm_usable(qemu, k->kernel_path);
        int usable = k->kvm_probe;
        pthread_mutex_unlock(&k->lock);
        return usable ? TR_KATA_ACCEL_KVM : TR_KATA_ACCEL_TCG;
}
