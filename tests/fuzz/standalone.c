/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A libFuzzer-compatible driver for compilers without libFuzzer (gcc): runs
 * every corpus file through LLVMFuzzerTestOneInput, then random mutations of
 * them (byte flips, inserts, deletes, splices) for a bounded time.  No
 * coverage feedback, so it is a smoke test, not a fuzzer; with the
 * sanitizers of the build it still catches crashes in CI everywhere.
 *
 * Usage: DRIVER SECONDS CORPUS_DIR [SEED]
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_LEN 65536

typedef struct input {
        uint8_t *data;
        size_t len;
} input;

static uint64_t rng_state;

static uint64_t rnd(void) {
        /* xorshift64*: reproducible from the printed seed. */
        rng_state ^= rng_state >> 12;
        rng_state ^= rng_state << 25;
        rng_state ^= rng_state >> 27;
        return rng_state * 2685821657736338717ULL;
}

static size_t load(const char *dir, input **ret) {
        DIR *d = opendir(dir);
        size_t n = 0;
        input *v = NULL;
        struct dirent *e;
        while (d && (e = readdir(d))) {
                if (e->d_name[0] == '.')
                        continue;
                char path[4096];
                snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
                FILE *f = fopen(path, "rb");
                if (!f)
                        continue;
                uint8_t *buf = malloc(FUZZ_MAX_LEN);
                size_t len = buf ? fread(buf, 1, FUZZ_MAX_LEN, f) : 0;
                fclose(f);
                input *nv = buf ? realloc(v, (n + 1) * sizeof(*v)) : NULL;
                if (!nv) {
                        free(buf);
                        continue;
                }
                v = nv;
                v[n++] = (input){ buf, len };
        }
        if (d)
                closedir(d);
        *ret = v;
        return n;
}

static size_t mutate(uint8_t *buf, size_t len, const input *corpus, size_t n) {
        int rounds = 1 + (int) (rnd() % 8);
        for (int r = 0; r < rounds; r++) {
                switch (rnd() % 6) {
                case 0: /* flip a byte */
                        if (len)
                                buf[rnd() % len] ^= (uint8_t) (1u << (rnd() % 8));
                        break;
                case 1: /* set a byte to an interesting value */
                        if (len) {
                                static const uint8_t vals[] = { 0,   0xff, '"', '{',  '}',  '[',
                                                                ']', ':',  ',', '\\', '\n', 0x80 };
                                buf[rnd() % len] = vals[rnd() % sizeof(vals)];
                        }
                        break;
                case 2: /* insert random bytes */
                        if (len < FUZZ_MAX_LEN - 16) {
                                size_t at = len ? rnd() % (len + 1) : 0, k = 1 + rnd() % 16;
                                memmove(buf + at + k, buf + at, len - at);
                                for (size_t i = 0; i < k; i++)
                                        buf[at + i] = (uint8_t) rnd();
                                len += k;
                        }
                        break;
                case 3: /* delete a range */
                        if (len) {
                                size_t at = rnd() % len, k = 1 + rnd() % (len - at);
                                memmove(buf + at, buf + at + k, len - at - k);
                                len -= k;
                        }
                        break;
                case 4: /* splice in part of another input */
                        if (n) {
                                const input *o = &corpus[rnd() % n];
                                if (o->len) {
                                        size_t from = rnd() % o->len, k = 1 + rnd() % (o->len - from);
                                        size_t at = len ? rnd() % (len + 1) : 0;
                                        if (len + k <= FUZZ_MAX_LEN) {
                                                memmove(buf + at + k, buf + at, len - at);
                                                memcpy(buf + at, o->data + from, k);
                                                len += k;
                                        }
                                }
                        }
                        break;
                default: /* truncate */
                        if (len)
                                len = rnd() % len;
                }
        }
        return len;
}

int main(int argc, char **argv) {
        if (argc < 3) {
                fprintf(stderr, "usage: %s SECONDS CORPUS_DIR [SEED]\n", argv[0]);
                return 2;
        }
        double secs = strtod(argv[1], NULL);
        input *corpus = NULL;
        size_t n = load(argv[2], &corpus);
        rng_state = argc > 3 ? strtoull(argv[3], NULL, 0) : (uint64_t) time(NULL);
        if (!rng_state)
                rng_state = 1;
        printf("seed %llu, %zu corpus inputs\n", (unsigned long long) rng_state, n);
        for (size_t i = 0; i < n; i++)
                LLVMFuzzerTestOneInput(corpus[i].data, corpus[i].len);
        uint8_t *buf = malloc(FUZZ_MAX_LEN);
        struct timespec t0, t;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        unsigned long runs = 0;
        for (;;) {
                clock_gettime(CLOCK_MONOTONIC, &t);
                if ((double) (t.tv_sec - t0.tv_sec) + (double) (t.tv_nsec - t0.tv_nsec) / 1e9 >= secs)
                        break;
                size_t len = 0;
                if (n) {
                        const input *base = &corpus[rnd() % n];
                        memcpy(buf, base->data, base->len);
                        len = base->len;
                }
                len = mutate(buf, len, corpus, n);
                LLVMFuzzerTestOneInput(buf, len);
                runs++;
        }
        printf("%lu mutated runs, no crash\n", runs);
        free(buf);
        for (size_t i = 0; i < n; i++)
                free(corpus[i].data);
        free(corpus);
        return 0;
}
