#!/usr/bin/env python3
"""torch_bench.py: the training step of a .net network, timed in PyTorch.

The counterpart of a cnnc trainer's `bench` subcommand, for bench/bench.sh:
the same network (a torch.nn.Module built from the .net file by the reader
below), the same batch, the same number of threads (torch.set_num_threads),
on the CPU, in float32. One step is what a training loop does per batch:

    uint8 images (N x H x W x C) -> float32 N x C x H x W, scaled by 1/255
    forward, cross-entropy on the logits (the .net's Softmax; or mse)
    zero_grad, backward, the optimizer step of the .net's Train(...)
    (sgd, momentum, nesterov: torch.optim.SGD; adam: Adam; adamw: AdamW)

on one synthetic batch (random pixels and labels), repeated. After --warmup
untimed steps it times --reps blocks of --steps steps and prints the median
of the blocks' median step times, the process's peak RSS (getrusage), the
network's parameter count (bench.sh checks it against the trainer's) and
the BLAS libraries loaded:

    torch seed nchw: batch 128, 2 threads, 3 x 5 steps after 1 warm-up
    median 812.345 ms/step  157.6 images/s  peak RSS 612.3 MiB
    params 1598990
    blas /usr/lib/x86_64-linux-gnu/blas/libblas.so.3.11.0

Linear layers run on that BLAS: Debian's python3-torch uses the system's
libblas.so.3, which is the unoptimised reference BLAS unless OpenBLAS or
BLIS is installed.

The whole language is read: labels, from=, Add and Concat (a graph, run in
source order), Conv with groups= (depthwise included) and padding=same
split as TensorFlow does (through ZeroPad2d when the split is uneven),
BatchNorm (BatchNorm2d on maps, BatchNorm1d on vectors, in training mode:
batch statistics, running statistics updated), SiLU, GELU (exact, erf),
and the rest. Train's recipe (schedule, warmup, label_smoothing, clip,
flip, crop) is read but not timed: the trainers' `bench` subcommand times
a step at a fixed learning rate without augmentation, smoothing or
clipping (runtime/bench.c), and this times the same step.

--layout nchw keeps PyTorch's default layout; channels_last converts the
model and the input to torch.channels_last (NHWC in memory), which oneDNN's
convolutions often prefer on CPUs. bench.sh runs each layout in its own
process, so that each peak RSS is its own, and keeps the faster.

Usage: torch_bench.py NET.net [--batch N] [--threads N] [--steps N]
                              [--warmup N] [--reps N] [--layout nchw|channels_last]
"""
import argparse
import os
import re
import resource
import statistics
import sys
import time


def _threads_from_argv(argv):
    for i, a in enumerate(argv):
        if a == "--threads" and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--threads="):
            return a.split("=", 1)[1]
    return "1"


# The BLAS that torch loads (Linear layers run on it) keeps its own thread
# count, read once when the library loads: set it to --threads first.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
             "BLIS_NUM_THREADS"):
    os.environ[_var] = _threads_from_argv(sys.argv[1:])

import torch  # noqa: E402  (after the environment above)
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402


class NetError(Exception):
    """A problem in the .net file, with its place: 'file:line: message'."""


# ---- reading a .net file ---------------------------------------------------------
# docs/language.md has the grammar; this reader trusts cnnc to have checked
# the file (bench.sh builds the trainer first) and only says where it got lost.

TOKEN = re.compile(r"""
    (?P<skip>[ \t\r\n]+|\#[^\n]*)
  | (?P<arrow>->)
  | (?P<dims>\d+(?:x\d+)+)
  | (?P<number>-?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?)
  | (?P<name>[A-Za-z_]\w*)
  | (?P<punct>[(),=:\[\]])
""", re.VERBOSE)


def tokenize(path, text):
    """-> [(kind, text, line)]: dims, number, name, punct, arrow."""
    tokens, pos, line = [], 0, 1
    while pos < len(text):
        m = TOKEN.match(text, pos)
        if not m:
            raise NetError("%s:%d: unexpected character %r" % (path, line, text[pos]))
        if m.lastgroup != "skip":
            tokens.append((m.lastgroup, m.group(), line))
        line += m.group().count("\n")
        pos = m.end()
    return tokens


def number(text):
    return float(text) if re.search(r"[.eE]", text) else int(text)


class Statement:
    """[LABEL ':'] Word ['(' arguments ')'] ['->' SHAPE], the arguments as
    positional values and key=value pairs, in order."""

    def __init__(self, label, word, line):
        self.label, self.word, self.line = label, word, line
        self.positional, self.keyword = [], {}


class Reader:
    def __init__(self, path):
        self.path = path
        with open(path, encoding="utf-8") as f:
            self.tokens = tokenize(path, f.read())
        self.pos = 0

    def peek(self, ahead=0):
        i = self.pos + ahead
        return self.tokens[i] if i < len(self.tokens) else ("end", "", self.last_line())

    def last_line(self):
        return self.tokens[-1][2] if self.tokens else 1

    def take(self, kind=None, text=None):
        tok = self.peek()
        if (kind and tok[0] != kind) or (text and tok[1] != text):
            raise NetError("%s:%d: expected %s, found %r"
                           % (self.path, tok[2], text or kind, tok[1] or "the end"))
        self.pos += 1
        return tok

    def accept(self, text):
        if self.peek()[1] == text and self.peek()[0] in ("punct", "arrow"):
            self.pos += 1
            return True
        return False

    # value: dims | number | name | '[' number {',' number} ']'
    def value(self):
        kind, text, _ = self.peek()
        if self.accept("["):
            items = [self.value()]
            while self.accept(","):
                items.append(self.value())
            self.take("punct", "]")
            return items
        self.take()
        if kind == "number":
            return number(text)
        if kind == "name" and text in ("true", "false"):
            return text == "true"
        if kind in ("dims", "name"):
            return text
        raise NetError("%s:%d: expected a value, found %r" % (self.path, self.peek()[2], text))

    # arguments: argument {',' argument} [','];  argument: [key '='] value
    def arguments(self, st):
        while not self.accept(")"):
            if self.peek()[0] == "name" and self.peek(1)[1] == "=":
                key = self.take()[1]
                self.take("punct", "=")
                st.keyword[key] = self.value()
            else:
                st.positional.append(self.value())
            if not self.accept(","):
                self.take("punct", ")")
                return

    # statement: [LABEL ':'] Word ['(' arguments ')'] ['->' SHAPE]
    def statement(self):
        label = None
        if self.peek(1)[1] == ":":
            label = self.take("name")[1]
            self.take("punct", ":")
        _, word, line = self.take("name")
        st = Statement(label, word, line)
        if self.accept("("):
            self.arguments(st)
        if self.accept("->"):
            self.value()    # the annotation: cnnc has checked it
        return st

    def statements(self):
        out = []
        while self.peek()[0] != "end":
            out.append(self.statement())
        return out


# ---- the network as a graph of PyTorch modules ----------------------------------------
# The positional order of each layer's arguments (docs/language.md, "Layers").
POSITIONAL = {"Conv": ["kernel", "n"], "MaxPool": ["size", "stride"],
              "AvgPool": ["size", "stride"], "Dense": ["n"], "Dropout": ["p"],
              "LeakyReLU": ["alpha"], "Input": ["shape"]}
MERGES = ("Add", "Concat")
# What a training step leaves out, on both sides (runtime/bench.c).
RECIPE = ("schedule", "gamma", "step_size", "warmup", "label_smoothing", "clip",
          "flip", "crop")


def sides(v):
    """3 -> (3, 3); "3x2" -> (3, 2)."""
    if isinstance(v, int):
        return (v, v)
    p = [int(t) for t in v.split("x")]
    return (p[0], p[0]) if len(p) == 1 else (p[0], p[1])


def same_split(size, k, s):
    """padding=same on one side: (before, after, output), TensorFlow's split
    (the odd row or column after)."""
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2, out


class Shape:
    """A map (c, h, w) or a vector (f,): per sample, in PyTorch's order."""

    def __init__(self, dims):
        self.dims = tuple(dims)
        self.is_map = len(self.dims) == 3

    @property
    def channels(self):
        return self.dims[0]

    def __repr__(self):
        return "x".join(map(str, self.dims))


class Add(nn.Module):
    def forward(self, *xs):
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out


class Concat(nn.Module):
    def forward(self, *xs):
        return torch.cat(xs, dim=1)


# Each builder: (args, [input Shape]) -> (module, output Shape).
def build_conv(a, ins):
    c, h, w = ins[0].dims
    kh, kw = sides(a["kernel"])
    sh, sw = sides(a.get("stride", 1))
    pad = a.get("padding", "valid")
    if pad == "same":
        top, bottom, oh = same_split(h, kh, sh)
        left, right, ow = same_split(w, kw, sw)
    else:
        ph, pw = (0, 0) if pad == "valid" else sides(pad)
        top = bottom = ph
        left = right = pw
        oh = (h + 2 * ph - kh) // sh + 1
        ow = (w + 2 * pw - kw) // sw + 1
    even = top == bottom and left == right
    conv = nn.Conv2d(c, a["n"], (kh, kw), (sh, sw), (top, left) if even else 0,
                     groups=a.get("groups", 1), bias=a.get("bias", True))
    if not even:
        conv = nn.Sequential(nn.ZeroPad2d((left, right, top, bottom)), conv)
    return conv, Shape((a["n"], oh, ow))


def build_pool(kind):
    def build(a, ins):
        c, h, w = ins[0].dims
        k = sides(a["size"])
        s = sides(a.get("stride", a["size"]))
        pad = a.get("padding", "valid")
        p = (0, 0) if pad == "valid" else sides(pad)
        if kind == "MaxPool":
            pool = nn.MaxPool2d(k, s, p)
        else:        # padding never counts into the mean
            pool = nn.AvgPool2d(k, s, p, count_include_pad=False)
        out = [(n + 2 * pp - kk) // ss + 1 for n, pp, kk, ss in zip((h, w), p, k, s)]
        return pool, Shape((c, out[0], out[1]))
    return build


def build_batchnorm(a, ins):
    bn = nn.BatchNorm2d if ins[0].is_map else nn.BatchNorm1d
    return (bn(ins[0].channels, eps=float(a.get("eps", 1e-5)),
               momentum=float(a.get("momentum", 0.1)), affine=a.get("affine", True)),
            ins[0])


def build_concat(a, ins):
    joined = sum(s.channels for s in ins)
    return Concat(), Shape((joined,) + ins[0].dims[1:])


def same_shape(module):
    return lambda a, ins: (module(a), ins[0])


BUILDERS = {
    "Conv": build_conv,
    "MaxPool": build_pool("MaxPool"),
    "AvgPool": build_pool("AvgPool"),
    "GlobalAvgPool": lambda a, ins: (nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()),
                                     Shape((ins[0].channels,))),
    "Flatten": lambda a, ins: (nn.Flatten(), Shape((ins[0].dims[0] * ins[0].dims[1]
                                                    * ins[0].dims[2],))),
    "Dense": lambda a, ins: (nn.Linear(ins[0].dims[0], a["n"], bias=a.get("bias", True)),
                             Shape((a["n"],))),
    "BatchNorm": build_batchnorm,
    "ReLU": same_shape(lambda a: nn.ReLU()),
    "LeakyReLU": same_shape(lambda a: nn.LeakyReLU(float(a.get("alpha", 0.01)))),
    "Sigmoid": same_shape(lambda a: nn.Sigmoid()),
    "Tanh": same_shape(lambda a: nn.Tanh()),
    "SiLU": same_shape(lambda a: nn.SiLU()),
    "GELU": same_shape(lambda a: nn.GELU()),           # exact: erf
    "Dropout": same_shape(lambda a: nn.Dropout(float(a.get("p", 0.5)))),
    # The loss takes the logits: cross_entropy fuses the softmax, and mse
    # applies it in the step (Net.softmax).
    "Softmax": same_shape(lambda a: nn.Identity()),
    "Add": lambda a, ins: (Add(), ins[0]),
    "Concat": build_concat,
}


def arguments(path, st):
    """The statement's arguments by name (positional ones named as the
    language orders them; a merge's are its input labels)."""
    if st.word in MERGES:
        return {}
    names = POSITIONAL.get(st.word, [])
    if len(st.positional) > len(names):
        raise NetError("%s:%d: %s takes at most %d positional arguments, found %d"
                       % (path, st.line, st.word, len(names), len(st.positional)))
    a = dict(zip(names, st.positional))
    a.update(st.keyword)
    return a


def input_shape(value):
    """Input's HxWxC, HxW or F -> (Shape in PyTorch's order, the data's
    per-sample shape as the loader hands it over: H x W x C or F)."""
    dims = [int(t) for t in str(value).split("x")]
    if len(dims) == 1:
        return Shape(dims), tuple(dims)
    h, w = dims[0], dims[1]
    c = dims[2] if len(dims) == 3 else 1
    return Shape((c, h, w)), (h, w, c)


class Net(nn.Module):
    """The .net network as a module: layers in source order, each with the
    indices of the nodes it takes (node 0 the input); forward returns the
    last layer's output, the logits when the network ends in Softmax."""

    def __init__(self, path):
        super().__init__()
        statements = Reader(path).statements()
        trains = [st for st in statements if st.word == "Train"]
        self.train_args = trains[0].keyword if trains else {}
        layers = [st for st in statements if st.word != "Train"]
        if not layers or layers[0].word != "Input":
            raise NetError("%s: the network must start with Input" % path)
        self.setup_input(arguments(path, layers[0]))
        labels = {layers[0].label: 0} if layers[0].label else {}
        shapes = [self.in_shape]
        self.layers = nn.ModuleList()
        self.takes = []           # per layer: the node indices it takes
        self.softmax = False
        for st in layers[1:]:
            self.add_layer(path, st, labels, shapes)
        self.out_shape = shapes[-1]
        self.release = self.last_uses()
        self.has_conv = any(isinstance(m, nn.Conv2d) for m in self.modules())

    def setup_input(self, a):
        self.in_shape, self.data_shape = input_shape(a["shape"])
        # Input(..., mean=M, std=S): (x - mean) / std after the 1/255 scaling
        c = self.data_shape[-1] if self.in_shape.is_map else 1
        self.mean = torch.tensor(a.get("mean", 0.0), dtype=torch.float32).expand(c).clone()
        self.std = torch.tensor(a.get("std", 1.0), dtype=torch.float32).expand(c).clone()
        self.normalise = "mean" in a or "std" in a

    def add_layer(self, path, st, labels, shapes):
        if st.word not in BUILDERS:
            raise NetError("%s:%d: unknown layer %s"
                           % (path, st.line, st.word))
        a = arguments(path, st)
        if st.word in MERGES:
            names = st.positional
        else:
            names = [a.pop("from")] if "from" in a else []
        for name in names:
            if name not in labels:
                raise NetError("%s:%d: no label %s above this line" % (path, st.line, name))
        takes = [labels[n] for n in names] or [len(shapes) - 1]
        module, shape = BUILDERS[st.word](a, [shapes[i] for i in takes])
        self.layers.append(module)
        self.takes.append(takes)
        shapes.append(shape)
        self.softmax = st.word == "Softmax"
        if st.label:
            labels[st.label] = len(shapes) - 1

    def last_uses(self):
        """Per layer, the nodes whose output no later layer takes: forward
        drops its references to them there, so that PyTorch can free what
        autograd does not keep."""
        last = {}
        for i, takes in enumerate(self.takes):
            for node in takes:
                last[node] = i
        release = [[] for _ in self.takes]
        for node, i in last.items():
            release[i].append(node)
        return release

    def forward(self, x):
        outs = [x]
        for layer, takes, done in zip(self.layers, self.takes, self.release):
            outs.append(layer(*[outs[i] for i in takes]))
            for i in done:
                outs[i] = None
        return outs[-1]


def make_optimizer(net):
    t = net.train_args
    opt, lr = t.get("optimizer", "sgd"), float(t.get("lr", 0.01))
    decay = float(t.get("decay", 0.0))
    if opt in ("adam", "adamw"):
        adam = torch.optim.Adam if opt == "adam" else torch.optim.AdamW
        return adam(net.parameters(), lr=lr,
                    betas=(float(t.get("beta1", 0.9)), float(t.get("beta2", 0.999))),
                    eps=float(t.get("eps", 1e-8)), weight_decay=decay)
    momentum = 0.0 if opt == "sgd" else float(t.get("momentum", 0.9))
    return torch.optim.SGD(net.parameters(), lr=lr, momentum=momentum,
                           nesterov=opt == "nesterov", weight_decay=decay)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("net")
    ap.add_argument("--batch", type=int, help="default: Train(batch=...)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--layout", choices=("nchw", "channels_last"), default="nchw")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    try:
        net = Net(args.net)
    except (NetError, OSError) as e:
        raise SystemExit("torch_bench.py: %s" % e)
    batch = args.batch or int(net.train_args.get("batch", 32))
    layout = torch.channels_last if args.layout == "channels_last" else torch.contiguous_format
    if net.has_conv:
        net = net.to(memory_format=layout)
    net.train()
    opt = make_optimizer(net)
    mse = net.train_args.get("loss", "cross_entropy") == "mse"
    if not mse and net.out_shape.is_map:
        raise SystemExit("torch_bench.py: %s: cross-entropy needs a vector output, not %s"
                         % (args.net, net.out_shape))

    # The data as a loader hands it over: uint8 pixels, N x H x W x C, and
    # labels (mse: targets of the output's shape, one-hot for a vector).
    images = torch.randint(0, 256, (batch,) + net.data_shape, dtype=torch.uint8)
    if not net.out_shape.is_map:
        classes = net.out_shape.dims[0]
        labels = torch.randint(0, classes, (batch,), dtype=torch.int64)
        targets = F.one_hot(labels, classes).float()
    else:
        labels, targets = None, torch.rand((batch,) + net.out_shape.dims)

    def step():
        x = images.float().div_(255)
        if net.normalise:              # per channel, the last dimension
            x = x.sub_(net.mean).div_(net.std)
        if x.dim() == 4:               # NHWC -> NCHW: a view, channels_last in memory
            x = x.permute(0, 3, 1, 2).contiguous(memory_format=layout)
        opt.zero_grad(set_to_none=True)
        z = net(x)
        if mse:
            loss = F.mse_loss(F.softmax(z, dim=1) if net.softmax else z, targets)
        else:
            loss = F.cross_entropy(z, labels)
        loss.backward()
        opt.step()
        return loss

    for _ in range(args.warmup):
        step()
    medians = []
    for _ in range(args.reps):
        times = []
        for _ in range(args.steps):
            t0 = time.perf_counter()
            step()
            times.append(time.perf_counter() - t0)
        medians.append(statistics.median(times))
    med = statistics.median(medians)
    blas = sorted({line.split()[-1] for line in open("/proc/self/maps")
                   if re.search(r"/lib[^/]*(blas|mkl)[^/]*\.so", line)}) \
        if sys.platform.startswith("linux") else []
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    name = args.net.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    print("torch %s %s: batch %d, %d thread%s, %d x %d steps after %d warm-up"
          % (name, args.layout, batch, args.threads, "" if args.threads == 1 else "s",
             args.reps, args.steps, args.warmup))
    print("median %.3f ms/step  %.1f images/s  peak RSS %.1f MiB"
          % (med * 1e3, batch / med, rss))
    print("params %d" % sum(p.numel() for p in net.parameters()))
    # Linear layers run on the BLAS PyTorch was linked with; say which.
    print("blas %s" % (" ".join(blas) or "(none loaded)"))
    untimed = [k for k in RECIPE if k in net.train_args]
    if untimed:
        print("untimed %s (as in the trainer's bench)" % " ".join(untimed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
