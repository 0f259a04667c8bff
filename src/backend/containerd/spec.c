/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The OCI runtime spec (config.json) of one sandbox.  Modelled on
 * containerd's oci.populateDefaultUnixSpec + WithDefaultUnixDevices, then
 * narrowed: an unprivileged user, no capabilities, no new privileges, a
 * read-only root (standard, hardened), no network but loopback (standard,
 * hardened), cgroup limits, and seccomp.  Every deviation from containerd's
 * default carries its reason next to it.
 */
#include "backend/containerd/spec.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/containerd/seccomp.h"
#include "util/macros.h"

#define OP_SPEC "spec"

#define DEFAULT_PATH  "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define CPU_PERIOD_US 100000
/* The kernel refuses a CFS quota below 1 ms. */
#define CPU_MIN_QUOTA_US 1000
/* POSIX shared memory (python's multiprocessing locks) needs a little room;
 * it is one more writable place, so it stays tiny and noexec. */
#define SHM_BYTES (1024 * 1024)

static int oom(tr_error **ret_err) {
        return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_CONTAINERD, OP_SPEC, "out of memory");
}

static int invalid(tr_error **ret_err, tr_code code, const char *what, const char *detail) {
        return tr_error_set(ret_err, code, TR_BACKEND_CONTAINERD, OP_SPEC, "%s%s%s", what, detail ? ": " : "",
                            detail ? detail : "");
}

/* An absolute path without "." or ".." components: anything else could
 * name a different place than it seems to (a cgroup outside the
 * toolruntime subtree, a host directory above the one meant). */
static bool clean_absolute_path(const char *p) {
        if (!p || p[0] != '/')
                return false;
        for (const char *c = p; *c;) {
                while (*c == '/')
                        c++;
                const char *end = strchrnul(c, '/');
                size_t n = (size_t) (end - c);
                if ((n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
                        return false;
                c = end;
        }
        return true;
}

/* RFC 1123 label: what sethostname accepts and what nothing downstream
 * will misparse. */
static bool valid_hostname(const char *h) {
        size_t n = strlen(h);
        if (n == 0 || n > 63 || h[0] == '-' || h[n - 1] == '-')
                return false;
        for (; *h; h++)
                if (!((*h >= 'a' && *h <= 'z') || (*h >= 'A' && *h <= 'Z') || (*h >= '0' && *h <= '9') || *h == '-'))
                        return false;
        return true;
}

int tr__ctrd_parse_user(const char *user, uint32_t *ret_uid, uint32_t *ret_gid) {
        unsigned long v[2];
        const char *p = user;
        for (int i = 0; i < 2; i++) {
                if (!p || *p < '0' || *p > '9')
                        return -EINVAL;
                char *end;
                errno = 0;
                v[i] = strtoul(p, &end, 10);
                if (errno || v[i] >= UINT32_MAX || *end != (i == 0 ? ':' : '\0'))
                        return -EINVAL;
                p = end + 1;
        }
        *ret_uid = (uint32_t) v[0];
        *ret_gid = (uint32_t) v[1];
        return 0;
}

static int validate(const tr__ctrd_spec_input *in, tr_error **ret_err) {
        if (!in)
                return invalid(ret_err, TR_E_INVALID_REQUEST, "no spec input", NULL);
        /* The sandbox's own host uid (the backend leases one per
         * execution): the image's files are root's, so the snippet owns
         * nothing but what it creates in its tmpfs.  Root is never one. */
        if (in->uid == 0 || in->gid == 0)
                return invalid(ret_err, TR_E_SECURITY_VIOLATION, "the sandbox must not run as root", NULL);
        if (in->profile != TR_PROFILE_DEV && in->profile != TR_PROFILE_STANDARD && in->profile != TR_PROFILE_HARDENED)
                return invalid(ret_err, TR_E_INVALID_REQUEST, "the profile must be dev, standard or hardened",
                               tr_profile_name(in->profile));
        if (!in->argv || !in->argv[0] || !in->argv[0][0])
                return invalid(ret_err, TR_E_INVALID_REQUEST, "the command (argv) is missing", NULL);
        if (in->env)
                for (const char *const *e = in->env; *e; e++) {
                        const char *eq = strchr(*e, '=');
                        if (!eq || eq == *e)
                                return invalid(ret_err, TR_E_INVALID_REQUEST, "environment entries must be KEY=VALUE",
                                               *e);
                }
        if (in->cwd && !clean_absolute_path(in->cwd))
                return invalid(ret_err, TR_E_INVALID_REQUEST, "the working directory must be a clean absolute path",
                               in->cwd);
        if (in->hostname && !valid_hostname(in->hostname))
                return invalid(ret_err, TR_E_INVALID_REQUEST, "the hostname must be one RFC 1123 label", in->hostname);
        if (in->cgroups_path && !clean_absolute_path(in->cgroups_path))
                return invalid(ret_err, TR_E_SECURITY_VIOLATION,
                               "the cgroups path must be a clean absolute path (no . or ..)", in->cgroups_path);
        /* The gateway directory is the one host path that enters the
         * sandbox: it must be exactly the directory meant, never "/". */
        if (in->gateway_dir &&
            (!clean_absolute_path(in->gateway_dir) || strspn(in->gateway_dir, "/") == strlen(in->gateway_dir)))
                return invalid(ret_err, TR_E_SECURITY_VIOLATION,
                               "the gateway directory must be a clean absolute path other than /", in->gateway_dir);
        if (in->seccomp_path && in->seccomp_path[0] != '/')
                return invalid(ret_err, TR_E_INVALID_REQUEST, "the seccomp profile path must be absolute",
                               in->seccomp_path);
        if (in->memory_bytes < 0 || in->cpu_quota_us < 0 || in->pids_max < 0 || in->disk_bytes < 0)
                return invalid(ret_err, TR_E_INVALID_LIMITS, "limits must not be negative", NULL);
        if (in->cpu_quota_us > 0 && in->cpu_quota_us < CPU_MIN_QUOTA_US)
                return invalid(ret_err, TR_E_INVALID_LIMITS, "the CPU quota must be at least 1000 us (1 ms)", NULL);
        return 0;
}

static json_t *strv_json(const char *const *v) {
        json_t *a = json_array();
        if (!a)
                return NULL;
        for (; v && *v; v++)
                if (json_array_append_new(a, json_string(*v)) < 0) {
                        json_decref(a);
                        return NULL;
                }
        return a;
}

/* The environment as given, with PATH added when the caller left it out:
 * runc resolves a bare argv[0] ("python3") through the process's PATH. */
static json_t *env_json(const char *const *env) {
        bool has_path = false;
        for (const char *const *e = env; e && *e; e++)
                if (strncmp(*e, "PATH=", 5) == 0)
                        has_path = true;
        json_t *a = strv_json(env);
        if (a && !has_path && json_array_insert_new(a, 0, json_string(DEFAULT_PATH)) < 0) {
                json_decref(a);
                return NULL;
        }
        return a;
}

static json_t *mount_json(const char *dest, const char *type, const char *source, const char *const *opts) {
        return json_pack("{s:s, s:s, s:s, s:o}", "destination", dest, "type", type, "source", source, "options",
                         strv_json(opts));
}

static json_t *mounts_json(const tr__ctrd_spec_input *in) {
        char tmp_size[48], shm_size[48];
        int64_t disk = in->disk_bytes > 0 ? in->disk_bytes : TR_CTRD_DEFAULT_TMP_BYTES;
        snprintf(tmp_size, sizeof tmp_size, "size=%lld", (long long) disk);
        snprintf(shm_size, sizeof shm_size, "size=%lld", (long long) (disk < SHM_BYTES ? disk : SHM_BYTES));

        _cleanup_json_ json_t *m = json_array();
        if (!m)
                return NULL;
        /* containerd's default set, less /run (nothing there is written: the
         * gateway socket comes in by its own bind mount). */
        json_t *entries[] = {
                mount_json("/proc", "proc", "proc", (const char *[]){ "nosuid", "noexec", "nodev", NULL }),
                mount_json("/dev", "tmpfs", "tmpfs",
                           (const char *[]){ "nosuid", "strictatime", "mode=755", "size=65536k", NULL }),
                /* A private devpts instance: no terminal is handed in, and
                 * the host's ptys stay out of reach. */
                mount_json("/dev/pts", "devpts", "devpts",
                           (const char *[]){ "nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5",
                                             NULL }),
                mount_json("/dev/shm", "tmpfs", "shm",
                           (const char *[]){ "nosuid", "noexec", "nodev", "mode=1777", shm_size, NULL }),
                mount_json("/dev/mqueue", "mqueue", "mqueue", (const char *[]){ "nosuid", "noexec", "nodev", NULL }),
                mount_json("/sys", "sysfs", "sysfs", (const char *[]){ "nosuid", "noexec", "nodev", "ro", NULL }),
                mount_json("/sys/fs/cgroup", "cgroup", "cgroup",
                           (const char *[]){ "nosuid", "noexec", "nodev", "relatime", "ro", NULL }),
                /* The disk limit: a tmpfs of DiskBytes.  With /dev/shm (at
                 * most 1 MiB) it is all a read-only sandbox can write, and
                 * both charge their pages to its memory cgroup too. */
                mount_json("/tmp", "tmpfs", "tmpfs",
                           (const char *[]){ "nosuid", "nodev", "mode=1777", tmp_size, NULL }),
        };
        bool failed = false;
        for (size_t i = 0; i < ARRAY_SIZE(entries); i++)
                if (json_array_append_new(m, entries[i]) < 0)
                        failed = true;
        if (failed)
                return NULL;
        /* Read-only: connecting to a unix socket needs no write access to
         * its filesystem, and the snippet must not be able to leave files
         * in a host directory. */
        if (in->gateway_dir && json_array_append_new(m, mount_json("/run/toolruntime", "bind", in->gateway_dir,
                                                                   (const char *[]){ "rbind", "ro", "nosuid", "nodev",
                                                                                     "noexec", NULL })) < 0)
                return NULL;
        return TAKE_PTR(m);
}

static json_t *device_rule(bool allow, const char *type, int64_t major, int64_t minor) {
        json_t *d = json_pack("{s:b, s:s}", "allow", allow, "access", "rwm");
        if (!d)
                return NULL;
        if ((type && json_object_set_new(d, "type", json_string(type)) < 0) ||
            (major >= 0 && json_object_set_new(d, "major", json_integer(major)) < 0) ||
            (minor >= 0 && json_object_set_new(d, "minor", json_integer(minor)) < 0)) {
                json_decref(d);
                return NULL;
        }
        return d;
}

static json_t *resources_json(const tr__ctrd_spec_input *in) {
        /* Deny every device, then allow the harmless character devices
         * every program expects (containerd's WithDefaultUnixDevices without
         * the console and ptys: no terminal is given). */
        static const struct {
                int64_t major, minor;
        } allowed[] = {
                { 1, 3 }, /* null */ { 1, 5 },   /* zero */ { 1, 7 },    /* full */
                { 1, 8 }, /* random */ { 1, 9 }, /* urandom */ { 5, 0 }, /* tty */
        };
        _cleanup_json_ json_t *devices = json_array();
        if (!devices || json_array_append_new(devices, device_rule(false, NULL, -1, -1)) < 0)
                return NULL;
        for (size_t i = 0; i < ARRAY_SIZE(allowed); i++)
                if (json_array_append_new(devices, device_rule(true, "c", allowed[i].major, allowed[i].minor)) < 0)
                        return NULL;

        _cleanup_json_ json_t *r = json_pack("{s:O}", "devices", devices);
        if (!r)
                return NULL;
        /* Swap equal to the limit: the snippet cannot page its way past
         * MemoryBytes (cgroup v1 memsw / v2 swap.max semantics in runc). */
        if (in->memory_bytes > 0 && json_object_set_new(r, "memory",
                                                        json_pack("{s:I, s:I}", "limit", (json_int_t) in->memory_bytes,
                                                                  "swap", (json_int_t) in->memory_bytes)) < 0)
                return NULL;
        if (in->cpu_quota_us > 0 && json_object_set_new(r, "cpu",
                                                        json_pack("{s:I, s:I}", "quota", (json_int_t) in->cpu_quota_us,
                                                                  "period", (json_int_t) CPU_PERIOD_US)) < 0)
                return NULL;
        if (in->pids_max > 0 &&
            json_object_set_new(r, "pids", json_pack("{s:I}", "limit", (json_int_t) in->pids_max)) < 0)
                return NULL;
        return TAKE_PTR(r);
}

static json_t *namespaces_json(tr_profile profile) {
        _cleanup_json_ json_t *ns = json_pack("[{s:s}, {s:s}, {s:s}, {s:s}, {s:s}]", "type", "pid", "type", "ipc",
                                              "type", "uts", "type", "mount", "type", "cgroup");
        if (!ns)
                return NULL;
        /* dev shares the host's network by design; everything else gets a
         * fresh namespace holding only a loopback device, so there is no
         * route anywhere, host 127.0.0.1 included. */
        if (profile != TR_PROFILE_DEV && json_array_append_new(ns, json_pack("{s:s}", "type", "network")) < 0)
                return NULL;
        return TAKE_PTR(ns);
}

static const char *const masked_paths[] = {
        "/proc/acpi",
        "/proc/asound",
        "/proc/kcore",
        "/proc/keys",
        "/proc/latency_stats",
        "/proc/timer_list",
        "/proc/timer_stats",
        "/proc/sched_debug",
        "/proc/scsi",
        "/sys/firmware",
        "/sys/devices/virtual/powercap",
        NULL,
};

static const char *const readonly_paths[] = {
        "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger", NULL,
};

int tr__ctrd_spec_build(const tr__ctrd_spec_input *in, char **ret_json, tr_error **ret_err) {
        int r = validate(in, ret_err);
        if (r < 0)
                return r;

        _cleanup_json_ json_t *seccomp = NULL;
        r = tr__ctrd_seccomp_for_profile(in->profile, in->seccomp_path, &seccomp, ret_err);
        if (r < 0)
                return r;

        /* No capability in any set: the snippet runs as nobody and needs
         * none, and empty sets (not absent ones) are what makes runc drop
         * the bounding set too, so a setuid binary cannot regain any. */
        _cleanup_json_ json_t *process =
                json_pack("{s:b, s:o, s:o, s:s, s:{s:I, s:I}, s:b, s:{s:[], s:[], s:[], s:[], s:[]},"
                          " s:[{s:s, s:i, s:i}, {s:s, s:i, s:i}, {s:s, s:i, s:i}], s:i}",
                          "terminal", false, "args", strv_json(in->argv), "env", env_json(in->env), "cwd",
                          in->cwd ? in->cwd : "/tmp", "user", "uid", (json_int_t) in->uid, "gid", (json_int_t) in->gid,
                          /* no_new_privileges: setuid bits and file capabilities are
                           * ignored by execve, whatever the image contains. */
                          "noNewPrivileges", true, "capabilities", "bounding", "effective", "inheritable", "permitted",
                          "ambient", "rlimits", "type", "RLIMIT_NOFILE", "hard", 1024, "soft", 1024,
                          /* A crashing snippet must not spend its disk quota and
                           * time writing a core file. */
                          "type", "RLIMIT_CORE", "hard", 0, "soft", 0,
                          /* POSIX message queues are kernel memory outside the
                           * memory cgroup, budgeted per uid: nothing in a
                           * sandbox needs them. */
                          "type", "RLIMIT_MSGQUEUE", "hard", 0, "soft", 0,
                          /* Under host memory pressure, a sandbox dies first. */
                          "oomScoreAdj", 1000);
        if (!process)
                return oom(ret_err);

        _cleanup_json_ json_t *linux_ = json_pack("{s:o, s:o, s:o, s:o}", "namespaces", namespaces_json(in->profile),
                                                  "resources", resources_json(in), "maskedPaths",
                                                  strv_json(masked_paths), "readonlyPaths", strv_json(readonly_paths));
        if (!linux_)
                return oom(ret_err);
        if (in->cgroups_path && json_object_set_new(linux_, "cgroupsPath", json_string(in->cgroups_path)) < 0)
                return oom(ret_err);
        if (seccomp && json_object_set(linux_, "seccomp", seccomp) < 0)
                return oom(ret_err);

        /* The root is read-only in standard and hardened: /tmp (a sized
         * tmpfs) is then the only place the snippet can write. */
        _cleanup_json_ json_t *spec =
                json_pack("{s:s, s:O, s:{s:s, s:b}, s:s, s:o, s:O}", "ociVersion", "1.0.2", "process", process, "root",
                          "path", "rootfs", "readonly", in->profile != TR_PROFILE_DEV, "hostname",
                          in->hostname ? in->hostname : "sandbox", "mounts", mounts_json(in), "linux", linux_);
        if (!spec)
                return oom(ret_err);

        char *text = json_dumps(spec, JSON_COMPACT);
        if (!text)
                return oom(ret_err);
        *ret_json = text;
        return 0;
}
