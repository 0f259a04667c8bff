/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The versioned config structs of the public API (tr_containerd_config,
 * tr_kata_config, tr_unsafe_host_config): each starts with `size_t size`,
 * the sizeof the caller was built with.  Copying one through here is the
 * only place that reads a caller's struct, so every entry point accepts the
 * same sizes: a struct from an older header (fields appended since get
 * their zero defaults), never one of size 0 (not versioned: a caller bug
 * the library would otherwise read garbage for) or one larger than this
 * library knows.
 */
#pragma once

#include <stddef.h>
#include <string.h>

#include "toolruntime.h"

/* Copy `src` (NULL: all defaults) into `dst` (dst_size bytes, zero-filled
 * past what the caller's size covers).  `min_size` is the size of the first
 * versioned layout of the type. */
static inline int tr__config_copy(void *dst, size_t dst_size, size_t min_size, const void *src, tr_backend_kind kind,
                                  const char *what, tr_error **ret_err) {
        memset(dst, 0, dst_size);
        if (!src) {
                memcpy(dst, &dst_size, sizeof(dst_size));
                return 0;
        }
        size_t size;
        memcpy(&size, src, sizeof(size));
        if (size < min_size || size > dst_size)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, kind, "config",
                                    "invalid %s: its size is %zu, expected %zu (set .size = sizeof the struct)", what,
                                    size, dst_size);
        memcpy(dst, src, size);
        memcpy(dst, &dst_size, sizeof(dst_size));
        return 0;
}

/* The first versioned layouts.  When appending a field, keep these as they
 * are (or write them as offsetof(type, first_appended_field)). */
#define TR__CONTAINERD_CONFIG_V1_SIZE  offsetof(tr_containerd_config, teardown_at_free)
#define TR__KATA_CONFIG_V1_SIZE        sizeof(tr_kata_config)
#define TR__UNSAFE_HOST_CONFIG_V1_SIZE sizeof(tr_unsafe_host_config)

/* The copy also resolves the daemon's address: socket, namespace and
 * snapshotter are never NULL in it, so that every entry point (backend, gc,
 * pull, check, store) agrees on the defaults without repeating them. */
static inline int tr__containerd_config_copy(const tr_containerd_config *src, tr_containerd_config *dst,
                                             tr_error **ret_err) {
        int r = tr__config_copy(dst, sizeof(*dst), TR__CONTAINERD_CONFIG_V1_SIZE, src, TR_BACKEND_CONTAINERD,
                                "tr_containerd_config", ret_err);
        if (r < 0)
                return r;
        if (!dst->socket_path)
                dst->socket_path = TR_CONTAINERD_DEFAULT_SOCKET;
        if (!dst->namespace_name)
                dst->namespace_name = TR_CONTAINERD_DEFAULT_NAMESPACE;
        if (!dst->snapshotter)
                dst->snapshotter = TR_CONTAINERD_DEFAULT_SNAPSHOTTER;
        return 0;
}

static inline int tr__kata_config_copy(const tr_kata_config *src, tr_kata_config *dst, tr_error **ret_err) {
        return tr__config_copy(dst, sizeof(*dst), TR__KATA_CONFIG_V1_SIZE, src, TR_BACKEND_KATA, "tr_kata_config",
                               ret_err);
}

static inline int tr__unsafe_host_config_copy(const tr_unsafe_host_config *src, tr_unsafe_host_config *dst,
                                              tr_error **ret_err) {
        return tr__config_copy(dst, sizeof(*dst), TR__UNSAFE_HOST_CONFIG_V1_SIZE, src, TR_BACKEND_UNSAFE_HOST,
                               "tr_unsafe_host_config", ret_err);
}
