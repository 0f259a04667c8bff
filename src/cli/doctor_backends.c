/* SPDX-License-Identifier: Apache-2.0 */
/* Doctor checks for the sandboxing backends: the library's own health
 * checks, with the fix spelled out for each failure. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "cli/cli.h"
#include "tr-config.h"
#include "util/handles.h"
#include "util/macros.h"

/* The script that starts containerd without systemd: installed next to the
 * guest agent, or in the source tree of a build that is not installed. */
static const char *start_containerd_script(void) {
        static const char installed[] = TR_LIBEXEC_DIR "/start-containerd.sh";
        return access(installed, X_OK) == 0 ? installed : TR_SOURCE_DIR "/scripts/start-containerd.sh";
}

bool cli_doctor_containerd(const cli_backend_opts *o, cli_doctor_line_fn line) {
        tr_containerd_config cfg;
        cli_containerd_config(o, &cfg);
        _cleanup_free_ char *detail = NULL;
        _cleanup_(tr_error_freep) tr_error *err = NULL;
        if (tr_containerd_check(&cfg, &detail, &err) == 0) {
                line("containerd", true, "%s (standard and hardened profiles)", detail);
                return true;
        }
        const char *fix;
        char buf[512];
        switch (tr_error_code(err)) {
        case TR_E_CONTAINERD_NOT_AVAILABLE:
                snprintf(buf, sizeof(buf),
                         "install and start it: apt-get install containerd runc && %s (or systemctl start containerd)",
                         start_containerd_script());
                fix = buf;
                break;
        case TR_E_DAEMON_UNAVAILABLE: fix = "the daemon does not answer: restart containerd"; break;
        case TR_E_IMAGE_NOT_FOUND: fix = "build the sandbox image: toolruntime image build"; break;
        default: fix = "see the message above"; break;
        }
        line("containerd", false, "%s: %s; fix: %s", tr_error_code_name(err), tr_error_message(err), fix);
        return false;
}

bool cli_doctor_kata(const cli_backend_opts *o, cli_doctor_line_fn line) {
        tr_kata_config cfg;
        cli_kata_config(o, &cfg);
        _cleanup_free_ char *detail = NULL;
        _cleanup_(tr_error_freep) tr_error *err = NULL;
        if (tr_kata_check(&cfg, &detail, &err) == 0) {
                line("kata", true, "%s (-b kata)", detail);
                return true;
        }
        line("kata", false, "%s: %s; fix: apt-get install qemu-system-x86 and run toolruntime image build --vm",
             tr_error_code_name(err), tr_error_message(err));
        return false;
}
