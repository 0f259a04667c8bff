/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The gateway end to end on the unsafe_host backend: a Python and an sh
 * snippet search, describe and run a manifest tool and an MCP tool, chain
 * two tools, hit --max-tool-calls on the third call with a catchable error;
 * a hostile snippet cannot crash or hang the host; and the round trip of
 * one run_tool to a no-op tool (median, measured inside the sandbox).
 *
 * The containerd and kata backends reuse the same snippets (see
 * tests/integration/gateway/snippets/) once they are registered.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "toolruntime.h"
#include "tr-config.h"

#define MANIFEST   TR_SOURCE_DIR "/examples/tools.json"
#define MCP_SERVER "python3 " TR_SOURCE_DIR "/examples/mcp_server.py"
#define SDK        TR_SOURCE_DIR "/sdk/python"

static int noop(void *ud, const char *args, char **ret, tr_error **ret_err) {
        *ret = strdup("{}");
        return 0;
}

static tr_gateway *make_gateway(void) {
        tr_tool_registry *reg = NULL;
        tr_error *err = NULL;
        cr_assert_eq(tr_tool_registry_new(&reg, NULL), 0);
        cr_assert_eq(tr_tool_registry_add_manifest(reg, MANIFEST, &err), 0, "%s", err ? tr_error_message(err) : "");
        cr_assert_eq(tr_tool_registry_add_mcp(reg, MCP_SERVER, "ex", &err), 0, "%s", err ? tr_error_message(err) : "");
        cr_assert_eq(tr_tool_registry_add_callback(reg, "bench:noop", "Does nothing.", NULL, noop, NULL, &err), 0);
        tr_gateway *gw = NULL;
        cr_assert_eq(tr_tool_registry_gateway(reg, &gw, NULL), 0);
        tr_tool_registry_free(reg);
        return gw;
}

static tr_result *run(tr_gateway *gw, const char *lang, const char *code, int64_t max_calls, int64_t timeout_ms) {
        tr_runtime *rt = NULL;
        tr_backend *b = NULL;
        tr_request *req = NULL;
        tr_result *res = NULL;
        tr_error *err = NULL;
        tr_unsafe_host_config cfg = { .size = sizeof(tr_unsafe_host_config), .sdk_path = SDK };
        cr_assert_eq(tr_runtime_new(&rt, NULL), 0);
        cr_assert_eq(tr_backend_unsafe_host_new(&cfg, &b, NULL), 0);
        cr_assert_eq(tr_runtime_add_backend(rt, b, NULL), 0);
        cr_assert_eq(tr_request_new(&req, NULL), 0);
        cr_assert_eq(tr_request_set_code(req, code, strlen(code), NULL), 0);
        cr_assert_eq(tr_request_set_language(req, lang, NULL), 0);
        tr_request_set_profile(req, TR_PROFILE_DEV);
        tr_request_set_gateway(req, gw);
        tr_request_set_timeout_ms(req, timeout_ms);
        tr_limits lim = { .max_tool_calls = max_calls };
        tr_request_set_limits(req, &lim);
        int r = tr_runtime_execute(rt, req, NULL, &res, &err);
        cr_assert_eq(r, 0, "execute: %s", err ? tr_error_message(err) : "");
        tr_request_free(req);
        tr_runtime_free(rt);
        return res;
}

static json_t *value(tr_result *res) {
        size_t n;
        const char *v = tr_result_value_json(res);
        cr_assert_not_null(v, "no __out; stdout=%s stderr=%s", tr_result_stdout(res, &n), tr_result_stderr(res, &n));
        json_t *j = json_loads(v, JSON_DECODE_ANY, NULL);
        cr_assert_not_null(j);
        return j;
}

static const char python_snippet[] =
        "from toolruntime import tools, ToolError\n"
        "out = {}\n"
        "out['search'] = [t['id'] for t in tools.search_tools('weather', limit=5)]\n"
        "out['ns'] = sorted(tools.list_namespaces())\n"
        "out['schema'] = tools.describe_tool('demo:add', detail='schema')['input_schema']['required']\n"
        "out['examples'] = len(tools.list_tool_examples('demo:add', 3))\n"
        "out['add'] = tools.run_tool('demo:add', {'a': 2, 'b': 3})\n"
        "out['chain'] = tools.run_chain([{'tool_id': 'ex:weather', 'args': {'city': 'Oslo'}},\n"
        "                                {'tool_id': 'demo:echo', 'use_previous': True, 'arg_name': 'w'}])\n"
        "try:\n"
        "    tools.run_tool('demo:add', {'a': 1, 'b': 1})\n"
        "except ToolError as e:\n"
        "    out['limit'] = e.code\n"
        "__out = out\n";

Test(gateway_e2e, python_snippet, .timeout = 60) {
        tr_gateway *gw = make_gateway();
        /* add + 2 chain steps = 3 calls; the fourth goes over. */
        tr_result *res = run(gw, "python", python_snippet, 3, 30000);
        json_t *v = value(res);
        cr_assert_str_eq(json_string_value(json_array_get(json_object_get(v, "search"), 0)), "ex:weather");
        cr_assert_eq(json_array_size(json_object_get(v, "ns")), 3);
        cr_assert_eq(json_array_size(json_object_get(v, "schema")), 2);
        cr_assert_eq(json_integer_value(json_object_get(v, "examples")), 1);
        cr_assert_eq(json_integer_value(json_object_get(v, "add")), 5);
        cr_assert_str_eq(json_string_value(json_object_get(json_object_get(json_object_get(v, "chain"), "w"), "city")),
                         "Oslo");
        cr_assert_str_eq(json_string_value(json_object_get(v, "limit")), "tool_limit");
        json_decref(v);
        cr_assert_eq(tr_result_tool_call_count(res), 4);
        cr_assert_str_eq(tr_result_tool_call_at(res, 1)->tool_id, "ex:weather");
        cr_assert_str_eq(tr_result_tool_call_at(res, 3)->error_code, "tool_limit");
        cr_assert_eq(tr_result_tool_call_at(res, 0)->backend, TR_BACKEND_UNSAFE_HOST);
        cr_assert(tr_result_limits_enforced(res)->tool_calls);
        tr_result_free(res);
        tr_gateway_free(gw);
}

static const char sh_snippet[] =
        "T=trtool; command -v trtool >/dev/null || T=\"python3 $PYTHONPATH/trtool\"\n"
        "$T search add 1 | grep -q demo:add || exit 10\n"
        "$T describe ex:word_count full | grep -q input_schema || exit 11\n"
        "[ \"$($T run demo:add '{\"a\":1,\"b\":2}')\" = 3 ] || exit 12\n"
        "[ \"$($T run ex:word_count '{\"text\":\"a b\"}')\" = '\"2\"' ] || exit 13\n"
        "$T run demo:add '{\"a\":1}' 2>err; [ $? = 1 ] && grep -q '^invalid_arguments' err || exit 14\n"
        "$T run demo:add '{\"a\":1,\"b\":1}' 2>err; [ $? = 1 ] && grep -q '^tool_limit' err || exit 15\n"
        "echo ok\n";

Test(gateway_e2e, sh_snippet, .timeout = 60) {
        tr_gateway *gw = make_gateway();
        tr_result *res = run(gw, "sh", sh_snippet, 3, 30000);
        size_t n;
        cr_assert_eq(tr_result_exit_code(res), 0, "stdout=%s stderr=%s", tr_result_stdout(res, &n),
                     tr_result_stderr(res, &n));
        /* add, word_count, add with invalid args (counted: it reached the host), the over-limit add. */
        cr_assert_eq(tr_result_tool_call_count(res), 4);
        tr_result_free(res);
        tr_gateway_free(gw);
}

static const char hostile_snippet[] =
        "import os, struct, json\n"
        "fd = int(os.environ['TOOLRUNTIME_GATEWAY'][3:])\n"
        "def rd():\n"
        "    h = b''\n"
        "    while len(h) < 4: h += os.read(fd, 4 - len(h))\n"
        "    n = struct.unpack('>I', h)[0]; b = b''\n"
        "    while len(b) < n: b += os.read(fd, n - len(b))\n"
        "    return json.loads(b)\n"
        "codes = []\n"
        "for junk in [b'garbage', b'\\xff\\xfe', b'[]', b'{\"type\":\"response\",\"id\":1}']:\n"
        "    os.write(fd, struct.pack('>I', len(junk)) + junk)\n"
        "    codes.append(rd()['payload']['code'])\n"
        "n = 3000\n"
        "for i in range(n):\n"
        "    m = json.dumps({'type': 'search_tools', 'id': i, 'payload': {'query': 'x'}}).encode()\n"
        "    os.write(fd, struct.pack('>I', len(m)) + m)\n"
        "    rd()\n"
        "os.write(fd, struct.pack('>I', 1 << 30) + b'x' * 1000)\n"
        "codes.append(rd()['payload']['code'])\n"
        "codes.append(len(os.read(fd, 10)))\n"
        "__out = codes\n";

Test(gateway_e2e, hostile_snippet, .timeout = 60) {
        tr_gateway *gw = make_gateway();
        tr_result *res = run(gw, "python", hostile_snippet, 0, 30000);
        json_t *v = value(res);
        for (int i = 0; i < 5; i++)
                cr_assert_str_eq(json_string_value(json_array_get(v, i)), "protocol_error");
        cr_assert_eq(json_integer_value(json_array_get(v, 5)), 0, "the host hangs up after a huge frame");
        json_decref(v);
        tr_result_free(res);
        tr_gateway_free(gw);
}

static const char bench_snippet[] =
        "import time\n"
        "from toolruntime import tools\n"
        "for _ in range(50): tools.run_tool('bench:noop', {})\n"
        "ts = []\n"
        "for _ in range(1000):\n"
        "    t = time.perf_counter(); tools.run_tool('bench:noop', {}); ts.append(time.perf_counter() - t)\n"
        "ts.sort()\n"
        "__out = {'median_us': ts[len(ts) // 2] * 1e6, 'p99_us': ts[int(len(ts) * 0.99)] * 1e6}\n";

Test(gateway_e2e, round_trip, .timeout = 60) {
        tr_gateway *gw = make_gateway();
        tr_result *res = run(gw, "python", bench_snippet, 0, 30000);
        json_t *v = value(res);
        double med = json_number_value(json_object_get(v, "median_us"));
        double p99 = json_number_value(json_object_get(v, "p99_us"));
        cr_log_info("unsafe_host run_tool round trip: median %.0f us, p99 %.0f us", med, p99);
        fprintf(stderr, "gateway round trip (unsafe_host, no-op callback tool): median %.0f us, p99 %.0f us\n", med,
                p99);
        cr_assert_lt(med, 2000.0);
        json_decref(v);
        tr_result_free(res);
        tr_gateway_free(gw);
}

/* A tool slower than the execution's timeout: the execution still ends on
 * time, because tool calls are cut at the execution's deadline. */
Test(gateway_e2e, tool_cut_at_execution_deadline, .timeout = 60) {
        tr_tool_registry *reg = NULL;
        tr_error *err = NULL;
        cr_assert_eq(tr_tool_registry_new(&reg, NULL), 0);
        cr_assert_eq(tr_tool_registry_add_manifest_json(
                             reg,
                             "{\"namespace\":\"s\",\"tools\":[{\"name\":\"sleep\",\"command\":[\"sleep\",\"30\"],"
                             "\"timeout_ms\":60000}]}",
                             NULL, &err),
                     0);
        tr_gateway *gw = NULL;
        cr_assert_eq(tr_tool_registry_gateway(reg, &gw, NULL), 0);
        tr_tool_registry_free(reg);

        tr_runtime *rt = NULL;
        tr_backend *b = NULL;
        tr_request *req = NULL;
        tr_result *res = NULL;
        tr_unsafe_host_config cfg = { .size = sizeof(tr_unsafe_host_config), .sdk_path = SDK };
        const char *code = "from toolruntime import tools\ntools.run_tool('s:sleep', {})\n";
        cr_assert_eq(tr_runtime_new(&rt, NULL), 0);
        cr_assert_eq(tr_backend_unsafe_host_new(&cfg, &b, NULL), 0);
        cr_assert_eq(tr_runtime_add_backend(rt, b, NULL), 0);
        cr_assert_eq(tr_request_new(&req, NULL), 0);
        cr_assert_eq(tr_request_set_code(req, code, strlen(code), NULL), 0);
        tr_request_set_profile(req, TR_PROFILE_DEV);
        tr_request_set_gateway(req, gw);
        tr_request_set_timeout_ms(req, 1000);
        struct timespec a, z;
        clock_gettime(CLOCK_MONOTONIC, &a);
        int r = tr_runtime_execute(rt, req, NULL, &res, &err);
        clock_gettime(CLOCK_MONOTONIC, &z);
        cr_assert_lt(r, 0);
        cr_assert_eq(tr_error_code(err), TR_E_TIMEOUT);
        cr_assert_lt(z.tv_sec - a.tv_sec, 5, "the execution must end near its 1 s timeout");
        cr_assert_eq(tr_result_tool_call_count(res), 1);
        cr_assert_str_eq(tr_result_tool_call_at(res, 0)->error_code, "timeout");
        tr_error_free(err);
        tr_result_free(res);
        tr_request_free(req);
        tr_runtime_free(rt);
        tr_gateway_free(gw);
}
