/* output.h: writing an output file so that a crash, a kill or a full disk
 * never leaves a half-written one. Shared by the runtime (libcnnrt) and the
 * compiler (cnnc): both build runtime/output.c and runtime/util.c.
 *
 * A function that fails records its message with rt_error() (util.c) and
 * returns -1 (or NULL); rt_errmsg() reads it. Messages name the file.
 */
#ifndef CNNRT_OUTPUT_H
#define CNNRT_OUTPUT_H

#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>

const char *rt_errmsg(void);

/* What an output path is written as:
 *  - a regular file, or a path where nothing is yet: a temporary beside it
 *    (".NAME.tmp-PID-XXXXXX"), fsync, rename over it, so that the path holds
 *    either its old content or the whole new one. A symbolic link is
 *    followed: its target is replaced (or created, when the link dangles),
 *    never the link itself.
 *  - a character device (/dev/null, a terminal) or a FIFO: written straight
 *    through; replacing them would put a regular file in their place.
 *  - anything else (a directory, a block device, a socket) is refused.
 * Temporaries do not outlive their writer: SIGINT, SIGTERM and SIGHUP remove
 * them (when the program left those signals at their default action), and
 * opening an output removes the temporaries of the same output whose process
 * is gone (after a SIGKILL or a crash). */
typedef struct rt_output {
    char *path;     /* as given, for messages */
    char *target;   /* the file replaced: path with its symbolic links followed */
    char *tmp;      /* the temporary beside target; NULL when written through */
    FILE *f;
    int slot;       /* in the table the signal handler reads; -1: none */
} rt_output;

FILE *rt_output_open(rt_output *o, const char *path);
/* Flushes and closes; a temporary is synced and renamed over the target. On
 * any failure removes the temporary and returns -1. */
int rt_output_commit(rt_output *o);
/* Removes the temporary; the target stays as it was. */
void rt_output_abort(rt_output *o);

/* Whether rt_output_open(path) could write there (the directory exists and
 * is writable; or the device or FIFO is writable), without creating
 * anything. what names the flag in the message ("--save"). */
int rt_check_writable(const char *path, const char *what);

/* Whether a and b name the same file: the same device and inode when both
 * exist, else the same path once symbolic links and the directory are
 * resolved. */
bool rt_same_file(const char *a, const char *b);
/* Whether path exists and is a character device or a FIFO, which an output
 * writes through without replacing. */
bool rt_is_stream(const char *path);
/* "a directory", "a character device", ... for st_mode of a file that is
 * not a regular file. */
const char *rt_file_kind(mode_t mode);

#endif /* CNNRT_OUTPUT_H */
