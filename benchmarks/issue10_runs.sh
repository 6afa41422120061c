#!/usr/bin/env bash
# Issue 10's long runs on full MNIST, prepared to be started by hand (never by CI or the tests):
#
#   (a) "long": the Gaussian, ID log-normal (one learned prior per layer), ID log-normal (one
#       per unit, --prior-shape unit) and ID log-uniform VAEs, MLP 784-400-40, $EPOCHS epochs
#       (default 300) on all 60,000 training images (--val-fraction 0), dynamic binarization,
#       the fixed binarized test set; then scripts/evaluate_vae.py RUN --iw $IW (default
#       5000) on all 10,000 test images (the log-uniform latent has no IW-NLL: its prior is
#       improper; it still gets the ELBO, active units and TC).
#   (b) "sweep": scripts/sweep_beta.py over beta in $SWEEP_BETAS (default 0.1 0.3 1 3 10) for
#       the three latents (configs/vae_mnist.yaml, vae_mnist_lognormal.yaml,
#       vae_mnist_gaussian.yaml), $SWEEP_EPOCHS epochs each (default 100), IW-NLL with
#       k = $SWEEP_IW (default 200), into $OUT/sweep (sweep.csv, figures/).
#
#   MNIST=/path/to/mnist.npz bash benchmarks/issue10_runs.sh [long|sweep|all]   (default all)
#   # in the background:
#   mkdir -p runs/issue10 && MNIST=/path/to/mnist.npz nohup bash benchmarks/issue10_runs.sh \
#       > runs/issue10/driver.log 2>&1 &
#
# Every step logs to $OUT/logs/<step>.log (default OUT=runs/issue10) and skips what is done:
# a finished training is not repeated (one interrupted mid-way resumes from its last epoch with
# --resume; a larger $EPOCHS extends it), an evaluation leaves $OUT/logs/<step>.done, the
# sweep skips its finished points. Rerun the same command after an interruption.
#
# Cost on the 2-core CPU, JAX (~2.5 s per epoch for 784-400-40 on a quiet machine; the IW-NLL
# took ~0.19 s per test image at k = 5000 in a timing check with load ~3): (a) about
# 4 x 300 x 2.5 s = 50 min of training plus three IW-NLL evaluations of ~30 min each; (b) 15
# runs of 100 epochs, about 63 min of training plus ten IW-NLL evaluations of ~1.5 min each
# (k = 200). Time a smaller IW check with scripts/evaluate_vae.py RUN --iw K --n-test N.
#
# Knobs (env): MNIST (required), OUT, EPOCHS, IW, SWEEP_EPOCHS, SWEEP_BETAS, SWEEP_IW,
# KERAS_BACKEND (jax), EXTRA_FLAGS (added to every training command, e.g. for a short check:
# EPOCHS=2 SWEEP_EPOCHS=1 SWEEP_BETAS="0.1 1" IW=20 SWEEP_IW=20).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${MNIST:?set MNIST=/path/to/mnist.npz (x_train, y_train, x_test, y_test)}"
[[ -f "$MNIST" ]] || { echo "error: MNIST=$MNIST is not a file" >&2; exit 2; }
export KERAS_BACKEND=${KERAS_BACKEND:-jax}
OUT=${OUT:-runs/issue10}
EPOCHS=${EPOCHS:-300}
IW=${IW:-5000}
SWEEP_EPOCHS=${SWEEP_EPOCHS:-100}
SWEEP_BETAS=${SWEEP_BETAS:-0.1 0.3 1 3 10}
SWEEP_IW=${SWEEP_IW:-200}
EXTRA_FLAGS=${EXTRA_FLAGS:-}
WHAT=${1:-all}
LOGS=$OUT/logs
mkdir -p "$LOGS"

say() { echo "[$(date '+%F %T')] $*"; }

# new | resume | done: the state of a run directory for a wanted number of epochs.
run_state() { python3 benchmarks/run_state.py "$1" "$2"; }

long_run() {  # name config [training flags...]
  local name=$1 config=$2
  shift 2
  local run=$OUT/long_$name log=$LOGS/long_$name.log
  local state
  state=$(run_state "$run" "$EPOCHS")
  if [[ $state == new ]]; then
    say "long_$name: training $EPOCHS epochs -> $run (log $log)"
    # shellcheck disable=SC2086
    python3 scripts/train_vae.py --config "$config" --data "$MNIST" --val-fraction 0 \
      --epochs "$EPOCHS" --out "$run" "$@" $EXTRA_FLAGS >> "$log" 2>&1
  elif [[ $state == resume ]]; then
    say "long_$name: resuming to $EPOCHS epochs -> $run (log $log)"
    python3 scripts/train_vae.py --out "$run" --resume --epochs "$EPOCHS" >> "$log" 2>&1
  else
    say "long_$name: trained, skipped"
  fi
  local done=$LOGS/eval_${name}_iw$IW.done
  if [[ -f $done && $done -nt $run/model.keras ]]; then
    say "long_$name: evaluated with --iw $IW, skipped"
  else
    say "long_$name: evaluating, --iw $IW (log $LOGS/eval_$name.log)"
    python3 scripts/evaluate_vae.py "$run" --iw "$IW" >> "$LOGS/eval_$name.log" 2>&1
    tail -n 4 "$LOGS/eval_$name.log"
    touch "$done"
  fi
}

if [[ $WHAT == all || $WHAT == long ]]; then
  long_run gaussian configs/vae_mnist_gaussian.yaml
  long_run lognormal_layer configs/vae_mnist_lognormal.yaml --prior-shape layer
  long_run lognormal_unit configs/vae_mnist_lognormal.yaml --prior-shape unit
  long_run log_uniform configs/vae_mnist.yaml
fi

if [[ $WHAT == all || $WHAT == sweep ]]; then
  say "sweep: betas $SWEEP_BETAS, $SWEEP_EPOCHS epochs, --iw $SWEEP_IW -> $OUT/sweep (log $LOGS/sweep.log)"
  # shellcheck disable=SC2086
  python3 scripts/sweep_beta.py --config configs/vae_mnist.yaml configs/vae_mnist_lognormal.yaml \
    configs/vae_mnist_gaussian.yaml --betas $SWEEP_BETAS --out "$OUT/sweep" --data "$MNIST" \
    --val-fraction 0 --epochs "$SWEEP_EPOCHS" --iw "$SWEEP_IW" $EXTRA_FLAGS >> "$LOGS/sweep.log" 2>&1
  tail -n 3 "$LOGS/sweep.log"
fi
say "done: $OUT"
