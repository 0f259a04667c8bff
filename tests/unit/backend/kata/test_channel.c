/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The host side of the VM channel against a fake hypervisor: the backend's
 * runtime_path points at a shell script that plays a hostile or broken
 * guest by writing prepared bytes to the channel fd (3) QEMU would have.
 * No VM boots, so this runs in the unit suite.  Whatever the "guest" sends,
 * the host must answer with the right error, never crash or hang, and reap
 * the process.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backend/kata/internal.h"
#include "toolruntime.h"
#include "util/frame.h"
#include "util/handles.h"

typedef struct fake_vm {
        char dir[64];
        char script[128];
        char data[128];
        char data2[128];
} fake_vm;

/* Write `bytes` for the fake guest and a script that sends them and then
 * sleeps `sleep_s` seconds (or exits at once when 0). */
static void fake_setup(fake_vm *f, const tr__vf_buf *bytes, int sleep_s) {
        /* The fake is a shell script, which needs the host's /bin/sh: no
         * pivot_root for it (the namespaces, the cgroup and the uid still
         * apply).  The real QEMU's root is tested with real boots
         * (tests/integration/kata, tests/security/cases/qemu.sh). */
        tr__kata_jail_root = false;
        f->data2[0] = 0;
        strcpy(f->dir, "/tmp/tr-fakevm-XXXXXX");
        cr_assert_not_null(mkdtemp(f->dir));
        chmod(f->dir, 0755); /* the fake hypervisor runs as the leased uid when we are root */
        snprintf(f->data, sizeof(f->data), "%s/bytes", f->dir);
        snprintf(f->script, sizeof(f->script), "%s/fake-qemu", f->dir);
        FILE *d = fopen(f->data, "w");
        cr_assert_not_null(d);
        if (bytes->len)
                cr_assert_eq(fwrite(bytes->data, 1, bytes->len, d), bytes->len);
        fclose(d);
        chmod(f->data, 0644);
        FILE *s = fopen(f->script, "w");
        cr_assert_not_null(s);
        fprintf(s, "#!/bin/sh\ncat '%s' >&3\n%s\n", f->data, sleep_s ? "sleep 30" : "exit 0");
        fclose(s);
        chmod(f->script, 0755);
}

static void write_bytes(const char *path, const tr__vf_buf *bytes) {
        FILE *d = fopen(path, "w");
        cr_assert_not_null(d);
        if (bytes && bytes->len)
                cr_assert_eq(fwrite(bytes->data, 1, bytes->len, d), bytes->len);
        fclose(d);
        chmod(path, 0644);
}

/* A fake guest in two parts: `pre` (shell), `bytes`, `mid` (shell),
 * `bytes2`, then a long sleep. */
static void fake_setup2(fake_vm *f, const char *pre, const tr__vf_buf *bytes, const char *mid,
                        const tr__vf_buf *bytes2) {
        fake_setup(f, bytes, 1);
        snprintf(f->data2, sizeof(f->data2), "%s/bytes2", f->dir);
        write_bytes(f->data2, bytes2);
        FILE *s = fopen(f->script, "w");
        cr_assert_not_null(s);
        fprintf(s, "#!/bin/sh\n%s\ncat '%s' >&3\n%s\ncat '%s' >&3\nsleep 30\n", pre, f->data, mid, f->data2);
        fclose(s);
}

static void fake_done(fake_vm *f) {
        if (f->data2[0])
                unlink(f->data2);
        unlink(f->data);
        unlink(f->script);
        rmdir(f->dir);
}

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
                char st;
                if (p && sscanf(p + 2, "%c %d", &st, &ppid) == 2 && ppid == getpid())
                        n++;
        }
        if (d)
                closedir(d);
        return n;
}

typedef struct outcome {
        tr_code code;
        int exit_code;
        char stdout_[64];
        char msg[512];
        double seconds;
} outcome;

static outcome run_fake_vm(fake_vm *fv, tr_gateway *gw_in, int64_t boot_timeout_ms, int64_t timeout_ms);

static outcome run_fake(const tr__vf_buf *bytes, int sleep_s, int64_t boot_timeout_ms, int64_t timeout_ms) {
        fake_vm f;
        fake_setup(&f, bytes, sleep_s);
        return run_fake_vm(&f, NULL, boot_timeout_ms, timeout_ms);
}

/* Runs the fake `fv` (removed afterwards) with the gateway `gw_in` (NULL:
 * an empty one). */
static outcome run_fake_vm(fake_vm *fv, tr_gateway *gw_in, int64_t boot_timeout_ms, int64_t timeout_ms) {
        fake_vm f = *fv;
        /* Any readable files will do: the fake never reads them. */
        tr_kata_config cfg = { .size = sizeof(tr_kata_config),
                               .runtime_path = f.script,
                               .kernel_path = "/dev/null",
                               .initrd_path = "/dev/null",
                               .image_path = "/dev/null",
                               .accel = TR_KATA_ACCEL_TCG,
                               .boot_timeout_ms = boot_timeout_ms };
        tr_backend *b = NULL;
        cr_assert_eq(tr_backend_kata_new(&cfg, &b, NULL), 0);
        _cleanup_(tr_runtime_freep) tr_runtime *rt = NULL;
        cr_assert_eq(tr_runtime_new(&rt, NULL), 0);
        cr_assert_eq(tr_runtime_add_backend(rt, b, NULL), 0);
        tr_runtime_route(rt, TR_PROFILE_STANDARD, TR_BACKEND_KATA);
        _cleanup_(tr_gateway_freep) tr_gateway *gw_own = NULL;
        if (!gw_in)
                cr_assert_eq(tr_gateway_new_empty(&gw_own, NULL), 0);
        tr_gateway *gw = gw_in ? gw_in : gw_own;
        _cleanup_(tr_request_freep) tr_request *req = NULL;
        cr_assert_eq(tr_request_new(&req, NULL), 0);
        tr_request_set_code(req, "print(1)", 8, NULL);
        tr_request_set_gateway(req, gw);
        tr_request_set_timeout_ms(req, timeout_ms);
        tr_result *res = NULL;
        tr_error *e = NULL;
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        int r = tr_runtime_execute(rt, req, NULL, &res, &e);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        outcome o = { .code = r < 0 ? tr_error_code(e) : TR_OK };
        o.seconds = (double) (t1.tv_sec - t0.tv_sec) + (double) (t1.tv_nsec - t0.tv_nsec) / 1e9;
        if (e)
                snprintf(o.msg, sizeof(o.msg), "%s", tr_error_message(e));
        if (res) {
                size_t n;
                o.exit_code = tr_result_exit_code(res);
                snprintf(o.stdout_, sizeof(o.stdout_), "%s", tr_result_stdout(res, &n));
        }
        tr_error_free(e);
        tr_result_free(res);
        fake_done(&f);
        cr_assert_eq(count_children(), 0, "the fake hypervisor must be reaped");
        return o;
}

static void add(tr__vf_buf *b, uint8_t type, const void *p, size_t n) {
        cr_assert_eq(tr__vf_buf_frame(b, type, NULL, 0, p, n), 0);
}

/* STARTED as the agent sends it: every limit and the seccomp filter in
 * force. */
static void add_started(tr__vf_buf *b) {
        tr__vf_buf t = { 0 };
        cr_assert_eq(tr__vf_tlv_add_u64(&t, TR_VT_LIMITS_APPLIED,
                                        TR_VL_MEMORY | TR_VL_PIDS | TR_VL_CPU | TR_VL_DISK | TR_VL_SECCOMP |
                                                TR_VL_STDIN_LIVE),
                     0);
        add(b, TR_VF_STARTED, t.data, t.len);
        tr__vf_buf_done(&t);
}

static void add_exit(tr__vf_buf *b, uint64_t kind, uint64_t code) {
        tr__vf_buf t = { 0 };
        tr__vf_tlv_add_u64(&t, TR_VT_EXIT_KIND, kind);
        tr__vf_tlv_add_u64(&t, TR_VT_EXIT_CODE, code);
        add(b, TR_VF_EXIT, t.data, t.len);
        tr__vf_buf_done(&t);
}

Test(channel, well_behaved_fake_guest) {
        tr__vf_buf b = { 0 };
        add(&b, TR_VF_HELLO, "fake", 4);
        add_started(&b);
        add(&b, TR_VF_STDOUT, "hi\n", 3);
        add_exit(&b, TR_VF_EXITED, 7);
        outcome o = run_fake(&b, 1, 10000, 10000);
        cr_assert_eq(o.code, TR_OK, "%s", o.msg);
        cr_assert_eq(o.exit_code, 7);
        cr_assert_str_eq(o.stdout_, "hi\n");
        tr__vf_buf_done(&b);
}

Test(channel, oom_exit_is_resource_limit) {
        tr__vf_buf b = { 0 };
        add(&b, TR_VF_HELLO, "fake", 4);
        add_started(&b);
        add_exit(&b, TR_VF_OOM, 9);
        outcome o = run_fake(&b, 1, 10000, 10000);
        cr_assert_eq(o.code, TR_E_RESOURCE_LIMIT, "%s", o.msg);
        tr__vf_buf_done(&b);
}

Test(channel, garbage_is_execution_failed) {
        tr__vf_buf b = { 0 };
        tr__vf_buf_append(&b, "GARBAGE!GARBAGE!", 16);
        outcome o = run_fake(&b, 1, 10000, 10000);
        cr_assert_eq(o.code, TR_E_VM_EXECUTION_FAILED, "%s", o.msg);
        tr__vf_buf_done(&b);
}

Test(channel, oversized_frame_is_execution_failed) {
        tr__vf_buf b = { 0 };
        add(&b, TR_VF_HELLO, "fake", 4);
        add_started(&b);
        uint8_t hdr[8] = { 'T', 'V', TR_VF_STDOUT, 0, 0x7f, 0xff, 0xff, 0xff };
        tr__vf_buf_append(&b, hdr, 8);
        outcome o = run_fake(&b, 1, 10000, 10000);
        cr_assert_eq(o.code, TR_E_VM_EXECUTION_FAILED, "%s", o.msg);
        cr_assert(strstr(o.msg, "oversized"), "%s", o.msg);
        tr__vf_buf_done(&b);
}

Test(channel, frames_out_of_order_are_execution_failed) {
        tr__vf_buf b = { 0 };
        add(&b, TR_VF_HELLO, "fake", 4);
        add(&b, TR_VF_STDOUT, "early", 5); /* before STARTED */
        outcome o = run_fake(&b, 1, 10000, 10000);
        cr_assert_eq(o.code, TR_E_VM_EXECUTION_FAILED, "%s", o.msg);
        tr__vf_buf_done(&b);

        tr__vf_buf c = { 0 };
        add(&c, TR_VF_HELLO, "fake", 4);
        add(&c, TR_VF_HELLO, "fake", 4);
        o = run_fake(&c, 1, 10000, 10000);
        cr_assert_eq(o.code, TR_E_VM_EXECUTION_FAILED, "%s", o.msg);
        tr__vf_buf_done(&c);

        tr__vf_buf d = { 0 };
        add(&d, TR_VF_HELLO, "fake", 4);
        add_started(&d);
        add(&d, TR_VF_EXIT, "\x00\x01\x00", 3); /* a truncated TLV */
        o = run_fake(&d, 1, 10000, 10000);
        cr_assert_eq(o.code, TR_E_VM_EXECUTION_FAILED, "%s", o.msg);
        tr__vf_buf_done(&d);

        tr__vf_buf g = { 0 };
        add(&g, TR_VF_HELLO, "fake", 4);
        add_started(&g);
        add(&g, TR_VF_REQUEST, "x", 1); /* a host-only type */
        o = run_fake(&g, 1, 10000, 10000);
        cr_assert_eq(o.code, TR_E_VM_EXECUTION_FAILED, "%s", o.msg);
        tr__vf_buf_done(&g);
}

Test(channel, agent_error_is_reported) {
        tr__vf_buf b = { 0 };
        add(&b, TR_VF_HELLO, "fake", 4);
        add(&b, TR_VF_ERROR, "no root disk\x01", 13);
        outcome o = run_fake(&b, 1, 10000, 10000);
        cr_assert_eq(o.code, TR_E_VM_EXECUTION_FAILED, "%s", o.msg);
        cr_assert(strstr(o.msg, "no root disk?"), "%s", o.msg);
        tr__vf_buf_done(&b);
}

Test(channel, vm_that_dies_before_its_agent_is_creation_failed) {
        tr__vf_buf b = { 0 };
        outcome o = run_fake(&b, 0, 10000, 10000);
        cr_assert_eq(o.code, TR_E_VM_CREATION_FAILED, "%s", o.msg);
        tr__vf_buf_done(&b);
}

Test(channel, stuck_boot_hits_the_boot_deadline) {
        tr__vf_buf b = { 0 };
        outcome o = run_fake(&b, 1, 700, 10000);
        cr_assert_eq(o.code, TR_E_VM_CREATION_FAILED, "%s", o.msg);
        cr_assert_lt(o.seconds, 5.0);
        tr__vf_buf_done(&b);
}

Test(channel, stuck_snippet_hits_the_timeout) {
        tr__vf_buf b = { 0 };
        add(&b, TR_VF_HELLO, "fake", 4);
        add_started(&b);
        outcome o = run_fake(&b, 1, 10000, 500);
        cr_assert_eq(o.code, TR_E_TIMEOUT, "%s", o.msg);
        cr_assert_lt(o.seconds, 5.0);
        tr__vf_buf_done(&b);
}

/* ---- cancellation and parallel executions (one backend, many threads) ---- */

typedef struct par_arg {
        tr_runtime *rt;
        tr_gateway *gw;
        tr_cancel *cancel;
        tr_code code;
        int exit_code;
} par_arg;

static void *par_run(void *p) {
        par_arg *a = p;
        tr_request *req = NULL;
        cr_assert_eq(tr_request_new(&req, NULL), 0);
        tr_request_set_code(req, "x", 1, NULL);
        tr_request_set_gateway(req, a->gw);
        tr_request_set_timeout_ms(req, 20000);
        tr_result *res = NULL;
        tr_error *e = NULL;
        int r = tr_runtime_execute(a->rt, req, a->cancel, &res, &e);
        a->code = r < 0 ? tr_error_code(e) : TR_OK;
        a->exit_code = res ? tr_result_exit_code(res) : -2;
        tr_error_free(e);
        tr_result_free(res);
        tr_request_free(req);
        return NULL;
}

static tr_runtime *fake_runtime(fake_vm *f) {
        tr_kata_config cfg = { .size = sizeof(tr_kata_config),
                               .runtime_path = f->script,
                               .kernel_path = "/dev/null",
                               .initrd_path = "/dev/null",
                               .image_path = "/dev/null",
                               .accel = TR_KATA_ACCEL_TCG };
        tr_backend *b = NULL;
        tr_runtime *rt = NULL;
        cr_assert_eq(tr_backend_kata_new(&cfg, &b, NULL), 0);
        cr_assert_eq(tr_runtime_new(&rt, NULL), 0);
        cr_assert_eq(tr_runtime_add_backend(rt, b, NULL), 0);
        tr_runtime_route(rt, TR_PROFILE_STANDARD, TR_BACKEND_KATA);
        return rt;
}

Test(channel, cancel_kills_the_vm) {
        tr__vf_buf b = { 0 };
        add(&b, TR_VF_HELLO, "fake", 4);
        add_started(&b);
        fake_vm f;
        fake_setup(&f, &b, 1);
        par_arg a = { .rt = fake_runtime(&f) };
        cr_assert_eq(tr_gateway_new_empty(&a.gw, NULL), 0);
        cr_assert_eq(tr_cancel_new(&a.cancel, NULL), 0);
        pthread_t t;
        pthread_create(&t, NULL, par_run, &a);
        usleep(300 * 1000);
        tr_cancel_cancel(a.cancel);
        pthread_join(t, NULL);
        cr_assert_eq(a.code, TR_E_CANCELLED, "got %s", tr_code_name(a.code));
        cr_assert_eq(count_children(), 0, "the fake hypervisor must be reaped");
        tr_cancel_free(a.cancel);
        tr_gateway_free(a.gw);
        tr_runtime_free(a.rt);
        fake_done(&f);
        tr__vf_buf_done(&b);
}

Test(channel, parallel_executions_on_one_backend) {
        tr__vf_buf b = { 0 };
        add(&b, TR_VF_HELLO, "fake", 4);
        add_started(&b);
        add(&b, TR_VF_STDOUT, "x", 1);
        add_exit(&b, TR_VF_EXITED, 5);
        fake_vm f;
        fake_setup(&f, &b, 1);
        tr_runtime *rt = fake_runtime(&f);
        tr_gateway *gw = NULL;
        cr_assert_eq(tr_gateway_new_empty(&gw, NULL), 0);
        enum { N = 6 };
        par_arg a[N];
        pthread_t t[N];
        for (int i = 0; i < N; i++) {
                a[i] = (par_arg){ .rt = rt, .gw = gw };
                pthread_create(&t[i], NULL, par_run, &a[i]);
        }
        for (int i = 0; i < N; i++) {
                pthread_join(t[i], NULL);
                cr_assert_eq(a[i].code, TR_OK, "run %d: %s", i, tr_code_name(a[i].code));
                cr_assert_eq(a[i].exit_code, 5);
        }
        cr_assert_eq(count_children(), 0);
        tr_gateway_free(gw);
        tr_runtime_free(rt);
        fake_done(&f);
        tr__vf_buf_done(&b);
}

/* ---- the gateway relay: bounded buffers, bounded queues, the deadline ---- */

static void add_gw(tr__vf_buf *b, uint8_t type, uint32_t id, const void *p, size_t n) {
        uint8_t idb[4];
        tr__vf_put_u32(idb, id);
        cr_assert_eq(tr__vf_buf_frame(b, type, idb, 4, p, n), 0);
}

/* A gateway message as the guest's snippet would write it on a stream. */
static void add_gw_call(tr__vf_buf *b, uint32_t id, const char *json) {
        size_t n = strlen(json);
        uint8_t msg[512];
        cr_assert_lt(n + 4, sizeof(msg));
        msg[0] = (uint8_t) (n >> 24);
        msg[1] = (uint8_t) (n >> 16);
        msg[2] = (uint8_t) (n >> 8);
        msg[3] = (uint8_t) n;
        memcpy(msg + 4, json, n);
        add_gw(b, TR_VF_GW_DATA, id, msg, n + 4);
}

Test(channel, gw_open_for_an_open_stream_is_execution_failed) {
        tr__vf_buf b = { 0 };
        add(&b, TR_VF_HELLO, "fake", 4);
        add_started(&b);
        add_gw(&b, TR_VF_GW_OPEN, 1, NULL, 0);
        add_gw(&b, TR_VF_GW_OPEN, 1, NULL, 0);
        outcome o = run_fake(&b, 1, 10000, 10000);
        cr_assert_eq(o.code, TR_E_VM_EXECUTION_FAILED, "%s", o.msg);
        cr_assert(strstr(o.msg, "already open"), "%s", o.msg);
        tr__vf_buf_done(&b);
}

/* A guest that never reads its channel and provokes CLOSE frames (opens
 * beyond the stream limit) must not grow the host's queue without bound. */
Test(channel, close_flood_is_execution_failed) {
        tr__vf_buf b = { 0 };
        add(&b, TR_VF_HELLO, "fake", 4);
        add_started(&b);
        for (uint32_t i = 1; i <= 16; i++)
                add_gw(&b, TR_VF_GW_OPEN, i, NULL, 0);
        for (uint32_t i = 0; i < 450000; i++)
                add_gw(&b, TR_VF_GW_OPEN, 1000 + i, NULL, 0);
        outcome o = run_fake(&b, 1, 10000, 20000);
        cr_assert_eq(o.code, TR_E_VM_EXECUTION_FAILED, "%s", o.msg);
        cr_assert(strstr(o.msg, "more gateway frames"), "%s", o.msg);
        tr__vf_buf_done(&b);
}

static int stub_search(void *self, const tr_call_ctx *ctx, const char *q, int limit, char **ret, tr_error **ret_err) {
        (void) self, (void) q, (void) limit, (void) ret_err;
        *ret = strdup("[]");
        return 0;
}
static int stub_ns(void *self, const tr_call_ctx *ctx, char **ret, tr_error **ret_err) {
        (void) self, (void) ret_err;
        *ret = strdup("[]");
        return 0;
}
static int stub_describe(void *self, const tr_call_ctx *ctx, const char *id, tr_detail_level l, char **ret,
                         tr_error **ret_err) {
        (void) self, (void) id, (void) l, (void) ret_err;
        *ret = strdup("{}");
        return 0;
}
static int stub_examples(void *self, const tr_call_ctx *ctx, const char *id, int max, char **ret, tr_error **ret_err) {
        (void) self, (void) id, (void) max, (void) ret_err;
        *ret = strdup("[]");
        return 0;
}
static int stub_chain(void *self, const tr_call_ctx *ctx, const char *steps, char **ret, tr_error **ret_err) {
        (void) self, (void) steps, (void) ret_err;
        *ret = strdup("[]");
        return 0;
}
#define STUB_OPS                                                                                 \
        .search_tools = stub_search, .list_namespaces = stub_ns, .describe_tool = stub_describe, \
        .list_tool_examples = stub_examples, .run_chain = stub_chain

static int slow_run_tool(void *self, const tr_call_ctx *ctx, const char *id, const char *args, char **ret,
                         tr_error **ret_err) {
        (void) self;
        (void) id;
        (void) args;
        (void) ret_err;
        sleep(2);
        *ret = strdup("{}");
        return 0;
}

static const tr_gateway_ops slow_ops = { STUB_OPS, .run_tool = slow_run_tool };

/* While the gateway is busy (a tool call in progress), the host buffers
 * what the guest sends on that stream, bounded, and never waits for it: a
 * guest that floods is failed at once instead of freezing the host loop. */
Test(channel, gateway_stream_overflow_is_execution_failed) {
        tr__vf_buf b = { 0 };
        add(&b, TR_VF_HELLO, "fake", 4);
        add_started(&b);
        add_gw(&b, TR_VF_GW_OPEN, 1, NULL, 0);
        add_gw_call(&b, 1, "{\"type\":\"run_tool\",\"id\":1,\"payload\":{\"id\":\"t:slow\",\"args\":{}}}");
        /* Then the start of a long (900 KB, under the session's cap)
         * message and 3 MiB of its body. */
        uint8_t chunk[TR_VF_CHUNK];
        memset(chunk, 'x', sizeof(chunk));
        chunk[0] = 0;
        chunk[1] = 0x0d;
        chunk[2] = 0xbb;
        chunk[3] = 0xa0;
        for (int i = 0; i < 96; i++)
                add_gw(&b, TR_VF_GW_DATA, 1, chunk, sizeof(chunk));
        fake_vm f;
        fake_setup(&f, &b, 1);
        tr_gateway *gw = NULL;
        cr_assert_eq(tr_gateway_new(&slow_ops, NULL, &gw, NULL), 0);
        outcome o = run_fake_vm(&f, gw, 10000, 20000);
        tr_gateway_free(gw);
        cr_assert_eq(o.code, TR_E_VM_EXECUTION_FAILED, "%s", o.msg);
        cr_assert(strstr(o.msg, "did not take"), "%s", o.msg);
        /* The 2 s tool call, not 16 x 5 s of blocked sends. */
        cr_assert_lt(o.seconds, 5.0);
        tr__vf_buf_done(&b);
}

static _Atomic int64_t tool_left_ms = -1;

static int deadline_run_tool(void *self, const tr_call_ctx *ctx, const char *id, const char *args, char **ret,
                             tr_error **ret_err) {
        (void) self;
        (void) id;
        (void) args;
        (void) ret_err;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t now = (int64_t) ts.tv_sec * 1000000000LL + ts.tv_nsec;
        int64_t d = tr_call_ctx_deadline_ns(ctx);
        tool_left_ms = d ? (d - now) / 1000000 : -2;
        *ret = strdup("{}");
        return 0;
}

static const tr_gateway_ops deadline_ops = { STUB_OPS, .run_tool = deadline_run_tool };

/* The request's timeout counts from STARTED for tool calls too: a slow
 * boot must not eat the time the gateway gives them. */
Test(channel, tool_calls_get_the_timeout_counted_from_started) {
        tr__vf_buf b = { 0 }, b2 = { 0 };
        add(&b, TR_VF_HELLO, "fake", 4);
        add_started(&b);
        add_gw(&b, TR_VF_GW_OPEN, 1, NULL, 0);
        add_gw_call(&b, 1, "{\"type\":\"run_tool\",\"id\":1,\"payload\":{\"id\":\"t:d\",\"args\":{}}}");
        add_exit(&b2, TR_VF_EXITED, 0);
        fake_vm f;
        /* A 1.5 s "boot", then a 2 s timeout. */
        fake_setup2(&f, "sleep 1.5", &b, "sleep 0.7", &b2);
        tr_gateway *gw = NULL;
        cr_assert_eq(tr_gateway_new(&deadline_ops, NULL, &gw, NULL), 0);
        tool_left_ms = -1;
        outcome o = run_fake_vm(&f, gw, 10000, 2000);
        tr_gateway_free(gw);
        cr_assert_eq(o.code, TR_OK, "%s", o.msg);
        cr_assert_gt(tool_left_ms, 1200, "the tool call had %lld ms left", (long long) tool_left_ms);
        tr__vf_buf_done(&b);
        tr__vf_buf_done(&b2);
}

/* STARTED says which limits the agent applied; limits_enforced follows it. */
Test(channel, limits_enforced_follow_what_the_agent_applied) {
        tr__vf_buf b = { 0 }, t = { 0 };
        add(&b, TR_VF_HELLO, "fake", 4);
        tr__vf_tlv_add_u64(&t, TR_VT_LIMITS_APPLIED, TR_VL_MEMORY | TR_VL_SECCOMP | TR_VL_STDIN_LIVE);
        add(&b, TR_VF_STARTED, t.data, t.len);
        add_exit(&b, TR_VF_EXITED, 0);
        fake_vm f;
        fake_setup(&f, &b, 1);
        tr_runtime *rt = fake_runtime(&f);
        tr_gateway *gw = NULL;
        cr_assert_eq(tr_gateway_new_empty(&gw, NULL), 0);
        tr_request *req = NULL;
        cr_assert_eq(tr_request_new(&req, NULL), 0);
        tr_request_set_code(req, "x", 1, NULL);
        tr_request_set_gateway(req, gw);
        tr_limits lim = { .memory_bytes = 64 << 20, .pids_max = 32, .cpu_quota_ms = 50 };
        tr_request_set_limits(req, &lim);
        tr_result *res = NULL;
        tr_error *e = NULL;
        int r = tr_runtime_execute(rt, req, NULL, &res, &e);
        cr_assert_eq(r, 0, "%s", e ? tr_error_message(e) : "");
        const tr_limits_enforced *le = tr_result_limits_enforced(res);
        cr_assert(le->memory);
        cr_assert(!le->pids, "pids.max was not applied");
        cr_assert(!le->cpu, "cpu.max was not applied");
        cr_assert(le->timeout);
        tr_result_free(res);
        tr_request_free(req);
        tr_gateway_free(gw);
        tr_runtime_free(rt);
        fake_done(&f);
        tr__vf_buf_done(&b);
        tr__vf_buf_done(&t);
}

/* An agent that does not say it installed the profile's seccomp filter (a
 * VM image older than the filter) has started a snippet the profile does
 * not allow: the execution fails, naming the fix. */
Test(channel, started_without_the_seccomp_filter_fails) {
        tr__vf_buf b = { 0 }, t = { 0 };
        add(&b, TR_VF_HELLO, "fake", 4);
        tr__vf_tlv_add_u64(&t, TR_VT_LIMITS_APPLIED,
                           TR_VL_MEMORY | TR_VL_PIDS | TR_VL_CPU | TR_VL_DISK | TR_VL_STDIN_LIVE);
        add(&b, TR_VF_STARTED, t.data, t.len);
        add(&b, TR_VF_STDOUT, "unfiltered", 10);
        add_exit(&b, TR_VF_EXITED, 0);
        outcome o = run_fake(&b, 1, 10000, 10000);
        cr_assert_eq(o.code, TR_E_VM_EXECUTION_FAILED, "got %s", tr_code_name(o.code));
        cr_assert(strstr(o.msg, "seccomp"), "%s", o.msg);
        cr_assert_str_eq(o.stdout_, "", "no output of an unfiltered snippet is delivered");
        tr__vf_buf_done(&b);
        tr__vf_buf_done(&t);
}
