/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Warm pools (tr_pool, toolruntime.h): sandboxes of one shape prepared
 * ahead with tr_runtime_prepare, so that an execution only runs its code.
 * This module owns the ready list, the background refill (bounded
 * concurrency, back-off after failures), the age limit of idle sandboxes,
 * and handing used sandboxes to the background for teardown, so that a
 * warm execution returns as soon as its code ran.  A sandbox runs one
 * execution, ever; a request that does not fit the shape runs cold.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/internal.h"
#include "util/macros.h"
#include "util/timeutil.h"

/* Idle sandboxes older than this are replaced (well inside the backends'
 * own backstop, TR_SANDBOX_MAX_IDLE_MS). */
#define DEFAULT_MAX_AGE_MS (5 * 60 * 1000)
/* Background threads: they prepare and tear down.  Two, as these machines
 * have two cores: more would only queue on containerd and the CPU. */
#define WORKERS        2
#define MAX_BACKOFF_MS 5000

typedef struct slot {
        tr_sandbox *sb;
        int64_t ready_ns;
        struct slot *next;
} slot;

struct tr_pool {
        tr_runtime *rt;
        tr_request *shape; /* our copy */
        pthread_mutex_t lock;
        pthread_cond_t cond;
        slot *ready;   /* newest first */
        slot *to_free; /* used or expired: torn down by the workers */
        /* running: taken sandboxes whose execution has not ended; they
         * count toward the size, so that the refill starts when the run it
         * replaces ends and a boot never competes with that run for the CPU
         * (a VM's boot under TCG takes a whole core for seconds). */
        size_t size, n_ready, preparing, running;
        int64_t max_age_ns;
        bool stop, filled_once;
        int64_t backoff_ms;
        tr_pool_stats stats;
        pthread_t workers[WORKERS];
        size_t n_workers;
};

static int copy_shape(const tr_request *shape, tr_request **ret, tr_error **ret_err) {
        _cleanup_(tr_request_freep) tr_request *c = NULL;
        int r = tr_request_new(&c, ret_err);
        if (r >= 0 && tr_request_language(shape))
                r = tr_request_set_language(c, tr_request_language(shape), ret_err);
        for (size_t i = 0; r >= 0 && i < tr_request_arg_count(shape); i++)
                r = tr_request_add_arg(c, tr_request_arg_at(shape, i), ret_err);
        if (r >= 0 && shape->n_egress)
                r = tr_request_set_egress_allow(c, (const char *const *) shape->egress, shape->n_egress, ret_err);
        if (r < 0)
                return r;
        tr_request_set_profile(c, tr_request_profile(shape));
        tr_request_set_limits(c, tr_request_limits(shape));
        tr_request_set_timeout_ms(c, tr_request_timeout_ms(shape));
        tr_request_set_max_output(c, tr_request_max_output(shape));
        /* Prepare wants one; each execution binds its request's own. */
        tr_request_set_gateway(c, tr_request_gateway(shape));
        *ret = TAKE_PTR(c);
        return 0;
}

static void sleep_ms(int64_t ms) {
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };
        nanosleep(&ts, NULL);
}

static void timed_wait(tr_pool *p, int64_t ms) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += ms / 1000;
        ts.tv_nsec += (ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&p->cond, &p->lock, &ts);
}

/* Move idle sandboxes past the age limit, and those over the size, to the
 * teardown list.  Called locked. */
static void expire_locked(tr_pool *p) {
        int64_t now = tr__now_ns();
        size_t kept = 0;
        for (slot **pp = &p->ready; *pp;) {
                slot *s = *pp;
                if (now - s->ready_ns > p->max_age_ns || kept >= p->size) {
                        *pp = s->next;
                        s->next = p->to_free;
                        p->to_free = s;
                        p->n_ready--;
                        p->stats.expired++;
                } else {
                        kept++;
                        pp = &s->next;
                }
        }
}

static void *worker_main(void *arg) {
        tr_pool *p = arg;
        pthread_mutex_lock(&p->lock);
        while (!p->stop) {
                expire_locked(p);
                if (p->to_free) {
                        slot *s = p->to_free;
                        p->to_free = s->next;
                        pthread_mutex_unlock(&p->lock);
                        tr_sandbox_free(s->sb);
                        free(s);
                        pthread_mutex_lock(&p->lock);
                        continue;
                }
                if (p->n_ready + p->preparing + p->running >= p->size) {
                        if (p->n_ready >= p->size && p->size > 0)
                                p->filled_once = true;
                        /* Wake when the oldest idle sandbox comes of age. */
                        int64_t wait_ms = 1000, now = tr__now_ns();
                        for (slot *s = p->ready; s; s = s->next) {
                                int64_t left = (s->ready_ns + p->max_age_ns - now) / TR_NSEC_PER_MSEC + 1;
                                if (left < wait_ms)
                                        wait_ms = left < 1 ? 1 : left;
                        }
                        timed_wait(p, wait_ms);
                        continue;
                }
                p->preparing++;
                int64_t backoff = p->backoff_ms;
                pthread_mutex_unlock(&p->lock);
                if (backoff)
                        sleep_ms(backoff);
                tr_sandbox *sb = NULL;
                tr_error *err = NULL;
                int r = tr_runtime_prepare(p->rt, p->shape, NULL, &sb, &err);
                slot *s = r >= 0 ? calloc(1, sizeof(*s)) : NULL;
                if (r >= 0 && !s) {
                        tr_sandbox_free(sb);
                        r = -ENOMEM;
                }
                pthread_mutex_lock(&p->lock);
                p->preparing--;
                if (r >= 0) {
                        s->sb = sb;
                        s->ready_ns = tr__now_ns();
                        s->next = p->ready;
                        p->ready = s;
                        p->n_ready++;
                        p->stats.prepared++;
                        p->backoff_ms = 0;
                } else {
                        /* A backend that cannot prepare now (containerd
                         * restarting, out of memory) is retried ever more
                         * slowly; executions meanwhile run cold. */
                        p->stats.prepare_failures++;
                        p->backoff_ms = p->backoff_ms ? p->backoff_ms * 2 : 100;
                        if (p->backoff_ms > MAX_BACKOFF_MS)
                                p->backoff_ms = MAX_BACKOFF_MS;
                        const char *kv[] = { "code", err ? tr_error_code_name(err) : "internal", NULL };
                        tr__runtime_log(p->rt, TR_LOG_WARN,
                                        err ? tr_error_message(err) : "pool: preparing a sandbox failed", kv);
                }
                tr_error_free(err);
                pthread_cond_broadcast(&p->cond);
        }
        pthread_mutex_unlock(&p->lock);
        return NULL;
}

TR_PUBLIC int tr_pool_new(tr_runtime *rt, const tr_request *shape, size_t size, tr_pool **ret_pool,
                          tr_error **ret_err) {
        if (!rt || !shape || !ret_pool)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, "pool.new", "invalid argument");
        tr_pool *p = calloc(1, sizeof(*p));
        if (!p)
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "pool.new", "out of memory");
        p->rt = rt;
        p->size = size;
        p->max_age_ns = (int64_t) DEFAULT_MAX_AGE_MS * TR_NSEC_PER_MSEC;
        pthread_mutex_init(&p->lock, NULL);
        pthread_cond_init(&p->cond, NULL);
        int r = copy_shape(shape, &p->shape, ret_err);
        /* The shape is checked now, not by every refill. */
        if (r >= 0)
                r = tr__request_validate_shape(p->shape, ret_err);
        /* A backend without the lifecycle (a caller's own, with execute
         * only) cannot prepare anything ahead: a pool of it would only
         * label cold runs warm. */
        tr_backend *b = NULL;
        if (r >= 0)
                r = tr__runtime_route_request(rt, p->shape, &b, ret_err);
        if (r >= 0 && !(b->ops->prepare && b->ops->run && b->ops->destroy))
                r = tr_error_set(ret_err, TR_E_INVALID_REQUEST, tr_backend_kind_of(b), "pool.new",
                                 "the %s backend cannot prepare sandboxes ahead (no prepare step yet): no pool for it",
                                 tr_backend_kind_name(tr_backend_kind_of(b)));
        /* The egress policy too: a refused allowlist is the caller's error
         * now, not a refill that fails forever. */
        if (r >= 0)
                r = tr__profile_check_egress(tr__runtime_profile_of(rt, p->shape), tr_backend_kind_of(b), p->shape,
                                             ret_err);
        for (size_t i = 0; r >= 0 && i < WORKERS; i++) {
                if (pthread_create(&p->workers[i], NULL, worker_main, p) != 0) {
                        r = tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "pool.new",
                                         "cannot start a pool thread");
                        break;
                }
                p->n_workers++;
        }
        if (r < 0) {
                tr_pool_free(p);
                return r;
        }
        *ret_pool = p;
        return 0;
}

TR_PUBLIC int tr_pool_execute(tr_pool *p, const tr_request *req, tr_cancel *cancel, tr_result **ret_result,
                              tr_error **ret_err) {
        if (ret_result)
                *ret_result = NULL;
        if (!p || !req)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, "pool.execute", "invalid argument");
        slot *s = NULL;
        pthread_mutex_lock(&p->lock);
        if (p->ready && tr__sandbox_fits(p->ready->sb, req)) {
                s = p->ready;
                p->ready = s->next;
                p->n_ready--;
                p->running++;
                p->stats.warm++;
        } else {
                p->stats.cold++;
        }
        pthread_mutex_unlock(&p->lock);

        tr_result *res = NULL;
        int r;
        if (s) {
                r = tr_sandbox_run(s->sb, req, cancel, &res, ret_err);
                /* Torn down in the background: the caller has its result;
                 * and the refill starts now. */
                pthread_mutex_lock(&p->lock);
                p->running--;
                s->next = p->to_free;
                p->to_free = s;
                pthread_cond_broadcast(&p->cond);
                pthread_mutex_unlock(&p->lock);
        } else {
                r = tr_runtime_execute(p->rt, req, cancel, &res, ret_err);
        }
        if (res)
                (void) tr_result_set_backend_detail(res, "pool", s ? "warm" : "cold", NULL);
        if (ret_result)
                *ret_result = res;
        else
                tr_result_free(res);
        return r;
}

TR_PUBLIC void tr_pool_set_size(tr_pool *p, size_t size) {
        if (!p)
                return;
        pthread_mutex_lock(&p->lock);
        p->size = size;
        p->filled_once = p->filled_once && p->n_ready >= size;
        pthread_cond_broadcast(&p->cond);
        pthread_mutex_unlock(&p->lock);
}

TR_PUBLIC void tr_pool_set_max_age_ms(tr_pool *p, int64_t ms) {
        if (!p || ms <= 0)
                return;
        pthread_mutex_lock(&p->lock);
        p->max_age_ns = ms * TR_NSEC_PER_MSEC;
        pthread_cond_broadcast(&p->cond);
        pthread_mutex_unlock(&p->lock);
}

TR_PUBLIC void tr_pool_get_stats(tr_pool *p, tr_pool_stats *ret) {
        memset(ret, 0, sizeof(*ret));
        if (!p)
                return;
        pthread_mutex_lock(&p->lock);
        *ret = p->stats;
        ret->size = p->size;
        ret->ready = p->n_ready;
        ret->preparing = p->preparing;
        ret->filled_once = p->filled_once;
        pthread_mutex_unlock(&p->lock);
}

TR_PUBLIC void tr_pool_free(tr_pool *p) {
        if (!p)
                return;
        pthread_mutex_lock(&p->lock);
        p->stop = true;
        pthread_cond_broadcast(&p->cond);
        pthread_mutex_unlock(&p->lock);
        for (size_t i = 0; i < p->n_workers; i++)
                pthread_join(p->workers[i], NULL);
        /* Workers are gone: no lock needed. */
        for (slot *lists[2] = { p->ready, p->to_free }, **l = lists; l < lists + 2; l++)
                while (*l) {
                        slot *s = *l;
                        *l = s->next;
                        tr_sandbox_free(s->sb);
                        free(s);
                }
        tr_request_free(p->shape);
        pthread_mutex_destroy(&p->lock);
        pthread_cond_destroy(&p->cond);
        free(p);
}
