/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Stage 2 of the guest agent: the one REQUEST frame the host sends (argv,
 * env, code, limits, uid/gid), decoded into a `request` and checked so that
 * a bad request ends in a clear ERROR rather than a hung VM; and the
 * snippet's seccomp program, which arrives in it and which the child
 * installs last thing before exec (spawn.c).
 */
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "agent.h"

/* ---- stage 2: the request ---------------------------------------------- */

static int push(char ***v, size_t *n, const uint8_t *s, size_t len) {
        char **nv = realloc(*v, (*n + 2) * sizeof(char *));
        if (!nv)
                return -ENOMEM;
        *v = nv;
        char *c = malloc(len + 1);
        if (!c)
                return -ENOMEM;
        memcpy(c, s, len);
        c[len] = 0;
        /* A NUL inside an argument would silently cut it: refuse. */
        if (memchr(s, 0, len)) {
                free(c);
                return -EINVAL;
        }
        nv[(*n)++] = c;
        nv[*n] = NULL;
        return 0;
}

/* ---- the snippet's seccomp filter ---------------------------------------
 *
 * The host compiles the profile's policy (the same one runc gets in a
 * container) into a classic BPF program; the agent needs no libseccomp and
 * installs it as is, last thing before exec, after no_new_privs.  It only
 * bounds what it accepts: a whole number of instructions, at most the
 * kernel's BPF_MAXINSNS, once.  A request with a program the kernel then
 * refuses never runs the snippet unfiltered (the child exits 126). */

static void take_seccomp(agent *a, request *req, const uint8_t *v, size_t n) {
        if (req->seccomp || n == 0 || n % sizeof(struct sock_filter) != 0 ||
            n / sizeof(struct sock_filter) > TR_VF_SECCOMP_MAX_INSNS)
                tr__agent_fail(a, "bad seccomp program (%zu bytes)", n);
        req->seccomp = malloc(n);
        if (!req->seccomp)
                tr__agent_fail(a, "out of memory");
        memcpy(req->seccomp, v, n);
        req->seccomp_len = n;
        a->applied |= TR_VL_SECCOMP;
}

/* In the snippet's child, after PR_SET_NO_NEW_PRIVS; 0 or -errno. */
int tr__agent_install_seccomp(const request *req) {
        if (!req->seccomp)
                return 0;
        struct sock_fprog prog = {
                .len = (unsigned short) (req->seccomp_len / sizeof(struct sock_filter)),
                .filter = (struct sock_filter *) req->seccomp,
        };
        return syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0 ? -errno : 0;
}

void tr__agent_read_request(agent *a, tr__vf_reader *rd, request *req) {
        tr__vf_frame fr;
        for (;;) {
                int k = tr__vf_reader_next(rd, &fr);
                if (k < 0)
                        tr__agent_fail(a, "malformed frame from the host: %s", strerror(-k));
                if (k > 0)
                        break;
                ssize_t n = tr__vf_reader_read_fd(rd, a->port);
                if (n == 0)
                        tr__agent_fail(a, "the host closed the channel before the request");
                if (n < 0 && n != -EAGAIN)
                        tr__agent_fail(a, "reading the request: %s", strerror((int) -n));
        }
        if (fr.type != TR_VF_REQUEST)
                tr__agent_fail(a, "expected a request frame, got type %u", fr.type);
        memset(req, 0, sizeof(*req));
        req->uid = req->gid = 65534;
        tr__vf_tlv_iter it;
        tr__vf_tlv_iter_init(&it, fr.payload, fr.len);
        uint16_t tag;
        const uint8_t *v;
        size_t n;
        int k;
        while ((k = tr__vf_tlv_next(&it, &tag, &v, &n)) > 0) {
                uint64_t *num = NULL;
                switch (tag) {
                case TR_VT_ARG:
                        if (push(&req->argv, &req->argc, v, n) < 0)
                                tr__agent_fail(a, "bad argv item");
                        break;
                case TR_VT_ENV:
                        if (push(&req->env, &req->envc, v, n) < 0)
                                tr__agent_fail(a, "bad env item");
                        break;
                case TR_VT_CODE:
                        req->code = v;
                        req->code_len = n;
                        break;
                case TR_VT_MEMORY: num = &req->memory; break;
                case TR_VT_PIDS: num = &req->pids; break;
                case TR_VT_DISK: num = &req->disk; break;
                case TR_VT_CPU_QUOTA_MS: num = &req->cpu_quota_ms; break;
                case TR_VT_NETWORK: num = &req->network; break;
                case TR_VT_UID: num = &req->uid; break;
                case TR_VT_GID: num = &req->gid; break;
                case TR_VT_SECCOMP_BPF: take_seccomp(a, req, v, n); break;
                case TR_VT_STDIN_LIVE: num = &req->stdin_live; break;
                case TR_VT_IDLE_MS: num = &req->idle_ms; break;
                default: break; /* unknown tags are for newer agents */
                }
                if (num && tr__vf_tlv_u64(v, n, num) < 0)
                        tr__agent_fail(a, "bad integer for tag %u", tag);
        }
        if (k < 0)
                tr__agent_fail(a, "malformed request");
        if (req->argc == 0)
                tr__agent_fail(a, "empty argv");
        /* The code must survive the reader's next use: copy it out. */
        if (req->code_len) {
                uint8_t *c = malloc(req->code_len);
                if (!c)
                        tr__agent_fail(a, "out of memory");
                memcpy(c, req->code, req->code_len);
                req->code = c;
        }
        /* The snippet always runs unprivileged, whatever the request says:
         * root in the guest could load modules or talk to the devices. */
        if (req->uid == 0 || req->gid == 0)
                tr__agent_fail(a, "refusing to run the snippet as root");
        if (req->stdin_live)
                a->applied |= TR_VL_STDIN_LIVE;
}
