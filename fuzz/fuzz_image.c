/* fuzz_image.c: libFuzzer target for the runtime's PNG and JPEG decoding.
 *
 * Decodes one input from memory as a folder's image is decoded
 * (runtime/image.c: libpng or libjpeg-turbo by the magic bytes, errors by
 * longjmp), then converts it to the other channel count and resizes it,
 * down and up, as --resize does. Every input must end in an image or one
 * message naming the file, never in undefined behaviour, a leak or a hang.
 *
 *   make fuzz/fuzz_image && ./fuzz/fuzz_image -max_total_time=600 \
 *       fuzz/work-image fuzz/corpus/image     (needs clang; see Makefile.am)
 */
#include "rt.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Resizes img to h x w and touches every byte of the result. */
static void resize_to(const rt_image *img, int h, int w)
{
    unsigned char *out = malloc((size_t)h * (size_t)w * (size_t)img->c);
    if (!out)
        abort();
    rt_image_resize(img, h, w, out);
    unsigned sum = 0;
    for (size_t i = 0; i < (size_t)h * (size_t)w * (size_t)img->c; i++)
        sum += out[i];
    if (sum == 0xffffffffu)
        abort();
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A megapixel at most: a few hundred bytes of arithmetic-coded JPEG,
     * whose decoder fills missing data with zeros without a warning, make
     * a flat image of tens of megapixels, which takes seconds to decode and
     * convert under the fuzzer's instrumentation. Larger images are refused
     * from their headers, as a trainer refuses them past 2^26 pixels. */
    rt_image_max_pixels = (int64_t)1 << 20;
    rt_image img;
    if (rt_image_decode("fuzz.img", data, size, &img) != 0) {
        if (strncmp(rt_errmsg(), "fuzz.img: ", 10) != 0)
            abort();   /* a message that does not name the file */
        return 0;
    }
    if (img.h < 1 || img.w < 1 || (img.c != 1 && img.c != 3) || !img.px)
        abort();
    resize_to(&img, 5, 7);
    if ((size_t)img.h * (size_t)img.w <= 64 * 64)
        resize_to(&img, 2 * img.h + 1, 2 * img.w);
    if (rt_image_to_channels(&img, img.c == 1 ? 3 : 1, "fuzz.img") != 0)
        abort();
    resize_to(&img, 3, 2);
    rt_image_free(&img);
    return 0;
}
