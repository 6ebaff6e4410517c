/*
 * test_docs.c - the documents service on a real SQLite file in a temporary
 * directory: ingest of the sample documents, re-ingest unchanged (nothing
 * embedded), an edited section (only it embedded), a whitespace-only edit
 * (nothing embedded), a deleted file (its chunks gone from search), a
 * near-duplicate linked and re-homed when its canonical chunk goes, search
 * citations, a second service instance (another process) seeing changes
 * through the generation counter, uploads and their path checks.
 */
#include <criterion/criterion.h>

#include "memory/chunk.h"
#include "memory/docs.h"
#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef QG_TEST_DATA
#define QG_TEST_DATA "tests/data"
#endif

static char tmpdir[64];
static char docdir[128];
static qg_store *store;
static qg_docs *docs;
static qg_arena arena;

static void sh(const char *fmt, const char *arg)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, fmt, arg, arg);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
}

static qg_docs *open_docs(void)
{
    qg_docs *d = NULL;
    qg_error err = {0};
    qg_docs_config cfg = {.store = store};
    cr_assert_eq(qg_docs_open(&cfg, &d, &err), QG_OK, "%s", err.msg);
    return d;
}

static void setup(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/qg_docs_XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
    snprintf(docdir, sizeof docdir, "%s/docs", tmpdir);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "cp -r '%s/docs' '%s'", QG_TEST_DATA, docdir);
    cr_assert_eq(system(cmd), 0);
    char url[128];
    snprintf(url, sizeof url, "sqlite://%s/q.db", tmpdir);
    qg_error err = {0};
    cr_assert_eq(qg_store_open(url, 4, true, &store, &err), QG_OK, "%s", err.msg);
    docs = open_docs();
    qg_arena_init(&arena, 1 << 16);
}

static void teardown(void)
{
    qg_arena_free(&arena);
    qg_docs_free(docs);
    qg_store_close(store);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    cr_assert_eq(system(cmd), 0);
}

static qg_docs_counts ingest(const char *path)
{
    qg_docs_counts c = {0};
    qg_error err = {0};
    const char *paths[] = {path};
    cr_assert_eq(qg_docs_ingest_paths(docs, paths, 1, &c, &err), QG_OK, "%s", err.msg);
    return c;
}

static size_t search(qg_docs *d, const char *q, size_t n, qg_docs_hit **hits)
{
    size_t nh = 0;
    qg_error err = {0};
    cr_assert_eq(qg_docs_search(d, q, n, &arena, hits, &nh, &err), QG_OK, "%s", err.msg);
    return nh;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static void write_file(const char *rel, const char *text)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", docdir, rel);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "%s", path);
    fputs(text, f);
    fclose(f);
}

/* Replaces the first occurrence of from with to in docdir/rel. */
static void edit_file(const char *rel, const char *from, const char *to)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", docdir, rel);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f);
    static char buf[1 << 16], out[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *at = strstr(buf, from);
    cr_assert_not_null(at, "'%s' not in %s", from, rel);
    snprintf(out, sizeof out, "%.*s%s%s", (int)(at - buf), buf, to, at + strlen(from));
    write_file(rel, out);
}

TestSuite(docs, .init = setup, .fini = teardown, .timeout = 60);

Test(docs, ingest_reingest_edit_delete)
{
    qg_docs_counts c = ingest(docdir);
    cr_assert_eq(c.files_seen, 7);
    cr_assert_eq(c.files_changed, 7);
    cr_assert_eq(c.chunks_linked, 0);
    cr_assert_eq(c.chunks_added, 6 + 4 + 4 + 5 + 4 + 5 + 6, "added %lld",
                 (long long)c.chunks_added);
    cr_assert_eq(c.embedded, c.chunks_added);

    /* again: nothing changed, nothing embedded */
    c = ingest(docdir);
    cr_assert_eq(c.files_unchanged, 7);
    cr_assert_eq(c.files_changed, 0);
    cr_assert_eq(c.embedded, 0);

    /* one section edited: exactly that chunk embedded */
    edit_file("mql5_reference.md", "Averaging methods are simple,",
              "Averaging methods are simple, triangular,");
    c = ingest(docdir);
    cr_assert_eq(c.files_changed, 1);
    cr_assert_eq(c.files_unchanged, 6);
    cr_assert_eq(c.embedded, 1);
    cr_assert_eq(c.chunks_added, 1);
    cr_assert_eq(c.chunks_removed, 1);
    cr_assert_eq(c.chunks_kept, 5);

    /* whitespace and line wrapping only: the file changed, no chunk did */
    edit_file("team_guide.md", "Every change to a live strategy is reviewed by a second developer.",
              "Every  change to a live strategy\nis reviewed by a second developer.");
    c = ingest(docdir);
    cr_assert_eq(c.files_changed, 1);
    cr_assert_eq(c.embedded, 0);
    cr_assert_eq(c.chunks_kept, 4);

    /* the edited section is found with its new text, the old one is gone */
    qg_docs_hit *h;
    size_t n = search(docs, "moving average triangular averaging methods", 3, &h);
    cr_assert_geq(n, 1);
    cr_assert(ends_with(h[0].path, "/mql5_reference.md"), "%s", h[0].path);
    cr_assert_str_eq(h[0].heading, "MQL5 Reference Notes > Indicators > iMA");
    cr_assert(strstr(h[0].text, "triangular"));

    /* a deleted file: its chunks leave the index and search */
    n = search(docs, "position size equity risk percent stop points", 5, &h);
    cr_assert(ends_with(h[0].path, "/src/risk.c"), "%s", h[0].path);
    sh("rm '%s/docs/src/risk.c'", tmpdir);
    c = ingest(docdir);
    cr_assert_eq(c.files_removed, 1);
    cr_assert_eq(c.chunks_removed, 5);
    cr_assert_eq(c.embedded, 0);
    n = search(docs, "position size equity risk percent stop points", 50, &h);
    for (size_t i = 0; i < n; i++) cr_assert(!ends_with(h[i].path, "/risk.c"), "%s", h[i].path);

    qg_docs_file *files;
    size_t nf = 0;
    qg_error err = {0};
    cr_assert_eq(qg_docs_list(docs, &arena, &files, &nf, &err), QG_OK);
    cr_assert_eq(nf, 6);
}

Test(docs, search_citations_best_first)
{
    ingest(docdir);
    qg_docs_hit *h;
    size_t n =
        search(docs, "Average True Range volatility trailing stop multiple of the ATR", 5, &h);
    cr_assert_eq(n, 5);
    cr_assert(ends_with(h[0].path, "/mql5_reference.md"), "%s", h[0].path);
    cr_assert_str_eq(h[0].heading, "MQL5 Reference Notes > Indicators > iATR");
    cr_assert_eq(h[0].line_start, 40);
    cr_assert_eq(h[0].line_end, 45);
    for (size_t i = 1; i < n; i++) cr_assert_geq(h[i - 1].score, h[i].score);
    cr_assert_gt(h[0].score, 0.2f);
    cr_assert_leq(h[0].score, 1.0001f);

    n = search(docs, "API key header rotated every 90 days", 1, &h);
    cr_assert_eq(n, 1);
    cr_assert(ends_with(h[0].path, "/broker_api.html"));
    cr_assert_str_eq(h[0].heading, "Broker API > Authentication");
    cr_assert_eq(h[0].line_start, 17);

    n = search(docs, "fair value gap bullish low above high two bars ago", 1, &h);
    cr_assert(ends_with(h[0].path, "/ict_levels.pine"));
    cr_assert_str_eq(h[0].heading, "bullishFvg()");

    qg_error err = {0};
    size_t nn;
    cr_assert_eq(qg_docs_search(docs, "", 5, &arena, &h, &nn, &err), QG_EINVAL);
    cr_assert(strstr(err.msg, "q"));
    cr_assert_eq(qg_docs_search(docs, "x", 51, &arena, &h, &nn, &err), QG_EINVAL);
    cr_assert(strstr(err.msg, "n: 51"), "%s", err.msg);
}

Test(docs, near_duplicate_linked_then_rehomed)
{
    ingest(docdir);
    /* The iATR paragraph again, other markup and punctuation. */
    write_file("copy.md",
               "# Copied notes\n"
               "\n"
               "Some words of introduction that belong to no other document at all here.\n"
               "\n"
               "## ATR\n"
               "\n"
               "### iATR\n"
               "\n"
               "**iATR** returns a handle of the *Average True Range* indicator; the ATR measures\n"
               "volatility as the average of the true ranges over a period - traders place a\n"
               "trailing stop a multiple of the ATR away from the price, so the stop follows\n"
               "the market without being hit by ordinary noise!\n");
    qg_docs_counts c = ingest(docdir);
    cr_assert_eq(c.files_changed, 1);
    cr_assert_eq(c.chunks_linked, 1);
    cr_assert_eq(c.chunks_added, 1);
    cr_assert_eq(c.embedded, 1, "the duplicate is not embedded");

    qg_docs_hit *h;
    size_t n =
        search(docs, "Average True Range volatility trailing stop multiple of the ATR", 3, &h);
    cr_assert_geq(n, 1);
    cr_assert(ends_with(h[0].path, "/mql5_reference.md"), "cites the canonical chunk: %s",
              h[0].path);
    cr_assert_eq(h[0].ndups, 1);
    cr_assert(ends_with(h[0].dups[0].path, "/copy.md"), "%s", h[0].dups[0].path);
    cr_assert_eq(h[0].dups[0].line_start, 7);
    cr_assert_eq(h[0].dups[0].line_end, 12);
    for (size_t i = 1; i < n; i++)
        cr_assert(!ends_with(h[i].path, "/copy.md") || h[i].line_start != 7);

    /* the canonical file goes: the duplicate is embedded and takes its place */
    sh("rm '%s/docs/mql5_reference.md'", tmpdir);
    c = ingest(docdir);
    cr_assert_eq(c.files_removed, 1);
    cr_assert_eq(c.embedded, 1);
    n = search(docs, "Average True Range volatility trailing stop multiple of the ATR", 3, &h);
    cr_assert(ends_with(h[0].path, "/copy.md"), "%s", h[0].path);
    cr_assert_eq(h[0].line_start, 7);
    cr_assert_eq(h[0].ndups, 0);
}

Test(docs, another_instance_sees_changes)
{
    /* A second service on the same database: what a running server is to
     * a CLI ingest. */
    qg_docs *server = open_docs();
    qg_docs_hit *h;
    cr_assert_eq(search(server, "trailing stop", 5, &h), 0);
    ingest(docdir);
    size_t n = search(server, "API key header rotated every 90 days", 1, &h);
    cr_assert_eq(n, 1);
    cr_assert(ends_with(h[0].path, "/broker_api.html"));
    qg_error err = {0};
    char path[256];
    snprintf(path, sizeof path, "%s/broker_api.html", docdir);
    char real[4096];
    cr_assert_not_null(realpath(path, real));
    cr_assert_eq(qg_docs_remove(docs, real, NULL, &err), QG_OK, "%s", err.msg);
    n = search(server, "API key header rotated every 90 days", 3, &h);
    for (size_t i = 0; i < n; i++) cr_assert(!ends_with(h[i].path, "/broker_api.html"));
    cr_assert_eq(qg_docs_remove(docs, real, NULL, &err), QG_ENOTFOUND);
    cr_assert(strstr(err.msg, "broker_api.html"), "%s", err.msg);
    qg_docs_free(server);

    /* and a fresh open rebuilds the index from the database */
    qg_docs *again = open_docs();
    n = search(again, "fair value gap bullish low above high two bars ago", 1, &h);
    cr_assert(ends_with(h[0].path, "/ict_levels.pine"));
    qg_docs_free(again);
}

Test(docs, uploads_and_path_checks)
{
    const char *text = "# Desk rules\n\nNo trading on Fridays after the US close. Risk one "
                       "percent per trade at most.\n";
    qg_doc_upload up = {"team/rules.md", text, strlen(text)};
    qg_docs_counts c = {0};
    qg_error err = {0};
    cr_assert_eq(qg_docs_ingest_uploads(docs, &up, 1, NULL, &c, &err), QG_OK, "%s", err.msg);
    cr_assert_eq(c.chunks_added, 1);
    cr_assert_eq(c.embedded, 1);
    memset(&c, 0, sizeof c);
    cr_assert_eq(qg_docs_ingest_uploads(docs, &up, 1, NULL, &c, &err), QG_OK);
    cr_assert_eq(c.files_unchanged, 1);
    cr_assert_eq(c.embedded, 0);
    qg_docs_hit *h;
    size_t n = search(docs, "trading on Fridays", 1, &h);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(h[0].path, "team/rules.md");
    cr_assert_str_eq(h[0].heading, "Desk rules");

    static const char *bad[] = {"/etc/passwd.md", "../x.md",  "a/../../x.md",
                                "a//b.md",        "./a.md",   "",
                                "notes.exe",      "c:\\x.md", "~/x.md"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        qg_doc_upload b = {bad[i], "x", 1};
        cr_assert_eq(qg_docs_ingest_uploads(docs, &b, 1, NULL, &c, &err), QG_EINVAL, "%s", bad[i]);
        cr_assert(strstr(err.msg, "path") || strstr(err.msg, bad[i]), "%s", err.msg);
    }
    cr_assert_eq(qg_docs_remove(docs, "team/rules.md", NULL, &err), QG_OK);
    cr_assert_eq(search(docs, "trading on Fridays", 1, &h), 0);
}

Test(docs, named_paths)
{
    char path[256];
    qg_docs_counts c = {0};
    qg_error err = {0};
    snprintf(path, sizeof path, "%s/notes.bin", docdir);
    write_file("notes.bin", "binary");
    const char *p1[] = {path};
    cr_assert_eq(qg_docs_ingest_paths(docs, p1, 1, &c, &err), QG_EINVAL);
    cr_assert(strstr(err.msg, ".bin"), "%s", err.msg);
    /* inside a directory it is skipped and counted */
    c = ingest(docdir);
    cr_assert_eq(c.files_skipped, 1);
    /* a single file, then gone: named again, it is removed from the index */
    snprintf(path, sizeof path, "%s/team_guide.md", docdir);
    c = ingest(path);
    cr_assert_eq(c.files_unchanged, 1);
    sh("rm '%s/docs/team_guide.md'", tmpdir);
    c = ingest(path);
    cr_assert_eq(c.files_removed, 1);
    cr_assert_eq(qg_docs_ingest_paths(docs, p1 + 0, 0, &c, &err), QG_OK);
    const char *p2[] = {path};
    cr_assert_eq(qg_docs_ingest_paths(docs, p2, 1, &c, &err), QG_ENOTFOUND);
    cr_assert(strstr(err.msg, "team_guide.md"), "%s", err.msg);
}
