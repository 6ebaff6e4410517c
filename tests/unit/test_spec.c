/*
 * test_spec.c - strategy spec parsing: resolution of parameters, operands
 * and lags, and error messages that name the JSON path and the reason.
 */
#include <criterion/criterion.h>

#include <quantgate/file.h>
#include <quantgate/strategy.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>

#include <math.h>
#include <string.h>

static qg_status parse(const char *json, qg_strategy *s, qg_error *err)
{
    return qg_strategy_parse(json, strlen(json), NULL, 0, s, err);
}

/* Asserts that json fails with a message containing each of the parts. */
static void expect_error(const char *json, const char *part1, const char *part2)
{
    qg_strategy s;
    qg_error err = {0};
    cr_assert_eq(parse(json, &s, &err), QG_EINVAL, "accepted: %s", json);
    cr_assert(strstr(err.msg, part1), "'%s' not in: %s", part1, err.msg);
    if (part2) cr_assert(strstr(err.msg, part2), "'%s' not in: %s", part2, err.msg);
}

Test(spec, builtins_parse_and_resolve)
{
    for (const char *const *n = qg_strategy_builtin_names(); *n; n++) {
        qg_strategy s;
        qg_error err = {0};
        const char *json = qg_strategy_builtin(*n);
        cr_assert_not_null(json);
        cr_assert_eq(qg_strategy_parse(json, strlen(json), NULL, 0, &s, &err), QG_OK, "%s: %s", *n,
                     err.msg);
        cr_assert_str_eq(s.name, *n);
        cr_assert_geq(s.entry_long, 0);
        cr_assert_geq(s.entry_short, 0);
    }
    cr_assert_null(qg_strategy_builtin("nope"));
}

Test(spec, params_overrides_and_substitution)
{
    const char *json = qg_strategy_builtin("sma_cross");
    qg_param_override ov[] = {{"fast", 7}, {"slow", 50}};
    qg_strategy s;
    qg_error err = {0};
    cr_assert_eq(qg_strategy_parse(json, strlen(json), ov, 2, &s, &err), QG_OK, "%s", err.msg);
    cr_assert_eq(s.n_ind, 2);
    cr_assert_eq(s.ind[0].spec.kind, QG_IND_SMA);
    cr_assert_float_eq(s.ind[0].spec.params[0], 7, 1e-12);
    cr_assert_float_eq(s.ind[1].spec.params[0], 50, 1e-12);
    cr_assert_float_eq(qg_strategy_param_value(&s, "slow"), 50, 1e-12);
    cr_assert(isnan(qg_strategy_param_value(&s, "nope")));
    /* Max lag: a cross reads one bar back. */
    cr_assert_eq(s.max_lag, 1);
    qg_param_override bad[] = {{"fats", 3}};
    cr_assert_eq(qg_strategy_parse(json, strlen(json), bad, 1, &s, &err), QG_EINVAL);
    cr_assert(strstr(err.msg, "'fats'") && strstr(err.msg, "fast, slow"), "%s", err.msg);
    qg_param_override flip[] = {{"fast", 40}, {"slow", 20}};
    cr_assert_eq(qg_strategy_parse(json, strlen(json), flip, 2, &s, &err), QG_EINVAL);
    cr_assert(strstr(err.msg, "constraint 'fast < slow'"), "%s", err.msg);
}

Test(spec, operands_outputs_lags_and_fields)
{
    const char *json =
        "{\"params\":{\"lvl\":25},"
        "\"indicators\":{\"m\":\"macd:12,26,9\",\"bb\":{\"type\":\"bbands\","
        "\"params\":[20,\"$lvl\"],\"source\":\"hl2\"}},"
        "\"entry\":{\"long\":{\"and\":[{\"cross_above\":[\"m.macd\",\"m.signal\"]},"
        "{\"gt\":[\"close\",\"bb.lower[3]\"]},{\"not\":{\"lt\":[\"hlc3\",\"$lvl\"]}}]}},"
        "\"stop_loss\":{\"atr\":1.5,\"period\":10},"
        "\"take_profit\":{\"price\":\"$lvl\"},"
        "\"sizing\":{\"risk_percent\":0.5},\"direction\":\"both\",\"timeframe\":\"4h\"}";
    qg_strategy s;
    qg_error err = {0};
    cr_assert_eq(parse(json, &s, &err), QG_OK, "%s", err.msg);
    cr_assert_eq(s.direction, QG_DIR_BOTH);
    cr_assert_eq(s.timeframe_ms, 4 * 3600000LL);
    cr_assert_eq(s.ind[1].spec.source, QG_SRC_HL2);
    cr_assert_float_eq(s.ind[1].spec.params[1], 25, 1e-12);
    /* The ATR stop adds a hidden indicator. */
    cr_assert_eq(s.n_ind, 3);
    cr_assert_eq(s.ind[2].spec.kind, QG_IND_ATR);
    cr_assert_eq(s.stop_loss.kind, QG_EXIT_ATR);
    cr_assert_eq(s.stop_loss.atr_ind, 2);
    cr_assert_eq(s.take_profit.kind, QG_EXIT_PRICE);
    cr_assert_float_eq(s.take_profit.value, 25, 1e-12);
    cr_assert_eq(s.sizing.kind, QG_SIZE_RISK_PERCENT);
    cr_assert_eq(s.max_lag, 3);
    /* The second comparison reads bb.lower three bars back. */
    int found = 0;
    for (size_t i = 0; i < s.n_nodes; i++)
        if (s.nodes[i].op == QG_COND_GT && s.nodes[i].b.kind == QG_OPD_IND) {
            cr_assert_eq(s.nodes[i].b.output, 2);
            cr_assert_eq(s.nodes[i].b.lag, 3);
            found = 1;
        }
    cr_assert(found);
}

Test(spec, errors_name_the_path_and_reason)
{
    expect_error("{\"entry\":{\"long\":{\"cross_above\":[\"fast\",\"slwo\"]}},"
                 "\"indicators\":{\"fast\":\"sma:5\"}}",
                 "entry.long.cross_above[1]: unknown operand 'slwo'", "indicators: fast");
    expect_error("{\"entry\":{\"long\":{\"gt\":[\"close\",1]}},\"stop_los\":{\"percent\":1}}",
                 "stop_los: unknown field", "stop_loss");
    expect_error("{\"entry\":{\"long\":{\"gt\":[\"close\",1]}},\n \"exit\": {,}}", "line 2",
                 "invalid JSON");
    expect_error("{\"entry\":{\"long\":{\"above\":[\"close\",1]}}}", "entry.long.above",
                 "unknown operator");
    expect_error("{\"entry\":{\"long\":{\"gt\":[\"close\"]}}}", "entry.long.gt",
                 "exactly two operands");
    expect_error("{\"entry\":{\"long\":{\"gt\":[\"close\",\"close[-1]\"]}}}", "entry.long.gt[1]",
                 "future");
    expect_error("{\"entry\":{\"long\":{\"gt\":[\"close\",1]}},\"sizing\":{\"risk_percent\":1}}",
                 "sizing.risk_percent", "stop_loss");
    expect_error("{\"indicators\":{\"x\":\"sma:0\"},\"entry\":{\"long\":{\"gt\":[\"x\",1]}}}",
                 "indicators.x", "sma:0");
    expect_error("{\"indicators\":{\"m\":\"macd\"},\"entry\":{\"long\":{\"gt\":[\"m.sig\",1]}}}",
                 "no output 'sig'", "signal");
    expect_error("{\"entry\":{\"long\":{\"gt\":[\"close\",\"$p\"]}}}", "entry.long.gt[1]",
                 "unknown parameter '$p'");
    expect_error("{\"direction\":\"up\",\"entry\":{\"long\":{\"gt\":[\"close\",1]}}}", "direction",
                 "\"both\"");
    expect_error("{\"exit\":{\"long\":{\"gt\":[\"close\",1]}}}", "entry", "required");
    expect_error("{\"entry\":{\"long\":{\"gt\":[1,2]}}}", "entry.long.gt", "two constants");
    expect_error("{\"entry\":{\"long\":{\"gt\":[\"close\",1]}},\"stop_loss\":{\"percent\":-2}}",
                 "stop_loss.percent", "greater than 0");
    expect_error("[1,2]", "JSON object", NULL);
    expect_error(
        "{\"indicators\":{\"close\":\"sma:3\"},\"entry\":{\"long\":{\"gt\":[\"close\",1]}}}",
        "indicators.close", "price field");
}

/* Every tests/data/specs/NAME.json must fail with a message containing the
 * text of NAME.expect (data-driven, like curl's tests/data). */
Test(spec, data_driven_error_cases)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/specs", QG_TEST_DATA);
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "no %s", dir);
    size_t cases = 0;
    struct dirent *ent;
    while ((ent = readdir(d))) {
        size_t len = strlen(ent->d_name);
        if (len < 6 || strcmp(ent->d_name + len - 5, ".json") != 0) continue;
        char path[1024], expect_path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, ent->d_name);
        snprintf(expect_path, sizeof expect_path, "%s/%.*s.expect", dir, (int)(len - 5),
                 ent->d_name);
        char *json = NULL, *expect = NULL;
        size_t jn, en;
        qg_error err = {0};
        cr_assert_eq(qg_file_read_all(path, 1 << 20, &json, &jn, &err), QG_OK, "%s", err.msg);
        cr_assert_eq(qg_file_read_all(expect_path, 4096, &expect, &en, &err), QG_OK, "%s", err.msg);
        while (en && (expect[en - 1] == '\n' || expect[en - 1] == '\r')) expect[--en] = '\0';
        qg_strategy s;
        cr_assert_eq(qg_strategy_parse(json, jn, NULL, 0, &s, &err), QG_EINVAL, "%s was accepted",
                     ent->d_name);
        cr_assert(strstr(err.msg, expect), "%s: '%s' not in: %s", ent->d_name, expect, err.msg);
        free(json);
        free(expect);
        cases++;
    }
    closedir(d);
    cr_assert_geq(cases, 20, "only %zu cases found", cases);
}
