/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Stage 5 of the guest agent, the child's side: the snippet's process.  It
 * owns every privilege step between PID 1 and the interpreter (cgroup join,
 * chroot into the root image, empty capability bounding set, uid/gid 65534,
 * no_new_privs, the seccomp filter) and the pipes the relay (relay.c)
 * reads and writes.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "agent.h"

pid_t tr__agent_spawn(agent *a, const request *req, child_pipes *cp) {
        int pin[2], pout[2], perr[2];
        if (pipe2(pin, O_CLOEXEC) < 0 || pipe2(pout, O_CLOEXEC) < 0 || pipe2(perr, O_CLOEXEC) < 0)
                tr__agent_fail(a, "pipe: %s", strerror(errno));
        pid_t pid = fork();
        if (pid < 0)
                tr__agent_fail(a, "fork: %s", strerror(errno));
        if (pid == 0) {
                /* Join the limited cgroup first, while still root, so every
                 * process the snippet makes is counted. */
                if (a->cg_ok && tr__agent_write_file(CGSNIP "/cgroup.procs", "0") < 0)
                        _exit(126);
                (void) tr__agent_write_file("/proc/self/oom_score_adj", "500");
                setsid();
                if (dup2(pin[0], 0) < 0 || dup2(pout[1], 1) < 0 || dup2(perr[1], 2) < 0)
                        _exit(126);
                /* The root image becomes the snippet's whole world; without
                 * CAP_SYS_CHROOT (dropped below) it cannot climb out. */
                if (chroot(NEWROOT) < 0 || chdir("/tmp") < 0)
                        _exit(126);
                struct rlimit core = { 0, 0 };
                setrlimit(RLIMIT_CORE, &core);
                if (req->pids) {
                        /* Belt and braces with pids.max: uid 65534 runs
                         * nothing else in this VM, so the count is honest. */
                        struct rlimit np = { req->pids, req->pids };
                        setrlimit(RLIMIT_NPROC, &np);
                }
                /* Empty the bounding set so no later exec can regain a
                 * capability, then become 65534: the uid change clears the
                 * permitted and effective sets. */
                for (int cap = 0; cap <= 63; cap++)
                        (void) prctl(PR_CAPBSET_DROP, cap, 0, 0, 0);
                (void) prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
                if (setgroups(0, NULL) < 0 || setresgid((gid_t) req->gid, (gid_t) req->gid, (gid_t) req->gid) < 0 ||
                    setresuid((uid_t) req->uid, (uid_t) req->uid, (uid_t) req->uid) < 0)
                        _exit(126);
                /* no_new_privs: setuid binaries and file capabilities in the
                 * image grant nothing. */
                if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                        _exit(126);
                if (tr__agent_install_seccomp(req) < 0) {
                        static const char msg[] = "toolruntime-agent: cannot install the seccomp filter\n";
                        ssize_t w = write(2, msg, sizeof(msg) - 1);
                        (void) w;
                        _exit(126);
                }
                sigset_t all;
                sigemptyset(&all);
                sigprocmask(SIG_SETMASK, &all, NULL);
                extern char **environ;
                environ = req->env;
                execvp(req->argv[0], req->argv);
                static const char msg[] = "toolruntime-agent: cannot execute the interpreter\n";
                ssize_t w = write(2, msg, sizeof(msg) - 1);
                (void) w;
                _exit(127);
        }
        close(pin[0]);
        close(pout[1]);
        close(perr[1]);
        cp->in = pin[1];
        cp->out = pout[0];
        cp->err = perr[0];
        fcntl(cp->in, F_SETFL, O_NONBLOCK);
        return pid;
}
