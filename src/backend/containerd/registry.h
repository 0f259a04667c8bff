/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The registry client: image references, credentials from a Docker
 * config.json, and GETs of manifests and blobs over the OCI distribution
 * protocol (libcurl).  It only fetches bytes, bounded in size; verifying
 * them against their digests and storing them is the puller's (pull.c).
 *
 * HTTPS always, except for a registry named in `insecure` (plain HTTP: a
 * registry on loopback in tests, a private mirror).  Authentication: none,
 * Basic, or a Bearer token from the realm the registry's WWW-Authenticate
 * names, with the config.json credentials for that registry (if any).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "toolruntime.h"

typedef struct tr__reg_ref {
        char *domain; /* as written ("127.0.0.1:5000", "docker.io") */
        char *repo;   /* "library/python" */
        char *tag;    /* NULL when only a digest is given */
        char *digest; /* "sha256:..." or NULL */
        char *name;   /* the normalised full name containerd stores */
} tr__reg_ref;
void tr__reg_ref_done(tr__reg_ref *r);
/* Parse "[domain/]path[:tag][@digest]"; docker.io defaults like docker's. */
int tr__reg_ref_parse(const char *ref, tr__reg_ref *ret, tr_error **ret_err);

/* Progress of a blob download: bytes received of `total` (0: unknown). */
typedef void (*tr__reg_progress_fn)(void *userdata, const char *what, int64_t now, int64_t total);

typedef struct tr__reg_opts {
        const char *config_path;      /* NULL: $DOCKER_CONFIG/config.json, ~/.docker/config.json */
        const char *const *insecure;  /* NULL-terminated registry names served over plain HTTP */
        int64_t deadline_ns;          /* CLOCK_MONOTONIC; 0: none */
        tr__reg_progress_fn progress; /* NULL: none */
        void *progress_userdata;
} tr__reg_opts;

typedef struct tr__reg tr__reg;
int tr__reg_open(const tr__reg_ref *ref, const tr__reg_opts *opts, tr__reg **ret, tr_error **ret_err);
void tr__reg_free(tr__reg *r);
static inline void tr__reg_freep(tr__reg **r) {
        tr__reg_free(*r);
}

/* GET /v2/<repo>/<kind>/<ref> ("manifests" or "blobs") of at most `max`
 * bytes.  *ret_media_type (may be NULL) gets the Content-Type.  Errors:
 * TR_E_IMAGE_NOT_FOUND for an unknown name/tag/blob, TR_E_BACKEND_DENIED
 * for refused credentials, TR_E_RESOURCE_LIMIT past `max`,
 * TR_E_DAEMON_UNAVAILABLE (retryable) for a transport failure. */
int tr__reg_get(tr__reg *r, const char *kind, const char *ref, size_t max, char **ret_data, size_t *ret_len,
                char **ret_media_type, tr_error **ret_err);

/* Exposed for the unit tests: the credentials for `domain` in a config.json
 * text ("user:password", owned), -ENOENT when none. */
int tr__reg_config_lookup(const char *json, size_t len, const char *domain, char **ret_userpass);
