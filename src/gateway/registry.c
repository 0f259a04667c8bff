/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The tool registry (include/toolruntime/gateway.h; the model and the
 * file layout are in registry.h): its tools and their checked metadata,
 * lookup, the environment tools get, C callbacks, tags and examples.
 */
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

void tr__tool_free(tool *t) {
        if (!t)
                return;
        free(t->id);
        free(t->ns);
        free(t->name);
        free(t->title);
        free(t->description);
        json_decref(t->schema);
        free(t->schema_text);
        free(t->output_schema_text);
        free(t->annotations_text);
        tr__strv_free(t->tags);
        tr__strv_free(t->tags_lc);
        free(t->examples_text);
        tr__strv_free(t->argv);
        free(t->cwd);
        tr__strv_free(t->env_names);
        free(t->remote_name);
        free(t);
}

void tr__tool_freep(tool **t) {
        tr__tool_free(*t);
}

void tr__reg_log(tr_tool_registry *reg, tr_log_level level, const char *msg, const char *k1, const char *v1,
                 const char *k2, const char *v2) {
        if (!reg->log)
                return;
        const char *kv[] = { k1, v1, k2, v2, NULL };
        if (!k1)
                kv[0] = NULL;
        else if (!k2)
                kv[2] = NULL;
        reg->log(reg->log_ud, level, msg, kv);
}

char *tr__lowercase(const char *s) {
        char *c = strdup(s);
        for (char *p = c; p && *p; p++)
                *p = (char) tolower((unsigned char) *p);
        return c;
}

/* ---- building tools -------------------------------------------------------- */

char *tr__reg_dump(json_t *j) {
        return json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
}

/* Fill the metadata shared by every source from already-extracted fields.
 * Everything is validated and copied; fails TR_E_INVALID_REQUEST (op `op`)
 * saying what is wrong. */
int tr__tool_set_meta(tool *t, const char *ns, const char *name, const char *title, const char *description,
                      json_t *schema, json_t *output_schema, json_t *tags, json_t *examples, json_t *annotations,
                      const char *op, tr_error **ret_err) {
#define META_INVALID(...) tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, op, __VA_ARGS__)
#define META_OOM()        tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, op, "out of memory")
        if (!tr__tool_name_valid(ns, TR_TOOL_MAX_NAME) || strchr(ns, '/'))
                return META_INVALID("invalid namespace");
        if (!tr__tool_name_valid(name, TR_TOOL_MAX_NAME))
                return META_INVALID("invalid tool name (allowed: letters, digits, _ - . /; at most %d bytes)",
                                    TR_TOOL_MAX_NAME);
        if (asprintf(&t->id, "%s:%s", ns, name) < 0) {
                t->id = NULL;
                return META_OOM();
        }
        if (!tr__gw_tool_id_valid(t->id))
                return META_INVALID("invalid tool id");
        t->ns = strdup(ns);
        t->name = strdup(name);
        t->description = tr__text_sanitize(description ? description : "", TR_TOOL_MAX_DESCRIPTION);
        if (title && *title)
                t->title = tr__text_sanitize(title, TR_TOOL_MAX_TITLE);
        if (!t->ns || !t->name || !t->description || (title && *title && !t->title))
                return META_OOM();
        int r = tr__schema_check(schema, &t->schema, op, ret_err);
        if (r < 0)
                return r;
        t->schema_text = tr__reg_dump(t->schema);
        if (!t->schema_text)
                return META_OOM();
        if (output_schema && !json_is_null(output_schema)) {
                json_t *os = NULL;
                r = tr__schema_check(output_schema, &os, op, ret_err);
                if (r < 0)
                        return r;
                t->output_schema_text = tr__reg_dump(os);
                json_decref(os);
                if (!t->output_schema_text)
                        return META_OOM();
        }
        json_t *tg = NULL;
        r = tr__tags_check(tags, &tg, op, ret_err);
        if (r < 0)
                return r;
        size_t i;
        json_t *v;
        json_array_foreach(tg, i, v) {
                if (tr__strv_push(&t->tags, json_string_value(v)) < 0) {
                        json_decref(tg);
                        return META_OOM();
                }
                _cleanup_free_ char *lc = tr__lowercase(json_string_value(v));
                if (!lc || tr__strv_push(&t->tags_lc, lc) < 0) {
                        json_decref(tg);
                        return META_OOM();
                }
        }
        json_decref(tg);
        if (examples && !json_is_null(examples) && !json_is_array(examples))
                return META_INVALID("\"examples\" must be an array");
        if (json_array_size(examples) > TR_TOOL_MAX_EXAMPLES)
                return META_INVALID("more than %d examples", TR_TOOL_MAX_EXAMPLES);
        json_t *exs = json_array();
        if (!exs)
                return META_OOM();
        json_array_foreach(examples, i, v) {
                json_t *e = NULL;
                r = tr__example_check(v, &e, op, ret_err);
                if (r < 0) {
                        json_decref(exs);
                        return r;
                }
                json_array_append_new(exs, e);
        }
        t->n_examples = json_array_size(exs);
        t->examples_text = tr__reg_dump(exs);
        json_decref(exs);
        if (!t->examples_text)
                return META_OOM();
        if (json_is_object(annotations)) {
                /* Only the MCP hints we know, typed: annotations are
                 * untrusted and shown to whoever picks tools. */
                json_t *a = json_object();
                static const char *const hints[] = { "readOnlyHint", "destructiveHint", "idempotentHint",
                                                     "openWorldHint" };
                for (size_t k = 0; a && k < ARRAY_SIZE(hints); k++) {
                        json_t *h = json_object_get(annotations, hints[k]);
                        if (json_is_boolean(h))
                                json_object_set(a, hints[k], h);
                }
                json_t *at = json_object_get(annotations, "title");
                if (a && json_is_string(at)) {
                        _cleanup_free_ char *c = tr__text_sanitize(json_string_value(at), TR_TOOL_MAX_TITLE);
                        if (c)
                                json_object_set_new(a, "title", json_string(c));
                }
                if (a && json_object_size(a) > 0)
                        t->annotations_text = tr__reg_dump(a);
                json_decref(a);
        }
        return 0;
#undef META_INVALID
#undef META_OOM
}

/* ---- registry -------------------------------------------------------------- */

/* A variable name a tool may get from the caller: a shell identifier, and
 * not one toolruntime sets itself. */
bool tr__reg_env_name_ok(const char *n) {
        if (!*n || strlen(n) > 128 || (!isalpha((unsigned char) *n) && *n != '_'))
                return false;
        for (const char *p = n; *p; p++)
                if (!isalnum((unsigned char) *p) && *p != '_')
                        return false;
        return !streq(n, "PATH") && !streq(n, "LANG") && !streq(n, "HOME");
}

TR_PUBLIC int tr_tool_registry_new(tr_tool_registry **ret_reg, tr_error **ret_err) {
        if (!ret_reg)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, "registry", "no result pointer");
        tr_tool_registry *reg = calloc(1, sizeof(*reg));
        if (!reg)
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "registry", "out of memory");
        atomic_init(&reg->refs, 1);
        pthread_rwlock_init(&reg->lock, NULL);
        pthread_mutex_init(&reg->home_lock, NULL);
        *ret_reg = reg;
        return 0;
}

void tr__reg_unref(tr_tool_registry *reg) {
        if (!reg || atomic_fetch_sub(&reg->refs, 1) != 1)
                return;
        for (size_t i = 0; i < reg->n; i++)
                tr__tool_free(reg->tools[i]);
        free(reg->tools);
        for (size_t i = 0; i < reg->n_retired; i++)
                tr__tool_free(reg->retired[i]);
        free(reg->retired);
        for (size_t i = 0; i < reg->n_servers; i++) {
                tr__mcp_free(reg->servers[i]);
                free(reg->server_ns[i]);
        }
        free(reg->servers);
        free(reg->server_ns);
        free(reg->refreshes);
        if (reg->home)
                (void) tr__rm_rf(reg->home);
        free(reg->home);
        pthread_mutex_destroy(&reg->home_lock);
        tr__strv_free(reg->mcp_env_names);
        pthread_rwlock_destroy(&reg->lock);
        free(reg);
}

TR_PUBLIC void tr_tool_registry_free(tr_tool_registry *reg) {
        tr__reg_unref(reg);
}

TR_PUBLIC void tr_tool_registry_set_logger(tr_tool_registry *reg, tr_log_fn fn, void *userdata) {
        if (!reg)
                return;
        pthread_rwlock_wrlock(&reg->lock);
        reg->log = fn;
        reg->log_ud = userdata;
        pthread_rwlock_unlock(&reg->lock);
}

/* The environment of a tool or MCP server of `reg` (spawn.h), its private
 * HOME made on first use. */
int tr__reg_tool_envp(tr_tool_registry *reg, char *const *names, char ***ret_envp, const char *op, tr_error **ret_err) {
        pthread_mutex_lock(&reg->home_lock);
        if (!reg->home) {
                char home[] = "/tmp/toolruntime-tools-XXXXXX";
                if (!mkdtemp(home)) {
                        int e = errno;
                        pthread_mutex_unlock(&reg->home_lock);
                        return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, op,
                                            "the tools' home directory: %s", strerror(e));
                }
                if (!(reg->home = strdup(home)))
                        (void) rmdir(home);
        }
        int r = reg->home ? tr__tool_env(reg->home, names, ret_envp) : -ENOMEM;
        pthread_mutex_unlock(&reg->home_lock);
        return r < 0 ? tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, op, "out of memory") : 0;
}

TR_PUBLIC int tr_tool_registry_pass_env(tr_tool_registry *reg, const char *name, tr_error **ret_err) {
        if (!reg || !name || !tr__reg_env_name_ok(name))
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, "registry",
                                    "invalid variable name '%s' ([A-Za-z_][A-Za-z0-9_]*; PATH, LANG and HOME are set "
                                    "by toolruntime)",
                                    name ? name : "");
        pthread_rwlock_wrlock(&reg->lock);
        int r = tr__strv_push(&reg->mcp_env_names, name);
        pthread_rwlock_unlock(&reg->lock);
        return r < 0 ? tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "registry", "out of memory") : 0;
}

TR_PUBLIC void tr_tool_registry_set_mcp_timeouts(tr_tool_registry *reg, int64_t start_ms, int64_t call_ms) {
        if (!reg)
                return;
        pthread_rwlock_wrlock(&reg->lock);
        reg->mcp_start_ms = start_ms > 0 ? start_ms : 0;
        reg->mcp_call_ms = call_ms > 0 ? call_ms : 0;
        pthread_rwlock_unlock(&reg->lock);
}

TR_PUBLIC size_t tr_tool_registry_count(const tr_tool_registry *reg) {
        if (!reg)
                return 0;
        pthread_rwlock_rdlock((pthread_rwlock_t *) &reg->lock);
        size_t n = reg->n;
        pthread_rwlock_unlock((pthread_rwlock_t *) &reg->lock);
        return n;
}

tool *tr__reg_find_locked(const tr_tool_registry *reg, const char *id) {
        for (size_t i = 0; i < reg->n; i++)
                if (streq(reg->tools[i]->id, id))
                        return reg->tools[i];
        return NULL;
}

tool *tr__reg_find(tr_tool_registry *reg, const char *id) {
        pthread_rwlock_rdlock(&reg->lock);
        tool *t = tr__reg_find_locked(reg, id);
        pthread_rwlock_unlock(&reg->lock);
        return t;
}

bool tr__reg_ns_exists_locked(const tr_tool_registry *reg, const char *ns) {
        for (size_t i = 0; i < reg->n; i++)
                if (streq(reg->tools[i]->ns, ns))
                        return true;
        return false;
}

/* Add all of `v` or nothing: ids must be new, to the registry and among
 * themselves.  Takes ownership of the tools on success. */
int tr__reg_add_all(tr_tool_registry *reg, tool **v, size_t n, const char *op, tr_error **ret_err) {
        pthread_rwlock_wrlock(&reg->lock);
        for (size_t i = 0; i < n; i++) {
                bool dup = tr__reg_find_locked(reg, v[i]->id) != NULL;
                for (size_t j = 0; j < i && !dup; j++)
                        dup = streq(v[j]->id, v[i]->id);
                if (dup) {
                        int r = tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, op, "duplicate tool id %s",
                                             v[i]->id);
                        pthread_rwlock_unlock(&reg->lock);
                        return r;
                }
        }
        tool **nt = realloc(reg->tools, (reg->n + n + 1) * sizeof(*nt));
        if (!nt) {
                pthread_rwlock_unlock(&reg->lock);
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, op, "out of memory");
        }
        reg->tools = nt;
        memcpy(reg->tools + reg->n, v, n * sizeof(*v));
        reg->n += n;
        pthread_rwlock_unlock(&reg->lock);
        return 0;
}

/* ---- callbacks and extra metadata ------------------------------------------ */

TR_PUBLIC int tr_tool_registry_add_callback(tr_tool_registry *reg, const char *id, const char *description,
                                            const char *schema_json, tr_tool_fn fn, void *userdata,
                                            tr_error **ret_err) {
        static const char op[] = "callback";
        if (!reg || !id || !fn)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, op, "invalid argument");
        if (!tr__gw_tool_id_valid(id))
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, op,
                                    "invalid tool id \"%s\" (namespace:name)", id);
        json_t *schema = NULL;
        if (schema_json) {
                json_error_t jerr;
                schema = json_loads(schema_json, JSON_REJECT_DUPLICATES, &jerr);
                if (!schema)
                        return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, op,
                                            "invalid schema JSON: %s", jerr.text);
        }
        const char *colon = strchr(id, ':');
        _cleanup_free_ char *ns = strndup(id, (size_t) (colon - id));
        _cleanup_(tr__tool_freep) tool *t = calloc(1, sizeof(*t));
        int r = (!ns || !t) ? tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, op, "out of memory")
                            : tr__tool_set_meta(t, ns, colon + 1, NULL, description, schema, NULL, NULL, NULL, NULL, op,
                                                ret_err);
        json_decref(schema);
        if (r < 0) {
                if (ret_err && ns && t)
                        tr_error_prefix(*ret_err, "tool %s", id);
                return r;
        }
        t->kind = SRC_CALLBACK;
        t->fn = fn;
        t->userdata = userdata;
        tool *one = t;
        r = tr__reg_add_all(reg, &one, 1, op, ret_err);
        if (r == 0)
                t = NULL;
        return r;
}

TR_PUBLIC int tr_tool_registry_add_tag(tr_tool_registry *reg, const char *id, const char *tag, tr_error **ret_err) {
        if (!reg || !id || !tag || !*tag || strlen(tag) > TR_TOOL_MAX_TAG)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, "tag", "invalid tag");
        _cleanup_free_ char *clean = tr__text_sanitize(tag, TR_TOOL_MAX_TAG);
        _cleanup_free_ char *lc = clean ? tr__lowercase(clean) : NULL;
        if (!lc)
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "tag", "out of memory");
        pthread_rwlock_wrlock(&reg->lock);
        tool *t = tr__reg_find_locked(reg, id);
        int r = 0;
        if (!t)
                r = tr_error_set(ret_err, TR_E_TOOL_NOT_FOUND, TR_BACKEND_NONE, "tag", "no tool %s", id);
        else if (tr__strv_len(t->tags) >= TR_TOOL_MAX_TAGS)
                r = tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, "tag", "more than %d tags",
                                 TR_TOOL_MAX_TAGS);
        else if (tr__strv_push(&t->tags, clean) < 0 || tr__strv_push(&t->tags_lc, lc) < 0)
                r = tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "tag", "out of memory");
        pthread_rwlock_unlock(&reg->lock);
        return r;
}

TR_PUBLIC int tr_tool_registry_add_example(tr_tool_registry *reg, const char *id, const char *description,
                                           const char *args_json, const char *result_json, tr_error **ret_err) {
        static const char op[] = "example";
        if (!reg || !id || !args_json)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, op, "invalid argument");
        json_t *ex = json_object();
        json_t *args = json_loads(args_json, 0, NULL);
        json_t *res = result_json ? json_loads(result_json, JSON_DECODE_ANY, NULL) : NULL;
        if (!ex || !args || (result_json && !res)) {
                json_decref(ex);
                json_decref(args);
                json_decref(res);
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, op, "invalid example JSON");
        }
        json_object_set_new(ex, "description", json_string(description ? description : ""));
        json_object_set_new(ex, "args", args);
        if (res)
                json_object_set_new(ex, "result", res);
        json_t *checked = NULL;
        int r = tr__example_check(ex, &checked, op, ret_err);
        json_decref(ex);
        if (r < 0)
                return r;
        pthread_rwlock_wrlock(&reg->lock);
        tool *t = tr__reg_find_locked(reg, id);
        json_t *arr = t ? json_loads(t->examples_text, 0, NULL) : NULL;
        if (!t)
                r = tr_error_set(ret_err, TR_E_TOOL_NOT_FOUND, TR_BACKEND_NONE, op, "no tool %s", id);
        else if (t->n_examples >= TR_TOOL_MAX_EXAMPLES)
                r = tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, op, "more than %d examples",
                                 TR_TOOL_MAX_EXAMPLES);
        else if (!arr || json_array_append(arr, checked) < 0)
                r = tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, op, "out of memory");
        else {
                char *txt = tr__reg_dump(arr);
                if (!txt)
                        r = tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, op, "out of memory");
                else {
                        free(t->examples_text);
                        t->examples_text = txt;
                        t->n_examples++;
                }
        }
        pthread_rwlock_unlock(&reg->lock);
        json_decref(arr);
        json_decref(checked);
        return r;
}
