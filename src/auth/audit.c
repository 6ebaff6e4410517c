/*
 * audit.c - appending to and reading the audit log.
 *
 * Ids are time-sortable (ULIDs), so "newest first" is ORDER BY id DESC and
 * the `before` cursor is a plain id comparison. The WHERE clause is built
 * only from the filters that are set, every value bound as a parameter.
 */
#include "auth/audit.h"

#include <quantgate/time.h>

#include <stdio.h>
#include <string.h>

#define QG_AUDIT_LIMIT_DEFAULT 50
#define QG_AUDIT_LIMIT_MAX     500

qg_status qg_audit_append(qg_conn *c, qg_audit_entry *e, qg_error *err)
{
    if (!e->action || !*e->action) return qg_error_set(err, QG_EINVAL, "audit: action is required");
    if (!e->outcome || !*e->outcome)
        return qg_error_set(err, QG_EINVAL, "audit: outcome is required");
    if (!e->id[0]) qg_store_new_id("aud", e->id, sizeof e->id);
    if (e->ts == 0) e->ts = qg_time_now_ms();
    qg_val p[] = {QG_VTEXT(e->id),          QG_VINT(e->ts),      QG_VTEXT(e->actor_id),
                  QG_VTEXT(e->actor_email), QG_VTEXT(e->action), QG_VTEXT(e->target),
                  QG_VTEXT(e->outcome),     QG_VINT(e->status),  QG_VTEXT(e->address),
                  QG_VTEXT(e->request_id)};
    return qg_conn_exec(c,
                        "INSERT INTO audit (id, ts, actor_id, actor_email, action, target, "
                        "outcome, status, address, request_id) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        p, sizeof p / sizeof p[0], NULL, err);
}

typedef struct {
    qg_status (*fn)(void *ud, const qg_audit_entry *e);
    void *ud;
} audit_walk;

static qg_status audit_row(void *ud, const qg_row *r)
{
    audit_walk *w = ud;
    qg_audit_entry e;
    memset(&e, 0, sizeof e);
    snprintf(e.id, sizeof e.id, "%s", qg_row_text(r, 0) ? qg_row_text(r, 0) : "");
    e.ts = qg_row_int(r, 1);
    e.actor_id = qg_row_text(r, 2);
    e.actor_email = qg_row_text(r, 3);
    e.action = qg_row_text(r, 4);
    e.target = qg_row_text(r, 5);
    e.outcome = qg_row_text(r, 6);
    e.status = (int)qg_row_int(r, 7);
    e.address = qg_row_text(r, 8);
    e.request_id = qg_row_text(r, 9);
    return w->fn(w->ud, &e);
}

qg_status qg_audit_query(qg_conn *c, const qg_audit_filter *f,
                         qg_status (*fn)(void *ud, const qg_audit_entry *e), void *ud,
                         qg_error *err)
{
    char sql[512] = "SELECT id, ts, actor_id, actor_email, action, target, outcome, status, "
                    "address, request_id FROM audit WHERE 1 = 1";
    qg_val p[8];
    size_t n = 0;
    qg_audit_filter none = {0};
    if (!f) f = &none;
    if (f->actor && *f->actor) {
        strcat(sql, " AND (actor_id = ? OR actor_email = ?)");
        p[n++] = QG_VTEXT(f->actor);
        p[n++] = QG_VTEXT(f->actor);
    }
    if (f->action && *f->action) {
        strcat(sql, " AND action = ?");
        p[n++] = QG_VTEXT(f->action);
    }
    if (f->outcome && *f->outcome) {
        strcat(sql, " AND outcome = ?");
        p[n++] = QG_VTEXT(f->outcome);
    }
    if (f->from > 0) {
        strcat(sql, " AND ts >= ?");
        p[n++] = QG_VINT(f->from);
    }
    if (f->to > 0) {
        strcat(sql, " AND ts <= ?");
        p[n++] = QG_VINT(f->to);
    }
    if (f->before && *f->before) {
        strcat(sql, " AND id < ?");
        p[n++] = QG_VTEXT(f->before);
    }
    strcat(sql, " ORDER BY id DESC LIMIT ?");
    int limit = f->limit <= 0 ? QG_AUDIT_LIMIT_DEFAULT : f->limit;
    if (limit > QG_AUDIT_LIMIT_MAX) limit = QG_AUDIT_LIMIT_MAX;
    p[n++] = QG_VINT(limit);
    audit_walk w = {fn, ud};
    return qg_conn_query(c, sql, p, n, audit_row, &w, err);
}
