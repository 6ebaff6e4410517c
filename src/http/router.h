/*
 * router.h - matching a method and path against the route table.
 *
 * Patterns are literal segments and `{name}` segments that match any one
 * non-empty segment. Matching walks the table in order and stops at the
 * first route whose pattern and method both match, so the table's order is
 * the precedence. No allocation: captured parameters point into a copy of
 * the path that the caller provides and the router splits in place.
 */
#ifndef QG_ROUTER_H
#define QG_ROUTER_H

#include "http/http.h"

#define QG_ROUTE_NOT_FOUND  (-1)
#define QG_ROUTE_BAD_METHOD (-2)

/* Number of entries in qg_routes. */
int qg_router_count(void);

/* path: a writable copy of the request path (no query); it is cut into
 * NUL-terminated parameters in place. Returns the route's index, or
 * QG_ROUTE_NOT_FOUND, or QG_ROUTE_BAD_METHOD with *allow set to the methods
 * the path does take (QG_GET | ...). HEAD matches GET routes. */
int qg_router_match(char *path, int method, const char *params[QG_MAX_PARAMS], int *nparams,
                    int *allow);

/* Writes "GET, POST" for a method mask into out. */
void qg_router_allow_header(int allow, char *out, size_t cap);

/* QG_GET.. for a method name of len bytes, 0 when unknown. */
int qg_method_parse(const char *name, size_t len);

#endif
