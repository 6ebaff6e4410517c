/*
 * test_chunk.c - the document chunkers (Markdown headings and fences, text
 * paragraphs, HTML stripping, code definitions with their comments, Pine
 * blocks), the size cap with line ranges, and the fingerprints: SHA-256
 * stable under whitespace and case, SimHash near for small edits and far
 * for unrelated text.
 */
#include <criterion/criterion.h>

#include "memory/chunk.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef QG_TEST_DATA
#define QG_TEST_DATA "tests/data"
#endif

static qg_arena arena;

static void setup(void)
{
    qg_arena_init(&arena, 1 << 16);
}

static void teardown(void)
{
    qg_arena_free(&arena);
}

static size_t chunk(qg_doc_format f, const char *text, size_t max, qg_chunk **out)
{
    size_t n = 0;
    qg_error err = {0};
    qg_status rc = qg_chunk_document(f, text, strlen(text), max, &arena, out, &n, &err);
    cr_assert_eq(rc, QG_OK, "%s", err.msg);
    return n;
}

static size_t chunk_file(const char *rel, qg_chunk **out)
{
    char path[512];
    snprintf(path, sizeof path, "%s/docs/%s", QG_TEST_DATA, rel);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    static char buf[1 << 16];
    size_t len = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[len] = '\0';
    qg_doc_format fmt;
    qg_error err = {0};
    cr_assert_eq(qg_doc_format_of(path, &fmt, &err), QG_OK, "%s", err.msg);
    return chunk(fmt, qg_arena_strndup(&arena, buf, len), 0, out);
}

static const qg_chunk *find_heading(qg_chunk *c, size_t n, const char *heading)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(c[i].heading, heading) == 0) return &c[i];
    cr_assert_fail("no chunk with heading '%s' among %zu", heading, n);
    return NULL;
}

TestSuite(chunk, .init = setup, .fini = teardown);

Test(chunk, format_by_extension)
{
    qg_doc_format f;
    qg_error err = {0};
    cr_assert_eq(qg_doc_format_of("a/b/Notes.MD", &f, &err), QG_OK);
    cr_assert_eq(f, QG_DOC_MARKDOWN);
    cr_assert_eq(qg_doc_format_of("x.htm", &f, &err), QG_OK);
    cr_assert_eq(f, QG_DOC_HTML);
    cr_assert_eq(qg_doc_format_of("ea.mqh", &f, &err), QG_OK);
    cr_assert_eq(f, QG_DOC_MQL5);
    cr_assert_eq(qg_doc_format_of("s.pine", &f, &err), QG_OK);
    cr_assert_eq(f, QG_DOC_PINE);
    cr_assert_eq(qg_doc_format_of("risk.h", &f, &err), QG_OK);
    cr_assert_eq(f, QG_DOC_C);
    cr_assert_eq(qg_doc_format_of("image.png", &f, &err), QG_EINVAL);
    cr_assert(strstr(err.msg, "image.png") && strstr(err.msg, ".png") && strstr(err.msg, ".md"),
              "%s", err.msg);
    cr_assert_eq(qg_doc_format_of("dir.md/README", &f, &err), QG_EINVAL);
    cr_assert(strstr(err.msg, "no extension"), "%s", err.msg);
}

Test(chunk, markdown_headings_paths_and_lines)
{
    qg_chunk *c;
    size_t n = chunk_file("mql5_reference.md", &c);
    cr_assert_eq(n, 6, "chunks: %zu", n);
    cr_assert_str_eq(c[0].heading, "MQL5 Reference Notes");
    cr_assert_eq(c[0].line_start, 1);
    cr_assert_eq(c[0].line_end, 4);
    const qg_chunk *k = find_heading(c, n, "MQL5 Reference Notes > Trade Functions > OrderSend");
    cr_assert_eq(k->line_start, 8);
    cr_assert_eq(k->line_end, 23);
    /* the '#' line inside the fence did not split the section */
    cr_assert(strstr(k->text, "# this line is inside a fence"));
    cr_assert(strstr(k->text, "TRADE_ACTION_DEAL"));
    k = find_heading(c, n, "MQL5 Reference Notes > Indicators > iATR");
    cr_assert_eq(k->line_start, 40);
    cr_assert_eq(k->line_end, 45);
    cr_assert(strncmp(k->text, "### iATR", 8) == 0);
    /* a heading with nothing but a sub-heading below is no chunk of its own */
    for (size_t i = 0; i < n; i++)
        cr_assert_str_neq(c[i].heading, "MQL5 Reference Notes > Indicators");
}

Test(chunk, markdown_setext_headings)
{
    qg_chunk *c;
    size_t n = chunk_file("team_guide.md", &c);
    cr_assert_eq(n, 4);
    cr_assert_str_eq(c[0].heading, "Team Guide");
    cr_assert_str_eq(c[1].heading, "Team Guide > Code Review");
    cr_assert_eq(c[1].line_start, 6);
    cr_assert_str_eq(c[2].heading, "Team Guide > Deployment Checklist");
    cr_assert_str_eq(c[3].heading, "Team Guide > On-call");
    cr_assert_eq(c[3].line_end, 23);
}

Test(chunk, text_paragraphs)
{
    qg_chunk *c;
    size_t n = chunk_file("pine_notes.txt", &c);
    cr_assert_eq(n, 4, "%zu", n);
    /* the short title line joined the first paragraph */
    cr_assert_eq(c[0].line_start, 1);
    cr_assert_eq(c[0].line_end, 5);
    cr_assert(strstr(c[0].text, "Pine Script notes"));
    cr_assert_eq(c[2].line_start, 11);
    cr_assert_eq(c[2].line_end, 13);
    cr_assert(strstr(c[2].text, "Repainting"));
    cr_assert_str_eq(c[2].heading, "");
}

Test(chunk, html_stripped_with_headings)
{
    qg_chunk *c;
    size_t n = chunk_file("broker_api.html", &c);
    const qg_chunk *k = find_heading(c, n, "Broker API > Authentication");
    cr_assert_eq(k->line_start, 17);
    cr_assert_eq(k->line_end, 20);
    cr_assert(strstr(k->text, "X-Api-Key"));
    cr_assert(strstr(k->text, "90 days \xE2\x80\x94 the old key"), "%s", k->text);
    k = find_heading(c, n, "Broker API > Order Types");
    cr_assert(strstr(k->text, "price <crosses> the stop"), "%s", k->text);
    k = find_heading(c, n, "Broker API > Order Types > Rejections");
    cr_assert_eq(k->line_start, 27);
    k = find_heading(c, n, "Broker API");
    cr_assert(strstr(k->text, "HTTPS & answers"), "%s", k->text);
    for (size_t i = 0; i < n; i++) {
        cr_assert_null(strstr(c[i].text, "<p"), "tag left in: %s", c[i].text);
        cr_assert_null(strstr(c[i].text, "</"), "tag left in: %s", c[i].text);
        cr_assert_null(strstr(c[i].text, "<code"), "tag left in: %s", c[i].text);
        cr_assert_null(strstr(c[i].text, "secretTracking"), "script content indexed");
        cr_assert_null(strstr(c[i].text, "font-family"), "style content indexed");
        cr_assert_null(strstr(c[i].text, "a comment"), "comment indexed");
    }
}

Test(chunk, html_entities_numeric)
{
    qg_chunk *c;
    size_t n = chunk(QG_DOC_HTML, "<p>caf&#233; &#x20AC;5 &bogus; a&lt;b</p>", 0, &c);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(c[0].text, "caf\xC3\xA9 \xE2\x82\xAC"
                                "5 &bogus; a<b");
}

Test(chunk, mql5_definitions_with_comments)
{
    qg_chunk *c;
    size_t n = chunk_file("src/expert.mq5", &c);
    cr_assert_eq(n, 4, "%zu", n);
    cr_assert_str_eq(c[0].heading, "(top level)");
    cr_assert(strstr(c[0].text, "#property copyright"));
    cr_assert(strstr(c[0].text, "int atr_handle"));
    const qg_chunk *k = find_heading(c, n, "void TrailStop()");
    /* the comment block above travels with the function */
    cr_assert_eq(k->line_start, 19);
    cr_assert_eq(k->line_end, 30);
    cr_assert(strncmp(k->text, "// Moves the stop loss", 22) == 0, "%s", k->text);
    k = find_heading(c, n, "int OnInit()");
    cr_assert_eq(k->line_start, 12);
    cr_assert_eq(k->line_end, 17);
    k = find_heading(c, n, "void OnTick()");
    cr_assert_eq(k->line_start, 32);
}

Test(chunk, c_structs_and_functions)
{
    qg_chunk *c;
    size_t n = chunk_file("src/risk.c", &c);
    const qg_chunk *k = find_heading(c, n, "struct risk_limits");
    cr_assert_eq(k->line_start, 8);
    cr_assert_eq(k->line_end, 11);
    k = find_heading(c, n,
                     "double position_size(double equity, double risk_pct, double stop_points, "
                     "double point_value)");
    cr_assert_eq(k->line_start, 15);
    cr_assert_eq(k->line_end, 22);
    cr_assert(strstr(k->text, "/* Lots to trade"));
    k = find_heading(c, n, "int may_open(const struct risk_limits *l)");
    cr_assert_eq(k->line_end, 28);
}

Test(chunk, braces_in_strings_and_comments_ignored)
{
    const char *src = "int a(void)\n{\n    const char *s = \"}}}\"; /* { */\n    return '{';\n}\n"
                      "\n"
                      "int b(void) { return 1; }\n";
    qg_chunk *c;
    size_t n = chunk(QG_DOC_C, src, 0, &c);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(c[0].heading, "int a(void)");
    cr_assert_eq(c[0].line_end, 5);
    cr_assert_str_eq(c[1].heading, "int b(void)");
    cr_assert_eq(c[1].line_start, 7);
}

Test(chunk, pine_blocks)
{
    qg_chunk *c;
    size_t n = chunk_file("pine/ict_levels.pine", &c);
    cr_assert_eq(n, 6, "%zu", n);
    cr_assert_str_eq(c[0].heading, "indicator(\"ICT levels\", overlay=true)");
    cr_assert_eq(c[0].line_start, 1);
    cr_assert_eq(c[0].line_end, 3);
    const qg_chunk *k = find_heading(c, n, "bullishFvg()");
    cr_assert_eq(k->line_start, 7);
    cr_assert_eq(k->line_end, 10);
    cr_assert(strstr(k->text, "low > high[2]"));
    k = find_heading(c, n, "bearishFvg()");
    cr_assert_eq(k->line_start, 12);
    cr_assert_eq(k->line_end, 12);
    k = find_heading(c, n, "type Level");
    cr_assert_eq(k->line_end, 16);
    cr_assert_str_eq(c[n - 1].heading, "(top level)");
    cr_assert(strstr(c[n - 1].text, "plotshape"));
}

Test(chunk, size_cap_splits_at_lines)
{
    /* 100 lines of 29 characters under one heading, cap 300. */
    static char doc[8192];
    size_t k = (size_t)snprintf(doc, sizeof doc, "# Big\n");
    for (int i = 0; i < 100; i++)
        k += (size_t)snprintf(doc + k, sizeof doc - k, "line %03d of the big section.\n", i);
    qg_chunk *c;
    size_t n = chunk(QG_DOC_MARKDOWN, doc, 300, &c);
    cr_assert_gt(n, 9);
    int expect = 1;
    for (size_t i = 0; i < n; i++) {
        cr_assert_leq(c[i].len, 300, "chunk %zu: %zu bytes", i, c[i].len);
        cr_assert_str_eq(c[i].heading, "Big");
        cr_assert_eq(c[i].line_start, expect, "chunk %zu starts at %d", i, c[i].line_start);
        cr_assert_eq(c[i].text[c[i].len - 1], '.');
        expect = c[i].line_end + 1;
    }
    cr_assert_eq(expect, 102);
}

Test(chunk, size_cap_cuts_a_long_line_at_utf8_boundaries)
{
    static char doc[4096];
    size_t k = 0;
    for (int i = 0; i < 500; i++) k += (size_t)snprintf(doc + k, sizeof doc - k, "\xC3\xA9");
    qg_chunk *c;
    size_t n = chunk(QG_DOC_TEXT, doc, 201, &c);
    cr_assert_eq(n, 5, "%zu", n);
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        cr_assert_leq(c[i].len, 201);
        cr_assert_eq(c[i].len % 2, 0, "cut inside a character");
        cr_assert_eq(c[i].line_start, 1);
        total += c[i].len;
    }
    cr_assert_eq(total, 1000);
    qg_error err = {0};
    size_t nn;
    cr_assert_eq(qg_chunk_document(QG_DOC_TEXT, "x", 1, 10, &arena, &c, &nn, &err), QG_EINVAL);
    cr_assert(strstr(err.msg, "200"), "%s", err.msg);
}

Test(chunk, empty_and_blank_documents)
{
    qg_chunk *c;
    cr_assert_eq(chunk(QG_DOC_MARKDOWN, "", 0, &c), 0);
    cr_assert_eq(chunk(QG_DOC_TEXT, "\n\n   \n", 0, &c), 0);
    cr_assert_eq(chunk(QG_DOC_C, "\n", 0, &c), 0);
    cr_assert_eq(chunk(QG_DOC_HTML, "<html><body></body></html>", 0, &c), 0);
}

Test(chunk, fingerprint_ignores_whitespace_and_case)
{
    char a[QG_FINGERPRINT_HEX], b[QG_FINGERPRINT_HEX], d[QG_FINGERPRINT_HEX];
    const char *t1 = "The ATR measures volatility.\nTraders place a trailing stop.";
    const char *t2 = "  the  ATR measures\tvolatility.   traders place a\r\n trailing STOP.\n\n";
    qg_chunk_fingerprint(t1, strlen(t1), a);
    qg_chunk_fingerprint(t2, strlen(t2), b);
    cr_assert_str_eq(a, b);
    cr_assert_eq(strlen(a), 64);
    const char *t3 = "The ATR measures volatility. Traders place a trailing stops.";
    qg_chunk_fingerprint(t3, strlen(t3), d);
    cr_assert_str_neq(a, d);
    /* SHA-256 of the normalised text: of "abc" is the well-known vector */
    qg_chunk_fingerprint(" ABC \n", 6, d);
    cr_assert_str_eq(d, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    qg_buf nb;
    qg_buf_init(&nb, 1024);
    cr_assert_eq(qg_chunk_normalize(t2, strlen(t2), &nb), QG_OK);
    cr_assert_str_eq(nb.data, "the atr measures volatility. traders place a trailing stop.");
    qg_buf_free(&nb);
}

Test(chunk, simhash_near_duplicates)
{
    const char *base =
        "OrderSend sends a trade request to the trade server. The request is a structure with "
        "the action, the symbol, the volume in lots, the price, the stop loss and take profit "
        "levels, the deviation in points and the filling policy. The result comes back in a "
        "structure whose retcode tells whether the server accepted the request. Always check "
        "the retcode, not only the return value of the call.";
    const char *edited =
        "OrderSend sends a trade request to the trade server. The request is a structure with "
        "the action, the symbol, the volume in lots, the price, the stop loss and take profit "
        "levels, the deviation in points and the filling policy. The result comes back in a "
        "structure whose retcode tells whether the server accepted the request. Always check "
        "the retcode, not only the return value of this call.";
    const char *other =
        "Pine Script runs the script once per bar, from the oldest bar to the newest. Variables "
        "are recalculated on every bar unless they are declared with var.";
    uint64_t h1 = qg_simhash(base, strlen(base));
    uint64_t h2 = qg_simhash(edited, strlen(edited));
    uint64_t h3 = qg_simhash(other, strlen(other));
    /* whitespace and case do not change it at all */
    const char *spaced = "ORDERSEND  sends a trade request";
    const char *plain = "ordersend sends a\ntrade request";
    cr_assert_eq(qg_simhash(spaced, strlen(spaced)), qg_simhash(plain, strlen(plain)));
    /* the same words under other markup and punctuation: a near-duplicate */
    const char *marked =
        "**OrderSend** sends a *trade request* to the trade server; the request is a structure "
        "with: the action - the symbol - the volume in lots - the price - the stop loss and take "
        "profit levels - the deviation in points and the filling policy! The result comes back "
        "in a structure whose `retcode` tells whether the server accepted the request... Always "
        "check the retcode (not only the return value of the call)";
    uint64_t hm = qg_simhash(marked, strlen(marked));
    cr_assert_leq(qg_simhash_distance(h1, hm), QG_SIMHASH_NEAR, "markup only: %d bits",
                  qg_simhash_distance(h1, hm));
    /* one word of 60 changed: close, though not always within the threshold */
    cr_assert_leq(qg_simhash_distance(h1, h2), 10, "one word changed: %d bits",
                  qg_simhash_distance(h1, h2));
    cr_assert_gt(qg_simhash_distance(h1, h3), 12, "unrelated: %d bits",
                 qg_simhash_distance(h1, h3));
    cr_assert_eq(qg_simhash("", 0), 0);
    cr_assert_eq(qg_simhash_distance(0, ~0ull), 64);
}
