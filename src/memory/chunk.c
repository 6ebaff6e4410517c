/*
 * chunk.c - the chunkers of each document format, the size cap, and the
 * fingerprints (SHA-256 of normalised text, 64-bit SimHash).
 *
 * Every format is reduced to the same two things: a table of lines (slices
 * of the text, 1-based numbers equal to the file's) and a list of sections
 * (a heading and a range of lines). HTML is first stripped into a buffer
 * that keeps every newline, so its line numbers are still the file's. One
 * emitter then trims blank lines off a section's ends, applies the size cap
 * and computes the fingerprints, so the cap and the hashes behave the same
 * for every format.
 */
#include "memory/chunk.h"

#include <sodium.h>

#include <ctype.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#define TOP_LEVEL   "(top level)"
#define SIG_MAX     120 /* a definition's signature as its heading */
#define HEADING_LVL 6

const char *qg_doc_format_name(qg_doc_format f)
{
    switch (f) {
    case QG_DOC_MARKDOWN:
        return "markdown";
    case QG_DOC_TEXT:
        return "text";
    case QG_DOC_HTML:
        return "html";
    case QG_DOC_MQL5:
        return "mql5";
    case QG_DOC_PINE:
        return "pine";
    case QG_DOC_C:
        return "c";
    }
    return "text";
}

qg_status qg_doc_format_of(const char *path, qg_doc_format *out, qg_error *err)
{
    static const struct {
        const char *ext;
        qg_doc_format f;
    } exts[] = {
        {"md", QG_DOC_MARKDOWN}, {"markdown", QG_DOC_MARKDOWN},
        {"txt", QG_DOC_TEXT},    {"text", QG_DOC_TEXT},
        {"html", QG_DOC_HTML},   {"htm", QG_DOC_HTML},
        {"mq5", QG_DOC_MQL5},    {"mqh", QG_DOC_MQL5},
        {"mq4", QG_DOC_MQL5},    {"pine", QG_DOC_PINE},
        {"c", QG_DOC_C},         {"h", QG_DOC_C},
    };
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    const char *dot = strrchr(base, '.');
    if (dot && dot != base)
        for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++)
            if (strcasecmp(dot + 1, exts[i].ext) == 0) {
                *out = exts[i].f;
                return QG_OK;
            }
    return qg_error_set(err, QG_EINVAL,
                        "%s: unsupported document type '%s' (supported: .md .markdown .txt .text "
                        ".html .htm .mq5 .mqh .mq4 .pine .c .h)",
                        path, dot && dot != base ? dot : "(no extension)");
}

/* ------------------------------------------------------------ fingerprints */

static bool is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static unsigned char fold(unsigned char c)
{
    return c < 128 ? (unsigned char)tolower(c) : c;
}

qg_status qg_chunk_normalize(const char *text, size_t len, qg_buf *out)
{
    qg_buf_reset(out);
    bool pending_space = false;
    char tmp[256];
    size_t k = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (is_space(c)) {
            pending_space = out->len + k > 0;
            continue;
        }
        if (k + 2 > sizeof tmp) {
            qg_status rc = qg_buf_append(out, tmp, k);
            if (rc) return rc;
            k = 0;
        }
        if (pending_space) tmp[k++] = ' ';
        pending_space = false;
        tmp[k++] = (char)fold(c);
    }
    return k ? qg_buf_append(out, tmp, k) : QG_OK;
}

static void to_hex(const unsigned char *d, size_t n, char *hex)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        hex[2 * i] = digits[d[i] >> 4];
        hex[2 * i + 1] = digits[d[i] & 15];
    }
    hex[2 * n] = '\0';
}

void qg_sha256_hex(const void *data, size_t len, char hex[QG_FINGERPRINT_HEX])
{
    unsigned char d[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(d, data, len);
    to_hex(d, sizeof d, hex);
}

void qg_chunk_fingerprint(const char *text, size_t len, char hex[QG_FINGERPRINT_HEX])
{
    /* Normalising streams into the hash, so no copy of the text is made. */
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    unsigned char tmp[256];
    size_t k = 0;
    bool any = false, pending_space = false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (is_space(c)) {
            pending_space = any;
            continue;
        }
        if (k + 2 > sizeof tmp) {
            crypto_hash_sha256_update(&st, tmp, k);
            k = 0;
        }
        if (pending_space) tmp[k++] = ' ';
        pending_space = false;
        any = true;
        tmp[k++] = fold(c);
    }
    crypto_hash_sha256_update(&st, tmp, k);
    unsigned char d[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_final(&st, d);
    to_hex(d, sizeof d, hex);
}

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static bool is_word(unsigned char c)
{
    return isalnum(c) || c >= 0x80;
}

/* FNV-1a of a lower-cased word, finished by a mixer. */
static uint64_t word_hash(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= fold((unsigned char)s[i]);
        h *= 0x100000001b3ull;
    }
    return mix64(h);
}

static void simhash_add(int32_t v[64], uint64_t h)
{
    for (int b = 0; b < 64; b++) v[b] += (h >> b) & 1 ? 1 : -1;
}

uint64_t qg_simhash(const char *text, size_t len)
{
    int32_t v[64] = {0};
    uint64_t w[3] = {0};
    size_t nwords = 0;
    for (size_t i = 0; i < len;) {
        if (!is_word((unsigned char)text[i])) {
            i++;
            continue;
        }
        size_t j = i;
        while (j < len && is_word((unsigned char)text[j])) j++;
        w[0] = w[1];
        w[1] = w[2];
        w[2] = word_hash(text + i, j - i);
        nwords++;
        /* A shingle's hash depends on the order of its words. */
        if (nwords >= 3) simhash_add(v, mix64(w[0] * 3 + mix64(w[1] * 5 + mix64(w[2]))));
        i = j;
    }
    if (nwords == 0) return 0;
    if (nwords < 3) /* too short for a shingle: the words themselves */
        for (size_t k = 3 - nwords; k < 3; k++) simhash_add(v, w[k]);
    uint64_t out = 0;
    for (int b = 0; b < 64; b++)
        if (v[b] > 0) out |= 1ull << b;
    return out;
}

int qg_simhash_distance(uint64_t a, uint64_t b)
{
    return __builtin_popcountll(a ^ b);
}

/* ------------------------------------------------------------ lines, emit */

typedef struct text_line {
    const char *s;
    size_t n; /* without the newline and a trailing '\r' */
} text_line;

typedef struct chunker {
    qg_arena *a;
    size_t max;
    text_line *lines;
    size_t nlines;
    bool squeeze; /* HTML: lines trimmed, runs of blank lines kept as one */
    qg_chunk *out;
    size_t n, cap;
    qg_buf tmp;
} chunker;

static bool line_blank(const text_line *l)
{
    for (size_t i = 0; i < l->n; i++)
        if (!is_space((unsigned char)l->s[i])) return false;
    return true;
}

static void split_lines(chunker *c, const char *text, size_t len)
{
    size_t cap = 1;
    for (size_t i = 0; i < len; i++) cap += text[i] == '\n';
    c->lines = qg_arena_alloc(c->a, cap * sizeof *c->lines);
    size_t n = 0, start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && text[i] != '\n') continue;
        if (i == len && start == len && n > 0) break; /* text ending with a newline */
        text_line l = {text + start, i - start};
        if (l.n && l.s[l.n - 1] == '\r') l.n--;
        if (c->squeeze) {
            while (l.n && is_space((unsigned char)l.s[0])) l.s++, l.n--;
            while (l.n && is_space((unsigned char)l.s[l.n - 1])) l.n--;
        }
        c->lines[n++] = l;
        start = i + 1;
    }
    c->nlines = n;
}

static void push_chunk(chunker *c, const char *heading, const char *text, size_t len, size_t first,
                       size_t last)
{
    if (c->n == c->cap) {
        size_t ncap = c->cap ? c->cap * 2 : 16;
        qg_chunk *p = qg_arena_alloc(c->a, ncap * sizeof *p);
        if (c->n) memcpy(p, c->out, c->n * sizeof *p);
        c->out = p;
        c->cap = ncap;
    }
    qg_chunk *k = &c->out[c->n++];
    memset(k, 0, sizeof *k);
    k->heading = heading;
    k->text = qg_arena_strndup(c->a, text, len);
    k->len = len;
    k->line_start = (int)first + 1;
    k->line_end = (int)last + 1;
    qg_chunk_fingerprint(text, len, k->fingerprint);
    k->simhash = qg_simhash(text, len);
}

/* Joins lines [from, to] (blank ends already trimmed) into one chunk. */
static qg_status emit_piece(chunker *c, const char *heading, size_t from, size_t to)
{
    qg_buf_reset(&c->tmp);
    bool prev_blank = false;
    qg_status rc;
    for (size_t i = from; i <= to; i++) {
        bool blank = line_blank(&c->lines[i]);
        if (c->squeeze && blank && prev_blank) continue;
        prev_blank = blank;
        if (c->tmp.len && (rc = qg_buf_append(&c->tmp, "\n", 1))) return rc;
        if (c->lines[i].n && (rc = qg_buf_append(&c->tmp, c->lines[i].s, c->lines[i].n))) return rc;
    }
    push_chunk(c, heading, c->tmp.data ? c->tmp.data : "", c->tmp.len, from, to);
    return QG_OK;
}

/* How many bytes of s (n long) fit in max without cutting a UTF-8
 * character. */
static size_t utf8_cut(const char *s, size_t n, size_t max)
{
    if (n <= max) return n;
    size_t k = max;
    while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80) k--;
    return k ? k : max;
}

/* A section's lines [from, to]: blank ends trimmed, split under the cap. */
static qg_status emit_section(chunker *c, const char *heading, size_t from, size_t to)
{
    if (c->nlines == 0) return QG_OK;
    if (to >= c->nlines) to = c->nlines - 1;
    while (from <= to && line_blank(&c->lines[from])) from++;
    while (to > from && line_blank(&c->lines[to])) to--;
    if (from > to) return QG_OK;
    qg_status rc = QG_OK;
    size_t i = from;
    while (i <= to) {
        while (i <= to && line_blank(&c->lines[i])) i++;
        if (i > to) break;
        const text_line *l = &c->lines[i];
        if (l->n > c->max) {
            /* One line longer than the cap: cut it in pieces. */
            for (size_t off = 0; off < l->n;) {
                size_t k = utf8_cut(l->s + off, l->n - off, c->max);
                push_chunk(c, heading, l->s + off, k, i, i);
                off += k;
            }
            i++;
            continue;
        }
        size_t used = 0, j = i, last_blank = 0;
        bool have_blank = false;
        while (j <= to && used + c->lines[j].n + (j > i) <= c->max) {
            used += c->lines[j].n + (j > i);
            if (j > i && line_blank(&c->lines[j]) && used >= c->max / 2) {
                last_blank = j;
                have_blank = true;
            }
            j++;
        }
        size_t end = j - 1; /* the last line that fits */
        if (j <= to && have_blank) end = last_blank - 1;
        while (end > i && line_blank(&c->lines[end])) end--;
        if ((rc = emit_piece(c, heading, i, end))) return rc;
        i = end + 1;
    }
    return rc;
}

/* Whitespace runs collapsed to one space, ends trimmed, capped: a copy in
 * the arena. */
static const char *collapse(chunker *c, const char *s, size_t n, size_t cap)
{
    char *t = qg_arena_alloc(c->a, n + 1);
    size_t tn = 0;
    bool sp = false;
    for (size_t i = 0; i < n; i++) {
        if (is_space((unsigned char)s[i])) {
            sp = tn > 0;
            continue;
        }
        if (sp) t[tn++] = ' ';
        sp = false;
        t[tn++] = s[i];
    }
    if (tn > cap) tn = utf8_cut(t, tn, cap);
    t[tn] = '\0';
    return t;
}

/* --------------------------------------------------------------- headings */

typedef struct heading_stack {
    const char *level[HEADING_LVL]; /* NULL: not set */
} heading_stack;

/* Sets level lvl (1..6) to text, clears deeper levels, returns the path
 * "A > B > C" (levels never set are skipped). */
static const char *heading_push(chunker *c, heading_stack *hs, int lvl, const char *text, size_t n)
{
    hs->level[lvl - 1] = collapse(c, text, n, QG_CHUNK_HEADING_MAX);
    for (int i = lvl; i < HEADING_LVL; i++) hs->level[i] = NULL;
    qg_buf_reset(&c->tmp);
    for (int i = 0; i < lvl; i++) {
        if (!hs->level[i] || !hs->level[i][0]) continue;
        if (c->tmp.len) qg_buf_puts(&c->tmp, " > ");
        qg_buf_puts(&c->tmp, hs->level[i]);
    }
    return qg_arena_strndup(c->a, c->tmp.data ? c->tmp.data : "", c->tmp.len);
}

/* ---------------------------------------------------------------- markdown */

/* A fence opener/closer: ``` or ~~~ (3 or more) after at most 3 spaces. */
static bool md_fence(const text_line *l, char *ch, size_t *len)
{
    size_t i = 0;
    while (i < l->n && i < 3 && l->s[i] == ' ') i++;
    if (i >= l->n || (l->s[i] != '`' && l->s[i] != '~')) return false;
    char f = l->s[i];
    size_t k = 0;
    while (i + k < l->n && l->s[i + k] == f) k++;
    if (k < 3) return false;
    *ch = f;
    *len = k;
    return true;
}

/* "## Title ##" -> level 2, text "Title"; 0 when not an ATX heading. */
static int md_atx(const text_line *l, const char **text, size_t *n)
{
    size_t i = 0;
    while (i < l->n && i < 3 && l->s[i] == ' ') i++;
    size_t h = 0;
    while (i + h < l->n && l->s[i + h] == '#') h++;
    if (h < 1 || h > 6) return 0;
    size_t p = i + h;
    if (p < l->n && l->s[p] != ' ' && l->s[p] != '\t') return 0;
    const char *s = l->s + p;
    size_t k = l->n - p;
    while (k && is_space((unsigned char)s[k - 1])) k--;
    while (k && s[k - 1] == '#') k--; /* the closing sequence */
    *text = s;
    *n = k;
    return (int)h;
}

/* A setext underline: only '=' (level 1) or '-' (level 2), two or more. */
static int md_setext(const text_line *l)
{
    size_t i = 0;
    while (i < l->n && i < 3 && l->s[i] == ' ') i++;
    if (i >= l->n || (l->s[i] != '=' && l->s[i] != '-')) return 0;
    char ch = l->s[i];
    size_t k = 0;
    for (; i < l->n; i++) {
        if (l->s[i] == ch)
            k++;
        else if (!is_space((unsigned char)l->s[i]))
            return 0;
    }
    return k >= 2 ? (ch == '=' ? 1 : 2) : 0;
}

/* Emits the section [start, end] unless it holds nothing but its heading
 * (hlines lines: a heading right above a sub-heading). */
static qg_status md_section(chunker *c, const char *heading, size_t start, size_t hlines,
                            size_t end)
{
    for (size_t i = start + hlines; i <= end && i < c->nlines; i++)
        if (!line_blank(&c->lines[i])) return emit_section(c, heading, start, end);
    return QG_OK;
}

static qg_status chunk_markdown(chunker *c)
{
    heading_stack hs = {0};
    const char *heading = "";
    size_t start = 0, hlines = 0;
    bool in_fence = false;
    char fch = 0;
    size_t flen = 0;
    qg_status rc = QG_OK;
    for (size_t i = 0; i < c->nlines && !rc; i++) {
        const text_line *l = &c->lines[i];
        char ch;
        size_t len;
        if (md_fence(l, &ch, &len)) {
            if (!in_fence) {
                in_fence = true;
                fch = ch;
                flen = len;
            } else if (ch == fch && len >= flen) {
                in_fence = false;
            }
            continue;
        }
        if (in_fence) continue;
        const char *t;
        size_t tn;
        int lvl = md_atx(l, &t, &tn);
        if (lvl) {
            if (i > start) rc = md_section(c, heading, start, hlines, i - 1);
            heading = heading_push(c, &hs, lvl, t, tn);
            start = i;
            hlines = 1;
            continue;
        }
        /* Setext: the underline below a one-line paragraph. */
        if (i >= 1 && i - 1 >= start && (lvl = md_setext(l)) && !line_blank(&c->lines[i - 1]) &&
            (i == 1 || i - 1 == start || line_blank(&c->lines[i - 2])) &&
            !md_atx(&c->lines[i - 1], &t, &tn) && !md_fence(&c->lines[i - 1], &ch, &len)) {
            if (i - 1 > start) rc = md_section(c, heading, start, hlines, i - 2);
            heading = heading_push(c, &hs, lvl, c->lines[i - 1].s, c->lines[i - 1].n);
            start = i - 1;
            hlines = 2;
        }
    }
    if (!rc) rc = md_section(c, heading, start, hlines, c->nlines ? c->nlines - 1 : 0);
    return rc;
}

/* -------------------------------------------------------------------- text */

static qg_status chunk_text(chunker *c)
{
    qg_status rc = QG_OK;
    size_t i = 0;
    while (i < c->nlines && !rc) {
        while (i < c->nlines && line_blank(&c->lines[i])) i++;
        if (i >= c->nlines) break;
        size_t start = i, chars = 0;
        /* A paragraph; a short one (a title line) joins the next. */
        for (;;) {
            while (i < c->nlines && !line_blank(&c->lines[i])) chars += c->lines[i++].n + 1;
            if (chars >= QG_CHUNK_SHORT || i >= c->nlines) break;
            size_t k = i;
            while (k < c->nlines && line_blank(&c->lines[k])) k++;
            if (k >= c->nlines) break;
            i = k;
        }
        rc = emit_section(c, "", start, i - 1);
    }
    return rc;
}

/* -------------------------------------------------------------------- HTML */

typedef struct html_heading {
    int level;
    size_t lineno; /* 0-based */
    const char *text;
} html_heading;

static size_t put_utf8(char *o, unsigned long cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Decodes the entity at s (s[0] == '&') into o; returns the bytes consumed,
 * 0 for an entity we do not know (the '&' is then copied). The decoded text
 * is never longer than the entity. */
static size_t html_entity(const char *s, size_t n, char *o, size_t *olen)
{
    static const struct {
        const char *name;
        const char *text;
    } named[] = {
        {"amp;", "&"},
        {"lt;", "<"},
        {"gt;", ">"},
        {"quot;", "\""},
        {"apos;", "'"},
        {"nbsp;", " "},
        {"copy;", "\xC2\xA9"},
        {"mdash;", "\xE2\x80\x94"},
        {"ndash;", "\xE2\x80\x93"},
        {"hellip;", "\xE2\x80\xA6"},
    };
    for (size_t i = 0; i < sizeof named / sizeof named[0]; i++) {
        size_t k = strlen(named[i].name);
        if (n > k && strncmp(s + 1, named[i].name, k) == 0) {
            *olen = strlen(named[i].text);
            memcpy(o, named[i].text, *olen);
            return k + 1;
        }
    }
    if (n > 3 && s[1] == '#') {
        size_t i = 2;
        bool hex = s[i] == 'x' || s[i] == 'X';
        if (hex) i++;
        unsigned long cp = 0;
        size_t digits = 0;
        while (i < n && digits < 7 &&
               (hex ? isxdigit((unsigned char)s[i]) : isdigit((unsigned char)s[i]))) {
            int d = isdigit((unsigned char)s[i]) ? s[i] - '0' : tolower(s[i]) - 'a' + 10;
            cp = cp * (hex ? 16 : 10) + (unsigned long)d;
            i++, digits++;
        }
        if (digits && i < n && s[i] == ';' && cp > 0 && cp <= 0x10FFFF &&
            !(cp >= 0xD800 && cp <= 0xDFFF)) {
            size_t k = put_utf8(o, cp);
            if (k > i + 1) return 0;
            *olen = k;
            return i + 1;
        }
    }
    return 0;
}

/* Copies the newlines of s[from, to) to o, so line numbers survive. */
static size_t keep_newlines(const char *s, size_t from, size_t to, char *o, size_t *lineno)
{
    size_t k = 0;
    for (size_t i = from; i < to; i++)
        if (s[i] == '\n') o[k++] = '\n', (*lineno)++;
    return k;
}

static const char *ci_find(const char *s, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = 0; i + k <= n; i++)
        if (strncasecmp(s + i, needle, k) == 0) return s + i;
    return NULL;
}

static void add_heading(chunker *c, html_heading **hd, size_t *nhd, size_t *cap, html_heading h)
{
    if (*nhd == *cap) {
        size_t ncap = *cap ? *cap * 2 : 16;
        html_heading *p = qg_arena_alloc(c->a, ncap * sizeof *p);
        if (*nhd) memcpy(p, *hd, *nhd * sizeof *p);
        *hd = p;
        *cap = ncap;
    }
    (*hd)[(*nhd)++] = h;
}

/* Strips tags into *out (every newline kept; each tag leaves one space so
 * the words around it stay apart, which never makes the text longer) and
 * collects the h1-h6 headings. */
static void html_strip(chunker *c, const char *s, size_t n, char **out, size_t *out_len,
                       html_heading **hd, size_t *nhd)
{
    char *o = qg_arena_alloc(c->a, n + 1);
    size_t k = 0, lineno = 0, hcap = 0;
    int open_level = 0; /* inside <hN> */
    size_t open_pos = 0, open_line = 0;
    *hd = NULL;
    *nhd = 0;
    for (size_t i = 0; i < n;) {
        char ch = s[i];
        if (ch == '&') {
            size_t olen = 0;
            size_t used = html_entity(s + i, n - i, o + k, &olen);
            if (used) {
                k += olen;
                i += used;
            } else {
                o[k++] = ch;
                i++;
            }
            continue;
        }
        bool tag = ch == '<' && i + 1 < n &&
                   (isalpha((unsigned char)s[i + 1]) || s[i + 1] == '/' || s[i + 1] == '!');
        if (!tag) {
            if (ch == '\n') lineno++;
            o[k++] = ch;
            i++;
            continue;
        }
        if (n - i >= 4 && strncmp(s + i, "<!--", 4) == 0) {
            const char *e = ci_find(s + i + 4, n - i - 4, "-->");
            size_t end = e ? (size_t)(e - s) + 3 : n;
            k += keep_newlines(s, i, end, o + k, &lineno);
            i = end;
            continue;
        }
        /* The tag: its name, then everything to '>' outside quotes. */
        size_t j = i + 1;
        bool closing = s[j] == '/';
        if (closing) j++;
        size_t name_at = j;
        while (j < n && isalnum((unsigned char)s[j])) j++;
        size_t name_len = j - name_at;
        char q = 0;
        while (j < n && (q || s[j] != '>')) {
            if (q && s[j] == q)
                q = 0;
            else if (!q && (s[j] == '"' || s[j] == '\''))
                q = s[j];
            j++;
        }
        size_t end = j < n ? j + 1 : n;
        k += keep_newlines(s, i, end, o + k, &lineno);
        o[k++] = ' ';
        const char *name = s + name_at;
        if (!closing && ((name_len == 6 && strncasecmp(name, "script", 6) == 0) ||
                         (name_len == 5 && strncasecmp(name, "style", 5) == 0))) {
            /* Their content is code, not text. */
            const char *close = ci_find(s + end, n - end, name_len == 6 ? "</script" : "</style");
            size_t stop = close ? (size_t)(close - s) : n;
            k += keep_newlines(s, end, stop, o + k, &lineno);
            i = stop;
            continue;
        }
        if (name_len == 2 && (name[0] == 'h' || name[0] == 'H') && name[1] >= '1' &&
            name[1] <= '6') {
            if (!closing) {
                open_level = name[1] - '0';
                open_pos = k;
                open_line = lineno;
            } else if (open_level) {
                html_heading h = {open_level, open_line,
                                  collapse(c, o + open_pos, k - open_pos, QG_CHUNK_HEADING_MAX)};
                add_heading(c, hd, nhd, &hcap, h);
                open_level = 0;
            }
        }
        i = end;
    }
    o[k] = '\0';
    *out = o;
    *out_len = k;
}

static qg_status chunk_html(chunker *c, const char *text, size_t len)
{
    char *stripped;
    size_t slen, nhd;
    html_heading *hd;
    html_strip(c, text, len, &stripped, &slen, &hd, &nhd);
    split_lines(c, stripped, slen);
    heading_stack hs = {0};
    const char *heading = "";
    size_t start = 0;
    qg_status rc = QG_OK;
    for (size_t h = 0; h < nhd && !rc; h++) {
        size_t at = hd[h].lineno;
        if (at > start) {
            rc = emit_section(c, heading, start, at - 1);
            start = at;
        }
        heading = heading_push(c, &hs, hd[h].level, hd[h].text, strlen(hd[h].text));
    }
    if (!rc) rc = emit_section(c, heading, start, c->nlines ? c->nlines - 1 : 0);
    return rc;
}

/* ------------------------------------------------- code: C and MQL5 (braces) */

typedef struct code_line {
    int depth;         /* brace depth at the start of the line */
    bool in_comment;   /* starts inside a block comment */
    bool comment_only; /* nothing but comments (and not blank) */
    bool preproc;      /* starts with '#' at depth 0 */
    int first_event;   /* at depth 0: 1 a '{' opened, 2 a ';' ended a statement, 0 none */
    bool back_to_zero; /* the depth went from 1 to 0 on this line */
} code_line;

static void scan_braces(chunker *c, code_line *cl)
{
    int depth = 0, paren = 0;
    bool block = false;
    for (size_t li = 0; li < c->nlines; li++) {
        const text_line *l = &c->lines[li];
        code_line *x = &cl[li];
        memset(x, 0, sizeof *x);
        x->depth = depth;
        x->in_comment = block;
        bool code = false;
        size_t first = 0;
        while (first < l->n && is_space((unsigned char)l->s[first])) first++;
        x->preproc = !block && depth == 0 && first < l->n && l->s[first] == '#';
        for (size_t i = 0; i < l->n; i++) {
            char ch = l->s[i];
            if (block) {
                if (ch == '*' && i + 1 < l->n && l->s[i + 1] == '/') block = false, i++;
                continue;
            }
            if (ch == '/' && i + 1 < l->n && l->s[i + 1] == '/') break;
            if (ch == '/' && i + 1 < l->n && l->s[i + 1] == '*') {
                block = true;
                i++;
                continue;
            }
            if (is_space((unsigned char)ch)) continue;
            code = true;
            if (ch == '"' || ch == '\'') {
                for (i++; i < l->n && l->s[i] != ch; i++)
                    if (l->s[i] == '\\') i++;
                continue;
            }
            if (x->preproc) continue;
            if (ch == '(') paren++;
            if (ch == ')' && paren > 0) paren--;
            if (ch == '{') {
                if (depth == 0 && !x->first_event) x->first_event = 1;
                depth++;
            } else if (ch == '}' && depth > 0) {
                if (--depth == 0) x->back_to_zero = true;
            } else if (ch == ';' && depth == 0 && paren == 0 && !x->first_event) {
                x->first_event = 2;
            }
        }
        x->comment_only = !code && !line_blank(l);
    }
}

/* A definition's signature from lines [from, to]: the text before stop
 * (and before a // comment), whitespace collapsed. */
static const char *signature(chunker *c, size_t from, size_t to, const char *stop)
{
    qg_buf_reset(&c->tmp);
    for (size_t i = from; i <= to && i < c->nlines; i++) {
        if (c->tmp.len) qg_buf_append(&c->tmp, " ", 1);
        qg_buf_append(&c->tmp, c->lines[i].s, c->lines[i].n);
    }
    const char *s = c->tmp.data ? c->tmp.data : "";
    size_t n = c->tmp.len;
    const char *cut = stop ? strstr(s, stop) : NULL;
    if (cut) n = (size_t)(cut - s);
    const char *cm = strstr(s, "//");
    if (cm && (size_t)(cm - s) < n) n = (size_t)(cm - s);
    return collapse(c, s, n, SIG_MAX);
}

static qg_status chunk_braces(chunker *c)
{
    code_line *cl = qg_arena_alloc(c->a, (c->nlines + 1) * sizeof *cl);
    scan_braces(c, cl);
    qg_status rc = QG_OK;
    size_t loose = 0;  /* first line not yet in a chunk */
    long comment = -1; /* first line of the comment block just above, or -1 */
    size_t i = 0;
    while (i < c->nlines && !rc) {
        const code_line *x = &cl[i];
        if (x->depth != 0) { /* inside an unbalanced block: loose text */
            i++;
            continue;
        }
        if (line_blank(&c->lines[i])) {
            comment = -1;
            i++;
            continue;
        }
        if (x->in_comment || x->comment_only) {
            if (comment < 0) comment = (long)i;
            i++;
            continue;
        }
        if (x->preproc) {
            comment = -1;
            while (i < c->nlines && c->lines[i].n && c->lines[i].s[c->lines[i].n - 1] == '\\') i++;
            i++;
            continue;
        }
        /* A statement starts here: its first event at depth 0 says what it is. */
        size_t j = i;
        while (j < c->nlines && !cl[j].first_event && !(j > i && cl[j].preproc)) j++;
        if (j >= c->nlines || cl[j].first_event != 1) {
            comment = -1;
            i = j < c->nlines && cl[j].first_event == 2 ? j + 1 : (j > i ? j : i + 1);
            continue;
        }
        /* A definition, to the line where the depth is back to 0. */
        size_t k = j;
        while (k < c->nlines && !cl[k].back_to_zero) k++;
        if (k >= c->nlines) k = c->nlines - 1;
        size_t def_start = comment >= 0 ? (size_t)comment : i;
        if (def_start > loose) rc = emit_section(c, TOP_LEVEL, loose, def_start - 1);
        if (!rc) rc = emit_section(c, signature(c, i, j, "{"), def_start, k);
        loose = k + 1;
        comment = -1;
        i = k + 1;
    }
    if (!rc && loose < c->nlines) rc = emit_section(c, TOP_LEVEL, loose, c->nlines - 1);
    return rc;
}

/* ------------------------------------------------------------- code: Pine */

static bool starts_with(const text_line *l, const char *p)
{
    size_t k = strlen(p);
    return l->n >= k && strncmp(l->s, p, k) == 0;
}

static bool indented(const text_line *l)
{
    return l->n && (l->s[0] == ' ' || l->s[0] == '\t');
}

/* `name(args) =>`, maybe after export and method. */
static bool pine_function(const text_line *l)
{
    size_t i = 0;
    for (;;) {
        if (l->n - i > 7 && strncmp(l->s + i, "export ", 7) == 0)
            i += 7;
        else if (l->n - i > 7 && strncmp(l->s + i, "method ", 7) == 0)
            i += 7;
        else
            break;
    }
    size_t id = i;
    while (i < l->n && (isalnum((unsigned char)l->s[i]) || l->s[i] == '_' || l->s[i] == '.')) i++;
    if (i == id || isdigit((unsigned char)l->s[id])) return false;
    while (i < l->n && l->s[i] == ' ') i++;
    if (i >= l->n || l->s[i] != '(') return false;
    int depth = 0;
    for (; i < l->n; i++) {
        if (l->s[i] == '(') depth++;
        if (l->s[i] == ')' && --depth == 0) break;
    }
    if (i >= l->n) return false;
    for (i++; i < l->n && l->s[i] == ' '; i++) {
    }
    return l->n - i >= 2 && l->s[i] == '=' && l->s[i + 1] == '>';
}

static bool pine_type(const text_line *l)
{
    return starts_with(l, "type ") || starts_with(l, "export type ") || starts_with(l, "enum ") ||
           starts_with(l, "export enum ");
}

static bool pine_declaration(const text_line *l)
{
    return starts_with(l, "indicator(") || starts_with(l, "strategy(") ||
           starts_with(l, "library(");
}

/* The last line of the block whose head is line i: its indented body. */
static size_t pine_body_end(chunker *c, size_t i)
{
    size_t end = i;
    for (size_t k = i + 1; k < c->nlines; k++) {
        if (line_blank(&c->lines[k])) continue;
        if (!indented(&c->lines[k])) break;
        end = k;
    }
    return end;
}

static qg_status chunk_pine(chunker *c)
{
    qg_status rc = QG_OK;
    size_t loose = 0;
    long comment = -1, version = -1;
    size_t i = 0;
    while (i < c->nlines && !rc) {
        const text_line *l = &c->lines[i];
        if (line_blank(l)) {
            comment = -1;
            i++;
            continue;
        }
        if (starts_with(l, "//@version")) {
            version = comment >= 0 ? comment : (long)i;
            i++;
            continue;
        }
        if (starts_with(l, "//")) {
            if (comment < 0) comment = (long)i;
            i++;
            continue;
        }
        bool decl = pine_declaration(l);
        if (!decl && !pine_function(l) && !pine_type(l)) {
            comment = -1;
            i++;
            continue;
        }
        size_t start = decl && version >= 0 ? (size_t)version : comment >= 0 ? (size_t)comment : i;
        if (start < loose) start = loose;
        size_t end = pine_body_end(c, i);
        if (start > loose) rc = emit_section(c, TOP_LEVEL, loose, start - 1);
        const char *head = signature(c, i, i, decl ? NULL : "=>");
        if (!rc) rc = emit_section(c, head, start, end);
        loose = end + 1;
        comment = -1;
        version = -1;
        i = end + 1;
    }
    if (!rc && loose < c->nlines) rc = emit_section(c, TOP_LEVEL, loose, c->nlines - 1);
    return rc;
}

/* -------------------------------------------------------------------- entry */

qg_status qg_chunk_document(qg_doc_format f, const char *text, size_t len, size_t max_chars,
                            qg_arena *a, qg_chunk **out, size_t *n, qg_error *err)
{
    if (max_chars == 0) max_chars = QG_CHUNK_MAX_DEFAULT;
    if (max_chars < QG_CHUNK_MAX_MIN || max_chars > QG_CHUNK_MAX_MAX)
        return qg_error_set(err, QG_EINVAL, "chunk size %zu: must be between %d and %d", max_chars,
                            QG_CHUNK_MAX_MIN, QG_CHUNK_MAX_MAX);
    chunker c = {.a = a, .max = max_chars, .squeeze = f == QG_DOC_HTML};
    qg_buf_init(&c.tmp, (size_t)1 << 30);
    qg_status rc = QG_OK;
    if (f == QG_DOC_HTML) {
        rc = chunk_html(&c, text, len);
    } else {
        split_lines(&c, text, len);
        switch (f) {
        case QG_DOC_MARKDOWN:
            rc = chunk_markdown(&c);
            break;
        case QG_DOC_PINE:
            rc = chunk_pine(&c);
            break;
        case QG_DOC_MQL5:
        case QG_DOC_C:
            rc = chunk_braces(&c);
            break;
        default:
            rc = chunk_text(&c);
            break;
        }
    }
    qg_buf_free(&c.tmp);
    if (rc) return qg_error_set(err, rc, "chunking: %s", qg_status_name(rc));
    *out = c.out;
    *n = c.n;
    return QG_OK;
}
