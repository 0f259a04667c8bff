/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench/kata.sh's driver: N kata executions of a trivial Python snippet on
 * one backend (the first, untimed, pays the KVM probe), printing each round
 * trip in milliseconds, one per line.  With `pool`, each execution runs in
 * a warm pool's VM (size 1; each waits until the pool has refilled, so the
 * figure is the warm run alone).  The VM files are TR_VM_KERNEL,
 * TR_VM_INITRD, TR_VM_IMAGE when set.
 *
 * usage: kata-exec N [snippet] [pool]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "toolruntime.h"

static double now_ms(void) {
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        return (double) t.tv_sec * 1e3 + (double) t.tv_nsec / 1e6;
}

int main(int argc, char **argv) {
        int n = argc > 1 ? (int) strtol(argv[1], NULL, 10) : 5;
        const char *code = argc > 2 ? argv[2] : "__out = 1 + 1\n";
        tr_runtime *rt = NULL;
        tr_backend *b = NULL;
        tr_gateway *gw = NULL;
        tr_error *e = NULL;
        bool pooled = argc > 3 && strcmp(argv[3], "pool") == 0;
        tr_kata_config cfg = { .size = sizeof(tr_kata_config),
                               .kernel_path = getenv("TR_VM_KERNEL"),
                               .initrd_path = getenv("TR_VM_INITRD"),
                               .image_path = getenv("TR_VM_IMAGE") };
        if (tr_runtime_new(&rt, &e) < 0 || tr_backend_kata_new(&cfg, &b, &e) < 0 ||
            tr_runtime_add_backend(rt, b, &e) < 0 || tr_gateway_new_empty(&gw, &e) < 0) {
                fprintf(stderr, "kata-exec: %s\n", e ? tr_error_message(e) : "setup failed");
                return 1;
        }
        tr_runtime_route(rt, TR_PROFILE_STANDARD, TR_BACKEND_KATA);
        tr_request *req = NULL;
        tr_request_new(&req, NULL);
        tr_request_set_code(req, code, strlen(code), NULL);
        tr_request_set_gateway(req, gw);
        tr_pool *pool = NULL;
        if (pooled && tr_pool_new(rt, req, 1, &pool, &e) < 0) {
                fprintf(stderr, "kata-exec: %s\n", tr_error_message(e));
                return 1;
        }
        for (int i = -1; i < n; i++) {
                tr_result *res = NULL;
                for (tr_pool_stats st = { 0 }; pool && !st.ready; tr_pool_get_stats(pool, &st))
                        usleep(50 * 1000);
                double t0 = now_ms();
                int r = pool ? tr_pool_execute(pool, req, NULL, &res, &e) : tr_runtime_execute(rt, req, NULL, &res, &e);
                double dt = now_ms() - t0;
                if (r < 0 || !res || !tr_result_value_json(res) || strcmp(tr_result_value_json(res), "2") != 0) {
                        fprintf(stderr, "kata-exec: execution failed: %s\n", e ? tr_error_message(e) : "bad result");
                        return 1;
                }
                if (pool && strcmp(tr_result_backend_detail(res, "pool"), "warm") != 0) {
                        fprintf(stderr, "kata-exec: a pooled execution ran cold\n");
                        return 1;
                }
                if (i >= 0)
                        printf("%.1f %s\n", dt, tr_result_backend_detail(res, "boot_ms"));
                tr_result_free(res);
        }
        tr_pool_free(pool);
        tr_request_free(req);
        tr_gateway_free(gw);
        tr_runtime_free(rt);
        return 0;
}
