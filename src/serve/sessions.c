/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Sessions over HTTP: POST /v1/sessions, POST /v1/sessions/{id}/execute,
 * GET /v1/sessions, DELETE /v1/sessions/{id} (files: sessions_files.c).
 *
 * This module owns the service's table of live sessions: their ids (128
 * random bits, the only thing that names a session on the wire), their
 * owner (the index of the bearer token that created them: another token
 * gets the same 404 as an unknown id, so ids cannot be probed), the caps
 * (sessions alive at once, in all and per token), the sweeper thread that
 * ends expired sessions (tr_session_check) and the short memory of ended
 * ones, so a client is told "expired" rather than "unknown".
 *
 * Lifetime: an entry is referenced by the table and by each operation
 * using it; DELETE or expiry takes it out of the table, and the last
 * reference frees the library session (destroying its sandbox) — an
 * execution running when its session is deleted finishes first (bounded
 * by its timeout), as the library forbids freeing a busy session.
 * Sessions live in this process: a restart loses them (their sandboxes are
 * collected by the gc serve runs at start and periodically).
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "serve/serve.h"
#include "util/handles.h"
#include "util/macros.h"

#define TOMBSTONES 256 /* ended sessions remembered for a clear 404 */

struct tr__serve_session {
        char id[33];
        unsigned owner;
        tr_session *s; /* NULL while being created (the entry holds its slot) */
        int64_t disk;  /* the session's disk cap in bytes (0: none) */
        unsigned refs; /* the table's (until removed) + each operation's */
        bool removed;  /* out of the table */
        /* The cancel tokens of the executions running or waiting for
         * their turn (the table's lock guards them), so that DELETE stops
         * them instead of letting them run to their timeout. */
        tr_cancel *running[8];
        tr__serve_sessions *t;
        struct tr__serve_session *next;
};

typedef struct tombstone {
        char id[33];
        unsigned owner;
        char why[200];
} tombstone;

struct tr__serve_sessions {
        const tr__serve_config *cfg;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        tr__serve_session *head;
        tombstone tomb[TOMBSTONES];
        size_t tomb_next;
        pthread_t sweeper;
        bool sweeper_started, stop;
};

/* ---- the table ----------------------------------------------------------- */

static void entry_unref(tr__serve_session *e) {
        tr__serve_sessions *t = e->t;
        pthread_mutex_lock(&t->lock);
        bool last = --e->refs == 0;
        pthread_mutex_unlock(&t->lock);
        if (last) {
                /* Outside the lock: destroying a sandbox takes a while. */
                tr_session_free(e->s);
                free(e);
        }
}

void tr__serve_session_put(tr__serve_session *e) {
        if (e)
                entry_unref(e);
}

tr_session *tr__serve_session_lib(tr__serve_session *e) {
        return e->s;
}

int64_t tr__serve_session_disk(tr__serve_session *e) {
        return e->disk;
}

/* Take `e` out of the table (lock held), remembering why for its id's
 * 404s; the caller drops the table's reference after unlocking.  False
 * when it was out already. */
static bool unlink_locked(tr__serve_sessions *t, tr__serve_session *e, const char *why) {
        if (e->removed)
                return false;
        for (tr__serve_session **p = &t->head; *p; p = &(*p)->next)
                if (*p == e) {
                        *p = e->next;
                        break;
                }
        e->removed = true;
        if (e->s) {
                tombstone *tb = &t->tomb[t->tomb_next++ % TOMBSTONES];
                memcpy(tb->id, e->id, sizeof(tb->id));
                tb->owner = e->owner;
                snprintf(tb->why, sizeof(tb->why), "%s", why);
        }
        return true;
}

static void end_entry(tr__serve_session *e, const char *why) {
        pthread_mutex_lock(&e->t->lock);
        bool was_in = unlink_locked(e->t, e, why);
        for (size_t i = 0; i < ARRAY_SIZE(e->running); i++)
                if (e->running[i])
                        tr_cancel_cancel(e->running[i]);
        pthread_mutex_unlock(&e->t->lock);
        if (was_in)
                entry_unref(e);
}

/* The sweeper: once a second, every live session is asked whether it is
 * still alive (TTL, idle timeout, interpreter gone); an ended one leaves
 * the table and, with its last reference, frees its sandbox. */
static void *sweeper_main(void *arg) {
        tr__serve_sessions *t = arg;
        pthread_mutex_lock(&t->lock);
        while (!t->stop) {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_sec += 1;
                pthread_cond_timedwait(&t->cond, &t->lock, &ts);
                if (t->stop)
                        break;
                /* Referenced under the lock, checked outside it. */
                size_t n = 0;
                for (tr__serve_session *e = t->head; e; e = e->next)
                        n += e->s != NULL;
                tr__serve_session **batch = n ? calloc(n, sizeof(*batch)) : NULL;
                size_t k = 0;
                for (tr__serve_session *e = t->head; e && batch; e = e->next)
                        if (e->s) {
                                e->refs++;
                                batch[k++] = e;
                        }
                pthread_mutex_unlock(&t->lock);
                for (size_t i = 0; i < k; i++) {
                        _cleanup_(tr_error_freep) tr_error *err = NULL;
                        if (tr_session_check(batch[i]->s, &err) < 0)
                                end_entry(batch[i], err ? tr_error_message(err) : "the session has ended");
                        entry_unref(batch[i]);
                }
                free(batch);
                pthread_mutex_lock(&t->lock);
        }
        pthread_mutex_unlock(&t->lock);
        return NULL;
}

int tr__serve_sessions_new(const tr__serve_config *cfg, tr__serve_sessions **ret, tr_error **ret_err) {
        tr__serve_sessions *t = calloc(1, sizeof(*t));
        if (!t)
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "serve", "out of memory");
        t->cfg = cfg;
        pthread_mutex_init(&t->lock, NULL);
        pthread_cond_init(&t->cond, NULL);
        if (pthread_create(&t->sweeper, NULL, sweeper_main, t) != 0) {
                tr__serve_sessions_free(t);
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "serve",
                                    "cannot start the session sweeper");
        }
        t->sweeper_started = true;
        *ret = t;
        return 0;
}

void tr__serve_sessions_free(tr__serve_sessions *t) {
        if (!t)
                return;
        pthread_mutex_lock(&t->lock);
        t->stop = true;
        pthread_cond_broadcast(&t->cond);
        pthread_mutex_unlock(&t->lock);
        if (t->sweeper_started)
                pthread_join(t->sweeper, NULL);
        /* The HTTP daemon is stopped: nothing else holds a reference. */
        while (t->head) {
                tr__serve_session *e = t->head;
                t->head = e->next;
                tr_session_free(e->s);
                free(e);
        }
        pthread_cond_destroy(&t->cond);
        pthread_mutex_destroy(&t->lock);
        free(t);
}

unsigned tr__serve_sessions_count(tr__serve_sessions *t) {
        unsigned n = 0;
        pthread_mutex_lock(&t->lock);
        for (tr__serve_session *e = t->head; e; e = e->next)
                n++;
        pthread_mutex_unlock(&t->lock);
        return n;
}

/* "/v1/sessions/ID[/...]": the id (32 lowercase hex digits) into id[33]. */
static bool url_id(const char *url, char id[33], const char **ret_rest) {
        static const char prefix[] = "/v1/sessions/";
        if (strncmp(url, prefix, sizeof(prefix) - 1) != 0)
                return false;
        const char *p = url + sizeof(prefix) - 1;
        size_t n = strcspn(p, "/");
        if (n != 32 || strspn(p, "0123456789abcdef") < 32)
                return false;
        memcpy(id, p, 32);
        id[32] = '\0';
        if (ret_rest)
                *ret_rest = p + 32;
        return true;
}

tr__serve_session *tr__serve_session_get(tr__serve_sessions *t, const char *url, unsigned owner, tr__serve_reply *ret) {
        char id[33];
        if (!url_id(url, id, NULL)) {
                tr__serve_reply_error(ret, 404, "not_found", "no session here: session ids are 32 hex digits");
                return NULL;
        }
        pthread_mutex_lock(&t->lock);
        for (tr__serve_session *e = t->head; e; e = e->next)
                if (e->s && e->owner == owner && streq(e->id, id)) {
                        e->refs++;
                        pthread_mutex_unlock(&t->lock);
                        return e;
                }
        /* Another token's session answers exactly like an unknown one. */
        char why[200] = "";
        for (size_t i = 0; i < TOMBSTONES; i++)
                if (t->tomb[i].id[0] && t->tomb[i].owner == owner && streq(t->tomb[i].id, id))
                        memcpy(why, t->tomb[i].why, sizeof(why));
        pthread_mutex_unlock(&t->lock);
        /* The library's own reason may already begin with that. */
        static const char ended[] = "the session has ended: ";
        const char *reason = strncmp(why, ended, sizeof(ended) - 1) == 0 ? why + sizeof(ended) - 1 : why;
        if (why[0])
                tr__serve_reply_error(ret, 404, "session_gone", "session %s has ended: %s", id, reason);
        else
                tr__serve_reply_error(ret, 404, "not_found",
                                      "no session %s on this server (sessions end with their TTL or idle timeout, "
                                      "on DELETE, and when the service restarts)",
                                      id);
        return NULL;
}

void tr__serve_session_error(tr__serve_session *e, const tr_error *err, tr__serve_reply *ret) {
        tr_code code = err ? tr_error_code(err) : TR_E_INTERNAL;
        const char *msg = err ? tr_error_message(err) : "unknown error";
        /* Cancelled because the session ended (DELETE, or the execution
         * ahead of this one ended it) while this one waited: the session is
         * what is gone, as for any later request.  (A client that hung up
         * reads no reply either way.) */
        if (code == TR_E_CANCELLED && e) {
                pthread_mutex_lock(&e->t->lock);
                bool gone = e->removed;
                pthread_mutex_unlock(&e->t->lock);
                if (gone) {
                        tr__serve_reply_error(ret, 404, tr_code_name(TR_E_SESSION_GONE),
                                              "the session ended while this request waited for it");
                        return;
                }
        }
        /* A file that is not there (the runner's ENOENT) is a 404, as
         * HTTP clients expect; other refused paths stay 400s. */
        bool no_file = code == TR_E_INVALID_REQUEST && err && tr_error_errno(err) == ENOENT;
        unsigned status = code == TR_E_SESSION_GONE || no_file ? 404
                          : code == TR_E_RESOURCE_LIMIT        ? 413
                          : code == TR_E_CANCELLED             ? 499
                          : tr__serve_error_status(err)        ? tr__serve_error_status(err)
                                                               : 500;
        if (code == TR_E_SESSION_GONE && e)
                end_entry(e, msg);
        tr__serve_reply_error(ret, status, err ? tr_error_code_name(err) : "internal", "%s", msg);
}

/* ---- JSON views ---------------------------------------------------------- */

/* RFC 3339 UTC, seconds. */
static json_t *timestamp(int64_t ns) {
        char buf[32];
        time_t secs = (time_t) (ns / 1000000000);
        struct tm tm;
        gmtime_r(&secs, &tm);
        strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
        return json_string(buf);
}

static json_t *session_json(const tr__serve_session *e) {
        tr_session_info in = { 0 };
        tr_session_get_info(e->s, &in);
        /* The session ends at whichever deadline comes first. */
        int64_t ends = in.idle_deadline_ns < in.ttl_deadline_ns ? in.idle_deadline_ns : in.ttl_deadline_ns;
        return json_pack("{s:s,s:o,s:o,s:o,s:o,s:o,s:I,s:b,s:s,s:s}", "id", e->id, "created_at",
                         timestamp(in.created_ns), "last_used_at", timestamp(in.last_used_ns), "expires_at",
                         timestamp(ends), "ttl_expires_at", timestamp(in.ttl_deadline_ns), "idle_expires_at",
                         timestamp(in.idle_deadline_ns), "executions", (json_int_t) in.executions, "alive", in.alive,
                         "profile", tr_profile_name(in.profile), "backend", tr_backend_kind_name(in.backend));
}

static void reply_json(tr__serve_reply *ret, unsigned status, json_t *o) {
        ret->status = status;
        ret->content_type = "application/json";
        ret->body = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
}

/* ---- the routes ---------------------------------------------------------- */

/* A duration in seconds (a positive number) as ms; 0 when absent. */
static bool get_secs(json_t *o, const char *key, int64_t max_ms, int64_t *ret_ms, char *msg, size_t msgsz) {
        json_t *v = json_object_get(o, key);
        *ret_ms = 0;
        if (!v || json_is_null(v))
                return true;
        double d = json_number_value(v);
        if (!json_is_number(v) || d <= 0 || d * 1000.0 > (double) max_ms) {
                snprintf(msg, msgsz, "'%s' must be a number of seconds above 0 and at most %lld", key,
                         (long long) (max_ms / 1000));
                return false;
        }
        *ret_ms = (int64_t) (d * 1000.0 + 0.5);
        return true;
}

/* Reserve a slot: a placeholder entry, counted by the caps, found by no
 * lookup until its session exists. */
static tr__serve_session *reserve(tr__serve_sessions *t, unsigned owner, tr__serve_reply *ret) {
        tr__serve_session *e = calloc(1, sizeof(*e));
        unsigned char rnd[16];
        if (!e || getrandom(rnd, sizeof(rnd), 0) != (ssize_t) sizeof(rnd)) {
                free(e);
                tr__serve_reply_error(ret, 500, "internal", "cannot make a session id");
                return NULL;
        }
        for (size_t i = 0; i < sizeof(rnd); i++)
                snprintf(e->id + 2 * i, 3, "%02x", rnd[i]);
        e->owner = owner;
        e->t = t;
        e->refs = 1;
        pthread_mutex_lock(&t->lock);
        unsigned all = 0, mine = 0;
        for (tr__serve_session *x = t->head; x; x = x->next) {
                all++;
                mine += x->owner == owner;
        }
        const tr__serve_config *cfg = t->cfg;
        bool full_all = cfg->max_sessions && all >= cfg->max_sessions;
        bool full_mine = cfg->max_sessions_per_token && mine >= cfg->max_sessions_per_token;
        if (!full_all && !full_mine) {
                e->next = t->head;
                t->head = e;
        }
        pthread_mutex_unlock(&t->lock);
        if (full_all || full_mine) {
                free(e);
                if (full_mine)
                        tr__serve_reply_error(ret, 429, "too_many_sessions",
                                              "this token has %u sessions, the most this server allows a token; "
                                              "delete one (DELETE /v1/sessions/ID) or let one expire",
                                              mine);
                else
                        tr__serve_reply_error(ret, 503, "too_many_sessions",
                                              "this server holds %u sessions, its maximum; retry later", all);
                ret->retry_after = full_mine ? 0 : 5;
                return NULL;
        }
        return e;
}

void tr__serve_session_create(const tr__serve_ctx *ctx, const char *body, size_t len, tr__serve_reply *ret) {
        static const char *const extra[] = { "ttl", "idle_timeout", "image", NULL };
        char msg[256] = "";
        _cleanup_(json_decrefp) json_t *o = NULL;
        tr__serve_job jb;
        tr_session_config scfg = { .size = sizeof(scfg) };
        bool ok = tr__serve_v1_parse(len ? body : "{}", len ? len : 2, extra, false, &jb, &o, msg, sizeof(msg)) &&
                  get_secs(o, "ttl", TR_SESSION_MAX_TTL_MS, &scfg.ttl_ms, msg, sizeof(msg)) &&
                  get_secs(o, "idle_timeout", TR_SESSION_MAX_TTL_MS, &scfg.idle_timeout_ms, msg, sizeof(msg));
        static const char *const per_exec[] = { "code", "args", "stdin", "files" };
        for (size_t i = 0; ok && i < ARRAY_SIZE(per_exec); i++)
                if (json_object_get(o, per_exec[i]) && !json_is_null(json_object_get(o, per_exec[i]))) {
                        snprintf(msg, sizeof(msg),
                                 "'%s' belongs to an execution (POST /v1/sessions/ID/execute), not to the session",
                                 per_exec[i]);
                        ok = false;
                }
        if (ok && json_object_get(o, "image") && !json_is_null(json_object_get(o, "image"))) {
                snprintf(msg, sizeof(msg), "'image': this server runs the image it was started with (--image)");
                ok = false;
        }
        if (!ok) {
                tr__serve_reply_error(ret, 400, "invalid_request", "%s", msg);
                return;
        }
        _cleanup_(tr_request_freep) tr_request *shape = NULL;
        _cleanup_(tr_error_freep) tr_error *err = NULL;
        tr_runtime *rt = NULL;
        unsigned status = 0;
        if (tr__serve_build_request(ctx, &jb, &shape, &rt, &err, &status) < 0) {
                tr__serve_reply_error(ret, status ? status : 400, tr_error_code_name(err), "%s", tr_error_message(err));
                return;
        }
        tr__serve_session *e = reserve(ctx->sessions, ctx->owner, ret);
        if (!e)
                return;
        tr_limits eff = *tr_request_limits(shape);
        if (eff.disk_bytes == TR_LIMIT_UNSET) {
                tr_limits d;
                tr_profile_default_limits(tr_request_profile(shape), &d);
                eff.disk_bytes = d.disk_bytes;
        }
        e->disk = eff.disk_bytes > 0 ? eff.disk_bytes : 0;
        tr_session *ls = NULL;
        if (tr_session_new(rt, shape, &scfg, ctx->cancel, &ls, &err) < 0) {
                end_entry(e, "never created");
                status = tr__serve_error_status(err);
                tr_code c = tr_error_code(err);
                if (!status)
                        status = c == TR_E_CANCELLED ? 499 : tr_error_retryable(err) ? 503 : 500;
                tr__serve_reply_error(ret, status, tr_error_code_name(err), "%s", tr_error_message(err));
                return;
        }
        pthread_mutex_lock(&ctx->sessions->lock);
        e->s = ls;
        bool gone = e->removed; /* the server is going down */
        /* Ours while the reply is built: from the unlock on, the sweeper
         * may end the session (a TTL shorter than the boot) and drop the
         * table's reference. */
        e->refs++;
        pthread_mutex_unlock(&ctx->sessions->lock);
        if (gone) {
                /* Out of the table: its reference went with it; ours is
                 * the last. */
                entry_unref(e);
                tr__serve_reply_error(ret, 503, "unavailable", "the server is shutting down");
                return;
        }
        reply_json(ret, 201, session_json(e));
        entry_unref(e);
}

void tr__serve_session_list(const tr__serve_ctx *ctx, tr__serve_reply *ret) {
        tr__serve_sessions *t = ctx->sessions;
        json_t *a = json_array();
        pthread_mutex_lock(&t->lock);
        for (tr__serve_session *e = t->head; e; e = e->next)
                if (e->s && e->owner == ctx->owner)
                        json_array_append_new(a, session_json(e));
        pthread_mutex_unlock(&t->lock);
        reply_json(ret, 200, json_pack("{s:o}", "sessions", a));
}

void tr__serve_session_show(const tr__serve_ctx *ctx, tr__serve_reply *ret) {
        tr__serve_session *e = tr__serve_session_get(ctx->sessions, ctx->url, ctx->owner, ret);
        if (!e)
                return;
        reply_json(ret, 200, session_json(e));
        entry_unref(e);
}

void tr__serve_session_delete(const tr__serve_ctx *ctx, tr__serve_reply *ret) {
        const char *rest = NULL;
        char id[33];
        if (url_id(ctx->url, id, &rest) && *rest) {
                tr__serve_reply_error(ret, 404, "not_found", "no route %s", ctx->url);
                return;
        }
        tr__serve_session *e = tr__serve_session_get(ctx->sessions, ctx->url, ctx->owner, ret);
        if (!e)
                return;
        end_entry(e, "deleted");
        entry_unref(e);
        ret->status = 204;
        ret->content_type = "application/json";
        ret->body = strdup("");
}

/* The execution request: the per-execution fields of /v1/execute's body.
 * Profile and limits, when given, must match the session's (the library
 * checks); the backend is the session's. */
static int exec_request(const tr__serve_ctx *ctx, const tr__serve_job *jb, tr__serve_session *e, tr_request **ret,
                        tr_error **ret_err) {
        tr_session_info in;
        tr_session_get_info(e->s, &in);
        tr_backend_kind kind;
        if (jb->backend && (tr_backend_kind_from_name(jb->backend, &kind) < 0 || kind != in.backend))
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, "validate",
                                    "backend '%s': this session runs on %s", jb->backend,
                                    tr_backend_kind_name(in.backend));
        _cleanup_(tr_request_freep) tr_request *req = NULL;
        int r = tr__serve_request_new(ctx, jb, &req, ret_err);
        tr_profile prof;
        if (r >= 0 && jb->profile) {
                if (tr_profile_from_name(jb->profile, &prof) < 0)
                        return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, "validate",
                                            "unknown profile '%s'", jb->profile);
                tr_request_set_profile(req, prof);
        }
        if (r < 0)
                return r;
        if (jb->egress_allow)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, "validate",
                                    "'egress' belongs to the session: give it to POST /v1/sessions");
        if (json_array_size(jb->args) || json_array_size(jb->files))
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, "validate",
                                    "a session's execution takes no 'args' or 'files' (upload files with PUT "
                                    "/v1/sessions/ID/files/PATH)");
        tr_request_set_limits(req, &jb->limits);
        *ret = TAKE_PTR(req);
        return 0;
}

void tr__serve_session_execute(const tr__serve_ctx *ctx, const char *body, size_t len, tr__serve_reply *ret) {
        tr__serve_session *e = tr__serve_session_get(ctx->sessions, ctx->url, ctx->owner, ret);
        if (!e)
                return;
        char msg[256] = "";
        _cleanup_(json_decrefp) json_t *o = NULL;
        tr__serve_job jb;
        _cleanup_(tr_request_freep) tr_request *req = NULL;
        _cleanup_(tr_result_freep) tr_result *res = NULL;
        _cleanup_(tr_error_freep) tr_error *err = NULL;
        if (!tr__serve_v1_parse(body, len, NULL, true, &jb, &o, msg, sizeof(msg))) {
                tr__serve_reply_error(ret, 400, "invalid_request", "%s", msg);
        } else if (exec_request(ctx, &jb, e, &req, &err) < 0) {
                tr__serve_reply_error(ret, 400, tr_error_code_name(err), "%s", tr_error_message(err));
        } else {
                /* Registered for DELETE (a slot is free unless more than
                 * eight wait on one session: those then run their course). */
                size_t slot = ARRAY_SIZE(e->running);
                pthread_mutex_lock(&e->t->lock);
                for (size_t i = 0; ctx->cancel && slot == ARRAY_SIZE(e->running) && i < slot; i++)
                        if (!e->running[i])
                                e->running[slot = i] = ctx->cancel;
                bool gone = e->removed;
                pthread_mutex_unlock(&e->t->lock);
                if (gone && ctx->cancel)
                        tr_cancel_cancel(ctx->cancel);
                int r = tr_session_execute(e->s, req, ctx->cancel, &res, &err);
                pthread_mutex_lock(&e->t->lock);
                if (slot < ARRAY_SIZE(e->running))
                        e->running[slot] = NULL;
                pthread_mutex_unlock(&e->t->lock);
                tr_session_info in;
                tr_session_get_info(e->s, &in);
                const char *outcome = r < 0                           ? tr_error_code_name(err)
                                      : tr_result_exit_code(res) == 0 ? "ok"
                                                                      : "exit_nonzero";
                tr__serve_metrics_execution(ctx->metrics, tr_backend_kind_name(in.backend), tr_profile_name(in.profile),
                                            outcome, res ? (double) tr_result_duration_us(res) / 1e6 : 0.0,
                                            res ? tr_result_tool_call_count(res) : 0);
                if (r < 0 && !res) {
                        /* Refused before it ran (gone, bad request). */
                        tr__serve_session_error(e, err, ret);
                } else {
                        /* A result, as /v1/execute's; an execution that
                         * ended the session says so in its backend details
                         * ("session": "ended") and the id answers 404 from
                         * now on. */
                        _cleanup_(tr_error_freep) tr_error *cerr = NULL;
                        if (tr_session_check(e->s, &cerr) < 0)
                                end_entry(e, tr_error_message(cerr));
                        ret->status = 200;
                        ret->content_type = "application/json";
                        if (tr_result_to_json(res, err, &ret->body, NULL) < 0)
                                tr__serve_reply_error(ret, 500, "internal", "out of memory");
                }
        }
        entry_unref(e);
}
