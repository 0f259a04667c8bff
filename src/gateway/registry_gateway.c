/* SPDX-License-Identifier: Apache-2.0 */
/* The gateway operations over a registry (tr_gateway_ops): search,
 * namespaces, describe, examples, run and run_chain, each with its call
 * context.  See registry.h. */
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

/* SRC_* names, as tools describe their source. */
static const char *const src_names[] = {
        [SRC_MANIFEST] = "manifest", [SRC_MCP] = "mcp", [SRC_CALLBACK] = "callback", [SRC_BUILTIN] = "builtin"
};

/* ---- the gateway operations ----------------------------------------------------- */

static int ret_dump(json_t *j, const char *op, char **ret_json, tr_error **ret_err) {
        if (!j)
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, op, "out of memory");
        char *s = tr__reg_dump(j);
        json_decref(j);
        if (!s)
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, op, "out of memory");
        if (strlen(s) > MAX_RESULT) {
                free(s);
                return tr_error_set(ret_err, TR_E_TOOL_FAILED, TR_BACKEND_NONE, op, "the result exceeds %d bytes",
                                    MAX_RESULT);
        }
        *ret_json = s;
        return 0;
}

/* Built under the read lock (tags may change). */
static json_t *tool_json_locked(const tool *t, tr_detail_level level) {
        json_t *o = json_object();
        json_t *tags = json_array();
        if (!o || !tags) {
                json_decref(o);
                json_decref(tags);
                return NULL;
        }
        for (size_t i = 0; t->tags && t->tags[i]; i++)
                json_array_append_new(tags, json_string(t->tags[i]));
        json_object_set_new(o, "id", json_string(t->id));
        json_object_set_new(o, "namespace", json_string(t->ns));
        json_object_set_new(o, "name", json_string(t->name));
        if (t->title)
                json_object_set_new(o, "title", json_string(t->title));
        if (level == TR_DETAIL_SUMMARY) {
                /* A summary carries the first line of the description, cut
                 * short: search results should be cheap to read. */
                size_t n = strcspn(t->description, "\n");
                if (n > SUMMARY_DESCRIPTION) {
                        n = SUMMARY_DESCRIPTION;
                        while (n > 0 && ((unsigned char) t->description[n] & 0xC0) == 0x80)
                                n--;
                }
                json_object_set_new(o, "description", json_stringn(t->description, n));
        } else
                json_object_set_new(o, "description", json_string(t->description));
        json_object_set_new(o, "tags", tags);
        if (level >= TR_DETAIL_SCHEMA) {
                json_object_set_new(o, "input_schema", json_loads(t->schema_text, 0, NULL));
                if (t->output_schema_text)
                        json_object_set_new(o, "output_schema", json_loads(t->output_schema_text, 0, NULL));
        }
        if (level >= TR_DETAIL_FULL) {
                json_object_set_new(o, "examples", json_loads(t->examples_text, 0, NULL));
                json_object_set_new(o, "source", json_string(src_names[t->kind]));
                if (t->annotations_text)
                        json_object_set_new(o, "annotations", json_loads(t->annotations_text, 0, NULL));
                if (t->kind == SRC_MANIFEST)
                        json_object_set_new(o, "timeout_ms", json_integer(t->timeout_ms));
        }
        return o;
}

typedef struct hit {
        const tool *t;
        int score;
} hit;

static int hit_cmp(const void *a, const void *b) {
        const hit *x = a, *y = b;
        if (x->score != y->score)
                return y->score - x->score;
        return strcmp(x->t->id, y->t->id);
}

static bool contains_lc(const char *hay, const char *needle) {
        /* Case-insensitive substring; hay is ASCII-lowered on the fly. */
        size_t nl = strlen(needle);
        for (const char *h = hay; *h; h++) {
                size_t i = 0;
                while (i < nl && h[i] && tolower((unsigned char) h[i]) == needle[i])
                        i++;
                if (i == nl)
                        return true;
        }
        return false;
}

static int score_tool(const tool *t, char **terms, size_t n_terms) {
        if (n_terms == 0)
                return 1;
        int score = 0;
        for (size_t k = 0; k < n_terms; k++) {
                const char *q = terms[k];
                int s = 0;
                if (strcasecmp(t->name, q) == 0)
                        s += 10;
                else if (contains_lc(t->name, q))
                        s += 6;
                if (strcasecmp(t->ns, q) == 0)
                        s += 4;
                for (size_t i = 0; t->tags_lc && t->tags_lc[i]; i++) {
                        if (streq(t->tags_lc[i], q))
                                s += 5;
                        else if (strstr(t->tags_lc[i], q))
                                s += 2;
                }
                if (t->title && contains_lc(t->title, q))
                        s += 3;
                if (contains_lc(t->description, q))
                        s += 2;
                score += s;
        }
        return score;
}

static int gw_search(void *self, const tr_call_ctx *ctx, const char *query, int limit, char **ret_json,
                     tr_error **ret_err) {
        tr_tool_registry *reg = self;
        if (limit <= 0)
                limit = DEFAULT_SEARCH_LIMIT;
        if (limit > MAX_SEARCH_LIMIT)
                limit = MAX_SEARCH_LIMIT;
        /* Terms: lower-cased alphanumeric runs, a bounded number of them. */
        char *terms[16];
        size_t n_terms = 0;
        _cleanup_free_ char *q = tr__lowercase(query ? query : "");
        if (!q)
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "search_tools", "out of memory");
        for (char *p = q; *p && n_terms < ARRAY_SIZE(terms);) {
                while (*p && !isalnum((unsigned char) *p) && !((unsigned char) *p & 0x80))
                        *p++ = 0;
                if (!*p)
                        break;
                terms[n_terms++] = p;
                while (*p && (isalnum((unsigned char) *p) || ((unsigned char) *p & 0x80)))
                        p++;
        }
        pthread_rwlock_rdlock(&reg->lock);
        hit *hits = calloc(reg->n + 1, sizeof(*hits));
        size_t nh = 0;
        for (size_t i = 0; hits && i < reg->n; i++) {
                int s = score_tool(reg->tools[i], terms, n_terms);
                if (s > 0)
                        hits[nh++] = (hit){ reg->tools[i], s };
        }
        json_t *arr = hits ? json_array() : NULL;
        if (arr) {
                qsort(hits, nh, sizeof(*hits), hit_cmp);
                for (size_t i = 0; i < nh && i < (size_t) limit; i++)
                        json_array_append_new(arr, tool_json_locked(hits[i].t, TR_DETAIL_SUMMARY));
        }
        pthread_rwlock_unlock(&reg->lock);
        free(hits);
        return ret_dump(arr, "search_tools", ret_json, ret_err);
}

static int gw_namespaces(void *self, const tr_call_ctx *ctx, char **ret_json, tr_error **ret_err) {
        tr_tool_registry *reg = self;
        json_t *arr = json_array();
        pthread_rwlock_rdlock(&reg->lock);
        for (size_t i = 0; arr && i < reg->n; i++) {
                bool seen = false;
                for (size_t j = 0; j < i && !seen; j++)
                        seen = streq(reg->tools[j]->ns, reg->tools[i]->ns);
                if (!seen)
                        json_array_append_new(arr, json_string(reg->tools[i]->ns));
        }
        pthread_rwlock_unlock(&reg->lock);
        return ret_dump(arr, "list_namespaces", ret_json, ret_err);
}

static int not_found(const char *op, const char *id, tr_error **ret_err) {
        return tr_error_set(ret_err, TR_E_TOOL_NOT_FOUND, TR_BACKEND_NONE, op, "no tool \"%.256s\"", id ? id : "");
}

static int gw_describe(void *self, const tr_call_ctx *ctx, const char *id, tr_detail_level level, char **ret_json,
                       tr_error **ret_err) {
        tr_tool_registry *reg = self;
        if ((unsigned) level > TR_DETAIL_FULL)
                return tr_error_set(ret_err, TR_E_INVALID_ARGUMENTS, TR_BACKEND_NONE, "describe_tool",
                                    "invalid detail level");
        pthread_rwlock_rdlock(&reg->lock);
        tool *t = id ? tr__reg_find_locked(reg, id) : NULL;
        json_t *o = t ? tool_json_locked(t, level) : NULL;
        pthread_rwlock_unlock(&reg->lock);
        if (!t)
                return not_found("describe_tool", id, ret_err);
        return ret_dump(o, "describe_tool", ret_json, ret_err);
}

static int gw_examples(void *self, const tr_call_ctx *ctx, const char *id, int max, char **ret_json,
                       tr_error **ret_err) {
        tr_tool_registry *reg = self;
        pthread_rwlock_rdlock(&reg->lock);
        tool *t = id ? tr__reg_find_locked(reg, id) : NULL;
        json_t *arr = t ? json_loads(t->examples_text, 0, NULL) : NULL;
        pthread_rwlock_unlock(&reg->lock);
        if (!t)
                return not_found("list_tool_examples", id, ret_err);
        while (arr && max > 0 && json_array_size(arr) > (size_t) max)
                json_array_remove(arr, json_array_size(arr) - 1);
        return ret_dump(arr, "list_tool_examples", ret_json, ret_err);
}

/* Run one tool on already-parsed arguments; *ret is a new JSON value. */
static int run_parsed(tr_tool_registry *reg, const tr_call_ctx *ctx, const char *id, json_t *args, json_t **ret,
                      tr_error **ret_err) {
        tool *t = id ? tr__reg_find(reg, id) : NULL;
        if (!t)
                return not_found("run_tool", id, ret_err);
        if (!json_is_object(args))
                return tr_error_set(ret_err, TR_E_INVALID_ARGUMENTS, TR_BACKEND_NONE, "validate",
                                    "%s: the arguments must be a JSON object", t->id);
        int r = tr__schema_validate(t->schema, args, ret_err);
        if (r < 0) {
                if (ret_err)
                        tr_error_prefix(*ret_err, "%s", t->id);
                return r;
        }

        _cleanup_free_ char *args_text = tr__reg_dump(args);
        if (!args_text)
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "run_tool", "out of memory");
        _cleanup_free_ char *out = NULL;
        switch (t->kind) {
        case SRC_MANIFEST: {
                size_t len = 0;
                /* The tool's own timeout, cut short by the calling
                 * execution's deadline. */
                int64_t now = tr__now_ns();
                int64_t until = tr__call_ctx_clamp(ctx, now + t->timeout_ms * TR_NSEC_PER_MSEC);
                int64_t tmo = (until - now) / TR_NSEC_PER_MSEC;
                if (tmo <= 0)
                        return tr_error_set(ret_err, TR_E_TIMEOUT, TR_BACKEND_NONE, "run",
                                            "%s: the execution's deadline has passed", t->id);
                _cleanup_strv_ char **envp = NULL;
                if ((r = tr__reg_tool_envp(reg, t->env_names, &envp, "run_tool", ret_err)) < 0)
                        return r;
                pthread_rwlock_rdlock(&reg->lock);
                tr__errlog errlog = { .log = reg->log, .log_ud = reg->log_ud, .key = "tool", .who = t->id };
                pthread_rwlock_unlock(&reg->lock);
                r = tr__proc_run(ctx, t->argv, t->cwd, envp, &errlog, args_text, strlen(args_text), tmo, t->max_output,
                                 &out, &len, ret_err);
                if (r < 0)
                        break;
                /* Whitespace only (or nothing) means null. */
                size_t k = strspn(out, " \t\r\n");
                if (out[k] == 0) {
                        *ret = json_null();
                        return 0;
                }
                if (strlen(out) != len)
                        return tr_error_set(ret_err, TR_E_TOOL_FAILED, TR_BACKEND_NONE, "run_tool",
                                            "%s printed a NUL byte", t->id);
                json_error_t jerr;
                json_t *j = json_loads(out, JSON_DECODE_ANY, &jerr);
                if (!j)
                        return tr_error_set(ret_err, TR_E_TOOL_FAILED, TR_BACKEND_NONE, "run_tool",
                                            "%s printed invalid JSON: %s", t->id, jerr.text);
                *ret = j;
                return 0;
        }
        case SRC_MCP:
                r = tr__mcp_call_tool(t->srv, ctx, t->remote_name, args, ret, ret_err);
                /* A call is when a list_changed is seen (see refresh_changed). */
                tr__reg_refresh_changed(reg, ctx);
                return r;
        case SRC_BUILTIN: *ret = json_incref(args); return 0;
        case SRC_CALLBACK: {
                r = t->fn(t->userdata, args_text, &out, ret_err);
                if (r < 0) {
                        if (ret_err && !*ret_err)
                                tr_error_set(ret_err, TR_E_TOOL_FAILED, TR_BACKEND_NONE, "run_tool", "%s failed",
                                             t->id);
                        return r;
                }
                json_error_t jerr;
                json_t *j = out ? json_loads(out, JSON_DECODE_ANY, &jerr) : json_null();
                if (!j)
                        return tr_error_set(ret_err, TR_E_TOOL_FAILED, TR_BACKEND_NONE, "run_tool",
                                            "%s returned invalid JSON: %s", t->id, jerr.text);
                *ret = j;
                return 0;
        }
        default: r = tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "run_tool", "unknown tool kind");
        }
        return r;
}

static int gw_run(void *self, const tr_call_ctx *ctx, const char *id, const char *args_json, char **ret_json,
                  tr_error **ret_err) {
        json_error_t jerr;
        json_t *args = json_loads(args_json && *args_json ? args_json : "{}", JSON_REJECT_DUPLICATES, &jerr);
        if (!args)
                return tr_error_set(ret_err, TR_E_INVALID_ARGUMENTS, TR_BACKEND_NONE, "validate",
                                    "arguments are not valid JSON: %s", jerr.text);
        json_t *res = NULL;
        int r = run_parsed(self, ctx, id, args, &res, ret_err);
        json_decref(args);
        if (r < 0)
                return r;
        return ret_dump(res, "run_tool", ret_json, ret_err);
}

static int gw_chain(void *self, const tr_call_ctx *ctx, const char *steps_json, char **ret_json, tr_error **ret_err) {
        json_error_t jerr;
        json_t *steps = json_loads(steps_json ? steps_json : "", JSON_REJECT_DUPLICATES, &jerr);
        if (!steps)
                return tr_error_set(ret_err, TR_E_INVALID_ARGUMENTS, TR_BACKEND_NONE, "run_chain",
                                    "steps are not valid JSON: %s", jerr.text);
        _cleanup_free_ tr__gw_chain_step *v = NULL;
        size_t n = 0;
        int r = tr__gw_chain_parse(steps, &v, &n, ret_err);
        json_t *prev = NULL;
        for (size_t i = 0; r == 0 && i < n; i++) {
                json_t *args = tr__gw_chain_step_args(&v[i], prev);
                json_t *res = NULL;
                r = args ? run_parsed(self, ctx, v[i].tool_id, args, &res, ret_err)
                         : tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "run_chain", "out of memory");
                json_decref(args);
                if (r < 0 && ret_err && *ret_err)
                        tr_error_prefix(*ret_err, "chain step %zu (%s)", i, v[i].tool_id);
                json_decref(prev);
                prev = res;
        }
        json_decref(steps);
        if (r < 0) {
                json_decref(prev);
                return r;
        }
        return ret_dump(prev, "run_chain", ret_json, ret_err);
}

static void gw_free(void *self) {
        tr__reg_unref(self);
}

/* Every tool of a namespace at the schema level, for the binding generator
 * (host side, so the 1 MiB message cap does not apply; the registry's own
 * caps bound it: 1024 tools per source, 64 KiB per schema). */
static int gw_list_tools(void *self, const tr_call_ctx *ctx, const char *ns, char **ret_json, tr_error **ret_err) {
        tr_tool_registry *reg = self;
        tr__reg_refresh_changed(reg, ctx);
        json_t *arr = json_array();
        pthread_rwlock_rdlock(&reg->lock);
        for (size_t i = 0; arr && i < reg->n; i++)
                if (!ns || streq(reg->tools[i]->ns, ns))
                        json_array_append_new(arr, tool_json_locked(reg->tools[i], TR_DETAIL_SCHEMA));
        pthread_rwlock_unlock(&reg->lock);
        char *s = arr ? tr__reg_dump(arr) : NULL;
        json_decref(arr);
        if (!s)
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "list_tools", "out of memory");
        *ret_json = s;
        return 0;
}

static const tr_gateway_ops registry_ops = {
        .search_tools = gw_search,
        .list_namespaces = gw_namespaces,
        .describe_tool = gw_describe,
        .list_tool_examples = gw_examples,
        .run_tool = gw_run,
        .run_chain = gw_chain,
        .free = gw_free,
        .list_tools = gw_list_tools,
};

TR_PUBLIC int tr_tool_registry_gateway(tr_tool_registry *reg, tr_gateway **ret_gateway, tr_error **ret_err) {
        if (!reg || !ret_gateway)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, "registry", "invalid argument");
        atomic_fetch_add(&reg->refs, 1);
        /* tr_gateway_new releases `self` through ops->free on failure. */
        return tr_gateway_new(&registry_ops, reg, ret_gateway, ret_err);
}
