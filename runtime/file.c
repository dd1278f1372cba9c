/* file.c: input files mapped read-only. */
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
