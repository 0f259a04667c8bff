/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Writing what the sandbox produced to the caller's terminal.  A terminal
 * obeys control sequences: ESC starts CSI (clear the screen, move the
 * cursor), OSC (set the window title, OSC 52 writes the clipboard) and DCS
 * strings; BEL, BS and CR rewrite what the user sees; C1 bytes (0x80-0x9f,
 * raw or UTF-8-encoded) are the same controls in 8 bits.  So when the
 * stream is a terminal, every control character but newline and tab, and
 * every byte that is not valid UTF-8, is shown as \xNN.  A pipe or a file
 * gets the bytes as they are, and so does a terminal with --raw.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"

bool cli_term_raw;

/* Length of the valid UTF-8 sequence at s (1 for ASCII), 0 if invalid;
 * *ret_cp is its code point. */
static size_t utf8_seq(const unsigned char *s, size_t n, uint32_t *ret_cp) {
        unsigned char c = s[0];
        size_t need = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (need == 0 || need > n)
                return 0;
        uint32_t cp = need == 1 ? c : need == 2 ? (c & 0x1fu) : need == 3 ? (c & 0x0fu) : (c & 0x07u);
        for (size_t k = 1; k < need; k++) {
                if ((s[k] >> 6) != 2)
                        return 0;
                cp = (cp << 6) | (s[k] & 0x3fu);
        }
        if ((need == 2 && cp < 0x80) || (need == 3 && cp < 0x800) || (need == 4 && cp < 0x10000) ||
            (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
                return 0;
        *ret_cp = cp;
        return need;
}

static bool is_control(uint32_t cp) {
        return (cp < 0x20 && cp != '\n' && cp != '\t') || (cp >= 0x7f && cp <= 0x9f);
}

static int write_escaped(FILE *f, const char *s, size_t n) {
        static const char hex[] = "0123456789abcdef";
        const unsigned char *u = (const unsigned char *) s;
        size_t run = 0; /* start of the bytes that pass as they are */
        for (size_t i = 0; i < n;) {
                uint32_t cp = 0;
                size_t len = utf8_seq(u + i, n - i, &cp);
                if (len > 0 && !is_control(cp)) {
                        i += len;
                        continue;
                }
                if (i > run && fwrite(s + run, 1, i - run, f) != i - run)
                        return -1;
                /* An encoded C1 control shows all its bytes. */
                size_t bad = len > 0 ? len : 1;
                for (size_t k = 0; k < bad; k++) {
                        char e[4] = { '\\', 'x', hex[u[i + k] >> 4], hex[u[i + k] & 0xf] };
                        if (fwrite(e, 1, sizeof(e), f) != sizeof(e))
                                return -1;
                }
                i += bad;
                run = i;
        }
        return n > run && fwrite(s + run, 1, n - run, f) != n - run ? -1 : 0;
}

bool cli_term_escapes(FILE *f) {
        return !cli_term_raw && isatty(fileno(f));
}

int cli_term_write(FILE *f, const char *s, size_t n) {
        flockfile(f);
        int r = cli_term_escapes(f) ? write_escaped(f, s, n) : n && fwrite(s, 1, n, f) != n ? -1 : 0;
        funlockfile(f);
        return r;
}

/* Bytes at the end of s[0..n) that start a UTF-8 sequence the chunk cut
 * short: they wait for the next chunk instead of showing as \xNN. */
static size_t cut_sequence(const unsigned char *s, size_t n) {
        for (size_t back = 1; back <= 3 && back <= n; back++) {
                unsigned char c = s[n - back];
                if ((c >> 6) == 2)
                        continue; /* a continuation byte: look further back */
                size_t need = (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
                return need > back ? back : 0;
        }
        return 0;
}

int cli_term_stream_write(cli_term_stream *st, const char *s, size_t n) {
        if (!cli_term_escapes(st->f))
                return cli_term_write(st->f, s, n);
        char *joined = malloc(st->n_held + n);
        if (!joined)
                return -1;
        memcpy(joined, st->held, st->n_held);
        memcpy(joined + st->n_held, s, n);
        size_t len = st->n_held + n;
        size_t cut = cut_sequence((const unsigned char *) joined, len);
        memcpy(st->held, joined + len - cut, cut);
        st->n_held = cut;
        int r = cli_term_write(st->f, joined, len - cut);
        free(joined);
        return r;
}

int cli_term_stream_finish(cli_term_stream *st) {
        int r = st->n_held ? cli_term_write(st->f, (const char *) st->held, st->n_held) : 0;
        st->n_held = 0;
        return r;
}
