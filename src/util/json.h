/* SPDX-License-Identifier: Apache-2.0 */
/* JSON helpers shared by the front ends (exec --json, the MCP server). */
#pragma once

#include <jansson.h>
#include <stddef.h>

/* A JSON string from bytes that need not be UTF-8 (snippet output):
 * invalid sequences become U+FFFD, so the document stays parseable.  NULL
 * only when out of memory. */
json_t *tr__json_bytes(const char *s, size_t n);
