/*
 * file.c - chunked reads for push parsers, whole-file reads and atomic
 * writes. The chunk buffer is reused for the whole file.
 */
#include <quantgate/file.h>

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

qg_status qg_file_feed(const char *path, size_t chunk_size, qg_feed_fn feed, void *ud,
                       qg_progress_fn progress, void *progress_ud, qg_error *err)
{
    qg_status rc = QG_OK;
    char *buf = NULL;
    bool is_stdin = strcmp(path, "-") == 0;
    int fd = is_stdin ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return qg_error_set(err, errno == ENOENT ? QG_ENOTFOUND : QG_EIO, "%s: %s", path,
                            strerror(errno));
    struct stat st;
    uint64_t total = (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) ? (uint64_t)st.st_size : 0;
    if (total) posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    if (!chunk_size) chunk_size = 4u << 20;
    buf = malloc(chunk_size);
    if (!buf) {
        rc = qg_error_set(err, QG_ENOMEM, "%s: out of memory for the read buffer", path);
        goto out;
    }
    uint64_t done = 0;
    for (;;) {
        ssize_t n = read(fd, buf, chunk_size);
        if (n < 0) {
            if (errno == EINTR) continue;
            rc = qg_error_set(err, QG_EIO, "%s: read failed: %s", path, strerror(errno));
            goto out;
        }
        if (n == 0) break;
        rc = feed(ud, buf, (size_t)n);
        if (rc) goto out;
        done += (uint64_t)n;
        if (progress) progress(progress_ud, done, total);
    }
out:
    free(buf);
    if (!is_stdin) close(fd);
    return rc;
}

qg_status qg_file_read_all(const char *path, size_t max, char **out, size_t *out_len, qg_error *err)
{
    qg_status rc = QG_OK;
    FILE *f = fopen(path, "rb");
    char *data = NULL;
    size_t len = 0, cap = 0;
    if (!f)
        return qg_error_set(err, errno == ENOENT ? QG_ENOTFOUND : QG_EIO, "%s: %s", path,
                            strerror(errno));
    for (;;) {
        if (len + 4096 + 1 > cap) {
            size_t ncap = cap ? cap * 2 : 65536;
            char *p = realloc(data, ncap);
            if (!p) {
                rc = qg_error_set(err, QG_ENOMEM, "%s: out of memory", path);
                goto out;
            }
            data = p;
            cap = ncap;
        }
        size_t n = fread(data + len, 1, cap - len - 1, f);
        len += n;
        if (len > max) {
            rc = qg_error_set(err, QG_ERANGE, "%s: larger than the %zu-byte limit", path, max);
            goto out;
        }
        if (n == 0) break;
    }
    if (ferror(f)) {
        rc = qg_error_set(err, QG_EIO, "%s: read failed", path);
        goto out;
    }
    data[len] = '\0';
    *out = data;
    *out_len = len;
    data = NULL;
out:
    free(data);
    fclose(f);
    return rc;
}

qg_status qg_file_write_all(const char *path, const void *data, size_t n, qg_error *err)
{
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid()) >= sizeof tmp)
        return qg_error_set(err, QG_EINVAL, "path too long: %s", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return qg_error_set(err, QG_EIO, "%s: %s", path, strerror(errno));
    bool ok = fwrite(data, 1, n, f) == n;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return qg_error_set(err, QG_EIO, "%s: write failed: %s", path, strerror(e));
    }
    return QG_OK;
}
