/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The session tools, next to `execute`: session_create (a sandbox and one
 * Python interpreter kept alive), session_execute (code in it: globals,
 * imports and files under /tmp persist), session_delete.
 *
 * Sessions belong to this MCP server instance — the stdio process, or one
 * Mcp-Session-Id over /mcp — and end with it; at most MAX_SESSIONS at once.
 * Each entry is referenced by the list and by each call using it, so a
 * delete during an execution frees the sandbox when the execution ends (the
 * library forbids freeing a busy session).  Expired sessions are swept once
 * a second by the server's ticker.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "mcp/internal.h"
#include "util/handles.h"
#include "util/macros.h"

#define MAX_SESSIONS 4

struct mcps_session {
        char id[33];
        tr_session *s; /* NULL while being created */
        unsigned refs;
        bool removed;
        struct mcps_session *next;
};

static void unref(mcps_server *s, mcps_session *e) {
        pthread_mutex_lock(&s->sess_lock);
        bool last = --e->refs == 0;
        pthread_mutex_unlock(&s->sess_lock);
        if (last) {
                tr_session_free(e->s);
                free(e);
        }
}

/* Out of the list (once); the caller then drops the list's reference. */
static bool unlink_entry(mcps_server *s, mcps_session *e) {
        pthread_mutex_lock(&s->sess_lock);
        bool was = !e->removed;
        for (mcps_session **p = &s->sessions; was && *p; p = &(*p)->next)
                if (*p == e) {
                        *p = e->next;
                        break;
                }
        e->removed = true;
        pthread_mutex_unlock(&s->sess_lock);
        return was;
}

static mcps_session *find(mcps_server *s, json_t *args) {
        const char *id = json_string_value(json_object_get(args, "session_id"));
        mcps_session *r = NULL;
        pthread_mutex_lock(&s->sess_lock);
        for (mcps_session *e = s->sessions; id && e && !r; e = e->next)
                if (e->s && streq(e->id, id)) {
                        e->refs++;
                        r = e;
                }
        pthread_mutex_unlock(&s->sess_lock);
        return r;
}

json_t *mcps_session_tools(void) {
        json_t *id = json_pack("{s:s, s:s}", "type", "string", "description", "the id session_create returned");
        json_t *r = json_pack(
                "[{s:s, s:s, s:s, s:{s:s, s:{s:{s:s, s:f, s:s}, s:{s:s, s:f, s:s}}, s:b}},"
                " {s:s, s:s, s:s, s:{s:s, s:{s:O, s:{s:s}, s:{s:s, s:f}}, s:[s,s], s:b}},"
                " {s:s, s:s, s:s, s:{s:s, s:{s:O}, s:[s], s:b}}]",
                "name", "session_create", "title", "Start a persistent Python session", "description",
                "Start a sandbox with one Python interpreter kept alive: variables, imports and files under /tmp "
                "persist across session_execute calls, until session_delete, its idle timeout or its TTL. Returns "
                "its session_id.",
                "inputSchema", "type", "object", "properties", "ttl", "type", "number", "exclusiveMinimum", 0.0,
                "description", "seconds the session may live (default 3600, at most 86400)", "idle_timeout", "type",
                "number", "exclusiveMinimum", 0.0, "description", "seconds without a call before it ends (default 600)",
                "additionalProperties", 0, "name", "session_execute", "title", "Run Python in a session", "description",
                "Run Python in a session started by session_create; its globals persist. Returns what execute "
                "returns (the global __out, stdout, stderr, exit code, tool calls). A timeout interrupts the "
                "program; the session lives on when the interpreter survives.",
                "inputSchema", "type", "object", "properties", "session_id", id, "code", "type", "string", "timeout",
                "type", "number", "exclusiveMinimum", 0.0, "required", "session_id", "code", "additionalProperties", 0,
                "name", "session_delete", "title", "End a session", "description",
                "End a session and destroy its sandbox.", "inputSchema", "type", "object", "properties", "session_id",
                id, "required", "session_id", "additionalProperties", 0);
        json_decref(id); /* packed twice with O: each took its own reference */
        return r;
}

static bool secs_arg(json_t *args, const char *key, int64_t *ret_ms) {
        json_t *v = json_object_get(args, key);
        *ret_ms = 0;
        if (!v)
                return true;
        double d = json_number_value(v);
        if (!json_is_number(v) || !(d > 0) || d * 1000.0 > (double) TR_SESSION_MAX_TTL_MS)
                return false;
        *ret_ms = (int64_t) (d * 1000.0 + 0.5);
        return true;
}

static json_t *create(mcps_call *c, json_t *args) {
        mcps_server *s = c->s;
        const char *k;
        json_t *v;
        json_object_foreach(args, k, v) {
                if (!streq(k, "ttl") && !streq(k, "idle_timeout"))
                        return mcps_tool_error("invalid arguments: unknown argument \"%.64s\"", k);
        }
        tr_session_config sc = { .size = sizeof(sc) };
        if (!secs_arg(args, "ttl", &sc.ttl_ms) || !secs_arg(args, "idle_timeout", &sc.idle_timeout_ms))
                return mcps_tool_error("invalid arguments: \"ttl\" and \"idle_timeout\" are seconds above 0 and at "
                                       "most 86400");
        mcps_session *e = calloc(1, sizeof(*e));
        unsigned char rnd[16];
        if (!e || getrandom(rnd, sizeof(rnd), 0) != (ssize_t) sizeof(rnd)) {
                free(e);
                return mcps_tool_error("cannot make a session id");
        }
        for (size_t i = 0; i < sizeof(rnd); i++)
                snprintf(e->id + 2 * i, 3, "%02x", rnd[i]);
        e->refs = 1;
        /* The slot is taken before the (slow) creation, so concurrent
         * creations cannot pass the cap together. */
        pthread_mutex_lock(&s->sess_lock);
        unsigned n = 0;
        for (mcps_session *x = s->sessions; x; x = x->next)
                n++;
        bool full = n >= MAX_SESSIONS;
        if (!full) {
                e->next = s->sessions;
                s->sessions = e;
        }
        pthread_mutex_unlock(&s->sess_lock);
        if (full) {
                free(e);
                return mcps_tool_error("this server holds %d sessions, its maximum: delete one with session_delete",
                                       MAX_SESSIONS);
        }
        _cleanup_(tr_request_freep) tr_request *shape = NULL;
        _cleanup_(tr_error_freep) tr_error *err = NULL;
        tr_session *ls = NULL;
        int r = tr_request_new(&shape, &err);
        if (r >= 0) {
                tr_request_set_profile(shape, s->cfg.profile);
                tr_request_set_limits(shape, &s->cfg.limits);
                tr_request_set_gateway(shape, s->cfg.gw);
                /* The operator's allowlist, as every execute call gets it. */
                if (s->cfg.n_egress)
                        r = tr_request_set_egress_allow(shape, s->cfg.egress, s->cfg.n_egress, &err);
        }
        if (r >= 0) {
                r = tr_session_new(s->cfg.rt, shape, &sc, c->cancel, &ls, &err);
        }
        if (r < 0) {
                if (unlink_entry(s, e))
                        unref(s, e);
                return mcps_tool_error("session_create failed: %s: %s", tr_error_code_name(err), tr_error_message(err));
        }
        pthread_mutex_lock(&s->sess_lock);
        e->s = ls;
        pthread_mutex_unlock(&s->sess_lock);
        tr_session_info in;
        tr_session_get_info(ls, &in);
        char text[160];
        snprintf(text, sizeof(text), "session %s started (profile %s, backend %s)", e->id, tr_profile_name(in.profile),
                 tr_backend_kind_name(in.backend));
        return json_pack("{s:[{s:s, s:s}], s:{s:s}}", "content", "type", "text", "text", text, "structuredContent",
                         "session_id", e->id);
}

static json_t *unknown(json_t *args) {
        const char *id = json_string_value(json_object_get(args, "session_id"));
        return mcps_tool_error("no session %.64s (it was deleted, expired, or never started here)", id ? id : "(none)");
}

json_t *mcps_session_call(mcps_call *c, const char *name, json_t *args, bool *ret_handled) {
        mcps_server *s = c->s;
        *ret_handled = true;
        if (streq(name, "session_create"))
                return create(c, args ? args : json_object());
        if (!streq(name, "session_execute") && !streq(name, "session_delete")) {
                *ret_handled = false;
                return NULL;
        }
        mcps_session *e = find(s, args);
        if (!e)
                return unknown(args);
        json_t *r = NULL;
        if (streq(name, "session_delete")) {
                const char *k;
                json_t *v;
                json_object_foreach(args, k, v) {
                        if (!streq(k, "session_id"))
                                r = mcps_tool_error("invalid arguments: unknown argument \"%.64s\"", k);
                }
                if (!r && unlink_entry(s, e))
                        unref(s, e);
                if (!r)
                        r = json_pack("{s:[{s:s, s:s}]}", "content", "type", "text", "text", "session deleted");
        } else {
                _cleanup_(json_decrefp) json_t *rest = json_deep_copy(args);
                json_object_del(rest, "session_id");
                r = mcps_execute_in(c, rest, e->s);
                /* An execution that ended the session takes it out. */
                if (tr_session_check(e->s, NULL) < 0 && unlink_entry(s, e))
                        unref(s, e);
        }
        unref(s, e);
        return r;
}

void mcps_sessions_sweep(mcps_server *s) {
        mcps_session *batch[MAX_SESSIONS];
        size_t n = 0;
        pthread_mutex_lock(&s->sess_lock);
        for (mcps_session *e = s->sessions; e && n < MAX_SESSIONS; e = e->next)
                if (e->s) {
                        e->refs++;
                        batch[n++] = e;
                }
        pthread_mutex_unlock(&s->sess_lock);
        for (size_t i = 0; i < n; i++) {
                if (tr_session_check(batch[i]->s, NULL) < 0 && unlink_entry(s, batch[i]))
                        unref(s, batch[i]);
                unref(s, batch[i]);
        }
}

void mcps_sessions_free(mcps_server *s) {
        /* The workers are joined: nothing else holds a reference. */
        while (s->sessions) {
                mcps_session *e = s->sessions;
                s->sessions = e->next;
                tr_session_free(e->s);
                free(e);
        }
}
