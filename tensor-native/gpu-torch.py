"""The deep-mnist CNN on PyTorch's GPU path, timed as GpuCheck times convspark's GPU backend.

Usage: python3 gpu-torch.py [--ours FILE] [--profile]  (FILE: GpuCheck's figures, to print ratios;
--profile: PyTorch's own kernels in a batch-50 training step, by time, instead of the benchmark)
Random inputs; Adam 1e-4, dropout 0.5; training images/s at batch 50 and 512 (as one replica
trains, and with the gradient to the host and back every step, as data-parallel training does),
inference images/s in batches of 1000.
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


def bench(batch, steps):
    dev = torch.device("cuda")
    m = model().to(dev)
    opt = torch.optim.Adam(m.parameters(), lr=1e-4)
    loss_fn = nn.CrossEntropyLoss()
    x = torch.randn(batch, 1, 28, 28)
    y = torch.randint(0, 10, (batch,))
    train, host = [], []
    for rep in range(4):
        for copy in (False, True):
            torch.cuda.synchronize()
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
            torch.cuda.synchronize()
            if rep > 0:
                (host if copy else train).append(steps * batch / (time.perf_counter() - t0))
    m.eval()
    images = torch.randn(10000, 1, 28, 28)
    infer = []
    with torch.no_grad():
        for rep in range(4):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            for s in range(0, 10000, 1000):
                m(images[s:s + 1000].to(dev)).cpu()
            torch.cuda.synchronize()
            if rep > 0:
                infer.append(10000 / (time.perf_counter() - t0))
    return median(train), median(host), median(infer)


def profile(batch=50, steps=50):
    """Each CUDA kernel's time in a training step at this batch (torch.profiler), largest first."""
    from torch.profiler import ProfilerActivity, profile as torch_profile
    dev = torch.device("cuda")
    m = model().to(dev)
    opt = torch.optim.Adam(m.parameters(), lr=1e-4)
    loss_fn = nn.CrossEntropyLoss()
    x = torch.randn(batch, 1, 28, 28, device=dev)
    y = torch.randint(0, 10, (batch,), device=dev)

    def step():
        opt.zero_grad()
        loss = loss_fn(m(x), y)
        loss.backward()
        opt.step()
        loss.item()

    for _ in range(10):
        step()
    torch.cuda.synchronize()
    with torch_profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(steps):
            step()
        torch.cuda.synchronize()
    rows = []
    for e in prof.key_averages():
        us = getattr(e, "self_device_time_total", None)
        if us is None:
            us = getattr(e, "self_cuda_time_total", 0)
        if us > 0:
            rows.append((us / steps, e.count / steps, e.key))
    rows.sort(reverse=True)
    total = sum(r[0] for r in rows)
    print(f"\n| PyTorch kernel, batch {batch} step | launches a step | microseconds a step | share |")
    print("| --- | --- | --- | --- |")
    for us, n, key in rows[:25]:
        print(f"| {key[:90]} | {n:.0f} | {us:.1f} | {100 * us / total:.0f}% |")
    print(f"| all kernels | {sum(r[1] for r in rows):.0f} | {total:.1f} | |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ours", default=None)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    if args.profile:
        profile()
        return
    ours = {}
    if args.ours:
        for line in open(args.ours):
            k, v = line.split()
            ours[k] = float(v)
    print(f"\n| deep-mnist on {torch.cuda.get_device_name(0)}, PyTorch {torch.__version__} | training images/s "
          "| training, gradients through the host | inference images/s | convspark / PyTorch: training "
          "| through the host | inference |")
    print("| --- | --- | --- | --- | --- | --- | --- |")

    def ratio(key, theirs):
        return f"{ours[key] / theirs:.2f}x" if key in ours else "-"

    for batch, steps in ((50, 200), (512, 40)):
        t, h, i = bench(batch, steps)
        print(f"| batch {batch} | {t:.0f} | {h:.0f} | {i:.0f} | {ratio(f'train{batch}', t)} "
              f"| {ratio(f'host{batch}', h)} | {ratio(f'infer{batch}', i)} |")


if __name__ == "__main__":
    main()
