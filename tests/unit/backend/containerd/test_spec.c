/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The containerd backend's OCI spec builder and seccomp filters: the shape
 * of the spec per profile, validation, the Docker-profile conversion, and,
 * through libseccomp, that the generated filters compile and really deny
 * what they must (each is loaded in a forked child that then makes the
 * calls).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <linux/sched.h>
#include <linux/filter.h>
#include <linux/netlink.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend/containerd/seccomp.h"
#include "backend/containerd/spec.h"
#include "util/handles.h"

static const char *const argv_py[] = { "python3", "-c", "print(1)", NULL };
static const char *const env_min[] = { "LANG=C.UTF-8", "HOME=/tmp", NULL };

static tr__ctrd_spec_input base_input(tr_profile profile) {
        return (tr__ctrd_spec_input){
                .profile = profile,
                .argv = argv_py,
                .env = env_min,
                .cgroups_path = "/toolruntime/t1",
                .memory_bytes = 64 * 1024 * 1024,
                .cpu_quota_us = 50000,
                .pids_max = 32,
                .disk_bytes = 8 * 1024 * 1024,
                .gateway_dir = "/run/toolruntime-test/gw1",
                .uid = 0x70000007,
                .gid = 0x70000007,
        };
}

static json_t *build(const tr__ctrd_spec_input *in) {
        _cleanup_free_ char *text = NULL;
        _cleanup_(tr_error_freep) tr_error *err = NULL;
        int r = tr__ctrd_spec_build(in, &text, &err);
        cr_assert_eq(r, 0, "spec build failed: %s", err ? tr_error_message(err) : "?");
        json_error_t jerr;
        json_t *spec = json_loads(text, 0, &jerr);
        cr_assert_not_null(spec, "spec is not JSON: %s", jerr.text);
        return spec;
}

static tr_code build_fails(const tr__ctrd_spec_input *in) {
        char *text = NULL;
        _cleanup_(tr_error_freep) tr_error *err = NULL;
        int r = tr__ctrd_spec_build(in, &text, &err);
        cr_assert_lt(r, 0);
        cr_assert_null(text);
        cr_assert_not_null(err);
        cr_assert_str_eq(tr_error_op(err), "spec");
        return tr_error_code(err);
}

static json_t *find_mount(json_t *spec, const char *dest) {
        size_t i;
        json_t *m;
        json_array_foreach(json_object_get(spec, "mounts"), i,
                           m) if (strcmp(json_string_value(json_object_get(m, "destination")), dest) == 0) return m;
        return NULL;
}

static bool strv_has(json_t *arr, const char *s) {
        size_t i;
        json_t *v;
        json_array_foreach(arr, i, v) if (json_is_string(v) && strcmp(json_string_value(v), s) == 0) return true;
        return false;
}

static bool has_namespace(json_t *spec, const char *type) {
        size_t i;
        json_t *ns;
        json_array_foreach(json_object_get(json_object_get(spec, "linux"), "namespaces"), i,
                           ns) if (strcmp(json_string_value(json_object_get(ns, "type")), type) == 0) return true;
        return false;
}

/* ---- spec shape ------------------------------------------------------- */

Test(ctrd_spec, root_or_no_user_is_refused) {
        tr__ctrd_spec_input in = base_input(TR_PROFILE_STANDARD);
        in.uid = 0;
        cr_assert_eq(build_fails(&in), TR_E_SECURITY_VIOLATION);
        in = base_input(TR_PROFILE_DEV);
        in.gid = 0;
        cr_assert_eq(build_fails(&in), TR_E_SECURITY_VIOLATION);
}

Test(ctrd_spec, user_parsing) {
        uint32_t u = 0, g = 0;
        cr_assert_eq(tr__ctrd_parse_user("1879048193:1879048194", &u, &g), 0);
        cr_assert_eq(u, 1879048193u);
        cr_assert_eq(g, 1879048194u);
        const char *bad[] = { NULL,    "",     "65534", "65534:", ":1",           "a:b",
                              "1:2:3", " 1:2", "1:2 ",  "-1:2",   "4294967295:1", "99999999999:1" };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
                cr_assert_lt(tr__ctrd_parse_user(bad[i], &u, &g), 0, "%s", bad[i] ? bad[i] : "NULL");
}

Test(ctrd_spec, standard_process_is_unprivileged) {
        tr__ctrd_spec_input in = base_input(TR_PROFILE_STANDARD);
        json_t *spec = build(&in);
        json_t *p = json_object_get(spec, "process");
        /* The sandbox's own uid, as the backend leased it (above 2^31 would
         * show a signedness bug; 0x70000007 is what was passed). */
        cr_assert_eq(json_integer_value(json_object_get(json_object_get(p, "user"), "uid")), 0x70000007);
        cr_assert_eq(json_integer_value(json_object_get(json_object_get(p, "user"), "gid")), 0x70000007);
        cr_assert_null(json_object_get(json_object_get(p, "user"), "additionalGids"));
        cr_assert(json_is_true(json_object_get(p, "noNewPrivileges")));
        cr_assert(json_is_false(json_object_get(p, "terminal")));
        json_t *caps = json_object_get(p, "capabilities");
        const char *sets[] = { "bounding", "effective", "inheritable", "permitted", "ambient" };
        for (size_t i = 0; i < ARRAY_SIZE(sets); i++) {
                json_t *set = json_object_get(caps, sets[i]);
                cr_assert(json_is_array(set) && json_array_size(set) == 0, "%s must be an empty array", sets[i]);
        }
        json_t *rl = json_object_get(p, "rlimits");
        cr_assert_str_eq(json_string_value(json_object_get(json_array_get(rl, 0), "type")), "RLIMIT_NOFILE");
        cr_assert_eq(json_integer_value(json_object_get(json_array_get(rl, 0), "hard")), 1024);
        cr_assert_str_eq(json_string_value(json_object_get(json_array_get(rl, 1), "type")), "RLIMIT_CORE");
        cr_assert_str_eq(json_string_value(json_object_get(json_array_get(rl, 2), "type")), "RLIMIT_MSGQUEUE");
        cr_assert_eq(json_integer_value(json_object_get(json_array_get(rl, 2), "hard")), 0);
        cr_assert_str_eq(json_string_value(json_object_get(p, "cwd")), "/tmp");
        cr_assert_str_eq(json_string_value(json_array_get(json_object_get(p, "args"), 0)), "python3");
        /* PATH is added when the caller's environment has none. */
        cr_assert(strv_has(json_object_get(p, "env"),
                           "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"));
        cr_assert(strv_has(json_object_get(p, "env"), "HOME=/tmp"));
        cr_assert_eq(json_array_size(json_object_get(p, "env")), 3);
        cr_assert_eq(json_integer_value(json_object_get(p, "oomScoreAdj")), 1000);
        json_decref(spec);
}

Test(ctrd_spec, standard_root_readonly_isolated_network) {
        tr__ctrd_spec_input in = base_input(TR_PROFILE_STANDARD);
        json_t *spec = build(&in);
        cr_assert(json_is_true(json_object_get(json_object_get(spec, "root"), "readonly")));
        cr_assert_str_eq(json_string_value(json_object_get(json_object_get(spec, "root"), "path")), "rootfs");
        cr_assert_str_eq(json_string_value(json_object_get(spec, "hostname")), "sandbox");
        const char *nss[] = { "pid", "ipc", "uts", "mount", "cgroup", "network" };
        for (size_t i = 0; i < ARRAY_SIZE(nss); i++)
                cr_assert(has_namespace(spec, nss[i]), "missing %s namespace", nss[i]);
        cr_assert(!has_namespace(spec, "user"));
        json_decref(spec);
}

Test(ctrd_spec, dev_has_host_network_writable_root_no_seccomp) {
        tr__ctrd_spec_input in = base_input(TR_PROFILE_DEV);
        json_t *spec = build(&in);
        cr_assert(json_is_false(json_object_get(json_object_get(spec, "root"), "readonly")));
        cr_assert(!has_namespace(spec, "network"));
        cr_assert(has_namespace(spec, "pid"));
        cr_assert_null(json_object_get(json_object_get(spec, "linux"), "seccomp"));
        /* Still unprivileged. */
        cr_assert(json_is_true(json_object_get(json_object_get(spec, "process"), "noNewPrivileges")));
        json_decref(spec);
}

Test(ctrd_spec, mounts) {
        tr__ctrd_spec_input in = base_input(TR_PROFILE_HARDENED);
        json_t *spec = build(&in);
        json_t *tmp = find_mount(spec, "/tmp");
        cr_assert_not_null(tmp);
        cr_assert_str_eq(json_string_value(json_object_get(tmp, "type")), "tmpfs");
        json_t *o = json_object_get(tmp, "options");
        cr_assert(strv_has(o, "size=8388608"));
        cr_assert(strv_has(o, "mode=1777") && strv_has(o, "nosuid") && strv_has(o, "nodev"));

        json_t *gw = find_mount(spec, "/run/toolruntime");
        cr_assert_not_null(gw);
        cr_assert_str_eq(json_string_value(json_object_get(gw, "source")), "/run/toolruntime-test/gw1");
        o = json_object_get(gw, "options");
        cr_assert(strv_has(o, "rbind") && strv_has(o, "ro") && strv_has(o, "nosuid") && strv_has(o, "noexec") &&
                  strv_has(o, "nodev"));

        cr_assert(strv_has(json_object_get(find_mount(spec, "/sys"), "options"), "ro"));
        cr_assert(strv_has(json_object_get(find_mount(spec, "/sys/fs/cgroup"), "options"), "ro"));
        cr_assert(strv_has(json_object_get(find_mount(spec, "/dev/pts"), "options"), "newinstance"));
        json_t *shm = json_object_get(find_mount(spec, "/dev/shm"), "options");
        cr_assert(strv_has(shm, "noexec") && strv_has(shm, "size=1048576"));
        cr_assert_not_null(find_mount(spec, "/proc"));
        cr_assert_not_null(find_mount(spec, "/dev/mqueue"));
        cr_assert_null(find_mount(spec, "/run"));
        json_decref(spec);
}

Test(ctrd_spec, default_tmp_size_and_no_gateway) {
        tr__ctrd_spec_input in = base_input(TR_PROFILE_STANDARD);
        in.disk_bytes = 0;
        in.gateway_dir = NULL;
        json_t *spec = build(&in);
        char want[64];
        snprintf(want, sizeof want, "size=%lld", (long long) TR_CTRD_DEFAULT_TMP_BYTES);
        cr_assert(strv_has(json_object_get(find_mount(spec, "/tmp"), "options"), want));
        cr_assert_null(find_mount(spec, "/run/toolruntime"));
        json_decref(spec);
}

Test(ctrd_spec, resources) {
        tr__ctrd_spec_input in = base_input(TR_PROFILE_STANDARD);
        json_t *spec = build(&in);
        json_t *lx = json_object_get(spec, "linux");
        json_t *res = json_object_get(lx, "resources");
        json_t *mem = json_object_get(res, "memory");
        cr_assert_eq(json_integer_value(json_object_get(mem, "limit")), 64 * 1024 * 1024);
        cr_assert_eq(json_integer_value(json_object_get(mem, "swap")), 64 * 1024 * 1024);
        cr_assert_eq(json_integer_value(json_object_get(json_object_get(res, "cpu"), "quota")), 50000);
        cr_assert_eq(json_integer_value(json_object_get(json_object_get(res, "cpu"), "period")), 100000);
        cr_assert_eq(json_integer_value(json_object_get(json_object_get(res, "pids"), "limit")), 32);
        json_t *devs = json_object_get(res, "devices");
        json_t *first = json_array_get(devs, 0);
        cr_assert(json_is_false(json_object_get(first, "allow")));
        cr_assert_str_eq(json_string_value(json_object_get(first, "access")), "rwm");
        cr_assert_null(json_object_get(first, "major"));
        /* /dev/null is allowed, no pty is. */
        bool null_ok = false, pty = false;
        size_t i;
        json_t *d;
        json_array_foreach(devs, i, d) {
                if (!json_is_true(json_object_get(d, "allow")))
                        continue;
                json_int_t maj = json_integer_value(json_object_get(d, "major"));
                json_int_t min = json_integer_value(json_object_get(d, "minor"));
                if (maj == 1 && min == 3)
                        null_ok = true;
                if (maj == 136 || (maj == 5 && min == 2))
                        pty = true;
        }
        cr_assert(null_ok && !pty);
        cr_assert_str_eq(json_string_value(json_object_get(lx, "cgroupsPath")), "/toolruntime/t1");
        const char *masked[] = { "/proc/acpi",
                                 "/proc/asound",
                                 "/proc/kcore",
                                 "/proc/keys",
                                 "/proc/latency_stats",
                                 "/proc/timer_list",
                                 "/proc/timer_stats",
                                 "/proc/sched_debug",
                                 "/proc/scsi",
                                 "/sys/firmware",
                                 "/sys/devices/virtual/powercap" };
        for (size_t k = 0; k < ARRAY_SIZE(masked); k++)
                cr_assert(strv_has(json_object_get(lx, "maskedPaths"), masked[k]), "%s not masked", masked[k]);
        const char *ro[] = { "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger" };
        for (size_t k = 0; k < ARRAY_SIZE(ro); k++)
                cr_assert(strv_has(json_object_get(lx, "readonlyPaths"), ro[k]), "%s not read-only", ro[k]);
        json_decref(spec);
}

Test(ctrd_spec, unlimited_resources_are_absent) {
        tr__ctrd_spec_input in = base_input(TR_PROFILE_STANDARD);
        in.memory_bytes = in.cpu_quota_us = in.pids_max = 0;
        json_t *spec = build(&in);
        json_t *res = json_object_get(json_object_get(spec, "linux"), "resources");
        cr_assert_null(json_object_get(res, "memory"));
        cr_assert_null(json_object_get(res, "cpu"));
        cr_assert_null(json_object_get(res, "pids"));
        cr_assert_not_null(json_object_get(res, "devices"));
        json_decref(spec);
}

Test(ctrd_spec, custom_cwd_hostname_env_path) {
        static const char *const env[] = { "PATH=/bin", NULL };
        tr__ctrd_spec_input in = base_input(TR_PROFILE_STANDARD);
        in.cwd = "/run/toolruntime";
        in.hostname = "box-1";
        in.env = env;
        json_t *spec = build(&in);
        json_t *p = json_object_get(spec, "process");
        cr_assert_str_eq(json_string_value(json_object_get(p, "cwd")), "/run/toolruntime");
        cr_assert_str_eq(json_string_value(json_object_get(spec, "hostname")), "box-1");
        cr_assert_eq(json_array_size(json_object_get(p, "env")), 1);
        json_decref(spec);
}

Test(ctrd_spec, validation) {
        tr__ctrd_spec_input in;
        static const char *const empty_argv[] = { NULL };
        static const char *const blank_argv[] = { "", NULL };
        static const char *const bad_env[] = { "NOEQUALS", NULL };
        static const char *const bad_env2[] = { "=x", NULL };

        cr_assert_eq(build_fails(NULL), TR_E_INVALID_REQUEST);
        in = base_input(TR_PROFILE_DEFAULT);
        cr_assert_eq(build_fails(&in), TR_E_INVALID_REQUEST);
        in = base_input(TR__PROFILE_MAX);
        cr_assert_eq(build_fails(&in), TR_E_INVALID_REQUEST);
        in = base_input(TR_PROFILE_STANDARD), in.argv = NULL;
        cr_assert_eq(build_fails(&in), TR_E_INVALID_REQUEST);
        in = base_input(TR_PROFILE_STANDARD), in.argv = empty_argv;
        cr_assert_eq(build_fails(&in), TR_E_INVALID_REQUEST);
        in = base_input(TR_PROFILE_STANDARD), in.argv = blank_argv;
        cr_assert_eq(build_fails(&in), TR_E_INVALID_REQUEST);
        in = base_input(TR_PROFILE_STANDARD), in.env = bad_env;
        cr_assert_eq(build_fails(&in), TR_E_INVALID_REQUEST);
        in = base_input(TR_PROFILE_STANDARD), in.env = bad_env2;
        cr_assert_eq(build_fails(&in), TR_E_INVALID_REQUEST);
        in = base_input(TR_PROFILE_STANDARD), in.cwd = "tmp";
        cr_assert_eq(build_fails(&in), TR_E_INVALID_REQUEST);
        in = base_input(TR_PROFILE_STANDARD), in.cwd = "/tmp/../etc";
        cr_assert_eq(build_fails(&in), TR_E_INVALID_REQUEST);
        in = base_input(TR_PROFILE_STANDARD), in.hostname = "bad host";
        cr_assert_eq(build_fails(&in), TR_E_INVALID_REQUEST);
        in = base_input(TR_PROFILE_STANDARD), in.hostname = "";
        cr_assert_eq(build_fails(&in), TR_E_INVALID_REQUEST);
        in = base_input(TR_PROFILE_STANDARD), in.seccomp_path = "profile.json";
        cr_assert_eq(build_fails(&in), TR_E_INVALID_REQUEST);
        /* Paths that would reach outside what is meant. */
        in = base_input(TR_PROFILE_STANDARD), in.cgroups_path = "toolruntime/x";
        cr_assert_eq(build_fails(&in), TR_E_SECURITY_VIOLATION);
        in = base_input(TR_PROFILE_STANDARD), in.cgroups_path = "/toolruntime/../../x";
        cr_assert_eq(build_fails(&in), TR_E_SECURITY_VIOLATION);
        in = base_input(TR_PROFILE_STANDARD), in.gateway_dir = "/";
        cr_assert_eq(build_fails(&in), TR_E_SECURITY_VIOLATION);
        in = base_input(TR_PROFILE_STANDARD), in.gateway_dir = "//";
        cr_assert_eq(build_fails(&in), TR_E_SECURITY_VIOLATION);
        in = base_input(TR_PROFILE_STANDARD), in.gateway_dir = "run/gw";
        cr_assert_eq(build_fails(&in), TR_E_SECURITY_VIOLATION);
        in = base_input(TR_PROFILE_STANDARD), in.gateway_dir = "/run/gw/..";
        cr_assert_eq(build_fails(&in), TR_E_SECURITY_VIOLATION);
        /* Limits. */
        in = base_input(TR_PROFILE_STANDARD), in.memory_bytes = -1;
        cr_assert_eq(build_fails(&in), TR_E_INVALID_LIMITS);
        in = base_input(TR_PROFILE_STANDARD), in.cpu_quota_us = -1;
        cr_assert_eq(build_fails(&in), TR_E_INVALID_LIMITS);
        in = base_input(TR_PROFILE_STANDARD), in.pids_max = -5;
        cr_assert_eq(build_fails(&in), TR_E_INVALID_LIMITS);
        in = base_input(TR_PROFILE_STANDARD), in.disk_bytes = -1;
        cr_assert_eq(build_fails(&in), TR_E_INVALID_LIMITS);
        in = base_input(TR_PROFILE_STANDARD), in.cpu_quota_us = 999;
        cr_assert_eq(build_fails(&in), TR_E_INVALID_LIMITS);
}

/* ---- seccomp: structure ------------------------------------------------ */

/* Is `name` allowed by a rule with no argument conditions? */
static bool allowed_unconditionally(json_t *sc, const char *name) {
        size_t i;
        json_t *rule;
        json_array_foreach(json_object_get(sc, "syscalls"), i, rule) {
                if (strcmp(json_string_value(json_object_get(rule, "action")), "SCMP_ACT_ALLOW") != 0)
                        continue;
                if (json_array_size(json_object_get(rule, "args")) > 0)
                        continue;
                if (strv_has(json_object_get(rule, "names"), name))
                        return true;
        }
        return false;
}

static bool mentioned(json_t *sc, const char *name) {
        size_t i;
        json_t *rule;
        json_array_foreach(json_object_get(sc, "syscalls"), i,
                           rule) if (strv_has(json_object_get(rule, "names"), name)) return true;
        return false;
}

static const char *const must_deny[] = {
        "mount",
        "umount",
        "umount2",
        "unshare",
        "setns",
        "ptrace",
        "keyctl",
        "add_key",
        "request_key",
        "bpf",
        "perf_event_open",
        "userfaultfd",
        "kexec_load",
        "kexec_file_load",
        "init_module",
        "finit_module",
        "delete_module",
        "open_by_handle_at",
        "iopl",
        "ioperm",
        "swapon",
        "swapoff",
        "reboot",
        "pivot_root",
        "chroot",
        "acct",
        "settimeofday",
        "clock_settime",
        "sethostname",
        "setdomainname",
        "syslog",
        "quotactl",
        "fsopen",
        "fsmount",
        "move_mount",
        "open_tree",
        "mount_setattr",
        "process_vm_readv",
        "process_vm_writev",
        "kcmp",
        "lookup_dcookie",
        "io_uring_setup",
        "io_uring_enter",
        "io_uring_register",
        "modify_ldt",
        "vhangup",
        "uselib",
        "nfsservctl",
        "vm86",
        "vm86old",
        "mbind",
        "set_mempolicy",
        "move_pages",
        "socketcall",
};

Test(ctrd_seccomp, hardened_builtin_denies_the_list) {
        json_t *sc = NULL;
        cr_assert_eq(tr__ctrd_seccomp_builtin(true, &sc, NULL), 0);
        cr_assert_str_eq(json_string_value(json_object_get(sc, "defaultAction")), "SCMP_ACT_ERRNO");
        cr_assert_eq(json_integer_value(json_object_get(sc, "defaultErrnoRet")), EPERM);
        json_t *arches = json_object_get(sc, "architectures");
        /* The native ABI only: no i386 or x32 door around the rules. */
        cr_assert_eq(json_array_size(arches), 1);
        cr_assert(strv_has(arches, "SCMP_ARCH_X86_64"));
        for (size_t i = 0; i < ARRAY_SIZE(must_deny); i++)
                cr_assert(!mentioned(sc, must_deny[i]), "%s must not be in the hardened allowlist", must_deny[i]);
        /* Conditional only. */
        cr_assert(!allowed_unconditionally(sc, "clone"));
        cr_assert(!allowed_unconditionally(sc, "personality"));
        cr_assert(!allowed_unconditionally(sc, "socket"));
        cr_assert(!allowed_unconditionally(sc, "clone3"));
        /* What python and sh need. */
        const char *need[] = { "read",    "write",        "openat",     "execve",    "mmap",
                               "futex",   "rt_sigaction", "wait4",      "getrandom", "newfstatat",
                               "connect", "arch_prctl",   "exit_group", "vfork" };
        for (size_t i = 0; i < ARRAY_SIZE(need); i++)
                cr_assert(allowed_unconditionally(sc, need[i]), "%s must be allowed", need[i]);
        json_decref(sc);
}

Test(ctrd_seccomp, standard_builtin_is_containerds_default) {
        json_t *sc = NULL;
        cr_assert_eq(tr__ctrd_seccomp_builtin(false, &sc, NULL), 0);
        cr_assert(allowed_unconditionally(sc, "ptrace"));
        cr_assert(allowed_unconditionally(sc, "process_vm_readv"));
        cr_assert_eq(json_array_size(json_object_get(sc, "architectures")), 1);
        /* containerd 2.x: no io_uring. */
        const char *deny[] = { "io_uring_setup",
                               "io_uring_enter",
                               "io_uring_register",
                               "socketcall",
                               "add_key",
                               "userfaultfd",
                               "mount",
                               "unshare",
                               "setns",
                               "keyctl",
                               "bpf",
                               "reboot",
                               "kexec_load",
                               "init_module",
                               "open_by_handle_at",
                               "perf_event_open",
                               "chroot",
                               "pivot_root" };
        for (size_t i = 0; i < ARRAY_SIZE(deny); i++)
                cr_assert(!mentioned(sc, deny[i]), "%s must be denied in standard", deny[i]);
        json_decref(sc);
}

Test(ctrd_spec, seccomp_per_profile) {
        tr__ctrd_spec_input in = base_input(TR_PROFILE_HARDENED);
        json_t *spec = build(&in);
        json_t *sc = json_object_get(json_object_get(spec, "linux"), "seccomp");
        cr_assert_not_null(sc);
        cr_assert(!mentioned(sc, "ptrace"));
        json_decref(spec);

        in = base_input(TR_PROFILE_STANDARD);
        spec = build(&in);
        sc = json_object_get(json_object_get(spec, "linux"), "seccomp");
        cr_assert_not_null(sc);
        cr_assert(allowed_unconditionally(sc, "ptrace"));
        json_decref(spec);
}

/* ---- seccomp: compile to BPF and run ---------------------------------- */

/* The policy compiled as the kata backend compiles it for its guest agent
 * (and as runc compiles the same JSON): it must compile and fit the
 * kernel's program size. */
typedef struct prog {
        uint8_t *bytes;
        size_t len;
} prog;

static prog compile(json_t *sc) {
        prog p = { 0 };
        _cleanup_(tr_error_freep) tr_error *err = NULL;
        int r = tr__seccomp_bpf_compile(sc, &p.bytes, &p.len, &err);
        cr_assert_eq(r, 0, "compile: %s", err ? tr_error_message(err) : "?");
        cr_assert_gt(p.len, 0);
        cr_assert_eq(p.len % TR_SECCOMP_BPF_INSN, 0);
        cr_assert_leq(p.len / TR_SECCOMP_BPF_INSN, TR_SECCOMP_BPF_MAX_INSNS);
        return p;
}

/* What the guest agent does in the snippet's child: no_new_privs, then the
 * program through seccomp(2), no libseccomp involved. */
static int install(const prog *p) {
        struct sock_fprog fp = { .len = (unsigned short) (p->len / TR_SECCOMP_BPF_INSN),
                                 .filter = (struct sock_filter *) p->bytes };
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                return -errno;
        return syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fp) < 0 ? -errno : 0;
}

/* The calls a snippet might try, each with arguments that make it fail
 * harmlessly should the filter let it through (the test runs as root). */
struct probe {
        const char *what;
        long nr;
        long a[6];
};

#ifndef SYS_clone3
#define SYS_clone3 435
#endif

static const struct probe denied_probes[] = {
        { "mount", SYS_mount, { 0, (long) "/nonexistent-tr", 0, 0, 0 } },
        { "umount2", SYS_umount2, { (long) "/nonexistent-tr", 0 } },
        { "unshare", SYS_unshare, { 0 } },
        { "setns", SYS_setns, { -1, 0 } },
        { "keyctl", SYS_keyctl, { 0, -100 } },
        { "add_key", SYS_add_key, { 0, 0, 0, 0, 0 } },
        { "request_key", SYS_request_key, { 0, 0, 0, 0 } },
        { "bpf", SYS_bpf, { -1, 0, 0 } },
        { "perf_event_open", SYS_perf_event_open, { 0, 0, -1, -1, 0 } },
        { "userfaultfd", SYS_userfaultfd, { -1 } },
        { "kexec_load", SYS_kexec_load, { 0, 0, 0, -1 } },
        { "kexec_file_load", SYS_kexec_file_load, { -1, -1, 0, 0, -1 } },
        { "init_module", SYS_init_module, { 0, 0, 0 } },
        { "finit_module", SYS_finit_module, { -1, 0, 0 } },
        { "delete_module", SYS_delete_module, { (long) "nonexistent_tr", O_NONBLOCK } },
        { "open_by_handle_at", SYS_open_by_handle_at, { -1, 0, 0 } },
        { "iopl", SYS_iopl, { 4 } },
        { "ioperm", SYS_ioperm, { 0x10000, 1, 0 } },
        { "swapon", SYS_swapon, { 0, 0 } },
        { "swapoff", SYS_swapoff, { 0 } },
        { "reboot", SYS_reboot, { 0, 0, 0, 0 } },
        { "pivot_root", SYS_pivot_root, { 0, 0 } },
        { "chroot", SYS_chroot, { 0 } },
        { "acct", SYS_acct, { 1 } },
        { "sethostname", SYS_sethostname, { 0, 4096 } },
        { "clock_settime", SYS_clock_settime, { -1, 0 } },
        { "fsopen", SYS_fsopen, { 0, 0 } },
        { "ptrace", SYS_ptrace, { PTRACE_PEEKDATA, 0, 0, 0 } },
        { "io_uring_setup", SYS_io_uring_setup, { 0, 0 } },
        { "add_key(user)", SYS_add_key, { (long) "user", (long) "tr", (long) "x", 1, -2 } },
        { "process_vm_readv", SYS_process_vm_readv, { 0, 0, 0, 0, 0, 0 } },
        { "personality(ADDR_NO_RANDOMIZE)", SYS_personality, { ADDR_NO_RANDOMIZE } },
        { "clone(CLONE_NEWUSER)", SYS_clone, { CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0 } },
        { "clone(CLONE_NEWNET)", SYS_clone, { CLONE_NEWNET | SIGCHLD, 0, 0, 0, 0 } },
        { "socket(AF_VSOCK)", SYS_socket, { AF_VSOCK, SOCK_STREAM, 0 } },
};

/* Load the filter in a fresh child, run every probe, and report through
 * the exit status: 0, or 100 + the index of the first surprise (with the
 * details on stderr). */
static void run_probes(json_t *sc, bool hardened) {
        prog pg = compile(sc);
        fflush(NULL);
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
                if (install(&pg) < 0)
                        _exit(99);
                for (size_t i = 0; i < ARRAY_SIZE(denied_probes); i++) {
                        const struct probe *p = &denied_probes[i];
                        /* standard allows what containerd's default does. */
                        bool expect_eperm = hardened || (strcmp(p->what, "ptrace") != 0 &&
                                                         strncmp(p->what, "process_vm_", 11) != 0);
                        errno = 0;
                        long r = syscall(p->nr, p->a[0], p->a[1], p->a[2], p->a[3], p->a[4], p->a[5]);
                        if (r == 0 && p->nr == SYS_clone)
                                _exit(0); /* a child the filter wrongly allowed */
                        int e = errno;
                        if (expect_eperm ? !(r == -1 && e == EPERM) : (r == -1 && e == EPERM)) {
                                fprintf(stderr, "probe %s: r=%ld errno=%d (%s)\n", p->what, r, e, strerror(e));
                                _exit(100 + (int) i);
                        }
                }
                /* What must keep working. */
                if (getpid() <= 0 || syscall(SYS_personality, 0xffffffffUL) < 0)
                        _exit(90);
                if (syscall(SYS_clone3, 0, 0) != -1 || errno != ENOSYS) {
                        fprintf(stderr, "clone3 should fail ENOSYS: errno=%d\n", errno);
                        _exit(91);
                }
                int s = socket(AF_UNIX, SOCK_STREAM, 0);
                if (s < 0)
                        _exit(92);
                close(s);
                pid_t c = fork(); /* glibc: clone without namespace flags */
                if (c < 0)
                        _exit(93);
                if (c == 0)
                        _exit(0);
                int st;
                if (waitpid(c, &st, 0) != c || !WIFEXITED(st))
                        _exit(94);
                _exit(0);
        }
        free(pg.bytes);
        int status;
        cr_assert_eq(waitpid(pid, &status, 0), pid);
        cr_assert(WIFEXITED(status), "probe child died by signal %d", WTERMSIG(status));
        int code = WEXITSTATUS(status);
        cr_assert_eq(code, 0, "probe failed: exit %d (%s)", code,
                     code >= 100 && code - 100 < (int) ARRAY_SIZE(denied_probes) ? denied_probes[code - 100].what
                                                                                 : "see stderr");
}

Test(ctrd_seccomp, hardened_filter_compiles_and_denies) {
        json_t *sc = NULL;
        cr_assert_eq(tr__ctrd_seccomp_builtin(true, &sc, NULL), 0);
        run_probes(sc, true);
        json_decref(sc);
}

Test(ctrd_seccomp, standard_filter_compiles_and_denies) {
        json_t *sc = NULL;
        cr_assert_eq(tr__ctrd_seccomp_builtin(false, &sc, NULL), 0);
        run_probes(sc, false);
        json_decref(sc);
}

/* ---- seccomp: socket families, netlink protocols, foreign ABIs -------- */

/* How a call ends under the program: 0 (it ran), its errno, or minus the
 * signal that killed the caller.  Each call runs in its own child. */
static int outcome_of(const prog *p, long nr, long a0, long a1, long a2) {
        fflush(NULL);
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
                if (install(p) < 0)
                        _exit(255);
                long r = syscall(nr, a0, a1, a2, 0, 0, 0);
                _exit(r < 0 ? (errno & 0x7f) : 0);
        }
        int st;
        cr_assert_eq(waitpid(pid, &st, 0), pid);
        if (WIFSIGNALED(st))
                return -WTERMSIG(st);
        cr_assert_neq(WEXITSTATUS(st), 255, "the program did not install");
        return WEXITSTATUS(st);
}

#if defined(__x86_64__)
/* i386 getpid through int 0x80, from a page below 4 GiB: the i386 ABI. */
static int i386_outcome(const prog *p) {
        fflush(NULL);
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
                if (install(p) < 0)
                        _exit(255);
                uint8_t *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC,
                                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
                if (page == MAP_FAILED)
                        _exit(254);
                /* push rbx; mov eax, 20; int 0x80; pop rbx; ret */
                static const uint8_t code[] = { 0x53, 0xb8, 20, 0, 0, 0, 0xcd, 0x80, 0x5b, 0xc3 };
                memcpy(page, code, sizeof code);
                int (*fn)(void) = (int (*)(void))(uintptr_t) page;
                _exit(fn() > 0 ? 0 : 1);
        }
        int st;
        cr_assert_eq(waitpid(pid, &st, 0), pid);
        return WIFSIGNALED(st) ? -WTERMSIG(st) : WEXITSTATUS(st);
}
#endif

/* The answers both profiles must give for the socket calls and the other
 * ABIs.  The kernel truncates socket's int arguments to 32 bits, so each
 * family is also tried with a bit set above them. */
static void check_sockets_and_abis(json_t *sc, bool hardened) {
        prog p = compile(sc);
        const long HI = 1L << 32;
        struct {
                long family, type, protocol;
                bool allowed_std, allowed_hard;
        } cases[] = {
                { AF_UNIX, SOCK_STREAM, 0, true, true },
                { AF_INET, SOCK_STREAM, 0, true, true },
                { AF_INET6, SOCK_DGRAM, 0, true, true },
                { AF_INET, SOCK_STREAM, 132 /* SCTP */, true, false },
                { AF_NETLINK, SOCK_DGRAM, NETLINK_ROUTE, true, true },
                { AF_NETLINK, SOCK_DGRAM, NETLINK_AUDIT, true, false },
                { AF_NETLINK, SOCK_DGRAM, NETLINK_KOBJECT_UEVENT, false, false },
                { AF_NETLINK, SOCK_DGRAM, NETLINK_KOBJECT_UEVENT | HI, false, false },
                { AF_VSOCK, SOCK_STREAM, 0, false, false },
                { AF_VSOCK | HI, SOCK_STREAM, 0, false, false },
                { AF_ALG, SOCK_SEQPACKET, 0, false, false },
                { AF_TIPC, SOCK_DGRAM, 0, true, false },
                { AF_PACKET | HI, SOCK_DGRAM, 0, false, false },
                { 4242, SOCK_DGRAM, 0, false, false },
        };
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                int o = outcome_of(&p, SYS_socket, cases[i].family, cases[i].type, cases[i].protocol);
                bool allowed = hardened ? cases[i].allowed_hard : cases[i].allowed_std;
                /* Allowed: whatever the kernel says but the filter's EPERM
                 * (AF_TIPC may be absent: EAFNOSUPPORT). */
                if (allowed)
                        cr_assert(o >= 0 && o != EPERM, "socket(%#lx, %ld, %#lx) should reach the kernel: %d",
                                  cases[i].family, cases[i].type, cases[i].protocol, o);
                else
                        cr_assert_eq(o, EPERM, "socket(%#lx, %ld, %#lx) should fail EPERM: %d", cases[i].family,
                                     cases[i].type, cases[i].protocol, o);
        }
        int o = outcome_of(&p, SYS_socketpair, AF_TIPC, SOCK_DGRAM, 0);
        cr_assert(hardened ? o == EPERM : o != EPERM, "socketpair(AF_TIPC): %d", o);
#if defined(__x86_64__)
        /* A foreign ABI kills the caller (SIGSYS), whatever the call. */
        cr_assert_eq(outcome_of(&p, 0x40000000 | SYS_getpid, 0, 0, 0), -SIGSYS, "x32 getpid");
        cr_assert_eq(i386_outcome(&p), -SIGSYS, "i386 getpid");
#endif
        free(p.bytes);
}

Test(ctrd_seccomp, standard_sockets_and_abis) {
        json_t *sc = NULL;
        cr_assert_eq(tr__ctrd_seccomp_builtin(false, &sc, NULL), 0);
        check_sockets_and_abis(sc, false);
        json_decref(sc);
}

Test(ctrd_seccomp, hardened_sockets_and_abis) {
        json_t *sc = NULL;
        cr_assert_eq(tr__ctrd_seccomp_builtin(true, &sc, NULL), 0);
        check_sockets_and_abis(sc, true);
        json_decref(sc);
}

/* Every socket rule is an equality: an inequality or a range compares 64
 * bits that the kernel truncates to 32. */
Test(ctrd_seccomp, socket_rules_are_equalities) {
        for (int h = 0; h < 2; h++) {
                json_t *sc = NULL;
                cr_assert_eq(tr__ctrd_seccomp_builtin(h, &sc, NULL), 0);
                size_t i, j;
                json_t *rule, *arg;
                json_array_foreach(json_object_get(sc, "syscalls"), i, rule) {
                        if (!strv_has(json_object_get(rule, "names"), "socket") &&
                            !strv_has(json_object_get(rule, "names"), "socketpair"))
                                continue;
                        json_array_foreach(json_object_get(rule, "args"), j, arg)
                                cr_assert_str_eq(json_string_value(json_object_get(arg, "op")), "SCMP_CMP_EQ");
                }
                json_decref(sc);
        }
}

/* A custom profile that allows every socket and names the i386 and x32
 * ABIs gets neither: the native ABI and hardened's socket rules are
 * layered on. */
Test(ctrd_seccomp, custom_profile_keeps_the_layers) {
        json_error_t jerr;
        /* What the probe child needs, plus what a sanitizer runtime calls
         * in it, plus every socket call. */
        json_t *names = json_pack("[s,s,s,s,s,s,s,s,s,s,s,s,s,s,s,s,s,s,s,s,s,s,s,s,s,s,s]", "read", "write",
                                  "exit_group", "exit", "getpid", "gettid", "tgkill", "socket", "socketpair",
                                  "socketcall", "mmap", "munmap", "mprotect", "madvise", "close", "sigaltstack",
                                  "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "prctl", "futex", "openat", "fstat",
                                  "newfstatat", "readlink", "prlimit64", "sched_yield");
        json_t *doc = json_pack("{s:s, s:[{s:s, s:[s,s]}], s:[{s:o, s:s}]}", "defaultAction", "SCMP_ACT_ERRNO",
                                "archMap", "architecture", "SCMP_ARCH_X86_64", "subArchitectures", "SCMP_ARCH_X86",
                                "SCMP_ARCH_X32", "syscalls", "names", names, "action", "SCMP_ACT_ALLOW");
        jerr.text[0] = 0;
        cr_assert_not_null(doc, "%s", jerr.text);
        json_t *sc = NULL;
        cr_assert_eq(tr__ctrd_seccomp_from_docker(doc, NULL, &sc, NULL), 0);
        json_decref(doc);
        cr_assert_eq(json_array_size(json_object_get(sc, "architectures")), 1);
        check_sockets_and_abis(sc, true);
        json_decref(sc);

        /* A profile that never allows socket keeps it denied. */
        doc = json_loads("{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":[{\"names\":[\"read\"],"
                         "\"action\":\"SCMP_ACT_ALLOW\"}]}",
                         0, &jerr);
        cr_assert_eq(tr__ctrd_seccomp_from_docker(doc, NULL, &sc, NULL), 0);
        json_decref(doc);
        cr_assert(!mentioned(sc, "socket") && !mentioned(sc, "socketpair"));
        json_decref(sc);
}

/* ---- seccomp: Docker-format profiles ---------------------------------- */

/* A small profile in Docker's format exercising what the converter must
 * understand: archMap, names and the old single name, args, errnoRet, and
 * includes/excludes by capability, architecture and kernel. */
static const char docker_profile[] =
        "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"defaultErrnoRet\":1,"
        " \"archMap\":[{\"architecture\":\"SCMP_ARCH_AARCH64\",\"subArchitectures\":[\"SCMP_ARCH_ARM\"]},"
        "              "
        "{\"architecture\":\"SCMP_ARCH_X86_64\",\"subArchitectures\":[\"SCMP_ARCH_X86\",\"SCMP_ARCH_X32\"]},"
        "              {\"architecture\":\"SCMP_ARCH_RISCV64\",\"subArchitectures\":null}],"
        " \"syscalls\":["
        "  {\"names\":[\"read\",\"write\",\"exit_group\"],\"action\":\"SCMP_ACT_ALLOW\"},"
        "  {\"name\":\"getpid\",\"action\":\"SCMP_ACT_ALLOW\",\"args\":[]},"
        "  {\"names\":[\"personality\"],\"action\":\"SCMP_ACT_ALLOW\","
        "   \"args\":[{\"index\":0,\"value\":8,\"op\":\"SCMP_CMP_EQ\"}]},"
        "  {\"names\":[\"ptrace\"],\"action\":\"SCMP_ACT_ALLOW\",\"includes\":{\"minKernel\":\"4.8\"}},"
        "  {\"names\":[\"future_call\"],\"action\":\"SCMP_ACT_ALLOW\",\"includes\":{\"minKernel\":\"99.0\"}},"
        "  {\"names\":[\"mount\"],\"action\":\"SCMP_ACT_ALLOW\",\"includes\":{\"caps\":[\"CAP_SYS_ADMIN\"]}},"
        "  {\"names\":[\"arch_prctl\"],\"action\":\"SCMP_ACT_ALLOW\",\"includes\":{\"arches\":[\"amd64\",\"x32\"]}},"
        "  {\"names\":[\"cacheflush\"],\"action\":\"SCMP_ACT_ALLOW\",\"includes\":{\"arches\":[\"arm64\"]}},"
        "  {\"names\":[\"clone\"],\"action\":\"SCMP_ACT_ALLOW\",\"comment\":\"no ns\","
        "   \"args\":[{\"index\":0,\"value\":2114060288,\"valueTwo\":0,\"op\":\"SCMP_CMP_MASKED_EQ\"}],"
        "   \"excludes\":{\"caps\":[\"CAP_SYS_ADMIN\"],\"arches\":[\"s390x\"]}},"
        "  {\"names\":[\"clone3\"],\"action\":\"SCMP_ACT_ERRNO\",\"errnoRet\":38}"
        " ]}";

static json_t *convert(const char *text, const char *krel, tr_code *ret_code) {
        json_error_t jerr;
        json_t *doc = json_loads(text, 0, &jerr);
        cr_assert_not_null(doc, "fixture: %s", jerr.text);
        json_t *out = NULL;
        _cleanup_(tr_error_freep) tr_error *err = NULL;
        int r = tr__ctrd_seccomp_from_docker(doc, krel, &out, &err);
        json_decref(doc);
        if (ret_code)
                *ret_code = r < 0 ? tr_error_code(err) : TR_OK;
        if (r < 0)
                cr_assert_null(out);
        return out;
}

Test(ctrd_seccomp, docker_profile_converts) {
        json_t *sc = convert(docker_profile, "6.1.0-13-amd64", NULL);
        cr_assert_not_null(sc);
        cr_assert_str_eq(json_string_value(json_object_get(sc, "defaultAction")), "SCMP_ACT_ERRNO");
        cr_assert_eq(json_integer_value(json_object_get(sc, "defaultErrnoRet")), 1);
        /* The profile's archMap is validated, but only the native ABI is
         * kept: a custom profile must not reopen i386 or x32. */
        json_t *arches = json_object_get(sc, "architectures");
        cr_assert_eq(json_array_size(arches), 1);
        cr_assert_str_eq(json_string_value(json_array_get(arches, 0)), "SCMP_ARCH_X86_64");
        cr_assert(allowed_unconditionally(sc, "read") && allowed_unconditionally(sc, "getpid"));
        cr_assert(allowed_unconditionally(sc, "ptrace"));     /* 6.1 >= 4.8 */
        cr_assert(!mentioned(sc, "future_call"));             /* 6.1 < 99.0 */
        cr_assert(!mentioned(sc, "mount"));                   /* needs a capability */
        cr_assert(allowed_unconditionally(sc, "arch_prctl")); /* amd64 */
        cr_assert(!mentioned(sc, "cacheflush"));              /* arm64 only */
        cr_assert(mentioned(sc, "clone") && !allowed_unconditionally(sc, "clone"));
        cr_assert(!allowed_unconditionally(sc, "personality"));
        /* Comments, includes and excludes do not leak into the OCI form. */
        size_t i;
        json_t *rule;
        json_array_foreach(json_object_get(sc, "syscalls"), i, rule) {
                cr_assert_null(json_object_get(rule, "comment"));
                cr_assert_null(json_object_get(rule, "includes"));
                cr_assert_null(json_object_get(rule, "excludes"));
                if (strv_has(json_object_get(rule, "names"), "clone3"))
                        cr_assert_eq(json_integer_value(json_object_get(rule, "errnoRet")), ENOSYS);
                if (strv_has(json_object_get(rule, "names"), "clone")) {
                        json_t *a = json_array_get(json_object_get(rule, "args"), 0);
                        cr_assert_eq(json_integer_value(json_object_get(a, "value")), 2114060288);
                        cr_assert_str_eq(json_string_value(json_object_get(a, "op")), "SCMP_CMP_MASKED_EQ");
                }
        }
        prog pg = compile(sc);
        free(pg.bytes);
        json_decref(sc);

        sc = convert(docker_profile, "4.4.0", NULL);
        cr_assert(!mentioned(sc, "ptrace")); /* 4.4 < 4.8 */
        json_decref(sc);
}

Test(ctrd_seccomp, docker_flat_architectures) {
        json_t *sc = convert("{\"defaultAction\":\"SCMP_ACT_KILL_PROCESS\","
                             "\"architectures\":[\"SCMP_ARCH_X86_64\"],"
                             "\"syscalls\":[{\"names\":[\"read\"],\"action\":\"SCMP_ACT_ALLOW\"}]}",
                             NULL, NULL);
        cr_assert_not_null(sc);
        cr_assert_eq(json_array_size(json_object_get(sc, "architectures")), 1);
        cr_assert_null(json_object_get(sc, "defaultErrnoRet"));
        json_decref(sc);
        /* No syscalls at all is a valid (deny-everything) profile. */
        sc = convert("{\"defaultAction\":\"SCMP_ACT_ERRNO\"}", NULL, NULL);
        cr_assert_not_null(sc);
        cr_assert_eq(json_array_size(json_object_get(sc, "syscalls")), 0);
        json_decref(sc);
}

Test(ctrd_seccomp, docker_profile_rejections) {
        static const struct {
                const char *json;
                tr_code code;
        } cases[] = {
                { "[]", TR_E_INVALID_REQUEST },
                { "{}", TR_E_INVALID_REQUEST },
                { "{\"defaultAction\":\"SCMP_ACT_BOGUS\"}", TR_E_INVALID_REQUEST },
                { "{\"defaultAction\":\"SCMP_ACT_ALLOW\"}", TR_E_SECURITY_VIOLATION },
                { "{\"defaultAction\":\"SCMP_ACT_LOG\"}", TR_E_SECURITY_VIOLATION },
                { "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"defaultErrnoRet\":-1}", TR_E_INVALID_REQUEST },
                { "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":{}}", TR_E_INVALID_REQUEST },
                { "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":[1]}", TR_E_INVALID_REQUEST },
                { "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":[{\"action\":\"SCMP_ACT_ALLOW\"}]}",
                  TR_E_INVALID_REQUEST },
                { "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":[{\"names\":[],\"action\":\"SCMP_ACT_ALLOW\"}]}",
                  TR_E_INVALID_REQUEST },
                { "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":[{\"names\":[\"Read;\"],"
                  "\"action\":\"SCMP_ACT_ALLOW\"}]}",
                  TR_E_INVALID_REQUEST },
                { "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":[{\"names\":[\"read\"]}]}",
                  TR_E_INVALID_REQUEST },
                { "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":[{\"names\":[\"read\"],"
                  "\"action\":\"SCMP_ACT_NOTIFY\"}]}",
                  TR_E_INVALID_REQUEST },
                { "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":[{\"names\":[\"read\"],"
                  "\"action\":\"SCMP_ACT_ALLOW\",\"args\":[{\"index\":6,\"value\":0,\"op\":\"SCMP_CMP_EQ\"}]}]}",
                  TR_E_INVALID_REQUEST },
                { "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":[{\"names\":[\"read\"],"
                  "\"action\":\"SCMP_ACT_ALLOW\",\"args\":[{\"index\":0,\"value\":-1,\"op\":\"SCMP_CMP_EQ\"}]}]}",
                  TR_E_INVALID_REQUEST },
                { "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":[{\"names\":[\"read\"],"
                  "\"action\":\"SCMP_ACT_ALLOW\",\"args\":[{\"index\":0,\"value\":1,\"op\":\"EQ\"}]}]}",
                  TR_E_INVALID_REQUEST },
                { "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":[{\"names\":[\"read\"],"
                  "\"action\":\"SCMP_ACT_ERRNO\",\"errnoRet\":5000}]}",
                  TR_E_INVALID_REQUEST },
                { "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":[{\"names\":[\"read\"],"
                  "\"action\":\"SCMP_ACT_ALLOW\",\"includes\":{\"minKernel\":\"four\"}}]}",
                  TR_E_INVALID_REQUEST },
                { "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":[{\"names\":[\"read\"],"
                  "\"action\":\"SCMP_ACT_ALLOW\",\"includes\":{\"arches\":\"amd64\"}}]}",
                  TR_E_INVALID_REQUEST },
                /* Invalid even where it would not apply. */
                { "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":[{\"names\":[\"r e\"],"
                  "\"action\":\"SCMP_ACT_ALLOW\",\"includes\":{\"arches\":[\"s390x\"]}}]}",
                  TR_E_INVALID_REQUEST },
                { "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"architectures\":[\"x86_64\"]}", TR_E_INVALID_REQUEST },
                { "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"archMap\":[{\"architecture\":\"SCMP_ARCH_X86_64\","
                  "\"subArchitectures\":[\"bogus\"]}]}",
                  TR_E_INVALID_REQUEST },
        };
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                tr_code code = TR_OK;
                json_t *sc = convert(cases[i].json, "6.1", &code);
                cr_assert_null(sc, "case %zu accepted: %s", i, cases[i].json);
                cr_assert_eq(code, cases[i].code, "case %zu: got %s", i, tr_code_name(code));
        }
        /* Too many rules. */
        json_t *doc = json_pack("{s:s, s:[]}", "defaultAction", "SCMP_ACT_ERRNO", "syscalls");
        for (int i = 0; i <= TR_CTRD_SECCOMP_MAX_RULES; i++)
                json_array_append_new(json_object_get(doc, "syscalls"),
                                      json_pack("{s:[s], s:s}", "names", "read", "action", "SCMP_ACT_ALLOW"));
        json_t *out = NULL;
        cr_assert_lt(tr__ctrd_seccomp_from_docker(doc, "6.1", &out, NULL), 0);
        cr_assert_null(out);
        json_decref(doc);
}

/* ---- seccomp: loading files -------------------------------------------- */

static char tmpdir[64];

static void mk_tmpdir(void) {
        snprintf(tmpdir, sizeof tmpdir, "/tmp/tr-test-seccomp-XXXXXX");
        cr_assert_not_null(mkdtemp(tmpdir));
}

static void rm_tmpdir(void) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "%s/p.json", tmpdir);
        unlink(cmd);
        snprintf(cmd, sizeof cmd, "%s/fifo", tmpdir);
        unlink(cmd);
        rmdir(tmpdir);
}

static void write_file(const char *path, const char *data, size_t len) {
        FILE *f = fopen(path, "we");
        cr_assert_not_null(f);
        cr_assert_eq(fwrite(data, 1, len, f), len);
        cr_assert_eq(fclose(f), 0);
}

static tr_code load_code(const char *path, char **ret_msg) {
        json_t *out = NULL;
        _cleanup_(tr_error_freep) tr_error *err = NULL;
        int r = tr__ctrd_seccomp_load(path, &out, &err);
        if (r == 0) {
                json_decref(out);
                return TR_OK;
        }
        cr_assert_null(out);
        if (ret_msg)
                *ret_msg = strdup(tr_error_message(err));
        return tr_error_code(err);
}

Test(ctrd_seccomp, load_files, .init = mk_tmpdir, .fini = rm_tmpdir) {
        char path[128];
        snprintf(path, sizeof path, "%s/p.json", tmpdir);

        write_file(path, docker_profile, strlen(docker_profile));
        cr_assert_eq(load_code(path, NULL), TR_OK);

        /* Through the spec builder. */
        tr__ctrd_spec_input in = base_input(TR_PROFILE_HARDENED);
        in.seccomp_path = path;
        json_t *spec = build(&in);
        json_t *sc = json_object_get(json_object_get(spec, "linux"), "seccomp");
        cr_assert(allowed_unconditionally(sc, "getpid"));
        cr_assert(!mentioned(sc, "wait4")); /* the file's list, not the built-in */
        json_decref(spec);
        /* Only hardened takes the file. */
        in.profile = TR_PROFILE_STANDARD;
        spec = build(&in);
        cr_assert(mentioned(json_object_get(json_object_get(spec, "linux"), "seccomp"), "wait4"));
        json_decref(spec);

        _cleanup_free_ char *msg = NULL;
        const char *broken = "{\n\"defaultAction\": \"SCMP_ACT_ERRNO\",\n\"syscalls\": [,]\n}";
        write_file(path, broken, strlen(broken));
        cr_assert_eq(load_code(path, &msg), TR_E_INVALID_REQUEST);
        cr_assert_not_null(strstr(msg, "line 3"), "message: %s", msg);
        free(TAKE_PTR(msg));

        const char *bad_rule = "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":[{\"names\":[\"read\"]}]}";
        write_file(path, bad_rule, strlen(bad_rule));
        cr_assert_eq(load_code(path, &msg), TR_E_INVALID_REQUEST);
        cr_assert_not_null(strstr(msg, "syscalls[0]"), "message: %s", msg);
        cr_assert_not_null(strstr(msg, path), "message: %s", msg);
        free(TAKE_PTR(msg));

        const char *dup = "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"defaultAction\":\"SCMP_ACT_ALLOW\"}";
        write_file(path, dup, strlen(dup));
        cr_assert_eq(load_code(path, NULL), TR_E_INVALID_REQUEST);

        /* Too big: one byte over the cap. */
        size_t big = TR_CTRD_SECCOMP_MAX_FILE + 1;
        char *blob = malloc(big);
        cr_assert_not_null(blob);
        memset(blob, ' ', big);
        blob[0] = '{';
        blob[big - 1] = '}';
        write_file(path, blob, big);
        free(blob);
        cr_assert_eq(load_code(path, &msg), TR_E_INVALID_REQUEST);
        cr_assert_not_null(strstr(msg, "larger"), "message: %s", msg);
        free(TAKE_PTR(msg));

        cr_assert_eq(load_code("relative/p.json", NULL), TR_E_INVALID_REQUEST);
        cr_assert_eq(load_code(NULL, NULL), TR_E_INVALID_REQUEST);
        cr_assert_eq(load_code("/nonexistent/tr/p.json", &msg), TR_E_INVALID_REQUEST);
        cr_assert_not_null(strstr(msg, "No such file"), "message: %s", msg);
        free(TAKE_PTR(msg));
        cr_assert_eq(load_code(tmpdir, NULL), TR_E_INVALID_REQUEST);

        /* A FIFO must be refused, not block the caller. */
        char fifo[128];
        snprintf(fifo, sizeof fifo, "%s/fifo", tmpdir);
        cr_assert_eq(mkfifo(fifo, 0600), 0);
        cr_assert_eq(load_code(fifo, NULL), TR_E_INVALID_REQUEST);
}
