/* SPDX-License-Identifier: Apache-2.0 */
/* Execute requests and their validation (before any backend is touched). */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "util/macros.h"
#include "util/strv.h"

/* The languages every backend runs (see runner.c). */
static const char *const languages[] = { "python", "sh" };

int tr__kvlist_set(tr__kvlist *l, const char *key, const char *value) {
        for (size_t i = 0; i < l->n; i++)
                if (streq(l->items[i].key, key)) {
                        char *v = strdup(value);
                        if (!v)
                                return -ENOMEM;
                        free(l->items[i].value);
                        l->items[i].value = v;
                        return 0;
                }
        tr__kv *items = realloc(l->items, (l->n + 1) * sizeof(*items));
        if (!items)
                return -ENOMEM;
        l->items = items;
        char *k = strdup(key), *v = strdup(value);
        if (!k || !v) {
                free(k);
                free(v);
                return -ENOMEM;
        }
        l->items[l->n++] = (tr__kv){ k, v };
        return 0;
}

const char *tr__kvlist_get(const tr__kvlist *l, const char *key) {
        for (size_t i = 0; i < l->n; i++)
                if (streq(l->items[i].key, key))
                        return l->items[i].value;
        return NULL;
}

void tr__kvlist_done(tr__kvlist *l) {
        for (size_t i = 0; i < l->n; i++) {
                free(l->items[i].key);
                free(l->items[i].value);
        }
        free(l->items);
        *l = (tr__kvlist){ 0 };
}

TR_PUBLIC int tr_request_new(tr_request **ret_request, tr_error **ret_err) {
        tr_request *r = calloc(1, sizeof(*r));
        if (!r)
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "request.new", "out of memory");
        tr_limits_init(&r->limits);
        *ret_request = r;
        return 0;
}

TR_PUBLIC void tr_request_free(tr_request *r) {
        if (!r)
                return;
        free(r->code);
        free(r->stdin_data);
        free(r->language);
        tr__kvlist_done(&r->metadata);
        tr__strv_free(r->args);
        for (size_t i = 0; i < r->n_files; i++) {
                free(r->files[i].path);
                free(r->files[i].data);
        }
        free(r->files);
        tr__strv_free(r->egress);
        free(r->egress_targets);
        free(r);
}

int tr__path_check(const char *path, size_t len, tr_error **ret_err) {
        const char *why = NULL;
        if (!path || len == 0)
                why = "is empty";
        else if (len > TR__PATH_MAX)
                why = "is too long";
        else if (memchr(path, '\0', len))
                why = "contains a NUL byte";
        else if (path[0] == '/')
                why = "is absolute";
        for (size_t i = 0; !why && i <= len;) {
                const char *e = memchr(path + i, '/', len - i);
                size_t n = (e ? (size_t) (e - path) : len) - i;
                if (n == 0)
                        why = "has an empty component";
                else if ((n == 1 && path[i] == '.') || (n == 2 && path[i] == '.' && path[i + 1] == '.'))
                        why = "has a '.' or '..' component";
                i += n + 1;
        }
        if (why)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, "file",
                                    "file path %s: a path must be relative to the working directory, with no '..', "
                                    "'.' or empty component",
                                    why);
        return 0;
}

TR_PUBLIC int tr_request_add_file(tr_request *r, const char *path, const void *data, size_t len, tr_error **ret_err) {
        if (!r)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, "file", "no request");
        int e = tr__path_check(path, path ? strlen(path) : 0, ret_err);
        if (e < 0)
                return e;
        if (r->n_files >= TR_MAX_REQUEST_FILES)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, "file",
                                    "too many input files (at most %d)", TR_MAX_REQUEST_FILES);
        if (len > TR_MAX_STDIN_BYTES || r->files_bytes + len > TR_MAX_STDIN_BYTES)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, "file",
                                    "input files hold more than %d bytes in all", TR_MAX_STDIN_BYTES);
        for (size_t i = 0; i < r->n_files; i++)
                if (streq(r->files[i].path, path))
                        return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, "file",
                                            "input file %s is given twice", path);
        tr__req_file *nf = realloc(r->files, (r->n_files + 1) * sizeof(*nf));
        if (!nf)
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "file", "out of memory");
        r->files = nf;
        tr__req_file f = { .path = strdup(path), .data = malloc(len ? len : 1), .len = len };
        if (!f.path || !f.data) {
                free(f.path);
                free(f.data);
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "file", "out of memory");
        }
        if (len)
                memcpy(f.data, data, len);
        r->files[r->n_files++] = f;
        r->files_bytes += len;
        return 0;
}

TR_PUBLIC size_t tr_request_file_count(const tr_request *r) {
        return r ? r->n_files : 0;
}

TR_PUBLIC const char *tr_request_file_at(const tr_request *r, size_t i, const void **ret_data, size_t *ret_len) {
        if (!r || i >= r->n_files)
                return NULL;
        if (ret_data)
                *ret_data = r->files[i].data;
        if (ret_len)
                *ret_len = r->files[i].len;
        return r->files[i].path;
}

TR_PUBLIC int tr_request_set_code(tr_request *r, const char *code, size_t len, tr_error **ret_err) {
        char *c = malloc(len + 1);
        if (!c)
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "request.set_code", "out of memory");
        if (len)
                memcpy(c, code, len);
        c[len] = '\0';
        free(r->code);
        r->code = c;
        r->code_len = len;
        return 0;
}

TR_PUBLIC int tr_request_set_stdin(tr_request *r, const char *data, size_t len, tr_error **ret_err) {
        if (len > TR_MAX_STDIN_BYTES)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, "request.set_stdin",
                                    "standard input is %zu bytes; at most %d", len, TR_MAX_STDIN_BYTES);
        char *c = NULL;
        if (data && !(c = malloc(len + 1)))
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "request.set_stdin", "out of memory");
        if (c) {
                if (len)
                        memcpy(c, data, len);
                c[len] = '\0';
        }
        free(r->stdin_data);
        r->stdin_data = c;
        r->stdin_len = c ? len : 0;
        return 0;
}

TR_PUBLIC const char *tr_request_stdin(const tr_request *r, size_t *ret_len) {
        if (ret_len)
                *ret_len = r->stdin_len;
        return r->stdin_data;
}

TR_PUBLIC int tr_request_set_language(tr_request *r, const char *language, tr_error **ret_err) {
        char *l = NULL;
        if (language && *language && !(l = strdup(language)))
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "request.set_language", "out of memory");
        free(r->language);
        r->language = l;
        return 0;
}

TR_PUBLIC void tr_request_set_timeout_ms(tr_request *r, int64_t ms) {
        r->timeout_ms = ms;
}
TR_PUBLIC void tr_request_set_limits(tr_request *r, const tr_limits *l) {
        if (l)
                r->limits = *l;
        else
                tr_limits_init(&r->limits);
}
TR_PUBLIC void tr_request_set_profile(tr_request *r, tr_profile p) {
        r->profile = p;
}
TR_PUBLIC void tr_request_set_gateway(tr_request *r, tr_gateway *gw) {
        r->gateway = gw;
}
TR_PUBLIC void tr_request_set_max_output(tr_request *r, size_t bytes) {
        r->max_output = bytes;
}

TR_PUBLIC int tr_request_set_metadata(tr_request *r, const char *key, const char *value, tr_error **ret_err) {
        if (!key || !*key || !value)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, "request.set_metadata",
                                    "metadata needs a non-empty key and a value");
        if (tr__kvlist_set(&r->metadata, key, value) < 0)
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "request.set_metadata", "out of memory");
        return 0;
}

TR_PUBLIC const char *tr_request_code(const tr_request *r, size_t *ret_len) {
        if (ret_len)
                *ret_len = r->code_len;
        return r->code ? r->code : "";
}
TR_PUBLIC const char *tr_request_language(const tr_request *r) {
        return r->language ? r->language : "";
}
TR_PUBLIC const char *tr_request_effective_language(const tr_request *r) {
        return r->language ? r->language : "python";
}
TR_PUBLIC int64_t tr_request_timeout_ms(const tr_request *r) {
        return r->timeout_ms;
}
TR_PUBLIC int64_t tr_request_effective_timeout_ms(const tr_request *r) {
        return r->timeout_ms > 0 ? r->timeout_ms : TR_DEFAULT_TIMEOUT_MS;
}
TR_PUBLIC const tr_limits *tr_request_limits(const tr_request *r) {
        return &r->limits;
}
TR_PUBLIC tr_profile tr_request_profile(const tr_request *r) {
        return r->profile;
}
TR_PUBLIC tr_gateway *tr_request_gateway(const tr_request *r) {
        return r->gateway;
}
TR_PUBLIC size_t tr_request_max_output(const tr_request *r) {
        return r->max_output ? r->max_output : TR_DEFAULT_MAX_OUTPUT;
}
TR_PUBLIC int tr_request_add_arg(tr_request *r, const char *arg, tr_error **ret_err) {
        if (!arg || r->n_args >= TR_MAX_ARGS || strlen(arg) > TR_MAX_ARG_BYTES)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, "request.add_arg",
                                    "a snippet takes at most %d arguments of at most %d bytes each", TR_MAX_ARGS,
                                    TR_MAX_ARG_BYTES);
        if (tr__strv_push(&r->args, arg) < 0)
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "request.add_arg", "out of memory");
        r->n_args++;
        return 0;
}

TR_PUBLIC size_t tr_request_arg_count(const tr_request *r) {
        return r->n_args;
}

TR_PUBLIC const char *tr_request_arg_at(const tr_request *r, size_t i) {
        return i < r->n_args ? r->args[i] : NULL;
}

TR_PUBLIC int tr_request_set_egress_allow(tr_request *r, const char *const *host_ports, size_t n, tr_error **ret_err) {
        if (n > TR_MAX_EGRESS_ALLOW)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, "request.egress",
                                    "the egress allowlist has %zu entries; at most %d", n, TR_MAX_EGRESS_ALLOW);
        if (n && !host_ports)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, "request.egress",
                                    "no allowlist entries given");
        _cleanup_free_ tr__egress_target *targets = n ? calloc(n, sizeof *targets) : NULL;
        _cleanup_strv_ char **v = NULL;
        if (n && !targets)
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "request.egress", "out of memory");
        for (size_t i = 0; i < n; i++) {
                const char *e = host_ports[i], *why = NULL;
                if (!e || tr__egress_parse(e, strlen(e), &targets[i], &why) < 0)
                        return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, "request.egress",
                                            "egress allowlist entry '%.*s' is invalid: %s (write HOST:PORT, "
                                            "[IPv6]:PORT)",
                                            e ? TR_MAX_EGRESS_ENTRY_BYTES : 0, e ? e : "", why ? why : "missing");
                if (tr__strv_push(&v, e) < 0)
                        return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "request.egress", "out of memory");
        }
        tr__strv_free(r->egress);
        free(r->egress_targets);
        r->egress = TAKE_PTR(v);
        r->egress_targets = TAKE_PTR(targets);
        r->n_egress = n;
        return 0;
}

TR_PUBLIC size_t tr_request_egress_allow_count(const tr_request *r) {
        return r->n_egress;
}

TR_PUBLIC const char *tr_request_egress_allow_at(const tr_request *r, size_t i) {
        return i < r->n_egress ? r->egress[i] : NULL;
}

TR_PUBLIC int tr_request_egress_allow_within(const tr_request *r, const char *const *ceiling, size_t n,
                                             tr_error **ret_err) {
        for (size_t i = 0; i < r->n_egress; i++) {
                bool in = false;
                for (size_t k = 0; k < n && !in; k++) {
                        tr__egress_target c;
                        const char *e = ceiling[k], *why = NULL;
                        if (!e || tr__egress_parse(e, strlen(e), &c, &why) < 0)
                                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, "request.egress",
                                                    "egress ceiling entry '%.*s' is invalid: %s",
                                                    e ? TR_MAX_EGRESS_ENTRY_BYTES : 0, e ? e : "",
                                                    why ? why : "missing");
                        in = tr__egress_match(&c, 1, &r->egress_targets[i]);
                }
                if (!in)
                        return tr_error_set(ret_err, TR_E_BACKEND_DENIED, TR_BACKEND_NONE, "request.egress",
                                            "egress allowlist entry '%s' is not among the targets allowed here (the "
                                            "operator's ceiling, serve's --egress-allow-max)",
                                            r->egress[i]);
        }
        return 0;
}

TR_PUBLIC size_t tr_request_metadata_count(const tr_request *r) {
        return r->metadata.n;
}
TR_PUBLIC void tr_request_metadata_at(const tr_request *r, size_t i, const char **ret_key, const char **ret_value) {
        if (i >= r->metadata.n) {
                *ret_key = *ret_value = NULL;
                return;
        }
        *ret_key = r->metadata.items[i].key;
        *ret_value = r->metadata.items[i].value;
}

static bool all_space(const char *s, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (!isspace((unsigned char) s[i]))
                        return false;
        return true;
}

TR_PUBLIC int tr_request_validate(const tr_request *r, tr_error **ret_err) {
        if (!r)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, "validate", "no request");
        if (!r->code || r->code_len == 0 || all_space(r->code, r->code_len))
                return tr_error_set(ret_err, TR_E_MISSING_CODE, TR_BACKEND_NONE, "validate",
                                    "code is required: the request has no code to run");
        return tr__request_validate_shape(r, ret_err);
}

int tr__request_validate_shape(const tr_request *r, tr_error **ret_err) {
        if (!r)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, "validate", "no request");
        if (!r->gateway)
                return tr_error_set(ret_err, TR_E_MISSING_GATEWAY, TR_BACKEND_NONE, "validate",
                                    "a tool gateway is required (tr_gateway_new_empty() gives one with no tools)");
        const tr_limits *l = &r->limits;
        const struct {
                const char *name;
                int64_t v;
        } lim[] = {
                { "max_tool_calls", l->max_tool_calls },
                { "max_chain_steps", l->max_chain_steps },
                { "cpu_quota_ms", l->cpu_quota_ms },
                { "memory_bytes", l->memory_bytes },
                { "pids_max", l->pids_max },
                { "disk_bytes", l->disk_bytes },
        };
        for (size_t i = 0; i < ARRAY_SIZE(lim); i++) {
                if (lim[i].v < 0 && lim[i].v != TR_LIMIT_UNSET)
                        return tr_error_set(ret_err, TR_E_INVALID_LIMITS, TR_BACKEND_NONE, "validate",
                                            "limit %s is negative (%lld); zero means unlimited, "
                                            "TR_LIMIT_UNSET (-1) the profile's default",
                                            lim[i].name, (long long) lim[i].v);
                /* Backends scale limits (ms to us, bytes plus VM overhead);
                 * a bound far above any real machine keeps that arithmetic
                 * from overflowing. */
                if (lim[i].v > TR_LIMIT_MAX)
                        return tr_error_set(ret_err, TR_E_INVALID_LIMITS, TR_BACKEND_NONE, "validate",
                                            "limit %s is too large (%lld; at most %lld)", lim[i].name,
                                            (long long) lim[i].v, (long long) TR_LIMIT_MAX);
        }
        if (r->timeout_ms > TR_TIMEOUT_MAX_MS)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, "validate",
                                    "timeout is too large (%lld ms; at most %lld)", (long long) r->timeout_ms,
                                    (long long) TR_TIMEOUT_MAX_MS);
        if (r->timeout_ms < 0)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, "validate",
                                    "timeout is negative (%lld ms); zero means the default", (long long) r->timeout_ms);
        if ((unsigned) r->profile >= TR__PROFILE_MAX)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, "validate", "unknown profile %d",
                                    (int) r->profile);
        if (r->language) {
                bool known = false;
                for (size_t i = 0; i < ARRAY_SIZE(languages); i++)
                        known = known || streq(languages[i], r->language);
                if (!known)
                        return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, "validate",
                                            "unknown language '%s' (known: python, sh)", r->language);
        }
        return 0;
}

TR_PUBLIC void tr_request_set_tool_call_callback(tr_request *req, tr_tool_call_fn fn, void *userdata) {
        req->tool_call_fn = fn;
        req->tool_call_userdata = fn ? userdata : NULL;
}

TR_PUBLIC void tr_request_set_output_callback(tr_request *req, tr_output_fn fn, void *userdata) {
        req->output_fn = fn;
        req->output_userdata = fn ? userdata : NULL;
}
