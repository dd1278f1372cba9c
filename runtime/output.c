/* output.c: output files that are never left half-written (output.h).
 *
 * Shared by the runtime and the compiler: it needs nothing but util.c.
 */
#include "rt.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

const char *rt_file_kind(mode_t mode)
{
    if (S_ISDIR(mode))
        return "a directory";
    if (S_ISCHR(mode))
        return "a character device";
    if (S_ISBLK(mode))
        return "a block device";
    if (S_ISSOCK(mode))
        return "a socket";
    if (S_ISFIFO(mode))
        return "a FIFO";
    return "not a regular file";
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

static const char *base_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* dir/name in a buffer of malloc; NULL when out of memory. */
static char *join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/", name);
    return s;
}

/* path with the symbolic links of its last component followed, in a buffer
 * of malloc: the file that renaming over path must replace. A dangling
 * link gives the path it points to. NULL with errno on failure. */
static char *follow_links(const char *path)
{
    char *p = strdup(path);
    for (int hops = 0; p; hops++) {
        struct stat st;
        if (lstat(p, &st) != 0 || !S_ISLNK(st.st_mode))
            return p;
        char link[PATH_MAX];
        ssize_t n = hops < 40 ? readlink(p, link, sizeof link) : -1;
        if (n < 0 || (size_t)n == sizeof link) {
            errno = hops >= 40 ? ELOOP : n < 0 ? errno : ENAMETOOLONG;
            free(p);
            return NULL;
        }
        link[n] = '\0';
        char *dir = link[0] == '/' ? NULL : dir_of(p);
        char *next = link[0] == '/' ? strdup(link) : dir ? join(dir, link) : NULL;
        free(dir);
        free(p);
        p = next;
    }
    errno = ENOMEM;
    return NULL;
}

bool rt_is_stream(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && (S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode));
}

/* How path is to be written: straight through (*through), or by replacing
 * *target (path with its links followed, of malloc). Checks what can be
 * checked without creating anything; what names the flag in messages. */
static int plan_output(const char *path, const char *what, bool *through, char **target)
{
    *through = false;
    *target = NULL;
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
        if (S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode)) {
            if (access(path, W_OK) != 0) {
                rt_error("%s %s: cannot write: %s", what, path, strerror(errno));
                return -1;
            }
            *through = true;
            return 0;
        }
        if (S_ISDIR(st.st_mode))
            rt_error("%s %s: is a directory, expected a file name", what, path);
        else
            rt_error("%s %s: is %s; expected a regular file, a character device or "
                     "a FIFO", what, path, rt_file_kind(st.st_mode));
        return -1;
    }
    char *t = follow_links(path);
    if (!t) {
        rt_error("%s %s: cannot follow the symbolic link: %s", what, path, strerror(errno));
        return -1;
    }
    char *dir = dir_of(t);
    if (!dir) {
        rt_error("out of memory");
        free(t);
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
    if (!ok) {
        free(t);
        return -1;
    }
    *target = t;
    return 0;
}

int rt_check_writable(const char *path, const char *what)
{
    bool through;
    char *target;
    if (plan_output(path, what, &through, &target) != 0)
        return -1;
    free(target);
    return 0;
}

/* ---- temporaries that do not outlive their writer --------------------------- */

/* The temporaries being written, for the signal handler: a slot's path is
 * complete before its flag says so. */
enum { SLOTS = 8 };
static char pending_path[SLOTS][PATH_MAX];
static atomic_int pending_used[SLOTS];

/* SIGINT, SIGTERM, SIGHUP: remove the temporaries, then die of the signal
 * as before (SA_RESETHAND restored the default action). Only unlink() and
 * raise(), both async-signal-safe. */
static void remove_pending(int sig)
{
    for (int i = 0; i < SLOTS; i++)
        if (atomic_load(&pending_used[i]))
            unlink(pending_path[i]);
    raise(sig);
}

/* Only over the default action: a program that ignores SIGHUP (nohup) or
 * handles a signal itself keeps doing so. */
static void install_handlers(void)
{
    static bool installed;
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    if (installed)
        return;
    installed = true;
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        struct sigaction old, sa;
        if (sigaction(sigs[i], NULL, &old) != 0 || (old.sa_flags & SA_SIGINFO) ||
            old.sa_handler != SIG_DFL)
            continue;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = remove_pending;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = SA_RESETHAND | SA_NODEFER;
        sigaction(sigs[i], &sa, NULL);
    }
}

static int claim_slot(const char *tmp)
{
    install_handlers();
    if (strlen(tmp) >= PATH_MAX)
        return -1;
    for (int i = 0; i < SLOTS; i++)
        if (!atomic_load(&pending_used[i])) {
            strcpy(pending_path[i], tmp);
            atomic_store(&pending_used[i], 1);
            return i;
        }
    return -1;   /* unprotected from signals; still found by remove_stale */
}

/* A SIGKILL or a crash leaves its temporary behind. Its name holds the
 * writer's process id: those of target's whose process is gone (ESRCH) are
 * removed. A live one's, or another user's (EPERM), stay. */
static void remove_stale(const char *target)
{
    char *dir = dir_of(target);
    char *prefix = dir ? malloc(strlen(base_of(target)) + 8) : NULL;
    DIR *d = prefix ? opendir(dir) : NULL;
    if (d) {
        sprintf(prefix, ".%s.tmp-", base_of(target));
        size_t plen = strlen(prefix);
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            const char *s = e->d_name + plen;
            if (strncmp(e->d_name, prefix, plen) != 0 || *s < '1' || *s > '9')
                continue;
            char *end;
            errno = 0;
            long pid = strtol(s, &end, 10);
            if (errno || pid > INT_MAX || *end != '-' || strlen(end + 1) != 6 ||
                pid == (long)getpid())
                continue;
            if (kill((pid_t)pid, 0) != 0 && errno == ESRCH)
                unlinkat(dirfd(d), e->d_name, 0);
        }
        closedir(d);
    }
    free(prefix);
    free(dir);
}

static void release_slot(rt_output *o)
{
    if (o->slot >= 0)
        atomic_store(&pending_used[o->slot], 0);
    o->slot = -1;
}

/* Creates o->tmp beside o->target, its name in the signal handler's table
 * before the file exists: there is no moment at which a signal could leave
 * it behind. The name is .NAME.tmp-PID-XXXXXX (remove_stale reads the PID);
 * the mode is what a new file gets (0666 less the umask). Returns the file
 * descriptor, or -1 with errno. */
static int create_temporary(rt_output *o)
{
    static const char chars[] =
        "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    static uint64_t counter;
    char *dir = dir_of(o->target);
    size_t len = dir ? strlen(dir) + strlen(base_of(o->target)) + 48 : 0;
    o->tmp = dir ? malloc(len) : NULL;
    if (!o->tmp) {
        free(dir);
        errno = ENOMEM;
        return -1;
    }
    int fd = -1;
    for (int attempt = 0; attempt < 100 && fd < 0; attempt++) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        /* splitmix64 of the time, the process and a counter */
        uint64_t r = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^
                     ((uint64_t)getpid() << 40) ^ ++counter * 0x9E3779B97F4A7C15u;
        r = (r ^ (r >> 30)) * 0xBF58476D1CE4E5B9u;
        r = (r ^ (r >> 27)) * 0x94D049BB133111EBu;
        r ^= r >> 31;
        char suffix[7];
        for (int i = 0; i < 6; i++, r /= 62)
            suffix[i] = chars[r % 62];
        suffix[6] = '\0';
        snprintf(o->tmp, len, "%s/.%s.tmp-%ld-%s", dir, base_of(o->target),
                 (long)getpid(), suffix);
        o->slot = claim_slot(o->tmp);
        fd = open(o->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0) {
            int err = errno;
            release_slot(o);
            errno = err;
            if (err != EEXIST)
                break;
        }
    }
    free(dir);
    if (fd < 0) {
        free(o->tmp);
        o->tmp = NULL;
    }
    return fd;
}

/* ---- writing ------------------------------------------------------------------ */

static FILE *open_through(rt_output *o)
{
    /* A FIFO: this waits for a reader, as a shell's redirection does. */
    int fd = open(o->path, O_WRONLY | O_NOCTTY | O_CLOEXEC);
    struct stat st;
    if (fd >= 0 && fstat(fd, &st) == 0 && !S_ISCHR(st.st_mode) && !S_ISFIFO(st.st_mode)) {
        close(fd);
        fd = -1;
        errno = EAGAIN;   /* it changed since plan_output looked */
    }
    if (fd < 0 || !(o->f = fdopen(fd, "wb"))) {
        rt_error("%s: cannot open for writing: %s", o->path, strerror(errno));
        if (fd >= 0)
            close(fd);
        rt_output_abort(o);
        return NULL;
    }
    return o->f;
}

FILE *rt_output_open(rt_output *o, const char *path)
{
    memset(o, 0, sizeof *o);
    o->slot = -1;
    bool through;
    char *target;
    if (plan_output(path, "output", &through, &target) != 0)
        return NULL;
    o->path = strdup(path);
    o->target = target;
    if (!o->path) {
        rt_error("out of memory");
        rt_output_abort(o);
        return NULL;
    }
    if (through)
        return open_through(o);
    remove_stale(o->target);
    int fd = create_temporary(o);
    if (fd < 0) {
        rt_error("%s: cannot create a temporary file next to it: %s", path,
                 strerror(errno));
        rt_output_abort(o);
        return NULL;
    }
    o->f = fdopen(fd, "wb");
    if (!o->f) {
        rt_error("%s: %s", o->tmp, strerror(errno));
        close(fd);
        rt_output_abort(o);
        return NULL;
    }
    return o->f;
}

void rt_output_abort(rt_output *o)
{
    if (o->f)
        fclose(o->f);
    if (o->tmp)
        unlink(o->tmp);
    release_slot(o);
    free(o->tmp);
    free(o->target);
    free(o->path);
    memset(o, 0, sizeof *o);
    o->slot = -1;
}

/* Makes a rename in dir durable. */
static void sync_dir(const char *path)
{
    char *dir = dir_of(path);
    int dfd = dir ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    free(dir);
}

int rt_output_commit(rt_output *o)
{
    int err = 0;
    errno = 0;
    if (fflush(o->f) != 0 || ferror(o->f))
        err = errno ? errno : EIO;
    if (!err && o->tmp && fsync(fileno(o->f)) != 0)
        err = errno;
    int rc = fclose(o->f);
    o->f = NULL;
    if (!err && rc != 0)
        err = errno;
    if (!err && o->tmp && rename(o->tmp, o->target) != 0)
        err = errno;
    if (err) {
        rt_error("%s: cannot write: %s%s", o->path, strerror(err),
                 o->tmp ? " (the file is left as it was)" : "");
        rt_output_abort(o);
        return -1;
    }
    if (o->tmp) {
        sync_dir(o->target);
        release_slot(o);
        free(o->tmp);
        o->tmp = NULL;
    }
    rt_output_abort(o);
    return 0;
}

/* ---- which file -------------------------------------------------------------- */

/* Where path is or would be: its links followed, its directory resolved; of
 * malloc, NULL when that cannot be told. */
static char *where_is(const char *path)
{
    char *t = follow_links(path);
    char *dir = t ? dir_of(t) : NULL;
    char *real = dir ? realpath(dir, NULL) : NULL;
    char *w = real ? join(real, base_of(t)) : t ? strdup(t) : NULL;
    free(real);
    free(dir);
    free(t);
    return w;
}

bool rt_same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    bool has_a = stat(a, &sa) == 0, has_b = stat(b, &sb) == 0;
    if (has_a && has_b)
        return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
    if (has_a || has_b)
        return false;
    char *wa = where_is(a), *wb = where_is(b);
    bool same = wa && wb && strcmp(wa, wb) == 0;
    free(wa);
    free(wb);
    return same;
}
