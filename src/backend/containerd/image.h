/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The image resolver: from an image reference to the snapshot the sandbox's
 * writable layer is prepared on (the rootfs chain id), by reading the
 * image's index / manifest / config from containerd's content store.
 * The JSON parsers are pure and exposed for the unit tests and the fuzzer.
 */
#pragma once

#include <stddef.h>

#include "backend/containerd/client.h"
#include "toolruntime.h"

/* Caps on what an image's metadata may weigh: these are a few KiB in real
 * images; the cap keeps a hostile store from making us allocate much. */
#define TR_CTRD_MAX_MANIFEST (4 * 1024 * 1024)
#define TR_CTRD_MAX_LAYERS   256

typedef struct tr__ctrd_image {
        char *name;     /* the name containerd knows the image by */
        char *digest;   /* the manifest's digest */
        char *chain_id; /* "sha256:..." of the rootfs */
} tr__ctrd_image;
void tr__ctrd_image_done(tr__ctrd_image *img);

/* The names `ref` may be stored under, most literal first: itself, with
 * :latest when it has no tag or digest, and docker.io/library/... for a
 * short name.  Fills ret[] (free() each), returns how many, or -ENOMEM. */
#define TR_CTRD_IMAGE_CANDIDATES 4
int tr__ctrd_image_candidates(const char *ref, char *ret[TR_CTRD_IMAGE_CANDIDATES]);

/* The image record `ref` names (under the first of those names that
 * exists): *ret_name (free()) and its target.  TR_E_IMAGE_NOT_FOUND when
 * none exists. */
int tr__ctrd_image_find(const tr__ctrd_ctx *cx, const char *ref, char **ret_name, tr__ctrd_desc *ret_target,
                        tr_error **ret_err);

/* Resolve `ref` (under the names tr__ctrd_image_candidates gives).  A
 * missing image is TR_E_IMAGE_NOT_FOUND naming `toolruntime image build`. */
int tr__ctrd_image_resolve(const tr__ctrd_ctx *cx, const char *ref, tr__ctrd_image *ret, tr_error **ret_err);

/* Is `mt` an image index (OCI index or Docker manifest list)? */
bool tr__ctrd_is_index(const char *mt);
/* From an index, the manifest for os/arch (variant ignored). */
int tr__ctrd_parse_index(const char *json, size_t len, const char *os, const char *arch, tr__ctrd_desc *ret,
                         tr_error **ret_err);
/* From a manifest, the config descriptor. */
int tr__ctrd_parse_manifest(const char *json, size_t len, tr__ctrd_desc *ret_config, tr_error **ret_err);
/* From an image config, the chain id of rootfs.diff_ids. */
int tr__ctrd_parse_config_chain_id(const char *json, size_t len, char **ret_chain_id, tr_error **ret_err);
/* The chain id of `n` diff ids: id(0) = d0, id(i) = sha256(id(i-1) + " " + di). */
int tr__ctrd_chain_id(const char *const *diff_ids, size_t n, char **ret_chain_id);
/* "sha256:" followed by 64 lowercase hex digits. */
bool tr__ctrd_digest_valid(const char *d);
/* The GOARCH name of the machine we run on ("amd64", "arm64", ...). */
const char *tr__ctrd_host_arch(void);
