/*
 * resample.c - aggregating bars into wider buckets.
 *
 * One pass, no per-bar division in the common case: the current bucket's
 * end is kept and qg_time_bucket is only called when a bar falls past it.
 * Buckets are aligned as qg_time_bucket aligns them (UTC epoch; Monday
 * weeks), so the first bucket may be partial.
 */
#include <quantgate/bars.h>
#include <quantgate/time.h>

static qg_status check_tf(const qg_bars *in, int64_t tf_ms, qg_error *err)
{
    char a[24], b[24];
    if (tf_ms <= 0)
        return qg_error_set(err, QG_EINVAL, "cannot resample to a timeframe of %lld ms",
                            (long long)tf_ms);
    int64_t src = in->timeframe_ms;
    if (src <= 0 || (tf_ms >= src && tf_ms % src == 0)) return QG_OK;
    qg_timeframe_format(src, a, sizeof a);
    qg_timeframe_format(tf_ms, b, sizeof b);
    return qg_error_set(err, QG_EINVAL, "cannot resample %s bars to %s: %s", a, b,
                        tf_ms < src ? "the target timeframe is shorter" : "not a multiple");
}

qg_status qg_bars_resample(const qg_bars *in, int64_t tf_ms, qg_bars *out, qg_error *err)
{
    qg_status rc = check_tf(in, tf_ms, err);
    if (rc) return rc;
    size_t per = in->timeframe_ms > 0 ? (size_t)(tf_ms / in->timeframe_ms) : 1;
    if (in->n && qg_bars_reserve(out, in->n / per + 2))
        return qg_error_set(err, QG_ENOMEM, "out of memory resampling %zu bars", in->n);
    int64_t end = INT64_MIN; /* the current bucket holds ts < end */
    for (size_t i = 0; i < in->n; i++) {
        size_t k = out->n - 1;
        if (out->n && in->ts[i] < end) {
            if (in->high[i] > out->high[k]) out->high[k] = in->high[i];
            if (in->low[i] < out->low[k]) out->low[k] = in->low[i];
            out->close[k] = in->close[i];
            out->volume[k] += in->volume[i];
            continue;
        }
        int64_t start = qg_time_bucket(in->ts[i], tf_ms);
        end = start + tf_ms;
        qg_bar b = {start, in->open[i], in->high[i], in->low[i], in->close[i], in->volume[i]};
        if (qg_bars_push(out, &b))
            return qg_error_set(err, QG_ENOMEM, "out of memory resampling %zu bars", in->n);
    }
    out->timeframe_ms = tf_ms;
    return QG_OK;
}
