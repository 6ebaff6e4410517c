/*
 * hash.h - FNV-1a, the project's one non-cryptographic hash (hash tables,
 * statement caches, feature hashing). Not for anything an attacker may
 * choose keys against where collisions would cost more than a longer
 * chain: use libsodium there.
 */
#ifndef QUANTGATE_HASH_H
#define QUANTGATE_HASH_H

#include <stddef.h>
#include <stdint.h>

#define QG_FNV1A_BASIS 0xcbf29ce484222325ULL

/* Continues hash h over n bytes at p (start with QG_FNV1A_BASIS). */
static inline uint64_t qg_fnv1a(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ULL;
    return h;
}

/* The same over a NUL-terminated string. */
static inline uint64_t qg_fnv1a_str(uint64_t h, const char *s)
{
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

#endif
