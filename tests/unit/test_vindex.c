/*
 * test_vindex.c - the vector index: kernels against a double-precision
 * reference, the text codec, flat search against brute force for every
 * metric, HNSW recall against exact search on fixed-seed clustered data,
 * filters, deletions and slot reuse, replacement, snapshots (round trip and
 * corrupt files).
 */
#include <criterion/criterion.h>

#include "memory/vindex.h"
#include "memory/hnsw_int.h" /* full_prune */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static float rng_unit(uint64_t *s)
{
    return (float)((double)(rng_next(s) >> 11) * 0x1.0p-53);
}

static float rng_gauss(uint64_t *s)
{
    double u = (double)(rng_next(s) >> 11) * 0x1.0p-53 + 1e-12;
    double v = (double)(rng_next(s) >> 11) * 0x1.0p-53;
    return (float)(sqrt(-2 * log(u)) * cos(6.283185307179586 * v));
}

static void rand_vec(uint64_t *s, float *v, size_t dim)
{
    for (size_t i = 0; i < dim; i++) v[i] = rng_unit(s) * 2 - 1;
}

/* n vectors around nclusters Gaussian centres (spread 0.3 around N(0,1)). */
static float *clustered(uint64_t seed, size_t n, size_t dim, size_t nclusters)
{
    uint64_t s = seed;
    float *c = malloc(nclusters * dim * sizeof *c);
    float *v = malloc(n * dim * sizeof *v);
    for (size_t i = 0; i < nclusters * dim; i++) c[i] = rng_gauss(&s);
    for (size_t i = 0; i < n; i++) {
        size_t k = rng_next(&s) % nclusters;
        for (size_t j = 0; j < dim; j++) v[i * dim + j] = c[k * dim + j] + 0.3f * rng_gauss(&s);
    }
    free(c);
    return v;
}

static double ref_dot(const float *a, const float *b, size_t dim)
{
    double s = 0;
    for (size_t i = 0; i < dim; i++) s += (double)a[i] * b[i];
    return s;
}

static double ref_dist(qg_vmetric m, const float *a, const float *b, size_t dim)
{
    if (m == QG_VMETRIC_DOT) return -ref_dot(a, b, dim);
    if (m == QG_VMETRIC_L2) {
        double s = 0;
        for (size_t i = 0; i < dim; i++) s += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        return s;
    }
    double na = sqrt(ref_dot(a, a, dim)), nb = sqrt(ref_dot(b, b, dim));
    return 1 - ref_dot(a, b, dim) / (na * nb);
}

/* ---- kernels ---- */

Test(vindex, kernels_match_double_reference)
{
    uint64_t s = 7;
    size_t dims[] = {1,  3,  7,  8,  9,  15,  16,  17,  31,  32,  33,
                     48, 63, 64, 65, 72, 100, 128, 255, 256, 1536};
    float *a = malloc(1536 * sizeof *a), *b = malloc(1536 * sizeof *b);
    for (size_t t = 0; t < sizeof dims / sizeof *dims; t++) {
        size_t d = dims[t];
        rand_vec(&s, a, d);
        rand_vec(&s, b, d);
        double tol = 1e-5 * (double)d;
        cr_assert(fabs(qg_vec_dot(a, b, d) - ref_dot(a, b, d)) < tol, "dot dim %zu", d);
        cr_assert(fabs(qg_vec_l2sq(a, b, d) - ref_dist(QG_VMETRIC_L2, a, b, d)) < tol, "l2 dim %zu",
                  d);
        for (int m = 0; m < 3; m++)
            cr_assert(fabs(qg_vec_distance((qg_vmetric)m, a, b, d) -
                           ref_dist((qg_vmetric)m, a, b, d)) < tol,
                      "metric %d dim %zu", m, d);
        qg_vec_normalize(a, d);
        cr_assert(fabs(ref_dot(a, a, d) - 1) < 1e-5, "normalise dim %zu", d);
    }
    memset(a, 0, 8 * sizeof *a);
    qg_vec_normalize(a, 8);
    for (int i = 0; i < 8; i++) cr_assert_eq(a[i], 0.0f);
    free(a);
    free(b);
}

Test(vindex, metric_names)
{
    cr_assert_str_eq(qg_vmetric_name(QG_VMETRIC_COSINE), "cosine");
    cr_assert_str_eq(qg_vmetric_name(QG_VMETRIC_DOT), "dot");
    cr_assert_str_eq(qg_vmetric_name(QG_VMETRIC_L2), "l2");
    cr_assert_eq(qg_vmetric_parse("cosine"), QG_VMETRIC_COSINE);
    cr_assert_eq(qg_vmetric_parse("dot"), QG_VMETRIC_DOT);
    cr_assert_eq(qg_vmetric_parse("l2"), QG_VMETRIC_L2);
    cr_assert_eq(qg_vmetric_parse("L2x"), -1);
    cr_assert_eq(qg_vmetric_parse(NULL), -1);
}

/* ---- codec ---- */

Test(vindex, codec_round_trip_and_errors)
{
    uint64_t s = 11;
    float v[37], w[37];
    for (size_t dim = 1; dim <= 37; dim++) {
        rand_vec(&s, v, dim);
        qg_buf b;
        qg_buf_init(&b, 1 << 20);
        cr_assert_eq(qg_vec_encode(v, dim, &b), QG_OK);
        cr_assert_eq(b.len, (dim * 4 + 2) / 3 * 4);
        qg_error e = {0};
        cr_assert_eq(qg_vec_decode(b.data, w, dim, &e), QG_OK, "dim %zu: %s", dim, e.msg);
        cr_assert_eq(memcmp(v, w, dim * sizeof *v), 0);
        cr_assert_eq(qg_vec_decode(b.data, w, dim + 1, &e), QG_EINVAL);
        cr_assert(strstr(e.msg, "expected"), "%s", e.msg);
        qg_buf_free(&b);
    }
    /* 1.0f is 00 00 80 3f: "AACAPw==". */
    float one = 1.0f, got = 0;
    qg_buf b;
    qg_buf_init(&b, 64);
    cr_assert_eq(qg_vec_encode(&one, 1, &b), QG_OK);
    cr_assert_str_eq(b.data, "AACAPw==");
    qg_buf_free(&b);
    qg_error e = {0};
    cr_assert_eq(qg_vec_decode("AACAPw==", &got, 1, &e), QG_OK);
    cr_assert_eq(got, 1.0f);
    cr_assert_eq(qg_vec_decode("AAC!Pw==", &got, 1, &e), QG_EINVAL);
    cr_assert(strstr(e.msg, "not base64"), "%s", e.msg);
    cr_assert_eq(qg_vec_decode("AACAPw=", &got, 1, &e), QG_EINVAL);
    cr_assert(strstr(e.msg, "multiple of 4"), "%s", e.msg);
    cr_assert_eq(qg_vec_decode("AACAPx==", &got, 1, &e), QG_EINVAL); /* stray bits */
    cr_assert_eq(qg_vec_decode("AACA=w==", &got, 1, &e), QG_EINVAL);
    cr_assert_eq(qg_vec_decode("AADAfw==", &got, 1, &e), QG_EINVAL); /* NaN */
    cr_assert(strstr(e.msg, "not finite"), "%s", e.msg);
    cr_assert_eq(qg_vec_decode(NULL, &got, 1, &e), QG_EINVAL);
}

/* ---- flat ---- */

static int cmp_ref(const void *a, const void *b)
{
    const double *x = a, *y = b;
    return x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : (x[1] < y[1] ? -1 : x[1] > y[1]);
}

/* Brute-force top k (labels) in double precision, skipping items the filter refuses. */
static size_t brute(qg_vmetric m, const float *data, const bool *alive, size_t n, size_t dim,
                    const float *q, size_t k, qg_vfilter_fn f, void *ud, uint64_t *labels,
                    double *dists)
{
    double *all = malloc(n * 2 * sizeof *all);
    size_t c = 0;
    for (size_t i = 0; i < n; i++) {
        if (alive && !alive[i]) continue;
        if (f && !f(ud, i)) continue;
        all[2 * c] = ref_dist(m, q, data + i * dim, dim);
        all[2 * c + 1] = (double)i;
        c++;
    }
    qsort(all, c, 2 * sizeof *all, cmp_ref);
    if (k > c) k = c;
    for (size_t i = 0; i < k; i++) {
        labels[i] = (uint64_t)all[2 * i + 1];
        if (dists) dists[i] = all[2 * i];
    }
    free(all);
    return k;
}

static bool every_7th(void *ud, uint64_t label)
{
    (void)ud;
    return label % 7 == 3;
}

Test(vindex, flat_equals_brute_force_all_metrics)
{
    size_t n = 2000, dim = 24, k = 10;
    float *data = clustered(5, n, dim, 20);
    uint64_t s = 99;
    for (int m = 0; m < 3; m++) {
        qg_vindex *ix;
        qg_vindex_params p = {.kind = QG_VINDEX_FLAT, .metric = (qg_vmetric)m, .dim = dim};
        cr_assert_eq(qg_vindex_new(&p, &ix, NULL), QG_OK);
        for (size_t i = 0; i < n; i++)
            cr_assert_eq(qg_vindex_add(ix, i, data + i * dim, NULL), QG_OK);
        cr_assert_eq(qg_vindex_count(ix), n);
        for (int t = 0; t < 20; t++) {
            float q[24];
            rand_vec(&s, q, dim);
            qg_vhit hits[10];
            uint64_t want[10];
            double wd[10];
            size_t got = 0;
            bool filt = t % 2;
            cr_assert_eq(
                qg_vindex_search(ix, q, k, 0, filt ? every_7th : NULL, NULL, hits, &got, NULL),
                QG_OK);
            size_t nw = brute((qg_vmetric)m, data, NULL, n, dim, q, k, filt ? every_7th : NULL,
                              NULL, want, wd);
            cr_assert_eq(got, nw);
            for (size_t i = 0; i < got; i++) {
                cr_assert(fabs(hits[i].dist - wd[i]) < 1e-3 * (1 + fabs(wd[i])),
                          "metric %d rank %zu: %f vs %f", m, i, hits[i].dist, wd[i]);
                /* Ties aside, the same labels in the same order. */
                if (hits[i].label != want[i])
                    cr_assert(fabs(wd[i] - ref_dist((qg_vmetric)m, q, data + hits[i].label * dim,
                                                    dim)) < 1e-4);
                if (filt) cr_assert_eq(hits[i].label % 7, 3);
            }
        }
        qg_vindex_free(ix);
    }
    free(data);
}

Test(vindex, flat_remove_replace_contains)
{
    size_t dim = 4;
    qg_vindex *ix;
    qg_vindex_params p = {.kind = QG_VINDEX_FLAT, .metric = QG_VMETRIC_L2, .dim = dim};
    cr_assert_eq(qg_vindex_new(&p, &ix, NULL), QG_OK);
    for (uint64_t i = 0; i < 500; i++) {
        float v[4] = {(float)i, 0, 0, 0};
        cr_assert_eq(qg_vindex_add(ix, i * 1000003u, v, NULL), QG_OK);
    }
    for (uint64_t i = 0; i < 500; i += 2) cr_assert_eq(qg_vindex_remove(ix, i * 1000003u), QG_OK);
    cr_assert_eq(qg_vindex_remove(ix, 0), QG_ENOTFOUND);
    cr_assert_eq(qg_vindex_count(ix), 250);
    for (uint64_t i = 0; i < 500; i++)
        cr_assert_eq(qg_vindex_contains(ix, i * 1000003u), i % 2 == 1);
    float q[4] = {100, 0, 0, 0};
    qg_vhit h[3];
    size_t n;
    cr_assert_eq(qg_vindex_search(ix, q, 3, 0, NULL, NULL, h, &n, NULL), QG_OK);
    cr_assert_eq(n, 3);
    cr_assert_eq(h[0].label, 99 * 1000003u);
    cr_assert_eq(h[1].label, 101 * 1000003u);
    /* Replace moves label 7's vector next to the query. */
    float v[4] = {100.25f, 0, 0, 0};
    cr_assert_eq(qg_vindex_add(ix, 7 * 1000003u, v, NULL), QG_OK);
    cr_assert_eq(qg_vindex_count(ix), 250);
    cr_assert_eq(qg_vindex_search(ix, q, 3, 0, NULL, NULL, h, &n, NULL), QG_OK);
    cr_assert_eq(h[0].label, 7 * 1000003u);
    cr_assert_float_eq(h[0].dist, 0.0625f, 1e-6);
    /* k beyond the count gives every item. */
    qg_vhit all[300];
    cr_assert_eq(qg_vindex_search(ix, q, 300, 0, NULL, NULL, all, &n, NULL), QG_OK);
    cr_assert_eq(n, 250);
    for (size_t i = 1; i < n; i++) cr_assert(all[i - 1].dist <= all[i].dist);
    float bad[4] = {NAN, 0, 0, 0};
    qg_error e = {0};
    cr_assert_eq(qg_vindex_add(ix, 1, bad, &e), QG_EINVAL);
    cr_assert(strstr(e.msg, "not finite"), "%s", e.msg);
    qg_vindex_free(ix);
}

Test(vindex, params_are_checked)
{
    qg_vindex *ix;
    qg_error e = {0};
    qg_vindex_params p = {.kind = QG_VINDEX_FLAT, .metric = QG_VMETRIC_L2, .dim = 0};
    cr_assert_eq(qg_vindex_new(&p, &ix, &e), QG_EINVAL);
    cr_assert(strstr(e.msg, "dim"), "%s", e.msg);
    p.dim = 8;
    p.metric = (qg_vmetric)9;
    cr_assert_eq(qg_vindex_new(&p, &ix, &e), QG_EINVAL);
    cr_assert(strstr(e.msg, "metric"), "%s", e.msg);
    p.metric = QG_VMETRIC_DOT;
    p.M = 1;
    cr_assert_eq(qg_vindex_new(&p, &ix, &e), QG_EINVAL);
    cr_assert(strstr(e.msg, "M"), "%s", e.msg);
}

/* ---- HNSW ---- */

typedef struct hset {
    size_t n, dim;
    float *data;
    float *queries;
    size_t nq;
} hset;

static qg_vindex *build_hnsw(qg_vmetric m, const float *data, size_t n, size_t dim, int M, int efc,
                             uint64_t seed)
{
    qg_vindex *ix;
    qg_vindex_params p = {.kind = QG_VINDEX_HNSW,
                          .metric = m,
                          .dim = dim,
                          .M = M,
                          .ef_construction = efc,
                          .seed = seed};
    qg_error e = {0};
    cr_assert_eq(qg_vindex_new(&p, &ix, &e), QG_OK, "%s", e.msg);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(qg_vindex_add(ix, i, data + i * dim, &e), QG_OK, "%s", e.msg);
    return ix;
}

/* Mean recall@k of ix against brute force over nq queries. */
static double recall_at(qg_vindex *ix, qg_vmetric m, const float *data, const bool *alive, size_t n,
                        size_t dim, const float *qs, size_t nq, size_t k, int ef, qg_vfilter_fn f,
                        void *ud)
{
    size_t hit = 0, total = 0;
    qg_vhit *h = malloc(k * sizeof *h);
    uint64_t *want = malloc(k * sizeof *want);
    for (size_t t = 0; t < nq; t++) {
        const float *q = qs + t * dim;
        size_t got = 0;
        cr_assert_eq(qg_vindex_search(ix, q, k, ef, f, ud, h, &got, NULL), QG_OK);
        size_t nw = brute(m, data, alive, n, dim, q, k, f, ud, want, NULL);
        cr_assert_eq(got, nw, "query %zu: %zu results, %zu expected", t, got, nw);
        for (size_t i = 0; i < got; i++) {
            if (alive)
                cr_assert(alive[h[i].label], "removed label %llu returned",
                          (unsigned long long)h[i].label);
            if (f) cr_assert(f(ud, h[i].label));
            for (size_t j = 0; j < nw; j++)
                if (want[j] == h[i].label) {
                    hit++;
                    break;
                }
        }
        total += nw;
    }
    free(h);
    free(want);
    return total ? (double)hit / (double)total : 1.0;
}

/* ef_search 16 (not the default 64) so a weaker graph shows: about 0.985 here. */
Test(vindex, hnsw_recall_at_10, .timeout = 120)
{
    size_t n = 5000, dim = 32, nq = 100;
    float *all = clustered(42, n + nq, dim, 50);
    const float *qs = all + n * dim;
    for (int m = 0; m < 3; m++) {
        qg_vindex *ix = build_hnsw((qg_vmetric)m, all, n, dim, 16, 100, 1);
        cr_assert_eq(qg_vindex_count(ix), n);
        double r = recall_at(ix, (qg_vmetric)m, all, NULL, n, dim, qs, nq, 10, 16, NULL, NULL);
        cr_assert(r >= 0.95, "metric %s: recall@10 %.4f < 0.95", qg_vmetric_name((qg_vmetric)m), r);
        qg_vindex_free(ix);
    }
    free(all);
}

typedef struct modf {
    uint64_t mod, rem;
} modf_t;

static bool by_mod(void *ud, uint64_t label)
{
    const modf_t *m = ud;
    return label % m->mod == m->rem;
}

Test(vindex, hnsw_filters_fill_n, .timeout = 120)
{
    size_t n = 6000, dim = 32, nq = 60;
    float *all = clustered(43, n + nq, dim, 40);
    qg_vindex *ix = build_hnsw(QG_VMETRIC_L2, all, n, dim, 12, 80, 3);
    /* 1% of the items, then a half: only matching labels, and n filled. */
    modf_t narrow = {100, 17}, wide = {2, 1};
    double r1 =
        recall_at(ix, QG_VMETRIC_L2, all, NULL, n, dim, all + n * dim, nq, 10, 32, by_mod, &narrow);
    double r2 =
        recall_at(ix, QG_VMETRIC_L2, all, NULL, n, dim, all + n * dim, nq, 10, 64, by_mod, &wide);
    cr_assert(r1 >= 0.95, "narrow filter recall %.3f", r1);
    cr_assert(r2 >= 0.95, "wide filter recall %.3f", r2);
    /* A filter matching 3 items gives exactly those 3. */
    modf_t three = {2000, 5};
    qg_vhit h[10];
    size_t got;
    cr_assert_eq(qg_vindex_search(ix, all, 10, 0, by_mod, &three, h, &got, NULL), QG_OK);
    cr_assert_eq(got, 3);
    for (size_t i = 0; i < got; i++) cr_assert_eq(h[i].label % 2000, 5);
    qg_vindex_free(ix);
    free(all);
}

Test(vindex, hnsw_deletions_reuse_and_replace, .timeout = 120)
{
    size_t n = 4000, dim = 16, nq = 60;
    float *all = clustered(44, n + 600 + nq, dim, 30);
    const float *qs = all + (n + 600) * dim;
    float *data = malloc((n + 600) * dim * sizeof *data);
    memcpy(data, all, n * dim * sizeof *data);
    bool *alive = calloc(n + 600, sizeof *alive);
    qg_vindex *ix = build_hnsw(QG_VMETRIC_COSINE, all, n, dim, 16, 100, 9);
    for (size_t i = 0; i < n; i++) alive[i] = true;
    /* Remove a third, including whatever sits near the queries. */
    for (size_t i = 0; i < n; i += 3) {
        cr_assert_eq(qg_vindex_remove(ix, i), QG_OK);
        alive[i] = false;
    }
    cr_assert_eq(qg_vindex_remove(ix, 0), QG_ENOTFOUND);
    cr_assert(!qg_vindex_contains(ix, 3));
    size_t live = n - (n + 2) / 3;
    cr_assert_eq(qg_vindex_count(ix), live);
    double r =
        recall_at(ix, QG_VMETRIC_COSINE, data, alive, n + 600, dim, qs, nq, 10, 64, NULL, NULL);
    cr_assert(r >= 0.95, "recall after deletions %.3f", r);
    size_t mem = qg_vindex_memory(ix);
    /* New labels reuse the freed slots: memory does not grow. */
    for (size_t i = n; i < n + 600; i++) {
        memcpy(data + i * dim, all + i * dim, dim * sizeof *data);
        cr_assert_eq(qg_vindex_add(ix, i, all + i * dim, NULL), QG_OK);
        alive[i] = true;
    }
    cr_assert_eq(qg_vindex_memory(ix), mem);
    cr_assert_eq(qg_vindex_count(ix), live + 600);
    /* Replace 200 live vectors by others' vectors. */
    for (size_t i = 1; i < 600; i += 3) {
        size_t from = (i * 7 + 11) % n;
        memcpy(data + i * dim, all + from * dim, dim * sizeof *data);
        cr_assert_eq(qg_vindex_add(ix, i, all + from * dim, NULL), QG_OK);
    }
    cr_assert_eq(qg_vindex_count(ix), live + 600);
    r = recall_at(ix, QG_VMETRIC_COSINE, data, alive, n + 600, dim, qs, nq, 10, 64, NULL, NULL);
    cr_assert(r >= 0.95, "recall after reuse and replace %.3f", r);
    /* A replaced vector is found at distance ~0 from itself. */
    qg_vhit h[1];
    size_t got;
    cr_assert_eq(qg_vindex_search(ix, data + 4 * dim, 1, 0, NULL, NULL, h, &got, NULL), QG_OK);
    cr_assert_eq(got, 1);
    cr_assert(h[0].dist < 1e-5f, "dist %g", h[0].dist);
    /* Remove everything: searches return nothing, adds start again. */
    for (size_t i = 0; i < n + 600; i++)
        if (alive[i]) cr_assert_eq(qg_vindex_remove(ix, i), QG_OK);
    cr_assert_eq(qg_vindex_count(ix), 0);
    cr_assert_eq(qg_vindex_search(ix, qs, 5, 0, NULL, NULL, h, &got, NULL), QG_OK);
    cr_assert_eq(got, 0);
    cr_assert_eq(qg_vindex_add(ix, 77, qs, NULL), QG_OK);
    cr_assert_eq(qg_vindex_search(ix, qs, 5, 0, NULL, NULL, h, &got, NULL), QG_OK);
    cr_assert_eq(got, 1);
    cr_assert_eq(h[0].label, 77);
    qg_vindex_free(ix);
    free(alive);
    free(data);
    free(all);
}

/* ---- snapshots ---- */

static void tmp_path(char *buf, size_t n, const char *name)
{
    snprintf(buf, n, "%s/qg_vindex_%d_%s", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
             (int)getpid(), name);
}

static void same_results(qg_vindex *a, qg_vindex *b, const float *qs, size_t nq, size_t dim)
{
    for (size_t t = 0; t < nq; t++) {
        qg_vhit ha[10], hb[10];
        size_t na, nb;
        cr_assert_eq(qg_vindex_search(a, qs + t * dim, 10, 0, NULL, NULL, ha, &na, NULL), QG_OK);
        cr_assert_eq(qg_vindex_search(b, qs + t * dim, 10, 0, NULL, NULL, hb, &nb, NULL), QG_OK);
        cr_assert_eq(na, nb);
        for (size_t i = 0; i < na; i++) {
            cr_assert_eq(ha[i].label, hb[i].label);
            cr_assert_eq(ha[i].dist, hb[i].dist);
        }
    }
}

Test(vindex, snapshot_round_trip, .timeout = 60)
{
    size_t n = 1500, dim = 20, nq = 30;
    float *all = clustered(45, n + nq, dim, 10);
    char path[512];
    tmp_path(path, sizeof path, "rt.qgvx");
    for (int kind = 0; kind < 2; kind++) {
        qg_vindex *ix;
        qg_vindex_params p = {.kind = (qg_vindex_kind)kind,
                              .metric = QG_VMETRIC_DOT,
                              .dim = dim,
                              .M = 8,
                              .ef_construction = 50,
                              .seed = 5};
        cr_assert_eq(qg_vindex_new(&p, &ix, NULL), QG_OK);
        for (size_t i = 0; i < n; i++)
            cr_assert_eq(qg_vindex_add(ix, i * 3, all + i * dim, NULL), QG_OK);
        for (size_t i = 0; i < n; i += 5) cr_assert_eq(qg_vindex_remove(ix, i * 3), QG_OK);
        qg_error e = {0};
        cr_assert_eq(qg_vindex_save(ix, path, &e), QG_OK, "%s", e.msg);
        qg_vindex *back;
        cr_assert_eq(qg_vindex_load(path, &back, &e), QG_OK, "%s", e.msg);
        cr_assert_eq(qg_vindex_count(back), qg_vindex_count(ix));
        cr_assert_eq(qg_vindex_get_params(back)->M, 8);
        cr_assert_eq(qg_vindex_get_params(back)->kind, (qg_vindex_kind)kind);
        cr_assert(qg_vindex_contains(back, 3) && !qg_vindex_contains(back, 0));
        same_results(ix, back, all + n * dim, nq, dim);
        /* Both go on the same way: same adds, same results (levels continue). */
        for (size_t i = 0; i < 50; i++) {
            cr_assert_eq(qg_vindex_add(ix, 100000 + i, all + (n + i % nq) * dim, NULL), QG_OK);
            cr_assert_eq(qg_vindex_add(back, 100000 + i, all + (n + i % nq) * dim, NULL), QG_OK);
        }
        same_results(ix, back, all, nq, dim);
        qg_vindex_free(back);
        qg_vindex_free(ix);
    }
    unlink(path);
    qg_vindex *none;
    qg_error e = {0};
    cr_assert_eq(qg_vindex_load(path, &none, &e), QG_ENOTFOUND);
    free(all);
}

/* Adds items [from, to) of data, with a replaced and a removed item every
 * 97 so slots are reused and vectors change. */
/* The two-step save: until publish, path keeps the old snapshot; what is
 * published is the index as write_temp saw it, whatever changed after. */
Test(vindex, snapshot_in_two_steps_publishes_what_was_written, .timeout = 60)
{
    size_t n = 400, dim = 12;
    float *all = clustered(47, n + 10, dim, 6);
    char path[512], tmp[600];
    tmp_path(path, sizeof path, "two.qgvx");
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    qg_vindex *ix = build_hnsw(QG_VMETRIC_DOT, all, n / 2, dim, 8, 40, 3);
    qg_error e = {0};
    cr_assert_eq(qg_vindex_save(ix, path, &e), QG_OK, "%s", e.msg);
    for (size_t i = n / 2; i < n; i++)
        cr_assert_eq(qg_vindex_add(ix, i, all + i * dim, NULL), QG_OK);
    cr_assert_eq(qg_vindex_write_temp(ix, path, &e), QG_OK, "%s", e.msg);
    cr_assert_eq(access(tmp, F_OK), 0);
    qg_vindex *back;
    cr_assert_eq(qg_vindex_load(path, &back, &e), QG_OK, "%s", e.msg);
    cr_assert_eq(qg_vindex_count(back), n / 2, "the old snapshot until publish");
    qg_vindex_free(back);
    /* Changes after write_temp are not in what publish puts in place. */
    for (size_t i = 0; i < 10; i++)
        cr_assert_eq(qg_vindex_add(ix, 900000 + i, all + (n + i) * dim, NULL), QG_OK);
    cr_assert_eq(qg_vindex_publish_temp(path, &e), QG_OK, "%s", e.msg);
    cr_assert_eq(access(tmp, F_OK), -1, "the temporary file is renamed");
    cr_assert_eq(qg_vindex_load(path, &back, &e), QG_OK, "%s", e.msg);
    cr_assert_eq(qg_vindex_count(back), n);
    cr_assert(qg_vindex_contains(back, n - 1) && !qg_vindex_contains(back, 900000));
    qg_vindex_free(back);
    /* Publishing with nothing written fails, naming the file. */
    cr_assert_eq(qg_vindex_publish_temp(path, &e), QG_EIO);
    cr_assert(strstr(e.msg, path), "%s", e.msg);
    qg_vindex_free(ix);
    unlink(path);
    free(all);
}

static void add_range(qg_vindex *ix, const float *data, size_t dim, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++) {
        cr_assert_eq(qg_vindex_add(ix, i, data + i * dim, NULL), QG_OK);
        if (i % 97 == 96) {
            cr_assert_eq(qg_vindex_add(ix, i - 50, data + (i - 7) * dim, NULL), QG_OK);
            cr_assert_eq(qg_vindex_remove(ix, i - 20), QG_OK);
        }
    }
}

/* A full neighbour list the heuristic made is pruned incrementally
 * (hnsw.c prune_clean). The same adds with the full heuristic on every
 * prune (full_prune) must give the same links: dense
 * clusters with duplicates and M=4 make lists overflow on almost every
 * add. */
Test(vindex, hnsw_incremental_pruning_matches_the_full_heuristic, .timeout = 120)
{
    size_t n = 3000, dim = 16;
    float *data = clustered(47, n, dim, 3);
    for (size_t i = 4; i < n; i += 4) memcpy(data + i * dim, data + (i / 2) * dim, dim * 4);
    for (int m = 0; m < 3; m++) {
        qg_vindex_params p = {.kind = QG_VINDEX_HNSW,
                              .metric = (qg_vmetric)m,
                              .dim = dim,
                              .M = 4,
                              .ef_construction = 40,
                              .seed = 11};
        qg_vindex *a, *b;
        cr_assert_eq(qg_vindex_new(&p, &a, NULL), QG_OK);
        cr_assert_eq(qg_vindex_new(&p, &b, NULL), QG_OK);
        b->full_prune = true;
        add_range(a, data, dim, 0, n);
        add_range(b, data, dim, 0, n);
        /* The links (a row's tail past its count is not compared). */
        cr_assert_eq(a->n, b->n);
        cr_assert_eq(a->entry, b->entry);
        for (size_t i = 0; i < a->n; i++) {
            cr_assert_eq(a->levels[i], b->levels[i]);
            for (int l = 0; l <= a->levels[i]; l++) {
                const uint32_t *la = qg_vix_links(a, (uint32_t)i, l),
                               *lb = qg_vix_links(b, (uint32_t)i, l);
                cr_assert(la[0] == lb[0] && !memcmp(la + 1, lb + 1, la[0] * sizeof *la),
                          "metric %s: slot %zu level %d: the links differ",
                          qg_vmetric_name((qg_vmetric)m), i, l);
            }
        }
        qg_vindex_free(a);
        qg_vindex_free(b);
    }
    free(data);
}

static void write_bytes(const char *path, const unsigned char *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(b, 1, n, f), n);
    fclose(f);
}

Test(vindex, snapshot_corruption_is_refused, .timeout = 120)
{
    size_t n = 300, dim = 8;
    float *all = clustered(46, n, dim, 5);
    char path[512], bad[512];
    tmp_path(path, sizeof path, "good.qgvx");
    tmp_path(bad, sizeof bad, "bad.qgvx");
    qg_vindex *ix = build_hnsw(QG_VMETRIC_L2, all, n, dim, 4, 20, 2);
    cr_assert_eq(qg_vindex_remove(ix, 7), QG_OK);
    cr_assert_eq(qg_vindex_save(ix, path, NULL), QG_OK);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f);
    unsigned char *b = malloc(1 << 20);
    size_t len = fread(b, 1, 1 << 20, f);
    fclose(f);
    cr_assert(len > 1000 && len < (1 << 20));
    qg_vindex *out;
    qg_error e = {0};
    /* Every truncation is refused with a message. */
    for (size_t cut = 0; cut < len; cut += (cut < 200 ? 1 : 37)) {
        write_bytes(bad, b, cut);
        cr_assert_eq(qg_vindex_load(bad, &out, &e), QG_EINVAL, "cut at %zu", cut);
        cr_assert(strstr(e.msg, bad) && strlen(e.msg) > strlen(bad) + 4, "%s", e.msg);
        cr_assert_null(out);
    }
    /* Every single flipped byte is refused (the checksum, if nothing else). */
    for (size_t at = 0; at < len; at += (at < 200 ? 1 : 13)) {
        b[at] ^= 0x5a;
        write_bytes(bad, b, len);
        cr_assert_eq(qg_vindex_load(bad, &out, &e), QG_EINVAL, "flip at %zu", at);
        b[at] ^= 0x5a;
    }
    cr_assert_eq(qg_vindex_load(bad, &out, &e), QG_EINVAL);
    b[0] = 'X';
    write_bytes(bad, b, len);
    cr_assert_eq(qg_vindex_load(bad, &out, &e), QG_EINVAL);
    cr_assert(strstr(e.msg, "magic"), "%s", e.msg);
    b[0] = 'Q';
    b[4] = 9; /* version */
    write_bytes(bad, b, len);
    cr_assert_eq(qg_vindex_load(bad, &out, &e), QG_EINVAL);
    cr_assert(strstr(e.msg, "version 9"), "%s", e.msg);
    b[4] = 1;
    /* A link out of range is named even with a matching checksum: forge it. */
    write_bytes(bad, b, len);
    cr_assert_eq(qg_vindex_load(bad, &out, &e), QG_OK, "%s", e.msg);
    qg_vindex_free(out);
    b[len] = 0x01; /* trailing byte */
    write_bytes(bad, b, len + 1);
    cr_assert_eq(qg_vindex_load(bad, &out, &e), QG_EINVAL);
    cr_assert(strstr(e.msg, "trailing"), "%s", e.msg);
    unlink(bad);
    unlink(path);
    qg_vindex_free(ix);
    free(b);
    free(all);
}
