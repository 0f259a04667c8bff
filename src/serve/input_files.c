/* SPDX-License-Identifier: Apache-2.0 */
/*
 * /v1/execute's input files: one {"path", "content", "encoding": "utf8" |
 * "base64"} element onto a request (tr_request_add_file, whose path rules
 * the library owns).  Piston's files[] beyond the first come here too,
 * their "name" as the path (api.c converts them).
 */
#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "serve/serve.h"
#include "util/handles.h"
#include "util/macros.h"

/* Standard base64 (RFC 4648, "=" padding optional, no whitespace): JSON
 * carries binary input files this way.  No Debian library the project
 * already links decodes it (jansson, curl and microhttpd do not export
 * one), and it is a dozen lines. */
static int base64_decode(const char *in, size_t len, unsigned char **ret, size_t *ret_len) {
        while (len > 0 && in[len - 1] == '=')
                len--;
        if (len % 4 == 1)
                return -EINVAL;
        unsigned char *out = malloc(len / 4 * 3 + 3);
        if (!out)
                return -ENOMEM;
        size_t n = 0;
        uint32_t acc = 0;
        unsigned bits = 0;
        for (size_t i = 0; i < len; i++) {
                char c = in[i];
                int v = c >= 'A' && c <= 'Z'   ? c - 'A'
                        : c >= 'a' && c <= 'z' ? c - 'a' + 26
                        : c >= '0' && c <= '9' ? c - '0' + 52
                        : c == '+'             ? 62
                        : c == '/'             ? 63
                                               : -1;
                if (v < 0) {
                        free(out);
                        return -EINVAL;
                }
                acc = (acc << 6) | (uint32_t) v;
                bits += 6;
                if (bits >= 8) {
                        bits -= 8;
                        out[n++] = (unsigned char) (acc >> bits);
                }
        }
        *ret = out;
        *ret_len = n;
        return 0;
}

/* One input file of /v1's "files": {"path", "content", "encoding"}. */
int tr__serve_add_input_file(tr_request *req, json_t *f, size_t i, tr_error **ret_err) {
        const char *path = json_string_value(json_object_get(f, "path"));
        json_t *content = json_object_get(f, "content");
        const char *enc = json_string_value(json_object_get(f, "encoding"));
        const char *k;
        json_t *v;
        json_object_foreach(f, k, v) {
                if (!streq(k, "path") && !streq(k, "content") && !streq(k, "encoding"))
                        return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, "validate",
                                            "unknown field 'files[%zu].%.100s'", i, k);
        }
        if (!json_is_object(f) || !path || !json_is_string(content))
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, "validate",
                                    "files[%zu] must be an object with string 'path' and 'content'", i);
        if (json_object_get(f, "encoding") && !json_is_null(json_object_get(f, "encoding")) && !enc)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, "validate",
                                    "files[%zu].encoding must be \"utf8\" or \"base64\"", i);
        if (!enc || streq(enc, "utf8") || streq(enc, "utf-8"))
                return tr_request_add_file(req, path, json_string_value(content), json_string_length(content), ret_err);
        if (!streq(enc, "base64"))
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, "validate",
                                    "files[%zu].encoding must be \"utf8\" or \"base64\"", i);
        _cleanup_free_ unsigned char *bytes = NULL;
        size_t n = 0;
        if (base64_decode(json_string_value(content), json_string_length(content), &bytes, &n) < 0)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, "validate",
                                    "files[%zu].content is not valid base64", i);
        return tr_request_add_file(req, path, bytes, n, ret_err);
}
