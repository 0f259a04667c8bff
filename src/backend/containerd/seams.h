/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Test seams of the containerd backend: replacements for the parts that talk
 * to containerd, so unit tests can drive the backend's policy without a
 * daemon.  Internal (tests link the internal archive); the public
 * tr_backend_containerd_new is this constructor without seams.
 */
#pragma once

#include "toolruntime.h"

enum {
        /* No runner at all: every execution fails TR_E_CLIENT_NOT_CONFIGURED
         * (the reference's nil Client). */
        TR__CONTAINERD_NO_RUNNER = 1u << 0,
        /* Skip image resolution / the health check before each execution. */
        TR__CONTAINERD_NO_IMAGE_RESOLVER = 1u << 1,
        TR__CONTAINERD_NO_HEALTH_CHECK = 1u << 2,
};

/* runner / image_resolver / health: NULL selects the real implementation
 * talking to containerd; a table given here is used instead and its `self`
 * is owned by the backend from the constructor on (released by its
 * ops->free, also when the constructor fails).  The ops tables must outlive
 * the backend. */
typedef struct tr__containerd_seams {
        unsigned flags; /* TR__CONTAINERD_NO_* */
        const tr_containerd_runner_ops *runner;
        void *runner_self;
        const tr_containerd_image_resolver_ops *image_resolver;
        void *image_resolver_self;
        const tr_containerd_health_ops *health;
        void *health_self;
} tr__containerd_seams;

/* tr_backend_containerd_new with `seams` (NULL: none). */
int tr__backend_containerd_new_seams(const tr_containerd_config *cfg, const tr__containerd_seams *seams,
                                     tr_backend **ret_backend, tr_error **ret_err);
