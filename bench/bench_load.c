/*
 * bench_load.c - how fast bars load from CSV and JSON, and at what memory.
 *
 * usage: bench_load [BARS]   (default 10,000,000)
 *
 * Writes BARS synthetic 1m bars (qg_gen) to a CSV and a JSON file in
 * $TMPDIR (or /tmp), then for each prints the best of three
 * qg_bars_load_file runs next to a baseline: reading the same file through
 * qg_file_feed with nothing parsing it, the ceiling a loader can reach.
 * Each format is measured in a child process so its peak RSS (ru_maxrss) is
 * its own. The files are removed at the end.
 */
#include <quantgate/bars.h>
#include <quantgate/file.h>
#include <quantgate/mem.h>
#include <quantgate/time.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define OUT_BUF (1u << 20)
#define BATCH   8192

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* CSV rows to JSON rows "[\"ts\",o,h,l,c,v]" separated by ",\n". */
static size_t to_json(const char *csv, size_t len, char *dst, bool *first)
{
    size_t n = 0;
    for (const char *p = csv, *end = csv + len; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *comma = memchr(p, ',', (size_t)(nl - p));
        if (!*first) dst[n++] = ',', dst[n++] = '\n';
        *first = false;
        dst[n++] = '[';
        dst[n++] = '"';
        memcpy(dst + n, p, (size_t)(comma - p));
        n += (size_t)(comma - p);
        dst[n++] = '"';
        memcpy(dst + n, comma, (size_t)(nl - comma));
        n += (size_t)(nl - comma);
        dst[n++] = ']';
        p = nl + 1;
    }
    return n;
}

static void write_file(const char *path, size_t bars, bool json)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(1);
    }
    qg_gen g;
    qg_gen_opts o = {.bars = bars, .tf_ms = QG_MS_PER_MIN, .seed = 7, .start_ms = 1704067200000LL};
    qg_gen_init(&g, &o, NULL);
    qg_bars b = {0};
    qg_bars_reserve(&b, BATCH);
    char *buf = qg_xmalloc(OUT_BUF), *jbuf = qg_xmalloc(OUT_BUF + 64);
    bool first = true;
    fputs(json ? "[\n" : QG_BARS_CSV_HEADER, f);
    for (size_t done = 0; done < bars; done += b.n) {
        b.n = 0;
        while (b.n < BATCH && done + b.n < bars) {
            qg_bar bar;
            qg_gen_next(&g, &bar);
            qg_bars_push(&b, &bar);
        }
        for (size_t pos = 0; pos < b.n;) {
            size_t len = qg_bars_format_csv(&b, &pos, buf, OUT_BUF / 2, QG_TS_ISO, 2);
            if (json)
                fwrite(jbuf, 1, to_json(buf, len, jbuf, &first), f);
            else
                fwrite(buf, 1, len, f);
        }
    }
    if (json) fputs("\n]\n", f);
    if (fclose(f) != 0) {
        perror(path);
        exit(1);
    }
    qg_bars_free(&b);
    free(buf);
    free(jbuf);
}

static qg_status count_bytes(void *ud, const char *data, size_t n)
{
    *(uint64_t *)ud += n + (uint64_t)(unsigned char)data[n - 1] * 0; /* touch the data */
    return QG_OK;
}

static double best_read(const char *path, uint64_t *bytes)
{
    double best = 1e9;
    for (int run = 0; run < 3; run++) {
        *bytes = 0;
        double t = now_s();
        qg_file_feed(path, 0, count_bytes, bytes, NULL, NULL, NULL);
        t = now_s() - t;
        if (t < best) best = t;
    }
    return best;
}

static void row(const char *what, double mb, size_t rows, double s, long rss_kb, size_t arr)
{
    printf("%-22s %9.1f %11zu %8.3f %9.0f %10.2f %10.0f %10.0f\n", what, mb, rows, s, mb / s,
           rows ? rows / s / 1e6 : 0.0, rss_kb / 1024.0, arr / 1048576.0);
}

/* Runs in a child: three loads, the best time, the child's own peak RSS. */
static void measure(const char *path, const char *label)
{
    uint64_t bytes;
    double read_s = best_read(path, &bytes), best = 1e9;
    double mb = (double)bytes / 1e6;
    size_t rows = 0, arr = 0;
    for (int run = 0; run < 3; run++) {
        qg_bars b = {0};
        qg_error err = {0};
        qg_load_report rep;
        double t = now_s();
        if (qg_bars_load_file(path, NULL, &b, &rep, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            exit(1);
        }
        t = now_s() - t;
        if (t < best) best = t;
        rows = b.n;
        arr = b.cap * QG_BAR_BYTES;
        qg_bars_free(&b);
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    char what[64];
    snprintf(what, sizeof what, "%s read only", label);
    row(what, mb, 0, read_s, 0, 0);
    snprintf(what, sizeof what, "%s load", label);
    row(what, mb, rows, best, ru.ru_maxrss, arr);
}

static void in_child(const char *path, const char *label)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        measure(path, label);
        fflush(stdout);
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st)) exit(1);
}

int main(int argc, char **argv)
{
    size_t bars = argc > 1 ? (size_t)strtoull(argv[1], NULL, 10) : 10000000;
    const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char csv[512], json[512];
    snprintf(csv, sizeof csv, "%s/qg_bench_load_%d.csv", dir, (int)getpid());
    snprintf(json, sizeof json, "%s/qg_bench_load_%d.json", dir, (int)getpid());
    double t = now_s();
    write_file(csv, bars, false);
    write_file(json, bars, true);
    printf("bench_load: %zu bars of 1m synthetic data (files written in %.1f s)\n\n", bars,
           now_s() - t);
    printf("%-22s %9s %11s %8s %9s %10s %10s %10s\n", "case", "file MB", "rows", "seconds", "MB/s",
           "Mbars/s", "peak RSS", "bars MiB");
    in_child(csv, "csv");
    in_child(json, "json");
    printf("\npeak RSS in MiB of a process that loaded the file 3 times; bars MiB = capacity "
           "x %d bytes\n",
           QG_BAR_BYTES);
    unlink(csv);
    unlink(json);
    return 0;
}
