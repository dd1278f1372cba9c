/* file.c: input files, read whole into memory.
 *
 * Not mapped: a mapped file that another program truncates while a trainer
 * reads it ends the trainer with SIGBUS, where read() just sees fewer bytes
 * and the parser says the file is truncated. The data sets are a few hundred
 * MB at most, and compressed ones must be inflated into memory anyway, so an
 * rt_file is "the file's bytes in memory", however they were obtained.
 */
#include "rt.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Reads fd to its end into a buffer of malloc, with room for size_hint
 * bytes at first: st_size, which files under /proc leave at 0, and which
 * the file may outgrow or fall short of while it is read.
 *
 * A FIFO comes opened with O_NONBLOCK, so that open() did not wait for a
 * writer. Then read() returns 0 at once when no process holds the FIFO
 * open for writing, and fails with EAGAIN when one does but has written
 * nothing yet; only in the second case is there something to wait for, and
 * from then on the pipe is read in blocking mode, like any pipe. */
static int read_to_end(rt_file *f, int fd, size_t size_hint, bool fifo)
{
    size_t cap = size_hint ? size_hint + 1 : 64 * 1024, len = 0;
    unsigned char *buf = malloc(cap);
    bool nonblocking = fifo;
    for (;;) {
        if (!buf) {
            rt_error("%s: out of memory holding %zu bytes of it", f->path, cap);
            return -1;
        }
        if (len == cap) {
            unsigned char *more = cap <= SIZE_MAX / 2 ? realloc(buf, cap * 2) : NULL;
            if (!more)
                free(buf);
            buf = more;
            cap *= 2;
            continue;
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN && nonblocking) {
            nonblocking = false;
            if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) == 0)
                continue;
        }
        if (n < 0) {
            rt_error("%s: cannot read: %s", f->path, strerror(errno));
            free(buf);
            return -1;
        }
        if (n == 0 && nonblocking && len == 0) {
            rt_error("%s: is a FIFO that no process is writing into; expected a "
                     "regular file, or a pipe with a writer (such as bash's "
                     "<(command))", f->path);
            free(buf);
            return -1;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    f->data = buf;
    f->size = len;
    return 0;
}

int rt_file_open(rt_file *f, const char *path)
{
    memset(f, 0, sizeof *f);
    f->path = path;
    /* O_NONBLOCK: opening a FIFO must not wait forever for a writer. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
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
    if (!S_ISREG(st.st_mode) && !S_ISFIFO(st.st_mode)) {
        rt_error("%s: is %s; expected a regular file", path, rt_file_kind(st.st_mode));
        close(fd);
        return -1;
    }
    size_t hint = S_ISREG(st.st_mode) && (uint64_t)st.st_size < SIZE_MAX
                      ? (size_t)st.st_size : 0;
    int rc = read_to_end(f, fd, hint, S_ISFIFO(st.st_mode));
    close(fd);
    if (rc != 0)
        return -1;
    if (f->size == 0) {
        rt_error("%s: the file is empty", path);
        rt_file_close(f);
        return -1;
    }
    return 0;
}

void rt_file_close(rt_file *f)
{
    free((void *)f->data);
    memset(f, 0, sizeof *f);
}
