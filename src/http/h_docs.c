/*
 * h_docs.c - the documents API: upload documents into the index
 * (developers and admins), search it with citations and list it (any
 * signed-in user), remove a document (developers and admins).
 *
 * Uploads carry their text in the body under a virtual, relative path; a
 * path is a name, never a file the server reads, so a client cannot make the
 * server ingest its own files (those come in through `quantgate docs
 * ingest` on the server's shell). Validation lives in memory/docs.c, whose
 * messages name the path and the reason; they reach the client as 400.
 */
#include "http/app.h"
#include "http/handlers.h"
#include "http/handlers_int.h"
#include "memory/docs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DOCS_UPLOAD_MAX 100 /* documents in one request */
#define SEARCH_DEFAULT  10

static qg_docs *docs_or_reply(qg_req *r)
{
    qg_docs *d = r->app ? r->app->docs : NULL;
    if (!d) qg_reply_error(r, 503, "unavailable", "the documents index is not open");
    return d;
}

/* One {"path","content"} object into up; false after replying 400. */
static bool read_doc(qg_req *r, const cJSON *o, const char *where, qg_doc_upload *up)
{
    if (!cJSON_IsObject(o)) {
        qg_reply_error(r, 400, "validation_failed", "%s: expected an object {path, content}",
                       where);
        return false;
    }
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, "path");
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(o, "content");
    if (!cJSON_IsString(p)) {
        qg_reply_error(r, 400, "validation_failed", "%s: field 'path' is required (a string)",
                       where);
        return false;
    }
    if (!cJSON_IsString(c)) {
        qg_reply_error(r, 400, "validation_failed",
                       "%s: field 'content' is required (the document's text)", where);
        return false;
    }
    up->path = p->valuestring;
    up->content = c->valuestring;
    up->len = strlen(c->valuestring);
    return true;
}

void qg_h_documents_create(qg_req *r)
{
    cJSON *body = qg_req_json(r);
    if (!body) return;
    qg_docs *d = docs_or_reply(r);
    if (!d) return;
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(body, "documents");
    qg_doc_upload *ups = NULL;
    size_t n = 0;
    if (list) {
        if (!cJSON_IsArray(list) || cJSON_GetArraySize(list) < 1 ||
            cJSON_GetArraySize(list) > DOCS_UPLOAD_MAX) {
            qg_reply_error(r, 400, "validation_failed",
                           "field 'documents': expected an array of 1 to %d {path, content} "
                           "objects",
                           DOCS_UPLOAD_MAX);
            return;
        }
        n = (size_t)cJSON_GetArraySize(list);
        ups = qg_arena_alloc(&r->arena, n * sizeof *ups);
        size_t i = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, list)
        {
            char where[48];
            snprintf(where, sizeof where, "documents[%zu]", i);
            if (!read_doc(r, it, where, &ups[i])) return;
            i++;
        }
    } else {
        n = 1;
        ups = qg_arena_alloc(&r->arena, sizeof *ups);
        if (!read_doc(r, body, "body", &ups[0])) return;
    }
    r->audit_target = ups[0].path;
    qg_error err = {0};
    /* Paths first: nothing is ingested when one of them is refused. */
    for (size_t i = 0; i < n; i++) {
        if (qg_docs_check_upload_path(ups[i].path, &err)) {
            qg_reply_status(r, QG_EINVAL, &err);
            return;
        }
    }
    qg_docs_counts c = {0};
    qg_status rc = qg_docs_ingest_uploads(d, ups, n, r->who.user.id, &c, &err);
    if (rc) {
        qg_reply_status(r, rc, &err);
        return;
    }
    cJSON *o = qg_docs_counts_json(d, &c);
    qg_reply_json(r, 200, o);
}

/* ?n=: 1..QG_DOCS_SEARCH_MAX; false after replying 400. */
static bool query_n(qg_req *r, int *out)
{
    const char *s = qg_req_query(r, "n");
    *out = SEARCH_DEFAULT;
    if (!s) return true;
    char *end = NULL;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < 1 || v > QG_DOCS_SEARCH_MAX) {
        qg_reply_error(r, 400, "validation_failed",
                       "query parameter 'n': '%.32s' is not an integer between 1 and %d", s,
                       QG_DOCS_SEARCH_MAX);
        return false;
    }
    *out = (int)v;
    return true;
}

void qg_h_documents_search(qg_req *r)
{
    const char *q = qg_req_query(r, "q");
    if (!q || !*q) {
        qg_reply_error(r, 400, "validation_failed",
                       "query parameter 'q' is required (the text to search for)");
        return;
    }
    if (strlen(q) > QG_DOCS_QUERY_MAX) {
        qg_reply_error(r, 400, "validation_failed",
                       "query parameter 'q': longer than %d characters", QG_DOCS_QUERY_MAX);
        return;
    }
    int n;
    if (!query_n(r, &n)) return;
    qg_docs *d = docs_or_reply(r);
    if (!d) return;
    qg_docs_hit *h = NULL;
    size_t nh = 0;
    qg_error err = {0};
    qg_status rc = qg_docs_search(d, q, (size_t)n, &r->arena, &h, &nh, &err);
    if (rc) {
        qg_reply_status(r, rc, &err);
        return;
    }
    cJSON *o = qg_docs_hits_json(q, h, nh);
    if (!o) {
        qg_reply_error(r, 500, "internal_error", "out of memory");
        return;
    }
    qg_reply_json(r, 200, o);
}

void qg_h_documents_list(qg_req *r)
{
    qg_docs *d = docs_or_reply(r);
    if (!d) return;
    qg_docs_file *f = NULL;
    size_t n = 0;
    qg_error err = {0};
    qg_status rc = qg_docs_list(d, &r->arena, &f, &n, &err);
    if (rc) {
        qg_reply_status(r, rc, &err);
        return;
    }
    cJSON *items = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "path", f[i].path);
        cJSON_AddStringToObject(o, "format", f[i].format);
        cJSON_AddStringToObject(o, "source", f[i].source);
        cJSON_AddNumberToObject(o, "size", (double)f[i].size);
        cJSON_AddNumberToObject(o, "chunks", (double)f[i].chunks);
        cJSON_AddStringToObject(o, "sha256", f[i].sha256);
        cJSON_AddItemToObject(o, "ingested_at", qg_json_time(f[i].ingested_at));
        cJSON_AddItemToArray(items, o);
    }
    qg_reply_list(r, items, NULL);
}

void qg_h_documents_delete(qg_req *r)
{
    const char *path = qg_req_query(r, "path");
    if (!path || !*path) {
        qg_reply_error(r, 400, "validation_failed",
                       "query parameter 'path' is required (as GET /api/docs lists it)");
        return;
    }
    r->audit_target = path;
    qg_docs *d = docs_or_reply(r);
    if (!d) return;
    qg_error err = {0};
    qg_status rc = qg_docs_remove(d, path, NULL, &err);
    if (rc) {
        qg_reply_status(r, rc, &err);
        return;
    }
    qg_reply_empty(r, 204);
}
