/* SPDX-License-Identifier: Apache-2.0 */
/* Public API of the gateway part of toolruntime.  Included by toolruntime.h;
 * do not include directly. */
#pragma once
#ifndef TOOLRUNTIME_H
#error "include <toolruntime.h> instead"
#endif

#ifdef __cplusplus
extern "C" {
#endif

#ifdef __cplusplus
}
#endif
