/* file.c: input files mapped read-only; output files replaced atomically. */
#include "rt.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int rt_file_open(rt_file *f, const char *path)
{
    memset(f, 0, sizeof *f);
    f->path = path;
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        rt_error("%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        rt_error("%s: cannot stat: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    if (S_ISDIR(st.st_mode)) {
        rt_error("%s: is a directory, expected a data file", path);
        close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        rt_error("%s: is not a regular file", path);
        close(fd);
        return -1;
    }
    if (st.st_size == 0) {
        rt_error("%s: the file is empty", path);
        close(fd);
        return -1;
    }
    f->size = (size_t)st.st_size;
    void *p = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED) {
        rt_error("%s: cannot map %zu bytes: %s", path, f->size, strerror(errno));
        return -1;
    }
    f->data = p;
    f->map_size = f->size;
    return 0;
}

void rt_file_close(rt_file *f)
{
    if (f->map_size)
        munmap((void *)f->data, f->map_size);
    memset(f, 0, sizeof *f);
}

static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return strdup(".");
    if (slash == path)
        return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

int rt_check_writable(const char *path, const char *what)
{
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        rt_error("%s %s: is a directory, expected a file name", what, path);
        return -1;
    }
    char *dir = dir_of(path);
    if (!dir) {
        rt_error("out of memory");
        return -1;
    }
    int ok = stat(dir, &st) == 0 && S_ISDIR(st.st_mode);
    if (!ok)
        rt_error("%s %s: directory %s does not exist", what, path, dir);
    else if (access(dir, W_OK) != 0) {
        rt_error("%s %s: cannot write into directory %s: %s", what, path, dir,
                 strerror(errno));
        ok = 0;
    }
    free(dir);
    return ok ? 0 : -1;
}

FILE *rt_atomic_open(rt_atomic *a, const char *path)
{
    memset(a, 0, sizeof *a);
    if (rt_check_writable(path, "output") != 0)
        return NULL;
    char *dir = dir_of(path);
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    size_t len = strlen(dir) + strlen(base) + 32;
    a->path = strdup(path);
    a->tmp = malloc(len);
    if (!dir || !a->path || !a->tmp) {
        free(dir);
        rt_error("out of memory");
        rt_atomic_abort(a);
        return NULL;
    }
    snprintf(a->tmp, len, "%s/.%s.tmp-XXXXXX", dir, base);
    free(dir);
    int fd = mkstemp(a->tmp);
    if (fd < 0) {
        rt_error("%s: cannot create a temporary file next to it: %s", path,
                 strerror(errno));
        free(a->tmp);
        a->tmp = NULL;
        rt_atomic_abort(a);
        return NULL;
    }
    /* mkstemp makes the file 0600; give it what a new file would get. */
    mode_t mask = umask(0);
    umask(mask);
    fchmod(fd, 0666 & ~mask);
    a->f = fdopen(fd, "wb");
    if (!a->f) {
        rt_error("%s: %s", a->tmp, strerror(errno));
        close(fd);
        rt_atomic_abort(a);
        return NULL;
    }
    return a->f;
}

void rt_atomic_abort(rt_atomic *a)
{
    if (a->f)
        fclose(a->f);
    if (a->tmp)
        unlink(a->tmp);
    free(a->tmp);
    free(a->path);
    memset(a, 0, sizeof *a);
}

int rt_atomic_commit(rt_atomic *a)
{
    int err = 0;
    if (fflush(a->f) != 0 || ferror(a->f))
        err = errno ? errno : EIO;
    if (!err && fsync(fileno(a->f)) != 0)
        err = errno;
    int rc = fclose(a->f);
    a->f = NULL;
    if (!err && rc != 0)
        err = errno;
    if (!err && rename(a->tmp, a->path) != 0)
        err = errno;
    if (err) {
        rt_error("%s: cannot write: %s (the file is left as it was)", a->path,
                 strerror(err));
        rt_atomic_abort(a);
        return -1;
    }
    /* Make the rename itself durable. */
    char *dir = dir_of(a->path);
    if (dir) {
        int dfd = open(dir, O_RDONLY | O_DIRECTORY);
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
        free(dir);
    }
    free(a->tmp);
    a->tmp = NULL;
    rt_atomic_abort(a);
    return 0;
}
