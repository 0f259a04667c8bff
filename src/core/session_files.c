/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Files in and out of a session, streamed through its runner (runner.c's
 * "p" and "g" commands): the runner, inside the sandbox and as its user,
 * walks the path one O_NOFOLLOW component at a time, so neither the host
 * nor the runner ever follows a link the snippet planted.  The host checks
 * the path's shape first (tr__path_check) and caps an upload at the
 * session's disk limit; the sandbox's own quota (ENOSPC) is the real cap.
 * A transfer holds the session's operation lock from begin to end/free.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/session.h"
#include "util/macros.h"
#include "util/timeutil.h"

/* What tr_session_download_free still reads off the wire (see there). */
#define DRAIN_MAX (8 * 1024 * 1024)

/* No single step of a transfer (an answer, a chunk) waits longer. */
#define STEP_NS (60LL * TR_NSEC_PER_SEC)

struct tr_session_upload {
        tr_session *s;
        char *path;
        uint64_t written;
        bool failed; /* the runner already answered (an error): no more chunks */
};

struct tr_session_download {
        tr_session *s;
        uint64_t left;
        bool broken; /* the wire failed: the session ended */
};

static int64_t step_deadline(const tr_session *s) {
        int64_t d = tr__now_ns() + STEP_NS;
        return d < s->ttl_deadline_ns ? d : s->ttl_deadline_ns;
}

/* Send "<cmd> <marker> <len>\n<path>" and read the first answer. */
static int file_command(tr_session *s, char cmd, const char *path, const char *op, char **ret_line,
                        tr_error **ret_err) {
        int r = tr__wire_new_marker(s);
        if (r < 0)
                return tr_error_set(ret_err, TR_E_INTERNAL, s->kind, op, "getrandom: %s", strerror(-r));
        _cleanup_free_ char *head = NULL;
        if (asprintf(&head, "%c %s %zu\n%s", cmd, s->end, strlen(path), path) < 0)
                return head = NULL, tr_error_set(ret_err, TR_E_INTERNAL, s->kind, op, "out of memory");
        if ((r = tr__wire_write(s, head, strlen(head), step_deadline(s), op, ret_err)) < 0)
                return r;
        return tr__wire_reply(s, step_deadline(s), op, ret_line, ret_err);
}

TR_PUBLIC int tr_session_upload_begin(tr_session *s, const char *path, tr_session_upload **ret_up, tr_error **ret_err) {
        if (!s || !path || !ret_up)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, "file", "invalid argument");
        /* Before the first goto: a cleanup variable is never jumped over. */
        _cleanup_free_ char *line = NULL;
        int r = tr__path_check(path, strlen(path), ret_err);
        if (r < 0 || (r = tr__session_lock(s, NULL, "file", ret_err)) < 0)
                return r;
        tr_session_upload *up = calloc(1, sizeof *up);
        if (!up || !(up->path = strdup(path))) {
                r = tr_error_set(ret_err, TR_E_INTERNAL, s->kind, "file", "out of memory");
                goto fail;
        }
        up->s = s;
        if ((r = file_command(s, 'p', path, "file", &line, ret_err)) < 0)
                goto fail;
        if (!streq(line, "go")) {
                r = tr__wire_answer_error(s, line, "file", path, ret_err);
                goto fail;
        }
        tr__session_touch(s);
        *ret_up = up;
        return 0;
fail:
        if (up)
                free(up->path);
        free(up);
        tr__session_unlock(s);
        return r;
}

/* Tell the runner the upload ends (`n`: 0 commit, -1 abort) and read its
 * answer. */
static int upload_finish(tr_session_upload *up, int n, tr_error **ret_err) {
        tr_session *s = up->s;
        _cleanup_free_ char *line = NULL;
        char tail[8];
        snprintf(tail, sizeof tail, "%d\n", n);
        up->failed = true;
        int r = tr__wire_write(s, tail, strlen(tail), step_deadline(s), "file", ret_err);
        if (r >= 0)
                r = tr__wire_reply(s, step_deadline(s), "file", &line, ret_err);
        if (r >= 0 && !streq(line, n == 0 ? "ok" : "aborted"))
                r = tr__wire_answer_error(s, line, "file", up->path, ret_err);
        return r;
}

TR_PUBLIC int tr_session_upload_write(tr_session_upload *up, const void *data, size_t len, tr_error **ret_err) {
        if (!up || (!data && len))
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, "file", "invalid argument");
        tr_session *s = up->s;
        if (up->failed)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, s->kind, "file", "the upload of %s already failed",
                                    up->path);
        if (len == 0)
                return 0;
        if (s->gone)
                return tr__session_gone_error(s, "file", ret_err);
        if (s->disk_cap > 0 && up->written + len > (uint64_t) s->disk_cap) {
                (void) upload_finish(up, -1, NULL);
                return tr_error_set(ret_err, TR_E_RESOURCE_LIMIT, s->kind, "file",
                                    "%s: the upload is larger than the session's disk limit (%" PRId64 " bytes)",
                                    up->path, s->disk_cap);
        }
        char head[32];
        snprintf(head, sizeof head, "%zu\n", len);
        int r = tr__wire_write(s, head, strlen(head), step_deadline(s), "file", ret_err);
        if (r >= 0)
                r = tr__wire_write(s, data, len, step_deadline(s), "file", ret_err);
        if (r < 0) {
                up->failed = true;
                return r;
        }
        up->written += len;
        return 0;
}

static void upload_free(tr_session_upload *up) {
        tr__session_touch(up->s);
        tr__session_unlock(up->s);
        free(up->path);
        free(up);
}

TR_PUBLIC int tr_session_upload_end(tr_session_upload *up, tr_error **ret_err) {
        if (!up)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, "file", "no upload");
        int r;
        if (up->failed)
                r = tr_error_set(ret_err, TR_E_INVALID_REQUEST, up->s->kind, "file",
                                 "the upload of %s failed; nothing was written", up->path);
        else if (up->s->gone)
                r = tr__session_gone_error(up->s, "file", ret_err);
        else
                r = upload_finish(up, 0, ret_err);
        upload_free(up);
        return r;
}

TR_PUBLIC void tr_session_upload_abort(tr_session_upload *up) {
        if (!up)
                return;
        if (!up->failed && !up->s->gone)
                (void) upload_finish(up, -1, NULL);
        upload_free(up);
}

TR_PUBLIC int tr_session_download_begin(tr_session *s, const char *path, uint64_t *ret_size,
                                        tr_session_download **ret_down, tr_error **ret_err) {
        if (!s || !path || !ret_down)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, "file", "invalid argument");
        int r = tr__path_check(path, strlen(path), ret_err);
        if (r < 0 || (r = tr__session_lock(s, NULL, "file", ret_err)) < 0)
                return r;
        _cleanup_free_ char *line = NULL;
        uint64_t size = 0;
        int off = 0;
        if ((r = file_command(s, 'g', path, "file", &line, ret_err)) < 0)
                goto fail;
        if (sscanf(line, "size %" SCNu64 "%n", &size, &off) < 1 || line[off]) {
                r = tr__wire_answer_error(s, line, "file", path, ret_err);
                goto fail;
        }
        tr_session_download *d = calloc(1, sizeof *d);
        if (!d) {
                /* The bytes are on their way: the wire is out of step. */
                tr__session_end(s, "out of memory during a download");
                r = tr_error_set(ret_err, TR_E_INTERNAL, s->kind, "file", "out of memory");
                goto fail;
        }
        d->s = s;
        d->left = size;
        if (ret_size)
                *ret_size = size;
        *ret_down = d;
        return 0;
fail:
        tr__session_unlock(s);
        return r;
}

TR_PUBLIC int tr_session_download_read(tr_session_download *d, void *buf, size_t max, size_t *ret_len,
                                       tr_error **ret_err) {
        if (!d || !buf || !ret_len)
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, "file", "invalid argument");
        *ret_len = 0;
        if (d->broken)
                return tr__session_gone_error(d->s, "file", ret_err);
        if (d->left == 0 || max == 0)
                return 0;
        if (max > d->left)
                max = (size_t) d->left;
        int r = tr__wire_read_raw(d->s, buf, max, step_deadline(d->s), "file", ret_len, ret_err);
        if (r < 0) {
                d->broken = true;
                return r;
        }
        d->left -= *ret_len;
        return 0;
}

TR_PUBLIC void tr_session_download_free(tr_session_download *d) {
        if (!d)
                return;
        /* The rest of the file is on the wire: read it off, or the next
         * answer would be found in the middle of it.  Beyond a few MiB
         * (a client that went away from a large file) draining would hold
         * the session and a thread for long: the session ends instead. */
        if (!d->broken && d->left > DRAIN_MAX) {
                tr__session_end(d->s, "a download was abandoned with %" PRIu64 " bytes unread", d->left);
                d->broken = true;
        }
        char buf[65536];
        while (!d->broken && d->left > 0) {
                size_t n = 0;
                if (tr__wire_read_raw(d->s, buf, d->left < sizeof buf ? (size_t) d->left : sizeof buf,
                                      step_deadline(d->s), "file", &n, NULL) < 0)
                        break;
                d->left -= n;
        }
        tr__session_touch(d->s);
        tr__session_unlock(d->s);
        free(d);
}
