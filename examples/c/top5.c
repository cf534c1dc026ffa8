/* Runs a model compiled by `effc compile MODEL --emit lib -o OUT` on .npy inputs and
 * prints the top 5 classes of its first output.
 *
 *   effc compile b0.onnx --emit lib -o b0
 *   cc -O2 -DMODEL=b0 -include b0.h examples/c/top5.c b0.a -o top5   (see b0.h's link line)
 *   ./top5 image.npy [-o output.npy] [--runs N] [--threads T]
 *
 * Inputs are float32 .npy files in C order, one per model input, whose element counts
 * match the model's. `-o` writes the first output as a float32 .npy; `--runs N` times
 * N more runs after the first and prints the median; `--threads T` runs each step on T
 * threads (artifacts with micro-kernels). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#ifndef MODEL
#error "compile with -DMODEL=NAME -include OUT.h (the header effc wrote)"
#endif
#define CAT2(a, b) a##_##b
#define CAT(a, b) CAT2(a, b)
#define API(f) CAT(MODEL, f)

static int fail(const char *what, const char *why) {
    fprintf(stderr, "top5: %s: %s\n", what, why);
    return 1;
}

/* Reads a float32 C-order .npy file of `count` elements into a new buffer. */
static float *read_npy(const char *path, size_t count, const char **why) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        *why = "cannot open";
        return NULL;
    }
    unsigned char magic[10];
    float *data = NULL;
    char *header = NULL;
    *why = "not a .npy file";
    if (fread(magic, 1, 10, f) != 10 || memcmp(magic, "\x93NUMPY", 6) != 0) goto done;
    size_t len = magic[8] | (size_t)magic[9] << 8;
    if (magic[6] >= 2) { /* versions 2 and 3: a 4-byte header length */
        unsigned char more[2];
        if (fread(more, 1, 2, f) != 2) goto done;
        len |= (size_t)more[0] << 16 | (size_t)more[1] << 24;
    }
    if (len > (1 << 20)) goto done;
    header = calloc(len + 1, 1);
    if (!header || fread(header, 1, len, f) != len) goto done;
    *why = "not float32 little-endian in C order";
    if (!strstr(header, "'<f4'") || !strstr(header, "'fortran_order': False")) goto done;
    const char *shape = strstr(header, "'shape': (");
    if (!shape) goto done;
    size_t n = 1;
    for (const char *p = shape + 10; *p && *p != ')'; p++) {
        if (*p >= '0' && *p <= '9') {
            n *= strtoull(p, (char **)&p, 10);
            p--;
        }
    }
    *why = "its element count is not the model's";
    if (n != count) goto done;
    data = malloc(count * sizeof(float));
    *why = "truncated";
    if (data && fread(data, sizeof(float), count, f) != count) {
        free(data);
        data = NULL;
    }
done:
    free(header);
    fclose(f);
    return data;
}

static int write_npy(const char *path, const float *data, size_t count) {
    FILE *f = fopen(path, "wb");
    if (!f) return 1;
    char dict[118];
    int n = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (%zu,), }", count);
    /* Pad the header to 128 bytes in all, ending with a newline. */
    memset(dict + n, ' ', sizeof dict - n);
    dict[sizeof dict - 1] = '\n';
    unsigned char head[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, sizeof dict, 0};
    int ok = fwrite(head, 1, 10, f) == 10 && fwrite(dict, 1, sizeof dict, f) == sizeof dict &&
             fwrite(data, sizeof(float), count, f) == count;
    return (fclose(f) != 0 || !ok);
}

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static int by_time(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    const char *inputs[API(NUM_INPUTS)];
    const char *out_path = NULL;
    int n_inputs = 0, runs = 0, threads = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-o") && i + 1 < argc) {
            out_path = argv[++i];
        } else if (!strcmp(argv[i], "--runs") && i + 1 < argc) {
            runs = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            threads = atoi(argv[++i]);
        } else if (n_inputs < API(NUM_INPUTS)) {
            inputs[n_inputs++] = argv[i];
        } else {
            return fail(argv[i], "one .npy file per model input");
        }
    }
    if (n_inputs != API(NUM_INPUTS)) {
        fprintf(stderr, "usage: top5 INPUT.npy (one per model input, %d) [-o OUTPUT.npy] [--runs N] [--threads T]\n",
                API(NUM_INPUTS));
        return 2;
    }
    float *in[API(NUM_INPUTS)], *out[API(NUM_OUTPUTS)];
    for (int i = 0; i < API(NUM_INPUTS); i++) {
        const char *why;
        in[i] = read_npy(inputs[i], API(input_size)(i), &why);
        if (!in[i]) return fail(inputs[i], why);
    }
    for (int i = 0; i < API(NUM_OUTPUTS); i++) {
        out[i] = malloc(API(output_size)(i) * sizeof(float));
        if (!out[i]) return fail("output", "out of memory");
    }
    double t0 = now_ms();
    API(ctx) *ctx = API(new)(threads);
    if (!ctx) return fail("new", API(last_error)());
    if (API(run)(ctx, (const float *const *)in, out)) return fail("run", API(last_error)());
    double first = now_ms() - t0;
    if (runs > 0) {
        double *times = malloc(runs * sizeof(double));
        for (int r = 0; r < runs; r++) {
            double t = now_ms();
            if (API(run)(ctx, (const float *const *)in, out)) return fail("run", API(last_error)());
            times[r] = now_ms() - t;
        }
        qsort(times, runs, sizeof(double), by_time);
        struct rusage usage;
        getrusage(RUSAGE_SELF, &usage);
        printf("new + first run %.3f ms, median of %d runs %.3f ms, peak RSS %ld KiB\n", first, runs,
               times[runs / 2], usage.ru_maxrss);
        free(times);
    }
    size_t classes = API(output_size)(0);
    int best[5];
    for (int k = 0; k < 5 && k < (int)classes; k++) {
        best[k] = -1;
        for (size_t c = 0; c < classes; c++) {
            int taken = 0;
            for (int j = 0; j < k; j++) taken |= best[j] == (int)c;
            if (!taken && (best[k] < 0 || out[0][c] > out[0][best[k]])) best[k] = (int)c;
        }
        printf("#%d  index %d  score %.6f\n", k + 1, best[k], out[0][best[k]]);
    }
    if (out_path && write_npy(out_path, out[0], classes)) return fail(out_path, "cannot write");
    API(free)(ctx);
    for (int i = 0; i < API(NUM_INPUTS); i++) free(in[i]);
    for (int i = 0; i < API(NUM_OUTPUTS); i++) free(out[i]);
    return 0;
}
