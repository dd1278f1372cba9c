#!/usr/bin/env python3
"""torch_compare.py: cnnc's trainers against PyTorch, step for step.

Driven by tests/torch_compare.sh, which finds a Python with torch and numpy,
builds the trainers and passes their directory. For each case below: write
a random initial checkpoint (safetensors, written here without the
safetensors package), train the trainer a few steps from it with
--no-shuffle --threads 1, train the equivalent PyTorch model (float64) on the
same batches in the same order with torch.optim.SGD/Adam, and compare every
tensor of the saved checkpoint: the parameters and the optimizer state
(momentum_buffer, exp_avg, exp_avg_sq), then eval's loss and accuracy and
predict's outputs on held-out data.

The .net files are read by the small parser below, which knows the subset of
the language the tests/nets/torch_*.net files use, graphs included: a layer
takes the statement before it, from=LABEL, or (Add, Concat) its labels.

Usage: torch_compare.py --bin DIR --nets DIR --cnnc-data PATH --work DIR
  DIR/NAME_f64 (and NAME_f32 where a case asks) are the built trainers.
"""
import argparse
import json
import math
import os
import re
import struct
import subprocess
import sys

import numpy as np
import torch
import torch.nn.functional as F

torch.set_num_threads(1)

# ---- the cases --------------------------------------------------------------
# Every case trains 4 steps of batch 4 on 10 samples, without shuffling:
# samples 0-3, 4-7, 8-9 (a short last batch), then 0-3 of the second epoch.
# A "resume" case pauses after 2 steps (--pause-after), goes on with --resume
# for the 2 more, and compares with PyTorch's 4 uninterrupted steps. Every
# checkpoint must load into PyTorch with load_state_dict(strict=True); the
# optimizer state is read from the training state beside it.
CASES = [
    dict(net="torch_convs", prec="f64", opt="sgd", lr=0.1),
    dict(net="torch_convs", prec="f64", opt="nesterov", lr=0.05, momentum=0.9,
         decay=1e-3),
    dict(net="torch_convs", prec="f32", opt="adam", lr=0.01),
    dict(net="torch_pools", prec="f64", opt="momentum", lr=0.2, momentum=0.8,
         decay=0.01),
    dict(net="torch_pools", prec="f64", opt="adam", lr=0.02, decay=0.003),
    dict(net="torch_pools", prec="f64", opt="momentum", lr=0.2, momentum=0.7,
         resume=True),
    dict(net="torch_pools", prec="f32", opt="sgd", lr=0.3, decay=0.01),
    dict(net="torch_mse", prec="f64", opt="adam", lr=0.01, beta1=0.8,
         beta2=0.99, eps=1e-6, decay=0.005, resume=True),
    dict(net="torch_mse", prec="f64", opt="sgd", lr=0.5, decay=0.02),
    dict(net="torch_mse", prec="f32", opt="nesterov", lr=0.3, momentum=0.5),
    dict(net="torch_relu", prec="f64", opt="momentum", lr=0.1, momentum=0.9),
    dict(net="torch_relu", prec="f32", opt="nesterov", lr=0.1, momentum=0.9,
         decay=0.001),
    dict(net="torch_residual", prec="f64", opt="momentum", lr=0.1, momentum=0.9,
         decay=1e-3),
    dict(net="torch_residual", prec="f64", opt="adam", lr=0.01),
    dict(net="torch_residual", prec="f32", opt="sgd", lr=0.1),
    dict(net="torch_projection_first", prec="f64", opt="momentum", lr=0.1, momentum=0.9),
    dict(net="torch_projection_first", prec="f32", opt="adam", lr=0.01),
    dict(net="torch_concat", prec="f64", opt="nesterov", lr=0.05, momentum=0.9),
    dict(net="torch_concat", prec="f32", opt="adam", lr=0.01),
    dict(net="torch_fanout", prec="f64", opt="sgd", lr=0.2, decay=0.01),
    dict(net="torch_fanout", prec="f64", opt="adam", lr=0.01, resume=True),
    dict(net="torch_fanout", prec="f64", opt="adamw", lr=0.01, decay=0.05),
    dict(net="torch_grouped", prec="f64", opt="momentum", lr=0.1, momentum=0.9,
         decay=1e-3),
    dict(net="torch_grouped", prec="f64", opt="adamw", lr=0.01, decay=0.1, resume=True),
    dict(net="torch_grouped", prec="f32", opt="adam", lr=0.01),
    # the recipe: schedules stepped as PyTorch's schedulers, warm-up, label
    # smoothing, gradient clipping (3 steps an epoch: 4, 4 and 2 samples)
    dict(net="torch_convs", prec="f64", opt="momentum", lr=0.1, schedule="cosine"),
    dict(net="torch_residual", prec="f64", opt="nesterov", lr=0.1, schedule="step",
         gamma=0.3, step_size=1, decay=1e-3),
    dict(net="torch_pools", prec="f64", opt="adamw", lr=0.02, schedule="cosine",
         warmup=0.7, decay=0.01),
    dict(net="torch_relu", prec="f64", opt="sgd", lr=0.2, smoothing=0.1),
    dict(net="torch_fanout", prec="f64", opt="momentum", lr=0.2, clip=0.05, decay=0.01),
    dict(net="torch_grouped", prec="f32", opt="adam", lr=0.01, clip=0.5, smoothing=0.2,
         schedule="cosine", warmup=1),
    dict(net="torch_normalise", prec="f64", opt="momentum", lr=0.1),
    dict(net="torch_normalise", prec="f32", opt="adamw", lr=0.01, decay=0.01),
    # BatchNorm: the batch's statistics in training, the running ones (and
    # num_batches_tracked) in the checkpoint and at eval
    dict(net="torch_batchnorm", prec="f64", opt="momentum", lr=0.1, momentum=0.9),
    dict(net="torch_batchnorm", prec="f64", opt="adam", lr=0.01, resume=True),
    dict(net="torch_batchnorm", prec="f32", opt="nesterov", lr=0.05, momentum=0.9,
         decay=1e-3, tol=5e-4),
]
N_TRAIN, N_TEST, BATCH, STEPS = 10, 12, 4, 4
TOL = {"f64": 1e-9, "f32": 1e-4}   # max |difference| / max |PyTorch's tensor|

# ---- safetensors ------------------------------------------------------------
DTYPES = {"F64": np.float64, "F32": np.float32, "I64": np.int64}


def st_read(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {})
    out = {}
    for name, e in header.items():
        b, end = e["data_offsets"]
        dt = np.dtype(DTYPES[e["dtype"]]).newbyteorder("<")
        a = np.frombuffer(raw[8 + n + b:8 + n + end], dtype=dt)
        out[name] = a.reshape(e["shape"]).astype(DTYPES[e["dtype"]])
    return out, meta


def st_write(path, tensors, dtype):
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name, a in tensors.items():
        dt = "I64" if name.endswith(".num_batches_tracked") else dtype
        b = np.ascontiguousarray(a, dtype=np.dtype(DTYPES[dt]).newbyteorder("<"))
        b = b.tobytes()
        header[name] = {"dtype": dt, "shape": list(np.shape(a)),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode("utf-8")
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))

# ---- the .net subset ----------------------------------------------------------
POSITIONAL = {"Conv": ["kernel", "n"], "MaxPool": ["size", "stride"],
              "AvgPool": ["size", "stride"], "Dense": ["n"],
              "LeakyReLU": ["alpha"], "Input": ["shape"]}


def pair(v):
    if isinstance(v, int):
        return (v, v)
    if v in ("valid", "same"):
        return v
    p = [int(t) for t in v.split("x")]
    return (p[0], p[0]) if len(p) == 1 else tuple(p)


def parse_net(path):
    """-> [(label, kind, args, inputs)], Train's settings; inputs are the
    labels of the tensors a layer reads (Input's: "input" unless labelled)."""
    src = re.sub(r"#[^\n]*", "", open(path).read())
    stmt = re.compile(r"\s*(?:(\w+)\s*:\s*)?(\w+)\s*(?:\(([^)]*)\))?\s*(?:->\s*[0-9x]+)?")
    pos, layers, train, counts, prev = 0, [], {}, {}, None
    src = src.rstrip()
    while pos < len(src):
        m = stmt.match(src, pos)
        if not m or m.end() == pos:
            raise SystemExit("%s: cannot parse near %r" % (path, src[pos:pos + 30]))
        pos = m.end()
        label, word, argtext = m.group(1), m.group(2), m.group(3) or ""
        # [a, b, c] lists (Input's mean= and std=): no commas inside
        argtext = re.sub(r"\[([^\]]*)\]", lambda l: l.group(1).replace(",", ";").replace(" ", ""),
                         argtext)
        args, merged = {}, []
        for i, a in enumerate(t.strip() for t in argtext.split(",") if t.strip()):
            if word in ("Add", "Concat"):
                merged.append(a)
                continue
            k, v = a.split("=", 1) if "=" in a else (POSITIONAL[word][i], a)
            k, v = k.strip(), v.strip()
            if re.fullmatch(r"\d+", v):
                v = int(v)
            elif re.fullmatch(r"[0-9.eE+-]+", v) and re.search(r"\d", v):
                v = float(v)
            elif v in ("true", "false"):
                v = v == "true"
            elif ";" in v:
                v = [float(t) for t in v.split(";")]
            args[k] = v
        if word == "Train":
            train = args
            continue
        if word == "Input":
            label = label or "input"
            inputs = []
        else:
            counts[word] = counts.get(word, 0) + 1
            label = label or "%s%d" % (word.lower(), counts[word])
            inputs = merged or [args.pop("from", prev)]
        layers.append((label, word, args, inputs))
        prev = label
    return layers, train


class Net:
    """The PyTorch twin of a .net: parameters by checkpoint name."""

    def __init__(self, path):
        self.layers, self.train = parse_net(path)
        self.input_label, kind, a, _ = self.layers[0]
        assert kind == "Input"
        dims = [int(t) for t in str(a["shape"]).split("x")]
        shape = tuple(dims) + (1,) if len(dims) == 2 else tuple(dims)
        self.input_hwc = shape   # (F,) for a vector input
        # Input(mean=, std=): torchvision's Normalize, per channel
        def per_channel(v, default):
            v = a.get(v, default)
            return torch.tensor(v if isinstance(v, list) else [float(v)],
                                dtype=torch.float64).reshape(1, -1, 1, 1)
        self.mean, self.std = per_channel("mean", 0.0), per_channel("std", 1.0)
        self.plan = []     # (label, kind, settings, inputs) per layer
        self.shapes = {}   # checkpoint name -> PyTorch shape
        self.buffers = {}  # BatchNorm label -> channels (running statistics)
        self.training = True
        # each tensor's (c, h, w) for a map, (features, None, None) for a vector
        tensors = {self.input_label: (shape[2], shape[0], shape[1]) if len(shape) == 3
                   else (shape[0], None, None)}
        for label, kind, a, inputs in self.layers[1:]:
            c, h, w = tensors[inputs[0]]
            vec = c if h is None else None
            plan_len = len(self.plan)
            if kind == "Conv":
                kh, kw = pair(a["kernel"])
                sh, sw = pair(a.get("stride", 1))
                pad = pair(a.get("padding", "valid"))
                if pad == "same":
                    oh, ow = -(-h // sh), -(-w // sw)
                    th = max((oh - 1) * sh + kh - h, 0)
                    tw = max((ow - 1) * sw + kw - w, 0)
                    fpad = (tw // 2, tw - tw // 2, th // 2, th - th // 2)
                    cpad = (0, 0)
                else:
                    fpad = None
                    cpad = (0, 0) if pad == "valid" else pad
                    oh = (h + 2 * cpad[0] - kh) // sh + 1
                    ow = (w + 2 * cpad[1] - kw) // sw + 1
                n = a["n"]
                groups = int(a.get("groups", 1))
                self.shapes[label + ".weight"] = (n, c // groups, kh, kw)
                if a.get("bias", True):
                    self.shapes[label + ".bias"] = (n,)
                self.plan.append((label, kind, dict(stride=(sh, sw), fpad=fpad, cpad=cpad,
                                                    bias=a.get("bias", True), groups=groups)))
                c, h, w = n, oh, ow
            elif kind in ("MaxPool", "AvgPool"):
                kh, kw = pair(a["size"])
                sh, sw = pair(a.get("stride", a["size"]))
                pad = pair(a.get("padding", "valid"))
                pad = (0, 0) if pad == "valid" else pad
                self.plan.append((label, kind, dict(k=(kh, kw), s=(sh, sw), p=pad)))
                h = (h + 2 * pad[0] - kh) // sh + 1
                w = (w + 2 * pad[1] - kw) // sw + 1
            elif kind in ("GlobalAvgPool", "Flatten"):
                vec = c if kind == "GlobalAvgPool" else c * h * w
                self.plan.append((label, kind, {}))
                c, h, w = vec, None, None
            elif kind == "Dense":
                self.shapes[label + ".weight"] = (a["n"], vec)
                if a.get("bias", True):
                    self.shapes[label + ".bias"] = (a["n"],)
                self.plan.append((label, kind, dict(bias=a.get("bias", True))))
                c, h, w = a["n"], None, None
            elif kind == "Add":
                self.plan.append((label, kind, {}))
            elif kind == "Concat":
                c = sum(tensors[t][0] for t in inputs)
                self.plan.append((label, kind, {}))
            elif kind in ("ReLU", "Sigmoid", "Tanh", "SiLU", "GELU", "Softmax"):
                self.plan.append((label, kind, {}))
            elif kind == "LeakyReLU":
                self.plan.append((label, kind, dict(alpha=float(a.get("alpha", 0.01)))))
            elif kind == "BatchNorm":
                affine = a.get("affine", True)
                if affine:
                    self.shapes[label + ".weight"] = (c,)
                    self.shapes[label + ".bias"] = (c,)
                self.buffers[label] = c
                self.plan.append((label, kind, dict(momentum=float(a.get("momentum", 0.1)),
                                                    eps=float(a.get("eps", 1e-5)),
                                                    affine=affine)))
            else:
                raise SystemExit("torch_compare.py does not know layer %s" % kind)
            label, kind, settings = self.plan[plan_len]
            self.plan[plan_len] = (label, kind, settings, inputs)
            tensors[label] = (c, h, w)
        if h is not None:
            raise SystemExit("torch_compare.py: the output must be a vector")
        self.outputs = c
        self.loss = self.train.get("loss", "cross_entropy")

    def fresh_buffers(self):
        """BatchNorm's running statistics before training, as PyTorch's."""
        out = {}
        for label, c in self.buffers.items():
            out[label + ".running_mean"] = np.zeros(c)
            out[label + ".running_var"] = np.ones(c)
            out[label + ".num_batches_tracked"] = np.array(0, dtype=np.int64)
        return out

    def init(self, rng):
        """Random parameters: fan-in-scaled weights, small non-zero biases."""
        out = {}
        for name, shape in self.shapes.items():
            if name.endswith(".weight"):
                fan_in = int(np.prod(shape[1:]))
                out[name] = rng.uniform(-1.7, 1.7, shape) / math.sqrt(fan_in)
            else:
                out[name] = rng.uniform(-0.2, 0.2, shape)
        return out

    def forward(self, P, x):
        """x: N x C x H x W (float64). Returns the network's output, pre-softmax
        scores when the last layer is Softmax (flag returned as well)."""
        if x.dim() == 4:
            x = (x - self.mean) / self.std
        else:
            x = (x - self.mean.reshape(1, -1)) / self.std.reshape(1, -1)
        values = {self.input_label: x}
        for label, kind, s, inputs in self.plan:
            x = values[inputs[0]]
            if kind == "Conv":
                if s["fpad"]:
                    x = F.pad(x, s["fpad"])
                x = F.conv2d(x, P[label + ".weight"], P.get(label + ".bias"),
                             stride=s["stride"], padding=s["cpad"], groups=s["groups"])
            elif kind == "MaxPool":
                x = F.max_pool2d(x, s["k"], s["s"], s["p"])
            elif kind == "AvgPool":
                x = F.avg_pool2d(x, s["k"], s["s"], s["p"], count_include_pad=False)
            elif kind == "GlobalAvgPool":
                x = x.mean(dim=(2, 3))
            elif kind == "Flatten":
                x = x.reshape(x.shape[0], -1)
            elif kind == "Dense":
                x = F.linear(x, P[label + ".weight"], P.get(label + ".bias"))
            elif kind == "ReLU":
                x = F.relu(x)
            elif kind == "LeakyReLU":
                x = F.leaky_relu(x, s["alpha"])
            elif kind == "Sigmoid":
                x = torch.sigmoid(x)
            elif kind == "BatchNorm":
                B = self.state
                w = P.get(label + ".weight") if s["affine"] else None
                b = P.get(label + ".bias") if s["affine"] else None
                x = F.batch_norm(x, B[label + ".running_mean"], B[label + ".running_var"], w, b,
                                 training=self.training, momentum=s["momentum"], eps=s["eps"])
                if self.training:
                    B[label + ".num_batches_tracked"] += 1
            elif kind == "SiLU":
                x = F.silu(x)
            elif kind == "GELU":
                x = F.gelu(x)
            elif kind == "Tanh":
                x = torch.tanh(x)
            elif kind == "Add":
                x = sum(values[t] for t in inputs)
            elif kind == "Concat":
                x = torch.cat([values[t] for t in inputs], dim=1)
            elif kind == "Softmax":
                return x, True
            values[label] = x
        return x, False

    def loss_fn(self, P, x, y, smoothing=0.0):
        z, soft = self.forward(P, x)
        if self.loss == "cross_entropy":
            return F.cross_entropy(z, y, label_smoothing=smoothing)
        out = F.softmax(z, dim=1) if soft else z
        return F.mse_loss(out, F.one_hot(y, self.outputs).to(out.dtype))

    def outputs_of(self, P, x):
        z, soft = self.forward(P, x)
        return F.softmax(z, dim=1) if soft else z

# ---- running both -----------------------------------------------------------


def to_nchw(images):
    if images.dtype != np.uint8:   # vectors: float32 points, as they are
        return torch.from_numpy(images.astype(np.float64))
    a = images.astype(np.float64) / 255.0
    if a.ndim == 3:
        a = a[..., None]
    return torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2)))


def hyper(case):
    h = dict(lr=case["lr"], momentum=case.get("momentum", 0.9),
             beta1=case.get("beta1", 0.9), beta2=case.get("beta2", 0.999),
             eps=case.get("eps", 1e-8), decay=case.get("decay", 0.0))
    return h


def torch_train(net, init, x, y, batches, case):
    h = hyper(case)
    P = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True)
         for k, v in init.items()}
    params = list(P.values())
    net.state = {k: torch.tensor(v, dtype=torch.int64 if v.dtype == np.int64 else torch.float64)
                 for k, v in net.fresh_buffers().items()}
    net.training = True
    if case["opt"] == "adamw":
        opt = torch.optim.AdamW(params, lr=h["lr"], betas=(h["beta1"], h["beta2"]),
                                eps=h["eps"], weight_decay=h["decay"])
    elif case["opt"] == "adam":
        opt = torch.optim.Adam(params, lr=h["lr"], betas=(h["beta1"], h["beta2"]),
                               eps=h["eps"], weight_decay=h["decay"])
    else:
        opt = torch.optim.SGD(params, lr=h["lr"],
                              momentum=0 if case["opt"] == "sgd" else h["momentum"],
                              nesterov=case["opt"] == "nesterov",
                              weight_decay=h["decay"])
    per_epoch = -(-N_TRAIN // BATCH)
    sched, per_batch = None, True
    if case.get("warmup"):
        # no PyTorch scheduler is this one: the documented formula
        w = case["warmup"] * per_epoch
        def factor(t):
            if t < w:
                return (t + 1) / w
            if case.get("schedule") == "cosine":
                return (1 + math.cos(math.pi * (t - math.ceil(w)) /
                                     (len(batches) - math.ceil(w)))) / 2
            return 1.0
        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    elif case.get("schedule") == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=len(batches))
    elif case.get("schedule") == "step":
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=case["step_size"],
                                                gamma=case["gamma"])
        per_batch = False
    losses = []
    for i, idx in enumerate(batches):
        opt.zero_grad()
        loss = net.loss_fn(P, x[idx], y[idx], case.get("smoothing", 0.0))
        loss.backward()
        if case.get("clip"):
            torch.nn.utils.clip_grad_norm_(params, case["clip"])
        opt.step()
        if sched and (per_batch or (i + 1) % per_epoch == 0):
            sched.step()
        losses.append(loss.item())
    out = {k: v.detach().numpy() for k, v in P.items()}
    out.update({k: v.numpy() for k, v in net.state.items()})
    slots = {"momentum": ["momentum_buffer"], "nesterov": ["momentum_buffer"],
             "adam": ["exp_avg", "exp_avg_sq"], "adamw": ["exp_avg", "exp_avg_sq"],
             "sgd": []}[case["opt"]]
    for k, p in P.items():
        for s in slots:
            out["__opt__.%s.%s" % (k, s)] = opt.state[p][s].numpy()
    return out, P


def run(cmd, log):
    with open(log, "w") as f:
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=f,
                           universal_newlines=True)
    if r.returncode != 0:
        with open(log) as f:
            raise RuntimeError("%s exited %d: %s" % (" ".join(cmd[:2]), r.returncode,
                                                     f.read().strip()[-600:]))
    return r.stdout


def train_flags(case, steps):
    h = hyper(case)
    f = ["--no-shuffle", "--batch", str(BATCH), "--threads", "1", "--steps", str(steps),
         "--optimizer", case["opt"], "--lr", repr(h["lr"]), "--decay", repr(h["decay"])]
    if case["opt"] in ("momentum", "nesterov"):
        f += ["--momentum", repr(h["momentum"])]
    for key, flag in (("schedule", "--schedule"), ("gamma", "--gamma"),
                      ("step_size", "--step-size"), ("warmup", "--warmup"),
                      ("smoothing", "--label-smoothing"), ("clip", "--clip")):
        if key in case:
            f += [flag, str(case[key])]
    if case["opt"] in ("adam", "adamw"):
        f += ["--beta1", repr(h["beta1"]), "--beta2", repr(h["beta2"]),
              "--eps", repr(h["eps"])]
    return f


def strict_load(ours, ref):
    """What PyTorch's load_state_dict(strict=True) says of the trainer's
    checkpoint on a module that holds the reference's parameters and buffers
    under their names ("C1.weight": module C1, parameter weight); '' when it
    takes it."""
    root = torch.nn.Module()
    for name, a in ref.items():
        if name.startswith("__opt__."):
            continue
        *path, leaf = name.split(".")
        mod = root
        for p in path:
            if not hasattr(mod, p):
                mod.add_module(p, torch.nn.Module())
            mod = getattr(mod, p)
        t = torch.zeros(np.shape(a), dtype=torch.int64 if leaf == "num_batches_tracked"
                        else torch.float64)
        if leaf in ("running_mean", "running_var", "num_batches_tracked"):
            mod.register_buffer(leaf, t)
        else:
            mod.register_parameter(leaf, torch.nn.Parameter(t))
    try:
        root.load_state_dict({k: torch.from_numpy(np.array(v)).to(
            torch.int64 if k.endswith(".num_batches_tracked") else torch.float64)
            for k, v in ours.items()}, strict=True)
    except RuntimeError as e:
        return " ".join(str(e).split())[:300]
    return ""


def compare(ours, ref, tol):
    """-> (all within tol, the worst relative difference, one row per tensor);
    a tensor missing from either side is a failure."""
    rows, ok, worst = [], True, 0.0
    for name in sorted(set(ours) | set(ref)):
        if name not in ours or name not in ref:
            rows.append("    %-34s %s" % (name, "missing from the trainer's checkpoint"
                                          if name not in ours else "not in PyTorch's"))
            ok = False
            continue
        a, b = ours[name].astype(np.float64), ref[name]
        if a.shape != b.shape:
            rows.append("    %-34s shape %s, PyTorch %s" % (name, a.shape, b.shape))
            ok = False
            continue
        d = float(np.max(np.abs(a - b)))
        # relative to the tensor's largest value, but at least 1e-4: a bias
        # just before a BatchNorm gets a gradient that is zero but for
        # rounding, and its few 1e-16 say nothing relative to themselves
        scale = max(float(np.max(np.abs(b))) if b.size else 0.0, 1e-4)
        rel = d / scale
        worst = max(worst, rel)
        good = rel <= tol
        ok &= good
        rows.append("    %-34s max|diff| %.3e  relative %.3e%s" %
                    (name, d, rel, "" if good else "  <-- above %.0e" % tol))
    return ok, worst, rows


def one_case(args, case, data_cache, nets):
    name = case["net"]
    tr = os.path.join(args.bin, "%s_%s" % (name, case["prec"]))
    if name not in nets:
        nets[name] = Net(os.path.join(args.nets, name + ".net"))
    net = nets[name]
    if name not in data_cache:
        d = os.path.join(args.work, "data_" + name)
        subprocess.run([args.cnnc_data, "blobs", "--out", d, "--shape",
                        "x".join(str(v) for v in net.input_hwc), "--classes", str(net.outputs),
                        "--train", str(N_TRAIN), "--test", str(N_TEST), "--seed", "7"],
                       check=True, stdout=subprocess.DEVNULL)
        data_cache[name] = d
    d = data_cache[name]
    recipe = "".join(" %s=%s" % (k, case[k]) for k in
                     ("schedule", "warmup", "smoothing", "clip") if k in case)
    tag = "%s %s %s%s%s%s" % (name, case["prec"], case["opt"],
                              " decay=%g" % case["decay"] if case.get("decay") else "", recipe,
                            " (resumed after 2 steps)" if case.get("resume") else "")
    base = os.path.join(args.work, tag.split(" (")[0].replace(" ", "_").replace("=", ""))
    if case.get("resume"):
        base += "_resume"
    rng = np.random.RandomState(1000 + CASES.index(case))
    init = net.init(rng)
    dtype = "F64" if case["prec"] == "f64" else "F32"
    if dtype == "F32":
        init = {k: v.astype(np.float32).astype(np.float64) for k, v in init.items()}
    st_write(base + ".init.st", dict(init, **net.fresh_buffers()), dtype)

    xtr = to_nchw(np.load(os.path.join(d, "train-images.npy")))
    ytr = torch.from_numpy(np.load(os.path.join(d, "train-labels.npy")).astype(np.int64))
    xte = to_nchw(np.load(os.path.join(d, "test-images.npy")))
    yte = torch.from_numpy(np.load(os.path.join(d, "test-labels.npy")).astype(np.int64))
    data = ["--data", os.path.join(d, "train-images.npy"),
            "--labels", os.path.join(d, "train-labels.npy")]

    def batch(i):   # batch i of an epoch, without shuffling
        s = (i * BATCH) % (-(-N_TRAIN // BATCH) * BATCH)
        return list(range(s, min(s + BATCH, N_TRAIN)))

    if case.get("resume"):
        run([tr, "train"] + data + train_flags(case, STEPS) +
            ["--init", base + ".init.st", "--save", base + ".half.st", "--pause-after", "2"],
            base + ".train1.log")
        run([tr, "train"] + data + train_flags(case, STEPS) +
            ["--resume", base + ".half.st", "--save", base + ".st"], base + ".train2.log")
    else:
        run([tr, "train"] + data + train_flags(case, STEPS) +
            ["--init", base + ".init.st", "--save", base + ".st"], base + ".train.log")
    batches = [batch(i) for i in range(STEPS)]
    ours, meta = st_read(base + ".st")
    state, smeta = st_read(base + ".st.state")
    ref, P = torch_train(net, init, xtr, ytr, batches, case)
    # f32 BatchNorm divides by the spread of 4 samples: rounding grows there
    tol = case.get("tol", TOL[case["prec"]])
    notes = []
    strict = strict_load(ours, ref)
    if strict:
        notes.append("load_state_dict(strict=True) refuses the checkpoint: " + strict)
    ok, worst, rows = compare(dict(ours, **state), ref, tol)
    ok &= not strict
    for m_, what in ((meta, "checkpoint"), (smeta, "training state")):
        if m_.get("cnnc.step") != str(len(batches)):
            ok = False
            notes.append("the %s's cnnc.step is %r, expected %d" % (what, m_.get("cnnc.step"),
                                                                  len(batches)))
    if not all(v.dtype == DTYPES[dtype] for k, v in ours.items()
               if not k.endswith(".num_batches_tracked")):
        ok = False
        notes.append("the checkpoint's dtypes are not all %s" % dtype)

    # eval and predict on the held-out data, with the trained weights
    te = ["--data", os.path.join(d, "test-images.npy")]
    net.training = False   # BatchNorm on its running statistics
    with torch.no_grad():
        tloss = net.loss_fn(P, xte, yte).item()
        tout = net.outputs_of(P, xte).numpy()
    ev = run([tr, "eval"] + te + ["--labels", os.path.join(d, "test-labels.npy"),
                                  "--weights", base + ".st"], base + ".eval.log")
    m = re.search(r"loss ([0-9.eE+-]+)", ev)
    eloss = float(m.group(1)) if m else float("nan")
    etol = 2e-6 + (tol * 10 * abs(tloss) if case["prec"] == "f32" else 0)
    eok = abs(eloss - tloss) <= etol
    if net.loss == "cross_entropy":
        m = re.search(r"\((\d+)/(\d+)\)", ev)
        tcorrect = int((tout.argmax(1) == yte.numpy()).sum())
        if not m or int(m.group(1)) != tcorrect:
            eok = False
            notes.append("eval accuracy %s, PyTorch %d/%d correct" %
                         (m.group(0) if m else "missing", tcorrect, N_TEST))
    if not eok:
        notes.append("eval loss %r, PyTorch %.9f" % (eloss, tloss))
    ok &= eok
    pr = run([tr, "predict"] + te + ["--weights", base + ".st"], base + ".predict.log")
    rows.append("    eval loss %.6f, PyTorch %.9f" % (eloss, tloss))
    try:
        if net.loss == "cross_entropy":
            got = np.array([int(t) for t in pr.split()])
            pok = got.shape == (N_TEST,) and bool((got == tout.argmax(1)).all())
            rows.append("    predict: %s classes agree" % ("all" if pok else "NOT all"))
        else:
            got = np.array([[float(t) for t in line.split()] for line in pr.splitlines()])
            pd = float(np.max(np.abs(got - tout))) if got.shape == tout.shape else float("inf")
            pok = pd <= tol * max(1.0, float(np.max(np.abs(tout))))
            rows.append("    predict outputs max|diff| %.3e" % pd)
    except ValueError:
        pok = False
    if not pok:
        notes.append("predict differs from PyTorch")
    ok &= pok
    return ok, tag, worst, rows, notes


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--nets", required=True)
    ap.add_argument("--cnnc-data", required=True)
    ap.add_argument("--work", required=True)
    args = ap.parse_args()
    passed = failed = 0
    data_cache, nets = {}, {}
    for case in CASES:
        try:
            ok, tag, worst, rows, notes = one_case(args, case, data_cache, nets)
        except (RuntimeError, OSError, subprocess.CalledProcessError) as e:
            print("FAIL: %s %s %s: %s" % (case["net"], case["prec"], case["opt"], e))
            failed += 1
            continue
        print("%s: %s: %d steps, worst tensor relative difference %.2e (tolerance %.0e)%s"
              % ("PASS" if ok else "FAIL", tag, STEPS, worst, TOL[case["prec"]],
                 "; " + "; ".join(notes) if notes else ""))
        print("\n".join(rows))
        sys.stdout.flush()
        passed += ok
        failed += not ok
    print("%d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
