/* SPDX-License-Identifier: Apache-2.0 */
/* tr_call_ctx: see callctx.h. */
#include <errno.h>
#include <stdlib.h>

#include "gateway/callctx.h"

void tr__call_ctx_init_exec(tr_call_ctx *ctx, const tr_exec *ex, int stop_fd) {
        *ctx = (tr_call_ctx){ .ex = ex };
        if (stop_fd >= 0)
                ctx->fds[ctx->n_fds++] = stop_fd;
        int cfd = ex ? tr_exec_cancel_fd(ex) : -1;
        if (cfd >= 0)
                ctx->fds[ctx->n_fds++] = cfd;
}

TR_PUBLIC int tr_call_ctx_new(int64_t deadline_ns, const tr_cancel *cancel, tr_call_ctx **ret_ctx, tr_error **ret_err) {
        if (!ret_ctx || deadline_ns < 0)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, "call_ctx",
                                    "a call context needs an out-parameter and a deadline >= 0");
        tr_call_ctx *c = calloc(1, sizeof(*c));
        if (!c)
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "call_ctx", "out of memory");
        c->deadline_ns = deadline_ns;
        int cfd = cancel ? tr_cancel_fd(cancel) : -1;
        if (cfd >= 0)
                c->fds[c->n_fds++] = cfd;
        *ret_ctx = c;
        return 0;
}

TR_PUBLIC void tr_call_ctx_free(tr_call_ctx *ctx) {
        free(ctx);
}

TR_PUBLIC int64_t tr_call_ctx_deadline_ns(const tr_call_ctx *ctx) {
        if (!ctx)
                return 0;
        return ctx->ex ? tr_exec_deadline_ns(ctx->ex) : ctx->deadline_ns;
}

int tr__call_ctx_pollfds(const tr_call_ctx *ctx, struct pollfd *p) {
        int n = 0;
        for (int i = 0; ctx && i < ctx->n_fds; i++)
                p[n++] = (struct pollfd){ .fd = ctx->fds[i], .events = POLLIN };
        return n;
}

TR_PUBLIC size_t tr_call_ctx_cancel_fds(const tr_call_ctx *ctx, int *fds, size_t max) {
        size_t n = 0;
        for (int i = 0; ctx && i < ctx->n_fds && n < max; i++)
                fds[n++] = ctx->fds[i];
        return n;
}

TR_PUBLIC bool tr_call_ctx_cancelled(const tr_call_ctx *ctx) {
        struct pollfd p[TR__CALL_MAX_CANCEL_FDS];
        int n = tr__call_ctx_pollfds(ctx, p);
        if (n == 0)
                return false;
        int r;
        while ((r = poll(p, (nfds_t) n, 0)) < 0 && errno == EINTR)
                ;
        return r > 0;
}
