/* SPDX-License-Identifier: Apache-2.0 */
/*
 * toolruntime-agent: PID 1 of the kata backend's microVM.
 *
 * It is /init of a small initramfs that holds only this static binary and
 * the virtio modules the Debian cloud kernel builds as modules.  It:
 *
 *   1. mounts /dev, /proc, /sys of the initramfs and loads the virtio
 *      modules (virtio-mmio transport, virtio-blk, virtio-console);
 *   2. opens the virtio-serial port named TR_VF_PORT_NAME, says HELLO and
 *      reads one REQUEST frame (argv, env, code, limits);
 *   3. mounts the read-only root image and, inside it, a private /tmp of
 *      DiskBytes, a minimal /dev, /proc and a /run for the gateway socket;
 *   4. creates a cgroup with memory.max / pids.max / cpu.max;
 *   5. runs the snippet chrooted into the root image, as uid/gid 65534 with
 *      no capabilities and no_new_privs, code on its stdin;
 *   6. relays stdout/stderr and gateway connections (a unix socket at
 *      /run/toolruntime/gateway.sock) as frames, reports the exit status
 *      (OOM kills distinctly) and powers the VM off.
 *
 * The host never trusts any of this: it bounds and validates every frame.
 * The agent trusts the host (it is the host's VM), but still checks what it
 * parses, since a bad request must end in a clear ERROR, not a hung VM.
 *
 * It shares only src/util/frame.c with the host library.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/reboot.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util/frame.h"

#define AGENT_VERSION "toolruntime-agent 1"
#define NEWROOT       "/root"
#define CGROOT        "/sys/fs/cgroup"
#define CGSNIP        CGROOT "/snippet"
#define GW_DIR        NEWROOT "/run/toolruntime"
#define GW_SOCK       GW_DIR "/gateway.sock"
#define MAX_GW_CONNS  16
#define DEFAULT_DISK  (64ULL * 1024 * 1024)
/* How long the devices may take to appear after their modules load. */
#define DEVICE_WAIT_MS 20000
/* How long output may keep draining after the snippet's process exited (its
 * descendants are killed through the cgroup, so this is only a guard). */
#define DRAIN_MS 2000

typedef struct request {
        char **argv;
        size_t argc;
        char **env;
        size_t envc;
        const uint8_t *code;
        size_t code_len;
        uint64_t memory, pids, disk, cpu_quota_ms, uid, gid;
        uint64_t network;
        uint64_t stdin_live, idle_ms; /* TR_VT_STDIN_LIVE, TR_VT_IDLE_MS */
        uint8_t *seccomp;             /* the snippet's BPF program (NULL: none) */
        size_t seccomp_len;
} request;

typedef struct gw_conn {
        int fd;
        uint32_t id;
} gw_conn;

/* The thrash watch (see stage 4). */
typedef struct thrash_watch {
        uint64_t limit;      /* memory.max in bytes; 0: no watch */
        uint64_t max_events; /* memory.events "max" at the last check */
        int strikes;         /* consecutive checks with no room left */
        int64_t next_ms;     /* when to check next */
        int killed;          /* the watch killed the snippet: report an OOM */
} thrash_watch;

typedef struct agent {
        int port;
        int debug; /* tr.debug on the kernel command line: stage marks */
        int cg_ok;
        uint64_t applied;    /* TR_VL_* bits of the limits in force */
        thrash_watch thrash; /* thrashing at memory.max counts as an OOM */
        gw_conn conns[MAX_GW_CONNS];
        uint32_t next_id;
        int listen_fd;
        pid_t snippet;    /* the snippet's process (TR_VF_SIGNAL's target) */
        tr__vf_buf inq;   /* bytes for the snippet's stdin not yet written */
        int in_eof;       /* no more after inq */
        int started_sent; /* STARTED went out */
        int64_t idle_end; /* live stdin: power off when no STDIN came by then (0: none) */
} agent;

static void logmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logmsg(const char *fmt, ...) {
        char buf[512];
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
        va_end(ap);
        if (n < 0)
                return;
        if ((size_t) n > sizeof(buf) - 2)
                n = sizeof(buf) - 2;
        buf[n++] = '\n';
        ssize_t w = write(2, "agent: ", 7);
        w = write(2, buf, (size_t) n);
        (void) w;
}

/* With tr.debug on the kernel command line, mark each stage in the kernel
 * log (its timestamps show where a boot spends its time); level 2 so that
 * loglevel=3 still lets them through to the console. */
static void mark(const agent *a, const char *stage) {
        if (!a->debug)
                return;
        int fd = open("/dev/kmsg", O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return;
        char buf[128];
        int n = snprintf(buf, sizeof(buf), "<2>toolruntime-agent: %s", stage);
        ssize_t w = write(fd, buf, (size_t) n);
        (void) w;
        close(fd);
}

static int cmdline_has(const char *word) {
        char buf[2048];
        int fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return 0;
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n <= 0)
                return 0;
        buf[n] = 0;
        size_t wl = strlen(word);
        for (char *p = strstr(buf, word); p; p = strstr(p + 1, word))
                if ((p == buf || p[-1] == ' ') && (p[wl] == ' ' || p[wl] == '\n' || p[wl] == 0))
                        return 1;
        return 0;
}

static void poweroff(void) {
        sync();
        reboot(RB_POWER_OFF);
        /* reboot() only returns on failure; PID 1 must not exit (a kernel
         * panic), so wait to be killed by the host. */
        for (;;)
                pause();
}

/* Report a setup failure to the host (when the port is open) and stop. */
static void fail(agent *a, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
static void fail(agent *a, const char *fmt, ...) {
        char buf[1024];
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
        if (n < 0)
                n = 0;
        if ((size_t) n >= sizeof(buf))
                n = sizeof(buf) - 1;
        logmsg("%s", buf);
        if (a && a->port >= 0)
                (void) tr__vf_write(a->port, TR_VF_ERROR, NULL, 0, buf, (size_t) n);
        poweroff();
        for (;;)
                pause();
}

static int64_t now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int write_file(const char *path, const char *s) {
        int fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        ssize_t n = write(fd, s, strlen(s));
        int e = n < 0 ? -errno : 0;
        close(fd);
        return e;
}

static void mkdir_p(const char *path, mode_t mode) {
        (void) mkdir(path, mode);
}

/* ---- stage 1: the initramfs' own mounts and the virtio modules -------- */

static void early_mounts(void) {
        mkdir_p("/dev", 0755);
        mkdir_p("/proc", 0555);
        mkdir_p("/sys", 0555);
        /* devtmpfs gives us the nodes the kernel creates as drivers bind
         * (vda, vport0p1) without a udev. */
        if (mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755") < 0 && errno != EBUSY)
                logmsg("mount /dev: %m");
        int fd = open("/dev/console", O_RDWR | O_NOCTTY);
        if (fd >= 0) {
                dup2(fd, 0);
                dup2(fd, 1);
                dup2(fd, 2);
                if (fd > 2)
                        close(fd);
        }
        if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
                logmsg("mount /proc: %m");
        if (mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
                logmsg("mount /sys: %m");
}

/* The cloud kernel builds virtio as modules: load them from the initramfs,
 * in the dependency order build.sh wrote into /modules/order. */
static void load_modules(agent *a) {
        FILE *f = fopen("/modules/order", "re");
        if (!f)
                return; /* a kernel with virtio built in needs none */
        char line[256];
        while (fgets(line, sizeof(line), f)) {
                line[strcspn(line, "\r\n")] = 0;
                if (!*line || strchr(line, '/'))
                        continue;
                char path[300];
                snprintf(path, sizeof(path), "/modules/%s", line);
                int fd = open(path, O_RDONLY | O_CLOEXEC);
                if (fd < 0)
                        fail(a, "module %s: %s", line, strerror(errno));
                if (syscall(SYS_finit_module, fd, "", 0) < 0 && errno != EEXIST)
                        logmsg("finit_module %s: %m", line);
                close(fd);
        }
        fclose(f);
}

/* Find /dev/vportNpM whose sysfs name is ours. */
static int find_port(char *out, size_t n) {
        DIR *d = opendir("/sys/class/virtio-ports");
        if (!d)
                return -ENOENT;
        struct dirent *de;
        int r = -ENOENT;
        while ((de = readdir(d))) {
                if (de->d_name[0] == '.')
                        continue;
                char p[512], name[128] = "";
                snprintf(p, sizeof(p), "/sys/class/virtio-ports/%s/name", de->d_name);
                int fd = open(p, O_RDONLY | O_CLOEXEC);
                if (fd < 0)
                        continue;
                ssize_t k = read(fd, name, sizeof(name) - 1);
                close(fd);
                if (k <= 0)
                        continue;
                name[k] = 0;
                name[strcspn(name, "\n")] = 0;
                if (strcmp(name, TR_VF_PORT_NAME) == 0) {
                        snprintf(out, n, "/dev/%s", de->d_name);
                        if (access(out, F_OK) == 0)
                                r = 0;
                        break;
                }
        }
        closedir(d);
        return r;
}

static void sleep_ms(long ms) {
        struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
        nanosleep(&ts, NULL);
}

static int open_port(void) {
        char path[300];
        int64_t end = now_ms() + DEVICE_WAIT_MS;
        while (find_port(path, sizeof(path)) < 0) {
                if (now_ms() > end)
                        return -ETIMEDOUT;
                sleep_ms(2);
        }
        int fd = open(path, O_RDWR | O_CLOEXEC | O_NOCTTY);
        return fd < 0 ? -errno : fd;
}

/* ---- stage 2: the request ---------------------------------------------- */

static int push(char ***v, size_t *n, const uint8_t *s, size_t len) {
        char **nv = realloc(*v, (*n + 2) * sizeof(char *));
        if (!nv)
                return -ENOMEM;
        *v = nv;
        char *c = malloc(len + 1);
        if (!c)
                return -ENOMEM;
        memcpy(c, s, len);
        c[len] = 0;
        /* A NUL inside an argument would silently cut it: refuse. */
        if (memchr(s, 0, len)) {
                free(c);
                return -EINVAL;
        }
        nv[(*n)++] = c;
        nv[*n] = NULL;
        return 0;
}

/* ---- the snippet's seccomp filter ---------------------------------------
 *
 * The host compiles the profile's policy (the same one runc gets in a
 * container) into a classic BPF program; the agent needs no libseccomp and
 * installs it as is, last thing before exec, after no_new_privs.  It only
 * bounds what it accepts: a whole number of instructions, at most the
 * kernel's BPF_MAXINSNS, once.  A request with a program the kernel then
 * refuses never runs the snippet unfiltered (the child exits 126). */

static void take_seccomp(agent *a, request *req, const uint8_t *v, size_t n) {
        if (req->seccomp || n == 0 || n % sizeof(struct sock_filter) != 0 ||
            n / sizeof(struct sock_filter) > TR_VF_SECCOMP_MAX_INSNS)
                fail(a, "bad seccomp program (%zu bytes)", n);
        req->seccomp = malloc(n);
        if (!req->seccomp)
                fail(a, "out of memory");
        memcpy(req->seccomp, v, n);
        req->seccomp_len = n;
        a->applied |= TR_VL_SECCOMP;
}

/* In the snippet's child, after PR_SET_NO_NEW_PRIVS; 0 or -errno. */
static int install_seccomp(const request *req) {
        if (!req->seccomp)
                return 0;
        struct sock_fprog prog = {
                .len = (unsigned short) (req->seccomp_len / sizeof(struct sock_filter)),
                .filter = (struct sock_filter *) req->seccomp,
        };
        return syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0 ? -errno : 0;
}

static void read_request(agent *a, tr__vf_reader *rd, request *req) {
        tr__vf_frame fr;
        for (;;) {
                int k = tr__vf_reader_next(rd, &fr);
                if (k < 0)
                        fail(a, "malformed frame from the host: %s", strerror(-k));
                if (k > 0)
                        break;
                ssize_t n = tr__vf_reader_read_fd(rd, a->port);
                if (n == 0)
                        fail(a, "the host closed the channel before the request");
                if (n < 0 && n != -EAGAIN)
                        fail(a, "reading the request: %s", strerror((int) -n));
        }
        if (fr.type != TR_VF_REQUEST)
                fail(a, "expected a request frame, got type %u", fr.type);
        memset(req, 0, sizeof(*req));
        req->uid = req->gid = 65534;
        tr__vf_tlv_iter it;
        tr__vf_tlv_iter_init(&it, fr.payload, fr.len);
        uint16_t tag;
        const uint8_t *v;
        size_t n;
        int k;
        while ((k = tr__vf_tlv_next(&it, &tag, &v, &n)) > 0) {
                uint64_t *num = NULL;
                switch (tag) {
                case TR_VT_ARG:
                        if (push(&req->argv, &req->argc, v, n) < 0)
                                fail(a, "bad argv item");
                        break;
                case TR_VT_ENV:
                        if (push(&req->env, &req->envc, v, n) < 0)
                                fail(a, "bad env item");
                        break;
                case TR_VT_CODE:
                        req->code = v;
                        req->code_len = n;
                        break;
                case TR_VT_MEMORY: num = &req->memory; break;
                case TR_VT_PIDS: num = &req->pids; break;
                case TR_VT_DISK: num = &req->disk; break;
                case TR_VT_CPU_QUOTA_MS: num = &req->cpu_quota_ms; break;
                case TR_VT_NETWORK: num = &req->network; break;
                case TR_VT_UID: num = &req->uid; break;
                case TR_VT_GID: num = &req->gid; break;
                case TR_VT_SECCOMP_BPF: take_seccomp(a, req, v, n); break;
                case TR_VT_STDIN_LIVE: num = &req->stdin_live; break;
                case TR_VT_IDLE_MS: num = &req->idle_ms; break;
                default: break; /* unknown tags are for newer agents */
                }
                if (num && tr__vf_tlv_u64(v, n, num) < 0)
                        fail(a, "bad integer for tag %u", tag);
        }
        if (k < 0)
                fail(a, "malformed request");
        if (req->argc == 0)
                fail(a, "empty argv");
        /* The code must survive the reader's next use: copy it out. */
        if (req->code_len) {
                uint8_t *c = malloc(req->code_len);
                if (!c)
                        fail(a, "out of memory");
                memcpy(c, req->code, req->code_len);
                req->code = c;
        }
        /* The snippet always runs unprivileged, whatever the request says:
         * root in the guest could load modules or talk to the devices. */
        if (req->uid == 0 || req->gid == 0)
                fail(a, "refusing to run the snippet as root");
        if (req->stdin_live)
                a->applied |= TR_VL_STDIN_LIVE;
}

/* ---- stage 3: the snippet's filesystem --------------------------------- */

static void mknod_dev(agent *a, const char *name, unsigned maj, unsigned min) {
        char p[128];
        snprintf(p, sizeof(p), NEWROOT "/dev/%s", name);
        if (mknod(p, S_IFCHR | 0666, makedev(maj, min)) < 0)
                fail(a, "mknod %s: %s", p, strerror(errno));
        chmod(p, 0666);
}

static void setup_root(agent *a, const request *req) {
        int64_t end = now_ms() + DEVICE_WAIT_MS;
        while (access("/dev/vda", F_OK) < 0) {
                if (now_ms() > end)
                        fail(a, "the root disk /dev/vda did not appear");
                sleep_ms(2);
        }
        mkdir_p(NEWROOT, 0755);
        /* Read-only (QEMU opened the image read-only as well), nosuid and
         * nodev: nothing in the image can grant privileges or reach devices. */
        if (mount("/dev/vda", NEWROOT, "ext4", MS_RDONLY | MS_NOSUID | MS_NODEV, "noload") < 0 &&
            mount("/dev/vda", NEWROOT, "erofs", MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) < 0)
                fail(a, "mounting the root image: %s", strerror(errno));

        /* The only writable place: a tmpfs of DiskBytes, so a disk fill ends
         * at the limit (ENOSPC) and never touches the image. */
        char opts[128];
        uint64_t disk = req->disk ? req->disk : DEFAULT_DISK;
        snprintf(opts, sizeof(opts), "size=%llu,mode=1777", (unsigned long long) disk);
        if (mount("tmpfs", NEWROOT "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, opts) < 0)
                fail(a, "mounting /tmp: %s", strerror(errno));
        if (req->disk)
                a->applied |= TR_VL_DISK;

        /* A minimal /dev, not devtmpfs: the snippet sees no disk, no virtio
         * port, no console, only the harmless character devices. */
        if (mount("tmpfs", NEWROOT "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "size=64k,mode=0755") < 0)
                fail(a, "mounting /dev: %s", strerror(errno));
        mknod_dev(a, "null", 1, 3);
        mknod_dev(a, "zero", 1, 5);
        mknod_dev(a, "full", 1, 7);
        mknod_dev(a, "random", 1, 8);
        mknod_dev(a, "urandom", 1, 9);
        (void) symlink("/proc/self/fd", NEWROOT "/dev/fd");
        (void) symlink("/proc/self/fd/0", NEWROOT "/dev/stdin");
        (void) symlink("/proc/self/fd/1", NEWROOT "/dev/stdout");
        (void) symlink("/proc/self/fd/2", NEWROOT "/dev/stderr");
        mkdir_p(NEWROOT "/dev/shm", 01777);
        chmod(NEWROOT "/dev/shm", 01777);

        /* /proc for the interpreter (it reads /proc/self); hidepid so the
         * snippet cannot look at the agent. */
        if (mount("proc", NEWROOT "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "hidepid=2") < 0)
                fail(a, "mounting /proc: %s", strerror(errno));

        /* /run holds the gateway socket; small, root-owned, read-only to the
         * snippet except for the socket itself. */
        if (mount("tmpfs", NEWROOT "/run", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=1m,mode=0755") < 0)
                fail(a, "mounting /run: %s", strerror(errno));
        mkdir_p(GW_DIR, 0755);
}

/* The loopback interface only (no other network device exists in the VM
 * for standard/hardened): code that talks to localhost keeps working. */
static void loopback_up(void) {
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

static int oom_killed(const agent *a) {
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
static int thrash_check(agent *a) {
        thrash_watch *w = &a->thrash;
        if (!w->limit || w->killed)
                return -1;
        int64_t now = now_ms();
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
                logmsg("the snippet's memory is at its limit with no room for its code: killing it");
                w->killed = 1;
                (void) write_file(CGSNIP "/cgroup.kill", "1");
                return -1;
        }
        return THRASH_EVERY_MS;
}

/* A memory or pids limit the request sets is applied or the execution fails
 * (they guard the VM itself).  The cpu limit is best effort (the vCPU count
 * bounds the snippet anyway): STARTED tells the host which limits are in
 * force, and the host reports limits_enforced from that, never from the
 * request alone. */
static void setup_cgroup(agent *a, const request *req) {
        int want = req->memory || req->pids;
        mkdir_p(CGROOT, 0755);
        if (mount("cgroup2", CGROOT, "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) {
                if (want)
                        fail(a, "cannot apply the resource limits: mounting cgroup2: %s", strerror(errno));
                logmsg("cgroup2: %m");
                return;
        }
        if (write_file(CGROOT "/cgroup.subtree_control", "+memory +pids +cpu") < 0)
                (void) write_file(CGROOT "/cgroup.subtree_control", "+memory +pids");
        if (mkdir(CGSNIP, 0755) < 0 && errno != EEXIST) {
                if (want)
                        fail(a, "cannot apply the resource limits: creating the cgroup: %s", strerror(errno));
                logmsg("mkdir cgroup: %m");
                return;
        }
        char v[64];
        if (req->memory) {
                snprintf(v, sizeof(v), "%llu", (unsigned long long) req->memory);
                int e = write_file(CGSNIP "/memory.max", v);
                if (e < 0)
                        fail(a, "cannot apply the memory limit: memory.max: %s", strerror(-e));
                (void) write_file(CGSNIP "/memory.swap.max", "0");
                a->applied |= TR_VL_MEMORY;
                a->thrash.limit = req->memory;
        }
        /* One OOM kill takes the whole group: a half-killed snippet would
         * only confuse the report. */
        (void) write_file(CGSNIP "/memory.oom.group", "1");
        if (req->pids) {
                snprintf(v, sizeof(v), "%llu", (unsigned long long) req->pids);
                int e = write_file(CGSNIP "/pids.max", v);
                if (e < 0)
                        fail(a, "cannot apply the pids limit: pids.max: %s", strerror(-e));
                a->applied |= TR_VL_PIDS;
        }
        if (req->cpu_quota_ms) {
                snprintf(v, sizeof(v), "%llu 100000", (unsigned long long) req->cpu_quota_ms * 1000);
                int e = write_file(CGSNIP "/cpu.max", v);
                if (e < 0)
                        logmsg("cpu.max: %s", strerror(-e));
                else
                        a->applied |= TR_VL_CPU;
        }
        a->cg_ok = 1;
}

/* ---- stage 5: the snippet ---------------------------------------------- */

typedef struct child_pipes {
        int in, out, err; /* the agent's ends */
} child_pipes;

static pid_t spawn(agent *a, const request *req, child_pipes *cp) {
        int pin[2], pout[2], perr[2];
        if (pipe2(pin, O_CLOEXEC) < 0 || pipe2(pout, O_CLOEXEC) < 0 || pipe2(perr, O_CLOEXEC) < 0)
                fail(a, "pipe: %s", strerror(errno));
        pid_t pid = fork();
        if (pid < 0)
                fail(a, "fork: %s", strerror(errno));
        if (pid == 0) {
                /* Join the limited cgroup first, while still root, so every
                 * process the snippet makes is counted. */
                if (a->cg_ok && write_file(CGSNIP "/cgroup.procs", "0") < 0)
                        _exit(126);
                (void) write_file("/proc/self/oom_score_adj", "500");
                setsid();
                if (dup2(pin[0], 0) < 0 || dup2(pout[1], 1) < 0 || dup2(perr[1], 2) < 0)
                        _exit(126);
                /* The root image becomes the snippet's whole world; without
                 * CAP_SYS_CHROOT (dropped below) it cannot climb out. */
                if (chroot(NEWROOT) < 0 || chdir("/tmp") < 0)
                        _exit(126);
                struct rlimit core = { 0, 0 };
                setrlimit(RLIMIT_CORE, &core);
                if (req->pids) {
                        /* Belt and braces with pids.max: uid 65534 runs
                         * nothing else in this VM, so the count is honest. */
                        struct rlimit np = { req->pids, req->pids };
                        setrlimit(RLIMIT_NPROC, &np);
                }
                /* Empty the bounding set so no later exec can regain a
                 * capability, then become 65534: the uid change clears the
                 * permitted and effective sets. */
                for (int cap = 0; cap <= 63; cap++)
                        (void) prctl(PR_CAPBSET_DROP, cap, 0, 0, 0);
                (void) prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
                if (setgroups(0, NULL) < 0 || setresgid((gid_t) req->gid, (gid_t) req->gid, (gid_t) req->gid) < 0 ||
                    setresuid((uid_t) req->uid, (uid_t) req->uid, (uid_t) req->uid) < 0)
                        _exit(126);
                /* no_new_privs: setuid binaries and file capabilities in the
                 * image grant nothing. */
                if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                        _exit(126);
                if (install_seccomp(req) < 0) {
                        static const char msg[] = "toolruntime-agent: cannot install the seccomp filter\n";
                        ssize_t w = write(2, msg, sizeof(msg) - 1);
                        (void) w;
                        _exit(126);
                }
                sigset_t all;
                sigemptyset(&all);
                sigprocmask(SIG_SETMASK, &all, NULL);
                extern char **environ;
                environ = req->env;
                execvp(req->argv[0], req->argv);
                static const char msg[] = "toolruntime-agent: cannot execute the interpreter\n";
                ssize_t w = write(2, msg, sizeof(msg) - 1);
                (void) w;
                _exit(127);
        }
        close(pin[0]);
        close(pout[1]);
        close(perr[1]);
        cp->in = pin[1];
        cp->out = pout[0];
        cp->err = perr[0];
        fcntl(cp->in, F_SETFL, O_NONBLOCK);
        return pid;
}

static int gw_listen(agent *a) {
        int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (s < 0)
                return -errno;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        strncpy(sa.sun_path, GW_SOCK, sizeof(sa.sun_path) - 1);
        if (bind(s, (struct sockaddr *) &sa, sizeof(sa)) < 0 || listen(s, 8) < 0) {
                int e = -errno;
                close(s);
                return e;
        }
        /* The snippet's uid must be able to connect; the directory is
         * root-owned so it cannot replace the socket. */
        chmod(GW_SOCK, 0666);
        a->listen_fd = s;
        return 0;
}

static gw_conn *conn_by_id(agent *a, uint32_t id) {
        for (int i = 0; i < MAX_GW_CONNS; i++)
                if (a->conns[i].fd >= 0 && a->conns[i].id == id)
                        return &a->conns[i];
        return NULL;
}

static void conn_close(agent *a, gw_conn *c, int tell_host) {
        if (tell_host) {
                uint8_t idb[4];
                tr__vf_put_u32(idb, c->id);
                (void) tr__vf_write(a->port, TR_VF_GW_CLOSE, idb, 4, NULL, 0);
        }
        close(c->fd);
        c->fd = -1;
}

static void write_blocking(int fd, const uint8_t *p, size_t n) {
        while (n > 0) {
                ssize_t w = write(fd, p, n);
                if (w < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN) {
                                struct pollfd pf = { fd, POLLOUT, 0 };
                                poll(&pf, 1, 1000);
                                continue;
                        }
                        return;
                }
                p += w;
                n -= (size_t) w;
        }
}

/* A frame from the host during the run: gateway traffic, and with a live
 * stdin the snippet's input and signals. */
static void host_frame(agent *a, const request *req, const tr__vf_frame *fr) {
        if (req->stdin_live && fr->type == TR_VF_STDIN) {
                /* The code has come: the idle backstop is over. */
                a->idle_end = 0;
                if (fr->len == 0)
                        a->in_eof = 1;
                else if (!a->in_eof && tr__vf_buf_append(&a->inq, fr->payload, fr->len) < 0)
                        fail(a, "out of memory");
                return;
        }
        if (req->stdin_live && fr->type == TR_VF_SIGNAL) {
                /* The interpreter alone (SIGINT: a KeyboardInterrupt), not
                 * its process group: the session runner decides. */
                if (fr->len == 4 && a->snippet > 0) {
                        uint32_t sig = tr__vf_get_u32(fr->payload);
                        if (sig >= 1 && sig <= 64)
                                (void) kill(a->snippet, (int) sig);
                }
                return;
        }
        if ((fr->type != TR_VF_GW_DATA && fr->type != TR_VF_GW_CLOSE) || fr->len < 4)
                return;
        gw_conn *c = conn_by_id(a, tr__vf_get_u32(fr->payload));
        if (!c)
                return;
        if (fr->type == TR_VF_GW_CLOSE)
                conn_close(a, c, 0);
        else
                write_blocking(c->fd, fr->payload + 4, fr->len - 4);
}

/* STARTED, once: what is in force (the host reports limits_enforced from
 * it).  Before any other frame of the snippet's. */
static void send_started(agent *a) {
        if (a->started_sent)
                return;
        a->started_sent = 1;
        tr__vf_buf st = { 0 };
        (void) tr__vf_tlv_add_u64(&st, TR_VT_LIMITS_APPLIED, a->applied);
        (void) tr__vf_write(a->port, TR_VF_STARTED, NULL, 0, st.data, st.len);
        tr__vf_buf_done(&st);
        mark(a, "snippet started");
}

/* With a live stdin, STARTED means "ready for the code": the interpreter
 * has started up (seconds of Python imports under TCG) and blocks reading
 * its stdin pipe (inode `ino`; on fd 0 or a copy of it, as the session
 * runner keeps it), so that a prepared VM's run only runs the code.  Seen
 * from /proc/PID/syscall: read (0) on that fd. */
static int waits_on_stdin(pid_t pid, unsigned long ino) {
        char path[64], buf[128];
        snprintf(path, sizeof(path), "/proc/%d/syscall", (int) pid);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return 0;
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n <= 0)
                return 0;
        buf[n] = 0;
        unsigned long nr, rfd;
        if (sscanf(buf, "%lu 0x%lx ", &nr, &rfd) != 2 || nr != 0 || rfd > 1024)
                return 0;
        char want[64], link[64];
        snprintf(path, sizeof(path), "/proc/%d/fd/%lu", (int) pid, rfd);
        snprintf(want, sizeof(want), "pipe:[%lu]", ino);
        ssize_t k = readlink(path, link, sizeof(link) - 1);
        if (k <= 0)
                return 0;
        link[k] = 0;
        return strcmp(link, want) == 0;
}

/* How often, and how long at most, the agent looks for that. */
#define READY_POLL_MS 10
#define READY_MAX_MS  120000

/* Relay everything until the snippet and its output are done. */
static void run(agent *a, const request *req, tr__vf_reader *rd) {
        child_pipes cp;
        if (gw_listen(a) < 0)
                logmsg("gateway socket: %m");
        pid_t pid = spawn(a, req, &cp);
        a->snippet = pid;
        int pidfd = (int) syscall(SYS_pidfd_open, pid, 0);
        int64_t ready_end = now_ms() + READY_MAX_MS;
        struct stat pst;
        unsigned long stdin_ino = fstat(cp.in, &pst) == 0 ? (unsigned long) pst.st_ino : 0;
        if (!req->stdin_live)
                send_started(a);

        /* The snippet's input: the request's code, or (live) what STDIN
         * frames bring until an empty one. */
        if (!req->stdin_live) {
                if (req->code_len && tr__vf_buf_append(&a->inq, req->code, req->code_len) < 0)
                        fail(a, "out of memory");
                a->in_eof = 1;
        } else if (req->idle_ms) {
                a->idle_end = now_ms() + (int64_t) req->idle_ms;
        }
        int status = 0, exited = 0;
        int64_t drain_end = 0;
        uint8_t buf[TR_VF_CHUNK];
        /* Frames the request's read already took in (none today: the host
         * waits for STARTED before sending any). */
        {
                tr__vf_frame fr;
                while (tr__vf_reader_next(rd, &fr) > 0)
                        host_frame(a, req, &fr);
        }
        for (;;) {
                struct pollfd pf[6 + MAX_GW_CONNS];
                int n = 0;
                int i_port = n;
                pf[n++] = (struct pollfd){ a->port, POLLIN, 0 };
                int i_out = n;
                pf[n++] = (struct pollfd){ cp.out, POLLIN, 0 };
                int i_err = n;
                pf[n++] = (struct pollfd){ cp.err, POLLIN, 0 };
                int i_in = n;
                if (cp.in >= 0 && a->inq.len == 0 && a->in_eof) {
                        close(cp.in);
                        cp.in = -1;
                }
                pf[n++] = (struct pollfd){ a->inq.len ? cp.in : -1, POLLOUT, 0 };
                /* The snippet's end wakes us (the reap is below). */
                pf[n++] = (struct pollfd){ exited ? -1 : pidfd, POLLIN, 0 };
                int i_lis = n;
                pf[n++] = (struct pollfd){ a->listen_fd, POLLIN, 0 };
                int i_conn = n;
                for (int i = 0; i < MAX_GW_CONNS; i++)
                        pf[n++] = (struct pollfd){ a->conns[i].fd, POLLIN, 0 };

                if (exited && cp.out < 0 && cp.err < 0)
                        break;
                int timeout = exited ? -1 : thrash_check(a);
                if (!a->started_sent) {
                        if (!exited && waits_on_stdin(pid, stdin_ino))
                                send_started(a);
                        else if (now_ms() >= ready_end)
                                send_started(a); /* a runner that never reads: the host's deadline decides */
                        else if (timeout < 0 || timeout > READY_POLL_MS)
                                timeout = READY_POLL_MS;
                }
                if (a->idle_end) {
                        int64_t left = a->idle_end - now_ms();
                        if (left <= 0) {
                                /* Nobody came for this prepared VM: end it
                                 * rather than idle forever. */
                                if (a->cg_ok)
                                        (void) write_file(CGSNIP "/cgroup.kill", "1");
                                fail(a, "no code within %llu ms: powering off", (unsigned long long) req->idle_ms);
                        }
                        if (timeout < 0 || left < timeout)
                                timeout = (int) left;
                }
                if (exited) {
                        int64_t left = drain_end - now_ms();
                        if (left <= 0)
                                break;
                        timeout = (int) left;
                }
                int k = poll(pf, (nfds_t) n, timeout);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        fail(a, "poll: %s", strerror(errno));
                }
                if (pf[i_port].revents & (POLLIN | POLLHUP | POLLERR)) {
                        ssize_t r = tr__vf_reader_read_fd(rd, a->port);
                        if (r > 0) {
                                tr__vf_frame fr;
                                int m;
                                while ((m = tr__vf_reader_next(rd, &fr)) > 0)
                                        host_frame(a, req, &fr);
                                if (m < 0)
                                        fail(a, "malformed frame from the host");
                        } else if (r == 0) {
                                /* The host went away: nobody to report to. */
                                poweroff();
                        }
                }
                struct {
                        int *fd;
                        int idx;
                        uint8_t type;
                } outs[2] = { { &cp.out, i_out, TR_VF_STDOUT }, { &cp.err, i_err, TR_VF_STDERR } };
                for (int j = 0; j < 2; j++) {
                        if (*outs[j].fd < 0 || !(pf[outs[j].idx].revents & (POLLIN | POLLHUP | POLLERR)))
                                continue;
                        ssize_t r = read(*outs[j].fd, buf, sizeof(buf));
                        if (r > 0) {
                                send_started(a);
                                (void) tr__vf_write(a->port, outs[j].type, NULL, 0, buf, (size_t) r);
                        } else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
                                close(*outs[j].fd);
                                *outs[j].fd = -1;
                        }
                }
                if (cp.in >= 0 && a->inq.len && (pf[i_in].revents & (POLLOUT | POLLERR | POLLHUP))) {
                        ssize_t w = write(cp.in, a->inq.data, a->inq.len);
                        if (w > 0)
                                tr__vf_buf_consume(&a->inq, (size_t) w);
                        else if (w < 0 && errno != EAGAIN && errno != EINTR) {
                                /* The snippet closed its stdin: the rest
                                 * has no reader. */
                                close(cp.in);
                                cp.in = -1;
                                tr__vf_buf_done(&a->inq);
                                a->in_eof = 1;
                        }
                }
                if (a->listen_fd >= 0 && (pf[i_lis].revents & POLLIN)) {
                        int c = accept4(a->listen_fd, NULL, NULL, SOCK_CLOEXEC);
                        if (c >= 0) {
                                gw_conn *slot = NULL;
                                for (int i = 0; i < MAX_GW_CONNS; i++)
                                        if (a->conns[i].fd < 0) {
                                                slot = &a->conns[i];
                                                break;
                                        }
                                if (!slot) {
                                        close(c); /* too many at once: refuse */
                                } else {
                                        slot->fd = c;
                                        slot->id = ++a->next_id;
                                        uint8_t idb[4];
                                        tr__vf_put_u32(idb, slot->id);
                                        send_started(a);
                                        (void) tr__vf_write(a->port, TR_VF_GW_OPEN, idb, 4, NULL, 0);
                                }
                        }
                }
                for (int i = 0; i < MAX_GW_CONNS; i++) {
                        gw_conn *c = &a->conns[i];
                        if (c->fd < 0 || !(pf[i_conn + i].revents & (POLLIN | POLLHUP | POLLERR)))
                                continue;
                        ssize_t r = read(c->fd, buf, sizeof(buf));
                        if (r > 0) {
                                uint8_t idb[4];
                                tr__vf_put_u32(idb, c->id);
                                (void) tr__vf_write(a->port, TR_VF_GW_DATA, idb, 4, buf, (size_t) r);
                        } else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
                                conn_close(a, c, 1);
                        }
                }
                /* PID 1 reaps every orphan, and the snippet among them (the
                 * pidfd only wakes us): a separate orphan reap could take
                 * the snippet, exited since the poll, without its status,
                 * and left the loop waiting for an exit already gone (the
                 * host then saw a timeout). */
                int st;
                pid_t w;
                while ((w = waitpid(-1, &st, WNOHANG)) > 0) {
                        if (w != pid || exited)
                                continue;
                        status = st;
                        exited = 1;
                        /* Whatever the snippet left running (a background
                         * process, a fork bomb) dies now, so its pipes reach
                         * EOF. */
                        if (a->cg_ok)
                                (void) write_file(CGSNIP "/cgroup.kill", "1");
                        drain_end = now_ms() + DRAIN_MS;
                }
        }

        tr__vf_buf ex = { 0 };
        if (oom_killed(a)) {
                tr__vf_tlv_add_u64(&ex, TR_VT_EXIT_KIND, TR_VF_OOM);
                tr__vf_tlv_add_u64(&ex, TR_VT_EXIT_CODE, WIFSIGNALED(status) ? (uint64_t) WTERMSIG(status) : 0);
        } else if (WIFSIGNALED(status)) {
                tr__vf_tlv_add_u64(&ex, TR_VT_EXIT_KIND, TR_VF_SIGNALED);
                tr__vf_tlv_add_u64(&ex, TR_VT_EXIT_CODE, (uint64_t) WTERMSIG(status));
        } else {
                tr__vf_tlv_add_u64(&ex, TR_VT_EXIT_KIND, TR_VF_EXITED);
                tr__vf_tlv_add_u64(&ex, TR_VT_EXIT_CODE, (uint64_t) WEXITSTATUS(status));
        }
        send_started(a);
        (void) tr__vf_write(a->port, TR_VF_EXIT, NULL, 0, ex.data, ex.len);
        tr__vf_buf_done(&ex);
}

int main(int argc, char **argv) {
        (void) argc;
        (void) argv;
        agent a = { .port = -1, .listen_fd = -1 };
        for (int i = 0; i < MAX_GW_CONNS; i++)
                a.conns[i].fd = -1;
        if (getpid() != 1) {
                fprintf(stderr, "%s: must run as PID 1 of the toolruntime VM\n", AGENT_VERSION);
                return 2;
        }
        /* SIGPIPE would kill PID 1 (and panic the VM) when a gateway client
         * goes away mid-write. */
        signal(SIGPIPE, SIG_IGN);
        early_mounts();
        a.debug = cmdline_has("tr.debug");
        mark(&a, "init");
        (void) write_file("/proc/self/oom_score_adj", "-1000");
        load_modules(&a);
        mark(&a, "modules loaded");
        int fd = open_port();
        if (fd < 0)
                fail(&a, "the virtio-serial port %s did not appear: %s", TR_VF_PORT_NAME, strerror(-fd));
        a.port = fd;
        (void) tr__vf_write(a.port, TR_VF_HELLO, NULL, 0, AGENT_VERSION, strlen(AGENT_VERSION));

        tr__vf_reader rd;
        tr__vf_reader_init(&rd, 0);
        request req;
        mark(&a, "hello sent");
        read_request(&a, &rd, &req);
        mark(&a, "request read");
        setup_root(&a, &req);
        loopback_up();
        setup_cgroup(&a, &req);
        mark(&a, "sandbox ready");
        run(&a, &req, &rd);
        mark(&a, "exit sent");
        poweroff();
}
