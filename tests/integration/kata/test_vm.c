/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The kata backend booting real microVMs (TCG on machines without a usable
 * KVM, so every boot takes seconds): three boots cover the list.
 *
 *   1. one snippet checks hello world, `__out`, uid/gid 65534, no network
 *      (a host listener on 127.0.0.1 is unreachable; only `lo` exists), a
 *      host file is unreachable, the root image is read-only, a disk fill
 *      stops at DiskBytes, a fork bomb stops at PidsMax, and a gateway call
 *      through /run/toolruntime/gateway.sock reaches the host;
 *   2. a memory bomb ends in resource_limit;
 *   3. an endless loop ends in timeout, promptly, with QEMU reaped;
 *   4. the lifecycle: a warm pool's execution (VM booted ahead, its
 *      interpreter waiting); a prepared VM cancelled, one prepared by a
 *      thread that ended (it lives on and runs), one destroyed unrun;
 *      after each, no QEMU, per-VM directory or cgroup is left.
 *
 * Needs the files of `toolruntime image build --vm`.  Outside CI the suite
 * skips when they are missing; under CI=true that is a failure.  Nothing is
 * retried.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "toolruntime.h"
#include "util/handles.h"

static const char *env_or(const char *name, const char *def) {
        const char *v = getenv(name);
        return v && *v ? v : def;
}

static tr_kata_config vm_config(void) {
        tr_kata_config cfg = {
                .size = sizeof(tr_kata_config),
                .kernel_path = env_or("TR_VM_KERNEL", TR_KATA_DEFAULT_KERNEL),
                .initrd_path = env_or("TR_VM_INITRD", TR_KATA_DEFAULT_INITRD),
                .image_path = env_or("TR_VM_IMAGE", TR_KATA_DEFAULT_IMAGE_PATH),
        };
        return cfg;
}

static void need_vm(void) {
        tr_kata_config cfg = vm_config();
        char *detail = NULL;
        tr_error *e = NULL;
        if (tr_kata_check(&cfg, &detail, &e) < 0) {
                const char *ci = getenv("CI");
                if (ci && strcmp(ci, "true") == 0)
                        cr_assert_fail("kata VM not available under CI: %s", tr_error_message(e));
                cr_log_warn("skipping: %s", tr_error_message(e));
                tr_error_free(e);
                cr_skip_test("kata VM files or QEMU missing");
        }
        cr_log_info("kata: %s", detail);
        free(detail);
}

/* A gateway with one namespace, so the relay test sees real data. */
static int gw_list_namespaces(void *self, const tr_call_ctx *ctx, char **ret_json, tr_error **ret_err) {
        *ret_json = strdup("[\"vmtest\"]");
        return *ret_json ? 0 : -ENOMEM;
}
static int gw_empty(void *self, char **ret_json) {
        *ret_json = strdup("[]");
        return *ret_json ? 0 : -ENOMEM;
}
static int gw_search(void *self, const tr_call_ctx *ctx, const char *q, int limit, char **ret_json,
                     tr_error **ret_err) {
        return gw_empty(self, ret_json);
}
static int gw_describe(void *self, const tr_call_ctx *ctx, const char *id, tr_detail_level l, char **ret_json,
                       tr_error **ret_err) {
        return tr_error_set(ret_err, TR_E_TOOL_NOT_FOUND, TR_BACKEND_NONE, "describe_tool", "no tool %s", id);
}
static int gw_examples(void *self, const tr_call_ctx *ctx, const char *id, int max, char **ret_json,
                       tr_error **ret_err) {
        return gw_empty(self, ret_json);
}
static int gw_run(void *self, const tr_call_ctx *ctx, const char *id, const char *args, char **ret_json,
                  tr_error **ret_err) {
        return tr_error_set(ret_err, TR_E_TOOL_NOT_FOUND, TR_BACKEND_NONE, "run_tool", "no tool %s", id);
}
static int gw_chain(void *self, const tr_call_ctx *ctx, const char *steps, char **ret_json, tr_error **ret_err) {
        return tr_error_set(ret_err, TR_E_TOOL_NOT_FOUND, TR_BACKEND_NONE, "run_chain", "no tools");
}
static const tr_gateway_ops gw_ops = {
        .search_tools = gw_search,
        .list_namespaces = gw_list_namespaces,
        .describe_tool = gw_describe,
        .list_tool_examples = gw_examples,
        .run_tool = gw_run,
        .run_chain = gw_chain,
};

typedef struct run {
        int r;
        tr_code code;
        tr_result *res;
        double seconds;
} run;

static run execute(const char *code, int64_t timeout_ms, const tr_limits *limits) {
        tr_kata_config cfg = vm_config();
        tr_backend *b = NULL;
        tr_error *e = NULL;
        cr_assert_eq(tr_backend_kata_new(&cfg, &b, &e), 0, "%s", e ? tr_error_message(e) : "");
        _cleanup_(tr_runtime_freep) tr_runtime *rt = NULL;
        cr_assert_eq(tr_runtime_new(&rt, NULL), 0);
        cr_assert_eq(tr_runtime_add_backend(rt, b, NULL), 0);
        tr_runtime_route(rt, TR_PROFILE_STANDARD, TR_BACKEND_KATA);
        _cleanup_(tr_gateway_freep) tr_gateway *gw = NULL;
        tr_error *ge = NULL;
        cr_assert_eq(tr_gateway_new(&gw_ops, NULL, &gw, &ge), 0, "%s", ge ? tr_error_message(ge) : "");
        _cleanup_(tr_request_freep) tr_request *req = NULL;
        cr_assert_eq(tr_request_new(&req, NULL), 0);
        tr_request_set_code(req, code, strlen(code), NULL);
        tr_request_set_gateway(req, gw);
        tr_request_set_timeout_ms(req, timeout_ms);
        if (limits)
                tr_request_set_limits(req, limits);
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        run out = { 0 };
        out.r = tr_runtime_execute(rt, req, NULL, &out.res, &e);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        out.seconds = (double) (t1.tv_sec - t0.tv_sec) + (double) (t1.tv_nsec - t0.tv_nsec) / 1e9;
        out.code = out.r < 0 ? tr_error_code(e) : TR_OK;
        if (e)
                cr_log_info("error: %s: %s", tr_error_code_name(e), tr_error_message(e));
        tr_error_free(e);
        if (out.res) {
                size_t n;
                cr_log_info("stdout: %s", tr_result_stdout(out.res, &n));
                cr_log_info("stderr: %s", tr_result_stderr(out.res, &n));
                const char *boot = tr_result_backend_detail(out.res, "boot_ms");
                cr_log_info("boot_ms=%s accel=%s total=%.2fs", boot ? boot : "?",
                            tr_result_backend_detail(out.res, "accel"), out.seconds);
        }
        return out;
}

/* No child of ours may survive an execution (QEMU is our only child). */
static int count_children(void) {
        DIR *d = opendir("/proc");
        int n = 0;
        struct dirent *de;
        char path[300], buf[512];
        while (d && (de = readdir(d))) {
                if (de->d_name[0] < '0' || de->d_name[0] > '9')
                        continue;
                snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
                int fd = open(path, O_RDONLY);
                if (fd < 0)
                        continue;
                ssize_t k = read(fd, buf, sizeof(buf) - 1);
                close(fd);
                if (k <= 0)
                        continue;
                buf[k] = 0;
                char *p = strrchr(buf, ')');
                int ppid = 0;
                char state;
                if (p && sscanf(p + 2, "%c %d", &state, &ppid) == 2 && ppid == getpid())
                        n++;
        }
        if (d)
                closedir(d);
        return n;
}

static char *vm_entries(void);
static void assert_nothing_new(const char *before, const char *after);

static const char isolation_snippet[] =
        "import os, socket, json, struct, errno\n"
        "r = {}\n"
        "print('hello from the vm')\n"
        "r['uid'] = os.getuid(); r['gid'] = os.getgid(); r['euid'] = os.geteuid()\n"
        "r['groups'] = os.getgroups()\n"
        "s = socket.socket(); s.settimeout(3)\n"
        "try:\n"
        "    s.connect(('127.0.0.1', PORT)); r['net'] = 'connected'\n"
        "except OSError as e:\n"
        "    r['net'] = type(e).__name__\n"
        "r['ifs'] = sorted(l.split(':')[0].strip() for l in open('/proc/net/dev').readlines()[2:])\n"
        "try:\n"
        "    r['hostfile'] = open('HOSTFILE').read()\n"
        "except OSError as e:\n"
        "    r['hostfile'] = type(e).__name__\n"
        "try:\n"
        "    open('/etc/tr-write-test', 'w'); r['rootfs'] = 'writable'\n"
        "except OSError as e:\n"
        "    r['rootfs'] = errno.errorcode.get(e.errno, str(e.errno))\n"
        "n = 0\n"
        "try:\n"
        "    with open('/tmp/fill', 'wb') as f:\n"
        "        while n < 64 << 20:\n"
        "            f.write(b'x' * 65536); f.flush(); n += 65536\n"
        "    r['disk'] = 'unbounded'\n"
        "except OSError as e:\n"
        "    r['disk'] = errno.errorcode.get(e.errno, str(e.errno))\n"
        "r['disk_bytes'] = n\n"
        "os.unlink('/tmp/fill')\n"
        "kids = []\n"
        "try:\n"
        "    for i in range(200):\n"
        "        pid = os.fork()\n"
        "        if pid == 0:\n"
        "            import time; time.sleep(30); os._exit(0)\n"
        "        kids.append(pid)\n"
        "    r['forks'] = 'unbounded'\n"
        "except OSError as e:\n"
        "    r['forks'] = errno.errorcode.get(e.errno, str(e.errno))\n"
        "r['forked'] = len(kids)\n"
        "for k in kids: os.kill(k, 9)\n"
        "for k in kids: os.waitpid(k, 0)\n"
        "try:\n"
        "    g = socket.socket(socket.AF_UNIX)\n"
        "    g.connect(os.environ['TOOLRUNTIME_GATEWAY'][5:])\n"
        "    m = json.dumps({'type': 'list_namespaces', 'id': '1', 'payload': {}}).encode()\n"
        "    g.sendall(struct.pack('>I', len(m)) + m)\n"
        "    hdr = b''\n"
        "    while len(hdr) < 4: hdr += g.recv(4 - len(hdr))\n"
        "    body = b''\n"
        "    while len(body) < struct.unpack('>I', hdr)[0]: body += g.recv(65536)\n"
        "    r['gateway'] = json.loads(body)\n"
        "except Exception as e:\n"
        "    r['gateway'] = repr(e)\n"
        "__out = r\n";

static char *replace(const char *s, const char *what, const char *with) {
        const char *p = strstr(s, what);
        cr_assert_not_null(p);
        char *out = NULL;
        cr_assert_geq(asprintf(&out, "%.*s%s%s", (int) (p - s), s, with, p + strlen(what)), 0);
        return out;
}

Test(vm, isolation_and_limits_in_one_boot, .timeout = 600) {
        need_vm();
        /* A host listener the guest must not reach. */
        int ls = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        cr_assert_eq(bind(ls, (struct sockaddr *) &sa, sizeof(sa)), 0);
        cr_assert_eq(listen(ls, 1), 0);
        socklen_t sl = sizeof(sa);
        getsockname(ls, (struct sockaddr *) &sa, &sl);
        char port[16];
        snprintf(port, sizeof(port), "%d", ntohs(sa.sin_port));
        /* A host file the guest must not read. */
        char hostfile[] = "/tmp/tr-vm-secret-XXXXXX";
        int fd = mkstemp(hostfile);
        cr_assert_geq(fd, 0);
        cr_assert_eq(write(fd, "secret", 6), 6);
        close(fd);

        char *a = replace(isolation_snippet, "PORT", port);
        char *code = replace(a, "HOSTFILE", hostfile);
        free(a);
        tr_limits lim = { .memory_bytes = 256LL << 20, .pids_max = 32, .disk_bytes = 8LL << 20, .cpu_quota_ms = 100 };
        run out = execute(code, 120000, &lim);
        free(code);
        unlink(hostfile);
        close(ls);

        cr_assert_eq(out.r, 0, "code %s", tr_code_name(out.code));
        size_t n;
        cr_assert(strstr(tr_result_stdout(out.res, &n), "hello from the vm"));
        cr_assert_eq(tr_result_exit_code(out.res), 0);
        const char *v = tr_result_value_json(out.res);
        cr_assert_not_null(v);
        cr_log_info("__out: %s", v);
        json_t *j = json_loads(v, 0, NULL);
        cr_assert_not_null(j);
        cr_assert_eq(json_integer_value(json_object_get(j, "uid")), 65534);
        cr_assert_eq(json_integer_value(json_object_get(j, "gid")), 65534);
        cr_assert_eq(json_integer_value(json_object_get(j, "euid")), 65534);
        cr_assert_eq(json_array_size(json_object_get(j, "groups")), 0);
        /* That is the guest's user; on the host, QEMU ran as the VM's own
         * leased uid (as root; the caller's otherwise). */
        if (geteuid() == 0) {
                const char *hu = tr_result_backend_detail(out.res, "host_uid");
                cr_assert_not_null(hu);
                unsigned long u = strtoul(hu, NULL, 10);
                cr_assert(u >= TR_UID_RANGE_DEFAULT_FIRST &&
                                  u < TR_UID_RANGE_DEFAULT_FIRST + TR_UID_RANGE_DEFAULT_COUNT,
                          "host uid %s", hu);
        }
        cr_assert_str_neq(json_string_value(json_object_get(j, "net")), "connected");
        json_t *ifs = json_object_get(j, "ifs");
        cr_assert_eq(json_array_size(ifs), 1);
        cr_assert_str_eq(json_string_value(json_array_get(ifs, 0)), "lo");
        cr_assert_str_eq(json_string_value(json_object_get(j, "hostfile")), "FileNotFoundError");
        cr_assert_str_eq(json_string_value(json_object_get(j, "rootfs")), "EROFS");
        cr_assert_str_eq(json_string_value(json_object_get(j, "disk")), "ENOSPC");
        cr_assert_leq(json_integer_value(json_object_get(j, "disk_bytes")), 8LL << 20);
        cr_assert_str_eq(json_string_value(json_object_get(j, "forks")), "EAGAIN");
        cr_assert_lt(json_integer_value(json_object_get(j, "forked")), 32);
        json_t *gw = json_object_get(j, "gateway");
        char *gws = json_dumps(gw, JSON_COMPACT);
        cr_log_info("gateway reply: %s", gws);
        cr_assert(gws && strstr(gws, "vmtest"), "gateway reply: %s", gws);
        free(gws);
        json_decref(j);
        const tr_limits_enforced *le = tr_result_limits_enforced(out.res);
        /* What the agent reports it applied (STARTED), cpu.max included. */
        cr_assert(le->timeout && le->memory && le->pids && le->disk && le->cpu);
        cr_assert_str_eq(tr_result_backend_detail(out.res, "runner"), "qemu");
        tr_result_free(out.res);
        cr_assert_eq(count_children(), 0);
}

Test(vm, memory_bomb_is_resource_limit, .timeout = 600) {
        need_vm();
        tr_limits lim = { .memory_bytes = 64LL << 20 };
        run out = execute("x = []\nwhile True:\n    x.append(bytearray(1 << 20))\n", 120000, &lim);
        cr_assert_lt(out.r, 0);
        cr_assert_eq(out.code, TR_E_RESOURCE_LIMIT, "got %s", tr_code_name(out.code));
        cr_assert_not_null(out.res);
        cr_assert(tr_result_limits_enforced(out.res)->memory);
        tr_result_free(out.res);
        cr_assert_eq(count_children(), 0);
}

Test(vm, timeout_kills_the_vm, .timeout = 600) {
        need_vm();
        char *before = vm_entries();
        run out = execute("print('spinning', flush=True)\nwhile True:\n    pass\n", 3000, NULL);
        cr_assert_lt(out.r, 0);
        cr_assert_eq(out.code, TR_E_TIMEOUT, "got %s", tr_code_name(out.code));
        size_t n;
        cr_assert(strstr(tr_result_stdout(out.res, &n), "spinning"), "partial output is kept");
        /* Boot (bounded separately) + 3 s + teardown: well under the boot
         * deadline plus the timeout. */
        cr_assert_lt(out.seconds, 60.0 + 3.0 + 5.0);
        tr_result_free(out.res);
        cr_assert_eq(count_children(), 0, "QEMU must be reaped");
        char *after = vm_entries();
        assert_nothing_new(before, after);
        free(before);
        free(after);
}

/* ---- the lifecycle: prepare ahead, run, destroy ---- */

/* What a VM leaves on the host while it lives: its directory and cgroups. */
static const char *const vm_traces[] = {
        "/run/toolruntime/qemu",           "/sys/fs/cgroup/memory/toolruntime", "/sys/fs/cgroup/cpu/toolruntime",
        "/sys/fs/cgroup/pids/toolruntime", "/sys/fs/cgroup/toolruntime",
};

/* Names of the per-VM entries now, one string ("dir/name\n"...). */
static char *vm_entries(void) {
        size_t cap = 1 << 16, len = 0;
        char *out = calloc(1, cap);
        cr_assert_not_null(out);
        for (size_t i = 0; i < sizeof(vm_traces) / sizeof(vm_traces[0]); i++) {
                DIR *d = opendir(vm_traces[i]);
                struct dirent *de;
                while (d && (de = readdir(d)))
                        if (strncmp(de->d_name, "vm-", 3) == 0 || strncmp(de->d_name, "qemu-vm-", 8) == 0)
                                len += (size_t) snprintf(out + len, cap - len, "%s/%s\n", vm_traces[i], de->d_name);
                if (d)
                        closedir(d);
        }
        return out;
}

/* Is the VM of this entry still running (another process's, on a shared
 * machine)?  Its state directory's `pid` names a live QEMU, or its cgroup
 * still holds processes. */
static bool entry_live(const char *entry) {
        const char *name = strrchr(entry, '/') + 1;
        if (strncmp(name, "qemu-", 5) == 0)
                name += 5;
        char path[512], buf[64] = "";
        snprintf(path, sizeof(path), "/run/toolruntime/qemu/%s/pid", name);
        FILE *f = fopen(path, "r");
        if (f) {
                int pid = 0;
                bool live = fscanf(f, "%d", &pid) == 1 && pid > 0 && kill(pid, 0) == 0;
                fclose(f);
                if (live)
                        return true;
        }
        snprintf(path, sizeof(path), "%s/cgroup.procs", entry);
        f = fopen(path, "r");
        bool procs = f && fgets(buf, sizeof(buf), f) != NULL;
        if (f)
                fclose(f);
        return procs;
}

/* Every entry of `after` was already in `before`, or belongs to a VM that
 * still runs: other processes on this machine add and remove their own
 * meanwhile, and ours are all reaped by now. */
static void assert_nothing_new(const char *before, const char *after) {
        char *copy = strdup(after), *save = NULL;
        for (char *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
                char needle[512];
                snprintf(needle, sizeof(needle), "%s\n", l);
                cr_assert(strstr(before, needle) || entry_live(l), "left behind: %s", l);
        }
        free(copy);
}

static tr_runtime *vm_runtime(void) {
        tr_kata_config cfg = vm_config();
        tr_backend *b = NULL;
        tr_error *e = NULL;
        cr_assert_eq(tr_backend_kata_new(&cfg, &b, &e), 0, "%s", e ? tr_error_message(e) : "");
        tr_runtime *rt = NULL;
        cr_assert_eq(tr_runtime_new(&rt, NULL), 0);
        cr_assert_eq(tr_runtime_add_backend(rt, b, NULL), 0);
        tr_runtime_route(rt, TR_PROFILE_STANDARD, TR_BACKEND_KATA);
        return rt;
}

static double now_s(void) {
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        return (double) t.tv_sec + (double) t.tv_nsec / 1e9;
}

Test(vm, pool_runs_warm_and_leaves_nothing, .timeout = 600) {
        need_vm();
        char *before = vm_entries();
        tr_runtime *rt = vm_runtime();
        _cleanup_(tr_gateway_freep) tr_gateway *gw = NULL;
        cr_assert_eq(tr_gateway_new(&gw_ops, NULL, &gw, NULL), 0);
        _cleanup_(tr_request_freep) tr_request *shape = NULL;
        cr_assert_eq(tr_request_new(&shape, NULL), 0);
        tr_request_set_gateway(shape, gw);
        tr_pool *pool = NULL;
        tr_error *e = NULL;
        cr_assert_eq(tr_pool_new(rt, shape, 1, &pool, &e), 0, "%s", e ? tr_error_message(e) : "");
        tr_pool_stats st = { 0 };
        for (int i = 0; i < 1200 && !st.ready; i++) {
                usleep(100 * 1000);
                tr_pool_get_stats(pool, &st);
        }
        cr_assert_eq(st.ready, 1, "the pool never filled (%llu prepare failures)",
                     (unsigned long long) st.prepare_failures);
        /* The VM waits with its interpreter up: what is left is the code. */
        _cleanup_(tr_request_freep) tr_request *req = NULL;
        cr_assert_eq(tr_request_new(&req, NULL), 0);
        static const char code[] = "import sys\nprint('warm', sys.stdin.read())\n__out = 6 * 7\n";
        tr_request_set_code(req, code, strlen(code), NULL);
        cr_assert_eq(tr_request_set_stdin(req, "in", 2, NULL), 0);
        tr_request_set_gateway(req, gw);
        tr_request_set_timeout_ms(req, 60000);
        tr_result *res = NULL;
        double t0 = now_s();
        int r = tr_pool_execute(pool, req, NULL, &res, &e);
        double dt = now_s() - t0;
        cr_assert_eq(r, 0, "%s", e ? tr_error_message(e) : "");
        cr_log_info("pooled kata execution: %.1f ms", dt * 1000);
        cr_assert_str_eq(tr_result_backend_detail(res, "pool"), "warm");
        size_t n;
        cr_assert_str_eq(tr_result_stdout(res, &n), "warm in\n");
        cr_assert_str_eq(tr_result_value_json(res), "42");
        cr_assert(tr_result_limits_enforced(res)->timeout);
        tr_result_free(res);
        /* Frees the used VM and the refilled one (waiting for its boot). */
        tr_pool_free(pool);
        tr_runtime_free(rt);
        cr_assert_eq(count_children(), 0, "QEMU must be reaped");
        char *after = vm_entries();
        assert_nothing_new(before, after);
        free(before);
        free(after);
}

typedef struct prep_arg {
        tr_runtime *rt;
        tr_request *req;
        tr_sandbox *sb;
        tr_error *e;
        int r;
} prep_arg;

static void *prep_main(void *arg) {
        prep_arg *pa = arg;
        pa->r = tr_runtime_prepare(pa->rt, pa->req, NULL, &pa->sb, &pa->e);
        return NULL;
}

Test(vm, prepared_vm_cancelled_and_destroyed_unrun, .timeout = 600) {
        need_vm();
        char *before = vm_entries();
        tr_runtime *rt = vm_runtime();
        _cleanup_(tr_gateway_freep) tr_gateway *gw = NULL;
        cr_assert_eq(tr_gateway_new(&gw_ops, NULL, &gw, NULL), 0);
        _cleanup_(tr_request_freep) tr_request *req = NULL;
        cr_assert_eq(tr_request_new(&req, NULL), 0);
        tr_request_set_gateway(req, gw);
        tr_sandbox *sb = NULL;
        tr_error *e = NULL;
        cr_assert_eq(tr_runtime_prepare(rt, req, NULL, &sb, &e), 0, "%s", e ? tr_error_message(e) : "");
        cr_assert_eq(count_children(), 1, "the prepared VM's QEMU runs");
        /* Cancelled before its code ran: it fails at once, and the VM goes
         * with the sandbox. */
        tr_request_set_code(req, "print(1)", 8, NULL);
        tr_cancel *c = NULL;
        cr_assert_eq(tr_cancel_new(&c, NULL), 0);
        tr_cancel_cancel(c);
        tr_result *res = NULL;
        double t0 = now_s();
        int r = tr_sandbox_run(sb, req, c, &res, &e);
        cr_assert_lt(r, 0);
        cr_assert_eq(tr_error_code(e), TR_E_CANCELLED, "got %s", tr_error_code_name(e));
        cr_assert_lt(now_s() - t0, 2.0);
        tr_error_free(e);
        tr_result_free(res);
        tr_cancel_free(c);
        tr_sandbox_free(sb);
        cr_assert_eq(count_children(), 0, "QEMU must be reaped");
        /* A second one prepared by a thread that then ends (as an HTTP
         * connection's would): the VM outlives it and runs. */
        prep_arg pa = { .rt = rt, .req = req };
        pthread_t t;
        pthread_create(&t, NULL, prep_main, &pa);
        pthread_join(t, NULL);
        cr_assert_eq(pa.r, 0, "%s", pa.e ? tr_error_message(pa.e) : "");
        sleep(1);
        res = NULL;
        e = NULL;
        r = tr_sandbox_run(pa.sb, req, NULL, &res, &e);
        cr_assert_eq(r, 0, "%s", e ? tr_error_message(e) : "");
        size_t n;
        cr_assert_str_eq(tr_result_stdout(res, &n), "1\n");
        tr_result_free(res);
        /* A third one destroyed without any run at all. */
        tr_sandbox_free(pa.sb);
        cr_assert_eq(tr_runtime_prepare(rt, req, NULL, &sb, &e), 0, "%s", e ? tr_error_message(e) : "");
        tr_sandbox_free(sb);
        cr_assert_eq(count_children(), 0, "QEMU must be reaped");
        tr_runtime_free(rt);
        char *after = vm_entries();
        assert_nothing_new(before, after);
        free(before);
        free(after);
}
