/* replay.c: runs a fuzz target over files, without libFuzzer.
 *
 *   fuzz/replay_NAME FILE_OR_DIRECTORY...
 *
 * Linked with fuzz/fuzz_NAME.c by `make check` (tests/fuzz_corpus.sh), with
 * the compiler and flags of the rest of the build: every target then builds
 * wherever the tests do, and its seed corpus, crashes found earlier
 * included, is replayed under the sanitizers of --enable-sanitizers.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Runs the target on the file at path, of size bytes. */
static int replay_file(const char *path, size_t size)
{
    /* Exactly size bytes, so that AddressSanitizer sees a read past them. */
    uint8_t *buf = malloc(size);
    FILE *f = fopen(path, "rb");
    int ok = (buf || size == 0) && f && fread(buf, 1, size, f) == size;
    if (f)
        fclose(f);
    if (!ok) {
        fprintf(stderr, "replay: %s: cannot read its %zu bytes\n", path, size);
        free(buf);
        return -1;
    }
    LLVMFuzzerTestOneInput(buf, size);
    free(buf);
    return 0;
}

/* Every regular file in dir (not recursive), in name order. */
static int replay_dir(const char *dir, int *count)
{
    struct dirent **names;
    int n = scandir(dir, &names, NULL, alphasort);
    if (n < 0) {
        fprintf(stderr, "replay: %s: %s\n", dir, strerror(errno));
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < n; i++) {
        char path[4096];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, names[i]->d_name);
        if (rc == 0 && stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
            rc = replay_file(path, (size_t)st.st_size);
            ++*count;
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

int main(int argc, char **argv)
{
    int count = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
            return 2;
        }
        int rc = S_ISDIR(st.st_mode) ? replay_dir(argv[i], &count)
                                     : (count++, replay_file(argv[i], (size_t)st.st_size));
        if (rc != 0)
            return 2;
    }
    printf("%s: %d inputs replayed\n", argv[0], count);
    return 0;
}
