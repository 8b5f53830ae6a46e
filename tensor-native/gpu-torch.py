"""The deep-mnist CNN on PyTorch's GPU path, timed as GpuCheck times convspark's GPU backend.

Usage: python3 gpu-torch.py [--ours FILE]  (FILE: GpuCheck's figures, to print ratios)
       python3 gpu-torch.py --cpu --ours FILE  (FILE: CpuCheck's figures and thread counts)
       python3 gpu-torch.py --recipe MNIST-DIR [--recipes short,tutorial]  (RecipeCheck's recipes)
Random inputs; Adam 1e-4, dropout 0.5; training images/s at batch 50 and 512 (as one replica
trains, and with the gradient to the host and back every step, as data-parallel training does),
inference images/s in batches of 1000; in float32 (TF32 forbidden), then with TF32 allowed to
cuDNN and to the matrix products, each against convspark's figures in the same precision, and each
as PyTorch runs by default and with torch.backends.cudnn.benchmark (its fastest convolutions). With --cpu, PyTorch's CPU path on each of the thread
counts CpuCheck measured (torch.set_num_threads), training as one replica trains.
"""
import argparse
import time

import torch
import torch.nn as nn


def model():
    return nn.Sequential(
        nn.Conv2d(1, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(7 * 7 * 64, 1024), nn.ReLU(), nn.Dropout(0.5), nn.Linear(1024, 10))


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2]


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def bench(batch, steps, dev=torch.device("cuda"), with_inference=True):
    m = model().to(dev)
    opt = torch.optim.Adam(m.parameters(), lr=1e-4)
    loss_fn = nn.CrossEntropyLoss()
    x = torch.randn(batch, 1, 28, 28)
    y = torch.randint(0, 10, (batch,))
    train, host = [], []
    for rep in range(4):
        for copy in (False, True) if dev.type == "cuda" else (False,):
            sync(dev)
            t0 = time.perf_counter()
            for _ in range(steps):
                xb, yb = x.to(dev), y.to(dev)
                opt.zero_grad()
                loss = loss_fn(m(xb), yb)
                loss.backward()
                if copy:
                    for p in m.parameters():
                        p.grad = p.grad.cpu().to(dev)
                opt.step()
                # convspark's step returns the loss: the host reads it every step.
                loss.item()
            sync(dev)
            if rep > 0:
                (host if copy else train).append(steps * batch / (time.perf_counter() - t0))
    m.eval()
    images = torch.randn(10000, 1, 28, 28)
    infer = []
    with torch.no_grad():
        for rep in range(4 if with_inference else 0):
            sync(dev)
            t0 = time.perf_counter()
            for s in range(0, 10000, 1000):
                m(images[s:s + 1000].to(dev)).cpu()
            sync(dev)
            if rep > 0:
                infer.append(10000 / (time.perf_counter() - t0))
    return median(train), median(host) if host else 0.0, median(infer) if infer else 0.0


def cpu(ours, steps):
    """PyTorch on the CPU, thread count by thread count, beside CpuCheck's figures."""
    caps = [l.strip() for l in torch.__config__.show().splitlines() if "capability" in l]
    print(f"\n| deep-mnist on the CPU, PyTorch {torch.__version__} {caps} | training images/s, batch 50 "
          "| training, batch 512 | inference images/s | convspark / PyTorch: training, batch 50 | batch 512 "
          "| inference |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for n in (int(t) for t in ours["threads"].split(",")):
        torch.set_num_threads(n)
        t50, _, infer = bench(50, steps, torch.device("cpu"))
        t512, _, _ = bench(512, max(2, steps * 50 // 512), torch.device("cpu"), with_inference=False)

        def ratio(key, theirs):
            return f"{float(ours[key]) / theirs:.2f}x" if key in ours else "-"

        print(f"| {n} thread{'' if n == 1 else 's'} | {t50:.0f} | {t512:.0f} | {infer:.0f} "
              f"| {ratio(f'cpu_train50_{n}', t50)} | {ratio(f'cpu_train512_{n}', t512)} "
              f"| {ratio(f'cpu_infer_{n}', infer)} |", flush=True)


def idx(path):
    """An unsigned-byte IDX file (gzip or raw) as a numpy array of its shape."""
    import gzip
    import numpy as np
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if data[:2] != b"\0\0" or data[2] != 8:
        raise SystemExit(f"{path}: not unsigned-byte IDX (magic {data[:4].hex()})")
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(data[3])]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * len(dims)).reshape(dims)


def mnist(folder, prefix, dev):
    import os
    def find(name):
        for n in (name, name + ".gz"):
            if os.path.exists(os.path.join(folder, n)):
                return os.path.join(folder, n)
        raise SystemExit(f"{folder}: no {name} or {name}.gz")
    x = torch.from_numpy(idx(find(f"{prefix}-images-idx3-ubyte")).copy()).float().div_(255).unsqueeze(1).to(dev)
    y = torch.from_numpy(idx(find(f"{prefix}-labels-idx1-ubyte")).copy()).long().to(dev)
    return x, y


# RecipeCheck's recipes: (batch, steps, Adam's rate, He's weights, warm-up steps, cosine decay).
RECIPES = {"tutorial": (50, 20000, 1e-4, False, 0, False), "short": (400, 600, 3e-3, True, 80, True)}


def recipe(folder, name, seed=1):
    """Trains deep-mnist on the GPU with recipe `name` as RecipeCheck does; (test accuracy, seconds)."""
    import math
    batch, steps, lr, he, warmup, cosine = RECIPES[name]
    dev = torch.device("cuda")
    torch.manual_seed(seed)
    xs, ys = mnist(folder, "train", dev)
    xt, yt = mnist(folder, "t10k", dev)
    m = model().to(dev)
    with torch.no_grad():
        for layer in m:
            if isinstance(layer, (nn.Conv2d, nn.Linear)):
                # Truncated at two standard deviations, as the engine's (and TensorFlow's) initialisers.
                std = math.sqrt(2.0 / layer.weight[0].numel()) if he else 0.1
                nn.init.trunc_normal_(layer.weight, std=std, a=-2 * std, b=2 * std)
                nn.init.constant_(layer.bias, 0.0 if he else 0.1)
    opt = torch.optim.Adam(m.parameters(), lr=lr)

    def factor(t):  # t: the update about to be made, from 1, as the engine's schedule counts
        f = 0.5 * (1 + math.cos(math.pi * min(t, steps) / steps)) if cosine else 1.0
        return f * t / warmup if t <= warmup else f

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: factor(i + 1))
    loss_fn = nn.CrossEntropyLoss()
    n = xs.shape[0]
    perm, at = torch.randperm(n, device=dev), 0
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    m.train()
    for _ in range(steps):
        if at + batch > n:
            perm, at = torch.randperm(n, device=dev), 0
        idx_b = perm[at:at + batch]
        at += batch
        opt.zero_grad(set_to_none=True)
        loss_fn(m(xs[idx_b]), ys[idx_b]).backward()
        opt.step()
        sched.step()
    torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    m.eval()
    with torch.no_grad():
        right = sum((m(xt[s:s + 1000]).argmax(1) == yt[s:s + 1000]).sum().item() for s in range(0, xt.shape[0], 1000))
    return right / xt.shape[0], seconds


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ours", default=None)
    ap.add_argument("--cpu", action="store_true")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--recipe", default=None, help="MNIST folder: train RecipeCheck's recipes to the end instead")
    ap.add_argument("--recipes", default="short,tutorial")
    args = ap.parse_args()
    if args.recipe:
        for name in args.recipes.split(","):
            batch, steps = RECIPES[name][:2]
            for tf32 in (False, True):
                torch.backends.cudnn.allow_tf32 = tf32
                torch.backends.cuda.matmul.allow_tf32 = tf32
                acc, sec = recipe(args.recipe, name)
                print(f"| {name}, seed 1 | PyTorch {torch.__version__} on {torch.cuda.get_device_name(0)} "
                      f"| {'tf32' if tf32 else 'fp32'} | {batch} x {steps} | {100 * acc:.2f}% | {sec:.1f} "
                      f"| {batch * steps / sec:.0f} |", flush=True)
        return
    ours = {}
    if args.ours:
        for line in open(args.ours):
            k, v = line.split()
            ours[k] = v if k == "threads" else float(v)
    if args.cpu:
        if "threads" not in ours:
            raise SystemExit("--cpu needs --ours with CpuCheck's figures (its thread counts)")
        cpu(ours, args.steps)
        return
    print(f"\n| deep-mnist on {torch.cuda.get_device_name(0)}, PyTorch {torch.__version__} | training images/s "
          "| training, gradients through the host | inference images/s | convspark / PyTorch: training "
          "| through the host | inference |")
    print("| --- | --- | --- | --- | --- | --- | --- |")

    def ratio(key, theirs):
        return f"{ours[key] / theirs:.2f}x" if key in ours and theirs > 0 else "-"

    # float32 throughout (TF32 forbidden to cuDNN's convolutions and to the matrix products),
    # against convspark's float32 rows; then TF32 allowed to both (PyTorch's default lets cuDNN's
    # convolutions use it), against convspark's TF32 rows (precision tf32), like with like. Each
    # precision as PyTorch runs by default (cuDNN picks its convolutions' algorithms by heuristics)
    # and with cudnn.benchmark (it times them on the first batch of each shape and keeps the
    # fastest), PyTorch at its best.
    for tf32 in (False, True):
        torch.backends.cudnn.allow_tf32 = tf32
        torch.backends.cuda.matmul.allow_tf32 = tf32
        for tuned in (False, True):
            torch.backends.cudnn.benchmark = tuned
            what, key = ("TF32 allowed", "_tf32") if tf32 else ("float32", "")
            what += ", cudnn.benchmark" if tuned else ""
            for batch, steps in ((50, 200), (512, 40)):
                t, h, i = bench(batch, steps)
                print(f"| batch {batch}, {what} | {t:.0f} | {h:.0f} | {i:.0f} | {ratio(f'train{batch}{key}', t)} "
                      f"| {ratio(f'host{batch}{key}', h)} | {ratio(f'infer{batch}{key}', i)} |", flush=True)
    torch.backends.cudnn.benchmark = False


if __name__ == "__main__":
    main()
