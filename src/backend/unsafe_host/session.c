/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Sessions on the unsafe_host backend (the tr_backend_ops session seam):
 * the interpreter's pipes, SIGINT to it, a gateway session per execution on
 * its inherited fd stream, and the keeper thread its supervisor is forked
 * from.  Development only, like the backend: no isolation.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "backend/unsafe_host/internal.h"
#include "util/macros.h"
#include "util/proc.h"

/* A session outlives the call that created it, and the supervisor's
 * PR_SET_PDEATHSIG fires when the *thread* that forked it exits (an HTTP
 * service's connection thread, say).  So a session's supervisor is forked
 * by a thread of its own, which waits until the session is destroyed. */
typedef struct uh_keeper {
        pthread_t thread;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        uh *b;
        uh_sb *s;
        tr_exec *ex;
        tr_error *err;
        int r;
        bool started, stop;
} uh_keeper;

static void *keeper_main(void *p) {
        uh_keeper *k = p;
        tr_error *err = NULL;
        int r = tr__uh_start(k->b, k->s, k->ex, &err);
        pthread_mutex_lock(&k->lock);
        k->r = r;
        k->err = err;
        k->started = true;
        pthread_cond_broadcast(&k->cond);
        while (!k->stop)
                pthread_cond_wait(&k->cond, &k->lock);
        pthread_mutex_unlock(&k->lock);
        return NULL;
}

static int keeper_start(uh_keeper *k, tr_error **ret_err) {
        pthread_mutex_init(&k->lock, NULL);
        pthread_cond_init(&k->cond, NULL);
        if (pthread_create(&k->thread, NULL, keeper_main, k) != 0) {
                pthread_mutex_destroy(&k->lock);
                pthread_cond_destroy(&k->cond);
                return tr_error_set(ret_err, TR_E_INTERNAL, UH_KIND, "spawn", "cannot start a thread");
        }
        pthread_mutex_lock(&k->lock);
        while (!k->started)
                pthread_cond_wait(&k->cond, &k->lock);
        pthread_mutex_unlock(&k->lock);
        if (k->r < 0 && ret_err)
                *ret_err = TAKE_PTR(k->err);
        tr_error_free(TAKE_PTR(k->err));
        return k->r;
}

void tr__uh_keeper_stop(uh_keeper *k) {
        if (!k)
                return;
        pthread_mutex_lock(&k->lock);
        k->stop = true;
        pthread_cond_broadcast(&k->cond);
        pthread_mutex_unlock(&k->lock);
        pthread_join(k->thread, NULL);
        pthread_mutex_destroy(&k->lock);
        pthread_cond_destroy(&k->cond);
        free(k);
}

int tr__uh_keeper_start(uh *b, uh_sb *s, tr_exec *ex, tr_error **ret_err) {
        uh_keeper *k = calloc(1, sizeof *k);
        if (!k)
                return tr_error_set(ret_err, TR_E_INTERNAL, UH_KIND, "prepare", "out of memory");
        *k = (uh_keeper){ .b = b, .s = s, .ex = ex };
        int r = keeper_start(k, ret_err);
        /* A started keeper waits for destroy, also after a failed start. */
        if (r >= 0 || k->started)
                s->keeper = k;
        else
                free(k);
        return r;
}

/* ---- sessions (tr_backend_ops' session seam) ------------------------------ */

int tr__uh_session_io(void *self, void *sandbox, int *ret_in, int *ret_out, int *ret_errfd, tr_error **ret_err) {
        uh_sb *s = sandbox;
        if (s->f.in[1] < 0 || s->f.out[0] < 0 || s->f.err[0] < 0)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, UH_KIND, "session.new",
                                    "this sandbox cannot hold a session (it ran already)");
        *ret_in = s->f.in[1];
        *ret_out = s->f.out[0];
        *ret_errfd = s->f.err[0];
        return 0;
}

/* The interpreter is the supervisor's one direct child (a process group
 * of its own): read its pid from the supervisor's children list. */
int tr__uh_signal(void *self, void *sandbox, int sig, tr_error **ret_err) {
        uh_sb *s = sandbox;
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int) s->sup, (int) s->sup);
        _cleanup_free_ char *data = NULL;
        size_t len = 0;
        long pid = 0;
        if (s->sup > 0 && tr__read_file(path, 4096, &data, &len) >= 0)
                pid = strtol(data, NULL, 10);
        if (pid <= 0 || kill((pid_t) pid, sig) < 0)
                return tr_error_set(ret_err, TR_E_INTERNAL, UH_KIND, "signal", "no interpreter process to signal");
        return 0;
}

/* Tools per execution: the core's gateway session for this execution on a
 * copy of the snippet's gateway stream (fd 3 in the interpreter, which
 * lives on).  What was applied was reported when the interpreter started. */
int tr__uh_session_begin(void *self, void *sandbox, tr_exec *ex, tr_error **ret_err) {
        uh_sb *s = sandbox;
        tr__gw_session *gw = tr__exec_gateway(ex);
        if (s->f.gw[0] < 0 || !gw)
                return 0;
        int fd = fcntl(s->f.gw[0], F_DUPFD_CLOEXEC, 3);
        if (fd < 0)
                return tr__uh_fail(ret_err, "gateway", tr__negerrno(), "dup");
        return tr__gw_session_serve_fd(gw, fd, ret_err);
}
