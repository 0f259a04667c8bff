/* SPDX-License-Identifier: Apache-2.0 */
/* The MCP client: parser, and servers that misbehave in every way. */
#include <criterion/criterion.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gateway/mcp.h"
#include "toolruntime.h"
#include "helpers.h"
#include "util/strv.h"

Test(gw_mcp, classify) {
        const struct {
                const char *s;
                tr__mcp_kind k;
        } cases[] = {
                { "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}", TR__MCP_RESPONSE },
                { "{\"jsonrpc\":\"2.0\",\"id\":\"a\",\"error\":{\"code\":1,\"message\":\"x\"}}", TR__MCP_ERROR },
                { "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"ping\"}", TR__MCP_REQUEST },
                { "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{}}", TR__MCP_NOTIFICATION },
                { "{\"jsonrpc\":\"1.0\",\"id\":1,\"result\":{}}", TR__MCP_INVALID },
                { "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{},\"error\":{}}", TR__MCP_INVALID },
                { "{\"jsonrpc\":\"2.0\",\"id\":[1],\"result\":{}}", TR__MCP_INVALID },
                { "{\"jsonrpc\":\"2.0\",\"method\":7}", TR__MCP_INVALID },
                { "{\"jsonrpc\":\"2.0\"}", TR__MCP_INVALID },
                { "3", TR__MCP_INVALID },
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                json_t *j = json_loads(cases[i].s, JSON_DECODE_ANY, NULL);
                tr__mcp_msg m;
                cr_assert_eq(tr__mcp_classify(j, &m), cases[i].k, "%s", cases[i].s);
                json_decref(j);
        }
}

Test(gw_mcp, convert) {
        json_t *r = json_loads("{\"content\":[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"text\",\"text\":\"b\"}]}",
                               0, NULL);
        json_t *out = NULL;
        cr_assert_eq(tr__mcp_convert_result(r, &out, NULL), 0);
        cr_assert_str_eq(json_string_value(out), "a\nb");
        json_decref(out);
        json_decref(r);
        r = json_loads("{\"content\":[{\"type\":\"image\",\"data\":\"AA\"}],\"structuredContent\":{\"x\":1}}", 0, NULL);
        cr_assert_eq(tr__mcp_convert_result(r, &out, NULL), 0);
        cr_assert_eq(json_integer_value(json_object_get(out, "x")), 1);
        json_decref(out);
        json_decref(r);
        r = json_loads("{\"content\":[{\"type\":\"text\",\"text\":\"bad \\u001b[31m\"}],\"isError\":true}", 0, NULL);
        tr_error *err = NULL;
        cr_assert_lt(tr__mcp_convert_result(r, &out, &err), 0);
        cr_assert_eq(tr_error_code(err), TR_E_TOOL_FAILED);
        cr_assert_null(strchr(tr_error_message(err), 0x1b));
        tr_error_free(err);
        json_decref(r);
}

Test(gw_mcp, split_command) {
        char **v = NULL;
        cr_assert_eq(tr__split_command("node  'a b' \"c\\\"d\" e\\ f", &v, NULL), 0);
        cr_assert_eq(tr__strv_len(v), 4);
        cr_assert_str_eq(v[1], "a b");
        cr_assert_str_eq(v[2], "c\"d");
        cr_assert_str_eq(v[3], "e f");
        tr__strv_free(v);
        cr_assert_lt(tr__split_command("a 'b", &v, NULL), 0);
        cr_assert_lt(tr__split_command("   ", &v, NULL), 0);
}

/* A scripted fake server: python3 -c SCRIPT.  The prelude answers
 * initialize/tools/list like a real server; each test adds a tools/call
 * behaviour. */
static const char prelude[] =
        "import json,sys,time\n"
        "def send(m):\n"
        "    sys.stdout.write(json.dumps(m)+'\\n'); sys.stdout.flush()\n"
        "for line in sys.stdin:\n"
        "    try: m=json.loads(line)\n"
        "    except Exception: continue\n"
        "    mid=m.get('id'); meth=m.get('method')\n"
        "    if mid is None: continue\n"
        "    if meth=='initialize':\n"
        "        send({'jsonrpc':'2.0','id':mid,'result':{'protocolVersion':VERSION,'capabilities':{'tools':{}},"
        "'serverInfo':{'name':'fake'}}})\n"
        "    elif meth=='tools/list':\n"
        "        send({'jsonrpc':'2.0','id':mid,'result':{'tools':[{'name':'t','inputSchema':{'type':'object'}},"
        "{'name':'bad name!','inputSchema':{'type':'object'}},{'name':'noschema','inputSchema':{'type':'string'}},"
        "{'name':'huge','description':'x'*100000,'inputSchema':{'type':'object'}}]}})\n"
        "    elif meth=='tools/call':\n";

static tr_gateway *fake(const char *version, const char *call_body, int64_t call_ms, tr_tool_registry **ret_reg,
                        tr_error **ret_err) {
        char *script = NULL;
        cr_assert(asprintf(&script, "VERSION=%s\n%s%s", version, prelude, call_body) > 0);
        tr_tool_registry *reg = NULL;
        cr_assert_eq(tr_tool_registry_new(&reg, NULL), 0);
        tr_tool_registry_set_mcp_timeouts(reg, 3000, call_ms);
        const char *argv[] = { "python3", "-c", script, NULL };
        int r = tr_tool_registry_add_mcp_argv(reg, argv, "f", ret_err);
        free(script);
        if (r < 0) {
                tr_tool_registry_free(reg);
                return NULL;
        }
        tr_gateway *gw = NULL;
        cr_assert_eq(tr_tool_registry_gateway(reg, &gw, NULL), 0);
        *ret_reg = reg;
        return gw;
}

static tr_code call_code(tr_gateway *gw, char **out) {
        tr_error *err = NULL;
        *out = NULL;
        if (tr_gateway_run_tool(gw, NULL, "f:t", "{}", out, &err) == 0)
                return TR_OK;
        tr_code c = tr_error_code(err);
        tr_error_free(err);
        return c;
}

Test(gw_mcp, noisy_server_works, .timeout = 60) {
        /* Logs, progress, a ping and a sampling request before the answer,
         * plus garbage and a stale response id. */
        tr_tool_registry *reg;
        tr_gateway *gw = fake(
                "'2024-11-05'",
                "        "
                "send({'jsonrpc':'2.0','method':'notifications/message','params':{'level':'info','data':'x'}})\n"
                "        "
                "send({'jsonrpc':'2.0','method':'notifications/progress','params':{'progressToken':1,'progress':1}})\n"
                "        sys.stdout.write('garbage\\n'); sys.stdout.flush()\n"
                "        send({'jsonrpc':'2.0','id':'srv-1','method':'ping'})\n"
                "        send({'jsonrpc':'2.0','id':'srv-2','method':'sampling/createMessage','params':{}})\n"
                "        send({'jsonrpc':'2.0','id':99999,'result':{}})\n"
                "        send([{'jsonrpc':'2.0','method':'notifications/message','params':{}},"
                "{'jsonrpc':'2.0','id':mid,'result':{'content':[{'type':'text','text':'ok'}]}}])\n",
                5000, &reg, NULL);
        cr_assert_not_null(gw);
        /* Only the valid tool survived: the bad name and the bad schema were
         * skipped, the huge description cut. */
        cr_assert_eq(tr_tool_registry_count(reg), 2);
        char *out;
        for (int i = 0; i < 3; i++) {
                cr_assert_eq(call_code(gw, &out), TR_OK);
                cr_assert_str_eq(out, "\"ok\"");
                free(out);
        }
        tr_gateway_free(gw);
        tr_tool_registry_free(reg);
}

Test(gw_mcp, hanging_server_times_out, .timeout = 60) {
        tr_tool_registry *reg;
        tr_gateway *gw = fake("'2025-06-18'", "        time.sleep(60)\n", 500, &reg, NULL);
        cr_assert_not_null(gw);
        char *out;
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        cr_assert_eq(call_code(gw, &out), TR_E_TIMEOUT);
        clock_gettime(CLOCK_MONOTONIC, &b);
        cr_assert_lt(b.tv_sec - a.tv_sec, 3);
        tr_gateway_free(gw);
        clock_gettime(CLOCK_MONOTONIC, &a);
        tr_tool_registry_free(reg);
        clock_gettime(CLOCK_MONOTONIC, &b);
        cr_assert_lt(b.tv_sec - a.tv_sec, 3, "freeing must not wait for a hung server");
}

Test(gw_mcp, exiting_server_restarts, .timeout = 60) {
        tr_tool_registry *reg;
        tr_gateway *gw = fake("'2025-03-26'", "        sys.exit(0)\n", 2000, &reg, NULL);
        cr_assert_not_null(gw);
        char *out;
        /* Each call: the server dies; restarts are bounded. */
        for (int i = 0; i < 6; i++)
                cr_assert_eq(call_code(gw, &out), TR_E_TOOL_FAILED);
        tr_gateway_free(gw);
        tr_tool_registry_free(reg);
}

Test(gw_mcp, garbage_server, .timeout = 60) {
        tr_tool_registry *reg;
        tr_gateway *gw = fake("'2025-06-18'",
                              "        for i in range(200): sys.stdout.write('{{{ garbage\\n')\n"
                              "        sys.stdout.flush()\n",
                              3000, &reg, NULL);
        cr_assert_not_null(gw);
        char *out;
        cr_assert_eq(call_code(gw, &out), TR_E_PROTOCOL);
        tr_gateway_free(gw);
        tr_tool_registry_free(reg);
}

Test(gw_mcp, huge_line, .timeout = 60) {
        tr_tool_registry *reg;
        tr_gateway *gw = fake("'2025-06-18'",
                              "        sys.stdout.write('x'*(5*1024*1024)); sys.stdout.flush(); time.sleep(10)\n", 5000,
                              &reg, NULL);
        cr_assert_not_null(gw);
        char *out;
        cr_assert_eq(call_code(gw, &out), TR_E_PROTOCOL);
        tr_gateway_free(gw);
        tr_tool_registry_free(reg);
}

Test(gw_mcp, wrong_version, .timeout = 60) {
        tr_tool_registry *reg = NULL;
        tr_error *err = NULL;
        tr_gateway *gw = fake("'1999-01-01'", "        pass\n", 1000, &reg, &err);
        cr_assert_null(gw);
        cr_assert_eq(tr_error_code(err), TR_E_PROTOCOL);
        tr_error_free(err);
}

Test(gw_mcp, not_a_server, .timeout = 60) {
        tr_tool_registry *reg = NULL;
        tr_error *err = NULL;
        cr_assert_eq(tr_tool_registry_new(&reg, NULL), 0);
        tr_tool_registry_set_mcp_timeouts(reg, 500, 500);
        cr_assert_lt(tr_tool_registry_add_mcp(reg, "sleep 30", NULL, &err), 0);
        cr_assert_eq(tr_error_code(err), TR_E_TIMEOUT);
        tr_error_free(err);
        err = NULL;
        cr_assert_lt(tr_tool_registry_add_mcp(reg, "true", NULL, &err), 0);
        cr_assert_eq(tr_error_code(err), TR_E_TOOL_FAILED);
        tr_error_free(err);
        err = NULL;
        cr_assert_lt(tr_tool_registry_add_mcp(reg, "/nonexistent/server", NULL, &err), 0);
        tr_error_free(err);
        tr_tool_registry_free(reg);
}

/* A server that hangs on its first tools/call (the marker file records the
 * pid that hung) and answers every later one: after the timeout it is
 * killed and restarted, so the next call does not queue behind the hung
 * one for its full budget. */
Test(gw_mcp, hung_server_is_replaced, .timeout = 60) {
        char dir[] = "/tmp/tgw-mcp-XXXXXX";
        cr_assert_not_null(mkdtemp(dir));
        char mark[128], *body = NULL;
        snprintf(mark, sizeof(mark), "%s/hung", dir);
        cr_assert(
                asprintf(
                        &body,
                        "        import os\n"
                        "        if not os.path.exists('%s'):\n"
                        "            open('%s','w').write(str(os.getpid())); time.sleep(60)\n"
                        "        send({'jsonrpc':'2.0','id':mid,'result':{'content':[{'type':'text','text':'ok'}]}})\n",
                        mark, mark) > 0);
        tr_tool_registry *reg;
        tr_gateway *gw = fake("'2025-06-18'", body, 1500, &reg, NULL);
        free(body);
        cr_assert_not_null(gw);
        char *out;
        cr_assert_eq(call_code(gw, &out), TR_E_TIMEOUT);
        pid_t hung = 0;
        cr_assert_eq(tgw_read_pids(mark, &hung, 1, 1000), 1);
        cr_assert(tgw_wait_gone(hung, 1000), "the hung server must be killed");
        /* Before the fix the server stayed busy with the hung request and
         * every later call timed out behind it. */
        for (int i = 0; i < 3; i++) {
                cr_assert_eq(call_code(gw, &out), TR_OK, "call %d after the timeout", i);
                cr_assert_str_eq(out, "\"ok\"");
                free(out);
        }
        tr_gateway_free(gw);
        tr_tool_registry_free(reg);
        unlink(mark);
        rmdir(dir);
}

/* A call abandoned because its execution ends (the session is freed) stops
 * waiting at once, long before the server's 30 s budget. */
typedef struct mcp_stop {
        char mark[128];
        double t_stop;
} mcp_stop;

static void client_stop_mcp_call(int fd, void *ud) {
        mcp_stop *c = ud;
        cr_assert_eq(tgw_send(fd, "run_tool", 1, "{\"id\":\"f:t\"}"), 0);
        pid_t srv = 0;
        cr_assert_eq(tgw_read_pids(c->mark, &srv, 1, 10000), 1, "the call did not reach the server");
        usleep(200000);
        c->t_stop = tgw_now_s();
}

Test(gw_mcp, session_end_abandons_call, .timeout = 60) {
        char dir[] = "/tmp/tgw-mcp-XXXXXX";
        cr_assert_not_null(mkdtemp(dir));
        mcp_stop c = { 0 };
        snprintf(c.mark, sizeof(c.mark), "%s/busy", dir);
        char *body = NULL;
        cr_assert(asprintf(&body,
                           "        import os\n"
                           "        open('%s','w').write(str(os.getpid())); time.sleep(60)\n",
                           c.mark) > 0);
        tr_tool_registry *reg;
        tr_gateway *gw = fake("'2025-06-18'", body, 30000, &reg, NULL);
        free(body);
        cr_assert_not_null(gw);
        tr_result *res = tgw_run(gw, NULL, false, client_stop_mcp_call, &c);
        double took = tgw_now_s() - c.t_stop;
        cr_assert_lt(took, 2.0, "freeing the session waited %.1f s for the MCP call", took);
        cr_assert_eq(tr_result_tool_call_count(res), 1);
        cr_assert_str_eq(tr_result_tool_call_at(res, 0)->error_code, "cancelled");
        tr_result_free(res);
        tr_gateway_free(gw);
        tr_tool_registry_free(reg);
        unlink(c.mark);
        rmdir(dir);
}

/* Lines split across reads, hundreds of lines in one read, and a response
 * line of several MiB arriving in small pieces: the line reader keeps its
 * place (and scans each byte once). */
Test(gw_mcp, lines_in_pieces, .timeout = 60) {
        tr_tool_registry *reg;
        tr_gateway *gw = fake(
                "'2025-06-18'",
                "        big='y'*(3*1024*1024)\n"
                "        msg=json.dumps({'jsonrpc':'2.0','id':mid,'result':{'content':[{'type':'text','text':big}],"
                "'structuredContent':{'n':len(big)}}})\n"
                "        noise=''.join(json.dumps({'jsonrpc':'2.0','method':'notifications/message',"
                "'params':{'i':i}})+'\\n' for i in range(500))\n"
                "        sys.stdout.write(noise+msg[:100]); sys.stdout.flush(); time.sleep(0.05)\n"
                "        for i in range(100, len(msg), 4000):\n"
                "            sys.stdout.write(msg[i:i+4000]); sys.stdout.flush()\n"
                "        sys.stdout.write('\\n'+noise[:50]); sys.stdout.flush(); time.sleep(0.05)\n"
                "        sys.stdout.write(noise[50:]); sys.stdout.flush()\n",
                10000, &reg, NULL);
        cr_assert_not_null(gw);
        for (int i = 0; i < 3; i++) {
                char *out = NULL;
                cr_assert_eq(call_code(gw, &out), TR_OK, "call %d", i);
                cr_assert_str_eq(out, "{\"n\":3145728}");
                free(out);
        }
        tr_gateway_free(gw);
        tr_tool_registry_free(reg);
}
