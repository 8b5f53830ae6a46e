#!/usr/bin/env bash
# Builds the emulated CUDA driver (src/test/cuda-emu): a libcuda.so.1 that runs convspark's kernels
# on the CPU, for checking CudaBackend's host code and the kernels' arithmetic where no GPU is
# present (CudaEmulationTest). It is a test tool, not a GPU: gpu-check.sh on a GPU machine is that.
#
#   tensor-native/cuda-emu.sh [OUTPUT-DIR [SOURCE-DIR]]   (default target/cuda-emu) -> OUTPUT-DIR/libcuda.so.1
#
# SOURCE-DIR (default src/main/cuda) holds the convspark.cu to compile: a test builds a changed copy
# of the kernels there to see that the driver catches the change (CudaEmulationTest).
#
# Then any JVM started with LD_LIBRARY_PATH=OUTPUT-DIR sees one emulated GPU through JCuda, e.g.
#   LD_LIBRARY_PATH=tensor-native/target/cuda-emu java ... dev.convspark.tensor.backend.GpuCheck --parity-only
# Needs g++ (C++17) on x86-64 Linux; exits with 3, saying why, where it cannot be built.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=${1:-$here/target/cuda-emu}
src=${2:-$here/src/main/cuda}
[[ $(uname -s) == Linux && $(uname -m) == x86_64 ]] \
  || { echo "cuda-emu: written for x86-64 Linux, this is $(uname -s) $(uname -m)" >&2; exit 3; }
command -v g++ >/dev/null 2>&1 || { echo "cuda-emu: g++ not found (apt-get install g++)" >&2; exit 3; }
mkdir -p "$out"
# One X(name) per kernel of convspark.cu, so the driver knows every kernel by name and signature.
# (A kernel may declare __launch_bounds__(...) before its name; the wide-tile kernels are made by
# macros, one line each: NAME_OF_MACRO(kernel, ...).)
{
  grep -o 'extern "C" __global__ void \(__launch_bounds__([^)]*) \)\?[A-Za-z_0-9]*' "$src/convspark.cu" \
    | awk '$NF ~ /^[A-Za-z_][A-Za-z_0-9]*$/ {print "X(" $NF ")"}'
  sed -n 's/^[A-Z_]*(\([a-z_0-9]*\), [a-z]*, [A-Z0-9]*)$/X(\1)/p' "$src/convspark.cu"
} > "$out/kernels.inc"
# One S(name) per name of a __shared__ array, which the driver fills with NaN before each block.
sed -n 's/^ *__shared__ \(.* \)\?float \([a-z_0-9]*\)\[.*/S(\2)/p' "$src/convspark.cu" | sort -u > "$out/shared.inc"
# Strict aliasing off: the kernels read shared float arrays as float4, as CUDA code does.
# fmaf as one instruction where the processor has it (a libm call per multiply-add otherwise).
fma=
grep -qw fma /proc/cpuinfo 2>/dev/null && fma=-mfma
g++ -std=c++17 -O2 $fma -fPIC -shared -fvisibility=hidden -fno-strict-aliasing -Wall -Wno-unknown-pragmas -Wno-sign-compare \
  -I "$here/src/test/cuda-emu" -I "$src" -I "$out" \
  -Wl,-soname,libcuda.so.1 -o "$out/libcuda.so.1.tmp" "$here/src/test/cuda-emu/driver.cpp"
mv "$out/libcuda.so.1.tmp" "$out/libcuda.so.1"
echo "built $out/libcuda.so.1 ($(wc -l < "$out/kernels.inc") kernels)"
