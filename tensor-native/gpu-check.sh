#!/usr/bin/env bash
# The GPU check of the engine, for a machine with an NVIDIA GPU and no Maven and no Spark.
#
#   tensor-native/gpu-check.sh pack   on the build machine: builds the engine, puts its jars (with
#                                     the datasets' and jobs' for `recipe`, which load no Spark
#                                     class), a jlink Java runtime and, where data/mnist holds them,
#                                     the MNIST files gzipped under tensor-native/target/gpu-check
#                                     (it prints the size: about 57 MB in all, 36 MB of it the runtime)
#   tensor-native/gpu-check.sh [run] [--part LIST]
#                                     on the GPU machine: deep-mnist training and inference on the
#                                     GPU at batch 50 and 512, as one table (training without CUDA
#                                     graphs too, -Dconvspark.gpu.graphs=false, without Winograd's
#                                     convolutions, -Dconvspark.gpu.winograd=false, and the classic
#                                     route of kernels, -Dconvspark.gpu.kernels=classic, for A/Bs), and
#                                     each kernel's share of a training step at batch 50 and 512
#                                     and of an inference batch of 1000 (CUDA events around every
#                                     launch); where python3 has PyTorch
#                                     with CUDA, the same model on PyTorch's GPU path in float32 and
#                                     with TF32 allowed, each by default and with cudnn.benchmark,
#                                     and the ratios; last, CPU-vs-GPU parity of
#                                     every layer and of 20 training steps (relative error under
#                                     1e-4), printed as each completes: against the CPU reference
#                                     (on every core, the same results as on one) it took about 5
#                                     minutes on an H200's machine on one core, so a run cut short
#                                     has the figures already. Each part (rows, eager, direct,
#                                     classic, tf32, cpu, profile, parity, tf32-parity: GpuCheck's)
#                                     runs in a JVM of its own, so that a kernel faulting on the
#                                     GPU costs its part alone, and each of the benchmark's parts is
#                                     cut off after GPU_CHECK_PART_SECONDS (180); --part LIST runs
#                                     those parts alone (a second call's way to rerun one);
#                                     GPU_JAVA_OPTS adds options to GpuCheck's JVMs (a backend's
#                                     switch: -Dconvspark.gpu.inferencePart=512)
#   tensor-native/gpu-check.sh cpu [--threads 8,16] [--steps 100]
#                                     on the GPU machine's host (no GPU needed): deep-mnist training
#                                     (batch 50 and 512) and inference on the engine's CPU backend
#                                     per thread count, then, where python3 has PyTorch, the same on
#                                     PyTorch's CPU path on the same thread counts and the ratios
#                                     ($PYTHON, python3 by default); BENCH_ISA=avx2|avx512 holds
#                                     both sides to one instruction set; CPU_JAVA_OPTS adds options
#                                     to the engine's JVM
#   tensor-native/gpu-check.sh recipe [--seed S] [--steps N]
#                                     on the GPU machine: time to accuracy, deep-mnist trained to the
#                                     end of the short recipe (400 x 600, 99.3% on the CPU) and the
#                                     tutorial's (50 x 20,000) on the GPU in fp32 and tf32 (RecipeCheck),
#                                     then the same on PyTorch's GPU path; RECIPES="short" runs one
#   tensor-native/gpu-check.sh all [--budget SECONDS]
#                                     on the GPU machine, for one lent session: the parts above in
#                                     the order of what they settle, each under what is left of the
#                                     budget (540 s by default; a part that runs out is cut off and
#                                     says so): `run --benchmark-only` (the GPU's figures, profiles
#                                     and PyTorch's), `cpu --threads 2,8,16` (the host's cores),
#                                     `cpu --threads 16` again with the CPU's unrolled row kernel
#                                     (-Dconvspark.cpu.unrollRows=true, an A/B), `recipe` with
#                                     RECIPES=short, then `run --parity-only`; it
#                                     prints each part's seconds and the budget left
# Exit status: 0 all checks passed, 1 a check failed, 3 no usable GPU (the reason is printed).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# Run from the source tree, the packed files are in target/gpu-check; run from a packed copy, beside it.
if [[ -d "$here/lib" ]]; then dist=$here; else dist="$here/target/gpu-check"; fi

pack() {
  (cd "$here/.." && mvn -B -q -DskipTests install -pl jobs -am)
  rm -rf "$dist" && mkdir -p "$dist/lib"
  cp "$here"/target/tensor-native-*.jar "$here"/../datasets/target/datasets-*.jar "$dist/lib/"
  # The jobs' own classes (RecipeCheck), not the fat jar with Spark.
  local j
  for j in "$here"/../jobs/target/jobs-*.jar; do [[ $j == *-all.jar ]] || cp "$j" "$dist/lib/"; done
  local m f
  m="$here/../data/mnist"
  if [[ -f $m/train-images-idx3-ubyte || -f $m/train-images-idx3-ubyte.gz ]]; then
    mkdir -p "$dist/mnist"
    for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
      if [[ -f $m/$f.gz ]]; then cp "$m/$f.gz" "$dist/mnist/"; else gzip -c "$m/$f" > "$dist/mnist/$f.gz"; fi
    done
  else
    echo "no MNIST in $m (bin/convspark fetch-mnist): the pack has no data for 'recipe'" >&2
  fi
  (cd "$here" && mvn -B -q dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$dist/lib")
  local jlink=${JAVA_HOME:+$JAVA_HOME/bin/}jlink
  "$jlink" --add-modules java.base,java.logging,java.management,jdk.management,jdk.incubator.vector,jdk.unsupported \
    --strip-debug \
    --no-header-files --no-man-pages --compress=2 --output "$dist/jre"
  cp "$here/gpu-check.sh" "$here/gpu-torch.py" "$dist/"
  echo "packed $(du -sh "$dist" | cut -f1) in $dist (runtime $(du -sh "$dist/jre" | cut -f1))"
}

# Whether the first argument is among the others.
has() {
  local flag=$1 a
  shift
  for a in "$@"; do [[ $a == "$flag" ]] && return 0; done
  return 1
}

# GpuCheck with the given arguments ([--limit SECONDS] first: cut off after that many, 0 for no
# limit); its exit status. GPU_CHECK_CLASSPATH, where set, is the engine's classpath instead of the
# pack's jars (a test runs the script from the source tree).
gpu_check() {
  local java="$dist/jre/bin/java" rc limit=()
  [[ -x "$java" ]] || java=java
  if [[ ${1:-} == --limit ]]; then
    # In the foreground: the JVM stays in this script's process group, so that `all`'s budget,
    # which ends the group, ends it too.
    (($2 > 0)) && limit=(timeout --foreground --signal=TERM --kill-after=10 "$2")
    shift 2
  fi
  set +e
  # GPU_JAVA_OPTS: more options for GpuCheck's JVMs (a backend's switch, e.g.
  # -Dconvspark.gpu.inferencePart=512, for a row of another setting).
  "${limit[@]}" "$java" ${GPU_JAVA_OPTS:-} --add-modules jdk.incubator.vector -cp "${GPU_CHECK_CLASSPATH:-$dist/lib/*}" \
    dev.convspark.tensor.backend.GpuCheck "$@"
  rc=$?
  set -e
  return $rc
}

# GpuCheck's parts, each in a JVM of its own: a kernel that faults on a GPU (an illegal address)
# leaves its process unable to use the GPU again, and would take every later part with it. Each
# of the benchmark's parts (seconds each on an H200) is cut off after GPU_CHECK_PART_SECONDS (180
# by default; 0: no limit), so that a kernel that never ends costs one part; the checks, which
# print each result as it comes and wait on the CPU reference, run to the end. --part LIST runs
# those parts; --benchmark-only and --parity-only the benchmark's or the checks'. The figures go
# to the results file for PyTorch's ratios, which run after the benchmark's parts, whatever they
# gave.
run() {
  local out rc=0 part_rc a prev= list= part start limit=${GPU_CHECK_PART_SECONDS:-180} args=() parts=()
  [[ $limit =~ ^[0-9]+$ ]] || { echo "GPU_CHECK_PART_SECONDS must be a whole number of seconds but was '$limit'" >&2; return 2; }
  for a in "$@"; do
    if [[ $prev == --part ]]; then list=$a
    elif [[ $a != --part && $a != --benchmark-only && $a != --parity-only ]]; then args+=("$a"); fi
    prev=$a
  done
  if [[ -n $list ]]; then
    IFS=, read -ra parts <<< "$list"
  else
    has --parity-only "$@" || parts+=(rows eager direct classic tf32 cpu profile)
    has --benchmark-only "$@" || parts+=(parity tf32-parity)
  fi
  command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
  out=$(mktemp)
  local benchmarked=
  for part in "${parts[@]}"; do
    # PyTorch's figures once the benchmark's parts are done, before the checks (which take minutes).
    if [[ -n $benchmarked && $part == *parity ]]; then torch_figures "$out"; benchmarked=; fi
    [[ $part == *parity ]] || benchmarked=yes
    start=$SECONDS
    part_rc=0
    gpu_check --limit "$([[ $part == *parity ]] && echo 0 || echo "$limit")" --part "$part" --results "$out" \
      "${args[@]}" || part_rc=$?
    if ((part_rc == 3)); then
      rm -f "$out"
      return 3
    elif ((part_rc == 124 || part_rc == 137)); then
      echo "== gpu-check run: part '$part' cut off after $((SECONDS - start))s (GPU_CHECK_PART_SECONDS=$limit)"
    elif ((part_rc != 0)); then
      echo "== gpu-check run: part '$part' ended with exit status $part_rc; the next parts run in JVMs of their own"
    fi
    # A part cut off is a failed one (exit 1): 124 would read as `all`'s budget running out.
    if ((part_rc != 0 && rc == 0)); then rc=$((part_rc == 124 || part_rc == 137 ? 1 : part_rc)); fi
  done
  if [[ -n $benchmarked ]]; then torch_figures "$out"; fi
  rm -f "$out"
  return $rc
}

# PyTorch's figures on this GPU with ratios against ours in the results file $1 (where a part
# gave them).
torch_figures() {
  if python3 -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null; then
    python3 "$here/gpu-torch.py" --ours "$1" || true
  else
    echo "(no PyTorch with CUDA here: no reference figures)"
  fi
}

# The engine on the CPU per thread count (CpuCheck), then PyTorch's CPU path on the same counts.
cpu() {
  local java="$dist/jre/bin/java" python=${PYTHON:-python3} out rc=0 steps=100 a prev=
  [[ -x "$java" ]] || java=java
  for a in "$@"; do [[ $prev == --steps ]] && steps=$a; prev=$a; done
  # BENCH_ISA=avx2|avx512 holds both sides to one instruction set, as ../shared/bench/run.sh does.
  local isa=()
  case "${BENCH_ISA:-native}" in
    avx2) isa=(-XX:UseAVX=2); export ATEN_CPU_CAPABILITY=avx2 OPENBLAS_CORETYPE=Haswell ;;
    avx512) isa=(-XX:UseAVX=3); export ATEN_CPU_CAPABILITY=avx512 OPENBLAS_CORETYPE=SkylakeX ;;
    native) ;;
    *) echo "BENCH_ISA must be avx2, avx512 or native" >&2; return 2 ;;
  esac
  # The machine first: its model, and its physical cores against its logical ones (16 logical
  # cores may be 8 with two threads each), without which a thread count's figure cannot be read.
  if command -v lscpu >/dev/null 2>&1; then
    lscpu | grep -E '^(Model name|Socket\(s\)|Core\(s\) per socket|Thread\(s\) per core|L1d cache|L2 cache|L3 cache|NUMA node\(s\)):' || true
  else
    grep -m1 'model name' /proc/cpuinfo || true
  fi
  out=$(mktemp)
  # CPU_JAVA_OPTS: more options for the engine's JVM (an A/B of a kernel switch, as `all` runs).
  # shellcheck disable=SC2086
  "$java" "${isa[@]}" ${CPU_JAVA_OPTS:-} --add-modules jdk.incubator.vector -cp "$dist/lib/*" \
    dev.convspark.tensor.backend.CpuCheck --results "$out" "$@" || rc=$?
  if [[ $rc -eq 0 ]] && "$python" -c 'import torch' 2>/dev/null; then
    "$python" "$here/gpu-torch.py" --cpu --ours "$out" --steps "$steps" || rc=$?
  elif [[ $rc -eq 0 ]]; then
    echo "(no PyTorch here: no reference figures)"
  fi
  rm -f "$out"
  return $rc
}

# Time to accuracy: RecipeCheck's recipes on the GPU in both precisions, then PyTorch's.
recipe() {
  local java="$dist/jre/bin/java" data="$dist/mnist" rc=0 r p
  [[ -x "$java" ]] || java=java
  [[ -d $data ]] || { echo "no MNIST at $data: pack where data/mnist holds it (bin/convspark fetch-mnist)" >&2; return 2; }
  echo "| recipe | backend | precision | batch x steps | test accuracy | training s | images/s |"
  echo "| --- | --- | --- | --- | --- | --- | --- |"
  for r in ${RECIPES:-short tutorial}; do
    for p in fp32 tf32; do
      "$java" --add-modules jdk.incubator.vector -cp "$dist/lib/*" dev.convspark.jobs.RecipeCheck --data "$data" \
        --recipe "$r" --device gpu --precision "$p" "$@" || rc=$?
    done
  done
  if python3 -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null; then
    local list=${RECIPES:-short tutorial}
    python3 "$here/gpu-torch.py" --recipe "$data" --recipes "${list// /,}" || rc=$?
  else
    echo "(no PyTorch with CUDA here: no reference rows)"
  fi
  return $rc
}

# Every part in turn under one budget of seconds, the figures first and the parity last.
all() {
  local budget=540 prev= a rc=0 part_rc start left self
  for a in "$@"; do [[ $prev == --budget ]] && budget=$a; prev=$a; done
  [[ $budget =~ ^[0-9]+$ ]] || { echo "--budget must be a whole number of seconds but was '$budget'" >&2; return 2; }
  self="$here/$(basename "${BASH_SOURCE[0]}")"
  local t0=$SECONDS
  # Both sides of the CPU rows on the widest vectors the CPU has: HotSpot leaves AVX-512 off by
  # default on Skylake-family Xeons, where PyTorch uses it. BENCH_ISA, where set, holds instead;
  # with AVX-512 the AVX2 rows come at the end, if the budget leaves time for them.
  local isa=${BENCH_ISA:-}
  if [[ -z $isa ]] && grep -qw avx512f /proc/cpuinfo 2>/dev/null; then isa=avx512; fi
  local cpu_isa=${isa:+BENCH_ISA=$isa }
  # The A/B of the CPU's unrolled row kernel (FastKernels.UNROLL_ROWS) at 16 threads comes after
  # the plain CPU rows it is read against.
  local parts=("run --benchmark-only" "${cpu_isa}cpu --threads 2,8,16"
    "${cpu_isa}CPU_JAVA_OPTS=-Dconvspark.cpu.unrollRows=true cpu --threads 16" "recipe" "run --parity-only")
  [[ $isa == avx512 ]] && parts+=("BENCH_ISA=avx2 cpu --threads 2,16")
  local p words envs w
  for p in "${parts[@]}"; do
    left=$((budget - (SECONDS - t0)))
    if ((left < 20)); then
      echo "== gpu-check all: '$p' not started, ${left}s of the budget left"
      continue
    fi
    echo "== gpu-check all: $p (${left}s of the budget left)"
    start=$SECONDS
    # A part is [NAME=value ...] command [arguments]; CPU_JAVA_OPTS adds to what the caller set.
    read -ra words <<< "$p"
    envs=("RECIPES=${RECIPES:-short}")
    while [[ ${words[0]} == *=* ]]; do
      w=${words[0]}
      [[ $w == CPU_JAVA_OPTS=* && -n ${CPU_JAVA_OPTS:-} ]] && w="CPU_JAVA_OPTS=$CPU_JAVA_OPTS ${w#*=}"
      envs+=("$w")
      words=("${words[@]:1}")
    done
    set +e
    timeout --signal=TERM --kill-after=10 "$left" env "${envs[@]}" "$self" "${words[@]}"
    part_rc=$?
    set -e
    if ((part_rc == 124 || part_rc == 137)); then
      echo "== gpu-check all: '$p' cut off after $((SECONDS - start))s (the budget ran out)"
    else
      echo "== gpu-check all: '$p' ended in $((SECONDS - start))s, exit status $part_rc"
    fi
    # No GPU: the CPU part still runs; a failed check or a cut-off part makes the whole fail.
    if ((part_rc != 0 && rc == 0)); then rc=$part_rc; fi
  done
  return $rc
}

case "${1:-run}" in
  pack) pack ;;
  run) shift || true; run "$@" ;;
  cpu) shift; cpu "$@" ;;
  recipe) shift; recipe "$@" ;;
  all) shift; all "$@" ;;
  *) echo "usage: gpu-check.sh pack | run [GPU-NUMBER] [--part LIST] [--benchmark-only | --parity-only] | cpu [--threads 8,16] [--steps 100] | recipe [--seed S]" \
       "| all [--budget 540]" >&2; exit 2 ;;
esac
