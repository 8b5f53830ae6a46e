#!/usr/bin/env bash
# Compiles the GPU kernels (src/main/cuda/convspark.cu) to PTX for CudaBackend.
# Usage: tensor-native/build-ptx.sh [OUTPUT]   (default: the committed resource)
# The PTX targets compute_75 (Turing and newer, the oldest nvcc 13 accepts) and declares PTX ISA
# 8.0, the version CUDA 12.0 drivers read, instead of the 9.x nvcc 13 writes: the kernels use no
# instruction newer than that, so one file loads on CUDA 12 and CUDA 13 drivers.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=${1:-$here/src/main/resources/dev/convspark/tensor/cuda/convspark.ptx}
command -v nvcc >/dev/null 2>&1 || { echo "build-ptx: nvcc not found (install the CUDA toolkit)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
nvcc -ptx -arch=compute_75 -O3 -o "$tmp/convspark.ptx" "$here/src/main/cuda/convspark.cu"
# nvcc's header names its own release ("Cuda compilation tools, release ..."): kept, so that the
# freshness test compares only against the same nvcc release (another may generate other code).
sed -e 's/^\.version [0-9.]*$/.version 8.0/' "$tmp/convspark.ptx" > "$out"
echo "wrote $out"
