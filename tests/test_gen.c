/* test_gen.c: runtime/cnnrt_gen.h, the code every generated trainer shares,
 * built here in one precision (REAL_SIZE 4 or 8, from the build) with the
 * project's warnings, and checked against the formulas it implements. */
#include <check.h>
#include <math.h>
#include <stdlib.h>

#include "cnnrt.h"

#ifndef TEST_REAL_SIZE
#define TEST_REAL_SIZE 4
#endif
#if TEST_REAL_SIZE == 8
typedef double real;
#define REAL_SIZE 8
#define TOL 1e-12
#else
typedef float real;
#define REAL_SIZE 4
#define TOL 1e-5
#endif
#include "cnnrt_gen.h"

/* Two rows of three logits: loss logsumexp(z) - z[label], dy = (p - onehot)/n. */
START_TEST(cross_entropy_rows)
{
    const real z[6] = {1, 2, 3, -1, 0, 5};
    real p[6], dy[6];
    const int32_t labels[2] = {2, 0};
    double want = 0;
    for (int i = 0; i < 2; i++) {
        double s = 0;
        for (int j = 0; j < 3; j++)
            s += exp((double)z[i * 3 + j]);
        for (int j = 0; j < 3; j++)
            p[i * 3 + j] = (real)(exp((double)z[i * 3 + j]) / s);
        want += log(s) - z[i * 3 + labels[i]];
    }
    double got = cnnrt_cross_entropy_rows(p, z, 2, 3, 4, labels, dy, 0);
    ck_assert_double_eq_tol(got, want, TOL);
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++)
            ck_assert_double_eq_tol(dy[i * 3 + j], (p[i * 3 + j] - (j == labels[i])) / 4.0, TOL);
}
END_TEST

/* Label smoothing eps: target (1 - eps) onehot + eps/k; loss and gradient
 * against it, as PyTorch's CrossEntropyLoss(label_smoothing=eps). */
START_TEST(cross_entropy_smoothed)
{
    const real z[3] = {0.5, -1, 2};
    real p[3], dy[3];
    const int32_t labels[1] = {0};
    const double eps = 0.1;
    double s = 0, lse, want = 0;
    for (int j = 0; j < 3; j++)
        s += exp((double)z[j]);
    lse = log(s);
    for (int j = 0; j < 3; j++) {
        p[j] = (real)(exp((double)z[j]) / s);
        double t = (j == 0 ? 1 - eps : 0) + eps / 3;
        want += t * (lse - z[j]);
    }
    ck_assert_double_eq_tol(cnnrt_cross_entropy_rows(p, z, 1, 3, 2, labels, dy, eps), want, TOL);
    for (int j = 0; j < 3; j++)
        ck_assert_double_eq_tol(dy[j], (p[j] - ((j == 0 ? 1 - eps : 0) + eps / 3)) / 2, TOL);
}
END_TEST

/* Clipping to a norm of 1: the gradients (3, 4) of norm 5 become (0.6, 0.8)
 * (PyTorch's clip_grad_norm_: scaled by 1 / (5 + 1e-6)); a smaller norm stays. */
START_TEST(clipping)
{
    real g[2] = {3, 4};
    cnnrt_ctx ctx = {.grads = g};
    ck_assert_double_eq_tol(cnnrt_clip_gradients(&ctx, 2, 1.0), 5, TOL);
    ck_assert_double_eq_tol(g[0], 3 / (5 + 1e-6), TOL);
    ck_assert_double_eq_tol(g[1], 4 / (5 + 1e-6), TOL);
    real h[2] = {0.3, 0.4};
    ctx.grads = h;
    cnnrt_clip_gradients(&ctx, 2, 1.0);
    ck_assert_double_eq_tol(h[1], 0.4, TOL);
}
END_TEST

/* Targets, or one-hot labels when there are none: sum of squares, dy = 2 d / (n k). */
START_TEST(mse_rows)
{
    const real p[4] = {0.5, 1, -1, 2}, t[4] = {0, 1, 1, 0};
    real dy[4];
    ck_assert_double_eq_tol(cnnrt_mse_rows(p, t, 2, 2, 2, NULL, dy), 0.25 + 0 + 4 + 4, TOL);
    ck_assert_double_eq_tol(dy[0], 2 * 0.5 / 4, TOL);
    ck_assert_double_eq_tol(dy[3], 2 * 2.0 / 4, TOL);
    const int32_t labels[2] = {1, 0};   /* one-hot: {0, 1}, {1, 0} */
    ck_assert_double_eq_tol(cnnrt_mse_rows(p, NULL, 2, 2, 2, labels, dy), 0.25 + 0 + 4 + 4, TOL);
}
END_TEST

/* One step of each optimizer on one weight, against PyTorch's formulas. */
START_TEST(optimizers)
{
    static const cnnrt_optimizer opts[] = {CNNRT_SGD, CNNRT_MOMENTUM, CNNRT_NESTEROV, CNNRT_ADAM,
                                           CNNRT_ADAMW};
    for (size_t k = 0; k < sizeof opts / sizeof opts[0]; k++) {
        real w[1] = {1}, g[1] = {0.5}, s[2] = {0.25, 0.125};
        cnnrt_ctx ctx = {.params = w, .grads = g, .opt_state = s, .optimizer = opts[k],
                         .lr = 0.1, .momentum = 0.9, .beta1 = 0.9, .beta2 = 0.999,
                         .eps = 1e-8, .decay = 0.01, .step = 3};
        cnnrt_update(&ctx, 1);
        double gj = 0.5 + 0.01 * 1, want = 0;
        switch (opts[k]) {
        case CNNRT_SGD: want = 1 - 0.1 * gj; break;
        case CNNRT_MOMENTUM: want = 1 - 0.1 * (0.9 * 0.25 + gj); break;
        case CNNRT_NESTEROV: want = 1 - 0.1 * (gj + 0.9 * (0.9 * 0.25 + gj)); break;
        case CNNRT_ADAM: {
            /* s holds m and v for one weight: m at s[0], v at s[1] */
            double m = 0.9 * 0.25 + 0.1 * gj, v = 0.999 * 0.125 + 0.001 * gj * gj;
            double bc1 = 1 - pow(0.9, 3), bc2 = 1 - pow(0.999, 3);
            want = 1 - 0.1 / bc1 * m / (sqrt(v) / sqrt(bc2) + 1e-8);
            break;
        }
        case CNNRT_ADAMW: {
            /* the decay shrinks the weight; the moments see the bare gradient */
            double m = 0.9 * 0.25 + 0.1 * 0.5, v = 0.999 * 0.125 + 0.001 * 0.25;
            double bc1 = 1 - pow(0.9, 3), bc2 = 1 - pow(0.999, 3);
            want = 1 * (1 - 0.1 * 0.01) - 0.1 / bc1 * m / (sqrt(v) / sqrt(bc2) + 1e-8);
            break;
        }
        }
        ck_assert_msg(fabs(w[0] - want) < TOL, "optimizer %d: %.17g, want %.17g", (int)opts[k],
                      (double)w[0], want);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cnnrt_gen.h");
    TCase *tc = tcase_create("shared code");
    tcase_add_test(tc, cross_entropy_rows);
    tcase_add_test(tc, cross_entropy_smoothed);
    tcase_add_test(tc, clipping);
    tcase_add_test(tc, mse_rows);
    tcase_add_test(tc, optimizers);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
