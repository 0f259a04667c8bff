/* SPDX-License-Identifier: Apache-2.0 */
/* The registry and its gateway: manifest tools, the example MCP server,
 * callbacks; search, describe, examples, run, chain; hostile tools. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"
#include "tr-config.h"
#include "util/macros.h"

#define MANIFEST   TR_SOURCE_DIR "/examples/tools.json"
#define MCP_SERVER "python3 " TR_SOURCE_DIR "/examples/mcp_server.py"

static json_t *parse(char *s) {
        json_t *j = json_loads(s, JSON_DECODE_ANY, NULL);
        cr_assert_not_null(j, "not JSON: %s", s);
        free(s);
        return j;
}

static int cb_mul(void *ud, const char *args, char **ret, tr_error **ret_err) {
        json_t *a = json_loads(args, 0, NULL);
        int *calls = ud;
        __atomic_add_fetch(calls, 1, __ATOMIC_SEQ_CST);
        char *s = NULL;
        cr_assert(asprintf(&s, "%lld",
                           (long long) (json_integer_value(json_object_get(a, "x")) *
                                        json_integer_value(json_object_get(a, "y")))) > 0);
        json_decref(a);
        *ret = s;
        return 0;
}

static int cb_bad(void *ud, const char *args, char **ret, tr_error **ret_err) {
        *ret = strdup("{not json");
        return 0;
}

static tr_tool_registry *make(int *calls) {
        tr_tool_registry *reg = NULL;
        tr_error *err = NULL;
        cr_assert_eq(tr_tool_registry_new(&reg, NULL), 0);
        cr_assert_eq(tr_tool_registry_add_manifest(reg, MANIFEST, &err), 0, "%s", err ? tr_error_message(err) : "");
        cr_assert_eq(tr_tool_registry_add_callback(reg, "c:mul", "Multiply x by y.",
                                                   "{\"type\":\"object\",\"properties\":{\"x\":{\"type\":\"integer\"},"
                                                   "\"y\":{\"type\":\"integer\"}},\"required\":[\"x\",\"y\"]}",
                                                   cb_mul, calls, &err),
                     0);
        cr_assert_eq(tr_tool_registry_add_callback(reg, "c:bad", "Returns garbage.", NULL, cb_bad, NULL, &err), 0);
        cr_assert_eq(tr_tool_registry_add_tag(reg, "c:mul", "Math", NULL), 0);
        cr_assert_eq(tr_tool_registry_add_example(reg, "c:mul", "6*7", "{\"x\":6,\"y\":7}", "42", NULL), 0);
        return reg;
}

Test(gw_registry, manifest_and_callbacks) {
        int calls = 0;
        tr_tool_registry *reg = make(&calls);
        cr_assert_eq(tr_tool_registry_count(reg), 6);
        tr_gateway *gw = NULL;
        cr_assert_eq(tr_tool_registry_gateway(reg, &gw, NULL), 0);
        /* The gateway keeps the registry alive. */
        tr_tool_registry_free(reg);

        char *out = NULL;
        tr_error *err = NULL;
        cr_assert_eq(tr_gateway_search_tools(gw, NULL, "math", 5, &out, NULL), 0);
        json_t *j = parse(out);
        cr_assert_eq(json_array_size(j), 2);
        json_decref(j);
        cr_assert_eq(tr_gateway_search_tools(gw, NULL, "add numbers", 5, &out, NULL), 0);
        j = parse(out);
        cr_assert_str_eq(json_string_value(json_object_get(json_array_get(j, 0), "id")), "demo:add");
        json_decref(j);

        cr_assert_eq(tr_gateway_search_tools(gw, NULL, "", 2, &out, NULL), 0);
        j = parse(out);
        cr_assert_eq(json_array_size(j), 2);
        json_decref(j);

        cr_assert_eq(tr_gateway_list_namespaces(gw, NULL, &out, NULL), 0);
        j = parse(out);
        cr_assert_eq(json_array_size(j), 2);
        json_decref(j);

        cr_assert_eq(tr_gateway_describe_tool(gw, NULL, "demo:add", TR_DETAIL_SUMMARY, &out, NULL), 0);
        j = parse(out);
        cr_assert_null(json_object_get(j, "input_schema"));
        json_decref(j);
        cr_assert_eq(tr_gateway_describe_tool(gw, NULL, "demo:add", TR_DETAIL_FULL, &out, NULL), 0);
        j = parse(out);
        cr_assert(json_is_object(json_object_get(j, "input_schema")));
        cr_assert_str_eq(json_string_value(json_object_get(j, "source")), "manifest");
        cr_assert_eq(json_array_size(json_object_get(j, "examples")), 1);
        json_decref(j);
        cr_assert_lt(tr_gateway_describe_tool(gw, NULL, "demo:nope", TR_DETAIL_FULL, &out, &err), 0);
        cr_assert_eq(tr_error_code(err), TR_E_TOOL_NOT_FOUND);
        tr_error_free(err);
        err = NULL;

        cr_assert_eq(tr_gateway_list_tool_examples(gw, NULL, "c:mul", 3, &out, NULL), 0);
        j = parse(out);
        cr_assert_eq(json_integer_value(json_object_get(json_array_get(j, 0), "result")), 42);
        json_decref(j);

        cr_assert_eq(tr_gateway_run_tool(gw, NULL, "demo:add", "{\"a\":2,\"b\":3.5}", &out, &err), 0, "%s",
                     err ? tr_error_message(err) : "");
        cr_assert_str_eq(out, "5.5");
        free(out);
        cr_assert_eq(tr_gateway_run_tool(gw, NULL, "demo:shout", "{\"text\":\"hi\",\"suffix\":\"!\"}", &out, NULL), 0);
        cr_assert_str_eq(out, "\"HI!\"");
        free(out);
        cr_assert_eq(tr_gateway_run_tool(gw, NULL, "demo:noop", "{\"k\":[1,2]}", &out, NULL), 0);
        cr_assert_str_eq(out, "{\"k\":[1,2]}");
        free(out);
        cr_assert_eq(tr_gateway_run_tool(gw, NULL, "c:mul", "{\"x\":6,\"y\":7}", &out, NULL), 0);
        cr_assert_str_eq(out, "42");
        free(out);

        /* Validation happens before the tool runs. */
        int before = calls;
        const char *bad_args[] = { "{\"x\":6}", "{\"x\":\"6\",\"y\":1}", "[1]", "{bad" };
        for (size_t i = 0; i < 4; i++) {
                cr_assert_lt(tr_gateway_run_tool(gw, NULL, "c:mul", bad_args[i], &out, &err), 0);
                cr_assert_eq(tr_error_code(err), TR_E_INVALID_ARGUMENTS, "%s", tr_error_message(err));
                tr_error_free(err);
                err = NULL;
        }
        cr_assert_eq(calls, before);
        cr_assert_lt(tr_gateway_run_tool(gw, NULL, "demo:shout", "{\"text\":\"a\",\"suffix\":\"#\"}", &out, &err), 0);
        cr_assert_eq(tr_error_code(err), TR_E_INVALID_ARGUMENTS);
        tr_error_free(err);
        err = NULL;
        cr_assert_lt(tr_gateway_run_tool(gw, NULL, "c:bad", "{}", &out, &err), 0);
        cr_assert_eq(tr_error_code(err), TR_E_TOOL_FAILED);
        tr_error_free(err);
        err = NULL;

        cr_assert_eq(tr_gateway_run_chain(gw, NULL,
                                          "[{\"tool_id\":\"c:mul\",\"args\":{\"x\":2,\"y\":3}},"
                                          "{\"tool_id\":\"demo:add\",\"args\":{\"b\":1},\"use_previous\":true,"
                                          "\"arg_name\":\"a\"}]",
                                          &out, &err),
                     0, "%s", err ? tr_error_message(err) : "");
        cr_assert_str_eq(out, "7");
        free(out);
        tr_gateway_free(gw);
}

static int64_t mono_ns(void) {
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        return (int64_t) t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* A direct caller's call context: its deadline cuts a tool's own (30 s)
 * timeout short, and its cancel token kills the tool at once. */
Test(gw_registry, call_context_deadline_and_cancel) {
        tr_tool_registry *reg = NULL;
        cr_assert_eq(tr_tool_registry_new(&reg, NULL), 0);
        const char *m = "{\"namespace\":\"c\",\"tools\":["
                        "{\"name\":\"hang\",\"command\":[\"sh\",\"-c\",\"sleep 30 & sleep 30\"]}]}";
        cr_assert_eq(tr_tool_registry_add_manifest_json(reg, m, NULL, NULL), 0);
        tr_gateway *gw = NULL;
        cr_assert_eq(tr_tool_registry_gateway(reg, &gw, NULL), 0);
        tr_tool_registry_free(reg);

        tr_call_ctx *ctx = NULL;
        int64_t t0 = mono_ns();
        cr_assert_eq(tr_call_ctx_new(t0 + 300000000LL, NULL, &ctx, NULL), 0);
        cr_assert_eq(tr_call_ctx_deadline_ns(ctx), t0 + 300000000LL);
        cr_assert_not(tr_call_ctx_cancelled(ctx));
        char *out = NULL;
        tr_error *err = NULL;
        cr_assert_lt(tr_gateway_run_tool(gw, ctx, "c:hang", "{}", &out, &err), 0);
        cr_assert_eq(tr_error_code(err), TR_E_TIMEOUT, "%s", tr_error_message(err));
        cr_assert_lt(mono_ns() - t0, 3000000000LL, "the context's deadline must stop the tool");
        tr_error_free(err);
        err = NULL;
        tr_call_ctx_free(ctx);

        tr_cancel *cancel = NULL;
        cr_assert_eq(tr_cancel_new(&cancel, NULL), 0);
        cr_assert_eq(tr_call_ctx_new(0, cancel, &ctx, NULL), 0);
        int fds[TR_CALL_MAX_CANCEL_FDS];
        cr_assert_eq(tr_call_ctx_cancel_fds(ctx, fds, TR_CALL_MAX_CANCEL_FDS), 1);
        cr_assert_eq(fds[0], tr_cancel_fd(cancel));
        tr_cancel_cancel(cancel);
        cr_assert(tr_call_ctx_cancelled(ctx));
        t0 = mono_ns();
        cr_assert_lt(tr_gateway_run_tool(gw, ctx, "c:hang", "{}", &out, &err), 0);
        cr_assert_eq(tr_error_code(err), TR_E_CANCELLED, "%s", tr_error_message(err));
        cr_assert_lt(mono_ns() - t0, 3000000000LL);
        tr_error_free(err);
        tr_call_ctx_free(ctx);
        tr_cancel_free(cancel);
        /* No context: no deadline, nothing to cancel. */
        cr_assert_eq(tr_call_ctx_deadline_ns(NULL), 0);
        cr_assert_eq(tr_call_ctx_cancel_fds(NULL, fds, TR_CALL_MAX_CANCEL_FDS), 0);
        tr_gateway_free(gw);
}

Test(gw_registry, hostile_manifest_tools) {
        tr_tool_registry *reg = NULL;
        tr_error *err = NULL;
        cr_assert_eq(tr_tool_registry_new(&reg, NULL), 0);
        const char *m = "{\"namespace\":\"h\",\"tools\":["
                        "{\"name\":\"hang\",\"command\":[\"sh\",\"-c\",\"sleep 30 & sleep 30\"],\"timeout_ms\":300},"
                        "{\"name\":\"flood\",\"command\":[\"sh\",\"-c\",\"yes\"],\"max_output_bytes\":1000},"
                        "{\"name\":\"fail\",\"command\":[\"sh\",\"-c\",\"echo boom >&2; exit 3\"]},"
                        "{\"name\":\"garbage\",\"command\":[\"sh\",\"-c\",\"echo not json\"]},"
                        "{\"name\":\"silent\",\"command\":[\"true\"]},"
                        "{\"name\":\"noread\",\"command\":[\"sh\",\"-c\",\"exec 0<&-; echo 1\"]},"
                        "{\"name\":\"missing\",\"command\":[\"/nonexistent/tool\"]}]}";
        cr_assert_eq(tr_tool_registry_add_manifest_json(reg, m, NULL, &err), 0, "%s", err ? tr_error_message(err) : "");
        tr_gateway *gw = NULL;
        cr_assert_eq(tr_tool_registry_gateway(reg, &gw, NULL), 0);
        tr_tool_registry_free(reg);
        char *out = NULL;
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        cr_assert_lt(tr_gateway_run_tool(gw, NULL, "h:hang", "{}", &out, &err), 0);
        clock_gettime(CLOCK_MONOTONIC, &b);
        cr_assert_eq(tr_error_code(err), TR_E_TIMEOUT);
        cr_assert_lt(b.tv_sec - a.tv_sec, 3, "the timeout must kill the whole group promptly");
        tr_error_free(err);
        err = NULL;
        cr_assert_lt(tr_gateway_run_tool(gw, NULL, "h:flood", "{}", &out, &err), 0);
        cr_assert_eq(tr_error_code(err), TR_E_TOOL_FAILED);
        tr_error_free(err);
        err = NULL;
        cr_assert_lt(tr_gateway_run_tool(gw, NULL, "h:fail", "{}", &out, &err), 0);
        /* Its stderr is the host's (logged), not the sandbox's. */
        cr_assert(!strstr(tr_error_message(err), "boom"), "%s", tr_error_message(err));
        cr_assert(strstr(tr_error_message(err), "exit status 3"), "%s", tr_error_message(err));
        tr_error_free(err);
        err = NULL;
        cr_assert_lt(tr_gateway_run_tool(gw, NULL, "h:garbage", "{}", &out, &err), 0);
        cr_assert_eq(tr_error_code(err), TR_E_TOOL_FAILED);
        tr_error_free(err);
        err = NULL;
        cr_assert_eq(tr_gateway_run_tool(gw, NULL, "h:silent", "{}", &out, NULL), 0);
        cr_assert_str_eq(out, "null");
        free(out);
        /* Large input to a tool that closes stdin: EPIPE, not SIGPIPE. */
        char *big = malloc(300000);
        memset(big, 'x', 300000);
        memcpy(big, "{\"k\":\"", 6);
        memcpy(big + 300000 - 3, "\"}", 3);
        cr_assert_eq(tr_gateway_run_tool(gw, NULL, "h:noread", big, &out, &err), 0, "%s",
                     err ? tr_error_message(err) : "");
        free(out);
        free(big);
        cr_assert_lt(tr_gateway_run_tool(gw, NULL, "h:missing", "{}", &out, &err), 0);
        cr_assert_eq(tr_error_code(err), TR_E_TOOL_FAILED);
        tr_error_free(err);
        tr_gateway_free(gw);
}

Test(gw_registry, invalid_manifests) {
        const char *bad[] = {
                "[]",
                "{\"tools\":[{\"name\":\"x\",\"command\":[\"true\"]}]}", /* no namespace */
                "{\"namespace\":\"n\",\"tools\":[{\"name\":\"x\"}]}",    /* no command */
                "{\"namespace\":\"n\",\"tools\":[{\"name\":\"x y\",\"command\":[\"true\"]}]}",
                "{\"namespace\":\"n\",\"tools\":[{\"name\":\"x\",\"command\":\"true\"}]}",
                "{\"namespace\":\"n\",\"tools\":[{\"name\":\"x\",\"command\":[\"true\"]},{\"name\":\"x\",\"command\":["
                "\"true\"]}]}",
                "{\"namespace\":\"n\",\"tools\":[{\"name\":\"x\",\"command\":[\"true\"],\"input_schema\":{\"type\":"
                "\"array\"}}]}",
                "{\"namespace\":\"n\",\"tools\":[{\"name\":\"x\",\"command\":[\"true\"],\"timeout_ms\":0}]}",
                "{\"namespace\":\"n\",\"tools\":[{\"name\":\"x\",\"command\":[\"true\"],\"tags\":[1]}]}",
                "{\"namespace\":\"n\",\"tools\":[{\"name\":\"x\",\"command\":[\"true\"],\"examples\":[{\"args\":1}]}]}",
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                tr_tool_registry *reg = NULL;
                tr_error *err = NULL;
                cr_assert_eq(tr_tool_registry_new(&reg, NULL), 0);
                cr_assert_lt(tr_tool_registry_add_manifest_json(reg, bad[i], NULL, &err), 0, "accepted: %s", bad[i]);
                cr_assert_eq(tr_tool_registry_count(reg), 0, "all or nothing");
                tr_error_free(err);
                tr_tool_registry_free(reg);
        }
}

Test(gw_registry, example_mcp_server) {
        tr_tool_registry *reg = NULL;
        tr_error *err = NULL;
        cr_assert_eq(tr_tool_registry_new(&reg, NULL), 0);
        cr_assert_eq(tr_tool_registry_add_mcp(reg, MCP_SERVER, NULL, &err), 0, "%s", err ? tr_error_message(err) : "");
        /* Paginated: one tool per page. */
        cr_assert_eq(tr_tool_registry_count(reg), 2);
        cr_assert_eq(tr_tool_registry_add_mcp(reg, MCP_SERVER, "second", &err), 0);
        cr_assert_lt(tr_tool_registry_add_mcp(reg, MCP_SERVER, "second", &err), 0);
        tr_error_free(err);
        err = NULL;
        tr_gateway *gw = NULL;
        cr_assert_eq(tr_tool_registry_gateway(reg, &gw, NULL), 0);
        char *out = NULL;
        cr_assert_eq(tr_gateway_search_tools(gw, NULL, "weather", 5, &out, NULL), 0);
        json_t *j = parse(out);
        cr_assert_geq(json_array_size(j), 1);
        cr_assert_str_eq(json_string_value(json_object_get(json_array_get(j, 0), "id")), "example-server:weather");
        json_decref(j);
        cr_assert_eq(tr_gateway_run_tool(gw, NULL, "example-server:weather", "{\"city\":\"Oslo\"}", &out, &err), 0,
                     "%s", err ? tr_error_message(err) : "");
        j = parse(out);
        cr_assert_str_eq(json_string_value(json_object_get(j, "city")), "Oslo");
        json_decref(j);
        cr_assert_eq(tr_gateway_run_tool(gw, NULL, "second:word_count", "{\"text\":\"a b c\"}", &out, NULL), 0);
        cr_assert_str_eq(out, "\"3\"");
        free(out);
        cr_assert_lt(tr_gateway_run_tool(gw, NULL, "second:weather", "{\"units\":\"metric\"}", &out, &err), 0);
        cr_assert_eq(tr_error_code(err), TR_E_INVALID_ARGUMENTS);
        tr_error_free(err);
        tr_gateway_free(gw);
        tr_tool_registry_free(reg);
}

/* End to end through the session: the sandbox's view. */
static void client_e2e(int fd, void *ud) {
        for (int i = 0; i < 3; i++) {
                json_t *r = tgw_call(fd, "run_tool", "{\"id\":\"c:mul\",\"args\":{\"x\":2,\"y\":2}}");
                const char *type = json_string_value(json_object_get(r, "type"));
                cr_assert_str_eq(type, i < 2 ? "response" : "error");
                json_decref(r);
        }
}

Test(gw_registry, session_limits) {
        int calls = 0;
        tr_tool_registry *reg = make(&calls);
        tr_gateway *gw = NULL;
        cr_assert_eq(tr_tool_registry_gateway(reg, &gw, NULL), 0);
        tr_limits lim = { .max_tool_calls = 2 };
        tr_result *res = tgw_run(gw, &lim, false, client_e2e, NULL);
        cr_assert_eq(calls, 2);
        cr_assert_eq(tr_result_tool_call_count(res), 3);
        tr_result_free(res);
        tr_gateway_free(gw);
        tr_tool_registry_free(reg);
}

/* Parallel executions from threads share one registry: each gets its own
 * session, limits and records. */
typedef struct par {
        tr_gateway *gw;
        int failures;
        size_t records;
} par;

static void client_par(int fd, void *ud) {
        par *p = ud;
        const char *calls[] = {
                "{\"id\":\"c:mul\",\"args\":{\"x\":3,\"y\":3}}",
                "{\"id\":\"demo:add\",\"args\":{\"a\":1,\"b\":2}}",
                "{\"id\":\"ex:word_count\",\"args\":{\"text\":\"a b c d\"}}",
        };
        for (int i = 0; i < 9; i++) {
                json_t *r = tgw_call(fd, "run_tool", calls[i % 3]);
                const char *type = json_string_value(json_object_get(r, "type"));
                /* Calls 0..5 fit in the limit of 6, the rest must be refused. */
                if (strcmp(type, i < 6 ? "response" : "error") != 0)
                        __atomic_add_fetch(&p->failures, 1, __ATOMIC_SEQ_CST);
                json_decref(r);
        }
}

static void *par_thread(void *arg) {
        par *p = arg;
        tr_limits lim = { .max_tool_calls = 6 };
        tr_result *res = tgw_run(p->gw, &lim, true, client_par, p);
        p->records = tr_result_tool_call_count(res);
        tr_result_free(res);
        return NULL;
}

Test(gw_registry, parallel_executions) {
        int calls = 0;
        tr_tool_registry *reg = make(&calls);
        tr_error *err = NULL;
        cr_assert_eq(tr_tool_registry_add_mcp(reg, MCP_SERVER, "ex", &err), 0, "%s", err ? tr_error_message(err) : "");
        tr_gateway *gw = NULL;
        cr_assert_eq(tr_tool_registry_gateway(reg, &gw, NULL), 0);
        tr_tool_registry_free(reg);
        enum { N = 4 };
        pthread_t t[N];
        par p[N];
        for (int i = 0; i < N; i++) {
                p[i] = (par){ .gw = gw };
                cr_assert_eq(pthread_create(&t[i], NULL, par_thread, &p[i]), 0);
        }
        for (int i = 0; i < N; i++) {
                pthread_join(t[i], NULL);
                cr_assert_eq(p[i].failures, 0);
                cr_assert_eq(p[i].records, 9);
        }
        cr_assert_eq(calls, 2 * N);
        tr_gateway_free(gw);
}

/* ---- the tools' environment and stderr (a minimal environment; stderr to
 * the host's log, never into the sandbox) ---- */

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char logged[8192];

static void collect_log(void *ud, tr_log_level level, const char *msg, const char *const *kv) {
        pthread_mutex_lock(&log_lock);
        size_t n = strlen(logged);
        n += (size_t) snprintf(logged + n, sizeof(logged) - n, "%s:", msg);
        for (size_t i = 0; kv && kv[i] && kv[i + 1] && n < sizeof(logged); i += 2)
                n += (size_t) snprintf(logged + n, sizeof(logged) - n, " %s=%s", kv[i], kv[i + 1]);
        if (n < sizeof(logged))
                snprintf(logged + n, sizeof(logged) - n, "\n");
        pthread_mutex_unlock(&log_lock);
}

static const char env_tool_manifest[] =
        "{\"namespace\": \"e\", \"env\": [\"TR_TEST_SHARED\"], \"tools\": [{\"name\": \"env\", \"description\": "
        "\"env\","
        " \"env\": [\"TR_TEST_MINE\", \"TR_TEST_UNSET\"], \"command\": [\"/bin/sh\", \"-c\", \"cat >/dev/null; echo "
        "tool-complains >&2; python3 -c 'import os, json; print(json.dumps(dict(os.environ)))'; exit "
        "${TR_TEST_MINE#x}\"]}]}";

Test(gw_registry, tools_get_a_minimal_environment_and_their_stderr_is_logged) {
        setenv("TR_TEST_SECRET", "do-not-leak", 1);
        setenv("TR_TEST_SHARED", "shared", 1);
        setenv("TR_TEST_MINE", "x0", 1);
        unsetenv("TR_TEST_UNSET");
        tr_tool_registry *reg = NULL;
        tr_error *err = NULL;
        cr_assert_eq(tr_tool_registry_new(&reg, NULL), 0);
        logged[0] = '\0';
        tr_tool_registry_set_logger(reg, collect_log, NULL);
        cr_assert_eq(tr_tool_registry_add_manifest_json(reg, env_tool_manifest, "/tmp", &err), 0, "%s",
                     err ? tr_error_message(err) : "");
        tr_gateway *gw = NULL;
        cr_assert_eq(tr_tool_registry_gateway(reg, &gw, NULL), 0);
        char *out = NULL;
        cr_assert_eq(tr_gateway_run_tool(gw, NULL, "e:env", "{}", &out, &err), 0, "%s",
                     err ? tr_error_message(err) : "");
        json_t *env = parse(out);
        const char *keys[] = { "HOME", "LANG", "PATH", "TR_TEST_MINE", "TR_TEST_SHARED" };
        for (size_t i = 0; i < sizeof(keys) / sizeof(*keys); i++)
                cr_assert_not_null(json_object_get(env, keys[i]), "%s missing", keys[i]);
        /* Those and nothing else of ours (python3 and sh may add PWD and
         * the like, which say nothing about the caller). */
        const char *k;
        json_t *v;
        json_object_foreach(env, k, v) {
                cr_assert(strncmp(k, "TR_TEST_", 8) != 0 || streq(k, "TR_TEST_MINE") || streq(k, "TR_TEST_SHARED"),
                          "%s leaked", k);
                cr_assert(!strstr(json_string_value(v), "do-not-leak"), "%s leaked", k);
        }
        const char *home = json_string_value(json_object_get(env, "HOME"));
        struct stat st;
        cr_assert_eq(stat(home, &st), 0, "HOME %s", home);
        cr_assert(S_ISDIR(st.st_mode) && (st.st_mode & 077) == 0, "HOME %s is not private", home);
        char *home_copy = strdup(home);
        json_decref(env);
        cr_assert(strstr(logged, "tool stderr: tool=e:env stderr=tool-complains"), "log: %s", logged);

        /* A failing tool: the message the sandbox gets holds no stderr. */
        setenv("TR_TEST_MINE", "x3", 1);
        cr_assert_lt(tr_gateway_run_tool(gw, NULL, "e:env", "{}", &out, &err), 0);
        cr_assert_eq(tr_error_code(err), TR_E_TOOL_FAILED);
        cr_assert(!strstr(tr_error_message(err), "complains"), "%s", tr_error_message(err));
        cr_assert(strstr(tr_error_message(err), "exit status 3"), "%s", tr_error_message(err));
        tr_error_free(err);
        err = NULL;
        tr_gateway_free(gw);
        tr_tool_registry_free(reg);
        cr_assert_neq(stat(home_copy, &st), 0, "the private HOME outlived its registry");
        free(home_copy);
        unsetenv("TR_TEST_SECRET");
}

Test(gw_registry, env_names_are_checked) {
        static const char *bad[] = { "[\"PATH\"]", "[\"A=B\"]", "[\"\"]", "[1]", "\"HOME\"", "[\"1X\"]" };
        tr_tool_registry *reg = NULL;
        cr_assert_eq(tr_tool_registry_new(&reg, NULL), 0);
        for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
                char m[512];
                snprintf(m, sizeof(m),
                         "{\"tools\": [{\"id\": \"b:t\", \"description\": \"d\", \"command\": [\"true\"], \"env\": "
                         "%s}]}",
                         bad[i]);
                tr_error *err = NULL;
                cr_assert_lt(tr_tool_registry_add_manifest_json(reg, m, NULL, &err), 0, "%s accepted", bad[i]);
                cr_assert_eq(tr_error_code(err), TR_E_INVALID_REQUEST);
                tr_error_free(err);
        }
        tr_error *err = NULL;
        cr_assert_lt(tr_tool_registry_pass_env(reg, "LANG", &err), 0);
        tr_error_free(err);
        cr_assert_eq(tr_tool_registry_pass_env(reg, "TR_TEST_OK", NULL), 0);
        cr_assert_eq(tr_tool_registry_count(reg), 0);
        tr_tool_registry_free(reg);
}

/* A minimal MCP server: one tool "env" answering with its environment; it
 * complains on stderr at every call. */
static const char env_mcp_server[] =
        "import json, os, sys\n"
        "for line in sys.stdin:\n"
        "    m = json.loads(line)\n"
        "    if 'id' not in m: continue\n"
        "    meth = m['method']\n"
        "    if meth == 'initialize':\n"
        "        r = {'protocolVersion': '2025-06-18', 'capabilities': {}, 'serverInfo': {'name': 'envsrv'}}\n"
        "    elif meth == 'tools/list':\n"
        "        r = {'tools': [{'name': 'env', 'description': 'env', 'inputSchema': {'type': 'object'}}]}\n"
        "    else:\n"
        "        print('server-complains', file=sys.stderr, flush=True)\n"
        "        r = {'content': [{'type': 'text', 'text': json.dumps(dict(os.environ))}]}\n"
        "    print(json.dumps({'jsonrpc': '2.0', 'id': m['id'], 'result': r}), flush=True)\n";

Test(gw_registry, mcp_servers_get_a_minimal_environment_and_their_stderr_is_logged) {
        setenv("TR_TEST_SECRET", "do-not-leak", 1);
        setenv("TR_TEST_PASSED", "passed", 1);
        char path[] = "/tmp/tr-test-mcp-XXXXXX";
        int fd = mkstemp(path);
        cr_assert_geq(fd, 0);
        cr_assert_eq(write(fd, env_mcp_server, sizeof(env_mcp_server) - 1), (ssize_t) sizeof(env_mcp_server) - 1);
        close(fd);
        tr_tool_registry *reg = NULL;
        tr_error *err = NULL;
        cr_assert_eq(tr_tool_registry_new(&reg, NULL), 0);
        logged[0] = '\0';
        tr_tool_registry_set_logger(reg, collect_log, NULL);
        cr_assert_eq(tr_tool_registry_pass_env(reg, "TR_TEST_PASSED", NULL), 0);
        const char *argv[] = { "python3", path, NULL };
        cr_assert_eq(tr_tool_registry_add_mcp_argv(reg, argv, "s", &err), 0, "%s", err ? tr_error_message(err) : "");
        tr_gateway *gw = NULL;
        cr_assert_eq(tr_tool_registry_gateway(reg, &gw, NULL), 0);
        char *out = NULL;
        cr_assert_eq(tr_gateway_run_tool(gw, NULL, "s:env", "{}", &out, &err), 0, "%s",
                     err ? tr_error_message(err) : "");
        json_t *text = parse(out);
        json_t *env = json_loads(json_string_value(text), 0, NULL);
        cr_assert_not_null(env, "%s", json_string_value(text));
        cr_assert_str_eq(json_string_value(json_object_get(env, "TR_TEST_PASSED")), "passed");
        cr_assert_null(json_object_get(env, "TR_TEST_SECRET"));
        cr_assert_not_null(json_object_get(env, "HOME"));
        cr_assert(strncmp(json_string_value(json_object_get(env, "HOME")), "/tmp/toolruntime-tools-", 23) == 0);
        json_decref(env);
        json_decref(text);
        tr_gateway_free(gw);
        tr_tool_registry_free(reg);
        cr_assert(strstr(logged, "tool stderr: server=python3 stderr=server-complains"), "log: %s", logged);
        unlink(path);
        unsetenv("TR_TEST_SECRET");
}
