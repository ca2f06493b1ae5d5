/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A stand-in for libFuzzer where there is none (gcc builds): runs a fuzz
 * target once on every file named (or found in a directory named) on the
 * command line, then -runs=N more times on cheap mutations of them (bit
 * flips, interesting integers, cuts, copies, splices), from a fixed seed
 * unless -seed=S.  No coverage guidance: a smoke test that keeps the
 * corpus and its regression inputs running everywhere, not a fuzzer.
 *
 *   fuzz-X [-runs=N] [-max_total_time=SECONDS] [-seed=S] [-max_len=BYTES] PATH...
 *
 * Prints "Done N runs" on stderr at the end (as libFuzzer does); a crash is the target's own
 * (abort, sanitizer report), with the file or mutation round on stderr.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "fuzz.h"
#include "util.h"

struct input {
        char *path;
        uint8_t *data;
        size_t size;
};

static struct input *inputs;
static size_t n_inputs;
static size_t max_len = 1024 * 1024;

__attribute__((weak)) int LLVMFuzzerInitialize(int *argc, char ***argv) {
        (void) argc;
        (void) argv;
        return 0;
}

static int load(const char *path) {
        FILE *f = fopen(path, "rbe");
        uint8_t *buf = NULL;
        size_t size = 0, cap = 0;
        struct input *n;

        if (!f) {
                fprintf(stderr, "fuzz-main: %s: %s\n", path, strerror(errno));
                return -1;
        }
        for (;;) {
                if (size == cap) {
                        uint8_t *b = realloc(buf, cap = cap ? cap * 2 : 4096);
                        if (!b) {
                                free(buf);
                                fclose(f);
                                return -1;
                        }
                        buf = b;
                }
                size_t k = fread(buf + size, 1, cap - size, f);
                if (k == 0)
                        break;
                size += k;
        }
        fclose(f);
        n = realloc(inputs, (n_inputs + 1) * sizeof *n);
        if (!n) {
                free(buf);
                return -1;
        }
        inputs = n;
        inputs[n_inputs++] = (struct input) { strdup(path), buf, size };
        return 0;
}

static int load_path(const char *path) {
        struct stat st;
        struct dirent **names;
        int n, r = 0;

        if (stat(path, &st) < 0) {
                fprintf(stderr, "fuzz-main: %s: %s\n", path, strerror(errno));
                return -1;
        }
        if (!S_ISDIR(st.st_mode))
                return load(path);
        n = scandir(path, &names, NULL, alphasort);
        if (n < 0) {
                fprintf(stderr, "fuzz-main: %s: %s\n", path, strerror(errno));
                return -1;
        }
        for (int i = 0; i < n; i++) {
                char *p;
                if (names[i]->d_name[0] != '.' && asprintf(&p, "%s/%s", path, names[i]->d_name) >= 0) {
                        struct stat fs;
                        if (stat(p, &fs) == 0 && S_ISREG(fs.st_mode) && load(p) < 0)
                                r = -1;
                        free(p);
                }
                free(names[i]);
        }
        free(names);
        return r;
}

/* splitmix64 */
static uint64_t rng_state;
static uint64_t rnd(void) {
        uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
}
static size_t below(size_t n) {
        return n ? (size_t) (rnd() % n) : 0;
}

/* One mutation of buf[0..*size) (capacity cap). */
static void mutate_once(uint8_t *buf, size_t *size, size_t cap) {
        static const uint32_t interesting[] = { 0, 1, 2, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000,
                                                0x7fffffff, 0x80000000, 0xffffffff, 48, 49, 255, 256 };
        size_t n = *size, pos = below(n), len;

        switch (rnd() % 9) {
        case 0:         /* flip a bit */
                if (n)
                        buf[pos] ^= (uint8_t) (1u << (rnd() % 8));
                break;
        case 1:         /* a random byte */
                if (n)
                        buf[pos] = (uint8_t) rnd();
                break;
        case 2:         /* an interesting little-endian integer */
                len = (size_t) 1 << (rnd() % 4);        /* 1, 2, 4, 8 bytes */
                if (n >= len) {
                        uint64_t v = interesting[rnd() % ELEMENTSOF(interesting)];
                        if (rnd() % 4 == 0)
                                v = (uint64_t) n - (rnd() % 64);
                        pos = below(n - len + 1);
                        for (size_t i = 0; i < len; i++)
                                buf[pos + i] = (uint8_t) (v >> (8 * i));
                }
                break;
        case 3:         /* cut the end */
                *size = below(n + 1);
                break;
        case 4:         /* delete a range */
                if (n) {
                        len = 1 + below(MIN(n - pos, (size_t) 64));
                        memmove(buf + pos, buf + pos + len, n - pos - len);
                        *size = n - len;
                }
                break;
        case 5:         /* insert random bytes */
                len = 1 + below(16);
                if (n + len <= cap) {
                        memmove(buf + pos + len, buf + pos, n - pos);
                        for (size_t i = 0; i < len; i++)
                                buf[pos + i] = (uint8_t) rnd();
                        *size = n + len;
                }
                break;
        case 6:         /* copy a range over another place */
                if (n > 1) {
                        size_t from = below(n);
                        len = 1 + below(MIN(MIN(n - from, n - pos), (size_t) 128));
                        memmove(buf + pos, buf + from, len);
                }
                break;
        case 7: {       /* splice in a piece of another input */
                const struct input *o = &inputs[below(n_inputs)];
                if (o->size) {
                        size_t from = below(o->size);
                        len = MIN(o->size - from, cap - pos);
                        len = below(len + 1);
                        memcpy(buf + pos, o->data + from, len);
                        if (pos + len > n)
                                *size = pos + len;
                }
                break;
        }
        case 8:         /* an ASCII digit or separator: text formats */
                if (n) {
                        static const char text[] = "0123456789=:[]#; \n\t-/.";
                        buf[pos] = (uint8_t) text[rnd() % (sizeof text - 1)];
                }
                break;
        }
}

static int run_one(const uint8_t *data, size_t size) {
        /* An exact-size copy, so that an overread is found under ASan. */
        uint8_t *copy = malloc(size ? size : 1);
        int r;

        if (!copy)
                abort();
        if (size)
                memcpy(copy, data, size);
        r = LLVMFuzzerTestOneInput(copy, size);
        free(copy);
        return r;
}

int main(int argc, char **argv) {
        unsigned long long runs = 0, seed = 0x636169726eULL, done = 0, max_time = 0;
        time_t start = time(NULL);
        uint8_t *buf;

        LLVMFuzzerInitialize(&argc, &argv);
        for (int i = 1; i < argc; i++) {
                if (strncmp(argv[i], "-runs=", 6) == 0)
                        runs = strtoull(argv[i] + 6, NULL, 10);
                else if (strncmp(argv[i], "-seed=", 6) == 0)
                        seed = strtoull(argv[i] + 6, NULL, 10);
                else if (strncmp(argv[i], "-max_total_time=", 16) == 0)
                        max_time = strtoull(argv[i] + 16, NULL, 10);
                else if (strncmp(argv[i], "-max_len=", 9) == 0)
                        max_len = strtoull(argv[i] + 9, NULL, 10);
                else if (argv[i][0] == '-')
                        continue;       /* a libFuzzer flag: no meaning here */
                else if (load_path(argv[i]) < 0)
                        return 1;
        }
        rng_state = seed;

        for (size_t i = 0; i < n_inputs; i++) {
                fprintf(stderr, "fuzz-main: %s\n", inputs[i].path);
                run_one(inputs[i].data, inputs[i].size);
                done++;
        }
        fprintf(stderr, "fuzz-main: %zu corpus inputs ran\n", n_inputs);

        buf = malloc(max_len + 1);
        if (!buf)
                return 1;
        for (unsigned long long round = 0; round < runs && n_inputs > 0; round++) {
                if (max_time > 0 && (unsigned long long) (time(NULL) - start) >= max_time)
                        break;
                const struct input *in = &inputs[below(n_inputs)];
                size_t size = MIN(in->size, max_len);
                unsigned m = 1 + (unsigned) below(4);

                memcpy(buf, in->data, size);
                for (unsigned j = 0; j < m; j++)
                        mutate_once(buf, &size, max_len);
                if (getenv("FUZZ_VERBOSE"))
                        fprintf(stderr, "fuzz-main: round %llu: %s mutated %u times, %zu bytes\n", round, in->path,
                                m, size);
                run_one(buf, size);
                done++;
        }
        free(buf);
        for (size_t i = 0; i < n_inputs; i++) {
                free(inputs[i].path);
                free(inputs[i].data);
        }
        free(inputs);
        fprintf(stderr, "Done %llu runs\n", done);
        return 0;
}
