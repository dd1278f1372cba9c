/* fuzz_array.c: libFuzzer target for the runtime's data files (array.c).
 *
 * One input is one file, seen as the trainer sees it: for --data, a
 * CIFAR-10 batch when rt_is_cifar says so, else a .npy or IDX file by its
 * magic number (rt_array_parse); for --labels always the latter. Both
 * parsers see every input, whatever rt_is_cifar says. Every input must end
 * either in a message or in arrays that lie inside the file
 * (fuzz_check_array); anything else aborts or is caught by the sanitizers.
 * Fitting the data to a model is fuzz_data.c's.
 *
 *   make fuzz FUZZ_SECONDS=600      (fuzz/README.md)
 */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;   /* rt_file_open refuses empty files */
    rt_file f = fuzz_file("fuzz.bin", data, size);
    rt_array a, labels;

    fuzz_clear_error();
    int parsed = rt_array_parse(&f, &a);
    if (parsed == 0)
        fuzz_check_array(&f, &a);
    else
        fuzz_check_failed();

    bool cifar = rt_is_cifar(&f);
    if (cifar && parsed == 0)
        fuzz_fail("a file is both a CIFAR-10 batch and a .npy or IDX file");
    fuzz_clear_error();
    if (rt_cifar_parse(&f, &a, &labels) == 0) {
        fuzz_check_array(&f, &a);
        fuzz_check_array(&f, &labels);
    } else {
        fuzz_check_failed();
        if (cifar)
            fuzz_fail("rt_cifar_parse refused a file that rt_is_cifar took");
    }
    return 0;
}
