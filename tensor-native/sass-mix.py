#!/usr/bin/env python3
"""The wide kernels' k loops as a GPU would run them, read from their machine code: no GPU needed.

Usage: python3 tensor-native/sass-mix.py [--arch sm_90] [--ptx FILE]... [KERNEL]...

Compiles each PTX file (by default the two committed ones) with ptxas for --arch, disassembles the
result with nvdisasm into basic blocks and prints, for each wide kernel (or each KERNEL named), a
table row: its registers and spills (ptxas), then its k loop, the strongly connected blocks with
the most FFMA (HMMA for the TF32 forms), by its instructions in all, the instructions of its fast
path and the integer divisions in it. The fast path is the fewest instructions from the loop's
entry round to it again through every multiply-add block, taking the branches that load 16 bytes
at a time wherever there is a choice (inner loops taken zero times): one slice of k where every
quad is inside its operand and aligned, as in the large products. Each warp issues one
instruction a cycle per scheduler, so where the multiply-adds are the work, the FFMAs' share of
the fast path bounds the share of the FP32 units' peak a kernel can reach.

An integer division by a value known only when the kernel runs compiles to about 20
instructions around a MUFU.RCP (a reciprocal), so that count is the number of such divisions.

Needs ptxas and nvdisasm from the CUDA toolkit (NVDISASM, or on PATH, or in the folder of
ptxas). An nvdisasm older than the ptxas (CUDA 11.8's, say, as Debian's nvidia-cuda-toolkit has
it) refuses the newer ELF header: the header is then rewritten in the older layout (the same
architecture) for it alone, which changes no instruction.
"""
import argparse
import collections
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
PTX_DIR = os.path.join(HERE, "src/main/resources/dev/convspark/tensor/cuda")
WIDE = ["sgemm_wide", "conv_forward", "conv_weight_grad", "conv_input_grad"]


def tool(name, env):
    path = os.environ.get(env) or shutil.which(name)
    if not path and shutil.which("ptxas"):
        beside = os.path.join(os.path.dirname(os.path.realpath(shutil.which("ptxas"))), name)
        path = beside if os.path.exists(beside) else None
    if not path:
        sys.exit(f"sass-mix: no {name} (set {env}, or put the CUDA toolkit's bin on PATH)")
    return path


def old_header(cubin, out):
    """The cubin with its ELF header in CUDA 11's layout: OS/ABI 0x33, ABI version 7, the
    architecture (sm_XY as 0xXY in decimal digits) in e_flags' low byte and third byte."""
    b = bytearray(open(cubin, "rb").read())
    sm = (struct.unpack_from("<I", b, 0x30)[0] >> 8) & 0xFF
    b[7], b[8] = 0x33, 7
    struct.pack_into("<I", b, 0x30, sm << 16 | 0x0500 | sm)
    open(out, "wb").write(b)


def disassemble(ptx, arch, work):
    cubin = os.path.join(work, "k.cubin")
    r = subprocess.run([tool("ptxas", "PTXAS"), "-arch=" + arch, "-O3", "-v", "-o", cubin, ptx],
                       capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"sass-mix: ptxas failed on {ptx}:\n{r.stderr}")
    nvdisasm = tool("nvdisasm", "NVDISASM")
    d = subprocess.run([nvdisasm, "-c", "-bbcfg", cubin], capture_output=True, text=True)
    if d.returncode != 0:
        old = os.path.join(work, "k-old-header.cubin")
        old_header(cubin, old)
        d = subprocess.run([nvdisasm, "-c", "-bbcfg", old], capture_output=True, text=True)
    if d.returncode != 0:
        sys.exit(f"sass-mix: nvdisasm failed on {cubin}:\n{d.stderr}")
    return r.stderr, d.stdout


def registers(ptxas_log):
    """Kernel name -> (registers, spill bytes stored + loaded), from ptxas -v."""
    out, cur, spill = {}, None, 0
    for line in ptxas_log.splitlines():
        m = re.search(r"Compiling entry function '(\w+)'", line)
        if m:
            cur = m.group(1)
        m = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", line)
        if m:
            spill = int(m.group(1)) + int(m.group(2))
        m = re.search(r"Used (\d+) registers", line)
        if m and cur:
            out[cur] = (int(m.group(1)), spill)
            cur = None
    return out


def functions(dot):
    """Function name -> (blocks: name -> instruction opcodes, edges, blocks in listing order)."""
    out = {}
    for part in re.split(r'\nsubgraph "cluster_', dot)[1:]:
        name = part[:part.index('"')]
        blocks, edges, order = {}, collections.defaultdict(list), []
        for m in re.finditer(r'\n"([^"]+)"\n\[label="\{(.*?)\}"\]', part):
            blocks[m.group(1)] = re.findall(r'\\ \\ (?:@!?U?P\w+\\ )?([A-Z0-9_.]+)\\ ', m.group(2))
            order.append(m.group(1))
        for m in re.finditer(r'\n"([^"]+)":\w+:\w+ -> "([^"]+)":', part):
            if m.group(2) in blocks and m.group(2) not in edges[m.group(1)]:
                edges[m.group(1)].append(m.group(2))
        out[name] = (blocks, edges, order)
    return out


def components(blocks, edges):
    """Strongly connected components (Tarjan), iteratively."""
    index, low, on, stack, out, n = {}, {}, set(), [], [], 0
    for root in blocks:
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            v, i = work.pop()
            if i == 0:
                index[v] = low[v] = n
                n += 1
                stack.append(v)
                on.add(v)
            succ = edges.get(v, [])
            if i < len(succ):
                work.append((v, i + 1))
                w = succ[i]
                if w not in index:
                    work.append((w, 0))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                out.append(comp)
            if work:
                u = work[-1][0]
                low[u] = min(low[u], low[v])
    return out


def kind(op):
    return op.split(".")[0]


def k_loop(blocks, edges, order):
    loops = [set(c) for c in components(blocks, edges) if len(c) > 1 or c[0] in edges.get(c[0], [])]
    if not loops:
        return None

    def weight(c):
        return sum((kind(op) == "FFMA") + 100 * (kind(op) == "HMMA") for b in c for op in blocks[b])

    loop = max(loops, key=weight)
    mix = collections.Counter(kind(op) for b in loop for op in blocks[b])
    mix["divisions"] = sum(op.startswith("MUFU.RCP") for b in loop for op in blocks[b])
    entry = next(b for b in order if b in loop and any(b in edges[o] for o in blocks if o not in loop))
    # The loop as a DAG from its entry: every edge back to a block on the search's path dropped;
    # the blocks in the order the search leaves them, reversed, are in topological order.
    dag, seen, path, stack, topo = collections.defaultdict(list), {entry}, {entry}, [(entry, 0)], []
    while stack:
        v, i = stack.pop()
        succ = [w for w in edges.get(v, []) if w in loop]
        if i < len(succ):
            stack.append((v, i + 1))
            w = succ[i]
            if w in path:
                continue
            dag[v].append(w)
            if w not in seen:
                seen.add(w)
                path.add(w)
                stack.append((w, 0))
        else:
            path.discard(v)
            topo.append(v)
    topo.reverse()
    pos = {b: i for i, b in enumerate(topo)}

    def loads(b):
        """Where a path has a choice: 16-byte loads, and stores into shared memory (the next
        slice's, which the last slice skips) taken wherever there are some."""
        return sum(op.startswith("LDG.E.128") for op in blocks[b]) + any(kind(op) == "STS" for op in blocks[b])

    def best(src, targets):
        """The path from src with the most 16-byte loads, then the fewest instructions."""
        d = {src: (loads(src), -len(blocks[src]))}
        for v in topo[pos[src]:]:
            if v in d:
                for w in dag[v]:
                    c = (d[v][0] + loads(w), d[v][1] - len(blocks[w]))
                    if w not in d or c > d[w]:
                        d[w] = c
        return max((d[t] for t in targets if t in d), default=None)

    must = [b for b in topo if any(kind(op) in ("FFMA", "HMMA") for op in blocks[b])]
    latches = [b for b in loop if entry in edges.get(b, [])]
    fast, cur = len(blocks[entry]), entry
    for b in [b for b in must if b != entry] + [None]:
        r = best(cur, latches if b is None else [b])
        if r is None:
            fast = None
            break
        fast += -r[1] - len(blocks[cur])
        cur = b
    return sum(mix.values()) - mix["divisions"], fast, mix


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="sm_90")
    ap.add_argument("--ptx", action="append")
    ap.add_argument("kernels", nargs="*")
    a = ap.parse_args()
    files = a.ptx or [os.path.join(PTX_DIR, "convspark.ptx"), os.path.join(PTX_DIR, "convspark_tf32.ptx")]
    for f in files:
        if not os.path.isfile(f):
            sys.exit(f"sass-mix: --ptx {f}: no such file")
    tool("ptxas", "PTXAS")
    tool("nvdisasm", "NVDISASM")
    print("| PTX | kernel | registers | spilled bytes | k loop: instructions | its fast path | FFMA (HMMA) "
          "in the fast path's loop | integer divisions in the loop |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as work:
        for ptx in files:
            log, dot = disassemble(ptx, a.arch, work)
            regs, funcs = registers(log), functions(dot)
            tf32 = "tf32" in os.path.basename(ptx)
            names = a.kernels or [k + s for s in (["_tf32", "_n32_tf32"] if tf32 else ["", "_n32"]) for k in WIDE]
            for name in names:
                if name not in funcs:
                    sys.exit(f"sass-mix: no kernel {name} in {ptx}")
                r, spill = regs.get(name, ("?", "?"))
                loop = k_loop(*funcs[name])
                if loop is None:
                    print(f"| {os.path.basename(ptx)} | {name} | {r} | {spill} | no loop | | | |")
                    continue
                total, fast, mix = loop
                madds = f"{mix['HMMA']} HMMA" if mix["HMMA"] else f"{mix['FFMA']}"
                print(f"| {os.path.basename(ptx)} | {name} | {r} | {spill} | {total} | {fast} | {madds} "
                      f"| {mix['divisions']} |", flush=True)


if __name__ == "__main__":
    main()
