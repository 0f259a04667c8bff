/* SPDX-License-Identifier: Apache-2.0 */
/* Doctor checks for the sandboxing backends. */
#include "cli/cli.h"

bool cli_doctor_containerd(const cli_backend_opts *o, cli_doctor_line_fn line) {
        line("containerd", false, "backend not built yet");
        return false;
}

bool cli_doctor_kata(const cli_backend_opts *o, cli_doctor_line_fn line) {
        line("kata", false, "backend not built yet");
        return false;
}
