/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The MCP client against the reference server,
 * @modelcontextprotocol/server-everything (installed by
 * setup.sh): version negotiation, notifications arriving
 * before and between responses (it announces list_changed before answering
 * initialize), logging turned on mid-session, text / structured / image
 * results, a tool that makes the server ask us for sampling (which we
 * refuse), progress-reporting long operations, and schema validation of
 * arguments before anything reaches the server.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "toolruntime.h"
#include "tr-config.h"

#define EVERYTHING \
        TR_SOURCE_DIR "/tests/integration/gateway/node_modules/@modelcontextprotocol/server-everything/dist/index.js"

static tr_tool_registry *reg;
static tr_gateway *gw;

static void setup(void) {
        if (access(EVERYTHING, R_OK) != 0) {
                const char *ci = getenv("CI");
                if (ci && strcmp(ci, "true") == 0)
                        cr_assert_fail("server-everything missing: run tests/integration/gateway/setup.sh");
                cr_skip_test("server-everything not installed (tests/integration/gateway/setup.sh)");
        }
        tr_error *err = NULL;
        cr_assert_eq(tr_tool_registry_new(&reg, NULL), 0);
        tr_tool_registry_set_mcp_timeouts(reg, 20000, 15000);
        cr_assert_eq(tr_tool_registry_add_mcp(reg, "node " EVERYTHING " stdio", NULL, &err), 0, "%s",
                     err ? tr_error_message(err) : "");
        cr_assert_eq(tr_tool_registry_gateway(reg, &gw, NULL), 0);
}

static void teardown(void) {
        tr_gateway_free(gw);
        tr_tool_registry_free(reg);
}

TestSuite(mcp_everything, .init = setup, .fini = teardown, .timeout = 120);

static char *run_ok(const char *id, const char *args) {
        char *out = NULL;
        tr_error *err = NULL;
        cr_assert_eq(tr_gateway_run_tool(gw, NULL, id, args, &out, &err), 0, "%s: %s", id,
                     err ? tr_error_message(err) : "");
        return out;
}

static const char *ns(void) {
        /* Derived from serverInfo.name; find it through a search. */
        static char buf[128];
        char *out = NULL;
        cr_assert_eq(tr_gateway_search_tools(gw, NULL, "echo", 1, &out, NULL), 0);
        json_t *j = json_loads(out, 0, NULL);
        free(out);
        snprintf(buf, sizeof(buf), "%s", json_string_value(json_object_get(json_array_get(j, 0), "namespace")));
        json_decref(j);
        return buf;
}

static char *tid(const char *name) {
        static _Thread_local char buf[256];
        snprintf(buf, sizeof(buf), "%s:%s", ns(), name);
        return buf;
}

Test(mcp_everything, tools_listed) {
        cr_assert_geq(tr_tool_registry_count(reg), 10);
        char *out = NULL;
        cr_assert_eq(tr_gateway_describe_tool(gw, NULL, tid("get-sum"), TR_DETAIL_FULL, &out, NULL), 0);
        json_t *j = json_loads(out, 0, NULL);
        cr_assert_str_eq(json_string_value(json_object_get(j, "source")), "mcp");
        cr_assert(json_is_object(json_object_get(json_object_get(j, "input_schema"), "properties")));
        json_decref(j);
        free(out);
}

Test(mcp_everything, echo_sum_structured_image) {
        char *out = run_ok(tid("echo"), "{\"message\":\"hello gateway\"}");
        cr_assert(strstr(out, "hello gateway"), "%s", out);
        free(out);
        out = run_ok(tid("get-sum"), "{\"a\":2,\"b\":3}");
        cr_assert(strstr(out, "5"), "%s", out);
        free(out);
        out = run_ok(tid("get-structured-content"), "{\"location\":\"Chicago\"}");
        json_t *j = json_loads(out, 0, NULL);
        cr_assert(json_is_object(j), "%s", out);
        json_decref(j);
        free(out);
        out = run_ok(tid("get-tiny-image"), "{}");
        j = json_loads(out, 0, NULL);
        cr_assert(json_is_array(j), "image content stays an array: %.200s", out);
        json_decref(j);
        free(out);
}

Test(mcp_everything, logging_between_responses) {
        free(run_ok(tid("toggle-simulated-logging"), "{}"));
        for (int i = 0; i < 20; i++) {
                char *out = run_ok(tid("echo"), "{\"message\":\"x\"}");
                free(out);
                usleep(100000);
        }
}

Test(mcp_everything, long_running_with_progress) {
        char *out = run_ok(tid("trigger-long-running-operation"), "{\"duration\":1,\"steps\":3}");
        free(out);
}

Test(mcp_everything, sampling_request_refused_not_hung) {
        char *out = NULL;
        tr_error *err = NULL;
        int r = tr_gateway_run_tool(gw, NULL, tid("trigger-sampling-request"), "{\"prompt\":\"hi\"}", &out, &err);
        /* We offer no sampling capability: the server asks anyway or not;
         * either way the call ends (an error or a result), promptly. */
        if (r < 0)
                cr_assert_neq(tr_error_code(err), TR_E_TIMEOUT, "%s", tr_error_message(err));
        tr_error_free(err);
        free(out);
        /* The session is still usable. */
        free(run_ok(tid("echo"), "{\"message\":\"still here\"}"));
}

Test(mcp_everything, arguments_validated_first) {
        char *out = NULL;
        tr_error *err = NULL;
        cr_assert_lt(tr_gateway_run_tool(gw, NULL, tid("get-sum"), "{\"a\":\"two\",\"b\":3}", &out, &err), 0);
        cr_assert_eq(tr_error_code(err), TR_E_INVALID_ARGUMENTS);
        tr_error_free(err);
        err = NULL;
        cr_assert_lt(
                tr_gateway_run_tool(gw, NULL, tid("get-structured-content"), "{\"location\":\"Atlantis\"}", &out, &err),
                0);
        cr_assert_eq(tr_error_code(err), TR_E_INVALID_ARGUMENTS);
        tr_error_free(err);
}
