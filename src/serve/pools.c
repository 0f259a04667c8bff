/* SPDX-License-Identifier: Apache-2.0 */
/*
 * /v1/pools: the service's warm pools (--pool PROFILE[/BACKEND]=N) seen and
 * resized at run time, so that an operator can follow the load without a
 * restart:
 *
 *   GET /v1/pools                      {"pools": {NAME: {size, ready, ...}}}
 *   PUT /v1/pools/PROFILE/BACKEND      {"size": N} (0 to TR__SERVE_POOL_MAX)
 *
 * A pool is only resized, never created here: its shape (profile, backend,
 * limits, tools) is the service's configuration.  Growing starts the
 * refill; shrinking lets ready sandboxes above the size go (tr_pool).
 * Behind the service's bearer token like every route but /v1/health.
 */
#include <jansson.h>
#include <string.h>

#include "serve/serve.h"
#include "util/macros.h"

static json_t *pool_json(tr_pool *pool) {
        tr_pool_stats st;
        tr_pool_get_stats(pool, &st);
        return json_pack("{s:I,s:I,s:I,s:b,s:I,s:I,s:I,s:I}", "size", (json_int_t) st.size, "ready",
                         (json_int_t) st.ready, "preparing", (json_int_t) st.preparing, "filled", st.filled_once,
                         "warm", (json_int_t) st.warm, "cold", (json_int_t) st.cold, "prepared",
                         (json_int_t) st.prepared, "prepare_failures", (json_int_t) st.prepare_failures);
}

static void reply_json(tr__serve_reply *rep, unsigned status, json_t *o) {
        rep->status = status;
        rep->content_type = "application/json";
        rep->body = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        if (!rep->body)
                tr__serve_reply_error(rep, 500, "internal", "out of memory");
}

void tr__serve_pools_route(const tr__serve_backends *bk, const char *method, const char *url, const char *body,
                           size_t len, tr__serve_reply *rep) {
        if (streq(url, "/v1/pools")) {
                if (!streq(method, "GET")) {
                        tr__serve_reply_error(rep, 405, "method_not_allowed", "%s is not allowed on %s", method, url);
                        return;
                }
                json_t *pools = json_object();
                for (size_t i = 0; pools && i < bk->n_pools; i++)
                        json_object_set_new(pools, bk->pools[i].name, pool_json(bk->pools[i].pool));
                reply_json(rep, 200, json_pack("{s:o}", "pools", pools));
                return;
        }
        const char *name = url + strlen("/v1/pools/");
        size_t i = 0;
        while (i < bk->n_pools && !streq(bk->pools[i].name, name))
                i++;
        if (i == bk->n_pools) {
                tr__serve_reply_error(
                        rep, 404, "not_found",
                        "no pool %s on this server (pools are configured with --pool PROFILE[/BACKEND]=N)", name);
                return;
        }
        if (!streq(method, "PUT") && !streq(method, "GET")) {
                tr__serve_reply_error(rep, 405, "method_not_allowed", "%s is not allowed on %s", method, url);
                return;
        }
        if (streq(method, "PUT")) {
                json_error_t jerr;
                json_t *o = json_loadb(body, len, 0, &jerr);
                json_t *size = json_object_get(o, "size");
                bool ok = json_is_object(o) && json_object_size(o) == 1 && json_is_integer(size) &&
                          json_integer_value(size) >= 0 && json_integer_value(size) <= TR__SERVE_POOL_MAX;
                json_int_t n = ok ? json_integer_value(size) : 0;
                json_decref(o);
                if (!ok) {
                        tr__serve_reply_error(rep, 400, "invalid_request",
                                              "expected {\"size\": N} with N from 0 to %d and no other field",
                                              TR__SERVE_POOL_MAX);
                        return;
                }
                tr_pool_set_size(bk->pools[i].pool, (size_t) n);
        }
        reply_json(rep, 200, json_pack("{s:s,s:o}", "name", bk->pools[i].name, "pool", pool_json(bk->pools[i].pool)));
}
