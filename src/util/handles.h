/* SPDX-License-Identifier: Apache-2.0 */
/* Cleanup functions for the public handles, for _cleanup_(tr_x_freep). */
#pragma once

#include "toolruntime.h"
#include "util/macros.h"

TR_DEFINE_FREEP(tr_error, tr_error_free)
TR_DEFINE_FREEP(tr_request, tr_request_free)
TR_DEFINE_FREEP(tr_result, tr_result_free)
TR_DEFINE_FREEP(tr_runtime, tr_runtime_free)
TR_DEFINE_FREEP(tr_backend, tr_backend_free)
TR_DEFINE_FREEP(tr_gateway, tr_gateway_free)
TR_DEFINE_FREEP(tr_cancel, tr_cancel_free)
TR_DEFINE_FREEP(tr_sandbox, tr_sandbox_free)
