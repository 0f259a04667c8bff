/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The seccomp policy's second output: the linux.seccomp JSON given to runc
 * (written by seccomp.c) compiled here, with libseccomp, into the classic
 * BPF program the kata guest agent installs on the snippet.  One policy source,
 * so a container and a VM of the same profile deny the same calls.
 *
 * The compilation follows what runc 1.1 does with the same JSON
 * (libcontainer/seccomp/seccomp_linux.go), so both sandboxes agree:
 *   - a rule whose action equals the default one is skipped;
 *   - a name libseccomp does not know is skipped (a newer syscall);
 *   - a rule with two conditions on one argument becomes one rule per
 *     condition (an OR), otherwise its conditions are ANDed;
 *   - a syscall of an architecture the filter does not name meets
 *     libseccomp's bad-architecture action, SECCOMP_RET_KILL_THREAD, which
 *     is set here explicitly since runc leaves libseccomp's default.
 * What runc adds and this does not: its "ENOSYS stub" answers ENOSYS,
 * rather than the default EPERM, for syscall numbers above the highest one
 * the profile names.  Neither answer runs the call.
 *
 * The agent (guest/agent/) links no libseccomp: it receives the program
 * over the VM channel and hands it to seccomp(2) as is.
 */
#include "backend/containerd/seccomp.h"

#include <errno.h>
#include <seccomp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/macros.h"

#define OP_BPF "seccomp.bpf"

static void ctx_releasep(scmp_filter_ctx *c) {
        if (*c)
                seccomp_release(*c);
}

static int fail(tr_error **ret_err, tr_code code, const char *what, int err) {
        return tr_error_set(ret_err, code, TR_BACKEND_CONTAINERD, OP_BPF, "%s%s%s", what, err ? ": " : "",
                            err ? strerror(err) : "");
}

/* An OCI action (as seccomp.c validates them) in libseccomp's form. */
static int action_of(const char *name, const json_t *errno_ret, uint32_t *ret) {
        uint32_t e = json_is_integer(errno_ret) ? (uint32_t) json_integer_value(errno_ret) : EPERM;
        if (!name)
                return -EINVAL;
        if (streq(name, "SCMP_ACT_ALLOW"))
                *ret = SCMP_ACT_ALLOW;
        else if (streq(name, "SCMP_ACT_ERRNO"))
                *ret = SCMP_ACT_ERRNO(e);
        else if (streq(name, "SCMP_ACT_KILL") || streq(name, "SCMP_ACT_KILL_THREAD"))
                *ret = SCMP_ACT_KILL;
        else if (streq(name, "SCMP_ACT_KILL_PROCESS"))
                *ret = SCMP_ACT_KILL_PROCESS;
        else if (streq(name, "SCMP_ACT_TRAP"))
                *ret = SCMP_ACT_TRAP;
        else if (streq(name, "SCMP_ACT_LOG"))
                *ret = SCMP_ACT_LOG;
        else if (streq(name, "SCMP_ACT_TRACE"))
                /* Nothing traces the snippet, so the kernel answers ENOSYS. */
                *ret = SCMP_ACT_TRACE(json_is_integer(errno_ret) ? e : 0);
        else
                return -EINVAL;
        return 0;
}

static int op_of(const char *name, enum scmp_compare *ret) {
        static const struct {
                const char *name;
                enum scmp_compare op;
        } ops[] = { { "SCMP_CMP_NE", SCMP_CMP_NE },
                    { "SCMP_CMP_LT", SCMP_CMP_LT },
                    { "SCMP_CMP_LE", SCMP_CMP_LE },
                    { "SCMP_CMP_EQ", SCMP_CMP_EQ },
                    { "SCMP_CMP_GE", SCMP_CMP_GE },
                    { "SCMP_CMP_GT", SCMP_CMP_GT },
                    { "SCMP_CMP_MASKED_EQ", SCMP_CMP_MASKED_EQ } };
        for (size_t i = 0; name && i < ARRAY_SIZE(ops); i++)
                if (streq(ops[i].name, name)) {
                        *ret = ops[i].op;
                        return 0;
                }
        return -EINVAL;
}

/* "SCMP_ARCH_X86_64" -> libseccomp's token (0 when unknown). */
static uint32_t arch_of(const char *name) {
        char lower[32];
        size_t k = 0;
        if (!name || strncmp(name, "SCMP_ARCH_", 10) != 0)
                return 0;
        for (const char *n = name + 10; *n && k < sizeof lower - 1; n++, k++)
                lower[k] = (char) (*n >= 'A' && *n <= 'Z' ? *n - 'A' + 'a' : *n);
        lower[k] = 0;
        return seccomp_arch_resolve_name(lower);
}

static int add_rule(scmp_filter_ctx ctx, const json_t *rule, uint32_t def_action, tr_error **ret_err) {
        uint32_t act;
        if (action_of(json_string_value(json_object_get(rule, "action")), json_object_get(rule, "errnoRet"), &act) < 0)
                return fail(ret_err, TR_E_INVALID_REQUEST, "a rule has an unknown action", 0);
        if (act == def_action)
                return 0;

        struct scmp_arg_cmp cmps[TR_CTRD_SECCOMP_MAX_ARGS];
        unsigned ncmp = 0, per_index[TR_CTRD_SECCOMP_MAX_ARGS] = { 0 };
        bool repeated = false;
        size_t i;
        const json_t *arg;
        const json_t *args = json_object_get(rule, "args");
        if (json_array_size(args) > TR_CTRD_SECCOMP_MAX_ARGS)
                return fail(ret_err, TR_E_INVALID_REQUEST, "a rule has more than 6 conditions", 0);
        json_array_foreach(args, i, arg) {
                json_int_t index = json_integer_value(json_object_get(arg, "index"));
                enum scmp_compare op;
                if (index < 0 || index >= TR_CTRD_SECCOMP_MAX_ARGS ||
                    op_of(json_string_value(json_object_get(arg, "op")), &op) < 0)
                        return fail(ret_err, TR_E_INVALID_REQUEST, "a rule has a malformed condition", 0);
                if (++per_index[index] > 1)
                        repeated = true;
                cmps[ncmp++] = (struct scmp_arg_cmp){
                        .arg = (unsigned) index,
                        .op = op,
                        .datum_a = (scmp_datum_t) json_integer_value(json_object_get(arg, "value")),
                        .datum_b = (scmp_datum_t) json_integer_value(json_object_get(arg, "valueTwo")),
                };
        }

        const json_t *name;
        json_array_foreach(json_object_get(rule, "names"), i, name) {
                int nr = seccomp_syscall_resolve_name(json_string_value(name));
                if (nr == __NR_SCMP_ERROR)
                        continue; /* unknown to this libseccomp, as runc skips it */
                int r = 0;
                if (!repeated)
                        r = seccomp_rule_add_array(ctx, act, nr, ncmp, cmps);
                else
                        for (unsigned c = 0; c < ncmp && r == 0; c++)
                                r = seccomp_rule_add_array(ctx, act, nr, 1, &cmps[c]);
                if (r < 0)
                        return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_CONTAINERD, OP_BPF,
                                            "libseccomp refused the rule for %s: %s", json_string_value(name),
                                            strerror(-r));
        }
        return 0;
}

int tr__seccomp_bpf_compile(const json_t *oci, uint8_t **ret_prog, size_t *ret_len, tr_error **ret_err) {
        uint32_t def_action;
        if (!json_is_object(oci) || action_of(json_string_value(json_object_get(oci, "defaultAction")),
                                              json_object_get(oci, "defaultErrnoRet"), &def_action) < 0)
                return fail(ret_err, TR_E_INVALID_REQUEST, "the seccomp policy has no valid defaultAction", 0);

        _cleanup_(ctx_releasep) scmp_filter_ctx ctx = seccomp_init(def_action);
        if (!ctx)
                return fail(ret_err, TR_E_INTERNAL, "seccomp_init failed", 0);
        /* The agent sets no_new_privs itself, before it installs the
         * program; a foreign ABI kills the caller as under runc. */
        if (seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0) < 0 ||
            seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_THREAD) < 0)
                return fail(ret_err, TR_E_INTERNAL, "seccomp_attr_set failed", 0);

        size_t i;
        const json_t *a;
        json_array_foreach(json_object_get(oci, "architectures"), i, a) {
                uint32_t arch = arch_of(json_string_value(a));
                if (!arch)
                        return fail(ret_err, TR_E_INVALID_REQUEST, "the seccomp policy names an unknown architecture",
                                    0);
                int r = seccomp_arch_add(ctx, arch);
                if (r < 0 && r != -EEXIST)
                        return fail(ret_err, TR_E_INVALID_REQUEST, "seccomp_arch_add", -r);
        }
        const json_t *rule;
        json_array_foreach(json_object_get(oci, "syscalls"), i, rule) {
                int r = add_rule(ctx, rule, def_action, ret_err);
                if (r < 0)
                        return r;
        }

        /* libseccomp 2.5 exports to an fd only. */
        _cleanup_close_ int fd = memfd_create("tr-seccomp-bpf", MFD_CLOEXEC);
        if (fd < 0)
                return fail(ret_err, TR_E_INTERNAL, "memfd_create", errno);
        int r = seccomp_export_bpf(ctx, fd);
        if (r < 0)
                return fail(ret_err, TR_E_INVALID_REQUEST, "libseccomp cannot generate the program", -r);
        struct stat st;
        if (fstat(fd, &st) < 0)
                return fail(ret_err, TR_E_INTERNAL, "fstat", errno);
        size_t len = (size_t) st.st_size;
        if (len == 0 || len % TR_SECCOMP_BPF_INSN != 0 || len / TR_SECCOMP_BPF_INSN > TR_SECCOMP_BPF_MAX_INSNS)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_CONTAINERD, OP_BPF,
                                    "the seccomp program has %zu bytes; the kernel takes at most %d instructions", len,
                                    TR_SECCOMP_BPF_MAX_INSNS);
        _cleanup_free_ uint8_t *prog = malloc(len);
        if (!prog)
                return fail(ret_err, TR_E_INTERNAL, "out of memory", 0);
        for (size_t off = 0; off < len;) {
                ssize_t n = pread(fd, prog + off, len - off, (off_t) off);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return fail(ret_err, TR_E_INTERNAL, "reading the seccomp program", n < 0 ? errno : EIO);
                off += (size_t) n;
        }
        *ret_prog = TAKE_PTR(prog);
        *ret_len = len;
        return 0;
}
