#!/usr/bin/env bash
# GPU check, on a machine with an NVIDIA GPU and nothing else reachable: build llama-cpp-python with
# CUDA from carried sources, serve SmolLM2 with skyllama (uvicorn, every layer on the GPU), and run
# the generate and embed benchmarks against llama.cpp in-process on the same GPU (infra/gpu/gpu_bench.py).
#
# Inputs come from infra/gpu/prepare_carry.sh (run where PyPI is reachable), in two calls (carry limit):
#   infra/gpu/device_check.sh build   # carries .gpu-carry/src and .gpu-carry/model-a: installs, builds
#   infra/gpu/device_check.sh bench   # carries .gpu-carry/model-b: joins the model, benchmarks
#   infra/gpu/device_check.sh all     # both, when everything is there at once
# Needs: python3 (3.12), nvcc, cmake, ninja and scikit-build-core on the machine (the device image has them).
# The CUDA build (one architecture, the device's) keeps its folder in .gpu-carry/build: a build cut off
# by a call's time limit goes on where it stopped when `build` runs again on the same machine.
# Output: $OUT (or /tmp/skyllama-gpu-out): gpu.txt, build.log, gpu-bench.txt, gpu-bench.json.
set -euo pipefail
cd "$(dirname "$0")/../.."
CARRY=${CARRY:-.gpu-carry}
SITE=$PWD/$CARRY/site # inside the ignored carry folder: kept between calls on a warm machine
OUT=${OUT:-/tmp/skyllama-gpu-out}
PY=${PYTHON:-python3}
STAGE=${1:-all}
mkdir -p "$OUT" "$SITE"
export PYTHONPATH="$SITE:$PWD/layers/core" PYTHONUNBUFFERED=1

# cuBLAS from NVIDIA's pip wheels when the system toolkit has none: unversioned names for the linker,
# and every CUDA library folder on the loader's path for the build and the benchmark.
cuda_env() {
  CUBLAS_ARGS=""
  export LD_LIBRARY_PATH="/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
  ls /usr/local/cuda/lib64/libcublas.so* /usr/local/cuda/targets/*/lib/libcublas.so* >/dev/null 2>&1 && return
  local lib inc shim=/tmp/cublas-shim
  lib=$("$PY" -c 'import glob, os, site; print(os.path.dirname(sorted(glob.glob(site.getsitepackages()[0] + "/nvidia/**/libcublas.so*", recursive=True))[0]))')
  inc=$("$PY" -c 'import glob, os, site; print(os.path.dirname(sorted(glob.glob(site.getsitepackages()[0] + "/nvidia/**/cublas_v2.h", recursive=True))[0]))')
  mkdir -p "$shim" && for f in "$lib"/libcublas*.so.*; do ln -sf "$f" "$shim/$(basename "${f%%.so.*}").so"; done
  CUBLAS_ARGS="-DCMAKE_LIBRARY_PATH=$shim -DCMAKE_CUDA_FLAGS=-I$inc -DCMAKE_CXX_FLAGS=-I$inc"
  export LD_LIBRARY_PATH="$lib:$LD_LIBRARY_PATH"
}

build() {
  nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv | tee "$OUT/gpu.txt"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --upgrade --target "$SITE" "$CARRY"/src/wheels/*.whl
  cuda_env
  if "$PY" -c 'import llama_cpp, sys; sys.exit(not llama_cpp.llama_supports_gpu_offload())' 2>/dev/null; then
    echo "llama-cpp-python with GPU offload is already built"; return
  fi
  local arch src=/tmp/llama-cpp-python
  arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d '.')
  rm -rf "$src" && tar -xJf "$CARRY/src/llama-cpp-python.tar.xz" -C /tmp
  echo "building llama-cpp-python with CUDA for sm_$arch (log: $OUT/build.log)"
  CMAKE_ARGS="-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=$arch -DGGML_NATIVE=OFF $CUBLAS_ARGS" \
    CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) \
    "$PY" -m pip install -v --no-index --no-deps --no-build-isolation --target "$SITE" \
      --config-settings=build-dir="$PWD/$CARRY/build" "$src" >"$OUT/build.log" 2>&1 \
    || { tail -40 "$OUT/build.log"; exit 1; }
  "$PY" -c 'import llama_cpp; assert llama_cpp.llama_supports_gpu_offload(), "built without GPU offload"
print("llama-cpp-python", llama_cpp.__version__, "built with GPU offload")'
}

bench() {
  local model=/tmp/smollm2.gguf
  cuda_env
  cat "$CARRY"/model-a/smollm2.gguf.part-a "$CARRY"/model-b/smollm2.gguf.part-b >"$model"
  echo "$(cat "$CARRY/model-a/smollm2.gguf.sha256")  $model" | sha256sum -c -
  "$PY" infra/gpu/gpu_bench.py --gguf "$model" --tokens 256 --repeats 5 --out "$OUT/gpu-bench.json" |
    tee "$OUT/gpu-bench.txt"
}

case "$STAGE" in
  build) build ;;
  bench) bench ;;
  all) build && bench ;;
  *) echo "usage: $0 [build|bench|all]" >&2; exit 2 ;;
esac
