/*
 * file.h - streaming a file through a push parser in fixed-size chunks.
 *
 * The engine's parsers are pure push parsers (they take bytes, never open
 * files); this is the one place that reads a file for them. Memory stays
 * bounded by the chunk size whatever the file size, which keeps loading a
 * multi-gigabyte CSV from counting against resident memory.
 */
#ifndef QUANTGATE_FILE_H
#define QUANTGATE_FILE_H

#include <quantgate/status.h>

#include <stddef.h>
#include <stdint.h>

/* Receives the next chunk; a non-zero status stops the read and is returned. */
typedef qg_status (*qg_feed_fn)(void *ud, const char *data, size_t n);
/* Told the byte count done so far and the total (0 when unknown). */
typedef void (*qg_progress_fn)(void *ud, uint64_t done, uint64_t total);

/* Reads path ("-" is stdin) in chunks of chunk_size (0: 4 MiB) and feeds them
 * in order. progress may be NULL. File errors name the path. */
qg_status qg_file_feed(const char *path, size_t chunk_size, qg_feed_fn feed, void *ud,
                       qg_progress_fn progress, void *progress_ud, qg_error *err);

/* Reads a whole file (capped at max bytes) into a malloc'd NUL-terminated
 * buffer owned by the caller. */
qg_status qg_file_read_all(const char *path, size_t max, char **out, size_t *out_len,
                           qg_error *err);

/* Writes data to path atomically (temp file + rename). */
qg_status qg_file_write_all(const char *path, const void *data, size_t n, qg_error *err);

#endif
