/* test_checker.c: the shape checker (check.c, args.c, the layer files),
 * the memory plan and --summary, on small networks written inline.
 *
 * Messages are compared as the user sees them, "t.net:LINE:COL: error: ...",
 * so a test fails when either the text or the place changes. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

/* ------------------------------------------------------------------------
 * Helpers
 */

/* Checks text, which must compile (warnings allowed). */
static TuResult compiles(const char *text)
{
    TuResult r = tu_check(text);
    ck_assert_msg(r.net != NULL, "expected no errors, got:\n%s", r.diags);
    return r;
}

/* Checks text, which must fail with a message containing each of the
 * NULL-terminated strings. */
static void fails_with(const char *text, ...)
{
    TuResult r = tu_check(text);
    ck_assert_msg(r.net == NULL, "expected errors in:\n%s", text);
    ck_assert_msg(r.errors > 0, "no error counted for:\n%s", text);
    va_list ap;
    va_start(ap, text);
    for (const char *want; (want = va_arg(ap, const char *));)
        ck_assert_msg(strstr(r.diags, want) != NULL, "expected \"%s\" in:\n%s", want,
                      r.diags);
    va_end(ap);
    tu_free(&r);
}

static int count_of(const char *haystack, const char *needle)
{
    int n = 0;
    for (const char *p = haystack; (p = strstr(p, needle)); p++)
        n++;
    return n;
}

static const Layer *layer(const TuResult *r, const char *label)
{
    const Layer *l = tu_layer(r->net, label);
    ck_assert_msg(l != NULL, "no layer %s", label);
    return l;
}

static void assert_shape(const Layer *l, const char *want)
{
    char buf[64];
    ck_assert_str_eq(shape_str(l->out, buf, sizeof buf), want);
}

static int64_t layer_params(const Layer *l)
{
    int64_t n = 0;
    for (int i = 0; i < l->nparams; i++)
        n += l->params[i].count;
    return n;
}

static int64_t total_params(const Network *n)
{
    int64_t sum = 0;
    for (int i = 0; i < n->nlayers; i++)
        sum += layer_params(&n->layers[i]);
    return sum;
}

static const char seed_net[] =
    "Input(96x96x3)\n"                                     /* 1 */
    "C1: Conv(kernel=4x4, n=40, stride=2)     -> 47x47x40\n"
    "    ReLU\n"
    "    MaxPool(size=3x3, stride=2)          -> 23x23x40\n"
    "C2: Conv(kernel=2x2, n=105)\n"                        /* 5 */
    "    ReLU\n"
    "    MaxPool(size=4x4, stride=2)          -> 10x10x105\n"
    "C3: Conv(kernel=2x2, n=158)\n"
    "    ReLU\n"
    "C4: Conv(kernel=2x2, n=158)\n"                        /* 10 */
    "    ReLU\n"
    "C5: Conv(kernel=2x2, n=105)\n"
    "    ReLU\n"
    "    MaxPool(size=3x3, stride=2)          -> 3x3x105\n"
    "    Flatten                              -> 945\n"    /* 15 */
    "D1: Dense(n=945)\n"
    "    ReLU\n"
    "D2: Dense(n=475)\n"
    "    ReLU\n"
    "D3: Dense(n=8)\n"                                     /* 20 */
    "    Softmax\n"
    "\n"
    "Train(batch=128, loss=cross_entropy, optimizer=momentum, lr=0.01, momentum=0.9,\n"
    "      init=he_normal, seed=1, epochs=10)\n";

/* ------------------------------------------------------------------------
 * The seed network
 */

START_TEST(seed_shapes)
{
    TuResult r = compiles(seed_net);
    ck_assert_int_eq(r.warnings, 0);
    ck_assert_int_eq(r.net->nlayers, 20);
    static const char *const want[][2] = {
        {"C1", "47x47x40"},      {"maxpool1", "23x23x40"}, {"C2", "22x22x105"},
        {"maxpool2", "10x10x105"}, {"C3", "9x9x158"},    {"C4", "8x8x158"},
        {"C5", "7x7x105"},       {"maxpool3", "3x3x105"},  {"flatten1", "945"},
        {"D1", "945"},           {"D2", "475"},            {"D3", "8"},
        {"softmax1", "8"},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        assert_shape(layer(&r, want[i][0]), want[i][1]);
    char buf[64];
    ck_assert_str_eq(shape_str(r.net->input, buf, sizeof buf), "96x96x3");
    ck_assert_str_eq(r.net->name, "t");
    tu_free(&r);
}
END_TEST

START_TEST(seed_parameters)
{
    TuResult r = compiles(seed_net);
    static const struct { const char *label; int64_t n; } want[] = {
        {"C1", 1960},   {"C2", 16905},  {"C3", 66518},  {"C4", 100014},
        {"C5", 66465},  {"D1", 893970}, {"D2", 449350}, {"D3", 3808},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        ck_assert_int_eq(layer_params(layer(&r, want[i].label)), want[i].n);
    ck_assert_int_eq(total_params(r.net), 1598990);
    ck_assert_int_eq(layer_params(layer(&r, "relu1")), 0);
    tu_free(&r);
}
END_TEST

/* PyTorch's layouts and fans: Conv [n, C, KH, KW], Dense [out, in]. */
START_TEST(seed_param_layout)
{
    TuResult r = compiles(seed_net);
    const Layer *c1 = layer(&r, "C1");
    ck_assert_int_eq(c1->nparams, 2);
    const Param *w = &c1->params[0], *b = &c1->params[1];
    ck_assert_str_eq(w->suffix, "weight");
    ck_assert_int_eq(w->rank, 4);
    ck_assert_int_eq(w->dims[0], 40);
    ck_assert_int_eq(w->dims[1], 3);
    ck_assert_int_eq(w->dims[2], 4);
    ck_assert_int_eq(w->dims[3], 4);
    ck_assert_int_eq(w->fan_in, 48);     /* 3*4*4 */
    ck_assert_int_eq(w->fan_out, 640);   /* 40*4*4 */
    ck_assert(!w->is_bias);
    ck_assert_str_eq(b->suffix, "bias");
    ck_assert(b->is_bias);
    ck_assert_int_eq(b->rank, 1);
    ck_assert_int_eq(b->dims[0], 40);
    const Param *dw = &layer(&r, "D2")->params[0];
    ck_assert_int_eq(dw->rank, 2);
    ck_assert_int_eq(dw->dims[0], 475);
    ck_assert_int_eq(dw->dims[1], 945);
    ck_assert_int_eq(dw->fan_in, 945);
    ck_assert_int_eq(dw->fan_out, 475);
    tu_free(&r);
}
END_TEST

/* 2 FLOP per multiply-add of Conv and Dense, nothing for the rest. */
START_TEST(seed_flops)
{
    TuResult r = compiles(seed_net);
    const Layer *c1 = layer(&r, "C1");
    ck_assert_double_eq(c1->kind->flops(c1), 2.0 * 47 * 47 * 40 * 3 * 4 * 4);
    const Layer *d3 = layer(&r, "D3");
    ck_assert_double_eq(d3->kind->flops(d3), 2.0 * 475 * 8);
    const Layer *p = layer(&r, "maxpool1");
    ck_assert_double_eq(p->kind->flops(p), 0);
    double total = 0;
    for (int i = 0; i < r.net->nlayers; i++)
        total += r.net->layers[i].kind->flops(&r.net->layers[i]);
    ck_assert_double_eq(total, 57471528.0);
    /* A step at batch 128 is 7.36 GFLOP forward. */
    ck_assert_double_eq_tol(total * 128 / 1e9, 7.36, 0.005);
    tu_free(&r);
}
END_TEST

START_TEST(seed_train)
{
    TuResult r = compiles(seed_net);
    const Train *t = &r.net->train;
    ck_assert(t->declared);
    ck_assert_int_eq(t->batch, 128);
    ck_assert_int_eq(t->epochs, 10);
    ck_assert_int_eq(t->loss, LOSS_CROSS_ENTROPY);
    ck_assert_int_eq(t->optimizer, OPT_MOMENTUM);
    ck_assert_double_eq(t->lr, 0.01);
    ck_assert_double_eq(t->momentum, 0.9);
    ck_assert_int_eq(t->init, INIT_HE_NORMAL);
    ck_assert_int_eq(t->seed, 1);
    ck_assert_int_eq(t->loc.first_line, 23);
    tu_free(&r);
}
END_TEST

START_TEST(seed_summary)
{
    TuResult r = compiles(seed_net);
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    summary_print(f, r.net, 4, 0, 0, KERNELS_FAST, 0);
    fclose(f);
    static const char *const rows[] = {
        "47x47x40", "23x23x40", "22x22x105", "10x10x105", "9x9x158",
        "8x8x158",  "7x7x105",  "3x3x105",   "945",       "1,598,990",
        "893,970",  "57.47",    "MiB",       "batch 128",
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        ck_assert_msg(strstr(text, rows[i]), "no %s in:\n%s", rows[i], text);
    ck_assert_msg(strstr(text, "  C1        Conv     47x47x40        1,960   8.48\n"),
                  "C1's row is misaligned:\n%s", text);
    free(text);
    tu_free(&r);
}
END_TEST

/* A long label widens the first column; every row keeps its columns. */
START_TEST(summary_long_label)
{
    TuResult r = compiles("Input(4)\n"
                          "a_rather_long_label_for_a_layer: Dense(n=3)\n"
                          "Softmax\n");
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    summary_print(f, r.net, 4, 0, 0, KERNELS_FAST, 0);
    fclose(f);
    const char *a = strstr(text, "a_rather_long_label_for_a_layer  Dense");
    const char *b = strstr(text, "\n  softmax1                         Softmax");
    ck_assert_msg(a && b, "misaligned:\n%s", text);
    free(text);
    tu_free(&r);
}
END_TEST

/* ------------------------------------------------------------------------
 * Labels and automatic names
 */

/* The kind's prefix and its count so far, labelled ones counted too. */
START_TEST(auto_names)
{
    TuResult r = compiles("Input(10)\n"
                          "first: ReLU\n"
                          "Dense(n=5)\n"
                          "ReLU\n"
                          "ReLU\n"
                          "Dense(n=3)\n"
                          "Softmax\n");
    ck_assert_str_eq(r.net->layers[0].label, "first");
    ck_assert(!r.net->layers[0].auto_label);
    ck_assert_str_eq(r.net->layers[1].label, "dense1");
    ck_assert_str_eq(r.net->layers[2].label, "relu2");
    ck_assert_str_eq(r.net->layers[3].label, "relu3");
    ck_assert(r.net->layers[3].auto_label);
    ck_assert_str_eq(r.net->layers[4].label, "dense2");
    ck_assert_str_eq(r.net->layers[5].label, "softmax1");
    tu_free(&r);
}
END_TEST

START_TEST(auto_name_clash)
{
    fails_with("Input(784)\n"
               "relu2: ReLU\n"
               "Dense(n=10)\n"
               "ReLU\n"
               "Softmax\n",
               "t.net:4:1: error: this ReLU's automatic name 'relu2' is already a label",
               "hint: give this layer a label of its own",
               "t.net:2:1: note: 'relu2' labels this layer", NULL);
}
END_TEST

START_TEST(repeated_label)
{
    fails_with("Input(8)\n"
               "D: Dense(n=4)\n"
               "D: Dense(n=2)\n"
               "Softmax\n",
               "t.net:3:1: error: label 'D' is already used",
               "t.net:2:1: note: first used here", NULL);
}
END_TEST

/* Input may carry a label (a branch can start at it); Train may not, and
 * the Input's label is a label like any other. */
START_TEST(label_on_declarations)
{
    TuResult r = compiles("in: Input(8)\nh: Dense(n=2)\nd: Dense(n=2, from=in)\nAdd(h, d)\n"
                          "Softmax\n");
    ck_assert_str_eq(r.net->input_label, "in");
    ck_assert_int_eq(layer(&r, "d")->inputs[0], INPUT_TENSOR);
    ck_assert_int_eq(r.net->tensors[INPUT_TENSOR].nconsumers, 2);
    tu_free(&r);
    fails_with("Input(8)\nDense(n=2)\nSoftmax\nt: Train(batch=4)\n",
               "t.net:4:1: error: Train cannot have a label", NULL);
    fails_with("in: Input(8)\nin: Dense(n=2)\nSoftmax\n",
               "t.net:2:1: error: label 'in' is already used", NULL);
    /* automatic names name layers in messages, but are no labels to take */
    fails_with("Input(8)\nDense(n=2)\nd: Dense(n=2, from=input)\nAdd(dense1, d)\nSoftmax\n",
               "t.net:3:20: error: no layer is labelled 'input'",
               "hint: the Input has no label: give it one to take it, e.g. 'img: Input(...)'",
               "t.net:4:5: error: no layer is labelled 'dense1'",
               "hint: 'dense1' is the automatic name of the Dense on line 2; give it a label "
               "to take its output, e.g. 'h: Dense'", NULL);
}
END_TEST

/* ------------------------------------------------------------------------
 * Input, Train and the statements' order
 */

START_TEST(input_forms)
{
    TuResult r = compiles("Input(28x28)\nFlatten\nDense(n=2)\nSoftmax\n");
    char buf[64];
    ck_assert_str_eq(shape_str(r.net->input, buf, sizeof buf), "28x28x1");
    assert_shape(layer(&r, "flatten1"), "784");
    tu_free(&r);
    r = compiles("Input(shape=784)\nDense(n=2)\nSoftmax\n");
    ck_assert_int_eq(r.net->input.rank, 1);
    ck_assert_int_eq(r.net->input.c, 784);
    tu_free(&r);
}
END_TEST

START_TEST(input_missing_or_repeated)
{
    fails_with("Dense(n=2)\nSoftmax\n",
               "t.net:1:1: error: missing Input: the network must start with Input", NULL);
    fails_with("Input(4)\nDense(n=2)\nInput(4)\nSoftmax\n",
               "t.net:3:1: error: Input is given twice; a network has one input",
               "t.net:1:1: note: first given here", NULL);
    fails_with("ReLU\nInput(4)\nDense(n=2)\nSoftmax\n",
               "t.net:2:1: error: Input must come before the layers",
               "t.net:1:1: note: the first layer is here", NULL);
}
END_TEST

/* Train may come anywhere, even first; twice is an error. */
START_TEST(train_anywhere_once)
{
    TuResult r = compiles("Train(batch=7)\nInput(4)\nDense(n=2)\nSoftmax\n");
    ck_assert_int_eq(r.net->train.batch, 7);
    tu_free(&r);
    fails_with("Input(4)\nTrain(batch=8)\nDense(n=2)\nSoftmax\nTrain(epochs=3)\n",
               "t.net:5:1: error: Train is given twice",
               "t.net:2:1: note: first given here", NULL);
}
END_TEST

START_TEST(train_defaults_and_overrides)
{
    TuResult r = compiles("Input(4)\nDense(n=2)\nSoftmax\n");
    const Train *t = &r.net->train;
    ck_assert(!t->declared);
    ck_assert_int_eq(t->batch, 32);
    ck_assert_int_eq(t->epochs, 1);
    ck_assert_int_eq(t->loss, LOSS_CROSS_ENTROPY);
    ck_assert_int_eq(t->optimizer, OPT_SGD);
    ck_assert_double_eq(t->lr, 0.01);
    ck_assert_double_eq(t->momentum, 0.9);
    ck_assert_double_eq(t->beta1, 0.9);
    ck_assert_double_eq(t->beta2, 0.999);
    ck_assert_double_eq(t->eps, 1e-8);
    ck_assert_double_eq(t->decay, 0);
    ck_assert_int_eq(t->init, INIT_HE_NORMAL);
    ck_assert_int_eq(t->seed, 1);
    tu_free(&r);
    r = compiles("Input(4)\nDense(n=2)\n"
                 "Train(loss=mse, optimizer=adam, lr=1e-3, beta1=0.8, beta2=0.99, eps=1e-7,\n"
                 "      decay=5e-4, init=glorot_uniform, seed=42, batch=3, epochs=2)\n");
    t = &r.net->train;
    ck_assert_int_eq(t->loss, LOSS_MSE);
    ck_assert_int_eq(t->optimizer, OPT_ADAM);
    ck_assert_double_eq(t->lr, 1e-3);
    ck_assert_double_eq(t->beta1, 0.8);
    ck_assert_double_eq(t->beta2, 0.99);
    ck_assert_double_eq(t->eps, 1e-7);
    ck_assert_double_eq(t->decay, 5e-4);
    ck_assert_int_eq(t->init, INIT_GLOROT_UNIFORM);
    ck_assert_int_eq(t->seed, 42);
    ck_assert_int_eq(t->batch, 3);
    ck_assert_int_eq(t->epochs, 2);
    ck_assert_int_eq(r.net->layers[0].init, INIT_GLOROT_UNIFORM);
    tu_free(&r);
}
END_TEST

START_TEST(train_ranges)
{
    fails_with("Input(4)\nDense(n=2)\nSoftmax\nTrain(lr=0)\n",
               "t.net:4:10: error: lr must be > 0, got 0", NULL);
    fails_with("Input(4)\nDense(n=2)\nSoftmax\nTrain(decay=-1)\n",
               "t.net:4:13: error: decay must be >= 0, got -1", NULL);
    fails_with("Input(4)\nDense(n=2)\nSoftmax\nTrain(batch=0)\n",
               "t.net:4:13: error: batch must be positive, got 0", NULL);
    fails_with("Input(4)\nDense(n=2)\nSoftmax\nTrain(beta2=1)\n",
               "error: beta2 must be in [0, 1), got 1", NULL);
    fails_with("Input(4)\nDense(n=2)\nSoftmax\nTrain(optimizer=nesterov, momentum=0)\n",
               "error: optimizer=nesterov needs momentum > 0", NULL);
    fails_with("Input(4)\nDense(n=2)\nSoftmax\nTrain(learning_rate=0.1)\n",
               "error: Train has no argument 'learning_rate'", NULL);
}
END_TEST

/* A layer's init= wins over Train's, which wins over he_normal. */
START_TEST(init_per_layer)
{
    TuResult r = compiles("Input(4)\n"
                          "A: Dense(n=3, init=glorot_normal)\n"
                          "B: Dense(n=2)\n"
                          "Softmax\n"
                          "Train(init=he_uniform)\n");
    ck_assert_int_eq(layer(&r, "A")->init, INIT_GLOROT_NORMAL);
    ck_assert_int_eq(layer(&r, "B")->init, INIT_HE_UNIFORM);
    tu_free(&r);
}
END_TEST

START_TEST(no_layers)
{
    fails_with("Input(4)\n", "t.net:1:1: error: the network has no layers", NULL);
    fails_with("", "t.net: error: the file holds no network", NULL);
    fails_with("# only a comment\n", "t.net: error: the file holds no network", NULL);
}
END_TEST

START_TEST(unknown_words)
{
    fails_with("Input(4)\nDense(n=2)\nsoftmax\n", "t.net:3:1: error: unknown layer 'softmax'",
               "hint: did you mean 'Softmax'?", NULL);
    fails_with("Input(8x8x1)\nMaxpol(2x2)\nFlatten\nDense(n=2)\nSoftmax\n",
               "t.net:2:1: error: unknown layer 'Maxpol'", "hint: did you mean 'MaxPool'?",
               NULL);
    fails_with("Input(4)\nLinear(n=2)\nSoftmax\n", "hint: did you mean 'Dense'?", NULL);
    fails_with("Input(4)\nFrobnicate\nDense(n=2)\nSoftmax\n",
               "hint: the layers are Conv, MaxPool, AvgPool, GlobalAvgPool, ReLU, LeakyReLU, "
               "Sigmoid, Tanh, SiLU, GELU, Flatten, Dense, Dropout, BatchNorm, Add, Concat, "
               "Softmax; Input and Train are declarations\n", NULL);
}
END_TEST

/* Exactly these messages, and nothing else. */
static void only(const char *text, int nerrors, ...)
{
    TuResult r = tu_check(text);
    ck_assert_ptr_null(r.net);
    ck_assert_msg(r.errors == nerrors, "%d errors, expected %d, in:\n%s", r.errors, nerrors,
                  r.diags);
    va_list ap;
    va_start(ap, nerrors);
    for (const char *want; (want = va_arg(ap, const char *));)
        ck_assert_msg(strstr(r.diags, want) != NULL, "expected \"%s\" in:\n%s", want,
                      r.diags);
    va_end(ap);
    tu_free(&r);
}

/* A misspelt declaration is an unknown statement, and no "missing Input"
 * follows it: the Input is there, misspelt. */
START_TEST(unknown_declaration)
{
    only("Inptu(4)\nDense(n=2)\nSoftmax\n", 1,
         "t.net:1:1: error: unknown statement 'Inptu'\n", "hint: did you mean 'Input'?", NULL);
    only("Input(4)\nDense(n=2)\nSoftmax\nTrian(batch=2)\n", 1,
         "t.net:4:1: error: unknown statement 'Trian'\n", "hint: did you mean 'Train'?", NULL);
}
END_TEST

/* An unknown word stands for a layer: no "no layers", and no shapes
 * inferred past it (no "insert Flatten" after a misspelt Flatten). */
START_TEST(unknown_words_no_cascade)
{
    only("Input(784)\nLinear(10)\nFC(3)\n", 2, "t.net:2:1: error: unknown layer 'Linear'",
         "t.net:3:1: error: unknown layer 'FC'", NULL);
    only("Input(4x4x1)\nConv(kernel=3x3, n=2)\nFlaten\nDense(n=2)\nSoftmax\n", 1,
         "t.net:3:1: error: unknown layer 'Flaten'", NULL);
}
END_TEST

/* "C1 Conv(...)": the hint says what is missing, and the layer after the
 * label is checked as usual, shapes and all. */
START_TEST(label_without_colon)
{
    only("Input(4x4x1)\nC1 Conv(kernel=9x9, n=1)\n", 2,
         "t.net:2:1: error: unknown layer 'C1'\n"
         "    2 | C1 Conv(kernel=9x9, n=1)\n"
         "      | ^~\n"
         "      = hint: missing ':' after the label 'C1'?\n",
         "t.net:2:16: error: kernel 9x9 is larger", NULL);
    /* Not when the word is alone on its line. */
    fails_with("Input(4)\nC1\nDense(n=2)\nSoftmax\n", "hint: the layers are", NULL);
}
END_TEST

/* A swap of two adjacent letters is one edit (optimal string alignment), so
 * "Cnov" gets its hint; letters moved further cost more. */
START_TEST(edit_distance_swaps)
{
    ck_assert_int_eq(edit_distance("cnov", "conv"), 1);
    ck_assert_int_eq(edit_distance("ab", "ba"), 1);
    ck_assert_int_eq(edit_distance("conv", "conv"), 0);
    ck_assert_int_eq(edit_distance("", "relu"), 4);
    ck_assert_int_eq(edit_distance("kitten", "sitting"), 3);
    ck_assert_int_eq(edit_distance("abc", "ca"), 3);   /* no edits within a swap */
    static const char *const names[] = {"Conv", "Dense", "ReLU", NULL};
    ck_assert_str_eq(nearest_name("Cnov", names), "Conv");
    ck_assert_str_eq(nearest_name("Dnese", names), "Dense");
    ck_assert_ptr_null(nearest_name("Cvno", names));
}
END_TEST

/* "Conv(...) relu Flatten": relu names a layer but for case, so it is a
 * misspelt layer rather than a label; a numbered label keeps its hint. */
START_TEST(layer_name_not_label)
{
    only("Input(4x4x1)\nConv(kernel=3x3, n=1) relu Flatten\nDense(n=2)\nSoftmax\n", 1,
         "t.net:2:23: error: unknown layer 'relu'\n"
         "    2 | Conv(kernel=3x3, n=1) relu Flatten\n"
         "      |                       ^~~~\n"
         "      = hint: did you mean 'ReLU'?\n", NULL);
    only("Input(4x4x1)\nRleu Flatten\nDense(n=2)\nSoftmax\n", 1,
         "hint: did you mean 'ReLU'?", NULL);
    fails_with("Input(4x4x1)\nrelu1 Flatten\nDense(n=2)\nSoftmax\n",
               "hint: missing ':' after the label 'relu1'?", NULL);
}
END_TEST

/* Statements the scanner or the parser has reported (a stray byte in a
 * name, a lost statement) get no second message, nor do shapes go on past
 * them. */
START_TEST(reported_statements_no_cascade)
{
    static const char bad_word[] = "Input(4x4x1)\nFl\xe4tten\nDense(n=2)\nSoftmax\n";
    TuResult r = tu_check_bytes(bad_word, sizeof bad_word - 1);
    ck_assert_int_eq(r.errors, 1);
    ck_assert_msg(strstr(r.diags, "t.net:2:3: error: unexpected byte 0xe4"), "%s", r.diags);
    tu_free(&r);
    /* A bad key: no "has no argument", no "needs kernel=". */
    only("Input(4x4x1)\nConv(k\xe9rnel=3x3, n=1)\n", 1,
         "t.net:2:7: error: unexpected byte 0xe9", NULL);
    only("Input(4)\nDense(n=2)\nSoftmax\nTrain(loss='mse')\n", 1,
         "t.net:4:12: error: unexpected character \"'\"", NULL);
    only("Input(4x4x1)\nConv(kernel=3x, n=8)\nFlatten\nDense(n=10)\nSoftmax\n", 1,
         "t.net:2:13: error: malformed number '3x'", NULL);
    only("Input(784)\ntrue: Dense(n=10)\nSoftmax\n", 1,
         "t.net:2:1: error: 'true' is reserved and cannot be a label", NULL);
}
END_TEST

/* ------------------------------------------------------------------------
 * Arguments
 */

START_TEST(arg_unknown_key)
{
    fails_with("Input(8x8x1)\nConv(kernel=3x3, n=2, strides=2)\n",
               "t.net:2:23: error: Conv has no argument 'strides'",
               "hint: did you mean 'stride'?", NULL);
    fails_with("Input(8x8x1)\nConv(kernel=3x3, n=2, dilation=2)\n",
               "hint: Conv takes kernel, n, stride, padding, bias, init", NULL);
    fails_with("Input(4)\nReLU(alpha=0.1)\n", "t.net:2:6: error: ReLU has no argument 'alpha'",
               "hint: ReLU takes no arguments; did you mean LeakyReLU(alpha=0.1)?\n", NULL);
    fails_with("Input(4)\nReLU(negative_slope=0.2)\n",
               "hint: ReLU takes no arguments; did you mean LeakyReLU(alpha=0.2)?\n", NULL);
    fails_with("Input(4)\nSigmoid(alpha=0.1)\n", "hint: Sigmoid takes no arguments\n", NULL);
}
END_TEST

/* A misspelt or misplaced argument is not reported missing as well. */
START_TEST(arg_accounted_not_missing)
{
    only("Input(8x8x1)\nConv(kernel_size=3x3, n=8)\n", 1,
         "t.net:2:6: error: Conv has no argument 'kernel_size'",
         "hint: did you mean 'kernel'?", NULL);
    only("Input(8x8x1)\nConv(n=8, 3x3)\n", 1,
         "t.net:2:11: error: a positional argument cannot follow key=value arguments\n"
         "    2 | Conv(n=8, 3x3)\n"
         "      |           ^~~\n"
         "      = hint: write kernel=3x3\n", NULL);
    /* Only the one it stands for: n is still missing. */
    only("Input(8x8x1)\nConv(stride=2, 3x3)\n", 2, "hint: write kernel=3x3\n",
         "t.net:2:1: error: Conv needs n= (output channels)", NULL);
    /* A value no positional argument takes, but one keyword argument does. */
    only("Input(8x8x1)\nConv(n=8, same)\n", 2, "hint: write padding=same\n",
         "t.net:2:1: error: Conv needs kernel=", NULL);
    only("Input(8x8x1)\nConv(kernel=3x3, n=8, 2)\n", 1,
         "hint: write it as key=value, or move it before the keyword arguments", NULL);
    /* Other frameworks' names. */
    only("Input(8x8x1)\nConv(filters=8, kernel=3x3)\nFlatten\nDense(units=2)\n"
         "Dropout(rate=0.5)\nSoftmax\nTrain(learning_rate=0.1)\n", 4,
         "t.net:2:6: error: Conv has no argument 'filters'\n"
         "    2 | Conv(filters=8, kernel=3x3)\n"
         "      |      ^~~~~~~\n"
         "      = hint: did you mean 'n'?\n",
         "t.net:4:7: error: Dense has no argument 'units'", "t.net:5:9: error: Dropout has no "
         "argument 'rate'", "hint: did you mean 'p'?", "hint: did you mean 'lr'?", NULL);
}
END_TEST

/* Other frameworks' names for the initialisations and losses. */
START_TEST(choice_aliases)
{
    only("Input(4)\nDense(n=2, init=xavier)\nSoftmax\n", 1,
         "t.net:2:17: error: init expects one of he_normal, he_uniform, glorot_normal, "
         "glorot_uniform, got 'xavier'\n",
         "      = hint: did you mean 'glorot_uniform'?\n", NULL);
    only("Input(4)\nDense(n=2, init=xavier_uniform_)\nSoftmax\n", 1,
         "hint: did you mean 'glorot_uniform'?", NULL);
    only("Input(4)\nDense(n=2)\nSoftmax\nTrain(init=Xavier_Normal)\n", 1,
         "hint: did you mean 'glorot_normal'?", NULL);
    only("Input(4)\nDense(n=2)\nSoftmax\nTrain(init=kaiming_uniform)\n", 1,
         "hint: did you mean 'he_uniform'?", NULL);
    only("Input(4)\nDense(n=2)\nSoftmax\nTrain(loss=mean_squared_error)\n", 1,
         "hint: did you mean 'mse'?", NULL);
}
END_TEST

/* Input's shape is its own: messages name Input, not the key "shape". */
START_TEST(input_shape_messages)
{
    only("Input(0x28x1)\nFlatten\n", 1,
         "t.net:1:7: error: Input sizes must be positive, got 0x28x1\n", NULL);
    only("Input()\nFlatten\n", 1,
         "t.net:1:1: error: Input needs a shape (HxWxC, HxW or F, e.g. 28x28x1)\n", NULL);
    only("Input(same)\nFlatten\n", 1,
         "t.net:1:7: error: Input expects a shape like 28x28x1, 28x28 or 784, got 'same'\n",
         NULL);
}
END_TEST

/* GlobalAvgPool on a vector: it is not needed. */
START_TEST(global_pool_on_vector)
{
    only("Input(784)\nGlobalAvgPool\nDense(n=2)\nSoftmax\n", 1,
         "t.net:2:1: error: GlobalAvgPool needs an HxWxC map, but Input (line 1) gives a "
         "vector of 784\n",
         "      = hint: remove this GlobalAvgPool: its input is already a vector\n", NULL);
}
END_TEST

/* Runs the front end on text with the given limit and -Werror setting;
 * returns what it printed (to free) and the error count in *errors. */
static char *run_with(const char *text, int max_errors, bool werror, int *errors)
{
    Source *src = source_from_string("t.net", text, strlen(text));
    char *buf = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&buf, &size);
    Diag d;
    diag_init(&d, src, out);
    d.max_errors = max_errors;
    d.werror = werror;
    Ast *ast = parse_source(src, &d);
    if (ast && !diag_full(&d))
        network_free(check_ast(ast, src->name, &d));
    fclose(out);
    ast_free(ast);
    source_free(src);
    *errors = d.errors;
    return buf;
}

/* The note that reporting stops comes once an error goes over the limit,
 * after the last error's hints; exactly the limit gets no note. Errors made
 * of warnings by -Werror count. */
START_TEST(error_limit)
{
    int errors;
    char *out = run_with("Input(4)\nMaxPol(2)\nDense(n=0)\n", 1, false, &errors);
    ck_assert_int_eq(errors, 1);
    ck_assert_msg(strstr(out, "      = hint: did you mean 'MaxPool'?\n"
                              "t.net: note: stopping after 1 error\n"), "%s", out);
    free(out);
    out = run_with("Input(4)\nMaxPol(2)\nDense(n=0)\n", 2, false, &errors);
    ck_assert_int_eq(errors, 2);
    ck_assert_msg(!strstr(out, "stopping"), "%s", out);
    free(out);
    out = run_with("Input(5x5x1)\nMaxPool(size=2x2)\nMaxPool(size=1x1, stride=2)\n"
                   "Dense(n=0)\n", 1, true, &errors);
    ck_assert_int_eq(errors, 1);
    ck_assert_msg(strstr(out, "unused [-Werror]\n"), "%s", out);
    ck_assert_msg(strstr(out, "t.net: note: stopping after 1 error\n"), "%s", out);
    free(out);
}
END_TEST

/* With -Werror a warning is an error, marked as GCC marks it. */
START_TEST(werror_marks_warnings)
{
    const char *text = "Input(5x5x1)\nMaxPool(size=2x2)\nFlatten\nDense(n=2)\nSoftmax\n";
    Source *src = source_from_string("t.net", text, strlen(text));
    char *buf = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&buf, &size);
    Diag d;
    diag_init(&d, src, out);
    d.werror = true;
    Ast *ast = parse_source(src, &d);
    Network *n = check_ast(ast, src->name, &d);
    fclose(out);
    ck_assert_ptr_null(n);
    ck_assert_int_eq(d.errors, 1);
    ck_assert_int_eq(d.warnings, 0);
    ck_assert_msg(strstr(buf, "t.net:2:1: error: MaxPool window 2x2 at stride 2 leaves the "
                              "last 1 row and 1 column of its 5x5 input unused [-Werror]\n"),
                  "%s", buf);
    ck_assert_msg(strstr(buf, "      = hint: 5 - 2 is not a multiple of the stride 2\n"), "%s",
                  buf);
    ast_free(ast);
    source_free(src);
    free(buf);
}
END_TEST

START_TEST(arg_duplicate)
{
    fails_with("Input(8x8x1)\nMaxPool(2x2, size=3x3)\n",
               "t.net:2:14: error: size is given twice", "t.net:2:9: note: first given here",
               NULL);
}
END_TEST

START_TEST(arg_missing)
{
    fails_with("Input(8x8x1)\nConv(n=4)\n",
               "t.net:2:1: error: Conv needs kernel= (the kernel's size, e.g. 3x3)", NULL);
    fails_with("Input(4)\nDense\n", "t.net:2:1: error: Dense needs n= (output features)", NULL);
}
END_TEST

START_TEST(arg_ill_typed)
{
    fails_with("Input(8x8x1)\nConv(kernel=3x3, n=2, stride=same)\n",
               "t.net:2:30: error: stride expects a size like 2 or 2x2, got 'same'", NULL);
    fails_with("Input(4)\nDense(n=2, bias=1)\n",
               "t.net:2:17: error: bias expects true or false, got '1'", NULL);
    fails_with("Input(4)\nDense(n=2.5)\n", "error: n expects an integer, got '2.5'", NULL);
    fails_with("Input(8x8x1)\nConv(kernel=3x3x3, n=2)\n",
               "error: kernel expects a size like 2 or 2x2, got '3x3x3'", NULL);
    fails_with("Input(4)\nDropout(p=true)\n", "error: p expects a number, got 'true'", NULL);
}
END_TEST

START_TEST(arg_out_of_range)
{
    fails_with("Input(4)\nDense(n=-5)\n", "t.net:2:9: error: n must be positive, got -5", NULL);
    fails_with("Input(4)\nDropout(p=1.5)\n",
               "t.net:2:11: error: p must be in [0, 1), got 1.5", NULL);
    fails_with("Input(8x8x1)\nConv(kernel=3x3, n=2, stride=0)\n",
               "error: stride must be positive, got 0", NULL);
    fails_with("Input(8x8x1)\nConv(kernel=3x3, n=2, padding=-1)\n",
               "error: padding must not be negative, got -1", NULL);
    fails_with("Input(4)\nLeakyReLU(alpha=-0.5)\n", "error: alpha must be >= 0, got -0.5",
               NULL);
}
END_TEST

START_TEST(arg_choices)
{
    fails_with("Input(4)\nDense(n=2)\nSoftmax\nTrain(optimizer=adm)\n",
               "t.net:4:17: error: optimizer expects one of sgd, momentum, nesterov, adam, "
               "adamw, got 'adm'",
               "hint: did you mean 'adam'?", NULL);
    fails_with("Input(4)\nDense(n=2, init=he_norml)\nSoftmax\n",
               "hint: did you mean 'he_normal'?", NULL);
    fails_with("Input(8x8x1)\nConv(3x3, 2, padding=vaild)\n",
               "error: padding expects valid, same, a number P or PHxPW, got 'vaild'",
               "hint: did you mean 'valid'?", NULL);
}
END_TEST

START_TEST(arg_positional)
{
    TuResult r = compiles("Input(9x9x2)\n"
                          "A: Conv(3x3, 4)\n"
                          "B: MaxPool(3x3, 2)\n"
                          "Flatten\n"
                          "Dropout(0.25)\n"
                          "LeakyReLU(0.2)\n"
                          "Dense(5)\n"
                          "Softmax\n");
    assert_shape(layer(&r, "A"), "7x7x4");
    assert_shape(layer(&r, "B"), "3x3x4");
    ck_assert_double_eq(layer(&r, "dropout1")->args[0].u.f, 0.25);
    ck_assert_double_eq(layer(&r, "leakyrelu1")->args[0].u.f, 0.2);
    assert_shape(layer(&r, "dense1"), "5");
    tu_free(&r);
    fails_with("Input(8x8x1)\nConv(n=2, 3x3)\n",
               "t.net:2:11: error: a positional argument cannot follow key=value arguments",
               NULL);
    fails_with("Input(8x8x1)\nConv(3x3, 2, 1)\n",
               "t.net:2:14: error: too many positional arguments: Conv takes at most 2 "
               "(kernel, n)", NULL);
    fails_with("Input(4)\nDense(n=2)\nSoftmax\nTrain(5)\n",
               "error: Train takes only key=value arguments", NULL);
}
END_TEST

/* Defaults: Conv stride 1, valid, bias; pools stride = size; LeakyReLU
 * alpha 0.01; Dropout p 0.5. */
START_TEST(arg_defaults)
{
    TuResult r = compiles("Input(8x8x1)\n"
                          "Conv(kernel=3, n=2, bias=false)\n"
                          "AvgPool(size=2)\n"
                          "LeakyReLU\n"
                          "Dropout\n"
                          "GlobalAvgPool\n"
                          "Dense(n=2)\n"
                          "Softmax\n");
    const Layer *c = layer(&r, "conv1");
    assert_shape(c, "6x6x2");
    ck_assert_int_eq(c->nparams, 1);
    ck_assert_int_eq(layer_params(c), 18);
    assert_shape(layer(&r, "avgpool1"), "3x3x2");
    ck_assert_double_eq(layer(&r, "leakyrelu1")->args[0].u.f, 0.01);
    ck_assert_double_eq(layer(&r, "dropout1")->args[0].u.f, 0.5);
    assert_shape(layer(&r, "globalavgpool1"), "2");
    tu_free(&r);
}
END_TEST

/* ------------------------------------------------------------------------
 * Shape rules
 */

/* same: ceil(in/s), the extra row at the bottom (TensorFlow). */
START_TEST(padding_same_split)
{
    TuResult r = compiles("Input(5x7x1)\n"
                          "A: Conv(kernel=2x3, n=1, stride=2, padding=same)\n"
                          "Flatten\nDense(n=2)\nSoftmax\n");
    const Layer *a = layer(&r, "A");
    assert_shape(a, "3x4x1");
    const Pad *p = &a->args[3].u.pad;   /* padding */
    ck_assert_int_eq(p->mode, PAD_SAME);
    ck_assert_int_eq(p->top, 0);        /* 5: out 3, (3-1)*2+2-5 = 1 */
    ck_assert_int_eq(p->bottom, 1);
    ck_assert_int_eq(p->left, 1);       /* 7: out 4, (4-1)*2+3-7 = 2 */
    ck_assert_int_eq(p->right, 1);
    ck_assert_int_eq(r.warnings, 0);
    tu_free(&r);
    r = compiles("Input(28x28x1)\nA: Conv(5x5, 6, padding=same)\nFlatten\nDense(2)\nSoftmax\n");
    p = &layer(&r, "A")->args[3].u.pad;
    assert_shape(layer(&r, "A"), "28x28x6");
    ck_assert(p->top == 2 && p->bottom == 2 && p->left == 2 && p->right == 2);
    tu_free(&r);
}
END_TEST

START_TEST(padding_explicit)
{
    TuResult r = compiles("Input(5x5x1)\n"
                          "A: Conv(kernel=3x3, n=1, padding=1)\n"
                          "B: Conv(kernel=3x3, n=1, padding=2x0)\n"
                          "C: MaxPool(size=3x3, stride=1, padding=1)\n"
                          "Flatten\nDense(n=2)\nSoftmax\n");
    assert_shape(layer(&r, "A"), "5x5x1");
    const Layer *b = layer(&r, "B");
    assert_shape(b, "7x3x1");
    ck_assert_int_eq(b->args[3].u.pad.top, 2);
    ck_assert_int_eq(b->args[3].u.pad.left, 0);
    assert_shape(layer(&r, "C"), "7x3x1");
    tu_free(&r);
}
END_TEST

START_TEST(window_too_large)
{
    fails_with("Input(3x3x1)\nConv(kernel=7x7, n=4, padding=1)\n",
               "t.net:2:13: error: kernel 7x7 is larger than its 3x3 input padded to 5x5: "
               "the output would be empty", NULL);
    fails_with("Input(28x28x1)\nConv(kernel=5x5, n=6)\nMaxPool(size=5x5)\nMaxPool(size=5x5)\n",
               "t.net:4:14: error: window 5x5 is larger than its 4x4 input (from MaxPool, "
               "line 3): the output would be empty", NULL);
}
END_TEST

START_TEST(pool_padding_rules)
{
    fails_with("Input(8x8x1)\nMaxPool(size=3x3, padding=same)\n",
               "t.net:2:27: error: MaxPool takes padding=valid or explicit padding, not same",
               NULL);
    fails_with("Input(8x8x1)\nAvgPool(size=3x3, padding=2)\n",
               "t.net:2:27: error: padding 2x2 is more than half the 3x3 window",
               "hint: as in PyTorch, at most 1x1 here", NULL);
}
END_TEST

/* (in + pads - k) % stride rows or columns no window reaches: a warning. */
START_TEST(unused_rows_warning)
{
    TuResult r = tu_check("Input(11x12x3)\n"
                          "Conv(kernel=3x3, n=8, stride=2)\n"
                          "ReLU\n"
                          "MaxPool(size=2x2)\n"
                          "Flatten\nDense(n=2)\nSoftmax\n");
    ck_assert_msg(r.net != NULL, "%s", r.diags);
    ck_assert_int_eq(r.warnings, 2);
    ck_assert_msg(strstr(r.diags, "t.net:2:1: warning: Conv kernel 3x3 at stride 2 leaves "
                                  "the last 1 column of its 11x12 input unused"),
                  "%s", r.diags);
    ck_assert_msg(strstr(r.diags, "t.net:4:1: warning: MaxPool window 2x2 at stride 2 "
                                  "leaves the last 1 row and 1 column of its 5x5 input unused"),
                  "%s", r.diags);
    tu_free(&r);
}
END_TEST

START_TEST(dense_on_map)
{
    fails_with("Input(24x24x105)\n"
               "MaxPool(size=4x4, stride=2)\n"
               "Dense(n=945)\n",
               "t.net:3:1: error: Dense needs a vector, but MaxPool (line 2) gives 11x11x105",
               "hint: insert Flatten before it", NULL);
}
END_TEST

START_TEST(flatten_and_map_rules)
{
    fails_with("Input(10)\nFlatten\n",
               "t.net:2:1: error: Flatten needs an HxWxC map, but Input (line 1) already gives "
               "a vector of 10", NULL);
    fails_with("Input(10)\nConv(3x3, 2)\n",
               "t.net:2:1: error: Conv needs an HxWxC map, but Input (line 1) gives a vector "
               "of 10", NULL);
    fails_with("Input(4x4x3)\nGlobalAvgPool\nMaxPool(2)\n",
               "error: MaxPool needs an HxWxC map, but GlobalAvgPool (line 2) gives a vector "
               "of 3", NULL);
}
END_TEST

START_TEST(softmax_rules)
{
    fails_with("Input(4)\nSoftmax\nDense(n=2)\n",
               "t.net:2:1: error: Softmax must be the last layer, but Dense (line 3) follows it",
               NULL);
    fails_with("Input(4x4x2)\nSoftmax\n",
               "t.net:2:1: error: Softmax needs a vector, but Input (line 1) gives 4x4x2", NULL);
}
END_TEST

START_TEST(cross_entropy_needs_softmax)
{
    fails_with("Input(4)\nDense(n=2)\n",
               "t.net:2:1: error: loss=cross_entropy needs Softmax as the last layer, but the "
               "last layer is Dense (dense1)",
               "hint: cross_entropy is the default loss", NULL);
    fails_with("Input(4)\nDense(n=2)\nTrain(loss=cross_entropy)\n",
               "t.net:3:12: error: loss=cross_entropy needs Softmax",
               "hint: add Softmax at the end, or use loss=mse", NULL);
    TuResult r = compiles("Input(4)\nDense(n=2)\nTrain(loss=mse)\n");
    tu_free(&r);
}
END_TEST

START_TEST(annotations)
{
    fails_with("Input(47x47x40)\nMaxPool(size=3x3, stride=2) -> 23x23x41\n",
               "t.net:2:32: error: annotation says 23x23x41, but MaxPool gives 23x23x40", NULL);
    fails_with("Input(28x28x1)\nFlatten -> 28x28x1\n",
               "error: annotation says 28x28x1, but Flatten gives 784", NULL);
    TuResult r = compiles("Input(28x28) -> 28x28\nFlatten -> 784\nDense(2) -> 2\nSoftmax\n");
    tu_free(&r);
}
END_TEST

/* ------------------------------------------------------------------------
 * Sizes that overflow
 */

START_TEST(overflow_input)
{
    fails_with("Input(100000x100000x100000)\nFlatten\n",
               "t.net:1:7: error: Input 100000x100000x100000 holds 1,000,000,000,000,000 "
               "values; at most 2,147,483,647 per sample", NULL);
    fails_with("Input(4000000000x4000000000x4000000000)\nFlatten\n",
               "holds more than 9,223,372,036,854,775,807 values", NULL);
}
END_TEST

START_TEST(overflow_layers)
{
    fails_with("Input(40000x40000x1)\nConv(kernel=3x3, n=8, padding=same)\n",
               "t.net:2:1: error: Conv output 40000x40000x8 holds 12,800,000,000 values; "
               "at most 2,147,483,647 per sample", NULL);
    fails_with("Input(100000)\nD: Dense(n=100000)\n",
               "t.net:2:4: error: D.weight [100000, 100000] holds 10,000,000,000 values; "
               "at most 2,147,483,647 per tensor", NULL);
    fails_with("Input(2147483648)\nDense(n=2)\n",
               "t.net:1:7: error: Input 2147483648 holds 2,147,483,648 values; "
               "at most 2,147,483,647 per sample", NULL);
}
END_TEST

/* ------------------------------------------------------------------------
 * All problems in one run
 */

START_TEST(several_errors)
{
    TuResult r = tu_check("Input(32x32x3)\n"
                          "Conv(kernel=3x3, n=0)\n"
                          "ReLU(alpha=0.1)\n"
                          "MaxPol(size=2x2)\n"
                          "Dense(n=10)\n"
                          "Softmax\n"
                          "Dropout(p=2)\n"
                          "Train(lr=-1, batch=0)\n");
    ck_assert_ptr_null(r.net);
    static const char *const want[] = {
        "t.net:2:20: error: n must be positive, got 0",
        "t.net:3:6: error: ReLU has no argument 'alpha'",
        "t.net:4:1: error: unknown layer 'MaxPol'",
        "t.net:6:1: error: Softmax must be the last layer",
        "t.net:7:11: error: p must be in [0, 1), got 2",
        "t.net:8:10: error: lr must be > 0, got -1",
        "t.net:8:20: error: batch must be positive, got 0",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        ck_assert_msg(strstr(r.diags, want[i]), "no \"%s\" in:\n%s", want[i], r.diags);
    ck_assert_int_eq(r.errors, 7);
    ck_assert_int_eq(count_of(r.diags, ": error: "), 7);
    tu_free(&r);
}
END_TEST

/* ------------------------------------------------------------------------
 * The memory plan
 */

/* Input 4x4x1 -> Conv 3x3 2 -> 2x2x2 -> ReLU -> Flatten 8 -> Dropout ->
 * Dense 3 -> Softmax, batch 10, adam, f32 (byte offsets round up to 64):
 *   params   conv 2*1*3*3 + 2 = 20, dense 3*8 + 3 = 27: 47; adam state 94
 *   outputs  from 64 (the header): conv, relu, flatten, dropout 10*8*4 = 320
 *            each (to 1344), dense and softmax 10*3*4 = 120 -> 128 each (to
 *            1600): 1536 bytes
 *   dbufs    2 * 10*16*4 (the input is the largest): 1280 (to 2880)
 *   scratch  conv 2 repacked weights 2*9*1*2*4 = 144 -> 192, dropout mask
 *            320, dense transposed weight 8*3*4 = 96 -> 128: 640 (to 3520)
 *   total    (47 + 47 + 94) * 4 + 3520 = 4272 bytes */
/* The layers' own scratch at a micro-batch, as plan.c lays it out (each
 * rounded up to 64 bytes): what the kernels choose, not the plan. */
static int64_t scratch_total(const Network *net, int64_t micro, int64_t lane_samples,
                             int64_t real_size)
{
    int64_t total = 0;
    for (int i = 0; i < net->nlayers; i++) {
        const Layer *l = &net->layers[i];
        int64_t b = l->kind->scratch_bytes ? l->kind->scratch_bytes(l, micro, lane_samples, real_size) : 0;
        total += (b + 63) / 64 * 64;
    }
    return total;
}

START_TEST(memory_plan)
{
    TuResult r = compiles("Input(4x4x1)\nConv(3x3, 2)\nReLU\nFlatten\nDropout\n"
                          "Dense(3)\nSoftmax\nTrain(batch=10, optimizer=adam)\n");
    MemPlan p;
    ck_assert(plan_network(r.net, 4, 0, 0, KERNELS_FAST, &p));
    ck_assert_int_eq(p.batch, 10);
    ck_assert_int_eq(p.micro, 10);
    ck_assert_int_eq(p.params, 47);
    ck_assert_int_eq(p.opt_state, 94);
    /* header 256; output, logits, their gradient: 10x3 floats each, 128 */
    ck_assert_int_eq(p.full_out_off, 256);
    ck_assert_int_eq(p.full_dy_off, 512);
    ck_assert_int_eq(p.t[1].off, 640);
    /* ReLU writes over the Conv's output: 320 + 320 + 320 + 128 + 128 */
    ck_assert(p.at[1].in_place);
    ck_assert_int_eq(p.t[2].off, 640);
    ck_assert(!p.at[2].in_place);
    ck_assert_int_eq(p.activations, 1216);
    ck_assert_int_eq(p.gradient_buffers, 1280);
    ck_assert_int_eq(p.layer_scratch, scratch_total(r.net, 10, 10, 4));
    ck_assert_int_eq(p.lanes, 1); /* one micro-batch: one lane */
    /* the input from bytes: 10x16 floats, after the scratch */
    ck_assert_int_eq(p.input_bytes, 640);
    ck_assert_int_eq(p.input_off, 640 + 1216 + 1280 + p.layer_scratch);
    ck_assert_int_eq(p.workspace, 640 + 1216 + 1280 + p.layer_scratch + 640);
    ck_assert_int_eq(p.total_bytes, p.workspace + 752);
    ck_assert_int_eq(p.at[0].need_dx[0], false);
    ck_assert_int_eq(p.at[4].need_dx[0], true);
    ck_assert_int_eq(p.at[4].param_off[0], 20);
    ck_assert_int_eq(p.loss_tensor, 5); /* the Dense's output: Softmax fused */
    plan_free(&p);
    /* Micro-batches of 4: the maps, gradient buffers and masks shrink. */
    ck_assert(plan_network(r.net, 4, 4, 0, KERNELS_FAST, &p));
    ck_assert_int_eq(p.micro, 4);
    ck_assert_int_eq(p.activations, 128 + 128 + 128 + 64 + 64);
    ck_assert_int_eq(p.gradient_buffers, 2 * 256);
    ck_assert_int_eq(p.lane_samples, 8);
    ck_assert_int_eq(p.layer_scratch, scratch_total(r.net, 4, 8, 4));
    ck_assert_int_eq(p.input_bytes, 256);
    ck_assert_int_eq(p.lane_bytes, 640 + 512 + 512 + p.layer_scratch + 256);
    /* 3 micro-batches on 2 lanes: two workspaces, then lane 1's gradients */
    ck_assert_int_eq(p.lanes, 2);
    ck_assert_int_eq(p.lane_grads_off, 2 * p.lane_bytes);
    ck_assert_int_eq(p.workspace, 2 * p.lane_bytes + 47 * 4);
    ck_assert_int_eq(p.total_bytes, p.workspace + 752);
    plan_free(&p);
    /* --lanes=3: the batch halved (10, 5, 3) until each lane has a
     * micro-batch; three workspaces, then the gradients of lanes 1 and 2 */
    ck_assert(plan_network(r.net, 4, 0, 3, KERNELS_FAST, &p));
    ck_assert_int_eq(p.micro, 3);
    ck_assert_int_eq(p.lanes, 3);
    ck_assert_int_eq(p.lane_samples, 6);
    ck_assert_int_eq(p.lane_grads_off, 3 * p.lane_bytes);
    ck_assert_int_eq(p.workspace, 3 * p.lane_bytes + 2 * 47 * 4);
    plan_free(&p);
    ck_assert(plan_network(r.net, 4, 0, 3, KERNELS_REFERENCE, &p));
    ck_assert_int_eq(p.lanes, 1); /* the reference tier: one lane */
    plan_free(&p);
    /* each lane needs a micro-batch: 10 in 4s is 3, in 5s only 2 */
    char why[512] = "";
    ck_assert(plan_lanes_fit(r.net, 4, 3, why, sizeof why));
    ck_assert(plan_lanes_fit(r.net, 0, 10, why, sizeof why));
    ck_assert(!plan_lanes_fit(r.net, 5, 3, why, sizeof why));
    ck_assert_ptr_nonnull(strstr(why, "give --micro-batch=4 or less"));
    ck_assert(!plan_lanes_fit(r.net, 0, 11, why, sizeof why));
    ck_assert_ptr_nonnull(strstr(why, "at most 10 lanes"));
    ck_assert(plan_network(r.net, 8, 0, 0, KERNELS_FAST, &p));
    /* f64: output buffers 256 each; maps 640 + 640 + 640 + 256 + 256 */
    ck_assert_int_eq(p.layer_scratch, scratch_total(r.net, 10, 10, 8));
    ck_assert_int_eq(p.workspace, 256 + 768 + 2432 + 2560 + p.layer_scratch + 1280);
    ck_assert_int_eq(p.total_bytes, p.workspace + 1504);
    plan_free(&p);
    tu_free(&r);
}
END_TEST

/* A ReLU writes over its input only after a layer whose backward does not
 * read its output; the automatic micro-batch halves the batch until the maps
 * fit the budget. */
START_TEST(memory_plan_in_place_and_micro)
{
    TuResult r = compiles("Input(64x64x16)\nMaxPool(2x2)\nReLU\nConv(1x1, 64)\nTanh\n"
                          "Flatten\nDense(2)\nSigmoid\nTrain(batch=256, loss=mse)\n");
    MemPlan p;
    ck_assert(plan_network(r.net, 4, 0, 0, KERNELS_FAST, &p));
    ck_assert(!p.at[1].in_place);   /* after MaxPool, whose backward reads y */
    ck_assert(p.at[3].in_place);    /* Tanh after Conv */
    ck_assert(p.at[6].in_place);    /* Sigmoid after Dense */
    ck_assert_int_eq(p.t[7].off, p.t[6].off);
    /* per sample 640 KiB of maps + 2 x 256 KiB of gradient: 8 on each of
     * 2 lanes fit 24 MiB */
    ck_assert_int_eq(p.micro, 8);
    ck_assert_int_eq(p.lanes, 2);
    ck_assert_int_le(p.lanes * (p.activations + p.gradient_buffers), (int64_t)24 << 20);
    plan_free(&p);
    tu_free(&r);
}
END_TEST

/* A residual block: the graph's tensors and consumers, and what the plan
 * makes of them. */
START_TEST(graph_residual)
{
    TuResult r = compiles("x: Input(8x8x4)\n"
                          "c1: Conv(3x3, 4, padding=same)\n"   /* layer 0, tensor 1 */
                          "r1: ReLU\n"                         /* 1, 2 */
                          "c2: Conv(3x3, 4, padding=same)\n"   /* 2, 3 */
                          "a: Add(c2, x)\n"                    /* 3, 4 */
                          "r2: ReLU\n"                         /* 4, 5 */
                          "Flatten\nDense(2)\nSoftmax\n");
    const Network *n = r.net;
    ck_assert_int_eq(n->tensors[INPUT_TENSOR].nconsumers, 2);   /* c1 and the Add */
    ck_assert_int_eq(n->tensors[INPUT_TENSOR].consumers[1], 3);
    const Layer *a = layer(&r, "a");
    ck_assert_int_eq(a->ninputs, 2);
    ck_assert_int_eq(a->inputs[0], 3);
    ck_assert_int_eq(a->inputs[1], INPUT_TENSOR);
    MemPlan p;
    ck_assert(plan_network(n, 4, 0, 0, KERNELS_FAST, &p));
    ck_assert(p.at[1].in_place && p.at[1].forward_fused && p.at[0].relu_out);
    ck_assert(p.at[4].in_place);              /* the ReLU over the Add's output */
    ck_assert(p.at[4].forward_fused);         /* applied by the Add as it stores */
    ck_assert(!p.t[INPUT_TENSOR].needs_grad); /* nothing learns before the input */
    ck_assert(!p.at[3].need_dx[1]);
    ck_assert(p.at[3].need_dx[0]);
    ck_assert(!p.at[3].dx_add[0]);            /* c2's gradient: the Add's alone */
    plan_free(&p);
    ck_assert(plan_network(n, 4, 0, 0, KERNELS_REFERENCE, &p));
    ck_assert(!p.at[1].in_place && !p.at[1].forward_fused);
    ck_assert(p.at[3].dx_add[0]);             /* the reference tier always adds */
    ck_assert_int_eq(p.lanes, 1);
    plan_free(&p);
    tu_free(&r);
}
END_TEST

/* A tensor with three consumers: the first in backward order writes its
 * gradient, the other two add; it keeps one gradient buffer throughout. */
START_TEST(graph_fan_out)
{
    TuResult r = compiles("Input(6)\n"
                          "h: Dense(6)\n"                 /* layer 0, tensor 1 */
                          "a: Dense(6, from=h)\n"         /* 1 */
                          "b: Dense(6, from=h)\n"         /* 2 */
                          "c: Dense(6, from=h)\n"         /* 3 */
                          "Add(a, b, c)\n"                /* 4 */
                          "Softmax\n");
    MemPlan p;
    ck_assert(plan_network(r.net, 4, 0, 0, KERNELS_FAST, &p));
    ck_assert_int_eq(r.net->tensors[1].nconsumers, 3);
    ck_assert(p.t[1].needs_grad);
    ck_assert(p.at[3].need_dx[0] && !p.at[3].dx_add[0]);   /* c: first in backward */
    ck_assert(p.at[2].dx_add[0] && p.at[1].dx_add[0]);    /* b, a add */
    ck_assert(!p.at[0].need_dx[0]);                       /* the input learns nothing */
    plan_free(&p);
    tu_free(&r);
}
END_TEST

START_TEST(memory_plan_optimizers)
{
    static const struct { const char *opt; int64_t state; } cases[] = {
        {"sgd", 0}, {"momentum", 27}, {"nesterov", 27}, {"adam", 54},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[128];
        snprintf(text, sizeof text, "Input(8)\nDense(3)\nSoftmax\nTrain(optimizer=%s)\n",
                 cases[i].opt);
        TuResult r = compiles(text);
        MemPlan p;
        ck_assert(plan_network(r.net, 4, 0, 0, KERNELS_FAST, &p));
        ck_assert_int_eq(p.params, 27);
        ck_assert_int_eq(p.opt_state, cases[i].state);
        ck_assert_int_eq(p.activations, 2 * 32 * 3 * 4);   /* default batch 32 */
        plan_free(&p);
        tu_free(&r);
    }
}
END_TEST

/* ------------------------------------------------------------------------
 * No cascades
 */

/* A statement lost to a syntax error may be the Input: no "missing Input". */
START_TEST(no_cascade_after_syntax_error)
{
    TuResult r = tu_check("Input(28x28x1x1)\nFlatten\nDense(n=2)\nSoftmax\n");
    ck_assert_ptr_null(r.net);
    ck_assert_int_eq(r.errors, 1);
    ck_assert_msg(!strstr(r.diags, "missing Input"), "%s", r.diags);
    tu_free(&r);
}
END_TEST

/* The loss rule waits until the layers check out. */
START_TEST(no_cascade_loss_rule)
{
    TuResult r = tu_check("Input(4)\nDense(n=0)\n");
    ck_assert_int_eq(r.errors, 1);
    ck_assert_msg(strstr(r.diags, "t.net:2:9: error: n must be positive, got 0"), "%s", r.diags);
    tu_free(&r);
}
END_TEST

/* After the first layer without a shape, later shape rules are skipped but
 * later arguments are still checked. */
START_TEST(shapes_stop_arguments_go_on)
{
    TuResult r = tu_check("Input(4x4x1)\n"
                          "Conv(kernel=9x9, n=2)\n"
                          "Dense(n=3)\n"
                          "Dense(n=-1)\n");
    ck_assert_int_eq(r.errors, 2);
    ck_assert_msg(strstr(r.diags, "t.net:2:13: error: kernel 9x9 is larger"), "%s", r.diags);
    ck_assert_msg(!strstr(r.diags, "Dense needs a vector"), "%s", r.diags);
    ck_assert_msg(strstr(r.diags, "t.net:4:9: error: n must be positive, got -1"), "%s", r.diags);
    tu_free(&r);
}
END_TEST

/* ------------------------------------------------------------------------
 * More of the language
 */

START_TEST(size2_forms)
{
    TuResult r = compiles("Input(10x9x2)\n"
                          "A: Conv(kernel=1, n=3)\n"
                          "B: Conv(kernel=3x1, n=3, stride=2x1)\n"
                          "C: Sigmoid\n"
                          "D: Tanh\n"
                          "Flatten\n"
                          "E: Dense(n=2, bias=false)\n"
                          "Softmax\n");
    assert_shape(layer(&r, "A"), "10x9x3");
    ck_assert_int_eq(layer(&r, "A")->params[0].dims[2], 1);
    ck_assert_int_eq(layer(&r, "A")->params[0].dims[3], 1);
    assert_shape(layer(&r, "B"), "4x9x3");     /* (10-3)/2+1, (9-1)/1+1 */
    assert_shape(layer(&r, "C"), "4x9x3");
    assert_shape(layer(&r, "D"), "4x9x3");
    ck_assert_int_eq(layer(&r, "E")->nparams, 1);
    ck_assert_int_eq(layer_params(layer(&r, "E")), 2 * 108);
    ck_assert_int_eq(r.warnings, 1);           /* (10-3) % 2 = 1 row */
    tu_free(&r);
}
END_TEST

START_TEST(annotation_on_declarations)
{
    fails_with("Input(4) -> 5\nDense(n=2)\nSoftmax\n",
               "t.net:1:13: error: annotation says 5, but Input gives 4", NULL);
    fails_with("Input(4)\nDense(n=2)\nSoftmax\nTrain(batch=2) -> 2\n",
               "t.net:4:19: error: Train has no shape to annotate", NULL);
}
END_TEST

START_TEST(key_near_misses)
{
    fails_with("Input(4)\nDense(n=2)\nSoftmax\nTrain(batch_size=2)\n",
               "error: Train has no argument 'batch_size'", "hint: did you mean 'batch'?", NULL);
    fails_with("Input(8x8x1)\nMaxPool(kernel_size=2)\n", "hint: did you mean 'size'?", NULL);
    fails_with("Input(8x8x1)\nConv(kernal=3, n=1)\n", "hint: did you mean 'kernel'?", NULL);
}
END_TEST

/* The network's name is the file's stem, made a C identifier. */
START_TEST(network_names)
{
    static const char *const cases[][2] = {
        {"models/seed.net", "seed"}, {"<stdin>", "stdin"}, {"a/3d-net.v2.net", "net_3d_net_v2"},
    };
    const char *text = "Input(4)\nDense(n=2)\nSoftmax\n";
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        Source *src = source_from_string(cases[i][0], text, strlen(text));
        FILE *out = fopen("/dev/null", "w");
        Diag d;
        diag_init(&d, src, out);
        Ast *ast = parse_source(src, &d);
        Network *n = check_ast(ast, src->name, &d);
        ck_assert_ptr_nonnull(n);
        ck_assert_str_eq(n->name, cases[i][1]);
        ck_assert_str_eq(n->source_name, cases[i][0]);
        network_free(n);
        ast_free(ast);
        source_free(src);
        fclose(out);
    }
}
END_TEST

/* The example models in models/ all compile without a warning. */
START_TEST(models_compile)
{
    static const char *const models[] = {"seed", "lenet5", "cifar10", "mlp"};
    const char *top = getenv("srcdir") ? getenv("srcdir") : ".";
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/models/%s.net", top, models[i]);
        Source *src = source_read(path);
        ck_assert_msg(src != NULL, "cannot read %s", path);
        TuResult r = tu_check_bytes(src->text, src->len);
        ck_assert_msg(r.net && r.warnings == 0, "%s:\n%s", path, r.diags);
        tu_free(&r);
        source_free(src);
    }
}
END_TEST

/* ------------------------------------------------------------------------ */

static Suite *checker_suite(void)
{
    Suite *s = suite_create("checker");
    TCase *seed = tu_tcase("seed");
    tcase_add_test(seed, seed_shapes);
    tcase_add_test(seed, seed_parameters);
    tcase_add_test(seed, seed_param_layout);
    tcase_add_test(seed, seed_flops);
    tcase_add_test(seed, seed_train);
    tcase_add_test(seed, seed_summary);
    tcase_add_test(seed, summary_long_label);
    suite_add_tcase(s, seed);

    TCase *names = tu_tcase("statements");
    tcase_add_test(names, auto_names);
    tcase_add_test(names, auto_name_clash);
    tcase_add_test(names, repeated_label);
    tcase_add_test(names, label_on_declarations);
    tcase_add_test(names, input_forms);
    tcase_add_test(names, input_missing_or_repeated);
    tcase_add_test(names, train_anywhere_once);
    tcase_add_test(names, train_defaults_and_overrides);
    tcase_add_test(names, train_ranges);
    tcase_add_test(names, init_per_layer);
    tcase_add_test(names, no_layers);
    tcase_add_test(names, unknown_words);
    tcase_add_test(names, unknown_declaration);
    tcase_add_test(names, unknown_words_no_cascade);
    tcase_add_test(names, label_without_colon);
    tcase_add_test(names, edit_distance_swaps);
    tcase_add_test(names, layer_name_not_label);
    tcase_add_test(names, reported_statements_no_cascade);
    tcase_add_test(names, input_shape_messages);
    suite_add_tcase(s, names);

    TCase *args = tu_tcase("arguments");
    tcase_add_test(args, arg_unknown_key);
    tcase_add_test(args, arg_duplicate);
    tcase_add_test(args, arg_missing);
    tcase_add_test(args, arg_ill_typed);
    tcase_add_test(args, arg_out_of_range);
    tcase_add_test(args, arg_choices);
    tcase_add_test(args, arg_positional);
    tcase_add_test(args, arg_defaults);
    tcase_add_test(args, arg_accounted_not_missing);
    tcase_add_test(args, choice_aliases);
    suite_add_tcase(s, args);

    TCase *shapes = tu_tcase("shapes");
    tcase_add_test(shapes, padding_same_split);
    tcase_add_test(shapes, padding_explicit);
    tcase_add_test(shapes, window_too_large);
    tcase_add_test(shapes, pool_padding_rules);
    tcase_add_test(shapes, unused_rows_warning);
    tcase_add_test(shapes, dense_on_map);
    tcase_add_test(shapes, flatten_and_map_rules);
    tcase_add_test(shapes, softmax_rules);
    tcase_add_test(shapes, cross_entropy_needs_softmax);
    tcase_add_test(shapes, annotations);
    tcase_add_test(shapes, overflow_input);
    tcase_add_test(shapes, overflow_layers);
    tcase_add_test(shapes, several_errors);
    tcase_add_test(shapes, global_pool_on_vector);
    tcase_add_test(shapes, werror_marks_warnings);
    tcase_add_test(shapes, error_limit);
    suite_add_tcase(s, shapes);

    TCase *more = tu_tcase("more");
    tcase_add_test(more, no_cascade_after_syntax_error);
    tcase_add_test(more, no_cascade_loss_rule);
    tcase_add_test(more, shapes_stop_arguments_go_on);
    tcase_add_test(more, size2_forms);
    tcase_add_test(more, annotation_on_declarations);
    tcase_add_test(more, key_near_misses);
    tcase_add_test(more, network_names);
    tcase_add_test(more, models_compile);
    suite_add_tcase(s, more);

    TCase *plan = tu_tcase("plan");
    tcase_add_test(plan, memory_plan);
    tcase_add_test(plan, memory_plan_in_place_and_micro);
    tcase_add_test(plan, memory_plan_optimizers);
    tcase_add_test(plan, graph_residual);
    tcase_add_test(plan, graph_fan_out);
    suite_add_tcase(s, plan);
    return s;
}

int main(void)
{
    return tu_run_suite(checker_suite());
}
