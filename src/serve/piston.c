/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Piston's v2 API (/api/v2/execute, /api/v2/runtimes), so Piston clients
 * work unchanged: its request shape mapped onto a job that runs through the
 * same execute path as /v1/execute (api.c), and its result and error shapes
 * back.  Input is untrusted, as on /v1: a bad field is a 400 naming it.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve/serve.h"
#include "util/handles.h"
#include "util/macros.h"

/* The interpreters the sandbox image ships (Debian bookworm's python3 and
 * dash), reported by /api/v2/runtimes: Piston clients send the version
 * back, and we accept it, "*" or none. */
#define PYTHON_VERSION "3.11.2"
#define SH_VERSION     "0.5.12"

/* Piston's errors are {"message": "..."}. */
static void piston_error(tr__serve_reply *ret, unsigned status, const char *msg) {
        json_t *o = json_pack("{s:s}", "message", msg);
        ret->status = status;
        ret->content_type = "application/json";
        ret->body = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
}

typedef tr__serve_job job;

/* Piston's language names for ours. */
static const char *piston_language(const char *name) {
        static const char *const py[] = { "python", "python3", "py", "py3", NULL };
        for (size_t i = 0; py[i]; i++)
                if (streq(name, py[i]))
                        return "python";
        if (streq(name, "sh"))
                return "sh";
        return NULL;
}

/* Piston's limits: -1 (or absent) is the server's default; a positive
 * value is ours to enforce. */
static bool piston_limit(json_t *o, const char *key, int64_t *ret, char *msg, size_t msgsz) {
        int64_t v = -1;
        if (!tr__serve_get_int(o, key, &v, msg, msgsz))
                return false;
        if (v < -1) {
                snprintf(msg, msgsz, "'%s' must be -1 or a positive number", key);
                return false;
        }
        *ret = v > 0 ? v : TR_LIMIT_UNSET;
        return true;
}

void tr__serve_piston_execute(const tr__serve_ctx *ctx, const char *body, size_t len, tr__serve_reply *ret) {
        static const char *const top[] = { "language",
                                           "version",
                                           "files",
                                           "stdin",
                                           "args",
                                           "compile_timeout",
                                           "run_timeout",
                                           "compile_memory_limit",
                                           "run_memory_limit",
                                           "compile_cpu_time",
                                           "run_cpu_time",
                                           NULL };
        char msg[256] = "";
        _cleanup_(json_decrefp) json_t *o = tr__serve_parse_body(body, len, msg, sizeof(msg));
        const char *lang_name = NULL, *version = NULL, *stdin_s = NULL;
        job jb = { 0 };
        tr_limits_init(&jb.limits);
        int64_t ignored = 0;
        bool ok = o && tr__serve_only_keys(o, top, "", msg, sizeof(msg)) &&
                  tr__serve_get_str(o, "language", &lang_name, msg, sizeof(msg)) &&
                  tr__serve_get_str(o, "version", &version, msg, sizeof(msg)) &&
                  tr__serve_get_str(o, "stdin", &stdin_s, msg, sizeof(msg)) &&
                  piston_limit(o, "run_timeout", &jb.timeout_ms, msg, sizeof(msg)) &&
                  piston_limit(o, "run_memory_limit", &jb.limits.memory_bytes, msg, sizeof(msg)) &&
                  piston_limit(o, "compile_timeout", &ignored, msg, sizeof(msg)) &&
                  piston_limit(o, "compile_memory_limit", &ignored, msg, sizeof(msg));
        if (jb.timeout_ms < 0) /* Piston's -1: the server's default */
                jb.timeout_ms = 0;
        jb.args = o ? json_object_get(o, "args") : NULL;
        ok = ok && tr__serve_string_array(jb.args, "args", msg, sizeof(msg));
        if (ok && !lang_name) {
                snprintf(msg, sizeof(msg), "language is required");
                ok = false;
        }
        if (ok && !(jb.language = piston_language(lang_name))) {
                snprintf(msg, sizeof(msg), "runtime is unknown: %.64s (this server runs python and sh)", lang_name);
                ok = false;
        }
        const char *our_version = jb.language && streq(jb.language, "sh") ? SH_VERSION : PYTHON_VERSION;
        if (ok && version && !streq(version, "*") && !streq(version, our_version)) {
                snprintf(msg, sizeof(msg), "runtime is unknown: %.64s-%.32s (this server has %s)", lang_name, version,
                         our_version);
                ok = false;
        }
        json_t *files = o ? json_object_get(o, "files") : NULL, *first = json_array_get(files, 0);
        json_t *content = json_object_get(first, "content");
        if (ok && (!json_is_array(files) || json_array_size(files) < 1 || !json_is_string(content))) {
                snprintf(msg, sizeof(msg), "files must hold at least one file with a string 'content'");
                ok = false;
        }
        /* The first file is the program; the others are written beside it
         * under their "name" (the library checks the names: relative, no
         * "..", no empty component). */
        _cleanup_(json_decrefp) json_t *more = json_array();
        for (size_t i = 1; ok && i < json_array_size(files); i++) {
                json_t *f = json_array_get(files, i);
                const char *name = json_string_value(json_object_get(f, "name"));
                json_t *fc = json_object_get(f, "content"), *enc = json_object_get(f, "encoding");
                if (!name || !json_is_string(fc) || (enc && !json_is_null(enc) && !json_is_string(enc))) {
                        snprintf(msg, sizeof(msg), "files[%zu] must have a string 'name' and 'content'", i);
                        ok = false;
                } else if (json_is_string(enc) && !streq(json_string_value(enc), "utf8") &&
                           !streq(json_string_value(enc), "base64")) {
                        snprintf(msg, sizeof(msg), "files[%zu].encoding must be utf8 or base64", i);
                        ok = false;
                } else
                        json_array_append_new(more, json_pack("{s:s,s:O,s:O?}", "path", name, "content", fc, "encoding",
                                                              json_is_string(enc) ? enc : NULL));
        }
        if (json_array_size(more))
                jb.files = more;
        if (ok && stdin_s) {
                jb.stdin_data = stdin_s;
                jb.stdin_len = json_string_length(json_object_get(o, "stdin"));
        }
        if (!ok) {
                piston_error(ret, 400, msg);
                return;
        }
        jb.code = json_string_value(content);
        jb.code_len = json_string_length(content);

        _cleanup_(tr_result_freep) tr_result *res = NULL;
        _cleanup_(tr_error_freep) tr_error *err = NULL;
        unsigned status = 0;
        tr__serve_run(ctx, &jb, &res, &err, &status);
        if (status) {
                piston_error(ret, status, tr_error_message(err));
                return;
        }
        /* The output as the result object has it: invalid UTF-8 already
         * replaced, so the reply is always valid JSON. */
        _cleanup_free_ char *text = NULL;
        _cleanup_(json_decrefp) json_t *full = NULL;
        if (tr_result_to_json(res, err, &text, NULL) < 0 || !(full = json_loads(text, 0, NULL))) {
                piston_error(ret, 500, "out of memory");
                return;
        }
        const char *out = json_string_value(json_object_get(full, "stdout"));
        const char *errs = json_string_value(json_object_get(full, "stderr"));
        size_t on = json_string_length(json_object_get(full, "stdout"));
        size_t en = json_string_length(json_object_get(full, "stderr"));
        _cleanup_free_ char *both = malloc(on + en + 1);
        if (!both || !out || !errs) {
                piston_error(ret, 500, "out of memory");
                return;
        }
        memcpy(both, out, on);
        memcpy(both + on, errs, en);
        int code = res ? tr_result_exit_code(res) : -1;
        /* Piston's status: RE runtime error, SG killed by a signal, TO
         * timeout, OL/EL output limit, XX internal error; null when fine. */
        const char *st = NULL, *signal_name = NULL;
        tr_code ec = err ? tr_error_code(err) : TR_OK;
        if (ec == TR_E_TIMEOUT) {
                st = "TO";
                signal_name = "SIGKILL";
        } else if (ec == TR_E_RESOURCE_LIMIT) {
                st = "SG";
                signal_name = "SIGKILL";
        } else if (err)
                st = "XX";
        else if (res && tr_result_stdout_truncated(res))
                st = "OL";
        else if (res && tr_result_stderr_truncated(res))
                st = "EL";
        else if (code > 128)
                st = "SG";
        else if (code != 0)
                st = "RE";
        json_t *run_o = json_object();
        json_object_set_new(run_o, "stdout", json_stringn(out, on));
        json_object_set_new(run_o, "stderr", json_stringn(errs, en));
        json_object_set_new(run_o, "output", json_stringn(both, on + en));
        json_object_set_new(run_o, "code", code >= 0 && !signal_name ? json_integer(code) : json_null());
        json_object_set_new(run_o, "signal", signal_name ? json_string(signal_name) : json_null());
        json_object_set_new(run_o, "message", err ? json_string(tr_error_message(err)) : json_null());
        json_object_set_new(run_o, "status", st ? json_string(st) : json_null());
        json_object_set_new(run_o, "wall_time",
                            json_integer(res ? (json_int_t) (tr_result_duration_us(res) / 1000) : 0));
        /* Not measured per execution: null rather than a made-up number. */
        json_object_set_new(run_o, "cpu_time", json_null());
        json_object_set_new(run_o, "memory", json_null());
        json_t *reply = json_pack("{s:s,s:s,s:o}", "language", lang_name, "version", our_version, "run", run_o);
        ret->status = 200;
        ret->content_type = "application/json";
        ret->body = reply ? json_dumps(reply, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
        json_decref(reply);
}

void tr__serve_piston_runtimes(const tr__serve_ctx *ctx, tr__serve_reply *ret) {
        (void) ctx;
        json_t *a = json_pack("[{s:s,s:s,s:[s,s,s]},{s:s,s:s,s:[]}]", "language", "python", "version", PYTHON_VERSION,
                              "aliases", "py", "py3", "python3", "language", "sh", "version", SH_VERSION, "aliases");
        ret->status = 200;
        ret->content_type = "application/json";
        ret->body = a ? json_dumps(a, JSON_COMPACT) : NULL;
        json_decref(a);
}
