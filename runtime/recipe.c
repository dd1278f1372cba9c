/* recipe.c: the training recipe around the steps: the learning rate of each
 * step (warm-up and schedule) and the augmentation of training images.
 *
 * Both are pure functions of the step number and of draws from the
 * trainer's seed, so that a run is the same bitwise whatever the threads. */
#include "rt.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const double PI = 3.14159265358979323846;

/* The learning rate of step `step` (0 the first of the run) of `total`,
 * `per_epoch` steps an epoch:
 *   warm-up, the first W = warmup*per_epoch steps: lr * (step + 1) / W,
 *     rising linearly to lr (PyTorch's LinearLR stepped per batch);
 *   then constant: lr;
 *   step: lr * gamma^(epoch / step_size), epoch the 0-based epoch of the
 *     step (StepLR stepped per epoch);
 *   cosine: lr * (1 + cos(pi * t / T)) / 2 with t the steps since the
 *     warm-up and T the run's steps after it (CosineAnnealingLR stepped per
 *     batch, to 0 at the end). */
double rt_schedule_lr(const rt_opts *o, int64_t step, int64_t per_epoch, int64_t total)
{
    double warm = o->warmup_epochs * (double)per_epoch;
    if ((double)step < warm)
        return o->lr * ((double)step + 1) / warm;
    switch (o->schedule) {
    case CNNRT_STEP:
        return o->lr * pow(o->gamma, (double)(step / per_epoch / o->step_epochs));
    case CNNRT_COSINE: {
        double w = ceil(warm), span = (double)total - w;
        double t = (double)step - w;
        return span > 0 ? o->lr * (1 + cos(PI * t / span)) / 2 : o->lr;
    }
    case CNNRT_CONSTANT:
        break;
    }
    return o->lr;
}

/* Whether the flags ask for augmentation the model can take: images. */
int rt_augment_check(const cnnrt_model *m, const rt_opts *o)
{
    if ((o->flip || o->crop) && m->input_shape[1] == 0) {
        rt_error("--flip and --crop move the pixels of images; the input of %s is a vector "
                 "of %lld", m->name, (long long)m->input_shape[0]);
        return -1;
    }
    if (o->label_smoothing > 0 && m->loss_kind != CNNRT_CROSS_ENTROPY) {
        rt_error("--label-smoothing is cross-entropy's; the loss of %s is mse", m->name);
        return -1;
    }
    return 0;
}

/* One sample, HxWxC of elem-byte values, moved in place: out[y][x] =
 * in[y + dy - pad][x + dx - pad] (0 outside: the zero padding), then
 * mirrored left to right when flip. tmp holds a sample. */
static void augment_sample(unsigned char *s, unsigned char *tmp, int64_t h, int64_t w,
                           size_t pixel, int64_t pad, int64_t dy, int64_t dx, bool flip)
{
    memcpy(tmp, s, (size_t)(h * w) * pixel);
    for (int64_t y = 0; y < h; y++)
        for (int64_t x = 0; x < w; x++) {
            int64_t sy = y + dy - pad, sx = (flip ? w - 1 - x : x) + dx - pad;
            unsigned char *out = s + (size_t)(y * w + x) * pixel;
            if (sy < 0 || sy >= h || sx < 0 || sx >= w)
                memset(out, 0, pixel);
            else
                memcpy(out, tmp + (size_t)(sy * w + sx) * pixel, pixel);
        }
}

/* The n samples of x (elem bytes a value) augmented: for each sample in
 * order, a crop offset (dy, then dx, each below 2*crop + 1) and then a
 * flip (1 in 2), drawn from rng as torchvision's RandomCrop(padding=crop)
 * followed by RandomHorizontalFlip would use them. */
int rt_augment(const cnnrt_model *m, const rt_opts *o, void *x, size_t elem, int n,
               cnnrt_rng *rng)
{
    if (!o->flip && !o->crop)
        return 0;
    int64_t h = m->input_shape[0], w = m->input_shape[1], c = m->input_shape[2];
    size_t pixel = (size_t)c * elem, sample = (size_t)(h * w) * pixel;
    unsigned char *tmp = rt_calloc(1, sample);
    if (!tmp)
        return -1;
    for (int i = 0; i < n; i++) {
        int64_t dy = 0, dx = 0;
        if (o->crop) {
            dy = (int64_t)cnnrt_rng_below(rng, (uint64_t)(2 * o->crop + 1));
            dx = (int64_t)cnnrt_rng_below(rng, (uint64_t)(2 * o->crop + 1));
        }
        bool flip = o->flip && cnnrt_rng_below(rng, 2) == 1;
        if (dy != o->crop || dx != o->crop || flip)
            augment_sample((unsigned char *)x + (size_t)i * sample, tmp, h, w, pixel, o->crop,
                           dy, dx, flip);
    }
    free(tmp);
    return 0;
}
