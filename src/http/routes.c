/*
 * routes.c - the route table: the one place that says which method and path
 * reach which handler, which role it needs and which rate-limit class it
 * counts against. The router, the role checks, /metrics labels and
 * /api/openapi.json are all derived from this table.
 *
 * Roles nest (client < developer < admin). QG_ROLE_NONE routes need no
 * credentials. Schemas are JSON Schema texts used only for the OpenAPI
 * document.
 */
#include "http/handlers.h"

#define R(method, pattern, fn, role, rl, flags, tag, summary)                                      \
    {method, pattern, fn, role, rl, flags, summary, tag, NULL, NULL, NULL}

/* clang-format off */
const qg_route qg_routes[] = {
    R(QG_GET, "/health", qg_h_health, QG_ROLE_NONE, QG_RL_NONE, QG_ROUTE_INLINE, "meta", "Liveness probe"),
    R(QG_GET, "/ready", qg_h_ready, QG_ROLE_NONE, QG_RL_NONE, 0, "meta", "Readiness: the database answers"),
    R(QG_GET, "/metrics", qg_h_metrics, QG_ROLE_NONE, QG_RL_NONE, QG_ROUTE_INLINE, "meta", "Prometheus metrics"),
    R(QG_GET, "/api/openapi.json", qg_h_openapi, QG_ROLE_NONE, QG_RL_READ, QG_ROUTE_INLINE, "meta", "This API as OpenAPI 3.1"),
    R(QG_GET, "/docs", qg_h_docs, QG_ROLE_NONE, QG_RL_READ, QG_ROUTE_INLINE, "meta", "API documentation page"),

    R(QG_POST, "/api/auth/signup", qg_h_signup, QG_ROLE_NONE, QG_RL_AUTH, 0, "auth", "Create an account (pending approval)"),
    R(QG_POST, "/api/auth/login", qg_h_login, QG_ROLE_NONE, QG_RL_AUTH, QG_ROUTE_NO_AUDIT, "auth", "Log in: access and refresh tokens"),
    R(QG_POST, "/api/auth/refresh", qg_h_refresh, QG_ROLE_NONE, QG_RL_AUTH, 0, "auth", "Exchange a refresh token for new tokens"),
    R(QG_POST, "/api/auth/logout", qg_h_logout, QG_ROLE_NONE, QG_RL_AUTH, 0, "auth", "Revoke a refresh token"),
    R(QG_GET, "/api/me", qg_h_me, QG_ROLE_CLIENT, QG_RL_READ, 0, "auth", "The caller's account"),
    R(QG_POST, "/api/me/password", qg_h_me_password, QG_ROLE_CLIENT, QG_RL_AUTH, 0, "auth", "Change the caller's password"),

    R(QG_GET, "/api/tokens", qg_h_tokens_list, QG_ROLE_DEVELOPER, QG_RL_READ, 0, "tokens", "The caller's machine API tokens"),
    R(QG_POST, "/api/tokens", qg_h_tokens_create, QG_ROLE_DEVELOPER, QG_RL_WRITE, 0, "tokens", "Create a machine API token (shown once)"),
    R(QG_DELETE, "/api/tokens/{id}", qg_h_tokens_revoke, QG_ROLE_DEVELOPER, QG_RL_WRITE, 0, "tokens", "Revoke a machine API token"),

    R(QG_GET, "/api/users", qg_h_users_list, QG_ROLE_ADMIN, QG_RL_READ, 0, "users", "List users"),
    R(QG_POST, "/api/users", qg_h_users_create, QG_ROLE_ADMIN, QG_RL_WRITE, 0, "users", "Create an approved user"),
    R(QG_GET, "/api/users/{id}", qg_h_users_get, QG_ROLE_ADMIN, QG_RL_READ, 0, "users", "One user"),
    R(QG_PATCH, "/api/users/{id}", qg_h_users_update, QG_ROLE_ADMIN, QG_RL_WRITE, 0, "users", "Change role, approval or disabled"),
    R(QG_POST, "/api/users/{id}/approve", qg_h_users_approve, QG_ROLE_ADMIN, QG_RL_WRITE, 0, "users", "Approve a pending user"),
    R(QG_DELETE, "/api/users/{id}", qg_h_users_delete, QG_ROLE_ADMIN, QG_RL_WRITE, 0, "users", "Delete a user and their data"),

    R(QG_GET, "/api/secrets", qg_h_secrets_list, QG_ROLE_ADMIN, QG_RL_READ, 0, "vault", "Vault entries, masked"),
    R(QG_PUT, "/api/secrets/{name}", qg_h_secrets_put, QG_ROLE_ADMIN, QG_RL_WRITE, 0, "vault", "Store a secret"),
    R(QG_DELETE, "/api/secrets/{name}", qg_h_secrets_delete, QG_ROLE_ADMIN, QG_RL_WRITE, 0, "vault", "Delete a secret"),
    R(QG_GET, "/api/audit", qg_h_audit_list, QG_ROLE_ADMIN, QG_RL_READ, 0, "audit", "Query the audit log"),

    R(QG_GET, "/api/strategies", qg_h_strategies_list, QG_ROLE_CLIENT, QG_RL_READ, 0, "backtests", "Built-in strategies and their parameters"),
    R(QG_GET, "/api/datasets", qg_h_datasets_list, QG_ROLE_CLIENT, QG_RL_READ, 0, "datasets", "The caller's datasets"),
    R(QG_POST, "/api/datasets", qg_h_datasets_create, QG_ROLE_DEVELOPER, QG_RL_HEAVY, QG_ROUTE_RAW_BODY, "datasets", "Upload bars (CSV or JSON body)"),
    R(QG_GET, "/api/datasets/{id}", qg_h_datasets_get, QG_ROLE_CLIENT, QG_RL_READ, 0, "datasets", "One dataset"),
    R(QG_DELETE, "/api/datasets/{id}", qg_h_datasets_delete, QG_ROLE_DEVELOPER, QG_RL_WRITE, 0, "datasets", "Delete a dataset"),
    R(QG_GET, "/api/datasets/{id}/candles", qg_h_datasets_candles, QG_ROLE_CLIENT, QG_RL_READ, 0, "datasets", "Bars, optionally resampled"),

    R(QG_GET, "/api/backtests", qg_h_backtests_list, QG_ROLE_CLIENT, QG_RL_READ, 0, "backtests", "The caller's backtests"),
    R(QG_POST, "/api/backtests", qg_h_backtests_create, QG_ROLE_DEVELOPER, QG_RL_HEAVY, 0, "backtests", "Start a backtest job"),
    R(QG_GET, "/api/backtests/{id}", qg_h_backtests_get, QG_ROLE_CLIENT, QG_RL_READ, 0, "backtests", "Status, metrics and trades"),
    R(QG_DELETE, "/api/backtests/{id}", qg_h_backtests_delete, QG_ROLE_DEVELOPER, QG_RL_WRITE, 0, "backtests", "Cancel and delete a backtest"),
    R(QG_GET, "/api/backtests/{id}/events", qg_h_backtests_events, QG_ROLE_CLIENT, QG_RL_READ, QG_ROUTE_STREAM, "backtests", "Progress as Server-Sent Events"),

    {0, NULL, NULL, QG_ROLE_NONE, QG_RL_NONE, 0, NULL, NULL, NULL, NULL, NULL},
};
/* clang-format on */
