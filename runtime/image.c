/* image.c: PNG and JPEG images from memory (libpng, libjpeg-turbo), in the
 * channels of an Input, resized; and the writers cnnc-data uses.
 *
 * The pixels are those torchvision's ImageFolder gives, which opens images
 * with PIL and converts them with convert("RGB") (and a Grayscale transform
 * with convert("L")): PIL decodes JPEG with libjpeg-turbo at its defaults
 * (accurate integer IDCT, smooth chroma upsampling), as here, and PNG is
 * lossless. So:
 *
 *   - gray to RGB repeats the level in the three channels;
 *   - RGB to gray is ITU-R 601-2 luma in PIL's 16-bit fixed point,
 *     L = (19595 R + 38470 G + 7471 B + 32768) >> 16;
 *   - an alpha channel (or a palette's or gray's tRNS transparency) is
 *     dropped, the colours kept as stored, not composited on a background;
 *   - palette images become RGB; gray of 1, 2 or 4 bits is scaled to 8
 *     (x 255, 85, 17);
 *   - 16-bit samples are scaled to 8 bits, round(v * 255 / 65535). (Here PIL
 *     differs: it keeps the high byte of 16-bit RGB and clips 16-bit gray
 *     at 255, which whitens most of the image.)
 *
 * Damaged pixel data is an error: a truncated file, a critical PNG chunk
 * with a bad CRC, broken compressed data, and every warning libjpeg gives
 * of corrupt data (where it would fill the rest with gray). Damage in a
 * PNG's ancillary chunks (text, colour profiles), which leaves the pixels
 * alone, is ignored as libpng ignores it. CMYK JPEGs are refused.
 *
 * libpng and libjpeg report errors by longjmp: each decoder keeps what it
 * changes after setjmp in a job that its caller owns, never in its own
 * locals.
 */
#include "rt.h"

#include <jpeglib.h>
#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

/* ---- limits ---------------------------------------------------------------- */

/* A few hundred bytes of PNG or JPEG can declare a huge image (a JPEG's
 * arithmetic decoder even fills missing data with zeros, without a
 * warning), so the size is checked from the header, before any pixels. */
int64_t rt_image_max_pixels = (int64_t)1 << 26;

static int image_too_large(const char *path, const char *format, uint64_t h, uint64_t w)
{
    if (h <= RT_IMAGE_MAX_SIDE && w <= RT_IMAGE_MAX_SIDE &&
        h * w <= (uint64_t)rt_image_max_pixels)
        return 0;
    rt_error("%s: a %s image of %llu x %llu pixels (H x W); the largest image read has "
             "%d pixels a side and %lld pixels in all", path, format, (unsigned long long)h,
             (unsigned long long)w, RT_IMAGE_MAX_SIDE, (long long)rt_image_max_pixels);
    return -1;
}

static int alloc_pixels(rt_image *img, const char *path, int h, int w, int c)
{
    img->h = h;
    img->w = w;
    img->c = c;
    img->px = malloc((size_t)h * (size_t)w * (size_t)c);
    if (!img->px) {
        rt_error("%s: out of memory for a %d x %d image", path, h, w);
        return -1;
    }
    return 0;
}

void rt_image_free(rt_image *img)
{
    free(img->px);
    memset(img, 0, sizeof *img);
}

/* ---- PNG --------------------------------------------------------------------- */

typedef struct PngJob {
    const char *path;
    const unsigned char *data;
    size_t size, pos;
    png_structp png;
    png_infop info;
    rt_image *img;
    char why[256];             /* libpng's message */
} PngJob;

static void png_fail(png_structp png, png_const_charp msg)
{
    PngJob *job = png_get_error_ptr(png);
    snprintf(job->why, sizeof job->why, "%s", msg);
    png_longjmp(png, 1);
}

/* Warnings concern chunks that do not change the pixels (a colour
 * profile libpng thinks wrong, say): not worth a word per image. */
static void png_warn(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

static void png_read_memory(png_structp png, png_bytep out, size_t len)
{
    PngJob *job = png_get_io_ptr(png);
    if (len > job->size - job->pos)
        png_error(png, "truncated: the file ends before the image does");
    memcpy(out, job->data + job->pos, len);
    job->pos += len;
}

/* The transformations to 8-bit gray or RGB without alpha. */
static void png_to_gray_or_rgb(png_structp png, png_infop info)
{
    int type = png_get_color_type(png, info);
    if (type == PNG_COLOR_TYPE_PALETTE)
        png_set_palette_to_rgb(png);
    if (type == PNG_COLOR_TYPE_GRAY && png_get_bit_depth(png, info) < 8)
        png_set_expand_gray_1_2_4_to_8(png);
    if (png_get_bit_depth(png, info) == 16)
        png_set_scale_16(png);
    png_set_strip_alpha(png);
}

/* Everything that may longjmp; the caller holds job. */
static int png_decode_job(PngJob *job)
{
    if (setjmp(png_jmpbuf(job->png)))
        return -1;
    png_set_read_fn(job->png, job, png_read_memory);
    png_read_info(job->png, job->info);
    png_uint_32 w = png_get_image_width(job->png, job->info);
    png_uint_32 h = png_get_image_height(job->png, job->info);
    if (image_too_large(job->path, "PNG", h, w) != 0)
        return -2;
    png_to_gray_or_rgb(job->png, job->info);
    int passes = png_set_interlace_handling(job->png);
    png_read_update_info(job->png, job->info);
    int c = png_get_channels(job->png, job->info);
    if ((c != 1 && c != 3) || png_get_bit_depth(job->png, job->info) != 8 ||
        png_get_rowbytes(job->png, job->info) != (size_t)w * (size_t)c)
        png_error(job->png, "unexpected layout after conversion to 8-bit gray or RGB");
    if (alloc_pixels(job->img, job->path, (int)h, (int)w, c) != 0)
        return -2;
    for (int pass = 0; pass < passes; pass++)
        for (png_uint_32 y = 0; y < h; y++)
            png_read_row(job->png, job->img->px + (size_t)y * w * (size_t)c, NULL);
    png_read_end(job->png, NULL);
    return 0;
}

static int png_decode(const char *path, const unsigned char *data, size_t size,
                      rt_image *img)
{
    PngJob job = {.path = path, .data = data, .size = size, .img = img};
    job.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &job, png_fail, png_warn);
    job.info = job.png ? png_create_info_struct(job.png) : NULL;
    if (!job.info) {
        png_destroy_read_struct(&job.png, NULL, NULL);
        rt_error("%s: out of memory starting libpng", path);
        return -1;
    }
    int rc = png_decode_job(&job);
    png_destroy_read_struct(&job.png, &job.info, NULL);
    if (rc == -1)
        rt_error("%s: broken PNG image: %s", path, job.why);
    if (rc != 0)
        rt_image_free(img);
    return rc == 0 ? 0 : -1;
}

/* ---- JPEG -------------------------------------------------------------------- */

/* More scans than any encoder writes (a progressive JPEG has about ten); a
 * file of thousands of tiny scans costs minutes to decode. */
enum { JPEG_MAX_SCANS = 500 };

typedef struct JpegJob {
    struct jpeg_error_mgr err;   /* first: libjpeg's err pointer is the job */
    struct jpeg_progress_mgr progress;
    jmp_buf jump;
    const char *path;
    const unsigned char *data;
    size_t size;
    struct jpeg_decompress_struct cinfo;
    rt_image *img;
    char why[JMSG_LENGTH_MAX + 64];
} JpegJob;

static void jpeg_fail(j_common_ptr cinfo)
{
    JpegJob *job = (JpegJob *)(void *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, job->why);
    longjmp(job->jump, 1);
}

/* Level -1 is a warning of corrupt data: an error here. Trace messages
 * (levels 0 and up) are not shown. */
static void jpeg_message(j_common_ptr cinfo, int level)
{
    if (level < 0)
        jpeg_fail(cinfo);
}

static void jpeg_count_scans(j_common_ptr cinfo)
{
    JpegJob *job = (JpegJob *)(void *)cinfo->err;
    if (job->cinfo.input_scan_number > JPEG_MAX_SCANS) {
        snprintf(job->why, sizeof job->why, "more than %d scans", JPEG_MAX_SCANS);
        longjmp(job->jump, 1);
    }
}

static int jpeg_decode_job(JpegJob *job)
{
    struct jpeg_decompress_struct *ci = &job->cinfo;
    if (setjmp(job->jump))
        return -1;
    jpeg_create_decompress(ci);
    ci->progress = &job->progress;
    jpeg_mem_src(ci, job->data, (unsigned long)job->size);
    jpeg_read_header(ci, TRUE);
    if (image_too_large(job->path, "JPEG", ci->image_height, ci->image_width) != 0)
        return -2;
    int c;
    if (ci->jpeg_color_space == JCS_GRAYSCALE && ci->num_components == 1) {
        ci->out_color_space = JCS_GRAYSCALE;
        c = 1;
    } else if ((ci->jpeg_color_space == JCS_YCbCr || ci->jpeg_color_space == JCS_RGB) &&
               ci->num_components == 3) {
        ci->out_color_space = JCS_RGB;
        c = 3;
    } else {
        rt_error("%s: a JPEG image in %s with %d components; expected grayscale or "
                 "colour (YCbCr or RGB)", job->path,
                 ci->jpeg_color_space == JCS_CMYK ? "CMYK"
                 : ci->jpeg_color_space == JCS_YCCK ? "YCCK (CMYK)" : "an unusual colour space",
                 ci->num_components);
        return -2;
    }
    jpeg_start_decompress(ci);
    if (ci->output_components != c)
        return -1;
    int h = (int)ci->output_height, w = (int)ci->output_width;
    if (alloc_pixels(job->img, job->path, h, w, c) != 0)
        return -2;
    while (ci->output_scanline < ci->output_height) {
        JSAMPROW row = job->img->px + (size_t)ci->output_scanline * (size_t)w * (size_t)c;
        jpeg_read_scanlines(ci, &row, 1);
    }
    jpeg_finish_decompress(ci);
    return 0;
}

static int jpeg_decode(const char *path, const unsigned char *data, size_t size,
                       rt_image *img)
{
    JpegJob *job = calloc(1, sizeof *job);
    if (!job) {
        rt_error("%s: out of memory starting libjpeg", path);
        return -1;
    }
    job->path = path;
    job->data = data;
    job->size = size;
    job->img = img;
    job->cinfo.err = jpeg_std_error(&job->err);
    job->err.error_exit = jpeg_fail;
    job->err.emit_message = jpeg_message;
    job->progress.progress_monitor = jpeg_count_scans;
    snprintf(job->why, sizeof job->why, "unexpected output components");
    int rc = jpeg_decode_job(job);
    jpeg_destroy_decompress(&job->cinfo);
    if (rc == -1)
        rt_error("%s: broken JPEG image: %s", path, job->why);
    if (rc != 0)
        rt_image_free(img);
    free(job);
    return rc == 0 ? 0 : -1;
}

/* ---- decoding, converting, resizing ---------------------------------------- */

bool rt_is_png(const unsigned char *data, size_t size)
{
    return size >= 8 && memcmp(data, "\x89PNG\r\n\x1a\n", 8) == 0;
}

bool rt_is_jpeg(const unsigned char *data, size_t size)
{
    return size >= 3 && data[0] == 0xff && data[1] == 0xd8 && data[2] == 0xff;
}

int rt_image_decode(const char *path, const unsigned char *data, size_t size,
                    rt_image *img)
{
    memset(img, 0, sizeof *img);
    if (rt_is_png(data, size))
        return png_decode(path, data, size, img);
    if (rt_is_jpeg(data, size))
        return jpeg_decode(path, data, size, img);
    char start[40] = "";
    size_t used = 0;
    for (size_t i = 0; i < size && i < 4; i++)
        used += (size_t)snprintf(start + used, sizeof start - used, "%s%02x", i ? " " : "",
                                 data[i]);
    rt_error("%s: not a PNG or JPEG image: it starts with %s; expected 89 50 4e 47 (PNG) "
             "or ff d8 ff (JPEG)", path, start);
    return -1;
}

int rt_image_to_channels(rt_image *img, int c, const char *path)
{
    if (img->c == c)
        return 0;
    size_t n = (size_t)img->h * (size_t)img->w;
    unsigned char *px = malloc(n * (size_t)c);
    if (!px) {
        rt_error("%s: out of memory converting a %d x %d image", path, img->h, img->w);
        return -1;
    }
    const unsigned char *s = img->px;
    if (img->c == 1 && c == 3) {
        for (size_t i = 0; i < n; i++)
            px[3 * i] = px[3 * i + 1] = px[3 * i + 2] = s[i];
    } else {   /* 3 to 1: PIL's convert("L") */
        for (size_t i = 0; i < n; i++)
            px[i] = (unsigned char)((19595u * s[3 * i] + 38470u * s[3 * i + 1] +
                                     7471u * s[3 * i + 2] + 0x8000u) >> 16);
    }
    free(img->px);
    img->px = px;
    img->c = c;
    return 0;
}

/* Where output index i of out samples falls among in input samples, with
 * align_corners=False (PyTorch's area_pixel_compute_source_index): pixel
 * centres line up, src = (i + 0.5) * in / out - 0.5, no lower than 0; the
 * two neighbours and the weight of the second. */
static void source_index(int i, int in, int out, int *i0, int *i1, double *t)
{
    double src = ((double)i + 0.5) * ((double)in / (double)out) - 0.5;
    if (src < 0)
        src = 0;
    *i0 = (int)src;
    if (*i0 > in - 1)
        *i0 = in - 1;
    *i1 = *i0 < in - 1 ? *i0 + 1 : *i0;
    *t = src - *i0;
}

void rt_image_resize(const rt_image *img, int h, int w, unsigned char *out)
{
    int c = img->c;
    for (int y = 0; y < h; y++) {
        int y0, y1;
        double ty;
        source_index(y, img->h, h, &y0, &y1, &ty);
        const unsigned char *r0 = img->px + (size_t)y0 * img->w * c;
        const unsigned char *r1 = img->px + (size_t)y1 * img->w * c;
        for (int x = 0; x < w; x++) {
            int x0, x1;
            double tx;
            source_index(x, img->w, w, &x0, &x1, &tx);
            for (int k = 0; k < c; k++) {
                double top = r0[x0 * c + k] * (1 - tx) + r0[x1 * c + k] * tx;
                double bottom = r1[x0 * c + k] * (1 - tx) + r1[x1 * c + k] * tx;
                double v = top * (1 - ty) + bottom * ty + 0.5;
                out[((size_t)y * w + x) * c + k] = (unsigned char)(v >= 255 ? 255 : v);
            }
        }
    }
}

/* ---- writing ----------------------------------------------------------------- */

typedef struct PngOut {
    png_structp png;
    png_infop info;
    FILE *f;
    int h, w, c;
    const unsigned char *px;
    char why[256];
} PngOut;

static void png_write_fail(png_structp png, png_const_charp msg)
{
    PngOut *o = png_get_error_ptr(png);
    snprintf(o->why, sizeof o->why, "%s", msg);
    png_longjmp(png, 1);
}

static int png_write_job(PngOut *o)
{
    if (setjmp(png_jmpbuf(o->png)))
        return -1;
    png_init_io(o->png, o->f);
    png_set_IHDR(o->png, o->info, (png_uint_32)o->w, (png_uint_32)o->h, 8,
                 o->c == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(o->png, o->info);
    for (int y = 0; y < o->h; y++)
        png_write_row(o->png, o->px + (size_t)y * o->w * o->c);
    png_write_end(o->png, NULL);
    return 0;
}

int rt_png_write(const char *path, int h, int w, int c, const unsigned char *px)
{
    rt_output out;
    PngOut o = {.h = h, .w = w, .c = c, .px = px};
    if (!(o.f = rt_output_open(&out, path)))
        return -1;
    o.png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &o, png_write_fail, png_warn);
    o.info = o.png ? png_create_info_struct(o.png) : NULL;
    int rc = o.info ? png_write_job(&o) : -1;
    png_destroy_write_struct(&o.png, &o.info);
    if (rc != 0) {
        rt_output_abort(&out);
        rt_error("%s: cannot write the PNG image: %s", path, o.why[0] ? o.why : "out of memory");
        return -1;
    }
    return rt_output_commit(&out);
}

typedef struct JpegOut {
    struct jpeg_error_mgr err;
    jmp_buf jump;
    struct jpeg_compress_struct cinfo;
    char why[JMSG_LENGTH_MAX];
} JpegOut;

static void jpeg_write_fail(j_common_ptr cinfo)
{
    JpegOut *o = (JpegOut *)(void *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, o->why);
    longjmp(o->jump, 1);
}

static int jpeg_write_job(JpegOut *o, FILE *f, int h, int w, int c,
                          const unsigned char *px, int quality)
{
    struct jpeg_compress_struct *ci = &o->cinfo;
    if (setjmp(o->jump))
        return -1;
    jpeg_create_compress(ci);
    jpeg_stdio_dest(ci, f);
    ci->image_width = (JDIMENSION)w;
    ci->image_height = (JDIMENSION)h;
    ci->input_components = c;
    ci->in_color_space = c == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(ci);
    jpeg_set_quality(ci, quality, TRUE);
    jpeg_start_compress(ci, TRUE);
    while (ci->next_scanline < ci->image_height) {
        JSAMPROW row = (JSAMPROW)(uintptr_t)(px + (size_t)ci->next_scanline * w * c);
        jpeg_write_scanlines(ci, &row, 1);
    }
    jpeg_finish_compress(ci);
    return 0;
}

int rt_jpeg_write(const char *path, int h, int w, int c, const unsigned char *px,
                  int quality)
{
    rt_output out;
    FILE *f = rt_output_open(&out, path);
    if (!f)
        return -1;
    JpegOut *o = calloc(1, sizeof *o);
    int rc = -1;
    if (o) {
        o->cinfo.err = jpeg_std_error(&o->err);
        o->err.error_exit = jpeg_write_fail;
        rc = jpeg_write_job(o, f, h, w, c, px, quality);
        jpeg_destroy_compress(&o->cinfo);
    }
    if (rc != 0) {
        rt_output_abort(&out);
        rt_error("%s: cannot write the JPEG image: %s", path, o ? o->why : "out of memory");
        free(o);
        return -1;
    }
    free(o);
    return rt_output_commit(&out);
}
