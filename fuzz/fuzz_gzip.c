/* fuzz_gzip.c: libFuzzer target for the runtime's gzip reader.
 *
 * Inflates one input as rt_file_open inflates a data file that starts with
 * 1f 8b (runtime/gzip.c): any number of members, each checked against its
 * CRC-32 and ISIZE, nothing after the last. Every input must end in the
 * decompressed bytes or one message naming the file, never in undefined
 * behaviour, a leak or a hang. The decompressed size is bounded lower than
 * a trainer's 8 GiB, so that a decompression bomb costs the fuzzer a
 * message, not its memory.
 *
 *   make fuzz/fuzz_gzip && ./fuzz/fuzz_gzip -max_total_time=600 \
 *       fuzz/work-gzip fuzz/corpus/gzip      (needs clang; see Makefile.am)
 */
#include "rt.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rt_gzip_limit = (size_t)64 << 20;
    unsigned char *out;
    size_t n;
    if (rt_gunzip("fuzz.gz", data, size, &out, &n) == 0) {
        /* every byte was written: a sanitizer sees a read of uninitialised
         * memory only through a branch, so sum them into one */
        unsigned sum = 0;
        for (size_t i = 0; i < n; i++)
            sum += out[i];
        if (sum == 0xffffffffu)
            abort();
        free(out);
    } else if (strncmp(rt_errmsg(), "fuzz.gz: ", 9) != 0) {
        abort();   /* a message that does not name the file */
    }
    return 0;
}
