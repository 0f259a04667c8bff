/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: the Docker-format seccomp profile a hardened caller
 * gives with --seccomp (seccomp_docker.c), converted and then compiled to
 * the guest's BPF program (seccomp_bpf.c).  Invariants: a profile that is
 * accepted names the native architecture alone (no 32-bit door), and its
 * program, when libseccomp builds one, fits the kernel's limit.
 */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend/containerd/seccomp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        json_t *doc = json_loadb((const char *) data, size, JSON_REJECT_DUPLICATES, NULL);
        if (!doc)
                return 0;
        json_t *out = NULL;
        tr_error *err = NULL;
        if (tr__ctrd_seccomp_from_docker(doc, "6.1.0", &out, &err) == 0) {
                const json_t *arches = json_object_get(out, "architectures");
                if (json_array_size(arches) != 1 ||
                    strcmp(json_string_value(json_array_get(arches, 0)), TR__SECCOMP_NATIVE_ARCH) != 0)
                        abort();
                uint8_t *prog = NULL;
                size_t len = 0;
                tr_error *cerr = NULL;
                if (tr__seccomp_bpf_compile(out, &prog, &len, &cerr) == 0 &&
                    (len == 0 || len % TR_SECCOMP_BPF_INSN != 0 ||
                     len / TR_SECCOMP_BPF_INSN > TR_SECCOMP_BPF_MAX_INSNS))
                        abort();
                free(prog);
                tr_error_free(cerr);
                json_decref(out);
        }
        tr_error_free(err);
        json_decref(doc);
        return 0;
}
