/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The tool registry and the gateway built on it (include/toolruntime/
 * gateway.h): tools from manifests, MCP servers and C callbacks; search,
 * namespaces, describe, examples, run and run_chain.
 *
 * Concurrency: tools are only ever added, never removed or moved, while the
 * registry lives (the array holds pointers), so a tool found under the read
 * lock stays valid after the lock is dropped; a tool runs without any lock
 * held.  Metadata that add_tag/add_example may change is read under the lock.
 * Documents returned to callers are built fresh from text per call: jansson
 * values are never serialised from two threads at once.
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

#include "gateway/callctx.h"
#include "gateway/mcp.h"
#include "gateway/protocol.h"
#include "gateway/schema.h"
#include "gateway/spawn.h"
#include "util/handles.h"
#include "util/macros.h"
#include "util/proc.h"
#include "util/strv.h"
#include "util/timeutil.h"

#define MAX_MANIFEST       (4 * 1024 * 1024)
#define MAX_MANIFEST_TOOLS 1024
#define MAX_ARGV           64
#define MAX_ARG_LEN        4096
#define MAX_ENV_NAMES      64
#define DEFAULT_TIMEOUT_MS 30000
#define MAX_TIMEOUT_MS     (10 * 60 * 1000)
#define DEFAULT_MAX_OUTPUT (256 * 1024)
/* A result must fit in one gateway frame with its envelope. */
#define MAX_RESULT           (1024 * 1024 - 4096)
#define DEFAULT_SEARCH_LIMIT 10
#define MAX_SEARCH_LIMIT     100
#define SUMMARY_DESCRIPTION  200
/* Tool-list refreshes (list_changed) per MCP server: each retires the old
 * tools for good, so a server that changes its list forever is cut off. */
#define MAX_REFRESHES 64

/* SRC_BUILTIN is a manifest tool with "builtin": "echo" instead of a
 * command: it returns its arguments without starting a process, so that a
 * benchmark measures the gateway, not fork and exec. */
typedef enum src_kind { SRC_MANIFEST, SRC_MCP, SRC_CALLBACK, SRC_BUILTIN } src_kind;

static const char *const src_names[] = {
        [SRC_MANIFEST] = "manifest", [SRC_MCP] = "mcp", [SRC_CALLBACK] = "callback", [SRC_BUILTIN] = "builtin"
};

typedef struct tool {
        char *id;
        char *ns;
        char *name;
        char *title;       /* may be NULL */
        char *description; /* sanitised */
        json_t *schema;    /* checked; read-only once added */
        char *schema_text;
        char *output_schema_text; /* may be NULL */
        char *annotations_text;   /* may be NULL */
        char **tags;              /* lower-case copies for search live in tags_lc */
        char **tags_lc;
        char *examples_text; /* a JSON array */
        size_t n_examples;
        src_kind kind;
        /* manifest */
        char **argv;
        char *cwd;
        char **env_names; /* the caller's variables it is given: spawn.h */
        int64_t timeout_ms;
        size_t max_output;
        /* mcp */
        tr__mcp *srv; /* owned by the registry */
        char *remote_name;
        /* callback */
        tr_tool_fn fn;
        void *userdata;
} tool;

struct tr_tool_registry {
        atomic_int refs;
        pthread_rwlock_t lock;
        tool **tools;
        size_t n;
        tr__mcp **servers;
        char **server_ns; /* each server's namespace */
        size_t n_servers;
        /* Tools an MCP server's list change replaced.  Kept until the end:
         * a call may still use one (calls hold no lock while they run).
         * Bounded by MAX_REFRESHES per server. */
        tool **retired;
        size_t n_retired;
        unsigned *refreshes;
        tr_tools_changed_fn on_change;
        void *on_change_ud;
        tr_log_fn log;
        void *log_ud;
        /* HOME of every tool and MCP server of this registry: a private
         * directory made when the first one starts (a registry without
         * processes leaves nothing behind, even when killed), removed with
         * the registry.  Under home_lock, not `lock`: tools start while
         * readers hold that. */
        pthread_mutex_t home_lock;
        char *home;
        char **mcp_env_names; /* tr_tool_registry_pass_env */
        int64_t mcp_start_ms;
        int64_t mcp_call_ms;
};

static void tool_free(tool *t) {
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

static void tool_freep(tool **t) {
        tool_free(*t);
}

static void rlog(tr_tool_registry *reg, tr_log_level level, const char *msg, const char *k1, const char *v1,
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

static char *lowercase(const char *s) {
        char *c = strdup(s);
        for (char *p = c; p && *p; p++)
                *p = (char) tolower((unsigned char) *p);
        return c;
}

/* ---- building tools -------------------------------------------------------- */

static char *dump(json_t *j) {
        return json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
}

/* Fill the metadata shared by every source from already-extracted fields.
 * Everything is validated and copied; fails TR_E_INVALID_REQUEST (op `op`)
 * saying what is wrong. */
static int tool_set_meta(tool *t, const char *ns, const char *name, const char *title, const char *description,
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
        t->schema_text = dump(t->schema);
        if (!t->schema_text)
                return META_OOM();
        if (output_schema && !json_is_null(output_schema)) {
                json_t *os = NULL;
                r = tr__schema_check(output_schema, &os, op, ret_err);
                if (r < 0)
                        return r;
                t->output_schema_text = dump(os);
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
                _cleanup_free_ char *lc = lowercase(json_string_value(v));
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
        t->examples_text = dump(exs);
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
                        t->annotations_text = dump(a);
                json_decref(a);
        }
        return 0;
#undef META_INVALID
#undef META_OOM
}

/* ---- registry -------------------------------------------------------------- */

/* A variable name a tool may get from the caller: a shell identifier, and
 * not one toolruntime sets itself. */
static bool env_name_ok(const char *n) {
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

static void registry_unref(tr_tool_registry *reg) {
        if (!reg || atomic_fetch_sub(&reg->refs, 1) != 1)
                return;
        for (size_t i = 0; i < reg->n; i++)
                tool_free(reg->tools[i]);
        free(reg->tools);
        for (size_t i = 0; i < reg->n_retired; i++)
                tool_free(reg->retired[i]);
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
        registry_unref(reg);
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
static int tool_envp(tr_tool_registry *reg, char *const *names, char ***ret_envp, const char *op, tr_error **ret_err) {
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
        if (!reg || !name || !env_name_ok(name))
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

static tool *find_locked(const tr_tool_registry *reg, const char *id) {
        for (size_t i = 0; i < reg->n; i++)
                if (streq(reg->tools[i]->id, id))
                        return reg->tools[i];
        return NULL;
}

static tool *find(tr_tool_registry *reg, const char *id) {
        pthread_rwlock_rdlock(&reg->lock);
        tool *t = find_locked(reg, id);
        pthread_rwlock_unlock(&reg->lock);
        return t;
}

static bool ns_exists_locked(const tr_tool_registry *reg, const char *ns) {
        for (size_t i = 0; i < reg->n; i++)
                if (streq(reg->tools[i]->ns, ns))
                        return true;
        return false;
}

/* Add all of `v` or nothing: ids must be new, to the registry and among
 * themselves.  Takes ownership of the tools on success. */
static int add_all(tr_tool_registry *reg, tool **v, size_t n, const char *op, tr_error **ret_err) {
        pthread_rwlock_wrlock(&reg->lock);
        for (size_t i = 0; i < n; i++) {
                bool dup = find_locked(reg, v[i]->id) != NULL;
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
                if (!json_is_string(e) || !env_name_ok(json_string_value(e)))
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
        _cleanup_(tool_freep) tool *t = calloc(1, sizeof(*t));
        if (!t)
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, op, "out of memory");
        t->kind = SRC_MANIFEST;
        int r = tool_set_meta(t, ns, name, json_is_string(title) ? json_string_value(title) : NULL,
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
                r = add_all(reg, v, n, op, ret_err);
        if (r < 0)
                for (size_t i = 0; i < n; i++)
                        tool_free(v[i]);
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

/* ---- MCP servers ----------------------------------------------------------- */

/* A namespace from the server's name: lower-case [a-z0-9_-], made unique. */
static char *derive_ns_locked(tr_tool_registry *reg, const char *server_name) {
        char base[48];
        size_t o = 0;
        for (const char *p = server_name ? server_name : ""; *p && o < sizeof(base) - 1; p++) {
                unsigned char c = (unsigned char) tolower((unsigned char) *p);
                if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-')
                        base[o++] = (char) c;
                else if (o > 0 && base[o - 1] != '-')
                        base[o++] = '-';
        }
        while (o > 0 && base[o - 1] == '-')
                o--;
        base[o] = 0;
        if (!o)
                snprintf(base, sizeof(base), "mcp");
        char buf[64];
        snprintf(buf, sizeof(buf), "%s", base);
        for (int i = 2; ns_exists_locked(reg, buf) && i < 1000; i++)
                snprintf(buf, sizeof(buf), "%s-%d", base, i);
        return strdup(buf);
}

/* A tool of MCP server `srv` from its tools/list entry `jt`; fails
 * TR_E_INVALID_REQUEST (op "mcp") saying why the tool is unusable. */
static int mcp_tool(json_t *jt, const char *ns, tr__mcp *srv, tool **ret, tr_error **ret_err) {
        static const char op[] = "mcp";
        if (!json_is_object(jt))
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, op, "a tool is not an object");
        json_t *name = json_object_get(jt, "name");
        json_t *desc = json_object_get(jt, "description");
        json_t *title = json_object_get(jt, "title");
        if (!json_is_string(name) || strchr(json_string_value(name), ':'))
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, op, "a tool has no valid \"name\"");
        if ((desc && !json_is_string(desc) && !json_is_null(desc)) ||
            (title && !json_is_string(title) && !json_is_null(title)))
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, op,
                                    "tool %.64s: \"description\"/\"title\" must be strings", json_string_value(name));
        _cleanup_(tool_freep) tool *t = calloc(1, sizeof(*t));
        if (!t)
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, op, "out of memory");
        t->kind = SRC_MCP;
        int r = tool_set_meta(t, ns, json_string_value(name), json_string_value(title), json_string_value(desc),
                              json_object_get(jt, "inputSchema"), json_object_get(jt, "outputSchema"), NULL, NULL,
                              json_object_get(jt, "annotations"), op, ret_err);
        if (r < 0) {
                if (ret_err)
                        tr_error_prefix(*ret_err, "tool %.64s", json_string_value(name));
                return r;
        }
        t->srv = srv;
        t->remote_name = strdup(json_string_value(name));
        t->timeout_ms = 0;
        if (!t->remote_name)
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, op, "out of memory");
        *ret = TAKE_PTR(t);
        return 0;
}

TR_PUBLIC int tr_tool_registry_add_mcp_argv(tr_tool_registry *reg, const char *const *argv, const char *ns,
                                            tr_error **ret_err) {
        static const char op[] = "mcp";
        if (!reg || !argv || !argv[0])
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, op, "empty MCP command");
        if (ns && (!tr__tool_name_valid(ns, TR_TOOL_MAX_NAME) || strchr(ns, '/')))
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, op, "invalid namespace \"%s\"", ns);
        pthread_rwlock_rdlock(&reg->lock);
        int64_t start_ms = reg->mcp_start_ms, call_ms = reg->mcp_call_ms;
        tr_log_fn log = reg->log;
        void *log_ud = reg->log_ud;
        _cleanup_strv_ char **envp = NULL;
        int r = tool_envp(reg, reg->mcp_env_names, &envp, op, ret_err);
        pthread_rwlock_unlock(&reg->lock);
        if (r < 0)
                return r;

        tr__mcp *srv = NULL;
        r = tr__mcp_start(argv, envp, start_ms, call_ms, log, log_ud, &srv, ret_err);
        if (r < 0)
                return r;
        json_t *list = NULL;
        r = tr__mcp_list_tools(srv, NULL, &list, ret_err);
        if (r < 0) {
                tr__mcp_free(srv);
                return r;
        }
        /* Namespace choice and insertion under one write lock, so that two
         * servers added at once cannot pick the same derived namespace. */
        pthread_rwlock_wrlock(&reg->lock);
        _cleanup_free_ char *name = ns ? strdup(ns) : derive_ns_locked(reg, tr__mcp_server_name(srv));
        tr__mcp **ns_srv = realloc(reg->servers, (reg->n_servers + 1) * sizeof(*ns_srv));
        if (ns_srv)
                reg->servers = ns_srv;
        char **ns_names = ns_srv ? realloc(reg->server_ns, (reg->n_servers + 1) * sizeof(*ns_names)) : NULL;
        if (ns_names)
                reg->server_ns = ns_names;
        unsigned *ns_ref = ns_names ? realloc(reg->refreshes, (reg->n_servers + 1) * sizeof(*ns_ref)) : NULL;
        if (ns_ref)
                reg->refreshes = ns_ref;
        char *ns_copy = ns_ref && name ? strdup(name) : NULL;
        tool **nt = ns_copy ? realloc(reg->tools, (reg->n + json_array_size(list) + 1) * sizeof(*nt)) : NULL;
        if (nt)
                reg->tools = nt;
        if (!name || !ns_srv || !nt) {
                free(ns_copy);
                pthread_rwlock_unlock(&reg->lock);
                json_decref(list);
                tr__mcp_free(srv);
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, op, "out of memory");
        }
        if (ns && ns_exists_locked(reg, ns)) {
                free(ns_copy);
                pthread_rwlock_unlock(&reg->lock);
                json_decref(list);
                tr__mcp_free(srv);
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, op,
                                    "namespace \"%s\" is already in use", ns);
        }
        size_t added = 0, skipped = 0;
        size_t i;
        json_t *jt;
        json_array_foreach(list, i, jt) {
                tool *t = NULL;
                _cleanup_(tr_error_freep) tr_error *err = NULL;
                r = mcp_tool(jt, name, srv, &t, &err);
                if (r == 0 && find_locked(reg, t->id)) {
                        r = tr_error_set(&err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, op, "duplicate tool %.200s",
                                         t->id);
                        tool_free(t);
                }
                if (r < 0) {
                        skipped++;
                        /* The registry's own lock is held: log through the
                         * captured callback. */
                        if (log) {
                                const char *kv[] = { "namespace", name, "reason",
                                                     err ? tr_error_message(err) : "out of memory", NULL };
                                log(log_ud, TR_LOG_WARN, "MCP tool skipped", kv);
                        }
                        continue;
                }
                reg->tools[reg->n++] = t;
                added++;
        }
        reg->servers[reg->n_servers] = srv;
        reg->server_ns[reg->n_servers] = ns_copy;
        reg->refreshes[reg->n_servers++] = 0;
        pthread_rwlock_unlock(&reg->lock);
        json_decref(list);
        char counts[64];
        snprintf(counts, sizeof(counts), "%zu added, %zu skipped", added, skipped);
        rlog(reg, TR_LOG_INFO, "MCP server ready", "namespace", name, "tools", counts);
        return 0;
}

/* Swap in server i's new tool list (write lock held).  The old tools are
 * retired, not freed: a call may still be using one. */
static bool swap_tools_locked(tr_tool_registry *reg, size_t i, json_t *list) {
        tr__mcp *srv = reg->servers[i];
        size_t n_old = 0;
        for (size_t k = 0; k < reg->n; k++)
                n_old += reg->tools[k]->srv == srv;
        tool **ret = realloc(reg->retired, (reg->n_retired + n_old + 1) * sizeof(*ret));
        if (ret)
                reg->retired = ret;
        tool **nt = ret ? realloc(reg->tools, (reg->n + json_array_size(list) + 1) * sizeof(*nt)) : NULL;
        if (!nt)
                return false;
        reg->tools = nt;
        size_t o = 0;
        for (size_t k = 0; k < reg->n; k++) {
                if (reg->tools[k]->srv == srv)
                        reg->retired[reg->n_retired++] = reg->tools[k];
                else
                        reg->tools[o++] = reg->tools[k];
        }
        reg->n = o;
        size_t j;
        json_t *jt;
        json_array_foreach(list, j, jt) {
                tool *t = NULL;
                /* Tools that became invalid are dropped, as at the start. */
                if (mcp_tool(jt, reg->server_ns[i], srv, &t, NULL) < 0)
                        continue;
                if (find_locked(reg, t->id)) {
                        tool_free(t);
                        continue;
                }
                reg->tools[reg->n++] = t;
        }
        reg->refreshes[i]++;
        return true;
}

/* List the tools of every MCP server that said list_changed again, and swap
 * them in; then tell whoever asked (tr_tool_registry_set_change_callback).
 * The flag is seen only while this client talks to the server, so a change
 * shows up after the next call or list, not the moment it happens. */
static void refresh_changed(tr_tool_registry *reg, const tr_call_ctx *ctx) {
        bool changed = false;
        for (size_t i = 0;; i++) {
                pthread_rwlock_rdlock(&reg->lock);
                bool more = i < reg->n_servers;
                tr__mcp *srv = more ? reg->servers[i] : NULL;
                unsigned count = more ? reg->refreshes[i] : 0;
                pthread_rwlock_unlock(&reg->lock);
                if (!more)
                        break;
                if (!tr__mcp_take_list_changed(srv))
                        continue;
                if (count >= MAX_REFRESHES) {
                        rlog(reg, TR_LOG_WARN, "MCP server changes its tools too often: keeping the list it had",
                             "server", tr__mcp_server_name(srv) ? tr__mcp_server_name(srv) : "", NULL, NULL);
                        continue;
                }
                json_t *list = NULL;
                if (tr__mcp_list_tools(srv, ctx, &list, NULL) < 0) {
                        rlog(reg, TR_LOG_WARN, "MCP tools/list after list_changed failed: keeping the old list",
                             "server", tr__mcp_server_name(srv) ? tr__mcp_server_name(srv) : "", NULL, NULL);
                        continue;
                }
                pthread_rwlock_wrlock(&reg->lock);
                changed = swap_tools_locked(reg, i, list) || changed;
                pthread_rwlock_unlock(&reg->lock);
                json_decref(list);
        }
        if (!changed)
                return;
        pthread_rwlock_rdlock(&reg->lock);
        tr_tools_changed_fn fn = reg->on_change;
        void *ud = reg->on_change_ud;
        pthread_rwlock_unlock(&reg->lock);
        rlog(reg, TR_LOG_INFO, "MCP tools changed", NULL, NULL, NULL, NULL);
        if (fn)
                fn(ud);
}

TR_PUBLIC void tr_tool_registry_set_change_callback(tr_tool_registry *reg, tr_tools_changed_fn fn, void *userdata) {
        if (!reg)
                return;
        pthread_rwlock_wrlock(&reg->lock);
        reg->on_change = fn;
        reg->on_change_ud = userdata;
        pthread_rwlock_unlock(&reg->lock);
}

TR_PUBLIC int tr_tool_registry_add_mcp(tr_tool_registry *reg, const char *command_line, const char *ns,
                                       tr_error **ret_err) {
        _cleanup_strv_ char **argv = NULL;
        int r = tr__split_command(command_line, &argv, ret_err);
        if (r < 0)
                return r;
        return tr_tool_registry_add_mcp_argv(reg, (const char *const *) argv, ns, ret_err);
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
        _cleanup_(tool_freep) tool *t = calloc(1, sizeof(*t));
        int r = (!ns || !t) ? tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, op, "out of memory")
                            : tool_set_meta(t, ns, colon + 1, NULL, description, schema, NULL, NULL, NULL, NULL, op,
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
        r = add_all(reg, &one, 1, op, ret_err);
        if (r == 0)
                t = NULL;
        return r;
}

TR_PUBLIC int tr_tool_registry_add_tag(tr_tool_registry *reg, const char *id, const char *tag, tr_error **ret_err) {
        if (!reg || !id || !tag || !*tag || strlen(tag) > TR_TOOL_MAX_TAG)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, "tag", "invalid tag");
        _cleanup_free_ char *clean = tr__text_sanitize(tag, TR_TOOL_MAX_TAG);
        _cleanup_free_ char *lc = clean ? lowercase(clean) : NULL;
        if (!lc)
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "tag", "out of memory");
        pthread_rwlock_wrlock(&reg->lock);
        tool *t = find_locked(reg, id);
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
        tool *t = find_locked(reg, id);
        json_t *arr = t ? json_loads(t->examples_text, 0, NULL) : NULL;
        if (!t)
                r = tr_error_set(ret_err, TR_E_TOOL_NOT_FOUND, TR_BACKEND_NONE, op, "no tool %s", id);
        else if (t->n_examples >= TR_TOOL_MAX_EXAMPLES)
                r = tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, op, "more than %d examples",
                                 TR_TOOL_MAX_EXAMPLES);
        else if (!arr || json_array_append(arr, checked) < 0)
                r = tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, op, "out of memory");
        else {
                char *txt = dump(arr);
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

/* ---- the gateway operations ----------------------------------------------------- */

static int ret_dump(json_t *j, const char *op, char **ret_json, tr_error **ret_err) {
        if (!j)
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, op, "out of memory");
        char *s = dump(j);
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
        _cleanup_free_ char *q = lowercase(query ? query : "");
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
        tool *t = id ? find_locked(reg, id) : NULL;
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
        tool *t = id ? find_locked(reg, id) : NULL;
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
        tool *t = id ? find(reg, id) : NULL;
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

        _cleanup_free_ char *args_text = dump(args);
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
                if ((r = tool_envp(reg, t->env_names, &envp, "run_tool", ret_err)) < 0)
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
                refresh_changed(reg, ctx);
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
        registry_unref(self);
}

/* Every tool of a namespace at the schema level, for the binding generator
 * (host side, so the 1 MiB message cap does not apply; the registry's own
 * caps bound it: 1024 tools per source, 64 KiB per schema). */
static int gw_list_tools(void *self, const tr_call_ctx *ctx, const char *ns, char **ret_json, tr_error **ret_err) {
        tr_tool_registry *reg = self;
        refresh_changed(reg, ctx);
        json_t *arr = json_array();
        pthread_rwlock_rdlock(&reg->lock);
        for (size_t i = 0; arr && i < reg->n; i++)
                if (!ns || streq(reg->tools[i]->ns, ns))
                        json_array_append_new(arr, tool_json_locked(reg->tools[i], TR_DETAIL_SCHEMA));
        pthread_rwlock_unlock(&reg->lock);
        char *s = arr ? dump(arr) : NULL;
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
