/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The proxy's listening socket, made inside the sandbox's own network
 * namespace.  A socket belongs to the namespace it was created in for its
 * whole life, whichever thread later uses it: so one short-lived thread
 * enters the namespace (setns(CLONE_NEWNET) changes only the calling
 * thread's namespace), makes and binds the socket on the sandbox's
 * 127.0.0.1, and ends; the proxy's threads then accept on it from the
 * host's namespace, and their upstream sockets are the host's.  Nothing is
 * mounted into the sandbox and no route is added to its namespace: its only
 * reachable address stays its own loopback.
 *
 * The loopback device: runc brings `lo` up in a new network namespace
 * (libcontainer's "loopback" network, which specconv adds for a namespace
 * without a path), but a runtime that did not would leave the proxy
 * unreachable, so the thread brings it up when it is down
 * (SIOCSIFFLAGS, which needs CAP_NET_ADMIN over the namespace: the
 * runtime's, never the sandbox's).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "egress/egress.h"
#include "util/macros.h"

typedef struct ns_job {
        pid_t pid;
        uint16_t port;
        int fd;
        int err;
        const char *what;
} ns_job;

static int lo_up(void) {
        _cleanup_close_ int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (s < 0)
                return -errno;
        struct ifreq ifr = { 0 };
        snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "lo");
        if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
                return -errno;
        if (ifr.ifr_flags & IFF_UP)
                return 0;
        ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
        if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
                return -errno;
        return 0;
}

/* The network namespace of process `pid`, made sure to be the one of the
 * process containerd named, not of whatever took its pid after it exited:
 * a pidfd pins the process, the namespace is opened through /proc, and
 * only if the pidfd's process is still alive afterwards was /proc/PID that
 * process when it was opened.  And whatever happened before the pidfd was
 * taken, the host's own namespace is never accepted: a proxy listening
 * there would open the allowlist to the host's other programs. */
static int open_netns(pid_t pid, const char **ret_what) {
        /* Without pidfd_open (a kernel before 5.3, or Valgrind 3.19) the
         * host-namespace check below still holds. */
        _cleanup_close_ int pidfd = (int) syscall(SYS_pidfd_open, pid, 0);
        if (pidfd < 0 && errno != ENOSYS) {
                *ret_what = "the sandbox's process is gone";
                return -errno;
        }
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/ns/net", (int) pid);
        int ns = open(path, O_RDONLY | O_CLOEXEC);
        if (ns < 0) {
                *ret_what = "opening the sandbox's network namespace";
                return -errno;
        }
        struct pollfd pf = { .fd = pidfd, .events = POLLIN };
        struct stat own, st;
        const char *why = NULL;
        if (pidfd >= 0 && poll(&pf, 1, 0) != 0)
                why = "the sandbox's process exited while its namespace was opened";
        else if (stat("/proc/self/ns/net", &own) < 0 || fstat(ns, &st) < 0)
                why = "comparing the sandbox's network namespace with the runtime's";
        else if (own.st_dev == st.st_dev && own.st_ino == st.st_ino)
                why = "the sandbox's process is in the host's own network namespace (an exited task whose pid "
                      "was reused?)";
        if (why) {
                close(ns);
                *ret_what = why;
                return -ESRCH;
        }
        return ns;
}

static void *ns_main(void *arg) {
        ns_job *j = arg;
        _cleanup_close_ int ns = open_netns(j->pid, &j->what);
        if (ns < 0) {
                j->err = -ns;
                return NULL;
        }
        /* This thread only: it ends right after, never back in the host's
         * namespace, and no other thread is affected. */
        if (setns(ns, CLONE_NEWNET) < 0) {
                j->err = errno, j->what = "entering the sandbox's network namespace";
                return NULL;
        }
        int r = lo_up();
        if (r < 0) {
                j->err = -r, j->what = "bringing the sandbox's loopback device up";
                return NULL;
        }
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
                j->err = errno, j->what = "socket";
                return NULL;
        }
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(j->port) };
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        int one = 1;
        (void) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, (struct sockaddr *) &a, sizeof a) < 0 || listen(fd, 64) < 0) {
                j->err = errno, j->what = "listening on the sandbox's 127.0.0.1";
                close(fd);
                return NULL;
        }
        j->fd = fd;
        return NULL;
}

int tr__egress_listen_netns(pid_t pid, uint16_t port, int *ret_fd, tr_error **ret_err) {
        ns_job j = { .pid = pid, .port = port, .fd = -1 };
        pthread_t th;
        int e = pthread_create(&th, NULL, ns_main, &j);
        if (e != 0)
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "egress", "starting a thread: %s",
                                    strerror(e));
        pthread_join(th, NULL);
        if (j.fd < 0) {
                tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "egress", "egress proxy: %s (pid %d): %s", j.what,
                             (int) pid, strerror(j.err));
                if (ret_err && *ret_err)
                        tr_error_set_errno(*ret_err, j.err);
                return -j.err;
        }
        *ret_fd = j.fd;
        return 0;
}
