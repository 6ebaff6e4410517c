/*
 * cmd_serve.c - `quantgate serve`: reads the settings, opens the database
 * (applying migrations), the vault and the pools, creates the first admin on
 * an empty database, and runs the HTTP server until SIGTERM or SIGINT. Then
 * it lets background jobs finish and closes everything in reverse order.
 *
 * The first admin's one-time password goes to stdout once, never through
 * the logger, so it cannot end up in a log file or collector.
 */
#include "cmd/cmd.h"

#include "auth/auth.h"
#include "auth/vault.h"
#include "http/app.h"
#include "http/handlers.h"
#include "http/router.h"
#include "http/server.h"

#include <quantgate/config.h>
#include <quantgate/file.h>
#include <quantgate/log.h>
#include <quantgate/mem.h>

#include <ctype.h>
#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct serve_opts {
    const char *host;
    int port;
    const char *sample_data; /* imported for the first admin on first run */
} serve_opts;

static int usage(void)
{
    printf("usage: quantgate serve [--host H] [--port P] [--sample-data FILE.csv]\n"
           "Runs the HTTP API (docs/api.md) on H:P until SIGTERM or SIGINT.\n"
           "--sample-data: on first start (empty database), import FILE as a dataset of\n"
           "the first admin.\n"
           "Settings come from the environment and .env: QG_HOST, QG_PORT, QG_DATA_DIR,\n"
           "DATABASE_URL, QG_RATE_LIMITS, QG_CORS_ORIGINS, QG_TLS_CERT, QG_TLS_KEY ...\n"
           "(all of them: quantgate config, docs/configuration.md).\n");
    return 0;
}

/* "32m", "65536", "1g": bytes. */
static qg_status parse_size(const char *name, const char *s, size_t *out, qg_error *err)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    unsigned long long mul = 1;
    if (*end == 'k' || *end == 'K')
        mul = 1ull << 10, end++;
    else if (*end == 'm' || *end == 'M')
        mul = 1ull << 20, end++;
    else if (*end == 'g' || *end == 'G')
        mul = 1ull << 30, end++;
    if (errno || end == s || *end || v == 0 || v > (4ull << 30) / mul)
        return qg_error_set(err, QG_EINVAL,
                            "%s '%s': expected a size like 65536, 512k or 32m "
                            "(at most 4g)",
                            name, s);
    *out = (size_t)(v * mul);
    return QG_OK;
}

static qg_status parse_cors(qg_app *app, qg_error *err)
{
    const char *list = qg_config_str("QG_CORS_ORIGINS", "");
    char *copy = qg_xstrdup(list), *save = NULL;
    qg_status rc = QG_OK;
    for (char *tok = strtok_r(copy, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
        if (strcmp(tok, "*") == 0) {
            rc = qg_error_set(err, QG_EINVAL,
                              "QG_CORS_ORIGINS: '*' is not accepted; list the "
                              "origins (https://app.example.com)");
            break;
        }
        if (strncmp(tok, "http://", 7) != 0 && strncmp(tok, "https://", 8) != 0) {
            rc = qg_error_set(err, QG_EINVAL,
                              "QG_CORS_ORIGINS: '%s' is not an origin like "
                              "https://app.example.com",
                              tok);
            break;
        }
        if (app->ncors == QG_CORS_MAX) {
            rc = qg_error_set(err, QG_EINVAL, "QG_CORS_ORIGINS: at most %d origins", QG_CORS_MAX);
            break;
        }
        size_t n = strlen(tok);
        while (n && tok[n - 1] == '/') tok[--n] = 0; /* origins have no path */
        app->cors[app->ncors++] = qg_xstrdup(tok);
    }
    free(copy);
    return rc;
}

/* Request limits come from QG_RATE_LIMITS; "off" zeroes every class (a
 * class with rate 0 is never limited) but keeps the login throttle, which
 * guards passwords, not capacity. */
static qg_status setup_limits(qg_app *app, qg_error *err)
{
    const char *spec = qg_config_str("QG_RATE_LIMITS", "");
    qg_rl_config rl;
    qg_rl_config_default(&rl);
    qg_status rc = QG_OK;
    if (strcmp(spec, "off") == 0) {
        qg_warn("request rate limits are off (QG_RATE_LIMITS=off); the login throttle stays on");
        for (int c = 0; c < QG_RL__COUNT; c++) rl.rule[c] = (qg_rl_rule){0, 0};
    } else if (*spec && (rc = qg_rl_config_parse(&rl, spec, err))) {
        return rc;
    }
    int64_t v;
    if ((rc = qg_config_int_range("QG_LOGIN_MAX_FAILS", rl.login_max_fails, 1, 16, &v, err)))
        return rc;
    rl.login_max_fails = (int)v;
    if ((rc = qg_config_int_range("QG_LOGIN_WINDOW", rl.login_window_ms / 1000, 1, 86400, &v, err)))
        return rc;
    rl.login_window_ms = v * 1000;
    app->limits = qg_ratelimit_new(&rl);
    return QG_OK;
}

static qg_status read_settings(qg_app *app, qg_server_config *sc, const serve_opts *o,
                               qg_error *err)
{
    qg_status rc;
    int64_t v;
    sc->host = o->host ? o->host : qg_config_str("QG_HOST", "127.0.0.1");
    if (o->port >= 0) {
        sc->port = o->port;
    } else {
        if ((rc = qg_config_int_range("QG_PORT", 8080, 0, 65535, &v, err))) return rc;
        sc->port = (int)v;
    }
    if ((rc = qg_config_int_range("QG_HTTP_THREADS", 0, 0, 256, &v, err))) return rc;
    sc->threads = (int)v;
    if ((rc = qg_config_int_range("QG_REQUEST_TIMEOUT", 10, 1, 3600, &v, err))) return rc;
    sc->req_timeout_ms = (uint64_t)v * 1000;
    if ((rc = qg_config_int_range("QG_IDLE_TIMEOUT", 60, 1, 86400, &v, err))) return rc;
    sc->idle_timeout_ms = (uint64_t)v * 1000;
    if ((rc = qg_config_int_range("QG_SHUTDOWN_TIMEOUT", 30, 1, 3600, &v, err))) return rc;
    sc->shutdown_timeout_ms = (uint64_t)v * 1000;
    sc->tls_cert = qg_config_str("QG_TLS_CERT", NULL);
    sc->tls_key = qg_config_str("QG_TLS_KEY", NULL);
    sc->access_log = qg_config_str("QG_ACCESS_LOG", "-");

    if ((rc = parse_size("QG_MAX_BODY", qg_config_str("QG_MAX_BODY", "32m"), &app->max_body, err)))
        return rc;
    if ((rc = qg_config_int_range("QG_ACCESS_TTL", 900, 1, 86400, &app->access_ttl_s, err)))
        return rc;
    if ((rc = qg_config_int_range("QG_REFRESH_TTL", 30 * 86400, 60, 365 * 86400,
                                  &app->refresh_ttl_s, err)))
        return rc;
    if ((rc = parse_cors(app, err))) return rc;
    return setup_limits(app, err);
}

/* A readable random password that meets the policy. */
static void random_password(char *out, size_t cap)
{
    char tok[QG_TOKEN_MAX];
    qg_token_random("", tok, sizeof tok);
    snprintf(out, cap, "%.20s", tok);
}

static qg_status first_admin(qg_app *app, qg_conn *c, qg_user *out, qg_error *err)
{
    int64_t users = 0;
    qg_status rc = qg_user_count(c, &users, err);
    if (rc || users > 0) return rc;
    const char *email = qg_config_str("QG_ADMIN_EMAIL", "admin@quantgate.local");
    char password[32];
    random_password(password, sizeof password);
    qg_user u;
    if ((rc = qg_user_create(c, email, password, QG_ROLE_ADMIN, true, &u, err))) return rc;
    if ((rc = qg_user_require_password_change(c, u.id, err))) return rc;
    *out = u;
    /* stdout, not the logger: shown once to whoever started the server. */
    printf("first admin: %s password: %s (one-time: change it at first login, "
           "POST /api/me/password)\n",
           u.email, password);
    fflush(stdout);
    memset(password, 0, sizeof password);
    return QG_OK;
}

/* Imports a CSV file as a dataset of the first admin, through the same
 * handler an upload goes through (validation, storage, audit target). */
static qg_status import_sample(qg_app *app, const qg_user *admin, const char *path, qg_error *err)
{
    char *data = NULL;
    size_t len = 0;
    qg_status rc = qg_file_read_all(path, app->max_body, &data, &len, err);
    if (rc) return rc;
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    qg_req r;
    qg_req_init(&r, app);
    r.method = QG_POST;
    r.path = "/api/datasets";
    r.query =
        qg_arena_sprintf(&r.arena, "name=%.*s&symbol=SAMPLE", (int)(strcspn(base, ".")), base);
    r.body = data;
    r.body_len = len;
    r.content_type = "text/csv";
    r.request_id = "sample-data";
    r.who.authenticated = true;
    r.who.user = *admin;
    r.who.scope = QG_SCOPE_WRITE;
    qg_h_datasets_create(&r);
    if (r.status != 201)
        rc = qg_error_set(err, QG_EINVAL, "sample data %s: %.*s", path, (int)r.out.len,
                          r.out.data ? r.out.data : "");
    else
        printf("sample data: %s imported as dataset '%.*s' for %s\n", path,
               (int)(strcspn(base, ".")), base, admin->email);
    qg_req_release(&r);
    free(data);
    return rc;
}

static void on_ready(void *ud, const char *scheme, const char *host, int port)
{
    const char *shown =
        strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0 ? "127.0.0.1" : host;
    printf("quantgate %s listening on %s://%s:%d (API docs: %s://%s:%d/docs)\n", QG_VERSION, scheme,
           shown, port, scheme, shown, port);
    fflush(stdout);
}

/* The AI layer: named models from the environment and the database, the
 * default prompt templates (loaded once), the transport thread. */
static qg_status open_ai(qg_app *app, qg_error *err)
{
    int64_t concurrency;
    qg_status rc = qg_config_int_range("QG_AI_CONCURRENCY", 64, 1, 4096, &concurrency, err);
    if (rc) return rc;
    app->long_requests = qg_workpool_new((int)concurrency, "qg-long");
    qg_ai_config cfg = {
        .store = app->store,
        .vault = app->vault,
        .prompts_dir = qg_config_str("QG_PROMPTS_DIR", "prompts"),
        .concurrency = (int)concurrency,
    };
    return qg_ai_new(&cfg, &app->ai, err);
}

/* The documents index: built from the database (QG_DOCS_* settings). */
static qg_status open_docs(qg_app *app, qg_error *err)
{
    int64_t chunk_max;
    qg_status rc = qg_config_int_range("QG_DOCS_CHUNK_MAX", 1500, 200, 20000, &chunk_max, err);
    if (rc) return rc;
    qg_docs_config cfg = {.store = app->store,
                          .ai = app->ai,
                          .embed_model = qg_config_str("QG_DOCS_EMBED_MODEL", ""),
                          .chunk_max = (size_t)chunk_max};
    return qg_docs_open(&cfg, &app->docs, err);
}

/* The memory service: collections and items, their indexes loaded from
 * snapshots under <data dir>/memory or rebuilt from the database. */
static qg_status open_memory(qg_app *app, qg_error *err)
{
    int64_t short_ttl, working_ttl, meta_max, snap_changes, hnsw_m, hnsw_efc, hnsw_efs, row_cache;
    qg_status rc;
    if ((rc = qg_config_int_range("QG_MEMORY_SNAPSHOT_CHANGES", QG_MEMORY_SNAPSHOT_CHANGES_DEFAULT,
                                  0, 100000000, &snap_changes, err)) ||
        (rc =
             qg_config_int_range("QG_MEMORY_SHORT_TTL", 86400, 60, 365 * 86400, &short_ttl, err)) ||
        (rc = qg_config_int_range("QG_MEMORY_WORKING_TTL", 7 * 86400, 0, 3650LL * 86400,
                                  &working_ttl, err)) ||
        (rc = qg_config_int_range("QG_MEMORY_META_MAX", 4096, 256, 65536, &meta_max, err)) ||
        (rc = qg_config_int_range("QG_MEMORY_HNSW_M", 16, 2, 64, &hnsw_m, err)) ||
        (rc =
             qg_config_int_range("QG_MEMORY_HNSW_EF_CONSTRUCTION", 200, 8, 4096, &hnsw_efc, err)) ||
        (rc = qg_config_int_range("QG_MEMORY_HNSW_EF_SEARCH", 64, 1, 4096, &hnsw_efs, err)) ||
        (rc = qg_config_int_range("QG_MEMORY_ROW_CACHE", QG_MEMORY_ROW_CACHE_DEFAULT, 0, 1 << 24,
                                  &row_cache, err)))
        return rc;
    const char *index = qg_config_str("QG_MEMORY_INDEX", "hnsw");
    if (strcmp(index, "hnsw") != 0 && strcmp(index, "flat") != 0)
        return qg_error_set(err, QG_EINVAL, "QG_MEMORY_INDEX '%s': must be hnsw or flat", index);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/memory", app->data_dir);
    qg_memory_config cfg = {
        .store = app->store,
        .ai = app->ai,
        .snapshot_dir = dir,
        .short_ttl_ms = short_ttl * 1000,
        .working_ttl_ms = working_ttl ? working_ttl * 1000 : -1,
        .meta_max = (size_t)meta_max,
        .index_kind = strcmp(index, "flat") == 0 ? QG_VINDEX_FLAT : QG_VINDEX_HNSW,
        .snapshot_changes = snap_changes ? snap_changes : -1, /* 0: only at shutdown */
        .hnsw_m = (int)hnsw_m,
        .hnsw_ef_construction = (int)hnsw_efc,
        .hnsw_ef_search = (int)hnsw_efs,
        .row_cache = row_cache ? row_cache : -1, /* 0: none */
    };
    return qg_memory_open(&cfg, &app->memory, err);
}

static qg_status open_app(qg_app *app, const serve_opts *o, qg_error *err)
{
    qg_status rc;
    char urlbuf[1024];
    const char *url = qg_cmd_database_url(urlbuf, sizeof urlbuf);
    app->data_dir = qg_xstrdup(qg_cmd_data_dir());
    if (mkdir(app->data_dir, 0700) != 0 && errno != EEXIST)
        return qg_error_set(err, QG_EIO, "QG_DATA_DIR '%s': %s", app->data_dir, strerror(errno));
    if ((rc = qg_auth_init(err))) return rc;
    int64_t workers;
    if ((rc = qg_config_int_range("QG_WORKERS", qg_cpu_count() * 2 < 4 ? 4 : qg_cpu_count() * 2, 1,
                                  256, &workers, err)))
        return rc;
    /* + 2 for jobs and the loops' probes, + 1 for the signal writer and one
     * per signal worker, so the pipeline never waits for a connection */
    int64_t signal_workers;
    if ((rc = qg_config_int_range("QG_SIGNAL_WORKERS", 8, 1, 256, &signal_workers, err))) return rc;
    if ((rc = qg_store_open(url, (int)(workers + 3 + signal_workers), true, &app->store, err)))
        return rc;
    qg_conn *c = NULL;
    if ((rc = qg_store_acquire(app->store, &c, err))) return rc;
    rc = qg_vault_open(c, app->data_dir, &app->vault, err);
    if (!rc) qg_vault_jwt_key(app->vault, app->jwt_key);
    qg_user admin = {0};
    if (!rc) rc = first_admin(app, c, &admin, err);
    qg_store_release(app->store, c);
    if (rc) return rc;

    int64_t job_threads;
    int half = qg_cpu_count() / 2;
    if ((rc =
             qg_config_int_range("QG_JOB_THREADS", half < 1 ? 1 : half, 1, 256, &job_threads, err)))
        return rc;
    app->metrics = qg_metrics_new(qg_router_count());
    app->requests = qg_workpool_new((int)workers, "qg-req");
    app->jobs_pool = qg_workpool_new((int)job_threads, "qg-job");
    app->jobs = qg_jobs_new(app);
    if ((rc = qg_store_acquire(app->store, &c, err))) return rc;
    rc = qg_jobs_recover(app->jobs, c, err);
    qg_store_release(app->store, c);
    if (!rc) rc = open_ai(app, err);
    if (!rc) rc = open_memory(app, err);
    if (!rc) rc = open_docs(app, err);
    if (!rc) rc = qg_signals_open(app->store, app->ai, app->memory, NULL, &app->signals, err);
    if (!rc && admin.id[0] && o->sample_data) rc = import_sample(app, &admin, o->sample_data, err);
    return rc;
}

static void close_app(qg_app *app)
{
    /* Requests first (the loops have stopped), then background jobs, which
     * may still write their results, then the database. */
    if (app->requests) qg_workpool_free(app->requests);
    if (app->long_requests) qg_workpool_free(app->long_requests);
    qg_signals_free(app->signals); /* finishes the signals in hand; uses memory and the AI layer */
    if (app->docs) qg_docs_free(app->docs);
    if (app->memory) qg_memory_free(app->memory); /* writes the snapshots */
    if (app->ai) qg_ai_free(app->ai);
    if (app->jobs_pool) qg_workpool_shutdown(app->jobs_pool);
    if (app->jobs) qg_jobs_free(app->jobs);
    if (app->jobs_pool) qg_workpool_free(app->jobs_pool);
    if (app->metrics) qg_metrics_free(app->metrics);
    if (app->limits) qg_ratelimit_free(app->limits);
    if (app->vault) qg_vault_free(app->vault);
    if (app->store) qg_store_close(app->store);
    for (int i = 0; i < app->ncors; i++) free(app->cors[i]);
    free((char *)app->data_dir);
    memset(app->jwt_key, 0, sizeof app->jwt_key);
}

/* glibc gives freed memory back to the kernel as soon as the top of a heap
 * has 128 KiB free, and grows a heap a page at a time: a server whose
 * threads each allocate and free a few hundred KiB per request (the
 * signal workers, the rememberer) then spends its time in madvise,
 * mprotect and the page faults after them. Keeping up to 256 MiB and
 * growing 64 MiB at a time cut the workers' CPU per signal by about 5%
 * and raised the end-to-end rate by about 15% (bench/signals.sh). The
 * MALLOC_TRIM_THRESHOLD_ and MALLOC_TOP_PAD_ environment variables, when
 * set, win. A build linked with jemalloc (the default, CMakeLists.txt)
 * does not use glibc's malloc at all. */
static void tune_malloc(void)
{
#if defined(__GLIBC__) && !defined(QG_JEMALLOC)
    if (!getenv("MALLOC_TRIM_THRESHOLD_")) mallopt(M_TRIM_THRESHOLD, 256 << 20);
    if (!getenv("MALLOC_TOP_PAD_")) mallopt(M_TOP_PAD, 64 << 20);
#endif
}

int qg_cmd_serve(int argc, char **argv)
{
    serve_opts o = {.port = -1};
    const char *port = NULL;
    qg_args a = qg_args_begin(argc, argv);
    while (qg_args_next(&a)) {
        if (qg_args_flag(&a, "--help")) return usage();
        if (qg_args_value(&a, "--host", &o.host)) continue;
        if (qg_args_value(&a, "--port", &port)) continue;
        if (qg_args_value(&a, "--sample-data", &o.sample_data)) continue;
        return qg_args_unknown(&a);
    }
    if (port) o.port = (int)qg_args_int(&a, "--port", port, 0, 65535);
    tune_malloc();

    qg_app app = {0};
    qg_server_config sc = {0};
    qg_error err = {0};
    int status = 1;
    qg_status rc = read_settings(&app, &sc, &o, &err);
    if (!rc) rc = open_app(&app, &o, &err);
    if (!rc) rc = qg_server_run(&app, &sc, on_ready, NULL, &err);
    if (rc) {
        qg_cmd_fail("serve", "%s", err.msg);
    } else {
        qg_info("stopped cleanly");
        status = 0;
    }
    close_app(&app);
    return status;
}
