/* SPDX-License-Identifier: Apache-2.0 */
/* Stable names: codes, backend kinds, profiles, detail levels round-trip. */
#include <criterion/criterion.h>
#include <string.h>

#include "toolruntime.h"

Test(names, every_code_round_trips) {
        static const char *const want[] = {
                "runtime_unavailable",   "backend_denied",           "sandbox_violation",  "timeout",
                "resource_limit",        "missing_gateway",          "missing_code",       "invalid_limits",
                "invalid_request",       "containerd_not_available", "image_not_found",    "container_failed",
                "client_not_configured", "daemon_unavailable",       "security_violation", "kata_not_available",
                "vm_creation_failed",    "vm_execution_failed",
        };
        for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
                tr_code c;
                cr_assert_eq(tr_code_from_name(want[i], &c), 0, "%s", want[i]);
                cr_assert_str_eq(tr_code_name(c), want[i]);
                cr_assert_str_neq(tr_strerror(c), "unknown error");
        }
        tr_code c;
        cr_assert_lt(tr_code_from_name("nope", &c), 0);
        cr_assert_str_eq(tr_code_name((tr_code) 9999), "unknown");
}

Test(names, all_ten_backend_kinds) {
        static const char *const want[] = { "unsafe_host", "docker",      "containerd", "kubernetes", "gvisor",
                                            "kata",        "firecracker", "wasm",       "temporal",   "remote" };
        for (size_t i = 0; i < 10; i++) {
                tr_backend_kind k;
                cr_assert_eq(tr_backend_kind_from_name(want[i], &k), 0);
                cr_assert_str_eq(tr_backend_kind_name(k), want[i]);
        }
        tr_backend_kind k;
        cr_assert_lt(tr_backend_kind_from_name("", &k), 0);
        cr_assert_lt(tr_backend_kind_from_name("podman", &k), 0);
}

Test(names, profiles_and_detail_levels) {
        tr_profile p;
        cr_assert_eq(tr_profile_from_name("hardened", &p), 0);
        cr_assert_eq(p, TR_PROFILE_HARDENED);
        cr_assert_lt(tr_profile_from_name("paranoid", &p), 0);
        tr_detail_level d;
        cr_assert_eq(tr_detail_level_from_name("schema", &d), 0);
        cr_assert_str_eq(tr_detail_level_name(d), "schema");
}

Test(errors, first_error_wins_and_prefix_keeps_code) {
        tr_error *e = NULL;
        cr_assert_lt(tr_error_set(&e, TR_E_TIMEOUT, TR_BACKEND_KATA, "boot", "took %d s", 5), 0);
        tr_error_set(&e, TR_E_INTERNAL, TR_BACKEND_NONE, "later", "ignored");
        tr_error_prefix(e, "while %s", "booting");
        cr_assert_eq(tr_error_code(e), TR_E_TIMEOUT);
        cr_assert_str_eq(tr_error_message(e), "while booting: took 5 s");
        cr_assert_str_eq(tr_error_op(e), "boot");
        cr_assert_not(tr_error_retryable(e));
        tr_error_set_errno(e, -5);
        cr_assert_eq(tr_error_errno(e), 5);
        cr_assert_eq(tr_error_grpc_status(e), -1);
        tr_error_free(e);
        tr_error_free(NULL);
        cr_assert_lt(tr_error_set(NULL, TR_E_TIMEOUT, TR_BACKEND_NONE, NULL, "x"), 0);
}

Test(gateway, empty_gateway_has_no_tools) {
        tr_gateway *g = NULL;
        cr_assert_eq(tr_gateway_new_empty(&g, NULL), 0);
        char *json = NULL;
        cr_assert_eq(tr_gateway_search_tools(g, NULL, "weather", 5, &json, NULL), 0);
        cr_assert_str_eq(json, "[]");
        free(json);
        tr_error *e = NULL;
        cr_assert_lt(tr_gateway_run_tool(g, NULL, "ns:tool", "{}", &json, &e), 0);
        cr_assert_eq(tr_error_code(e), TR_E_TOOL_NOT_FOUND);
        tr_error_free(e);
        tr_gateway_free(g);
}
