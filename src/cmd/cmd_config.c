/*
 * cmd_config.c - `quantgate config`: the effective configuration, each
 * setting with its source (environment or default), secrets masked.
 */
#include "cmd/cmd.h"

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
        char masked[64];
        if (env && *env && qg_config_is_secret(s->name)) {
            qg_config_mask(env, masked, sizeof masked);
            val = masked;
        }
        printf("%-14s = %-12s (%s)  # %s\n", s->name, val, env && *env ? "env" : "default",
               s->what);
    }
    return 0;
}
