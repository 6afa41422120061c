#!/usr/bin/env bash
# The full-scale Cluttered MNIST experiment (configs/experiments/allcnn96_full.yaml) on a GPU
# machine that has JAX but neither keras, TensorFlow nor PyYAML: install the carried wheels,
# make the data once, then run the spec with two points sharing the GPU (the runner gives each
# worker an equal share of its memory). Everything lands under $OUT (default runs/).
#
# Prepare here, from the repository root (the .gpu/ folder is git-ignored):
#   mkdir -p .gpu && cp /path/to/wheels/py312/*.whl /path/to/mnist.npz .gpu/
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --platform manylinux2014_x86_64 -d .gpu pyyaml
# Run there (extra arguments go to scripts/run_experiment.py, e.g. --set train.epochs=20):
#   bash benchmarks/gpu_experiment.sh
set -euo pipefail
cd "$(dirname "$0")/.."
if ! python3 -c "import keras, yaml" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .gpu/*.whl
  export PYTHONPATH=/tmp/site:$PWD
fi
export KERAS_BACKEND=${KERAS_BACKEND:-jax}
OUT=${OUT:-runs}
DATA=runs/data/cluttered.npz
[ -f "$DATA" ] || python3 scripts/make_cluttered_mnist.py --data .gpu/mnist.npz --out "$DATA"
python3 scripts/run_experiment.py configs/experiments/allcnn96_full.yaml \
  --out "$OUT/allcnn96_full" --workers 2 --set "train.data=$DATA" "$@"
