/*
 * main.c - the quantgate binary: reads .env, then dispatches to a
 * subcommand from the table below.
 */
#include "cmd/cmd.h"

#include <quantgate/config.h>

#include <stdio.h>
#include <string.h>

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"serve", qg_cmd_serve, "run the HTTP API server (the main job)"},
    {"migrate", qg_cmd_migrate, "apply database migrations and print the schema version"},
    {"user", qg_cmd_user, "manage accounts: add, list, approve, set a password"},
    {"vault", qg_cmd_vault, "list secrets (masked) and rotate the master key"},
    {"backtest", qg_cmd_backtest, "run a strategy over bars and report metrics and trades"},
    {"optimize", qg_cmd_optimize, "grid-search strategy parameters on all cores"},
    {"detect", qg_cmd_detect, "find ICT signals (BoS, CHoCH, FVG, OB, sweeps) in bars"},
    {"check", qg_cmd_check, "prove a strategy makes no decision that uses later bars"},
    {"indicators", qg_cmd_indicators, "compute indicators over bars (CSV or JSON)"},
    {"gen-data", qg_cmd_gen_data, "write realistic synthetic OHLCV bars"},
    {"docs", qg_cmd_docs, "ingest documents and search them with citations"},
    {"config", qg_cmd_config, "print the effective configuration, secrets masked"},
    {"notify", qg_cmd_notify, "send a test message to every notification target"},
};

static void usage(FILE *out)
{
    fprintf(out,
            "quantgate %s - self-hosted AI trading agent server\n\n"
            "usage: quantgate COMMAND [options]   (quantgate COMMAND --help for options)\n\n"
            "commands:\n",
            QG_VERSION);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-12s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv)
{
    qg_error err = {0};
    const char *envfile = qg_config_str("QG_ENV_FILE", ".env");
    qg_status rc = qg_config_load_dotenv(envfile, &err);
    if (rc && rc != QG_ENOTFOUND) {
        fprintf(stderr, "quantgate: %s\n", err.msg);
        return 1;
    }
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("quantgate %s\n", QG_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "quantgate: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
