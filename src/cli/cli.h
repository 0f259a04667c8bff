/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The `toolruntime` command: one file per subcommand.  Only this layer
 * writes to the terminal or chooses exit statuses.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "toolruntime.h"

/* Exit statuses (timeout(1)'s conventions). */
enum {
        CLI_EXIT_USAGE = 2,
        CLI_EXIT_TIMEOUT = 124,
        CLI_EXIT_ERROR = 125,
};

/* Backend options shared by exec, doctor, image and gc. */
typedef struct cli_backend_opts {
        const char *image;
        const char *ctrd_namespace;
        const char *socket;
        const char *runtime;
        const char *seccomp;
        const char *kernel;
        const char *initrd;
        const char *vm_image;
        const char *hypervisor;
        tr_kata_accel accel;    /* --accel; zero is auto */
        tr_uid_range uid_range; /* --uid-range; zero is the default */
        const char *sdk_path;
        const tr_image_pull_opts *pull; /* NULL: never pull a missing image */
        bool teardown_at_free;          /* tr_containerd_config's */
} cli_backend_opts;

/* The backend options `exec`, `mcp` and `serve` share (runtime.c): one
 * table and one parser, so that a backend option means the same in every
 * command.  --uid-range is not among them: `mcp` has none. */
enum {
        CLI_OPT_IMAGE = 0x1100,
        CLI_OPT_NAMESPACE,
        CLI_OPT_SOCKET,
        CLI_OPT_RUNTIME,
        CLI_OPT_SECCOMP,
        CLI_OPT_KERNEL,
        CLI_OPT_INITRD,
        CLI_OPT_VM_IMAGE,
        CLI_OPT_HYPERVISOR,
        CLI_OPT_ACCEL,
};
#define CLI_BACKEND_LONG_OPTIONS                                                 \
        { "image", required_argument, NULL, CLI_OPT_IMAGE },                     \
                { "namespace", required_argument, NULL, CLI_OPT_NAMESPACE },     \
                { "socket", required_argument, NULL, CLI_OPT_SOCKET },           \
                { "runtime", required_argument, NULL, CLI_OPT_RUNTIME },         \
                { "seccomp", required_argument, NULL, CLI_OPT_SECCOMP },         \
                { "kernel", required_argument, NULL, CLI_OPT_KERNEL },           \
                { "initrd", required_argument, NULL, CLI_OPT_INITRD },           \
                { "vm-image", required_argument, NULL, CLI_OPT_VM_IMAGE },       \
                { "hypervisor", required_argument, NULL, CLI_OPT_HYPERVISOR }, { \
                "accel", required_argument, NULL, CLI_OPT_ACCEL                  \
        }
/* 1 when `c` is one of CLI_BACKEND_LONG_OPTIONS (applied to `bo`), 0 when
 * not, CLI_EXIT_USAGE (already reported) for a bad value. */
int cli_backend_option(const char *cmd, cli_backend_opts *bo, int c, const char *arg);

/* The registry options `exec` and `image pull` share (image_pull.c). */
enum {
        CLI_OPT_INSECURE_REGISTRY = 0x1000,
        CLI_OPT_REGISTRY_CONFIG,
        CLI_OPT_MAX_IMAGE_SIZE,
        CLI_OPT_NO_PULL,
};
#define CLI_PULL_LONG_OPTIONS                                                            \
        { "insecure-registry", required_argument, NULL, CLI_OPT_INSECURE_REGISTRY },     \
                { "registry-config", required_argument, NULL, CLI_OPT_REGISTRY_CONFIG }, \
                { "max-image-size", required_argument, NULL, CLI_OPT_MAX_IMAGE_SIZE }, { \
                "no-pull", no_argument, NULL, CLI_OPT_NO_PULL                            \
        }
#define CLI_MAX_INSECURE 16
typedef struct cli_pull_args {
        tr_image_pull_opts opts;
        const char *insecure[CLI_MAX_INSECURE + 1];
        size_t n_insecure;
        bool no_pull;
} cli_pull_args;
/* 1 when `c` is one of CLI_PULL_LONG_OPTIONS (consumed), 0 when not,
 * CLI_EXIT_USAGE (already reported) for a bad value. */
int cli_pull_option(const char *cmd, cli_pull_args *a, int c, const char *arg);
/* `image pull`. */
int cli_image_pull(int argc, char **argv);
/* `image ls` and `image rm` (image_ls.c). */
int cli_image_ls_rm(int argc, char **argv);
/* Where exec -b kata --image keeps the VM root images it converts. */
#define CLI_VM_IMAGE_CACHE "/var/lib/toolruntime/vm/images"
/* The VM root image for bo->image (vm_image.c): pulled first when missing
 * and bo->pull allows it (hardened: pinned refs only), converted once per
 * digest into `dir` (NULL: CLI_VM_IMAGE_CACHE).  0, or an exit status
 * after printing the error. */
int cli_vm_image_for(const cli_backend_opts *bo, const char *dir, tr_profile profile, char **ret_path);
/* Drop the cached VM root image of `digest` (image rm). */
void cli_vm_image_drop(const char *dir, const char *digest);
/* gc: remove the cached VM root images no toolruntime image points at. */
int cli_vm_image_gc(const tr_containerd_config *cfg, const char *dir, bool verbose, unsigned *ret_removed);
/* Run argv[0] (a path) with argv, wait: its exit status, 128+signal, or -1. */
int cli_run_wait(char *const *argv);

/* `exec --server URL`: the execution a `toolruntime serve` runs (remote.c). */
typedef struct cli_remote_req {
        const char *server; /* http(s)://HOST:PORT or unix:PATH */
        const char *code;
        size_t code_len;
        const char *language, *profile, *backend; /* NULL: the server's default */
        int64_t timeout_ms;                       /* 0: the server's default */
        tr_limits limits;
        int64_t max_output; /* 0: the server's default */
        char **args;
        size_t n_args;
        const char *stdin_data; /* NULL: none */
        size_t stdin_len;
        const char *const *egress; /* --egress-allow entries */
        size_t n_egress;
        bool json;
        const char *path; /* NULL: /v1/execute; a session's /v1/sessions/ID/execute */
} cli_remote_req;
int cli_exec_remote(const cli_remote_req *r);
/* One HTTP call to a serve: a JSON `body`, or the bytes of `in_fd` (size
 * `in_size`, -1 unknown), or nothing; a 2xx response body goes to `out_fd`
 * when >= 0, any other into *ret_data.  0, or an exit status after printing
 * why (transport errors). */
typedef struct cli_remote_call_args {
        const char *server, *method, *path;
        const char *body;
        int in_fd;
        int64_t in_size;
        int out_fd;
        bool ndjson;
} cli_remote_call_args;
int cli_remote_call(const cli_remote_call_args *a, long *ret_status, char **ret_data, size_t *ret_len);
/* Print an {"code","message",...} error object; the exit status. */
int cli_remote_print_error(json_t *e);
/* Print an execution's result object as `exec` does; the exit status. */
int cli_remote_print_result(const char *server, long status, const char *data, size_t len, bool json);
/* `toolruntime session` (session.c). */
int cli_session(int argc, char **argv);

int cli_exec(int argc, char **argv);
int cli_doctor(int argc, char **argv);
int cli_image(int argc, char **argv);
int cli_gc(int argc, char **argv);
int cli_mcp(int argc, char **argv);
int cli_tools(int argc, char **argv);
int cli_serve(int argc, char **argv);

/* Print "toolruntime: <msg>" and the --help hint; returns CLI_EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Build a runtime with every backend this build has, configured from opts. */
int cli_runtime_new(const cli_backend_opts *o, tr_log_fn log, void *log_ud, tr_runtime **ret_rt, tr_error **ret_err);
/* Print an error for humans on stderr. */
void cli_print_error(const tr_error *err);
/* Directory holding the image recipes (installed or in the source tree). */
const char *cli_images_dir(void);
/* Output that came from the sandbox (its streams, error messages, tool
 * logs), written to f: escaped when f is a terminal unless --raw (term.c). */
extern bool cli_term_raw;
bool cli_term_escapes(FILE *f);
int cli_term_write(FILE *f, const char *s, size_t n);
/* The same for a stream that arrives in chunks: a UTF-8 sequence cut by a
 * chunk's end is held until the next chunk completes it (or _finish). */
typedef struct cli_term_stream {
        FILE *f;
        unsigned char held[3];
        size_t n_held;
} cli_term_stream;
int cli_term_stream_write(cli_term_stream *st, const char *s, size_t n);
int cli_term_stream_finish(cli_term_stream *st);
/* The verbose logger (stderr). */
void cli_log(void *ud, tr_log_level level, const char *msg, const char *const *kv);
/* The same for warnings and errors only (a tool's stderr is a warning):
 * the tools' logger without -v. */
void cli_log_warnings(void *ud, tr_log_level level, const char *msg, const char *const *kv);
/* The gateway the snippet may call: the tools of a manifest and MCP
 * servers, or an empty one. */
/* The registry behind it (NULL tools and no mcp: an empty registry). */
int cli_registry_new(const char *tools, const char **mcp, size_t n_mcp, const char **env, size_t n_env, tr_log_fn log,
                     void *log_ud, tr_tool_registry **ret_reg, tr_error **ret_err);
int cli_gateway_new(const char *tools, const char **mcp, size_t n_mcp, tr_log_fn log, void *log_ud, tr_gateway **ret_gw,
                    tr_error **ret_err);
/* The same, the MCP servers also getting the caller's variables `env`. */
int cli_gateway_new_env(const char *tools, const char **mcp, size_t n_mcp, const char **env, size_t n_env,
                        tr_log_fn log, void *log_ud, tr_gateway **ret_gw, tr_error **ret_err);
typedef void (*cli_doctor_line_fn)(const char *backend, bool ok, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
/* Per-backend doctor checks (in the backends' CLI files); true when usable. */
bool cli_doctor_containerd(const cli_backend_opts *o, cli_doctor_line_fn line);
bool cli_doctor_kata(const cli_backend_opts *o, cli_doctor_line_fn line);
void cli_containerd_config(const cli_backend_opts *o, tr_containerd_config *cfg);
void cli_kata_config(const cli_backend_opts *o, tr_kata_config *cfg);

/* sys.c: the CLI's own small helpers (it links only the public library).
 * NULL-terminated string vectors; reading an fd up to `max` bytes (the
 * buffer is NUL-terminated); a program by name on PATH, or a path.  The
 * int-returning ones return 0 or a negative errno. */
size_t cli_strv_len(char *const *v);
int cli_strv_push(char ***v, const char *s);
void cli_strv_free(char **v);
static inline void cli_strv_freep(char ***v) {
        cli_strv_free(*v);
}
int cli_read_fd(int fd, size_t max, char **ret_data, size_t *ret_len);
/* Exit with `status` now and finish in the background: in a forked child
 * that returns from here, out of the caller's session and with no hold on
 * its standard streams, what is left to do (freeing the runtime tears
 * down its sandboxes).  Does nothing (the caller finishes inline) when
 * another thread runs, since a fork copies only this one, or when fork
 * fails. */
void cli_exit_now_finish_later(int status);
int cli_find_executable(const char *name, char **ret_path);
