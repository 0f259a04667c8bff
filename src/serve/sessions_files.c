/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A session's files over HTTP: PUT and GET /v1/sessions/{id}/files/{path},
 * raw bytes, streamed both ways — each chunk libmicrohttpd hands over goes
 * straight to tr_session_upload_write, and a download is a sized callback
 * response reading tr_session_download_read — so a file is never held
 * whole in the service's memory.
 *
 * The path is the library's to judge (relative, no "..", no empty
 * component, no symlink followed inside the sandbox): this module only cuts
 * it out of the URL, which the server decoded already (%2e%2e is "..", and
 * %00 is never decoded, so a NUL cannot shorten a path).  An upload whose
 * Content-Length is over the session's disk cap is refused before a byte
 * of it is read.
 */
#include <jansson.h>
#include "serve/mhd.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve/serve.h"
#include "util/handles.h"
#include "util/macros.h"

/* The PATH of "/v1/sessions/ID/files/PATH"; NULL (and a 404) otherwise. */
static const char *file_path(const char *url, tr__serve_reply *ret) {
        static const char files[] = "/files/";
        const char *p = strncmp(url, "/v1/sessions/", 13) == 0 ? url + 13 + 32 : NULL;
        if (!p || strlen(url) < 13 + 32 || strncmp(p, files, sizeof(files) - 1) != 0) {
                tr__serve_reply_error(ret, 404, "not_found", "no route %s", url);
                return NULL;
        }
        return p + sizeof(files) - 1;
}

struct tr__serve_upload {
        tr__serve_session *e;
        tr_session_upload *up;
        tr_error *err; /* the first failure; the rest of the body is dropped */
        uint64_t bytes;
        char path[512];
};

tr__serve_upload *tr__serve_upload_begin(tr__serve_sessions *t, const char *url, unsigned owner, int64_t content_length,
                                         tr__serve_reply *ret) {
        const char *path = file_path(url, ret);
        if (!path)
                return NULL;
        tr__serve_session *e = tr__serve_session_get(t, url, owner, ret);
        if (!e)
                return NULL;
        int64_t cap = tr__serve_session_disk(e);
        if (cap > 0 && content_length > cap) {
                tr__serve_session_put(e);
                tr__serve_reply_error(ret, 413, "resource_limit",
                                      "%lld bytes is over this session's disk limit of %lld bytes",
                                      (long long) content_length, (long long) cap);
                return NULL;
        }
        tr__serve_upload *u = calloc(1, sizeof(*u));
        _cleanup_(tr_error_freep) tr_error *err = NULL;
        if (!u) {
                tr__serve_session_put(e);
                tr__serve_reply_error(ret, 500, "internal", "out of memory");
                return NULL;
        }
        u->e = e;
        snprintf(u->path, sizeof(u->path), "%s", path);
        if (tr_session_upload_begin(tr__serve_session_lib(e), path, &u->up, &err) < 0) {
                tr__serve_session_error(e, err, ret);
                tr__serve_session_put(e);
                free(u);
                return NULL;
        }
        return u;
}

void tr__serve_upload_write(tr__serve_upload *u, const char *data, size_t len) {
        if (u->err)
                return;
        if (tr_session_upload_write(u->up, data, len, &u->err) < 0) {
                tr_session_upload_abort(u->up);
                u->up = NULL;
                return;
        }
        u->bytes += len;
}

static void upload_free(tr__serve_upload *u) {
        tr_session_upload_abort(u->up);
        tr_error_free(u->err);
        tr__serve_session_put(u->e);
        free(u);
}

void tr__serve_upload_end(tr__serve_upload *u, tr__serve_reply *ret) {
        if (!u->err) {
                tr_session_upload *up = TAKE_PTR(u->up);
                if (tr_session_upload_end(up, &u->err) == 0) {
                        json_t *o = json_pack("{s:s,s:I}", "path", u->path, "size", (json_int_t) u->bytes);
                        ret->status = 201;
                        ret->content_type = "application/json";
                        ret->body = o ? json_dumps(o, JSON_COMPACT) : NULL;
                        json_decref(o);
                }
        }
        if (u->err)
                tr__serve_session_error(u->e, u->err, ret);
        upload_free(u);
}

void tr__serve_upload_abort(tr__serve_upload *u) {
        if (u)
                upload_free(u);
}

typedef struct download {
        tr__serve_session *e;
        tr_session_download *down;
} download;

static ssize_t download_read(void *cls, uint64_t pos, char *buf, size_t max) {
        (void) pos;
        download *d = cls;
        size_t n = 0;
        _cleanup_(tr_error_freep) tr_error *err = NULL;
        /* A failure half-way (the session ended) cuts the response short:
         * the client sees fewer bytes than Content-Length said. */
        if (tr_session_download_read(d->down, buf, max, &n, &err) < 0)
                return MHD_CONTENT_READER_END_WITH_ERROR;
        return n ? (ssize_t) n : MHD_CONTENT_READER_END_OF_STREAM;
}

static void download_free(void *cls) {
        download *d = cls;
        tr_session_download_free(d->down);
        tr__serve_session_put(d->e);
        free(d);
}

void tr__serve_download(tr__serve_sessions *t, const char *url, unsigned owner, tr__serve_reply *ret) {
        const char *path = file_path(url, ret);
        if (!path)
                return;
        tr__serve_session *e = tr__serve_session_get(t, url, owner, ret);
        if (!e)
                return;
        download *d = calloc(1, sizeof(*d));
        _cleanup_(tr_error_freep) tr_error *err = NULL;
        uint64_t size = 0;
        if (!d) {
                tr__serve_session_put(e);
                tr__serve_reply_error(ret, 500, "internal", "out of memory");
                return;
        }
        d->e = e;
        if (tr_session_download_begin(tr__serve_session_lib(e), path, &size, &d->down, &err) < 0) {
                tr__serve_session_error(e, err, ret);
                download_free(d);
                return;
        }
        ret->status = 200;
        ret->content_type = "application/octet-stream";
        ret->stream_read = download_read;
        ret->stream_free = download_free;
        ret->stream_cls = d;
        ret->stream_sized = true;
        ret->stream_size = size;
}
