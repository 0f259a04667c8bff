/* SPDX-License-Identifier: Apache-2.0 */
/* The per-execution gateway server: protocol, limits, records, teardown. */
#include <criterion/criterion.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>

#include "gateway/frame.h"
#include "helpers.h"

static const char *type_of(json_t *m) {
        return json_string_value(json_object_get(m, "type"));
}
static const char *code_of(json_t *m) {
        return json_string_value(json_object_get(json_object_get(m, "payload"), "code"));
}

static void client_roundtrip(int fd, void *ud) {
        json_t *r = tgw_call(fd, "run_tool", "{\"id\":\"t:echo\",\"args\":{\"a\":1}}");
        cr_assert_str_eq(type_of(r), "response");
        cr_assert_eq(json_integer_value(json_object_get(json_object_get(r, "payload"), "a")), 1);
        json_decref(r);
        r = tgw_call(fd, "search_tools", "{\"query\":\"echo\",\"limit\":3}");
        cr_assert_str_eq(type_of(r), "response");
        cr_assert(json_is_array(json_object_get(r, "payload")));
        json_decref(r);
        r = tgw_call(fd, "list_namespaces", NULL);
        cr_assert_str_eq(json_string_value(json_array_get(json_object_get(r, "payload"), 0)), "t");
        json_decref(r);
        r = tgw_call(fd, "describe_tool", "{\"id\":\"t:echo\",\"detail\":\"full\"}");
        cr_assert_str_eq(json_string_value(json_object_get(json_object_get(r, "payload"), "detail")), "full");
        json_decref(r);
        r = tgw_call(fd, "describe_tool", "{\"id\":\"t:echo\",\"detail\":\"bogus\"}");
        cr_assert_str_eq(code_of(r), "invalid_arguments");
        json_decref(r);
        r = tgw_call(fd, "list_tool_examples", "{\"id\":\"t:echo\",\"max\":2}");
        cr_assert_str_eq(type_of(r), "response");
        json_decref(r);
        r = tgw_call(fd, "run_tool", "{\"id\":\"t:fail\"}");
        cr_assert_str_eq(type_of(r), "error");
        cr_assert_str_eq(code_of(r), "tool_failed");
        json_decref(r);
        r = tgw_call(fd, "run_tool", "{\"id\":\"t:nope\"}");
        cr_assert_str_eq(code_of(r), "tool_not_found");
        json_decref(r);
}

Test(gw_session, roundtrip_socketpair) {
        tr_gateway *gw = tgw_test_gateway();
        tr_result *res = tgw_run(gw, NULL, false, client_roundtrip, NULL);
        cr_assert_eq(tr_result_tool_call_count(res), 3);
        const tr_tool_call *c = tr_result_tool_call_at(res, 0);
        cr_assert_str_eq(c->tool_id, "t:echo");
        cr_assert_null(c->error_code);
        cr_assert_eq(c->backend, TR_BACKEND_REMOTE);
        c = tr_result_tool_call_at(res, 1);
        cr_assert_str_eq(c->error_code, "tool_failed");
        cr_assert_str_eq(c->error_op, "exec");
        cr_assert(!tr_result_limits_enforced(res)->tool_calls);
        tr_result_free(res);
        tr_gateway_free(gw);
}

Test(gw_session, roundtrip_unix) {
        tr_gateway *gw = tgw_test_gateway();
        tr_result *res = tgw_run(gw, NULL, true, client_roundtrip, NULL);
        cr_assert_eq(tr_result_tool_call_count(res), 3);
        tr_result_free(res);
        tr_gateway_free(gw);
}

static void client_limit(int fd, void *ud) {
        for (int i = 0; i < 2; i++) {
                json_t *r = tgw_call(fd, "run_tool", "{\"id\":\"t:echo\",\"args\":{}}");
                cr_assert_str_eq(type_of(r), "response");
                json_decref(r);
        }
        json_t *r = tgw_call(fd, "run_tool", "{\"id\":\"t:echo\",\"args\":{}}");
        cr_assert_str_eq(type_of(r), "error");
        cr_assert_str_eq(code_of(r), "tool_limit");
        json_decref(r);
        /* The connection survives the limit: other operations still work. */
        r = tgw_call(fd, "list_namespaces", NULL);
        cr_assert_str_eq(type_of(r), "response");
        json_decref(r);
}

Test(gw_session, max_tool_calls) {
        tr_gateway *gw = tgw_test_gateway();
        tr_limits lim = { .max_tool_calls = 2 };
        tr_result *res = tgw_run(gw, &lim, false, client_limit, NULL);
        cr_assert(tr_result_limits_enforced(res)->tool_calls);
        cr_assert_eq(tr_result_tool_call_count(res), 3);
        cr_assert_str_eq(tr_result_tool_call_at(res, 2)->error_code, "tool_limit");
        tr_result_free(res);
        tr_gateway_free(gw);
}

static void client_chain(int fd, void *ud) {
        json_t *r = tgw_call(fd, "run_chain",
                             "{\"steps\":[{\"tool_id\":\"t:echo\",\"args\":{\"x\":1}},"
                             "{\"tool_id\":\"t:echo\",\"args\":{\"y\":2},\"use_previous\":true,\"arg_name\":\"in\"}]}");
        cr_assert_str_eq(type_of(r), "response", "%s", json_dumps(r, 0));
        json_t *p = json_object_get(r, "payload");
        cr_assert_eq(json_integer_value(json_object_get(p, "y")), 2);
        cr_assert_eq(json_integer_value(json_object_get(json_object_get(p, "in"), "x")), 1);
        json_decref(r);
        /* 2 of 3 chain steps used: a 2-step chain no longer fits. */
        r = tgw_call(fd, "run_chain",
                     "{\"steps\":[{\"tool_id\":\"t:echo\"},{\"tool_id\":\"t:echo\",\"use_previous\":true}]}");
        cr_assert_str_eq(code_of(r), "tool_limit");
        json_decref(r);
        r = tgw_call(fd, "run_chain", "{\"steps\":[{\"tool_id\":\"t:echo\"},{\"tool_id\":\"t:fail\"}]}");
        cr_assert_str_eq(code_of(r), "tool_limit");
        json_decref(r);
        r = tgw_call(fd, "run_chain", "{\"steps\":[]}");
        cr_assert_str_eq(code_of(r), "invalid_arguments");
        json_decref(r);
        r = tgw_call(fd, "run_chain", "{\"steps\":[{\"tool_id\":\"t:fail\"}]}");
        cr_assert_str_eq(code_of(r), "tool_failed");
        json_decref(r);
}

Test(gw_session, chain_and_steps_limit) {
        tr_gateway *gw = tgw_test_gateway();
        tr_limits lim = { .max_chain_steps = 3 };
        tr_result *res = tgw_run(gw, &lim, false, client_chain, NULL);
        cr_assert(tr_result_limits_enforced(res)->chain_steps);
        cr_assert(!tr_result_limits_enforced(res)->tool_calls);
        /* 2 steps + 2 limit records + 1 failed step. */
        cr_assert_eq(tr_result_tool_call_count(res), 5);
        cr_assert_str_eq(tr_result_tool_call_at(res, 4)->error_code, "tool_failed");
        tr_result_free(res);
        tr_gateway_free(gw);
}

static void client_garbage(int fd, void *ud) {
        /* Not JSON: an error reply with a null id; the connection stays. */
        const char junk[] = "\x00\x00\x00\x05hello";
        cr_assert_eq(tgw_send_raw(fd, junk, sizeof(junk) - 1), 0);
        json_t *r = tgw_recv(fd);
        cr_assert_not_null(r);
        cr_assert_str_eq(code_of(r), "protocol_error");
        cr_assert(json_is_null(json_object_get(r, "id")));
        json_decref(r);
        /* Invalid UTF-8 inside a string. */
        const char bad[] = "{\"type\":\"run_tool\",\"id\":7,\"payload\":\"\xff\xfe\"}";
        uint8_t hdr[4];
        tr__frame_put_header(hdr, sizeof(bad) - 1);
        cr_assert_eq(tgw_send_raw(fd, hdr, 4), 0);
        cr_assert_eq(tgw_send_raw(fd, bad, sizeof(bad) - 1), 0);
        r = tgw_recv(fd);
        cr_assert_str_eq(code_of(r), "protocol_error");
        json_decref(r);
        /* Out of order: a response sent to the host. */
        r = tgw_call(fd, "response", "{}");
        cr_assert_str_eq(code_of(r), "protocol_error");
        json_decref(r);
        r = tgw_call(fd, "nonsense", "{}");
        cr_assert_str_eq(code_of(r), "protocol_error");
        json_decref(r);
        r = tgw_call(fd, "run_tool", "{\"id\":5}");
        cr_assert_str_eq(code_of(r), "invalid_arguments");
        json_decref(r);
        r = tgw_call(fd, "run_tool", "{\"id\":\"t:big\"}");
        cr_assert_str_eq(code_of(r), "tool_failed");
        json_decref(r);
        /* Payload of the wrong type. */
        const char badp[] = "{\"type\":\"run_tool\",\"id\":\"s1\",\"payload\":[1]}";
        tr__frame_put_header(hdr, sizeof(badp) - 1);
        tgw_send_raw(fd, hdr, 4);
        tgw_send_raw(fd, badp, sizeof(badp) - 1);
        r = tgw_recv(fd);
        cr_assert_str_eq(json_string_value(json_object_get(r, "id")), "s1");
        cr_assert_str_eq(code_of(r), "protocol_error");
        json_decref(r);
        /* Finally an oversized frame: an error reply, then EOF. */
        tr__frame_put_header(hdr, TR_FRAME_MAX + 1);
        cr_assert_eq(tgw_send_raw(fd, hdr, 4), 0);
        r = tgw_recv(fd);
        cr_assert_str_eq(code_of(r), "protocol_error");
        json_decref(r);
        char c;
        cr_assert_eq(read(fd, &c, 1), 0);
}

Test(gw_session, garbage_and_oversized) {
        tr_gateway *gw = tgw_test_gateway();
        tr_result *res = tgw_run(gw, NULL, false, client_garbage, NULL);
        tr_result_free(res);
        tr_gateway_free(gw);
}

static void client_many(int fd, void *ud) {
        /* Pipeline many requests before reading any reply: the server
         * must neither drop nor reorder them. */
        for (int b = 0; b < 20; b++) {
                for (int i = 0; i < 100; i++)
                        cr_assert_eq(tgw_send(fd, "run_tool", b * 100 + i, "{\"id\":\"t:echo\",\"args\":{\"i\":1}}"),
                                     0);
                for (int i = 0; i < 100; i++) {
                        json_t *r = tgw_recv(fd);
                        cr_assert_not_null(r);
                        cr_assert_eq(json_integer_value(json_object_get(r, "id")), b * 100 + i);
                        json_decref(r);
                }
        }
}

Test(gw_session, thousands_of_calls) {
        tr_gateway *gw = tgw_test_gateway();
        tr_limits lim = { .max_tool_calls = 1500 };
        tr_result *res = tgw_run(gw, &lim, false, client_many, NULL);
        cr_assert_eq(tr_result_tool_call_count(res), 2000);
        tr_result_free(res);
        tr_gateway_free(gw);
}

static void client_idle_unread(int fd, void *ud) {
        /* Flood requests and never read: the server blocks writing replies;
         * ending the session must still return promptly. */
        int sz = 4096;
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        const char msg[] = "\0\0\0\x2e{\"type\":\"list_namespaces\",\"id\":1,\"payload\":{}}";
        cr_assert_eq(sizeof(msg) - 1, 4 + 0x2e);
        int sent = 0;
        for (int i = 0; i < 100000; i++) {
                if (send(fd, msg, sizeof(msg) - 1, MSG_NOSIGNAL) < 0)
                        break;
                sent++;
        }
        cr_assert_lt(sent, 100000);
        usleep(100000);
}

Test(gw_session, stop_while_blocked, .timeout = 30) {
        tr_gateway *gw = tgw_test_gateway();
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        tr_result *res = tgw_run(gw, NULL, false, client_idle_unread, NULL);
        clock_gettime(CLOCK_MONOTONIC, &b);
        cr_assert_lt(b.tv_sec - a.tv_sec, 5);
        tr_result_free(res);
        tr_gateway_free(gw);
}

static void client_nothing(int fd, void *ud) {
}

Test(gw_session, empty_session) {
        tr_gateway *gw = tgw_test_gateway();
        tr_limits lim = { .max_tool_calls = 1, .max_chain_steps = 1 };
        tr_result *res = tgw_run(gw, &lim, true, client_nothing, NULL);
        cr_assert(tr_result_limits_enforced(res)->tool_calls);
        cr_assert(tr_result_limits_enforced(res)->chain_steps);
        cr_assert_eq(tr_result_tool_call_count(res), 0);
        tr_result_free(res);
        tr_gateway_free(gw);
}

/* ---- cancellation reaches a tool call in progress ---- */

typedef struct stop_ctx {
        char dir[64];
        char pidfile[128];
        pid_t pids[2]; /* the tool's shell and the sleep it started */
        tr_cancel *cancel;
        double t_stop;
        double t_reply;
        json_t *reply;
} stop_ctx;

/* A manifest tool that sleeps 30 s in a grandchild and says who it is. */
static tr_gateway *sleeper_gateway(stop_ctx *c) {
        strcpy(c->dir, "/tmp/tgw-stop-XXXXXX");
        cr_assert_not_null(mkdtemp(c->dir));
        snprintf(c->pidfile, sizeof(c->pidfile), "%s/pids", c->dir);
        char *m = NULL;
        cr_assert(asprintf(&m,
                           "{\"namespace\":\"h\",\"tools\":[{\"name\":\"sleep\",\"command\":[\"sh\",\"-c\","
                           "\"sleep 30 & echo $$ $! > %s.tmp && mv %s.tmp %s; wait\"],\"timeout_ms\":60000}]}",
                           c->pidfile, c->pidfile, c->pidfile) > 0);
        tr_tool_registry *reg = NULL;
        tr_error *err = NULL;
        cr_assert_eq(tr_tool_registry_new(&reg, NULL), 0);
        cr_assert_eq(tr_tool_registry_add_manifest_json(reg, m, NULL, &err), 0, "%s", err ? tr_error_message(err) : "");
        free(m);
        tr_gateway *gw = NULL;
        cr_assert_eq(tr_tool_registry_gateway(reg, &gw, NULL), 0);
        tr_tool_registry_free(reg);
        return gw;
}

static void sleeper_done(stop_ctx *c) {
        for (int i = 0; i < 2; i++)
                cr_assert(tgw_wait_gone(c->pids[i], 1000), "process %d of the tool is still there", (int) c->pids[i]);
        unlink(c->pidfile);
        rmdir(c->dir);
}

static void client_stop_mid_call(int fd, void *ud) {
        stop_ctx *c = ud;
        cr_assert_eq(tgw_send(fd, "run_tool", 1, "{\"id\":\"h:sleep\"}"), 0);
        cr_assert_eq(tgw_read_pids(c->pidfile, c->pids, 2, 10000), 2, "the tool did not start");
        usleep(200000);
        /* Returning ends the execution: the session is freed now. */
        c->t_stop = tgw_now_s();
}

Test(gw_session, free_kills_tool_in_progress, .timeout = 30) {
        stop_ctx c = { 0 };
        tr_gateway *gw = sleeper_gateway(&c);
        tr_result *res = tgw_run(gw, NULL, false, client_stop_mid_call, &c);
        double took = tgw_now_s() - c.t_stop;
        cr_assert_lt(took, 2.0, "freeing the session waited %.1f s for the tool", took);
        sleeper_done(&c);
        cr_assert_eq(tr_result_tool_call_count(res), 1);
        const tr_tool_call *tc = tr_result_tool_call_at(res, 0);
        cr_assert_str_eq(tc->tool_id, "h:sleep");
        cr_assert_str_eq(tc->error_code, "cancelled");
        tr_result_free(res);
        tr_gateway_free(gw);
}

static void client_cancel_mid_call(int fd, void *ud) {
        stop_ctx *c = ud;
        cr_assert_eq(tgw_send(fd, "run_tool", 7, "{\"id\":\"h:sleep\"}"), 0);
        cr_assert_eq(tgw_read_pids(c->pidfile, c->pids, 2, 10000), 2, "the tool did not start");
        usleep(200000);
        c->t_stop = tgw_now_s();
        tr_cancel_cancel(c->cancel);
        c->reply = tgw_recv(fd);
        c->t_reply = tgw_now_s();
}

Test(gw_session, cancel_kills_tool_in_progress, .timeout = 30) {
        stop_ctx c = { 0 };
        tr_gateway *gw = sleeper_gateway(&c);
        cr_assert_eq(tr_cancel_new(&c.cancel, NULL), 0);
        tr_result *res = tgw_run_cancel(gw, NULL, true, c.cancel, client_cancel_mid_call, &c);
        /* The execution's cancel token alone (the session still runs)
         * ends the call, which answers "cancelled". */
        cr_assert_not_null(c.reply, "no reply to the cancelled call");
        cr_assert_lt(c.t_reply - c.t_stop, 2.0, "the cancelled call answered after %.1f s", c.t_reply - c.t_stop);
        cr_assert_str_eq(type_of(c.reply), "error");
        cr_assert_str_eq(code_of(c.reply), "cancelled");
        json_decref(c.reply);
        sleeper_done(&c);
        cr_assert_eq(tr_result_tool_call_count(res), 1);
        cr_assert_str_eq(tr_result_tool_call_at(res, 0)->error_code, "cancelled");
        tr_result_free(res);
        tr_cancel_free(c.cancel);
        tr_gateway_free(gw);
}
