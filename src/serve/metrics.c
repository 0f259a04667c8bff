/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The service's Prometheus metrics: executions by backend/profile/outcome,
 * an execution-duration histogram, HTTP responses by status, gateway tool
 * calls, and (at scrape time) in-flight executions and queue depth.  The
 * label values come from small closed sets (backend kinds, profile names,
 * outcome codes), so the series count stays bounded.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve/serve.h"
#include "util/macros.h"

static const double buckets[] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60 };
#define N_BUCKETS ARRAY_SIZE(buckets)

typedef struct series {
        char backend[24], profile[16], outcome[40];
        uint64_t count;
} series;

/* A bound on distinct (backend, profile, outcome) triples: every label
 * comes from a closed set, so this is never reached in practice; past it
 * the triple is counted under outcome "other". */
#define MAX_SERIES 256

struct tr__serve_metrics {
        pthread_mutex_t lock;
        series s[MAX_SERIES];
        size_t n;
        uint64_t bucket[N_BUCKETS + 1]; /* the last one is +Inf */
        double sum;
        uint64_t count;
        uint64_t tool_calls;
        uint64_t http[6]; /* 1xx..5xx by first digit; [0] other */
};

int tr__serve_metrics_new(tr__serve_metrics **ret) {
        tr__serve_metrics *m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        pthread_mutex_init(&m->lock, NULL);
        *ret = m;
        return 0;
}

void tr__serve_metrics_free(tr__serve_metrics *m) {
        if (!m)
                return;
        pthread_mutex_destroy(&m->lock);
        free(m);
}

void tr__serve_metrics_execution(tr__serve_metrics *m, const char *backend, const char *profile, const char *outcome,
                                 double seconds, size_t tool_calls) {
        pthread_mutex_lock(&m->lock);
        series *hit = NULL;
        for (size_t i = 0; i < m->n && !hit; i++)
                if (streq(m->s[i].backend, backend) && streq(m->s[i].profile, profile) &&
                    streq(m->s[i].outcome, outcome))
                        hit = &m->s[i];
        if (!hit && m->n < MAX_SERIES) {
                hit = &m->s[m->n++];
                snprintf(hit->backend, sizeof(hit->backend), "%s", backend);
                snprintf(hit->profile, sizeof(hit->profile), "%s", profile);
                snprintf(hit->outcome, sizeof(hit->outcome), "%s", outcome);
        }
        if (hit)
                hit->count++;
        size_t b = 0;
        while (b < N_BUCKETS && seconds > buckets[b])
                b++;
        m->bucket[b]++;
        m->sum += seconds;
        m->count++;
        m->tool_calls += tool_calls;
        pthread_mutex_unlock(&m->lock);
}

void tr__serve_metrics_http(tr__serve_metrics *m, unsigned status) {
        unsigned d = status / 100;
        pthread_mutex_lock(&m->lock);
        m->http[d >= 1 && d <= 5 ? d : 0]++;
        pthread_mutex_unlock(&m->lock);
}

char *tr__serve_metrics_text(tr__serve_metrics *m, unsigned in_flight, unsigned queued, unsigned sessions,
                             const tr__serve_backends *bk) {
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);
        if (!f)
                return NULL;
        pthread_mutex_lock(&m->lock);
        fprintf(f, "# HELP toolruntime_executions_total Executions finished, by backend, profile and outcome.\n"
                   "# TYPE toolruntime_executions_total counter\n");
        for (size_t i = 0; i < m->n; i++)
                fprintf(f, "toolruntime_executions_total{backend=\"%s\",profile=\"%s\",outcome=\"%s\"} %llu\n",
                        m->s[i].backend, m->s[i].profile, m->s[i].outcome, (unsigned long long) m->s[i].count);
        fprintf(f, "# HELP toolruntime_execution_duration_seconds Wall time of an execution.\n"
                   "# TYPE toolruntime_execution_duration_seconds histogram\n");
        uint64_t cum = 0;
        for (size_t i = 0; i < N_BUCKETS; i++) {
                cum += m->bucket[i];
                fprintf(f, "toolruntime_execution_duration_seconds_bucket{le=\"%g\"} %llu\n", buckets[i],
                        (unsigned long long) cum);
        }
        cum += m->bucket[N_BUCKETS];
        fprintf(f,
                "toolruntime_execution_duration_seconds_bucket{le=\"+Inf\"} %llu\n"
                "toolruntime_execution_duration_seconds_sum %.6f\n"
                "toolruntime_execution_duration_seconds_count %llu\n",
                (unsigned long long) cum, m->sum, (unsigned long long) m->count);
        fprintf(f,
                "# HELP toolruntime_gateway_tool_calls_total Tool calls made by executions.\n"
                "# TYPE toolruntime_gateway_tool_calls_total counter\n"
                "toolruntime_gateway_tool_calls_total %llu\n",
                (unsigned long long) m->tool_calls);
        fprintf(f, "# HELP toolruntime_http_responses_total HTTP responses by status class.\n"
                   "# TYPE toolruntime_http_responses_total counter\n");
        for (unsigned d = 1; d <= 5; d++)
                fprintf(f, "toolruntime_http_responses_total{code=\"%uxx\"} %llu\n", d,
                        (unsigned long long) m->http[d]);
        pthread_mutex_unlock(&m->lock);
        fprintf(f,
                "# HELP toolruntime_in_flight Executions running now.\n"
                "# TYPE toolruntime_in_flight gauge\n"
                "toolruntime_in_flight %u\n"
                "# HELP toolruntime_queue_depth Requests waiting for an execution slot.\n"
                "# TYPE toolruntime_queue_depth gauge\n"
                "toolruntime_queue_depth %u\n"
                "# HELP toolruntime_sessions Sessions alive now (/v1/sessions).\n"
                "# TYPE toolruntime_sessions gauge\n"
                "toolruntime_sessions %u\n",
                in_flight, queued, sessions);
        fprintf(f, "# HELP toolruntime_pool_ready Prepared sandboxes waiting for code, by pool.\n"
                   "# TYPE toolruntime_pool_ready gauge\n");
        for (size_t i = 0; bk && i < bk->n_pools; i++) {
                tr_pool_stats st;
                tr_pool_get_stats(bk->pools[i].pool, &st);
                fprintf(f,
                        "toolruntime_pool_ready{pool=\"%s\"} %zu\n"
                        "toolruntime_pool_size{pool=\"%s\"} %zu\n"
                        "toolruntime_pool_preparing{pool=\"%s\"} %zu\n"
                        "toolruntime_pool_executions_total{pool=\"%s\",sandbox=\"warm\"} %llu\n"
                        "toolruntime_pool_executions_total{pool=\"%s\",sandbox=\"cold\"} %llu\n"
                        "toolruntime_pool_prepare_failures_total{pool=\"%s\"} %llu\n",
                        bk->pools[i].name, st.ready, bk->pools[i].name, st.size, bk->pools[i].name, st.preparing,
                        bk->pools[i].name, (unsigned long long) st.warm, bk->pools[i].name,
                        (unsigned long long) st.cold, bk->pools[i].name, (unsigned long long) st.prepare_failures);
        }
        if (ferror(f)) {
                fclose(f);
                free(text);
                return NULL;
        }
        return fclose(f) == 0 ? text : (free(text), NULL);
}
