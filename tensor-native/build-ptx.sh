#!/usr/bin/env bash
# Compiles the GPU kernels (src/main/cuda/convspark.cu) to PTX for CudaBackend.
# Usage: tensor-native/build-ptx.sh [OUTPUT-DIR]   (default: the committed resources' folder)
# Writes two files:
#   convspark.ptx       compute_75 (Turing and newer, the oldest nvcc 13 accepts): the float32
#                       kernels, what every GPU runs by default
#   convspark_tf32.ptx  compute_80 (Ampere and newer, whose tensor cores multiply in TF32): the
#                       same kernels and the wide products' TF32 forms, for precision tf32
# Both declare PTX ISA 8.0, the version CUDA 12.0 drivers read, instead of the 9.x nvcc 13 writes:
# the kernels use no instruction newer than that, so each file loads on CUDA 12 and CUDA 13 drivers.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=${1:-$here/src/main/resources/dev/convspark/tensor/cuda}
command -v nvcc >/dev/null 2>&1 || { echo "build-ptx: nvcc not found (install the CUDA toolkit)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$out"
for target in 75:convspark 80:convspark_tf32; do
  nvcc -ptx -arch=compute_${target%%:*} -O3 -o "$tmp/${target#*:}.ptx" "$here/src/main/cuda/convspark.cu"
  # nvcc's header names its own release ("Cuda compilation tools, release ..."): kept, so that the
  # freshness test compares only against the same nvcc release (another may generate other code).
  sed -e 's/^\.version [0-9.]*$/.version 8.0/' "$tmp/${target#*:}.ptx" > "$out/${target#*:}.ptx"
  echo "wrote $out/${target#*:}.ptx"
done
