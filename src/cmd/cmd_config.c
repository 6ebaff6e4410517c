/*
 * cmd_config.c - `quantgate config`: the effective configuration, each
 * setting with its source (environment or default), secrets masked.
 */
#include "cmd/cmd.h"

#include "store/store.h"

#include <quantgate/config.h>

#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *name;
    const char *def;
    const char *what;
} setting;

static const setting settings[] = {
    {"QG_LOG_LEVEL", "info", "log level: debug, info, warn, error, off"},
    {"QG_ENV_FILE", ".env", "file read for KEY=VALUE settings at start"},
    {"QG_THREADS", "", "worker threads for optimize (empty: all cores)"},
    {"QG_HOST", "127.0.0.1", "address serve listens on"},
    {"QG_PORT", "8080", "port serve listens on (0: any free port)"},
    {"QG_DATA_DIR", "var", "where the database, master key and datasets live"},
    {"DATABASE_URL", "", "database (empty: sqlite://<QG_DATA_DIR>/quantgate.db)"},
    {"QG_MASTER_KEY", "", "vault master key, 64 hex chars (empty: <QG_DATA_DIR>/master.key)"},
    {"QG_NEW_MASTER_KEY", "", "the key vault rotate moves to (empty: a random one)"},
    {"QG_JWT_SECRET", "", "access-token signing secret (empty: derived from the master key)"},
    {"QG_ACCESS_TTL", "900", "access token lifetime, seconds"},
    {"QG_REFRESH_TTL", "2592000", "refresh token lifetime, seconds (30 days)"},
    {"QG_ADMIN_EMAIL", "admin@quantgate.local", "the first admin, created on an empty database"},
    {"QG_RATE_LIMITS", "",
     "off, or overrides: auth=5/s:20,read=50/s:200,write=20/s:60,heavy=1/s:10"},
    {"QG_LOGIN_MAX_FAILS", "5", "failed logins per account before it is throttled"},
    {"QG_LOGIN_WINDOW", "900", "window for QG_LOGIN_MAX_FAILS, seconds"},
    {"QG_CORS_ORIGINS", "", "origins allowed to call the API from a browser, comma-separated"},
    {"QG_MAX_BODY", "32m", "largest request body (413 above it)"},
    {"QG_REQUEST_TIMEOUT", "10", "seconds to receive a request's headers; HTTP/1 keep-alive idle"},
    {"QG_IDLE_TIMEOUT", "60", "seconds an idle HTTP/2 connection is kept"},
    {"QG_SHUTDOWN_TIMEOUT", "30", "seconds a graceful shutdown may take"},
    {"QG_HTTP_THREADS", "", "event loops (empty: one per core)"},
    {"QG_WORKERS", "", "request worker threads (empty: 2 per core, at least 4)"},
    {"QG_JOB_THREADS", "", "background job threads (empty: half the cores, at least 1)"},
    {"QG_TLS_CERT", "", "PEM certificate chain: serve HTTPS (HTTP/2 by ALPN)"},
    {"QG_TLS_KEY", "", "PEM private key for QG_TLS_CERT"},
    {"QG_ACCESS_LOG", "-", "access log: - (stderr), off, or a file"},
    {"QG_PROMPTS_DIR", "prompts", "default prompt templates, loaded into the database once"},
    {"QG_AI_CONCURRENCY", "64",
     "threads serving /v1/chat/completions; AI calls running at once for streaming and background "
     "callers"},
    {"QG_AI_RETRIES", "2", "retries of a retryable provider error per deployment"},
    {"QG_AI_RETRY_BASE_MS", "250", "first retry backoff, doubled each time, with full jitter"},
    {"QG_AI_RETRY_CAP_MS", "8000", "longest retry backoff"},
    {"QG_AI_RETRY_AFTER_MAX_MS", "30000", "longest provider Retry-After waited on one deployment"},
    {"QG_AI_RATE_WAIT_MS", "2000", "longest wait for a deployment's rpm/tpm slot"},
    {"QG_AI_TOTAL_TIMEOUT_MS", "0", "cap of one provider HTTP exchange (0: none)"},
    {"QG_AI_COOLDOWN_S", "60", "seconds a failing deployment is skipped"},
    {"QG_AI_COOLDOWN_FAILURES", "3", "failures in a row that start a cool-down"},
    {"QG_AI_COOLDOWN_WINDOW_S", "60", "window those failures are counted in, seconds"},
    {"QG_AI_MODELS", "",
     "named models, e.g. analyst=openai:gpt-4o,anthropic:claude-3-5-sonnet-latest"},
    {"OPENAI_API_KEY", "", "OpenAI (or compatible) key: adds the env-openai deployment"},
    {"OPENAI_BASE_URL", "", "OpenAI-compatible base URL (empty: https://api.openai.com/v1)"},
    {"OPENAI_API_VERSION", "", "Azure OpenAI api-version (switches to Azure's URL form)"},
    {"QG_OPENAI_MODEL", "gpt-4o-mini", "model of the env-openai deployment"},
    {"QG_ANTHROPIC_MODEL", "claude-3-5-haiku-latest", "model of the env-anthropic deployment"},
    {"QG_GEMINI_MODEL", "gemini-2.0-flash", "model of the env-gemini deployment"},
    {"QG_OLLAMA_MODEL", "llama3.1", "model of the env-ollama deployment"},
    {"QG_OPENAI_EMBED_MODEL", "", "OpenAI embedding model: adds it to the named model embed"},
    {"QG_GEMINI_EMBED_MODEL", "", "Gemini embedding model: adds it to the named model embed"},
    {"QG_OLLAMA_EMBED_MODEL", "", "Ollama embedding model: adds it to the named model embed"},
    {"QG_OPENAI_EMBED_PRICE_IN", "0", "USD per million input tokens of the OpenAI embed model"},
    {"QG_GEMINI_EMBED_PRICE_IN", "0", "USD per million input tokens of the Gemini embed model"},
    {"QG_OLLAMA_EMBED_PRICE_IN", "0", "USD per million input tokens of the Ollama embed model"},
    {"QG_DOCS_CHUNK_MAX", "1500", "documents: largest chunk in bytes (200-20000)"},
    {"QG_DOCS_EMBED_MODEL", "", "documents: named embedding model (empty: offline hash embedder)"},
    {"QG_MEMORY_SHORT_TTL", "86400", "memory: lifetime of short-term memories, seconds"},
    {"QG_MEMORY_WORKING_TTL", "604800",
     "memory: lifetime of working-memory entries, seconds (0: never)"},
    {"QG_MEMORY_META_MAX", "4096", "memory: largest meta object of a memory, bytes of JSON"},
    {"QG_MEMORY_INDEX", "hnsw", "memory: index of each collection: hnsw or flat"},
    {"QG_MEMORY_HNSW_M", "16", "memory: links per HNSW node (twice that on the bottom level)"},
    {"QG_MEMORY_HNSW_EF_CONSTRUCTION", "200", "memory: HNSW candidate list while inserting"},
    {"QG_MEMORY_HNSW_EF_SEARCH", "64", "memory: HNSW candidate list while searching (at least n)"},
    {"QG_MEMORY_SNAPSHOT_CHANGES", "1000",
     "memory: rewrite a collection's snapshot in the background after this many changes, or an "
     "eighth of the collection when more (0: only at shutdown)"},
    {"QG_MEMORY_ROW_CACHE", "8192",
     "memory: rows searches read from memory instead of the database (0: none)"},
    {"ANTHROPIC_API_KEY", "", "Anthropic key: adds the env-anthropic deployment"},
    {"ANTHROPIC_BASE_URL", "", "Anthropic base URL (empty: https://api.anthropic.com)"},
    {"GEMINI_API_KEY", "", "Gemini key: adds the env-gemini deployment"},
    {"GEMINI_BASE_URL", "", "Gemini base URL (empty: https://generativelanguage.googleapis.com)"},
    {"OLLAMA_HOST", "", "Ollama server (e.g. http://127.0.0.1:11434): adds env-ollama"},
    {"WEBHOOK_SECRET", "", "webhook shared secret and HMAC key (empty: API tokens only)"},
    {"QG_WEBHOOK_HMAC", "optional", "required: every webhook needs X-Signature and X-Timestamp"},
    {"QG_WEBHOOK_REPLAY_WINDOW_S", "300", "how far X-Timestamp may be from the clock, seconds"},
    {"QG_WEBHOOK_DEDUP_WINDOW_S", "300", "the same payload within it is a duplicate, seconds"},
    {"QG_WEBHOOK_RATE_PER_SYMBOL", "0", "signals per second per symbol (0: unlimited)"},
    {"QG_WEBHOOK_RATE_GLOBAL", "0", "signals per second overall (0: unlimited)"},
    {"MIN_CONFIDENCE_SCORE", "0", "signals below this confidence (0-100) are stored as filtered"},
    {"QG_SIGNAL_OWNER", "", "account owning webhook signals (empty: the first admin)"},
    {"QG_SIGNAL_WORKERS", "8", "signal pipeline worker threads"},
    {"QG_SIGNAL_QUEUE_MAX", "100000", "signals queued in memory (more wait in the database)"},
    {"QG_SIGNAL_BATCH_MAX", "4096", "most writes in one group commit"},
    {"QG_SIGNAL_RETRIES", "3", "retries of a failing stage before the dead-letter queue"},
    {"QG_SIGNAL_RETRY_BASE_MS", "200", "first stage retry backoff, doubled each time"},
    {"QG_SIGNAL_MIN_CONFLUENCES", "2", "minimum confluences (0: off)"},
    {"QG_SIGNAL_KILLZONE_REQUIRED", "true", "drop signals outside every killzone"},
    {"QG_SIGNAL_SESSIONS", "", "killzone windows (empty: London, New York and Asia)"},
    {"QG_SIGNAL_COOLDOWN_S", "0", "cooldown per symbol and signal type, seconds (0: off)"},
    {"QG_SIGNAL_POLICY", "", "JSON array of policies"},
    {"QG_SIGNAL_DEFER_S", "60", "wait before a deferred signal is tried again, seconds"},
    {"QG_SIGNAL_DEFER_MAX", "10", "deferrals before a signal is dropped"},
    {"QG_SIGNAL_SCORE_WEIGHTS", "", "score weights, e.g. base=60,confluence=10,killzone=10"},
    {"QG_SIGNAL_SCORE_THRESHOLD", "70", "minimum score to go on to the analysis"},
    {"QG_SIGNAL_MODEL", "builtin", "named model analysing signals (off: no analysis)"},
    {"QG_SIGNAL_SIMILAR", "5", "similar past setups given to the analysis (0: none)"},
    {"QG_SIGNAL_REMEMBER", "true", "write each analysis into the memory collection analyses"},
    {"QG_SIGNAL_REMEMBER_QUEUE", "10000",
     "analyses waiting for the rememberer before the workers wait for it"},
    {"QG_SIGNAL_NOTIFY_QUEUE", "10000",
     "signals whose alert is with the notifier before the workers wait for it"},
    {"QG_SIGNAL_WRITE_AHEAD", "4096",
     "writes queued for the group commit before a worker waits to start its next signal"},
    {"QG_SIGNAL_AI_PLANS", "true", "run the plan an analysis returns"},
    {"QG_SIGNAL_PLAN", "", "JSON plan run for every signal when the analysis has none"},
    {"QG_ZONEINFO_DIR", "/usr/share/zoneinfo", "where the TZif time-zone files are"},
    {"QG_DETECT_SWING", "5", "detector: bars each side of a swing point"},
    {"QG_DETECT_HTF", "", "detector: higher timeframe for the bias (empty: none)"},
    {"QG_DETECT_KEEP_BARS", "5000", "detector: bars kept a pair to restore it at start (0: none)"},
    {"TELEGRAM_BOT_TOKEN", "", "Telegram bot token: alerts and bot commands"},
    {"TELEGRAM_CHAT_ID", "", "chats that receive alerts, comma-separated"},
    {"QG_TELEGRAM_ALLOWED_CHATS", "", "more chat ids allowed to send bot commands"},
    {"QG_TELEGRAM_API_URL", "https://api.telegram.org", "Bot API base URL"},
    {"QG_TELEGRAM_PARSE_MODE", "", "HTML or MarkdownV2 (empty: plain text)"},
    {"QG_TELEGRAM_WEBHOOK_SECRET", "", "secret_token the bot's webhook must carry"},
    {"QG_SLACK_WEBHOOK_URL", "", "Slack incoming-webhook URLs, comma-separated"},
    {"QG_DISCORD_WEBHOOK_URL", "", "Discord webhook URLs, comma-separated"},
    {"QG_NOTIFY_WEBHOOK_URL", "", "generic JSON webhook URLs, comma-separated"},
    {"QG_NOTIFY_RETRIES", "4", "notification retries after the first attempt"},
    {"QG_NOTIFY_RETRY_BASE_MS", "500", "first notification backoff"},
    {"QG_NOTIFY_RETRY_MAX_MS", "30000", "cap of one notification backoff"},
    {"QG_NOTIFY_RETRY_AFTER_MAX_S", "60", "cap of a wait a 429 asks for, seconds"},
    {"QG_NOTIFY_TIMEOUT_MS", "10000", "one notification attempt's time limit"},
    {"QG_NOTIFY_MERGE_MAX", "20",
     "most alerts one chat message carries when they queue behind the message on its way (1 = "
     "every alert its own message)"},
    {"QG_ARGON2_FAST", "", "1: cheap password hashing, for tests only"},
};

int qg_cmd_config(int argc, char **argv)
{
    qg_args a = qg_args_begin(argc, argv);
    while (qg_args_next(&a)) {
        if (qg_args_flag(&a, "--help")) {
            printf("usage: quantgate config\nPrints every setting, its value and where it came "
                   "from; secrets are masked.\n");
            return 0;
        }
        return qg_args_unknown(&a);
    }
    for (size_t i = 0; i < sizeof settings / sizeof settings[0]; i++) {
        const setting *s = &settings[i];
        const char *env = getenv(s->name);
        const char *val = env && *env ? env : s->def;
        char masked[64], url[512];
        if (env && *env && qg_config_is_secret(s->name)) {
            qg_config_mask(env, masked, sizeof masked);
            val = masked;
        } else if (env && *env && strcmp(s->name, "DATABASE_URL") == 0) {
            qg_store_mask_url(env, url, sizeof url);
            val = url;
        }
        printf("%-19s = %-21s (%s)  # %s\n", s->name, val, env && *env ? "env" : "default",
               s->what);
    }
    return 0;
}
