/* SPDX-License-Identifier: Apache-2.0 */
/* The stdio transport (stdio.h). */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mcp/stdio.h"
#include "util/macros.h"

void mcps_stdio_send(void *userdata, const char *json, size_t len) {
        int fd = *(int *) userdata;
        /* The message and its newline in one buffer, so that one write
         * usually carries the whole line. */
        char *line = malloc(len + 1);
        if (!line)
                return;
        memcpy(line, json, len);
        line[len] = '\n';
        for (size_t off = 0; off < len + 1;) {
                ssize_t n = write(fd, line + off, len + 1 - off);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                off += (size_t) n;
        }
        free(line);
}

static void handle_line(mcps_server *s, char *line, size_t len) {
        if (len > 0 && line[len - 1] == '\r')
                len--;
        /* Blank lines are not messages. */
        size_t i = 0;
        while (i < len && (line[i] == ' ' || line[i] == '\t'))
                i++;
        if (i < len)
                mcps_server_handle(s, line + i, len - i);
}

int mcps_stdio_serve(mcps_server *s, int in_fd, int stop_fd, size_t max_line) {
        size_t cap = 64 * 1024, len = 0;
        _cleanup_free_ char *buf = malloc(cap);
        bool skipping = false; /* inside an over-long line: drop to its end */
        if (!buf)
                return -ENOMEM;
        for (;;) {
                struct pollfd p[2] = { { .fd = in_fd, .events = POLLIN }, { .fd = stop_fd, .events = POLLIN } };
                int r = poll(p, stop_fd >= 0 ? 2 : 1, -1);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0)
                        return -errno;
                if (stop_fd >= 0 && p[1].revents)
                        return 0;
                if (len == cap) {
                        char *nb = realloc(buf, cap * 2);
                        if (!nb)
                                return -ENOMEM;
                        buf = nb;
                        cap *= 2;
                }
                ssize_t n = read(in_fd, buf + len, cap - len);
                if (n < 0 && (errno == EINTR || errno == EAGAIN))
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0) {
                        if (len > 0 && !skipping)
                                handle_line(s, buf, len);
                        return 0;
                }
                size_t start = 0, end = len + (size_t) n;
                for (size_t i = len; i < end; i++) {
                        if (buf[i] != '\n')
                                continue;
                        if (!skipping)
                                handle_line(s, buf + start, i - start);
                        skipping = false;
                        start = i + 1;
                }
                memmove(buf, buf + start, end - start);
                len = end - start;
                if (len > max_line) {
                        if (!skipping)
                                mcps_server_handle(s, "!", 1); /* a parse error, id null */
                        skipping = true;
                        len = 0;
                }
        }
}
