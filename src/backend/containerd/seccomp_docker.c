/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Docker-format seccomp profiles (the hardened profile's `--seccomp FILE`):
 * reading the file, validating it and converting it into the OCI
 * linux.seccomp form of seccomp.c's built-in filters, with the same two
 * layers on top: the native architecture alone, and hardened's socket
 * rules (see seccomp.c's header comment for why).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "backend/containerd/seccomp.h"
#include "util/macros.h"

#define OP_SECCOMP "seccomp"

static const char *const valid_actions[] = {
        "SCMP_ACT_KILL",  "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP",
        "SCMP_ACT_ERRNO", "SCMP_ACT_TRACE",        "SCMP_ACT_ALLOW",       "SCMP_ACT_LOG",
};

static const char *const valid_ops[] = {
        "SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ",
};

static bool in_list(const char *s, const char *const *list, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (streq(s, list[i]))
                        return true;
        return false;
}

static int oom(tr_error **ret_err) {
        return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_CONTAINERD, OP_SECCOMP, "out of memory");
}

static bool valid_syscall_name(const char *s) {
        size_t n = strlen(s);
        if (n == 0 || n > 64)
                return false;
        for (; *s; s++)
                if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
                        return false;
        return true;
}

static bool valid_scmp_arch(const char *s) {
        if (strncmp(s, "SCMP_ARCH_", 10) != 0 || strlen(s) > 32 || !s[10])
                return false;
        for (s += 10; *s; s++)
                if (!((*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_'))
                        return false;
        return true;
}

/* "major.minor" of a kernel release ("6.1.0-13-amd64") or of Docker's
 * minKernel ("4.8"); false when unparsable. */
static bool parse_kernel(const char *s, long *ret_major, long *ret_minor) {
        char *end;
        errno = 0;
        long major = strtol(s, &end, 10);
        if (errno || end == s || *end != '.')
                return false;
        const char *m = end + 1;
        long minor = strtol(m, &end, 10);
        if (errno || end == m || major < 0 || minor < 0)
                return false;
        *ret_major = major;
        *ret_minor = minor;
        return true;
}

/* A malformed profile: `where[index]: what`, or just `what`. */
static int bad_at(tr_error **ret_err, const char *where, size_t index, const char *what) {
        return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_CONTAINERD, OP_SECCOMP, "%s[%zu]: %s", where,
                            index, what);
}

static int bad(tr_error **ret_err, const char *what) {
        return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_CONTAINERD, OP_SECCOMP, "%s", what);
}

/* A non-negative integer field within [0, max]; absent is fine when
 * `required` is false (then *ret is left alone). */
static int get_uint(const json_t *obj, const char *key, uint64_t max, bool required, uint64_t *ret) {
        json_t *v = json_object_get(obj, key);
        if (!v)
                return required ? -EINVAL : 0;
        if (!json_is_integer(v) || json_integer_value(v) < 0 || (uint64_t) json_integer_value(v) > max)
                return -EINVAL;
        *ret = (uint64_t) json_integer_value(v);
        return 0;
}

/* Should a Docker rule apply to this sandbox?  Its `includes`/`excludes`
 * refer to capabilities (the sandbox has none), Go architectures and a
 * minimum kernel. */
static int rule_applies(const json_t *rule, const char *kernel_release, size_t index, bool *ret, tr_error **ret_err) {
        const json_t *inc = json_object_get(rule, "includes");
        const json_t *exc = json_object_get(rule, "excludes");
        if ((inc && !json_is_object(inc)) || (exc && !json_is_object(exc)))
                return bad_at(ret_err, "syscalls", index, "includes/excludes must be an object");

        bool applies = true;
        if (inc) {
                const json_t *caps = json_object_get(inc, "caps");
                if (caps && (!json_is_array(caps)))
                        return bad_at(ret_err, "syscalls", index, "includes.caps must be an array");
                /* Granted only with a capability this sandbox never has. */
                if (caps && json_array_size(caps) > 0)
                        applies = false;

                const json_t *arches = json_object_get(inc, "arches");
                if (arches && !json_is_array(arches))
                        return bad_at(ret_err, "syscalls", index, "includes.arches must be an array");
                if (arches && json_array_size(arches) > 0) {
                        bool found = false;
                        size_t i;
                        const json_t *a;
                        json_array_foreach(arches, i, a) {
                                if (!json_is_string(a))
                                        return bad_at(ret_err, "syscalls", index, "includes.arches must hold strings");
                                if (streq(json_string_value(a), TR__SECCOMP_NATIVE_GO_ARCH))
                                        found = true;
                        }
                        if (!found)
                                applies = false;
                }

                const json_t *mk = json_object_get(inc, "minKernel");
                if (mk && !json_is_null(mk)) {
                        long want_major, want_minor, have_major, have_minor;
                        if (!json_is_string(mk) || !parse_kernel(json_string_value(mk), &want_major, &want_minor))
                                return bad_at(ret_err, "syscalls", index,
                                              "includes.minKernel must be a \"major.minor\" string");
                        struct utsname u;
                        if (!kernel_release) {
                                if (uname(&u) < 0)
                                        return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_CONTAINERD, OP_SECCOMP,
                                                            "uname: %s", strerror(errno));
                                kernel_release = u.release;
                        }
                        /* An unparsable running kernel is treated as new
                         * enough, as Docker does only for errors it cannot
                         * act on: the rule then follows the profile. */
                        if (parse_kernel(kernel_release, &have_major, &have_minor) &&
                            (have_major < want_major || (have_major == want_major && have_minor < want_minor)))
                                applies = false;
                }
        }
        if (exc) {
                const json_t *arches = json_object_get(exc, "arches");
                if (arches && !json_is_array(arches))
                        return bad_at(ret_err, "syscalls", index, "excludes.arches must be an array");
                size_t i;
                const json_t *a;
                json_array_foreach(arches, i, a) {
                        if (!json_is_string(a))
                                return bad_at(ret_err, "syscalls", index, "excludes.arches must hold strings");
                        if (streq(json_string_value(a), TR__SECCOMP_NATIVE_GO_ARCH))
                                applies = false;
                }
                /* excludes.caps removes a rule when a capability is held:
                 * never the case here, so it is only type-checked. */
                const json_t *caps = json_object_get(exc, "caps");
                if (caps && !json_is_array(caps))
                        return bad_at(ret_err, "syscalls", index, "excludes.caps must be an array");
        }
        *ret = applies;
        return 0;
}

/* The calls whose argument rules guard the socket families.  A custom
 * profile's rules for them are replaced by hardened's own (socket_rules):
 * its equality-only family list is the one that keeps the uevent socket,
 * AF_VSOCK and the 32-bit truncation trick out, and rewriting arbitrary
 * user conditions into that form is not worth the risk of getting it
 * wrong.  socketcall is i386 only, which no filter here admits. */
static bool socket_family_call(const char *name) {
        return streq(name, "socket") || streq(name, "socketpair") || streq(name, "socketcall");
}

static int convert_args(const json_t *args, size_t index, json_t **ret, tr_error **ret_err) {
        _cleanup_json_ json_t *out = json_array();
        if (!out)
                return oom(ret_err);
        if (!json_is_array(args))
                return bad_at(ret_err, "syscalls", index, "args must be an array");
        if (json_array_size(args) > TR_CTRD_SECCOMP_MAX_ARGS)
                return bad_at(ret_err, "syscalls", index, "args has more than 6 conditions");
        size_t i;
        const json_t *a;
        json_array_foreach(args, i, a) {
                uint64_t idx = 0, value = 0, value_two = 0;
                const json_t *op = json_object_get(a, "op");
                if (!json_is_object(a) || get_uint(a, "index", 5, true, &idx) < 0 ||
                    get_uint(a, "value", INT64_MAX, true, &value) < 0 ||
                    get_uint(a, "valueTwo", INT64_MAX, false, &value_two) < 0)
                        return bad_at(ret_err, "syscalls", index,
                                      "each args entry needs index 0..5, a non-negative value and valueTwo");
                if (!json_is_string(op) || !in_list(json_string_value(op), valid_ops, ARRAY_SIZE(valid_ops)))
                        return bad_at(ret_err, "syscalls", index, "args op must be one of SCMP_CMP_*");
                if (json_array_append_new(out, tr__ctrd_seccomp_arg_cond((unsigned) idx, value, value_two,
                                                                         json_string_value(op))) < 0)
                        return oom(ret_err);
        }
        *ret = TAKE_PTR(out);
        return 0;
}

static int convert_rule(const json_t *rule, size_t index, json_t **ret, tr_error **ret_err) {
        if (!json_is_object(rule))
                return bad_at(ret_err, "syscalls", index, "must be an object");

        _cleanup_json_ json_t *names = json_array();
        if (!names)
                return oom(ret_err);
        const json_t *jnames = json_object_get(rule, "names");
        const json_t *jname = json_object_get(rule, "name");
        if (jnames) {
                if (!json_is_array(jnames) || json_array_size(jnames) == 0 ||
                    json_array_size(jnames) > TR_CTRD_SECCOMP_MAX_NAMES)
                        return bad_at(ret_err, "syscalls", index, "names must be a non-empty array of at most 1024");
                size_t i;
                const json_t *n;
                json_array_foreach(jnames, i, n) {
                        if (!json_is_string(n) || !valid_syscall_name(json_string_value(n)))
                                return bad_at(ret_err, "syscalls", index, "names must be syscall names ([a-z0-9_]+)");
                        if (socket_family_call(json_string_value(n)))
                                continue;
                        if (json_array_append_new(names, json_string(json_string_value(n))) < 0)
                                return oom(ret_err);
                }
        } else if (jname) {
                /* The single "name" of Docker's profiles before 1.12. */
                if (!json_is_string(jname) || !valid_syscall_name(json_string_value(jname)))
                        return bad_at(ret_err, "syscalls", index, "name must be a syscall name");
                if (!socket_family_call(json_string_value(jname)) &&
                    json_array_append_new(names, json_string(json_string_value(jname))) < 0)
                        return oom(ret_err);
        } else
                return bad_at(ret_err, "syscalls", index, "needs names (or name)");

        const json_t *action = json_object_get(rule, "action");
        if (!json_is_string(action) || !in_list(json_string_value(action), valid_actions, ARRAY_SIZE(valid_actions)))
                return bad_at(ret_err, "syscalls", index, "action must be one of SCMP_ACT_* (NOTIFY is not supported)");

        _cleanup_json_ json_t *out = json_pack("{s:O, s:s}", "names", names, "action", json_string_value(action));
        if (!out)
                return oom(ret_err);

        uint64_t errno_ret = 0;
        if (json_object_get(rule, "errnoRet")) {
                if (get_uint(rule, "errnoRet", 4095, true, &errno_ret) < 0)
                        return bad_at(ret_err, "syscalls", index, "errnoRet must be 0..4095");
                if (json_object_set_new(out, "errnoRet", json_integer((json_int_t) errno_ret)) < 0)
                        return oom(ret_err);
        }

        const json_t *args = json_object_get(rule, "args");
        if (args && !json_is_null(args)) {
                json_t *converted = NULL;
                int r = convert_args(args, index, &converted, ret_err);
                if (r < 0)
                        return r;
                if (json_array_size(converted) == 0)
                        json_decref(converted);
                else if (json_object_set_new(out, "args", converted) < 0)
                        return oom(ret_err);
        }
        /* A rule that named only the socket calls is validated, then
         * dropped (their rules are ours, see socket_family_call). */
        *ret = json_array_size(names) > 0 ? TAKE_PTR(out) : NULL;
        return 0;
}

/* Docker's archMap ({architecture, subArchitectures}) picks the entry of the
 * native architecture; the older flat "architectures" is taken as is. */
static int convert_arches(const json_t *doc, json_t **ret, tr_error **ret_err) {
        _cleanup_json_ json_t *out = json_array();
        if (!out)
                return oom(ret_err);
        const json_t *map = json_object_get(doc, "archMap");
        const json_t *flat = json_object_get(doc, "architectures");
        if (map && !json_is_null(map)) {
                if (!json_is_array(map))
                        return bad(ret_err, "archMap must be an array");
                size_t i;
                const json_t *e;
                json_array_foreach(map, i, e) {
                        const json_t *arch = json_object_get(e, "architecture");
                        const json_t *subs = json_object_get(e, "subArchitectures");
                        if (!json_is_string(arch) || !valid_scmp_arch(json_string_value(arch)) ||
                            (subs && !json_is_null(subs) && !json_is_array(subs)))
                                return bad_at(ret_err, "archMap", i,
                                              "needs an SCMP_ARCH_* architecture and a subArchitectures array");
                        if (!streq(json_string_value(arch), TR__SECCOMP_NATIVE_ARCH))
                                continue;
                        if (json_array_append_new(out, json_string(json_string_value(arch))) < 0)
                                return oom(ret_err);
                        size_t j;
                        const json_t *s;
                        json_array_foreach(subs, j, s) {
                                if (!json_is_string(s) || !valid_scmp_arch(json_string_value(s)))
                                        return bad_at(ret_err, "archMap", i,
                                                      "subArchitectures must be SCMP_ARCH_* names");
                                if (json_array_append_new(out, json_string(json_string_value(s))) < 0)
                                        return oom(ret_err);
                        }
                }
        } else if (flat && !json_is_null(flat)) {
                if (!json_is_array(flat))
                        return bad(ret_err, "architectures must be an array");
                size_t i;
                const json_t *s;
                json_array_foreach(flat, i, s) {
                        if (!json_is_string(s) || !valid_scmp_arch(json_string_value(s)))
                                return bad_at(ret_err, "architectures", i, "must be an SCMP_ARCH_* name");
                        if (json_array_append_new(out, json_string(json_string_value(s))) < 0)
                                return oom(ret_err);
                }
        }
        *ret = TAKE_PTR(out);
        return 0;
}

/* Does some rule of an (already validated) Docker profile let `name`
 * through in any way?  Then it gets hardened's rules for it; otherwise it
 * stays denied, as the profile says. */
static bool lets_through(const json_t *syscalls, const char *name) {
        size_t i;
        const json_t *rule;
        json_array_foreach(syscalls, i, rule) {
                const char *action = json_string_value(json_object_get(rule, "action"));
                if (!action || strncmp(action, "SCMP_ACT_KILL", 13) == 0 || streq(action, "SCMP_ACT_ERRNO") ||
                    streq(action, "SCMP_ACT_TRAP"))
                        continue;
                const json_t *one = json_object_get(rule, "name");
                if (json_is_string(one) && streq(json_string_value(one), name))
                        return true;
                size_t j;
                const json_t *n;
                json_array_foreach(json_object_get(rule, "names"), j, n) {
                        if (json_is_string(n) && streq(json_string_value(n), name))
                                return true;
                }
        }
        return false;
}

int tr__ctrd_seccomp_from_docker(const json_t *doc, const char *kernel_release, json_t **ret, tr_error **ret_err) {
        if (!json_is_object(doc))
                return bad(ret_err, "the profile must be a JSON object");

        const json_t *def = json_object_get(doc, "defaultAction");
        if (!json_is_string(def) || !in_list(json_string_value(def), valid_actions, ARRAY_SIZE(valid_actions)))
                return bad(ret_err, "defaultAction must be one of SCMP_ACT_*");
        /* The hardened profile promises an allowlist: a profile that lets
         * every unlisted syscall through is a denylist, and would silently
         * make "hardened" weaker than it says. */
        if (streq(json_string_value(def), "SCMP_ACT_ALLOW") || streq(json_string_value(def), "SCMP_ACT_LOG"))
                return tr_error_set(ret_err, TR_E_SECURITY_VIOLATION, TR_BACKEND_CONTAINERD, OP_SECCOMP,
                                    "defaultAction %s allows every unlisted syscall; the hardened profile needs "
                                    "a default-deny (allowlist) profile",
                                    json_string_value(def));

        _cleanup_json_ json_t *out = json_pack("{s:s}", "defaultAction", json_string_value(def));
        if (!out)
                return oom(ret_err);

        uint64_t def_errno = 0;
        if (json_object_get(doc, "defaultErrnoRet")) {
                if (get_uint(doc, "defaultErrnoRet", 4095, true, &def_errno) < 0)
                        return bad(ret_err, "defaultErrnoRet must be 0..4095");
                if (json_object_set_new(out, "defaultErrnoRet", json_integer((json_int_t) def_errno)) < 0)
                        return oom(ret_err);
        }

        /* The profile's architectures are validated, then replaced by the
         * native one alone: a custom profile must not reopen the i386 or x32
         * ABI, whose socketcall(2) and truncated arguments go around every
         * argument rule. */
        json_t *arches = NULL;
        int r = convert_arches(doc, &arches, ret_err);
        if (r < 0)
                return r;
        json_decref(arches);
        if (json_object_set_new(out, "architectures", json_pack("[s]", TR__SECCOMP_NATIVE_ARCH)) < 0)
                return oom(ret_err);

        _cleanup_json_ json_t *rules = json_array();
        if (!rules)
                return oom(ret_err);
        const json_t *syscalls = json_object_get(doc, "syscalls");
        if (syscalls && !json_is_null(syscalls)) {
                if (!json_is_array(syscalls) || json_array_size(syscalls) > TR_CTRD_SECCOMP_MAX_RULES)
                        return bad(ret_err, "syscalls must be an array of at most 4096 rules");
                size_t i;
                const json_t *rule;
                json_array_foreach(syscalls, i, rule) {
                        bool applies = true;
                        if (json_is_object(rule)) {
                                r = rule_applies(rule, kernel_release, i, &applies, ret_err);
                                if (r < 0)
                                        return r;
                        }
                        /* A rule that does not apply is still validated:
                         * a typo should fail on every machine alike. */
                        json_t *conv = NULL;
                        r = convert_rule(rule, i, &conv, ret_err);
                        if (r < 0)
                                return r;
                        if (!applies || !conv)
                                json_decref(conv);
                        else if (json_array_append_new(rules, conv) < 0)
                                return oom(ret_err);
                }
        }
        if (lets_through(syscalls, "socket") && tr__ctrd_seccomp_socket_rules(rules, true, false) < 0)
                return oom(ret_err);
        if (lets_through(syscalls, "socketpair") && tr__ctrd_seccomp_socket_rules(rules, true, true) < 0)
                return oom(ret_err);
        if (json_object_set(out, "syscalls", rules) < 0)
                return oom(ret_err);

        *ret = TAKE_PTR(out);
        return 0;
}

int tr__ctrd_seccomp_load(const char *path, json_t **ret, tr_error **ret_err) {
        if (!path || path[0] != '/')
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_CONTAINERD, OP_SECCOMP,
                                    "the seccomp profile path must be absolute: %s", path ? path : "(null)");

        /* O_NONBLOCK: a FIFO planted at the path must not hang the caller;
         * the S_ISREG check below then refuses it. */
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0) {
                int e = errno;
                int r = tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_CONTAINERD, OP_SECCOMP,
                                     "cannot open the seccomp profile %s: %s", path, strerror(e));
                if (ret_err && *ret_err)
                        tr_error_set_errno(*ret_err, e);
                return r;
        }
        struct stat st;
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_CONTAINERD, OP_SECCOMP,
                                    "the seccomp profile %s is not a regular file", path);
        if (st.st_size > TR_CTRD_SECCOMP_MAX_FILE)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_CONTAINERD, OP_SECCOMP,
                                    "the seccomp profile %s is larger than %d bytes", path, TR_CTRD_SECCOMP_MAX_FILE);

        /* Read to EOF with the cap enforced on what is read, not on what
         * fstat said: the file may grow in between. */
        size_t cap = TR_CTRD_SECCOMP_MAX_FILE + 1, len = 0;
        _cleanup_free_ char *buf = malloc(cap);
        if (!buf)
                return oom(ret_err);
        for (;;) {
                ssize_t n = read(fd, buf + len, cap - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_CONTAINERD, OP_SECCOMP,
                                            "cannot read the seccomp profile %s: %s", path, strerror(errno));
                if (n == 0)
                        break;
                len += (size_t) n;
                if (len == cap)
                        return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_CONTAINERD, OP_SECCOMP,
                                            "the seccomp profile %s is larger than %d bytes", path,
                                            TR_CTRD_SECCOMP_MAX_FILE);
        }

        json_error_t jerr;
        _cleanup_json_ json_t *doc = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!doc)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_CONTAINERD, OP_SECCOMP,
                                    "the seccomp profile %s is not valid JSON: line %d column %d: %s", path, jerr.line,
                                    jerr.column, jerr.text);

        int r = tr__ctrd_seccomp_from_docker(doc, NULL, ret, ret_err);
        if (r < 0 && ret_err && *ret_err)
                tr_error_prefix(*ret_err, "seccomp profile %s", path);
        return r;
}
