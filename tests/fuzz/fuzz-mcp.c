/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: what an MCP server's output reaches — each input line is
 * a JSON-RPC message classified and, as a response, converted to a tool
 * result; a line holding a tool object goes through the schema checks and
 * argument validation used for untrusted tool metadata; the first line is
 * also split as a command line.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/mcp.h"
#include "gateway/schema.h"
#include "util/strv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void one_line(const char *line, size_t len, json_t **prev) {
        json_t *j = json_loadb(line, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, NULL);
        if (!j)
                return;
        tr__mcp_msg m;
        if (tr__mcp_classify(j, &m) == TR__MCP_RESPONSE) {
                json_t *out = NULL;
                tr_error *err = NULL;
                if (tr__mcp_convert_result(m.result, &out, &err) == 0)
                        json_decref(out);
                tr_error_free(err);
                json_t *tools = json_object_get(m.result, "tools");
                size_t i;
                json_t *t;
                json_array_foreach(tools, i, t) {
                        json_t *schema = NULL;
                        tr_error *why = NULL;
                        if (tr__schema_check(json_object_get(t, "inputSchema"), &schema, "fuzz", &why) == 0) {
                                if (*prev)
                                        (void) tr__schema_validate(schema, *prev, &why);
                                json_decref(schema);
                        }
                        tr_error_free(why);
                        why = NULL;
                        json_t *tags = NULL;
                        if (tr__tags_check(json_object_get(t, "tags"), &tags, "fuzz", &why) == 0)
                                json_decref(tags);
                        tr_error_free(why);
                        json_t *desc = json_object_get(t, "description");
                        if (json_is_string(desc))
                                free(tr__text_sanitize(json_string_value(desc), 100));
                }
        }
        /* The previous line's value is validated against the next schema. */
        json_decref(*prev);
        *prev = j;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *s = malloc(size + 1);
        if (!s)
                return 0;
        memcpy(s, data, size);
        s[size] = 0;
        json_t *prev = NULL;
        size_t start = 0;
        bool first = true;
        for (size_t i = 0; i <= size; i++) {
                if (i == size || s[i] == '\n') {
                        if (first) {
                                char saved = s[i];
                                s[i] = 0;
                                char **argv = NULL;
                                if (tr__split_command(s, &argv, NULL) == 0)
                                        tr__strv_free(argv);
                                s[i] = saved;
                                first = false;
                        }
                        one_line(s + start, i - start, &prev);
                        start = i + 1;
                }
        }
        json_decref(prev);
        free(s);
        return 0;
}
