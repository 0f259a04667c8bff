/* SPDX-License-Identifier: Apache-2.0 */
/* Tools manifests (docs/gateway-protocol.md, "Tools manifest"): parsing and
 * checking, all or nothing per manifest.  See registry.h. */
#include <ctype.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/registry.h"
#include "gateway/mcp.h"
#include "gateway/protocol.h"
#include "gateway/schema.h"
#include "gateway/spawn.h"
#include "util/handles.h"
#include "util/macros.h"
#include "util/proc.h"
#include "util/strv.h"
#include "util/timeutil.h"

/* ---- manifests ------------------------------------------------------------- */

/* Append the names of a manifest "env" list (NULL: none) to *names. */
static int env_names_add(json_t *env, char ***names, const char *where, tr_error **ret_err) {
        if (!env)
                return 0;
        if (!json_is_array(env) || json_array_size(env) > MAX_ENV_NAMES)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, "manifest",
                                    "%s: \"env\" must be an array of at most %d variable names", where, MAX_ENV_NAMES);
        size_t i;
        json_t *e;
        json_array_foreach(env, i, e) {
                if (!json_is_string(e) || !tr__reg_env_name_ok(json_string_value(e)))
                        return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, "manifest",
                                            "%s: env[%zu] must be a variable name ([A-Za-z_][A-Za-z0-9_]*; "
                                            "PATH, LANG and HOME are set by toolruntime)",
                                            where, i);
                if (tr__strv_push(names, json_string_value(e)) < 0)
                        return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "manifest", "out of memory");
        }
        return 0;
}

static int manifest_tool(json_t *jt, json_t *top_env, const char *default_ns, const char *base_dir, size_t idx,
                         tool **ret, tr_error **ret_err) {
        static const char op[] = "manifest";
        if (!json_is_object(jt))
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, op, "tools[%zu] is not an object",
                                    idx);
        json_t *jid = json_object_get(jt, "id");
        json_t *jname = json_object_get(jt, "name");
        json_t *jns = json_object_get(jt, "namespace");
        _cleanup_free_ char *ns = NULL, *name = NULL;
        if (json_is_string(jid)) {
                const char *id = json_string_value(jid);
                const char *colon = strchr(id, ':');
                if (!colon)
                        return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, op,
                                            "tools[%zu]: \"id\" must be namespace:name", idx);
                ns = strndup(id, (size_t) (colon - id));
                name = strdup(colon + 1);
        } else if (json_is_string(jname)) {
                const char *n = json_is_string(jns) ? json_string_value(jns) : default_ns;
                if (!n)
                        return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, op,
                                            "tools[%zu]: no namespace (set \"namespace\" or use \"id\")", idx);
                ns = strdup(n);
                name = strdup(json_string_value(jname));
        } else
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, op,
                                    "tools[%zu]: needs \"id\" or \"name\"", idx);
        if (!ns || !name)
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, op, "out of memory");

        json_t *desc = json_object_get(jt, "description");
        json_t *title = json_object_get(jt, "title");
        json_t *schema = json_object_get(jt, "input_schema");
        if (!schema)
                schema = json_object_get(jt, "inputSchema");
        json_t *oschema = json_object_get(jt, "output_schema");
        if (!oschema)
                oschema = json_object_get(jt, "outputSchema");
        if (desc && !json_is_string(desc))
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, op,
                                    "tools[%zu]: \"description\" must be a string", idx);
        _cleanup_(tr__tool_freep) tool *t = calloc(1, sizeof(*t));
        if (!t)
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, op, "out of memory");
        t->kind = SRC_MANIFEST;
        int r = tr__tool_set_meta(t, ns, name, json_is_string(title) ? json_string_value(title) : NULL,
                                  json_string_value(desc), schema, oschema, json_object_get(jt, "tags"),
                                  json_object_get(jt, "examples"), json_object_get(jt, "annotations"), op, ret_err);
        if (r < 0) {
                if (ret_err)
                        tr_error_prefix(*ret_err, "tool %s:%s", ns, name);
                return r;
        }

        json_t *builtin = json_object_get(jt, "builtin");
        if (builtin) {
                if (!json_is_string(builtin) || !streq(json_string_value(builtin), "echo") ||
                    json_object_get(jt, "command"))
                        return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, op,
                                            "tool %s: \"builtin\" must be \"echo\", without a \"command\"", t->id);
                t->kind = SRC_BUILTIN;
                *ret = TAKE_PTR(t);
                return 0;
        }
        json_t *cmd = json_object_get(jt, "command");
        if (!json_is_array(cmd) || json_array_size(cmd) == 0 || json_array_size(cmd) > MAX_ARGV)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, op,
                                    "tool %s: \"command\" must be an array of 1 to %d strings (argv, no shell)", t->id,
                                    MAX_ARGV);
        size_t i;
        json_t *a;
        json_array_foreach(cmd, i, a) {
                if (!json_is_string(a) || json_string_length(a) > MAX_ARG_LEN ||
                    strlen(json_string_value(a)) != json_string_length(a) || (i == 0 && json_string_length(a) == 0))
                        return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, op,
                                            "tool %s: command[%zu] must be a non-empty string", t->id, i);
                const char *s = json_string_value(a);
                /* A relative program path means "next to the manifest". */
                _cleanup_free_ char *abs = NULL;
                if (i == 0 && s[0] != '/' && strchr(s, '/') && base_dir) {
                        if (asprintf(&abs, "%s/%s", base_dir, s) < 0)
                                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, op, "out of memory");
                        s = abs;
                }
                if (tr__strv_push(&t->argv, s) < 0)
                        return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, op, "out of memory");
        }
        if ((r = env_names_add(top_env, &t->env_names, "the manifest", ret_err)) < 0 ||
            (r = env_names_add(json_object_get(jt, "env"), &t->env_names, t->id, ret_err)) < 0)
                return r;
        json_t *cwd = json_object_get(jt, "cwd");
        if (cwd && !json_is_string(cwd))
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, op,
                                    "tool %s: \"cwd\" must be a string", t->id);
        if (json_is_string(cwd) && json_string_value(cwd)[0] == '/')
                t->cwd = strdup(json_string_value(cwd));
        else if (json_is_string(cwd) && base_dir) {
                if (asprintf(&t->cwd, "%s/%s", base_dir, json_string_value(cwd)) < 0)
                        t->cwd = NULL;
        } else if (base_dir)
                t->cwd = strdup(base_dir);
        json_t *tmo = json_object_get(jt, "timeout_ms");
        json_t *cap = json_object_get(jt, "max_output_bytes");
        if (tmo && (!json_is_integer(tmo) || json_integer_value(tmo) <= 0 || json_integer_value(tmo) > MAX_TIMEOUT_MS))
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, op,
                                    "tool %s: \"timeout_ms\" must be 1..%d", t->id, MAX_TIMEOUT_MS);
        if (cap && (!json_is_integer(cap) || json_integer_value(cap) <= 0 || json_integer_value(cap) > MAX_RESULT))
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, op,
                                    "tool %s: \"max_output_bytes\" must be 1..%d", t->id, MAX_RESULT);
        t->timeout_ms = tmo ? json_integer_value(tmo) : DEFAULT_TIMEOUT_MS;
        t->max_output = cap ? (size_t) json_integer_value(cap) : DEFAULT_MAX_OUTPUT;
        *ret = TAKE_PTR(t);
        return 0;
}

TR_PUBLIC int tr_tool_registry_add_manifest_json(tr_tool_registry *reg, const char *json, const char *base_dir,
                                                 tr_error **ret_err) {
        static const char op[] = "manifest";
        if (!reg || !json)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, op, "invalid argument");
        if (strlen(json) > MAX_MANIFEST)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, op, "the manifest exceeds %d bytes",
                                    MAX_MANIFEST);
        json_error_t jerr;
        json_t *root = json_loads(json, JSON_REJECT_DUPLICATES, &jerr);
        if (!root)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, op, "invalid JSON at line %d: %s",
                                    jerr.line, jerr.text);
        _cleanup_free_ char *base = NULL;
        if (base_dir) {
                base = realpath(base_dir, NULL);
                if (!base) {
                        json_decref(root);
                        return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, op, "%s: %m", base_dir);
                }
        }
        json_t *tools = json_object_get(root, "tools");
        json_t *ns = json_object_get(root, "namespace");
        int r = 0;
        tool **v = NULL;
        size_t n = 0;
        if (!json_is_object(root) || !json_is_array(tools))
                r = tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, op,
                                 "a manifest is an object with a \"tools\" array");
        else if (ns && !json_is_string(ns))
                r = tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, op, "\"namespace\" must be a string");
        else if (json_array_size(tools) > MAX_MANIFEST_TOOLS)
                r = tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, op, "more than %d tools",
                                 MAX_MANIFEST_TOOLS);
        else if (!(v = calloc(json_array_size(tools) + 1, sizeof(*v))))
                r = tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, op, "out of memory");
        for (size_t i = 0; r == 0 && i < json_array_size(tools); i++) {
                r = manifest_tool(json_array_get(tools, i), json_object_get(root, "env"), json_string_value(ns), base,
                                  i, &v[n], ret_err);
                if (r == 0)
                        n++;
        }
        if (r == 0)
                r = tr__reg_add_all(reg, v, n, op, ret_err);
        if (r < 0)
                for (size_t i = 0; i < n; i++)
                        tr__tool_free(v[i]);
        free(v);
        json_decref(root);
        return r;
}

TR_PUBLIC int tr_tool_registry_add_manifest(tr_tool_registry *reg, const char *path, tr_error **ret_err) {
        if (!reg || !path)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, "manifest", "invalid argument");
        _cleanup_free_ char *data = NULL;
        size_t len = 0;
        int r = tr__read_file(path, MAX_MANIFEST + 1, &data, &len);
        if (r < 0)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, "manifest", "cannot read %s: %s",
                                    path, strerror(-r));
        if (len > MAX_MANIFEST || strlen(data) != len)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, "manifest",
                                    "%s: too large or not text", path);
        _cleanup_free_ char *copy = strdup(path);
        if (!copy)
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "manifest", "out of memory");
        r = tr_tool_registry_add_manifest_json(reg, data, dirname(copy), ret_err);
        if (r < 0 && ret_err && *ret_err)
                tr_error_prefix(*ret_err, "%s", path);
        return r;
}
