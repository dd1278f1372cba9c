#!/usr/bin/env python3
"""torch_bench.py: the training step of a .net network, timed in PyTorch.

The counterpart of a cnnc trainer's `bench` subcommand, for bench/bench.sh:
the same network (built from the .net file by the small parser below), the
same batch, the same number of threads (torch.set_num_threads), on the CPU,
in float32. One step is what a training loop does per batch:

    uint8 images (N x H x W x C) -> float32 N x C x H x W, scaled by 1/255
    forward, cross-entropy on the logits (the .net's Softmax; or mse)
    zero_grad, backward, the optimizer step of the .net's Train(...)
    (sgd, momentum, nesterov: torch.optim.SGD; adam: torch.optim.Adam)

on one synthetic batch (random pixels and labels), repeated. After --warmup
untimed steps it times --reps blocks of --steps steps and prints the median
of the blocks' median step times, and the process's peak RSS (getrusage):

    torch seed nchw: batch 128, 2 threads, 3 x 5 steps after 1 warm-up
    median 812.345 ms/step  157.6 images/s  peak RSS 612.3 MiB
    blas /usr/lib/x86_64-linux-gnu/blas/libblas.so.3.11.0

The last line names the BLAS libraries loaded (Linear layers run on them):
Debian's python3-torch uses the system's libblas.so.3, which is the
unoptimised reference BLAS unless OpenBLAS or BLIS is installed.

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

# ---- the .net subset ---------------------------------------------------------
# Layers: Conv, MaxPool, AvgPool, GlobalAvgPool, ReLU, LeakyReLU, Sigmoid,
# Tanh, Flatten, Dense, Dropout, Softmax; Input and Train. Arguments by name
# or by position as docs/language.md says.
POSITIONAL = {"Conv": ["kernel", "n"], "MaxPool": ["size", "stride"],
              "AvgPool": ["size", "stride"], "Dense": ["n"], "Dropout": ["p"],
              "LeakyReLU": ["alpha"], "Input": ["shape"]}


def pair(v):
    """3 -> (3, 3); "3x2" -> (3, 2); "same"/"valid" stay words."""
    if isinstance(v, int):
        return (v, v)
    if v in ("valid", "same"):
        return v
    p = [int(t) for t in v.split("x")]
    return (p[0], p[0]) if len(p) == 1 else (p[0], p[1])


def value(v):
    if re.fullmatch(r"\d+", v):
        return int(v)
    if re.fullmatch(r"[0-9.eE+-]+", v):
        return float(v)
    if v in ("true", "false"):
        return v == "true"
    return v


def parse_net(path):
    """-> [(label, kind, {arg: value})] with Input first, and Train's arguments."""
    src = re.sub(r"#[^\n]*", "", open(path).read()).rstrip()
    stmt = re.compile(r"\s*(?:(\w+)\s*:\s*)?(\w+)\s*(?:\(([^)]*)\))?\s*(?:->\s*[0-9x]+)?")
    pos, layers, train = 0, [], {}
    while pos < len(src):
        m = stmt.match(src, pos)
        if not m or m.end() == pos:
            raise SystemExit("%s: cannot parse near %r" % (path, src[pos:pos + 30]))
        pos = m.end()
        label, kind, argtext = m.group(1), m.group(2), m.group(3) or ""
        args = {}
        for i, a in enumerate(t.strip() for t in argtext.split(",") if t.strip()):
            if "=" in a:
                k, v = a.split("=", 1)
            else:
                k, v = POSITIONAL[kind][i], a
            args[k.strip()] = value(v.strip())
        if kind == "Train":
            train = args
        else:
            layers.append((label, kind, args))
    if not layers or layers[0][1] != "Input":
        raise SystemExit("%s: the network must start with Input" % path)
    return layers, train


class Net(torch.nn.Module):
    """The .net network as a PyTorch module; forward returns the logits (the
    input of the final Softmax)."""

    def __init__(self, path):
        super().__init__()
        layers, self.train_args = parse_net(path)
        dims = [int(t) for t in str(layers[0][2]["shape"]).split("x")]
        if len(dims) == 1:
            self.input_shape = (dims[0],)            # a vector
            c = h = w = None
            vec = dims[0]
        else:
            hh, ww = dims[0], dims[1]
            cc = dims[2] if len(dims) == 3 else 1
            self.input_shape = (hh, ww, cc)
            c, h, w, vec = cc, hh, ww, None
        self.steps = []      # callables, in order
        self.has_conv = False
        self.softmax = False
        for label, kind, a in layers[1:]:
            if kind == "Conv":
                kh, kw = pair(a["kernel"])
                sh, sw = pair(a.get("stride", 1))
                pad = pair(a.get("padding", "valid"))
                if pad == "same":     # TensorFlow's split: the extra row/column last
                    oh, ow = -(-h // sh), -(-w // sw)
                    th = max((oh - 1) * sh + kh - h, 0)
                    tw = max((ow - 1) * sw + kw - w, 0)
                    fpad = (tw // 2, tw - tw // 2, th // 2, th - th // 2)
                    if fpad[0] == fpad[1] and fpad[2] == fpad[3]:
                        cpad, fpad = (fpad[2], fpad[0]), None
                    else:
                        cpad = (0, 0)
                else:
                    fpad = None
                    cpad = (0, 0) if pad == "valid" else pad
                    oh = (h + 2 * cpad[0] - kh) // sh + 1
                    ow = (w + 2 * cpad[1] - kw) // sw + 1
                conv = torch.nn.Conv2d(c, a["n"], (kh, kw), (sh, sw), cpad,
                                       bias=a.get("bias", True))
                self.add_module(label or "conv%d" % len(self.steps), conv)
                if fpad:
                    self.steps.append(lambda x, p=fpad: F.pad(x, p))
                self.steps.append(conv)
                self.has_conv = True
                c, h, w = a["n"], oh, ow
            elif kind in ("MaxPool", "AvgPool"):
                k = pair(a["size"])
                s = pair(a.get("stride", a["size"]))
                p = pair(a.get("padding", "valid"))
                p = (0, 0) if p == "valid" else p
                if kind == "MaxPool":
                    self.steps.append(lambda x, k=k, s=s, p=p: F.max_pool2d(x, k, s, p))
                else:
                    self.steps.append(lambda x, k=k, s=s, p=p: F.avg_pool2d(
                        x, k, s, p, count_include_pad=False))
                h = (h + 2 * p[0] - k[0]) // s[0] + 1
                w = (w + 2 * p[1] - k[1]) // s[1] + 1
            elif kind == "GlobalAvgPool":
                self.steps.append(lambda x: x.mean(dim=(2, 3)))
                vec = c
            elif kind == "Flatten":
                self.steps.append(lambda x: x.reshape(x.shape[0], -1))
                vec = c * h * w
            elif kind == "Dense":
                lin = torch.nn.Linear(vec, a["n"], bias=a.get("bias", True))
                self.add_module(label or "dense%d" % len(self.steps), lin)
                self.steps.append(lin)
                vec = a["n"]
            elif kind == "ReLU":
                self.steps.append(F.relu)
            elif kind == "LeakyReLU":
                self.steps.append(lambda x, s=float(a.get("alpha", 0.01)): F.leaky_relu(x, s))
            elif kind == "Sigmoid":
                self.steps.append(torch.sigmoid)
            elif kind == "Tanh":
                self.steps.append(torch.tanh)
            elif kind == "Dropout":
                self.steps.append(lambda x, p=float(a.get("p", 0.5)):
                                  F.dropout(x, p, training=True))
            elif kind == "Softmax":
                self.softmax = True    # the loss takes the logits
            else:
                raise SystemExit("%s: torch_bench.py does not know layer %s" % (path, kind))
        self.outputs = vec                                  # None: a map
        self.output_shape = (vec,) if vec is not None else (c, h, w)

    def forward(self, x):
        for f in self.steps:
            x = f(x)
        return x


def make_optimizer(net):
    t = net.train_args
    opt, lr = t.get("optimizer", "sgd"), float(t.get("lr", 0.01))
    decay = float(t.get("decay", 0.0))
    if opt == "adam":
        return torch.optim.Adam(net.parameters(), lr=lr,
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
    net = Net(args.net)
    batch = args.batch or int(net.train_args.get("batch", 32))
    layout = torch.channels_last if args.layout == "channels_last" else torch.contiguous_format
    if net.has_conv:
        net = net.to(memory_format=layout)
    opt = make_optimizer(net)
    mse = net.train_args.get("loss", "cross_entropy") == "mse"

    if not mse and net.outputs is None:
        raise SystemExit("%s: cross-entropy needs a vector output" % args.net)

    # The data as a loader hands it over: uint8 pixels, N x H x W x C, and
    # labels (mse: targets of the output's shape, one-hot for a vector).
    images = torch.randint(0, 256, (batch,) + net.input_shape, dtype=torch.uint8)
    if net.outputs is not None:
        labels = torch.randint(0, net.outputs, (batch,), dtype=torch.int64)
        targets = F.one_hot(labels, net.outputs).float()
    else:
        labels, targets = None, torch.rand((batch,) + net.output_shape)

    def step():
        x = images.float().div_(255)
        if x.dim() == 4:               # NHWC -> NCHW: a view, channels_last in memory
            x = x.permute(0, 3, 1, 2).contiguous(memory_format=layout)
        opt.zero_grad(set_to_none=True)
        z = net(x)
        if mse:
            out = F.softmax(z, dim=1) if net.softmax else z
            loss = F.mse_loss(out, targets)
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
    # Linear layers run on the BLAS PyTorch was linked with; say which.
    print("blas %s" % (" ".join(blas) or "(none loaded)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
