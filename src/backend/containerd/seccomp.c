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
#include <linux/netlink.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>

#include "util/macros.h"

#define OP_SECCOMP "seccomp"

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

static int oom(tr_error **ret_err) {
        return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_CONTAINERD, OP_SECCOMP, "out of memory");
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

json_t *tr__ctrd_seccomp_arg_cond(unsigned index, uint64_t value, uint64_t value_two, const char *op) {
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
                                 tr__ctrd_seccomp_arg_cond(0, family, 0, "SCMP_CMP_EQ"));
        return json_pack("{s:[s], s:s, s:[o,o]}", "names", name, "action", "SCMP_ACT_ALLOW", "args",
                         tr__ctrd_seccomp_arg_cond(0, family, 0, "SCMP_CMP_EQ"),
                         tr__ctrd_seccomp_arg_cond(2, (uint64_t) protocol, 0, "SCMP_CMP_EQ"));
}

/* The protocols hardened allows with AF_INET and AF_INET6: the default (0),
 * TCP, UDP and ping's ICMP.  Anything else (SCTP, DCCP, ...) would make the
 * kernel load a rarely used protocol module on the snippet's behalf. */
static const int64_t inet_protocols[] = { 0, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMPV6 };

/* The socket(2) (or, with `pair`, socketpair(2)) rules of a profile (see
 * seccomp.h).  One
 * rule per allowed value: runc turns repeated conditions on one argument
 * into separate rules (an OR), and libseccomp cannot mix an ERRNO branch
 * with a broad ALLOW reliably, so the allowed set is spelled out. */
int tr__ctrd_seccomp_socket_rules(json_t *rules, bool hardened, bool pair) {
        if (pair)
                /* socketpair makes the kernel instantiate the family (and
                 * load its module) before it finds that only AF_UNIX has
                 * pairs; containerd allows it unconditionally. */
                return hardened ? append_rule(rules, socket_rule("socketpair", AF_UNIX, -1))
                                : append_rule(rules, json_pack("{s:[s], s:s}", "names", "socketpair", "action",
                                                               "SCMP_ACT_ALLOW"));
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
                            rules,
                            json_pack("{s:[s], s:s, s:[o]}", "names", "personality", "action", "SCMP_ACT_ALLOW", "args",
                                      tr__ctrd_seccomp_arg_cond(0, allowed_personalities[i], 0, "SCMP_CMP_EQ"))) < 0)
                        return oom(ret_err);

        if (tr__ctrd_seccomp_socket_rules(rules, hardened, false) < 0 ||
            tr__ctrd_seccomp_socket_rules(rules, hardened, true) < 0)
                return oom(ret_err);

        /* clone's flags are its first argument on x86 and arm (s390 swaps
         * the first two; not a target here). */
        if (json_array_append_new(
                    rules, json_pack("{s:[s], s:s, s:[o]}", "names", "clone", "action", "SCMP_ACT_ALLOW", "args",
                                     tr__ctrd_seccomp_arg_cond(0, CLONE_NAMESPACE_FLAGS, 0, "SCMP_CMP_MASKED_EQ"))) < 0)
                return oom(ret_err);

        /* clone3 passes its flags in memory, where a filter cannot look, so
         * it cannot be allowed; ENOSYS (not EPERM) makes glibc fall back to
         * clone, as Docker does (moby#42681). */
        if (json_array_append_new(rules, json_pack("{s:[s], s:s, s:i}", "names", "clone3", "action", "SCMP_ACT_ERRNO",
                                                   "errnoRet", ENOSYS)) < 0)
                return oom(ret_err);

        json_t *s = json_pack("{s:s, s:i, s:[s], s:O}", "defaultAction", "SCMP_ACT_ERRNO", "defaultErrnoRet", EPERM,
                              "architectures", TR__SECCOMP_NATIVE_ARCH, "syscalls", rules);
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
