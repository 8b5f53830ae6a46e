"""The deep-mnist CNN on PyTorch's GPU path, timed as GpuCheck times convspark's GPU backend.

Usage: python3 gpu-torch.py [--ours FILE]  (FILE: GpuCheck's figures, to print ratios)
Random inputs; Adam 1e-4, dropout 0.5; training images/s at batch 50 and 512 (gradient to the host
and back every step, as data-parallel training does), inference images/s in batches of 1000.
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
    train = []
    for rep in range(4):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(steps):
            xb, yb = x.to(dev), y.to(dev)
            opt.zero_grad()
            loss_fn(m(xb), yb).backward()
            for p in m.parameters():
                p.grad = p.grad.cpu().to(dev)
            opt.step()
        torch.cuda.synchronize()
        if rep > 0:
            train.append(steps * batch / (time.perf_counter() - t0))
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
    return median(train), median(infer)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ours", default=None)
    args = ap.parse_args()
    ours = {}
    if args.ours:
        for line in open(args.ours):
            k, v = line.split()
            ours[k] = float(v)
    print(f"\n| deep-mnist on {torch.cuda.get_device_name(0)} | PyTorch {torch.__version__} training images/s "
          "| PyTorch inference images/s | convspark / PyTorch, training | convspark / PyTorch, inference |")
    print("| --- | --- | --- | --- | --- |")
    for batch, steps in ((50, 200), (512, 40)):
        t, i = bench(batch, steps)
        rt = f"{ours[f'train{batch}'] / t:.2f}x" if f"train{batch}" in ours else "-"
        ri = f"{ours[f'infer{batch}'] / i:.2f}x" if f"infer{batch}" in ours else "-"
        print(f"| batch {batch} | {t:.0f} | {i:.0f} | {rt} | {ri} |")


if __name__ == "__main__":
    main()
