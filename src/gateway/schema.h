/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Untrusted tool metadata and arguments.  Whatever a manifest or an MCP
 * server says about a tool passes through here before anyone sees it: sizes
 * and depth are bounded, strings are valid UTF-8 (jansson guarantees it) with
 * control characters removed, and the input schema's structure is checked
 * for the keywords the validator uses.  Arguments are then validated against
 * that schema (a JSON Schema subset: type, enum, const, required, properties,
 * additionalProperties, items, min/max, min/maxLength, min/maxItems) before
 * a tool runs.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "toolruntime.h"

#define TR_TOOL_MAX_NAME         128
#define TR_TOOL_MAX_DESCRIPTION  (8 * 1024)
#define TR_TOOL_MAX_TITLE        256
#define TR_TOOL_MAX_SCHEMA       (64 * 1024) /* serialised bytes */
#define TR_TOOL_MAX_SCHEMA_DEPTH 16
#define TR_TOOL_MAX_SCHEMA_NODES 4096
#define TR_TOOL_MAX_TAGS         16
#define TR_TOOL_MAX_TAG          64
#define TR_TOOL_MAX_EXAMPLES     16
#define TR_TOOL_MAX_EXAMPLE      (16 * 1024) /* serialised bytes */

/* Is `s` a valid tool name / namespace ([A-Za-z0-9_.-/], 1..max bytes)? */
bool tr__tool_name_valid(const char *s, size_t max);

/* A copy of `s` cut to at most `max` bytes at a UTF-8 boundary, with control
 * characters other than \n and \t removed.  NULL on -ENOMEM. */
char *tr__text_sanitize(const char *s, size_t max);

/* The checks below fail with -EINVAL and a TR_E_INVALID_REQUEST tr_error
 * (op `op`) saying what is wrong, or -ENOMEM and TR_E_INTERNAL. */

/* Check an input schema's shape and size.  On success returns 0 and a new
 * reference in *ret_schema (NULL input: {"type": "object"}). */
int tr__schema_check(json_t *schema, json_t **ret_schema, const char *op, tr_error **ret_err);

/* Validate `value` against `schema` (already checked).  0, or -EINVAL and a
 * TR_E_INVALID_ARGUMENTS error (op "validate") naming the offending path. */
int tr__schema_validate(json_t *schema, json_t *value, tr_error **ret_err);

/* Sanitise a tags array (strings, bounded count and length).  New ref; an
 * empty array for NULL. */
int tr__tags_check(json_t *tags, json_t **ret_tags, const char *op, tr_error **ret_err);

/* Sanitise one example {"description", "args" (object), "result"}.  New
 * ref. */
int tr__example_check(json_t *ex, json_t **ret_example, const char *op, tr_error **ret_err);
