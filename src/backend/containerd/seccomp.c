/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The hardened profile's seccomp filter, in the OCI runtime-spec form runc
 * consumes: a built-in allowlist, or a Docker-format profile converted.
 *
 * The built-in lists are containerd's contrib/seccomp default (itself
 * Docker's default) for a container with no capabilities (the standard
 * profile), and that minus what a python or sh snippet never needs and what
 * has a history of kernel exploits: ptrace, io_uring, modify_ldt (the
 * hardened profile).  Everything not listed fails with EPERM, so a
 * snippet sees an ordinary "Operation not permitted" rather than being
 * killed, and the error is reported by the code that made the call.
 */
#include "backend/containerd/seccomp.h"

#include <errno.h>
#include <fcntl.h>
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
 * archMap and includes.arches use these), and the sub-architectures a
 * process can switch to with a different syscall table.  A filter that
 * names only the native one lets a snippet bypass it through, e.g., the
 * i386 int 0x80 entry: runc then kills those calls, but listing them keeps
 * the allowlist meaningful for them too. */
#if defined(__x86_64__)
#define NATIVE_SCMP_ARCH "SCMP_ARCH_X86_64"
#define NATIVE_GO_ARCH   "amd64"
static const char *const native_arches[] = { "SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32" };
#elif defined(__aarch64__)
#define NATIVE_SCMP_ARCH "SCMP_ARCH_AARCH64"
#define NATIVE_GO_ARCH   "arm64"
static const char *const native_arches[] = { "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM" };
#else
#error "toolruntime's seccomp profile knows x86_64 and aarch64 only"
#endif

/* containerd's default allowlist less ptrace, io_uring_* and modify_ldt
 * (see standard_only_syscalls).
 * Names a kernel or architecture does not know are skipped by runc, so the
 * 32-bit variants cost nothing on x86_64. */
static const char *const allowed_syscalls[] = {
        "accept",
        "accept4",
        "access",
        "adjtimex",
        "alarm",
        "arch_prctl",
        "bind",
        "brk",
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
        "futex_time64",
        "futex_waitv",
        "futimesat",
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
        "get_robust_list",
        "getrusage",
        "getsid",
        "getsockname",
        "getsockopt",
        "get_thread_area",
        "gettid",
        "gettimeofday",
        "getuid",
        "getuid32",
        "getxattr",
        "inotify_add_watch",
        "inotify_init",
        "inotify_init1",
        "inotify_rm_watch",
        "io_cancel",
        "ioctl",
        "io_destroy",
        "io_getevents",
        "io_pgetevents",
        "io_pgetevents_time64",
        "ioprio_get",
        "ioprio_set",
        "io_setup",
        "io_submit",
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
        "listxattr",
        "llistxattr",
        "_llseek",
        "lremovexattr",
        "lseek",
        "lsetxattr",
        "lstat",
        "lstat64",
        "madvise",
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
        "msgctl",
        "msgget",
        "msgrcv",
        "msgsnd",
        "msync",
        "munlock",
        "munlockall",
        "munmap",
        "nanosleep",
        "newfstatat",
        "_newselect",
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
        "sched_getaffinity",
        "sched_getattr",
        "sched_getparam",
        "sched_get_priority_max",
        "sched_get_priority_min",
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
        "set_robust_list",
        "setsid",
        "setsockopt",
        "set_thread_area",
        "set_tid_address",
        "setuid",
        "setuid32",
        "setxattr",
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
        "socketpair",
        "splice",
        "stat",
        "stat64",
        "statfs",
        "statfs64",
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

/* What containerd's default has and the hardened list drops: ptrace (a
 * snippet can inspect its own children, and the ptrace code has a long CVE
 * record), io_uring (a large, young attack surface that Google and others
 * disable for untrusted code), modify_ldt (16-bit segments, the source of
 * several x86 entry bugs) and socketcall (the i386 multiplexer passes the
 * socket family in memory, around the AF_VSOCK rule below).  None is
 * needed by the image's 64-bit python or sh. */
static const char *const standard_only_syscalls[] = {
        "ptrace",     "io_uring_enter", "io_uring_register", "io_uring_setup", "socketcall",
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

        /* Any socket family but AF_VSOCK (40): a vsock reaches the
         * hypervisor host directly, around the network namespace, when the
         * sandbox runs in a VM (Docker's default denies it for the same
         * reason). */
        if (json_array_append_new(rules, json_pack("{s:[s], s:s, s:[o]}", "names", "socket", "action", "SCMP_ACT_ALLOW",
                                                   "args", arg_cond(0, AF_VSOCK, 0, "SCMP_CMP_NE"))) < 0)
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

        json_t *s =
                json_pack("{s:s, s:i, s:o, s:O}", "defaultAction", "SCMP_ACT_ERRNO", "defaultErrnoRet", EPERM,
                          "architectures", string_array(native_arches, ARRAY_SIZE(native_arches)), "syscalls", rules);
        if (!s)
                return oom(ret_err);
        *ret = s;
        return 0;
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
                        if (json_array_append_new(names, json_string(json_string_value(n))) < 0)
                                return oom(ret_err);
                }
        } else if (jname) {
                /* The single "name" of Docker's profiles before 1.12. */
                if (!json_is_string(jname) || !valid_syscall_name(json_string_value(jname)))
                        return bad_at(ret_err, "syscalls", index, "name must be a syscall name");
                if (json_array_append_new(names, json_string(json_string_value(jname))) < 0)
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
        *ret = TAKE_PTR(out);
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

        json_t *arches = NULL;
        int r = convert_arches(doc, &arches, ret_err);
        if (r < 0)
                return r;
        if (json_object_set_new(out, "architectures", arches) < 0)
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
                        if (!applies)
                                json_decref(conv);
                        else if (json_array_append_new(rules, conv) < 0)
                                return oom(ret_err);
                }
        }
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
