/* SPDX-License-Identifier: Apache-2.0 */
/* The gateway a CLI execution exposes to its snippet. */
#include "cli/cli.h"
#include "util/handles.h"
#include "util/macros.h"

int cli_gateway_new(const char *tools, const char **mcp, size_t n_mcp, tr_gateway **ret_gw, tr_error **ret_err) {
        if (tools || n_mcp > 0)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, "gateway",
                                    "--tools and --mcp need the tool gateway, which this build does not have yet");
        return tr_gateway_new_empty(ret_gw, ret_err);
}
