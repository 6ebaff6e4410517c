/*
 * config.h - configuration from the environment, optionally seeded from a
 * `.env` file.
 *
 * A `.env` file holds KEY=VALUE lines (blank lines and # comments ignored,
 * optional `export ` prefix, values optionally in single or double quotes).
 * Variables already set in the environment win over the file, as with
 * docker-compose and python-dotenv.
 */
#ifndef QUANTGATE_CONFIG_H
#define QUANTGATE_CONFIG_H

#include <quantgate/status.h>

#include <stdbool.h>
#include <stdint.h>

/* Loads path into the environment (existing variables are kept). A missing
 * file is QG_ENOTFOUND; a malformed line is QG_EINVAL naming the line. */
qg_status qg_config_load_dotenv(const char *path, qg_error *err);

/* The value of name, or def when unset or empty. Owned by the environment. */
const char *qg_config_str(const char *name, const char *def);
/* Integer setting; QG_EINVAL naming the variable when it is not a number. */
qg_status qg_config_int(const char *name, int64_t def, int64_t *out, qg_error *err);
/* The same, within [min, max]: QG_EINVAL naming the variable, the value
 * and the range otherwise. */
qg_status qg_config_int_range(const char *name, int64_t def, int64_t min, int64_t max, int64_t *out,
                              qg_error *err);
/* A finite number within [min, max]; QG_EINVAL naming the variable. */
qg_status qg_config_double(const char *name, double def, double min, double max, double *out,
                           qg_error *err);
/* Boolean setting: 1/true/yes/on and 0/false/no/off. */
qg_status qg_config_bool(const char *name, bool def, bool *out, qg_error *err);

/* True when a variable name looks like it holds a secret (KEY, TOKEN,
 * SECRET, PASSWORD, WEBHOOK_URL), so printers mask it. */
bool qg_config_is_secret(const char *name);
/* Writes a masked form of a secret value into out ("sk-...a1b2"). */
void qg_config_mask(const char *value, char *out, size_t cap);

#endif
