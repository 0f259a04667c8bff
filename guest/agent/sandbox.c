/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Stages 3 and 4 of the guest agent: what the snippet runs inside.  Its
 * filesystem (the read-only root image, a /tmp of DiskBytes, a minimal /dev,
 * /proc and the /run that holds the gateway socket), the loopback interface,
 * and its cgroup (memory.max / pids.max / cpu.max) with the OOM report and
 * the thrash watch that turns thrashing at memory.max into an OOM.
 */
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "agent.h"

/* ---- stage 3: the snippet's filesystem --------------------------------- */

static void mknod_dev(agent *a, const char *name, unsigned maj, unsigned min) {
        char p[128];
        snprintf(p, sizeof(p), NEWROOT "/dev/%s", name);
        if (mknod(p, S_IFCHR | 0666, makedev(maj, min)) < 0)
                tr__agent_fail(a, "mknod %s: %s", p, strerror(errno));
        chmod(p, 0666);
}

void tr__agent_setup_root(agent *a, const request *req) {
        int64_t end = tr__agent_now_ms() + DEVICE_WAIT_MS;
        while (access("/dev/vda", F_OK) < 0) {
                if (tr__agent_now_ms() > end)
                        tr__agent_fail(a, "the root disk /dev/vda did not appear");
                tr__agent_sleep_ms(2);
        }
        tr__agent_mkdir_p(NEWROOT, 0755);
        /* Read-only (QEMU opened the image read-only as well), nosuid and
         * nodev: nothing in the image can grant privileges or reach devices. */
        if (mount("/dev/vda", NEWROOT, "ext4", MS_RDONLY | MS_NOSUID | MS_NODEV, "noload") < 0 &&
            mount("/dev/vda", NEWROOT, "erofs", MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) < 0)
                tr__agent_fail(a, "mounting the root image: %s", strerror(errno));

        /* The only writable place: a tmpfs of DiskBytes, so a disk fill ends
         * at the limit (ENOSPC) and never touches the image. */
        char opts[128];
        uint64_t disk = req->disk ? req->disk : DEFAULT_DISK;
        snprintf(opts, sizeof(opts), "size=%llu,mode=1777", (unsigned long long) disk);
        if (mount("tmpfs", NEWROOT "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, opts) < 0)
                tr__agent_fail(a, "mounting /tmp: %s", strerror(errno));
        if (req->disk)
                a->applied |= TR_VL_DISK;

        /* A minimal /dev, not devtmpfs: the snippet sees no disk, no virtio
         * port, no console, only the harmless character devices. */
        if (mount("tmpfs", NEWROOT "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "size=64k,mode=0755") < 0)
                tr__agent_fail(a, "mounting /dev: %s", strerror(errno));
        mknod_dev(a, "null", 1, 3);
        mknod_dev(a, "zero", 1, 5);
        mknod_dev(a, "full", 1, 7);
        mknod_dev(a, "random", 1, 8);
        mknod_dev(a, "urandom", 1, 9);
        (void) symlink("/proc/self/fd", NEWROOT "/dev/fd");
        (void) symlink("/proc/self/fd/0", NEWROOT "/dev/stdin");
        (void) symlink("/proc/self/fd/1", NEWROOT "/dev/stdout");
        (void) symlink("/proc/self/fd/2", NEWROOT "/dev/stderr");
        tr__agent_mkdir_p(NEWROOT "/dev/shm", 01777);
        chmod(NEWROOT "/dev/shm", 01777);

        /* /proc for the interpreter (it reads /proc/self); hidepid so the
         * snippet cannot look at the agent. */
        if (mount("proc", NEWROOT "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "hidepid=2") < 0)
                tr__agent_fail(a, "mounting /proc: %s", strerror(errno));

        /* /run holds the gateway socket; small, root-owned, read-only to the
         * snippet except for the socket itself. */
        if (mount("tmpfs", NEWROOT "/run", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=1m,mode=0755") < 0)
                tr__agent_fail(a, "mounting /run: %s", strerror(errno));
        tr__agent_mkdir_p(GW_DIR, 0755);
}

/* The loopback interface only (no other network device exists in the VM
 * for standard/hardened): code that talks to localhost keeps working. */
void tr__agent_loopback_up(void) {
        int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (s < 0)
                return;
        struct ifreq ifr;
        memset(&ifr, 0, sizeof(ifr));
        strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
        if (ioctl(s, SIOCGIFFLAGS, &ifr) == 0) {
                ifr.ifr_flags |= IFF_UP;
                (void) ioctl(s, SIOCSIFFLAGS, &ifr);
        }
        close(s);
}

/* ---- stage 4: resource controls ---------------------------------------- */

/* A counter of the snippet cgroup's memory.events ("max ", "oom_kill "). */
static uint64_t memory_event(const char *key) {
        char buf[512];
        int fd = open(CGSNIP "/memory.events", O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return 0;
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n <= 0)
                return 0;
        buf[n] = 0;
        for (const char *p = buf; (p = strstr(p, key)); p++)
                if (p == buf || p[-1] == '\n')
                        return strtoull(p + strlen(key), NULL, 10);
        return 0;
}

int tr__agent_oom_killed(const agent *a) {
        return a->thrash.killed || (a->cg_ok && memory_event("oom_kill ") > 0);
}

/*
 * Why a thrash watch: at memory.max with no swap, the kernel reclaims the
 * snippet's clean file pages (the interpreter's text and libraries, mapped
 * from the read-only root) and the snippet faults them straight back in.
 * Each round of reclaim frees something, so the OOM killer never runs and
 * the snippet crawls at the limit until the host's timeout (measured with a
 * 128 MiB allocation loop: stuck for the whole 30 s, python in the kernel
 * all the time).  Pressure stall information does not see it reliably
 * (measured: 1% to 45% "some" stall in the same situation), so the agent
 * looks at the cause instead: when the memory the kernel cannot reclaim
 * here (anonymous memory, tmpfs and kernel memory: there is no swap) leaves
 * less than THRASH_ROOM of the limit for everything else while the kernel
 * keeps hitting memory.max (memory.events "max" rises), the interpreter's
 * own code no longer fits and the snippet cannot make progress.  Seen on
 * THRASH_STRIKES checks in a row, THRASH_EVERY_MS apart, the agent kills
 * the cgroup and reports an OOM (resource_limit), as the kernel would have
 * had the snippet not had file pages to give up.
 */
#define THRASH_ROOM     (12ULL << 20)
#define THRASH_EVERY_MS 250
#define THRASH_STRIKES  2

/* The "key " line of the snippet cgroup's memory.stat, in bytes. */
static uint64_t stat_of(const char *buf, const char *key) {
        size_t k = strlen(key);
        for (const char *p = buf; (p = strstr(p, key)); p++)
                if ((p == buf || p[-1] == '\n') && p[k] == ' ')
                        return strtoull(p + k + 1, NULL, 10);
        return 0;
}

/* Check when due; returns the poll timeout until the next check (-1: no
 * watch). */
int tr__agent_thrash_check(agent *a) {
        thrash_watch *w = &a->thrash;
        if (!w->limit || w->killed)
                return -1;
        int64_t now = tr__agent_now_ms();
        if (now < w->next_ms)
                return (int) (w->next_ms - now);
        w->next_ms = now + THRASH_EVERY_MS;
        char buf[4096];
        int fd = open(CGSNIP "/memory.stat", O_RDONLY | O_CLOEXEC);
        ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
        if (fd >= 0)
                close(fd);
        if (n <= 0)
                return THRASH_EVERY_MS;
        buf[n] = 0;
        uint64_t pinned = stat_of(buf, "anon") + stat_of(buf, "shmem") + stat_of(buf, "kernel");
        uint64_t events = memory_event("max ");
        int reclaiming = events > w->max_events;
        w->max_events = events;
        if (pinned + THRASH_ROOM < w->limit || !reclaiming) {
                w->strikes = 0;
                return THRASH_EVERY_MS;
        }
        if (++w->strikes >= THRASH_STRIKES) {
                tr__agent_log("the snippet's memory is at its limit with no room for its code: killing it");
                w->killed = 1;
                (void) tr__agent_write_file(CGSNIP "/cgroup.kill", "1");
                return -1;
        }
        return THRASH_EVERY_MS;
}

/* A memory or pids limit the request sets is applied or the execution fails
 * (they guard the VM itself).  The cpu limit is best effort (the vCPU count
 * bounds the snippet anyway): STARTED tells the host which limits are in
 * force, and the host reports limits_enforced from that, never from the
 * request alone. */
void tr__agent_setup_cgroup(agent *a, const request *req) {
        int want = req->memory || req->pids;
        tr__agent_mkdir_p(CGROOT, 0755);
        if (mount("cgroup2", CGROOT, "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) {
                if (want)
                        tr__agent_fail(a, "cannot apply the resource limits: mounting cgroup2: %s", strerror(errno));
                tr__agent_log("cgroup2: %m");
                return;
        }
        if (tr__agent_write_file(CGROOT "/cgroup.subtree_control", "+memory +pids +cpu") < 0)
                (void) tr__agent_write_file(CGROOT "/cgroup.subtree_control", "+memory +pids");
        if (mkdir(CGSNIP, 0755) < 0 && errno != EEXIST) {
                if (want)
                        tr__agent_fail(a, "cannot apply the resource limits: creating the cgroup: %s", strerror(errno));
                tr__agent_log("mkdir cgroup: %m");
                return;
        }
        char v[64];
        if (req->memory) {
                snprintf(v, sizeof(v), "%llu", (unsigned long long) req->memory);
                int e = tr__agent_write_file(CGSNIP "/memory.max", v);
                if (e < 0)
                        tr__agent_fail(a, "cannot apply the memory limit: memory.max: %s", strerror(-e));
                (void) tr__agent_write_file(CGSNIP "/memory.swap.max", "0");
                a->applied |= TR_VL_MEMORY;
                a->thrash.limit = req->memory;
        }
        /* One OOM kill takes the whole group: a half-killed snippet would
         * only confuse the report. */
        (void) tr__agent_write_file(CGSNIP "/memory.oom.group", "1");
        if (req->pids) {
                snprintf(v, sizeof(v), "%llu", (unsigned long long) req->pids);
                int e = tr__agent_write_file(CGSNIP "/pids.max", v);
                if (e < 0)
                        tr__agent_fail(a, "cannot apply the pids limit: pids.max: %s", strerror(-e));
                a->applied |= TR_VL_PIDS;
        }
        if (req->cpu_quota_ms) {
                snprintf(v, sizeof(v), "%llu 100000", (unsigned long long) req->cpu_quota_ms * 1000);
                int e = tr__agent_write_file(CGSNIP "/cpu.max", v);
                if (e < 0)
                        tr__agent_log("cpu.max: %s", strerror(-e));
                else
                        a->applied |= TR_VL_CPU;
        }
        a->cg_ok = 1;
}
