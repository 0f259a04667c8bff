/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Cancellation tokens.  An eventfd, so that cancelling is one write(2) —
 * async-signal-safe and thread-safe — and every poll loop of every backend
 * can wait on it next to its own fds.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/internal.h"
#include "util/macros.h"

struct tr_cancel {
        int fd;
        atomic_bool cancelled;
};

TR_PUBLIC int tr_cancel_new(tr_cancel **ret_cancel, tr_error **ret_err) {
        tr_cancel *c = calloc(1, sizeof(*c));
        if (!c)
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "cancel.new", "out of memory");
        c->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (c->fd < 0) {
                int r = tr__negerrno();
                free(c);
                tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "cancel.new", "eventfd: %s", strerror(-r));
                return r;
        }
        atomic_init(&c->cancelled, false);
        *ret_cancel = c;
        return 0;
}

TR_PUBLIC void tr_cancel_cancel(tr_cancel *c) {
        if (!c)
                return;
        atomic_store(&c->cancelled, true);
        /* Never read: the counter stays non-zero, so the fd stays readable for
         * every poller, however many there are. */
        uint64_t one = 1;
        ssize_t w = write(c->fd, &one, sizeof(one));
        (void) w;
}

TR_PUBLIC bool tr_cancel_is_cancelled(const tr_cancel *c) {
        return c && atomic_load(&((tr_cancel *) c)->cancelled);
}

TR_PUBLIC int tr_cancel_fd(const tr_cancel *c) {
        return c ? c->fd : -1;
}

TR_PUBLIC void tr_cancel_free(tr_cancel *c) {
        if (!c)
                return;
        close(c->fd);
        free(c);
}
