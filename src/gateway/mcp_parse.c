/* SPDX-License-Identifier: Apache-2.0 */
/* The MCP client's parsing (mcp.h): what a server's line is (a response, an
 * error, a request or a notification of its own), a tools/call result
 * turned into the gateway's, and a command line split into argv.  Pure
 * functions, so the unit tests and the fuzzer reach them without a server. */
#include <stdlib.h>
#include <string.h>

#include "gateway/mcp.h"
#include "gateway/mcp_client.h"
#include "gateway/schema.h"
#include "util/macros.h"
#include "util/strv.h"

/* ---- parsing ---------------------------------------------------------------- */

tr__mcp_kind tr__mcp_classify(json_t *msg, tr__mcp_msg *ret) {
        *ret = (tr__mcp_msg){ .kind = TR__MCP_INVALID };
        if (!json_is_object(msg))
                return TR__MCP_INVALID;
        json_t *ver = json_object_get(msg, "jsonrpc");
        /* Lenient about a missing "jsonrpc" (some servers omit it), strict
         * about a wrong one. */
        if (ver && !(json_is_string(ver) && streq(json_string_value(ver), "2.0")))
                return TR__MCP_INVALID;
        json_t *id = json_object_get(msg, "id");
        json_t *method = json_object_get(msg, "method");
        json_t *result = json_object_get(msg, "result");
        json_t *error = json_object_get(msg, "error");
        json_t *params = json_object_get(msg, "params");
        if (id && !json_is_integer(id) && !json_is_string(id) && !json_is_null(id))
                return TR__MCP_INVALID;
        ret->id_json = id;
        if (json_is_integer(id)) {
                ret->id_is_int = true;
                ret->id = json_integer_value(id);
        }
        if (method) {
                if (!json_is_string(method) || result || error)
                        return TR__MCP_INVALID;
                if (params && !json_is_object(params) && !json_is_array(params))
                        return TR__MCP_INVALID;
                ret->method = json_string_value(method);
                ret->params = params;
                ret->kind = (id && !json_is_null(id)) ? TR__MCP_REQUEST : TR__MCP_NOTIFICATION;
                return ret->kind;
        }
        if (!id)
                return TR__MCP_INVALID;
        if (result && !error) {
                ret->result = result;
                ret->kind = TR__MCP_RESPONSE;
                return ret->kind;
        }
        if (error && !result && json_is_object(error)) {
                ret->error = error;
                ret->kind = TR__MCP_ERROR;
                return ret->kind;
        }
        return TR__MCP_INVALID;
}

/* The text items of an MCP content array joined by newlines; NULL when some
 * item is not text.  Bounded by `max` bytes (then cut, UTF-8-safe). */
static char *content_text(json_t *content, size_t max) {
        if (!json_is_array(content))
                return NULL;
        size_t total = 0;
        size_t i;
        json_t *c;
        json_array_foreach(content, i, c) {
                json_t *type = json_object_get(c, "type");
                json_t *text = json_object_get(c, "text");
                if (!json_is_string(type) || !streq(json_string_value(type), "text") || !json_is_string(text))
                        return NULL;
                total += json_string_length(text) + 1;
        }
        char *s = malloc(total + 1);
        if (!s)
                return NULL;
        size_t o = 0;
        json_array_foreach(content, i, c) {
                json_t *text = json_object_get(c, "text");
                if (i > 0)
                        s[o++] = '\n';
                memcpy(s + o, json_string_value(text), json_string_length(text));
                o += json_string_length(text);
        }
        s[o] = 0;
        if (o > max) {
                size_t n = max;
                while (n > 0 && ((unsigned char) s[n] & 0xC0) == 0x80)
                        n--;
                s[n] = 0;
        }
        return s;
}

int tr__mcp_convert_result(json_t *result, json_t **ret, tr_error **ret_err) {
        if (!json_is_object(result))
                return tr_error_set(ret_err, TR_E_PROTOCOL, TR_BACKEND_NONE, "mcp.tools/call",
                                    "the server returned a result that is not an object");
        json_t *content = json_object_get(result, "content");
        json_t *structured = json_object_get(result, "structuredContent");
        json_t *is_error = json_object_get(result, "isError");
        if (json_is_true(is_error)) {
                _cleanup_free_ char *t = content_text(content, TR__MCP_MAX_ERROR_TEXT);
                /* jansson strings are valid UTF-8 but may hold control
                 * characters; the message is shown to people. */
                _cleanup_free_ char *clean = tr__text_sanitize(t ? t : "(no text)", TR__MCP_MAX_ERROR_TEXT);
                return tr_error_set(ret_err, TR_E_TOOL_FAILED, TR_BACKEND_NONE, "mcp.tools/call", "%s",
                                    clean ? clean : "the tool reported an error");
        }
        if (structured && !json_is_null(structured)) {
                *ret = json_incref(structured);
                return 0;
        }
        if (content && !json_is_array(content))
                return tr_error_set(ret_err, TR_E_PROTOCOL, TR_BACKEND_NONE, "mcp.tools/call",
                                    "\"content\" is not an array");
        if (!content) {
                *ret = json_null();
                return 0;
        }
        _cleanup_free_ char *t = content_text(content, SIZE_MAX / 2);
        if (t) {
                json_t *s = json_string(t);
                if (!s)
                        return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "mcp.tools/call", "out of memory");
                *ret = s;
                return 0;
        }
        *ret = json_incref(content);
        return 0;
}

int tr__split_command(const char *line, char ***ret_argv, tr_error **ret_err) {
        _cleanup_strv_ char **argv = NULL;
        size_t n = strlen(line ? line : "");
        _cleanup_free_ char *word = malloc(n + 1);
        if (!word)
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "mcp", "out of memory");
        size_t w = 0;
        bool in_word = false;
        char quote = 0;
        for (size_t i = 0; i < n; i++) {
                char c = line[i];
                if (quote == '\'') {
                        if (c == '\'')
                                quote = 0;
                        else
                                word[w++] = c;
                        continue;
                }
                if (c == '\\') {
                        if (i + 1 >= n)
                                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, "mcp",
                                                    "trailing backslash in the command line");
                        word[w++] = line[++i];
                        in_word = true;
                        continue;
                }
                if (quote == '"') {
                        if (c == '"')
                                quote = 0;
                        else
                                word[w++] = c;
                        continue;
                }
                if (c == '\'' || c == '"') {
                        quote = c;
                        in_word = true;
                        continue;
                }
                if (c == ' ' || c == '\t' || c == '\n') {
                        if (in_word) {
                                word[w] = 0;
                                if (tr__strv_push(&argv, word) < 0)
                                        return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "mcp",
                                                            "out of memory");
                                w = 0;
                                in_word = false;
                        }
                        continue;
                }
                word[w++] = c;
                in_word = true;
        }
        if (quote)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, "mcp",
                                    "unterminated quote in the command line");
        if (in_word) {
                word[w] = 0;
                if (tr__strv_push(&argv, word) < 0)
                        return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "mcp", "out of memory");
        }
        if (!argv || !argv[0])
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, "mcp", "empty command line");
        *ret_argv = TAKE_PTR(argv);
        return 0;
}
