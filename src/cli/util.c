/* SPDX-License-Identifier: Apache-2.0 */
/* Argument parsing and runtime setup shared by the subcommands. */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "tr-config.h"
#include "util/handles.h"
#include "util/macros.h"

int cli_usage_error(const char *cmd, const char *fmt, ...) {
        va_list ap;
        fputs("toolruntime: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fprintf(stderr, "\nTry 'toolruntime %s%s--help' for more information.\n", cmd ? cmd : "", cmd ? " " : "");
        return CLI_EXIT_USAGE;
}

void cli_print_error(const tr_error *err) {
        const char *backend = tr_backend_kind_name(tr_error_backend(err));
        /* The message may quote the sandbox (a value that is not JSON). */
        fprintf(stderr, "toolruntime: error: %s: ", tr_error_code_name(err));
        cli_term_write(stderr, tr_error_message(err), strlen(tr_error_message(err)));
        if (*backend || *tr_error_op(err))
                fprintf(stderr, " (%s%s%s)", backend, *backend && *tr_error_op(err) ? " " : "", tr_error_op(err));
        if (tr_error_retryable(err))
                fputs(" [retryable]", stderr);
        fputc('\n', stderr);
}

void cli_log(void *ud, tr_log_level level, const char *msg, const char *const *kv) {
        static const char *const names[] = { "info", "warn", "error" };
        /* One locked write per line so lines from parallel executions don't
         * interleave. */
        char line[2048];
        int n = snprintf(line, sizeof(line), "toolruntime: [%s] %s", names[level % 3], msg);
        for (size_t i = 0; kv && kv[i] && kv[i + 1] && n > 0 && (size_t) n < sizeof(line); i += 2)
                n += snprintf(line + n, sizeof(line) - (size_t) n, " %s=%s", kv[i], kv[i + 1]);
        /* A tool's stderr arrives here: escaped for a terminal. */
        if (n < 0)
                return;
        size_t len = (size_t) n < sizeof(line) ? (size_t) n : sizeof(line) - 1;
        line[len++] = '\n';
        cli_term_write(stderr, line, len);
}

void cli_log_warnings(void *ud, tr_log_level level, const char *msg, const char *const *kv) {
        if (level != TR_LOG_INFO)
                cli_log(ud, level, msg, kv);
}

const char *cli_images_dir(void) {
        const char *env = getenv("TOOLRUNTIME_IMAGES_DIR");
        if (env && *env)
                return env;
        if (access(TR_DATA_DIR "/images/rootfs.sh", R_OK) == 0)
                return TR_DATA_DIR "/images";
        return TR_SOURCE_DIR "/images";
}
