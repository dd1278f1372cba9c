/* dot.c: cnnc --emit=dot, the network as a Graphviz picture.
 *
 *   dot -Tsvg model.dot -o model.svg
 *
 * A box per layer (its label, kind and arguments as written), an ellipse
 * for the input, and an edge per tensor a layer reads, marked with the
 * tensor's shape. Layers with parameters are shaded; a merge layer (Add,
 * Concat) is a diamond. */
#include "cnnc.h"

#include <inttypes.h>

/* s as a DOT string's contents: quotes and backslashes escaped. */
static void put_escaped(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fputc('\\', f);
        fputc(*s, f);
    }
}

/* "kernel=3x3 n=32 stride=2" for the arguments given in the source. */
static void put_args(FILE *f, const Layer *l)
{
    bool first = true;
    for (int a = 0; a < l->kind->nargs; a++) {
        const ArgSpec *spec = &l->kind->args[a];
        const ArgVal *v = &l->args[a];
        if (!v->given)
            continue;
        fputs(first ? "\\n" : " ", f);
        first = false;
        fprintf(f, "%s=", spec->key);
        switch (spec->type) {
        case ARG_INT: fprintf(f, "%" PRId64, v->u.i); break;
        case ARG_FLOAT: fprintf(f, "%g", v->u.f); break;
        case ARG_BOOL: fputs(v->u.b ? "true" : "false", f); break;
        case ARG_SIZE2: fprintf(f, "%" PRId64 "x%" PRId64, v->u.size.h, v->u.size.w); break;
        case ARG_PADDING:
            if (v->u.pad.mode == PAD_VALID)
                fputs("valid", f);
            else if (v->u.pad.mode == PAD_SAME)
                fputs("same", f);
            else
                fprintf(f, "%" PRId64 "x%" PRId64, v->u.pad.top, v->u.pad.left);
            break;
        case ARG_CHOICE: put_escaped(f, spec->choices[v->u.choice]); break;
        case ARG_SHAPE: break;
        }
    }
}

bool emit_dot(FILE *f, const Network *n)
{
    char shape[64];
    fputs("digraph \"", f);
    put_escaped(f, n->name);
    fputs("\" {\n", f);
    fputs("    graph [rankdir=TB, fontname=\"Helvetica\"];\n", f);
    fputs("    node [shape=box, style=\"rounded,filled\", fillcolor=white, "
          "fontname=\"Helvetica\"];\n", f);
    fputs("    edge [fontname=\"Helvetica\", fontsize=10];\n", f);
    fprintf(f, "    t0 [shape=ellipse, label=\"%s\\nInput %s\"];\n",
            n->input_label ? n->input_label : "input", shape_str(n->input, shape, sizeof shape));
    for (int i = 0; i < n->nlayers; i++) {
        const Layer *l = &n->layers[i];
        fprintf(f, "    t%d [label=\"", layer_output(l));
        put_escaped(f, l->label);
        fprintf(f, "\\n%s", l->kind->name);
        put_args(f, l);
        fputs("\"", f);
        if (l->kind->merge)
            fputs(", shape=diamond, style=filled", f);
        else if (l->nparams > 0)
            fputs(", fillcolor=\"#dde8f4\"", f);
        fputs("];\n", f);
    }
    for (int i = 0; i < n->nlayers; i++) {
        const Layer *l = &n->layers[i];
        for (int k = 0; k < l->ninputs; k++)
            fprintf(f, "    t%d -> t%d [label=\" %s\"];\n", l->inputs[k], layer_output(l),
                    shape_str(n->tensors[l->inputs[k]].shape, shape, sizeof shape));
    }
    const Layer *last = &n->layers[n->nlayers - 1];
    fprintf(f, "    output [shape=plaintext, label=\"output\"];\n");
    fprintf(f, "    t%d -> output [label=\" %s\"];\n", layer_output(last),
            shape_str(last->out, shape, sizeof shape));
    fputs("}\n", f);
    return !ferror(f);
}
