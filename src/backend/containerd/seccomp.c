/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The seccomp policy of the standard and hardened profiles, in the OCI
 * runtime-spec form runc consumes (linux.seccomp): a built-in allowlist, or
 * a Docker-format profile converted.  The same JSON is the one policy
 * source for the kata backend too: seccomp_bpf.c compiles it with
 * libseccomp into the BPF program the guest agent installs.
 *
 * standard is containerd 2.x's contrib/seccomp default (itself Docker's
 * default) for a container with no capabilities: no io_uring, no mount,
 * unshare, setns, keyctl, add_key, bpf, perf_event_open, userfaultfd, ...
 * and no AF_VSOCK or AF_ALG socket.  hardened is that minus what a python
 * or sh snippet never needs and what has a history of kernel exploits
 * (ptrace, process_vm_*, modify_ldt), and with socket(2) limited to
 * AF_UNIX, AF_INET, AF_INET6 and AF_NETLINK/NETLINK_ROUTE.
 *
 * Both add, on top of containerd, two things (see README "seccomp"):
 *   - the native ABI only.  The filter names no i386 or x32 architecture,
 *     so a foreign-ABI syscall (int 0x80, or the x32 bit in rax) meets
 *     libseccomp's bad-architecture action, which runc leaves at its
 *     default: SECCOMP_RET_KILL_THREAD, the caller dies of SIGSYS before
 *     the kernel runs anything.  No argument rule then has a 32-bit door
 *     (socketcall(2) passes socket's family in memory, where no filter can
 *     look: containerd 2.x documents that hole, we close it).
 *   - no NETLINK_KOBJECT_UEVENT socket: the sandbox's network namespace
 *     belongs to the host's user namespace, so the kernel would broadcast
 *     the host's device events into it.
 *
 * Argument rules compare all 64 bits of a register while the kernel
 * truncates socket(2)'s int arguments to 32: a rule like "family != 40"
 * lets 0x100000028 through and the kernel then creates an AF_VSOCK socket.
 * So every socket rule here is an equality (which, over 64 bits, also pins
 * the upper half to zero): the allowed families and protocols are listed,
 * never the denied ones.
 *
 * Everything not allowed fails with EPERM, so a snippet sees an ordinary
 * "Operation not permitted" rather than being killed.
 */
#include "backend/containerd/seccomp.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "util/macros.h"

#define OP_SECCOMP "seccomp"

/* The native architecture, in libseccomp's and Go's spelling (Docker's
 * archMap and includes.arches use these).  It is the only one a filter
 * names: see the header comment for what happens to the others. */
#if defined(__x86_64__)
#define NATIVE_SCMP_ARCH "SCMP_ARCH_X86_64"
#define NATIVE_GO_ARCH   "amd64"
#elif defined(__aarch64__)
#define NATIVE_SCMP_ARCH "SCMP_ARCH_AARCH64"
#define NATIVE_GO_ARCH   "arm64"
#else
#error "toolruntime's seccomp profile knows x86_64 and aarch64 only"
#endif

/* Socket families are listed up to this bound (AF_MAX of Linux 6.x is 46,
 * AF_MCTP + 1); a family the kernel does not know fails there anyway, and
 * with EPERM here, which tells a snippet the same thing.  Netlink protocols
 * go up to the kernel's MAX_LINKS. */
#define SOCKET_FAMILIES   46
#define NETLINK_PROTOCOLS 32

/* containerd 2.x's default allowlist (contrib/seccomp, as of v2.4: io_uring
 * gone since 2.0) less what standard_only_syscalls lists, less socketpair
 * (a rule of its own below) and less socketcall (i386 only: with no i386
 * ABI it names nothing).  Names a kernel or libseccomp does not know are
 * skipped, by runc as by seccomp_bpf.c, so the 32-bit variants and the
 * newest calls cost nothing. */
static const char *const allowed_syscalls[] = {
        "_llseek",
        "_newselect",
        "accept",
        "accept4",
        "access",
        "adjtimex",
        "alarm",
        "arch_prctl",
        "bind",
        "brk",
        "cachestat",
        "capget",
        "capset",
        "chdir",
        "chmod",
        "chown",
        "chown32",
        "clock_adjtime",
        "clock_adjtime64",
        "clock_getres",
        "clock_getres_time64",
        "clock_gettime",
        "clock_gettime64",
        "clock_nanosleep",
        "clock_nanosleep_time64",
        "close",
        "close_range",
        "connect",
        "copy_file_range",
        "creat",
        "dup",
        "dup2",
        "dup3",
        "epoll_create",
        "epoll_create1",
        "epoll_ctl",
        "epoll_ctl_old",
        "epoll_pwait",
        "epoll_pwait2",
        "epoll_wait",
        "epoll_wait_old",
        "eventfd",
        "eventfd2",
        "execve",
        "execveat",
        "exit",
        "exit_group",
        "faccessat",
        "faccessat2",
        "fadvise64",
        "fadvise64_64",
        "fallocate",
        "fanotify_mark",
        "fchdir",
        "fchmod",
        "fchmodat",
        "fchmodat2",
        "fchown",
        "fchown32",
        "fchownat",
        "fcntl",
        "fcntl64",
        "fdatasync",
        "fgetxattr",
        "flistxattr",
        "flock",
        "fork",
        "fremovexattr",
        "fsetxattr",
        "fstat",
        "fstat64",
        "fstatat64",
        "fstatfs",
        "fstatfs64",
        "fsync",
        "ftruncate",
        "ftruncate64",
        "futex",
        "futex_requeue",
        "futex_time64",
        "futex_wait",
        "futex_waitv",
        "futex_wake",
        "futimesat",
        "get_robust_list",
        "get_thread_area",
        "getcpu",
        "getcwd",
        "getdents",
        "getdents64",
        "getegid",
        "getegid32",
        "geteuid",
        "geteuid32",
        "getgid",
        "getgid32",
        "getgroups",
        "getgroups32",
        "getitimer",
        "getpeername",
        "getpgid",
        "getpgrp",
        "getpid",
        "getppid",
        "getpriority",
        "getrandom",
        "getresgid",
        "getresgid32",
        "getresuid",
        "getresuid32",
        "getrlimit",
        "getrusage",
        "getsid",
        "getsockname",
        "getsockopt",
        "gettid",
        "gettimeofday",
        "getuid",
        "getuid32",
        "getxattr",
        "getxattrat",
        "inotify_add_watch",
        "inotify_init",
        "inotify_init1",
        "inotify_rm_watch",
        "io_cancel",
        "io_destroy",
        "io_getevents",
        "io_pgetevents",
        "io_pgetevents_time64",
        "io_setup",
        "io_submit",
        "ioctl",
        "ioprio_get",
        "ioprio_set",
        "ipc",
        "kill",
        "landlock_add_rule",
        "landlock_create_ruleset",
        "landlock_restrict_self",
        "lchown",
        "lchown32",
        "lgetxattr",
        "link",
        "linkat",
        "listen",
        "listmount",
        "listxattr",
        "listxattrat",
        "llistxattr",
        "lremovexattr",
        "lseek",
        "lsetxattr",
        "lsm_get_self_attr",
        "lsm_list_modules",
        "lsm_set_self_attr",
        "lstat",
        "lstat64",
        "madvise",
        "map_shadow_stack",
        "membarrier",
        "memfd_create",
        "memfd_secret",
        "mincore",
        "mkdir",
        "mkdirat",
        "mknod",
        "mknodat",
        "mlock",
        "mlock2",
        "mlockall",
        "mmap",
        "mmap2",
        "mprotect",
        "mq_getsetattr",
        "mq_notify",
        "mq_open",
        "mq_timedreceive",
        "mq_timedreceive_time64",
        "mq_timedsend",
        "mq_timedsend_time64",
        "mq_unlink",
        "mremap",
        "mseal",
        "msgctl",
        "msgget",
        "msgrcv",
        "msgsnd",
        "msync",
        "munlock",
        "munlockall",
        "munmap",
        "name_to_handle_at",
        "nanosleep",
        "newfstatat",
        "open",
        "openat",
        "openat2",
        "pause",
        "pidfd_open",
        "pidfd_send_signal",
        "pipe",
        "pipe2",
        "pkey_alloc",
        "pkey_free",
        "pkey_mprotect",
        "poll",
        "ppoll",
        "ppoll_time64",
        "prctl",
        "pread64",
        "preadv",
        "preadv2",
        "prlimit64",
        "process_mrelease",
        "pselect6",
        "pselect6_time64",
        "pwrite64",
        "pwritev",
        "pwritev2",
        "read",
        "readahead",
        "readlink",
        "readlinkat",
        "readv",
        "recv",
        "recvfrom",
        "recvmmsg",
        "recvmmsg_time64",
        "recvmsg",
        "remap_file_pages",
        "removexattr",
        "removexattrat",
        "rename",
        "renameat",
        "renameat2",
        "restart_syscall",
        "rmdir",
        "rseq",
        "rt_sigaction",
        "rt_sigpending",
        "rt_sigprocmask",
        "rt_sigqueueinfo",
        "rt_sigreturn",
        "rt_sigsuspend",
        "rt_sigtimedwait",
        "rt_sigtimedwait_time64",
        "rt_tgsigqueueinfo",
        "sched_get_priority_max",
        "sched_get_priority_min",
        "sched_getaffinity",
        "sched_getattr",
        "sched_getparam",
        "sched_getscheduler",
        "sched_rr_get_interval",
        "sched_rr_get_interval_time64",
        "sched_setaffinity",
        "sched_setattr",
        "sched_setparam",
        "sched_setscheduler",
        "sched_yield",
        "seccomp",
        "select",
        "semctl",
        "semget",
        "semop",
        "semtimedop",
        "semtimedop_time64",
        "send",
        "sendfile",
        "sendfile64",
        "sendmmsg",
        "sendmsg",
        "sendto",
        "set_robust_list",
        "set_thread_area",
        "set_tid_address",
        "setfsgid",
        "setfsgid32",
        "setfsuid",
        "setfsuid32",
        "setgid",
        "setgid32",
        "setgroups",
        "setgroups32",
        "setitimer",
        "setpgid",
        "setpriority",
        "setregid",
        "setregid32",
        "setresgid",
        "setresgid32",
        "setresuid",
        "setresuid32",
        "setreuid",
        "setreuid32",
        "setrlimit",
        "setsid",
        "setsockopt",
        "setuid",
        "setuid32",
        "setxattr",
        "setxattrat",
        "shmat",
        "shmctl",
        "shmdt",
        "shmget",
        "shutdown",
        "sigaltstack",
        "signalfd",
        "signalfd4",
        "sigprocmask",
        "sigreturn",
        "splice",
        "stat",
        "stat64",
        "statfs",
        "statfs64",
        "statmount",
        "statx",
        "symlink",
        "symlinkat",
        "sync",
        "sync_file_range",
        "syncfs",
        "sysinfo",
        "tee",
        "tgkill",
        "time",
        "timer_create",
        "timer_delete",
        "timer_getoverrun",
        "timer_gettime",
        "timer_gettime64",
        "timer_settime",
        "timer_settime64",
        "timerfd_create",
        "timerfd_gettime",
        "timerfd_gettime64",
        "timerfd_settime",
        "timerfd_settime64",
        "times",
        "tkill",
        "truncate",
        "truncate64",
        "ugetrlimit",
        "umask",
        "uname",
        "unlink",
        "unlinkat",
        "uretprobe",
        "utime",
        "utimensat",
        "utimensat_time64",
        "utimes",
        "vfork",
        "vmsplice",
        "wait4",
        "waitid",
        "waitpid",
        "write",
        "writev",
};

/* What containerd's default allows a capability-less container (ptrace
 * and process_vm_* since kernel 4.8, modify_ldt on amd64) and hardened
 * drops: ptrace and process_vm_* let a snippet inspect and rewrite its own
 * processes and have a long CVE record; modify_ldt (16-bit segments) is the
 * source of several x86 entry bugs.  python and sh need none of them. */
static const char *const standard_only_syscalls[] = {
        "ptrace",
        "process_vm_readv",
        "process_vm_writev",
#if defined(__x86_64__)
        "modify_ldt",
#endif
};

/* personality(2) values Docker allows: PER_LINUX, PER_LINUX32, the
 * UNAME26 variants, and 0xffffffff (query only).  Anything else (e.g.
 * ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC) weakens the address space. */
static const uint64_t allowed_personalities[] = { 0x0, 0x8, 0x20000, 0x20008, 0xffffffff };

/* Namespace-creating clone flags: a snippet may fork and spawn threads,
 * never enter a new namespace (the kernel attack surface of user namespaces
 * in particular). */
#define CLONE_NAMESPACE_FLAGS                                                                                  \
        ((uint64_t) (CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | \
                     CLONE_NEWCGROUP))

static const char *const valid_actions[] = {
        "SCMP_ACT_KILL",  "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP",
        "SCMP_ACT_ERRNO", "SCMP_ACT_TRACE",        "SCMP_ACT_ALLOW",       "SCMP_ACT_LOG",
};

static const char *const valid_ops[] = {
        "SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ",
};

static int oom(tr_error **ret_err) {
        return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_CONTAINERD, OP_SECCOMP, "out of memory");
}

static bool in_list(const char *s, const char *const *list, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (streq(s, list[i]))
                        return true;
        return false;
}

static json_t *string_array(const char *const *names, size_t n) {
        _cleanup_json_ json_t *a = json_array();
        if (!a)
                return NULL;
        for (size_t i = 0; i < n; i++)
                if (json_array_append_new(a, json_string(names[i])) < 0)
                        return NULL;
        return TAKE_PTR(a);
}

/* One argument condition in OCI form. */
static json_t *arg_cond(unsigned index, uint64_t value, uint64_t value_two, const char *op) {
        return json_pack("{s:I, s:I, s:I, s:s}", "index", (json_int_t) index, "value", (json_int_t) value, "valueTwo",
                         (json_int_t) value_two, "op", op);
}

static int append_rule(json_t *rules, json_t *rule) {
        return rule ? json_array_append_new(rules, rule) : -1;
}

/* socket(2) allowed for `family` (and, when protocol >= 0, only that
 * protocol): equalities only, see the header comment. */
static json_t *socket_rule(const char *name, uint64_t family, int64_t protocol) {
        if (protocol < 0)
                return json_pack("{s:[s], s:s, s:[o]}", "names", name, "action", "SCMP_ACT_ALLOW", "args",
                                 arg_cond(0, family, 0, "SCMP_CMP_EQ"));
        return json_pack("{s:[s], s:s, s:[o,o]}", "names", name, "action", "SCMP_ACT_ALLOW", "args",
                         arg_cond(0, family, 0, "SCMP_CMP_EQ"), arg_cond(2, (uint64_t) protocol, 0, "SCMP_CMP_EQ"));
}

/* The protocols hardened allows with AF_INET and AF_INET6: the default (0),
 * TCP, UDP and ping's ICMP.  Anything else (SCTP, DCCP, ...) would make the
 * kernel load a rarely used protocol module on the snippet's behalf. */
static const int64_t inet_protocols[] = { 0, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMPV6 };

/* The socket(2) (or, with `pair`, socketpair(2)) rules of a profile.  One
 * rule per allowed value: runc turns repeated conditions on one argument
 * into separate rules (an OR), and libseccomp cannot mix an ERRNO branch
 * with a broad ALLOW reliably, so the allowed set is spelled out. */
static int socket_rules(json_t *rules, bool hardened, bool pair) {
        if (pair)
                /* socketpair makes the kernel instantiate the family (and
                 * load its module) before it finds that only AF_UNIX has
                 * pairs; containerd allows it unconditionally. */
                return hardened ? append_rule(rules, socket_rule("socketpair", AF_UNIX, -1))
                                : append_rule(rules,
                                              json_pack("{s:[s], s:s}", "names", "socketpair", "action", "SCMP_ACT_ALLOW"));
        if (hardened) {
                if (append_rule(rules, socket_rule("socket", AF_UNIX, -1)) < 0 ||
                    append_rule(rules, socket_rule("socket", AF_NETLINK, NETLINK_ROUTE)) < 0)
                        return -1;
                for (size_t i = 0; i < ARRAY_SIZE(inet_protocols); i++)
                        if (append_rule(rules, socket_rule("socket", AF_INET, inet_protocols[i])) < 0 ||
                            append_rule(rules, socket_rule("socket", AF_INET6, inet_protocols[i])) < 0)
                                return -1;
                return 0;
        }
        for (uint64_t f = 0; f < SOCKET_FAMILIES; f++) {
                /* AF_VSOCK reaches the hypervisor host around the network
                 * namespace; AF_ALG is the kernel crypto API (containerd
                 * 2.4 blocks both). */
                if (f == AF_VSOCK || f == AF_ALG)
                        continue;
                if (f != AF_NETLINK) {
                        if (append_rule(rules, socket_rule("socket", f, -1)) < 0)
                                return -1;
                        continue;
                }
                /* Every netlink protocol but the uevent broadcast. */
                for (int64_t p = 0; p < NETLINK_PROTOCOLS; p++)
                        if (p != NETLINK_KOBJECT_UEVENT && append_rule(rules, socket_rule("socket", f, p)) < 0)
                                return -1;
        }
        return 0;
}

int tr__ctrd_seccomp_builtin(bool hardened, json_t **ret, tr_error **ret_err) {
        _cleanup_json_ json_t *rules = json_array();
        if (!rules)
                return oom(ret_err);

        if (json_array_append_new(rules, json_pack("{s:o, s:s}", "names",
                                                   string_array(allowed_syscalls, ARRAY_SIZE(allowed_syscalls)),
                                                   "action", "SCMP_ACT_ALLOW")) < 0)
                return oom(ret_err);
        if (!hardened && json_array_append_new(rules, json_pack("{s:o, s:s}", "names",
                                                                string_array(standard_only_syscalls,
                                                                             ARRAY_SIZE(standard_only_syscalls)),
                                                                "action", "SCMP_ACT_ALLOW")) < 0)
                return oom(ret_err);

        /* One rule per value: conditions inside a rule are ANDed. */
        for (size_t i = 0; i < ARRAY_SIZE(allowed_personalities); i++)
                if (json_array_append_new(
                            rules, json_pack("{s:[s], s:s, s:[o]}", "names", "personality", "action", "SCMP_ACT_ALLOW",
                                             "args", arg_cond(0, allowed_personalities[i], 0, "SCMP_CMP_EQ"))) < 0)
                        return oom(ret_err);

        if (socket_rules(rules, hardened, false) < 0 || socket_rules(rules, hardened, true) < 0)
                return oom(ret_err);

        /* clone's flags are its first argument on x86 and arm (s390 swaps
         * the first two; not a target here). */
        if (json_array_append_new(rules,
                                  json_pack("{s:[s], s:s, s:[o]}", "names", "clone", "action", "SCMP_ACT_ALLOW", "args",
                                            arg_cond(0, CLONE_NAMESPACE_FLAGS, 0, "SCMP_CMP_MASKED_EQ"))) < 0)
                return oom(ret_err);

        /* clone3 passes its flags in memory, where a filter cannot look, so
         * it cannot be allowed; ENOSYS (not EPERM) makes glibc fall back to
         * clone, as Docker does (moby#42681). */
        if (json_array_append_new(rules, json_pack("{s:[s], s:s, s:i}", "names", "clone3", "action", "SCMP_ACT_ERRNO",
                                                   "errnoRet", ENOSYS)) < 0)
                return oom(ret_err);

        json_t *s = json_pack("{s:s, s:i, s:[s], s:O}", "defaultAction", "SCMP_ACT_ERRNO", "defaultErrnoRet", EPERM,
                              "architectures", NATIVE_SCMP_ARCH, "syscalls", rules);
        if (!s)
                return oom(ret_err);
        *ret = s;
        return 0;
}

int tr__ctrd_seccomp_for_profile(tr_profile profile, const char *custom_path, json_t **ret, tr_error **ret_err) {
        switch (profile) {
        case TR_PROFILE_HARDENED:
                if (custom_path)
                        return tr__ctrd_seccomp_load(custom_path, ret, ret_err);
                return tr__ctrd_seccomp_builtin(true, ret, ret_err);
        case TR_PROFILE_STANDARD:
                /* Not in the reference's wording, but without a filter an
                 * unprivileged snippet could still unshare a user namespace
                 * and reach mount and friends inside it: standard gets what
                 * every containerd container gets. */
                return tr__ctrd_seccomp_builtin(false, ret, ret_err);
        default: *ret = NULL; return 0;
        }
}

/* ---- Docker-format profiles ------------------------------------------- */

static bool valid_syscall_name(const char *s) {
        size_t n = strlen(s);
        if (n == 0 || n > 64)
                return false;
        for (; *s; s++)
                if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
                        return false;
        return true;
}

static bool valid_scmp_arch(const char *s) {
        if (strncmp(s, "SCMP_ARCH_", 10) != 0 || strlen(s) > 32 || !s[10])
                return false;
        for (s += 10; *s; s++)
                if (!((*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_'))
                        return false;
        return true;
}

/* "major.minor" of a kernel release ("6.1.0-13-amd64") or of Docker's
 * minKernel ("4.8"); false when unparsable. */
static bool parse_kernel(const char *s, long *ret_major, long *ret_minor) {
        char *end;
        errno = 0;
        long major = strtol(s, &end, 10);
        if (errno || end == s || *end != '.')
                return false;
        const char *m = end + 1;
        long minor = strtol(m, &end, 10);
        if (errno || end == m || major < 0 || minor < 0)
                return false;
        *ret_major = major;
        *ret_minor = minor;
        return true;
}

/* A malformed profile: `where[index]: what`, or just `what`. */
static int bad_at(tr_error **ret_err, const char *where, size_t index, const char *what) {
        return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_CONTAINERD, OP_SECCOMP, "%s[%zu]: %s", where,
                            index, what);
}

static int bad(tr_error **ret_err, const char *what) {
        return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_CONTAINERD, OP_SECCOMP, "%s", what);
}

/* A non-negative integer field within [0, max]; absent is fine when
 * `required` is false (then *ret is left alone). */
static int get_uint(const json_t *obj, const char *key, uint64_t max, bool required, uint64_t *ret) {
        json_t *v = json_object_get(obj, key);
        if (!v)
                return required ? -EINVAL : 0;
        if (!json_is_integer(v) || json_integer_value(v) < 0 || (uint64_t) json_integer_value(v) > max)
                return -EINVAL;
        *ret = (uint64_t) json_integer_value(v);
        return 0;
}

/* Should a Docker rule apply to this sandbox?  Its `includes`/`excludes`
 * refer to capabilities (the sandbox has none), Go architectures and a
 * minimum kernel. */
static int rule_applies(const json_t *rule, const char *kernel_release, size_t index, bool *ret, tr_error **ret_err) {
        const json_t *inc = json_object_get(rule, "includes");
        const json_t *exc = json_object_get(rule, "excludes");
        if ((inc && !json_is_object(inc)) || (exc && !json_is_object(exc)))
                return bad_at(ret_err, "syscalls", index, "includes/excludes must be an object");

        bool applies = true;
        if (inc) {
                const json_t *caps = json_object_get(inc, "caps");
                if (caps && (!json_is_array(caps)))
                        return bad_at(ret_err, "syscalls", index, "includes.caps must be an array");
                /* Granted only with a capability this sandbox never has. */
                if (caps && json_array_size(caps) > 0)
                        applies = false;

                const json_t *arches = json_object_get(inc, "arches");
                if (arches && !json_is_array(arches))
                        return bad_at(ret_err, "syscalls", index, "includes.arches must be an array");
                if (arches && json_array_size(arches) > 0) {
                        bool found = false;
                        size_t i;
                        const json_t *a;
                        json_array_foreach(arches, i, a) {
                                if (!json_is_string(a))
                                        return bad_at(ret_err, "syscalls", index, "includes.arches must hold strings");
                                if (streq(json_string_value(a), NATIVE_GO_ARCH))
                                        found = true;
                        }
                        if (!found)
                                applies = false;
                }

                const json_t *mk = json_object_get(inc, "minKernel");
                if (mk && !json_is_null(mk)) {
                        long want_major, want_minor, have_major, have_minor;
                        if (!json_is_string(mk) || !parse_kernel(json_string_value(mk), &want_major, &want_minor))
                                return bad_at(ret_err, "syscalls", index,
                                              "includes.minKernel must be a \"major.minor\" string");
                        struct utsname u;
                        if (!kernel_release) {
                                if (uname(&u) < 0)
                                        return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_CONTAINERD, OP_SECCOMP,
                                                            "uname: %s", strerror(errno));
                                kernel_release = u.release;
                        }
                        /* An unparsable running kernel is treated as new
                         * enough, as Docker does only for errors it cannot
                         * act on: the rule then follows the profile. */
                        if (parse_kernel(kernel_release, &have_major, &have_minor) &&
                            (have_major < want_major || (have_major == want_major && have_minor < want_minor)))
                                applies = false;
                }
        }
        if (exc) {
                const json_t *arches = json_object_get(exc, "arches");
                if (arches && !json_is_array(arches))
                        return bad_at(ret_err, "syscalls", index, "excludes.arches must be an array");
                size_t i;
                const json_t *a;
                json_array_foreach(arches, i, a) {
                        if (!json_is_string(a))
                                return bad_at(ret_err, "syscalls", index, "excludes.arches must hold strings");
                        if (streq(json_string_value(a), NATIVE_GO_ARCH))
                                applies = false;
                }
                /* excludes.caps removes a rule when a capability is held:
                 * never the case here, so it is only type-checked. */
                const json_t *caps = json_object_get(exc, "caps");
                if (caps && !json_is_array(caps))
                        return bad_at(ret_err, "syscalls", index, "excludes.caps must be an array");
        }
        *ret = applies;
        return 0;
}

/* The calls whose argument rules guard the socket families.  A custom
 * profile's rules for them are replaced by hardened's own (socket_rules):
 * its equality-only family list is the one that keeps the uevent socket,
 * AF_VSOCK and the 32-bit truncation trick out, and rewriting arbitrary
 * user conditions into that form is not worth the risk of getting it
 * wrong.  socketcall is i386 only, which no filter here admits. */
static bool socket_family_call(const char *name) {
        return streq(name, "socket") || streq(name, "socketpair") || streq(name, "socketcall");
}

static int convert_args(const json_t *args, size_t index, json_t **ret, tr_error **ret_err) {
        _cleanup_json_ json_t *out = json_array();
        if (!out)
                return oom(ret_err);
        if (!json_is_array(args))
                return bad_at(ret_err, "syscalls", index, "args must be an array");
        if (json_array_size(args) > TR_CTRD_SECCOMP_MAX_ARGS)
                return bad_at(ret_err, "syscalls", index, "args has more than 6 conditions");
        size_t i;
        const json_t *a;
        json_array_foreach(args, i, a) {
                uint64_t idx = 0, value = 0, value_two = 0;
                const json_t *op = json_object_get(a, "op");
                if (!json_is_object(a) || get_uint(a, "index", 5, true, &idx) < 0 ||
                    get_uint(a, "value", INT64_MAX, true, &value) < 0 ||
                    get_uint(a, "valueTwo", INT64_MAX, false, &value_two) < 0)
                        return bad_at(ret_err, "syscalls", index,
                                      "each args entry needs index 0..5, a non-negative value and valueTwo");
                if (!json_is_string(op) || !in_list(json_string_value(op), valid_ops, ARRAY_SIZE(valid_ops)))
                        return bad_at(ret_err, "syscalls", index, "args op must be one of SCMP_CMP_*");
                if (json_array_append_new(out, arg_cond((unsigned) idx, value, value_two, json_string_value(op))) < 0)
                        return oom(ret_err);
        }
        *ret = TAKE_PTR(out);
        return 0;
}

static int convert_rule(const json_t *rule, size_t index, json_t **ret, tr_error **ret_err) {
        if (!json_is_object(rule))
                return bad_at(ret_err, "syscalls", index, "must be an object");

        _cleanup_json_ json_t *names = json_array();
        if (!names)
                return oom(ret_err);
        const json_t *jnames = json_object_get(rule, "names");
        const json_t *jname = json_object_get(rule, "name");
        if (jnames) {
                if (!json_is_array(jnames) || json_array_size(jnames) == 0 ||
                    json_array_size(jnames) > TR_CTRD_SECCOMP_MAX_NAMES)
                        return bad_at(ret_err, "syscalls", index, "names must be a non-empty array of at most 1024");
                size_t i;
                const json_t *n;
                json_array_foreach(jnames, i, n) {
                        if (!json_is_string(n) || !valid_syscall_name(json_string_value(n)))
                                return bad_at(ret_err, "syscalls", index, "names must be syscall names ([a-z0-9_]+)");
                        if (socket_family_call(json_string_value(n)))
                                continue;
                        if (json_array_append_new(names, json_string(json_string_value(n))) < 0)
                                return oom(ret_err);
                }
        } else if (jname) {
                /* The single "name" of Docker's profiles before 1.12. */
                if (!json_is_string(jname) || !valid_syscall_name(json_string_value(jname)))
                        return bad_at(ret_err, "syscalls", index, "name must be a syscall name");
                if (!socket_family_call(json_string_value(jname)) &&
                    json_array_append_new(names, json_string(json_string_value(jname))) < 0)
                        return oom(ret_err);
        } else
                return bad_at(ret_err, "syscalls", index, "needs names (or name)");

        const json_t *action = json_object_get(rule, "action");
        if (!json_is_string(action) || !in_list(json_string_value(action), valid_actions, ARRAY_SIZE(valid_actions)))
                return bad_at(ret_err, "syscalls", index, "action must be one of SCMP_ACT_* (NOTIFY is not supported)");

        _cleanup_json_ json_t *out = json_pack("{s:O, s:s}", "names", names, "action", json_string_value(action));
        if (!out)
                return oom(ret_err);

        uint64_t errno_ret = 0;
        if (json_object_get(rule, "errnoRet")) {
                if (get_uint(rule, "errnoRet", 4095, true, &errno_ret) < 0)
                        return bad_at(ret_err, "syscalls", index, "errnoRet must be 0..4095");
                if (json_object_set_new(out, "errnoRet", json_integer((json_int_t) errno_ret)) < 0)
                        return oom(ret_err);
        }

        const json_t *args = json_object_get(rule, "args");
        if (args && !json_is_null(args)) {
                json_t *converted = NULL;
                int r = convert_args(args, index, &converted, ret_err);
                if (r < 0)
                        return r;
                if (json_array_size(converted) == 0)
                        json_decref(converted);
                else if (json_object_set_new(out, "args", converted) < 0)
                        return oom(ret_err);
        }
        /* A rule that named only the socket calls is validated, then
         * dropped (their rules are ours, see socket_family_call). */
        *ret = json_array_size(names) > 0 ? TAKE_PTR(out) : NULL;
        return 0;
}

/* Docker's archMap ({architecture, subArchitectures}) picks the entry of the
 * native architecture; the older flat "architectures" is taken as is. */
static int convert_arches(const json_t *doc, json_t **ret, tr_error **ret_err) {
        _cleanup_json_ json_t *out = json_array();
        if (!out)
                return oom(ret_err);
        const json_t *map = json_object_get(doc, "archMap");
        const json_t *flat = json_object_get(doc, "architectures");
        if (map && !json_is_null(map)) {
                if (!json_is_array(map))
                        return bad(ret_err, "archMap must be an array");
                size_t i;
                const json_t *e;
                json_array_foreach(map, i, e) {
                        const json_t *arch = json_object_get(e, "architecture");
                        const json_t *subs = json_object_get(e, "subArchitectures");
                        if (!json_is_string(arch) || !valid_scmp_arch(json_string_value(arch)) ||
                            (subs && !json_is_null(subs) && !json_is_array(subs)))
                                return bad_at(ret_err, "archMap", i,
                                              "needs an SCMP_ARCH_* architecture and a subArchitectures array");
                        if (!streq(json_string_value(arch), NATIVE_SCMP_ARCH))
                                continue;
                        if (json_array_append_new(out, json_string(json_string_value(arch))) < 0)
                                return oom(ret_err);
                        size_t j;
                        const json_t *s;
                        json_array_foreach(subs, j, s) {
                                if (!json_is_string(s) || !valid_scmp_arch(json_string_value(s)))
                                        return bad_at(ret_err, "archMap", i,
                                                      "subArchitectures must be SCMP_ARCH_* names");
                                if (json_array_append_new(out, json_string(json_string_value(s))) < 0)
                                        return oom(ret_err);
                        }
                }
        } else if (flat && !json_is_null(flat)) {
                if (!json_is_array(flat))
                        return bad(ret_err, "architectures must be an array");
                size_t i;
                const json_t *s;
                json_array_foreach(flat, i, s) {
                        if (!json_is_string(s) || !valid_scmp_arch(json_string_value(s)))
                                return bad_at(ret_err, "architectures", i, "must be an SCMP_ARCH_* name");
                        if (json_array_append_new(out, json_string(json_string_value(s))) < 0)
                                return oom(ret_err);
                }
        }
        *ret = TAKE_PTR(out);
        return 0;
}

/* Does some rule of an (already validated) Docker profile let `name`
 * through in any way?  Then it gets hardened's rules for it; otherwise it
 * stays denied, as the profile says. */
static bool lets_through(const json_t *syscalls, const char *name) {
        size_t i;
        const json_t *rule;
        json_array_foreach(syscalls, i, rule) {
                const char *action = json_string_value(json_object_get(rule, "action"));
                if (!action || strncmp(action, "SCMP_ACT_KILL", 13) == 0 || streq(action, "SCMP_ACT_ERRNO") ||
                    streq(action, "SCMP_ACT_TRAP"))
                        continue;
                const json_t *one = json_object_get(rule, "name");
                if (json_is_string(one) && streq(json_string_value(one), name))
                        return true;
                size_t j;
                const json_t *n;
                json_array_foreach(json_object_get(rule, "names"), j, n) if (json_is_string(n) &&
                                                                             streq(json_string_value(n), name)) return true;
        }
        return false;
}

int tr__ctrd_seccomp_from_docker(const json_t *doc, const char *kernel_release, json_t **ret, tr_error **ret_err) {
        if (!json_is_object(doc))
                return bad(ret_err, "the profile must be a JSON object");

        const json_t *def = json_object_get(doc, "defaultAction");
        if (!json_is_string(def) || !in_list(json_string_value(def), valid_actions, ARRAY_SIZE(valid_actions)))
                return bad(ret_err, "defaultAction must be one of SCMP_ACT_*");
        /* The hardened profile promises an allowlist: a profile that lets
         * every unlisted syscall through is a denylist, and would silently
         * make "hardened" weaker than it says. */
        if (streq(json_string_value(def), "SCMP_ACT_ALLOW") || streq(json_string_value(def), "SCMP_ACT_LOG"))
                return tr_error_set(ret_err, TR_E_SECURITY_VIOLATION, TR_BACKEND_CONTAINERD, OP_SECCOMP,
                                    "defaultAction %s allows every unlisted syscall; the hardened profile needs "
                                    "a default-deny (allowlist) profile",
                                    json_string_value(def));

        _cleanup_json_ json_t *out = json_pack("{s:s}", "defaultAction", json_string_value(def));
        if (!out)
                return oom(ret_err);

        uint64_t def_errno = 0;
        if (json_object_get(doc, "defaultErrnoRet")) {
                if (get_uint(doc, "defaultErrnoRet", 4095, true, &def_errno) < 0)
                        return bad(ret_err, "defaultErrnoRet must be 0..4095");
                if (json_object_set_new(out, "defaultErrnoRet", json_integer((json_int_t) def_errno)) < 0)
                        return oom(ret_err);
        }

        /* The profile's architectures are validated, then replaced by the
         * native one alone: a custom profile must not reopen the i386 or x32
         * ABI, whose socketcall(2) and truncated arguments go around every
         * argument rule. */
        json_t *arches = NULL;
        int r = convert_arches(doc, &arches, ret_err);
        if (r < 0)
                return r;
        json_decref(arches);
        if (json_object_set_new(out, "architectures", json_pack("[s]", NATIVE_SCMP_ARCH)) < 0)
                return oom(ret_err);

        _cleanup_json_ json_t *rules = json_array();
        if (!rules)
                return oom(ret_err);
        const json_t *syscalls = json_object_get(doc, "syscalls");
        if (syscalls && !json_is_null(syscalls)) {
                if (!json_is_array(syscalls) || json_array_size(syscalls) > TR_CTRD_SECCOMP_MAX_RULES)
                        return bad(ret_err, "syscalls must be an array of at most 4096 rules");
                size_t i;
                const json_t *rule;
                json_array_foreach(syscalls, i, rule) {
                        bool applies = true;
                        if (json_is_object(rule)) {
                                r = rule_applies(rule, kernel_release, i, &applies, ret_err);
                                if (r < 0)
                                        return r;
                        }
                        /* A rule that does not apply is still validated:
                         * a typo should fail on every machine alike. */
                        json_t *conv = NULL;
                        r = convert_rule(rule, i, &conv, ret_err);
                        if (r < 0)
                                return r;
                        if (!applies || !conv)
                                json_decref(conv);
                        else if (json_array_append_new(rules, conv) < 0)
                                return oom(ret_err);
                }
        }
        if (lets_through(syscalls, "socket") && socket_rules(rules, true, false) < 0)
                return oom(ret_err);
        if (lets_through(syscalls, "socketpair") && socket_rules(rules, true, true) < 0)
                return oom(ret_err);
        if (json_object_set(out, "syscalls", rules) < 0)
                return oom(ret_err);

        *ret = TAKE_PTR(out);
        return 0;
}

int tr__ctrd_seccomp_load(const char *path, json_t **ret, tr_error **ret_err) {
        if (!path || path[0] != '/')
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_CONTAINERD, OP_SECCOMP,
                                    "the seccomp profile path must be absolute: %s", path ? path : "(null)");

        /* O_NONBLOCK: a FIFO planted at the path must not hang the caller;
         * the S_ISREG check below then refuses it. */
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0) {
                int e = errno;
                int r = tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_CONTAINERD, OP_SECCOMP,
                                     "cannot open the seccomp profile %s: %s", path, strerror(e));
                if (ret_err && *ret_err)
                        tr_error_set_errno(*ret_err, e);
                return r;
        }
        struct stat st;
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_CONTAINERD, OP_SECCOMP,
                                    "the seccomp profile %s is not a regular file", path);
        if (st.st_size > TR_CTRD_SECCOMP_MAX_FILE)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_CONTAINERD, OP_SECCOMP,
                                    "the seccomp profile %s is larger than %d bytes", path, TR_CTRD_SECCOMP_MAX_FILE);

        /* Read to EOF with the cap enforced on what is read, not on what
         * fstat said: the file may grow in between. */
        size_t cap = TR_CTRD_SECCOMP_MAX_FILE + 1, len = 0;
        _cleanup_free_ char *buf = malloc(cap);
        if (!buf)
                return oom(ret_err);
        for (;;) {
                ssize_t n = read(fd, buf + len, cap - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_CONTAINERD, OP_SECCOMP,
                                            "cannot read the seccomp profile %s: %s", path, strerror(errno));
                if (n == 0)
                        break;
                len += (size_t) n;
                if (len == cap)
                        return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_CONTAINERD, OP_SECCOMP,
                                            "the seccomp profile %s is larger than %d bytes", path,
                                            TR_CTRD_SECCOMP_MAX_FILE);
        }

        json_error_t jerr;
        _cleanup_json_ json_t *doc = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!doc)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_CONTAINERD, OP_SECCOMP,
                                    "the seccomp profile %s is not valid JSON: line %d column %d: %s", path, jerr.line,
                                    jerr.column, jerr.text);

        int r = tr__ctrd_seccomp_from_docker(doc, NULL, ret, ret_err);
        if (r < 0 && ret_err && *ret_err)
                tr_error_prefix(*ret_err, "seccomp profile %s", path);
        return r;
}
