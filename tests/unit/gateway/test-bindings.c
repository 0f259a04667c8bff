/* SPDX-License-Identifier: Apache-2.0 */
/* The typed-binding generator: the shapes it emits for ordinary schemas, and
 * hostile names and texts that must stay inert (the output must also parse
 * as Python: checked with python3's ast module). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "helpers.h"

static int cb_echo(void *ud, const char *args, char **ret, tr_error **ret_err) {
        *ret = strdup(args);
        return 0;
}

static tr_gateway *gateway_with(const char *id, const char *desc, const char *schema) {
        tr_tool_registry *reg = NULL;
        tr_gateway *gw = NULL;
        cr_assert_eq(tr_tool_registry_new(&reg, NULL), 0);
        tr_error *err = NULL;
        cr_assert_eq(tr_tool_registry_add_callback(reg, id, desc, schema, cb_echo, NULL, &err), 0, "%s",
                     err ? tr_error_message(err) : "");
        cr_assert_eq(tr_tool_registry_gateway(reg, &gw, NULL), 0);
        tr_tool_registry_free(reg);
        return gw;
}

static char *gen(tr_gateway *gw, const char *module, tr_bindings_kind kind) {
        char *text = NULL;
        tr_error *err = NULL;
        cr_assert_eq(tr_gateway_python_bindings(gw, module, kind, &text, NULL, &err), 0, "%s",
                     err ? tr_error_message(err) : "");
        return text;
}

/* python3 -c 'import ast, sys; ast.parse(sys.stdin.read())' < text */
static bool parses_as_python(const char *text) {
        FILE *p = popen("python3 -c 'import ast, sys; ast.parse(sys.stdin.read())'", "w");
        cr_assert_not_null(p);
        fputs(text, p);
        return pclose(p) == 0;
}

Test(bindings, plain_schema) {
        tr_gateway *gw = gateway_with(
                "math:get-sum", "Returns the sum.\nSecond line.",
                "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"number\",\"description\":\"first\"},"
                "\"b\":{\"type\":\"integer\"},\"mode\":{\"enum\":[\"fast\",\"slow\"]},"
                "\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}}},\"required\":[\"a\",\"b\"]}");
        char *mod = gen(gw, "math", TR_BINDINGS_MODULE);
        cr_assert(strstr(mod, "def get_sum(*, a: float, b: int, mode: _t.Literal[\"fast\", \"slow\"] = _UNSET, "
                              "tags: _t.List[str] = _UNSET) -> _t.Any:"),
                  "%s", mod);
        cr_assert(strstr(mod, "_tr._Spec(\"math:get-sum\", \"get_sum\","), "%s", mod);
        cr_assert(parses_as_python(mod));
        char *stub = gen(gw, NULL, TR_BINDINGS_STUB);
        cr_assert(strstr(stub, "# file: toolruntime/tools/math.pyi"), "%s", stub);
        cr_assert(strstr(stub, "= ...") && !strstr(stub, "_UNSET"), "%s", stub);
        cr_assert(parses_as_python(stub));
        char *sig = gen(gw, NULL, TR_BINDINGS_SIGNATURES);
        cr_assert_str_eq(sig, "math.get_sum(a: float, b: int, mode: Literal[\"fast\", \"slow\"] = ..., "
                              "tags: List[str] = ...) -> Any  # Returns the sum.\n");
        free(mod);
        free(stub);
        free(sig);
        char *text = NULL;
        tr_error *err = NULL;
        cr_assert_lt(tr_gateway_python_bindings(gw, "nope", TR_BINDINGS_MODULE, &text, NULL, &err), 0);
        cr_assert_eq(tr_error_code(err), TR_E_TOOL_NOT_FOUND);
        tr_error_free(err);
        tr_gateway_free(gw);
}

Test(bindings, hostile_texts_stay_inert) {
        /* Every text here tries to end a string or a line and run code. */
        tr_gateway *gw = gateway_with(
                "evil:import", "\"\"\"\n__import__('os').system('false')\n\"\"\" ''' \\",
                "{\"type\":\"object\",\"properties\":{"
                "\"a\\\"): __import__('os') #\":{\"type\":\"string\",\"description\":\"\\n\\\"\\\"\\\"\\nx = 1\"},"
                "\"def\":{\"enum\":[\"x\\\"]; import os #\",\"\\n\"]},"
                "\"o\":{\"type\":\"object\",\"properties\":{\"k\\\"\\n\":{\"const\":\"\\\"\"}}}},"
                "\"required\":[\"def\"]}");
        for (int k = 0; k <= TR_BINDINGS_SIGNATURES; k++) {
                char *t = gen(gw, k == TR_BINDINGS_MODULE ? "evil" : NULL, (tr_bindings_kind) k);
                if (k != TR_BINDINGS_SIGNATURES)
                        cr_assert(parses_as_python(t), "%s", t);
                /* No generated line starts with schema text. */
                cr_assert_null(strstr(t, "\n__import__"), "%s", t);
                cr_assert_null(strstr(t, "\nx = 1"), "%s", t);
                cr_assert_null(strstr(t, "\nimport os"), "%s", t);
                free(t);
        }
        char *mod = gen(gw, "evil", TR_BINDINGS_MODULE);
        /* keyword and collision handling: import -> import_, def -> def_ */
        cr_assert(strstr(mod, "def import_(*, def_: "), "%s", mod);
        free(mod);
        tr_gateway_free(gw);
}
