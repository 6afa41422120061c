#!/usr/bin/env bash
# Full-scale All-CNN-96 (width 1.0, beta 0.5, information dropout) on full Cluttered MNIST
# (96x96, 21 distractors, 50k / 10k / 10k generated here from .gpu/mnist.npz), on one GPU with
# JAX, in one prepared run of <= ~9 minutes wall:
#
#   1. generate the data in memory (nothing written but results);
#   2. train with SGD-Nesterov 0.01, x0.1 at 50 % and 75 % of the epochs, as many epochs as fit
#      in GPU_TRAIN_BUDGET_S (the count is fixed after epoch 2 from its measured time);
#   3. test error before / after the batch-norm recalibration ("dry run");
#   4. KL heatmap PNG + kl_lift + kl_nats over the test set;
#   5. if time is left, bench_classifier's images/s (width 1.0, then 0.25) on this GPU.
#
# Everything lands under $OUT (run/ = a normal run directory, written by
# ibvae.classifier.train.train_classifier; gpu_summary.json; gpu_bench.json). The machine has
# JAX, numpy, matplotlib, h5py and tensorboard but no keras or TensorFlow: keras comes from the
# wheels in .gpu/, and Keras' TensorBoard callback (it writes through TensorFlow) is skipped.
# `import ibvae` does not need PyYAML; writing the run's config.yaml does, so where PyYAML is
# missing a JSON stand-in module named yaml is put on PYTHONPATH (JSON is valid YAML, so
# config.yaml stays loadable by the real PyYAML later). model.keras needs h5py: checked first.
# The run directory is the library's, so it also holds best_model.keras and backup/ (written
# each epoch by Keras' callbacks; part of the measured training time).
#
# Lead, from the repo root (carry [".gpu"], timeout_s 570):
#   mkdir -p .gpu && cp /path/to/wheels/py312/*.whl /path/to/mnist.npz .gpu/
#   run: bash benchmarks/gpu_allcnn96.sh
# Knobs (env): GPU_TRAIN_BUDGET_S (300), GPU_DEADLINE_S (500, total wall after which optional
# steps are skipped), GPU_MAX_EPOCHS (80), GPU_TRAIN / GPU_VALID / GPU_TEST (50000/10000/10000),
# GPU_CANVAS (96), GPU_DISTRACTORS (21), GPU_WIDTH (1.0), GPU_BETA (0.5), GPU_PADDING (symmetric),
# GPU_BENCH (1), GPU_BENCH_STEPS (30), GPU_MATMUL_N (8192), GPU_MNIST (.gpu/mnist.npz),
# GPU_BLOCK_MODULES (local test: modules to pretend missing, e.g. tensorflow,mlxtend),
# GPU_FORCE_YAML_SHIM=1 (local test).
set -euo pipefail
START=$(date +%s)
cd "$(dirname "$0")/.."
if ! python3 -c "import keras" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .gpu/*.whl
  export PYTHONPATH=/tmp/site:$PWD
fi
export PYTHONPATH=${PYTHONPATH:-}:$PWD
if ! python3 -c "import h5py" 2>/dev/null; then
  echo "error: h5py is missing; Keras needs it to write model.keras (carry its wheel in .gpu/)" >&2
  exit 2
fi
if [ "${GPU_FORCE_YAML_SHIM:-0}" = 1 ] || ! python3 -c "import yaml" 2>/dev/null; then
  mkdir -p /tmp/ibvae_yaml_shim
  cat > /tmp/ibvae_yaml_shim/yaml.py <<'SHIM'
"""Stand-in for PyYAML on a machine without it: JSON is valid YAML."""
import json


class YAMLError(ValueError):
    pass


def safe_dump(data, sort_keys=False, **_):
    return json.dumps(data, indent=2, sort_keys=sort_keys) + "\n"


def safe_load(text):
    try:
        return json.loads(text)
    except ValueError as e:
        raise YAMLError(str(e)) from e
SHIM
  export PYTHONPATH=/tmp/ibvae_yaml_shim:$PYTHONPATH
  echo "PyYAML missing: using the JSON stand-in in /tmp/ibvae_yaml_shim"
fi
export KERAS_BACKEND=${KERAS_BACKEND:-jax}
export OUT=${OUT:-$PWD/runs/gpu_out}
export GPU_START=$START
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null | tee "$OUT/gpu_name.txt" || true
python3 - <<'PY' 2>&1 | tee "$OUT/gpu_log.txt"
import os
import sys

for _m in filter(None, os.environ.get("GPU_BLOCK_MODULES", "").split(",")):
    sys.modules[_m] = None  # local test: behave as if the module were not installed

import dataclasses
import json
import time
from pathlib import Path

import keras
import numpy as np

t_start = float(os.environ["GPU_START"])
env = os.environ.get
DEADLINE = float(env("GPU_DEADLINE_S", "500"))
OUT = Path(env("OUT"))
summary = {"backend": keras.backend.backend(), "keras": keras.__version__}
try:
    import jax

    summary["devices"] = [str(d) for d in jax.devices()]
except Exception as e:  # noqa: BLE001
    summary["devices"] = repr(e)


def elapsed() -> float:
    return time.time() - t_start


def dump() -> None:
    summary["elapsed_s"] = round(elapsed(), 1)
    (OUT / "gpu_summary.json").write_text(json.dumps(summary, indent=2) + "\n")


print(f"[{elapsed():.0f}s] backend {summary['backend']} devices {summary['devices']}", flush=True)

from ibvae import runs  # noqa: E402
from ibvae.classifier.cluttered import make_cluttered_mnist  # noqa: E402
from ibvae.classifier.config import (  # noqa: E402
    ClassifierConfig,
    ClassifierModelConfig,
    ClassifierTrainConfig,
    ClutterConfig,
)
from ibvae.classifier.data import SPLITS, as_splits  # noqa: E402
from ibvae.classifier.kl_maps import write_kl_maps  # noqa: E402
from ibvae.classifier.train import train_classifier  # noqa: E402

# 1. data ------------------------------------------------------------------------------------
t = time.time()
clutter_config = ClutterConfig(
    data=env("GPU_MNIST", ".gpu/mnist.npz"), seed=0, canvas=int(env("GPU_CANVAS", "96")),
    distractors=int(env("GPU_DISTRACTORS", "21")), distractor_size=8,
    **{k: int(env(f"GPU_{k.upper()}", d)) for k, d in
       (("train", "50000"), ("valid", "10000"), ("test", "10000"))},
)
arrays = make_cluttered_mnist(clutter_config)
splits = as_splits({s: (arrays[f"x_{s}"], arrays[f"y_{s}"], arrays[f"boxes_{s}"]) for s in SPLITS},
                   origin="generated Cluttered MNIST")
del arrays
c = clutter_config
summary["data_seconds"] = round(time.time() - t, 1)
summary["data"] = {"train": c.train, "valid": c.valid, "test": c.test, "canvas": c.canvas,
                   "distractors": c.distractors}
print(f"[{elapsed():.0f}s] data {summary['data']} in {summary['data_seconds']} s", flush=True)
dump()

# 2. train, recalibrate, test ----------------------------------------------------------------
budget = float(env("GPU_TRAIN_BUDGET_S", "300"))
max_epochs = int(env("GPU_MAX_EPOCHS", "80"))
config = ClassifierConfig(
    model=ClassifierModelConfig(
        width=float(env("GPU_WIDTH", "1.0")), beta=float(env("GPU_BETA", "0.5")),
        padding=env("GPU_PADDING", "symmetric"),
    ),
    train=ClassifierTrainConfig(
        epochs=max_epochs, lr_drops=[], optimizer="sgd", learning_rate=0.01, batch_size=128
    ),
)


def drops_for(epochs: int) -> list[int]:
    return sorted({max(1, round(0.5 * epochs)), max(1, round(0.75 * epochs))})


class EpochPlan(keras.callbacks.Callback):
    """Fix the epoch count after epoch 2 from its time; step the lr at 50 % / 75 % of it."""

    def __init__(self):
        super().__init__()
        self.epochs, self.times = max_epochs, []

    def on_train_begin(self, logs=None):
        self.t0 = time.time()

    def on_epoch_begin(self, epoch, logs=None):
        lr = config.train.learning_rate * 0.1 ** sum(epoch >= d for d in drops_for(self.epochs))
        self.model.optimizer.learning_rate = lr

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.time())
        if epoch == 1:
            per_epoch = self.times[1] - self.times[0]
            left = budget - (self.times[1] - self.t0)
            self.epochs = max(2, min(max_epochs, 2 + int(left / per_epoch)))
            summary["epoch_seconds"] = round(per_epoch, 2)
            summary["first_epoch_seconds"] = round(self.times[0] - self.t0, 1)
            print(f"\n[{elapsed():.0f}s] epoch time {per_epoch:.1f} s -> {self.epochs} epochs, "
                  f"lr drops at {drops_for(self.epochs)}", flush=True)
        if epoch + 1 >= self.epochs or self.times[-1] - self.t0 > 1.15 * budget:
            self.model.stop_training = True


run_dir = OUT / "run"
plan = EpochPlan()
model, metrics = train_classifier(config, data=splits, run_dir=run_dir, callbacks=[plan],
                                  overwrite=True, verbose=2, log=print)
ran = metrics["epochs_run"]
# config.yaml says what was run: the epochs that fitted the budget and their lr drops
runs.save_config(dataclasses.replace(config, train=dataclasses.replace(
    config.train, epochs=ran, lr_drops=drops_for(plan.epochs))), run_dir)
summary["train"] = {k: metrics[k] for k in ("n_train", "epochs_run", "train_seconds",
                                            "train_images_per_second", "backend")}
for key in ("test_error", "test_error_no_recalibration", "valid_error", "recalibration_seconds"):
    summary[key] = metrics.get(key)
print(f"[{elapsed():.0f}s] trained {ran} epochs: {summary['train']}; test error "
      f"{metrics['test_error']:.2f} % (no recalibration "
      f"{metrics['test_error_no_recalibration']:.2f} %)", flush=True)
dump()

# 3. KL maps + lift --------------------------------------------------------------------------
t = time.time()
kl = write_kl_maps(model, splits["test"], run_dir, n=6)
summary.update(kl_lift=kl["kl_lift"], kl_nats=kl["kl_nats"], kl_border=kl["kl_border"],
               kl_seconds=round(time.time() - t, 1))
print(f"[{elapsed():.0f}s] kl_lift {kl['kl_lift']} kl_nats {kl['kl_nats']}", flush=True)
dump()

# 4. bench (optional) ------------------------------------------------------------------------
if env("GPU_BENCH", "1") == "1":
    sys.path.insert(0, str(Path.cwd() / "benchmarks"))
    from bench_classifier import matmul_rate, train_rate

    rate = matmul_rate(int(env("GPU_MATMUL_N", "8192")), 10)
    bench = {"matmul_flops": rate, "rows": []}
    steps = int(env("GPU_BENCH_STEPS", "30"))
    for width in (1.0, 0.25):
        for dropout in ("information", "binary"):
            if elapsed() > DEADLINE - 45:
                bench["skipped_from"] = f"width {width} {dropout} (time)"
                break
            ips, fwd = train_rate(dropout, width, c.canvas, 128, steps, 3)
            bound = rate / (3 * fwd)
            row = dict(width=width, dropout=dropout, images_per_s=round(ips, 1),
                       forward_mflops=round(fwd / 1e6, 1), fraction_of_bound=round(ips / bound, 3))
            bench["rows"].append(row)
            print(f"[{elapsed():.0f}s] bench {row}", flush=True)
            (OUT / "gpu_bench.json").write_text(json.dumps(bench, indent=2) + "\n")
        else:
            continue
        break
    summary["bench"] = bench
dump()
print(f"[{elapsed():.0f}s] done; summary in {OUT / 'gpu_summary.json'}", flush=True)
PY
