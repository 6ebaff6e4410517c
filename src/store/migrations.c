/*
 * migrations.c - the versioned schema, oldest first.
 *
 * A migration is never edited once released: changes come as a new entry.
 * The SQL is portable between SQLite and PostgreSQL: TEXT ids made by the
 * application, BIGINT times in UTC milliseconds, INTEGER 0/1 booleans,
 * DOUBLE PRECISION numbers, no AUTOINCREMENT. Each migration runs in one
 * transaction together with its row in schema_migrations.
 */
#include "store/store_int.h"

static const qg_migration migrations[] = {
    {1, "accounts, sessions, tokens, vault, audit",
     "CREATE TABLE users ("
     "  id TEXT PRIMARY KEY,"
     "  email TEXT NOT NULL UNIQUE,"
     "  password_hash TEXT NOT NULL,"
     "  role TEXT NOT NULL CHECK (role IN ('admin','developer','client')),"
     "  approved INTEGER NOT NULL DEFAULT 0,"
     "  disabled INTEGER NOT NULL DEFAULT 0,"
     "  must_change_password INTEGER NOT NULL DEFAULT 0,"
     "  created_at BIGINT NOT NULL,"
     "  updated_at BIGINT NOT NULL);"
     "CREATE TABLE sessions ("
     "  id TEXT PRIMARY KEY,"
     "  user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
     "  token_hash TEXT NOT NULL UNIQUE,"
     "  created_at BIGINT NOT NULL,"
     "  expires_at BIGINT NOT NULL,"
     "  revoked_at BIGINT);"
     "CREATE INDEX sessions_user ON sessions(user_id);"
     "CREATE TABLE api_tokens ("
     "  id TEXT PRIMARY KEY,"
     "  user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
     "  name TEXT NOT NULL,"
     "  prefix TEXT NOT NULL,"
     "  token_hash TEXT NOT NULL UNIQUE,"
     "  scope TEXT NOT NULL CHECK (scope IN ('read','write')),"
     "  created_at BIGINT NOT NULL,"
     "  last_used_at BIGINT,"
     "  revoked_at BIGINT);"
     "CREATE INDEX api_tokens_user ON api_tokens(user_id);"
     "CREATE TABLE secrets ("
     "  name TEXT PRIMARY KEY,"
     "  nonce TEXT NOT NULL,"
     "  ciphertext TEXT NOT NULL,"
     "  masked TEXT NOT NULL,"
     "  created_at BIGINT NOT NULL,"
     "  updated_at BIGINT NOT NULL);"
     "CREATE TABLE vault_meta ("
     "  id INTEGER PRIMARY KEY CHECK (id = 1),"
     "  check_nonce TEXT NOT NULL,"
     "  check_value TEXT NOT NULL,"
     "  rotated_at BIGINT);"
     "CREATE TABLE audit ("
     "  id TEXT PRIMARY KEY,"
     "  ts BIGINT NOT NULL,"
     "  actor_id TEXT,"
     "  actor_email TEXT,"
     "  action TEXT NOT NULL,"
     "  target TEXT,"
     "  outcome TEXT NOT NULL,"
     "  status INTEGER NOT NULL,"
     "  address TEXT,"
     "  request_id TEXT);"
     "CREATE INDEX audit_ts ON audit(ts);"
     "CREATE INDEX audit_actor ON audit(actor_id);"},
    {2, "datasets and backtests",
     "CREATE TABLE datasets ("
     "  id TEXT PRIMARY KEY,"
     "  user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
     "  name TEXT NOT NULL,"
     "  symbol TEXT NOT NULL,"
     "  timeframe_ms BIGINT NOT NULL,"
     "  rows BIGINT NOT NULL,"
     "  first_ts BIGINT NOT NULL,"
     "  last_ts BIGINT NOT NULL,"
     "  bytes BIGINT NOT NULL,"
     "  skipped BIGINT NOT NULL DEFAULT 0,"
     "  path TEXT NOT NULL,"
     "  created_at BIGINT NOT NULL);"
     "CREATE INDEX datasets_user ON datasets(user_id);"
     "CREATE TABLE backtests ("
     "  id TEXT PRIMARY KEY,"
     "  user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
     "  dataset_id TEXT NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,"
     "  status TEXT NOT NULL CHECK (status IN "
     "    ('queued','running','done','failed','cancelled')),"
     "  progress DOUBLE PRECISION NOT NULL DEFAULT 0,"
     "  request TEXT NOT NULL,"
     "  result TEXT,"
     "  error TEXT,"
     "  created_at BIGINT NOT NULL,"
     "  started_at BIGINT,"
     "  finished_at BIGINT);"
     "CREATE INDEX backtests_user ON backtests(user_id);"},
};

const qg_migration *qg_migrations(size_t *n)
{
    *n = sizeof migrations / sizeof migrations[0];
    return migrations;
}
