/* image_pixels.c: an image as the runtime decodes it, for tests/pil_compare.sh.
 *
 *   tests/image_pixels FILE C > pixels
 *
 * Writes the pixels of FILE (PNG or JPEG, gzip-compressed or not) converted
 * to C channels (1 or 3), rows top first, as raw bytes on standard output:
 * what a folder of images gives an Input of C channels (runtime/image.c). */
#include <stdlib.h>
#include <string.h>

#include "rt.h"

int main(int argc, char **argv)
{
    rt_prog = "image_pixels";
    if (argc != 3 || (strcmp(argv[2], "1") != 0 && strcmp(argv[2], "3") != 0)) {
        fprintf(stderr, "usage: image_pixels FILE 1|3\n");
        return 2;
    }
    rt_file f;
    rt_image img;
    if (rt_file_open(&f, argv[1]) != 0 || rt_image_decode(argv[1], f.data, f.size, &img) != 0 ||
        rt_image_to_channels(&img, atoi(argv[2]), argv[1]) != 0) {
        rt_print_error();
        return 1;
    }
    size_t n = (size_t)img.h * (size_t)img.w * (size_t)img.c;
    int rc = fwrite(img.px, 1, n, stdout) == n && fflush(stdout) == 0 ? 0 : 1;
    rt_image_free(&img);
    rt_file_close(&f);
    return rc;
}
