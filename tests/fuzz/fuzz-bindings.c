/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: the typed-binding generator (src/gateway/bindings.c) on
 * raw tool descriptions.  The input is served as the list_tools answer of a
 * gateway with one namespace, unchecked (harsher than the registry, which
 * validates schemas first), and turned into a module, a stub and the
 * signatures.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "toolruntime.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct fz {
        const char *text;
        size_t len;
} fz;

static int dup_text(const char *s, size_t n, char **ret) {
        char *d = malloc(n + 1);
        if (!d)
                return -1;
        memcpy(d, s, n);
        d[n] = 0;
        *ret = d;
        return 0;
}

static int fz_search(void *self, const tr_call_ctx *ctx, const char *q, int limit, char **ret, tr_error **err) {
        return dup_text("[]", 2, ret);
}
static int fz_namespaces(void *self, const tr_call_ctx *ctx, char **ret, tr_error **err) {
        return dup_text("[\"ns\", \"ns-2\", \"1ns\"]", 20, ret);
}
static int fz_describe(void *self, const tr_call_ctx *ctx, const char *id, tr_detail_level l, char **ret,
                       tr_error **err) {
        return tr_error_set(err, TR_E_TOOL_NOT_FOUND, TR_BACKEND_NONE, "describe_tool", "none");
}
static int fz_examples(void *self, const tr_call_ctx *ctx, const char *id, int max, char **ret, tr_error **err) {
        return dup_text("[]", 2, ret);
}
static int fz_run(void *self, const tr_call_ctx *ctx, const char *id, const char *args, char **ret, tr_error **err) {
        return dup_text("null", 4, ret);
}
static int fz_chain(void *self, const tr_call_ctx *ctx, const char *steps, char **ret, tr_error **err) {
        return dup_text("null", 4, ret);
}
static int fz_list(void *self, const tr_call_ctx *ctx, const char *ns, char **ret, tr_error **err) {
        fz *f = self;
        return dup_text(f->text, f->len, ret);
}

static const tr_gateway_ops fz_ops = {
        .search_tools = fz_search,
        .list_namespaces = fz_namespaces,
        .describe_tool = fz_describe,
        .list_tool_examples = fz_examples,
        .run_tool = fz_run,
        .run_chain = fz_chain,
        .list_tools = fz_list,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        fz f = { (const char *) data, size };
        /* JSON text with an embedded NUL stops there, as jansson reads it. */
        f.len = strnlen(f.text, size);
        tr_gateway *gw = NULL;
        if (tr_gateway_new(&fz_ops, &f, &gw, NULL) < 0)
                return 0;
        static const struct {
                const char *module;
                tr_bindings_kind kind;
        } runs[] = { { "ns", TR_BINDINGS_MODULE }, { NULL, TR_BINDINGS_STUB }, { NULL, TR_BINDINGS_SIGNATURES } };
        for (size_t i = 0; i < sizeof(runs) / sizeof(runs[0]); i++) {
                char *text = NULL, *ns = NULL;
                tr_error *err = NULL;
                if (tr_gateway_python_bindings(gw, runs[i].module, runs[i].kind, &text, &ns, &err) == 0) {
                        free(text);
                        free(ns);
                }
                tr_error_free(err);
        }
        tr_gateway_free(gw);
        return 0;
}
