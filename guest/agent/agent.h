/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The guest agent's internal header: its constants, the request it decodes,
 * its state, and the functions its stages share.  The agent is one static
 * program split by stage:
 *
 *   agent.c    main, the shared helpers (log, fail, power off) and stage 1
 *              (the initramfs' mounts, the virtio modules, the port);
 *   request.c  stage 2: the request and the snippet's seccomp program;
 *   sandbox.c  stages 3 and 4: the snippet's filesystem and its cgroup;
 *   spawn.c    stage 5, the child: the privilege steps before exec;
 *   relay.c    stages 5 and 6, PID 1: the relay loop and the exit report.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "util/frame.h"

#define AGENT_VERSION "toolruntime-agent 1"
#define NEWROOT       "/root"
#define CGROOT        "/sys/fs/cgroup"
#define CGSNIP        CGROOT "/snippet"
#define GW_DIR        NEWROOT "/run/toolruntime"
#define GW_SOCK       GW_DIR "/gateway.sock"
#define MAX_GW_CONNS  16
#define DEFAULT_DISK  (64ULL * 1024 * 1024)
/* How long the devices may take to appear after their modules load. */
#define DEVICE_WAIT_MS 20000
/* How long output may keep draining after the snippet's process exited (its
 * descendants are killed through the cgroup, so this is only a guard). */
#define DRAIN_MS 2000

typedef struct request {
        char **argv;
        size_t argc;
        char **env;
        size_t envc;
        const uint8_t *code;
        size_t code_len;
        uint64_t memory, pids, disk, cpu_quota_ms, uid, gid;
        uint64_t network;
        uint64_t stdin_live, idle_ms; /* TR_VT_STDIN_LIVE, TR_VT_IDLE_MS */
        uint8_t *seccomp;             /* the snippet's BPF program (NULL: none) */
        size_t seccomp_len;
} request;

typedef struct gw_conn {
        int fd;
        uint32_t id;
} gw_conn;

/* The thrash watch (see stage 4). */
typedef struct thrash_watch {
        uint64_t limit;      /* memory.max in bytes; 0: no watch */
        uint64_t max_events; /* memory.events "max" at the last check */
        int strikes;         /* consecutive checks with no room left */
        int64_t next_ms;     /* when to check next */
        int killed;          /* the watch killed the snippet: report an OOM */
} thrash_watch;

typedef struct agent {
        int port;
        int debug; /* tr.debug on the kernel command line: stage marks */
        int cg_ok;
        uint64_t applied;    /* TR_VL_* bits of the limits in force */
        thrash_watch thrash; /* thrashing at memory.max counts as an OOM */
        gw_conn conns[MAX_GW_CONNS];
        uint32_t next_id;
        int listen_fd;
        pid_t snippet;    /* the snippet's process (TR_VF_SIGNAL's target) */
        tr__vf_buf inq;   /* bytes for the snippet's stdin not yet written */
        int in_eof;       /* no more after inq */
        int started_sent; /* STARTED went out */
        int64_t idle_end; /* live stdin: power off when no STDIN came by then (0: none) */
} agent;

typedef struct child_pipes {
        int in, out, err; /* the agent's ends */
} child_pipes;

/* agent.c */
void tr__agent_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void tr__agent_mark(const agent *a, const char *stage);
/* Power the VM off (PID 1 must not exit: it waits to be killed if that
 * fails). */
void tr__agent_poweroff(void);
/* Report a setup failure to the host (when the port is open) and stop. */
void tr__agent_fail(agent *a, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
int64_t tr__agent_now_ms(void);
int tr__agent_write_file(const char *path, const char *s);
void tr__agent_mkdir_p(const char *path, mode_t mode);
void tr__agent_sleep_ms(long ms);

/* request.c */
void tr__agent_read_request(agent *a, tr__vf_reader *rd, request *req);
/* In the snippet's child, after PR_SET_NO_NEW_PRIVS; 0 or -errno. */
int tr__agent_install_seccomp(const request *req);

/* sandbox.c */
void tr__agent_setup_root(agent *a, const request *req);
void tr__agent_loopback_up(void);
void tr__agent_setup_cgroup(agent *a, const request *req);
int tr__agent_oom_killed(const agent *a);
/* Check when due; returns the poll timeout until the next check (-1: no
 * watch). */
int tr__agent_thrash_check(agent *a);

/* spawn.c */
pid_t tr__agent_spawn(agent *a, const request *req, child_pipes *cp);

/* relay.c */
/* Relay everything until the snippet and its output are done. */
void tr__agent_run(agent *a, const request *req, tr__vf_reader *rd);
