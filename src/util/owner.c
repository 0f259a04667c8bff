/* SPDX-License-Identifier: Apache-2.0 */
#include "util/owner.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/macros.h"
#include "util/proc.h"

static int read_boot_id(char out[40]) {
        _cleanup_free_ char *s = NULL;
        size_t n = 0;
        int r = tr__read_file("/proc/sys/kernel/random/boot_id", 64, &s, &n);
        if (r < 0)
                return r;
        while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' '))
                s[--n] = 0;
        if (n == 0 || n >= 40)
                return -EINVAL;
        memcpy(out, s, n + 1);
        return 0;
}

static uint64_t pidns_of(const char *proc_pid) {
        char path[64];
        struct stat st;
        snprintf(path, sizeof path, "/proc/%s/ns/pid", proc_pid);
        return stat(path, &st) == 0 ? (uint64_t) st.st_ino : 0;
}

int tr__proc_start_time(pid_t pid, uint64_t *ret_start, bool *ret_zombie) {
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/stat", (int) pid);
        _cleanup_free_ char *s = NULL;
        size_t n = 0;
        int r = tr__read_file(path, 4096, &s, &n);
        if (r < 0)
                return r;
        /* The command name (field 2) may hold spaces and parentheses: the
         * fields that follow start after its last ')'. */
        char *p = strrchr(s, ')');
        if (!p || p[1] != ' ')
                return -EINVAL;
        p += 2;
        char state = *p;
        /* Field 3 is the state; 22 is the start time: 19 more fields on. */
        for (int field = 3; field < 22; field++) {
                p = strchr(p, ' ');
                if (!p)
                        return -EINVAL;
                p++;
        }
        char *end;
        errno = 0;
        unsigned long long v = strtoull(p, &end, 10);
        if (errno || end == p || (*end != ' ' && *end != '\n' && *end != 0))
                return -EINVAL;
        *ret_start = v;
        if (ret_zombie)
                *ret_zombie = state == 'Z' || state == 'X';
        return 0;
}

int tr__owner_self(tr__owner *ret) {
        tr__owner o = { .pid = getpid() };
        int r = tr__proc_start_time(o.pid, &o.start, NULL);
        if (r < 0)
                return r;
        if ((r = read_boot_id(o.boot_id)) < 0)
                return r;
        o.pidns = pidns_of("self");
        *ret = o;
        return 0;
}

tr__owner_state tr__owner_check(const tr__owner *o) {
        char boot[40];
        if (o->pid <= 0 || !o->boot_id[0] || read_boot_id(boot) < 0)
                return TR_OWNER_UNKNOWN;
        /* Another boot: every process of that one is gone. */
        if (!streq(boot, o->boot_id))
                return TR_OWNER_DEAD;
        uint64_t ns = pidns_of("self");
        if (!o->pidns || !ns || o->pidns != ns)
                return TR_OWNER_UNKNOWN;
        uint64_t start;
        bool zombie = false;
        int r = tr__proc_start_time(o->pid, &start, &zombie);
        if (r == -ENOENT || r == -ESRCH)
                return TR_OWNER_DEAD;
        if (r < 0)
                return TR_OWNER_UNKNOWN;
        /* A zombie holds nothing any more (its fds are closed); a different
         * start time is another process that got the same pid. */
        return (zombie || start != o->start) ? TR_OWNER_DEAD : TR_OWNER_ALIVE;
}

static int parse_u64(const char *s, uint64_t *ret) {
        if (!s || !*s || *s < '0' || *s > '9')
                return -EINVAL;
        char *end;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno || *end)
                return -EINVAL;
        *ret = v;
        return 0;
}

int tr__owner_parse(const char *pid, const char *start, const char *boot_id, const char *pidns, tr__owner *ret) {
        tr__owner o = { 0 };
        uint64_t p;
        if (parse_u64(pid, &p) < 0 || p == 0 || p > INT32_MAX || parse_u64(start, &o.start) < 0 ||
            parse_u64(pidns, &o.pidns) < 0 || !boot_id || !*boot_id || strlen(boot_id) >= sizeof o.boot_id)
                return -EINVAL;
        o.pid = (pid_t) p;
        memcpy(o.boot_id, boot_id, strlen(boot_id) + 1);
        *ret = o;
        return 0;
}
