/*
 * cmd_docs.c - `quantgate docs`: ingest documents into the server's
 * documents index, search it with citations, list and remove documents.
 *
 * It opens the server's database directly (DATABASE_URL or
 * sqlite://<QG_DATA_DIR>/quantgate.db, or --database), so a running server
 * sees an ingest at its next search (the documents generation counter). The
 * offline embedder needs nothing else; with QG_DOCS_EMBED_MODEL set, the AI
 * layer (vault, deployments) is opened as `serve` opens it.
 */
#include "cmd/cmd.h"

#include "ai/ai.h"
#include "auth/vault.h"
#include "memory/chunk.h"
#include "memory/docs.h"
#include "store/store.h"

#include <quantgate/config.h>
#include <quantgate/json.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CMD "docs"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: quantgate docs ingest PATH... [--json]\n"
            "       quantgate docs search \"QUERY\" [-n N] [--json]\n"
            "       quantgate docs list [--json]\n"
            "       quantgate docs remove PATH\n"
            "Options: --database URL (default: DATABASE_URL or sqlite://<QG_DATA_DIR>/"
            "quantgate.db)\n"
            "ingest: files and directories (recursive) of .md .txt .html .mq5 .mqh .pine .c .h;\n"
            "unchanged chunks are not embedded again, files gone from an ingested directory\n"
            "(or named again after deletion) leave the index. search: -n 1..%d (default 5).\n"
            "Settings: QG_DOCS_CHUNK_MAX, QG_DOCS_EMBED_MODEL (docs/memory/documents.md).\n",
            QG_DOCS_SEARCH_MAX);
}

typedef struct env {
    qg_store *store;
    qg_vault *vault;
    qg_ai *ai;
    qg_docs *docs;
} env;

static void env_close(env *e)
{
    qg_docs_free(e->docs);
    qg_ai_free(e->ai);
    qg_vault_free(e->vault);
    if (e->store) qg_store_close(e->store);
}

static int env_open(env *e, const char *url)
{
    qg_error err = {0};
    char buf[1024];
    memset(e, 0, sizeof *e);
    if (!url) url = qg_cmd_database_url(buf, sizeof buf);
    int64_t chunk_max = 0;
    if (qg_config_int("QG_DOCS_CHUNK_MAX", QG_CHUNK_MAX_DEFAULT, &chunk_max, &err))
        return qg_cmd_fail(CMD, "%s", err.msg);
    const char *model = qg_config_str("QG_DOCS_EMBED_MODEL", "");
    if (qg_store_open(url, 4, true, &e->store, &err)) return qg_cmd_fail(CMD, "%s", err.msg);
    if (*model && strcmp(model, QG_DOCS_EMBEDDER_HASH) != 0) {
        qg_conn *c = NULL;
        qg_status rc = qg_store_acquire(e->store, &c, &err);
        if (!rc) {
            rc = qg_vault_open(c, qg_cmd_data_dir(), &e->vault, &err);
            qg_store_release(e->store, c);
        }
        qg_ai_config cfg = {.store = e->store,
                            .vault = e->vault,
                            .prompts_dir = qg_config_str("QG_PROMPTS_DIR", "prompts"),
                            .concurrency = 4};
        if (!rc) rc = qg_ai_new(&cfg, &e->ai, &err);
        if (rc) {
            env_close(e);
            return qg_cmd_fail(CMD, "%s", err.msg);
        }
    }
    qg_docs_config dc = {.store = e->store,
                         .ai = e->ai,
                         .embed_model = model,
                         .chunk_max = chunk_max < 0 ? 1 : (size_t)chunk_max};
    if (qg_docs_open(&dc, &e->docs, &err)) {
        env_close(e);
        return qg_cmd_fail(CMD, "%s", err.msg);
    }
    return 0;
}

static void print_json(cJSON *o)
{
    char *s = qg_json_compact(o);
    if (s) puts(s);
    cJSON_free(s);
    cJSON_Delete(o);
}

static int do_ingest(env *e, char **paths, int n, bool json)
{
    qg_docs_counts c = {0};
    qg_error err = {0};
    qg_status rc = qg_docs_ingest_paths(e->docs, (const char *const *)paths, (size_t)n, &c, &err);
    if (json) {
        cJSON *o = qg_docs_counts_json(e->docs, &c);
        print_json(o);
    } else {
        printf("files: %lld seen, %lld changed, %lld unchanged, %lld removed, %lld skipped\n"
               "chunks: %lld added, %lld kept, %lld removed, %lld linked\n"
               "embedded: %lld (%s)\n",
               (long long)c.files_seen, (long long)c.files_changed, (long long)c.files_unchanged,
               (long long)c.files_removed, (long long)c.files_skipped, (long long)c.chunks_added,
               (long long)c.chunks_kept, (long long)c.chunks_removed, (long long)c.chunks_linked,
               (long long)c.embedded, qg_docs_embedder(e->docs));
    }
    /* Files before a failure stay ingested (one transaction per file). */
    return rc ? qg_cmd_fail(CMD, "%s", err.msg) : 0;
}

static int do_search(env *e, const char *q, int n, bool json)
{
    qg_arena a;
    qg_arena_init(&a, 1 << 16);
    qg_docs_hit *h = NULL;
    size_t nh = 0;
    qg_error err = {0};
    int rc = 0;
    if (qg_docs_search(e->docs, q, (size_t)n, &a, &h, &nh, &err)) {
        rc = qg_cmd_fail(CMD, "%s", err.msg);
        goto out;
    }
    if (json) {
        cJSON *o = qg_docs_hits_json(q, h, nh);
        if (o)
            print_json(o);
        else
            rc = qg_cmd_fail(CMD, "out of memory");
        goto out;
    }
    if (nh == 0) printf("no results\n");
    for (size_t i = 0; i < nh; i++) {
        printf("%zu. %.3f  %s:%d-%d  %s\n", i + 1, (double)h[i].score, h[i].path, h[i].line_start,
               h[i].line_end, h[i].heading);
        /* the first line with text, as a preview */
        const char *t = h[i].text;
        while (*t == '\n' || *t == ' ') t++;
        printf("   %.*s\n", (int)(strcspn(t, "\n") < 120 ? strcspn(t, "\n") : 120), t);
        for (size_t k = 0; k < h[i].ndups; k++)
            printf("   also: %s:%d-%d\n", h[i].dups[k].path, h[i].dups[k].line_start,
                   h[i].dups[k].line_end);
    }
out:
    qg_arena_free(&a);
    return rc;
}

static int do_list(env *e, bool json)
{
    qg_arena a;
    qg_arena_init(&a, 1 << 16);
    qg_docs_file *f = NULL;
    size_t n = 0;
    qg_error err = {0};
    int rc = 0;
    if (qg_docs_list(e->docs, &a, &f, &n, &err)) {
        rc = qg_cmd_fail(CMD, "%s", err.msg);
    } else if (json) {
        cJSON *items = cJSON_CreateArray();
        for (size_t i = 0; i < n; i++) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "path", f[i].path);
            cJSON_AddStringToObject(o, "format", f[i].format);
            cJSON_AddStringToObject(o, "source", f[i].source);
            cJSON_AddNumberToObject(o, "size", (double)f[i].size);
            cJSON_AddNumberToObject(o, "chunks", (double)f[i].chunks);
            cJSON_AddStringToObject(o, "sha256", f[i].sha256);
            cJSON_AddItemToArray(items, o);
        }
        print_json(items);
    } else {
        printf("%-8s %-8s %7s %9s  %s\n", "FORMAT", "SOURCE", "CHUNKS", "BYTES", "PATH");
        for (size_t i = 0; i < n; i++)
            printf("%-8s %-8s %7lld %9lld  %s\n", f[i].format, f[i].source, (long long)f[i].chunks,
                   (long long)f[i].size, f[i].path);
    }
    qg_arena_free(&a);
    return rc;
}

static int do_remove(env *e, const char *path)
{
    qg_error err = {0};
    qg_docs_counts c = {0};
    /* As listed; a relative file name is tried as an absolute path too. */
    qg_status rc = qg_docs_remove(e->docs, path, &c, &err);
    char real[4096];
    if (rc == QG_ENOTFOUND && path[0] != '/' && realpath(path, real))
        rc = qg_docs_remove(e->docs, real, &c, &err);
    if (rc) return qg_cmd_fail(CMD, "%s", err.msg);
    printf("removed %s (%lld chunks)\n", path, (long long)c.chunks_removed);
    return 0;
}

int qg_cmd_docs(int argc, char **argv)
{
    static const char *const actions[] = {"ingest", "search", "list", "remove", NULL};
    int which = 0;
    int st = qg_args_action(argc, argv, CMD, actions, usage, &which);
    if (st >= 0) return st;
    const char *url = NULL, *nval = NULL;
    bool json = false;
    char **pos = qg_xcalloc((size_t)argc + 1, sizeof *pos);
    int npos = 0;
    qg_args a = qg_args_begin(argc - 1, argv + 1);
    a.cmd = CMD;
    while (qg_args_next(&a)) {
        const char *arg = a.argv[a.i];
        if (qg_args_flag(&a, "--help")) {
            usage(stdout);
            free(pos);
            return 0;
        }
        if (qg_args_value(&a, "--database", &url)) continue;
        if (which != 3 && qg_args_flag(&a, "--json")) {
            json = true;
            continue;
        }
        if (which == 1 && (qg_args_value(&a, "-n", &nval) || qg_args_value(&a, "--n", &nval)))
            continue;
        if (arg[0] != '-' || strcmp(arg, "-") == 0) {
            pos[npos++] = (char *)arg;
            continue;
        }
        free(pos);
        return qg_args_unknown(&a);
    }
    int n = nval ? (int)qg_args_int(&a, "-n", nval, 1, QG_DOCS_SEARCH_MAX) : 5;
    int rc = 0;
    if ((which == 0 && npos < 1) || (which != 0 && which != 2 && npos != 1) ||
        (which == 2 && npos)) {
        fprintf(stderr, "quantgate docs %s: %s\n", actions[which],
                which == 0   ? "name at least one file or directory"
                : which == 1 ? "give the query as one argument (quote it)"
                : which == 2 ? "takes no arguments"
                             : "name one document path (as `quantgate docs list` shows it)");
        free(pos);
        return 2;
    }
    env e;
    if ((rc = env_open(&e, url))) {
        free(pos);
        return rc;
    }
    switch (which) {
    case 0:
        rc = do_ingest(&e, pos, npos, json);
        break;
    case 1:
        rc = do_search(&e, pos[0], n, json);
        break;
    case 2:
        rc = do_list(&e, json);
        break;
    default:
        rc = do_remove(&e, pos[0]);
        break;
    }
    env_close(&e);
    free(pos);
    return rc;
}
