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
 * It shares only src/util/frame.c with the host library.  This file holds
 * main, the helpers every stage uses and stage 1; agent.h says which file
 * holds each other stage.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"

void tr__agent_log(const char *fmt, ...) {
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
void tr__agent_mark(const agent *a, const char *stage) {
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

void tr__agent_poweroff(void) {
        sync();
        reboot(RB_POWER_OFF);
        /* reboot() only returns on failure; PID 1 must not exit (a kernel
         * panic), so wait to be killed by the host. */
        for (;;)
                pause();
}

/* Report a setup failure to the host (when the port is open) and stop. */
void tr__agent_fail(agent *a, const char *fmt, ...) {
        char buf[1024];
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
        if (n < 0)
                n = 0;
        if ((size_t) n >= sizeof(buf))
                n = sizeof(buf) - 1;
        tr__agent_log("%s", buf);
        if (a && a->port >= 0)
                (void) tr__vf_write(a->port, TR_VF_ERROR, NULL, 0, buf, (size_t) n);
        tr__agent_poweroff();
        for (;;)
                pause();
}

int64_t tr__agent_now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int tr__agent_write_file(const char *path, const char *s) {
        int fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        ssize_t n = write(fd, s, strlen(s));
        int e = n < 0 ? -errno : 0;
        close(fd);
        return e;
}

void tr__agent_mkdir_p(const char *path, mode_t mode) {
        (void) mkdir(path, mode);
}

/* ---- stage 1: the initramfs' own mounts and the virtio modules -------- */

static void early_mounts(void) {
        tr__agent_mkdir_p("/dev", 0755);
        tr__agent_mkdir_p("/proc", 0555);
        tr__agent_mkdir_p("/sys", 0555);
        /* devtmpfs gives us the nodes the kernel creates as drivers bind
         * (vda, vport0p1) without a udev. */
        if (mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755") < 0 && errno != EBUSY)
                tr__agent_log("mount /dev: %m");
        int fd = open("/dev/console", O_RDWR | O_NOCTTY);
        if (fd >= 0) {
                dup2(fd, 0);
                dup2(fd, 1);
                dup2(fd, 2);
                if (fd > 2)
                        close(fd);
        }
        if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
                tr__agent_log("mount /proc: %m");
        if (mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
                tr__agent_log("mount /sys: %m");
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
                        tr__agent_fail(a, "module %s: %s", line, strerror(errno));
                if (syscall(SYS_finit_module, fd, "", 0) < 0 && errno != EEXIST)
                        tr__agent_log("finit_module %s: %m", line);
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

void tr__agent_sleep_ms(long ms) {
        struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
        nanosleep(&ts, NULL);
}

static int open_port(void) {
        char path[300];
        int64_t end = tr__agent_now_ms() + DEVICE_WAIT_MS;
        while (find_port(path, sizeof(path)) < 0) {
                if (tr__agent_now_ms() > end)
                        return -ETIMEDOUT;
                tr__agent_sleep_ms(2);
        }
        int fd = open(path, O_RDWR | O_CLOEXEC | O_NOCTTY);
        return fd < 0 ? -errno : fd;
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
        tr__agent_mark(&a, "init");
        (void) tr__agent_write_file("/proc/self/oom_score_adj", "-1000");
        load_modules(&a);
        tr__agent_mark(&a, "modules loaded");
        int fd = open_port();
        if (fd < 0)
                tr__agent_fail(&a, "the virtio-serial port %s did not appear: %s", TR_VF_PORT_NAME, strerror(-fd));
        a.port = fd;
        (void) tr__vf_write(a.port, TR_VF_HELLO, NULL, 0, AGENT_VERSION, strlen(AGENT_VERSION));

        tr__vf_reader rd;
        tr__vf_reader_init(&rd, 0);
        request req;
        tr__agent_mark(&a, "hello sent");
        tr__agent_read_request(&a, &rd, &req);
        tr__agent_mark(&a, "request read");
        tr__agent_setup_root(&a, &req);
        tr__agent_loopback_up();
        tr__agent_setup_cgroup(&a, &req);
        tr__agent_mark(&a, "sandbox ready");
        tr__agent_run(&a, &req, &rd);
        tr__agent_mark(&a, "exit sent");
        tr__agent_poweroff();
}
