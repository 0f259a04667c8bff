/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A client that goes away cancels its execution: a thread per running
 * execution polls the connection for the peer's hang-up and cancels the
 * execution's token; the execution's end stops it (an eventfd).  Split
 * from server.c, which starts and stops it around each execution.
 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "serve/serve.h"

/* POLLRDHUP: the peer closed (or shut down) its side.  A keep-alive client
 * that merely sends its next request makes the socket readable, which is
 * not a disconnect, so POLLIN is not watched. */
static void *watch_main(void *arg) {
        tr__serve_watch *w = arg;
        struct pollfd p[2] = { { .fd = w->conn_fd, .events = POLLRDHUP }, { .fd = w->stop_fd, .events = POLLIN } };
        for (;;) {
                int n = poll(p, 2, -1);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 || p[1].revents)
                        break;
                /* POLLNVAL: the descriptor is no longer open (the
                 * connection was closed under us): poll would return it
                 * forever, and the client is gone anyway. */
                if (p[0].revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) {
                        tr_cancel_cancel(w->cancel);
                        break;
                }
        }
        return NULL;
}

void tr__serve_watch_start(tr__serve_watch *w, int conn_fd, tr_cancel *cancel) {
        w->cancel = cancel;
        w->stop_fd = eventfd(0, EFD_CLOEXEC);
        w->conn_fd = conn_fd;
        w->started = w->stop_fd >= 0 && w->conn_fd >= 0 && pthread_create(&w->thread, NULL, watch_main, w) == 0;
}

void tr__serve_watch_stop(tr__serve_watch *w) {
        if (w->started) {
                uint64_t one = 1;
                (void) !write(w->stop_fd, &one, sizeof(one));
                pthread_join(w->thread, NULL);
        }
        if (w->stop_fd >= 0)
                close(w->stop_fd);
}
