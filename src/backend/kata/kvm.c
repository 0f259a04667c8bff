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
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
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

/*
 * The verdict outlives the process.  Where KVM hangs (as here) the probe
 * costs BOOT_PROBE_TIMEOUT_MS, and the CLI is one process per execution:
 * without a cache every `toolruntime exec -b kata` would pay it again.  The
 * file lives on /run (a tmpfs: gone at reboot, when /dev/kvm may have
 * changed) and is keyed by the boot id, the QEMU binary and the kernel; it
 * is trusted only when its directory and itself belong to us and nobody
 * else may write them.  A KVM boot that times out removes it (see
 * tr__kata_kvm_forget), so a KVM that breaks later costs one failed boot.
 */
static bool trusted(const struct stat *st, bool dir) {
        return st->st_uid == geteuid() && !(st->st_mode & 022) && (dir ? S_ISDIR(st->st_mode) : S_ISREG(st->st_mode));
}

static bool cache_dir_ok(bool create) {
        struct stat st;
        if (create && mkdir(TR_KATA_PROBE_CACHE_DIR, 0700) < 0 && errno != EEXIST)
                return false;
        return lstat(TR_KATA_PROBE_CACHE_DIR, &st) == 0 && trusted(&st, true);
}

/* "boot-id qemu dev:ino:size:mtime kernel dev:ino:size:mtime", or false
 * when something cannot be identified (then no caching). */
static bool cache_key(const char *qemu, const char *kernel, char *buf, size_t n) {
        char boot[64] = "";
        _cleanup_close_ int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
        ssize_t m = fd >= 0 ? read(fd, boot, sizeof(boot) - 1) : -1;
        if (m <= 0)
                return false;
        boot[strcspn(boot, "\n")] = 0;
        struct stat q, kn;
        if (stat(qemu, &q) < 0 || stat(kernel, &kn) < 0 || strchr(qemu, '\n') || strchr(kernel, '\n'))
                return false;
        int w = snprintf(buf, n, "%s %s %ju:%ju:%jd:%jd.%09ld %s %ju:%ju:%jd:%jd.%09ld", boot, qemu,
                         (uintmax_t) q.st_dev, (uintmax_t) q.st_ino, (intmax_t) q.st_size, (intmax_t) q.st_mtim.tv_sec,
                         q.st_mtim.tv_nsec, kernel, (uintmax_t) kn.st_dev, (uintmax_t) kn.st_ino, (intmax_t) kn.st_size,
                         (intmax_t) kn.st_mtim.tv_sec, kn.st_mtim.tv_nsec);
        return w > 0 && (size_t) w < n;
}

/* The cached verdict for `key`: 0 or 1, -1 when there is none. */
static int cache_read(const char *key) {
        if (!cache_dir_ok(false))
                return -1;
        _cleanup_close_ int fd = open(TR_KATA_PROBE_CACHE, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) < 0 || !trusted(&st, false))
                return -1;
        char buf[TR_KATA_PROBE_KEY_MAX + 8];
        ssize_t m = read(fd, buf, sizeof(buf) - 1);
        if (m <= 0)
                return -1;
        buf[m] = 0;
        /* key, '\n', verdict, '\n' */
        size_t kl = strlen(key);
        if ((size_t) m != kl + 3 || memcmp(buf, key, kl) != 0 || buf[kl] != '\n' || buf[kl + 2] != '\n' ||
            (buf[kl + 1] != '0' && buf[kl + 1] != '1'))
                return -1;
        return buf[kl + 1] - '0';
}

/* Best effort: a cache that cannot be written only costs the next probe. */
static void cache_write(const char *key, int verdict) {
        if (!cache_dir_ok(true))
                return;
        char tmp[sizeof(TR_KATA_PROBE_CACHE) + 32];
        snprintf(tmp, sizeof(tmp), "%s.%ld", TR_KATA_PROBE_CACHE, (long) getpid());
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
                return;
        bool ok = dprintf(fd, "%s\n%d\n", key, verdict ? 1 : 0) > 0;
        ok = close(fd) == 0 && ok;
        if (!ok || rename(tmp, TR_KATA_PROBE_CACHE) < 0)
                unlink(tmp);
}

tr_kata_accel tr__kata_pick_accel(tr__kata *k, const char *qemu, tr_kata_accel want) {
        if (want != TR_KATA_ACCEL_AUTO)
                return want;
        pthread_mutex_lock(&k->lock);
        if (k->kvm_probe < 0) {
                char key[TR_KATA_PROBE_KEY_MAX];
                bool keyed = qemu && k->kernel_path && cache_key(qemu, k->kernel_path, key, sizeof(key));
                if (keyed)
                        k->kvm_probe = cache_read(key);
                if (k->kvm_probe < 0) {
                        k->kvm_probe = tr__kata_kvm_usable(qemu, k->kernel_path);
                        if (keyed)
                                cache_write(key, k->kvm_probe);
                }
        }
        int usable = k->kvm_probe;
        pthread_mutex_unlock(&k->lock);
        return usable ? TR_KATA_ACCEL_KVM : TR_KATA_ACCEL_TCG;
}

void tr__kata_kvm_forget(tr__kata *k) {
        pthread_mutex_lock(&k->lock);
        k->kvm_probe = -1;
        if (cache_dir_ok(false))
                unlink(TR_KATA_PROBE_CACHE);
        pthread_mutex_unlock(&k->lock);
}
