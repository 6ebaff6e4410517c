/*
 * risk.c - position sizing helpers for the sample strategies.
 */
#include <math.h>

#define MAX_OPEN_TRADES 3

struct risk_limits {
    double max_risk_pct; /* of equity, per trade */
    int max_open;
};

static int open_trades = 0;

/* Lots to trade so that a stop of stop_points loses at most risk_pct of
 * equity. Returns 0 when the stop is zero. */
double position_size(double equity, double risk_pct, double stop_points, double point_value)
{
    if (stop_points <= 0 || point_value <= 0) return 0;
    double risk = equity * risk_pct / 100.0;
    return floor(risk / (stop_points * point_value) * 100.0) / 100.0;
}

/* True when another trade may be opened under the limits. */
int may_open(const struct risk_limits *l)
{
    return open_trades < l->max_open;
}
