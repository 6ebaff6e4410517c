/*
 * cmd_user.c - `quantgate user`: accounts managed from the server's shell,
 * for the first admin and for recovery when nobody can log in.
 *
 * Passwords are read from the first line of stdin, never from the command
 * line, where they would show up in `ps` and shell history. Accounts made
 * here are approved at once: whoever runs this already owns the server.
 */
#include "auth/auth.h"
#include "cmd/cmd.h"

#include <quantgate/time.h>

#include <sodium.h>

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define CMD               "user"
#define PASSWORD_LINE_MAX 2048

static void usage(FILE *out)
{
    fprintf(out, "usage: quantgate user add --email E --role admin|developer|client\n"
                 "       quantgate user list\n"
                 "       quantgate user approve --email E\n"
                 "       quantgate user passwd --email E\n"
                 "Options: --database URL (default: DATABASE_URL or sqlite://<QG_DATA_DIR>/"
                 "quantgate.db)\n"
                 "add and passwd read the password from the first line of stdin (at least 10\n"
                 "characters). Accounts added here are approved.\n");
}

/* Reads the first line of stdin into buf without its line ending. */
static int read_password(char *buf, size_t cap)
{
    if (isatty(STDIN_FILENO)) fprintf(stderr, "Password: ");
    if (!fgets(buf, (int)cap, stdin)) {
        buf[0] = '\0';
        return qg_cmd_fail(CMD, "no password on stdin (give it as the first line)");
    }
    size_t n = strcspn(buf, "\r\n");
    if (buf[n] == '\0' && n == cap - 1) {
        sodium_memzero(buf, cap);
        return qg_cmd_fail(CMD, "password: longer than 1024 characters");
    }
    buf[n] = '\0';
    qg_error err = {0};
    if (qg_password_check_policy(buf, &err)) {
        sodium_memzero(buf, cap);
        return qg_cmd_fail(CMD, "%s", err.msg);
    }
    return 0;
}

typedef struct {
    qg_store *store;
    qg_conn *conn;
} db;

static int db_open(db *d, const char *url)
{
    qg_error err = {0};
    if (qg_auth_init(&err)) return qg_cmd_fail(CMD, "%s", err.msg);
    return qg_cmd_store_open(CMD, url, &d->store, &d->conn);
}

static void db_close(db *d)
{
    qg_cmd_store_close(d->store, d->conn);
}

static int user_add(db *d, const char *email, qg_role role)
{
    char pw[PASSWORD_LINE_MAX];
    int rc = read_password(pw, sizeof pw);
    if (rc) return rc;
    qg_error err = {0};
    qg_user u;
    qg_status st = qg_user_create(d->conn, email, pw, role, true, &u, &err);
    sodium_memzero(pw, sizeof pw);
    if (st) return qg_cmd_fail(CMD, "%s", err.msg);
    printf("created %s %s (%s, approved)\n", u.id, u.email, qg_role_name(u.role));
    return 0;
}

typedef struct {
    int n;
    char last[QG_ID_MAX];
} list_page;

static qg_status print_user(void *ud, const qg_user *u)
{
    list_page *p = ud;
    printf("%-30s %-40s %-10s %-9s %s\n", u->id, u->email, qg_role_name(u->role),
           u->approved ? "yes" : "no", u->disabled ? "yes" : "no");
    snprintf(p->last, sizeof p->last, "%s", u->id);
    p->n++;
    return QG_OK;
}

static int user_list(db *d)
{
    qg_error err = {0};
    char before[QG_ID_MAX] = "";
    enum { PAGE = 500 };
    printf("%-30s %-40s %-10s %-9s %s\n", "ID", "EMAIL", "ROLE", "APPROVED", "DISABLED");
    for (;;) {
        list_page p = {0};
        if (qg_user_list(d->conn, before[0] ? before : NULL, PAGE, false, print_user, &p, &err))
            return qg_cmd_fail(CMD, "%s", err.msg);
        if (p.n < PAGE) break;
        snprintf(before, sizeof before, "%s", p.last);
    }
    return 0;
}

static int user_approve(db *d, const char *email)
{
    qg_error err = {0};
    qg_user u;
    bool yes = true;
    if (qg_user_get_by_email(d->conn, email, &u, &err) ||
        qg_user_update(d->conn, u.id, NULL, &yes, NULL, &err))
        return qg_cmd_fail(CMD, "%s", err.msg);
    printf("approved %s %s\n", u.id, u.email);
    return 0;
}

static int user_passwd(db *d, const char *email)
{
    qg_error err = {0};
    qg_user u;
    if (qg_user_get_by_email(d->conn, email, &u, &err)) return qg_cmd_fail(CMD, "%s", err.msg);
    char pw[PASSWORD_LINE_MAX];
    int rc = read_password(pw, sizeof pw);
    if (rc) return rc;
    qg_status st = qg_user_set_password(d->conn, u.id, pw, &err);
    sodium_memzero(pw, sizeof pw);
    if (st) return qg_cmd_fail(CMD, "%s", err.msg);
    printf("password changed for %s %s\n", u.id, u.email);
    return 0;
}

int qg_cmd_user(int argc, char **argv)
{
    static const char *const actions[] = {"add", "list", "approve", "passwd", NULL};
    int which = 0;
    int st = qg_args_action(argc, argv, CMD, actions, usage, &which);
    if (st >= 0) return st;
    const char *sub = actions[which];
    bool is_add = which == 0, is_list = which == 1, is_approve = which == 2;

    const char *email = NULL, *role_s = NULL, *url = NULL;
    qg_args a = qg_args_begin(argc - 1, argv + 1);
    a.cmd = CMD;
    while (qg_args_next(&a)) {
        if (qg_args_flag(&a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (qg_args_value(&a, "--database", &url)) continue;
        if (!is_list && qg_args_value(&a, "--email", &email)) continue;
        if (is_add && qg_args_value(&a, "--role", &role_s)) continue;
        return qg_args_unknown(&a);
    }
    if (!is_list && !email) {
        fprintf(stderr, "quantgate user %s: --email is required\n", sub);
        return 2;
    }
    if (email) {
        /* Checked before a password is asked for. */
        char norm[QG_EMAIL_MAX + 1];
        qg_error err = {0};
        if (qg_email_normalize(email, norm, sizeof norm, &err)) {
            fprintf(stderr, "quantgate user %s: --email: %s\n", sub, err.msg);
            return 2;
        }
    }
    qg_role role = QG_ROLE_NONE;
    if (is_add) {
        if (!role_s) {
            fprintf(stderr, "quantgate user add: --role is required (admin, developer, client)\n");
            return 2;
        }
        role = qg_role_parse(role_s);
        if (role == QG_ROLE_NONE) {
            fprintf(stderr,
                    "quantgate user add: --role: '%s' is not a role (admin, developer, client)\n",
                    role_s);
            return 2;
        }
    }

    db d;
    int rc = db_open(&d, url);
    if (rc) return rc;
    if (is_add)
        rc = user_add(&d, email, role);
    else if (is_list)
        rc = user_list(&d);
    else if (is_approve)
        rc = user_approve(&d, email);
    else
        rc = user_passwd(&d, email);
    db_close(&d);
    return rc;
}
